"""``trtgen manifest --check``: does every file of a synthetic copy still match its record?

A record names its WAV with the sample rate, length, size and SHA-256 it was written with
(docs/generating.md). :func:`trtgen.corpora.synthetic.read_copy` resolves each id to the record that
describes its file (size and digest); this module adds what a file's header says (no samples
decoded), for the check and for :mod:`trtgen.commands.manifests`, which refuses to list damaged audio.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import soundfile as sf

from trtgen.commands.copylock import lock_holders
from trtgen.commands.writers import STAGING
from trtgen.corpora.synthetic import Damaged, SyntheticCopy, SyntheticRecord, list_copies, read_synthetic, record_lines
from trtgen.engine.config import AudioConfig
from trtgen.fileio import TEMPORARY_GLOB
from trtgen.progress import Progress, StepProgress

logger = logging.getLogger(__name__)

__all__ = ["AudioInfo", "AudioProbeError", "probe_audio", "expected_rate", "file_problem", "damaged_problem", "CheckProblem", "CheckReport", "check_synthetic"]


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


def file_problem(record: SyntheticRecord, path: Path, sample_rate: int, tolerance_s: float) -> tuple[AudioInfo | None, str | None]:
    """The file's header and what is wrong with it against its record (None: nothing): missing,
    unreadable, another sample rate, or another length. Size and digest are
    :func:`~trtgen.corpora.synthetic.read_copy`'s to check."""
    try:
        info = probe_audio(path)
    except AudioProbeError as exc:
        return None, f"{exc.kind} ({exc.detail})" if exc.detail else exc.kind
    if info.sample_rate != sample_rate:
        return info, f"sample rate {info.sample_rate} Hz, expected {sample_rate} Hz"
    if record.duration_s is not None and abs(info.duration_s - record.duration_s) > tolerance_s:
        return info, f"wrong length: {info.duration_s:.3f} s in the file, {record.duration_s:.3f} s in the record"
    return info, None


def damaged_problem(damaged: Damaged, path: Path, sample_rate: int, tolerance_s: float) -> str:
    """What to say of a record whose file is not the one it describes: what the header shows when it
    shows something (unreadable, another rate or length), else the size or digest mismatch."""
    _, header = file_problem(damaged.record, path, sample_rate, tolerance_s)
    return header or damaged.problem


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
    """Every utterance whose file is missing, unreadable, at another sample rate, of another length or
    size, or whose content no longer has its record's SHA-256 (every file is digested); malformed record
    lines; WAVs no record names (strays) and temporary files a killed run left behind. A copy being
    written now is named, not checked.

    The expected rate is the copy's ``settings.json`` rate (default 16 kHz); the duration is compared
    with the record's ``duration_s`` within ``duration_tolerance_s``."""
    report = CheckReport()
    root = Path(synthetic_dir).expanduser().absolute()
    names = list(copies) if copies is not None else list_copies(root)
    busy = {name for name in names if lock_holders(root / name)}
    for name in sorted(busy):
        holders = lock_holders(root / name)
        report.problems.append(CheckProblem(
            name, "-", str(root / name),
            f"being written now ({'; '.join(str(h) for h in holders)}): check it when that run has finished",
        ))
    wanted = [n for n in names if n not in busy]
    if not wanted:
        return report
    bar = StepProgress(progress, "checking synthetic audio", sum(record_lines(root / name) for name in wanted))
    for copy in read_synthetic(root, wanted, verify=True, step=bar.step):
        for reject in copy.rejects:
            report.problems.append(CheckProblem(copy.name, reject.item, reject.source, f"line {reject.line}: {reject.reason}"))
        sample_rate = expected_rate(copy)
        for utterance_id, damaged in copy.damaged.items():
            report.checked += 1
            path = copy.directory / damaged.record.audio
            report.problems.append(CheckProblem(copy.name, utterance_id, str(path), damaged_problem(damaged, path, sample_rate, duration_tolerance_s)))
        for record in copy.records.values():
            report.checked += 1
            path = copy.directory / record.audio
            _, problem = file_problem(record, path, sample_rate, duration_tolerance_s)
            if problem is not None:
                report.problems.append(CheckProblem(copy.name, record.id, str(path), problem))
        named = {record.audio for record in copy.records.values()} | {d.record.audio for d in copy.damaged.values()}
        for path in sorted(copy.directory.glob("*.wav")):
            if path.name not in named:
                report.problems.append(CheckProblem(copy.name, path.stem, str(path), "stray: no record names this file"))
        leftovers = [*copy.directory.glob(TEMPORARY_GLOB), *(p for p in (copy.directory / STAGING).rglob("*") if p.is_file())]
        for path in sorted(leftovers):
            report.problems.append(CheckProblem(
                copy.name, "-", str(path), "temporary file left by a run that was killed (trtgen generate --resume removes it)",
            ))
    return report

