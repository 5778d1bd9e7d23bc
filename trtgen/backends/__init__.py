"""Runtime backends behind one interface (:mod:`trtgen.backends.base`)."""

from __future__ import annotations

import importlib.util
import logging

from trtgen.artifact import Model
from trtgen.backends.base import Backend, BackendUnavailable, GraphRunner

logger = logging.getLogger(__name__)

__all__ = ["Backend", "BackendUnavailable", "GraphRunner", "create_backend", "BACKENDS"]

BACKENDS = ("auto", "onnxruntime", "tensorrt")


def create_backend(model: Model, backend: str = "auto", device: str = "cpu", *, threads: int | None = None) -> Backend:
    """``auto`` picks TensorRT on a GPU when it is installed, else ONNX Runtime."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; choose cpu or cuda")
    if backend == "auto":
        backend = "tensorrt" if device == "cuda" and importlib.util.find_spec("tensorrt") else "onnxruntime"
        logger.info("backend: %s on %s", backend, device)
    if backend == "tensorrt":
        if device != "cuda":
            raise BackendUnavailable("TensorRT runs on a GPU: use --device cuda")
        from trtgen.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(model)
    from trtgen.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model, device, threads=threads)
