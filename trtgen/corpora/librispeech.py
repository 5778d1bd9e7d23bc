"""LibriSpeech reader: the original tree and OpenSeq2Seq's ``librivox-*.csv`` files.

Tree: ``<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` with one ``<id> <TRANSCRIPT>`` per
line and the audio beside it (``.flac``; ``.wav`` is accepted too, as some redistributions convert).
CSV: OpenSeq2Seq's ``import_librivox.py`` output, header ``wav_filename,wav_filesize,transcript``,
transcripts already lower-cased; its calibration sample has ``#FILE_PATH_HERE#`` in place of the
directory, which is resolved against ``audio_root`` (default: the CSV's directory).
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Sequence

from trtgen.corpora.base import Reject, shorten
from trtgen.fileio import iter_lines
from trtgen.errors import UsageError

logger = logging.getLogger(__name__)

__all__ = [
    "TRAIN_SPLITS",
    "LIBRIVOX_HEADER",
    "FILE_PATH_PLACEHOLDER",
    "LibriUtterance",
    "LibriSpeechCorpus",
    "LibriSpeechError",
    "find_splits",
    "read_split",
    "read_librivox_csv",
    "read_librispeech",
]

TRAIN_SPLITS: tuple[str, ...] = ("train-clean-100", "train-clean-360", "train-other-500")
"""The splits OpenSeq2Seq's synthetic-data recipe uses (docs/openseq2seq-notes.md §2.3); the default selection."""
LIBRIVOX_HEADER: tuple[str, ...] = ("wav_filename", "wav_filesize", "transcript")
FILE_PATH_PLACEHOLDER = "#FILE_PATH_HERE#"
AUDIO_SUFFIXES: tuple[str, ...] = (".flac", ".wav")
_UTTERANCE_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


class LibriSpeechError(UsageError):
    """A LibriSpeech source that cannot be used at all (wrong path, wrong CSV header, no split)."""


@dataclass(frozen=True)
class LibriUtterance:
    """One utterance: its transcript exactly as the source gives it (trimmed), and its audio if known."""

    id: str
    text: str
    speaker: str | None
    chapter: str | None
    audio: Path | None
    split: str | None
    source: str
    line: int
    filesize: int | None = None
    """``wav_filesize`` of a librivox CSV row; None for the tree."""


@dataclass
class LibriSpeechCorpus:
    """Utterances of every source, in source order, plus rejects and absent splits."""

    utterances: list[LibriUtterance] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    """Split directories and CSV files that were read."""
    missing_splits: list[str] = field(default_factory=list)


def _speaker_chapter(utterance_id: str) -> tuple[str, str] | None:
    match = _UTTERANCE_ID.match(utterance_id)
    return (match.group(1), match.group(2)) if match else None


def _is_split_dir(path: Path) -> bool:
    return next(path.glob("*/*/*.trans.txt"), None) is not None


def _split_base(root: Path) -> Path:
    """The directory holding the split directories (``LibriSpeech/`` or its parent are both accepted)."""
    if (root / "LibriSpeech").is_dir() and not any(_is_split_dir(c) for c in root.iterdir() if c.is_dir()):
        return root / "LibriSpeech"
    return root


def find_splits(root: str | Path, splits: str | Sequence[str] | None = None) -> tuple[list[Path], list[str]]:
    """Split directories to read under ``root`` and the requested splits that are absent.

    ``splits``: None (OpenSeq2Seq's three training splits), ``"all"``, or names (comma-separated
    string or sequence). ``root`` may also be one split directory itself, which is then read whatever
    ``splits`` says. Absent splits are returned for a warning; finding none is an error.
    """
    path = Path(root).expanduser().absolute()
    if not path.is_dir():
        raise LibriSpeechError(f"LibriSpeech source {path} is neither a directory nor a .csv file")
    if _is_split_dir(path):
        return [path], []
    base = _split_base(path)
    available = sorted(c for c in base.iterdir() if c.is_dir() and _is_split_dir(c))
    if isinstance(splits, str):
        wanted = None if splits == "all" else [s.strip() for s in splits.split(",") if s.strip()]
    elif splits is None:
        wanted = list(TRAIN_SPLITS)
    else:
        wanted = [str(s) for s in splits]
    if wanted is None:
        chosen, missing = available, []
    else:
        by_name = {c.name: c for c in available}
        chosen = [by_name[name] for name in wanted if name in by_name]
        missing = [name for name in wanted if name not in by_name]
    if not chosen:
        found = ", ".join(c.name for c in available) or "none"
        raise LibriSpeechError(
            f"no LibriSpeech split {'found' if wanted is None else ', '.join(wanted)} under {base} "
            f"(splits there: {found}); choose them with --splits"
        )
    return chosen, missing


def _numeric_key(path: Path) -> tuple:
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in path.parts)


def read_split(split_dir: str | Path) -> tuple[list[LibriUtterance], list[Reject]]:
    """Utterances of one split directory, by speaker, chapter and utterance number."""
    split_path = Path(split_dir)
    utterances: list[LibriUtterance] = []
    rejects: list[Reject] = []
    transcripts = sorted(split_path.rglob("*.trans.txt"), key=lambda p: _numeric_key(p.relative_to(split_path)))
    for trans in transcripts:
        source = str(trans)
        chapter_key = trans.name[: -len(".trans.txt")]
        audio_files = {p.name for p in trans.parent.iterdir() if p.suffix in AUDIO_SUFFIXES}
        for line in iter_lines(trans):
            if line.error:
                rejects.append(Reject(source, line.number, line.error, shorten(line.text)))
                continue
            fields = line.text.strip().split(maxsplit=1)
            if len(fields) < 2:
                rejects.append(Reject(source, line.number, "no transcript after the utterance id", shorten(line.text)))
                continue
            utterance_id, text = fields[0], fields[1].strip()
            ids = _speaker_chapter(utterance_id)
            if ids is None:
                rejects.append(Reject(source, line.number, f"{utterance_id!r} is not a LibriSpeech utterance id (<speaker>-<chapter>-<n>)", shorten(line.text)))
                continue
            if f"{ids[0]}-{ids[1]}" != chapter_key:
                rejects.append(Reject(source, line.number, f"utterance {utterance_id} does not belong to {trans.name}", utterance_id))
                continue
            audio = next((trans.parent / f"{utterance_id}{s}" for s in AUDIO_SUFFIXES if f"{utterance_id}{s}" in audio_files), None)
            if audio is None:
                rejects.append(Reject(source, line.number, f"audio file missing: {utterance_id}.flac (or .wav)", utterance_id))
                continue
            utterances.append(LibriUtterance(utterance_id, text, ids[0], ids[1], audio, split_path.name, source, line.number))
    if not transcripts:
        logger.warning("no *.trans.txt under %s", split_path)
    return utterances, rejects


def _resolve_wav(value: str, base: Path) -> Path:
    if value.startswith(FILE_PATH_PLACEHOLDER):
        value = value[len(FILE_PATH_PLACEHOLDER):].lstrip("/\\")
    path = Path(value)
    return path if path.is_absolute() else base / path


def read_librivox_csv(path: str | Path, audio_root: str | Path | None = None) -> tuple[list[LibriUtterance], list[Reject]]:
    """Rows of an OpenSeq2Seq ``librivox-*.csv``; the audio is not opened (prepare needs only text).

    A wrong header is an error for the whole file; a bad row becomes a reject.
    """
    csv_path = Path(path).expanduser().absolute()
    source = str(csv_path)
    base = Path(audio_root).expanduser().absolute() if audio_root is not None else csv_path.parent
    lines = iter_lines(csv_path)
    header = next(lines, None)
    if header is None:
        raise LibriSpeechError(f"{source}: empty file, expected the header {','.join(LIBRIVOX_HEADER)}")
    columns = [c.strip() for c in next(csv.reader([header.text]))]
    if header.error or not set(LIBRIVOX_HEADER) <= set(columns):
        raise LibriSpeechError(f"{source}:{header.number}: expected the header {','.join(LIBRIVOX_HEADER)}, found {shorten(header.text)!r}")
    index = {name: columns.index(name) for name in LIBRIVOX_HEADER}
    utterances: list[LibriUtterance] = []
    rejects: list[Reject] = []
    for line in lines:
        if line.error:
            rejects.append(Reject(source, line.number, line.error, shorten(line.text)))
            continue
        try:
            fields = next(csv.reader([line.text]))
        except csv.Error as exc:
            rejects.append(Reject(source, line.number, f"malformed CSV row: {exc}", shorten(line.text)))
            continue
        if len(fields) != len(columns):
            rejects.append(Reject(source, line.number, f"expected {len(columns)} comma-separated fields, found {len(fields)}", shorten(line.text)))
            continue
        wav = fields[index["wav_filename"]].strip()
        text = fields[index["transcript"]].strip()
        size_text = fields[index["wav_filesize"]].strip()
        if not wav:
            rejects.append(Reject(source, line.number, "empty wav_filename", shorten(line.text)))
            continue
        try:
            filesize = int(size_text)
        except ValueError:
            rejects.append(Reject(source, line.number, f"wav_filesize {size_text!r} is not an integer", shorten(line.text)))
            continue
        if not text:
            rejects.append(Reject(source, line.number, "empty transcript", shorten(line.text)))
            continue
        name = PureWindowsPath(wav).name if "\\" in wav else PurePosixPath(wav).name
        utterance_id = name.rsplit(".", 1)[0] if "." in name else name
        ids = _speaker_chapter(utterance_id)
        utterances.append(
            LibriUtterance(
                utterance_id, text, ids[0] if ids else None, ids[1] if ids else None,
                _resolve_wav(wav, base), None, source, line.number, filesize,
            )
        )
    return utterances, rejects


def read_librispeech(
    sources: Sequence[str | Path],
    splits: str | Sequence[str] | None = None,
    *,
    audio_root: str | Path | None = None,
) -> LibriSpeechCorpus:
    """Read LibriSpeech trees and/or librivox CSVs, in the given order; a repeated id is rejected."""
    if not sources:
        raise LibriSpeechError("no LibriSpeech source given")
    corpus = LibriSpeechCorpus()
    for item in sources:
        path = Path(item).expanduser().absolute()
        if path.is_file():
            utterances, rejects = read_librivox_csv(path, audio_root)
            corpus.sources.append(str(path))
        elif path.is_dir():
            split_dirs, missing = find_splits(path, splits)
            if missing:
                logger.warning("LibriSpeech split(s) not found under %s: %s", path, ", ".join(missing))
            corpus.missing_splits.extend(missing)
            utterances, rejects = [], []
            for split_dir in split_dirs:
                found, bad = read_split(split_dir)
                utterances.extend(found)
                rejects.extend(bad)
                corpus.sources.append(str(split_dir))
        else:
            raise LibriSpeechError(f"LibriSpeech source {path} does not exist")
        corpus.rejects.extend(rejects)
        corpus.utterances.extend(utterances)
    seen: dict[str, LibriUtterance] = {}
    unique: list[LibriUtterance] = []
    for utt in corpus.utterances:
        first = seen.get(utt.id)
        if first is not None:
            corpus.rejects.append(Reject(utt.source, utt.line, f"duplicate utterance id (first in {first.source}:{first.line})", utt.id))
            continue
        seen[utt.id] = utt
        unique.append(utt)
    corpus.utterances = unique
    logger.info("LibriSpeech: %d utterances from %d source(s), %d rejected", len(unique), len(corpus.sources), len(corpus.rejects))
    return corpus
