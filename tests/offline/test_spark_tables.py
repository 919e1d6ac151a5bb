"""Feature tables on the Spark engine: Spark DataFrames in and out, all-or-nothing commits, Delta jars."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake.exceptions import CommitFailedError

from larder.errors import ConfigError, MissingExtraError, PrimaryKeyError, ValidationError
from larder.offline import delta
from larder.offline.spark import SparkEngine, session, storage
from larder.offline.storage import Location
from larder.quality import configure_profiling, in_range, not_null, unique

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def houses(spark, ids=(1, 2, 3), qual=(7, 5, 8)):
    return spark.createDataFrame(pd.DataFrame({"Id": list(ids), "Qual": list(qual),
                                               "Area": [1500.0 + i for i in ids]}))


def rows(df) -> list[dict]:
    return sorted((r.asDict() for r in df.collect()), key=lambda r: tuple(str(v) for v in r.values()))


def staged_dirs(fe, name: str) -> list[str]:
    return sorted(p.name for p in Path(fe.get_table(name).path).iterdir() if p.name.startswith("larder-"))


def test_spark_frames_in_and_out(fe_spark, spark):
    t = fe_spark.create_table("houses", primary_keys="Id", df=houses(spark), description="Ames")
    assert t.version == 0 and t.row_count == 3 and [f.dtype for f in t.features] == ["int64", "int64", "double"]
    got = fe_spark.read_table("houses")
    assert type(got).__name__ == "DataFrame" and hasattr(got, "sparkSession")
    assert got.count() == 3 and rows(got)[0] == {"Id": 1, "Qual": 7, "Area": 1501.0}
    # a merge from Spark: updates, inserts, a new column; and pandas is still accepted
    v = fe_spark.write_table("houses", spark.createDataFrame(pd.DataFrame({"Id": [3, 4], "Qual": [9, 6]})))
    assert v == 1
    fe_spark.write_table("houses", pd.DataFrame({"Id": [5], "Qual": [1], "Garage": [2]}))
    by_id = {r["Id"]: r for r in rows(fe_spark.read_table("houses"))}
    assert by_id[3] == {"Id": 3, "Qual": 9, "Area": 1503.0, "Garage": None}
    assert by_id[4]["Area"] is None and by_id[5]["Garage"] == 2
    assert fe_spark.get_table("houses").row_count == 5
    assert fe_spark.read_table("houses", as_of_version=0).count() == 3
    prof = fe_spark.get_profile("houses", 1)
    assert prof.row_count == 2 and prof.column("Qual").mean == 7.5
    # overwrite from Spark keeps the schema
    fe_spark.write_table("houses", houses(spark, ids=(10,), qual=(1,)), mode="overwrite")
    assert rows(fe_spark.read_table("houses")) == [{"Id": 10, "Qual": 1, "Area": 1510.0, "Garage": None}]


def test_a_merge_scans_only_the_files_whose_key_statistics_admit_its_keys(fe_spark, spark):
    """The file pass of a merge skips files whose key range misses the incoming keys' range; a key on
    a file's range edge still finds its file (no duplicate), and skipped files stay as they are."""
    fe_spark.create_table("ranges", primary_keys="Id", df=houses(spark, ids=range(0, 100), qual=[1] * 100))
    for lo in (100, 200):
        fe_spark.write_table("ranges", houses(spark, ids=range(lo, lo + 100), qual=[1] * 100))
    snap = fe_spark._tables.snapshot("ranges")
    actions = pa.table(snap.table.get_add_actions(flatten=True)).to_pylist()
    low = {a["path"] for a in actions if a["max.Id"] < 100}
    edge = {a["path"] for a in actions if a["min.Id"] <= 199 <= a["max.Id"]}
    assert low and len(edge) == 1 and not low & edge
    incoming = houses(spark, ids=(199, 350), qual=(9, 9))
    got = storage.candidate_files(snap, incoming.select("Id"), ["Id"])
    assert got is not None and edge <= got and not low & got
    assert storage.candidate_files(snap, incoming.select("Id").limit(0), ["Id"]) == set()
    assert storage.candidate_files(snap, incoming.select("Qual", "Id"), ["Qual", "Id"]) is None  # two columns

    fe_spark.write_table("ranges", incoming)
    after = fe_spark.read_table("ranges")
    assert after.count() == 301 and after.select("Id").distinct().count() == 301
    assert {r["Id"]: r["Qual"] for r in after.filter("Qual = 9").collect()} == {199: 9, 350: 9}
    kept = {a["path"] for a in pa.table(fe_spark._tables.snapshot("ranges").table.get_add_actions(flatten=True))
            .to_pylist()}
    assert low <= kept and not edge & kept  # the low files untouched, the edge file rewritten


def test_partitioned_table_with_awkward_values(fe_spark, spark):
    df = spark.createDataFrame(pd.DataFrame({"k": [1, 2, 3, 4], "zone": ["a b", "x=1%", None, "a b"],
                                             "v": [1.0, 2.0, 3.0, 4.0]}))
    fe_spark.create_table("zones", primary_keys="k", df=df, partition_columns="zone")
    fe_spark.write_table("zones", spark.createDataFrame(pd.DataFrame({"k": [2, 5], "zone": ["x=1%", None],
                                                                      "v": [20.0, 50.0]})))
    expected = {1: ("a b", 1.0), 2: ("x=1%", 20.0), 3: (None, 3.0), 4: ("a b", 4.0), 5: (None, 50.0)}
    assert {r["k"]: (r["zone"], r["v"]) for r in rows(fe_spark.read_table("zones"))} == expected
    # delta-rs reads what Spark wrote and committed, partition values included
    arrow = fe_spark._tables.read_arrow("zones").to_pylist()
    assert {r["k"]: (r["zone"], r["v"]) for r in arrow} == expected


def test_rejected_writes_change_nothing(fe_spark, spark):
    fe_spark.create_table("houses", primary_keys="Id", df=houses(spark),
                          expectations=[in_range("Qual", min=0), not_null("Area"), unique("Id")])
    before = (fe_spark.get_table("houses").version, staged_dirs(fe_spark, "houses"))
    with pytest.raises(PrimaryKeyError, match="more than once"):
        fe_spark.write_table("houses", houses(spark, ids=(1, 1), qual=(1, 2)))
    with pytest.raises(ValidationError, match="in_range"):
        fe_spark.write_table("houses", houses(spark, ids=(4, 5), qual=(-1, 3)))
    # a failure inside the Spark job that writes the files: nothing committed, the attempt's files removed
    from pyspark.sql import functions as F

    def boom(x: float) -> float:
        if x > 1501:
            raise RuntimeError("boom")
        return x

    bad = houses(spark, ids=(7, 8), qual=(1, 2)).withColumn("Area", F.udf(boom, "double")("Area"))
    eng: SparkEngine = fe_spark._ctx.engine
    from larder.quality import set_expectations

    # nothing but the file writer reads the failing column: no expectations, no profile, no persisted copy
    set_expectations(fe_spark._ctx.catalog, "main.default.houses", [], policy="off")
    configure_profiling(fe_spark._ctx.catalog, "main.default.houses", enabled=False)
    eng.persist_writes = False
    try:
        with pytest.raises(Exception, match="boom"):
            fe_spark.write_table("houses", bad)
    finally:
        eng.persist_writes = True
    assert (fe_spark.get_table("houses").version, staged_dirs(fe_spark, "houses")) == before
    assert fe_spark.read_table("houses").count() == 3


def test_expectations_on_spark_match_pandas(fe_spark, spark):
    from larder.quality.validation import validate as validate_pandas

    pdf = pd.DataFrame({"Id": [1, 2, 2, 3, 4], "Qual": [7, -5, 8, None, 9],
                        "ts": pd.to_datetime(["2024-01-01", "2024-01-02", None, "2024-01-03", "2024-01-04"], utc=True)})
    from larder.quality import allowed_values, freshness, row_count

    exps = [in_range("Qual", min=0), not_null("Qual", max_fraction=0.5), unique("Id"), row_count(min=6),
            freshness("ts", max_age=dt.timedelta(days=3)), allowed_values("Qual", [7, 8, 9])]
    now = dt.datetime(2024, 1, 5, tzinfo=dt.UTC)
    sdf = spark.createDataFrame(pdf).repartition(3)
    got = fe_spark._ctx.engine.validate(sdf, exps, table="t", keys=["Id"], now=now)
    want = validate_pandas(pdf, exps, table="t", keys=["Id"], now=now)
    assert got.row_count == want.row_count == 5
    for g, w in zip(got.results, want.results, strict=True):
        assert (g.label, g.passed, g.failing_count, g.failing_fraction) == (w.label, w.passed, w.failing_count,
                                                                            w.failing_fraction)
        assert sorted(e["Id"] for e in g.examples) == sorted(e["Id"] for e in w.examples)


def test_commit_conflict_retries_on_the_new_version(fe_spark, spark, monkeypatch):
    fe_spark.create_table("houses", primary_keys="Id", df=houses(spark))
    path = fe_spark.get_table("houses").path
    real = storage.write_files
    calls = []

    def write_then_interfere(*args, **kwargs):
        staged = real(*args, **kwargs)
        if len(calls) == 1:  # (calls[0]: the write's rows, staged) another writer commits between this
            # attempt's read and its commit
            delta.merge(Location.parse(path), pa.table({"Id": [2], "Qual": [50], "Area": [0.0]}), keys=["Id"],
                        name="t", evolve=False)
        calls.append(Path(path) / staged.prefix)
        return staged

    monkeypatch.setattr(storage, "write_files", write_then_interfere)
    version = fe_spark.write_table("houses", houses(spark, ids=(3, 4), qual=(30, 40)))
    assert version == 2 and len(calls) == 3  # staged rows, then two attempts
    assert {r["Id"]: r["Qual"] for r in rows(fe_spark.read_table("houses"))} == {1: 7, 2: 50, 3: 30, 4: 40}
    assert not calls[1].exists() and not calls[0].exists()  # the losing attempt's files, the staged rows: gone


def test_staged_rows_are_checked_and_committed_without_a_second_write(fe_spark, spark, monkeypatch):
    """A Spark DataFrame written to an unpartitioned table is written once, under the table, before its
    checks: the checks read those files and the commit takes them as they are, also on a retried
    attempt; a rejected write leaves no file behind."""
    from pyspark.sql import functions as F

    fe_spark.create_table("houses", primary_keys="Id", df=houses(spark))
    path = fe_spark.get_table("houses").path
    before = staged_dirs(fe_spark, "houses")
    # not deterministic: checked once and written once, so the committed rows are the checked ones
    noisy = spark.range(0, 50).select(F.col("id").alias("Id"), (F.rand() * 10).cast("long").alias("Qual"),
                                      F.rand().alias("Area"))
    real_write = storage.write_files
    spark_writes, interfered = [], []

    def counting(*args, **kwargs):
        staged = real_write(*args, **kwargs)
        spark_writes.append(staged.source is None)  # False: the staged files taken as they are
        return staged

    monkeypatch.setattr(storage, "write_files", counting)
    from deltalake import DeltaTable

    real_commit = DeltaTable.create_write_transaction

    def interfere_once(self, *args, **kwargs):
        if not interfered:  # another writer commits first: this attempt fails, the next one retries
            interfered.append(True)
            delta.merge(Location.parse(path), pa.table({"Id": [99], "Qual": [1], "Area": [0.0]}), keys=["Id"],
                        name="t", evolve=False)
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(DeltaTable, "create_write_transaction", interfere_once)
    version = fe_spark.write_table("houses", noisy, mode="overwrite")
    assert version == 2 and spark_writes == [True, False, False]  # staged once, taken by both attempts
    got = fe_spark.read_table("houses")
    assert got.count() == 50 and fe_spark.get_table("houses").row_count == 50
    committed = [d for d in staged_dirs(fe_spark, "houses") if d not in before]
    assert len(committed) == 1  # the staged rows' directory, now the table's files
    prof = fe_spark.get_profile("houses", 2)  # profiled from the same rows: rand() is not drawn again
    assert prof.row_count == 50
    assert prof.column("Area").mean == pytest.approx(got.toPandas()["Area"].mean(), rel=1e-12)
    # a rejected write: its staged rows are removed, nothing committed
    monkeypatch.setattr(DeltaTable, "create_write_transaction", real_commit)
    dupes = spark.range(0, 4).select((F.col("id") % 2).alias("Id"), F.lit(1).cast("long").alias("Qual"),
                                     F.lit(1.0).alias("Area"))
    with pytest.raises(PrimaryKeyError, match="more than once"):
        fe_spark.write_table("houses", dupes)
    assert staged_dirs(fe_spark, "houses") == sorted([*before, *committed])
    assert fe_spark.get_table("houses").version == 2
    # a write that needs a cast (int32 into the int64 column) writes the cast rows: the staged ones go
    small = spark.createDataFrame(pd.DataFrame({"Id": [70], "Qual": [3]})).select(
        F.col("Id"), F.col("Qual").cast("int"))
    spark_writes.clear()
    assert fe_spark.write_table("houses", small) == 3  # a new key only: nothing else to rewrite
    assert spark_writes == [True, True]
    assert {r["Id"]: r["Qual"] for r in rows(fe_spark.read_table("houses"))}[70] == 3
    assert len(staged_dirs(fe_spark, "houses")) == len(before) + 2


@pytest.mark.parametrize("lost_as", [OSError, CommitFailedError])
def test_a_commit_whose_ack_is_lost_keeps_its_files_and_is_committed_once(fe_spark, spark, monkeypatch, lost_as):
    """A commit stored by the log, then reported as failed (its acknowledgement lost): the write is
    found by its write id and returns its version; the files it committed are kept (deleting them as a
    failed attempt's would lose the version's rows), and it is not committed a second time."""
    from deltalake import DeltaTable

    real_create = storage.create_table_with_add_actions
    real_commit = DeltaTable.create_write_transaction
    commits = []

    def create_then_lost(*args, **kwargs):
        real_create(*args, **kwargs)
        commits.append("create")
        raise OSError("connection reset after the commit was stored")

    def commit_then_lost(self, *args, **kwargs):
        real_commit(self, *args, **kwargs)
        commits.append(kwargs.get("mode"))
        raise lost_as("connection reset after the commit was stored")

    monkeypatch.setattr(storage, "create_table_with_add_actions", create_then_lost)
    monkeypatch.setattr(DeltaTable, "create_write_transaction", commit_then_lost)
    fe_spark.create_table("houses", primary_keys="Id", df=houses(spark))
    assert fe_spark.write_table("houses", houses(spark, ids=(3, 4), qual=(30, 40))) == 1  # merge
    assert fe_spark.write_table("houses", houses(spark, ids=(5, 6), qual=(50, 60)), mode="overwrite") == 2
    assert commits == ["create", "append", "overwrite"]  # each committed once
    monkeypatch.undo()
    path = fe_spark.get_table("houses").path
    assert [h["version"] for h in DeltaTable(path).history()] == [2, 1, 0]
    for version, want in [(0, {1: 7, 2: 5, 3: 8}), (1, {1: 7, 2: 5, 3: 30, 4: 40}), (2, {5: 50, 6: 60})]:
        got = rows(fe_spark.read_table("houses", as_of_version=version))
        assert {r["Id"]: r["Qual"] for r in got} == want  # every version's files are there
    assert fe_spark.table_history("houses")["version"].tolist() == [2, 1, 0]


def test_delta_jar_detection(spark):
    assert session.has_delta_jars(spark) is False

    class Conf:
        def __init__(self, values):
            self.values = values

        def get(self, key, default=None):
            return self.values.get(key, default)

    class Loader:
        def __init__(self, ok):
            self.ok = ok

        def loadClass(self, name):  # noqa: N802 - the JVM's method name
            if not self.ok:
                raise RuntimeError(f"ClassNotFoundException: {name}")

    class Session:  # what has_delta_jars reads of a session: its conf and the JVM's class loader
        def __init__(self, extensions, loads):
            self.conf = Conf({"spark.sql.extensions": extensions})
            loader = Loader(loads)
            thread = type("T", (), {"getContextClassLoader": staticmethod(lambda: loader)})
            lang = type("L", (), {"Thread": type("Th", (), {"currentThread": staticmethod(lambda: thread)})})
            self._jvm = type("J", (), {"java": type("Java", (), {"lang": lang})})

    ext = "org.example.Other, io.delta.sql.DeltaSparkSessionExtension"
    assert session.has_delta_jars(Session(ext, loads=True)) is True
    assert session.has_delta_jars(Session(ext, loads=False)) is False  # configured, but no jars
    assert session.has_delta_jars(Session("org.example.Other", loads=True)) is False
    assert SparkEngine(spark, delta_jars=True).delta_jars is True


def test_missing_pyspark_or_java_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(ConfigError, match="openjdk-17-jre-headless"):
        session.require_spark()
    import builtins

    real_import = builtins.__import__

    def no_pyspark(name, *args, **kwargs):
        if name == "pyspark" or name.startswith("pyspark."):
            raise ImportError("No module named 'pyspark'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyspark)
    with pytest.raises(MissingExtraError, match=r"larder\[spark\]"):
        session.require_spark()


DIES_MID_WRITE = r"""
import os, signal, sys
import pandas as pd
from larder.errors import TableError
from larder.offline.spark import SparkEngine
from larder.offline.spark.session import get_session

spark = get_session("local[1]", {"spark.ui.enabled": "false", "spark.driver.memory": "512m"})
spark.sparkContext.setLogLevel("OFF")
engine = SparkEngine(spark)
jvm = spark.sparkContext._gateway.proc
try:
    with engine.ingesting(spark.createDataFrame(pd.DataFrame({"k": [1, 2]})), table="t") as data:
        assert data.count() == 2  # the persisted copy exists
        jvm.send_signal(signal.SIGKILL)  # the Spark context dies during the write
        jvm.wait()
        raise TableError("the write of 't' failed")
except BaseException as exc:
    print(type(exc).__name__, "|", exc, "|", " ".join(getattr(exc, "__notes__", [])))
"""


@pytest.mark.slow  # a Spark session of its own (its JVM is killed)
def test_a_write_failing_with_its_spark_context_raises_its_own_error(tmp_path):
    """When the Spark context dies during a write, releasing the persisted rows fails too; the write's
    own error is the one raised, with the release's failure as a note (it used to replace it)."""
    import subprocess
    import sys

    script = tmp_path / "dies.py"
    script.write_text(DIES_MID_WRITE)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-2000:]
    kind, message, notes = (line.split(" | ") + ["", ""])[:3]
    assert (kind, message) == ("TableError", "the write of 't' failed"), line
    assert "unpersisting the written rows failed too" in notes
