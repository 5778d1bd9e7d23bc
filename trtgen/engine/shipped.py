"""What ships inside the package besides code: the default voice, its reference style clips, demo sentences.

The shipped voice (docs/shipped-voice.md) lives in ``trtgen/voices/default/`` and is loaded by
:func:`trtgen.engine.artifact.default_model_dir`; its style clips (one per espeak-ng voice of its
training corpus, described in ``trtgen/voices/styles/styles.json``) and the demo sentences are found
here, so that the demo, the exporter's calibration, the tests and a Python user reach them one way.
"""

from __future__ import annotations

from pathlib import Path

from trtgen.errors import ModelError

__all__ = ["VOICES_DIR", "shipped_styles", "demo_sentences"]

VOICES_DIR = Path(__file__).resolve().parent.parent / "voices"
"""The package's ``voices/`` directory: ``default/`` (the model), ``styles/``, ``demo_sentences.txt``."""


def shipped_styles() -> dict[str, Path]:
    """The reference clips shipped with the package, by name (``"us-m3"``: the clip ``us-m3.wav``), in
    name order; each is a valid ``style`` for :meth:`trtgen.Voice.synthesize`."""
    clips = sorted((VOICES_DIR / "styles").glob("*.wav"))
    if not clips:
        raise ModelError(f"no style clips in {VOICES_DIR / 'styles'}: this installation of trtgen is incomplete")
    return {clip.stem: clip for clip in clips}


def demo_sentences() -> list[str]:
    """The sentences ``trtgen demo`` speaks (``voices/demo_sentences.txt``, ``#`` lines are comments)."""
    path = VOICES_DIR / "demo_sentences.txt"
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]
