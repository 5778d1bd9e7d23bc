"""Training the small default voice on this CPU: a corpus that espeak-ng speaks (no downloads).

``sentences`` writes the text (a seeded grammar), ``corpus`` renders it in several espeak-ng voices
and caches the training features. Submodules are not imported here, so ``import trtgen_export.train``
stays cheap and does not need espeak-ng.
"""

from pathlib import Path

SHIPPED_VOICE_CONFIG = "voice-ipa"
"""The model preset of the shipped voice (``trtgen.engine.config.MODEL_PRESETS``)."""

SHIPPED_VOICE_CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints" / "voice"
"""The shipped voice's inference-only TF1 checkpoint directory (its state file names the checkpoint;
``trtgen_export.checkpoint.resolve_checkpoint`` and every reader accept the directory), the source of
``trtgen/voices/default``."""

