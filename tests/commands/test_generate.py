"""`trtgen generate` on the CPU: determinism, shards, kill -9 + resume, exact resume, batch sizes, rejects.

The model is a small random model whose stop token fires at varied steps (see conftest), decoded
with ONNX Runtime; the list is `trtgen prepare` run on the real samples in ../shared/data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.conftest import cupy_with_gpu, generate_shipped_voice
from trtgen.cli import app
from trtgen.commands.demo import demo_rows
from trtgen.commands.generate import GenerateOptions, parse_copies, run_generate
from trtgen.commands.synthetic_check import check_synthetic
from trtgen.engine.shipped import shipped_styles
from trtgen.fileio import write_jsonl
from trtgen.engine.synthesis import SynthesisOptions
from trtgen.engine.voice import VoiceSpec
from trtgen.engine.vocoder import griffin_lim_preset

COPIES = "clean:0.5:11,noisy:0.3:12"
FAST = SynthesisOptions(batch_size=4, vocoder=griffin_lim_preset("openseq2seq"))


def options(model: Path, infer_list: Path, out: Path, **overrides) -> GenerateOptions:
    voice = VoiceSpec(model_dir=model, synthesis=overrides.pop("synthesis", FAST))
    return GenerateOptions(**{"list_path": infer_list, "out_dir": out, "copies": parse_copies(COPIES), "voice": voice, **overrides})


def files(root: Path) -> dict[str, bytes]:
    """Every output file below ``root`` by relative path (settings included)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def records(copy_dir: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(copy_dir.glob("records*.jsonl")):
        for line in path.read_text().splitlines():
            value = json.loads(line)
            out[value["id"]] = value
    return out


@pytest.fixture(scope="module")
def reference_run(small_model_dir, infer_list, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    report = run_generate(options(small_model_dir, infer_list, out))
    return out, report


def test_every_row_becomes_one_wav_per_copy_with_the_duration_its_record_states(reference_run, infer_list):
    out, report = reference_run
    rows = [json.loads(line) for line in infer_list.read_text().splitlines()]
    assert report.rejects == []
    for copy in ("clean", "noisy"):
        recs = records(out / copy)
        assert set(recs) == {r["id"] for r in rows}
        assert [json.loads(line)["id"] for line in (out / copy / "records.jsonl").read_text().splitlines()] == [r["id"] for r in rows]
        for rec in recs.values():
            info = sf.info(out / copy / rec["audio"])
            assert info.samplerate == 16000 and info.subtype == "PCM_16" and info.channels == 1
            assert info.frames / info.samplerate == pytest.approx(rec["duration_s"], abs=1e-6)
            assert info.frames == 200 * (rec["frames"] - 2)  # hop x (frames - stop frame - 1)
            assert rec["stopped"] != rec["capped"]
    stopped = [r["stopped"] for copy in ("clean", "noisy") for r in records(out / copy).values()]
    assert any(stopped) and not all(stopped), "the test model should give both stopped and capped utterances"


def test_rerun_gives_identical_bytes(reference_run, small_model_dir, infer_list, tmp_path):
    out, _ = reference_run
    run_generate(options(small_model_dir, infer_list, tmp_path))
    assert files(tmp_path) == files(out)


def test_two_shards_give_the_files_of_one_run(reference_run, small_model_dir, infer_list, tmp_path):
    out, _ = reference_run
    for shard in ((0, 2), (1, 2)):
        run_generate(options(small_model_dir, infer_list, tmp_path, shard=shard))
    sharded = files(tmp_path)
    whole = files(out)
    wavs = {k: v for k, v in whole.items() if k.endswith(".wav")}
    assert {k: v for k, v in sharded.items() if k.endswith(".wav")} == wavs
    for copy in ("clean", "noisy"):
        assert records(tmp_path / copy) == records(out / copy)
        assert (tmp_path / copy / "records.shard-0-of-2.jsonl").exists()


@pytest.mark.parametrize("batch_size", [1, 8, 32])
def test_batch_size_does_not_change_frames_or_audio(reference_run, small_model_dir, infer_list, tmp_path, batch_size):
    out, _ = reference_run
    synthesis = SynthesisOptions(batch_size=batch_size, vocoder=FAST.vocoder)
    run_generate(options(small_model_dir, infer_list, tmp_path, synthesis=synthesis))
    for copy in ("clean", "noisy"):
        expected, actual = records(out / copy), records(tmp_path / copy)
        assert {k: v["frames"] for k, v in actual.items()} == {k: v["frames"] for k, v in expected.items()}
        for rec in expected.values():
            a, _ = sf.read(tmp_path / copy / rec["audio"], dtype="int16")
            b, _ = sf.read(out / copy / rec["audio"], dtype="int16")
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # bitwise here; allow 1 LSB of float noise


def test_copies_with_other_rates_or_seeds_differ(small_model_dir, infer_list, tmp_path):
    copies = parse_copies("a:0.5:1,b:0.5:2,c:0.2:1")
    run_generate(options(small_model_dir, infer_list, tmp_path, copies=copies, limit=2))
    for rec in records(tmp_path / "a").values():
        audio = {c: sf.read(tmp_path / c / rec["audio"])[0] for c in ("a", "b", "c")}
        assert not np.array_equal(audio["a"][:1000], audio["b"][:1000])  # other seed
        assert not np.array_equal(audio["a"][:1000], audio["c"][:1000])  # other rate


def test_bad_rows_are_rejected_with_reasons_and_the_rest_completes(small_model_dir, infer_list, tmp_path):
    rows = [json.loads(line) for line in infer_list.read_text().splitlines()][:3]
    root = json.loads((infer_list.parent / "prepare.json").read_text())["mailabs_root"]
    stereo = tmp_path / "stereo_44k.wav"
    clip, rate = sf.read(Path(root) / rows[0]["style"])
    from scipy.signal import resample_poly

    sf.write(stereo, np.stack([resample_poly(clip, 441, 160)] * 2, axis=1), 44100)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really a wav")
    bad = [
        dict(rows[0], id="missing-clip", style="no/such/clip.wav"),
        dict(rows[0], id="corrupt-clip", style=str(corrupt)),
        dict(rows[0], id="unmappable", text="日本語 only"),
        dict(rows[0], id="too-long", text="word " * 400),
        dict(rows[0], id="converted-stereo", style=str(stereo)),
        dict(rows[0], id="normalised", text="A na\u00efve caf\u00e9 \u2013 fine."),
    ]
    listing = tmp_path / "infer.jsonl"
    lines = [json.dumps(r) for r in rows + bad] + ["{this is not json"]
    listing.write_text("\n".join(lines) + "\n")
    (tmp_path / "prepare.json").write_text(json.dumps({"mailabs_root": root}))
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["generate", "--model", str(small_model_dir), "--list", str(listing), "--out", str(tmp_path / "out"),
         "--copies", "only:0.5", "--vocoder", "openseq2seq", "--batch-size", "4"],
    )
    assert result.exit_code == 1, result.output
    written = records(tmp_path / "out" / "only")
    assert set(written) == {r["id"] for r in rows} | {"converted-stereo", "normalised"}
    # The record's transcript is what the letter model spoke: 'ï' read as 'i' (not in its table), the dash as '-'.
    assert written["normalised"]["text"] == "A naive caf\u00e9 - fine."
    assert written["normalised"]["text_input"] == "A na\u00efve caf\u00e9 \u2013 fine."
    assert "text_input" not in written[rows[0]["id"]]
    rejects = [json.loads(line) for line in (tmp_path / "out" / "only" / "rejects.jsonl").read_text().splitlines()]
    reasons = {r["item"]: r["reason"] for r in rejects}
    assert "not found" in reasons["missing-clip"]
    assert "corrupt.wav" in reasons["corrupt-clip"]
    assert "日" in reasons["unmappable"]
    assert "long" in reasons["too-long"]
    assert any(r["line"] == len(lines) and "JSON" in r["reason"] for r in rejects)
    assert all(r["source"] == str(listing) for r in rejects)


def test_refuses_to_mix_settings_in_one_copy_directory(reference_run, small_model_dir, infer_list, tmp_path):
    run_generate(options(small_model_dir, infer_list, tmp_path, limit=1))
    from trtgen.commands.writers import SettingsMismatch

    with pytest.raises(SettingsMismatch, match="dropout"):
        copies = parse_copies("clean:0.4:11")
        run_generate(options(small_model_dir, infer_list, tmp_path, copies=copies, resume=True))
    with pytest.raises(SettingsMismatch, match="--resume"):
        run_generate(options(small_model_dir, infer_list, tmp_path))


def test_kill_9_then_resume_gives_the_files_of_an_uninterrupted_run(small_model_dir, infer_list, tmp_path):
    # Six times the list (new ids), so the run is still writing when it is killed even on a fast machine.
    rows = [json.loads(line) for line in infer_list.read_text().splitlines()]
    longer = tmp_path / "list" / "infer.jsonl"
    longer.parent.mkdir()
    longer.write_text("".join(json.dumps(dict(r, id=f"{r['id']}-{k}")) + "\n" for k in range(6) for r in rows))
    (longer.parent / "prepare.json").write_bytes((infer_list.parent / "prepare.json").read_bytes())
    total = 2 * 6 * len(rows)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run_generate(options(small_model_dir, longer, whole))
    command = [
        sys.executable, "-m", "trtgen", "generate", "--model", str(small_model_dir), "--list", str(longer),
        "--out", str(killed), "--copies", COPIES, "--vocoder", "openseq2seq", "--batch-size", "4",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            done = sum(len(records(killed / c)) for c in ("clean", "noisy") if (killed / c).exists())
            if done >= 3:
                break
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    partial = sum(len(records(killed / c)) for c in ("clean", "noisy"))
    assert 3 <= partial < total
    result = subprocess.run(command + ["--resume"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert files(killed) == files(whole)


def test_resume_makes_again_what_changed_went_missing_or_was_altered_and_check_finds_it(tmp_path):
    style = tmp_path / "style.wav"
    style.write_bytes(shipped_styles()["gb-f2"].read_bytes())
    rows = demo_rows(1)
    rows[3]["style"] = str(style)
    listing, out = tmp_path / "infer.jsonl", tmp_path / "out"
    write_jsonl(listing, rows)
    copies = parse_copies("c:0.5:3")

    def generate(**overrides):
        return run_generate(GenerateOptions(list_path=listing, out_dir=out, copies=copies, **overrides))

    generate()
    before = files(out / "c")
    wav = {r["id"]: out / "c" / f"{r['id']}.wav" for r in rows}
    info = sf.info(str(wav[rows[0]["id"]]))
    sf.write(wav[rows[0]["id"]], np.zeros(info.frames, np.int16), info.samplerate, subtype="PCM_16")  # zeroed, same length
    wav[rows[1]["id"]].unlink()
    (out / "c" / "stray.wav").write_bytes(before[f"{rows[2]['id']}.wav"])
    problems = {(p.id, p.problem.split(":")[0]) for p in check_synthetic(out).problems}
    assert problems == {(rows[0]["id"], "altered content"), (rows[1]["id"], "missing"), ("stray", "stray")}
    rows[2]["text"] = "A sentence the list now holds instead."  # a changed row
    write_jsonl(listing, rows)
    style.write_bytes(shipped_styles()["scot-f4"].read_bytes())  # a changed style clip, same path

    report = generate(resume=True)
    (copy,) = report.copies
    assert (copy.skipped, copy.inputs_changed, copy.files_missing, copy.files_altered, copy.written) == (0, 2, 1, 1, 4)
    after = files(out / "c")
    for row in rows[:2]:  # made again: the same bytes as the first time (an utterance is a pure function of its inputs)
        assert after[f"{row['id']}.wav"] == before[f"{row['id']}.wav"]
    for row in rows[2:]:
        assert after[f"{row['id']}.wav"] != before[f"{row['id']}.wav"]
    assert [p.id for p in check_synthetic(out).problems] == ["stray"]  # the stray is named, never deleted
    assert generate(resume=True).copies[0].skipped == 4


@pytest.mark.gpu
def test_vocoder_on_cuda_writes_the_audio_of_the_cpu_vocoder(tmp_path):
    """The shipped voice decoded on ONNX Runtime's CPU provider, Griffin-Lim on CuPy vs numpy."""
    cupy_with_gpu()
    waves = {}
    for device in ("cpu", "cuda"):
        synthesis = SynthesisOptions(batch_size=8, vocoder_device=device)
        rows, report = generate_shipped_voice(tmp_path / device, 2, synthesis=synthesis, sample_format="float32")
        assert report.copies[0].written == len(rows) and not report.rejects
        assert report.backend.endswith(f"vocoder {device}")
        waves[device] = {r["id"]: sf.read(str(tmp_path / device / "copy" / f"{r['id']}.wav"), dtype="float32")[0] for r in rows}
    # Not bit-equal: cuFFT and pocketfft round differently, and Griffin-Lim's 24 momentum iterations carry
    # that into the phase. Measured on an H200 (2026-12-04, phoneme voice): 3.7e-3 at most over these 8
    # WAVs, 7.6e-4 over bench_gpu's 192; a wrong window, scale or phase would be of order 1.
    differences = {}
    for key, on_cpu in waves["cpu"].items():
        on_gpu = waves["cuda"][key]
        assert on_gpu.shape == on_cpu.shape and on_cpu.size > 0, key
        differences[key] = float(np.linalg.norm(on_gpu - on_cpu) / np.linalg.norm(on_cpu))
    print("relative difference of the CuPy vocoder's WAVs:", {k: f"{v:.1e}" for k, v in differences.items()})
    assert max(differences.values()) < 1e-2, differences


def test_settings_name_the_model_directory_as_it_is_on_disk(reference_run, small_model_dir):
    """The settings' model digest is the directory's, whatever precision runs (recorded apart): copies made
    before the model was loaded once per run, and by Ray workers, resume into the same settings."""
    from trtgen.engine.artifact import load_model

    out, _ = reference_run
    settings = json.loads((out / "clean" / "settings.json").read_text())
    assert settings["model_digest"] == load_model(small_model_dir).digest
    assert settings["precision"] == "float32"  # the test model has no int8 graphs
