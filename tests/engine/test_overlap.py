"""trtgen.engine.overlap: stages on their own threads, results in the source's order, errors raised."""

from __future__ import annotations

import threading
import time

import pytest

from trtgen.engine.overlap import overlapped


def test_results_come_in_the_order_of_the_source_whatever_each_stage_takes() -> None:
    def slow_on_odd(x: int) -> int:
        time.sleep(0.01 * (x % 2))
        return x * 10

    assert list(overlapped(range(20), [slow_on_odd, lambda x: x + 1])) == [x * 10 + 1 for x in range(20)]


def test_each_stage_but_the_last_runs_on_its_own_thread() -> None:
    seen: dict[str, set[str]] = {"first": set(), "last": set()}

    def first(x: int) -> int:
        seen["first"].add(threading.current_thread().name)
        return x

    def last(x: int) -> int:
        seen["last"].add(threading.current_thread().name)
        return x

    assert list(overlapped(range(5), [first, last])) == list(range(5))
    assert len(seen["first"]) == 1 and seen["first"] != {threading.current_thread().name}
    assert seen["last"] == {threading.current_thread().name}


def test_an_error_in_a_stage_or_the_source_is_raised_to_the_consumer() -> None:
    def breaks_at_three(x: int) -> int:
        if x == 3:
            raise ValueError("stage broke at 3")
        return x

    out = []
    with pytest.raises(ValueError, match="stage broke at 3"):
        for x in overlapped(range(10), [breaks_at_three, lambda x: x]):
            out.append(x)
    assert out == [0, 1, 2]

    def source():
        yield 1
        raise KeyError("source broke")

    with pytest.raises(KeyError, match="source broke"):
        list(overlapped(source(), [lambda x: x, lambda x: x]))


def test_closing_the_consumer_stops_every_thread_and_closes_the_source() -> None:
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    before = threading.active_count()
    results = overlapped(endless(), [lambda x: x, lambda x: x])
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    results.close()
    assert closed.wait(5), "the source was not closed"
    assert threading.active_count() == before


def test_stages_overlap_where_it_pays_with_half_the_cores_each() -> None:
    import dataclasses

    from trtgen.engine.artifact import default_model_dir, load_model
    from trtgen.engine.config import model_preset
    from trtgen.engine.synthesis import SynthesisOptions, overlap_pays, stage_threads

    voice = load_model(default_model_dir()).with_precision("int8")
    full_size = dataclasses.replace(voice, card=dataclasses.replace(voice.card, model=model_preset("openseq2seq")))
    options = SynthesisOptions()
    # The shipped voice: postnet and vocoder outweigh the decoder; a full-size decoder is most of the work.
    assert overlap_pays(voice, options) and not overlap_pays(full_size, options)
    overlapped = dataclasses.replace(options, overlap=True)
    assert stage_threads(overlapped, 2) == (1, 1) and stage_threads(overlapped, 16) == (8, 8)
    assert stage_threads(dataclasses.replace(overlapped, decoder_threads=3, postnet_threads=2), 2) == (3, 2)
    assert stage_threads(dataclasses.replace(options, overlap=False), 2) == (None, None)  # the backend's own
