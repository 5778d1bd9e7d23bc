"""What each trainer's manifest entry looks like: NeMo JSON lines, Lhotse recordings, supervisions and
cuts, NeMo's Lhotse ``input_cfg``, the settings that read a sharded copy as it is (NeMo tarred
datasets, Lhotse Shar), and OpenSeq2Seq's transcript normalisation. :mod:`trtgen.commands.manifests`
decides which utterances go where; this module only renders one entry (docs/generating.md).

**Sharded copies** are read by trainers as they are, so they get no per-utterance lines here, only the
keys that name their shards (NeMo's code, ``NVIDIA/NeMo``):

* NeMo tarred audio: ``manifest_filepath`` and ``tarred_audio_filepaths`` as one pattern each over the
  copy's shards 0..N-1, ``.../sharded_manifests/manifest__OP_0..N-1_CL_.json`` and
  ``.../audio__OP_0..N-1_CL_.tar``: ``expand_sharded_filepaths``
  (``nemo/collections/asr/data/audio_to_text.py``) replaces ``_OP_``/``_CL_`` (and ``( [ <``, ``) ] >``)
  by braces and brace-expands them. ``is_tarred: true`` picks the tarred dataset
  (``nemo/collections/asr/data/audio_to_text_dataset.py`` ``get_tarred_dataset``), ``shard_manifests:
  true`` lets each rank read only its shards' manifests (expanded by ``shard_manifests_if_needed`` once
  ``torch.distributed`` is up), ``tarred_shard_strategy: scatter`` is its default. NeMo's Lhotse loader
  (``use_lhotse=true``; ``nemo/collections/common/data/lhotse/nemo_adapters.py``
  ``LazyNeMoTarredIterator``) expands both patterns itself and pairs manifest and tar by the shard
  number in their names. In an ``input_cfg`` the entry is ``type: nemo_tarred`` with the same two keys
  (``nemo/collections/common/data/lhotse/cutset.py`` ``read_nemo_manifest``: an entry is tarred when it
  has ``tarred_audio_filepaths``).
* Lhotse Shar: ``shar_path``, the directory holding only the shard files (``cutset.py``
  ``read_lhotse_manifest`` -> ``CutSet.from_shar(in_dir=shar_path)``); ``type: lhotse_shar`` in an
  ``input_cfg``.

NeMo refuses an ``input_cfg`` that mixes tarred entries with non-tarred ones (the real manifest) unless
``force_iterable_dataset`` (or ``force_map_dataset``) is set on the dataset (``cutset.py``
``parse_and_combine_datasets``); the files say so in their header.
"""

from __future__ import annotations

import os
import posixpath
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtgen.commands.shard_formats import shard_files
from trtgen.corpora.librispeech import LibriUtterance
from trtgen.corpora.synthetic import SyntheticRecord, manifest_id
from trtgen.fileio import atomic_write

if TYPE_CHECKING:  # synthetic_check reads shards, whose writer renders labels here
    from trtgen.commands.synthetic_check import AudioInfo
    from trtgen.storage import Storage

__all__ = [
    "nsr_normalize", "SynFile", "RealFile", "PathRenderer", "synthetic_id", "synthetic_fields", "header_of", "size_or_minus_one",
    "style_speaker", "nemo_synthetic", "nemo_real", "lhotse_recording", "lhotse_synthetic_supervision", "lhotse_real_supervision",
    "lhotse_cut", "write_input_cfg", "input_cfg_entry", "shard_pattern", "nemo_tarred_settings", "shar_settings",
    "NEMO_PATTERN_CHARACTERS", "yaml_list", "yaml_mapping", "yaml_scalar",
]

# Spec §7.1 (NSR L13-31): ’ “ ” -> ', à â -> a, è é ê -> e, ü -> u, and every ASCII punctuation
# character except the apostrophe deleted. The ASCII double quote is in both lists; deletion wins.
_NSR_TABLE = str.maketrans("\"'\u2019\u201c\u201d\u00e0\u00e2\u00e8\u00e9\u00ea\u00fc", "'''''aaeeeu", string.punctuation.replace("'", ""))

_MAILABS_STYLE = re.compile(r"(?:^|/)by_book/(?:female|male)/([^/]+)/[^/]+/wavs/[^/]+$")


def nsr_normalize(text: str) -> str:
    """OpenSeq2Seq's nsr_create_syn_train_csv.py transcript normalisation: translate, ``lower()``, ``strip()``."""
    return text.translate(_NSR_TABLE).lower().strip()


@dataclass(frozen=True)
class SynFile:
    """A synthetic utterance of one copy as the manifests list it: its record, file, header and size."""

    record: SyntheticRecord
    path: Path
    info: AudioInfo | None
    size: int


@dataclass(frozen=True)
class RealFile:
    """A real utterance and its header (None where no manifest needs its duration)."""

    utterance: LibriUtterance
    info: AudioInfo | None


class PathRenderer:
    """Renders paths absolute, or relative to ``relative_to``, always with ``/``."""

    def __init__(self, relative_to: Path | None) -> None:
        self.base = Path(relative_to).expanduser().absolute() if relative_to is not None else None

    def __call__(self, path: Path) -> str:
        absolute = os.path.abspath(path)
        if self.base is None:
            return Path(absolute).as_posix()
        return Path(os.path.relpath(absolute, self.base)).as_posix()

    def location(self, storage: "Storage", name: str = "") -> str:
        """A copy's file (or the copy, ``name`` empty) as manifests name it: its path on local disk
        (absolute, or relative to ``relative_to``), its URL on object storage."""
        if storage.is_local:
            return self(storage.path / name if name else storage.path)
        return storage.url(name)


def style_speaker(style: str | None) -> str | None:
    if not style:
        return None
    match = _MAILABS_STYLE.search(style.replace("\\", "/"))
    return match.group(1) if match else None


def synthetic_id(record: SyntheticRecord) -> str:
    """A synthetic utterance's id in every manifest: unique across copies, and apart from the real ids."""
    return manifest_id(record.id, record.copy)


def size_or_minus_one(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else -1
    except OSError:
        return -1


def header_of(info: AudioInfo | None) -> AudioInfo:
    """The header read earlier; nemo, lhotse and their mix rows are only written after reading it."""
    if info is None:
        raise RuntimeError("audio header was not read before writing a manifest that needs durations")
    return info


def synthetic_fields(record: SyntheticRecord) -> dict[str, Any]:
    """What a trainer may want to know of a synthetic entry beyond its audio and transcript: NeMo lines
    carry it (NeMo's Lhotse reader moves it to ``cut.custom``), Lhotse supervisions in ``custom``."""
    fields: dict[str, Any] = {
        "synthetic": True, "utterance_id": record.id, "copy": record.copy, "style": record.style, "dropout": record.dropout,
        "style_mode": record.style_mode, "attempt": record.attempt, "quality_ok": record.quality.ok,
    }
    if not record.quality.ok:
        fields["quality_reasons"] = list(record.quality.reasons)
    return fields


def nemo_synthetic(f: SynFile, render: PathRenderer) -> dict[str, Any]:
    info = header_of(f.info)
    return {
        "audio_filepath": render(f.path), "duration": round(info.duration_s, 6), "text": nsr_normalize(f.record.text),
        "sampling_rate": info.sample_rate, "id": synthetic_id(f.record), **synthetic_fields(f.record),
    }


def nemo_real(r: RealFile, render: PathRenderer) -> dict[str, Any]:
    info = header_of(r.info)
    return {
        "audio_filepath": render(r.utterance.audio), "duration": round(info.duration_s, 6),  # type: ignore[arg-type]
        "text": nsr_normalize(r.utterance.text), "sampling_rate": info.sample_rate, "id": r.utterance.id, "synthetic": False,
    }


def lhotse_recording(recording_id: str, path: Path, info: AudioInfo | None, render: PathRenderer) -> dict[str, Any]:
    info = header_of(info)
    return {
        "id": recording_id,
        "sources": [{"type": "file", "channels": list(range(info.channels)), "source": render(path)}],
        "sampling_rate": info.sample_rate, "num_samples": info.num_samples, "duration": info.duration_s,
        "channel_ids": list(range(info.channels)),
    }


def lhotse_synthetic_supervision(f: SynFile, language: str) -> dict[str, Any]:
    recording_id = synthetic_id(f.record)
    custom = synthetic_fields(f.record)
    row: dict[str, Any] = {
        "id": recording_id, "recording_id": recording_id, "start": 0.0, "duration": header_of(f.info).duration_s, "channel": 0,
        "text": f.record.text, "language": language,
    }
    speaker = style_speaker(f.record.style)
    if speaker:
        row["speaker"] = speaker
    row["custom"] = custom
    return row


def lhotse_real_supervision(r: RealFile, language: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": r.utterance.id, "recording_id": r.utterance.id, "start": 0.0, "duration": header_of(r.info).duration_s,
        "channel": 0, "text": r.utterance.text, "language": language,
    }
    if r.utterance.speaker:
        row["speaker"] = r.utterance.speaker
    row["custom"] = {"synthetic": False}
    return row


def lhotse_cut(recording: dict[str, Any], supervision: dict[str, Any]) -> dict[str, Any]:
    """A Lhotse ``MonoCut`` as ``CutSet.to_file`` writes it: the whole recording with its supervision,
    whose ``custom`` the cut carries too (where NeMo's input_cfg ``tags`` go)."""
    return {
        "id": recording["id"], "start": 0.0, "duration": recording["duration"], "channel": 0, "supervisions": [supervision],
        "recording": recording, "custom": dict(supervision["custom"]), "type": "MonoCut",
    }


NEMO_PATTERN_CHARACTERS = "()[]<>{},"
"""Characters a path in a NeMo shard pattern must not hold: ``expand_sharded_filepaths`` turns ``( [ <``
and ``) ] >`` into braces and brace-expands ``{a,b}``, and NeMo's non-Lhotse loader splits
``manifest_filepath`` at commas (``_OP_`` and ``_CL_`` are refused too)."""


def shard_pattern(layout: str, count: int, position: int) -> str:
    """File ``position`` (0: manifest, 1: tar) of shards ``0..count-1`` as one NeMo pattern, relative to
    the copy: the shard number of :func:`~trtgen.commands.shard_formats.shard_files`'s names (their last
    run of digits, zero-padded as they are) replaced by ``_OP_first..last_CL_``."""
    if count < 1:
        raise ValueError("a shard pattern needs one shard at least")
    first, last = shard_files(layout, 0)[position], shard_files(layout, count - 1)[position]
    low, high = list(re.finditer(r"\d+", first))[-1], list(re.finditer(r"\d+", last))[-1]
    prefix, suffix = first[:low.start()], first[low.end():]
    if last != prefix + high.group() + suffix or len(high.group()) < len(low.group()):
        raise RuntimeError(f"shard names {first!r} and {last!r} differ in more than their number")
    return f"{prefix}_OP_{low.group()}..{high.group()}_CL_{suffix}"


def nemo_tarred_settings(base: str, count: int) -> dict[str, Any]:
    """NeMo's tarred-dataset keys for the ``nemo-tarred`` copy at ``base`` (path or URL) with shards
    ``0..count-1`` (module docstring)."""
    return {
        "is_tarred": True,
        "manifest_filepath": f"{base.rstrip('/')}/{shard_pattern('nemo-tarred', count, 0)}",
        "tarred_audio_filepaths": f"{base.rstrip('/')}/{shard_pattern('nemo-tarred', count, 1)}",
        "shard_manifests": True,
        "tarred_shard_strategy": "scatter",
    }


def shar_settings(base: str, count: int) -> dict[str, Any]:
    """Lhotse's (and NeMo's) ``shar_path`` for the ``shar`` copy at ``base``: the directory of its shard
    files, which ``CutSet.from_shar(in_dir=...)`` reads whole."""
    directory = posixpath.dirname(shard_files("shar", 0)[0])
    if not directory:  # the shards beside the copy's own files: name each field's files instead
        return {"shar_path": {"cuts": f"{base.rstrip('/')}/{shard_pattern('shar', count, 0)}",
                              "recording": f"{base.rstrip('/')}/{shard_pattern('shar', count, 1)}"}}
    return {"shar_path": f"{base.rstrip('/')}/{directory}"}


def input_cfg_entry(kind: str, keys: dict[str, Any], weight: float, synthetic: bool, tags: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``input_cfg`` entry: its type, the keys that name its data, its weight, and tags (``synthetic``)."""
    return {"type": kind, **keys, "weight": round(weight, 10), "tags": {"synthetic": synthetic, **(tags or {})}}


def write_input_cfg(path: Path, entries: list[dict[str, Any]], weights: dict[str, float], tarred: bool = False) -> None:
    """NeMo's Lhotse data loader ``input_cfg`` (docs/generating.md, "Mixing by weight in NeMo"): the real
    manifest's entry and the synthetic ones, drawn by weight, tagged ``synthetic``. ``tarred``: some
    entries are sharded copies, which NeMo mixes with the non-tarred real manifest only when told."""
    force = " model.train_ds.force_iterable_dataset=true" if tarred else ""
    header = (f"# NeMo input_cfg written by trtgen manifest: real weight {weights['real']:g}, synthetic {weights['synthetic']:g}.\n"
              f"# model.train_ds.use_lhotse=true model.train_ds.input_cfg=<this file>{force} (docs/generating.md)\n")
    if tarred:
        header += "# (NeMo mixes tarred entries with non-tarred ones only with force_iterable_dataset or force_map_dataset.)\n"
    with atomic_write(path, "w", newline="\n") as handle:
        handle.write(header + yaml_list(entries))


def yaml_mapping(mapping: dict[str, dict[str, Any]]) -> str:
    """A YAML mapping of flat mappings (one level of nested mapping at most in each), without a YAML library."""
    lines = []
    for name, entry in mapping.items():
        lines.append(f"{yaml_scalar(name)}:")
        for key, value in entry.items():
            if isinstance(value, dict):
                lines.append(f"  {key}:")
                lines.extend(f"    {k}: {yaml_scalar(v)}" for k, v in value.items())
            else:
                lines.append(f"  {key}: {yaml_scalar(value)}")
    return "".join(line + "\n" for line in lines)


def yaml_list(entries: list[dict[str, Any]]) -> str:
    """A YAML block list of flat mappings (one level of nested mapping at most), without a YAML library."""
    lines = []
    for entry in entries:
        for position, (key, value) in enumerate(entry.items()):
            indent = "- " if position == 0 else "  "
            if isinstance(value, dict):
                lines.append(f"{indent}{key}:")
                lines.extend(f"    {k}: {yaml_scalar(v)}" for k, v in value.items())
            else:
                lines.append(f"{indent}{key}: {yaml_scalar(value)}")
    return "".join(line + "\n" for line in lines)


def yaml_scalar(value: Any) -> str:
    """true/false, a number, or a double-quoted string (printable characters as they are, others escaped)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    escaped = []
    for character in str(value):
        code = ord(character)
        if character in '"\\':
            escaped.append("\\" + character)
        elif character.isprintable():
            escaped.append(character)
        else:
            escaped.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return '"' + "".join(escaped) + '"'
