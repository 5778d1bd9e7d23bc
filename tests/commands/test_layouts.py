"""``trtgen generate --audio-format flac --sample-rate --layout shar|nemo-tarred``: the same speech in every
container and layout, shards that are a pure function of the list (batch size, kill -9 + ``--resume``),
read back by Lhotse's own Shar reader and by NeMo's tarred-dataset logic.

The model is the small random model of conftest (stop token at varied steps) on ``trtgen prepare``'s list
of the real samples; Griffin-Lim is OpenSeq2Seq's 4 iterations, to keep the runs short.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.commands.test_generate import files, records
from tests.commands.test_generate import options as default_options
from trtgen.commands.generate import run_generate
from trtgen.engine.quality import parse_quality_overrides
from trtgen.engine.synthesis import SynthesisOptions
from trtgen.engine.vocoder import griffin_lim_preset
from trtgen.errors import UsageError

COPIES = ("clean", "noisy")
LENIENT = "min_frames_per_symbol=0,max_frames_per_symbol=1000,max_backstep=1000,max_jump=1000,max_start=1000,end_slack=1000"
"""Quality-gate thresholds the random model's babble passes unless it is capped: shards hold passing
utterances only, and these tests need most of them in."""


def options(*arguments, **overrides):
    import dataclasses

    chosen = default_options(*arguments, **overrides)
    return dataclasses.replace(chosen, voice=dataclasses.replace(chosen.voice, quality=tuple(parse_quality_overrides(LENIENT).items())))


def _samples(path: Path | bytes) -> tuple[np.ndarray, int]:
    data, rate = sf.read(io.BytesIO(path) if isinstance(path, bytes) else path, dtype="int16")
    return data, rate


@pytest.fixture(scope="module")
def wav_run(small_model_dir, infer_list, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wav")
    run_generate(options(small_model_dir, infer_list, out))
    return out


@pytest.fixture(scope="module")
def flac_run(small_model_dir, infer_list, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("flac")
    run_generate(options(small_model_dir, infer_list, out, audio_format="flac"))
    return out


def test_flac_holds_the_samples_of_the_wav_run_in_fewer_bytes(wav_run: Path, flac_run: Path) -> None:
    for copy in COPIES:
        wav, flac = records(wav_run / copy), records(flac_run / copy)
        assert wav.keys() == flac.keys() and wav
        for utterance_id, record in wav.items():
            assert flac[utterance_id]["audio"] == f"{utterance_id}.flac"
            expected, rate = _samples(wav_run / copy / record["audio"])
            got, flac_rate = _samples(flac_run / copy / flac[utterance_id]["audio"])
            assert flac_rate == rate and np.array_equal(got, expected)
        assert sum(r["audio_bytes"] for r in flac.values()) < sum(r["audio_bytes"] for r in wav.values())
        settings = json.loads((flac_run / copy / "settings.json").read_text())
        assert settings["audio_format"] == "flac"
    # the manifests' check reads FLAC copies as it reads WAV ones
    from trtgen.commands.synthetic_check import check_synthetic

    assert check_synthetic(flac_run, None, duration_tolerance_s=0.05).ok


def test_sample_rate_resamples_with_soxr_and_says_so(small_model_dir, infer_list, tmp_path: Path) -> None:
    import soxr

    native = tmp_path / "native"
    run_generate(options(small_model_dir, infer_list, native, limit=3, sample_format="float32"))
    resampled = tmp_path / "resampled"
    run_generate(options(small_model_dir, infer_list, resampled, limit=3, sample_format="float32", sample_rate=8000))
    settings = json.loads((resampled / "clean" / "settings.json").read_text())
    assert settings["sample_rate"] == 8000 and settings["model_sample_rate"] == 16000
    for utterance_id, record in records(resampled / "clean").items():
        assert record["sample_rate"] == 8000
        source, rate = sf.read(native / "clean" / f"{utterance_id}.wav", dtype="float32")
        got, got_rate = sf.read(resampled / "clean" / record["audio"], dtype="float32")
        assert (rate, got_rate) == (16000, 8000)
        np.testing.assert_allclose(got, soxr.resample(source, 16000, 8000, quality="HQ"), atol=1e-6)


def test_float32_flac_and_bad_rates_are_refused_before_anything_is_written(small_model_dir, infer_list, tmp_path: Path) -> None:
    for overrides, words in (
        ({"audio_format": "flac", "sample_format": "float32"}, "FLAC holds integer samples"),
        ({"sample_rate": 100}, "--sample-rate 100"),
        ({"layout": "tar"}, "--layout 'tar'"),
        ({"layout": "shar", "shard_utterances": 0}, "--shard-utterances 0"),
        ({"out_dir": "s3://bucket/x"}, "--layout files writes loose files"),
    ):
        with pytest.raises(UsageError, match=words.replace("(", r"\(")):
            options(small_model_dir, infer_list, overrides.pop("out_dir", tmp_path / "out"), **overrides)
    assert not (tmp_path / "out").exists()


def _shard_run(small_model_dir, infer_list, out: Path, layout: str, batch_size: int = 4, **overrides) -> Path:
    synthesis = SynthesisOptions(batch_size=batch_size, vocoder=griffin_lim_preset("openseq2seq"))
    run_generate(options(small_model_dir, infer_list, out, layout=layout, shard_utterances=4, audio_format="flac",
                         synthesis=synthesis, **overrides))
    return out


@pytest.fixture(scope="module")
def shar_run(small_model_dir, infer_list, tmp_path_factory) -> Path:
    return _shard_run(small_model_dir, infer_list, tmp_path_factory.mktemp("shar"), "shar")


@pytest.fixture(scope="module")
def nemo_run(small_model_dir, infer_list, tmp_path_factory) -> Path:
    return _shard_run(small_model_dir, infer_list, tmp_path_factory.mktemp("nemo"), "nemo-tarred")


def _committed(copy_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((copy_dir / "shards").glob("*.json"))]


@pytest.mark.parametrize("layout, run", [("shar", "shar_run"), ("nemo-tarred", "nemo_run")])
def test_shards_are_the_same_bytes_at_every_batch_size(layout, run, request, small_model_dir, infer_list, tmp_path: Path) -> None:
    out = request.getfixturevalue(run)
    other = _shard_run(small_model_dir, infer_list, tmp_path / "b1", layout, batch_size=1)
    assert files(other) == files(out)
    rows = sum(1 for _ in infer_list.read_text().splitlines())
    for copy in COPIES:
        commits = _committed(out / copy)
        assert [c["shard"] for c in commits] == list(range(-(-rows // 4)))
        assert sum(len(c["records"]) for c in commits) == rows
        assert sum(r["quality"]["ok"] for c in commits for r in c["records"]) > rows // 2


def test_lhotse_reads_every_cut_of_a_shar_copy_with_the_audio_of_the_files_copy(shar_run: Path, flac_run: Path) -> None:
    out = shar_run
    from lhotse import CutSet

    for copy in COPIES:
        cuts = list(CutSet.from_shar(in_dir=out / copy / "shar"))
        loose = records(flac_run / copy)
        passed = [i for i, r in loose.items() if r["quality"]["ok"]]
        assert passed and [c.id for c in cuts] == [f"{i}_{copy}" for i in passed]
        for cut in cuts:
            record = loose[cut.supervisions[0].custom["utterance_id"] if cut.supervisions[0].custom else cut.id.rsplit("_", 1)[0]]
            expected, rate = _samples(flac_run / copy / record["audio"])
            assert cut.sampling_rate == rate
            np.testing.assert_array_equal(np.round(cut.load_audio()[0] * 32768).astype(np.int16), expected)
            assert cut.supervisions[0].text


def test_nemo_tarred_manifests_and_tars_agree_member_by_member(nemo_run: Path, flac_run: Path) -> None:
    out = nemo_run
    for copy in COPIES:
        loose = records(flac_run / copy)
        seen = []
        for commit in _committed(out / copy):
            k = commit["shard"]
            tar_name = next(n for n in commit["files"] if n.endswith(".tar"))
            manifest_name = next(n for n in commit["files"] if n.endswith(".json"))
            entries = [json.loads(line) for line in (out / copy / manifest_name).read_text().splitlines()]
            with tarfile.open(out / copy / tar_name) as tar:
                members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
            # NeMo pairs a tar member with its manifest entry by the member's name (audio_to_text.py)
            assert [e["audio_filepath"] for e in entries] == list(members)
            for entry in entries:
                assert entry["shard_id"] == k
                utterance_id = entry["audio_filepath"].rsplit(".", 1)[0].rsplit("_", 1)[0]
                expected, _ = _samples(flac_run / copy / loose[utterance_id]["audio"])
                got, _ = _samples(members[entry["audio_filepath"]])
                assert np.array_equal(got, expected)
                seen.append(utterance_id)
        assert seen and seen == [i for i, r in loose.items() if r["quality"]["ok"]]


@pytest.mark.parametrize("layout", ["shar", "nemo-tarred"])
def test_a_killed_shard_run_resumes_to_the_same_bytes(layout: str, small_model_dir, infer_list, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in infer_list.read_text().splitlines()]
    longer = tmp_path / "list" / "infer.jsonl"
    longer.parent.mkdir()
    longer.write_text("".join(json.dumps(dict(r, id=f"{r['id']}-{k}")) + "\n" for k in range(4) for r in rows))
    (longer.parent / "prepare.json").write_bytes((infer_list.parent / "prepare.json").read_bytes())
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _shard_run(small_model_dir, longer, whole, layout)
    command = [
        sys.executable, "-m", "trtgen", "generate", "--model", str(small_model_dir), "--list", str(longer), "--out", str(killed),
        "--copies", "clean:0.5:11,noisy:0.3:12", "--vocoder", "openseq2seq", "--batch-size", "4", "--layout", layout,
        "--shard-utterances", "4", "--audio-format", "flac", "--quality", LENIENT,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and len(list(killed.glob("*/shards/*.json"))) < 2:
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2 and "--resume" in result.stderr
    result = subprocess.run(command + ["--resume"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert files(killed) == files(whole)


def test_ray_workers_write_the_same_shards(shar_run: Path, nemo_run: Path, small_model_dir, infer_list, tmp_path: Path) -> None:
    """On Ray a block is a shard: the worker that renders it writes it, the driver commits it."""
    from trtgen.commands.cluster import ClusterOptions

    for layout, alone in (("shar", shar_run), ("nemo-tarred", nemo_run)):
        ray = _shard_run(small_model_dir, infer_list, tmp_path / f"{layout}-ray", layout, cluster=ClusterOptions("local", 2))
        logs = sorted(p.name for p in ray.glob("ray-*.log"))
        assert len(logs) == 1, "Ray's own log lines go to one file in --out"
        (ray / logs[0]).unlink()
        assert files(ray) == files(alone)


def test_process_shards_split_the_output_shards_and_write_the_same_files(nemo_run: Path, small_model_dir, infer_list, tmp_path: Path) -> None:
    out = tmp_path / "split"
    for index in range(2):
        _shard_run(small_model_dir, infer_list, out, "nemo-tarred", shard=(index, 2))
    written = {name: data for name, data in files(out).items() if "/rejects" not in name}
    assert written == {name: data for name, data in files(nemo_run).items() if "/rejects" not in name}
    for copy in COPIES:  # shard k is written by process k mod 2, its rejects beside it
        assert sorted(p.name for p in (out / copy).glob("rejects*.jsonl")) == ["rejects.shard-0-of-2.jsonl", "rejects.shard-1-of-2.jsonl"]
