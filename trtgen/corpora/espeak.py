"""Reader of the espeak-ng training corpus (``python -m trtgen_export.train.corpus`` builds it).

The corpus is read by the trainer (``trtgen_export.train``) and by ``trtgen eval``; its writer needs
espeak-ng and lives with the trainer, this reader needs neither and lives on the runtime side, so the
runtime never imports the exporter. Layout of a corpus directory::

    corpus.json                    settings (voices, sentences digest, espeak-ng version, audio)
    wavs/<voice>/<sentence>.wav    16 kHz mono PCM_16, silence trimmed, peak 0.9
    features/<voice>/log_mel.npy   [sum T, 80] float16, utterances concatenated in sentence order
    features/<voice>/magnitude.npy [sum T, 401] float16
    features/<voice>/index.json    written last: marks the voice complete
    metadata.jsonl                 one utterance per line (id, voice, text, split, num_samples, ...)
    .completed                     the whole corpus is done
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trtgen.engine.config import AudioConfig, to_dict
from trtgen.errors import UsageError
from trtgen.fileio import iter_jsonl

__all__ = [
    "FORMAT_VERSION", "SETTINGS_FILE", "METADATA_FILE", "COMPLETED_FILE", "INDEX_FILE", "FEATURE_DTYPE",
    "CorpusError", "CorpusSettingsMismatch", "EspeakVoice", "CorpusSettings", "Utterance", "VoiceSummary",
    "CorpusManifest", "load_corpus",
]

FORMAT_VERSION = 1
SETTINGS_FILE = "corpus.json"
METADATA_FILE = "metadata.jsonl"
COMPLETED_FILE = ".completed"
INDEX_FILE = "index.json"
FEATURE_DTYPE = np.dtype("<f2")

class CorpusError(UsageError):
    """A corpus directory that cannot be built or read as asked."""


class CorpusSettingsMismatch(CorpusError):
    """``out_dir`` already holds a corpus made with other settings; the two are never mixed."""


@dataclass(frozen=True)
class EspeakVoice:
    """One espeak-ng speaker: language voice + variant, pitch and rate."""

    name: str
    """Directory-safe name used in paths and ids (``us-m3``)."""
    voice: str
    """``-v`` argument: language voice and optional ``+variant`` (``en-us+m3``)."""
    pitch: int = 50
    """``-p``: 0..99, espeak-ng's default is 50."""
    speed: int = 175
    """``-s``: words per minute, espeak-ng's default is 175."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ValueError(f"voice name {self.name!r} must be letters, digits, '_', '.', '-' (it names a directory)")
        if not 0 <= self.pitch <= 99:
            raise ValueError(f"voice {self.name}: pitch must be 0..99, got {self.pitch}")
        if not 80 <= self.speed <= 450:
            raise ValueError(f"voice {self.name}: speed must be 80..450 words per minute, got {self.speed}")

    @property
    def language(self) -> str:
        return self.voice.partition("+")[0]

    @property
    def variant(self) -> str | None:
        return self.voice.partition("+")[2] or None

    def arguments(self) -> list[str]:
        return ["-v", self.voice, "-p", str(self.pitch), "-s", str(self.speed)]


@dataclass(frozen=True)
class CorpusSettings:
    """Everything that decides a corpus's content; stored in ``corpus.json`` and compared on resume."""

    voices: tuple[EspeakVoice, ...]
    sentences_sha256: str
    """Digest of every (id, text, split): other sentences make another corpus."""
    num_sentences: int
    espeak_version: str
    """A different espeak-ng build may speak differently, so it is part of the settings."""
    audio: AudioConfig = field(default_factory=AudioConfig)
    """Sample rate, trimming and feature parameters."""
    peak: float = 0.9
    """Peak amplitude after normalisation (full scale 1.0)."""
    feature_dtype: str = "float16"
    format_version: int = FORMAT_VERSION

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    def to_json(self) -> dict[str, Any]:
        data = to_dict(self)
        data["voices"] = [to_dict(v) for v in self.voices]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, source: str) -> CorpusSettings:
        try:
            voices = tuple(EspeakVoice(**v) for v in data["voices"])
            audio = AudioConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["audio"].items()})
            rest = {k: v for k, v in data.items() if k not in ("voices", "audio")}
            return cls(voices=voices, audio=audio, **rest)
        except (KeyError, TypeError, ValueError) as exc:
            raise CorpusError(f"{source}: not a corpus settings file this version can read ({exc})") from exc


@dataclass(frozen=True)
class Utterance:
    """One rendered sentence in one voice: a line of ``metadata.jsonl``."""

    id: str
    """``<voice>-<sentence id>``, unique in the corpus."""
    sentence_id: str
    voice: str
    text: str
    split: str
    num_samples: int
    duration_s: float
    num_frames: int
    """``1 + num_samples // hop_length`` (centred STFT)."""
    frame_offset: int
    """First row of this utterance in ``features/<voice>/*.npy``."""
    wav: str
    """Path relative to the corpus directory."""


@dataclass(frozen=True)
class VoiceSummary:
    """Per-voice totals for the build report."""

    voice: str
    num_utterances: int
    hours: float
    mean_duration_s: float
    frames_per_char: float
    """Total frames / total characters: the voice's speaking rate as the decoder sees it."""


@dataclass
class CorpusManifest:
    """A finished corpus: its settings and utterances, plus readers for audio and features."""

    root: Path
    settings: CorpusSettings
    utterances: list[Utterance]
    build_seconds: float | None = None
    """Wall time of the run that completed the corpus (from ``.completed``; a resumed run counts only itself)."""

    def split(self, name: str) -> list[Utterance]:
        return [u for u in self.utterances if u.split == name]

    def voices(self) -> list[str]:
        return [v.name for v in self.settings.voices]

    def wav_path(self, utterance: Utterance) -> Path:
        return self.root / utterance.wav

    def feature_paths(self, voice: str) -> tuple[Path, Path]:
        directory = self.root / "features" / voice
        return directory / "log_mel.npy", directory / "magnitude.npy"

    def open_features(self, voice: str) -> tuple[np.ndarray, np.ndarray]:
        """Memory-mapped ``(log_mel [sum T, 80], magnitude [sum T, 401])`` float16 of one voice."""
        mel_path, magnitude_path = self.feature_paths(voice)
        return np.load(mel_path, mmap_mode="r"), np.load(magnitude_path, mmap_mode="r")

    def features(self, utterance: Utterance) -> tuple[np.ndarray, np.ndarray]:
        """One utterance's ``(log_mel [T, 80], magnitude [T, 401])`` as float32."""
        log_mel, magnitude = self.open_features(utterance.voice)
        rows = slice(utterance.frame_offset, utterance.frame_offset + utterance.num_frames)
        return np.asarray(log_mel[rows], dtype=np.float32), np.asarray(magnitude[rows], dtype=np.float32)

    def summary(self) -> list[VoiceSummary]:
        rows = []
        for voice in self.voices():
            utterances = [u for u in self.utterances if u.voice == voice]
            seconds = sum(u.duration_s for u in utterances)
            chars = sum(len(u.text) for u in utterances)
            frames = sum(u.num_frames for u in utterances)
            rows.append(
                VoiceSummary(
                    voice=voice,
                    num_utterances=len(utterances),
                    hours=seconds / 3600.0,
                    mean_duration_s=seconds / len(utterances) if utterances else 0.0,
                    frames_per_char=frames / chars if chars else 0.0,
                )
            )
        return rows

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())


def load_corpus(out_dir: str | os.PathLike[str]) -> CorpusManifest:
    """Read a finished corpus; :class:`CorpusError` names the missing or bad file."""
    root = Path(out_dir)
    completed = root / COMPLETED_FILE
    if not completed.is_file():
        raise CorpusError(f"{root}: no {COMPLETED_FILE} marker, the corpus is not finished (run build_corpus again)")
    settings_path = root / SETTINGS_FILE
    settings_json = json.loads(settings_path.read_text(encoding="utf-8"))
    settings = CorpusSettings.from_json(settings_json, source=str(settings_path))
    utterances = []
    metadata = root / METADATA_FILE
    for line in iter_jsonl(metadata):
        if line.error is not None:
            raise CorpusError(f"{metadata}:{line.number}: {line.error}")
        try:
            utterances.append(Utterance(**line.value))
        except TypeError as exc:
            raise CorpusError(f"{metadata}:{line.number}: not an utterance ({exc})") from exc
    build_seconds = json.loads(completed.read_text(encoding="utf-8")).get("build_seconds")
    return CorpusManifest(root, settings, utterances, build_seconds=build_seconds)
