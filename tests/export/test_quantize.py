"""int8 variants (trtgen export --quantize): listed in the card, picked on the CPU by default, and, like
the float graphs, an utterance's audio does not depend on its batch neighbours or the thread count."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from trtgen.engine.shipped import demo_sentences, shipped_styles

pytest.importorskip("onnxruntime.quantization")


@pytest.fixture(scope="module")
def quantized_dir(small_model_dir, tmp_path_factory) -> Path:
    from trtgen_export.quantize import QuantizeOptions, quantize_model

    directory = tmp_path_factory.mktemp("quantized") / "small-int8"
    shutil.copytree(small_model_dir, directory)
    quantize_model(directory, QuantizeOptions(graphs=("postnet", "decoder_chunk"), sentences=8), log=lambda _: None)
    return directory


def _rows(count: int, seed: int = 4):
    from trtgen import Row

    clips = list(shipped_styles().values())
    return [Row(f"q{i}", text, clips[i % len(clips)], 0.5, seed) for i, text in enumerate((demo_sentences() * 3)[:count])]


def test_parse_quantize_names_the_graphs_and_refuses_others() -> None:
    from trtgen import UsageError
    from trtgen_export.quantize import parse_quantize

    assert parse_quantize(None) == () and parse_quantize("none") == ()
    assert parse_quantize("postnet") == ("postnet",)
    assert parse_quantize("decoder, postnet") == ("decoder_chunk", "postnet")
    with pytest.raises(UsageError, match="encoder"):
        parse_quantize("postnet,encoder")


def test_the_card_lists_the_int8_variants_with_their_digests(quantized_dir) -> None:
    import onnx

    from trtgen.engine.artifact import load_model
    from trtgen.fileio import sha256_file

    model = load_model(quantized_dir)  # verifies every file named in the card, the variants included
    assert set(model.card.quantized) == {"postnet", "decoder_chunk"}
    assert model.card.quantization["nodes"]["postnet"] == len(model.card.model.postnet_channels) + 1
    for graph, spec in model.card.quantized.items():
        assert spec.sha256 == sha256_file(quantized_dir / spec.file)
        assert spec.inputs == model.card.graphs[graph].inputs and spec.outputs == model.card.graphs[graph].outputs
        ops = {n.op_type for n in onnx.load(str(quantized_dir / spec.file), load_external_data=False).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    (quantized_dir / "postnet.int8.onnx").write_bytes((quantized_dir / "postnet.int8.onnx").read_bytes() + b"x")
    try:
        with pytest.raises(Exception, match="sha256"):
            load_model(quantized_dir)
    finally:
        (quantized_dir / "postnet.int8.onnx").write_bytes((quantized_dir / "postnet.int8.onnx").read_bytes()[:-1])


def test_int8_runs_by_default_on_the_cpu_only_and_float32_on_request(quantized_dir, small_model_dir) -> None:
    from trtgen import UsageError
    from trtgen.engine.artifact import load_model, resolve_precision

    card = load_model(quantized_dir).card
    assert resolve_precision(card, "cpu") == "int8"
    assert resolve_precision(card, "cuda") == "float32"
    assert resolve_precision(card, "cpu", "float32") == "float32"
    with pytest.raises(UsageError, match="GPU"):
        resolve_precision(card, "cuda", "int8")
    assert resolve_precision(load_model(small_model_dir).card, "cpu") == "float32"
    with pytest.raises(UsageError, match="no int8 graphs"):
        load_model(small_model_dir).with_precision("int8")
    int8, f32 = load_model(quantized_dir).with_precision("int8"), load_model(quantized_dir).with_precision("float32")
    assert int8.graph_path("postnet").name == "postnet.int8.onnx" and f32.graph_path("postnet").name == "postnet.onnx"
    assert int8.digest != f32.digest, "outputs of the two precisions must not share a copy directory"


def test_int8_audio_differs_from_float32_but_not_with_batch_neighbours_or_threads(quantized_dir) -> None:
    from trtgen import Voice
    from trtgen.engine.synthesis import SynthesisOptions
    from trtgen.engine.vocoder import griffin_lim_preset

    rows = _rows(6)
    options = SynthesisOptions(vocoder=griffin_lim_preset("openseq2seq"), encoder_batch_size=2, postnet_batch_size=2)
    voice = Voice.load(quantized_dir, threads=2, options=options)
    assert voice.precision == "int8"
    together = {s.id: s.audio for s in voice.stream(rows, batch_size=4)}
    one_thread = Voice.load(quantized_dir, threads=1, options=dataclasses.replace(options, overlap=False))
    for row in rows:
        alone = one_thread.synthesize(row.text, row.style, dropout=row.dropout, seed=row.seed, utterance_id=row.id).audio
        np.testing.assert_array_equal(together[row.id], alone)
    float32 = {s.id: s.audio for s in Voice.load(quantized_dir, precision="float32", options=options).stream(rows, batch_size=4)}
    assert any(a.shape != float32[k].shape or not np.array_equal(a, float32[k]) for k, a in together.items())
