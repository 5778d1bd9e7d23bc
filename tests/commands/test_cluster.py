"""``trtgen generate --ray`` on real Ray instances on this machine: the same files as one process, whatever
happens to the workers, their nodes or the driver.

A handful of tests, since Ray takes seconds to start: one three-node cluster started with ``ray start``
exactly as a user would (a head and two more nodes, one CPU each, separate processes), shared by every
test here: a private instance beside it (``--ray local``), two workers on it, a refused run, a killed
worker, a killed driver, and last (it leaves a node dead) a lost node. The shipped voice speaks the demo
sentences in its four styles, in two copies, plus two rows that must be rejected.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
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
WORKER = re.compile(r"^node ([0-9a-f]{8}) pid (\d+)$")
"""A worker's name in the end-of-run table."""


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but the run's Ray log (``ray-*.log`` beside the copies)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
        if p.is_file() and not (p.parent == root and p.name.startswith("ray-") and p.suffix == ".log")
    }


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


def _workers(output: str) -> dict[int, tuple[str, int]]:
    """The end-of-run workers table: pid -> (node id prefix, blocks)."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) > 3 and (match := WORKER.match(cells[1])):
            rows[int(match[2])] = (match[1], int(cells[2]))
    return rows


def _raylets() -> dict[str, int]:
    """Running raylets on this machine: node id -> pid (from their command lines)."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if arguments and arguments[0].endswith(b"/raylet"):
            for argument in arguments:
                if argument.startswith(b"--node_id="):
                    found[argument.split(b"=", 1)[1].decode()] = int(entry.name)
    return found


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _render_workers(cluster: Cluster, count: int = 2) -> list[tuple[int, str]]:
    """This run's ``count`` workers as (pid, node id), from the process table: each is a child of its
    node's raylet, titled ``ray::_RenderWorker`` (found at once, unlike asking Ray, so the run has not
    moved on meanwhile; a previous run's killed workers may take a moment to go)."""
    nodes = {pid: node for node, pid in cluster.raylets.items()}
    deadline = time.monotonic() + 10
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::_RenderWorker"):
                    parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                    if parent in nodes:
                        found.append((int(entry.name), nodes[parent]))
            except (OSError, ValueError, IndexError):
                continue
        if len(found) == count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _no_staging(root: Path) -> None:
    assert not list(root.rglob(".staging")), f"staging directories left: {list(root.rglob('.staging*'))}"


def _ray_log(root: Path) -> str:
    logs = list(root.glob("ray-*.log"))
    assert len(logs) == 1, f"one Ray log beside the copies: {logs}"
    return logs[0].read_text()


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


@dataclass(frozen=True)
class Cluster:
    head: str
    """The head's node id (its raylet serves the drivers started on this machine)."""
    raylets: dict[str, int]
    """node id -> raylet pid."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head and two more nodes on this machine, one CPU each (``ray start``); ``ray stop`` at the end."""
    _ray("stop", "--force")
    try:
        _ray("start", "--head", "--num-cpus", "1", "--include-dashboard", "false", "--disable-usage-stats")
        (head,) = _raylets()
        _ray("start", "--address", "127.0.0.1:6379", "--num-cpus", "1")
        _ray("start", "--address", "127.0.0.1:6379", "--num-cpus", "1")
        yield Cluster(head, _raylets())
    finally:
        _ray("stop", "--force")


def test_local_ray_beside_a_running_cluster_starts_its_own(
    cluster: Cluster, listing: Path, single_process: dict[str, bytes], tmp_path: Path
) -> None:
    output = _finish(_generate(listing, tmp_path, "--ray", "local", "--workers", "2", "--threads", "1"))
    assert _files(tmp_path) == single_process
    assert "4 row(s) rejected" in output  # two rows in each of the two copies
    assert "workers (start-up" in output, "the per-worker table"
    workers = _workers(output)
    assert len(workers) == 2, output
    assert not {node for node, _ in workers.values()} & {node[:8] for node in cluster.raylets}, "the workers ran on the cluster"
    deadline = time.monotonic() + 15  # the private instance's raylet exits shortly after the driver
    while set(_raylets()) != set(cluster.raylets) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert set(_raylets()) == set(cluster.raylets), "the private instance is gone, the cluster is untouched"
    _no_staging(tmp_path)


def test_three_nodes_started_with_ray_start(cluster: Cluster, listing: Path, single_process: dict[str, bytes], tmp_path: Path) -> None:
    output = _finish(_generate(listing, tmp_path, "--ray", "auto", "--workers", "2"))
    assert _files(tmp_path) == single_process
    workers = _workers(output)
    assert len(workers) == 2, output
    assert {node for node, _ in workers.values()} <= {node[:8] for node in cluster.raylets}
    assert "Connected to Ray cluster" in _ray_log(tmp_path)
    _no_staging(tmp_path)


def test_more_workers_than_the_cluster_holds_are_refused_before_anything_is_written(cluster: Cluster, listing: Path, tmp_path: Path) -> None:
    output = _finish(_generate(listing, tmp_path / "out", "--ray", "auto", "--workers", "4"), expected=2)
    assert "--workers 4" in output and "the cluster has 3" in output
    assert not (tmp_path / "out").exists()


def test_a_killed_worker_is_replaced_and_changes_nothing(
    cluster: Cluster, listing: Path, single_process: dict[str, bytes], tmp_path: Path
) -> None:
    process = _generate(listing, tmp_path, "--ray", "auto", "--workers", "2", "--block-size", "2")
    _wait_for_wavs(tmp_path, process)
    workers = _render_workers(cluster)
    assert len(workers) == 2
    killed, _ = workers[0]
    os.kill(killed, signal.SIGKILL)  # mid-block: its block goes to the other worker, a replacement starts
    output = _finish(process)
    assert _files(tmp_path) == single_process
    assert f"pid {killed} was lost" in output and "starting a replacement" in output, output[-3000:]
    assert killed in _workers(output)
    _no_staging(tmp_path)


def test_a_killed_driver_then_resume_finishes_the_same(
    cluster: Cluster, listing: Path, single_process: dict[str, bytes], tmp_path: Path
) -> None:
    process = _generate(listing, tmp_path, "--ray", "auto", "--workers", "2", "--block-size", "2")
    _wait_for_wavs(tmp_path, process, count=4)
    process.kill()
    process.communicate()
    resumed = _finish(_generate(listing, tmp_path, "--resume"))  # without Ray: a copy does not care who resumes it
    assert "already done" in resumed
    assert _files(tmp_path) == single_process
    _no_staging(tmp_path)  # the killed driver's workers' staging directories, cleared by the resumed run


def test_a_lost_node_and_a_killed_worker_are_replaced_on_the_nodes_left(
    cluster: Cluster, listing: Path, single_process: dict[str, bytes], tmp_path: Path
) -> None:
    """Last: it leaves a node dead. Kill the raylet of a node that holds a worker (and the processes it
    started: a dead raylet's worker lives on for seconds) and the other worker too: no worker is left,
    both blocks go back to the queue, and replacements on the two nodes left finish the run."""
    process = _generate(listing, tmp_path, "--ray", "auto", "--workers", "2", "--block-size", "2")
    _wait_for_wavs(tmp_path, process)
    workers = _render_workers(cluster)
    assert len(workers) == 2
    remote, node = next((pid, node) for pid, node in workers if node != cluster.head)  # the head's raylet serves the driver
    other = next(pid for pid, _ in workers if pid != remote)
    raylet = cluster.raylets[node]
    for pid in [raylet, *_children(raylet), other]:
        os.kill(pid, signal.SIGKILL)
    output = _finish(process)
    assert _files(tmp_path) == single_process
    table = _workers(output)
    assert {remote, other} <= set(table), output
    replacements = {pid: row for pid, row in table.items() if pid not in (remote, other)}
    assert replacements and all(prefix != node[:8] for prefix, _ in replacements.values()), output
    assert sum(blocks for _, blocks in replacements.values()) > 0, "the replacements rendered the rest"
    assert "(raylet)" not in output and "(pid=" not in output, "Ray's own lines reach the terminal"
    log = _ray_log(tmp_path)
    assert "(raylet)" in log and "was lost" in log and "has loaded the model" in log
    _no_staging(tmp_path)
