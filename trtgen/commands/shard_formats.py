"""One shard of a copy, written and read back in the two shard layouts, byte for byte reproducibly.

A shard holds whole utterances (one mono audio file each, FLAC or WAV, as trtgen encoded it: never
re-encoded here) with their transcripts and extra fields. Neither layout needs Lhotse, NeMo or torch
to write or read: the formats are reproduced here from their readers' source.

**Lhotse Shar** (``--layout shar``): shard ``i`` is ``shar/cuts.{i:06d}.jsonl.gz`` and ``shar/recording.{i:06d}.tar``,
what lhotse's ``SharWriter(fields={"recording": ...})`` writes (``lhotse/shar/writers/shar.py``), so that
``CutSet.from_shar(in_dir=...)`` or ``from_shar(fields={"cuts": [...], "recording": [...]})`` loads it:

* the tar (``lhotse/shar/writers/audio.py`` ``AudioTarWriter.write``, ``writers/tar.py``): per cut, in
  cut order, the audio file as member ``<cut id>.<flac|wav>``, then ``<cut id>.json``: the cut's
  Recording as one JSON line whose single source is the placeholder ``{"type": "shar", "channels": [0],
  "source": ""}`` (``lhotse/shar/utils.py`` ``to_shar_placeholder``). The reader pairs members two by
  two and fills the placeholder with the audio bytes (``lhotse/shar/readers/tar.py``
  ``iterate_tarfile_pairwise``, ``fill_shar_placeholder``), then asserts that the data member's name
  without its last extension equals the cut id (``lhotse/shar/readers/lazy.py`` ``LazySharIterator.__iter__``);
* the cuts (``writers/cut.py`` ``JsonlShardWriter``): one MonoCut per line, ``start`` 0, the same
  Recording placeholder, one supervision spanning the cut (text, speaker, language ``en``) and the
  member's extra fields in ``cut.custom``.

``from_shar(in_dir=d)`` takes every entry of ``d`` whose name's first dot-separated part is not ``cuts``
as a field with one file per shard (``LazySharIterator._init_from_dir``): any other file or folder in
``d`` (settings, commit records, a lock file) makes it refuse the directory; ``fields=`` always works.

**NeMo tarred audio** (``--layout nemo-tarred``): shard ``i`` is ``audio_{i}.tar`` and
``sharded_manifests/manifest_{i}.json``, what NeMo's ``scripts/speech_recognition/convert_to_tarred_audio_dataset.py``
writes (``ASRTarredDatasetBuilder._create_shard``; ``create_new_dataset`` with ``shard_manifests``):

* the tar: the audio files, flat (the member name is ``<id>.<flac|wav>``, never with a ``/``);
* the manifest, JSON lines in tar order: ``audio_filepath`` (the member's name), ``duration``, ``text``,
  ``shard_id`` (``i``, "for recordkeeping" there, but required by NeMo's Lhotse reader), ``lang``
  (``en``), ``speaker`` when known, and the member's extra fields. The directory and file name are the
  ones ``nemo/collections/common/parts/preprocessing/manifest.py`` ``is_tarred_dataset`` recognises
  (``/sharded_manifests/`` and ``manifest_(\\d+).json``: relative ``audio_filepath`` then not resolved
  against the disk), and ``manifest__OP_0..N_CL_.json`` with ``audio__OP_0..N_CL_.tar`` expands to them
  (``nemo/collections/asr/data/audio_to_text.py`` ``expand_sharded_filepaths``). NeMo's single
  ``tarred_audio_manifest.json`` is these lines, all shards concatenated.

NeMo matches members to manifest lines by name, two ways, and the ids must suit both:

* ``TarredAudioToCharDataset`` (``audio_to_text.py`` ``_TarredAudioToTextDataset``): webdataset cuts
  a member name at its *first* dot into key and extension (``webdataset/tariterators.py``
  ``base_plus_ext``), then ``_build_sample`` looks up ``os.path.splitext(os.path.basename(key))`` in
  the manifest's ``mapping`` of ``splitext(basename(audio_filepath))`` (``nemo/collections/common/parts/preprocessing/collections.py``
  ``ASRAudioText``, ``index_by_file_id``): an id with a dot is never found (NeMo's converter replaces
  dots by ``_`` for this reason), and a repeated id gets another line's transcript;
* ``LazyNeMoTarredIterator`` (``nemo/collections/common/data/lhotse/nemo_adapters.py``): shard ids
  from the file names (``manifest[^/]*_(\\d+)[^/]*\\.json``, ``audio[^/]*_(\\d+)[^/]*\\.tar``), then each
  member's name looked up among the manifest's ``audio_filepath`` with a ``-sub<N>`` suffix taken off
  (the converter's mark for a second slice of one file): an id ending in ``-sub<N>`` is never found.

So a NeMo id has no ``.`` or ``/`` and does not end in ``-sub<digits>`` (:func:`member_id_problem`).

**Reproducible bytes.** A shard's files are a pure function of its members in the order given: tar
members with mtime 0, uid/gid 0, empty owner names, mode 0644, POSIX.1-2001 (pax) format (what lhotse
and NeMo write: Python's default; non-ASCII names go in a pax header); gzip with mtime 0 and no file
name; JSON with sorted keys, ``(",", ":")`` separators, UTF-8 text (but for the few characters
``str.splitlines`` breaks at, escaped). The gzip stream is what this
Python's zlib makes of it: the same on every machine with the same zlib.

An empty shard (every row rejected) is an empty tar (two zero blocks, padded to 10240 bytes, as
``tarfile`` closes any archive) and an empty (compressed or not) manifest; both readers read it as
no utterances.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from trtgen.errors import UsageError

__all__ = [
    "LAYOUTS", "SHARD_LAYOUTS", "LANGUAGE", "AUDIO_EXTENSIONS", "ShardMember", "ReadMember", "shard_files",
    "member_id_problem", "write_shard", "read_shard",
]

LAYOUTS = ("files", "shar", "nemo-tarred")
"""How a copy is laid out: loose audio files, or shards of one of the :data:`SHARD_LAYOUTS`."""
SHARD_LAYOUTS = ("shar", "nemo-tarred")
LANGUAGE = "en"
"""The supervision language (Shar) and NeMo ``lang``: NeMo's Lhotse reader maps ``lang`` to it too."""
AUDIO_EXTENSIONS = ("flac", "wav")

_NEMO_KEYS = frozenset({"audio_filepath", "duration", "text", "shard_id", "lang", "speaker"})
"""NeMo manifest keys this module writes itself; a member's extra fields may not use them."""
_SHAR_RESERVED = frozenset({"shard_origin", "shar_epoch"})
"""``cut.custom`` keys lhotse's Shar reader sets on every cut it yields (so a stored value would be lost)."""
_NEMO_SUB = re.compile(r"-sub\d+$")
_JSON = {"sort_keys": True, "ensure_ascii": False, "separators": (",", ":"), "allow_nan": False}
_LINE_BREAKS = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"})
"""The characters ``str.splitlines`` breaks at that JSON leaves raw (it escapes every control character):
escaped too, so that every reader sees one entry per line. They only occur inside JSON strings."""


@dataclass(frozen=True)
class ShardMember:
    """One utterance to write into a shard.

    Attributes:
        id: unique within the copy (its manifest id): the cut id (Shar), the audio file's name without
            extension (NeMo).
        audio: the encoded audio file (mono FLAC or WAV): a local file, streamed into the tar, or its bytes.
        extension: ``flac`` or ``wav``.
        custom: extra JSON-able fields: ``cut.custom`` (Shar), more keys of the manifest line (NeMo).
    """

    id: str
    audio: Path | bytes
    extension: str
    sample_rate: int
    num_samples: int
    text: str
    speaker: str | None
    custom: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Exactly ``num_samples / sample_rate``: what lhotse and soundfile compute from the header, so no
        reader finds the audio a sample shorter or longer than the manifest says."""
        return self.num_samples / self.sample_rate


@dataclass(frozen=True)
class ReadMember:
    """One utterance as a shard holds it: what :func:`write_shard` was given, less what neither layout keeps
    (the sample count: read it from the audio)."""

    id: str
    audio: bytes
    extension: str
    text: str
    duration: float
    fields: dict[str, Any]
    """The member's extra fields (:attr:`ShardMember.custom`)."""
    speaker: str | None = None


def _check_layout(layout: str, index: int) -> None:
    if layout not in SHARD_LAYOUTS:
        raise UsageError(f"layout {layout!r}: not a shard layout ({', '.join(SHARD_LAYOUTS)})")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise UsageError(f"shard index {index!r}: expected an integer >= 0")


def shard_files(layout: str, index: int) -> tuple[str, ...]:
    """The names, relative to the copy's directory, of shard ``index``'s files: manifest first, then tar."""
    _check_layout(layout, index)
    if layout == "shar":
        # In a directory of their own: lhotse's CutSet.from_shar(in_dir=...) takes every file there for a Shar field.
        return (f"shar/cuts.{index:06d}.jsonl.gz", f"shar/recording.{index:06d}.tar")
    return (f"sharded_manifests/manifest_{index}.json", f"audio_{index}.tar")


def member_id_problem(layout: str, member_id: str) -> str | None:
    """Why ``member_id`` cannot name a member of a ``layout`` shard (None: it can), so that a command can
    refuse before it makes any audio. Both: non-empty, no ``/`` or NUL (the id is a tar member name).
    NeMo also: no ``.`` and no ``-sub<digits>`` ending, which its readers cut off (module docstring)."""
    if layout not in SHARD_LAYOUTS:
        return f"layout {layout!r} is not a shard layout"
    if not isinstance(member_id, str) or not member_id:
        return "the id is empty"
    if "/" in member_id or "\0" in member_id:
        return "a shard member's id cannot contain '/' or NUL"
    if layout == "nemo-tarred":
        if "." in member_id:
            return "a NeMo tarred member's id cannot contain '.' (NeMo's tar reader cuts the name at its first dot)"
        if _NEMO_SUB.search(member_id):
            return "a NeMo tarred member's id cannot end in '-sub<digits>' (NeMo's Lhotse reader drops that suffix)"
    return None


def _dumps(value: Any, what: str) -> bytes:
    try:
        return (json.dumps(value, **_JSON).translate(_LINE_BREAKS) + "\n").encode("utf-8")
    except (TypeError, ValueError) as error:
        raise UsageError(f"{what}: not JSON ({error})") from None


def _checked(layout: str, index: int, members: Sequence[ShardMember]) -> None:
    seen: set[str] = set()
    reserved = _NEMO_KEYS if layout == "nemo-tarred" else _SHAR_RESERVED
    for m in members:
        problem = member_id_problem(layout, m.id)
        if problem is not None:
            raise UsageError(f"shard {index} member {m.id!r}: {problem}")
        if m.id in seen:
            raise UsageError(f"shard {index} member {m.id!r}: the id appears twice")
        seen.add(m.id)
        if m.extension not in AUDIO_EXTENSIONS:
            raise UsageError(f"shard {index} member {m.id!r}: audio extension {m.extension!r} is not one of {', '.join(AUDIO_EXTENSIONS)}")
        if m.sample_rate <= 0 or m.num_samples < 0:
            raise UsageError(f"shard {index} member {m.id!r}: bad sample rate {m.sample_rate} or sample count {m.num_samples}")
        clash = sorted(k for k in m.custom if not isinstance(k, str) or k in reserved)
        if clash:
            raise UsageError(f"shard {index} member {m.id!r}: extra field(s) {', '.join(map(repr, clash))} clash with the format's own")


def _shar_recording(m: ShardMember) -> dict[str, Any]:
    return {
        "id": m.id, "sources": [{"type": "shar", "channels": [0], "source": ""}], "sampling_rate": m.sample_rate,
        "num_samples": m.num_samples, "duration": m.duration, "channel_ids": [0],
    }


def _shar_cut(m: ShardMember) -> dict[str, Any]:
    supervision: dict[str, Any] = {
        "id": m.id, "recording_id": m.id, "start": 0, "duration": m.duration, "channel": 0, "text": m.text, "language": LANGUAGE,
    }
    if m.speaker is not None:
        supervision["speaker"] = m.speaker
    cut: dict[str, Any] = {
        "id": m.id, "start": 0, "duration": m.duration, "channel": 0, "supervisions": [supervision],
        "recording": _shar_recording(m), "type": "MonoCut",
    }
    if m.custom:
        cut["custom"] = m.custom
    return cut


def _nemo_line(m: ShardMember, index: int) -> dict[str, Any]:
    line = {**m.custom, "audio_filepath": f"{m.id}.{m.extension}", "duration": m.duration, "text": m.text, "shard_id": index, "lang": LANGUAGE}
    if m.speaker is not None:
        line["speaker"] = m.speaker
    return line


class _Digesting:
    """A write-only file that counts and hashes what goes through it: the digest comes with the writing."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self.size = 0
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._target.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._target.flush()


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _add_audio(tar: tarfile.TarFile, name: str, audio: Path | bytes) -> None:
    if isinstance(audio, (bytes, bytearray, memoryview)):
        data = bytes(audio)
        tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))
        return
    with open(audio, "rb") as handle:
        tar.addfile(_tar_info(name, os.fstat(handle.fileno()).st_size), handle)  # copied in chunks, never whole in memory


def _write_file(directory: Path, name: str, fill: Callable[[_Digesting], None]) -> tuple[int, str]:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        out = _Digesting(handle)
        fill(out)
    return out.size, out.sha256.hexdigest()


def write_shard(layout: str, index: int, members: Sequence[ShardMember], directory: Path) -> dict[str, tuple[int, str]]:
    """Write shard ``index``'s files (:func:`shard_files`) into the local ``directory`` (a staging
    directory: the caller moves or uploads them, each whole); returns ``{name: (size, sha256 hex)}``.

    Members go in the order given. Everything that can refuse (ids, extensions, extra fields) is checked
    before a byte is written (UsageError); a file that cannot be read or written raises OSError.
    """
    _check_layout(layout, index)
    _checked(layout, index, members)
    directory = Path(directory)
    manifest_name, tar_name = shard_files(layout, index)
    if layout == "shar":
        lines = [_dumps(_shar_cut(m), f"shard {index} member {m.id!r}") for m in members]
        metas = [_dumps(_shar_recording(m), f"shard {index} member {m.id!r}") for m in members]
    else:
        lines = [_dumps(_nemo_line(m, index), f"shard {index} member {m.id!r}") for m in members]
        metas = []

    def fill_manifest(out: _Digesting) -> None:
        if layout == "shar":
            # filename="" keeps the name out of the header; mtime=0 the time.
            with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as stream:  # type: ignore[arg-type]
                for line in lines:
                    stream.write(line)
        else:
            for line in lines:
                out.write(line)

    def fill_tar(out: _Digesting) -> None:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:  # type: ignore[call-overload]
            for i, m in enumerate(members):
                _add_audio(tar, f"{m.id}.{m.extension}", m.audio)
                if layout == "shar":
                    tar.addfile(_tar_info(f"{m.id}.json", len(metas[i])), io.BytesIO(metas[i]))

    return {manifest_name: _write_file(directory, manifest_name, fill_manifest), tar_name: _write_file(directory, tar_name, fill_tar)}


# -- reading -----------------------------------------------------------------------------------------


def _json_lines(data: bytes, name: str) -> list[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line; split on ``\\n`` only (the text may hold U+2028)."""
    rows = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            rows.append((number, json.loads(raw.decode("utf-8"))))
        except (UnicodeDecodeError, ValueError) as error:
            raise UsageError(f"{name}: line {number} is not JSON ({error})") from None
    return rows


def _read_all(open_file: Callable[[str], BinaryIO], name: str, compressed: bool) -> bytes:
    with open_file(name) as handle:
        if not compressed:
            return handle.read()
        try:
            with gzip.GzipFile(fileobj=handle, mode="rb") as stream:
                return stream.read()
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise UsageError(f"{name}: not a readable gzip file ({error})") from None


@dataclass(frozen=True)
class _Entry:
    id: str
    member: str
    """The audio member's name in the tar."""
    text: str
    duration: float
    speaker: str | None
    fields: dict[str, Any]
    line: int


def _entry_error(name: str, line: int, what: str) -> UsageError:
    return UsageError(f"{name}: line {line}: {what}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _shar_entries(layout: str, name: str, rows: list[tuple[int, Any]]) -> list[_Entry]:
    entries = []
    for line, cut in rows:
        if not isinstance(cut, dict) or cut.get("type") != "MonoCut" or not isinstance(cut.get("id"), str):
            raise _entry_error(name, line, "not a MonoCut with an id")
        cut_id = cut["id"]
        recording, supervisions = cut.get("recording"), cut.get("supervisions")
        sources = recording.get("sources") if isinstance(recording, dict) else None
        if not isinstance(recording, dict) or recording.get("id") != cut_id or not isinstance(sources, list) or [
            s.get("type") if isinstance(s, dict) else None for s in sources
        ] != ["shar"]:
            raise _entry_error(name, line, f"cut {cut_id!r} has no Shar recording placeholder")
        if not isinstance(supervisions, list) or len(supervisions) != 1 or not isinstance(supervisions[0], dict):
            raise _entry_error(name, line, f"cut {cut_id!r} does not have one supervision")
        text, duration = supervisions[0].get("text"), cut.get("duration")
        if not isinstance(text, str) or not _number(duration):
            raise _entry_error(name, line, f"cut {cut_id!r} has no text or duration")
        problem = member_id_problem(layout, cut_id)
        if problem is not None:
            raise _entry_error(name, line, f"cut {cut_id!r}: {problem}")
        custom = cut.get("custom") or {}
        if not isinstance(custom, dict):
            raise _entry_error(name, line, f"cut {cut_id!r}: custom is not an object")
        entries.append(_Entry(cut_id, "", text, float(duration), supervisions[0].get("speaker"), dict(custom), line))
    return entries


def _nemo_entries(layout: str, index: int, name: str, rows: list[tuple[int, Any]]) -> list[_Entry]:
    entries = []
    for line, item in rows:
        if not isinstance(item, dict) or not isinstance(item.get("audio_filepath"), str):
            raise _entry_error(name, line, "no audio_filepath")
        member = item["audio_filepath"]
        stem, dot, extension = member.rpartition(".")
        problem = member_id_problem(layout, stem) if dot else "no extension"
        if problem is not None or extension not in AUDIO_EXTENSIONS:
            raise _entry_error(name, line, f"audio_filepath {member!r} does not name a member <id>.<{'|'.join(AUDIO_EXTENSIONS)}> ({problem or 'extension'})")
        if not isinstance(item.get("text"), str) or not _number(item.get("duration")):
            raise _entry_error(name, line, f"{member!r} has no text or duration")
        if item.get("shard_id") != index or isinstance(item.get("shard_id"), bool):
            raise _entry_error(name, line, f"{member!r} has shard_id {item.get('shard_id')!r}, not {index}")
        fields = {k: v for k, v in item.items() if k not in _NEMO_KEYS}
        entries.append(_Entry(stem, member, item["text"], float(item["duration"]), item.get("speaker"), fields, line))
    return entries


def read_shard(layout: str, index: int, open_file: Callable[[str], BinaryIO]) -> Iterator[ReadMember]:
    """Read shard ``index``'s members back in shard order, from its files opened by name (as
    :func:`shard_files` gives them) through ``open_file``: a local directory or an object store. The tar
    is read as a stream, one member at a time.

    Raises UsageError, one line naming the file and the member, when the shard is corrupt or its files
    disagree: a tar member without its manifest entry or the reverse, members out of order, an id twice,
    a Shar audio member without its metadata. What ``open_file`` raises (a missing file) goes through.
    """
    _check_layout(layout, index)
    manifest_name, tar_name = shard_files(layout, index)
    rows = _json_lines(_read_all(open_file, manifest_name, compressed=layout == "shar"), manifest_name)
    if layout == "shar":
        entries = _shar_entries(layout, manifest_name, rows)
    else:
        entries = _nemo_entries(layout, index, manifest_name, rows)
    ids: dict[str, int] = {}
    for e in entries:
        if e.id in ids:
            raise _entry_error(manifest_name, e.line, f"id {e.id!r} appears twice (first on line {ids[e.id]})")
        ids[e.id] = e.line
    yield from _read_tar(layout, manifest_name, tar_name, entries, set(ids), open_file)


def _read_tar(layout: str, manifest_name: str, tar_name: str, entries: list[_Entry], ids: set[str],
              open_file: Callable[[str], BinaryIO]) -> Iterator[ReadMember]:
    def unexpected(member: str, wanted: _Entry | None) -> UsageError:
        stem = member.rpartition(".")[0] or member
        if wanted is None:
            return UsageError(f"{tar_name}: member {member!r} has no entry in {manifest_name}")
        if stem == wanted.id:
            return UsageError(f"{tar_name}: member {member!r} is not {wanted.id!r}'s audio (<id>.<{'|'.join(AUDIO_EXTENSIONS)}>)")
        if stem in ids:
            return UsageError(f"{tar_name}: member {member!r} is out of order: {manifest_name} line {wanted.line} wants {wanted.id!r} here")
        return UsageError(f"{tar_name}: member {member!r} has no entry in {manifest_name}")

    position = 0
    with open_file(tar_name) as handle:
        try:
            with tarfile.open(fileobj=handle, mode="r|", encoding="utf-8") as tar:
                pending: tuple[_Entry, str, bytes] | None = None
                for info in tar:
                    wanted = entries[position] if position < len(entries) else None
                    if not info.isfile():
                        raise UsageError(f"{tar_name}: member {info.name!r} is not a regular file")
                    if pending is not None:  # Shar: the audio's Recording metadata
                        entry, extension, audio = pending
                        if info.name != f"{entry.id}.json":
                            raise UsageError(f"{tar_name}: member {entry.id}.{extension} is not followed by {entry.id}.json (found {info.name!r})")
                        meta = _read_member(tar, info, tar_name)
                        try:
                            recording = json.loads(meta.decode("utf-8"))
                        except (UnicodeDecodeError, ValueError):
                            recording = None
                        if not isinstance(recording, dict) or recording.get("id") != entry.id:
                            raise UsageError(f"{tar_name}: member {info.name!r} is not the Recording of cut {entry.id!r}")
                        pending = None
                        position += 1
                        yield ReadMember(entry.id, audio, extension, entry.text, entry.duration, entry.fields, entry.speaker)
                        continue
                    if wanted is None:
                        raise unexpected(info.name, None)
                    stem, _, extension = info.name.rpartition(".")
                    expected = wanted.member or None
                    if (expected is not None and info.name != expected) or stem != wanted.id or extension not in AUDIO_EXTENSIONS:
                        raise unexpected(info.name, wanted)
                    audio = _read_member(tar, info, tar_name)
                    if layout == "shar":
                        pending = (wanted, extension, audio)
                        continue
                    position += 1
                    yield ReadMember(wanted.id, audio, extension, wanted.text, wanted.duration, wanted.fields, wanted.speaker)
                if pending is not None:
                    raise UsageError(f"{tar_name}: member {pending[0].id}.{pending[1]} is not followed by {pending[0].id}.json (the tar ends)")
        except (tarfile.TarError, EOFError, zlib.error) as error:
            raise UsageError(f"{tar_name}: not a readable tar file ({error})") from None
    if position < len(entries):
        missing = entries[position]
        raise UsageError(f"{tar_name}: no audio member for {missing.id!r} ({manifest_name} line {missing.line})")


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo, tar_name: str) -> bytes:
    stream = tar.extractfile(info)
    if stream is None:
        raise UsageError(f"{tar_name}: member {info.name!r} is not a regular file")
    return stream.read()
