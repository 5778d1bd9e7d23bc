"""Style (reference) audio front end: a clip on disk to the log-mel frames the GST encoder reads.

Reproduces OpenSeq2Seq's ``get_speech_features_from_file`` for MAILABS with librosa 0.6.3 semantics
(docs/openseq2seq-notes.md §3): load mono float32, trim leading/trailing silence (60 dB under the peak frame RMS), centred
STFT (periodic Hann, n_fft 800, hop 200, reflect padding), HTK mel filterbank without area
normalisation, ``ln(max(mel, 0.01))``, then end padding to a multiple of 8 frames. Only numpy,
scipy and soundfile are used; every parameter comes from :class:`trtgen.engine.config.AudioConfig`.
"""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import scipy.signal
import soundfile

from trtgen.engine.config import AudioConfig
from trtgen.engine.spectral import frame_view, reflect_pad, stft
from trtgen.errors import UsageError

__all__ = [
    "AudioError",
    "MAGNITUDE_FLOOR",
    "load_audio",
    "nonsilent_interval",
    "trim_silence",
    "stft_magnitude",
    "mel_filterbank",
    "log_mel",
    "pad_style_frames",
    "style_features",
    "training_features",
    "pad_style_batch",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]

MAGNITUDE_FLOOR = 1e-5
"""Floor of the linear-magnitude training target: OpenSeq2Seq stores ``ln(max(mag, 1e-5))`` and
``exp``s it back (docs/openseq2seq-notes.md §3, "magnitude feature")."""


class AudioError(UsageError):
    """An audio file is missing, unreadable, empty or unusable; the message names the file."""


def load_audio(path: PathLike, sample_rate: int) -> np.ndarray:
    """Read a wav/flac file as mono float32 at ``sample_rate`` Hz.

    Channels are averaged (librosa ``to_mono``); integer PCM becomes floats in [-1, 1) by dividing by
    2**(bits-1), as librosa does. A file at another rate is resampled with a polyphase filter
    (``scipy.signal.resample_poly``, factors reduced by their gcd, e.g. 320/441 for 22.05 kHz).
    OpenSeq2Seq never resampled: it assumed every MAILABS clip was 16 kHz and would have computed
    wrong features for anything else, so resampling is the faithful reading of its intent.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from exc
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(f"{path}: the file holds no samples")
    y = data[:, 0].copy() if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(y).all():
        raise AudioError(f"{path}: the file holds NaN or infinite samples")
    if file_rate != sample_rate:
        common = math.gcd(int(file_rate), int(sample_rate))
        up, down = int(sample_rate) // common, int(file_rate) // common
        logger.debug("%s: resampling %d Hz -> %d Hz (x%d/%d)", path, file_rate, sample_rate, up, down)
        y = scipy.signal.resample_poly(y, up, down).astype(np.float32)
    return np.ascontiguousarray(y, dtype=np.float32)


def nonsilent_interval(y: np.ndarray, cfg: AudioConfig = AudioConfig()) -> tuple[int, int]:
    """``[start, end)`` samples kept by librosa 0.6.3 ``effects.trim(y, top_db, ref=np.max, frame, hop)``.

    Frame RMS over ``trim_frame_length`` samples every ``trim_hop_length`` (centred, reflect padding);
    a frame is non-silent when its power is more than ``trim_top_db`` under the loudest frame's;
    the interval runs from the first such frame's start to the end of the last one (clamped).
    """
    y = _as_signal(y, "nonsilent_interval")
    if y.size == 0:
        return 0, 0
    frame, hop = cfg.trim_frame_length, cfg.trim_hop_length
    frames = frame_view(reflect_pad(y, frame // 2), frame, hop)
    frames64 = frames.astype(np.float64)
    power = np.mean(frames64 * frames64, axis=1)  # rms ** 2
    amin = 1e-10  # librosa power_to_db's floor
    db = 10.0 * np.log10(np.maximum(amin, power)) - 10.0 * np.log10(max(amin, float(power.max())))
    nonsilent = np.flatnonzero(db > -cfg.trim_top_db)
    if nonsilent.size == 0:
        return 0, 0
    return int(nonsilent[0] * hop), int(min(y.size, (nonsilent[-1] + 1) * hop))


def trim_silence(y: np.ndarray, cfg: AudioConfig = AudioConfig()) -> np.ndarray:
    """Leading and trailing silence removed as OpenSeq2Seq's MAILABS front end does (docs/openseq2seq-notes.md §3)."""
    start, end = nonsilent_interval(y, cfg)
    return np.asarray(y, dtype=np.float32)[start:end]


def stft_magnitude(y: np.ndarray, cfg: AudioConfig = AudioConfig()) -> np.ndarray:
    """``|STFT(y)|`` as float32 ``[1 + len(y) // hop, n_fft // 2 + 1]`` (time-major)."""
    y = _as_signal(y, "stft_magnitude")
    return np.abs(stft(y, cfg))


@functools.lru_cache(maxsize=8)
def _mel_filterbank(cfg: AudioConfig) -> np.ndarray:
    fft_freqs = np.linspace(0.0, cfg.sample_rate / 2.0, cfg.num_freq)
    edges = _mel_to_hz(
        np.linspace(_hz_to_mel(cfg.mel_fmin, cfg.mel_htk), _hz_to_mel(cfg.mel_fmax, cfg.mel_htk), cfg.num_mels + 2),
        cfg.mel_htk,
    )
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    basis = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    basis.setflags(write=False)
    return basis


def mel_filterbank(cfg: AudioConfig = AudioConfig()) -> np.ndarray:
    """Read-only float32 ``[num_mels, n_fft // 2 + 1]`` triangles, peak 1, no area normalisation.

    librosa ``filters.mel(htk=True, norm=None)`` (docs/openseq2seq-notes.md §3); the Slaney scale when ``mel_htk`` is off.
    Cached per configuration.
    """
    return _mel_filterbank(cfg)


def _hz_to_mel(hz: float | np.ndarray, htk: bool) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    # Slaney: linear below 1 kHz, logarithmic above (librosa's default scale).
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep, hz / f_sp)


def _mel_to_hz(mel: np.ndarray, htk: bool) -> np.ndarray:
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def log_mel(magnitude: np.ndarray, cfg: AudioConfig = AudioConfig()) -> np.ndarray:
    """``ln(max(mel_basis @ |S|, log_floor))`` as float32 ``[T, num_mels]`` from a ``[T, num_freq]`` magnitude."""
    magnitude = np.asarray(magnitude, dtype=np.float32)
    if magnitude.ndim != 2 or magnitude.shape[1] != cfg.num_freq:
        raise UsageError(f"log_mel expects a [frames, {cfg.num_freq}] magnitude, got shape {magnitude.shape}")
    # numpy's own loops, not BLAS: a BLAS product's rounding changes with its thread count (OMP_NUM_THREADS,
    # which Ray sets per worker), and a style embedding, hence every utterance spoken with it, must not.
    mel = np.einsum("tf,mf->tm", magnitude, mel_filterbank(cfg))
    return np.log(np.maximum(mel, np.float32(cfg.log_floor)))


def pad_style_frames(mel: np.ndarray, cfg: AudioConfig = AudioConfig()) -> np.ndarray:
    """OpenSeq2Seq's end padding: ``m - ((T + 1) % m) + 1`` frames (2..m+1) of ``ln(log_floor)``.

    With ``m = style_pad_multiple`` = 8 the total becomes a multiple of 8. The +1 comes from the
    data layer reserving an end-of-sequence frame before padding (docs/openseq2seq-notes.md §3, DL L494-525).
    """
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 2:
        raise UsageError(f"pad_style_frames expects [frames, mels], got shape {mel.shape}")
    multiple = cfg.style_pad_multiple
    num_pad = multiple - ((mel.shape[0] + 1) % multiple) + 1
    pad = np.full((num_pad, mel.shape[1]), np.log(np.float32(cfg.log_floor)), dtype=np.float32)
    return np.concatenate([mel, pad], axis=0)


def style_features(path: PathLike, cfg: AudioConfig = AudioConfig()) -> tuple[np.ndarray, int]:
    """A style clip's padded log-mel ``[T_padded, num_mels]`` and its length ``T_padded`` (docs/openseq2seq-notes.md §3).

    The length counts the padding frames: OpenSeq2Seq feeds the padded length as ``spec_len``.
    """
    y = trim_silence(load_audio(path, cfg.sample_rate), cfg)
    if y.size < 2:
        raise AudioError(f"{path}: fewer than 2 samples left after trimming silence")
    mel = pad_style_frames(log_mel(stft_magnitude(y, cfg), cfg), cfg)
    return mel, int(mel.shape[0])


def training_features(y: np.ndarray, cfg: AudioConfig = AudioConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Training targets of a loaded (and, if wanted, trimmed) waveform: log mel ``[T, num_mels]`` and
    linear magnitude ``max(|STFT|, 1e-5)`` ``[T, num_freq]``, both float32 (docs/openseq2seq-notes.md §3).

    The mel is computed from the unfloored magnitude, as OpenSeq2Seq does.
    """
    magnitude = stft_magnitude(y, cfg)
    return log_mel(magnitude, cfg), np.maximum(magnitude, np.float32(MAGNITUDE_FLOOR))


def pad_style_batch(mels: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``[T_i, C]`` spectrograms into ``[B, max T, C]`` float32 padded with 0.0, plus lengths int64.

    Zero (not ``ln 0.01``) is what OpenSeq2Seq's ``padded_batch`` puts past each clip (docs/openseq2seq-notes.md §3).
    """
    if len(mels) == 0:
        raise UsageError("pad_style_batch needs at least one spectrogram")
    arrays = [np.asarray(m, dtype=np.float32) for m in mels]
    width = arrays[0].shape[-1] if arrays[0].ndim == 2 else None
    for i, array in enumerate(arrays):
        if array.ndim != 2 or array.shape[1] != width:
            raise UsageError(f"pad_style_batch: spectrogram {i} has shape {array.shape}, expected [frames, {width}]")
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    batch = np.zeros((len(arrays), int(lengths.max()), width), dtype=np.float32)
    for i, array in enumerate(arrays):
        batch[i, : array.shape[0]] = array
    return batch, lengths


def _as_signal(y: np.ndarray, caller: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise UsageError(f"{caller} expects a 1-D waveform, got shape {y.shape}")
    return y
