"""The attention check: is a decoded utterance's argmax path monotonic, free of big jumps, and does it
reach the last spoken symbol? ``trtgen eval``, the trainer's held-out decode and the benchmarks judge
alignments with it, so it lives beside the decoder that produces them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np


logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Attention alignment


@dataclass(frozen=True)
class AlignmentRule:
    """When an attention alignment counts as monotonic and covering the whole text.

    The path is the argmax symbol of each decoder step, clamped to the ``</s>`` position (the
    ``<p>`` padding after ``</s>`` may absorb attention at the end; it carries no text).
    """

    max_backstep: int = 1
    """Largest step back allowed, in symbols, below the furthest symbol reached so far (jitter)."""
    max_jump: int = 4
    """Largest advance allowed in one decoder step beyond the furthest symbol reached so far. One step
    is ``reduction_factor`` frames (37.5 ms at r = 3), in which espeak-ng speaks about half a symbol."""
    max_start: int = 3
    """The path must start on one of the first ``max_start + 1`` symbols (``<s>`` is symbol 0)."""
    end_slack: int = 0
    """The path must reach the last spoken symbol (:func:`trtgen.engine.text.last_spoken_index`: the last letter or digit)
    or at most this many symbols before it. Trailing punctuation and ``</s>`` are silent: a model
    stops as its attention reaches the last letter (seen on the default voice: clean diagonals that
    end on the "r" of "earlier." and never visit the full stop)."""


@dataclass(frozen=True)
class AlignmentCheck:
    """One utterance's attention path measured against an :class:`AlignmentRule`."""

    monotonic: bool
    no_big_jumps: bool
    starts_at_text_start: bool
    reaches_end: bool
    max_backstep: int
    max_jump: int
    first_symbol: int
    last_symbol: int
    """Furthest symbol the path reached (clamped to ``eos_index``)."""
    end_index: int
    """The symbol the path had to reach (the last spoken one)."""
    eos_index: int
    visited_fraction: float
    """Share of the symbols ``<s> .. </s>`` that are the argmax of some step (information only:
    at 3 frames per step a fast passage may legitimately skip a symbol)."""
    mean_peak: float
    """Mean over steps of the largest attention weight: 1.0 is perfectly sharp."""

    @property
    def ok(self) -> bool:
        return self.monotonic and self.no_big_jumps and self.starts_at_text_start and self.reaches_end


def check_alignment(
    alignment: np.ndarray, eos_index: int, rule: AlignmentRule = AlignmentRule(), *, end_index: int | None = None
) -> AlignmentCheck:
    """Measure a ``[steps, text_len]`` attention matrix (``text_len`` counts ``<s>``, ``</s>``, padding).

    ``end_index`` is the symbol the path must reach (:func:`last_spoken_index`); default ``</s>``.
    """
    a = np.asarray(alignment, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] <= eos_index:
        raise ValueError(f"alignment of shape {a.shape} does not fit a text whose </s> is at {eos_index}")
    return check_path(a.argmax(axis=1), a.max(axis=1) if a.shape[0] else np.zeros(0), eos_index, rule, end_index=end_index)


def check_path(
    path: np.ndarray, peaks: np.ndarray, eos_index: int, rule: AlignmentRule = AlignmentRule(), *, end_index: int | None = None
) -> AlignmentCheck:
    """The same check from what the decode loop keeps of every utterance: the argmax symbol of each step
    (``path``) and its weight (``peaks``), without the whole matrix (:func:`check_alignment`)."""
    end_index = eos_index if end_index is None else int(end_index)
    if eos_index < 1 or not 0 < end_index <= eos_index:
        raise ValueError(f"a text whose </s> is at {eos_index} cannot end at {end_index}")
    path = np.minimum(np.asarray(path, dtype=np.int64), eos_index)
    if path.size == 0:
        return AlignmentCheck(False, False, False, False, 0, 0, 0, 0, end_index, eos_index, 0.0, 0.0)
    running = np.maximum.accumulate(path)
    max_backstep = int((running - path).max())
    max_jump = int(np.maximum(path[1:] - running[:-1], 0).max()) if path.size > 1 else 0
    first, last = int(path[0]), int(running[-1])
    return AlignmentCheck(
        monotonic=max_backstep <= rule.max_backstep,
        no_big_jumps=max_jump <= rule.max_jump,
        starts_at_text_start=first <= rule.max_start,
        reaches_end=last >= end_index - rule.end_slack,
        max_backstep=max_backstep,
        max_jump=max_jump,
        first_symbol=first,
        last_symbol=last,
        end_index=end_index,
        eos_index=int(eos_index),
        visited_fraction=float(np.unique(path).size / (eos_index + 1)),
        mean_peak=float(np.mean(peaks)) if len(peaks) else 0.0,
    )
