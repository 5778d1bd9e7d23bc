"""Self-checks of the independent numpy reference (tests/numpy_reference.py).

The reference is what the TF2 / ONNX models are checked against, so its own building blocks are checked here
against direct loops, hand-written scalar recurrences and structural invariants from the spec. Everything uses
the ``small`` preset and tiny shapes.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from trtgen_export.variables import random_weights
from tests.export import numpy_reference as ref
from trtgen.engine.config import ModelConfig, model_preset

SMALL = model_preset("small")
H = SMALL.decoder_lstm_units
LSTM_LAST = f"{ref.ATTENTION}multi_rnn_cell/cell_{SMALL.decoder_lstm_layers - 1}/lstm_cell/"
OUTPUT_PROJ = ref.DECODER + "decoder/output_proj/"
STOP_PROJ = ref.DECODER + "decoder/stop_token_proj/"


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return random_weights(SMALL, seed=1)


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ------------------------------------------------------------------------------------------------ elementary ops


@pytest.mark.parametrize(
    ("n", "k", "s", "expected"),
    [
        (10, 5, 1, (2, 2)),
        (10, 4, 1, (1, 2)),
        (50, 32, 1, (15, 16)),
        (7, 32, 1, (15, 16)),
        (50, 31, 1, (15, 15)),
        (80, 3, 2, (0, 1)),  # even n
        (10, 3, 2, (0, 1)),
        (5, 3, 2, (1, 1)),  # odd n
        (3, 3, 2, (1, 1)),
        (1, 3, 2, (1, 1)),
    ],
)
def test_same_padding_matches_spec_examples(n: int, k: int, s: int, expected: tuple[int, int]) -> None:
    assert ref.same_padding(n, k, s) == expected


def test_reference_frequency_pads_follow_spec() -> None:
    """Spec §4.4.1: frequency 80→40→20→10→5→3→2 with pads (0,1) ×4 then (1,1) ×2."""
    n, pads, sizes = 80, [], []
    for _ in range(6):
        pads.append(ref.same_padding(n, 3, 2))
        n = -(-n // 2)
        sizes.append(n)
    assert sizes == [40, 20, 10, 5, 3, 2]
    assert pads == [(0, 1)] * 4 + [(1, 1)] * 2


@pytest.mark.parametrize(("k", "before"), [(1, 0), (4, 1), (5, 2), (32, 15), (31, 15)])
def test_conv1d_same_matches_direct_loop(k: int, before: int) -> None:
    rng = np.random.default_rng(k)
    x = rng.normal(size=(2, 7, 3))
    kernel = rng.normal(size=(k, 3, 2))
    bias = rng.normal(size=2)
    got = ref.conv1d_same(x.astype(np.float32), kernel.astype(np.float32), bias)
    want = np.zeros((2, 7, 2))
    for b in range(2):
        for t in range(7):
            for i in range(k):
                src = t + i - before
                if 0 <= src < 7:
                    want[b, t] += x[b, src].astype(np.float32) @ kernel[i].astype(np.float32).astype(np.float64)
            want[b, t] += bias
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("h", "w", "pad_h", "pad_w"), [(5, 6, 1, 0), (4, 7, 0, 1), (1, 2, 1, 0)])
def test_conv2d_same_stride2_matches_direct_loop(h: int, w: int, pad_h: int, pad_w: int) -> None:
    rng = np.random.default_rng(h * 10 + w)
    x = rng.normal(size=(1, h, w, 2))
    kernel = rng.normal(size=(3, 3, 2, 3))
    got = ref.conv2d_same(x, kernel, (2, 2))
    oh, ow = -(-h // 2), -(-w // 2)
    assert got.shape == (1, oh, ow, 3)
    want = np.zeros((1, oh, ow, 3))
    for p in range(oh):
        for q in range(ow):
            for i in range(3):
                for j in range(3):
                    tt, ff = 2 * p + i - pad_h, 2 * q + j - pad_w
                    if 0 <= tt < h and 0 <= ff < w:
                        want[0, p, q] += x[0, tt, ff] @ kernel[i, j]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_batch_norm_formula(weights: dict[str, np.ndarray]) -> None:
    scope = ref.DECODER + "conv5/"
    x = np.random.default_rng(0).normal(size=(2, 3, SMALL.num_mels))
    got = ref.batch_norm(x, weights, scope, 1.001e-5)
    g, b, m, v = (weights[scope + "bn/" + n].astype(np.float64) for n in ("gamma", "beta", "moving_mean", "moving_variance"))
    np.testing.assert_allclose(got, g * (x - m) / np.sqrt(v + 1.001e-5) + b, rtol=1e-13)


# ------------------------------------------------------------------------------------------------ recurrent cells


def _scalar_lstm(xs: np.ndarray, kernel: np.ndarray, bias: np.ndarray, forget_bias: float) -> list[tuple[float, float]]:
    """1-unit LSTM by hand: kernel [in+1, 4] with gate columns (input, candidate, forget, output)."""
    n_in = xs.shape[1]
    h = c = 0.0
    out = []
    for x in xs:
        z = [sum(float(x[k]) * float(kernel[k, g]) for k in range(n_in)) + h * float(kernel[n_in, g]) + float(bias[g]) for g in range(4)]
        c = _sig(z[2] + forget_bias) * c + _sig(z[0]) * math.tanh(z[1])
        h = _sig(z[3]) * math.tanh(c)
        out.append((h, c))
    return out


@pytest.mark.parametrize("cell", ["cudnn_compatible", "lstm_cell"])
def test_lstm_cells_match_scalar_loop(cell: str) -> None:
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(6, 2))
    kernel = rng.normal(size=(3, 4))
    bias = rng.normal(size=4)
    forget_bias = 0.0 if cell == "cudnn_compatible" else 1.0
    want = _scalar_lstm(xs, kernel, bias, forget_bias)
    h, c = np.zeros(1), np.zeros(1)
    for t, x in enumerate(xs):
        if cell == "cudnn_compatible":
            h, c = ref.cudnn_compatible_lstm_cell(x, h, c, kernel, bias)
        else:
            h, c = ref.lstm_cell(x, h, c, kernel, bias, forget_bias)
        assert h[0] == pytest.approx(want[t][0], abs=1e-14)
        assert c[0] == pytest.approx(want[t][1], abs=1e-14)


def test_lstm_cell_forget_bias_is_the_only_difference() -> None:
    rng = np.random.default_rng(4)
    x, h, c = rng.normal(size=(2, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    kernel, bias = rng.normal(size=(7, 16)), rng.normal(size=16)
    a = ref.cudnn_compatible_lstm_cell(x, h, c, kernel, bias)
    b = ref.lstm_cell(x, h, c, kernel, bias, 0.0)
    np.testing.assert_array_equal(a[0], b[0])
    shifted = bias.copy()
    shifted[8:12] += 1.0  # forget block (third) of 4 units
    np.testing.assert_allclose(ref.lstm_cell(x, h, c, kernel, bias, 1.0)[1], ref.cudnn_compatible_lstm_cell(x, h, c, kernel, shifted)[1], rtol=1e-13)


def test_gru_cell_matches_scalar_loop(weights: dict[str, np.ndarray]) -> None:
    gru = ref.STYLE + "rnn/multi_rnn_cell/cell_0/gru_cell/"
    wg, bg = weights[gru + "gates/kernel"].astype(np.float64), weights[gru + "gates/bias"].astype(np.float64)
    wc, bc = weights[gru + "candidate/kernel"].astype(np.float64), weights[gru + "candidate/bias"].astype(np.float64)
    units = SMALL.reference_gru_units
    n_in = wg.shape[0] - units
    xs = np.random.default_rng(5).normal(size=(3, n_in))
    h_hand = [0.0] * units
    h = np.zeros(units)
    for x in xs:
        xh = list(x) + h_hand
        r = [_sig(sum(xh[k] * wg[k, j] for k in range(len(xh))) + bg[j]) for j in range(units)]
        u = [_sig(sum(xh[k] * wg[k, units + j] for k in range(len(xh))) + bg[units + j]) for j in range(units)]
        xrh = list(x) + [r[j] * h_hand[j] for j in range(units)]
        cand = [math.tanh(sum(xrh[k] * wc[k, j] for k in range(len(xrh))) + bc[j]) for j in range(units)]
        h_hand = [u[j] * h_hand[j] + (1 - u[j]) * cand[j] for j in range(units)]
        h = ref.gru_cell(x, h, wg, bg, wc, bc)
        np.testing.assert_allclose(h, h_hand, rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------------------------------------------ text encoder


def test_bilstm_item_in_padded_batch_equals_item_alone(weights: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(6)
    c_in = SMALL.encoder_conv_channels
    u = SMALL.encoder_lstm_units
    lengths = np.array([6, 3, 1])
    x = rng.normal(size=(3, 6, c_in))  # positions >= len hold garbage, which must not matter
    out = ref.bidirectional_lstm(weights, SMALL, x, lengths)
    assert out.shape == (3, 6, 2 * u)
    fw = ref.ENCODER + "stack_bidirectional_rnn/cell_0/bidirectional_rnn/{}/cudnn_compatible_lstm_cell/"
    for b, n in enumerate(lengths):
        alone = ref.bidirectional_lstm(weights, SMALL, x[b : b + 1, :n], np.array([n]))
        np.testing.assert_allclose(out[b, :n], alone[0], rtol=0, atol=1e-14)
        assert not out[b, n:].any()
        # forward starts at t=0, backward starts at t=len-1, both from a zero state
        for d, t, sl in (("fw", 0, slice(0, u)), ("bw", n - 1, slice(u, 2 * u))):
            k, bias = weights[fw.format(d) + "kernel"].astype(np.float64), weights[fw.format(d) + "bias"].astype(np.float64)
            h, _ = ref.cudnn_compatible_lstm_cell(x[b, t], np.zeros(u), np.zeros(u), k, bias)
            np.testing.assert_allclose(out[b, t, sl], h, atol=1e-14)


def test_encode_text_batch_invariance(weights: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(7)
    ids = rng.integers(3, SMALL.num_symbols, size=(2, 8))
    text_len = np.array([8, 5])
    out = ref.encode_text(weights, SMALL, ids, text_len)
    assert out.shape == (2, 8, 2 * SMALL.encoder_lstm_units) and out.dtype == np.float64
    alone = ref.encode_text(weights, SMALL, ids[1:, :5], np.array([5]))
    np.testing.assert_allclose(out[1, :5], alone[0], atol=1e-13)
    assert not out[1, 5:].any()


# ------------------------------------------------------------------------------------------------ style encoder


def test_encode_style_item_in_padded_batch_equals_item_alone(weights: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(8)
    mel = rng.normal(size=(3, 16, SMALL.num_mels)).astype(np.float32)
    style_len = np.array([16, 9, 1])
    style = ref.encode_style(weights, SMALL, mel, style_len)
    assert style.shape == (3, SMALL.style_dim) and style.dtype == np.float64
    for b, n in enumerate(style_len):
        alone = ref.encode_style(weights, SMALL, mel[b : b + 1, :n], np.array([n]))
        np.testing.assert_allclose(style[b], alone[0], atol=1e-14)
    # the padding content of a shorter item is irrelevant
    other = mel.copy()
    other[1, 9:] = 0.0
    np.testing.assert_allclose(ref.encode_style(weights, SMALL, other, style_len)[1], style[1], atol=1e-14)


def test_reference_encoder_flatten_is_frequency_major(weights: dict[str, np.ndarray]) -> None:
    """Spec §4.4.2: GRU input feature index = f·C + c; check against an explicit unstack/concat."""
    mel = np.random.default_rng(9).normal(size=(5, SMALL.num_mels))
    x = mel[None, :, :, None]
    for i in range(6):
        scope = f"{ref.STYLE}conv{i + 1}/"
        x = np.maximum(ref.batch_norm(ref.conv2d_same(x, weights[scope + "kernel"], (2, 2)), weights, scope, SMALL.batch_norm_epsilon), 0)
    seq = np.concatenate([x[0, :, f, :] for f in range(x.shape[2])], axis=-1)  # unstack freq, concat channels
    gru = ref.STYLE + "rnn/multi_rnn_cell/cell_0/gru_cell/"
    h = np.zeros(SMALL.reference_gru_units)
    for t in range(seq.shape[0]):
        h = ref.gru_cell(seq[t], h, *(weights[gru + n].astype(np.float64) for n in ("gates/kernel", "gates/bias", "candidate/kernel", "candidate/bias")))
    np.testing.assert_allclose(ref.reference_encoder(weights, SMALL, mel), h, atol=1e-14)


def test_gst_attention_weights_sum_to_one_and_heads_are_slices(weights: dict[str, np.ndarray]) -> None:
    q_in = np.random.default_rng(10).uniform(-1, 1, size=(2, SMALL.reference_embedding_dim))
    style, w = ref.gst_attention(weights, SMALL, q_in)
    n_heads, n_tok = SMALL.style_attention_heads, SMALL.num_style_tokens
    assert w.shape == (2, n_heads, n_tok) and style.shape == (2, SMALL.style_dim)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-14)
    # explicit per-head loop with contiguous slices and the outer tanh (docs/openseq2seq-notes.md §4.4.6)
    s = ref.STYLE + "attention/"
    g = np.tanh(weights[ref.STYLE + "token_embeddings"].astype(np.float64))
    q = q_in @ weights[s + "q/kernel"]
    k = g @ weights[s + "k/kernel"]
    v = g @ weights[s + "v/kernel"]
    a = weights[s + "attention_v"].astype(np.float64)
    d = SMALL.style_dim // n_heads
    for b in range(2):
        heads = []
        for hh in range(n_heads):
            sl = slice(hh * d, (hh + 1) * d)
            scores = np.array([sum(math.tanh(a[j] * math.tanh(k[n, sl][j] + q[b, sl][j])) for j in range(d)) for n in range(n_tok)])
            wts = np.exp(scores) / np.exp(scores).sum()
            np.testing.assert_allclose(w[b, hh], wts, rtol=1e-6)
            heads.append(wts @ v[:, sl])
        np.testing.assert_allclose(style[b], np.concatenate(heads) @ weights[s + "output_transform/kernel"], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------ decoder


def _memory(weights: dict[str, np.ndarray], config: ModelConfig, text_len: np.ndarray, t_enc: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    text = rng.normal(size=(len(text_len), t_enc, 2 * config.encoder_lstm_units))
    style = rng.normal(size=(len(text_len), config.style_dim))
    return ref.build_memory(weights, config, text, style, text_len)


def test_build_memory_masks_values_and_keys(weights: dict[str, np.ndarray]) -> None:
    text_len = np.array([4, 2])
    memory, keys = _memory(weights, SMALL, text_len, 4)
    assert memory.shape == (2, 4, SMALL.memory_dim) and keys.shape == (2, 4, SMALL.attention_dim)
    assert not memory[1, 2:].any() and not keys[1, 2:].any()
    assert memory[1, :2, 2 * SMALL.encoder_lstm_units :].all()  # style part present inside the length


def test_decoder_step_prenet_masks(weights: dict[str, np.ndarray]) -> None:
    text_len = np.array([5, 3])
    memory, keys = _memory(weights, SMALL, text_len, 5)
    state = ref.initial_state(SMALL, 2, 5)
    state["frame"] = np.random.default_rng(12).normal(size=(2, SMALL.num_mels))
    ones = [np.ones((2, u)) for u in SMALL.prenet_units]
    zeros = [np.zeros((2, u)) for u in SMALL.prenet_units]
    out_none, _ = ref.decoder_step(weights, SMALL, state, memory, keys, text_len, None)
    out_ones, _ = ref.decoder_step(weights, SMALL, state, memory, keys, text_len, ones)
    out_zero, _ = ref.decoder_step(weights, SMALL, state, memory, keys, text_len, zeros)
    np.testing.assert_array_equal(out_none["projection"], out_ones["projection"])
    assert np.abs(out_ones["projection"] - out_zero["projection"]).max() > 1e-3
    # zero keep masks = a zero prenet output, whatever the frame
    state0 = dict(state, frame=np.zeros_like(state["frame"]) + 5.0)
    out_zero2, _ = ref.decoder_step(weights, SMALL, state0, memory, keys, text_len, zeros)
    np.testing.assert_array_equal(out_zero["projection"], out_zero2["projection"])
    np.testing.assert_array_equal(ref.prenet(weights, SMALL, state["frame"], zeros), 0.0)


def test_cumulative_alignment_sums_to_step_count(weights: dict[str, np.ndarray]) -> None:
    text_len = np.array([6, 2])
    memory, keys = _memory(weights, SMALL, text_len, 6)
    state = ref.initial_state(SMALL, 2, 6)
    for step in range(1, 5):
        out, state = ref.decoder_step(weights, SMALL, state, memory, keys, text_len)
        np.testing.assert_allclose(out["alignment"].sum(axis=-1), 1.0, atol=1e-14)
        assert not out["alignment"][1, 2:].any()
        assert np.isneginf(out["energies"][1, 2:]).all()
        np.testing.assert_allclose(state["cumulative_alignment"].sum(axis=-1), step, atol=1e-12)
        np.testing.assert_allclose(state["attention_context"], np.einsum("bt,btm->bm", out["alignment"], memory), atol=1e-14)
        np.testing.assert_array_equal(state["frame"], out["frames"][:, -1])


@pytest.mark.parametrize("r", [2, 3])
def test_reduction_factor_shapes_and_stop_per_frame(r: int) -> None:
    config = dataclasses.replace(SMALL, reduction_factor=r)
    w = random_weights(config, seed=2, stop_never_fires=False)
    text_len = np.array([2, 1])
    memory, keys = _memory(w, config, text_len, 2)
    out, state = ref.decoder_step(w, config, ref.initial_state(config, 2, 2), memory, keys, text_len)
    assert out["projection"].shape == (2, 80 * r)
    assert out["frames"].shape == (2, r, 80) and out["stop_logits"].shape == (2, r)
    for k in range(r):
        frame = out["projection"][:, 80 * k : 80 * k + 80]
        np.testing.assert_array_equal(out["frames"][:, k], frame)
        np.testing.assert_allclose(out["stop_logits"][:, k], frame @ w[STOP_PROJ + "kernel"][:, 0] + w[STOP_PROJ + "bias"][0], rtol=1e-6)
    np.testing.assert_array_equal(state["frame"], out["projection"][:, 80 * (r - 1) :])


@pytest.mark.parametrize(("r", "caps"), [(1, [10, 20]), (2, [5, 10]), (3, [4, 7])])
def test_decode_caps_without_stop(r: int, caps: list[int]) -> None:
    config = dataclasses.replace(SMALL, reduction_factor=r)
    w = random_weights(config, seed=3)  # stop never fires
    text_len = np.array([1, 2])
    np.testing.assert_array_equal(ref.decoding_caps(config, text_len), caps)
    memory, keys = _memory(w, config, text_len, 2)
    res = ref.decode(w, config, memory, keys, text_len)
    assert res.steps == max(caps)
    np.testing.assert_array_equal(res.lengths, np.array(caps) * r)
    assert not res.stopped.any()
    assert res.frames.shape == (2, max(caps) * r, 80) and res.stop_logits.shape == (2, max(caps) * r)
    assert res.alignments.shape == (2, max(caps), 2)
    np.testing.assert_allclose(res.final_state["cumulative_alignment"].sum(-1), max(caps), atol=1e-12)
    short = ref.decode(w, config, memory, keys, text_len, max_steps=3)
    assert short.steps == 3
    np.testing.assert_array_equal(short.lengths, [3 * r, 3 * r])
    np.testing.assert_array_equal(short.frames, res.frames[:, : 3 * r])


def _counting_stop_weights(config: ModelConfig, fire_step: int, frames_with_counter: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Weights whose stop probability crosses 0.5 exactly at decoder step ``fire_step`` (0-based).

    Unit 0 of the last LSTM layer becomes a counter: input/forget/output gates saturated open (bias 30, zero
    kernel columns) and candidate tanh(j) = δ, so c_t = (t+1)δ and h_t = tanh((t+1)δ). The output projection
    copies h_t into mel bin 0 of the frames in ``frames_with_counter`` (other frames of the group get -5 there),
    and the stop projection is 100·(bin0 - threshold) with the threshold midway between steps.
    """
    w = {k: v.copy() for k, v in random_weights(config, seed=4, stop_never_fires=False).items()}
    hidden = config.decoder_lstm_units
    delta = 0.05
    kern, bias = w[LSTM_LAST + "kernel"], w[LSTM_LAST + "bias"]
    for gate, value in ((0, 30.0), (1, math.atanh(delta)), (2, 30.0), (3, 30.0)):
        kern[:, gate * hidden] = 0.0
        bias[gate * hidden] = value
    for k in range(config.reduction_factor):
        col = 80 * k
        w[OUTPUT_PROJ + "kernel"][:, col] = 0.0
        if k in frames_with_counter:
            w[OUTPUT_PROJ + "kernel"][0, col] = 1.0  # row 0 = h_last unit 0
            w[OUTPUT_PROJ + "bias"][col] = 0.0
        else:
            w[OUTPUT_PROJ + "bias"][col] = -5.0
    threshold = 0.5 * (math.tanh(fire_step * delta) + math.tanh((fire_step + 1) * delta))
    w[STOP_PROJ + "kernel"][:] = 0.0
    w[STOP_PROJ + "kernel"][0, 0] = 100.0
    w[STOP_PROJ + "bias"][:] = -100.0 * threshold
    return {k: v.astype(np.float32) for k, v in w.items()}


def test_decode_stops_at_crafted_step_and_caps_per_item() -> None:
    w = _counting_stop_weights(SMALL, fire_step=12, frames_with_counter=(0,))
    text_len = np.array([1, 3])  # caps 10 and 30 steps
    memory, keys = _memory(w, SMALL, text_len, 3)
    res = ref.decode(w, SMALL, memory, keys, text_len)
    fired = ref.sigmoid(res.stop_logits) > 0.5
    assert not fired[:, :12].any() and fired[:, 12:].all()  # the counter is batch-independent
    assert res.steps == 13
    np.testing.assert_array_equal(res.lengths, [10, 13])  # item 0 capped before its stop would fire (sticky)
    np.testing.assert_array_equal(res.stopped, [False, True])


@pytest.mark.parametrize(("counter_frames", "expected_len"), [((0, 1), 2 * 7 + 1), ((1,), 2 * 7 + 2)])
def test_decode_stop_within_group_with_reduction(counter_frames: tuple[int, ...], expected_len: int) -> None:
    config = dataclasses.replace(SMALL, reduction_factor=2)
    w = _counting_stop_weights(config, fire_step=7, frames_with_counter=counter_frames)
    text_len = np.array([1, 3])  # caps 5 and 15 steps
    memory, keys = _memory(w, config, text_len, 3)
    res = ref.decode(w, config, memory, keys, text_len)
    assert res.steps == 8
    np.testing.assert_array_equal(res.lengths, [10, expected_len])
    np.testing.assert_array_equal(res.stopped, [False, True])
    assert res.frames.shape == (2, 16, 80)


def test_decode_mask_sources_agree(weights: dict[str, np.ndarray]) -> None:
    text_len = np.array([1, 1])
    memory, keys = _memory(weights, SMALL, text_len, 1)
    rng = np.random.default_rng(13)
    rate = 0.5
    masks = [(rng.random((10, 2, u)) >= rate) / (1 - rate) for u in SMALL.prenet_units]
    a = ref.decode(weights, SMALL, memory, keys, text_len, masks)
    b = ref.decode(weights, SMALL, memory, keys, text_len, lambda step: [m[step] for m in masks])
    c = ref.decode(weights, SMALL, memory, keys, text_len, None)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert np.abs(a.frames - c.frames).max() > 1e-3
    with pytest.raises(ValueError):
        ref.decode(weights, SMALL, memory, keys, np.array([2, 2]), [m[:3] for m in masks])


# ------------------------------------------------------------------------------------------------ postnet


def test_postnet_batch_invariance_and_shapes(weights: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(14)
    mel = rng.normal(size=(2, 12, SMALL.num_mels)).astype(np.float32)
    mel_len = np.array([12, 7])
    mel_final, mag = ref.postnet(weights, SMALL, mel, mel_len)
    assert mel_final.shape == (2, 12, SMALL.num_mels) and mag.shape == (2, 12, SMALL.num_freq)
    assert mel_final.dtype == np.float64 and mag.dtype == np.float64
    alone_final, alone_mag = ref.postnet(weights, SMALL, mel[1:, :7], np.array([7]))
    np.testing.assert_allclose(mel_final[1, :7], alone_final[0], atol=1e-13)
    np.testing.assert_allclose(mag[1, :7], alone_mag[0], atol=1e-12)
    assert not mel_final[1, 7:].any() and not mag[1, 7:].any()
    # the residual: the postnet adds a correction to the (masked) input
    assert np.abs(mel_final[0] - mel[0]).max() > 1e-3


def test_end_to_end_small_pipeline(weights: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(15)
    ids = rng.integers(3, SMALL.num_symbols, size=(2, 8))
    text_len = np.array([8, 6])
    style_mel = rng.normal(size=(2, 16, SMALL.num_mels)).astype(np.float32)
    style_len = np.array([16, 10])
    text = ref.encode_text(weights, SMALL, ids, text_len)
    style = ref.encode_style(weights, SMALL, style_mel, style_len)
    memory, keys = ref.build_memory(weights, SMALL, text, style, text_len)
    res = ref.decode(weights, SMALL, memory, keys, text_len, max_steps=4)
    mel_final, mag = ref.postnet(weights, SMALL, res.frames, res.lengths)
    assert res.frames.shape == (2, 4, 80) and mel_final.shape == (2, 4, 80) and mag.shape == (2, 4, 401)
    assert np.isfinite(mel_final).all() and np.isfinite(mag).all()
