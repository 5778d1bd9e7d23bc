"""ONNX export: ONNX Runtime (CPU) reproduces the TensorFlow reference, small and full size.

The full-size model is exported once, through the CLI, from a TF1 checkpoint that carries every
inference variable of openseq2seq_variables.tsv (names and shapes). Its stop projection is chosen
so that an utterance stops part-way through the 200-step decode, making "same stop step" a real check.
"""

from __future__ import annotations

import dataclasses

import json

import numpy as np
import pytest
from typer.testing import CliRunner

tf = pytest.importorskip("tensorflow")

from trtgen_export.checkpoint import write_checkpoint  # noqa: E402
from trtgen_export.tf_model import TacotronGST  # noqa: E402
from trtgen_export.variables import DECODER, expected_variables, random_weights  # noqa: E402
from trtgen.engine.artifact import GRAPH_NAMES, OPTIONAL_GRAPHS, STYLE_TOKEN_WEIGHTS, STYLE_TOKENS, load_model  # noqa: E402
from trtgen.engine.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from trtgen.cli import app  # noqa: E402
from trtgen.engine.config import model_preset  # noqa: E402

TOLERANCE = 1e-4
STEPS = 200
STOP_KERNEL = DECODER + "decoder/stop_token_proj/kernel"
STOP_BIAS = DECODER + "decoder/stop_token_proj/bias"


def relative_error(actual, expected) -> float:
    expected = np.asarray(expected, np.float64)
    scale = max(float(np.max(np.abs(expected))), 1e-6)
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected))) / scale


class Case:
    """Inputs, masks and weights of one parity case."""

    def __init__(self, preset: str, seed: int, attention_window: tuple[int, int] | None = None) -> None:
        self.config = dataclasses.replace(model_preset(preset), attention_window=attention_window)
        rng = np.random.default_rng(seed)
        self.weights = random_weights(self.config, seed, stop_never_fires=False)
        self.text_len = np.array([32, 24], np.int32)
        self.ids = np.zeros((2, 32), np.int32)
        for b, n in enumerate(self.text_len):
            self.ids[b, :n] = rng.integers(3, 94, n)
        self.style_len = np.array([96, 56], np.int32)
        self.style_mel = rng.normal(-3.0, 1.5, (2, 96, 80)).astype(np.float32)
        self.masks = [((rng.random((STEPS, 2, u)) >= 0.5) * 2.0).astype(np.float32) for u in self.config.prenet_units]
        self._place_stop()
        self.reference = TacotronGST(self.config, self.weights)

    def _place_stop(self) -> None:
        """Choose the stop projection so that an utterance stops after step 20 and before 200.

        The stop logit does not feed back into decoding, so the frames of one TF decode serve to try
        kernels from a fixed seed sequence: the first whose running-maximum logit sets a record after
        step 20 gets its bias between that record and the previous maximum."""
        probe = dict(self.weights)
        probe[STOP_BIAS] = np.array([-1e4], np.float32)
        model = TacotronGST(self.config, probe)
        memory, keys, _ = model.attention_memory(
            model.encode_text(self.ids, self.text_len), model.encode_style(self.style_mel, self.style_len), self.text_len
        )
        out = model.decode(memory, keys, self.text_len, model.prenet_masks_from(masks=[tf.constant(m) for m in self.masks]), max_steps=STEPS)
        frames = out["frames"].numpy().astype(np.float64)
        for seed in range(200):
            kernel = np.random.default_rng(seed).normal(0.0, 0.3, probe[STOP_KERNEL].shape)
            logits = (frames @ kernel)[..., 0].max(axis=0)  # per step, over the batch
            running = np.maximum.accumulate(logits)
            records = [t for t in range(20, STEPS) if logits[t] > running[t - 1] + 1e-3]
            if records:
                t = records[-1]
                self.weights[STOP_KERNEL] = kernel.astype(np.float32)
                self.weights[STOP_BIAS] = np.array([-(running[t - 1] + logits[t]) / 2], np.float32)
                return
        raise AssertionError("no stop projection with a late record found")


@pytest.fixture(scope="module")
def small_case(tmp_path_factory):
    from trtgen_export.onnx_export import export_model

    case = Case("small", seed=4)
    directory = tmp_path_factory.mktemp("export") / "small"
    export_model(case.weights, case.config, directory)
    return case, load_model(directory)


@pytest.fixture(scope="module")
def windowed_case(tmp_path_factory):
    """The small model with an attention window, through `trtgen export --attention-window` (CLI)."""
    case = Case("small", seed=4, attention_window=(1, 3))
    root = tmp_path_factory.mktemp("windowed")
    prefix = write_checkpoint(case.weights, root / "ckpt" / "model.ckpt-10", global_step=10)
    args = ["export", str(prefix), "--out", str(root / "model"), "--config", "small", "--attention-window", "1,3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return case, load_model(root / "model")


@pytest.fixture(scope="module")
def full_case(tmp_path_factory):
    """Checkpoint with the TSV's names and shapes -> `trtgen export` (CLI) -> model directory."""
    case = Case("openseq2seq", seed=5)
    root = tmp_path_factory.mktemp("full")
    prefix = write_checkpoint(case.weights, root / "ckpt" / "model.ckpt-1000", global_step=1000)
    result = CliRunner().invoke(app, ["export", str(prefix), "--out", str(root / "model"), "--config", "openseq2seq", "--quantize", "none"])
    assert result.exit_code == 0, result.output
    return case, load_model(root / "model")


CASES = ["small_case", "windowed_case", pytest.param("full_case", marks=pytest.mark.slow)]


@pytest.fixture(params=CASES)
def case(request):
    return request.getfixturevalue(request.param)


def _encode(case: Case, model) -> tuple[dict, dict]:
    backend = OnnxRuntimeBackend(model)
    style = backend.load("style_encoder").run({"style_mel": case.style_mel, "style_len": case.style_len})
    encoded = backend.load("text_encoder").run(
        {"text_ids": case.ids, "text_len": case.text_len, "style_embedding": style["style_embedding"]}
    )
    return style, encoded


def test_memory_and_style_embedding(case):
    case, model = case
    style, encoded = _encode(case, model)
    ref = case.reference
    tf_style = ref.encode_style(case.style_mel, case.style_len)
    tf_memory, tf_keys, tf_mask = ref.attention_memory(ref.encode_text(case.ids, case.text_len), tf_style, case.text_len)
    assert relative_error(style["style_embedding"], tf_style) <= TOLERANCE
    assert relative_error(encoded["memory"], tf_memory) <= TOLERANCE
    assert relative_error(encoded["memory_keys"], tf_keys) <= TOLERANCE
    np.testing.assert_array_equal(encoded["memory_mask"], tf_mask.numpy())


def test_style_token_weights_and_the_style_tokens_graph(case):
    """The style encoder's second output is TensorFlow's token weights (per head a softmax over the tokens);
    ``style_tokens`` gives back a clip's embedding from them, and TensorFlow's embedding for weights no clip gave."""
    case, model = case
    style, _ = _encode(case, model)
    tf_style, tf_weights = case.reference.encode_style_with_token_weights(case.style_mel, case.style_len)
    weights = style[STYLE_TOKEN_WEIGHTS]
    assert weights.shape == (2, *model.card.style_token_shape)
    assert relative_error(weights, tf_weights) <= TOLERANCE
    assert relative_error(style["style_embedding"], tf_style) <= TOLERANCE
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-6)
    backend = OnnxRuntimeBackend(model, threads=1)
    encoder, bank = backend.load("style_encoder"), backend.load(STYLE_TOKENS)
    for row, n in enumerate(case.style_len):  # one clip per call, as the runtime runs them
        alone = encoder.run({"style_mel": case.style_mel[row : row + 1, :n], "style_len": case.style_len[row : row + 1]})
        again = bank.run({STYLE_TOKEN_WEIGHTS: alone[STYLE_TOKEN_WEIGHTS]})["style_embedding"]
        assert relative_error(again, alone["style_embedding"]) <= 1e-6
    drawn = np.random.default_rng(3).dirichlet(np.ones(case.config.num_style_tokens), weights.shape[:2]).astype(np.float32)
    tf_drawn = case.reference.embedding_from_token_weights(tf.constant(drawn))
    assert relative_error(bank.run({STYLE_TOKEN_WEIGHTS: drawn})["style_embedding"], tf_drawn) <= TOLERANCE


def _embeddings(model_dir, case: Case) -> list[np.ndarray]:
    """The style encoder's embedding of each of the case's clips, alone, on one thread (as the runtime runs it)."""
    runner = OnnxRuntimeBackend(load_model(model_dir), threads=1).load("style_encoder")
    return [
        runner.run({"style_mel": case.style_mel[row : row + 1, :n], "style_len": case.style_len[row : row + 1]}, ["style_embedding"])["style_embedding"]
        for row, n in enumerate(case.style_len)
    ]


def test_a_model_exported_before_style_tokens_loads_and_is_brought_up_to_date_bit_for_bit(small_case, tmp_path):
    """A directory without the token weights and ``style_tokens`` (as trtgen wrote them before) still loads;
    ``add_style_tokens`` gives it both, leaving every other file as it was and every embedding bit for bit
    (listing the attention's softmax as an output changes nothing ONNX Runtime computes)."""
    import shutil

    from tests.export.legacy import strip_style_tokens
    from trtgen_export.style_tokens import _main, add_style_tokens, check_style_tokens

    case, model = small_case
    old = tmp_path / "old"
    shutil.copytree(model.directory, old)
    strip_style_tokens(old)
    before = load_model(old)
    assert not before.card.has_style_tokens and STYLE_TOKENS not in before.card.graphs
    assert not (old / f"{STYLE_TOKENS}.onnx").exists()
    files = {p.name: p.read_bytes() for p in old.iterdir() if p.name not in ("model.json", "style_encoder.onnx")}
    embeddings = _embeddings(old, case)
    assert _main([str(old)]) == 0  # python -m trtgen_export.style_tokens DIR
    assert load_model(old, verify=True).card.has_style_tokens
    assert {p.name: p.read_bytes() for p in old.iterdir() if p.name in files} == files
    for then, now, fresh in zip(embeddings, _embeddings(old, case), _embeddings(model.directory, case)):
        np.testing.assert_array_equal(now, then)
        np.testing.assert_array_equal(now, fresh)
    assert check_style_tokens(old) <= 1e-6
    digest = load_model(old).digest
    add_style_tokens(old)  # a second run leaves it alone
    assert load_model(old).digest == digest


def test_a_card_naming_style_tokens_without_the_weights_output_is_refused(small_case, tmp_path):
    import shutil

    from trtgen.engine.artifact import ModelCard, ModelError

    _, model = small_case
    broken = tmp_path / "broken"
    shutil.copytree(model.directory, broken)
    card = ModelCard.from_json(json.loads((broken / "model.json").read_text()))
    encoder = card.graphs["style_encoder"]
    card.graphs["style_encoder"] = dataclasses.replace(encoder, outputs=tuple(t for t in encoder.outputs if t.name != STYLE_TOKEN_WEIGHTS))
    card.write(broken)
    with pytest.raises(ModelError, match=STYLE_TOKEN_WEIGHTS):
        load_model(broken)


def _state(case: Case, model, encoded: dict, rng: np.random.Generator | None) -> dict:
    state = {}
    rows, time = encoded["memory_mask"].shape
    for spec in model.card.decoder_state:
        shape = model.card.state_shape(spec.name, rows, time)
        state[spec.name] = np.zeros(shape, np.float32) if rng is None else rng.normal(0, 0.5, shape).astype(np.float32)
        if rng is not None and spec.name in model.card.text_time_states:  # alignments: >= 0, zero beyond the text
            state[spec.name] = np.abs(state[spec.name]) * encoded["memory_mask"]
    return state


def test_one_decoder_step_with_identical_masks(case):
    case, model = case
    _, encoded = _encode(case, model)
    state = _state(case, model, encoded, np.random.default_rng(1))
    masks = [m[7] for m in case.masks]
    feeds = dict(memory=encoded["memory"], memory_keys=encoded["memory_keys"], memory_mask=encoded["memory_mask"], **state)
    feeds.update(zip(model.card.prenet_masks, masks))
    onnx_out = OnnxRuntimeBackend(model).load("decoder_step").run(feeds)
    tf_out, tf_next = case.reference.decoder_step(
        {k: tf.constant(v) for k, v in state.items()}, encoded["memory"], encoded["memory_keys"], encoded["memory_mask"], masks
    )
    for name in ("frames", "stop_logits", "alignment"):
        assert relative_error(onnx_out[name], tf_out[name]) <= TOLERANCE, name
    for spec in model.card.decoder_state:
        assert relative_error(onnx_out[spec.next], tf_next[spec.name]) <= TOLERANCE, spec.name


def test_200_step_free_running_decode_with_identical_masks_stops_at_the_same_step(case):
    case, model = case
    _, encoded = _encode(case, model)
    constant = dict(memory=encoded["memory"], memory_keys=encoded["memory_keys"], memory_mask=encoded["memory_mask"])
    state = _state(case, model, encoded, None)
    runner = OnnxRuntimeBackend(model).load("decoder_chunk")
    k = model.card.chunk_steps
    parts: dict[str, list] = {"frames": [], "stop_logits": [], "alignments": []}
    for start in range(0, STEPS, k):  # the runtime's loop: K steps per call, state carried over
        feeds = dict(constant, **state)
        feeds.update((name, m[start : start + k]) for name, m in zip(model.card.prenet_masks, case.masks))
        chunk = runner.run(feeds)
        state = {spec.name: chunk[spec.next] for spec in model.card.decoder_state}
        for key in parts:
            parts[key].append(chunk[key])
    out = {key: np.concatenate(value) for key, value in parts.items()}
    ref = case.reference.decode(
        encoded["memory"], encoded["memory_keys"], case.text_len,
        case.reference.prenet_masks_from(masks=[tf.constant(m) for m in case.masks]), max_steps=STEPS,
    )
    tf_lengths, tf_stopped = ref["lengths"].numpy(), ref["stopped"].numpy()
    assert tf_stopped.any() and 20 < tf_lengths.min() < STEPS, "the case must stop part-way"
    fired = 1.0 / (1.0 + np.exp(-out["stop_logits"][..., 0].T)) > 0.5  # [batch, steps]
    onnx_lengths = np.where(fired.any(axis=1), fired.argmax(axis=1) + 1, STEPS)
    np.testing.assert_array_equal(onnx_lengths, tf_lengths)
    frames = out["frames"].transpose(1, 0, 2)[:, : ref["frames"].shape[1]]
    assert relative_error(frames, ref["frames"].numpy()) <= TOLERANCE
    steps = ref["alignments"].shape[1]
    assert relative_error(out["alignments"].transpose(1, 0, 2)[:, :steps], ref["alignments"].numpy()) <= TOLERANCE


def test_postnet_and_magnitude(case):
    case, model = case
    rng = np.random.default_rng(2)
    mel = rng.normal(-3.0, 1.0, (2, 150, 80)).astype(np.float32)
    mel_len = np.array([150, 97], np.int32)
    out = OnnxRuntimeBackend(model).load("postnet").run({"mel": mel, "mel_len": mel_len})
    tf_mel, tf_mag = case.reference.postnet(mel, mel_len)
    assert relative_error(out["mel_postnet"], tf_mel) <= TOLERANCE
    assert relative_error(out["magnitude"], tf_mag) <= TOLERANCE


def test_model_directory_and_card(case):
    case, model = case
    card = json.loads((model.directory / "model.json").read_text())
    assert card["schema_version"] == 1 and card["opset"] == 17
    assert set(card["graphs"]) == set(GRAPH_NAMES) | set(OPTIONAL_GRAPHS)
    assert model.card.has_style_tokens
    heads, tokens = model.card.style_token_shape
    assert (heads, tokens) == (case.config.style_attention_heads, case.config.num_style_tokens)
    weights = {"name": STYLE_TOKEN_WEIGHTS, "dtype": "float32", "shape": ["batch", heads, tokens]}
    assert weights in card["graphs"]["style_encoder"]["outputs"]
    assert card["graphs"][STYLE_TOKENS]["inputs"] == [weights]
    assert card["graphs"][STYLE_TOKENS]["outputs"] == [{"name": "style_embedding", "dtype": "float32", "shape": ["batch", case.config.style_dim]}]
    assert card["model"] == json.loads(json.dumps(dataclasses.asdict(case.config)))
    assert len(card["text"]["symbols"]) == 94
    assert card["audio"]["hop_length"] == 200
    chunk = card["graphs"]["decoder_chunk"]
    masks = [t for t in chunk["inputs"] if t["name"].startswith("prenet_mask")]
    assert masks and all(t["shape"][:2] == [8, "batch"] for t in masks)
    assert {s["next"] for s in card["decoder_state"]} <= {t["name"] for t in chunk["outputs"]}
    load_model(model.directory, verify=True)  # every digest matches


def test_full_size_export_records_checkpoint_provenance(full_case):
    _, model = full_case
    source = model.card.source
    assert source["checkpoint"].endswith("model.ckpt-1000") and len(source["checkpoint_sha256"]) == 64
    assert max(source["parity"].values()) < 1e-4
    assert {STYLE_TOKEN_WEIGHTS, STYLE_TOKENS} <= set(source["parity"])


def test_cli_records_a_stop_threshold_in_the_card(tmp_path):
    args = ["export", "--random-init", "small", "--out", str(tmp_path / "model"), "--stop-threshold", "0.97"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert model_preset("small").stop_threshold != 0.97
    assert load_model(tmp_path / "model").card.model.stop_threshold == 0.97


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--attention-window", window, "attention window") for window in ("1", "a,b", "-1,3", "1,0")]
    + [("--stop-threshold", threshold, "stop_threshold must be in (0, 1)") for threshold in ("0", "1", "1.5")],
)
def test_cli_refuses_a_bad_decode_setting(tmp_path, option, value, message):
    """A malformed attention window or a stop threshold outside (0, 1): exit 2 naming it, nothing written."""
    args = ["export", "--random-init", "small", "--out", str(tmp_path / "model"), option, value]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "model").exists()


def test_cli_refuses_a_checkpoint_missing_a_variable(tmp_path):
    config = model_preset("small")
    weights = random_weights(config, 0)
    missing = "ForwardPass/tacotron_2_decoder/decoder/attention_wrapper/location_attention/attention_v"
    assert missing in expected_variables(config)
    del weights[missing]
    prefix = write_checkpoint(weights, tmp_path / "ckpt" / "model.ckpt-1")
    result = CliRunner().invoke(app, ["export", str(prefix), "--out", str(tmp_path / "model"), "--config", "small"])
    assert result.exit_code == 2
    assert missing in result.output
    assert not (tmp_path / "model" / "model.json").exists()
