"""Reduced precision on the CPU: int8 postnet and decoder (``trtgen export --quantize``) against float32.

Usage: python benchmarks/bench_precision.py [--quick] [--configs voice-trained,openseq2seq] [--output PATH]

For each model, an int8 copy is made in the work directory (``trtgen_export.quantize``: static QDQ
quantisation calibrated on held-out sentences 0-63) and measured two ways:

* speed: each graph, float32 against int8, on the inputs it receives in a real run (recorded while
  the float model speaks), one thread and two, interleaved repeats, CPU time (a busy shared machine
  disturbs it far less than wall time);
* fidelity: the held-out sentences from 64 on (never seen by the calibration), spoken in the four
  demo styles by float32, by float32 with the int8 postnet, and with the int8 postnet and decoder;
  MCD of each utterance's audio against float32's (frame by frame when the lengths agree, MCD-DTW
  otherwise), stop step differences, and trtgen eval's alignment check.

This CPU (AMD EPYC, AVX2, no AVX-512, no VNNI) multiplies int8 with AVX2's ``vpmaddubsw``; ONNX
Runtime has no bf16 kernels for it. A variant becomes the CPU default (its int8 file shipped, picked by
``resolve_precision``) only where fidelity holds: MCD under 0.2 dB and the same stop step, within
one step, in at least 99% of utterances.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trtgen_export.quantize import QuantizeOptions  # noqa: E402

from common import (  # noqa: E402
    DEFAULT_WORK_DIR,
    REPO_ROOT,
    TRAINED_VOICE,
    benchmark_model,
    command_line,
    header_lines,
    machine,
    markdown_table,
    now,
    versions,
    write_json,
    write_report,
)

DEFAULT_MAX_MCD_DB = 0.2
DEFAULT_MIN_SAME_STOP = 0.99
"""The bar for an int8 graph to become the CPU default (same stop step within one step; docs/throughput.md, "int8 on the CPU")."""
CALIBRATION_SENTENCES = QuantizeOptions().sentences
VARIANTS = {"float32": (), "int8 postnet": ("postnet",), "int8 postnet + decoder": ("postnet", "decoder_chunk")}


@dataclasses.dataclass
class PrecisionSettings:
    configs: dict[str, int] = dataclasses.field(default_factory=lambda: {TRAINED_VOICE: 86, "openseq2seq": 16})
    """Config -> held-out sentences spoken for fidelity (from sentence 64 on; 86 is all that are left)."""
    repeats: int = 5
    work_dir: Path = DEFAULT_WORK_DIR

    @staticmethod
    def quick(**overrides: Any) -> PrecisionSettings:
        settings: dict[str, Any] = dict(configs={TRAINED_VOICE: 8}, repeats=1)
        settings.update(overrides)
        return PrecisionSettings(**settings)


def int8_model(config_name: str, work_dir: Path) -> Path:
    """The benchmark model with int8 postnet and decoder variants (common.benchmark_model, cached)."""
    return benchmark_model(config_name, work_dir, quantize=("postnet", "decoder_chunk"))


def _voice(directory: Path, graphs: tuple[str, ...], options: Any) -> Any:
    """A Voice whose ``graphs`` run in int8 and the rest in float32."""
    from trtgen import Voice
    from trtgen.engine.artifact import load_model
    from trtgen.engine.backends import create_backend
    from trtgen.engine.synthesis import Synthesizer

    model = load_model(directory)
    card = dataclasses.replace(model.card, graphs=dict(model.card.graphs) | {g: model.card.quantized[g] for g in graphs}, quantized={})
    model = dataclasses.replace(model, card=card, precision="int8" if graphs else "float32")
    return Voice(model, Synthesizer(model, create_backend(model, "onnxruntime", "cpu"), options))


def _rows(count: int) -> list[Any]:
    from trtgen import Row
    from trtgen.engine.shipped import shipped_styles
    from trtgen_export.train.sentences import HELDOUT, generate_sentences

    sentences = [s for s in generate_sentences() if s.split == HELDOUT][CALIBRATION_SENTENCES : CALIBRATION_SENTENCES + count]
    clips = list(shipped_styles().values())
    return [Row(f"fidelity{i:04d}", s.text, str(clips[i % len(clips)]), None, 11) for i, s in enumerate(sentences)]


def audio_mcd(candidate: np.ndarray, reference: np.ndarray) -> float:
    """MCD (dB) of ``candidate`` against ``reference`` over the reference's speech frames: frame by frame
    when the lengths agree, else along the DTW path (trtgen eval's MCD-DTW)."""
    from trtgen.engine.audio import log_mel, stft_magnitude
    from trtgen.evaluation.metrics import MCD_DB_PER_NEPER, mcd_dtw, mel_cepstrum, speech_frames

    ours, theirs = (log_mel(stft_magnitude(y)) for y in (candidate, reference))
    speech = speech_frames(theirs)
    if ours.shape == theirs.shape:
        diff = mel_cepstrum(ours[speech]) - mel_cepstrum(theirs[speech])
        return float((MCD_DB_PER_NEPER * np.sqrt(2.0 * (diff**2).sum(axis=1))).mean())
    return mcd_dtw(mel_cepstrum(ours[speech_frames(ours)]), mel_cepstrum(theirs[speech]))


def fidelity(directory: Path, rows: list[Any], trained: bool, log: Callable[[str], None] = print) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, np.ndarray]]]]:
    """Each variant against float32 on ``rows``; also the float run's recorded graph inputs (for the timing)."""
    from trtgen import Speech
    from trtgen.engine.synthesis import SynthesisOptions
    from trtgen.engine.text import last_spoken_index
    from trtgen.engine.vocoder import griffin_lim_preset
    from trtgen.engine.alignment import check_alignment
    from trtgen_export.quantize import FeedRecorder

    options = SynthesisOptions(vocoder=griffin_lim_preset("openseq2seq"))
    outputs: dict[str, dict[str, Any]] = {}
    recorders: dict[str, Any] = {}
    for name, graphs in VARIANTS.items():
        voice = _voice(directory, graphs, options)
        if not graphs:
            s = voice.synthesizer
            recorders = {"postnet": FeedRecorder(s.postnet.runner, 8), "decoder_chunk": FeedRecorder(s.decoder_runner.runner, 16)}
            s.postnet.runner, s.decoder_runner.runner = recorders["postnet"], recorders["decoder_chunk"]
        outputs[name] = {r.id: r for r in voice.stream(rows, alignments=True, lookahead=None) if isinstance(r, Speech)}
        text = voice.card.text
    reference = outputs["float32"]
    results = []
    for name, spoken in outputs.items():
        if name == "float32":
            continue
        mcd, steps, aligned, aligned_ref = [], [], 0, 0
        for key, ref in reference.items():
            out = spoken[key]
            mcd.append(audio_mcd(out.audio, ref.audio))
            steps.append(abs(out.steps - ref.steps))
            if trained:
                eos = int(np.flatnonzero(ref.text_ids == text.eos_id)[0])
                end = last_spoken_index(ref.text_ids, text)
                aligned_ref += check_alignment(ref.alignment, eos, end_index=end).ok
                aligned += check_alignment(out.alignment, eos, end_index=end).ok
        mcd_a, steps_a = np.array(mcd), np.array(steps)
        results.append({
            "variant": name, "utterances": len(reference), "mcd_db_mean": float(mcd_a.mean()), "mcd_db_p95": float(np.percentile(mcd_a, 95)),
            "mcd_db_max": float(mcd_a.max()), "same_stop_within_1": float((steps_a <= 1).mean()), "same_stop": float((steps_a == 0).mean()),
            "max_step_difference": int(steps_a.max()), "aligned": aligned if trained else None, "aligned_float32": aligned_ref if trained else None,
        })
        log(f"  {name}: MCD {mcd_a.mean():.3f} dB (p95 {np.percentile(mcd_a, 95):.3f}), stop within one step {(steps_a <= 1).mean():.1%}")
    return results, {graph: recorder.kept() for graph, recorder in recorders.items()}


def speed(directory: Path, feeds: dict[str, list[dict[str, np.ndarray]]], repeats: int) -> list[dict[str, Any]]:
    """CPU seconds of each graph over its recorded inputs, float32 against int8, on one and two threads."""
    import onnxruntime as ort

    from trtgen.engine.artifact import load_model

    model = load_model(directory)
    rows = []
    for graph, inputs in feeds.items():
        for threads in (1, 2):
            sessions = {}
            for precision, spec in (("float32", model.card.graphs[graph]), ("int8", model.card.quantized[graph])):
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.log_severity_level = 3
                sessions[precision] = ort.InferenceSession(str(directory / spec.file), options, providers=["CPUExecutionProvider"])
            cpu: dict[str, list[float]] = {k: [] for k in sessions}
            wall: dict[str, list[float]] = {k: [] for k in sessions}
            for session in sessions.values():
                session.run(None, inputs[0])
            for _ in range(repeats):
                for precision, session in sessions.items():
                    c0, w0 = time.process_time(), time.perf_counter()
                    for feed in inputs:
                        session.run(None, feed)
                    cpu[precision].append(time.process_time() - c0)
                    wall[precision].append(time.perf_counter() - w0)
            f32, i8 = statistics.median(cpu["float32"]), statistics.median(cpu["int8"])
            rows.append({
                "graph": graph, "threads": threads, "calls": len(inputs), "float32_cpu_s": f32, "int8_cpu_s": i8, "speedup_cpu": f32 / i8,
                "float32_wall_s": statistics.median(wall["float32"]), "int8_wall_s": statistics.median(wall["int8"]),
            })
    return rows


def run_precision_bench(settings: PrecisionSettings, log: Callable[[str], None] = print) -> dict[str, Any]:
    results = []
    for config, count in settings.configs.items():
        directory = int8_model(config, settings.work_dir)
        log(f"precision {config}: fidelity on {count} held-out sentences")
        fid, feeds = fidelity(directory, _rows(count), config == TRAINED_VOICE, log)
        timing = speed(directory, feeds, settings.repeats)
        for t in timing:
            log(f"  {t['graph']} {t['threads']} thread(s): int8 {t['speedup_cpu']:.2f}x float32 (CPU time)")
        results.append({"config": config, "model": str(directory), "fidelity": fid, "speed": timing})
    return {"settings": {"configs": settings.configs, "repeats": settings.repeats}, "results": results}


def verdict(row: dict[str, Any]) -> bool:
    return row["mcd_db_mean"] < DEFAULT_MAX_MCD_DB and row["same_stop_within_1"] >= DEFAULT_MIN_SAME_STOP


def precision_markdown(data: dict[str, Any]) -> list[str]:
    lines = [
        "int8 = ONNX Runtime static quantisation (QDQ; weights int8 per output channel, activations uint8 with "
        f"scales calibrated on held-out sentences 0-{CALIBRATION_SENTENCES - 1}; `trtgen export --quantize`). This CPU "
        "has AVX2 but neither AVX-512 nor VNNI: ONNX Runtime multiplies u8 x s8 with `vpmaddubsw`; it has no bf16 "
        "kernels for this CPU, so bf16 was not measured. Postnet: only the residual convolutions in int8 (the "
        "magnitude branch, whose output goes through exp, stays float32); decoder: the matrix products with "
        "constant weights.",
        "",
        "Speed: CPU seconds for the graph's inputs recorded in a real run (decoder: a sample of its chunk calls at "
        "batch up to 32; postnet: groups of 16 utterances), median of interleaved repeats.",
        "",
    ]
    table = []
    for result in data["results"]:
        for t in result["speed"]:
            table.append([f"`{result['config']}`", t["graph"], t["threads"], t["calls"], f"{t['float32_cpu_s']:.2f}", f"{t['int8_cpu_s']:.2f}", f"{t['speedup_cpu']:.2f}x"])
    lines += [*markdown_table(["model", "graph", "threads", "calls", "float32 CPU s", "int8 CPU s", "int8 speed-up"], table), ""]
    lines += [
        "Fidelity against float32 (same rows, dropout masks and Griffin-Lim phases; 4 classic iterations): MCD of "
        "the audio (dB, c1-c24, over float32's speech frames; frame by frame, or MCD-DTW when the lengths differ), "
        "stop steps, trtgen eval's alignment check (trained voice only: a random model's attention means nothing, "
        "and its stop never fires). Default on the CPU when MCD < "
        f"{DEFAULT_MAX_MCD_DB} dB and the stop step is the same within one step in >= {DEFAULT_MIN_SAME_STOP:.0%}.",
        "",
    ]
    table = []
    for result in data["results"]:
        for f in result["fidelity"]:
            aligned = "-" if f["aligned"] is None else f"{f['aligned']}/{f['utterances']} (float32 {f['aligned_float32']})"
            table.append([
                f"`{result['config']}`", f["variant"], f["utterances"], f"{f['mcd_db_mean']:.3f}", f"{f['mcd_db_p95']:.3f}", f"{f['mcd_db_max']:.3f}",
                f"{f['same_stop']:.0%}", f"{f['same_stop_within_1']:.0%}", f["max_step_difference"], aligned, "yes" if verdict(f) else "no",
            ])
    lines += [*markdown_table(
        ["model", "int8 graphs", "utterances", "MCD mean dB", "MCD p95", "MCD max", "same stop", "stop within 1", "max step diff", "aligned", "fidelity holds"],
        table,
    ), ""]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--configs", help="CONFIG:N,... (default voice-trained:86,openseq2seq:16)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--output", type=Path, help="markdown report (default benchmarks/results/precision.md; quick: print only)")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {"work_dir": args.work_dir}
    if args.configs:
        overrides["configs"] = {c.split(":")[0]: int(c.split(":")[1]) for c in args.configs.split(",")}
    settings = PrecisionSettings.quick(**overrides) if args.quick else PrecisionSettings(**overrides)
    started, info = now(), machine()
    data = run_precision_bench(settings)
    lines = header_lines("int8 against float32 on the CPU", command_line("benchmarks/bench_precision.py", sys.argv[1:] if argv is None else argv),
                         started, info, versions(("numpy", "onnxruntime", "onnx", "trtgen")))
    lines += ["", *precision_markdown(data)]
    output = args.output or (None if args.quick else REPO_ROOT / "benchmarks" / "results" / "precision.md")
    if output is None:
        print("\n".join(lines))
    else:
        write_report(output, lines)
        write_json(output.with_suffix(".json"), data)
        print(f"wrote {output}")


if __name__ == "__main__":
    main()
