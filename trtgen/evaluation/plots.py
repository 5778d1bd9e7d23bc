"""Plots of ``trtgen eval``: attention alignments and spectrograms of a few utterances (matplotlib,
imported only here)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from trtgen.engine.artifact import ModelCard

from trtgen.evaluation.metrics import SpeechFeatures
from trtgen.evaluation.report import EvalItem, ModelEvaluation

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Plots


def choose_plot_ids(items: list[EvalItem], count: int) -> set[str]:
    """``count`` utterances taken round-robin over the voices (first sentences first)."""
    by_voice: dict[str, list[EvalItem]] = {}
    for item in items:
        by_voice.setdefault(item.voice, []).append(item)
    chosen: list[str] = []
    position = 0
    while len(chosen) < count and any(position < len(v) for v in by_voice.values()):
        for voice_items in by_voice.values():
            if position < len(voice_items) and len(chosen) < count:
                chosen.append(voice_items[position].id)
        position += 1
    return set(chosen)


def plot_utterances(
    directory: Path,
    items: list[EvalItem],
    kept: dict[str, tuple[Any, SpeechFeatures | None]],
    random_kept: dict[str, tuple[Any, SpeechFeatures | None]],
    targets: dict[str, SpeechFeatures],
    trained: ModelEvaluation,
    random: ModelEvaluation | None,
    card: ModelCard,
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for label, outputs, evaluation in (("trained", kept, trained), ("random", random_kept, random)):
        if evaluation is None:
            continue
        rows = {r.id: r for r in evaluation.utterances}
        for item in items:
            if item.id not in outputs:
                continue
            output, features = outputs[item.id]
            row = rows[item.id]
            if output.alignment is not None:
                figure, axis = plt.subplots(figsize=(8, 4.5))
                image = axis.imshow(output.alignment.T, origin="lower", aspect="auto", interpolation="none", cmap="viridis")
                path = np.minimum(output.alignment.argmax(axis=1), row.eos_index)
                axis.plot(np.arange(path.size), path, color="white", linewidth=0.8, alpha=0.7, label="argmax (clamped)")
                axis.axhline(row.eos_index, color="red", linestyle="--", linewidth=0.8, label="</s>")
                if row.alignment is not None:
                    axis.axhline(row.alignment.end_index, color="orange", linestyle=":", linewidth=0.8, label="last spoken symbol")
                verdict = "ok" if row.alignment_ok else "FAIL"
                axis.set_title(f"{label} {item.id}: alignment {verdict}, {'stopped' if row.stopped else 'CAPPED'}", fontsize=9)
                frames_per_step = card.model.reduction_factor
                axis.set_xlabel(f"decoder step ({frames_per_step} frame{'s' if frames_per_step > 1 else ''} each)")
                axis.set_ylabel("encoder symbol")
                axis.legend(loc="upper left", fontsize=7)
                figure.colorbar(image, ax=axis)
                figure.tight_layout()
                path_png = directory / f"{label}-{item.id}-alignment.png"
                figure.savefig(path_png, dpi=100)
                plt.close(figure)
                written.append(str(path_png))
            panels = []
            if output.mel is not None:
                panels.append(("model mel (postnet)", output.mel))
            if features is not None:
                mcd = f", MCD-DTW {row.mcd_dtw_db:.2f} dB" if row.mcd_dtw_db is not None else ""
                panels.append((f"output log-mel (from the waveform{mcd})", features.log_mel))
            panels.append(("espeak-ng log-mel", targets[item.id].log_mel))
            low = min(float(p.min()) for _, p in panels)
            high = max(float(p.max()) for _, p in panels)
            figure, axes = plt.subplots(len(panels), 1, figsize=(9, 2.2 * len(panels)), squeeze=False)
            longest = max(p.shape[0] for _, p in panels)
            for axis, (title, frames) in zip(axes[:, 0], panels):
                # One time scale for every panel, so the durations compare at a glance.
                axis.imshow(frames.T, origin="lower", aspect="auto", interpolation="none", vmin=low, vmax=high,
                            cmap="magma", extent=(-0.5, frames.shape[0] - 0.5, -0.5, frames.shape[1] - 0.5))
                axis.set_xlim(-0.5, longest - 0.5)
                axis.set_title(f"{label} {item.id}: {title}", fontsize=9)
                axis.set_ylabel("mel band")
            axes[-1, 0].set_xlabel(f"frame ({1000 * card.audio.hop_length / card.audio.sample_rate:g} ms)")
            figure.tight_layout()
            path_png = directory / f"{label}-{item.id}-spectrogram.png"
            figure.savefig(path_png, dpi=100)
            plt.close(figure)
            written.append(str(path_png))
    return written
