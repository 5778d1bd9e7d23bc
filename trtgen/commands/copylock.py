"""One writer per copy: an OS file lock (``flock``) on local disk, a lease object on object storage
(:class:`ObjectLock`), held for a ``trtgen generate`` run's life.

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
kernel maps it to the server's locks (Linux NFS clients do). Object storage has no locks: there a
copy's one driver holds ``.lock`` as a lease, claimed and refreshed with S3 conditional writes
(:class:`ObjectLock`, whose docstring states what it guarantees).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Iterator

from trtgen.errors import OutputError, UsageError
from trtgen.storage import ObjectStorage, Storage, _as_os_error, _backend_error

logger = logging.getLogger(__name__)

__all__ = ["LOCK_FILE", "LOCK_TTL", "CopyLocked", "LockHolder", "CopyLock", "ObjectLock", "lock_holders"]

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


LOCK_TTL = 120.0
"""Seconds an :class:`ObjectLock` outlives its holder's last refresh (refreshed every ``ttl / 4``)."""


# --- one writer per copy on object storage ------------------------------------------------------


def _node() -> str:
    """This machine and PID namespace: host name, boot id, pid namespace (what makes a pid meaningful)."""
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        pass
    return "|".join(parts)


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), None if unknown or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _process_gone(pid: int, start: str | None) -> bool:
    """Whether process ``pid`` (started at ``start``, if known) is dead on this node: no such pid, a
    zombie, or another process that reused the pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, someone else's
        return False
    if Path("/proc/self/stat").exists():
        now = _process_start(pid)
        return now is None or (start is not None and now != start)
    return False


@dataclass(frozen=True)
class _Seen:
    """The lock object as read: its ETag, what it says, and how long ago it was last written."""

    etag: str
    record: dict[str, Any]
    age: float
    """Seconds since its last write, by the store's clock (Last-Modified vs the response's Date)."""

    @property
    def holder(self) -> LockHolder:
        r = self.record
        return LockHolder(str(r.get("host", "?")), int(r.get("pid", 0) or 0), str(r.get("started", "?")))

    @property
    def ttl(self) -> float:
        try:
            return float(self.record["ttl"])
        except (KeyError, TypeError, ValueError):
            return LOCK_TTL


class ObjectLock:
    """One ``trtgen generate`` writing a copy on object storage (S3): a lease on the object ``.lock``.

    Same interface as :class:`~trtgen.commands.copylock.CopyLock` (``acquire``, ``release``, ``held``),
    plus :meth:`check` and ``on_lost`` for a lease that ended while held.

    **How.** ``acquire`` creates ``<copy>/.lock`` with ``PutObject`` + ``If-None-Match: *``: of any number
    of concurrent callers the store lets exactly one create it and answers the others 412. It holds the
    holder's host, pid, start time, node (boot id and pid namespace), TTL and a random token. A daemon
    thread rewrites it every ``ttl / 4`` with ``If-Match: <the ETag of our last write>``. A lock found held
    is taken over with ``PutObject`` + ``If-Match: <the ETag just read>`` (so of several takers exactly
    one wins, and a holder that refreshed in between keeps it) when it is *stale*:

    * its holder ran on this node (same host name, boot id and pid namespace) and its pid is gone (or a
      zombie, or reused by a process with another start time): at once, so ``kill -9`` then ``--resume``
      on the same machine never waits;
    * or it was last written more than ``ttl + 1`` seconds ago (the holder's TTL, default
      :data:`LOCK_TTL` = 120 s; +1 s for the one-second resolution of HTTP dates).

    ``release`` stops the refreshes and deletes the object if it still carries our token (the delete
    itself conditional on its ETag where botocore can send that).

    **Guarantee.** Creation and takeover are compare-and-swap operations of the store, so two callers of
    ``acquire`` never both succeed on the same lock state. A lock's age is measured on the store's clock
    alone (Last-Modified against the Date of the same response), so client clocks may disagree by any
    amount. A holder counts its lease from the moment it *sent* its last successful write, on its own
    monotonic clock: when ``ttl`` seconds pass without a confirmed refresh (network cut, store down)
    :attr:`held` turns false, :meth:`check` raises :class:`CopyLocked` and ``on_lost`` is called, before
    any taker may see the lock stale (``ttl + 1`` s on the store's clock, which starts later); and a
    refresh that finds the lock taken over does the same. The holder must act on it (check before each
    commit). **Not protected:** a holder *paused* (SIGSTOP, suspended VM, a GC pause) between checking
    ``held`` and writing can, on waking, write once more after its lease ended and a taker started
    (S3 has no fencing tokens for arbitrary writes); each such object is still whole. Nor writers that
    do not take the lock, stores that accept but ignore conditional headers (AWS S3 honours
    ``If-None-Match`` and ``If-Match`` on ``PutObject`` since 2024; check S3-compatible servers; a store
    that answers 501 is refused), clocks that run at very different rates, or two machines sharing
    host name, boot id and pid namespace.

    GCS (``gs://``) is refused: gcsfs exposes create-only writes (``ifGenerationMatch=0``) but no write
    conditional on a given generation, which refresh and takeover need.
    """

    def __init__(self, storage: Storage, *, ttl: float = LOCK_TTL, name: str = LOCK_FILE,
                 on_lost: Callable[[str], None] | None = None) -> None:
        if storage.is_local:
            raise UsageError(f"{storage.url()} is on local disk: lock it with CopyLock (flock)")
        if not isinstance(storage, ObjectStorage) or storage.protocol not in ("s3", "s3a"):
            raise UsageError(
                f"{storage.url()}: one-writer locking on object storage is implemented for s3:// only "
                "(gcsfs offers no write conditional on an object's generation, which the lock's refresh and takeover "
                "need); write this copy to s3:// or to a directory"
            )
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.storage = storage
        self.ttl = float(ttl)
        self.name = name
        self.on_lost = on_lost
        self._bucket, self._key = storage._bucket_key(name)
        self._token = ""
        self._started = ""
        self._etag: str | None = None
        """ETag of our last write; None when not acquired."""
        self._confirmed = 0.0
        """time.monotonic() when our last successful write was sent: our lease runs ``ttl`` from there."""
        self._pending: float | None = None
        """When the earliest write not yet confirmed was sent."""
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.RLock()

    # -- the interface of CopyLock --

    def acquire(self) -> None:
        """Take the lock (taking over a stale one), or raise :class:`CopyLocked` naming the holder."""
        if self.held:
            return
        self.release()  # a lease that ended: stop its refreshes
        self._check_client()
        self._token = secrets.token_hex(16)
        self._started = time.strftime("%Y-%m-%d %H:%M:%S %z")
        self._lost = self._pending = None
        seen: _Seen | None = None
        for _ in range(8):
            if self._put(if_none_match=True):
                break
            seen = self._read()
            if seen is None:
                continue  # released in between: create it again
            if self._adopt(seen):
                break
            stale = self._stale(seen)
            if stale is None:
                self._refuse(seen)
            if self._put(if_match=seen.etag):
                logger.warning("took over the lock of %s from %s (%s)", self.storage.url(), seen.holder, stale)
                break
            # another taker won, or the holder refreshed it: look again
        else:
            self._refuse(seen)
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name=f"trtgen lock {self.storage.url()}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop refreshing and delete the lock object if it is still ours (idempotent; an error is logged,
        and the lock then expires after its TTL)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        with self._mutex:
            etag, self._etag = self._etag, None
        if etag is None:
            return
        try:
            seen = self._read()
            if seen is not None and seen.record.get("token") == self._token:
                members = self.storage.fs.s3.meta.service_model.operation_model("DeleteObject").input_shape.members
                condition = {"IfMatch": seen.etag} if "IfMatch" in members else {}
                self._call("delete_object", **condition)  # 412: taken over meanwhile, not ours to delete
        except (OutputError, UsageError) as error:
            logger.warning("could not remove the lock %s: %s", self.storage.url(self.name), error)

    @property
    def held(self) -> bool:
        """Acquired, not released, refreshed within its TTL, and not taken over."""
        if self._etag is None or self._lost is not None:
            return False
        if time.monotonic() - self._confirmed > self.ttl:
            self._lose(f"this run could not refresh it for {self.ttl:g} s, so another run may have taken it over")
            return False
        return True

    def check(self) -> None:
        """Raise :class:`CopyLocked` if the lease ended while held (see the class's guarantee)."""
        if not self.held and self._lost is not None:
            raise CopyLocked(self._lost)

    # -- internals --

    def _lose(self, why: str) -> None:
        with self._mutex:
            if self._lost is not None:
                return
            self._lost = f"lost the lock of {self.storage.url()}: {why}; stop and rerun with --resume"
        logger.error("%s", self._lost)
        if self.on_lost is not None:
            self.on_lost(self._lost)

    def _body(self) -> bytes:
        pid = os.getpid()
        record = {
            "host": socket.gethostname(), "pid": pid, "started": self._started, "node": _node(),
            "process_start": _process_start(pid), "ttl": self.ttl, "token": self._token,
            "refreshed": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "expires": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(time.time() + self.ttl)),
        }
        return (json.dumps(record) + "\n").encode()

    def _check_client(self) -> None:
        """s3fs silently drops parameters its botocore does not know: make sure the conditions are sent."""
        try:
            model = self.storage.fs.s3.meta.service_model
        except Exception as error:  # noqa: BLE001  (connecting: botocore's errors are not OSErrors)
            raise OutputError(_as_os_error(error), self.storage.url(self.name), "locking") from None
        members = model.operation_model("PutObject").input_shape.members
        if "IfNoneMatch" not in members or "IfMatch" not in members:
            raise UsageError(
                "this botocore cannot send conditional writes (If-None-Match / If-Match), which the object-storage "
                "lock needs: pip install -U 'trtgen[s3]'"
            )

    def _call(self, method: str, **kwargs: Any) -> tuple[str, Any]:
        """Call S3: ("ok", reply), or (outcome, None) for the answers the lock expects: "precondition" (412,
        or 409 ConditionalRequestConflict), "missing" (404). A 501 is a UsageError; the rest OutputError."""
        try:
            return "ok", self.storage.fs.call_s3(method, Bucket=self._bucket, Key=self._key, **kwargs)
        except Exception as error:
            code, status = _s3_error(error)
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return "precondition", None
            if code in ("NoSuchKey", "404") or status == 404:
                return "missing", None
            if code == "NotImplemented" or status == 501:
                raise UsageError(
                    f"{self.storage.url()}: this object store does not support conditional writes "
                    "(If-None-Match / If-Match), which the one-writer lock needs"
                ) from None
            if isinstance(error, OSError) or _backend_error(error):
                raise OutputError(_as_os_error(error), self.storage.url(self.name), "locking") from None
            raise

    def _put(self, *, if_none_match: bool = False, if_match: str | None = None) -> bool:
        """Write our record on a condition; whether it was written (then our lease counts from now)."""
        sent = time.monotonic()
        if self._pending is None:
            self._pending = sent
        condition = {"IfNoneMatch": "*"} if if_none_match else {"IfMatch": if_match}
        outcome, reply = self._call("put_object", Body=self._body(), **condition)
        if outcome != "ok":
            return False
        with self._mutex:
            self._etag, self._confirmed, self._pending = reply["ETag"], sent, None
        return True

    def _adopt(self, seen: _Seen) -> bool:
        """Whether ``seen`` is our own write after all (its reply was lost, s3fs retried, and the retry
        failed its condition because of it); then it becomes our last write, confirmed as of the sending of
        our earliest unconfirmed write (the store wrote it no earlier)."""
        if seen.record.get("token") != self._token:
            return False
        with self._mutex:
            self._etag = seen.etag
            if self._pending is not None:
                self._confirmed, self._pending = self._pending, None
        return True

    def _read(self) -> _Seen | None:
        """The lock object now, or None if there is none."""
        from fsspec.asyn import sync

        async def get() -> tuple[dict[str, Any], bytes]:
            reply = await self.storage.fs._call_s3("get_object", Bucket=self._bucket, Key=self._key)
            body = reply["Body"]
            try:
                return reply, await body.read()
            finally:
                body.close()

        try:
            reply, data = sync(self.storage.fs.loop, get)
        except Exception as error:
            code, status = _s3_error(error)
            if isinstance(error, FileNotFoundError) or code == "NoSuchKey" or status == 404:
                return None
            if isinstance(error, OSError) or _backend_error(error):
                raise OutputError(_as_os_error(error), self.storage.url(self.name), "reading the lock") from None
            raise
        try:
            record = json.loads(data)
        except ValueError:
            record = None
        modified: datetime = reply["LastModified"]
        date = reply.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        try:
            now = parsedate_to_datetime(date) if date else datetime.now(timezone.utc)
        except (TypeError, ValueError):
            now = datetime.now(timezone.utc)
        return _Seen(reply["ETag"], record if isinstance(record, dict) else {}, (now - modified).total_seconds())

    def _stale(self, seen: _Seen) -> str | None:
        """Why the lock ``seen`` may be taken over, or None if its holder may be alive."""
        record = seen.record
        if record.get("node") == _node():
            try:
                pid = int(record["pid"])
            except (KeyError, TypeError, ValueError):
                pid = 0
            if pid > 0 and _process_gone(pid, record.get("process_start")):
                return f"its process {pid} on this host is gone"
        if seen.age > seen.ttl + 1.0:
            return f"not refreshed for {seen.age:.0f} s, longer than its {seen.ttl:g} s TTL"
        return None

    def _refuse(self, seen: _Seen | None) -> None:
        if seen is None:
            named, expiry = "a process whose lock keeps changing", ""
        else:
            named = str(seen.holder)
            expiry = f"; if that process is dead, its lock expires in {max(0.0, seen.ttl + 1.0 - seen.age):.0f} s"
        raise CopyLocked(
            f"{self.storage.url()} is being written by another trtgen generate ({named}){expiry}; wait for it to "
            "finish, or stop it and rerun with --resume (on the same host a dead holder's lock is taken over at once)"
        )

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            if not self.held:  # ended: not refreshed within the TTL, or taken over
                return
            try:
                if self._put(if_match=self._etag):
                    continue
                seen = self._read()
            except Exception as error:  # noqa: BLE001  (transient, or not: try again; held expires by itself)
                logger.warning("could not refresh the lock %s: %s", self.storage.url(self.name), error)
                continue
            if seen is not None and self._adopt(seen):
                continue
            self._lose(f"it was taken over by {seen.holder if seen is not None else 'nobody (it was removed)'}")
            return


def _s3_error(error: BaseException) -> tuple[str | None, int | None]:
    """The S3 error code and HTTP status behind ``error`` (s3fs keeps botocore's ClientError as the cause)."""
    for candidate in (error, error.__cause__, error.__context__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return (str(code) if code is not None else None), status
    return None, None
