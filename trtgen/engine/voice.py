"""The Python API: load a model directory once, then speak one sentence or stream many.

    >>> from trtgen import Rejected, Row, Voice, shipped_styles
    >>> voice = Voice.load()                                   # the shipped voice, on the CPU
    >>> clip = shipped_styles()["us-m3"]                       # a reference clip shipped with trtgen
    >>> speech = voice.synthesize("Hello there.", style=clip, dropout=0.5, seed=0)
    >>> speech.audio.dtype, speech.sample_rate
    (dtype('float32'), 16000)
    >>> rows = [Row("a", "First sentence.", clip), Row("b", "", clip), Row("c", "Third.", clip, dropout=1.5)]
    >>> for result in sorted(voice.stream(rows), key=lambda result: result.id):
    ...     print(result.id, type(result.error).__name__ if isinstance(result, Rejected) else result.stopped)
    a True
    b TextError
    c UsageError

Every command goes through :class:`Voice`: ``trtgen generate`` streams its list's rows (one per
utterance and dataset copy), ``trtgen eval`` its held-out sentences, the demo and the benchmarks theirs,
and a cluster worker its blocks. So a row becomes an utterance in exactly one place
(:meth:`Voice._prepare`): the row checked, its text through the model's front end, its style clip
through the reference encoder (each clip once), the dropout and Griffin-Lim streams keyed by (seed,
utterance id). An utterance's audio is therefore a pure function of (model, text, style, dropout, seed,
id), whatever else is in its batch: ``voice.synthesize(text, style, dropout=d, seed=s, utterance_id=i)``
equals what ``trtgen generate`` writes for row ``i`` in a copy with dropout ``d`` and seed ``s``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import numbers
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trtgen.engine.artifact import PRECISIONS, Model, ModelCard, default_model_dir, load_model, resolve_precision
from trtgen.engine.backends import BACKENDS, create_backend
from trtgen.engine.quality import Quality, QualityThresholds, assess
from trtgen.engine.randomness import utterance_key
from trtgen.engine.rows import (
    NO_STYLE_HINT, Rejected, Row, RowLike, Speech, Style, as_row, check_dropout, check_seed, is_integer, loose_field, rejected_for, short_repr,
)
from trtgen.engine.styles import StyleBlend, StyleTokens, draw_token_weights
from trtgen.engine.synthesis import StageTimes, SynthesisOptions, Synthesizer, Utterance
from trtgen.engine.text import EncodedText, TextEncoder, last_spoken_index
from trtgen.engine.vocoder import GriffinLimOptions, griffin_lim_preset
from trtgen.errors import StyleError, SynthesisError, TextError, TrtgenError, UsageError

__all__ = ["Voice", "VoiceSpec"]

DEFAULT_LOOKAHEAD = 4096
"""Rows :meth:`Voice.stream` reads ahead and sorts by text length (less padding); any value gives the same audio."""

@dataclass(frozen=True)
class VoiceSpec:
    """How to load and run a model: the one way to build a :class:`Voice`.

    A command (``generate``, ``eval``, ``bench``) or a cluster worker carries this small frozen value
    instead of re-spelling its options, and a process loads its model once from it
    (:meth:`Voice.load`). Every field is checked here, before anything is loaded
    (:class:`~trtgen.errors.UsageError`).

    Attributes:
        model_dir: the model directory (``model.json`` + graphs); None: the voice shipped with trtgen.
        backend: ``auto``, ``onnxruntime`` or ``tensorrt``.
        device: ``cpu`` or ``cuda``.
        threads: ONNX Runtime threads on the CPU; None: every core this process may use.
        precision: ``float32`` or ``int8``; None: int8 on the CPU where the card has int8 graphs.
        synthesis: batch sizes, the Griffin-Lim options and where Griffin-Lim runs
            (:class:`~trtgen.engine.synthesis.SynthesisOptions`).
        stop_threshold: decode with this stop threshold instead of the card's (``trtgen eval``).
        verify: re-hash every file of the model against its card when loading.
        quality: quality-gate thresholds that override the card's (``(name, value)`` pairs of
            :class:`~trtgen.engine.quality.QualityThresholds`; ``trtgen generate --quality``).
    """

    model_dir: Path | None = None
    backend: str = "auto"
    device: str = "cpu"
    threads: int | None = None
    precision: str | None = None
    synthesis: SynthesisOptions = field(default_factory=SynthesisOptions)
    stop_threshold: float | None = None
    verify: bool = True
    quality: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "quality", tuple(sorted(dict(self.quality).items())))
        QualityThresholds.with_values(QualityThresholds(), dict(self.quality))  # names and values checked now
        if self.model_dir is not None:
            if not isinstance(self.model_dir, (str, os.PathLike)):
                raise UsageError(f"model directory {self.model_dir!r}: give a path")
            object.__setattr__(self, "model_dir", Path(self.model_dir).expanduser())
        if self.backend not in BACKENDS:
            raise UsageError(f"--backend {self.backend!r}: choose {', '.join(BACKENDS)}")
        if self.device not in ("cpu", "cuda"):
            raise UsageError(f"--device {self.device!r}: choose cpu or cuda")
        if self.threads is not None and not (is_integer(self.threads) and self.threads >= 1):
            raise UsageError(f"--threads {self.threads!r}: must be a whole number, 1 or more")
        if self.precision not in (None, *PRECISIONS):
            raise UsageError(f"--precision {self.precision!r}: choose {' or '.join(PRECISIONS)}")
        if not isinstance(self.synthesis, SynthesisOptions):
            raise UsageError(f"synthesis options {self.synthesis!r}: give a SynthesisOptions")
        if self.stop_threshold is not None and not (
            isinstance(self.stop_threshold, numbers.Real) and 0.0 < self.stop_threshold < 1.0
        ):
            raise UsageError(f"--stop-threshold {self.stop_threshold!r}: must be a number in (0, 1)")

    @property
    def directory(self) -> Path:
        """The model directory this spec loads (the shipped voice's when ``model_dir`` is None)."""
        return self.model_dir if self.model_dir is not None else default_model_dir()

    def quality_thresholds(self, card: ModelCard) -> QualityThresholds:
        """The quality gate's thresholds for a model with ``card``: the card's, overridden by ``quality``."""
        return QualityThresholds.with_values(QualityThresholds.from_card(card.defaults), dict(self.quality))

    def load_model(self) -> Model:
        """The model as it will run: the card read (and verified), stop threshold and precision applied."""
        model = load_model(self.directory, verify=self.verify)
        if self.stop_threshold is not None:
            model = model.with_stop_threshold(self.stop_threshold)
        return model.with_precision(resolve_precision(model.card, self.device, self.precision))


@dataclass(frozen=True)
class _Pending:
    """An utterance handed to the synthesizer, with what its result needs: the row, its encoded text,
    its seed, the utterance itself (a retry copies it) and which attempt it is."""

    row: Row
    encoded: EncodedText
    seed: int
    utterance: Utterance
    attempt: int = 1
    style_draw: dict[str, Any] | None = None


@dataclass
class _Checked:
    """A row that passed every check before the style encoder: its text encoded, its style named."""

    row: Row
    encoded: EncodedText
    dropout: float
    seed: int
    style_key: str
    """Equal styles, equal keys: a clip's absolute path, or ``embedding:<digest>``."""
    style: np.ndarray | Path | StyleBlend | StyleTokens
    """The embedding (float32) or the clip to embed."""


class Voice:
    """A loaded model directory on one backend and device, ready to speak.

    Build one with :meth:`load` (or :meth:`from_model`); every command, benchmark and worker goes through it.

    Attributes:
        spec: the :class:`VoiceSpec` it was loaded from.
        model: the loaded model directory (:class:`~trtgen.engine.artifact.Model`): its card and graphs.
        card: the model card (``model.json``): audio, text front end and model sizes.
        synthesizer: the pipeline that runs the graphs (:class:`~trtgen.engine.synthesis.Synthesizer`).
        sample_rate: samples per second of every :class:`Speech` it returns.
        encoder: the model's text front end (:class:`~trtgen.engine.text.TextEncoder`).
    """

    def __init__(self, model: Model, synthesizer: Synthesizer) -> None:
        self.model = model
        self.card = model.card
        self.synthesizer = synthesizer
        self.sample_rate = model.card.audio.sample_rate
        self.encoder = TextEncoder(model.card.text)
        self._styles = synthesizer.style_bank()
        self.spec = VoiceSpec(model.directory, device=synthesizer.backend.device, synthesis=synthesizer.options, verify=False)
        self.quality_thresholds = self.spec.quality_thresholds(model.card)
        """The quality gate's thresholds: the card's, overridden by the spec's ``quality``."""

    @classmethod
    def load(
        cls,
        model: str | os.PathLike | VoiceSpec | None = None,
        *,
        backend: str | None = None,
        device: str | None = None,
        threads: int | None = None,
        vocoder: str | GriffinLimOptions | None = None,
        vocoder_device: str | None = None,
        options: SynthesisOptions | None = None,
        stop_threshold: float | None = None,
        precision: str | None = None,
        verify: bool | None = None,
    ) -> Voice:
        """Load a model once, ready to speak.

        Args:
            model: a :class:`VoiceSpec`, or a model directory (None: the shipped voice) that the other
                arguments complete into one; with a spec, leave the other arguments out (refused with
                :class:`~trtgen.errors.UsageError`: the spec alone says how to load).
            backend: ``auto`` (None), ``onnxruntime`` or ``tensorrt``.
            device: ``cpu`` (None) or ``cuda``.
            threads: ONNX Runtime threads on the CPU (None: every core this process may use).
            vocoder: a Griffin-Lim preset name (``default``, ``quality``, ``openseq2seq``) or
                :class:`~trtgen.engine.vocoder.GriffinLimOptions`; None: the one in ``options``
                (the ``default`` preset unless ``options`` says otherwise).
            vocoder_device: run Griffin-Lim on ``cpu`` or ``cuda`` (CuPy); None: as ``options`` says.
            options: batch sizes and vocoder settings (:class:`~trtgen.engine.synthesis.SynthesisOptions`).
            stop_threshold: decode with another stop threshold than the card's.
            precision: ``float32`` or ``int8``; None: int8 on the CPU where the card has int8 graphs.
            verify: re-hash every file against the card (None: yes).

        Returns:
            The loaded :class:`Voice`; its ``spec`` is the :class:`VoiceSpec` it was loaded from.
        """
        if isinstance(model, VoiceSpec):
            keywords = dict(
                backend=backend, device=device, threads=threads, vocoder=vocoder, vocoder_device=vocoder_device, options=options,
                stop_threshold=stop_threshold, precision=precision, verify=verify,
            )
            given = [name for name, value in keywords.items() if value is not None]
            if given:
                raise UsageError(f"Voice.load(spec): give {', '.join(given)} in the VoiceSpec, not beside it")
            spec = model
        else:
            synthesis = options if options is not None else SynthesisOptions()
            if vocoder is not None:
                synthesis = dataclasses.replace(synthesis, vocoder=griffin_lim_preset(vocoder) if isinstance(vocoder, str) else vocoder)
            if vocoder_device is not None:
                synthesis = dataclasses.replace(synthesis, vocoder_device=vocoder_device)
            spec = VoiceSpec(
                model_dir=model, backend="auto" if backend is None else backend, device="cpu" if device is None else device,
                threads=threads, precision=precision, synthesis=synthesis, stop_threshold=stop_threshold,
                verify=True if verify is None else verify,
            )
        return cls.from_model(spec.load_model(), spec)

    @classmethod
    def from_model(cls, model: Model, spec: VoiceSpec) -> Voice:
        """A voice for a model already loaded from ``spec`` (:meth:`VoiceSpec.load_model`): a command that
        needs the card before the voice reads the model once. ``spec`` gives the backend, device,
        threads and synthesis options; its model fields (directory, precision, stop threshold, verify)
        are taken as what ``model`` was loaded with."""
        if not isinstance(spec, VoiceSpec):
            raise UsageError(f"Voice.from_model: give a VoiceSpec, not a {type(spec).__name__}")
        voice = cls(model, Synthesizer(model, create_backend(model, spec.backend, spec.device, threads=spec.threads), spec.synthesis))
        voice.spec = spec
        voice.quality_thresholds = spec.quality_thresholds(model.card)
        return voice

    def __repr__(self) -> str:
        backend = self.synthesizer.backend
        return f"Voice(model={short_repr(self.card.name)}, backend={backend.name!r}, device={backend.device!r}, precision={self.precision!r})"

    # ------------------------------------------------------------------ facts
    @property
    def options(self) -> SynthesisOptions:
        """The synthesis options it runs with (batch sizes, vocoder, overlap resolved)."""
        return self.synthesizer.options

    @property
    def times(self) -> StageTimes:
        """Wall seconds per stage since the voice was loaded."""
        return self.synthesizer.times

    @property
    def decode_stats(self) -> Any:
        """The decode loop's counters since the voice was loaded (:class:`~trtgen.engine.decode.DecodeStats`)."""
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
        """The model's ids for ``text``; :class:`~trtgen.errors.TextError` if it cannot be spoken."""
        if not isinstance(text, str):
            raise TextError(f"text {short_repr(text)} is of type {type(text).__name__}, not str")
        return self.encoder.encode_with_info(text)

    def style_embedding(self, style: Style) -> np.ndarray:
        """The style embedding (float32, the model's style size) of a clip, computed once per clip, or of
        ``style`` itself if it is one; :class:`~trtgen.errors.StyleError` if it cannot be used."""
        _, source = self._style_source(style)
        ((embedding, _),) = self._resolve_styles([source])
        if isinstance(embedding, StyleError):
            raise embedding
        return embedding.copy()

    def style_token_weights(self, style: Style) -> np.ndarray:
        """A clip's weights over the model's style tokens: float32 ``[heads, tokens]``, per attention head a
        softmax over the tokens (non-negative, summing to 1), computed with its embedding, once per clip.

        The embedding is linear in them (docs/openseq2seq-notes.md §4.4.6):
        ``voice.embedding_from_token_weights(voice.style_token_weights(clip))`` is ``voice.style_embedding(clip)``.

        Args:
            style: a reference clip (path to a WAV or FLAC, e.g. from :func:`trtgen.shipped_styles`).

        Raises:
            StyleError: the clip is missing, unreadable or not audio, or ``style`` is an embedding (its
                weights are not known).
            UsageError: the model was exported without token weights (re-export it with this trtgen).
        """
        _, source = self._style_source(style)
        if isinstance(source, np.ndarray):
            raise StyleError("token weights come from a reference clip: give its path, not an embedding")
        found, unreadable = self._styles.token_weights([source])
        if source in unreadable:
            raise StyleError(f"style clip unusable: {unreadable[source]}")
        return found[source].copy()

    def embedding_from_token_weights(self, weights: np.ndarray) -> np.ndarray:
        """The style embedding (float32, the model's style size) that token weights ``[heads, tokens]`` give,
        through the model's ``style_tokens`` graph: a style anywhere in the token bank, to speak with as
        :meth:`style_embedding`'s. A clip's own weights (:meth:`style_token_weights`) give its embedding.

        Weights off the simplex (negative, or a head not summing to 1) are computed as given, though the
        model never met them.

        Args:
            weights: float array of shape ``(heads, tokens)`` (:attr:`ModelCard.style_token_shape
                <trtgen.engine.artifact.ModelCard.style_token_shape>`).

        Raises:
            StyleError: (a :class:`~trtgen.errors.UsageError`) weights of another shape or type, or with
                non-finite values; the message names the shape wanted.
            UsageError: the model has no ``style_tokens`` graph (exported before trtgen wrote it):
                re-export it with this trtgen.
        """
        self._styles.require_style_tokens()
        heads, tokens = self.card.style_token_shape
        array = np.asarray(weights)
        if array.shape != (heads, tokens):
            raise StyleError(f"token weights of shape {array.shape}: this model's are ({heads}, {tokens}): {heads} heads x {tokens} tokens")
        return self._styles.embeddings_from_token_weights(array[None])[0]

    def synthesize(
        self,
        text: str,
        style: Style,
        *,
        dropout: float | None = None,
        seed: int = 0,
        utterance_id: str = "utt",
        alignment: bool = False,
        retries: int = 0,
    ) -> Speech:
        """Speak one sentence.

        Args:
            text: the transcript to speak; the model's front end normalises it (``Speech.text`` is what
                the audio says).
            style: the voice to speak in: a reference clip (path to a WAV or FLAC, e.g. from
                :func:`trtgen.shipped_styles`) or its style embedding (:meth:`style_embedding`).
            dropout: prenet dropout at inference, in [0, 1); None: the model's training rate. Each
                (dropout, seed, utterance_id) gives another rendition of the same text and style.
            seed: seed of the dataset copy (an integer); with ``utterance_id`` it fixes the dropout masks
                and the Griffin-Lim phase.
            utterance_id: the utterance's id, which keys its random streams: ``trtgen generate`` writes
                this same audio for the row with this id, dropout and seed.
            alignment: also keep the attention weights (``Speech.alignment``).
            retries: speak it again, with the next dropout stream, up to this many times while the quality
                gate fails it (``Speech.quality``, ``Speech.attempt``); still a pure function of the
                arguments.

        Returns:
            The :class:`Speech`: audio, sample rate, transcript spoken, frames, whether the stop token
            fired, the quality gate's verdict (a failed one is returned, not raised).

        Raises:
            TextError: the text cannot be spoken (empty, too long, characters outside the model's symbols).
            StyleError: the clip is missing, unreadable or not audio, or the embedding has the wrong shape
                or type or non-finite values.
            UsageError: another bad argument: a dropout outside [0, 1) or not a number, a seed that is not
                an integer, an id that is not a string.
            SynthesisError: the decoder stopped too early to vocode (another seed or dropout may speak it).
        """
        row = Row(utterance_id, text, style, dropout, seed)
        (result,) = self.stream([row], batch_size=1, alignments=alignment, retries=retries)
        if isinstance(result, Rejected):
            raise result.error if result.error is not None else TrtgenError(result.reason)
        return result

    # ------------------------------------------------------------------ many
    def stream(
        self,
        rows: Iterable[RowLike],
        *,
        batch_size: int | None = None,
        alignments: bool = False,
        mels: bool = False,
        lookahead: int | None = DEFAULT_LOOKAHEAD,
        retries: int = 0,
    ) -> Iterator[Speech | Rejected]:
        """Speak every row; yields a :class:`Speech` as each utterance finishes (not in row order) and a
        :class:`Rejected` for each row that cannot be spoken: never raises for a row.

        A row is rejected, with a one-line reason and the typed error (:attr:`Rejected.error`), for
        text the model cannot speak, a style clip or embedding it cannot use, a dropout outside [0, 1),
        a seed that is not an integer, an id that is not a string, something that is not a row at all,
        or a decode too short to vocode; the rows after it are spoken as if it were not there.

        Args:
            rows: :class:`Row` objects, mappings of their fields, or tuples in their order; read lazily.
            batch_size: utterances decoded together (None: the voice's ``options.batch_size``).
            alignments: keep each utterance's attention weights (``Speech.alignment``).
            mels: keep each utterance's postnet log-mel (``Speech.mel``).
            lookahead: rows read ahead and decoded longest text first (less padding); None: all at once.
                The audio depends neither on it nor on ``batch_size``.
            retries: speak an utterance the quality gate fails (:attr:`Speech.quality`), or one decoded
                too short to vocode, again with the next dropout stream, up to this many times; the
                first passing attempt is yielded, else the last. Still a pure function of the row.
        """
        if isinstance(retries, bool) or not isinstance(retries, numbers.Integral) or retries < 0:
            raise UsageError(f"retries {retries!r}: must be a whole number, 0 or more")
        options = dataclasses.replace(
            self.options, batch_size=batch_size or self.options.batch_size, keep_alignments=alignments, keep_mels=mels
        )
        rejected: list[Rejected] = []
        pending: dict[int, _Pending] = {}
        indexes = itertools.count()
        source: Iterable[Utterance] = self._prepare(iter(rows), lookahead, pending, rejected, indexes)
        while True:
            again: list[_Pending] = []
            for result in self.synthesizer.run(source, options):
                while rejected:  # filled by _prepare, which may run on the decoder's thread (overlapped stages)
                    yield rejected.pop(0)
                item = pending.pop(result.index)
                outcome = self._outcome(item, result)
                failed = isinstance(outcome, Rejected) or not (outcome.quality is None or outcome.quality.ok)
                if failed and item.attempt <= retries:
                    again.append(item)
                else:
                    yield outcome
            yield from rejected
            rejected.clear()
            if not again:
                return
            source = [self._retry(item, next(indexes), pending) for item in again]

    def _outcome(self, item: _Pending, result: Any) -> Speech | Rejected:
        """The :class:`Speech` of a synthesised utterance, judged by the quality gate, or a
        :class:`Rejected` when it decoded too short to vocode."""
        row, encoded = item.row, item.encoded
        speech = Speech(
            id=row.id, audio=np.zeros(0, np.float32) if result.audio is None else result.audio, sample_rate=self.sample_rate,
            text=encoded.spoken, symbols=encoded.text, text_ids=encoded.ids, frames=result.num_frames, steps=result.steps,
            stopped=result.stopped, dropout=item.utterance.dropout, seed=item.seed, alignment=result.alignment, mel=result.mel,
            tag=row.tag, quality=self._assess(encoded, result), attempt=item.attempt, style_draw=item.style_draw,
        )
        if result.audio is None:
            error = SynthesisError(f"the decoder stopped after {result.num_frames} frame(s): too short to vocode")
            return Rejected(row.id, str(error), row.tag, decoded=speech, error=error)
        return speech

    def _assess(self, encoded: EncodedText, result: Any) -> Quality | None:
        """The quality gate (:func:`~trtgen.engine.quality.assess`) on one synthesised utterance."""
        if result.attention_path is None:
            return None
        text = self.card.text
        ids = np.asarray(encoded.ids)
        eos = int(np.flatnonzero(ids == text.eos_id)[0])
        return assess(
            stopped=result.stopped, frames=result.num_frames, symbols=eos - 1, attention_path=result.attention_path,
            attention_peak=result.attention_peak, eos_index=eos, end_index=last_spoken_index(ids, text),
            audio=np.zeros(0, np.float32) if result.audio is None else result.audio, hop_length=self.card.audio.hop_length,
            sample_rate=self.sample_rate, thresholds=self.quality_thresholds,
        )

    @staticmethod
    def _retry(item: _Pending, index: int, pending: dict[int, _Pending]) -> Utterance:
        """The next attempt at a failed utterance: the same text and style, the next prenet dropout stream
        (keyed by the attempt, so the attempt is a pure function of the row too)."""
        attempt = item.attempt + 1
        utterance = dataclasses.replace(
            item.utterance, index=index, prenet_key=utterance_key(item.seed, item.row.id, f"prenet#{attempt}")
        )
        pending[index] = dataclasses.replace(item, utterance=utterance, attempt=attempt)
        return utterance

    def _prepare(
        self,
        items: Iterator[Any],
        lookahead: int | None,
        pending: dict[int, _Pending],
        rejected: list[Rejected],
        counter: Iterator[int],
    ) -> Iterator[Utterance]:
        """The one row -> utterance set-up: check the row, encode the text, embed the style, key the random streams.

        Rejects go to ``rejected`` (the caller yields them); accepted rows to ``pending`` by index.
        """
        positions = itertools.count()
        while True:
            window = list(itertools.islice(items, lookahead)) if lookahead else list(items)
            if not window:
                return
            checked: list[_Checked] = []
            for item in window:
                position = next(positions)
                try:
                    row = as_row(item)
                except UsageError as error:
                    item_id = loose_field(item, "id", 0)
                    rejected.append(rejected_for(f"#{position}" if item_id is None else item_id, loose_field(item, "tag", 5), error))
                    continue
                try:
                    dropout, seed, style_key, style = self._check(row)
                except UsageError as error:  # a StyleError, or a bad id, dropout or seed
                    rejected.append(rejected_for(row.id, row.tag, error))
                    continue
                try:
                    encoded = self.encode(row.text)
                except TextError as error:  # not any UsageError: a missing espeak-ng would fail every row alike
                    rejected.append(rejected_for(row.id, row.tag, error))
                    continue
                dropout = self.card.model.prenet_dropout if dropout is None else dropout
                checked.append(_Checked(row, encoded, dropout, seed, style_key, style))
            resolved = self._resolve_styles([c.style for c in checked])
            ready: list[tuple[_Checked, np.ndarray, dict[str, Any] | None]] = []
            for c, (embedding, drawn) in zip(checked, resolved):
                if isinstance(embedding, StyleError):
                    rejected.append(rejected_for(c.row.id, c.row.tag, embedding))
                else:
                    ready.append((c, embedding, drawn))
            ready.sort(key=lambda item: -item[0].encoded.text_len)  # stable: equal lengths keep row order
            for c, embedding, drawn in ready:
                utterance = Utterance(
                    index=next(counter),
                    text_ids=c.encoded.ids,
                    style_embedding=embedding,
                    dropout=c.dropout,
                    prenet_key=utterance_key(c.seed, c.row.id, "prenet"),
                    vocoder_key=utterance_key(c.seed, c.row.id, "griffin_lim"),
                    encoding_key=(c.encoded.text, c.style_key),
                )
                pending[utterance.index] = _Pending(c.row, c.encoded, c.seed, utterance, style_draw=drawn)
                yield utterance
            if not lookahead:
                return

    def _check(self, row: Row) -> tuple[float | None, int, str, np.ndarray | Path]:
        """The checks of one row before its text is encoded: (dropout, seed, style key, style source).

        Raises :class:`~trtgen.errors.StyleError`, or :class:`~trtgen.errors.UsageError` for a bad id,
        dropout or seed (the text is checked by :meth:`encode`).
        """
        if not isinstance(row.id, str):
            raise UsageError(f"the row's id {short_repr(row.id)} is of type {type(row.id).__name__}, not str")
        return (check_dropout(row.dropout), check_seed(row.seed), *self._style_source(row.style))

    def _resolve_styles(self, sources: list[Any]) -> list[tuple[np.ndarray | StyleError, dict[str, Any] | None]]:
        """Each source's embedding (or the StyleError that stops it) and, for a drawn style, what was drawn.
        Every clip involved is embedded once (:class:`~trtgen.engine.synthesis.StyleBank`)."""
        clips: list[Path] = []
        token_clips: list[Path] = []
        for source in sources:
            if isinstance(source, Path):
                clips.append(source)
            elif isinstance(source, StyleBlend):
                clips += [source.first, source.second]
            elif isinstance(source, StyleTokens):
                token_clips.append(source.clip)
        embedded, unreadable = self._styles.embeddings(clips)
        weights: dict[Path, np.ndarray] = {}
        if token_clips:
            try:
                weights, more = self._styles.token_weights(token_clips)
                unreadable.update(more)
            except UsageError as error:  # a model exported without its token bank
                unreadable.update({clip: str(error) for clip in token_clips})
        results: list[tuple[np.ndarray | StyleError, dict[str, Any] | None]] = []
        for source in sources:
            used = [source] if isinstance(source, Path) else [source.first, source.second] if isinstance(source, StyleBlend) else \
                [source.clip] if isinstance(source, StyleTokens) else []
            broken = [clip for clip in used if clip in unreadable]
            if broken:
                results.append((StyleError(f"style clip unusable: {unreadable[broken[0]]}"), None))
            elif isinstance(source, np.ndarray):
                results.append((source, None))
            elif isinstance(source, Path):
                results.append((embedded[source], None))
            elif isinstance(source, StyleBlend):
                weight = np.float32(source.weight)
                mixed = weight * embedded[source.first] + (np.float32(1.0) - weight) * embedded[source.second]
                results.append((mixed.astype(np.float32), {"mode": "blend", **source.to_json()}))
            else:
                drawn = draw_token_weights(weights[source.clip], source.concentration, source.key)
                embedding = self._styles.embeddings_from_token_weights(drawn[None])[0]
                results.append((embedding, {"mode": "tokens", **source.to_json(drawn)}))
        return results

    def _style_source(self, style: Any) -> tuple[str, np.ndarray | Path | StyleBlend | StyleTokens]:
        """The key naming ``style`` (equal styles, equal keys) and what makes it: a float32 embedding, a
        clip's absolute path, or a drawn style over absolute paths (:mod:`trtgen.engine.styles`);
        :class:`~trtgen.errors.StyleError` if it cannot be a style."""
        if isinstance(style, StyleBlend):
            if not 0.0 <= style.weight <= 1.0:
                raise StyleError(f"a blend weight of {style.weight}: it must be in [0, 1]")
            first, second = (self._style_source(clip)[1] for clip in (style.first, style.second))
            blend = StyleBlend(first, second, float(style.weight))  # type: ignore[arg-type]
            return f"blend:{first}|{second}|{blend.weight!r}", blend
        if isinstance(style, StyleTokens):
            clip = self._style_source(style.clip)[1]
            tokens = StyleTokens(clip, float(style.concentration), int(style.key))  # type: ignore[arg-type]
            return f"tokens:{clip}|{tokens.concentration!r}|{tokens.key}", tokens
        if isinstance(style, np.ndarray):
            dim = self.card.model.style_dim
            if style.dtype.kind != "f":
                raise StyleError(f"a style embedding of dtype {style.dtype}: it must be floating point (float32)")
            if style.shape != (dim,):
                raise StyleError(f"a style embedding of shape {style.shape}: this model's is ({dim},)")
            embedding = np.asarray(style, np.float32)
            if not np.isfinite(embedding).all():
                raise StyleError("a style embedding with NaN or infinite values (as float32)")
            return "embedding:" + hashlib.blake2b(np.ascontiguousarray(embedding).tobytes(), digest_size=16).hexdigest(), embedding
        if style is None:
            raise StyleError(f"no style: {NO_STYLE_HINT}")
        if not isinstance(style, (str, os.PathLike)):
            raise StyleError(f"a style of type {type(style).__name__}: {NO_STYLE_HINT}")
        try:
            path = Path(style).expanduser().absolute()
        except (TypeError, RuntimeError) as error:  # a bytes path; "~user" of no such user
            raise StyleError(f"style {short_repr(style)} is not a usable path ({error})") from None
        return str(path), path
