"""Reproduce benchmarks/RESULTS.md: every benchmark in one run, one machine, one date.

Usage: python benchmarks/run_all.py [--quick] [--output PATH] [--work-dir DIR]
                                   [--skip limits,decoder,vocoder,quality,precision,e2e]

Writes the markdown report (default benchmarks/RESULTS.md; with --quick
benchmarks/results/quick/RESULTS.md, so a smoke run never overwrites the reference figures), the
raw numbers beside it (RESULTS.json) and the plot (throughput.png). Every ratio in the report
compares numbers from this run. Random benchmark models are exported once into the work directory
(default $TMPDIR/trtgen-bench) and reused. Sections, in order: the limit of each stage on this machine
(bench_limits.py), the decoder (bench_decoder.py), Griffin-Lim against librosa and its quality against
iterations (bench_vocoder.py; the quality study fixes the equal-quality comparison of the end-to-end
run), int8 against float32 (bench_precision.py), end to end (bench_end_to_end.py). The full run takes
about 75 minutes on two cores (decoder ~30 min, capped by per-config time budgets; end to end ~25 min;
the rest ~15 min, plus exports and calibrations the first time); --quick takes a few minutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    TRAINED_VOICE,
    DEFAULT_WORK_DIR,
    LIBRISPEECH_HOURS,
    LIBRISPEECH_UTTERANCES,
    command_line,
    duration_text,
    fmt,
    header_lines,
    machine,
    markdown_table,
    now,
    versions,
    write_json,
)
from bench_end_to_end import ratio_to_original  # noqa: E402

TARGET_LIKE_FOR_LIKE = {TRAINED_VOICE: 4.0, "openseq2seq": 2.5}
"""trtgen with OpenSeq2Seq's 4 classic iterations against the original way, end to end (docs/throughput.md, "Targets")."""
GOAL_LIKE_FOR_LIKE = {TRAINED_VOICE: 5.0}
TARGET_DEFAULTS = 2.0
"""trtgen with all its defaults (the vocoder included) against the original, with better audio (docs/throughput.md, "Targets")."""
TARGET_HOST_SHARE = 0.05
TARGET_HOST_MIN_BATCH = 8
TARGET_VOCODER = 2.0
ORIGINAL_DAYS = 1.0
"""The original pipeline's wall time for one LibriSpeech-size copy (about a day on one GPU, README.md)."""


# ---------------------------------------------------------------------------- vocoder
def vocoder_bench(iterations: list[int], batches: list[int], repeats: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """trtgen's Griffin-Lim vs librosa.griffinlim at equal iterations (classic GL, OpenSeq2Seq's parameters).

    Reuses benchmarks/bench_vocoder.py (inputs, librosa call and interleaved timing), so the numbers
    are comparable with its own report (benchmarks/results/vocoder.md).
    """
    import bench_vocoder as bv

    from trtgen.engine.vocoder import GriffinLimOptions, griffin_lim, sharpened_magnitude

    try:
        mags = bv.magnitudes_12s(bv.load_speech(), max(batches))
        source = "real speech: |STFT| of 985-frame windows of the LibriSpeech samples in ../shared/data"
    except SystemExit as missing:
        rng = np.random.default_rng(0)
        mags = [np.abs(bv.stft(rng.standard_normal(200 * 984).astype(np.float32) * 0.1, bv.AUDIO)) for _ in range(max(batches))]
        source = f"noise magnitudes ({missing}); Griffin-Lim's cost does not depend on the content"
    cupy = None
    if importlib.util.find_spec("cupy") is not None:
        try:
            import cupy

            cupy.cuda.runtime.getDeviceCount()
        except Exception:  # noqa: BLE001 - no usable GPU: CPU rows only
            cupy = None
    seconds_per_item = bv.AUDIO.hop_length * (bv.FRAMES - 1) / bv.AUDIO.sample_rate
    rows = []
    for n_iter in iterations:
        for batch in batches:
            items, targets, keys = mags[:batch], [sharpened_magnitude(m).T.copy() for m in mags[:batch]], list(range(batch))
            contenders: dict[str, Callable[[], object]] = {
                "trtgen": lambda: griffin_lim(items, keys, GriffinLimOptions(n_iter=n_iter, momentum=0.0)),
                "trtgen-1-thread": lambda: griffin_lim(items, keys, GriffinLimOptions(n_iter=n_iter, momentum=0.0, threads=1)),
                "librosa-calls": lambda: [bv.librosa_gl(S, n_iter) for S in targets],
            }
            if batch > 1:
                stacked = np.stack(targets)
                contenders["librosa-batched"] = lambda: bv.librosa_gl(stacked, n_iter)
            if cupy is not None:
                def on_gpu() -> object:
                    out = griffin_lim(items, keys, GriffinLimOptions(n_iter=n_iter, momentum=0.0), xp=cupy)
                    cupy.cuda.Device().synchronize()
                    return out

                contenders["trtgen-gpu"] = on_gpu
            medians = bv.time_interleaved(contenders, repeats)
            librosa_form = min((k for k in medians if k.startswith("librosa")), key=medians.__getitem__)
            row = {"iterations": n_iter, "batch": batch, "audio_seconds": batch * seconds_per_item, "seconds": medians, "librosa_form": librosa_form}
            rows.append(row)
            log(f"vocoder {n_iter} it, batch {batch}: trtgen {medians['trtgen'] * 1e3:.0f} ms, librosa {medians[librosa_form] * 1e3:.0f} ms "
                f"({medians[librosa_form] / medians['trtgen']:.2f}x)")
    return {"source": source, "repeats": repeats, "gpu": cupy is not None, "rows": rows}


def vocoder_markdown(data: dict[str, Any]) -> list[str]:
    columns = ["iterations", "batch", "trtgen all cores: ms (audio-s/s)", "trtgen 1 thread: ms (audio-s/s)"]
    if data["gpu"]:
        columns.append("trtgen GPU: ms (audio-s/s)")
    columns += ["librosa: ms (audio-s/s)", "librosa form", "x librosa (all cores)", "x librosa (1 thread)"]
    table = []
    for row in data["rows"]:
        s, audio = row["seconds"], row["audio_seconds"]
        lib = s[row["librosa_form"]]

        def cell(name: str) -> str:
            return f"{s[name] * 1e3:.0f} ({audio / s[name]:.0f})"

        cells = [row["iterations"], row["batch"], cell("trtgen"), cell("trtgen-1-thread")]
        if data["gpu"]:
            cells.append(cell("trtgen-gpu"))
        form = "one call" if row["batch"] == 1 else ("one call per item" if row["librosa_form"] == "librosa-calls" else "one batched call")
        cells += [cell(row["librosa_form"]), form, f"{lib / s['trtgen']:.2f}x", f"{lib / s['trtgen-1-thread']:.2f}x"]
        table.append(cells)
    return [
        f"Inputs: {data['source']}; 985 frames (12.3 s) per item; classic Griffin-Lim (momentum 0) on both sides, "
        "n_fft 800, hop 200, Hann, centre + reflect padding, random initial phase, S = clip(mag, 0, 255) ** 1.5. "
        f"Median of {data['repeats']} interleaved repeats after a warm-up. librosa is single-threaded; for batch > 1 the "
        "faster of one call per item and one call on the stacked array is used. The quality of each setting and the "
        "choice of the default: 'Quality against iterations' below (benchmarks/bench_vocoder.py).",
        "",
        *markdown_table(columns, table),
        "",
    ]


# ---------------------------------------------------------------------------- targets and projection
def _stage(result: dict[str, Any], name: str) -> float:
    return float(result["stages"].get(name, 0.0))


def _end_to_end_cause(original: dict[str, Any], ours: dict[str, Any], target: float) -> str:
    """Where trtgen's time went against the original's, stage by stage, and what the target would need."""
    parts = []
    for stage in ("decoder", "postnet", "vocoder"):
        a, b = _stage(original, stage), _stage(ours, stage)
        if a and b:
            parts.append(f"{stage} busy {a:.1f} s -> {b:.1f} s ({a / b:.2f}x)")
    needed = original["wall_s"] * (ours["utterances"] / original["utterances"]) / target
    cpu = ours.get("cpu_s")
    text = "; ".join(parts) + f". The target needs {needed:.1f} s of wall time; trtgen took {ours['wall_s']:.1f} s"
    if cpu:
        cores = os.cpu_count() or 1
        text += (f" with {cpu:.1f} CPU s, which on {cores} cores cannot take less than {cpu / cores:.1f} s: the stages overlap, "
                 "so what is left is the work itself (the limits table says how close each stage is to its kernels)")
    return text + "."


def target_lines(
    decoder: dict[str, Any] | None, vocoder: dict[str, Any] | None, e2e: dict[str, Any] | None, quality: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
) -> list[str]:
    """The end-to-end targets (docs/throughput.md, "Targets"), each met or missed, with the cause of a miss; and the standing
    targets of the decoder and vocoder."""
    import bench_vocoder as bv

    rows = []
    notes: list[str] = []
    if e2e and e2e["results"]:
        by = {(r["config"], r["method"]): r for r in e2e["results"]}
        for config, target in TARGET_LIKE_FOR_LIKE.items():
            original, ours = by.get((config, "original")), by.get((config, "trtgen-openseq2seq"))
            if not (original and ours):
                continue
            ratio = ratio_to_original(e2e, config, "trtgen-openseq2seq")
            goal = GOAL_LIKE_FOR_LIKE.get(config)
            label = f"like for like >= {target:g}x the original (`{config}`, batch {ours['batch_size']}, 4 classic GL iterations)" + (f"; goal {goal:g}x" if goal else "")
            status = "met" if ratio >= target else f"MISSED by {100 * (1 - ratio / target):.0f}%"
            if goal and ratio >= target:
                status += " (goal met)" if ratio >= goal else f" (goal missed by {100 * (1 - ratio / goal):.0f}%)"
            rows.append([label, f"{ratio:.2f}x", status])
            if ratio < target or (goal and ratio < goal):
                notes.append(f"- `{config}` like for like: " + _end_to_end_cause(original, ours, goal if ratio >= target and goal else target))
                if limits and ratio < target:
                    from bench_limits import stage_limit_audio_rate

                    limit = stage_limit_audio_rate(limits, config, "openseq2seq")
                    needed = target * original["audio_seconds_per_s"]
                    if limit is not None and limit < needed:
                        notes.append(f"  Out of reach in float32 on this machine: with every stage at its limit (decoder and postnet at the "
                                     f"FLOP rate, Griffin-Lim at its bare FFTs, nothing else) both cores give {limit:.0f} audio-s/s, "
                                     f"{limit / original['audio_seconds_per_s']:.2f}x the original; {target:g}x needs {needed:.0f}.")
            int8 = by.get((config, "trtgen-openseq2seq-int8"))
            if int8:
                rows.append([f"the same with the int8 decoder option (`{config}`; not a default: 'Reduced precision' below)",
                             f"{ratio_to_original(e2e, config, 'trtgen-openseq2seq-int8'):.2f}x", "for information"])
        original, default = by.get((TRAINED_VOICE, "original")), by.get((TRAINED_VOICE, "trtgen-default"))
        if original and default:
            ratio = ratio_to_original(e2e, TRAINED_VOICE, "trtgen-default")
            better = None
            if quality:
                ours_q, theirs_q = bv._row(quality, *_default_key()), bv._row(quality, 0.0, 4)
                if ours_q and theirs_q:
                    better = (ours_q["sc"] < theirs_q["sc"] and ours_q["mcd_db"] < theirs_q["mcd_db"], ours_q, theirs_q)
            quality_text = "" if better is None else (f"; audio SC {better[1]['sc']:.3f} vs {better[2]['sc']:.3f}, MCD {better[1]['mcd_db']:.2f} vs {better[2]['mcd_db']:.2f} dB")
            met = ratio >= TARGET_DEFAULTS and (better is None or better[0])
            rows.append([f"trtgen's defaults >= {TARGET_DEFAULTS:g}x the original with audio at least as good (`{TRAINED_VOICE}`)",
                         f"{ratio:.2f}x{quality_text}", "met" if met else "MISSED"])
            if not met:
                notes.append(f"- `{TRAINED_VOICE}` defaults: " + _end_to_end_cause(original, default, TARGET_DEFAULTS))
            equal = by.get((TRAINED_VOICE, "original-equal-quality"))
            if equal:
                walls = list(zip(equal.get("walls", []), default.get("walls", [])))
                x = statistics.median(a / b for a, b in walls) if walls else default["utterances_per_s"] / equal["utterances_per_s"]
                rows.append([f"equal quality: the original with {equal['gl_iters']} classic iterations against trtgen's defaults (`{TRAINED_VOICE}`)",
                             f"{x:.2f}x", "for information"])
    if decoder and decoder["timings"]:
        for config in dict.fromkeys(t["config"] for t in decoder["timings"]):
            chunk = [t for t in decoder["timings"] if t["config"] == config and t["mode"] == "ort-chunk" and t["batch"] >= TARGET_HOST_MIN_BATCH]
            if not chunk:
                continue
            worst = max(chunk, key=lambda t: t["host_share"])
            met = worst["host_share"] <= TARGET_HOST_SHARE
            rows.append([f"host overhead <= {TARGET_HOST_SHARE:.0%} of decode time at batch >= {TARGET_HOST_MIN_BATCH} (`{config}`, ort-chunk K={worst['chunk_steps']}; issue 6)",
                         f"worst {100 * worst['host_share']:.1f}% (batch {worst['batch']})", "met" if met else "MISSED"])
            if not met:
                notes.append(
                    f"- Host overhead `{config}`: at batch {worst['batch']} the host spends {worst['host_ms_per_step']:.3f} ms per step "
                    f"against {worst['runtime_ms_per_step']:.3f} ms in the runtime (dropout-mask hashing, feeds, frame scatter, stop checks); "
                    "the share falls as the model grows (compare the full-size config). With overlapped stages this host time runs beside "
                    "the postnet and vocoder of other groups."
                )
    if vocoder and vocoder["rows"]:
        ratios = [(r["seconds"][r["librosa_form"]] / r["seconds"]["trtgen"], r) for r in vocoder["rows"]]
        worst_ratio, worst = min(ratios, key=lambda x: x[0])
        met = worst_ratio >= TARGET_VOCODER
        rows.append([f"Griffin-Lim >= {TARGET_VOCODER:g}x librosa at equal iterations (all cores; issue 6)",
                     f"worst {worst_ratio:.2f}x ({worst['iterations']} it, batch {worst['batch']})", "met" if met else "MISSED"])
    if not rows:
        return []
    lines = [*markdown_table(["target", "measured", "status"], rows, ["l", "r", "l"]), ""]
    return lines + [*notes, ""] if notes else lines


def _default_key() -> tuple[float, int]:
    from trtgen.engine.vocoder import GriffinLimOptions

    default = GriffinLimOptions()
    return default.momentum, default.n_iter


def _versus_original(seconds: float) -> str:
    ratio = seconds / (ORIGINAL_DAYS * 86400)
    return f"{ratio:.1f}x as long" if ratio >= 1 else f"{1 / ratio:.1f}x faster"


def projection_lines(e2e: dict[str, Any] | None) -> list[str]:
    if not e2e or not e2e["results"]:
        return ["(end-to-end benchmark not run)", ""]
    table = []
    for r in e2e["results"]:
        by_audio = LIBRISPEECH_HOURS * 3600 / r["audio_seconds_per_s"]
        by_count = LIBRISPEECH_UTTERANCES / r["utterances_per_s"]
        table.append([
            f"{r['method']} (`{r['config']}`)", fmt(r["audio_seconds_per_s"], 1), duration_text(by_audio), duration_text(by_count),
            _versus_original(by_audio),
        ])
    return [
        f"One LibriSpeech-size copy: {LIBRISPEECH_UTTERANCES:,} utterances, about {LIBRISPEECH_HOURS:.0f} h of audio, by one "
        "process on this machine at the measured end-to-end rates. 'From audio-s/s' scales by audio (the benchmark's "
        "utterances are 12.0 s, LibriSpeech's mean 12.3 s); 'from utt/s' by count. The original's 'one day' is the issue's "
        "figure for the original pipeline on its own (GPU) hardware; the `original` rows show the same recipe on this machine.",
        "",
        *markdown_table(["method", "audio-s/s", "960 h from audio-s/s", f"{LIBRISPEECH_UTTERANCES:,} utt from utt/s", "vs the original's ~1 day"], table),
        "",
    ]


# ---------------------------------------------------------------------------- main
def limit_lines(limits: dict[str, Any], e2e: dict[str, Any] | None) -> list[str]:
    """The limits table, and the end-to-end rate the stages' limits allow beside the measured one."""
    from bench_limits import limits_markdown, stage_limit_audio_rate

    lines = limits_markdown(limits)
    if not e2e:
        return lines
    table = []
    for r in e2e["results"]:
        vocoder = {"trtgen-default": "default"}.get(r["method"], "openseq2seq")
        if not r["method"].startswith("trtgen"):
            continue
        limit = stage_limit_audio_rate(limits, r["config"], vocoder)
        if limit is None:
            continue
        table.append([f"{r['method']} (`{r['config']}`)", f"{limit:.0f}", f"{r['audio_seconds_per_s']:.0f}", f"{r['audio_seconds_per_s'] / limit:.0%}"])
    if table:
        lines += [
            "End to end: the audio-s/s that both cores would give if every stage ran at its limit (decoder and postnet at the "
            "FLOP rate, Griffin-Lim at its bare FFTs; encoders, writing and Python left out), beside the measured rate "
            "(the end-to-end table below; fixed-length random models decode 960 frames, the trained voice stops on its own). "
            "The limit counts float32 work: a method with int8 graphs does less of it and may pass it.",
            "",
            *markdown_table(["method", "limit audio-s/s", "measured audio-s/s", "measured / limit"], table),
            "",
        ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small settings: checks the scripts in minutes")
    parser.add_argument("--output", type=Path, help="markdown report (default benchmarks/RESULTS.md; quick: benchmarks/results/quick/RESULTS.md)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="exported benchmark models and scratch output")
    parser.add_argument("--skip", default="", help="comma list of sections to skip: limits, decoder, vocoder, quality, precision, e2e, ray")
    parser.add_argument("--threads", type=int, help="ONNX Runtime / TensorFlow threads of the decoder benchmark (default: all cores)")
    args = parser.parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else argv
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    output = args.output or (BENCH_DIR / "results" / "quick" / "RESULTS.md" if args.quick else BENCH_DIR / "RESULTS.md")
    started = now()
    machine_info = machine()
    t0 = time.perf_counter()

    import bench_vocoder as bv
    from bench_decoder import DecoderSettings, decoder_markdown, run_decoder_bench
    from bench_end_to_end import EndToEndSettings, end_to_end_markdown, run_end_to_end
    from bench_limits import LimitSettings, run_limits
    from bench_precision import PrecisionSettings, precision_markdown, run_precision_bench

    limits = decoder = vocoder = quality = precision = e2e = ray = None
    if "limits" not in skip:
        limits = run_limits(LimitSettings.quick(work_dir=args.work_dir) if args.quick else LimitSettings(work_dir=args.work_dir))
    if "decoder" not in skip:
        settings = DecoderSettings.quick(work_dir=args.work_dir, threads=args.threads) if args.quick else DecoderSettings(work_dir=args.work_dir, threads=args.threads)
        decoder = run_decoder_bench(settings)
    if "vocoder" not in skip:
        vocoder = vocoder_bench([4] if args.quick else [4, 32], [1, 4] if args.quick else [1, 16], 1 if args.quick else 5)
    if "quality" not in skip:
        clips = bv.style_clips()
        quality = bv.quality_table(clips[:3] if args.quick else clips, bv.QUICK_QUALITY_ITERATIONS if args.quick else bv.QUALITY_ITERATIONS, bv.QUALITY_MOMENTA)
    if "precision" not in skip:
        precision = run_precision_bench(PrecisionSettings.quick(work_dir=args.work_dir) if args.quick else PrecisionSettings(work_dir=args.work_dir))
    if "e2e" not in skip:
        equal = None
        if quality:
            row = bv._row(quality, *_default_key())
            equal = bv.classic_iterations_to_match(quality, row) if row else None
        settings_e2e = (EndToEndSettings.quick(work_dir=args.work_dir, equal_quality_iterations=equal) if args.quick
                        else EndToEndSettings(work_dir=args.work_dir, repeats=3, equal_quality_iterations=equal))
        e2e = run_end_to_end(settings_e2e)
    if "ray" not in skip:
        from bench_ray import ray_lines

        ray = ray_lines(args.work_dir, 32 if args.quick else 256, 1 if args.quick else 2)
    load_after = os.getloadavg()
    version_info = versions()

    png = output.with_name("throughput.png")
    lines = header_lines("trtgen benchmarks" + (" (QUICK RUN: smoke-test settings, not reference figures)" if args.quick else ""),
                         command_line("benchmarks/run_all.py", argv_used), started, machine_info, version_info, load_after)
    if decoder:
        lines.append(f"- Decoder backends: {'; '.join(f'{k}: {v}' for k, v in decoder['backends'].items())}")
    lines += [
        f"- Total benchmark time: {(time.perf_counter() - t0) / 60:.1f} min",
        "- GPU: none in this run. The GPU figures (benchmarks/results/gpu.md, docs/gpu.md) are from earlier runs on a lent "
        "H100 and H200, with the vocoder default of the time (24 fast iterations); they were not rerun.",
        "",
    ]
    lines += ["## Targets", "", *target_lines(decoder, vocoder, e2e, quality, limits)]
    if limits:
        lines += ["## Limits: each stage against what this machine can do", "", *limit_lines(limits, e2e)]
    lines += ["## Projection: one LibriSpeech-size copy", "", *projection_lines(e2e)]
    if e2e:
        lines += [
            "## End to end",
            "",
            "Same N utterances, same weights, same batch size, each method in its own process, the methods interleaved in "
            "each of the repeats. Fixed-length configs (`small`, `openseq2seq`: random weights whose stop never fires) speak "
            "90-character LibriSpeech text windows (96 ids -> 960-frame cap = 12.0 s) in the M-AILABS sample styles; "
            f"`{TRAINED_VOICE}` is the realistic case: the shipped voice and its checkpoint speak its held-out sentences (3 to "
            "30 words, unsorted) in the four demo styles and stop on their own, so the original's batches run to their longest "
            "row while trtgen refills finished rows. `original`: TF2 reference (tf.functions: style and text encoders, "
            "tf.while_loop decode with in-graph dropout, postnet) + `librosa.griffinlim` per utterance + float32 WAV via "
            "soundfile, rows in list order; its tf.functions are traced on a warm-up batch first (excluded). trtgen's wall "
            "time includes loading and verifying the model and creating its ONNX Runtime sessions. Peak RSS = VmHWM of the "
            "method's process (the original's includes TensorFlow). Wasted decoder work: row-steps spent on rows that had "
            "already ended (0 for the fixed-length configs by construction).",
            "",
            *end_to_end_markdown(e2e),
        ]
    if precision:
        lines += ["## Reduced precision: int8 against float32", "", *precision_markdown(precision)]
    if ray:
        lines += ["## Ray: `trtgen generate --ray`", "", *ray, ""]
    if vocoder or quality:
        lines += ["## Vocoder: Griffin-Lim", ""]
        if vocoder:
            lines += vocoder_markdown(vocoder)
        if quality:
            lines += ["### Quality against iterations", "", *bv.quality_markdown(quality)]
    if decoder:
        lines += [
            "## Decoder",
            "",
            "Fixed-length mode: random models whose stop token never fires decode 985 frames per utterance (LibriSpeech's "
            "mean 12.3 s at hop 200) from the same encoder memory (99 symbols). `tf-loop`: the TF2 reference "
            "`tf.while_loop` in one `tf.function`; `ort-step`: ONNX Runtime's `decoder_step` called from Python each step; "
            "`ort-chunk`: trtgen's ChunkedDecoder (K steps per `decoder_chunk` call, K fixed in the graph at export); "
            "`tensorrt`: the same loop on TensorRT. ms/step is wall time per decoder step of the whole batch; host = wall "
            "minus time inside the runtime's calls (Python: masks, feeds, stop checks, frame copies); 'steps timed' a/b: a "
            "window of a of the b steps was timed when the whole decode did not fit the per-decode time budget (the cost "
            "of a step does not depend on its index). utt/s = batch / (ms/step x b). 'x tf-loop' compares utt/s at the "
            "same batch in this run. Medians over interleaved repeats.",
            "",
            f"![throughput vs batch size]({png.name})",
            "",
            *decoder_markdown(decoder),
        ]
    lines += [
        "",
        "## Measured apart from this run",
        "",
        "- Training step of the voice recipe (TensorFlow, CPU; needs an espeak-ng corpus): benchmarks/results/train_step.md "
        "(benchmarks/bench_train_step.py).",
        "- Griffin-Lim and `trtgen generate` on a GPU: benchmarks/results/gpu.md (benchmarks/bench_gpu.py); no GPU was lent "
        "for this run.",
        "- Style variety (`--copies NAME:RATE:SEED:STYLE`): what each style mode adds to speaking rate, F0 and spectral "
        "centroid, its quality-gate failure rate and its cost: benchmarks/results/variety.md (benchmarks/bench_variety.py).",
        "- Audio formats and output layouts (`--audio-format flac`, `--sample-rate`, `--layout shar|nemo-tarred`, `--out s3://`): "
        "bytes per audio hour, the cost of FLAC and shards, Ray into a local S3 server: benchmarks/results/layouts.md "
        "(benchmarks/bench_layouts.py).",
        "- A change against an earlier revision, side by side (`bench_end_to_end.py --base REV`): benchmarks/results/revisions.md "
        "(the labels work of issue 31; the quality gate's cost).",
    ]
    lines += ["", f"Raw numbers: {output.with_suffix('.json').name}. Reproduce: `{command_line('benchmarks/run_all.py', argv_used)}`.", ""]

    output.parent.mkdir(parents=True, exist_ok=True)
    if decoder and decoder["timings"]:
        from plot import plot_throughput

        plot_throughput(decoder["timings"], png, title=f"{machine_info['cpu']}, {machine_info['logical_cores']} cores, {started:%Y-%m-%d}")
    write_json(output.with_suffix(".json"), {"machine": machine_info, "versions": version_info, "command": command_line("benchmarks/run_all.py", argv_used),
                                             "date": started.isoformat(), "limits": limits, "decoder": decoder, "vocoder": vocoder,
                                             "quality": quality, "precision": precision, "end_to_end": e2e})
    output.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {output}" + (f" and {png}" if decoder and decoder["timings"] else ""))


if __name__ == "__main__":
    main()
