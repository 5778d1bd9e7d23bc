"""Phoneme front end: espeak-ng's IPA through libespeak-ng, clause punctuation kept, the symbol table, and
text espeak-ng would not speak as written refused (labels must match the audio)."""

from __future__ import annotations

import dataclasses
import sys
import unicodedata

import pytest

from trtgen_export.train.sentences import SentenceSettings, generate_texts
from trtgen.engine import phonemes
from trtgen.engine.config import IPA_SYMBOLS, MODEL_PRESETS, TEXT_FRONTENDS, text_config_for
from trtgen.engine.phonemes import (
    SILENT_PUNCTUATION, EspeakPhonemizer, PhonemizerError, UnspeakableTextError, is_format_character, parse_phonemizer,
    remove_format_characters, unspeakable_characters,
)
from trtgen.engine.text import TextEncoder, TextError, is_spoken_symbol, last_spoken_index

PHONEMES = TEXT_FRONTENDS["espeak-ipa"]


@pytest.fixture(scope="module")
def phonemizer() -> EspeakPhonemizer:
    return EspeakPhonemizer("en-us")


def test_clause_punctuation_is_kept(phonemizer: EspeakPhonemizer) -> None:
    assert phonemizer.phonemize("Hello, world!") == "həlˈoʊ, wˈɜːld!"
    # Closing quotes after the punctuation do not hide it; the last clause has none.
    assert phonemizer.phonemize('He said "no." Then, nothing') == "hiː sˈɛd nˈoʊ. ðˈɛn, nˈʌθɪŋ"


def test_espeak_reads_numbers_and_abbreviations(phonemizer: EspeakPhonemizer) -> None:
    out = phonemizer.phonemize("Dr. Smith paid 1984 dollars.")
    assert out.startswith("dˈɑːktɚ")  # "doctor", as espeak-ng says it in the corpus
    assert "nˈaɪntiːn" in out and out.endswith(".")


def test_capitals_only_text_is_read_as_words(phonemizer: EspeakPhonemizer) -> None:
    """LibriSpeech writes transcripts in capitals; espeak-ng would spell "IT" and "US" as letters."""
    caps = "IT WAS US AND I SAID I'M THERE"
    assert phonemes.ordinary_case(caps) == "it was us and I said I'm there"
    assert phonemizer.phonemize(caps) == phonemizer.phonemize("It was us and I said I'm there")
    assert "ˌaɪtˈiː" in phonemizer.phonemize("IT was us")  # mixed case is left alone: an acronym stays one
    assert phonemes.ordinary_case("NASA is big") == "NASA is big" and phonemes.ordinary_case("123") == "123"
    # OpenSeq2Seq's generate.csv is lowercased: its pronoun i is read as the training sentences' I.
    assert phonemes.ordinary_case("i think i'm in it") == "I think I'm in it"
    assert phonemizer.phonemize("i said") == phonemizer.phonemize("I said")


def _phones(ipa: str) -> str:
    """The phones alone: no stress marks, clause punctuation or spaces."""
    return "".join(c for c in ipa if c not in "ˈˌ ,.;:!?")


def test_silent_punctuation_is_not_spoken(phonemizer: EspeakPhonemizer) -> None:
    plain = _phones(phonemizer.phonemize("seven eight"))
    for char in sorted(SILENT_PUNCTUATION):
        assert _phones(phonemizer.phonemize(f"seven{char} eight")) == plain, repr(char)  # after a word: closing marks
        if char not in ".!:":  # espeak-ng reads ".eight" "dot eight" (also "!", ":"); text rarely glues them to a word
            assert _phones(phonemizer.phonemize(f"seven {char}eight")) == plain, repr(char)  # before: opening marks


def test_refused_symbols_are_ones_espeak_reads_out_as_words(phonemizer: EspeakPhonemizer, monkeypatch) -> None:
    refused = "#$%&*+/=@\\~\u00a9\u20ac\u00a3\u00a5\u00b0\u00b1\u00d7\u00f7\u00a7\u00b6\u00b2\u00bd\u00b5"
    assert [char for _, char in unspeakable_characters(f"a {' '.join(refused)} b", "en-us")] == list(refused)
    plain = _phones(phonemizer.phonemize("seven eight"))
    monkeypatch.setattr(phonemes, "unspeakable_characters", lambda text, voice: [])  # what espeak-ng does unchecked
    for char in refused:
        assert len(_phones(phonemizer.phonemize(f"seven {char} eight"))) > len(plain) + 1, repr(char)


def test_latin_letters_kept_are_read_within_words(phonemizer: EspeakPhonemizer) -> None:
    kept = [chr(c) for c in range(0x41, 0x250) if unicodedata.category(chr(c)).startswith("L") and not unspeakable_characters(chr(c), "en-us")]
    assert len(kept) > 150 and "\u00e9" in kept and "\u0141" in kept and "\u0218" not in kept  # é, Ł kept; Ș spelled "letter 218"
    for char in kept:
        word = f"{char}aba" if char.isupper() else f"a{char}ba"
        out = phonemizer.phonemize(word)
        assert " " not in out and "ɾɚ" not in out, (char, out)  # one word, never "letter ..."
    assert phonemizer.phonemize("caf\u00e9 na\u00efve \u0141\u00f3d\u017a fa\u00e7ade") == "kæfˈeɪ naɪˈiːv lˈɑːdz fəsˈɑːd"


def test_other_scripts_emoji_and_language_switches_are_refused(phonemizer: EspeakPhonemizer, monkeypatch) -> None:
    with pytest.raises(UnspeakableTextError, match=r"2 character\(s\) the en-us voice would not speak as written") as caught:
        phonemizer.phonemize("Hello \u4e16\u754c friend.")
    assert caught.value.characters == ((6, "\u4e16"), (7, "\u754c"))
    with pytest.raises(UnspeakableTextError) as caught:
        TextEncoder(PHONEMES).encode("\u4f60\u597d\u4e16\u754c \U0001F600\U0001F389")
    assert [char for _, char in caught.value.characters] == list("\u4f60\u597d\u4e16\u754c\U0001F600\U0001F389")
    assert isinstance(caught.value, TextError)  # a rejected row, not a failed run
    assert unspeakable_characters("\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!", "ru") == []
    assert [c for _, c in unspeakable_characters("\u041f\u0440\u0438 \u0394", "en-us")] == ["\u041f", "\u0440", "\u0438", "\u0394"]
    # espeak-ng's own language switch, the check behind the character check: it reads Hindi in its hi voice.
    monkeypatch.setattr(phonemes, "unspeakable_characters", lambda text, voice: [])
    with pytest.raises(UnspeakableTextError, match="switched to language hi") as caught:
        phonemizer.phonemize("Hello \u0928\u092e\u0938\u094d\u0924\u0947 friend")
    assert caught.value.switches == ("hi",)


def test_control_characters_are_refused_not_read_as_spaces(phonemizer: EspeakPhonemizer) -> None:
    """espeak-ng would read "a\x01b" as "a b" while the label kept the control character: refused, as the
    letter front end refuses it; white-space controls (tab, form feed) stay white space."""
    for control in ("\x00", "\x01", "\x08", "\x1b", "\x7f"):
        with pytest.raises(UnspeakableTextError):
            TextEncoder(PHONEMES).encode(f"one{control}two")
    assert TextEncoder(PHONEMES).encode_with_info("one\ttwo\x0cthree").spoken == "one two three"


def test_nothing_to_speak(phonemizer: EspeakPhonemizer) -> None:
    assert phonemizer.phonemize("   \t ") == ""
    with pytest.raises(TextError, match="nothing to speak"):
        TextEncoder(PHONEMES).encode("...")
    with pytest.raises(TextError, match="nothing to speak"):
        TextEncoder(PHONEMES).encode("\u200b\ufeff\u202e")  # only invisible characters


@pytest.mark.parametrize(
    "text, cleaned",
    [("foo\u200bbar", "foobar"), ("co\u00adoperate", "cooperate"), ("\ufeffHello", "Hello"), ("a\u202eb", "ab"),
     ("\u200eSeven\u2066 eight\u2069\u200f, nine\U000e0041.", "Seven eight, nine.")],
)
def test_format_characters_are_deleted_before_espeak_reads_the_text(
    phonemizer: EspeakPhonemizer, text: str, cleaned: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The IPA the model reads is that of the cleaned text, and so is the label: espeak-ng, left alone,
    reads a zero-width space or a bidi override as a word break that the label would not show."""
    encoder = TextEncoder(PHONEMES)
    info, expected = encoder.encode_with_info(text), encoder.encode_with_info(cleaned)
    assert info.spoken == cleaned and not any(is_format_character(c) for c in info.spoken)
    assert info.text == expected.text and (info.ids == expected.ids).all()
    removed = {c: text.count(c) for c in text if unicodedata.category(c) == "Cf"}
    assert {(s.original, s.replacement): s.count for s in info.substitutions} == {(c, ""): n for c, n in removed.items()}
    assert unspeakable_characters(text, "en-us") == []  # deleted, not refused
    monkeypatch.setattr(phonemes, "remove_format_characters", lambda raw: (raw, {}))  # what espeak-ng reads unchecked
    if text in ("foo\u200bbar", "a\u202eb"):
        assert phonemizer.phonemize(text) != expected.text


def test_every_format_character_is_deleted(phonemizer: EspeakPhonemizer) -> None:
    characters = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
    assert len(characters) > 150 and all(is_format_character(c) for c in characters)
    assert remove_format_characters("".join(f"a{c}" for c in characters)) == ("a" * len(characters), {c: 1 for c in characters})
    assert remove_format_characters("plain text") == ("plain text", {}) and not is_format_character("a")
    plain = phonemizer.phonemize("seveneight")
    for char in characters:
        assert phonemizer.phonemize(f"seven{char}eight") == plain, f"U+{ord(char):04X}"


def test_encoder_turns_text_into_ipa_ids() -> None:
    encoded = TextEncoder(PHONEMES).encode_with_info("Thank you, Mr. Wood!")
    # espeak-ng ends a clause at "Mr." before a capital (and pauses there when it speaks): so does the IPA.
    assert encoded.text == "θˈæŋk juː, mˈɪstɚ. wˈʊd!"
    ids = encoded.ids
    assert ids[0] == PHONEMES.bos_id and ids[len(encoded.text) + 1] == PHONEMES.eos_id
    assert "".join(PHONEMES.symbols[i] for i in ids[1 : len(encoded.text) + 1]) == encoded.text
    # The attention check's last spoken symbol is the final phone, not the '!'.
    assert PHONEMES.symbols[ids[last_spoken_index(ids, PHONEMES)]] == "d"
    # ... and not a length mark: "three" ends on the phone i, the mark after it is not a sound of its own.
    three = TextEncoder(PHONEMES).encode("Three.")
    assert [PHONEMES.symbols[i] for i in three[1:8]] == ["θ", "ɹ", "ˈ", "i", "ː", ".", "</s>"]
    end = last_spoken_index(three, PHONEMES)
    assert PHONEMES.symbols[three[end]] == "i" and PHONEMES.symbols[three[end + 1]] == "ː"
    assert [s for s in "aˈːɪ,\u0303" if is_spoken_symbol(s)] == ["a", "ɪ"]


def test_table_covers_the_training_corpus(phonemizer: EspeakPhonemizer) -> None:
    """Every symbol espeak-ng writes for the corpus sentences has an id (none is rejected in training)."""
    seen = set()
    for text in generate_texts(SentenceSettings()):
        seen.update(phonemizer.phonemize(text))
    assert seen <= set(IPA_SYMBOLS), sorted(seen - set(IPA_SYMBOLS))
    assert len(seen) > 40  # a real phone inventory, not a handful of symbols


def test_unknown_voice_and_phonemizer_are_named() -> None:
    with pytest.raises(PhonemizerError, match="no voice 'xx-nonexistent'"):
        EspeakPhonemizer("xx-nonexistent").phonemize("hello")
    with pytest.raises(PhonemizerError, match="unknown phonemizer 'festival:en'"):
        parse_phonemizer("festival:en")
    assert parse_phonemizer("espeak-ng:en-gb") == "en-gb"


def test_missing_library_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRTGEN_ESPEAK_LIBRARY", "/nonexistent/libespeak-ng.so.1")
    with pytest.raises(PhonemizerError, match="apt install espeak-ng"):
        phonemes._load_library()


def test_model_presets_carry_their_table() -> None:
    config = MODEL_PRESETS["voice-ipa"]
    assert text_config_for(config) is PHONEMES and config.num_symbols == len(IPA_SYMBOLS)
    assert text_config_for(MODEL_PRESETS["voice"]).phonemizer == ""
    with pytest.raises(ValueError, match="num_symbols must be 82"):
        dataclasses.replace(config, num_symbols=94).validate()


def test_a_phoneme_checkpoint_exports_and_speaks(tmp_path) -> None:
    """A user's JSON config naming the phoneme table: checkpoint -> trtgen export -> card -> generate."""
    pytest.importorskip("tensorflow")
    import json

    import soundfile as sf
    from typer.testing import CliRunner

    from trtgen_export.checkpoint import write_checkpoint
    from trtgen_export.variables import random_weights
    from trtgen.engine.artifact import load_model
    from trtgen.cli import app
    from trtgen.engine.config import to_dict

    config = dataclasses.replace(MODEL_PRESETS["small"], name="small-ipa", text_frontend="espeak-ipa", num_symbols=len(IPA_SYMBOLS))
    config_path = tmp_path / "small-ipa.json"
    config_path.write_text(json.dumps(to_dict(config)), encoding="utf-8")
    write_checkpoint(random_weights(config, seed=0, stop_never_fires=False), tmp_path / "run" / "model.ckpt-7")
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(tmp_path / "run"), "--config", str(config_path), "--out", str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    card = load_model(tmp_path / "model").card
    assert card.text == PHONEMES and card.model == config
    assert card.source["phonemizer"].startswith("espeak-ng:en-us (espeak-ng 1.")
    # The demo's generate path reads the card's phoneme table (random weights: sound, not words).
    result = runner.invoke(app, ["demo", "--model", str(tmp_path / "model"), "--out", str(tmp_path / "demo"), "--sentences", "1"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "demo" / "synthetic" / "dropout0.5" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 4
    audio, rate = sf.read(tmp_path / "demo" / "synthetic" / "dropout0.5" / records[0]["audio"])
    assert rate == 16000 and len(audio) > 0
