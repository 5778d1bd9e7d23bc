"""``trtgen generate --ray``: what Ray costs on this machine, and a model of a cluster built from it.

Usage: python benchmarks/bench_ray.py [--utterances 256] [--repeats 2] [--output benchmarks/results/ray.md]

1. Overhead, side by side on the same list (the shipped voice speaking its held-out sentences in the
   four shipped styles, one copy, default vocoder): one ordinary process with two ONNX Runtime threads
   against ``--ray local --workers 2`` with one thread each, each in a fresh child process, rounds
   interleaved. Reported: wall time, Ray's one-time start-up (connecting or starting Ray, starting the
   workers, loading the model in each) apart, and the rest compared with the single process's time
   after its own start-up (loading the model). Both runs must write the same bytes (checked).
2. The driver's cost per block, measured with workers that render nothing: a block of B jobs goes out
   and B outcomes come back (the real payload, pickled by Ray), the driver then appends B records as it
   does in a run. From it, the driver's ceiling in utterances per second.
3. The projection: one LibriSpeech-size copy (281,241 utterances, 960 h, about 110 GB of 16-bit audio)
   on G GPUs: the larger of the compute time (at the per-GPU rate measured on a lent GPU, named in the
   table), the driver's time, and the storage's time at a given write bandwidth.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    DEFAULT_WORK_DIR,
    LIBRISPEECH_HOURS,
    LIBRISPEECH_UTTERANCES,
    command_line,
    header_lines,
    machine,
    markdown_table,
    now,
    versions,
    write_report,
)

_RESULT = "RAY-RESULT "
GPU_RATE_AUDIO_S_PER_S = 216.0
"""One NVIDIA H200, the shipped voice, everything on the GPU (ONNX Runtime CUDA + CuPy vocoder), 192
utterances: docs/gpu.md and benchmarks/results/gpu.md (2026-12-04). The only per-GPU figure measured."""
COPY_GB = LIBRISPEECH_HOURS * 3600 * 16000 * 2 / 1e9
"""One copy of 16-bit mono 16-kHz audio: about 110 GB."""


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One generate run in this (fresh) process; returns its figures."""
    from trtgen.commands.generate import generate_options, run_generate

    options = generate_options(
        list_path=Path(spec["list"]), out_dir=Path(spec["out"]), copies="c:0.5:1", threads=spec["threads"],
        ray=spec.get("ray"), workers=spec.get("workers", 1),
    )
    report = run_generate(options)
    return {
        "wall_s": report.wall_seconds, "startup_s": report.startup_seconds, "utterances": report.written,
        "audio_s": report.audio_seconds,
        "workers": [{"worker": w.worker, "utterances": w.utterances, "busy_s": w.busy_seconds} for w in report.workers],
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT):
            return json.loads(line[len(_RESULT):])
    raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def same_bytes(a: Path, b: Path) -> bool:
    files = lambda root: {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}  # noqa: E731
    return files(a) == files(b)


def overhead(list_path: Path, work: Path, repeats: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"single": [], "ray": []}
    identical = True
    for repeat in range(repeats):
        outs = {}
        for name, extra in (("single", {"threads": 2}), ("ray", {"threads": 1, "ray": "local", "workers": 2})):
            out = work / f"{name}-{repeat}"
            shutil.rmtree(out, ignore_errors=True)
            runs[name].append(run_child({"list": str(list_path), "out": str(out), **extra}))
            outs[name] = out
        identical = identical and same_bytes(outs["single"], outs["ray"])
        for out in outs.values():
            shutil.rmtree(out, ignore_errors=True)
    median = {name: sorted(rs, key=lambda r: r["wall_s"] - r["startup_s"])[(len(rs) - 1) // 2] for name, rs in runs.items()}
    return {"runs": runs, "median": median, "identical": identical}


def driver_cost(block_sizes: list[int], rounds: int = 20) -> list[dict[str, float]]:
    """Seconds per block on the driver's side with workers that render nothing (payload as in a run)."""
    import ray
    from ray.util import ActorPool

    from trtgen.commands.cluster import _Block
    from trtgen.commands.jobs import Job, Outcome
    from trtgen.commands.writers import CopyWriter, UtteranceRecord
    from trtgen.engine.decode import DecodeStats

    @ray.remote(num_cpus=1)
    class Echo:
        def render(self, jobs: list[Job]) -> _Block:
            outcomes = [Outcome(j, frames=985, steps=329, duration_s=12.3, stopped=True, text=j.text, audio_sha256="0" * 64, audio_bytes=393644) for j in jobs]
            return _Block(outcomes, "echo", 0.0, {"decoder": 1.0, "postnet": 1.0, "vocoder": 1.0}, DecodeStats())

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    results = []
    try:
        pool = ActorPool([Echo.remote(), Echo.remote()])
        text = "he hoped there would be stew for dinner turnips and carrots and bruised potatoes and fat mutton pieces"
        with tempfile.TemporaryDirectory() as directory:
            for size in block_sizes:
                jobs = [Job(i, f"{i:06d}-0000-0000", text, "/data/M-AILABS/en_US/by_book/x/wavs/clip.wav", "c", 0.5, 1, directory,
                            f"{i:06d}.wav", "0" * 64) for i in range(size)]
                writer = CopyWriter(Path(directory) / f"b{size}", {"sample_rate": 16000, "sample_format": "pcm16"}, shard=None, naming="id")
                writer.open(resume=False, expected={})
                writer.start()
                list(pool.map_unordered(lambda a, b: a.render.remote(b), [jobs] * 2))  # warm
                started = time.perf_counter()
                for block in pool.map_unordered(lambda a, b: a.render.remote(b), [jobs] * rounds):
                    for o in block.outcomes:
                        writer.append(UtteranceRecord(
                            id=o.job.id, index=o.job.index, text=o.text, text_input=None, style=o.job.style, copy="c", dropout=0.5,
                            seed=1, frames=o.frames, steps=o.steps, duration_s=o.duration_s, stopped=True, capped=False,
                            audio=o.job.audio, audio_bytes=o.audio_bytes, audio_sha256=o.audio_sha256, inputs_sha256=o.job.inputs_sha256,
                        ))
                seconds = (time.perf_counter() - started) / rounds
                writer.abort()
                results.append({"block": size, "seconds_per_block": seconds, "utterances_per_s": size / seconds})
    finally:
        ray.shutdown()
    return results


def data_versus_core(blocks: int = 40, block_seconds: float = 0.5, load_seconds: float = 1.0) -> dict[str, float]:
    """The same synthetic job (``blocks`` blocks of busy work, 2 workers that each take ``load_seconds`` to
    start) through Ray Data's ``map_batches`` with an actor pool and through Ray Core's ``ActorPool``."""
    import ray
    import ray.data
    from ray.util import ActorPool

    def busy(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    class DataWorker:
        def __init__(self) -> None:
            busy(load_seconds)

        def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
            busy(block_seconds)
            return batch

    @ray.remote(num_cpus=1)
    class CoreWorker:
        def __init__(self) -> None:
            busy(load_seconds)

        def render(self, block: list[int]) -> list[int]:
            busy(block_seconds)
            return block

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        started = time.perf_counter()
        dataset = ray.data.from_items([{"x": i} for i in range(blocks * 10)], override_num_blocks=blocks).map_batches(
            DataWorker, batch_size=10, compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1
        )
        sum(len(batch["x"]) for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"))
        data = time.perf_counter() - started
        started = time.perf_counter()
        pool = ActorPool([CoreWorker.remote() for _ in range(2)])
        sum(len(b) for b in pool.map_unordered(lambda a, b: a.render.remote(b), [list(range(10))] * blocks))
        core = time.perf_counter() - started
    finally:
        ray.shutdown()
    return {"ideal": load_seconds + blocks * block_seconds / 2, "ray_data": data, "ray_core": core, "blocks": blocks, "block_s": block_seconds}


def projection(per_utterance_s: float) -> list[list[str]]:
    rows = []
    for gpus in (8, 64, 512):
        compute = LIBRISPEECH_HOURS * 3600 / (gpus * GPU_RATE_AUDIO_S_PER_S)
        driver = LIBRISPEECH_UTTERANCES * per_utterance_s
        storage = {bandwidth: COPY_GB / bandwidth for bandwidth in (1.0, 10.0)}
        wall = max(compute, driver, storage[10.0])
        bound = "compute" if wall == compute else ("driver" if wall == driver else "storage (10 GB/s)")
        rows.append([str(gpus), f"{compute / 60:.1f}", f"{driver / 60:.1f}", f"{storage[1.0] / 60:.1f}", f"{storage[10.0] / 60:.1f}",
                     f"{wall / 60:.1f}", bound])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--utterances", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "ray.md")
    args = parser.parse_args(argv)
    if args.child:
        print(_RESULT + json.dumps(child(json.loads(args.child))), flush=True)
        return
    started, machine_info = now(), machine()
    body = ray_lines(Path(args.work_dir), args.utterances, args.repeats)
    lines = header_lines(
        "trtgen generate --ray: overhead and a cluster model", command_line("benchmarks/bench_ray.py", argv or sys.argv[1:]), started,
        machine_info, versions(("numpy", "onnxruntime", "ray", "trtgen")), load_after=machine()["load_average"],
    )
    write_report(args.output, lines + [""] + body)
    print("\n".join(lines + [""] + body))


def ray_lines(work_dir: Path, utterances: int = 256, repeats: int = 2) -> list[str]:
    """The measurements (overhead, driver cost, Ray Data vs Core) and the projection, as markdown."""
    from bench_end_to_end import prepare_voice_inputs

    work = Path(work_dir) / "ray"
    work.mkdir(parents=True, exist_ok=True)
    list_path = prepare_voice_inputs(work, utterances)
    measured = overhead(list_path, work, repeats)
    blocks = driver_cost([16, 64, 256])
    engines = data_versus_core()
    single, ray_run = measured["median"]["single"], measured["median"]["ray"]
    single_work = single["wall_s"] - single["startup_s"]
    per_utterance = min(b["seconds_per_block"] / b["block"] for b in blocks if b["block"] == 256)
    lines: list[str] = []
    lines += [f"### Overhead: {single['utterances']} utterances, shipped voice, one copy, medians of {repeats} interleaved rounds", ""]
    rows = []
    for name, r in (("one process, 2 threads", single), ("--ray local --workers 2, 1 thread each", ray_run)):
        work_s = r["wall_s"] - r["startup_s"]
        rows.append([name, f"{r['wall_s']:.1f}", f"{r['startup_s']:.1f}", f"{work_s:.1f}", f"{r['audio_s'] / work_s:.1f}",
                     f"{100 * (work_s - single_work) / single_work:+.1f}%"])
    lines += markdown_table(["run", "wall s", "start-up s", "after start-up s", "audio-s/s", "vs one process"], rows, ["l", "r", "r", "r", "r", "r"])
    lines += [
        "",
        f"Same bytes in both runs: {'yes' if measured['identical'] else 'NO'}. Start-up: the single process loads the model; "
        "Ray starts a private instance, two worker processes, and a model in each (a real run pays it once, for hours of work). "
        "Every round, after start-up: " + "; ".join(
            f"{name} " + ", ".join(f"{r['wall_s'] - r['startup_s']:.1f}" for r in rs) + " s" for name, rs in measured["runs"].items()
        ) + ".",
        "",
        "### The driver's cost per block (workers that render nothing; 2 workers)",
        "",
    ]
    lines += markdown_table(
        ["block (utterances)", "ms per block", "driver ceiling, utterances/s"],
        [[b["block"], f"{1e3 * b['seconds_per_block']:.1f}", f"{b['utterances_per_s']:,.0f}"] for b in blocks], ["r", "r", "r"],
    )
    lines += [
        "",
        f"### One LibriSpeech-size copy on G GPUs ({LIBRISPEECH_UTTERANCES:,} utterances, {LIBRISPEECH_HOURS:.0f} h, {COPY_GB:.0f} GB)",
        "",
        f"Compute at {GPU_RATE_AUDIO_S_PER_S:.0f} audio-s/s per GPU: one H200, shipped voice, everything on the GPU (docs/gpu.md), the "
        f"only per-GPU rate measured; a full-size model is slower. Driver: {LIBRISPEECH_UTTERANCES:,} x {1e6 * per_utterance:.0f} us "
        "(the measured cost per utterance in blocks of 256). Storage: 110 GB at 1 GB/s (one NFS server) or 10 GB/s (a parallel file system).",
        "",
    ]
    lines += markdown_table(
        ["GPUs", "compute min", "driver min", "storage 1 GB/s min", "storage 10 GB/s min", "wall min (10 GB/s)", "bound by"],
        projection(per_utterance), ["r", "r", "r", "r", "r", "r", "l"],
    )
    lines += [
        "",
        f"### Ray Data or Ray Core: the same synthetic job ({engines['blocks']} blocks of {engines['block_s']} s of busy work, "
        "2 workers that take 1 s to start)",
        "",
    ]
    lines += markdown_table(
        ["engine", "wall s", "over the ideal"],
        [[name, f"{engines[key]:.1f}", f"{engines[key] - engines['ideal']:+.1f} s"]
         for name, key in (("ideal (start + work / 2)", "ideal"), ("Ray Data map_batches, actor pool", "ray_data"), ("Ray Core ActorPool (trtgen)", "ray_core"))],
        ["l", "r", "r"],
    )
    gpu_seconds = LIBRISPEECH_HOURS * 3600 / GPU_RATE_AUDIO_S_PER_S
    driver_s = LIBRISPEECH_UTTERANCES * per_utterance
    lines += [
        "",
        "Where adding GPUs stops helping (compute time = the other limit): "
        f"about {gpu_seconds / (COPY_GB / 1.0):,.0f} GPUs with storage at 1 GB/s, {gpu_seconds / (COPY_GB / 10.0):,.0f} at 10 GB/s, "
        f"{gpu_seconds / driver_s:,.0f} for the driver (one Python process writing every record). Below those, a copy's wall "
        "time is the compute time plus the one-time start-up (seconds to a minute: workers load the model in parallel).",
    ]
    return lines


if __name__ == "__main__":
    main()
