"""``trtgen export``: the command's door into the TensorFlow side (``trtgen_export``), imported only here.

The runtime never needs TensorFlow; a user who runs ``trtgen export`` (or ``trtgen eval
--compare-random``) without the exporter's packages gets a one-line reason (exit 2) instead of an
ImportError.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from trtgen.engine.artifact import ModelCard
from trtgen.errors import UsageError

__all__ = ["run_export_command", "export_random_model"]

logger = logging.getLogger(__name__)


def _missing(command: str, error: ImportError) -> UsageError:
    return UsageError(f"{command} needs the exporter's packages ({error.name} is missing): pip install 'trtgen[export]'")


def run_export_command(log: Callable[[str], None], **request: Any) -> Any:
    """Build ``trtgen_export.pipeline.ExportRequest(**request)`` and run it; returns its ``ExportReport``."""
    try:
        from trtgen_export.pipeline import ExportRequest, run_export
    except ImportError as error:
        raise _missing("trtgen export", error) from None
    return run_export(ExportRequest(**request), log=log)


def export_random_model(card: ModelCard, directory: Path, seed: int) -> Path:
    """Export a randomly initialised model of ``card``'s configuration, audio, text front end and opset
    into ``directory`` (the baseline of ``trtgen eval --compare-random``); returns ``directory``.

    Args:
        card: the card of the model the random one stands beside.
        directory: where the model is written (created if missing).
        seed: seed of :func:`trtgen_export.variables.random_weights`.
    """
    try:
        from trtgen_export.onnx_export import ExportOptions, export_model
        from trtgen_export.variables import random_weights
    except ImportError as error:
        raise _missing("trtgen eval --compare-random", error) from None
    logger.info("exporting a randomly initialised %r model (seed %d) for comparison", card.model.name, seed)
    export_model(
        random_weights(card.model, seed),
        card.model,
        directory,
        audio=card.audio,
        text=card.text,
        options=ExportOptions(opset=card.opset, name=f"random-{card.model.name}", source={"random_init": card.model.name, "seed": seed}),
    )
    return Path(directory)
