"""The infer list: which transcript to speak in which style clip. Two formats, one reader.

* ``infer.jsonl`` (trtgen's): one object per line,
  ``{"id", "speaker", "chapter", "text", "style", "style_speaker", "book"}``: ``id`` is the LibriSpeech
  utterance id (also the output file name), ``text`` the transcript exactly as LibriSpeech gives it,
  ``style`` the clip's path relative to the M-AILABS root *with* ``.wav`` (an absolute path is used as is).
* ``generate.csv`` (OpenSeq2Seq's, docs/openseq2seq-notes.md §2.3): ``<style>|<ignored>|<text>``, no header, no quoting;
  ``<style>`` is relative and without ``.wav``; if it contains ``"wavs"`` it resolves to
  ``<root>/<style>.wav``, else to ``<root>/wavs/<style>.wav``. Rows carry no id, so the id is
  ``row{N:06d}``, N being the row index (OpenSeq2Seq's output number ``sample_step0_{N}_syn.wav``).

The row index N counts non-blank lines in both formats, malformed ones included, so that it stays
equal to OpenSeq2Seq's numbering. The style root is, in order: the ``style_root`` argument, the
``mailabs_root`` recorded in ``prepare.json`` beside the list, the list's own directory.

A list is UTF-8 (a leading UTF-8 byte-order mark is allowed). One in UTF-16, UTF-32 or a legacy
encoding, or one without a row, is refused as a whole before any row is read (exit 2): read line by
line it would give a garbled reject for every row.
"""

from __future__ import annotations

import codecs
import gzip
import json
import logging
import shlex
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Literal

from trtgen.corpora.base import Reject, shorten
from trtgen.fileio import atomic_write, iter_lines, write_jsonl
from trtgen.errors import MissingInputError, UsageError

logger = logging.getLogger(__name__)

__all__ = [
    "InferEntry",
    "InferRow",
    "PREPARE_SETTINGS",
    "csv_row_id",
    "infer_list_format",
    "check_list_file",
    "resolve_style_root",
    "iter_infer_list",
    "read_infer_list",
    "write_infer_jsonl",
    "write_generate_csv",
    "librivox_normalize",
]

PREPARE_SETTINGS = "prepare.json"
"""Written by ``trtgen prepare`` beside the lists; records the M-AILABS root among other settings."""

ListFormat = Literal["jsonl", "openseq2seq"]


def csv_row_id(index: int) -> str:
    """The utterance id given to row ``index`` of a generate.csv (which has no id column)."""
    return f"row{index:06d}"


def librivox_normalize(text: str) -> str:
    """OpenSeq2Seq's import_librivox.py transcript normalisation: NFKD -> ASCII, lower, strip (docs/openseq2seq-notes.md §2.3)."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower().strip()


@dataclass(frozen=True)
class InferEntry:
    """One row as ``trtgen prepare`` writes it."""

    id: str
    text: str
    style: str
    """Style clip path relative to the M-AILABS root, with ``.wav``."""
    speaker: str | None = None
    chapter: str | None = None
    style_speaker: str | None = None
    book: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "speaker": self.speaker, "chapter": self.chapter, "text": self.text,
            "style": self.style, "style_speaker": self.style_speaker, "book": self.book,
        }

    def generate_csv_line(self) -> str:
        """``<style without .wav>|-1|<librivox-normalised text>``, as OpenSeq2Seq's create_infer_csv writes."""
        style = self.style[: -len(".wav")] if self.style.endswith(".wav") else self.style
        return f"{style}|-1|{librivox_normalize(self.text)}"


@dataclass(frozen=True)
class InferRow:
    """One row as the generator consumes it: id, text and the resolved style clip."""

    index: int
    """0-based row index N (OpenSeq2Seq output ``sample_step0_{N}_syn.wav``)."""
    id: str
    text: str
    style: Path
    """Absolute path of the style clip."""
    speaker: str | None
    chapter: str | None
    style_speaker: str | None
    book: str | None
    source: str
    line: int


def infer_list_format(path: str | Path) -> ListFormat:
    """``jsonl`` for ``*.jsonl`` (or content starting with ``{``), else OpenSeq2Seq's ``generate.csv``."""
    p = Path(path)
    if p.name.endswith((".jsonl", ".jsonl.gz")):
        return "jsonl"
    if p.suffix == ".csv":
        return "openseq2seq"
    first = next(iter_lines(p), None)
    return "jsonl" if first is not None and first.text.lstrip().startswith("{") else "openseq2seq"


def resolve_style_root(path: str | Path, style_root: str | Path | None = None) -> Path:
    """Where relative style paths of the list at ``path`` start (see the module docstring)."""
    if style_root is not None:
        return Path(style_root).expanduser().absolute()
    list_dir = Path(path).expanduser().absolute().parent
    settings = list_dir / PREPARE_SETTINGS
    if settings.is_file():
        try:
            root = json.loads(settings.read_text(encoding="utf-8")).get("mailabs_root")
        except (json.JSONDecodeError, AttributeError) as exc:
            raise UsageError(f"{settings}: not a prepare settings file ({exc})") from None
        if root:
            return Path(root)
    logger.info("no style root given and no %s beside %s: style paths are relative to %s", PREPARE_SETTINGS, path, list_dir)
    return list_dir


def _optional_str(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


MAX_ID_BYTES = 200
"""Longest id, in UTF-8 bytes: ``<id>.wav`` and its temporary names stay within the 255-byte limit of file names."""
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')
_WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))})


def _check_id(utterance_id: Any) -> str | None:
    """Why ``utterance_id`` cannot be a portable output file name (Linux, macOS and Windows), or None."""
    if not isinstance(utterance_id, str) or not utterance_id.strip():
        return "missing or empty \"id\""
    why = _file_name_problem(utterance_id)
    return None if why is None else f"id {shorten(repr(utterance_id), 60)} cannot be a file name: {why}"


def _file_name_problem(name: str) -> str | None:
    if len(name.encode("utf-8", errors="surrogatepass")) > MAX_ID_BYTES:
        return f"longer than {MAX_ID_BYTES} bytes in UTF-8"
    controls = sorted({f"U+{ord(c):04X}" for c in name if unicodedata.category(c) in ("Cc", "Cs") or c in "\u2028\u2029"})
    if controls:
        return f"holds control or invalid characters ({', '.join(controls)})"
    invisible = sorted({f"U+{ord(c):04X}" for c in name if unicodedata.category(c) == "Cf"})
    if invisible:
        return f"holds invisible format characters ({', '.join(invisible)})"
    forbidden = sorted({c for c in name if c in "/\\" or c in _WINDOWS_FORBIDDEN})
    if forbidden:
        return f"holds {' '.join(repr(c) for c in forbidden)}, which some systems forbid in file names"
    if name.startswith("."):
        return "starts with '.' (a hidden file)"
    if name != name.strip() or name.endswith("."):
        return "starts or ends with white space, or ends with '.' (Windows drops them)"
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        return "a device name reserved on Windows"
    return None


def _iter_jsonl_rows(path: Path) -> Iterator[tuple[int, int, Any, str | None, str]]:
    """(index, line, row object or None, error, raw text) per non-blank line."""
    for index, line in enumerate(iter_lines(path)):
        if line.error:
            yield index, line.number, None, line.error, line.text
            continue
        try:
            value = json.loads(line.text)
        except json.JSONDecodeError as exc:
            yield index, line.number, None, f"invalid JSON: {exc.msg} at column {exc.colno}", line.text
            continue
        if not isinstance(value, dict):
            yield index, line.number, None, f"expected a JSON object, found {type(value).__name__}", line.text
            continue
        yield index, line.number, value, None, line.text


_BLOCK_BYTES = 1 << 23
"""The encoding check decodes a list in 8 MiB blocks: one pass over a LibriSpeech-size list, bounded memory."""
_BYTE_ORDER_MARKS = (  # UTF-32's little-endian mark starts with UTF-16's: the longer ones first
    (codecs.BOM_UTF32_LE, "UTF-32", "little-endian"),
    (codecs.BOM_UTF32_BE, "UTF-32", "big-endian"),
    (codecs.BOM_UTF16_LE, "UTF-16", "little-endian"),
    (codecs.BOM_UTF16_BE, "UTF-16", "big-endian"),
)


def _printable(text: str) -> str:
    """``text`` with what a terminal would not show as itself (controls, NUL, format characters,
    undecodable file-name bytes) escaped, so that a message stays one readable line."""
    return text if text.isprintable() else "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _conversion(path: Path, encoding: str) -> str:
    """The command that writes a UTF-8 copy of the list at ``path`` beside it (``infer.utf8.jsonl``)."""
    name = path.name[: -len(".gz")] if path.name.endswith(".gz") else path.name
    stem, dot, suffix = name.rpartition(".")
    target = path.with_name(f"{stem}.utf8.{suffix}" if dot and stem else f"{name}.utf8")
    source, destination = shlex.quote(_printable(str(path))), shlex.quote(_printable(str(target)))
    if path.name.endswith(".gz"):
        return f"gunzip -c {source} | iconv -f {encoding} -t UTF-8 > {destination}"
    return f"iconv -f {encoding} -t UTF-8 {source} > {destination}"


def _wide_encoding(sample: bytes) -> str | None:
    """UTF-16LE, UTF-16BE, UTF-32LE or UTF-32BE if ``sample`` (the list's first bytes) looks like mostly
    ASCII text in it, written without a byte-order mark: NUL bytes at every other (or 3 in 4) position."""
    usable = len(sample) - len(sample) % 4
    units = usable // 4
    if units == 0:
        return None
    zeros = [sample[offset:usable:4].count(0) for offset in range(4)]
    mostly = [count >= 0.9 * units for count in zeros]
    rarely = [count <= 0.1 * units for count in zeros]
    patterns = {
        "UTF-32LE": (rarely[0], mostly[1], mostly[2], mostly[3]), "UTF-32BE": (mostly[0], mostly[1], mostly[2], rarely[3]),
        "UTF-16LE": (rarely[0], mostly[1], rarely[2], mostly[3]), "UTF-16BE": (mostly[0], rarely[1], mostly[2], rarely[3]),
    }
    return next((encoding for encoding, pattern in patterns.items() if all(pattern)), None)


def _open_list(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def check_list_file(path: Path) -> None:
    """Refuse, with :class:`UsageError` (exit 2), a list that is not UTF-8 or holds no row.

    One pass over the bytes, before any row is read: a UTF-16 or UTF-32 byte-order mark, a NUL byte
    (UTF-16 without a mark, or a binary file), an invalid UTF-8 sequence (a legacy encoding such as
    Windows-1252) or no non-blank line. The message names the file and the cure in one line."""
    shown = _printable(str(path))
    try:
        with _open_list(path) as handle:
            first = handle.read(_BLOCK_BYTES)
            for mark, encoding, order in _BYTE_ORDER_MARKS:
                if first.startswith(mark):
                    raise UsageError(
                        f"list {shown} is {encoding} ({order} byte-order mark), not UTF-8: convert it, e.g. "
                        f"{_conversion(path, encoding)}"
                    )
            blocks = _blocks(handle, first[len(codecs.BOM_UTF8):] if first.startswith(codecs.BOM_UTF8) else first)
            has_bytes, has_rows = _check_utf8(path, blocks, first[:4096])
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise UsageError(f"list {shown} is not a readable gzip file ({error})") from None
    if not has_rows:
        raise UsageError(f"list {shown} holds no rows: {'every line is blank' if has_bytes else 'it is empty'}")


def _blocks(handle: IO[bytes], first: bytes) -> Iterator[bytes]:
    """``first``, then the rest of ``handle`` in :data:`_BLOCK_BYTES` blocks, then ``b""`` (the end)."""
    block = first
    while block:
        yield block
        block = handle.read(_BLOCK_BYTES)
    yield b""


def _check_utf8(path: Path, blocks: Iterator[bytes], head: bytes) -> tuple[bool, bool]:
    """Raise :class:`UsageError` at the first NUL byte or invalid UTF-8; else (any byte, any non-blank line).

    A character cut by a block's end waits for the next block; a block costs a decode and a count of
    its newlines (the line a problem is on)."""
    shown = _printable(str(path))
    pending = b""
    lines_before = 0
    has_bytes = has_rows = False
    for block in blocks:
        data = pending + block if pending else block
        nul = data.find(b"\0")
        if nul >= 0:
            wide = _wide_encoding(head)
            if wide is not None:
                raise UsageError(
                    f"list {shown} is not UTF-8: it holds NUL bytes and looks like {wide} without a byte-order mark; "
                    f"convert it, e.g. {_conversion(path, wide)}"
                )
            number = lines_before + data.count(b"\n", 0, nul) + 1
            raise UsageError(f"list {shown} is not UTF-8 text: line {number} holds a NUL byte (a binary file?)")
        try:
            text, consumed = codecs.utf_8_decode(data, "strict", not block)
        except UnicodeDecodeError as error:
            number = lines_before + data.count(b"\n", 0, error.start) + 1
            raise UsageError(
                f"list {shown} is not UTF-8: line {number} has byte 0x{data[error.start]:02X} (Latin-1 or Windows-1252?); "
                f"convert it, e.g. {_conversion(path, 'WINDOWS-1252')}"
            ) from None
        has_bytes = has_bytes or bool(data)
        has_rows = has_rows or (bool(text) and not text.isspace())
        lines_before += data.count(b"\n", 0, consumed)
        pending = data[consumed:]
    return has_bytes, has_rows


def iter_infer_list(
    path: str | Path, style_root: str | Path | None = None, *, check_style: bool = True
) -> Iterator[InferRow | Reject]:
    """Stream the rows of ``infer.jsonl`` or ``generate.csv``; malformed rows come as :class:`Reject`.

    Never raises for a row: a bad line, a missing field, a duplicate id or (with ``check_style``) a
    style clip that does not exist are rejects naming file, line and reason. The list as a whole is
    checked when this is called, before any row is read: a missing file raises
    :class:`~trtgen.errors.MissingInputError`, one that is not UTF-8 or holds no row
    :class:`~trtgen.errors.UsageError` (:func:`check_list_file`).
    """
    list_path = Path(path).expanduser().absolute()
    if not list_path.is_file():
        raise MissingInputError(f"infer list {list_path} does not exist")
    check_list_file(list_path)
    root = resolve_style_root(list_path, style_root)
    return _iter_rows(list_path, root, check_style)


def _iter_rows(list_path: Path, root: Path, check_style: bool) -> Iterator[InferRow | Reject]:
    source = str(list_path)
    fmt = infer_list_format(list_path)
    seen: dict[str, int] = {}
    rows: Iterable[tuple[int, int, dict[str, Any] | None, str | None, str]]
    rows = _iter_jsonl_rows(list_path) if fmt == "jsonl" else _iter_csv_rows(list_path)
    for index, number, value, error, raw in rows:
        if error is not None or value is None:
            yield Reject(source, number, error or "unreadable row", shorten(raw))
            continue
        problem = _check_id(value.get("id"))
        text = value.get("text")
        style = value.get("style")
        if problem is None and (not isinstance(text, str) or not text.strip()):
            problem = "missing or empty \"text\""
        if problem is None and (not isinstance(style, str) or not style.strip()):
            problem = "missing or empty \"style\""
        if problem is not None:
            yield Reject(source, number, problem, shorten(raw))
            continue
        utterance_id = value["id"]
        if utterance_id in seen:
            yield Reject(source, number, f"duplicate id (first at line {seen[utterance_id]})", utterance_id)
            continue
        seen[utterance_id] = number
        style_path = Path(style)
        style_path = style_path if style_path.is_absolute() else root / style_path
        if check_style and not style_path.is_file():
            yield Reject(source, number, f"style clip not found: {style_path}", utterance_id)
            continue
        yield InferRow(
            index=index, id=utterance_id, text=text, style=style_path,
            speaker=_optional_str(value.get("speaker")), chapter=_optional_str(value.get("chapter")),
            style_speaker=_optional_str(value.get("style_speaker")), book=_optional_str(value.get("book")),
            source=source, line=number,
        )


def _iter_csv_rows(path: Path) -> Iterator[tuple[int, int, dict[str, Any] | None, str | None, str]]:
    """generate.csv rows turned into the jsonl shape; the "wavs" rule of docs/openseq2seq-notes.md §2.3 applied here."""
    for index, line in enumerate(iter_lines(path)):
        if line.error:
            yield index, line.number, None, line.error, line.text
            continue
        fields = line.text.split("|")
        if len(fields) != 3:
            yield index, line.number, None, f"expected 3 '|'-separated fields (style|ignored|text), found {len(fields)}", line.text
            continue
        style, _, text = fields
        style = style.strip()
        if style:
            # OpenSeq2Seq DL L449-458: "wavs" anywhere in the path means it already names the directory.
            style = f"{style}.wav" if "wavs" in style else f"wavs/{style}.wav"
        yield index, line.number, {"id": csv_row_id(index), "text": text, "style": style}, None, line.text


def read_infer_list(
    path: str | Path, style_root: str | Path | None = None, *, check_style: bool = True
) -> tuple[list[InferRow], list[Reject]]:
    """All rows and rejects of an infer list (see :func:`iter_infer_list`)."""
    rows: list[InferRow] = []
    rejects: list[Reject] = []
    for item in iter_infer_list(path, style_root, check_style=check_style):
        if isinstance(item, InferRow):
            rows.append(item)
        else:
            rejects.append(item)
    return rows, rejects


def write_infer_jsonl(path: str | Path, entries: Iterable[InferEntry]) -> int:
    """Write trtgen's ``infer.jsonl`` atomically."""
    return write_jsonl(path, (e.to_json() for e in entries))


def write_generate_csv(path: str | Path, entries: Iterable[InferEntry]) -> int:
    """Write OpenSeq2Seq's ``generate.csv`` atomically (pipe-separated, no header, no quoting, ``\\n``)."""
    count = 0
    with atomic_write(path, "w", newline="\n") as handle:
        for entry in entries:
            line = entry.generate_csv_line()
            if line.count("|") != 2 or "\n" in line:
                raise UsageError(f"row {entry.id} cannot be written to generate.csv: '|' or a newline in its text or style")
            handle.write(line + "\n")
            count += 1
    return count
