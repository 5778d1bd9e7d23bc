"""Training batches from the espeak-ng corpus: length buckets, padding, and a resumable order.

Why buckets: the teacher-forced decoder runs one step per ``reduction_factor`` frames, so a batch
costs as much as its longest utterance; batching utterances of similar length wastes little time on
padding. The order is a pure function of (seed, epoch), so a resumed run recomputes the batch that
comes after its checkpoint's ``global_step`` instead of storing a data-loader state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from trtgen_export.train.corpus import CorpusManifest, Utterance
from trtgen.engine.audio import MAGNITUDE_FLOOR, pad_style_batch, pad_style_frames
from trtgen.engine.config import AudioConfig, TextConfig
from trtgen.engine.text import TextEncoder, last_spoken_index, pad_batch

__all__ = ["Batch", "BatchSource", "bucket_order", "content_length"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    """One padded training batch; frame axes are padded to a multiple of the reduction factor."""

    ids: tuple[str, ...]
    text_ids: np.ndarray
    """[B, N] int64, ``<p>``-padded (OpenSeq2Seq ids: ``<s>`` text ``</s>`` pads)."""
    text_len: np.ndarray
    """[B] int32: each item's own padded length (OpenSeq2Seq's ``text_len``)."""
    content_len: np.ndarray
    """[B] int32: symbols up to and including ``</s>`` (the ``"eos"`` guided-attention diagonal ends there)."""
    last_letter: np.ndarray
    """[B] int32 position of the last letter or digit (:func:`trtgen.engine.text.last_spoken_index`): where the
    ``"speech_end"`` guided-attention diagonal is on the last speech frame."""
    speech_len: np.ndarray
    """[B] int32 speech frames, before the EOS frames."""
    mel: np.ndarray
    """[B, T, 80] float32 log mel; ``ln(log_floor)`` beyond each item's speech (EOS frames, then batch padding)."""
    mel_len: np.ndarray
    """[B] int32 target frames of each item: speech plus its EOS frames (OpenSeq2Seq's ``spec_len``)."""
    stop_from: np.ndarray
    """[B] int32 first frame whose stop target is 1: the first EOS frame (the last speech frame without them)."""
    magnitude: np.ndarray
    """[B, T, 401] float32 linear magnitude, ``MAGNITUDE_FLOOR`` beyond each item's frames."""
    style_mel: np.ndarray
    """[B, Ts, 80] float32: the reference clip with OpenSeq2Seq's end padding, zeros past it (docs/openseq2seq-notes.md §3)."""
    style_len: np.ndarray
    """[B] int32 padded style lengths."""

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def frames(self) -> int:
        """Padded frame length (decoder steps x reduction factor)."""
        return int(self.mel.shape[1])


def content_length(ids: np.ndarray, eos_id: int) -> int:
    """Position after ``</s>``: the symbols the decoder must read (pads after it carry no sound)."""
    hits = np.flatnonzero(np.asarray(ids) == eos_id)
    return int(hits[0]) + 1 if hits.size else int(len(ids))


def bucket_order(lengths: Sequence[int], batch_size: int, seed: int, epoch: int, jitter: float = 0.1) -> list[np.ndarray]:
    """Batches of indices for one epoch: sort by (jittered) length, chunk, shuffle the chunks.

    The jitter (a random factor in ``1 ± jitter`` on each length) changes which neighbours share a
    batch from epoch to epoch while keeping the padding small. Only full batches are returned, so
    every epoch has ``len(lengths) // batch_size`` of them (what resume arithmetic relies on).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    count = len(lengths)
    if count < batch_size:
        raise ValueError(f"{count} utterances cannot fill one batch of {batch_size}")
    rng = np.random.default_rng([seed, epoch])
    keys = np.asarray(lengths, dtype=np.float64) * rng.uniform(1.0 - jitter, 1.0 + jitter, count)
    order = np.argsort(keys, kind="stable")
    num_batches = count // batch_size
    # Drop a random handful (not always the longest) when the count is not a multiple of the batch.
    start = int(rng.integers(0, count - num_batches * batch_size + 1))
    chunks = [order[start + i * batch_size : start + (i + 1) * batch_size] for i in range(num_batches)]
    permutation = rng.permutation(num_batches)
    return [chunks[i] for i in permutation]


class BatchSource:
    """Pads utterances of a corpus into :class:`Batch` es (features read from the memory maps).

    Args:
        manifest: a finished corpus (``load_corpus``).
        utterances: the utterances this source draws from (e.g. ``manifest.split("train")``).
        reduction_factor: frames per decoder step; frame axes are padded to a multiple of it.
        max_frames: utterances longer than this are left out (None keeps all).
        eos_frames: append OpenSeq2Seq's end-of-sequence frames to every target (docs/openseq2seq-notes.md §3, ``pad_EOS``):
            2..9 frames of ``ln(log_floor)`` mel and ``MAGNITUDE_FLOOR`` magnitude, the stop target 1 on
            all of them. The decoder learns to emit silence after the speech and the stop token (a linear
            function of the frame, docs/openseq2seq-notes.md §5.2) fires on that silence; without them it must fire on the last
            speech frame, which looks like any quiet frame inside a sentence.
    """

    def __init__(
        self,
        manifest: CorpusManifest,
        utterances: Sequence[Utterance],
        reduction_factor: int,
        *,
        text_config: TextConfig | None = None,
        audio: AudioConfig | None = None,
        max_frames: int | None = None,
        eos_frames: bool = True,
    ) -> None:
        self.manifest = manifest
        self.text_config = text_config or TextConfig()
        self.audio = audio or manifest.settings.audio
        self.reduction_factor = reduction_factor
        self.eos_frames = eos_frames
        kept = [u for u in utterances if max_frames is None or u.num_frames <= max_frames]
        if len(kept) < len(utterances):
            logger.info("left out %d utterances longer than %d frames", len(utterances) - len(kept), max_frames)
        if not kept:
            raise ValueError("no utterances to train on")
        self.utterances: list[Utterance] = kept
        encoder = TextEncoder(self.text_config)
        self._ids = [encoder.encode(u.text) for u in kept]
        self._features: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def lengths(self) -> list[int]:
        return [u.num_frames for u in self.utterances]

    def _rows(self, utterance: Utterance) -> tuple[np.ndarray, np.ndarray]:
        if utterance.voice not in self._features:
            self._features[utterance.voice] = self.manifest.open_features(utterance.voice)
        log_mel, magnitude = self._features[utterance.voice]
        rows = slice(utterance.frame_offset, utterance.frame_offset + utterance.num_frames)
        return np.asarray(log_mel[rows], dtype=np.float32), np.asarray(magnitude[rows], dtype=np.float32)

    def batch(self, indices: Sequence[int], style_indices: Sequence[int] | None = None) -> Batch:
        """Pad the utterances at ``indices``; each one's style clip is itself unless ``style_indices``
        names another utterance per item (the held-out check styles with a different sentence)."""
        indices = [int(i) for i in indices]
        style_indices = indices if style_indices is None else [int(i) for i in style_indices]
        if len(style_indices) != len(indices):
            raise ValueError("style_indices must give one style utterance per item")
        r = self.reduction_factor
        features = [self._rows(self.utterances[i]) for i in indices]
        speech_len = np.array([m.shape[0] for m, _ in features], dtype=np.int32)
        if self.eos_frames:
            # The same rule as the style clip's end padding (DL L494-525): the total is a multiple of 8.
            targets = [(pad_style_frames(m, self.audio), g) for m, g in features]
            stop_from = speech_len
        else:
            targets = features
            stop_from = speech_len - 1
        mel_len = np.array([m.shape[0] for m, _ in targets], dtype=np.int32)
        frames = int(-(-mel_len.max() // r) * r)
        floor = np.float32(np.log(self.audio.log_floor))
        mel = np.full((len(indices), frames, self.audio.num_mels), floor, dtype=np.float32)
        magnitude = np.full((len(indices), frames, self.audio.num_freq), np.float32(MAGNITUDE_FLOOR), dtype=np.float32)
        for row, (m, g) in enumerate(targets):
            mel[row, : m.shape[0]] = m
            magnitude[row, : g.shape[0]] = np.maximum(g, np.float32(MAGNITUDE_FLOOR))
        own = {index: mel_rows for index, (mel_rows, _) in zip(indices, features)}
        style_mels = [pad_style_frames(own[s] if s in own else self._rows(self.utterances[s])[0], self.audio) for s in style_indices]
        style_mel, style_len = pad_style_batch(style_mels)
        text_ids, text_len = pad_batch([self._ids[i] for i in indices], pad_id=self.text_config.pad_id)
        content = [content_length(self._ids[i], self.text_config.eos_id) for i in indices]
        return Batch(
            ids=tuple(self.utterances[i].id for i in indices),
            text_ids=text_ids.astype(np.int64),
            text_len=text_len.astype(np.int32),
            content_len=np.asarray(content, dtype=np.int32),
            last_letter=np.asarray([last_spoken_index(self._ids[i], self.text_config) for i in indices], dtype=np.int32),
            speech_len=speech_len,
            mel=mel,
            mel_len=mel_len,
            stop_from=stop_from.astype(np.int32),
            magnitude=magnitude,
            style_mel=style_mel,
            style_len=style_len.astype(np.int32),
        )

    def batches_per_epoch(self, batch_size: int) -> int:
        return len(self) // batch_size

    def iterate(self, batch_size: int, seed: int, start_step: int = 0, jitter: float = 0.1) -> Iterator[Batch]:
        """Endless batches in bucketed order, starting at global step ``start_step`` (resume)."""
        per_epoch = self.batches_per_epoch(batch_size)
        if per_epoch < 1:
            raise ValueError(f"{len(self)} utterances cannot fill one batch of {batch_size}")
        epoch, position = divmod(start_step, per_epoch)
        while True:
            order = bucket_order(self.lengths, batch_size, seed, epoch, jitter)
            for indices in order[position:]:
                yield self.batch(indices)
            epoch, position = epoch + 1, 0
