"""trtgen: fast synthetic speech datasets for ASR training from a Tacotron 2 + GST model.

    >>> from trtgen import Voice, shipped_styles
    >>> speech = Voice.load().synthesize("Hello there.", style=shipped_styles()["us-m3"])
    >>> speech.sample_rate
    16000

The package is laid out as the pipeline: ``trtgen.engine`` (front ends, model card, backends, decode
loop, vocoder, the :class:`Voice` API), ``trtgen.corpora`` (readers), ``trtgen.commands`` (what the
``trtgen`` command runs), ``trtgen.evaluation`` (``trtgen eval``). It never imports TensorFlow; the
exporter is the separate package ``trtgen_export`` (folder ``export/``).

The names below are imported on first use (PEP 562), so that ``trtgen --help`` does not load numpy and
ONNX Runtime; ``dir(trtgen)`` and type checkers (``py.typed``) see them all the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Voice": "trtgen.engine.voice",
    "VoiceSpec": "trtgen.engine.voice",
    "Row": "trtgen.engine.rows",
    "Speech": "trtgen.engine.rows",
    "Rejected": "trtgen.engine.rows",
    "shipped_styles": "trtgen.engine.shipped",
    "StyleBlend": "trtgen.engine.styles",
    "StyleTokens": "trtgen.engine.styles",
    "draw_style": "trtgen.engine.styles",
    "TrtgenError": "trtgen.errors",
    "UsageError": "trtgen.errors",
    "TextError": "trtgen.errors",
    "StyleError": "trtgen.errors",
    "SynthesisError": "trtgen.errors",
    "ModelError": "trtgen.errors",
    "RunError": "trtgen.errors",
    "OutputError": "trtgen.errors",
    "Interrupted": "trtgen.errors",
}
"""Where each public name but ``__version__`` is defined (``__all__`` lists the same names)."""

__all__ = [
    "Voice", "VoiceSpec", "Row", "Speech", "Rejected", "shipped_styles", "StyleBlend", "StyleTokens", "draw_style", "TrtgenError", "UsageError", "TextError",
    "StyleError", "SynthesisError", "ModelError", "RunError", "OutputError", "Interrupted", "__version__",
]

if TYPE_CHECKING:
    from trtgen.engine.shipped import shipped_styles
    from trtgen.engine.styles import StyleBlend, StyleTokens, draw_style
    from trtgen.engine.rows import Rejected, Row, Speech
    from trtgen.engine.voice import Voice, VoiceSpec
    from trtgen.errors import (
        Interrupted,
        ModelError,
        OutputError,
        RunError,
        StyleError,
        SynthesisError,
        TextError,
        TrtgenError,
        UsageError,
    )


def __getattr__(name: str) -> Any:
    """Import the API on first use, so that ``trtgen --help`` does not load numpy and ONNX Runtime."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'trtgen' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's own names and the lazy ones, as if they were imported already."""
    return sorted(set(globals()) | set(_LAZY))
