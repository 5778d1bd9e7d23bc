"""``trtgen export``: checkpoint (or random init) -> model directory, checked against TensorFlow.

After writing the ONNX graphs, the export runs each of them once in ONNX Runtime and in the TF2
reference on the same inputs and the same dropout masks (a short free-running decode included) and
records the largest relative error in the card's provenance; beyond 1e-3 the export fails, since
a graph that disagrees with its checkpoint must never reach a generation run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from trtgen_export.variables import WeightDict, random_weights
from trtgen.engine.config import MODEL_PRESETS, ModelConfig, load_model_config, model_preset, parse_attention_window, text_config_for
from trtgen.engine.phonemes import phonemizer_for
from trtgen.errors import RunError, UsageError

logger = logging.getLogger(__name__)

__all__ = ["ExportRequest", "ExportReport", "ParityError", "run_export", "check_parity", "ParityReport", "PARITY_LIMIT"]

PARITY_LIMIT = 1e-3


@dataclass(frozen=True)
class ExportRequest:
    out: Path
    checkpoint: Path | None = None
    config: str = "openseq2seq"
    random_init: str | None = None
    seed: int = 0
    opset: int = 17
    chunk_steps: int = 8
    name: str | None = None
    tensorrt: bool = False
    fp16: bool = False
    verify_steps: int = 20
    attention_window: str | None = None
    """``BEHIND,AHEAD`` or ``none`` overrides the config's ``attention_window``; None keeps it."""
    stop_threshold: float | None = None
    """Overrides the config's ``stop_threshold`` (the card's decode default); None keeps it."""
    quantize: str | None = "postnet"
    """``postnet``, ``decoder`` or both (comma list): also write int8 variants of those graphs, which the
    runtime picks on the CPU (trtgen_export.quantize); None or ``none``: float32 only. The postnet's is the
    default: its fidelity holds on every model measured, the decoder's does not (benchmarks/RESULTS.md, "Reduced precision")."""


@dataclass
class ParityReport:
    """Largest error of each ONNX output relative to the TF reference's scale (max |x|)."""

    errors: dict[str, float]
    same_lengths: bool

    @property
    def worst(self) -> float:
        return max(self.errors.values()) if self.errors else 0.0


def _relative(actual: Any, expected: Any) -> float:
    expected = np.asarray(expected, np.float64)
    scale = max(float(np.max(np.abs(expected))), 1e-6)
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected))) / scale


def check_parity(model_dir: Path, weights: WeightDict, config: ModelConfig, *, steps: int = 20, batch: int = 2, seed: int = 0) -> ParityReport:
    """Run every graph in ONNX Runtime (CPU) and in TensorFlow on the same random inputs and masks."""
    import tensorflow as tf

    from trtgen_export.tf_model import TacotronGST
    from trtgen.engine.artifact import STYLE_TOKEN_WEIGHTS, STYLE_TOKENS, load_model
    from trtgen.engine.backends.onnxruntime_backend import OnnxRuntimeBackend

    model = load_model(model_dir)
    backend = OnnxRuntimeBackend(model)
    reference = TacotronGST(config, weights)
    rng = np.random.default_rng(seed)
    text_len = np.array([24 + 8 * i for i in range(batch)], np.int32)
    ids = np.zeros((batch, int(text_len.max())), np.int32)
    for b, n in enumerate(text_len):
        ids[b, :n] = rng.integers(3, config.num_symbols, n)
    style_len = np.array([64 + 24 * i for i in range(batch)], np.int32)
    style_mel = rng.normal(-3.0, 1.5, (batch, int(style_len.max()), config.num_mels)).astype(np.float32)
    errors: dict[str, float] = {}

    encoded_style = backend.load("style_encoder").run({"style_mel": style_mel, "style_len": style_len})
    style = encoded_style["style_embedding"]
    tf_style, tf_token_weights = reference.encode_style_with_token_weights(style_mel, style_len)
    errors["style_embedding"] = _relative(style, tf_style)
    if model.card.has_style_tokens:
        errors[STYLE_TOKEN_WEIGHTS] = _relative(encoded_style[STYLE_TOKEN_WEIGHTS], tf_token_weights)
        # The token bank on weights no clip gave (Dirichlet draws, as a style mode might make them), from
        # a generator of their own: the decoder's masks below stay those of earlier exports.
        drawn = np.random.default_rng(seed + 1).dirichlet(np.ones(config.num_style_tokens), (batch, config.style_attention_heads)).astype(np.float32)
        bank = backend.load(STYLE_TOKENS).run({STYLE_TOKEN_WEIGHTS: drawn})["style_embedding"]
        errors[STYLE_TOKENS] = _relative(bank, reference.embedding_from_token_weights(tf.constant(drawn)))
    encoded = backend.load("text_encoder").run({"text_ids": ids, "text_len": text_len, "style_embedding": style})
    tf_memory, tf_keys, tf_mask = reference.attention_memory(reference.encode_text(ids, text_len), tf.constant(style), text_len)
    errors["memory"] = _relative(encoded["memory"], tf_memory)
    errors["memory_keys"] = _relative(encoded["memory_keys"], tf_keys)

    chunk_steps = model.card.chunk_steps
    steps = -(-steps // chunk_steps) * chunk_steps
    masks = [((rng.random((steps, batch, u)) >= 0.5) * 2.0).astype(np.float32) for u in config.prenet_units]
    constant = {"memory": encoded["memory"], "memory_keys": encoded["memory_keys"], "memory_mask": encoded["memory_mask"]}
    state = {}
    for spec in model.card.decoder_state:
        state[spec.name] = np.zeros(model.card.state_shape(spec.name, batch, ids.shape[1]), np.float32)
    runner = backend.load("decoder_chunk")
    pieces: dict[str, list[np.ndarray]] = {"frames": [], "stop_logits": []}
    for start in range(0, steps, chunk_steps):
        feeds = dict(constant, **state)
        feeds.update((name, m[start : start + chunk_steps]) for name, m in zip(model.card.prenet_masks, masks))
        out = runner.run(feeds)
        state = {spec.name: out[spec.next] for spec in model.card.decoder_state}
        for key in pieces:
            pieces[key].append(out[key])
    chunk = {key: np.concatenate(parts) for key, parts in pieces.items()}
    decoded = reference.decode(
        encoded["memory"], encoded["memory_keys"], text_len,
        reference.prenet_masks_from(masks=[tf.constant(m) for m in masks]), max_steps=steps,
    )
    onnx_frames = chunk["frames"].transpose(1, 0, 2).reshape(batch, -1, config.num_mels)
    tf_frames = decoded["frames"].numpy()  # ends when every item has stopped, perhaps before `steps`
    onnx_frames = onnx_frames[:, : tf_frames.shape[1]]
    errors["decoder_frames"] = _relative(onnx_frames, tf_frames)
    mel_len = np.minimum(decoded["lengths"].numpy(), onnx_frames.shape[1]).astype(np.int32)
    post = backend.load("postnet").run({"mel": onnx_frames.astype(np.float32), "mel_len": mel_len})
    tf_mel, tf_mag = reference.postnet(onnx_frames, mel_len)
    errors["mel_postnet"] = _relative(post["mel_postnet"], tf_mel)
    errors["magnitude"] = _relative(post["magnitude"], tf_mag)
    stop_probability = 1.0 / (1.0 + np.exp(-chunk["stop_logits"]))
    fired = (stop_probability > config.stop_threshold).transpose(1, 0, 2).reshape(batch, -1)
    onnx_lengths = np.where(fired.any(axis=1), fired.argmax(axis=1) + 1, fired.shape[1])
    return ParityReport(errors, bool(np.array_equal(onnx_lengths, decoded["lengths"].numpy())))


def _checkpoint_digest(prefix: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(prefix.parent.glob(prefix.name + ".*")):
        if path.suffix == ".meta":
            continue
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _with_decode_settings(config: ModelConfig, request: ExportRequest) -> ModelConfig:
    """``config`` with the request's decode overrides (``--attention-window``, ``--stop-threshold``),
    validated: a bad value fails here, before any export. They change the card (the window also the
    decoder graph), never the weights."""
    changes: dict[str, Any] = {}
    if request.attention_window is not None:
        changes["attention_window"] = parse_attention_window(request.attention_window)
    if request.stop_threshold is not None:
        changes["stop_threshold"] = request.stop_threshold
    if not changes:
        return config
    config = dataclasses.replace(config, **changes)
    config.validate()
    return config


def load_weights(request: ExportRequest) -> tuple[WeightDict, ModelConfig, dict[str, Any]]:
    """The weights to export and where they came from."""
    if request.random_init is not None:
        if request.checkpoint is not None:
            raise UsageError("give either a CHECKPOINT or --random-init, not both")
        config = _with_decode_settings(model_preset(request.random_init), request)
        return random_weights(config, request.seed), config, {"random_init": request.random_init, "seed": request.seed}
    if request.checkpoint is None:
        raise UsageError(f"give a CHECKPOINT, or --random-init {'|'.join(MODEL_PRESETS)} for a random model")
    from trtgen_export.checkpoint import read_checkpoint, resolve_checkpoint

    config = _with_decode_settings(load_model_config(request.config), request)
    prefix = resolve_checkpoint(request.checkpoint)
    weights = read_checkpoint(prefix, config)
    source = {"checkpoint": str(prefix), "checkpoint_sha256": _checkpoint_digest(prefix), "config": config.name}
    phonemizer = text_config_for(config).phonemizer
    if phonemizer:
        # IPA output changes between espeak-ng releases: record the one the export saw (the trainer's should match).
        source["phonemizer"] = f"{phonemizer} (espeak-ng {phonemizer_for(phonemizer).version})"
    return weights, config, source


class ParityError(RunError):
    """The exported graphs disagree with TensorFlow: the directory must not be used (its card is removed)."""


@dataclass
class ExportReport:
    """What ``trtgen export`` did, for the command line's tables."""

    out: Path
    name: str
    config: str
    parameters: int
    parity: ParityReport
    verify_steps: int
    export_seconds: float
    files: list[tuple[str, int]]
    """(file name, bytes) of the model directory."""
    engines: list[Any] = field(default_factory=list)
    """TensorRT build records, when ``--tensorrt`` was given."""


def run_export(request: ExportRequest, log: Callable[[str], None] = logger.info) -> ExportReport:
    """Export, verify against TensorFlow, optionally build TensorRT engines. Raises
    :class:`~trtgen.errors.UsageError` for a bad checkpoint or option, :class:`ParityError` when the graphs
    disagree with TensorFlow, :class:`~trtgen.engine.backends.BackendUnavailable` when TensorRT is missing."""
    from trtgen_export.onnx_export import ExportOptions, export_model
    from trtgen_export.quantize import QuantizeOptions, parse_quantize, quantize_model

    parse_quantize(request.quantize)  # a bad --quantize fails before the export, not after it
    started = time.perf_counter()
    weights, config, source = load_weights(request)
    name = request.name or request.out.name
    parameters = sum(w.size for w in weights.values())
    log(f"exporting {name} ({config.name} config, {parameters:,} parameters) to {request.out}")
    card_path = export_model(weights, config, request.out, options=ExportOptions(opset=request.opset, chunk_steps=request.chunk_steps, name=name, source=source))
    export_seconds = time.perf_counter() - started
    parity = check_parity(request.out, weights, config, steps=request.verify_steps)
    _record_parity(card_path, parity)
    if parity.worst > PARITY_LIMIT or not parity.same_lengths:
        card_path.unlink()
        detail = ", ".join(f"{graph} {error:.1e}" for graph, error in parity.errors.items())
        raise ParityError(
            f"the ONNX graphs disagree with TensorFlow (worst {parity.worst:.1e}; {detail}; stop steps "
            f"{'equal' if parity.same_lengths else 'differ'}); {request.out} is not usable (its {card_path.name} was removed)"
        )
    graphs = parse_quantize(request.quantize)
    if graphs:
        quantize_model(request.out, QuantizeOptions(graphs=graphs), log=log)
    files = [(p.name, p.stat().st_size) for p in sorted(request.out.iterdir()) if p.is_file()]
    report = ExportReport(request.out, name, config.name, parameters, parity, request.verify_steps, export_seconds, files)
    if request.tensorrt:
        from trtgen.engine.artifact import load_model
        from trtgen.engine.backends.tensorrt_backend import EngineOptions, build_engines
        from trtgen_export.trt_support import UnsupportedGraphError, check_tensorrt_support

        support = check_tensorrt_support(request.out)
        if not support.ok:
            raise UnsupportedGraphError(f"--tensorrt: {support.format()}")
        report.engines = build_engines(load_model(request.out), EngineOptions(fp16=request.fp16))
    return report


def _record_parity(card_path: Path, parity: ParityReport) -> None:
    """Keep the verification result in the card's provenance."""
    import json

    from trtgen.engine.artifact import ModelCard

    card = ModelCard.from_json(json.loads(card_path.read_text(encoding="utf-8")), source=str(card_path))
    card.source = dict(card.source, parity={k: float(f"{v:.3g}") for k, v in parity.errors.items()})
    card.write(card_path.parent)
