"""A real S3 API on localhost for tests: moto's server application in a subprocess.

``python tests/s3server.py`` serves moto's WSGI application (the one ``moto_server`` runs) on a free
port of 127.0.0.1, prints the port, and exits when its standard input closes, so it never outlives the
test session that started it (not even one killed with ``kill -9``).

One difference from ``moto_server``: requests are handled one at a time (a lock around the app). moto
checks a conditional write (``If-None-Match``, ``If-Match``) and then stores the object in two steps,
so two concurrent requests could both pass the check; AWS S3 makes each conditional write atomic, and
serialising requests gives the tests that guarantee.

From a test module::

    from tests.s3server import s3_bucket, s3_server  # noqa: F401  (pytest fixtures)

    def test_something(s3_bucket):  # "s3://bucket-3", created empty; AWS_* point at the server
        ...
"""

from __future__ import annotations

import http.client
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import pytest

__all__ = ["S3Server", "s3_bucket", "s3_server", "start_s3_server"]

_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION")


@dataclass
class S3Server:
    """A running server: its endpoint, the environment that points clients at it, and ``stop()``."""

    process: subprocess.Popen[bytes]
    endpoint: str
    env: dict[str, str]
    _log: IO[bytes] | None = None
    _buckets: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def client(self) -> Any:
        """A boto3 S3 client for this server."""
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (``bucket-N`` unless named) and return its ``s3://`` URL."""
        name = name or f"bucket-{next(self._buckets)}"
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def stop(self) -> None:
        """Stop the server (closing its stdin ends it; terminate, then kill, if it does not)."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.terminate()
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self._log is not None:
            self._log.close()


def start_s3_server(timeout: float = 30.0) -> S3Server:
    """Start the server subprocess and wait until it answers."""
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
    )
    assert process.stdout is not None
    port_line = process.stdout.readline().strip()  # the server prints its port once it listens
    if not port_line.isdigit():
        process.kill()
        process.wait()
        log.seek(0)
        raise RuntimeError(f"the moto S3 server did not start: {log.read().decode(errors='replace')[-2000:]}")
    endpoint = f"http://127.0.0.1:{int(port_line)}"
    deadline = time.monotonic() + timeout
    while True:
        try:  # any HTTP answer will do (make_server listens before the port is printed)
            connection = http.client.HTTPConnection("127.0.0.1", int(port_line), timeout=2)
            connection.request("GET", "/")
            connection.getresponse().read()
            connection.close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                process.wait()
                raise RuntimeError("the moto S3 server does not answer") from None
            time.sleep(0.1)
    env = dict(_CREDENTIALS, AWS_ENDPOINT_URL=endpoint)
    return S3Server(process, endpoint, env, log)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto S3 server for the session; ``AWS_*`` point at it (subprocesses inherit them)."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install 'moto[server]')")
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'trtgen[s3]')")
    server = start_s3_server()
    patch = pytest.MonkeyPatch()
    for name in _UNSET:
        patch.delenv(name, raising=False)
    for name, value in server.env.items():
        patch.setenv(name, value)
    try:
        yield server
    finally:
        patch.undo()
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket: ``s3://bucket-N``."""
    return s3_server.create_bucket()


def _serve() -> None:
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    one_at_a_time = threading.Lock()

    def serialised(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with one_at_a_time:
            response = app(environ, start_response)
            try:
                return list(response)
            finally:
                close = getattr(response, "close", None)
                if close is not None:
                    close()

    server = make_server("127.0.0.1", 0, serialised, threaded=True, request_handler=MotoRequestHandler)

    def watch_parent() -> None:
        sys.stdin.buffer.read()  # returns at EOF: the parent closed the pipe, or died
        os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    print(server.port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    _serve()
