"""Text + style embedding -> waveform, for a stream of utterances: the inference pipeline.

Stages: text encoder (batched, shared by utterances that differ only in dropout), the chunked decode
loop (:mod:`trtgen.engine.decode`), postnet + magnitude branch (in sub-batches of similar length, each item
masked to its own length), Griffin-Lim (:mod:`trtgen.engine.vocoder`). Every stage runs through the backend's
graph runners, so the same code serves ONNX Runtime (CPU, CUDA) and TensorRT.

By default the stages overlap (:mod:`trtgen.engine.overlap`): while the decoder decodes one group of
utterances, the postnet runs on the group before and Griffin-Lim on the one before that, each stage
with its own thread count (docs/throughput.md). Groups are formed in the decoder's completion order
and every stage treats an utterance on its own, so the audio is the same, byte for byte, with or
without overlap and whatever the thread counts (tests/engine/test_voice_api.py).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from trtgen.engine.artifact import STYLE_TOKEN_WEIGHTS, STYLE_TOKENS, Model
from trtgen.engine.audio import AudioError, pad_style_batch, style_features
from trtgen.engine.backends.base import Backend, GraphRunner
from trtgen.engine.cost import work_per_frame
from trtgen.engine.decode import ChunkedDecoder, DecodeRequest, DecodeStats, DecodedUtterance
from trtgen.engine.overlap import overlapped
from trtgen.engine.vocoder import GriffinLimOptions, available_cores, griffin_lim, vocoder_array_module
from trtgen.errors import StyleError, UsageError

logger = logging.getLogger(__name__)

__all__ = ["SynthesisOptions", "Utterance", "SynthesizedUtterance", "StageTimes", "Synthesizer", "StyleBank", "stage_threads", "overlap_pays", "postnet_batches"]


PostnetGroup = tuple[list[DecodedUtterance], list[Any], list[Any]]
"""Utterances sorted by length, with their postnet mels and linear magnitudes (each ``[frames, ...]``)."""

_POSTNET_CALL_FRAMES = {"cpu": 16}
"""A postnet call's fixed cost in frames of work, by device (ONNX Runtime on the project's CPU: about
0.15 ms a call against 12 us a frame, docs/throughput.md); a device not named runs a group as one call."""


@dataclass(frozen=True)
class SynthesisOptions:
    batch_size: int = 32
    """Utterances decoded together (decoder rows)."""
    encoder_batch_size: int = 32
    postnet_batch_size: int = 16
    """Utterances per postnet and Griffin-Lim batch (grouped by similar length)."""
    vocoder: GriffinLimOptions = field(default_factory=GriffinLimOptions)
    vocoder_device: str | None = None
    """``cpu`` or ``cuda`` (CuPy) for Griffin-Lim; None: where the backend's outputs live."""
    keep_alignments: bool = False
    keep_mels: bool = False
    overlap: bool | None = None
    """Decoder, postnet and vocoder of successive groups run at the same time (threads); the audio is
    the same either way. False: one stage after another, each on all of the backend's threads. None:
    on the CPU where it pays (:func:`overlap_pays`: not when the decoder is nearly all the work); on a
    GPU not yet (never run there, docs/gpu.md)."""
    decoder_threads: int | None = None
    """ONNX Runtime threads of the text encoder and decoder on the CPU; None: :func:`stage_threads`."""
    postnet_threads: int | None = None
    """ONNX Runtime threads of the postnet on the CPU; None: :func:`stage_threads`."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "encoder_batch_size", "postnet_batch_size"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        for name in ("decoder_threads", "postnet_threads"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise UsageError(f"{name.replace('_', '-')} must be at least 1, not {value}")
        if self.vocoder_device not in (None, "cpu", "cuda"):
            raise UsageError(f"unknown vocoder device {self.vocoder_device!r} (cpu or cuda)")


@dataclass
class Utterance:
    """One unit of work: a text to speak with a style, under one dropout stream."""

    index: int
    text_ids: np.ndarray
    style_embedding: np.ndarray
    dropout: float
    prenet_key: int
    vocoder_key: int
    encoding_key: Hashable
    """Utterances with equal keys have equal text and style: the encoder runs once for them."""


@dataclass
class SynthesizedUtterance:
    index: int
    audio: np.ndarray | None
    """float32 waveform at the model's sample rate; None when the decoder produced too few frames."""
    num_frames: int
    """Decoder frames including the stop frame (the vocoder drops it, as OpenSeq2Seq does)."""
    stopped: bool
    steps: int
    mel: np.ndarray | None = None
    alignment: np.ndarray | None = None
    attention_path: np.ndarray | None = None
    """[steps] the symbol each decoder step attended most (:class:`~trtgen.engine.decode.DecodedUtterance`)."""
    attention_peak: np.ndarray | None = None


@dataclass
class StageTimes:
    """Wall seconds per stage, for the end-of-run table. With overlapping stages their sum exceeds the
    run's wall time: each figure is the time that stage was busy."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds

    def total(self) -> float:
        return sum(self.seconds.values())


class _TimedRunner:
    """A graph runner that adds its wall time to a stage.

    With ``wide`` (the same graph on more threads) and ``alone`` (whether the other stages are idle),
    each call runs on ``wide`` while nothing else works: the decoder takes both cores while the
    pipeline fills and whenever the postnet and vocoder have caught up. ONNX Runtime gives the same
    bytes on one thread or two (tests/engine/test_voice_api.py), so which one ran does not show.
    """

    def __init__(
        self, runner: GraphRunner, times: StageTimes, stage: str, wide: GraphRunner | None = None, alone: Callable[[], bool] = lambda: False
    ) -> None:
        self.runner = runner
        self.wide = wide
        self.alone = alone
        self.times = times
        self.stage = stage
        self.name = runner.name
        self.input_names = runner.input_names
        self.output_names = runner.output_names

    def run(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        runner = self.wide if self.wide is not None and self.alone() else self.runner
        started = time.perf_counter()
        try:
            return runner.run(feeds, outputs)
        finally:
            self.times.add(self.stage, time.perf_counter() - started)


class _InFlight:
    """Groups handed from the decoder to the postnet and not yet through the vocoder."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    def add(self, change: int) -> None:
        with self._lock:
            self._count += change

    def idle(self) -> bool:
        return self._count == 0


class StyleBank:
    """Style embeddings per clip, each computed once (and cached) from that clip alone, with the clip's
    token weights where the model has them; and the token bank's map from weights to an embedding.

    A corpus reuses each M-AILABS clip for many transcripts; encoding it once saves the audio front end
    and the reference encoder for every later use. Alone, on one thread: in a batch, or on several
    threads, ONNX Runtime's matrix products in the reference encoder's GRU round differently (their K
    blocking follows each call's shapes), so an embedding, and every utterance spoken with it, would
    depend on which other clips shared its batch: on the list's order, the shard, the resume point.
    Token weights go through the ``style_tokens`` graph one row at a time, on one thread, for the same reason.
    """

    def __init__(self, model: Model, backend: Backend, times: StageTimes) -> None:
        self.audio = model.card.audio
        self.card = model.card
        self.backend = backend
        self.runner = _TimedRunner(backend.load("style_encoder", threads=1), times, "style encoder")
        self.outputs = ["style_embedding"] + ([STYLE_TOKEN_WEIGHTS] if self.card.has_style_tokens else [])
        self.times = times
        self.xp = backend.xp
        self.cache: dict[Path, np.ndarray] = {}
        self.token_weights_cache: dict[Path, np.ndarray] = {}
        """Each cached clip's token weights [heads, tokens] (computed in the same call as its embedding)."""
        self._tokens_runner: _TimedRunner | None = None

    def embeddings(self, clips: Iterable[Path]) -> tuple[dict[Path, np.ndarray], dict[Path, str]]:
        """Embeddings of ``clips`` (host arrays) and, for clips that cannot be read, the reason."""
        wanted = list(dict.fromkeys(clips))
        errors = self._encode(wanted)
        return {c: self.cache[c] for c in wanted if c in self.cache}, errors

    def token_weights(self, clips: Iterable[Path]) -> tuple[dict[Path, np.ndarray], dict[Path, str]]:
        """Token weights [heads, tokens] of ``clips`` (host arrays: per head a softmax over the style tokens)
        and, for clips that cannot be read, the reason; :class:`~trtgen.errors.UsageError` for a model
        exported without them."""
        self.require_style_tokens()
        wanted = list(dict.fromkeys(clips))
        errors = self._encode(wanted)
        return {c: self.token_weights_cache[c] for c in wanted if c in self.token_weights_cache}, errors

    def embeddings_from_token_weights(self, weights: Any) -> np.ndarray:
        """Style embeddings [rows, style_dim] (host array) of token weights [rows, heads, tokens], each row
        through the ``style_tokens`` graph on its own (a clip's own weights give its embedding).

        Raises :class:`~trtgen.errors.StyleError` for weights of another shape or type or with non-finite
        values, :class:`~trtgen.errors.UsageError` for a model exported without ``style_tokens``.
        """
        self.require_style_tokens()
        heads, tokens = self.card.style_token_shape
        array = np.asarray(weights)
        if array.dtype.kind != "f":
            raise StyleError(f"token weights of dtype {array.dtype}: they must be floating point (float32)")
        if array.ndim != 3 or array.shape[1:] != (heads, tokens):
            raise StyleError(
                f"token weights of shape {array.shape}: this model's are (rows, {heads}, {tokens}): "
                f"per row {heads} heads x {tokens} tokens"
            )
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise StyleError("token weights with NaN or infinite values (as float32)")
        if self._tokens_runner is None:
            self._tokens_runner = _TimedRunner(self.backend.load(STYLE_TOKENS, threads=1), self.times, "style encoder")
        embeddings = np.zeros((len(array), self.card.model.style_dim), np.float32)
        for row, one in enumerate(array):
            out = self._tokens_runner.run({STYLE_TOKEN_WEIGHTS: self.xp.asarray(one[None])}, ["style_embedding"])["style_embedding"]
            embeddings[row] = _to_host(out, self.xp)[0]
        return embeddings

    def require_style_tokens(self) -> None:
        """:class:`~trtgen.errors.UsageError`, saying how to get them, unless the model has its token weights and ``style_tokens``."""
        if not self.card.has_style_tokens:
            raise UsageError(
                f"the model {self.card.name!r} has no {STYLE_TOKENS} graph (and its style encoder no token weights): it was "
                "exported before trtgen wrote them; re-export it with this trtgen (trtgen export CHECKPOINT --out DIR), "
                "or add them to the directory as it is: python -m trtgen_export.style_tokens DIR"
            )

    def _encode(self, clips: list[Path]) -> dict[Path, str]:
        """Encode the clips not yet cached, each alone (one call gives its embedding and token weights);
        returns the reason for each clip that cannot be read."""
        errors: dict[Path, str] = {}
        for clip in clips:
            if clip in self.cache:
                continue
            started = time.perf_counter()
            try:
                mel, _ = style_features(clip, self.audio)
            except AudioError as error:
                errors[clip] = str(error)
                continue
            finally:
                self.times.add("style front end", time.perf_counter() - started)
            mels, lengths = pad_style_batch([mel])
            out = self.runner.run(
                {"style_mel": self.xp.asarray(mels), "style_len": self.xp.asarray(lengths.astype(np.int32))}, self.outputs
            )
            if STYLE_TOKEN_WEIGHTS in out:
                self.token_weights_cache[clip] = _to_host(out[STYLE_TOKEN_WEIGHTS], self.xp)[0]
            self.cache[clip] = _to_host(out["style_embedding"], self.xp)[0]
        return errors


DECODER_SCALING = 1.5
"""The decoder's speed-up from one thread to two on the project's CPU (1.4-1.6x, benchmarks/RESULTS.md "Limits")."""


def overlap_pays(model: Model, options: SynthesisOptions) -> bool:
    """Whether overlapped stages beat one stage after another for ``model``: not when its decoder sets the pace.

    On two cores, overlapped, the decoder has one core and needs ``W_d`` (its work, in seconds of one
    core) while the postnet and vocoder (``W_pv``) run beside it: about ``max(W_d, (W_d + W_pv) / 2)``.
    One after another, the decoder has both cores, ``W_d / s`` (``s`` = :data:`DECODER_SCALING`), and
    the rest follows, about ``W_pv / 2``. Overlap wins when ``W_pv > 2 W_d (1 - 1/s)``: for the shipped
    voice and the small model, whose postnet and vocoder outweigh their decoder, not for the full-size
    model (decoder 80% of the work; measured slower overlapped, with one decoder thread or two). Work
    counted by :func:`trtgen.engine.cost.work_per_frame`; docs/throughput.md.
    """
    w_d, w_pv = work_per_frame(model.card, options.vocoder.n_iter, model.precision == "int8")
    return w_pv >= 2 * w_d * (1 - 1 / DECODER_SCALING)


def stage_threads(options: SynthesisOptions, cores: int) -> tuple[int | None, int | None]:
    """ONNX Runtime threads of (decoder, postnet); None: the backend's own setting.

    Overlapping stages share ``cores``: half each for the decoder (with the text encoder, on its thread)
    and the postnet, at least one, and Griffin-Lim's task pool takes what they leave idle. Measured on
    two cores (docs/throughput.md): from one thread to two the decoder gains 1.4-1.6x and Griffin-Lim
    1.35x, so one thread each, side by side, keeps both cores busier than two threads taking turns.
    """
    if not options.overlap:
        return options.decoder_threads, options.postnet_threads
    half = max(1, cores // 2)
    return options.decoder_threads or half, options.postnet_threads or half


class Synthesizer:
    """Runs the model directory's graphs on a backend."""

    def __init__(self, model: Model, backend: Backend, options: SynthesisOptions | None = None) -> None:
        self.model = model
        self.card = model.card
        self.backend = backend
        self.xp = backend.xp
        self.options = options or SynthesisOptions()
        device = self.options.vocoder_device
        self.vocoder_xp = self.xp if device is None else vocoder_array_module(device)
        self.vocoder_device = "cpu" if self.vocoder_xp is np else "cuda"
        self.times = StageTimes()
        cores = backend.threads or available_cores()
        if self.options.overlap is None:
            # Overlap needs a core per stage: with one (a cluster worker with --threads 1, say) its stages
            # would only take turns on it (measured 10-15% slower than one stage after another).
            overlap = backend.device == "cpu" and cores >= 2 and overlap_pays(model, self.options)
            self.options = dataclasses.replace(self.options, overlap=overlap)
        decoder_threads, postnet_threads = stage_threads(self.options, cores)
        # Overlapping stages share the cores: an idle worker sleeps instead of spinning.
        spinning = not self.options.overlap
        self.in_flight = _InFlight()
        widen = bool(self.options.overlap) and self.options.decoder_threads is None and decoder_threads is not None and decoder_threads < cores

        def decoder_stage(graph: str, stage: str) -> _TimedRunner:
            wide = backend.load(graph, threads=cores, spinning=False) if widen else None
            return _TimedRunner(backend.load(graph, threads=decoder_threads, spinning=spinning), self.times, stage, wide, lambda: self.in_flight.idle())

        self.text_encoder = decoder_stage("text_encoder", "text encoder")
        self.decoder_runner = decoder_stage("decoder_chunk", "decoder")
        self.postnet = _TimedRunner(backend.load("postnet", threads=postnet_threads, spinning=spinning), self.times, "postnet")
        self.decode_stats = DecodeStats()

    def style_bank(self) -> StyleBank:
        return StyleBank(self.model, self.backend, self.times)

    # ---------------------------------------------------------------- stages
    def _requests(
        self, utterances: Iterable[Utterance], vocoder_keys: dict[int, int], options: SynthesisOptions
    ) -> Iterator[DecodeRequest]:
        """Encode texts in batches (once per encoding key) and emit decode requests."""
        xp = self.xp
        batch: list[Utterance] = []

        def flush() -> Iterator[DecodeRequest]:
            unique: dict[Hashable, Utterance] = {}
            for u in batch:
                unique.setdefault(u.encoding_key, u)
            items = list(unique.values())
            lengths = np.array([len(u.text_ids) for u in items], np.int32)
            ids = np.zeros((len(items), int(lengths.max())), np.int32)
            for row, u in enumerate(items):
                ids[row, : lengths[row]] = u.text_ids
            styles = np.stack([u.style_embedding for u in items]).astype(np.float32)
            out = self.text_encoder.run(
                {"text_ids": xp.asarray(ids), "text_len": xp.asarray(lengths), "style_embedding": xp.asarray(styles)},
                ["memory", "memory_keys"],
            )
            rows = {key: row for row, key in enumerate(unique)}
            for u in batch:
                row = rows[u.encoding_key]
                n = int(lengths[row])
                vocoder_keys[u.index] = u.vocoder_key
                yield DecodeRequest(u.index, out["memory"][row, :n], out["memory_keys"][row, :n], u.prenet_key, u.dropout)
            batch.clear()

        for utterance in utterances:
            batch.append(utterance)
            if len({u.encoding_key for u in batch}) >= options.encoder_batch_size:
                yield from flush()
        if batch:
            yield from flush()

    def _postnet(self, decoded: list[DecodedUtterance]) -> PostnetGroup:
        """Postnet + magnitude branch for a group of decoded utterances, in sub-batches of similar length.

        The group is sorted by length and cut where :func:`postnet_batches` says padding would cost more
        than another call: on the CPU nearly every utterance runs alone (a call costs about 12 frames'
        work, the shipped voice's held-out sentences padded to their group's longest would waste 23%);
        on a GPU the group is one call. Each row is masked to its own length, so its output does not
        depend on its batch mates (tests/engine/test_synthesis.py).
        """
        xp = self.xp
        decoded = sorted(decoded, key=lambda d: d.num_frames)
        lengths = [d.num_frames for d in decoded]
        mels_out: list[Any] = []
        magnitudes: list[Any] = []
        for start, end in postnet_batches(lengths, _POSTNET_CALL_FRAMES.get(self.backend.device)):
            rows = decoded[start:end]
            longest = lengths[end - 1]
            mels = xp.zeros((len(rows), longest, self.card.model.num_mels), xp.float32)
            for row, d in enumerate(rows):
                mels[row, : d.num_frames] = d.frames
            out = self.postnet.run({"mel": mels, "mel_len": xp.asarray(np.array(lengths[start:end], np.int32))}, ["mel_postnet", "magnitude"])
            for row, d in enumerate(rows):
                mels_out.append(out["mel_postnet"][row, : d.num_frames])
                magnitudes.append(out["magnitude"][row, : d.num_frames])
        return decoded, mels_out, magnitudes

    def _vocode(self, group: PostnetGroup, vocoder_keys: dict[int, int], options: SynthesisOptions) -> list[SynthesizedUtterance]:
        """Griffin-Lim for a group that went through the postnet."""
        decoded, mels, magnitudes = group
        xp = self.xp
        vocodable = [row for row, d in enumerate(decoded) if d.num_frames > 2]
        started = time.perf_counter()
        vxp = self.vocoder_xp
        targets = [magnitudes[row][: decoded[row].num_frames - 1] for row in vocodable]
        if vxp is not xp:
            targets = [vxp.asarray(_to_host(t, xp)) for t in targets]
        waves = griffin_lim(targets, [vocoder_keys[decoded[row].index] for row in vocodable], options.vocoder, self.card.audio, vxp)
        audio = {row: _to_host(w, vxp) for row, w in zip(vocodable, waves)}
        self.times.add("vocoder", time.perf_counter() - started)
        results = []
        for row, d in enumerate(decoded):
            results.append(
                SynthesizedUtterance(
                    index=d.index, audio=audio.get(row), num_frames=d.num_frames, stopped=d.stopped,
                    steps=d.steps, mel=_to_host(mels[row], xp) if options.keep_mels else None, alignment=d.alignment,
                    attention_path=d.attention_path, attention_peak=d.attention_peak,
                )
            )
            vocoder_keys.pop(d.index, None)
        return results

    def run(self, utterances: Iterable[Utterance], options: SynthesisOptions | None = None) -> Iterator[SynthesizedUtterance]:
        """Synthesise a stream of utterances; results come in completion order.

        ``options`` overrides the constructor's for this call (batch sizes, vocoder, what to keep,
        overlap); the vocoder's device and the stages' thread counts are the constructor's. For the
        least padding, feed utterances sorted by text length, longest first.
        """
        options = options or self.options
        in_flight = self.in_flight = _InFlight()  # a run given up half way leaves its count behind: start afresh
        vocoder_keys: dict[int, int] = {}
        decoder = ChunkedDecoder(
            self.decoder_runner,
            self.card,
            self.xp,
            batch_size=options.batch_size,
            keep_alignments=options.keep_alignments,
        )
        groups = _groups(decoder.decode(self._requests(utterances, vocoder_keys, options)), options.postnet_batch_size, in_flight)

        def vocode(group: PostnetGroup) -> list[SynthesizedUtterance]:
            try:
                return self._vocode(group, vocoder_keys, options)
            finally:
                in_flight.add(-1)

        try:
            if options.overlap if options.overlap is not None else self.options.overlap:
                for results in overlapped(groups, [self._postnet, vocode]):
                    yield from results
            else:
                for group in groups:
                    yield from vocode(self._postnet(group))
        finally:
            self.decode_stats.merge(decoder.stats)


def postnet_batches(lengths: Sequence[int], call_frames: int | None) -> list[tuple[int, int]]:
    """Cut ascending ``lengths`` into runs ``[start, end)`` that minimise the postnet's work.

    A run costs ``rows x its longest`` padded frames plus ``call_frames`` for the call itself; an
    exact dynamic programme over the cut points (groups are tens of utterances). ``call_frames`` None:
    one run (a GPU, where a call costs a launch sequence and padding is nearly free).
    """
    count = len(lengths)
    if call_frames is None or count <= 1:
        return [(0, count)] if count else []
    best = [0.0] * (count + 1)
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        best[end], cut[end] = min((best[start] + (end - start) * lengths[end - 1] + call_frames, start) for start in range(end))
    runs = []
    end = count
    while end:
        runs.append((cut[end], end))
        end = cut[end]
    return runs[::-1]


def _groups(decoded: Iterable[DecodedUtterance], size: int, in_flight: _InFlight) -> Iterator[list[DecodedUtterance]]:
    """Decoded utterances in groups of ``size``, in the decoder's completion order (the last may be
    smaller); each group counts as in flight from here until the vocoder is done with it."""
    group: list[DecodedUtterance] = []
    for item in decoded:
        group.append(item)
        if len(group) >= size:
            in_flight.add(1)
            yield group
            group = []
    if group:
        in_flight.add(1)
        yield group


def _to_host(array: Any, xp: Any) -> np.ndarray:
    return np.asarray(array) if xp is np else xp.asnumpy(array)
