"""Reader of ``trtgen generate``'s output: ``OUT/<copy>/`` holding WAVs, ``records*.jsonl``, ``settings.json``.

Each copy is one full synthetic LibriSpeech. A record line is
``{"id", "text", ["text_input",] "style", "copy", "dropout", "seed", "frames", "duration_s", "stopped", "capped",
"audio", "audio_bytes", "audio_sha256", "inputs_sha256"}`` with ``text`` the transcript the audio speaks and
``audio`` the WAV's name relative to the copy directory (records written before trtgen recorded digests
lack the last three); rows in ``rejects*.jsonl`` were not
generated and are not read. Sharded runs write several ``records.shard-I-of-N.jsonl``. If an id
appears twice in a copy (a resumed run), the last record wins, since it describes the file on disk.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

from trtgen.corpora.base import Reject
from trtgen.fileio import iter_jsonl
from trtgen.errors import UsageError

logger = logging.getLogger(__name__)

__all__ = [
    "SyntheticRecord",
    "SyntheticCopy",
    "SyntheticError",
    "list_copies",
    "read_copy",
    "read_synthetic",
    "record_files",
    "settings_sample_rate",
]

SETTINGS_FILE = "settings.json"


class SyntheticError(UsageError):
    """The synthetic output directory or the copy selection cannot be used."""


@dataclass(frozen=True)
class SyntheticRecord:
    """One generated utterance of one copy."""

    id: str
    text: str
    audio: str
    """File name relative to the copy directory."""
    copy: str
    """The copy directory's name (what ``{}`` stands for), whatever the record's own ``copy`` says."""
    dropout: float | None = None
    style: str | None = None
    seed: int | None = None
    frames: int | None = None
    duration_s: float | None = None
    stopped: bool | None = None
    capped: bool | None = None
    audio_bytes: int | None = None
    audio_sha256: str | None = None
    """SHA-256 of the WAV as written (None in records of older trtgen versions)."""
    source: str = ""
    line: int = 0

    @classmethod
    def from_json(cls, value: dict[str, Any], copy: str, source: str, line: int) -> "SyntheticRecord":
        """Validate one record line; raises ValueError with the reason."""
        utterance_id = value.get("id")
        if not isinstance(utterance_id, str) or not utterance_id:
            raise UsageError('missing or empty "id"')
        text = value.get("text")
        if not isinstance(text, str) or not text.strip():
            raise UsageError('missing or empty "text"')
        audio = value.get("audio")
        if not isinstance(audio, str) or not audio:
            raise UsageError('missing or empty "audio"')
        audio_path = PurePosixPath(audio.replace("\\", "/"))
        if audio_path.is_absolute() or ".." in audio_path.parts:
            raise UsageError(f'"audio" must be a path inside the copy directory, found {audio!r}')
        return cls(
            id=utterance_id, text=text, audio=audio_path.as_posix(), copy=copy,
            dropout=_number(value, "dropout", float), style=_string(value, "style"),
            seed=_number(value, "seed", int), frames=_number(value, "frames", int),
            duration_s=_number(value, "duration_s", float), stopped=_flag(value, "stopped"),
            capped=_flag(value, "capped"), audio_bytes=_number(value, "audio_bytes", int),
            audio_sha256=_string(value, "audio_sha256"), source=source, line=line,
        )


def _number(value: dict[str, Any], key: str, kind: type) -> Any:
    raw = value.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or (isinstance(raw, float) and not math.isfinite(raw)):
        raise UsageError(f"{key!r} must be a number, found {raw!r}")
    if kind is int and isinstance(raw, float) and not raw.is_integer():
        raise UsageError(f"{key!r} must be an integer, found {raw!r}")
    return kind(raw)


def _string(value: dict[str, Any], key: str) -> str | None:
    raw = value.get(key)
    return None if raw is None else str(raw)


def _flag(value: dict[str, Any], key: str) -> bool | None:
    raw = value.get(key)
    if raw is None or isinstance(raw, bool):
        return raw
    raise UsageError(f"{key!r} must be true or false, found {raw!r}")


@dataclass
class SyntheticCopy:
    """One copy directory: its records by id (file order), settings, and unreadable record lines."""

    name: str
    directory: Path
    records: dict[str, SyntheticRecord] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def sample_rate(self) -> int | None:
        return settings_sample_rate(self.settings)

    @property
    def dropout(self) -> float | None:
        value = self.settings.get("dropout", self.settings.get("prenet_dropout"))
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def settings_sample_rate(settings: dict[str, Any]) -> int | None:
    """The copy's audio sample rate from ``settings.json`` (``sample_rate``, ``rate`` or ``audio.sample_rate``)."""
    for holder in (settings, settings.get("audio") if isinstance(settings.get("audio"), dict) else {}):
        for key in ("sample_rate", "rate"):
            value = holder.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def record_files(copy_dir: Path) -> list[Path]:
    """``records.jsonl`` and the shard files ``records.shard-I-of-N.jsonl``, in name order."""
    return sorted(p for p in copy_dir.glob("records*.jsonl") if p.is_file())


def list_copies(out_dir: str | Path) -> list[str]:
    """Names of the sub-directories of ``out_dir`` that hold record files, sorted."""
    root = Path(out_dir)
    if not root.is_dir():
        raise SyntheticError(f"synthetic output {root} is not a directory")
    return sorted(d.name for d in root.iterdir() if d.is_dir() and record_files(d))


def read_copy(copy_dir: str | Path) -> SyntheticCopy:
    """Records and settings of one copy; malformed record lines become rejects."""
    directory = Path(copy_dir).expanduser().absolute()
    copy = SyntheticCopy(directory.name, directory)
    settings_path = directory / SETTINGS_FILE
    if settings_path.is_file():
        try:
            loaded = json.loads(settings_path.read_text(encoding="utf-8"))
            copy.settings = loaded if isinstance(loaded, dict) else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            copy.rejects.append(Reject(str(settings_path), None, f"unreadable settings: {exc}"))
    files = record_files(directory)
    if not files:
        raise SyntheticError(f"{directory}: no records*.jsonl (is this a copy written by trtgen generate?)")
    replaced = 0
    for path in files:
        for item in iter_jsonl(path):
            if item.error is not None:
                copy.rejects.append(Reject(str(path), item.number, item.error))
                continue
            try:
                record = SyntheticRecord.from_json(item.value, copy.name, str(path), item.number)
            except ValueError as exc:
                copy.rejects.append(Reject(str(path), item.number, f"invalid record: {exc}", str(item.value.get("id", ""))))
                continue
            if record.id in copy.records:
                replaced += 1
                del copy.records[record.id]
            copy.records[record.id] = record
    if replaced:
        logger.info("copy %s: %d id(s) recorded twice; the last record of each is used", copy.name, replaced)
    return copy


def read_synthetic(out_dir: str | Path, copies: Sequence[str] | None = None) -> list[SyntheticCopy]:
    """The selected copies of a synthetic output (default: every copy), in the given or sorted order."""
    root = Path(out_dir).expanduser().absolute()
    available = list_copies(root)
    if copies is None:
        names = available
    else:
        names = list(dict.fromkeys(copies))
        unknown = [n for n in names if n not in available]
        if unknown:
            raise SyntheticError(f"copies not found under {root}: {', '.join(unknown)} (available: {', '.join(available) or 'none'})")
    if not names:
        raise SyntheticError(f"no copy (sub-directory with records*.jsonl) under {root}")
    return [read_copy(root / name) for name in names]
