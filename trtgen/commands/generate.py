"""``trtgen generate``: every row of an infer list becomes one utterance in each dataset copy.

All copies are made in one run: a row's text is encoded once and decoded once per copy, each with
its own dropout rate and seed. An utterance's audio is a pure function of (model, text, style clip,
copy seed, rate, utterance id): dropout masks and the Griffin-Lim phase are drawn from streams keyed
by the copy seed and the utterance id, so reruns, shards and resumed runs give identical files. Each
record carries the digest of those inputs (:func:`inputs_digest`), so ``--resume`` makes an utterance
again when they changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from trtgen import __version__
from trtgen.commands.writers import (
    NAMINGS, SAMPLE_FORMATS, CopyWriter, Expected, ResumeState, UtteranceRecord, write_utterance_wav,
)
from trtgen.corpora.base import Reject, log_rejects
from trtgen.corpora.infer_list import InferRow, read_infer_list
from trtgen.engine.artifact import PRECISIONS, Model, default_model_dir, load_model
from trtgen.fileio import sha256_file
from trtgen.engine.backends import BACKENDS
from trtgen.engine.vocoder import griffin_lim_preset
from trtgen.engine.decode import DecodeStats
from trtgen.engine.synthesis import StageTimes, SynthesisOptions
from trtgen.engine.voice import Rejected, Row, Voice
from trtgen.progress import NoProgress, Progress
from trtgen.errors import Interrupted, MissingInputError, UsageError

logger = logging.getLogger(__name__)

__all__ = [
    "CopySpec", "parse_copies", "parse_shard", "GenerateOptions", "generate_options", "GenerateReport", "Job", "Outcome", "render",
    "run_generate", "copy_seed", "inputs_digest", "StopRequest",
]

_COPY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class CopySpec:
    """One synthetic copy of the corpus: its directory name, prenet dropout rate and seed."""

    name: str
    dropout: float
    seed: int


def copy_seed(base_seed: int, name: str) -> int:
    """A copy's default seed: distinct per copy name, so copies differ even at equal rates."""
    digest = hashlib.blake2b(f"{int(base_seed)}\x1f{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def parse_copies(text: str | None, *, default_dropout: float, base_seed: int) -> list[CopySpec]:
    """``NAME:RATE[:SEED],...`` -> copies; none given means one copy at the model's training rate."""
    if not text:
        name = f"dropout{default_dropout:g}"
        return [CopySpec(name, default_dropout, copy_seed(base_seed, name))]
    copies = []
    for part in text.split(","):
        fields = part.strip().split(":")
        if len(fields) not in (2, 3) or not fields[0]:
            raise UsageError(f"--copies: {part!r} is not NAME:RATE or NAME:RATE:SEED")
        name = fields[0]
        if not _COPY_NAME.match(name):
            raise UsageError(f"--copies: copy name {name!r} must be letters, digits, '.', '_' or '-'")
        try:
            rate = float(fields[1])
            seed = int(fields[2]) if len(fields) == 3 else copy_seed(base_seed, name)
        except ValueError:
            raise UsageError(f"--copies: {part!r}: RATE must be a number and SEED an integer") from None
        if not 0.0 <= rate < 1.0:
            raise UsageError(f"--copies: {name}: dropout rate {rate} must be in [0, 1)")
        copies.append(CopySpec(name, rate, seed))
    names = [c.name for c in copies]
    if len(set(names)) != len(names):
        raise UsageError(f"--copies: copy names repeat: {names}")
    return copies


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``I/N`` -> (I, N) with 0 <= I < N: this process takes rows whose index is I modulo N."""
    if not text:
        return None
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise UsageError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class ClusterOptions:
    """``--ray ADDRESS --workers N [--block-size B]``: render on a Ray cluster (:mod:`trtgen.commands.cluster`)."""

    address: str
    """``local`` (a private Ray instance on this machine), ``auto`` (the cluster ``ray start`` set up) or
    ``ray://host:port`` (Ray Client)."""
    workers: int = 1
    """Actors, each with one loaded model: one GPU each with ``--device cuda``, ``--threads`` CPUs with ``cpu``."""
    block_size: int | None = None
    """Utterances per block sent to a worker; None: chosen from the list (seconds to a minute of work)."""

    def __post_init__(self) -> None:
        if self.address not in ("local", "auto") and not self.address.startswith("ray://"):
            raise UsageError(f"--ray {self.address!r}: give local, auto or ray://HOST:PORT")
        if self.workers < 1:
            raise UsageError(f"--workers {self.workers}: must be 1 or more")
        if self.block_size is not None and self.block_size < 1:
            raise UsageError(f"--block-size {self.block_size}: must be 1 or more")


@dataclass(frozen=True)
class GenerateOptions:
    model_dir: Path
    list_path: Path
    out_dir: Path
    style_root: Path | None = None
    copies: tuple[CopySpec, ...] = ()
    backend: str = "auto"
    device: str = "cpu"
    synthesis: SynthesisOptions = field(default_factory=SynthesisOptions)
    shard: tuple[int, int] | None = None
    limit: int | None = None
    resume: bool = False
    sample_format: str = "pcm16"
    naming: str = "id"
    threads: int | None = None
    cluster: ClusterOptions | None = None
    """Render on Ray workers instead of in this process (same files)."""
    precision: str | None = None
    """``float32`` or ``int8``; None: int8 on the CPU where the model has int8 graphs (docs/throughput.md)."""

    def __post_init__(self) -> None:
        """Every option is checked here, before anything is written (a refused run leaves ``out_dir`` untouched)."""
        if self.limit is not None and self.limit < 0:
            raise UsageError(f"--limit {self.limit}: must be 0 or more")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads {self.threads}: must be 1 or more")
        if self.sample_format not in SAMPLE_FORMATS:
            raise UsageError(f"--format {self.sample_format!r}: choose {' or '.join(SAMPLE_FORMATS)}")
        if self.naming not in NAMINGS:
            raise UsageError(f"--naming {self.naming!r}: choose {' or '.join(NAMINGS)}")
        if self.backend not in BACKENDS:
            raise UsageError(f"--backend {self.backend!r}: choose {', '.join(BACKENDS)}")
        if self.device not in ("cpu", "cuda"):
            raise UsageError(f"--device {self.device!r}: choose cpu or cuda")
        if self.precision not in (None, *PRECISIONS):
            raise UsageError(f"--precision {self.precision!r}: choose {' or '.join(PRECISIONS)}")
        if not Path(self.list_path).is_file():
            raise MissingInputError(f"--list {self.list_path}: no such file")
        if self.style_root is not None and not Path(self.style_root).is_dir():
            raise MissingInputError(f"--style-root {self.style_root}: no such directory")


def generate_options(
    *,
    list_path: Path,
    out_dir: Path,
    model_dir: Path | None = None,
    copies: str | None = None,
    seed: int = 0,
    batch_size: int = 32,
    vocoder: str = "default",
    gl_iters: int | None = None,
    vocoder_device: str | None = None,
    shard: str | None = None,
    ray: str | None = None,
    workers: int = 1,
    block_size: int | None = None,
    **rest: Any,
) -> GenerateOptions:
    """:class:`GenerateOptions` from the command line's values, every one checked (``trtgen generate``)."""
    if ray is None and (workers != 1 or block_size is not None):
        raise UsageError("--workers and --block-size need --ray")
    model_dir = model_dir or default_model_dir()
    card = load_model(model_dir, verify=False).card
    vocoder_options = griffin_lim_preset(vocoder)
    if gl_iters is not None:
        vocoder_options = dataclasses.replace(vocoder_options, n_iter=gl_iters)
    return GenerateOptions(
        model_dir=model_dir, list_path=list_path, out_dir=out_dir,
        copies=tuple(parse_copies(copies, default_dropout=card.model.prenet_dropout, base_seed=seed)),
        synthesis=SynthesisOptions(batch_size=batch_size, vocoder=vocoder_options, vocoder_device=vocoder_device),
        shard=parse_shard(shard), cluster=None if ray is None else ClusterOptions(ray, workers, block_size), **rest,
    )


@dataclass
class CopyReport:
    name: str
    dropout: float
    seed: int
    written: int = 0
    skipped: int = 0
    """Already complete from an earlier run, with the same inputs and an intact file (``--resume``)."""
    inputs_changed: int = 0
    """Recorded by an earlier run, made again because the text, style clip or settings changed."""
    files_missing: int = 0
    """Recorded by an earlier run, made again because the file was gone."""
    files_altered: int = 0
    """Recorded by an earlier run, made again because the file no longer matched its record's digest."""
    rejected: int = 0
    audio_seconds: float = 0.0
    stopped: int = 0
    capped: int = 0


@dataclass
class GenerateReport:
    copies: list[CopyReport]
    rejects: list[Reject]
    wall_seconds: float
    times: StageTimes
    decode: DecodeStats
    backend: str
    startup_seconds: float = 0.0
    """Loading the model (and, with ``--ray``, connecting and starting every worker): once per run."""
    workers: list[Any] = field(default_factory=list)
    """Per Ray worker: blocks, utterances, audio, busy time (:class:`trtgen.commands.cluster.WorkerReport`)."""

    @property
    def written(self) -> int:
        return sum(c.written for c in self.copies)

    @property
    def done(self) -> int:
        """Utterances complete in every copy: written now or by an earlier run."""
        return sum(c.written + c.skipped for c in self.copies)

    @property
    def audio_seconds(self) -> float:
        return sum(c.audio_seconds for c in self.copies)


def _settings(model: Model, copy: CopySpec, options: GenerateOptions, backend: str, precision: str) -> dict[str, Any]:
    """What must be equal for outputs to be combined in one copy directory."""
    vocoder = asdict(options.synthesis.vocoder)
    vocoder.pop("threads", None)
    return {
        "trtgen_version": __version__,
        "model": model.card.name,
        "model_digest": model.digest,
        "backend": backend,
        "precision": precision,
        "copy": copy.name,
        "dropout": copy.dropout,
        "seed": copy.seed,
        "sample_rate": model.card.audio.sample_rate,
        "sample_format": options.sample_format,
        "naming": options.naming,
        "vocoder": vocoder,
    }


def _select_rows(rows: list[InferRow], rejects: list[Reject], options: GenerateOptions) -> tuple[list[InferRow], list[Reject]]:
    if options.limit is not None:
        rows = rows[: options.limit]
        last_line = rows[-1].line if rows else 0
        rejects = [r for r in rejects if r.line is None or r.line <= last_line]
    if options.shard is not None:
        index, count = options.shard
        rows = [r for r in rows if r.index % count == index]
        rejects = rejects if index == 0 else []
    return rows, rejects


@dataclass(frozen=True)
class Job:
    """One utterance of one copy, as the renderer (this process or a cluster worker) needs it."""

    index: int
    """The row's index in the list."""
    id: str
    text: str
    style: str
    """Absolute path of the style clip."""
    copy: str
    dropout: float
    seed: int
    directory: str
    """The copy directory the WAV goes to."""
    audio: str
    """The WAV's file name in that directory."""
    inputs_sha256: str = ""
    """:func:`inputs_digest` of the utterance: its record carries it, so ``--resume`` sees a changed row."""


@dataclass(frozen=True)
class Outcome:
    """What became of a :class:`Job`: written (frames, duration, the WAV's digest...) or rejected with a reason."""

    job: Job
    reject: str | None = None
    frames: int = 0
    steps: int = 0
    duration_s: float = 0.0
    stopped: bool = False
    text: str = ""
    """The transcript the audio speaks (:attr:`~trtgen.engine.voice.Speech.text`), for the record."""
    audio_sha256: str = ""
    """SHA-256 of the WAV as written, computed where it was written (this process or a cluster worker)."""
    audio_bytes: int = 0


def render(voice: Voice, jobs: Iterable[Job], sample_format: str, staging: str | None = None) -> Iterator[Outcome]:
    """Speak ``jobs`` and write each WAV atomically into its copy directory (through the staging directory
    ``staging`` names, :func:`~trtgen.commands.writers.staging_dir`); yields outcomes as they finish. The
    one body of work that a single process and a cluster worker share."""
    rows = (Row(job.id, job.text, job.style, job.dropout, job.seed, tag=job) for job in jobs)
    for result in voice.stream(rows):
        job: Job = result.tag
        if isinstance(result, Rejected):
            yield Outcome(job, reject=result.reason)
            continue
        started = time.perf_counter()
        written = write_utterance_wav(Path(job.directory), job.audio, result.audio, voice.sample_rate, sample_format, staging)
        voice.times.add("writing", time.perf_counter() - started)
        yield Outcome(
            job, frames=result.frames, steps=result.steps, duration_s=result.duration_s, stopped=result.stopped,
            text=result.text, audio_sha256=written.sha256, audio_bytes=written.size_bytes,
        )


def inputs_digest(utterance_id: str, text: str, style_sha256: str, settings: dict[str, Any]) -> str:
    """SHA-256 of everything that determines an utterance's audio: its id (which keys its random
    streams), the list row's text, the style clip's bytes, and the copy's settings (model digest,
    dropout, seed, vocoder, backend, sample format...)."""
    payload = json.dumps([utterance_id, text, style_sha256, settings], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


StopRequest = Callable[[], "str | None"]
"""Asked after each utterance is written: the reason to stop there (e.g. ``"SIGTERM"``), or None to go on."""


def _style_digests(rows: list[InferRow], rejects: list[Reject]) -> tuple[list[InferRow], dict[Path, str]]:
    """SHA-256 of each style clip, read once per run; rows whose clip cannot be read become rejects."""
    digests: dict[Path, str] = {}
    problems: dict[Path, str] = {}
    kept = []
    for row in rows:
        if row.style not in digests and row.style not in problems:
            try:
                digests[row.style] = sha256_file(row.style)
            except OSError as error:
                problems[row.style] = error.strerror or str(error)
        if row.style in problems:
            rejects.append(Reject(row.source, row.line, f"style clip unreadable: {row.style} ({problems[row.style]})", row.id))
        else:
            kept.append(row)
    return kept, digests


def run_generate(options: GenerateOptions, progress: Progress | None = None, stop: StopRequest | None = None) -> GenerateReport:
    """Generate every copy of ``options.list_path``; rows that cannot be spoken are rejected, not raised.

    ``stop`` is asked after each utterance is written; when it names a reason, the run stops there, the
    records are rewritten in list order and :class:`~trtgen.errors.Interrupted` carries the report. Any
    other failure (an :class:`~trtgen.errors.OutputError` such as a full disk, a second Ctrl-C) leaves
    every complete record in place and releases the copies' locks: ``--resume`` continues."""
    started = time.perf_counter()
    progress = progress or NoProgress()
    model = load_model(options.model_dir)
    if options.cluster is not None:
        from trtgen.commands.cluster import RayRenderer

        renderer: Renderer = RayRenderer.start(options)
    else:
        renderer = LocalRenderer(options)
    try:
        return _generate(options, model, renderer, progress, stop, started)
    finally:
        renderer.close()


class Renderer(Protocol):
    """Who turns jobs into WAVs and outcomes: this process (:class:`LocalRenderer`) or a Ray cluster
    (:class:`trtgen.commands.cluster.RayRenderer`). Both run :func:`render`."""

    backend_name: str
    """``<backend>-<device>`` as the copies' settings record it."""
    precision: str
    """``float32`` or ``int8``: which graphs run (the copies' settings record it too)."""
    times: StageTimes
    decode_stats: DecodeStats
    startup_seconds: float

    def render(self, jobs: list[Job]) -> Iterator[Outcome]: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


class LocalRenderer:
    """Renders in this process, with the voice loaded here."""

    def __init__(self, options: GenerateOptions) -> None:
        started = time.perf_counter()
        self.options = options
        self.voice = Voice.load(
            options.model_dir, backend=options.backend, device=options.device, threads=options.threads,
            vocoder=options.synthesis.vocoder, options=options.synthesis, precision=options.precision, verify=False,
        )
        backend = self.voice.synthesizer.backend
        self.backend_name = f"{backend.name}-{backend.device}"
        self.precision = self.voice.precision
        self.times = self.voice.times
        self.decode_stats = self.voice.decode_stats
        self.startup_seconds = time.perf_counter() - started
        self.workers: dict[str, Any] = {}

    def render(self, jobs: list[Job]) -> Iterator[Outcome]:
        return render(self.voice, jobs, self.options.sample_format)

    def describe(self) -> str:
        return self.voice.describe()

    def close(self) -> None:
        pass


def _generate(
    options: GenerateOptions, model: Model, renderer: Renderer, progress: Progress, stop: StopRequest | None, started: float
) -> GenerateReport:
    copies = list(options.copies) or parse_copies(None, default_dropout=model.card.model.prenet_dropout, base_seed=0)
    all_rows, list_rejects = read_infer_list(options.list_path, options.style_root)
    rows, list_rejects = _select_rows(all_rows, list_rejects, options)
    rows, style_sha256 = _style_digests(rows, list_rejects)
    log_rejects(list_rejects, "list rows")

    writers: list[CopyWriter] = []
    reports: list[CopyReport] = []
    expected: list[dict[str, Expected]] = []
    copy_rejects: list[list[Reject]] = [list(list_rejects) for _ in copies]
    all_rejects: list[Reject] = []
    try:
        for copy in copies:
            settings = _settings(model, copy, options, renderer.backend_name, renderer.precision)
            writer = CopyWriter(options.out_dir / copy.name, settings, shard=options.shard, naming=options.naming)
            writers.append(writer)
            expected.append({
                row.id: Expected(writer.audio_name(row.id, row.index), inputs_digest(row.id, row.text, style_sha256[row.style], settings))
                for row in rows
            })
            states = writer.open(resume=options.resume, expected=expected[-1], progress=progress)
            reports.append(CopyReport(
                copy.name, copy.dropout, copy.seed, skipped=states[ResumeState.DONE], inputs_changed=states[ResumeState.CHANGED],
                files_missing=states[ResumeState.MISSING], files_altered=states[ResumeState.ALTERED],
            ))
        jobs = [
            Job(row.index, row.id, row.text, str(row.style), copy.name, copy.dropout, copy.seed, str(writer.directory),
                wanted[row.id].audio, wanted[row.id].inputs_sha256)
            for row in rows
            for copy, writer, wanted in zip(copies, writers, expected)
            if row.id not in writer.completed
        ]
        by_index = {row.index: row for row in rows}
        copy_index = {copy.name: i for i, copy in enumerate(copies)}
        progress.start("generate", len(jobs))
        stopped_by = stop() if stop is not None else None  # a signal while the written files were checked
        outcomes = renderer.render(jobs if stopped_by is None else [])
        for outcome in outcomes:
            job, row = outcome.job, by_index[outcome.job.index]
            i = copy_index[job.copy]
            if outcome.reject is not None:
                copy_rejects[i].append(Reject(row.source, row.line, outcome.reject, row.id))
                progress.advance(1)
            else:
                _record(writers[i], reports[i], row, job, outcome)
                progress.advance(1, outcome.duration_s)
            if stop is not None and (stopped_by := stop()) is not None:
                break
        outcomes.close()
        order = [row.id for row in rows]
        for i, writer in enumerate(writers):
            rejects = sorted(copy_rejects[i], key=lambda r: r.line or 0)
            writer.close(order, rejects)
            reports[i].rejected = len(rejects)
            all_rejects.extend(rejects)
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    report = GenerateReport(
        copies=reports,
        rejects=all_rejects,
        wall_seconds=time.perf_counter() - started,
        times=renderer.times,
        decode=renderer.decode_stats,
        backend=renderer.describe(),
        startup_seconds=renderer.startup_seconds,
        workers=list(getattr(renderer, "workers", {}).values()),
    )
    if stopped_by is not None:
        raise Interrupted(
            f"stopped by {stopped_by} after the utterance being written: {report.written} utterance(s) written in this run, "
            f"{report.done} of {len(rows) * len(copies)} done; the records are complete",
            partial=report,
        )
    return report


def _record(writer: CopyWriter, report: CopyReport, row: InferRow, job: Job, outcome: Outcome) -> None:
    """Append a written utterance's record: the spoken text (and the row's, where it differs) and the digests."""
    spoken = outcome.text or row.text
    writer.append(UtteranceRecord(
        id=row.id, index=row.index, text=spoken, text_input=None if spoken == row.text else row.text, style=str(row.style),
        copy=job.copy, dropout=job.dropout, seed=job.seed, frames=outcome.frames, steps=outcome.steps,
        duration_s=round(outcome.duration_s, 6), stopped=outcome.stopped, capped=not outcome.stopped, audio=job.audio,
        audio_bytes=outcome.audio_bytes, audio_sha256=outcome.audio_sha256, inputs_sha256=job.inputs_sha256,
    ))
    report.written += 1
    report.audio_seconds += outcome.duration_s
    report.stopped += int(outcome.stopped)
    report.capped += int(not outcome.stopped)
