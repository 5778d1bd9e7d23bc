"""Shared fixtures: paths to the real sample data that sits beside the repository."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRTGEN_SHARED", REPO_ROOT.parent / "shared"))
"""The workplace's shared folder (sample data, spec): ``../shared`` beside the checkout, or
``$TRTGEN_SHARED`` for a checkout elsewhere."""
SHARED_DATA = SHARED / "data"



pytest_plugins = ["tests.s3server"]  # the fixtures s3_server (moto's S3 server on localhost) and s3_bucket

@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`: real M-AILABS and LibriSpeech samples (never copied into the repo)."""
    if not (SHARED_DATA / "SOURCES.txt").is_file():
        pytest.fail(f"the real sample data is missing: expected {SHARED_DATA} (../shared beside the repository, or set TRTGEN_SHARED)")
    return SHARED_DATA


def cupy_with_gpu():
    """CuPy with a usable CUDA GPU; skips the calling test, with the reason, otherwise."""
    try:
        import cupy
    except ImportError:
        pytest.skip("CuPy is not installed (pip install cupy-cuda12x, or cupy-cuda13x for CUDA 13)")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as error:
        pytest.skip(f"no usable CUDA GPU: {error}")
    if count < 1:
        pytest.skip("no CUDA GPU")
    return cupy


def graph_feeds(model: Any, graph: str, sizes: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Valid inputs for ``graph``: lengths within their axes, ids within the vocabulary, 0/1 masks."""
    feeds = {}
    for spec in model.card.graphs[graph].inputs:
        shape = tuple(sizes[d] if isinstance(d, str) else d for d in spec.shape)
        if spec.name.endswith("_len"):
            axis = {"text_len": "text_time", "style_len": "style_time", "mel_len": "mel_time"}[spec.name]
            feeds[spec.name] = np.array([sizes[axis] - 3 * i for i in range(shape[0])], np.int32)
        elif spec.name == "text_ids":
            feeds[spec.name] = rng.integers(3, model.card.model.num_symbols, shape).astype(np.int32)
        elif spec.name == "memory_mask":
            mask = np.ones(shape, np.float32)
            mask[1:, -3:] = 0.0
            feeds[spec.name] = mask
        elif spec.name.startswith("prenet_mask"):
            feeds[spec.name] = ((rng.random(shape) >= 0.5) * 2.0).astype(np.float32)
        else:
            feeds[spec.name] = rng.normal(0.0, 0.5, shape).astype(np.float32)
    return feeds


def assert_outputs_match(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], graph: str, tolerance: float) -> None:
    """Same output names, shapes and dtypes, and max |actual - expected| / max |expected| below ``tolerance``."""
    assert set(actual) == set(expected), graph
    for name, value in expected.items():
        got = actual[name]
        assert got.shape == value.shape and got.dtype == value.dtype, (graph, name)
        scale = max(float(np.abs(value).max()), 1e-6)
        error = float(np.abs(got.astype(np.float64) - value).max()) / scale
        assert error < tolerance, f"{graph}.{name}: relative error {error:.1e} (tolerance {tolerance:.0e})"


def generate_shipped_voice(out: Path, sentences: int, **options: Any) -> tuple[list[dict[str, str]], Any]:
    """``run_generate`` with the shipped voice on ``demo_rows(sentences)``, one copy ``copy`` (dropout 0.5,
    seed 3) under ``out/copy``; ``options`` override GenerateOptions fields, or VoiceSpec fields
    (``backend``, ``device``, ``synthesis``...). Returns the rows and the report."""
    import dataclasses

    from trtgen.commands.demo import demo_rows
    from trtgen.commands.generate import GenerateOptions, parse_copies, run_generate
    from trtgen.engine.voice import VoiceSpec
    from trtgen.fileio import write_jsonl

    rows = demo_rows(sentences)
    out.mkdir(parents=True, exist_ok=True)
    listing = out / "infer.jsonl"
    write_jsonl(listing, rows)
    voice_fields = {k: options.pop(k) for k in list(options) if k in VoiceSpec.__dataclass_fields__}
    voice = dataclasses.replace(VoiceSpec(), **voice_fields)
    report = run_generate(GenerateOptions(list_path=listing, out_dir=out, copies=parse_copies("copy:0.5:3"), voice=voice, **options))
    return rows, report


def stopping_weights(config_name: str = "small", seed: int = 0):
    """Random weights whose stop token fires at varied steps (some utterances stop, some reach
    their cap), so tests see ragged batches. The stop projection is scaled so that the top tail of
    its logits crosses zero."""
    from trtgen_export.variables import DECODER, random_weights
    from trtgen.engine.config import model_preset

    config = model_preset(config_name)
    weights = random_weights(config, seed, stop_never_fires=False)
    weights[DECODER + "decoder/stop_token_proj/kernel"] *= 20.0
    weights[DECODER + "decoder/stop_token_proj/bias"][:] = 4.1
    return config, weights


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory) -> Path:
    """A small random model exported once per test session (about 15 s)."""
    pytest.importorskip("tensorflow")
    from trtgen_export.onnx_export import ExportOptions, export_model

    config, weights = stopping_weights()
    directory = tmp_path_factory.mktemp("models") / "small"
    export_model(weights, config, directory, options=ExportOptions(name="small-test", source={"random_init": "small", "seed": 0}))
    return directory


@pytest.fixture(scope="session")
def infer_list(shared_data, tmp_path_factory) -> Path:
    """`trtgen prepare` on the real samples: 7 LibriSpeech transcripts x 3 M-AILABS clips."""
    from trtgen.commands.prepare import PrepareOptions, prepare_infer_list

    out = tmp_path_factory.mktemp("prepared")
    prepare_infer_list(shared_data / "M-AILABS", [shared_data / "LibriSpeech"], out, PrepareOptions(splits="all"))
    return out / "infer.jsonl"
