"""Phoneme front end: text -> IPA with espeak-ng's library, for models trained on phonemes.

A model whose card names a ``phonemizer`` (``espeak-ng:<voice>``) reads IPA symbols, not letters:
English spelling is the hardest thing a small Tacotron has to learn, and espeak-ng already knows it
(numbers, abbreviations, stress). This is what piper does; like piper, trtgen calls libespeak-ng in
process (``espeak_TextToPhonemes``, about 0.1 ms a sentence) rather than a subprocess per line.

espeak-ng splits text into clauses and drops their punctuation; the punctuation that ended each clause
is put back (it tells the model where the pauses are), so "Hello, world!" becomes "həlˈoʊ, wˈɜːld!".
Text in capitals only (LibriSpeech's transcripts) is lowercased first: espeak-ng spells short capitalised
words as letters ("IT" -> "I T", "US" -> "U S") (:func:`ordinary_case`).

Labels must match audio, so text espeak-ng would not speak as written is refused, never spoken
(:func:`unspeakable_characters`, docs/text-front-ends.md): espeak-ng reads a character of another
script, an emoji or a symbol out by its name ("chinese letter", "grinning face", "copyright", "euro")
while the transcript keeps the character, and it switches language for some scripts ("(hi)").
Invisible format characters (zero-width spaces, soft hyphens, byte-order marks, bidi controls) are
removed before anything else, by both front ends (:func:`remove_format_characters`): espeak-ng reads a
zero-width space as a word break that the label would not show.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import Any, Sequence

from trtgen.errors import TextError, UsageError

__all__ = [
    "PhonemizerError", "UnspeakableTextError", "EspeakPhonemizer", "phonemizer_for", "parse_phonemizer", "ordinary_case",
    "unspeakable_characters", "SILENT_PUNCTUATION", "is_format_character", "remove_format_characters",
]

PREFIX = "espeak-ng:"
CLAUSE_PUNCTUATION = ",.;:!?"
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_PHONEMES_IPA = 0x02
_LANGUAGE_SWITCH = re.compile(r"\([a-z]{2,3}(?:-[a-z0-9]+)*\)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PRONOUN_I = re.compile(r"\bi\b")


class PhonemizerError(UsageError):
    """espeak-ng is missing or refused the voice (a ValueError, so the CLI reports it like a bad option)."""


class UnspeakableTextError(TextError):
    """Text espeak-ng would not speak as written: characters it reads out by name, or a language switch."""

    def __init__(self, voice: str, characters: Sequence[tuple[int, str]] = (), switches: Sequence[str] = ()) -> None:
        self.characters = tuple(characters)
        """(position, character) of every character refused."""
        self.switches = tuple(switches)
        """Languages espeak-ng switched to, e.g. ``hi``."""
        if self.characters:
            shown = ", ".join(f"{ch!r} (U+{ord(ch):04X}) at {pos}" for pos, ch in self.characters[:10])
            more = f" and {len(self.characters) - 10} more" if len(self.characters) > 10 else ""
            reason = (f"{len(self.characters)} character(s) the {voice} voice would not speak as written "
                      f"(another script, an emoji, or a symbol espeak-ng reads out as a word): {shown}{more}")
        else:
            reason = f"espeak-ng's {voice} voice switched to language {', '.join(self.switches)}: the audio would not match the text"
        self.voice = voice
        super().__init__(reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.voice, self.characters, self.switches)  # picklable: a cluster worker's error reaches the driver


SILENT_PUNCTUATION = frozenset(
    "!\"'(),-.:;<>?[]^_`{|}"
    "\u00a1\u00ab\u00b7\u00bb\u00bf\u2010\u2011\u2012\u2013\u2014\u2015\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f"
    "\u2022\u2026\u2032\u2033\u2039\u203a"
)
"""Punctuation espeak-ng reads as a pause or not at all (tests/engine/test_phonemes.py checks each); the
others (``# $ % & * + / = @ \\ ~ © € £ ° § ×``...) it reads out as words that no transcript holds."""
_LATIN_LETTERS_END = 0x0180
"""Latin letters espeak-ng reads within words: Basic Latin, Latin-1 and Latin Extended-A. Beyond, it
spells most of them out ("letter 1e01" for Latin Extended Additional, "g hook" in Extended-B)."""
_LETTERS_READ_AS_NAMES = frozenset("\u00aa\u00b5\u00ba")
"""Latin-1 letters espeak-ng reads as a word of their own: ª, µ ("micro"), º."""
_VOICE_SCRIPTS = {"el": "GREEK", "ru": "CYRILLIC", "uk": "CYRILLIC", "bg": "CYRILLIC", "mk": "CYRILLIC", "be": "CYRILLIC"}
"""Voices whose letters are not Latin (the rest, English among them, read the Latin script)."""


def is_format_character(char: str) -> bool:
    """Unicode category Cf: invisible characters that shape how text is shown, not what it says
    (U+200B zero-width space, U+200C/U+200D joiners, U+2060, U+FEFF, U+00AD soft hyphen, bidi controls,
    tag characters)."""
    return unicodedata.category(char) == "Cf"


def remove_format_characters(text: str) -> tuple[str, dict[str, int]]:
    """``text`` without its format characters (:func:`is_format_character`), and how many of each were
    removed. Both front ends call this before anything else, so the model, espeak-ng and the label read
    the same text (docs/text-front-ends.md): ``"foo\\u200bbar"`` is ``"foobar"`` for all three."""
    if text.isascii():  # no format character is ASCII: the common case costs one scan
        return text, {}
    removed: dict[str, int] = {}
    kept: list[str] = []
    for char in text:
        if is_format_character(char):
            removed[char] = removed.get(char, 0) + 1
        else:
            kept.append(char)
    return ("".join(kept), removed) if removed else (text, {})


def _speakable_letter(char: str, script: str) -> bool:
    if not unicodedata.category(char).startswith("L"):
        return False
    if script == "LATIN":
        return ord(char) < _LATIN_LETTERS_END and char not in _LETTERS_READ_AS_NAMES
    return unicodedata.name(char, "").startswith(script + " ")


def unspeakable_characters(text: str, voice: str) -> list[tuple[int, str]]:
    """(position, character) of each character of ``text`` that espeak-ng's ``voice`` would not speak as
    written: letters of other scripts, emoji, symbols it reads out by name, digits other than 0-9.

    Kept: letters of the voice's script (with combining accents), digits 0-9 (read as numbers, as a
    transcript's normaliser expects), white space, :data:`SILENT_PUNCTUATION`, and the format characters
    that :func:`remove_format_characters` deletes before espeak-ng reads the text."""
    script = _VOICE_SCRIPTS.get(voice.split("-")[0], "LATIN")
    refused = []
    previous_letter = False
    for position, char in enumerate(text):
        if is_format_character(char):
            continue  # deleted before espeak-ng reads the text
        if _speakable_letter(char, script):
            previous_letter = True
            continue
        accent = previous_letter and unicodedata.category(char) == "Mn"
        if not (accent or char.isspace() or "0" <= char <= "9" or char in SILENT_PUNCTUATION):
            refused.append((position, char))
        previous_letter = accent
    return refused


def parse_phonemizer(spec: str) -> str:
    """The espeak-ng voice of a card's ``phonemizer`` field (``espeak-ng:en-us`` -> ``en-us``)."""
    if not spec.startswith(PREFIX) or not spec[len(PREFIX):]:
        raise PhonemizerError(f"unknown phonemizer {spec!r}: trtgen knows {PREFIX}<voice>, e.g. {PREFIX}en-us")
    return spec[len(PREFIX):]


def _load_library() -> ctypes.CDLL:
    name = os.environ.get("TRTGEN_ESPEAK_LIBRARY") or ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    try:
        lib = ctypes.cdll.LoadLibrary(name)
    except OSError as error:
        raise PhonemizerError(
            f"this model reads phonemes and needs the espeak-ng library ({name}: {error}); install it "
            "(Debian/Ubuntu: apt install espeak-ng; macOS: brew install espeak-ng) or point "
            "TRTGEN_ESPEAK_LIBRARY at libespeak-ng"
        ) from None
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    if lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_DONT_EXIT) < 0:
        raise PhonemizerError(f"espeak-ng ({name}) failed to initialise: is its data (espeak-ng-data) installed?")
    return lib


# libespeak-ng keeps one global state (voice, buffers): one library handle per process, one caller at a time.
_LOCK = threading.Lock()
_LIBRARY: ctypes.CDLL | None = None
_CURRENT_VOICE: str | None = None


@dataclass(frozen=True)
class EspeakPhonemizer:
    """IPA for English text in one espeak-ng voice (``en-us``: the one of the ``voice-ipa`` preset)."""

    voice: str = "en-us"

    @property
    def version(self) -> str:
        with _LOCK:
            return _library().espeak_Info(None).decode()

    def phonemize(self, text: str) -> str:
        """Clauses of IPA separated by their punctuation and a space; words separated by a space.

        Format characters are removed first (:func:`remove_format_characters`); raises
        :class:`UnspeakableTextError` for text espeak-ng would not speak as written."""
        text, _ = remove_format_characters(text)
        refused = unspeakable_characters(text, self.voice)
        if refused:
            raise UnspeakableTextError(self.voice, refused)
        text = ordinary_case(_CONTROL.sub(" ", text).strip())
        if not text:
            return ""
        raw = text.encode("utf-8")
        buffer = ctypes.create_string_buffer(raw)
        base = ctypes.addressof(buffer)
        pointer = ctypes.c_void_p(base)
        clauses: list[str] = []
        switches: set[str] = set()
        with _LOCK:
            lib = _select_voice(self.voice)
            consumed = 0
            while pointer.value:
                phonemes = lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEMES_IPA)
                end = (pointer.value - base) if pointer.value else len(raw)
                clause_text = raw[consumed:end].decode("utf-8", errors="ignore")
                if pointer.value:
                    # espeak-ng has read one character past the clause (its lookahead, spoken in the next one).
                    lookahead, clause_text = clause_text[-1:], clause_text[:-1]
                    end -= len(lookahead.encode("utf-8"))
                if end <= consumed and not phonemes:
                    break
                consumed = end
                ipa = (phonemes or b"").decode("utf-8", errors="replace")
                switches.update(switch.strip("()") for switch in _LANGUAGE_SWITCH.findall(ipa))
                ipa = " ".join(_LANGUAGE_SWITCH.sub("", ipa).split())
                if ipa:
                    clauses.append(ipa + _terminator(clause_text))
        if switches - {self.voice}:
            raise UnspeakableTextError(self.voice, switches=sorted(switches - {self.voice}))
        return " ".join(clauses)


def ordinary_case(text: str) -> str:
    """Text in the case espeak-ng reads best: capitals-only text (LibriSpeech's transcripts) lowercased,
    and in text without capitals (those, or OpenSeq2Seq's lowercased generate.csv) the pronoun "i"
    written "I", as in the training sentences. Mixed-case text is unchanged. espeak-ng reads short
    capitalised words as acronyms and spells them ("IT" -> "I T"), and stresses a lowercase "i"."""
    if text == text.upper():
        text = text.lower()
    if text == text.lower():
        text = _PRONOUN_I.sub("I", text)
    return text


def _terminator(clause_text: str) -> str:
    """The clause punctuation that ended ``clause_text`` (closing quotes and brackets skipped), or ''."""
    for char in reversed(clause_text.rstrip()):
        if char in CLAUSE_PUNCTUATION:
            return char
        if char not in "\"')]}\u201d\u2019":
            return ""
    return ""


def _library() -> ctypes.CDLL:
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = _load_library()
    return _LIBRARY


def _select_voice(voice: str) -> ctypes.CDLL:
    global _CURRENT_VOICE
    lib = _library()
    if voice != _CURRENT_VOICE:
        _CURRENT_VOICE = None  # unknown until espeak-ng accepts the new one
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise PhonemizerError(f"espeak-ng has no voice {voice!r} (espeak-ng --voices lists them)")
        _CURRENT_VOICE = voice
    return lib


def phonemizer_for(spec: str) -> EspeakPhonemizer:
    """The phonemizer a model card's ``text.phonemizer`` names."""
    return EspeakPhonemizer(parse_phonemizer(spec))
