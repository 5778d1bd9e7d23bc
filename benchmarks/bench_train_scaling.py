"""Is the voice recipe's training step bound by compute or by per-op overhead? Batch size x CPU threads.

If the step were dominated by per-op overhead (the decoder loop runs ~150 small steps, each a few dozen
ops), a larger batch would cost little more per step, and an hour could buy more utterances; if it is
bound by arithmetic, the time per utterance stays flat with the batch and only more or faster cores help.
The script times full optimiser steps (forward, gradient, Adam) of the ``voice`` preset on the median-length
training utterances at each batch size, with TensorFlow limited to each thread count (one worker process
per thread count: TensorFlow fixes its thread pools when it starts).

    python benchmarks/bench_train_scaling.py --corpus /tmp/voice-corpus [--batch-sizes 8,16,32] \\
        [--threads 1,2] [--output benchmarks/results/train_scaling.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()


def worker(corpus: Path, threads: int, batch_sizes: list[int], repeats: int, quantile: float) -> list[dict[str, Any]]:
    """Time steps in this process with TensorFlow's intra- and inter-op pools of ``threads`` threads."""
    import statistics
    import time

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    sys.path.insert(0, str(SCRIPT.parents[1]))
    sys.path.insert(0, str(SCRIPT.parent))
    import trtgen_export.train.train as training
    from common import length_quantile_indices
    from trtgen_export.train.batches import BatchSource
    from trtgen_export.train.corpus import load_corpus

    manifest = load_corpus(corpus)
    model_config = training.TrainConfig(corpus=str(corpus), out="").model()
    source = BatchSource(manifest, manifest.split("train"), model_config.reduction_factor)
    lengths = [u.num_frames for u in source.utterances]
    rows = []
    for batch_size in batch_sizes:
        config = training.TrainConfig(corpus=str(corpus), out=tempfile.mkdtemp(prefix="trtgen-bench-run-"), batch_size=batch_size)
        indices = length_quantile_indices(lengths, quantile, batch_size)
        batch = source.batch(indices, indices)
        tf.random.set_seed(config.seed)
        trainer = training.Trainer(model_config, config)
        trainer.step(batch)  # tracing
        seconds = []
        for _ in range(repeats):
            began = time.perf_counter()
            trainer.step(batch)
            seconds.append(time.perf_counter() - began)
        rows.append({"threads": threads, "batch": batch_size, "frames": int(batch.mel.shape[1]), "seconds": statistics.median(seconds)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="an espeak-ng corpus (python -m trtgen_export.train.corpus)")
    parser.add_argument("--batch-sizes", default="8,16,32")
    parser.add_argument("--threads", default="1,2", help="TensorFlow intra- and inter-op threads, one worker process each")
    parser.add_argument("--quantile", type=float, default=0.5, help="utterance-length quantile of the training split")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, help="also write the report here (e.g. benchmarks/results/train_scaling.md)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.worker is not None:
        print(json.dumps(worker(args.corpus, args.worker, batch_sizes, args.repeats, args.quantile)))
        return

    sys.path.insert(0, str(SCRIPT.parent))
    from common import command_line, header_lines, machine, markdown_table, now, versions, write_report

    started, machine_info = now(), machine()
    rows: list[dict[str, Any]] = []
    for threads in (int(t) for t in args.threads.split(",")):
        command = [sys.executable, str(SCRIPT), "--corpus", str(args.corpus), "--batch-sizes", args.batch_sizes,
                   "--quantile", str(args.quantile), "--repeats", str(args.repeats), "--worker", str(threads)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows += json.loads(done.stdout.strip().splitlines()[-1])
        print(rows[-len(batch_sizes) :], flush=True)
    reference = {r["threads"]: r for r in rows if r["batch"] == min(batch_sizes)}
    lines = header_lines(
        "Training step of the voice recipe: batch size x CPU threads (TensorFlow, CPU)",
        command_line("benchmarks/bench_train_scaling.py", argv if argv is not None else sys.argv[1:]),
        started, machine_info, versions(("numpy", "tensorflow", "trtgen")), load_after=os.getloadavg(),
    )  # fmt: skip
    lines += [
        "",
        f"Preset `voice`, full optimiser steps (forward, gradient, Adam), median of {args.repeats} after one traced step, "
        f"on the training utterances at length quantile {args.quantile:.2f}. Time per utterance flat in the batch "
        "means the step is bound by arithmetic, not by per-op overhead: a bigger batch then buys no utterances per hour.",
        "",
        *markdown_table(
            ["threads", "batch", "frames", "s/step", "ms per utterance", f"per utterance vs batch {min(batch_sizes)}", "steps per hour"],
            [
                [r["threads"], r["batch"], r["frames"], f"{r['seconds']:.2f}", f"{1000 * r['seconds'] / r['batch']:.0f}",
                 f"{(r['seconds'] / r['batch']) / (reference[r['threads']]['seconds'] / reference[r['threads']]['batch']):.2f}",
                 f"{3600 / r['seconds']:.0f}"]
                for r in rows
            ],
        ),  # fmt: skip
    ]
    print("\n".join(lines))
    if args.output:
        write_report(args.output, lines)


if __name__ == "__main__":
    main()
