"""``SparkEngine``: the offline engine contract (:class:`larder.offline.engine.Engine`) on Spark.

Spark DataFrames in, Spark DataFrames out: a write given a Spark DataFrame is checked, profiled and
committed without its rows leaving the executors (:mod:`~larder.offline.spark.checks`,
:mod:`~larder.offline.spark.storage`); ``read_frame`` returns a lazy Spark DataFrame over the snapshot's
files; the point-in-time join takes and returns Spark DataFrames (:mod:`~larder.offline.spark.pit`).
pandas, pyarrow and polars input is accepted too: those rows are already on the driver, so a write of
them goes through delta-rs exactly as on the DuckDB engine, and a point-in-time join of an Arrow spine
runs on Spark and comes back as Arrow with the types the DuckDB engine gives.

With Delta's jars in the session (:func:`~larder.offline.spark.session.has_delta_jars`, decided once
when the engine starts), reads use Delta's reader and merges Delta's ``MERGE INTO``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from larder.config import LarderConfig
from larder.errors import ConfigError, TableError
from larder.offline import delta
from larder.offline.engine import Engine
from larder.offline.pit import PitSource
from larder.offline.spark import checks, schema, storage
from larder.offline.spark.session import get_session, has_delta_jars
from larder.offline.storage import Location


def is_spark_frame(df: Any) -> bool:
    """Whether ``df`` is a Spark DataFrame (classic or Spark Connect), without importing pyspark."""
    return type(df).__module__.startswith("pyspark.") and hasattr(df, "sparkSession")


class SparkEngine(Engine):
    """The offline engine on a SparkSession (see the module docstring).

    Parameters
    ----------
    session
        The SparkSession to run on.
    delta_jars
        Use Delta's own reader and ``MERGE``; default: detected from ``session``.
    persist_writes
        Fix a written DataFrame's rows once for its checks and its commit (default True; see
        :meth:`ingesting`), so that the rows checked are the rows written even when the DataFrame is not
        deterministic (``rand()``, a source that changes); a deterministic input can skip it with False.
    """

    name = "spark"

    def __init__(self, session: Any, *, delta_jars: bool | None = None, persist_writes: bool = True) -> None:
        self.session = session
        self.delta_jars = has_delta_jars(session) if delta_jars is None else delta_jars
        self.persist_writes = persist_writes

    @classmethod
    def from_config(cls, config: LarderConfig | None = None) -> SparkEngine:
        config = config or LarderConfig()
        return cls(get_session(config.spark_master, config.spark_conf))

    def __repr__(self) -> str:
        return f"SparkEngine(master={_master(self.session)!r}, delta_jars={self.delta_jars})"

    # -- frames ----------------------------------------------------------------------------------
    def to_spark(self, df: Any, *, table: str = "<input>") -> Any:
        """``df`` as a Spark DataFrame of this session (pandas, pyarrow and polars are converted)."""
        if is_spark_frame(df):
            return df
        from larder.offline.frames import to_arrow

        return schema.arrow_to_spark(self.session, to_arrow(df, table=table))

    @contextlib.contextmanager
    def ingesting(self, df: Any, *, table: str, location: Location | None = None,
                  partition_by: Sequence[str] = ()) -> Iterator[Any]:
        """The rows of a write, fixed once for its checks and its commit (unless ``persist_writes`` is
        off). Written to an unpartitioned table whose ``location`` is known, they are **staged**: Spark
        writes them once as parquet under the table (:func:`~larder.offline.spark.storage.stage`), the
        checks, expectations and profile read those files, and a write that needs no cast commits them
        without writing them again; the files are removed unless committed. Otherwise (a new table, a
        partitioned one, columns parquet cannot hold) they are persisted on the executors' disks
        (``DISK_ONLY``: memory-and-disk serialises each cached block in the heap, which ran a 4 GB
        driver out of memory at 50M rows; blocks on disk are written as a stream)."""
        if not is_spark_frame(df):
            with super().ingesting(df, table=table, location=location, partition_by=partition_by) as data:
                yield data
            return
        data = schema.normalise(df, table=table)
        if not self.persist_writes:
            yield data
            return
        if location is not None and not partition_by and storage.stageable(data):
            view, staged = storage.stage(data, location)
            with releasing(lambda: storage.release(staged), what="removing the staged rows"):
                yield view
            return
        from pyspark import StorageLevel

        data = data.persist(StorageLevel.DISK_ONLY)
        with releasing(data.unpersist, what="unpersisting the written rows"):
            yield data

    def schema_of(self, data: Any) -> pa.Schema:
        return schema.arrow_schema(data) if is_spark_frame(data) else super().schema_of(data)

    def check_rows(self, data: Any, *, table: str, primary_keys: list[str], timestamp_keys: list[str]) -> None:
        if not is_spark_frame(data):
            return super().check_rows(data, table=table, primary_keys=primary_keys, timestamp_keys=timestamp_keys)
        rows = checks.check_rows(data, table=table, primary_keys=primary_keys, timestamp_keys=timestamp_keys)
        data._larder_rows = rows  # what num_rows answers without another job

    def check_partition_values(self, data: Any, partition_by: list[str], *, table: str) -> None:
        if not is_spark_frame(data):
            return super().check_partition_values(data, partition_by, table=table)
        checks.check_partition_values(data, partition_by, table=table)

    def num_rows(self, data: Any) -> int:
        if not is_spark_frame(data):
            return super().num_rows(data)
        known = getattr(data, "_larder_rows", None)
        return int(known) if known is not None else int(data.count())

    def conform(self, data: Any, target: pa.Schema, *, table: str) -> tuple[Any, list[pa.Field]]:
        if not is_spark_frame(data):
            return super().conform(data, target, table=table)
        out, new = schema.conform(data, target, table=table)
        for known in ("_larder_rows", "_larder_staged"):  # the casts keep every row (storage._adopt checks types)
            if getattr(data, known, None) is not None:
                setattr(out, known, getattr(data, known))
        return out, new

    # -- reads -----------------------------------------------------------------------------------
    def read_frame(self, snapshot: delta.Snapshot, columns: list[str] | None = None) -> Any:
        """The snapshot's rows as a lazy Spark DataFrame."""
        name = _table_name(snapshot)
        if self.delta_jars:
            df = (self.session.read.format("delta").option("versionAsOf", snapshot.version)
                  .load(storage.spark_uri(storage.table_root(snapshot.table))))
            return df.select(*[f"`{c}`" for c in columns]) if columns is not None else df
        return storage.read(self.session, snapshot, columns, name=name)

    def read(self, snapshot: delta.Snapshot, columns: list[str] | None = None, filter: Any = None) -> pa.Table:
        """The snapshot's rows as Arrow in the driver (what the driver-side parts of larder read; the
        rows of a Spark DataFrame never go this way)."""
        return snapshot.to_arrow(columns=columns, filter=filter)

    # -- writes ----------------------------------------------------------------------------------
    def create(self, location: Location, data: Any, *, partition_by: list[str], name: str,
               description: str | None, commit: delta.Commit | None = None) -> int:
        if not is_spark_frame(data):
            return super().create(location, data, partition_by=partition_by, name=name, description=description,
                                  commit=commit)
        return storage.create(data, location, schema=schema.arrow_schema(data, table=name),
                              partition_by=partition_by, name=name, description=description, commit=commit)

    def merge(self, location: Location, data: Any, *, keys: list[str], name: str, evolve: bool,
              snapshot: delta.Snapshot | None = None, commit: delta.Commit | None = None) -> int:
        if not is_spark_frame(data):
            version, _ = delta.merge(location, data, keys=keys, name=name, evolve=evolve,
                                     table=snapshot.table if snapshot is not None else None, commit=commit)
            return version
        if self.delta_jars:
            return self._delta_merge(location, data, keys=keys, name=name, evolve=evolve)
        incoming = schema.arrow_schema(data, table=name)
        return storage.merge(data, location, keys=keys, name=name, first=snapshot, commit=commit,
                             schema_of=lambda snap: _merged_schema(snap.schema, incoming))

    def overwrite(self, location: Location, data: Any, *, name: str, partition_by: list[str],
                  commit: delta.Commit | None = None, predicate: str | None = None) -> int:
        if not is_spark_frame(data):
            return super().overwrite(location, data, name=name, partition_by=partition_by, commit=commit,
                                     predicate=predicate)
        if predicate is not None:
            raise TableError(f"Feature table {name!r}: an overwrite of the rows matching a predicate takes a pandas "
                             "or Arrow frame on the Spark engine; collect the (small) replacement rows first.")
        incoming = schema.arrow_schema(data, table=name)
        return storage.overwrite(data, location, partition_by=partition_by, name=name, commit=commit,
                                 schema_of=lambda snap: _merged_schema(snap.schema, incoming))

    def _delta_merge(self, location: Location, data: Any, *, keys: list[str], name: str, evolve: bool) -> int:
        """``MERGE INTO`` with Delta's jars (schema evolution through Delta's own setting)."""
        view = f"larder_merge_{abs(hash((location.uri, id(data)))):x}"
        data.createOrReplaceTempView(view)
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        target = storage.spark_uri(location.uri).replace("`", "``")
        try:
            if evolve:
                self.session.conf.set("spark.databricks.delta.schema.autoMerge.enabled", "true")
            self.session.sql(f"MERGE INTO delta.`{target}` t USING {view} s ON {on} "
                             "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *")
        except Exception as exc:
            raise TableError(f"MERGE into feature table {name!r} failed in Spark (nothing was written): {exc}") from exc
        finally:
            self.session.catalog.dropTempView(view)
        return delta.load(location, name=name).version

    # -- quality ---------------------------------------------------------------------------------
    def profile(self, data: Any, *, sample_rows: int | None) -> Any:
        if not is_spark_frame(data):
            return super().profile(data, sample_rows=sample_rows)
        return checks.profile(data, sample_rows=sample_rows, rows=getattr(data, "_larder_rows", None))

    def validate(self, data: Any, expectations: Sequence[Any], *, table: str, keys: Sequence[str] | None = None,
                 now: datetime | None = None) -> Any:
        if not is_spark_frame(data):
            return super().validate(data, expectations, table=table, keys=keys, now=now)
        from larder.offline.spark.quality import validate

        return validate(data, expectations, table=table, keys=keys, now=now)

    # -- compute ---------------------------------------------------------------------------------
    def source_data(self, snapshot: delta.Snapshot) -> Any:
        return self.read_frame(snapshot)

    def point_in_time_join(self, spine: Any, sources: Sequence[PitSource]) -> Any:
        from larder.offline.spark.pit import point_in_time_join

        return point_in_time_join(self.session, spine, sources)

    def aggregate(self, events: Any, queries: Any, *, entity: Sequence[str], timestamp: str,
                  query_timestamp: str, aggregations: Sequence[Any], query_entity: Sequence[str] | None = None) -> Any:
        """Declarative features' windowed aggregations, the kernel per entity bucket on the executors
        (:mod:`larder.offline.spark.aggregate`); the result has the queries' kind."""
        from larder.offline.spark.aggregate import aggregate

        return aggregate(self.session, events, queries, entity=entity, timestamp=timestamp,
                         query_timestamp=query_timestamp, aggregations=aggregations, query_entity=query_entity)

    def window_features(self, df: Any, *, kind: str, **options: Any) -> Any:
        if is_spark_frame(df):
            raise ConfigError(
                "window_features on a Spark DataFrame is not available: the rolling/lag transforms run on "
                "pandas or Arrow. Compute them with Spark window functions, or pass a pandas DataFrame."
            )
        from larder.offline.engine import DuckDBEngine

        return DuckDBEngine().window_features(df, kind=kind, **options)


@contextlib.contextmanager
def releasing(release: Callable[[], object], *, what: str) -> Iterator[None]:
    """Run ``release`` when the block exits. When the block failed, its exception is the one raised: a
    failure of ``release`` as well (a Spark context that died during the write cannot unpersist either)
    is added to it as a note instead of replacing it."""
    try:
        yield
    except BaseException as exc:
        try:
            release()
        except Exception as cleanup:
            exc.add_note(f"While handling it, {what} failed too: {type(cleanup).__name__}: {cleanup}")
        raise
    release()


def _merged_schema(current: pa.Schema, incoming: pa.Schema) -> pa.Schema:
    """The table's schema after a write of ``incoming`` columns: its own, then the new columns."""
    return pa.schema([*current, *[f for f in incoming if f.name not in current.names]])


def _table_name(snapshot: delta.Snapshot) -> str:
    try:
        return snapshot.table.metadata().name or snapshot.table.table_uri
    except Exception:  # pragma: no cover - metadata always loads for a loaded table
        return "<table>"


def _master(session: Any) -> str | None:
    try:
        return str(session.sparkContext.master)
    except Exception:
        return None


__all__ = ["SparkEngine", "is_spark_frame"]
