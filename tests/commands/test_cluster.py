"""``trtgen generate --ray`` on real Ray instances on this machine: the same files as one process, whatever
happens to the workers or the driver.

A handful of tests, since Ray takes seconds to start: a private instance (``--ray local``), then one
two-node cluster started with ``ray start`` exactly as a user would (a head and a second node, one CPU
each, separate processes), shared by the multi-node, worker-kill and driver-kill tests. The shipped
voice speaks the demo sentences in its four styles, in two copies, plus two rows that must be rejected.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from trtgen.commands.demo import demo_rows
from trtgen.fileio import write_jsonl

COPIES = "a:0.5:1,b:0.3:2"
BAD_ROWS = [
    {"id": "no-clip", "text": "A clip that is not there.", "style": "/nonexistent/clip.wav"},
    {"id": "chinese", "text": "你好世界", "style": demo_rows(1)[0]["style"]},
]
RAY_ENV = dict(os.environ, RAY_AUTH_MODE="token", RAY_DISABLE_USAGE_STATS="1", PYTHONUNBUFFERED="1")
"""Ray 2.60 secures a cluster with a token (``~/.ray/auth_token``, shared here by every node: one home)."""


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _generate(listing: Path, out: Path, *arguments: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "trtgen", "generate", "--list", str(listing), "--out", str(out), "--copies", COPIES, *arguments]
    return subprocess.Popen(command, env=RAY_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen, expected: int = 1) -> str:
    """Wait for a run; it must exit ``expected`` (1: the two bad rows are rejected, the rest written)."""
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == expected, stderr[-3000:]
    return stdout + stderr


def _ray(*arguments: str) -> None:
    subprocess.run([str(Path(sys.executable).with_name("ray")), *arguments], env=RAY_ENV, check=True, capture_output=True, timeout=180)


def _wait_for_wavs(root: Path, process: subprocess.Popen, count: int = 1) -> None:
    deadline = time.monotonic() + 300
    while len(list(root.glob("*/*.wav"))) < count:
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no WAV appeared"
        time.sleep(0.05)


def _worker_rows(output: str) -> list[str]:
    """Rows of the end-of-run workers table (``host:pid`` in the first column)."""
    return [line for line in output.splitlines() if line.count("│") > 5 and line.split("│")[1].strip().rpartition(":")[2].isdigit()]


@pytest.fixture(scope="module")
def listing(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("list") / "infer.jsonl"
    write_jsonl(path, demo_rows(6) + BAD_ROWS)
    return path


@pytest.fixture(scope="module")
def single_process(listing: Path, tmp_path_factory) -> dict[str, bytes]:
    """The files of one ordinary process: what every Ray run must write, byte for byte."""
    out = tmp_path_factory.mktemp("single")
    _finish(_generate(listing, out))
    return _files(out)


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A head and a second node on this machine, one CPU each (``ray start``); ``ray stop`` at the end."""
    _ray("stop", "--force")
    _ray("start", "--head", "--num-cpus", "1", "--include-dashboard", "false", "--disable-usage-stats")
    try:
        _ray("start", "--address", "127.0.0.1:6379", "--num-cpus", "1")
        yield
    finally:
        _ray("stop", "--force")


def test_local_ray_writes_the_files_of_one_process(listing: Path, single_process: dict[str, bytes], tmp_path: Path) -> None:
    output = _finish(_generate(listing, tmp_path, "--ray", "local", "--workers", "2", "--threads", "1"))
    assert _files(tmp_path) == single_process
    assert "4 row(s) rejected" in output  # two rows in each of the two copies
    assert "workers (start-up" in output, "the per-worker table"


def test_two_nodes_started_with_ray_start(cluster: None, listing: Path, single_process: dict[str, bytes], tmp_path: Path) -> None:
    output = _finish(_generate(listing, tmp_path, "--ray", "auto", "--workers", "2"))
    assert _files(tmp_path) == single_process
    assert len(_worker_rows(output)) == 2, output


def test_more_workers_than_the_cluster_holds_are_refused_before_anything_is_written(cluster: None, listing: Path, tmp_path: Path) -> None:
    output = _finish(_generate(listing, tmp_path / "out", "--ray", "auto", "--workers", "3"), expected=2)
    assert "--workers 3" in output and "the cluster has 2" in output
    assert not (tmp_path / "out").exists()


def test_a_killed_worker_changes_nothing(cluster: None, listing: Path, single_process: dict[str, bytes], tmp_path: Path) -> None:
    import ray

    process = _generate(listing, tmp_path, "--ray", "auto", "--workers", "2", "--block-size", "2")
    _wait_for_wavs(tmp_path, process)
    ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
    try:
        names = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("trtgen-worker-")]
        assert len(names) == 2
        pids = [ray.get(ray.get_actor(a["name"], namespace=a["namespace"]).describe.remote())[2] for a in names]
    finally:
        ray.shutdown()
    os.kill(pids[0], signal.SIGKILL)  # mid-block: Ray restarts the actor and runs the block again
    output = _finish(process)
    assert _files(tmp_path) == single_process
    table_pids = {int(line.split("│")[1].strip().rpartition(":")[2]) for line in _worker_rows(output)}
    assert table_pids - set(pids), f"no block was rendered by a restarted worker: {table_pids} (killed {pids[0]})"


def test_a_killed_driver_then_resume_finishes_the_same(cluster: None, listing: Path, single_process: dict[str, bytes], tmp_path: Path) -> None:
    process = _generate(listing, tmp_path, "--ray", "auto", "--workers", "2", "--block-size", "2")
    _wait_for_wavs(tmp_path, process, count=4)
    process.kill()
    process.communicate()
    resumed = _finish(_generate(listing, tmp_path, "--resume"))  # without Ray: a copy does not care who resumes it
    assert "already done" in resumed
    assert _files(tmp_path) == single_process
