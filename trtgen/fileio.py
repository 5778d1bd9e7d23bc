"""File helpers shared by every stage: atomic writes, JSON lines, tolerant line reading.

Why atomic: a crash or Ctrl-C half-way through writing a manifest or a WAV must never leave a file
that looks complete. Everything is written to a temporary name in the destination directory (same
file system, so the rename is atomic) and renamed over the destination only when writing finished.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping

from trtgen.errors import OutputError

logger = logging.getLogger(__name__)

__all__ = ["TEMPORARY_GLOB", "sha256_file", "atomic_path", "atomic_write", "write_jsonl", "iter_jsonl", "Line", "iter_lines", "JsonLine"]

PathLike = str | os.PathLike[str]

TEMPORARY_GLOB = ".*.tmp-*"
"""Matches the temporary files of :func:`atomic_path` (what a process killed while writing leaves)."""


def sha256_file(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (model graphs, style clips, written audio), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _temporary_name(path: Path) -> Path:
    # Keep the real suffix last so format-by-extension writers (soundfile) still work.
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")


@contextmanager
def atomic_path(path: PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error removed.

    For writers that want a file name rather than a file object (``soundfile.write``). An OS error (disk
    full, read-only file system, permissions) becomes :class:`~trtgen.errors.OutputError` naming ``path``.
    """
    final = Path(path)
    temporary = _temporary_name(final)
    try:
        yield temporary
        if not temporary.exists():
            raise FileNotFoundError(f"nothing was written to the temporary file for {final}")
        if fsync:
            fd = os.open(temporary, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(temporary, final)
    except BaseException as error:
        try:
            temporary.unlink()
        except OSError:
            pass
        if isinstance(error, OSError):
            raise OutputError(error, final) from None
        raise


@contextmanager
def atomic_write(
    path: PathLike,
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    newline: str | None = None,
    fsync: bool = False,
) -> Iterator[IO[Any]]:
    """``open(path, mode)`` that only replaces ``path`` once the ``with`` block finished without error.

    ``mode`` is ``"w"`` (text) or ``"wb"`` (binary). The file gets ordinary permissions (0666 minus
    umask), unlike ``tempfile.mkstemp``'s 0600.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write supports modes 'w' and 'wb', not {mode!r}")
    final = Path(path)
    with atomic_path(final, fsync=False) as temporary:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        binary = mode == "wb"
        handle: IO[Any] = (
            os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding=encoding, newline=newline)
        )
        with handle:
            yield handle
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())


def write_jsonl(path: PathLike, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write one compact JSON object per line, atomically; ``.gz`` paths are gzip-compressed.

    The gzip header carries no time stamp, so equal rows give byte-identical files.
    """
    final = Path(path)
    count = 0
    with atomic_write(final, "wb") as raw:
        compressor = gzip.GzipFile(filename=final.name, mode="wb", fileobj=raw, mtime=0) if final.suffix == ".gz" else None
        target: IO[bytes] = compressor if compressor is not None else raw
        for row in rows:
            target.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
            count += 1
        if compressor is not None:
            compressor.close()  # writes the gzip trailer; leaves ``raw`` open for atomic_write
    return count


@dataclass(frozen=True)
class Line:
    """One physical line of a text file: 1-based number, text without the line end, decode error if any."""

    number: int
    text: str
    error: str | None = None


def _open_binary(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def iter_lines(path: PathLike, *, skip_blank: bool = True) -> Iterator[Line]:
    """Lines of a UTF-8 file, tolerant of the quirks real corpora have.

    A leading BOM is dropped, ``\\r\\n`` is accepted, a last line without newline is kept, blank
    lines are skipped (by default), and a line that is not valid UTF-8 is yielded with ``error``
    set (text decoded with replacement characters) instead of aborting the whole file. Only
    ``\\n`` ends a line (``str.splitlines`` would also split on U+2028 and friends).
    """
    source = Path(path)
    with _open_binary(source) as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            raw = raw.rstrip(b"\n")
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            try:
                text = raw.decode("utf-8")
                error = None
            except UnicodeDecodeError as exc:
                text = raw.decode("utf-8", errors="replace")
                error = f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
            if skip_blank and error is None and not text.strip():
                continue
            yield Line(number, text, error)


@dataclass(frozen=True)
class JsonLine:
    """One line of a JSON-lines file: the object, or the reason it could not be read."""

    number: int
    value: Any
    error: str | None = None


def iter_jsonl(path: PathLike) -> Iterator[JsonLine]:
    """Objects of a JSON-lines file (``.gz`` allowed); malformed lines come back with ``error`` set."""
    for line in iter_lines(path):
        if line.error is not None:
            yield JsonLine(line.number, None, line.error)
            continue
        try:
            value = json.loads(line.text)
        except json.JSONDecodeError as exc:
            yield JsonLine(line.number, None, f"invalid JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(value, dict):
            yield JsonLine(line.number, None, f"expected a JSON object, found {type(value).__name__}")
            continue
        yield JsonLine(line.number, value)
