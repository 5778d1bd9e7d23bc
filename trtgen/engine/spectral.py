"""Windows, framing, STFT and overlap-add shared by the style front end and the Griffin-Lim vocoder.

Semantics are librosa 0.6.3's, which OpenSeq2Seq pinned (docs/openseq2seq-notes.md §3, §6.1): a periodic Hann window
centred in ``n_fft``, ``center=True`` with reflect padding of ``n_fft // 2`` on each side, so a
signal of ``n`` samples has ``1 + n // hop_length`` frames. Everything stays float32 / complex64,
frames are strided views (no copies), and every function takes the array module ``xp`` so the
vocoder runs unchanged on CuPy.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Optional

import numpy as np
import scipy.fft

from trtgen.engine.config import AudioConfig

__all__ = [
    "hann_window",
    "window_sumsquare",
    "frame_view",
    "num_frames",
    "reflect_pad",
    "reflect_index",
    "rfft",
    "irfft",
    "stft",
    "overlap_add",
]

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=16)
def _hann_window_np(n_fft: int, win_length: int) -> np.ndarray:
    padded = _hann_window_f64(n_fft, win_length).astype(np.float32)
    padded.setflags(write=False)
    return padded


@functools.lru_cache(maxsize=16)
def _hann_window_f64(n_fft: int, win_length: int) -> np.ndarray:
    if not 0 < win_length <= n_fft:
        raise ValueError(f"win_length must be in 1..n_fft ({n_fft}), got {win_length}")
    n = np.arange(win_length, dtype=np.float64)
    # Periodic ("fftbins=True") Hann, as scipy.signal.get_window('hann', N) and librosa use.
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    padded = np.zeros(n_fft, dtype=np.float64)
    start = (n_fft - win_length) // 2  # librosa.util.pad_center
    padded[start : start + win_length] = window
    padded.setflags(write=False)
    return padded


def hann_window(cfg: AudioConfig, xp: Any = np) -> Any:
    """Periodic Hann of ``win_length`` centred in ``n_fft`` samples (librosa ``get_window`` + ``pad_center``)."""
    window = _hann_window_np(cfg.n_fft, cfg.win_length)
    return window if xp is np else xp.asarray(window)


def window_sumsquare(cfg: AudioConfig, frames: int, xp: Any = np) -> Any:
    """Sum of the squared, overlap-added window for ``frames`` frames: istft's normaliser.

    Length ``n_fft + hop_length * (frames - 1)``, float32; computed in float64 then rounded once
    (librosa accumulates in float32: the difference is below float32 resolution of the result).
    """
    if frames < 1:
        raise ValueError(f"window_sumsquare needs at least one frame, got {frames}")
    win_sq = _hann_window_f64(cfg.n_fft, cfg.win_length) ** 2
    hop = cfg.hop_length
    blocks = -(-cfg.n_fft // hop)
    padded = np.zeros(blocks * hop, dtype=np.float64)
    padded[: cfg.n_fft] = win_sq
    out = np.zeros((frames - 1 + blocks, hop), dtype=np.float64)
    for r, block in enumerate(padded.reshape(blocks, hop)):
        out[r : r + frames] += block
    wss = out.reshape(-1)[: cfg.n_fft + hop * (frames - 1)].astype(np.float32)
    return wss if xp is np else xp.asarray(wss)


def num_frames(num_samples: int, cfg: AudioConfig) -> int:
    """Frames of a centred STFT of ``num_samples`` samples: ``1 + num_samples // hop_length``."""
    return 1 + num_samples // cfg.hop_length


def frame_view(x: Any, frame_length: int, hop_length: int, xp: Any = np) -> Any:
    """Read-only strided view ``[..., frames, frame_length]`` over the last axis of ``x`` (no copy).

    The last axis must be contiguous; frames that do not fit entirely are dropped (librosa.util.frame).
    """
    if x.shape[-1] < frame_length:
        raise ValueError(f"cannot frame {x.shape[-1]} samples with frame_length {frame_length}")
    if x.strides[-1] != x.itemsize:
        x = xp.ascontiguousarray(x)
    count = 1 + (x.shape[-1] - frame_length) // hop_length
    shape = tuple(x.shape[:-1]) + (count, frame_length)
    strides = tuple(x.strides[:-1]) + (x.strides[-1] * hop_length, x.strides[-1])
    if xp is np:
        return np.lib.stride_tricks.as_strided(x, shape=shape, strides=strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)


def reflect_pad(y: np.ndarray, pad: int) -> np.ndarray:
    """``np.pad(y, pad, mode="reflect")`` on the last axis (librosa's centring pad)."""
    widths = [(0, 0)] * (y.ndim - 1) + [(pad, pad)]
    return np.pad(y, widths, mode="reflect")


def reflect_index(positions: np.ndarray, length: int) -> np.ndarray:
    """Where ``np.pad(y, pad, mode="reflect")`` takes each of ``positions`` (counted from ``y[0]``, so the
    left pad is negative) in a signal of ``length`` samples: only the pads' sources, without padding a copy."""
    if length < 2:
        return np.zeros_like(positions)
    period = 2 * (length - 1)
    index = np.abs(positions) % period
    return np.where(index >= length, period - index, index)


def rfft(x: Any, n: int, xp: Any = np, workers: Optional[int] = -1) -> Any:
    """Real FFT over the last axis: scipy.fft (threaded, native float32) on numpy, ``xp.fft`` otherwise."""
    if xp is np:
        return scipy.fft.rfft(x, n=n, axis=-1, workers=workers)
    return xp.fft.rfft(x, n=n, axis=-1)


def irfft(X: Any, n: int, xp: Any = np, workers: Optional[int] = -1) -> Any:
    """Inverse real FFT over the last axis (the imaginary parts of the DC and Nyquist bins are ignored)."""
    if xp is np:
        return scipy.fft.irfft(X, n=n, axis=-1, workers=workers, overwrite_x=True)
    return xp.fft.irfft(X, n=n, axis=-1)


def stft(y: np.ndarray, cfg: AudioConfig, workers: Optional[int] = -1) -> np.ndarray:
    """Centred STFT of a 1-D signal as librosa 0.6.3 ``stft(y, n_fft)`` computes it, time-major.

    Returns complex64 ``[1 + len(y) // hop_length, n_fft // 2 + 1]``.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"stft expects a 1-D signal, got shape {y.shape}")
    if y.size < 2:
        raise ValueError(f"stft needs at least 2 samples for reflect padding, got {y.size}")
    padded = reflect_pad(y, cfg.n_fft // 2)
    frames = frame_view(padded, cfg.n_fft, cfg.hop_length)
    windowed = frames * hann_window(cfg)
    return rfft(windowed, cfg.n_fft, workers=workers)


def overlap_add(frames: Any, hop_length: int, blocks_out: Any, xp: Any = np) -> Any:
    """Add ``frames [..., T, n]`` overlapped at ``hop_length`` into ``blocks_out [..., T - 1 + ceil(n / hop), hop]``.

    The signal is seen as rows of ``hop_length`` samples, so the overlap-add is ``ceil(n / hop)``
    shifted block additions (4 for hop = n/4) instead of a loop over frames; frames whose length is
    not a multiple of the hop are zero-extended first. It accumulates (``+=``) so that consecutive
    chunks of frames can be added into one signal; the per-sample order of additions is fixed, which
    keeps a signal's result independent of the batch it sits in.
    """
    count, length = frames.shape[-2], frames.shape[-1]
    blocks = -(-length // hop_length)
    lead = tuple(frames.shape[:-2])
    expected = lead + (count - 1 + blocks, hop_length)
    if tuple(blocks_out.shape) != expected:
        raise ValueError(f"overlap_add: blocks_out has shape {tuple(blocks_out.shape)}, expected {expected}")
    if blocks * hop_length != length:
        extended = xp.zeros(lead + (count, blocks * hop_length), dtype=frames.dtype)
        extended[..., :length] = frames
        frames = extended
    split = frames.reshape(lead + (count, blocks, hop_length))
    for r in range(blocks):
        blocks_out[..., r : r + count, :] += split[..., r, :]
    return blocks_out
