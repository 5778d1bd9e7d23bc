"""The token bank as a graph of its own: style token weights -> style embedding (``style_tokens.onnx``).

A GST style embedding is ``output_transform(concat_h(sum_n w[b, h, n] values[h, n]))``
(docs/openseq2seq-notes.md §4.4.6): linear in the token weights ``w``, each head's softmax over the
tokens. The style encoder graph computes ``w`` and then that map; ``style_tokens.onnx`` is the style
encoder's own tail from ``w`` to the embedding, cut out of it (the same nodes and constants), so that
``style_tokens(weights of a clip)`` is that clip's embedding (to the last bit on ONNX Runtime's CPU,
where both graphs run the same kernels on the same shapes).

:func:`add_style_tokens` brings a model directory exported before this graph existed up to date from
its own style encoder, without its checkpoint and without changing any value a graph computes (the
shipped voice was brought up this way: docs/shipped-voice.md, "The token bank")::

    python -m trtgen_export.style_tokens MODEL_DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from trtgen.engine.artifact import (
    STYLE_TOKEN_WEIGHTS,
    STYLE_TOKENS,
    GraphSpec,
    ModelCard,
    TensorSpec,
    load_model,
)
from trtgen.engine.config import ModelConfig
from trtgen.errors import ModelError, TrtgenError
from trtgen.fileio import sha256_file

logger = logging.getLogger(__name__)

__all__ = ["style_tokens_graph", "expose_token_weights", "add_style_tokens", "check_style_tokens", "TOKEN_CHECK_TOLERANCE"]

STYLE_EMBEDDING = "style_embedding"
TOKEN_CHECK_TOLERANCE = 1e-6
"""Largest error (relative to the embedding's scale) :func:`check_style_tokens` accepts between
``style_tokens(weights)`` and the style encoder's embedding; the cut-out graph gives 0 on ONNX Runtime's CPU."""


def _weights_value(name: str, config: ModelConfig) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", config.style_attention_heads, config.num_style_tokens])


def style_tokens_graph(style_encoder: onnx.ModelProto, config: ModelConfig) -> onnx.ModelProto:
    """``style_tokens.onnx``: the nodes of ``style_encoder`` between its ``style_token_weights`` output and its
    ``style_embedding``, with the constants they read, as a graph from the first to the second.

    Raises :class:`~trtgen.errors.ModelError` when the embedding depends on anything else than the weights
    and constants.
    """
    graph = style_encoder.graph
    constants = {t.name: t for t in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    inputs = {value.name for value in graph.input}
    wanted: set[int] = set()
    pending = [STYLE_EMBEDDING]
    seen: set[str] = set()
    while pending:
        tensor = pending.pop()
        if tensor in seen or tensor == STYLE_TOKEN_WEIGHTS or tensor in constants or tensor == "":
            continue
        seen.add(tensor)
        if tensor in inputs or tensor not in producers:
            raise ModelError(f"the style embedding depends on {tensor!r}, not only on {STYLE_TOKEN_WEIGHTS}: no token-bank graph")
        node = producers[tensor]
        wanted.add(id(node))
        pending.extend(node.input)
    if STYLE_TOKEN_WEIGHTS not in producers:
        raise ModelError(f"the style encoder has no tensor {STYLE_TOKEN_WEIGHTS!r} (expose it first: expose_token_weights)")
    nodes = [node for node in graph.node if id(node) in wanted]  # in the style encoder's (topological) order
    used = {name for node in nodes for name in node.input}
    output = next(v for v in graph.output if v.name == STYLE_EMBEDDING)
    tail = helper.make_graph(
        nodes, STYLE_TOKENS, [_weights_value(STYLE_TOKEN_WEIGHTS, config)], [output],
        initializer=[t for name, t in constants.items() if name in used],
    )
    model = helper.make_model(tail, opset_imports=style_encoder.opset_import, producer_name="trtgen")
    model.ir_version = style_encoder.ir_version
    onnx.checker.check_model(model)
    return model


def _subgraphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    for node in graph.node:
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)):
                yield sub
                yield from _subgraphs(sub)


def expose_token_weights(style_encoder: onnx.ModelProto, config: ModelConfig) -> onnx.ModelProto:
    """A copy of a style encoder exported without the ``style_token_weights`` output, with it: the GST
    attention's softmax (its one Softmax outside the GRU's loop) renamed and listed as an output.
    No node, constant or value changes, so the embedding stays what it was, bit for bit."""
    model = onnx.ModelProto()
    model.CopyFrom(style_encoder)
    graph = model.graph
    if any(v.name == STYLE_TOKEN_WEIGHTS for v in graph.output):
        return model
    softmaxes = [node for node in graph.node if node.op_type == "Softmax"]
    if len(softmaxes) != 1:
        raise ModelError(f"expected one Softmax (the GST attention's) in the style encoder, found {len(softmaxes)}")
    old = softmaxes[0].output[0]
    for g in (graph, *_subgraphs(graph)):
        for node in g.node:
            node.input[:] = [STYLE_TOKEN_WEIGHTS if name == old else name for name in node.input]
            node.output[:] = [STYLE_TOKEN_WEIGHTS if name == old else name for name in node.output]
    graph.output.append(_weights_value(STYLE_TOKEN_WEIGHTS, config))
    onnx.checker.check_model(model)
    return model


def check_style_tokens(model_dir: Path, *, clips: int = 3, seed: int = 0) -> float:
    """Run the style encoder on random clips, one at a time, and ``style_tokens`` on its weights: the
    largest error of the embedding relative to its scale. Also checks that each head's weights sum to 1
    (``ModelError`` otherwise)."""
    from trtgen.engine.backends.onnxruntime_backend import OnnxRuntimeBackend

    model = load_model(model_dir)
    backend = OnnxRuntimeBackend(model, threads=1)
    encoder, tokens = backend.load("style_encoder"), backend.load(STYLE_TOKENS)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for index in range(clips):
        frames = 40 + 37 * index
        mel = rng.normal(-3.0, 1.5, (1, frames, model.card.model.num_mels)).astype(np.float32)
        out = encoder.run({"style_mel": mel, "style_len": np.array([frames], np.int32)})
        weights = out[STYLE_TOKEN_WEIGHTS]
        if not np.allclose(weights.sum(axis=-1), 1.0, atol=1e-5):
            raise ModelError(f"{model_dir}: the style encoder's {STYLE_TOKEN_WEIGHTS} do not sum to 1 per head")
        again = tokens.run({STYLE_TOKEN_WEIGHTS: weights})[STYLE_EMBEDDING]
        embedding = out[STYLE_EMBEDDING].astype(np.float64)
        scale = max(float(np.abs(embedding).max()), 1e-6)
        worst = max(worst, float(np.abs(again - embedding).max()) / scale)
    return worst


def _save(model: onnx.ModelProto, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    onnx.save_model(model, str(temporary))
    temporary.chmod(0o644)
    os.replace(temporary, path)


def add_style_tokens(model_dir: str | Path) -> ModelCard:
    """Give a model directory exported before ``style_tokens`` existed its token weights and token-bank graph:
    the style encoder gains the ``style_token_weights`` output (:func:`expose_token_weights`) and
    ``style_tokens.onnx`` is cut out of it (:func:`style_tokens_graph`). Every other file and every other
    field of the card stays as it is; the result is checked (:func:`check_style_tokens`, every digest
    verified) after the card is written. A directory that has the graph already is left alone; one
    interrupted half way is finished by running it again."""
    model_dir = Path(model_dir)
    model = load_model(model_dir, verify=False)  # verified at the end, with the style encoder it was given
    card = model.card
    if card.has_style_tokens:
        logger.info("%s already has %s", model_dir, STYLE_TOKENS)
        return card
    config = card.model
    encoder_path, tail_path = model.graph_path("style_encoder"), model_dir / f"{STYLE_TOKENS}.onnx"
    encoder = expose_token_weights(onnx.load(str(encoder_path)), config)
    tail = style_tokens_graph(encoder, config)
    _save(tail, tail_path)
    _save(encoder, encoder_path)
    old = card.graphs["style_encoder"]
    weights = TensorSpec(STYLE_TOKEN_WEIGHTS, "float32", ("batch", config.style_attention_heads, config.num_style_tokens))
    embedding = next(t for t in old.outputs if t.name == STYLE_EMBEDDING)
    outputs = tuple(t for t in old.outputs if t.name != STYLE_TOKEN_WEIGHTS) + (weights,)
    card.graphs = dict(card.graphs) | {
        "style_encoder": dataclasses.replace(old, sha256=sha256_file(encoder_path), outputs=outputs),
        STYLE_TOKENS: GraphSpec(tail_path.name, sha256_file(tail_path), (weights,), (embedding,)),
    }
    card.write(model_dir)
    error = check_style_tokens(model_dir)
    if error > TOKEN_CHECK_TOLERANCE:
        raise ModelError(f"{model_dir}: {STYLE_TOKENS}(weights) differs from the style embedding by {error:.1e} (relative)")
    logger.info("%s: %s added (its embeddings equal the style encoder's to %.1e)", model_dir, STYLE_TOKENS, error)
    return card


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trtgen_export.style_tokens", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="a model directory (model.json and its graphs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        add_style_tokens(args.model_dir)
    except TrtgenError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
