"""The command line itself: the commands it lists, and that the runtime never imports TensorFlow."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from trtgen.cli import app

COMMANDS = ("prepare", "export", "generate", "manifest", "bench", "demo", "eval")


def test_help_lists_every_command():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


def test_python_dash_m_trtgen_works_and_the_runtime_does_not_import_tensorflow_or_ray():
    code = (
        "import sys, trtgen, trtgen.cli, trtgen.commands.generate, trtgen.engine.voice, trtgen.commands.manifests, trtgen.evaluation.run,"
        " trtgen.commands.bench; from trtgen import Voice;"
        "sys.exit(1 if {'tensorflow', 'ray', 'trtgen_export'} & set(sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    result = subprocess.run([sys.executable, "-m", "trtgen", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "generate" in result.stdout


def test_generate_names_a_missing_model_directory(tmp_path):
    listing = tmp_path / "infer.jsonl"
    listing.write_text('{"id": "a", "text": "hello", "style": "x.wav"}\n')
    result = CliRunner().invoke(app, ["generate", "--model", str(tmp_path / "nowhere"), "--list", str(listing), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "nowhere" in result.output and "model.json" in result.output


def test_generate_refuses_an_unknown_vocoder_device_before_writing(tmp_path):
    listing = tmp_path / "infer.jsonl"
    listing.write_text('{"id": "a", "text": "hello", "style": "x.wav"}\n')
    result = CliRunner().invoke(app, ["generate", "--list", str(listing), "--out", str(tmp_path / "out"), "--vocoder-device", "tpu"])
    assert result.exit_code == 2
    assert "unknown vocoder device 'tpu'" in result.output
    assert not (tmp_path / "out").exists()
