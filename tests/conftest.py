"""Shared fixtures: paths to the real sample data that sits beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRTGEN_SHARED", REPO_ROOT.parent / "shared"))
"""The workplace's shared folder (sample data, spec): ``../shared`` beside the checkout, or
``$TRTGEN_SHARED`` for a checkout elsewhere."""
SHARED_DATA = SHARED / "data"


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


def stopping_weights(config_name: str = "small", seed: int = 0):
    """Random weights whose stop token fires at varied steps (some utterances stop, some reach
    their cap), so tests see ragged batches. The stop projection is scaled so that the top tail of
    its logits crosses zero."""
    from export.variables import DECODER, random_weights
    from trtgen.config import model_preset

    config = model_preset(config_name)
    weights = random_weights(config, seed, stop_never_fires=False)
    weights[DECODER + "decoder/stop_token_proj/kernel"] *= 20.0
    weights[DECODER + "decoder/stop_token_proj/bias"][:] = 4.1
    return config, weights


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory) -> Path:
    """A small random model exported once per test session (about 15 s)."""
    pytest.importorskip("tensorflow")
    from export.onnx_export import ExportOptions, export_model

    config, weights = stopping_weights()
    directory = tmp_path_factory.mktemp("models") / "small"
    export_model(weights, config, directory, options=ExportOptions(name="small-test", source={"random_init": "small", "seed": 0}))
    return directory


@pytest.fixture(scope="session")
def infer_list(shared_data, tmp_path_factory) -> Path:
    """`trtgen prepare` on the real samples: 7 LibriSpeech transcripts x 3 M-AILABS clips."""
    from trtgen.prepare import PrepareOptions, prepare_infer_list

    out = tmp_path_factory.mktemp("prepared")
    prepare_infer_list(shared_data / "M-AILABS", [shared_data / "LibriSpeech"], out, PrepareOptions(splits="all"))
    return out / "infer.jsonl"
