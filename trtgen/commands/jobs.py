"""The unit of work of ``trtgen generate`` and the one body that renders it, in this process or on a worker.

A :class:`Job` is one utterance of one dataset copy: everything a renderer needs, nothing it must look
up. :func:`render` speaks jobs through a loaded :class:`~trtgen.engine.voice.Voice`, writes each WAV
atomically into its copy directory and yields an :class:`Outcome` per job. ``trtgen generate`` runs it
in its own process (:mod:`trtgen.commands.generate`) or on Ray workers (:mod:`trtgen.commands.cluster`);
both import it from here, so neither imports the other's module.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from trtgen.commands.shards import ShardBuilder, ShardTarget, ShardWritten, shard_member
from trtgen.commands.writers import AudioEncoding, write_utterance_audio
from trtgen.engine.styles import StyleBlend, StyleTokens
from trtgen.engine.rows import Rejected, Row
from trtgen.engine.voice import Voice

__all__ = ["Job", "Outcome", "render", "write_empty_shards"]


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
        shard: the output shard the utterance belongs to (``--layout shar|nemo-tarred``); None: a loose file.
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
    shard: int | None = None


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
    voice: Voice, jobs: Iterable[Job], encoding: AudioEncoding, staging: str | None = None, *, retries: int = 0,
    shards: Mapping[tuple[str, int], ShardTarget] | None = None,
) -> Iterator[Outcome | ShardWritten]:
    """Speak ``jobs`` and store each one's audio (``encoding``: WAV or FLAC, resampled where asked): a loose
    file written atomically into its copy directory (through the staging directory ``staging`` names,
    :func:`~trtgen.commands.writers.staging_dir`), or a member of its shard (``shards`` by copy and
    index), which is written whole once its last job is done (:class:`ShardWritten`, after its jobs'
    outcomes). Yields outcomes as they finish. ``retries``: attempts more at an utterance the quality
    gate fails (:meth:`Voice.stream`)."""
    if encoding.model_rate != voice.sample_rate:
        raise ValueError(f"the encoding expects {encoding.model_rate} Hz, the voice speaks at {voice.sample_rate} Hz")
    builders: dict[tuple[str, int], ShardBuilder] = {}
    spill: tempfile.TemporaryDirectory[str] | None = None
    rows = (Row(job.id, job.text, job.style, job.dropout, job.seed, tag=job) for job in jobs)
    try:
        for result in voice.stream(rows, retries=retries):
            job: Job = result.tag
            builder = None
            if job.shard is not None:
                key = (job.copy, job.shard)
                builder = builders.get(key)
                if builder is None:
                    spill = spill or tempfile.TemporaryDirectory(prefix="trtgen-shards-")
                    builder = builders[key] = ShardBuilder((shards or {})[key], Path(spill.name))
            if isinstance(result, Rejected):
                yield Outcome(job, reject=result.reason)
                if builder is not None:
                    builder.add(job.id, None)
            else:
                started = time.perf_counter()
                quality = None if result.quality is None else result.quality.to_json()
                if builder is None:
                    written = write_utterance_audio(Path(job.directory), job.audio, result.audio, encoding, staging)
                    digest, size, status = written.sha256, written.size_bytes, written.status
                else:
                    data, samples = encoding.encode_counted(result.audio)
                    digest, size, status = hashlib.sha256(data).hexdigest(), len(data), (0, 0)
                    keep = quality is None or quality["ok"]
                    builder.add(job.id, shard_member(
                        job.id, job.copy, result.text, _clip_of(job.style), data, samples, encoding.extension, encoding.sample_rate,
                        {"dropout": job.dropout, "style_mode": (result.style_draw or {}).get("mode", "clip"), "attempt": result.attempt},
                    ) if keep else None)
                voice.times.add("writing", time.perf_counter() - started)
                yield Outcome(
                    job, frames=result.frames, steps=result.steps, duration_s=result.duration_s, stopped=result.stopped,
                    text=result.text, audio_sha256=digest, audio_bytes=size, audio_status=status,
                    quality=quality, attempt=result.attempt, style_draw=result.style_draw,
                )
            if builder is not None and builder.complete:
                started = time.perf_counter()
                del builders[(job.copy, job.shard)]  # type: ignore[arg-type]
                shard = builder.write()
                voice.times.add("writing", time.perf_counter() - started)
                yield shard
    finally:
        for builder in builders.values():
            builder.discard()
        if spill is not None:
            spill.cleanup()


def write_empty_shards(targets: Iterable[ShardTarget]) -> Iterator[ShardWritten]:
    """Shards none of whose rows is left to speak (every one rejected while the list was read)."""
    with tempfile.TemporaryDirectory(prefix="trtgen-shards-") as spill:
        for target in targets:
            yield ShardBuilder(target, Path(spill)).write()


def _clip_of(style: str | StyleBlend | StyleTokens) -> str:
    """The list row's own style clip, whatever the copy's style mode drew from it."""
    if isinstance(style, StyleBlend):
        return str(style.first)
    if isinstance(style, StyleTokens):
        return str(style.clip)
    return str(style)
