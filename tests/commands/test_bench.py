"""`trtgen bench --quick` on a small exported model, and the benchmarks' table, report and plot writers.

The timings themselves are not checked (a shared CI machine gives any number); what is checked is
that the command runs the real runtime end to end and that the figures it derives are consistent.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trtgen.cli import app

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def benchmarks():
    """The benchmark scripts as modules (they import each other by plain name, as scripts do)."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        yield {name: importlib.import_module(name) for name in ("common", "bench_decoder", "bench_end_to_end", "run_all", "plot")}
    finally:
        sys.path.remove(str(BENCH_DIR))


def test_bench_quick_runs_both_decoder_loops_and_the_vocoder(small_model_dir):
    result = CliRunner().invoke(
        app, ["bench", "--model", str(small_model_dir), "--quick", "--frames", "40", "--batch-sizes", "1,4"]
    )
    assert result.exit_code == 0, result.output
    for expected in ("ort-step", "ort-chunk", "Griffin-Lim", "openseq2seq", "default"):
        assert expected in result.output


def test_bench_figures_are_consistent(small_model_dir):
    from trtgen.engine.artifact import load_model
    from trtgen.commands.bench import BenchOptions, run_bench

    options = BenchOptions.quick(small_model_dir, batch_sizes=(3,), frames=20, vocoder_batch=2, vocoder_presets=("openseq2seq",))
    report = run_bench(options)
    k = load_model(small_model_dir, verify=False).card.chunk_steps
    assert [t.mode for t in report.decoder] == ["ort-step", "ort-chunk"]
    for timing in report.decoder:
        assert timing.batch == 3 and timing.steps == timing.steps_per_utterance == 20  # r = 1, no window needed
        assert 0.0 <= timing.host_share < 1.0 and timing.runtime_s <= timing.wall_s
        assert timing.utterances_per_s == pytest.approx(3 / timing.wall_s)
    chunk = report.decoder[1]
    assert chunk.chunk_steps == k
    assert chunk.wasted_fraction == pytest.approx(1 - 20 / (-(-20 // k) * k))  # the last chunk's overshoot
    (vocoder,) = report.vocoder
    assert vocoder.options.n_iter == 4 and vocoder.audio_seconds == pytest.approx(2 * 200 * 19 / 16000)


def test_bench_without_a_model_asks_for_one(monkeypatch, tmp_path):
    import trtgen.engine.artifact

    monkeypatch.setattr(trtgen.engine.artifact, "SHIPPED_VOICE", tmp_path / "no-voice-here")  # an installation without the voice
    result = CliRunner().invoke(app, ["bench", "--quick"])
    assert result.exit_code == 2
    assert "--model" in result.output


def test_markdown_table_escapes_cells_and_checks_widths(benchmarks):
    table = benchmarks["common"].markdown_table(["mode", "ms"], [["a|b", 1.5], ["c", 2]])
    assert table == ["| mode | ms |", "|---|---:|", "| a\\|b | 1.5 |", "| c | 2 |"]
    with pytest.raises(ValueError):
        benchmarks["common"].markdown_table(["mode", "ms"], [["only one cell"]])


def _timing(config, mode, batch, wall, runtime, k=8):
    from trtgen.commands.bench import DecoderTiming

    return DecoderTiming(mode=mode, batch=batch, steps=100, steps_per_utterance=985, wall_s=wall, runtime_s=runtime, chunk_steps=k, config=config).to_json()


def test_decoder_report_compares_modes_within_the_run_and_plots(benchmarks, tmp_path):
    results = {
        "timings": [_timing("small", "tf-loop", 8, 2.0, None, None), _timing("small", "ort-chunk", 8, 1.0, 0.9)],
        "sweep": [_timing("small", "ort-chunk", 8, 1.0, 0.99, 32)],
        "skipped": [{"config": "small", "batch": "all", "mode": "tensorrt", "reason": "no GPU"}],
    }
    text = "\n".join(benchmarks["bench_decoder"].decoder_markdown(results))
    assert "| ort-chunk | 8 | 8 | 100/985 | 10.000 | 9.000 | 1.000 | 10.0% | 0.81 | 2.00x |" in text
    assert "Chunk length K" in text and "| small | all | tensorrt | no GPU |" in text
    png = benchmarks["plot"].plot_throughput(results["timings"], tmp_path / "throughput.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_targets_state_each_miss_with_its_cause(benchmarks):
    run_all = benchmarks["run_all"]
    decoder = {"timings": [_timing("small", "ort-chunk", 8, 1.0, 0.9), _timing("openseq2seq", "ort-chunk", 8, 1.0, 0.99)], "sweep": [], "skipped": []}

    def result(method, utt_per_s, wall, stages, cpu=None):
        return {"config": "voice-trained", "method": method, "utterances": 10, "utterances_per_s": utt_per_s, "audio_seconds_per_s": 12.0 * utt_per_s,
                "wall_s": wall, "cpu_s": cpu, "batch_size": 32, "stages": stages}

    e2e = {"results": [
        result("original", 1.0, 10.0, {"decoder": 5.0, "vocoder": 4.0}),
        result("trtgen-openseq2seq", 2.0, 5.0, {"decoder": 3.0, "vocoder": 1.0}, cpu=9.0),
        result("trtgen-default", 2.5, 4.0, {"decoder": 3.0, "vocoder": 3.0}),
        result("original-equal-quality", 0.5, 20.0, {"decoder": 5.0, "vocoder": 14.0}) | {"gl_iters": 16},
    ]}
    quality = {"rows": [
        {"momentum": 0.0, "iterations": 4, "sc": 0.30, "mcd_db": 0.55, "cpu_s": 0.1},
        {"momentum": 0.99, "iterations": 6, "sc": 0.21, "mcd_db": 0.41, "cpu_s": 0.15},
    ]}
    vocoder = {"rows": [{"iterations": 4, "batch": 1, "librosa_form": "librosa-calls", "seconds": {"trtgen": 1.0, "trtgen-1-thread": 2.0, "librosa-calls": 2.5}}]}
    text = "\n".join(run_all.target_lines(decoder, vocoder, e2e, quality))
    assert "| 2.00x | MISSED by 50% |" in text and "decoder busy 5.0 s -> 3.0 s (1.67x)" in text
    assert "The target needs 2.5 s of wall time; trtgen took 5.0 s with 9.0 CPU s" in text
    assert "| 2.50x; audio SC 0.210 vs 0.300, MCD 0.41 vs 0.55 dB | met |" in text
    assert "the original with 16 classic iterations against trtgen's defaults (`voice-trained`) | 5.00x |" in text
    assert "worst 10.0% (batch 8) | MISSED |" in text and "worst 1.0% (batch 8) | met |" in text
    assert "worst 2.50x (4 it, batch 1) | met |" in text
    projection = "\n".join(run_all.projection_lines(e2e))
    assert "3.3 days" in projection and "40.0 h" in projection  # 960 h of audio at 12 and 24 audio-s/s


def test_the_vocoder_rule_picks_the_fewest_iterations_a_clear_margin_better_than_the_original(benchmarks):
    import bench_vocoder

    rows = [
        {"momentum": 0.0, "iterations": 4, "sc": 0.30, "mcd_db": 0.55},
        {"momentum": 0.0, "iterations": 16, "sc": 0.19, "mcd_db": 0.35},
        {"momentum": 0.9, "iterations": 4, "sc": 0.26, "mcd_db": 0.49},  # better, but not by 25% on both
        {"momentum": 0.9, "iterations": 6, "sc": 0.215, "mcd_db": 0.41},
        {"momentum": 0.99, "iterations": 6, "sc": 0.212, "mcd_db": 0.41},
        {"momentum": 0.99, "iterations": 8, "sc": 0.19, "mcd_db": 0.36},
    ]
    quality = {"rows": rows}
    pick = bench_vocoder.choose_default(quality)
    assert (pick["iterations"], pick["momentum"]) == (6, 0.99)
    assert bench_vocoder.classic_iterations_to_match(quality, pick) == 16
