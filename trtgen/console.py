"""What the command line shows: progress bars with rate and ETA, and the end-of-command tables.

Only ``trtgen.cli`` (and scripts) render; library code reports through :class:`trtgen.progress.Progress`
and returns report dataclasses, which the ``render_*`` functions here turn into tables.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgressBar
from rich.table import Table
from rich.text import Text

__all__ = [
    "console", "BarProgress", "print_table", "render_generate", "render_bench", "render_eval", "render_prepare",
    "render_export", "render_check", "render_manifests", "render_demo",
]

console = Console(stderr=True)
if not console.is_terminal:
    console.width = 120  # logs and CI: wide enough for the summary tables


class _RateColumn(ProgressColumn):
    """Units per second and, for synthesis, audio seconds per second since the phase began."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        unit = task.fields.get("unit", "utt")
        if elapsed <= 0:
            return Text(f"- {unit}/s", style="progress.data.speed")
        rate = f"{task.completed / elapsed:.2f} {unit}/s"
        audio = float(task.fields.get("audio_seconds", 0.0))
        if audio:
            rate += f"  {audio / elapsed:.1f} audio-s/s"
        return Text(rate, style="progress.data.speed")


class BarProgress:
    """A :class:`trtgen.progress.Progress` drawn as rich bars on stderr, one per phase. Use as a
    context manager around the library call."""

    def __init__(self, *, unit: str = "utt", enabled: bool = True) -> None:
        self.unit = unit
        self.bars = RichProgressBar(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=console, disable=not enabled, transient=False,
        )
        self.task: Any = None
        self.audio_seconds = 0.0

    def __enter__(self) -> BarProgress:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bars.__exit__(*exc)

    def start(self, description: str, total: int) -> None:
        self.audio_seconds = 0.0
        self.task = self.bars.add_task(description, total=total, audio_seconds=0.0, unit=self.unit)

    def advance(self, count: int = 1, audio_seconds: float = 0.0) -> None:
        if self.task is None:
            return
        self.audio_seconds += audio_seconds
        self.bars.update(self.task, advance=count, audio_seconds=self.audio_seconds)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)


def render_generate(report: Any) -> None:
    """End-of-run tables of ``trtgen generate``: per copy, where the time went, throughput."""
    rows = []
    for c in report.copies:
        done = c.written or 1
        rows.append(
            [c.name, f"{c.dropout:g}", c.seed, c.written, c.skipped, f"{c.inputs_changed}/{c.files_missing}/{c.files_altered}",
             c.rejected, f"{c.audio_seconds / 3600:.3f}", f"{100 * c.stopped / done:.0f}%", f"{c.failed}/{c.retried}"]
        )
    print_table(
        "trtgen generate",
        ["copy", "dropout", "seed", "written", "already done", "redone: inputs changed/file missing/altered", "rejected",
         "audio h", "stopped", "gate: failed/passed on a retry"],
        rows,
    )
    for c in report.copies:
        if c.failed:
            reasons = ", ".join(f"{reason} {count}" for reason, count in c.failed_reasons.most_common())
            console.print(f"{c.name}: {c.failed} utterance(s) failed the quality gate ({reasons}); "
                          "trtgen manifest leaves them out (--keep-failed keeps them)")
    for c in report.copies:
        if c.pruned:
            console.print(f"{c.name}: {c.pruned} utterance(s) no longer in the list were removed (--prune)")
        elif c.not_in_list:
            console.print(f"{c.name}: {c.not_in_list} utterance(s) are no longer in the list; kept (--prune removes them)")
    wall = report.wall_seconds
    if report.workers:
        print_table(
            f"workers (start-up {report.startup_seconds:.1f} s: connecting to Ray and loading the model)",
            ["worker", "blocks", "utterances", "audio s", "busy s", "audio-s/s when busy", "lost"],
            [[w.worker, w.blocks, w.utterances, f"{w.audio_seconds:.1f}", f"{w.busy_seconds:.1f}",
              f"{w.audio_seconds / w.busy_seconds:.1f}" if w.busy_seconds else "-", w.lost or ""] for w in report.workers],
        )
    if report.ray_log is not None:
        console.print(f"Ray's own log lines: {report.ray_log}")
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


def render_bench(report: Any) -> None:
    """The tables of ``trtgen bench``."""
    from trtgen.commands.bench import DECODER_COLUMNS, decoder_rows

    o = report.options
    console.print(
        f"model {report.model}, {report.backend}, {os.cpu_count()} logical cores; fixed-length mode: "
        f"{o.frames} frames per utterance (stop token ignored); medians of {o.repeats} repeat(s)"
    )
    print_table("decoder", DECODER_COLUMNS, decoder_rows(report.decoder))
    print_table(
        f"Griffin-Lim (trtgen, batch {o.vocoder_batch} x {o.frames} frames)",
        ["preset", "iterations", "momentum", "ms", "audio-s/s"],
        [[v.name, v.options.n_iter, v.options.momentum, f"{1e3 * v.wall_s:.0f}", f"{v.audio_seconds_per_s:.1f}"] for v in report.vocoder],
    )
    console.print(
        "host = wall time of the decode minus time inside the runtime's calls; 'steps timed' a/b: a window of "
        f"a steps was timed when the whole b did not fit the {o.step_budget_s:g}-s budget; utt/s are for "
        f"{o.frames}-frame utterances; K is fixed in the model (trtgen export --chunk-steps). Comparisons with "
        "the TF2 reference and librosa, and the K sweep: benchmarks/run_all.py. "
        f"Total {report.wall_s:.0f} s."
    )


def _fmt_eval(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def render_eval(report: Any) -> None:
    """Per-voice tables for each model, then every check with PASS/FAIL."""
    columns = ["voice", "n", "align ok (mono/jumps/end)", "stopped", "dur r", "dur ratio", "MCD-DTW dB",
               "content ok", "style ok", "abs (mel/F0)", "voiced", "attn peak"]
    for evaluation in (report.trained, report.random):
        if evaluation is None:
            continue
        rows = []
        for group in [*evaluation.voices.values(), evaluation.overall]:
            rows.append([
                group.name, group.num_utterances,
                f"{_fmt_eval(group.alignment_ok, '.2f')} ({_fmt_eval(group.monotonic, '.2f')}/{_fmt_eval(group.no_big_jumps, '.2f')}/"
                f"{_fmt_eval(group.reaches_end, '.2f')})",
                _fmt_eval(group.stopped, ".2f"), _fmt_eval(group.duration_r), _fmt_eval(group.duration_ratio, ".2f"),
                _fmt_eval(group.mcd_dtw_db, ".2f"),
                _fmt_eval(group.content_correct, ".2f"),
                _fmt_eval(group.style_correct, ".2f"),
                f"{_fmt_eval(group.style_correct_absolute, '.2f')} ({_fmt_eval(group.style_correct_mel, '.2f')}/{_fmt_eval(group.style_correct_f0, '.2f')})",
                _fmt_eval(group.voiced_fraction, ".2f"),
                _fmt_eval(group.mean_attention_peak, ".2f"),
            ])
        settings = report.settings
        title = (f"trtgen eval: {evaluation.label} model {evaluation.model_name}, {len(settings['sentence_ids'])} "
                 f"held-out sentences from number {settings['first_sentence']}, stop threshold {settings['stop_threshold']:g} ({evaluation.wall_seconds:.0f} s)")
        print_table(title, columns, rows)
    voices = list(report.trained.voices)
    rows = []
    for scope in [*voices, "all"]:
        trained = report.trained.voices[scope] if scope != "all" else report.trained.overall
        random = None if report.random is None else (report.random.voices[scope] if scope != "all" else report.random.overall)
        anchors = report.mcd_anchors.get(scope, {})
        rows.append([
            scope, _fmt_eval(trained.mcd_dtw_db, ".2f"), "-" if random is None else _fmt_eval(random.mcd_dtw_db, ".2f"),
            _fmt_eval(anchors.get("vocoder_floor"), ".2f"), _fmt_eval(anchors.get("same_sentence_other_voice"), ".2f"),
            _fmt_eval(anchors.get("same_voice_other_sentence"), ".2f"), _fmt_eval(trained.mcd_dtw_mel_db, ".2f"),
            "-" if random is None else _fmt_eval(random.mcd_dtw_mel_db, ".2f"),
            _fmt_eval(trained.mcd_dtw_path_db, ".2f"), "-" if random is None else _fmt_eval(random.mcd_dtw_path_db, ".2f"),
        ])
    print_table(
        "MCD-DTW (dB, per espeak-ng frame) against espeak-ng: waveforms (trained, random init of the same size, "
        "espeak-ng anchors); model log-mel before the vocoder; waveforms along the path (usual definition)",
        ["voice", "trained", "random", "vocoder floor", "same text, next voice", "same voice, other text",
         "trained mel", "random mel", "trained path", "random path"],
        rows,
    )
    confusion = [[v, *(report.trained.style_confusion[v].get(w, 0) for w in voices), report.trained.style_confusion[v].get("none", 0)] for v in voices]
    print_table("style check (trained): conditioning voice -> nearest voice (relative mean log-mel)", ["voice", *voices, "no audio"], confusion)
    check_rows = [
        [c.name, c.scope, _fmt_eval(c.value, ".4g"), f"{c.comparison} {c.threshold:g}", "PASS" if c.passed else "FAIL"]
        for c in report.checks
    ]
    print_table("checks", ["check", "scope", "value", "needs", "result"], check_rows)
    if report.random is None:
        console.print("MCD-DTW vs a random model: not checked (run with --compare-random)")
    if report.plots_skipped:
        console.print(f"plots skipped: {report.plots_skipped}")
    elif report.plots:
        console.print(f"{len(report.plots)} plots in {Path(report.plots[0]).parent}")
    failed = [c for c in report.checks if not c.passed]
    verdict = "[bold green]PASS[/]" if not failed else f"[bold red]FAIL[/] ({len(failed)} of {len(report.checks)} checks failed)"
    ceiling = report.style_ceiling.get("all", math.nan)
    ceiling_absolute = report.style_ceiling_absolute.get("all", math.nan)
    console.print(
        f"style check on espeak-ng's own vocoded held-out renderings (the ceiling): {_fmt_eval(ceiling)} "
        f"(absolute: {_fmt_eval(ceiling_absolute)})"
    )
    voiced = report.voiced_fraction_anchors.get("all", {})
    console.print(
        f"content check on espeak-ng's rendering in the next voice (what the check can see): "
        f"{_fmt_eval(report.content_ceiling.get('all', math.nan))}; voiced frames in espeak-ng's renderings: "
        f"{_fmt_eval(voiced.get('espeak', math.nan), '.2f')} (through Griffin-Lim: {_fmt_eval(voiced.get('espeak_vocoded', math.nan), '.2f')})"
    )
    gate = report.quality_gate
    if gate:
        where = f"; written to {gate['written_to']}" if gate.get("written_to") else " (--calibrate-quality writes them into the card)"
        calibrated = gate.get("calibrated")
        console.print(
            f"quality gate: passed {_fmt_eval(gate['passed'], '.3f')}, agrees with the checks above on "
            f"{_fmt_eval(gate['agrees_with_eval'], '.3f')}; "
            + (f"calibrated on {gate['calibrated_on']} utterances: frames per symbol {calibrated['min_frames_per_symbol']}-"
               f"{calibrated['max_frames_per_symbol']}, pauses up to {calibrated['max_pause_s']} s{where}" if calibrated
               else f"not calibrated ({gate.get('calibration_skipped')})"),
            markup=False,
        )
    console.print(f"trtgen eval: {verdict}; report {report.report_path} ({report.wall_seconds:.0f} s)")


def render_prepare(result: Any) -> None:
    """``trtgen prepare``: style speakers and what was written."""
    summary = result.summary
    print_table(
        "trtgen prepare",
        ["style speaker", "gender", "books", "clips", "missing clips", "rows", "clips used"],
        [[sp.speaker, sp.gender, sp.books, sp.clips, sp.missing_clips, sp.rows, sp.clips_used] for sp in summary.speakers],
    )
    console.print(
        f"{summary.utterances} utterances, {summary.characters} characters (~{summary.hours_estimated:.1f} h of speech), "
        f"{summary.rejects} rejected, {len(summary.missing_books)} book(s) and {len(summary.missing_splits)} split(s) not found"
    )
    for name, path in result.files.items():
        console.print(f"  {name}: {path}", markup=False, highlight=False)


def render_export(report: Any) -> None:
    """``trtgen export``: the TensorFlow check, the files, and the TensorRT engines when built."""
    rows = [[graph, f"{error:.1e}"] for graph, error in report.parity.errors.items()]
    rows.append(["stop steps equal", "yes" if report.parity.same_lengths else "NO"])
    print_table(f"ONNX Runtime vs TensorFlow ({report.verify_steps} decoder steps)", ["output", "max relative error"], rows)
    print_table(
        f"trtgen export: {report.out} in {report.export_seconds:.1f} s",
        ["file", "MB"],
        [[name, f"{size / 1e6:.1f}"] for name, size in report.files],
    )
    if report.engines:
        print_table("TensorRT engines", ["graph", "engine", "seconds"], [[r.graph, r.engine, f"{r.build_seconds:.1f}"] for r in report.engines])


def render_check(report: Any) -> None:
    """``trtgen manifest --check``: all consistent, or every problem on its own line."""
    if report.ok:
        console.print(f"{report.checked} synthetic rows checked: all files present and consistent")
        return
    console.print(f"{len(report.problems)} problem(s) in {report.checked} synthetic rows:", highlight=False)
    for problem in report.problems:
        console.print(f"  {problem.copy} {problem.id}: {problem.problem}: {problem.path}", markup=False, highlight=False, soft_wrap=True)


def render_manifests(result: Any) -> None:
    """``trtgen manifest``: the files written and the counts behind them."""
    print_table("trtgen manifest", ["manifest", "path"], [[name, str(path)] for name, path in result.files.items()])
    counts = result.counts
    failed = result.failed
    verdict = "kept, flagged quality_ok: false" if failed.kept else "left out"
    sharded = counts.get("sharded", {})
    files_copies = [c for c in counts["copies"] if c not in sharded]
    if files_copies:
        console.print(
            f"copies {', '.join(files_copies)}: {counts['synthetic_files']} synthetic files "
            f"({failed.total} failed the quality check: {verdict}), "
            f"{counts['templated_utterances']} utterances in every copy"
        )
    for name, copy in sharded.items():
        console.print(f"sharded copy {name}: {copy['layout']}, {copy['shards']} shard(s), {copy['utterances']} utterances, "
                      f"{copy['duration_s'] / 3600:.2f} h at {copy['location']}", highlight=False)
    console.print(f"{counts['real_utterances']} real utterances; {counts['rejects']} rejected (see rejects.jsonl)")
    if failed.total:
        _render_failed(failed)
    if "mix_real" in counts:
        console.print(f"mix: {counts['mix_real']} real + {counts['mix_synthetic']} synthetic rows {counts['mix_synthetic_per_copy']}")
    if result.openseq2seq_config:
        console.print("Add to the OpenSeq2Seq ASR config (train data layer params):")
        for line in result.openseq2seq_config:
            console.print(f"  {line}", markup=False, highlight=False)


def _render_failed(failed: Any) -> None:
    """Utterances that failed the quality check, copy by reason (an utterance may count under several reasons)."""
    reasons = list(failed.per_reason)
    rows = [[copy, failed.per_copy[copy], *(by_reason.get(r, 0) for r in reasons)] for copy, by_reason in failed.per_copy_and_reason.items()]
    if len(rows) > 1:
        rows.append(["all", failed.total, *failed.per_reason.values()])
    title = ("failed the quality check: kept, flagged quality_ok: false (--keep-failed)" if failed.kept
             else "failed the quality check: left out of every manifest (rejects.jsonl; --keep-failed keeps them)")
    print_table(title, ["copy", "utterances", *reasons], rows)


def render_demo(result: Any) -> None:
    """``trtgen demo``: the generate tables, then where to listen."""
    render_generate(result.generate)
    console.print(f"\nDone: {result.generate.written} utterances in {len(result.generate.copies)} copies under {result.out / 'synthetic'}")
    console.print(f"Manifests: {result.out / 'manifests'}", markup=False, highlight=False)
    console.print("Listen (any audio player, e.g. `play` from sox or `aplay`):")
    for path in result.examples:
        console.print(f"  {path}", markup=False, highlight=False)
