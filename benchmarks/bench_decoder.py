"""Decoder throughput: the TF2 reference loop vs ONNX Runtime per step vs trtgen's chunked loop (vs TensorRT).

Usage: python benchmarks/bench_decoder.py [--quick] [--configs small,openseq2seq] [--batches 1,2,4] [--json PATH]

Fixed-length mode: random models (``trtgen_export.variables.random_weights``, whose stop token never fires)
decode ``--frames`` frames per utterance (985: LibriSpeech's mean utterance of ~12.3 s at hop 200);
every mode gets the same encoder memory (99 symbols, so the 10-frames-per-symbol cap is above 985).

Modes, all on the same model weights:
- ``tf-loop``: ``TacotronGST.decode`` (the reference ``tf.while_loop``, seeded in-graph prenet dropout)
  inside one ``tf.function`` with an input signature: the loop never leaves TensorFlow's runtime.
- ``ort-step``: the ``decoder_step`` ONNX graph called once per step from a Python loop.
- ``ort-chunk``: trtgen's ChunkedDecoder, K steps per ``decoder_chunk`` call (K fixed in the graph
  at export; the K sweep exports one model per K, cached in the work directory).
- ``tensorrt``: the same loop on TensorRT engines (only with a CUDA GPU and the tensorrt package;
  otherwise listed as skipped with the reason).

Host time (ort modes) = wall time of the decode minus time inside the runtime's calls. A timed decode
that would exceed ``--step-budget`` seconds is cut to a window of its steps (per-step cost does not
depend on the step index: attention spans the text, not the frames so far); utterances/s are always
computed for whole 985-frame utterances. Batches that would overrun a config's time budget (one for
the batch table, one for the K sweep) are skipped and listed with the reason.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_WORK_DIR, benchmark_model, fmt, markdown_table, random_weights_for, write_json  # noqa: E402
from trtgen.commands.bench import (  # noqa: E402
    LIBRISPEECH_MEAN_FRAMES,
    DecoderTiming,
    fixed_length_requests,
    median_timings,
    steps_for_budget,
    steps_per_utterance,
    time_chunked,
    time_step_loop,
)

ALL_MODES = ("tf-loop", "ort-step", "ort-chunk", "tensorrt")
ALL_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass
class DecoderSettings:
    configs: tuple[str, ...] = ("small", "openseq2seq")
    batches: tuple[int, ...] = ALL_BATCHES
    modes: tuple[str, ...] = ALL_MODES
    sweep_chunk_steps: tuple[int, ...] = (1, 4, 8, 16, 32)
    sweep_batches: tuple[int, ...] = (8, 64)
    frames: int = LIBRISPEECH_MEAN_FRAMES
    repeats: int = 3
    step_budget_s: float = 6.0
    """Longest single timed decode; beyond it a window of the fixed length is timed."""
    config_budget_s: dict[str, float] = field(default_factory=lambda: {"small": 600.0, "openseq2seq": 1200.0})
    """Time allowed per config for the batch table (all batches and modes); batches that would overrun it are skipped."""
    sweep_budget_s: dict[str, float] = field(default_factory=lambda: {"small": 150.0, "openseq2seq": 300.0})
    """Time allowed per config for the K sweep (exports excluded)."""
    threads: int | None = None
    work_dir: Path = DEFAULT_WORK_DIR

    @staticmethod
    def quick(**overrides: Any) -> DecoderSettings:
        settings: dict[str, Any] = dict(
            configs=("small",), batches=(1, 8, 32), sweep_chunk_steps=(1, 8, 32), sweep_batches=(8,), repeats=1,
            step_budget_s=1.0, config_budget_s={"small": 60.0, "openseq2seq": 120.0, "voice": 60.0},
            sweep_budget_s={"small": 30.0, "openseq2seq": 60.0, "voice": 30.0},
        )
        settings.update(overrides)
        return DecoderSettings(**settings)


def tf_reference_decoder(config_name: str, threads: int | None = None) -> Callable[..., Any]:
    """The TF2 reference decode of the same random weights, in a tf.function with a signature."""
    import tensorflow as tf

    from trtgen_export.tf_model import TacotronGST

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    config, weights = random_weights_for(config_name)
    model = TacotronGST(config, weights)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, config.memory_dim], tf.float32),
            tf.TensorSpec([None, None, config.attention_dim], tf.float32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([], tf.int32),
        ]
    )
    def decode(memory: tf.Tensor, keys: tf.Tensor, text_len: tf.Tensor, max_steps: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        masks = model.prenet_masks_from(rate=config.prenet_dropout, seed=1, batch=tf.shape(memory)[0])
        out = model.decode(memory, keys, text_len, masks, max_steps=max_steps)
        return out["frames"], out["lengths"]

    return decode


def time_tf_loop(decode: Callable[..., Any], card: Any, requests: list[Any], steps: int, *, frames: int) -> DecoderTiming:
    memory = np.stack([np.asarray(q.memory) for q in requests])
    keys = np.stack([np.asarray(q.memory_keys) for q in requests])
    text_len = np.full(len(requests), memory.shape[1], np.int32)
    started = time.perf_counter()
    out_frames, _ = decode(memory, keys, text_len, np.int32(steps))
    out_frames = out_frames.numpy()
    wall = time.perf_counter() - started
    expected = steps * card.model.reduction_factor
    if out_frames.shape[1] != expected:
        raise RuntimeError(f"tf-loop decoded {out_frames.shape[1]} frames, expected {expected}")
    return DecoderTiming(
        mode="tf-loop", batch=len(requests), steps=steps, steps_per_utterance=steps_per_utterance(card, frames), wall_s=wall, runtime_s=None,
    )


def _gpu_backend(model: Any) -> tuple[Any, str | None]:
    """(TensorRT backend, None) or (None, why not)."""
    from common import gpus

    if importlib.util.find_spec("tensorrt") is None:
        return None, "the tensorrt package is not installed (pip install 'trtgen[tensorrt]')"
    if not gpus():
        return None, "no CUDA GPU (nvidia-smi lists none)"
    try:
        from trtgen.engine.backends import create_backend

        return create_backend(model, "tensorrt", "cuda"), None
    except Exception as error:  # noqa: BLE001 - any failure to build engines is a reason to skip, reported
        return None, f"TensorRT backend unavailable: {error}"


def run_decoder_bench(settings: DecoderSettings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time every (config, batch, mode); returns JSON-ready results with the skipped cases and why."""
    from trtgen.engine.artifact import load_model
    from trtgen.engine.backends import create_backend

    timings: list[DecoderTiming] = []
    sweep: list[DecoderTiming] = []
    skipped: list[dict[str, Any]] = []
    backends: dict[str, str] = {}
    for config_name in settings.configs:
        model = load_model(benchmark_model(config_name, settings.work_dir, quantize=()), verify=False)
        card = model.card
        backend = create_backend(model, "onnxruntime", "cpu", threads=settings.threads)
        backends["onnxruntime"] = backend.describe()
        chunk_runner, step_runner = backend.load("decoder_chunk"), backend.load("decoder_step")
        chunk_steps = card.chunk_steps
        sweep_models: dict[int, tuple[Any, Any]] = {}
        if settings.sweep_batches and settings.sweep_chunk_steps:
            for k in settings.sweep_chunk_steps:
                if k == chunk_steps:
                    sweep_models[k] = (card, chunk_runner)
                    continue
                try:
                    k_model = load_model(benchmark_model(config_name, settings.work_dir, chunk_steps=k, quantize=()), verify=False)
                except Exception as error:  # noqa: BLE001 - an exporter without per-K export: reported, not fatal
                    skipped.append({"config": config_name, "batch": "sweep", "mode": f"K={k}", "reason": f"export failed: {str(error)[:160]}"})
                    continue
                sweep_models[k] = (k_model.card, create_backend(k_model, "onnxruntime", "cpu", threads=settings.threads).load("decoder_chunk"))
        full_steps = steps_per_utterance(card, settings.frames)

        contenders: dict[str, Callable[[list[Any], int], DecoderTiming]] = {}
        if "tf-loop" in settings.modes:
            try:
                tf_decode = tf_reference_decoder(config_name, settings.threads)
                contenders["tf-loop"] = lambda q, s: time_tf_loop(tf_decode, card, q, s, frames=settings.frames)
            except ImportError as error:
                skipped.append({"config": config_name, "batch": "all", "mode": "tf-loop", "reason": f"TensorFlow missing: {error}"})
        if "ort-step" in settings.modes:
            contenders["ort-step"] = lambda q, s: time_step_loop(step_runner, card, q, s, frames=settings.frames)
        if "ort-chunk" in settings.modes:
            contenders["ort-chunk"] = lambda q, s: time_chunked(chunk_runner, card, np, q, s, frames=settings.frames)
        gpu = None
        if "tensorrt" in settings.modes:
            gpu, reason = _gpu_backend(model)
            if gpu is None:
                skipped.append({"config": config_name, "batch": "all", "mode": "tensorrt", "reason": reason})
            else:
                backends["tensorrt"] = gpu.describe()
                gpu_runner = gpu.load("decoder_chunk")
                on_device: dict[int, list[Any]] = {}  # the requests of a batch, copied to the GPU once

                def on_gpu(q: list[Any], s: int) -> DecoderTiming:
                    if id(q) not in on_device:
                        on_device.clear()
                        on_device[id(q)] = _to_device(q, gpu.xp)
                    return time_chunked(gpu_runner, card, gpu.xp, on_device[id(q)], s, frames=settings.frames, mode="tensorrt")

                contenders["tensorrt"] = on_gpu

        def measure(batch: int, modes: dict[str, Callable[[list[Any], int], DecoderTiming]], label: str, clock: float, budget: float) -> dict[str, DecoderTiming]:
            if time.perf_counter() - clock > budget:
                for name in modes:
                    skipped.append({"config": config_name, "batch": batch, "mode": name, "reason": f"{label}: its {budget:.0f}-s time budget for this config was spent"})
                return {}
            requests = fixed_length_requests(model, backend, batch, settings.frames)
            probe = max(16, max(settings.sweep_chunk_steps + (chunk_steps,)))
            per_step: dict[str, float] = {}
            for name, run in list(modes.items()):  # warm-up at this shape; its step time sizes the window
                try:
                    run(requests, probe)
                    per_step[name] = run(requests, probe).wall_s / probe
                except Exception as error:  # noqa: BLE001 - out of memory (numpy, ORT, TF) or a runtime failure: reported, run goes on
                    skipped.append({"config": config_name, "batch": batch, "mode": name, "reason": f"failed: {str(error)[:160]}"})
                    modes.pop(name)
            if not modes:
                return {}
            steps = steps_for_budget(full_steps, max(per_step.values()), settings.step_budget_s)
            estimate = sum(per_step.values()) * steps * settings.repeats
            remaining = budget - (time.perf_counter() - clock)
            if estimate > remaining:
                for name in modes:
                    skipped.append({
                        "config": config_name, "batch": batch, "mode": name,
                        "reason": f"{label}: would take ~{estimate:.0f} s, {max(remaining, 0):.0f} s left of the {budget:.0f}-s budget",
                    })
                return {}
            result = median_timings({name: (lambda run=run: run(requests, steps)) for name, run in modes.items()}, settings.repeats)
            for name, timing in result.items():
                timing.mode, timing.config = name, config_name
            return result

        table_clock = time.perf_counter()
        table_budget = settings.config_budget_s.get(config_name, 600.0)
        for batch in settings.batches:
            for timing in measure(batch, dict(contenders), "batch table", table_clock, table_budget).values():
                timings.append(timing)
                log(f"{config_name} {timing.mode} batch {batch}: {timing.ms_per_step:.2f} ms/step, {timing.utterances_per_s:.2f} utt/s")
        sweep_clock = time.perf_counter()
        sweep_budget = settings.sweep_budget_s.get(config_name, 150.0)
        for batch in settings.sweep_batches:
            ks = {
                f"K={k}": (lambda q, s, k_card=k_card, k_runner=k_runner: time_chunked(k_runner, k_card, np, q, s, frames=settings.frames))
                for k, (k_card, k_runner) in sweep_models.items()
            }
            for timing in measure(batch, ks, "K sweep", sweep_clock, sweep_budget).values():
                timing.mode = "ort-chunk"
                sweep.append(timing)
                log(f"{config_name} K={timing.chunk_steps} batch {batch}: {timing.ms_per_step:.2f} ms/step, host {100 * (timing.host_share or 0):.1f}%")
        log(f"{config_name}: {time.perf_counter() - table_clock:.0f} s (exports excluded)")
    return {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()},
        "backends": backends,
        "timings": [t.to_json() for t in timings],
        "sweep": [t.to_json() for t in sweep],
        "skipped": skipped,
    }


def _to_device(requests: list[Any], xp: Any) -> list[Any]:
    import dataclasses

    return [dataclasses.replace(q, memory=xp.asarray(q.memory), memory_keys=xp.asarray(q.memory_keys)) for q in requests]


# ---------------------------------------------------------------------------- markdown
COLUMNS = ["mode", "batch", "K", "steps timed", "ms/step", "runtime ms/step", "host ms/step", "host share", "utt/s", "x tf-loop"]


def _row(t: dict[str, Any], reference: float | None) -> list[str]:
    return [
        t["mode"], t["batch"], "-" if t["chunk_steps"] is None else t["chunk_steps"], f"{t['steps']}/{t['steps_per_utterance']}",
        fmt(t["ms_per_step"], 3), fmt(t["runtime_ms_per_step"], 3), fmt(t["host_ms_per_step"], 3),
        "-" if t["host_share"] is None else f"{100 * t['host_share']:.1f}%", fmt(t["utterances_per_s"], 2),
        "-" if not reference else f"{t['utterances_per_s'] / reference:.2f}x",
    ]


def decoder_markdown(results: dict[str, Any]) -> list[str]:
    """One table per config (rows by batch, then mode), the K sweep, and the skipped cases."""
    lines: list[str] = []
    order = {m: i for i, m in enumerate(ALL_MODES)}
    configs = list(dict.fromkeys(t["config"] for t in results["timings"] + results["sweep"]))
    for config in configs:
        rows = sorted((t for t in results["timings"] if t["config"] == config), key=lambda t: (t["batch"], order.get(t["mode"], 9)))
        if rows:
            tf_rate = {t["batch"]: t["utterances_per_s"] for t in rows if t["mode"] == "tf-loop"}
            lines += [f"### Decoder, `{config}` config", ""]
            lines += markdown_table(COLUMNS, [_row(t, tf_rate.get(t["batch"])) for t in rows])
            lines.append("")
        sweep = sorted((t for t in results["sweep"] if t["config"] == config), key=lambda t: (t["batch"], t["chunk_steps"]))
        if sweep:
            lines += [f"### Chunk length K (ort-chunk), `{config}` config", ""]
            lines += markdown_table(COLUMNS[:-1], [_row(t, None)[:-1] for t in sweep])
            lines.append("")
    if results["skipped"]:
        lines += ["### Not measured", ""]
        lines += markdown_table(["config", "batch", "mode", "reason"], [[s["config"], s["batch"], s["mode"], s["reason"]] for s in results["skipped"]], ["l", "r", "l", "l"])
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--configs", help="comma list of model presets (default small,openseq2seq; quick small)")
    parser.add_argument("--batches", help="comma list of batch sizes")
    parser.add_argument("--modes", help=f"comma list of {','.join(ALL_MODES)}")
    parser.add_argument("--sweep-k", help="comma list of K for the chunk-length sweep ('' to skip it)")
    parser.add_argument("--sweep-batches", help="comma list of batch sizes of the K sweep ('' to skip it)")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--step-budget", type=float)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {"work_dir": args.work_dir, "threads": args.threads}
    if args.configs:
        overrides["configs"] = tuple(args.configs.split(","))
    if args.batches:
        overrides["batches"] = tuple(int(b) for b in args.batches.split(","))
    if args.modes:
        overrides["modes"] = tuple(args.modes.split(","))
    if args.sweep_k is not None:
        overrides["sweep_chunk_steps"] = tuple(int(k) for k in args.sweep_k.split(",") if k.strip())
    if args.sweep_batches is not None:
        overrides["sweep_batches"] = tuple(int(b) for b in args.sweep_batches.split(",") if b.strip())
    if args.repeats:
        overrides["repeats"] = args.repeats
    if args.step_budget:
        overrides["step_budget_s"] = args.step_budget
    settings = DecoderSettings.quick(**overrides) if args.quick else DecoderSettings(**overrides)
    results = run_decoder_bench(settings)
    if args.json:
        write_json(args.json, results)
    print("\n".join(decoder_markdown(results)))


if __name__ == "__main__":
    main()
