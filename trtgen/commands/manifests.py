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

from trtgen.commands.copylock import lock_holders
from trtgen.commands.manifest_lines import (
    PathRenderer, RealFile, SynFile, header_of, lhotse_cut, lhotse_real_supervision, lhotse_recording, lhotse_synthetic_supervision,
    nemo_real, nemo_synthetic, nsr_normalize, size_or_minus_one, synthetic_id, write_input_cfg,
)
from trtgen.commands.synthetic_check import AudioProbeError, damaged_problem, expected_rate, file_problem, probe_audio
from trtgen.corpora.base import Reject, log_rejects, write_rejects
from trtgen.corpora.librispeech import read_librispeech
from trtgen.corpora.synthetic import SETTINGS_FILE, SyntheticCopy, list_copies, read_synthetic, record_files, record_lines
from trtgen.fileio import atomic_path, atomic_write, write_jsonl
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

    @property
    def total(self) -> int:
        return sum(self.per_copy.values())

    @property
    def left_out(self) -> int:
        """Failed utterances left out of the manifests: a run that left some out exits 1."""
        return 0 if self.kept else self.total

    @property
    def per_reason(self) -> dict[str, int]:
        """Failed utterances per reason over every copy, the most frequent first."""
        counts: Counter[str] = Counter()
        for by_reason in self.per_copy_and_reason.values():
            counts.update(by_reason)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def to_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "total": self.total, "left_out": self.left_out, "per_copy": self.per_copy,
                "per_reason": self.per_reason, "per_copy_and_reason": self.per_copy_and_reason}


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


def _scan_copies(copies: list[SyntheticCopy], tolerance_s: float, progress: Progress | None) -> list[dict[str, SynFile]]:
    """Per copy: id -> file, its header checked against its record; raises :class:`DamagedAudioError`
    naming the files that are missing, unreadable or disagree with their records."""
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
    if damaged:
        shown = "; ".join(damaged[:5]) + (f"; and {len(damaged) - 5} more" if len(damaged) > 5 else "")
        raise DamagedAudioError(
            f"{len(damaged)} synthetic file(s) do not match their records, so no manifest was written: {shown}. "
            "`trtgen manifest --check` lists every problem; `trtgen generate ... --resume` (the same list and copies) makes those files again"
        )
    return result


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


def _refuse_busy(copies: list[str], root: Path) -> None:
    """Refuse (exit 2) copies that a ``trtgen generate`` run is writing now: their records are not final."""
    for name in copies:
        holders = lock_holders(root / name)
        if holders:
            raise UsageError(
                f"copy {name} is being written now ({'; '.join(str(h) for h in holders)}): write the manifests when that run has finished"
            )


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
    """Write the requested manifests for the synthetic copies under ``synthetic_dir`` (and the real data)."""
    formats = tuple(dict.fromkeys(options.formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UsageError(f"unknown manifest format(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    if options.mix is not None:
        if not real:
            raise UsageError("--mix needs the real data (--real)")
        if not 0.0 < options.mix < 1.0:
            raise UsageError(f"--mix is the fraction of real rows and must be in (0, 1), got {options.mix}")
    root = Path(synthetic_dir).expanduser().absolute()
    out = Path(output_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: a file, not a directory")
    _check_output_dir(out, root)
    render = PathRenderer(options.relative_to)
    result = ManifestResult()
    rejects = result.rejects

    names = list(options.copies) if options.copies is not None else list_copies(root)
    _refuse_busy(names, root)
    lines = sum(record_lines(root / name) for name in names)
    bar = StepProgress(progress, "checking synthetic audio against its records", lines)
    copies = read_synthetic(root, options.copies, verify=options.verify, step=bar.step)
    for copy in copies:
        rejects.extend(copy.rejects)
    files = _scan_copies(copies, options.duration_tolerance_s, progress)
    usable, result.failed = _leave_out_failed(copies, files, options.keep_failed, rejects)
    selection = _select_templated(copies, files, usable, rejects)
    mix_ids = selection.common
    openseq2seq_mix = options.mix is not None and "openseq2seq" in formats
    need_real_info = bool({"nemo", "lhotse"} & set(formats)) or openseq2seq_mix
    real_files, real_csvs = _read_real(real, options.splits, need_real_info, progress, rejects)
    not_wav = [r for r in real_files if r.utterance.audio is not None and r.utterance.audio.suffix.lower() != ".wav"]
    if openseq2seq_mix and not_wav and not options.flac_to_wav:
        raise UsageError(
            f"openseq2seq_mix.csv: OpenSeq2Seq reads WAV only, and {len(not_wav)} real file(s) are not WAV (first: "
            f"{not_wav[0].utterance.audio}); add --flac-to-wav to convert them under {out / REAL_WAV_DIR}, give --real "
            "librivox-*.csv files of WAVs (OpenSeq2Seq's import_librivox.py), or leave openseq2seq out of --formats"
        )
    if "openseq2seq" in formats:
        base = render(root)
        if any(ch in base for ch in "{},"):
            raise UsageError(f"synthetic root {base} contains '{{', '}}' or ',' and cannot be an OpenSeq2Seq template")
    synthetic = [f for per_copy in usable for f in _sorted(per_copy)]
    every_file = [f for per_copy in files for f in per_copy.values()]  # failed ones too: ids never depend on quality
    _check_unique([synthetic_id(f.record) for f in every_file] + [r.utterance.id for r in real_files], "synthetic and real rows together")
    if options.mix is not None and {"openseq2seq", "nemo"} & set(formats) and not mix_ids and result.failed.left_out:
        raise UsageError(
            f"a mixed manifest needs synthetic utterances present in every selected copy and passing the quality check in "
            f"one at least; {result.failed.left_out} failed it ({', '.join(result.failed.per_reason)}): --keep-failed keeps them"
        )
    out.mkdir(parents=True, exist_ok=True)

    if "openseq2seq" in formats:
        path = out / SYNTHETIC_CSV
        with atomic_write(path, "w", newline="\n") as handle:
            handle.write(OPENSEQ2SEQ_HEADER + "\n")
            for utterance_id in selection.templated:
                first = files[0][utterance_id]
                handle.write(f"{base}/{{}}/{first.record.audio},{first.size},{nsr_normalize(first.record.text)}\n")
            for utterance_id, usable_in in selection.explicit:
                for index in usable_in:
                    f = usable[index][utterance_id]
                    handle.write(f"{render(f.path)},{f.size},{nsr_normalize(f.record.text)}\n")
        result.files["openseq2seq"] = path
        result.openseq2seq_config = _openseq2seq_config(path, real_csvs, [c.name for c in copies], bool(real) and not real_csvs, render)

    if "nemo" in formats:
        result.files["nemo_synthetic"] = out / "nemo_synthetic.jsonl"
        write_jsonl(result.files["nemo_synthetic"], (nemo_synthetic(f, render) for f in synthetic))
        if real:
            result.files["nemo_real"] = out / "nemo_real.jsonl"
            write_jsonl(result.files["nemo_real"], (nemo_real(r, render) for r in real_files))

    if "lhotse" in formats:
        result.files["lhotse_synthetic_recordings"] = out / "lhotse_synthetic_recordings.jsonl.gz"
        result.files["lhotse_synthetic_supervisions"] = out / "lhotse_synthetic_supervisions.jsonl.gz"
        write_jsonl(result.files["lhotse_synthetic_recordings"], (lhotse_recording(synthetic_id(f.record), f.path, f.info, render) for f in synthetic))
        write_jsonl(result.files["lhotse_synthetic_supervisions"], (lhotse_synthetic_supervision(f, options.language) for f in synthetic))
        if real:
            result.files["lhotse_real_recordings"] = out / "lhotse_real_recordings.jsonl.gz"
            result.files["lhotse_real_supervisions"] = out / "lhotse_real_supervisions.jsonl.gz"
            write_jsonl(result.files["lhotse_real_recordings"], (lhotse_recording(r.utterance.id, r.utterance.audio, r.info, render) for r in real_files))  # type: ignore[arg-type]
            write_jsonl(result.files["lhotse_real_supervisions"], (lhotse_real_supervision(r, options.language) for r in real_files))
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

    if options.mix is not None and {"openseq2seq", "nemo"} & set(formats):
        wav_files = _convert_to_wav(real_files, out / REAL_WAV_DIR, progress, rejects) if openseq2seq_mix and not_wav else real_files
        if len(wav_files) < len(real_files):  # the mix draws the same real rows in both formats
            converted = {r.utterance.id for r in wav_files}
            real_files = [r for r in real_files if r.utterance.id in converted]
        plan = _usable_draws(plan_mix(len(real_files), len(mix_ids), len(copies), options.mix, options.seed), usable, mix_ids)
        result.counts["mix_real"] = sum(1 for d in plan if d.real)
        result.counts["mix_synthetic"] = len(plan) - result.counts["mix_real"]
        per_copy = [0] * len(copies)
        for d in plan:
            if not d.real:
                per_copy[d.copy] += 1
        result.counts["mix_synthetic_per_copy"] = {c.name: n for c, n in zip(copies, per_copy)}
        if "openseq2seq" in formats:
            path = out / "openseq2seq_mix.csv"
            with atomic_write(path, "w", newline="\n") as handle:
                handle.write(OPENSEQ2SEQ_HEADER + "\n")
                for d in plan:
                    handle.write(_openseq2seq_mix_line(d, wav_files, usable, mix_ids, render) + "\n")
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
        if "nemo" in formats:
            result.files["nemo_input_cfg"] = out / "nemo_input_cfg.yaml"
            write_input_cfg(result.files["nemo_input_cfg"], "nemo", "manifest_filepath", {
                "real": result.files["nemo_real"], "synthetic": result.files["nemo_synthetic"]}, weights, render)
        if "lhotse" in formats:
            result.files["nemo_input_cfg_lhotse"] = out / "nemo_input_cfg_lhotse.yaml"
            write_input_cfg(result.files["nemo_input_cfg_lhotse"], "lhotse", "cuts_path", {
                "real": result.files["lhotse_real_cuts"], "synthetic": result.files["lhotse_synthetic_cuts"]}, weights, render)

    result.counts.update({
        "copies": [c.name for c in copies],
        "synthetic_files": sum(len(f) for f in files),
        "synthetic_rows": len(synthetic),
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
            "schema": 1, "synthetic": str(root), "real": [str(Path(r).expanduser().absolute()) for r in real],
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
            "counts": result.counts, "files": {k: str(v) for k, v in result.files.items()},
        }, handle, indent=2)
        handle.write("\n")
    result.files["summary"] = out / "manifest.json"
    return result


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
