"""Training step of the shipped voice's recipe (TensorFlow on the CPU): this checkout vs an earlier one.

What the voice recipe (scripts/train_voice.sh) spends its hours on is this step: the ``voice`` preset,
batch 16, teacher forced through :func:`trtgen_export.train.teacher_forcing.teacher_forced_decode`. The script
builds one :class:`trtgen_export.train.train.Trainer` per contender -- this checkout's teacher-forced decoder and
the one at ``--baseline`` (a git revision; its ``export/train/teacher_forcing.py`` is loaded as a module),
the rest of the step shared -- and times full optimiser steps on the same batches, interleaved, at the
corpus's short, median and long utterance lengths.

    python -m trtgen_export.train.corpus --out /tmp/voice-corpus        # once, ~5 min on 2 cores
    python benchmarks/bench_train_step.py --corpus /tmp/voice-corpus [--baseline bcecec3] \\
        [--output benchmarks/results/train_step.md]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
TEACHER_FORCING = "export/train/teacher_forcing.py"


def module_at_revision(revision: str) -> ModuleType:
    """``export/train/teacher_forcing.py`` as it was at ``revision``, imported under another name."""
    source = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "show", f"{revision}:{TEACHER_FORCING}"], capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="trtgen-bench-")) / "teacher_forcing_baseline.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("teacher_forcing_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(corpus: Path, baseline: str, batch_size: int, quantiles: list[float], repeats: int) -> list[dict[str, Any]]:
    import tensorflow as tf

    import trtgen_export.train.train as training
    from common import length_quantile_indices, time_interleaved
    from trtgen_export.train import teacher_forcing
    from trtgen_export.train.batches import BatchSource
    from trtgen_export.train.corpus import load_corpus

    manifest = load_corpus(corpus)
    config = training.TrainConfig(corpus=str(corpus), out=tempfile.mkdtemp(prefix="trtgen-bench-run-"), batch_size=batch_size)
    source = BatchSource(manifest, manifest.split("train"), config.model().reduction_factor)
    lengths = [u.num_frames for u in source.utterances]
    decoders = {f"baseline {baseline}": module_at_revision(baseline).teacher_forced_decode, "this checkout": teacher_forcing.teacher_forced_decode}
    warm_up = source.batch(length_quantile_indices(lengths, 0.5, 1) * batch_size)
    trainers = {}
    for name, decode in decoders.items():
        # compute_losses looks the decoder up in its module when the step is traced (first call).
        training.teacher_forced_decode = decode
        tf.random.set_seed(config.seed)
        trainers[name] = training.Trainer(config.model(), config)
        trainers[name].step(warm_up)
    training.teacher_forced_decode = teacher_forcing.teacher_forced_decode
    rows = []
    for quantile in quantiles:
        indices = length_quantile_indices(lengths, quantile, batch_size)
        batch = source.batch(indices, indices)
        seconds = time_interleaved({name: (lambda t=t: t.step(batch)) for name, t in trainers.items()}, repeats)
        rows.append({"quantile": quantile, "frames": int(batch.mel.shape[1]), "symbols": int(batch.text_ids.shape[1]), "seconds": seconds})
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import command_line, header_lines, machine, markdown_table, now, versions, write_report

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="an espeak-ng corpus (python -m trtgen_export.train.corpus)")
    parser.add_argument("--baseline", default="bcecec3", help="git revision whose teacher-forced decoder is the baseline")
    parser.add_argument("--batch-size", type=int, default=16, help="the recipe's batch size (16)")
    parser.add_argument("--quantiles", default="0.1,0.5,0.9", help="utterance-length quantiles of the training split")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, help="also write the report here (e.g. benchmarks/results/train_step.md)")
    args = parser.parse_args(argv)
    started, machine_info = now(), machine()
    rows = measure(args.corpus, args.baseline, args.batch_size, [float(q) for q in args.quantiles.split(",")], args.repeats)
    names = list(rows[0]["seconds"])
    lines = header_lines(
        "Training step of the voice recipe (TensorFlow, CPU)",
        command_line("benchmarks/bench_train_step.py", argv if argv is not None else sys.argv[1:]),
        started, machine_info, versions(("numpy", "tensorflow", "trtgen")),
    )  # fmt: skip
    lines += [
        "",
        f"Preset `voice`, batch {args.batch_size}, full optimiser steps (forward, gradient, Adam), contenders interleaved, "
        f"median of {args.repeats}. The batch is the {args.batch_size} training utterances from each length quantile.",
        "",
        *markdown_table(
            ["length quantile", "frames x symbols", *(f"{n} s/step" for n in names), "speed-up"],
            [
                [f"{r['quantile']:.2f}", f"{r['frames']} x {r['symbols']}", *(f"{r['seconds'][n]:.2f}" for n in names),
                 f"{r['seconds'][names[0]] / r['seconds'][names[1]]:.2f}x"]
                for r in rows
            ],
        ),  # fmt: skip
        "",
        f"- Load average at the end: {'/'.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]
    print("\n".join(lines))
    if args.output:
        write_report(args.output, lines)


if __name__ == "__main__":
    main()
