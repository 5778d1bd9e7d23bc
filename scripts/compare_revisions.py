"""Does ``trtgen generate`` write the same files at two revisions? (Used to show that a restructure
changed no output.)

Usage: python scripts/compare_revisions.py --base REV [--model DIR ...] [--sentences N] [--work DIR]

The base revision is checked out into a git worktree and run from there (``PYTHONPATH``), the working
tree as installed; both generate the same demo list (the shipped voice's sentences x its four style
clips) into two copy directories, at ``--threads 1``; then every WAV and rejects/settings file is
compared byte for byte, and records line by line on the fields both revisions write. Default models:
the shipped voice and a small random model exported once with this tree's exporter (the same
directory for both runs).

``--base-style-batch 1`` runs the base revision with its style-clip batch at one clip: revisions up to
9741841 embedded up to 16 clips per call, and ONNX Runtime's result for the style encoder depends on
the batch (see ``trtgen/engine/synthesis.py``, ``StyleBank``); since then every clip is embedded alone.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def generate(python_path: Path | None, model: Path | None, listing: Path, out: Path, style_batch: int | None) -> None:
    arguments = ["generate", "--list", str(listing), "--out", str(out), "--copies", "a:0.5:1,b:0.3:2", "--threads", "1", "--batch-size", "8"]
    if model is not None:
        arguments += ["--model", str(model)]
    prologue = ""
    if style_batch is not None:  # revisions <= 9741841: Synthesizer.style_bank(batch_size=16)
        prologue = f"import trtgen.synthesis as s; s.Synthesizer.style_bank.__defaults__ = ({style_batch},); "
    code = prologue + "import sys; from trtgen.cli import main; sys.argv = ['trtgen'] + sys.argv[1:]; main()"
    env = dict(os.environ)
    if python_path is not None:
        env["PYTHONPATH"] = str(python_path)
    result = subprocess.run([sys.executable, "-c", code, *arguments], env=env, capture_output=True, text=True, cwd=python_path or REPO)
    if result.returncode not in (0, 1):
        raise SystemExit(f"generate failed ({python_path or 'this tree'}):\n{result.stderr[-2000:]}")


def _same_records(a: Path, b: Path) -> bool:
    """Records files equal line by line on the fields both revisions write (a revision may add fields,
    e.g. the digests of issue 23); the added fields are printed."""
    lines_a, lines_b = ([json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()] for p in (a, b))
    added = sorted({k for line in lines_a for k in line} ^ {k for line in lines_b for k in line})
    if added:
        print(f"  {a.name}: fields in one revision only, not compared: {', '.join(added)}")

    def common(line: dict) -> dict:
        return {k: v for k, v in line.items() if k not in added}

    return len(lines_a) == len(lines_b) and all(common(x) == common(y) for x, y in zip(lines_a, lines_b))


def compare(a: Path, b: Path) -> list[str]:
    """Files that differ or exist on one side only (relative paths); records are compared on common fields."""
    names = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and ".staging" not in p.parts}
    names |= {p.relative_to(b) for p in b.rglob("*") if p.is_file() and ".staging" not in p.parts}

    def same(n: Path) -> bool:
        if not ((a / n).is_file() and (b / n).is_file()):
            return False
        if n.name.startswith("records") and n.suffix == ".jsonl":
            return _same_records(a / n, b / n)
        return filecmp.cmp(a / n, b / n, shallow=False)

    return sorted(str(n) for n in names if not same(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="git revision to compare the working tree with")
    parser.add_argument("--model", type=Path, action="append", help="model directory (repeatable; default: shipped voice and a small random model)")
    parser.add_argument("--sentences", type=int, default=6)
    parser.add_argument("--base-style-batch", type=int, help="style clips per call in the base revision (1: as this tree)")
    parser.add_argument("--work", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="trtgen-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    base = work / "base-tree"
    if not base.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), args.base], check=True, capture_output=True)
    from trtgen.commands.demo import demo_rows

    listing = work / "infer.jsonl"
    listing.write_text("".join(json.dumps(r) + "\n" for r in demo_rows(args.sentences)), encoding="utf-8")
    models: list[Path | None] = list(args.model or [])
    if not models:
        random_model = work / "random-small"
        if not (random_model / "model.json").exists():
            subprocess.run([sys.executable, "-m", "trtgen", "export", "--random-init", "small", "--out", str(random_model)], check=True, capture_output=True)
        models = [None, random_model]
    failed = False
    for model in models:
        label = "shipped voice" if model is None else model.name
        here, there = work / f"{label}-this", work / f"{label}-base"
        for directory in (here, there):
            shutil.rmtree(directory, ignore_errors=True)
        generate(None, model, listing, here, None)
        generate(base, model, listing, there, args.base_style_batch)
        differing = compare(here, there)
        files = sum(1 for p in here.rglob("*") if p.is_file())
        print(f"{label}: {files} files; {'identical' if not differing else f'{len(differing)} differ: ' + ', '.join(differing[:8])}")
        failed = failed or bool(differing)
    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], capture_output=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
