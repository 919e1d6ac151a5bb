"""The offline compute engine: what larder's offline layer needs from an engine.

An engine ingests the rows of a write (checks keys, conforms types), reads a Delta snapshot, commits
writes (create, merge, overwrite) all-or-nothing, profiles and validates rows for quality, runs
point-in-time joins, window features and the time-windowed aggregations of declarative features
(:meth:`Engine.aggregate`, semantics in :mod:`larder.offline.aggregate`). :class:`DuckDBEngine` is the
embedded default: delta-rs for storage, DuckDB over Arrow for compute.
:class:`larder.offline.spark.SparkEngine` (``engine: spark`` in ``larder.yaml``) implements the same
methods on Spark DataFrames, reading a table from its active file list and committing the files Spark
writes through delta-rs. ``TableService``, training-set assembly and ``score_batch`` only ever call the
engine through this interface.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from larder.config import LarderConfig
from larder.errors import ConfigError
from larder.offline import delta
from larder.offline.aggregate import Aggregation
from larder.offline.frames import check_partition_values, check_rows, conform, to_arrow
from larder.offline.pit import PitSource, point_in_time_join
from larder.offline.storage import Location


class Engine(ABC):
    """What the offline layer needs from a compute engine.

    The rows of a write travel in the engine's own form, made by :meth:`ingesting`: an Arrow table on
    DuckDB, a Spark DataFrame on Spark (an Arrow table there too when the caller gave pandas or Arrow).
    Every method taking ``data`` accepts what :meth:`ingesting` yields. The defaults implement the
    embedded behaviour on Arrow tables; an engine overrides them for its own frames.
    """

    name: str

    # -- the rows of a write --------------------------------------------------------------------
    @contextlib.contextmanager
    def ingesting(self, df: Any, *, table: str, location: Location | None = None,
                  partition_by: Sequence[str] = ()) -> Iterator[Any]:
        """``df`` (pandas, pyarrow, polars, or the engine's frame) as normalised rows for one write
        (see :mod:`larder.offline.frames`), valid until the block exits. ``location`` and
        ``partition_by``, when the caller knows them, are the table the rows are written to (an engine
        may stage the rows there)."""
        yield to_arrow(df, table=table)

    def schema_of(self, data: Any) -> pa.Schema:
        """The Arrow schema larder stores for ``data``."""
        return data.schema

    def num_rows(self, data: Any) -> int:
        """How many rows ``data`` holds."""
        return int(data.num_rows)

    def check_rows(self, data: Any, *, table: str, primary_keys: list[str], timestamp_keys: list[str]) -> None:
        """Raise unless ``data`` has rows, its keys are present, non-null and unique and its timestamp
        keys are timestamps (:func:`larder.offline.frames.check_rows`)."""
        check_rows(data, table=table, primary_keys=primary_keys, timestamp_keys=timestamp_keys)

    def check_partition_values(self, data: Any, partition_by: list[str], *, table: str) -> None:
        """Raise if a partition column holds a value whose ``column=value`` directory name no file
        system would accept (:func:`larder.offline.frames.check_partition_values`)."""
        check_partition_values(data, partition_by, table=table)

    def conform(self, data: Any, schema: pa.Schema, *, table: str) -> tuple[Any, list[pa.Field]]:
        """``data`` cast losslessly to ``schema``'s types, and the fields ``schema`` lacks."""
        return conform(data, schema, table=table)

    # -- reads -----------------------------------------------------------------------------------
    @abstractmethod
    def read(self, snapshot: delta.Snapshot, columns: list[str] | None = None, filter: Any = None) -> pa.Table:
        """The rows of a Delta snapshot (optionally projected and filtered) as Arrow, in this process."""

    def read_frame(self, snapshot: delta.Snapshot, columns: list[str] | None = None) -> Any:
        """The rows of a Delta snapshot in the form users get from ``read_table``: pandas here."""
        return self.read(snapshot, columns=columns).to_pandas()

    # -- writes (each one Delta commit at ``location``, local or object store) ------------------
    def create(self, location: Location, data: Any, *, partition_by: list[str], name: str,
               description: str | None, commit: delta.Commit | None = None) -> int:
        """A new Delta table at ``location`` holding ``data`` as version 0."""
        return delta.write_new(location, data, partition_by=partition_by, name=name, description=description,
                               commit=commit)

    @abstractmethod
    def merge(self, location: Location, data: Any, *, keys: list[str], name: str, evolve: bool,
              snapshot: delta.Snapshot | None = None, commit: delta.Commit | None = None) -> int:
        """Upsert ``data`` on ``keys`` in one commit into the table at ``location`` (local or object
        store, with its storage options); returns the new Delta version.

        ``snapshot``, when given, is the table as the caller just loaded it, for the first attempt.
        ``commit``, when given, carries the write id into the commit's ``commitInfo``
        (``commit.properties()``) and gets the number of commit attempts back in ``commit.attempts``.
        """

    def overwrite(self, location: Location, data: Any, *, name: str, partition_by: list[str],
                  commit: delta.Commit | None = None, predicate: str | None = None) -> int:
        """Replace the table's rows with ``data`` in one commit, keeping (and extending) its schema;
        with ``predicate``, only the rows matching it (every row of ``data`` must match)."""
        return delta.overwrite(location, data, name=name, partition_by=partition_by, commit=commit,
                               predicate=predicate)

    # -- quality ---------------------------------------------------------------------------------
    def profile(self, data: Any, *, sample_rows: int | None) -> Any:
        """Per-column statistics of ``data`` (:func:`larder.quality.profiling.profile`)."""
        from larder.quality.profiling import profile

        return profile(data, sample_rows=sample_rows)

    def validate(self, data: Any, expectations: Sequence[Any], *, table: str, keys: Sequence[str] | None = None,
                 now: datetime | None = None) -> Any:
        """``data`` checked against ``expectations`` (:func:`larder.quality.validation.validate`)."""
        from larder.quality.validation import validate

        return validate(data, expectations, table=table, keys=keys, now=now)

    # -- compute ---------------------------------------------------------------------------------
    def source_data(self, snapshot: delta.Snapshot) -> Any:
        """A snapshot's rows as a :class:`PitSource`'s ``data`` for :meth:`point_in_time_join`."""
        return snapshot.dataset()

    @abstractmethod
    def point_in_time_join(self, spine: Any, sources: Sequence[PitSource]) -> Any:
        """Exactly the spine's rows in order, with each source's features as of each row's time (the
        result has the spine's kind: Arrow for Arrow)."""

    @abstractmethod
    def window_features(self, df: Any, *, kind: str, **options: Any) -> Any:
        """Temporal features over entity time series: ``kind`` is ``"rolling"`` or ``"lags"``, with
        the options of :func:`larder.transforms.rolling` / :func:`larder.transforms.lags`."""

    def aggregate(self, events: Any, queries: Any, *, entity: Sequence[str], timestamp: str,
                  query_timestamp: str, aggregations: Sequence[Aggregation],
                  query_entity: Sequence[str] | None = None) -> Any:
        """Time-windowed aggregations of ``events`` at every row of ``queries``.

        ``events``: the source rows (``entity`` columns, the ``timestamp`` column, the inputs), or an
        :class:`~larder.offline.aggregate.EventBatches` (a source read batch by batch, never held whole);
        ``queries``: the evaluation points (``query_entity`` columns, default named as ``entity``, and
        ``query_timestamp``). Returns one row per query row, in the queries' order, with one column per
        :class:`~larder.offline.aggregate.Aggregation` (named ``output``). The window rule, peer
        ordering, null and empty-window results are those of :func:`larder.offline.aggregate.aggregate`,
        which this default runs (Arrow in, Arrow out); the oracle tests in
        ``tests/declarative/test_oracle.py`` define what an engine must return. A distributed engine
        overrides it (DataFrames in and out, one pass per entity partition, never a scan per query).
        """
        from larder.offline.aggregate import EventBatches, aggregate
        from larder.offline.frames import to_arrow

        return aggregate(events if isinstance(events, EventBatches) else to_arrow(events), to_arrow(queries), entity=entity, timestamp=timestamp,
                         query_timestamp=query_timestamp, aggregations=aggregations, query_entity=query_entity)


class DuckDBEngine(Engine):
    """The embedded engine: delta-rs storage, DuckDB compute over Arrow."""

    name = "duckdb"

    def read(self, snapshot: delta.Snapshot, columns: list[str] | None = None, filter: Any = None) -> pa.Table:
        return snapshot.to_arrow(columns=columns, filter=filter)

    def merge(self, location: Location, data: pa.Table, *, keys: list[str], name: str, evolve: bool,
              snapshot: delta.Snapshot | None = None, commit: delta.Commit | None = None) -> int:
        version, _ = delta.merge(location, data, keys=keys, name=name, evolve=evolve,
                                 table=snapshot.table if snapshot is not None else None, commit=commit)
        return version

    def point_in_time_join(self, spine: pa.Table, sources: Sequence[PitSource]) -> pa.Table:
        return point_in_time_join(spine, sources)

    def window_features(self, df: Any, *, kind: str, **options: Any) -> Any:
        from larder.transforms import temporal

        if kind == "rolling":
            return temporal.rolling(df, **options)
        if kind == "lags":
            return temporal.lags(df, **options)
        raise ConfigError(f"window_features: kind must be 'rolling' or 'lags', got {kind!r}.")


ENGINE_NAMES = ("duckdb", "spark")


def get_engine(name: str = "duckdb", config: LarderConfig | None = None) -> Engine:
    """The engine called ``name``: ``"duckdb"``, or ``"spark"`` (on the active SparkSession, else one
    started from ``config``'s ``spark_master`` and ``spark_conf``; needs ``larder[spark]`` and Java)."""
    if name == "duckdb":
        return DuckDBEngine()
    if name == "spark":
        from larder.offline.spark import SparkEngine

        return SparkEngine.from_config(config)
    raise ConfigError(f"Unknown offline engine {name!r}; available: {list(ENGINE_NAMES)}.")
