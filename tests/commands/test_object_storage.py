"""``trtgen generate --out s3://...`` against a real S3 API (moto's standalone server on localhost, started by
the tests as s3fs's own suite does): the objects equal the files of a local run, a kill -9 resumes to the
same objects, and one writer per copy holds there as on local disk, taken before Ray is touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.commands.test_generate import files
from tests.commands.test_layouts import LENIENT, options
from trtgen.commands.generate import run_generate
from trtgen.engine.synthesis import SynthesisOptions
from trtgen.engine.vocoder import griffin_lim_preset

SHARDED = {"layout": "nemo-tarred", "shard_utterances": 4, "audio_format": "flac",
           "synthesis": SynthesisOptions(batch_size=4, vocoder=griffin_lim_preset("openseq2seq"))}


def _objects(url: str) -> dict[str, bytes]:
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    root = url.removeprefix("s3://").rstrip("/")
    return {path[len(root) + 1:]: fs.cat_file(path) for path in sorted(fs.find(root))}


def _command(model: Path, listing: Path, out: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "trtgen", "generate", "--model", str(model), "--list", str(listing), "--out", out,
        "--copies", "clean:0.5:11,noisy:0.3:12", "--vocoder", "openseq2seq", "--batch-size", "4", "--layout", "nemo-tarred",
        "--shard-utterances", "4", "--audio-format", "flac", "--quality", LENIENT, *extra,
    ]


@pytest.fixture(scope="module")
def local_run(small_model_dir, infer_list, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("local")
    run_generate(options(small_model_dir, infer_list, out, **SHARDED))
    return files(out)


def test_an_s3_copy_equals_the_local_one_object_by_object(local_run, small_model_dir, infer_list, s3_bucket: str) -> None:
    url = f"{s3_bucket}/runs/one"
    run_generate(options(small_model_dir, infer_list, url, **SHARDED))
    objects = _objects(url)
    assert objects == local_run
    assert any(name.endswith(".tar") for name in objects) and not any("lock" in name for name in objects)


def test_a_killed_run_on_s3_resumes_to_the_same_objects(local_run, small_model_dir, infer_list, s3_bucket: str, tmp_path: Path) -> None:
    import s3fs

    rows = [json.loads(line) for line in infer_list.read_text().splitlines()]
    longer = tmp_path / "list" / "infer.jsonl"
    longer.parent.mkdir()
    longer.write_text("".join(json.dumps(dict(r, id=f"{r['id']}-{k}")) + "\n" for k in range(4) for r in rows))
    (longer.parent / "prepare.json").write_bytes((infer_list.parent / "prepare.json").read_bytes())
    whole = tmp_path / "whole"
    run_generate(options(small_model_dir, longer, whole, **SHARDED))
    url = f"{s3_bucket}/killed"
    command = _command(small_model_dir, longer, url)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fs = s3fs.S3FileSystem()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            fs.invalidate_cache()
            if len(fs.glob(f"{url.removeprefix('s3://')}/*/shards/*.json")) >= 2:
                break
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert any(name.endswith(".lock") or "lock" in name for name in _objects(url)), "the killed run's lock object is left"
    result = subprocess.run(command + ["--resume"], capture_output=True, text=True)  # the dead holder is on this host
    assert result.returncode == 0, result.stderr
    assert _objects(url) == files(whole)


def test_a_second_driver_is_refused_at_once_before_ray_starts(small_model_dir, infer_list, s3_bucket: str, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in infer_list.read_text().splitlines()]
    longer = tmp_path / "infer.jsonl"
    longer.write_text("".join(json.dumps(dict(r, id=f"{r['id']}-{k}")) + "\n" for k in range(20) for r in rows))
    (tmp_path / "prepare.json").write_bytes((infer_list.parent / "prepare.json").read_bytes())
    for out in (str(tmp_path / "out"), f"{s3_bucket}/busy"):
        first = subprocess.Popen(_command(small_model_dir, longer, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _started(out):
                time.sleep(0.05)
            started = time.monotonic()
            second = subprocess.run(_command(small_model_dir, longer, out, "--ray", "local", "--workers", "2"), capture_output=True, text=True)
            elapsed = time.monotonic() - started
        finally:
            first.kill()
            first.wait()
        assert second.returncode == 2, second.stderr
        message = second.stderr.strip().splitlines()
        assert len(message) == 1 and "being written by another trtgen generate" in message[0] and f"pid {first.pid}" in message[0]
        assert elapsed < 15, f"refused after {elapsed:.1f} s: the lock must be taken before Ray starts"


def _started(out: str) -> bool:
    """Whether the first run holds its copies' locks (it writes its settings right after)."""
    if out.startswith("s3://"):
        import s3fs

        fs = s3fs.S3FileSystem()
        fs.invalidate_cache()
        return bool(fs.glob(f"{out.removeprefix('s3://')}/*/settings.json"))
    return any(Path(out).glob("*/settings.json"))
