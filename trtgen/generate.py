"""``trtgen generate``: every row of an infer list becomes one utterance in each dataset copy.

All copies are made in one run: a row's text is encoded once and decoded once per copy, each with
its own dropout rate and seed. An utterance's audio is a pure function of (model, text, style clip,
copy seed, rate, utterance id): dropout masks and the Griffin-Lim phase are drawn from streams keyed
by the copy seed and the utterance id, so reruns, shards and resumed runs give identical files.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trtgen import __version__
from trtgen.artifact import Model, load_model
from trtgen.backends import create_backend
from trtgen.corpora.base import Reject, log_rejects
from trtgen.corpora.infer_list import InferRow, read_infer_list
from trtgen.decode import DecodeStats
from trtgen.progress import print_table, synthesis_progress
from trtgen.randomness import utterance_key
from trtgen.synthesis import StageTimes, SynthesisOptions, Synthesizer, Utterance
from trtgen.text import EncodedText, TextEncoder, TextError
from trtgen.vocoder import GriffinLimOptions
from trtgen.writers import CopyWriter, UtteranceRecord

logger = logging.getLogger(__name__)

__all__ = ["CopySpec", "parse_copies", "parse_shard", "GenerateOptions", "GenerateReport", "run_generate", "copy_seed"]

_COPY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class CopySpec:
    """One synthetic copy of the corpus: its directory name, prenet dropout rate and seed."""

    name: str
    dropout: float
    seed: int


def copy_seed(base_seed: int, name: str) -> int:
    """A copy's default seed: distinct per copy name, so copies differ even at equal rates."""
    digest = hashlib.blake2b(f"{int(base_seed)}\x1f{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def parse_copies(text: str | None, *, default_dropout: float, base_seed: int) -> list[CopySpec]:
    """``NAME:RATE[:SEED],...`` -> copies; none given means one copy at the model's training rate."""
    if not text:
        name = f"dropout{default_dropout:g}"
        return [CopySpec(name, default_dropout, copy_seed(base_seed, name))]
    copies = []
    for part in text.split(","):
        fields = part.strip().split(":")
        if len(fields) not in (2, 3) or not fields[0]:
            raise ValueError(f"--copies: {part!r} is not NAME:RATE or NAME:RATE:SEED")
        name = fields[0]
        if not _COPY_NAME.match(name):
            raise ValueError(f"--copies: copy name {name!r} must be letters, digits, '.', '_' or '-'")
        try:
            rate = float(fields[1])
            seed = int(fields[2]) if len(fields) == 3 else copy_seed(base_seed, name)
        except ValueError:
            raise ValueError(f"--copies: {part!r}: RATE must be a number and SEED an integer") from None
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"--copies: {name}: dropout rate {rate} must be in [0, 1)")
        copies.append(CopySpec(name, rate, seed))
    names = [c.name for c in copies]
    if len(set(names)) != len(names):
        raise ValueError(f"--copies: copy names repeat: {names}")
    return copies


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``I/N`` -> (I, N) with 0 <= I < N: this process takes rows whose index is I modulo N."""
    if not text:
        return None
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ValueError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class GenerateOptions:
    model_dir: Path
    list_path: Path
    out_dir: Path
    style_root: Path | None = None
    copies: tuple[CopySpec, ...] = ()
    backend: str = "auto"
    device: str = "cpu"
    synthesis: SynthesisOptions = field(default_factory=SynthesisOptions)
    shard: tuple[int, int] | None = None
    limit: int | None = None
    resume: bool = False
    sample_format: str = "pcm16"
    naming: str = "id"
    threads: int | None = None
    progress: bool = True


@dataclass
class CopyReport:
    name: str
    dropout: float
    seed: int
    written: int = 0
    skipped: int = 0
    """Already complete from an earlier run (``--resume``)."""
    rejected: int = 0
    audio_seconds: float = 0.0
    stopped: int = 0
    capped: int = 0


@dataclass
class GenerateReport:
    copies: list[CopyReport]
    rejects: list[Reject]
    wall_seconds: float
    times: StageTimes
    decode: DecodeStats
    backend: str

    @property
    def written(self) -> int:
        return sum(c.written for c in self.copies)

    @property
    def audio_seconds(self) -> float:
        return sum(c.audio_seconds for c in self.copies)


def _settings(model: Model, copy: CopySpec, options: GenerateOptions, backend: str) -> dict[str, Any]:
    """What must be equal for outputs to be combined in one copy directory."""
    vocoder = asdict(options.synthesis.vocoder)
    vocoder.pop("threads", None)
    return {
        "trtgen_version": __version__,
        "model": model.card.name,
        "model_digest": model.digest,
        "backend": backend,
        "copy": copy.name,
        "dropout": copy.dropout,
        "seed": copy.seed,
        "sample_rate": model.card.audio.sample_rate,
        "sample_format": options.sample_format,
        "naming": options.naming,
        "vocoder": vocoder,
    }


def _select_rows(rows: list[InferRow], rejects: list[Reject], options: GenerateOptions) -> tuple[list[InferRow], list[Reject]]:
    if options.limit is not None:
        rows = rows[: options.limit]
        last_line = rows[-1].line if rows else 0
        rejects = [r for r in rejects if r.line is None or r.line <= last_line]
    if options.shard is not None:
        index, count = options.shard
        rows = [r for r in rows if r.index % count == index]
        rejects = rejects if index == 0 else []
    return rows, rejects


def run_generate(options: GenerateOptions) -> GenerateReport:
    started = time.perf_counter()
    model = load_model(options.model_dir)
    backend = create_backend(model, options.backend, options.device, threads=options.threads)
    backend_name = f"{backend.name}-{backend.device}"
    synthesizer = Synthesizer(model, backend, options.synthesis)
    copies = list(options.copies) or parse_copies(None, default_dropout=model.card.model.prenet_dropout, base_seed=0)
    all_rows, list_rejects = read_infer_list(options.list_path, options.style_root)
    rows, list_rejects = _select_rows(all_rows, list_rejects, options)
    log_rejects(list_rejects, "list rows")

    encoder = TextEncoder(model.card.text)
    encoded: dict[int, EncodedText] = {}
    row_rejects: list[Reject] = list(list_rejects)
    for row in rows:
        try:
            encoded[row.index] = encoder.encode_with_info(row.text)
        except TextError as error:
            row_rejects.append(Reject(row.source, row.line, str(error), row.id))
    writers = []
    reports = []
    for copy in copies:
        writer = CopyWriter(
            options.out_dir / copy.name, _settings(model, copy, options, backend_name), shard=options.shard, naming=options.naming
        )
        writer.open(resume=options.resume)
        writers.append(writer)
        reports.append(CopyReport(copy.name, copy.dropout, copy.seed))

    todo = [
        row for row in rows
        if row.index in encoded and any(row.id not in w.completed for w in writers)
    ]
    clips = list(dict.fromkeys(row.style for row in todo))
    with synthesis_progress(len(clips), "style clips", enabled=options.progress and len(clips) > 1) as progress:
        styles, style_errors = synthesizer.style_bank().embeddings(clips, lambda n: progress.advance(n))
    for row in todo:
        if row.style in style_errors:
            row_rejects.append(Reject(row.source, row.line, f"style clip unusable: {style_errors[row.style]}", row.id))
    todo = [row for row in todo if row.style in styles]
    todo.sort(key=lambda row: (-encoded[row.index].text_len, row.index))

    jobs: list[tuple[InferRow, int]] = []
    utterances: list[Utterance] = []
    for row in todo:
        for copy_index, (copy, writer) in enumerate(zip(copies, writers)):
            if row.id in writer.completed:
                continue
            utterances.append(
                Utterance(
                    index=len(jobs),
                    text_ids=encoded[row.index].ids,
                    style_embedding=styles[row.style],
                    dropout=copy.dropout,
                    prenet_key=utterance_key(copy.seed, row.id, "prenet"),
                    vocoder_key=utterance_key(copy.seed, row.id, "griffin_lim"),
                    encoding_key=row.index,
                )
            )
            jobs.append((row, copy_index))
    for copy_index, writer in enumerate(writers):
        reports[copy_index].skipped = sum(1 for row in rows if row.id in writer.completed)

    copy_rejects: list[list[Reject]] = [list(row_rejects) for _ in copies]
    with synthesis_progress(len(utterances), "generate", enabled=options.progress) as progress:
        for result in synthesizer.run(utterances):
            row, copy_index = jobs[result.index]
            copy, writer, report = copies[copy_index], writers[copy_index], reports[copy_index]
            if result.audio is None:
                reason = f"the decoder stopped after {result.num_frames} frame(s): too short to vocode"
                copy_rejects[copy_index].append(Reject(row.source, row.line, reason, row.id))
                progress.advance(1)
                continue
            started_write = time.perf_counter()
            duration = len(result.audio) / model.card.audio.sample_rate
            record = UtteranceRecord(
                id=row.id, index=row.index, text=row.text, style=str(row.style), copy=copy.name,
                dropout=copy.dropout, seed=copy.seed, frames=result.num_frames, steps=result.steps,
                duration_s=round(duration, 6), stopped=result.stopped, capped=not result.stopped,
                audio=writer.audio_name(row.id, row.index),
            )
            writer.write(record, result.audio)
            synthesizer.times.add("writing", time.perf_counter() - started_write)
            report.written += 1
            report.audio_seconds += duration
            report.stopped += int(result.stopped)
            report.capped += int(not result.stopped)
            progress.advance(1, duration)

    order = [row.id for row in rows]
    all_rejects: list[Reject] = []
    for copy_index, writer in enumerate(writers):
        writer.close(order, copy_rejects[copy_index])
        reports[copy_index].rejected = len(copy_rejects[copy_index])
        all_rejects.extend(copy_rejects[copy_index])
    return GenerateReport(
        copies=reports,
        rejects=all_rejects,
        wall_seconds=time.perf_counter() - started,
        times=synthesizer.times,
        decode=synthesizer.decode_stats,
        backend=f"{backend.describe()}, vocoder {synthesizer.vocoder_device}",
    )


def print_report(report: GenerateReport) -> None:
    """End-of-run tables: per copy, and where the time went."""
    rows = []
    for c in report.copies:
        done = c.written or 1
        rows.append(
            [c.name, f"{c.dropout:g}", c.seed, c.written, c.skipped, c.rejected, f"{c.audio_seconds / 3600:.3f}",
             f"{100 * c.stopped / done:.0f}%", f"{100 * c.capped / done:.0f}%"]
        )
    print_table(
        "trtgen generate",
        ["copy", "dropout", "seed", "written", "already done", "rejected", "audio h", "stopped", "capped"],
        rows,
    )
    wall = report.wall_seconds
    stage_rows = [[stage, f"{seconds:.1f}", f"{100 * seconds / wall:.0f}%"] for stage, seconds in sorted(report.times.seconds.items(), key=lambda kv: -kv[1])]
    d = report.decode
    stage_rows.append(["decode loop host work", f"{d.host_seconds:.1f}", f"{100 * d.host_overhead:.1f}% of decode"])
    print_table(f"time ({report.backend}), wall {wall:.1f} s", ["stage", "seconds", "share"], stage_rows)
    print_table(
        "throughput",
        ["measure", "value"],
        [
            ["utterances/s", f"{report.written / wall:.2f}" if wall else "-"],
            ["audio seconds/s", f"{report.audio_seconds / wall:.2f}" if wall else "-"],
            ["decoder work on finished rows", f"{100 * d.wasted_fraction:.1f}%"],
            ["attention over padding", f"{100 * d.padding_fraction:.1f}%"],
        ],
    )


def default_model_dir() -> Path:
    """The voice shipped inside the package (trained here on espeak-ng speech, see README)."""
    path = Path(__file__).resolve().parent / "voices" / "default"
    if not (path / "model.json").is_file():
        raise ValueError(
            "no model is shipped with this installation: pass --model DIR "
            "(`trtgen export CHECKPOINT --out DIR`, or `trtgen export --random-init small --out DIR` for a test model)"
        )
    return path
