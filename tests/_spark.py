"""One local SparkSession for the whole test session (``local[2]``, small shuffles, no UI).

Loaded as a pytest plugin by ``tests/conftest.py``. The session starts on first use of the ``spark``
fixture and stops at the end of the test session. Without pyspark or Java the Spark tests are skipped
with the reason, unless ``LARDER_REQUIRE_SPARK=1`` (set by ``.ci/run``, which installs Java): then they
fail, so CI can never skip them silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: The conf of the test session: two cores, few shuffle partitions, modest memory, no UI.
TEST_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "1g",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.pyspark.udf.faulthandler.enabled": "true",
}


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from larder.errors import LarderError
    from larder.offline.spark.session import get_session, require_spark

    try:
        require_spark()
    except LarderError as exc:
        if os.environ.get("LARDER_REQUIRE_SPARK") == "1":
            raise
        pytest.skip(f"Spark tests need pyspark and Java: {exc}")
    session = get_session("local[2]", TEST_CONF)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_engine(spark: Any) -> Any:
    from larder.offline.spark import SparkEngine

    return SparkEngine(spark)


@pytest.fixture()
def fe_spark(larder_root: Any, spark: Any) -> Iterator[Any]:
    """A client whose larder.yaml selects the Spark engine (on the test session)."""
    from larder.client import FeatureEngineeringClient

    larder_root.mkdir(parents=True, exist_ok=True)
    (larder_root / "larder.yaml").write_text("engine: spark\n")
    client = FeatureEngineeringClient(root=larder_root)
    yield client
    client.close()


@pytest.fixture(params=["duckdb", "spark"])
def engine(request: pytest.FixtureRequest) -> Any:
    """Each offline engine in turn: the DuckDB engine, then the Spark engine on the test session."""
    if request.param == "duckdb":
        from larder.offline.engine import DuckDBEngine

        return DuckDBEngine()
    return request.getfixturevalue("spark_engine")


# ------------------------------------------------------------------------------ a standalone cluster

CLUSTER_START_TIMEOUT = 180.0


class SparkCluster:
    """A standalone Spark master and ``workers`` workers on 127.0.0.1, started from pyspark's own
    ``bin/spark-class``; each process logs to a file kept for error messages and removed on stop."""

    def __init__(self, workers: int = 2, cores: int = 1, memory: str = "768m") -> None:
        import pyspark

        from _services import free_port

        self.spark_class = str(Path(pyspark.__file__).parent / "bin" / "spark-class")
        self.env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1",
                    "SPARK_HOME": str(Path(pyspark.__file__).parent)}
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.work = Path(tempfile.mkdtemp(prefix="larder-spark-cluster-"))
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        try:
            self._start("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                   "--port", str(self.port), "--webui-port", str(self.ui_port)])
            self._wait(lambda: self._alive_workers() is not None, "the master to answer")
            for i in range(workers):
                self._start(f"worker-{i}", ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                            "--cores", str(cores), "--memory", memory, "--webui-port",
                                            str(free_port()), "--work-dir", str(self.work / f"w{i}"), self.url])
            self._wait(lambda: self._alive_workers() == workers, f"{workers} workers to register")
        except BaseException:
            self.stop()
            raise

    def _start(self, name: str, args: list[str]) -> None:
        log = self.work / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([self.spark_class, *args], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)
        self.procs.append((proc, log))

    def _alive_workers(self) -> int | None:
        import json
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as resp:
                return int(json.loads(resp.read()).get("aliveworkers", 0))
        except (OSError, ValueError):
            return None

    def _wait(self, ok: Any, what: str) -> None:
        deadline = time.monotonic() + CLUSTER_START_TIMEOUT
        while not ok():
            dead = [log for proc, log in self.procs if proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}" for _, log in self.procs)
                raise RuntimeError(f"The Spark cluster failed waiting for {what}:\n{logs}")
            time.sleep(0.5)

    def stop(self) -> None:
        for proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in reversed(self.procs):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(self.work, ignore_errors=True)


@pytest.fixture(scope="session")
def spark_cluster(spark: Any) -> Iterator[SparkCluster]:
    """A standalone master and two one-core workers on loopback, for the whole test session."""
    cluster = SparkCluster()
    yield cluster
    cluster.stop()
