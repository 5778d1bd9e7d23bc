"""``trtgen manifest --check``: does every file of a synthetic copy still match its record?

A record names its audio file (WAV or FLAC) with the sample rate, length, size and SHA-256 it was
written with (docs/generating.md). :func:`trtgen.corpora.synthetic.read_copy` resolves each id to the
record that describes its file (size and digest); this module adds what a file's header says (no
samples decoded), for the check and for :mod:`trtgen.commands.manifests`, which refuses to list
damaged audio.

A copy written as shards (:mod:`trtgen.commands.shards`, on local disk or object storage) is checked
against its commit records (:func:`scan_sharded_copy`): each committed shard's files (size and
SHA-256), each member read back (:func:`~trtgen.commands.shard_formats.read_shard`) against the
records of the utterances that passed the quality gate (the same ids in the same order, the audio's
SHA-256, the transcript), shards missing from the numbering (a trainer's ``_OP_0..N_CL_`` pattern
would name a file that is not there), files of shards never committed (a killed run's; ``generate
--resume`` writes them again) and files no commit names.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import soundfile as sf

from trtgen.commands.copylock import LOCK_FILE, lock_holders
from trtgen.commands.manifest_lines import nsr_normalize
from trtgen.commands.shard_formats import AUDIO_EXTENSIONS, SHARD_LAYOUTS, read_shard, shard_files
from trtgen.commands.shards import COMMITS, ShardCommit, commit_name, read_sharded_copy
from trtgen.commands.writers import STAGING
from trtgen.corpora.synthetic import (
    SETTINGS_FILE, Damaged, SyntheticCopy, SyntheticRecord, SyntheticError, is_sharded_copy, list_copies, read_synthetic,
    recorded_quality, record_lines,
)
from trtgen.engine.config import AudioConfig
from trtgen.errors import TrtgenError, UsageError
from trtgen.fileio import TEMPORARY_GLOB
from trtgen.progress import Progress, StepProgress
from trtgen.storage import Storage, is_url

logger = logging.getLogger(__name__)

__all__ = [
    "AudioInfo", "AudioProbeError", "probe_audio", "expected_rate", "file_problem", "damaged_problem", "CheckProblem", "CheckReport",
    "check_synthetic", "SyntheticRoot", "ShardedScan", "scan_sharded_copy", "shard_file_index", "busy_copy",
]

_REJECTS = re.compile(r"rejects(\.shard-\d+-of-\d+)?\.jsonl")
"""A sharded copy's rejects: one file, or one per ``--shard I/N`` process."""


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says."""

    sample_rate: int
    num_samples: int
    channels: int
    size_bytes: int

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate


class AudioProbeError(Exception):
    """An audio file that is missing or cannot be read; ``kind`` is ``missing`` or ``unreadable``."""

    def __init__(self, path: Path, kind: str, detail: str = "") -> None:
        self.path = path
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {path}" + (f" ({detail})" if detail else ""))


def probe_audio(path: str | Path) -> AudioInfo:
    """Sample rate, length and size of an audio file from its header (no samples are decoded)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise AudioProbeError(p, "missing") from None
    except OSError as exc:
        raise AudioProbeError(p, "unreadable", str(exc)) from None
    try:
        info = sf.info(str(p))
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:  # LibsndfileError subclasses RuntimeError
        raise AudioProbeError(p, "unreadable", str(exc).strip()) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioProbeError(p, "unreadable", f"{info.frames} samples at {info.samplerate} Hz")
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels), size)


def expected_rate(copy: SyntheticCopy) -> int:
    """The copy's sample rate from its ``settings.json`` (16 kHz if it names none)."""
    if copy.sample_rate is None:
        logger.info("copy %s: no sample rate in settings.json, expecting %d Hz", copy.name, AudioConfig().sample_rate)
        return AudioConfig().sample_rate
    return copy.sample_rate


def file_problem(record: SyntheticRecord, path: Path, sample_rate: int, tolerance_s: float) -> tuple[AudioInfo | None, str | None]:
    """The file's header and what is wrong with it against its record (None: nothing): missing,
    unreadable, another sample rate, or another length. Size and digest are
    :func:`~trtgen.corpora.synthetic.read_copy`'s to check."""
    try:
        info = probe_audio(path)
    except AudioProbeError as exc:
        return None, f"{exc.kind} ({exc.detail})" if exc.detail else exc.kind
    if info.sample_rate != sample_rate:
        return info, f"sample rate {info.sample_rate} Hz, expected {sample_rate} Hz"
    if record.duration_s is not None and abs(info.duration_s - record.duration_s) > tolerance_s:
        return info, f"wrong length: {info.duration_s:.3f} s in the file, {record.duration_s:.3f} s in the record"
    return info, None


def damaged_problem(damaged: Damaged, path: Path, sample_rate: int, tolerance_s: float) -> str:
    """What to say of a record whose file is not the one it describes: what the header shows when it
    shows something (unreadable, another rate or length), else the size or digest mismatch."""
    _, header = file_problem(damaged.record, path, sample_rate, tolerance_s)
    return header or damaged.problem


@dataclass(frozen=True)
class CheckProblem:
    """A record whose file does not match it, a stray audio file, a temporary leftover, or a copy being
    written; in a sharded copy a shard (``id`` ``shard 000003``) or a member whose bytes or place are not
    its commit record's, a shard missing from the numbering, or a file no commit names."""

    copy: str
    id: str
    path: str
    problem: str


@dataclass
class CheckReport:
    checked: int = 0
    problems: list[CheckProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_synthetic(
    synthetic_dir: str | Path,
    copies: Sequence[str] | None = None,
    *,
    duration_tolerance_s: float = 0.02,
    progress: Progress | None = None,
) -> CheckReport:
    """Every utterance whose file is missing, unreadable, at another sample rate, of another length or
    size, or whose content no longer has its record's SHA-256 (every file is digested); malformed record
    lines; audio files no record names (strays) and temporary files a killed run left behind. A copy
    being written now is named, not checked. Sharded copies (under the same directory, or under an
    object-storage URL) are checked as :func:`scan_sharded_copy` says, every file digested and every
    member read.

    The expected rate is the copy's ``settings.json`` rate (default 16 kHz); the duration is compared
    with the record's ``duration_s`` within ``duration_tolerance_s``."""
    report = CheckReport()
    root = SyntheticRoot.at(synthetic_dir)
    names = root.names(copies)
    busy = {name: holders for name in names if (holders := busy_copy(root.copy(name)))}
    for name, holders in sorted(busy.items()):
        report.problems.append(CheckProblem(
            name, "-", root.copy(name).url(), f"being written now ({holders}): check it when that run has finished",
        ))
    wanted = [n for n in names if n not in busy]
    files_copies = [n for n in wanted if not root.sharded(n)]
    if files_copies:
        assert root.path is not None
        _check_files_copies(root.path, files_copies, duration_tolerance_s, progress, report)
    for name in (n for n in wanted if root.sharded(n)):
        scan = scan_sharded_copy(root.copy(name), name, verify=True, read_members=True, duration_tolerance_s=duration_tolerance_s,
                                 progress=progress)
        report.checked += scan.checked
        report.problems.extend(scan.problems)
    return report


def _check_files_copies(root: Path, wanted: list[str], duration_tolerance_s: float, progress: Progress | None, report: CheckReport) -> None:
    bar = StepProgress(progress, "checking synthetic audio", sum(record_lines(root / name) for name in wanted))
    for copy in read_synthetic(root, wanted, verify=True, step=bar.step):
        for reject in copy.rejects:
            report.problems.append(CheckProblem(copy.name, reject.item, reject.source, f"line {reject.line}: {reject.reason}"))
        sample_rate = expected_rate(copy)
        for utterance_id, damaged in copy.damaged.items():
            report.checked += 1
            path = copy.directory / damaged.record.audio
            report.problems.append(CheckProblem(copy.name, utterance_id, str(path), damaged_problem(damaged, path, sample_rate, duration_tolerance_s)))
        for record in copy.records.values():
            report.checked += 1
            path = copy.directory / record.audio
            _, problem = file_problem(record, path, sample_rate, duration_tolerance_s)
            if problem is not None:
                report.problems.append(CheckProblem(copy.name, record.id, str(path), problem))
        named = {record.audio for record in copy.records.values()} | {d.record.audio for d in copy.damaged.values()}
        audio = sorted(p for extension in AUDIO_EXTENSIONS for p in copy.directory.glob(f"*.{extension}"))
        for path in audio:
            if path.name not in named:
                report.problems.append(CheckProblem(copy.name, path.stem, str(path), "stray: no record names this file"))
        leftovers = [*copy.directory.glob(TEMPORARY_GLOB), *(p for p in (copy.directory / STAGING).rglob("*") if p.is_file())]
        for path in sorted(leftovers):
            report.problems.append(CheckProblem(
                copy.name, "-", str(path), "temporary file left by a run that was killed (trtgen generate --resume removes it)",
            ))


# -- synthetic roots that may hold sharded copies, on local disk or object storage ---------------------


@dataclass(frozen=True)
class SyntheticRoot:
    """``--synthetic``: a local directory (copies of either layout) or an object-storage URL (sharded
    copies only: loose files are for OpenSeq2Seq, which reads local paths)."""

    storage: Storage

    @classmethod
    def at(cls, location: str | Path) -> "SyntheticRoot":
        if is_url(str(location)):
            return cls(Storage.at(str(location), option="--synthetic"))
        return cls(Storage.at(Path(location).expanduser().absolute()))

    @property
    def path(self) -> Path | None:
        """The local directory (None on object storage)."""
        return self.storage.path if self.storage.is_local else None

    def url(self) -> str:
        return str(self.path) if self.path is not None else self.storage.url()

    def copy(self, name: str) -> Storage:
        return self.storage.child(name)

    def sharded(self, name: str) -> bool:
        return self.path is None or is_sharded_copy(self.path / name)

    def available(self) -> list[str]:
        """Every copy: sub-directories with records files or a sharded copy's settings (local), or
        prefixes whose ``settings.json`` names a shard layout (object storage)."""
        if self.path is not None:
            return list_copies(self.path)
        names = []
        for name in self.storage.list():
            parts = name.split("/")
            if len(parts) == 2 and parts[1] == SETTINGS_FILE and _settings_layout(self.storage, name) in SHARD_LAYOUTS:
                names.append(parts[0])
        return sorted(names)

    def names(self, copies: Sequence[str] | None) -> list[str]:
        """The selected copies (default: every copy), refused (exit 2) when one is not there."""
        available = self.available()
        if copies is None:
            if not available:
                raise SyntheticError(f"no copy (sub-directory with records*.jsonl, or a sharded copy) under {self.url()}")
            return available
        names = list(dict.fromkeys(copies))
        unknown = [n for n in names if n not in available]
        if unknown:
            raise SyntheticError(f"copies not found under {self.url()}: {', '.join(unknown)} (available: {', '.join(available) or 'none'})")
        return names


def _settings_layout(storage: Storage, name: str) -> str:
    try:
        settings = json.loads(storage.read_bytes(name))
    except (ValueError, TrtgenError):
        return "files"
    return str(settings.get("layout", "files")) if isinstance(settings, dict) else "files"


def busy_copy(storage: Storage) -> str | None:
    """Who is writing the copy now (None: nobody): the holders of its file lock (local disk), or the live
    lease of its lock object (object storage: one refreshed before its expiry; a dead holder's lease
    outlives it by at most its TTL)."""
    if storage.is_local:
        holders = lock_holders(storage.path) if storage.path.is_dir() else []
        return "; ".join(str(h) for h in holders) or None
    try:
        if not storage.exists(LOCK_FILE):
            return None
        record = json.loads(storage.read_bytes(LOCK_FILE))
        expires = datetime.strptime(str(record["expires"]), "%Y-%m-%d %H:%M:%S %z")
    except (ValueError, KeyError, TypeError, TrtgenError):
        return None
    if expires <= datetime.now(timezone.utc):
        return None
    return f"{record.get('host', '?')} pid {record.get('pid', '?')}, lease until {record['expires']}"


# -- sharded copies ---------------------------------------------------------------------------------------


def _name_pattern(layout: str, position: int) -> re.Pattern[str]:
    """A regular expression matching the name of file ``position`` of any shard of ``layout``: the last
    run of digits of :func:`shard_files`'s name for shard 0 is the index."""
    name = shard_files(layout, 0)[position]
    match = list(re.finditer(r"\d+", name))[-1]
    return re.compile(re.escape(name[:match.start()]) + r"(\d+)" + re.escape(name[match.end():]))


def shard_file_index(layout: str, name: str) -> int | None:
    """The index of the shard whose file ``name`` is (relative to the copy), or None if it is none."""
    for position in range(len(shard_files(layout, 0))):
        match = _name_pattern(layout, position).fullmatch(name)
        if match is not None:
            index = int(match.group(1))
            if shard_files(layout, index)[position] == name:
                return index
    return None


@dataclass
class ShardedScan:
    """What :func:`scan_sharded_copy` found: the shards whose files match their commit records (by index),
    the records of their utterances, and every problem (one line each)."""

    name: str
    storage: Storage
    settings: dict[str, Any]
    layout: str
    commits: dict[int, ShardCommit] = field(default_factory=dict)
    """Every readable commit record, by shard index (those of damaged shards too)."""
    good: list[int] = field(default_factory=list)
    """Shards whose files have the sizes (and with ``verify`` the digests) of their commit records."""
    problems: list[CheckProblem] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)
    """Shard indices below the highest committed one without a commit record."""
    damaged: dict[int, list[str]] = field(default_factory=dict)
    """Committed shards whose files are missing or not their commit record's: what is wrong, by shard index."""
    unreadable: list[str] = field(default_factory=list)
    """Commit records that cannot be read (URL: why)."""
    uncommitted: dict[int, list[str]] = field(default_factory=dict)
    """Files of shards that have no commit record, by shard index."""
    strays: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def count(self) -> int:
        """Shards 0..count-1 are committed when there is no gap."""
        return max(self.commits, default=-1) + 1

    @property
    def sample_rate(self) -> int | None:
        from trtgen.corpora.synthetic import settings_sample_rate

        return settings_sample_rate(self.settings)

    def records(self) -> list[dict[str, Any]]:
        """The committed records of every shard in shard order (failed ones too)."""
        return [r for k in sorted(self.commits) for r in self.commits[k].records]

    def problem(self, what: str, location: str, problem: str) -> None:
        self.problems.append(CheckProblem(self.name, what, location, problem))

    def shard_problem(self, k: int, location: str, problem: str) -> None:
        """A committed shard whose files are not its commit record's."""
        self.problem(_shard(k), location, problem)
        self.damaged.setdefault(k, []).append(f"{location}: {problem}")


def _shard(k: int) -> str:
    return f"shard {k:06d}"


def passed(record: dict[str, Any]) -> bool:
    """Whether a committed record passed the quality gate (only those are members of its shard)."""
    try:
        return recorded_quality(record).ok
    except ValueError:
        return False


def scan_sharded_copy(storage: Storage, name: str, *, verify: bool, read_members: bool = False, duration_tolerance_s: float = 0.02,
                      progress: Progress | None = None) -> ShardedScan:
    """A sharded copy against its commit records: each shard's files (:func:`read_sharded_copy`), with
    ``read_members`` each member read back against the records that passed the quality gate (ids in
    order, audio SHA-256, transcript, duration), shards missing from the numbering, files of uncommitted
    shards, stray files, and (local disk) temporary files."""
    copy = read_sharded_copy(storage, verify=verify, progress=progress)
    if not copy.settings:
        raise UsageError(f"{storage.url(SETTINGS_FILE)} cannot be read (missing or not an object)")
    if copy.layout not in SHARD_LAYOUTS:
        raise UsageError(f"{storage.url()}: not a sharded copy (its settings name layout {copy.layout!r})")
    scan = ShardedScan(name, storage, copy.settings, copy.layout, commits=dict(copy.commits))
    for location, problem in copy.unreadable:
        scan.problem("-", location, problem)
        scan.unreadable.append(f"{location}: {problem}")
    for k, commit in sorted(copy.commits.items()):
        for location, problem in copy.damaged.get(k, []):
            scan.shard_problem(k, location, problem)
        if k not in copy.damaged:
            scan.good.append(k)
        if read_members:
            _check_members(scan, commit, duration_tolerance_s)
        else:
            scan.checked += len(commit.records)
    committed = set(scan.commits)
    commit_files = {n for n in copy.names if n.startswith(COMMITS + "/")}
    scan.gaps = [k for k in range(scan.count) if k not in committed and commit_name(k) not in commit_files]
    for k in scan.gaps:
        scan.problem(_shard(k), storage.url(commit_name(k)), (
            f"missing: shards {0}..{scan.count - 1} are numbered, this one has no commit record, so a trainer's "
            f"_OP_0..{scan.count - 1}_CL_ pattern names a shard that is not there (trtgen generate --resume writes it)"
        ))
    named = {n for commit in scan.commits.values() for n in commit.files}
    for file in copy.names:
        if file in named or file in commit_files or file == SETTINGS_FILE or _REJECTS.fullmatch(file) or file.startswith(LOCK_FILE):
            continue
        index = shard_file_index(copy.layout, file)
        if index is not None and index not in committed:
            scan.uncommitted.setdefault(index, []).append(file)
            scan.problem(_shard(index), storage.url(file),
                         "file of a shard that was never committed, left by a run that was killed (trtgen generate --resume writes it again)")
        else:
            scan.strays.append(file)
            scan.problem("-", storage.url(file), "stray: no shard commit record names this file")
    if storage.is_local:
        for path in sorted(storage.path.rglob(TEMPORARY_GLOB)):
            scan.problem("-", str(path), "temporary file left by a run that was killed (trtgen generate --resume removes it)")
    return scan


def _check_members(scan: ShardedScan, commit: ShardCommit, tolerance_s: float) -> None:
    """Each member of the shard read back against the committed records that passed the quality gate."""
    k, storage = commit.index, scan.storage
    wanted = [r for r in commit.records if passed(r)]
    scan.checked += len(commit.records)
    if not all(storage.exists(f) for f in shard_files(scan.layout, k)):
        return  # already said
    records = {str(r.get("audio")): r for r in wanted}
    order = [str(r.get("audio")) for r in wanted]
    got: list[str] = []
    tar = storage.url(shard_files(scan.layout, k)[-1])
    try:
        for member in read_shard(scan.layout, k, storage.open_read):
            audio = f"{member.id}.{member.extension}"
            got.append(audio)
            record = records.get(audio)
            if record is None:
                continue
            problem = _member_problem(member.audio, member.text, member.duration, record, tolerance_s)
            if problem is not None:
                scan.problem(member.id, tar, problem)
    except (TrtgenError, OSError) as error:
        scan.problem(_shard(k), tar, f"cannot be read back: {error}")
        return
    if got == order:
        return
    missing = [a for a in order if a not in set(got)]
    extra = [a for a in got if a not in records]
    for audio in missing:
        scan.problem(audio.rsplit(".", 1)[0], tar, "not in the shard, though its commit record lists it as passing the quality check")
    for audio in extra:
        scan.problem(audio.rsplit(".", 1)[0], tar, "in the shard, but not among its commit record's utterances that passed the quality check")
    if not missing and not extra:
        scan.problem(_shard(k), tar, "members in another order than its commit record's")


def _member_problem(audio: bytes, text: str, duration: float, record: dict[str, Any], tolerance_s: float) -> str | None:
    if hashlib.sha256(audio).hexdigest() != record.get("audio_sha256"):
        return "altered audio: the member's SHA-256 is not its record's audio_sha256"
    if isinstance(record.get("text"), str) and nsr_normalize(record["text"]) != text:
        return f"transcript {text!r} is not its record's {nsr_normalize(record['text'])!r}"
    recorded = record.get("duration_s")
    if isinstance(recorded, (int, float)) and math.isfinite(recorded) and abs(duration - recorded) > tolerance_s:
        return f"wrong length: {duration:.3f} s in the shard, {recorded:.3f} s in the record"
    return None
