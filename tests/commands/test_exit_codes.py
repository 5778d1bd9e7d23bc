"""The exit codes the README and ``--help`` document, each from a real run of the command line:
0 done; 1 done with rejected rows; 2 refused before any work; 3 failed part way (resumable)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trtgen.cli import app
from trtgen.commands.demo import demo_rows
from trtgen.fileio import write_jsonl


def _list(tmp_path: Path, sentences: int = 1, extra: list[dict] | None = None) -> Path:
    path = tmp_path / "infer.jsonl"
    write_jsonl(path, demo_rows(sentences) + (extra or []))
    return path


def _generate(*arguments: str):
    return CliRunner().invoke(app, ["generate", "--copies", "c:0.5:1", "--batch-size", "4", "--threads", "2", *arguments])


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


def test_3_when_interrupted_with_ctrl_c(tmp_path: Path) -> None:
    listing, out = _list(tmp_path, sentences=6), tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "trtgen", "generate", "--list", str(listing), "--out", str(out), "--copies", "c:0.5:1",
         "--batch-size", "2", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    deadline = time.monotonic() + 120
    while not list((out / "c").glob("*.wav")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 3, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
