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
* **one writer per copy** is not this module's: :mod:`trtgen.commands.copylock` holds both locks, the
  ``flock`` on disk and, on object storage, which has no locks, a lease claimed and refreshed with S3
  conditional writes (``If-None-Match: *``, ``If-Match: <etag>``).

Credentials and endpoints come from the store's standard environment (``AWS_*``, including
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` for S3-compatible servers;
``GOOGLE_APPLICATION_CREDENTIALS`` for GCS). Library code: raises, never prints.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import unquote, urlsplit

from trtgen.errors import MissingInputError, OutputError, UsageError
from trtgen.fileio import TEMPORARY_GLOB, atomic_write

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PART_SIZE", "MIN_PART_SIZE", "LocalStorage", "ObjectStorage", "Storage", "is_url"]

MIN_PART_SIZE = 5 * 2**20
"""S3's smallest multipart part (all but the last)."""
DEFAULT_PART_SIZE = 50 * 2**20
"""Objects up to this size are one ``PutObject``; bigger ones a multipart upload of parts this size."""
_CHUNK = 2**20
_READ_BLOCK = 8 * 2**20

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
