"""The postnet stage: how a group is cut into calls, and that a row's output does not depend on the cut."""

from __future__ import annotations

import numpy as np
import pytest

from trtgen.engine.artifact import default_model_dir, load_model
from trtgen.engine.backends import create_backend
from trtgen.engine.synthesis import postnet_batches


def _cost(lengths: list[int], runs: list[tuple[int, int]], call_frames: int) -> int:
    return sum((end - start) * lengths[end - 1] + call_frames for start, end in runs)


def _all_cuts(count: int):
    for mask in range(1 << (count - 1)):
        bounds = [0] + [i + 1 for i in range(count - 1) if mask >> i & 1] + [count]
        yield list(zip(bounds, bounds[1:]))


def test_postnet_batches_cover_the_group_in_order_at_the_least_cost() -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        lengths = sorted(int(n) for n in rng.integers(20, 600, int(rng.integers(1, 9))))
        call_frames = int(rng.choice([0, 16, 200, 5000]))
        runs = postnet_batches(lengths, call_frames)
        assert [i for start, end in runs for i in range(start, end)] == list(range(len(lengths)))
        assert _cost(lengths, runs, call_frames) == min(_cost(lengths, cut, call_frames) for cut in _all_cuts(len(lengths)))


def test_postnet_batches_keep_a_group_whole_when_calls_are_dear_and_split_it_when_padding_is() -> None:
    assert postnet_batches([], 16) == []
    assert postnet_batches([100, 200, 900], None) == [(0, 3)]  # a GPU: one call
    assert postnet_batches([300, 300, 300], 16) == [(0, 3)]  # no padding to save
    assert postnet_batches([40, 400, 410], 16) == [(0, 1), (1, 3)]  # 360 padded frames cost more than a call


@pytest.mark.parametrize("precision", ["int8", "float32"])
def test_a_rows_postnet_output_is_the_same_alone_or_padded_in_a_batch(precision: str) -> None:
    """Why the CPU may run each utterance on its own: ONNX Runtime gives a row the same bytes either way."""
    model = load_model(default_model_dir()).with_precision(precision)
    postnet = create_backend(model, "onnxruntime", "cpu", threads=2).load("postnet")
    rng = np.random.default_rng(1)
    lengths = np.array([310, 170, 42], np.int32)
    mels = rng.standard_normal((3, int(lengths.max()), model.card.model.num_mels)).astype(np.float32)
    together = postnet.run({"mel": mels, "mel_len": lengths}, ["mel_postnet", "magnitude"])
    for row, frames in enumerate(lengths):
        alone = postnet.run({"mel": mels[row : row + 1, :frames].copy(), "mel_len": lengths[row : row + 1]}, ["mel_postnet", "magnitude"])
        for name in ("mel_postnet", "magnitude"):
            np.testing.assert_array_equal(alone[name][0], together[name][row, :frames])
    assert not np.array_equal(together["magnitude"][0, :40], together["magnitude"][1, :40])


class _Recording:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log
        self.input_names, self.output_names = [], []

    def run(self, feeds, outputs=None):
        self.log.append(self.name)
        return {}


def test_the_decoder_widens_only_while_the_other_stages_are_idle() -> None:
    from trtgen.engine.synthesis import StageTimes, _InFlight, _TimedRunner

    log: list[str] = []
    in_flight = _InFlight()
    runner = _TimedRunner(_Recording("narrow", log), StageTimes(), "decoder", _Recording("wide", log), in_flight.idle)
    runner.run({})
    in_flight.add(1)
    runner.run({})
    in_flight.add(1)
    in_flight.add(-1)
    runner.run({})
    in_flight.add(-1)
    runner.run({})
    assert log == ["wide", "narrow", "narrow", "wide"]


def test_overlapped_stages_give_the_decoder_a_wide_session_unless_its_threads_are_set() -> None:
    from trtgen import Row, Voice
    from trtgen.engine.shipped import demo_sentences, shipped_styles
    from trtgen.engine.synthesis import SynthesisOptions

    voice = Voice.load(threads=2)
    synthesizer = voice.synthesizer
    assert synthesizer.options.overlap and synthesizer.decoder_runner.wide is not None and synthesizer.text_encoder.wide is not None
    clips = list(shipped_styles().values())
    rows = [Row(f"w{i}", text, clips[i % len(clips)], 0.5, 1) for i, text in enumerate(demo_sentences()[:5])]
    assert len(list(voice.stream(rows, batch_size=2))) == 5
    assert synthesizer.in_flight.idle()  # every group handed on came back
    pinned = Voice.load(threads=2, options=SynthesisOptions(decoder_threads=1))
    assert pinned.synthesizer.decoder_runner.wide is None
    assert Voice.load(threads=2, options=SynthesisOptions(overlap=False)).synthesizer.decoder_runner.wide is None
