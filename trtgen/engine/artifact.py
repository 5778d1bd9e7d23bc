"""The model directory: ONNX graphs plus one JSON model card that says everything about the model.

A model travels as ``<dir>/model.json`` + the graphs it names (+ TensorRT engines under
``<dir>/tensorrt/`` when built). The runtime reads only this directory: dimensions, audio and text
parameters, tensor names and the decoder's state wiring all come from the card, never from code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtgen import __version__
from trtgen.engine.config import AudioConfig, ModelConfig, TextConfig, from_dict, to_dict
from trtgen.errors import ModelError, UsageError
from trtgen.fileio import atomic_write, sha256_file

__all__ = [
    "CARD_NAME",
    "SCHEMA_VERSION",
    "GRAPH_NAMES",
    "OPTIONAL_GRAPHS",
    "STYLE_TOKENS",
    "STYLE_TOKEN_WEIGHTS",
    "ModelError",
    "TensorSpec",
    "GraphSpec",
    "StateTensor",
    "ModelCard",
    "Model",
    "load_model",
    "default_model_dir",
    "SHIPPED_VOICE",
    "PRECISIONS",
    "resolve_precision",
]

CARD_NAME = "model.json"
SCHEMA_VERSION = 1
GRAPH_NAMES = ("style_encoder", "text_encoder", "decoder_step", "decoder_chunk", "postnet")
"""Every model directory holds these graphs (see README "The model directory")."""
STYLE_TOKENS = "style_tokens"
"""The token-bank graph: style token weights [batch, heads, tokens] -> style embedding (docs/openseq2seq-notes.md §4.4.6)."""
STYLE_TOKEN_WEIGHTS = "style_token_weights"
"""The tensor of a clip's token weights: a second output of ``style_encoder``, the input of ``style_tokens``."""
OPTIONAL_GRAPHS = (STYLE_TOKENS,)
"""Graphs a model directory may lack: those exported before trtgen wrote them (see :attr:`ModelCard.has_style_tokens`)."""
PRECISIONS = ("float32", "int8")
"""``float32``: the exported graphs; ``int8``: the card's statically quantised variants where it has them
(``trtgen export --quantize``, docs/throughput.md), float32 for the other graphs."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, element type and shape (strings name dynamic axes)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @staticmethod
    def from_json(data: dict[str, Any]) -> TensorSpec:
        return TensorSpec(data["name"], data["dtype"], tuple(data["shape"]))


@dataclass(frozen=True)
class GraphSpec:
    file: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> GraphSpec:
        return GraphSpec(
            data["file"],
            data["sha256"],
            tuple(TensorSpec.from_json(t) for t in data["inputs"]),
            tuple(TensorSpec.from_json(t) for t in data["outputs"]),
        )


@dataclass(frozen=True)
class StateTensor:
    """A decoder state tensor: fed as ``name``, returned for the next step as ``next``."""

    name: str
    next: str


@dataclass
class ModelCard:
    """Contents of ``model.json``."""

    name: str
    model: ModelConfig
    audio: AudioConfig
    text: TextConfig
    opset: int
    graphs: dict[str, GraphSpec]
    decoder_state: tuple[StateTensor, ...]
    prenet_masks: tuple[str, ...]
    external_data: dict[str, str] = field(default_factory=dict)
    """Shared weight files (name -> sha256), e.g. the decoder weights used by both decoder graphs."""
    source: dict[str, Any] = field(default_factory=dict)
    """Where the weights came from: checkpoint path and digest, or the random-init seed."""
    defaults: dict[str, Any] = field(default_factory=dict)
    """Inference defaults (e.g. TensorRT optimisation-profile bounds)."""
    quantized: dict[str, GraphSpec] = field(default_factory=dict)
    """int8 variants of some graphs (graph name -> its int8 file), run on the CPU by default (:func:`resolve_precision`)."""
    quantization: dict[str, Any] = field(default_factory=dict)
    """How the int8 variants were made: method, calibration sentences, quantised nodes per graph."""
    schema_version: int = SCHEMA_VERSION
    trtgen_version: str = __version__

    @property
    def chunk_steps(self) -> int:
        """Decoder steps per call of ``decoder_chunk`` (the fixed leading axis of its prenet masks)."""
        steps = self.graphs["decoder_chunk"].input(self.prenet_masks[0]).shape[0]
        if not isinstance(steps, int):
            raise ModelError(f"decoder_chunk's {self.prenet_masks[0]} has no fixed step axis ({steps!r}); re-export the model")
        return steps

    @property
    def has_style_tokens(self) -> bool:
        """Whether the model exposes its token bank: the style encoder's ``style_token_weights`` output and the
        ``style_tokens`` graph (exported by this trtgen; older model directories lack both)."""
        return STYLE_TOKENS in self.graphs and any(t.name == STYLE_TOKEN_WEIGHTS for t in self.graphs["style_encoder"].outputs)

    @property
    def style_token_shape(self) -> tuple[int, int]:
        """(heads, tokens): the shape of one clip's token weights, a softmax over the tokens per attention head."""
        return self.model.style_attention_heads, self.model.num_style_tokens

    def _state_width(self, name: str) -> int | str:
        """Second axis of decoder state ``name`` as the decoder graph declares it: a width or ``"text_time"``."""
        return self.graphs["decoder_chunk"].input(name).shape[1]

    def state_shape(self, name: str, rows: int, time: int) -> tuple[int, int]:
        """Shape of decoder state ``name`` for ``rows`` texts of ``time`` symbols."""
        width = self._state_width(name)
        return (rows, time if width == "text_time" else int(width))

    @property
    def text_time_states(self) -> frozenset[str]:
        """Decoder states with one value per text symbol (they grow and shrink with the batch's text axis)."""
        return frozenset(s.name for s in self.decoder_state if self._state_width(s.name) == "text_time")

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "trtgen_version": self.trtgen_version,
            "name": self.name,
            "model": to_dict(self.model),
            "audio": to_dict(self.audio),
            "text": to_dict(self.text),
            "opset": self.opset,
            "graphs": {name: spec.to_json() for name, spec in self.graphs.items()},
            "external_data": dict(self.external_data),
            "decoder_state": [{"name": s.name, "next": s.next} for s in self.decoder_state],
            "prenet_masks": list(self.prenet_masks),
            "source": self.source,
            "defaults": self.defaults,
        } | ({"quantized": {name: spec.to_json() for name, spec in self.quantized.items()}, "quantization": self.quantization} if self.quantized else {})

    def write(self, directory: Path) -> Path:
        path = Path(directory) / CARD_NAME
        with atomic_write(path) as handle:
            handle.write(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")
        return path

    @staticmethod
    def from_json(data: Any, source: str = CARD_NAME) -> ModelCard:
        if not isinstance(data, dict):
            raise ModelError(f"{source}: a model card is a JSON object, not {type(data).__name__}")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ModelError(
                f"{source}: model card schema version {version!r}; this trtgen reads version {SCHEMA_VERSION}. "
                "Re-export the model with this version of trtgen."
            )
        try:
            return ModelCard(
                name=data["name"],
                model=from_dict(ModelConfig, data["model"], source=f"{source}: model"),
                audio=from_dict(AudioConfig, data["audio"], source=f"{source}: audio"),
                text=from_dict(TextConfig, data["text"], source=f"{source}: text"),
                opset=int(data["opset"]),
                graphs={name: GraphSpec.from_json(spec) for name, spec in data["graphs"].items()},
                decoder_state=tuple(StateTensor(s["name"], s["next"]) for s in data["decoder_state"]),
                prenet_masks=tuple(data["prenet_masks"]),
                external_data=dict(data.get("external_data", {})),
                source=dict(data.get("source", {})),
                defaults=dict(data.get("defaults", {})),
                quantized={name: GraphSpec.from_json(spec) for name, spec in data.get("quantized", {}).items()},
                quantization=dict(data.get("quantization", {})),
                schema_version=version,
                trtgen_version=data.get("trtgen_version", "unknown"),
            )
        except KeyError as missing:
            raise ModelError(f"{source}: missing field {missing}") from None
        except UsageError as error:  # a config field of the wrong type or name; the message names both
            raise ModelError(str(error)) from None
        except (TypeError, ValueError, AttributeError) as error:
            raise ModelError(f"{source}: malformed model card ({error})") from None


@dataclass
class Model:
    """A loaded model directory: its card and the absolute paths of its files."""

    directory: Path
    card: ModelCard
    precision: str = "float32"
    """What :meth:`with_precision` made of it: ``int8`` when the card's int8 variants run."""
    source_digest: str = ""
    """:attr:`digest` of the directory as :func:`load_model` read it, before :meth:`with_precision` or
    :meth:`with_stop_threshold`: a copy's settings name the model by it (the precision that runs is
    recorded beside it)."""

    def graph_path(self, name: str) -> Path:
        return self.directory / self.card.graphs[name].file

    @property
    def digest(self) -> str:
        """One digest for the whole model (card graphs, shared weights and the configs that shape decoding,
        such as the stop threshold): names the model in outputs, so a resumed run cannot mix two models."""
        parts = sorted(f"{n}:{g.sha256}" for n, g in self.card.graphs.items())
        parts += sorted(f"{n}:{d}" for n, d in self.card.external_data.items())
        parts += sorted(f"int8 {n}:{g.sha256}" for n, g in self.card.quantized.items())
        configs = {"model": to_dict(self.card.model), "audio": to_dict(self.card.audio), "text": to_dict(self.card.text)}
        parts.append("configs:" + json.dumps(configs, sort_keys=True))
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def with_stop_threshold(self, threshold: float) -> Model:
        """The same graphs decoded with another stop threshold (the files on disk are untouched)."""
        config = dataclasses.replace(self.card.model, stop_threshold=float(threshold))
        return dataclasses.replace(self, card=dataclasses.replace(self.card, model=config))

    def with_precision(self, precision: str) -> Model:
        """The model as it runs at ``precision``: for ``int8`` the card's int8 variants stand in for their
        float graphs. The result lists no variants, so its :attr:`digest` names the graphs that run."""
        if precision not in PRECISIONS:
            raise UsageError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        graphs = dict(self.card.graphs)
        if precision == "int8":
            if not self.card.quantized:
                raise UsageError(f"{self.directory}: the model has no int8 graphs (export it with trtgen export --quantize)")
            graphs.update(self.card.quantized)
        return dataclasses.replace(self, card=dataclasses.replace(self.card, graphs=graphs, quantized={}), precision=precision)


def resolve_precision(card: ModelCard, device: str, precision: str | None = None) -> str:
    """The precision a model runs at: ``precision`` when given; else int8 on the CPU when the card has
    int8 variants (their fidelity is measured at export, docs/throughput.md), float32 otherwise. The
    int8 variants are for ONNX Runtime's CPU kernels: a GPU runs float32."""
    if precision is None:
        return "int8" if card.quantized and device == "cpu" else "float32"
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "int8" and device != "cpu":
        raise UsageError("int8 graphs run on the CPU (ONNX Runtime); on a GPU use float32 (or TensorRT's --fp16 engines)")
    return precision


SHIPPED_VOICE = Path(__file__).resolve().parent.parent / "voices" / "default"
"""The voice shipped inside the package (trained on espeak-ng speech, docs/shipped-voice.md)."""


def default_model_dir() -> Path:
    """The shipped voice's directory, or :class:`ModelError` when this installation has none."""
    if not (SHIPPED_VOICE / CARD_NAME).is_file():
        raise ModelError(
            "no model is shipped with this installation: pass --model DIR "
            "(`trtgen export CHECKPOINT --out DIR`, or `trtgen export --random-init small --out DIR` for a test model)"
        )
    return SHIPPED_VOICE


def load_model(directory: str | Path, *, verify: bool = True) -> Model:
    """Read and check a model directory; ``verify`` re-hashes every file against the card."""
    directory = Path(directory)
    card_path = directory / CARD_NAME
    if not card_path.is_file():
        raise ModelError(f"{directory}: not a trtgen model directory (no {CARD_NAME})")
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelError(f"{card_path}: not valid JSON ({error})") from None
    card = ModelCard.from_json(data, source=str(card_path))
    missing = [name for name in GRAPH_NAMES if name not in card.graphs]
    if missing:
        raise ModelError(f"{card_path}: graphs missing from the card: {', '.join(missing)}")
    if STYLE_TOKENS in card.graphs and not card.has_style_tokens:
        raise ModelError(f"{card_path}: lists {STYLE_TOKENS} but its style_encoder has no {STYLE_TOKEN_WEIGHTS} output; re-export the model")
    files = {spec.file: spec.sha256 for spec in (*card.graphs.values(), *card.quantized.values())} | dict(card.external_data)
    for file, expected in files.items():
        path = directory / file
        if not path.is_file():
            raise ModelError(f"{directory}: {file} is named in {CARD_NAME} but missing")
        if verify and sha256_file(path) != expected:
            raise ModelError(f"{path}: sha256 differs from {CARD_NAME}; the file was changed or corrupted")
    model = Model(directory=directory, card=card)
    return dataclasses.replace(model, source_digest=model.digest)
