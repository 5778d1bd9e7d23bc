"""prepare -> generate -> manifest from the command line, on the real samples in ../shared/data."""

from __future__ import annotations

import csv
import json

import pandas as pd
from typer.testing import CliRunner

from trtgen.cli import app


def test_prepare_generate_manifest_from_the_cli(shared_data, small_model_dir, tmp_path):
    runner = CliRunner()
    lists = tmp_path / "lists"
    result = runner.invoke(
        app,
        ["prepare", "--mailabs", str(shared_data / "M-AILABS"), "--librispeech", str(shared_data / "LibriSpeech"),
         "--splits", "all", "--out", str(lists)],
    )
    assert result.exit_code == 0, result.output
    generate_csv = lists / "generate.csv"
    rows = pd.read_csv(generate_csv, sep="|", header=None, quoting=3, encoding="utf-8")
    assert len(rows) == 7  # the 7 LibriSpeech samples

    synthetic = tmp_path / "synthetic"
    # OpenSeq2Seq's own list format works too: style paths relative to the M-AILABS root, "wavs" rule.
    result = runner.invoke(
        app,
        ["generate", "--model", str(small_model_dir), "--list", str(generate_csv), "--style-root",
         str(shared_data / "M-AILABS"), "--out", str(synthetic), "--copies", "p50:0.5,p30:0.3",
         "--vocoder", "openseq2seq", "--naming", "openseq2seq", "--batch-size", "8"],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (synthetic / "p50").glob("*.wav")) == sorted(f"sample_step0_{n}_syn.wav" for n in range(7))

    manifests = tmp_path / "manifests"
    result = runner.invoke(
        app,
        ["manifest", "--synthetic", str(synthetic), "--real", str(shared_data / "LibriSpeech"), "--splits", "all",
         "--out", str(manifests), "--mix", "0.5", "--flac-to-wav", "--keep-failed"],
    )
    assert result.exit_code == 0, result.output  # the random test model fails the quality gate: kept here
    for name in ("synthetic_data.csv", "openseq2seq_mix.csv"):  # OpenSeq2Seq reads WAV only
        with open(manifests / name, newline="") as handle:
            assert all(row["wav_filename"].endswith(".wav") for row in csv.DictReader(handle)), name
    with open(manifests / "synthetic_data.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 7
    assert all("/{}/sample_step0_" in row["wav_filename"] and int(row["wav_filesize"]) > 44 for row in table)
    nemo = [json.loads(line) for p in sorted(manifests.glob("nemo*.jsonl")) if "mix" not in p.name for line in p.read_text().splitlines()]
    assert nemo and all(row["duration"] > 0 for row in nemo)
    assert len({row["id"] for row in nemo}) == len(nemo) == 7 + 2 * 7  # unique across copies and real rows
    assert any("mix" in p.name for p in manifests.iterdir())

    result = runner.invoke(app, ["manifest", "--synthetic", str(synthetic), "--out", str(manifests), "--check"])
    assert result.exit_code == 0, result.output
    (synthetic / "p30" / "sample_step0_3_syn.wav").unlink()
    result = runner.invoke(app, ["manifest", "--synthetic", str(synthetic), "--out", str(manifests), "--check"])
    assert result.exit_code != 0
    assert "sample_step0_3_syn.wav" in result.output
