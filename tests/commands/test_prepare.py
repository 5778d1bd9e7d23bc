"""``trtgen prepare`` on the real samples and on generated corpora: formats, determinism, assignment, rejects."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from trtgen.cli import app
from trtgen.corpora.infer_list import read_infer_list
from trtgen.commands.prepare import PrepareOptions, assign_styles, prepare_infer_list
from trtgen.engine.text import TextEncoder

SPEAKERS = {  # speaker -> (gender, book, clip count)
    "elliot_miller": ("male", "hunters_space", 20),
    "mary_ann": ("female", "northandsouth", 5),
    "judy_bieber": ("female", "ozma_of_oz", 1),
}


def _wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(160, np.float32), 16000, subtype="PCM_16")


@pytest.fixture()
def corpora(tmp_path: Path) -> tuple[Path, Path]:
    """An M-AILABS tree of three speakers (20, 5 and 1 clips; two listed clips missing) and a 100-row librivox CSV."""
    mailabs = tmp_path / "M-AILABS"
    for speaker, (gender, book, count) in SPEAKERS.items():
        directory = mailabs / "en_US" / "by_book" / gender / speaker / book
        lines = []
        for n in range(count):
            clip = f"{book}_{n:04d}"
            lines.append(f"{clip}|Text {n}.|Text {n}.")
            _wav(directory / "wavs" / f"{clip}.wav")
        lines.append(f"{book}_missing1|Gone.|Gone.")
        directory.joinpath("metadata.csv").write_text("\n".join(lines) + "\n")
    (mailabs / "en_US/by_book/male/elliot_miller/hunters_space/metadata.csv").open("a").write("hunters_space_missing2|x|x\n")
    csv = tmp_path / "librivox-train-clean-100.csv"
    rows = ["wav_filename,wav_filesize,transcript"]
    rows += [f"/data/train-clean-100-wav/19-198-{n:04d}.wav,1000,utterance number {n}" for n in range(100)]
    rows.append("/data/train-clean-100-wav/19-198-0100.wav,1000,ampersand & breaks openseq2seq")
    rows.append("/data/train-clean-100-wav/19-198-0101.wav,1000,euro \u20ac sign")
    csv.write_text("\n".join(rows) + "\n")
    return mailabs, csv


def test_prepare_real_samples(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "lists"
    result = prepare_infer_list(
        shared_data / "M-AILABS",
        [shared_data / "LibriSpeech", shared_data / "librivox-dev-clean-sample.csv"],
        out,
        PrepareOptions(splits="all", seed=3),
    )
    assert result.summary.utterances == 57 and len(result.summary.missing_books) == 13
    # generate.csv read exactly as OpenSeq2Seq's data layer reads it (docs/openseq2seq-notes.md §2.3).
    table = pd.read_csv(out / "generate.csv", sep="|", header=None, quoting=3, encoding="utf-8",
                        names=["wav_filename", "raw_transcript", "transcript"])
    assert len(table) == 57
    encoder = TextEncoder()
    mailabs_root = shared_data / "M-AILABS"
    for style, ignored, text in table.itertuples(index=False):
        assert "wavs" in style and not style.endswith(".wav") and ignored == -1
        assert (mailabs_root / f"{style}.wav").is_file()  # OpenSeq2Seq's rule when "wavs" is in the path
        assert encoder.unknown_characters(text) == [] and text == text.lower().strip()
    assert table.transcript[0] == "mister quilter is the apostle of the middle classes and we are glad to welcome his gospel"
    # infer.jsonl: the same rows, LibriSpeech text untouched, style relative with .wav.
    lines = [json.loads(line) for line in (out / "infer.jsonl").read_text().splitlines()]
    assert [l["id"] for l in lines][:2] == ["1272-128104-0000", "2412-153948-0000"]
    assert lines[0]["text"].startswith("MISTER QUILTER") and lines[0]["speaker"] == "1272" and lines[0]["chapter"] == "128104"
    assert lines[0]["style"] == table.wav_filename[0] + ".wav"
    assert lines[0]["style_speaker"] == "judy_bieber" and lines[0]["book"] == "dorothy_and_wizard_oz"
    # The generator's reader finds the clips through prepare.json, for both formats.
    rows, rejects = read_infer_list(out / "infer.jsonl")
    assert rejects == [] and len(rows) == 57 and all(r.style.is_file() for r in rows)
    csv_rows, csv_rejects = read_infer_list(out / "generate.csv")
    assert csv_rejects == [] and [r.style for r in csv_rows] == [r.style for r in rows]
    settings = json.loads((out / "prepare.json").read_text())
    assert settings["mailabs_root"] == str(mailabs_root.absolute()) and settings["seed"] == 3
    assert (out / "rejects.jsonl").read_text() == ""


def test_prepare_is_deterministic_for_a_seed(corpora: tuple[Path, Path], tmp_path: Path) -> None:
    mailabs, csv = corpora
    outputs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        prepare_infer_list(mailabs, [csv], tmp_path / name, PrepareOptions(books="all", seed=seed))
        outputs.append(((tmp_path / name / "generate.csv").read_bytes(), (tmp_path / name / "infer.jsonl").read_bytes()))
    assert outputs[0] == outputs[1]
    assert outputs[0][0] != outputs[2][0]


def test_missing_clips_and_bad_transcripts_are_reported_never_used(corpora: tuple[Path, Path], tmp_path: Path) -> None:
    mailabs, csv = corpora
    result = prepare_infer_list(mailabs, [csv], tmp_path / "out", PrepareOptions(books="all"))
    styles = {e.style for e in result.entries}
    assert not any("missing" in s for s in styles)
    assert len(result.entries) == 100
    rejects = [json.loads(l) for l in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    missing = [r for r in rejects if r["reason"].startswith("audio file missing")]
    assert sorted(r["item"] for r in missing) == [
        "hunters_space_missing1", "hunters_space_missing2", "northandsouth_missing1", "ozma_of_oz_missing1",
    ]
    text = {r["item"]: r for r in rejects if r["item"].startswith("19-198")}
    assert set(text) == {"19-198-0100", "19-198-0101"}
    assert text["19-198-0100"]["line"] == 102 and "'&'" in text["19-198-0100"]["reason"]
    assert text["19-198-0101"]["source"] == str(csv)
    summary = {s.speaker: s for s in result.summary.speakers}
    assert summary["elliot_miller"].missing_clips == 2 and summary["elliot_miller"].clips == 20


def test_assignment_modes(corpora: tuple[Path, Path], tmp_path: Path) -> None:
    mailabs, csv = corpora
    counts = {}
    per_clip = {}
    for mode in ("cyclic", "balanced", "random"):
        result = prepare_infer_list(mailabs, [csv], None, PrepareOptions(books="all", assign=mode, seed=1))
        counts[mode] = Counter(e.style_speaker for e in result.entries)
        per_clip[mode] = Counter(e.style for e in result.entries)
        assert result.files == {}  # nothing written without an output directory
        per_speaker = {s.speaker: s for s in result.summary.speakers}
        assert sum(s.rows for s in per_speaker.values()) == 100
        if mode == "balanced":
            # Each speaker's clips are used evenly too: elliot_miller's 33 or 34 rows cover all 20 clips.
            assert per_speaker["elliot_miller"].clips_used == 20
            own = Counter(e.style for e in result.entries if e.style_speaker == "elliot_miller")
            assert max(own.values()) - min(own.values()) <= 1
    # cyclic: OpenSeq2Seq's rule; 100 rows over 26 clips = every clip 3 or 4 times, speakers in proportion.
    assert len(per_clip["cyclic"]) == 26 and set(per_clip["cyclic"].values()) == {3, 4}
    for speaker, (_, _, clips) in SPEAKERS.items():
        assert 3 * clips <= counts["cyclic"][speaker] <= 4 * clips
    assert sorted(counts["balanced"].values()) == [33, 33, 34]
    assert set(counts["random"]) <= set(SPEAKERS)


def test_assign_styles_properties() -> None:
    speakers = ["a"] * 6 + ["b"] * 2 + ["c"]
    cyclic = assign_styles(speakers, 20, "cyclic", 0)
    assert Counter(Counter(cyclic.tolist()).values()) == Counter({2: 7, 3: 2})  # 20 rows over 9 clips
    np.testing.assert_array_equal(cyclic[:9], cyclic[9:18])  # period = number of clips
    balanced = assign_styles(speakers, 30, "balanced", 0)
    assert Counter(speakers[i] for i in balanced) == {"a": 10, "b": 10, "c": 10}
    np.testing.assert_array_equal(assign_styles(speakers, 50, "random", 4), assign_styles(speakers, 50, "random", 4))
    assert not np.array_equal(assign_styles(speakers, 50, "random", 4), assign_styles(speakers, 50, "random", 5))
    with pytest.raises(ValueError, match="unknown assignment"):
        assign_styles(speakers, 5, "roundrobin", 0)


def test_prepare_cli(corpora: tuple[Path, Path], tmp_path: Path, shared_data: Path) -> None:
    mailabs, csv = corpora
    runner = CliRunner()
    result = runner.invoke(app, ["prepare", "--mailabs", str(mailabs), "--books", "elliot_miller,mary_ann",
                                 "--librispeech", str(csv), "--out", str(tmp_path / "cli"), "--assign", "balanced",
                                 "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "100 utterances" in result.output and "elliot_miller" in result.output and "mary_ann" in result.output
    assert "judy_bieber" not in result.output
    lines = (tmp_path / "cli" / "infer.jsonl").read_text().splitlines()
    assert Counter(json.loads(l)["style_speaker"] for l in lines) == {"elliot_miller": 50, "mary_ann": 50}
    bad = runner.invoke(app, ["prepare", "--mailabs", str(mailabs), "--librispeech", str(csv), "--out", str(tmp_path / "x"),
                              "--assign", "roundrobin"])
    assert bad.exit_code == 2
    none = runner.invoke(app, ["prepare", "--mailabs", str(shared_data / "M-AILABS"), "--books", "nope",
                               "--librispeech", str(csv), "--out", str(tmp_path / "y")])
    assert none.exit_code == 2 and "none of books" in none.output
