"""What each stage costs, counted from the model card: the work that decides how the CPU's threads are shared.

The decoder's and the postnet's cost is their matrix products (their elementwise work is small beside
it); Griffin-Lim's is its FFTs plus the passes over memory around them, given as the matrix-product
work that takes as long on this project's CPU (benchmarks/bench_limits.py measures both;
docs/throughput.md). Used by :func:`trtgen.engine.synthesis.stage_threads` and the limits benchmark.
"""

from __future__ import annotations

import math

from trtgen.engine.artifact import ModelCard
from trtgen.engine.config import AudioConfig, ModelConfig

__all__ = ["decoder_products", "postnet_products", "flops", "work_per_frame", "GRIFFIN_LIM_FFT_FLOPS", "INT8_POSTNET_SPEEDUP"]

GRIFFIN_LIM_FFT_FLOPS = 210e3
"""One Griffin-Lim FFT of an 800-sample frame with its share of the projection, windows and
overlap-add: 2.8 us on one core of the project's CPU, the time of 210 kFLOP of matrix products at
its 75 GFLOP/s (benchmarks/RESULTS.md, "Limits")."""
INT8_POSTNET_SPEEDUP = 1.3
"""The int8 postnet against float32 on the CPU, the least measured (benchmarks/RESULTS.md, "Reduced precision")."""


def decoder_products(c: ModelConfig, batch: int, text_len: int) -> list[tuple[int, ...]]:
    """The matrix products of one decoder step (trtgen_export.tf_model.TacotronGST.decoder_step): ``(M, K, N)``
    with a constant right-hand side, or ``(B, 1, T, D)`` for the batched read of the attention memory.
    With an attention window the attention is computed at the window's positions only, whatever ``text_len``."""
    h, a = c.decoder_lstm_units, c.attention_dim
    if c.attention_positions is not None:
        text_len = c.attention_positions
    widths = (c.num_mels, *c.prenet_units)
    products: list[tuple[int, ...]] = [(batch, widths[i], widths[i + 1]) for i in range(len(c.prenet_units))]
    products.append((batch, c.prenet_units[-1] + c.memory_dim + h, 4 * h))
    products += [(batch, 2 * h, 4 * h)] * (c.decoder_lstm_layers - 1)
    products += [(batch, h, a), (batch * text_len, c.location_kernel, a), (batch * text_len, a, 1)]
    products.append((batch, 1, text_len, c.memory_dim))
    products += [(batch, h + c.memory_dim, c.frame_dim), (batch * c.reduction_factor, c.num_mels, 1)]
    return products


def postnet_products(c: ModelConfig, batch: int, frames: int) -> list[tuple[int, ...]]:
    """The postnet's convolutions as the matrix products they amount to, and the magnitude projection."""
    rows = batch * frames
    channels = (c.num_mels, *c.postnet_channels, c.num_mels)
    products = [(rows, channels[i] * c.postnet_kernel, channels[i + 1]) for i in range(len(channels) - 1)]
    magnitude = (c.num_mels, *c.magnitude_conv_channels)
    products += [(rows, magnitude[i] * c.magnitude_conv_kernel, magnitude[i + 1]) for i in range(len(magnitude) - 1)]
    products.append((rows, magnitude[-1], c.num_freq))
    return products


def flops(products: list[tuple[int, ...]]) -> float:
    """Floating-point operations of ``products`` (a multiply and an add per term)."""
    return sum(2.0 * math.prod(p) for p in products)


def work_per_frame(card: ModelCard, gl_iterations: int, int8_postnet: bool, text_len: int = 99) -> tuple[float, float]:
    """(decoder, postnet + Griffin-Lim) work per output frame, in FLOPs of matrix products."""
    c, audio = card.model, card.audio
    decoder = flops(decoder_products(c, 1, text_len)) / c.reduction_factor
    postnet = flops(postnet_products(c, 1, 1)) / (INT8_POSTNET_SPEEDUP if int8_postnet else 1.0)
    return decoder, postnet + (2 * gl_iterations + 1) * _fft_flops(audio)


def _fft_flops(audio: AudioConfig) -> float:
    return GRIFFIN_LIM_FFT_FLOPS * (audio.n_fft * math.log2(audio.n_fft)) / (800 * math.log2(800))
