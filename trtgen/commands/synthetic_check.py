"""``trtgen manifest --check``: does every file of a synthetic copy still match its record?

A record names its WAV with the sample rate, length, size and SHA-256 it was written with
(docs/generating.md); this module reads a file's header (no samples decoded) and says what is wrong
with it, for the check and for :mod:`trtgen.commands.manifests`, which refuses to list damaged audio.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import soundfile as sf

from trtgen.commands.copylock import lock_holders
from trtgen.commands.writers import STAGING
from trtgen.corpora.synthetic import SyntheticCopy, SyntheticRecord, read_synthetic
from trtgen.fileio import sha256_file
from trtgen.engine.config import AudioConfig
from trtgen.fileio import TEMPORARY_GLOB
from trtgen.progress import Progress, StepProgress

logger = logging.getLogger(__name__)

__all__ = ["AudioInfo", "AudioProbeError", "probe_audio", "expected_rate", "file_problem", "CheckProblem", "CheckReport", "check_synthetic"]


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says."""

    sample_rate: int
    num_samples: int
    channels: int
    size_bytes: int

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate


class AudioProbeError(Exception):
    """An audio file that is missing or cannot be read; ``kind`` is ``missing`` or ``unreadable``."""

    def __init__(self, path: Path, kind: str, detail: str = "") -> None:
        self.path = path
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {path}" + (f" ({detail})" if detail else ""))


def probe_audio(path: str | Path) -> AudioInfo:
    """Sample rate, length and size of an audio file from its header (no samples are decoded)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise AudioProbeError(p, "missing") from None
    except OSError as exc:
        raise AudioProbeError(p, "unreadable", str(exc)) from None
    try:
        info = sf.info(str(p))
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:  # LibsndfileError subclasses RuntimeError
        raise AudioProbeError(p, "unreadable", str(exc).strip()) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioProbeError(p, "unreadable", f"{info.frames} samples at {info.samplerate} Hz")
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels), size)


def expected_rate(copy: SyntheticCopy) -> int:
    """The copy's sample rate from its ``settings.json`` (16 kHz if it names none)."""
    if copy.sample_rate is None:
        logger.info("copy %s: no sample rate in settings.json, expecting %d Hz", copy.name, AudioConfig().sample_rate)
        return AudioConfig().sample_rate
    return copy.sample_rate


def file_problem(
    record: SyntheticRecord, path: Path, sample_rate: int, tolerance_s: float, *, digest: bool
) -> tuple[AudioInfo | None, str | None]:
    """The file's header and what is wrong with it against its record (None: nothing): missing,
    unreadable, another sample rate, wrong length or size, or (``digest``) altered content."""
    try:
        info = probe_audio(path)
    except AudioProbeError as exc:
        return None, f"{exc.kind} ({exc.detail})" if exc.detail else exc.kind
    if info.sample_rate != sample_rate:
        return info, f"sample rate {info.sample_rate} Hz, expected {sample_rate} Hz"
    if record.duration_s is not None and abs(info.duration_s - record.duration_s) > tolerance_s:
        return info, f"wrong length: {info.duration_s:.3f} s in the file, {record.duration_s:.3f} s in the record"
    if record.audio_bytes is not None and info.size_bytes != record.audio_bytes:
        return info, f"wrong size: {info.size_bytes} bytes in the file, {record.audio_bytes} in the record"
    if digest and record.audio_sha256 is not None:
        try:
            if sha256_file(path) != record.audio_sha256:
                return info, "altered content: the file's SHA-256 is not the record's"
        except OSError as error:
            return info, f"unreadable ({error.strerror or error})"
    return info, None


@dataclass(frozen=True)
class CheckProblem:
    """A record whose file does not match it, a stray WAV, a temporary leftover, or a copy being written."""

    copy: str
    id: str
    path: str
    problem: str


@dataclass
class CheckReport:
    checked: int = 0
    problems: list[CheckProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_synthetic(
    synthetic_dir: str | Path,
    copies: Sequence[str] | None = None,
    *,
    duration_tolerance_s: float = 0.02,
    progress: Progress | None = None,
) -> CheckReport:
    """Every record whose file is missing, unreadable, at another sample rate, of another length or size,
    or whose content no longer has the record's SHA-256; malformed record lines; WAVs no record names
    (strays) and temporary files a killed run left behind. A copy being written now is named, not checked.

    The expected rate is the copy's ``settings.json`` rate (default 16 kHz); the duration is compared
    with the record's ``duration_s`` within ``duration_tolerance_s``."""
    report = CheckReport()
    selected = read_synthetic(Path(synthetic_dir).expanduser().absolute(), copies)
    bar = StepProgress(progress, "checking synthetic audio", sum(len(c.records) for c in selected))
    for copy in selected:
        holders = lock_holders(copy.directory)
        if holders:
            report.problems.append(CheckProblem(
                copy.name, "-", str(copy.directory),
                f"being written now ({'; '.join(str(h) for h in holders)}): check it when that run has finished",
            ))
            for _ in copy.records:
                bar.step()
            continue
        for reject in copy.rejects:
            report.problems.append(CheckProblem(copy.name, reject.item, reject.source, f"line {reject.line}: {reject.reason}"))
        sample_rate = expected_rate(copy)
        for record in copy.records.values():
            bar.step()
            report.checked += 1
            path = copy.directory / record.audio
            _, problem = file_problem(record, path, sample_rate, duration_tolerance_s, digest=True)
            if problem is not None:
                report.problems.append(CheckProblem(copy.name, record.id, str(path), problem))
        named = {record.audio for record in copy.records.values()}
        for path in sorted(copy.directory.glob("*.wav")):
            if path.name not in named:
                report.problems.append(CheckProblem(copy.name, path.stem, str(path), "stray: no record names this file"))
        leftovers = [*copy.directory.glob(TEMPORARY_GLOB), *(p for p in (copy.directory / STAGING).rglob("*") if p.is_file())]
        for path in sorted(leftovers):
            report.problems.append(CheckProblem(
                copy.name, "-", str(path), "temporary file left by a run that was killed (trtgen generate --resume removes it)",
            ))
    return report
