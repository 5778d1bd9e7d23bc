"""Teacher-forced decoding for training: :meth:`TacotronGST.decoder_step`'s arithmetic, restructured for speed.

Why a second implementation: on a 2-core CPU the training step is dominated by the per-step op overhead
of the decoder loop and its gradient. Under teacher forcing the prenet input of every step is known in
advance, so the prenet (with its dropout masks), the prenet part of the first LSTM's matmul, the output and
stop projections, and the decoder-LSTM dropout masks are all computed outside the loop; the location conv
and its dense layer (both linear) are merged into one conv. The loop keeps only what depends on the
previous step: the two LSTMs and the location-sensitive attention.

Inside the loop the forms are chosen for TensorFlow's CPU kernels and its loop gradient (profiled with
``benchmarks/bench_train_step.py``; training steps about 1.5x faster than with the straightforward forms): the
per-step prenet gates are read from a TensorArray (the gradient of slicing ``tensor[t]`` is a zero tensor
of the whole sequence per step), the LSTM kernels are multiplied transposed (see the comment there), and
the attention's score and context are matmuls rather than a broadcast sum and an einsum.

The math equals ``decoder_step`` (docs/openseq2seq-notes.md §5.2; tests/export/test_training.py checks it to float32 round-off with
dropout off), so a model trained through this path exports through ``decoder_step`` unchanged.
"""

from __future__ import annotations

import tensorflow as tf

from trtgen_export.tf_model import MASKED_SCORE, TacotronGST, same_padding
from trtgen_export.variables import DECODER, LOCATION, decoder_lstm_name

__all__ = ["teacher_forced_decode", "teacher_inputs", "dropout_masks", "DECODER_LSTM_DROPOUT"]

DECODER_LSTM_DROPOUT = 0.1
"""Dropout on each decoder LSTM's output while training (OpenSeq2Seq ``dp_output_keep_prob=0.9``, docs/openseq2seq-notes.md §5.2)."""


def teacher_inputs(mel: tf.Tensor, reduction_factor: int) -> tf.Tensor:
    """Prenet inputs per step, time-major [T / r, B, 80]: zeros, then the last frame of each previous group."""
    batch, frames, mels = tf.shape(mel)[0], tf.shape(mel)[1], mel.shape[-1]
    grouped = tf.reshape(mel, [batch, frames // reduction_factor, reduction_factor * mels])
    last = grouped[:, :, (reduction_factor - 1) * mels :]
    inputs = tf.concat([tf.zeros_like(last[:, :1]), last[:, :-1]], axis=1)
    return tf.transpose(inputs, [1, 0, 2])


def dropout_masks(steps: tf.Tensor, batch: tf.Tensor, units: tuple[int, ...] | list[int], rate: float) -> list[tf.Tensor]:
    """Scaled keep masks [steps, B, u] (0 or 1/(1-rate)), a fresh draw for every step; ones when rate is 0."""
    if rate == 0.0:
        return [tf.ones([steps, batch, u]) for u in units]
    return [tf.cast(tf.random.uniform([steps, batch, u]) >= rate, tf.float32) * (1.0 / (1.0 - rate)) for u in units]


def _conv1d_same(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    before, after = same_padding(1, int(kernel.shape[0]))
    return tf.nn.conv1d(tf.pad(x, [[0, 0], [before, after], [0, 0]]), kernel, stride=1, padding="VALID")


def teacher_forced_decode(
    model: TacotronGST,
    memory: tf.Tensor,
    keys: tf.Tensor,
    mask: tf.Tensor,
    mel: tf.Tensor,
    prenet_masks: list[tf.Tensor],
    lstm_masks: list[tf.Tensor] | None = None,
) -> dict[str, tf.Tensor]:
    """Decode ``mel.shape[1] / r`` steps, step ``t`` reading ground-truth frame ``t*r - 1`` (zeros at t = 0).

    Args:
        memory, keys, mask: from ``model.attention_memory``.
        mel: [B, T, 80] targets, T a multiple of the reduction factor.
        prenet_masks: one [T / r, B, units] scaled keep mask per prenet layer (:func:`dropout_masks`).
        lstm_masks: one [T / r, B, lstm units] mask per decoder LSTM layer for its output dropout, or None
            for none (inference behaviour).

    Returns frames [B, T, 80], stop_logits [B, T] and alignments [B, T / r, N].
    """
    c = model.config
    r = c.reduction_factor
    w = model.w
    batch, time = tf.shape(memory)[0], tf.shape(memory)[1]
    x = teacher_inputs(mel, r)
    steps = tf.shape(x)[0]
    for i, keep in enumerate(prenet_masks):
        layer = f"{DECODER}decoder/prenet_{i + 1}/"
        x = tf.nn.relu(tf.einsum("sbi,io->sbo", x, w(layer + "kernel")) + w(layer + "bias")) * keep
    prenet_width = int(x.shape[-1])
    first = decoder_lstm_name(0)
    first_kernel = w(first + "kernel")
    # Prenet rows of the first LSTM kernel: [prenet | previous context | h] (docs/openseq2seq-notes.md §5.2 step 3).
    gates_from_prenet = tf.einsum("sbi,io->sbo", x, first_kernel[:prenet_width]) + w(first + "bias")
    # Kernels inside the loop are used transposed ([out, in], multiplied with transpose_b): the loop's
    # gradient then multiplies by them untransposed. TF's CPU MatMul of a [B, 4u] gradient by a [in, 4u]
    # kernel with transpose_b runs ~5x slower than these two forms, and it ran once per layer per step.
    recurrent_first = tf.transpose(first_kernel[prenet_width:])
    later = [(tf.transpose(w(decoder_lstm_name(i) + "kernel")), w(decoder_lstm_name(i) + "bias")) for i in range(1, c.decoder_lstm_layers)]
    query_kernel = w(LOCATION + "query_layer/kernel")
    # location_dense(location_conv(cum)) is linear in cum: one conv with the product kernel.
    location_kernel = tf.einsum("kif,fa->kia", w(LOCATION + "location_conv/kernel"), w(LOCATION + "location_dense/kernel")[0])
    location_bias = tf.einsum("f,fa->a", w(LOCATION + "location_conv/bias"), w(LOCATION + "location_dense/kernel")[0])
    keys_biased = keys + location_bias + w(LOCATION + "attention_bias")
    attention_v = w(LOCATION + "attention_v")
    forget_bias = c.lstm_forget_bias
    units = c.decoder_lstm_units
    layers = c.decoder_lstm_layers

    def lstm(z: tf.Tensor, cell: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        gate_i, gate_j, gate_f, gate_o = tf.split(z, 4, axis=-1)
        cell = tf.sigmoid(gate_f + forget_bias) * cell + tf.sigmoid(gate_i) * tf.tanh(gate_j)
        return tf.sigmoid(gate_o) * tf.tanh(cell), cell

    def body(t, context, cumulative, hs, cs, query_ta, context_ta, align_ta):  # type: ignore[no-untyped-def]
        hs, cs = list(hs), list(cs)
        z = prenet_gates.read(t) + tf.matmul(tf.concat([context, hs[0]], axis=-1), recurrent_first, transpose_b=True)
        hs[0], cs[0] = lstm(z, cs[0])
        layer_input = hs[0] if lstm_masks is None else hs[0] * lstm_masks[0][t]
        for i, (kernel, bias) in enumerate(later, start=1):
            z = tf.matmul(tf.concat([layer_input, hs[i]], axis=-1), kernel, transpose_b=True) + bias
            hs[i], cs[i] = lstm(z, cs[i])
            layer_input = hs[i] if lstm_masks is None else hs[i] * lstm_masks[i][t]
        query = layer_input
        location = _conv1d_same(cumulative[..., None], location_kernel)
        energies = tf.tanh(keys_biased + tf.matmul(query, query_kernel)[:, None, :] + location)
        scores = tf.squeeze(tf.matmul(energies, attention_v[:, None]), -1)
        alignment = tf.nn.softmax(tf.where(mask > 0, scores, MASKED_SCORE), axis=-1)
        context = tf.squeeze(tf.matmul(alignment[:, None, :], memory), 1)
        return (
            t + 1, context, cumulative + alignment, hs, cs,
            query_ta.write(t, query), context_ta.write(t, context), align_ta.write(t, alignment),
        )  # fmt: skip

    # Read per step from a TensorArray, not by slicing: the gradient of ``tensor[t]`` is a zero tensor of
    # the whole [steps, B, 4 units] shape per step (steps^2 memory traffic); a TensorArray read's is one row.
    prenet_gates = tf.TensorArray(tf.float32, size=steps).unstack(gates_from_prenet)
    zeros = [tf.zeros([batch, units]) for _ in range(layers)]
    arrays = [tf.TensorArray(tf.float32, size=steps) for _ in range(3)]
    loop = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), tf.zeros([batch, c.memory_dim]), tf.zeros([batch, time]), zeros, list(zeros), *arrays),
    )
    queries, contexts, alignments = (ta.stack() for ta in loop[5:])
    outputs = tf.concat([queries, contexts], axis=-1)  # [steps, B, units + memory]
    frames = tf.einsum("sbi,io->sbo", outputs, w(DECODER + "decoder/output_proj/kernel")) + w(DECODER + "decoder/output_proj/bias")
    frames = tf.reshape(tf.transpose(frames, [1, 0, 2]), [batch, steps * r, c.num_mels])
    stop_logits = tf.einsum("bfm,mo->bfo", frames, w(DECODER + "decoder/stop_token_proj/kernel"))[..., 0]
    stop_logits = stop_logits + w(DECODER + "decoder/stop_token_proj/bias")
    return {"frames": frames, "stop_logits": stop_logits, "alignments": tf.transpose(alignments, [1, 0, 2])}
