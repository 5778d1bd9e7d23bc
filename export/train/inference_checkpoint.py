"""Turn training checkpoints into the checkpoint that ships: inference variables only, optionally averaged.

A training checkpoint also holds Adam's slots (two thirds of its size); the shipped one keeps the 117
inference variables of the model config (docs/openseq2seq-notes.md §8), in the same OpenSeq2Seq TF1 format, so it goes
through ``trtgen export`` like a user's checkpoint. Given several checkpoints of one run, the variables
are averaged element-wise (checkpoint averaging, as in Vaswani et al. 2017): near the end of training,
when the learning rate has stopped decaying, the weights wander around a minimum and their mean sits
nearer its centre. For the default voice, the mean of two late checkpoints had a steadier attention than
the later one alone, but not steady enough to ship (docs/shipped-voice.md, "Tried and not adopted"). Batch-norm moving
statistics are averaged like the weights.

    python -m trtgen_export.train.inference_checkpoint --config voice --out DIR CKPT [CKPT ...]
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from trtgen_export.checkpoint import CheckpointError, checkpoint_step, read_checkpoint, resolve_checkpoint, write_checkpoint
from trtgen_export.train import SHIPPED_VOICE_CONFIG
from trtgen_export.variables import WeightDict
from trtgen.engine.config import load_model_config

__all__ = ["average_weights", "write_inference_checkpoint"]

logger = logging.getLogger(__name__)


def average_weights(tables: Sequence[WeightDict]) -> WeightDict:
    """Element-wise mean of weight tables that hold the same names and shapes (float32, in float64 sums)."""
    if not tables:
        raise ValueError("average_weights needs at least one weight table")
    names = list(tables[0])
    for index, table in enumerate(tables[1:], start=1):
        if list(table) != names or any(table[n].shape != tables[0][n].shape for n in names):
            raise ValueError(f"weight table {index} does not have the names and shapes of table 0")
    return {n: np.mean([t[n] for t in tables], axis=0, dtype=np.float64).astype(np.float32) for n in names}


def _step(prefix: Path) -> int | None:
    """The checkpoint's ``global_step``; failing that, the ``-N`` of its file name."""
    step = checkpoint_step(prefix)
    if step is not None:
        return step
    match = re.search(r"-(\d+)$", prefix.name)
    return int(match.group(1)) if match else None


def write_inference_checkpoint(sources: Sequence[str | Path], config_name: str, out_dir: str | Path) -> Path:
    """Read each source checkpoint (a prefix, or a run directory for its latest), average them when there
    are several, and write ``<out_dir>/model.ckpt-<step>`` (the largest source step). Returns its prefix."""
    config = load_model_config(config_name)
    prefixes = [resolve_checkpoint(s) for s in sources]
    if len(set(prefixes)) != len(prefixes):
        raise ValueError(f"the same checkpoint is named twice: {', '.join(map(str, prefixes))}")
    steps = [_step(p) for p in prefixes]
    step = max((s for s in steps if s is not None), default=None)
    weights = average_weights([read_checkpoint(p, config) for p in prefixes])
    name = f"model.ckpt-{step}" if step is not None else "model.ckpt"
    prefix = write_checkpoint(weights, Path(out_dir) / name, global_step=step)
    logger.info("%s: %s of %s", prefix, "mean" if len(prefixes) > 1 else "inference variables", ", ".join(map(str, prefixes)))
    return prefix


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m trtgen_export.train.inference_checkpoint", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoint prefixes or run directories (several: averaged)")
    parser.add_argument("--config", default=SHIPPED_VOICE_CONFIG, help=f"model preset or JSON (default: {SHIPPED_VOICE_CONFIG}, the shipped voice's)")
    parser.add_argument("--out", required=True, help="directory for the inference checkpoint")
    args = parser.parse_args(argv)
    try:
        prefix = write_inference_checkpoint(args.checkpoints, args.config, args.out)
    except (CheckpointError, ValueError, OSError) as error:
        print(f"inference_checkpoint: {error}", file=sys.stderr)
        return 2
    print(prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
