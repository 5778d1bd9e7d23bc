"""The espeak-ng training corpus: every sentence spoken in several voices, with cached features.

Why espeak-ng: no pretrained Tacotron weights or recorded corpus can be downloaded here, so the
default trtgen voice is trained on speech this machine can make itself. Four espeak-ng settings that
differ in identity, pitch and speaking rate give the global style tokens something to learn.

Layout of ``out_dir`` (one directory = one set of settings, recorded in ``corpus.json``)::

    corpus.json                    settings; a run with other settings is refused
    wavs/<voice>/<sentence>.wav    16 kHz mono PCM_16, silence trimmed, peak 0.9
    features/<voice>/log_mel.npy   [sum T, 80] float16, utterances concatenated in sentence order
    features/<voice>/magnitude.npy [sum T, 401] float16 (linear magnitude as training_features gives it)
    features/<voice>/index.json    written last: marks the voice complete
    metadata.jsonl                 one utterance per line (id, voice, text, split, num_samples, ...)
    .completed                     the whole corpus is done; a second run returns at once

Features are float16 to halve the cache (the log-mel values, about -4.6..6, keep ~3 significant
digits); ``.npy`` rather than ``.npz`` so a trainer can memory-map them. An utterance's frames are
``log_mel[frame_offset : frame_offset + num_frames]`` with both numbers in ``metadata.jsonl``.
Features are computed from the 16-bit samples that are written, so a resumed run that reads a WAV
back gets exactly the features a fresh run would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from trtgen_export.train.sentences import DEMO_SENTENCE, HELDOUT, TRAIN, Sentence, SentenceSettings, generate_sentences
from trtgen.engine.audio import training_features, trim_silence
from trtgen.engine.config import AudioConfig
from trtgen.corpora.espeak import (
    COMPLETED_FILE,
    FEATURE_DTYPE,
    INDEX_FILE,
    METADATA_FILE,
    SETTINGS_FILE,
    CorpusError,
    CorpusManifest,
    CorpusSettings,
    CorpusSettingsMismatch,
    EspeakVoice,
    Utterance,
    VoiceSummary,
    load_corpus,
)
from trtgen.fileio import atomic_path, atomic_write, write_jsonl
from trtgen.errors import UsageError

__all__ = [
    "EspeakVoice",
    "DEFAULT_VOICES",
    "CorpusSettings",
    "Utterance",
    "VoiceSummary",
    "CorpusManifest",
    "CorpusError",
    "CorpusSettingsMismatch",
    "EspeakError",
    "EspeakNotFoundError",
    "ESPEAK_INSTALL_HINT",
    "find_espeak",
    "espeak_version",
    "check_voices",
    "render_espeak",
    "build_corpus",
    "load_corpus",
    "write_demo_styles",
]

logger = logging.getLogger(__name__)

ESPEAK_INSTALL_HINT = (
    "espeak-ng is not installed or not on PATH. It is a system package, not a pip one: "
    "install it with `sudo apt-get install espeak-ng` (Debian/Ubuntu), `brew install espeak-ng` (macOS) "
    "or `dnf install espeak-ng` (Fedora)."
)


class EspeakError(UsageError):
    """espeak-ng failed, or a requested voice or variant does not exist in this installation."""


class EspeakNotFoundError(EspeakError):
    """espeak-ng is missing: the message says how to install it."""


DEFAULT_VOICES: tuple[EspeakVoice, ...] = (
    EspeakVoice("us-m3", "en-us+m3", pitch=40, speed=150),
    EspeakVoice("gb-f2", "en-gb+f2", pitch=70, speed=170),
    EspeakVoice("us-m7", "en-us+m7", pitch=30, speed=130),
    EspeakVoice("scot-f4", "en-gb-scotland+f4", pitch=60, speed=160),
)
"""The four settings of the CPU training trial (shared notes): two male, two female, 130-170 wpm."""


# --------------------------------------------------------------------------------------------------
# espeak-ng


def find_espeak() -> str:
    """Path of the espeak-ng executable, or :class:`EspeakNotFoundError` with the install hint."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise EspeakNotFoundError(ESPEAK_INSTALL_HINT)
    return path


@lru_cache(maxsize=4)
def _version_info(executable: str) -> tuple[str, Path]:
    """(version line, data directory) from ``espeak-ng --version``."""
    result = subprocess.run([executable, "--version"], capture_output=True, text=True, check=False)
    output = result.stdout.strip()
    match = re.search(r"text-to-speech:\s*(\S+)\s+Data at:\s*(.+)$", output)
    if result.returncode != 0 or match is None:
        raise EspeakError(f"{executable} --version gave an unexpected answer (rc {result.returncode}): {output!r}")
    return match.group(1), Path(match.group(2).strip())


def espeak_version(executable: str | None = None) -> str:
    return _version_info(executable or find_espeak())[0]


@lru_cache(maxsize=4)
def _languages(executable: str) -> frozenset[str]:
    result = subprocess.run([executable, "--voices"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise EspeakError(f"{executable} --voices failed (rc {result.returncode}): {result.stderr.strip()}")
    names: set[str] = set()
    for line in result.stdout.splitlines()[1:]:
        columns = line.split()
        if len(columns) >= 5:
            names.add(columns[1])  # language code (en-us)
            names.add(columns[4].rpartition("/")[2].lower())  # voice file (gmw/en-US -> en-us)
    return frozenset(names)


def check_voices(voices: Sequence[EspeakVoice], executable: str | None = None) -> None:
    """Raise :class:`EspeakError` for a language or variant this espeak-ng lacks.

    Needed because espeak-ng silently falls back to its default variant for an unknown ``+variant``
    (``espeak-ng -v en-us+nonexistent`` exits 0), which would quietly make two "voices" identical.
    """
    executable = executable or find_espeak()
    _, data_dir = _version_info(executable)
    languages = _languages(executable)
    names = [v.name for v in voices]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"voice names must be unique, repeated: {', '.join(duplicates)}")
    for voice in voices:
        if voice.language.lower() not in languages:
            raise EspeakError(f"voice {voice.name}: espeak-ng has no language voice {voice.language!r} "
                              f"(see `espeak-ng --voices`)")
        variant = voice.variant
        if variant is not None and not (data_dir / "voices" / "!v" / variant).is_file():
            raise EspeakError(f"voice {voice.name}: espeak-ng variant {variant!r} not found in "
                              f"{data_dir / 'voices' / '!v'} (see `espeak-ng --voices=variant`)")


def _parse_wav(data: bytes, source: str) -> tuple[np.ndarray, int]:
    """Mono 16-bit PCM from espeak-ng's ``--stdout`` WAV, whose size fields are placeholders."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise EspeakError(f"{source}: espeak-ng did not write a WAV ({len(data)} bytes)")
    position = 12
    sample_rate = None
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], int.from_bytes(data[position + 4 : position + 8], "little")
        body = position + 8
        if chunk == b"fmt ":
            audio_format = int.from_bytes(data[body : body + 2], "little")
            channels = int.from_bytes(data[body + 2 : body + 4], "little")
            sample_rate = int.from_bytes(data[body + 4 : body + 8], "little")
            bits = int.from_bytes(data[body + 14 : body + 16], "little")
            if (audio_format, channels, bits) != (1, 1, 16):
                raise EspeakError(f"{source}: expected mono 16-bit PCM, got format {audio_format}, "
                                  f"{channels} channels, {bits} bits")
        elif chunk == b"data":
            if sample_rate is None:
                raise EspeakError(f"{source}: WAV data chunk before its fmt chunk")
            # The streamed header's size is 0x7ffff000: the samples run to the end of the output.
            payload = data[body : len(data) - (len(data) - body) % 2]
            return np.frombuffer(payload, dtype="<i2"), sample_rate
        position = body + size + (size & 1)
    raise EspeakError(f"{source}: no data chunk in espeak-ng's WAV")


def render_espeak(text: str, voice: EspeakVoice, executable: str | None = None) -> tuple[np.ndarray, int]:
    """``(int16 samples, sample rate)`` of ``text`` spoken by ``voice`` (espeak-ng's own 22.05 kHz)."""
    executable = executable or find_espeak()
    # Text on stdin, never argv: a sentence starting with "-" must not be read as an option.
    command = [executable, *voice.arguments(), "--stdout"]
    result = subprocess.run(command, input=text.encode("utf-8"), capture_output=True, check=False)
    source = f"espeak-ng voice {voice.name} for {text[:40]!r}"
    if result.returncode != 0:
        raise EspeakError(f"{source}: `{' '.join(command)}` failed (rc {result.returncode}): "
                          f"{result.stderr.decode(errors='replace').strip()}")
    return _parse_wav(result.stdout, source)


# --------------------------------------------------------------------------------------------------
# One utterance


@dataclass(frozen=True)
class _Job:
    """What a worker process needs to make one utterance (picklable)."""

    index: int
    text: str
    voice: EspeakVoice
    wav_path: Path
    audio: AudioConfig
    peak: float
    executable: str


@dataclass(frozen=True)
class _Result:
    index: int
    num_samples: int
    log_mel: np.ndarray
    magnitude: np.ndarray
    rendered: bool
    """False when an existing WAV (from an interrupted run) was reused."""


def _speak(text: str, voice: EspeakVoice, audio: AudioConfig, peak: float, executable: str) -> np.ndarray:
    """espeak-ng -> resample to ``audio.sample_rate`` -> trim silence -> peak-normalise -> int16."""
    samples, source_rate = render_espeak(text, voice, executable)
    y = samples.astype(np.float32) / 32768.0
    if source_rate != audio.sample_rate:
        g = math.gcd(audio.sample_rate, source_rate)
        # Polyphase 320/441 for 22.05 -> 16 kHz: its anti-alias filter removes what lies above 8 kHz.
        y = resample_poly(y, audio.sample_rate // g, source_rate // g).astype(np.float32)
    y = trim_silence(y, audio)
    top = float(np.max(np.abs(y))) if y.size else 0.0
    if top < 1e-4:
        raise EspeakError(f"espeak-ng voice {voice.name} produced silence for {text!r}")
    y = y * np.float32(peak / top)
    return np.clip(np.round(y * 32767.0), -32768, 32767).astype(np.int16)


def _make_utterance(job: _Job) -> _Result:
    """Render (or reuse) the WAV, then compute the features from exactly the samples on disk."""
    rendered = False
    if job.wav_path.is_file():
        pcm, rate = sf.read(job.wav_path, dtype="int16")
        if rate != job.audio.sample_rate or pcm.ndim != 1:
            raise CorpusError(f"{job.wav_path}: expected mono {job.audio.sample_rate} Hz, found {rate} Hz, "
                              f"shape {pcm.shape}")
    else:
        pcm = _speak(job.text, job.voice, job.audio, job.peak, job.executable)
        with atomic_path(job.wav_path) as temporary:
            sf.write(temporary, pcm, job.audio.sample_rate, subtype="PCM_16", format="WAV")
        rendered = True
    y = pcm.astype(np.float32) / 32768.0
    log_mel, magnitude = training_features(y, job.audio)
    expected = 1 + pcm.shape[0] // job.audio.hop_length
    if log_mel.shape != (expected, job.audio.num_mels) or magnitude.shape != (expected, job.audio.num_freq):
        raise CorpusError(f"{job.wav_path}: training_features gave {log_mel.shape} / {magnitude.shape}, "
                          f"expected ({expected}, {job.audio.num_mels}) / ({expected}, {job.audio.num_freq})")
    return _Result(job.index, int(pcm.shape[0]), log_mel.astype(FEATURE_DTYPE), magnitude.astype(FEATURE_DTYPE),
                   rendered)


# --------------------------------------------------------------------------------------------------
# Feature files


class _NpyStream:
    """Appends rows to a 2-D ``.npy`` whose length is only known at the end (header fixed up last).

    Why: one voice's magnitudes are over a gigabyte, so rows go straight to disk instead of a list.
    """

    def __init__(self, handle: IO[bytes], width: int, dtype: np.dtype) -> None:
        self.handle = handle
        self.width = width
        self.dtype = dtype
        self.rows = 0
        self.header_size = len(self._header(0))
        handle.write(self._header(0))

    def _header(self, rows: int) -> bytes:
        buffer = io.BytesIO()
        descr = np.lib.format.dtype_to_descr(self.dtype)
        header = {"descr": descr, "fortran_order": False, "shape": (rows, self.width)}
        np.lib.format.write_array_header_1_0(buffer, header)
        return buffer.getvalue()

    def append(self, block: np.ndarray) -> None:
        if block.ndim != 2 or block.shape[1] != self.width or block.dtype != self.dtype:
            raise ValueError(f"expected [T, {self.width}] {self.dtype}, got {block.shape} {block.dtype}")
        self.handle.write(np.ascontiguousarray(block).tobytes())
        self.rows += block.shape[0]

    def finish(self) -> None:
        header = self._header(self.rows)
        if len(header) != self.header_size:
            # The v1 header is padded to 64 bytes, so this needs a row count of 15+ digits.
            raise CorpusError(f"npy header grew from {self.header_size} to {len(header)} bytes")
        self.handle.seek(0)
        self.handle.write(header)


# --------------------------------------------------------------------------------------------------
# Building


def _sentences_digest(sentences: Sequence[Sentence]) -> str:
    digest = hashlib.sha256()
    for s in sentences:
        digest.update(f"{s.id}\x1f{s.text}\x1f{s.split}\x1e".encode())
    return digest.hexdigest()


def _check_sentences(sentences: Sequence[Sentence]) -> None:
    if not sentences:
        raise ValueError("no sentences to render")
    ids = [s.id for s in sentences]
    if len(set(ids)) != len(ids):
        raise ValueError("sentence ids must be unique")
    for s in sentences:
        if s.split not in (TRAIN, HELDOUT):
            raise ValueError(f"sentence {s.id}: split must be {TRAIN!r} or {HELDOUT!r}, got {s.split!r}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", s.id):
            raise ValueError(f"sentence id {s.id!r} must be letters, digits, '_', '.', '-' (it names a file)")
        if not s.text.strip():
            raise ValueError(f"sentence {s.id} is empty")


def _claim_directory(root: Path, settings: CorpusSettings) -> None:
    """Record the settings in a new directory, or refuse a directory holding anything else."""
    settings_path = root / SETTINGS_FILE
    wanted = settings.to_json()
    if settings_path.is_file():
        try:
            found = json.loads(settings_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{settings_path}: unreadable corpus settings ({exc.msg}, line {exc.lineno})") from exc
        if found != wanted:
            keys = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
            raise CorpusSettingsMismatch(
                f"{settings_path}: this directory holds a corpus made with other settings (differs in: "
                f"{', '.join(keys)}); use another --out directory or delete this one"
            )
        return
    if root.exists() and any(root.iterdir()):
        raise CorpusSettingsMismatch(
            f"{root} is not empty and has no {SETTINGS_FILE}: refusing to write a corpus into it"
        )
    root.mkdir(parents=True, exist_ok=True)
    with atomic_write(settings_path) as handle:
        json.dump(wanted, handle, indent=2)
        handle.write("\n")


def _utterance_id(voice: EspeakVoice, sentence: Sentence) -> str:
    return f"{voice.name}-{sentence.id}"


def _read_voice_index(path: Path, voice: EspeakVoice, sentences: Sequence[Sentence]) -> list[Utterance]:
    data = json.loads(path.read_text(encoding="utf-8"))
    utterances = [Utterance(**row) for row in data["utterances"]]
    same_sentences = [u.sentence_id for u in utterances] == [s.id for s in sentences]
    if not same_sentences or any(u.voice != voice.name for u in utterances):
        raise CorpusError(
            f"{path}: the voice index does not match the corpus sentences; delete {path.parent} to rebuild it"
        )
    return utterances


ProgressCallback = Callable[[int, int, str], None]
"""``progress(done, total, voice)`` after every utterance, across all voices."""


def _build_voice(
    root: Path,
    voice: EspeakVoice,
    sentences: Sequence[Sentence],
    settings: CorpusSettings,
    executable: str,
    imap: Callable[[Callable[[_Job], _Result], list[_Job]], Iterator[_Result]],
    on_result: Callable[[], None],
) -> list[Utterance]:
    wav_dir = root / "wavs" / voice.name
    feature_dir = root / "features" / voice.name
    wav_dir.mkdir(parents=True, exist_ok=True)
    feature_dir.mkdir(parents=True, exist_ok=True)
    jobs = [
        _Job(i, s.text, voice, wav_dir / f"{s.id}.wav", settings.audio, settings.peak, executable)
        for i, s in enumerate(sentences)
    ]
    utterances: list[Utterance] = []
    reused = 0
    mel_path, magnitude_path = feature_dir / "log_mel.npy", feature_dir / "magnitude.npy"
    with atomic_write(mel_path, "wb") as mel_handle, atomic_write(magnitude_path, "wb") as magnitude_handle:
        mel_stream = _NpyStream(mel_handle, settings.audio.num_mels, FEATURE_DTYPE)
        magnitude_stream = _NpyStream(magnitude_handle, settings.audio.num_freq, FEATURE_DTYPE)
        for result in imap(_make_utterance, jobs):
            sentence = sentences[result.index]
            utterances.append(
                Utterance(
                    id=_utterance_id(voice, sentence),
                    sentence_id=sentence.id,
                    voice=voice.name,
                    text=sentence.text,
                    split=sentence.split,
                    num_samples=result.num_samples,
                    duration_s=round(result.num_samples / settings.sample_rate, 5),
                    num_frames=result.log_mel.shape[0],
                    frame_offset=mel_stream.rows,
                    wav=str(jobs[result.index].wav_path.relative_to(root)),
                )
            )
            mel_stream.append(result.log_mel)
            magnitude_stream.append(result.magnitude)
            reused += not result.rendered
            on_result()
        mel_stream.finish()
        magnitude_stream.finish()
    if reused:
        logger.info("voice %s: reused %d WAVs from an interrupted run", voice.name, reused)
    with atomic_write(feature_dir / INDEX_FILE) as handle:
        json.dump({"voice": dataclasses.asdict(voice), "dtype": FEATURE_DTYPE.name,
                   "utterances": [dataclasses.asdict(u) for u in utterances]}, handle)
    return utterances


def build_corpus(
    out_dir: str | os.PathLike[str],
    sentences: Sequence[Sentence],
    voices: Sequence[EspeakVoice] = DEFAULT_VOICES,
    sample_rate: int = 16000,
    workers: int = 2,
    *,
    audio: AudioConfig | None = None,
    peak: float = 0.9,
    progress: ProgressCallback | None = None,
) -> CorpusManifest:
    """Render every sentence in every voice into ``out_dir`` (layout in the module docstring).

    Resumable: finished voices and existing WAVs are kept, a finished corpus is returned untouched,
    and a directory made with other settings is refused with :class:`CorpusSettingsMismatch`.
    ``workers`` processes run espeak-ng and the feature extraction (use at most the free cores).
    """
    started = time.perf_counter()
    root = Path(out_dir)
    executable = find_espeak()
    voices = tuple(voices)
    if not voices:
        raise ValueError("need at least one voice")
    check_voices(voices, executable)
    _check_sentences(sentences)
    audio = audio or AudioConfig(sample_rate=sample_rate)
    if audio.sample_rate != sample_rate:
        raise ValueError(f"sample_rate {sample_rate} disagrees with audio.sample_rate {audio.sample_rate}")
    if not 0.0 < peak <= 1.0:
        raise ValueError(f"peak must be in (0, 1], got {peak}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    settings = CorpusSettings(
        voices=voices,
        sentences_sha256=_sentences_digest(sentences),
        num_sentences=len(sentences),
        espeak_version=espeak_version(executable),
        audio=audio,
        peak=peak,
    )
    _claim_directory(root, settings)
    if (root / COMPLETED_FILE).is_file():
        logger.info("%s is complete already; nothing to do", root)
        return load_corpus(root)

    total = len(voices) * len(sentences)
    done = 0
    utterances: list[Utterance] = []
    pending: list[EspeakVoice] = []
    for voice in voices:
        index_path = root / "features" / voice.name / INDEX_FILE
        if index_path.is_file():
            utterances_of_voice = _read_voice_index(index_path, voice, sentences)
            logger.info("voice %s: complete from an earlier run", voice.name)
            utterances.extend(utterances_of_voice)
            done += len(sentences)
            if progress:
                progress(done, total, voice.name)
        else:
            pending.append(voice)

    def run(imap: Callable[[Callable[[_Job], _Result], list[_Job]], Iterator[_Result]]) -> None:
        for voice in pending:
            logger.info("voice %s (%s -p %d -s %d): rendering %d sentences", voice.name, voice.voice, voice.pitch,
                        voice.speed, len(sentences))

            def tick(voice_name: str = voice.name) -> None:
                nonlocal done
                done += 1
                if progress:
                    progress(done, total, voice_name)

            utterances.extend(_build_voice(root, voice, sentences, settings, executable, imap, tick))

    if pending and workers > 1:
        # Not plain fork: the parent may run threads (a progress bar) whose locks fork() would copy
        # mid-flight. A fork server that preloads the heavy imports starts each worker in milliseconds.
        # As with any non-fork pool, a calling script needs the `if __name__ == "__main__":` guard.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["numpy", "scipy.signal", "soundfile", "trtgen.engine.audio"])
        with context.Pool(workers) as pool:
            run(lambda fn, jobs: pool.imap(fn, jobs, chunksize=4))
    elif pending:
        run(lambda fn, jobs: map(fn, jobs))

    order = {v.name: i for i, v in enumerate(voices)}
    utterances.sort(key=lambda u: (order[u.voice], u.frame_offset))
    write_jsonl(root / METADATA_FILE, (dataclasses.asdict(u) for u in utterances))
    elapsed = time.perf_counter() - started
    with atomic_write(root / COMPLETED_FILE) as handle:
        json.dump({"num_utterances": len(utterances), "build_seconds": round(elapsed, 2)}, handle)
        handle.write("\n")
    logger.info("corpus %s: %d utterances in %.1f s", root, len(utterances), elapsed)
    return CorpusManifest(root, settings, utterances, build_seconds=elapsed)


# --------------------------------------------------------------------------------------------------
# Demo style clips


def write_demo_styles(
    out_dir: str | os.PathLike[str],
    voices: Sequence[EspeakVoice] = DEFAULT_VOICES,
    text: str = DEMO_SENTENCE,
    sample_rate: int = 16000,
    *,
    peak: float = 0.9,
    max_bytes: int = 100_000,
) -> list[Path]:
    """One short reference clip per voice (``<voice>.wav``, 16 kHz PCM_16) plus ``styles.json``.

    They ship inside the package as the demo's style references, so each must stay under
    ``max_bytes``; the default text is never part of the generated training sentences.
    """
    executable = find_espeak()
    voices = tuple(voices)
    check_voices(voices, executable)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    audio = AudioConfig(sample_rate=sample_rate)
    paths = []
    entries = []
    for voice in voices:
        pcm = _speak(text, voice, audio, peak, executable)
        size = 44 + 2 * pcm.shape[0]
        if size > max_bytes:
            raise CorpusError(f"{root / (voice.name + '.wav')}: {size} bytes ({pcm.shape[0] / sample_rate:.2f} s) "
                              f"exceeds {max_bytes}; use a shorter text")
        path = root / f"{voice.name}.wav"
        with atomic_path(path) as temporary:
            sf.write(temporary, pcm, sample_rate, subtype="PCM_16", format="WAV")
        paths.append(path)
        entries.append({"file": path.name, "text": text, "duration_s": round(pcm.shape[0] / sample_rate, 3),
                        "espeak": dataclasses.asdict(voice)})
    with atomic_write(root / "styles.json") as handle:
        json.dump({"espeak_version": espeak_version(executable), "sample_rate": sample_rate, "styles": entries},
                  handle, indent=2)
        handle.write("\n")
    return paths


# --------------------------------------------------------------------------------------------------
# Command line: python -m trtgen_export.train.corpus --out DIR


def _main(
    out: Path,
    num_sentences: int,
    workers: int,
    seed: int,
    demo_styles: Path | None,
) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, \
        TimeElapsedColumn, TimeRemainingColumn
    from rich.table import Table

    console = Console()
    sentences = generate_sentences(SentenceSettings(num_sentences=num_sentences, seed=seed))
    heldout = sum(s.split == HELDOUT for s in sentences)
    console.print(f"{len(sentences)} sentences ({len(sentences) - heldout} train, {heldout} held out) "
                  f"x {len(DEFAULT_VOICES)} voices -> {out}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("espeak-ng", total=len(sentences) * len(DEFAULT_VOICES), rate="")
        started = time.perf_counter()

        def progress(done: int, total: int, voice: str) -> None:
            rate = done / max(time.perf_counter() - started, 1e-6)
            bar.update(task, completed=done, description=f"espeak-ng {voice}", rate=f"{rate:.0f} utt/s")

        manifest = build_corpus(out, sentences, DEFAULT_VOICES, workers=workers, progress=progress)
    table = Table(title=f"{out}")
    for name in ("voice", "utterances", "hours", "mean duration s", "frames/char"):
        table.add_column(name, justify="right" if name != "voice" else "left")
    for row in manifest.summary():
        table.add_row(row.voice, str(row.num_utterances), f"{row.hours:.2f}", f"{row.mean_duration_s:.2f}",
                      f"{row.frames_per_char:.2f}")
    console.print(table)
    seconds = f"{manifest.build_seconds:.0f} s" if manifest.build_seconds is not None else "?"
    console.print(f"build time {seconds}, disk {manifest.disk_bytes() / 1e9:.2f} GB")
    if demo_styles is not None:
        paths = write_demo_styles(demo_styles)
        console.print(f"demo styles: {', '.join(f'{p} ({p.stat().st_size} B)' for p in paths)}")


def main(argv: Sequence[str] | None = None) -> None:
    import typer

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.command()
    def corpus(
        out: Path = typer.Option(..., "--out", help="Corpus directory (created; reused only with identical settings)."),
        num_sentences: int = typer.Option(
            SentenceSettings.num_sentences, "--sentences", help="Sentences (train + held out)."
        ),
        workers: int = typer.Option(2, "--workers", help="espeak-ng / feature processes."),
        seed: int = typer.Option(SentenceSettings.seed, "--seed", help="Sentence generator seed."),
        demo_styles: Path | None = typer.Option(None, "--demo-styles", help="Also write the demo style clips here."),
        verbose: bool = typer.Option(False, "--verbose", "-v"),
    ) -> None:
        """Speak generated sentences with espeak-ng in four voices and cache training features."""
        level = logging.DEBUG if verbose else logging.INFO
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        try:
            _main(out, num_sentences, workers, seed, demo_styles)
        except (CorpusError, EspeakError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from exc

    app(args=list(argv) if argv is not None else None, prog_name="python -m trtgen_export.train.corpus")


if __name__ == "__main__":
    # Run the importable module's main, so worker processes unpickle its functions, not __main__'s.
    from trtgen_export.train.corpus import main as _entry

    _entry()
