"""TensorRT backend: what can be proven without TensorRT here, and the real build + run on a GPU.

Without TensorRT: the backend refuses with the install command (real behaviour, nothing mocked), and
the logic that decides whether a stored engine may be used (build records, profiles, digests) is
exercised on records written to files. With TensorRT, CuPy and a GPU, the ``gpu`` test builds every
engine of the small model and compares its outputs with ONNX Runtime on the CPU.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_outputs_match, cupy_with_gpu, graph_feeds
from trtgen.engine.artifact import GraphSpec, Model, ModelCard, TensorSpec
from trtgen.engine.backends import BackendUnavailable, create_backend
from trtgen.engine.backends.tensorrt_backend import (
    BuildRecord,
    DeviceInfo,
    EngineKey,
    EngineOptions,
    ProfileError,
    TensorRTBackend,
    build_engines,
    check_input_shape,
    engine_key,
    engine_paths,
    input_profiles,
    profile_bounds,
    stale_reasons,
    timing_cache_path,
)
from trtgen.engine.config import AudioConfig, TextConfig, model_preset

H100 = DeviceInfo("NVIDIA H100 80GB HBM3", "9.0", "12.4", "12.8")
BOUNDS = {"batch": [1, 64, 256], "text_time": [8, 160, 600], "steps": [1, 16, 64]}

CHUNK = GraphSpec(
    file="decoder_chunk.onnx",
    sha256="c" * 64,
    inputs=(
        TensorSpec("memory", "float32", ("batch", "text_time", 48)),
        TensorSpec("frame", "float32", ("batch", 80)),
        TensorSpec("prenet_mask_0", "float32", ("steps", "batch", 32)),
    ),
    outputs=(TensorSpec("frames", "float32", ("steps", "batch", 80)),),
)
TEXT = GraphSpec(
    file="text_encoder.onnx",
    sha256="t" * 64,
    inputs=(TensorSpec("text_ids", "int32", ("batch", "text_time")), TensorSpec("text_len", "int32", ("batch",))),
    outputs=(TensorSpec("memory", "float32", ("batch", "text_time", 48)),),
)


def _model(directory: Path, **graphs: GraphSpec) -> Model:
    card = ModelCard(
        name="unit",
        model=model_preset("small"),
        audio=AudioConfig(),
        text=TextConfig(),
        opset=17,
        graphs=graphs or {"decoder_chunk": CHUNK, "text_encoder": TEXT},
        decoder_state=(),
        prenet_masks=("prenet_mask_0",),
        external_data={"decoder.weights": "w" * 64},
        defaults={"tensorrt_profiles": BOUNDS},
    )
    return Model(directory=directory, card=card)


def _key(model: Model, graph: str = "decoder_chunk", options: EngineOptions | None = None, **changes: object) -> EngineKey:
    key = engine_key(model, graph, options or EngineOptions(), tensorrt_version="10.15.1.29", device=H100)
    return dataclasses.replace(key, **changes)


# ---------------------------------------------------------------------------- without TensorRT
needs_no_tensorrt = pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here; these cover machines without it"
)


@needs_no_tensorrt
def test_create_backend_without_tensorrt_names_the_install(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable) as error:
        create_backend(_model(tmp_path), "tensorrt", "cuda")
    message = str(error.value)
    assert "TensorRT is not installed" in message
    assert "pip install 'tensorrt-cu12>=10,<11' cupy-cuda12x" in message
    assert "--extra-index-url https://pypi.nvidia.com" in message


@needs_no_tensorrt
def test_build_engines_without_tensorrt_is_backend_unavailable(tmp_path: Path) -> None:
    """``trtgen export --tensorrt`` catches exactly this and prints the message."""
    with pytest.raises(BackendUnavailable, match="tensorrt-cu12"):
        build_engines(_model(tmp_path), EngineOptions(fp16=True))


# ---------------------------------------------------------------------------- profiles
def test_profiles_come_from_the_named_axes_of_each_input(tmp_path: Path) -> None:
    profiles = _key(_model(tmp_path)).profiles
    assert profiles["memory"] == [[1, 8, 48], [64, 160, 48], [256, 600, 48]]
    assert profiles["frame"] == [[1, 80], [64, 80], [256, 80]]
    assert profiles["prenet_mask_0"] == [[1, 1, 32], [16, 64, 32], [64, 256, 32]]


def test_profile_overrides_and_validation() -> None:
    bounds = profile_bounds(BOUNDS, {"text_time": [16, 64, 128], "batch": {"min": 2, "opt": 4, "max": 8}})
    assert bounds == {"batch": (2, 4, 8), "text_time": (16, 64, 128), "steps": (1, 16, 64)}
    with pytest.raises(ValueError, match="'text_time'.*min <= opt <= max"):
        profile_bounds(BOUNDS, {"text_time": [64, 16, 128]})
    with pytest.raises(ValueError, match="'steps'.*\\[min, opt, max\\]"):
        profile_bounds(BOUNDS, {"steps": [1, 2]})
    with pytest.raises(ValueError, match="dynamic axis 'text_time'"):
        input_profiles("text_encoder", TEXT, profile_bounds({"batch": [1, 2, 4]}))


def test_shapes_outside_the_profile_name_the_axis() -> None:
    check_input_shape("text_encoder", "text_ids", (4, 600), (1, 8), (256, 600), ("batch", "text_time"))
    with pytest.raises(ProfileError, match=r"text_ids axis 1 \('text_time'\) is 601, outside .*\[8, 600\].*'text_time'"):
        check_input_shape("text_encoder", "text_ids", (4, 601), (1, 8), (256, 600), ("batch", "text_time"))
    with pytest.raises(ProfileError, match="rank 3"):
        check_input_shape("text_encoder", "text_ids", (4, 6, 1), (1, 8), (256, 600), ("batch", "text_time"))


def test_engine_location_names_gpu_tensorrt_and_precision(tmp_path: Path) -> None:
    paths = engine_paths(tmp_path, "postnet", H100, "10.15.1.29", "fp16")
    assert paths.engine == tmp_path / "tensorrt" / "nvidia-h100-80gb-hbm3-10.15.1.29-fp16" / "postnet.engine"
    assert paths.record == paths.engine.with_suffix(".json")
    assert timing_cache_path(tmp_path, H100, "10.15.1.29").name == "nvidia-h100-80gb-hbm3-10.15.1.29.timing-cache"


# ---------------------------------------------------------------------------- build records
def _write_record(tmp_path: Path, key: EngineKey, engine: bytes = b"engine-bytes") -> tuple[Path, Path]:
    import hashlib

    paths = engine_paths(tmp_path, key.graph, H100, key.tensorrt_version, key.precision)
    paths.directory.mkdir(parents=True, exist_ok=True)
    paths.engine.write_bytes(engine)
    BuildRecord(key, hashlib.sha256(engine).hexdigest(), "12.4", "12.8", build_seconds=12.5, built_at="2026-01-01T00:00:00+00:00").write(paths.record)
    return paths.engine, paths.record


def test_record_round_trips_through_its_file(tmp_path: Path) -> None:
    key = _key(_model(tmp_path))
    _, record_path = _write_record(tmp_path, key)
    record = BuildRecord.read(record_path)
    assert record.key == key
    data = json.loads(record_path.read_text())
    for field in ("tensorrt_version", "gpu_name", "compute_capability", "cuda_runtime", "profiles", "precision", "onnx_sha256", "trtgen_version", "build_seconds"):
        assert field in data, field
    assert stale_reasons(record, key) == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"tensorrt_version": "10.16.0.72"}, "TensorRT version 10.15.1.29 (built) != 10.16.0.72 (here)"),
        ({"gpu_name": "NVIDIA A100-SXM4-40GB"}, "GPU NVIDIA H100 80GB HBM3 (built) != NVIDIA A100-SXM4-40GB (here)"),
        ({"compute_capability": "8.0"}, "compute capability 9.0 (built) != 8.0 (here)"),
        ({"precision": "fp16"}, "precision fp32 (built) != fp16 (here)"),
        ({"onnx_sha256": "d" * 64}, "ONNX graph digest"),
        ({"external_data": {"decoder.weights": "v" * 64}}, "shared weight files differ"),
    ],
)
def test_engine_built_for_something_else_is_stale(tmp_path: Path, change: dict, reason: str) -> None:
    model = _model(tmp_path)
    _, record_path = _write_record(tmp_path, _key(model))
    reasons = stale_reasons(BuildRecord.read(record_path), _key(model, **change))
    assert len(reasons) == 1 and reason in reasons[0]


def test_wider_profile_makes_only_the_affected_inputs_stale(tmp_path: Path) -> None:
    model = _model(tmp_path)
    _, record_path = _write_record(tmp_path, _key(model))
    wider = _key(model, options=EngineOptions(profiles={"steps": [1, 16, 128]}))
    assert stale_reasons(BuildRecord.read(record_path), wider) == ["optimisation profile differs for prenet_mask_0"]


def test_missing_foreign_or_corrupt_records_are_refused(tmp_path: Path) -> None:
    model = _model(tmp_path)
    key = _key(model)
    assert stale_reasons(None, key) == ["no build record"]
    engine, record_path = _write_record(tmp_path, key)
    old = dataclasses.replace(BuildRecord.read(record_path), schema_version=0)
    assert "schema" in stale_reasons(old, key)[0]
    record_path.write_text("{not json")
    with pytest.raises(ValueError, match=str(record_path)):
        BuildRecord.read(record_path)
    data, reasons = TensorRTBackend._stored(engine_paths(tmp_path, "decoder_chunk", H100, "10.15.1.29", "fp32"), key)
    assert data is None and "not a trtgen engine build record" in reasons[0]


def test_stored_engine_is_used_only_when_record_and_bytes_match(tmp_path: Path) -> None:
    model = _model(tmp_path)
    key = _key(model)
    paths = engine_paths(tmp_path, "decoder_chunk", H100, "10.15.1.29", "fp32")
    assert TensorRTBackend._stored(paths, key) == (None, ["no engine built yet"])
    engine, _ = _write_record(tmp_path, key, b"serialised plan")
    assert TensorRTBackend._stored(paths, key) == (b"serialised plan", [])
    engine.write_bytes(b"another plan")  # e.g. two builders raced, or the file was swapped by hand
    assert TensorRTBackend._stored(paths, key) == (None, ["engine file does not match its build record"])
    data, reasons = TensorRTBackend._stored(paths, _key(model, gpu_name="NVIDIA L4"))
    assert data is None and "GPU" in reasons[0]


# ---------------------------------------------------------------------------- on a GPU
def _gpu_or_skip() -> None:
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("TensorRT is not installed (pip install 'tensorrt-cu12>=10,<11' cupy-cuda12x)")
    cupy_with_gpu()


@pytest.mark.gpu
def test_tensorrt_engines_match_onnxruntime_on_the_small_model(tmp_path: Path) -> None:
    _gpu_or_skip()
    import cupy

    from trtgen_export.onnx_export import export_model
    from trtgen_export.variables import random_weights
    from trtgen.engine.artifact import GRAPH_NAMES, load_model
    from trtgen.engine.backends.onnxruntime_backend import OnnxRuntimeBackend

    import tensorrt as trt

    from trtgen_export.trt_support import check_tensorrt_support

    config = model_preset("small")
    export_model(random_weights(config, seed=0), config, tmp_path)
    model = load_model(tmp_path)
    # The static table agrees with the installed parser about every operator the graphs use.
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    parser = trt.OnnxParser(builder.create_network(0), trt_logger)
    assert all(parser.supports_operator(op) for op in check_tensorrt_support(tmp_path).op_types)
    bounds = {"batch": [1, 2, 4], "text_time": [8, 24, 64], "style_time": [16, 64, 128], "mel_time": [16, 40, 128], "steps": [1, 4, 8]}
    options = EngineOptions(fp16=False, profiles=bounds)
    records = build_engines(model, options)
    assert [r.graph for r in records] == list(GRAPH_NAMES) and all(r.built and r.engine.is_file() for r in records)
    assert not any(r.built for r in build_engines(model, options)), "up-to-date engines must be kept"

    trt_backend = TensorRTBackend(model, dataclasses.replace(options, build=False))  # loads only what was built
    assert "tensorrt 10." in trt_backend.describe()
    cpu = OnnxRuntimeBackend(model)
    sizes = {"batch": 2, "text_time": 24, "style_time": 64, "mel_time": 40, "steps": 4}
    rng = np.random.default_rng(0)
    for graph in GRAPH_NAMES:
        feeds = graph_feeds(model, graph, sizes, rng)
        expected = cpu.load(graph).run(feeds)
        actual = trt_backend.load(graph).run({k: cupy.asarray(v) for k, v in feeds.items()})
        assert_outputs_match(expected, {k: cupy.asnumpy(v) for k, v in actual.items()}, graph, 1e-2)  # TF32 allowed
    with pytest.raises(ProfileError, match="text_time"):
        trt_backend.load("text_encoder").run(graph_feeds(model, "text_encoder", dict(sizes, text_time=65), rng))
