"""``trtgen eval``: does a voice work? Held-out sentences decoded and measured against espeak-ng.

The default voice is trained on espeak-ng speech (``export/train``), so espeak-ng's rendering of a
held-out sentence in a voice is the target the model should reproduce. For every held-out sentence
and voice the model speaks the sentence conditioned on a *different* held-out clip of that voice
(real style transfer, never the target itself) and the evaluation measures:

* attention: the argmax path is monotonic, makes no big jumps and covers the text (:class:`AlignmentRule`);
* stopping: the stop token fired before the decoding cap;
* duration: Pearson r between the output's and espeak-ng's durations;
* MCD-DTW: mel-cepstral distortion after dynamic time warping, each espeak-ng frame counted once
  (:func:`mel_cepstrum`, :func:`mcd_dtw`; the usual mean along the path is reported beside it);
* style: conditioning on a voice moves the output's mean log-mel towards that voice
  (:meth:`StyleSpace.nearest_relative`); the absolute nearest voice by mean log-mel and F0 is
  reported beside it.

Both signals go through the same code: waveform -> :func:`trtgen.audio.trim_silence` ->
:func:`trtgen.audio.stft_magnitude` -> :func:`trtgen.audio.log_mel`. The model's audio comes out of
Griffin-Lim with OpenSeq2Seq's ``magnitude ** 1.5`` sharpening, which by itself moves espeak-ng's
own magnitudes about 3.5 dB MCD away from the rendering and shifts its mean log-mel. So the voice
statistics of the style check come from espeak-ng renderings put through that same vocoder path, and
that path's MCD (the "vocoder floor", a perfect model's score) is reported beside the models'.
With ``compare_random`` the same evaluation runs on a randomly initialised model of the same
configuration (exported with TensorFlow), which must be far worse, so the metrics demonstrably tell.
Only numpy is used here; matplotlib is imported only to draw the plots.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from trtgen import __version__
from trtgen.artifact import Model, ModelCard, load_model
from trtgen.audio import AudioError, load_audio, log_mel, stft_magnitude, trim_silence
from trtgen.config import AudioConfig, TextConfig
from trtgen.fileio import atomic_write
from trtgen.randomness import utterance_key
from trtgen.synthesis import SynthesisOptions
from trtgen.text import TextEncoder, TextError, last_spoken_index

logger = logging.getLogger(__name__)

__all__ = [
    "EvalError",
    "AlignmentRule",
    "AlignmentCheck",
    "check_alignment",
    "last_spoken_index",
    "MCD_DB_PER_NEPER",
    "mel_cepstrum",
    "cepstral_distances",
    "dtw_path",
    "mcd_dtw",
    "mcd_dtw_path",
    "mcd_dtw_scores",
    "yin_f0",
    "pearson_r",
    "SpeechFeatures",
    "speech_features",
    "speech_frames",
    "SPEECH_RANGE_DB",
    "VoiceProfile",
    "StyleSpace",
    "Thresholds",
    "EvalOptions",
    "UtteranceResult",
    "GroupSummary",
    "ModelEvaluation",
    "Check",
    "EvalReport",
    "run_eval",
    "print_eval_report",
    "REPORT_NAME",
]

REPORT_NAME = "eval.json"
MCD_DB_PER_NEPER = 10.0 / math.log(10.0)
"""The ``10 / ln 10`` of the MCD formula (Kubichek 1993)."""


class EvalError(RuntimeError):
    """The evaluation cannot run as asked (missing corpus, too few held-out sentences, no TensorFlow)."""


# --------------------------------------------------------------------------------------------------
# Attention alignment


@dataclass(frozen=True)
class AlignmentRule:
    """When an attention alignment counts as monotonic and covering the whole text.

    The path is the argmax symbol of each decoder step, clamped to the ``</s>`` position (the
    ``<p>`` padding after ``</s>`` may absorb attention at the end; it carries no text).
    """

    max_backstep: int = 1
    """Largest step back allowed, in symbols, below the furthest symbol reached so far (jitter)."""
    max_jump: int = 4
    """Largest advance allowed in one decoder step beyond the furthest symbol reached so far. One step
    is ``reduction_factor`` frames (37.5 ms at r = 3), in which espeak-ng speaks about half a symbol."""
    max_start: int = 3
    """The path must start on one of the first ``max_start + 1`` symbols (``<s>`` is symbol 0)."""
    end_slack: int = 0
    """The path must reach the last spoken symbol (:func:`last_spoken_index`: the last letter or digit)
    or at most this many symbols before it. Trailing punctuation and ``</s>`` are silent: a model
    stops as its attention reaches the last letter (seen on the default voice: clean diagonals that
    end on the "r" of "earlier." and never visit the full stop)."""


@dataclass(frozen=True)
class AlignmentCheck:
    """One utterance's attention path measured against an :class:`AlignmentRule`."""

    monotonic: bool
    no_big_jumps: bool
    starts_at_text_start: bool
    reaches_end: bool
    max_backstep: int
    max_jump: int
    first_symbol: int
    last_symbol: int
    """Furthest symbol the path reached (clamped to ``eos_index``)."""
    end_index: int
    """The symbol the path had to reach (the last spoken one)."""
    eos_index: int
    visited_fraction: float
    """Share of the symbols ``<s> .. </s>`` that are the argmax of some step (information only:
    at 3 frames per step a fast passage may legitimately skip a symbol)."""
    mean_peak: float
    """Mean over steps of the largest attention weight: 1.0 is perfectly sharp."""

    @property
    def ok(self) -> bool:
        return self.monotonic and self.no_big_jumps and self.starts_at_text_start and self.reaches_end


def check_alignment(
    alignment: np.ndarray, eos_index: int, rule: AlignmentRule = AlignmentRule(), *, end_index: int | None = None
) -> AlignmentCheck:
    """Measure a ``[steps, text_len]`` attention matrix (``text_len`` counts ``<s>``, ``</s>``, padding).

    ``end_index`` is the symbol the path must reach (:func:`last_spoken_index`); default ``</s>``.
    """
    a = np.asarray(alignment, dtype=np.float64)
    end_index = eos_index if end_index is None else int(end_index)
    if a.ndim != 2 or a.shape[1] <= eos_index or eos_index < 1 or not 0 < end_index <= eos_index:
        raise ValueError(
            f"alignment of shape {a.shape} does not fit a text whose </s> is at {eos_index} (end {end_index})"
        )
    if a.shape[0] == 0:
        return AlignmentCheck(False, False, False, False, 0, 0, 0, 0, end_index, eos_index, 0.0, 0.0)
    path = np.minimum(a.argmax(axis=1), eos_index)
    running = np.maximum.accumulate(path)
    max_backstep = int((running - path).max())
    max_jump = int(np.maximum(path[1:] - running[:-1], 0).max()) if path.size > 1 else 0
    first, last = int(path[0]), int(running[-1])
    return AlignmentCheck(
        monotonic=max_backstep <= rule.max_backstep,
        no_big_jumps=max_jump <= rule.max_jump,
        starts_at_text_start=first <= rule.max_start,
        reaches_end=last >= end_index - rule.end_slack,
        max_backstep=max_backstep,
        max_jump=max_jump,
        first_symbol=first,
        last_symbol=last,
        end_index=end_index,
        eos_index=int(eos_index),
        visited_fraction=float(np.unique(path).size / (eos_index + 1)),
        mean_peak=float(a.max(axis=1).mean()),
    )


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
    """``[T, num_mels]`` natural-log mel (:func:`trtgen.audio.log_mel`) of the trimmed waveform."""
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


def _nearest(distances: dict[str, float]) -> str | None:
    finite = {v: d for v, d in distances.items() if np.isfinite(d)}
    return min(finite, key=finite.__getitem__) if finite else None


# --------------------------------------------------------------------------------------------------
# Options, results, report


@dataclass(frozen=True)
class Thresholds:
    """Pass marks (the issue's "done" criteria); each applies to every voice and to all voices together."""

    min_sentences_per_voice: int = 50
    alignment_ok: float = 0.98
    """Share of utterances whose alignment passes :class:`AlignmentRule`."""
    stopped: float = 0.99
    """Share of utterances whose stop token fired before the cap."""
    duration_r: float = 0.95
    """Pearson r of output duration vs espeak-ng duration."""
    style_correct: float = 0.90
    """Share of outputs nearest (combined distance) to the voice they were conditioned on."""
    random_gap_closed: float = 0.5
    """With ``compare_random``, "the random model is far worse": of the MCD-DTW a randomly initialised
    model adds above the vocoder floor (Griffin-Lim on espeak-ng's own magnitudes, what a perfect model
    would score), the trained model must remove at least this share:
    ``(random - trained) / (random - floor) >= 0.5``, i.e. the random model's excess is at least twice
    the trained model's."""


@dataclass(frozen=True)
class EvalOptions:
    model_dir: Path
    corpus_dir: Path
    out_dir: Path
    sentences: int = 50
    """Held-out sentences per voice (the first ones by sentence id, after ``first_sentence``)."""
    first_sentence: int = 0
    """Held-out sentences (by id) to skip. The default test slice is the first ``sentences``; a later,
    disjoint slice (e.g. ``first_sentence=50``) is a validation set for choosing decode settings such as
    the stop threshold without tuning on the test sentences."""
    stop_threshold: float | None = None
    """Decode with this stop threshold instead of the model card's (to choose one on a validation slice)."""
    dropout: float = 0.5
    """Prenet dropout at inference (Tacotron 2 keeps it on; 0.5 is the training rate)."""
    seed: int = 0
    """Seed of the dropout and Griffin-Lim phase streams (keyed per utterance, as ``generate`` does)."""
    compare_random: bool = False
    random_seed: int = 0
    plots: int = 4
    """Utterances to plot (spread over the voices); 0 for none."""
    style_stats_utterances: int = 40
    """Training renderings per voice for its style statistics (evenly spaced by sentence id)."""
    reference_sentences: int = 10
    """Held-out sentences per voice whose espeak-ng rendering is also put through the vocoder, for the
    vocoder floor of the MCD and the ceiling of the style check."""
    num_cepstra: int = 24
    """Mel-cepstral coefficients ``c_1 .. c_D`` in the MCD."""
    content_distractors: int = 4
    """The content check: each output is also compared (MCD-DTW) with espeak-ng's renderings of this many
    other held-out sentences in the same voice; right when its own sentence's rendering is the nearest."""
    backend: str = "onnxruntime"
    device: str = "cpu"
    threads: int | None = None
    batch_size: int = 32
    alignment_rule: AlignmentRule = field(default_factory=AlignmentRule)
    thresholds: Thresholds = field(default_factory=Thresholds)
    progress: bool = True

    def validate(self) -> None:
        if self.sentences < 1:
            raise ValueError(f"sentences must be >= 1, got {self.sentences}")
        if self.first_sentence < 0:
            raise ValueError(f"first_sentence must be >= 0, got {self.first_sentence}")
        if self.stop_threshold is not None and not 0.0 < self.stop_threshold < 1.0:
            raise ValueError(f"stop_threshold must be in (0, 1), got {self.stop_threshold}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.plots < 0 or self.style_stats_utterances < 1 or self.reference_sentences < 1:
            raise ValueError("plots must be >= 0, style_stats_utterances and reference_sentences >= 1")
        if self.content_distractors < 0:
            raise ValueError(f"content_distractors must be >= 0, got {self.content_distractors}")


@dataclass(frozen=True)
class _Item:
    """One held-out sentence in one voice, with its reference clip and espeak-ng target."""

    index: int
    id: str
    voice: str
    sentence_id: str
    text: str
    reference_id: str
    reference_wav: Path
    target_wav: Path
    espeak_duration_s: float


@dataclass
class UtteranceResult:
    id: str
    voice: str
    sentence_id: str
    reference_id: str
    text: str
    text_len: int
    eos_index: int
    steps: int
    num_frames: int
    stopped: bool
    has_audio: bool
    duration_s: float | None
    espeak_duration_s: float
    alignment: AlignmentCheck | None
    mcd_dtw_db: float | None
    """Per espeak-ng frame (:func:`mcd_dtw`)."""
    mcd_dtw_path_db: float | None
    """Along the DTW path (:func:`mcd_dtw_path`)."""
    mcd_dtw_mel_db: float | None
    """The same on the model's own (postnet) log-mel, before the vocoder (its own pauses left out)."""
    content_margin_db: float | None
    """Nearest other sentence's MCD-DTW minus the own sentence's: > 0 when the content check is right."""
    f0_median_hz: float | None
    voiced_fraction: float | None
    style_voice: str | None
    """Nearest voice by the combined absolute distance (None without audio or F0)."""
    style_voice_mel: str | None
    style_voice_f0: str | None
    style_distances: dict[str, dict[str, float]] = field(default_factory=dict)
    mean_log_mel: list[float] | None = None
    """Mean ln-mel of the output's speech frames (for :meth:`StyleSpace.nearest_relative`; not in the JSON)."""
    style_voice_relative: str | None = None
    """Nearest voice by :meth:`StyleSpace.nearest_relative` (the style check)."""

    @property
    def alignment_ok(self) -> bool:
        return self.alignment is not None and self.alignment.ok

    @property
    def content_correct(self) -> bool:
        return self.content_margin_db is not None and self.content_margin_db > 0


@dataclass
class GroupSummary:
    """Aggregates over one voice's utterances (or all of them)."""

    name: str
    num_utterances: int
    num_with_audio: int
    alignment_ok: float
    monotonic: float
    no_big_jumps: float
    reaches_end: float
    stopped: float
    num_duration_pairs: int
    """Utterances in the duration statistics: those with audio that stopped (a capped output's length
    is ``max_frames_per_symbol x text_len`` by construction and would inflate r)."""
    duration_r: float
    duration_ratio: float
    """Mean of output duration / espeak-ng duration."""
    mcd_dtw_db: float
    """Mean MCD-DTW (per espeak-ng frame, :func:`mcd_dtw`) over utterances with audio."""
    mcd_dtw_median_db: float
    mcd_dtw_path_db: float
    """Mean MCD-DTW along the path (:func:`mcd_dtw_path`), the usual definition, for comparison."""
    mcd_dtw_mel_db: float
    """Mean MCD-DTW of the model's log-mel before the vocoder (no Griffin-Lim floor)."""
    content_correct: float
    """The content check: share nearer (MCD-DTW) to espeak-ng's rendering of its own sentence than to
    the renderings of ``content_distractors`` other sentences in the same voice (chance: 1 / (1 + that))."""
    style_correct: float
    """The style check: share nearest to the conditioning voice by :meth:`StyleSpace.nearest_relative`."""
    style_correct_absolute: float
    """Share nearest by the absolute combined distance (mean log-mel and F0 against the profiles)."""
    style_correct_mel: float
    style_correct_f0: float
    voiced_fraction: float
    """Mean share of YIN-voiced frames (espeak-ng's renderings: about 0.5; an over-smoothed output
    loses its harmonics and with them its voicing and F0)."""
    mean_attention_peak: float


@dataclass
class ModelEvaluation:
    label: str
    """``trained`` or ``random``."""
    model_name: str
    model_digest: str
    model_source: dict[str, Any]
    overall: GroupSummary
    voices: dict[str, GroupSummary]
    style_confusion: dict[str, dict[str, int]]
    """Conditioning voice -> nearest voice (the style check's relative distance) -> count."""
    utterances: list[UtteranceResult]
    wall_seconds: float


@dataclass
class Check:
    name: str
    scope: str
    """A voice name or ``all``."""
    value: float | None
    threshold: float
    comparison: str
    """``>=`` or ``<=``."""
    passed: bool


@dataclass
class EvalReport:
    settings: dict[str, Any]
    thresholds: Thresholds
    alignment_rule: AlignmentRule
    style_space: StyleSpace
    mcd_anchors: dict[str, dict[str, float]]
    """MCD-DTW (dB) to read the models' values against, per voice and ``all``: ``vocoder_floor``
    (espeak-ng's own magnitudes through Griffin-Lim vs the rendering: a perfect model's score, on the
    first ``reference_sentences``), ``same_sentence_other_voice`` (the right words in the next voice),
    ``same_voice_other_sentence`` (the style reference against the target: right voice, other words)."""
    style_ceiling: dict[str, float]
    """Share of espeak-ng's own vocoded held-out renderings (first ``reference_sentences``) that the
    style check puts in the right voice, per voice and ``all``: what a perfect model could score."""
    style_ceiling_absolute: dict[str, float]
    """The same for the absolute combined distance."""
    content_ceiling: dict[str, float]
    """The content check applied to espeak-ng's rendering of the same sentence in the next voice (the
    right words in a voice that is not the target's), per voice and ``all``: how much the check can
    see at all. NaN with a single voice or too few held-out sentences for distractors."""
    voiced_fraction_anchors: dict[str, dict[str, float]]
    """Share of YIN-voiced frames in espeak-ng's renderings (``espeak``, all held-out ones) and in the
    same through Griffin-Lim (``espeak_vocoded``, first ``reference_sentences``), per voice and ``all``:
    what the models' ``voiced_fraction`` is read against."""
    trained: ModelEvaluation
    random: ModelEvaluation | None
    checks: list[Check]
    plots: list[str]
    plots_skipped: str | None
    wall_seconds: float
    report_path: Path | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return _jsonable(
            {
                "format": "trtgen-eval",
                "format_version": 1,
                "trtgen_version": __version__,
                "passed": self.passed,
                "settings": self.settings,
                "thresholds": dataclasses.asdict(self.thresholds),
                "alignment_rule": dataclasses.asdict(self.alignment_rule),
                "metric_definitions": METRIC_DEFINITIONS,
                "checks": [dataclasses.asdict(c) for c in self.checks],
                "style_space": dataclasses.asdict(self.style_space),
                "style_ceiling": self.style_ceiling,
                "style_ceiling_absolute": self.style_ceiling_absolute,
                "content_ceiling": self.content_ceiling,
                "voiced_fraction_anchors": self.voiced_fraction_anchors,
                "mcd_anchors": self.mcd_anchors,
                "models": {
                    m.label: _model_json(m) for m in (self.trained, self.random) if m is not None
                },
                "plots": self.plots,
                "plots_skipped": self.plots_skipped,
                "wall_seconds": round(self.wall_seconds, 3),
            }
        )


METRIC_DEFINITIONS = {
    "alignment_ok": "argmax path p_t of the [steps, text_len] attention, clamped to </s>: p_t >= max(p_<t) - "
    "max_backstep; p_t - max(p_<t) <= max_jump; p_0 <= max_start; max(p) >= end_index - end_slack, end_index = the last letter or digit (trailing punctuation and "
    "</s> are silent)",
    "stopped": "the stop token fired before the cap of max_frames_per_symbol x text_len frames",
    "duration_r": "Pearson r of output seconds (untrimmed Griffin-Lim waveform) vs the espeak-ng WAV's seconds, "
    "over utterances that stopped (capped ones fail the stopped check instead)",
    "random_gap_closed": "(random MCD - trained MCD) / (random MCD - vocoder floor), overall means; the vocoder "
    "floor is the MCD of Griffin-Lim on espeak-ng's own magnitudes vs the rendering",
    "mcd_dtw_db": "both waveforms trimmed (trtgen.audio.trim_silence), 80-band ln-mel (trtgen.audio.log_mel), "
    "frames more than 40 dB below the loudest frame (pauses) left out, "
    "c_d = (1/K) sum_k L_k cos(pi d (k+0.5)/K) for d = 1..num_cepstra; frame MCD = (10/ln 10) sqrt(2 sum_d "
    "(c_d - c'_d)^2); DTW with steps (1,0),(0,1),(1,1) minimising the summed frame MCD; per espeak-ng frame the mean "
    "MCD of the output frames the path aligns to it, then the mean over espeak-ng's frames (each counted once)",
    "mcd_dtw_path_db": "as mcd_dtw_db, but the mean frame MCD along the whole DTW path (the usual definition; it "
    "rewards an output that is too long and nearly constant, whose surplus frames the path parks on the espeak-ng "
    "frame they match best)",
    "content_correct": "the output's MCD-DTW (per espeak-ng frame) to espeak-ng's rendering of its own sentence is lower "
    "than to the renderings of each of content_distractors other held-out sentences in the same voice (not the "
    "style reference's sentence): the words, not only the voice, are there (chance 1 / (1 + content_distractors))",
    "style": "the check (style_correct): output's mean ln-mel over speech frames minus the mean of that over all the "
    "model's outputs (balanced over voices), vs each voice's profile minus the mean profile (RMS band difference); "
    "correct when the nearest voice is the conditioning voice. Profiles: each voice's espeak-ng training renderings "
    "put through the same Griffin-Lim",
    "style_absolute": "output's mean ln-mel (RMS band difference) and median YIN F0 over voiced frames (semitones) vs "
    "the profiles, no normalisation; combined = hypot(d_mel / mel_spread, d_f0 / f0_spread); unvoiced output counts as wrong",
}


def _model_json(m: ModelEvaluation) -> dict[str, Any]:
    data = dataclasses.asdict(m)
    for row, utterance in zip(data["utterances"], m.utterances):
        row["alignment_ok"] = utterance.alignment_ok
        row["content_correct"] = utterance.content_correct
        del row["mean_log_mel"]
    return data


def _jsonable(value: Any) -> Any:
    """NaN and infinities become null (JSON has no NaN); paths become strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------------
# The evaluation job


def _select_items(corpus: Any, sentences: int, first: int = 0) -> tuple[list[_Item], dict[str, list[Any]]]:
    """Held-out sentences ``first .. first + sentences - 1`` (by id) in every voice, each with a reference
    clip of the same voice saying the next held-out sentence (cyclically), and the training renderings."""
    voices = corpus.voices()
    heldout: dict[str, dict[str, Any]] = {v: {} for v in voices}
    train: dict[str, list[Any]] = {v: [] for v in voices}
    for u in corpus.utterances:
        if u.voice not in heldout:
            continue
        if u.split == "heldout":
            heldout[u.voice][u.sentence_id] = u
        else:
            train[u.voice].append(u)
    common = sorted(set.intersection(*(set(h) for h in heldout.values()))) if voices else []
    if len(common) < 2:
        raise EvalError(
            f"{corpus.root}: {len(common)} held-out sentence(s) rendered in every voice; need at least 2 "
            "(one to speak, another as the style reference)"
        )
    chosen = common[first : first + sentences]
    if not chosen:
        raise EvalError(f"{corpus.root}: {len(common)} held-out sentences; none left after skipping {first}")
    if len(chosen) < sentences:
        logger.warning("%s: only %d held-out sentences from number %d; evaluating those", corpus.root, len(chosen), first)
    items = []
    for voice in voices:
        for position, sentence_id in enumerate(chosen, start=first):
            target = heldout[voice][sentence_id]
            reference = heldout[voice][common[(position + 1) % len(common)]]
            items.append(
                _Item(
                    index=len(items), id=target.id, voice=voice, sentence_id=sentence_id, text=target.text,
                    reference_id=reference.id, reference_wav=corpus.wav_path(reference),
                    target_wav=corpus.wav_path(target), espeak_duration_s=float(target.duration_s),
                )
            )
    return items, train


def _vocoded(paths: Sequence[Path], audio: AudioConfig, seed: int, batch_size: int = 8) -> list[np.ndarray]:
    """espeak-ng renderings put through the model's own vocoder path: STFT magnitude -> Griffin-Lim
    (same options, ``** magnitude_power`` sharpening included). A perfect model would output exactly
    this, so statistics of these waveforms are what the model's outputs are compared with."""
    from trtgen.vocoder import GriffinLimOptions, griffin_lim

    magnitudes = [stft_magnitude(load_audio(p, audio.sample_rate), audio) for p in paths]
    keys = [utterance_key(seed, str(p), "griffin_lim_reference") for p in paths]
    order = sorted(range(len(paths)), key=lambda i: magnitudes[i].shape[0])
    waves: list[np.ndarray] = [np.zeros(0, np.float32)] * len(paths)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        for i, wave in zip(batch, griffin_lim([magnitudes[i] for i in batch], [keys[i] for i in batch], GriffinLimOptions(), audio)):
            waves[i] = np.asarray(wave, dtype=np.float32)
    return waves


def _style_space(corpus: Any, train: dict[str, list[Any]], items: list[_Item], audio: AudioConfig, options: EvalOptions) -> StyleSpace:
    """Voice statistics from vocoded training renderings (:func:`_vocoded`): like is compared with
    like. Measured on the default voices: with plain renderings, Griffin-Lim's sharpening alone moves
    a quarter of espeak-ng's own vocoded renderings to the wrong voice by mean log-mel."""
    features: dict[str, list[SpeechFeatures]] = {}
    for voice, utterances in train.items():
        pool = sorted(utterances, key=lambda u: u.sentence_id)
        if not pool:
            # A corpus without training renderings (a tiny test corpus): use the held-out targets.
            logger.warning("voice %s: no training renderings; style statistics come from held-out ones", voice)
            paths = [item.target_wav for item in items if item.voice == voice]
        else:
            count = min(options.style_stats_utterances, len(pool))
            picks = np.linspace(0, len(pool) - 1, count).round().astype(int)
            paths = [corpus.wav_path(pool[i]) for i in dict.fromkeys(picks.tolist())]
        features[voice] = [speech_features(w, audio, options.num_cepstra) for w in _vocoded(paths, audio, options.seed)]
    return StyleSpace.fit(features)


@dataclass
class _References:
    """What the models' numbers are read against (see :attr:`EvalReport.mcd_anchors`)."""

    mcd_anchors: dict[str, dict[str, float]]
    style_ceiling: dict[str, float]
    style_ceiling_absolute: dict[str, float]
    content_ceiling: dict[str, float]
    voiced_fraction_anchors: dict[str, dict[str, float]]


def _references(
    items: list[_Item],
    targets: dict[str, SpeechFeatures],
    space: StyleSpace,
    audio: AudioConfig,
    options: EvalOptions,
    distractors: dict[str, list[str]],
) -> _References:
    voices = list(dict.fromkeys(item.voice for item in items))
    by_key = {(item.voice, item.sentence_id): item for item in items}
    sentence_ids = list(dict.fromkeys(item.sentence_id for item in items))[: options.reference_sentences]
    subset = [item for item in items if item.sentence_id in sentence_ids]
    floor: dict[str, float] = {}
    ceiling_absolute: dict[str, bool] = {}
    means: dict[str, np.ndarray] = {}
    vocoded_voiced: dict[str, float] = {}
    for item, wave in zip(subset, _vocoded([item.target_wav for item in subset], audio, options.seed)):
        vocoded = speech_features(wave, audio, options.num_cepstra)
        floor[item.id] = mcd_dtw(vocoded.cepstrum, targets[item.id].cepstrum)
        ceiling_absolute[item.id] = _nearest(space.distances(vocoded)["combined"]) == item.voice
        means[item.id] = vocoded.mean_log_mel
        vocoded_voiced[item.id] = vocoded.voiced_fraction
    voice_of = {item.id: item.voice for item in subset}
    ceiling = {key: voice == voice_of[key] for key, voice in space.nearest_relative(means).items()}
    other_voice: dict[str, float] = {}
    other_sentence: dict[str, float] = {}
    content: dict[str, bool] = {}
    for item in items:
        target = targets[item.id].cepstrum
        if len(voices) > 1:
            next_voice = voices[(voices.index(item.voice) + 1) % len(voices)]
            candidate = targets[by_key[next_voice, item.sentence_id].id].cepstrum
            other_voice[item.id] = mcd_dtw(candidate, target)
            # The content check on the right words in the next voice: how far the check can see past a
            # voice that is not quite the target's.
            margin = content_margin(candidate, other_voice[item.id], [targets[d].cepstrum for d in distractors[item.id]])
            if margin is not None:
                content[item.id] = margin > 0
        reference = targets.get(item.reference_id)
        if reference is None:
            reference = speech_features(load_audio(item.reference_wav, audio.sample_rate), audio, options.num_cepstra)
        other_sentence[item.id] = mcd_dtw(reference.cepstrum, target)
    anchors: dict[str, dict[str, float]] = {}
    style: dict[str, float] = {}
    style_absolute: dict[str, float] = {}
    content_ceiling: dict[str, float] = {}
    voiced: dict[str, dict[str, float]] = {}
    for scope in [*voices, "all"]:
        ids = [item.id for item in items if scope in ("all", item.voice)]
        content_ceiling[scope] = _mean(content[i] for i in ids if i in content)
        voiced[scope] = {
            "espeak": _mean(targets[i].voiced_fraction for i in ids),
            "espeak_vocoded": _mean(vocoded_voiced[i] for i in ids if i in vocoded_voiced),
        }
        anchors[scope] = {
            "vocoder_floor": _mean(floor[i] for i in ids if i in floor),
            "same_sentence_other_voice": _mean(other_voice[i] for i in ids if i in other_voice),
            "same_voice_other_sentence": _mean(other_sentence[i] for i in ids),
        }
        style[scope] = _mean(ceiling[i] for i in ids if i in ceiling)
        style_absolute[scope] = _mean(ceiling_absolute[i] for i in ids if i in ceiling_absolute)
    return _References(anchors, style, style_absolute, content_ceiling, voiced)


def _evaluate_model(
    model: Model,
    label: str,
    items: list[_Item],
    targets: dict[str, SpeechFeatures],
    space: StyleSpace,
    options: EvalOptions,
    plot_ids: set[str],
    distractors: dict[str, list[str]],
) -> tuple[ModelEvaluation, dict[str, tuple[Any, SpeechFeatures | None]]]:
    from trtgen.backends import create_backend
    from trtgen.progress import synthesis_progress
    from trtgen.synthesis import SynthesisOptions, Synthesizer, Utterance

    started = time.perf_counter()
    card = model.card
    backend = create_backend(model, options.backend, options.device, threads=options.threads)
    synthesizer = Synthesizer(
        model, backend, SynthesisOptions(batch_size=options.batch_size, keep_alignments=True, keep_mels=True)
    )
    styles, errors = synthesizer.style_bank().embeddings(item.reference_wav for item in items)
    if errors:
        clip, reason = next(iter(errors.items()))
        raise EvalError(f"{len(errors)} reference clip(s) unusable, e.g. {clip}: {reason}")
    encoder = TextEncoder(card.text)
    encoded = {}
    for item in items:
        try:
            encoded[item.index] = encoder.encode(item.text)
        except TextError as error:
            raise EvalError(f"held-out sentence {item.sentence_id} cannot be encoded: {error}") from None
    order = sorted(items, key=lambda item: (-len(encoded[item.index]), item.index))
    utterances = [
        Utterance(
            index=item.index,
            text_ids=encoded[item.index],
            style_embedding=styles[item.reference_wav],
            dropout=options.dropout,
            prenet_key=utterance_key(options.seed, item.id, "prenet"),
            vocoder_key=utterance_key(options.seed, item.id, "griffin_lim"),
            encoding_key=item.index,
        )
        for item in order
    ]
    results: dict[int, UtteranceResult] = {}
    kept: dict[str, tuple[Any, SpeechFeatures | None]] = {}
    audio = card.audio
    with synthesis_progress(len(utterances), f"eval {label}", enabled=options.progress) as progress:
        for output in synthesizer.run(utterances):
            item = items[output.index]
            ids = encoded[item.index]
            eos_index = int(np.flatnonzero(ids == card.text.eos_id)[0])
            alignment = None
            if output.alignment is not None:
                alignment = check_alignment(
                    output.alignment, eos_index, options.alignment_rule, end_index=last_spoken_index(ids, card.text)
                )
            features = None
            mel_mcd = None
            if output.audio is not None:
                features = speech_features(output.audio, audio, options.num_cepstra)
                if output.mel is not None:
                    frames = output.mel[speech_frames(output.mel)]
                    mel_mcd = mcd_dtw(mel_cepstrum(frames, options.num_cepstra), targets[item.id].cepstrum)
            others = [targets[other] for other in distractors[item.id]] if features is not None else []
            results[item.index] = _score(item, output, ids, eos_index, alignment, features, mel_mcd, targets[item.id], others, space)
            if item.id in plot_ids:
                kept[item.id] = (output, features)
            progress.advance(1, len(output.audio) / audio.sample_rate if output.audio is not None else 0.0)
    ordered = [results[item.index] for item in items]
    relative = space.nearest_relative({r.id: np.asarray(r.mean_log_mel) for r in ordered if r.mean_log_mel is not None})
    for row in ordered:
        row.style_voice_relative = relative.get(row.id)
    voices = list(dict.fromkeys(item.voice for item in items))
    confusion = {v: dict(Counter(r.style_voice_relative or "none" for r in ordered if r.voice == v)) for v in voices}
    evaluation = ModelEvaluation(
        label=label,
        model_name=card.name,
        model_digest=model.digest,
        model_source=dict(card.source),
        overall=_summarise("all", ordered),
        voices={v: _summarise(v, [r for r in ordered if r.voice == v]) for v in voices},
        style_confusion=confusion,
        utterances=ordered,
        wall_seconds=time.perf_counter() - started,
    )
    return evaluation, kept


def _content_distractors(items: list[_Item], count: int) -> dict[str, list[str]]:
    """Per item, the ids of ``count`` other held-out items of its voice: the sentences 2, 3, .. after it
    (cyclically), skipping the next one, whose clip is the item's style reference."""
    by_voice: dict[str, list[_Item]] = {}
    for item in items:
        by_voice.setdefault(item.voice, []).append(item)
    chosen = {}
    for voice_items in by_voice.values():
        n = len(voice_items)
        for position, item in enumerate(voice_items):
            offsets = range(2, 2 + min(count, max(n - 2, 0)))
            chosen[item.id] = [voice_items[(position + k) % n].id for k in offsets]
    return chosen


def content_margin(candidate: np.ndarray, own_mcd_db: float, distractors: Sequence[np.ndarray]) -> float | None:
    """The content check: MCD-DTW of the ``candidate`` cepstra to the nearest distractor rendering minus
    ``own_mcd_db``, its MCD-DTW to the rendering of its own sentence (> 0: right; None without distractors)."""
    if not distractors:
        return None
    return min(mcd_dtw(candidate, other) for other in distractors) - own_mcd_db


def _score(
    item: _Item,
    output: Any,
    ids: np.ndarray,
    eos_index: int,
    alignment: AlignmentCheck | None,
    features: SpeechFeatures | None,
    mel_mcd: float | None,
    target: SpeechFeatures,
    distractors: Sequence[SpeechFeatures],
    space: StyleSpace,
) -> UtteranceResult:
    mcd = mcd_path = margin = style = style_mel = style_f0 = None
    distances: dict[str, dict[str, float]] = {}
    if features is not None:
        mcd, mcd_path = mcd_dtw_scores(features.cepstrum, target.cepstrum)
        margin = content_margin(features.cepstrum, mcd, [other.cepstrum for other in distractors])
        distances = space.distances(features)
        style, style_mel, style_f0 = (_nearest(distances[k]) for k in ("combined", "mel", "f0"))
    return UtteranceResult(
        id=item.id,
        voice=item.voice,
        sentence_id=item.sentence_id,
        reference_id=item.reference_id,
        text=item.text,
        text_len=int(ids.shape[0]),
        eos_index=eos_index,
        steps=int(output.steps),
        num_frames=int(output.num_frames),
        stopped=bool(output.stopped),
        has_audio=features is not None,
        duration_s=features.duration_s if features is not None else None,
        espeak_duration_s=item.espeak_duration_s,
        alignment=alignment,
        mcd_dtw_db=mcd,
        mcd_dtw_path_db=mcd_path,
        mcd_dtw_mel_db=mel_mcd,
        content_margin_db=margin,
        f0_median_hz=features.median_f0_hz if features is not None else None,
        voiced_fraction=features.voiced_fraction if features is not None else None,
        style_voice=style,
        style_voice_mel=style_mel,
        style_voice_f0=style_f0,
        style_distances=distances,
        mean_log_mel=features.mean_log_mel.tolist() if features is not None else None,
    )


def _mean(values: Iterable[float]) -> float:
    array = np.asarray(list(values), dtype=np.float64)
    return float(array.mean()) if array.size else math.nan


def _summarise(name: str, rows: list[UtteranceResult]) -> GroupSummary:
    with_audio = [r for r in rows if r.has_audio]
    timed = [r for r in with_audio if r.stopped]
    aligned = [r.alignment for r in rows]
    return GroupSummary(
        name=name,
        num_utterances=len(rows),
        num_with_audio=len(with_audio),
        alignment_ok=_mean(r.alignment_ok for r in rows),
        monotonic=_mean(a is not None and a.monotonic for a in aligned),
        no_big_jumps=_mean(a is not None and a.no_big_jumps for a in aligned),
        reaches_end=_mean(a is not None and a.reaches_end for a in aligned),
        stopped=_mean(r.stopped for r in rows),
        num_duration_pairs=len(timed),
        duration_r=pearson_r([r.duration_s for r in timed], [r.espeak_duration_s for r in timed]),
        duration_ratio=_mean(r.duration_s / r.espeak_duration_s for r in timed),
        mcd_dtw_db=_mean(r.mcd_dtw_db for r in with_audio),
        mcd_dtw_median_db=float(np.median([r.mcd_dtw_db for r in with_audio])) if with_audio else math.nan,
        mcd_dtw_path_db=_mean(r.mcd_dtw_path_db for r in with_audio),
        mcd_dtw_mel_db=_mean(r.mcd_dtw_mel_db for r in with_audio if r.mcd_dtw_mel_db is not None),
        content_correct=_mean(r.content_correct for r in rows),
        style_correct=_mean(r.style_voice_relative == r.voice for r in rows),
        style_correct_absolute=_mean(r.style_voice == r.voice for r in rows),
        style_correct_mel=_mean(r.style_voice_mel == r.voice for r in rows),
        style_correct_f0=_mean(r.style_voice_f0 == r.voice for r in rows),
        voiced_fraction=_mean(r.voiced_fraction for r in with_audio if r.voiced_fraction is not None),
        mean_attention_peak=_mean(a.mean_peak for a in aligned if a is not None),
    )


def _checks(trained: ModelEvaluation, random: ModelEvaluation | None, floor_db: float, thresholds: Thresholds) -> list[Check]:
    checks = []

    def at_least(name: str, scope: str, value: float, threshold: float) -> None:
        checks.append(Check(name, scope, value, threshold, ">=", bool(np.isfinite(value) and value >= threshold)))

    groups = [*trained.voices.values(), trained.overall]
    for group in trained.voices.values():
        at_least("sentences", group.name, group.num_utterances, thresholds.min_sentences_per_voice)
    for group in groups:
        at_least("alignment_ok", group.name, group.alignment_ok, thresholds.alignment_ok)
    for group in groups:
        at_least("stopped", group.name, group.stopped, thresholds.stopped)
    for group in groups:
        at_least("duration_r", group.name, group.duration_r, thresholds.duration_r)
    for group in groups:
        at_least("style_correct", group.name, group.style_correct, thresholds.style_correct)
    if random is not None:
        at_least("random_gap_closed", "all", gap_closed(trained.overall.mcd_dtw_db, random.overall.mcd_dtw_db, floor_db),
                 thresholds.random_gap_closed)
    return checks


def gap_closed(trained_db: float, random_db: float, floor_db: float) -> float:
    """Share of the random model's MCD excess over the vocoder floor that the trained model removes."""
    excess = random_db - floor_db
    return (random_db - trained_db) / excess if excess > 0 else math.nan


def _export_random(card: ModelCard, directory: Path, seed: int) -> Model:
    try:
        from export.onnx_export import ExportOptions, export_model
        from export.variables import random_weights
    except ImportError as error:
        raise EvalError(
            f"--compare-random exports a randomly initialised model with TensorFlow, which is not available "
            f"({error.name} is missing): pip install 'trtgen[export]'"
        ) from None
    logger.info("exporting a randomly initialised %r model (seed %d) for comparison", card.model.name, seed)
    export_model(
        random_weights(card.model, seed),
        card.model,
        directory,
        audio=card.audio,
        text=card.text,
        options=ExportOptions(opset=card.opset, name=f"random-{card.model.name}", source={"random_init": card.model.name, "seed": seed}),
    )
    return load_model(directory)


def run_eval(options: EvalOptions) -> EvalReport:
    """Evaluate ``options.model_dir`` on the held-out sentences of ``options.corpus_dir``; write the JSON
    report (and plots) into ``options.out_dir``. Pass/fail is in the returned report's ``checks``."""
    from export.train.corpus import CorpusError, load_corpus

    started = time.perf_counter()
    options.validate()
    model = load_model(options.model_dir)
    if options.stop_threshold is not None:
        model = model.with_stop_threshold(options.stop_threshold)
    try:
        corpus = load_corpus(options.corpus_dir)
    except (CorpusError, OSError) as error:
        raise EvalError(str(error)) from None
    audio = model.card.audio
    if corpus.settings.sample_rate != audio.sample_rate:
        logger.warning("corpus at %d Hz, model at %d Hz: the corpus audio is resampled", corpus.settings.sample_rate, audio.sample_rate)
    items, train = _select_items(corpus, options.sentences, options.first_sentence)
    logger.info("%d utterances: %d held-out sentences x %d voices", len(items), len(items) // len(train), len(train))
    space = _style_space(corpus, train, items, audio, options)
    targets: dict[str, SpeechFeatures] = {}
    for item in items:
        try:
            targets[item.id] = speech_features(load_audio(item.target_wav, audio.sample_rate), audio, options.num_cepstra)
        except AudioError as error:
            raise EvalError(f"espeak-ng target unusable: {error}") from None
    distractors = _content_distractors(items, options.content_distractors)
    references = _references(items, targets, space, audio, options, distractors)
    plot_ids = _plot_ids(items, options.plots)
    trained, kept = _evaluate_model(model, "trained", items, targets, space, options, plot_ids, distractors)
    random = None
    random_kept: dict[str, tuple[Any, SpeechFeatures | None]] = {}
    if options.compare_random:
        with tempfile.TemporaryDirectory(prefix="trtgen-eval-random-") as directory:
            random_model = _export_random(model.card, Path(directory), options.random_seed)
            random, random_kept = _evaluate_model(
                random_model, "random", items, targets, space, options, plot_ids, distractors
            )
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots: list[str] = []
    plots_skipped = None
    if plot_ids:
        try:
            plots = _plot(out / "plots", items, kept, random_kept, targets, trained, random, model.card)
        except ImportError:
            plots_skipped = "matplotlib is not installed: pip install matplotlib (or 'trtgen[bench]') for the plots"
            logger.warning("plots skipped: %s", plots_skipped)
    settings = {
        "model_dir": str(options.model_dir),
        "corpus_dir": str(options.corpus_dir),
        "corpus_espeak_version": corpus.settings.espeak_version,
        "sentences_per_voice": options.sentences,
        "first_sentence": options.first_sentence,
        "stop_threshold": model.card.model.stop_threshold,
        "stop_threshold_overridden": options.stop_threshold is not None,
        "sentence_ids": sorted({item.sentence_id for item in items}),
        "voices": list(train),
        "dropout": options.dropout,
        "seed": options.seed,
        "compare_random": options.compare_random,
        "random_seed": options.random_seed,
        "num_cepstra": options.num_cepstra,
        "style_stats_utterances": options.style_stats_utterances,
        "reference_sentences": options.reference_sentences,
        "vocoder": dataclasses.asdict(SynthesisOptions().vocoder),
        "backend": options.backend,
        "device": options.device,
        "sample_rate": audio.sample_rate,
    }
    report = EvalReport(
        settings=settings,
        thresholds=options.thresholds,
        alignment_rule=options.alignment_rule,
        style_space=space,
        mcd_anchors=references.mcd_anchors,
        style_ceiling=references.style_ceiling,
        style_ceiling_absolute=references.style_ceiling_absolute,
        content_ceiling=references.content_ceiling,
        voiced_fraction_anchors=references.voiced_fraction_anchors,
        trained=trained,
        random=random,
        checks=_checks(trained, random, references.mcd_anchors["all"]["vocoder_floor"], options.thresholds),
        plots=plots,
        plots_skipped=plots_skipped,
        wall_seconds=time.perf_counter() - started,
    )
    report.report_path = out / REPORT_NAME
    with atomic_write(report.report_path) as handle:
        json.dump(report.to_json(), handle, indent=2)
        handle.write("\n")
    return report


# --------------------------------------------------------------------------------------------------
# Plots


def _plot_ids(items: list[_Item], count: int) -> set[str]:
    """``count`` utterances taken round-robin over the voices (first sentences first)."""
    by_voice: dict[str, list[_Item]] = {}
    for item in items:
        by_voice.setdefault(item.voice, []).append(item)
    chosen: list[str] = []
    position = 0
    while len(chosen) < count and any(position < len(v) for v in by_voice.values()):
        for voice_items in by_voice.values():
            if position < len(voice_items) and len(chosen) < count:
                chosen.append(voice_items[position].id)
        position += 1
    return set(chosen)


def _plot(
    directory: Path,
    items: list[_Item],
    kept: dict[str, tuple[Any, SpeechFeatures | None]],
    random_kept: dict[str, tuple[Any, SpeechFeatures | None]],
    targets: dict[str, SpeechFeatures],
    trained: ModelEvaluation,
    random: ModelEvaluation | None,
    card: ModelCard,
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for label, outputs, evaluation in (("trained", kept, trained), ("random", random_kept, random)):
        if evaluation is None:
            continue
        rows = {r.id: r for r in evaluation.utterances}
        for item in items:
            if item.id not in outputs:
                continue
            output, features = outputs[item.id]
            row = rows[item.id]
            if output.alignment is not None:
                figure, axis = plt.subplots(figsize=(8, 4.5))
                image = axis.imshow(output.alignment.T, origin="lower", aspect="auto", interpolation="none", cmap="viridis")
                path = np.minimum(output.alignment.argmax(axis=1), row.eos_index)
                axis.plot(np.arange(path.size), path, color="white", linewidth=0.8, alpha=0.7, label="argmax (clamped)")
                axis.axhline(row.eos_index, color="red", linestyle="--", linewidth=0.8, label="</s>")
                if row.alignment is not None:
                    axis.axhline(row.alignment.end_index, color="orange", linestyle=":", linewidth=0.8, label="last spoken symbol")
                verdict = "ok" if row.alignment_ok else "FAIL"
                axis.set_title(f"{label} {item.id}: alignment {verdict}, {'stopped' if row.stopped else 'CAPPED'}", fontsize=9)
                frames_per_step = card.model.reduction_factor
                axis.set_xlabel(f"decoder step ({frames_per_step} frame{'s' if frames_per_step > 1 else ''} each)")
                axis.set_ylabel("encoder symbol")
                axis.legend(loc="upper left", fontsize=7)
                figure.colorbar(image, ax=axis)
                figure.tight_layout()
                path_png = directory / f"{label}-{item.id}-alignment.png"
                figure.savefig(path_png, dpi=100)
                plt.close(figure)
                written.append(str(path_png))
            panels = []
            if output.mel is not None:
                panels.append(("model mel (postnet)", output.mel))
            if features is not None:
                mcd = f", MCD-DTW {row.mcd_dtw_db:.2f} dB" if row.mcd_dtw_db is not None else ""
                panels.append((f"output log-mel (from the waveform{mcd})", features.log_mel))
            panels.append(("espeak-ng log-mel", targets[item.id].log_mel))
            low = min(float(p.min()) for _, p in panels)
            high = max(float(p.max()) for _, p in panels)
            figure, axes = plt.subplots(len(panels), 1, figsize=(9, 2.2 * len(panels)), squeeze=False)
            longest = max(p.shape[0] for _, p in panels)
            for axis, (title, frames) in zip(axes[:, 0], panels):
                # One time scale for every panel, so the durations compare at a glance.
                axis.imshow(frames.T, origin="lower", aspect="auto", interpolation="none", vmin=low, vmax=high,
                            cmap="magma", extent=(-0.5, frames.shape[0] - 0.5, -0.5, frames.shape[1] - 0.5))
                axis.set_xlim(-0.5, longest - 0.5)
                axis.set_title(f"{label} {item.id}: {title}", fontsize=9)
                axis.set_ylabel("mel band")
            axes[-1, 0].set_xlabel(f"frame ({1000 * card.audio.hop_length / card.audio.sample_rate:g} ms)")
            figure.tight_layout()
            path_png = directory / f"{label}-{item.id}-spectrogram.png"
            figure.savefig(path_png, dpi=100)
            plt.close(figure)
            written.append(str(path_png))
    return written


# --------------------------------------------------------------------------------------------------
# Printing


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def print_eval_report(report: EvalReport) -> None:
    """Per-voice tables for each model, then every check with PASS/FAIL."""
    from trtgen.progress import console, print_table

    columns = ["voice", "n", "align ok (mono/jumps/end)", "stopped", "dur r", "dur ratio", "MCD-DTW dB",
               "content ok", "style ok", "abs (mel/F0)", "voiced", "attn peak"]
    for evaluation in (report.trained, report.random):
        if evaluation is None:
            continue
        rows = []
        for group in [*evaluation.voices.values(), evaluation.overall]:
            rows.append([
                group.name, group.num_utterances,
                f"{_fmt(group.alignment_ok, '.2f')} ({_fmt(group.monotonic, '.2f')}/{_fmt(group.no_big_jumps, '.2f')}/"
                f"{_fmt(group.reaches_end, '.2f')})",
                _fmt(group.stopped, ".2f"), _fmt(group.duration_r), _fmt(group.duration_ratio, ".2f"),
                _fmt(group.mcd_dtw_db, ".2f"),
                _fmt(group.content_correct, ".2f"),
                _fmt(group.style_correct, ".2f"),
                f"{_fmt(group.style_correct_absolute, '.2f')} ({_fmt(group.style_correct_mel, '.2f')}/{_fmt(group.style_correct_f0, '.2f')})",
                _fmt(group.voiced_fraction, ".2f"),
                _fmt(group.mean_attention_peak, ".2f"),
            ])
        settings = report.settings
        title = (f"trtgen eval: {evaluation.label} model {evaluation.model_name}, {len(settings['sentence_ids'])} "
                 f"held-out sentences from number {settings['first_sentence']}, stop threshold {settings['stop_threshold']:g} ({evaluation.wall_seconds:.0f} s)")
        print_table(title, columns, rows)
    voices = list(report.trained.voices)
    rows = []
    for scope in [*voices, "all"]:
        trained = report.trained.voices[scope] if scope != "all" else report.trained.overall
        random = None if report.random is None else (report.random.voices[scope] if scope != "all" else report.random.overall)
        anchors = report.mcd_anchors.get(scope, {})
        rows.append([
            scope, _fmt(trained.mcd_dtw_db, ".2f"), "-" if random is None else _fmt(random.mcd_dtw_db, ".2f"),
            _fmt(anchors.get("vocoder_floor"), ".2f"), _fmt(anchors.get("same_sentence_other_voice"), ".2f"),
            _fmt(anchors.get("same_voice_other_sentence"), ".2f"), _fmt(trained.mcd_dtw_mel_db, ".2f"),
            "-" if random is None else _fmt(random.mcd_dtw_mel_db, ".2f"),
            _fmt(trained.mcd_dtw_path_db, ".2f"), "-" if random is None else _fmt(random.mcd_dtw_path_db, ".2f"),
        ])
    print_table(
        "MCD-DTW (dB, per espeak-ng frame) against espeak-ng: waveforms (trained, random init of the same size, "
        "espeak-ng anchors); model log-mel before the vocoder; waveforms along the path (usual definition)",
        ["voice", "trained", "random", "vocoder floor", "same text, next voice", "same voice, other text",
         "trained mel", "random mel", "trained path", "random path"],
        rows,
    )
    confusion = [[v, *(report.trained.style_confusion[v].get(w, 0) for w in voices), report.trained.style_confusion[v].get("none", 0)] for v in voices]
    print_table("style check (trained): conditioning voice -> nearest voice (relative mean log-mel)", ["voice", *voices, "no audio"], confusion)
    check_rows = [
        [c.name, c.scope, _fmt(c.value, ".4g"), f"{c.comparison} {c.threshold:g}", "PASS" if c.passed else "FAIL"]
        for c in report.checks
    ]
    print_table("checks", ["check", "scope", "value", "needs", "result"], check_rows)
    if report.random is None:
        console.print("MCD-DTW vs a random model: not checked (run with --compare-random)")
    if report.plots_skipped:
        console.print(f"plots skipped: {report.plots_skipped}")
    elif report.plots:
        console.print(f"{len(report.plots)} plots in {Path(report.plots[0]).parent}")
    failed = [c for c in report.checks if not c.passed]
    verdict = "[bold green]PASS[/]" if not failed else f"[bold red]FAIL[/] ({len(failed)} of {len(report.checks)} checks failed)"
    ceiling = report.style_ceiling.get("all", math.nan)
    ceiling_absolute = report.style_ceiling_absolute.get("all", math.nan)
    console.print(
        f"style check on espeak-ng's own vocoded held-out renderings (the ceiling): {_fmt(ceiling)} "
        f"(absolute: {_fmt(ceiling_absolute)})"
    )
    voiced = report.voiced_fraction_anchors.get("all", {})
    console.print(
        f"content check on espeak-ng's rendering in the next voice (what the check can see): "
        f"{_fmt(report.content_ceiling.get('all', math.nan))}; voiced frames in espeak-ng's renderings: "
        f"{_fmt(voiced.get('espeak', math.nan), '.2f')} (through Griffin-Lim: {_fmt(voiced.get('espeak_vocoded', math.nan), '.2f')})"
    )
    console.print(f"trtgen eval: {verdict}; report {report.report_path} ({report.wall_seconds:.0f} s)")
