"""The machine's limit per stage, beside what each stage measures, on one thread and on two.

Usage: python benchmarks/bench_limits.py [--quick] [--configs voice-trained,openseq2seq] [--json PATH]

For each stage of trtgen's pipeline, at the shapes a real run gives it:

* decoder (batch 32, 99 symbols: a 985-frame utterance's text): its floating-point work per step
  (every matrix product of the step, counted from the model config) against the machine's FLOP rate
  (the best of a large ONNX Runtime MatMul, 256 x 2048 x 4096), and the same matrix products alone
  as one ONNX Runtime graph ("bare"): what the step would cost with nothing but its products;
* postnet (16 utterances of 500 frames): its convolutions and projection, counted and bare, the same way;
* Griffin-Lim (16 utterances of 500 frames): the FFTs it must do (one inverse, then a forward and an
  inverse per iteration) as bare batched scipy FFTs of the same sizes, against trtgen's vocoder.

Every figure on one thread and on two, so the table also gives each stage's scaling from one thread
to two, which chooses the threads of the overlapped stages and where overlap pays
(trtgen.engine.synthesis.stage_threads, overlap_pays). Timings are medians of interleaved wall-time
repeats; the FLOP rate is the best round (a limit: what the machine did at least once).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_WORK_DIR, TRAINED_VOICE, benchmark_model, markdown_table, time_interleaved, write_json  # noqa: E402
from trtgen.engine.cost import decoder_products, flops, postnet_products  # noqa: E402

DECODER_BATCH = 32
DECODER_FRAMES = 985
GROUP = (16, 500)
"""Postnet and Griffin-Lim group: 16 utterances of 500 frames (6.2 s each)."""
PEAK_SHAPE = (256, 2048, 4096)
THREADS = (1, 2)
FRAMES_PER_AUDIO_S = 80


@dataclasses.dataclass
class LimitSettings:
    configs: tuple[str, ...] = (TRAINED_VOICE, "openseq2seq")
    repeats: int = 5
    decoder_steps: int = 64
    work_dir: Path = DEFAULT_WORK_DIR

    @staticmethod
    def quick(**overrides: Any) -> LimitSettings:
        settings: dict[str, Any] = dict(configs=(TRAINED_VOICE,), repeats=1, decoder_steps=16)
        settings.update(overrides)
        return LimitSettings(**settings)


# ---------------------------------------------------------------------------- bare kernels
def products_graph(products: list[tuple[int, ...]]) -> tuple[bytes, dict[str, np.ndarray]]:
    """One ONNX graph holding just ``products`` (independent MatMuls), and inputs for it."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inputs, outputs, weights, feeds = [], [], [], [], {}
    for i, p in enumerate(products):
        if len(p) == 3:
            m, k, n = p
            weights.append(numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32) * 0.05, f"w{i}"))
            nodes.append(helper.make_node("MatMul", [f"a{i}", f"w{i}"], [f"c{i}"]))
            inputs.append(helper.make_tensor_value_info(f"a{i}", TensorProto.FLOAT, [m, k]))
            feeds[f"a{i}"] = rng.standard_normal((m, k)).astype(np.float32)
        else:
            b, m, k, n = p
            nodes.append(helper.make_node("MatMul", [f"a{i}", f"b{i}"], [f"c{i}"]))
            inputs += [helper.make_tensor_value_info(f"a{i}", TensorProto.FLOAT, [b, m, k]), helper.make_tensor_value_info(f"b{i}", TensorProto.FLOAT, [b, k, n])]
            feeds[f"a{i}"] = rng.standard_normal((b, m, k)).astype(np.float32)
            feeds[f"b{i}"] = rng.standard_normal((b, k, n)).astype(np.float32)
        outputs.append(helper.make_tensor_value_info(f"c{i}", TensorProto.FLOAT, None))
    model = helper.make_model(helper.make_graph(nodes, "products", inputs, outputs, weights), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString(), feeds


def _session(model: Any, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def peak_flop_rate(repeats: int) -> dict[int, float]:
    """FLOP/s of a large ONNX Runtime MatMul on 1 and 2 threads: the machine's practical peak (the best round)."""
    graph, feeds = products_graph([PEAK_SHAPE])
    sessions = {t: _session(graph, t) for t in THREADS}
    times = time_interleaved({str(t): (lambda s=s: s.run(None, feeds)) for t, s in sessions.items()}, max(repeats, 5), min)
    return {t: flops([PEAK_SHAPE]) / times[str(t)] for t in THREADS}


# ---------------------------------------------------------------------------- the stages, measured
def decoder_row(config: str, settings: LimitSettings, peak: dict[int, float]) -> dict[str, Any]:
    from trtgen.commands.bench import fixed_length_requests, time_chunked
    from trtgen.engine.artifact import load_model
    from trtgen.engine.backends.onnxruntime_backend import OnnxRuntimeBackend

    model = load_model(benchmark_model(config, settings.work_dir, quantize=())).with_precision("float32")
    c = model.card.model
    backends = {t: OnnxRuntimeBackend(model, threads=t) for t in THREADS}
    requests = fixed_length_requests(model, backends[1], DECODER_BATCH, DECODER_FRAMES)
    text_len = requests[0].text_len
    runners = {t: b.load("decoder_chunk") for t, b in backends.items()}
    steps = settings.decoder_steps

    def decode(t: int) -> Callable[[], Any]:
        return lambda: time_chunked(runners[t], model.card, np, requests, steps, frames=DECODER_FRAMES)

    measured = time_interleaved({f"decoder {t}": decode(t) for t in THREADS}, settings.repeats)
    products = decoder_products(c, DECODER_BATCH, text_len)
    graph, feeds = products_graph(products)
    bare_sessions = {t: _session(graph, t) for t in THREADS}
    bare = time_interleaved({f"bare {t}": (lambda s=s: s.run(None, feeds)) for t, s in bare_sessions.items()}, settings.repeats)
    work = flops(products)
    return {
        "stage": "decoder", "config": config, "unit": f"step of {DECODER_BATCH} rows ({text_len} symbols)", "unit_audio_s": DECODER_BATCH * c.reduction_factor / FRAMES_PER_AUDIO_S,
        "gflop": work / 1e9,
        "flop_limit_s": {t: work / peak[t] for t in THREADS},
        "bare_s": {t: bare[f"bare {t}"] for t in THREADS},
        "measured_s": {t: measured[f"decoder {t}"] / steps for t in THREADS},
    }


def postnet_row(config: str, settings: LimitSettings, peak: dict[int, float]) -> dict[str, Any]:
    from trtgen.engine.artifact import load_model

    model = load_model(benchmark_model(config, settings.work_dir, quantize=())).with_precision("float32")
    c = model.card.model
    batch, frames = GROUP
    rng = np.random.default_rng(0)
    feeds = {"mel": rng.normal(-3.0, 1.0, (batch, frames, c.num_mels)).astype(np.float32), "mel_len": np.full(batch, frames, np.int32)}
    sessions = {t: _session(str(model.graph_path("postnet")), t) for t in THREADS}
    products = postnet_products(c, batch, frames)
    graph, bare_feeds = products_graph(products)
    bare_sessions = {t: _session(graph, t) for t in THREADS}
    contenders = {f"postnet {t}": (lambda s=s: s.run(None, feeds)) for t, s in sessions.items()}
    contenders.update({f"bare {t}": (lambda s=s: s.run(None, bare_feeds)) for t, s in bare_sessions.items()})
    times = time_interleaved(contenders, settings.repeats)
    work = flops(products)
    return {
        "stage": "postnet", "config": config, "unit": f"{batch} x {frames} frames", "unit_audio_s": batch * frames / FRAMES_PER_AUDIO_S,
        "gflop": work / 1e9,
        "flop_limit_s": {t: work / peak[t] for t in THREADS},
        "bare_s": {t: times[f"bare {t}"] for t in THREADS},
        "measured_s": {t: times[f"postnet {t}"] for t in THREADS},
    }


def vocoder_rows(settings: LimitSettings) -> list[dict[str, Any]]:
    import scipy.fft

    from trtgen.engine.config import AudioConfig
    from trtgen.engine.vocoder import GriffinLimOptions, griffin_lim, griffin_lim_preset

    audio = AudioConfig()
    batch, frames = GROUP
    rng = np.random.default_rng(0)
    mags = [np.abs(rng.standard_normal((frames, audio.num_freq))).astype(np.float32) * 4 for _ in range(batch)]
    signal = rng.standard_normal((batch, frames, audio.n_fft)).astype(np.float32)
    spectrum = scipy.fft.rfft(signal, axis=-1)
    rows = []
    for label, options in (("openseq2seq", griffin_lim_preset("openseq2seq")), ("default", GriffinLimOptions())):
        contenders: dict[str, Callable[[], Any]] = {}
        for t in THREADS:
            contenders[f"gl {t}"] = lambda t=t: griffin_lim(mags, list(range(batch)), dataclasses.replace(options, threads=t))

            def ffts(t: int = t, n_iter: int = options.n_iter) -> None:
                scipy.fft.irfft(spectrum, n=audio.n_fft, axis=-1, workers=t)
                for _ in range(n_iter):
                    scipy.fft.rfft(signal, axis=-1, workers=t)
                    scipy.fft.irfft(spectrum, n=audio.n_fft, axis=-1, workers=t)

            contenders[f"bare {t}"] = ffts
        times = time_interleaved(contenders, settings.repeats)
        rows.append({
            "stage": f"Griffin-Lim, {label} ({options.n_iter} it, momentum {options.momentum:g})", "config": "any",
            "unit": f"{batch} x {frames} frames", "unit_audio_s": batch * frames / FRAMES_PER_AUDIO_S, "gflop": None,
            "flop_limit_s": None, "bare_s": {t: times[f"bare {t}"] for t in THREADS}, "measured_s": {t: times[f"gl {t}"] for t in THREADS},
        })
    return rows


def run_limits(settings: LimitSettings, log: Callable[[str], None] = print) -> dict[str, Any]:
    peak = peak_flop_rate(settings.repeats)
    log("peak MatMul: " + ", ".join(f"{t} thread(s) {rate / 1e9:.0f} GFLOP/s" for t, rate in peak.items()))
    rows = []
    for config in settings.configs:
        for make in (decoder_row, postnet_row):
            row = make(config, settings, peak)
            rows.append(row)
            log(f"limits {row['stage']} {config}: measured {row['measured_s'][1] * 1e3:.1f} / {row['measured_s'][2] * 1e3:.1f} ms, "
                f"bare {row['bare_s'][1] * 1e3:.1f} / {row['bare_s'][2] * 1e3:.1f} ms, FLOP limit {row['flop_limit_s'][1] * 1e3:.1f} / {row['flop_limit_s'][2] * 1e3:.1f} ms")
    for row in vocoder_rows(settings):
        rows.append(row)
        log(f"limits {row['stage']}: measured {row['measured_s'][1] * 1e3:.0f} / {row['measured_s'][2] * 1e3:.0f} ms, bare FFTs {row['bare_s'][1] * 1e3:.0f} / {row['bare_s'][2] * 1e3:.0f} ms")
    return {"peak_flops": {str(t): v for t, v in peak.items()}, "peak_shape": PEAK_SHAPE, "rows": rows}


def stage_limit_audio_rate(data: dict[str, Any], config: str, vocoder: str, threads: int = 2) -> float | None:
    """End-to-end limit in audio-s/s: the stages' bare costs per audio second (decoder and postnet at
    the FLOP rate, Griffin-Lim at its bare FFTs), summed, all cores busy."""
    seconds = 0.0
    for stage in ("decoder", "postnet"):
        row = next((r for r in data["rows"] if r["stage"] == stage and r["config"] == config), None)
        if row is None:
            return None
        seconds += row["flop_limit_s"][threads] / row["unit_audio_s"]
    gl = next((r for r in data["rows"] if r["stage"].startswith(f"Griffin-Lim, {vocoder} ")), None)
    if gl is None:
        return None
    seconds += gl["bare_s"][threads] / gl["unit_audio_s"]
    return 1.0 / seconds


def limits_markdown(data: dict[str, Any]) -> list[str]:
    peak = data["peak_flops"]
    m, k, n = data["peak_shape"]
    lines = [
        f"The machine's FLOP rate: an ONNX Runtime MatMul of {m} x {k} x {n} runs at {float(peak['1']) / 1e9:.0f} GFLOP/s on one "
        f"thread and {float(peak['2']) / 1e9:.0f} on two. 'FLOP limit' = the stage's counted work at that rate; 'bare' = the "
        "stage's matrix products alone in one ONNX Runtime graph (decoder, postnet), or the FFTs Griffin-Lim must do as bare "
        "batched scipy FFTs; 'measured' = the stage as trtgen runs it. '% of bare' = bare / measured (100% would be a stage "
        "that costs no more than its kernels). 'scaling' = measured time on one thread / on two.",
        "",
    ]
    table = []
    for r in data["rows"]:
        def ms(d: dict[Any, float] | None, t: int) -> str:
            return "-" if d is None else f"{d[t] * 1e3:.1f}" if d[t] < 1 else f"{d[t] * 1e3:.0f}"

        table.append([
            r["stage"], f"`{r['config']}`", r["unit"], "-" if r["gflop"] is None else f"{r['gflop']:.2f}",
            ms(r["flop_limit_s"], 1), ms(r["bare_s"], 1), ms(r["measured_s"], 1), f"{r['bare_s'][1] / r['measured_s'][1]:.0%}",
            ms(r["flop_limit_s"], 2), ms(r["bare_s"], 2), ms(r["measured_s"], 2), f"{r['bare_s'][2] / r['measured_s'][2]:.0%}",
            f"{r['measured_s'][1] / r['measured_s'][2]:.2f}x",
        ])
    lines += markdown_table(
        ["stage", "model", "unit", "GFLOP", "1 thr: FLOP limit ms", "bare ms", "measured ms", "% of bare",
         "2 thr: FLOP limit ms", "bare ms", "measured ms", "% of bare", "scaling 1->2"],
        table, ["l", "l", "l"] + ["r"] * 10,
    )
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--configs", help=f"comma list (default {TRAINED_VOICE},openseq2seq)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {"work_dir": args.work_dir}
    if args.configs:
        overrides["configs"] = tuple(args.configs.split(","))
    settings = LimitSettings.quick(**overrides) if args.quick else LimitSettings(**overrides)
    data = run_limits(settings)
    if args.json:
        write_json(args.json, data)
    print("\n".join(limits_markdown(data)))


if __name__ == "__main__":
    main()
