"""The variable table against the spec's TSV (docs/openseq2seq-notes.md §8), and the training-only rules against its training rows."""

from __future__ import annotations

import re

import numpy as np
import pytest

from trtgen_export.checkpoint import is_training_only, training_only_reason
from trtgen_export.variables import NON_TRAINABLE_SUFFIXES, expected_variables, random_weights
from tests.conftest import SHARED
from trtgen.engine.config import MODEL_PRESETS, model_preset

SPEC_TSV = SHARED / "spec" / "openseq2seq_variables.tsv"
Row = tuple[str, "tuple[int, ...] | None", str]


def _parse_shape(text: str) -> tuple[int, ...] | None:
    """``[94, 512]`` -> (94, 512); ``[1576960] (nominal)`` -> (1576960,); ``scalar (int64)`` -> (); else None."""
    match = re.match(r"\s*\[([\d,\s]*)\]", text)
    if match:
        return tuple(int(d) for d in match.group(1).split(",") if d.strip())
    if text.strip().startswith("scalar"):
        return ()
    return None


@pytest.fixture(scope="module")
def tsv_rows() -> tuple[list[Row], list[Row]]:
    """(inference rows, training-only rows) of the spec TSV, each (name, shape, meaning)."""
    if not SPEC_TSV.is_file():
        pytest.fail(f"the spec's variable table is missing: expected {SPEC_TSV}")
    lines = SPEC_TSV.read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t")[:3] == ["name", "shape", "meaning"]
    inference: list[Row] = []
    training: list[Row] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        name, shape, meaning, *_ = line.split("\t")
        row = (name, _parse_shape(shape), meaning)
        (training if meaning.startswith("TRAINING ONLY") else inference).append(row)
    return inference, training


def test_tsv_has_117_inference_rows(tsv_rows: tuple[list[Row], list[Row]]) -> None:
    inference, training = tsv_rows
    assert len(inference) == 117
    assert all(shape is not None for _, shape, _ in inference)
    assert len(training) == 6


def test_openseq2seq_table_equals_tsv_in_name_shape_and_order(tsv_rows: tuple[list[Row], list[Row]]) -> None:
    inference, _ = tsv_rows
    table = list(expected_variables(model_preset("openseq2seq")).items())
    assert table == [(name, shape) for name, shape, _ in inference]


def test_parameter_counts_match_spec() -> None:
    """Spec §8: 30,372,673 trainable values; 26,144 non-trainable = 9,760 BN statistics + 16,384 tokens."""
    table = expected_variables(model_preset("openseq2seq"))
    counts = {"bn": 0, "tokens": 0, "trainable": 0}
    for name, shape in table.items():
        size = int(np.prod(shape))
        leaf = name.rsplit("/", 1)[-1]
        if leaf in ("moving_mean", "moving_variance"):
            counts["bn"] += size
        elif leaf == "token_embeddings":
            counts["tokens"] += size
        else:
            counts["trainable"] += size
    assert counts == {"bn": 9_760, "tokens": 16_384, "trainable": 30_372_673}
    assert set(NON_TRAINABLE_SUFFIXES) == {"moving_mean", "moving_variance", "token_embeddings"}


def test_random_weights_follow_the_table() -> None:
    config = model_preset("small")
    weights = random_weights(config, seed=3)
    assert {k: v.shape for k, v in weights.items()} == expected_variables(config)
    assert all(v.dtype == np.float32 for v in weights.values())


def test_small_preset_uses_the_same_names() -> None:
    """The small preset is the full model scaled down: same names in the same order, other shapes."""
    small = expected_variables(model_preset("small"))
    full = expected_variables(model_preset("openseq2seq"))
    assert list(small) == list(full)
    assert small != full


def _concrete_training_names(name: str, trainable: list[str]) -> list[str]:
    """Turn a TSV training row's name pattern into the concrete names a checkpoint would hold."""
    if name.startswith("<training-graph trainable variable>/"):
        slot = name.rsplit("/", 1)[-1]
        # TF1 slot_creator scopes slots under the optimizer's variable scope (Loss_Optimization/<var>/Adam,
        # seen with tf.compat.v1's AdamOptimizer); the TSV writes them unscoped. Both must be ignored.
        return [f"{var}/{slot}" for var in trainable] + [f"Loss_Optimization/{var}/{slot}" for var in trainable]
    match = re.match(r"(\S+) \(possibly (\S+)\)", name)
    if match:
        return [match.group(1), match.group(2)]
    return [name]


def test_training_only_rows_are_recognised(tsv_rows: tuple[list[Row], list[Row]]) -> None:
    inference, training = tsv_rows
    trainable = [n for n, _, _ in inference if not n.endswith(NON_TRAINABLE_SUFFIXES)]
    trainable.append("ForwardPass/tacotron2_encoder/cudnn_rnn/opaque_kernel")
    concrete = [c for name, _, _ in training for c in _concrete_training_names(name, trainable)]
    assert "global_step" in concrete and "Loss_Optimization/beta2_power" in concrete
    # opaque_kernel, global_step, beta{1,2}_power in two spellings; two Adam slots per trainable in two spellings.
    assert len(concrete) == 6 + 4 * len(trainable)
    not_ignored = [c for c in concrete if not is_training_only(c)]
    assert not_ignored == []


@pytest.mark.parametrize("preset", sorted(MODEL_PRESETS))
def test_no_model_variable_is_training_only(preset: str) -> None:
    swallowed = {n: training_only_reason(n) for n in expected_variables(model_preset(preset)) if is_training_only(n)}
    assert swallowed == {}


@pytest.mark.parametrize(
    "name",
    [
        "ForwardPass/tacotron2_encoder/conv1/kernel/ExponentialMovingAverage",  # not OpenSeq2Seq's: user decides
        "ForwardPass/tacotron2_encoder/conv4/kernel",  # a fourth text conv: another config
        "Adam",  # a bare name is not a slot
        "ForwardPass/tacotron2_encoder/cudnn_rnn_1/opaque_kernel",  # a second cuDNN layer: another config
        "ForwardPass/tacotron2_encoder/Adam_2",
    ],
)
def test_unknown_names_are_not_ignored(name: str) -> None:
    assert not is_training_only(name)
