"""trtgen: fast synthetic speech datasets for ASR training from a Tacotron 2 + GST model.

    from trtgen import Voice
    speech = Voice.load().synthesize("Hello there.", style="clip.wav")

The package is laid out as the pipeline: ``trtgen.engine`` (front ends, model card, backends, decode
loop, vocoder, the :class:`Voice` API), ``trtgen.corpora`` (readers), ``trtgen.commands`` (what the
``trtgen`` command runs), ``trtgen.evaluation`` (``trtgen eval``). It never imports TensorFlow; the
exporter is the separate package ``trtgen_export`` (folder ``export/``).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Voice", "Row", "Speech", "Rejected", "TrtgenError", "UsageError", "ModelError", "RunError", "__version__"]

_LAZY = {
    "Voice": "trtgen.engine.voice",
    "Row": "trtgen.engine.voice",
    "Speech": "trtgen.engine.voice",
    "Rejected": "trtgen.engine.voice",
    "TrtgenError": "trtgen.errors",
    "UsageError": "trtgen.errors",
    "ModelError": "trtgen.errors",
    "RunError": "trtgen.errors",
}


def __getattr__(name: str) -> Any:
    """Import the API on first use, so that ``trtgen --help`` does not load numpy and ONNX Runtime."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trtgen' has no attribute {name!r}")
