"""What ``trtgen eval`` measures on a waveform: mel cepstra and MCD-DTW, F0 (YIN), speech features,
and the style space that tells which voice an output sounds like. numpy only."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from trtgen.engine.audio import log_mel, stft_magnitude, trim_silence
from trtgen.engine.config import AudioConfig
from trtgen.errors import UsageError

logger = logging.getLogger(__name__)

MCD_DB_PER_NEPER = 10.0 / math.log(10.0)
"""The ``10 / ln 10`` of the MCD formula (Kubichek 1993)."""


class EvalError(UsageError):
    """The evaluation cannot run as asked (missing corpus, too few held-out sentences, no way to export the random baseline)."""

# --------------------------------------------------------------------------------------------------
# Mel cepstra and MCD-DTW


def _cepstrum_basis(num_bands: int, num_coefficients: int) -> np.ndarray:
    d = np.arange(1, num_coefficients + 1, dtype=np.float64)[:, None]
    k = np.arange(num_bands, dtype=np.float64)[None, :]
    return np.cos(np.pi * d * (k + 0.5) / num_bands) / num_bands


def mel_cepstrum(log_mel_frames: np.ndarray, num_coefficients: int = 24) -> np.ndarray:
    """Mel cepstrum ``c_1 .. c_D`` (``c_0``, the level, left out) of natural-log mel frames ``[T, K]``.

    ``c_d = (1/K) Σ_k L_k cos(π d (k + ½) / K)``: DCT-II scaled so that ``L_k = c_0 + 2 Σ_d c_d cos(..)``,
    the scale of a true cepstrum of ``ln |X|`` on the mel axis, which the MCD formula assumes.
    """
    frames = np.asarray(log_mel_frames, dtype=np.float64)
    if frames.ndim != 2:
        raise ValueError(f"mel_cepstrum expects [frames, bands], got shape {frames.shape}")
    if not 1 <= num_coefficients < frames.shape[1]:
        raise ValueError(f"num_coefficients must be in 1..{frames.shape[1] - 1}, got {num_coefficients}")
    return frames @ _cepstrum_basis(frames.shape[1], num_coefficients).T


def cepstral_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N, M]`` frame-pair MCD in dB: ``(10 / ln 10) · sqrt(2 Σ_d (a_d - b_d)²)``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    squared = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    return MCD_DB_PER_NEPER * np.sqrt(2.0 * np.maximum(squared, 0.0))


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost monotonic path through ``cost [N, M]`` from (0, 0) to (N-1, M-1).

    Steps (1, 0), (0, 1), (1, 1), unweighted; O(N·M) with numpy, one row at a time. Within a row
    the horizontal recurrence ``D[j] = min(e[j], c[j] + D[j-1])`` (``e`` from the row above) is a
    min-plus scan: ``D = S + cummin(e - S)`` with ``S = cumsum(c)``, so no Python loop over columns.
    Returns the row and column index of every cell on the path.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2 or 0 in cost.shape:
        raise ValueError(f"dtw_path needs a non-empty [N, M] cost matrix, got shape {cost.shape}")
    if cost.shape[0] > cost.shape[1]:
        cols_t, rows_t = dtw_path(cost.T)
        return rows_t, cols_t
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, n + 1):
        row = cost[i - 1]
        entry = row + np.minimum(total[i - 1, :-1], total[i - 1, 1:])  # from the diagonal or from above
        prefix = np.cumsum(row)
        total[i, 1:] = prefix + np.minimum.accumulate(entry - prefix)
    rows, cols = [n - 1], [m - 1]
    i, j = n, m
    while (i, j) != (1, 1):
        # Ties prefer the diagonal step.
        moves = ((i - 1, j - 1), (i - 1, j), (i, j - 1))
        i, j = min(moves, key=lambda cell: total[cell])
        rows.append(i - 1)
        cols.append(j - 1)
    return np.asarray(rows[::-1]), np.asarray(cols[::-1])


def mcd_dtw_scores(candidate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """MCD-DTW (dB) of a candidate mel-cepstrum sequence ``[N, D]`` against a reference ``[M, D]``, two ways:

    * per reference frame (:func:`mcd_dtw`): every reference frame counted once, with the mean cost of
      the candidate frames the path aligns to it;
    * along the path (:func:`mcd_dtw_path`): the mean over the path's cells, the usual definition.

    Why both: the path of a candidate longer than its reference must spend the surplus frames somewhere,
    and a minimum-cost path spends them on the reference frames they match best. A long, nearly constant
    output (a random model that never stops) then sits for hundreds of frames on the one reference frame
    closest to its average spectrum and its path mean drops, here below that of the trained voice. Per
    reference frame its cost stays what it is: its distance to each frame of the speech it should match.
    """
    cost = cepstral_distances(candidate, reference)
    rows, cols = dtw_path(cost)
    on_path = cost[rows, cols]
    per_reference = np.bincount(cols, on_path, minlength=cost.shape[1]) / np.bincount(cols, minlength=cost.shape[1])
    return float(per_reference.mean()), float(on_path.mean())


def mcd_dtw(candidate: np.ndarray, reference: np.ndarray) -> float:
    """MCD-DTW (dB) per reference frame: each reference frame once (see :func:`mcd_dtw_scores`)."""
    return mcd_dtw_scores(candidate, reference)[0]


def mcd_dtw_path(candidate: np.ndarray, reference: np.ndarray) -> float:
    """MCD-DTW (dB) as the mean frame MCD along the path (see :func:`mcd_dtw_scores`)."""
    return mcd_dtw_scores(candidate, reference)[1]


# --------------------------------------------------------------------------------------------------
# F0


def yin_f0(
    y: np.ndarray,
    sample_rate: int,
    *,
    hop_length: int = 200,
    frame_length: int = 512,
    fmin: float = 50.0,
    fmax: float = 500.0,
    threshold: float = 0.2,
    silence_db: float = 40.0,
) -> np.ndarray:
    """F0 in Hz per frame (NaN where unvoiced) with YIN (de Cheveigné & Kawahara 2002), numpy only.

    Frame ``t`` integrates ``frame_length`` samples from ``t · hop_length``. The cumulative-mean
    normalised difference is searched from the shortest lag (``sample_rate / fmax``) for its first dip
    below ``threshold``, followed down to its local minimum and refined by a parabola. Frames with no
    such dip, or more than ``silence_db`` below the loudest frame, are unvoiced.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"yin_f0 expects a 1-D waveform, got shape {y.shape}")
    if not 0 < fmin < fmax < sample_rate / 2:
        raise ValueError(f"need 0 < fmin < fmax < sample_rate / 2, got fmin {fmin}, fmax {fmax}")
    tau_min = max(2, int(math.floor(sample_rate / fmax)))
    tau_max = int(math.ceil(sample_rate / fmin))
    span = frame_length + tau_max + 1
    num_frames = 1 + y.size // hop_length
    padded = np.zeros(num_frames * hop_length + span)
    padded[: y.size] = y
    starts = np.arange(num_frames) * hop_length
    frames = padded[starts[:, None] + np.arange(span)[None, :]]
    n_fft = 1 << int(math.ceil(math.log2(span)))
    # r(τ) = Σ_{j<W} x_j x_{j+τ}: circular correlation without wrap-around since n_fft >= W + τ_max.
    spectrum = np.fft.rfft(frames, n_fft)
    head = np.fft.rfft(frames[:, :frame_length], n_fft)
    correlation = np.fft.irfft(np.conj(head) * spectrum, n_fft)[:, : tau_max + 2]
    energy = np.concatenate([np.zeros((num_frames, 1)), np.cumsum(frames * frames, axis=1)], axis=1)
    lags = np.arange(tau_max + 2)
    energy_lagged = energy[:, lags + frame_length] - energy[:, lags]
    difference = np.maximum(energy_lagged[:, :1] + energy_lagged - 2.0 * correlation, 0.0)
    cumulative = np.cumsum(difference[:, 1:], axis=1)
    normalised = np.ones_like(difference)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised[:, 1:] = np.where(cumulative > 0, difference[:, 1:] * lags[1:] / cumulative, 1.0)
    search = normalised[:, tau_min : tau_max + 1]
    below = search < threshold
    voiced = below.any(axis=1)
    first = below.argmax(axis=1)
    offsets = np.arange(search.shape[1])[None, :]
    rising = np.empty_like(below)
    rising[:, :-1] = search[:, 1:] >= search[:, :-1]
    rising[:, -1] = True
    best = np.argmax(rising & (offsets >= first[:, None]), axis=1) + tau_min
    rows = np.arange(num_frames)
    left, centre, right = normalised[rows, best - 1], normalised[rows, best], normalised[rows, best + 1]
    curvature = left - 2.0 * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curvature > 0, 0.5 * (left - right) / curvature, 0.0)
    period = best + np.clip(shift, -1.0, 1.0)
    frame_energy = energy_lagged[:, 0]
    loud = frame_energy > max(float(frame_energy.max()) * 10.0 ** (-silence_db / 10.0), 1e-10 * frame_length)
    return np.where(voiced & loud, sample_rate / period, np.nan)


# --------------------------------------------------------------------------------------------------
# Small statistics


def pearson_r(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; NaN for fewer than 2 pairs or a constant side."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"pearson_r needs two equal-length 1-D sequences, got {a.shape} and {b.shape}")
    if a.size < 2:
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    denominator = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else math.nan


def _semitones(f0_hz: float, reference_hz: float) -> float:
    return 12.0 * math.log2(f0_hz / reference_hz)


# --------------------------------------------------------------------------------------------------
# Features of one waveform


SPEECH_RANGE_DB = 40.0
"""Frames more than this far below an utterance's loudest frame (mel power) are pauses or silence."""


def speech_frames(log_mel_frames: np.ndarray, range_db: float = SPEECH_RANGE_DB) -> np.ndarray:
    """Boolean mask of the frames within ``range_db`` of the loudest one (power of the mel spectrum).

    Why: silence is ``ln(log_floor)`` in every band, so two silent frames are at distance 0. Without
    this mask a model that pauses for a second would have its pause matched, for free, to the
    target's pauses by DTW and its MCD diluted; its mean log-mel would be pulled down by silence.
    """
    frames = np.asarray(log_mel_frames, dtype=np.float64)
    level_db = MCD_DB_PER_NEPER * np.logaddexp.reduce(2.0 * frames, axis=1)
    return level_db >= level_db.max() - range_db


@dataclass
class SpeechFeatures:
    """What the metrics need from one waveform (trimmed; pauses masked out of the spectral statistics)."""

    log_mel: np.ndarray
    """``[T, num_mels]`` natural-log mel (:func:`trtgen.engine.audio.log_mel`) of the trimmed waveform."""
    speech: np.ndarray
    """``[T]`` mask of :func:`speech_frames`."""
    cepstrum: np.ndarray
    """``[T_speech, D]`` mel cepstrum ``c_1 .. c_D`` of the speech frames."""
    f0_hz: np.ndarray
    """Per-frame F0, NaN where unvoiced."""
    duration_s: float
    """Duration before trimming."""

    @property
    def mean_log_mel(self) -> np.ndarray:
        """Mean log-mel of the speech frames."""
        return self.log_mel[self.speech].mean(axis=0)

    @property
    def voiced_fraction(self) -> float:
        return float(np.isfinite(self.f0_hz).mean()) if self.f0_hz.size else 0.0

    @property
    def median_f0_hz(self) -> float:
        voiced = self.f0_hz[np.isfinite(self.f0_hz)]
        return float(np.median(voiced)) if voiced.size else math.nan


def speech_features(y: np.ndarray, audio: AudioConfig, num_cepstra: int = 24) -> SpeechFeatures:
    """Trim silence, then log-mel, speech mask, mel cepstrum and F0 of a waveform at ``audio.sample_rate``."""
    y = np.asarray(y, dtype=np.float32)
    duration_s = y.size / audio.sample_rate
    trimmed = trim_silence(y, audio)
    if trimmed.size < audio.n_fft:
        trimmed = y if y.size >= audio.n_fft else np.pad(y, (0, audio.n_fft - y.size))
    frames = log_mel(stft_magnitude(trimmed, audio), audio)
    speech = speech_frames(frames)
    f0 = yin_f0(trimmed, audio.sample_rate, hop_length=audio.hop_length)
    return SpeechFeatures(frames, speech, mel_cepstrum(frames[speech], num_cepstra), f0, duration_s)


# --------------------------------------------------------------------------------------------------
# Style check


@dataclass
class VoiceProfile:
    """A voice's espeak-ng statistics, from its training renderings put through the model's vocoder."""

    voice: str
    num_utterances: int
    mean_log_mel: list[float]
    """Mean over utterances of each utterance's mean log-mel (one value per band)."""
    f0_hz: float
    """Geometric mean over utterances of each utterance's median F0 (voiced frames only)."""


@dataclass
class StyleSpace:
    """Nearest-voice classification of an output by mean log-mel and median F0.

    Distances: ``d_mel`` = RMS over bands of the mean-log-mel difference (nepers), ``d_f0`` = |F0
    difference| in semitones. The combined distance scales each by the pooled within-voice spread of
    the training renderings around their own voice (``mel_spread``, ``f0_spread_semitones``), so
    neither unit dominates: ``sqrt((d_mel / mel_spread)² + (d_f0 / f0_spread)²)``.
    """

    profiles: dict[str, VoiceProfile]
    mel_spread: float
    f0_spread_semitones: float

    @staticmethod
    def fit(features: dict[str, list[SpeechFeatures]]) -> StyleSpace:
        profiles: dict[str, VoiceProfile] = {}
        for voice, items in features.items():
            f0s = [f.median_f0_hz for f in items if np.isfinite(f.median_f0_hz)]
            if not items or not f0s:
                raise EvalError(f"voice {voice}: no voiced reference renderings to take its statistics from")
            profiles[voice] = VoiceProfile(
                voice=voice,
                num_utterances=len(items),
                mean_log_mel=np.mean([f.mean_log_mel for f in items], axis=0).tolist(),
                f0_hz=float(np.exp(np.mean(np.log(f0s)))),
            )
        mel_squares, f0_squares = [], []
        for voice, items in features.items():
            centre = np.asarray(profiles[voice].mean_log_mel)
            for f in items:
                mel_squares.append(float(np.mean((f.mean_log_mel - centre) ** 2)))
                if np.isfinite(f.median_f0_hz):
                    f0_squares.append(_semitones(f.median_f0_hz, profiles[voice].f0_hz) ** 2)
        return StyleSpace(
            profiles,
            mel_spread=max(math.sqrt(float(np.mean(mel_squares))), 1e-3),
            f0_spread_semitones=max(math.sqrt(float(np.mean(f0_squares))), 0.1),
        )

    def distances(self, features: SpeechFeatures) -> dict[str, dict[str, float]]:
        """``{"mel" | "f0" | "combined": {voice: distance}}``; F0 distances are NaN for unvoiced output."""
        out: dict[str, dict[str, float]] = {"mel": {}, "f0": {}, "combined": {}}
        mean = features.mean_log_mel
        f0 = features.median_f0_hz
        for voice, profile in self.profiles.items():
            d_mel = math.sqrt(float(np.mean((mean - np.asarray(profile.mean_log_mel)) ** 2)))
            d_f0 = abs(_semitones(f0, profile.f0_hz)) if np.isfinite(f0) else math.nan
            out["mel"][voice] = d_mel
            out["f0"][voice] = d_f0
            out["combined"][voice] = math.hypot(d_mel / self.mel_spread, d_f0 / self.f0_spread_semitones)
        return out


    def nearest_relative(self, mean_log_mels: Mapping[str, np.ndarray]) -> dict[str, str]:
        """Nearest voice of each output by its mean log-mel *relative to all the outputs' average*,
        compared with each voice's profile relative to the profiles' average.

        Why: whatever every output shares (a model's over-smoothed spectra, Griffin-Lim's
        colouring) shifts all of them alike, like a recording channel; cepstral mean normalisation
        removes such a shift before speaker identification, and this does the same in the log-mel
        domain. What remains is the question the style check asks: does conditioning on a voice move
        the output towards that voice? A model that ignores its style input gives deviations that are
        noise, so this check still fails it (about 1 / number of voices). ``mean_log_mels`` must hold
        the same number of outputs per conditioning voice (the evaluation's items are balanced).
        """
        if not mean_log_mels:  # no output has speech frames (e.g. every one stopped at once)
            return {}
        profiles = {voice: np.asarray(p.mean_log_mel) for voice, p in self.profiles.items()}
        profile_centre = np.mean(list(profiles.values()), axis=0)
        output_centre = np.mean(list(mean_log_mels.values()), axis=0)
        nearest: dict[str, str] = {}
        for key, mean in mean_log_mels.items():
            deviation = np.asarray(mean) - output_centre
            distance = {v: float(np.sqrt(np.mean((deviation - (p - profile_centre)) ** 2))) for v, p in profiles.items()}
            nearest[key] = min(distance, key=distance.__getitem__)
        return nearest


def nearest_voice(distances: dict[str, float]) -> str | None:
    finite = {v: d for v, d in distances.items() if np.isfinite(d)}
    return min(finite, key=finite.__getitem__) if finite else None
