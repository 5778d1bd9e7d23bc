"""Shared by the benchmark scripts: machine and version facts, markdown tables, benchmark models.

Benchmark models are random models of a preset (``trtgen_export.variables.random_weights``: the stop token
never fires, so every utterance decodes to the length the benchmark asks for), exported once into a
work directory and reused while the exporter's inputs (preset, seed, trtgen version) stay the same.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "benchmarks"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_WORK_DIR = Path(os.environ.get("TRTGEN_BENCH_DIR", Path(os.environ.get("TMPDIR", "/tmp")) / "trtgen-bench"))

LIBRISPEECH_UTTERANCES = 281_241
"""Utterances of LibriSpeech's 960-h training set (train-clean-100 + train-clean-360 + train-other-500)."""
LIBRISPEECH_HOURS = 960.0


# ---------------------------------------------------------------------------- machine and versions
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def gpus() -> list[str]:
    """``name, memory`` of each NVIDIA GPU nvidia-smi lists (empty without one)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": memory_gib(),
        "gpus": gpus(),
        "os": f"{platform.system()} {platform.release()}",
        "load_average": [round(x, 2) for x in load],
    }


def versions(modules: Sequence[str] = ("numpy", "scipy", "onnxruntime", "tensorflow", "librosa", "soundfile", "matplotlib", "cupy", "tensorrt", "trtgen")) -> dict[str, str]:
    """Installed versions; a module that is absent reads "not installed" (never imported for nothing:
    the caller lists only what the run used or could use)."""
    found = {"python": platform.python_version()}
    for name in modules:
        try:
            module = sys.modules.get(name) or importlib.import_module(name)
            found[name] = str(getattr(module, "__version__", "?"))
        except Exception:  # noqa: BLE001 - a broken optional install must not stop the report
            found[name] = "not installed"
    return found


def command_line(script: str, argv: Sequence[str]) -> str:
    return "python " + " ".join(shlex.quote(a) for a in [script, *argv])


def now() -> datetime.datetime:
    return datetime.datetime.now().astimezone()


def header_lines(title: str, command: str, started: datetime.datetime, machine_info: dict[str, Any], version_info: dict[str, str], load_after: Sequence[float] | None = None) -> list[str]:
    """The facts every results file starts with: date, command, machine, versions."""
    gpu = "; ".join(machine_info["gpus"]) or "none"
    mem = f", {machine_info['memory_gib']:.0f} GiB RAM" if machine_info.get("memory_gib") else ""
    load = machine_info["load_average"]
    load_text = f"{load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f} at the start"
    if load_after is not None:
        load_text += f", {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} at the end"
    return [
        f"# {title}",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M %Z}",
        f"- Command: `{command}`",
        f"- Machine: {machine_info['cpu']}, {machine_info['logical_cores']} logical cores "
        f"(affinity {machine_info['affinity_cores']}){mem}, {machine_info['os']}; GPU: {gpu}",
        f"- Load average (1/5/15 min): {load_text}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in version_info.items()),
    ]


# ---------------------------------------------------------------------------- timing
def time_interleaved(
    contenders: dict[str, Callable[[], object]], repeats: int, statistic: Callable[[list[float]], float] = statistics.median
) -> dict[str, float]:
    """Median (or ``statistic``) wall time of each contender; one warm-up each (plans, compiles), then
    ``repeats`` round-robin rounds, so drifting load hits every contender alike."""
    for run in contenders.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistic(values) for name, values in times.items()}


def length_quantile_indices(lengths: Sequence[int], quantile: float, count: int) -> list[int]:
    """Indices of ``count`` items of neighbouring length from the ``quantile`` of ``lengths`` (e.g. the
    training utterances of one length for a timed batch)."""
    import numpy as np

    by_length = np.argsort(np.asarray(lengths), kind="stable")
    start = max(0, min(int(len(by_length) * quantile), len(by_length) - count))
    return [int(i) for i in by_length[start : start + count]]


# ---------------------------------------------------------------------------- tables
def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None) -> list[str]:
    """A GitHub markdown table; ``align`` per column is "l" or "r" (default: first left, rest right).

    Cells are str()-ed; a ``|`` inside a cell is escaped so it cannot split the row.
    """
    if align is None:
        align = ["l"] + ["r"] * (len(columns) - 1)
    if len(align) != len(columns):
        raise ValueError(f"{len(align)} alignments for {len(columns)} columns")
    rule = {"l": "---", "r": "---:", "c": ":---:"}

    def cells(values: Sequence[Any]) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    lines = [cells(columns), "|" + "|".join(rule[a] for a in align) + "|"]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"row {list(row)!r} has {len(row)} cells for {len(columns)} columns")
        lines.append(cells(row))
    return lines


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def duration_text(seconds: float) -> str:
    """``3.2 h`` / ``1.4 days`` for projections."""
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def write_text(path: Path, text: str) -> None:
    """Write a results file atomically (``trtgen.fileio.atomic_write``): an interrupted run never leaves
    half of one."""
    from trtgen.fileio import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write(text)


def write_report(path: Path, lines: Sequence[str]) -> None:
    write_text(path, "\n".join(lines) + "\n")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


# ---------------------------------------------------------------------------- models
def exporter_digest() -> str:
    """A short digest of trtgen's version and the exporter's sources: a cached benchmark model is
    reused only while the code that wrote it is unchanged."""
    import hashlib

    import trtgen

    digest = hashlib.sha256(trtgen.__version__.encode())
    for name in ("onnx_export.py", "tf_model.py", "variables.py", "quantize.py"):
        digest.update((REPO_ROOT / "export" / name).read_bytes())
    digest.update((REPO_ROOT / "trtgen" / "engine" / "config.py").read_bytes())
    return digest.hexdigest()[:12]


TRAINED_VOICE = "voice-trained"
"""Pseudo config name for the shipped, trained voice (its stop token fires: utterances end on their own)."""


def benchmark_model(
    config_name: str, work_dir: Path = DEFAULT_WORK_DIR, seed: int = 0, chunk_steps: int | None = None, quantize: tuple[str, ...] = ("postnet",)
) -> Path:
    """A random model of preset ``config_name`` exported as a model directory (cached in ``work_dir``).

    ``random_weights`` makes the stop token never fire, so decodes run to the cap (fixed length).
    ``chunk_steps`` is the K of the ``decoder_chunk`` graph (fixed at export); None: the exporter's default.
    ``quantize``: the int8 variants written beside the float graphs, as ``trtgen export --quantize`` does
    (its default: the postnet's); ``()`` for a float32-only directory.
    ``voice-trained`` is the voice shipped in the package (trtgen/voices/default, which carries the int8
    postnet), or a copy of it with other int8 variants.
    """
    from trtgen.engine.artifact import default_model_dir, load_model

    quantize = tuple(quantize)
    suffix = "" if chunk_steps is None else f"-K{chunk_steps}"
    suffix += "-float32" if not quantize else "" if quantize == ("postnet",) else "-int8-" + "-".join(quantize)
    if config_name == TRAINED_VOICE:
        if quantize == ("postnet",):
            return default_model_dir()
        shipped = load_model(default_model_dir())
        directory = Path(work_dir) / "models" / f"{config_name}{suffix}-{shipped.digest[:12]}-{exporter_digest()}"
        if not (directory / "model.json").is_file():
            shutil.rmtree(directory, ignore_errors=True)
            shutil.copytree(shipped.directory, directory)
            for variant in directory.glob("*.int8.onnx"):
                variant.unlink()
            shipped.with_precision("float32").card.write(directory)
            _quantize(directory, quantize)
        return directory
    directory = Path(work_dir) / "models" / f"{config_name}-seed{seed}{suffix}-{exporter_digest()}"
    if (directory / "model.json").is_file():
        return directory
    if quantize:  # the float export, copied, plus its int8 variants
        base = benchmark_model(config_name, work_dir, seed, chunk_steps, quantize=())
        shutil.rmtree(directory, ignore_errors=True)
        shutil.copytree(base, directory)
        _quantize(directory, quantize)
        return directory
    from trtgen_export.onnx_export import ExportOptions, export_model
    from trtgen_export.variables import random_weights
    from trtgen.engine.config import model_preset

    config = model_preset(config_name)
    print(f"exporting a random {config_name} model{suffix} to {directory} (once; cached) ...", flush=True)
    extra = {} if chunk_steps is None else {"chunk_steps": chunk_steps}
    export_model(
        random_weights(config, seed), config, directory,
        options=ExportOptions(name=f"bench-{config_name}", source={"random_init": config_name, "seed": seed}, **extra),
    )
    return directory


def _quantize(directory: Path, graphs: tuple[str, ...]) -> None:
    if graphs:
        from trtgen_export.quantize import QuantizeOptions, quantize_model

        quantize_model(directory, QuantizeOptions(graphs=graphs), log=lambda message: print(message, flush=True))


def random_weights_for(config_name: str, seed: int = 0) -> tuple[Any, Any]:
    """The same (config, weights) that :func:`benchmark_model` exported, for the TF2 reference."""
    from trtgen_export.variables import random_weights
    from trtgen.engine.config import model_preset

    if config_name == TRAINED_VOICE:
        from trtgen_export.checkpoint import read_checkpoint
        from trtgen_export.train import SHIPPED_VOICE_CHECKPOINTS, SHIPPED_VOICE_CONFIG

        config = model_preset(SHIPPED_VOICE_CONFIG)
        return config, read_checkpoint(SHIPPED_VOICE_CHECKPOINTS, config)

    config = model_preset(config_name)
    return config, random_weights(config, seed)
