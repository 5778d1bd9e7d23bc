"""Where a copy is written: a local directory or an object-storage prefix, with one small interface.

``trtgen generate --out`` may be a directory or a URL (``s3://bucket/prefix``, ``gs://...``,
``file://...``, any fsspec protocol). :class:`Storage` gives the stages the few operations they need,
with the same rules on local disk and on object storage:

* **an object appears whole or not at all.** On disk every write goes to a temporary name in the same
  directory and is renamed over the destination (:mod:`trtgen.fileio`); on S3 it is one ``PutObject``,
  or a multipart upload that is completed only after its last part and aborted on any error, so a
  crash or Ctrl-C never leaves a partial object (an upload cut by ``kill -9`` stays an invisible,
  incomplete multipart upload: give the bucket an ``AbortIncompleteMultipartUpload`` lifecycle rule).
* **no caching**: every call asks the store (s3fs's listings cache is off), so ``--resume`` and
  ``trtgen manifest --check`` see what is there now. Retries are s3fs's own.
* **one writer per copy**: on disk :class:`trtgen.commands.copylock.CopyLock` (``flock``); on object
  storage, which has no locks, :class:`ObjectLock`, a lease claimed and refreshed with S3 conditional
  writes (``If-None-Match: *``, ``If-Match: <etag>``).

Credentials and endpoints come from the store's standard environment (``AWS_*``, including
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` for S3-compatible servers;
``GOOGLE_APPLICATION_CREDENTIALS`` for GCS). Library code: raises, never prints.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import unquote, urlsplit

from trtgen.commands.copylock import LOCK_FILE, CopyLocked, LockHolder
from trtgen.errors import MissingInputError, OutputError, UsageError
from trtgen.fileio import TEMPORARY_GLOB, atomic_write

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PART_SIZE", "LOCK_TTL", "MIN_PART_SIZE", "LocalStorage", "ObjectLock", "ObjectStorage", "Storage", "is_url"]

MIN_PART_SIZE = 5 * 2**20
"""S3's smallest multipart part (all but the last)."""
DEFAULT_PART_SIZE = 50 * 2**20
"""Objects up to this size are one ``PutObject``; bigger ones a multipart upload of parts this size."""
_CHUNK = 2**20
_READ_BLOCK = 8 * 2**20
LOCK_TTL = 120.0
"""Seconds an :class:`ObjectLock` outlives its holder's last refresh (refreshed every ``ttl / 4``)."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_EXTRAS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"), "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs")}
"""Protocol -> (the fsspec package that serves it, the trtgen extra that installs it)."""


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is a URL (``scheme://...``, ``file://`` included) rather than a plain path."""
    return isinstance(location, str) and _SCHEME.match(location) is not None


def _clean(name: str) -> str:
    """A name relative to a storage root, ``/``-separated, without ``.``, ``..`` or a leading ``/``."""
    name = str(name).replace(os.sep, "/")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise ValueError(f"not a name relative to the storage root: {name!r}")
    return "/".join(parts)


class Storage(ABC):
    """A root location (a local directory or an object-storage prefix) and operations on names under it.

    Names are relative, ``/``-separated (``shards/00001.tar``); ``""`` is the root itself. Reading a
    name that does not exist raises :class:`~trtgen.errors.MissingInputError` (a ``FileNotFoundError``);
    any other I/O failure :class:`~trtgen.errors.OutputError` naming the URL.
    """

    is_local: bool = False

    @staticmethod
    def at(location: str | os.PathLike[str], *, option: str = "--out", part_size: int = DEFAULT_PART_SIZE) -> Storage:
        """The storage at ``location``: a plain path or ``file://`` URL (local disk), or any fsspec URL.

        ``option`` names the command-line option in refusals; ``part_size`` (at least 5 MiB) is the S3
        multipart part size, and the size up to which an object is written with one ``PutObject``.
        """
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's smallest part)")
        if not is_url(location):
            return LocalStorage(Path(location))
        text = str(location)
        protocol = _SCHEME.match(text).group(1).lower()  # type: ignore[union-attr]
        if protocol == "file":
            parts = urlsplit(text)
            if parts.netloc not in ("", "localhost"):
                raise UsageError(f"{option} {text}: a file:// URL names a path on this machine (file:///path)")
            return LocalStorage(Path(unquote(parts.path)), as_url=True)
        try:
            import fsspec
        except ImportError:
            raise UsageError(f"{option} {text}: object storage needs fsspec: pip install 'trtgen[s3]' (or 'trtgen[gcs]')") from None
        try:
            cls = fsspec.get_filesystem_class(protocol)
        except ValueError:
            raise UsageError(
                f"{option} {text}: unknown storage scheme {protocol}:// (use a directory, file://, s3:// or gs://)"
            ) from None
        except ImportError as error:
            package, extra = _EXTRAS.get(protocol, (None, None))
            hint = f"pip install 'trtgen[{extra}]'" if extra else str(error)
            raise UsageError(f"{option} {text}: {protocol}:// needs the package {package or 'that fsspec names'}: {hint}") from None
        root = text[len(protocol) + 3:].strip("/")
        if not root:
            raise UsageError(f"{option} {text}: name a bucket (and optionally a prefix): {protocol}://bucket/prefix")
        try:
            fs = cls(**_options(protocol))
        except Exception as error:  # noqa: BLE001  (credentials, configuration: each library its own errors)
            raise UsageError(f"{option} {text}: cannot open {protocol}:// storage ({error})") from None
        return ObjectStorage(fs, protocol, root, part_size)

    @property
    def path(self) -> Path:
        """The local directory (only where :attr:`is_local`)."""
        raise AttributeError(f"{self.url()} is not on the local file system")

    @abstractmethod
    def child(self, name: str) -> Storage:
        """The storage rooted at ``name`` under this root."""

    @abstractmethod
    def url(self, name: str = "") -> str:
        """What manifests and messages write: the local path (or ``file://`` URL when given so), or
        ``s3://bucket/prefix/name``."""

    @abstractmethod
    def exists(self, name: str) -> bool:
        """Whether an object (a file, not a directory) of that name exists."""

    @abstractmethod
    def size(self, name: str) -> int:
        """Bytes of the object ``name``."""

    @abstractmethod
    def open_read(self, name: str) -> BinaryIO:
        """The object ``name`` opened for reading (a context manager; close it)."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Names of every object under the directory ``prefix`` (``""``: the root), recursively, relative
        to the root, sorted; ``[prefix]`` when ``prefix`` is itself an object; ``[]`` when nothing is
        there. Local temporaries of writes in progress (or killed) are not listed."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """Remove the object ``name``; one that is not there is no error."""

    @abstractmethod
    def write_stream(self, name: str, source: IO[bytes]) -> None:
        """Write everything read from ``source`` as the object ``name``, atomically: if reading or writing
        fails, ``name`` keeps what it had (or stays absent)."""

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write ``data`` as the object ``name``, atomically."""
        self.write_stream(name, io.BytesIO(data))

    def put_file(self, local_path: str | os.PathLike[str], name: str) -> None:
        """Copy the local file ``local_path`` to the object ``name``, atomically (big files in parts)."""
        try:
            source = open(local_path, "rb")
        except FileNotFoundError:
            raise MissingInputError(f"{local_path} does not exist") from None
        except OSError as error:
            raise OutputError(error, local_path, "reading") from None
        with source:
            self.write_stream(name, source)

    def read_bytes(self, name: str) -> bytes:
        """The bytes of the object ``name``."""
        with self.open_read(name) as handle:
            try:
                return handle.read()
            except OSError as error:
                raise OutputError(error, self.url(name), "reading") from None

    def sha256(self, name: str) -> str:
        """SHA-256 (hex) of the object ``name``, streamed in 1 MiB reads."""
        digest = hashlib.sha256()
        with self.open_read(name) as handle:
            try:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
            except OSError as error:
                raise OutputError(error, self.url(name), "reading") from None
        return digest.hexdigest()

    def __str__(self) -> str:
        return self.url()


@dataclass(frozen=True)
class LocalStorage(Storage):
    """A directory on this machine (``as_url``: it was given as ``file://`` and :meth:`url` says so)."""

    root: Path
    as_url: bool = False
    is_local = True

    @property
    def path(self) -> Path:
        return self.root

    def _file(self, name: str) -> Path:
        name = _clean(name)
        return self.root / name if name else self.root

    def child(self, name: str) -> LocalStorage:
        return LocalStorage(self._file(name), self.as_url)

    def url(self, name: str = "") -> str:
        path = self._file(name)
        return path.absolute().as_uri() if self.as_url else str(path)

    def exists(self, name: str) -> bool:
        return self._file(name).is_file()

    def size(self, name: str) -> int:
        with self._reading(name):
            path = self._file(name)
            if not path.is_file():
                raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
            return path.stat().st_size

    def open_read(self, name: str) -> BinaryIO:
        with self._reading(name):
            return open(self._file(name), "rb")

    def list(self, prefix: str = "") -> list[str]:
        base = self._file(prefix)
        if base.is_file():
            return [_clean(prefix)]
        names = []
        try:
            for directory, _, files in os.walk(base, onerror=_raise):
                for file in files:
                    if not fnmatch(file, TEMPORARY_GLOB):
                        names.append((Path(directory) / file).relative_to(self.root).as_posix())
        except FileNotFoundError:
            return []
        except OSError as error:
            raise OutputError(error, base, "listing") from None
        return sorted(names)

    def remove(self, name: str) -> None:
        try:
            self._file(name).unlink(missing_ok=True)
        except OSError as error:
            raise OutputError(error, self._file(name), "removing") from None

    def write_stream(self, name: str, source: IO[bytes]) -> None:
        path = self._file(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(error, path.parent, "creating") from None
        with atomic_write(path, "wb") as handle:  # temporary name, os.replace on success
            shutil.copyfileobj(source, handle, _CHUNK)

    def write_bytes(self, name: str, data: bytes) -> None:
        path = self._file(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(error, path.parent, "creating") from None
        with atomic_write(path, "wb") as handle:
            handle.write(data)

    @contextmanager
    def _reading(self, name: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):  # no object of that name
            raise MissingInputError(f"{self.url(name)} does not exist") from None
        except OSError as error:
            raise OutputError(error, self._file(name), "reading") from None


def _raise(error: OSError) -> None:
    raise error


def _options(protocol: str) -> dict[str, Any]:
    """The fsspec file system's options: the standard environment, no listings cache."""
    options: dict[str, Any] = {"use_listings_cache": False}
    if protocol in ("s3", "s3a"):
        # botocore reads AWS_ENDPOINT_URL(_S3) itself; passing it also keys fsspec's instance cache on
        # it, so a process that changes the variable does not get a client for the old endpoint.
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["client_kwargs"] = {"endpoint_url": endpoint}
    return options


def _backend_error(error: BaseException) -> bool:
    """An error of the store's client library (botocore, aiohttp, google-auth) that is not an OSError."""
    module = type(error).__module__.split(".")[0]
    return module in ("botocore", "aiobotocore", "aiohttp", "google", "gcsfs", "s3fs", "requests", "urllib3")


def _as_os_error(error: BaseException) -> OSError:
    return error if isinstance(error, OSError) else OSError(errno.EIO, str(error) or type(error).__name__)


def _read_exactly(source: IO[bytes], size: int) -> bytes:
    """``size`` bytes from ``source``, fewer only at its end (a raw stream may return short reads)."""
    chunks, left = [], size
    while left:
        chunk = source.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class ObjectStorage(Storage):
    """A prefix on an object store through fsspec: ``root`` is ``bucket/prefix`` (no scheme)."""

    fs: Any
    protocol: str
    root: str
    part_size: int = DEFAULT_PART_SIZE

    def _key(self, name: str) -> str:
        name = _clean(name)
        return f"{self.root}/{name}" if name else self.root

    def _bucket_key(self, name: str) -> tuple[str, str]:
        bucket, _, key = self._key(name).partition("/")
        return bucket, key

    def child(self, name: str) -> ObjectStorage:
        return ObjectStorage(self.fs, self.protocol, self._key(name), self.part_size)

    def url(self, name: str = "") -> str:
        return f"{self.protocol}://{self._key(name)}"

    @contextmanager
    def _io(self, name: str, doing: str) -> Iterator[None]:
        """Store errors as trtgen errors naming the URL: missing -> MissingInputError when reading."""
        try:
            yield
        except FileNotFoundError as error:
            if doing == "reading":
                raise MissingInputError(f"{self.url(name)} does not exist") from None
            raise OutputError(error, self.url(name), doing) from None
        except Exception as error:
            if isinstance(error, OSError) or _backend_error(error):
                raise OutputError(_as_os_error(error), self.url(name), doing) from None
            raise

    def exists(self, name: str) -> bool:
        with self._io(name, "checking"):
            return bool(self.fs.isfile(self._key(name)))

    def size(self, name: str) -> int:
        with self._io(name, "reading"):
            info = self.fs.info(self._key(name))
            if info.get("type") != "file":
                raise FileNotFoundError(self._key(name))
            return int(info["size"])

    def open_read(self, name: str) -> BinaryIO:
        with self._io(name, "reading"):
            handle = self.fs.open(self._key(name), "rb", block_size=_READ_BLOCK)
            if getattr(handle, "details", {}).get("type", "file") != "file":  # a prefix: no object of that name
                handle.close()
                raise FileNotFoundError(self._key(name))
            return handle  # type: ignore[no-any-return]

    def read_bytes(self, name: str) -> bytes:
        with self._io(name, "reading"):
            return bytes(self.fs.cat_file(self._key(name)))

    def list(self, prefix: str = "") -> list[str]:
        prefix = _clean(prefix)
        with self._io(prefix, "listing"):
            try:
                found = self.fs.find(self._key(prefix))
            except FileNotFoundError:
                return []
        start = len(self.root) + 1
        names = [p[start:] for p in found if p.startswith(self.root + "/") and not p.endswith("/")]
        return sorted(n for n in names if not prefix or n == prefix or n.startswith(prefix + "/"))

    def remove(self, name: str) -> None:
        with self._io(name, "removing"):
            try:
                self.fs.rm_file(self._key(name))
            except FileNotFoundError:
                pass

    def write_stream(self, name: str, source: IO[bytes]) -> None:
        """Up to :attr:`part_size` bytes: one ``PutObject``. More: a multipart upload, completed after the
        last part and aborted on any error (``KeyboardInterrupt`` included), so no partial object shows."""
        if self.protocol not in ("s3", "s3a"):
            self._write_fsspec(name, source)
            return
        bucket, key = self._bucket_key(name)
        with self._io(name, "writing"):
            first = _read_exactly(source, self.part_size)
            if len(first) < self.part_size:
                self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=first)
                return
            upload = self.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)["UploadId"]
            try:
                parts: list[dict[str, Any]] = []
                chunk = first
                while chunk:
                    number = len(parts) + 1
                    done = self.fs.call_s3("upload_part", Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=chunk)
                    parts.append({"PartNumber": number, "ETag": done["ETag"]})
                    chunk = _read_exactly(source, self.part_size)
                self.fs.call_s3(
                    "complete_multipart_upload", Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
                )
            except BaseException:
                try:
                    self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload)
                except Exception as error:  # noqa: BLE001  (the upload stays incomplete, invisible; a lifecycle rule reaps it)
                    logger.warning("could not abort the multipart upload of %s: %s", self.url(name), error)
                raise

    def _write_fsspec(self, name: str, source: IO[bytes]) -> None:
        # Other stores (gs://...) publish an object only when its upload finished, as S3 does: one upload.
        with self._io(name, "writing"):
            self.fs.pipe_file(self._key(name), source.read())

    def put_file(self, local_path: str | os.PathLike[str], name: str) -> None:
        if self.protocol in ("s3", "s3a") or not Path(local_path).is_file():
            super().put_file(local_path, name)
            return
        with self._io(name, "writing"):  # gcsfs: a resumable upload, finalised by its last chunk
            self.fs.put_file(os.fspath(local_path), self._key(name))


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
