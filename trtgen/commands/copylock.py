"""One writer per copy directory: an OS file lock (``flock``) held for a ``trtgen generate`` run's life.

Two processes appending to one copy's records would lose records (each rewrites the file the other
appends to), so a copy directory takes one writer, or one writer per shard:

* an unsharded run holds ``.lock`` exclusively;
* a shard ``I/N`` holds ``.lock`` shared (shards exclude an unsharded run, not each other) and
  ``.lock.shard-I-of-N`` exclusively (two processes of one shard exclude each other);
* while a shard reads the copy's records and removes outdated ones from files no running process
  owns (``records.jsonl``, the files of shards that are not running), it also holds ``.lock.tidy``
  exclusively, and the shard locks of those files (:meth:`CopyLock.tidying`).

The kernel drops a flock when its process dies, so a run killed with ``kill -9`` never blocks
``--resume``; the holder's host, pid and start time written into the lock file only name it in the
refusal. A run that ends removes its lock file; on a network file system flock works where the
kernel maps it to the server's locks (Linux NFS clients do).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from trtgen.errors import OutputError, UsageError

__all__ = ["LOCK_FILE", "CopyLocked", "LockHolder", "CopyLock", "lock_holders"]

LOCK_FILE = ".lock"
TIDY_LOCK_FILE = ".lock.tidy"


class CopyLocked(UsageError):
    """Another ``trtgen generate`` is writing this copy directory: refused before any work (exit 2)."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds a copy's lock, as it wrote itself into the lock file."""

    host: str
    pid: int
    started: str
    shard: str | None = None

    def __str__(self) -> str:
        shard = f"shard {self.shard}, " if self.shard else ""
        return f"{shard}pid {self.pid} on host {self.host}, since {self.started}"


def _shard_lock_name(shard: tuple[int, int]) -> str:
    return f"{LOCK_FILE}.shard-{shard[0]}-of-{shard[1]}"


def _try_lock(path: Path, mode: int, *, wait: bool = False) -> int | None:
    """An open descriptor of ``path`` holding ``mode`` (LOCK_SH or LOCK_EX), or None if another process
    holds it (``wait``: block until it does not)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, mode | (0 if wait else fcntl.LOCK_NB))
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        try:  # the holder before us may have removed the file between our open and our lock
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _read_holder(path: Path) -> LockHolder | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        return LockHolder(str(value["host"]), int(value["pid"]), str(value["started"]), value.get("shard"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def lock_holders(directory: Path) -> list[LockHolder]:
    """The processes holding a lock on ``directory`` now (for refusals and ``trtgen manifest --check``)."""
    directory = Path(directory)
    holders = []
    for path in sorted(directory.glob(f"{LOCK_FILE}*")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:  # a shared probe conflicts only with a holder's exclusive lock
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held by someone
            holder = _read_holder(path)
            if holder is not None:
                holders.append(holder)
        finally:
            os.close(fd)  # a lock we got is released here
    return holders


class CopyLock:
    """The lock of one copy directory for one run (unsharded, or shard ``I/N``)."""

    def __init__(self, directory: Path, shard: tuple[int, int] | None) -> None:
        self.directory = Path(directory)
        self.shard = shard
        self._held: list[tuple[Path, int, bool]] = []
        """(path, descriptor, exclusive) in the order taken."""

    def acquire(self) -> None:
        """Take the lock, or raise :class:`CopyLocked` naming the holder."""
        try:
            self._acquire()
        except OSError as error:
            self.release()
            raise OutputError(error, self.directory / LOCK_FILE, "locking") from None

    def _acquire(self) -> None:
        main = self.directory / LOCK_FILE
        fd = _try_lock(main, fcntl.LOCK_EX if self.shard is None else fcntl.LOCK_SH)
        if fd is None:
            self._refuse(lock_holders(self.directory))
        self._held.append((main, fd, self.shard is None))
        if self.shard is not None:
            os.ftruncate(fd, 0)  # no exclusive holder while we hold it shared: what it names is stale
            own = self.directory / _shard_lock_name(self.shard)
            fd = _try_lock(own, fcntl.LOCK_EX)
            if fd is None:
                holder = _read_holder(own)
                self.release()
                self._refuse([holder] if holder else [])
            self._held.append((own, fd, True))
        path, fd, _ = self._held[-1]
        holder = {
            "host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "shard": None if self.shard is None else f"{self.shard[0]}/{self.shard[1]}",
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)

    def _refuse(self, holders: list[LockHolder]) -> None:
        named = "; ".join(str(h) for h in holders) or "a process that did not name itself"
        advice = (
            "to write one copy with several processes, give each its own --shard I/N" if self.shard is None
            else "shards write side by side, never beside an unsharded run or another process of the same shard"
        )
        raise CopyLocked(
            f"{self.directory} is being written by another trtgen generate ({named}); wait for it to finish, or "
            f"stop it and rerun with --resume; {advice}"
        )

    @contextmanager
    def tidying(self) -> Iterator[None]:
        """For a shard: hold ``.lock.tidy`` for the block, so that one shard at a time reads the copy's
        records and rewrites the files no running process owns (waits for another shard doing the same).
        An unsharded run holds the copy alone and needs nothing more."""
        if self.shard is None:
            yield
            return
        path = self.directory / TIDY_LOCK_FILE
        try:
            fd = _try_lock(path, fcntl.LOCK_EX, wait=True)
        except OSError as error:
            raise OutputError(error, path, "locking") from None
        assert fd is not None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            os.close(fd)

    def release(self) -> None:
        """Drop the lock and remove the lock files no one else holds (idempotent)."""
        while self._held:
            path, fd, exclusive = self._held.pop()
            try:
                if not exclusive:
                    # The last shard out removes the shared file; if others still hold it, this fails
                    # (and may drop our shared lock early, which no longer matters).
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink(missing_ok=True)
            except OSError:
                pass
            finally:
                os.close(fd)

    @property
    def held(self) -> bool:
        return bool(self._held)
