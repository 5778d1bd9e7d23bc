"""Will TensorRT's ONNX parser take our graphs? A static check against its published support table.

TensorRT cannot be installed everywhere trtgen is developed or tested, so the graphs are checked
without it, against the operator table of onnx/onnx-tensorrt (``docs/operators.md``), which is kept as
data in ``export/data/tensorrt_onnx_ops.json`` (see ``export/data/README.md`` for its origin). The
check walks every node of every graph, subgraphs of ``Loop``/``If``/``Scan`` included, and reports:

- each operator type: in the table with ``Y``, in the default ONNX domain (no plugin needed);
- the opset, against the table's supported range;
- element types of each node's data tensors (inferred by ONNX shape inference) against the types
  the table lists for that operator, and the graph inputs/outputs the runtime binds;
- the table's restrictions for every operator the graphs use, with a yes/no judgement where the
  restriction can be decided from the graph alone, and ``unknown`` (with the reason) where it cannot.

It does not run TensorRT's parser: passing here is necessary, not sufficient. The GPU test in
``tests/engine/test_tensorrt_backend.py`` builds the engines for real where TensorRT is installed.

Regenerate the table from a copy of ``docs/operators.md``::

    python -m trtgen_export.trt_support table operators.md --commit <sha> [--out export/data/tensorrt_onnx_ops.json]

Check a model directory (exit status 1 when something is unsupported)::

    python -m trtgen_export.trt_support check <model_dir>
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from trtgen.fileio import atomic_write
from trtgen.errors import ModelError

logger = logging.getLogger(__name__)

__all__ = [
    "TABLE_PATH",
    "OpSupport",
    "SupportTable",
    "parse_operators_md",
    "dump_table",
    "Finding",
    "GraphReport",
    "SupportReport",
    "UnsupportedGraphError",
    "check_tensorrt_support",
    "graph_op_types",
]

TABLE_PATH = Path(__file__).resolve().parent / "data" / "tensorrt_onnx_ops.json"
DEFAULT_DOMAINS = ("", "ai.onnx")
"""Node domains TensorRT's parser imports natively; anything else needs a plugin."""

YES, NO, UNKNOWN, INFO = "yes", "no", "unknown", "info"


# ---------------------------------------------------------------------------- the support table
@dataclass(frozen=True)
class OpSupport:
    """One row of the operator table."""

    supported: bool
    types: tuple[str, ...]
    restrictions: str


@dataclass(frozen=True)
class SupportTable:
    """TensorRT's ONNX operator support matrix for one TensorRT version."""

    tensorrt_version: str
    source: dict[str, str]
    opset_range: tuple[int, int]
    operators: dict[str, OpSupport]
    data_types: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "tensorrt_version": self.tensorrt_version,
            "source": dict(self.source),
            "opset_range": list(self.opset_range),
            "data_types": list(self.data_types),
            "notes": list(self.notes),
            "operators": {
                name: {"supported": op.supported, "types": list(op.types), "restrictions": op.restrictions}
                for name, op in sorted(self.operators.items())
            },
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> SupportTable:
        low, high = data["opset_range"]
        return SupportTable(
            tensorrt_version=str(data["tensorrt_version"]),
            source=dict(data["source"]),
            opset_range=(int(low), int(high)),
            operators={
                name: OpSupport(bool(row["supported"]), tuple(row["types"]), str(row["restrictions"]))
                for name, row in data["operators"].items()
            },
            data_types=tuple(data.get("data_types", ())),
            notes=tuple(data.get("notes", ())),
        )

    @staticmethod
    def load(path: Path = TABLE_PATH) -> SupportTable:
        try:
            return SupportTable.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"{path}: not a TensorRT operator table ({error})") from None


def dump_table(table: SupportTable) -> str:
    """The table as JSON with one operator per line, so that a regenerated table diffs line by line."""
    data = table.to_json()
    operators = data.pop("operators")
    head = json.dumps(data, indent=1, ensure_ascii=False)[:-2]
    rows = ",\n".join(f"  {json.dumps(name)}: {json.dumps(row, ensure_ascii=False)}" for name, row in operators.items())
    return f"{head},\n \"operators\": {{\n{rows}\n }}\n}}\n"


_HEADER = re.compile(
    r"TensorRT\s+([0-9][0-9.]*)\s+supports operators in the inclusive range of opset\s+(\d+)\s+to opset\s+(\d+)",
    re.IGNORECASE,
)
_TYPES = re.compile(r"[A-Z0-9]+(\s*,\s*[A-Z0-9]+)*\s*,?")
_DATA_TYPES = re.compile(r"TensorRT supports the following ONNX data types:\s*(.+)")


def _clean(cell: str) -> str:
    """Markdown cell -> plain text (``<br />`` becomes a newline, ``\\.`` a dot)."""
    text = cell.replace("<br />", "\n").replace("<br/>", "\n").replace("\\.", ".")
    return "\n".join(" ".join(line.split()) for line in text.splitlines()).strip()


def parse_operators_md(text: str, *, source: dict[str, str] | None = None) -> SupportTable:
    """Parse onnx-tensorrt's ``docs/operators.md`` (TensorRT 10 layout) into a :class:`SupportTable`.

    Rows look like ``| Loop | Y | FP32, FP16, ... | restrictions`` and may omit the trailing
    columns or the closing ``|``.
    """
    header = _HEADER.search(text)
    if header is None:
        raise ValueError(
            "operators.md: no 'TensorRT X supports operators in the inclusive range of opset A to opset B' line; "
            "this parser reads the TensorRT 10 layout of onnx-tensorrt's docs/operators.md"
        )
    version, low, high = header.group(1), int(header.group(2)), int(header.group(3))
    data_types: tuple[str, ...] = ()
    match = _DATA_TYPES.search(text)
    if match:
        data_types = tuple(t.strip() for t in re.split(r",\s*(?:and\s+)?|\s+and\s+", match.group(1)) if t.strip())
    notes = tuple(_clean(line.lstrip("> ").removeprefix("Note:")) for line in text.splitlines() if line.startswith("> Note:"))
    operators: dict[str, OpSupport] = {}
    in_table = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped.startswith("|"):
            in_table = False if not stripped else in_table
            continue
        cells = [c.strip() for c in stripped.strip("|").split("|")]
        if cells[0] == "Operator":
            in_table = True
            continue
        if not in_table or set(cells[0]) <= {"-", ":"}:
            continue
        if len(cells) < 2 or not cells[1]:
            raise ValueError(f"operators.md line {number}: expected '| Operator | Y/N | types | restrictions |'")
        name = cells[0]
        extra = [c for c in cells[2:] if c]
        types: tuple[str, ...] = ()
        if extra and _TYPES.fullmatch(extra[0]):
            types = tuple(t.strip() for t in extra.pop(0).split(",") if t.strip())
        restrictions = _clean(" ".join(extra))  # unsupported rows may carry a remark in the types column
        if name in operators:
            raise ValueError(f"operators.md line {number}: {name} appears twice")
        operators[name] = OpSupport(cells[1].upper().startswith("Y"), types, restrictions)
    if not operators:
        raise ValueError("operators.md: no operator table found")
    return SupportTable(version, dict(source or {}), (low, high), operators, data_types, notes)


# ---------------------------------------------------------------------------- findings and reports
@dataclass(frozen=True)
class Finding:
    """One statement about a graph: what was checked, the verdict, and why."""

    graph: str
    check: str
    """``op``, ``domain``, ``opset``, ``types``, ``io``, ``restriction`` or ``int64``."""
    verdict: str
    """``yes`` (checked, fine), ``no`` (TensorRT will refuse it), ``unknown`` (cannot be decided
    from the graph alone; the detail says what to verify), ``info``."""
    detail: str
    op: str | None = None
    nodes: tuple[str, ...] = ()
    """Where: node names, prefixed by the enclosing Loop/If/Scan node for subgraph nodes."""

    def line(self) -> str:
        where = f" [{', '.join(self.nodes[:3])}{', ...' if len(self.nodes) > 3 else ''}]" if self.nodes else ""
        subject = f"{self.op}: " if self.op else ""
        return f"{self.verdict:>7}  {self.graph}: {self.check}: {subject}{self.detail}{where}"


@dataclass
class GraphReport:
    graph: str
    path: Path
    opset: int | None
    op_counts: dict[str, int]
    """``domain::op`` for non-default domains, else the plain op type; subgraphs included."""
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict == NO]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class SupportReport:
    """The result of :func:`check_tensorrt_support` for a set of graphs."""

    tensorrt_version: str
    source: dict[str, str]
    graphs: list[GraphReport]

    @property
    def ok(self) -> bool:
        return all(g.ok for g in self.graphs)

    @property
    def problems(self) -> list[Finding]:
        return [f for g in self.graphs for f in g.problems]

    @property
    def op_types(self) -> list[str]:
        return sorted({op for g in self.graphs for op in g.op_counts})

    def findings(self, verdict: str | None = None, check: str | None = None) -> list[Finding]:
        return [
            f for g in self.graphs for f in g.findings
            if (verdict is None or f.verdict == verdict) and (check is None or f.check == check)
        ]

    def format(self, *, verbose: bool = False) -> str:
        """A plain-text report: a summary line per graph, then the findings (all with ``verbose``)."""
        source = self.source
        lines = [
            f"TensorRT {self.tensorrt_version} ONNX parser table "
            f"({source.get('repository', '?')}/{source.get('path', '?')} @ {source.get('commit', '?')[:12]})"
        ]
        for graph in self.graphs:
            status = "OK" if graph.ok else f"{len(graph.problems)} problem(s)"
            lines.append(f"{graph.graph}: opset {graph.opset}, {len(graph.op_counts)} op types, {status}")
        shown = [f for g in self.graphs for f in g.findings if verbose or f.verdict in (NO, UNKNOWN)]
        lines += [f.line() for f in shown]
        return "\n".join(lines)

    def raise_for_problems(self) -> None:
        if not self.ok:
            raise UnsupportedGraphError(self)


class UnsupportedGraphError(ModelError):
    """A graph uses something TensorRT's ONNX parser does not support; the message names it."""

    def __init__(self, report: SupportReport) -> None:
        self.report = report
        lines = [f.line().strip() for f in report.problems]
        super().__init__(f"not supported by TensorRT {report.tensorrt_version}:\n" + "\n".join(lines))


# ---------------------------------------------------------------------------- walking graphs
_ONNX_TO_TABLE = {
    "FLOAT": "FP32", "FLOAT16": "FP16", "BFLOAT16": "BF16", "DOUBLE": "DOUBLE", "INT32": "INT32",
    "INT64": "INT64", "INT8": "INT8", "UINT8": "UINT8", "BOOL": "BOOL", "INT4": "INT4",
    "FLOAT8E4M3FN": "FP8", "FLOAT4E2M1": "FP4",
}
_BINDABLE = {"FP32", "FP16", "BF16", "INT32", "INT64", "BOOL", "UINT8"}
"""Element types an engine's I/O tensor may have (INT8/FP8/INT4/FP4 only inside, via quantisation)."""


@dataclass
class _Scope:
    """What a (sub)graph can see: initialisers and Constant outputs by name, element types by name."""

    constants: set[str]
    types: dict[str, str]


@dataclass(frozen=True)
class _Node:
    node: Any
    where: str
    scope: _Scope
    graph: Any


def _type_name(elem_type: int) -> str:
    from onnx import TensorProto

    return _ONNX_TO_TABLE.get(TensorProto.DataType.Name(elem_type), TensorProto.DataType.Name(elem_type))


def _graph_scope(graph: Any, outer: _Scope | None) -> _Scope:
    constants = set(outer.constants) if outer else set()
    types = dict(outer.types) if outer else {}
    for tensor in graph.initializer:
        constants.add(tensor.name)
        types[tensor.name] = _type_name(tensor.data_type)
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS:
            constants.update(node.output)
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type:
            types[value.name] = _type_name(value.type.tensor_type.elem_type)
    return _Scope(constants, types)


def _walk(graph: Any, where: str = "", outer: _Scope | None = None) -> Iterator[_Node]:
    """Every node of ``graph`` and of its subgraphs (Loop/Scan bodies, If branches), depth first."""
    from onnx import AttributeProto

    scope = _graph_scope(graph, outer)
    for node in graph.node:
        name = f"{where}{node.name or node.op_type}"
        yield _Node(node, name, scope, graph)
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                yield from _walk(attribute.g, f"{name}/{attribute.name}/", scope)
            elif attribute.type == AttributeProto.GRAPHS:
                for index, subgraph in enumerate(attribute.graphs):
                    yield from _walk(subgraph, f"{name}/{attribute.name}[{index}]/", scope)


def _load(path: Path) -> Any:
    """The graph structure without weights (external data is not needed to check operators)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception as error:  # inference is only for element types; the structural checks still hold
        logger.warning("%s: ONNX shape inference failed (%s); element types are checked where declared", path, error)
        return model


def graph_op_types(path: str | Path) -> set[str]:
    """Operator types of an ONNX file, subgraphs included (``domain::op`` outside the default domain)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {_op_key(item.node) for item in _walk(model.graph)}


def _op_key(node: Any) -> str:
    return node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}::{node.op_type}"


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            value = helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _input(node: Any, index: int) -> str:
    return node.input[index] if len(node.input) > index else ""


# ---------------------------------------------------------------------------- element types
def _data_params(schema: Any) -> set[str]:
    """The schema's data type variables: those allowing the most types (``T``, not ``Tind``/``I``/``B``).

    The table's "Supported Types" column describes an operator's data tensors, not its indices,
    shapes or conditions, so only formal parameters bound to these variables are checked.
    """
    sizes = {c.type_param_str: len(c.allowed_type_strs) for c in schema.type_constraints}
    if not sizes:
        return set()
    most = max(sizes.values())
    return {name for name, size in sizes.items() if size == most}


def _formal(params: Sequence[Any], index: int) -> Any | None:
    if index < len(params):
        return params[index]
    import onnx

    if params and params[-1].option == onnx.defs.OpSchema.FormalParameterOption.Variadic:
        return params[-1]
    return None


def _data_tensors(node: Any, opset: int) -> list[str]:
    """Names of ``node``'s inputs and outputs that carry its data type (see :func:`_data_params`)."""
    import onnx

    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain or "")
    except onnx.defs.SchemaError:
        return []
    wanted = _data_params(schema)
    names = []
    for params, actual in ((schema.inputs, node.input), (schema.outputs, node.output)):
        for index, name in enumerate(actual):
            formal = _formal(params, index)
            if name and formal is not None and formal.type_str in wanted:
                names.append(name)
    return names


# ---------------------------------------------------------------------------- restrictions
RestrictionCheck = Callable[[_Node], list[tuple[str, str]]]
"""(verdict, detail) pairs for one node."""


def _is_constant(item: _Node, name: str) -> bool:
    return name in item.scope.constants


def _check_lstm(item: _Node) -> list[tuple[str, str]]:
    node = item.node
    direction = _attr(node, "direction", "forward")
    results = [
        (YES if _attr(node, "input_forget", 0) == 0 else NO, f"input_forget={_attr(node, 'input_forget', 0)} (must be 0)"),
        (YES if _attr(node, "layout", 0) == 0 else NO, f"layout={_attr(node, 'layout', 0)} (must be 0)"),
    ]
    activations = [a.decode() if isinstance(a, bytes) else a for a in (_attr(node, "activations") or [])]
    if direction == "bidirectional" and activations and activations[:3] != activations[3:6]:
        results.append((NO, f"bidirectional with different activations per direction {activations}"))
    else:
        results.append((YES, f"direction={direction}, activations={activations or 'default (Sigmoid, Tanh, Tanh)'}"))
    sequence_lens = _input(node, 4)
    if sequence_lens:
        results.append((UNKNOWN, "sequence_lens is given: the table says nothing about it; verify the outputs past each length"))
    else:
        results.append((YES, "no sequence_lens (padding handled outside the LSTM)"))
    return results


def _dims(value: Any) -> list[int | str | None] | None:
    """Declared dims (ints, names, or None when unnamed); None when no shape is declared."""
    if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in value.type.tensor_type.shape.dim]


def _check_loop(item: _Node) -> list[tuple[str, str]]:
    node = item.node
    body = next(a.g for a in node.attribute if a.name == "body")
    carried = len(node.input) - 2
    scan_outputs = len(body.output) - 1 - carried
    results = []
    trip_count = _input(node, 0)
    if scan_outputs > 0:
        results.append(
            (YES, f"{scan_outputs} scan output(s), length set by the trip count M ({trip_count})")
            if trip_count
            else (NO, f"{scan_outputs} scan output(s) but no trip count M: their length would be dynamic")
        )
    else:
        results.append((YES, "no scan outputs"))
    same, unsure = [], []
    for index in range(carried):
        value_in, value_out = body.input[2 + index], body.output[1 + index]
        before, after = _dims(value_in), _dims(value_out)
        if value_in.name == value_out.name:
            same.append(value_in.name)  # passed through unchanged
        elif before is None or after is None:
            unsure.append(value_in.name)
        elif len(before) != len(after) or any(
            isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(before, after)
        ):
            results.append((NO, f"carried {body.input[2 + index].name}: shape {before} becomes {after}"))
        elif before == after:
            same.append(body.input[2 + index].name)
        else:
            unsure.append(body.input[2 + index].name)
    if same:
        results.append((YES, f"{len(same)} carried value(s) keep their declared shape"))
    if unsure:
        results.append((UNKNOWN, f"carried value(s) {unsure[:4]} have symbolic dims of different names; the export keeps their shape, the graph cannot prove it"))
    condition_in = body.input[1].name if len(body.input) > 1 else ""
    producer = {o: n for n in body.node for o in n.output}.get(body.output[0].name)
    passthrough = body.output[0].name == condition_in or (
        producer is not None and producer.op_type == "Identity" and producer.input[0] == condition_in
    )
    if passthrough and (not _input(node, 1) or _is_constant(item, _input(node, 1))):
        results.append((YES, "counted loop: the condition is a constant passed through the body"))
    else:
        results.append((
            UNKNOWN,
            "the body computes its own stop condition; TensorRT runs the loop with a kWHILE limit as well "
            f"as the trip count M={trip_count or 'none'} (onnx-tensorrt issue #891 reported an extra iteration "
            "for such loops): results are right only if the condition cannot stop the loop before M",
        ))
    return results


def _check_pad(item: _Node) -> list[tuple[str, str]]:
    mode = _attr(item.node, "mode", "constant")
    pads = _input(item.node, 1)
    return [
        (YES if mode in ("constant", "reflect", "edge", "wrap") else NO, f"mode={mode}"),
        (INFO, f"pads {'constant' if pads and _is_constant(item, pads) else 'computed at run time'}"),
    ]


def _check_conv(item: _Node) -> list[tuple[str, str]]:
    node = item.node
    kernel = _attr(node, "kernel_shape")
    rank = len(kernel) if kernel else None
    weights = _input(node, 1)
    return [
        (YES if rank in (1, 2, 3) else (UNKNOWN if rank is None else NO), f"kernel_shape={kernel} ({rank}-D)"),
        (YES if _is_constant(item, weights) else UNKNOWN, f"weights {'an initializer' if _is_constant(item, weights) else 'computed'}"),
        (YES, f"group={_attr(node, 'group', 1)}, dilations={_attr(node, 'dilations', 'default')}, pads={_attr(node, 'pads', 'default')}"),
    ]


def _axes_constant(index: int, attribute: str = "axes") -> RestrictionCheck:
    def check(item: _Node) -> list[tuple[str, str]]:
        axes = _input(item.node, index)
        if not axes:
            return [(YES, f"{attribute} given as an attribute {_attr(item.node, attribute)}" if _attr(item.node, attribute) is not None else f"no {attribute} input")]
        if _is_constant(item, axes):
            return [(YES, f"{attribute} input is an initializer/Constant")]
        return [(UNKNOWN, f"{attribute} input {axes} is computed; TensorRT needs it resolvable to a constant")]

    return check


def _check_gather(item: _Node) -> list[tuple[str, str]]:
    indices = _input(item.node, 1)
    kind = item.scope.types.get(indices, "?")
    return [(YES if kind in ("INT32", "INT64") else UNKNOWN, f"indices {kind}, axis={_attr(item.node, 'axis', 0)}")]


def _check_softmax(item: _Node) -> list[tuple[str, str]]:
    return [(YES, f"axis={_attr(item.node, 'axis', -1)}; no restriction in the table")]


def _check_reverse_sequence(item: _Node) -> list[tuple[str, str]]:
    axes = (_attr(item.node, "batch_axis", 1), _attr(item.node, "time_axis", 0))
    return [(YES if set(axes) == {0, 1} else NO, f"batch_axis={axes[0]}, time_axis={axes[1]}; dynamic shapes supported since TensorRT 8.6")]


def _check_dropout(item: _Node) -> list[tuple[str, str]]:
    training = _input(item.node, 2)
    if not training:
        return [(YES, "no training_mode input (inference)")]
    if _is_constant(item, training):
        return [(UNKNOWN, "training_mode is a constant; its value (must be False) is not read by this check")]
    return [(NO, "training_mode is computed; TensorRT needs an initializer evaluating to False")]


def _check_constant(item: _Node) -> list[tuple[str, str]]:
    bad = [a.name for a in item.node.attribute if a.name in ("sparse_value", "value_string", "value_strings")]
    return [(NO, f"attribute {bad[0]} is unsupported")] if bad else [(YES, "dense value")]


RESTRICTION_CHECKS: dict[str, RestrictionCheck] = {
    "LSTM": _check_lstm,
    "Loop": _check_loop,
    "Pad": _check_pad,
    "Conv": _check_conv,
    "Gather": _check_gather,
    "Softmax": _check_softmax,
    "ReverseSequence": _check_reverse_sequence,
    "Squeeze": _axes_constant(1),
    "Unsqueeze": _axes_constant(1),
    "Dropout": _check_dropout,
    "Constant": _check_constant,
    **{op: _axes_constant(1) for op in (
        "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
        "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare",
    )},
}
"""Mechanical checks of the table's restrictions (and of the importer's, where the brief asks: Pad mode,
Conv rank/weights/group/dilations, LSTM direction/activations/sequence_lens)."""


# ---------------------------------------------------------------------------- the check
def _graph_sources(source: str | Path | Sequence[str | Path]) -> list[tuple[str, Path]]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            card = path / "model.json"
            if card.is_file():
                from trtgen.engine.artifact import load_model

                model = load_model(path, verify=False)
                return [(name, model.graph_path(name)) for name in model.card.graphs]
            files = sorted(path.glob("*.onnx"))
            if not files:
                raise FileNotFoundError(f"{path}: no model.json and no .onnx files")
            return [(f.stem, f) for f in files]
        sources: Iterable[str | Path] = [path]
    else:
        sources = source
    result = []
    for item in sources:
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ONNX file")
        result.append((path.stem, path))
    return result


def _check_graph(name: str, path: Path, table: SupportTable) -> GraphReport:
    model = _load(path)
    findings: list[Finding] = []
    opsets = {o.domain: o.version for o in model.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx"))
    low, high = table.opset_range
    if opset is None:
        findings.append(Finding(name, "opset", NO, "no default-domain opset is imported"))
    else:
        verdict = YES if low <= opset <= high else NO
        findings.append(Finding(name, "opset", verdict, f"opset {opset} (TensorRT {table.tensorrt_version} parses {low}..{high})"))

    items = list(_walk(model.graph))
    by_op: dict[str, list[_Node]] = {}
    for item in items:
        by_op.setdefault(_op_key(item.node), []).append(item)
    used_domains = {item.node.domain for item in items}
    for domain, version in sorted(opsets.items()):
        if domain not in DEFAULT_DOMAINS and domain not in used_domains:
            findings.append(Finding(name, "domain", INFO, f"opset import {domain or 'ai.onnx'} v{version} declared but no node uses it"))

    type_problems: dict[tuple[str, str], list[str]] = {}
    for key, nodes in sorted(by_op.items()):
        node = nodes[0].node
        where = tuple(i.where for i in nodes)
        if node.domain not in DEFAULT_DOMAINS:
            findings.append(Finding(name, "domain", NO, f"custom domain {node.domain!r}: TensorRT needs a plugin for {node.op_type}", op=node.op_type, nodes=where))
            continue
        row = table.operators.get(node.op_type)
        if row is None:
            findings.append(Finding(name, "op", NO, f"{node.op_type} is not in TensorRT's ONNX operator table", op=node.op_type, nodes=where))
            continue
        if not row.supported:
            findings.append(Finding(name, "op", NO, f"{node.op_type} is marked unsupported (N) in the table", op=node.op_type, nodes=where))
            continue
        findings.append(Finding(name, "op", YES, f"{len(nodes)} node(s), supported types {', '.join(row.types) or '(not listed)'}", op=node.op_type))
        for item in nodes:
            for tensor in _data_tensors(item.node, opset or high):
                kind = item.scope.types.get(tensor)
                if kind is not None and row.types and kind not in row.types:
                    type_problems.setdefault((node.op_type, kind), []).append(item.where)
        check = RESTRICTION_CHECKS.get(node.op_type)
        if check is not None:
            verdicts: dict[tuple[str, str], list[str]] = {}
            for item in nodes:
                for verdict, detail in check(item):
                    verdicts.setdefault((verdict, detail), []).append(item.where)
            if row.restrictions:
                findings.append(Finding(name, "restriction", INFO, f"table: {row.restrictions}", op=node.op_type))
            for (verdict, detail), places in verdicts.items():
                findings.append(Finding(name, "restriction", verdict, detail, op=node.op_type, nodes=tuple(places)))
        elif row.restrictions:
            findings.append(Finding(name, "restriction", UNKNOWN, f"not checked mechanically: {row.restrictions}", op=node.op_type, nodes=where))
    for (op, kind), places in sorted(type_problems.items()):
        verdict = UNKNOWN if kind == "DOUBLE" else NO
        reason = "TensorRT casts DOUBLE down to FLOAT" if kind == "DOUBLE" else f"the table lists {', '.join(table.operators[op].types)}"
        findings.append(Finding(name, "types", verdict, f"{kind} data: {reason}", op=op, nodes=tuple(places)))

    for role, value in [("input", v) for v in model.graph.input] + [("output", v) for v in model.graph.output]:
        kind = _type_name(value.type.tensor_type.elem_type)
        if kind not in _BINDABLE:
            findings.append(Finding(name, "io", NO, f"{role} {value.name} is {kind}, which TensorRT cannot bind"))
        elif kind == "INT64":
            findings.append(Finding(name, "io", INFO, f"{role} {value.name} is INT64: TensorRT >= 9 binds it as int64 (no cast to int32)"))
        else:
            findings.append(Finding(name, "io", YES, f"{role} {value.name} {kind}"))
    int64 = sorted({i.where for i in items for t in i.node.output if i.scope.types.get(t) == "INT64"})
    if int64:
        findings.append(Finding(name, "int64", INFO, f"{len(int64)} node(s) compute INT64 values (shape arithmetic, casts); TensorRT 10 supports INT64 natively for the ops listed with it", nodes=tuple(int64)))
    counts = Counter(_op_key(item.node) for item in items)
    return GraphReport(name, path, opset, dict(sorted(counts.items())), findings)


def check_tensorrt_support(
    source: str | Path | Sequence[str | Path], table: SupportTable | None = None
) -> SupportReport:
    """Check ONNX graphs against TensorRT's ONNX parser support table.

    ``source`` is a trtgen model directory (its card's graphs), a directory of ``.onnx`` files, one
    ONNX file, or a list of them. Weights are not read. Call :meth:`SupportReport.raise_for_problems`
    to turn problems into an :class:`UnsupportedGraphError` naming each operator.
    """
    table = table or SupportTable.load()
    graphs = [_check_graph(name, path, table) for name, path in _graph_sources(source)]
    return SupportReport(table.tensorrt_version, dict(table.source), graphs)


# ---------------------------------------------------------------------------- command line
def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trtgen_export.trt_support", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="check a model directory or ONNX files")
    check.add_argument("paths", nargs="+", type=Path)
    check.add_argument("--verbose", action="store_true", help="print every finding, not only no/unknown")
    regenerate = commands.add_parser("table", help="regenerate the JSON table from docs/operators.md")
    regenerate.add_argument("markdown", type=Path)
    regenerate.add_argument("--commit", required=True, help="onnx/onnx-tensorrt commit the markdown is from")
    regenerate.add_argument("--repository", default="onnx/onnx-tensorrt")
    regenerate.add_argument("--path", default="docs/operators.md")
    regenerate.add_argument("--out", type=Path, default=TABLE_PATH)
    args = parser.parse_args(argv)
    if args.command == "table":
        source = {"repository": args.repository, "path": args.path, "commit": args.commit}
        table = parse_operators_md(args.markdown.read_text(encoding="utf-8"), source=source)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.out) as handle:
            handle.write(dump_table(table))
        print(f"{args.out}: TensorRT {table.tensorrt_version}, {len(table.operators)} operators")
        return 0
    source_arg: Any = args.paths[0] if len(args.paths) == 1 else args.paths
    report = check_tensorrt_support(source_arg)
    print(report.format(verbose=args.verbose))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(_main())
