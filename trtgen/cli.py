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
    from rich.console import Console
    from rich.table import Table

    from trtgen.prepare import ASSIGN_MODES, PrepareOptions, prepare_infer_list

    if assign not in ASSIGN_MODES:
        raise typer.BadParameter(f"choose one of {', '.join(ASSIGN_MODES)}", param_hint="--assign")
    try:
        result = prepare_infer_list(mailabs, librispeech, out, PrepareOptions(books=books, splits=splits, seed=seed, assign=assign))
    except (OSError, ValueError) as exc:
        typer.echo(f"trtgen prepare: {exc}", err=True)
        raise typer.Exit(code=2) from None
    summary = result.summary
    table = Table(title="trtgen prepare")
    for column in ("style speaker", "gender", "books", "clips", "missing clips", "rows", "clips used"):
        table.add_column(column, justify="left" if column in ("style speaker", "gender") else "right")
    for sp in summary.speakers:
        table.add_row(sp.speaker, sp.gender, str(sp.books), str(sp.clips), str(sp.missing_clips), str(sp.rows), str(sp.clips_used))
    console = Console()
    console.print(table)
    console.print(
        f"{summary.utterances} utterances, {summary.characters} characters (~{summary.hours_estimated:.1f} h of speech), "
        f"{summary.rejects} rejected, {len(summary.missing_books)} book(s) and {len(summary.missing_splits)} split(s) not found"
    )
    for name, path in result.files.items():
        console.print(f"  {name}: {path}")


@app.command()
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
) -> None:
    """Turn a trained checkpoint into a model directory of ONNX graphs (and TensorRT engines)."""
    try:
        from export.pipeline import ExportRequest, run_export
    except ImportError as error:
        typer.echo(f"trtgen export needs the exporter's packages ({error.name} is missing): pip install 'trtgen[export]'", err=True)
        raise typer.Exit(code=2) from None
    request = ExportRequest(
        checkpoint=checkpoint, out=out, config=config, random_init=random_init, seed=seed, opset=opset, chunk_steps=chunk_steps,
        name=name, tensorrt=tensorrt, fp16=fp16, attention_window=attention_window, stop_threshold=stop_threshold,
    )
    raise typer.Exit(code=run_export(request))


@app.command()
def generate(
    list_path: Path = typer.Option(..., "--list", help="infer.jsonl (trtgen prepare) or OpenSeq2Seq's generate.csv."),
    out: Path = typer.Option(..., "--out", help="Output root: one sub-directory per copy."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: the voice shipped with trtgen)."),
    style_root: Optional[Path] = typer.Option(None, "--style-root", help="Root of relative style paths (default: from prepare.json, else the list's directory)."),
    copies: Optional[str] = typer.Option(None, "--copies", help="NAME:RATE[:SEED],... one dataset copy per entry (default: one copy at the model's training dropout)."),
    seed: int = typer.Option(0, "--seed", help="Base seed from which copies without an explicit SEED get theirs."),
    batch_size: int = typer.Option(32, "--batch-size", help="Utterances decoded together."),
    backend: str = typer.Option("auto", "--backend", help="auto, onnxruntime or tensorrt."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    gl_iters: Optional[int] = typer.Option(None, "--gl-iters", help="Griffin-Lim iterations (default: the vocoder preset's)."),
    vocoder: str = typer.Option("default", "--vocoder", help="Griffin-Lim preset: default (fast GL) or openseq2seq (4 classic iterations)."),
    vocoder_device: Optional[str] = typer.Option(None, "--vocoder-device", help="cpu or cuda (CuPy) for Griffin-Lim (default: --device)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: generate rows whose index is I modulo N (one process per GPU)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N rows of the list."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run: skip utterances already written."),
    sample_format: str = typer.Option("pcm16", "--format", help="pcm16 or float32 WAV."),
    naming: str = typer.Option("id", "--naming", help="id (<utterance-id>.wav) or openseq2seq (sample_step0_{N}_syn.wav)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for ONNX Runtime (default: all cores)."),
) -> None:
    """Synthesise every utterance of an infer list, for one or several dataset copies."""
    import dataclasses

    from trtgen.artifact import ModelCardError, load_model
    from trtgen.backends import BackendUnavailable
    from trtgen.generate import GenerateOptions, default_model_dir, parse_copies, parse_shard, print_report, run_generate
    from trtgen.synthesis import SynthesisOptions
    from trtgen.vocoder import griffin_lim_preset
    from trtgen.writers import SettingsMismatch

    try:
        model_dir = model or default_model_dir()
        card = load_model(model_dir, verify=False).card
        vocoder_options = griffin_lim_preset(vocoder)
        if gl_iters is not None:
            vocoder_options = dataclasses.replace(vocoder_options, n_iter=gl_iters)
        options = GenerateOptions(
            model_dir=model_dir, list_path=list_path, out_dir=out, style_root=style_root,
            copies=tuple(parse_copies(copies, default_dropout=card.model.prenet_dropout, base_seed=seed)),
            backend=backend, device=device,
            synthesis=SynthesisOptions(batch_size=batch_size, vocoder=vocoder_options, vocoder_device=vocoder_device),
            shard=parse_shard(shard), limit=limit, resume=resume, sample_format=sample_format, naming=naming,
            threads=threads,
        )
        report = run_generate(options)
    except (ValueError, FileNotFoundError, BackendUnavailable, ModelCardError, SettingsMismatch) as error:
        typer.echo(f"trtgen generate: {error}", err=True)
        raise typer.Exit(code=2) from None
    print_report(report)
    if report.rejects:
        typer.echo(f"trtgen generate: {len(report.rejects)} row(s) rejected; see rejects*.jsonl in each copy directory", err=True)
    raise typer.Exit(code=1 if report.rejects else 0)


@app.command()
def manifest(
    synthetic: Path = typer.Option(..., "--synthetic", help="Output root of trtgen generate (one sub-directory per copy)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for the manifests (not needed with --check)."),
    copies: Optional[str] = typer.Option(None, "--copies", help="Comma list of copy sub-directories (default: all)."),
    real: Optional[List[Path]] = typer.Option(None, "--real", help="LibriSpeech root or librivox-*.csv of the real audio; repeat for several."),
    splits: Optional[str] = typer.Option(None, "--splits", help="Splits of a LibriSpeech root given with --real (comma list or all)."),
    formats: str = typer.Option("openseq2seq,nemo,lhotse", "--formats", help="Comma list of openseq2seq, nemo, lhotse."),
    mix: Optional[float] = typer.Option(None, "--mix", help="Also write a mixed manifest with this fraction of real rows (0.5 = 50/50)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the mixed manifest."),
    relative_to: Optional[Path] = typer.Option(None, "--relative-to", help="Write paths relative to this directory (default: absolute)."),
    check: bool = typer.Option(False, "--check", help="Only check the synthetic audio against its records; exit 1 on any problem."),
    duration_tolerance: float = typer.Option(0.02, "--duration-tolerance", help="Seconds a file's duration may differ from its record (--check)."),
) -> None:
    """Write training manifests that mix real and synthetic audio."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.table import Table

    from trtgen.manifests import ManifestOptions, check_synthetic, write_manifests

    copy_names = tuple(c.strip() for c in copies.split(",") if c.strip()) if copies else None
    console = Console()
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True),
    )
    tasks: dict = {}

    def report(description: str, completed: int, total: int) -> None:
        if description not in tasks:
            tasks[description] = (progress.add_task(description, total=total, rate=""), time.monotonic())
        task, started = tasks[description]
        elapsed = time.monotonic() - started
        progress.update(task, completed=completed, rate=f"{completed / elapsed:,.0f} files/s" if elapsed > 0 else "")

    try:
        with progress:
            if check:
                check_report = check_synthetic(synthetic, copy_names, duration_tolerance_s=duration_tolerance, progress=report)
            else:
                if out is None:
                    raise typer.BadParameter("--out is required unless --check is given", param_hint="--out")
                options = ManifestOptions(
                    copies=copy_names, formats=tuple(f.strip() for f in formats.split(",") if f.strip()), mix=mix,
                    seed=seed, relative_to=relative_to, splits=splits,
                )
                result = write_manifests(synthetic, out, real or (), options, progress=report)
    except (OSError, ValueError) as exc:
        typer.echo(f"trtgen manifest: {exc}", err=True)
        raise typer.Exit(code=2) from None
    if check:
        if check_report.ok:
            console.print(f"{check_report.checked} synthetic rows checked: all files present and consistent")
            return
        console.print(f"{len(check_report.problems)} problem(s) in {check_report.checked} synthetic rows:", highlight=False)
        for problem in check_report.problems:
            console.print(f"  {problem.copy} {problem.id}: {problem.problem}: {problem.path}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)
    table = Table(title="trtgen manifest")
    table.add_column("manifest")
    table.add_column("path")
    for name, path in result.files.items():
        table.add_row(name, str(path))
    console.print(table)
    counts = result.counts
    console.print(
        f"copies {', '.join(counts['copies'])}: {counts['synthetic_files']} synthetic files, "
        f"{counts['templated_utterances']} utterances in every copy; {counts['real_utterances']} real; "
        f"{counts['rejects']} rejected (see rejects.jsonl)"
    )
    if "mix_real" in counts:
        console.print(f"mix: {counts['mix_real']} real + {counts['mix_synthetic']} synthetic rows {counts['mix_synthetic_per_copy']}")
    if result.openseq2seq_config:
        console.print("Add to the OpenSeq2Seq ASR config (train data layer params):")
        for line in result.openseq2seq_config:
            console.print(f"  {line}", markup=False, highlight=False)


@app.command()
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
    from trtgen.artifact import ModelCardError
    from trtgen.backends import BackendUnavailable
    from trtgen.bench import BenchOptions, print_bench, run_bench
    from trtgen.generate import default_model_dir
    from trtgen.progress import console

    overrides: dict = {"frames": frames, "threads": threads, "backend": backend, "device": device}
    try:
        if batch_sizes:
            overrides["batch_sizes"] = tuple(int(b) for b in batch_sizes.split(",") if b.strip())
            if not overrides["batch_sizes"] or min(overrides["batch_sizes"]) < 1:
                raise ValueError("--batch-sizes: expected positive integers, e.g. 1,8,32")
        if repeats is not None:
            overrides["repeats"] = repeats
        model_dir = model or default_model_dir()
        options = BenchOptions.quick(model_dir, **overrides) if quick else BenchOptions(model_dir=model_dir, **overrides)
        report = run_bench(options, progress=lambda message: console.log(message))
    except (ValueError, FileNotFoundError, BackendUnavailable, ModelCardError) as error:
        typer.echo(f"trtgen bench: {error}", err=True)
        raise typer.Exit(code=2) from None
    print_bench(report)


@app.command()
def demo(
    out: Path = typer.Option(Path("trtgen-demo"), "--out", help="Where to write the demo's lists, audio and manifests."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: the voice shipped with trtgen)."),
    sentences: Optional[int] = typer.Option(None, "--sentences", help="Use only the first N demo sentences."),
) -> None:
    """Run the whole pipeline on material shipped with the package and say where to listen."""
    from trtgen.artifact import ModelCardError
    from trtgen.demo import run_demo
    from trtgen.generate import print_report

    try:
        result = run_demo(out, model, sentences=sentences)
    except (ValueError, FileNotFoundError, ModelCardError) as error:
        typer.echo(f"trtgen demo: {error}", err=True)
        raise typer.Exit(code=2) from None
    print_report(result.generate)
    typer.echo(f"\nDone: {result.generate.written} utterances in {len(result.generate.copies)} copies under {result.out / 'synthetic'}")
    typer.echo(f"Manifests: {result.out / 'manifests'}")
    typer.echo("Listen (any audio player, e.g. `play` from sox or `aplay`):")
    for path in result.examples:
        typer.echo(f"  {path}")
    raise typer.Exit(code=1 if result.generate.rejects else 0)


@app.command("eval")
def eval_command(
    corpus: Path = typer.Option(..., "--corpus", help="espeak-ng corpus directory (python -m export.train.corpus): held-out sentences and their renderings."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: the voice shipped with trtgen)."),
    out: Path = typer.Option(Path("trtgen-eval"), "--out", help="Directory for eval.json and the plots."),
    sentences: int = typer.Option(50, "--sentences", help="Held-out sentences per voice."),
    first_sentence: int = typer.Option(0, "--first-sentence", help="Held-out sentences to skip: 50 gives a validation slice disjoint from the default test slice (for tuning decode settings)."),
    stop_threshold: Optional[float] = typer.Option(None, "--stop-threshold", help="Decode with this stop threshold instead of the model card's."),
    dropout: float = typer.Option(0.5, "--dropout", help="Prenet dropout at inference."),
    seed: int = typer.Option(0, "--seed", help="Seed of the dropout and Griffin-Lim phase streams."),
    compare_random: bool = typer.Option(False, "--compare-random", help="Also evaluate a randomly initialised model of the same config (needs TensorFlow)."),
    plots: int = typer.Option(4, "--plots", help="Utterances to plot (alignment and spectrograms); 0 for none."),
    backend: str = typer.Option("onnxruntime", "--backend", help="auto, onnxruntime or tensorrt."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for ONNX Runtime (default: all cores)."),
) -> None:
    """Check that a voice works: alignment, stopping, duration, MCD-DTW and style on held-out sentences."""
    from trtgen.artifact import ModelCardError
    from trtgen.backends import BackendUnavailable
    from trtgen.evaluation import EvalError, EvalOptions, print_eval_report, run_eval
    from trtgen.generate import default_model_dir

    try:
        options = EvalOptions(
            model_dir=model or default_model_dir(), corpus_dir=corpus, out_dir=out, sentences=sentences, first_sentence=first_sentence,
            stop_threshold=stop_threshold, dropout=dropout,
            seed=seed, compare_random=compare_random, plots=plots, backend=backend, device=device, threads=threads,
        )
        report = run_eval(options)
    except (ValueError, OSError, EvalError, BackendUnavailable, ModelCardError) as error:
        typer.echo(f"trtgen eval: {error}", err=True)
        raise typer.Exit(code=2) from None
    print_eval_report(report)
    raise typer.Exit(code=0 if report.passed else 1)


def main() -> None:
    app()
