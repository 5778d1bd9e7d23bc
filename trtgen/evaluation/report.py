"""The shape of an evaluation: options' pass marks, per-utterance results, per-voice summaries, the
checks, and the JSON report (``eval.json``); and the scoring that fills them."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from trtgen import __version__
from trtgen.errors import UsageError
from trtgen.engine.alignment import AlignmentCheck, AlignmentRule
from trtgen.engine.voice import VoiceSpec
from trtgen.evaluation.metrics import SpeechFeatures, StyleSpace, mcd_dtw, mcd_dtw_scores, nearest_voice, pearson_r

logger = logging.getLogger(__name__)

REPORT_NAME = "eval.json"

# --------------------------------------------------------------------------------------------------
# Options, results, report


@dataclass(frozen=True)
class Thresholds:
    """Pass marks (docs/shipped-voice.md, "How a voice is measured"); each applies to every voice and to all voices together."""

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
    """What ``trtgen eval`` evaluates and how; ``voice`` is the model and how to run it, loaded once
    (:class:`~trtgen.engine.voice.VoiceSpec`: model directory, backend, device, threads, batch size,
    stop threshold)."""

    voice: VoiceSpec
    corpus_dir: Path
    out_dir: Path
    sentences: int = 50
    """Held-out sentences per voice (the first ones by sentence id, after ``first_sentence``)."""
    first_sentence: int = 0
    """Held-out sentences (by id) to skip. The default test slice is the first ``sentences``; a later,
    disjoint slice (e.g. ``first_sentence=50``) is a validation set for choosing decode settings such as
    the stop threshold without tuning on the test sentences."""
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
    calibrate_quality: bool = False
    """Write the quality-gate thresholds calibrated on this evaluation into the model card's
    ``defaults["quality"]`` (:func:`trtgen.engine.quality.calibrate`); they are reported either way."""
    content_distractors: int = 4
    """The content check: each output is also compared (MCD-DTW) with espeak-ng's renderings of this many
    other held-out sentences in the same voice; right when its own sentence's rendering is the nearest."""
    alignment_rule: AlignmentRule = field(default_factory=AlignmentRule)
    thresholds: Thresholds = field(default_factory=Thresholds)

    def validate(self) -> None:
        if self.sentences < 1:
            raise UsageError(f"sentences must be >= 1, got {self.sentences}")
        if self.first_sentence < 0:
            raise UsageError(f"first_sentence must be >= 0, got {self.first_sentence}")
        if not 0.0 <= self.dropout < 1.0:
            raise UsageError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.plots < 0 or self.style_stats_utterances < 1 or self.reference_sentences < 1:
            raise UsageError("plots must be >= 0, style_stats_utterances and reference_sentences >= 1")
        if self.content_distractors < 0:
            raise UsageError(f"content_distractors must be >= 0, got {self.content_distractors}")


@dataclass(frozen=True)
class EvalItem:
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
    quality_ok: bool | None = None
    """The quality gate's verdict (:mod:`trtgen.engine.quality`), which ``trtgen generate`` records."""
    quality_reasons: tuple[str, ...] = ()
    quality_signals: dict[str, Any] = field(default_factory=dict)

    @property
    def gate_agrees(self) -> bool:
        """The gate fails exactly the utterances this evaluation's own checks fail (alignment, stopping)."""
        return bool(self.quality_ok) == (self.alignment_ok and self.stopped)

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
    gate_passed: float = math.nan
    """Share the quality gate passes (:mod:`trtgen.engine.quality`, as ``trtgen generate`` runs it)."""
    gate_agrees: float = math.nan
    """Share where the gate's verdict is this evaluation's (alignment ok and stopped, or not)."""


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
    quality_gate: dict[str, Any] = field(default_factory=dict)
    """The gate's thresholds as run, those calibrated on this evaluation, and whether the card took them."""

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
                "quality_gate": self.quality_gate,
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
    "mcd_dtw_db": "both waveforms trimmed (trtgen.engine.audio.trim_silence), 80-band ln-mel (trtgen.engine.audio.log_mel), "
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



def content_margin(candidate: np.ndarray, own_mcd_db: float, distractors: Sequence[np.ndarray]) -> float | None:
    """The content check: MCD-DTW of the ``candidate`` cepstra to the nearest distractor rendering minus
    ``own_mcd_db``, its MCD-DTW to the rendering of its own sentence (> 0: right; None without distractors)."""
    if not distractors:
        return None
    return min(mcd_dtw(candidate, other) for other in distractors) - own_mcd_db


def score_utterance(
    item: EvalItem,
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
        style, style_mel, style_f0 = (nearest_voice(distances[k]) for k in ("combined", "mel", "f0"))
    return UtteranceResult(
        id=item.id,
        voice=item.voice,
        sentence_id=item.sentence_id,
        reference_id=item.reference_id,
        text=item.text,
        text_len=int(ids.shape[0]),
        eos_index=eos_index,
        steps=int(output.steps),
        num_frames=int(output.frames),
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
        quality_ok=None if output.quality is None else output.quality.ok,
        quality_reasons=() if output.quality is None else output.quality.reasons,
        quality_signals={} if output.quality is None else output.quality.signals.to_json(),
    )


def mean_or_nan(values: Iterable[float]) -> float:
    array = np.asarray(list(values), dtype=np.float64)
    return float(array.mean()) if array.size else math.nan


def summarise(name: str, rows: list[UtteranceResult]) -> GroupSummary:
    with_audio = [r for r in rows if r.has_audio]
    timed = [r for r in with_audio if r.stopped]
    aligned = [r.alignment for r in rows]
    return GroupSummary(
        name=name,
        num_utterances=len(rows),
        num_with_audio=len(with_audio),
        alignment_ok=mean_or_nan(r.alignment_ok for r in rows),
        monotonic=mean_or_nan(a is not None and a.monotonic for a in aligned),
        no_big_jumps=mean_or_nan(a is not None and a.no_big_jumps for a in aligned),
        reaches_end=mean_or_nan(a is not None and a.reaches_end for a in aligned),
        stopped=mean_or_nan(r.stopped for r in rows),
        num_duration_pairs=len(timed),
        duration_r=pearson_r([r.duration_s for r in timed], [r.espeak_duration_s for r in timed]),
        duration_ratio=mean_or_nan(r.duration_s / r.espeak_duration_s for r in timed),
        mcd_dtw_db=mean_or_nan(r.mcd_dtw_db for r in with_audio),
        mcd_dtw_median_db=float(np.median([r.mcd_dtw_db for r in with_audio])) if with_audio else math.nan,
        mcd_dtw_path_db=mean_or_nan(r.mcd_dtw_path_db for r in with_audio),
        mcd_dtw_mel_db=mean_or_nan(r.mcd_dtw_mel_db for r in with_audio if r.mcd_dtw_mel_db is not None),
        content_correct=mean_or_nan(r.content_correct for r in rows),
        style_correct=mean_or_nan(r.style_voice_relative == r.voice for r in rows),
        style_correct_absolute=mean_or_nan(r.style_voice == r.voice for r in rows),
        style_correct_mel=mean_or_nan(r.style_voice_mel == r.voice for r in rows),
        style_correct_f0=mean_or_nan(r.style_voice_f0 == r.voice for r in rows),
        voiced_fraction=mean_or_nan(r.voiced_fraction for r in with_audio if r.voiced_fraction is not None),
        mean_attention_peak=mean_or_nan(a.mean_peak for a in aligned if a is not None),
        gate_passed=mean_or_nan(bool(r.quality_ok) for r in rows),
        gate_agrees=mean_or_nan(r.gate_agrees for r in rows),
    )


def run_checks(trained: ModelEvaluation, random: ModelEvaluation | None, floor_db: float, thresholds: Thresholds) -> list[Check]:
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
