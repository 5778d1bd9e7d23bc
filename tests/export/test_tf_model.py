"""The TensorFlow 2 model against the independent numpy reference, block by block (small config)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from trtgen_export.tf_model import TacotronGST, same_padding  # noqa: E402
from trtgen_export.variables import random_weights  # noqa: E402
from tests.export import numpy_reference as ref  # noqa: E402
from trtgen.engine.config import model_preset  # noqa: E402

TOLERANCE = 1e-5


def assert_close(actual, expected, what: str, tolerance: float = TOLERANCE) -> None:
    """Error relative to the expected output's scale (max |x|), as the issue states it."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(float(np.max(np.abs(expected))), 1e-6)
    error = float(np.max(np.abs(actual - expected))) / scale
    assert error <= tolerance, f"{what}: relative error {error:.2e} > {tolerance:.0e}"


@pytest.fixture(scope="module", params=[(1, None), (2, None), (2, (1, 3))], ids=["r1", "r2", "r2-window"])
def setup(request):
    reduction, window = request.param
    config = dataclasses.replace(model_preset("small"), reduction_factor=reduction, attention_window=window)
    weights = random_weights(config, seed=7, stop_never_fires=False)
    return config, weights, TacotronGST(config, weights)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(3)
    text_len = np.array([16, 8, 24], np.int32)
    ids = np.zeros((3, 24), np.int32)
    for b, n in enumerate(text_len):
        ids[b, :n] = rng.integers(3, 94, n)
        ids[b, n:] = rng.integers(0, 94, 24 - n)  # garbage beyond the length must not matter
    style_len = np.array([40, 64, 17], np.int32)
    style = rng.normal(-2.0, 1.5, (3, 64, 80)).astype(np.float32)
    return ids, text_len, style, style_len


def test_same_padding_matches_tf_examples():
    assert same_padding(10, 5) == (2, 2)
    assert same_padding(10, 4) == (1, 2)
    assert same_padding(10, 32) == (15, 16)
    assert same_padding(8, 3, 2) == (0, 1)
    assert same_padding(9, 3, 2) == (1, 1)


def test_text_encoder_embedding_convs_bilstm(setup, batch):
    config, weights, model = setup
    ids, text_len, _, _ = batch
    expected = ref.encode_text(weights, config, ids, text_len)
    actual = model.encode_text(ids, text_len).numpy()
    assert_close(actual, expected, "text encoder")


def test_text_encoder_with_full_size_conv_widths_is_exact_on_padding(setup, batch):
    """Positions beyond text_len are exactly zero (the attention memory relies on it)."""
    _, _, model = setup
    ids, text_len, _, _ = batch
    out = model.encode_text(ids, text_len).numpy()
    for b, n in enumerate(text_len):
        assert np.all(out[b, n:] == 0.0)


def test_style_encoder_gru_and_gst_attention(setup, batch):
    config, weights, model = setup
    _, _, style, style_len = batch
    expected = ref.encode_style(weights, config, style, style_len)
    actual = model.encode_style(style, style_len).numpy()
    assert_close(actual, expected, "style embedding")


def test_style_token_weights_and_the_token_bank(setup, batch):
    """The GST attention's weights (a softmax over the tokens per head) and the linear map from any weights
    to an embedding, against the numpy reference; the embedding is that map of the clip's own weights."""
    config, weights, model = setup
    _, _, style, style_len = batch
    expected_style, expected_weights = ref.encode_style_with_token_weights(weights, config, style, style_len)
    embedding, token_weights = (t.numpy() for t in model.encode_style_with_token_weights(style, style_len))
    assert token_weights.shape == (len(style_len), config.style_attention_heads, config.num_style_tokens)
    assert_close(token_weights, expected_weights, "token weights")
    np.testing.assert_allclose(token_weights.sum(axis=-1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(embedding, model.encode_style(style, style_len).numpy())
    assert_close(embedding, expected_style, "style embedding")
    assert_close(model.embedding_from_token_weights(token_weights).numpy(), embedding, "embedding of the clip's weights", 1e-6)
    drawn = np.random.default_rng(5).dirichlet(np.ones(config.num_style_tokens), token_weights.shape[:2]).astype(np.float32)
    assert_close(model.embedding_from_token_weights(drawn).numpy(), ref.style_from_token_weights(weights, config, drawn), "token bank")


def test_style_encoder_item_equals_item_alone(setup, batch):
    _, _, model = setup
    _, _, style, style_len = batch
    together = model.encode_style(style, style_len).numpy()
    for b, n in enumerate(style_len):
        alone = model.encode_style(style[b : b + 1, :n], style_len[b : b + 1]).numpy()
        assert_close(together[b : b + 1], alone, f"style item {b}", 1e-6)


def test_attention_memory_and_keys(setup, batch):
    config, weights, model = setup
    ids, text_len, style, style_len = batch
    text = ref.encode_text(weights, config, ids, text_len)
    style_embedding = ref.encode_style(weights, config, style, style_len)
    memory, keys = ref.build_memory(weights, config, text, style_embedding, text_len)
    tf_memory, tf_keys, tf_mask = model.attention_memory(
        tf.constant(text, tf.float32), tf.constant(style_embedding, tf.float32), text_len
    )
    assert_close(tf_memory.numpy(), memory, "memory")
    assert_close(tf_keys.numpy(), keys, "keys")
    np.testing.assert_array_equal(tf_mask.numpy(), ref.length_mask(text_len, ids.shape[1]))


def _encoded(config, weights, batch):
    ids, text_len, style, style_len = batch
    text = ref.encode_text(weights, config, ids, text_len)
    memory, keys = ref.build_memory(weights, config, text, ref.encode_style(weights, config, style, style_len), text_len)
    return memory.astype(np.float32), keys.astype(np.float32), text_len


def _random_masks(config, steps: int, batch_size: int, rate: float, seed: int):
    rng = np.random.default_rng(seed)
    return [
        ((rng.random((steps, batch_size, u)) >= rate) / (1.0 - rate)).astype(np.float32) for u in config.prenet_units
    ]


def test_one_decoder_step_with_identical_masks(setup, batch):
    config, weights, model = setup
    memory, keys, text_len = _encoded(config, weights, batch)
    rng = np.random.default_rng(5)
    state = ref.initial_state(config, 3, memory.shape[1])
    # A non-trivial state: random recurrent values and a plausible cumulative alignment.
    for name in state:
        state[name] = rng.normal(0, 0.5, state[name].shape)
    for name in ("cumulative_alignment", "previous_alignment"):
        if name in state:  # previous_alignment: with an attention window only
            state[name] = np.abs(state[name]) * ref.length_mask(text_len, memory.shape[1])
    masks = [m[0] for m in _random_masks(config, 1, 3, 0.5, seed=11)]
    expected_out, expected_state = ref.decoder_step(weights, config, state, memory, keys, text_len, masks)
    tf_state = {k: tf.constant(v, tf.float32) for k, v in state.items()}
    mask = ref.length_mask(text_len, memory.shape[1]).astype(np.float32)
    out, next_state = model.decoder_step(tf_state, memory, keys, mask, masks)
    assert_close(out["frames"].numpy(), expected_out["projection"], "frames")
    assert_close(out["stop_logits"].numpy(), expected_out["stop_logits"], "stop logits")
    assert_close(out["alignment"].numpy(), expected_out["alignment"], "alignment")
    for name, value in expected_state.items():
        assert_close(next_state[name].numpy(), value, f"state {name}")


def _weights_stopping_midway(config, weights, memory, keys, text_len, masks, steps):
    """Choose a stop projection under which no item stops in the first 5 steps and one stops later.

    With the bias at -1e4 the stop logits are observed; a kernel whose running-maximum logit sets a
    record after step 5 gets the bias between that record and the previous maximum. Kernels are drawn
    from a fixed seed sequence, so the search is deterministic.
    """
    stop_kernel = ref.DECODER + "decoder/stop_token_proj/kernel"
    stop_bias = ref.DECODER + "decoder/stop_token_proj/bias"
    r = config.reduction_factor
    for seed in range(50):
        probe = dict(weights)
        probe[stop_kernel] = np.random.default_rng(seed).normal(0, 0.3, weights[stop_kernel].shape).astype(np.float32)
        probe[stop_bias] = np.array([-1e4], np.float32)
        logits = ref.decode(probe, config, memory, keys, text_len, masks, max_steps=steps).stop_logits + 1e4
        per_step = logits.reshape(len(text_len), -1, r).max(axis=(0, 2))
        running = np.maximum.accumulate(per_step)
        records = [t for t in range(5, len(per_step)) if per_step[t] > running[t - 1] + 1e-3]
        if records:
            t = records[-1]
            probe[stop_bias] = np.array([-(running[t - 1] + per_step[t]) / 2], np.float32)
            return probe
    raise AssertionError("no stop projection with a late record found")


def test_free_running_decode_with_identical_masks(setup, batch):
    config, weights, _ = setup
    memory, keys, text_len = _encoded(config, weights, batch)
    steps = 40
    masks = _random_masks(config, steps, 3, 0.3, seed=2)
    weights = _weights_stopping_midway(config, weights, memory, keys, text_len, masks, steps)
    model = TacotronGST(config, weights)
    expected = ref.decode(weights, config, memory, keys, text_len, masks, max_steps=steps)
    assert expected.stopped.any() and expected.lengths.min() > 5 * config.reduction_factor
    out = model.decode(memory, keys, text_len, model.prenet_masks_from(masks=[tf.constant(m) for m in masks]), max_steps=steps)
    assert_close(out["frames"].numpy(), expected.frames, "decoded frames", 1e-4)
    np.testing.assert_array_equal(out["lengths"].numpy(), expected.lengths)
    np.testing.assert_array_equal(out["stopped"].numpy(), expected.stopped)


def _weight_outside_window(alignments: np.ndarray, behind: int, ahead: int) -> float:
    """Largest attention weight outside [peak - behind, peak + ahead] of the previous step's peak."""
    peaks = alignments.argmax(-1)  # [B, steps]
    previous = np.concatenate([np.zeros_like(peaks[:, :1]), peaks[:, :-1]], axis=1)[..., None]
    position = np.arange(alignments.shape[-1])[None, None, :]
    outside = (position < previous - behind) | (position > previous + ahead)
    return float(alignments[outside].max())


@pytest.mark.parametrize("window", [(0, 1), (1, 3)])
def test_attention_window_bounds_every_step(batch, window):
    """With ``attention_window`` no weight falls outside the window around the previous step's peak (so the
    peak moves at most ``ahead`` forward and ``behind`` back per step); the same weights unconstrained do."""
    unconstrained = model_preset("small")
    weights = random_weights(unconstrained, seed=7)
    memory, keys, text_len = _encoded(unconstrained, weights, batch)
    paths = {}
    for config in (unconstrained, dataclasses.replace(unconstrained, attention_window=window)):
        model = TacotronGST(config, weights)
        out = model.decode(memory, keys, text_len, model.prenet_masks_from(batch=3), max_steps=30)
        paths[config.attention_window] = _weight_outside_window(out["alignments"].numpy(), *window)
    assert paths[window] == 0.0
    assert paths[None] > 1e-3


def test_decode_stops_at_the_stop_token_and_caps_per_item(setup, batch):
    """A stop bias that always fires ends every item after its first step; a never-firing one runs
    each item to its own cap of 10 x text_len frames."""
    config, weights, _ = setup
    memory, keys, text_len = _encoded(config, weights, batch)
    firing = dict(weights)
    firing[ref.DECODER + "decoder/stop_token_proj/kernel"] = np.zeros_like(weights[ref.DECODER + "decoder/stop_token_proj/kernel"])
    firing[ref.DECODER + "decoder/stop_token_proj/bias"] = np.array([5.0], np.float32)
    model = TacotronGST(config, firing)
    out = model.decode(memory, keys, text_len, model.prenet_masks_from(batch=3))
    np.testing.assert_array_equal(out["lengths"].numpy(), [1, 1, 1])
    assert out["stopped"].numpy().all()
    never = dict(weights)
    never[ref.DECODER + "decoder/stop_token_proj/bias"] = np.array([-50.0], np.float32)
    never[ref.DECODER + "decoder/stop_token_proj/kernel"] = np.zeros_like(firing[ref.DECODER + "decoder/stop_token_proj/kernel"])
    model = TacotronGST(config, never)
    out = model.decode(memory, keys, text_len, model.prenet_masks_from(batch=3))
    r = config.reduction_factor
    np.testing.assert_array_equal(out["lengths"].numpy(), -(-10 * text_len // r) * r)
    assert not out["stopped"].numpy().any()


def test_postnet_and_magnitude_branch(setup):
    config, weights, model = setup
    rng = np.random.default_rng(9)
    mel = rng.normal(-3, 1, (3, 37, 80)).astype(np.float32)
    mel_len = np.array([37, 20, 5], np.int32)
    expected_mel, expected_mag = ref.postnet(weights, config, mel, mel_len)
    mel_final, magnitude = model.postnet(mel, mel_len)
    assert_close(mel_final.numpy(), expected_mel, "postnet mel")
    assert_close(magnitude.numpy(), expected_mag, "magnitude")


def test_seeded_dropout_changes_output_and_is_repeatable(setup, batch):
    config, weights, model = setup
    memory, keys, text_len = _encoded(config, weights, batch)
    off = model.decode(memory, keys, text_len, model.prenet_masks_from(batch=3), max_steps=5)["frames"].numpy()
    tf.random.set_seed(1)
    on = model.decode(memory, keys, text_len, model.prenet_masks_from(rate=0.5, seed=3, batch=3), max_steps=5)
    tf.random.set_seed(1)
    again = model.decode(memory, keys, text_len, model.prenet_masks_from(rate=0.5, seed=3, batch=3), max_steps=5)
    assert not np.allclose(on["frames"].numpy(), off)
    np.testing.assert_array_equal(on["frames"].numpy(), again["frames"].numpy())


@pytest.mark.parametrize("time", [2, 5, 9, 40])
def test_windowed_attention_equals_attention_over_every_symbol_with_the_rest_masked(time):
    """The window is computed at its own positions only; the weights, context and cumulative update must be
    those of scoring every symbol with the ones outside ``[peak - 1, peak + 3]`` (or the text) masked."""
    config = dataclasses.replace(model_preset("small"), attention_window=(1, 3))
    model = TacotronGST(config, random_weights(config, seed=5, stop_never_fires=False))
    rng = np.random.default_rng(time)
    batch = 6
    lengths = np.minimum(rng.integers(1, time + 1, batch), time)
    lengths[0] = time
    mask = (np.arange(time)[None, :] < lengths[:, None]).astype(np.float32)
    peaks = np.array([0, time - 1, min(1, time - 1), *rng.integers(0, time, batch - 3)])
    peaks = np.minimum(peaks, lengths - 1)
    previous = np.zeros((batch, time), np.float32)
    previous[np.arange(batch), peaks] = 1.0
    state = {"previous_alignment": tf.constant(previous), "cumulative_alignment": tf.constant(rng.uniform(0, 3, (batch, time)).astype(np.float32))}
    query = tf.constant(rng.normal(0, 1, (batch, config.decoder_lstm_units)).astype(np.float32))
    keys = tf.constant(rng.normal(0, 1, (batch, time, config.attention_dim)).astype(np.float32))
    memory = tf.constant(rng.normal(0, 1, (batch, time, config.memory_dim)).astype(np.float32))
    alignment, context = model._windowed_attention(query, state, keys, memory, tf.constant(mask))
    position = np.arange(time)[None, :]
    window = ((position >= peaks[:, None] - 1) & (position <= peaks[:, None] + 3)).astype(np.float32)
    expected = model._location_attention(query, state["cumulative_alignment"], keys, tf.constant(mask * window)).numpy()
    assert_close(alignment, expected, "alignment", 1e-6)
    assert float(np.abs(alignment.numpy() * (1 - mask * window)).max()) == 0.0  # nothing outside, exactly
    assert_close(context, np.einsum("bt,btm->bm", expected, memory.numpy()), "context", 1e-6)
