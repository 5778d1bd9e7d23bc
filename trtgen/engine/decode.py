"""The batched autoregressive decode loop: Python drives it, the runtime does the steps.

Each call of the ``decoder_chunk`` graph runs K decoder steps inside the runtime (K copies of the
decoder step chained in one ONNX graph by ``trtgen_export.onnx_export.build_decoder_chunk``, or the
TensorRT engine built from it); this Python loop runs once per chunk to check stops and to refill slots.
Utterances are decoded in slots: when one stops (or reaches its own cap of 10 x text_len frames) its
slot is refilled with the next utterance at once, so the batch stays full of useful work; when no work
is left the batch shrinks. Prenet dropout masks come from :mod:`trtgen.engine.randomness`, keyed by
utterance and step, so an utterance decodes the same whatever its batch neighbours.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

from trtgen.engine.artifact import ModelCard
from trtgen.engine.backends.base import GraphRunner
from trtgen.engine.randomness import keep_masks

logger = logging.getLogger(__name__)

__all__ = ["DecodeRequest", "DecodedUtterance", "DecodeStats", "ChunkedDecoder", "step_cap"]


def step_cap(text_len: int, max_frames_per_symbol: int, reduction_factor: int) -> int:
    """Decoder steps allowed for one utterance: OpenSeq2Seq's 10 x text_len frames, per item."""
    return -(-max_frames_per_symbol * int(text_len) // reduction_factor)


@dataclass
class DecodeRequest:
    """One utterance ready to decode: its encoder memory (trimmed to its own text length)."""

    index: int
    """Caller's handle, returned with the result."""
    memory: Any
    memory_keys: Any
    prenet_key: int
    """64-bit key of the utterance's dropout stream (:func:`trtgen.engine.randomness.utterance_key`)."""
    dropout: float

    @property
    def text_len(self) -> int:
        return int(self.memory.shape[0])


@dataclass
class DecodedUtterance:
    index: int
    frames: Any
    """[num_frames, num_mels] decoder output before the postnet (includes the stop frame)."""
    stopped: bool
    """The stop token fired; otherwise the utterance reached its cap."""
    steps: int
    alignment: np.ndarray | None = None
    """[steps, text_len] attention weights, when requested."""
    attention_path: np.ndarray | None = None
    """[steps] the symbol each step attended most (int32): what the quality gate checks, kept for every
    utterance (:func:`trtgen.engine.alignment.check_path`)."""
    attention_peak: np.ndarray | None = None
    """[steps] that symbol's attention weight (float32)."""

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


@dataclass
class DecodeStats:
    chunks: int = 0
    slot_steps: int = 0
    """Decoder steps computed, summed over batch rows."""
    useful_steps: int = 0
    """Steps each utterance needed (up to its stop or cap)."""
    attention_positions: int = 0
    """Encoder positions attended, summed over computed steps (padding included; with an attention
    window, the window's positions whatever the text's length)."""
    useful_attention_positions: int = 0
    utterances: int = 0
    runtime_seconds: float = 0.0
    """Time inside the runtime's decoder calls."""
    host_seconds: float = 0.0
    """Python time of the loop around those calls: masks, stop checks, frame copies, refills."""

    @property
    def wasted_fraction(self) -> float:
        """Share of computed decoder steps spent on finished or empty rows."""
        return 1.0 - self.useful_steps / self.slot_steps if self.slot_steps else 0.0

    @property
    def padding_fraction(self) -> float:
        """Share of attention positions that were padding beyond an utterance's own text."""
        if not self.attention_positions:
            return 0.0
        return 1.0 - self.useful_attention_positions / self.attention_positions

    def merge(self, other: DecodeStats) -> None:
        self.chunks += other.chunks
        self.slot_steps += other.slot_steps
        self.useful_steps += other.useful_steps
        self.attention_positions += other.attention_positions
        self.useful_attention_positions += other.useful_attention_positions
        self.utterances += other.utterances
        self.runtime_seconds += other.runtime_seconds
        self.host_seconds += other.host_seconds

    @property
    def host_overhead(self) -> float:
        """Host time as a share of the decode loop's time."""
        total = self.runtime_seconds + self.host_seconds
        return self.host_seconds / total if total else 0.0


class _Slots:
    """Device arrays of the rows being decoded, plus host bookkeeping per row."""

    def __init__(self, decoder: ChunkedDecoder, rows: int, time: int, frame_capacity: int) -> None:
        xp, card = decoder.xp, decoder.card
        c = card.model
        self.xp = xp
        self.time = time
        self.frame_capacity = frame_capacity
        self.memory = xp.zeros((rows, time, c.memory_dim), xp.float32)
        self.memory_keys = xp.zeros((rows, time, c.attention_dim), xp.float32)
        self.memory_mask = xp.zeros((rows, time), xp.float32)
        self.state = {s.name: xp.zeros(card.state_shape(s.name, rows, time), xp.float32) for s in card.decoder_state}
        self.text_time_states = card.text_time_states
        self.frames = xp.zeros((rows, frame_capacity, c.num_mels), xp.float32)
        self.request: list[DecodeRequest | None] = [None] * rows
        self.steps = np.zeros(rows, np.int64)
        self.cap = np.zeros(rows, np.int64)
        self.text_len = np.zeros(rows, np.int64)
        self.keys = np.zeros(rows, np.uint64)
        self.rates = np.zeros(rows, np.float32)
        self.alignments: list[list[np.ndarray]] = [[] for _ in range(rows)]
        self.reduction = c.reduction_factor
        self.path = np.zeros((rows, frame_capacity // self.reduction), np.int32)
        """Per row and decoder step, the symbol attended most (host; written a chunk at a time like ``frames``)."""
        self.peak = np.zeros((rows, frame_capacity // self.reduction), np.float32)

    @property
    def rows(self) -> int:
        return len(self.request)

    def place(self, row: int, request: DecodeRequest, cap: int) -> None:
        n = request.text_len
        self.memory[row] = 0.0
        self.memory[row, :n] = request.memory
        self.memory_keys[row] = 0.0
        self.memory_keys[row, :n] = request.memory_keys
        self.memory_mask[row] = 0.0
        self.memory_mask[row, :n] = 1.0
        for array in self.state.values():
            array[row] = 0.0
        self.request[row] = request
        self.steps[row] = 0
        self.cap[row] = cap
        self.text_len[row] = n
        self.keys[row] = np.uint64(request.prenet_key)
        self.rates[row] = request.dropout
        self.alignments[row] = []

    def keep(self, rows: np.ndarray) -> None:
        """Drop every row not in ``rows`` (the batch shrinks when no work is left)."""
        index = self.xp.asarray(rows)
        self.memory = self.memory[index]
        self.memory_keys = self.memory_keys[index]
        self.memory_mask = self.memory_mask[index]
        self.state = {name: array[index] for name, array in self.state.items()}
        self.frames = self.frames[index]
        self.request = [self.request[i] for i in rows]
        self.alignments = [self.alignments[i] for i in rows]
        self.path = self.path[rows]
        self.peak = self.peak[rows]
        for name in ("steps", "cap", "text_len", "keys", "rates"):
            setattr(self, name, getattr(self, name)[rows])

    def resize_time(self, time: int) -> None:
        """Grow or shrink the encoder-time axis (padding is zero, so values are unchanged)."""
        xp = self.xp

        def fit(array: Any, axis: int) -> Any:
            current = array.shape[axis]
            if time <= current:
                return xp.ascontiguousarray(array[(slice(None),) * axis + (slice(0, time),)])
            pad = [(0, 0)] * array.ndim
            pad[axis] = (0, time - current)
            return xp.pad(array, pad)

        self.memory = fit(self.memory, 1)
        self.memory_keys = fit(self.memory_keys, 1)
        self.memory_mask = fit(self.memory_mask, 1)
        self.state = {name: fit(array, 1) if name in self.text_time_states else array for name, array in self.state.items()}
        self.time = time

    def grow_frames(self, capacity: int) -> None:
        xp = self.xp
        grown = xp.zeros((self.rows, capacity, self.frames.shape[2]), xp.float32)
        grown[:, : self.frame_capacity] = self.frames
        self.frames = grown
        steps = capacity // self.reduction
        self.path = np.pad(self.path, ((0, 0), (0, steps - self.path.shape[1])))
        self.peak = np.pad(self.peak, ((0, 0), (0, steps - self.peak.shape[1])))
        self.frame_capacity = capacity


class ChunkedDecoder:
    """Decode a stream of requests with slot refilling; yields utterances as they finish."""

    def __init__(
        self,
        runner: GraphRunner,
        card: ModelCard,
        xp: Any = np,
        *,
        batch_size: int = 32,
        keep_alignments: bool = False,
        shrink_time_below: float = 0.75,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.runner = runner
        self.card = card
        self.xp = xp
        self.batch_size = batch_size
        self.chunk_steps = card.chunk_steps
        self.keep_alignments = keep_alignments
        self.shrink_time_below = shrink_time_below
        self.stats = DecodeStats()
        c = card.model
        self.r = c.reduction_factor
        self.threshold = np.float32(c.stop_threshold)
        self.prenet_widths = tuple(c.prenet_units)

    def cap_for(self, request: DecodeRequest) -> int:
        return step_cap(request.text_len, self.card.model.max_frames_per_symbol, self.r)

    def decode(self, requests: Iterable[DecodeRequest]) -> Iterator[DecodedUtterance]:
        pending = iter(requests)
        first = list(_take(pending, self.batch_size))
        if not first:
            return
        text_time = max(r.text_len for r in first)
        capacity = (max(self.cap_for(r) for r in first) + self.chunk_steps) * self.r
        slots = _Slots(self, len(first), text_time, capacity)
        for row, request in enumerate(first):
            slots.place(row, request, self.cap_for(request))
        exhausted = len(first) < self.batch_size
        while slots.rows:
            finished = self._run_chunk(slots)
            for row, num_frames, stopped in finished:
                yield self._result(slots, row, num_frames, stopped)
                slots.request[row] = None
            if not finished:
                continue
            requests = []
            for row, _, _ in finished:
                request = None if exhausted else next(pending, None)
                exhausted = exhausted or request is None
                requests.append((row, request))
            started = time.perf_counter()
            for row, request in requests:
                if request is not None:
                    self._ensure_fits(slots, request)
                    slots.place(row, request, self.cap_for(request))
            live = np.array([i for i, r in enumerate(slots.request) if r is not None], np.int64)
            if len(live) < slots.rows:
                slots.keep(live)
            if slots.rows:
                needed = int(slots.text_len.max())
                if needed < self.shrink_time_below * slots.time:
                    slots.resize_time(needed)
            self.stats.host_seconds += time.perf_counter() - started

    def _ensure_fits(self, slots: _Slots, request: DecodeRequest) -> None:
        if request.text_len > slots.time:
            slots.resize_time(request.text_len)
        needed = (self.cap_for(request) + self.chunk_steps) * self.r
        if needed > slots.frame_capacity:
            slots.grow_frames(needed)

    def _run_chunk(self, slots: _Slots) -> list[tuple[int, int, bool]]:
        """Run K steps; return (row, frames, stopped) for each row that finished in them."""
        started = time.perf_counter()
        xp, k, r = self.xp, self.chunk_steps, self.r
        rows = slots.rows
        steps = slots.steps[None, :] + np.arange(k, dtype=np.int64)[:, None]
        masks = keep_masks(xp.asarray(slots.keys), xp.asarray(steps), xp.asarray(slots.rates), self.prenet_widths, xp)
        feeds = {"memory": slots.memory, "memory_keys": slots.memory_keys, "memory_mask": slots.memory_mask}
        feeds.update(slots.state)
        feeds.update(zip(self.card.prenet_masks, masks))
        wanted = ["frames", "stop_logits", "alignments"] + [s.next for s in self.card.decoder_state]
        runtime_started = time.perf_counter()
        out = self.runner.run(feeds, wanted)
        runtime = time.perf_counter() - runtime_started
        slots.state = {s.name: out[s.next] for s in self.card.decoder_state}
        # frames [K, rows, r * mels] -> each row's frames at its own offset in the frame buffer.
        chunk = out["frames"].reshape(k, rows, r, -1).transpose(1, 0, 2, 3).reshape(rows, k * r, -1)
        columns = slots.steps[:, None] * r + np.arange(k * r, dtype=np.int64)[None, :]
        slots.frames[xp.arange(rows)[:, None], xp.asarray(columns)] = chunk
        logits = _to_host(out["stop_logits"], xp).astype(np.float32)  # [K, rows, r]
        probability = np.float32(1.0) / (np.float32(1.0) + np.exp(-logits))
        within_cap = (np.arange(k)[:, None] < (slots.cap - slots.steps)[None, :])[..., None]
        fired = ((probability > self.threshold) & within_cap).transpose(1, 0, 2).reshape(rows, k * r)
        any_fired = fired.any(axis=1)
        first = fired.argmax(axis=1)
        capped = ~any_fired & (slots.steps + k >= slots.cap)
        done = any_fired | capped
        lengths = np.where(any_fired, slots.steps * r + first + 1, slots.cap * r)
        # Every utterance keeps its attention path (argmax and peak per step) for the quality gate, written
        # at each row's own step offset as the frames are; the whole matrix only when asked.
        steps_written = slots.steps[:, None] + np.arange(k, dtype=np.int64)[None, :]  # [rows, K]
        slots.path[np.arange(rows)[:, None], steps_written] = _to_host(xp.argmax(out["alignments"], axis=2), xp).T
        slots.peak[np.arange(rows)[:, None], steps_written] = _to_host(xp.max(out["alignments"], axis=2), xp).T
        if self.keep_alignments:
            alignments = _to_host(out["alignments"], xp)
            for row in range(rows):
                usable = int(min(k, slots.cap[row] - slots.steps[row]))
                slots.alignments[row].append(alignments[:usable, row, : slots.text_len[row]])
        self.stats.chunks += 1
        self.stats.slot_steps += rows * k
        window = self.card.model.attention_positions
        if window is None:  # every step scores the whole padded text
            self.stats.attention_positions += rows * k * slots.time
            self.stats.useful_attention_positions += k * int(slots.text_len.sum())
        else:  # the window's positions, of which those past a shorter text are masked
            self.stats.attention_positions += rows * k * window
            self.stats.useful_attention_positions += k * int(np.minimum(slots.text_len, window).sum())
        slots.steps += k
        finished = [(row, int(lengths[row]), bool(any_fired[row])) for row in np.flatnonzero(done)]
        for row, num_frames, _ in finished:
            slots.steps[row] = -(-num_frames // r)
        self.stats.runtime_seconds += runtime
        self.stats.host_seconds += time.perf_counter() - started - runtime
        return finished

    def _result(self, slots: _Slots, row: int, num_frames: int, stopped: bool) -> DecodedUtterance:
        request = slots.request[row]
        if request is None:
            raise RuntimeError(f"decoder row {row} finished without a request")
        steps = int(slots.steps[row])
        self.stats.useful_steps += steps
        self.stats.utterances += 1
        alignment = None
        if self.keep_alignments:
            alignment = np.concatenate(slots.alignments[row])[:steps]
        return DecodedUtterance(
            index=request.index,
            frames=slots.frames[row, :num_frames].copy(),
            stopped=stopped,
            steps=steps,
            alignment=alignment,
            attention_path=slots.path[row, :steps].copy(),
            attention_peak=slots.peak[row, :steps].copy(),
        )


def _take(iterator: Iterator[DecodeRequest], count: int) -> Iterator[DecodeRequest]:
    for _ in range(count):
        item = next(iterator, None)
        if item is None:
            return
        yield item


def _to_host(array: Any, xp: Any) -> np.ndarray:
    return array if xp is np else xp.asnumpy(array)
