"""Reading and writing OpenSeq2Seq checkpoints: real TF files, real TF1 Saver output, every refusal path."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from trtgen_export.checkpoint import (
    EMBEDDING,
    GLOBAL_STEP,
    OPAQUE_KERNEL,
    CheckpointError,
    VariableInfo,
    describe_checkpoint,
    read_checkpoint,
    resolve_checkpoint,
    write_checkpoint,
)
from trtgen_export.variables import DECODER, ENCODER, NON_TRAINABLE_SUFFIXES, expected_variables, random_weights
from trtgen.engine.config import ModelConfig, TextConfig, model_preset

SMALL = model_preset("small")
FULL = model_preset("openseq2seq")
PRENET_BIAS = DECODER + "decoder/prenet_1/bias"
CONV1 = ENCODER + "conv1/kernel"
TRAINING_EXTRAS = {
    # What a real training checkpoint adds (docs/openseq2seq-notes.md §8): the cuDNN buffer, Adam slots in both spellings,
    # Adam's power accumulators under any prefix, and the mixed-precision loss scaler's unnamed variable.
    OPAQUE_KERNEL: np.zeros(1_576_960, np.float32),
    f"Loss_Optimization/{PRENET_BIAS}/Adam": np.full(256, 0.5, np.float32),
    f"Loss_Optimization/{PRENET_BIAS}/Adam_1": np.full(256, 0.25, np.float32),
    f"{OPAQUE_KERNEL}/Adam": np.zeros(1_576_960, np.float32),
    f"{ENCODER}style_encoder/attention/attention_v/Adam_1": np.ones(64, np.float32),
    "Loss_Optimization/beta1_power": np.float32(0.9**1000),
    "beta2_power": np.float32(0.999**1000),
    "Loss_Optimization/Variable": np.int64(1000),
}


def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


# ---------------------------------------------------------------------------------------------------------------
# Full size: one write and one read for the module
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    weights = random_weights(FULL, seed=11)
    prefix = write_checkpoint(
        weights, tmp_path_factory.mktemp("full") / "model.ckpt-1000", global_step=1000, extra=TRAINING_EXTRAS
    )
    return prefix, weights


@pytest.fixture(scope="module")
def full_loaded(full_checkpoint: tuple[Path, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return read_checkpoint(full_checkpoint[0], FULL)


@pytest.mark.slow
def test_full_checkpoint_holds_every_tsv_variable_and_the_extras(
    full_checkpoint: tuple[Path, dict[str, np.ndarray]],
) -> None:
    prefix, _ = full_checkpoint
    listing = {info.name: info for info in describe_checkpoint(prefix)}
    for name, shape in expected_variables(FULL).items():
        assert listing[name] == VariableInfo(name, shape, "float32")
    assert listing[GLOBAL_STEP] == VariableInfo(GLOBAL_STEP, (), "int64")
    assert listing[OPAQUE_KERNEL].shape == (1_576_960,)
    assert set(listing) == set(expected_variables(FULL)) | set(TRAINING_EXTRAS) | {GLOBAL_STEP}
    assert sorted(listing) == list(listing)


@pytest.mark.slow
def test_full_checkpoint_loads_bit_for_bit(
    full_checkpoint: tuple[Path, dict[str, np.ndarray]], full_loaded: dict[str, np.ndarray]
) -> None:
    _, weights = full_checkpoint
    assert list(full_loaded) == list(expected_variables(FULL))
    assert sum(v.size for v in full_loaded.values()) == 30_372_673 + 26_144
    unequal = [name for name in weights if not _bits_equal(full_loaded[name], weights[name])]
    assert unequal == []


@pytest.mark.slow
def test_full_checkpoint_directory_forms_resolve(full_checkpoint: tuple[Path, dict[str, np.ndarray]]) -> None:
    prefix, _ = full_checkpoint
    assert resolve_checkpoint(prefix.parent) == prefix
    assert resolve_checkpoint(f"{prefix}.index") == prefix
    assert resolve_checkpoint(f"{prefix}.data-00000-of-00001") == prefix
    state = (prefix.parent / "checkpoint").read_text()
    assert 'model_checkpoint_path: "model.ckpt-1000"' in state  # relative: the directory can be moved
    assert [p.name for p in prefix.parent.iterdir() if p.name.startswith(".")] == []


# ---------------------------------------------------------------------------------------------------------------
# Small preset: round trips and every refusal
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def small_weights() -> dict[str, np.ndarray]:
    return random_weights(SMALL, seed=5)


def _read_error(prefix: Path, config: ModelConfig = SMALL) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(prefix, config)
    assert str(prefix) in str(info.value)
    return info.value


def test_small_round_trip_through_the_directory(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    write_checkpoint(small_weights, tmp_path / "run" / "model.ckpt-7", global_step=7, extra=TRAINING_EXTRAS)
    loaded = read_checkpoint(tmp_path / "run", SMALL)
    assert list(loaded) == list(expected_variables(SMALL))
    assert all(_bits_equal(loaded[n], small_weights[n]) for n in small_weights)


def test_missing_variable_is_named_with_its_shape(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    del small_weights[CONV1]
    error = _read_error(write_checkpoint(small_weights, tmp_path / "m"))
    assert error.problems.missing == {CONV1: (5, 32, 32)}
    assert f"{CONV1}  expected [5, 32, 32]" in str(error)
    assert "missing variables (1)" in str(error)


def test_mis_shaped_variable_gives_expected_and_actual(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    small_weights[CONV1] = np.zeros((3, 32, 32), np.float32)
    error = _read_error(write_checkpoint(small_weights, tmp_path / "m"))
    assert error.problems.mis_shaped == {CONV1: ((5, 32, 32), (3, 32, 32))}
    assert f"{CONV1}  expected [5, 32, 32], found [3, 32, 32]" in str(error)
    assert "--config" in str(error)


def test_unknown_extra_variable_is_named(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    extra = ENCODER + "conv4/kernel"
    prefix = write_checkpoint(small_weights, tmp_path / "m", extra={extra: np.zeros((5, 32, 32), np.float32)})
    error = _read_error(prefix)
    assert error.problems.unknown == {extra: (5, 32, 32)}
    assert f"{extra}  [5, 32, 32]" in str(error)
    assert "another configuration" in str(error) and "--config" in str(error)


def test_embedding_of_another_vocabulary_is_refused(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    small_weights[EMBEDDING] = np.zeros((103, SMALL.embedding_dim), np.float32)
    error = _read_error(write_checkpoint(small_weights, tmp_path / "m"))
    assert error.problems.vocabulary == (103, 94)
    assert error.problems.mis_shaped == {}  # reported once, as a vocabulary problem
    message = str(error)
    assert "103 rows" in message and "94 symbols" in message and "different vocabulary file" in message


def test_embedding_is_checked_against_the_text_config(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    prefix = write_checkpoint(small_weights, tmp_path / "m")
    other = TextConfig(symbols=TextConfig().symbols[:90])
    with pytest.raises(ValueError, match="num_symbols=94 .* 90"):
        read_checkpoint(prefix, SMALL, other)


def test_all_problems_are_reported_together(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    postnet = DECODER + "conv2/bn/gamma"
    del small_weights[PRENET_BIAS]
    small_weights[postnet] = np.ones(33, np.float32)
    small_weights[EMBEDDING] = np.zeros((103, SMALL.embedding_dim), np.float32)
    small_weights[CONV1][0, 0, 0] = np.nan
    prefix = write_checkpoint(small_weights, tmp_path / "m", extra={"ForwardPass/extra/kernel": np.ones(2, np.float32)})
    error = _read_error(prefix)
    problems = error.problems
    assert set(problems.missing) == {PRENET_BIAS}
    assert set(problems.mis_shaped) == {postnet}
    assert set(problems.unknown) == {"ForwardPass/extra/kernel"}
    assert problems.vocabulary == (103, 94)
    assert problems.non_finite == {CONV1: (1, 5 * 32 * 32)}
    assert problems.count == 5
    for text in (PRENET_BIAS, postnet, "ForwardPass/extra/kernel", "103 rows", CONV1, "(5 problems)"):
        assert text in str(error)


def test_checkpoint_of_another_preset_gets_a_config_hint(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    error = _read_error(write_checkpoint(small_weights, tmp_path / "m"), FULL)
    assert "fits preset 'small' exactly: pass --config small" in str(error)


def test_opaque_only_encoder_lstm_is_explained(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    canonical = [n for n in small_weights if "cudnn_compatible_lstm_cell" in n]
    for name in canonical:
        del small_weights[name]
    error = _read_error(write_checkpoint(small_weights, tmp_path / "m", extra={OPAQUE_KERNEL: np.zeros(8, np.float32)}))
    assert set(error.problems.missing) == set(canonical) and len(canonical) == 4
    assert "only as the cuDNN buffer" in str(error)


def test_non_float_variable_is_refused_and_float64_converted(
    tmp_path: Path, small_weights: dict[str, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    as_int = small_weights[PRENET_BIAS].astype(np.int32)
    error = _read_error(write_checkpoint({**small_weights, PRENET_BIAS: as_int}, tmp_path / "int"))
    assert error.problems.wrong_dtype == {PRENET_BIAS: "int32"}
    as_double = small_weights[PRENET_BIAS].astype(np.float64)
    with caplog.at_level(logging.WARNING, logger="trtgen_export.checkpoint"):
        loaded = read_checkpoint(write_checkpoint({**small_weights, PRENET_BIAS: as_double}, tmp_path / "f64"), SMALL)
    assert _bits_equal(loaded[PRENET_BIAS], small_weights[PRENET_BIAS])
    assert "converted 1 variables to float32" in caplog.text


# ---------------------------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------------------------


def test_nothing_there_is_said_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*model.ckpt-5.*state file"):
        read_checkpoint(tmp_path / "model.ckpt-5", SMALL)


def test_directory_without_state_file_lists_candidates(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    prefix = write_checkpoint(small_weights, tmp_path / "model.ckpt-3")
    (tmp_path / "checkpoint").unlink()
    with pytest.raises(FileNotFoundError, match="no 'checkpoint' state file.*model.ckpt-3"):
        resolve_checkpoint(tmp_path)
    assert resolve_checkpoint(prefix) == prefix


def test_moved_directory_with_absolute_state_paths_still_loads(
    tmp_path: Path, small_weights: dict[str, np.ndarray]
) -> None:
    """TF1's Saver writes absolute paths into the state file; a copied run directory must still load."""
    prefix = write_checkpoint(small_weights, tmp_path / "model.ckpt-9")
    (tmp_path / "checkpoint").write_text(
        'model_checkpoint_path: "/gone/training/model.ckpt-9"\n'
        'all_model_checkpoint_paths: "/gone/training/model.ckpt-9"\n'
    )
    assert resolve_checkpoint(tmp_path) == prefix
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/gone/training/model.ckpt-10"\n')
    with pytest.raises(FileNotFoundError, match="names /gone/training/model.ckpt-10.*model.ckpt-9"):
        resolve_checkpoint(tmp_path)


def test_unreadable_checkpoint_is_a_checkpoint_error(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    prefix = write_checkpoint(small_weights, tmp_path / "m")
    Path(f"{prefix}.index").write_bytes(b"not a tensor bundle")
    with pytest.raises(CheckpointError, match=f"cannot read checkpoint {prefix}"):
        describe_checkpoint(prefix)


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------


def test_rewrites_keep_history_and_leave_no_temporary_files(
    tmp_path: Path, small_weights: dict[str, np.ndarray]
) -> None:
    write_checkpoint(small_weights, tmp_path / "model.ckpt-1", global_step=1)
    write_checkpoint(small_weights, tmp_path / "model.ckpt-2", global_step=2)
    changed = {**small_weights, PRENET_BIAS: small_weights[PRENET_BIAS] + 1}
    write_checkpoint(changed, tmp_path / "model.ckpt-1", global_step=1)  # overwrite in place
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert [Path(p).name for p in state.all_model_checkpoint_paths] == ["model.ckpt-2", "model.ckpt-1"]
    assert Path(state.model_checkpoint_path).name == "model.ckpt-1"
    assert _bits_equal(read_checkpoint(tmp_path, SMALL)[PRENET_BIAS], changed[PRENET_BIAS])
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["checkpoint"] + [f"model.ckpt-{i}{s}" for i in (1, 2) for s in (".index", ".data-00000-of-00001")]
    )


def test_bad_input_writes_nothing(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="given twice"):
        write_checkpoint(small_weights, tmp_path / "m", extra={CONV1: np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match="global_step.*given twice"):
        write_checkpoint(small_weights, tmp_path / "m", global_step=1, extra={GLOBAL_STEP: np.int64(1)})
    with pytest.raises(TypeError, match="dtype <U3"):
        write_checkpoint({"a": np.array("abc")}, tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# Compatibility with TF1's own Saver, both directions
# ---------------------------------------------------------------------------------------------------------------


def _tf1_variables(config: ModelConfig) -> dict[str, tf.Variable]:
    """Model variables created the TF1 way (``get_variable`` with full names), trainable as in the training graph."""
    return {
        name: tf.compat.v1.get_variable(
            name, shape=shape, dtype=tf.float32, trainable=not name.endswith(NON_TRAINABLE_SUFFIXES)
        )
        for name, shape in expected_variables(config).items()
    }


def test_tf1_saver_restores_what_write_checkpoint_wrote(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    prefix = write_checkpoint(small_weights, tmp_path / "model.ckpt-4", global_step=4, extra=TRAINING_EXTRAS)
    with tf.Graph().as_default():
        variables = _tf1_variables(SMALL)
        step = tf.compat.v1.train.get_or_create_global_step()
        saver = tf.compat.v1.train.Saver(var_list=[*variables.values(), step])
        with tf.compat.v1.Session() as session:
            saver.restore(session, str(prefix))
            restored = session.run(variables)
            assert session.run(step) == 4
    assert all(_bits_equal(restored[n], small_weights[n]) for n in small_weights)


def test_checkpoint_saved_by_tf1_training_graph_loads(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    """A graph-mode Saver checkpoint with a real Adam optimizer under OpenSeq2Seq's Loss_Optimization scope."""
    with tf.Graph().as_default():
        variables = _tf1_variables(SMALL)
        step = tf.compat.v1.train.get_or_create_global_step()
        loss = tf.add_n([tf.reduce_sum(tf.square(v)) for v in tf.compat.v1.trainable_variables()])
        with tf.compat.v1.variable_scope("Loss_Optimization"):
            tf.compat.v1.train.AdamOptimizer(1e-3).minimize(loss, global_step=step)
        assigns = [v.assign(small_weights[n]) for n, v in variables.items()]
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(assigns)
            saved = saver.save(session, str(tmp_path / "train" / "model.ckpt"), global_step=250)
    names = {info.name for info in describe_checkpoint(saved)}
    assert {"Loss_Optimization/beta1_power", f"Loss_Optimization/{PRENET_BIAS}/Adam_1", GLOBAL_STEP} <= names
    copy = tmp_path / "copied"
    shutil.copytree(tmp_path / "train", copy)  # its state file holds absolute paths into train/
    shutil.rmtree(tmp_path / "train")
    loaded = read_checkpoint(copy, SMALL)
    assert all(_bits_equal(loaded[n], small_weights[n]) for n in small_weights)


def test_state_file_survives_odd_file_names(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    prefix = write_checkpoint(small_weights, tmp_path / 'run "b"\\1' / "model.ckpt-1")
    assert resolve_checkpoint(prefix.parent) == prefix
    prefix = write_checkpoint(small_weights, tmp_path / 'run "b"\\1' / 'odd "name"\\x')
    assert resolve_checkpoint(prefix.parent) == prefix


# ---------------------------------------------------------------------------------------------------------------
# The shipped form: inference variables only, optionally the mean of several checkpoints
# ---------------------------------------------------------------------------------------------------------------


def test_inference_checkpoint_drops_training_extras_and_averages(tmp_path: Path, small_weights: dict[str, np.ndarray]) -> None:
    from trtgen_export.train.inference_checkpoint import main

    other = random_weights(SMALL, seed=6)
    write_checkpoint(small_weights, tmp_path / "run" / "model.ckpt-7", global_step=7, extra=TRAINING_EXTRAS)
    write_checkpoint(other, tmp_path / "run" / "model.ckpt-9", global_step=9, extra=TRAINING_EXTRAS)

    # One source, named by its run directory (the latest checkpoint): the weights unchanged, no Adam slots.
    assert main(["--config", "small", "--out", str(tmp_path / "one"), str(tmp_path / "run")]) == 0
    reader = tf.train.load_checkpoint(str(tmp_path / "one" / "model.ckpt-9"))
    names = set(reader.get_variable_to_shape_map())
    assert names == set(expected_variables(SMALL)) | {"global_step"}
    assert int(reader.get_tensor("global_step")) == 9
    assert all(_bits_equal(reader.get_tensor(n), other[n]) for n in other)

    # Two sources: the element-wise mean, named by the later step.
    out = tmp_path / "mean"
    assert main(["--config", "small", "--out", str(out), str(tmp_path / "run" / "model.ckpt-7"), str(tmp_path / "run" / "model.ckpt-9")]) == 0
    mean = read_checkpoint(out / "model.ckpt-9", SMALL)
    for name in small_weights:
        np.testing.assert_allclose(mean[name], (small_weights[name] + other[name]) / 2, rtol=1e-6, atol=1e-7, err_msg=name)
    assert not np.array_equal(mean[ENCODER + "EncoderEmbeddingMatrix"], other[ENCODER + "EncoderEmbeddingMatrix"])

    # A renamed checkpoint keeps its step: it comes from the checkpoint's global_step, not the file name.
    write_checkpoint(other, tmp_path / "renamed" / "best", global_step=9)
    assert main(["--config", "small", "--out", str(tmp_path / "from-renamed"), str(tmp_path / "renamed" / "best")]) == 0
    assert int(tf.train.load_checkpoint(str(tmp_path / "from-renamed" / "model.ckpt-9")).get_tensor("global_step")) == 9

    # Bad input: the same checkpoint twice, or a checkpoint of another config, is refused and writes nothing.
    twice = [str(tmp_path / "run" / "model.ckpt-9"), str(tmp_path / "run")]
    assert main(["--config", "small", "--out", str(tmp_path / "bad"), *twice]) == 2
    assert main(["--config", "voice", "--out", str(tmp_path / "bad"), str(tmp_path / "run")]) == 2
    assert not (tmp_path / "bad").exists()
