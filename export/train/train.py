"""Train the small default voice (preset ``voice``) on the espeak-ng corpus, on a CPU.

    python -m trtgen_export.train.train --corpus /work/cache/voice-corpus --out /work/cache/train-voice --minutes 60

The graph is :class:`trtgen_export.tf_model.TacotronGST` in training mode (docs/openseq2seq-notes.md §5.7): the style comes from the
reference encoder run on the target utterance itself (OpenSeq2Seq's GST training), the decoder is teacher
forced (step ``t`` reads ground-truth frame ``t*r - 1``, zeros at ``t = 0``) with fresh prenet dropout masks
every step, BatchNorm uses batch moments, and encoder-conv / postnet / decoder-LSTM dropout are on.

Losses (summed, each a mean over valid positions):

* mel L1 before and after the postnet, on each item's own frames (the postnet, and the magnitude loss
  below, on a random window of ``postnet_crop_frames`` per utterance: exact on every counted frame, see
  ``_postnet_crop``);
* magnitude: L1 between ``ln(max(mag, 0) + 0.01)`` and ``ln(target + 0.01)``, plus ``mean(max(-mag, 0))``.
  Log magnitude because Griffin-Lim and the ear care about relative error (a linear loss spends itself on
  the few loud low-frequency bins); the +0.01 (the mel floor, docs/openseq2seq-notes.md §3) bounds the gradient of near-silent
  bins at 100 instead of 1e5; the hinge pulls bins the projection made negative (which the log cannot
  see, and which the vocoder clips to 0) back up;
* stop: per-frame BCE, target 1 on each item's end-of-sequence frames: as OpenSeq2Seq's data layer
  (docs/openseq2seq-notes.md §3 ``pad_EOS``), every target gets 2..9 frames of silence (``ln 0.01`` mel, 1e-5 magnitude)
  after its speech, included in the mel and magnitude losses, so the decoder learns to emit silence
  after the last word and the stop projection (linear in the frame) fires on it; positive class weighted
  ``stop_pos_weight`` as only ~1 frame in 70 is positive;
* guided attention (g = 0.2): the attention mass off the diagonal, summed over characters and averaged
  over decoder steps -- normalised per step, not over the whole matrix, which would divide the pull by the
  text length; weight 2 for the first 1500 steps, then 1. The diagonal runs
  from the first step on ``<s>`` either to the last step on ``</s>`` (``guide_anchor="eos"``) or to the
  last *speech* step on the last letter (``"speech_end"``), continuing past it over the EOS frames: with
  ``"eos"`` the diagonal is still a character or two short of the last letter when the stop token fires
  on the first EOS frame. The recipe keeps ``"eos"``: ``"speech_end"`` did not bring the attention to the
  last letter sooner and cost strict alignment (docs/shipped-voice.md, "Tried and not adopted").

Short utterances first (``--max-frames 400``, then a warm start on all lengths with ``--init-from``): the
attention learns to align on short utterances in minutes, and their steps are cheaper; this is the 50-minute
recipe of ``RECIPE=hour scripts/train_voice.sh`` (docs/shipped-voice.md, "Recipes").

Optimiser: Adam with TF1's update (``ResourceApplyAdam``), gradients clipped to global norm 1.0.

Checkpoints (every ``checkpoint_minutes`` and at the end) are OpenSeq2Seq TF1 name-based checkpoints
(``model.ckpt-<step>``) written by :func:`trtgen_export.checkpoint.write_checkpoint`: the model variables under
their OpenSeq2Seq names, ``global_step``, and the Adam state as TF1 names it (``<var>/Adam``, ``<var>/Adam_1``,
``Loss_Optimization/beta{1,2}_power``) -- entries ``read_checkpoint`` and ``trtgen export`` skip as
training-only. One file set therefore resumes training exactly (weights and optimiser) and exports as is.
The batch order is a function of (seed, epoch), so resuming recomputes the next batch from ``global_step``;
only the dropout random stream differs from an uninterrupted run. ``--init-from CKPT`` warm-starts a new
run directory from another run's checkpoint (weights, Adam state and step), e.g. to continue with changed
settings while keeping the first run's directory as it was.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from trtgen_export.checkpoint import write_checkpoint
from trtgen_export.tf_model import TacotronGST
from trtgen_export.train import SHIPPED_VOICE_CONFIG
from trtgen_export.train.batches import Batch, BatchSource
from trtgen_export.train.corpus import CorpusError, CorpusManifest, load_corpus
from trtgen_export.train.teacher_forcing import DECODER_LSTM_DROPOUT, dropout_masks, teacher_forced_decode
from trtgen_export.variables import random_weights
from trtgen.engine.config import ModelConfig, load_model_config, text_config_for, to_dict
from trtgen.engine.alignment import check_alignment

__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "HeldoutReport",
    "guided_attention_weights",
    "heldout_check",
    "latest_checkpoint",
    "train",
    "main",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "train_config.json"
PROGRESS_FILE = "progress.jsonl"
CHECKPOINT_NAME = "model.ckpt"
BETA1_POWER = "Loss_Optimization/beta1_power"
BETA2_POWER = "Loss_Optimization/beta2_power"
LOSS_TERMS = ("mel_before", "mel_after", "magnitude", "stop", "guide")
GUIDE_ANCHORS = ("eos", "speech_end")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; written to ``<out>/train_config.json``."""

    corpus: str
    """A finished espeak-ng corpus (``trtgen_export.train.corpus``)."""
    out: str
    """Run directory: checkpoints, train_config.json, progress.jsonl."""
    model_config: str = SHIPPED_VOICE_CONFIG
    """Model preset or JSON file (``trtgen.engine.config.load_model_config``)."""
    batch_size: int = 32
    seed: int = 0
    """Seeds the initial weights, the batch order and the dropout stream."""
    minutes: float = 60.0
    """Wall-clock budget of this invocation's training loop (tracing included, final check excluded)."""
    max_steps: int | None = None
    """Stop at this global step (counted over resumes) even if time is left."""
    learning_rate: float = 1e-3
    lr_decay_start: int = 1500
    """Constant rate until this step, then halved every ``lr_half_life`` steps, floored at ``min_learning_rate``."""
    lr_half_life: int = 1500
    min_learning_rate: float = 1e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-6
    grad_clip_norm: float = 1.0
    guide_sigma: float = 0.2
    guide_weight: float = 2.0
    """Guided-attention weight until ``guide_switch_step``; ``guide_weight_after`` from then on."""
    guide_weight_after: float = 1.0
    guide_switch_step: int = 1500
    guide_anchor: str = "eos"
    """Where the guided-attention diagonal ends: ``"eos"`` (last step, on ``</s>``) or ``"speech_end"``
    (last speech step, on the last letter or digit; see the module docstring)."""
    stop_pos_weight: float = 5.0
    magnitude_epsilon: float = 0.01
    postnet_crop_frames: int | None = 192
    """Postnet and magnitude losses on a random window of this many frames per utterance (None: whole
    utterances). Saves ~15% of a training step on this CPU; see ``_postnet_crop``."""
    eos_frames: bool = True
    """Pad every target with OpenSeq2Seq's 2..9 end-of-sequence frames (silence, stop target 1); see
    :class:`~trtgen_export.train.batches.BatchSource`."""
    init_from: str | None = None
    """Warm start: a checkpoint whose weights, Adam state and global_step a fresh run directory starts
    from (ignored once the run directory has a checkpoint of its own)."""
    max_frames: int | None = None
    """Leave out longer training utterances (None keeps all; the corpus tops out near 900 frames)."""
    bucket_jitter: float = 0.1
    checkpoint_minutes: float = 10.0
    log_every: int = 10
    heldout_sentences: int = 20
    """Held-out sentences (x every voice) decoded free-running at each checkpoint and at the end."""
    heldout_batch: int = 40
    heldout_seed: int = 1234
    """Seed of the prenet dropout (rate = the model's prenet_dropout) in the held-out decode."""

    def learning_rate_at(self, step: int) -> float:
        if step < self.lr_decay_start:
            return self.learning_rate
        decayed = self.learning_rate * 0.5 ** ((step - self.lr_decay_start) / self.lr_half_life)
        return max(decayed, self.min_learning_rate)

    def guide_weight_at(self, step: int) -> float:
        return self.guide_weight if step < self.guide_switch_step else self.guide_weight_after

    def validate(self) -> None:
        problems = []
        if self.batch_size < 1:
            problems.append("batch_size must be >= 1")
        if self.minutes <= 0:
            problems.append("minutes must be > 0")
        if self.max_steps is not None and self.max_steps < 0:
            problems.append("max_steps must be >= 0")
        if self.learning_rate <= 0 or self.min_learning_rate <= 0:
            problems.append("learning rates must be > 0")
        if self.lr_decay_start < 0 or self.lr_half_life < 1:
            problems.append("lr_decay_start must be >= 0 and lr_half_life >= 1")
        if self.grad_clip_norm <= 0:
            problems.append("grad_clip_norm must be > 0")
        if self.guide_sigma <= 0:
            problems.append("guide_sigma must be > 0")
        if self.guide_anchor not in GUIDE_ANCHORS:
            problems.append(f"guide_anchor must be one of {', '.join(GUIDE_ANCHORS)}, not {self.guide_anchor!r}")
        if self.checkpoint_minutes <= 0:
            problems.append("checkpoint_minutes must be > 0")
        if self.log_every < 1:
            problems.append("log_every must be >= 1")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    def model(self) -> ModelConfig:
        return load_model_config(self.model_config)


# ----------------------------------------------------------------------------------------------------------
# Graph pieces


def guided_attention_weights(num_steps: tf.Tensor, step_scale: tf.Tensor, num_symbols: tf.Tensor, symbol_scale: tf.Tensor, sigma: float) -> tf.Tensor:
    """Penalty ``1 - exp(-(n/N - s/S)^2 / (2 g^2))`` [B, steps, symbols], with each item's own S and N.

    The diagonal passes through (step 0, symbol 0) and (S, N): with S the step count and N the content
    length (through ``</s>``) it ends on ``</s>``, not on the padding (``guide_anchor="eos"``); with S the
    last speech step and N the last letter it reaches the last letter as the speech ends (``"speech_end"``).
    """
    s = tf.cast(tf.range(num_steps), tf.float32)[None, :, None] / tf.cast(step_scale, tf.float32)[:, None, None]
    n = tf.cast(tf.range(num_symbols), tf.float32)[None, None, :] / tf.cast(symbol_scale, tf.float32)[:, None, None]
    return 1.0 - tf.exp(-tf.square(n - s) / (2.0 * sigma * sigma))


def _masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of ``values`` over positions where ``mask`` (broadcast to it) is 1."""
    mask = tf.broadcast_to(mask, tf.shape(values))
    return tf.reduce_sum(values * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


POSTNET_RADIUS = 14
"""Frames of context the postnet + magnitude branch reads on either side of an output frame (voice and
openseq2seq presets: 5 convs of k5 = 10, plus 2 convs of k4 = up to 4 after): the crop margin."""


def _postnet_crop(
    frames: tf.Tensor, mel: tf.Tensor, magnitude: tf.Tensor, mel_len: tf.Tensor, width: int, margin: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """A random window of ``width`` frames per item for the postnet and magnitude losses.

    Why: the postnet and the 401-bin magnitude branch are convolutions over every frame (about 15% of a
    step's CPU time at 192 of ~450 frames saved), and they are local (±14 frames), so a window trains them
    as the full utterance does.
    Frames within ``margin`` of a window edge that cuts into the utterance see zero padding instead of
    their real neighbours; they are left out of the loss, so every frame that counts is computed exactly
    as at inference (utterance edges keep their zero padding, as at inference). BatchNorm takes its batch
    moments over the windows.

    Returns (decoder frames, mel targets, magnitude targets, lengths, loss mask), all per window.
    """
    total = tf.shape(frames)[1]
    width_t = tf.minimum(tf.constant(width), total)
    room = tf.maximum(mel_len - width_t, 0)
    start = tf.cast(tf.floor(tf.random.uniform(tf.shape(mel_len)) * tf.cast(room + 1, tf.float32)), tf.int32)
    start = tf.minimum(start, room)
    positions = start[:, None] + tf.range(width_t)[None, :]  # [B, W]
    gather = tf.minimum(positions, total - 1)
    crop_len = tf.minimum(width_t, mel_len - start)
    inside = tf.range(width_t)[None, :]
    keep = inside < crop_len[:, None]
    keep &= (start[:, None] == 0) | (inside >= margin)
    keep &= (start[:, None] + width_t >= mel_len[:, None]) | (inside < width_t - margin)
    take = lambda x: tf.gather(x, gather, batch_dims=1)  # noqa: E731
    return take(frames), take(mel), take(magnitude), crop_len, tf.cast(keep, tf.float32)


def compute_losses(model: TacotronGST, batch: dict[str, tf.Tensor], train: TrainConfig, training: bool = True) -> dict[str, tf.Tensor]:
    """The loss terms of one batch (see the module docstring)."""
    c = model.config
    r = c.reduction_factor
    style = model.encode_style(batch["style_mel"], batch["style_len"], training=training)
    text = model.encode_text(batch["text_ids"], batch["text_len"], training=training)
    memory, keys, mask = model.attention_memory(text, style, batch["text_len"])
    steps = tf.shape(batch["mel"])[1] // r
    size = tf.shape(batch["mel"])[0]
    prenet_masks = dropout_masks(steps, size, c.prenet_units, c.prenet_dropout)
    lstm_masks = dropout_masks(steps, size, [c.decoder_lstm_units] * c.decoder_lstm_layers, DECODER_LSTM_DROPOUT) if training else None
    decoded = teacher_forced_decode(model, memory, keys, mask, batch["mel"], prenet_masks, lstm_masks)
    mel, mel_len = batch["mel"], batch["mel_len"]
    frames = tf.shape(mel)[1]
    frame_mask = tf.sequence_mask(mel_len, frames, dtype=tf.float32)
    losses = {"mel_before": _masked_mean(tf.abs(decoded["frames"] - mel), frame_mask[..., None])}
    if train.postnet_crop_frames is None:
        post_in, post_mel, post_magnitude, post_len, post_mask = decoded["frames"], mel, batch["magnitude"], mel_len, frame_mask
    else:
        post_in, post_mel, post_magnitude, post_len, post_mask = _postnet_crop(
            decoded["frames"], mel, batch["magnitude"], mel_len, train.postnet_crop_frames, POSTNET_RADIUS
        )
    mel_final, magnitude = model.postnet(post_in, post_len, training=training)
    losses["mel_after"] = _masked_mean(tf.abs(mel_final - post_mel), post_mask[..., None])
    eps = train.magnitude_epsilon
    log_error = tf.abs(tf.math.log(tf.nn.relu(magnitude) + eps) - tf.math.log(post_magnitude + eps))
    losses["magnitude"] = _masked_mean(log_error + tf.nn.relu(-magnitude), post_mask[..., None])
    # Stop: 1 from the first EOS frame on, through each item's whole last decoder step.
    step_len = (mel_len + r - 1) // r
    index = tf.range(frames)[None, :]
    stop_target = tf.cast(index >= batch["stop_from"][:, None], tf.float32)
    stop_mask = tf.sequence_mask(step_len * r, frames, dtype=tf.float32)
    stop_bce = tf.nn.weighted_cross_entropy_with_logits(stop_target, decoded["stop_logits"], train.stop_pos_weight)
    losses["stop"] = _masked_mean(stop_bce, stop_mask)
    alignments = decoded["alignments"]
    shape = tf.shape(alignments)
    if train.guide_anchor == "speech_end":
        step_scale = tf.maximum((batch["speech_len"] - 1) // r, 1)
        symbol_scale = tf.maximum(batch["last_letter"], 1)
    else:
        step_scale, symbol_scale = step_len, batch["content_len"]
    penalty = guided_attention_weights(shape[1], step_scale, shape[2], symbol_scale, train.guide_sigma)
    per_step = tf.reduce_sum(alignments * penalty, axis=-1)
    losses["guide"] = _masked_mean(per_step, tf.sequence_mask(step_len, shape[1], dtype=tf.float32))
    return losses


# ----------------------------------------------------------------------------------------------------------
# Trainer


def batch_signature(config: ModelConfig) -> dict[str, tf.TensorSpec]:
    """Input signature of the training step: ragged batch, length and time axes; static feature widths
    (the reference encoder needs the mel width at trace time)."""
    return {
        "text_ids": tf.TensorSpec([None, None], tf.int64),
        "text_len": tf.TensorSpec([None], tf.int32),
        "content_len": tf.TensorSpec([None], tf.int32),
        "last_letter": tf.TensorSpec([None], tf.int32),
        "speech_len": tf.TensorSpec([None], tf.int32),
        "mel": tf.TensorSpec([None, None, config.num_mels], tf.float32),
        "mel_len": tf.TensorSpec([None], tf.int32),
        "stop_from": tf.TensorSpec([None], tf.int32),
        "magnitude": tf.TensorSpec([None, None, config.num_freq], tf.float32),
        "style_mel": tf.TensorSpec([None, None, config.num_mels], tf.float32),
        "style_len": tf.TensorSpec([None], tf.int32),
    }


def batch_tensors(batch: Batch) -> dict[str, tf.Tensor]:
    return {name: tf.convert_to_tensor(getattr(batch, name)) for name in batch_signature(ModelConfig())}


class Trainer:
    """A model, its Adam state and the compiled training step.

    Adam is TF1's (``tf.raw_ops.ResourceApplyAdam``, epsilon-hat form) so that the state maps one to one
    onto the slots an OpenSeq2Seq checkpoint holds.
    """

    def __init__(self, model_config: ModelConfig, train: TrainConfig, weights: dict[str, np.ndarray] | None = None) -> None:
        self.config = model_config
        self.train = train
        if weights is None:
            weights = random_weights(model_config, train.seed, stop_never_fires=False)
        self.model = TacotronGST(model_config, weights, trainable=True)
        self.names = [n for n, v in self.model.variables_by_name.items() if v.trainable]
        self.variables = [self.model.variables_by_name[n] for n in self.names]
        self.slots_m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        self.slots_v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        self.beta1_power = tf.Variable(train.adam_beta1, dtype=tf.float32, trainable=False)
        self.beta2_power = tf.Variable(train.adam_beta2, dtype=tf.float32, trainable=False)
        self.global_step = 0
        self._step_fn = tf.function(self._train_step, input_signature=[batch_signature(model_config), tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.float32)])

    def _train_step(self, batch: dict[str, tf.Tensor], guide_weight: tf.Tensor, learning_rate: tf.Tensor) -> dict[str, tf.Tensor]:
        t = self.train
        with tf.GradientTape() as tape:
            losses = compute_losses(self.model, batch, t, training=True)
            total = losses["mel_before"] + losses["mel_after"] + losses["magnitude"] + losses["stop"] + guide_weight * losses["guide"]
        grads = tape.gradient(total, self.variables)
        grads = [tf.convert_to_tensor(g) for g in grads]
        clipped, norm = tf.clip_by_global_norm(grads, t.grad_clip_norm)
        for var, m, v, g in zip(self.variables, self.slots_m, self.slots_v, clipped):
            tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=m.handle, v=v.handle,
                beta1_power=self.beta1_power, beta2_power=self.beta2_power,
                lr=learning_rate, beta1=t.adam_beta1, beta2=t.adam_beta2, epsilon=t.adam_epsilon, grad=g,
            )  # fmt: skip
        # TF1 Adam multiplies the powers after the update (they start at beta, not 1).
        self.beta1_power.assign(self.beta1_power * t.adam_beta1)
        self.beta2_power.assign(self.beta2_power * t.adam_beta2)
        return {**losses, "total": total, "grad_norm": norm}

    def step(self, batch: Batch) -> dict[str, float]:
        """One optimiser step on ``batch``; returns the loss terms (before the update) as floats."""
        out = self._step_fn(
            batch_tensors(batch),
            tf.constant(self.train.guide_weight_at(self.global_step), tf.float32),
            tf.constant(self.train.learning_rate_at(self.global_step), tf.float32),
        )
        self.global_step += 1
        return {k: float(v) for k, v in out.items()}

    # -------------------------------------------------------------- checkpoints
    def optimizer_state(self) -> dict[str, np.ndarray]:
        state = {}
        for name, m, v in zip(self.names, self.slots_m, self.slots_v):
            state[name + "/Adam"] = m.numpy()
            state[name + "/Adam_1"] = v.numpy()
        state[BETA1_POWER] = np.asarray(self.beta1_power.numpy(), np.float32)
        state[BETA2_POWER] = np.asarray(self.beta2_power.numpy(), np.float32)
        return state

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write ``model.ckpt-<step>`` (weights, Adam slots, global_step) and return its prefix."""
        prefix = Path(out_dir) / f"{CHECKPOINT_NAME}-{self.global_step}"
        return write_checkpoint(self.model.weight_dict(), prefix, global_step=self.global_step, extra=self.optimizer_state())

    def restore(self, prefix: str | os.PathLike[str]) -> None:
        """Load weights, BN statistics, Adam state and global_step from a checkpoint :meth:`save` wrote.

        A checkpoint without Adam slots (e.g. a converted OpenSeq2Seq one) starts a fresh optimiser.
        """
        reader = tf.train.load_checkpoint(str(prefix))
        available = reader.get_variable_to_shape_map()
        for name, variable in self.model.variables_by_name.items():
            if name not in available:
                raise ValueError(f"{prefix}: checkpoint lacks {name}")
            variable.assign(reader.get_tensor(name))
        if all(n + "/Adam" in available for n in self.names) and BETA1_POWER in available:
            for name, m, v in zip(self.names, self.slots_m, self.slots_v):
                m.assign(reader.get_tensor(name + "/Adam"))
                v.assign(reader.get_tensor(name + "/Adam_1"))
            self.beta1_power.assign(reader.get_tensor(BETA1_POWER))
            self.beta2_power.assign(reader.get_tensor(BETA2_POWER))
        else:
            logger.warning("%s holds no Adam state: the optimiser starts fresh", prefix)
        self.global_step = int(reader.get_tensor("global_step")) if "global_step" in available else 0


def latest_checkpoint(out_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint named by the run directory's state file, or None."""
    path = tf.train.latest_checkpoint(str(out_dir))
    return Path(path) if path else None


# ----------------------------------------------------------------------------------------------------------
# Held-out check


@dataclass(frozen=True)
class HeldoutReport:
    """Free-running decode of held-out sentences, each voice styled by another held-out sentence of it."""

    items: int
    aligned: float
    """Fraction whose attention path passes ``trtgen eval``'s alignment check
    (:func:`trtgen.engine.alignment.check_alignment` with the default :class:`~trtgen.engine.alignment.AlignmentRule`)."""
    monotonic_covering: float
    """Fraction monotonic and reaching the last letter, whatever the step size."""
    mean_max_jump: float
    stopped: float
    """Fraction whose stop token fired before the 10 x text-length cap."""
    duration_r: float
    """Pearson r of decoded vs espeak-ng frames."""
    mean_frames: float
    mean_reference_frames: float
    frames_per_voice: dict[str, float]
    reference_frames_per_voice: dict[str, float]

    def line(self) -> str:
        voices = " ".join(f"{v}={self.frames_per_voice[v]:.0f}/{self.reference_frames_per_voice[v]:.0f}" for v in self.frames_per_voice)
        return (
            f"held-out x{self.items}: aligned {self.aligned:.0%} (monotonic+covering {self.monotonic_covering:.0%}, "
            f"mean max jump {self.mean_max_jump:.1f}), stopped {self.stopped:.0%}, duration r {self.duration_r:.3f}, "
            f"mean frames {self.mean_frames:.0f} (ref {self.mean_reference_frames:.0f}); per voice decoded/ref {voices}"
        )


def heldout_check(model: TacotronGST, manifest: CorpusManifest, train: TrainConfig) -> HeldoutReport:
    """Decode ``heldout_sentences`` x voices free-running (BN in inference mode, prenet dropout on at the
    model's training rate, seeded) and compare with the espeak-ng references."""
    c = model.config
    heldout = manifest.split("heldout")
    sentence_ids = sorted({u.sentence_id for u in heldout})[: max(2, train.heldout_sentences)]
    wanted = {s: i for i, s in enumerate(sentence_ids)}
    utterances = sorted((u for u in heldout if u.sentence_id in wanted), key=lambda u: (u.voice, wanted[u.sentence_id]))
    source = BatchSource(manifest, utterances, c.reduction_factor, text_config=text_config_for(c))
    position = {(u.voice, u.sentence_id): i for i, u in enumerate(source.utterances)}
    styles = [position[(u.voice, sentence_ids[(wanted[u.sentence_id] + 1) % len(sentence_ids)])] for u in source.utterances]
    decode = _decode_function(model, train.heldout_seed)
    lengths, stopped, paths = [], [], []
    for start in range(0, len(source), train.heldout_batch):
        idx = list(range(start, min(start + train.heldout_batch, len(source))))
        batch = source.batch(idx, [styles[i] for i in idx])
        out = decode(batch.text_ids, batch.text_len, batch.style_mel, batch.style_len)
        for row in range(batch.size):
            length = int(out["lengths"][row])
            steps = -(-length // c.reduction_factor)
            lengths.append(length)
            stopped.append(bool(out["stopped"][row]))
            eos = int(batch.content_len[row]) - 1
            paths.append(check_alignment(out["alignments"][row, :steps].numpy(), eos, end_index=int(batch.last_letter[row])))
    reference = np.array([u.num_frames for u in source.utterances], dtype=np.float64)
    decoded = np.array(lengths, dtype=np.float64)
    r_value = float(np.corrcoef(decoded, reference)[0, 1]) if decoded.std() > 0 else 0.0
    voices = [v for v in manifest.voices() if any(u.voice == v for u in source.utterances)]
    per_voice = {v: float(np.mean([d for d, u in zip(decoded, source.utterances) if u.voice == v])) for v in voices}
    per_voice_ref = {v: float(np.mean([u.num_frames for u in source.utterances if u.voice == v])) for v in voices}
    return HeldoutReport(
        items=len(source),
        aligned=float(np.mean([p.ok for p in paths])),
        monotonic_covering=float(np.mean([p.monotonic and p.reaches_end for p in paths])),
        mean_max_jump=float(np.mean([p.max_jump for p in paths])),
        stopped=float(np.mean(stopped)),
        duration_r=r_value,
        mean_frames=float(decoded.mean()),
        mean_reference_frames=float(reference.mean()),
        frames_per_voice=per_voice,
        reference_frames_per_voice=per_voice_ref,
    )


def _decode_function(model: TacotronGST, seed: int) -> Callable[..., dict[str, tf.Tensor]]:
    c = model.config

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int64),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, None, c.num_mels], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ]
    )
    def decode(text_ids: tf.Tensor, text_len: tf.Tensor, style_mel: tf.Tensor, style_len: tf.Tensor) -> dict[str, tf.Tensor]:
        style = model.encode_style(style_mel, style_len, training=False)
        text = model.encode_text(text_ids, text_len, training=False)
        memory, keys, _ = model.attention_memory(text, style, text_len)
        masks = model.prenet_masks_from(rate=c.prenet_dropout, seed=seed, batch=tf.shape(text_ids)[0])
        return model.decode(memory, keys, text_len, masks)

    return decode


# ----------------------------------------------------------------------------------------------------------
# The run


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    global_step: int
    steps_this_run: int
    seconds: float
    last_losses: dict[str, float]
    heldout: HeldoutReport | None


def _append_progress(out_dir: Path, record: dict[str, Any]) -> None:
    with open(out_dir / PROGRESS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _check_resume_config(out_dir: Path, train: TrainConfig) -> None:
    """Refuse to resume with settings that change the model or the batch order; note other changes."""
    path = out_dir / CONFIG_FILE
    if not path.is_file():
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    for key in ("model_config", "batch_size", "seed", "max_frames", "bucket_jitter", "eos_frames"):
        if old.get(key) != getattr(train, key):
            raise ValueError(f"{path}: cannot resume with {key}={getattr(train, key)!r}, the run used {old.get(key)!r}")
    changed = sorted(k for k, v in dataclasses.asdict(train).items() if k in old and old[k] != v)
    if changed:
        logger.info("resuming with changed settings: %s", ", ".join(changed))


def train(train_config: TrainConfig, *, heldout: bool = True) -> TrainResult:
    """Train (or resume) in ``train_config.out`` until the time or step budget is spent; see the module doc."""
    train_config.validate()
    model_config = train_config.model()
    out_dir = Path(train_config.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = load_corpus(train_config.corpus)
    tf.random.set_seed(train_config.seed)
    trainer = Trainer(model_config, train_config)
    resume_from = latest_checkpoint(out_dir)
    if resume_from is not None:
        _check_resume_config(out_dir, train_config)
        trainer.restore(resume_from)
        tf.random.set_seed(train_config.seed + trainer.global_step)
        logger.info("resumed from %s at step %d", resume_from, trainer.global_step)
    elif train_config.init_from is not None:
        trainer.restore(train_config.init_from)
        tf.random.set_seed(train_config.seed + trainer.global_step)
        logger.info("warm start from %s at step %d", train_config.init_from, trainer.global_step)
    (out_dir / CONFIG_FILE).write_text(
        json.dumps({**dataclasses.asdict(train_config), "model": to_dict(model_config)}, indent=2) + "\n", encoding="utf-8"
    )
    source = BatchSource(
        manifest, manifest.split("train"), model_config.reduction_factor, text_config=text_config_for(model_config), max_frames=train_config.max_frames, eos_frames=train_config.eos_frames
    )
    logger.info(
        "training %s on %d utterances (%d batches of %d per epoch), %.0f min budget, %d trainable values",
        model_config.name, len(source), source.batches_per_epoch(train_config.batch_size), train_config.batch_size,
        train_config.minutes, sum(int(np.prod(v.shape)) for v in trainer.variables),
    )  # fmt: skip
    batches = source.iterate(train_config.batch_size, train_config.seed, trainer.global_step, train_config.bucket_jitter)
    started = time.monotonic()
    deadline = started + 60.0 * train_config.minutes
    next_checkpoint = started + 60.0 * train_config.checkpoint_minutes
    window: list[dict[str, float]] = []
    window_start = time.monotonic()
    steps_this_run = 0
    last: dict[str, float] = {}
    checkpoint = resume_from
    while time.monotonic() < deadline and (train_config.max_steps is None or trainer.global_step < train_config.max_steps):
        batch = next(batches)
        last = trainer.step(batch)
        last["frames"] = float(batch.frames)
        steps_this_run += 1
        if not all(math.isfinite(last[k]) for k in ("total", "grad_norm")):
            raise FloatingPointError(f"step {trainer.global_step}: non-finite loss {last}")
        window.append(last)
        if trainer.global_step % train_config.log_every == 0:
            elapsed = time.monotonic() - window_start
            mean = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
            logger.info(
                "step %d  %s  total %.3f  |g| %.2f  lr %.2g  %.2f s/step (%.0f frames)  %.1f min",
                trainer.global_step, "  ".join(f"{k} {mean[k]:.3f}" for k in LOSS_TERMS), mean["total"], mean["grad_norm"],
                train_config.learning_rate_at(trainer.global_step), elapsed / len(window), mean["frames"], (time.monotonic() - started) / 60,
            )  # fmt: skip
            _append_progress(out_dir, {"step": trainer.global_step, "minutes": (time.monotonic() - started) / 60, "s_per_step": elapsed / len(window), **mean})
            window, window_start = [], time.monotonic()
        if time.monotonic() >= next_checkpoint:
            checkpoint = trainer.save(out_dir)
            if heldout:
                report = heldout_check(trainer.model, manifest, train_config)
                logger.info("step %d %s", trainer.global_step, report.line())
                _append_progress(out_dir, {"step": trainer.global_step, "minutes": (time.monotonic() - started) / 60, "heldout": dataclasses.asdict(report)})
            next_checkpoint = time.monotonic() + 60.0 * train_config.checkpoint_minutes
            window_start = time.monotonic()
    seconds = time.monotonic() - started
    if steps_this_run or checkpoint is None:
        checkpoint = trainer.save(out_dir)
    logger.info("stopped at step %d after %.1f min (%d steps this run); checkpoint %s", trainer.global_step, seconds / 60, steps_this_run, checkpoint)
    report = None
    if heldout:
        report = heldout_check(trainer.model, manifest, train_config)
        logger.info("final %s", report.line())
        _append_progress(out_dir, {"step": trainer.global_step, "minutes": seconds / 60, "heldout": dataclasses.asdict(report), "final": True})
    return TrainResult(checkpoint, trainer.global_step, steps_this_run, seconds, last, report)


def _parse(argv: Sequence[str] | None) -> tuple[TrainConfig, bool]:
    defaults = TrainConfig(corpus="", out="")
    parser = argparse.ArgumentParser(prog="python -m trtgen_export.train.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, help="finished espeak-ng corpus directory")
    parser.add_argument("--out", required=True, help="run directory (resumes from its latest checkpoint)")
    parser.add_argument("--config", default=defaults.model_config, help=f"model preset or JSON (default: {defaults.model_config}, the shipped voice's)")
    parser.add_argument("--minutes", type=float, default=defaults.minutes, help="training wall-time budget of this invocation")
    parser.add_argument("--steps", type=int, default=None, help="stop at this global step")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--min-learning-rate", type=float, default=defaults.min_learning_rate, help="floor of the decayed learning rate")
    parser.add_argument("--lr-decay-start", type=int, default=defaults.lr_decay_start, help="constant learning rate until this global step")
    parser.add_argument("--lr-half-life", type=int, default=defaults.lr_half_life, help="then halved every this many steps")
    parser.add_argument("--guide-switch-step", type=int, default=defaults.guide_switch_step, help="guided-attention weight drops to --guide-weight-after here")
    parser.add_argument("--checkpoint-minutes", type=float, default=defaults.checkpoint_minutes)
    parser.add_argument("--max-frames", type=int, default=None, help="leave out longer training utterances (400: the first phase of the 50-minute recipe)")
    parser.add_argument("--no-eos-frames", action="store_true", help="no end-of-sequence frames: stop target on the last speech frame")
    parser.add_argument("--guide-anchor", choices=GUIDE_ANCHORS, default=defaults.guide_anchor, help="where the guided-attention diagonal ends (see the module docstring)")
    parser.add_argument("--guide-weight-after", type=float, default=defaults.guide_weight_after, help="guided-attention weight from guide_switch_step on")
    parser.add_argument("--init-from", default=None, help="warm start a new run directory from this checkpoint (weights, Adam, step)")
    parser.add_argument("--log-every", type=int, default=defaults.log_every)
    parser.add_argument("--heldout-sentences", type=int, default=defaults.heldout_sentences)
    parser.add_argument("--no-heldout", action="store_true", help="skip the held-out decode at checkpoints and at the end")
    args = parser.parse_args(argv)
    config = TrainConfig(
        corpus=args.corpus,
        out=args.out,
        model_config=args.config,
        batch_size=args.batch_size,
        seed=args.seed,
        minutes=args.minutes,
        max_steps=args.steps,
        learning_rate=args.learning_rate,
        min_learning_rate=args.min_learning_rate,
        lr_decay_start=args.lr_decay_start,
        lr_half_life=args.lr_half_life,
        guide_switch_step=args.guide_switch_step,
        checkpoint_minutes=args.checkpoint_minutes,
        max_frames=args.max_frames,
        eos_frames=not args.no_eos_frames,
        guide_anchor=args.guide_anchor,
        guide_weight_after=args.guide_weight_after,
        init_from=args.init_from,
        log_every=args.log_every,
        heldout_sentences=args.heldout_sentences,
    )
    return config, not args.no_heldout


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config, heldout = _parse(argv)
    try:
        result = train(config, heldout=heldout)
    except (ValueError, FileNotFoundError, FloatingPointError, CorpusError) as exc:
        logger.error("%s", exc)
        return 1
    print(json.dumps({"checkpoint": str(result.checkpoint), "global_step": result.global_step, "minutes": result.seconds / 60, "losses": result.last_losses}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
