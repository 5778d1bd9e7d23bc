"""``trtgen generate``: every row of an infer list becomes one utterance in each dataset copy.

All copies are made in one run: a row's text is encoded once and decoded once per copy, each with
its own dropout rate and seed. An utterance's audio is a pure function of (model, text, style clip,
copy seed, rate, utterance id): dropout masks and the Griffin-Lim phase are drawn from streams keyed
by the copy seed and the utterance id, so reruns, shards and resumed runs give identical files. Each
record carries the digest of those inputs (:func:`inputs_digest`), so ``--resume`` makes an utterance
again when they changed, and the copy keeps one current record per utterance whatever sequence of
runs and list edits made it (:mod:`trtgen.commands.writers`).

Everything that can be refused is refused before any file is written: options, the list (encoding,
empty), ``--out``, manifest ids that two copies would share, and the copies' locks and settings. The
model is loaded once per process (:class:`~trtgen.engine.voice.VoiceSpec`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from trtgen import __version__
from trtgen.commands.cluster import ClusterOptions
from trtgen.commands.jobs import Job, Outcome, render, write_empty_shards
from trtgen.commands.shard_formats import LAYOUTS, SHARD_LAYOUTS, member_id_problem
from trtgen.commands.shards import DEFAULT_SHARD_UTTERANCES, ShardedCopyWriter, ShardTarget, ShardWritten, read_sharded_copy
from trtgen.commands.writers import (
    NAMINGS, AudioEncoding, CopyWriter, Expected, ResumeState, UtteranceRecord,
)
from trtgen.corpora.base import Reject, log_rejects
from trtgen.corpora.infer_list import InferRow, read_infer_list
from trtgen.corpora.synthetic import is_sharded_copy, list_copies, manifest_id, record_files
from trtgen.engine.artifact import Model
from trtgen.engine.decode import DecodeStats
from trtgen.engine.synthesis import StageTimes, SynthesisOptions
from trtgen.engine.quality import parse_quality_overrides
from trtgen.engine.styles import DEFAULT_CONCENTRATION, STYLE_MODES, StyleBlend, StyleTokens, draw_style
from trtgen.engine.vocoder import griffin_lim_preset
from trtgen.engine.voice import Voice, VoiceSpec
from trtgen.errors import Interrupted, MissingInputError, UsageError
from trtgen.fileio import iter_jsonl, sha256_file
from trtgen.progress import NoProgress, Progress
from trtgen.storage import Storage, is_url

logger = logging.getLogger(__name__)

__all__ = [
    "CopySpec", "parse_copies", "default_copy", "parse_shard", "GenerateOptions", "generate_options", "GenerateReport",
    "CopyReport", "run_generate", "copy_seed", "inputs_digest", "StopRequest",
]

_COPY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
DEFAULT_RETRIES = 2
"""Attempts more at an utterance the quality gate fails (docs/quality.md: what
they turn into passing utterances, and what they cost)."""


@dataclass(frozen=True)
class CopySpec:
    """One synthetic copy of the corpus: its directory name, prenet dropout rate, seed, and how each
    utterance's style is made (:data:`~trtgen.engine.styles.STYLE_MODES`: ``clip``, ``blend``, ``tokens``)."""

    name: str
    dropout: float
    seed: int
    style: str = "clip"


def copy_seed(base_seed: int, name: str) -> int:
    """A copy's default seed: distinct per copy name, so copies differ even at equal rates."""
    digest = hashlib.blake2b(f"{int(base_seed)}\x1f{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def default_copy(dropout: float, base_seed: int = 0) -> CopySpec:
    """The copy made when ``--copies`` names none: one at the model's training dropout rate."""
    name = f"dropout{dropout:g}"
    return CopySpec(name, dropout, copy_seed(base_seed, name))


def parse_copies(text: str | None, *, base_seed: int = 0) -> tuple[CopySpec, ...]:
    """``NAME:RATE[:SEED[:STYLE]],...`` -> copies (an empty SEED: derived from ``base_seed`` and the
    name); nothing given -> () (:func:`default_copy` once the model is known)."""
    if not text:
        return ()
    copies = []
    for part in text.split(","):
        fields = part.strip().split(":")
        if len(fields) not in (2, 3, 4) or not fields[0]:
            raise UsageError(f"--copies: {part!r} is not NAME:RATE[:SEED[:STYLE]]")
        name = fields[0]
        if not _COPY_NAME.match(name):
            raise UsageError(f"--copies: copy name {name!r} must be letters, digits, '.', '_' or '-'")
        try:
            rate = float(fields[1])
            seed = int(fields[2]) if len(fields) >= 3 and fields[2] else copy_seed(base_seed, name)
        except ValueError:
            raise UsageError(f"--copies: {part!r}: RATE must be a number and SEED an integer") from None
        if not 0.0 <= rate < 1.0:
            raise UsageError(f"--copies: {name}: dropout rate {rate} must be in [0, 1)")
        style = fields[3] if len(fields) == 4 else "clip"
        if style not in STYLE_MODES:
            raise UsageError(f"--copies: {name}: style {style!r}: choose {', '.join(STYLE_MODES)}")
        copies.append(CopySpec(name, rate, seed, style))
    names = [c.name for c in copies]
    if len(set(names)) != len(names):
        raise UsageError(f"--copies: copy names repeat: {names}")
    return tuple(copies)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``I/N`` -> (I, N) with 0 <= I < N: this process takes rows whose index is I modulo N."""
    if not text:
        return None
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise UsageError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class GenerateOptions:
    """One ``trtgen generate`` run; every field is checked here, before anything is written.

    Attributes:
        list_path: the infer list (``infer.jsonl`` or OpenSeq2Seq's ``generate.csv``).
        out_dir: the output root, one sub-directory per copy.
        voice: the model and how to run it (loaded once per process).
        copies: the dataset copies; () means one at the model's training dropout (:func:`default_copy`).
        seed: the base seed of copies given without one.
        shard: ``(I, N)``: only rows whose index is I modulo N.
        limit: only the first N rows of the list.
        resume: continue earlier runs into the same copies.
        prune: remove the utterances (records and files) of rows no longer in the list.
        sample_format: ``pcm16`` or ``float32`` samples (FLAC: ``pcm16``).
        audio_format: ``wav`` or ``flac``.
        sample_rate: the rate written (resampled from the model's); None: the model's.
        layout: ``files`` (one audio file per utterance, what OpenSeq2Seq reads), ``shar`` (Lhotse Shar)
            or ``nemo-tarred`` (NeMo's tarred audio dataset): :mod:`trtgen.commands.shards`.
        shard_utterances: rows per shard of a shard layout.
        naming: ``id`` (``<id>.wav``) or ``openseq2seq`` (``sample_step0_{N}_syn.wav``).
        cluster: render on Ray workers instead of in this process (the same files).
        retries: attempts more, each with the next dropout stream, at an utterance the quality gate
            fails (:mod:`trtgen.engine.quality`); the gate's thresholds are ``voice.quality``'s.
        style_concentration: how near a ``tokens`` copy's drawn token weights stay to the clip's own.
    """

    list_path: Path
    out_dir: Path | str
    voice: VoiceSpec = field(default_factory=VoiceSpec)
    style_root: Path | None = None
    copies: tuple[CopySpec, ...] = ()
    seed: int = 0
    shard: tuple[int, int] | None = None
    limit: int | None = None
    resume: bool = False
    prune: bool = False
    sample_format: str = "pcm16"
    audio_format: str = "wav"
    sample_rate: int | None = None
    layout: str = "files"
    shard_utterances: int = DEFAULT_SHARD_UTTERANCES
    naming: str = "id"
    cluster: ClusterOptions | None = None
    retries: int = DEFAULT_RETRIES
    style_concentration: float = DEFAULT_CONCENTRATION

    def __post_init__(self) -> None:
        if not self.style_concentration > 0:
            raise UsageError(f"--style-concentration {self.style_concentration}: must be above 0")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise UsageError(f"--retries {self.retries!r}: must be 0 or more")
        if self.limit is not None and self.limit < 0:
            raise UsageError(f"--limit {self.limit}: must be 0 or more")
        rate = 16000 if self.sample_rate is None else self.sample_rate
        AudioEncoding(self.audio_format, self.sample_format, rate, rate)  # checks the format, container and rate
        if self.layout not in LAYOUTS:
            raise UsageError(f"--layout {self.layout!r}: choose {', '.join(LAYOUTS)}")
        if isinstance(self.shard_utterances, bool) or not isinstance(self.shard_utterances, int) or self.shard_utterances < 1:
            raise UsageError(f"--shard-utterances {self.shard_utterances!r}: must be 1 or more")
        if self.layout in SHARD_LAYOUTS and self.naming != "id":
            raise UsageError(f"--naming {self.naming}: shards name their members <id>_<copy>; positional names are for --layout files")
        if self.layout in SHARD_LAYOUTS and self.prune and self.shard is not None:
            raise UsageError("--prune removes shards from the whole copy: run it without --shard")
        if self.naming not in NAMINGS:
            raise UsageError(f"--naming {self.naming!r}: choose {' or '.join(NAMINGS)}")
        if self.prune and self.shard is not None:
            raise UsageError("--prune removes utterances from the whole copy: run it without --shard")
        if not Path(self.list_path).is_file():
            raise MissingInputError(f"--list {self.list_path}: no such file")
        if self.style_root is not None and not Path(self.style_root).is_dir():
            raise MissingInputError(f"--style-root {self.style_root}: no such directory")
        if is_url(self.out_dir):
            storage = Storage.at(str(self.out_dir))
            if storage.is_local:
                object.__setattr__(self, "out_dir", storage.path)
            elif self.shard is not None:
                raise UsageError(f"--shard with --out {self.out_dir}: on object storage one driver writes a copy; use --ray to spread the work")
            elif self.layout not in SHARD_LAYOUTS:
                raise UsageError(
                    f"--out {self.out_dir}: --layout files writes loose files for OpenSeq2Seq, which reads local paths; "
                    "on object storage use --layout shar or nemo-tarred"
                )
            else:
                return
        out = Path(self.out_dir)
        object.__setattr__(self, "out_dir", out)
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out}: a file, not a directory")
        taken = [c.name for c in self.copies if (out / c.name).exists() and not (out / c.name).is_dir()]
        if taken:
            raise UsageError(f"--out {out}: {out / taken[0]} is a file, not a copy directory")


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
    backend: str = "auto",
    device: str = "cpu",
    threads: int | None = None,
    precision: str | None = None,
    shard: str | None = None,
    ray: str | None = None,
    workers: int = 1,
    block_size: int | None = None,
    quality: str | None = None,
    retries: int | None = None,
    style_concentration: float | None = None,
    **rest: Any,
) -> GenerateOptions:
    """:class:`GenerateOptions` from the command line's values, every one checked (``trtgen generate``)."""
    if ray is None and (workers != 1 or block_size is not None):
        raise UsageError("--workers and --block-size need --ray")
    vocoder_options = griffin_lim_preset(vocoder)
    if gl_iters is not None:
        vocoder_options = dataclasses.replace(vocoder_options, n_iter=gl_iters)
    voice = VoiceSpec(
        model_dir=model_dir, backend=backend, device=device, threads=threads, precision=precision,
        synthesis=SynthesisOptions(batch_size=batch_size, vocoder=vocoder_options, vocoder_device=vocoder_device),
        quality=tuple(parse_quality_overrides(quality).items()),
    )
    return GenerateOptions(
        list_path=list_path, out_dir=out_dir, voice=voice, copies=parse_copies(copies, base_seed=seed), seed=seed,
        shard=parse_shard(shard), cluster=None if ray is None else ClusterOptions(ray, workers, block_size),
        retries=DEFAULT_RETRIES if retries is None else retries,
        style_concentration=DEFAULT_CONCENTRATION if style_concentration is None else style_concentration, **rest,
    )


@dataclass
class CopyReport:
    """One copy's counts, for the end-of-run table.

    Attributes:
        skipped: already complete from an earlier run, with the same inputs and an intact file.
        inputs_changed, files_missing, files_altered: recorded by an earlier run, made again because the
            text, style clip or settings changed, the file was gone, or it no longer matched its record.
        not_in_list: utterances of the copy whose row is no longer in the list (kept unless ``prune``).
        pruned: of those, removed (records and files) by ``--prune``.
        failed: written utterances the quality gate failed after every attempt; ``failed_reasons``
            counts their reasons (an utterance may have several).
        retried: written utterances that passed on a later attempt.
    """

    name: str
    dropout: float
    seed: int
    written: int = 0
    skipped: int = 0
    inputs_changed: int = 0
    files_missing: int = 0
    files_altered: int = 0
    rejected: int = 0
    not_in_list: int = 0
    pruned: int = 0
    audio_seconds: float = 0.0
    stopped: int = 0
    capped: int = 0
    failed: int = 0
    failed_reasons: Counter[str] = field(default_factory=Counter)
    retried: int = 0


@dataclass
class GenerateReport:
    """What a run did.

    Attributes:
        startup_seconds: loading the model (and, with ``--ray``, connecting and starting every worker).
        workers: per Ray worker: blocks, utterances, audio, busy time
            (:class:`trtgen.commands.cluster.WorkerReport`).
    """

    copies: list[CopyReport]
    rejects: list[Reject]
    wall_seconds: float
    times: StageTimes
    decode: DecodeStats
    backend: str
    startup_seconds: float = 0.0
    workers: list[Any] = field(default_factory=list)
    ray_log: Path | None = None
    """With ``--ray``: the file Ray's own log lines went to (not the terminal)."""

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
    """What must be equal for outputs to be combined in one copy directory (the quality gate's thresholds
    and retries too: they decide which attempt of a failing utterance is kept; the style mode when it is
    not OpenSeq2Seq's ``clip``, which copies made before style modes had)."""
    vocoder = asdict(options.voice.synthesis.vocoder)
    vocoder.pop("threads", None)
    style = {}
    if copy.style != "clip":
        style = {"style": {"mode": copy.style, **({"concentration": options.style_concentration} if copy.style == "tokens" else {})}}
    return {
        **style,
        "quality": options.voice.quality_thresholds(model.card).to_json(),
        "retries": options.retries,
        "trtgen_version": __version__,
        "model": model.card.name,
        "model_digest": model.source_digest,
        "backend": backend,
        "precision": precision,
        "copy": copy.name,
        "dropout": copy.dropout,
        "seed": copy.seed,
        **_audio_settings(model, options),
        "sample_format": options.sample_format,
        "naming": options.naming,
        "vocoder": vocoder,
    }


def _audio_settings(model: Model, options: GenerateOptions) -> dict[str, Any]:
    """The rate written (and the model's, where they differ), the container and the layout, each named
    only where it differs from what copies made before these options had (so that those resume)."""
    encoding = audio_encoding(model, options)
    settings: dict[str, Any] = {"sample_rate": encoding.sample_rate}
    if encoding.resampled:
        settings["model_sample_rate"] = encoding.model_rate
        settings["resampler"] = "soxr HQ"
    if encoding.audio_format != "wav":
        settings["audio_format"] = encoding.audio_format
    if options.layout != "files":
        settings.update(layout=options.layout, shard_utterances=options.shard_utterances)
    return settings


def audio_encoding(model: Model, options: GenerateOptions) -> AudioEncoding:
    """How this run stores audio: container, samples, and the rate (the model's unless ``--sample-rate``)."""
    rate = model.card.audio.sample_rate
    return AudioEncoding(options.audio_format, options.sample_format, options.sample_rate or rate, rate)


def inputs_digest(utterance_id: str, text: str, style_sha256: str, settings: dict[str, Any]) -> str:
    """SHA-256 of everything that determines an utterance's audio: its id (which keys its random
    streams), the list row's text, the style clip's bytes, and the copy's settings (model digest,
    dropout, seed, vocoder, backend, sample format...), the quality gate's aside (:data:`GATE_SETTINGS`:
    they touch only utterances that fail, and the settings check already holds them equal)."""
    audio_settings = {k: v for k, v in settings.items() if k not in GATE_SETTINGS}
    payload = json.dumps([utterance_id, text, style_sha256, audio_settings], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


GATE_SETTINGS = ("quality", "retries")
"""Settings of the quality gate: in ``settings.json`` (a copy keeps them), not in the inputs digest."""

StopRequest = Callable[[], "str | None"]
"""Asked after each utterance is written: the reason to stop there (e.g. ``"SIGTERM"``), or None to go on."""


@dataclass
class _Listing:
    """The list as this run takes it: its rows (after ``--limit``/``--shard``), every id of the whole
    list, the style clips' digests, and the rows rejected while reading."""

    rows: list[InferRow]
    listed: set[str]
    style_sha256: dict[Path, str]
    rejects: list[Reject]
    clips: list[Path]
    """Every style clip the whole list names (before ``--limit``/``--shard``): ``blend``'s partners."""
    size: int = 0
    """Row positions of the whole list (the last row's index + 1): how many shards it makes."""

    def pool(self) -> dict[str, Path]:
        """The list's readable clips by digest (``blend`` draws a partner from them); digests computed once."""
        pool: dict[str, Path] = {}
        for clip in self.clips:
            if clip not in self.style_sha256:
                try:
                    self.style_sha256[clip] = sha256_file(clip)
                except OSError:
                    continue
            pool.setdefault(self.style_sha256[clip], clip)
        return pool


def _read_listing(options: GenerateOptions) -> _Listing:
    """Read and select the list's rows, and digest each style clip once; refuses (exit 2) an empty or
    undecodable list before anything is written."""
    all_rows, rejects = read_infer_list(options.list_path, options.style_root, check_style=False)
    listed = {row.id for row in all_rows}
    rows = all_rows
    if options.limit is not None:
        rows = rows[: options.limit]
        last_line = rows[-1].line if rows else 0
        rejects = [r for r in rejects if r.line is None or r.line <= last_line]
    if options.shard is not None:
        index, count = options.shard
        # A process shard takes rows (--layout files) or whole output shards of --shard-utterances rows.
        unit = options.shard_utterances if options.layout in SHARD_LAYOUTS else 1
        rows = [r for r in rows if (r.index // unit) % count == index]
        rejects = rejects if index == 0 else []
    digests: dict[Path, str] = {}
    problems: dict[Path, str] = {}
    kept = []
    for row in rows:
        if row.style not in digests and row.style not in problems:
            try:
                digests[row.style] = sha256_file(row.style)
            except FileNotFoundError:
                problems[row.style] = f"style clip not found: {row.style}"
            except OSError as error:
                problems[row.style] = f"style clip unreadable: {row.style} ({error.strerror or error})"
        if row.style in problems:
            rejects.append(Reject(row.source, row.line, problems[row.style], row.id))
        else:
            kept.append(row)
    rejects.sort(key=lambda r: r.line or 0)
    size = max((row.index for row in all_rows), default=-1) + 1
    return _Listing(kept, listed, digests, rejects, sorted({row.style for row in all_rows}), size)


def _check_manifest_ids(out_dir: Path | str, copies: list[CopySpec], rows: list[InferRow]) -> None:
    """Refuse (exit 2) before any audio is made when two utterances of the output would share a manifest
    id (``x`` in copy ``a_b`` and ``x_a`` in copy ``b`` are both ``x_a_b``): this run's copies against
    each other and against the copies already under ``out_dir``."""
    names = {c.name for c in copies}
    existing = set(list_copies(out_dir)) - names if not is_url(out_dir) and Path(out_dir).is_dir() else set()
    everything = names | existing
    if not any(a != b and a.endswith("_" + b) for a in everything for b in everything):
        return
    ids = [r.id for r in rows]
    seen: dict[str, str] = {}
    for copy in sorted(names):
        for utterance_id in ids:
            _claim(seen, manifest_id(utterance_id, copy), f"{utterance_id!r} in copy {copy!r}")
    for copy in sorted(existing):
        for utterance_id in _recorded_ids(Path(out_dir) / copy):
            _claim(seen, manifest_id(utterance_id, copy), f"{utterance_id!r} in copy {copy!r} (already under --out)")


def _recorded_ids(copy_dir: Path) -> Iterator[str]:
    """The utterance ids a copy already under ``--out`` records (records files, or shard commit records)."""
    if is_sharded_copy(copy_dir):
        for commit in read_sharded_copy(copy_dir).shards.values():
            yield from (r["id"] for r in commit.records if isinstance(r.get("id"), str))
        return
    for path in record_files(copy_dir):
        for line in iter_jsonl(path):
            if line.error is None and isinstance(line.value.get("id"), str):
                yield line.value["id"]


def _check_member_ids(layout: str, copies: list[CopySpec], listing: _Listing) -> None:
    """A shard names its members ``<id>_<copy>`` (tar member names): refuse a copy name no member could
    carry (exit 2), reject the rows whose id cannot (each with the reason)."""
    for copy in copies:
        problem = member_id_problem(layout, manifest_id("utterance", copy.name))
        if problem is not None:
            raise UsageError(f"--copies: copy name {copy.name!r} with --layout {layout}: {problem}; name the copy NAME:RATE, e.g. d05:0.5")
    kept = []
    for row in listing.rows:
        problem = member_id_problem(layout, manifest_id(row.id, copies[0].name))
        if problem is None:
            kept.append(row)
        else:
            listing.rejects.append(Reject(row.source, row.line, f"id {row.id!r} with --layout {layout}: {problem}", row.id))
    listing.rows = kept
    listing.rejects.sort(key=lambda r: r.line or 0)


def _claim(seen: dict[str, str], key: str, who: str) -> None:
    other = seen.setdefault(key, who)
    if other != who:
        raise UsageError(
            f"utterance {who} and utterance {other} would both be {key!r} in the manifests (ids are <id>_<copy>): "
            "rename one of the copies (a copy name that ends with '_' and another copy's name invites this)"
        )


class Renderer(Protocol):
    """Who turns jobs into WAVs and outcomes: this process (:class:`LocalRenderer`) or a Ray cluster
    (:class:`trtgen.commands.cluster.RayRenderer`). Both run :func:`~trtgen.commands.jobs.render`.

    Attributes:
        backend_name: ``<backend>-<device>`` as the copies' settings record it.
        precision: ``float32`` or ``int8``: which graphs run (the copies' settings record it too).
    """

    backend_name: str
    precision: str
    times: StageTimes
    decode_stats: DecodeStats
    startup_seconds: float

    def render(self, jobs: list[Job], shards: dict[tuple[str, int], ShardTarget]) -> Iterator[Outcome | ShardWritten]: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


class LocalRenderer:
    """Renders in this process, with the voice loaded here."""

    def __init__(self, voice: Voice, encoding: AudioEncoding, retries: int, startup_seconds: float) -> None:
        self.voice = voice
        self.encoding = encoding
        self.retries = retries
        backend = voice.synthesizer.backend
        self.backend_name = f"{backend.name}-{backend.device}"
        self.precision = voice.precision
        self.times = voice.times
        self.decode_stats = voice.decode_stats
        self.startup_seconds = startup_seconds
        self.workers: dict[str, Any] = {}

    def render(self, jobs: list[Job], shards: dict[tuple[str, int], ShardTarget]) -> Iterator[Outcome | ShardWritten]:
        return render(self.voice, jobs, self.encoding, retries=self.retries, shards=shards)

    def describe(self) -> str:
        return self.voice.describe()

    def close(self) -> None:
        pass


def run_generate(options: GenerateOptions, progress: Progress | None = None, stop: StopRequest | None = None) -> GenerateReport:
    """Generate every copy of ``options.list_path``; rows that cannot be spoken are rejected, not raised.

    The copies' locks are taken before the voice is loaded or Ray is touched, so a second run on the same
    ``--out`` is refused at once. ``stop`` is asked after each utterance is written; when it names a
    reason, the run stops there, the records are rewritten in list order and
    :class:`~trtgen.errors.Interrupted` carries the report. Any other failure (an
    :class:`~trtgen.errors.OutputError` such as a full disk, a second Ctrl-C) leaves every complete
    record (or committed shard) in place and releases the copies' locks: ``--resume`` continues."""
    started = time.perf_counter()
    progress = progress or NoProgress()
    listing = _read_listing(options)
    model = options.voice.load_model()
    copies = list(options.copies) or [default_copy(model.card.model.prenet_dropout, options.seed)]
    _check_manifest_ids(options.out_dir, copies, listing.rows)
    if options.layout in SHARD_LAYOUTS:
        _check_member_ids(options.layout, copies, listing)
    if any(c.style == "tokens" for c in copies) and not model.card.has_style_tokens:
        raise UsageError(
            f"--copies: a tokens copy needs the model's token bank, and {model.directory} has none: add it with "
            f"`python -m trtgen_export.style_tokens {model.directory}` or re-export the model with this trtgen"
        )
    encoding = audio_encoding(model, options)
    writers = [_writer(options, copy, encoding) for copy in copies]
    try:
        for writer in writers:
            writer.lock()
        if options.cluster is not None:
            from trtgen.commands.cluster import RayRenderer

            renderer: Renderer = RayRenderer.start(options.voice, options.cluster, encoding, options.retries, log_path=_ray_log(options))
        else:
            voice = Voice.from_model(model, options.voice)
            renderer = LocalRenderer(voice, encoding, options.retries, time.perf_counter() - started)
    except BaseException:
        for writer in reversed(writers):  # the last made is the innermost: --out itself goes last, if it was made
            writer.abort()
        raise
    try:
        return _generate(options, model, copies, writers, listing, renderer, progress, stop, started)
    finally:
        renderer.close()


def _writer(options: GenerateOptions, copy: CopySpec, encoding: AudioEncoding) -> CopyWriter | ShardedCopyWriter:
    """The writer of one copy (its settings are set once the renderer has said which backend runs)."""
    if options.layout in SHARD_LAYOUTS:
        location = Storage.at(str(options.out_dir)).child(copy.name)
        return ShardedCopyWriter(location, {"copy": copy.name}, layout=options.layout, shard_utterances=options.shard_utterances,
                                 process_shard=options.shard, extension=encoding.extension)
    return CopyWriter(Path(options.out_dir) / copy.name, {}, shard=options.shard, naming=options.naming, extension=encoding.extension)


def _ray_log(options: GenerateOptions) -> Path:
    """Where Ray's own log lines go: beside the copies on local disk, else in the working directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = Path(options.out_dir) if not is_url(options.out_dir) else Path.cwd()
    return root / f"ray-{stamp}.log"


def _generate(
    options: GenerateOptions, model: Model, copies: list[CopySpec], writers: list[CopyWriter | ShardedCopyWriter],
    listing: _Listing, renderer: Renderer, progress: Progress, stop: StopRequest | None, started: float,
) -> GenerateReport:
    rows = listing.rows
    pool = listing.pool() if any(c.style == "blend" for c in copies) else {}
    log_rejects(listing.rejects, "list rows")

    reports: list[CopyReport] = []
    expected: list[dict[str, Expected]] = []
    drawn: list[dict[str, Path | StyleBlend | StyleTokens]] = []
    copy_rejects: list[list[Reject]] = [list(listing.rejects) for _ in copies]
    all_rejects: list[Reject] = []
    indices = {row.id: row.index for row in rows}
    resampled_rate = options.sample_rate if options.sample_rate not in (None, model.card.audio.sample_rate) else None
    try:
        for copy, writer in zip(copies, writers):
            settings = _settings(model, copy, options, renderer.backend_name, renderer.precision)
            writer.settings = settings
            styles = {row.id: _draw(copy, row, listing.style_sha256[row.style], pool, options.style_concentration) for row in rows}
            drawn.append(styles)
            expected.append({
                row.id: Expected(writer.audio_name(row.id, row.index),
                                 inputs_digest(row.id, row.text, _style_digest(styles[row.id], listing.style_sha256), settings))
                for row in rows
            })
            if isinstance(writer, ShardedCopyWriter):
                opened = writer.open(
                    resume=options.resume, expected=expected[-1], indices=indices, shards=_shards_covered(options, listing),
                    listed_shards=-(-listing.size // options.shard_utterances), prune=options.prune,
                )
            else:
                opened = writer.open(resume=options.resume, expected=expected[-1], listed=listing.listed, prune=options.prune, progress=progress)
            states = opened.states
            reports.append(CopyReport(
                copy.name, copy.dropout, copy.seed, skipped=states[ResumeState.DONE], inputs_changed=states[ResumeState.CHANGED],
                files_missing=states[ResumeState.MISSING], files_altered=states[ResumeState.ALTERED],
                not_in_list=opened.not_in_list, pruned=opened.pruned,
            ))
        shards: dict[tuple[str, int], ShardTarget] = {}
        for writer in writers:  # every copy has been checked: now write
            if isinstance(writer, ShardedCopyWriter):
                for written in write_empty_shards(writer.start()):
                    writer.commit(written)
                shards.update({(writer.copy, k): target for k, target in writer.targets().items()})
            else:
                writer.start()
        jobs = [
            Job(row.index, row.id, row.text, _job_style(styles[row.id]), copy.name, copy.dropout, copy.seed, writer.location,
                wanted[row.id].audio, wanted[row.id].inputs_sha256,
                shard=writer.shard_of(row.index) if isinstance(writer, ShardedCopyWriter) else None)
            for row in rows
            for copy, writer, wanted, styles in zip(copies, writers, expected, drawn)
            if row.id not in writer.completed
        ]
        by_index = {row.index: row for row in rows}
        copy_index = {copy.name: i for i, copy in enumerate(copies)}
        progress.start("generate", len(jobs))
        stopped_by = stop() if stop is not None else None  # a signal while the written files were checked
        outcomes = renderer.render(jobs if stopped_by is None else [], shards)
        for outcome in outcomes:
            if isinstance(outcome, ShardWritten):
                writer = writers[copy_index[outcome.copy]]
                assert isinstance(writer, ShardedCopyWriter)
                writer.commit(outcome)
                continue
            job, row = outcome.job, by_index[outcome.job.index]
            i = copy_index[job.copy]
            if outcome.reject is not None:
                reject = Reject(row.source, row.line, outcome.reject, row.id)
                copy_rejects[i].append(reject)
                if isinstance(writers[i], ShardedCopyWriter):
                    writers[i].reject(row.id, reject)  # type: ignore[union-attr]
                progress.advance(1)
            else:
                _record(writers[i], reports[i], row, job, outcome, resampled_rate)
                progress.advance(1, outcome.duration_s)
            if stop is not None and (stopped_by := stop()) is not None:
                break
        outcomes.close()  # type: ignore[attr-defined]
        order = [row.id for row in rows]
        for i, writer in enumerate(writers):
            rejects = sorted(copy_rejects[i], key=lambda r: r.line or 0)
            writer.close(order, rejects)
            reports[i].rejected = len(rejects)
            all_rejects.extend(rejects)
    except BaseException:
        for writer in reversed(writers):  # the last made is the innermost: --out itself goes last, if it was made
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
        ray_log=getattr(getattr(renderer, "log", None), "path", None),
    )
    if stopped_by is not None:
        raise Interrupted(
            f"stopped by {stopped_by} after the utterance being written: {report.written} utterance(s) written in this run, "
            f"{report.done} of {len(rows) * len(copies)} done; the records are complete",
            partial=report,
        )
    return report


def _shards_covered(options: GenerateOptions, listing: _Listing) -> list[int]:
    """The output shards this run writes: every shard of the list's rows (after ``--limit``), or this
    process's share of them (``--shard I/N``), empty ones included so that the numbering has no gaps."""
    size = listing.size if options.limit is None else min(listing.size, options.limit)
    count = -(-size // options.shard_utterances)
    return [k for k in range(count) if options.shard is None or k % options.shard[1] == options.shard[0]]


def _draw(copy: CopySpec, row: InferRow, clip_sha256: str, pool: dict[str, Path], concentration: float) -> Path | StyleBlend | StyleTokens:
    """The style of ``row`` in ``copy``: its clip, or what the copy's mode draws for it (:func:`draw_style`)."""
    return draw_style(copy.style, row.style, copy.seed, row.id, clip_sha256=clip_sha256, pool=pool, concentration=concentration)


def _style_digest(style: Path | StyleBlend | StyleTokens, digests: dict[Path, str]) -> str:
    """What of the style goes into an utterance's inputs digest: the clip's bytes, and for a drawn style
    the partner's bytes and the weight, or the concentration (the draw follows from them and the id)."""
    if isinstance(style, StyleBlend):
        return f"{digests[style.first]}|blend|{digests[style.second]}|{style.weight!r}"
    if isinstance(style, StyleTokens):
        return f"{digests[style.clip]}|tokens|{style.concentration!r}"
    return digests[style]


def _job_style(style: Path | StyleBlend | StyleTokens) -> str | StyleBlend | StyleTokens:
    return str(style) if isinstance(style, Path) else style


def _record(writer: CopyWriter | ShardedCopyWriter, report: CopyReport, row: InferRow, job: Job, outcome: Outcome,
            sample_rate: int | None) -> None:
    """Append a written utterance's record: the spoken text (and the row's, where it differs) and the digests."""
    spoken = outcome.text or row.text
    writer.append(UtteranceRecord(
        id=row.id, index=row.index, text=spoken, text_input=None if spoken == row.text else row.text, style=str(row.style),
        copy=job.copy, dropout=job.dropout, seed=job.seed, frames=outcome.frames, steps=outcome.steps,
        duration_s=round(outcome.duration_s, 6), stopped=outcome.stopped, capped=not outcome.stopped, audio=job.audio,
        audio_bytes=outcome.audio_bytes, audio_sha256=outcome.audio_sha256, inputs_sha256=job.inputs_sha256,
        quality=outcome.quality, attempt=outcome.attempt, style_draw=outcome.style_draw, sample_rate=sample_rate,
    ), outcome.audio_status)
    report.written += 1
    report.audio_seconds += outcome.duration_s
    report.stopped += int(outcome.stopped)
    report.capped += int(not outcome.stopped)
    if outcome.quality is not None and not outcome.quality["ok"]:
        report.failed += 1
        report.failed_reasons.update(outcome.quality["reasons"])
    elif outcome.attempt > 1:
        report.retried += 1
