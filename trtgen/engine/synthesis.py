"""Text + style embedding -> waveform, for a stream of utterances: the inference pipeline.

Stages: text encoder (batched, shared by utterances that differ only in dropout), the chunked decode
loop (:mod:`trtgen.engine.decode`), postnet + magnitude branch (batched by similar length, each item masked
to its own length), Griffin-Lim (:mod:`trtgen.engine.vocoder`). Every stage runs through the backend's
graph runners, so the same code serves ONNX Runtime (CPU, CUDA) and TensorRT.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from trtgen.engine.artifact import Model
from trtgen.engine.audio import AudioError, pad_style_batch, style_features
from trtgen.engine.backends.base import Backend, GraphRunner
from trtgen.engine.decode import ChunkedDecoder, DecodeRequest, DecodeStats, DecodedUtterance
from trtgen.engine.vocoder import GriffinLimOptions, griffin_lim, vocoder_array_module
from trtgen.errors import UsageError

logger = logging.getLogger(__name__)

__all__ = ["SynthesisOptions", "Utterance", "SynthesizedUtterance", "StageTimes", "Synthesizer", "StyleBank"]


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

    def __post_init__(self) -> None:
        for name in ("batch_size", "encoder_batch_size", "postnet_batch_size"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
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


@dataclass
class StageTimes:
    """Wall seconds per stage, for the end-of-run table."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds

    def total(self) -> float:
        return sum(self.seconds.values())


class _TimedRunner:
    """A graph runner that adds its wall time to a stage."""

    def __init__(self, runner: GraphRunner, times: StageTimes, stage: str) -> None:
        self.runner = runner
        self.times = times
        self.stage = stage
        self.name = runner.name
        self.input_names = runner.input_names
        self.output_names = runner.output_names

    def run(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return self.runner.run(feeds, outputs)
        finally:
            self.times.add(self.stage, time.perf_counter() - started)


class StyleBank:
    """Style embeddings per clip, each computed once (and cached) from that clip alone.

    A corpus reuses each M-AILABS clip for many transcripts; encoding it once saves the audio front end
    and the reference encoder for every later use. Alone, on one thread: in a batch, or on several
    threads, ONNX Runtime's matrix products in the reference encoder's GRU round differently (their K
    blocking follows each call's shapes), so an embedding, and every utterance spoken with it, would
    depend on which other clips shared its batch: on the list's order, the shard, the resume point.
    """

    def __init__(self, model: Model, backend: Backend, times: StageTimes) -> None:
        self.audio = model.card.audio
        self.runner = _TimedRunner(backend.load("style_encoder", threads=1), times, "style encoder")
        self.times = times
        self.xp = backend.xp
        self.cache: dict[Path, np.ndarray] = {}

    def embeddings(self, clips: Iterable[Path]) -> tuple[dict[Path, np.ndarray], dict[Path, str]]:
        """Embeddings of ``clips`` (host arrays) and, for clips that cannot be read, the reason."""
        errors: dict[Path, str] = {}
        wanted = list(dict.fromkeys(clips))
        for clip in wanted:
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
                {"style_mel": self.xp.asarray(mels), "style_len": self.xp.asarray(lengths.astype(np.int32))}
            )["style_embedding"]
            self.cache[clip] = _to_host(out, self.xp)[0]
        found = {c: self.cache[c] for c in wanted if c in self.cache}
        return found, errors


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
        self.text_encoder = _TimedRunner(backend.load("text_encoder"), self.times, "text encoder")
        self.decoder_runner = _TimedRunner(backend.load("decoder_chunk"), self.times, "decoder")
        self.postnet = _TimedRunner(backend.load("postnet"), self.times, "postnet")
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

    def _finish(
        self, decoded: list[DecodedUtterance], vocoder_keys: dict[int, int], options: SynthesisOptions
    ) -> list[SynthesizedUtterance]:
        """Postnet + Griffin-Lim for a group of decoded utterances."""
        xp = self.xp
        decoded = sorted(decoded, key=lambda d: d.num_frames)
        lengths = np.array([d.num_frames for d in decoded], np.int32)
        mels = xp.zeros((len(decoded), int(lengths.max()), self.card.model.num_mels), xp.float32)
        for row, d in enumerate(decoded):
            mels[row, : d.num_frames] = d.frames
        out = self.postnet.run({"mel": mels, "mel_len": xp.asarray(lengths)}, ["mel_postnet", "magnitude"])
        vocodable = [row for row, d in enumerate(decoded) if d.num_frames > 2]
        started = time.perf_counter()
        magnitude, vxp = out["magnitude"], self.vocoder_xp
        if vxp is not xp:
            magnitude = vxp.asarray(_to_host(magnitude, xp))
        waves = griffin_lim(
            [magnitude[row, : decoded[row].num_frames - 1] for row in vocodable],
            [vocoder_keys[decoded[row].index] for row in vocodable],
            options.vocoder,
            self.card.audio,
            vxp,
        )
        audio = {row: _to_host(w, vxp) for row, w in zip(vocodable, waves)}
        self.times.add("vocoder", time.perf_counter() - started)
        results = []
        for row, d in enumerate(decoded):
            mel = _to_host(out["mel_postnet"][row, : d.num_frames], xp) if options.keep_mels else None
            results.append(
                SynthesizedUtterance(
                    index=d.index, audio=audio.get(row), num_frames=d.num_frames, stopped=d.stopped,
                    steps=d.steps, mel=mel, alignment=d.alignment,
                )
            )
            vocoder_keys.pop(d.index, None)
        return results

    def run(self, utterances: Iterable[Utterance], options: SynthesisOptions | None = None) -> Iterator[SynthesizedUtterance]:
        """Synthesise a stream of utterances; results come in completion order.

        ``options`` overrides the constructor's for this call (batch sizes, vocoder, what to keep); the
        vocoder's device is the constructor's. For the least padding, feed utterances sorted by text
        length, longest first.
        """
        options = options or self.options
        vocoder_keys: dict[int, int] = {}
        decoder = ChunkedDecoder(
            self.decoder_runner,
            self.card,
            self.xp,
            batch_size=options.batch_size,
            keep_alignments=options.keep_alignments,
        )
        pending: list[DecodedUtterance] = []
        try:
            for decoded in decoder.decode(self._requests(utterances, vocoder_keys, options)):
                pending.append(decoded)
                if len(pending) >= options.postnet_batch_size:
                    yield from self._finish(pending, vocoder_keys, options)
                    pending = []
            if pending:
                yield from self._finish(pending, vocoder_keys, options)
        finally:
            self.decode_stats.merge(decoder.stats)


def _to_host(array: Any, xp: Any) -> np.ndarray:
    return np.asarray(array) if xp is np else xp.asnumpy(array)
