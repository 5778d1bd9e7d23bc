"""Configuration dataclasses shared by the runtime (`trtgen`) and the exporter (`export`).

A model directory's card (`model.json`) stores these as plain JSON objects; the runtime rebuilds them
with :func:`from_dict`. Defaults are OpenSeq2Seq's ``tacotron_gst`` configuration (docs/openseq2seq-notes.md §1-§6).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from trtgen.errors import UsageError

__all__ = [
    "AudioConfig",
    "TextConfig",
    "ModelConfig",
    "MODEL_PRESETS",
    "TEXT_FRONTENDS",
    "IPA_SYMBOLS",
    "text_config_for",
    "parse_attention_window",
    "model_preset",
    "load_model_config",
    "from_dict",
    "to_dict",
]

T = TypeVar("T")


@dataclass(frozen=True)
class AudioConfig:
    """Audio and feature parameters (docs/openseq2seq-notes.md §3, §6): MAILABS at 16 kHz."""

    sample_rate: int = 16000
    """Sample rate of style clips after loading and of the generated audio."""
    n_fft: int = 800
    """FFT size; also the window length (OpenSeq2Seq hard-codes 800 for MAILABS)."""
    win_length: int = 800
    hop_length: int = 200
    """12.5 ms at 16 kHz."""
    num_mels: int = 80
    mel_fmin: float = 0.0
    mel_fmax: float = 8000.0
    mel_htk: bool = True
    """HTK mel scale, no area normalisation (librosa ``htk=True, norm=None``)."""
    log_floor: float = 0.01
    """``ln(max(mel, 0.01))``; padding frames use ``ln(0.01)``."""
    trim_top_db: float = 60.0
    """Leading and trailing silence below this many dB under the peak RMS is trimmed (librosa 0.6.3)."""
    trim_frame_length: int = 400
    trim_hop_length: int = 100
    style_pad_multiple: int = 8
    """Style spectrograms are end-padded to a multiple of 8 frames (2..9 frames, docs/openseq2seq-notes.md §3)."""
    magnitude_power: float = 1.5
    """Griffin-Lim works on ``|S| ** 1.5`` (OpenSeq2Seq ``save_audio``)."""
    magnitude_clip: float = 255.0
    """If any magnitude falls outside ``[0, 255]`` OpenSeq2Seq clips the whole array to that range."""

    @property
    def num_freq(self) -> int:
        return self.n_fft // 2 + 1


# Spec §2.1: `vocab_tts.txt` in file order after the three specials.
OPENSEQ2SEQ_SYMBOLS: tuple[str, ...] = (
    ("<p>", "<s>", "</s>", " ", "!", '"', "'", "(", ")", ",", "-", ".")
    + tuple("0123456789")
    + (":", ";", "?")
    + tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    + ("[", "]")
    + tuple("abcdefghijklmnopqrstuvwxyz")
    + tuple("\u00c4\u00d6\u00dc\u00df\u00e0\u00e2\u00e4\u00e8\u00e9\u00ea\u00f6\u00fc")
    + ("\u2019", "\u201c", "\u201d")
)
assert len(OPENSEQ2SEQ_SYMBOLS) == 94


# The phoneme table of models trained on espeak-ng's IPA (trtgen.engine.phonemes): the specials and clause
# punctuation, then the IPA that espeak-ng writes for English (every symbol found in the training corpus
# and the LibriSpeech samples, plus the rest of its English and near inventory, so a rare phone gets an
# (untrained) id instead of failing the row).
IPA_SYMBOLS: tuple[str, ...] = (
    ("<p>", "<s>", "</s>", " ", "!", ",", ".", ":", ";", "?")
    + tuple("abcdefghijklmnopqrstuvwxyz")
    + tuple("æçðøŋœɐɑɒɔəɘɚɛɜɝɞɟɡɣɤɪɬɯɲɹɾʃʊʋʌʍʎʒʔʰʲˈˌːˑθχᵻ")
    + ("\u0303", "\u0329")  # combining tilde (nasal) and vertical line below (syllabic)
)
assert len(set(IPA_SYMBOLS)) == len(IPA_SYMBOLS)


@dataclass(frozen=True)
class TextConfig:
    """Text front end (docs/openseq2seq-notes.md §2): ids are positions in ``symbols``.

    With the default ``phonemizer`` (empty) the symbols are OpenSeq2Seq's characters; with
    ``espeak-ng:<voice>`` the text is first turned into IPA by espeak-ng (:mod:`trtgen.engine.phonemes`).
    """

    symbols: tuple[str, ...] = OPENSEQ2SEQ_SYMBOLS
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_multiple: int = 8
    """``[<s>] + ids + [</s>]`` is padded with ``<p>`` to a multiple of 8; a full multiple gets 8 more."""
    lowercase_ascii: bool = True
    """OpenSeq2Seq lowercases the UTF-8 bytes, so only ASCII A-Z change case (docs/openseq2seq-notes.md §2.2)."""
    max_text_len: int = 1024
    """Longest padded id sequence the runtime accepts; longer texts are rejected, not truncated."""
    phonemizer: str = ""
    """Empty: characters. ``espeak-ng:en-us``: IPA from espeak-ng's ``en-us`` voice (a phoneme model)."""

    @property
    def num_symbols(self) -> int:
        return len(self.symbols)


@dataclass(frozen=True)
class ModelConfig:
    """Tacotron 2 + GST hyperparameters; defaults are OpenSeq2Seq's ``tacotron_gst`` (docs/openseq2seq-notes.md §4-§5)."""

    name: str = "openseq2seq"
    num_symbols: int = 94
    text_frontend: str = "characters"
    """Key of :data:`TEXT_FRONTENDS`: the symbol table the embedding was trained with."""
    embedding_dim: int = 512
    # Text encoder (docs/openseq2seq-notes.md §4.2-4.3).
    encoder_conv_layers: int = 3
    encoder_conv_channels: int = 512
    encoder_conv_kernel: int = 5
    encoder_lstm_units: int = 256
    """Units per direction of the bidirectional LSTM (output is twice this)."""
    # Global style tokens (docs/openseq2seq-notes.md §4.4).
    reference_conv_channels: tuple[int, ...] = (32, 32, 64, 64, 128, 128)
    reference_conv_kernel: int = 3
    reference_conv_stride: int = 2
    reference_gru_units: int = 128
    reference_embedding_dim: int = 128
    """Width of the Dense+tanh (``reference_activation``) that forms the GST query."""
    num_style_tokens: int = 32
    style_token_dim: int = 512
    style_attention_dim: int = 512
    """Width of q/k/v and of the output transform: the style embedding has this size."""
    style_attention_heads: int = 8
    # Decoder (docs/openseq2seq-notes.md §5).
    num_mels: int = 80
    num_freq: int = 401
    reduction_factor: int = 1
    """Frames per decoder step; 1 is OpenSeq2Seq. r > 1 is a trtgen extension for small, fast models."""
    prenet_units: tuple[int, ...] = (256, 256)
    prenet_dropout: float = 0.5
    """Training-time prenet dropout; at generation the rate of each copy is chosen by the user."""
    decoder_lstm_units: int = 1024
    decoder_lstm_layers: int = 2
    lstm_forget_bias: float = 1.0
    """``tf.nn.rnn_cell.LSTMCell`` adds +1 to the forget gate at run time; it is not in the stored bias."""
    attention_dim: int = 128
    location_filters: int = 32
    location_kernel: int = 32
    """Kernel 32 (not the paper's 31): TF SAME pads 15 before and 16 after."""
    postnet_channels: tuple[int, ...] = (512, 512, 512, 512)
    """Hidden postnet channels; a last layer maps back to ``num_mels``."""
    postnet_kernel: int = 5
    magnitude_conv_channels: tuple[int, ...] = (256, 512)
    magnitude_conv_kernel: int = 4
    batch_norm_epsilon: float = 1.001e-5
    """Config says 1e-5; TF1's fused batch norm clamps it to 1.001e-5 (docs/openseq2seq-notes.md §0.2, U5). Chosen: 1.001e-5."""
    max_frames_per_symbol: int = 10
    """Decoding cap: 10 x text_len frames (text_len counts <s>, </s> and padding), per utterance."""
    stop_threshold: float = 0.5
    """An utterance stops at the first frame whose stop probability is above this (sticky); OpenSeq2Seq: 0.5."""
    attention_window: tuple[int, int] | None = None
    """``(behind, ahead)``: at inference each decoder step may attend only to the symbols from ``behind``
    before to ``ahead`` after the previous step's attention peak (the others' scores are masked), so the
    attention can neither run back nor skip ahead. A trtgen extension after ESPnet's Tacotron 2
    ``use_att_constraint`` (Deep Voice 3's monotonic constraint); both ends count here, so ESPnet's default
    ``backward_window=1, forward_window=3``, whose slice stops before the far end, is (1, 2). It is part of
    the exported decoder graph and adds the state ``previous_alignment``. Training (teacher forcing) is
    unaffected. None: unconstrained, as OpenSeq2Seq decodes."""

    @property
    def memory_dim(self) -> int:
        """Attention memory width: BiLSTM outputs followed by the style embedding (docs/openseq2seq-notes.md §4.4.7)."""
        return 2 * self.encoder_lstm_units + self.style_attention_dim

    @property
    def attention_positions(self) -> int | None:
        """Symbols a decoder step attends to with an ``attention_window`` (``behind + ahead + 1``); None: the whole text."""
        return None if self.attention_window is None else sum(self.attention_window) + 1

    @property
    def style_dim(self) -> int:
        return self.style_attention_dim

    @property
    def frame_dim(self) -> int:
        """Width of one decoder step's output (r frames of ``num_mels``)."""
        return self.num_mels * self.reduction_factor

    def validate(self) -> None:
        problems = []
        if self.reduction_factor < 1:
            problems.append("reduction_factor must be >= 1")
        if self.style_attention_dim % self.style_attention_heads:
            problems.append("style_attention_dim must be divisible by style_attention_heads")
        if len(self.prenet_units) < 1:
            problems.append("prenet_units needs at least one layer")
        if self.text_frontend not in TEXT_FRONTENDS:
            problems.append(f"text_frontend must be one of {', '.join(TEXT_FRONTENDS)}")
        elif TEXT_FRONTENDS[self.text_frontend].num_symbols != self.num_symbols:
            problems.append(f"num_symbols must be {TEXT_FRONTENDS[self.text_frontend].num_symbols} (the {self.text_frontend} table)")
        if self.decoder_lstm_layers < 1:
            problems.append("decoder_lstm_layers must be >= 1")
        if not 0.0 <= self.prenet_dropout < 1.0:
            problems.append("prenet_dropout must be in [0, 1)")
        if not 0.0 < self.stop_threshold < 1.0:
            problems.append(f"stop_threshold must be in (0, 1), not {self.stop_threshold}")
        if self.attention_window is not None:
            window = tuple(self.attention_window)
            if len(window) != 2 or not all(isinstance(w, int) and not isinstance(w, bool) for w in window):
                problems.append("attention_window must be two integers (behind, ahead) or null")
            elif window[0] < 0 or window[1] < 1:
                problems.append(f"attention window {window} needs behind >= 0 and ahead >= 1")
        if problems:
            raise UsageError(f"invalid model config {self.name!r}: " + "; ".join(problems))


TEXT_FRONTENDS: dict[str, TextConfig] = {
    "characters": TextConfig(),
    # IPA from espeak-ng's en-us voice for every speaker (accents are the style's job, as in the corpus).
    "espeak-ipa": TextConfig(symbols=IPA_SYMBOLS, lowercase_ascii=False, phonemizer="espeak-ng:en-us"),
}


def text_config_for(config: ModelConfig) -> TextConfig:
    """The text front end a model was trained with (its card stores the result, the runtime reads that)."""
    try:
        return TEXT_FRONTENDS[config.text_frontend]
    except KeyError:
        raise UsageError(f"model config {config.name!r}: unknown text_frontend {config.text_frontend!r}; known: {', '.join(TEXT_FRONTENDS)}") from None


MODEL_PRESETS: dict[str, ModelConfig] = {
    "openseq2seq": ModelConfig(),
    # Tiny model for tests and fast experiments: every block present, same tensor names.
    "small": ModelConfig(
        name="small",
        embedding_dim=32,
        encoder_conv_channels=32,
        encoder_lstm_units=16,
        reference_conv_channels=(8, 8, 16, 16, 16, 16),
        reference_gru_units=16,
        reference_embedding_dim=16,
        num_style_tokens=4,
        style_token_dim=16,
        style_attention_dim=16,
        style_attention_heads=2,
        prenet_units=(32, 32),
        decoder_lstm_units=64,
        attention_dim=16,
        location_filters=8,
        location_kernel=31,
        postnet_channels=(32, 32, 32, 32),
        magnitude_conv_channels=(32, 64),
    ),
    # The voice trained here on espeak-ng speech (export/train), reading letters ("voice-ipa" below, the
    # shipped voice, reads phonemes): small enough to train on a 2-core CPU, 3 frames per step.
    "voice": ModelConfig(
        name="voice",
        embedding_dim=128,
        encoder_conv_channels=128,
        encoder_lstm_units=64,
        reference_conv_channels=(16, 16, 32, 32, 64, 64),
        reference_gru_units=64,
        reference_embedding_dim=64,
        num_style_tokens=10,
        style_token_dim=128,
        style_attention_dim=128,
        style_attention_heads=4,
        reduction_factor=3,
        prenet_units=(128, 128),
        decoder_lstm_units=256,
        attention_dim=64,
        location_filters=16,
        location_kernel=15,
        postnet_channels=(128, 128, 128, 128),
        magnitude_conv_channels=(128, 256),
        # Chosen on a validation slice of held-out sentences (``trtgen eval --first-sentence 50``), not
        # the test slice: at 0.5 the stop fired with the attention still 1-2 letters before the last
        # one in 3% of utterances; 0.9 is the lowest of 0.5/0.7/0.8/0.9/0.95 that let all of them reach
        # it, at 0.3% longer outputs (docs/shipped-voice.md, "Choices, and what they rest on").
        stop_threshold=0.9,
    ),
}
# The shipped voice: the same small model reading espeak-ng phonemes instead of letters, decoded with an
# attention window of 1 symbol back and 3 ahead, which stops its attention from slipping back by two
# phonemes (docs/shipped-voice.md, "Choices, and what they rest on").
MODEL_PRESETS["voice-ipa"] = dataclasses.replace(
    MODEL_PRESETS["voice"], name="voice-ipa", text_frontend="espeak-ipa", num_symbols=len(IPA_SYMBOLS), attention_window=(1, 3)
)


def parse_attention_window(text: str) -> tuple[int, int] | None:
    """``"1,3"`` -> (1, 3); ``"none"`` -> None (for ``trtgen export --attention-window``). Only the form is
    checked here; the bounds are :meth:`ModelConfig.validate`'s."""
    if text.strip().lower() == "none":
        return None
    try:
        behind, ahead = (int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"attention window {text!r}: expected BEHIND,AHEAD (e.g. 1,3) or none") from None
    return behind, ahead


def model_preset(name: str) -> ModelConfig:
    try:
        return MODEL_PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown model config {name!r}; presets: {', '.join(sorted(MODEL_PRESETS))}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(cls: type[T], data: dict[str, Any], *, source: str = "config") -> T:
    """Rebuild a config dataclass from JSON, refusing unknown keys (typos are not silently ignored) and
    values of the wrong type, naming the field."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: expected a JSON object, not {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UsageError(f"{source}: unknown {cls.__name__} keys: {', '.join(unknown)}")
    kwargs = {}
    for key, value in data.items():
        declared = str(names[key].type)
        if not _matches(declared, value):
            raise UsageError(f"{source}: field {key!r} must be {declared}, not {value!r}")
        if isinstance(value, list):
            value = tuple(value)
        elif declared == "float" and isinstance(value, int):
            value = float(value)
        kwargs[key] = value
    return cls(**kwargs)  # type: ignore[call-arg]


def _matches(declared: str, value: Any) -> bool:
    """Whether a JSON value fits a config field's declared type (the annotations used in this module)."""
    if value is None:
        return declared.endswith("| None")
    declared = declared.removesuffix(" | None")
    if isinstance(value, bool):
        return declared == "bool"
    if declared == "int":
        return isinstance(value, int)
    if declared == "float":
        return isinstance(value, (int, float))
    if declared == "str":
        return isinstance(value, str)
    if declared.startswith("tuple["):
        element = {"int": int, "str": str, "float": (int, float)}.get(declared[6:].split(",")[0].strip(" ]"), object)
        return isinstance(value, (list, tuple)) and all(isinstance(v, element) and not isinstance(v, bool) for v in value)
    return True


def load_model_config(name_or_path: str) -> ModelConfig:
    """A preset name (``openseq2seq``, ``small``) or a JSON file holding ModelConfig fields."""
    if name_or_path in MODEL_PRESETS:
        return MODEL_PRESETS[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise UsageError(f"{name_or_path!r} is neither a config preset ({', '.join(sorted(MODEL_PRESETS))}) nor a JSON file")
    config = from_dict(ModelConfig, json.loads(path.read_text(encoding="utf-8")), source=str(path))
    config.validate()
    return config

