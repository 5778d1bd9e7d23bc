"""Output of ``trtgen generate``: one directory per dataset copy, crash-safe and resumable.

``OUT/<copy>/`` holds the WAVs, ``settings.json`` (what produced them), ``records[.shard-I-of-N].jsonl``
(one line per finished utterance) and ``rejects[.shard-I-of-N].jsonl``. A WAV is written under a
temporary name and renamed; its record line is appended only after the rename. An utterance is
complete when its record and its file both exist, so a run killed at any moment resumes exactly
where it stopped, and at the end the records are rewritten in list order, making a resumed run's
files identical to an uninterrupted run's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable

import numpy as np
import soundfile as sf

from trtgen.corpora.base import Reject
from trtgen.fileio import atomic_path, atomic_write, iter_jsonl, write_jsonl
from trtgen.errors import UsageError

logger = logging.getLogger(__name__)

__all__ = [
    "SAMPLE_FORMATS", "NAMINGS", "SettingsMismatch", "UtteranceRecord", "CopyWriter", "write_wav", "write_utterance_wav",
    "staging_dir", "shard_suffix",
]

SETTINGS_FILE = "settings.json"
STAGING = ".staging"
SAMPLE_FORMATS = {"pcm16": "PCM_16", "float32": "FLOAT"}
NAMINGS = ("id", "openseq2seq")


class SettingsMismatch(UsageError):
    """A copy directory already holds output made with other settings."""


def shard_suffix(shard: tuple[int, int] | None) -> str:
    return "" if shard is None else f".shard-{shard[0]}-of-{shard[1]}"


def write_wav(path: Path, audio: np.ndarray, sample_rate: int, sample_format: str, staging: Path | None = None) -> None:
    """Write a mono WAV atomically (in ``staging``, then renamed). PCM_16 is scaled down if it would clip."""
    subtype = SAMPLE_FORMATS[sample_format]
    audio = np.asarray(audio, dtype=np.float32)
    if subtype == "PCM_16":
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 1.0:
            audio = audio * np.float32(0.999 / peak)
    if staging is None:
        with atomic_path(path) as temporary:
            sf.write(temporary, audio, sample_rate, subtype=subtype, format="WAV")
        return
    temporary = staging / path.name
    try:
        sf.write(temporary, audio, sample_rate, subtype=subtype, format="WAV")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def staging_dir(directory: Path) -> Path:
    """This process's staging directory inside a copy directory: WAVs are written there, then renamed
    into place (same file system, so the rename is atomic). A process killed with -9 leaves its
    half-written file there, never beside the outputs; :meth:`CopyWriter.open` clears dead processes' ones."""
    return Path(directory) / STAGING / f"{socket.gethostname()}-{os.getpid()}"


def write_utterance_wav(directory: Path, name: str, audio: np.ndarray, sample_rate: int, sample_format: str) -> Path:
    """Write one utterance's WAV into a copy directory atomically, from whichever process made it."""
    staging = staging_dir(directory)
    staging.mkdir(parents=True, exist_ok=True)
    path = Path(directory) / name
    write_wav(path, audio, sample_rate, sample_format, staging)
    return path


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

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "index": self.index, "text": self.text, "style": self.style, "copy": self.copy,
            "dropout": self.dropout, "seed": self.seed, "frames": self.frames, "steps": self.steps,
            "duration_s": self.duration_s, "stopped": self.stopped, "capped": self.capped, "audio": self.audio,
        }


class CopyWriter:
    """Writes one copy's files; knows which utterances a previous run already completed."""

    def __init__(self, directory: Path, settings: dict[str, Any], *, shard: tuple[int, int] | None, naming: str) -> None:
        if naming not in NAMINGS:
            raise UsageError(f"unknown naming {naming!r}; choose from {', '.join(NAMINGS)}")
        self.directory = Path(directory)
        self.settings = settings
        self.naming = naming
        self.sample_rate = int(settings["sample_rate"])
        self.sample_format = str(settings["sample_format"])
        suffix = shard_suffix(shard)
        self.records_path = self.directory / f"records{suffix}.jsonl"
        self.rejects_path = self.directory / f"rejects{suffix}.jsonl"
        self.completed: dict[str, dict[str, Any]] = {}
        self._handle: IO[str] | None = None
        self._staging_root = self.directory / STAGING
        self.staging = staging_dir(self.directory)

    def audio_name(self, utterance_id: str, index: int) -> str:
        return f"sample_step0_{index}_syn.wav" if self.naming == "openseq2seq" else f"{utterance_id}.wav"

    def _remove_stale_staging(self) -> None:
        """Staging directories of dead processes of this host, or a day old, hold only debris."""
        if not self._staging_root.is_dir():
            return
        host = socket.gethostname()
        for path in self._staging_root.iterdir():
            name_host, _, pid = path.name.rpartition("-")
            dead_here = name_host == host and pid.isdigit() and not _process_alive(int(pid))
            if dead_here or time.time() - path.stat().st_mtime > 86400:
                shutil.rmtree(path, ignore_errors=True)

    def open(self, *, resume: bool) -> None:
        """Check or write settings, collect completed utterances, and open the records file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._remove_stale_staging()
        self.staging.mkdir(parents=True, exist_ok=True)
        settings_path = self.directory / SETTINGS_FILE
        existing_records = sorted(self.directory.glob("records*.jsonl"))
        if settings_path.exists():
            previous = json.loads(settings_path.read_text(encoding="utf-8"))
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
        for path in existing_records:
            for line in iter_jsonl(path):
                if line.error is None and isinstance(line.value, dict) and "id" in line.value and "audio" in line.value:
                    if (self.directory / line.value["audio"]).is_file():
                        self.completed[line.value["id"]] = line.value
        # Keep only this shard's complete lines (a kill can leave half a line) before appending.
        own = [line.value for line in iter_jsonl(self.records_path) if line.error is None] if self.records_path.exists() else []
        own = [r for r in own if r.get("id") in self.completed]
        write_jsonl(self.records_path, own)
        self._handle = open(self.records_path, "a", encoding="utf-8")

    def write(self, record: UtteranceRecord, audio: np.ndarray) -> None:
        """Write the utterance's WAV, then its record."""
        write_utterance_wav(self.directory, record.audio, audio, self.sample_rate, self.sample_format)
        self.append(record)

    def append(self, record: UtteranceRecord) -> None:
        """Record an utterance whose WAV is already in place (written here or by a worker)."""
        if self._handle is None:
            raise RuntimeError("CopyWriter.open() first")
        line = record.to_json()
        self._handle.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._handle.flush()
        self.completed[record.id] = line

    def close(self, order: Iterable[str], rejects: Iterable[Reject]) -> None:
        """Rewrite this shard's records in list order and write its rejects file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        records = {line.value["id"]: line.value for line in iter_jsonl(self.records_path) if line.error is None}
        write_jsonl(self.records_path, (records[i] for i in order if i in records))
        write_jsonl(self.rejects_path, (r.to_dict() for r in rejects))
        shutil.rmtree(self.staging, ignore_errors=True)
        try:
            self._staging_root.rmdir()
        except OSError:
            pass  # other processes still stage files there
