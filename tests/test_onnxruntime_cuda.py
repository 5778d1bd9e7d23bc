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

from tests.conftest import cupy_with_gpu, graph_feeds
from trtgen.artifact import GRAPH_NAMES, load_model
from trtgen.backends.onnxruntime_backend import OnnxRuntimeBackend
from trtgen.generate import GenerateOptions, default_model_dir, parse_copies, run_generate
from trtgen.synthesis import SynthesisOptions

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
        assert set(actual) == set(expected), graph
        for name, value in expected.items():
            got = cupy.asnumpy(actual[name])
            assert got.shape == value.shape and got.dtype == value.dtype, (graph, name)
            scale = max(float(np.abs(value).max()), 1e-6)
            error = float(np.abs(got.astype(np.float64) - value).max()) / scale
            assert error < 1e-2, f"{graph}.{name}: relative error {error:.1e} (TF32 allowed)"


def test_generate_on_cuda_speaks_every_row_as_the_cpu_run_does(tmp_path: Path) -> None:
    """Decoder, postnet and vocoder on the GPU; lengths agree with the CPU run (float rounding may move a stop)."""
    _cuda_provider_or_skip()
    from trtgen.demo import demo_sentences, demo_styles

    rows = [
        {"id": f"u{s}-{clip.stem}", "text": text, "style": str(clip), "style_speaker": clip.stem}
        for s, text in enumerate(demo_sentences()[:3])
        for clip in demo_styles()
    ]
    listing = tmp_path / "infer.jsonl"
    listing.write_text("".join(json.dumps(r) + "\n" for r in rows))
    frames = {}
    for device in ("cpu", "cuda"):
        report = run_generate(GenerateOptions(
            model_dir=default_model_dir(), list_path=listing, out_dir=tmp_path / device, backend="onnxruntime", device=device,
            copies=tuple(parse_copies("copy:0.5:3", default_dropout=0.5, base_seed=0)),
            synthesis=SynthesisOptions(batch_size=8), progress=False,
        ))
        assert report.copies[0].written == len(rows) and report.copies[0].stopped == len(rows) and not report.rejects
        records = [json.loads(line) for line in (tmp_path / device / "copy" / "records.jsonl").read_text().splitlines()]
        frames[device] = {r["id"]: r["frames"] for r in records}
    assert "CUDAExecutionProvider" in report.backend
    for key, count in frames["cpu"].items():
        assert abs(frames["cuda"][key] - count) <= max(3, 0.05 * count), (key, count, frames["cuda"][key])
