"""Output of ``trtgen generate``: one directory per dataset copy, crash-safe and exactly resumable.

``OUT/<copy>/`` holds the WAVs, ``settings.json`` (what produced them), ``records[.shard-I-of-N].jsonl``
(one line per finished utterance) and ``rejects[.shard-I-of-N].jsonl``. One process writes a copy, or
one per shard (:mod:`trtgen.commands.copylock`). A WAV is written under a temporary name in the
process's staging directory and renamed; its record line, carrying the SHA-256 of the WAV and of the
inputs that determine the audio, is appended only after the rename.

One current record per utterance, whatever sequence of sharded, unsharded and resumed runs and list
edits made the copy (docs/generating.md, "One record per utterance"):

* the current record of an id is the one whose file has its size and digest
  (:func:`trtgen.corpora.synthetic.read_copy`); an utterance is complete when that record's inputs
  digest and file name are this run's;
* before making an utterance again, a run removes every record of that id, and every record naming a
  file it is about to write, from every records file (an unsharded run rewrites them all into
  ``records.jsonl``; a shard rewrites the files no running process owns, and refuses when one it must
  change is being written); a record naming a file that another row now takes is removed with it, and
  if that row is no longer in the list the run refuses unless ``--prune`` says to let it go;
* at the end the records are rewritten in list order, so a resumed run's files equal an uninterrupted
  run's, and each record is checked once more against its file's status.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import socket
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping

import numpy as np
import soundfile as sf

from trtgen.commands.copylock import CopyLock, CopyLocked, lock_holders
from trtgen.corpora.base import Reject
from trtgen.corpora.synthetic import SyntheticCopy, SyntheticRecord, audio_problem, read_copy, record_files, record_lines
from trtgen.errors import OutputError, UsageError
from trtgen.fileio import TEMPORARY_GLOB, atomic_write, iter_jsonl, write_jsonl
from trtgen.progress import NoProgress, Progress

logger = logging.getLogger(__name__)

__all__ = [
    "SAMPLE_FORMATS", "NAMINGS", "SettingsMismatch", "ListConflict", "check_same_settings", "WrittenAudio", "UtteranceRecord", "Expected",
    "ResumeState", "OpenedCopy", "CopyWriter", "AUDIO_FORMATS", "AudioEncoding", "encode_wav", "write_utterance_audio", "staging_dir", "shard_suffix",
]

SETTINGS_FILE = "settings.json"
SETTINGS_ADDED_LATER = ("quality", "retries")
"""Settings a copy made by an earlier trtgen lacks (the quality gate's): such a copy takes this run's
values, and its earlier utterances keep the records they have (docs/quality.md)."""
STAGING = ".staging"
SAMPLE_FORMATS = {"pcm16": "PCM_16", "float32": "FLOAT"}
NAMINGS = ("id", "openseq2seq")
_SHARD_FILE = re.compile(r"^(?:records|rejects)\.shard-(\d+)-of-(\d+)\.jsonl$")


class SettingsMismatch(UsageError):
    """A copy directory already holds output made with other settings."""


class ListConflict(UsageError):
    """The list cannot be written into this copy as it stands (a file another row's audio still holds):
    refused before anything is written, naming the rows and the way out (exit 2)."""


def check_same_settings(where: object, previous: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    """Refuse (exit 2) to write into a copy made with other settings, naming each difference; a setting
    of :data:`SETTINGS_ADDED_LATER` that the copy lacks takes this run's value."""
    differences = {
        k: (previous.get(k), v) for k, v in settings.items()
        if previous.get(k) != v and not (k in SETTINGS_ADDED_LATER and k not in previous)
    }
    if differences:
        detail = "; ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in sorted(differences.items()))
        raise SettingsMismatch(f"{where} holds output made with other settings ({detail}). Use another --out or copy name, or the same settings.")


def shard_suffix(shard: tuple[int, int] | None) -> str:
    return "" if shard is None else f".shard-{shard[0]}-of-{shard[1]}"


@dataclass(frozen=True)
class WrittenAudio:
    """A WAV as it was written into its copy directory: name, digest, size, and ``(inode, ctime_ns)``
    right after the rename (the writer checks at the end that nothing has changed the file since)."""

    name: str
    sha256: str
    size_bytes: int
    status: tuple[int, int] = (0, 0)


AUDIO_FORMATS = {"wav": "WAV", "flac": "FLAC"}
"""Container of each utterance's audio: WAV (OpenSeq2Seq reads it) or FLAC (lossless, about half the bytes;
what LibriSpeech itself is)."""


@dataclass(frozen=True)
class AudioEncoding:
    """How a copy's audio is stored: container, sample type and rate.

    Attributes:
        audio_format: ``wav`` or ``flac`` (:data:`AUDIO_FORMATS`).
        sample_format: ``pcm16`` or ``float32`` (FLAC holds integers: ``pcm16`` only).
        sample_rate: the rate written; where it differs from ``model_rate`` the audio is resampled
            (soxr, "HQ": a linear-phase filter whose passband keeps 95% of the lower Nyquist band).
        model_rate: the rate the vocoder speaks at.
    """

    audio_format: str = "wav"
    sample_format: str = "pcm16"
    sample_rate: int = 16000
    model_rate: int = 16000

    def __post_init__(self) -> None:
        if self.audio_format not in AUDIO_FORMATS:
            raise UsageError(f"--audio-format {self.audio_format!r}: choose {' or '.join(AUDIO_FORMATS)}")
        if self.sample_format not in SAMPLE_FORMATS:
            raise UsageError(f"--format {self.sample_format!r}: choose {' or '.join(SAMPLE_FORMATS)}")
        if self.audio_format == "flac" and self.sample_format != "pcm16":
            raise UsageError(f"--format {self.sample_format}: FLAC holds integer samples; use --format pcm16 or --audio-format wav")
        for name, rate in (("--sample-rate", self.sample_rate), ("the model's sample rate", self.model_rate)):
            if isinstance(rate, bool) or not isinstance(rate, int) or not 4000 <= rate <= 192000:
                raise UsageError(f"{name} {rate!r}: must be an integer from 4000 to 192000 Hz")

    @property
    def extension(self) -> str:
        return self.audio_format

    @property
    def resampled(self) -> bool:
        return self.sample_rate != self.model_rate

    def encode(self, audio: np.ndarray) -> bytes:
        """One mono file's bytes at :attr:`sample_rate`. PCM_16 is scaled down if it would clip (after
        resampling, whose filter can overshoot)."""
        return self.encode_counted(audio)[0]

    def encode_counted(self, audio: np.ndarray) -> tuple[bytes, int]:
        """:meth:`encode`, and the number of samples the file holds."""
        audio = np.asarray(audio, dtype=np.float32)
        if self.resampled and audio.size:
            import soxr

            audio = soxr.resample(audio, self.model_rate, self.sample_rate, quality="HQ").astype(np.float32, copy=False)
        subtype = SAMPLE_FORMATS[self.sample_format]
        if subtype == "PCM_16":
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            if peak > 1.0:
                audio = audio * np.float32(0.999 / peak)
        buffer = io.BytesIO()
        if self.audio_format == "flac":
            # libsndfile's FLAC encoder rounds float samples otherwise than its PCM writer: quantise with the PCM
            # writer itself (a raw pass into memory), so that a FLAC copy decodes to exactly the samples of the
            # WAV copy (tests/commands/test_layouts.py compares them).
            raw = io.BytesIO()
            sf.write(raw, audio, self.sample_rate, subtype="PCM_16", format="RAW", endian="LITTLE")
            audio = np.frombuffer(raw.getvalue(), "<i2")
            # libFLAC's fastest level: 1.7x faster to encode than its default, files 0.4% larger (speech here).
            sf.write(buffer, audio, self.sample_rate, subtype=subtype, format="FLAC", compression_level=0.0)
            return buffer.getvalue(), int(audio.shape[0])
        sf.write(buffer, audio, self.sample_rate, subtype=subtype, format=AUDIO_FORMATS[self.audio_format])
        return buffer.getvalue(), int(audio.shape[0])


def encode_wav(audio: np.ndarray, sample_rate: int, sample_format: str) -> bytes:
    """A mono WAV file's bytes at the rate the audio has (:meth:`AudioEncoding.encode`)."""
    return AudioEncoding("wav", sample_format, sample_rate, sample_rate).encode(audio)


def staging_dir(directory: Path, owner: str | None = None) -> Path:
    """A writer's staging directory inside a copy directory: WAVs are written there, then renamed into
    place (same file system, so the rename is atomic). A process killed with -9 leaves its half-written
    file there, never beside the outputs; :meth:`CopyWriter.open` clears dead processes' ones. ``owner``
    names it (a cluster worker: its run and slot, so the driver can clear it even after the worker died);
    by default ``<host>-<pid>``."""
    return Path(directory) / STAGING / (owner or f"{socket.gethostname()}-{os.getpid()}")


def _status(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_ino, status.st_ctime_ns


def write_utterance_audio(
    directory: Path, name: str, audio: np.ndarray, encoding: AudioEncoding, owner: str | None = None
) -> WrittenAudio:
    """Write one utterance's audio file into a copy directory atomically, from whichever process made it
    (the driver or a cluster worker), and return its digest for the record. A failed write (disk full,
    read-only, permissions) leaves nothing behind and raises :class:`~trtgen.errors.OutputError`."""
    data = encoding.encode(audio)
    staging = staging_dir(directory, owner)
    path = Path(directory) / name
    temporary = staging / name
    try:
        staging.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
        status = _status(path)
    except BaseException as error:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise OutputError(error, path) from None
        raise
    return WrittenAudio(name, hashlib.sha256(data).hexdigest(), len(data), status)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class UtteranceRecord:
    """One line of ``records.jsonl`` (read by ``trtgen manifest``).

    Attributes:
        text: the transcript the audio speaks (the input with the front end's substitutions applied).
        text_input: the list row's text, only where it differs from ``text``.
        frames: decoder frames, the stop frame included (OpenSeq2Seq vocodes all but that one).
        audio_sha256: SHA-256 of the WAV file: ``--resume`` and ``trtgen manifest`` compare the file with it.
        inputs_sha256: digest of what determines the audio (id, text, style clip bytes, copy settings with
            the model's digest): ``--resume`` makes the utterance again when it differs.
        quality: the quality gate's verdict (``ok``, ``reasons``, ``signals``; :mod:`trtgen.engine.quality`).
        attempt: which try the audio is (more than 1 when ``--retries`` spoke a failed utterance again).
        style_draw: what a copy's style mode drew (``mode``, clips and weight, or token weights); None
            for ``clip`` (the record then names no mode, as before style modes).
    """

    id: str
    index: int
    text: str
    style: str
    copy: str
    dropout: float
    seed: int
    frames: int
    steps: int
    duration_s: float
    stopped: bool
    capped: bool
    audio: str
    audio_bytes: int
    audio_sha256: str
    inputs_sha256: str
    text_input: str | None = None
    quality: dict[str, Any] | None = None
    attempt: int = 1
    style_draw: dict[str, Any] | None = None
    sample_rate: int | None = None
    """The file's rate where it was resampled from the model's (``--sample-rate``)."""

    def to_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {"id": self.id, "index": self.index, "text": self.text}
        if self.text_input is not None:
            line["text_input"] = self.text_input
        line.update({
            "style": self.style, "copy": self.copy, "dropout": self.dropout, "seed": self.seed, "frames": self.frames,
            "steps": self.steps, "duration_s": self.duration_s, "stopped": self.stopped, "capped": self.capped,
            "audio": self.audio, "audio_bytes": self.audio_bytes, "audio_sha256": self.audio_sha256,
            "inputs_sha256": self.inputs_sha256,
        })
        if self.quality is not None:
            line["quality"] = self.quality
            line["attempt"] = self.attempt
        if self.sample_rate is not None:
            line["sample_rate"] = self.sample_rate
        if self.style_draw is not None:
            line["style_mode"] = self.style_draw["mode"]
            line["style_draw"] = {k: v for k, v in self.style_draw.items() if k != "mode"}
        return line


@dataclass(frozen=True)
class Expected:
    """What this run would write for an utterance: the file name and the digest of its inputs."""

    audio: str
    inputs_sha256: str


class ResumeState:
    """Why an utterance of the list is, or is not, made again (``CopyWriter.open`` counts them)."""

    DONE = "done"
    """Its current record has these inputs and this file name, and the file is the record's: skipped."""
    NEW = "new"
    CHANGED = "inputs changed"
    """Recorded, but the text, style clip, settings or file name differ now."""
    MISSING = "file missing"
    ALTERED = "file altered"
    """No record of it describes its file (truncated, overwritten, or a record without digests)."""


_Rewrite = tuple[Path, list[SyntheticRecord], "CopyLock | None"]
"""A records file, the records it keeps, and the lock taken to rewrite it (a stopped shard's)."""


@dataclass
class _Plan:
    """What :meth:`CopyWriter.open` decided and :meth:`CopyWriter.start` writes."""

    rewrites: list[_Rewrite]
    removals: list[Path]


@dataclass
class OpenedCopy:
    """What :meth:`CopyWriter.open` found and did: utterances per :class:`ResumeState`, and the
    utterances of the copy that are no longer in the list (kept, or removed with ``prune``)."""

    states: Counter[str] = field(default_factory=Counter)
    not_in_list: int = 0
    pruned: int = 0


class CopyWriter:
    """Writes one copy's files (or one shard's) while holding the copy's lock; knows which utterances a
    previous run completed with the same inputs and an intact file."""

    def __init__(
        self, directory: Path, settings: dict[str, Any], *, shard: tuple[int, int] | None, naming: str, extension: str = "wav"
    ) -> None:
        if naming not in NAMINGS:
            raise UsageError(f"unknown naming {naming!r}; choose from {', '.join(NAMINGS)}")
        self.directory = Path(directory)
        self.location = str(self.directory)
        """Where the renderer writes the audio files (jobs carry it)."""
        self.settings = settings
        self.naming = naming
        self.extension = extension
        self.shard = shard
        suffix = shard_suffix(shard)
        self.records_path = self.directory / f"records{suffix}.jsonl"
        self.rejects_path = self.directory / f"rejects{suffix}.jsonl"
        self.completed: dict[str, dict[str, Any]] = {}
        """Records of the utterances that need no work (:attr:`ResumeState.DONE`), by id."""
        self._handle: IO[str] | None = None
        self._lock = CopyLock(self.directory, shard)
        self._staging_root = self.directory / STAGING
        self.staging = staging_dir(self.directory)
        self._file_status: dict[str, tuple[int, int]] = {}
        """``(inode, ctime_ns)`` of each file this writer's records name, when it was last known to match."""
        self._planned: _Plan | None = None
        self._held = ExitStack()
        """Locks held from :meth:`open` to :meth:`start`: the tidy lock, stopped shards' locks."""
        self._created: list[Path] = []
        """Directories :meth:`open` made, removed again if the run is refused before it writes."""

    def audio_name(self, utterance_id: str, index: int) -> str:
        stem = f"sample_step0_{index}_syn" if self.naming == "openseq2seq" else utterance_id
        return f"{stem}.{self.extension}"

    def open(
        self,
        *,
        resume: bool,
        expected: Mapping[str, Expected],
        listed: set[str] | None = None,
        prune: bool = False,
        progress: Progress | None = None,
    ) -> OpenedCopy:
        """Lock the copy, check its settings, resolve its records to one current record per id, decide
        which of the ``expected`` utterances (by id) are done and which records go: everything that can
        refuse, and nothing written yet (:meth:`start` writes). ``listed`` is every id of the whole list
        (not only this run's rows): an utterance outside it is kept, or with ``prune`` removed."""
        self.lock()
        with self._aborting():
            self._held.enter_context(self._lock.tidying())
            return self._plan(resume, expected, listed, prune, progress or NoProgress())

    def lock(self) -> None:
        """Create the copy directory and take its lock (before anything slow starts: a second run on the same
        copy is refused at once). :meth:`open` takes it if this was not called."""
        if self._lock.held:
            return
        try:
            self._create(self.directory)
        except OSError as error:
            raise OutputError(error, self.directory, "creating") from None
        with self._aborting():
            self._lock.acquire()

    def start(self) -> None:
        """Write what :meth:`open` decided (settings, records files without the dropped records, pruned
        files gone) and open this run's records file for appending."""
        assert self._planned is not None, "CopyWriter.open() first"
        with self._aborting():
            self._remove_leftovers()
            with atomic_write(self.directory / SETTINGS_FILE) as handle:
                handle.write(json.dumps(self.settings, indent=2, sort_keys=True) + "\n")
            for path, kept, _ in self._planned.rewrites:
                if path == self.records_path:
                    self._remember(kept)
                write_jsonl(path, (r.raw for r in kept))
            for path in self._planned.removals:
                path.unlink(missing_ok=True)
            self._held.close()  # the tidy lock: the records files say what they will say for this run
            self._handle = open(self.records_path, "a", encoding="utf-8")
            self._created.clear()

    @contextmanager
    def _aborting(self) -> Iterator[None]:
        """Any failure inside: :meth:`abort` (locks released, nothing half-written kept), an OS error as
        :class:`~trtgen.errors.OutputError` naming the path."""
        try:
            yield
        except OSError as error:
            self.abort()
            raise OutputError(error, error.filename2 or error.filename or self.directory) from None
        except BaseException:
            self.abort()
            raise

    def _create(self, directory: Path) -> None:
        """``mkdir -p``, remembering what it made, so that a refused run leaves no empty directory behind."""
        missing = [d for d in (directory, *directory.parents) if not d.exists()]
        directory.mkdir(parents=True, exist_ok=True)
        self._created = missing

    def _check_settings(self, resume: bool) -> None:
        settings_path = self.directory / SETTINGS_FILE
        existing = [p for p in record_files(self.directory) if p.stat().st_size > 0]
        if settings_path.exists():
            try:
                previous = json.loads(settings_path.read_text(encoding="utf-8"))
            except ValueError as error:
                raise SettingsMismatch(f"{settings_path} cannot be read ({error}); it says what made this copy: restore it or use another --out") from None
            check_same_settings(self.directory, previous, self.settings)
        elif existing:
            raise SettingsMismatch(f"{self.directory} has records but no {SETTINGS_FILE}; refusing to mix outputs")
        # Shards start side by side, so only a shard's own records mean an earlier run of this very job.
        earlier = existing if self.shard is None else [p for p in existing if p == self.records_path]
        if earlier and not resume:
            raise SettingsMismatch(f"{earlier[0]} already lists generated utterances; pass --resume to continue that run")

    def _plan(self, resume: bool, expected: Mapping[str, Expected], listed: set[str] | None, prune: bool, progress: Progress) -> OpenedCopy:
        self._check_settings(resume)
        recorded = record_lines(self.directory)
        if recorded:
            progress.start(f"checking {self.directory.name}'s written files", recorded)
        copy = read_copy(self.directory, step=lambda: progress.advance(1))
        opened = OpenedCopy()
        remake: set[str] = set()
        for utterance_id, wanted in expected.items():
            state = self._resume_state(copy, utterance_id, wanted)
            opened.states[state] += 1
            if state == ResumeState.DONE:
                self.completed[utterance_id] = copy.records[utterance_id].raw
            else:
                remake.add(utterance_id)
        drop = self._records_to_drop(copy, expected, remake, listed, prune, opened)
        rewrites, removals = self._rewrites(copy, drop)
        self._planned = _Plan(rewrites, removals + (self._pruned_files(copy, drop, expected) if prune else []))
        return opened

    @staticmethod
    def _resume_state(copy: SyntheticCopy, utterance_id: str, wanted: Expected) -> str:
        record = copy.records.get(utterance_id)
        if record is not None:
            if record.inputs_sha256 == wanted.inputs_sha256 and record.audio == wanted.audio:
                return ResumeState.DONE
            return ResumeState.CHANGED
        damaged = copy.damaged.get(utterance_id)
        if damaged is None:
            return ResumeState.NEW
        if damaged.record.audio != wanted.audio or damaged.record.inputs_sha256 != wanted.inputs_sha256:
            return ResumeState.CHANGED
        return ResumeState.MISSING if damaged.problem == "missing" else ResumeState.ALTERED

    def _records_to_drop(
        self, copy: SyntheticCopy, expected: Mapping[str, Expected], remake: set[str], listed: set[str] | None,
        prune: bool, opened: OpenedCopy,
    ) -> dict[int, bool]:
        """Records to remove (by ``id()``), each marked required (True: it would describe a file this run
        writes, or an utterance that is gone) or merely outdated (False: superseded or damaged)."""
        drop: dict[int, bool] = {}
        for record in copy.superseded:
            drop[id(record)] = record.id in remake
        for damaged in copy.damaged.values():
            drop[id(damaged.record)] = damaged.record.id in remake
        writing = {expected[i].audio: i for i in remake}
        displaced: list[tuple[SyntheticRecord, str]] = []
        for record in copy.records.values():
            if record.id in remake:
                drop[id(record)] = True
                continue
            gone = listed is not None and record.id not in listed
            opened.not_in_list += gone
            if gone and prune:
                drop[id(record)] = True
                opened.pruned += 1
            elif record.audio in writing:
                if gone:
                    displaced.append((record, writing[record.audio]))
                drop[id(record)] = True
        if displaced:
            shown = "; ".join(f"{r.audio} holds {r.id!r} (no longer in the list), and row {i!r} would be written there" for r, i in displaced[:3])
            more = f"; and {len(displaced) - 3} more" if len(displaced) > 3 else ""
            raise ListConflict(
                f"{self.directory}: {shown}{more}. Positional names (--naming openseq2seq) follow the row index, so removing "
                "rows moves the rows after them onto other rows' files: add --prune to remove the utterances no longer in "
                "the list (their files are overwritten or deleted), or write to another --out"
            )
        # Rows that are in the whole list but outside this run (another shard, past --limit) lose a record
        # only when this run writes over their file; they are made again by the run that covers them.
        return drop

    def _rewrites(self, copy: SyntheticCopy, drop: dict[int, bool]) -> tuple[list[_Rewrite], list[Path]]:
        """The records files to rewrite without the dropped records (each with the lock of a stopped
        shard's file taken for it), and the files to remove. An unsharded run, holding the copy alone, gathers every kept record
        into its own file (the shard files are removed); a shard rewrites its own file, ``records.jsonl``
        and the files of shards not running now, and is refused if a record it must remove lies in the
        file of a shard that is running."""
        current = {id(r) for r in copy.records.values()}
        if self.shard is None:
            kept = [r for path in sorted(copy.by_file) for r in copy.by_file[path] if id(r) in current and id(r) not in drop]
            shard_files = [p for p in self.directory.glob("*.shard-*-of-*.jsonl") if _SHARD_FILE.match(p.name)]
            return [(self.records_path, kept, None)], shard_files
        rewrites: list[_Rewrite] = []
        for path, records in sorted(copy.by_file.items()):
            kept = [r for r in records if id(r) in current and id(r) not in drop]
            if path == self.records_path:
                rewrites.append((path, kept, None))
                continue
            if len(kept) == len(records):
                continue
            match = _SHARD_FILE.match(path.name)
            if match is None:  # records.jsonl: only an unsharded run appends to it, and it cannot run beside us
                rewrites.append((path, kept, None))
                continue
            owner = CopyLock(self.directory, (int(match[1]), int(match[2])))
            try:
                owner.acquire()
            except CopyLocked:
                required = [r for r in records if drop.get(id(r))]
                if required:
                    holders = "; ".join(str(h) for h in lock_holders(self.directory) if h.shard == f"{match[1]}/{match[2]}")
                    raise CopyLocked(
                        f"{path} records {required[0].id!r}, which this run must make again, and shard {match[1]}/{match[2]} "
                        f"({holders or 'a running process'}) is writing it now; wait for that run to finish"
                    ) from None
                continue
            self._held.callback(owner.release)
            rewrites.append((path, kept, owner))
        return rewrites, []

    def _pruned_files(self, copy: SyntheticCopy, drop: dict[int, bool], expected: Mapping[str, Expected]) -> list[Path]:
        """``--prune``: the files whose current record is dropped (utterances no longer in the list, and the
        old files of rows that moved to another positional name), unless a kept record or this run's rows
        name them."""
        named = {r.audio for r in copy.records.values() if id(r) not in drop} | {e.audio for e in expected.values()}
        return [self.directory / r.audio for r in copy.records.values() if id(r) in drop and r.audio not in named]

    def _remember(self, records: Iterable[SyntheticRecord]) -> None:
        for record in records:
            try:
                self._file_status[record.audio] = _status(self.directory / record.audio)
            except OSError:
                pass

    def _remove_leftovers(self) -> None:
        """Staging directories and temporary files that no running process owns hold only debris: all of
        them under an unsharded run's exclusive lock; beside other shards, only staging directories of
        dead processes of this host, or a day old."""
        exclusive = self.shard is None
        if exclusive:
            for path in self.directory.glob(TEMPORARY_GLOB):
                path.unlink(missing_ok=True)
        if not self._staging_root.is_dir():
            return
        host = socket.gethostname()
        for path in self._staging_root.iterdir():
            name_host, _, pid = path.name.rpartition("-")
            dead_here = name_host == host and pid.isdigit() and not _process_alive(int(pid))
            if exclusive or dead_here or time.time() - path.stat().st_mtime > 86400:
                shutil.rmtree(path, ignore_errors=True)

    def append(self, record: UtteranceRecord, status: tuple[int, int] | None = None) -> None:
        """Record an utterance whose WAV is already in place (written here or by a worker); ``status`` is
        the file's ``(inode, ctime_ns)`` right after it was written (:class:`WrittenAudio`)."""
        if self._handle is None:
            raise RuntimeError("CopyWriter.open() first")
        line = record.to_json()
        try:
            self._handle.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
            self._handle.flush()
        except OSError as error:
            raise OutputError(error, self.records_path) from None
        self.completed[record.id] = line
        if status is not None:
            self._file_status[record.audio] = status

    def close(self, order: Iterable[str], rejects: Iterable[Reject]) -> None:
        """Rewrite this shard's records in list order (records of rows outside ``order`` follow, as they
        were), write its rejects file, remove its staging files and release the lock. A record whose
        file changed since it was written or checked (another process wrote over it) is checked again
        and left out if it no longer describes the file."""
        try:
            handle, self._handle = self._handle, None
            if handle is not None:
                handle.close()
            records = {line.value["id"]: line.value for line in iter_jsonl(self.records_path) if line.error is None}
            for utterance_id, line in list(records.items()):
                if not self._still_matches(line):
                    logger.warning("%s: %s changed while this run wrote the copy; its record is dropped (--resume makes it again)",
                                   self.directory, line.get("audio"))
                    del records[utterance_id]
            ordered = [records.pop(i) for i in order if i in records]
            write_jsonl(self.records_path, ordered + list(records.values()))
            write_jsonl(self.rejects_path, (r.to_dict() for r in rejects))
        except OSError as error:
            raise OutputError(error, self.records_path) from None
        finally:
            self.abort()

    def _still_matches(self, line: dict[str, Any]) -> bool:
        audio = line.get("audio")
        if not isinstance(audio, str):
            return False
        path = self.directory / audio
        try:
            if _status(path) == self._file_status.get(audio):
                return True
        except OSError:
            return False
        try:
            record = SyntheticRecord.from_json(line, self.directory.name, str(self.records_path), 0)
        except UsageError:
            return False
        return audio_problem(record, path, verify=True) is None

    def abort(self) -> None:
        """Stop writing after an error or an interrupt: close the records file as it is (its complete lines
        stay; ``--resume`` reads them), remove this process's staging files, release the lock. Idempotent."""
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass  # e.g. the disk is full: the lines already flushed are what the next run reads
        shutil.rmtree(self.staging, ignore_errors=True)
        try:
            self._staging_root.rmdir()
        except OSError:
            pass  # other processes still stage files there
        self._held.close()
        self._lock.release()
        for directory in self._created:  # refused before writing: leave no empty directory behind
            try:
                directory.rmdir()
            except OSError:
                break
        self._created = []
