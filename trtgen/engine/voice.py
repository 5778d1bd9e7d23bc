"""The Python API: load a model directory once, then speak one sentence or stream many.

    >>> from trtgen import Voice, Row
    >>> voice = Voice.load()                                   # the shipped voice, on the CPU
    >>> speech = voice.synthesize("Hello there.", style="clip.wav", dropout=0.5, seed=0)
    >>> speech.audio.dtype, speech.sample_rate                 # doctest: +SKIP
    (dtype('float32'), 16000)
    >>> rows = [Row("a", "First sentence.", "clip.wav"), Row("b", "Second one.", "clip.wav")]
    >>> for result in voice.stream(rows):                      # doctest: +SKIP
    ...     print(result.id, result.duration_s if isinstance(result, Speech) else result.reason)

Every command goes through :class:`Voice`: ``trtgen generate`` streams its list's rows (one per
utterance and dataset copy), ``trtgen eval`` its held-out sentences, the demo and the benchmarks theirs,
and a cluster worker its blocks. So a row becomes an utterance in exactly one place
(:meth:`Voice._prepare`): text through the model's front end, style clip through the reference encoder
(each clip once), the dropout and Griffin-Lim streams keyed by (seed, utterance id). An utterance's
audio is therefore a pure function of (model, text, style, dropout, seed, id), whatever else is in
its batch: ``voice.synthesize(text, style, dropout=d, seed=s, utterance_id=i)`` equals what
``trtgen generate`` writes for row ``i`` in a copy with dropout ``d`` and seed ``s``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence, Union

import numpy as np

from trtgen.engine.artifact import Model, default_model_dir, load_model, resolve_precision
from trtgen.engine.audio import AudioError
from trtgen.engine.backends import create_backend
from trtgen.engine.randomness import utterance_key
from trtgen.engine.synthesis import StageTimes, SynthesisOptions, Synthesizer, Utterance
from trtgen.engine.text import EncodedText, TextEncoder, TextError
from trtgen.engine.vocoder import GriffinLimOptions, griffin_lim_preset
from trtgen.errors import UsageError

__all__ = ["Voice", "Row", "Speech", "Rejected", "Style"]

Style = Union[str, os.PathLike, np.ndarray]
"""A reference clip (path to a WAV/FLAC) or a precomputed style embedding (:meth:`Voice.style_embedding`)."""

DEFAULT_LOOKAHEAD = 4096
"""Rows :meth:`Voice.stream` reads ahead and sorts by text length (less padding); any value gives the same audio."""


@dataclass(frozen=True)
class Row:
    """One utterance to speak: ``text`` in the ``style`` of a clip, under one dropout stream."""

    id: str
    """Names the utterance and keys its random streams (with ``seed``)."""
    text: str
    style: Style
    dropout: float | None = None
    """Prenet dropout at inference; None: the model's training rate."""
    seed: int = 0
    """Seed of the dataset copy: with ``id`` it fixes the dropout masks and the Griffin-Lim phase."""
    tag: Any = None
    """Anything of the caller's, returned on the result (``trtgen generate`` puts its list row and copy here)."""


@dataclass
class Speech:
    """One synthesised utterance."""

    id: str
    audio: np.ndarray
    """float32 mono waveform at :attr:`sample_rate`."""
    sample_rate: int
    text: str
    """The transcript the audio speaks: the input text with the front end's substitutions applied."""
    symbols: str
    """What the model read: normalised letters, or espeak-ng's IPA for a phoneme model."""
    text_ids: np.ndarray
    """``[<s>] + symbol ids + [</s>] + padding``: the columns of :attr:`alignment`."""
    frames: int
    """Decoder frames, the stop frame included (the vocoder drops it, as OpenSeq2Seq does)."""
    steps: int
    stopped: bool
    """The stop token fired; otherwise the utterance reached its cap of 10 frames per symbol."""
    dropout: float
    seed: int
    alignment: np.ndarray | None = None
    """``[steps, text_len]`` attention weights, when asked for."""
    mel: np.ndarray | None = None
    """``[frames, num_mels]`` postnet log-mel, when asked for."""
    tag: Any = None

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


@dataclass(frozen=True)
class Rejected:
    """A row that cannot be spoken, and why: :meth:`Voice.stream` yields it instead of raising."""

    id: str
    reason: str
    tag: Any = None
    decoded: Speech | None = None
    """When the decoder ran but produced too few frames to vocode: what it produced (empty audio)."""


def _as_row(item: Row | Mapping[str, Any] | Sequence[Any]) -> Row:
    if isinstance(item, Row):
        return item
    if isinstance(item, Mapping):
        return Row(**item)
    return Row(*item)


class Voice:
    """A loaded model directory on one backend and device, ready to speak."""

    def __init__(self, model: Model, synthesizer: Synthesizer) -> None:
        self.model = model
        self.card = model.card
        self.synthesizer = synthesizer
        self.sample_rate = model.card.audio.sample_rate
        self.encoder = TextEncoder(model.card.text)
        self._styles = synthesizer.style_bank()

    @classmethod
    def load(
        cls,
        model_dir: str | os.PathLike | None = None,
        *,
        backend: str = "auto",
        device: str = "cpu",
        threads: int | None = None,
        vocoder: str | GriffinLimOptions = "default",
        vocoder_device: str | None = None,
        options: SynthesisOptions | None = None,
        stop_threshold: float | None = None,
        precision: str | None = None,
        verify: bool = True,
    ) -> Voice:
        """Load ``model_dir`` (None: the shipped voice) on ``backend`` (auto, onnxruntime, tensorrt) and
        ``device`` (cpu, cuda). ``vocoder`` is a Griffin-Lim preset name (``default``, ``quality``,
        ``openseq2seq``) or options; ``vocoder_device`` runs Griffin-Lim elsewhere (CuPy); ``stop_threshold`` decodes
        with another threshold than the card's; ``precision`` is ``float32`` or ``int8`` (None: int8 on
        the CPU when the card has int8 graphs, :func:`~trtgen.engine.artifact.resolve_precision`);
        ``verify`` re-hashes every file against the card."""
        model = load_model(Path(model_dir) if model_dir is not None else default_model_dir(), verify=verify)
        if stop_threshold is not None:
            model = model.with_stop_threshold(stop_threshold)
        model = model.with_precision(resolve_precision(model.card, device, precision))
        vocoder_options = griffin_lim_preset(vocoder) if isinstance(vocoder, str) else vocoder
        options = dataclasses.replace(options or SynthesisOptions(), vocoder=vocoder_options)
        if vocoder_device is not None:
            options = dataclasses.replace(options, vocoder_device=vocoder_device)
        return cls(model, Synthesizer(model, create_backend(model, backend, device, threads=threads), options))

    # ------------------------------------------------------------------ facts
    @property
    def options(self) -> SynthesisOptions:
        return self.synthesizer.options

    @property
    def times(self) -> StageTimes:
        """Wall seconds per stage since the voice was loaded."""
        return self.synthesizer.times

    @property
    def decode_stats(self) -> Any:
        return self.synthesizer.decode_stats

    @property
    def precision(self) -> str:
        """``int8`` when the card's int8 graphs run (:meth:`~trtgen.engine.artifact.Model.with_precision`), else ``float32``."""
        return self.model.precision

    def describe(self) -> str:
        """Backend, device, precision and vocoder in one line (for reports)."""
        return f"{self.synthesizer.backend.describe()}, {self.precision}, vocoder {self.synthesizer.vocoder_device}"

    # ------------------------------------------------------------------ single pieces
    def encode(self, text: str) -> EncodedText:
        """The model's ids for ``text``; :class:`~trtgen.engine.text.TextError` if it cannot be spoken."""
        return self.encoder.encode_with_info(text)

    def style_embedding(self, style: Style) -> np.ndarray:
        """The style embedding of a clip (computed once per clip), or ``style`` itself if it is one."""
        found, errors = self._style_embeddings([style])
        if errors:
            raise AudioError(next(iter(errors.values())))
        return found[self._style_key(style)]

    def synthesize(
        self,
        text: str,
        style: Style,
        *,
        dropout: float | None = None,
        seed: int = 0,
        utterance_id: str = "utt",
        alignment: bool = False,
    ) -> Speech:
        """Speak ``text`` in ``style``; raises :class:`~trtgen.errors.UsageError` when it cannot."""
        row = Row(utterance_id, text, style, dropout, seed)
        (result,) = self.stream([row], batch_size=1, alignments=alignment)
        if isinstance(result, Rejected):
            raise UsageError(f"{utterance_id}: {result.reason}")
        return result

    # ------------------------------------------------------------------ many
    def stream(
        self,
        rows: Iterable[Row | Mapping[str, Any] | Sequence[Any]],
        *,
        batch_size: int | None = None,
        alignments: bool = False,
        mels: bool = False,
        lookahead: int | None = DEFAULT_LOOKAHEAD,
    ) -> Iterator[Speech | Rejected]:
        """Speak every row; yields :class:`Speech` as utterances finish (not in row order) and a
        :class:`Rejected` for each row that cannot be spoken (text outside the model's symbols, an
        unreadable clip, a decode too short to vocode): never raised mid-stream.

        Rows are read lazily, ``lookahead`` at a time (None: all at once), and decoded longest text
        first within that window; the audio does not depend on either, nor on ``batch_size``.
        """
        options = dataclasses.replace(
            self.options, batch_size=batch_size or self.options.batch_size, keep_alignments=alignments, keep_mels=mels
        )
        rejected: list[Rejected] = []
        pending: dict[int, tuple[Row, EncodedText, float]] = {}
        utterances = self._prepare((_as_row(r) for r in rows), lookahead, pending, rejected)
        for result in self.synthesizer.run(utterances, options):
            while rejected:  # filled by _prepare, which may run on the decoder's thread (overlapped stages)
                yield rejected.pop(0)
            row, encoded, dropout = pending.pop(result.index)
            speech = Speech(
                id=row.id, audio=np.zeros(0, np.float32) if result.audio is None else result.audio, sample_rate=self.sample_rate,
                text=encoded.spoken, symbols=encoded.text, text_ids=encoded.ids, frames=result.num_frames, steps=result.steps,
                stopped=result.stopped, dropout=dropout, seed=row.seed, alignment=result.alignment, mel=result.mel, tag=row.tag,
            )
            if result.audio is None:
                reason = f"the decoder stopped after {result.num_frames} frame(s): too short to vocode"
                yield Rejected(row.id, reason, row.tag, decoded=speech)
            else:
                yield speech
        yield from rejected

    def _prepare(
        self,
        rows: Iterator[Row],
        lookahead: int | None,
        pending: dict[int, tuple[Row, EncodedText, float]],
        rejected: list[Rejected],
    ) -> Iterator[Utterance]:
        """The one row -> utterance set-up: encode the text, embed the style, key the random streams.

        Rejects go to ``rejected`` (the caller yields them); accepted rows to ``pending`` by index.
        """
        counter = itertools.count()
        while True:
            window = list(itertools.islice(rows, lookahead)) if lookahead else list(rows)
            if not window:
                return
            encoded: list[tuple[Row, EncodedText]] = []
            for row in window:
                try:
                    encoded.append((row, self.encode(row.text)))
                except TextError as error:
                    rejected.append(Rejected(row.id, str(error), row.tag))
            styles, errors = self._style_embeddings(row.style for row, _ in encoded)
            ready: list[tuple[Row, EncodedText, str]] = []
            for row, text in encoded:
                key = self._style_key(row.style)
                if key in errors:
                    rejected.append(Rejected(row.id, f"style clip unusable: {errors[key]}", row.tag))
                else:
                    ready.append((row, text, key))
            ready.sort(key=lambda item: -item[1].text_len)  # stable: equal lengths keep row order
            for row, text, key in ready:
                dropout = self.card.model.prenet_dropout if row.dropout is None else float(row.dropout)
                index = next(counter)
                pending[index] = (row, text, dropout)
                yield Utterance(
                    index=index,
                    text_ids=text.ids,
                    style_embedding=styles[key],
                    dropout=dropout,
                    prenet_key=utterance_key(row.seed, row.id, "prenet"),
                    vocoder_key=utterance_key(row.seed, row.id, "griffin_lim"),
                    encoding_key=(text.text, key),
                )
            if not lookahead:
                return

    def _style_key(self, style: Style) -> str:
        if isinstance(style, np.ndarray):
            return "embedding:" + hashlib.blake2b(np.ascontiguousarray(style, np.float32).tobytes(), digest_size=16).hexdigest()
        return str(Path(style).expanduser().absolute())

    def _style_embeddings(self, styles: Iterable[Style]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Embeddings by style key, and the reason for each clip that cannot be read."""
        found: dict[str, np.ndarray] = {}
        clips: dict[str, Path] = {}
        for style in styles:
            key = self._style_key(style)
            if isinstance(style, np.ndarray):
                embedding = np.asarray(style, np.float32)
                if embedding.shape != (self.card.model.style_dim,):
                    raise UsageError(f"a style embedding has shape {embedding.shape}; this model's is ({self.card.model.style_dim},)")
                found[key] = embedding
            else:
                clips[key] = Path(key)
        embedded, errors = self._styles.embeddings(clips.values())
        found.update((str(path), embedding) for path, embedding in embedded.items())
        return found, {str(path): reason for path, reason in errors.items()}
