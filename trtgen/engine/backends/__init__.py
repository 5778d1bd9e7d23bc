"""Runtime backends behind one interface (:mod:`trtgen.engine.backends.base`)."""

from __future__ import annotations

import importlib.util
import logging

from trtgen.engine.artifact import Model
from trtgen.engine.backends.base import Backend, BackendUnavailable, GraphRunner
from trtgen.errors import UsageError

logger = logging.getLogger(__name__)

__all__ = ["Backend", "BackendUnavailable", "GraphRunner", "create_backend", "resolve_backend", "BACKENDS"]

BACKENDS = ("auto", "onnxruntime", "tensorrt")


def resolve_backend(backend: str = "auto", device: str = "cpu") -> str:
    """The backend ``backend`` names on ``device`` here: ``auto`` is TensorRT on a GPU when it is
    installed, else ONNX Runtime."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}; choose cpu or cuda")
    if backend == "auto":
        return "tensorrt" if device == "cuda" and importlib.util.find_spec("tensorrt") else "onnxruntime"
    return backend


def create_backend(model: Model, backend: str = "auto", device: str = "cpu", *, threads: int | None = None) -> Backend:
    """The backend :func:`resolve_backend` names, loaded for ``model``."""
    backend = resolve_backend(backend, device)
    logger.debug("backend: %s on %s", backend, device)
    if backend == "tensorrt":
        if device != "cuda":
            raise BackendUnavailable("TensorRT runs on a GPU: use --device cuda")
        from trtgen.engine.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(model)
    from trtgen.engine.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model, device, threads=threads)
