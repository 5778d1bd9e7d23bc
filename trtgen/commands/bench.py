"""``trtgen bench``: decoder and vocoder throughput of one model on this machine, runtime only.

Measures what the runtime itself decides (no TensorFlow, no librosa; the comparisons with the TF2
reference and with librosa live in ``benchmarks/``):

* the decoder in fixed-length mode (the stop token is ignored, every utterance decodes ``frames``
  frames, 985 by default: LibriSpeech's mean utterance of ~12.3 s at hop 200), run two ways:
  ``ort-step``, the ``decoder_step`` graph called once per step from a Python loop, and
  ``ort-chunk``, trtgen's :class:`~trtgen.engine.decode.ChunkedDecoder` (K steps per ``decoder_chunk``
  call, K fixed in the model at export). Host time is the wall time of the decode minus the time
  spent inside the runtime's calls, for both modes alike;
* trtgen's Griffin-Lim on 985-frame magnitudes: the OpenSeq2Seq preset (4 classic iterations)
  and the library default.

Medians over repeats that interleave the contenders, so a drifting load hits them alike.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from trtgen.engine.artifact import Model, ModelCard, default_model_dir
from trtgen.engine.backends.base import Backend, GraphRunner
from trtgen.engine.decode import ChunkedDecoder, DecodeRequest
from trtgen.errors import UsageError
from trtgen.engine.randomness import keep_masks
from trtgen.engine.vocoder import GriffinLimOptions, griffin_lim, griffin_lim_preset

logger = logging.getLogger(__name__)

__all__ = [
    "LIBRISPEECH_MEAN_FRAMES",
    "DecoderTiming",
    "VocoderTiming",
    "BenchOptions",
    "bench_options",
    "BenchReport",
    "fixed_length_requests",
    "steps_per_utterance",
    "time_step_loop",
    "time_chunked",
    "steps_for_budget",
    "median_timings",
    "run_bench",
    "decoder_rows",
    "DECODER_COLUMNS",
]

LIBRISPEECH_MEAN_FRAMES = 985
"""LibriSpeech's mean utterance (~12.3 s) in frames at hop 200 / 16 kHz: hop x (985 - 1) = 196,800 samples."""


@dataclass
class DecoderTiming:
    """One timed decode of ``batch`` utterances for ``steps`` decoder steps."""

    mode: str
    batch: int
    steps: int
    """Decoder steps timed (the whole fixed length, or a window of it when the time budget is short)."""
    steps_per_utterance: int
    """Steps a fixed-length utterance needs (ceil(frames / r)); utterances/s are computed for these."""
    wall_s: float
    runtime_s: float | None
    """Seconds inside the runtime's calls; None where the loop itself runs in the runtime (TF)."""
    chunk_steps: int | None = None
    wasted_fraction: float = 0.0
    """Share of computed row-steps not needed by any utterance (the last chunk's overshoot)."""
    config: str = ""

    @property
    def ms_per_step(self) -> float:
        return 1e3 * self.wall_s / self.steps

    @property
    def runtime_ms_per_step(self) -> float | None:
        return None if self.runtime_s is None else 1e3 * self.runtime_s / self.steps

    @property
    def host_ms_per_step(self) -> float | None:
        """Wall minus runtime, per step: Python around the calls (masks, feeds, stop checks, copies)."""
        return None if self.runtime_s is None else 1e3 * (self.wall_s - self.runtime_s) / self.steps

    @property
    def host_share(self) -> float | None:
        return None if self.runtime_s is None else (self.wall_s - self.runtime_s) / self.wall_s

    @property
    def utterances_per_s(self) -> float:
        return self.batch / (self.wall_s / self.steps * self.steps_per_utterance)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("ms_per_step", "runtime_ms_per_step", "host_ms_per_step", "host_share", "utterances_per_s"):
            data[name] = getattr(self, name)
        return data


@dataclass
class VocoderTiming:
    name: str
    options: GriffinLimOptions
    batch: int
    frames: int
    wall_s: float
    audio_seconds: float

    @property
    def audio_seconds_per_s(self) -> float:
        return self.audio_seconds / self.wall_s


@dataclass(frozen=True)
class BenchOptions:
    model_dir: Path
    batch_sizes: tuple[int, ...] = (1, 8, 32, 64)
    frames: int = LIBRISPEECH_MEAN_FRAMES
    repeats: int = 3
    threads: int | None = None
    """ONNX Runtime intra-op threads (None: all cores)."""
    step_budget_s: float = 10.0
    """Longest one timed decode may take; beyond it a window of the fixed length is timed."""
    vocoder_batch: int = 16
    vocoder_presets: tuple[str, ...] = ("openseq2seq", "default")
    device: str = "cpu"
    backend: str = "onnxruntime"

    @staticmethod
    def quick(model_dir: Path, **overrides: Any) -> BenchOptions:
        """Settings that finish in well under a minute on a small model on two cores."""
        settings: dict[str, Any] = dict(
            batch_sizes=(1, 8, 32), repeats=1, step_budget_s=2.0, vocoder_batch=4,
        )
        settings.update(overrides)
        return BenchOptions(model_dir=model_dir, **settings)


def bench_options(
    *, model_dir: Path | None, quick: bool, batch_sizes: str | None, repeats: int | None, **overrides: Any
) -> BenchOptions:
    """:class:`BenchOptions` from the command line's values (``trtgen bench``), checked."""
    if batch_sizes:
        try:
            overrides["batch_sizes"] = tuple(int(b) for b in batch_sizes.split(",") if b.strip())
        except ValueError:
            overrides["batch_sizes"] = ()
        if not overrides["batch_sizes"] or min(overrides["batch_sizes"]) < 1:
            raise UsageError("--batch-sizes: expected positive integers, e.g. 1,8,32")
    if repeats is not None:
        if repeats < 1:
            raise UsageError(f"--repeats {repeats}: must be 1 or more")
        overrides["repeats"] = repeats
    model_dir = model_dir or default_model_dir()
    return BenchOptions.quick(model_dir, **overrides) if quick else BenchOptions(model_dir=model_dir, **overrides)


@dataclass
class BenchReport:
    model: str
    backend: str
    options: BenchOptions
    decoder: list[DecoderTiming] = field(default_factory=list)
    vocoder: list[VocoderTiming] = field(default_factory=list)
    wall_s: float = 0.0


# ---------------------------------------------------------------------------- inputs
def fixed_length_requests(model: Model, backend: Backend, batch: int, frames: int, *, seed: int = 0, dropout: float | None = None) -> list[DecodeRequest]:
    """``batch`` decode requests whose text is just long enough for ``frames`` frames under the cap.

    The memory comes from the model's own text encoder on random symbol ids with a zero style
    embedding; the values do not change the cost of a step, only the text length does.
    """
    c = model.card.model
    text_len = max(8, math.ceil(frames / c.max_frames_per_symbol))
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, c.num_symbols, (batch, text_len)).astype(np.int32)
    xp = backend.xp
    out = backend.load("text_encoder").run(
        {
            "text_ids": xp.asarray(ids),
            "text_len": xp.asarray(np.full(batch, text_len, np.int32)),
            "style_embedding": xp.zeros((batch, c.style_dim), xp.float32),
        },
        ["memory", "memory_keys"],
    )
    rate = c.prenet_dropout if dropout is None else dropout
    return [
        DecodeRequest(index=i, memory=out["memory"][i], memory_keys=out["memory_keys"][i], prenet_key=int(rng.integers(1 << 62)), dropout=rate)
        for i in range(batch)
    ]


def steps_per_utterance(card: ModelCard, frames: int) -> int:
    return math.ceil(frames / card.model.reduction_factor)


# ---------------------------------------------------------------------------- decoder loops
class _FixedLengthDecoder(ChunkedDecoder):
    """The runtime's decode loop with every utterance's cap set to the same number of steps and the
    stop token ignored, so a random or trained model decodes exactly the benchmark's length."""

    def __init__(self, *args: Any, steps: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fixed_steps = steps
        self.threshold = np.float32(np.inf)  # sigmoid(stop) > inf never holds

    def cap_for(self, request: DecodeRequest) -> int:
        return self.fixed_steps


def time_chunked(
    runner: GraphRunner, card: ModelCard, xp: Any, requests: Sequence[DecodeRequest], steps: int, *, frames: int, mode: str = "ort-chunk"
) -> DecoderTiming:
    """Decode ``requests`` together with :class:`~trtgen.engine.decode.ChunkedDecoder` for ``steps`` steps each
    (K = the model's ``card.chunk_steps`` per call; a last partial chunk counts as wasted work)."""
    decoder = _FixedLengthDecoder(runner, card, xp, batch_size=len(requests), steps=steps)
    started = time.perf_counter()
    count = sum(1 for _ in decoder.decode(requests))
    wall = time.perf_counter() - started
    if count != len(requests):
        raise RuntimeError(f"decoded {count} of {len(requests)} utterances")
    return DecoderTiming(
        mode=mode, batch=len(requests), steps=steps, steps_per_utterance=steps_per_utterance(card, frames), wall_s=wall,
        runtime_s=decoder.stats.runtime_seconds, chunk_steps=decoder.chunk_steps, wasted_fraction=decoder.stats.wasted_fraction,
    )


def time_step_loop(runner: GraphRunner, card: ModelCard, requests: Sequence[DecodeRequest], steps: int, *, frames: int, mode: str = "ort-step") -> DecoderTiming:
    """The plain way: call the one-step graph from Python each step (numpy arrays, CPU).

    Does the host work any such loop needs: preallocated frame buffer, per-step dropout masks, state
    swap by name, stop check (computed, then ignored in fixed-length mode).
    """
    c = card.model
    started = time.perf_counter()
    rows, r = len(requests), c.reduction_factor
    text_time = max(q.text_len for q in requests)
    memory = np.zeros((rows, text_time, c.memory_dim), np.float32)
    memory_keys = np.zeros((rows, text_time, c.attention_dim), np.float32)
    memory_mask = np.zeros((rows, text_time), np.float32)
    for row, q in enumerate(requests):
        memory[row, : q.text_len] = np.asarray(q.memory)
        memory_keys[row, : q.text_len] = np.asarray(q.memory_keys)
        memory_mask[row, : q.text_len] = 1.0
    state = {s.name: np.zeros(card.state_shape(s.name, rows, text_time), np.float32) for s in card.decoder_state}
    out_frames = np.zeros((rows, steps * r, c.num_mels), np.float32)
    keys = np.array([q.prenet_key for q in requests], np.uint64)
    rates = np.array([q.dropout for q in requests], np.float32)
    stopped = np.zeros(rows, bool)
    wanted = ["frames", "stop_logits"] + [s.next for s in card.decoder_state]
    runtime = 0.0
    for step in range(steps):
        masks = keep_masks(keys, np.full((1, rows), step, np.int64), rates, tuple(c.prenet_units))
        feeds = {"memory": memory, "memory_keys": memory_keys, "memory_mask": memory_mask, **state}
        feeds.update((name, mask[0]) for name, mask in zip(card.prenet_masks, masks))
        call_started = time.perf_counter()
        out = runner.run(feeds, wanted)
        runtime += time.perf_counter() - call_started
        state = {s.name: out[s.next] for s in card.decoder_state}
        out_frames[:, step * r : (step + 1) * r] = out["frames"].reshape(rows, r, c.num_mels)
        probability = 1.0 / (1.0 + np.exp(-out["stop_logits"]))
        stopped |= (probability > c.stop_threshold).any(axis=1)
    wall = time.perf_counter() - started
    return DecoderTiming(
        mode=mode, batch=rows, steps=steps, steps_per_utterance=steps_per_utterance(card, frames), wall_s=wall, runtime_s=runtime,
    )


def steps_for_budget(full_steps: int, step_seconds: float, budget_s: float, minimum: int = 16) -> int:
    """The whole fixed length if it fits the budget, else the longest window that does (>= minimum)."""
    if step_seconds <= 0:
        return full_steps
    return max(min(full_steps, minimum), min(full_steps, int(budget_s / step_seconds)))


def median_timings(contenders: dict[str, Callable[[], DecoderTiming]], repeats: int) -> dict[str, DecoderTiming]:
    """Run each contender ``repeats`` times round-robin; keep the run with the median wall time."""
    runs: dict[str, list[DecoderTiming]] = {name: [] for name in contenders}
    for _ in range(max(1, repeats)):
        for name, run in contenders.items():
            runs[name].append(run())
    result = {}
    for name, timings in runs.items():
        ordered = sorted(timings, key=lambda t: t.wall_s)
        result[name] = ordered[(len(ordered) - 1) // 2]
    return result


# ---------------------------------------------------------------------------- the command
def _vocoder_timings(options: BenchOptions, audio: Any, repeats: int) -> list[VocoderTiming]:
    rng = np.random.default_rng(0)
    frames = options.frames
    # Speech-like scale: magnitudes of a few units; the cost of Griffin-Lim does not depend on them.
    mags = [rng.gamma(1.0, 2.0, (frames, audio.num_freq)).astype(np.float32) for _ in range(options.vocoder_batch)]
    keys = list(range(options.vocoder_batch))
    seconds = options.vocoder_batch * audio.hop_length * (frames - 1) / audio.sample_rate
    results = []
    for name in options.vocoder_presets:
        preset = griffin_lim_preset(name)
        griffin_lim(mags[:1], keys[:1], dataclasses.replace(preset, n_iter=1), audio)  # warm-up (FFT plans, pools)
        walls = []
        for _ in range(max(1, repeats)):
            started = time.perf_counter()
            griffin_lim(mags, keys, preset, audio)
            walls.append(time.perf_counter() - started)
        results.append(VocoderTiming(name, preset, options.vocoder_batch, frames, float(np.median(walls)), seconds))
    return results


def run_bench(options: BenchOptions, progress: Callable[[str], None] | None = None) -> BenchReport:
    """Measure the decoder modes over batch sizes, then Griffin-Lim."""
    from trtgen.engine.artifact import load_model
    from trtgen.engine.backends import create_backend

    say = progress or (lambda message: None)
    started = time.perf_counter()
    model = load_model(options.model_dir, verify=False)
    backend = create_backend(model, options.backend, options.device, threads=options.threads)
    card = model.card
    report = BenchReport(model=f"{card.name} ({card.model.name}, r={card.model.reduction_factor})", backend=backend.describe(), options=options)
    chunk_runner = backend.load("decoder_chunk")
    step_runner = backend.load("decoder_step") if options.device == "cpu" else None
    full_steps = steps_per_utterance(card, options.frames)
    xp = backend.xp

    def measure(batch: int, modes: dict[str, Callable[[list[DecodeRequest], int], DecoderTiming]]) -> dict[str, DecoderTiming]:
        requests = fixed_length_requests(model, backend, batch, options.frames)
        probe_steps = max(16, card.chunk_steps)
        slowest = 0.0
        for run in modes.values():  # warm-up at this shape, and the step time that sizes the window
            slowest = max(slowest, run(requests, probe_steps).wall_s / probe_steps)
        steps = steps_for_budget(full_steps, slowest, options.step_budget_s)
        return median_timings({name: (lambda run=run: run(requests, steps)) for name, run in modes.items()}, options.repeats)

    def chunked(requests: list[DecodeRequest], steps: int) -> DecoderTiming:
        return time_chunked(chunk_runner, card, xp, requests, steps, frames=options.frames)

    for batch in options.batch_sizes:
        if step_runner is not None:
            modes = {
                "ort-step": lambda q, s: time_step_loop(step_runner, card, q, s, frames=options.frames),
                "ort-chunk": chunked,
            }
        else:  # on a GPU only the chunked loop is measured here (the step loop is a CPU/numpy loop)
            modes = {f"{backend.name}-{options.device}-chunk": chunked}
        for name, timing in measure(batch, modes).items():
            timing.mode = name
            report.decoder.append(timing)
            say(f"decoder {name} batch {batch}: {timing.ms_per_step:.2f} ms/step, {timing.utterances_per_s:.2f} utt/s")
    report.vocoder = _vocoder_timings(options, card.audio, options.repeats)
    for v in report.vocoder:
        say(f"vocoder {v.name}: {v.audio_seconds_per_s:.1f} audio-s/s")
    report.wall_s = time.perf_counter() - started
    return report


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def decoder_rows(timings: Sequence[DecoderTiming]) -> list[list[str]]:
    """Table rows shared by ``trtgen bench`` and ``benchmarks/``: one per timed decode."""
    return [
        [
            t.mode, str(t.batch), "-" if t.chunk_steps is None else str(t.chunk_steps), f"{t.steps}/{t.steps_per_utterance}",
            _fmt(t.ms_per_step, 3), _fmt(t.runtime_ms_per_step, 3), _fmt(t.host_ms_per_step, 3),
            "-" if t.host_share is None else f"{100 * t.host_share:.1f}%", _fmt(t.utterances_per_s),
        ]
        for t in timings
    ]


DECODER_COLUMNS = ["mode", "batch", "K", "steps timed", "ms/step", "runtime ms/step", "host ms/step", "host share", "utt/s"]
