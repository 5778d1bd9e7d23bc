"""Style variety: how much each style mode of ``trtgen generate`` widens what the voice does, what it
costs, and whether it makes more gross failures.

Usage: python benchmarks/bench_variety.py [--sentences 150] [--rounds 2] [--output benchmarks/results/variety.md]

The shipped voice speaks the first N held-out sentences of its recipe (export/train/sentences.py) in
its four shipped styles (N x 4 rows), one copy per mode at dropout 0.5, through ``run_generate`` as
``trtgen generate`` does (each mode in the same process, rounds interleaved). Per mode, over the
utterances: speaking rate (decoder frames per text symbol), median F0 (YIN, voiced frames) and mean
spectral centroid (speech frames); their spread as the standard deviation over all utterances and the
mean standard deviation among the utterances of one style clip (the variety a clip alone gets); the
quality gate's failure rate; throughput (audio-s/s, the median round) and its ratio to ``clip``'s in the
same round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, header_lines, machine, markdown_table, now, versions  # noqa: E402

MODES = ("clip", "blend", "tokens", "tokens-narrow")
"""``tokens-narrow``: the tokens mode at concentration 20 (nearer the clip than the default 5)."""


def _rows(sentences: int) -> list[dict[str, str]]:
    from trtgen.engine.shipped import shipped_styles
    from trtgen_export.train.sentences import HELDOUT, generate_sentences

    held = [s for s in generate_sentences() if s.split == HELDOUT][:sentences]
    return [{"id": f"{s.id}-{name}", "text": s.text, "style": str(clip), "style_speaker": name}
            for s in held for name, clip in shipped_styles().items()]


def run_mode(mode: str, listing: Path, out: Path) -> dict[str, Any]:
    """One copy of ``mode``; returns the per-utterance measurements and the run's throughput."""
    from trtgen.commands.generate import GenerateOptions, parse_copies, run_generate
    from trtgen.engine.styles import DEFAULT_CONCENTRATION
    from trtgen.engine.voice import VoiceSpec

    style, concentration = ("tokens", 20.0) if mode == "tokens-narrow" else (mode, DEFAULT_CONCENTRATION)
    options = GenerateOptions(list_path=listing, out_dir=out, voice=VoiceSpec(), copies=parse_copies(f"c:0.5:1:{style}"),
                              style_concentration=concentration, sample_format="float32")
    started = time.perf_counter()
    report = run_generate(options)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "audio_s": report.audio_seconds, "utterances": report.written}


def measure(out: Path) -> list[dict[str, Any]]:
    """Per utterance of a copy: its style clip, rate, F0, centroid, quality verdict."""
    import soundfile as sf

    from trtgen.engine.audio import stft_magnitude
    from trtgen.engine.config import AudioConfig
    from trtgen.evaluation.metrics import speech_features

    audio = AudioConfig()
    freqs = np.linspace(0, audio.sample_rate / 2, audio.n_fft // 2 + 1)
    rows = []
    for line in (out / "c" / "records.jsonl").read_text().splitlines():
        record = json.loads(line)
        y, _ = sf.read(out / "c" / record["audio"], dtype="float32")
        features = speech_features(y, audio)
        magnitude = stft_magnitude(y, audio)
        energy = np.square(magnitude).sum(axis=1)
        speech = magnitude[energy >= energy.max() * 1e-4]  # frames within 40 dB of the loudest
        centroid = float(np.mean((speech * freqs).sum(axis=1) / np.maximum(speech.sum(axis=1), 1e-9)))
        f0 = features.f0_hz[np.isfinite(features.f0_hz)]
        rows.append({
            "style": record["style"], "rate": record["quality"]["signals"]["frames_per_symbol"],
            "f0": float(np.median(f0)) if f0.size else float("nan"), "centroid": centroid, "ok": record["quality"]["ok"],
        })
    return rows


def spread(rows: list[dict[str, Any]], key: str) -> tuple[float, float, float]:
    """(mean, std over all utterances, mean std within one style clip's utterances) of ``key``."""
    values = np.array([r[key] for r in rows], dtype=np.float64)
    values = values[np.isfinite(values)]
    groups: dict[str, list[float]] = {}
    for r in rows:
        if np.isfinite(r[key]):
            groups.setdefault(r["style"], []).append(r[key])
    within = float(np.mean([np.std(v) for v in groups.values()]))
    return float(values.mean()), float(values.std()), within


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results" / "variety.md")
    args = parser.parse_args(argv)
    from trtgen.fileio import write_jsonl

    started, machine_info = now(), machine()
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    measured: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="trtgen-variety-") as tmp:
        listing = Path(tmp) / "infer.jsonl"
        write_jsonl(listing, _rows(args.sentences))
        for round_ in range(args.rounds):
            for mode in MODES:
                out = Path(tmp) / f"{mode}-{round_}"
                runs[mode].append(run_mode(mode, listing, out))
                if round_ == 0:
                    measured[mode] = measure(out)
                print(f"round {round_ + 1} {mode}: {runs[mode][-1]['audio_s'] / runs[mode][-1]['wall_s']:.1f} audio-s/s", flush=True)
    table = []
    for mode in MODES:
        rows = measured[mode]
        rate, f0, centroid = (spread(rows, k) for k in ("rate", "f0", "centroid"))
        speeds = [r["audio_s"] / r["wall_s"] for r in runs[mode]]
        ratios = [(r["audio_s"] / r["wall_s"]) / (c["audio_s"] / c["wall_s"]) for r, c in zip(runs[mode], runs["clip"])]
        failed = sum(not r["ok"] for r in rows)
        table.append([
            f"`{mode}`", len(rows), f"{rate[0]:.2f} / {rate[1]:.2f} / {rate[2]:.2f}", f"{f0[0]:.0f} / {f0[1]:.1f} / {f0[2]:.1f}",
            sum(np.isfinite(r["f0"]) for r in rows), f"{centroid[0]:.0f} / {centroid[1]:.0f} / {centroid[2]:.0f}",
            f"{failed} ({100 * failed / len(rows):.1f}%)",
            f"{statistics.median(speeds):.1f}", ", ".join(f"{x:.3f}" for x in ratios),
        ])
    lines = [
        "# Style variety: what each style mode adds, and what it costs",
        "",
        *header_lines("Style variety", command_line("benchmarks/bench_variety.py", sys.argv[1:] if argv is None else argv), started,
                      machine_info, versions(("numpy", "onnxruntime", "trtgen"))),
        "",
        f"The shipped voice, {args.sentences} held-out sentences x its 4 shipped styles, dropout 0.5, one copy per mode "
        "(`--copies c:0.5:1:MODE`; `tokens` at the default `--style-concentration 5`, `tokens-narrow` at 20). "
        "Each cell: mean / standard deviation over all utterances / mean standard deviation within one style clip's "
        "utterances (the variety one clip alone gets). F0 only where YIN finds voiced frames ('with F0'): the shipped "
        "voice is whisper-like (docs/shipped-voice.md), most of its utterances have none, so the speaking rate and the "
        "spectral centroid are the measures that cover every utterance. Throughput: median over rounds; 'x clip': each "
        "round's audio-s/s over `clip`'s in the same round.",
        "",
        *markdown_table(
            ["mode", "utterances", "frames per symbol", "median F0 Hz", "with F0", "spectral centroid Hz", "gate failed", "audio-s/s",
             "x clip, per round"],
            table, ["l"] + ["r"] * 7 + ["l"],
        ),
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
