"""Training the small default voice on this CPU: a corpus that espeak-ng speaks (no downloads).

``sentences`` writes the text (a seeded grammar), ``corpus`` renders it in several espeak-ng voices
and caches the training features. Submodules are not imported here, so ``import export.train``
stays cheap and does not need espeak-ng.
"""

from pathlib import Path

SHIPPED_VOICE_CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints" / "voice"
"""The shipped voice's inference-only TF1 checkpoint, the source of ``trtgen/voices/default``."""


def shipped_voice_checkpoint() -> Path:
    """The checkpoint prefix (``.../model.ckpt-N``) named by the directory's TF1 ``checkpoint`` file."""
    for line in (SHIPPED_VOICE_CHECKPOINTS / "checkpoint").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model_checkpoint_path":
            return SHIPPED_VOICE_CHECKPOINTS / value.strip().strip('"')
    raise FileNotFoundError(f"{SHIPPED_VOICE_CHECKPOINTS / 'checkpoint'}: no model_checkpoint_path line")
