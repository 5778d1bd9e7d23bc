"""The ``trtgen`` command line: parses options and calls library functions, nothing more."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(
    help="trtgen: generate synthetic speech datasets for ASR training with Tacotron 2 + GST.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _not_built(command: str) -> None:
    typer.echo(f"trtgen {command}: not built yet in this version.", err=True)
    raise typer.Exit(code=2)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@app.command()
def prepare() -> None:
    """Pair M-AILABS style clips with LibriSpeech transcripts into an infer list."""
    _not_built("prepare")


@app.command()
def export() -> None:
    """Turn a trained checkpoint into a model directory of ONNX graphs (and TensorRT engines)."""
    _not_built("export")


@app.command()
def generate() -> None:
    """Synthesise every utterance of an infer list, for one or several dataset copies."""
    _not_built("generate")


@app.command()
def manifest() -> None:
    """Write training manifests that mix real and synthetic audio."""
    _not_built("manifest")


@app.command()
def bench() -> None:
    """Measure decoder, vocoder and end-to-end throughput."""
    _not_built("bench")


@app.command()
def demo() -> None:
    """Run the whole pipeline on material shipped with the package and say where to listen."""
    _not_built("demo")


def main() -> None:
    app()
