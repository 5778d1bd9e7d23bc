"""ONNX Runtime backend: the CPU path (tested in CI) and the CUDA execution provider.

On the CPU, numpy arrays go in and out without copies. On CUDA, inputs and outputs are CuPy arrays
bound through ``IOBinding`` so that the decoder state never leaves the GPU between chunks.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

import numpy as np

from trtgen.engine.artifact import Model
from trtgen.engine.backends.base import BackendUnavailable
from trtgen.errors import UsageError

logger = logging.getLogger(__name__)

__all__ = ["OnnxRuntimeBackend"]

GPU_INSTALL_HINT = (
    "install the GPU runtime instead of the CPU one: pip uninstall -y onnxruntime && "
    "pip install 'onnxruntime-gpu[cuda,cudnn]' cupy-cuda12x (see README, 'Install')"
)


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable("onnxruntime is not installed: pip install 'trtgen[cpu]' (or [gpu])") from None
    return onnxruntime


_ORT_TYPES = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(bool)": np.dtype(np.bool_),
}


class _CpuRunner:
    def __init__(self, name: str, session: Any) -> None:
        self.name = name
        self.session = session
        self.input_names = tuple(i.name for i in session.get_inputs())
        self.output_names = tuple(o.name for o in session.get_outputs())

    def run(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        names = list(outputs or self.output_names)
        return dict(zip(names, self.session.run(names, dict(feeds))))


class _CudaRunner(_CpuRunner):
    """Binds CuPy arrays by device pointer; outputs come back as CuPy views of ORT's buffers."""

    def __init__(self, name: str, session: Any, device_id: int, cupy: Any) -> None:
        super().__init__(name, session)
        self.device_id = device_id
        self.cupy = cupy

    def run(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        cp = self.cupy
        binding = self.session.io_binding()
        kept = []
        for name, array in feeds.items():
            array = cp.ascontiguousarray(cp.asarray(array))
            kept.append(array)
            binding.bind_input(name, "cuda", self.device_id, array.dtype, array.shape, array.data.ptr)
        names = list(outputs or self.output_names)
        for name in names:
            binding.bind_output(name, "cuda", self.device_id)
        cp.cuda.get_current_stream().synchronize()
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return {name: self._as_cupy(value) for name, value in zip(names, binding.get_outputs())}

    def _as_cupy(self, value: Any) -> Any:
        cp = self.cupy
        dtype = _ORT_TYPES[value.data_type()]
        shape = tuple(value.shape())
        size = int(np.prod(shape)) * dtype.itemsize
        memory = cp.cuda.UnownedMemory(value.data_ptr(), size, owner=value, device_id=self.device_id)
        return cp.ndarray(shape, dtype=dtype, memptr=cp.cuda.MemoryPointer(memory, 0))


class OnnxRuntimeBackend:
    """Runs the model directory's ONNX graphs with ONNX Runtime."""

    name = "onnxruntime"

    def __init__(self, model: Model, device: str = "cpu", *, threads: int | None = None, device_id: int = 0) -> None:
        ort = _import_onnxruntime()
        self.model = model
        self.device = device
        self.device_id = device_id
        available = ort.get_available_providers()
        if device == "cpu":
            self.providers: list[Any] = ["CPUExecutionProvider"]
            self.xp = np
        elif device == "cuda":
            if "CUDAExecutionProvider" not in available:
                raise BackendUnavailable(f"onnxruntime here offers {available}, not CUDA: {GPU_INSTALL_HINT}")
            try:
                import cupy
            except ImportError:
                raise BackendUnavailable(f"CuPy is needed for --device cuda: {GPU_INSTALL_HINT}") from None
            if hasattr(ort, "preload_dlls"):
                # CUDA and cuDNN from pip (onnxruntime-gpu[cuda,cudnn]) are not on the loader's path
                # unless PyTorch loaded them first; ONNX Runtime >= 1.21 finds them itself on request.
                ort.preload_dlls()
            # Plain float32 (no TF32 matrix products): the decode is autoregressive and a stop moves with rounding.
            self.providers = [("CUDAExecutionProvider", {"device_id": device_id, "use_tf32": 0}), "CPUExecutionProvider"]
            self.xp = cupy
        else:
            raise UsageError(f"unknown device {device!r} (cpu or cuda)")
        self.options = ort.SessionOptions()
        self.options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.options.intra_op_num_threads = threads or 0
        self.options.log_severity_level = 3
        self.threads = threads
        self._ort = ort

    def load(self, graph: str, *, threads: int | None = None, spinning: bool = True) -> Any:
        """A runner for ``graph``; ``threads`` overrides the backend's intra-op thread count for it;
        ``spinning=False``: its idle workers sleep (ONNX Runtime's ``allow_spinning``), for a graph that
        runs beside others. Neither changes a result (docs/throughput.md)."""
        path = self.model.graph_path(graph)
        options = self.options
        if threads is not None or not spinning:
            options = self._ort.SessionOptions()
            options.graph_optimization_level = self.options.graph_optimization_level
            options.log_severity_level = self.options.log_severity_level
            options.intra_op_num_threads = self.options.intra_op_num_threads if threads is None else threads
            if not spinning:
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = self._ort.InferenceSession(os.fspath(path), options, providers=self.providers)
        if self.device == "cuda":
            if "CUDAExecutionProvider" not in session.get_providers():
                # ONNX Runtime falls back to the CPU silently when the CUDA provider cannot load its libraries.
                raise BackendUnavailable(
                    f"{path}: ONNX Runtime could not start its CUDA provider (CUDA 12/13 or cuDNN 9 libraries "
                    f"missing or mismatched; the log above says which): {GPU_INSTALL_HINT}"
                )
            return _CudaRunner(graph, session, self.device_id, self.xp)
        return _CpuRunner(graph, session)

    def describe(self) -> str:
        return f"onnxruntime {self._ort.__version__} ({self.providers[0] if isinstance(self.providers[0], str) else self.providers[0][0]})"
