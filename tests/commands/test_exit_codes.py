"""The exit codes the README and ``--help`` document, each from a real run of the command line:
0 done; 1 done with rejected rows; 2 refused before any work; 3 failed part way (resumable).

Disk full and read-only output are real: a small tmpfs, a read-only tmpfs (mounting needs root or
CAP_SYS_ADMIN; elsewhere these tests are skipped, saying so); a permission error comes from running
the command as root without CAP_DAC_OVERRIDE (``setpriv``), whom permission bits stop.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from typer.testing import CliRunner

from trtgen.cli import app
from trtgen.commands.demo import demo_rows
from trtgen.engine.artifact import default_model_dir
from trtgen.fileio import write_jsonl


def _list(tmp_path: Path, sentences: int = 1, extra: list[dict] | None = None) -> Path:
    path = tmp_path / "infer.jsonl"
    write_jsonl(path, demo_rows(sentences) + (extra or []))
    return path


def _generate(*arguments: str):
    return CliRunner().invoke(app, ["generate", "--copies", "c:0.5:1", "--batch-size", "4", "--threads", "2", *arguments])


def _start(listing: Path, out: Path) -> subprocess.Popen:
    """``trtgen generate`` in its own process, as a user runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "trtgen", "generate", "--list", str(listing), "--out", str(out), "--copies", "c:0.5:1",
         "--batch-size", "2", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def _wait_for_a_wav(directory: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while not list(directory.glob("*.wav")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be stopped"


def _records(copy: Path) -> list[dict]:
    return [json.loads(line) for line in (copy / "records.jsonl").read_text().splitlines()]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, Path]:
    """A one-sentence list (4 utterances) and the output of one uninterrupted run over it."""
    directory = tmp_path_factory.mktemp("uninterrupted")
    listing = _list(directory)
    result = _generate("--list", str(listing), "--out", str(directory / "out"))
    assert result.exit_code == 0, result.output
    return listing, directory / "out"


def _mount_tmpfs(directory: Path, options: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command here: a disk-full or read-only file system cannot be made")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")


@pytest.fixture()
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """Where a test mounts a tmpfs of its choosing (``_mount_tmpfs``); unmounted afterwards."""
    directory = tmp_path / "fs"
    yield directory
    if os.path.ismount(directory):
        subprocess.run(["umount", "-l", str(directory)], check=False)


def test_help_documents_the_exit_codes() -> None:
    for command in ([], ["generate"], ["manifest"]):
        result = CliRunner().invoke(app, [*command, "--help"])
        assert "Exit codes: 0 done; 1" in " ".join(result.output.split())


def test_0_when_every_row_is_written(tmp_path: Path) -> None:
    result = _generate("--list", str(_list(tmp_path)), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out" / "c").glob("*.wav"))) == 4


def test_1_when_some_rows_are_rejected_and_the_others_written(tmp_path: Path) -> None:
    bad = [{"id": "no-clip", "text": "Hello.", "style": str(tmp_path / "absent.wav")}]
    result = _generate("--list", str(_list(tmp_path, extra=bad)), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1, result.output
    assert "1 row(s) rejected" in result.output
    assert len(list((tmp_path / "out" / "c").glob("*.wav"))) == 4
    rejects = [json.loads(line) for line in (tmp_path / "out" / "c" / "rejects.jsonl").read_text().splitlines()]
    assert [r["item"] for r in rejects] == ["no-clip"]


@pytest.mark.parametrize(
    "arguments, reason",
    [
        (["--format", "mp3"], "--format 'mp3'"),
        (["--limit", "-1"], "--limit -1"),
        (["--batch-size", "0"], "batch-size must be at least 1"),
        (["--copies", "c:1.5"], "dropout rate 1.5"),
        (["--shard", "3/2"], "--shard '3/2'"),
        (["--backend", "magic"], "--backend 'magic'"),
        (["--vocoder", "magic"], "unknown Griffin-Lim preset 'magic'"),
        (["--naming", "magic"], "--naming 'magic'"),
        (["--threads", "0"], "--threads 0"),
    ],
)
def test_2_for_a_bad_option_with_nothing_written(tmp_path: Path, arguments: list[str], reason: str) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generate", "--list", str(_list(tmp_path)), "--out", str(out), *arguments])
    assert result.exit_code == 2, result.output
    assert reason in result.output
    assert len(result.output.strip().splitlines()) == 1, "one line, no traceback"
    assert not out.exists(), "a refused run must not touch --out"


def test_2_for_a_missing_list_style_root_or_broken_model(tmp_path: Path) -> None:
    listing = _list(tmp_path)
    cases = {
        "no such file": ["--list", str(tmp_path / "nope.jsonl")],
        "no such directory": ["--list", str(listing), "--style-root", str(tmp_path / "nowhere")],
    }
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "model.json").write_text("[]")
    cases["a model card is a JSON object"] = ["--list", str(listing), "--model", str(broken)]
    for reason, arguments in cases.items():
        result = _generate(*arguments, "--out", str(tmp_path / "out"))
        assert result.exit_code == 2, (reason, result.output)
        assert reason in result.output
        assert not (tmp_path / "out").exists()


def test_2_when_out_is_a_file_and_the_file_is_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"not a directory")
    result = _generate("--list", str(_list(tmp_path)), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "a file, not a directory" in result.output and len(result.output.strip().splitlines()) == 1
    assert out.read_bytes() == b"not a directory"


def test_2_when_two_copies_would_share_manifest_ids_before_any_audio(tmp_path: Path) -> None:
    """``x`` in copy ``a_b`` and ``x_a`` in copy ``b`` would both be ``x_a_b`` in every manifest."""
    style = demo_rows(1)[0]["style"]
    listing = tmp_path / "infer.jsonl"
    write_jsonl(listing, [{"id": "x", "text": "One sentence.", "style": style}, {"id": "x_a", "text": "Another one.", "style": style}])
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generate", "--list", str(listing), "--out", str(out), "--copies", "a_b:0.5:1,b:0.5:2"])
    assert result.exit_code == 2, result.output
    assert "'x_a_b'" in result.output and "'x'" in result.output and "'x_a'" in result.output
    assert not out.exists()
    # The same against a copy already under --out: made first, the second run is refused before any audio.
    assert CliRunner().invoke(app, ["generate", "--list", str(listing), "--out", str(out), "--copies", "b:0.5:2"]).exit_code == 0
    result = CliRunner().invoke(app, ["generate", "--list", str(listing), "--out", str(out), "--copies", "a_b:0.5:1"])
    assert result.exit_code == 2 and "already under --out" in result.output, result.output
    assert not (out / "a_b").exists()


def test_2_when_manifest_out_is_inside_a_copy_and_the_copy_is_untouched(uninterrupted: tuple[Path, Path]) -> None:
    _, out = uninterrupted
    before = _files(out)
    for inside in (out / "c", out / "c" / "manifests"):
        result = CliRunner().invoke(app, ["manifest", "--synthetic", str(out), "--out", str(inside)])
        assert result.exit_code == 2, result.output
        assert "inside the copy directory" in result.output and len(result.output.strip().splitlines()) == 1
    assert _files(out) == before


def test_generate_loads_its_model_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trtgen.engine.artifact import ModelCard

    reads = []
    original = ModelCard.from_json  # every load of a model directory reads its card through this
    monkeypatch.setattr(ModelCard, "from_json", staticmethod(lambda *a, **k: reads.append(1) or original(*a, **k)))
    result = _generate("--list", str(_list(tmp_path)), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert len(reads) == 1, f"the model card was read {len(reads)} times"


def test_3_when_writing_fails_part_way_and_resume_then_finishes(tmp_path: Path) -> None:
    listing, out = _list(tmp_path), tmp_path / "out"
    blocked = out / "c" / f"{demo_rows(1)[2]['id']}.wav"
    blocked.mkdir(parents=True)  # a directory where a WAV must go: the rename onto it fails
    result = _generate("--list", str(listing), "--out", str(out))
    assert result.exit_code == 3, result.output
    assert str(blocked) in result.output
    blocked.rmdir()
    result = _generate("--list", str(listing), "--out", str(out), "--resume")
    assert result.exit_code == 0, result.output
    assert len(list((out / "c").glob("*.wav"))) == 4


def test_2_for_a_card_field_of_the_wrong_type(tmp_path: Path) -> None:
    card = json.loads((default_model_dir() / "model.json").read_text())
    card["model"]["prenet_dropout"] = "high"
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "model.json").write_text(json.dumps(card))
    result = _generate("--list", str(_list(tmp_path)), "--model", str(broken), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert f"{broken / 'model.json'}: model: field 'prenet_dropout' must be float, not 'high'" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_1_for_unspeakable_text_and_unsafe_ids_and_resume_goes_past_them(tmp_path: Path) -> None:
    clip = demo_rows(1)[0]["style"]
    rows = demo_rows(1)[:2] + [
        {"id": "cjk", "text": "Hello \u4e16\u754c friend.", "style": clip},
        {"id": "emoji", "text": "\u4f60\u597d \U0001F600\U0001F389", "style": clip},
        {"id": "symbols", "text": "Mr. & Mrs. Smith paid $5 \u00a9 2024.", "style": clip},
        {"id": "x" * 300, "text": "Hello.", "style": clip},
        {"id": "nul\u0000byte", "text": "Hello.", "style": clip},
        {"id": "new\nline", "text": "Hello.", "style": clip},
        {"id": "CON", "text": "Hello.", "style": clip},
        {"id": ".hidden", "text": "Hello.", "style": clip},
        {"id": "a/b", "text": "Hello.", "style": clip},
        {"id": "spaced", "text": "  Two   spaces\there. ", "style": clip},
    ]
    listing, out = tmp_path / "infer.jsonl", tmp_path / "out"
    write_jsonl(listing, rows)
    result = _generate("--list", str(listing), "--out", str(out))
    assert result.exit_code == 1, result.output
    assert "9 row(s) rejected" in result.output and "Traceback" not in result.output
    rejects = {r["line"]: r for r in map(json.loads, (out / "c" / "rejects.jsonl").read_text().splitlines())}
    assert "'\u4e16' (U+4E16) at 6, '\u754c' (U+754C) at 7" in rejects[3]["reason"]
    assert "'\U0001F600' (U+1F600)" in rejects[4]["reason"] and "another script, an emoji" in rejects[4]["reason"]
    assert "'&' (U+0026)" in rejects[5]["reason"] and "'$' (U+0024)" in rejects[5]["reason"] and "'\u00a9'" in rejects[5]["reason"]
    assert "cannot be a file name: longer than 200 bytes" in rejects[6]["reason"]
    assert "U+0000" in rejects[7]["reason"] and "U+000A" in rejects[8]["reason"]
    assert "reserved on Windows" in rejects[9]["reason"] and "starts with '.'" in rejects[10]["reason"]
    assert "'/'" in rejects[11]["reason"]
    assert sorted(p.name for p in (out / "c").glob("*.wav")) == sorted(f"{r['id']}.wav" for r in rows[:2] + rows[-1:])
    spaced = {r["id"]: r for r in _records(out / "c")}["spaced"]
    assert spaced["text"] == "Two spaces here." and spaced["text_input"] == rows[-1]["text"]  # the label is what was spoken
    before = _files(out)
    result = _generate("--list", str(listing), "--out", str(out), "--resume")
    assert result.exit_code == 1 and "9 row(s) rejected" in result.output, result.output
    assert _files(out) == before, "nothing made again, the same rejects"


def test_2_when_another_run_writes_the_same_copy(tmp_path: Path) -> None:
    listing, out = _list(tmp_path, sentences=6), tmp_path / "out"
    first = _start(listing, out)
    _wait_for_a_wav(out / "c", first)
    first.send_signal(signal.SIGSTOP)  # still holding the lock, whatever the machine's speed
    try:
        second = _generate("--list", str(listing), "--out", str(out))
        busy = CliRunner().invoke(app, ["manifest", "--synthetic", str(out), "--check"])
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.exit_code == 2, second.output
    assert f"is being written by another trtgen generate (pid {first.pid} on host" in second.output
    assert busy.exit_code == 1 and f"being written now (pid {first.pid} on host" in busy.output
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert len(_records(out / "c")) == len(list((out / "c").glob("*.wav"))) == 24, "nothing lost"
    check = CliRunner().invoke(app, ["manifest", "--synthetic", str(out), "--check"])
    assert check.exit_code == 0, check.output


def test_3_when_the_disk_fills_then_resume_finishes_byte_identical(tmpfs: Path, uninterrupted: tuple[Path, Path]) -> None:
    listing, reference = uninterrupted
    _mount_tmpfs(tmpfs, "size=200k")  # room for the settings and two of the four WAVs
    out = tmpfs / "out"
    result = _generate("--list", str(listing), "--out", str(out))
    assert result.exit_code == 3, result.output
    assert f"no space left on device while writing {out / 'c'}" in result.output
    assert "free space and rerun with --resume" in result.output and "Traceback" not in result.output
    assert 0 < len(_records(out / "c")) == len(list((out / "c").glob("*.wav"))) < 4
    assert not (out / "c" / ".staging").exists() and not (out / "c" / ".lock").exists()
    subprocess.run(["mount", "-o", "remount,size=8m", str(tmpfs)], check=True)  # space freed
    result = _generate("--list", str(listing), "--out", str(out), "--resume")
    assert result.exit_code == 0, result.output
    assert _files(out) == _files(reference)


def test_3_for_a_read_only_output(tmpfs: Path) -> None:
    _mount_tmpfs(tmpfs, "ro,size=64k")
    result = _generate("--list", str(_list(tmpfs.parent)), "--out", str(tmpfs / "out"))
    assert result.exit_code == 3, result.output
    assert f"read-only file system while creating {tmpfs / 'out' / 'c'}; choose a writable --out" in result.output


def test_3_for_an_output_it_may_not_write(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv: root without CAP_DAC_OVERRIDE is the user whom permission bits stop")
    listing, locked = _list(tmp_path), tmp_path / "locked"
    locked.mkdir(mode=0o555)
    result = subprocess.run(
        ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", sys.executable, "-m", "trtgen", "generate",
         "--list", str(listing), "--out", str(locked / "out"), "--copies", "c:0.5:1"],
        capture_output=True, text=True,
    )
    assert result.returncode == 3, result.stderr
    assert f"permission denied while creating {locked / 'out' / 'c'}; check the permissions" in result.stderr


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "ctrl-c"])
def test_3_when_stopped_by_a_signal_after_the_utterance_being_written(tmp_path: Path, stop: signal.Signals) -> None:
    listing, out = _list(tmp_path, sentences=6), tmp_path / "out"
    process = _start(listing, out)
    _wait_for_a_wav(out / "c", process)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 3, stderr
    assert "Traceback" not in stderr and "already done" in stderr  # the table of what was done
    records = _records(out / "c")
    assert 0 < len(records) < 24
    assert f"stopped by {stop.name} after the utterance being written: {len(records)} utterance(s) written" in stderr
    assert sorted(f"{r['id']}.wav" for r in records) == sorted(p.name for p in (out / "c").glob("*.wav")), "every WAV recorded"
    assert [r["index"] for r in records] == sorted(r["index"] for r in records), "records in list order"
    assert not (out / "c" / ".staging").exists() and not (out / "c" / ".lock").exists()
    command = shlex.split(stderr.split("resume with: ")[1].splitlines()[0])
    assert command[:2] == ["trtgen", "generate"] and command[-1] == "--resume"
    resumed = subprocess.run([sys.executable, "-m", "trtgen", *command[1:]], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert len(_records(out / "c")) == len(list((out / "c").glob("*.wav"))) == 24
