"""The ``trtgen`` command line: parses options, calls one library function per command, renders its report.

Every foreseeable failure is a :class:`trtgen.errors.TrtgenError` (or an OS error) and becomes one line
on stderr and the exit code below; ``-v`` adds the traceback.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import threading
import traceback
from pathlib import Path
from types import FrameType
from typing import Any, Callable, List, Optional

import typer

from trtgen.errors import EXIT_FAILED, EXIT_OK, EXIT_REJECTS, Interrupted, TrtgenError, describe_os_error

EXIT_CODES = (
    "Exit codes: 0 done; 1 done, but some rows were rejected or left out (see rejects.jsonl; for manifest: "
    "utterances that failed the quality check, unless --keep-failed; for eval: a check failed; for manifest "
    "--check: problems found); 2 bad options, list or model, or the output is locked by another "
    "run (nothing was done); 3 the run failed part way (disk full, read-only or unwritable output, Ctrl-C or "
    "SIGTERM): rerun generate with --resume."
)

app = typer.Typer(
    help="trtgen: generate synthetic speech datasets for ASR training with Tacotron 2 + GST.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_VERBOSE = {"on": False}


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages; show tracebacks.")) -> None:
    _VERBOSE["on"] = verbose
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # trtgen's own INFO lines are for the user; the object-storage clients' (credentials found...) are not.
    for name in ("aiobotocore", "botocore", "boto3", "s3fs", "fsspec", "gcsfs", "urllib3"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


def _run(command: str, call: Callable[[], Any], partial: Callable[[Any], None] | None = None) -> Any:
    """``call()``, with every foreseeable failure turned into one line and its exit code; ``partial``
    renders the report an interrupted run carries (what was done) before that line."""
    try:
        return call()
    except (typer.Exit, typer.BadParameter):
        raise
    except Interrupted as error:
        if partial is not None and error.partial is not None:
            partial(error.partial)
        _fail(command, f"{error}; resume with: {_resume_command()}", error.exit_code)
    except TrtgenError as error:
        _fail(command, str(error), error.exit_code)
    except KeyboardInterrupt:
        _fail(command, "interrupted; every complete utterance is recorded (generate: rerun with --resume)", EXIT_FAILED)
    except OSError as error:
        _fail(command, describe_os_error(error, doing="accessing"), EXIT_FAILED)


_ARGV: dict[str, list[str] | None] = {"arguments": None}


def _resume_command() -> str:
    """The command line that was run, with ``--resume``."""
    arguments = _ARGV["arguments"]
    if arguments is None:
        return "the same command with --resume"
    if "--resume" not in arguments:
        arguments = [*arguments, "--resume"]
    return shlex.join(["trtgen", *arguments])


class _StopOnSignal:
    """SIGINT (Ctrl-C) or SIGTERM asks a generate run to stop after the utterance being written (records
    flushed, staging files removed, exit 3); a second signal stops at once (still resumable)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.reason is not None:
            raise KeyboardInterrupt
        self.reason = signal.Signals(number).name
        # os.write: the only output that is safe inside a signal handler.
        os.write(2, f"\ntrtgen: {self.reason}: stopping after the utterance being written (again to stop at once)\n".encode())

    def requested(self) -> str | None:
        return self.reason


def _fail(command: str, message: str, code: int) -> None:
    if _VERBOSE["on"]:
        traceback.print_exc()
    typer.echo(f"trtgen {command}: {message}", err=True)
    raise typer.Exit(code=code)


def _exit(code: int) -> None:
    raise typer.Exit(code=code)


@app.command(epilog=EXIT_CODES)
def prepare(
    mailabs: Path = typer.Option(..., "--mailabs", help="M-AILABS root (the directory holding en_US/by_book)."),
    librispeech: List[Path] = typer.Option(
        ..., "--librispeech", help="LibriSpeech root or split directory, or an OpenSeq2Seq librivox-*.csv; repeat for several."
    ),
    out: Path = typer.Option(..., "--out", help="Directory for generate.csv, infer.jsonl, rejects.jsonl, prepare.json."),
    books: str = typer.Option("default", "--books", help="default (OpenSeq2Seq's 14 en_US books), all, or a comma list of books/speakers."),
    splits: Optional[str] = typer.Option(
        None, "--splits", help="Comma list of LibriSpeech splits, or all (default: train-clean-100,train-clean-360,train-other-500)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the style assignment (same seed and inputs, same lists)."),
    assign: str = typer.Option("cyclic", "--assign", help="cyclic (OpenSeq2Seq), balanced (even over style speakers) or random."),
) -> None:
    """Pair M-AILABS style clips with LibriSpeech transcripts into an infer list."""
    from trtgen.commands.prepare import PrepareOptions, prepare_infer_list
    from trtgen.console import render_prepare

    result = _run("prepare", lambda: prepare_infer_list(
        mailabs, librispeech, out, PrepareOptions(books=books, splits=splits, seed=seed, assign=assign)
    ))
    render_prepare(result)


@app.command(epilog=EXIT_CODES)
def export(
    checkpoint: Optional[Path] = typer.Argument(None, help="OpenSeq2Seq TF1 checkpoint: a prefix (model.ckpt-N) or its directory."),
    out: Path = typer.Option(..., "--out", help="Model directory to write (ONNX graphs + model.json)."),
    config: str = typer.Option("openseq2seq", "--config", help="Model config: preset name (openseq2seq, small, voice, voice-ipa) or a JSON file."),
    random_init: Optional[str] = typer.Option(None, "--random-init", help="Export a randomly initialised model of this preset instead of a checkpoint."),
    seed: int = typer.Option(0, "--seed", help="Seed of --random-init."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (13-18; tf2onnx supports at most 18)."),
    chunk_steps: int = typer.Option(8, "--chunk-steps", help="Decoder steps per call of the decoder_chunk graph."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name recorded in the card (default: the output directory's name)."),
    tensorrt: bool = typer.Option(False, "--tensorrt", help="Also build TensorRT engines for this GPU."),
    fp16: bool = typer.Option(False, "--fp16", help="Build FP16 engines (with --tensorrt)."),
    attention_window: Optional[str] = typer.Option(
        None, "--attention-window", help="BEHIND,AHEAD: each decoder step attends only near the previous step's peak (e.g. 1,3); none: unconstrained. Default: the config's."
    ),
    stop_threshold: Optional[float] = typer.Option(
        None, "--stop-threshold", help="Stop probability that ends an utterance, recorded in the card (tune it with trtgen eval --stop-threshold). Default: the config's."
    ),
    quantize: str = typer.Option(
        "postnet", "--quantize", help="int8 variants to write beside the float graphs, run on the CPU by default: postnet, decoder, postnet,decoder or none (calibrated on held-out sentences; the decoder's moves stop steps)."
    ),
) -> None:
    """Turn a trained checkpoint into a model directory of ONNX graphs (and TensorRT engines)."""
    from trtgen.commands.export import run_export_command
    from trtgen.console import console, render_export

    report = _run("export", lambda: run_export_command(
        lambda message: console.print(message, markup=False, highlight=False),
        checkpoint=checkpoint, out=out, config=config, random_init=random_init, seed=seed, opset=opset, chunk_steps=chunk_steps,
        name=name, tensorrt=tensorrt, fp16=fp16, attention_window=attention_window, stop_threshold=stop_threshold,
        quantize=quantize,
    ))
    render_export(report)


@app.command(epilog=EXIT_CODES)
def generate(
    list_path: Path = typer.Option(..., "--list", help="infer.jsonl (trtgen prepare) or OpenSeq2Seq's generate.csv."),
    out: str = typer.Option(..., "--out", help="Output root, one sub-directory per copy: a directory, or with a shard layout an object-storage URL (s3://bucket/prefix, file://...)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: the voice shipped with trtgen)."),
    style_root: Optional[Path] = typer.Option(None, "--style-root", help="Root of relative style paths (default: from prepare.json, else the list's directory)."),
    copies: Optional[str] = typer.Option(None, "--copies", help="NAME:RATE[:SEED[:STYLE]],... one dataset copy per entry, STYLE clip (default), blend or tokens (default: one copy at the model's training dropout)."),
    seed: int = typer.Option(0, "--seed", help="Base seed from which copies without an explicit SEED get theirs."),
    batch_size: int = typer.Option(32, "--batch-size", help="Utterances decoded together."),
    backend: str = typer.Option("auto", "--backend", help="auto, onnxruntime or tensorrt."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    gl_iters: Optional[int] = typer.Option(None, "--gl-iters", help="Griffin-Lim iterations (default: the vocoder preset's)."),
    vocoder: str = typer.Option("default", "--vocoder", help="Griffin-Lim preset: default (6 fast iterations), quality (24 fast: for a GPU) or openseq2seq (4 classic iterations)."),
    vocoder_device: Optional[str] = typer.Option(None, "--vocoder-device", help="cpu or cuda (CuPy) for Griffin-Lim (default: --device)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: generate rows whose index is I modulo N (one process per GPU)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N rows of the list."),
    resume: bool = typer.Option(False, "--resume", help="Continue earlier runs into the same copies: skip utterances already written with the same inputs, make again what changed."),
    prune: bool = typer.Option(False, "--prune", help="Remove from each copy the utterances (records and files) whose row is no longer in the list."),
    sample_format: str = typer.Option("pcm16", "--format", help="pcm16 or float32 samples (FLAC: pcm16)."),
    audio_format: str = typer.Option("wav", "--audio-format", help="wav or flac (lossless, about half the bytes)."),
    sample_rate: Optional[int] = typer.Option(None, "--sample-rate", help="Write audio at this rate in Hz, resampled from the model's with soxr (default: the model's rate)."),
    layout: str = typer.Option("files", "--layout", help="files (one audio file per utterance: OpenSeq2Seq), shar (Lhotse Shar) or nemo-tarred (NeMo tarred audio dataset)."),
    shard_utterances: int = typer.Option(1000, "--shard-utterances", help="With a shard layout: list rows per shard (shard k holds rows k*N to k*N+N-1)."),
    naming: str = typer.Option("id", "--naming", help="id (<utterance-id>.wav) or openseq2seq (sample_step0_{N}_syn.wav)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for ONNX Runtime (default: all cores; with --ray: per worker, default 1)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="float32 or int8 (default: int8 on the CPU where the model has int8 graphs, float32 on a GPU)."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Render on Ray: local (a private instance), auto (the cluster `ray start` set up) or ray://HOST:PORT."),
    workers: int = typer.Option(1, "--workers", help="With --ray: workers, each holding one model (one GPU each with --device cuda)."),
    block_size: Optional[int] = typer.Option(None, "--block-size", help="With --ray: utterances per block sent to a worker (default: chosen from the list)."),
    retries: Optional[int] = typer.Option(None, "--retries", help="Speak an utterance the quality gate fails again, with the next dropout stream, up to N times (default 2)."),
    style_concentration: Optional[float] = typer.Option(None, "--style-concentration", help="How near a tokens copy's drawn GST token weights stay to the clip's own (Dirichlet concentration; default 5)."),
    quality: Optional[str] = typer.Option(None, "--quality", help="Quality-gate thresholds over the model card's: KEY=VALUE,... e.g. max_pause_s=2,min_frames_per_symbol=1.5 (docs/generating.md)."),
) -> None:
    """Synthesise every utterance of an infer list, for one or several dataset copies."""
    from trtgen.commands.generate import generate_options, run_generate
    from trtgen.console import BarProgress, render_generate

    options = _run("generate", lambda: generate_options(
        list_path=list_path, out_dir=out, model_dir=model, style_root=style_root, copies=copies, seed=seed, batch_size=batch_size,
        backend=backend, device=device, gl_iters=gl_iters, vocoder=vocoder, vocoder_device=vocoder_device, shard=shard, limit=limit,
        resume=resume, prune=prune, retries=retries, quality=quality, style_concentration=style_concentration, sample_format=sample_format, naming=naming,
        audio_format=audio_format, sample_rate=sample_rate, layout=layout, shard_utterances=shard_utterances, threads=threads, ray=ray, workers=workers, block_size=block_size, precision=precision,
    ))
    with _StopOnSignal() as stop, BarProgress() as progress:
        report = _run("generate", lambda: run_generate(options, progress, stop.requested), partial=render_generate)
    render_generate(report)
    if report.rejects:
        typer.echo(f"trtgen generate: {len(report.rejects)} row(s) rejected; see rejects*.jsonl in each copy directory", err=True)
    _exit(EXIT_REJECTS if report.rejects else EXIT_OK)


@app.command(epilog=EXIT_CODES)
def manifest(
    synthetic: str = typer.Option(..., "--synthetic", help="Output root of trtgen generate (one sub-directory per copy): a directory, or the object-storage URL of sharded copies (s3://bucket/prefix)."),
    out: Optional[str] = typer.Option(None, "--out", help="Directory for the manifests (not needed with --check); file:// URLs too."),
    copies: Optional[str] = typer.Option(None, "--copies", help="Comma list of copy sub-directories (default: all)."),
    real: Optional[List[Path]] = typer.Option(None, "--real", help="LibriSpeech root or librivox-*.csv of the real audio; repeat for several."),
    splits: Optional[str] = typer.Option(None, "--splits", help="Splits of a LibriSpeech root given with --real (comma list or all)."),
    formats: str = typer.Option("openseq2seq,nemo,lhotse", "--formats", help="Comma list of openseq2seq, nemo, lhotse."),
    mix: Optional[float] = typer.Option(None, "--mix", help="Also write a mixed manifest with this fraction of real rows (0.5 = 50/50)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the mixed manifest."),
    relative_to: Optional[Path] = typer.Option(None, "--relative-to", help="Write paths relative to this directory (default: absolute)."),
    flac_to_wav: bool = typer.Option(
        False, "--flac-to-wav", help="Convert real non-WAV files (LibriSpeech's FLAC) of openseq2seq_mix.csv to WAV under OUT/real_wav/ (OpenSeq2Seq reads WAV only; without it such a mix is refused)."
    ),
    check: bool = typer.Option(
        False, "--check", help="Only check the synthetic audio against its records (content digest, length, size; sharded copies: each shard's files and members against its commit record, gaps in the numbering), and look for stray files and leftovers of killed runs; exit 1 on any problem."
    ),
    duration_tolerance: float = typer.Option(0.02, "--duration-tolerance", help="Seconds a file's duration may differ from its record."),
    verify: bool = typer.Option(
        False, "--verify", help="Digest every synthetic file against its record (default: only files changed since their records were written)."
    ),
    keep_failed: bool = typer.Option(
        False, "--keep-failed", help="Keep utterances that failed the quality check, flagged quality_ok: false (default: left out, listed in rejects.jsonl, exit 1)."
    ),
) -> None:
    """Write training manifests that mix real and synthetic audio; --mix also writes NeMo input_cfg files."""
    from trtgen.commands.manifests import ManifestOptions, write_manifests
    from trtgen.commands.synthetic_check import check_synthetic
    from trtgen.console import BarProgress, render_check, render_manifests

    copy_names = tuple(c.strip() for c in copies.split(",") if c.strip()) if copies else None
    if check:
        with BarProgress(unit="files") as progress:
            check_report = _run("manifest", lambda: check_synthetic(synthetic, copy_names, duration_tolerance_s=duration_tolerance, progress=progress))
        render_check(check_report)
        _exit(EXIT_OK if check_report.ok else EXIT_REJECTS)
    if out is None:
        raise typer.BadParameter("--out is required unless --check is given", param_hint="--out")
    options = ManifestOptions(
        copies=copy_names, formats=tuple(f.strip() for f in formats.split(",") if f.strip()), mix=mix,
        seed=seed, relative_to=relative_to, splits=splits, flac_to_wav=flac_to_wav, duration_tolerance_s=duration_tolerance,
        verify=verify, keep_failed=keep_failed,
    )
    with BarProgress(unit="files") as progress:
        result = _run("manifest", lambda: write_manifests(synthetic, out, real or (), options, progress=progress))
    render_manifests(result)
    for note in result.notes:
        typer.echo(f"trtgen manifest: {note}", err=True)
    if result.failed.left_out:
        typer.echo(
            f"trtgen manifest: {result.failed.left_out} utterance(s) failed the quality check and were left out; "
            "see rejects.jsonl (--keep-failed keeps them)", err=True,
        )
    _exit(EXIT_REJECTS if result.failed.left_out else EXIT_OK)


@app.command(epilog=EXIT_CODES)
def bench(
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: the voice shipped with trtgen)."),
    quick: bool = typer.Option(False, "--quick", help="Fewer batch sizes and repeats: under a minute on a small model."),
    batch_sizes: Optional[str] = typer.Option(None, "--batch-sizes", help="Comma list of decoder batch sizes (default 1,8,32,64; quick 1,8,32)."),
    frames: int = typer.Option(985, "--frames", help="Frames per utterance in fixed-length mode (985 = LibriSpeech's mean 12.3 s)."),
    repeats: Optional[int] = typer.Option(None, "--repeats", help="Timed repeats per case; the median is reported (default 3; quick 1)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for ONNX Runtime (default: all cores)."),
    backend: str = typer.Option("onnxruntime", "--backend", help="onnxruntime or tensorrt."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
) -> None:
    """Measure decoder (per-step vs chunked loop) and Griffin-Lim throughput on this machine."""
    from trtgen.commands.bench import bench_options, run_bench
    from trtgen.console import console, render_bench

    options = _run("bench", lambda: bench_options(
        model_dir=model, quick=quick, batch_sizes=batch_sizes, frames=frames, repeats=repeats, threads=threads, backend=backend, device=device,
    ))
    report = _run("bench", lambda: run_bench(options, progress=lambda message: console.log(message)))
    render_bench(report)


@app.command(epilog=EXIT_CODES)
def demo(
    out: Path = typer.Option(Path("trtgen-demo"), "--out", help="Where to write the demo's lists, audio and manifests."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: the voice shipped with trtgen)."),
    sentences: Optional[int] = typer.Option(None, "--sentences", help="Use only the first N demo sentences."),
) -> None:
    """Run the whole pipeline on material shipped with the package and say where to listen."""
    from trtgen.commands.demo import run_demo
    from trtgen.console import BarProgress, render_demo

    with BarProgress() as progress:
        result = _run("demo", lambda: run_demo(out, model, sentences=sentences, progress=progress))
    render_demo(result)
    _exit(EXIT_REJECTS if result.generate.rejects else EXIT_OK)


@app.command("eval", epilog=EXIT_CODES)
def eval_command(
    corpus: Path = typer.Option(..., "--corpus", help="espeak-ng corpus directory (python -m trtgen_export.train.corpus): held-out sentences and their renderings."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: the voice shipped with trtgen)."),
    out: Path = typer.Option(Path("trtgen-eval"), "--out", help="Directory for eval.json and the plots."),
    sentences: int = typer.Option(50, "--sentences", help="Held-out sentences per voice."),
    first_sentence: int = typer.Option(0, "--first-sentence", help="Held-out sentences to skip: 50 gives a validation slice disjoint from the default test slice (for tuning decode settings)."),
    stop_threshold: Optional[float] = typer.Option(None, "--stop-threshold", help="Decode with this stop threshold instead of the model card's."),
    dropout: float = typer.Option(0.5, "--dropout", help="Prenet dropout at inference."),
    seed: int = typer.Option(0, "--seed", help="Seed of the dropout and Griffin-Lim phase streams."),
    compare_random: bool = typer.Option(False, "--compare-random", help="Also evaluate a randomly initialised model of the same config (needs TensorFlow)."),
    calibrate_quality: bool = typer.Option(False, "--calibrate-quality", help="Write the quality-gate thresholds calibrated on these sentences into the model card (reported either way)."),
    plots: int = typer.Option(4, "--plots", help="Utterances to plot (alignment and spectrograms); 0 for none."),
    backend: str = typer.Option("onnxruntime", "--backend", help="auto, onnxruntime or tensorrt."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for ONNX Runtime (default: all cores)."),
) -> None:
    """Check that a voice works: alignment, stopping, duration, MCD-DTW and style on held-out sentences."""
    from trtgen.commands.export import export_random_model
    from trtgen.console import BarProgress, render_eval
    from trtgen.engine.voice import VoiceSpec
    from trtgen.evaluation.report import EvalOptions
    from trtgen.evaluation.run import run_eval

    def call() -> Any:
        voice = VoiceSpec(model_dir=model, backend=backend, device=device, threads=threads, stop_threshold=stop_threshold)
        options = EvalOptions(
            voice, corpus_dir=corpus, out_dir=out, sentences=sentences, first_sentence=first_sentence, dropout=dropout,
            seed=seed, compare_random=compare_random, plots=plots, calibrate_quality=calibrate_quality,
        )
        with BarProgress() as progress:
            return run_eval(options, progress, export_random=export_random_model)

    report = _run("eval", call)
    render_eval(report)
    _exit(EXIT_OK if report.passed else EXIT_REJECTS)


def main() -> None:
    _ARGV["arguments"] = sys.argv[1:]
    app()

