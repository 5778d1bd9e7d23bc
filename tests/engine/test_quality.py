"""The quality gate: each gross failure it looks for, from synthetic inputs with known answers, and its
verdict on real decodes (the shipped voice passes; a model that never stops fails, capped)."""

from __future__ import annotations

import numpy as np
import pytest

from trtgen.engine.quality import REASONS, QualityThresholds, assess, parse_quality_overrides
from trtgen.errors import UsageError

HOP, RATE = 200, 16000


def _speech(frames: int, pauses: tuple[tuple[int, int], ...] = ()) -> np.ndarray:
    """``frames`` hops of a tone, with silent frame ranges ``pauses``."""
    t = np.arange(frames * HOP) / RATE
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    for start, end in pauses:
        audio[start * HOP : end * HOP] = 0.0
    return audio


def _assess(**overrides):
    """A clean utterance of 40 symbols in 201 frames (5 per symbol), a diagonal attention path; overrides
    change one thing at a time."""
    steps = 67
    values = dict(
        stopped=True, frames=201, symbols=40, attention_path=np.linspace(0, 40, steps).astype(np.int64),
        attention_peak=np.full(steps, 0.7, np.float32), eos_index=41, end_index=40, audio=_speech(200),
        hop_length=HOP, sample_rate=RATE, thresholds=QualityThresholds(),
    )
    values.update(overrides)
    return assess(**values)


@pytest.mark.parametrize(
    "overrides, reason",
    [
        (dict(stopped=False), "capped"),
        (dict(frames=61), "too_fast"),
        (dict(frames=401), "too_slow"),
        (dict(attention_path=np.r_[np.arange(0, 30), np.arange(20, 41)]), "not_monotonic"),
        (dict(attention_path=np.r_[np.arange(0, 10), np.arange(20, 41)]), "jumps"),
        (dict(attention_path=np.arange(5, 41)), "late_start"),
        (dict(attention_path=np.arange(0, 30)), "stops_early"),
        (dict(audio=_speech(200, ((0, 100),))), "leading_silence"),
        (dict(audio=_speech(200, ((60, 200),))), "trailing_silence"),
        (dict(audio=_speech(300, ((50, 200),))), "long_pause"),
        (dict(audio=np.r_[_speech(200), np.full(1000, 1.5, np.float32)]), "clipping"),
        (dict(audio=np.r_[_speech(200), np.float32(np.nan)]), "non_finite"),
    ],
)
def test_each_gross_failure_is_named(overrides, reason) -> None:
    clean = _assess()
    assert clean.ok and clean.reasons == ()
    failed = _assess(**overrides)
    assert not failed.ok and reason in failed.reasons, failed.reasons
    assert set(failed.reasons) <= set(REASONS)


def test_signals_measure_what_they_say() -> None:
    signals = _assess(audio=_speech(400, ((0, 40), (100, 180), (360, 400)))).signals
    assert signals.leading_silence_s == pytest.approx(40 * HOP / RATE)
    assert signals.longest_pause_s == pytest.approx(80 * HOP / RATE)
    assert signals.trailing_silence_s == pytest.approx(40 * HOP / RATE)
    assert signals.frames_per_symbol == pytest.approx(200 / 40)
    assert signals.attention_first == 0 and signals.attention_last == 40


def test_thresholds_come_from_the_card_and_overrides_and_are_checked() -> None:
    card = QualityThresholds.from_card({"quality": {"max_pause_s": 3}})
    assert card.max_pause_s == 3.0 and card.max_leading_silence_s == QualityThresholds().max_leading_silence_s
    assert QualityThresholds.with_values(card, parse_quality_overrides("max_pause_s=2,max_jump=6")).max_jump == 6
    for bad in ("max_pause_s", "bogus=1", "max_pause_s=x"):
        with pytest.raises(UsageError):
            QualityThresholds.with_values(card, parse_quality_overrides(bad))
    with pytest.raises(UsageError, match="min_frames_per_symbol"):
        QualityThresholds(min_frames_per_symbol=5, max_frames_per_symbol=4)


def test_the_shipped_voice_passes_and_a_failing_threshold_fails_it() -> None:
    from trtgen import Voice, VoiceSpec, shipped_styles

    voice = Voice.load(vocoder="openseq2seq")
    speech = voice.synthesize("The harbour glowed like amber at dawn.", shipped_styles()["us-m3"], dropout=0.5, seed=1)
    assert speech.quality.ok and speech.attempt == 1, speech.quality
    strict = Voice.load(VoiceSpec(synthesis=voice.options, quality=(("min_frames_per_symbol", 0.5), ("max_frames_per_symbol", 1.0))))
    failed = strict.synthesize("The harbour glowed like amber at dawn.", shipped_styles()["us-m3"], dropout=0.5, seed=1)
    assert failed.quality.reasons == ("too_slow",) and np.array_equal(failed.audio, speech.audio)
