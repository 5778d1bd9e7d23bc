"""Text front end (docs/openseq2seq-notes.md §2): exact ids and padding, normalisation, and clear errors for what cannot be spoken."""

from __future__ import annotations

import sys
import unicodedata

import numpy as np
import pytest

from trtgen.engine.config import OPENSEQ2SEQ_SYMBOLS, TextConfig
from trtgen.fileio import iter_lines
from trtgen.engine.text import TextEncoder, TextError, UnmappableTextError, encode, pad_batch


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


def test_ids_follow_spec_table(encoder: TextEncoder) -> None:
    # Spec §2.1 table: space 3, '!' 4, '"' 5, "'" 6, '0' 12, ':' 22, '?' 24, '[' 51, ']' 52, 'a' 53, 'z' 78.
    expected = {" ": 3, "!": 4, '"': 5, "'": 6, "(": 7, ")": 8, ",": 9, "-": 10, ".": 11, "0": 12, "9": 21,
                ":": 22, ";": 23, "?": 24, "[": 51, "]": 52, "a": 53, "z": 78, "Ä": 79, "Ö": 80, "Ü": 81,
                "ß": 82, "à": 83, "â": 84, "ä": 85, "è": 86, "é": 87, "ê": 88, "ö": 89, "ü": 90,
                "\u2019": 91, "\u201c": 92, "\u201d": 93}
    for char, index in expected.items():
        assert encoder.encode(f"{char}.")[1] == index, char
    assert len(OPENSEQ2SEQ_SYMBOLS) == 94


@pytest.mark.parametrize("n, total", [(1, 8), (5, 8), (6, 16), (13, 16), (14, 24), (50, 56)])
def test_padding_rule(encoder: TextEncoder, n: int, total: int) -> None:
    ids = encoder.encode("a" * n)
    assert ids.dtype == np.int64
    assert ids.shape == (total,)
    assert ids[0] == 1 and ids[n + 1] == 2
    assert (ids[1 : n + 1] == 53).all()
    assert (ids[n + 2 :] == 0).all() and total - n - 2 >= 1


def test_only_ascii_letters_are_lowercased(encoder: TextEncoder) -> None:
    np.testing.assert_array_equal(encoder.encode("HeLLo"), encoder.encode("hello"))
    # Ä is in the table as a capital and stays (OpenSeq2Seq lowercases bytes); ä has its own id.
    assert encoder.encode("Ä")[1] == 79
    assert encoder.encode("ä")[1] == 85
    info = encoder.encode_with_info("ABC Ä")
    assert info.text == "abc Ä"
    assert info.substitutions == ()


def test_in_table_characters_are_kept(encoder: TextEncoder) -> None:
    info = encoder.encode_with_info("caf\u00e9 \u2019x\u2019 \u201cy\u201d")
    assert info.text == "caf\u00e9 \u2019x\u2019 \u201cy\u201d"
    assert info.substitutions == ()


def test_normalisation_records_every_change(encoder: TextEncoder) -> None:
    text = "\u2018Hi\u2019\u2014said\u00a0she\u2026 \u201eja\u201f\tna\u00efve \u00c9t\u00e9 \ufb01ne\u200b"
    info = encoder.encode_with_info(text)
    assert info.text == "'hi\u2019-said she... \"ja\" naive et\u00e9 fine"
    changes = {(s.original, s.replacement): s.count for s in info.substitutions}
    assert changes == {
        ("\u2018", "'"): 1, ("\u2014", "-"): 1, ("\u00a0", " "): 1, ("\u2026", "..."): 1, ("\u201e", '"'): 1,
        ("\u201f", '"'): 1, ("\t", " "): 1, ("\u00ef", "i"): 1, ("\u00c9", "e"): 1, ("\ufb01", "fi"): 1,
        ("\u200b", ""): 1,
    }
    np.testing.assert_array_equal(info.ids, encoder.encode(info.text))


def test_unmappable_characters_are_listed_with_positions(encoder: TextEncoder) -> None:
    with pytest.raises(UnmappableTextError) as caught:
        encoder.encode("a & b \u20ac5 \u00bd")
    error = caught.value
    assert isinstance(error, TextError) and isinstance(error, ValueError)
    assert error.unmappable == ((2, "&"), (6, "\u20ac"), (9, "\u00bd"))
    assert "'&' (U+0026) at 2" in str(error)
    assert "U+20AC" in str(error)


FORMAT_CHARACTERS = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
"""Every Unicode format character (category Cf) this Python knows: zero-width spaces, soft hyphen, BOM,
bidi controls, tag characters..."""


def _has_format_character(text: str) -> bool:
    return any(unicodedata.category(c) == "Cf" for c in text)


@pytest.mark.parametrize(
    "text, cleaned",
    [("foo\u200bbar", "foobar"), ("co\u00adoperate", "cooperate"), ("\ufeffHello", "Hello"), ("a\u202eb", "ab"),
     ("\u200eLeft\u2066 right\u2069\u200f and \U000e0065\U000e006ean\U000e007f end.", "Left right and an end.")],
)
def test_format_characters_are_deleted_from_what_is_read_and_the_label(encoder: TextEncoder, text: str, cleaned: str) -> None:
    """The model reads the ids of the cleaned text, and the label (``spoken``) is that text: no invisible character."""
    info = encoder.encode_with_info(text)
    expected = encoder.encode_with_info(cleaned)
    assert info.spoken == expected.spoken == cleaned and not _has_format_character(info.spoken + info.text)
    assert info.text == expected.text
    np.testing.assert_array_equal(info.ids, expected.ids)
    removed = {c: text.count(c) for c in text if unicodedata.category(c) == "Cf"}
    assert {(s.original, s.replacement): s.count for s in info.substitutions} == {(c, ""): n for c, n in removed.items()}


def test_every_format_character_is_deleted(encoder: TextEncoder) -> None:
    assert len(FORMAT_CHARACTERS) > 150 and {"\u200b", "\u00ad", "\ufeff", "\u202e", "\u2066", "\U000e0001"} <= set(FORMAT_CHARACTERS)
    for char in FORMAT_CHARACTERS:
        info = encoder.encode_with_info(f"a{char}b")
        assert (info.text, info.spoken) == ("ab", "ab"), f"U+{ord(char):04X}"


def test_positions_of_unmappable_characters_count_in_the_cleaned_text(encoder: TextEncoder) -> None:
    with pytest.raises(UnmappableTextError) as caught:
        encoder.encode("\u200ba\u00ad & b")
    assert caught.value.unmappable == ((2, "&"),) and caught.value.text[2] == "&"


@pytest.mark.parametrize("text", ["", "   ", "\u200b\u00ad", "\n\t", "\ufeff\u202e \u2066"])
def test_empty_text_is_an_error(encoder: TextEncoder, text: str) -> None:
    with pytest.raises(TextError, match="empty"):
        encoder.encode(text)


def test_too_long_text_is_rejected_not_truncated() -> None:
    short = TextEncoder(TextConfig(max_text_len=16))
    assert short.encode("a" * 13).shape == (16,)
    with pytest.raises(TextError, match="too long: 24 ids"):
        short.encode("a" * 14)


def test_module_encode_matches_encoder(encoder: TextEncoder) -> None:
    np.testing.assert_array_equal(encode("Hello, world!"), encoder.encode("Hello, world!"))
    np.testing.assert_array_equal(encode("Hi", TextConfig(max_text_len=8)), encoder.encode("hi"))


def test_unknown_characters_is_openseq2seqs_strict_view(encoder: TextEncoder) -> None:
    assert encoder.unknown_characters("Hello \u00e9") == []
    assert encoder.unknown_characters("na\u00efve \u2014") == [(2, "\u00ef"), (6, "\u2014")]


def test_pad_batch_pads_ragged_sequences(encoder: TextEncoder) -> None:
    items = [encoder.encode("a" * 5), encoder.encode("a" * 20), encoder.encode("b")]
    ids, lengths = pad_batch(items)
    assert ids.dtype == np.int64 and lengths.dtype == np.int64
    assert ids.shape == (3, 24)
    np.testing.assert_array_equal(lengths, [8, 24, 8])
    np.testing.assert_array_equal(ids[0, :8], items[0])
    assert (ids[0, 8:] == 0).all() and (ids[2, 8:] == 0).all()
    np.testing.assert_array_equal(ids[1], items[1])
    ids7, _ = pad_batch(items, pad_id=7)
    assert (ids7[0, 8:] == 7).all()


def test_pad_batch_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        pad_batch([])
    with pytest.raises(ValueError, match="item 1"):
        pad_batch([np.zeros(8, np.int64), np.zeros((2, 8), np.int64)])


def test_real_transcripts(shared_data, encoder: TextEncoder) -> None:
    """Every real LibriSpeech transcript encodes unchanged; of the 2046 M-AILABS texts only the '&' one fails."""
    transcripts = sorted((shared_data / "LibriSpeech").rglob("*.trans.txt"))
    assert transcripts
    for trans in transcripts:
        for line in iter_lines(trans):
            info = encoder.encode_with_info(line.text.split(" ", 1)[1])
            assert info.substitutions == ()
            assert info.text == info.text.lower()
    failures = []
    metadata = shared_data / "M-AILABS" / "full_metadata_dorothy_and_wizard_oz_2046rows.csv"
    count = 0
    for line in iter_lines(metadata):
        count += 1
        try:
            encoder.encode(line.text.split("|")[1])
        except UnmappableTextError as exc:
            failures.append((line.number, exc.unmappable))
    assert count == 2046
    assert len(failures) == 1
    number, unmappable = failures[0]
    assert number == 343 and [c for _, c in unmappable] == ["&"]


def test_text_errors_survive_pickling() -> None:
    """A cluster worker's text error reaches the driver whole (Ray pickles it)."""
    import pickle

    from trtgen.engine.phonemes import UnspeakableTextError

    for error in (UnmappableTextError("ab", [(0, "x")]), UnspeakableTextError("en-us", [(1, "y")]), UnspeakableTextError("en-us", (), ("hi",))):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
