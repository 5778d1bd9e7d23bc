"""End to end: ``trtgen generate`` vs the original way, on the same N utterances and the same model weights.

Usage: python benchmarks/bench_end_to_end.py [--quick] [--configs small:128,openseq2seq:64,voice-trained:256]
       [--batch-size 32] [--repeats N] [--equal-quality-iterations N] [--methods M,...] [--base REV]

``--base REV`` also runs every trtgen method as the git revision REV does it (its own copy of this
script, from a worktree, on the same model directory and list), interleaved with this tree's runs, and
reports this tree's speed over REV's per round: a change's cost or gain measured side by side.

The original way is OpenSeq2Seq's synthetic-data recipe rebuilt on the TF2 reference model
(``trtgen_export.tf_model.TacotronGST``, the same weights that trtgen's ONNX model was exported from):
rows in list order, in batches of the same size; per row the style clip's features; the style and
text encoders, the ``tf.while_loop`` decode (seeded in-graph prenet dropout at the model's rate, each
batch running until its longest row ends) and the postnet, each a ``tf.function``; then per utterance
``librosa.griffinlim`` (4 classic iterations, momentum 0, n_fft 800, hop 200, random initial phase) on
``clip(mag, 0, 255) ** 1.5``, written as a float32 WAV with soundfile. ``original-equal-quality`` is the
same with as many classic iterations as the vocoder study says it needs to be as good as trtgen's
default vocoder.

trtgen runs ``run_generate`` (ONNX Runtime on the CPU, the same batch size, float32 WAVs) in the ways
listed in :data:`METHODS`: without overlapped stages and int8 (``trtgen-serial``), like for
like (``trtgen-openseq2seq``: OpenSeq2Seq's 4 classic iterations, everything else trtgen's defaults),
with the int8 decoder option, and with all its defaults (``trtgen-default``).

Fixed-length mode (random configs): the random model's stop token never fires and every text is 90
characters (96 ids with <s>, </s> and padding), so every utterance decodes to its cap of 960 frames
(12.0 s, near LibriSpeech's mean of 12.3 s) in both methods. Each method runs in its own child
process, which reports its peak resident memory (VmHWM) and CPU time. Before timing, the original way
traces its tf.functions on a warm-up batch (excluded); trtgen's timed run includes creating its ONNX
Runtime sessions (a real run does this once too). Repeats interleave the methods. Wasted decoder work:
row-steps computed for rows that had already ended (trtgen: ``DecodeStats.wasted_fraction``; original:
the batch runs to its longest row).

Realistic mode (config ``voice-trained``): the voice shipped with trtgen and the checkpoint it was
exported from (export/train/checkpoints/voice), speaking its held-out sentences (3 to 30 words) in
the four shipped style clips. Utterances end at their own stop token, so here the original way's
batches run to their longest row while trtgen refills finished rows: scheduling counts too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_WORK_DIR, SHARED_DATA, TRAINED_VOICE, benchmark_model, fmt, markdown_table, write_json  # noqa: E402

TEXT_CHARS = 90
"""90 characters -> 96 ids -> a 960-frame cap (12.0 s of audio)."""
_RESULT = "E2E-RESULT "


@dataclass(frozen=True)
class Method:
    """One way of making the utterances: the original recipe, or ``trtgen generate`` with some settings."""

    name: str
    kind: str
    """``original`` or ``trtgen``."""
    what: str
    """One line for the report."""
    gl_iters: int | None = 4
    """original: librosa's classic Griffin-Lim iterations (None: the equal-quality count of the vocoder study)."""
    vocoder: str = "openseq2seq"
    """trtgen: the Griffin-Lim preset."""
    quantize: tuple[str, ...] = ("postnet",)
    """trtgen: the int8 variants in the model directory (common.benchmark_model; ``trtgen export``'s default)."""
    overlap: bool | None = None
    """trtgen: SynthesisOptions.overlap (None: its default, on for the CPU)."""


METHODS = {
    m.name: m
    for m in (
        Method("original", "original", "TF2 reference + librosa.griffinlim, 4 classic iterations (OpenSeq2Seq's recipe)"),
        Method("original-equal-quality", "original", "the original with as many classic iterations as it needs to match trtgen's default vocoder", gl_iters=None),
        Method("trtgen-serial", "trtgen", "trtgen without overlap and int8: float32, stages one after another (each on both cores), 4 classic iterations", quantize=(), overlap=False),
        Method("trtgen-openseq2seq", "trtgen", "trtgen, like for like: 4 classic iterations; its defaults otherwise (overlapped stages, int8 postnet)"),
        Method("trtgen-openseq2seq-int8", "trtgen", "as trtgen-openseq2seq with the int8 decoder too (an export option, not a default)", quantize=("postnet", "decoder_chunk")),
        Method("trtgen-default", "trtgen", "trtgen with all its defaults (vocoder: 6 fast Griffin-Lim iterations)", vocoder="default"),
    )
}
"""Every method the benchmark knows; EndToEndSettings.methods picks them per config."""

_FALLBACK_TEXT = (
    "he hoped there would be stew for dinner turnips and carrots and bruised potatoes and fat mutton pieces to be "
    "ladled out in thick peppered flour fattened sauce stuff it into you his belly counselled him after early "
    "nightfall the yellow lamps would light up here and there the squalid quarter of the brothels"
)


@dataclass
class EndToEndSettings:
    utterances: dict[str, int] = field(default_factory=lambda: {"small": 128, "openseq2seq": 64, TRAINED_VOICE: 256})
    """Config preset -> N utterances. Two batches at least: with one, every utterance of a fixed-length
    config ends in the same decoder chunk and nothing is left for the stages to overlap with."""
    batch_size: int = 32
    methods: dict[str, tuple[str, ...]] = field(default_factory=lambda: {
        "small": ("original", "trtgen-openseq2seq", "trtgen-default"),
        "openseq2seq": ("original", "trtgen-serial", "trtgen-openseq2seq", "trtgen-openseq2seq-int8", "trtgen-default"),
        TRAINED_VOICE: ("original", "original-equal-quality", "trtgen-serial", "trtgen-openseq2seq", "trtgen-default"),
    })
    """Config -> the methods run on it (:data:`METHODS`); a config not named runs original, trtgen-openseq2seq, trtgen-default."""
    equal_quality_iterations: int | None = None
    """Classic iterations of ``original-equal-quality`` (from the vocoder study; None: that method is skipped)."""
    repeats: int = 1
    work_dir: Path = DEFAULT_WORK_DIR
    only: tuple[str, ...] | None = None
    """Run only these methods (None: every method of each config)."""
    base: str | None = None
    """A git revision whose trtgen runs beside this tree's (``<method>@base``)."""

    def methods_for(self, config: str) -> tuple[Method, ...]:
        names = self.methods.get(config, ("original", "trtgen-openseq2seq", "trtgen-default"))
        names = tuple(n for n in names if self.only is None or n in self.only)
        return tuple(METHODS[n] for n in names if METHODS[n].gl_iters is not None or self.equal_quality_iterations)

    @staticmethod
    def quick(**overrides: Any) -> EndToEndSettings:
        settings: dict[str, Any] = dict(utterances={"small": 8}, batch_size=4, repeats=1)
        settings.update(overrides)
        return EndToEndSettings(**settings)


# ---------------------------------------------------------------------------- inputs
def _texts(count: int) -> list[str]:
    """``count`` windows of exactly TEXT_CHARS characters of LibriSpeech transcripts (or a fallback)."""
    from trtgen.engine.text import TextEncoder

    corpus = " ".join(
        line.split(" ", 1)[1].lower()
        for path in sorted((SHARED_DATA / "LibriSpeech").rglob("*.trans.txt"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if " " in line
    ) or _FALLBACK_TEXT
    while len(corpus) < (count + 1) * TEXT_CHARS:
        corpus = corpus + " " + corpus
    encoder = TextEncoder()
    texts, start = [], 0
    while len(texts) < count:
        window = corpus[start : start + TEXT_CHARS]
        if len(window) < TEXT_CHARS:
            start = 0
            continue
        if window[0] != " " and window[-1] != " " and encoder.encode_with_info(window).text_len == TEXT_CHARS + 6:
            texts.append(window)
            start += TEXT_CHARS
        else:
            start += 1
    return texts


def _style_clips(work_dir: Path) -> list[Path]:
    """The M-AILABS sample clips, or three synthetic voiced clips when the samples are absent."""
    clips = sorted((SHARED_DATA / "M-AILABS").rglob("*.wav"))
    if clips:
        return clips
    import soundfile

    out = work_dir / "styles"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(2.5 * 16000)) / 16000
    for i, f0 in enumerate((110.0, 160.0, 220.0)):
        y = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) ** 2
        y = 0.1 * y / np.abs(y).max() + 0.003 * rng.standard_normal(t.size)
        soundfile.write(out / f"style{i}.wav", y.astype(np.float32), 16000)
        clips.append(out / f"style{i}.wav")
    return clips


def prepare_voice_inputs(work_dir: Path, count: int) -> Path:
    """The realistic case: the trained voice's held-out sentences (3-30 words, in the generator's
    order, unsorted like OpenSeq2Seq's list) spoken in the four shipped style clips."""
    from trtgen_export.train.sentences import HELDOUT, generate_sentences
    from trtgen.engine.shipped import shipped_styles

    path = Path(work_dir) / "lists" / f"voice-heldout-{count}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    sentences = [s for s in generate_sentences() if s.split == HELDOUT]
    clips = list(shipped_styles().values())
    rows = [
        {"id": f"voice{i:06d}", "text": sentences[i % len(sentences)].text, "style": str(clips[i % len(clips)])}
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def prepare_inputs(work_dir: Path, count: int, config_name: str = "small") -> Path:
    """An infer.jsonl of ``count`` fixed-length rows with absolute style paths (cycled over the clips);
    for the trained voice, its held-out sentences (:func:`prepare_voice_inputs`)."""
    if config_name == TRAINED_VOICE:
        return prepare_voice_inputs(work_dir, count)
    path = Path(work_dir) / "lists" / f"fixed{TEXT_CHARS}-{count}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    clips = _style_clips(Path(work_dir))
    rows = [
        {"id": f"bench{i:06d}", "speaker": None, "chapter": None, "text": text, "style": str(clips[i % len(clips)]), "style_speaker": None, "book": None}
        for i, text in enumerate(_texts(count))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- children
def _peak_rss_mib() -> float:
    """This process's peak resident memory. Linux: VmHWM, which exec resets; ``ru_maxrss`` would
    carry over the high-water mark of the parent that forked us (the parent may hold TensorFlow)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_trtgen(spec: dict[str, Any]) -> dict[str, Any]:
    """``trtgen generate`` through its library call; no TensorFlow or librosa in this process."""
    from trtgen.commands.generate import GenerateOptions, run_generate
    from trtgen.engine.synthesis import SynthesisOptions
    from trtgen.engine.vocoder import griffin_lim_preset
    from trtgen.engine.voice import VoiceSpec

    voice = VoiceSpec(
        model_dir=Path(spec["model_dir"]), backend="onnxruntime", device="cpu",
        synthesis=SynthesisOptions(batch_size=spec["batch_size"], vocoder=griffin_lim_preset(spec["vocoder"]), overlap=spec["overlap"]),
    )

    def options(out: Path, limit: int | None) -> GenerateOptions:
        return GenerateOptions(list_path=Path(spec["list"]), out_dir=out, voice=voice, limit=limit, sample_format="float32")

    out = Path(spec["out"])
    run_generate(options(out / "warm-up", 2))
    cpu_started = time.process_time()
    report = run_generate(options(out / "timed", None))
    cpu = time.process_time() - cpu_started
    return {
        "wall_s": report.wall_seconds,
        "utterances": report.written,
        "audio_seconds": report.audio_seconds,
        "stages": dict(report.times.seconds),
        "wasted_fraction": report.decode.wasted_fraction,
        "host_overhead": report.decode.host_overhead,
        "backend": report.backend,
        "cpu_s": cpu,
        "peak_rss_mib": _peak_rss_mib(),
    }


def child_original(spec: dict[str, Any]) -> dict[str, Any]:
    """The OpenSeq2Seq way on the TF2 reference model + librosa Griffin-Lim (see the module docstring)."""
    import soundfile
    import tensorflow as tf

    from bench_vocoder import librosa_gl
    from common import random_weights_for
    from trtgen_export.tf_model import TacotronGST
    from trtgen.engine.audio import pad_style_batch, style_features
    from trtgen.corpora.infer_list import read_infer_list
    from trtgen.engine.text import TextEncoder, pad_batch

    config, weights = random_weights_for(spec["config"])
    model = TacotronGST(config, weights)
    f32, i32 = tf.float32, tf.int32

    @tf.function(input_signature=[tf.TensorSpec([None, None, config.num_mels], f32), tf.TensorSpec([None], i32)])
    def style_fn(mel: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
        return model.encode_style(mel, length)

    @tf.function(input_signature=[tf.TensorSpec([None, None], i32), tf.TensorSpec([None], i32), tf.TensorSpec([None, config.style_dim], f32)])
    def text_fn(ids: tf.Tensor, length: tf.Tensor, style: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        memory, keys, _ = model.attention_memory(model.encode_text(ids, length), style, length)
        return memory, keys

    @tf.function(input_signature=[tf.TensorSpec([None, None, config.memory_dim], f32), tf.TensorSpec([None, None, config.attention_dim], f32), tf.TensorSpec([None], i32)])
    def decode_fn(memory: tf.Tensor, keys: tf.Tensor, length: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        masks = model.prenet_masks_from(rate=config.prenet_dropout, seed=1, batch=tf.shape(memory)[0])
        out = model.decode(memory, keys, length, masks)
        return out["frames"], out["lengths"]

    @tf.function(input_signature=[tf.TensorSpec([None, None, config.num_mels], f32), tf.TensorSpec([None], i32)])
    def postnet_fn(mel: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
        return model.postnet(mel, length)[1]

    rows, rejects = read_infer_list(Path(spec["list"]))
    if rejects:
        raise RuntimeError(f"the benchmark list has rejected rows: {rejects[:2]}")
    encoder = TextEncoder()
    stages: dict[str, float] = {}
    work = {"row_steps": 0, "useful_steps": 0}
    r = config.reduction_factor

    def timed(stage: str, function: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return function()
        finally:
            stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - started

    def run_batch(batch: list[Any], out: Path) -> float:
        mels = timed("style front end", lambda: [style_features(row.style)[0] for row in batch])
        style_mel, style_len = pad_style_batch(mels)
        ids, text_len = pad_batch([encoder.encode(row.text) for row in batch])
        style = timed("style encoder", lambda: style_fn(style_mel, style_len.astype(np.int32)))
        memory, keys = timed("text encoder", lambda: text_fn(ids.astype(np.int32), text_len.astype(np.int32), style))
        frames, lengths = timed("decoder", lambda: [t.numpy() for t in decode_fn(memory, keys, text_len.astype(np.int32))])
        magnitude = timed("postnet", lambda: postnet_fn(frames, lengths).numpy())
        work["row_steps"] += len(batch) * frames.shape[1] // r
        work["useful_steps"] += int(sum(-(-int(n) // r) for n in lengths))
        seconds = 0.0
        for row, mag, n in zip(batch, magnitude, lengths):
            S = (np.clip(mag[: int(n) - 1], 0.0, 255.0) ** 1.5).T  # drop the stop frame, as trtgen does
            y = timed("vocoder", lambda: librosa_gl(S, spec["gl_iters"]))
            timed("writing", lambda: soundfile.write(out / f"{row.id}.wav", y.astype(np.float32), 16000, subtype="FLOAT"))
            seconds += y.size / 16000
        return seconds

    out = Path(spec["out"])
    for sub in ("warm-up", "timed"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    run_batch(rows[:2], out / "warm-up")  # traces the tf.functions (excluded from the timing)
    stages.clear()
    work.update(row_steps=0, useful_steps=0)
    size = spec["batch_size"]
    started, cpu_started = time.perf_counter(), time.process_time()
    audio_seconds = sum(run_batch(rows[i : i + size], out / "timed") for i in range(0, len(rows), size))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "wall_s": wall,
        "utterances": len(rows),
        "audio_seconds": audio_seconds,
        "stages": stages,
        "wasted_fraction": 1.0 - work["useful_steps"] / work["row_steps"] if work["row_steps"] else 0.0,
        "host_overhead": None,
        "backend": f"tensorflow {tf.__version__} (tf.function, tf.while_loop) + librosa.griffinlim ({spec['gl_iters']} iterations)",
        "cpu_s": cpu,
        "peak_rss_mib": _peak_rss_mib(),
    }


def run_child(method: str, spec: dict[str, Any], tree: Path | None = None) -> dict[str, Any]:
    """Run one method in a fresh Python process; returns its result dict. ``tree``: a checkout of another
    revision, whose own copy of this script and whose ``trtgen`` run instead (``PYTHONPATH``)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    script = Path(__file__).resolve()
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
        script = tree / "benchmarks" / script.name
    proc = subprocess.run(
        [sys.executable, str(script), "--child", method, "--spec", json.dumps(spec)],
        capture_output=True, text=True, env=env, cwd=tree,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT):
            return json.loads(line[len(_RESULT) :])
    raise RuntimeError(f"{method} child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def base_tree(revision: str, work_dir: Path) -> Path:
    """A detached git worktree of ``revision`` under ``work_dir`` (made once, reused)."""
    repo = Path(__file__).resolve().parents[1]
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", revision], capture_output=True, text=True, check=True).stdout.strip()
    tree = Path(work_dir).absolute() / "revisions" / commit[:12]
    if not (tree / "trtgen").is_dir():
        shutil.rmtree(tree, ignore_errors=True)
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), commit], capture_output=True, check=True)
    return tree


def run_end_to_end(settings: EndToEndSettings, log: Callable[[str], None] = print) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    base = base_tree(settings.base, settings.work_dir) if settings.base else None
    for config_name, count in settings.utterances.items():
        methods = settings.methods_for(config_name)
        models = {m.quantize: benchmark_model(config_name, settings.work_dir, quantize=m.quantize) for m in methods if m.kind == "trtgen"}
        list_path = prepare_inputs(settings.work_dir, count, config_name)
        if base is not None:  # every trtgen method once more, as the base revision runs it
            methods = tuple(v for m in methods for v in ((m, dataclasses.replace(m, name=f"{m.name}@base", what=f"{m.what}, at {settings.base}"))
                                                          if m.kind == "trtgen" else (m,)))
        runs: dict[str, list[dict[str, Any]]] = {m.name: [] for m in methods}
        for repeat in range(max(1, settings.repeats)):
            for method in methods:
                out = Path(settings.work_dir) / "e2e" / f"{config_name}-{method.name}-{repeat}"
                shutil.rmtree(out, ignore_errors=True)
                spec = {
                    "config": config_name, "model_dir": str(models.get(method.quantize, "")), "list": str(list_path), "out": str(out),
                    "batch_size": settings.batch_size, "vocoder": method.vocoder, "overlap": method.overlap,
                    "gl_iters": method.gl_iters or settings.equal_quality_iterations,
                }
                try:
                    result = run_child(method.kind, spec, base if method.name.endswith("@base") else None)
                except RuntimeError as error:
                    failures.append({"config": config_name, "method": method.name, "error": str(error)[-600:]})
                    log(f"{config_name} {method.name}: FAILED")
                    continue
                finally:
                    shutil.rmtree(out, ignore_errors=True)
                result["load_average"] = os.getloadavg()[0]
                runs[method.name].append(result)
                log(f"{config_name} {method.name} (repeat {repeat + 1}): {result['utterances'] / result['wall_s']:.2f} utt/s, "
                    f"{result['audio_seconds'] / result['wall_s']:.1f} audio-s/s, peak {result['peak_rss_mib']:.0f} MiB, load {result['load_average']:.2f}")
        for method in methods:
            method_runs = runs[method.name]
            if not method_runs:
                continue
            ordered = sorted(method_runs, key=lambda r: r["wall_s"])
            median = dict(ordered[(len(ordered) - 1) // 2])
            median.update(
                config=config_name, method=method.name, what=method.what, gl_iters=spec_iters(method, settings), batch_size=settings.batch_size,
                repeats=len(method_runs), utterances_per_s=median["utterances"] / median["wall_s"],
                audio_seconds_per_s=median["audio_seconds"] / median["wall_s"], walls=[r["wall_s"] for r in method_runs],
            )
            results.append(median)
    data = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()}, "results": results, "failures": failures}
    data["rounds"] = per_round_ratios(data)
    data["against_base"] = against_base(data)
    return data


def against_base(data: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Per config and trtgen method: this tree's utt/s over the base revision's, round by round."""
    by = {(r["config"], r["method"]): r for r in data["results"]}
    ratios: dict[str, dict[str, list[float]]] = {}
    for (config, method), r in by.items():
        base = by.get((config, f"{method}@base"))
        if base is not None and len(base["walls"]) == len(r["walls"]):
            ratios.setdefault(config, {})[method] = [b / a * (r["utterances"] / base["utterances"]) for a, b in zip(r["walls"], base["walls"])]
    return ratios


def spec_iters(method: Method, settings: EndToEndSettings) -> int | None:
    """Classic iterations of an original method (None for trtgen's)."""
    return (method.gl_iters or settings.equal_quality_iterations) if method.kind == "original" else None


def per_round_ratios(data: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Each method's utt/s over the original's in the same round (repeats interleave the methods, so
    the two ran minutes apart under much the same load); the spread says how much the machine moved."""
    rounds: dict[str, dict[str, list[float]]] = {}
    by = {(r["config"], r["method"]): r for r in data["results"]}
    for (config, method), r in by.items():
        original = by.get((config, "original"))
        if original is None or method == "original" or len(original["walls"]) != len(r["walls"]):
            continue
        pairs = zip(original["walls"], r["walls"])
        rounds.setdefault(config, {})[method] = [a / b * (r["utterances"] / original["utterances"]) for a, b in pairs]
    return rounds


def ratio_to_original(data: dict[str, Any], config: str, method: str) -> float | None:
    """'x original' of ``method``: the median of its per-round ratios (:func:`per_round_ratios`), or,
    when the rounds do not pair up, the ratio of the two medians."""
    rounds = data.get("rounds", {}).get(config, {}).get(method)
    if rounds:
        return statistics.median(rounds)
    by = {(r["config"], r["method"]): r for r in data["results"]}
    original, ours = by.get((config, "original")), by.get((config, method))
    if original is None or ours is None:
        return None
    return ours["utterances_per_s"] / original["utterances_per_s"]


# ---------------------------------------------------------------------------- markdown
def end_to_end_markdown(data: dict[str, Any]) -> list[str]:
    lines: list[str] = [
        "Methods: " + "; ".join(f"`{m.name}`: {m.what}" for m in METHODS.values() if any(r["method"] == m.name for r in data["results"])) + ".",
        "'x original': utt/s over `original`'s in the same round, the median over the rounds (each round runs every "
        "method once, so the two compared ran minutes apart; the rounds' ratios are listed under the table); the other "
        "columns are the run with the median wall time. 'CPU s' is the process's CPU time (all threads); 'busy' is each "
        "stage's busy time as a share of the wall time: with overlapped stages the shares add up to more than 100%.",
        "",
    ]
    columns = ["method", "N", "batch", "wall s", "CPU s", "utt/s", "audio-s/s", "x original", "peak RSS MiB", "wasted decoder work", "busy"]
    for config in dict.fromkeys(r["config"] for r in data["results"]):
        rows = [r for r in data["results"] if r["config"] == config]
        table = []
        for r in rows:
            stages = sorted(r["stages"].items(), key=lambda kv: -kv[1])[:4]
            where = ", ".join(f"{name} {100 * seconds / r['wall_s']:.0f}%" for name, seconds in stages)
            x = 1.0 if r["method"] == "original" else ratio_to_original(data, config, r["method"])
            ratio = "-" if x is None else f"{x:.2f}x"
            table.append([
                r["method"], r["utterances"], r["batch_size"], fmt(r["wall_s"], 1), fmt(r.get("cpu_s"), 1), fmt(r["utterances_per_s"], 2),
                fmt(r["audio_seconds_per_s"], 1), ratio, f"{r['peak_rss_mib']:.0f}", f"{100 * r['wasted_fraction']:.1f}%", where,
            ])
        lines += [f"### End to end, `{config}` config", ""]
        lines += markdown_table(columns, table, ["l"] + ["r"] * 9 + ["l"])
        lines.append("")
        rounds = data.get("rounds", {}).get(config, {})
        if rounds:
            loads = [r["load_average"] for r in rows if "load_average" in r]
            lines.append("Per round, x original: " + "; ".join(f"{m} " + ", ".join(f"{x:.2f}x" for x in v) for m, v in rounds.items())
                         + (f" (1-min load average {min(loads):.2f}-{max(loads):.2f} at the end of the medians' runs)." if loads else "."))
            lines.append("")
    for config, methods in data.get("against_base", {}).items():
        base = data["settings"].get("base")
        lines.append(f"Against {base} (`{config}`), this tree's speed over the base revision's, per round: " + "; ".join(
            f"{m} " + ", ".join(f"{x:.3f}" for x in v) + f" (median {statistics.median(v):.3f})" for m, v in methods.items()) + ".")
        lines.append("")
    for failure in data.get("failures", []):
        lines += [f"- FAILED: {failure['config']} {failure['method']}: `{failure['error'].splitlines()[-1] if failure['error'] else ''}`"]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=("original", "trtgen"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--configs", help="CONFIG:N,... (default small:128,openseq2seq:64,voice-trained:256; quick small:8)")
    parser.add_argument("--equal-quality-iterations", type=int, help="classic iterations of original-equal-quality (default: skip it)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--methods", help=f"comma list of methods to run (default: each config's; known: {', '.join(METHODS)})")
    parser.add_argument("--base", help="a git revision whose trtgen runs beside this tree's, interleaved (e.g. HEAD~1)")
    args = parser.parse_args(argv)
    if args.child:
        result = (child_original if args.child == "original" else child_trtgen)(json.loads(args.spec))
        print(_RESULT + json.dumps(result), flush=True)
        return
    overrides: dict[str, Any] = {"work_dir": args.work_dir}
    if args.configs:
        overrides["utterances"] = {c.split(":")[0]: int(c.split(":")[1]) for c in args.configs.split(",")}
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.repeats:
        overrides["repeats"] = args.repeats
    if args.equal_quality_iterations:
        overrides["equal_quality_iterations"] = args.equal_quality_iterations
    if args.methods:
        overrides["only"] = tuple(m.strip() for m in args.methods.split(","))
        unknown = [m for m in overrides["only"] if m not in METHODS]
        if unknown:
            parser.error(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    if args.base:
        overrides["base"] = args.base
    settings = EndToEndSettings.quick(**overrides) if args.quick else EndToEndSettings(**overrides)
    data = run_end_to_end(settings)
    if args.json:
        write_json(args.json, data)
    print("\n".join(end_to_end_markdown(data)))


if __name__ == "__main__":
    main()
