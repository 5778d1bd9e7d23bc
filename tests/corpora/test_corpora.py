"""Readers on the real samples in ../shared/data and on generated trees carrying every quirk they must survive."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from trtgen.corpora.infer_list import csv_row_id, iter_infer_list, read_infer_list
from trtgen.corpora.librispeech import (
    LibriSpeechError,
    find_splits,
    read_librispeech,
    read_librivox_csv,
)
from trtgen.corpora.mailabs import DEFAULT_BOOKS, MailabsError, find_books, read_mailabs, read_metadata
from trtgen.corpora.synthetic import SyntheticError, read_copy, read_synthetic
from trtgen.errors import EXIT_USAGE, UsageError
from trtgen.fileio import atomic_path, atomic_write, iter_jsonl, iter_lines, write_jsonl

BOOK = "en_US/by_book/female/judy_bieber/dorothy_and_wizard_oz"


def write_wav(path: Path, seconds: float = 0.05, sample_rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * sample_rate))
    sf.write(path, (0.1 * np.sin(np.arange(n) * 0.05)).astype(np.float32), sample_rate, subtype="PCM_16")
    return path


# ---------------------------------------------------------------------------------------------
# fileio


def test_iter_lines_quirks(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"\xef\xbb\xbffirst\r\n\n   \nsecond \xe2\x80\xa8 still\nbad \xff byte\nlast")
    lines = list(iter_lines(path))
    assert [(l.number, l.text) for l in lines[:2]] == [(1, "first"), (4, "second \u2028 still")]
    assert lines[2].number == 5 and lines[2].error and "UTF-8" in lines[2].error
    assert (lines[3].number, lines[3].text, lines[3].error) == (6, "last", None)
    assert [l.number for l in iter_lines(path, skip_blank=False)] == [1, 2, 3, 4, 5, 6]


def test_atomic_write_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
    with atomic_write(target) as handle:
        handle.write("new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_atomic_path_keeps_suffix_for_soundfile(tmp_path: Path) -> None:
    target = tmp_path / "a.wav"
    with atomic_path(target) as temporary:
        assert temporary.suffix == ".wav" and temporary.parent == tmp_path
        sf.write(temporary, np.zeros(160, np.float32), 16000, subtype="PCM_16")
    assert sf.info(target).frames == 160
    assert os.listdir(tmp_path) == ["a.wav"]


def test_write_jsonl_gzip_is_deterministic_and_reads_back(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "caf\u00e9"}, {"id": "b", "n": 2}]
    first, second = tmp_path / "one.jsonl.gz", tmp_path / "two.jsonl.gz"
    assert write_jsonl(first, rows) == 2
    write_jsonl(second, rows)
    assert gzip.decompress(first.read_bytes()) == gzip.decompress(second.read_bytes())
    assert first.read_bytes()[4:8] == b"\x00\x00\x00\x00"  # no time stamp in the gzip header
    assert [j.value for j in iter_jsonl(first)] == rows
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n[1]\n{oops\n')
    items = list(iter_jsonl(bad))
    assert items[0].value == {"id": 1}
    assert items[1].number == 2 and "JSON object" in items[1].error
    assert items[2].number == 3 and "invalid JSON" in items[2].error


# ---------------------------------------------------------------------------------------------
# M-AILABS


def test_mailabs_real_sample_default_books(shared_data: Path) -> None:
    corpus = read_mailabs(shared_data / "M-AILABS")
    assert [b.relpath for b in corpus.books] == [BOOK]
    assert len(corpus.missing_books) == 13 and set(corpus.missing_books) == set(DEFAULT_BOOKS) - {BOOK}
    assert [c.id for c in corpus.clips] == [
        "dorothy_and_wizard_oz_01_f000001", "dorothy_and_wizard_oz_01_f000060", "dorothy_and_wizard_oz_02_f000105",
    ]
    clip = corpus.clips[1]
    assert clip.text == "The boy nodded." and clip.speaker == "judy_bieber" and clip.line == 2
    assert clip.relpath == f"{BOOK}/wavs/dorothy_and_wizard_oz_01_f000060.wav"
    assert clip.openseq2seq_path == f"{BOOK}/wavs/dorothy_and_wizard_oz_01_f000060"
    assert (corpus.root / clip.relpath).is_file() and clip.audio.is_file()
    assert corpus.rejects == []  # the trailing blank line of the real file is not a row
    # A language directory is accepted as the root too.
    again = read_mailabs(shared_data / "M-AILABS" / "en_US", "judy_bieber")
    assert again.root == (shared_data / "M-AILABS").absolute() and len(again.clips) == 3


def test_mailabs_real_metadata_with_missing_wavs(shared_data: Path, tmp_path: Path) -> None:
    """The real 2046-row metadata.csv, with only every 10th clip's WAV present, as in the real corpus' gaps."""
    rows = (shared_data / "M-AILABS" / "full_metadata_dorothy_and_wizard_oz_2046rows.csv").read_bytes()
    book = tmp_path / "M-AILABS" / BOOK
    book.mkdir(parents=True)
    (book / "metadata.csv").write_bytes(rows)
    ids = [line.split(b"|", 1)[0].decode() for line in rows.splitlines() if line.strip()]
    present = ids[::10]
    for clip_id in present:
        write_wav(book / "wavs" / f"{clip_id}.wav", 0.01)
    corpus = read_mailabs(tmp_path / "M-AILABS", "dorothy_and_wizard_oz")
    assert [c.id for c in corpus.clips] == present
    assert len(corpus.rejects) == 2046 - len(present)
    assert corpus.missing_clips == {"judy_bieber": 2046 - len(present)}
    reject = corpus.rejects[0]
    assert reject.line == 2 and reject.item == ids[1] and reject.reason.startswith("audio file missing")
    assert reject.source == str(book / "metadata.csv")
    assert corpus.clips[34].line == 341  # line numbers are physical lines of the file


def test_mailabs_metadata_quirks(tmp_path: Path) -> None:
    root = tmp_path / "M"
    book = root / "en_US/by_book/male/elliot_miller/hunters_space"
    for name in ("a1", "a2", "a3", "a4"):
        write_wav(book / "wavs" / f"{name}.wav")
    (book / "metadata.csv").write_bytes(
        "\ufeffa1|One.|One.\r\n"
        "\r\n"
        "a2|Two|fields\n"
        "only two|fields\n"
        "a1|Again.|Again.\n"
        "a9|No wav.|No wav.\n"
        "a|b|c|d\n".encode()
        + b"a3|bad \xff|x\n"
        + "a4|Last, no newline.|Last, no newline.".encode()
    )
    clips, rejects = read_metadata(find_books(root, "hunters_space")[0][0])
    assert [(c.id, c.line) for c in clips] == [("a1", 1), ("a2", 3), ("a4", 9)]
    assert clips[0].text == "One." and clips[2].normalized_text == "Last, no newline."
    reasons = {r.line: r.reason for r in rejects}
    assert set(reasons) == {4, 5, 6, 7, 8}
    assert "found 2" in reasons[4]
    assert "duplicate clip id (first at line 1)" == reasons[5]
    assert reasons[6] == "audio file missing: wavs/a9.wav"
    assert "found 4" in reasons[7]
    assert "UTF-8" in reasons[8]
    assert all(r.source.endswith("metadata.csv") for r in rejects)
    assert str(rejects[0]).startswith(f"{book / 'metadata.csv'}:4:")


def test_mailabs_book_selection(tmp_path: Path) -> None:
    root = tmp_path / "M"
    for relpath in ("en_US/by_book/male/elliot_miller/hunters_space", "en_US/by_book/male/elliot_miller/poisoned_pen",
                    "en_US/by_book/female/mary_ann/northandsouth", "en_US/by_book/mix/mixed_book"):
        (root / relpath).mkdir(parents=True)
        (root / relpath / "metadata.csv").write_text("")
    names = lambda books: sorted(b.relpath for b in books)  # noqa: E731
    assert len(find_books(root, "all")[0]) == 4
    mix = [b for b in find_books(root, "all")[0] if b.name == "mixed_book"][0]
    assert (mix.speaker, mix.gender) == ("mix", "mix")
    chosen, missing = find_books(root, "default")
    assert len(chosen) == 3 and len(missing) == 11
    chosen, missing = find_books(root, "elliot_miller,mary_ann/northandsouth,nope")
    assert names(chosen) == [
        "en_US/by_book/female/mary_ann/northandsouth",
        "en_US/by_book/male/elliot_miller/hunters_space", "en_US/by_book/male/elliot_miller/poisoned_pen",
    ]
    assert missing == ["nope"]
    with pytest.raises(MailabsError, match="none of books"):
        find_books(root, "nope")
    with pytest.raises(MailabsError, match="no <language>/by_book"):
        find_books(tmp_path, "all")
    with pytest.raises(MailabsError, match="no usable style clip"):
        read_mailabs(root, "all")  # every metadata.csv is empty


# ---------------------------------------------------------------------------------------------
# LibriSpeech


def test_librispeech_real_tree(shared_data: Path) -> None:
    root = shared_data / "LibriSpeech"
    with pytest.raises(LibriSpeechError, match=r"splits there: dev-clean, test-clean"):
        read_librispeech([root])  # the default is OpenSeq2Seq's training splits
    corpus = read_librispeech([root], "all")
    assert corpus.rejects == []
    assert [u.id for u in corpus.utterances] == [
        "1272-128104-0000", "2412-153948-0000",
        "1089-134686-0000", "1089-134686-0001", "1089-134691-0000", "1089-134691-0001", "1995-1837-0001",
    ]
    wav = corpus.utterances[-1]
    assert wav.audio is not None and wav.audio.suffix == ".wav" and wav.audio.is_file()
    assert (wav.speaker, wav.chapter, wav.split) == ("1995", "1837", "test-clean")
    first = corpus.utterances[0]
    assert first.text == "MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES AND WE ARE GLAD TO WELCOME HIS GOSPEL"
    assert first.audio.suffix == ".flac" and first.line == 1
    chosen, missing = find_splits(root, "test-clean,train-clean-100")
    assert [c.name for c in chosen] == ["test-clean"] and missing == ["train-clean-100"]
    assert len(read_librispeech([root / "test-clean"]).utterances) == 5  # a split directory itself


def test_librispeech_tree_quirks(tmp_path: Path) -> None:
    chapter = tmp_path / "LibriSpeech" / "train-clean-100" / "19" / "198"
    for n in range(6):
        write_wav(chapter / f"19-198-{n:04d}.flac", 0.01)
    (chapter / "19-198.trans.txt").write_bytes(
        b"\xef\xbb\xbf19-198-0000 NORTHANGER ABBEY\r\n"
        b"\n"
        b"19-198-0001\n"
        b"20-198-0002 WRONG CHAPTER\n"
        b"19-198-0003 FINE  \n"
        b"19-198-0009 NO AUDIO\n"
        b"19198 NOT AN ID\n"
        b"19-198-0005 LAST LINE WITHOUT NEWLINE"
    )
    # Speakers sort numerically (a string sort would put 103 before 19).
    write_wav(tmp_path / "LibriSpeech/train-clean-100/103/1240/103-1240-0000.flac", 0.01)
    (tmp_path / "LibriSpeech/train-clean-100/103/1240/103-1240.trans.txt").write_text("103-1240-0000 CHAPTER ONE")
    corpus = read_librispeech([tmp_path])  # parent of LibriSpeech/, default splits
    assert corpus.missing_splits == ["train-clean-360", "train-other-500"]
    assert [(u.id, u.text, u.line) for u in corpus.utterances] == [
        ("19-198-0000", "NORTHANGER ABBEY", 1), ("19-198-0003", "FINE", 5), ("19-198-0005", "LAST LINE WITHOUT NEWLINE", 8),
        ("103-1240-0000", "CHAPTER ONE", 1),
    ]
    reasons = {r.line: r.reason for r in corpus.rejects}
    assert set(reasons) == {3, 4, 6, 7}
    assert reasons[3] == "no transcript after the utterance id"
    assert "does not belong to 19-198.trans.txt" in reasons[4]
    assert reasons[6].startswith("audio file missing: 19-198-0009.flac")
    assert "not a LibriSpeech utterance id" in reasons[7]


def test_librivox_csv_real_sample(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "librivox-dev-clean-sample.csv"
    utterances, rejects = read_librivox_csv(path)
    assert rejects == [] and len(utterances) == 50
    first = utterances[0]
    assert first.id == "777-126732-0019" and (first.speaker, first.chapter) == ("777", "126732")
    assert first.filesize == 316218
    assert first.text == "it was karl yundt who was heard implacable to his last breath"
    # The #FILE_PATH_HERE# placeholder resolves against the CSV's directory or the given audio root.
    assert first.audio == shared_data / "dev-clean/777/126732/777-126732-0019.wav"
    again, _ = read_librivox_csv(path, audio_root=tmp_path)
    assert again[0].audio == tmp_path / "dev-clean/777/126732/777-126732-0019.wav"
    assert first.line == 2


def test_librivox_csv_quirks(tmp_path: Path) -> None:
    path = tmp_path / "librivox-train-clean-100.csv"
    path.write_bytes(
        "\ufeffwav_filename,wav_filesize,transcript\r\n"
        "/data/train-clean-100-wav/19-198-0000.wav,100,northanger abbey\r\n"
        "\n"
        "/data/train-clean-100-wav/19-198-0001.wav,big,bad size\n"
        "/data/train-clean-100-wav/19-198-0002.wav,100\n"
        '/data/train-clean-100-wav/19-198-0003.wav,100,"quoted, with comma"\n'
        "/data/train-clean-100-wav/19-198-0004.wav,100,   \n"
        "relative/custom_name.wav,7,no newline at the end".encode()
    )
    utterances, rejects = read_librivox_csv(path)
    assert [(u.id, u.line) for u in utterances] == [("19-198-0000", 2), ("19-198-0003", 6), ("custom_name", 8)]
    assert utterances[1].text == "quoted, with comma"
    assert utterances[2].speaker is None and utterances[2].audio == tmp_path / "relative/custom_name.wav"
    assert {r.line: r.reason for r in rejects} == {
        4: "wav_filesize 'big' is not an integer",
        5: "expected 3 comma-separated fields, found 2",
        7: "empty transcript",
    }
    bad = tmp_path / "bad.csv"
    bad.write_text("path,size,text\na,1,b\n")
    with pytest.raises(LibriSpeechError, match=r"bad.csv:1: expected the header wav_filename,wav_filesize,transcript"):
        read_librivox_csv(bad)
    # The same utterance twice across sources: the later one is rejected.
    corpus = read_librispeech([path, path])
    assert len(corpus.utterances) == 3
    assert sum("duplicate utterance id" in r.reason for r in corpus.rejects) == 3
    with pytest.raises(LibriSpeechError, match="does not exist"):
        read_librispeech([tmp_path / "nowhere.csv"])


# ---------------------------------------------------------------------------------------------
# Infer lists


def _style_tree(root: Path) -> None:
    write_wav(root / BOOK / "wavs" / "c1.wav")
    write_wav(root / BOOK / "wavs" / "c2.wav")
    write_wav(root / "wavs" / "loose.wav")


def test_generate_csv_wavs_rule_and_row_ids(tmp_path: Path) -> None:
    root = tmp_path / "mailabs"
    _style_tree(root)
    listing = tmp_path / "generate.csv"
    listing.write_text(
        f"{BOOK}/wavs/c1|-1|first text\n"
        "\n"
        "loose|-1|second text\n"
        "missing|-1|third\n"
        "too|many|fields|here\n"
        f"{BOOK}/wavs/c2|-1|"
    )
    rows, rejects = read_infer_list(listing, root)
    assert [(r.index, r.id, r.line) for r in rows] == [(0, "row000000", 1), (1, "row000001", 3)]
    assert rows[0].style == root / BOOK / "wavs/c1.wav"  # contains "wavs": <root>/<col1>.wav
    assert rows[1].style == root / "wavs/loose.wav"  # otherwise: <root>/wavs/<col1>.wav
    assert rows[0].text == "first text" and rows[0].speaker is None
    assert {r.line: r.reason for r in rejects} == {
        4: f"style clip not found: {root / 'wavs/missing.wav'}",
        5: "expected 3 '|'-separated fields (style|ignored|text), found 4",
        6: 'missing or empty "text"',
    }
    assert csv_row_id(123456) == "row123456"
    rows, rejects = read_infer_list(listing, root, check_style=False)
    assert [r.id for r in rows] == ["row000000", "row000001", "row000002"]


def test_infer_jsonl_rows_and_rejects(tmp_path: Path) -> None:
    root = tmp_path / "mailabs"
    _style_tree(root)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "prepare.json").write_text(json.dumps({"mailabs_root": str(root)}))
    good = {"id": "19-198-0000", "speaker": "19", "chapter": "198", "text": "NORTHANGER ABBEY",
            "style": f"{BOOK}/wavs/c1.wav", "style_speaker": "judy_bieber", "book": "dorothy_and_wizard_oz"}
    lines = [
        json.dumps(good),
        json.dumps({**good, "id": "abs", "style": str(root / BOOK / "wavs/c2.wav")}),
        json.dumps({**good, "id": "19-198-0000"}),
        json.dumps({**good, "id": "../escape"}),
        json.dumps({**good, "id": "x", "text": ""}),
        "{broken",
        json.dumps({**good, "id": "y", "style": "nope.wav"}),
    ]
    (lists / "infer.jsonl").write_text("\n".join(lines))
    rows, rejects = read_infer_list(lists / "infer.jsonl")  # style root from prepare.json
    assert [(r.index, r.id) for r in rows] == [(0, "19-198-0000"), (1, "abs")]
    assert rows[0].style == root / BOOK / "wavs/c1.wav" and rows[0].style_speaker == "judy_bieber"
    assert (rows[0].speaker, rows[0].chapter, rows[0].book) == ("19", "198", "dorothy_and_wizard_oz")
    reasons = {r.line: r.reason for r in rejects}
    assert reasons[3] == "duplicate id (first at line 1)"
    assert "cannot be a file name" in reasons[4]
    assert reasons[5] == 'missing or empty "text"'
    assert reasons[6].startswith("invalid JSON")
    assert reasons[7].startswith("style clip not found")
    with pytest.raises(FileNotFoundError):
        read_infer_list(lists / "absent.jsonl")


def test_an_id_with_invisible_characters_is_rejected(tmp_path: Path) -> None:
    """A zero-width space or a bidi mark in an id makes a file name that looks like another one."""
    rows = [{"id": utterance_id, "text": "Hello.", "style": "x.wav"} for utterance_id in ("a\u200bb", "\u202eab", "ab")]
    write_jsonl(tmp_path / "infer.jsonl", rows)
    found, rejects = read_infer_list(tmp_path / "infer.jsonl", check_style=False)
    assert [r.id for r in found] == ["ab"]
    assert [(r.line, r.reason) for r in rejects] == [
        (1, "id 'a\\u200bb' cannot be a file name: holds invisible format characters (U+200B)"),
        (2, "id '\\u202eab' cannot be a file name: holds invisible format characters (U+202E)"),
    ]


_ROW = json.dumps({"id": "19-198-0000", "text": "Caf\u00e9 au lait.", "style": "x.wav"}, ensure_ascii=False) + "\n"
_CSV_ROWS = "wavs/c1|-1|caf\u00e9 au lait\nwavs/c2|-1|second\nwavs/c3|-1|na\u00efve\n"


@pytest.mark.parametrize(
    "name, data, says",
    [
        ("infer.jsonl", codecs.BOM_UTF16_LE + _ROW.encode("utf-16-le"),
         "is UTF-16 (little-endian byte-order mark), not UTF-8: convert it, e.g. iconv -f UTF-16 -t UTF-8"),
        ("infer.jsonl", codecs.BOM_UTF16_BE + _ROW.encode("utf-16-be"), "is UTF-16 (big-endian byte-order mark), not UTF-8"),
        ("infer.jsonl", codecs.BOM_UTF32_LE + _ROW.encode("utf-32-le"), "is UTF-32 (little-endian byte-order mark), not UTF-8"),
        ("generate.csv", codecs.BOM_UTF32_BE + _CSV_ROWS.encode("utf-32-be"), "is UTF-32 (big-endian byte-order mark)"),
        ("generate.csv", _CSV_ROWS.encode("utf-16-le"),
         "holds NUL bytes and looks like UTF-16LE without a byte-order mark; convert it, e.g. iconv -f UTF-16LE"),
        ("infer.jsonl", _ROW.encode("utf-16-be"), "looks like UTF-16BE without a byte-order mark"),
        ("generate.csv", _CSV_ROWS.encode("latin-1"),
         "is not UTF-8: line 1 has byte 0xE9 (Latin-1 or Windows-1252?); convert it, e.g. iconv -f WINDOWS-1252 -t UTF-8"),
        ("infer.jsonl", b"\n" * 16 + _ROW.encode("cp1252"), "is not UTF-8: line 17 has byte 0xE9"),
        ("generate.csv", b"wavs/c1|-1|fine\nwavs/c2|-1|a\x00b\n", "is not UTF-8 text: line 2 holds a NUL byte"),
        ("infer.jsonl.gz", gzip.compress(codecs.BOM_UTF16_LE + _ROW.encode("utf-16-le")), "is UTF-16 (little-endian byte-order mark)"),
        ("infer.jsonl", b"", "holds no rows: it is empty"),
        ("generate.csv", b"\n  \r\n\t\n\n", "holds no rows: every line is blank"),
        ("infer.jsonl", codecs.BOM_UTF8 + b"\n", "holds no rows"),
    ],
    ids=["utf16le-bom", "utf16be-bom", "utf32le-bom", "utf32be-bom", "utf16le", "utf16be", "latin1", "latin1-line17", "nul",
         "gzip-utf16", "empty", "blank", "utf8-bom-blank"],
)
def test_a_list_not_in_utf8_or_without_rows_is_refused_whole(tmp_path: Path, name: str, data: bytes, says: str) -> None:
    """One line naming the file and the cure (exit 2), never a garbled reject per row or raw NUL bytes."""
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(UsageError) as caught:
        read_infer_list(path, check_style=False)
    message = str(caught.value)
    assert message.startswith(f"list {path} ") and says in message
    assert message.isprintable(), "no NUL, control or invisible character in the message"
    assert caught.value.exit_code == EXIT_USAGE
    with pytest.raises(UsageError):
        iter_infer_list(path, check_style=False)  # refused as it is called, before any row is asked for


def test_a_list_name_with_control_characters_is_shown_escaped(tmp_path: Path) -> None:
    path = tmp_path / "bad\x1b[31mname\u200b.jsonl"
    path.write_bytes(codecs.BOM_UTF16_LE + _ROW.encode("utf-16-le"))
    with pytest.raises(UsageError) as caught:
        read_infer_list(path, check_style=False)
    assert "bad\\x1b[31mname\\u200b.jsonl" in str(caught.value) and str(caught.value).isprintable()


def test_a_utf8_list_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "infer.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + _ROW.encode() + b"\n" + _ROW.replace("0000", "0001").encode())
    rows, rejects = read_infer_list(path, check_style=False)
    assert rejects == []
    assert [(r.id, r.text, r.line) for r in rows] == [("19-198-0000", "Caf\u00e9 au lait.", 1), ("19-198-0001", "Caf\u00e9 au lait.", 3)]
    gzipped = tmp_path / "infer.jsonl.gz"
    gzipped.write_bytes(gzip.compress(path.read_bytes()))
    assert [r.id for r in read_infer_list(gzipped, check_style=False)[0]] == ["19-198-0000", "19-198-0001"]


def test_the_encoding_check_reads_a_list_larger_than_one_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Characters cut by a block's end are joined to the next block; a bad byte's line counts across blocks."""
    from trtgen.corpora import infer_list

    monkeypatch.setattr(infer_list, "_BLOCK_BYTES", 7)
    path = tmp_path / "generate.csv"
    path.write_bytes(_CSV_ROWS.encode() * 3)
    assert len(read_infer_list(path, check_style=False)[0]) == 9
    path.write_bytes(_CSV_ROWS.encode() * 3 + "wavs/c9|-1|na\u00efve\n".encode("latin-1"))
    with pytest.raises(UsageError, match="line 10 has byte 0xEF"):
        read_infer_list(path, check_style=False)


# ---------------------------------------------------------------------------------------------
# Synthetic copies (trtgen generate's output)


def test_synthetic_copy_reader(tmp_path: Path) -> None:
    copy = tmp_path / "out" / "drop05"
    copy.mkdir(parents=True)
    base = {"text": "HI", "style": "s.wav", "copy": "drop05", "dropout": 0.5, "seed": 1, "frames": 10,
            "duration_s": 0.1, "stopped": True, "capped": False}

    def described(name: str, data: bytes) -> dict:
        """A record that describes the file ``name`` holding ``data`` (size and digest)."""
        return {"audio": name, "audio_bytes": len(data), "audio_sha256": hashlib.sha256(data).hexdigest()}

    (copy / "a-old.wav").write_bytes(b"new bytes over an old record")
    (copy / "a.wav").write_bytes(b"the current audio of a")
    # "a" is recorded twice; the record that describes its file wins, wherever it is read from.
    (copy / "records.shard-0-of-2.jsonl").write_text(
        json.dumps({**base, "id": "a", **described("a.wav", b"the current audio of a")}) + "\n"
        + json.dumps({**base, "id": "b", "audio": "/abs/b.wav"}) + "\n"
    )
    (copy / "records.shard-1-of-2.jsonl").write_text(
        json.dumps({**base, "id": "c", "audio": "c.wav", "frames": 1.5}) + "\n"
        + json.dumps({**base, "id": "a", **described("a-old.wav", b"what the old run wrote")}) + "\n"
        + json.dumps({**base, "id": "d", "audio": "d.wav", "stopped": "yes"}) + "\n"
        + json.dumps({**base, "id": "e", **described("e.wav", b"never written")}) + "\n"
    )
    (copy / "rejects.jsonl").write_text(json.dumps({"id": "z"}) + "\n")
    (copy / "settings.json").write_text(json.dumps({"sample_rate": 22050}))
    (tmp_path / "out" / "not_a_copy").mkdir()
    result = read_copy(copy)
    assert list(result.records) == ["a"] and result.records["a"].audio == "a.wav"
    assert [r.audio for r in result.superseded] == ["a-old.wav"]
    assert {k: v.problem for k, v in result.damaged.items()} == {"e": "missing"}
    assert result.sample_rate == 22050
    assert {(Path(r.source).name, r.line) for r in result.rejects} == {
        ("records.shard-0-of-2.jsonl", 2), ("records.shard-1-of-2.jsonl", 1), ("records.shard-1-of-2.jsonl", 3),
    }
    assert [c.name for c in read_synthetic(tmp_path / "out")] == ["drop05"]
    with pytest.raises(SyntheticError, match="copies not found"):
        read_synthetic(tmp_path / "out", ["drop03"])
