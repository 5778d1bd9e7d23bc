"""The copy directory's writer: one writer per copy (a real flock; shards side by side), records kept
whatever the selection, and the WAV's digest taken from the bytes written."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from trtgen.commands.copylock import CopyLocked, lock_holders
from trtgen.commands.writers import CopyWriter, Expected, ResumeState, AudioEncoding, UtteranceRecord, write_utterance_audio

SETTINGS = {"sample_rate": 16000, "sample_format": "pcm16", "copy": "c"}
PCM16 = AudioEncoding("wav", "pcm16", 16000, 16000)


def _writer(directory: Path, shard: tuple[int, int] | None = None) -> CopyWriter:
    return CopyWriter(directory, dict(SETTINGS), shard=shard, naming="id")


def _record(directory: Path, utterance_id: str, samples: int = 1600) -> UtteranceRecord:
    written = write_utterance_audio(directory, f"{utterance_id}.wav", np.full(samples, 0.1, np.float32), PCM16)
    return UtteranceRecord(
        id=utterance_id, index=0, text="t", style="s.wav", copy="c", dropout=0.5, seed=1, frames=10, steps=10,
        duration_s=samples / 16000, stopped=True, capped=False, audio=written.name, audio_bytes=written.size_bytes,
        audio_sha256=written.sha256, inputs_sha256=f"inputs-of-{utterance_id}",
    )


def _expected(*ids: str) -> dict[str, Expected]:
    return {i: Expected(f"{i}.wav", f"inputs-of-{i}") for i in ids}


def test_a_second_unsharded_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = _writer(tmp_path / "c")
    first.open(resume=False, expected={})
    first.start()
    with pytest.raises(CopyLocked, match=rf"is being written by another trtgen generate \(pid {os.getpid()} on host .*--shard I/N"):
        _writer(tmp_path / "c").open(resume=True, expected={})
    assert [h.pid for h in lock_holders(tmp_path / "c")] == [os.getpid()]
    first.close([], [])
    assert not (tmp_path / "c" / ".lock").exists() and lock_holders(tmp_path / "c") == []
    second = _writer(tmp_path / "c")
    second.open(resume=True, expected={})  # free again
    second.start()
    second.close([], [])


def test_shards_write_side_by_side_but_never_beside_an_unsharded_run(tmp_path: Path) -> None:
    shards = [_writer(tmp_path / "c", (i, 2)) for i in range(2)]
    for shard in shards:
        shard.open(resume=False, expected={})
        shard.start()
    with pytest.raises(CopyLocked, match=r"shard 0/2, pid .*; shard 1/2, pid "):
        _writer(tmp_path / "c").open(resume=True, expected={})
    with pytest.raises(CopyLocked, match=r"shard 1/2, pid .*never beside an unsharded run or another process of the same shard"):
        _writer(tmp_path / "c", (1, 2)).open(resume=True, expected={})
    shards[0].close([], [])
    assert (tmp_path / "c" / ".lock").exists(), "shard 1 still holds the shared lock"
    with pytest.raises(CopyLocked):
        _writer(tmp_path / "c").open(resume=True, expected={})
    shards[1].close([], [])
    assert not list((tmp_path / "c").glob(".lock*")), "the last shard out removes the lock files"
    unsharded = _writer(tmp_path / "c")
    unsharded.open(resume=True, expected={})
    unsharded.start()
    with pytest.raises(CopyLocked, match=r"\(pid \d+ on host"):
        _writer(tmp_path / "c", (0, 2)).open(resume=True, expected={})
    unsharded.close([], [])


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    code = (
        "import os, sys; from trtgen.commands.writers import CopyWriter; "
        f"w = CopyWriter({str(directory)!r}, {SETTINGS!r}, shard=None, naming='id'); w.open(resume=False, expected={{}}); "
        "os.kill(os.getpid(), 9)"
    )
    killed = subprocess.run([sys.executable, "-c", code])
    assert killed.returncode == -9
    assert (directory / ".lock").exists() and json.loads((directory / ".lock").read_text())["pid"] > 0
    writer = _writer(directory)
    writer.open(resume=True, expected={})  # the kernel released the dead process's flock
    writer.start()
    assert [h.pid for h in lock_holders(directory)] == [os.getpid()]
    writer.close([], [])


def test_the_wav_digest_is_that_of_the_file_written(tmp_path: Path) -> None:
    written = write_utterance_audio(tmp_path, "a.wav", np.linspace(-1.5, 1.5, 999, dtype=np.float32), PCM16)
    data = (tmp_path / "a.wav").read_bytes()
    assert written.sha256 == hashlib.sha256(data).hexdigest() and written.size_bytes == len(data)
    audio, rate = sf.read(tmp_path / "a.wav", dtype="float32")
    assert rate == 16000 and len(audio) == 999 and np.abs(audio).max() <= 1.0  # scaled, not clipped
    assert not list((tmp_path / ".staging").rglob("*.wav")), "nothing left in staging"


def test_resume_keeps_only_utterances_with_the_same_inputs_and_an_intact_file(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    writer = _writer(directory)
    writer.open(resume=False, expected=_expected("same", "changed", "missing", "altered", "outside"))
    writer.start()
    for utterance_id in ("same", "changed", "missing", "altered", "outside"):
        writer.append(_record(directory, utterance_id))
    writer.close(["same", "changed", "missing", "altered", "outside"], [])
    (directory / "missing.wav").unlink()
    altered = directory / "altered.wav"
    altered.write_bytes(altered.read_bytes()[:44] + bytes(altered.stat().st_size - 44))  # samples zeroed
    expected = _expected("same", "changed", "missing", "altered")
    expected["changed"] = Expected("changed.wav", "other inputs")
    writer = _writer(directory)
    states = writer.open(resume=True, expected=expected).states
    writer.start()
    assert states == {ResumeState.DONE: 1, ResumeState.CHANGED: 1, ResumeState.MISSING: 1, ResumeState.ALTERED: 1}
    assert set(writer.completed) == {"same"}
    writer.append(_record(directory, "changed"))
    writer.close(["changed", "same", "missing", "altered"], [])
    lines = [json.loads(line)["id"] for line in (directory / "records.jsonl").read_text().splitlines()]
    # In list order; "outside" (a row this run did not select, its file in place) is kept, after them.
    assert lines == ["changed", "same", "outside"]


def test_a_shard_that_must_remove_a_record_a_running_shard_owns_is_refused(tmp_path: Path) -> None:
    """Row "x" recorded by shard 1/2, which is still running; a shard 0/3 run whose list changed "x" must
    remove that record before making it again: refused (exit 2), naming the running shard, nothing written."""
    directory = tmp_path / "c"
    running = _writer(directory, (1, 2))
    running.open(resume=False, expected=_expected("x"))
    running.start()
    running.append(_record(directory, "x"))
    before = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file() and not p.name.startswith(".lock")}
    other = _writer(directory, (0, 3))
    with pytest.raises(CopyLocked, match=r"records 'x', which this run must make again, and shard 1/2 \(shard 1/2, pid \d+"):
        other.open(resume=True, expected={"x": Expected("x.wav", "changed inputs")})
    assert {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file() and not p.name.startswith(".lock")} == before
    running.close(["x"], [])
    # Once shard 1/2 has finished, the same run takes its file's lock, removes the record and goes on.
    other = _writer(directory, (0, 3))
    assert other.open(resume=True, expected={"x": Expected("x.wav", "changed inputs")}).states == {ResumeState.CHANGED: 1}
    other.start()
    assert (directory / "records.shard-1-of-2.jsonl").read_text() == ""
    other.close(["x"], [])
