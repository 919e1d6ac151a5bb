"""Finding (or starting) the Spark session the Spark engine runs on, and what that session can do.

The session is the active one when the caller has one (``SparkSession.getActiveSession()``: a notebook,
``spark-submit``, a test fixture), else one started from ``larder.yaml``'s ``spark_master`` (default
``local[*]``) and ``spark_conf``. Before pyspark starts a JVM, :func:`require_spark` checks that pyspark
is importable and that a Java runtime exists, and says how to fix either: without these checks the user
sees a ``JAVA_GATEWAY_EXITED`` traceback or an ``ImportError``.

:func:`has_delta_jars` detects a session configured with Delta Lake's Spark jars (``delta-spark``:
Databricks, EMR, or ``spark.jars.packages=io.delta:delta-spark_...``). Such a session reads Delta tables
with its own reader and merges with ``MERGE INTO``; any other session reads a table's active files and
commits through ``deltalake`` (see :mod:`larder.offline.spark.storage`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from larder.errors import ConfigError, MissingExtraError

#: Conf values larder sets on the sessions it starts itself (a caller's session is left as it is).
DEFAULT_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def java_home_binary() -> str | None:
    """The ``java`` binary Spark would start: ``$JAVA_HOME/bin/java``, else the one on ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        return str(candidate) if candidate.exists() else None
    return shutil.which("java")


def require_spark() -> Any:
    """Import pyspark, checking that a Java runtime is there to run it; returns the ``pyspark`` module.

    Raises
    ------
    MissingExtraError
        pyspark is not installed (``pip install 'larder[spark]'``).
    ConfigError
        No Java runtime: ``JAVA_HOME`` points nowhere, or there is no ``java`` on ``PATH``.
    """
    try:
        import pyspark
    except ImportError as exc:
        raise MissingExtraError("The Spark engine (engine: spark)", "spark", "pyspark") from exc
    if java_home_binary() is None:
        where = (f"JAVA_HOME={os.environ['JAVA_HOME']!r} has no bin/java" if os.environ.get("JAVA_HOME")
                 else "there is no `java` on PATH and JAVA_HOME is not set")
        raise ConfigError(
            f"The Spark engine needs a Java runtime (17 or newer), but {where}. Install one (Debian/Ubuntu: "
            "`apt-get install openjdk-17-jre-headless`; macOS: `brew install openjdk@17`) or point JAVA_HOME "
            "at it. pyspark itself is installed with `pip install 'larder[spark]'`."
        )
    return pyspark


def _python_for_workers() -> None:
    """Executors on this machine run the driver's interpreter (so they import the same larder, duckdb and
    pyarrow) unless the user chose another with ``PYSPARK_PYTHON``."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def active_session() -> Any | None:
    """The caller's active SparkSession, if there is one (classic or Spark Connect)."""
    require_spark()
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def get_session(master: str | None = None, conf: Mapping[str, Any] | None = None) -> Any:
    """The active SparkSession, else one started on ``master`` (default ``local[*]``) with ``conf``.

    ``conf`` values are applied on top of :data:`DEFAULT_CONF` for a session larder starts. When a session
    is already active, ``master`` must agree with it and ``conf`` is applied where Spark allows changing it
    at runtime (SQL settings); a static setting that differs is an error naming it.
    """
    require_spark()
    from pyspark.sql import SparkSession

    conf = {str(k): str(v) for k, v in (conf or {}).items()}
    session = SparkSession.getActiveSession()
    if session is not None:
        if master is not None and _master_of(session) not in (None, master):
            raise ConfigError(
                f"larder.yaml sets spark_master={master!r} but the active SparkSession runs on "
                f"{_master_of(session)!r}. Stop that session, or remove spark_master from larder.yaml to use it."
            )
        for key, value in conf.items():
            _apply_runtime_conf(session, key, value)
        return session
    _python_for_workers()
    builder = SparkSession.builder.master(master or "local[*]").appName("larder")
    for key, value in {**DEFAULT_CONF, **conf}.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:  # py4j / JVM start failures
        raise ConfigError(
            f"Could not start a Spark session on {master or 'local[*]'!r}: {type(exc).__name__}: {exc}. Check "
            "spark_master and spark_conf in larder.yaml, and that Java 17+ runs (`java -version`)."
        ) from exc


def _master_of(session: Any) -> str | None:
    try:
        return str(session.sparkContext.master)
    except Exception:  # Spark Connect sessions have no SparkContext
        return None


def _apply_runtime_conf(session: Any, key: str, value: str) -> None:
    try:
        current = session.conf.get(key, None)
    except Exception:
        current = None
    if current == value:
        return
    try:
        session.conf.set(key, value)
    except Exception as exc:
        raise ConfigError(
            f"spark_conf sets {key}={value!r}, but the active SparkSession has {current!r} and Spark cannot "
            f"change it at runtime ({type(exc).__name__}). Set it when the session is built instead."
        ) from exc


def has_delta_jars(session: Any) -> bool:
    """Whether ``session`` is configured with Delta Lake's Spark integration and its classes load.

    True when ``spark.sql.extensions`` names :data:`DELTA_EXTENSION` and the JVM can load
    ``io.delta.tables.DeltaTable`` (a Spark Connect session, which has no local JVM, is trusted on its
    configuration alone). A session that names the extension without the jars is reported as not having
    them: its reads would fail.
    """
    try:
        extensions = session.conf.get("spark.sql.extensions", "") or ""
    except Exception:
        return False
    if DELTA_EXTENSION not in [e.strip() for e in extensions.split(",")]:
        return False
    jvm = getattr(session, "_jvm", None)
    if jvm is None:
        return True
    try:
        jvm.java.lang.Thread.currentThread().getContextClassLoader().loadClass("io.delta.tables.DeltaTable")
    except Exception:
        return False
    return True


__all__ = ["DEFAULT_CONF", "active_session", "get_session", "has_delta_jars", "java_home_binary", "require_spark"]
