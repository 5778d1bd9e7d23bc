"""Model directories as earlier trtgen versions wrote them, made from current exports for tests."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import onnx

from trtgen.engine.artifact import (
    CARD_NAME,
    STYLE_TOKEN_WEIGHTS,
    STYLE_TOKENS,
    ModelCard,
)
from trtgen.fileio import sha256_file

OLD_SOFTMAX_OUTPUT = "Softmax:0"
"""What tf2onnx named the GST attention's softmax output when the style encoder did not list it."""


def strip_style_tokens(directory: Path) -> None:
    """Make ``directory`` (a copy of an export) what trtgen wrote before ``style_tokens`` existed: a style
    encoder whose only output is ``style_embedding`` and no ``style_tokens`` graph in the card or on disk."""
    path = directory / "style_encoder.onnx"
    model = onnx.load(str(path))
    kept = [v for v in model.graph.output if v.name != STYLE_TOKEN_WEIGHTS]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    for node in model.graph.node:
        node.input[:] = [OLD_SOFTMAX_OUTPUT if name == STYLE_TOKEN_WEIGHTS else name for name in node.input]
        node.output[:] = [OLD_SOFTMAX_OUTPUT if name == STYLE_TOKEN_WEIGHTS else name for name in node.output]
    onnx.save(model, str(path))
    (directory / f"{STYLE_TOKENS}.onnx").unlink()
    card = ModelCard.from_json(json.loads((directory / CARD_NAME).read_text(encoding="utf-8")))
    encoder = card.graphs["style_encoder"]
    outputs = tuple(t for t in encoder.outputs if t.name != STYLE_TOKEN_WEIGHTS)
    graphs = {name: spec for name, spec in card.graphs.items() if name != STYLE_TOKENS}
    graphs["style_encoder"] = dataclasses.replace(encoder, sha256=sha256_file(path), outputs=outputs)
    card.graphs = graphs
    card.write(directory)
