"""Griffin-Lim throughput (trtgen vs librosa.griffinlim) and quality against iterations (classic vs fast GL).

Usage: python benchmarks/bench_vocoder.py [--quick] [--output PATH] [--repeats N]

Inputs are real speech: |STFT| (n_fft 800, hop 200) of 12.3-s windows (985 frames) cut from the
LibriSpeech clips in ../shared/data, sharpened to ``S = mag ** 1.5`` as OpenSeq2Seq does before
Griffin-Lim. Both implementations run the same parameters (Hann, n_fft 800, hop 200, centre,
reflect padding, random initial phase); timings are medians over repeats that interleave the
contenders, so drifting load on a shared machine hits all of them alike, and every ratio compares
numbers from the same run. Quality: spectral convergence and MCD to the best reconstruction of each
target, per iteration count and momentum; the rule that picks trtgen's default vocoder from them
(``choose_default``) and the classic iterations the original needs to match it. The full run writes benchmarks/results/vocoder.md; ``--quick`` prints a
smaller table and writes only when ``--output`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

import librosa
import numpy as np
import scipy
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trtgen
from trtgen.engine.config import AudioConfig

from common import cpu_model, markdown_table, time_interleaved, write_text  # noqa: E402
from trtgen.engine.audio import log_mel, stft_magnitude
from trtgen.engine.spectral import stft
from trtgen.evaluation.metrics import MCD_DB_PER_NEPER, mel_cepstrum, speech_frames
from trtgen.engine.vocoder import (
    GriffinLimOptions,
    griffin_lim,
    griffin_lim_preset,
    sharpened_magnitude,
    spectral_convergence,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "results" / "vocoder.md"
AUDIO = AudioConfig()
FRAMES = 985  # 12.3 s: hop * (985 - 1) = 196800 samples at 16 kHz


def load_speech() -> np.ndarray:
    """All LibriSpeech sample clips at 16 kHz, concatenated (about 47 s of real speech)."""
    paths = sorted((SHARED_DATA / "LibriSpeech").rglob("*.flac")) + sorted((SHARED_DATA / "LibriSpeech").rglob("*.wav"))
    if not paths:
        raise SystemExit(f"no LibriSpeech clips under {SHARED_DATA}")
    signals = []
    for path in paths:
        y, rate = soundfile.read(path, dtype="float32")
        if rate != AUDIO.sample_rate:
            raise SystemExit(f"{path}: expected {AUDIO.sample_rate} Hz, got {rate}")
        signals.append(y)
    return np.concatenate(signals)


def magnitudes_12s(speech: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` different 985-frame magnitudes from windows of ``speech`` at spread-out offsets."""
    samples = AUDIO.hop_length * (FRAMES - 1)
    step = max(1, (speech.size - samples) // max(1, count))
    mags = []
    for i in range(count):
        start = (i * step) % (speech.size - samples)
        mag = np.abs(stft(speech[start : start + samples], AUDIO))
        if mag.shape != (FRAMES, AUDIO.num_freq):
            raise RuntimeError(f"expected {FRAMES} x {AUDIO.num_freq} magnitudes, got {mag.shape}")
        mags.append(mag)
    return mags


def style_clips() -> list[np.ndarray]:
    """Magnitudes of the M-AILABS and LibriSpeech clips (whole utterances) for the convergence study."""
    paths = sorted((SHARED_DATA / "M-AILABS").rglob("*.wav")) + sorted((SHARED_DATA / "LibriSpeech").rglob("*.flac"))
    mags = []
    for path in paths:
        y, _ = soundfile.read(path, dtype="float32")
        mags.append(np.abs(stft(y, AUDIO)))
    return mags


def librosa_gl(S: np.ndarray, n_iter: int) -> np.ndarray:
    """librosa.griffinlim with OpenSeq2Seq's parameters; ``S`` is ``[F, T]`` or ``[B, F, T]``."""
    return librosa.griffinlim(
        S,
        n_iter=n_iter,
        hop_length=AUDIO.hop_length,
        win_length=AUDIO.win_length,
        n_fft=AUDIO.n_fft,
        window="hann",
        center=True,
        momentum=0.0,
        init="random",
        pad_mode="reflect",
        random_state=0,
    )


def throughput_table(mags: list[np.ndarray], iterations: list[int], batches: list[int], repeats: int) -> list[str]:
    seconds_per_item = AUDIO.hop_length * (FRAMES - 1) / AUDIO.sample_rate
    targets = [sharpened_magnitude(m).T.copy() for m in mags]
    rows = [
        "| iterations | batch | trtgen, all cores: ms (audio-s/s) | trtgen, 1 thread: ms (audio-s/s) "
        "| librosa: ms (audio-s/s) | librosa form | ratio all cores | ratio 1 thread |",
        "|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for n_iter in iterations:
        for batch in batches:
            batch_mags, batch_S = mags[:batch], targets[:batch]
            keys = list(range(batch))
            contenders: dict[str, Callable[[], object]] = {
                "trtgen": lambda: griffin_lim(batch_mags, keys, GriffinLimOptions(n_iter=n_iter, momentum=0.0)),
                "trtgen-1": lambda: griffin_lim(
                    batch_mags, keys, GriffinLimOptions(n_iter=n_iter, momentum=0.0, threads=1)
                ),
                "librosa-calls": lambda: [librosa_gl(S, n_iter) for S in batch_S],
            }
            if batch > 1:
                stacked = np.stack(batch_S)
                contenders["librosa-batched"] = lambda: librosa_gl(stacked, n_iter)
            medians = time_interleaved(contenders, repeats)
            librosa_form = min((k for k in medians if k.startswith("librosa")), key=medians.__getitem__)
            lib = medians[librosa_form]
            audio_s = batch * seconds_per_item
            form = "1 call" if batch == 1 else (f"{batch} calls" if librosa_form == "librosa-calls" else "one batched call")
            if batch > 1:
                other = "librosa-batched" if librosa_form == "librosa-calls" else "librosa-calls"
                form += f" (other form: {medians[other] * 1e3:.0f} ms)"
            rows.append(
                f"| {n_iter} | {batch} | {medians['trtgen'] * 1e3:.0f} ({audio_s / medians['trtgen']:.0f}) "
                f"| {medians['trtgen-1'] * 1e3:.0f} ({audio_s / medians['trtgen-1']:.0f}) "
                f"| {lib * 1e3:.0f} ({audio_s / lib:.0f}) | {form} "
                f"| {lib / medians['trtgen']:.2f}x | {lib / medians['trtgen-1']:.2f}x |"
            )
            print(rows[-1], flush=True)
    return rows


def default_throughput(mags: list[np.ndarray], batches: list[int], repeats: int) -> list[str]:
    """Audio-seconds per second of the library default, interleaved with OpenSeq2Seq's preset."""
    seconds_per_item = AUDIO.hop_length * (FRAMES - 1) / AUDIO.sample_rate
    default = GriffinLimOptions()
    one_thread = dataclasses.replace(default, threads=1)
    preset = dataclasses.replace(griffin_lim_preset("openseq2seq"), threads=1)
    lines = []
    for batch in batches:
        keys = list(range(batch))
        medians = time_interleaved(
            {
                "all": lambda: griffin_lim(mags[:batch], keys, default),
                "one": lambda: griffin_lim(mags[:batch], keys, one_thread),
                "preset": lambda: griffin_lim(mags[:batch], keys, preset),
            },
            repeats,
        )
        rate = {name: batch * seconds_per_item / t for name, t in medians.items()}
        lines.append(
            f"- Library default ({default.n_iter} iterations, momentum {default.momentum}), batch {batch}: "
            f"{rate['all']:.0f} audio-s/s on all cores, {rate['one']:.0f} on one thread; OpenSeq2Seq preset "
            f"(4 classic iterations) in the same run: {rate['preset']:.0f} on one thread "
            f"({medians['one'] / medians['preset']:.1f}x cheaper than the default)."
        )
        print(lines[-1], flush=True)
    return lines


def parity_line(mag: np.ndarray) -> str:
    """How close trtgen is to librosa with a zero initial phase (the only init both share)."""
    S = sharpened_magnitude(mag).T.copy()
    out = []
    for n_iter in (4, 32):
        ours = griffin_lim([mag], None, GriffinLimOptions(n_iter=n_iter, momentum=0.0, init="zeros"))[0]
        ref = librosa.griffinlim(
            S, n_iter=n_iter, hop_length=AUDIO.hop_length, n_fft=AUDIO.n_fft, momentum=0.0, init=None, pad_mode="reflect"
        )
        out.append(f"{n_iter} iterations: max |diff| / max |y| = {np.abs(ours - ref).max() / np.abs(ref).max():.1e}")
    return "Parity with librosa.griffinlim(init=None, momentum=0) on one 12.3-s item: " + "; ".join(out) + "."


def mel_cepstra(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mel cepstrum (c1..c24) of every frame of ``y`` and the mask of its speech frames (trtgen eval's features)."""
    frames = log_mel(stft_magnitude(y, AUDIO), AUDIO)
    return mel_cepstrum(frames), speech_frames(frames)


def frame_mcd(candidate: np.ndarray, reference: np.ndarray) -> float:
    """Mean MCD (dB) over the reference's speech frames, frame by frame: the two signals share their length."""
    ours, _ = mel_cepstra(candidate)
    theirs, speech = mel_cepstra(reference)
    n = min(len(ours), len(theirs))
    diff = (ours[:n] - theirs[:n])[speech[:n]]
    return float((MCD_DB_PER_NEPER * np.sqrt(2.0 * (diff**2).sum(axis=1))).mean())


QUALITY_ITERATIONS = [0, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 32, 50, 100]
QUICK_QUALITY_ITERATIONS = [0, 4, 8, 16]
QUALITY_MOMENTA = [0.0, 0.9, 0.99]
BEST_ITERATIONS = 500
"""The best reconstruction of a target: fast Griffin-Lim (momentum 0.99) run this long, past the SC floor."""
MARGIN = 0.25
"""Default rule: both figures at least 25% below those of OpenSeq2Seq's 4 classic iterations (a clear margin)."""


def quality_table(mags: list[np.ndarray], iterations: list[int], momenta: list[float]) -> dict[str, Any]:
    """Spectral convergence, MCD to the best reconstruction, and one-thread CPU time, per (momentum, iterations).

    SC = ||S - |STFT(y)|||_F / ||S||_F against the sharpened target S, mean over clips. MCD compares the
    mel cepstra of y with those of the best reconstruction of the same target (:data:`BEST_ITERATIONS`
    fast iterations), frame by frame, over its speech frames: how far from what Griffin-Lim can reach
    the audio still is, on the scale trtgen eval uses. Both are deterministic (keyed initial phase); the
    time is the CPU time of one run on one thread for the whole batch, which a busy shared machine
    disturbs far less than wall time.
    """
    targets = [sharpened_magnitude(m) for m in mags]
    keys = list(range(len(mags)))
    best = griffin_lim(mags, keys, GriffinLimOptions(n_iter=BEST_ITERATIONS, momentum=0.99))
    best_sc = float(np.mean([spectral_convergence(S, y) for S, y in zip(targets, best)]))
    rows = []
    for momentum in momenta:
        for n_iter in iterations:
            if momentum and n_iter < 2:
                continue  # momentum acts from the second iteration on: the same signal as classic GL
            options = GriffinLimOptions(n_iter=n_iter, momentum=momentum, threads=1)
            start = time.process_time()
            signals = griffin_lim(mags, keys, options)
            cpu = time.process_time() - start
            sc = float(np.mean([spectral_convergence(S, y) for S, y in zip(targets, signals)]))
            mcd = float(np.mean([frame_mcd(y, b) for y, b in zip(signals, best)]))
            rows.append({"momentum": momentum, "iterations": n_iter, "sc": sc, "mcd_db": mcd, "cpu_s": cpu})
            print(f"GL momentum {momentum} iterations {n_iter}: SC {sc:.4f}, MCD to best {mcd:.3f} dB, cpu {cpu * 1e3:.0f} ms", flush=True)
    seconds = sum(AUDIO.hop_length * (m.shape[0] - 1) for m in mags) / AUDIO.sample_rate
    return {"clips": len(mags), "audio_seconds": seconds, "best_iterations": BEST_ITERATIONS, "best_sc": best_sc, "rows": rows}


def _row(quality: dict[str, Any], momentum: float, n_iter: int) -> dict[str, Any] | None:
    return next((r for r in quality["rows"] if r["momentum"] == momentum and r["iterations"] == n_iter), None)


def choose_default(quality: dict[str, Any]) -> dict[str, Any] | None:
    """The fewest iterations whose SC and MCD are both at least :data:`MARGIN` below the original's
    (4 classic iterations), with the best momentum at that count (lowest SC)."""
    original = _row(quality, 0.0, 4)
    if original is None:
        return None
    good = [r for r in quality["rows"] if r["sc"] <= (1 - MARGIN) * original["sc"] and r["mcd_db"] <= (1 - MARGIN) * original["mcd_db"]]
    if not good:
        return None
    fewest = min(r["iterations"] for r in good)
    return min((r for r in good if r["iterations"] == fewest), key=lambda r: r["sc"])


def classic_iterations_to_match(quality: dict[str, Any], row: dict[str, Any]) -> int | None:
    """The fewest classic iterations (momentum 0) measured whose SC and MCD are both at least as good as ``row``'s."""
    matches = [r["iterations"] for r in quality["rows"] if r["momentum"] == 0.0 and r["sc"] <= row["sc"] and r["mcd_db"] <= row["mcd_db"]]
    return min(matches) if matches else None


def quality_markdown(quality: dict[str, Any]) -> list[str]:
    """The quality table (SC, MCD, CPU ms per momentum) and the default that the rule picks from it."""
    momenta = sorted({r["momentum"] for r in quality["rows"]})
    iterations = sorted({r["iterations"] for r in quality["rows"]})
    columns = ["iterations"] + [f"momentum {m}: SC / MCD dB (CPU ms)" for m in momenta]
    table = []
    for n_iter in iterations:
        cells: list[Any] = [n_iter]
        for m in momenta:
            r = _row(quality, m, n_iter)
            cells.append("-" if r is None else f"{r['sc']:.4f} / {r['mcd_db']:.2f} ({r['cpu_s'] * 1e3:.0f})")
        table.append(cells)
    lines = [
        f"SC = ||S - |STFT(y)|||_F / ||S||_F against the sharpened target S; MCD (dB, c1-c24, frame by frame over "
        f"speech frames) to the best reconstruction of the same target ({quality['best_iterations']} fast iterations, "
        f"SC {quality['best_sc']:.4f}); means over {quality['clips']} real clips (M-AILABS and LibriSpeech, "
        f"{quality['audio_seconds']:.1f} s of audio), vocoded as one batch; in brackets the one-thread CPU time "
        "for the batch. Momentum 0 is classic Griffin-Lim (OpenSeq2Seq: 4 iterations); fast Griffin-Lim "
        "(Perraudin et al. 2013) in librosa's momentum form.",
        "",
        *markdown_table(columns, table),
        "",
    ]
    original, pick = _row(quality, 0.0, 4), choose_default(quality)
    default = GriffinLimOptions()
    current = _row(quality, default.momentum, default.n_iter)
    lines.append(
        f"Rule for the default: the fewest iterations whose SC and MCD are both at least {MARGIN:.0%} below those of "
        "OpenSeq2Seq's 4 classic iterations (a clear margin), with the best momentum at that count; every "
        "iteration costs the same, and a dataset generator vocodes hours of audio."
    )
    lines.append("")
    if original is not None:
        lines.append(f"- OpenSeq2Seq (4 classic iterations): SC {original['sc']:.4f}, MCD {original['mcd_db']:.2f} dB.")
    if pick is not None:
        lines.append(f"- The rule picks **{pick['iterations']} iterations, momentum {pick['momentum']}**: SC {pick['sc']:.4f}, MCD {pick['mcd_db']:.2f} dB.")
    if current is not None:
        match = classic_iterations_to_match(quality, current)
        lines.append(
            f"- trtgen's default `GriffinLimOptions()` ({default.n_iter} iterations, momentum {default.momentum}): SC {current['sc']:.4f}, "
            f"MCD {current['mcd_db']:.2f} dB; classic Griffin-Lim needs "
            + (f"{match} iterations to be as good on both figures." if match else "more iterations than measured to be as good.")
        )
        if pick is not None and (pick["iterations"], pick["momentum"]) != (default.n_iter, default.momentum):
            lines.append("- NOTE: the rule's pick differs from the library default in this run.")
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and cases; print, do not write")
    parser.add_argument("--output", type=Path, default=None, help=f"markdown file (default {DEFAULT_OUTPUT})")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    output = args.output if args.output is not None else (None if args.quick else DEFAULT_OUTPUT)
    started = datetime.datetime.now().astimezone()
    load_before = os.getloadavg()

    speech = load_speech()
    mags = magnitudes_12s(speech, 16)
    batches = [1, 4] if args.quick else [1, 16]
    throughput = throughput_table(mags, [4, 32], batches, repeats)
    throughput_default = default_throughput(mags, batches, repeats)
    parity = parity_line(mags[0])
    print(parity)

    clips = style_clips()
    clips = clips[:3] if args.quick else clips
    quality = quality_table(clips, QUICK_QUALITY_ITERATIONS if args.quick else QUALITY_ITERATIONS, QUALITY_MOMENTA)
    load_after = os.getloadavg()

    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/bench_vocoder.py", *sys.argv[1:]])
    lines = [
        "# Griffin-Lim vocoder benchmark",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M %Z}",
        f"- Command: `{command}`",
        f"- Machine: {cpu_model()}, {os.cpu_count()} logical cores "
        f"(affinity {len(os.sched_getaffinity(0))}), {platform.system()} {platform.release()}",
        f"- Load average (1/5/15 min) before: {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, "
        f"after: {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} (the machine is shared: a load above "
        f"{os.cpu_count()} means other jobs took CPU time from these runs, which inflates absolute times; the "
        "interleaved ratios are the robust figures)",
        f"- Versions: Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"librosa {librosa.__version__}, soundfile {soundfile.__version__}, trtgen {trtgen.__version__}",
        f"- Parameters: n_fft {AUDIO.n_fft}, hop {AUDIO.hop_length}, periodic Hann, centre + reflect padding, "
        f"S = clip(mag, 0, {AUDIO.magnitude_clip:g}) ** {AUDIO.magnitude_power}, momentum 0 (classic GL), random init.",
        "",
        "## Throughput: 12.3 s of audio per item (985 frames x 401 bins)",
        "",
        f"Median wall time of {repeats} interleaved repeats after a warm-up; audio-s/s = batch x 12.3 s / time; "
        "ratio = librosa time / trtgen time from the same run. trtgen 'all cores' uses a thread per core, "
        "'1 thread' pins it to one (the fair comparison when other jobs already use the cores). librosa "
        "runs single-threaded (numpy.fft); for batch > 1 the faster of one call per item and one "
        "call on the stacked [B, 401, T] array is used, the other is given in brackets.",
        "",
        *throughput,
        "",
        *throughput_default,
        "",
        parity,
        "",
        "## Quality against iterations: classic vs fast Griffin-Lim",
        "",
        *quality_markdown(quality),
    ]
    text = "\n".join(lines) + "\n"
    if output is None:
        print(text)
    else:
        write_text(output, text)
        print(f"wrote {output}")


if __name__ == "__main__":
    main()
