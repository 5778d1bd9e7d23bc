"""The Python API (``trtgen.Voice``) with the shipped voice on ONNX Runtime's CPU provider."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import generate_shipped_voice
from trtgen.commands.demo import demo_sentences, demo_styles


@pytest.fixture(scope="module")
def voice():
    from trtgen import Voice

    return Voice.load(threads=2)


def test_from_trtgen_import_voice_speaks_a_sentence(voice) -> None:
    from trtgen import Speech

    speech = voice.synthesize("Hello there.", style=demo_styles()[0])
    assert isinstance(speech, Speech)
    assert speech.audio.dtype == np.float32 and speech.audio.ndim == 1
    assert speech.sample_rate == 16000
    assert speech.stopped and speech.frames > 10
    assert 0.3 < speech.duration_s < 3.0
    assert speech.text == "Hello there."
    assert speech.symbols.startswith("həlˈoʊ")
    assert np.abs(speech.audio).max() > 0.01


def test_synthesize_gives_the_audio_trtgen_generate_writes_for_the_same_row(voice, tmp_path: Path) -> None:
    rows, _ = generate_shipped_voice(tmp_path, sentences=1, sample_format="float32")  # copy "copy": dropout 0.5, seed 3
    for row in rows:
        written, rate = sf.read(tmp_path / "copy" / f"{row['id']}.wav", dtype="float32")
        speech = voice.synthesize(row["text"], row["style"], dropout=0.5, seed=3, utterance_id=row["id"])
        assert rate == speech.sample_rate
        np.testing.assert_array_equal(speech.audio, written)


def test_audio_depends_on_the_utterance_id_and_seed_not_on_the_batch(voice) -> None:
    from trtgen import Row

    clip = demo_styles()[1]
    rows = [Row(f"u{i}", text, clip, 0.5, 7) for i, text in enumerate(demo_sentences()[:4])]
    alone = {r.id: voice.synthesize(r.text, r.style, dropout=0.5, seed=7, utterance_id=r.id).audio for r in rows}
    together = {s.id: s.audio for s in voice.stream(rows, batch_size=4)}
    assert set(together) == set(alone)
    for key in alone:
        np.testing.assert_array_equal(together[key], alone[key])
    other_seed = voice.synthesize(rows[0].text, clip, dropout=0.5, seed=8, utterance_id="u0").audio
    assert other_seed.shape != alone["u0"].shape or not np.array_equal(other_seed, alone["u0"])


def test_audio_does_not_depend_on_the_thread_count(voice) -> None:
    from trtgen import Row, Voice

    rows = [Row(f"t{i}-{clip.stem}", text, clip, 0.5, 5) for i, text in enumerate(demo_sentences()[:2]) for clip in demo_styles()]
    one_thread = {s.id: s.audio for s in Voice.load(threads=1).stream(rows)}
    for speech in voice.stream(rows):  # two threads
        np.testing.assert_array_equal(speech.audio, one_thread[speech.id])


def test_audio_does_not_depend_on_overlap_or_the_threads_of_each_stage(voice) -> None:
    from trtgen import Row, Voice
    from trtgen.engine.synthesis import SynthesisOptions
    from trtgen.engine.vocoder import GriffinLimOptions

    rows = [Row(f"o{i}-{clip.stem}", text, clip, 0.5, 9) for i, text in enumerate(demo_sentences()[:3]) for clip in demo_styles()]
    small_groups = dict(batch_size=3, encoder_batch_size=2, postnet_batch_size=2)
    serial = Voice.load(threads=2, options=SynthesisOptions(overlap=False, **small_groups))
    assert serial.options.overlap is False
    reference = {s.id: s.audio for s in serial.stream(rows, batch_size=3)}
    assert voice.options.overlap is True  # the CPU default
    layouts = [
        SynthesisOptions(**small_groups),
        SynthesisOptions(decoder_threads=2, postnet_threads=1, vocoder=GriffinLimOptions(threads=1), **small_groups),
        SynthesisOptions(decoder_threads=1, postnet_threads=2, vocoder=GriffinLimOptions(threads=2), **small_groups),
    ]
    for options in layouts:
        overlapped = {s.id: s.audio for s in Voice.load(threads=2, options=options).stream(rows, batch_size=3)}
        assert set(overlapped) == set(reference)
        for key, audio in reference.items():
            np.testing.assert_array_equal(overlapped[key], audio)


def test_the_cpu_runs_the_shipped_int8_postnet_unless_float32_is_asked_for(voice) -> None:
    from trtgen import Voice

    assert voice.precision == "int8" and voice.model.graph_path("postnet").name == "postnet.int8.onnx"
    float32 = Voice.load(precision="float32", threads=2)
    assert float32.precision == "float32" and float32.model.digest != voice.model.digest
    text, clip = demo_sentences()[0], demo_styles()[0]
    int8, reference = (v.synthesize(text, clip, seed=2, utterance_id="p") for v in (voice, float32))
    assert int8.frames == reference.frames  # the decoder is float32 in both
    assert not np.array_equal(int8.audio, reference.audio)


def test_a_style_embedding_stands_for_its_clip(voice) -> None:
    clip = demo_styles()[2]
    embedding = voice.style_embedding(clip)
    assert embedding.shape == (voice.card.model.style_dim,)
    by_path = voice.synthesize("A short test.", clip, seed=1, utterance_id="x")
    by_embedding = voice.synthesize("A short test.", embedding, seed=1, utterance_id="x")
    np.testing.assert_array_equal(by_path.audio, by_embedding.audio)


def test_stream_is_lazy_and_yields_results_as_they_finish() -> None:
    from trtgen import Row, Voice
    from trtgen.engine.synthesis import SynthesisOptions

    # Small stages, so that the first result needs few rows: the encoder waits for 2 texts, the postnet for 2 decodes.
    voice = Voice.load(options=SynthesisOptions(encoder_batch_size=2, postnet_batch_size=2))
    pulled = []
    clip = demo_styles()[0]

    def rows():
        for i in range(40):
            pulled.append(i)
            yield Row(f"lazy{i}", demo_sentences()[i % 3], clip)

    stream = voice.stream(rows(), batch_size=2, lookahead=2)
    first = next(stream)
    assert first.id.startswith("lazy")
    # Overlapped stages read ahead by a bounded amount: the lookahead, an encoder and a decoder batch,
    # and one group of 2 in each stage and queue (trtgen.engine.overlap): 16 rows here, never all 40.
    assert len(pulled) <= 16, "the stream read far ahead of what it spoke"
    rest = list(stream)
    assert len(pulled) == 40 and len(rest) == 39


def test_rows_that_cannot_be_spoken_are_yielded_as_rejects_and_the_rest_is_spoken(voice, tmp_path: Path) -> None:
    from trtgen import Rejected, Row, Speech

    clip = demo_styles()[0]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not a wav file")
    rows = [
        Row("good1", "The first good row.", clip),
        Row("empty", "   ", clip),
        Row("missing", "A clip that is not there.", tmp_path / "absent.wav"),
        Row("broken", "A clip that is not audio.", broken),
        Row("good2", "The second good row.", clip, tag=("mine", 2)),
    ]
    results = {r.id: r for r in voice.stream(rows)}
    assert set(results) == {r.id for r in rows}
    assert isinstance(results["good1"], Speech) and isinstance(results["good2"], Speech)
    assert results["good2"].tag == ("mine", 2)
    for key in ("empty", "missing", "broken"):
        assert isinstance(results[key], Rejected), key
    assert "nothing to speak" in results["empty"].reason or "empty" in results["empty"].reason
    assert "absent.wav" in results["missing"].reason
    assert "broken.wav" in results["broken"].reason


def test_synthesize_raises_a_usage_error_for_text_it_cannot_speak(voice) -> None:
    from trtgen import UsageError

    with pytest.raises(UsageError, match="bad-id"):
        voice.synthesize("", demo_styles()[0], utterance_id="bad-id")


def test_rows_may_be_plain_tuples_or_dicts(voice) -> None:
    clip = str(demo_styles()[3])
    results = list(voice.stream([("t1", "Tuples work.", clip), {"id": "d1", "text": "Dicts work.", "style": clip}]))
    assert sorted(r.id for r in results) == ["d1", "t1"]
    assert all(r.audio.size for r in results)
