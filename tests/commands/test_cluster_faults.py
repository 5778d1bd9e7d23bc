"""The failure paths of ``trtgen generate --ray``: a block that kills every worker it meets, a cluster with
no room left for a replacement, addresses where no Ray answers. Ray's output goes to the run's log file
and the workers' staging directories go away, whatever happens.

Two drive :class:`~trtgen.commands.cluster.RayRenderer` in this process, on one private Ray instance
(``local``) shared by both, with a worker class that dies on a block of ``crash`` utterances
(as a worker killed for running out of memory would), after leaving a half-written file behind.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from trtgen.commands import cluster as cluster_module
from trtgen.commands.cluster import ClusterOptions, RayRenderer, WorkBlock, _RenderWorker
from trtgen.commands.demo import demo_rows
from trtgen.commands.jobs import Job
from trtgen.commands.writers import STAGING
from trtgen.engine.voice import VoiceSpec
from trtgen.errors import RunError
from trtgen.fileio import write_jsonl

RAY_ENV = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_AUTH_MODE": "token", "RAY_DISABLE_USAGE_STATS": "1"}


def _listing(tmp_path: Path) -> Path:
    path = tmp_path / "infer.jsonl"
    write_jsonl(path, demo_rows(1))
    return path


def _generate(tmp_path: Path, address: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    command = [sys.executable, "-m", "trtgen", "generate", "--list", str(_listing(tmp_path)), "--out", str(tmp_path / "out"), "--ray", address]
    done = subprocess.run(command, check=False, env=RAY_ENV, capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - started


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_auto_without_a_cluster_is_refused_in_one_line(tmp_path: Path) -> None:
    if any(p.name.isdigit() and (p / "cmdline").exists() and b"/raylet\0" in _read(p / "cmdline") for p in Path("/proc").iterdir()):
        pytest.skip("a Ray cluster runs on this machine")
    done, seconds = _generate(tmp_path, "auto")
    assert done.returncode == 2, done.stderr
    assert seconds < 15, f"{seconds:.1f} s"
    errors = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("INFO ")]
    assert len(errors) == 1 and errors[0].startswith("trtgen generate: --ray auto: no Ray cluster there"), done.stderr
    assert not (tmp_path / "out").exists()


class CrashingWorker(_RenderWorker):
    """Dies at once on a block whose first utterance id starts with ``crash``, leaving a half-written file
    in its staging directory; renders any other block."""

    def render(self, block: WorkBlock) -> Any:
        first = block.jobs[0]
        if first.id.startswith("crash"):
            staging = Path(first.directory) / STAGING / self.staging
            staging.mkdir(parents=True, exist_ok=True)
            (staging / f"{first.audio}.partial").write_bytes(b"RIFF")
            os._exit(1)
        return super().render(block)


def _crash_job(directory: Path, number: int = 0) -> Job:
    return Job(index=number, id=f"crash-{number}", text="Never spoken.", style="/nonexistent/clip.wav", copy="a", dropout=0.5, seed=1,
               directory=str(directory), audio=f"crash-{number}.wav")


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """A private Ray instance in this process (RayRenderer joins it and leaves it running)."""
    import ray

    ray.init(address="local", num_cpus=2, log_to_driver=False, logging_level="ERROR", include_dashboard=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def renderer(ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RayRenderer]:
    """One crashing worker, Ray's output into ``tmp_path/logs/run/ray.log``."""
    monkeypatch.setattr(cluster_module, "_RenderWorker", CrashingWorker)
    ray_logger = logging.getLogger("ray")
    handlers = [h for h in ray_logger.handlers if type(h).__module__.startswith("ray")]
    renderer = RayRenderer.start(VoiceSpec(threads=1), ClusterOptions("local", workers=1), "pcm16", 0, log_path=tmp_path / "logs" / "run" / "ray.log")
    try:
        yield renderer
    finally:
        renderer.close()
        assert [h for h in ray_logger.handlers if not type(h).__module__.startswith("_pytest")] == handlers, "Ray's logging is put back"


def test_a_block_that_kills_every_worker_it_meets_fails_the_run_naming_it(
    renderer: RayRenderer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cluster_module, "RETRIES_PER_BLOCK", 1)
    copy = tmp_path / "a"
    copy.mkdir()
    renderer.staging_roots.add(str(copy))
    with pytest.raises(RunError, match=r"from utterance 'crash-0' \(copy a\) lost its Ray worker 2 times.*--resume"):
        list(renderer.render_blocks([[_crash_job(copy)]]))
    assert len(renderer.workers) == 2 and all(w.lost for w in renderer.workers.values()), "the first worker and its replacement"
    renderer.close()
    assert not (copy / STAGING).exists(), "the dead workers' staging directories and .staging are removed"
    log = (tmp_path / "logs" / "run" / "ray.log").read_text()
    assert log.count("was lost") == 2, log
    printed = capfd.readouterr()
    assert "(raylet)" not in printed.out + printed.err and "(pid=" not in printed.out + printed.err


def test_no_room_for_a_replacement_fails_the_run_after_the_placement_timeout(
    renderer: RayRenderer, ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster_module, "PLACEMENT_TIMEOUT_S", 2.0)
    # Replacements need a resource no node has: they wait to be placed, as on a cluster that lost its room.
    renderer.worker_class = ray_local.remote(max_restarts=0, max_task_retries=0, num_cpus=1, resources={"nowhere": 1})(CrashingWorker)
    started = time.monotonic()
    with pytest.raises(RunError, match=r"no Ray worker is left and no replacement was placed and loaded within 2 s \(PLACEMENT_TIMEOUT_S"):
        list(renderer.render_blocks([[_crash_job(tmp_path)]]))
    assert time.monotonic() - started < 30


def test_a_ray_client_address_where_nothing_listens_is_refused_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done, seconds = _generate(tmp_path, f"ray://127.0.0.1:{port}")
    assert done.returncode == 2, done.stderr
    assert seconds < 15, f"{seconds:.1f} s"
    errors = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("INFO ")]
    expected = (f"trtgen generate: --ray ray://127.0.0.1:{port}: nothing answers at 127.0.0.1:{port} (connection refused); "
                "start the cluster with `ray start --head` (Ray Client listens on port 10001)")
    assert errors == [expected], done.stderr
    assert not (tmp_path / "out").exists()
