"""The quality gate: is an utterance a gross failure that must not be trained on?

A Tacotron whose attention fails babbles, repeats or skips words, or runs to its decoding cap, and that
audio would go into training under the full transcript. What helps ASR is leaving out gross failures,
not "ugly" audio (docs/quality.md), so the gate looks only for those, from what
the run already has: whether the stop token fired, how many frames each text symbol got, the
attention path (the same rule as ``trtgen eval``'s alignment check, :func:`~trtgen.engine.alignment.check_path`),
silences at the ends and inside (frame energies of the waveform), and clipped or non-finite samples.

Its thresholds are inference defaults of the model (the card's ``defaults["quality"]``, calibrated with
``trtgen eval``), else :class:`QualityThresholds`' own; ``trtgen generate --quality KEY=VALUE,...``
overrides them for a run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import numpy as np

from trtgen.engine.alignment import AlignmentRule, check_path
from trtgen.errors import UsageError

__all__ = ["QualityThresholds", "Quality", "QualitySignals", "assess", "calibrate", "REASONS", "parse_quality_overrides"]

REASONS = {
    "capped": "the stop token never fired: the decoder ran to its cap",
    "too_fast": "fewer frames per text symbol than the gate allows (skipped words)",
    "too_slow": "more frames per text symbol than the gate allows (babbling, repeats)",
    "not_monotonic": "the attention went back over the text",
    "jumps": "the attention jumped ahead over the text",
    "late_start": "the attention did not start at the start of the text",
    "stops_early": "the attention never reached the last spoken symbol",
    "leading_silence": "too long a silence before the speech",
    "trailing_silence": "too long a silence after the speech",
    "long_pause": "too long a silence inside the speech",
    "clipping": "too many samples at or beyond full scale",
    "non_finite": "NaN or infinite samples",
}
"""Every reason the gate gives, by its code (records and manifests carry the codes)."""


@dataclass(frozen=True)
class QualityThresholds:
    """Where the gate draws its lines. Defaults measured on the shipped voice (docs/quality.md); a model
    card may carry its own under ``defaults["quality"]``.

    Attributes:
        min_frames_per_symbol, max_frames_per_symbol: decoder frames per symbol of the text (letters,
            digits or IPA phones, spaces and punctuation: pauses at punctuation count as the symbol's),
            the stop frame excluded. The cap is 10 frames per id, so a decode that runs to it exceeds
            the maximum; a model that skips words falls below the minimum.
        max_leading_silence_s, max_trailing_silence_s, max_pause_s: longest silence allowed before,
            after and inside the speech.
        silence_db: a frame (one hop) is silent when its RMS is this far below the loudest frame's.
        max_clipped_fraction: share of samples at or beyond full scale (|x| >= 1) allowed.
        max_backstep, max_jump, max_start, end_slack: the attention rule
            (:class:`~trtgen.engine.alignment.AlignmentRule`, the same as ``trtgen eval``'s).
    """

    min_frames_per_symbol: float = 2.0
    max_frames_per_symbol: float = 9.5
    max_leading_silence_s: float = 1.0
    max_trailing_silence_s: float = 1.5
    max_pause_s: float = 1.5
    silence_db: float = -40.0
    max_clipped_fraction: float = 0.01
    max_backstep: int = AlignmentRule.max_backstep
    max_jump: int = AlignmentRule.max_jump
    max_start: int = AlignmentRule.max_start
    end_slack: int = AlignmentRule.end_slack

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UsageError(f"quality threshold {f.name}={value!r}: must be a number")
        if not 0 <= self.min_frames_per_symbol < self.max_frames_per_symbol:
            raise UsageError(f"quality: min_frames_per_symbol {self.min_frames_per_symbol} must be >= 0 and below max_frames_per_symbol {self.max_frames_per_symbol}")
        if self.silence_db >= 0:
            raise UsageError(f"quality: silence_db {self.silence_db} must be below 0 (dB under the loudest frame)")

    @property
    def alignment_rule(self) -> AlignmentRule:
        return AlignmentRule(self.max_backstep, self.max_jump, self.max_start, self.end_slack)

    @classmethod
    def from_card(cls, defaults: Mapping[str, Any]) -> QualityThresholds:
        """The card's ``defaults["quality"]`` over this class's defaults."""
        given = defaults.get("quality") or {}
        return cls.with_values(cls(), given, source="the model card's defaults.quality")

    @staticmethod
    def with_values(base: QualityThresholds, values: Mapping[str, Any], source: str = "--quality") -> QualityThresholds:
        names = {f.name for f in fields(QualityThresholds)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UsageError(f"{source}: unknown threshold(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        kinds = {f.name: int if f.type in ("int", int) else float for f in fields(QualityThresholds)}
        try:
            converted = {k: kinds[k](v) if not isinstance(v, bool) else v for k, v in values.items()}
        except (TypeError, ValueError):
            raise UsageError(f"{source}: thresholds must be numbers, got {dict(values)}") from None
        return dataclasses.replace(base, **converted)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_quality_overrides(text: str | None) -> dict[str, float]:
    """``KEY=VALUE,...`` (``trtgen generate --quality``) -> {key: number}; names checked later."""
    if not text:
        return {}
    values: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        try:
            if not sep or not key:
                raise ValueError
            values[key.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--quality: {part.strip()!r} is not KEY=NUMBER (e.g. max_pause_s=2)") from None
    return values


@dataclass(frozen=True)
class QualitySignals:
    """What the gate measured of one utterance (records carry them, so a reader can judge again)."""

    stopped: bool
    frames: int
    symbols: int
    frames_per_symbol: float
    attention_first: int
    attention_last: int
    attention_end: int
    attention_max_backstep: int
    attention_max_jump: int
    attention_mean_peak: float
    leading_silence_s: float
    trailing_silence_s: float
    longest_pause_s: float
    peak: float
    clipped_fraction: float
    non_finite: int

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class Quality:
    """The gate's verdict on one utterance.

    Attributes:
        ok: no gross failure found.
        reasons: the codes of what failed (:data:`REASONS`), in a fixed order; empty when ``ok``.
        signals: what was measured (:class:`QualitySignals` when judged here; the numbers by name when
            read back from a record, :meth:`from_json`).
    """

    ok: bool = True
    reasons: tuple[str, ...] = ()
    signals: QualitySignals | Mapping[str, Any] | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        signals = self.signals.to_json() if isinstance(self.signals, QualitySignals) else dict(self.signals or {})
        return {"ok": self.ok, "reasons": list(self.reasons), "signals": signals}

    @classmethod
    def from_json(cls, raw: Any) -> Quality:
        """A record's ``quality`` object; :class:`~trtgen.errors.UsageError` naming what is malformed."""
        if not isinstance(raw, dict):
            raise UsageError(f"'quality' must be an object, found {raw!r}")
        ok = raw.get("ok")
        if not isinstance(ok, bool):
            raise UsageError(f"'quality.ok' must be true or false, found {ok!r}")
        reasons = raw.get("reasons", [])
        if not isinstance(reasons, list) or not all(isinstance(r, str) and r for r in reasons):
            raise UsageError(f"'quality.reasons' must be a list of codes, found {reasons!r}")
        signals = raw.get("signals", {})
        if not isinstance(signals, dict):
            raise UsageError(f"'quality.signals' must be an object, found {signals!r}")
        return cls(ok, tuple(reasons), signals)


def assess(
    *,
    stopped: bool,
    frames: int,
    symbols: int,
    attention_path: np.ndarray,
    attention_peak: np.ndarray,
    eos_index: int,
    end_index: int,
    audio: np.ndarray,
    hop_length: int,
    sample_rate: int,
    thresholds: QualityThresholds,
) -> Quality:
    """Judge one utterance (see the module docstring); ``frames`` counts decoder frames with the stop
    frame, ``eos_index``/``end_index`` are the positions of ``</s>`` and of the last spoken symbol in
    the model's ids."""
    t = thresholds
    check = check_path(attention_path, attention_peak, eos_index, t.alignment_rule, end_index=end_index)
    vocoded = max(frames - 1, 0)
    rate = vocoded / max(symbols, 1)
    clean = np.asarray(audio, dtype=np.float32)
    magnitude = np.abs(clean)
    peak = float(magnitude.max()) if clean.size else 0.0
    non_finite = 0
    if not math.isfinite(peak):  # rare: only then a pass to count and zero the bad samples
        finite = np.isfinite(clean)
        non_finite = int(clean.size - np.count_nonzero(finite))
        clean = np.where(finite, clean, np.float32(0.0))
        magnitude = np.abs(clean)
        peak = float(magnitude.max())
    clipped = float(np.count_nonzero(magnitude >= 1.0) / clean.size) if peak >= 1.0 else 0.0
    leading, trailing, pause = _silences(clean, hop_length, t.silence_db)
    seconds = hop_length / sample_rate
    signals = QualitySignals(
        stopped=bool(stopped), frames=int(frames), symbols=int(symbols), frames_per_symbol=float(rate),
        attention_first=check.first_symbol, attention_last=check.last_symbol, attention_end=check.end_index,
        attention_max_backstep=check.max_backstep, attention_max_jump=check.max_jump, attention_mean_peak=check.mean_peak,
        leading_silence_s=leading * seconds, trailing_silence_s=trailing * seconds, longest_pause_s=pause * seconds,
        peak=peak, clipped_fraction=clipped, non_finite=non_finite,
    )
    failed = {
        "capped": not stopped,
        "too_fast": rate < t.min_frames_per_symbol,
        "too_slow": rate > t.max_frames_per_symbol,
        "not_monotonic": not check.monotonic,
        "jumps": not check.no_big_jumps,
        "late_start": not check.starts_at_text_start,
        "stops_early": not check.reaches_end,
        "leading_silence": signals.leading_silence_s > t.max_leading_silence_s,
        "trailing_silence": signals.trailing_silence_s > t.max_trailing_silence_s,
        "long_pause": signals.longest_pause_s > t.max_pause_s,
        "clipping": clipped > t.max_clipped_fraction,
        "non_finite": non_finite > 0,
    }
    reasons = tuple(code for code in REASONS if failed[code])
    return Quality(not reasons, reasons, signals)


def _silences(audio: np.ndarray, hop: int, silence_db: float) -> tuple[int, int, int]:
    """(leading, trailing, longest inner) runs of silent frames: frames of ``hop`` samples whose RMS is
    ``silence_db`` or more below the loudest frame's. All silent: everything is leading silence."""
    count = audio.size // hop
    if count == 0:
        return 0, 0, 0
    frames = audio[: count * hop].reshape(count, hop)
    energy = np.einsum("ij,ij->i", frames, frames)  # per-frame sum of squares, no temporary the size of the audio
    loudest = float(energy.max())
    if loudest <= 0.0:
        return count, 0, 0
    loud = np.flatnonzero(energy > loudest * 10.0 ** (silence_db / 10.0))
    leading, trailing = int(loud[0]), int(count - 1 - loud[-1])
    gaps = np.diff(loud) - 1
    return leading, trailing, int(gaps.max()) if gaps.size else 0


def calibrate(signals: list[Mapping[str, Any]], base: QualityThresholds = QualityThresholds()) -> QualityThresholds:
    """Thresholds for a model from its passing utterances' signals (``trtgen eval --calibrate-quality``):
    the rate range widened well beyond what the model does on held-out sentences (half the 0.5th
    percentile, 1.25 times the 99.5th), the silences at least twice the longest 99.5th percentile, never
    tighter than ``base`` for silences. Gross failures lie far outside; a tight range would fail ugly but
    usable audio, which helps ASR training as it is (docs/quality.md)."""
    if len(signals) < 20:
        raise UsageError(f"calibrating the quality gate needs at least 20 passing utterances, got {len(signals)}")

    def pick(name: str) -> np.ndarray:
        return np.asarray([float(s[name]) for s in signals], dtype=np.float64)

    rate = pick("frames_per_symbol")
    return dataclasses.replace(
        base,
        min_frames_per_symbol=round(0.5 * float(np.percentile(rate, 0.5)), 2),
        max_frames_per_symbol=round(1.25 * float(np.percentile(rate, 99.5)), 2),
        max_leading_silence_s=round(max(base.max_leading_silence_s, 2 * float(np.percentile(pick("leading_silence_s"), 99.5))), 2),
        max_trailing_silence_s=round(max(base.max_trailing_silence_s, 2 * float(np.percentile(pick("trailing_silence_s"), 99.5))), 2),
        max_pause_s=round(max(base.max_pause_s, 2 * float(np.percentile(pick("longest_pause_s"), 99.5))), 2),
    )
