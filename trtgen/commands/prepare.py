"""``trtgen prepare``: pair LibriSpeech transcripts with M-AILABS style clips (OpenSeq2Seq's create_infer_csv).

Output (only when ``output_dir`` is given, lhotse-recipe style):

* ``generate.csv``: OpenSeq2Seq's format (docs/openseq2seq-notes.md §2.3), usable by its original scripts;
* ``infer.jsonl``: trtgen's list (:mod:`trtgen.corpora.infer_list`), same rows in the same order;
* ``rejects.jsonl``: every skipped M-AILABS clip and LibriSpeech row, with file, line and reason;
* ``prepare.json``: the settings (M-AILABS root, sources, seed, assignment) and the summary.

Unlike OpenSeq2Seq's unseeded shuffle the pairing is a pure function of the inputs and the seed.
Rows whose text the model could not speak (characters that neither OpenSeq2Seq nor trtgen's
normaliser can map, or over ``max_text_len``) are rejected here rather than failing a batch later.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from trtgen.engine.config import TextConfig
from trtgen.corpora.base import Reject, log_rejects, write_rejects
from trtgen.corpora.infer_list import (
    PREPARE_SETTINGS,
    InferEntry,
    librivox_normalize,
    write_generate_csv,
    write_infer_jsonl,
)
from trtgen.corpora.librispeech import LibriUtterance, read_librispeech
from trtgen.corpora.mailabs import MailabsClip, read_mailabs
from trtgen.fileio import atomic_write
from trtgen.engine.text import TextEncoder, TextError
from trtgen.errors import UsageError

logger = logging.getLogger(__name__)

__all__ = [
    "ASSIGN_MODES",
    "CHARACTERS_PER_SECOND",
    "PrepareOptions",
    "SpeakerSummary",
    "PrepareSummary",
    "PrepareResult",
    "assign_styles",
    "prepare_infer_list",
]

AssignMode = Literal["cyclic", "balanced", "random"]
ASSIGN_MODES: tuple[str, ...] = ("cyclic", "balanced", "random")

CHARACTERS_PER_SECOND = 15.0
"""LibriSpeech's average reading rate (transcript characters per second of audio) for the hours estimate."""


@dataclass(frozen=True)
class PrepareOptions:
    """What to pair and how."""

    books: str | tuple[str, ...] = "default"
    """``default`` (OpenSeq2Seq's 14 en_US books), ``all``, or book items (see :func:`~trtgen.corpora.mailabs.find_books`)."""
    splits: str | tuple[str, ...] | None = None
    """LibriSpeech splits of tree sources: None = train-clean-100, train-clean-360, train-other-500; ``all``."""
    seed: int = 0
    assign: str = "cyclic"
    """``cyclic``: OpenSeq2Seq's rule, row i gets clip i mod N of the shuffled clips (speakers weighted by
    their clip count); ``balanced``: rows spread evenly over style speakers, each speaker's clips used
    evenly; ``random``: a uniformly drawn clip per row (with replacement)."""
    text: TextConfig = field(default_factory=TextConfig)


@dataclass(frozen=True)
class SpeakerSummary:
    """Per style speaker: clips available and missing, rows assigned, distinct clips used."""

    speaker: str
    gender: str
    books: int
    clips: int
    missing_clips: int
    rows: int
    clips_used: int


@dataclass(frozen=True)
class PrepareSummary:
    utterances: int
    characters: int
    hours_estimated: float
    """``characters / CHARACTERS_PER_SECOND / 3600``: transcripts have no durations until spoken."""
    rejects: int
    missing_books: tuple[str, ...]
    missing_splits: tuple[str, ...]
    speakers: tuple[SpeakerSummary, ...]


@dataclass
class PrepareResult:
    entries: list[InferEntry]
    rejects: list[Reject]
    summary: PrepareSummary
    files: dict[str, Path] = field(default_factory=dict)


def assign_styles(speakers: Sequence[str], num_rows: int, mode: str, seed: int) -> np.ndarray:
    """Clip index (into ``speakers``' clip list) for each of ``num_rows`` rows; deterministic for ``seed``."""
    num_clips = len(speakers)
    if num_clips == 0:
        raise UsageError("no style clip to assign")
    rng = np.random.default_rng(seed)
    if mode == "cyclic":
        order = rng.permutation(num_clips)
        return order[np.arange(num_rows) % num_clips]
    if mode == "random":
        return rng.integers(0, num_clips, size=num_rows)
    if mode == "balanced":
        by_speaker: dict[str, list[int]] = defaultdict(list)
        for index, speaker in enumerate(speakers):
            by_speaker[speaker].append(index)
        names = sorted(by_speaker)
        pools = [rng.permutation(np.asarray(by_speaker[name])) for name in names]
        speaker_of_row = rng.permutation(np.arange(num_rows) % len(names))
        result = np.empty(num_rows, dtype=np.int64)
        for s, pool in enumerate(pools):
            rows = np.flatnonzero(speaker_of_row == s)
            result[rows] = pool[np.arange(rows.size) % pool.size]
        return result
    raise UsageError(f"unknown assignment {mode!r}; choose one of {', '.join(ASSIGN_MODES)}")


def _check_text(encoder: TextEncoder, utt: LibriUtterance) -> str | None:
    """Why a transcript cannot go into both lists, or None."""
    try:
        encoder.encode_with_info(utt.text)
    except TextError as exc:
        return f"transcript cannot be spoken: {exc}"
    csv_text = librivox_normalize(utt.text)
    if not csv_text:
        return "transcript is empty after OpenSeq2Seq's ASCII normalisation"
    if "|" in csv_text:
        return "transcript contains '|', the generate.csv separator"
    unknown = encoder.unknown_characters(csv_text)
    if unknown:
        chars = "".join(sorted({c for _, c in unknown}))
        return f"generate.csv text has characters OpenSeq2Seq cannot map: {chars!r}"
    return None


def prepare_infer_list(
    mailabs_root: str | Path,
    librispeech: Sequence[str | Path],
    output_dir: str | Path | None = None,
    options: PrepareOptions = PrepareOptions(),
) -> PrepareResult:
    """Read both corpora, pair every usable transcript with a style clip, and write the lists if asked."""
    if options.assign not in ASSIGN_MODES:
        raise UsageError(f"unknown assignment {options.assign!r}; choose one of {', '.join(ASSIGN_MODES)}")
    mailabs = read_mailabs(mailabs_root, options.books)
    libri = read_librispeech(librispeech, options.splits)
    rejects: list[Reject] = list(mailabs.rejects) + list(libri.rejects)
    log_rejects(mailabs.rejects, "M-AILABS clips")
    encoder = TextEncoder(options.text)
    usable: list[LibriUtterance] = []
    text_rejects: list[Reject] = []
    for utt in libri.utterances:
        problem = _check_text(encoder, utt)
        if problem is None:
            usable.append(utt)
        else:
            text_rejects.append(Reject(utt.source, utt.line, problem, utt.id))
    rejects.extend(text_rejects)
    log_rejects(list(libri.rejects) + text_rejects, "LibriSpeech rows")
    if not usable:
        raise UsageError("no usable LibriSpeech transcript: nothing to prepare (see the rejects)")

    clips: list[MailabsClip] = mailabs.clips
    chosen = assign_styles([c.speaker for c in clips], len(usable), options.assign, options.seed)
    entries = [
        InferEntry(
            id=utt.id, text=utt.text, style=clips[c].relpath, speaker=utt.speaker, chapter=utt.chapter,
            style_speaker=clips[c].speaker, book=clips[c].book.name,
        )
        for utt, c in zip(usable, chosen.tolist())
    ]
    summary = _summarise(entries, clips, chosen, mailabs.missing_clips, mailabs.books, rejects,
                         mailabs.missing_books, libri.missing_splits)
    result = PrepareResult(entries, rejects, summary)
    if output_dir is not None:
        out = Path(output_dir).expanduser().absolute()
        out.mkdir(parents=True, exist_ok=True)
        result.files["generate.csv"] = out / "generate.csv"
        result.files["infer.jsonl"] = out / "infer.jsonl"
        result.files["rejects.jsonl"] = out / "rejects.jsonl"
        result.files[PREPARE_SETTINGS] = out / PREPARE_SETTINGS
        write_generate_csv(result.files["generate.csv"], entries)
        write_infer_jsonl(result.files["infer.jsonl"], entries)
        write_rejects(result.files["rejects.jsonl"], rejects)
        settings = {
            "schema": 1,
            "mailabs_root": str(mailabs.root),
            "books": [b.relpath for b in mailabs.books],
            "librispeech": libri.sources,
            "seed": options.seed,
            "assign": options.assign,
            "summary": asdict(summary),
        }
        with atomic_write(result.files[PREPARE_SETTINGS]) as handle:
            json.dump(settings, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        logger.info("wrote %d rows to %s and %s", len(entries), result.files["generate.csv"], result.files["infer.jsonl"])
    return result


def _summarise(
    entries: list[InferEntry],
    clips: list[MailabsClip],
    chosen: np.ndarray,
    missing_clips: dict[str, int],
    books: Sequence,
    rejects: list[Reject],
    missing_books: list[str],
    missing_splits: list[str],
) -> PrepareSummary:
    characters = sum(len(e.text) for e in entries)
    available = Counter(c.speaker for c in clips)
    rows = Counter(clips[i].speaker for i in chosen.tolist())
    used: dict[str, set[int]] = defaultdict(set)
    for i in set(chosen.tolist()):
        used[clips[i].speaker].add(i)
    books_per_speaker = Counter(b.speaker for b in books)
    gender = {b.speaker: b.gender for b in books}
    speakers = tuple(
        SpeakerSummary(
            speaker=name, gender=gender.get(name, ""), books=books_per_speaker[name], clips=available[name],
            missing_clips=missing_clips.get(name, 0), rows=rows[name], clips_used=len(used[name]),
        )
        for name in sorted(books_per_speaker)
    )
    return PrepareSummary(
        utterances=len(entries), characters=characters,
        hours_estimated=characters / CHARACTERS_PER_SECOND / 3600.0, rejects=len(rejects),
        missing_books=tuple(missing_books), missing_splits=tuple(missing_splits), speakers=speakers,
    )
