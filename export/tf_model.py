"""OpenSeq2Seq's Tacotron 2 + Global Style Tokens, rebuilt in TensorFlow 2.

The model reads its weights straight from a :data:`~trtgen_export.variables.WeightDict` (OpenSeq2Seq names,
checkpoint layouts), so a TF1 checkpoint loads by name with no re-ordering. It is the reference that
the ONNX graphs are checked against, the source of those graphs (``trtgen_export.onnx_export``), and the
model trained by ``trtgen_export.train``.

Where trtgen departs from OpenSeq2Seq, on purpose (docs/openseq2seq-notes.md §10.2): every block zeroes positions beyond
an item's own length (text, style and decoder frames), and the style encoder pads each item as if it
were alone. A batched item therefore equals the same item decoded alone, which is OpenSeq2Seq at batch
size 1; OpenSeq2Seq's batched outputs instead depended on their batch neighbours.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from trtgen_export.variables import (
    BILSTM,
    DECODER,
    ENCODER,
    GRU,
    LOCATION,
    NON_TRAINABLE_SUFFIXES,
    STYLE,
    WeightDict,
    decoder_lstm_name,
    expected_variables,
    magnitude_conv_name,
    postnet_conv_name,
    reference_conv_name,
    text_conv_name,
)
from trtgen.engine.config import ModelConfig

__all__ = ["TacotronGST", "DecoderState", "same_padding", "state_names", "MASKED_SCORE"]

MASKED_SCORE = -1.0e4
"""Attention score beyond an item's text length: exp() of it underflows to exactly 0 in float32 (as
-inf does), yet it stays finite in float16 engines where -1e9 or -inf would breed NaNs."""

DecoderState = dict[str, tf.Tensor]


def same_padding(length: int, kernel: int, stride: int = 1) -> tuple[int, int]:
    """TF "SAME" padding (docs/openseq2seq-notes.md §0.2): the extra pad goes at the end."""
    out = -(-length // stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


def state_names(config: ModelConfig) -> list[str]:
    """Decoder state tensors, in the order the ONNX graphs carry them."""
    names = ["frame", "attention_context", "cumulative_alignment"]
    for i in range(config.decoder_lstm_layers):
        names += [f"lstm{i}_h", f"lstm{i}_c"]
    if config.attention_window is not None:
        names.append("previous_alignment")
    return names


def _sequence_mask(lengths: tf.Tensor, maxlen: tf.Tensor) -> tf.Tensor:
    return tf.sequence_mask(lengths, maxlen, dtype=tf.float32)


def _conv1d(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """Stride-1 Conv1D with TF SAME padding made explicit (k=4 pads 1 before, 2 after)."""
    before, after = same_padding(1, int(kernel.shape[0]))
    x = tf.pad(x, [[0, 0], [before, after], [0, 0]])
    return tf.nn.conv1d(x, kernel, stride=1, padding="VALID")


class TacotronGST(tf.Module):
    """The inference (and training) graph of OpenSeq2Seq's ``tacotron_gst``.

    Args:
        config: model dimensions.
        weights: values for every name of ``expected_variables(config)``.
        trainable: create trainable ``tf.Variable`` (for ``trtgen_export.train``); otherwise the weights are
            still variables, but frozen, which tf2onnx turns into ONNX initialisers.
    """

    def __init__(self, config: ModelConfig, weights: WeightDict, *, trainable: bool = False) -> None:
        super().__init__(name="tacotron_gst")
        config.validate()
        self.config = config
        expected = expected_variables(config)
        missing = sorted(set(expected) - set(weights))
        if missing:
            raise ValueError(f"weights lack {len(missing)} variables, e.g. {missing[:5]}")
        self.variables_by_name: dict[str, tf.Variable] = {}
        for name, shape in expected.items():
            value = np.asarray(weights[name], dtype=np.float32)
            if tuple(value.shape) != tuple(shape):
                raise ValueError(f"{name}: expected shape {list(shape)}, got {list(value.shape)}")
            is_trainable = trainable and not name.endswith(NON_TRAINABLE_SUFFIXES)
            self.variables_by_name[name] = tf.Variable(value, name=name.replace("/", "__"), trainable=is_trainable)
        self.batch_norm_momentum = 0.9
        """Moving-average momentum when training (OpenSeq2Seq: 0.9 as TF's 1 - 0.1)."""

    # ------------------------------------------------------------------ weights
    def w(self, name: str) -> tf.Variable:
        return self.variables_by_name[name]

    def weight_dict(self) -> WeightDict:
        """Current values, in checkpoint layout (for ``write_checkpoint``)."""
        return {name: v.numpy() for name, v in self.variables_by_name.items()}

    # ------------------------------------------------------------------ blocks
    def _batch_norm(
        self, x: tf.Tensor, scope: str, mask: tf.Tensor | None, training: bool
    ) -> tf.Tensor:
        """BatchNorm over the last axis. Training uses the moments of valid positions only."""
        gamma, beta = self.w(scope + "bn/gamma"), self.w(scope + "bn/beta")
        moving_mean, moving_var = self.w(scope + "bn/moving_mean"), self.w(scope + "bn/moving_variance")
        eps = self.config.batch_norm_epsilon
        if not training:
            return (x - moving_mean) * (gamma * tf.math.rsqrt(moving_var + eps)) + beta
        axes = list(range(len(x.shape) - 1))
        if mask is None:
            mean, var = tf.nn.moments(x, axes)
        else:
            count = tf.maximum(tf.reduce_sum(mask * tf.ones_like(x[..., :1])), 1.0)
            mean = tf.reduce_sum(x * mask, axes) / count
            var = tf.reduce_sum(tf.square(x - mean) * mask, axes) / count
        m = self.batch_norm_momentum
        moving_mean.assign(m * moving_mean + (1.0 - m) * mean)
        moving_var.assign(m * moving_var + (1.0 - m) * var)
        return (x - mean) * (gamma * tf.math.rsqrt(var + eps)) + beta

    @staticmethod
    def _dropout(x: tf.Tensor, rate: float, training: bool) -> tf.Tensor:
        return tf.nn.dropout(x, rate=rate) if training and rate > 0 else x

    def _block_lstm(self, x_time_major: tf.Tensor, scope: str) -> tf.Tensor:
        """One direction of the encoder LSTM: CudnnCompatibleLSTMCell = LSTMBlockCell with i,c,f,o
        gates and forget bias 0 (docs/openseq2seq-notes.md §4.3), run by TF's fused BlockLSTM kernel."""
        kernel, bias = self.w(scope + "kernel"), self.w(scope + "bias")
        units = int(bias.shape[0]) // 4
        batch = tf.shape(x_time_major)[1]
        zeros_state = tf.zeros([batch, units])
        zeros_peephole = tf.zeros([units])
        outputs = tf.raw_ops.BlockLSTM(
            seq_len_max=tf.cast(tf.shape(x_time_major)[0], tf.int64),
            x=x_time_major,
            cs_prev=zeros_state,
            h_prev=zeros_state,
            w=kernel,
            wci=zeros_peephole,
            wcf=zeros_peephole,
            wco=zeros_peephole,
            b=bias,
            forget_bias=0.0,
            cell_clip=-1.0,
            use_peephole=False,
        )
        return outputs.h

    def encode_text(self, text_ids: tf.Tensor, text_len: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Embedding, conv stack and masked BiLSTM (docs/openseq2seq-notes.md §4.1-4.3) -> [B, T, 2 * lstm units]."""
        c = self.config
        mask = _sequence_mask(text_len, tf.shape(text_ids)[1])[..., None]
        x = tf.gather(self.w(ENCODER + "EncoderEmbeddingMatrix"), text_ids) * mask
        for i in range(c.encoder_conv_layers):
            scope = text_conv_name(i)
            x = _conv1d(x, self.w(scope + "kernel"))
            x = tf.nn.relu(self._batch_norm(x, scope, mask, training))
            x = self._dropout(x, 0.5, training) * mask
        time_major = tf.transpose(x, [1, 0, 2])
        lengths = tf.cast(text_len, tf.int64)
        forward = self._block_lstm(time_major, BILSTM.format(direction="fw"))
        reversed_input = tf.reverse_sequence(time_major, lengths, seq_axis=0, batch_axis=1)
        backward = self._block_lstm(reversed_input, BILSTM.format(direction="bw"))
        backward = tf.reverse_sequence(backward, lengths, seq_axis=0, batch_axis=1)
        outputs = tf.transpose(tf.concat([forward, backward], axis=-1), [1, 0, 2])
        return outputs * mask

    def _reference_conv(
        self, x: tf.Tensor, lengths: tf.Tensor, scope: str, training: bool
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Conv2D stride s, TF SAME padding computed from each item's own length (docs/openseq2seq-notes.md §4.4.1).

        TF pads the time axis by (k - s) or (k - n mod s) in total depending on the length n, so
        in a batch each item is shifted by its own leading pad before a VALID convolution.
        """
        c = self.config
        k, s = c.reference_conv_kernel, c.reference_conv_stride
        kernel = self.w(scope + "kernel")
        time = tf.shape(x)[1]
        out_time = (time + s - 1) // s
        window = (out_time - 1) * s + k
        leads = sorted({max(k - s if r == 0 else k - r, 0) // 2 for r in range(s)})
        front = max(leads)
        padded = tf.pad(x, [[0, 0], [front, k + s], [0, 0], [0, 0]])
        residues = tf.math.floormod(lengths, s)
        item_lead = tf.where(residues == 0, max(k - s, 0) // 2, tf.maximum(k - residues, 0) // 2)
        shifted = None
        for lead in leads:
            candidate = padded[:, front - lead : front - lead + window]
            choose = tf.reshape(tf.equal(item_lead, lead), [-1, 1, 1, 1])
            shifted = candidate if shifted is None else tf.where(choose, candidate, shifted)
        freq_pad = same_padding(int(x.shape[2]), k, s)
        shifted = tf.pad(shifted, [[0, 0], [0, 0], list(freq_pad), [0, 0]])
        y = tf.nn.conv2d(shifted, kernel, strides=[1, s, s, 1], padding="VALID")
        new_lengths = (lengths + s - 1) // s
        mask = tf.reshape(_sequence_mask(new_lengths, tf.shape(y)[1]), [-1, tf.shape(y)[1], 1, 1])
        y = tf.nn.relu(self._batch_norm(y, scope, mask, training)) * mask
        return y, new_lengths

    def _gru_final_state(self, x: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """TF1 GRUCell over each item's own length; returns the state after its last frame."""
        gates_kernel, gates_bias = self.w(GRU + "gates/kernel"), self.w(GRU + "gates/bias")
        cand_kernel, cand_bias = self.w(GRU + "candidate/kernel"), self.w(GRU + "candidate/bias")
        units = int(cand_bias.shape[0])
        batch, steps = tf.shape(x)[0], tf.shape(x)[1]
        time_major = tf.transpose(x, [1, 0, 2])

        def body(t: tf.Tensor, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            x_t = time_major[t]
            gates = tf.sigmoid(tf.matmul(tf.concat([x_t, h], 1), gates_kernel) + gates_bias)
            reset, update = gates[:, :units], gates[:, units:]
            candidate = tf.tanh(tf.matmul(tf.concat([x_t, reset * h], 1), cand_kernel) + cand_bias)
            h_new = update * h + (1.0 - update) * candidate
            return t + 1, tf.where((t < lengths)[:, None], h_new, h)

        _, h = tf.while_loop(
            lambda t, h: t < steps, body, (tf.constant(0, lengths.dtype), tf.zeros([batch, units])),
            maximum_iterations=steps,
        )
        return h

    def encode_style(self, style_mel: tf.Tensor, style_len: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Reference encoder + GST attention (docs/openseq2seq-notes.md §4.4) -> style embedding [B, style_dim]."""
        return self.encode_style_with_token_weights(style_mel, style_len, training)[0]

    def encode_style_with_token_weights(
        self, style_mel: tf.Tensor, style_len: tf.Tensor, training: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """:meth:`encode_style` and the attention weights it mixes the tokens with: (style embedding [B, style_dim],
        token weights [B, heads, tokens]). The embedding is computed as by :meth:`encode_style`, op for op."""
        c = self.config
        lengths = tf.cast(style_len, tf.int32)
        x = style_mel[..., None] * _sequence_mask(lengths, tf.shape(style_mel)[1])[..., None, None]
        for i in range(len(c.reference_conv_channels)):
            x, lengths = self._reference_conv(x, lengths, reference_conv_name(i), training)
        shape = tf.shape(x)
        x = tf.reshape(x, [shape[0], shape[1], int(x.shape[2]) * int(x.shape[3])])
        state = self._gru_final_state(x, lengths)
        reference = tf.tanh(
            tf.matmul(state, self.w(STYLE + "reference_activation/kernel")) + self.w(STYLE + "reference_activation/bias")
        )
        weights = self.style_token_weights(reference)
        return self.embedding_from_token_weights(weights), weights

    def _style_heads(self) -> tuple[int, int]:
        """(heads, depth of a head) of the GST attention."""
        c = self.config
        return c.style_attention_heads, c.style_attention_dim // c.style_attention_heads

    def style_token_weights(self, reference: tf.Tensor) -> tf.Tensor:
        """Multi-head additive attention of the reference embedding over tanh(tokens), with OpenSeq2Seq's outer
        tanh (docs/openseq2seq-notes.md §4.4.6): per head a softmax over the tokens -> [B, heads, tokens]."""
        heads, depth = self._style_heads()
        tokens = tf.tanh(self.w(STYLE + "token_embeddings"))
        query = tf.matmul(reference, self.w(STYLE + "attention/q/kernel"))
        keys = tf.matmul(tokens, self.w(STYLE + "attention/k/kernel"))
        query = tf.reshape(query, [-1, heads, 1, depth])  # [B, h, 1, d]
        keys = tf.reshape(tf.transpose(tf.reshape(keys, [-1, heads, depth]), [1, 0, 2]), [1, heads, -1, depth])
        v = self.w(STYLE + "attention/attention_v")
        scores = tf.reduce_sum(tf.tanh(v * tf.tanh(keys + query)), axis=-1)  # [B, h, N]
        return tf.nn.softmax(scores, axis=-1)

    def embedding_from_token_weights(self, weights: tf.Tensor) -> tf.Tensor:
        """Token weights [B, heads, tokens] -> style embedding [B, style_dim]: each head's weighted sum of its
        token values, heads concatenated, then ``output_transform`` (§4.4.6). Linear in the weights."""
        heads, depth = self._style_heads()
        tokens = tf.tanh(self.w(STYLE + "token_embeddings"))
        values = tf.matmul(tokens, self.w(STYLE + "attention/v/kernel"))
        values = tf.transpose(tf.reshape(values, [-1, heads, depth]), [1, 0, 2])  # [h, N, d]
        heads_out = tf.einsum("bhn,hnd->bhd", weights, values)
        combined = tf.reshape(heads_out, [-1, heads * depth])
        return tf.matmul(combined, self.w(STYLE + "attention/output_transform/kernel"))

    def attention_memory(
        self, text_outputs: tf.Tensor, style: tf.Tensor, text_len: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Memory = [BiLSTM | style] masked by text_len; keys = memory_layer(memory) (§4.4.7, §5.1)."""
        time = tf.shape(text_outputs)[1]
        mask = _sequence_mask(text_len, time)
        tiled = tf.tile(style[:, None, :], [1, time, 1])
        memory = tf.concat([text_outputs, tiled], axis=-1) * mask[..., None]
        keys = tf.einsum("btm,ma->bta", memory, self.w(DECODER + "AttentionMechanism/memory_layer/kernel")[0])
        return memory, keys, mask

    # ------------------------------------------------------------------ decoder
    def initial_state(self, batch: int | tf.Tensor, time: int | tf.Tensor) -> DecoderState:
        c = self.config
        state = {
            "frame": tf.zeros([batch, c.num_mels]),
            "attention_context": tf.zeros([batch, c.memory_dim]),
            "cumulative_alignment": tf.zeros([batch, time]),
        }
        for i in range(c.decoder_lstm_layers):
            state[f"lstm{i}_h"] = tf.zeros([batch, c.decoder_lstm_units])
            state[f"lstm{i}_c"] = tf.zeros([batch, c.decoder_lstm_units])
        if c.attention_window is not None:
            state["previous_alignment"] = tf.zeros([batch, time])
        return state

    def decoder_step(
        self,
        state: DecoderState,
        memory: tf.Tensor,
        keys: tf.Tensor,
        mask: tf.Tensor,
        prenet_masks: list[tf.Tensor],
        training: bool = False,
    ) -> tuple[dict[str, tf.Tensor], DecoderState]:
        """One decoder step (docs/openseq2seq-notes.md §5.2). ``prenet_masks`` are scaled keep masks (0 or 1/(1-rate)),
        one [B, units] per prenet layer; all-ones masks switch dropout off.

        Returns ({"frames" [B, 80r], "stop_logits" [B, r], "alignment" [B, T]}, next state).
        """
        c = self.config
        x = state["frame"]
        for i, keep in enumerate(prenet_masks):
            layer = f"{DECODER}decoder/prenet_{i + 1}/"
            x = tf.nn.relu(tf.matmul(x, self.w(layer + "kernel")) + self.w(layer + "bias")) * keep
        layer_input = tf.concat([x, state["attention_context"]], axis=-1)
        next_state: DecoderState = {}
        for i in range(c.decoder_lstm_layers):
            scope = decoder_lstm_name(i)
            z = tf.matmul(tf.concat([layer_input, state[f"lstm{i}_h"]], axis=-1), self.w(scope + "kernel"))
            gate_i, gate_j, gate_f, gate_o = tf.split(z + self._lstm_bias(scope), 4, axis=-1)
            cell = tf.sigmoid(gate_f) * state[f"lstm{i}_c"] + tf.sigmoid(gate_i) * tf.tanh(gate_j)
            hidden = tf.sigmoid(gate_o) * tf.tanh(cell)
            next_state[f"lstm{i}_h"], next_state[f"lstm{i}_c"] = hidden, cell
            layer_input = self._dropout(hidden, 0.1, training)
        query = layer_input
        if c.attention_window is not None:
            alignment, context = self._windowed_attention(query, state, keys, memory, mask)
        else:
            alignment = self._location_attention(query, state["cumulative_alignment"], keys, mask)
            # A batched [1, T] x [T, M] product: the memory is read in place, never transposed per step.
            context = tf.squeeze(tf.matmul(tf.expand_dims(alignment, 1), memory), 1)
        output = tf.concat([query, context], axis=-1)
        frames = tf.matmul(output, self.w(DECODER + "decoder/output_proj/kernel")) + self.w(
            DECODER + "decoder/output_proj/bias"
        )
        grouped = tf.reshape(frames, [-1, c.reduction_factor, c.num_mels])
        stop_logits = tf.reshape(
            tf.matmul(grouped, self.w(DECODER + "decoder/stop_token_proj/kernel")), [-1, c.reduction_factor]
        ) + self.w(DECODER + "decoder/stop_token_proj/bias")
        next_state["frame"] = tf.gather(grouped, c.reduction_factor - 1, axis=1)
        next_state["attention_context"] = context
        next_state["cumulative_alignment"] = state["cumulative_alignment"] + alignment
        if c.attention_window is not None:
            next_state["previous_alignment"] = alignment
        return {"frames": frames, "stop_logits": stop_logits, "alignment": alignment}, next_state

    def _lstm_bias(self, scope: str) -> tf.Tensor:
        """The stored bias plus LSTMCell's run-time forget bias on the f block (i, j, f, o order):
        one constant, so the exported graph adds it once (docs/openseq2seq-notes.md §5.2.3)."""
        units = self.config.decoder_lstm_units
        forget = tf.concat(
            [tf.zeros([2 * units]), tf.fill([units], self.config.lstm_forget_bias), tf.zeros([units])], axis=0
        )
        return self.w(scope + "bias") + forget

    def _location_attention(
        self, query: tf.Tensor, cumulative: tf.Tensor, keys: tf.Tensor, mask: tf.Tensor
    ) -> tf.Tensor:
        """Location-sensitive attention over the cumulative alignment (docs/openseq2seq-notes.md §5.2.4).

        location_conv and location_dense are both linear, so they are applied as one convolution
        with kernel ``conv @ dense`` and bias ``conv_bias @ dense + attention_bias`` (constants at
        export): one Conv node per step instead of a conv, a transpose and a projection.
        """
        c = self.config
        kernel, bias = self._location_kernel()
        before, after = same_padding(1, c.location_kernel)
        batch, time = tf.shape(cumulative)[0], tf.shape(cumulative)[1]
        image = tf.reshape(cumulative, [batch, 1, time, 1])
        kernel = tf.reshape(kernel, [1, c.location_kernel, 1, c.attention_dim])
        location = tf.nn.conv2d(image, kernel, 1, [[0, 0], [0, 0], [before, after], [0, 0]])[:, 0]  # [B, T, A]
        return tf.nn.softmax(self._attention_scores(query, keys, location + bias, mask), axis=-1)

    def _location_kernel(self) -> tuple[tf.Tensor, tf.Tensor]:
        """location_conv then location_dense as one kernel ``[k, attention]`` and its bias (with the attention bias)."""
        conv_kernel = self.w(LOCATION + "location_conv/kernel")[:, 0, :]  # [k, filters]
        dense = self.w(LOCATION + "location_dense/kernel")[0]  # [filters, attention]
        bias = tf.linalg.matvec(dense, self.w(LOCATION + "location_conv/bias"), transpose_a=True)
        return tf.matmul(conv_kernel, dense), bias + self.w(LOCATION + "attention_bias")

    def _attention_scores(self, query: tf.Tensor, keys: tf.Tensor, location: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """``v . tanh(keys + W query + location)`` per position, masked positions at :data:`MASKED_SCORE`."""
        processed_query = tf.expand_dims(tf.matmul(query, self.w(LOCATION + "query_layer/kernel")), 1)
        energies = tf.tanh(keys + processed_query + location)
        scores = tf.squeeze(tf.matmul(energies, tf.expand_dims(self.w(LOCATION + "attention_v"), 1)), 2)
        # Beyond an item's text: a score whose exp() is exactly 0 (mask is 1 or 0, so valid scores
        # are unchanged bit for bit).
        return scores + (mask - 1.0) * -MASKED_SCORE

    def _windowed_attention(
        self, query: tf.Tensor, state: DecoderState, keys: tf.Tensor, memory: tf.Tensor, mask: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Location-sensitive attention computed only inside ``attention_window`` (alignment [B, T], context [B, M]).

        The same weights as attending over every symbol with the others masked (their exp() is exactly
        0), at the cost of ``behind + ahead + 1`` positions instead of the text's length: the window's
        keys, memory and cumulative-alignment taps are gathered, the fused location kernel applied to the
        taps, and the weights put back at their positions. Window positions outside the text (before its
        start, past its end) are masked.
        """
        c = self.config
        behind, ahead = c.attention_window
        cumulative = state["cumulative_alignment"]
        time = tf.shape(cumulative)[1]
        peak = tf.argmax(state["previous_alignment"], axis=1, output_type=tf.int32)
        positions = peak[:, None] - behind + tf.range(behind + ahead + 1)[None, :]  # [B, W]
        index = tf.clip_by_value(positions, 0, time - 1)
        inside = tf.cast(tf.logical_and(positions >= 0, positions < time), tf.float32)
        kernel, bias = self._location_kernel()
        before, _ = same_padding(1, c.location_kernel)
        taps = positions[:, :, None] - before + tf.range(c.location_kernel)[None, None, :]  # [B, W, k]
        tap_inside = tf.cast(tf.logical_and(taps >= 0, taps < time), tf.float32)
        values = tf.gather(cumulative, tf.clip_by_value(taps, 0, time - 1), batch_dims=1) * tap_inside
        location = tf.matmul(values, kernel) + bias  # [B, W, A]
        window_mask = tf.gather(mask, index, batch_dims=1) * inside
        scores = self._attention_scores(query, tf.gather(keys, index, batch_dims=1), location, window_mask)
        weights = tf.nn.softmax(scores, axis=-1)  # [B, W]
        context = tf.squeeze(tf.matmul(tf.expand_dims(weights, 1), tf.gather(memory, index, batch_dims=1)), 1)
        # Back to [B, T]: each position receives its window weight (masked positions add exact zeros).
        alignment = tf.reduce_sum(tf.expand_dims(weights, 2) * tf.one_hot(index, time), axis=1)
        return alignment, context

    def decode(
        self,
        memory: tf.Tensor,
        keys: tf.Tensor,
        text_len: tf.Tensor,
        mask_source: Callable[[tf.Tensor], list[tf.Tensor]],
        max_steps: int | None = None,
    ) -> dict[str, tf.Tensor]:
        """Free-running decode (docs/openseq2seq-notes.md §5.3) with trtgen's per-utterance cap and sticky stop.

        ``mask_source(step)`` gives the prenet keep masks of a step (see :meth:`prenet_masks_from`).
        Each item stops at its first frame with sigmoid(stop) > threshold, or after its cap of
        ceil(max_frames_per_symbol * text_len / r) steps (all their frames count); the loop ends when every item has ended or at
        ``max_steps``. Returns frames [B, T, 80], lengths in frames, stopped flags, alignments.
        """
        c = self.config
        batch, time = tf.shape(memory)[0], tf.shape(memory)[1]
        r = c.reduction_factor
        cap_frames = c.max_frames_per_symbol * tf.cast(text_len, tf.int32)
        cap_steps = (cap_frames + r - 1) // r
        limit = tf.reduce_max(cap_steps)
        if max_steps is not None:
            limit = tf.minimum(limit, max_steps)
        state = self.initial_state(batch, time)
        frames_ta = tf.TensorArray(tf.float32, size=0, dynamic_size=True)
        align_ta = tf.TensorArray(tf.float32, size=0, dynamic_size=True)
        lengths = tf.zeros([batch], tf.int32)
        finished = tf.zeros([batch], tf.bool)
        stopped = tf.zeros([batch], tf.bool)
        names = state_names(c)
        mask = _sequence_mask(text_len, time)

        def cond(step, state_list, frames_ta, align_ta, lengths, finished, stopped):
            return tf.logical_and(step < limit, tf.logical_not(tf.reduce_all(finished)))

        def body(step, state_list, frames_ta, align_ta, lengths, finished, stopped):
            state = dict(zip(names, state_list))
            out, next_state = self.decoder_step(state, memory, keys, mask, mask_source(step))
            fired = tf.sigmoid(out["stop_logits"]) > c.stop_threshold  # [B, r]
            any_fired = tf.reduce_any(fired, axis=1)
            first = tf.argmax(tf.cast(fired, tf.int32), axis=1, output_type=tf.int32)
            end_here = tf.logical_and(tf.logical_not(finished), any_fired)
            step_frames = tf.where(end_here, step * r + first + 1, (step + 1) * r)
            lengths = tf.where(finished, lengths, step_frames)
            stopped = tf.logical_or(stopped, end_here)
            finished = tf.logical_or(finished, tf.logical_or(end_here, step + 1 >= cap_steps))
            frames_ta = frames_ta.write(step, out["frames"])
            align_ta = align_ta.write(step, out["alignment"])
            return step + 1, [next_state[n] for n in names], frames_ta, align_ta, lengths, finished, stopped

        _, _, frames_ta, align_ta, lengths, _, stopped = tf.while_loop(
            cond,
            body,
            (tf.constant(0), [state[n] for n in names], frames_ta, align_ta, lengths, finished, stopped),
        )
        frames = tf.transpose(frames_ta.stack(), [1, 0, 2])
        frames = tf.reshape(frames, [batch, -1, c.num_mels])
        return {
            "frames": frames,
            "lengths": lengths,
            "stopped": stopped,
            "alignments": tf.transpose(align_ta.stack(), [1, 0, 2]),
        }

    def prenet_masks_from(
        self, *, rate: float = 0.0, seed: int | None = None, masks: list[tf.Tensor] | None = None, batch: tf.Tensor | None = None
    ) -> Callable[[tf.Tensor], list[tf.Tensor]]:
        """A per-step mask source: explicit masks [steps, B, units] per layer, seeded TF dropout
        (``tf.random.uniform`` with a seed, which converts to ONNX), or dropout off (rate 0)."""
        units = self.config.prenet_units
        if masks is not None:
            return lambda step: [m[step] for m in masks]
        if seed is None or rate == 0.0:
            if batch is None:
                raise ValueError("batch is needed to build all-ones masks")
            return lambda step: [tf.ones([batch, u]) for u in units]
        keep_scale = 1.0 / (1.0 - rate)

        def seeded(step: tf.Tensor) -> list[tf.Tensor]:
            return [
                tf.cast(tf.random.uniform([batch, u], seed=seed + i) >= rate, tf.float32) * keep_scale
                for i, u in enumerate(units)
            ]

        return seeded

    # ------------------------------------------------------------------ postnet
    def postnet(
        self, mel: tf.Tensor, mel_len: tf.Tensor, training: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Postnet residual and magnitude branch (docs/openseq2seq-notes.md §5.4-5.5), each item masked by its length."""
        c = self.config
        mask = _sequence_mask(mel_len, tf.shape(mel)[1])[..., None]
        x = mel * mask
        layers = len(c.postnet_channels) + 1
        for i in range(layers):
            scope = postnet_conv_name(i)
            x = self._batch_norm(_conv1d(x, self.w(scope + "kernel")), scope, mask, training)
            if i < layers - 1:
                x = tf.tanh(x)
            x = self._dropout(x, 0.5, training) * mask
        mel_final = (mel * mask + x) * mask
        y = mel_final
        for i in range(len(c.magnitude_conv_channels)):
            scope = magnitude_conv_name(i)
            y = tf.nn.relu(self._batch_norm(_conv1d(y, self.w(scope + "kernel")), scope, mask, training)) * mask
        magnitude = tf.einsum("btc,cf->btf", tf.exp(y), self.w(DECODER + "post_net_proj/kernel")[0]) * mask
        return mel_final, magnitude

