"""Real local services for the tests: ``moto_server`` (DynamoDB) and ``redis-server``.

Loaded as a pytest plugin by ``tests/conftest.py``. Each service is one process per test session,
bound to 127.0.0.1 on a free port, started on first use and stopped (terminate, then kill) at the
end of the session. The benchmarks start their services with the same functions.

Fixtures
--------
``moto_endpoint``
    URL of a moto server. Also sets ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` to ``testing``
    and ``AWS_DEFAULT_REGION`` to ``us-east-1`` for the session (restored afterwards).
``redis_url``
    ``redis://127.0.0.1:<port>/0`` of a redis-server without persistence. Skips, saying how to
    install it, when the ``redis-server`` binary is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class ServiceError(RuntimeError):
    """A service process could not be started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """A child process serving on 127.0.0.1:port, with its output kept in a log file."""

    def __init__(self, name: str, argv: list[str], port: int, ready: Callable[[int], bool]) -> None:
        self.name = name
        self.port = port
        self._log = tempfile.NamedTemporaryFile(prefix=f"larder-{name}-", suffix=".log", delete=False)
        self.log_path = Path(self._log.name)
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                log = self.log_text()
                self.stop()
                raise ServiceError(
                    f"{name} exited with code {self.proc.returncode} while starting: {log[-2000:]}"
                )
            if ready(port):
                return
            if time.monotonic() > deadline:
                log = self.log_text()
                self.stop()
                raise ServiceError(
                    f"{name} did not answer on port {port} within {START_TIMEOUT}s: {log[-2000:]}"
                )
            time.sleep(0.05)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the process, kill it if it does not exit in time, remove the log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        self._log.close()
        self.log_path.unlink(missing_ok=True)


def _http_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except (urllib.error.URLError, OSError):
        return False


def _redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def moto_server_path() -> str:
    """The ``moto_server`` script next to the running Python (the venv's bin), else on PATH."""
    local = Path(sys.executable).parent / "moto_server"
    if local.exists():
        return str(local)
    found = shutil.which("moto_server")
    if found is None:
        raise ServiceError("moto_server not found: install the dev extras (`pip install -e '.[dev]'`).")
    return found


def _start(factory: Callable[[int], ServiceProcess], attempts: int = 3) -> ServiceProcess:
    last: Exception | None = None
    for _ in range(attempts):  # a free port can be taken between choosing and binding it
        try:
            return factory(free_port())
        except ServiceError as exc:
            last = exc
    raise ServiceError(str(last))


def start_moto() -> ServiceProcess:
    """Start ``moto_server -H 127.0.0.1 -p <free port>``."""
    exe = moto_server_path()
    return _start(
        lambda port: ServiceProcess(
            "moto_server", [exe, "-H", "127.0.0.1", "-p", str(port)], port, _http_ready
        )
    )


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


def start_redis() -> ServiceProcess:
    """Start ``redis-server`` on a free port without persistence."""
    exe = redis_server_path()
    if exe is None:
        raise ServiceError("redis-server not found on PATH: install it with `apt-get install redis-server`.")
    return _start(
        lambda port: ServiceProcess(
            "redis-server",
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            port,
            _redis_ready,
        )
    )


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    saved = {k: os.environ.get(k) for k in AWS_TEST_ENV}
    os.environ.update(AWS_TEST_ENV)
    service = start_moto()
    try:
        yield f"http://127.0.0.1:{service.port}"
    finally:
        service.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if redis_server_path() is None:
        pytest.skip(
            "redis-server is not installed, so the Redis online-store tests cannot run: install it "
            "with `apt-get install redis-server` (the tests start their own server on a free port)."
        )
    service = start_redis()
    try:
        yield f"redis://127.0.0.1:{service.port}/0"
    finally:
        service.stop()
