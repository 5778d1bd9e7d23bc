"""What goes into a :class:`~trtgen.engine.voice.Voice` and what comes out: a :class:`Row` to speak,
its :class:`Speech` or the :class:`Rejected` that says why not, and the checks a row goes through.

A row is not checked when it is built; :meth:`Voice.stream <trtgen.engine.voice.Voice.stream>` checks
each one (with :func:`check_dropout` and the helpers here) and yields a :class:`Rejected` for a row it
cannot speak, so one bad row never ends a stream.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from trtgen.engine.quality import Quality
from trtgen.engine.styles import StyleBlend, StyleTokens
from trtgen.errors import TrtgenError, UsageError

__all__ = ["Style", "Row", "RowLike", "Speech", "Rejected", "check_dropout"]

Style = Union[str, os.PathLike, np.ndarray, StyleBlend, StyleTokens]
"""A reference clip (path to a WAV/FLAC) or a precomputed style embedding (:meth:`Voice.style_embedding`)."""

NO_STYLE_HINT = "give a reference clip (path to a WAV or FLAC file) or a style embedding (numpy array)"


@dataclass(frozen=True, repr=False)
class Row:
    """One utterance to speak: ``text`` in the ``style`` of a clip, under one dropout stream.

    A row is not checked when it is built: :meth:`Voice.stream` checks each one and yields a
    :class:`Rejected` for a row it cannot speak, so one bad row never ends a stream.

    Attributes:
        id: names the utterance and, with ``seed``, keys its random streams (a string).
        text: the transcript to speak.
        style: a reference clip (path to a WAV or FLAC, e.g. from :func:`trtgen.shipped_styles`), a
            style embedding (:meth:`Voice.style_embedding`, a float array of the model's style size), or
            a drawn style (:class:`~trtgen.engine.styles.StyleBlend` of two clips,
            :class:`~trtgen.engine.styles.StyleTokens` around a clip's token weights;
            :func:`trtgen.draw_style` draws them as ``trtgen generate``'s style modes do).
        dropout: prenet dropout at inference, in [0, 1); None: the model's training rate.
        seed: seed of the dataset copy (an integer): with ``id`` it fixes the dropout masks and the
            Griffin-Lim phase.
        tag: anything of the caller's, returned on the result (``trtgen generate`` puts its job here).
    """

    id: str
    text: str
    style: Style
    dropout: float | None = None
    seed: int = 0
    tag: Any = None

    def __repr__(self) -> str:
        tag = "" if self.tag is None else f", tag={short_repr(self.tag)}"
        return (
            f"Row(id={short_repr(self.id)}, text={short_repr(self.text)}, style={describe_style(self.style)}, "
            f"dropout={short_repr(self.dropout)}, seed={short_repr(self.seed)}{tag})"
        )


RowLike = Union[Row, Mapping[str, Any], Sequence[Any]]
"""What :meth:`Voice.stream` accepts as a row: a :class:`Row`, a mapping of its fields, or a tuple in its order."""


@dataclass(repr=False)
class Speech:
    """One synthesised utterance.

    Attributes:
        id: the row's id (``utterance_id`` for :meth:`Voice.synthesize`).
        audio: float32 mono waveform at ``sample_rate``.
        sample_rate: samples per second of ``audio`` (the model's).
        text: the transcript the audio speaks: the input text with the front end's substitutions applied.
        symbols: what the model read: normalised letters, or espeak-ng's IPA for a phoneme model.
        text_ids: ``[<s>] + symbol ids + [</s>] + padding``: the columns of ``alignment``.
        frames: decoder frames, the stop frame included (the vocoder drops it, as OpenSeq2Seq does).
        steps: decoder steps run (a step gives several frames when the model's reduction factor is above 1).
        stopped: the stop token fired; otherwise the utterance reached its cap of 10 frames per symbol.
        dropout: the prenet dropout it was decoded with (the model's rate when the row gave None).
        seed: the row's seed.
        alignment: ``[steps, text_len]`` attention weights, when asked for; else None.
        mel: ``[frames, num_mels]`` postnet log-mel, when asked for; else None.
        tag: the row's ``tag``.
        quality: the quality gate's verdict (:class:`~trtgen.engine.quality.Quality`: ``ok``, ``reasons``,
            ``signals``): a gross failure (stop never fired, babbling, skipped words, broken attention,
            long silences, clipping) is not ``ok``.
        attempt: which try this is (1 unless ``retries`` spoke a failed utterance again with the next
            dropout stream).
        style_draw: for a drawn style (:class:`~trtgen.engine.styles.StyleBlend`,
            :class:`~trtgen.engine.styles.StyleTokens`), what was drawn: its ``mode``, the clips and
            weight, or the token weights; None for a clip or an embedding.
    """

    id: str
    audio: np.ndarray
    sample_rate: int
    text: str
    symbols: str
    text_ids: np.ndarray
    frames: int
    steps: int
    stopped: bool
    dropout: float
    seed: int
    alignment: np.ndarray | None = None
    mel: np.ndarray | None = None
    tag: Any = None
    quality: Quality | None = None
    attempt: int = 1
    style_draw: dict[str, Any] | None = None

    @property
    def duration_s(self) -> float:
        """Length of ``audio`` in seconds."""
        return len(self.audio) / self.sample_rate

    def __repr__(self) -> str:
        ending = "stopped" if self.stopped else "reached its frame cap"
        verdict = "" if self.quality is None or self.quality.ok else f", failed {'/'.join(self.quality.reasons)}"
        attempt = f", attempt {self.attempt}" if self.attempt > 1 else ""
        return (
            f"Speech(id={short_repr(self.id)}, {self.duration_s:.2f} s at {self.sample_rate} Hz, {self.frames} frames, {ending}"
            f"{verdict}{attempt}, text={short_repr(self.text)})"
        )


@dataclass(frozen=True, repr=False)
class Rejected:
    """A row that cannot be spoken, and why: :meth:`Voice.stream` yields it instead of raising.

    Attributes:
        id: the row's id, as given (a row that is not even a row: its ``id`` if it has one, else its
            position in the stream, ``"#3"``).
        reason: one line naming the problem (the error's message).
        tag: the row's ``tag``.
        decoded: when the decoder ran but stopped too early to vocode: what it produced (empty audio,
            the frames and alignment it asked for); else None.
        error: the typed exception, which :meth:`Voice.synthesize` raises:
            :class:`~trtgen.errors.TextError` (the text), :class:`~trtgen.errors.StyleError` (the clip or
            embedding), :class:`~trtgen.errors.UsageError` (a bad id, dropout or seed, or not a row),
            :class:`~trtgen.errors.SynthesisError` (decoded too short). Built without one, a
            :class:`~trtgen.errors.TrtgenError` with ``reason`` as its message.
    """

    id: str
    reason: str
    tag: Any = None
    decoded: Speech | None = None
    error: TrtgenError | None = None

    def __post_init__(self) -> None:
        if self.error is None:
            object.__setattr__(self, "error", TrtgenError(self.reason))

    def __repr__(self) -> str:
        decoded = ", decoded" if self.decoded is not None else ""
        return f"Rejected(id={short_repr(self.id)}, {type(self.error).__name__}: {short_repr(self.reason, width=100, quote=False)}{decoded})"


def check_dropout(dropout: object) -> float | None:
    """``dropout`` as a float in [0, 1), or None (the model's training rate); :class:`~trtgen.errors.UsageError` otherwise.

    The one check of an inference dropout, for :meth:`Voice.synthesize` and every row of
    :meth:`Voice.stream` (where it rejects the row). 1 would drop every prenet unit and scale the
    survivors by 1 / (1 - 1).
    """
    if dropout is None:
        return None
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real):
        raise UsageError(f"dropout {short_repr(dropout)} is not a number: give one in [0, 1), or None for the model's rate")
    value = float(dropout)
    if not 0.0 <= value < 1.0:  # NaN fails this too
        raise UsageError(f"dropout {short_repr(dropout)} is outside [0, 1)")
    return value


def is_integer(value: object) -> bool:
    """An int or numpy integer, not a bool (``True`` as a seed or a thread count is a slip)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_seed(seed: object) -> int:
    if not is_integer(seed):
        raise UsageError(f"seed {short_repr(seed)} is not an integer")
    return int(seed)


def as_row(item: Any) -> Row:
    """``item`` as a :class:`Row`; :class:`~trtgen.errors.UsageError` when it is none."""
    if isinstance(item, Row):
        return item
    if isinstance(item, (str, bytes)) or not isinstance(item, (Mapping, Iterable)):
        raise UsageError(f"not a row: a {type(item).__name__} (give a Row, a mapping of its fields or a tuple in its order)")
    try:
        return Row(**item) if isinstance(item, Mapping) else Row(*item)
    except TypeError as error:
        raise UsageError(f"not a row: {error}") from None


def loose_field(item: Any, name: str, position: int) -> Any:
    """Field ``name`` (at ``position`` in a tuple) of something that did not make a :class:`Row`; None if absent."""
    try:
        if isinstance(item, Mapping):
            return item.get(name)
        if isinstance(item, Sequence) and not isinstance(item, (str, bytes)) and len(item) > position:
            return item[position]
    except Exception:  # noqa: BLE001 - an object that cannot even be read is rejected without its id or tag
        return None
    return None


def rejected_for(row_id: Any, tag: Any, error: TrtgenError) -> Rejected:
    """A :class:`Rejected` carrying ``error`` (its traceback dropped: a long stream keeps many)."""
    return Rejected(row_id, str(error), tag, error=error.with_traceback(None))


def short_repr(value: Any, width: int = 40, *, tail: bool = False, quote: bool = True) -> str:
    """``repr(value)`` (``str`` with ``quote=False``) cut to ``width`` characters, keeping its start (or its ``tail``)."""
    text = repr(value) if quote else str(value)
    text = " ".join(text.split())  # one line
    if len(text) <= width:
        return text
    return "..." + text[-(width - 3):] if tail else text[: width - 3] + "..."


def describe_style(style: Any) -> str:
    """An embedding by its type and shape, a clip by the end of its path."""
    if isinstance(style, np.ndarray):
        return f"<{style.dtype} array of shape {style.shape}>"
    return short_repr(os.fspath(style) if isinstance(style, os.PathLike) else style, tail=True)
