"""Griffin-Lim vocoder: linear magnitudes ``[T, 401]`` to 16 kHz waveforms, batched and vectorised.

Semantics follow OpenSeq2Seq ``save_audio`` / ``griffin_lim`` on librosa 0.6.3 (docs/openseq2seq-notes.md §6.1): clip to
``[0, 255]``, sharpen with ``** 1.5``, random initial phase, then alternate istft / stft. Two changes
that matter for a dataset generator:

* the initial phase is a pure function of the utterance key (a 16-bit draw per frame and bin,
  ``trtgen.engine.randomness.draws16``, as a phase in steps of 2π/65536), so an utterance sounds the
  same in any batch, shard or resume;
* the fast Griffin-Lim update of Perraudin, Balazs & Søndergaard (2013) in librosa's ``momentum``
  form is available; ``momentum=0`` is classic Griffin-Lim.

A batch is zero-padded to its longest item. Each item keeps its own window-sum normaliser, its own
reflect padding at its own end and zeros beyond it, so its audio does not depend on its batch mates.
The same code runs on CuPy arrays (``xp=cupy``).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from trtgen.engine.config import AudioConfig
from trtgen.engine.randomness import draws16, unit_phasors
from trtgen.engine.spectral import frame_view, hann_window, irfft, overlap_add, reflect_index, rfft, stft, window_sumsquare
from trtgen.errors import UsageError

__all__ = [
    "GriffinLimOptions",
    "GRIFFIN_LIM_PRESETS",
    "griffin_lim_preset",
    "griffin_lim",
    "vocoder_array_module",
    "sharpened_magnitude",
    "spectral_convergence",
    "available_cores",
]

logger = logging.getLogger(__name__)

_INIT_CHOICES = ("random", "zeros")
_CHUNK_ROWS = 512
"""Frames (rows) per CPU task: items are grouped so a task's buffers (~1.6 MB each) stay in cache."""


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (what a cluster scheduler grants), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class GriffinLimOptions:
    """How many Griffin-Lim iterations, with which update and initial phase.

    The default (6 iterations, momentum 0.99) comes from the measurement in
    ``benchmarks/RESULTS.md`` ("Quality against iterations") on real speech: the fewest iterations whose spectral convergence
    and MCD to the best reconstruction are both at least 25% better than OpenSeq2Seq's 4 classic
    iterations (classic Griffin-Lim needs 12 to be as good), at 1.5x their cost: better audio than
    the original, and a generator that is still faster than it end to end (benchmarks/RESULTS.md).
    The preset ``quality`` (24 iterations, momentum 0.9, within 5% of the floor) is for a GPU.
    """

    n_iter: int = 6
    """stft/istft rounds after the first istft (OpenSeq2Seq's synthetic-data script uses 4)."""
    momentum: float = 0.99
    """Fast Griffin-Lim momentum (librosa's form, whose default is 0.99); 0 is classic Griffin-Lim."""
    init: str = "random"
    """``"random"``: phase ``exp(2πi·k/65536)``, ``k`` a 16-bit draw keyed by the utterance; ``"zeros"``: phase 0 (librosa ``init=None``)."""
    threads: Optional[int] = None
    """CPU threads (None: all cores); ignored on CuPy. The result does not depend on it."""
    chunk_frames: Optional[int] = 256
    """Frames per processing chunk on the CPU (keeps buffers in cache); None: whole batch at once.
    Results are bitwise reproducible for a fixed value, not across values."""

    def __post_init__(self) -> None:
        if int(self.n_iter) != self.n_iter or self.n_iter < 0:
            raise UsageError(f"GriffinLimOptions.n_iter must be an integer >= 0, got {self.n_iter!r}")
        if not np.isfinite(self.momentum) or self.momentum < 0:
            raise UsageError(f"GriffinLimOptions.momentum must be finite and >= 0, got {self.momentum!r}")
        if self.init not in _INIT_CHOICES:
            raise UsageError(f"GriffinLimOptions.init must be one of {_INIT_CHOICES}, got {self.init!r}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"GriffinLimOptions.threads must be >= 1 or None, got {self.threads!r}")
        if self.chunk_frames is not None and self.chunk_frames < 1:
            raise UsageError(f"GriffinLimOptions.chunk_frames must be >= 1 or None, got {self.chunk_frames!r}")
        if self.momentum > 1:
            logger.warning("Griffin-Lim momentum %.3g > 1 may not converge", self.momentum)


GRIFFIN_LIM_PRESETS: dict[str, GriffinLimOptions] = {
    # scripts/tacotron_gst_create_syn_data.py: save_audio(..., gl_iters=4), classic GL (docs/openseq2seq-notes.md §6.2).
    "openseq2seq": GriffinLimOptions(n_iter=4, momentum=0.0),
    # run.py --mode=infer writes its samples with 50 classic iterations (docs/openseq2seq-notes.md §6.2).
    "openseq2seq-infer": GriffinLimOptions(n_iter=50, momentum=0.0),
    "default": GriffinLimOptions(),
    # The fewest iterations within 5% of the lowest spectral convergence: costly on the CPU, cheap on a GPU
    # (docs/throughput.md, "The vocoder default").
    "quality": GriffinLimOptions(n_iter=24, momentum=0.9),
}


def griffin_lim_preset(name: str) -> GriffinLimOptions:
    """A named preset: ``openseq2seq`` (4 classic iterations), ``openseq2seq-infer`` (50), ``default``
    (6 fast iterations), ``quality`` (24 fast)."""
    try:
        return GRIFFIN_LIM_PRESETS[name]
    except KeyError:
        raise UsageError(
            f"unknown Griffin-Lim preset {name!r}; presets: {', '.join(sorted(GRIFFIN_LIM_PRESETS))}"
        ) from None


def vocoder_array_module(device: str) -> Any:
    """numpy for ``"cpu"``, CuPy for ``"cuda"``: where :func:`griffin_lim` runs.

    Why a choice apart from the decoder's: Griffin-Lim is FFTs over whole batches, which a GPU runs far
    faster than a CPU, while a small model's decoder may run as fast on the CPU's ONNX Runtime, which
    needs no GPU build of ONNX Runtime.
    """
    if device == "cpu":
        return np
    if device != "cuda":
        raise UsageError(f"unknown vocoder device {device!r} (cpu or cuda)")
    try:
        import cupy
    except ImportError:
        raise UsageError("the vocoder on cuda needs CuPy: pip install cupy-cuda12x (or cupy-cuda13x for CUDA 13)") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as error:
        raise UsageError(f"the vocoder on cuda: CuPy finds no usable GPU ({error})") from None
    if count < 1:
        raise UsageError("the vocoder on cuda: CuPy finds no GPU")
    return cupy


def sharpened_magnitude(magnitude: Any, audio: AudioConfig = AudioConfig(), xp: Any = np) -> Any:
    """OpenSeq2Seq's GL target ``clip(mag, 0, 255) ** 1.5`` for one time-major ``[T, F]`` magnitude.

    OpenSeq2Seq clips the whole array only when some value is outside ``[0, 255]``; clipping an array
    that is inside the range changes nothing, so clipping always is the same rule.
    """
    mag = xp.asarray(magnitude, dtype=xp.float32)
    mag = xp.clip(mag, 0.0, audio.magnitude_clip)
    if audio.magnitude_power == 1.5:
        return mag * xp.sqrt(mag)  # 15x faster than powf, within an ulp of it
    return mag ** xp.float32(audio.magnitude_power)


class _BatchPlan:
    """One padded batch: per-item window-sum divisors and reflect edges, buffers, and the GL passes.

    Signals live as ``[B, hop*(T-1) + n_fft]`` centre-padded rows (the stft input layout). A pass
    reads one signal buffer and overlap-adds into the other, task by task: a task is a group of
    items times a chunk of ``chunk_frames`` frames, sized so its buffers stay in cache, and a group
    stops at its longest item. Even chunks run first, then odd ones: chunks of one parity never
    overlap, so they may run on several threads, and the order in which a sample receives its
    additions depends neither on the thread count nor on the batch.
    """

    def __init__(
        self,
        target: Any,
        frames: Sequence[int],
        keys: Optional[Sequence[int]],
        options: GriffinLimOptions,
        audio: AudioConfig,
        xp: Any,
    ) -> None:
        n_fft, hop = audio.n_fft, audio.hop_length
        self.xp, self.n_fft, self.hop = xp, n_fft, hop
        self.target = target
        self.batch, self.frames, self.num_freq = (int(d) for d in target.shape)
        self.half = n_fft // 2
        self.blocks_per_frame = -(-n_fft // hop)
        self.padded_len = hop * (self.frames - 1 + self.blocks_per_frame)
        self.window = hann_window(audio, xp)
        self.lengths = [hop * (t - 1) for t in frames]
        """Output samples of each item: ``hop * (frames - 1)`` (istft with centre trimming)."""
        self.keys = None if keys is None else xp.asarray(np.asarray(keys, dtype=np.uint64))[:, None]
        self.phasors = unit_phasors(xp)
        self._build_normalisers(frames, audio)
        self.signals = [xp.zeros((self.batch, self.padded_len), dtype=xp.float32) for _ in range(2)]

        if xp is np and options.chunk_frames:
            chunk = max(int(options.chunk_frames), self.blocks_per_frame)  # same-parity chunks must not overlap
            group = max(1, _CHUNK_ROWS // chunk)
        else:  # CuPy: one task, the whole batch (kernel launches, not caches, are the cost there)
            chunk, group = self.frames, self.batch
        self.tasks: list[list[tuple[int, int, int, int]]] = [[], []]
        """Per chunk parity: ``(first item, end item, first frame, end frame)``."""
        for g0 in range(0, self.batch, group):
            g1 = min(g0 + group, self.batch)
            for k, t0 in enumerate(range(0, max(frames[g0:g1]), chunk)):
                self.tasks[k % 2].append((g0, g1, t0, min(t0 + chunk, self.frames)))
        threads = (options.threads or available_cores()) if xp is np else 1
        self.threads = max(1, min(threads, len(self.tasks[0])))
        # In a threaded pass each task's FFT is single-threaded; otherwise scipy.fft may thread it.
        self.fft_workers = 1 if self.threads > 1 else (options.threads or -1)
        self.frame_buffers: queue.SimpleQueue[Any] = queue.SimpleQueue()
        """Free stft input buffers, one per thread: a task takes one and gives it back."""
        for _ in range(self.threads):
            self.frame_buffers.put(xp.empty((group, chunk, n_fft), dtype=xp.float32))
        self.blend = xp.float32(options.momentum / (1.0 + options.momentum))
        self.fast = options.momentum > 0
        self.previous: dict[tuple[int, int], Any] = {}
        """Fast GL: each task's previous rebuilt spectrum, keyed by (first item, first frame)."""
        self.tiny = xp.float32(np.finfo(np.float32).tiny)

    def _build_normalisers(self, frames: Sequence[int], audio: AudioConfig) -> None:
        """Per-item istft divisors (inf past the item's end) and stft reflect-pad gather indices."""
        divisor = np.full((self.batch, self.padded_len), np.inf, dtype=np.float32)  # x / inf = 0 past the end
        dst, src = [], []
        tiny = np.finfo(np.float32).tiny
        for b, (count, length) in enumerate(zip(frames, self.lengths)):
            wss = _window_sumsquare(audio, count)
            # librosa divides only where the window sum is not ~0 (istft "approx_nonzero_indices").
            divisor[b, : wss.size] = np.where(wss > tiny, wss, np.float32(1.0))
            # stft's centring pad of the istft output: reflect around this item's own ends.
            edges = np.r_[0 : self.half, self.half + length : length + 2 * self.half]
            dst.append(b * self.padded_len + edges)
            src.append(b * self.padded_len + self.half + reflect_index(edges - self.half, length))
        self.divisor = self.xp.asarray(divisor)
        self.edge_dst = self.xp.asarray(np.concatenate(dst))
        self.edge_src = self.xp.asarray(np.concatenate(src))

    def run(self, n_iter: int) -> list[Any]:
        """The first istft from the initial phase, then ``n_iter`` stft/project/istft rounds."""
        pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        try:
            self._pass(None, 0, 0, pool)
            for step in range(n_iter):
                self._pass(step % 2, 1 - step % 2, step, pool)
        finally:
            if pool is not None:
                pool.shutdown()
        signal = self.signals[n_iter % 2]
        return [signal[b, self.half : self.half + n].copy() for b, n in enumerate(self.lengths)]

    def _pass(self, source: Optional[int], dest: int, step: int, pool: Optional[ThreadPoolExecutor]) -> None:
        """One istft (of the initial spectrum, or of the projected stft of ``signals[source]``) into ``signals[dest]``."""
        out = self.signals[dest]
        out.fill(0)
        blocks = out.reshape(self.batch, -1, self.hop)
        frames = None if source is None else frame_view(self.signals[source], self.n_fft, self.hop, self.xp)
        for tasks in self.tasks:
            if pool is None:
                for task in tasks:
                    self._task(*task, frames, blocks, step)
            else:
                # One job per task, so a thread whose core is busy with another process simply
                # takes fewer tasks instead of holding the others up at the end of the pass.
                jobs = [pool.submit(self._task, *task, frames, blocks, step) for task in tasks]
                for job in jobs:
                    job.result()
        self.xp.divide(out, self.divisor, out=out)
        flat = out.reshape(-1)
        flat[self.edge_dst] = flat[self.edge_src]

    def _task(self, g0: int, g1: int, t0: int, t1: int, frames: Any, blocks: Any, step: int) -> None:
        """Items ``[g0, g1)``, frames ``[t0, t1)``: stft, phase update and projection (or the initial
        phase), then istft and overlap-add."""
        xp = self.xp
        target = self.target[g0:g1, t0:t1]
        if frames is None:
            spec = self._initial_spectrum(g0, g1, t0, t1)
        else:
            buffers = self.frame_buffers.get()
            try:
                buffer = buffers[: g1 - g0, : t1 - t0]
                xp.multiply(frames[g0:g1, t0:t1], self.window, out=buffer)
                spec = rfft(buffer, self.n_fft, xp, self.fft_workers)
            finally:
                self.frame_buffers.put(buffers)
            if self.fast:
                task = (g0, t0)
                if step > 0:
                    # angles = rebuilt - m/(1+m) * previous rebuilt (librosa.griffinlim's fast GL),
                    # computed in the previous rebuilt's buffer; this rebuilt is kept as it is.
                    angles = self.previous[task]
                    angles *= -self.blend
                    angles += spec
                    self.previous[task] = spec
                    spec = angles
                else:
                    self.previous[task] = spec.copy()
            # Project onto the target magnitude: spec * S / |spec| (a zero bin stays zero, as in librosa).
            scale = xp.abs(spec)
            scale += self.tiny
            xp.divide(target, scale, out=scale)
            spec *= scale
        frames_out = irfft(spec, self.n_fft, xp, self.fft_workers)
        xp.multiply(frames_out, self.window, out=frames_out)
        overlap_add(frames_out, self.hop, blocks[g0:g1, t0 : t1 - 1 + self.blocks_per_frame], xp)

    def _initial_spectrum(self, g0: int, g1: int, t0: int, t1: int) -> Any:
        """``S * exp(2πi·k / 65536)`` with ``k`` the 16-bit draw ``(key, frame)[bin]``, or ``S`` itself for the zero-phase init."""
        xp = self.xp
        target = self.target[g0:g1, t0:t1]
        if self.keys is None:
            return target.astype(xp.complex64)
        frames = xp.arange(t0, t1, dtype=xp.uint64)[None, :]
        spec = xp.take(self.phasors, draws16(self.keys[g0:g1], frames, self.num_freq, xp))
        spec *= target
        return spec


@functools.lru_cache(maxsize=4096)
def _window_sumsquare(audio: AudioConfig, frames: int) -> np.ndarray:
    """Cached per frame count: batches of a dataset repeat the same few hundred lengths."""
    wss = window_sumsquare(audio, frames)
    wss.setflags(write=False)
    return wss


def _check_keys(keys: Optional[Sequence[int]], batch: int, init: str) -> Optional[list[int]]:
    if init == "zeros":
        return None
    if keys is None:
        raise UsageError("griffin_lim: init='random' needs one utterance key per magnitude (keys=None given)")
    keys = [int(k) for k in keys]
    if len(keys) != batch:
        raise UsageError(f"griffin_lim: {len(keys)} keys for {batch} magnitudes")
    for key in keys:
        if not 0 <= key < 1 << 64:
            raise UsageError(f"griffin_lim: utterance key {key} is not a 64-bit unsigned integer")
    return keys


def griffin_lim(
    magnitudes: Sequence[Any],
    keys: Optional[Sequence[int]] = None,
    options: GriffinLimOptions = GriffinLimOptions(),
    audio: AudioConfig = AudioConfig(),
    xp: Any = np,
) -> list[Any]:
    """Vocode linear magnitudes ``[T_i, n_fft/2+1]`` (time-major) into float32 waveforms of ``hop*(T_i-1)`` samples.

    ``keys`` are the utterances' 64-bit random keys (``trtgen.engine.randomness.utterance_key``); they fix the
    initial phase, so equal keys give equal audio. Items of different lengths may share a batch; for
    speed, group similar lengths (padded frames are computed and thrown away). Memory is about
    ``2 kB x B x max(T)`` (+3.2 kB with momentum) plus the chunk buffers. ``xp`` is numpy or cupy;
    inputs are moved to it with ``xp.asarray``.
    """
    if audio.n_fft % 2:
        raise UsageError(f"griffin_lim needs an even n_fft (got {audio.n_fft}): the spectrum has n_fft/2+1 bins")
    batch = len(magnitudes)
    if batch == 0:
        return []
    keys = _check_keys(keys, batch, options.init)
    num_freq = audio.num_freq
    targets = []
    for i, magnitude in enumerate(magnitudes):
        mag = xp.asarray(magnitude, dtype=xp.float32)
        if mag.ndim != 2 or mag.shape[1] != num_freq:
            raise UsageError(f"griffin_lim: magnitude {i} has shape {tuple(mag.shape)}, expected [frames, {num_freq}]")
        if mag.shape[0] < 2:
            raise UsageError(f"griffin_lim: magnitude {i} has {mag.shape[0]} frame(s); at least 2 are needed")
        if not bool(xp.isfinite(mag).all()):
            raise UsageError(f"griffin_lim: magnitude {i} contains NaN or infinity")
        targets.append(mag)
    frames = [int(t.shape[0]) for t in targets]
    S = xp.zeros((batch, max(frames), num_freq), dtype=xp.float32)
    for b, mag in enumerate(targets):
        S[b, : frames[b]] = sharpened_magnitude(mag, audio, xp)
    plan = _BatchPlan(S, frames, keys, options, audio, xp)
    signals = plan.run(options.n_iter)
    logger.debug("griffin_lim: %d item(s), %d frames max, %d iterations", batch, plan.frames, options.n_iter)
    return signals


def spectral_convergence(target: np.ndarray, signal: np.ndarray, audio: AudioConfig = AudioConfig()) -> float:
    """``||S - |STFT(y)|||_F / ||S||_F`` for a GL target ``S [T, F]`` and the signal made from it."""
    target = np.asarray(target, dtype=np.float64)
    rebuilt = np.abs(stft(np.asarray(signal, dtype=np.float32), audio)).astype(np.float64)
    if rebuilt.shape != target.shape:
        raise UsageError(f"spectral_convergence: signal gives {rebuilt.shape} frames x bins, target is {target.shape}")
    return float(np.linalg.norm(target - rebuilt) / np.linalg.norm(target))
