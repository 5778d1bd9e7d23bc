"""``trtgen manifest``: every format written and read back by its consumer, NSR normalisation, ``{}`` templating,
exact deterministic mixing, unique ids, FLAC never in an OpenSeq2Seq manifest, damaged audio refused, and
``--check`` naming broken, stray and leftover files. Synthetic copies are generated trees of real WAVs."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from trtgen.cli import app
from trtgen.commands.manifest_lines import nsr_normalize
from trtgen.commands.manifests import DamagedAudioError, ManifestOptions, plan_mix, write_manifests
from trtgen.commands.synthetic_check import check_synthetic

REAL_IDS = ["1272-128104-0000", "2412-153948-0000", "1089-134686-0000", "1089-134686-0001",
            "1089-134691-0000", "1089-134691-0001", "1995-1837-0001"]
COPIES = {"drop0.3": 0.3, "drop0.5": 0.5, "drop0.7": 0.7}
STYLE = "en_US/by_book/female/judy_bieber/dorothy_and_wizard_oz/wavs/dorothy_and_wizard_oz_01_f000001.wav"
ODD_TEXT = "\u201cWELL,\u201d SAID THE CAF\u00c9\u2019S OWNER: \"NO!\" (WAIT) - \u00e0 \u00fc"


def _record(utterance_id: str, copy: str, text: str, wav: Path) -> dict:
    samples = sf.info(str(wav)).frames
    return {"id": utterance_id, "text": text, "style": STYLE, "copy": copy, "dropout": COPIES[copy], "seed": 7,
            "frames": samples // 200, "duration_s": samples / 16000, "stopped": True, "capped": False,
            "audio": wav.name, "audio_bytes": wav.stat().st_size, "audio_sha256": hashlib.sha256(wav.read_bytes()).hexdigest()}


@pytest.fixture()
def synthetic(tmp_path: Path) -> Path:
    """Three copies of the 7 real utterances plus "extra-1" (only in two copies) and "odd-1" (punctuation)."""
    root = tmp_path / "syn"
    ids = REAL_IDS + ["odd-1", "extra-1"]
    for c, copy in enumerate(COPIES):
        directory = root / copy
        directory.mkdir(parents=True)
        records = []
        for k, utterance_id in enumerate(ids):
            if utterance_id == "extra-1" and copy == "drop0.7":
                continue
            samples = 1600 + 160 * k + 80 * c
            wav = directory / f"{utterance_id}.wav"
            sf.write(wav, (0.1 * np.sin(np.arange(samples) * 0.03)).astype(np.float32), 16000, subtype="PCM_16")
            records.append(_record(utterance_id, copy, ODD_TEXT if utterance_id == "odd-1" else f"TEXT OF {utterance_id}", wav))
        if copy == "drop0.5":  # sharded output
            half = len(records) // 2
            for i, part in enumerate((records[:half], records[half:])):
                (directory / f"records.shard-{i}-of-2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
        else:
            (directory / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (directory / "rejects.jsonl").write_text(json.dumps({"id": "never-made", "reason": "text"}) + "\n")
        (directory / "settings.json").write_text(json.dumps({"sample_rate": 16000, "seed": c, "dropout": COPIES[copy]}))
    return root


def test_nsr_normalisation_is_exact() -> None:
    # Spec §7.1: ’ “ ” -> ', à â -> a, è é ê -> e, ü -> u; ASCII punctuation except ' deleted ('"' too); lower; strip.
    assert nsr_normalize("\u2019\u201c\u201d\u00e0\u00e2\u00e8\u00e9\u00ea\u00fc") == "'''aaeeeu"
    assert nsr_normalize(' "Hello," she said; (it\'s) fine-ish... [ok]? #1 & 2% ') == "hello she said it's fineish ok 1  2"
    assert nsr_normalize(ODD_TEXT) == "'well' said the café's owner no wait  a u"
    assert nsr_normalize("\u00c4RGER \u00c9T\u00c9 \u2014 X") == "\u00e4rger été — x"  # lower() after the table
    assert nsr_normalize("MISTER QUILTER IS THE APOSTLE") == "mister quilter is the apostle"


def test_openseq2seq_template_csv(synthetic: Path, tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "man"
    result = write_manifests(synthetic, out, [shared_data / "librivox-dev-clean-sample.csv"], ManifestOptions(formats=("openseq2seq",)))
    # Read as OpenSeq2Seq's Speech2TextDataLayer does (docs/openseq2seq-notes.md §7.2).
    table = pd.read_csv(out / "synthetic_data.csv", encoding="utf-8")
    assert list(table.columns) == ["wav_filename", "wav_filesize", "transcript"]
    ids = [Path(f).stem for f in table.wav_filename]
    assert ids == sorted(REAL_IDS + ["odd-1"])  # extra-1 is missing from drop0.7: not templated
    for row in table.itertuples(index=False):
        assert row.wav_filename.startswith(f"{synthetic}/{{}}/")
        for copy in COPIES:  # what syn_enable does at read time: filename.format(random.choice(syn_subdirs))
            assert Path(row.wav_filename.format(copy)).is_file()
        assert row.wav_filesize == os.path.getsize(row.wav_filename.format("drop0.3"))  # real size, not -1
    odd = table[table.wav_filename.str.contains("odd-1")].transcript.iloc[0]
    assert odd == nsr_normalize(ODD_TEXT)
    assert table[table.wav_filename.str.contains("1272-128104-0000")].transcript.iloc[0] == "text of 12721281040000"  # "-" deleted
    rejects = [json.loads(l) for l in (out / "rejects.jsonl").read_text().splitlines()]
    assert [(r["item"], "drop0.7" in r["reason"]) for r in rejects] == [("extra-1", True)]
    config = "\n".join(result.openseq2seq_config)
    assert '"syn_subdirs": ["drop0.3", "drop0.5", "drop0.7"],' in config
    assert str(shared_data / "librivox-dev-clean-sample.csv") in config and str(out / "synthetic_data.csv") in config


def test_nemo_manifests(synthetic: Path, tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "man"
    write_manifests(synthetic, out, [shared_data / "LibriSpeech"], ManifestOptions(formats=("nemo",), splits="all"))
    rows = [json.loads(l) for l in (out / "nemo_synthetic.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * 8 + 2  # every file of every copy, extra-1 included where it exists
    assert Counter(r["copy"] for r in rows) == {"drop0.3": 9, "drop0.5": 9, "drop0.7": 8}
    for row in rows:
        info = sf.info(row["audio_filepath"])
        assert row["duration"] == pytest.approx(info.frames / info.samplerate, abs=1e-6)
        assert row["sampling_rate"] == info.samplerate == 16000
        assert row["dropout"] == COPIES[row["copy"]] and row["style"] == STYLE
        assert row["text"] == row["text"].lower()
        assert row["id"] == f"{row['utterance_id']}_{row['copy']}"
    real = [json.loads(l) for l in (out / "nemo_real.jsonl").read_text().splitlines()]
    assert [r["id"] for r in real] == REAL_IDS
    every = [r["id"] for r in rows + real]
    assert len(set(every)) == len(every), "ids unique across copies and between real and synthetic rows"
    # NeMo's Lhotse reader names a cut by its file's stem unless the line has a sampling_rate (then by its
    # path): the stems repeat across copies and the real recordings, the paths do not.
    assert all("sampling_rate" in r for r in rows + real)
    paths = [r["audio_filepath"] for r in rows + real]
    assert len({Path(p).stem for p in paths}) < len(paths) and len(set(paths)) == len(paths)
    assert real[0]["duration"] == pytest.approx(4.815) and real[0]["text"].startswith("mister quilter")
    assert real[-1]["audio_filepath"].endswith("1995-1837-0001.wav")


def test_lhotse_manifests_load_in_lhotse(synthetic: Path, tmp_path: Path, shared_data: Path) -> None:
    lhotse = pytest.importorskip("lhotse")
    from lhotse.qa import validate_recordings_and_supervisions

    out = tmp_path / "man"
    write_manifests(synthetic, out, [shared_data / "LibriSpeech"], ManifestOptions(formats=("lhotse",), splits="all"))
    recordings = lhotse.load_manifest(out / "lhotse_synthetic_recordings.jsonl.gz")
    supervisions = lhotse.load_manifest(out / "lhotse_synthetic_supervisions.jsonl.gz")
    assert isinstance(recordings, lhotse.RecordingSet) and isinstance(supervisions, lhotse.SupervisionSet)
    assert len(recordings) == 26 and len(supervisions) == 26
    validate_recordings_and_supervisions(recordings, supervisions)
    recording = recordings["odd-1_drop0.5"]
    audio = recording.load_audio()
    assert audio.shape == (1, recording.num_samples) and recording.sampling_rate == 16000
    supervision = supervisions["odd-1_drop0.5"]
    assert supervision.speaker == "judy_bieber" and supervision.text == ODD_TEXT
    assert supervision.custom["dropout"] == 0.5 and supervision.custom["utterance_id"] == "odd-1"
    cuts = lhotse.CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    assert len(cuts) == 26
    real_recordings = lhotse.load_manifest(out / "lhotse_real_recordings.jsonl.gz")
    real_supervisions = lhotse.load_manifest(out / "lhotse_real_supervisions.jsonl.gz")
    validate_recordings_and_supervisions(real_recordings, real_supervisions)
    assert sorted(real_recordings.ids) == sorted(REAL_IDS)
    flac = real_recordings["1272-128104-0000"]
    assert flac.duration == pytest.approx(4.815) and flac.load_audio().shape == (1, 77040)
    assert real_supervisions["1272-128104-0000"].speaker == "1272"


@pytest.mark.parametrize("num_real, fraction, expected_synthetic", [(7, 0.5, 7), (7, 0.25, 21), (10, 0.8, 2), (3, 0.1, 27)])
def test_plan_mix_is_exact(num_real: int, fraction: float, expected_synthetic: int) -> None:
    plan = plan_mix(num_real, 8, 3, fraction, seed=11)
    real = [d.index for d in plan if d.real]
    synthetic = [d for d in plan if not d.real]
    assert sorted(real) == list(range(num_real))  # every real utterance exactly once
    assert len(synthetic) == expected_synthetic
    copies = Counter(d.copy for d in synthetic)
    assert max(copies.values()) - min(copies.values()) <= 1 and set(copies) <= {0, 1, 2}
    per_utterance = Counter(d.index for d in synthetic)
    assert max(per_utterance.values()) - min(per_utterance.values()) <= 1  # passes over all utterances
    assert plan == plan_mix(num_real, 8, 3, fraction, seed=11)
    assert plan != plan_mix(num_real, 8, 3, fraction, seed=12)


def test_plan_mix_rejects_bad_ratios() -> None:
    for fraction in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="fraction of real rows"):
            plan_mix(5, 5, 2, fraction, 0)
    with pytest.raises(ValueError, match="needs real"):
        plan_mix(0, 5, 2, 0.5, 0)


def test_mixed_manifests(synthetic: Path, tmp_path: Path, shared_data: Path) -> None:
    written = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = write_manifests(synthetic, out, [shared_data / "LibriSpeech"],
                                 ManifestOptions(formats=("openseq2seq", "nemo"), mix=0.5, seed=3, splits="all", flac_to_wav=True))
        written.append(((out / "nemo_mix.jsonl").read_bytes(), (out / "openseq2seq_mix.csv").read_bytes().replace(b"/b/", b"/a/")))
    assert written[0] == written[1]
    rows = [json.loads(l) for l in written[0][0].decode().splitlines()]
    real = [r for r in rows if "copy" not in r]
    synthetic_rows = [r for r in rows if "copy" in r]
    assert sorted(r["id"] for r in real) == sorted(REAL_IDS) and len(synthetic_rows) == 7
    assert len({r["id"] for r in rows}) == len(rows)
    assert max(Counter(r["copy"] for r in synthetic_rows).values()) <= 3  # 7 draws over 3 copies: 3/2/2
    assert all(r["utterance_id"] != "extra-1" for r in synthetic_rows)  # only utterances present in every copy
    assert result.counts["mix_real"] == 7 and result.counts["mix_synthetic"] == 7
    table = pd.read_csv(tmp_path / "a" / "openseq2seq_mix.csv")
    assert len(table) == 14 and not table.wav_filename.str.contains("{}", regex=False).any()
    assert all(Path(f).is_file() and f.endswith(".wav") for f in table.wav_filename), "OpenSeq2Seq reads WAV only"
    names = [Path(f).stem for f in table.wav_filename]
    assert names == [Path(r["audio_filepath"]).stem for r in rows]  # both formats hold the same plan
    assert sum(r["audio_filepath"].endswith(".flac") for r in real) == 6  # NeMo reads FLAC: its rows keep the originals
    for row in table.itertuples(index=False):  # the real FLAC rows: converted beside the manifests, same samples
        if "/real_wav/" in row.wav_filename:
            flac = next(shared_data.rglob(f"{Path(row.wav_filename).stem}.flac"))
            assert np.array_equal(sf.read(row.wav_filename, dtype="int16")[0], sf.read(flac, dtype="int16")[0])
            assert row.wav_filesize == os.path.getsize(row.wav_filename)
    assert sum("/real_wav/" in f for f in table.wav_filename) == 6  # the seventh real row is a WAV already
    assert "mix" in "nemo_mix.jsonl" and (tmp_path / "a" / "manifest.json").is_file()


def test_an_openseq2seq_mix_with_flac_is_refused_unless_converted(synthetic: Path, tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "man"
    with pytest.raises(ValueError, match=r"OpenSeq2Seq reads WAV only, and 6 real file\(s\) are not WAV .*\.flac.*--flac-to-wav"):
        write_manifests(synthetic, out, [shared_data / "LibriSpeech"], ManifestOptions(formats=("openseq2seq",), mix=0.5, splits="all"))
    assert not out.exists(), "nothing is written when refused"
    write_manifests(synthetic, out, [shared_data / "LibriSpeech"], ManifestOptions(formats=("nemo",), mix=0.5, splits="all"))
    assert any(json.loads(l)["audio_filepath"].endswith(".flac") for l in (out / "nemo_mix.jsonl").read_text().splitlines())


def test_ids_that_would_repeat_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    root = tmp_path / "syn"
    for copy, utterance_id in (("x", "a_y"), ("y_x", "a")):  # both would be "a_y_x"
        directory = root / copy
        directory.mkdir(parents=True)
        wav = directory / f"{utterance_id}.wav"
        sf.write(wav, np.zeros(1600, np.float32), 16000, subtype="PCM_16")
        (directory / "records.jsonl").write_text(json.dumps(dict(_record(utterance_id, "drop0.3", "TEXT", wav), copy=copy)) + "\n")
    with pytest.raises(ValueError, match="manifest ids of synthetic and real rows together: 1 would repeat, e.g. 'a_y_x'"):
        write_manifests(root, tmp_path / "man", options=ManifestOptions(formats=("nemo",)))
    assert not (tmp_path / "man").exists()


def test_writing_manifests_refuses_audio_that_disagrees_with_its_record(synthetic: Path, tmp_path: Path) -> None:
    truncated = synthetic / "drop0.5" / "odd-1.wav"
    audio, rate = sf.read(truncated, dtype="int16")
    sf.write(truncated, audio[: len(audio) // 2], rate, subtype="PCM_16")
    missing = synthetic / "drop0.3" / "1995-1837-0001.wav"
    missing.unlink()
    out = tmp_path / "man"
    with pytest.raises(DamagedAudioError) as caught:
        write_manifests(synthetic, out, options=ManifestOptions(formats=("openseq2seq", "nemo", "lhotse")))
    message = str(caught.value)
    assert "2 synthetic file(s) do not match their records" in message
    assert f"{truncated}: wrong length" in message and f"{missing}: missing" in message
    assert not out.exists()
    result = CliRunner().invoke(app, ["manifest", "--synthetic", str(synthetic), "--out", str(out), "--formats", "openseq2seq"])
    assert result.exit_code == 2 and str(truncated) in result.output and not out.exists()
    # Same length, other size (a header rewritten as float): the record's size tells.
    sf.write(truncated, audio.astype(np.float32) / 32768, rate, subtype="FLOAT")
    missing.write_bytes(b"")
    with pytest.raises(DamagedAudioError, match="wrong size"):
        write_manifests(synthetic, out, options=ManifestOptions(formats=("openseq2seq",)))


def test_relative_paths(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "man"
    write_manifests(synthetic, out, options=ManifestOptions(formats=("openseq2seq", "nemo"), relative_to=tmp_path))
    table = pd.read_csv(out / "synthetic_data.csv")
    assert all(f.startswith("syn/{}/") for f in table.wav_filename)
    rows = [json.loads(l) for l in (out / "nemo_synthetic.jsonl").read_text().splitlines()]
    assert all(not r["audio_filepath"].startswith("/") and (tmp_path / r["audio_filepath"]).is_file() for r in rows)


def test_manifest_errors(synthetic: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs the real data"):
        write_manifests(synthetic, tmp_path / "m", options=ManifestOptions(mix=0.5))
    with pytest.raises(ValueError, match="unknown manifest format"):
        write_manifests(synthetic, tmp_path / "m", options=ManifestOptions(formats=("kaldi",)))


def test_check_reports_broken_rows(synthetic: Path) -> None:
    assert check_synthetic(synthetic).ok
    os.remove(synthetic / "drop0.5" / "1089-134686-0001.wav")
    sf.write(synthetic / "drop0.3" / "odd-1.wav", np.zeros(1000, np.float32), 22050, subtype="PCM_16")
    (synthetic / "drop0.7" / "1272-128104-0000.wav").write_bytes(b"RIFF not really a wav")
    records = synthetic / "drop0.7" / "records.jsonl"
    lines = records.read_text().splitlines()
    changed = json.loads(lines[1])
    changed["duration_s"] += 0.5
    lines[1] = json.dumps(changed)
    records.write_text("\n".join(lines + ["{not json"]) + "\n")
    report = check_synthetic(synthetic)
    assert report.checked == 26
    problems = {(p.copy, p.id): p.problem for p in report.problems}
    assert problems[("drop0.5", "1089-134686-0001")] == "missing"
    assert problems[("drop0.3", "odd-1")] == "sample rate 22050 Hz, expected 16000 Hz"
    assert problems[("drop0.7", "1272-128104-0000")].startswith("unreadable")
    assert "in the file" in problems[("drop0.7", changed["id"])] and "in the record" in problems[("drop0.7", changed["id"])]
    assert any("invalid JSON" in p for p in problems.values())
    assert len(report.problems) == 5


def test_check_finds_altered_stray_and_leftover_files(synthetic: Path) -> None:
    zeroed = synthetic / "drop0.3" / "1089-134686-0000.wav"
    info = sf.info(str(zeroed))
    sf.write(zeroed, np.zeros(info.frames, np.int16), 16000, subtype="PCM_16")  # same header, length and size
    blank = synthetic / "drop0.5" / "1089-134686-0000.wav"
    blank.write_bytes(bytes(blank.stat().st_size))  # zeros over the whole file, header included
    stray = synthetic / "drop0.7" / "nobody.wav"
    stray.write_bytes(zeroed.read_bytes())
    staging = synthetic / "drop0.7" / ".staging" / "host-123"
    staging.mkdir(parents=True)
    (staging / "half.wav").write_bytes(b"RIFF")
    temporary = synthetic / "drop0.3" / ".records.jsonl.tmp-123-abcd.jsonl"
    temporary.write_text("{")
    report = check_synthetic(synthetic)
    problems = {(p.copy, p.id, Path(p.path).name): p.problem for p in report.problems}
    assert problems[("drop0.3", "1089-134686-0000", zeroed.name)] == "altered content: the file's SHA-256 is not the record's"
    assert problems[("drop0.5", "1089-134686-0000", blank.name)].startswith("unreadable")
    assert problems[("drop0.7", "nobody", "nobody.wav")] == "stray: no record names this file"
    assert "temporary file left by a run that was killed" in problems[("drop0.7", "-", "half.wav")]
    assert "temporary file" in problems[("drop0.3", "-", temporary.name)]
    assert len(report.problems) == 5 and report.checked == 26


def test_manifest_cli(synthetic: Path, tmp_path: Path, shared_data: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["manifest", "--synthetic", str(synthetic), "--real", str(shared_data / "LibriSpeech"),
                                 "--splits", "all", "--out", str(tmp_path / "man"), "--copies", "drop0.3,drop0.5",
                                 "--mix", "0.5", "--seed", "1", "--flac-to-wav"])
    assert result.exit_code == 0, result.output
    assert '"syn_subdirs": ["drop0.3", "drop0.5"],' in result.output
    table = pd.read_csv(tmp_path / "man" / "synthetic_data.csv")
    assert len(table) == 9  # extra-1 is in both selected copies
    assert (tmp_path / "man" / "lhotse_real_supervisions.jsonl.gz").is_file()
    check = runner.invoke(app, ["manifest", "--synthetic", str(synthetic), "--check"])
    assert check.exit_code == 0, check.output
    deleted = synthetic / "drop0.7" / "2412-153948-0000.wav"
    deleted.unlink()
    check = runner.invoke(app, ["manifest", "--synthetic", str(synthetic), "--check"])
    assert check.exit_code == 1
    assert str(deleted) in check.output and "missing" in check.output
    no_out = runner.invoke(app, ["manifest", "--synthetic", str(synthetic)])
    assert no_out.exit_code == 2


# Data worth training on (issue 32): records carry "quality", "attempt", "style_mode"; older records only "capped".

QUALITY_FAILED = {  # (copy, utterance) -> reasons; 1089-134691-0001 failed in every copy
    ("drop0.5", "odd-1"): ["too_fast", "jumps"],
    ("drop0.7", "1995-1837-0001"): ["clipping"],
    ("drop0.3", "1089-134691-0001"): ["stops_early"],
    ("drop0.5", "1089-134691-0001"): [],
    ("drop0.7", "1089-134691-0001"): ["too_fast"],
}
OLD_CAPPED = ("drop0.3", "1089-134686-0000")  # a record of an earlier trtgen: no "quality", "capped": true


def _edit_record(root: Path, copy: str, utterance_id: str, change) -> tuple[str, int]:
    """Change one record in place; returns its records file and line."""
    for path in sorted((root / copy).glob("records*.jsonl")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            record = json.loads(line)
            if record["id"] == utterance_id:
                change(record)
                lines[number - 1] = json.dumps(record)
                path.write_text("".join(l + "\n" for l in lines))
                return str(path), number
    raise AssertionError(f"no record of {utterance_id} in {copy}")


@pytest.fixture()
def graded(synthetic: Path) -> tuple[Path, dict[tuple[str, str], tuple[str, int]]]:
    """The synthetic copies with new-style records: every record of drop0.5 and drop0.7 carries a quality
    verdict (QUALITY_FAILED fail), drop0.3 stays an old-style output but for one capped record; returns
    where each failed record lies."""
    where = {}
    for copy in ("drop0.5", "drop0.7"):
        for path in sorted((synthetic / copy).glob("records*.jsonl")):
            for record in [json.loads(l) for l in path.read_text().splitlines()]:
                reasons = QUALITY_FAILED.get((copy, record["id"]))

                def grade(r: dict, reasons=reasons) -> None:
                    r["quality"] = {"ok": reasons is None, "reasons": reasons or [], "signals": {"chars_per_s": 14.2}}
                    r["attempt"] = 2 if r["id"] == "1272-128104-0000" else 1
                    r["style_mode"] = "blend"
                    r["style_draw"] = {"clips": [STYLE], "weights": [1.0]}

                location = _edit_record(synthetic, copy, record["id"], grade)
                if reasons is not None:
                    where[(copy, record["id"])] = location
    where[OLD_CAPPED] = _edit_record(synthetic, *OLD_CAPPED, lambda r: r.update(capped=True, stopped=False))
    where[("drop0.3", "1089-134691-0001")] = _edit_record(
        synthetic, "drop0.3", "1089-134691-0001", lambda r: r.update(quality={"ok": False, "reasons": ["stops_early"]})
    )
    return synthetic, where


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines()]


def test_records_read_quality_attempt_and_style_mode_old_and_new(synthetic: Path) -> None:
    from trtgen.corpora.synthetic import Quality, SyntheticRecord, read_copy

    old = json.loads((synthetic / "drop0.3" / "records.jsonl").read_text().splitlines()[0])
    record = SyntheticRecord.from_json(old, "drop0.3", "records.jsonl", 1)
    assert (record.quality, record.attempt, record.style_mode, record.style_draw) == (Quality(True, ()), 1, "clip", None)
    assert SyntheticRecord.from_json(dict(old, capped=True), "drop0.3", "r", 1).quality == Quality(False, ("capped",))
    new = dict(old, capped=True, quality={"ok": True, "reasons": [], "signals": {"x": 1.0}}, attempt=3, style_mode="tokens",
               style_draw={"tokens": [0.1, 0.9]})
    record = SyntheticRecord.from_json(new, "drop0.3", "r", 1)
    assert record.quality.ok and record.quality.signals == {"x": 1.0}, "a record's own verdict wins over capped"
    assert (record.attempt, record.style_mode, record.style_draw) == (3, "tokens", {"tokens": [0.1, 0.9]})
    for bad, message in (("good", "'quality' must be an object"), ({"reasons": []}, "'quality.ok' must be true or false"),
                         ({"ok": False, "reasons": "capped"}, "'quality.reasons' must be a list"),
                         ({"ok": True, "signals": [1]}, "'quality.signals' must be an object")):
        with pytest.raises(ValueError, match=message):
            SyntheticRecord.from_json(dict(old, quality=bad), "drop0.3", "r", 1)
    for key, bad in (("attempt", 0), ("attempt", 1.5), ("style_mode", ""), ("style_draw", [1])):
        with pytest.raises(ValueError, match=key):
            SyntheticRecord.from_json(dict(old, **{key: bad}), "drop0.3", "r", 1)
    # A malformed quality is a rejected record line, as any malformed field.
    source, line = _edit_record(synthetic, "drop0.3", "odd-1", lambda r: r.update(quality=[False]))
    copy = read_copy(synthetic / "drop0.3")
    assert "odd-1" not in copy.records
    assert [(r.source, r.line, r.item) for r in copy.rejects] == [(source, line, "odd-1")]
    assert "'quality' must be an object" in copy.rejects[0].reason


def test_failed_utterances_are_left_out_of_every_manifest(graded, tmp_path: Path, shared_data: Path) -> None:
    synthetic, where = graded
    failed = set(QUALITY_FAILED) | {OLD_CAPPED}
    out = tmp_path / "man"
    result = write_manifests(synthetic, out, [shared_data / "LibriSpeech"], ManifestOptions(mix=0.5, splits="all", flac_to_wav=True, seed=5))

    nemo = _jsonl(out / "nemo_synthetic.jsonl")
    assert len(nemo) == 26 - len(failed)
    assert not {(r["copy"], r["utterance_id"]) for r in nemo} & failed
    assert all(r["quality_ok"] is True and "quality_reasons" not in r for r in nemo)
    lhotse = pytest.importorskip("lhotse")
    for name in ("recordings", "supervisions", "cuts"):
        manifest = lhotse.load_manifest(out / f"lhotse_synthetic_{name}.jsonl.gz")
        assert sorted(manifest.ids) == sorted(r["id"] for r in nemo), name
    mixed = [r for r in _jsonl(out / "nemo_mix.jsonl") if r["synthetic"]]
    assert len(mixed) == 7 and not {(r["copy"], r["utterance_id"]) for r in mixed} & failed
    assert "1089-134691-0001" not in {r["utterance_id"] for r in mixed}, "failed in every copy: not in the mix pool"
    spread = result.counts["mix_synthetic_per_copy"]
    assert sum(spread.values()) == 7 and max(spread.values()) - min(spread.values()) <= 2
    mix_csv = pd.read_csv(out / "openseq2seq_mix.csv")
    synthetic_paths = [Path(f) for f in mix_csv.wav_filename if str(synthetic) in f]
    assert len(synthetic_paths) == 7 and not {(p.parent.name, p.stem) for p in synthetic_paths} & failed

    # OpenSeq2Seq: no {} row for an utterance that failed in some copy; its other copies get explicit rows.
    table = pd.read_csv(out / "synthetic_data.csv")
    templated = sorted(Path(f).stem for f in table.wav_filename if "{}" in f)
    explicit = sorted((Path(f).parent.name, Path(f).stem) for f in table.wav_filename if "{}" not in f)
    assert templated == sorted({"1089-134686-0001", "1272-128104-0000", "2412-153948-0000"} | {"1089-134691-0000"})
    assert explicit == sorted([
        ("drop0.3", "odd-1"), ("drop0.7", "odd-1"),
        ("drop0.5", "1995-1837-0001"), ("drop0.3", "1995-1837-0001"),
        ("drop0.5", "1089-134686-0000"), ("drop0.7", "1089-134686-0000"),
    ])
    assert table[table.wav_filename.str.contains("drop0.3/odd-1")].transcript.iloc[0] == nsr_normalize(ODD_TEXT)

    # One reject per copy and utterance, at its record's file and line, with its reasons.
    rejects = [r for r in _jsonl(out / "rejects.jsonl") if "quality check" in r["reason"]]
    assert sorted((r["source"], r["line"], r["item"]) for r in rejects) == sorted((*where[k], k[1]) for k in failed)
    by_key = {(Path(r["source"]).parent.name, r["item"]): r["reason"] for r in rejects}
    assert "(too_fast, jumps)" in by_key[("drop0.5", "odd-1")] and "(capped)" in by_key[OLD_CAPPED]
    assert "(unspecified)" in by_key[("drop0.5", "1089-134691-0001")] and "--keep-failed" in by_key[OLD_CAPPED]

    assert result.failed.per_copy == {"drop0.3": 2, "drop0.5": 2, "drop0.7": 2} and result.failed.left_out == 6
    assert result.failed.per_copy_and_reason == {
        "drop0.3": {"capped": 1, "stops_early": 1},
        "drop0.5": {"jumps": 1, "too_fast": 1, "unspecified": 1},
        "drop0.7": {"clipping": 1, "too_fast": 1},
    }
    assert result.failed.per_reason == {"too_fast": 2, "capped": 1, "clipping": 1, "jumps": 1, "stops_early": 1, "unspecified": 1}
    summary = json.loads((out / "manifest.json").read_text())
    assert summary["counts"]["failed"] == json.loads(json.dumps(result.failed.to_dict()))
    assert summary["counts"]["failed"]["left_out"] == 6 and summary["options"]["keep_failed"] is False


def test_keep_failed_keeps_and_flags_them(graded, tmp_path: Path) -> None:
    synthetic, _ = graded
    out = tmp_path / "man"
    result = write_manifests(synthetic, out, options=ManifestOptions(formats=("openseq2seq", "nemo", "lhotse"), keep_failed=True))
    nemo = {(r["copy"], r["utterance_id"]): r for r in _jsonl(out / "nemo_synthetic.jsonl")}
    assert len(nemo) == 26
    assert nemo[("drop0.5", "odd-1")]["quality_ok"] is False and nemo[("drop0.5", "odd-1")]["quality_reasons"] == ["too_fast", "jumps"]
    assert nemo[OLD_CAPPED]["quality_reasons"] == ["capped"]
    assert sum(not r["quality_ok"] for r in nemo.values()) == 6
    lhotse = pytest.importorskip("lhotse")
    supervisions = lhotse.load_manifest(out / "lhotse_synthetic_supervisions.jsonl.gz")
    assert supervisions["odd-1_drop0.5"].custom["quality_ok"] is False and supervisions["odd-1_drop0.3"].custom["quality_ok"] is True
    table = pd.read_csv(out / "synthetic_data.csv")
    assert len(table) == 8 and all("{}" in f for f in table.wav_filename), "kept: templated as before"
    assert not [r for r in _jsonl(out / "rejects.jsonl") if "quality check" in r["reason"]]
    assert result.failed.kept and result.failed.total == 6 and result.failed.left_out == 0


def test_manifest_cli_exits_1_when_it_left_failed_utterances_out(graded, tmp_path: Path) -> None:
    synthetic, _ = graded
    runner = CliRunner()
    arguments = ["manifest", "--synthetic", str(synthetic), "--formats", "nemo"]
    left_out = runner.invoke(app, [*arguments, "--out", str(tmp_path / "a")])
    assert left_out.exit_code == 1, left_out.output
    assert "6 utterance(s) failed the quality check and were left out" in left_out.output
    table = left_out.output[left_out.output.index("failed the quality check: left out"):]
    for word in ("drop0.3", "drop0.5", "drop0.7", "too_fast", "capped", "clipping", "unspecified"):
        assert word in table
    kept = runner.invoke(app, [*arguments, "--out", str(tmp_path / "b"), "--keep-failed"])
    assert kept.exit_code == 0, kept.output
    assert "kept, flagged quality_ok: false" in kept.output
    assert len(_jsonl(tmp_path / "b" / "nemo_synthetic.jsonl")) == 26


def test_synthetic_flags(graded, tmp_path: Path, shared_data: Path) -> None:
    synthetic, _ = graded
    out = tmp_path / "man"
    write_manifests(synthetic, out, [shared_data / "LibriSpeech"], ManifestOptions(formats=("nemo", "lhotse"), mix=0.5, splits="all"))
    nemo = _jsonl(out / "nemo_synthetic.jsonl")
    assert all(r["synthetic"] is True and r["dropout"] == COPIES[r["copy"]] for r in nemo)
    by_key = {(r["copy"], r["utterance_id"]): r for r in nemo}
    assert by_key[("drop0.5", "1272-128104-0000")]["attempt"] == 2 and by_key[("drop0.5", "1272-128104-0000")]["style_mode"] == "blend"
    assert by_key[("drop0.3", "1272-128104-0000")]["attempt"] == 1 and by_key[("drop0.3", "1272-128104-0000")]["style_mode"] == "clip"
    assert all(r["synthetic"] is False for r in _jsonl(out / "nemo_real.jsonl"))
    mixed = _jsonl(out / "nemo_mix.jsonl")
    assert Counter(r["synthetic"] for r in mixed) == {True: 7, False: 7}
    assert all(("copy" in r) == r["synthetic"] for r in mixed)
    lhotse = pytest.importorskip("lhotse")
    for supervision in lhotse.load_manifest(out / "lhotse_synthetic_supervisions.jsonl.gz"):
        custom = supervision.custom
        assert custom["synthetic"] is True and {"copy", "dropout", "style_mode", "attempt", "quality_ok"} <= set(custom)
    assert all(s.custom == {"synthetic": False} for s in lhotse.load_manifest(out / "lhotse_real_supervisions.jsonl.gz"))
    for cut in lhotse.CutSet.from_file(out / "lhotse_synthetic_cuts.jsonl.gz"):
        assert cut.custom["synthetic"] is True and cut.supervisions[0].custom["copy"] == cut.custom["copy"]


@pytest.mark.parametrize("relative", [False, True])
def test_nemo_input_cfg_names_manifests_that_load(graded, tmp_path: Path, shared_data: Path, monkeypatch, relative: bool) -> None:
    yaml = pytest.importorskip("yaml")
    lhotse = pytest.importorskip("lhotse")
    synthetic, _ = graded
    out = tmp_path / "man"
    options = ManifestOptions(mix=0.25, splits="all", flac_to_wav=True, relative_to=tmp_path if relative else None)
    result = write_manifests(synthetic, out, [shared_data / "LibriSpeech"], options)
    monkeypatch.chdir(tmp_path)  # relative paths: run the trainer from --relative-to
    expected_rows = {True: 26 - 6, False: len(REAL_IDS)}
    for name, kind, key in (("nemo_input_cfg.yaml", "nemo", "manifest_filepath"), ("nemo_input_cfg_lhotse.yaml", "lhotse", "cuts_path")):
        assert result.files[name.replace(".yaml", "")] == out / name
        entries = yaml.safe_load((out / name).read_text())
        assert [(e["type"], e["weight"], e["tags"]) for e in entries] == [
            (kind, 0.25, {"synthetic": False}), (kind, 0.75, {"synthetic": True})]
        for entry in entries:
            manifest = Path(entry[key])
            assert manifest.is_absolute() != relative and manifest.is_file()
            is_synthetic = entry["tags"]["synthetic"]
            if kind == "nemo":  # what NeMo's LazyNeMoIterator needs of each line
                rows = _jsonl(manifest)
                for row in rows:
                    assert Path(row["audio_filepath"]).is_file() and row["duration"] > 0 and row["text"]
                    assert row["synthetic"] is is_synthetic
            else:
                rows = list(lhotse.CutSet.from_file(manifest))
                for cut in rows:
                    assert cut.load_audio().shape == (1, cut.recording.num_samples) and cut.supervisions[0].text
                    assert cut.custom["synthetic"] is is_synthetic
            assert len(rows) == expected_rows[is_synthetic]


def test_a_mix_of_nothing_but_failed_utterances_is_refused_saying_why(synthetic: Path, tmp_path: Path, shared_data: Path) -> None:
    for copy in COPIES:
        for path in (synthetic / copy).glob("records*.jsonl"):
            lines = [json.loads(l) for l in path.read_text().splitlines()]
            path.write_text("".join(json.dumps(dict(r, quality={"ok": False, "reasons": ["late_start"]})) + "\n" for r in lines))
    out = tmp_path / "man"
    options = ManifestOptions(formats=("nemo",), mix=0.5, splits="all")
    with pytest.raises(ValueError, match=r"passing the quality check .* 26 failed it \(late_start\): --keep-failed keeps them"):
        write_manifests(synthetic, out, [shared_data / "LibriSpeech"], options)
    assert not out.exists()
    result = write_manifests(synthetic, out, [shared_data / "LibriSpeech"], ManifestOptions(formats=("nemo",), mix=0.5, splits="all", keep_failed=True))
    assert result.counts["mix_synthetic"] == 7 and result.failed.total == 26
