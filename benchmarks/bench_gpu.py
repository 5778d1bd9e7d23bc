"""What a CUDA GPU adds without TensorRT: Griffin-Lim on CuPy, and ONNX Runtime's CUDA provider, in `trtgen generate`.

Usage: python benchmarks/bench_gpu.py [--quick] [--output PATH]

Needs CuPy and a CUDA GPU; needs neither TensorFlow, librosa nor the shared sample data, so it runs on a
bare GPU machine with the runtime's dependencies. Two parts, every ratio from this one run:

1. Griffin-Lim throughput, numpy on all cores vs CuPy, on 12.3-s magnitudes (985 frames) cut from the
   shipped voice's espeak-ng style clips (the cost does not depend on the content), at OpenSeq2Seq's 4
   classic iterations and trtgen's default (24 fast iterations); medians of interleaved repeats, the GPU
   synchronised before each clock read; plus the relative difference of the two outputs.
2. `run_generate` with the shipped voice on the demo sentences x the four style clips, repeated under
   new ids: decoder on ONNX Runtime's CPU provider (every core) with the vocoder on the CPU, then on the
   GPU (``vocoder_device``), and, where ONNX Runtime offers CUDA, everything on the GPU; wall time, the
   stage table, and the largest relative difference between the runs' WAVs (float32).

Writes benchmarks/results/gpu.md (or --output) and prints it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO_ROOT, command_line, header_lines, machine, markdown_table, now, time_interleaved, versions  # noqa: E402

from trtgen.engine.config import AudioConfig  # noqa: E402
from trtgen.commands.demo import demo_rows  # noqa: E402
from trtgen.engine.shipped import shipped_styles  # noqa: E402
from trtgen.fileio import write_jsonl  # noqa: E402
from trtgen.commands.generate import GenerateOptions, parse_copies, run_generate  # noqa: E402
from trtgen.engine.voice import VoiceSpec  # noqa: E402
from trtgen.engine.spectral import stft  # noqa: E402
from trtgen.engine.synthesis import SynthesisOptions  # noqa: E402
from trtgen.engine.vocoder import GriffinLimOptions, griffin_lim, vocoder_array_module  # noqa: E402

AUDIO = AudioConfig()
FRAMES = 985
DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "results" / "gpu.md"


def log(message: str) -> None:
    print(f"[bench_gpu] {message}", flush=True)


def magnitudes_12s(count: int) -> list[np.ndarray]:
    """``count`` different 985-frame magnitudes: windows of the shipped style clips, concatenated and tiled."""
    clips = [soundfile.read(str(p), dtype="float32")[0] for p in shipped_styles().values()]
    speech = np.concatenate(clips)
    samples = AUDIO.hop_length * (FRAMES - 1)
    speech = np.tile(speech, samples // speech.size + 2)
    step = max(1, (speech.size - samples) // max(1, count))
    return [np.abs(stft(speech[i * step : i * step + samples], AUDIO)).astype(np.float32) for i in range(count)]


def vocoder_part(cupy: Any, batches: list[int], repeats: int) -> list[list[str]]:
    mags = magnitudes_12s(max(batches))
    seconds_per_item = AUDIO.hop_length * (FRAMES - 1) / AUDIO.sample_rate
    rows = []
    for label, options in (("4 classic", GriffinLimOptions(n_iter=4, momentum=0.0)), ("24 fast (default)", GriffinLimOptions())):
        for batch in batches:
            items, keys = mags[:batch], list(range(batch))
            on_device = [cupy.asarray(m) for m in items]

            def on_gpu(items: list[Any] = on_device, keys: list[int] = keys, options: GriffinLimOptions = options) -> list[Any]:
                out = griffin_lim(items, keys, options, AUDIO, xp=cupy)
                cupy.cuda.Device().synchronize()
                return out

            contenders: dict[str, Callable[[], object]] = {"gpu": on_gpu}
            if batch <= 64:
                contenders["cpu"] = lambda items=items, keys=keys, options=options: griffin_lim(items, keys, options, AUDIO)
            medians = time_interleaved(contenders, repeats)
            difference = "-"
            if "cpu" in medians:
                a = griffin_lim(items[:4], keys[:4], options, AUDIO)
                b = [cupy.asnumpy(w) for w in griffin_lim(on_device[:4], keys[:4], options, AUDIO, xp=cupy)]
                difference = f"{max(np.linalg.norm(x - y) / np.linalg.norm(x) for x, y in zip(a, b)):.1e}"
            audio = batch * seconds_per_item
            cpu = medians.get("cpu")
            rows.append([
                label, str(batch),
                f"{cpu * 1e3:.0f} ({audio / cpu:.0f})" if cpu else "-",
                f"{medians['gpu'] * 1e3:.1f} ({audio / medians['gpu']:.0f})",
                f"{cpu / medians['gpu']:.1f}x" if cpu else "-",
                difference,
            ])
            log(f"vocoder {label}, batch {batch}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in medians.items()))
    return rows


def generate_part(repeat: int, batch_size: int, configs: list[tuple[str, str]]) -> tuple[list[list[str]], list[str]]:
    """``configs``: (decoder device, vocoder device) pairs, each run twice, interleaved; the second run counts."""
    rows_in = demo_rows(repeats=repeat)
    results: dict[str, tuple[Any, float]] = {}
    waves: dict[str, dict[str, np.ndarray]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "infer.jsonl"
        write_jsonl(listing, rows_in)
        for decoder, vocoder in configs + configs:
            label = f"decoder {decoder}, vocoder {vocoder}"
            out = Path(tmp) / "out"
            started = time.perf_counter()
            voice = VoiceSpec(backend="onnxruntime", device=decoder, synthesis=SynthesisOptions(batch_size=batch_size, vocoder_device=vocoder))
            report = run_generate(GenerateOptions(
                list_path=listing, out_dir=out, voice=voice, copies=parse_copies("copy:0.5:1"), sample_format="float32",
            ))
            results[label] = (report, time.perf_counter() - started)
            waves[label] = {r["id"]: soundfile.read(str(out / "copy" / f"{r['id']}.wav"), dtype="float32")[0] for r in rows_in}
            shutil.rmtree(out)
            log(f"generate, {label}: {report.copies[0].written} utterances in {results[label][1]:.1f} s")
    table, stages = [], []
    for label, (report, wall) in results.items():
        audio = sum(c.audio_seconds for c in report.copies)
        seconds = report.times.seconds
        table.append([label, str(report.copies[0].written), f"{audio:.0f}", f"{wall:.1f}", f"{audio / wall:.0f}",
                      *(f"{seconds.get(s, 0.0):.1f}" for s in ("decoder", "postnet", "vocoder"))])
        stages.append(f"- {label} ({report.backend}): " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(seconds.items())))
    labels = list(results)
    for label in labels[1:]:
        same = [k for k, w in waves[labels[0]].items() if waves[label][k].shape == w.shape]
        worst = max((float(np.linalg.norm(waves[label][k] - waves[labels[0]][k]) / max(np.linalg.norm(waves[labels[0]][k]), 1e-12)) for k in same), default=float("nan"))
        stages.append(f"- {label} vs {labels[0]}: {len(same)} of {len(rows_in)} WAVs of equal length, largest relative difference among them {worst:.1e}")
    return table, stages


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, batches and utterances")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    try:
        cupy = vocoder_array_module("cuda")
    except ValueError as error:
        raise SystemExit(f"bench_gpu: {error}") from None
    started = now()
    repeats = 3 if args.quick else 5
    batches = [1, 16, 64] if args.quick else [1, 16, 64, 256]
    vocoder_rows = vocoder_part(cupy, batches, repeats)
    import onnxruntime

    configs = [("cpu", "cpu"), ("cpu", "cuda")]
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        configs.append(("cuda", "cuda"))
    generate_rows, stage_lines = generate_part(repeat=2 if args.quick else 8, batch_size=32, configs=configs)

    lines = header_lines("GPU without TensorRT: Griffin-Lim on CuPy, ONNX Runtime on CUDA", command_line("benchmarks/bench_gpu.py", argv or sys.argv[1:]),
                         started, machine(), versions(("numpy", "scipy", "onnxruntime", "cupy", "soundfile", "trtgen")))
    lines += [f"- ONNX Runtime providers here: {', '.join(onnxruntime.get_available_providers())}", ""]
    lines += ["## Griffin-Lim, 12.3-s items: ms per batch (audio seconds per second)", ""]
    lines += markdown_table(["iterations", "batch", "numpy, all cores", "CuPy", "speed-up", "relative difference"], vocoder_rows)
    lines += ["", "## `run_generate`, shipped voice, ONNX Runtime, batch 32", ""]
    lines += markdown_table(["devices", "utterances", "audio s", "wall s", "audio-s/s", "decoder s", "postnet s", "vocoder s"], generate_rows)
    lines += ["", *stage_lines, ""]
    text = "\n".join(lines)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
