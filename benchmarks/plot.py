"""Throughput (utterances/s) against batch size, one line per decoder mode, one panel per config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

STYLES = {
    "tf-loop": dict(color="tab:orange", marker="s"),
    "ort-step": dict(color="tab:blue", marker="^"),
    "ort-chunk": dict(color="tab:green", marker="o"),
    "tensorrt": dict(color="tab:red", marker="D"),
}


def plot_throughput(timings: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Write a PNG of utterances/s (fixed-length utterances) vs batch size, log-log, per config."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    configs = list(dict.fromkeys(t["config"] for t in timings))
    if not configs:
        raise ValueError("no decoder timings to plot")
    fig, axes = plt.subplots(1, len(configs), figsize=(6 * len(configs), 4.5), squeeze=False)
    for ax, config in zip(axes[0], configs):
        rows = [t for t in timings if t["config"] == config]
        for mode in dict.fromkeys(t["mode"] for t in rows):
            points = sorted((t["batch"], t["utterances_per_s"]) for t in rows if t["mode"] == mode)
            ax.plot([p[0] for p in points], [p[1] for p in points], label=mode, **STYLES.get(mode, {}))
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_yscale("log")
        ax.set_xlabel("batch size (utterances decoded together)")
        ax.set_ylabel("utterances/s (decoder only)")
        ax.set_title(f"{config} config")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
