"""Read and write OpenSeq2Seq ``tacotron_gst`` checkpoints (TF1 name-based V2 format) without a TF1 graph.

A training checkpoint is a name -> tensor table (``model.ckpt-N.index`` + ``.data-*``). The 117 inference
variables are read by name (docs/openseq2seq-notes.md §8 loading recipe) with ``tf.train.load_checkpoint`` and checked against
:func:`trtgen_export.variables.expected_variables`; training-only entries are skipped by the explicit rules of
:func:`training_only_reason`; anything else is refused, with every problem in one :class:`CheckpointError`.

Arrays are returned in the checkpoint's own layouts, unchanged; the model code reads them directly (docs/openseq2seq-notes.md §4-§5):

* Encoder BiLSTM ``…/{fw,bw}/cudnn_compatible_lstm_cell/kernel`` ``[in + h, 4h]`` (rows: input then hidden),
  ``bias`` ``[4h]``: ``CudnnCompatibleLSTMCell`` gate blocks in order **i, c, f, o**, bias = cuDNN ``b_W + b_R``,
  **no forget bias** (docs/openseq2seq-notes.md §4.3). The cuDNN ``cudnn_rnn/opaque_kernel`` is training-only and never read.
* Decoder ``multi_rnn_cell/cell_<k>/lstm_cell/kernel`` ``[in + h, 4h]``: ``tf.nn.rnn_cell.LSTMCell`` blocks
  **i, j, f, o**; the forget bias **+1.0 is added at run time**, it is not in the stored bias (docs/openseq2seq-notes.md §5.2).
* Reference GRU ``gates/kernel`` ``[in + h, 2h]``: columns **r then u**; ``candidate/kernel`` ``[in + h, h]``
  is applied to ``[x, r * h]``; ``h' = u * h + (1 - u) * c`` (docs/openseq2seq-notes.md §4.4).
* Conv1D kernels ``[k, in, out]``, Conv2D ``[kh(time), kw(freq), in, out]``, Dense ``[in, out]``.

TensorFlow is imported lazily: the name rules and the error type are used by code that never opens a file.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from trtgen_export.variables import ENCODER, WeightDict, expected_variables
from trtgen.engine.config import MODEL_PRESETS, ModelConfig, TextConfig, text_config_for
from trtgen.errors import MissingInputError, UsageError

__all__ = [
    "CheckpointError",
    "CheckpointProblems",
    "VariableInfo",
    "EMBEDDING",
    "OPAQUE_KERNEL",
    "GLOBAL_STEP",
    "OPTIMIZER_SCOPE",
    "SLOT_NAMES",
    "training_only_reason",
    "is_training_only",
    "check_variables",
    "resolve_checkpoint",
    "read_checkpoint",
    "write_checkpoint",
    "describe_checkpoint",
]

logger = logging.getLogger(__name__)

Shape = tuple[int, ...]

EMBEDDING = ENCODER + "EncoderEmbeddingMatrix"
OPAQUE_KERNEL = ENCODER + "cudnn_rnn/opaque_kernel"
"""The training graph's CudnnLSTM buffer (cuDNN-private layout, docs/openseq2seq-notes.md §4.3); the canonical fw/bw tensors are used."""
GLOBAL_STEP = "global_step"
OPTIMIZER_SCOPE = "Loss_Optimization/"
"""OpenSeq2Seq's ``optimize_loss`` builds all optimizer state in this scope; model variables are in ``ForwardPass/``."""
OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
"""Serialized object graph that TF2 object-based saving adds; bookkeeping, not a variable."""

# Last name component of an optimizer slot: TF1's slot_creator names a slot `<var>/<optimizer name>` and
# uniquifies the second slot of the same optimizer with `_1` (Adam's m and v are `Adam` and `Adam_1`).
# The set is the optimizers OpenSeq2Seq can build: optimizers.py OPTIMIZER_CLS_NAMES (Adagrad, Adam, Ftrl,
# Momentum, RMSProp; SGD has no slot), tf.contrib.opt.AdamWOptimizer, and its own MomentumOptimizer subclasses
# in novograd.py / seth.py, whose one slot carries the optimizer's name. LARC rescales gradients and the
# mixed-precision wrapper delegates slots to the inner optimizer: neither has slots of its own.
SLOT_NAMES = frozenset(
    {
        "Adam",
        "Adam_1",
        "AdamW",
        "AdamW_1",
        "Momentum",
        "RMSProp",
        "RMSProp_1",
        "Adagrad",
        "Ftrl",
        "Ftrl_1",
        "NovoGrad",
        "NovoGrad2",
        "NovoGradW",
        "SethOptimizer",
    }
)
_ADAM_POWERS = frozenset({"beta1_power", "beta2_power"})
_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")
_STATE_FILE = "checkpoint"
_VOCAB_ISSUE = "OpenSeq2Seq issue #476 shows a tacotron_gst model with a 103-row embedding"


def _tf() -> ModuleType:
    """Import TensorFlow on first use (it takes seconds), keeping the name rules importable without it."""
    import tensorflow as tf

    return tf


def _fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


# --------------------------------------------------------------------------------------------------------------
# Which entries are training-only
# --------------------------------------------------------------------------------------------------------------


def training_only_reason(name: str) -> str | None:
    """Why ``name`` is a training-only checkpoint entry that inference may ignore, or None if it is not one.

    Explicit rules (docs/openseq2seq-notes.md §8 "training-only entries", U2, U6; checked against TF1 Saver output):

    * ``global_step``: the step counter (int64 scalar).
    * ``ForwardPass/tacotron2_encoder/cudnn_rnn/opaque_kernel``: the training CudnnLSTM buffer.
    * anything under ``Loss_Optimization/``: OpenSeq2Seq opens that scope only in ``optimize_loss``; it holds
      Adam's ``beta1_power``/``beta2_power``, the automatic loss scaler's unnamed ``Variable``/``Variable_N``,
      NovoGrad's ``novograd_ema<i>``, Horovod ``*_accum`` gradient buffers, float16 master copies
      (``FP32-master-copy/…``) and, in TF1's slot naming, the slots themselves (``Loss_Optimization/<var>/Adam``).
    * ``<var>/<slot>`` with ``<slot>`` in :data:`SLOT_NAMES`, under any prefix: optimizer slots.
    * ``beta1_power``/``beta2_power`` under any prefix: Adam's bias-correction accumulators (prefix uncertain, U6).
    * ``_CHECKPOINTABLE_OBJECT_GRAPH``: the object graph a TF2 object-based save adds.

    Deliberately not ignored: ``*/ExponentialMovingAverage`` (OpenSeq2Seq keeps no averages; a checkpoint
    holding them came from another trainer, and which copy to use is the user's decision, not ours).
    """
    if name == GLOBAL_STEP:
        return "training step counter"
    if name == OPAQUE_KERNEL:
        return "cuDNN opaque LSTM buffer of the training graph"
    if name == OBJECT_GRAPH:
        return "TF2 object-graph bookkeeping"
    if name.startswith(OPTIMIZER_SCOPE):
        return "optimizer state (Loss_Optimization scope)"
    leaf = name.rsplit("/", 1)[-1]
    if "/" in name and leaf in SLOT_NAMES:
        return f"optimizer slot {leaf!r}"
    if leaf in _ADAM_POWERS:
        return "Adam bias-correction accumulator"
    return None


def is_training_only(name: str) -> bool:
    """True for checkpoint entries that only training uses (see :func:`training_only_reason`)."""
    return training_only_reason(name) is not None


# --------------------------------------------------------------------------------------------------------------
# Problems and the error that carries them
# --------------------------------------------------------------------------------------------------------------


@dataclass
class CheckpointProblems:
    """Everything wrong with a checkpoint for one model config, grouped so the user sees it all at once."""

    missing: dict[str, Shape] = field(default_factory=dict)
    """Expected variable -> expected shape."""
    mis_shaped: dict[str, tuple[Shape, Shape]] = field(default_factory=dict)
    """Variable -> (expected shape, shape in the checkpoint)."""
    vocabulary: tuple[int, int] | None = None
    """(embedding rows in the checkpoint, symbols in the text config) when they differ."""
    wrong_dtype: dict[str, str] = field(default_factory=dict)
    """Variable -> dtype found, for tensors that are not floating point."""
    unknown: dict[str, Shape] = field(default_factory=dict)
    """Extra entries that are neither model variables nor known training-only entries -> their shape."""
    non_finite: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Variable -> (NaN/Inf count, size): a diverged training run."""
    hints: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.missing or self.mis_shaped or self.vocabulary or self.wrong_dtype or self.unknown or self.non_finite
        )

    @property
    def count(self) -> int:
        return (
            len(self.missing)
            + len(self.mis_shaped)
            + (self.vocabulary is not None)
            + len(self.wrong_dtype)
            + len(self.unknown)
            + len(self.non_finite)
        )

    def format(self, path: str | os.PathLike[str], config_name: str) -> str:
        """A multi-line message naming the checkpoint and every offending variable, grouped by kind."""
        lines = [f"checkpoint {path} does not fit model config {config_name!r} ({self.count} problems):"]
        if self.vocabulary is not None:
            rows, symbols = self.vocabulary
            lines.append(
                f"vocabulary: {EMBEDDING} has {rows} rows but the symbol table has {symbols} symbols. The model was "
                f"trained with a different vocabulary file ({_VOCAB_ISSUE}; OpenSeq2Seq's vocab_tts.txt gives "
                f"91 + 3 = 94), so its character ids would map to the wrong characters. Refused: use the symbol "
                f"table of the vocab file this model was trained with."
            )
        if self.missing:
            lines.append(f"missing variables ({len(self.missing)}):")
            lines += [f"  {name}  expected {_fmt(shape)}" for name, shape in self.missing.items()]
        if self.mis_shaped:
            lines.append(f"mis-shaped variables ({len(self.mis_shaped)}):")
            lines += [
                f"  {name}  expected {_fmt(want)}, found {_fmt(got)}" for name, (want, got) in self.mis_shaped.items()
            ]
        if self.wrong_dtype:
            lines.append(f"variables of a non-floating dtype ({len(self.wrong_dtype)}):")
            lines += [f"  {name}  expected float32, found {dtype}" for name, dtype in self.wrong_dtype.items()]
        if self.unknown:
            lines.append(
                f"unknown extra variables ({len(self.unknown)}), neither in model {config_name!r} "
                f"nor known training-only entries:"
            )
            lines += [f"  {name}  {_fmt(shape)}" for name, shape in self.unknown.items()]
        if self.non_finite:
            lines.append(f"variables holding NaN or Inf (a diverged training run) ({len(self.non_finite)}):")
            lines += [f"  {name}  {bad} of {size} values" for name, (bad, size) in self.non_finite.items()]
        lines += [f"hint: {hint}" for hint in self.hints]
        return "\n".join(lines)


class CheckpointError(UsageError):
    """A checkpoint that cannot be read or does not fit the model config; ``problems`` holds the details."""

    def __init__(self, message: str, *, path: str | os.PathLike[str], problems: CheckpointProblems | None = None):
        super().__init__(message)
        self.path = Path(path)
        self.problems = problems if problems is not None else CheckpointProblems()


class CheckpointNotFoundError(MissingInputError):
    """No checkpoint where one was named: the message lists the candidates found nearby."""


# --------------------------------------------------------------------------------------------------------------
# Checking a name -> shape table (no TensorFlow needed)
# --------------------------------------------------------------------------------------------------------------


def _structural_problems(
    shapes: Mapping[str, Shape], dtypes: Mapping[str, str], config: ModelConfig, num_symbols: int
) -> CheckpointProblems:
    problems = CheckpointProblems()
    expected = expected_variables(config)
    for name, want in expected.items():
        if name not in shapes:
            problems.missing[name] = want
            continue
        got = tuple(shapes[name])
        if name == EMBEDDING and len(got) == len(want):
            # The row count is a property of the vocabulary, not of the network: report it on its own (docs/openseq2seq-notes.md §8).
            if got[0] != num_symbols:
                problems.vocabulary = (got[0], num_symbols)
            if got[1:] != want[1:]:
                problems.mis_shaped[name] = (want, got)
        elif got != want:
            problems.mis_shaped[name] = (want, got)
        if not _is_float(dtypes.get(name, "float32")):
            problems.wrong_dtype[name] = dtypes[name]
    for name, shape in sorted(shapes.items()):
        if name not in expected and not is_training_only(name):
            problems.unknown[name] = tuple(shape)
    return problems


def _is_float(dtype: str) -> bool:
    return dtype in ("float16", "bfloat16", "float32", "float64")


def check_variables(
    shapes: Mapping[str, Shape],
    dtypes: Mapping[str, str] | None,
    config: ModelConfig,
    text_config: TextConfig | None = None,
) -> CheckpointProblems:
    """Compare a checkpoint's name -> shape (and dtype name) table with what ``config`` needs.

    Adds hints: which other preset fits exactly, and why canonical BiLSTM tensors may be missing.
    """
    text_config = text_config or text_config_for(config)
    dtypes = dtypes or {}
    problems = _structural_problems(shapes, dtypes, config, text_config.num_symbols)
    if problems.missing or problems.mis_shaped or problems.unknown:
        fitting = [
            name
            for name, preset in MODEL_PRESETS.items()
            if preset != config and not _structural_problems(shapes, dtypes, preset, text_config_for(preset).num_symbols)
        ]
        if fitting:
            problems.hints.append(
                f"the checkpoint fits preset {fitting[0]!r} exactly: pass --config {fitting[0]}"
            )
        else:
            problems.hints.append(
                f"names or shapes differ from model config {config.name!r}: the checkpoint was most likely trained "
                f"with another configuration; pass the matching one with --config (a preset: "
                f"{', '.join(sorted(MODEL_PRESETS))}; or a JSON file of ModelConfig fields)"
            )
    bilstm_missing = [name for name in problems.missing if "cudnn_compatible_lstm_cell" in name]
    if bilstm_missing and OPAQUE_KERNEL in shapes:
        problems.hints.append(
            f"the encoder LSTM is present only as the cuDNN buffer {OPAQUE_KERNEL}; the canonical "
            f"cudnn_compatible_lstm_cell tensors that OpenSeq2Seq's CudnnLSTM saveable writes are absent (docs/openseq2seq-notes.md §4.3, "
            f"U1). The opaque layout is cuDNN-private and is not converted here."
        )
    return problems


# --------------------------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------------------------


def _prefix_exists(prefix: Path) -> bool:
    return Path(f"{prefix}.index").is_file()


def _strip_file_suffix(path: Path) -> Path:
    """``model.ckpt-9.index`` / ``.data-00000-of-00001`` / ``.meta`` -> ``model.ckpt-9``: users pass any of them."""
    name = path.name
    for suffix in (".index", ".meta"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    return path.with_name(_DATA_SUFFIX.sub("", name))


def _candidates(directory: Path) -> str:
    if not directory.is_dir():
        return ""
    found = sorted(p.name[: -len(".index")] for p in directory.glob("*.index"))
    if not found:
        return ""
    shown = ", ".join(str(directory / name) for name in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return f"; checkpoints found there: {shown}{more}"


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint prefix that ``path`` names: a prefix, one of its files, or a directory with a state file.

    A state file copied from the training machine often holds absolute paths that no longer exist; the
    checkpoint it names is then looked up by file name in the directory itself.
    """
    path = Path(path)
    if path.is_dir():
        state_file = path / _STATE_FILE
        if not state_file.is_file():
            raise CheckpointNotFoundError(
                f"no checkpoint in directory {path}: it has no '{_STATE_FILE}' state file{_candidates(path)}; "
                f"pass a checkpoint prefix such as {path / 'model.ckpt-1000'}"
            )
        state = _tf().train.get_checkpoint_state(str(path))
        if state is None or not state.model_checkpoint_path:
            raise CheckpointNotFoundError(f"checkpoint state file {state_file} is empty or unreadable{_candidates(path)}")
        named = Path(state.model_checkpoint_path)
        if _prefix_exists(named):
            return named
        local = path / PurePath(state.model_checkpoint_path).name
        if _prefix_exists(local):
            logger.warning("%s names %s, which does not exist; using %s", state_file, named, local)
            return local
        raise CheckpointNotFoundError(
            f"checkpoint state file {state_file} names {named}, but neither {named}.index nor "
            f"{local}.index exists{_candidates(path)}"
        )
    prefix = _strip_file_suffix(path)
    if _prefix_exists(prefix):
        return prefix
    raise CheckpointNotFoundError(
        f"no checkpoint at {path}: expected a checkpoint prefix ({path}.index and {path}.data-* must exist) or a "
        f"directory holding a '{_STATE_FILE}' state file{_candidates(prefix.parent)}"
    )


# --------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------


class VariableInfo(NamedTuple):
    """One checkpoint entry as ``describe_checkpoint`` lists it."""

    name: str
    shape: Shape
    dtype: str


def _open(path: str | os.PathLike[str]) -> tuple[Path, Any]:
    """The resolved prefix and its reader (``tf.train.load_checkpoint``'s pybind type has no public name)."""
    prefix = resolve_checkpoint(path)
    tf = _tf()
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {prefix}: {exc}", path=prefix) from exc
    return prefix, reader


def _tables(reader: Any) -> tuple[dict[str, Shape], dict[str, str]]:
    shapes = {name: tuple(int(d) for d in shape) for name, shape in reader.get_variable_to_shape_map().items()}
    dtypes = {name: dtype.name for name, dtype in reader.get_variable_to_dtype_map().items()}
    return shapes, dtypes


def describe_checkpoint(path: str | os.PathLike[str]) -> list[VariableInfo]:
    """Every entry of a checkpoint, sorted by name, without reading any values (for ``trtgen`` to print)."""
    _, reader = _open(path)
    shapes, dtypes = _tables(reader)
    return [VariableInfo(name, shapes[name], dtypes[name]) for name in sorted(shapes)]


def checkpoint_step(path: str | os.PathLike[str]) -> int | None:
    """The checkpoint's own ``global_step`` value, or None when it holds none (e.g. a hand-made checkpoint)."""
    _, reader = _open(path)
    if not reader.has_tensor(GLOBAL_STEP):
        return None
    return int(reader.get_tensor(GLOBAL_STEP))


def read_checkpoint(
    path: str | os.PathLike[str], config: ModelConfig, text_config: TextConfig | None = None
) -> WeightDict:
    """The inference variables of ``config`` as float32 arrays in checkpoint layout, keyed in docs/openseq2seq-notes.md §8 order.

    Raises FileNotFoundError when ``path`` names no checkpoint and one CheckpointError listing every missing,
    mis-shaped, non-float, unknown or non-finite variable (and a vocabulary mismatch) otherwise.
    """
    text_config = text_config or text_config_for(config)
    if config.num_symbols != text_config.num_symbols:
        raise ValueError(
            f"model config {config.name!r} has num_symbols={config.num_symbols} but the text config's symbol "
            f"table has {text_config.num_symbols}; they must agree"
        )
    prefix, reader = _open(path)
    shapes, dtypes = _tables(reader)
    problems = check_variables(shapes, dtypes, config, text_config)
    broken = set(problems.missing) | set(problems.mis_shaped) | set(problems.wrong_dtype)
    if problems.vocabulary is not None:
        broken.add(EMBEDDING)
    weights: WeightDict = {}
    converted: list[str] = []
    for name in expected_variables(config):
        if name in broken:
            continue
        value = np.asarray(reader.get_tensor(name))
        if value.dtype != np.float32:
            converted.append(f"{name} ({value.dtype})")
            value = value.astype(np.float32)
        bad = int(value.size - np.count_nonzero(np.isfinite(value)))
        if bad:
            problems.non_finite[name] = (bad, int(value.size))
        weights[name] = value
    if problems:
        raise CheckpointError(problems.format(prefix, config.name), path=prefix, problems=problems)
    if converted:
        logger.warning("%s: converted %d variables to float32: %s", prefix, len(converted), ", ".join(converted))
    ignored = sorted(name for name in shapes if name not in weights)
    logger.info(
        "read %d variables (%d values) from %s; ignored %d training-only entries",
        len(weights),
        sum(v.size for v in weights.values()),
        prefix,
        len(ignored),
    )
    logger.debug("ignored: %s", ", ".join(f"{n} ({training_only_reason(n)})" for n in ignored))
    return weights


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------


def _collect_tensors(
    weights: Mapping[str, np.ndarray], global_step: int | None, extra: Mapping[str, np.ndarray] | None
) -> dict[str, np.ndarray]:
    tensors: dict[str, np.ndarray] = {}
    sources: list[Mapping[str, np.ndarray]] = [weights, extra or {}]
    if global_step is not None:
        sources.append({GLOBAL_STEP: np.asarray(global_step, dtype=np.int64)})
    for source in sources:
        for name, value in source.items():
            if not isinstance(name, str) or not name or name.startswith("/") or name.endswith("/"):
                raise ValueError(f"invalid checkpoint variable name {name!r}")
            if name in tensors:
                raise ValueError(f"variable {name!r} given twice (weights, extra and global_step must not overlap)")
            array = np.asarray(value)
            if array.dtype.kind not in "biuf":
                raise TypeError(f"variable {name!r} has dtype {array.dtype}; only numeric arrays can be written")
            tensors[name] = array
    if not tensors:
        raise ValueError("nothing to write: no weights given")
    return tensors


def _update_state_file(directory: Path, name: str) -> None:
    """Point the directory's ``checkpoint`` state file at ``name`` (relative), keeping older entries that exist."""
    tf = _tf()
    keep: list[str] = []
    if (directory / _STATE_FILE).is_file():
        state = tf.train.get_checkpoint_state(str(directory))
        for old in state.all_model_checkpoint_paths if state is not None else []:
            old_path = Path(old)
            entry = old_path.name if old_path.parent == directory else old
            if entry != name and entry not in keep and _prefix_exists(old_path):
                keep.append(entry)
    # The CheckpointState text proto TF1's Saver writes; relative entries are resolved against the directory.
    text = f"model_checkpoint_path: {_proto_string(name)}\n" + "".join(
        f"all_model_checkpoint_paths: {_proto_string(entry)}\n" for entry in [*keep, name]
    )
    tmp = directory / f".{_STATE_FILE}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, directory / _STATE_FILE)  # atomic: readers see the old or the new state, never half
    finally:
        tmp.unlink(missing_ok=True)


def _proto_string(value: str) -> str:
    """A protobuf text-format string literal (TF parses the state file with text_format)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def write_checkpoint(
    weights: Mapping[str, np.ndarray],
    prefix: str | os.PathLike[str],
    *,
    global_step: int | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write a TF1 name-based V2 checkpoint holding exactly these names and update the directory's state file.

    ``extra`` adds further tensors (e.g. training-only Adam slots) and ``global_step`` an int64 ``global_step``.
    The files are written under a temporary prefix and renamed; the old ``.index`` (which is what makes a
    checkpoint exist) goes first and the new one comes last, so a crash never leaves a half checkpoint under
    ``prefix``. The state file is updated after that, so the directory form only ever names complete files.
    """
    prefix = Path(prefix)
    tensors = _collect_tensors(weights, global_step, extra)
    directory = prefix.parent.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    prefix = directory / prefix.name
    tmp = directory / f".{prefix.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tf = _tf()
    data_name = ".data-00000-of-00001"
    try:
        names = list(tensors)
        try:
            tf.raw_ops.SaveV2(
                prefix=str(tmp),
                tensor_names=names,
                shape_and_slices=[""] * len(names),
                tensors=[tf.constant(tensors[n]) for n in names],
            )
        except tf.errors.OpError as exc:
            raise OSError(f"cannot write checkpoint {prefix}: {exc.message}") from exc
        Path(f"{prefix}.index").unlink(missing_ok=True)
        for stale in directory.glob(f"{_glob_escape(prefix.name)}.data-*-of-*"):
            stale.unlink()
        os.replace(f"{tmp}{data_name}", f"{prefix}{data_name}")
        os.replace(f"{tmp}.index", f"{prefix}.index")
    finally:
        for leftover in directory.glob(f"{_glob_escape(tmp.name)}*"):
            leftover.unlink(missing_ok=True)
    _update_state_file(directory, prefix.name)
    logger.info("wrote %d tensors to %s", len(tensors), prefix)
    return prefix


def _glob_escape(name: str) -> str:
    """Escape glob metacharacters so a prefix like ``model[1]`` matches only itself."""
    return re.sub(r"([\[\]*?])", r"[\1]", name)
