"""``trtgen generate --ray``: the same jobs rendered by a pool of Ray actors, one loaded voice each.

Why Ray Core actors (an :class:`ray.util.ActorPool`) rather than Ray Data's ``map_batches``: the work is
already cut into self-contained blocks of :class:`~trtgen.commands.generate.Job` (every utterance is a
pure function of its job), the results are a few numbers per utterance, and the driver must write the
records itself under the copy's lock. On this project's 2-core machine Ray Data's streaming executor
(Arrow blocks in and out, a busy thread in the driver) added several seconds more to the same job than
the actor pool does (``benchmarks/RESULTS.md``, section "Ray", "Ray Data or Ray Core"). What Ray gives here:

* scheduling: one actor per GPU (``num_gpus=1``) or per ``--threads`` CPUs, on any node of the cluster;
* back-pressure: the pool sends an actor its next block only when it has returned the last one;
* faults: actors restart when their process dies (``max_restarts=-1``) and Ray retries the block that
  was running there (``max_task_retries``); a block that kills its worker that many times fails the run;
* one view: blocks come back as they finish and the driver draws one progress bar.

Workers write their WAVs into the shared ``--out`` (atomically, through their own staging directory)
and send back :class:`~trtgen.commands.generate.Outcome` s; the driver alone writes records, in list
order at the end, so the files are those of a single-process run whatever the worker count, the block
size or the order blocks finish in.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from trtgen.commands.jobs import Job, Outcome, render
from trtgen.commands.writers import STAGING
from trtgen.engine.decode import DecodeStats
from trtgen.engine.synthesis import StageTimes
from trtgen.engine.voice import VoiceSpec
from trtgen.errors import RunError, UsageError

__all__ = [
    "ClusterOptions", "RayRenderer", "WorkerReport", "block_size_for", "RETRIES_PER_BLOCK", "WORKER_NAMESPACE", "WORKER_NAME_PREFIX",
]

@dataclass(frozen=True)
class ClusterOptions:
    """``--ray ADDRESS --workers N [--block-size B]``: render on a Ray cluster.

    Attributes:
        address: ``local`` (a private Ray instance on this machine), ``auto`` (the cluster ``ray start``
            set up) or ``ray://host:port`` (Ray Client).
        workers: actors, each with one loaded model: one GPU each with ``--device cuda``, ``--threads``
            CPUs each on the CPU.
        block_size: utterances per block sent to a worker; None: chosen from the list
            (:func:`block_size_for`).
    """

    address: str
    workers: int = 1
    block_size: int | None = None

    def __post_init__(self) -> None:
        if self.address not in ("local", "auto") and not self.address.startswith("ray://"):
            raise UsageError(f"--ray {self.address!r}: give local, auto or ray://HOST:PORT")
        if self.workers < 1:
            raise UsageError(f"--workers {self.workers}: must be 1 or more")
        if self.block_size is not None and self.block_size < 1:
            raise UsageError(f"--block-size {self.block_size}: must be 1 or more")


RETRIES_PER_BLOCK = 3
"""Times Ray retries a block whose worker process died, before the run fails naming the block."""
WORKER_NAMESPACE = "trtgen"
WORKER_NAME_PREFIX = "trtgen-worker-"
"""Workers are named ``trtgen-worker-<run>-<i>`` in the ``trtgen`` namespace."""
MAX_BLOCK = 256
"""Utterances per block at most: about a minute of work on a CPU worker, 15 s on a GPU."""


def block_size_for(jobs: int, workers: int, batch_size: int) -> int:
    """Blocks of seconds to a minute of work: at least two decoder batches (slots refill inside a block),
    at most :data:`MAX_BLOCK`, and small enough that every worker gets at least two blocks."""
    size = min(MAX_BLOCK, max(2 * batch_size, math.ceil(jobs / (8 * workers))))
    return max(1, min(size, math.ceil(jobs / (2 * workers))))


@dataclass
class WorkerReport:
    """What one worker did, for the end-of-run table."""

    worker: str
    """``host:pid`` of the worker process (a restarted worker is a new one)."""
    blocks: int = 0
    utterances: int = 0
    audio_seconds: float = 0.0
    busy_seconds: float = 0.0
    """Wall time spent rendering blocks."""


@dataclass
class _Block:
    """A block's result as a worker returns it."""

    outcomes: list[Outcome]
    worker: str
    seconds: float
    stage_seconds: dict[str, float]
    decode: DecodeStats


class _RenderWorker:
    """The actor: one loaded voice on its own device; renders blocks of jobs."""

    def __init__(self, spec: VoiceSpec, sample_format: str, staging: str, retries: int) -> None:
        from trtgen.engine.voice import Voice

        self.sample_format = sample_format
        self.retries = retries
        self.staging = staging
        threads = spec.threads or 1
        # Griffin-Lim keeps to the worker's CPUs too (its result does not depend on its thread count).
        synthesis = dataclasses.replace(spec.synthesis, vocoder=dataclasses.replace(spec.synthesis.vocoder, threads=threads))
        self.voice = Voice.load(dataclasses.replace(spec, threads=threads, synthesis=synthesis, verify=False))
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def describe(self) -> tuple[str, str, int]:
        """(backend name and precision for the copies' settings, backend line for the report, process id)."""
        backend = self.voice.synthesizer.backend
        return f"{backend.name}-{backend.device} {self.voice.precision}", self.voice.describe(), os.getpid()

    def render(self, jobs: Sequence[Job]) -> _Block:
        started = time.perf_counter()
        before = dict(self.voice.times.seconds)
        decode_before = DecodeStats()
        decode_before.merge(self.voice.decode_stats)
        outcomes = list(render(self.voice, jobs, self.sample_format, self.staging, retries=self.retries))
        times = {k: v - before.get(k, 0.0) for k, v in self.voice.times.seconds.items()}
        return _Block(outcomes, self.name, time.perf_counter() - started, times, _difference(self.voice.decode_stats, decode_before))

def _difference(after: DecodeStats, before: DecodeStats) -> DecodeStats:
    return DecodeStats(**{name: getattr(after, name) - getattr(before, name) for name in DecodeStats.__dataclass_fields__})


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'trtgen[ray]'") from None
    return ray


@dataclass
class RayRenderer:
    """The driver's side: connects to Ray, starts the workers, streams blocks to them."""

    spec: VoiceSpec
    cluster: ClusterOptions
    ray: Any
    actors: list[Any]
    run: str
    """Names this run's workers and their staging directories (``ray-<run>-<i>``)."""
    backend_name: str
    precision: str
    backend_line: str
    startup_seconds: float
    connect_seconds: float
    started_ray: bool
    times: StageTimes = field(default_factory=StageTimes)
    decode_stats: DecodeStats = field(default_factory=DecodeStats)
    workers: dict[str, WorkerReport] = field(default_factory=dict)

    @classmethod
    def start(cls, spec: VoiceSpec, cluster: ClusterOptions, sample_format: str, retries: int) -> RayRenderer:
        """Connect (``local``: a private instance; ``auto``; ``ray://host:port``), check that the cluster can
        hold the workers, start them and wait until each has loaded the model from ``spec``. Refuses
        (exit 2) before any output is written when something is missing."""
        ray = _import_ray()
        per_worker = {"num_gpus": 1, "num_cpus": 1} if spec.device == "cuda" else {"num_cpus": spec.threads or 1}
        started = time.perf_counter()
        started_ray = False
        if not ray.is_initialized():
            arguments: dict[str, Any] = dict(log_to_driver=False, logging_level="ERROR", include_dashboard=False)
            if cluster.address == "local":
                arguments["num_cpus"] = max(os.cpu_count() or 1, cluster.workers * per_worker["num_cpus"])
            else:
                arguments["address"] = cluster.address
            try:
                ray.init(**arguments)
            except ConnectionError as error:
                raise UsageError(f"--ray {cluster.address}: no Ray cluster there ({error}); start one with `ray start --head`") from None
            started_ray = True
        connected = time.perf_counter() - started
        try:
            available = ray.cluster_resources()
            for resource, amount in per_worker.items():
                key = "GPU" if resource == "num_gpus" else "CPU"
                if available.get(key, 0) < amount * cluster.workers:
                    raise UsageError(
                        f"--workers {cluster.workers}: each needs {amount} {key}, the cluster has {available.get(key, 0):g} "
                        f"({', '.join(f'{k} {v:g}' for k, v in sorted(available.items()) if k in ('CPU', 'GPU'))})"
                    )
            worker_class = ray.remote(max_restarts=-1, max_task_retries=RETRIES_PER_BLOCK, **per_worker)(_RenderWorker)
            # Named, so that an operator (or a test) can find a worker through Ray's API: ray.util.list_named_actors.
            run = uuid.uuid4().hex[:8]
            actors = [
                worker_class.options(name=f"{WORKER_NAME_PREFIX}{run}-{i}", namespace=WORKER_NAMESPACE).remote(spec, sample_format, f"ray-{run}-{i}", retries)
                for i in range(cluster.workers)
            ]
            try:
                described = ray.get([actor.describe.remote() for actor in actors])
            except ray.exceptions.RayActorError as error:
                raise UsageError(f"the Ray workers could not load the model: {error}") from None
            names = {name for name, _, _ in described}
            if len(names) != 1:
                raise UsageError(f"the workers resolved --backend/--precision differently ({sorted(names)}): name them")
            backend_name, _, precision = names.pop().partition(" ")
        except BaseException:
            if started_ray:
                ray.shutdown()
            raise
        return cls(
            spec=spec, cluster=cluster, ray=ray, actors=actors, run=run, backend_name=backend_name, precision=precision,
            backend_line=described[0][1],
            startup_seconds=time.perf_counter() - started, connect_seconds=connected, started_ray=started_ray,
        )

    def describe(self) -> str:
        return f"Ray ({self.cluster.address}), {self.cluster.workers} workers: {self.backend_line}"

    def render(self, jobs: list[Job]) -> Iterator[Outcome]:
        """Outcomes of ``jobs``, block by block as the workers finish them. Jobs go out longest text first,
        so that the last blocks to finish are short ones."""
        from ray.util import ActorPool

        if not jobs:
            return
        size = self.cluster.block_size or block_size_for(len(jobs), self.cluster.workers, self.spec.synthesis.batch_size)
        ordered = sorted(jobs, key=lambda job: (-len(job.text), job.index))
        blocks = [ordered[i : i + size] for i in range(0, len(ordered), size)]
        pool = ActorPool(self.actors)
        results = pool.map_unordered(lambda actor, block: actor.render.remote(block), blocks)
        while True:
            try:
                block = next(results)
            except StopIteration:
                self._remove_staging({job.directory for job in jobs})  # before the copies close: nothing left behind
                return
            except self.ray.exceptions.RayTaskError as error:
                cause = error.cause if isinstance(getattr(error, "cause", None), BaseException) else None
                if cause is not None:
                    raise cause from None
                raise RunError(f"a Ray worker failed: {error}") from None
            except self.ray.exceptions.RayActorError as error:
                raise RunError(
                    f"a block's worker died {RETRIES_PER_BLOCK + 1} times (out of memory? a lost node?): {error}; "
                    "what was written is kept: rerun with --resume"
                ) from None
            self._account(block)
            yield from block.outcomes

    def _account(self, block: _Block) -> None:
        for stage, seconds in block.stage_seconds.items():
            self.times.add(stage, seconds)
        self.decode_stats.merge(block.decode)
        worker = self.workers.setdefault(block.worker, WorkerReport(block.worker))
        worker.blocks += 1
        worker.busy_seconds += block.seconds
        for outcome in block.outcomes:
            if outcome.reject is None:
                worker.utterances += 1
                worker.audio_seconds += outcome.duration_s

    def _remove_staging(self, directories: set[str]) -> None:
        """Every block is done: the workers' staging directories (those of workers that died too) hold
        at most the half-written file of a killed worker."""
        for directory in directories:
            for path in (Path(directory) / STAGING).glob(f"ray-{self.run}-*"):
                shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        """Stop the workers, and leave Ray if this run joined it."""
        for actor in self.actors:
            self.ray.kill(actor)
        if self.started_ray:
            self.ray.shutdown()
