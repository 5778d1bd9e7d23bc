"""Decoder chunk forms: an ONNX Loop over the step graph vs K unrolled copies of it (ONNX Runtime).

This script rebuilds both forms from an exported model's ``decoder_step.onnx`` and times them, with
the per-step graph called from Python as the baseline, at several batch sizes; trtgen ships the form
that wins here, the unrolled one (export/onnx_export.py, benchmarks/results/chunk_forms.md).

    python benchmarks/bench_chunk_forms.py [--model DIR | --configs small,openseq2seq] [--batches 1,8,64] [--steps 8] \\
        [--output benchmarks/results/chunk_forms.md]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from trtgen_export.onnx_export import build_decoder_chunk
from trtgen_export.tf_model import state_names
from trtgen.engine.artifact import load_model
from trtgen.engine.config import ModelConfig


def build_loop_chunk(step: onnx.ModelProto, config: ModelConfig, weights_in_body: bool = False) -> onnx.ModelProto:
    """Wrap the single-step graph in an ONNX Loop that runs K steps per call.

    Outer inputs equal the step's, except each prenet mask gains a leading K axis; the Loop's trip
    count is that K. With ``weights_in_body`` the weights become initialisers of the Loop body,
    otherwise outer-scope initialisers that the body reads in place.
    """
    names = state_names(config)
    masks = [f"prenet_mask_{i}" for i in range(len(config.prenet_units))]
    graph = step.graph
    initializer_names = {t.name for t in graph.initializer}
    shared = {"memory", "memory_keys", "memory_mask"} | initializer_names

    def inner(name: str) -> str:
        return name if name in shared or name == "" else f"step/{name}"

    # Each iteration first picks its step's masks from the outer [K, B, U] inputs.
    body_nodes = [
        helper.make_node("Gather", [mask, "iteration"], [inner(mask)], axis=0, name=f"gather_{mask}") for mask in masks
    ]
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        del copy.input[:]
        del copy.output[:]
        copy.input.extend(inner(n) for n in node.input)
        copy.output.extend(inner(n) for n in node.output)
        copy.name = f"step/{node.name}"
        body_nodes.append(copy)
    body_nodes.append(helper.make_node("Identity", ["condition_in"], ["condition_out"], name="keep_going"))
    scan_outputs = [("frames", "frames"), ("stop_logits", "stop_logits"), ("alignment", "alignments")]
    for step_name, _ in scan_outputs:
        body_nodes.append(helper.make_node("Identity", [inner(step_name)], [f"scan/{step_name}"], name=f"scan_{step_name}"))
    state_outputs = []
    for n in names:
        body_nodes.append(helper.make_node("Identity", [inner(f"next_{n}")], [f"carry/{n}"], name=f"carry_{n}"))
        state_outputs.append(f"carry/{n}")

    value_info = {v.name: v for v in list(graph.input) + list(graph.output)}

    def body_value(name: str, new_name: str) -> onnx.ValueInfoProto:
        copy = onnx.ValueInfoProto()
        copy.CopyFrom(value_info[name])
        copy.name = new_name
        return copy

    body = helper.make_graph(
        body_nodes,
        "decoder_step_body",
        [
            helper.make_tensor_value_info("iteration", TensorProto.INT64, []),
            helper.make_tensor_value_info("condition_in", TensorProto.BOOL, []),
        ]
        + [body_value(n, inner(n)) for n in names],
        [helper.make_tensor_value_info("condition_out", TensorProto.BOOL, [])]
        + [body_value(f"next_{n}", f"carry/{n}") for n in names]
        + [body_value(s, f"scan/{s}") for s, _ in scan_outputs],
    )
    outer_nodes = [
        helper.make_node("Shape", [masks[0]], ["mask_shape"], name="mask_shape"),
        helper.make_node("Gather", ["mask_shape", "zero_index"], ["trip_count"], axis=0, name="trip_count"),
        helper.make_node(
            "Loop",
            ["trip_count", "always", *names],
            [f"next_{n}" for n in names] + [out for _, out in scan_outputs],
            body=body,
            name="decoder_loop",
        ),
    ]
    constants = [
        numpy_helper.from_array(np.array(0, np.int64), "zero_index"),
        numpy_helper.from_array(np.array(True), "always"),
    ]
    inputs = []
    for value in graph.input:
        copy = onnx.ValueInfoProto()
        copy.CopyFrom(value)
        if value.name in masks:
            dims = copy.type.tensor_type.shape.dim
            new_dim = onnx.TensorShapeProto.Dimension(dim_param="steps")
            dims.insert(0, new_dim)
        inputs.append(copy)
    outputs = [body_value(f"next_{n}", f"next_{n}") for n in names]
    for step_name, out_name in scan_outputs:
        copy = body_value(step_name, out_name)
        copy.type.tensor_type.shape.dim.insert(0, onnx.TensorShapeProto.Dimension(dim_param="steps"))
        outputs.append(copy)
    if weights_in_body:
        outer_nodes[-1].attribute[0].g.initializer.extend(graph.initializer)
        outer_initializers = constants
    else:
        outer_initializers = list(graph.initializer) + constants
    chunk_graph = helper.make_graph(outer_nodes, "decoder_chunk", inputs, outputs, initializer=outer_initializers)
    model = helper.make_model(chunk_graph, opset_imports=step.opset_import, producer_name="trtgen")
    model.ir_version = step.ir_version
    return model


def _session(model: onnx.ModelProto | str, threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads or 0
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _feeds(model_dir: Path, batch: int, time_steps: int, steps: int) -> tuple[dict, dict]:
    card = load_model(model_dir, verify=False).card
    c = card.model
    rng = np.random.default_rng(0)
    feeds = {
        "memory": rng.normal(0, 1, (batch, time_steps, c.memory_dim)).astype(np.float32),
        "memory_keys": rng.normal(0, 1, (batch, time_steps, c.attention_dim)).astype(np.float32),
        "memory_mask": np.ones((batch, time_steps), np.float32),
        "frame": np.zeros((batch, c.num_mels), np.float32),
        "attention_context": np.zeros((batch, c.memory_dim), np.float32),
        "cumulative_alignment": np.zeros((batch, time_steps), np.float32),
    }
    for i in range(c.decoder_lstm_layers):
        feeds[f"lstm{i}_h"] = np.zeros((batch, c.decoder_lstm_units), np.float32)
        feeds[f"lstm{i}_c"] = np.zeros((batch, c.decoder_lstm_units), np.float32)
    masks = {name: np.full((steps, batch, u), 2.0, np.float32) for name, u in zip(card.prenet_masks, c.prenet_units)}
    return feeds, masks


def measure(model_dir: Path, batches: list[int], steps: int, repeats: int, threads: int | None) -> list[dict]:
    card = load_model(model_dir, verify=False).card
    step_model = onnx.load(str(model_dir / "decoder_step.onnx"))
    forms = {
        "loop (outer-scope weights)": _session(build_loop_chunk(step_model, card.model), threads),
        "loop (weights in body)": _session(build_loop_chunk(step_model, card.model, weights_in_body=True), threads),
        f"unrolled K={steps}": _session(build_decoder_chunk(step_model, card.model, steps), threads),
    }
    per_step = _session(str(model_dir / "decoder_step.onnx"), threads)
    rows = []
    for batch in batches:
        feeds, masks = _feeds(model_dir, batch, 128, steps)
        timings: dict[str, list[float]] = {name: [] for name in [*forms, "step graph from Python"]}
        for _ in range(repeats):
            for name, session in forms.items():
                session.run(None, {**feeds, **masks})
                started = time.perf_counter()
                session.run(None, {**feeds, **masks})
                timings[name].append((time.perf_counter() - started) / steps * 1e3)
            step_feeds = {**feeds, **{k: v[0] for k, v in masks.items()}}
            per_step.run(None, step_feeds)
            started = time.perf_counter()
            for _ in range(steps):
                per_step.run(None, step_feeds)
            timings["step graph from Python"].append((time.perf_counter() - started) / steps * 1e3)
        for name, values in timings.items():
            rows.append({"batch": batch, "form": name, "ms_per_step": statistics.median(values)})
    return rows


def main(argv: list[str] | None = None) -> None:
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import DEFAULT_WORK_DIR, benchmark_model, command_line, header_lines, machine, markdown_table, now, versions, write_report

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a model directory (default: random models of --configs)")
    parser.add_argument("--configs", default="small,openseq2seq", help="random benchmark models to measure without --model")
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--output", type=Path, help="also write the report here (e.g. benchmarks/results/chunk_forms.md)")
    args = parser.parse_args(argv)
    started, machine_info = now(), machine()
    models = {str(args.model): args.model} if args.model else {c: benchmark_model(c, args.work_dir, quantize=()) for c in args.configs.split(",")}
    lines = header_lines("Decoder chunk forms: ONNX Loop vs unrolled K steps (ONNX Runtime, CPU)",
                         command_line("benchmarks/bench_chunk_forms.py", argv if argv is not None else sys.argv[1:]),
                         started, machine_info, versions(("numpy", "onnxruntime", "onnx", "trtgen")))
    lines.append("")
    for name, directory in models.items():
        rows = measure(directory, [int(b) for b in args.batches.split(",")], args.steps, args.repeats, args.threads)
        lines += [f"## `{name}`, K = {args.steps}", "",
                  *markdown_table(["batch", "form", f"ms/step (median of {args.repeats})"],
                                  [[r["batch"], r["form"], f"{r['ms_per_step']:.2f}"] for r in rows], ["r", "l", "r"]), ""]
        print("\n".join(lines[-(len(rows) + 5):]), flush=True)
    lines.append(f"- Load average at the end: {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.output:
        write_report(args.output, lines)


if __name__ == "__main__":
    main()
