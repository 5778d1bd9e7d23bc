"""TensorRT backend: engines built from the model directory's own ONNX graphs, run on CuPy arrays.

An engine is a build output tied to one GPU model, one TensorRT version and one precision, so each
one lives beside a JSON build record::

    <model_dir>/tensorrt/<gpu-slug>-<tensorrt-version>-<fp16|fp32>/<graph>.engine
    <model_dir>/tensorrt/<gpu-slug>-<tensorrt-version>-<fp16|fp32>/<graph>.json

and is loaded only when that record matches this machine, the model's ONNX digests and the
optimisation profile asked for; a missing, stale or foreign engine is rebuilt (or refused with
``EngineOptions(build=False)``), never trusted by its file name. Engines and the timing cache are
written atomically and ignored by git.

TensorRT and CuPy are imported lazily: this module imports anywhere, and its build-record logic is
tested without a GPU. The calls follow the TensorRT 10 Python API (named I/O tensors:
``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``); TensorRT 11 removed the
``BuilderFlag.FP16`` used here, so other major versions are refused with an explanation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from trtgen import __version__
from trtgen.engine.artifact import GRAPH_NAMES, GraphSpec, Model
from trtgen.engine.backends.base import BackendUnavailable
from trtgen.fileio import atomic_write
from trtgen.errors import ModelError, RunError, UsageError

logger = logging.getLogger(__name__)

__all__ = [
    "INSTALL_HINT",
    "SUPPORTED_TENSORRT_MAJOR",
    "EngineOptions",
    "DeviceInfo",
    "EngineKey",
    "BuildRecord",
    "EngineRecord",
    "EnginePaths",
    "StaleEngineError",
    "EngineBuildError",
    "ProfileError",
    "TensorRTBackend",
    "build_engines",
    "profile_bounds",
    "input_profiles",
    "engine_key",
    "engine_paths",
    "timing_cache_path",
    "stale_reasons",
    "check_input_shape",
]

INSTALL_HINT = (
    "install TensorRT 10 for CUDA 12 and CuPy: pip install 'tensorrt-cu12>=10,<11' cupy-cuda12x "
    "(NVIDIA publishes the TensorRT wheels on PyPI; if pip cannot find them, add "
    "--extra-index-url https://pypi.nvidia.com)"
)
SUPPORTED_TENSORRT_MAJOR = 10
RECORD_SCHEMA = 1
ENGINE_ROOT = "tensorrt"
"""Folder of a model directory that holds every engine built for it."""


class StaleEngineError(ModelError):
    """The engine is missing or was built for another GPU, TensorRT, model or profile, and building is off."""


class EngineBuildError(RunError):
    """TensorRT could not parse a graph or build (or deserialise) an engine."""


class ProfileError(UsageError):
    """An input shape lies outside the engine's optimisation profile (the message names the axis)."""


# ---------------------------------------------------------------------------- options and records
@dataclass(frozen=True)
class EngineOptions:
    """How engines are built; the precision and the profile bounds are part of an engine's identity."""

    fp16: bool = False
    """Let TensorRT pick FP16 kernels (``BuilderFlag.FP16``); I/O tensors stay as in the ONNX graphs."""
    workspace_bytes: int | None = None
    """Limit of TensorRT's workspace memory pool; None keeps TensorRT's default (the device's memory)."""
    profiles: Mapping[str, Sequence[int]] | None = None
    """Per-axis ``[min, opt, max]`` overriding the card's ``defaults["tensorrt_profiles"]``."""
    timing_cache: Path | None = None
    """Timing cache file shared by every build; default ``<model>/tensorrt/<gpu>-<trt>.timing-cache``."""
    optimization_level: int = 3
    """``builder_optimization_level``, 0-5: higher builds slower and may run faster (TensorRT's default 3)."""
    build: bool = True
    """Build missing or stale engines on load; False refuses them with :class:`StaleEngineError`."""
    rebuild: bool = False
    """:func:`build_engines` rebuilds engines even when their record matches."""
    graphs: tuple[str, ...] = GRAPH_NAMES
    """Graphs :func:`build_engines` builds (the runtime uses all but ``decoder_step``, kept for benchmarks)."""

    @property
    def precision(self) -> str:
        return "fp16" if self.fp16 else "fp32"


@dataclass(frozen=True)
class DeviceInfo:
    """The GPU and CUDA an engine is built on or loaded on."""

    gpu_name: str
    compute_capability: str
    cuda_runtime: str
    cuda_driver: str


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on: any difference means it must be rebuilt."""

    graph: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    onnx_sha256: str
    external_data: dict[str, str]
    """Digests of the model's shared weight files (decoder graphs keep their weights there)."""
    profiles: dict[str, list[list[int]]]
    """Input name -> ``[min_shape, opt_shape, max_shape]``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "graph": self.graph,
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "precision": self.precision,
            "onnx_sha256": self.onnx_sha256,
            "external_data": dict(sorted(self.external_data.items())),
            "profiles": {name: [list(s) for s in shapes] for name, shapes in self.profiles.items()},
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> EngineKey:
        return EngineKey(
            graph=str(data["graph"]),
            tensorrt_version=str(data["tensorrt_version"]),
            gpu_name=str(data["gpu_name"]),
            compute_capability=str(data["compute_capability"]),
            precision=str(data["precision"]),
            onnx_sha256=str(data["onnx_sha256"]),
            external_data={str(k): str(v) for k, v in data["external_data"].items()},
            profiles={str(k): [[int(d) for d in s] for s in v] for k, v in data["profiles"].items()},
        )


@dataclass(frozen=True)
class BuildRecord:
    """``<graph>.json`` beside an engine: what it was built from and on, and how."""

    key: EngineKey
    engine_sha256: str
    cuda_runtime: str = ""
    cuda_driver: str = ""
    trtgen_version: str = __version__
    build_seconds: float = 0.0
    built_at: str = ""
    workspace_bytes: int | None = None
    optimization_level: int = 3
    schema_version: int = RECORD_SCHEMA

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            **self.key.to_json(),
            "engine_sha256": self.engine_sha256,
            "cuda_runtime": self.cuda_runtime,
            "cuda_driver": self.cuda_driver,
            "trtgen_version": self.trtgen_version,
            "build_seconds": round(self.build_seconds, 3),
            "built_at": self.built_at,
            "workspace_bytes": self.workspace_bytes,
            "optimization_level": self.optimization_level,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> BuildRecord:
        return BuildRecord(
            key=EngineKey.from_json(data),
            engine_sha256=str(data["engine_sha256"]),
            cuda_runtime=str(data.get("cuda_runtime", "")),
            cuda_driver=str(data.get("cuda_driver", "")),
            trtgen_version=str(data.get("trtgen_version", "unknown")),
            build_seconds=float(data.get("build_seconds", 0.0)),
            built_at=str(data.get("built_at", "")),
            workspace_bytes=data.get("workspace_bytes"),
            optimization_level=int(data.get("optimization_level", 3)),
            schema_version=int(data["schema_version"]),
        )

    def write(self, path: Path) -> None:
        with atomic_write(path) as handle:
            handle.write(json.dumps(self.to_json(), indent=2) + "\n")

    @staticmethod
    def read(path: Path) -> BuildRecord:
        """Raises ValueError (with the path) for a record that is not valid JSON or lacks a field."""
        try:
            return BuildRecord.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise UsageError(f"{path}: not a trtgen engine build record ({error!r})") from None


@dataclass(frozen=True)
class EngineRecord:
    """One engine of :func:`build_engines`: where it is and whether it was built now."""

    graph: str
    engine: Path
    record: Path
    build_seconds: float
    built: bool
    """False when an up-to-date engine was kept."""


@dataclass(frozen=True)
class EnginePaths:
    directory: Path
    engine: Path
    record: Path


# ---------------------------------------------------------------------------- pure helpers
def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "gpu"


def engine_paths(model_dir: Path, graph: str, device: DeviceInfo, tensorrt_version: str, precision: str) -> EnginePaths:
    directory = Path(model_dir) / ENGINE_ROOT / f"{_slug(device.gpu_name)}-{tensorrt_version}-{precision}"
    return EnginePaths(directory, directory / f"{graph}.engine", directory / f"{graph}.json")


def timing_cache_path(model_dir: Path, device: DeviceInfo, tensorrt_version: str) -> Path:
    """One cache per GPU and TensorRT version (its entries are valid only there), shared by both precisions."""
    return Path(model_dir) / ENGINE_ROOT / f"{_slug(device.gpu_name)}-{tensorrt_version}.timing-cache"


def profile_bounds(defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, tuple[int, int, int]]:
    """Per-axis ``(min, opt, max)``: the card's defaults updated by ``overrides``, validated."""
    bounds = {}
    for axis, value in {**dict(defaults), **dict(overrides or {})}.items():
        if isinstance(value, Mapping):
            value = [value.get("min"), value.get("opt"), value.get("max")]
        try:
            low, opt, high = (int(v) for v in value)
        except (TypeError, ValueError):
            raise UsageError(f"TensorRT profile for axis {axis!r}: expected [min, opt, max], got {value!r}") from None
        if not 1 <= low <= opt <= high:
            raise UsageError(f"TensorRT profile for axis {axis!r}: need 1 <= min <= opt <= max, got {[low, opt, high]}")
        bounds[str(axis)] = (low, opt, high)
    return bounds


def input_profiles(graph: str, spec: GraphSpec, bounds: Mapping[str, tuple[int, int, int]]) -> dict[str, list[list[int]]]:
    """``input -> [min_shape, opt_shape, max_shape]`` from the card's named dynamic axes and ``bounds``."""
    profiles = {}
    for tensor in spec.inputs:
        shapes: list[list[int]] = [[], [], []]
        for dim in tensor.shape:
            if isinstance(dim, str):
                if dim not in bounds:
                    raise UsageError(
                        f"{graph}: input {tensor.name} has the dynamic axis {dim!r} but no profile bounds name it; "
                        f"add it to the card's defaults.tensorrt_profiles or EngineOptions(profiles={{{dim!r}: [min, opt, max]}})"
                    )
                triple = bounds[dim]
            else:
                triple = (int(dim),) * 3
            for shape, size in zip(shapes, triple):
                shape.append(size)
        profiles[tensor.name] = shapes
    return profiles


def engine_key(model: Model, graph: str, options: EngineOptions, *, tensorrt_version: str, device: DeviceInfo) -> EngineKey:
    """The identity an engine of ``graph`` must have on ``device`` with ``options``."""
    if graph not in model.card.graphs:
        raise KeyError(f"{model.directory}: no graph {graph!r} in the model card (has {', '.join(model.card.graphs)})")
    spec = model.card.graphs[graph]
    bounds = profile_bounds(model.card.defaults.get("tensorrt_profiles", {}), options.profiles)
    return EngineKey(
        graph=graph,
        tensorrt_version=tensorrt_version,
        gpu_name=device.gpu_name,
        compute_capability=device.compute_capability,
        precision=options.precision,
        onnx_sha256=spec.sha256,
        external_data=dict(model.card.external_data),
        profiles=input_profiles(graph, spec, bounds),
    )


def stale_reasons(record: BuildRecord | None, expected: EngineKey) -> list[str]:
    """Why an engine with build ``record`` must not be used where ``expected`` holds; empty when it may.

    Engines are specific to the TensorRT version and the GPU model they were built with; the
    digests tie them to the exact graphs and weights, the profiles to the shapes they accept.
    """
    if record is None:
        return ["no build record"]
    if record.schema_version != RECORD_SCHEMA:
        return [f"build record schema {record.schema_version}, this trtgen writes {RECORD_SCHEMA}"]
    built, reasons = record.key, []
    labels = {
        "graph": "graph",
        "tensorrt_version": "TensorRT version",
        "gpu_name": "GPU",
        "compute_capability": "compute capability",
        "precision": "precision",
        "onnx_sha256": "ONNX graph digest",
    }
    for name, label in labels.items():
        have, want = getattr(built, name), getattr(expected, name)
        if have != want:
            reasons.append(f"{label} {have} (built) != {want} (here)")
    if built.external_data != expected.external_data:
        reasons.append("shared weight files differ from the model card's digests")
    if built.profiles != expected.profiles:
        changed = sorted(n for n in set(built.profiles) | set(expected.profiles) if built.profiles.get(n) != expected.profiles.get(n))
        reasons.append(f"optimisation profile differs for {', '.join(changed)}")
    return reasons


def check_input_shape(
    graph: str,
    name: str,
    shape: Sequence[int],
    minimum: Sequence[int],
    maximum: Sequence[int],
    axis_names: Sequence[int | str] | None = None,
) -> None:
    """Raise :class:`ProfileError` naming the axis when ``shape`` is outside ``[minimum, maximum]``."""
    if len(shape) != len(minimum):
        raise ProfileError(f"{graph}: input {name} has rank {len(shape)} {tuple(shape)}; the engine expects rank {len(minimum)}")
    for index, (size, low, high) in enumerate(zip(shape, minimum, maximum)):
        if not low <= size <= high:
            label = axis_names[index] if axis_names is not None and index < len(axis_names) else None
            axis = f"axis {index} ({label!r})" if isinstance(label, str) else f"axis {index}"
            hint = f"; rebuild with EngineOptions(profiles={{{label!r}: [min, opt, max]}})" if isinstance(label, str) else ""
            raise ProfileError(
                f"{graph}: input {name} {axis} is {size}, outside the engine's optimisation profile [{low}, {high}]{hint}"
            )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------- TensorRT and CuPy
def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise BackendUnavailable(f"TensorRT is not installed: {INSTALL_HINT}") from None
    major = int(str(tensorrt.__version__).split(".")[0])
    if major != SUPPORTED_TENSORRT_MAJOR:
        raise BackendUnavailable(
            f"TensorRT {tensorrt.__version__} is installed, but trtgen's TensorRT backend is written for "
            f"TensorRT {SUPPORTED_TENSORRT_MAJOR}.x (TensorRT 11 removed the FP16 builder flag it uses): {INSTALL_HINT}"
        )
    return tensorrt


def _import_cupy(device_id: int) -> Any:
    try:
        import cupy
    except ImportError:
        raise BackendUnavailable(f"CuPy is needed by the TensorRT backend (tensors stay on the GPU): {INSTALL_HINT}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDARuntimeError when there is no driver or device
        raise BackendUnavailable(f"no usable CUDA GPU for TensorRT: {error}") from None
    if not 0 <= device_id < count:
        raise BackendUnavailable(f"CUDA device {device_id} requested, {count} present")
    return cupy


def _cuda_version(number: int) -> str:
    return f"{number // 1000}.{number % 1000 // 10}"


def _device_info(cupy: Any, device_id: int) -> DeviceInfo:
    properties = cupy.cuda.runtime.getDeviceProperties(device_id)
    name = properties["name"]
    return DeviceInfo(
        gpu_name=name.decode() if isinstance(name, bytes) else str(name),
        compute_capability=f"{properties['major']}.{properties['minor']}",
        cuda_runtime=_cuda_version(cupy.cuda.runtime.runtimeGetVersion()),
        cuda_driver=_cuda_version(cupy.cuda.runtime.driverGetVersion()),
    )


def _parser_errors(parser: Any) -> list[str]:
    errors = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        node = getattr(error, "node_name", lambda: "")() or f"node {error.node()}"
        operator = getattr(error, "node_operator", lambda: "")()
        errors.append(f"{node}{f' ({operator})' if operator else ''}: {error.desc()}")
    return errors


def _load_timing_cache(config: Any, path: Path) -> Any:
    """Attach the shared timing cache (empty if absent or unusable) to ``config``; keep the returned
    object alive until the build ends (TensorRT: "the cache must not be destroyed until after the
    engine is built")."""
    blob = path.read_bytes() if path.is_file() else b""
    try:
        cache = config.create_timing_cache(blob)
        attached = cache is not None and config.set_timing_cache(cache, ignore_mismatch=False)
    except Exception as error:  # a truncated or foreign file: rebuild the cache, not fail the build
        logger.debug("timing cache %s: %s", path, error)
        attached = False
    if not attached:
        if blob:
            logger.warning("%s: timing cache not usable with this TensorRT/GPU; starting an empty one", path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


_ALIGNMENT = 256
"""Bytes: I/O addresses are kept at least this aligned (CuPy's pool allocates at 512), so an offset view
fed by a caller is copied rather than handed to TensorRT misaligned."""


class _EngineRunner:
    """One engine with its execution context: CuPy (or numpy) arrays in, CuPy arrays out.

    Inputs are cast to the engine's dtypes and checked against its profile; feeds the engine does not
    take are ignored. Each call waits for the caller's stream, runs on the runner's own stream and
    synchronises it, so outputs are ready on return. Not thread-safe: one runner per thread.
    """

    def __init__(self, name: str, engine: Any, spec: GraphSpec, trt: Any, cupy: Any, device_id: int, runtime: Any) -> None:
        self.name = name
        self.engine = engine
        self.runtime = runtime  # the runtime must outlive the engines it deserialised
        self.cupy = cupy
        self.device_id = device_id
        self.context = engine.create_execution_context()
        if self.context is None:
            raise EngineBuildError(f"{name}: TensorRT could not create an execution context (GPU memory?)")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.input_names = tuple(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_names = tuple(n for n in names if n not in self.input_names)
        self.dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        self.profile = {n: [tuple(s) for s in engine.get_tensor_profile_shape(n, 0)] for n in self.input_names}
        self.axis_names = {t.name: t.shape for t in spec.inputs}
        shape_inputs = [n for n in self.input_names if engine.is_shape_inference_io(n)]
        if shape_inputs:
            raise EngineBuildError(f"{name}: shape-tensor inputs {shape_inputs} need host buffers, which this runner does not bind")
        with cupy.cuda.Device(device_id):
            self.stream = cupy.cuda.Stream(non_blocking=True)

    def run(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        cp = self.cupy
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise KeyError(f"{self.name}: inputs {missing} not fed (expects {list(self.input_names)})")
        wanted = list(outputs or self.output_names)
        unknown = [n for n in wanted if n not in self.output_names]
        if unknown:
            raise KeyError(f"{self.name}: no outputs {unknown} (has {list(self.output_names)})")
        with cp.cuda.Device(self.device_id):
            inputs = {}
            for name in self.input_names:
                array = cp.ascontiguousarray(cp.asarray(feeds[name]))
                if array.dtype != self.dtypes[name]:
                    array = array.astype(self.dtypes[name])
                elif array.data.ptr % _ALIGNMENT:
                    array = array.copy()
                low, _, high = self.profile[name]
                check_input_shape(self.name, name, array.shape, low, high, self.axis_names.get(name))
                if not self.context.set_input_shape(name, array.shape):
                    raise ProfileError(f"{self.name}: TensorRT refused shape {array.shape} for input {name}")
                self.context.set_tensor_address(name, array.data.ptr)
                inputs[name] = array  # kept alive until the stream is synchronised
            unresolved = self.context.infer_shapes()
            if unresolved:
                raise RuntimeError(f"{self.name}: TensorRT cannot infer the shapes of {list(unresolved)}")
            cp.cuda.get_current_stream().synchronize()  # inputs written on the caller's stream are ready
            results = {}
            with self.stream:  # CuPy's pool hands out memory ordered on this stream
                for name in self.output_names:
                    shape = tuple(self.context.get_tensor_shape(name))
                    if any(size < 0 for size in shape):
                        raise RuntimeError(f"{self.name}: output {name} has a data-dependent shape {shape}; this runner needs static output shapes")
                    results[name] = cp.empty(shape, dtype=self.dtypes[name])
                    self.context.set_tensor_address(name, results[name].data.ptr)
            if not self.context.execute_async_v3(self.stream.ptr):
                raise RuntimeError(f"{self.name}: TensorRT execution failed (see the TensorRT log above)")
            self.stream.synchronize()
        return {name: results[name] for name in wanted}


class TensorRTBackend:
    """Runs the model directory's graphs as TensorRT engines built for this GPU (see module docstring)."""

    name = "tensorrt"
    device = "cuda"
    threads = None

    def __init__(self, model: Model, options: EngineOptions | None = None, *, device_id: int = 0) -> None:
        self._trt = _import_tensorrt()
        self.xp = _import_cupy(device_id)
        self.model = model
        self.options = options or EngineOptions()
        self.device_id = device_id
        self.device_info = _device_info(self.xp, device_id)
        self.tensorrt_version = str(self._trt.__version__)
        self._logger = self._trt.Logger(self._trt.Logger.WARNING)
        with self.xp.cuda.Device(device_id):
            self._runtime = self._trt.Runtime(self._logger)

    def key(self, graph: str) -> EngineKey:
        return engine_key(self.model, graph, self.options, tensorrt_version=self.tensorrt_version, device=self.device_info)

    def paths(self, graph: str) -> EnginePaths:
        return engine_paths(self.model.directory, graph, self.device_info, self.tensorrt_version, self.options.precision)

    def ensure_engine(self, graph: str, *, force: bool = False) -> tuple[bytes, EngineRecord]:
        """The serialised engine of ``graph``: the stored one when its record matches, else a new build."""
        key, paths = self.key(graph), self.paths(graph)
        data, reasons = (None, ["rebuild requested"]) if force else self._stored(paths, key)
        if data is not None:
            return data, EngineRecord(graph, paths.engine, paths.record, 0.0, built=False)
        if not self.options.build:
            raise StaleEngineError(
                f"{paths.engine}: not usable here ({'; '.join(reasons)}); build it with "
                "`trtgen export --tensorrt` or EngineOptions(build=True)"
            )
        logger.info("building TensorRT engine %s (%s)", paths.engine, "; ".join(reasons))
        data, record = self._build(graph, key, paths)
        return data, EngineRecord(graph, paths.engine, paths.record, record.build_seconds, built=True)

    def load(self, graph: str, *, threads: int | None = None, spinning: bool = True) -> _EngineRunner:  # CPU settings, unused here
        data, _ = self.ensure_engine(graph)
        with self.xp.cuda.Device(self.device_id):
            engine = self._runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise EngineBuildError(f"{self.paths(graph).engine}: TensorRT could not deserialise the engine (see its log)")
        return _EngineRunner(graph, engine, self.model.card.graphs[graph], self._trt, self.xp, self.device_id, self._runtime)

    def describe(self) -> str:
        info = self.device_info
        return f"tensorrt {self.tensorrt_version} on {info.gpu_name} (sm {info.compute_capability}, CUDA {info.cuda_runtime}, {self.options.precision})"

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _stored(paths: EnginePaths, key: EngineKey) -> tuple[bytes | None, list[str]]:
        """The stored engine's bytes if its record matches ``key`` and its digest; else why not."""
        if not paths.engine.is_file():
            return None, ["no engine built yet"]
        if not paths.record.is_file():
            return None, ["no build record"]
        try:
            record = BuildRecord.read(paths.record)
        except ValueError as error:
            return None, [str(error)]
        reasons = stale_reasons(record, key)
        if reasons:
            return None, reasons
        data = paths.engine.read_bytes()
        if _sha256(data) != record.engine_sha256:
            return None, ["engine file does not match its build record"]
        return data, []

    def _build(self, graph: str, key: EngineKey, paths: EnginePaths) -> tuple[bytes, BuildRecord]:
        trt, options = self._trt, self.options
        onnx_path = self.model.graph_path(graph)
        with self.xp.cuda.Device(self.device_id):
            builder = trt.Builder(self._logger)
            network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
            parser = trt.OnnxParser(network, self._logger)
            if not parser.parse_from_file(os.fspath(onnx_path)):  # from the file, so external weights resolve
                raise EngineBuildError(
                    f"{onnx_path}: TensorRT's ONNX parser failed:\n  " + "\n  ".join(_parser_errors(parser))
                    + f"\n(check the graphs without a GPU: python -m trtgen_export.trt_support check {self.model.directory})"
                )
            config = builder.create_builder_config()
            if options.workspace_bytes:
                config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_bytes))
            config.builder_optimization_level = int(options.optimization_level)
            if options.fp16:
                config.set_flag(trt.BuilderFlag.FP16)
            profile = builder.create_optimization_profile()
            network_inputs = [network.get_input(i).name for i in range(network.num_inputs)]
            for name in network_inputs:
                if name not in key.profiles:
                    raise EngineBuildError(f"{onnx_path}: network input {name} is not in the model card")
                low, opt, high = key.profiles[name]
                profile.set_shape(name, low, opt, high)
            config.add_optimization_profile(profile)
            cache_path = options.timing_cache or timing_cache_path(self.model.directory, self.device_info, self.tensorrt_version)
            timing_cache = _load_timing_cache(config, cache_path)
            started = time.perf_counter()
            serialized = builder.build_serialized_network(network, config)
            seconds = time.perf_counter() - started
            if serialized is None:
                raise EngineBuildError(f"{onnx_path}: TensorRT could not build the engine (see its log above)")
            data = bytes(serialized)
            paths.directory.mkdir(parents=True, exist_ok=True)
            self._ignore_in_git()
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(cache_path, "wb") as handle:
                handle.write(bytes(timing_cache.serialize()))
        record = BuildRecord(
            key=key,
            engine_sha256=_sha256(data),
            cuda_runtime=self.device_info.cuda_runtime,
            cuda_driver=self.device_info.cuda_driver,
            build_seconds=seconds,
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            workspace_bytes=options.workspace_bytes,
            optimization_level=options.optimization_level,
        )
        with atomic_write(paths.engine, "wb") as handle:
            handle.write(data)
        record.write(paths.record)  # last: a record names the engine bytes it belongs to
        logger.info("built %s in %.1f s (%.1f MB)", paths.engine, seconds, len(data) / 1e6)
        return data, record

    def _ignore_in_git(self) -> None:
        marker = self.model.directory / ENGINE_ROOT / ".gitignore"
        if not marker.exists():
            with atomic_write(marker) as handle:
                handle.write("# TensorRT engines are build outputs for one GPU and TensorRT version\n*\n")


def build_engines(model: Model, options: EngineOptions | None = None, *, device_id: int = 0) -> list[EngineRecord]:
    """Build (or keep, when up to date) one engine per graph in ``options.graphs``; raises
    :class:`BackendUnavailable` when TensorRT, CuPy or a GPU is missing."""
    options = replace(options or EngineOptions(), build=True)
    backend = TensorRTBackend(model, options, device_id=device_id)
    records = []
    for graph in options.graphs:
        _, record = backend.ensure_engine(graph, force=options.rebuild)
        records.append(record)
    return records
