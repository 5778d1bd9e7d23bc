"""``trtgen manifest``: training manifests that put real and synthetic audio side by side.

Formats (written to ``output_dir``):

* ``openseq2seq``: ``synthetic_data.csv`` as OpenSeq2Seq's nsr_create_syn_train_csv.py writes it
  (docs/openseq2seq-notes.md §7.1): header ``wav_filename,wav_filesize,transcript``, the copy directory replaced by ``{}``
  so ``syn_enable``/``syn_subdirs`` pick a copy per read, transcripts normalised exactly as NSR does;
  but with the real file size (of the first selected copy) instead of -1. A ``{}`` row is written only
  for an utterance whose file name and transcript are the same in every selected copy; one whose
  transcript (or file name) differs between copies (copies made from different versions of the list)
  gets one explicit row per copy, which ``Speech2TextDataLayer`` reads as it stands (it calls
  ``filename.format(choice)``, which leaves a path without braces unchanged). Utterances missing from
  some copies are left out and reported. An utterance that failed the quality check in some copies
  gets explicit rows for the copies where it passed.
* ``nemo``: JSON lines ``{"audio_filepath", "duration", "text", "sampling_rate", "id", "synthetic", ...}``:
  ``nemo_synthetic.jsonl`` (one line per copy and utterance, plus ``utterance_id``, ``copy``, ``style``,
  ``dropout``, ``style_mode``, ``attempt``, ``quality_ok``) and ``nemo_real.jsonl``. ``sampling_rate``
  makes NeMo's Lhotse reader name each cut by its file's full path instead of its stem, which every copy
  of an utterance shares (README "Manifests").
* ``lhotse``: ``lhotse_{real,synthetic}_{recordings,supervisions}.jsonl.gz`` and the same joined as cuts,
  ``lhotse_{real,synthetic}_cuts.jsonl.gz``; the supervision speaker is the M-AILABS style speaker, and
  its ``custom`` carries the fields NeMo's lines carry beyond the transcript.
* ``--mix P``: ``openseq2seq_mix.csv`` / ``nemo_mix.jsonl`` holding every real utterance once and
  ``round(R * (1 - P) / P)`` synthetic rows, so that the real fraction is P (0.5 = 50/50) in every
  epoch, for trainers without ``syn_enable``. See :func:`plan_mix`; a draw of a copy where its utterance
  failed the quality check takes another copy where it passed. OpenSeq2Seq reads WAV only: real FLAC
  rows are converted to WAV under ``real_wav/`` when asked (``flac_to_wav``), else refused. Beside them,
  ``nemo_input_cfg.yaml`` (and ``nemo_input_cfg_lhotse.yaml`` over the cut manifests) let NeMo's Lhotse
  data loader draw the same fraction by weight, without a physical mix (docs/generating.md, "Mixing by
  weight in NeMo").

**Data worth training on.** An utterance whose record says its quality check failed
(:class:`~trtgen.corpora.synthetic.Quality`; a record of an earlier trtgen: when it was capped) is left
out of every manifest and listed in ``rejects.jsonl`` with its reasons, one reject per copy and
utterance; ``keep_failed`` keeps it, flagged ``quality_ok: false``. Either way they are counted per copy
and reason (:class:`FailedUtterances`). Every synthetic entry says ``synthetic: true``, every real one
``synthetic: false``, so a trainer can tell them apart.

A synthetic utterance's id is ``<utterance id>_<copy>`` in every manifest (a real one keeps its own), so
ids are unique across copies and between real and synthetic rows. Every synthetic file's header, length
and size are checked against its record first; a file that disagrees stops the writing (nothing is
listed damaged). Durations always come from the audio files' headers; paths are absolute unless
``relative_to`` is set.

**Sharded copies** (``trtgen generate --layout shar|nemo-tarred``, under the same root as copies of
loose files, or under an object-storage URL) are read by trainers as they are: they get no
per-utterance rows, but ``nemo_tarred.yaml`` (NeMo's tarred-dataset keys, one block per copy) and
``lhotse_shar.yaml`` (``shar_path``), and with ``--mix`` their own entries in ``nemo_input_cfg.yaml`` and
``nemo_input_cfg_lhotse.yaml`` (``type: nemo_tarred`` / ``lhotse_shar``), weighted by utterances
(:mod:`trtgen.commands.manifest_lines`). Their utterances, durations and failed counts come from their
commit records; each shard's files are checked against its record (sizes; ``verify``: digests), and a
damaged shard, a gap in the numbering or (Shar) a file in the Shar directory no commit names stops the
writing, as a damaged file does. OpenSeq2Seq reads loose WAV files only: sharded and FLAC copies are left
out of its outputs with a note (refused when nothing else was asked for), and the physical mixes
(``nemo_mix.jsonl``, ``openseq2seq_mix.csv``) draw from the copies of loose files only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import soundfile as sf

from trtgen.commands.manifest_lines import (
    NEMO_PATTERN_CHARACTERS, PathRenderer, RealFile, SynFile, header_of, input_cfg_entry, lhotse_cut, lhotse_real_supervision,
    lhotse_recording, lhotse_synthetic_supervision, nemo_real, nemo_synthetic, nemo_tarred_settings, nsr_normalize, shar_settings,
    size_or_minus_one, synthetic_id, write_input_cfg, yaml_mapping,
)
from trtgen.commands.shard_formats import shard_files
from trtgen.commands.shards import commit_name
from trtgen.commands.synthetic_check import (
    AudioProbeError, ShardedScan, SyntheticRoot, busy_copy, damaged_problem, expected_rate, file_problem, passed, probe_audio,
    scan_sharded_copy,
)
from trtgen.corpora.base import Reject, log_rejects, write_rejects
from trtgen.corpora.librispeech import read_librispeech
from trtgen.corpora.synthetic import SETTINGS_FILE, SyntheticCopy, manifest_id, read_synthetic, record_files, record_lines, recorded_quality
from trtgen.fileio import atomic_path, atomic_write, write_jsonl
from trtgen.storage import Storage, is_url
from trtgen.errors import UsageError
from trtgen.progress import Progress, StepProgress

logger = logging.getLogger(__name__)

__all__ = [
    "FORMATS",
    "ManifestOptions",
    "ManifestResult",
    "FailedUtterances",
    "DamagedAudioError",
    "MixDraw",
    "plan_mix",
    "write_manifests",
]

FORMATS: tuple[str, ...] = ("openseq2seq", "nemo", "lhotse")
NEMO_TARRED_YAML = "nemo_tarred.yaml"
LHOTSE_SHAR_YAML = "lhotse_shar.yaml"
SYNTHETIC_CSV = "synthetic_data.csv"
OPENSEQ2SEQ_HEADER = "wav_filename,wav_filesize,transcript"
REAL_WAV_DIR = "real_wav"
"""Where ``flac_to_wav`` puts WAV copies of real FLAC files, inside the manifests' directory."""


@dataclass(frozen=True)
class ManifestOptions:
    """Which copies, which formats, and how to mix."""

    copies: tuple[str, ...] | None = None
    """Copy sub-directories to use; None = every copy under the synthetic root."""
    formats: tuple[str, ...] = FORMATS
    mix: float | None = None
    """Fraction of real rows in the mixed manifest (0.5 = 50/50); None = no mixed manifest."""
    seed: int = 0
    relative_to: Path | None = None
    """Write paths relative to this directory instead of absolute."""
    splits: str | tuple[str, ...] | None = None
    """Splits of LibriSpeech tree sources given as real data (None = the three training splits)."""
    language: str = "English"
    """Lhotse supervision language."""
    flac_to_wav: bool = False
    """Convert the real rows of ``openseq2seq_mix.csv`` that are not WAV (LibriSpeech's FLAC) to WAV under
    ``<output>/real_wav/``; without it such a mix is refused (OpenSeq2Seq reads WAV only)."""
    duration_tolerance_s: float = 0.02
    """Seconds a synthetic file's duration may differ from its record."""
    verify: bool = False
    """Digest every synthetic file against its record; by default only files changed since their
    records file was written are digested (:func:`trtgen.corpora.synthetic.audio_problem`)."""
    keep_failed: bool = False
    """Keep the utterances that failed the quality check, flagged ``quality_ok: false`` (still counted);
    by default they are left out of every manifest and listed in ``rejects.jsonl``."""


class DamagedAudioError(UsageError):
    """Synthetic files missing, unreadable or not matching their records: no manifest is written (exit 2)."""


@dataclass(frozen=True)
class MixDraw:
    """One row of the mixed manifest: a real utterance, or a synthetic utterance of one copy."""

    real: bool
    index: int
    """Index into the real utterances, or into the synthetic (templated) utterances."""
    copy: int = -1
    """Copy index of a synthetic row."""


def plan_mix(num_real: int, num_synthetic: int, num_copies: int, real_fraction: float, seed: int) -> list[MixDraw]:
    """Rows of a mixed epoch: each real utterance once plus ``round(R (1-P) / P)`` synthetic draws, shuffled.

    Synthetic draws go through a fresh permutation of the synthetic utterances each pass, and their
    copies are spread evenly (counts differ by at most one); the result depends only on the arguments.
    """
    if not 0.0 < real_fraction < 1.0:
        raise UsageError(f"the mix ratio is the fraction of real rows and must be in (0, 1), got {real_fraction}")
    if num_real <= 0:
        raise UsageError("a mixed manifest needs real utterances (--real)")
    num_draws = int(round(num_real * (1.0 - real_fraction) / real_fraction))
    if num_draws and (num_synthetic <= 0 or num_copies <= 0):
        raise UsageError("a mixed manifest needs synthetic utterances present in every selected copy")
    rng = np.random.default_rng(seed)
    passes = math.ceil(num_draws / num_synthetic) if num_draws else 0
    utterances = np.concatenate([rng.permutation(num_synthetic) for _ in range(passes)])[:num_draws] if passes else np.zeros(0, np.int64)
    copies = rng.permutation(np.arange(num_draws) % max(num_copies, 1))
    rows = [MixDraw(True, i) for i in range(num_real)]
    rows += [MixDraw(False, int(u), int(c)) for u, c in zip(utterances.tolist(), copies.tolist())]
    order = rng.permutation(len(rows))
    return [rows[i] for i in order.tolist()]


UNSPECIFIED_REASON = "unspecified"
"""The reason counted for a failed quality check whose record names none."""


@dataclass
class FailedUtterances:
    """Utterances that failed the quality check, per copy and per reason (one utterance may have several)."""

    kept: bool = False
    """Kept in the manifests (``keep_failed``), or left out of them."""
    per_copy: dict[str, int] = field(default_factory=dict)
    """Failed utterances of each selected copy (0 included)."""
    per_copy_and_reason: dict[str, dict[str, int]] = field(default_factory=dict)
    in_shards: int = 0
    """Failed utterances of sharded copies: never in their shards, so left out even when ``kept``."""

    @property
    def total(self) -> int:
        return sum(self.per_copy.values())

    @property
    def left_out(self) -> int:
        """Failed utterances left out of the manifests: a run that left some out exits 1."""
        return self.in_shards if self.kept else self.total

    @property
    def per_reason(self) -> dict[str, int]:
        """Failed utterances per reason over every copy, the most frequent first."""
        counts: Counter[str] = Counter()
        for by_reason in self.per_copy_and_reason.values():
            counts.update(by_reason)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def to_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "total": self.total, "left_out": self.left_out, "per_copy": self.per_copy,
                "per_reason": self.per_reason, "per_copy_and_reason": self.per_copy_and_reason, "in_shards": self.in_shards}


@dataclass
class ManifestResult:
    """What :func:`write_manifests` wrote, what it left out (``rejects``, ``failed``) and its counts."""

    files: dict[str, Path] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    openseq2seq_config: list[str] = field(default_factory=list)
    """Lines to add to an OpenSeq2Seq ASR config (printed by the CLI)."""
    counts: dict[str, Any] = field(default_factory=dict)
    failed: FailedUtterances = field(default_factory=FailedUtterances)
    """Utterances that failed the quality check (also in ``counts["failed"]``)."""
    notes: list[str] = field(default_factory=list)
    """What was left out of which output and why, one line each (printed by the CLI)."""


def _scan_copies(copies: list[SyntheticCopy], tolerance_s: float, progress: Progress | None) -> tuple[list[dict[str, SynFile]], list[str]]:
    """Per copy: id -> file, its header checked against its record; and the files that are missing,
    unreadable or disagree with their records (``path: problem``)."""
    bar = StepProgress(progress, "reading synthetic audio headers", sum(len(c.records) for c in copies))
    result = []
    damaged: list[str] = []
    for copy in copies:
        files: dict[str, SynFile] = {}
        sample_rate = expected_rate(copy)
        for d in copy.damaged.values():
            path = copy.directory / d.record.audio
            damaged.append(f"{path}: {damaged_problem(d, path, sample_rate, tolerance_s)}")
        for record in copy.records.values():
            path = copy.directory / record.audio
            bar.step()
            info, problem = file_problem(record, path, sample_rate, tolerance_s)
            if problem is not None or info is None:
                damaged.append(f"{path}: {problem}")
                continue
            files[record.id] = SynFile(record, path, info, info.size_bytes)
        result.append(files)
    return result, damaged


def _raise_damaged(damaged: list[str], shards: list[str]) -> None:
    """Refuse (exit 2) to list damaged audio: files that disagree with their records, shards that disagree
    with their commit records or are missing from the numbering."""
    if damaged or shards:
        what = " and ".join(
            ([f"{len(damaged)} synthetic file(s)"] if damaged else []) + ([f"{len(shards)} shard file(s) or shard(s)"] if shards else []))
        every = damaged + shards
        shown = "; ".join(every[:5]) + (f"; and {len(every) - 5} more" if len(every) > 5 else "")
        raise DamagedAudioError(
            f"{what} do not match their records, so no manifest was written: {shown}. "
            "`trtgen manifest --check` lists every problem; `trtgen generate ... --resume` (the same list and copies) makes those files again"
        )


def _leave_out_failed(
    copies: list[SyntheticCopy], files: list[dict[str, SynFile]], keep_failed: bool, rejects: list[Reject]
) -> tuple[list[dict[str, SynFile]], FailedUtterances]:
    """Per copy, the files that go into the manifests (those whose quality check passed, or every one
    with ``keep_failed``), and the count of those that failed; each one left out becomes a reject."""
    failed = FailedUtterances(kept=keep_failed)
    usable: list[dict[str, SynFile]] = []
    for copy, per_copy in zip(copies, files):
        reasons: Counter[str] = Counter()
        kept: dict[str, SynFile] = {}
        for utterance_id, f in per_copy.items():
            quality = f.record.quality
            if quality.ok or keep_failed:
                kept[utterance_id] = f
            if quality.ok:
                continue
            named = quality.reasons or (UNSPECIFIED_REASON,)
            reasons.update(dict.fromkeys(named, 1))
            failed.per_copy[copy.name] = failed.per_copy.get(copy.name, 0) + 1
            if not keep_failed:
                rejects.append(Reject(
                    f.record.source, f.record.line,
                    f"copy {copy.name}: failed the quality check ({', '.join(named)}): left out of every manifest (--keep-failed keeps it)",
                    utterance_id,
                ))
        failed.per_copy.setdefault(copy.name, 0)
        failed.per_copy_and_reason[copy.name] = dict(sorted(reasons.items()))
        usable.append(kept)
    return usable, failed


@dataclass(frozen=True)
class _Selection:
    """Which synthetic utterances go where in the OpenSeq2Seq CSV: ``common`` are present in every copy
    and usable in at least one (the mix draws from them), ``templated`` the common ones usable in every
    copy with one file name and one transcript (one ``{}`` row each), ``explicit`` the other common ones
    with the copies that get a row (those where the utterance is usable)."""

    common: list[str]
    templated: list[str]
    explicit: list[tuple[str, tuple[int, ...]]]


def _select_templated(
    copies: list[SyntheticCopy], files: list[dict[str, SynFile]], usable: list[dict[str, SynFile]], rejects: list[Reject]
) -> _Selection:
    """Sort the utterances into :class:`_Selection`; those missing from some copies, or whose file name
    cannot go into a CSV, are reported and left out. ``usable`` are the files that go into manifests (a
    failed quality check in one copy must not take the utterance's other copies out)."""
    names = [c.name for c in copies]
    every = sorted(set().union(*(f.keys() for f in files)))
    common: list[str] = []
    templated: list[str] = []
    explicit: list[tuple[str, tuple[int, ...]]] = []
    for utterance_id in every:
        present = [i for i, f in enumerate(files) if utterance_id in f]
        first = files[present[0]][utterance_id].record
        if len(present) < len(files):
            absent = [names[i] for i in range(len(files)) if i not in present]
            rejects.append(Reject(first.source, first.line, f"missing or unreadable in copies {', '.join(absent)}: left out of the OpenSeq2Seq rows", utterance_id))
            continue
        records = [f[utterance_id].record for f in files]
        if any(ch in r.audio for r in records for ch in "{},\n"):
            rejects.append(Reject(first.source, first.line, "file name contains '{', '}' or ',' and cannot go into an OpenSeq2Seq CSV", utterance_id))
            continue
        usable_in = tuple(i for i, per_copy in enumerate(usable) if utterance_id in per_copy)
        if not usable_in:
            continue  # failed in every copy: each copy's reject says so
        common.append(utterance_id)
        same = len({r.audio for r in records}) == 1 and len({nsr_normalize(r.text) for r in records}) == 1
        if same and len(usable_in) == len(files):
            templated.append(utterance_id)
        else:
            explicit.append((utterance_id, usable_in))
    return _Selection(common, templated, explicit)


def _usable_draws(plan: list[MixDraw], usable: list[dict[str, SynFile]], ids: list[str]) -> list[MixDraw]:
    """The plan with each synthetic draw of a copy where its utterance failed the quality check moved to
    the copy, among those where it passed, with the fewest draws so far (ties: the next in selection
    order): every utterance usable somewhere stays in the mix as often as the others, and the copies
    stay nearly even."""
    draws_per_copy = [0] * len(usable)
    result = []
    for draw in plan:
        if not draw.real and ids[draw.index] not in usable[draw.copy]:
            order = [(draw.copy + step) % len(usable) for step in range(1, len(usable))]
            passed = [c for c in order if ids[draw.index] in usable[c]]  # never empty: _select_templated keeps those out
            draw = dataclasses.replace(draw, copy=min(passed, key=lambda c: draws_per_copy[c]))
        if not draw.real:
            draws_per_copy[draw.copy] += 1
        result.append(draw)
    return result


def _check_output_dir(out: Path, root: Path) -> None:
    """Refuse (exit 2) a manifest directory inside a copy directory, where ``rejects.jsonl`` and the
    manifests would overwrite or mix with the copy's own files."""
    if not root.is_dir():
        return
    for directory in root.iterdir():
        if directory.is_dir() and (record_files(directory) or (directory / SETTINGS_FILE).is_file()):
            if out == directory or directory in out.parents:
                raise UsageError(f"--out {out} is inside the copy directory {directory}: write the manifests elsewhere")


def _refuse_busy(copies: list[str], root: SyntheticRoot) -> None:
    """Refuse (exit 2) copies that a ``trtgen generate`` run is writing now: their records are not final."""
    for name in copies:
        holders = busy_copy(root.copy(name))
        if holders:
            raise UsageError(f"copy {name} is being written now ({holders}): write the manifests when that run has finished")


@dataclass
class _ShardedCopy:
    """A sharded copy as the manifests use it: its scan, where trainers find it, and its commit records' counts."""

    scan: ShardedScan
    base: str
    """The copy's location as the configs write it (a path, absolute or relative, or a URL)."""
    utterances: int
    """Members of its shards (the committed records that passed the quality check)."""
    duration_s: float
    ids: list[str]

    @property
    def name(self) -> str:
        return self.scan.name

    @property
    def layout(self) -> str:
        return self.scan.layout

    @property
    def shards(self) -> int:
        return self.scan.count

    def settings(self) -> dict[str, Any]:
        """The keys that name its shards: NeMo's tarred-dataset keys, or ``shar_path``."""
        if self.layout == "nemo-tarred":
            return nemo_tarred_settings(self.base, self.shards)
        return shar_settings(self.base, self.shards)

    def input_cfg(self, weight: float) -> dict[str, Any]:
        if self.layout == "nemo-tarred":
            keys = {k: v for k, v in self.settings().items() if k in ("manifest_filepath", "tarred_audio_filepaths")}
            return input_cfg_entry("nemo_tarred", keys, weight, True)
        return input_cfg_entry("lhotse_shar", self.settings(), weight, True)

    def summary(self) -> dict[str, Any]:
        return {"layout": self.layout, "location": self.base, "shards": self.shards, "utterances": self.utterances,
                "duration_s": round(self.duration_s, 3)}


def _read_sharded(root: SyntheticRoot, names: list[str], options: ManifestOptions, render: PathRenderer, progress: Progress | None,
                  result: ManifestResult, damaged: list[str]) -> list[_ShardedCopy]:
    """The selected sharded copies with their shards checked against their commit records (sizes; with
    ``verify`` digests). What would make a trainer read wrong or missing data goes to ``damaged`` (a
    damaged shard, a gap in the numbering, an unreadable commit record, and in a Shar directory, which
    trainers read whole, a file no commit names); failed utterances become rejects."""
    copies = []
    for name in names:
        storage = root.copy(name)
        scan = scan_sharded_copy(storage, name, verify=options.verify, progress=progress)
        damaged.extend(scan.unreadable)
        damaged.extend(problem for k in sorted(scan.damaged) for problem in scan.damaged[k])
        damaged.extend(f"{storage.url(commit_name(k))}: shard {k} of copy {name} is missing (no commit record) though shard "
                       f"{scan.count - 1} is committed: a trainer's _OP_0..{scan.count - 1}_CL_ pattern would name it" for k in scan.gaps)
        shar_directory = shard_files("shar", 0)[0].rpartition("/")[0]
        if scan.layout == "shar" and shar_directory:
            inside = [f for k in sorted(scan.uncommitted) for f in scan.uncommitted[k]] + scan.strays
            damaged.extend(f"{storage.url(f)}: no commit record names this file, and trainers read {storage.url(shar_directory)} whole"
                           for f in inside if f.startswith(shar_directory + "/"))
        later = sorted(k for k in scan.uncommitted if k >= scan.count)
        if later:
            result.notes.append(
                f"copy {name}: shard(s) {', '.join(map(str, later))} were never committed (a run was killed): not listed; "
                "trtgen generate --resume finishes them"
            )
        if not scan.commits:
            result.notes.append(f"copy {name}: no committed shard yet (trtgen generate --resume writes them): left out")
            continue
        base = render.location(storage)
        if scan.layout == "nemo-tarred" and (any(c in base for c in NEMO_PATTERN_CHARACTERS) or "_OP_" in base or "_CL_" in base):
            raise UsageError(
                f"copy {name}: its location {base} holds one of {' '.join(NEMO_PATTERN_CHARACTERS)} _OP_ _CL_, which NeMo's shard "
                "patterns turn into braces or split at: move the copy (or write paths with --relative-to)"
            )
        kept = [r for r in scan.records() if passed(r)]
        duration = sum(float(r["duration_s"]) for r in kept if isinstance(r.get("duration_s"), (int, float)))
        ids = [manifest_id(str(r.get("id")), name) for r in scan.records()]
        copies.append(_ShardedCopy(scan, base, len(kept), duration, ids))
    return copies


def _leave_out_failed_in_shards(sharded: list[_ShardedCopy], failed: FailedUtterances, rejects: list[Reject]) -> None:
    """Count the failed utterances of sharded copies (from their commit records) and list each as a reject:
    their shards never held them, so ``keep_failed`` cannot keep them."""
    for copy in sharded:
        reasons: Counter[str] = Counter()
        count = 0
        for k in sorted(copy.scan.commits):
            for record in copy.scan.commits[k].records:
                if passed(record):
                    continue
                try:
                    named = tuple(recorded_quality(record).reasons) or (UNSPECIFIED_REASON,)
                except ValueError as error:
                    named = (f"unreadable quality: {error}",)
                reasons.update(dict.fromkeys(named, 1))
                count += 1
                rejects.append(Reject(
                    copy.scan.storage.url(commit_name(k)), None,
                    f"copy {copy.name}: failed the quality check ({', '.join(named)}): not in its shard (a shard holds only utterances "
                    "that passed), so in no manifest" + (" (--keep-failed cannot keep it)" if failed.kept else ""),
                    str(record.get("id")),
                ))
        failed.per_copy[copy.name] = count
        failed.per_copy_and_reason[copy.name] = dict(sorted(reasons.items()))
        failed.in_shards += count


def _is_wav_copy(copy: SyntheticCopy) -> bool:
    """Whether every file of a copy is a WAV (OpenSeq2Seq reads nothing else)."""
    if str(copy.settings.get("audio_format", "wav")).lower() != "wav":
        return False
    return all(r.audio.lower().endswith(".wav") for r in (*copy.records.values(), *(d.record for d in copy.damaged.values())))


def _read_real(
    sources: Sequence[str | Path], splits: Any, need_info: bool, progress: Progress | None, rejects: list[Reject]
) -> tuple[list[RealFile], list[str]]:
    """Real utterances (with headers read if needed) and the librivox CSVs among the sources."""
    if not sources:
        return [], []
    corpus = read_librispeech(sources, splits)
    rejects.extend(corpus.rejects)
    csvs = [s for s in corpus.sources if s.endswith(".csv")]
    bar = StepProgress(progress, "reading real audio headers", len(corpus.utterances)) if need_info else None
    real: list[RealFile] = []
    for utt in corpus.utterances:
        if not need_info:
            real.append(RealFile(utt, None))
            continue
        bar.step()  # type: ignore[union-attr]
        if utt.audio is None:
            rejects.append(Reject(utt.source, utt.line, "no audio path", utt.id))
            continue
        try:
            real.append(RealFile(utt, probe_audio(utt.audio)))
        except AudioProbeError as exc:
            rejects.append(Reject(utt.source, utt.line, f"real audio {exc.kind}: {utt.audio}", utt.id))
    return real, csvs


def write_manifests(
    synthetic_dir: str | Path,
    output_dir: str | Path,
    real: Sequence[str | Path] = (),
    options: ManifestOptions = ManifestOptions(),
    progress: Progress | None = None,
) -> ManifestResult:
    """Write the requested manifests for the synthetic copies under ``synthetic_dir`` (a directory, or an
    object-storage URL holding sharded copies) and the real data."""
    formats = tuple(dict.fromkeys(options.formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UsageError(f"unknown manifest format(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    if options.mix is not None:
        if not real:
            raise UsageError("--mix needs the real data (--real)")
        if not 0.0 < options.mix < 1.0:
            raise UsageError(f"--mix is the fraction of real rows and must be in (0, 1), got {options.mix}")
    root = SyntheticRoot.at(synthetic_dir)
    out = _output_directory(output_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: a file, not a directory")
    if root.path is not None:
        _check_output_dir(out, root.path)
    render = PathRenderer(options.relative_to)
    result = ManifestResult()
    rejects = result.rejects

    names = root.names(options.copies)
    _refuse_busy(names, root)
    files_names = [n for n in names if not root.sharded(n)]
    copies: list[SyntheticCopy] = []
    if files_names:
        assert root.path is not None
        lines = sum(record_lines(root.path / name) for name in files_names)
        bar = StepProgress(progress, "checking synthetic audio against its records", lines)
        copies = read_synthetic(root.path, files_names, verify=options.verify, step=bar.step)
    for copy in copies:
        rejects.extend(copy.rejects)
    files, damaged = _scan_copies(copies, options.duration_tolerance_s, progress)
    damaged_shards: list[str] = []
    sharded = _read_sharded(root, [n for n in names if root.sharded(n)], options, render, progress, result, damaged_shards)
    _raise_damaged(damaged, damaged_shards)
    usable, result.failed = _leave_out_failed(copies, files, options.keep_failed, rejects)
    _leave_out_failed_in_shards(sharded, result.failed, rejects)
    selection = _select_templated(copies, files, usable, rejects)
    mix_ids = selection.common
    o2s = _openseq2seq_view(formats, copies, files, usable, selection, sharded, result.notes)
    physical_mix = options.mix is not None and bool(copies)
    if options.mix is not None and sharded:
        result.notes.append(
            (f"the physical mixes draw their synthetic rows from the copies of loose files ({', '.join(c.name for c in copies)}) only; "
             if copies else "no physical mix (nemo_mix.jsonl, openseq2seq_mix.csv): every selected copy is sharded; ")
            + f"the sharded copies ({', '.join(c.name for c in sharded)}) are mixed by weight in the input_cfg files"
        )
    openseq2seq_mix = physical_mix and o2s is not None
    need_real_info = bool({"nemo", "lhotse"} & set(formats)) or openseq2seq_mix
    real_files, real_csvs = _read_real(real, options.splits, need_real_info, progress, rejects)
    not_wav = [r for r in real_files if r.utterance.audio is not None and r.utterance.audio.suffix.lower() != ".wav"]
    if openseq2seq_mix and not_wav and not options.flac_to_wav:
        raise UsageError(
            f"openseq2seq_mix.csv: OpenSeq2Seq reads WAV only, and {len(not_wav)} real file(s) are not WAV (first: "
            f"{not_wav[0].utterance.audio}); add --flac-to-wav to convert them under {out / REAL_WAV_DIR}, give --real "
            "librivox-*.csv files of WAVs (OpenSeq2Seq's import_librivox.py), or leave openseq2seq out of --formats"
        )
    if o2s is not None:
        assert root.path is not None
        base = render(root.path)
        if any(ch in base for ch in "{},"):
            raise UsageError(f"synthetic root {base} contains '{{', '}}' or ',' and cannot be an OpenSeq2Seq template")
    synthetic = [f for per_copy in usable for f in _sorted(per_copy)]
    every_file = [f for per_copy in files for f in per_copy.values()]  # failed ones too: ids never depend on quality
    _check_unique([synthetic_id(f.record) for f in every_file] + [i for c in sharded for i in c.ids] + [r.utterance.id for r in real_files],
                  "synthetic and real rows together")
    if physical_mix and {"openseq2seq", "nemo"} & set(formats) and not mix_ids and result.failed.left_out:
        raise UsageError(
            f"a mixed manifest needs synthetic utterances present in every selected copy and passing the quality check in "
            f"one at least; {result.failed.left_out} failed it ({', '.join(result.failed.per_reason)}): --keep-failed keeps them"
        )
    if options.mix is not None and sharded and not copies and not any(c.utterances for c in sharded):
        raise UsageError(f"a mix needs synthetic utterances, and the shards of {', '.join(c.name for c in sharded)} hold none")
    out.mkdir(parents=True, exist_ok=True)

    if o2s is not None:
        path = out / SYNTHETIC_CSV
        with atomic_write(path, "w", newline="\n") as handle:
            handle.write(OPENSEQ2SEQ_HEADER + "\n")
            for utterance_id in o2s.selection.templated:
                first = o2s.files[0][utterance_id]
                handle.write(f"{base}/{{}}/{first.record.audio},{first.size},{nsr_normalize(first.record.text)}\n")
            for utterance_id, usable_in in o2s.selection.explicit:
                for index in usable_in:
                    f = o2s.usable[index][utterance_id]
                    handle.write(f"{render(f.path)},{f.size},{nsr_normalize(f.record.text)}\n")
        result.files["openseq2seq"] = path
        result.openseq2seq_config = _openseq2seq_config(path, real_csvs, [c.name for c in o2s.copies], bool(real) and not real_csvs, render)

    if "nemo" in formats:
        if copies:
            result.files["nemo_synthetic"] = out / "nemo_synthetic.jsonl"
            write_jsonl(result.files["nemo_synthetic"], (nemo_synthetic(f, render) for f in synthetic))
        if real:
            result.files["nemo_real"] = out / "nemo_real.jsonl"
            write_jsonl(result.files["nemo_real"], (nemo_real(r, render) for r in real_files))

    if "lhotse" in formats:
        if copies:
            result.files["lhotse_synthetic_recordings"] = out / "lhotse_synthetic_recordings.jsonl.gz"
            result.files["lhotse_synthetic_supervisions"] = out / "lhotse_synthetic_supervisions.jsonl.gz"
            write_jsonl(result.files["lhotse_synthetic_recordings"], (lhotse_recording(synthetic_id(f.record), f.path, f.info, render) for f in synthetic))
            write_jsonl(result.files["lhotse_synthetic_supervisions"], (lhotse_synthetic_supervision(f, options.language) for f in synthetic))
        if real:
            result.files["lhotse_real_recordings"] = out / "lhotse_real_recordings.jsonl.gz"
            result.files["lhotse_real_supervisions"] = out / "lhotse_real_supervisions.jsonl.gz"
            write_jsonl(result.files["lhotse_real_recordings"], (lhotse_recording(r.utterance.id, r.utterance.audio, r.info, render) for r in real_files))  # type: ignore[arg-type]
            write_jsonl(result.files["lhotse_real_supervisions"], (lhotse_real_supervision(r, options.language) for r in real_files))
        if copies:
            result.files["lhotse_synthetic_cuts"] = out / "lhotse_synthetic_cuts.jsonl.gz"
            write_jsonl(result.files["lhotse_synthetic_cuts"], (
                lhotse_cut(lhotse_recording(synthetic_id(f.record), f.path, f.info, render), lhotse_synthetic_supervision(f, options.language))
                for f in synthetic
            ))
        if real:
            result.files["lhotse_real_cuts"] = out / "lhotse_real_cuts.jsonl.gz"
            write_jsonl(result.files["lhotse_real_cuts"], (
                lhotse_cut(lhotse_recording(r.utterance.id, r.utterance.audio, r.info, render), lhotse_real_supervision(r, options.language))  # type: ignore[arg-type]
                for r in real_files
            ))

    if sharded and {"nemo", "lhotse"} & set(formats):
        _write_sharded_settings(out, sharded, result)

    if physical_mix and {"openseq2seq", "nemo"} & set(formats):
        wav_files = _convert_to_wav(real_files, out / REAL_WAV_DIR, progress, rejects) if openseq2seq_mix and not_wav else real_files
        if len(wav_files) < len(real_files):  # the mix draws the same real rows in both formats
            converted = {r.utterance.id for r in wav_files}
            real_files = [r for r in real_files if r.utterance.id in converted]
        assert options.mix is not None
        plan = _usable_draws(plan_mix(len(real_files), len(mix_ids), len(copies), options.mix, options.seed), usable, mix_ids)
        result.counts["mix_real"] = sum(1 for d in plan if d.real)
        result.counts["mix_synthetic"] = len(plan) - result.counts["mix_real"]
        per_copy = [0] * len(copies)
        for d in plan:
            if not d.real:
                per_copy[d.copy] += 1
        result.counts["mix_synthetic_per_copy"] = {c.name: n for c, n in zip(copies, per_copy)}
        if openseq2seq_mix:
            assert o2s is not None
            o2s_plan = plan if o2s.copies is copies else _usable_draws(
                plan_mix(len(real_files), len(o2s.selection.common), len(o2s.copies), options.mix, options.seed), o2s.usable, o2s.selection.common)
            path = out / "openseq2seq_mix.csv"
            with atomic_write(path, "w", newline="\n") as handle:
                handle.write(OPENSEQ2SEQ_HEADER + "\n")
                for d in o2s_plan:
                    handle.write(_openseq2seq_mix_line(d, wav_files, o2s.usable, o2s.selection.common, render) + "\n")
            result.files["openseq2seq_mix"] = path
        if "nemo" in formats:
            result.files["nemo_mix"] = out / "nemo_mix.jsonl"
            rows = [
                nemo_real(real_files[d.index], render) if d.real else nemo_synthetic(usable[d.copy][mix_ids[d.index]], render)
                for d in plan
            ]
            rows = _number_repeats(rows)
            _check_unique([row["id"] for row in rows], "nemo_mix.jsonl")
            write_jsonl(result.files["nemo_mix"], rows)
    if options.mix is not None:  # the same fraction, drawn by NeMo's data loader from the manifests as they are
        weights = {"real": options.mix, "synthetic": 1.0 - options.mix}
        for fmt, kind, key, real_name, synthetic_name in (
            ("nemo", "nemo", "manifest_filepath", "nemo_real", "nemo_synthetic"),
            ("lhotse", "lhotse", "cuts_path", "lhotse_real_cuts", "lhotse_synthetic_cuts"),
        ):
            if fmt not in formats:
                continue
            name = "nemo_input_cfg" if fmt == "nemo" else "nemo_input_cfg_lhotse"
            result.files[name] = out / f"{name}.yaml"
            entries = [input_cfg_entry(kind, {key: render(result.files[real_name])}, weights["real"], False)]
            entries += _synthetic_entries(kind, key, result.files.get(synthetic_name), len(synthetic), sharded, weights["synthetic"], render)
            write_input_cfg(result.files[name], entries, weights, tarred=bool(sharded))

    result.counts.update({
        "copies": names,
        "synthetic_files": sum(len(f) for f in files),
        "synthetic_rows": len(synthetic),
        "sharded": {c.name: c.summary() for c in sharded},
        "sharded_utterances": sum(c.utterances for c in sharded),
        "failed": result.failed.to_dict(),
        "templated_utterances": len(selection.templated),
        "per_copy_utterances": len(selection.explicit),
        "real_utterances": len(real_files),
        "rejects": len(rejects),
    })
    result.files["rejects"] = out / "rejects.jsonl"
    write_rejects(result.files["rejects"], rejects)
    log_rejects(rejects, "manifest rows")
    with atomic_write(out / "manifest.json") as handle:
        json.dump({
            "schema": 1, "synthetic": root.url(), "real": [str(Path(r).expanduser().absolute()) for r in real],
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
            "counts": result.counts, "files": {k: str(v) for k, v in result.files.items()}, "notes": result.notes,
        }, handle, indent=2)
        handle.write("\n")
    result.files["summary"] = out / "manifest.json"
    return result


def _output_directory(output_dir: str | Path) -> Path:
    """``--out``: a directory, or a ``file://`` URL naming one. The manifests name local files (real
    audio, copies of loose files, ``real_wav/``), so they are written on this machine: object storage is
    refused (exit 2) with the way to put them there."""
    if is_url(str(output_dir)):
        storage = Storage.at(str(output_dir))
        if not storage.is_local:
            raise UsageError(
                f"--out {output_dir}: manifests are written to a directory on this machine (they name local files); write them "
                "to a directory and copy it to object storage afterwards (sharded copies there are named by their URLs)"
            )
        return storage.path.expanduser().absolute()
    return Path(output_dir).expanduser().absolute()


@dataclass(frozen=True)
class _OpenSeq2SeqView:
    """The copies OpenSeq2Seq's outputs are made of (the WAV copies of loose files) and their selection."""

    copies: list[SyntheticCopy]
    files: list[dict[str, SynFile]]
    usable: list[dict[str, SynFile]]
    selection: _Selection


def _openseq2seq_view(formats: tuple[str, ...], copies: list[SyntheticCopy], files: list[dict[str, SynFile]], usable: list[dict[str, SynFile]],
                      selection: _Selection, sharded: list[_ShardedCopy], notes: list[str]) -> _OpenSeq2SeqView | None:
    """What the OpenSeq2Seq outputs are made of, or None when they are not written. OpenSeq2Seq reads
    loose WAV files only: a sharded or FLAC copy is left out of them with a note, and when no copy is
    left they are not written (a note), or refused (exit 2) when nothing else was asked for."""
    if "openseq2seq" not in formats:
        return None
    why = {c.name: f"written as shards (--layout {c.layout})" for c in sharded}
    why.update({c.name: "FLAC (--audio-format flac)" for c in copies if not _is_wav_copy(c)})
    wav = [i for i, c in enumerate(copies) if c.name not in why]
    if why and not wav:
        name = next(iter(why))
        if formats == ("openseq2seq",):
            raise UsageError(
                f"--formats openseq2seq: OpenSeq2Seq reads loose WAV files, and copy {name} is {why[name]}: make it with "
                "--layout files --audio-format wav, or ask for --formats nemo,lhotse"
            )
        notes.append("openseq2seq: not written: OpenSeq2Seq reads loose WAV files, and "
                     + "; ".join(f"copy {n} is {w}" for n, w in why.items()) + " (--layout files --audio-format wav makes copies it reads)")
        return None
    if not why:
        return _OpenSeq2SeqView(copies, files, usable, selection)
    notes.append("openseq2seq: " + "; ".join(f"copy {n} ({w})" for n, w in why.items())
                 + " left out: OpenSeq2Seq reads loose WAV files (--layout files --audio-format wav)")
    subset = [copies[i] for i in wav]
    if len(subset) == len(copies):
        return _OpenSeq2SeqView(copies, files, usable, selection)
    picked_files, picked_usable = [files[i] for i in wav], [usable[i] for i in wav]
    return _OpenSeq2SeqView(subset, picked_files, picked_usable, _select_templated(subset, picked_files, picked_usable, []))


def _synthetic_entries(kind: str, key: str, manifest: Path | None, rows: int, sharded: list[_ShardedCopy], weight: float,
                       render: PathRenderer) -> list[dict[str, Any]]:
    """The synthetic side of an ``input_cfg``: the manifest of the copies of loose files, then one entry per
    sharded copy, sharing ``weight`` in proportion to their utterances (each usable (utterance, copy) row
    equally likely); without sharded copies one entry of the whole weight, as always."""
    if not sharded:
        return [input_cfg_entry(kind, {key: render(manifest)}, weight, True)] if manifest is not None else []
    total = rows + sum(c.utterances for c in sharded)
    entries = []
    if manifest is not None and rows:
        entries.append(input_cfg_entry(kind, {key: render(manifest)}, weight * rows / total, True))
    entries.extend(c.input_cfg(weight * c.utterances / total) for c in sharded if c.utterances)
    return entries


_SHARDED_SETTINGS = {
    "nemo-tarred": ("nemo_tarred", NEMO_TARRED_YAML, (
        "# NeMo tarred audio datasets written by trtgen generate --layout nemo-tarred, one per copy: copy a block into\n"
        "# model.train_ds (or pass model.train_ds.<key>=<value>). shard_manifests: each rank reads its own shards' manifests;\n"
        "# NeMo expands the manifest pattern once torch.distributed is up, and its Lhotse loader (model.train_ds.use_lhotse=true)\n"
        "# always. To train on several copies at once use Lhotse: nemo_input_cfg.yaml (trtgen manifest --mix) lists each.\n"
    )),
    "shar": ("lhotse_shar", LHOTSE_SHAR_YAML, (
        "# Lhotse Shar datasets written by trtgen generate --layout shar, one per copy: CutSet.from_shar(in_dir=shar_path),\n"
        "# or in NeMo model.train_ds.use_lhotse=true model.train_ds.shar_path=<shar_path>.\n"
    )),
}
"""Per shard layout: the result's key, the file, and its header."""


def _write_sharded_settings(out: Path, sharded: list[_ShardedCopy], result: ManifestResult) -> None:
    """``nemo_tarred.yaml`` and ``lhotse_shar.yaml``: the keys that read each sharded copy as it is."""
    for layout, (key, name, header) in _SHARDED_SETTINGS.items():
        blocks = {c.name: c.settings() for c in sharded if c.layout == layout}
        if blocks:
            path = out / name
            with atomic_write(path, "w", newline="\n") as handle:
                handle.write(header + yaml_mapping(blocks))
            result.files[key] = path


def _number_repeats(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A mixed manifest may draw one synthetic file twice (more draws than files): the second draw's id
    gets ``#2``, the third ``#3``..."""
    seen: Counter[str] = Counter()
    for row in rows:
        seen[row["id"]] += 1
        if seen[row["id"]] > 1:
            row["id"] = f"{row['id']}#{seen[row['id']]}"
    return rows


def _check_unique(ids: list[str], what: str) -> None:
    """Refuse ids that repeat (a real id equal to a synthetic one, say): a trainer would merge their rows."""
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise UsageError(f"manifest ids of {what}: {len(repeated)} would repeat, e.g. {repeated[0]!r}; rename those utterances")


def _convert_to_wav(real_files: list[RealFile], directory: Path, progress: Progress | None, rejects: list[Reject]) -> list[RealFile]:
    """WAV copies (same samples, same bit depth) of the real files that are not WAV, for OpenSeq2Seq;
    a copy already there with the right length is kept, so a rerun converts nothing again."""
    todo = [r for r in real_files if r.utterance.audio is not None and r.utterance.audio.suffix.lower() != ".wav"]
    bar = StepProgress(progress, "converting real audio to WAV", len(todo))
    directory.mkdir(parents=True, exist_ok=True)
    converted: list[RealFile] = []
    for r in real_files:
        source = r.utterance.audio
        if source is None or source.suffix.lower() == ".wav":
            converted.append(r)
            continue
        bar.step()
        target = directory / f"{r.utterance.id}.wav"
        try:
            info = probe_audio(target) if target.exists() else None
            if info is None or info.num_samples != header_of(r.info).num_samples:
                subtype = sf.info(str(source)).subtype
                samples, rate = sf.read(str(source), dtype="int32", always_2d=True)
                with atomic_path(target) as temporary:
                    sf.write(temporary, samples, rate, subtype=subtype if subtype.startswith("PCM_") else "PCM_16", format="WAV")
                info = probe_audio(target)
        except (RuntimeError, AudioProbeError) as exc:  # sf.LibsndfileError is a RuntimeError
            rejects.append(Reject(r.utterance.source, r.utterance.line, f"real audio could not be converted to WAV: {source} ({exc})", r.utterance.id))
            continue
        converted.append(RealFile(dataclasses.replace(r.utterance, audio=target, filesize=info.size_bytes), info))
    return converted


def _sorted(files: dict[str, SynFile]) -> list[SynFile]:
    return [files[k] for k in sorted(files)]


def _openseq2seq_config(path: Path, real_csvs: list[str], copies: list[str], real_is_tree: bool, render: PathRenderer) -> list[str]:
    real_lines = [f'    "{render(Path(c))}",' for c in real_csvs]
    if real_is_tree or not real_csvs:
        real_lines.append('    # your librivox-*.csv files (WAV, from OpenSeq2Seq scripts/import_librivox.py),')
    return [
        '"dataset_files": [',
        *real_lines,
        f'    "{render(path)}",',
        "],",
        '"syn_enable": True,',
        f'"syn_subdirs": [{", ".join(json.dumps(c) for c in copies)}],',
    ]


def _openseq2seq_mix_line(d: MixDraw, real: list[RealFile], files: list[dict[str, SynFile]], ids: list[str], render: PathRenderer) -> str:
    if d.real:
        utt = real[d.index].utterance
        info = real[d.index].info
        size = utt.filesize if utt.filesize is not None else (info.size_bytes if info is not None else size_or_minus_one(utt.audio))
        return f"{render(utt.audio) if utt.audio else ''},{size},{nsr_normalize(utt.text)}"
    f = files[d.copy][ids[d.index]]
    return f"{render(f.path)},{f.size},{nsr_normalize(f.record.text)}"
