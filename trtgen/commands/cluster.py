"""``trtgen generate --ray``: the same jobs rendered by Ray actors, one loaded voice each, scheduled by the driver.

Why Ray Core actors rather than Ray Data's ``map_batches``: the work is already cut into self-contained
blocks of :class:`~trtgen.commands.jobs.Job` (every utterance is a pure function of its job), the results
are a few numbers per utterance, and the driver must write the records itself under the copy's lock. On
this project's 2-core machine Ray Data's streaming executor (Arrow blocks in and out, a busy thread in the
driver) added several seconds more to the same job than actors do (``benchmarks/RESULTS.md``, section
"Ray", "Ray Data or Ray Core"). What Ray gives here:

* placement: one actor per GPU (``num_gpus=1``) or per ``--threads`` CPUs, on any node with room;
* one view: blocks come back as they finish and the driver draws one progress bar.

The driver schedules the blocks itself (:meth:`RayRenderer.render_blocks`): longest texts first, one
block in flight per worker (back-pressure: a worker gets its next block when it returns the last), and
``ray.wait`` over the blocks in flight. Faults are the driver's business too, not Ray's retries:

* a worker that is lost (its process killed, out of memory, its node gone: Ray raises
  ``ActorDiedError``, ``ActorUnavailableError`` or another of :func:`_lost_errors`) is killed for good
  and replaced by a new actor, which Ray places on any node with room; its block goes back to the head
  of the queue for whichever worker is free first;
* a block whose worker was lost more than :data:`RETRIES_PER_BLOCK` times fails the run (exit 3, naming
  the block's first utterance: it probably kills its worker);
* with no worker left, the run waits up to :data:`PLACEMENT_TIMEOUT_S` for a replacement to be placed
  and load the model, then fails (exit 3). ``--resume`` continues either way.

Why replacements and no in-place restarts (``max_restarts=0``, ``max_task_retries=0``): Ray restarts an
actor only once its owner knows the old process is dead; for a lost node that is the GCS's health check
(15 s and more), and until then every call to the actor fails at once with ``ActorUnavailableError``, so
task retries are spent in a second ("died 4 times") although other nodes have room. A replacement is
placed at once, anywhere, under a new name and staging owner (``ray-<run>-<slot>``), so nothing of the
lost process (a half-written file, a late rename, even a worker that was only unreachable and comes
back) can meet the new one's; the block is requeued by the driver, which counts losses per block.

Workers write their audio files into the shared ``--out`` (atomically, through their own staging
directory) or, with a shard layout, a whole shard per block into ``--out`` (a shared file system or
object storage; :mod:`trtgen.commands.shards`), and send back :class:`~trtgen.commands.jobs.Outcome` s;
the driver alone writes records and commits shards, so the files are those of a single-process run
whatever the worker count, the block size, the order blocks finish in or the workers lost on the way
(a requeued block writes the same bytes).

Ray's own output (its loggers, the ``(raylet)`` messages its driver threads print, workers' output) goes
to the run's log file (``log_path``), never to the terminal: :class:`_RayLog`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os
import shutil
import signal
import socket
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TextIO

from trtgen.commands.jobs import Job, Outcome, render
from trtgen.commands.writers import STAGING, AudioEncoding
from trtgen.engine.decode import DecodeStats
from trtgen.engine.synthesis import StageTimes
from trtgen.engine.voice import VoiceSpec
from trtgen.errors import OutputError, RunError, UsageError

__all__ = [
    "ClusterOptions", "RayRenderer", "WorkBlock", "WorkerReport", "block_size_for", "RETRIES_PER_BLOCK", "PLACEMENT_TIMEOUT_S",
    "CONNECT_TIMEOUT_S", "WORKER_NAMESPACE", "WORKER_NAME_PREFIX",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterOptions:
    """``--ray ADDRESS --workers N [--block-size B]``: render on a Ray cluster.

    Attributes:
        address: ``local`` (a private Ray instance on this machine, even beside a running cluster),
            ``auto`` (the cluster ``ray start`` set up) or ``ray://host:port`` (Ray Client).
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
"""Times a block goes back to the queue after its worker was lost; one loss more fails the run, naming
the block's first utterance (a block that kills every worker it meets, e.g. out of memory)."""
PLACEMENT_TIMEOUT_S = 120.0
"""Seconds the run waits, with no worker left, for Ray to place a replacement and for it to load the
model (and, at the start, for every worker to be placed and loaded) before it fails."""
REPLACEMENT_FAILURES = 3
"""Replacement workers in a row that may die before they have loaded the model; one more fails the run."""
CONNECT_TIMEOUT_S = 5.0
"""Seconds to wait for a TCP connection to a ``ray://`` address before Ray Client's own (30 s) retries."""
CLOSE_TIMEOUT_S = 10.0
"""Seconds :meth:`RayRenderer.close` waits for killed mid-block workers to be gone before it removes
their staging directories."""
WORKER_NAMESPACE = "trtgen"
WORKER_NAME_PREFIX = "trtgen-worker-"
"""Workers are named ``trtgen-worker-<run>-<slot>`` in the ``trtgen`` namespace (a replacement takes a new slot)."""
MAX_BLOCK = 256
"""Utterances per block at most: about a minute of work on a CPU worker, 15 s on a GPU."""
RAY_CLIENT_PORT = 10001


def block_size_for(jobs: int, workers: int, batch_size: int) -> int:
    """Blocks of seconds to a minute of work: at least two decoder batches (slots refill inside a block),
    at most :data:`MAX_BLOCK`, and small enough that every worker gets at least two blocks."""
    size = min(MAX_BLOCK, max(2 * batch_size, math.ceil(jobs / (8 * workers))))
    return max(1, min(size, math.ceil(jobs / (2 * workers))))


@dataclass(frozen=True)
class WorkBlock:
    """What a worker renders in one call: jobs, and the targets of the output shards these jobs complete
    (``--layout shar|nemo-tarred``: all of a shard's jobs are in one block, and the worker writes it)."""

    jobs: Sequence[Job]
    shards: Mapping[Any, Any] = field(default_factory=dict)

    def describe(self) -> str:
        first = self.jobs[0] if self.jobs else None
        where = "" if first is None else f" from utterance {first.id!r} (copy {first.copy})"
        return f"the block of {len(self.jobs)} utterance(s){where}"


@dataclass
class WorkerReport:
    """What one worker did, for the end-of-run table."""

    worker: str
    """``node <node id, 8 hex digits> pid <pid>``: tells apart two nodes on one host (a replacement is a new worker)."""
    blocks: int = 0
    utterances: int = 0
    audio_seconds: float = 0.0
    busy_seconds: float = 0.0
    """Wall time spent rendering blocks."""
    node: str = ""
    """The Ray node id (hex) of the worker's node."""
    ip: str = ""
    """The node's IP address."""
    lost: str | None = None
    """Why the worker was lost mid-run (and replaced); None: it served to the end."""


@dataclass
class _Block:
    """A block's result as a worker returns it."""

    outcomes: list[Any]
    """:class:`Outcome` s (and whatever else the renderer yields, e.g. written shards), in order."""
    worker: str
    seconds: float
    stage_seconds: dict[str, float]
    decode: DecodeStats


@dataclass(frozen=True)
class _Described:
    """What a worker says once it has loaded the model."""

    setting: str
    """``<backend>-<device> <precision>``, for the copies' settings."""
    backend_line: str
    pid: int
    node: str
    ip: str

    @property
    def name(self) -> str:
        return f"node {self.node[:8]} pid {self.pid}"


class _RenderWorker:
    """The actor: one loaded voice on its own device; renders blocks of jobs."""

    def __init__(self, spec: VoiceSpec, encoding: AudioEncoding, staging: str, retries: int) -> None:
        import ray

        from trtgen.engine.voice import Voice

        self.encoding = encoding
        self.retries = retries
        self.staging = staging
        threads = spec.threads or 1
        # Griffin-Lim keeps to the worker's CPUs too (its result does not depend on its thread count).
        synthesis = dataclasses.replace(spec.synthesis, vocoder=dataclasses.replace(spec.synthesis.vocoder, threads=threads))
        self.voice = Voice.load(dataclasses.replace(spec, threads=threads, synthesis=synthesis, verify=False))
        backend = self.voice.synthesizer.backend
        self.described = _Described(
            f"{backend.name}-{backend.device} {self.voice.precision}", self.voice.describe(), os.getpid(),
            ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address(),
        )

    def describe(self) -> _Described:
        return self.described

    def render(self, block: WorkBlock) -> _Block:
        started = time.perf_counter()
        before = dict(self.voice.times.seconds)
        decode_before = DecodeStats()
        decode_before.merge(self.voice.decode_stats)
        extra = {"shards": block.shards} if block.shards else {}
        outcomes = list(render(self.voice, block.jobs, self.encoding, self.staging, retries=self.retries, **extra))
        times = {k: v - before.get(k, 0.0) for k, v in self.voice.times.seconds.items()}
        return _Block(outcomes, self.described.name, time.perf_counter() - started, times, _difference(self.voice.decode_stats, decode_before))


def _difference(after: DecodeStats, before: DecodeStats) -> DecodeStats:
    return DecodeStats(**{name: getattr(after, name) - getattr(before, name) for name in DecodeStats.__dataclass_fields__})


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'trtgen[ray]'") from None
    return ray


def _lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """What Ray raises for a block whose worker is gone. Observed with Ray 2.60 on ``ray start`` nodes on
    one machine: a SIGKILLed worker gives ``ActorDiedError`` at once. A SIGKILLed raylet leaves its
    workers running for a few seconds (a block they finish still comes back); a call in flight when
    the worker goes fails with ``ActorUnavailableError`` ("Socket closed", 1 to 3 s after the kill), and
    once the GCS marks the node dead (about 15 s) calls fail with ``ActorDiedError`` ("its node has
    died"). The others: a task result lost with its node, Ray's memory monitor, an actor that cannot
    be placed."""
    exceptions = ray.exceptions
    return tuple(
        getattr(exceptions, name) for name in (
            "RayActorError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OutOfMemoryError", "ActorUnschedulableError",
        ) if hasattr(exceptions, name)
    )


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


# -- Ray's output ------------------------------------------------------------------------------------


class _RayLog:
    """Everything Ray says during a run goes to ``path``, nothing to the terminal (``path`` None: Ray's
    output is left as Ray prints it):

    * the ``ray`` logger and its children (Ray Client's log stream, which does not propagate, too): the
      file's handler replaces theirs while the run lasts (public ``logging`` API);
    * lines Ray's driver threads *print*: ``(raylet)`` messages (a worker died, a node was marked dead,
      with a dump of the raylet's log), workers' ``(pid=...)`` output (``log_to_driver`` is on when
      there is a file), Ray Client's streamed output. They are no log records, so only a private hook
      reaches them (:func:`_divert_ray_prints`);
    * this module's own messages (a worker lost, its replacement) are copied into the file, so the file
      tells the whole story; they still reach the terminal, one line each.
    """

    FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"

    def __init__(self, path: Path | None) -> None:
        self.path = None if path is None else Path(path)
        self.created: list[Path] = []
        """Directories made for the file, deepest first."""
        self.stream: TextIO | None = None
        self.handler: logging.Handler | None = None
        self.printed = logging.getLogger("ray.printed")
        """Where diverted prints go: a child of ``ray``, so into the same handler."""
        self._saved: tuple[list[logging.Handler], bool, int] | None = None
        self._undo: Callable[[], None] | None = None
        self._islands: list[logging.Logger] = []

    @property
    def active(self) -> bool:
        return self.path is not None

    def install(self, client: bool) -> None:
        """Open the file (and make its directories) and route Ray's output there; call after ``import ray``
        (which configures Ray's loggers) and before ``ray.init``."""
        if self.path is None:
            return
        try:
            self.created = [p for p in [self.path.parent, *self.path.parent.parents] if not p.exists()]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.stream = open(self.path, "a", encoding="utf-8", buffering=1)
        except OSError as error:
            raise OutputError(error, self.path, "creating") from None
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logging.Formatter(self.FORMAT))
        ray_logger = logging.getLogger("ray")
        self._saved = (list(ray_logger.handlers), ray_logger.propagate, ray_logger.level)
        for handler in self._saved[0]:
            ray_logger.removeHandler(handler)
        ray_logger.addHandler(self.handler)
        ray_logger.propagate = False
        ray_logger.setLevel(logging.INFO)
        logger.addHandler(self.handler)
        self._undo = _divert_ray_prints(self.write_printed, client)
        # Ray loggers that do not pass their records up to "ray" (Ray Client's log stream: the cluster-side
        # driver's warnings): without a handler of their own, Python's last resort prints them on stderr.
        self._islands = [
            child for name, child in list(logging.Logger.manager.loggerDict.items())
            if name.startswith("ray.") and isinstance(child, logging.Logger) and not child.propagate
        ]
        for child in self._islands:
            child.addHandler(self.handler)

    def write_printed(self, source: str, lines: Sequence[str]) -> None:
        for line in lines:
            self.printed.info("(%s) %s", source, line.rstrip("\n"))

    def close(self, remove: bool = False) -> None:
        """Put Ray's logging back as it was; ``remove``: delete the file and the directories made for it
        (a refused run leaves nothing behind). Idempotent."""
        if self._undo is not None:
            self._undo()
            self._undo = None
        if self.handler is not None:
            for child in self._islands:
                child.removeHandler(self.handler)
            self._islands = []
            if self._saved is not None:
                ray_logger = logging.getLogger("ray")
                handlers, ray_logger.propagate, level = self._saved
                ray_logger.removeHandler(self.handler)
                for handler in handlers:
                    ray_logger.addHandler(handler)
                ray_logger.setLevel(level)
                self._saved = None
            logger.removeHandler(self.handler)
            self.handler.close()
            self.handler = None
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        if remove and self.path is not None:
            self.path.unlink(missing_ok=True)
            for directory in self.created:
                try:
                    directory.rmdir()
                except OSError:
                    break


def _divert_ray_prints(write: Callable[[str, Sequence[str]], None], client: bool) -> Callable[[], None]:
    """The one private hook: Ray prints some lines to ``sys.stdout`` from its driver threads, outside
    ``logging``, even with ``log_to_driver=False``: ``ray._private.worker.listen_error_messages`` hands
    every error the GCS publishes for the job (a worker died, a node was marked dead: the ``(raylet)``
    lines) to the module function ``print_to_stdstream``, as does ``print_logs`` (workers' ``(pid=...)``
    output, with ``log_to_driver=True``); Ray Client's ``LogstreamClient.stdstream`` prints the streamed
    output of the cluster-side driver ("can be overridden", says its docstring). Both are replaced by
    ``write(source, lines)`` until the returned function puts them back. Must run before ``ray.init``
    (``print_logs``' handler is bound when the driver connects). Checked against Ray 2.60; with a Ray that
    has moved them, nothing is diverted (Ray's lines reach the terminal again, nothing breaks)."""
    undo: list[Callable[[], None]] = []
    try:
        import ray._private.worker as driver
    except ImportError:
        driver = None
    if driver is not None and hasattr(driver, "print_to_stdstream"):
        original = driver.print_to_stdstream

        def print_to_stdstream(data: dict[str, Any], ignore_prefix: bool = False) -> None:
            source = str(data.get("pid", "ray"))
            lines = data.get("lines", [])
            if source == "autoscaler":  # its whole log, of which Ray shows only the events
                events = getattr(driver, "filter_autoscaler_events", None)
                lines = list(events(lines)) if events is not None else []
            elif source != "raylet":
                source = f"pid={source}" + (f", ip={data['ip']}" if data.get("ip") else "")
            write(source, [str(line) for line in lines])

        driver.print_to_stdstream = print_to_stdstream
        undo.append(lambda: setattr(driver, "print_to_stdstream", original))
    if client:
        try:
            from ray.util.client.logsclient import LogstreamClient
        except ImportError:
            LogstreamClient = None
        if LogstreamClient is not None and hasattr(LogstreamClient, "stdstream"):
            streamed = LogstreamClient.__dict__["stdstream"]

            def stdstream(self: Any, level: int, msg: str) -> None:
                write("ray client", msg.splitlines())

            LogstreamClient.stdstream = stdstream
            undo.append(lambda: setattr(LogstreamClient, "stdstream", streamed))

    def restore() -> None:
        for step in reversed(undo):
            step()

    return restore


# -- connecting ---------------------------------------------------------------------------------------


def _probe(address: str) -> None:
    """Refuse a ``ray://`` address where nothing listens, within :data:`CONNECT_TIMEOUT_S`, before Ray
    Client spends 30 s on its own retries."""
    where = address[len("ray://"):].split("/", 1)[0]
    host, _, port = where.rpartition(":") if ":" in where else (where, "", str(RAY_CLIENT_PORT))
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise UsageError(f"--ray {address}: the port {port!r} is not a number; give ray://HOST:PORT") from None
    try:
        with socket.create_connection((host, number), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        reason = f"no answer within {CONNECT_TIMEOUT_S:g} s" if isinstance(error, TimeoutError) else (error.strerror or str(error)).lower()
        raise UsageError(
            f"--ray {address}: nothing answers at {host}:{number} ({reason}); "
            f"start the cluster with `ray start --head` (Ray Client listens on port {RAY_CLIENT_PORT})"
        ) from None


def _connect(ray: Any, cluster: ClusterOptions, cpus: int, logged: bool) -> None:
    """``ray.init`` for ``cluster.address``: ``local`` always starts a private instance (``address="local"``,
    even beside a ``ray start`` cluster or with ``RAY_ADDRESS`` set)."""
    arguments: dict[str, Any] = {
        "log_to_driver": logged, "logging_level": "INFO" if logged else "ERROR", "logging_format": _RayLog.FORMAT, "include_dashboard": False,
    }
    if cluster.address == "local":
        arguments.update(address="local", num_cpus=max(os.cpu_count() or 1, cpus))
    else:
        if cluster.address.startswith("ray://"):
            _probe(cluster.address)
        arguments["address"] = cluster.address
    main = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Ray Client's "connection timed out" UserWarning: the error says it
            ray.init(**arguments)
    except ConnectionError as error:
        raise UsageError(
            f"--ray {cluster.address}: no Ray cluster there ({_first_line(error).partition(': ')[2] or error}); "
            "start one with `ray start --head`"
        ) from None
    finally:
        if sigterm is not None:  # ray.init makes SIGTERM exit at once: the command's own handler stops the run cleanly
            signal.signal(signal.SIGTERM, sigterm)


# -- the driver ---------------------------------------------------------------------------------------


@dataclass
class _Worker:
    """One actor of this run."""

    actor: Any
    slot: int
    """Names the actor (``trtgen-worker-<run>-<slot>``) and its staging directory (``ray-<run>-<slot>``)."""
    described: _Described | None = None
    """None until it has loaded the model."""


@dataclass
class RayRenderer:
    """The driver's side: connects to Ray, starts the workers, schedules blocks on them, replaces lost ones."""

    spec: VoiceSpec
    cluster: ClusterOptions
    ray: Any
    run: str
    """Names this run's workers and their staging directories (``ray-<run>-<slot>``)."""
    encoding: AudioEncoding
    retries: int
    worker_class: Any
    started_ray: bool
    log: _RayLog
    backend_name: str = ""
    precision: str = ""
    backend_line: str = ""
    startup_seconds: float = 0.0
    connect_seconds: float = 0.0
    times: StageTimes = field(default_factory=StageTimes)
    decode_stats: DecodeStats = field(default_factory=DecodeStats)
    workers: dict[str, WorkerReport] = field(default_factory=dict)
    """Every worker that loaded the model, by display name (lost ones and replacements too)."""
    staging_roots: set[str] = field(default_factory=set)
    """Copy directories the workers stage files in: :meth:`close` removes this run's staging there."""
    pool: list[_Worker] = field(default_factory=list)
    """This run's actors not yet killed: loaded and loading."""
    _slots: int = 0
    _busy: set[int] = field(default_factory=set)
    """Slots with a block in flight."""
    _closed: bool = False

    @classmethod
    def start(
        cls, spec: VoiceSpec, cluster: ClusterOptions, encoding: AudioEncoding, retries: int, *, log_path: Path | None = None
    ) -> RayRenderer:
        """Connect (``local``: a private instance; ``auto``; ``ray://host:port``), check that the cluster can
        hold the workers, start them and wait until each has loaded the model from ``spec``. Refuses
        (exit 2) before any output is written when something is missing. Ray's own output goes to
        ``log_path`` (created with its directories; None: left as Ray prints it) until :meth:`close`."""
        ray = _import_ray()
        per_worker = {"num_gpus": 1, "num_cpus": 1} if spec.device == "cuda" else {"num_cpus": spec.threads or 1}
        started = time.perf_counter()
        log = _RayLog(log_path)
        started_ray = False
        renderer: RayRenderer | None = None
        try:
            log.install(client=cluster.address.startswith("ray://"))
            if not ray.is_initialized():
                _connect(ray, cluster, cluster.workers * per_worker["num_cpus"], logged=log.active)
                started_ray = True
            connected = time.perf_counter() - started
            available = ray.cluster_resources()
            for resource, amount in per_worker.items():
                key = "GPU" if resource == "num_gpus" else "CPU"
                if available.get(key, 0) < amount * cluster.workers:
                    raise UsageError(
                        f"--workers {cluster.workers}: each needs {amount} {key}, the cluster has {available.get(key, 0):g} "
                        f"({', '.join(f'{k} {v:g}' for k, v in sorted(available.items()) if k in ('CPU', 'GPU'))})"
                    )
            # No restarts in place, no task retries: the driver replaces lost workers (see the module's docstring).
            worker_class = ray.remote(max_restarts=0, max_task_retries=0, **per_worker)(_RenderWorker)
            renderer = cls(
                spec=spec, cluster=cluster, ray=ray, run=uuid.uuid4().hex[:8], encoding=encoding, retries=retries,
                worker_class=worker_class, started_ray=started_ray, log=log, connect_seconds=connected,
            )
            loading = {renderer._spawn().actor.describe.remote(): renderer.pool[-1] for _ in range(cluster.workers)}
            ready, waiting = ray.wait(list(loading), num_returns=len(loading), timeout=PLACEMENT_TIMEOUT_S)
            if waiting:
                raise UsageError(
                    f"--workers {cluster.workers}: only {len(ready)} of the workers were placed and loaded the model within "
                    f"{PLACEMENT_TIMEOUT_S:g} s (PLACEMENT_TIMEOUT_S): is the cluster's room taken by other jobs? (`ray status`)"
                )
            try:
                for ref in ready:
                    renderer._loaded(loading[ref], ray.get(ref))
            except _lost_errors(ray) as error:
                raise UsageError(f"the Ray workers could not load the model: {error}") from None
            names = {worker.described.setting for worker in renderer.pool if worker.described is not None}
            if len(names) != 1:
                raise UsageError(f"the workers resolved --backend/--precision differently ({sorted(names)}): name them")
            renderer.backend_name, _, renderer.precision = names.pop().partition(" ")
            renderer.backend_line = next(w.described.backend_line for w in renderer.pool if w.described is not None)
        except BaseException:
            if renderer is not None:
                renderer._kill(list(renderer.pool))
            if started_ray:
                ray.shutdown()
            log.close(remove=True)
            raise
        renderer.startup_seconds = time.perf_counter() - started
        return renderer

    def describe(self) -> str:
        return f"Ray ({self.cluster.address}), {self.cluster.workers} workers: {self.backend_line}"

    # -- blocks

    def render(self, jobs: list[Job], shards: Mapping[Any, Any] | None = None) -> Iterator[Any]:
        """Outcomes of ``jobs``, block by block as the workers finish them (:meth:`cut` makes the blocks)."""
        if not jobs:
            return
        directories = {job.directory for job in jobs if "://" not in str(job.directory)}
        self.staging_roots.update(directories)
        for block in self.render_blocks(self.cut(jobs, shards)):
            yield from block.outcomes
        self._remove_staging()  # every block is done, before the copies close: nothing left behind

    def cut(self, jobs: Sequence[Job], shards: Mapping[Any, Any] | None = None) -> list[WorkBlock]:
        """Blocks, longest texts first, so that the last blocks to finish are short ones: of
        :func:`block_size_for` jobs (``--block-size``); a job of an output shard goes in its shard's one
        block, with the shard's target (``shards``, by ``(copy, shard)``)."""
        loose = [job for job in jobs if getattr(job, "shard", None) is None]
        size = self.cluster.block_size or block_size_for(len(jobs), self.cluster.workers, self.spec.synthesis.batch_size)
        ordered = sorted(loose, key=lambda job: (-len(job.text), job.index))
        blocks = [WorkBlock(ordered[i : i + size]) for i in range(0, len(ordered), size)]
        grouped: dict[Any, list[Job]] = {}
        for job in jobs:
            if getattr(job, "shard", None) is not None:
                grouped.setdefault((job.copy, job.shard), []).append(job)
        for key, members in grouped.items():
            if shards is None or key not in shards:
                raise ValueError(f"job {members[0].id!r} belongs to shard {key}, and no target was given for it")
            blocks.append(WorkBlock(sorted(members, key=lambda job: (-len(job.text), job.index)), {key: shards[key]}))
        return sorted(blocks, key=lambda block: -max((len(job.text) for job in block.jobs), default=0))

    def render_blocks(self, blocks: Sequence[WorkBlock | Sequence[Job]]) -> Iterator[_Block]:
        """Each block's result, as the workers finish them. One block in flight per loaded worker; a lost
        worker's block goes back to the head of the queue and a replacement is started (see the module's
        docstring); fails with :class:`RunError` when a block lost its worker more than
        :data:`RETRIES_PER_BLOCK` times or no worker could be placed within :data:`PLACEMENT_TIMEOUT_S`."""
        ray = self.ray
        lost_errors = _lost_errors(ray)
        queue = collections.deque(
            (number, block if isinstance(block, WorkBlock) else WorkBlock(list(block))) for number, block in enumerate(blocks)
        )
        losses: collections.Counter[int] = collections.Counter()
        idle = [worker for worker in self.pool if worker.described is not None]
        loading = {worker.actor.describe.remote(): worker for worker in self.pool if worker.described is None}
        in_flight: dict[Any, tuple[_Worker, int, WorkBlock]] = {}
        failed_starts = 0
        last_loss = ""
        alone_since: float | None = None
        """When the last loaded worker was lost (None: one is loaded)."""

        def dispatch() -> None:
            while queue and idle:
                worker = idle.pop(0)
                number, block = queue.popleft()
                in_flight[worker.actor.render.remote(block)] = (worker, number, block)
                self._busy.add(worker.slot)

        while queue or in_flight:
            dispatch()
            if in_flight or idle:
                alone_since = None
                timeout = None
            else:
                alone_since = alone_since or time.monotonic()
                timeout = PLACEMENT_TIMEOUT_S - (time.monotonic() - alone_since)
                if timeout <= 0 or not loading:
                    raise RunError(
                        f"no Ray worker is left and no replacement was placed and loaded within {PLACEMENT_TIMEOUT_S:g} s "
                        f"(PLACEMENT_TIMEOUT_S; last loss: {last_loss}): the cluster has no room for a worker any more; "
                        "what was written is kept: rerun with --resume"
                    )
            ready, _ = ray.wait([*in_flight, *loading], num_returns=1, timeout=timeout)
            finished: list[_Block] = []
            for ref in ready:
                if ref in loading:
                    worker = loading.pop(ref)
                    try:
                        self._loaded(worker, ray.get(ref))
                    except lost_errors as error:
                        failed_starts += 1
                        last_loss = _first_line(error)
                        self._retire(worker, error, None, replaced=failed_starts <= REPLACEMENT_FAILURES)
                        if failed_starts > REPLACEMENT_FAILURES:
                            raise RunError(
                                f"{failed_starts} replacement Ray workers in a row died before they had loaded the model "
                                f"(last: {last_loss}); what was written is kept: rerun with --resume"
                            ) from None
                        replacement = self._spawn()
                        loading[replacement.actor.describe.remote()] = replacement
                    else:
                        failed_starts = 0
                        idle.append(worker)
                    continue
                worker, number, block = in_flight.pop(ref)
                self._busy.discard(worker.slot)
                try:
                    result: _Block = ray.get(ref)
                except ray.exceptions.RayTaskError as error:
                    cause = error.cause if isinstance(getattr(error, "cause", None), BaseException) else None
                    if cause is not None and not isinstance(cause, lost_errors):
                        raise cause from None
                    raise RunError(f"a Ray worker failed on {block.describe()}: {_first_line(error)}") from None
                except lost_errors as error:
                    losses[number] += 1
                    last_loss = _first_line(error)
                    giving_up = losses[number] > RETRIES_PER_BLOCK
                    self._retire(worker, error, None if giving_up else block)
                    if giving_up:
                        raise RunError(
                            f"{block.describe()} lost its Ray worker {losses[number]} times (out of memory? a crash? last: "
                            f"{last_loss}); what was written is kept: rerun with --resume (a smaller --block-size "
                            "isolates the utterance)"
                        ) from None
                    queue.appendleft((number, block))
                    replacement = self._spawn()
                    loading[replacement.actor.describe.remote()] = replacement
                else:
                    idle.append(worker)
                    finished.append(result)
            dispatch()  # the next blocks go out before the driver writes this one's records
            for result in finished:
                self._account(result)
                yield result

    def _spawn(self) -> _Worker:
        """Start an actor in a new slot; Ray places it on any node with room."""
        slot, self._slots = self._slots, self._slots + 1
        actor = self.worker_class.options(name=f"{WORKER_NAME_PREFIX}{self.run}-{slot}", namespace=WORKER_NAMESPACE).remote(
            self.spec, self.encoding, f"ray-{self.run}-{slot}", self.retries
        )
        worker = _Worker(actor, slot)
        self.pool.append(worker)
        return worker

    def _loaded(self, worker: _Worker, described: _Described) -> None:
        worker.described = described
        self.workers.setdefault(described.name, WorkerReport(described.name, node=described.node, ip=described.ip))
        if worker.slot >= self.cluster.workers:
            logger.info("replacement Ray worker %s (%s) has loaded the model", described.name, described.ip)

    def _retire(self, worker: _Worker, error: BaseException, block: WorkBlock | None, replaced: bool | None = None) -> None:
        """A lost worker: killed for good (it may only be unreachable) and reported; ``block``: its block,
        which goes back to the queue; ``replaced`` (default: whether there is such a block): a
        replacement is coming."""
        self._kill([worker])
        name = worker.described.name if worker.described is not None else f"slot {worker.slot} (loading the model)"
        if worker.described is not None:
            self.workers[name].lost = _first_line(error)
        what = f": {block.describe()} goes back to the queue" if block is not None else ""
        then = "; starting a replacement" if (block is not None if replaced is None else replaced) else ""
        logger.warning("Ray worker %s was lost (%s)%s%s", name, _first_line(error), what, then)

    def _kill(self, workers: list[_Worker]) -> None:
        for worker in workers:
            if worker in self.pool:
                self.pool.remove(worker)
            try:
                self.ray.kill(worker.actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone, or Ray is gone: nothing to stop
                pass

    def _account(self, block: _Block) -> None:
        for stage, seconds in block.stage_seconds.items():
            self.times.add(stage, seconds)
        self.decode_stats.merge(block.decode)
        worker = self.workers.setdefault(block.worker, WorkerReport(block.worker))
        worker.blocks += 1
        worker.busy_seconds += block.seconds
        for outcome in block.outcomes:
            if isinstance(outcome, Outcome) and outcome.reject is None:
                worker.utterances += 1
                worker.audio_seconds += outcome.duration_s

    def _remove_staging(self) -> None:
        """This run's workers' staging directories (lost workers' too: they hold at most a half-written
        file), and ``.staging`` itself where nothing else is left in it."""
        for directory in self.staging_roots:
            root = Path(directory) / STAGING
            for path in root.glob(f"ray-{self.run}-*"):
                shutil.rmtree(path, ignore_errors=True)
            try:
                root.rmdir()
            except OSError:
                pass  # absent, or another writer's staging directory is still there

    def close(self) -> None:
        """Stop the workers (waiting up to :data:`CLOSE_TIMEOUT_S` for those killed mid-block), remove their
        staging directories, leave Ray if this run joined it and put Ray's logging back. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            busy = [worker.actor for worker in self.pool if worker.slot in self._busy]
            self._kill(list(self.pool))
            if busy:
                try:  # a killed actor answers (with an error) once its process is gone
                    self.ray.wait([actor.describe.remote() for actor in busy], num_returns=len(busy), timeout=CLOSE_TIMEOUT_S)
                except Exception:  # noqa: BLE001 - Ray itself is gone: so are the workers
                    pass
            self._remove_staging()
            if self.started_ray:
                self.ray.shutdown()
        finally:
            self.log.close()
