"""Shard formats (:mod:`trtgen.commands.shard_formats`): Lhotse Shar read by lhotse itself, NeMo tarred
audio read the way NeMo's two readers match members to manifest lines, byte-identical rewrites, and
read-back that refuses a tampered shard."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pytest
import soundfile as sf

from trtgen.commands.shard_formats import (
    LANGUAGE,
    LAYOUTS,
    SHARD_LAYOUTS,
    ReadMember,
    ShardMember,
    member_id_problem,
    read_shard,
    shard_files,
    write_shard,
)
from trtgen.errors import UsageError

# ---------------------------------------------------------------------------------------------- members


def _encode(samples: np.ndarray, sample_rate: int, extension: str) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, sample_rate, format=extension.upper(), subtype="PCM_16")
    return out.getvalue()


def _signal(n: int, sample_rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sample_rate
    return (0.4 * np.sin(2 * np.pi * (180 + 40 * seed) * t) + 0.02 * rng.standard_normal(n)).astype(np.float32)


SPECS = [  # (id for Shar, id for NeMo, samples, sample rate, extension, speaker, custom)
    ("1089-134686-0000_syn.1", "1089-134686-0000_syn1", 8000, 16000, "flac", "1089", {"copy": "syn.1", "dropout": 0.1}),
    ("the_sea.fairies_f000001_c2", "the_sea_fairies_f000001_c2", 12345, 22050, "wav", None, {}),
    ("a.b-c_d", "a-b_c_d", 3001, 24000, "flac", "mary_ann", {"quality": {"ok": True, "reasons": []}, "style": "x/y.wav"}),
    ("zé.ü", "zé-ü", 16000, 16000, "wav", "ünï", {"copy": "c", "note": "naïve – “quotes”"}),
    ("last.one", "last_one", 777, 16000, "flac", None, {"n": 3}),
]
TEXTS = ["HELLO WORLD", "ça va? – ünïcode ‘text’", "line\u2028separator kept", "日本語のテキスト", "x"]


def _members(layout: str, as_path: Path | None = None) -> list[ShardMember]:
    members = []
    for i, (shar_id, nemo_id, n, sr, ext, speaker, custom) in enumerate(SPECS):
        audio: Path | bytes = _encode(_signal(n, sr, i), sr, ext)
        if as_path is not None:
            as_path.mkdir(parents=True, exist_ok=True)
            path = as_path / f"{i:06d}"
            path.write_bytes(audio)
            audio = path
        member_id = shar_id if layout == "shar" else nemo_id
        members.append(ShardMember(member_id, audio, ext, sr, n, TEXTS[i], speaker, dict(custom)))
    return members


def _audio_bytes(member: ShardMember) -> bytes:
    return member.audio.read_bytes() if isinstance(member.audio, Path) else member.audio


def _decoded(data: bytes) -> tuple[np.ndarray, int]:
    samples, sample_rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return samples.T, sample_rate


def _opener(directory: Path) -> Callable[[str], BinaryIO]:
    return lambda name: open(directory / name, "rb")


class _OneWayStream(io.RawIOBase):
    """A file that can only be read forward (no seek, no tell): what an object store's response gives."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(min(len(buffer), 4096))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _streaming_opener(directory: Path) -> Callable[[str], BinaryIO]:
    return lambda name: io.BufferedReader(_OneWayStream((directory / name).read_bytes()))  # type: ignore[return-value]


SHARDS = [[0, 1], [], [2, 3, 4]]
"""Member indices per shard: an empty shard (every row rejected) between two others."""


def _write_copy(layout: str, directory: Path, members: list[ShardMember]) -> dict[str, tuple[int, str]]:
    files: dict[str, tuple[int, str]] = {}
    for index, picks in enumerate(SHARDS):
        files.update(write_shard(layout, index, [members[i] for i in picks], directory))
    return files


def test_layout_names() -> None:
    assert LAYOUTS == ("files", "shar", "nemo-tarred") and SHARD_LAYOUTS == ("shar", "nemo-tarred")
    assert shard_files("shar", 7) == ("shar/cuts.000007.jsonl.gz", "shar/recording.000007.tar")
    assert shard_files("nemo-tarred", 12) == ("sharded_manifests/manifest_12.json", "audio_12.tar")
    for bad in (("files", 0), ("tar", 0), ("shar", -1)):
        with pytest.raises(UsageError):
            shard_files(*bad)


# ------------------------------------------------------------------------------------------- Lhotse Shar


def test_shar_loads_in_lhotse(tmp_path: Path) -> None:
    from lhotse import CutSet

    members = _members("shar")
    files = _write_copy("shar", tmp_path, members)
    assert sorted(files) == sorted(name for i in range(len(SHARDS)) for name in shard_files("shar", i))
    assert sorted(f"shar/{p.name}" for p in (tmp_path / "shar").iterdir()) == sorted(files)

    by_dir = list(CutSet.from_shar(in_dir=tmp_path / "shar"))
    by_fields = list(CutSet.from_shar(fields={
        "cuts": [str(tmp_path / shard_files("shar", i)[0]) for i in range(len(SHARDS))],
        "recording": [str(tmp_path / shard_files("shar", i)[1]) for i in range(len(SHARDS))],
    }))
    for cuts in (by_dir, by_fields):
        assert [c.id for c in cuts] == [m.id for m in members]
        for cut, member in zip(cuts, members):
            expected, sample_rate = _decoded(_audio_bytes(member))
            audio = cut.load_audio()
            assert audio.dtype == np.float32 and audio.shape == (1, member.num_samples)
            assert np.array_equal(audio, expected)  # PCM16: exact, sample for sample
            assert cut.sampling_rate == sample_rate == member.sample_rate
            assert cut.num_samples == member.num_samples and cut.duration == member.num_samples / member.sample_rate
            assert cut.recording.sources[0].type == "memory" and cut.recording.sources[0].source == _audio_bytes(member)
            (supervision,) = cut.supervisions
            assert supervision.text == member.text and supervision.speaker == member.speaker
            assert supervision.language == LANGUAGE and supervision.start == 0 and supervision.duration == cut.duration
            custom = {k: v for k, v in (cut.custom or {}).items() if k not in ("shard_origin", "shar_epoch")}
            assert custom == member.custom


def test_shar_is_what_lhotse_sharwriter_writes(tmp_path: Path) -> None:
    """Our cuts line, tar member names and Recording metadata equal SharWriter's for the same cut (only
    the audio bytes differ: SharWriter re-encodes, we store the file as trtgen encoded it)."""
    from lhotse import MonoCut, Recording, SupervisionSegment
    from lhotse.shar import SharWriter

    members = [m for m in _members("shar") if m.extension == "flac"]
    write_shard("shar", 0, members, tmp_path / "ours")
    (tmp_path / "theirs").mkdir()
    with SharWriter(str(tmp_path / "theirs"), fields={"recording": "flac"}, shard_size=100) as writer:
        for m in members:
            recording = Recording.from_bytes(_audio_bytes(m), recording_id=m.id)
            supervision = SupervisionSegment(id=m.id, recording_id=m.id, start=0, duration=recording.duration, channel=0,
                                             text=m.text, language=LANGUAGE, speaker=m.speaker)
            writer.write(MonoCut(id=m.id, start=0, duration=recording.duration, channel=0, supervisions=[supervision],
                                 recording=recording, custom=m.custom or None))

    def lines(directory: Path) -> list[dict[str, Any]]:
        with gzip.open(next(directory.rglob("cuts.000000.jsonl.gz")), "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def members_of(directory: Path) -> list[tuple[str, Any]]:
        with tarfile.open(next(directory.rglob("recording.000000.tar"))) as tar:
            return [(i.name, json.loads(tar.extractfile(i).read()) if i.name.endswith(".json") else None) for i in tar]

    assert lines(tmp_path / "ours") == lines(tmp_path / "theirs")
    assert members_of(tmp_path / "ours") == members_of(tmp_path / "theirs")


def test_shar_empty_shard_alone(tmp_path: Path) -> None:
    from lhotse import CutSet

    files = write_shard("shar", 0, [], tmp_path)
    assert files[shard_files("shar", 0)[1]][0] == 10240  # two zero blocks, padded to a tar record
    assert gzip.decompress((tmp_path / "shar" / "cuts.000000.jsonl.gz").read_bytes()) == b""
    assert list(CutSet.from_shar(in_dir=tmp_path / "shar")) == []
    assert list(read_shard("shar", 0, _opener(tmp_path))) == []


def test_shar_ids_may_hold_dots_nemo_ids_may_not() -> None:
    assert member_id_problem("shar", "a.b-c_d") is None
    assert member_id_problem("nemo-tarred", "a-b_c_d") is None
    for bad in ("a.b", "x-sub2", "", "a/b"):
        assert member_id_problem("nemo-tarred", bad)
    for bad in ("", "a/b", "a\0b"):
        assert member_id_problem("shar", bad)


# ------------------------------------------------------------------------------------------ NeMo tarred

# NeMo's file discovery and member matching, as in NVIDIA/NeMo at 8cfedd7 (2025-09-20):
VALID_FILE_FORMATS = ("wav", "mp3", "flac", "opus")
"""``nemo/collections/asr/data/audio_to_text.py`` ``VALID_FILE_FORMATS`` (plus soundfile's formats)."""
WDS_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
"""webdataset ``tariterators.base_plus_ext``: the sample key is the member name up to its first dot."""
NEMO_SUB = re.compile(r"^(?P<stem>.+)(?P<sub>-sub\d+)(?P<ext>\.\w+)?$")
"""``nemo/collections/common/data/lhotse/nemo_adapters.py`` ``LazyNeMoTarredIterator.__iter__`` ``offset_pattern``."""


def _expand_nemo(pattern: str) -> list[str]:
    """``audio_to_text.py`` ``expand_sharded_filepaths``: ``_OP_``/``_CL_`` become braces, then braceexpand
    (only the ``{a..b}`` form here)."""
    pattern = pattern.replace("_OP_", "{").replace("_CL_", "}")
    match = re.search(r"\{(\d+)\.\.(\d+)\}", pattern)
    assert match is not None
    return [pattern[: match.start()] + str(i) + pattern[match.end():] for i in range(int(match[1]), int(match[2]) + 1)]


def _nemo_manifest(directory: Path, index: int) -> list[dict[str, Any]]:
    text = (directory / shard_files("nemo-tarred", index)[0]).read_text(encoding="utf-8")
    assert len(text.splitlines()) == text.count("\n")  # one entry per line, whatever splits the lines
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _tar_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path, mode="r|") as tar:
        return [(info.name, tar.extractfile(info).read()) for info in tar]


def _nemo_legacy_read(directory: Path, count: int) -> list[tuple[dict[str, Any], bytes]]:
    """``TarredAudioToCharDataset``: the manifests' ``mapping`` from ``splitext(basename(audio_filepath))``
    (``collections.py`` ``ASRAudioText.__init__``, ``index_by_file_id``), webdataset samples keyed by
    ``base_plus_ext`` and renamed ``audio=VALID_FILE_FORMATS`` (``_TarredAudioToTextDataset.__init__``),
    then ``_filter`` and ``_build_sample``: ``mapping[splitext(basename(key))][offset_id]``."""
    manifests = [str(directory / p) for p in _expand_nemo(f"sharded_manifests/manifest__OP_0..{count - 1}_CL_.json")]
    tars = [str(directory / p) for p in _expand_nemo(f"audio__OP_0..{count - 1}_CL_.tar")]
    entries: list[dict[str, Any]] = []
    for path in manifests:
        with open(path, encoding="utf-8") as f:  # manifest.py item_iter: "for line in f", strip, skip blank
            entries += [json.loads(line) for line in f if line.strip()]
    mapping: dict[str, list[int]] = {}
    for i, entry in enumerate(entries):
        mapping.setdefault(os.path.splitext(os.path.basename(entry["audio_filepath"]))[0], []).append(i)
    out = []
    for tar_path in tars:
        for name, data in _tar_members(Path(tar_path)):
            key, extension = WDS_KEY.match(name).groups()  # type: ignore[union-attr]
            assert extension.lower() in VALID_FILE_FORMATS, f"webdataset would find no audio in sample {key!r}"
            file_id = os.path.splitext(os.path.basename(key))[0]
            assert len(mapping[file_id]) == 1  # one offset: _loop_offsets yields it once
            out.append((entries[mapping[file_id][0]], data))
    return out


def _nemo_lhotse_read(directory: Path, count: int) -> list[tuple[dict[str, Any], bytes]]:
    """``LazyNeMoTarredIterator``: shard ids from the names, each shard's manifest grouped by
    ``audio_filepath`` less a ``-sub<N>`` suffix, each tar member looked up by its name."""
    manifests = _expand_nemo(f"sharded_manifests/manifest__OP_0..{count - 1}_CL_.json")
    tars = _expand_nemo(f"audio__OP_0..{count - 1}_CL_.tar")
    by_id = {int(re.search(r"manifest[^/]*_(\d+)[^/]*\.json", p)[1]): p for p in manifests}  # type: ignore[index]
    tar_by_id = {int(re.search(r"audio[^/]*_(\d+)[^/]*\.tar", p)[1]): p for p in tars}  # type: ignore[index]
    assert set(by_id) == set(tar_by_id)
    out = []
    for sid in sorted(by_id):
        groups: dict[str, list[dict[str, Any]]] = {}
        for line in (directory / by_id[sid]).read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                m = NEMO_SUB.match(entry["audio_filepath"])
                groups.setdefault(m["stem"] + (m["ext"] or "") if m else entry["audio_filepath"], []).append(entry)
        for name, data in _tar_members(directory / tar_by_id[sid]):
            (entry,) = groups[name]  # KeyError: "Mismatched entry between JSON manifest and tar file"
            assert entry["shard_id"] == sid
            out.append((entry, data))
    return out


def test_nemo_read_as_nemo_reads(tmp_path: Path) -> None:
    members = _members("nemo-tarred")
    files = _write_copy("nemo-tarred", tmp_path, members)
    assert sorted(files) == sorted(name for i in range(len(SHARDS)) for name in shard_files("nemo-tarred", i))
    count = len(SHARDS)
    # the names NeMo's brace syntax expands to, and is_tarred_dataset's test (manifest.py)
    assert _expand_nemo("sharded_manifests/manifest__OP_0..2_CL_.json") == [shard_files("nemo-tarred", i)[0] for i in range(count)]
    assert _expand_nemo("audio__OP_0..2_CL_.tar") == [shard_files("nemo-tarred", i)[1] for i in range(count)]
    for i in range(count):
        path = str(tmp_path / shard_files("nemo-tarred", i)[0])
        assert "/sharded_manifests/" in path and re.match(r"^manifest_(\d+)\.json$", os.path.basename(path))

    for index, picks in enumerate(SHARDS):
        lines = _nemo_manifest(tmp_path, index)
        assert len(lines) == len(picks)
        for line, i in zip(lines, picks):
            m = members[i]
            assert {"audio_filepath", "duration", "text", "shard_id"} <= set(line)
            assert line["audio_filepath"] == f"{m.id}.{m.extension}" and "/" not in line["audio_filepath"]
            assert line["shard_id"] == index and line["text"] == m.text and line["lang"] == LANGUAGE
            assert line["duration"] == m.num_samples / m.sample_rate
            assert line.get("speaker") == m.speaker
            assert {k: v for k, v in line.items() if k not in ("audio_filepath", "duration", "text", "shard_id", "lang", "speaker")} == m.custom

    legacy, adapter = _nemo_legacy_read(tmp_path, count), _nemo_lhotse_read(tmp_path, count)
    assert len(legacy) == len(adapter) == len(members)
    for (entry_a, data_a), (entry_b, data_b), member in zip(legacy, adapter, members):
        assert entry_a == entry_b and data_a == data_b == _audio_bytes(member)
        assert entry_a["audio_filepath"] == f"{member.id}.{member.extension}"
        samples, sample_rate = _decoded(data_a)
        assert samples.shape == (1, member.num_samples) and sample_rate == member.sample_rate
        assert entry_a["duration"] == sf.info(io.BytesIO(data_a)).duration  # what NeMo's Lhotse reader computes


def test_nemo_dotted_ids_would_break_nemo_and_are_refused(tmp_path: Path) -> None:
    assert WDS_KEY.match("utt.1.flac").groups() == ("utt", "1.flac")  # webdataset: key "utt", no audio extension
    assert NEMO_SUB.match("utt-sub2.flac")["stem"] == "utt"  # type: ignore[index]
    member = _members("nemo-tarred")[0]
    for bad in ("utt.1", "utt-sub2", "a/b"):
        with pytest.raises(UsageError, match=re.escape(repr(bad))):
            write_shard("nemo-tarred", 0, [ShardMember(bad, member.audio, "flac", 16000, 8000, "x", None, {})], tmp_path)
    assert not any(tmp_path.rglob("*"))


def test_nemo_empty_shard(tmp_path: Path) -> None:
    write_shard("nemo-tarred", 0, [], tmp_path)
    assert (tmp_path / "sharded_manifests" / "manifest_0.json").read_bytes() == b""
    assert _tar_members(tmp_path / "audio_0.tar") == []
    assert list(read_shard("nemo-tarred", 0, _opener(tmp_path))) == []


# ------------------------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("layout", SHARD_LAYOUTS)
def test_same_members_same_bytes(layout: str, tmp_path: Path) -> None:
    as_bytes = _members(layout)
    as_paths = _members(layout, as_path=tmp_path / "spill")
    one = write_shard(layout, 3, as_bytes, tmp_path / "one")
    two = write_shard(layout, 3, as_bytes, tmp_path / "two")
    from_paths = write_shard(layout, 3, as_paths, tmp_path / "paths")
    assert one == two == from_paths
    for name, (size, digest) in one.items():
        data = (tmp_path / "one" / name).read_bytes()
        assert (tmp_path / "two" / name).read_bytes() == data == (tmp_path / "paths" / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, digest)

    reordered = write_shard(layout, 3, as_bytes[::-1], tmp_path / "reordered")
    assert set(reordered) == set(one)
    assert all(reordered[name][1] != one[name][1] for name in one)

    manifest_name, tar_name = shard_files(layout, 3)
    with tarfile.open(tmp_path / "one" / tar_name) as tar:
        assert tar.pax_headers == {}
        for info in tar.getmembers():
            assert (info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode, info.type) == (0, 0, 0, "", "", 0o644, tarfile.REGTYPE)
    if layout == "shar":
        header = (tmp_path / "one" / manifest_name).read_bytes()[:10]
        assert header[:3] == b"\x1f\x8b\x08" and header[3] == 0 and header[4:8] == b"\0\0\0\0"  # no name, mtime 0


# ------------------------------------------------------------------------------------------- read back


def _check_read(read: list[ReadMember], members: list[ShardMember]) -> None:
    assert [r.id for r in read] == [m.id for m in members]
    for r, m in zip(read, members):
        assert r.audio == _audio_bytes(m) and r.extension == m.extension and r.text == m.text
        assert r.duration == m.num_samples / m.sample_rate and r.fields == m.custom and r.speaker == m.speaker


@pytest.mark.parametrize("layout", SHARD_LAYOUTS)
def test_read_shard_round_trips(layout: str, tmp_path: Path) -> None:
    members = _members(layout)
    _write_copy(layout, tmp_path, members)
    for opener in (_opener(tmp_path), _streaming_opener(tmp_path)):
        read = [r for index in range(len(SHARDS)) for r in read_shard(layout, index, opener)]
        _check_read(read, members)


def _rewrite_tar(path: Path, edit: Callable[[list[tuple[tarfile.TarInfo, bytes]]], list[tuple[tarfile.TarInfo, bytes]]]) -> None:
    with tarfile.open(path) as tar:
        items = [(info, tar.extractfile(info).read()) for info in tar.getmembers()]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in edit(items):
            tar.addfile(info, io.BytesIO(data))


def _rewrite_manifest(layout: str, path: Path, edit: Callable[[list[bytes]], list[bytes]]) -> None:
    raw = gzip.decompress(path.read_bytes()) if layout == "shar" else path.read_bytes()
    lines = [line + b"\n" for line in raw.split(b"\n") if line]
    data = b"".join(edit(lines))
    path.write_bytes(gzip.compress(data) if layout == "shar" else data)


def _extra_line(layout: str, lines: list[bytes]) -> list[bytes]:
    extra = json.loads(lines[0])
    if layout == "shar":
        extra["id"] = extra["recording"]["id"] = "extra-utt"
    else:
        extra["audio_filepath"] = "extra-utt.flac"
    return lines + [(json.dumps(extra, ensure_ascii=False) + "\n").encode()]


TAMPERING = {  # case: (file edited, edit, message, file the message starts with)
    "member removed from the tar": ("tar", lambda layout, items: items[:-2] if layout == "shar" else items[:-1], "no audio member for", "tar"),
    "first member removed from the tar": ("tar", lambda layout, items: items[2:] if layout == "shar" else items[1:], "out of order", "tar"),
    "members swapped in the tar": ("tar", lambda layout, items: items[2:4] + items[:2] + items[4:] if layout == "shar" else [items[1], items[0], *items[2:]],
                                   "out of order", "tar"),
    "extra manifest line": ("manifest", _extra_line, "no audio member for 'extra-utt'", "tar"),
    "manifest line removed": ("manifest", lambda layout, lines: lines[:-1], "has no entry in", "tar"),
    "id twice in the manifest": ("manifest", lambda layout, lines: lines + lines[:1], "appears twice", "manifest"),
    "manifest line not JSON": ("manifest", lambda layout, lines: [b"{oops\n", *lines[1:]], "line 1 is not JSON", "manifest"),
}


@pytest.mark.parametrize("layout", SHARD_LAYOUTS)
@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_read_shard_refuses_a_tampered_shard(layout: str, case: str, tmp_path: Path) -> None:
    members = _members(layout)[:3]
    write_shard(layout, 0, members, tmp_path)
    manifest_name, tar_name = shard_files(layout, 0)
    which, edit, message, named = TAMPERING[case]
    if which == "tar":
        _rewrite_tar(tmp_path / tar_name, lambda items: edit(layout, items))
    else:
        _rewrite_manifest(layout, tmp_path / manifest_name, lambda lines: edit(layout, lines))
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        list(read_shard(layout, 0, _opener(tmp_path)))
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"{tar_name if named == 'tar' else manifest_name}: ")
    assert "not JSON" in text or re.search(r"'[^']+'", text)  # names the member (an unparsable line: its number)


def test_read_shard_refuses_shar_audio_without_metadata_and_bad_files(tmp_path: Path) -> None:
    members = _members("shar")[:2]
    write_shard("shar", 0, members, tmp_path)
    _rewrite_tar(tmp_path / "shar" / "recording.000000.tar", lambda items: [items[0], *items[2:]])
    with pytest.raises(UsageError, match=r"^shar/recording\.000000\.tar: member 1089-134686-0000_syn\.1\.flac is not followed by"):
        list(read_shard("shar", 0, _opener(tmp_path)))
    (tmp_path / "shar" / "cuts.000000.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(UsageError, match=r"^shar/cuts\.000000\.jsonl\.gz: not a readable gzip file"):
        list(read_shard("shar", 0, _opener(tmp_path)))

    write_shard("nemo-tarred", 1, _members("nemo-tarred")[:1], tmp_path)
    (tmp_path / "audio_1.tar").write_bytes(b"\x01" * 1000)
    with pytest.raises(UsageError, match=r"^audio_1\.tar: not a readable tar file"):
        list(read_shard("nemo-tarred", 1, _opener(tmp_path)))
    write_shard("nemo-tarred", 1, _members("nemo-tarred")[:1], tmp_path)
    with pytest.raises(UsageError, match=r"shard_id 1, not 2"):
        (tmp_path / "sharded_manifests" / "manifest_1.json").rename(tmp_path / "sharded_manifests" / "manifest_2.json")
        (tmp_path / "audio_1.tar").rename(tmp_path / "audio_2.tar")
        list(read_shard("nemo-tarred", 2, _opener(tmp_path)))


@pytest.mark.parametrize("layout", SHARD_LAYOUTS)
def test_write_shard_refuses_before_writing(layout: str, tmp_path: Path) -> None:
    good = _members(layout)[:2]
    reserved = "shard_id" if layout == "nemo-tarred" else "shard_origin"
    bad_members = {
        "appears twice": [good[0], good[1], good[0]],
        "audio extension 'mp3'": [ShardMember(good[0].id, good[0].audio, "mp3", 16000, 10, "x", None, {})],
        "clash with the format's own": [ShardMember(good[0].id, good[0].audio, "flac", 16000, 10, "x", None, {reserved: 1})],
        "not JSON": [good[1], ShardMember(good[0].id, good[0].audio, "flac", 16000, 10, "x", None, {"q": float("nan")})],
    }
    for message, members in bad_members.items():
        with pytest.raises(UsageError, match=re.escape(message)):
            write_shard(layout, 0, members, tmp_path)
    assert not any(tmp_path.rglob("*"))
