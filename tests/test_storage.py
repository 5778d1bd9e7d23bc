"""trtgen.storage against local disk and a real S3 API (moto's server on localhost, tests/s3server.py).

The same operations give the same results on both; writes are whole or absent (a failing source, a
multipart upload); the object-storage lock admits one writer, names its holder, is taken over at once
from a process killed on this host and only after expiry from another host, and of several processes
racing for it exactly one wins.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

from trtgen.commands.copylock import CopyLocked
from trtgen.errors import MissingInputError, OutputError, UsageError
from trtgen.commands.copylock import ObjectLock
from trtgen.storage import MIN_PART_SIZE, ObjectStorage, Storage, is_url

if TYPE_CHECKING:
    from tests.s3server import S3Server


REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL_PARTS = MIN_PART_SIZE  # 5 MiB parts: a 11 MiB object is a three-part upload


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """The same copy location on local disk and on S3, with 5 MiB parts (multipart above 5 MiB)."""
    if request.param == "local":
        return Storage.at(tmp_path / "out" / "copy", part_size=SMALL_PARTS)
    bucket = request.getfixturevalue("s3_bucket")
    return Storage.at(f"{bucket}/out/copy", part_size=SMALL_PARTS)


def _exercise(storage: Storage) -> dict[str, Any]:
    """Every operation once; the results, with the root's URL replaced by ROOT."""
    root = storage.url()
    storage.write_bytes("settings.json", b'{"layout": "shar"}\n')
    storage.write_bytes("shards/00000.json", b"zero")
    storage.write_bytes("shards/00001.json", b"one")
    storage.write_bytes("shards-old/x", b"not under shards/")
    storage.write_bytes("shards/00001.json", b"one, rewritten")
    with storage.open_read("shards/00000.json") as handle:
        opened = handle.read()
    results: dict[str, Any] = {
        "list": storage.list(),
        "list shards": storage.list("shards"),
        "list shards/": storage.list("shards/"),
        "list a file": storage.list("settings.json"),
        "list nothing": storage.list("nothing"),
        "exists": [storage.exists(n) for n in ("settings.json", "shards", "shards/00001.json", "nothing")],
        "size": storage.size("shards/00001.json"),
        "read": storage.read_bytes("shards/00001.json"),
        "open": opened,
        "sha256": storage.sha256("shards/00001.json"),
        "url": storage.url("shards/00001.json").replace(root, "ROOT"),
        "child list": storage.child("shards").list(),
        "child read": storage.child("shards").read_bytes("00000.json"),
        "child url": storage.child("shards").url("00000.json").replace(root, "ROOT"),
        "empty": storage.write_bytes("empty", b"") or storage.read_bytes("empty"),
    }
    for name in ("nothing", "shards"):
        for operation in (storage.read_bytes, storage.size, storage.sha256, storage.open_read):
            with pytest.raises(MissingInputError, match=name):
                operation(name)
    storage.remove("shards/00000.json")
    storage.remove("nothing")  # no error
    results["after remove"] = storage.list("shards")
    return results


def test_local_and_s3_give_the_same_results(tmp_path: Path, s3_bucket: str) -> None:
    local = _exercise(Storage.at(tmp_path / "copy"))
    remote = _exercise(Storage.at(f"{s3_bucket}/copy"))
    assert local == remote
    assert local["list"] == ["settings.json", "shards-old/x", "shards/00000.json", "shards/00001.json"]
    assert local["list shards"] == local["list shards/"] == ["shards/00000.json", "shards/00001.json"]
    assert local["list a file"] == ["settings.json"] and local["list nothing"] == []
    assert local["exists"] == [True, False, True, False]
    assert local["read"] == b"one, rewritten" and local["size"] == len(b"one, rewritten")
    assert local["sha256"] == hashlib.sha256(b"one, rewritten").hexdigest()
    assert local["url"] == "ROOT/shards/00001.json" and local["child url"] == "ROOT/shards/00000.json"
    assert local["child list"] == ["00000.json", "00001.json"] and local["child read"] == b"zero"
    assert local["after remove"] == ["shards/00001.json"]


def test_locations() -> None:
    local = Storage.at("out/copy")
    assert local.is_local and local.path == Path("out/copy") and local.url("a/b") == "out/copy/a/b"
    as_url = Storage.at("file:///tmp/out%20dir/copy")
    assert as_url.is_local and as_url.path == Path("/tmp/out dir/copy")
    assert as_url.url("a") == "file:///tmp/out%20dir/copy/a"
    assert is_url("s3://b/p") and is_url("file:///x") and not is_url("out/copy") and not is_url(Path("s3:/x"))
    with pytest.raises(UsageError, match=r"--out foo://bucket/x: unknown storage scheme foo://"):
        Storage.at("foo://bucket/x")
    with pytest.raises(UsageError, match=r"name a bucket"):
        Storage.at("s3://")
    with pytest.raises(ValueError):
        local.url("../elsewhere")
    with pytest.raises(AttributeError, match="not on the local file system"):
        _ = ObjectStorage(None, "s3", "bucket/p").path


def test_gs_without_gcsfs_names_the_extra() -> None:
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gcsfs is installed")
    with pytest.raises(UsageError, match=r"pip install 'trtgen\[gcs\]'"):
        Storage.at("gs://bucket/prefix")


def test_lock_refuses_local_and_gcs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="CopyLock"):
        ObjectLock(Storage.at(tmp_path))
    with pytest.raises(UsageError, match="generation"):
        ObjectLock(ObjectStorage(None, "gs", "bucket/copy"))


class _Failing(IO[bytes]):
    """A source that yields ``size`` bytes, then raises ``error`` instead of the rest."""

    def __init__(self, size: int, error: BaseException) -> None:
        self.left, self.error = size, error

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            raise self.error
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"\x01" * n


def _pending_uploads(storage: Storage) -> list[Any]:
    if storage.is_local:
        return []
    assert isinstance(storage, ObjectStorage)
    bucket = storage.root.split("/")[0]
    return storage.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])


@pytest.mark.parametrize(
    "size, error",
    [(1000, RuntimeError("source failed")), (11 * 2**20, RuntimeError("source failed")), (6 * 2**20, KeyboardInterrupt())],
    ids=["one-put", "multipart", "multipart-ctrl-c"],
)
def test_a_failed_write_leaves_no_object(store: Storage, size: int, error: BaseException) -> None:
    store.write_bytes("kept", b"old")
    with pytest.raises(type(error)):
        store.write_stream("kept", _Failing(size, error))
    with pytest.raises(type(error)):
        store.write_stream("new", _Failing(size, error))
    assert store.read_bytes("kept") == b"old"
    assert not store.exists("new")
    assert store.list() == ["kept"]  # no temporaries either
    assert _pending_uploads(store) == []  # the multipart upload was aborted


def test_put_file_of_a_multipart_size_is_whole(store: Storage, tmp_path: Path) -> None:
    data = os.urandom(11 * 2**20 + 123)
    source = tmp_path / "shard.tar"
    source.write_bytes(data)
    store.put_file(source, "shards/00000.tar")
    assert store.size("shards/00000.tar") == len(data)
    assert store.sha256("shards/00000.tar") == hashlib.sha256(data).hexdigest()
    if not store.is_local:
        assert isinstance(store, ObjectStorage)
        bucket, key = store._bucket_key("shards/00000.tar")
        etag = store.fs.call_s3("head_object", Bucket=bucket, Key=key)["ETag"]
        assert etag.strip('"').endswith("-3")  # three parts: 5 + 5 + 1 MiB
    assert _pending_uploads(store) == []
    with pytest.raises(MissingInputError):
        store.put_file(tmp_path / "missing", "x")


def test_unreachable_store_is_an_output_error(s3_server: S3Server) -> None:
    import s3fs

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fs = s3fs.S3FileSystem(
        client_kwargs={"endpoint_url": f"http://127.0.0.1:{port}"}, config_kwargs={"retries": {"max_attempts": 1}},
        skip_instance_cache=True,
    )
    fs.retries = 1
    storage = ObjectStorage(fs, "s3", "bucket-x/copy")
    with pytest.raises(OutputError, match="while writing s3://bucket-x/copy/a"):
        storage.write_bytes("a", b"x")
    with pytest.raises(OutputError, match="while reading s3://bucket-x/copy/a"):
        storage.read_bytes("a")


# --- the object-storage lock ----------------------------------------------------------------------

_HOLDER = """
import os, signal, sys, time
from trtgen.commands.copylock import ObjectLock
from trtgen.storage import Storage
lock = ObjectLock(Storage.at(sys.argv[1]), ttl=float(sys.argv[2]))
lock.acquire()
print("held", os.getpid(), flush=True)
if sys.argv[3] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
while lock.held:
    time.sleep(0.05)
print("lost", flush=True)
"""


def _holder(url: str, ttl: float, then: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, str(ttl), then], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("held"), line
    return process


def test_lock_is_exclusive_names_its_holder_and_release_frees_it(s3_bucket: str) -> None:
    storage = Storage.at(f"{s3_bucket}/copy")
    first = ObjectLock(storage)
    first.acquire()
    assert first.held and storage.exists(".lock")
    second = ObjectLock(storage)
    holder = rf"pid {os.getpid()} on host {socket.gethostname()}, since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d"
    with pytest.raises(CopyLocked, match=holder):
        second.acquire()
    assert not second.held
    first.release()
    first.release()  # idempotent
    assert not first.held and not storage.exists(".lock")
    second.acquire()
    assert second.held
    second.release()
    assert storage.list() == []


def test_lock_of_a_process_killed_on_this_host_is_taken_over_at_once(s3_bucket: str) -> None:
    url = f"{s3_bucket}/copy"
    process = _holder(url, 120, "kill")
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # dead, not yet reaped: a zombie
    storage = Storage.at(url)
    assert json.loads(storage.read_bytes(".lock"))["pid"] == process.pid
    start = time.monotonic()
    lock = ObjectLock(storage)
    lock.acquire()  # the holder's 120 s TTL is not waited for
    assert time.monotonic() - start < 5
    process.wait()
    process.stdout.close()  # type: ignore[union-attr]
    assert json.loads(storage.read_bytes(".lock"))["pid"] == os.getpid()
    lock.release()


def test_lock_of_another_host_is_taken_over_only_after_expiry(s3_bucket: str) -> None:
    storage = Storage.at(f"{s3_bucket}/copy")
    record = {"host": "elsewhere", "pid": 1, "started": "2026-01-01 00:00:00 +0000", "node": "elsewhere|boot|pid:[1]",
              "ttl": 1.0, "token": "theirs"}
    storage.write_bytes(".lock", json.dumps(record).encode())
    written = time.monotonic()
    lock = ObjectLock(storage)
    with pytest.raises(CopyLocked, match="pid 1 on host elsewhere"):
        lock.acquire()
    while True:
        try:
            lock.acquire()
            break
        except CopyLocked:
            assert time.monotonic() - written < 6
            time.sleep(0.25)
    # ttl 1 s, +1 s for HTTP dates' resolution, measured in whole seconds by the store
    assert time.monotonic() - written > 1.0
    lock.release()


def test_heartbeat_keeps_a_live_lock_and_a_stopped_holder_loses_it(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{s3_bucket}/copy"
    process = _holder(url, 3, "hold")  # refreshes every 0.75 s
    monkeypatch.setattr("trtgen.commands.copylock._node", lambda: "another|host|here")  # this test plays another host
    storage = Storage.at(url)
    lock = ObjectLock(storage)
    try:
        time.sleep(4.5)  # longer than the TTL: only refreshes keep it
        with pytest.raises(CopyLocked, match=f"pid {process.pid} "):
            lock.acquire()
        os.kill(process.pid, signal.SIGSTOP)  # alive but silent: a suspended machine, a network cut
        start = time.monotonic()
        while True:
            try:
                lock.acquire()
                break
            except CopyLocked:
                assert time.monotonic() - start < 10
                time.sleep(0.25)
        assert time.monotonic() - start > 2.0
        os.kill(process.pid, signal.SIGCONT)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "lost"  # on waking it finds its lease ran out
        assert process.wait(10) == 0
        assert lock.held and json.loads(storage.read_bytes(".lock"))["pid"] == os.getpid()
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
        process.wait()
        process.stdout.close()  # type: ignore[union-attr]
        lock.release()


def test_a_holder_that_cannot_refresh_gives_the_lock_up_within_its_ttl(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = Storage.at(f"{s3_bucket}/copy")
    lost: list[str] = []
    lock = ObjectLock(storage, ttl=1.0, on_lost=lost.append)
    lock.acquire()

    def network_down(*args: Any, **kwargs: Any) -> Any:
        raise OutputError(OSError(errno.ENETUNREACH, "network is unreachable"), storage.url(".lock"), "locking")

    monkeypatch.setattr(lock, "_call", network_down)  # refreshes fail from now on
    time.sleep(0.5)
    assert lock.held  # within its TTL
    time.sleep(0.8)
    assert not lock.held  # before any taker may see it stale (TTL + 1 s on the store's clock)
    with pytest.raises(CopyLocked, match="could not refresh it for 1 s"):
        lock.check()
    assert len(lost) == 1 and "could not refresh" in lost[0]
    monkeypatch.undo()  # the network is back; no one took the lock over: release removes it
    assert storage.exists(".lock")
    lock.release()
    assert not storage.exists(".lock")


def test_a_refresh_that_finds_the_lock_taken_over_ends_the_lease(s3_bucket: str) -> None:
    storage = Storage.at(f"{s3_bucket}/copy")
    lock = ObjectLock(storage, ttl=1.0)
    lock.acquire()
    record = {"host": "elsewhere", "pid": 7, "started": "now", "ttl": 120, "token": "theirs"}
    storage.write_bytes(".lock", json.dumps(record).encode())  # as a taker's If-Match write would
    deadline = time.monotonic() + 1.0
    while lock.held and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(CopyLocked, match="taken over by pid 7 on host elsewhere"):
        lock.check()
    lock.release()
    assert json.loads(storage.read_bytes(".lock"))["token"] == "theirs"  # not ours to remove


_RACER = """
import sys
from trtgen.commands.copylock import CopyLocked
from trtgen.commands.copylock import ObjectLock
from trtgen.storage import Storage
Storage.at(sys.argv[1]).exists("warm-up")  # imported and connected before the first start
print("ready", flush=True)
for line in sys.stdin:  # one round per line: the copy to lock; then a line to release it
    lock = ObjectLock(Storage.at(line.strip()), ttl=30)
    try:
        lock.acquire()
        print("won", flush=True)
    except CopyLocked:
        print("refused", flush=True)
    sys.stdin.readline()  # hold it until every racer has tried
    lock.release()
    print("released", flush=True)
"""


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_racing_processes_exactly_one_wins(s3_bucket: str) -> None:
    """Five processes race for a free lock, and for a stale one (its holder died on this host), three
    times each: exactly one wins each round, and the lock names it."""
    from trtgen.commands.copylock import _node

    racers = [
        subprocess.Popen([sys.executable, "-c", _RACER, s3_bucket], cwd=REPO_ROOT, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
        for _ in range(5)
    ]

    def tell_all(line: str) -> list[str]:
        for racer in racers:
            racer.stdin.write(line + "\n")  # type: ignore[union-attr]
            racer.stdin.flush()  # type: ignore[union-attr]
        return [racer.stdout.readline().strip() for racer in racers]  # type: ignore[union-attr]

    try:
        assert [racer.stdout.readline().strip() for racer in racers] == ["ready"] * 5  # type: ignore[union-attr]
        for round_, start in enumerate(["free", "stale"] * 3):
            url = f"{s3_bucket}/copy-{round_}"
            storage = Storage.at(url)
            if start == "stale":  # left by a dead process of this host: every racer may take it over, one does
                record = {"host": socket.gethostname(), "pid": _dead_pid(), "started": "then", "node": _node(), "ttl": 120}
                storage.write_bytes(".lock", json.dumps(record).encode())
            results = tell_all(url)
            assert sorted(results) == ["refused"] * 4 + ["won"], (start, results)
            winner = racers[results.index("won")]
            assert json.loads(storage.read_bytes(".lock"))["pid"] == winner.pid
            assert tell_all("release") == ["released"] * 5
            assert not storage.exists(".lock")  # the winner released it
    finally:
        for racer in racers:
            racer.stdin.close()  # type: ignore[union-attr]
        for racer in racers:
            assert racer.wait(30) == 0
            racer.stdout.close()  # type: ignore[union-attr]
