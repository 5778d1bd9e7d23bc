"""``trtgen eval``: the metrics on hand-made inputs, and a smoke run of the whole job on a random model."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from trtgen.engine.config import AudioConfig
from trtgen.engine.text import last_spoken_index
from trtgen.engine.alignment import AlignmentRule, check_alignment
from trtgen.engine.voice import VoiceSpec
from trtgen.evaluation.metrics import (
    StyleSpace,
    VoiceProfile,
    cepstral_distances,
    dtw_path,
    mcd_dtw,
    mcd_dtw_path,
    mel_cepstrum,
    pearson_r,
    speech_features,
    speech_frames,
    yin_f0,
)

SAMPLE_RATE = 16000
AUDIO = AudioConfig()


def _speech_like(seconds: float, f0: float, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a slow formant-like envelope, so it has a real spectrum and an F0."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    y = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 12) if k * f0 < 7500)
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 2.0 * t)
    return (0.3 * y * envelope).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# MCD-DTW


def test_dtw_path_is_monotonic_and_spans_both_sequences() -> None:
    cost = np.random.default_rng(0).uniform(size=(7, 12))
    rows, cols = dtw_path(cost)
    assert (rows[0], cols[0]) == (0, 0) and (rows[-1], cols[-1]) == (6, 11)
    steps = np.stack([np.diff(rows), np.diff(cols)], axis=1)
    assert {tuple(s) for s in steps} <= {(1, 0), (0, 1), (1, 1)}


def test_dtw_finds_the_warp_of_a_time_stretched_sequence() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(40, 24))
    b = np.repeat(a, 2, axis=0)  # every frame twice: a perfect warp exists
    assert mcd_dtw(a, b) == pytest.approx(0.0, abs=1e-5)


def test_mcd_is_zero_for_identical_signals_and_grows_with_distortion() -> None:
    y = _speech_like(1.5, 140.0)
    reference = speech_features(y, AUDIO)
    assert mcd_dtw(reference.cepstrum, speech_features(y.copy(), AUDIO).cepstrum) == pytest.approx(0.0, abs=1e-5)
    rng = np.random.default_rng(2)
    values = []
    for noise in (0.003, 0.03, 0.3):
        noisy = y + noise * rng.normal(size=y.size).astype(np.float32)
        values.append(mcd_dtw(reference.cepstrum, speech_features(noisy, AUDIO).cepstrum))
    assert 0.0 < values[0] < values[1] < values[2]


def test_pauses_are_left_out_of_mcd_and_mean_log_mel() -> None:
    # A long pause inserted in the middle must not be matched to nothing at zero cost (diluting the
    # MCD) nor pull the mean log-mel down: both use speech frames only.
    y = _speech_like(1.0, 140.0)
    ramp = np.sin(np.linspace(0, np.pi / 2, 320, dtype=np.float32)) ** 2  # 20 ms fades, as speech pauses have
    head, tail = y[: y.size // 2].copy(), y[y.size // 2 :].copy()
    head[-ramp.size :] *= ramp[::-1]
    tail[: ramp.size] *= ramp
    y = np.concatenate([head, tail])
    paused = np.concatenate([head, np.zeros(SAMPLE_RATE, np.float32), tail])
    plain, with_pause = speech_features(y, AUDIO), speech_features(paused, AUDIO)
    assert with_pause.speech.sum() < 0.6 * with_pause.speech.size
    assert mcd_dtw(plain.cepstrum, with_pause.cepstrum) < 1.0  # only the frames at the two cuts differ
    masked = np.sqrt(np.mean((plain.mean_log_mel - with_pause.mean_log_mel) ** 2))
    unmasked = np.sqrt(np.mean((plain.log_mel.mean(axis=0) - with_pause.log_mel.mean(axis=0)) ** 2))
    assert masked < 0.15 < 1.0 < unmasked
    assert not speech_frames(np.full((5, 80), np.log(0.01)))[:0].any()


def test_mcd_formula_on_one_frame() -> None:
    # Two frames whose log-mel differ by a pure cosine of cepstral index 3 with amplitude 2·δ:
    # c_3 differs by δ, every other coefficient by 0, so MCD = (10 / ln 10) · sqrt(2) · δ.
    bands, delta = 80, 0.25
    k = np.arange(bands)
    a = np.zeros((1, bands))
    b = 2 * delta * np.cos(np.pi * 3 * (k + 0.5) / bands)[None, :]
    ca, cb = mel_cepstrum(a), mel_cepstrum(b)
    np.testing.assert_allclose(cb[0, 2], delta, atol=1e-12)
    assert mcd_dtw(ca, cb) == pytest.approx(10 / math.log(10) * math.sqrt(2) * delta, rel=1e-9)


def test_a_long_constant_output_cannot_buy_a_lower_mcd_per_reference_frame() -> None:
    # A random model that never stops emits one nearly constant spectrum for hundreds of frames. The
    # path mean lets DTW park the surplus frames on the reference frame they match best, so it falls as
    # the output grows; per reference frame it is the constant's mean distance to the reference frames.
    rng = np.random.default_rng(3)
    reference = mel_cepstrum(rng.normal(0.0, 1.0, (120, 80)).cumsum(axis=0) * 0.05)
    constant = reference[int(np.argmin(cepstral_distances(reference.mean(axis=0, keepdims=True), reference)))]
    distances = cepstral_distances(constant[None, :], reference)[0]
    path_means = []
    for length in (120, 480, 1200):
        candidate = np.repeat(constant[None, :], length, axis=0)
        assert mcd_dtw(candidate, reference) == pytest.approx(distances.mean(), rel=1e-9)
        path_means.append(mcd_dtw_path(candidate, reference))
    assert path_means[0] > path_means[1] > path_means[2]
    assert path_means[2] < 0.5 * distances.mean()
    # A faithful candidate of another length keeps both low.
    stretched = np.repeat(reference, 2, axis=0)
    assert mcd_dtw(stretched, reference) == pytest.approx(0.0, abs=1e-6)


def test_content_margin_is_positive_only_when_the_own_sentence_is_nearest() -> None:
    from trtgen.evaluation.report import content_margin

    rng = np.random.default_rng(5)
    sentences = [mel_cepstrum(rng.normal(0.0, 1.0, (90, 80)).cumsum(axis=0) * 0.05) for _ in range(4)]
    own, distractors = sentences[0], sentences[1:]
    # Own words, slower and a little off: nearer its own sentence than any other one.
    candidate = np.repeat(own, 2, axis=0) + rng.normal(0.0, 0.02, (180, own.shape[1]))
    margin = content_margin(candidate, mcd_dtw(candidate, own), distractors)
    assert margin is not None and margin > 0
    nearest_other = min(mcd_dtw(candidate, d) for d in distractors)
    assert margin == pytest.approx(nearest_other - mcd_dtw(candidate, own), rel=1e-12)
    # Another sentence's words: the check fails.
    wrong = distractors[1] + rng.normal(0.0, 0.02, distractors[1].shape)
    assert content_margin(wrong, mcd_dtw(wrong, own), distractors) < 0
    assert content_margin(candidate, 1.0, []) is None


def test_content_distractors_are_other_sentences_of_the_voice_but_not_the_style_reference() -> None:
    from trtgen.evaluation.report import EvalItem
    from trtgen.evaluation.run import _content_distractors

    items = [
        EvalItem(index=6 * vi + k, id=f"{v}-s{k}", voice=v, sentence_id=f"s{k}", text="x",
              reference_id=f"{v}-s{(k + 1) % 6}", reference_wav=Path("r.wav"), target_wav=Path("t.wav"), espeak_duration_s=1.0)
        for vi, v in enumerate(("a", "b")) for k in range(6)
    ]
    chosen = _content_distractors(items, 4)
    assert chosen["a-s0"] == ["a-s2", "a-s3", "a-s4", "a-s5"]
    assert chosen["b-s5"] == ["b-s1", "b-s2", "b-s3", "b-s4"]
    for item in items:
        assert item.id not in chosen[item.id] and item.reference_id not in chosen[item.id]
    assert _content_distractors(items, 9)["a-s0"] == ["a-s2", "a-s3", "a-s4", "a-s5"]  # at most the other 4


def test_mel_cepstrum_ignores_the_level() -> None:
    frames = np.random.default_rng(3).normal(size=(5, 80))
    np.testing.assert_allclose(mel_cepstrum(frames), mel_cepstrum(frames + 3.0), atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# F0


@pytest.mark.parametrize("f0", [60.0, 95.0, 140.0, 210.0, 330.0, 450.0])
def test_yin_tracks_sinusoids_within_2_percent(f0: float) -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    track = yin_f0(0.5 * np.sin(2 * np.pi * f0 * t), SAMPLE_RATE)
    voiced = track[np.isfinite(track)]
    assert voiced.size >= 0.9 * track.size
    assert np.all(np.abs(voiced / f0 - 1.0) < 0.02)


@pytest.mark.parametrize("f0", [70.0, 120.0, 180.0, 260.0])
def test_yin_tracks_harmonic_signals_within_2_percent(f0: float) -> None:
    track = yin_f0(_speech_like(1.0, f0, seed=int(f0)), SAMPLE_RATE)
    voiced = track[np.isfinite(track)]
    assert voiced.size >= 0.9 * track.size
    assert np.all(np.abs(voiced / f0 - 1.0) < 0.02)


def test_yin_finds_the_fundamental_when_it_is_missing() -> None:
    # Harmonics 2..6 of 100 Hz, no energy at 100 Hz itself: the period is still 10 ms.
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    y = sum(np.sin(2 * np.pi * k * 100.0 * t) for k in range(2, 7))
    voiced = (track := yin_f0(y, SAMPLE_RATE))[np.isfinite(track)]
    assert np.median(voiced) == pytest.approx(100.0, rel=0.02)


def test_yin_marks_noise_and_silence_unvoiced() -> None:
    noise = np.random.default_rng(4).normal(size=SAMPLE_RATE)
    assert np.isfinite(yin_f0(noise, SAMPLE_RATE)).mean() < 0.05
    assert not np.isfinite(yin_f0(np.zeros(SAMPLE_RATE), SAMPLE_RATE)).any()
    # A tone followed by near-silence: only the tone is voiced.
    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    y = np.concatenate([np.sin(2 * np.pi * 150 * t), 1e-5 * np.sin(2 * np.pi * 150 * t)])
    track = yin_f0(y, SAMPLE_RATE)
    assert np.isfinite(track[: len(track) // 2 - 4]).all() and not np.isfinite(track[len(track) // 2 + 4 :]).any()


# ---------------------------------------------------------------------------------------------------
# Alignment


def _soft(path: list[int], text_len: int, sharpness: float = 0.9) -> np.ndarray:
    """An attention matrix whose argmax is ``path``, with the rest spread over the other symbols."""
    a = np.full((len(path), text_len), (1.0 - sharpness) / (text_len - 1))
    a[np.arange(len(path)), path] = sharpness
    return a


def test_diagonal_alignment_passes() -> None:
    eos, text_len = 20, 24
    path = np.repeat(np.arange(eos + 1), 2).tolist()
    check = check_alignment(_soft(path, text_len), eos)
    assert check.ok and check.monotonic and check.reaches_end and check.max_jump <= 1
    assert check.visited_fraction == 1.0 and check.mean_peak == pytest.approx(0.9)


def test_reversed_alignment_fails() -> None:
    eos = 20
    path = np.repeat(np.arange(eos + 1), 2)[::-1].tolist()
    check = check_alignment(_soft(path, 24), eos)
    assert not check.ok and not check.monotonic and not check.starts_at_text_start


def test_partial_coverage_fails() -> None:
    eos = 20
    path = np.repeat(np.arange(12), 3).tolist()  # stops attending half-way through the text
    check = check_alignment(_soft(path, 24), eos)
    assert check.monotonic and not check.reaches_end and not check.ok


def test_jitter_of_one_symbol_is_allowed_but_not_two() -> None:
    eos = 10
    base = list(range(eos + 1))
    jitter = base[:5] + [3] + base[5:]  # one step back by one symbol below the furthest (4)
    assert check_alignment(_soft(jitter, 16), eos).ok
    back_two = base[:5] + [2] + base[5:]
    assert not check_alignment(_soft(back_two, 16), eos).monotonic


def test_big_jumps_fail_and_the_limit_is_configurable() -> None:
    eos = 20
    path = [0, 1, 2, 3, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    check = check_alignment(_soft(path, 24), eos)
    assert check.max_jump == 7 and not check.no_big_jumps and not check.ok
    assert check_alignment(_soft(path, 24), eos, AlignmentRule(max_jump=7)).ok


def test_attention_on_padding_counts_as_end_of_text() -> None:
    eos, text_len = 10, 16
    path = list(range(eos + 1)) + [13, 14, 15]  # the tail drifts into <p> after </s>
    check = check_alignment(_soft(path, text_len), eos)
    assert check.ok and check.last_symbol == eos


def test_the_path_must_reach_the_last_spoken_symbol() -> None:
    # Trailing punctuation and </s> are silent: attention that ends on the last letter covers the text.
    from trtgen.engine.config import TextConfig
    from trtgen.engine.text import TextEncoder

    ids = TextEncoder().encode('Is it "later"?')  # <s> i s _ i t _ " l a t e r " ? </s> <p>...
    eos = int(np.flatnonzero(ids == TextConfig().eos_id)[0])
    end = last_spoken_index(ids, TextConfig())
    assert (eos, end) == (15, 12)  # the "r"
    assert check_alignment(_soft(list(range(end + 1)), len(ids)), eos, end_index=end).ok
    assert not check_alignment(_soft(list(range(end)), len(ids)), eos, end_index=end).reaches_end
    assert check_alignment(_soft(list(range(end)), len(ids)), eos, AlignmentRule(end_slack=1), end_index=end).ok
    assert last_spoken_index(TextEncoder().encode("?!"), TextConfig()) == 2  # nothing spoken: up to </s> - 1


def test_alignment_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        check_alignment(np.ones((4, 5)), 7)


# ---------------------------------------------------------------------------------------------------
# Duration correlation


def test_pearson_r() -> None:
    x = np.arange(10.0)
    assert pearson_r(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson_r(x, -x) == pytest.approx(-1.0)
    noisy = 1.3 * x + np.random.default_rng(5).normal(0, 0.5, size=10)
    assert pearson_r(x, noisy) == pytest.approx(float(np.corrcoef(x, noisy)[0, 1]))
    assert math.isnan(pearson_r([1.0], [2.0]))
    assert math.isnan(pearson_r([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


# ---------------------------------------------------------------------------------------------------
# Style check


def _style_space(profiles: dict[str, np.ndarray]) -> StyleSpace:
    return StyleSpace(
        {v: VoiceProfile(v, 10, m.tolist(), 100.0) for v, m in profiles.items()}, mel_spread=0.1, f0_spread_semitones=1.0
    )


def test_relative_style_check_sees_through_a_shared_offset_but_not_an_ignored_style() -> None:
    rng = np.random.default_rng(0)
    profiles = {v: rng.normal(0.0, 1.0, 80) for v in ("a", "b", "c", "d")}
    space = _style_space(profiles)
    centre = np.mean(list(profiles.values()), axis=0)
    # What every output shares (over-smoothing, the vocoder): here a shift towards voice "a".
    blur = 2.0 * (profiles["a"] - centre) + 0.5
    # A model that follows its style input, half-way, under a big shared offset and some noise.
    following = {
        f"{v}{i}": blur + centre + 0.5 * (m - centre) + rng.normal(0.0, 0.1, 80)
        for v, m in profiles.items() for i in range(20)
    }
    absolute = {key: min(profiles, key=lambda v: np.sum((x - profiles[v]) ** 2)) for key, x in following.items()}
    assert len(set(absolute.values())) == 1  # by absolute distance every output lands on one voice
    relative = space.nearest_relative(following)
    assert all(relative[key] == key[0] for key in following)
    # A model that ignores its style input: same spectrum for every voice, plus noise -> chance level.
    ignoring = {f"{v}{i}": blur + rng.normal(0.0, 0.5, 80) for v in profiles for i in range(50)}
    relative = space.nearest_relative(ignoring)
    correct = np.mean([relative[key] == key[0] for key in ignoring])
    assert correct < 0.4


# ---------------------------------------------------------------------------------------------------
# The job, end to end, on a random model


@pytest.fixture(scope="module")
def eval_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 held-out + 2 training sentences in 2 espeak-ng voices."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed: `sudo apt-get install espeak-ng` (a Debian package, not pip)")
    from trtgen_export.train.corpus import DEFAULT_VOICES, build_corpus
    from trtgen_export.train.sentences import HELDOUT, TRAIN, Sentence

    sentences = [
        Sentence("s0", "The cat sat on the mat.", HELDOUT),
        Sentence("s1", "Rain fell all night.", HELDOUT),
        Sentence("s2", "She bought seven green apples at the market.", TRAIN),
        Sentence("s3", "Where did you put the keys?", TRAIN),
    ]
    root = tmp_path_factory.mktemp("eval") / "corpus"
    build_corpus(root, sentences, (DEFAULT_VOICES[0], DEFAULT_VOICES[1]), workers=1)
    return root


@pytest.fixture(scope="module")
def random_small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tensorflow", reason="exporting a test model needs TensorFlow: pip install 'trtgen[export]'")
    from trtgen_export.onnx_export import ExportOptions, export_model
    from trtgen_export.variables import random_weights
    from trtgen.engine.config import model_preset

    config = model_preset("small")
    directory = tmp_path_factory.mktemp("eval") / "random-small"
    export_model(random_weights(config, 0), config, directory, options=ExportOptions(name="random-small"))
    return directory


def test_eval_cli_on_a_random_model_reports_and_fails(eval_corpus: Path, random_small_model: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from trtgen.cli import app

    out = tmp_path / "eval"
    args = ["eval", "--model", str(random_small_model), "--corpus", str(eval_corpus), "--out", str(out),
            "--sentences", "2", "--plots", "2", "--threads", "1", "--compare-random"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output  # a random model must fail the thresholds
    assert "FAIL" in result.output

    report = json.loads((out / "eval.json").read_text())
    assert report["format"] == "trtgen-eval" and report["passed"] is False
    assert report["settings"]["voices"] == ["us-m3", "gb-f2"]
    assert report["settings"]["sentence_ids"] == ["s0", "s1"]
    assert set(report["models"]) == {"trained", "random"}
    trained = report["models"]["trained"]
    assert set(trained["voices"]) == {"us-m3", "gb-f2"}
    assert trained["overall"]["num_utterances"] == 4
    rows = trained["utterances"]
    assert [r["id"] for r in rows] == ["us-m3-s0", "us-m3-s1", "gb-f2-s0", "gb-f2-s1"]
    for row in rows:
        # The style reference is another held-out sentence of the same voice, never the target.
        assert row["reference_id"] != row["id"] and row["reference_id"].split("-s")[0] == row["voice"]
        assert row["stopped"] is False  # random weights with a silenced stop token run to the cap
        assert row["num_frames"] == 10 * row["text_len"]
        assert set(row["alignment"]) >= {"monotonic", "reaches_end", "max_jump", "eos_index"}
        assert row["mcd_dtw_db"] > 0 and row["mcd_dtw_path_db"] > 0
        # Two sentences per voice: the only other one is the style reference, never a content distractor.
        assert row["content_margin_db"] is None and row["content_correct"] is False
        assert set(row["style_distances"]["combined"]) == {"us-m3", "gb-f2"}
    # Capped outputs have the cap's length by construction: they are left out of the duration statistics.
    assert trained["overall"]["num_duration_pairs"] == 0 and trained["overall"]["duration_r"] is None
    checks = {(c["name"], c["scope"]): c for c in report["checks"]}
    assert checks[("stopped", "all")]["passed"] is False
    assert checks[("sentences", "us-m3")]["value"] == 2 and checks[("sentences", "us-m3")]["passed"] is False
    # Same config and seed: the "random" model is the one evaluated, so it closes none of the gap.
    assert checks[("random_gap_closed", "all")]["value"] == pytest.approx(0.0, abs=1e-6)
    assert checks[("random_gap_closed", "all")]["passed"] is False
    assert set(report["style_ceiling"]) == set(report["style_ceiling_absolute"]) == {"us-m3", "gb-f2", "all"}
    assert all(row["style_voice_relative"] in {"us-m3", "gb-f2"} and "mean_log_mel" not in row for row in rows)
    assert 0.0 <= trained["overall"]["voiced_fraction"] <= 1.0
    # Two held-out sentences per voice leave no content distractors: the ceiling is undefined, not 0.
    assert report["content_ceiling"] == {"us-m3": None, "gb-f2": None, "all": None}
    voiced = report["voiced_fraction_anchors"]
    assert set(voiced) == {"us-m3", "gb-f2", "all"}
    # espeak-ng's voiced speech keeps its harmonics through Griffin-Lim on its own magnitudes.
    assert 0.3 < voiced["all"]["espeak"] <= 1.0 and 0.3 < voiced["all"]["espeak_vocoded"] <= 1.0
    anchors = report["mcd_anchors"]["all"]
    assert 0 < anchors["vocoder_floor"] < anchors["same_voice_other_sentence"]
    assert all(r["mcd_dtw_mel_db"] > 0 for r in rows)
    profiles = report["style_space"]["profiles"]
    assert profiles["gb-f2"]["f0_hz"] > profiles["us-m3"]["f0_hz"]  # espeak-ng's female voice is higher
    if report["plots_skipped"] is None:
        names = sorted(Path(p).name for p in report["plots"])
        assert "trained-us-m3-s0-alignment.png" in names and "trained-gb-f2-s0-spectrogram.png" in names
        assert all(Path(p).stat().st_size > 1000 for p in report["plots"])


def test_eval_refuses_an_unfinished_corpus(random_small_model: Path, tmp_path: Path) -> None:
    from trtgen.evaluation.metrics import EvalError
    from trtgen.evaluation.report import EvalOptions
    from trtgen.evaluation.run import run_eval

    (tmp_path / "corpus").mkdir()
    with pytest.raises(EvalError, match="not finished"):
        run_eval(EvalOptions(VoiceSpec(random_small_model), tmp_path / "corpus", tmp_path / "out"))


def test_eval_on_a_validation_slice_with_another_stop_threshold(eval_corpus: Path, random_small_model: Path, tmp_path: Path) -> None:
    """``first_sentence`` skips held-out sentences (a validation slice disjoint from the test slice) and
    ``stop_threshold`` reaches the decoder: the random model's stop logit is -20, so a threshold below
    sigmoid(-20) ~ 2e-9 stops every utterance on its first frame, where 0.5 never stops it."""
    from trtgen.engine.artifact import load_model
    from trtgen.evaluation.metrics import EvalError
    from trtgen.evaluation.report import EvalOptions
    from trtgen.evaluation.run import run_eval

    options = EvalOptions(VoiceSpec(random_small_model, stop_threshold=1e-12, threads=1), eval_corpus, tmp_path / "eval",
                          sentences=5, first_sentence=1, plots=0)
    report = run_eval(options).to_json()
    assert report["settings"]["sentence_ids"] == ["s1"]  # only one held-out sentence is left after skipping one
    assert report["settings"]["stop_threshold"] == 1e-12 and report["settings"]["stop_threshold_overridden"] is True
    rows = report["models"]["trained"]["utterances"]
    assert [r["id"] for r in rows] == ["us-m3-s1", "gb-f2-s1"]
    assert [r["reference_id"] for r in rows] == ["us-m3-s0", "gb-f2-s0"]  # the next held-out sentence, cyclically
    assert all(r["stopped"] and r["steps"] == 1 for r in rows)
    # The override changes the model's identity in outputs, never the files on disk.
    model = load_model(random_small_model)
    assert model.with_stop_threshold(1e-12).digest != model.digest
    assert load_model(random_small_model).card.model.stop_threshold == 0.5
    with pytest.raises(EvalError, match="none left"):
        run_eval(dataclasses.replace(options, first_sentence=2))
