"""int8 variants of the postnet and decoder for the CPU: ONNX Runtime's static (calibrated) quantisation.

Why static: an utterance's audio must not depend on its batch neighbours. Dynamic quantisation scales
each activation by the range of the whole batch; here every activation scale is fixed at export, from
the ranges the float model produces while it speaks held-out sentences, so a row is quantised the same
in any batch (and the int8 products are summed exactly, so not on the thread count either; both are
tested). QDQ format, int8 weights per output channel, uint8 activations: the form whose convolutions and
matrix products ONNX Runtime runs with its integer kernels (AVX2 here; no VNNI on the project's CPU).

Which nodes, and why (measured in benchmarks/RESULTS.md, "Reduced precision"):

* ``postnet``: the convolutions of the residual postnet only. Their activations are log-mel-like values
  in a narrow range (shipped voice: 0.03 dB MCD against float32). The magnitude branch stays float32:
  its output goes through ``exp``, which turns int8 rounding into relative errors of the magnitude (0.6
  dB MCD when it was quantised too).
* ``decoder_chunk``: the matrix products with constant weights (prenet, LSTMs, projections); the
  attention's products of two activations stay float32. Autoregressive: rounding feeds back into the
  next step, so stop steps move (it is an option, never chosen for a model without measuring).

The variants are written beside the float graphs (``postnet.int8.onnx``) and listed in the card's
``quantized``; the runtime picks them on the CPU by default (:func:`trtgen.engine.artifact.resolve_precision`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnx

from trtgen.engine.artifact import GraphSpec, ModelCard, load_model
from trtgen.fileio import sha256_file
from trtgen.errors import UsageError

logger = logging.getLogger(__name__)

__all__ = ["QUANTIZABLE", "QuantizeOptions", "parse_quantize", "quantize_model", "calibration_feeds", "quantized_nodes", "FeedRecorder"]

QUANTIZABLE = ("postnet", "decoder_chunk")
"""Graphs with an int8 variant; ``trtgen export --quantize`` names them as ``postnet`` and ``decoder``."""
_ALIASES = {"postnet": "postnet", "decoder": "decoder_chunk", "decoder_chunk": "decoder_chunk"}
CALIBRATION_SEED = 20251205
"""Seed of the calibration rows' dropout masks and phases (any fixed value: calibration must be reproducible)."""


@dataclass(frozen=True)
class QuantizeOptions:
    graphs: tuple[str, ...] = ("postnet",)
    """Graphs to quantise (of :data:`QUANTIZABLE`)."""
    sentences: int = 64
    """Held-out sentences (trtgen_export.train.sentences) the float model speaks to calibrate the ranges."""
    first_sentence: int = 0
    """Index of the first calibration sentence (fidelity is measured on others: benchmarks/bench_precision.py)."""
    decoder_calls: int = 48
    """Most ``decoder_chunk`` calls kept for calibration (evenly spread): their inputs are large."""


def parse_quantize(text: str | None) -> tuple[str, ...]:
    """``"postnet,decoder"`` -> ("postnet", "decoder_chunk"); None or ``"none"`` -> ()."""
    if text is None or text.strip().lower() == "none":
        return ()
    graphs = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        if part not in _ALIASES:
            raise UsageError(f"--quantize {text!r}: {part!r} is not one of postnet, decoder (or none)")
        graphs.append(_ALIASES[part])
    return tuple(dict.fromkeys(graphs))


def quantized_nodes(model: onnx.ModelProto, graph: str) -> list[str]:
    """The nodes of ``graph`` to quantise (see the module docstring)."""
    constants = {t.name for t in model.graph.initializer}
    if graph == "postnet":
        producer = {out: node for node in model.graph.node for out in node.output}
        ancestors: set[str] = set()
        pending = ["mel_postnet"]
        while pending:
            node = producer.get(pending.pop())
            if node is None or node.name in ancestors:
                continue
            ancestors.add(node.name)
            pending.extend(node.input)
        return [n.name for n in model.graph.node if n.op_type == "Conv" and n.name in ancestors]
    if graph == "decoder_chunk":
        return [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in constants]
    raise UsageError(f"no int8 variant for graph {graph!r} (only {', '.join(QUANTIZABLE)})")


def calibration_feeds(model_dir: Path, graphs: Sequence[str], options: QuantizeOptions) -> dict[str, list[dict[str, np.ndarray]]]:
    """The inputs each of ``graphs`` receives while the float model speaks the calibration sentences in
    the shipped style clips (through :class:`trtgen.Voice`, exactly as ``trtgen generate`` runs it)."""
    from trtgen.engine.rows import Rejected, Row
    from trtgen.engine.voice import Voice
    from trtgen.engine.shipped import shipped_styles
    from trtgen.engine.synthesis import SynthesisOptions
    from trtgen.engine.vocoder import GriffinLimOptions
    from trtgen_export.train.sentences import HELDOUT, generate_sentences

    sentences = [s for s in generate_sentences() if s.split == HELDOUT][options.first_sentence : options.first_sentence + options.sentences]
    if len(sentences) < options.sentences:
        raise UsageError(f"only {len(sentences)} held-out sentences from index {options.first_sentence}; calibration wants {options.sentences}")
    # No Griffin-Lim (0 iterations: only the first inverse STFT), one stage after another.
    voice = Voice.load(model_dir, precision="float32", vocoder=GriffinLimOptions(n_iter=0), options=SynthesisOptions(overlap=False))
    limits = {"postnet": None, "decoder_chunk": options.decoder_calls}
    runners = {"postnet": voice.synthesizer.postnet, "decoder_chunk": voice.synthesizer.decoder_runner}
    recorders = {}
    for graph in graphs:
        recorders[graph] = runners[graph].runner = FeedRecorder(runners[graph].runner, limits[graph])
    clips = list(shipped_styles().values())
    rows = [Row(f"calibration{i:04d}", s.text, str(clips[i % len(clips)]), None, CALIBRATION_SEED) for i, s in enumerate(sentences)]
    rejected = [r.id for r in voice.stream(rows, lookahead=None) if isinstance(r, Rejected)]
    if rejected:
        logger.warning("calibration: %d sentence(s) could not be spoken: %s", len(rejected), ", ".join(rejected[:3]))
    return {graph: recorder.kept() for graph, recorder in recorders.items()}


class FeedRecorder:
    """A graph runner that keeps a copy of the feeds it runs: all of them, or a seeded uniform sample of
    ``limit`` (reservoir sampling: a full-size decoder's inputs would not fit in memory)."""

    def __init__(self, runner: Any, limit: int | None = None) -> None:
        self.runner, self.limit = runner, limit
        self.name, self.input_names, self.output_names = runner.name, runner.input_names, runner.output_names
        self.sample: dict[int, dict[str, np.ndarray]] = {}
        self.calls = 0
        self.rng = np.random.default_rng(CALIBRATION_SEED)

    def run(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        call, self.calls = self.calls, self.calls + 1
        if self.limit is None or len(self.sample) < self.limit:
            self.sample[call] = {k: np.array(v) for k, v in feeds.items()}
        else:
            slot = int(self.rng.integers(0, call + 1))
            if slot < self.limit:
                del self.sample[sorted(self.sample)[slot]]
                self.sample[call] = {k: np.array(v) for k, v in feeds.items()}
        return self.runner.run(feeds, outputs)

    def kept(self) -> list[dict[str, np.ndarray]]:
        return [self.sample[call] for call in sorted(self.sample)]


def quantize_model(model_dir: Path, options: QuantizeOptions, log: Callable[[str], None] = logger.info) -> ModelCard:
    """Write the int8 variants of ``options.graphs`` into ``model_dir`` and list them in its card."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
            self.feeds = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    model_dir = Path(model_dir)
    unknown = [g for g in options.graphs if g not in QUANTIZABLE]
    if unknown:
        raise UsageError(f"no int8 variant for {', '.join(unknown)} (only {', '.join(QUANTIZABLE)})")
    model = load_model(model_dir)
    started = time.perf_counter()
    feeds = calibration_feeds(model_dir, options.graphs, options)
    log(f"calibrated on {options.sentences} held-out sentences in {time.perf_counter() - started:.0f} s")
    card = model.card
    nodes: dict[str, list[str]] = {}
    for graph in options.graphs:
        source = model.graph_path(graph)
        target = model_dir / f"{graph}.int8.onnx"
        nodes[graph] = quantized_nodes(onnx.load(str(source), load_external_data=False), graph)
        quantize_static(
            str(source), str(target), Reader(feeds[graph]),
            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_quantize=nodes[graph],
        )
        spec = card.graphs[graph]  # same inputs and outputs as the float graph
        card.quantized[graph] = GraphSpec(target.name, sha256_file(target), spec.inputs, spec.outputs)
        log(f"{target.name}: {len(nodes[graph])} nodes in int8")
    card.quantization = {
        "method": "onnxruntime static quantisation, QDQ, MinMax calibration; weights int8 per output channel, activations uint8",
        "calibration": f"{options.sentences} held-out sentences of trtgen_export.train.sentences from index {options.first_sentence}, "
                       f"in the shipped demo styles, seed {CALIBRATION_SEED}",
        "nodes": {graph: len(names) for graph, names in nodes.items()},
    }
    card.write(model_dir)
    return card
