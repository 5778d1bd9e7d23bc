"""The checkpoint variables of an OpenSeq2Seq ``tacotron_gst`` model, derived from a ModelConfig.

Weights travel through trtgen as ``dict[str, np.ndarray]`` keyed by OpenSeq2Seq's full variable names
and stored in the checkpoint's own layouts (docs/openseq2seq-notes.md §8): LSTM kernels ``[input + hidden, 4 * units]``,
Conv1D ``[k, in, out]``, Conv2D ``[kh, kw, in, out]``. The TensorFlow model, the ONNX export and the
independent numpy reference all read this one dict, so loading a checkpoint is a lookup, not a remap.
For the ``openseq2seq`` preset the list equals ``openseq2seq_variables.tsv`` name for name.
"""

from __future__ import annotations

import numpy as np

from trtgen.engine.config import ModelConfig

__all__ = [
    "ENCODER",
    "STYLE",
    "DECODER",
    "ATTENTION",
    "WeightDict",
    "expected_variables",
    "random_weights",
    "text_conv_name",
    "reference_conv_name",
    "decoder_lstm_name",
    "postnet_conv_name",
    "magnitude_conv_name",
    "BILSTM",
]

WeightDict = dict[str, np.ndarray]

ENCODER = "ForwardPass/tacotron2_encoder/"
STYLE = ENCODER + "style_encoder/"
DECODER = "ForwardPass/tacotron_2_decoder/"
ATTENTION = DECODER + "decoder/attention_wrapper/"
BILSTM = ENCODER + "stack_bidirectional_rnn/cell_0/bidirectional_rnn/{direction}/cudnn_compatible_lstm_cell/"
GRU = STYLE + "rnn/multi_rnn_cell/cell_0/gru_cell/"
LOCATION = ATTENTION + "location_attention/"
BN_PARTS = ("gamma", "beta", "moving_mean", "moving_variance")


def text_conv_name(i: int) -> str:
    """Scope of text-encoder conv ``i`` (0-based): ``conv1`` .. ``conv3``."""
    return f"{ENCODER}conv{i + 1}/"


def reference_conv_name(i: int) -> str:
    return f"{STYLE}conv{i + 1}/"


def decoder_lstm_name(i: int) -> str:
    return f"{ATTENTION}multi_rnn_cell/cell_{i}/lstm_cell/"


def postnet_conv_name(i: int) -> str:
    return f"{DECODER}conv{i + 1}/"


def magnitude_conv_name(i: int) -> str:
    return f"{DECODER}conv_{i}/"


def _conv_bn(shapes: dict[str, tuple[int, ...]], scope: str, kernel: tuple[int, ...]) -> None:
    shapes[scope + "kernel"] = kernel
    for part in BN_PARTS:
        shapes[f"{scope}bn/{part}"] = (kernel[-1],)


def reference_frequency_bins(config: ModelConfig) -> int:
    """Mel bins left after the reference convs: each stride-2 SAME conv maps n to ceil(n / 2)."""
    bins = config.num_mels
    for _ in config.reference_conv_channels:
        bins = -(-bins // config.reference_conv_stride)
    return bins


def expected_variables(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every inference variable's name and shape, in the order of docs/openseq2seq-notes.md §8."""
    c = config
    shapes: dict[str, tuple[int, ...]] = {}
    shapes[ENCODER + "EncoderEmbeddingMatrix"] = (c.num_symbols, c.embedding_dim)
    cin = 1
    for i, cout in enumerate(c.reference_conv_channels):
        _conv_bn(shapes, reference_conv_name(i), (c.reference_conv_kernel, c.reference_conv_kernel, cin, cout))
        cin = cout
    gru_in = reference_frequency_bins(c) * c.reference_conv_channels[-1]
    g = c.reference_gru_units
    shapes[GRU + "gates/kernel"] = (gru_in + g, 2 * g)
    shapes[GRU + "gates/bias"] = (2 * g,)
    shapes[GRU + "candidate/kernel"] = (gru_in + g, g)
    shapes[GRU + "candidate/bias"] = (g,)
    shapes[STYLE + "reference_activation/kernel"] = (g, c.reference_embedding_dim)
    shapes[STYLE + "reference_activation/bias"] = (c.reference_embedding_dim,)
    shapes[STYLE + "token_embeddings"] = (c.num_style_tokens, c.style_token_dim)
    a = c.style_attention_dim
    shapes[STYLE + "attention/q/kernel"] = (c.reference_embedding_dim, a)
    shapes[STYLE + "attention/k/kernel"] = (c.style_token_dim, a)
    shapes[STYLE + "attention/v/kernel"] = (c.style_token_dim, a)
    shapes[STYLE + "attention/output_transform/kernel"] = (a, a)
    shapes[STYLE + "attention/attention_v"] = (a // c.style_attention_heads,)
    cin = c.embedding_dim
    for i in range(c.encoder_conv_layers):
        _conv_bn(shapes, text_conv_name(i), (c.encoder_conv_kernel, cin, c.encoder_conv_channels))
        cin = c.encoder_conv_channels
    u = c.encoder_lstm_units
    for direction in ("fw", "bw"):
        scope = BILSTM.format(direction=direction)
        shapes[scope + "kernel"] = (cin + u, 4 * u)
        shapes[scope + "bias"] = (4 * u,)
    shapes[DECODER + "AttentionMechanism/memory_layer/kernel"] = (1, c.memory_dim, c.attention_dim)
    pin = c.num_mels
    for i, units in enumerate(c.prenet_units):
        shapes[f"{DECODER}decoder/prenet_{i + 1}/kernel"] = (pin, units)
        shapes[f"{DECODER}decoder/prenet_{i + 1}/bias"] = (units,)
        pin = units
    h = c.decoder_lstm_units
    lstm_in = pin + c.memory_dim
    for i in range(c.decoder_lstm_layers):
        shapes[decoder_lstm_name(i) + "kernel"] = (lstm_in + h, 4 * h)
        shapes[decoder_lstm_name(i) + "bias"] = (4 * h,)
        lstm_in = h
    shapes[LOCATION + "query_layer/kernel"] = (h, c.attention_dim)
    shapes[LOCATION + "location_conv/kernel"] = (c.location_kernel, 1, c.location_filters)
    shapes[LOCATION + "location_conv/bias"] = (c.location_filters,)
    shapes[LOCATION + "location_dense/kernel"] = (1, c.location_filters, c.attention_dim)
    shapes[LOCATION + "attention_v"] = (c.attention_dim,)
    shapes[LOCATION + "attention_bias"] = (c.attention_dim,)
    shapes[DECODER + "decoder/output_proj/kernel"] = (h + c.memory_dim, c.frame_dim)
    shapes[DECODER + "decoder/output_proj/bias"] = (c.frame_dim,)
    shapes[DECODER + "decoder/stop_token_proj/kernel"] = (c.num_mels, 1)
    shapes[DECODER + "decoder/stop_token_proj/bias"] = (1,)
    cin = c.num_mels
    for i, cout in enumerate((*c.postnet_channels, c.num_mels)):
        _conv_bn(shapes, postnet_conv_name(i), (c.postnet_kernel, cin, cout))
        cin = cout
    cin = c.num_mels
    for i, cout in enumerate(c.magnitude_conv_channels):
        _conv_bn(shapes, magnitude_conv_name(i), (c.magnitude_conv_kernel, cin, cout))
        cin = cout
    shapes[DECODER + "post_net_proj/kernel"] = (1, cin, c.num_freq)
    return shapes


NON_TRAINABLE_SUFFIXES = ("moving_mean", "moving_variance", "token_embeddings")


def random_weights(config: ModelConfig, seed: int = 0, *, stop_never_fires: bool = True) -> WeightDict:
    """A randomly initialised model with realistic scales.

    Kernels are Glorot-uniform; batch-norm statistics are perturbed away from identity so that parity
    tests exercise every term; tokens are U(-1, 1) as OpenSeq2Seq initialises them. With
    ``stop_never_fires`` the stop projection outputs a large negative logit, so decoding always runs to
    the step cap (random models otherwise stop at random frames).
    """
    rng = np.random.default_rng(seed)
    weights: WeightDict = {}
    for name, shape in expected_variables(config).items():
        leaf = name.rsplit("/", 1)[-1]
        if leaf == "gamma":
            value = rng.uniform(0.8, 1.2, shape)
        elif leaf == "beta":
            value = rng.normal(0.0, 0.1, shape)
        elif leaf == "moving_mean":
            value = rng.normal(0.0, 0.1, shape)
        elif leaf == "moving_variance":
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf == "token_embeddings":
            value = rng.uniform(-1.0, 1.0, shape)
        elif leaf in ("bias", "attention_bias", "attention_v") or len(shape) == 1:
            value = rng.normal(0.0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[:-1]))
            fan_out = int(np.prod(shape[:-2])) * shape[-1] if len(shape) > 2 else shape[-1]
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            value = rng.uniform(-limit, limit, shape)
        weights[name] = value.astype(np.float32)
    if stop_never_fires:
        weights[DECODER + "decoder/stop_token_proj/kernel"][:] = 0.0
        weights[DECODER + "decoder/stop_token_proj/bias"][:] = -20.0
    return weights
