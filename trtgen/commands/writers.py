"""Output of ``trtgen generate``: one directory per dataset copy, crash-safe and exactly resumable.

``OUT/<copy>/`` holds the WAVs, ``settings.json`` (what produced them), ``records[.shard-I-of-N].jsonl``
(one line per finished utterance) and ``rejects[.shard-I-of-N].jsonl``. One process writes a copy, or
one per shard (:mod:`trtgen.commands.copylock`). A WAV is written under a temporary name in the
process's staging directory and renamed; its record line, carrying the SHA-256 of the WAV and of the
inputs that determine the audio, is appended only after the rename. An utterance is complete when its
record's input digest is this run's and its file matches the record's digest, so a run killed at any
moment resumes exactly where it stopped, a changed list row or a damaged file is made again, and at
the end the records are rewritten in list order, making a resumed run's files identical to an
uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Mapping

import numpy as np
import soundfile as sf

from trtgen.commands.copylock import CopyLock
from trtgen.corpora.base import Reject
from trtgen.fileio import sha256_file
from trtgen.errors import OutputError, UsageError
from trtgen.fileio import TEMPORARY_GLOB, atomic_write, iter_jsonl, write_jsonl
from trtgen.progress import NoProgress, Progress

logger = logging.getLogger(__name__)

__all__ = [
    "SAMPLE_FORMATS", "NAMINGS", "SettingsMismatch", "WrittenAudio", "UtteranceRecord", "Expected", "ResumeState",
    "CopyWriter", "encode_wav", "write_utterance_wav", "staging_dir", "shard_suffix",
]

SETTINGS_FILE = "settings.json"
STAGING = ".staging"
SAMPLE_FORMATS = {"pcm16": "PCM_16", "float32": "FLOAT"}
NAMINGS = ("id", "openseq2seq")


class SettingsMismatch(UsageError):
    """A copy directory already holds output made with other settings."""


def shard_suffix(shard: tuple[int, int] | None) -> str:
    return "" if shard is None else f".shard-{shard[0]}-of-{shard[1]}"


@dataclass(frozen=True)
class WrittenAudio:
    """A WAV as it was written into its copy directory."""

    name: str
    sha256: str
    size_bytes: int


def encode_wav(audio: np.ndarray, sample_rate: int, sample_format: str) -> bytes:
    """A mono WAV file's bytes. PCM_16 is scaled down if it would clip."""
    subtype = SAMPLE_FORMATS[sample_format]
    audio = np.asarray(audio, dtype=np.float32)
    if subtype == "PCM_16":
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 1.0:
            audio = audio * np.float32(0.999 / peak)
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def staging_dir(directory: Path, owner: str | None = None) -> Path:
    """A writer's staging directory inside a copy directory: WAVs are written there, then renamed into
    place (same file system, so the rename is atomic). A process killed with -9 leaves its half-written
    file there, never beside the outputs; :meth:`CopyWriter.open` clears dead processes' ones. ``owner``
    names it (a cluster worker: its run and slot, so the driver can clear it even after the worker died);
    by default ``<host>-<pid>``."""
    return Path(directory) / STAGING / (owner or f"{socket.gethostname()}-{os.getpid()}")


def write_utterance_wav(
    directory: Path, name: str, audio: np.ndarray, sample_rate: int, sample_format: str, owner: str | None = None
) -> WrittenAudio:
    """Write one utterance's WAV into a copy directory atomically, from whichever process made it (the
    driver or a cluster worker), and return its digest for the record. A failed write (disk full,
    read-only, permissions) leaves nothing behind and raises :class:`~trtgen.errors.OutputError`."""
    data = encode_wav(audio, sample_rate, sample_format)
    staging = staging_dir(directory, owner)
    path = Path(directory) / name
    temporary = staging / name
    try:
        staging.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException as error:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise OutputError(error, path) from None
        raise
    return WrittenAudio(name, hashlib.sha256(data).hexdigest(), len(data))


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
    """One line of ``records.jsonl`` (read by ``trtgen manifest``)."""

    id: str
    index: int
    text: str
    """The transcript the audio speaks (the input with the front end's substitutions applied)."""
    style: str
    copy: str
    dropout: float
    seed: int
    frames: int
    """Decoder frames, the stop frame included (OpenSeq2Seq vocodes all but that one)."""
    steps: int
    duration_s: float
    stopped: bool
    capped: bool
    audio: str
    audio_bytes: int
    audio_sha256: str
    """SHA-256 of the WAV file: ``--resume`` and ``trtgen manifest --check`` compare the file with it."""
    inputs_sha256: str
    """Digest of what determines the audio (id, text, style clip bytes, copy settings with the model's
    digest): ``--resume`` makes the utterance again when it differs."""
    text_input: str | None = None
    """The list row's text, only where it differs from ``text``."""

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
        return line


@dataclass(frozen=True)
class Expected:
    """What this run would write for an utterance: the file name and the digest of its inputs."""

    audio: str
    inputs_sha256: str


class ResumeState:
    """Why an utterance of the list is, or is not, made again (``CopyWriter.open`` counts them)."""

    DONE = "done"
    """Recorded with these inputs, and the file matches its digest: skipped."""
    NEW = "new"
    CHANGED = "inputs changed"
    """Recorded, but the text, style clip or settings differ now."""
    MISSING = "file missing"
    ALTERED = "file altered"
    """The file's size or SHA-256 is not the record's (truncated, overwritten, or a record without digests)."""


class CopyWriter:
    """Writes one copy's files (or one shard's) while holding the copy's lock; knows which utterances a
    previous run completed with the same inputs and an intact file."""

    def __init__(self, directory: Path, settings: dict[str, Any], *, shard: tuple[int, int] | None, naming: str) -> None:
        if naming not in NAMINGS:
            raise UsageError(f"unknown naming {naming!r}; choose from {', '.join(NAMINGS)}")
        self.directory = Path(directory)
        self.settings = settings
        self.naming = naming
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

    def audio_name(self, utterance_id: str, index: int) -> str:
        return f"sample_step0_{index}_syn.wav" if self.naming == "openseq2seq" else f"{utterance_id}.wav"

    def open(self, *, resume: bool, expected: Mapping[str, Expected], progress: Progress | None = None) -> Counter[str]:
        """Lock the copy, check or write its settings, decide which of the ``expected`` utterances (by id)
        are done, and open the records file. Returns how many are in each :class:`ResumeState`."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(error, self.directory, "creating") from None
        self._lock.acquire()
        try:
            return self._open(resume, expected, progress or NoProgress())
        except OSError as error:
            self.abort()
            raise OutputError(error, error.filename2 or error.filename or self.directory) from None
        except BaseException:
            self.abort()
            raise

    def _open(self, resume: bool, expected: Mapping[str, Expected], progress: Progress) -> Counter[str]:
        self._remove_leftovers()
        settings_path = self.directory / SETTINGS_FILE
        existing_records = sorted(self.directory.glob("records*.jsonl"))
        if settings_path.exists():
            try:
                previous = json.loads(settings_path.read_text(encoding="utf-8"))
            except ValueError as error:
                raise SettingsMismatch(f"{settings_path} cannot be read ({error}); it says what made this copy: restore it or use another --out") from None
            differences = {k: (previous.get(k), v) for k, v in self.settings.items() if previous.get(k) != v}
            if differences:
                detail = "; ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in sorted(differences.items()))
                raise SettingsMismatch(
                    f"{self.directory} holds output made with other settings ({detail}). "
                    "Use another --out or copy name, or the same settings."
                )
        elif existing_records:
            raise SettingsMismatch(f"{self.directory} has records but no {SETTINGS_FILE}; refusing to mix outputs")
        own_records = self.records_path.exists() and self.records_path.stat().st_size > 0
        if own_records and not resume:
            # Other shards may write into the same directory at the same time; this shard's own
            # records mean an earlier run of this very job.
            raise SettingsMismatch(
                f"{self.records_path} already lists generated utterances; pass --resume to continue that run"
            )
        with atomic_write(settings_path) as handle:
            handle.write(json.dumps(self.settings, indent=2, sort_keys=True) + "\n")
        previous_records: dict[str, dict[str, Any]] = {}
        for path in existing_records:
            for line in iter_jsonl(path):
                if line.error is None and isinstance(line.value.get("id"), str) and isinstance(line.value.get("audio"), str):
                    previous_records[line.value["id"]] = line.value
        states: Counter[str] = Counter()
        recorded = sum(1 for i in expected if i in previous_records)
        if recorded:
            progress.start(f"checking {self.directory.name}'s written files", recorded)
        for utterance_id, wanted in expected.items():
            record = previous_records.get(utterance_id)
            state = self._resume_state(record, wanted)
            states[state] += 1
            if record is not None:
                progress.advance(1)
            if state == ResumeState.DONE:
                self.completed[utterance_id] = record  # type: ignore[assignment]
        # Keep this shard's complete lines (a kill can leave half a line) of utterances that are done,
        # or outside this run's rows with their file in place, before appending.
        own = [line.value for line in iter_jsonl(self.records_path) if line.error is None] if self.records_path.exists() else []
        own = [
            r for r in own
            if r.get("id") in self.completed
            or (r.get("id") not in expected and isinstance(r.get("audio"), str) and (self.directory / r["audio"]).is_file())
        ]
        write_jsonl(self.records_path, own)
        self._handle = open(self.records_path, "a", encoding="utf-8")
        return states

    def _resume_state(self, record: dict[str, Any] | None, wanted: Expected) -> str:
        if record is None:
            return ResumeState.NEW
        if record.get("inputs_sha256") != wanted.inputs_sha256 or record.get("audio") != wanted.audio:
            return ResumeState.CHANGED
        path = self.directory / wanted.audio
        try:
            if path.stat().st_size != record.get("audio_bytes") or sha256_file(path) != record.get("audio_sha256"):
                return ResumeState.ALTERED
        except FileNotFoundError:
            return ResumeState.MISSING
        except OSError:
            return ResumeState.ALTERED
        return ResumeState.DONE

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

    def append(self, record: UtteranceRecord) -> None:
        """Record an utterance whose WAV is already in place (written here or by a worker)."""
        if self._handle is None:
            raise RuntimeError("CopyWriter.open() first")
        line = record.to_json()
        try:
            self._handle.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
            self._handle.flush()
        except OSError as error:
            raise OutputError(error, self.records_path) from None
        self.completed[record.id] = line

    def close(self, order: Iterable[str], rejects: Iterable[Reject]) -> None:
        """Rewrite this shard's records in list order (records of rows outside ``order`` follow, as they
        were), write its rejects file, remove its staging files and release the lock."""
        try:
            handle, self._handle = self._handle, None
            if handle is not None:
                handle.close()
            records = {line.value["id"]: line.value for line in iter_jsonl(self.records_path) if line.error is None}
            ordered = [records.pop(i) for i in order if i in records]
            write_jsonl(self.records_path, ordered + list(records.values()))
            write_jsonl(self.rejects_path, (r.to_dict() for r in rejects))
        except OSError as error:
            raise OutputError(error, self.records_path) from None
        finally:
            self.abort()

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
        self._lock.release()
