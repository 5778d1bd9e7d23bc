"""The unit of work of ``trtgen generate`` and the one body that renders it, in this process or on a worker.

A :class:`Job` is one utterance of one dataset copy: everything a renderer needs, nothing it must look
up. :func:`render` speaks jobs through a loaded :class:`~trtgen.engine.voice.Voice`, writes each WAV
atomically into its copy directory and yields an :class:`Outcome` per job. ``trtgen generate`` runs it
in its own process (:mod:`trtgen.commands.generate`) or on Ray workers (:mod:`trtgen.commands.cluster`);
both import it from here, so neither imports the other's module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from trtgen.commands.writers import write_utterance_wav
from trtgen.engine.styles import StyleBlend, StyleTokens
from trtgen.engine.rows import Rejected, Row
from trtgen.engine.voice import Voice

__all__ = ["Job", "Outcome", "render"]


@dataclass(frozen=True)
class Job:
    """One utterance of one copy, as the renderer (this process or a cluster worker) needs it.

    Attributes:
        index: the row's index in the list.
        id: the utterance id (keys its random streams with ``seed``).
        text: the list row's text.
        style: absolute path of the style clip, or the style a copy's mode drew from it
            (:mod:`trtgen.engine.styles`).
        copy: the copy's name; ``dropout`` and ``seed`` are the copy's.
        directory: the copy directory the WAV goes to.
        audio: the WAV's file name in that directory.
        inputs_sha256: digest of everything that determines the audio; its record carries it, so
            ``--resume`` sees a changed row (:func:`trtgen.commands.generate.inputs_digest`).
    """

    index: int
    id: str
    text: str
    style: str | StyleBlend | StyleTokens
    copy: str
    dropout: float
    seed: int
    directory: str
    audio: str
    inputs_sha256: str = ""


@dataclass(frozen=True)
class Outcome:
    """What became of a :class:`Job`: written (frames, duration, the WAV's digest and file status) or
    rejected with a reason.

    Attributes:
        text: the transcript the audio speaks (:attr:`~trtgen.engine.rows.Speech.text`), for the record.
        audio_sha256, audio_bytes: digest and size of the WAV as written, taken where it was written.
        audio_status: ``(inode, ctime_ns)`` of the WAV right after it was renamed into place: the writer
            compares it at the end of the run to be sure nothing changed the file since (see
            docs/generating.md, "One record per utterance").
        quality: the quality gate's verdict as the record carries it (``ok``, ``reasons``, ``signals``).
        attempt: which try this is (``--retries`` speaks a failed utterance again).
        style_draw: what a copy's style mode drew (None for ``clip``).
    """

    job: Job
    reject: str | None = None
    frames: int = 0
    steps: int = 0
    duration_s: float = 0.0
    stopped: bool = False
    text: str = ""
    audio_sha256: str = ""
    audio_bytes: int = 0
    audio_status: tuple[int, int] = (0, 0)
    quality: dict[str, Any] | None = None
    attempt: int = 1
    style_draw: dict[str, Any] | None = None


def render(
    voice: Voice, jobs: Iterable[Job], sample_format: str, staging: str | None = None, *, retries: int = 0
) -> Iterator[Outcome]:
    """Speak ``jobs`` and write each WAV atomically into its copy directory (through the staging directory
    ``staging`` names, :func:`~trtgen.commands.writers.staging_dir`); yields outcomes as they finish.
    ``retries``: attempts more at an utterance the quality gate fails (:meth:`Voice.stream`)."""
    rows = (Row(job.id, job.text, job.style, job.dropout, job.seed, tag=job) for job in jobs)
    for result in voice.stream(rows, retries=retries):
        job: Job = result.tag
        if isinstance(result, Rejected):
            yield Outcome(job, reject=result.reason)
            continue
        started = time.perf_counter()
        written = write_utterance_wav(Path(job.directory), job.audio, result.audio, voice.sample_rate, sample_format, staging)
        voice.times.add("writing", time.perf_counter() - started)
        yield Outcome(
            job, frames=result.frames, steps=result.steps, duration_s=result.duration_s, stopped=result.stopped,
            text=result.text, audio_sha256=written.sha256, audio_bytes=written.size_bytes, audio_status=written.status,
            quality=None if result.quality is None else result.quality.to_json(), attempt=result.attempt,
            style_draw=result.style_draw,
        )
