"""Run the stages of a pipeline at the same time, each on its own thread, in a fixed order.

Why threads: the heavy work of every stage (ONNX Runtime's ``run``, scipy's FFTs, numpy on whole
arrays) releases the GIL, so the decoder of one group of utterances, the postnet of the previous
group and the vocoder of the one before share the cores instead of taking turns
(docs/throughput.md). Items pass through bounded queues in the order the source made them, one item
per stage at a time, so what comes out (and in which order) does not depend on timing; the bounds
keep the read-ahead, and the memory, small.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Sequence

__all__ = ["overlapped"]

_DONE = object()
_POLL_S = 0.1
"""How often a thread blocked on a full or empty queue looks whether the consumer has gone."""


class _Failed:
    """An exception raised in a stage thread, carried downstream to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Stopped(Exception):
    """The consumer has gone (the generator was closed): every thread ends."""


def overlapped(source: Iterable[Any], stages: Sequence[Callable[[Any], Any]], *, depth: int = 1) -> Iterator[Any]:
    """``stages[-1](...stages[0](item))`` for each item of ``source``, in ``source``'s order.

    ``source`` is iterated on one thread and each stage but the last on a thread of its own; the last
    stage runs on the caller's thread as the results are pulled. ``depth`` items at most wait between
    two stages. An exception in any thread is raised to the caller; closing the returned generator
    stops the threads (each finishes the item in hand) and closes ``source``.
    """
    if not stages:
        raise ValueError("overlapped needs at least one stage")
    stop = threading.Event()
    queues: list[queue.Queue[Any]] = [queue.Queue(maxsize=depth) for _ in stages]

    def put(q: queue.Queue[Any], item: Any) -> None:
        while True:
            if stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(q: queue.Queue[Any]) -> Any:
        while True:
            if stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue

    def produce() -> None:
        iterator = iter(source)
        try:
            for item in iterator:
                put(queues[0], item)
            put(queues[0], _DONE)
        except _Stopped:
            pass
        except BaseException as error:  # noqa: BLE001 - carried to the consumer, raised there
            _put_failure(queues[0], error, stop)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def work(stage: Callable[[Any], Any], inbox: queue.Queue[Any], outbox: queue.Queue[Any]) -> None:
        try:
            while True:
                item = get(inbox)
                if item is _DONE or isinstance(item, _Failed):
                    put(outbox, item)
                    return
                put(outbox, stage(item))
        except _Stopped:
            pass
        except BaseException as error:  # noqa: BLE001 - carried to the consumer, raised there
            _put_failure(outbox, error, stop)

    threads = [threading.Thread(target=produce, name="trtgen-stage-source", daemon=True)]
    for i, stage in enumerate(stages[:-1]):
        threads.append(threading.Thread(target=work, args=(stage, queues[i], queues[i + 1]), name=f"trtgen-stage-{i}", daemon=True))
    for thread in threads:
        thread.start()
    try:
        while True:
            item = queues[-1].get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield stages[-1](item)
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _put_failure(outbox: queue.Queue[Any], error: BaseException, stop: threading.Event) -> None:
    """Hand ``error`` downstream, unless the consumer has gone (then nobody is left to raise it to)."""
    while not stop.is_set():
        try:
            outbox.put(_Failed(error), timeout=_POLL_S)
            return
        except queue.Full:
            continue
