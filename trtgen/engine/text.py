"""Text front end (docs/openseq2seq-notes.md §2): transcript -> OpenSeq2Seq character ids (or, for a phoneme model, IPA ids).

OpenSeq2Seq maps every character with ``char2idx[c]`` and a single unknown character raises a
KeyError that fails the whole inference batch (docs/openseq2seq-notes.md §2.2). trtgen keeps the exact ids for text that
is in the 94-symbol table, normalises what it safely can (curly quotes, dashes, odd spaces,
accented letters outside the table), records each substitution so callers can log it, and rejects
the rest with :class:`UnmappableTextError` naming the characters and their positions. Invisible format
characters (Unicode category Cf) are deleted first, for letters and phonemes alike
(docs/text-front-ends.md).
"""

from __future__ import annotations

import logging
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from trtgen.engine.config import TextConfig
from trtgen.engine.phonemes import phonemizer_for, remove_format_characters
from trtgen.errors import TextError, UsageError

logger = logging.getLogger(__name__)

__all__ = [
    "is_spoken_symbol",
    "last_spoken_index",
    "TextError",
    "UnmappableTextError",
    "Substitution",
    "NormalizedText",
    "EncodedText",
    "TextEncoder",
    "encode",
    "pad_batch",
]


class UnmappableTextError(TextError):
    """Characters that are neither in the symbol table nor normalisable to it."""

    def __init__(self, text: str, unmappable: Sequence[tuple[int, str]]) -> None:
        self.text = text
        """The text the positions count in: the input without its format characters (or, for a phoneme
        model, espeak-ng's IPA)."""
        self.unmappable: tuple[tuple[int, str], ...] = tuple(unmappable)
        """(position in :attr:`text`, character) for every character that could not be mapped."""
        shown = ", ".join(f"{ch!r} (U+{ord(ch):04X}) at {pos}" for pos, ch in self.unmappable[:10])
        more = f" and {len(self.unmappable) - 10} more" if len(self.unmappable) > 10 else ""
        super().__init__(f"{len(self.unmappable)} character(s) outside the symbol table: {shown}{more}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.text, self.unmappable)  # picklable: a cluster worker's error reaches the driver


@dataclass(frozen=True)
class Substitution:
    """One kind of change the normaliser made: ``original`` became ``replacement`` ``count`` times."""

    original: str
    replacement: str
    count: int

    def __str__(self) -> str:
        return f"{self.original!r}->{self.replacement!r} x{self.count}"


@dataclass(frozen=True)
class NormalizedText:
    """Text ready for the id lookup, and what was changed to get there (ASCII lowercasing excluded)."""

    text: str
    substitutions: tuple[Substitution, ...] = ()
    spoken: str = ""
    """The transcript the audio will speak: the input with the substitutions applied, in its own case
    (for a phoneme model, the input as espeak-ng read it; ``text`` is then the IPA)."""

    @property
    def changed(self) -> bool:
        return bool(self.substitutions)


@dataclass(frozen=True)
class EncodedText:
    """The normalised text and its padded id sequence; ``len(ids)`` is OpenSeq2Seq's ``text_len``."""

    text: str
    """What the model reads: normalised letters, or espeak-ng's IPA."""
    ids: np.ndarray
    substitutions: tuple[Substitution, ...] = ()
    spoken: str = ""
    """The transcript the audio speaks (:attr:`NormalizedText.spoken`)."""

    @property
    def text_len(self) -> int:
        return int(self.ids.shape[0])


# Characters outside the table that have an obvious in-table equivalent. Anything else goes
# through NFKD (accents dropped); what still is not in the table is reported, never guessed.
_EXPLICIT: dict[str, str] = {
    # Single quotes and primes; U+2019 (’) is in the table and therefore never reaches this map.
    "\u2018": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'", "`": "'",
    "\u2039": "'", "\u203a": "'",
    # Double quotes; U+201C/U+201D are in the table.
    "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    # Dashes and minus signs.
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2212": "-", "\u2e3a": "-", "\u2e3b": "-",
    "\u2026": "...",
}


class TextEncoder:
    """Maps transcripts to ids with one :class:`~trtgen.engine.config.TextConfig` (built once, reused)."""

    def __init__(self, config: TextConfig | None = None) -> None:
        self.config = config or TextConfig()
        self._phonemizer = phonemizer_for(self.config.phonemizer) if self.config.phonemizer else None
        specials = {self.config.pad_id, self.config.bos_id, self.config.eos_id}
        self._char_to_id: dict[str, int] = {
            symbol: index for index, symbol in enumerate(self.config.symbols) if index not in specials and len(symbol) == 1
        }

    def in_table(self, char: str) -> bool:
        return char in self._char_to_id

    def unknown_characters(self, text: str) -> list[tuple[int, str]]:
        """(position, char) of every character OpenSeq2Seq itself would fail on (after its ASCII lowercasing)."""
        lowered = self._lower(text)
        return [(pos, ch) for pos, ch in enumerate(lowered) if ch not in self._char_to_id]

    def normalize(self, text: str) -> NormalizedText:
        """Delete format characters, lowercase ASCII and replace characters outside the table; raise on
        what cannot be mapped. Each deletion and replacement is reported as a :class:`Substitution`.

        A phoneme model's text becomes espeak-ng's IPA here (the returned ``text`` is the IPA)."""
        cleaned, removed = remove_format_characters(text)
        changes: Counter[tuple[str, str]] = Counter({(char, ""): count for char, count in removed.items()})
        if self._phonemizer is not None:
            return self._phonemize(cleaned, changes)
        out: list[str] = []
        spoken: list[str] = []
        unmappable: list[tuple[int, str]] = []
        for pos, ch in enumerate(cleaned):
            low = self._lower(ch)
            if low in self._char_to_id:
                out.append(low)
                spoken.append(ch)
                continue
            replacement = self._replacement(ch)
            if replacement is None:
                unmappable.append((pos, ch))
                continue
            out.append(self._lower(replacement))
            spoken.append(replacement)
            changes[(ch, self._lower(replacement))] += 1
        if unmappable:
            raise UnmappableTextError(cleaned, unmappable)
        normalized = "".join(out)
        if not normalized.strip():
            raise TextError(f"text is empty after normalisation: {text!r}")
        return NormalizedText(normalized, _substitutions(changes), spoken=" ".join("".join(spoken).split()))

    def _phonemize(self, text: str, changes: Counter[tuple[str, str]]) -> NormalizedText:
        """espeak-ng's IPA for ``text`` (already without format characters); ``changes`` are reported."""
        assert self._phonemizer is not None
        phonemes = self._phonemizer.phonemize(text)
        if not phonemes.strip():
            raise TextError(f"espeak-ng ({self.config.phonemizer}) found nothing to speak in {text!r}")
        unmappable = self.unknown_characters(phonemes)
        if unmappable:
            raise UnmappableTextError(phonemes, unmappable)
        return NormalizedText(phonemes, _substitutions(changes), spoken=" ".join(text.split()))

    def encode_with_info(self, text: str) -> EncodedText:
        """Normalise and encode; raises :class:`TextError` for empty, too long or unmappable text."""
        normalized = self.normalize(text)
        ids = self._pad([self._char_to_id[ch] for ch in normalized.text])
        if ids.shape[0] > self.config.max_text_len:
            raise TextError(
                f"text is too long: {ids.shape[0]} ids (with <s>, </s> and padding) > max_text_len "
                f"{self.config.max_text_len}; it is rejected, not truncated"
            )
        return EncodedText(normalized.text, ids, normalized.substitutions, normalized.spoken)

    def encode(self, text: str) -> np.ndarray:
        """``[<s>] + ids + [</s>] + <p>*num_pad`` as int64 (docs/openseq2seq-notes.md §2.2 step 3)."""
        return self.encode_with_info(text).ids

    def _lower(self, text: str) -> str:
        # OpenSeq2Seq lowercases the UTF-8 bytes (docs/openseq2seq-notes.md §2.2 step 1): only A-Z change.
        if not self.config.lowercase_ascii:
            return text
        return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)

    def _replacement(self, ch: str) -> str | None:
        """In-table text for one out-of-table character, or None."""
        if ch in _EXPLICIT:
            candidate = _EXPLICIT[ch]
        elif ch.isspace() or unicodedata.category(ch) == "Zs":
            candidate = " "
        else:
            decomposed = unicodedata.normalize("NFKD", ch)
            candidate = "".join(c for c in decomposed if not unicodedata.combining(c))
            if not candidate or candidate == ch:
                return None
        if all(c in self._char_to_id for c in self._lower(candidate)):
            return candidate
        return None

    def _pad(self, ids: list[int]) -> np.ndarray:
        cfg = self.config
        n = len(ids) + 2
        # A full multiple still gets pad_multiple more pads (docs/openseq2seq-notes.md §2.2 step 3).
        num_pad = cfg.pad_multiple - (n % cfg.pad_multiple)
        return np.asarray([cfg.bos_id, *ids, cfg.eos_id] + [cfg.pad_id] * num_pad, dtype=np.int64)


def _substitutions(changes: Counter[tuple[str, str]]) -> tuple[Substitution, ...]:
    return tuple(Substitution(original, replacement, count) for (original, replacement), count in changes.items())


_DEFAULT_ENCODER: TextEncoder | None = None


def encode(text: str, config: TextConfig | None = None) -> np.ndarray:
    """Encode one transcript with the default (or the given) text configuration."""
    global _DEFAULT_ENCODER
    if config is not None:
        return TextEncoder(config).encode(text)
    if _DEFAULT_ENCODER is None:
        _DEFAULT_ENCODER = TextEncoder()
    return _DEFAULT_ENCODER.encode(text)


def is_spoken_symbol(symbol: str) -> bool:
    """A letter or digit, or an IPA phone; not punctuation, and not an IPA modifier such as the stress
    marks, the length mark ``ː`` or a combining diacritic (they change the phone before or after them)."""
    return len(symbol) == 1 and symbol.isalnum() and unicodedata.category(symbol) not in ("Lm", "Mn")


def last_spoken_index(text_ids: np.ndarray, text: TextConfig) -> int:
    """Position of the last spoken symbol in ``[<s>] + ids + [</s>] + padding`` (``</s>`` - 1 if none)."""
    ids = np.asarray(text_ids)
    eos = int(np.flatnonzero(ids == text.eos_id)[0])
    for position in range(eos - 1, 0, -1):
        if is_spoken_symbol(text.symbols[int(ids[position])]):
            return position
    return eos - 1


def pad_batch(id_arrays: Sequence[np.ndarray], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stack ragged id sequences into ``[B, T]`` int64 padded with ``pad_id``, plus lengths ``[B]``.

    Lengths are the per-item ``text_len`` (their own padded length), as OpenSeq2Seq's ``padded_batch``.
    """
    if len(id_arrays) == 0:
        raise UsageError("pad_batch needs at least one id sequence")
    arrays = [np.asarray(a) for a in id_arrays]
    for index, array in enumerate(arrays):
        if array.ndim != 1:
            raise UsageError(f"pad_batch: item {index} has shape {array.shape}, expected a 1-D id sequence")
    lengths = np.asarray([a.shape[0] for a in arrays], dtype=np.int64)
    batch = np.full((len(arrays), int(lengths.max())), pad_id, dtype=np.int64)
    for row, array in enumerate(arrays):
        batch[row, : array.shape[0]] = array
    return batch, lengths
