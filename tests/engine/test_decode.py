"""The decode loop on its own, with a fake decoder graph whose answers are known in advance.

The fake ``decoder_chunk`` keeps each row's step count in a decoder state (which the loop zeroes when
it refills a slot), writes the global frame index into every frame, and fires the stop token at a
frame chosen per utterance (encoded in its memory). So every expectation below is exact: which frames
an utterance gets, where it stops, when it is capped, how slots are refilled and the batch shrinks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np
import pytest

from trtgen.engine.artifact import default_model_dir, load_model
from trtgen.engine.decode import ChunkedDecoder, DecodeRequest, step_cap

CARD = load_model(default_model_dir(), verify=False).card
R = CARD.model.reduction_factor
K = CARD.chunk_steps
NEVER = 10**9


class FakeChunk:
    """A decoder graph with the real card's tensor names: frame f of a row holds f; the stop fires at
    the frame number stored in ``memory[row, 0, 0]``."""

    name = "decoder_chunk"

    def __init__(self) -> None:
        self.input_names = tuple(t.name for t in CARD.graphs["decoder_chunk"].inputs)
        self.output_names = tuple(t.name for t in CARD.graphs["decoder_chunk"].outputs)
        self.calls: list[tuple[int, int]] = []
        """(rows, text axis) of every call."""

    def run(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        memory = feeds["memory"]
        rows, time = memory.shape[0], memory.shape[1]
        self.calls.append((rows, time))
        for mask in CARD.prenet_masks:
            assert feeds[mask].shape[:2] == (K, rows)
        step0 = feeds["frame"][:, 0].astype(np.int64)  # the step count lives in the "frame" state
        stop_frame = memory[:, 0, 0].astype(np.int64)
        steps = step0[None, :] + np.arange(K)[:, None]  # [K, rows]
        frame_index = steps[:, :, None] * R + np.arange(R)[None, None, :]  # [K, rows, R]
        frames = np.repeat(frame_index.astype(np.float32)[..., None], CARD.model.num_mels, axis=-1).reshape(K, rows, -1)
        out = {s.next: np.array(feeds[s.name], copy=True) for s in CARD.decoder_state}
        out["next_frame"][:, 0] = step0 + K
        out["frames"] = frames
        out["stop_logits"] = np.where(frame_index >= stop_frame[None, :, None], 20.0, -20.0).astype(np.float32)
        out["alignments"] = np.zeros((K, rows, time), np.float32)
        return {name: out[name] for name in (outputs or self.output_names)}


def request(index: int, text_len: int, stop_frame: int) -> DecodeRequest:
    memory = np.zeros((text_len, CARD.model.memory_dim), np.float32)
    memory[0, 0] = stop_frame
    return DecodeRequest(index, memory, np.zeros((text_len, CARD.model.attention_dim), np.float32), prenet_key=index, dropout=0.5)


def decode(requests: list[DecodeRequest], batch_size: int, **kwargs: Any) -> tuple[dict[int, Any], FakeChunk, ChunkedDecoder]:
    runner = FakeChunk()
    decoder = ChunkedDecoder(runner, CARD, batch_size=batch_size, **kwargs)
    results = {}
    for result in decoder.decode(iter(requests)):
        assert result.index not in results, "an utterance came out twice"
        results[result.index] = result
    return results, runner, decoder


def test_each_utterance_stops_at_its_own_frame_whatever_its_neighbours() -> None:
    stops = [5, 40, 0, 17, 63, 8, 29]
    requests = [request(i, 16, s) for i, s in enumerate(stops)]
    for batch_size in (1, 3, 8):
        results, _, _ = decode(requests, batch_size)
        assert sorted(results) == list(range(len(stops)))
        for i, stop in enumerate(stops):
            result = results[i]
            assert result.stopped
            assert result.num_frames == stop + 1, "the stop frame itself is kept"
            assert result.steps == -(-(stop + 1) // R)
            np.testing.assert_array_equal(result.frames[:, 0], np.arange(stop + 1, dtype=np.float32))


def test_an_utterance_that_never_stops_is_capped_at_its_own_text_length() -> None:
    short, long = request(0, 8, NEVER), request(1, 24, NEVER)
    results, _, _ = decode([short, long, request(2, 8, 3)], batch_size=3)
    for result, text_len in ((results[0], 8), (results[1], 24)):
        cap = step_cap(text_len, CARD.model.max_frames_per_symbol, R)
        assert not result.stopped
        assert result.steps == cap
        assert result.num_frames == cap * R
        np.testing.assert_array_equal(result.frames[:, 0], np.arange(cap * R, dtype=np.float32))
    assert results[2].stopped and results[2].num_frames == 4


def test_a_stop_past_the_cap_does_not_count() -> None:
    cap = step_cap(8, CARD.model.max_frames_per_symbol, R)
    results, _, _ = decode([request(0, 8, cap * R + 1)], batch_size=1)  # would fire in the chunk after the cap
    assert not results[0].stopped and results[0].num_frames == cap * R


def test_finished_slots_are_refilled_and_the_batch_shrinks_when_work_runs_out() -> None:
    # Two slots, five utterances: the short ones finish first and their slots take the next requests.
    stops = [2, 100, 2, 2, 2]
    results, runner, decoder = decode([request(i, 16, s) for i, s in enumerate(stops)], batch_size=2)
    assert sorted(results) == list(range(5))
    rows = [r for r, _ in runner.calls]
    assert rows[0] == 2 and max(rows) == 2
    assert rows[-1] == 1, "once the list is exhausted the finished row is dropped, not decoded empty"
    # Work done: the long utterance's chunks plus the short ones sharing its batch.
    assert decoder.stats.utterances == 5
    assert decoder.stats.useful_steps == sum(r.steps for r in results.values())
    assert decoder.stats.slot_steps == K * sum(rows)


def test_the_text_axis_grows_for_a_long_request_and_shrinks_when_it_is_gone() -> None:
    # r0 finishes in the first chunk and its slot takes the long r2; when r2 is done, r3 (short) takes it.
    requests = [request(0, 8, 4), request(1, 16, 150), request(2, 64, 40), request(3, 8, 4)]
    results, runner, _ = decode(requests, batch_size=2)
    times = [t for _, t in runner.calls]
    assert times[0] == 16
    assert 64 in times, "the slot's text axis grew to take the long text"
    assert times[-1] == 16, "and shrank back once only short texts were left"
    assert all(results[i].stopped for i in range(4))


def test_alignments_are_kept_per_utterance_and_trimmed_to_its_text() -> None:
    results, _, _ = decode([request(0, 8, 10), request(1, 24, 30)], batch_size=2, keep_alignments=True)
    for i, text_len in ((0, 8), (1, 24)):
        assert results[i].alignment.shape == (results[i].steps, text_len)


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ChunkedDecoder(FakeChunk(), CARD, batch_size=0)


def test_attention_over_padding_counts_what_the_step_attends() -> None:
    # Both rows stop in the first chunk, so exactly one chunk of K steps is decoded on texts of 3 and 40.
    requests = [request(0, 3, 2), request(1, 40, 2)]
    window = CARD.model.attention_positions
    assert window == 5, "the shipped voice attends a window of (1, 3) around the previous peak"
    _, runner, windowed = decode(requests, batch_size=2)
    assert len(runner.calls) == 1
    # The window's 5 positions per row, of which 2 lie past the 3-symbol text; the padded text axis is never read.
    assert windowed.stats.attention_positions == K * 2 * window
    assert windowed.stats.padding_fraction == pytest.approx(1 - (3 + 5) / 10)

    whole_text = dataclasses.replace(CARD, model=dataclasses.replace(CARD.model, attention_window=None))
    everywhere = ChunkedDecoder(FakeChunk(), whole_text, batch_size=2)
    list(everywhere.decode(iter(requests)))
    # Without a window every step scores the padded text axis (40 positions) for both rows.
    assert everywhere.stats.attention_positions == K * 2 * 40
    assert everywhere.stats.padding_fraction == pytest.approx(1 - (3 + 40) / 80)
