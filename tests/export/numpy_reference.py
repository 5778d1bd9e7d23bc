"""Independent pure-numpy reference of OpenSeq2Seq ``tacotron_gst`` inference (trtgen semantics).

Written from the readings of OpenSeq2Seq in ``docs/openseq2seq-notes.md`` (cited as "§x") and *not* from the
TensorFlow model in ``export/tf_model.py``, so that tests can check that model block by block.

Conventions
-----------
* Weights are the ``dict[str, np.ndarray]`` of :mod:`trtgen_export.variables`: full OpenSeq2Seq variable names,
  checkpoint layouts (Conv1D ``[k, in, out]``, Conv2D ``[kh, kw, in, out]``, LSTM kernels ``[in + units, 4 units]``).
* Every computation runs in **float64** and every array this module returns is **float64** (integer lengths are
  ``int64``, flags ``bool``). Inputs may be float32; they are promoted on entry.
* Batch-major layout ``[B, T, C]`` (docs/openseq2seq-notes.md §0.2).
* Batch invariance (trtgen's chosen reading of docs/openseq2seq-notes.md §10.2): every length-masked block treats each item as if it
  were alone in the batch (= OpenSeq2Seq at batch size 1). Text convs and the postnet zero every position
  ``>= len`` before the first conv and after every conv block; the reference encoder slices each item to its own
  length and runs it alone.

Public API (see each docstring): :func:`same_padding`, :func:`batch_norm`, :func:`conv1d_same`,
:func:`conv2d_same`, :func:`cudnn_compatible_lstm_cell`, :func:`lstm_cell`, :func:`gru_cell`,
:func:`bidirectional_lstm`, :func:`encode_text`, :func:`reference_encoder`, :func:`gst_attention`,
:func:`style_from_token_weights`, :func:`encode_style`, :func:`encode_style_with_token_weights`, :func:`build_memory`, :func:`initial_state`, :func:`prenet`, :func:`location_attention`,
:func:`decoder_step`, :func:`decoding_caps`, :func:`decode`, :func:`postnet`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from trtgen.engine.config import ModelConfig

__all__ = [
    "ENCODER",
    "STYLE",
    "DECODER",
    "ATTENTION",
    "DecodeResult",
    "State",
    "same_padding",
    "batch_norm",
    "conv1d_same",
    "conv2d_same",
    "sigmoid",
    "cudnn_compatible_lstm_cell",
    "lstm_cell",
    "gru_cell",
    "bidirectional_lstm",
    "encode_text",
    "reference_encoder",
    "gst_attention",
    "style_from_token_weights",
    "encode_style",
    "encode_style_with_token_weights",
    "build_memory",
    "initial_state",
    "prenet",
    "location_attention",
    "decoder_step",
    "decoding_caps",
    "decode",
    "postnet",
    "length_mask",
]

Weights = Mapping[str, np.ndarray]
State = dict[str, np.ndarray]
"""Decoder state: ``frame`` [B, num_mels], ``attention_context`` [B, M], ``cumulative_alignment`` [B, T],
``lstm{i}_h`` / ``lstm{i}_c`` [B, decoder_lstm_units] for i = 0 .. decoder_lstm_layers - 1 (0-based like the
checkpoint's ``cell_{i}``)."""

# Variable scopes (docs/openseq2seq-notes.md §8). Written out here instead of imported so the reference stays self-contained.
ENCODER = "ForwardPass/tacotron2_encoder/"
STYLE = ENCODER + "style_encoder/"
DECODER = "ForwardPass/tacotron_2_decoder/"
ATTENTION = DECODER + "decoder/attention_wrapper/"
_BILSTM = ENCODER + "stack_bidirectional_rnn/cell_0/bidirectional_rnn/{}/cudnn_compatible_lstm_cell/"
_GRU = STYLE + "rnn/multi_rnn_cell/cell_0/gru_cell/"
_LOCATION = ATTENTION + "location_attention/"

F64 = np.float64


def _w(weights: Weights, name: str) -> np.ndarray:
    """Weight ``name`` as float64 (KeyError names the missing variable)."""
    return np.asarray(weights[name], dtype=F64)


# ------------------------------------------------------------------------------------------------------------
# Elementary ops (docs/openseq2seq-notes.md §0.2)
# ------------------------------------------------------------------------------------------------------------


def same_padding(n: int, k: int, s: int = 1) -> tuple[int, int]:
    """TF "SAME" padding along one axis (docs/openseq2seq-notes.md §0.2).

    ``out = ceil(n/s)``, ``pad_total = max((out-1)*s + k - n, 0)``, ``pad_before = floor(pad_total/2)``,
    ``pad_after = pad_total - pad_before`` (the extra pad goes at the end).
    """
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    before = total // 2
    return before, total - before


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-free form ``0.5 * (1 + tanh(x / 2))``."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=F64)))


def batch_norm(x: np.ndarray, weights: Weights, scope: str, eps: float) -> np.ndarray:
    """Inference BatchNorm over the last axis (docs/openseq2seq-notes.md §0.2).

    ``y = gamma * (x - moving_mean) / sqrt(moving_variance + eps) + beta``; variables ``{scope}bn/...``.
    trtgen uses ``eps = config.batch_norm_epsilon`` (1.001e-5, the fused-kernel clamp, docs/openseq2seq-notes.md §0.2 / U5).
    """
    gamma = _w(weights, scope + "bn/gamma")
    beta = _w(weights, scope + "bn/beta")
    mean = _w(weights, scope + "bn/moving_mean")
    var = _w(weights, scope + "bn/moving_variance")
    return gamma * (np.asarray(x, dtype=F64) - mean) / np.sqrt(var + eps) + beta


def conv1d_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """``tf.layers.conv1d`` with stride 1 and TF SAME padding (docs/openseq2seq-notes.md §0.2).

    ``x`` [B, T, Cin], ``kernel`` [k, Cin, Cout] → [B, T, Cout];
    ``y[b, t] = sum_i xpad[b, t + i] @ kernel[i] (+ bias)`` with zero pads ``same_padding(T, k)``
    (k=5 → 2/2, k=4 → 1/2, k=32 → 15/16).
    """
    x = np.asarray(x, dtype=F64)
    kernel = np.asarray(kernel, dtype=F64)
    k = kernel.shape[0]
    t = x.shape[1]
    before, after = same_padding(t, k, 1)
    xp = np.pad(x, ((0, 0), (before, after), (0, 0)))
    y = np.zeros((x.shape[0], t, kernel.shape[2]), dtype=F64)
    for i in range(k):
        y += xp[:, i : i + t, :] @ kernel[i]
    if bias is not None:
        y = y + np.asarray(bias, dtype=F64)
    return y


def conv2d_same(x: np.ndarray, kernel: np.ndarray, stride: tuple[int, int] = (1, 1)) -> np.ndarray:
    """``tf.layers.conv2d`` (NHWC, no bias) with TF SAME padding on each spatial axis (docs/openseq2seq-notes.md §0.2).

    ``x`` [B, H, W, Cin], ``kernel`` [kh, kw, Cin, Cout] → [B, ceil(H/sh), ceil(W/sw), Cout];
    ``y[b, p, q] = sum_{i,j} xpad[b, p*sh + i, q*sw + j] @ kernel[i, j]`` with pads ``same_padding`` per axis
    (k=3, s=2: even n → 0/1, odd n → 1/1).
    """
    x = np.asarray(x, dtype=F64)
    kernel = np.asarray(kernel, dtype=F64)
    kh, kw = kernel.shape[:2]
    sh, sw = stride
    _, h, w, _ = x.shape
    ph, pw = same_padding(h, kh, sh), same_padding(w, kw, sw)
    xp = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    oh, ow = -(-h // sh), -(-w // sw)
    y = np.zeros((x.shape[0], oh, ow, kernel.shape[3]), dtype=F64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw, :]
            y += patch @ kernel[i, j]
    return y


def length_mask(lengths: np.ndarray, t: int) -> np.ndarray:
    """``mask[b, j] = 1.0 if j < lengths[b] else 0.0`` as float64 [B, t] (docs/openseq2seq-notes.md §5.1)."""
    return (np.arange(t)[None, :] < np.asarray(lengths)[:, None]).astype(F64)


# ------------------------------------------------------------------------------------------------------------
# Recurrent cells
# ------------------------------------------------------------------------------------------------------------


def cudnn_compatible_lstm_cell(
    x: np.ndarray, h: np.ndarray, c: np.ndarray, kernel: np.ndarray, bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``CudnnCompatibleLSTMCell`` step (docs/openseq2seq-notes.md §4.3): gate blocks **i, c̃, f, o**, no forget bias.

    ``z = [x, h] @ K + b``; ``c' = σ(f)⊙c + σ(i)⊙tanh(c̃)``; ``h' = σ(o)⊙tanh(c')``. Returns ``(h', c')``.
    """
    z = np.concatenate([x, h], axis=-1) @ kernel + bias
    i, g, f, o = np.split(z, 4, axis=-1)
    c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c_new), c_new


def lstm_cell(
    x: np.ndarray, h: np.ndarray, c: np.ndarray, kernel: np.ndarray, bias: np.ndarray, forget_bias: float
) -> tuple[np.ndarray, np.ndarray]:
    """``tf.nn.rnn_cell.LSTMCell`` step (docs/openseq2seq-notes.md §5.2.3): gate blocks **i, j, f, o**, forget bias added at run time.

    ``z = [x, h] @ K + b``; ``c' = σ(f + forget_bias)⊙c + σ(i)⊙tanh(j)``; ``h' = σ(o)⊙tanh(c')``.
    Returns ``(h', c')``.
    """
    z = np.concatenate([x, h], axis=-1) @ kernel + bias
    i, j, f, o = np.split(z, 4, axis=-1)
    c_new = sigmoid(f + forget_bias) * c + sigmoid(i) * np.tanh(j)
    return sigmoid(o) * np.tanh(c_new), c_new


def gru_cell(
    x: np.ndarray,
    h: np.ndarray,
    gates_kernel: np.ndarray,
    gates_bias: np.ndarray,
    candidate_kernel: np.ndarray,
    candidate_bias: np.ndarray,
) -> np.ndarray:
    """TF1 ``GRUCell`` step (docs/openseq2seq-notes.md §4.4.3): ``[r, u] = σ([x, h] @ Wg + bg)`` (columns: r first, then u);
    ``c = tanh([x, r⊙h] @ Wc + bc)``; ``h' = u⊙h + (1-u)⊙c``."""
    ru = sigmoid(np.concatenate([x, h], axis=-1) @ gates_kernel + gates_bias)
    r, u = np.split(ru, 2, axis=-1)
    cand = np.tanh(np.concatenate([x, r * h], axis=-1) @ candidate_kernel + candidate_bias)
    return u * h + (1.0 - u) * cand


# ------------------------------------------------------------------------------------------------------------
# Text encoder (docs/openseq2seq-notes.md §4.1-4.3)
# ------------------------------------------------------------------------------------------------------------


def bidirectional_lstm(weights: Weights, config: ModelConfig, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Masked bidirectional ``CudnnCompatibleLSTMCell`` layer (docs/openseq2seq-notes.md §4.3, inference graph).

    ``x`` [B, T, C], ``lengths`` [B] → [B, T, 2U] = concat(fw, bw) (fw first). For each item the forward cell
    runs over t = 0 .. len-1 and the backward cell over t = len-1 .. 0 (reverse within the valid length),
    both from zero state; outputs at t >= len are zero.
    """
    x = np.asarray(x, dtype=F64)
    b_size, t_max, _ = x.shape
    u = config.encoder_lstm_units
    out = np.zeros((b_size, t_max, 2 * u), dtype=F64)
    params = {
        d: (_w(weights, _BILSTM.format(d) + "kernel"), _w(weights, _BILSTM.format(d) + "bias")) for d in ("fw", "bw")
    }
    for b in range(b_size):
        n = int(lengths[b])
        for d, order, offset in (("fw", range(n), 0), ("bw", range(n - 1, -1, -1), u)):
            kernel, bias = params[d]
            h = np.zeros(u, dtype=F64)
            c = np.zeros(u, dtype=F64)
            for t in order:
                h, c = cudnn_compatible_lstm_cell(x[b, t], h, c, kernel, bias)
                out[b, t, offset : offset + u] = h
    return out


def encode_text(weights: Weights, config: ModelConfig, ids: np.ndarray, text_len: np.ndarray) -> np.ndarray:
    """Text encoder → ``memory_text`` [B, T, 2U] float64 (docs/openseq2seq-notes.md §4.1-4.3).

    Embedding lookup (§4.1); ``encoder_conv_layers`` × {Conv1D k SAME no bias → BN → ReLU} (§4.2; dropout is
    training-only); masked BiLSTM (§4.3). trtgen's batch-invariance rule (docs/openseq2seq-notes.md §10.2a): the embeddings at
    t >= text_len are zeroed before the first conv and every conv block's output is zeroed at t >= text_len, so
    each item equals the same item run alone.
    """
    ids = np.asarray(ids)
    text_len = np.asarray(text_len)
    mask = length_mask(text_len, ids.shape[1])[..., None]
    x = _w(weights, ENCODER + "EncoderEmbeddingMatrix")[ids] * mask
    for i in range(config.encoder_conv_layers):
        scope = f"{ENCODER}conv{i + 1}/"
        x = conv1d_same(x, _w(weights, scope + "kernel"))
        x = np.maximum(batch_norm(x, weights, scope, config.batch_norm_epsilon), 0.0) * mask
    return bidirectional_lstm(weights, config, x, text_len)


# ------------------------------------------------------------------------------------------------------------
# Style encoder / GST (docs/openseq2seq-notes.md §4.4)
# ------------------------------------------------------------------------------------------------------------


def reference_encoder(weights: Weights, config: ModelConfig, mel: np.ndarray) -> np.ndarray:
    """Reference encoder of ONE item alone: ``mel`` [T, num_mels] (already cut to its length) → GRU final state.

    Spec §4.4.1-4.4.3: ``X = mel[..., None]``; 6 × {Conv2D 3×3 stride 2 SAME (time and frequency), no bias → BN →
    ReLU}; flatten [T6, F6, C] row-major → feature ``f·C + c`` (§4.4.2); GRU from zero state over all T6 steps;
    returns the last hidden state [reference_gru_units]. Running the item alone makes the time-axis SAME pads
    come from the item's own length, and ``len ← (len+1)//2`` = ``ceil(len/2)`` is exactly the output length.
    """
    x = np.asarray(mel, dtype=F64)[None, :, :, None]
    s = config.reference_conv_stride
    for i in range(len(config.reference_conv_channels)):
        scope = f"{STYLE}conv{i + 1}/"
        x = conv2d_same(x, _w(weights, scope + "kernel"), (s, s))
        x = np.maximum(batch_norm(x, weights, scope, config.batch_norm_epsilon), 0.0)
    _, t6, f6, ch = x.shape
    seq = x[0].reshape(t6, f6 * ch)
    wg, bg = _w(weights, _GRU + "gates/kernel"), _w(weights, _GRU + "gates/bias")
    wc, bc = _w(weights, _GRU + "candidate/kernel"), _w(weights, _GRU + "candidate/bias")
    h = np.zeros(config.reference_gru_units, dtype=F64)
    for t in range(t6):
        h = gru_cell(seq[t], h, wg, bg, wc, bc)
    return h


def gst_attention(weights: Weights, config: ModelConfig, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GST multi-head "bahdanau" attention (docs/openseq2seq-notes.md §4.4.5-4.4.6).

    ``ref`` [B, reference_embedding_dim] (the query after ``reference_activation``) → ``(style [B, A],
    weights [B, H, N])``. ``G = tanh(token_embeddings)``; ``q = ref@Wq``, ``k = G@Wk``, ``v = G@Wv`` (no biases);
    head h = feature slice ``[h·d, (h+1)·d)``, d = A/H; score with the outer tanh
    ``s[b,h,n] = Σ_d tanh(a[d] · tanh(k[h,n,d] + q[b,h,d]))`` (shared ``attention_v`` a [d], no scaling, no mask);
    ``w = softmax_n(s)``; then :func:`style_from_token_weights`: ``o[b,h] = Σ_n w[b,h,n] v[h,n]``; heads
    concatenated head-major; ``style = o @ Wout``.
    """
    ref = np.asarray(ref, dtype=F64)
    heads = config.style_attention_heads
    d = config.style_attention_dim // heads
    tokens = np.tanh(_w(weights, STYLE + "token_embeddings"))
    q = ref @ _w(weights, STYLE + "attention/q/kernel")
    k = tokens @ _w(weights, STYLE + "attention/k/kernel")
    att_v = _w(weights, STYLE + "attention/attention_v")
    n_tok = tokens.shape[0]
    qh = q.reshape(q.shape[0], heads, 1, d)  # [B, H, 1, d]
    kh = k.reshape(n_tok, heads, d).transpose(1, 0, 2)[None]  # [1, H, N, d]
    scores = np.tanh(att_v * np.tanh(kh + qh)).sum(axis=-1)  # [B, H, N]
    w = np.exp(scores - scores.max(axis=-1, keepdims=True))
    w = w / w.sum(axis=-1, keepdims=True)
    return style_from_token_weights(weights, config, w), w


def style_from_token_weights(weights: Weights, config: ModelConfig, w: np.ndarray) -> np.ndarray:
    """The token bank: token weights ``w`` [B, H, N] (any values) → style [B, A] (docs/openseq2seq-notes.md §4.4.6).

    ``v = tanh(token_embeddings) @ Wv``, head h the feature slice ``[h·d, (h+1)·d)``; ``o[b,h] = Σ_n w[b,h,n] v[h,n]``,
    heads concatenated head-major; ``style = o @ Wout``. Linear in ``w``.
    """
    w = np.asarray(w, dtype=F64)
    heads = config.style_attention_heads
    a_dim = config.style_attention_dim
    d = a_dim // heads
    tokens = np.tanh(_w(weights, STYLE + "token_embeddings"))
    v = tokens @ _w(weights, STYLE + "attention/v/kernel")
    vh = v.reshape(tokens.shape[0], heads, d).transpose(1, 0, 2)  # [H, N, d]
    o = np.einsum("bhn,hnd->bhd", w, vh).reshape(w.shape[0], a_dim)
    return o @ _w(weights, STYLE + "attention/output_transform/kernel")


def encode_style(
    weights: Weights, config: ModelConfig, style_mel: np.ndarray, style_len: np.ndarray
) -> np.ndarray:
    """Style embedding [B, style_attention_dim] float64 (docs/openseq2seq-notes.md §4.4): the first of
    :func:`encode_style_with_token_weights`."""
    return encode_style_with_token_weights(weights, config, style_mel, style_len)[0]


def encode_style_with_token_weights(
    weights: Weights, config: ModelConfig, style_mel: np.ndarray, style_len: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(style embedding [B, style_attention_dim], token weights [B, H, N]) float64 (docs/openseq2seq-notes.md §4.4).

    Each item is cut to ``style_mel[b, :style_len[b]]`` and run alone through :func:`reference_encoder`
    (trtgen's batch-invariant reading of docs/openseq2seq-notes.md §4.4.1-3 / §10.2b: the GRU final state is the state at
    ``len6 - 1``); then ``ref = tanh(h @ W_ref + b_ref)`` (§4.4.4) and :func:`gst_attention` (§4.4.5-6).
    """
    style_mel = np.asarray(style_mel, dtype=F64)
    style_len = np.asarray(style_len)
    if np.any(style_len < 1):
        raise ValueError("style_len must be >= 1")
    h = np.stack(
        [reference_encoder(weights, config, style_mel[b, : int(style_len[b])]) for b in range(len(style_len))]
    )
    dense = STYLE + "reference_activation/"
    ref = np.tanh(h @ _w(weights, dense + "kernel") + _w(weights, dense + "bias"))
    return gst_attention(weights, config, ref)


def build_memory(
    weights: Weights, config: ModelConfig, memory_text: np.ndarray, style: np.ndarray, text_len: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Attention memory and keys (docs/openseq2seq-notes.md §4.4.7, §5.1) → ``(memory [B, T, M], keys [B, T, attention_dim])``.

    ``memory = concat(memory_text, style tiled over T)`` (text features first), then ``memory ⊙ mask`` with
    ``mask[b, j] = 1[j < text_len[b]]`` (these masked values are the attention ``values``);
    ``keys = memory @ memory_layer_kernel[0]`` (1×1 conv, no bias, computed from the masked memory).
    """
    memory_text = np.asarray(memory_text, dtype=F64)
    style = np.asarray(style, dtype=F64)
    b_size, t_max, _ = memory_text.shape
    tiled = np.broadcast_to(style[:, None, :], (b_size, t_max, style.shape[-1]))
    memory = np.concatenate([memory_text, tiled], axis=-1) * length_mask(text_len, t_max)[..., None]
    keys = memory @ _w(weights, DECODER + "AttentionMechanism/memory_layer/kernel")[0]
    return memory, keys


# ------------------------------------------------------------------------------------------------------------
# Decoder (docs/openseq2seq-notes.md §5.2-5.3)
# ------------------------------------------------------------------------------------------------------------


def initial_state(config: ModelConfig, batch: int, t_enc: int) -> State:
    """Zero decoder state (docs/openseq2seq-notes.md §5.2): go frame zeros, zero context, zero cumulative alignment, zero LSTM states."""
    state: State = {
        "frame": np.zeros((batch, config.num_mels), dtype=F64),
        "attention_context": np.zeros((batch, config.memory_dim), dtype=F64),
        "cumulative_alignment": np.zeros((batch, t_enc), dtype=F64),
    }
    for i in range(config.decoder_lstm_layers):
        state[f"lstm{i}_h"] = np.zeros((batch, config.decoder_lstm_units), dtype=F64)
        state[f"lstm{i}_c"] = np.zeros((batch, config.decoder_lstm_units), dtype=F64)
    if config.attention_window is not None:
        state["previous_alignment"] = np.zeros((batch, t_enc), dtype=F64)
    return state


def prenet(
    weights: Weights, config: ModelConfig, frame: np.ndarray, masks: Sequence[np.ndarray] | None
) -> np.ndarray:
    """Prenet (docs/openseq2seq-notes.md §5.2.1): per layer ``p = relu(x @ W + b) * mask_i``.

    ``masks[i]`` [B, prenet_units[i]] is the dropout keep mask already scaled (0 or 1/(1-rate), docs/openseq2seq-notes.md §0.2);
    ``None`` means no dropout (all ones).
    """
    x = np.asarray(frame, dtype=F64)
    for i in range(len(config.prenet_units)):
        scope = f"{DECODER}decoder/prenet_{i + 1}/"
        x = np.maximum(x @ _w(weights, scope + "kernel") + _w(weights, scope + "bias"), 0.0)
        if masks is not None:
            x = x * np.asarray(masks[i], dtype=F64)
    return x


def location_attention(
    weights: Weights,
    config: ModelConfig,
    query: np.ndarray,
    cumulative_alignment: np.ndarray,
    keys: np.ndarray,
    text_len: np.ndarray,
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Location-sensitive attention energies and alignment (docs/openseq2seq-notes.md §5.2.4) → ``(alignment [B, T], energies [B, T])``.

    ``pq = query @ W_query``; ``F = Conv1D(cum[..., None], location_kernel, SAME, bias)`` (k=32 → pads 15/16);
    ``L = F @ location_dense[0]``; ``e_j = Σ_k v_k tanh(keys_jk + pq_k + L_jk + b_k)``; ``e_j = -inf`` for
    ``j >= text_len`` and where ``allowed`` [B, T] (the attention window) is False; ``α = softmax(e)``.
    Energies are returned with the -inf mask applied.
    """
    pq = np.asarray(query, dtype=F64) @ _w(weights, _LOCATION + "query_layer/kernel")
    feats = conv1d_same(
        np.asarray(cumulative_alignment, dtype=F64)[..., None],
        _w(weights, _LOCATION + "location_conv/kernel"),
        _w(weights, _LOCATION + "location_conv/bias"),
    )
    loc = feats @ _w(weights, _LOCATION + "location_dense/kernel")[0]
    pre = np.asarray(keys, dtype=F64) + pq[:, None, :] + loc + _w(weights, _LOCATION + "attention_bias")
    energies = np.tanh(pre) @ _w(weights, _LOCATION + "attention_v")
    valid = length_mask(text_len, energies.shape[1]) > 0
    if allowed is not None:
        valid = valid & allowed
    energies = np.where(valid, energies, -np.inf)
    e = np.exp(energies - energies.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True), energies


def decoder_step(
    weights: Weights,
    config: ModelConfig,
    state: Mapping[str, np.ndarray],
    memory: np.ndarray,
    keys: np.ndarray,
    text_len: np.ndarray,
    prenet_masks: Sequence[np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], State]:
    """One decoder step (docs/openseq2seq-notes.md §5.2, with trtgen's reduction factor r = ``config.reduction_factor``).

    1. ``p = prenet(state["frame"])`` with the given keep masks (§5.2.1).
    2. ``u = concat(p, state["attention_context"])`` (§5.2.2).
    3. LSTM stack, ``tf.nn.rnn_cell.LSTMCell`` math (ijfo, ``+config.lstm_forget_bias``), layer i input = previous
       layer's new h (§5.2.3); query = last layer's h.
    4. Location-sensitive attention over ``state["cumulative_alignment"]`` (§5.2.4), limited to the attention
       window around ``state["previous_alignment"]``'s peak when the config has one; ``cum += α``;
       ``context = Σ_j α_j memory_j`` (``memory`` must be the masked memory of :func:`build_memory`).
    5. ``o = concat(h_last, context)``; ``projection = o @ output_proj + b`` [B, 80·r]; frame k of the group =
       columns ``[80k, 80k+80)`` (§5.2.5-6).
    6. ``stop_logits[:, k] = frame_k @ stop_token_proj + b`` for each of the r frames (§5.2.7).

    Returns ``(outputs, new_state)``; outputs: ``projection`` [B, 80r], ``frames`` [B, r, 80],
    ``stop_logits`` [B, r], ``alignment`` [B, T], ``energies`` [B, T] (masked with -inf), ``query`` [B, units].
    ``new_state["frame"]`` is the last frame of the group.
    """
    r = config.reduction_factor
    n_mels = config.num_mels
    p = prenet(weights, config, state["frame"], prenet_masks)
    x = np.concatenate([p, np.asarray(state["attention_context"], dtype=F64)], axis=-1)
    new_state: State = {}
    for i in range(config.decoder_lstm_layers):
        scope = f"{ATTENTION}multi_rnn_cell/cell_{i}/lstm_cell/"
        h, c = lstm_cell(
            x,
            np.asarray(state[f"lstm{i}_h"], dtype=F64),
            np.asarray(state[f"lstm{i}_c"], dtype=F64),
            _w(weights, scope + "kernel"),
            _w(weights, scope + "bias"),
            config.lstm_forget_bias,
        )
        new_state[f"lstm{i}_h"], new_state[f"lstm{i}_c"] = h, c
        x = h
    query = x
    allowed = None
    if config.attention_window is not None:
        # trtgen's attention window: symbols [peak - behind, peak + ahead] of the previous step's alignment.
        behind, ahead = config.attention_window
        peak = np.argmax(state["previous_alignment"], axis=-1)[:, None]
        position = np.arange(keys.shape[1])[None, :]
        allowed = (position >= peak - behind) & (position <= peak + ahead)
    alignment, energies = location_attention(weights, config, query, state["cumulative_alignment"], keys, text_len, allowed)
    context = np.einsum("bt,btm->bm", alignment, np.asarray(memory, dtype=F64))
    out = np.concatenate([query, context], axis=-1)
    proj = DECODER + "decoder/output_proj/"
    projection = out @ _w(weights, proj + "kernel") + _w(weights, proj + "bias")
    frames = projection.reshape(projection.shape[0], r, n_mels)
    stop = (frames @ _w(weights, DECODER + "decoder/stop_token_proj/kernel"))[..., 0] + _w(
        weights, DECODER + "decoder/stop_token_proj/bias"
    )[0]
    new_state["frame"] = frames[:, -1, :]
    new_state["attention_context"] = context
    new_state["cumulative_alignment"] = np.asarray(state["cumulative_alignment"], dtype=F64) + alignment
    if allowed is not None:
        new_state["previous_alignment"] = alignment
    outputs = {
        "projection": projection,
        "frames": frames,
        "stop_logits": stop,
        "alignment": alignment,
        "energies": energies,
        "query": query,
    }
    return outputs, new_state


def decoding_caps(config: ModelConfig, text_len: np.ndarray) -> np.ndarray:
    """Per-utterance step cap ``ceil(max_frames_per_symbol × text_len / r)`` as int64 [B] (docs/openseq2seq-notes.md §5.3 with trtgen's
    per-utterance cap and reduction factor)."""
    text_len = np.asarray(text_len, dtype=np.int64)
    r = config.reduction_factor
    return -(-(config.max_frames_per_symbol * text_len) // r)


@dataclass
class DecodeResult:
    """Output of :func:`decode`.

    ``frames`` [B, steps·r, num_mels] (not zeroed after an item finished: like OpenSeq2Seq, finished items keep
    being decoded until the loop ends); ``lengths`` [B] int64 in frames; ``stopped`` [B] bool (stop fired, as
    opposed to reaching the cap); ``stop_logits`` [B, steps·r]; ``alignments`` [B, steps, T] (one per step);
    ``steps`` = executed decoder steps; ``final_state`` after the last step.
    """

    frames: np.ndarray
    lengths: np.ndarray
    stopped: np.ndarray
    stop_logits: np.ndarray
    alignments: np.ndarray
    steps: int
    final_state: State


MaskSource = Callable[[int], Sequence[np.ndarray] | None] | Sequence[np.ndarray] | None


def _masks_for_step(masks: MaskSource, step: int) -> Sequence[np.ndarray] | None:
    if masks is None:
        return None
    if callable(masks):
        return masks(step)
    if step >= len(masks[0]):
        raise ValueError(f"prenet masks cover {len(masks[0])} steps; step {step} needs more")
    return [m[step] for m in masks]


def decode(
    weights: Weights,
    config: ModelConfig,
    memory: np.ndarray,
    keys: np.ndarray,
    text_len: np.ndarray,
    prenet_masks: MaskSource = None,
    max_steps: int | None = None,
) -> DecodeResult:
    """Free-running decoding loop (docs/openseq2seq-notes.md §5.2-5.3, trtgen semantics).

    ``prenet_masks``: ``None`` (no dropout), a callable ``step -> [mask_layer0 [B, u0], mask_layer1 ...]`` or a
    sequence with one array ``[steps, B, u_i]`` per prenet layer.

    Per item: cap = :func:`decoding_caps` steps (``cap·r`` frames); the item finishes at the first frame whose
    ``sigmoid(stop_logit) > config.stop_threshold`` (length = that frame's index + 1, ``stopped`` True) or when
    it has run ``cap`` steps (length ``cap·r`` frames, ``stopped`` False); finishing is sticky (docs/openseq2seq-notes.md §5.2.8,
    §5.3). The loop runs until every item is finished (or ``max_steps`` steps, after which unfinished items get
    length = frames produced and ``stopped`` False).
    """
    memory = np.asarray(memory, dtype=F64)
    text_len = np.asarray(text_len, dtype=np.int64)
    if np.any(text_len < 1):
        raise ValueError("text_len must be >= 1")
    b_size, t_enc, _ = memory.shape
    r = config.reduction_factor
    caps = decoding_caps(config, text_len)
    limit = int(caps.max()) if max_steps is None else min(int(caps.max()), int(max_steps))
    state = initial_state(config, b_size, t_enc)
    finished = np.zeros(b_size, dtype=bool)
    stopped = np.zeros(b_size, dtype=bool)
    lengths = np.zeros(b_size, dtype=np.int64)
    frames, stops, aligns = [], [], []
    step = 0
    while step < limit and not finished.all():
        masks = _masks_for_step(prenet_masks, step)
        out, state = decoder_step(weights, config, state, memory, keys, text_len, masks)
        frames.append(out["frames"])
        stops.append(out["stop_logits"])
        aligns.append(out["alignment"])
        fired = sigmoid(out["stop_logits"]) > config.stop_threshold  # [B, r]
        for b in range(b_size):
            if finished[b]:
                continue
            if fired[b].any():
                lengths[b] = step * r + int(np.argmax(fired[b])) + 1
                finished[b] = stopped[b] = True
            elif step + 1 >= caps[b]:
                lengths[b] = (step + 1) * r
                finished[b] = True
        step += 1
    lengths[~finished] = step * r
    return DecodeResult(
        frames=np.concatenate(frames, axis=1) if frames else np.zeros((b_size, 0, config.num_mels)),
        lengths=lengths,
        stopped=stopped,
        stop_logits=np.concatenate(stops, axis=1) if stops else np.zeros((b_size, 0)),
        alignments=np.stack(aligns, axis=1) if aligns else np.zeros((b_size, 0, t_enc)),
        steps=step,
        final_state=state,
    )


# ------------------------------------------------------------------------------------------------------------
# Postnet and magnitude branch (docs/openseq2seq-notes.md §5.4-5.5)
# ------------------------------------------------------------------------------------------------------------


def postnet(
    weights: Weights, config: ModelConfig, mel: np.ndarray, mel_len: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Postnet + magnitude branch → ``(mel_final [B, T, num_mels], magnitude [B, T, num_freq])`` float64.

    Spec §5.4: ``len(postnet_channels)+1`` × {Conv1D k SAME (5 → 2/2), no bias → BN}, tanh on all but the last;
    ``mel_final = mel + postnet_out``. Spec §5.5: 2 × {Conv1D k4 SAME (pads 1/2), no bias → BN → ReLU} (``conv_0``,
    ``conv_1``), ``exp``, 1×1 conv ``post_net_proj`` (no bias) to ``num_freq`` bins.
    trtgen batch invariance (§10.2c): frames >= mel_len are zeroed on input and after every conv layer, and
    both outputs are zero at t >= mel_len.
    """
    mel = np.asarray(mel, dtype=F64)
    mask = length_mask(mel_len, mel.shape[1])[..., None]
    eps = config.batch_norm_epsilon
    x0 = mel * mask
    x = x0
    n_post = len(config.postnet_channels) + 1
    for i in range(n_post):
        scope = f"{DECODER}conv{i + 1}/"
        x = batch_norm(conv1d_same(x, _w(weights, scope + "kernel")), weights, scope, eps)
        if i < n_post - 1:
            x = np.tanh(x)
        x = x * mask
    mel_final = (x0 + x) * mask
    a = mel_final
    for i in range(len(config.magnitude_conv_channels)):
        scope = f"{DECODER}conv_{i}/"
        a = np.maximum(batch_norm(conv1d_same(a, _w(weights, scope + "kernel")), weights, scope, eps), 0.0) * mask
    magnitude = (np.exp(a) @ _w(weights, DECODER + "post_net_proj/kernel")[0]) * mask
    return mel_final, magnitude

