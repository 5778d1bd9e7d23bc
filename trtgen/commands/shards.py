"""Copies written as shards (``trtgen generate --layout shar|nemo-tarred``): the unit of work, commit and storage.

A shard is ``--shard-utterances`` consecutive rows of the list (shard ``k``: rows ``k*U .. (k+1)*U - 1`` by
row index) in one copy, written as Lhotse Shar or NeMo tarred files (:mod:`trtgen.commands.shard_formats`).
Why shards: ASR trainers read tar shards sequentially, object stores and parallel file systems handle a
few thousand large objects well and a million small ones badly, and a shard is a natural unit of work.

* **Pure function.** A shard's bytes depend only on its rows and the copy's settings: members in list
  order, each member's audio a pure function of its inputs, tar and gzip headers without times. Batch
  size, threads, worker count and interruptions never change them.
* **Atomic commit.** Whoever renders a shard (this process, or the Ray worker its block went to) writes
  its files whole, each under a temporary name then renamed (local disk) or as a single object
  (object storage); the driver then writes ``shards/<k>.json``, the shard's commit record: the files'
  sizes and SHA-256, each member's record (what :class:`~trtgen.commands.writers.UtteranceRecord`
  holds for a loose file) and the rows rejected. A shard is complete when its commit record names
  this run's inputs digest and its files have the recorded sizes; a run killed at any moment leaves at
  most files of uncommitted shards, which ``--resume`` writes again with the same bytes.
* **Only what is worth training on.** Utterances the quality gate failed (:mod:`trtgen.engine.quality`)
  are recorded in the commit record with their reasons but left out of the shard's audio and manifests:
  a trainer reads shards as they are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from trtgen.commands.copylock import CopyLock, ObjectLock
from trtgen.commands.manifest_lines import nsr_normalize, style_speaker
from trtgen.commands.shard_formats import SHARD_LAYOUTS, ShardMember, shard_files, write_shard
from trtgen.commands.writers import SETTINGS_FILE, check_same_settings, shard_suffix, Expected, OpenedCopy, ResumeState, SettingsMismatch, UtteranceRecord
from trtgen.corpora.base import Reject
from trtgen.corpora.synthetic import manifest_id
from trtgen.errors import OutputError, TrtgenError, UsageError
from trtgen.progress import Progress, StepProgress
from trtgen.storage import Storage

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SHARD_UTTERANCES", "COMMITS", "ShardTarget", "ShardWritten", "ShardBuilder", "ShardCommit", "ShardedCopy",
    "ShardedCopyWriter", "read_sharded_copy", "shard_inputs_digest",
]

DEFAULT_SHARD_UTTERANCES = 1000
"""Rows per shard: Lhotse's own default; 281,241 LibriSpeech rows make 282 shards per copy (NeMo's
maintainers suggest 512-8192 shards for a whole training set, at least one per GPU: several copies
reach that)."""
COMMITS = "shards"
"""Sub-directory of a copy holding one commit record per complete shard."""


def commit_name(index: int) -> str:
    return f"{COMMITS}/{index:06d}.json"


def _commit_index(name: str) -> int:
    """The shard index of a commit record's name (``shards/000012.json`` -> 12; -1 for anything else)."""
    stem = name.rsplit("/", 1)[-1].removesuffix(".json")
    return int(stem) if stem.isdigit() else -1


def shard_inputs_digest(layout: str, utterances: int, index: int, members: Iterable[tuple[str, str]]) -> str:
    """What determines a shard's bytes: the layout, its place, and its rows' (id, inputs digest) in list order."""
    payload = json.dumps([layout, utterances, index, list(members)], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ShardTarget:
    """One shard of one copy to be rendered: where its files go and which jobs it holds (picklable: a Ray
    block carries it to the worker that writes it).

    Attributes:
        location: the copy's directory or URL (:class:`~trtgen.storage.Storage`).
        ids: the utterance ids of the shard's jobs, in list order; the shard is written when each has an outcome.
    """

    location: str
    layout: str
    index: int
    copy: str
    ids: tuple[str, ...]


@dataclass(frozen=True)
class ShardWritten:
    """A shard whose files are in place: the driver commits it (:meth:`ShardedCopyWriter.commit`)."""

    copy: str
    index: int
    files: dict[str, tuple[int, str]]
    members: int


class ShardBuilder:
    """Collects one shard's members as they are spoken (their encoded audio spilled to a local directory,
    so that a shard never sits in memory whole) and writes the shard when the last has come."""

    def __init__(self, target: ShardTarget, spill_root: Path) -> None:
        self.target = target
        self._waiting = set(target.ids)
        self._members: dict[str, ShardMember] = {}
        self._spill = Path(tempfile.mkdtemp(prefix=f"{target.copy}-{target.index:06d}-", dir=spill_root))

    def add(self, utterance_id: str, member: ShardMember | None) -> None:
        """One job's outcome: its member (None: rejected, or failed the quality gate)."""
        self._waiting.discard(utterance_id)
        if member is not None:
            path = self._spill / f"{len(self._members):06d}"
            assert isinstance(member.audio, bytes)
            path.write_bytes(member.audio)
            self._members[utterance_id] = ShardMember(
                member.id, path, member.extension, member.sample_rate, member.num_samples, member.text, member.speaker, member.custom,
            )

    @property
    def complete(self) -> bool:
        return not self._waiting

    def write(self) -> ShardWritten:
        """Write the shard's files into its copy, each atomically, and forget the spilled audio."""
        target = self.target
        storage = Storage.at(target.location)
        members = [self._members[i] for i in target.ids if i in self._members]
        try:
            built = self._spill / "shard"
            built.mkdir()
            files = write_shard(target.layout, target.index, members, built)
            for name in files:
                storage.put_file(built / name, name)
        except OSError as error:
            raise OutputError(error, storage.url(), "writing a shard into") from None
        finally:
            self.discard()
        return ShardWritten(target.copy, target.index, dict(files), len(members))

    def discard(self) -> None:
        shutil.rmtree(self._spill, ignore_errors=True)


def shard_member(utterance_id: str, copy: str, text: str, clip: str, audio: bytes, num_samples: int, extension: str,
                 sample_rate: int, custom: Mapping[str, Any]) -> ShardMember:
    """A spoken utterance as a shard member: its manifest id (``<id>_<copy>``, as every manifest names it),
    the label as the manifests write it, the style clip's speaker, and what a trainer may want to know."""
    fields = {"synthetic": True, "utterance_id": utterance_id, "copy": copy, "style": clip, **custom}
    return ShardMember(manifest_id(utterance_id, copy), audio, extension, sample_rate, num_samples, nsr_normalize(text),
                       style_speaker(clip), fields)


@dataclass(frozen=True)
class ShardCommit:
    """A shard's commit record (``shards/<k>.json``)."""

    index: int
    inputs_sha256: str
    files: dict[str, tuple[int, str]]
    records: list[dict[str, Any]]
    rejects: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "shard": self.index, "inputs_sha256": self.inputs_sha256,
            "files": {name: {"bytes": size, "sha256": digest} for name, (size, digest) in sorted(self.files.items())},
            "records": self.records, "rejects": self.rejects,
        }

    @classmethod
    def from_json(cls, value: Any, source: str) -> "ShardCommit":
        try:
            files = {str(n): (int(f["bytes"]), str(f["sha256"])) for n, f in value["files"].items()}
            return cls(int(value["shard"]), str(value["inputs_sha256"]), files, list(value["records"]), list(value["rejects"]))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise UsageError(f"{source}: not a shard commit record ({error!r})") from None


@dataclass
class ShardedCopy:
    """A sharded copy as its commit records describe it: the one reading of them, for the writer
    (``--resume``), ``trtgen manifest`` and its ``--check``.

    Attributes:
        settings: ``settings.json`` ({} for a copy not started yet).
        names: every file of the copy, relative to it, as listed.
        commits: every readable commit record, by shard index (damaged shards' too).
        damaged: committed shards whose files are not their commit record's: (location, problem) by index.
        unreadable: commit records that cannot be used: (location, problem).
    """

    name: str
    storage: Storage
    settings: dict[str, Any]
    names: list[str] = field(default_factory=list)
    commits: dict[int, ShardCommit] = field(default_factory=dict)
    damaged: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def layout(self) -> str:
        return str(self.settings.get("layout", "files"))

    @property
    def shards(self) -> dict[int, ShardCommit]:
        """The committed shards whose files are their commit records'."""
        return {k: c for k, c in self.commits.items() if k not in self.damaged}


def read_sharded_copy(location: str | Storage, *, verify: bool = False, progress: Progress | None = None) -> ShardedCopy:
    """Settings and commit records of a sharded copy, each shard's files checked against its record: present,
    the recorded size, and the recorded SHA-256 with ``verify`` or where a local file changed at or after
    its commit record was written (as for loose files: :func:`trtgen.corpora.synthetic.audio_problem`)."""
    storage = location if isinstance(location, Storage) else Storage.at(location)
    settings: dict[str, Any] = {}
    if storage.exists(SETTINGS_FILE):
        try:
            loaded = json.loads(storage.read_bytes(SETTINGS_FILE))
            settings = loaded if isinstance(loaded, dict) else {}
        except (ValueError, TrtgenError) as error:
            raise UsageError(f"{storage.url(SETTINGS_FILE)} cannot be read ({error})") from None
    copy = ShardedCopy(_name(storage), storage, settings, storage.list())
    commit_files = [n for n in copy.names if n.startswith(COMMITS + "/")]
    bar = StepProgress(progress, f"checking the shards of {copy.name}", len(commit_files))
    for commit_file in commit_files:
        bar.step()
        try:
            commit = ShardCommit.from_json(json.loads(storage.read_bytes(commit_file)), storage.url(commit_file))
        except (ValueError, TrtgenError) as error:
            copy.unreadable.append((storage.url(commit_file), f"unreadable shard commit record ({error})"))
            continue
        if commit_name(commit.index) != commit_file:
            copy.unreadable.append((storage.url(commit_file), f"commit record of shard {commit.index} under another name"))
            continue
        copy.commits[commit.index] = commit
        problems = _files_problems(storage, copy.layout, commit, verify)
        if problems:
            copy.damaged[commit.index] = problems
    return copy


def _name(storage: Storage) -> str:
    return storage.url().rstrip("/").rsplit("/", 1)[-1]


def _files_problems(storage: Storage, layout: str, commit: ShardCommit, verify: bool) -> list[tuple[str, str]]:
    problems = []
    expected = set(shard_files(layout, commit.index)) if layout in SHARD_LAYOUTS else set()
    if set(commit.files) != expected:
        problems.append((storage.url(commit_name(commit.index)),
                         f"its commit record names {', '.join(sorted(commit.files))}, not the shard's files {', '.join(sorted(expected))}"))
    for file, (size, digest) in sorted(commit.files.items()):
        try:
            if not storage.exists(file):
                problems.append((storage.url(file), "missing: its commit record names this file (trtgen generate --resume writes the shard again)"))
                continue
            actual = storage.size(file)
            if actual != size:
                problems.append((storage.url(file), f"wrong size: {actual} bytes, {size} in its commit record"))
            elif (verify or _changed_since(storage, file, commit_name(commit.index))) and storage.sha256(file) != digest:
                problems.append((storage.url(file), "altered content: the file's SHA-256 is not its commit record's"))
        except TrtgenError as error:
            problems.append((storage.url(file), f"unreadable ({error})"))
    return problems


def _changed_since(storage: Storage, file: str, commit_file: str) -> bool:
    """Whether a local shard file's status changed at or after its commit record was written; object
    storage: no (an object is written whole, once)."""
    if not storage.is_local:
        return False
    try:
        return (storage.path / file).stat().st_ctime_ns >= (storage.path / commit_file).stat().st_ctime_ns
    except OSError:
        return True


class ShardedCopyWriter:
    """Writes one sharded copy (or the storage shards of one ``--shard I/N`` process) while holding the
    copy's lock; :mod:`trtgen.commands.generate` drives it as it drives a files copy's
    :class:`~trtgen.commands.writers.CopyWriter`: open (everything that can refuse), start, records as
    utterances come, a commit per written shard, close."""

    def __init__(self, location: str | Storage, settings: dict[str, Any], *, layout: str, shard_utterances: int,
                 process_shard: tuple[int, int] | None, extension: str) -> None:
        if layout not in SHARD_LAYOUTS:
            raise UsageError(f"--layout {layout!r}: not a shard layout ({', '.join(SHARD_LAYOUTS)})")
        self.storage = location if isinstance(location, Storage) else Storage.at(location)
        self.location = self.storage.url() if not self.storage.is_local else str(self.storage.path)
        self.directory = self.storage.path if self.storage.is_local else Path(_name(self.storage))
        self.settings = settings
        self.layout = layout
        self.shard_utterances = shard_utterances
        self.extension = extension
        self.process_shard = process_shard
        self.copy = str(settings["copy"])
        self.completed: dict[str, dict[str, Any]] = {}
        self._expected: dict[str, Expected] = {}
        self._shard_of: dict[str, int] = {}
        self._order: dict[int, list[str]] = {}
        """Each shard's row ids (this run's rows), in list order."""
        self._digests: dict[int, str] = {}
        self._pending: dict[int, dict[str, dict[str, Any]]] = {}
        self._rejects: dict[int, list[dict[str, Any]]] = {}
        self._committed: dict[int, ShardCommit] = {}
        self._stale: list[int] = []
        self._lock: Any = None
        self._rejects_name = f"rejects{shard_suffix(process_shard)}.jsonl"
        """``rejects.jsonl``, or one file per ``--shard I/N`` process (they write side by side)."""
        self._held = ExitStack()

    def audio_name(self, utterance_id: str, index: int) -> str:
        """The member's name inside the shard (and its record's ``audio``)."""
        return f"{manifest_id(utterance_id, self.copy)}.{self.extension}"

    def shard_of(self, index: int) -> int:
        return index // self.shard_utterances

    def targets(self) -> dict[int, ShardTarget]:
        """The shards this run writes (those not complete), with their jobs' ids."""
        return {
            k: ShardTarget(self.location, self.layout, k, self.copy, tuple(i for i in ids if i not in self.completed))
            for k, ids in sorted(self._order.items()) if k not in self._committed
        }

    def open(self, *, resume: bool, expected: Mapping[str, Expected], indices: Mapping[str, int], shards: Iterable[int],
             listed_shards: int, prune: bool = False) -> OpenedCopy:
        """Lock the copy, check its settings and decide which of ``shards`` (those this run covers) are
        complete; shards at or past ``listed_shards`` (the whole list's count) are no longer in the list:
        kept, or with ``prune`` removed at :meth:`start`."""
        self.lock()
        try:
            self._check_settings(resume)
            existing = read_sharded_copy(self.storage)
            self._expected = dict(expected)
            for utterance_id, index in indices.items():
                self._shard_of[utterance_id] = self.shard_of(index)
            for k in shards:
                self._order.setdefault(k, [])
            for utterance_id in expected:
                self._order.setdefault(self._shard_of[utterance_id], []).append(utterance_id)
            opened = OpenedCopy()
            for k, ids in sorted(self._order.items()):
                self._digests[k] = shard_inputs_digest(self.layout, self.shard_utterances, k, [(i, expected[i].inputs_sha256) for i in ids])
                commit = existing.shards.get(k)
                if commit is not None and commit.inputs_sha256 == self._digests[k]:
                    self._committed[k] = commit
                    for record in commit.records:
                        self.completed[record["id"]] = record
                    opened.states[ResumeState.DONE] += len(ids)
                else:
                    state = ResumeState.NEW if commit is None and k not in existing.damaged else (
                        ResumeState.CHANGED if commit is not None else ResumeState.ALTERED)
                    opened.states[state] += len(ids)
            stale = sorted(k for k in (*existing.shards, *existing.damaged) if k >= listed_shards)
            opened.not_in_list = sum(len(existing.shards[k].records) for k in stale if k in existing.shards)
            if prune:
                self._stale = stale
                opened.pruned = opened.not_in_list
            return opened
        except BaseException:
            self.abort()
            raise

    def lock(self) -> None:
        """Take the copy's lock (a flock on local disk, a lock object on object storage), before anything
        slow starts: a second run on the same copy is refused at once."""
        if self._lock is not None:
            return
        lock = self._make_lock()
        lock.acquire()
        self._lock = lock
        self._held.callback(self._release)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _make_lock(self) -> Any:
        if self.storage.is_local:
            self.storage.path.mkdir(parents=True, exist_ok=True)
            return CopyLock(self.storage.path, self.process_shard)
        if self.process_shard is not None:
            raise UsageError("--shard: on object storage one driver writes a copy; use --ray to spread the work over processes")
        return ObjectLock(self.storage)

    def _check_settings(self, resume: bool) -> None:
        previous: dict[str, Any] | None = None
        if self.storage.exists(SETTINGS_FILE):
            try:
                previous = json.loads(self.storage.read_bytes(SETTINGS_FILE))
            except ValueError as error:
                raise SettingsMismatch(f"{self.storage.url(SETTINGS_FILE)} cannot be read ({error}); use another --out") from None
        commits = self.storage.list(COMMITS)
        if previous is None:
            if commits:
                raise SettingsMismatch(f"{self.storage.url()} has shards but no {SETTINGS_FILE}; refusing to mix outputs")
            return
        check_same_settings(self.storage.url(), previous, self.settings)
        # Process shards start side by side, so only a process's own shards mean an earlier run of this very job.
        own = [n for n in commits if self.process_shard is None or _commit_index(n) % self.process_shard[1] == self.process_shard[0]]
        if own and not resume:
            raise SettingsMismatch(f"{self.storage.url()} already holds shards; pass --resume to continue that run")

    def start(self) -> list[ShardTarget]:
        """Write the settings, remove pruned shards; returns the shards with no job left to render (every
        row rejected while reading): they are written here, empty of those rows."""
        try:
            self.storage.write_bytes(SETTINGS_FILE, (json.dumps(self.settings, indent=2, sort_keys=True) + "\n").encode())
            for k in self._stale:
                self.storage.remove(commit_name(k))
                for name in shard_files(self.layout, k):
                    self.storage.remove(name)
        except OSError as error:
            self.abort()
            raise OutputError(error, self.storage.url(), "writing") from None
        return [t for t in self.targets().values() if not t.ids]

    def append(self, record: UtteranceRecord, status: tuple[int, int] | None = None) -> None:
        """An utterance of a shard being written: held until the shard commits."""
        line = record.to_json()
        line["shard"] = self._shard_of[record.id]
        self._pending.setdefault(line["shard"], {})[record.id] = line

    def reject(self, utterance_id: str, reject: Reject) -> None:
        self._rejects.setdefault(self._shard_of[utterance_id], []).append(reject.to_dict())

    def commit(self, written: ShardWritten) -> None:
        """The shard's files are in place: write its commit record (atomically, last)."""
        k = written.index
        pending = self._pending.pop(k, {})
        records = [pending[i] for i in self._order.get(k, []) if i in pending]
        commit = ShardCommit(k, self._digests[k], written.files, records, self._rejects.pop(k, []))
        check = getattr(self._lock, "check", None)
        if check is not None:
            check()  # a lease on object storage that ended (the holder could not refresh it) stops the run here
        try:
            self.storage.write_bytes(commit_name(k), (json.dumps(commit.to_json(), ensure_ascii=False, sort_keys=True) + "\n").encode())
        except OSError as error:
            raise OutputError(error, self.storage.url(commit_name(k)), "writing") from None
        self._committed[k] = commit
        for record in records:
            self.completed[record["id"]] = record

    def close(self, order: Iterable[str], rejects: Iterable[Reject]) -> None:
        """Write the copy's rejects (the list's, and every committed shard's) and release the lock."""
        try:
            lines = [r.to_dict() for r in rejects if r.id is None or r.id not in self._shard_of]
            for k in sorted(self._committed):
                lines.extend(self._committed[k].rejects)
            lines.sort(key=lambda line: line.get("line") or 0)
            data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
            self.storage.write_bytes(self._rejects_name, data.encode("utf-8"))
        except OSError as error:
            raise OutputError(error, self.storage.url(self._rejects_name), "writing") from None
        finally:
            self.abort()

    def abort(self) -> None:
        """Release the lock (idempotent); shards not committed are written again by ``--resume``."""
        self._held.close()
