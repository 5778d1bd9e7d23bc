"""Labels stay true: whatever sequence of sharded, unsharded, interrupted and resumed runs and list edits
made a copy, every manifest row labels its file with the text that produced the file's bytes.

The oracle is the Python API: an utterance's WAV is a pure function of (model, text, style, dropout,
seed, id), so ``Voice.synthesize`` gives the bytes a row's text must have made. The shipped voice speaks
short sentences with OpenSeq2Seq's 4-iteration vocoder, to keep the many runs quick.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trtgen.cli import app
from trtgen.commands.generate import GenerateOptions, parse_copies, run_generate
from trtgen.commands.manifest_lines import nsr_normalize
from trtgen.commands.manifests import ManifestOptions, write_manifests
from trtgen.commands.writers import ListConflict, encode_wav
from trtgen.engine.shipped import shipped_styles
from trtgen.engine.synthesis import SynthesisOptions
from trtgen.engine.vocoder import griffin_lim_preset
from trtgen.engine.voice import Voice, VoiceSpec
from trtgen.errors import Interrupted
from trtgen.fileio import iter_jsonl, write_jsonl

COPIES = {"a": (0.5, 1), "b": (0.3, 2)}
COPIES_OPTION = ",".join(f"{name}:{rate}:{seed}" for name, (rate, seed) in COPIES.items())
SPEC = VoiceSpec(synthesis=SynthesisOptions(batch_size=4, vocoder=griffin_lim_preset("openseq2seq")))
WORDS = "red fox boat sails birds sing rain falls old clock green leaves we walk home now the small".split()
STYLES = list(shipped_styles().values())


@pytest.fixture(scope="module")
def oracle() -> "Oracle":
    return Oracle(Voice.load(SPEC))


@dataclass
class Oracle:
    """The bytes and label each (id, text, copy) must have, computed once through the Python API."""

    voice: Voice
    cache: dict[tuple[str, str, str, str], tuple[str, bytes]] = field(default_factory=dict)

    def expected(self, row: dict, copy: str) -> tuple[str, bytes]:
        key = (row["id"], row["text"], row["style"], copy)
        if key not in self.cache:
            dropout, seed = COPIES[copy]
            speech = self.voice.synthesize(row["text"], row["style"], dropout=dropout, seed=seed, utterance_id=row["id"])
            self.cache[key] = (nsr_normalize(speech.text), encode_wav(speech.audio, speech.sample_rate, "pcm16"))
        return self.cache[key]


def _manifest_rows(synthetic: Path, out: Path) -> dict[tuple[str, str], tuple[str, bytes]]:
    """(utterance id, copy) -> (label, file bytes) from the NeMo manifest, after checking that
    synthetic_data.csv labels every file it names (through each copy for a ``{}`` row) the same way."""
    result = write_manifests(synthetic, out, options=ManifestOptions(formats=("openseq2seq", "nemo")))
    rows = {}
    for line in iter_jsonl(result.files["nemo_synthetic"]):
        row = line.value
        rows[(row["utterance_id"], row["copy"])] = (row["text"], Path(row["audio_filepath"]).read_bytes())
    by_file = {(u, c): v for (u, c), v in rows.items()}
    with open(result.files["openseq2seq"], newline="") as handle:
        for entry in csv.DictReader(handle):
            paths = [entry["wav_filename"].format(c) for c in COPIES] if "{}" in entry["wav_filename"] else [entry["wav_filename"]]
            for path in paths:
                copy = Path(path).parent.name
                bytes_ = Path(path).read_bytes()
                matches = [k for k, (label, data) in by_file.items() if k[1] == copy and data == bytes_]
                assert matches and by_file[matches[0]][0] == entry["transcript"], f"synthetic_data.csv mislabels {path}"
    return rows


def _assert_true_labels(rows: dict[tuple[str, str], tuple[str, bytes]], history: dict[str, list[dict]], oracle: Oracle) -> None:
    """Every listed file's bytes are those some version of its row made, and its label is that version's."""
    for (utterance_id, copy), (label, data) in rows.items():
        made_by = [v for v in history[utterance_id] if oracle.expected(v, copy)[1] == data]
        assert made_by, f"{utterance_id} in {copy}: its bytes are no version of its row's"
        assert label == oracle.expected(made_by[-1], copy)[0], f"{utterance_id} in {copy}: label {label!r} is not what its audio says"


class Sequence_:
    """A list that changes and the runs that follow it, in one output directory."""

    def __init__(self, tmp_path: Path, naming: str) -> None:
        self.root = tmp_path
        self.out = tmp_path / "out"
        self.listing = tmp_path / "infer.jsonl"
        self.naming = naming
        self.rows: list[dict] = []
        self.history: dict[str, list[dict]] = {}
        self.runs = 0

    def set_rows(self, rows: list[dict]) -> None:
        self.rows = rows
        for row in rows:
            versions = self.history.setdefault(row["id"], [])
            if row not in versions:
                versions.append(dict(row))
        write_jsonl(self.listing, rows)

    def generate(self, *, shard: tuple[int, int] | None = None, limit: int | None = None, stop_after: int | None = None,
                 prune: bool = False, out: Path | None = None) -> None:
        calls = {"n": 0}

        def stop() -> str | None:
            calls["n"] += 1
            return "test" if stop_after is not None and calls["n"] > stop_after else None

        options = GenerateOptions(
            list_path=self.listing, out_dir=out or self.out, voice=SPEC, copies=parse_copies(COPIES_OPTION), shard=shard,
            limit=limit, resume=True, prune=prune, naming=self.naming,
        )
        try:
            run_generate(options, stop=stop)
        except Interrupted:
            pass


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4)))


@pytest.mark.parametrize("seed,naming", [(0, "id"), (1, "openseq2seq"), (2, "id"), (3, "openseq2seq")])
def test_random_sequences_of_runs_and_list_edits_never_mislabel(seed: int, naming: str, tmp_path: Path, oracle: Oracle) -> None:
    rng = random.Random(seed)
    sequence = Sequence_(tmp_path, naming)
    counter = iter(range(10_000))
    new_row = lambda: {"id": f"u{next(counter)}", "text": _text(rng), "style": str(rng.choice(STYLES))}  # noqa: E731
    sequence.set_rows([new_row() for _ in range(5)])
    sequence.generate()
    for step in range(10):
        rows = [dict(r) for r in sequence.rows]
        edit = rng.choice(["text", "add", "remove", "reorder"])
        if edit == "text":
            rng.choice(rows)["text"] = _text(rng)
        elif edit == "add":
            rows.insert(rng.randrange(len(rows) + 1), new_row())
        elif edit == "remove" and len(rows) > 2:
            rows.pop(rng.randrange(len(rows)))
        else:
            rng.shuffle(rows)
        sequence.set_rows(rows)
        run = rng.choice(["unsharded", "shards", "one shard", "interrupted", "limit"])
        count = rng.choice([2, 3])
        try:
            if run == "unsharded":
                sequence.generate()
            elif run == "shards":
                for index in range(count):
                    sequence.generate(shard=(index, count))
            elif run == "one shard":
                sequence.generate(shard=(rng.randrange(count), count))
            elif run == "interrupted":
                sequence.generate(stop_after=rng.randint(1, 4))
            else:
                sequence.generate(limit=rng.randint(1, len(rows)))
        except ListConflict as refusal:
            # Positional names after a removal: refused before writing, naming the way out, which works.
            assert naming == "openseq2seq" and "--prune" in str(refusal)
            sequence.generate(prune=True)
        _assert_true_labels(_manifest_rows(sequence.out, tmp_path / f"manifests{step}"), sequence.history, oracle)

    # A final complete run of the final list, pruning what it no longer holds, equals a clean run of it.
    sequence.generate(prune=True)
    resumed = _manifest_rows(sequence.out, tmp_path / "manifests-final")
    sequence.generate(out=tmp_path / "clean")
    clean = _manifest_rows(tmp_path / "clean", tmp_path / "manifests-clean")
    assert resumed == clean
    assert set(resumed) == {(r["id"], c) for r in sequence.rows for c in COPIES}


# --------------------------------------------------------------------------------------------------
# The three sequences of issue 31, through the command line as a user runs them.


def _cli(*arguments: str):
    return CliRunner().invoke(app, list(arguments))


def _generate(listing: Path, out: Path, *arguments: str):
    return _cli("generate", "--list", str(listing), "--out", str(out), "--copies", COPIES_OPTION, "--vocoder", "openseq2seq",
                "--batch-size", "4", *arguments)


def _rows(count: int) -> list[dict]:
    rng = random.Random(7)
    return [{"id": f"utt{i}", "text": _text(rng), "style": str(STYLES[i % len(STYLES)])} for i in range(count)]


def test_shards_then_a_changed_row_then_an_unsharded_resume_labels_the_new_text(tmp_path: Path, oracle: Oracle) -> None:
    listing, out = tmp_path / "infer.jsonl", tmp_path / "out"
    rows = _rows(4)
    write_jsonl(listing, rows)
    for shard in ("0/2", "1/2"):
        assert _generate(listing, out, "--shard", shard).exit_code == 0
    rows[0]["text"] = "a much longer sentence than the one it replaces"  # another length: the stuck case
    write_jsonl(listing, rows)
    result = _generate(listing, out, "--resume")
    assert result.exit_code == 0, result.output
    assert not list(out.glob("*/records.shard-*")), "an unsharded run gathers every record into records.jsonl"
    for _ in range(2):  # manifest, then once more: nothing is stuck
        manifests = _manifest_rows(out, tmp_path / "man")
        _assert_true_labels(manifests, {r["id"]: [r] for r in rows}, oracle)
    assert manifests[("utt0", "a")][0] == nsr_normalize(rows[0]["text"])
    assert _generate(listing, out, "--resume").exit_code == 0


def test_a_shard_run_after_the_text_changed_replaces_the_unsharded_record(tmp_path: Path, oracle: Oracle) -> None:
    listing, out = tmp_path / "infer.jsonl", tmp_path / "out"
    rows = _rows(4)
    write_jsonl(listing, rows)
    assert _generate(listing, out).exit_code == 0
    rows[2]["text"] = "words of the same kind"
    write_jsonl(listing, rows)
    assert _generate(listing, out, "--resume", "--shard", "0/2").exit_code == 0  # row 2 is shard 0's
    manifests = _manifest_rows(out, tmp_path / "man")
    assert manifests[("utt2", "b")][0] == nsr_normalize(rows[2]["text"])
    _assert_true_labels(manifests, {r["id"]: [r] for r in rows}, oracle)
    records = [json.loads(line) for line in (out / "a" / "records.jsonl").read_text().splitlines()]
    assert "utt2" not in {r["id"] for r in records}, "the outdated record was removed from records.jsonl"


def test_positional_names_after_a_removed_row_are_refused_then_pruned(tmp_path: Path, oracle: Oracle) -> None:
    listing, out = tmp_path / "infer.jsonl", tmp_path / "out"
    rows = _rows(4)
    write_jsonl(listing, rows)
    assert _generate(listing, out, "--naming", "openseq2seq").exit_code == 0
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    del rows[1]
    write_jsonl(listing, rows)
    refused = _generate(listing, out, "--naming", "openseq2seq", "--resume")
    assert refused.exit_code == 2, refused.output
    assert "'utt1'" in refused.output and "--prune" in refused.output and "sample_step0_1_syn.wav" in refused.output
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before, "refused before writing"
    result = _generate(listing, out, "--naming", "openseq2seq", "--resume", "--prune")
    assert result.exit_code == 0, result.output
    manifests = _manifest_rows(out, tmp_path / "man")
    assert set(manifests) == {(r["id"], c) for r in rows for c in COPIES}
    _assert_true_labels(manifests, {r["id"]: [r] for r in rows}, oracle)
    assert not (out / "a" / "sample_step0_3_syn.wav").exists(), "the file past the end of the list is removed with its row"


def test_copies_made_from_different_lists_get_a_row_per_copy_where_their_text_differs(tmp_path: Path, oracle: Oracle) -> None:
    listing, out = tmp_path / "infer.jsonl", tmp_path / "out"
    rows = _rows(3)
    write_jsonl(listing, rows)
    assert _cli("generate", "--list", str(listing), "--out", str(out), "--copies", "a:0.5:1", "--vocoder", "openseq2seq").exit_code == 0
    changed = [dict(r) for r in rows]
    changed[1]["text"] = "rain on the old green boat"
    write_jsonl(listing, changed)
    assert _cli("generate", "--list", str(listing), "--out", str(out), "--copies", "b:0.3:2", "--vocoder", "openseq2seq").exit_code == 0
    manifests = _manifest_rows(out, tmp_path / "man")  # checks every synthetic_data.csv row against its file
    assert manifests[("utt1", "a")][0] == nsr_normalize(rows[1]["text"])
    assert manifests[("utt1", "b")][0] == nsr_normalize(changed[1]["text"])
    lines = (tmp_path / "man" / "synthetic_data.csv").read_text().splitlines()
    assert sum("{}" in line for line in lines) == 2 and sum("utt1.wav" in line for line in lines) == 2
    assert all("{}" not in line for line in lines if "utt1.wav" in line)
