"""Training the default voice (trtgen_export.train.train): graph, losses, batches, checkpoints and resume.

The end-to-end tests train the ``small`` preset on a tiny espeak-ng corpus (3 short sentences x 2 voices)
built in a temporary directory; they are skipped, with the reason, where espeak-ng is not installed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from trtgen_export.checkpoint import read_checkpoint
from trtgen_export.tf_model import TacotronGST
from trtgen_export.train.batches import BatchSource, bucket_order, content_length
from trtgen_export.train.teacher_forcing import dropout_masks, teacher_forced_decode, teacher_inputs
from trtgen_export.train.train import (
    BETA1_POWER,
    PROGRESS_FILE,
    TrainConfig,
    TrainResult,
    _parse,
    guided_attention_weights,
    latest_checkpoint,
    train,
)
from trtgen_export.variables import random_weights
from trtgen.engine.config import MODEL_PRESETS, model_preset, text_config_for
from trtgen.engine.text import TextEncoder, is_spoken_symbol

HAVE_ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(
    not HAVE_ESPEAK, reason="espeak-ng is not installed: `sudo apt-get install espeak-ng` (a Debian package, not pip)"
)
SMALL = model_preset("small")
SMALL_KERNEL = "ForwardPass/tacotron_2_decoder/decoder/output_proj/kernel"


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 short sentences (2 train, 1 held out) x 2 espeak-ng voices: 4 training utterances of ~1 s."""
    if not HAVE_ESPEAK:
        pytest.skip("espeak-ng is not installed: `sudo apt-get install espeak-ng` (a Debian package, not pip)")
    from trtgen_export.train.corpus import DEFAULT_VOICES, build_corpus
    from trtgen_export.train.sentences import HELDOUT, TRAIN, Sentence

    sentences = [
        Sentence("t0", "The cat sat down.", TRAIN),
        Sentence("t1", "Anna baked bread today.", TRAIN),
        Sentence("h0", "Tom ran home.", HELDOUT),
    ]
    root = tmp_path_factory.mktemp("corpus") / "corpus"
    build_corpus(root, sentences, DEFAULT_VOICES[:2], workers=1)
    return root


def _config(corpus: Path, out: Path, **overrides: object) -> TrainConfig:
    settings: dict[str, object] = dict(
        corpus=str(corpus), out=str(out), model_config="small", batch_size=4, minutes=5.0, log_every=1, heldout_sentences=1
    )
    settings.update(overrides)
    return TrainConfig(**settings)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# Graph and loss pieces (no corpus needed)


def decode_step_by_step(model: TacotronGST, memory: tf.Tensor, keys: tf.Tensor, mask: tf.Tensor, mel: tf.Tensor, masks: list[tf.Tensor]) -> dict[str, tf.Tensor]:
    """The reference for the fused training decoder: ``decoder_step`` (the exported step) teacher forced in a Python loop."""
    batch, frames = mel.shape[0], mel.shape[1]
    state, inputs, outs = model.initial_state(batch, int(memory.shape[1])), teacher_inputs(mel, model.config.reduction_factor), []
    for t in range(frames // model.config.reduction_factor):
        state["frame"] = inputs[t]
        out, state = model.decoder_step(state, memory, keys, mask, [m[t] for m in masks])
        outs.append(out)
    return {
        "frames": tf.reshape(tf.stack([o["frames"] for o in outs], 1), [batch, frames, -1]),
        "stop_logits": tf.reshape(tf.stack([o["stop_logits"] for o in outs], 1), [batch, frames]),
        "alignments": tf.stack([o["alignment"] for o in outs], 1),
    }


DECODER_BATCH, DECODER_FRAMES, DECODER_SYMBOLS = 3, 12, 9


def decoder_memory(model: TacotronGST, rng: np.random.Generator) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Random target mel [3, 12, 80] and the attention memory, keys and mask of random text styled by it."""
    mel = tf.constant(rng.normal(size=(DECODER_BATCH, DECODER_FRAMES, SMALL.num_mels)).astype(np.float32))
    text_len = tf.constant([9, 5, 7], tf.int32)
    ids = tf.constant(rng.integers(3, 90, (DECODER_BATCH, DECODER_SYMBOLS)).astype(np.int64))
    style = model.encode_style(mel, tf.constant([12, 8, 10], tf.int32))
    return (mel, *model.attention_memory(model.encode_text(ids, text_len), style, text_len))


def test_teacher_forcing_equals_decoder_step() -> None:
    """The fused training decoder is decoder_step's math: a model trained through it exports unchanged."""
    model = TacotronGST(SMALL, random_weights(SMALL, 3, stop_never_fires=False))
    batch, frames, r = DECODER_BATCH, DECODER_FRAMES, SMALL.reduction_factor
    mel, memory, keys, mask = decoder_memory(model, np.random.default_rng(0))
    masks = dropout_masks(frames // r, batch, SMALL.prenet_units, 0.5)
    fast = teacher_forced_decode(model, memory, keys, mask, mel, masks)
    reference = decode_step_by_step(model, memory, keys, mask, mel, masks)
    np.testing.assert_allclose(fast["frames"], reference["frames"], atol=1e-5)
    np.testing.assert_allclose(fast["stop_logits"], reference["stop_logits"], atol=1e-5)
    np.testing.assert_allclose(fast["alignments"], reference["alignments"], atol=1e-6)
    # Step t reads ground-truth frame t*r - 1; step 0 reads zeros.
    inputs = teacher_inputs(mel, r)
    np.testing.assert_array_equal(inputs[0], np.zeros((batch, SMALL.num_mels)))
    np.testing.assert_array_equal(inputs[1], mel[:, r - 1])


def test_teacher_forcing_gradients_equal_decoder_steps() -> None:
    """Training follows the inference step's gradient too: the loop's restructured forms (TensorArray
    reads, transposed kernels, matmul attention) change how TensorFlow differentiates, not what."""
    model = TacotronGST(SMALL, random_weights(SMALL, 4, stop_never_fires=False), trainable=True)
    batch, frames, symbols = DECODER_BATCH, DECODER_FRAMES, DECODER_SYMBOLS
    steps = frames // SMALL.reduction_factor
    rng = np.random.default_rng(1)
    masks = dropout_masks(steps, batch, SMALL.prenet_units, 0.5)
    probe = [tf.constant(rng.normal(size=shape).astype(np.float32)) for shape in [(batch, frames, SMALL.num_mels), (batch, frames), (batch, steps, symbols)]]
    variables = [v for v in model.variables_by_name.values() if v.trainable]

    def gradients(decode):  # type: ignore[no-untyped-def]
        with tf.GradientTape() as tape:
            mel, memory, keys, mask = decoder_memory(model, np.random.default_rng(2))
            out = decode(model, memory, keys, mask, mel, masks)
            loss = sum(tf.reduce_sum(out[k] * p) for k, p in zip(("frames", "stop_logits", "alignments"), probe))
        return tape.gradient(loss, variables)

    fast, reference = gradients(teacher_forced_decode), gradients(decode_step_by_step)
    compared = 0
    for variable, got, want in zip(variables, fast, reference):
        assert (got is None) == (want is None), variable.name
        if want is not None:
            want = tf.convert_to_tensor(want)
            np.testing.assert_allclose(tf.convert_to_tensor(got), want, atol=1e-4 * (float(tf.reduce_max(tf.abs(want))) + 1e-3), err_msg=variable.name)
            compared += 1
    assert compared > 20  # encoder, style and decoder weights all receive a gradient


def test_guided_attention_penalty_is_zero_on_each_items_diagonal() -> None:
    penalty = guided_attention_weights(tf.constant(10), tf.constant([10, 5]), tf.constant(20), tf.constant([20, 10]), 0.2).numpy()
    assert penalty.shape == (2, 10, 20)
    assert penalty[0, 5, 10] == pytest.approx(0.0) and penalty[1, 2, 4] == pytest.approx(0.0)
    assert penalty[0, 0, 19] > 0.9 and penalty[1, 4, 0] > 0.9


def test_speech_end_guide_reaches_the_last_letter_on_the_last_speech_step() -> None:
    # "eos": the diagonal ends on </s> (symbol 19 of 20) at the last step; "speech_end": on the last letter
    # (symbol 17) at the last speech step (12 of 15 steps) and goes on past it over the EOS steps.
    eos = guided_attention_weights(tf.constant(15), tf.constant([15]), tf.constant(20), tf.constant([20]), 0.2).numpy()[0]
    speech_end = guided_attention_weights(tf.constant(15), tf.constant([12]), tf.constant(20), tf.constant([17]), 0.2).numpy()[0]
    assert speech_end[0, 0] == pytest.approx(0.0) and speech_end[12, 17] == pytest.approx(0.0)
    assert speech_end[12, 17] < eos[12, 17]
    assert speech_end[14, 19] < speech_end[14, 17], "over the EOS steps it pulls on towards </s>"


def test_bucket_order_is_seeded_full_and_length_sorted() -> None:
    rng = np.random.default_rng(1)
    lengths = rng.integers(50, 900, 103).tolist()
    order = bucket_order(lengths, 8, seed=0, epoch=0)
    assert len(order) == 103 // 8 and all(len(b) == 8 for b in order)
    assert len({int(i) for b in order for i in b}) == 8 * len(order)
    assert [b.tolist() for b in order] == [b.tolist() for b in bucket_order(lengths, 8, seed=0, epoch=0)]
    assert [b.tolist() for b in order] != [b.tolist() for b in bucket_order(lengths, 8, seed=0, epoch=1)]
    spread = np.mean([np.ptp(np.asarray(lengths)[b]) for b in order])
    assert spread < 0.3 * np.ptp(lengths), "a batch holds utterances of similar length"


def test_schedule_flags_reach_the_learning_rate() -> None:
    """The command line's schedule flags set the rate each step trains with (constant, halving, floor)."""
    config, heldout = _parse(["--corpus", "c", "--out", "o", "--learning-rate", "1e-3", "--lr-decay-start", "600",
                              "--lr-half-life", "350", "--min-learning-rate", "2e-4", "--guide-switch-step", "900"])
    assert heldout and config.guide_weight_at(899) == config.guide_weight and config.guide_weight_at(900) == config.guide_weight_after
    assert config.learning_rate_at(599) == pytest.approx(1e-3)
    assert config.learning_rate_at(950) == pytest.approx(5e-4)
    assert config.learning_rate_at(1300) == pytest.approx(2.5e-4)
    assert config.learning_rate_at(5000) == pytest.approx(2e-4)
    with pytest.raises(ValueError, match="lr_half_life"):
        dataclasses.replace(config, lr_half_life=0).validate()


def test_content_length_ends_after_eos() -> None:
    assert content_length(np.array([1, 30, 31, 2, 0, 0, 0, 0]), eos_id=2) == 4


# ---------------------------------------------------------------------------------------------------------
# On a tiny espeak-ng corpus


@needs_espeak
def test_batches_pad_to_reduction_factor_and_resume_order(tiny_corpus: Path) -> None:
    from trtgen_export.train.corpus import load_corpus

    manifest = load_corpus(tiny_corpus)
    source = BatchSource(manifest, manifest.split("train"), reduction_factor=3)
    batch = source.batch([0, 1, 2])
    speech = np.array([source.utterances[i].num_frames for i in range(3)])
    assert batch.frames % 3 == 0 and batch.frames >= batch.mel_len.max()
    assert batch.mel.shape == (3, batch.frames, 80) and batch.magnitude.shape == (3, batch.frames, 401)
    # OpenSeq2Seq's EOS frames: 2..9 silent frames make each target a multiple of 8; stop from the first.
    np.testing.assert_array_equal(batch.stop_from, speech)
    np.testing.assert_array_equal(batch.speech_len, speech)
    symbols = source.text_config.symbols
    for row in range(3):  # the speech_end guide's anchor: the last letter, with only punctuation after it
        ids = batch.text_ids[row]
        last = int(batch.last_letter[row])
        assert is_spoken_symbol(symbols[ids[last]])
        assert not any(is_spoken_symbol(symbols[i]) for i in ids[last + 1 : batch.content_len[row]])
    assert np.all(batch.mel_len % 8 == 0) and np.all((batch.mel_len - speech >= 2) & (batch.mel_len - speech <= 9))
    for row in range(3):
        assert np.allclose(batch.mel[row, speech[row] :], np.log(0.01))
        assert np.allclose(batch.magnitude[row, speech[row] :], 1e-5)
        assert not np.allclose(batch.mel[row, speech[row] - 1], np.log(0.01))
    # The style clip is the same utterance with the same end padding (docs/openseq2seq-notes.md §3), zeros beyond it.
    np.testing.assert_array_equal(batch.style_len, batch.mel_len)
    without = BatchSource(manifest, manifest.split("train"), reduction_factor=3, eos_frames=False).batch([0, 1, 2])
    np.testing.assert_array_equal(without.mel_len, speech)
    np.testing.assert_array_equal(without.stop_from, speech - 1)
    full = source.iterate(2, seed=5)
    expected = [next(full).ids for _ in range(5)]
    resumed = source.iterate(2, seed=5, start_step=3)
    assert [next(resumed).ids for _ in range(2)] == expected[3:5]


@needs_espeak
def test_a_phoneme_model_trains_on_espeak_ipa(tiny_corpus: Path) -> None:
    from trtgen_export.train.corpus import load_corpus

    manifest = load_corpus(tiny_corpus)
    phonemes = text_config_for(MODEL_PRESETS["voice-ipa"])
    source = BatchSource(manifest, manifest.split("train"), reduction_factor=3, text_config=phonemes)
    batch = source.batch([0, 1])
    for row in range(2):
        text = "".join(phonemes.symbols[i] for i in batch.text_ids[row, 1 : batch.content_len[row] - 1])
        assert text == TextEncoder(phonemes).normalize(source.utterances[row].text).text
        assert "ˈ" in text  # stress marks: IPA, not the letters
    assert batch.text_ids.max() < phonemes.num_symbols


@pytest.fixture(scope="module")
def trained_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainResult]:
    """30 steps of the small preset. The tiny corpus holds exactly one batch (4 utterances), so every step
    sees the same batch: the loss curve shows the optimisation works, free of data noise."""
    out = tmp_path_factory.mktemp("run") / "run"
    tf.random.set_seed(0)
    return out, train(_config(tiny_corpus, out, max_steps=30, learning_rate=3e-3), heldout=False)


def _logged(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / PROGRESS_FILE).read_text().splitlines()]


@needs_espeak
def test_loss_decreases_on_a_fixed_batch(trained_run: tuple[Path, TrainResult]) -> None:
    out, result = trained_run
    assert result.global_step == 30 and result.steps_this_run == 30
    totals = [r["total"] for r in _logged(out) if "total" in r]
    assert len(totals) == 30 and all(np.isfinite(totals))
    assert np.mean(totals[-3:]) < 0.8 * np.mean(totals[:3]), totals


@needs_espeak
def test_checkpoint_is_readable_by_read_checkpoint(trained_run: tuple[Path, TrainResult]) -> None:
    out, result = trained_run
    assert result.checkpoint == out / "model.ckpt-30" and latest_checkpoint(out) == result.checkpoint
    weights = read_checkpoint(result.checkpoint, SMALL)  # the Adam entries are skipped as training-only
    assert set(weights) == set(random_weights(SMALL))
    reader = tf.train.load_checkpoint(str(result.checkpoint))
    assert int(reader.get_tensor("global_step")) == 30
    assert reader.get_tensor(BETA1_POWER) == pytest.approx(0.9**31)  # TF1 Adam: starts at beta1
    assert reader.get_tensor(SMALL_KERNEL + "/Adam").shape == weights[SMALL_KERNEL].shape


@needs_espeak
def test_resume_continues_from_the_saved_step(tiny_corpus: Path, trained_run: tuple[Path, TrainResult]) -> None:
    out, first = trained_run
    saved = read_checkpoint(first.checkpoint, SMALL)
    second = train(_config(tiny_corpus, out, max_steps=32, learning_rate=3e-3), heldout=True)
    assert second.steps_this_run == 2 and second.global_step == 32
    reader = tf.train.load_checkpoint(str(second.checkpoint))
    assert reader.get_tensor(BETA1_POWER) == pytest.approx(0.9**33), "Adam state carried over"
    # Two small Adam steps away from the saved weights, not a fresh initialisation.
    moved = np.abs(reader.get_tensor(SMALL_KERNEL) - saved[SMALL_KERNEL]).max()
    assert 0 < moved < 0.1
    assert [r["step"] for r in _logged(out) if "total" in r][-3:] == [30, 31, 32]
    assert second.heldout is not None and second.heldout.items == 2
    # Budget already spent: no step, the same checkpoint.
    third = train(_config(tiny_corpus, out, max_steps=32), heldout=False)
    assert third.steps_this_run == 0 and third.checkpoint == second.checkpoint
    with pytest.raises(ValueError, match="batch_size"):
        train(_config(tiny_corpus, out, max_steps=40, batch_size=2), heldout=False)
