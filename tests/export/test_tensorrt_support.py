"""The exported graphs use only what TensorRT's ONNX parser supports: checked here without TensorRT.

The check runs against the committed copy of onnx-tensorrt's operator table
(``export/data/tensorrt_onnx_ops.json``); the GPU test in ``test_tensorrt_backend.py`` builds the
engines for real where TensorRT is installed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from trtgen_export.onnx_export import export_model
from trtgen_export.trt_support import (
    TABLE_PATH,
    SupportTable,
    UnsupportedGraphError,
    check_tensorrt_support,
    dump_table,
    graph_op_types,
    parse_operators_md,
)
from trtgen_export.variables import random_weights
from trtgen.engine.artifact import GRAPH_NAMES, OPTIONAL_GRAPHS, STYLE_TOKENS
from trtgen.engine.config import model_preset


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = model_preset("small")
    out = tmp_path_factory.mktemp("small")
    export_model(random_weights(config, seed=0), config, out)
    return out


@pytest.fixture(scope="module")
def variant_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Other widths, head and layer sizes, and OpenSeq2Seq's even location kernel (32): if the op set
    depended on the dimensions, the full-size model could differ from ``small``."""
    config = dataclasses.replace(
        model_preset("small"),
        name="small-variant",
        embedding_dim=24,
        encoder_conv_channels=24,
        encoder_lstm_units=12,
        reference_conv_channels=(8, 8, 8, 16, 16, 32),
        reference_gru_units=24,
        reference_embedding_dim=8,
        num_style_tokens=6,
        style_token_dim=24,
        style_attention_dim=24,
        style_attention_heads=3,
        prenet_units=(24, 16),
        decoder_lstm_units=40,
        attention_dim=12,
        location_filters=4,
        location_kernel=32,
        postnet_channels=(16, 16, 16, 16),
        magnitude_conv_channels=(16, 32),
    )
    out = tmp_path_factory.mktemp("variant")
    export_model(random_weights(config, seed=1), config, out)
    return out


@pytest.fixture(scope="module")
def windowed_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = dataclasses.replace(model_preset("small"), attention_window=(1, 3))
    out = tmp_path_factory.mktemp("windowed")
    export_model(random_weights(config, seed=0), config, out)
    return out


# ---------------------------------------------------------------------------- the table
def test_committed_table_is_tensorrt_10_from_onnx_tensorrt() -> None:
    table = SupportTable.load()
    assert table.tensorrt_version.startswith("10.")
    assert table.source["repository"] == "onnx/onnx-tensorrt"
    assert table.source["path"] == "docs/operators.md"
    assert len(table.source["commit"]) == 40
    low, high = table.opset_range
    assert low <= 17 <= high
    assert len(table.operators) > 150
    assert table.operators["Loop"].supported and "Scan output" in table.operators["Loop"].restrictions
    assert "input_forget" in table.operators["LSTM"].restrictions
    assert not table.operators["Unique"].supported
    assert "INT64" in table.operators["Gather"].types


def test_committed_table_is_what_the_parser_writes() -> None:
    """Regenerating from the same rows gives the same file (``dump_table`` is the only writer)."""
    table = SupportTable.load()
    assert dump_table(table) == TABLE_PATH.read_text(encoding="utf-8")
    assert SupportTable.from_json(json.loads(dump_table(table))) == table


SAMPLE_MD = """
# Supported ONNX Operators

TensorRT 10.99 supports operators in the inclusive range of opset 9 to opset 30. Latest information ...

TensorRT supports the following ONNX data types: FLOAT32, FLOAT16, INT32, and BOOL

> Note: UINT8 is only supported as network input or output tensor types.

## Operator Support Matrix

| Operator                  | Supported  | Supported Types | Restrictions |
|---------------------------|------------|-----------------|--------------|
| Abs                       | Y          | FP32, FP16, INT32 |
| Compress                  | N          |
| DynamicQuantizeLinear     | N          | Not supported. Compose it from ONNX operators.
| Resize                    | Y          | FP32, FP16 | Modes: `nearest`.<br />Antialiasing is not supported.|
| Selu                      | Y          | FP32, FP16, |
| Xor                       | Y          | BOOL
"""


def test_parser_reads_the_operators_md_layout() -> None:
    table = parse_operators_md(SAMPLE_MD, source={"repository": "r", "path": "p", "commit": "c"})
    assert table.tensorrt_version == "10.99"
    assert table.opset_range == (9, 30)
    assert table.data_types == ("FLOAT32", "FLOAT16", "INT32", "BOOL")
    assert table.notes == ("UINT8 is only supported as network input or output tensor types.",)
    ops = table.operators
    assert list(ops) == ["Abs", "Compress", "DynamicQuantizeLinear", "Resize", "Selu", "Xor"]
    assert ops["Abs"].supported and ops["Abs"].types == ("FP32", "FP16", "INT32")
    assert not ops["Compress"].supported and ops["Compress"].types == ()
    assert not ops["DynamicQuantizeLinear"].supported
    assert ops["DynamicQuantizeLinear"].restrictions.startswith("Not supported.")
    assert ops["Resize"].restrictions == "Modes: `nearest`.\nAntialiasing is not supported."
    assert ops["Selu"].types == ("FP32", "FP16")
    assert ops["Xor"].types == ("BOOL",)


def test_parser_refuses_an_unknown_layout() -> None:
    with pytest.raises(ValueError, match="inclusive range of opset"):
        parse_operators_md("TensorRT 8.5 supports operators up to Opset 17.\n| Operator | Supported |\n")


# ---------------------------------------------------------------------------- our graphs
def test_every_exported_graph_is_supported(small_model: Path) -> None:
    report = check_tensorrt_support(small_model)
    assert report.ok, report.format()
    assert {g.graph for g in report.graphs} == set(GRAPH_NAMES) | set(OPTIONAL_GRAPHS)
    assert all(g.opset == 17 for g in report.graphs)
    table = SupportTable.load()
    for op in report.op_types:
        assert table.operators[op].supported, op
    # The decoder chunk is unrolled (no Loop for TensorRT to run); the style encoder's GRU is a Loop,
    # and Sigmoid occurs only inside its body: seeing it proves the subgraph is walked.
    chunk = next(g for g in report.graphs if g.graph == "decoder_chunk")
    assert {"Softmax", "Conv", "Split"} <= set(chunk.op_counts) and "Loop" not in chunk.op_counts
    style = onnx.load(str(small_model / "style_encoder.onnx"), load_external_data=False)
    assert "Sigmoid" not in {node.op_type for node in style.graph.node}
    assert {"Loop", "Sigmoid"} <= set(next(g for g in report.graphs if g.graph == "style_encoder").op_counts)
    assert not report.findings(check="domain", verdict="no")
    # The token bank is the style encoder's tail: matrix products and shape arithmetic, no loop.
    tokens = next(g for g in report.graphs if g.graph == STYLE_TOKENS)
    assert "MatMul" in tokens.op_counts and "Loop" not in tokens.op_counts
    assert set(tokens.op_counts) <= set(next(g for g in report.graphs if g.graph == "style_encoder").op_counts)


def test_restrictions_that_apply_are_judged(small_model: Path) -> None:
    report = check_tensorrt_support(small_model)

    def verdicts(graph: str, op: str) -> dict[str, str]:
        return {f.detail: f.verdict for f in report.findings(check="restriction") if f.graph == graph and f.op == op and f.verdict != "info"}

    lstm = verdicts("text_encoder", "LSTM")
    assert lstm and set(lstm.values()) == {"yes"}
    assert any("input_forget=0" in d for d in lstm) and any("no sequence_lens" in d for d in lstm)
    loop = {f.detail: f.verdict for f in report.findings(check="restriction") if f.graph == "style_encoder" and f.op == "Loop"}
    assert loop["no scan outputs"] == "yes"
    assert set(verdicts("text_encoder", "ReverseSequence").values()) == {"yes"}
    assert all(v == "yes" for g in GRAPH_NAMES for v in verdicts(g, "Pad").values())
    assert all(v == "yes" for g in GRAPH_NAMES for v in verdicts(g, "Conv").values())
    # What the graph alone cannot prove is reported, not passed: the style encoder's GRU while-loop.
    unknown = report.findings(verdict="unknown")
    assert unknown and {(f.graph, f.op) for f in unknown} == {("style_encoder", "Loop")}


def test_runtime_binds_only_float32_and_int32(small_model: Path) -> None:
    report = check_tensorrt_support(small_model)
    io = report.findings(check="io")
    assert io and all(f.verdict == "yes" for f in io), [f.line() for f in io]
    assert {f.detail.split()[-1] for f in io} == {"FP32", "INT32"}


def test_full_size_graphs_have_the_same_op_set(small_model: Path, variant_model: Path) -> None:
    for graph in (*GRAPH_NAMES, *OPTIONAL_GRAPHS):
        small = graph_op_types(small_model / f"{graph}.onnx")
        other = graph_op_types(variant_model / f"{graph}.onnx")
        assert small == other, f"{graph}: {sorted(small ^ other)}"
    assert check_tensorrt_support(variant_model).ok


def test_attention_window_graphs_are_supported(small_model: Path, windowed_model: Path) -> None:
    """The window's ops (the previous peak's ArgMax and the range comparison) are in the decoder graphs and
    TensorRT's parser takes them; the other graphs are unchanged."""
    report = check_tensorrt_support(windowed_model)
    assert report.ok, report.format()
    for graph in ("decoder_step", "decoder_chunk"):
        added = graph_op_types(windowed_model / f"{graph}.onnx") - graph_op_types(small_model / f"{graph}.onnx")
        assert "ArgMax" in added, sorted(added)
    for graph in ("style_encoder", "text_encoder", "postnet", STYLE_TOKENS):
        assert graph_op_types(windowed_model / f"{graph}.onnx") == graph_op_types(small_model / f"{graph}.onnx")


# ---------------------------------------------------------------------------- graphs it must refuse
def _save(tmp_path: Path, name: str, nodes: list, inputs: list, outputs: list, *, opset: int = 17, initializers: list | None = None) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers or [])
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in {n.domain for n in nodes if n.domain}]
    model = helper.make_model(graph, opset_imports=imports, producer_name="trtgen-test")
    model.ir_version = 8
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _vec(name: str, elem: int = TensorProto.FLOAT, shape: list | None = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape if shape is not None else ["n"])


def test_unsupported_operator_is_named(tmp_path: Path) -> None:
    assert not SupportTable.load().operators["Compress"].supported
    path = _save(
        tmp_path, "compress",
        [helper.make_node("Compress", ["x", "keep"], ["y"], axis=0, name="drop_padding")],
        [_vec("x"), _vec("keep", TensorProto.BOOL)], [_vec("y")],
    )
    report = check_tensorrt_support(path)
    assert not report.ok
    [problem] = report.problems
    assert problem.op == "Compress" and "unsupported" in problem.detail and problem.nodes == ("drop_padding",)
    with pytest.raises(UnsupportedGraphError, match="Compress"):
        report.raise_for_problems()


def test_custom_domain_node_is_refused(tmp_path: Path) -> None:
    path = _save(
        tmp_path, "plugin",
        [helper.make_node("FancyAttention", ["x"], ["y"], domain="com.example", name="attention_plugin")],
        [_vec("x")], [_vec("y")],
    )
    report = check_tensorrt_support([path])
    [problem] = report.problems
    assert problem.check == "domain" and problem.op == "FancyAttention" and "com.example" in problem.detail
    with pytest.raises(UnsupportedGraphError, match="FancyAttention"):
        report.raise_for_problems()


def test_unsupported_operator_inside_a_loop_body_is_found(tmp_path: Path) -> None:
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Det", ["m_in"], ["d"], name="determinant"),
            helper.make_node("Identity", ["m_in"], ["m_out"]),
        ],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         _vec("m_in", shape=[2, 2])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), _vec("m_out", shape=[2, 2]), _vec("d", shape=[])],
    )
    path = _save(
        tmp_path, "loop",
        [helper.make_node("Loop", ["trips", "", "m"], ["m_last", "dets"], body=body, name="repeat")],
        [helper.make_tensor_value_info("trips", TensorProto.INT64, []), _vec("m", shape=[2, 2])],
        [_vec("m_last", shape=[2, 2]), _vec("dets", shape=["trips"])],
    )
    report = check_tensorrt_support(path)
    [problem] = report.problems
    assert problem.op == "Det" and problem.nodes == ("repeat/body/determinant",)


def test_types_the_table_does_not_list_are_refused(tmp_path: Path) -> None:
    path = _save(
        tmp_path, "int_matmul",
        [helper.make_node("MatMul", ["a", "b"], ["c"], name="integer_matmul")],
        [_vec("a", TensorProto.INT32, [2, 2]), _vec("b", TensorProto.INT32, [2, 2])], [_vec("c", TensorProto.INT32, [2, 2])],
    )
    [problem] = check_tensorrt_support(path).problems
    assert problem.check == "types" and problem.op == "MatMul" and "INT32" in problem.detail


def test_lstm_restriction_and_opset_range_are_enforced(tmp_path: Path) -> None:
    weights = [
        helper.make_tensor("W", TensorProto.FLOAT, [1, 8, 3], [0.0] * 24),
        helper.make_tensor("R", TensorProto.FLOAT, [1, 8, 2], [0.0] * 16),
    ]
    path = _save(
        tmp_path, "coupled_lstm",
        [helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=2, input_forget=1, name="coupled")],
        [_vec("x", shape=[5, 1, 3])], [_vec("y", shape=[5, 1, 1, 2])], initializers=weights,
    )
    [problem] = check_tensorrt_support(path).problems
    assert problem.op == "LSTM" and "input_forget=1" in problem.detail
    old = _save(tmp_path, "old_opset", [helper.make_node("Relu", ["x"], ["y"])], [_vec("x")], [_vec("y")], opset=8)
    [problem] = check_tensorrt_support(old).problems
    assert problem.check == "opset" and "opset 8" in problem.detail
