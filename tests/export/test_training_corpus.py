"""The espeak-ng training corpus: sentence generator, corpus build, resume and refusal, demo clips."""

from __future__ import annotations

import json
import re
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from trtgen_export.train.sentences import (
    ALLOWED_CHARACTERS,
    DEMO_SENTENCE,
    HELDOUT,
    TRAIN,
    Sentence,
    SentenceSettings,
    generate_sentences,
    generate_texts,
    number_words,
    word_count,
)
from trtgen.engine.config import OPENSEQ2SEQ_SYMBOLS
from trtgen.engine.text import TextEncoder

HAVE_ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(
    not HAVE_ESPEAK, reason="espeak-ng is not installed: `sudo apt-get install espeak-ng` (a Debian package, not pip)"
)


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


@pytest.fixture(scope="module")
def default_sentences() -> list[Sentence]:
    return generate_sentences()


# ---------------------------------------------------------------------------------------------------
# Sentences


def test_generator_is_deterministic_and_seeded() -> None:
    settings = SentenceSettings(num_sentences=400)
    assert generate_sentences(settings) == generate_sentences(settings)
    other = generate_sentences(SentenceSettings(num_sentences=400, seed=settings.seed + 1))
    assert len({s.text for s in other} & {s.text for s in generate_sentences(settings)}) < 40
    # A smaller corpus is a prefix of a larger one, so ids keep meaning the same text.
    assert generate_texts(SentenceSettings(num_sentences=100)) == generate_texts(settings)[:100]


def test_default_corpus_is_unique_and_split_disjointly(default_sentences: list[Sentence]) -> None:
    assert len(default_sentences) == 3000
    assert len({s.id for s in default_sentences}) == 3000
    keys = [_key(s.text) for s in default_sentences]
    assert len(set(keys)) == len(keys), "sentences differing only in case or punctuation count as duplicates"
    train = {_key(s.text) for s in default_sentences if s.split == TRAIN}
    heldout = {_key(s.text) for s in default_sentences if s.split == HELDOUT}
    assert len(heldout) >= 60
    assert len(heldout) == SentenceSettings().num_heldout() == 150
    assert not train & heldout
    assert _key(DEMO_SENTENCE) not in train | heldout
    # The split depends on the texts, not on their order.
    from trtgen_export.train.sentences import split_sentences

    texts = [s.text for s in default_sentences]
    reordered = split_sentences(texts[::-1], 150, SentenceSettings().seed)
    heldout_texts = {s.text for s in default_sentences if s.split == HELDOUT}
    assert {s.text for s in reordered if s.split == HELDOUT} == heldout_texts


def test_only_symbol_table_characters(default_sentences: list[Sentence]) -> None:
    table = set(OPENSEQ2SEQ_SYMBOLS)
    assert ALLOWED_CHARACTERS <= table
    used = set("".join(s.text for s in default_sentences))
    assert used <= ALLOWED_CHARACTERS, sorted(used - ALLOWED_CHARACTERS)
    assert not used & set("0123456789"), "numbers must be written as words"
    encoder = TextEncoder()
    for s in default_sentences[:300]:
        assert encoder.encode_with_info(s.text).substitutions == ()


def test_length_and_variety(default_sentences: list[Sentence]) -> None:
    texts = [s.text for s in default_sentences]
    counts = [word_count(t) for t in texts]
    assert min(counts) >= 3 and max(counts) <= 30
    assert 15.0 <= statistics.mean(counts) <= 20.0
    assert sum(c <= 7 for c in counts) / len(counts) >= 0.1, "the model must also see short sentences"
    assert sum(c >= 25 for c in counts) / len(counts) >= 0.03
    share = lambda predicate: sum(map(predicate, texts)) / len(texts)  # noqa: E731
    assert share(lambda t: t.endswith("?")) >= 0.08
    assert share(lambda t: t.endswith("!")) >= 0.04
    assert share(lambda t: '"' in t) >= 0.05
    assert share(lambda t: "'" in t) >= 0.1
    assert share(lambda t: "," in t) >= 0.2
    assert all(t[0].isupper() or t[0] == '"' for t in texts)
    vocabulary = {w for t in texts for w in re.findall(r"[a-z']+", t.lower())}
    assert len(vocabulary) >= 800


def test_number_words() -> None:
    assert number_words(0) == "zero"
    assert number_words(13) == "thirteen"
    assert number_words(40) == "forty"
    assert number_words(42) == "forty two"
    assert number_words(312) == "three hundred and twelve"
    assert number_words(2005) == "two thousand and five"
    with pytest.raises(ValueError):
        number_words(-1)


def test_too_few_sentences_refused() -> None:
    with pytest.raises(ValueError):
        generate_sentences(SentenceSettings(num_sentences=1))


# ---------------------------------------------------------------------------------------------------
# Corpus (needs espeak-ng)


def test_missing_espeak_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trtgen_export.train.corpus import EspeakNotFoundError, build_corpus

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EspeakNotFoundError, match="apt-get install espeak-ng"):
        build_corpus(tmp_path / "corpus", [Sentence("s0", "Hello.", TRAIN)])


SENTENCES = [
    Sentence("s00000", "The old miller carried three heavy sacks across the bridge.", TRAIN),
    Sentence("s00001", "Where is Anna?", TRAIN),
    Sentence("s00002", '"Don\'t wait for me," said Tom, "it\'s going to rain."', HELDOUT),
]


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if not HAVE_ESPEAK:
        pytest.skip("espeak-ng is not installed: `sudo apt-get install espeak-ng`")
    from trtgen_export.train.corpus import DEFAULT_VOICES, build_corpus

    voices = (DEFAULT_VOICES[1], DEFAULT_VOICES[2])  # gb-f2 at 170 wpm, us-m7 at 130 wpm
    root = tmp_path_factory.mktemp("corpus") / "voice-corpus"
    return build_corpus(root, SENTENCES, voices, workers=2), voices


@needs_espeak
def test_corpus_wavs_and_metadata(small_corpus) -> None:  # type: ignore[no-untyped-def]
    from trtgen_export.train.corpus import load_corpus

    manifest, voices = small_corpus
    assert len(manifest.utterances) == len(SENTENCES) * len(voices)
    for u in manifest.utterances:
        path = manifest.root / "wavs" / u.voice / f"{u.sentence_id}.wav"
        assert manifest.wav_path(u) == path
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        y, _ = sf.read(path, dtype="float32")
        assert y.shape[0] == u.num_samples
        assert u.duration_s == pytest.approx(u.num_samples / 16000, abs=1e-4)
        assert np.max(np.abs(y)) == pytest.approx(0.9, abs=2e-3)
        # Trimmed: speech starts and ends within 50 ms of the file's edges.
        loud = np.flatnonzero(np.abs(y) > 0.01)
        assert loud[0] < 800 and loud[-1] > y.shape[0] - 800
    rows = [json.loads(line) for line in (manifest.root / "metadata.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {TRAIN, HELDOUT}
    assert {"id", "voice", "text", "split", "num_samples", "duration_s"} <= set(rows[0])
    assert load_corpus(manifest.root).utterances == manifest.utterances


@needs_espeak
def test_slower_voice_gives_longer_audio(small_corpus) -> None:  # type: ignore[no-untyped-def]
    manifest, voices = small_corpus
    fast, slow = (sum(u.duration_s for u in manifest.utterances if u.voice == v.name) for v in voices)
    assert slow > 1.15 * fast, (fast, slow)
    rates = {row.voice: row.frames_per_char for row in manifest.summary()}
    assert rates[voices[1].name] > rates[voices[0].name] > 3.0


@needs_espeak
def test_feature_cache_matches_wavs(small_corpus) -> None:  # type: ignore[no-untyped-def]
    from trtgen.engine.audio import training_features
    from trtgen.engine.config import AudioConfig

    manifest, voices = small_corpus
    cfg = AudioConfig()
    for voice in voices:
        log_mel, magnitude = manifest.open_features(voice.name)
        frames = [u for u in manifest.utterances if u.voice == voice.name]
        assert log_mel.dtype == np.float16 and log_mel.shape == (sum(u.num_frames for u in frames), 80)
        assert magnitude.shape == (log_mel.shape[0], 401)
    for u in manifest.utterances:
        mel, mag = manifest.features(u)
        assert u.num_frames == 1 + u.num_samples // 200
        assert mel.shape == (u.num_frames, 80) and mag.shape == (u.num_frames, 401)
        y, _ = sf.read(manifest.wav_path(u), dtype="int16")
        ref_mel, ref_mag = training_features(y.astype(np.float32) / 32768.0, cfg)
        np.testing.assert_allclose(mel, ref_mel, atol=1e-2, rtol=2e-3)
        np.testing.assert_allclose(mag, ref_mag, atol=1e-3, rtol=2e-3)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}


@needs_espeak
def test_second_run_does_nothing(small_corpus) -> None:  # type: ignore[no-untyped-def]
    from trtgen_export.train.corpus import build_corpus

    manifest, voices = small_corpus
    before = _snapshot(manifest.root)
    again = build_corpus(manifest.root, SENTENCES, voices, workers=2)
    assert _snapshot(manifest.root) == before
    assert again.utterances == manifest.utterances


@needs_espeak
def test_interrupted_run_resumes(small_corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from trtgen_export.train.corpus import build_corpus

    manifest, voices = small_corpus
    root = tmp_path / "copy"
    shutil.copytree(manifest.root, root)
    # As if stopped while rendering the second voice: no marker, no features, one WAV missing.
    (root / ".completed").unlink()
    (root / "metadata.jsonl").unlink()
    shutil.rmtree(root / "features" / voices[1].name)
    (root / "wavs" / voices[1].name / "s00001.wav").unlink()
    kept = _snapshot(root / "wavs" / voices[0].name)
    resumed = build_corpus(root, SENTENCES, voices, workers=1)
    assert _snapshot(root / "wavs" / voices[0].name) == kept
    assert resumed.utterances == manifest.utterances
    for u in resumed.utterances:
        np.testing.assert_array_equal(resumed.features(u)[0], manifest.features(u)[0])


@needs_espeak
def test_other_settings_are_refused(small_corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from trtgen_export.train.corpus import CorpusSettingsMismatch, EspeakVoice, build_corpus

    manifest, voices = small_corpus
    before = _snapshot(manifest.root)
    changed = EspeakVoice(voices[1].name, voices[1].voice, pitch=voices[1].pitch + 10, speed=voices[1].speed)
    higher = (voices[0], changed)
    with pytest.raises(CorpusSettingsMismatch, match="corpus.json.*voices"):
        build_corpus(manifest.root, SENTENCES, higher, workers=1)
    with pytest.raises(CorpusSettingsMismatch, match="sentences_sha256"):
        build_corpus(manifest.root, SENTENCES[:2], voices, workers=1)
    with pytest.raises(CorpusSettingsMismatch, match="peak"):
        build_corpus(manifest.root, SENTENCES, voices, workers=1, peak=0.5)
    assert _snapshot(manifest.root) == before
    stranger = tmp_path / "not-a-corpus"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(CorpusSettingsMismatch, match="not empty"):
        build_corpus(stranger, SENTENCES, voices, workers=1)


@needs_espeak
def test_unknown_variant_is_refused() -> None:
    from trtgen_export.train.corpus import EspeakError, EspeakVoice, check_voices

    # espeak-ng itself silently falls back to its default voice here.
    with pytest.raises(EspeakError, match="variant 'nosuchvariant'"):
        check_voices([EspeakVoice("bad", "en-us+nosuchvariant")])
    with pytest.raises(EspeakError, match="no language voice"):
        check_voices([EspeakVoice("bad", "xx-nowhere")])


@needs_espeak
def test_demo_styles_are_small_clips(tmp_path: Path) -> None:
    from trtgen_export.train.corpus import DEFAULT_VOICES, write_demo_styles

    paths = write_demo_styles(tmp_path / "styles")
    assert [p.name for p in paths] == [f"{v.name}.wav" for v in DEFAULT_VOICES]
    durations = []
    for path in paths:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert path.stat().st_size < 100_000
        durations.append(info.duration)
    assert min(durations) > 1.5
    styles = json.loads((tmp_path / "styles" / "styles.json").read_text())
    assert {s["text"] for s in styles["styles"]} == {DEMO_SENTENCE}


@needs_espeak
def test_command_line_builds_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trtgen_export.train.corpus import load_corpus, main

    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "cli"), "--sentences", "3", "--workers", "1"])
    assert exit_info.value.code == 0
    output = capsys.readouterr().out
    assert "frames/char" in output and "us-m7" in output
    manifest = load_corpus(tmp_path / "cli")
    assert len(manifest.utterances) == 3 * 4
    assert {u.split for u in manifest.utterances} == {TRAIN, HELDOUT}
