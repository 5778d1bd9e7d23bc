"""Style variety (``--copies NAME:RATE:SEED:STYLE``): ``blend`` and ``tokens`` copies draw each
utterance's style from (seed, id), record what they drew, give the same bytes whatever the batch size or
an interruption, and are what the Python API speaks for the same draw."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from trtgen.commands.demo import demo_rows
from trtgen.commands.generate import GenerateOptions, parse_copies, run_generate
from trtgen.engine.shipped import shipped_styles
from trtgen.engine.styles import StyleBlend, draw_style
from trtgen.engine.synthesis import SynthesisOptions
from trtgen.engine.vocoder import griffin_lim_preset
from trtgen.engine.voice import Voice, VoiceSpec
from trtgen.errors import Interrupted, UsageError
from trtgen.fileio import sha256_file, write_jsonl

COPIES = "mix:0.5:1:blend,bank:0.5:2:tokens,plain:0.5:3"
SPEC = VoiceSpec(synthesis=SynthesisOptions(batch_size=8, vocoder=griffin_lim_preset("openseq2seq")))


def _run(listing: Path, out: Path, stop_after: int | None = None, **overrides) -> None:
    calls = {"n": 0}

    def stop() -> str | None:
        calls["n"] += 1
        return "test" if stop_after is not None and calls["n"] > stop_after else None

    options = GenerateOptions(list_path=listing, out_dir=out, voice=overrides.pop("voice", SPEC), copies=parse_copies(COPIES), **overrides)
    try:
        run_generate(options, stop=stop)
    except Interrupted:
        pass


def _wavs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.wav"))}


def _records(out: Path, copy: str) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (out / copy / "records.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path, list[dict]]:
    root = tmp_path_factory.mktemp("styles")
    rows = demo_rows(2)
    listing = root / "infer.jsonl"
    write_jsonl(listing, rows)
    _run(listing, root / "out")
    return listing, root / "out", rows


def test_copies_name_their_style_mode() -> None:
    copies = parse_copies("a:0.5::blend,b:0.3:7:tokens,c:0.2,d:0.1:4:clip", base_seed=0)
    assert [(c.name, c.style) for c in copies] == [("a", "blend"), ("b", "tokens"), ("c", "clip"), ("d", "clip")]
    assert copies[1].seed == 7 and copies[0].seed == parse_copies("a:0.5")[0].seed
    with pytest.raises(UsageError, match="style 'wild'"):
        parse_copies("a:0.5:1:wild")


def test_records_say_what_was_drawn(made) -> None:
    _, out, rows = made
    blends, tokens, plain = (_records(out, c) for c in ("mix", "bank", "plain"))
    clips = {str(c) for c in shipped_styles().values()}
    for row in rows:
        drawn = blends[row["id"]]["style_draw"]
        assert blends[row["id"]]["style_mode"] == "blend" and drawn["clips"][0] == row["style"]
        assert drawn["clips"][1] in clips - {row["style"]} and 0.0 <= drawn["weight"] < 1.0
        weights = np.asarray(tokens[row["id"]]["style_draw"]["weights"])
        assert tokens[row["id"]]["style_mode"] == "tokens" and weights.shape == (4, 10)
        assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-5)
        assert "style_mode" not in plain[row["id"]]  # clip copies write the records they always wrote
    assert len({tuple(blends[r["id"]]["style_draw"]["clips"]) for r in rows}) > 1, "partners vary over the rows"
    settings = json.loads((out / "bank" / "settings.json").read_text())
    assert settings["style"] == {"mode": "tokens", "concentration": 5.0}
    assert "style" not in json.loads((out / "plain" / "settings.json").read_text())


def test_the_same_bytes_one_at_a_time_and_after_an_interruption(made, tmp_path: Path) -> None:
    listing, out, _ = made
    _run(listing, tmp_path / "one", voice=VoiceSpec(synthesis=SynthesisOptions(batch_size=1, vocoder=griffin_lim_preset("openseq2seq"))))
    assert _wavs(tmp_path / "one") == _wavs(out)
    _run(listing, tmp_path / "stopped", stop_after=5)
    assert 0 < len(_wavs(tmp_path / "stopped")) < len(_wavs(out))
    _run(listing, tmp_path / "stopped", resume=True)
    assert _wavs(tmp_path / "stopped") == _wavs(out)


def test_the_python_api_speaks_the_same_draw(made) -> None:
    _, out, rows = made
    voice = Voice.load(SPEC)
    clips = list(shipped_styles().values())
    pool = {sha256_file(c): c for c in clips}
    row = rows[1]
    for copy, seed in (("mix", 1), ("bank", 2)):
        style = draw_style(_records(out, copy)[row["id"]]["style_mode"], Path(row["style"]), seed, row["id"],
                           clip_sha256=sha256_file(row["style"]), pool=pool)
        speech = voice.synthesize(row["text"], style, dropout=0.5, seed=seed, utterance_id=row["id"])
        written, _ = sf.read(out / copy / f"{row['id']}.wav", dtype="float32")
        expected = np.clip(speech.audio, -1, 1)
        assert len(written) == len(expected) and np.abs(written - expected).max() <= 1 / 32768 + 1e-6, copy
    # A blend of weight 1 is the clip itself.
    assert np.array_equal(voice.style_embedding(StyleBlend(clips[0], clips[1], 1.0)), voice.style_embedding(clips[0]))


def test_a_tokens_copy_of_a_model_without_a_token_bank_is_refused(made, tmp_path: Path) -> None:
    from tests.export.legacy import strip_style_tokens
    from trtgen.engine.artifact import default_model_dir

    listing, _, _ = made
    model = tmp_path / "old"
    shutil.copytree(default_model_dir(), model)
    strip_style_tokens(model)
    with pytest.raises(UsageError, match="token bank"):
        _run(listing, tmp_path / "out", voice=VoiceSpec(model, synthesis=SPEC.synthesis))
    assert not (tmp_path / "out").exists()
