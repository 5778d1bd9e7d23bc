"""``trtgen generate`` on a list it cannot read as rows: one that is not UTF-8 (UTF-16 or UTF-32 from a
Windows editor, Latin-1) or holds no row is refused whole (exit 2) with one line naming the list and
the cure, before ``--out`` is touched; never a garbled reject per row or raw NUL bytes on the terminal.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trtgen.cli import app
from trtgen.commands.demo import demo_rows
from trtgen.errors import EXIT_USAGE
from trtgen.fileio import write_jsonl


def _utf8_list(tmp_path: Path) -> bytes:
    """The bytes of a one-sentence infer.jsonl for the shipped voice (four rows, one per shipped style)."""
    path = tmp_path / "utf8.jsonl"
    write_jsonl(path, demo_rows(1))
    return path.read_bytes()


def _generate(listing: Path, out: Path):
    return CliRunner().invoke(app, ["generate", "--list", str(listing), "--out", str(out), "--copies", "c:0.5:1", "--threads", "1"])


@pytest.mark.parametrize(
    "encode, says",
    [
        (lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"), "is UTF-16 (little-endian byte-order mark), not UTF-8: convert it"),
        (lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"), "is UTF-16 (big-endian byte-order mark), not UTF-8"),
        (lambda text: text.encode("utf-16-le"), "looks like UTF-16LE without a byte-order mark"),
        (lambda text: text.replace('"text":"', '"text":"Caf\u00e9 ', 1).encode("latin-1"),
         "is not UTF-8: line 1 has byte 0xE9 (Latin-1 or Windows-1252?)"),
    ],
    ids=["utf16le-bom", "utf16be-bom", "utf16le-no-bom", "latin1"],
)
def test_2_for_a_list_that_is_not_utf8_and_out_is_not_created(tmp_path: Path, encode, says: str) -> None:
    listing, out = tmp_path / "infer.jsonl", tmp_path / "out"
    listing.write_bytes(encode(_utf8_list(tmp_path).decode("utf-8")))
    result = _generate(listing, out)
    assert result.exit_code == EXIT_USAGE, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"trtgen generate: list {listing} ") and says in lines[0], result.stderr
    assert lines[0].isprintable(), "no NUL or other control character reaches the terminal"
    assert "Traceback" not in result.output
    assert not out.exists(), "a refused run must not touch --out"


@pytest.mark.parametrize("content, says", [(b"", "it is empty"), (b"\n  \r\n\t\n", "every line is blank")], ids=["empty", "blank"])
def test_2_for_a_list_without_rows_and_out_is_not_created(tmp_path: Path, content: bytes, says: str) -> None:
    listing, out = tmp_path / "infer.jsonl", tmp_path / "out"
    listing.write_bytes(content)
    result = _generate(listing, out)
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.stderr.strip().splitlines() == [f"trtgen generate: list {listing} holds no rows: {says}"]
    assert not out.exists(), "a refused run must not touch --out"


def test_a_utf8_list_with_a_byte_order_mark_is_generated(tmp_path: Path) -> None:
    listing, out = tmp_path / "infer.jsonl", tmp_path / "out"
    listing.write_bytes(codecs.BOM_UTF8 + _utf8_list(tmp_path))
    result = _generate(listing, out)
    assert result.exit_code == 0, result.output
    assert len(list((out / "c").glob("*.wav"))) == 4
