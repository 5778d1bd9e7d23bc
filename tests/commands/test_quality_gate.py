"""``trtgen generate``'s quality gate and ``--retries`` on real decodes: every record carries the gate's
verdict and its attempt; a retry speaks a failed utterance again with the next dropout stream, and the
result is a pure function of the row (the same across batch sizes, shards and the Python API)."""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf
from typer.testing import CliRunner

from trtgen.cli import app
from trtgen.commands.demo import demo_rows
from trtgen.engine.voice import Voice, VoiceSpec
from trtgen.engine.vocoder import griffin_lim_preset
from trtgen.engine.synthesis import SynthesisOptions
from trtgen.fileio import write_jsonl

GATE = ("min_frames_per_symbol=0,max_frames_per_symbol=1000,max_backstep=1000,max_jump=1000,max_start=1000,end_slack=1000,"
        "max_leading_silence_s=1000,max_trailing_silence_s=1000,max_pause_s=1000")
"""Only the stop token judged: the test model's stop fires at steps that depend on the dropout stream
(conftest.stopping_weights), so some attempts run to the cap and another stream may stop."""
COPIES = "c:0.5:11"


def _generate(listing: Path, out: Path, model: Path, *arguments: str) -> dict[str, dict]:
    result = CliRunner().invoke(app, ["generate", "--model", str(model), "--list", str(listing), "--out", str(out), "--copies",
                                      COPIES, "--vocoder", "openseq2seq", "--quality", GATE, *arguments])
    assert result.exit_code == 0, result.output
    return {r["id"]: r for path in sorted((out / "c").glob("records*.jsonl")) for r in map(json.loads, path.read_text().splitlines())}


def _wavs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "c").glob("*.wav"))}


def test_retries_turn_failed_utterances_into_passing_ones_and_stay_pure(tmp_path: Path, small_model_dir: Path, infer_list: Path) -> None:
    listing = infer_list
    rows = [json.loads(line) for line in listing.read_text().splitlines()]
    once = _generate(listing, tmp_path / "once", small_model_dir, "--retries", "0")
    failed = {i for i, r in once.items() if not r["quality"]["ok"]}
    assert failed and len(failed) < len(once), "the gate should fail some first attempts, not all"
    assert all(r["attempt"] == 1 for r in once.values())
    assert all(r["quality"]["reasons"] == ["capped"] for i, r in once.items() if i in failed)

    retried = _generate(listing, tmp_path / "retried", small_model_dir, "--retries", "3", "--batch-size", "8")
    assert {i for i, r in retried.items() if r["attempt"] > 1} == failed, "exactly the failed ones are spoken again"
    rescued = {i for i in failed if retried[i]["quality"]["ok"]}
    assert rescued, "another dropout stream should rescue some"
    assert all(r["attempt"] == 4 for i, r in retried.items() if not r["quality"]["ok"])
    once_wavs, retried_wavs = _wavs(tmp_path / "once"), _wavs(tmp_path / "retried")
    for i in once:  # a first attempt that passed is the same audio with or without retries
        assert (once_wavs[f"{i}.wav"] == retried_wavs[f"{i}.wav"]) == (i not in failed)

    # The same bytes one utterance at a time, and in two shards.
    _generate(listing, tmp_path / "batch1", small_model_dir, "--retries", "3", "--batch-size", "1")
    assert _wavs(tmp_path / "batch1") == retried_wavs
    for shard in ("0/2", "1/2"):
        _generate(listing, tmp_path / "shards", small_model_dir, "--retries", "3", "--shard", shard)
    assert _wavs(tmp_path / "shards") == retried_wavs

    # And through the Python API: the row's audio, attempt and verdict.
    gate = tuple((k, float(v)) for k, v in (item.split("=") for item in GATE.split(",")))
    voice = Voice.load(VoiceSpec(small_model_dir, synthesis=SynthesisOptions(vocoder=griffin_lim_preset("openseq2seq")), quality=gate))
    row = next(r for r in rows if r["id"] in rescued)
    style = retried[row["id"]]["style"]  # the clip the row resolved to
    speech = voice.synthesize(row["text"], style, dropout=0.5, seed=11, utterance_id=row["id"], retries=3)
    written, _ = sf.read(tmp_path / "retried" / "c" / f"{row['id']}.wav", dtype="float32")
    assert speech.attempt == retried[row["id"]]["attempt"] and speech.quality.ok
    assert len(written) == len(speech.audio)


def test_a_model_that_never_stops_fails_every_utterance_capped(tmp_path: Path) -> None:
    from trtgen_export.onnx_export import ExportOptions, export_model
    from trtgen_export.variables import random_weights
    from trtgen.engine.config import model_preset

    model = tmp_path / "random"
    config = model_preset("small")
    export_model(random_weights(config, 0), config, model, options=ExportOptions(name="never-stops", source={"random_init": "small", "seed": 0}))
    listing = tmp_path / "infer.jsonl"
    write_jsonl(listing, demo_rows(1))
    result = CliRunner().invoke(app, ["generate", "--model", str(model), "--list", str(listing), "--out", str(tmp_path / "out"),
                                      "--copies", "c:0.5:1", "--vocoder", "openseq2seq", "--retries", "1"])
    assert result.exit_code == 0, result.output
    assert "4 utterance(s) failed the quality gate" in " ".join(result.output.split())
    records = [json.loads(line) for line in (tmp_path / "out" / "c" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(not r["quality"]["ok"] and "capped" in r["quality"]["reasons"] and r["attempt"] == 2 for r in records)

    # Not training data: every manifest leaves them out, names each in its rejects, and says so (exit 1).
    result = CliRunner().invoke(app, ["manifest", "--synthetic", str(tmp_path / "out"), "--out", str(tmp_path / "man"), "--formats", "nemo"])
    assert result.exit_code == 1, result.output
    assert (tmp_path / "man" / "nemo_synthetic.jsonl").read_text() == ""
    rejects = [json.loads(line) for line in (tmp_path / "man" / "rejects.jsonl").read_text().splitlines()]
    assert sorted(r["item"] for r in rejects) == sorted(r["id"] for r in records) and all("capped" in r["reason"] for r in rejects)
    result = CliRunner().invoke(app, ["manifest", "--synthetic", str(tmp_path / "out"), "--out", str(tmp_path / "kept"), "--formats", "nemo", "--keep-failed"])
    assert result.exit_code == 0, result.output
    kept = [json.loads(line) for line in (tmp_path / "kept" / "nemo_synthetic.jsonl").read_text().splitlines()]
    assert len(kept) == 4 and all(row["quality_ok"] is False and row["synthetic"] is True for row in kept)
