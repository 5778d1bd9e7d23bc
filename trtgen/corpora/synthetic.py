"""Reader of ``trtgen generate``'s output: ``OUT/<copy>/`` holding WAVs, ``records*.jsonl``, ``settings.json``.

A copy written as shards (``--layout shar|nemo-tarred``: its ``settings.json`` names the layout, its
``shards/`` hold commit records) has no records files and no loose audio: :func:`list_copies` names it
(:func:`is_sharded_copy` tells it apart), :func:`read_synthetic` leaves it to
:func:`trtgen.commands.shards.read_sharded_copy`.

Each copy is one full synthetic LibriSpeech. A record line is
``{"id", "index", "text", ["text_input",] "style", "copy", "dropout", "seed", "frames", "steps", "duration_s",
"stopped", "capped", "audio", "audio_bytes", "audio_sha256", "inputs_sha256", "quality", "attempt", "style_mode",
"style_draw"}`` with ``text`` the transcript the audio speaks and ``audio`` the WAV's name relative to the copy
directory; rows in ``rejects*.jsonl`` were not generated and are not read. ``quality`` says whether the
utterance is worth training on (:class:`Quality`); records of earlier trtgen versions have none of the last
four fields, and read as ``attempt`` 1, ``style_mode`` ``clip``, and failed only when ``capped``. Unsharded
runs write ``records.jsonl``, sharded runs ``records.shard-I-of-N.jsonl`` each.

**One current record per utterance.** The records that describe a file are those whose size and
SHA-256 are the file's; :func:`read_copy` picks, for each id, the record that describes its file (a
record is never chosen for the order its file is read in), and reports as damaged the records whose
file is missing or holds other bytes when no other record of that id describes it. The digest is
computed only where it is needed: a file whose status (inode change time) is older than the records
file that lists it has not changed since that records file was written, so its size is enough
(``verify`` digests every file). ``trtgen generate`` keeps this true when it writes: before it makes
an utterance again it removes that id's older records (docs/generating.md, "One record per utterance").
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

from trtgen.commands.shard_formats import SHARD_LAYOUTS
from trtgen.corpora.base import Reject
from trtgen.engine.quality import Quality
from trtgen.errors import UsageError
from trtgen.fileio import iter_jsonl, sha256_file

logger = logging.getLogger(__name__)

__all__ = [
    "Quality",
    "recorded_quality",
    "SyntheticRecord",
    "SyntheticCopy",
    "SyntheticError",
    "Damaged",
    "audio_problem",
    "list_copies",
    "copy_layout",
    "is_sharded_copy",
    "read_copy",
    "read_synthetic",
    "record_files",
    "record_lines",
    "manifest_id",
    "settings_sample_rate",
]

SETTINGS_FILE = "settings.json"
RECORDS_GLOB = "records*.jsonl"


class SyntheticError(UsageError):
    """The synthetic output directory or the copy selection cannot be used."""


def manifest_id(utterance_id: str, copy: str) -> str:
    """A synthetic utterance's id in every manifest, ``<utterance id>_<copy>``: unique across the copies
    of one output unless ids and copy names combine badly (``x`` in ``a_b`` and ``x_a`` in ``b``), which
    ``trtgen generate`` refuses before it makes any audio."""
    return f"{utterance_id}_{copy}"


def recorded_quality(value: dict[str, Any]) -> Quality:
    """The record's ``quality`` (:class:`~trtgen.engine.quality.Quality`); a record written before trtgen
    judged quality has none, and failed only when the decoder hit its step cap (``capped``). Raises
    UsageError with the reason."""
    raw = value.get("quality")
    if raw is None:
        return Quality(False, ("capped",)) if _flag(value, "capped") else Quality(True)
    return Quality.from_json(raw)


STYLE_MODE_CLIP = "clip"
"""The style mode of records that name none: earlier trtgen versions embedded one clip per utterance."""


@dataclass(frozen=True)
class SyntheticRecord:
    """One generated utterance of one copy, as a records file lists it.

    Attributes:
        id: the utterance id.
        text: the transcript the audio speaks.
        audio: the file's name relative to the copy directory.
        copy: the copy directory's name (what ``{}`` stands for), whatever the record's own ``copy`` says.
        audio_bytes, audio_sha256: size and SHA-256 of the file as it was written (None in records of
            trtgen versions that did not write them).
        inputs_sha256: digest of what made the audio (``trtgen generate --resume`` compares it).
        quality: the quality check's verdict (:class:`Quality`).
        attempt: which try made the audio (1 the first; more when ``--retries`` spoke it again).
        style_mode: how the style was given: ``clip``, ``blend`` or ``tokens``.
        style_draw: what was drawn for that style (blend weights, tokens...), as the record holds it.
        source, line: the records file and line the record was read from.
        listed_before_ns: the records file's status-change time when it was read: a file whose own
            status-change time is older has not changed since the record was vouched for.
        raw: the record line as written, for a writer that rewrites records files.
    """

    id: str
    text: str
    audio: str
    copy: str
    dropout: float | None = None
    style: str | None = None
    seed: int | None = None
    frames: int | None = None
    duration_s: float | None = None
    stopped: bool | None = None
    capped: bool | None = None
    audio_bytes: int | None = None
    audio_sha256: str | None = None
    index: int | None = None
    inputs_sha256: str | None = None
    quality: Quality = field(default_factory=Quality)
    attempt: int = 1
    style_mode: str = STYLE_MODE_CLIP
    style_draw: dict[str, Any] | None = field(default=None, compare=False)
    source: str = ""
    line: int = 0
    listed_before_ns: int = 0
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, value: dict[str, Any], copy: str, source: str, line: int, listed_before_ns: int = 0) -> "SyntheticRecord":
        """Validate one record line; raises UsageError with the reason."""
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
        attempt = _number(value, "attempt", int)
        if attempt is not None and attempt < 1:
            raise UsageError(f"'attempt' must be 1 or more, found {attempt!r}")
        style_mode = value.get("style_mode")
        if style_mode is not None and (not isinstance(style_mode, str) or not style_mode):
            raise UsageError(f"'style_mode' must be a name such as 'clip', found {style_mode!r}")
        style_draw = value.get("style_draw")
        if style_draw is not None and not isinstance(style_draw, dict):
            raise UsageError(f"'style_draw' must be an object, found {style_draw!r}")
        return cls(
            id=utterance_id, text=text, audio=audio_path.as_posix(), copy=copy,
            dropout=_number(value, "dropout", float), style=_string(value, "style"),
            seed=_number(value, "seed", int), frames=_number(value, "frames", int),
            duration_s=_number(value, "duration_s", float), stopped=_flag(value, "stopped"),
            capped=_flag(value, "capped"), audio_bytes=_number(value, "audio_bytes", int),
            audio_sha256=_string(value, "audio_sha256"), index=_number(value, "index", int),
            inputs_sha256=_string(value, "inputs_sha256"), quality=recorded_quality(value), attempt=attempt or 1,
            style_mode=style_mode or STYLE_MODE_CLIP, style_draw=style_draw, source=source, line=line,
            listed_before_ns=listed_before_ns, raw=value,
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


def audio_problem(record: SyntheticRecord, path: Path, *, verify: bool = False) -> str | None:
    """What is wrong with ``path`` as the file ``record`` describes (None: it is that file): missing,
    unreadable, another size, or (digested when ``verify``, or when the file changed after the records
    file listing it was written) other bytes."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as error:
        return f"unreadable ({error.strerror or error})"
    if record.audio_bytes is not None and status.st_size != record.audio_bytes:
        return f"wrong size: {status.st_size} bytes in the file, {record.audio_bytes} in the record"
    if record.audio_sha256 is not None and (verify or status.st_ctime_ns >= record.listed_before_ns):
        try:
            if sha256_file(path) != record.audio_sha256:
                return "altered content: the file's SHA-256 is not the record's"
        except OSError as error:
            return f"unreadable ({error.strerror or error})"
    return None


@dataclass(frozen=True)
class Damaged:
    """A record whose file is missing or holds other bytes, with no other record of its id describing it."""

    record: SyntheticRecord
    problem: str


@dataclass
class SyntheticCopy:
    """One copy directory: the current record of each id, and what else its records files hold.

    Attributes:
        records: the current record of each id (the one that describes its file), in records-file order.
        damaged: ids whose records all fail their file (missing, truncated, overwritten), by id.
        superseded: records of an id whose current record is another (an older run's).
        by_file: every valid record of each records file, in file order (for a writer that rewrites them).
        settings: ``settings.json``.
        rejects: malformed record lines and an unreadable settings file.
    """

    name: str
    directory: Path
    records: dict[str, SyntheticRecord] = field(default_factory=dict)
    damaged: dict[str, Damaged] = field(default_factory=dict)
    superseded: list[SyntheticRecord] = field(default_factory=list)
    by_file: dict[Path, list[SyntheticRecord]] = field(default_factory=dict)
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
    return sorted(p for p in Path(copy_dir).glob(RECORDS_GLOB) if p.is_file())


def record_lines(copy_dir: Path) -> int:
    """Lines in a copy's records files, read as bytes (no JSON): the length of a progress bar over them."""
    return sum(path.read_bytes().count(b"\n") for path in record_files(copy_dir))


def copy_layout(copy_dir: str | Path) -> str:
    """How a copy is laid out, as its ``settings.json`` says: ``files`` (also when it names no layout, or
    cannot be read), ``shar`` or ``nemo-tarred``."""
    try:
        settings = json.loads((Path(copy_dir) / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "files"
    layout = settings.get("layout", "files") if isinstance(settings, dict) else "files"
    return layout if isinstance(layout, str) else "files"


def is_sharded_copy(copy_dir: str | Path) -> bool:
    """Whether the copy directory was written as shards (its settings name a shard layout)."""
    return copy_layout(copy_dir) in SHARD_LAYOUTS


def list_copies(out_dir: str | Path) -> list[str]:
    """Names of the sub-directories of ``out_dir`` that hold record files or are sharded copies, sorted."""
    root = Path(out_dir)
    if not root.is_dir():
        raise SyntheticError(f"synthetic output {root} is not a directory")
    return sorted(d.name for d in root.iterdir() if d.is_dir() and (record_files(d) or is_sharded_copy(d)))


def read_copy(copy_dir: str | Path, *, verify: bool = False, step: Callable[[], None] | None = None) -> SyntheticCopy:
    """Records and settings of one copy, resolved to one current record per id (module docstring);
    malformed record lines become rejects. ``verify`` digests every file; ``step`` is called once per
    record checked (a progress bar)."""
    directory = Path(copy_dir).expanduser().absolute()
    copy = SyntheticCopy(directory.name, directory)
    settings_path = directory / SETTINGS_FILE
    if settings_path.is_file():
        try:
            loaded = json.loads(settings_path.read_text(encoding="utf-8"))
            copy.settings = loaded if isinstance(loaded, dict) else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            copy.rejects.append(Reject(str(settings_path), None, f"unreadable settings: {exc}"))
    by_id: dict[str, list[SyntheticRecord]] = {}
    for path in record_files(directory):
        listed_before_ns = path.stat().st_ctime_ns  # before reading: lines appended later are not vouched for
        records = copy.by_file.setdefault(path, [])
        for item in iter_jsonl(path):
            if item.error is not None:
                copy.rejects.append(Reject(str(path), item.number, item.error))
                continue
            try:
                record = SyntheticRecord.from_json(item.value, copy.name, str(path), item.number, listed_before_ns)
            except ValueError as exc:
                copy.rejects.append(Reject(str(path), item.number, f"invalid record: {exc}", str(item.value.get("id", ""))))
                continue
            records.append(record)
            by_id.setdefault(record.id, []).append(record)
    _resolve(copy, by_id, verify, step or (lambda: None))
    return copy


def _resolve(copy: SyntheticCopy, by_id: dict[str, list[SyntheticRecord]], verify: bool, step: Callable[[], None]) -> None:
    """For each id, the record that describes its file; among several (an id made again by a later run
    whose older record could not be removed), the one of the most recently written records file."""
    for utterance_id, candidates in by_id.items():
        problems = {}
        for record in candidates:
            step()
            # Several records of one id: only their digests tell which describes the file.
            problems[id(record)] = audio_problem(record, copy.directory / record.audio, verify=verify or len(candidates) > 1)
        matching = [r for r in candidates if problems[id(r)] is None]
        if matching:
            current = max(matching, key=lambda r: r.listed_before_ns)
            copy.records[utterance_id] = current
            copy.superseded.extend(r for r in candidates if r is not current)
        else:
            last = max(candidates, key=lambda r: r.listed_before_ns)
            copy.damaged[utterance_id] = Damaged(last, problems[id(last)] or "")
            copy.superseded.extend(r for r in candidates if r is not last)
    # Two ids naming one file (positional names) can both match only if their bytes are equal; never
    # let one file stand under two transcripts.
    by_audio: dict[str, list[SyntheticRecord]] = {}
    for record in copy.records.values():
        by_audio.setdefault(record.audio, []).append(record)
    for audio, sharing in by_audio.items():
        if len(sharing) > 1:
            names = " and ".join(repr(r.id) for r in sharing)
            for record in sharing:
                del copy.records[record.id]
                copy.damaged[record.id] = Damaged(record, f"{audio} is named by the records of {names}")


def read_synthetic(out_dir: str | Path, copies: Sequence[str] | None = None, *, verify: bool = False,
                   step: Callable[[], None] | None = None) -> list[SyntheticCopy]:
    """The selected copies of a synthetic output (default: every copy written as files), in the given or
    sorted order. Sharded copies are not read here (:func:`trtgen.commands.shards.read_sharded_copy`)."""
    root = Path(out_dir).expanduser().absolute()
    available = list_copies(root)
    sharded = {n for n in available if is_sharded_copy(root / n)}
    if copies is None:
        names = [n for n in available if n not in sharded]
    else:
        names = list(dict.fromkeys(copies))
        unknown = [n for n in names if n not in available]
        if unknown:
            raise SyntheticError(f"copies not found under {root}: {', '.join(unknown)} (available: {', '.join(available) or 'none'})")
        refused = [n for n in names if n in sharded]
        if refused:
            raise SyntheticError(
                f"copy {refused[0]} under {root} is written as shards (--layout {copy_layout(root / refused[0])}), "
                "not as records and files: read it with trtgen.commands.shards.read_sharded_copy"
            )
    if not names:
        raise SyntheticError(f"no copy (sub-directory with records*.jsonl) under {root}")
    return [read_copy(root / name, verify=verify, step=step) for name in names]
