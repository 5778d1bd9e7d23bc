"""The shipped voice on real LibriSpeech transcripts, with and without its attention window.

Usage: python benchmarks/librispeech_attention.py [--model DIR ...] [--output PATH]

The voice was trained on short sentences of a grammar; LibriSpeech transcripts are longer, in capitals,
and full of words it never saw. No reference audio is needed for what is measured here: the share of
utterances whose stop token fires before the cap and whose attention passes ``trtgen eval``'s alignment
check (:func:`trtgen.engine.alignment.check_alignment`, default rule), and the output's length per symbol.
Transcripts: every LibriSpeech transcript in ../shared/data (the trans.txt files and OpenSeq2Seq's
50-row librivox sample), each spoken in the four shipped style clips at dropout 0.5.

Default models: the shipped voice (window 1,3) and the same checkpoint exported without the window
(``trtgen export --attention-window none``; needs TensorFlow), exported into the work directory.
Writes benchmarks/results/librispeech_attention.md.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    DEFAULT_WORK_DIR,
    SHARED_DATA,
    command_line,
    header_lines,
    machine,
    markdown_table,
    now,
    versions,
    write_report,
)

from trtgen import Rejected, Row, Voice  # noqa: E402
from trtgen.engine.artifact import default_model_dir  # noqa: E402
from trtgen.corpora.librispeech import read_librispeech  # noqa: E402
from trtgen.engine.shipped import shipped_styles  # noqa: E402
from trtgen.engine.alignment import check_alignment  # noqa: E402
from trtgen.engine.synthesis import SynthesisOptions  # noqa: E402
from trtgen.engine.text import last_spoken_index  # noqa: E402

DROPOUT = 0.5
SEED = 0


@dataclass
class Outcome:
    transcript: str
    style: str
    symbols: int
    stopped: bool
    aligned: bool
    monotonic: bool
    reaches_end: bool
    no_big_jumps: bool
    frames: int


def transcripts() -> list[tuple[str, str]]:
    """(id, text) of every LibriSpeech transcript in ../shared/data."""
    corpus = read_librispeech([SHARED_DATA / "LibriSpeech", SHARED_DATA / "librivox-dev-clean-sample.csv"], splits=["dev-clean", "test-clean"])
    return [(u.id, u.text) for u in corpus.utterances]


def unwindowed_copy(work_dir: Path) -> Path:
    """The shipped checkpoint exported without the attention window (afresh each run: ten seconds, and a
    copy of an older checkpoint can never be measured by mistake)."""
    import shutil

    from trtgen_export.pipeline import ExportRequest, run_export
    from trtgen_export.train import SHIPPED_VOICE_CHECKPOINTS, SHIPPED_VOICE_CONFIG

    out = work_dir / "shipped-no-window"
    shutil.rmtree(out, ignore_errors=True)
    run_export(ExportRequest(out=out, checkpoint=SHIPPED_VOICE_CHECKPOINTS, config=SHIPPED_VOICE_CONFIG, name="no-window", attention_window="none"))
    return out


def decode_all(model_dir: Path, texts: list[tuple[str, str]]) -> tuple[list[Outcome], list[str], Voice]:
    """Every transcript in every shipped style; returns the outcomes, the transcripts it could not speak, the voice."""
    voice = Voice.load(model_dir, backend="onnxruntime", options=SynthesisOptions(batch_size=16))
    card = voice.card
    clips = list(shipped_styles().values())
    rows = [Row(f"{text_id}-{clip.stem}", text, clip, DROPOUT, SEED, tag=(text_id, clip)) for text_id, text in texts for clip in clips]
    outcomes: dict[str, Outcome] = {}
    rejected: dict[str, str] = {}
    for output in voice.stream(rows, alignments=True):
        text_id, clip = output.tag
        if isinstance(output, Rejected):
            rejected[text_id] = f"{text_id}: {output.reason}"
            continue
        ids = output.text_ids
        eos = int(np.flatnonzero(ids == card.text.eos_id)[0])
        check = check_alignment(output.alignment, eos, end_index=last_spoken_index(ids, card.text))
        outcomes[output.id] = Outcome(text_id, clip.stem, eos - 1, output.stopped, check.ok, check.monotonic, check.reaches_end,
                                      check.no_big_jumps, output.frames)
    return [outcomes[r.id] for r in rows if r.id in outcomes], sorted(rejected.values()), voice


def percent(values: list[bool]) -> str:
    return f"{100 * np.mean(values):.1f}%"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", help="model directory (repeatable; default: the shipped voice with and without its window)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "librispeech_attention.md")
    args = parser.parse_args(argv)
    started, machine_info = now(), machine()
    directories = args.model or [default_model_dir(), unwindowed_copy(args.work_dir)]
    texts = transcripts()
    rows, failures, symbols = [], [], {}
    for directory in directories:
        outcomes, rejected, voice = decode_all(directory, texts)
        window = voice.card.model.attention_window
        per_symbol = [o.frames / o.symbols for o in outcomes]
        symbols.update((o.transcript, o.symbols) for o in outcomes)
        rows.append([
            voice.card.name, f"{window[0]},{window[1]}" if window else "none", len(outcomes), len(rejected),
            percent([o.stopped for o in outcomes]), percent([o.aligned for o in outcomes]), percent([o.monotonic for o in outcomes]),
            percent([o.no_big_jumps for o in outcomes]), percent([o.reaches_end for o in outcomes]),
            f"{np.median(per_symbol):.2f}", f"{np.percentile(per_symbol, 99):.2f}",
        ])
        bad = [o for o in outcomes if not (o.stopped and o.aligned)]
        failures.append(f"- {voice.card.name}: " + (", ".join(f"{o.transcript}/{o.style}" for o in bad[:12]) or "none")
                        + (f" and {len(bad) - 12} more" if len(bad) > 12 else ""))
    lengths = list(symbols.values())
    lines = header_lines("The shipped voice on LibriSpeech transcripts: attention window", command_line("benchmarks/librispeech_attention.py", argv or sys.argv[1:]),
                         started, machine_info, versions(("numpy", "onnxruntime", "trtgen")))
    lines += [
        "",
        f"{len(texts)} LibriSpeech transcripts from ../shared/data ({min(lengths)}-{max(lengths)} symbols after the text front end, median "
        f"{int(np.median(lengths))}), each in the {len(shipped_styles())} shipped style clips, prenet dropout {DROPOUT}, the model's stop threshold. "
        "Aligned: `trtgen eval`'s check (monotonic within one symbol, no jump over 4, reaching the last spoken symbol). "
        "Frames per symbol: output length (12.5-ms frames) over text symbols.",
        "",
    ]
    lines += markdown_table(
        ["model", "window", "utterances", "texts rejected", "stopped", "aligned", "monotonic", "no big jumps", "reaches the end",
         "frames/symbol median", "frames/symbol p99"],
        rows,
    )
    lines += ["", "Utterances that did not stop or failed the alignment check (transcript/style):", "", *failures]
    write_report(args.output, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
