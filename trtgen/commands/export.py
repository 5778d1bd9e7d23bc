"""``trtgen export``: the command's door into the TensorFlow side (``trtgen_export``), imported only here.

The runtime never needs TensorFlow; a user who runs ``trtgen export`` without the exporter's packages
gets a one-line reason (exit 2) instead of an ImportError.
"""

from __future__ import annotations

from typing import Any, Callable

from trtgen.errors import UsageError

__all__ = ["run_export_command"]


def run_export_command(log: Callable[[str], None], **request: Any) -> Any:
    """Build ``trtgen_export.pipeline.ExportRequest(**request)`` and run it; returns its ``ExportReport``."""
    try:
        from trtgen_export.pipeline import ExportRequest, run_export
    except ImportError as error:
        raise UsageError(f"trtgen export needs the exporter's packages ({error.name} is missing): pip install 'trtgen[export]'") from None
    return run_export(ExportRequest(**request), log=log)
