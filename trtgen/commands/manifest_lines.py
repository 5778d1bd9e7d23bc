"""What each trainer's manifest entry looks like: NeMo JSON lines, Lhotse recordings, supervisions and
cuts, NeMo's Lhotse ``input_cfg``, and OpenSeq2Seq's transcript normalisation. :mod:`trtgen.commands.manifests`
decides which utterances go where; this module only renders one entry (docs/generating.md).
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtgen.commands.synthetic_check import AudioInfo
from trtgen.corpora.librispeech import LibriUtterance
from trtgen.corpora.synthetic import SyntheticRecord, manifest_id
from trtgen.fileio import atomic_write

__all__ = [
    "nsr_normalize", "SynFile", "RealFile", "PathRenderer", "synthetic_id", "synthetic_fields", "header_of", "size_or_minus_one",
    "style_speaker", "nemo_synthetic", "nemo_real", "lhotse_recording", "lhotse_synthetic_supervision", "lhotse_real_supervision",
    "lhotse_cut", "write_input_cfg",
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


def write_input_cfg(path: Path, kind: str, path_key: str, manifests: dict[str, Path], weights: dict[str, float], render: PathRenderer) -> None:
    """NeMo's Lhotse data loader ``input_cfg`` (docs/generating.md, "Mixing by weight in NeMo"): one
    entry for the real manifest and one for the synthetic one, drawn by weight, tagged ``synthetic``."""
    entries = [
        {"type": kind, path_key: render(manifests[name]), "weight": round(weights[name], 10), "tags": {"synthetic": name == "synthetic"}}
        for name in ("real", "synthetic")
    ]
    header = (f"# NeMo input_cfg written by trtgen manifest: real weight {weights['real']:g}, synthetic {weights['synthetic']:g}.\n"
              "# model.train_ds.use_lhotse=true model.train_ds.input_cfg=<this file> (docs/generating.md)\n")
    with atomic_write(path, "w", newline="\n") as handle:
        handle.write(header + yaml_list(entries))


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
