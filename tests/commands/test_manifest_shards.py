"""``trtgen manifest`` over sharded copies (``generate --layout shar|nemo-tarred``) beside copies of loose
WAV and FLAC files under one output, and on object storage: ``--check`` catches what would make a trainer
read wrong or missing data, and the configs name exactly the shards a trainer should read.

NeMo is not installed here: its shard patterns are expanded as ``expand_sharded_filepaths``
(``nemo/collections/asr/data/audio_to_text.py``) does it, with ``braceexpand``'s numeric ranges.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.commands.test_layouts import options
from trtgen.cli import app
from trtgen.commands.generate import parse_copies, run_generate
from trtgen.commands.manifests import DamagedAudioError, ManifestOptions, write_manifests
from trtgen.commands.synthetic_check import check_synthetic
from trtgen.engine.synthesis import SynthesisOptions
from trtgen.engine.vocoder import griffin_lim_preset
from trtgen.errors import UsageError

ROWS = 7
"""Rows of conftest's list: shards of 3 rows make shards 0, 1 and 2 (3, 3 and 1 rows)."""
LAYOUTS = {"sh": "shar", "nt": "nemo-tarred"}


def _run(model: Path, infer_list: Path, out: str | Path, copy: str, **overrides) -> None:
    synthesis = SynthesisOptions(batch_size=4, vocoder=griffin_lim_preset("openseq2seq"))
    run_generate(options(model, infer_list, out, copies=parse_copies(copy), synthesis=synthesis, **overrides))


@pytest.fixture(scope="module")
def mixed(small_model_dir, infer_list, tmp_path_factory) -> Path:
    """One output holding a Shar copy, a NeMo tarred copy, a WAV copy and a FLAC copy of loose files."""
    root = tmp_path_factory.mktemp("mixed") / "syn"
    _run(small_model_dir, infer_list, root, "sh:0.5:11", layout="shar", shard_utterances=3, audio_format="flac")
    _run(small_model_dir, infer_list, root, "nt:0.3:12", layout="nemo-tarred", shard_utterances=3)
    _run(small_model_dir, infer_list, root, "wv:0.5:13")
    _run(small_model_dir, infer_list, root, "fl:0.3:14", audio_format="flac")
    return root


def _commits(copy_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((copy_dir / "shards").glob("*.json"))]


def _passed(copy_dir: Path) -> list[dict]:
    return [r for c in _commits(copy_dir) for r in c["records"] if r["quality"]["ok"]]


def _copy(root: Path, tmp_path: Path) -> Path:
    target = tmp_path / "syn"
    shutil.copytree(root, target)
    return target


def nemo_expand(pattern: str) -> list[str]:
    """NeMo's ``expand_sharded_filepaths``: ``( [ < _OP_`` and ``) ] > _CL_`` become braces, then brace
    expansion (here the numeric ranges ``{a..b}``, zero-padded when an end is, as ``braceexpand`` does)."""
    for key in ("(", "[", "<", "_OP_"):
        pattern = pattern.replace(key, "{")
    for key in (")", "]", ">", "_CL_"):
        pattern = pattern.replace(key, "}")
    return _braceexpand(pattern)


def _braceexpand(pattern: str) -> list[str]:
    match = re.search(r"\{(-?\d+)\.\.(-?\d+)\}", pattern)
    if match is None:
        assert "{" not in pattern and "}" not in pattern, pattern
        return [pattern]
    left, right = match.groups()
    padded = any(s.startswith(("0", "-0")) for s in (left, right) if s not in ("0", "-0"))
    width = max(len(left), len(right)) if padded else 0
    start, end = int(left), int(right)
    step = 1 if start <= end else -1
    return [e for v in range(start, end + step, step) for e in _braceexpand(f"{pattern[:match.start()]}{v:0{width}d}{pattern[match.end():]}")]


# -- --check ---------------------------------------------------------------------------------------------


def test_check_passes_on_clean_sharded_copies_beside_wav_and_flac_copies(mixed: Path) -> None:
    report = check_synthetic(mixed)
    assert report.ok, report.problems
    assert report.checked == 4 * ROWS
    for copy, layout in LAYOUTS.items():
        assert [c["shard"] for c in _commits(mixed / copy)] == [0, 1, 2]
        assert json.loads((mixed / copy / "settings.json").read_text())["layout"] == layout
    result = CliRunner().invoke(app, ["manifest", "--check", "--synthetic", str(mixed)])
    assert result.exit_code == 0, result.output


def _flip_audio_byte(tar_path: Path) -> str:
    """Change one byte inside the first audio member of a tar; returns that member's id."""
    with tarfile.open(tar_path) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith((".flac", ".wav")))
    data = bytearray(tar_path.read_bytes())
    data[member.offset_data + member.size // 2] ^= 0xFF
    tar_path.write_bytes(bytes(data))
    return member.name.rsplit(".", 1)[0]


def _problems(root: Path) -> list[tuple[str, str, str]]:
    report = check_synthetic(root)
    return [(p.copy, p.id, p.problem) for p in report.problems]


def test_check_names_a_tar_with_a_changed_byte_and_the_member_it_hit(mixed: Path, tmp_path: Path) -> None:
    root = _copy(mixed, tmp_path)
    for copy, tar_name in (("nt", "audio_1.tar"), ("sh", "shar/recording.000001.tar")):
        member = _flip_audio_byte(root / copy / tar_name)
        problems = [p for p in _problems(root) if p[0] == copy]
        assert (copy, "shard 000001", "altered content: the file's SHA-256 is not its commit record's") in problems
        assert any(p[1] == member and "SHA-256 is not its record's audio_sha256" in p[2] for p in problems), problems
    result = CliRunner().invoke(app, ["manifest", "--check", "--synthetic", str(root)])
    assert result.exit_code == 1 and "audio_1.tar" in result.output
    # writing manifests refuses the changed shard: the tar changed after its commit record (or --verify)
    with pytest.raises(DamagedAudioError, match=r"shard file\(s\) or shard\(s\) do not match .*audio_1\.tar: altered content"):
        write_manifests(root, tmp_path / "man", options=ManifestOptions(formats=("nemo",), copies=("nt",)))


def test_check_names_a_missing_shard_file_and_a_missing_shard(mixed: Path, tmp_path: Path) -> None:
    root = _copy(mixed, tmp_path)
    (root / "sh" / "shar" / "cuts.000001.jsonl.gz").unlink()
    problems = _problems(root)
    assert [p for p in problems if p[0] == "sh"] == [
        ("sh", "shard 000001", "missing: its commit record names this file (trtgen generate --resume writes the shard again)")]
    (root / "nt" / "shards" / "000001.json").unlink()  # shards 0 and 2 committed: a gap in the numbering
    problems = [p for p in _problems(root) if p[0] == "nt"]
    assert problems[0][:2] == ("nt", "shard 000001") and "missing: shards 0..2 are numbered" in problems[0][2]
    assert "_OP_0..2_CL_" in problems[0][2]
    assert sorted(p[1] for p in problems[1:]) == ["shard 000001", "shard 000001"]  # its files are now uncommitted
    with pytest.raises(DamagedAudioError, match=r"shard 1 of copy nt is missing"):
        write_manifests(root, tmp_path / "man", options=ManifestOptions(formats=("nemo",), copies=("nt",)))


def test_check_names_files_of_an_uncommitted_shard_left_by_a_killed_run(mixed: Path, tmp_path: Path) -> None:
    root = _copy(mixed, tmp_path)
    shutil.copy(root / "nt" / "audio_2.tar", root / "nt" / "audio_3.tar")
    shutil.copy(root / "sh" / "shar" / "recording.000002.tar", root / "sh" / "shar" / "recording.000003.tar")
    (root / "nt" / "notes.txt").write_text("mine")
    problems = _problems(root)
    uncommitted = "file of a shard that was never committed, left by a run that was killed (trtgen generate --resume writes it again)"
    assert ("nt", "shard 000003", uncommitted) in problems and ("sh", "shard 000003", uncommitted) in problems
    assert ("nt", "-", "stray: no shard commit record names this file") in problems and len(problems) == 3
    # NeMo's pattern names shards 0..2 only: listed, with a note; a Shar directory is read whole: refused
    result = write_manifests(root, tmp_path / "man", options=ManifestOptions(formats=("nemo",), copies=("nt",)))
    assert any("shard(s) 3 were never committed" in n for n in result.notes)
    with pytest.raises(DamagedAudioError, match=r"recording\.000003\.tar: no commit record names this file, and trainers read .*/sh/shar whole"):
        write_manifests(root, tmp_path / "man2", options=ManifestOptions(formats=("nemo",), copies=("sh",)))


def test_check_finds_a_stray_flac_in_a_flac_copy_of_loose_files(mixed: Path, tmp_path: Path) -> None:
    root = _copy(mixed, tmp_path)
    first = sorted((root / "fl").glob("*.flac"))[0]
    shutil.copy(first, root / "fl" / "stray-1.flac")
    assert _problems(root) == [("fl", "stray-1", "stray: no record names this file")]


# -- manifests and configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("relative", [False, True])
def test_mix_names_every_shard_by_pattern_and_lhotse_loads_every_cut(mixed: Path, tmp_path: Path, shared_data: Path, monkeypatch,
                                                                      relative: bool) -> None:
    yaml = pytest.importorskip("yaml")
    lhotse = pytest.importorskip("lhotse")
    out = tmp_path / "man"
    result = write_manifests(mixed, out, [shared_data / "LibriSpeech"],
                             ManifestOptions(mix=0.5, splits="all", formats=("nemo", "lhotse"), relative_to=tmp_path if relative else None))
    monkeypatch.chdir(tmp_path)  # relative paths: the trainer runs from --relative-to
    passed = {copy: len(_passed(mixed / copy)) for copy in LAYOUTS}
    loose = result.counts["synthetic_rows"]
    total = loose + sum(passed.values())
    for name, kind in (("nemo_input_cfg.yaml", "nemo"), ("nemo_input_cfg_lhotse.yaml", "lhotse")):
        text = (out / name).read_text()
        assert "force_iterable_dataset=true" in text.splitlines()[1]
        entries = yaml.safe_load(text)
        assert [e["type"] for e in entries] == [kind, kind, "nemo_tarred", "lhotse_shar"]  # copies in name order: nt, sh
        assert [e["tags"]["synthetic"] for e in entries] == [False, True, True, True]
        assert entries[0]["weight"] == 0.5 and sum(e["weight"] for e in entries[1:]) == pytest.approx(0.5)
        assert entries[1]["weight"] == pytest.approx(0.5 * loose / total)
        tarred, shar = entries[2], entries[3]
        assert shar["weight"] == pytest.approx(0.5 * passed["sh"] / total)
        assert tarred["weight"] == pytest.approx(0.5 * passed["nt"] / total)
        assert Path(shar["shar_path"]).is_absolute() != relative and Path(tarred["manifest_filepath"]).is_absolute() != relative
        # NeMo's expansion of the patterns gives exactly the copy's shard files, in shard order
        copy = mixed / "nt"
        tars = nemo_expand(tarred["tarred_audio_filepaths"])
        manifests = nemo_expand(tarred["manifest_filepath"])
        assert [Path(p).resolve() for p in tars] == [copy / f"audio_{k}.tar" for k in range(3)]
        assert [Path(p).resolve() for p in manifests] == [copy / "sharded_manifests" / f"manifest_{k}.json" for k in range(3)]
        assert sorted(copy.glob("audio_*.tar")) == sorted(Path(p).resolve() for p in tars)
        assert sorted((copy / "sharded_manifests").glob("*.json")) == sorted(Path(p).resolve() for p in manifests)
        members = []
        for manifest, tar in zip(manifests, tars):  # what NeMo pairs: manifest lines and tar members by name
            with tarfile.open(tar) as archive:
                names = archive.getnames()
            assert [json.loads(line)["audio_filepath"] for line in Path(manifest).read_text().splitlines()] == names
            members += names
        assert members == [r["audio"] for r in _passed(copy)]
        # Lhotse (and NeMo's lhotse_shar) reads the Shar directory whole: every cut of every shard
        cuts = list(lhotse.CutSet.from_shar(in_dir=shar["shar_path"]))
        assert [c.id for c in cuts] == [r["audio"].rsplit(".", 1)[0] for r in _passed(mixed / "sh")]
        assert all(c.load_audio().shape[1] == c.recording.num_samples for c in cuts[:2])
    sharded = result.counts["sharded"]
    assert {k: (v["layout"], v["shards"], v["utterances"]) for k, v in sharded.items()} == {
        copy: (layout, 3, passed[copy]) for copy, layout in LAYOUTS.items()}
    durations = sum(r["duration_s"] for r in _passed(mixed / "nt"))
    assert sharded["nt"]["duration_s"] == pytest.approx(durations, abs=1e-3)
    failed = {copy: ROWS - passed[copy] for copy in LAYOUTS}
    assert {k: result.failed.per_copy[k] for k in LAYOUTS} == failed and result.failed.in_shards == sum(failed.values())
    # the per-copy settings: NeMo's tarred keys and Lhotse's shar_path, the same patterns
    tarred_yaml = yaml.safe_load((out / "nemo_tarred.yaml").read_text())
    assert tarred_yaml == {"nt": {"is_tarred": True, "manifest_filepath": tarred["manifest_filepath"],
                                  "tarred_audio_filepaths": tarred["tarred_audio_filepaths"], "shard_manifests": True,
                                  "tarred_shard_strategy": "scatter"}}
    assert yaml.safe_load((out / "lhotse_shar.yaml").read_text()) == {"sh": {"shar_path": shar["shar_path"]}}
    # the physical mix draws from the copies of loose files only, and says so
    mix = [json.loads(line) for line in (out / "nemo_mix.jsonl").read_text().splitlines()]
    assert {row["copy"] for row in mix if row["synthetic"]} <= {"wv", "fl"}
    assert any("physical mixes draw their synthetic rows from the copies of loose files (fl, wv) only" in n for n in result.notes)


def test_flac_copies_of_loose_files_are_listed_with_their_durations(mixed: Path, tmp_path: Path) -> None:
    result = write_manifests(mixed, tmp_path / "man", options=ManifestOptions(formats=("nemo", "lhotse"), copies=("fl",)))
    rows = [json.loads(line) for line in (tmp_path / "man" / "nemo_synthetic.jsonl").read_text().splitlines()]
    assert rows and all(row["audio_filepath"].endswith(".flac") and Path(row["audio_filepath"]).is_file() for row in rows)
    assert all(row["sampling_rate"] == 16000 and row["duration"] > 0 for row in rows)
    with gzip.open(tmp_path / "man" / "lhotse_synthetic_recordings.jsonl.gz", "rt") as handle:
        assert len(handle.read().splitlines()) == len(rows) == result.counts["synthetic_rows"]


def test_openseq2seq_leaves_out_sharded_and_flac_copies_and_refuses_when_nothing_is_left(mixed: Path, tmp_path: Path) -> None:
    result = write_manifests(mixed, tmp_path / "man", options=ManifestOptions())
    csv = (tmp_path / "man" / "synthetic_data.csv").read_text().splitlines()
    assert len(csv) == 1 + ROWS - result.failed.per_copy["wv"] and all(".flac" not in line for line in csv)
    assert '"syn_subdirs": ["wv"],' in result.openseq2seq_config
    note = next(n for n in result.notes if n.startswith("openseq2seq:"))
    assert "copy sh (written as shards (--layout shar))" in note and "copy nt" in note and "copy fl (FLAC" in note
    assert (tmp_path / "man" / "nemo_tarred.yaml").is_file() and (tmp_path / "man" / "lhotse_shar.yaml").is_file()
    with pytest.raises(UsageError, match=r"^--formats openseq2seq: OpenSeq2Seq reads loose WAV files, and copy sh is written as shards "
                                         r"\(--layout shar\): make it with --layout files --audio-format wav"):
        write_manifests(mixed, tmp_path / "man2", options=ManifestOptions(formats=("openseq2seq",), copies=("sh", "nt")))
    result = CliRunner().invoke(app, ["manifest", "--synthetic", str(mixed), "--out", str(tmp_path / "man3"), "--copies", "nt",
                                      "--formats", "openseq2seq"])
    assert result.exit_code == 2 and "--layout files" in result.output and not (tmp_path / "man3").exists()
    result = CliRunner().invoke(app, ["manifest", "--synthetic", str(mixed), "--out", str(tmp_path / "man4"), "--copies", "nt,wv"])
    assert result.exit_code == 1  # some utterances failed the quality check: left out, as for loose files
    assert "sharded copy nt: nemo-tarred, 3 shard(s)" in result.output and "openseq2seq: copy nt" in result.output


# -- object storage -----------------------------------------------------------------------------------------


def test_sharded_copies_on_object_storage_are_checked_and_named_by_url(small_model_dir, infer_list, s3_bucket: str, tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    url = f"{s3_bucket}/syn"
    _run(small_model_dir, infer_list, url, "nt:0.3:12", layout="nemo-tarred", shard_utterances=3)
    _run(small_model_dir, infer_list, url, "sh:0.5:11", layout="shar", shard_utterances=3)
    report = check_synthetic(url)
    assert report.ok and report.checked == 2 * ROWS, report.problems
    result = CliRunner().invoke(app, ["manifest", "--synthetic", url, "--out", str(tmp_path / "man"), "--formats", "nemo,lhotse"])
    assert result.exit_code in (0, 1), result.output
    tarred = yaml.safe_load((tmp_path / "man" / "nemo_tarred.yaml").read_text())["nt"]
    assert tarred["tarred_audio_filepaths"] == f"{url}/nt/audio__OP_0..2_CL_.tar"
    assert nemo_expand(tarred["manifest_filepath"]) == [f"{url}/nt/sharded_manifests/manifest_{k}.json" for k in range(3)]
    assert yaml.safe_load((tmp_path / "man" / "lhotse_shar.yaml").read_text()) == {"sh": {"shar_path": f"{url}/sh/shar"}}
    # a byte changed on the store: the check names the shard
    from trtgen.storage import Storage

    storage = Storage.at(f"{url}/nt")
    data = bytearray(storage.read_bytes("audio_0.tar"))
    data[2048] ^= 0xFF
    storage.write_bytes("audio_0.tar", bytes(data))
    result = CliRunner().invoke(app, ["manifest", "--check", "--synthetic", url])
    assert result.exit_code == 1 and "nt shard 000000: altered content" in result.output
    assert "--out" in CliRunner().invoke(app, ["manifest", "--synthetic", url, "--out", f"{s3_bucket}/man"]).output
