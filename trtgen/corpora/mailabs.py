"""M-AILABS reader: the style clips (``<lang>/by_book/<gender>/<speaker>/<book>/metadata.csv`` + ``wavs/``).

``metadata.csv`` is ``id|text|normalised text``: UTF-8, no header, no quoting. The real corpus lists
some clips whose WAV is missing (OpenSeq2Seq issue 337), so every listed clip is checked against
its book's ``wavs/`` directory and missing ones become rejects, never style clips.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from trtgen.corpora.base import Reject, shorten
from trtgen.fileio import iter_lines
from trtgen.errors import UsageError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BOOKS",
    "MailabsBook",
    "MailabsClip",
    "MailabsCorpus",
    "MailabsError",
    "resolve_mailabs_root",
    "find_books",
    "read_metadata",
    "read_mailabs",
]

# The 14 en_US books of OpenSeq2Seq's scripts/tacotron_gst_create_infer_csv.py (docs/openseq2seq-notes.md §2.3), in its order.
DEFAULT_BOOKS: tuple[str, ...] = (
    "en_US/by_book/male/elliot_miller/hunters_space",
    "en_US/by_book/male/elliot_miller/pink_fairy_book",
    "en_US/by_book/male/elliot_miller/pirates_of_ersatz",
    "en_US/by_book/male/elliot_miller/poisoned_pen",
    "en_US/by_book/male/elliot_miller/silent_bullet",
    "en_US/by_book/female/mary_ann/northandsouth",
    "en_US/by_book/female/mary_ann/midnight_passenger",
    "en_US/by_book/female/judy_bieber/dorothy_and_wizard_oz",
    "en_US/by_book/female/judy_bieber/emerald_city_of_oz",
    "en_US/by_book/female/judy_bieber/ozma_of_oz",
    "en_US/by_book/female/judy_bieber/rinkitink_in_oz",
    "en_US/by_book/female/judy_bieber/sky_island",
    "en_US/by_book/female/judy_bieber/the_master_key",
    "en_US/by_book/female/judy_bieber/the_sea_fairies",
)

MIX_SPEAKER = "mix"
"""M-AILABS keeps multi-speaker books under ``by_book/mix/<book>``; their speaker is recorded as ``mix``."""


MISSING_AUDIO = "audio file missing"
"""Reason prefix of the reject for a listed clip without its WAV."""


class MailabsError(UsageError):
    """The M-AILABS root or the book selection cannot be used at all (not a per-row problem)."""


@dataclass(frozen=True)
class MailabsBook:
    """One book directory: ``<language>/by_book/<gender>/<speaker>/<name>`` under the root."""

    language: str
    gender: str
    speaker: str
    name: str
    directory: Path
    relpath: str
    """Posix path of the book directory relative to the M-AILABS root (OpenSeq2Seq's ``sub_dir``)."""

    @property
    def metadata(self) -> Path:
        return self.directory / "metadata.csv"

    @classmethod
    def from_relpath(cls, root: Path, relpath: str) -> "MailabsBook":
        parts = relpath.strip("/").split("/")
        if len(parts) == 5 and parts[1] == "by_book":
            language, _, gender, speaker, name = parts
        elif len(parts) == 4 and parts[1] == "by_book" and parts[2] == MIX_SPEAKER:
            language, _, gender, name = parts
            speaker = MIX_SPEAKER
        else:
            raise MailabsError(f"{relpath!r} is not an M-AILABS book path (<lang>/by_book/<gender>/<speaker>/<book>)")
        return cls(language, gender, speaker, name, root / Path(*parts), "/".join(parts))


@dataclass(frozen=True)
class MailabsClip:
    """A listed clip whose WAV exists."""

    id: str
    text: str
    normalized_text: str
    book: MailabsBook
    audio: Path
    source: str
    line: int

    @property
    def speaker(self) -> str:
        return self.book.speaker

    @property
    def relpath(self) -> str:
        """Path of the WAV relative to the M-AILABS root, with ``.wav`` (trtgen's ``infer.jsonl``)."""
        return f"{self.book.relpath}/wavs/{self.id}.wav"

    @property
    def openseq2seq_path(self) -> str:
        """``<sub_dir>/wavs/<id>``: relative and without ``.wav``, as in OpenSeq2Seq's generate.csv (docs/openseq2seq-notes.md §2.3)."""
        return f"{self.book.relpath}/wavs/{self.id}"


@dataclass
class MailabsCorpus:
    """The selected books' usable clips, plus what was rejected or not found."""

    root: Path
    books: list[MailabsBook]
    clips: list[MailabsClip]
    rejects: list[Reject] = field(default_factory=list)
    missing_books: list[str] = field(default_factory=list)
    missing_clips: dict[str, int] = field(default_factory=dict)
    """Listed clips whose WAV is missing, per speaker."""


def resolve_mailabs_root(root: str | Path) -> Path:
    """The directory holding ``<lang>/by_book``; a language directory (holding ``by_book``) is accepted too."""
    path = Path(root).expanduser().absolute()
    if not path.is_dir():
        raise MailabsError(f"M-AILABS root {path} is not a directory")
    if (path / "by_book").is_dir():
        logger.info("%s holds by_book/: using its parent %s as the M-AILABS root", path, path.parent)
        return path.parent
    if not any(child.is_dir() and (child / "by_book").is_dir() for child in path.iterdir()):
        raise MailabsError(f"no <language>/by_book directory under the M-AILABS root {path}")
    return path


def _all_books(root: Path) -> list[MailabsBook]:
    found = []
    for metadata in sorted(root.glob("*/by_book/*/*/*/metadata.csv")) + sorted(root.glob(f"*/by_book/{MIX_SPEAKER}/*/metadata.csv")):
        relpath = metadata.parent.relative_to(root).as_posix()
        try:
            found.append(MailabsBook.from_relpath(root, relpath))
        except MailabsError:
            logger.debug("skipping %s: not a book directory", metadata)
    return found


def _selection(books: str | Sequence[str]) -> str | list[str]:
    if isinstance(books, str):
        if books in ("default", "all"):
            return books
        items = [item.strip() for item in books.split(",")]
    else:
        items = [str(item).strip() for item in books]
    items = [item for item in items if item]
    if not items:
        raise MailabsError("the book selection is empty")
    return items


def find_books(root: str | Path, books: str | Sequence[str] = "default") -> tuple[list[MailabsBook], list[str]]:
    """Books selected under ``root`` and the selected names that are not there.

    ``books``: ``"default"`` (OpenSeq2Seq's 14 en_US books), ``"all"`` (every book under the root), or a
    comma-separated string / sequence of items, each a book path relative to the root, a book name,
    ``speaker/book`` or a speaker name (all of that speaker's books). Absent books are returned for the
    caller to warn about; finding none at all is an error.
    """
    base = resolve_mailabs_root(root)
    selection = _selection(books)
    missing: list[str] = []
    chosen: list[MailabsBook] = []
    if selection == "default":
        for relpath in DEFAULT_BOOKS:
            book = MailabsBook.from_relpath(base, relpath)
            if book.metadata.is_file():
                chosen.append(book)
            else:
                missing.append(relpath)
    elif selection == "all":
        chosen = _all_books(base)
    else:
        catalogue = _all_books(base)
        seen: set[str] = set()
        for item in selection:
            item_path = item.strip("/")
            matches = [
                b for b in catalogue
                if item_path in (b.relpath, b.name, f"{b.speaker}/{b.name}", b.speaker)
            ]
            if not matches:
                missing.append(item)
            for book in matches:
                if book.relpath not in seen:
                    seen.add(book.relpath)
                    chosen.append(book)
    if not chosen:
        wanted = "the default books" if selection == "default" else f"books {selection!r}"
        raise MailabsError(f"none of {wanted} found under the M-AILABS root {base} (looked for <book>/metadata.csv)")
    return chosen, missing


def read_metadata(book: MailabsBook) -> tuple[list[MailabsClip], list[Reject]]:
    """Clips listed in one book's ``metadata.csv`` whose WAV exists; everything else as rejects."""
    source = str(book.metadata)
    wavs_dir = book.directory / "wavs"
    try:
        present = {entry.name for entry in os.scandir(wavs_dir) if entry.is_file()}
    except FileNotFoundError:
        logger.warning("%s has no wavs/ directory: every clip of this book is missing", book.directory)
        present = set()
    clips: list[MailabsClip] = []
    rejects: list[Reject] = []
    first_line: dict[str, int] = {}
    for line in iter_lines(book.metadata):
        if line.error:
            rejects.append(Reject(source, line.number, line.error, shorten(line.text)))
            continue
        fields = line.text.split("|")
        if len(fields) != 3:
            rejects.append(Reject(source, line.number, f"expected 3 '|'-separated fields (id|text|normalised text), found {len(fields)}", shorten(line.text)))
            continue
        clip_id, text, normalized = (f.strip() for f in fields)
        if not clip_id or "/" in clip_id or "\\" in clip_id:
            rejects.append(Reject(source, line.number, f"invalid clip id {clip_id!r}", shorten(line.text)))
            continue
        if clip_id in first_line:
            rejects.append(Reject(source, line.number, f"duplicate clip id (first at line {first_line[clip_id]})", clip_id))
            continue
        first_line[clip_id] = line.number
        if f"{clip_id}.wav" not in present:
            rejects.append(Reject(source, line.number, f"{MISSING_AUDIO}: wavs/{clip_id}.wav", clip_id))
            continue
        clips.append(MailabsClip(clip_id, text, normalized, book, wavs_dir / f"{clip_id}.wav", source, line.number))
    return clips, rejects


def read_mailabs(root: str | Path, books: str | Sequence[str] = "default") -> MailabsCorpus:
    """Read the selected books (lhotse-style recipe entry point for the style side)."""
    base = resolve_mailabs_root(root)
    chosen, missing = find_books(base, books)
    if missing:
        logger.warning("%d selected M-AILABS book(s) not found under %s: %s", len(missing), base, ", ".join(missing))
    corpus = MailabsCorpus(base, chosen, [], [], missing)
    for book in chosen:
        clips, rejects = read_metadata(book)
        corpus.clips.extend(clips)
        corpus.rejects.extend(rejects)
        absent = sum(1 for r in rejects if r.reason.startswith(MISSING_AUDIO))
        if absent:
            corpus.missing_clips[book.speaker] = corpus.missing_clips.get(book.speaker, 0) + absent
            logger.warning("%s: %d listed clip(s) have no WAV; they are never assigned", book.relpath, absent)
    if not corpus.clips:
        raise MailabsError(f"no usable style clip in the selected M-AILABS books under {base}")
    return corpus
