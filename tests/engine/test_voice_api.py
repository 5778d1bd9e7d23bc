"""The Python API (``trtgen.Voice``) with the shipped voice on ONNX Runtime's CPU provider."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import generate_shipped_voice
from trtgen.engine.shipped import demo_sentences, shipped_styles


@pytest.fixture(scope="module")
def voice():
    from trtgen import Voice

    return Voice.load(threads=2)


def test_from_trtgen_import_voice_speaks_a_sentence(voice) -> None:
    from trtgen import Speech

    speech = voice.synthesize("Hello there.", style=shipped_styles()["gb-f2"])
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

    clip = shipped_styles()["scot-f4"]
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

    rows = [Row(f"t{i}-{clip.stem}", text, clip, 0.5, 5) for i, text in enumerate(demo_sentences()[:2]) for clip in shipped_styles().values()]
    one_thread = {s.id: s.audio for s in Voice.load(threads=1).stream(rows)}
    for speech in voice.stream(rows):  # two threads
        np.testing.assert_array_equal(speech.audio, one_thread[speech.id])


def test_audio_does_not_depend_on_overlap_or_the_threads_of_each_stage(voice) -> None:
    from trtgen import Row, Voice
    from trtgen.engine.synthesis import SynthesisOptions
    from trtgen.engine.vocoder import GriffinLimOptions

    rows = [Row(f"o{i}-{clip.stem}", text, clip, 0.5, 9) for i, text in enumerate(demo_sentences()[:3]) for clip in shipped_styles().values()]
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
    text, clip = demo_sentences()[0], shipped_styles()["gb-f2"]
    int8, reference = (v.synthesize(text, clip, seed=2, utterance_id="p") for v in (voice, float32))
    assert int8.frames == reference.frames  # the decoder is float32 in both
    assert not np.array_equal(int8.audio, reference.audio)


def test_a_style_embedding_stands_for_its_clip(voice) -> None:
    clip = shipped_styles()["us-m3"]
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
    clip = shipped_styles()["gb-f2"]

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

    clip = shipped_styles()["gb-f2"]
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


def test_synthesize_raises_a_text_error_for_text_it_cannot_speak(voice) -> None:
    from trtgen import TextError

    with pytest.raises(TextError, match="nothing to speak|empty"):
        voice.synthesize("", shipped_styles()["gb-f2"], utterance_id="bad-id")


def test_rows_may_be_plain_tuples_or_dicts(voice) -> None:
    clip = str(shipped_styles()["us-m7"])
    results = list(voice.stream([("t1", "Tuples work.", clip), {"id": "d1", "text": "Dicts work.", "style": clip}]))
    assert sorted(r.id for r in results) == ["d1", "t1"]
    assert all(r.audio.size for r in results)


# ---------------------------------------------------------------------- issue 31: the API keeps its word
GOOD_TEXTS = ["Good morning.", "A short one.", "See you soon.", "One more time."]


def _good_rows() -> list:
    from trtgen import Row

    clips = list(shipped_styles().values())
    return [Row(f"good{i}", text, clips[i % len(clips)], 0.5 if i % 2 else None, 4) for i, text in enumerate(GOOD_TEXTS)]


@pytest.fixture(scope="module")
def good_audio(voice) -> dict[str, bytes]:
    """The good rows' audio bytes, spoken in a stream of their own."""
    return {speech.id: speech.audio.tobytes() for speech in voice.stream(_good_rows())}


def _bad_rows(style_dim: int) -> dict:
    """One row per problem a row can have, by the words its reason must name."""
    from trtgen import Row

    clip = shipped_styles()["us-m3"]
    return {
        "no style": Row("bad", "Hello.", None),
        "style embedding of shape": Row("bad", "Hello.", np.zeros(3, np.float32)),
        "style embedding of dtype": Row("bad", "Hello.", np.zeros(style_dim, np.int64)),
        "NaN or infinite": Row("bad", "Hello.", np.full(style_dim, np.inf, np.float32)),
        "style of type list": Row("bad", "Hello.", [0.0] * style_dim),
        "outside [0, 1)": Row("bad", "Hello.", clip, 1.5),
        "dropout -0.1 is outside": Row("bad", "Hello.", clip, -0.1),
        "dropout nan": Row("bad", "Hello.", clip, float("nan")),
        "dropout 'x' is not a number": Row("bad", "Hello.", clip, "x"),
        "dropout True is not a number": Row("bad", "Hello.", clip, True),
        "text 5 is of type int": Row("bad", 5, clip),
        "text None is of type NoneType": Row("bad", None, clip),
        "id 7 is of type int": Row(7, "Hello.", clip),
        "seed 'one' is not an integer": Row("bad", "Hello.", clip, None, "one"),
        "seed 1.5 is not an integer": Row("bad", "Hello.", clip, None, 1.5),
        "no such audio file": Row("bad", "Hello.", clip.with_name("no-such-clip.wav")),
        "nothing to speak": Row("bad", "", clip),
        "unexpected keyword argument 'bogus'": {"id": "bad", "text": "Hello.", "style": clip, "bogus": 1},
        "missing 2 required positional arguments": ("bad",),
    }


@pytest.mark.parametrize("problem", list(_bad_rows(128)))
def test_a_bad_row_in_a_stream_is_one_reject_and_every_other_row_is_spoken_as_without_it(voice, good_audio, problem: str) -> None:
    from trtgen import Rejected, Speech, TrtgenError

    bad = _bad_rows(voice.card.model.style_dim)[problem]
    good = _good_rows()
    results = list(voice.stream([*good[:2], bad, *good[2:]]))
    rejects = [r for r in results if isinstance(r, Rejected)]
    assert len(rejects) == 1, rejects
    (reject,) = rejects
    assert reject.id in ("bad", 7)
    assert problem in reject.reason and "\n" not in reject.reason
    assert isinstance(reject.error, TrtgenError) and str(reject.error) == reject.reason
    spoken = {r.id: r.audio.tobytes() for r in results if isinstance(r, Speech)}
    assert spoken == good_audio


def test_each_problem_has_its_typed_error(voice, tmp_path: Path) -> None:
    from trtgen import Rejected, Row, StyleError, TextError, UsageError

    expected = {
        "no style": StyleError, "style embedding of shape": StyleError, "NaN or infinite": StyleError, "no such audio file": StyleError,
        "outside [0, 1)": UsageError, "seed 'one' is not an integer": UsageError, "id 7 is of type int": UsageError,
        "unexpected keyword argument 'bogus'": UsageError, "text 5 is of type int": TextError, "nothing to speak": TextError,
    }
    bad = _bad_rows(voice.card.model.style_dim)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not a wav file")
    results = list(voice.stream([bad[problem] for problem in expected] + [Row("broken", "Hello.", broken)]))
    assert len(results) == len(expected) + 1 and all(isinstance(r, Rejected) for r in results)
    for problem, error_class in expected.items():
        (reject,) = (r for r in results if problem in r.reason)
        assert isinstance(reject.error, error_class), problem
        if error_class is UsageError:  # a bad argument is neither a text nor a style problem
            assert type(reject.error) is UsageError, problem
    (clip_reject,) = (r for r in results if r.id == "broken")
    assert isinstance(clip_reject.error, StyleError) and "broken.wav" in clip_reject.reason


def test_synthesize_raises_the_typed_error_a_stream_rejects_with(voice, tmp_path: Path) -> None:
    from trtgen import Rejected, Row, StyleError, TextError, UsageError

    clip = shipped_styles()["gb-f2"]
    cases = [("", clip, TextError), ("Hello.", tmp_path / "absent.wav", StyleError), ("Hello.", np.zeros(5, np.float32), StyleError)]
    for text, style, error_class in cases:
        (reject,) = voice.stream([Row("x", text, style)])
        assert isinstance(reject, Rejected) and isinstance(reject.error, error_class)
        with pytest.raises(error_class) as raised:
            voice.synthesize(text, style, utterance_id="x")
        assert type(raised.value) is type(reject.error) and str(raised.value) == reject.reason
        assert not (error_class is StyleError and isinstance(raised.value, TextError))
    with pytest.raises(StyleError, match="absent.wav"):
        voice.style_embedding(tmp_path / "absent.wav")
    with pytest.raises(UsageError):
        voice.synthesize("Hello.", clip, seed="one")


@pytest.mark.parametrize("dropout", [1.5, 1.0, -1, -0.01, float("nan"), float("inf"), "0.5", True, [0.5]])
def test_synthesize_refuses_a_dropout_outside_0_1_or_not_a_number(voice, dropout) -> None:
    from trtgen import StyleError, TextError, UsageError

    with pytest.raises(UsageError, match="dropout") as raised:
        voice.synthesize("Hello there.", shipped_styles()["gb-f2"], dropout=dropout)
    assert not isinstance(raised.value, (TextError, StyleError))


def test_the_dropout_check_is_one_function_for_synthesize_and_stream() -> None:
    from trtgen import UsageError
    from trtgen.engine.rows import check_dropout

    assert check_dropout(None) is None
    assert check_dropout(0) == 0.0 and check_dropout(np.float32(0.25)) == 0.25 and check_dropout(0.999) == 0.999
    for bad in (1, 1.5, -1e-9, float("nan"), "0.5", False):
        with pytest.raises(UsageError):
            check_dropout(bad)


def test_a_decode_too_short_to_vocode_is_a_synthesis_error_not_a_usage_error() -> None:
    from trtgen import Rejected, Row, Speech, SynthesisError, TrtgenError, UsageError, Voice
    from trtgen.errors import EXIT_FAILED, EXIT_USAGE, RunError, StyleError

    # A stop threshold near 0 stops every utterance at its first frame: decoded, but nothing to vocode.
    hasty = Voice.load(stop_threshold=1e-9)
    clip = shipped_styles()["us-m3"]
    (reject,) = hasty.stream([Row("short", "Hello there.", clip)], alignments=True)
    assert isinstance(reject, Rejected) and isinstance(reject.error, SynthesisError)
    assert "too short to vocode" in reject.reason
    assert isinstance(reject.decoded, Speech) and reject.decoded.audio.size == 0 and reject.decoded.alignment is not None
    with pytest.raises(SynthesisError, match="too short to vocode"):
        hasty.synthesize("Hello there.", clip)
    assert issubclass(SynthesisError, TrtgenError) and not issubclass(SynthesisError, (UsageError, RunError))
    assert SynthesisError.exit_code == EXIT_FAILED and StyleError.exit_code == EXIT_USAGE
    assert issubclass(StyleError, UsageError)


def test_options_vocoder_is_used_and_equals_the_vocoder_keyword() -> None:
    from trtgen import Voice
    from trtgen.engine.synthesis import SynthesisOptions
    from trtgen.engine.vocoder import GriffinLimOptions

    vocoder = GriffinLimOptions(n_iter=3, momentum=0.9)
    by_options = Voice.load(options=SynthesisOptions(vocoder=vocoder))
    by_keyword = Voice.load(vocoder=vocoder)
    assert by_options.options.vocoder == vocoder and by_keyword.options.vocoder == vocoder
    assert by_options.spec.synthesis.vocoder == vocoder
    clip = shipped_styles()["scot-f4"]
    audio = [v.synthesize("The vocoder of my choice.", clip, seed=1).audio for v in (by_options, by_keyword, Voice.load())]
    np.testing.assert_array_equal(audio[0], audio[1])
    assert audio[0].shape != audio[2].shape or not np.array_equal(audio[0], audio[2])  # not the default preset


def test_a_voice_spec_loads_alone_and_refuses_keywords_beside_it(voice) -> None:
    from trtgen import UsageError, Voice, VoiceSpec

    spec = VoiceSpec(threads=2, verify=False)
    loaded = Voice.load(spec)
    assert loaded.spec is spec
    clip = shipped_styles()["us-m7"]
    reference = voice.synthesize("Loaded from a spec.", clip, seed=3).audio
    np.testing.assert_array_equal(loaded.synthesize("Loaded from a spec.", clip, seed=3).audio, reference)
    from_model = Voice.from_model(spec.load_model(), spec)
    assert from_model.spec is spec
    np.testing.assert_array_equal(from_model.synthesize("Loaded from a spec.", clip, seed=3).audio, reference)
    beside = dict(device="cpu", backend="auto", threads=1, vocoder="quality", verify=True, precision="int8", options=spec.synthesis)
    for name, value in beside.items():
        with pytest.raises(UsageError, match=f"{name}.*VoiceSpec"):
            Voice.load(spec, **{name: value})
    for bad in (dict(device="tpu"), dict(backend="x"), dict(threads=0), dict(precision="int4"), dict(stop_threshold=1.5)):
        with pytest.raises(UsageError):
            VoiceSpec(**bad)


def _help(thing) -> str:
    import pydoc

    return pydoc.render_doc(thing, renderer=pydoc.plaintext)


@pytest.mark.parametrize("name", ["Row", "Speech", "Rejected", "VoiceSpec"])
def test_help_shows_every_field_with_its_meaning(name: str) -> None:
    import dataclasses
    import re

    import trtgen

    cls = getattr(trtgen, name)
    text = _help(cls)
    for field in dataclasses.fields(cls):
        assert re.search(rf"^[\s|]*{field.name}: \S", text, re.MULTILINE), f"help({name}) does not explain {field.name}"


def test_help_of_synthesize_and_stream_explains_every_parameter() -> None:
    import inspect
    import re

    from trtgen import Voice

    words = {"text": "transcript", "style": "clip", "dropout": "[0, 1)", "seed": "seed", "utterance_id": "id", "alignment": "attention", "retries": "dropout stream"}
    for method in (Voice.synthesize, Voice.stream, Voice.load):
        text = _help(method)
        for parameter in list(inspect.signature(method).parameters)[1:]:
            match = re.search(rf"^[\s|]*{parameter}: (.*)$", text, re.MULTILINE)
            assert match, f"help(Voice.{method.__name__}) does not explain {parameter}"
            if method is Voice.synthesize:
                assert words[parameter] in match.group(1) + text[match.end():match.end() + 200], parameter
    synthesize = _help(Voice.synthesize)
    for error in ("TextError", "StyleError", "UsageError", "SynthesisError"):
        assert f"{error}:" in synthesize


def test_reprs_are_one_short_line(voice) -> None:
    from trtgen import Rejected, Row, Speech, TextError

    long_text = "A sentence that goes on and on, " * 10
    speech = Speech(
        id="utterance-with-a-long-name-0001", audio=np.zeros(160_000, np.float32), sample_rate=16000, text=long_text, symbols=long_text,
        text_ids=np.zeros(400, np.int64), frames=1000, steps=334, stopped=True, dropout=0.5, seed=0,
        alignment=np.zeros((334, 400), np.float32), mel=np.zeros((1000, 80), np.float32),
    )
    embedding = voice.style_embedding(shipped_styles()["us-m3"])
    reprs = [
        repr(speech),
        repr(voice.synthesize("Hello there.", shipped_styles()["us-m3"])),
        repr(Rejected("bad", "text is " + "very " * 60 + "long", error=TextError("long"), decoded=speech)),
        repr(Row("r1", long_text, embedding, 0.5, 3, tag={"job": list(range(100))})),
        repr(Row("r2", "Short.", shipped_styles()["us-m3"])),
        repr(voice),
    ]
    for text in reprs:
        assert len(text) < 200 and "\n" not in text, text
    assert "10.00 s" in reprs[0] and "16000 Hz" in reprs[0] and "1000 frames" in reprs[0]
    assert "(128,)" in reprs[3] and "us-m3.wav" in reprs[4]
    assert all(word in reprs[5] for word in ("default", "onnxruntime", "cpu", "int8"))


def test_dir_of_trtgen_shows_every_exported_name_and_each_imports() -> None:
    import importlib

    import trtgen

    names = dir(trtgen)
    for name in trtgen.__all__:
        assert name in names, name
        assert getattr(importlib.import_module("trtgen"), name) is not None
    for name in ("VoiceSpec", "shipped_styles", "StyleError", "SynthesisError", "TextError"):
        assert name in trtgen.__all__
    assert trtgen.shipped_styles() == __import__("trtgen.engine.shipped", fromlist=["x"]).shipped_styles()
    assert (Path(trtgen.__file__).parent / "py.typed").is_file()


def test_the_command_line_does_not_import_numpy() -> None:
    import subprocess
    import sys

    code = "import sys, trtgen, trtgen.cli; dir(trtgen); print(sorted(m for m in ('numpy', 'onnxruntime') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_reject_and_every_exported_error_survive_pickling(voice) -> None:
    """A cluster worker's results and errors reach the driver pickled."""
    import pickle

    import trtgen
    from trtgen import Rejected, Row

    (reject,) = voice.stream([Row("bad", "Hello.", None)])
    copy = pickle.loads(pickle.dumps(reject))
    assert isinstance(copy, Rejected) and type(copy.error) is type(reject.error) and copy.reason == reject.reason
    arguments = {"OutputError": (OSError(28, "No space left on device"), "out/x.wav"), "Interrupted": ("SIGTERM", {"done": 3})}
    for name in trtgen.__all__:
        cls = getattr(trtgen, name)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            error = cls(*arguments.get(name, ("a message",)))
            copy = pickle.loads(pickle.dumps(error))
            assert type(copy) is cls and str(copy) == str(error), name
    assert pickle.loads(pickle.dumps(trtgen.Interrupted("SIGTERM", {"done": 3}))).partial == {"done": 3}


# ---------------------------------------------------------------- the token bank (issue 32)
def test_a_clips_token_weights_give_back_its_embedding(voice) -> None:
    heads, tokens = voice.card.style_token_shape
    seen = []
    for name, clip in shipped_styles().items():
        weights = voice.style_token_weights(clip)
        assert weights.shape == (heads, tokens) and weights.dtype == np.float32, name
        assert (weights >= 0).all(), name
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6, err_msg=name)
        embedding = voice.style_embedding(clip)
        again = voice.embedding_from_token_weights(weights)
        assert again.shape == embedding.shape and again.dtype == np.float32, name
        np.testing.assert_allclose(again, embedding, rtol=0, atol=1e-6 * np.abs(embedding).max(), err_msg=name)
        seen.append(weights)
    assert not any(np.array_equal(a, b) for i, a in enumerate(seen) for b in seen[i + 1 :]), "each clip has weights of its own"


def test_any_weights_over_the_tokens_give_a_style_to_speak_with(voice) -> None:
    heads, tokens = voice.card.style_token_shape
    drawn = np.random.default_rng(0).dirichlet(np.ones(tokens), heads).astype(np.float32)
    embedding = voice.embedding_from_token_weights(drawn)
    assert embedding.shape == (voice.card.model.style_dim,) and np.isfinite(embedding).all()
    np.testing.assert_array_equal(voice.embedding_from_token_weights(drawn), embedding)  # a pure function of the weights
    speech = voice.synthesize("Somewhere between the voices.", embedding, seed=1, utterance_id="mix")
    assert speech.audio.size > 0


def test_token_weights_of_a_wrong_shape_type_or_value_are_refused_naming_the_shape(voice, tmp_path: Path) -> None:
    from trtgen import StyleError

    heads, tokens = voice.card.style_token_shape
    clip = shipped_styles()["us-m3"]
    good = voice.style_token_weights(clip)
    for bad in (good[None], good.T, good[:, :-1], good.reshape(-1), [0.1] * tokens):
        with pytest.raises(StyleError, match=rf"\({heads}, {tokens}\)"):
            voice.embedding_from_token_weights(bad)
    not_finite = good.copy()
    not_finite[0, 0] = np.nan
    for bad in (good.astype(np.int32), not_finite, np.full((heads, tokens), "a")):
        with pytest.raises(StyleError):
            voice.embedding_from_token_weights(bad)
    with pytest.raises(StyleError, match="clip"):
        voice.style_token_weights(voice.style_embedding(clip))
    with pytest.raises(StyleError, match="unusable"):
        voice.style_token_weights(tmp_path / "missing.wav")


def test_a_model_exported_without_style_tokens_refuses_them_cleanly_and_speaks_as_before(voice, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    import shutil

    from tests.export.legacy import strip_style_tokens
    from trtgen import StyleError, UsageError, Voice

    old_dir = tmp_path / "old"
    shutil.copytree(voice.model.directory, old_dir)
    strip_style_tokens(old_dir)
    old = Voice.load(old_dir, threads=2)
    assert not old.card.has_style_tokens
    clip = shipped_styles()["gb-f2"]
    np.testing.assert_array_equal(old.style_embedding(clip), voice.style_embedding(clip))
    heads, tokens = old.card.style_token_shape
    uniform = np.full((heads, tokens), 1.0 / tokens, np.float32)
    for call in (lambda: old.style_token_weights(clip), lambda: old.embedding_from_token_weights(uniform)):
        with pytest.raises(UsageError, match="no style_tokens graph.*re-export it with this trtgen") as caught:
            call()
        assert not isinstance(caught.value, StyleError)
    text = "An older model."
    np.testing.assert_array_equal(old.synthesize(text, clip, seed=4).audio, voice.synthesize(text, clip, seed=4).audio)
