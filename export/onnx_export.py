"""TensorFlow model -> ONNX graphs (tf2onnx) -> a self-describing model directory.

Graphs (opset 17, every batch and time axis dynamic):
- ``style_encoder``: style_mel, style_len -> style_embedding, style_token_weights. Split from the text
  encoder so that a style clip is encoded once and its embedding reused (or interpolated) across
  utterances; the token weights are the GST attention's softmax over the style tokens, per head.
- ``style_tokens``: style_token_weights -> style_embedding, the style encoder's own tail cut out of it
  (``trtgen_export.style_tokens``): any weights over the token bank to an embedding.
- ``text_encoder``: text_ids, text_len, style_embedding -> memory, memory_keys, memory_mask.
- ``decoder_step``: one decoder step; state in, next state out (names in the card).
- ``decoder_chunk``: K copies of that step chained in one graph (K fixed at export, 8 by default),
  so that one runtime call runs K decoder steps and the Python decode loop (trtgen.engine.decode) turns
  once per K steps. The copies share one set of weights, and both decoder graphs share one external
  weight file. (An ONNX Loop over the step, which tf2onnx would also produce from a tf.while_loop, is
  slower on ONNX Runtime: benchmarks/bench_chunk_forms.py.)
- ``postnet``: mel, mel_len -> mel_postnet, magnitude.

The encoder LSTM is written in TensorFlow with the fused ``BlockLSTM`` op; a custom tf2onnx handler
turns each into one ONNX ``LSTM`` node (instead of an unrolled loop).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import tensorflow as tf
import tf2onnx
from onnx import TensorProto, helper, numpy_helper

from trtgen_export.style_tokens import style_tokens_graph
from trtgen_export.tf_model import TacotronGST, state_names
from trtgen_export.variables import WeightDict
from trtgen.engine.artifact import STYLE_TOKEN_WEIGHTS, STYLE_TOKENS, GraphSpec, ModelCard, StateTensor, TensorSpec
from trtgen.fileio import sha256_file
from trtgen.engine.config import AudioConfig, ModelConfig, TextConfig, text_config_for

logger = logging.getLogger(__name__)

__all__ = ["ExportOptions", "export_model", "DEFAULT_OPSET", "MAX_TF2ONNX_OPSET"]

DEFAULT_OPSET = 17
DEFAULT_CHUNK_STEPS = 8
MAX_TF2ONNX_OPSET = 18
DECODER_WEIGHTS = "decoder.weights"

_ONNX_DTYPES = {TensorProto.FLOAT: "float32", TensorProto.INT32: "int32", TensorProto.INT64: "int64", TensorProto.BOOL: "bool"}


@dataclass(frozen=True)
class ExportOptions:
    opset: int = DEFAULT_OPSET
    chunk_steps: int = DEFAULT_CHUNK_STEPS
    """Decoder steps per call of ``decoder_chunk`` (fixed in the graph)."""
    name: str = "model"
    source: dict[str, Any] | None = None
    """Provenance recorded in the card (checkpoint path and digest, or random-init seed)."""


# ---------------------------------------------------------------------------- tf2onnx plumbing
def _block_lstm_handler(ctx: Any, node: Any, name: str, args: list[Any]) -> None:
    """tf2onnx handler: TF ``BlockLSTM`` (LSTMBlockCell over a sequence, gates i,c,f,o) -> ONNX ``LSTM``.

    ONNX orders gates i,o,f,c with W [1, 4H, I], R [1, 4H, H] and B [1, 8H] = [Wb; Rb]; TF's forget
    bias attribute (0 for CudnnCompatibleLSTMCell) is folded into the forget-gate bias.
    """
    kernel_node = ctx.get_node_by_output(node.input[4])
    bias_node = ctx.get_node_by_output(node.input[8])
    if not (kernel_node.is_const() and bias_node.is_const()):
        raise ValueError(f"BlockLSTM {name}: kernel and bias must be constants to export")
    if node.get_attr_value("use_peephole"):
        raise ValueError(f"BlockLSTM {name}: peepholes are not used by this model")
    kernel = kernel_node.get_tensor_value(as_list=False)
    bias = bias_node.get_tensor_value(as_list=False).copy()
    units = bias.shape[0] // 4
    inputs = kernel.shape[0] - units
    forget_bias = float(node.get_attr_value("forget_bias"))
    bias[2 * units : 3 * units] += forget_bias
    blocks = {gate: slice(k * units, (k + 1) * units) for k, gate in enumerate("icfo")}
    order = [blocks[g] for g in "iofc"]
    w = np.concatenate([kernel[:inputs, s].T for s in order])[None]
    r = np.concatenate([kernel[inputs:, s].T for s in order])[None]
    b = np.concatenate([np.concatenate([bias[s] for s in order]), np.zeros(4 * units, np.float32)])[None]
    for index in range(6):
        if ctx.find_output_consumers(node.output[index]):
            raise ValueError(f"BlockLSTM {name}: only the h output can be exported")
    w_const = ctx.make_const(tf2onnx.utils.make_name(f"{name}_W"), w.astype(np.float32))
    r_const = ctx.make_const(tf2onnx.utils.make_name(f"{name}_R"), r.astype(np.float32))
    b_const = ctx.make_const(tf2onnx.utils.make_name(f"{name}_B"), b.astype(np.float32))
    h_prev = ctx.make_node("Unsqueeze", [node.input[3], ctx.make_const(tf2onnx.utils.make_name("axis0"), np.array([0], np.int64)).output[0]])
    c_prev = ctx.make_node("Unsqueeze", [node.input[2], ctx.make_const(tf2onnx.utils.make_name("axis0"), np.array([0], np.int64)).output[0]])
    lstm = ctx.make_node(
        "LSTM",
        [node.input[1], w_const.output[0], r_const.output[0], b_const.output[0], "", h_prev.output[0], c_prev.output[0]],
        attr={"hidden_size": units, "direction": "forward"},
        output_count=1,
    )
    squeeze_axis = ctx.make_const(tf2onnx.utils.make_name("axis1"), np.array([1], np.int64))
    outputs = [node.output[6]]
    ctx.remove_node(node.name)
    ctx.make_node("Squeeze", [lstm.output[0], squeeze_axis.output[0]], outputs=outputs)


def _convert(function: Callable[..., Any], signature: list[tf.TensorSpec], opset: int) -> onnx.ModelProto:
    model, _ = tf2onnx.convert.from_function(
        function,
        input_signature=signature,
        opset=opset,
        custom_op_handlers={"BlockLSTM": (_block_lstm_handler, [])},
    )
    return model


def _name_dynamic_axes(model: onnx.ModelProto, axis_names: dict[str, list[str | int]]) -> None:
    """Give the dynamic axes of inputs and outputs stable names (batch, text_time, ...)."""
    for value in list(model.graph.input) + list(model.graph.output):
        names = axis_names.get(value.name)
        if names is None:
            continue
        dims = value.type.tensor_type.shape.dim
        if len(dims) != len(names):
            raise ValueError(f"{value.name}: expected rank {len(names)}, graph has {len(dims)}")
        for dim, label in zip(dims, names):
            if isinstance(label, str):
                dim.ClearField("dim_value")
                dim.dim_param = label
            else:
                dim.ClearField("dim_param")
                dim.dim_value = label


def _specs(values: Any) -> tuple[TensorSpec, ...]:
    specs = []
    for value in values:
        dims = value.type.tensor_type.shape.dim
        shape = tuple(d.dim_param if d.dim_param else int(d.dim_value) for d in dims)
        specs.append(TensorSpec(value.name, _ONNX_DTYPES[value.type.tensor_type.elem_type], shape))
    return tuple(specs)


# ---------------------------------------------------------------------------- the graphs
class _Graphs:
    """tf.functions (with signatures and axis names) for each exported graph."""

    def __init__(self, model: TacotronGST) -> None:
        self.model = model
        self.config = model.config

    def style_encoder(self) -> tuple[Callable[..., Any], list[tf.TensorSpec], dict[str, list[str | int]]]:
        c = self.config

        @tf.function
        def style_encoder(style_mel: tf.Tensor, style_len: tf.Tensor) -> dict[str, tf.Tensor]:
            embedding, weights = self.model.encode_style_with_token_weights(style_mel, style_len)
            return {"style_embedding": embedding, STYLE_TOKEN_WEIGHTS: weights}

        signature = [
            tf.TensorSpec([None, None, c.num_mels], tf.float32, name="style_mel"),
            tf.TensorSpec([None], tf.int32, name="style_len"),
        ]
        axes = {
            "style_mel": ["batch", "style_time", c.num_mels],
            "style_len": ["batch"],
            "style_embedding": ["batch", c.style_dim],
            STYLE_TOKEN_WEIGHTS: ["batch", c.style_attention_heads, c.num_style_tokens],
        }
        return style_encoder, signature, axes

    def text_encoder(self) -> tuple[Callable[..., Any], list[tf.TensorSpec], dict[str, list[str | int]]]:
        c = self.config

        @tf.function
        def text_encoder(text_ids: tf.Tensor, text_len: tf.Tensor, style_embedding: tf.Tensor) -> dict[str, tf.Tensor]:
            outputs = self.model.encode_text(text_ids, text_len)
            memory, keys, mask = self.model.attention_memory(outputs, style_embedding, text_len)
            return {"memory": memory, "memory_keys": keys, "memory_mask": mask}

        signature = [
            tf.TensorSpec([None, None], tf.int32, name="text_ids"),
            tf.TensorSpec([None], tf.int32, name="text_len"),
            tf.TensorSpec([None, c.style_dim], tf.float32, name="style_embedding"),
        ]
        axes = {
            "text_ids": ["batch", "text_time"],
            "text_len": ["batch"],
            "style_embedding": ["batch", c.style_dim],
            "memory": ["batch", "text_time", c.memory_dim],
            "memory_keys": ["batch", "text_time", c.attention_dim],
            "memory_mask": ["batch", "text_time"],
        }
        return text_encoder, signature, axes

    def state_axes(self) -> dict[str, list[str | int]]:
        c = self.config
        axes: dict[str, list[str | int]] = {
            "frame": ["batch", c.num_mels],
            "attention_context": ["batch", c.memory_dim],
            "cumulative_alignment": ["batch", "text_time"],
            "previous_alignment": ["batch", "text_time"],
        }
        for i in range(c.decoder_lstm_layers):
            axes[f"lstm{i}_h"] = ["batch", c.decoder_lstm_units]
            axes[f"lstm{i}_c"] = ["batch", c.decoder_lstm_units]
        return {name: axes[name] for name in state_names(c)}

    def decoder_step(self) -> tuple[Callable[..., Any], list[tf.TensorSpec], dict[str, list[str | int]]]:
        c = self.config
        names = state_names(c)
        state_axes = self.state_axes()
        masks = [f"prenet_mask_{i}" for i in range(len(c.prenet_units))]

        def step(memory, memory_keys, memory_mask, *rest):  # type: ignore[no-untyped-def]
            state = dict(zip(names, rest[: len(names)]))
            out, next_state = self.model.decoder_step(state, memory, memory_keys, memory_mask, list(rest[len(names) :]))
            result = {"frames": out["frames"], "stop_logits": out["stop_logits"], "alignment": out["alignment"]}
            result.update({f"next_{n}": next_state[n] for n in names})
            return result

        signature = [
            tf.TensorSpec([None, None, c.memory_dim], tf.float32, name="memory"),
            tf.TensorSpec([None, None, c.attention_dim], tf.float32, name="memory_keys"),
            tf.TensorSpec([None, None], tf.float32, name="memory_mask"),
        ]
        signature += [tf.TensorSpec([None if a == "batch" or a == "text_time" else a for a in state_axes[n]], tf.float32, name=n) for n in names]
        signature += [tf.TensorSpec([None, u], tf.float32, name=m) for m, u in zip(masks, c.prenet_units)]
        axes: dict[str, list[str | int]] = {
            "memory": ["batch", "text_time", c.memory_dim],
            "memory_keys": ["batch", "text_time", c.attention_dim],
            "memory_mask": ["batch", "text_time"],
            "frames": ["batch", c.frame_dim],
            "stop_logits": ["batch", c.reduction_factor],
            "alignment": ["batch", "text_time"],
        }
        axes.update(state_axes)
        axes.update({f"next_{n}": state_axes[n] for n in names})
        axes.update({m: ["batch", u] for m, u in zip(masks, c.prenet_units)})
        return tf.function(step), signature, axes

    def postnet(self) -> tuple[Callable[..., Any], list[tf.TensorSpec], dict[str, list[str | int]]]:
        c = self.config

        @tf.function
        def postnet(mel: tf.Tensor, mel_len: tf.Tensor) -> dict[str, tf.Tensor]:
            mel_postnet, magnitude = self.model.postnet(mel, mel_len)
            return {"mel_postnet": mel_postnet, "magnitude": magnitude}

        signature = [
            tf.TensorSpec([None, None, c.num_mels], tf.float32, name="mel"),
            tf.TensorSpec([None], tf.int32, name="mel_len"),
        ]
        axes = {
            "mel": ["batch", "mel_time", c.num_mels],
            "mel_len": ["batch"],
            "mel_postnet": ["batch", "mel_time", c.num_mels],
            "magnitude": ["batch", "mel_time", c.num_freq],
        }
        return postnet, signature, axes


def build_decoder_chunk(step: onnx.ModelProto, config: ModelConfig, steps: int) -> onnx.ModelProto:
    """K copies of the single-step graph chained in one graph: K decoder steps per runtime call.

    Inputs equal the step's, except that each prenet mask gains a leading axis of K (fixed) steps.
    Outputs: the state after K steps (``next_*``) and the per-step ``frames``, ``stop_logits`` and
    ``alignments`` stacked on a leading K axis. The weights are initialisers stored once and shared
    by the K copies. (An ONNX Loop over the step was measured against this unrolled chunk and lost:
    see ``benchmarks/bench_chunk_forms.py`` and ``benchmarks/results/chunk_forms.md``.)
    """
    if steps < 1:
        raise ValueError("a decoder chunk needs at least one step")
    names = state_names(config)
    masks = [f"prenet_mask_{i}" for i in range(len(config.prenet_units))]
    graph = step.graph
    shared = {"memory", "memory_keys", "memory_mask"} | {t.name for t in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    constants = [numpy_helper.from_array(np.array([0], np.int64), "chunk/axis0")]
    current = {n: n for n in names}  # where each state tensor lives before step k
    stacked: dict[str, list[str]] = {"frames": [], "stop_logits": [], "alignment": []}
    for k in range(steps):
        prefix = f"step{k}/"
        index = f"chunk/index{k}"
        constants.append(numpy_helper.from_array(np.array(k, np.int64), index))
        for mask in masks:
            nodes.append(helper.make_node("Gather", [mask, index], [prefix + mask], axis=0, name=f"{prefix}gather_{mask}"))

        def rename(name: str, prefix: str = prefix) -> str:
            if name == "" or name in shared:
                return name
            if name in current:
                return current[name]
            return prefix + name

        for node in graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            del copy.input[:]
            del copy.output[:]
            copy.input.extend(prefix + n if n in masks else rename(n) for n in node.input)
            copy.output.extend(prefix + n for n in node.output)
            copy.name = prefix + node.name
            nodes.append(copy)
        for output in stacked:
            unsqueezed = f"{prefix}{output}_stacked"
            nodes.append(helper.make_node("Unsqueeze", [prefix + output, "chunk/axis0"], [unsqueezed], name=f"{prefix}unsqueeze_{output}"))
            stacked[output].append(unsqueezed)
        current = {n: f"{prefix}next_{n}" for n in names}
    for output, parts in stacked.items():
        target = "alignments" if output == "alignment" else output
        nodes.append(helper.make_node("Concat", parts, [target], axis=0, name=f"stack_{target}"))
    for n in names:
        nodes.append(helper.make_node("Identity", [current[n]], [f"next_{n}"], name=f"final_{n}"))

    value_info = {v.name: v for v in list(graph.input) + list(graph.output)}

    def declared(name: str, new_name: str, leading: str | None = None) -> onnx.ValueInfoProto:
        copy = onnx.ValueInfoProto()
        copy.CopyFrom(value_info[name])
        copy.name = new_name
        if leading is not None:
            copy.type.tensor_type.shape.dim.insert(0, onnx.TensorShapeProto.Dimension(dim_value=steps))
        return copy

    inputs = [declared(v.name, v.name, "steps" if v.name in masks else None) for v in graph.input]
    outputs = [declared(f"next_{n}", f"next_{n}") for n in names]
    outputs += [declared(o, "alignments" if o == "alignment" else o, "steps") for o in stacked]
    chunk = helper.make_graph(nodes, "decoder_chunk", inputs, outputs, initializer=list(graph.initializer) + constants)
    model = helper.make_model(chunk, opset_imports=step.opset_import, producer_name="trtgen")
    model.ir_version = step.ir_version
    return model


def _share_external_weights(models: list[onnx.ModelProto], directory: Path, filename: str) -> None:
    """Store the initialisers of several graphs once, in one external file they all reference.

    ``models[0]`` defines the file; later models point their same-named initialisers at the same
    offsets. Small tensors stay inside each graph.
    """
    first = models[0]
    onnx.external_data_helper.convert_model_to_external_data(
        first, all_tensors_to_one_file=True, location=filename, size_threshold=1024
    )
    onnx.external_data_helper.write_external_data_tensors(first, str(directory))
    stored = {t.name: t for t in first.graph.initializer if t.data_location == TensorProto.EXTERNAL}
    for model in models[1:]:
        for tensor in model.graph.initializer:
            source = stored.get(tensor.name)
            if source is None:
                continue
            tensor.ClearField("raw_data")
            tensor.ClearField("float_data")
            tensor.data_location = TensorProto.EXTERNAL
            del tensor.external_data[:]
            tensor.external_data.extend(source.external_data)


def _save(model: onnx.ModelProto, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    onnx.save_model(model, str(temporary))
    os.replace(temporary, path)


def export_model(
    weights: WeightDict,
    config: ModelConfig,
    out_dir: str | Path,
    *,
    audio: AudioConfig | None = None,
    text: TextConfig | None = None,
    options: ExportOptions | None = None,
) -> Path:
    """Export every graph and write ``model.json``; returns the card's path.

    The card is written last, so a directory with a card is complete; an interrupted export leaves
    no card and is simply re-run.
    """
    options = options or ExportOptions()
    if not 13 <= options.opset <= MAX_TF2ONNX_OPSET:
        raise ValueError(f"opset {options.opset}: tf2onnx supports 13..{MAX_TF2ONNX_OPSET}")
    audio, text = audio or AudioConfig(), text or text_config_for(config)
    if text.num_symbols != config.num_symbols:
        raise ValueError(f"the symbol table has {text.num_symbols} symbols but the model embeds {config.num_symbols}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    card_path = out / "model.json"
    if card_path.exists():
        card_path.unlink()  # the directory is incomplete until the new card is written
    model = TacotronGST(config, weights)
    graphs = _Graphs(model)
    started = time.perf_counter()
    converted: dict[str, onnx.ModelProto] = {}
    for name in ("style_encoder", "text_encoder", "decoder_step", "postnet"):
        function, signature, axes = getattr(graphs, name)()
        t0 = time.perf_counter()
        proto = _convert(function, signature, options.opset)
        _name_dynamic_axes(proto, axes)
        proto.producer_name = "trtgen"
        converted[name] = proto
        logger.info("converted %s in %.1f s", name, time.perf_counter() - t0)
    converted["decoder_chunk"] = build_decoder_chunk(converted["decoder_step"], config, options.chunk_steps)
    converted[STYLE_TOKENS] = style_tokens_graph(converted["style_encoder"], config)
    with tempfile.TemporaryDirectory(dir=out) as staging_dir:
        staging = Path(staging_dir)
        _share_external_weights([converted["decoder_step"], converted["decoder_chunk"]], staging, DECODER_WEIGHTS)
        specs = {}
        for name, proto in converted.items():
            _save(proto, staging / f"{name}.onnx")
        for name, proto in converted.items():
            onnx.checker.check_model(str(staging / f"{name}.onnx"))
        for path in staging.iterdir():
            path.chmod(0o644)  # onnx writes external data through a private (0600) temporary file
            os.replace(path, out / path.name)
    for name, proto in converted.items():
        file = f"{name}.onnx"
        specs[name] = GraphSpec(file, sha256_file(out / file), _specs(proto.graph.input), _specs(proto.graph.output))
    names = state_names(config)
    card = ModelCard(
        name=options.name,
        model=config,
        audio=audio,
        text=text,
        opset=options.opset,
        graphs=specs,
        decoder_state=tuple(StateTensor(n, f"next_{n}") for n in names),
        prenet_masks=tuple(f"prenet_mask_{i}" for i in range(len(config.prenet_units))),
        external_data={DECODER_WEIGHTS: sha256_file(out / DECODER_WEIGHTS)},
        source=options.source or {},
        defaults={"tensorrt_profiles": default_profiles(config, text)},
    )
    path = card.write(out)
    logger.info("exported %s in %.1f s", out, time.perf_counter() - started)
    return path


def default_profiles(config: ModelConfig, text: TextConfig) -> dict[str, list[int]]:
    """TensorRT optimisation-profile bounds [min, opt, max] per dynamic axis (overridable)."""
    return {
        "batch": [1, 64, 256],
        "text_time": [8, 160, text.max_text_len],
        "style_time": [16, 400, 2400],
        "mel_time": [16, 1200, config.max_frames_per_symbol * text.max_text_len],
        "steps": [1, 16, 64],
    }
