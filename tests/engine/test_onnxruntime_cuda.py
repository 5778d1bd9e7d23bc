"""ONNX Runtime's CUDA provider (CuPy arrays bound with IOBinding) against its CPU provider.

Marked ``gpu``: skipped, with the reason, without CuPy, a GPU, or an ONNX Runtime that offers CUDA
(``pip install 'onnxruntime-gpu[cuda,cudnn]'`` instead of ``onnxruntime``). The model is the shipped
voice, so neither TensorFlow nor the sample data is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_outputs_match, cupy_with_gpu, generate_shipped_voice, graph_feeds
from trtgen.engine.artifact import GRAPH_NAMES, load_model
from trtgen.engine.backends.onnxruntime_backend import OnnxRuntimeBackend
from trtgen.engine.artifact import default_model_dir
from trtgen.engine.synthesis import SynthesisOptions

pytestmark = pytest.mark.gpu


def _cuda_provider_or_skip():
    cupy = cupy_with_gpu()
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"onnxruntime {ort.__version__} offers no CUDA provider (pip install 'onnxruntime-gpu[cuda,cudnn]')")
    return cupy


def test_every_graph_of_the_shipped_voice_matches_the_cpu_provider() -> None:
    cupy = _cuda_provider_or_skip()
    model = load_model(default_model_dir())
    gpu, cpu = OnnxRuntimeBackend(model, "cuda"), OnnxRuntimeBackend(model)
    assert "CUDAExecutionProvider" in gpu.describe()
    sizes = {"batch": 3, "text_time": 24, "style_time": 64, "mel_time": 40}
    rng = np.random.default_rng(0)
    for graph in GRAPH_NAMES:
        feeds = graph_feeds(model, graph, sizes, rng)
        expected = cpu.load(graph).run(feeds)
        actual = gpu.load(graph).run({k: cupy.asarray(v) for k, v in feeds.items()})
        # float32 on both sides, but other kernels and summation orders, over the 8 chained steps of decoder_chunk
        assert_outputs_match(expected, {k: cupy.asnumpy(v) for k, v in actual.items()}, graph, 1e-2)


def test_generate_on_cuda_speaks_every_row_as_the_cpu_run_does(tmp_path: Path) -> None:
    """Decoder, postnet and vocoder on the GPU; lengths agree with the CPU run (float rounding may move a stop)."""
    _cuda_provider_or_skip()
    frames = {}
    for device in ("cpu", "cuda"):
        rows, report = generate_shipped_voice(tmp_path / device, 3, backend="onnxruntime", device=device, synthesis=SynthesisOptions(batch_size=8))
        assert report.copies[0].written == len(rows) and report.copies[0].stopped == len(rows) and not report.rejects
        records = [json.loads(line) for line in (tmp_path / device / "copy" / "records.jsonl").read_text().splitlines()]
        frames[device] = {r["id"]: r["frames"] for r in records}
    assert "CUDAExecutionProvider" in report.backend
    for key, count in frames["cpu"].items():
        assert abs(frames["cuda"][key] - count) <= max(3, 0.05 * count), (key, count, frames["cuda"][key])
