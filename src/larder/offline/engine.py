"""The offline compute engine: the operations larder's offline layer needs from an engine.

An engine reads a Delta snapshot, merges rows into a Delta table, runs point-in-time joins, computes
window (temporal) features and evaluates the time-windowed aggregations of declarative features
(:meth:`Engine.aggregate`, semantics in :mod:`larder.offline.aggregate`). :class:`DuckDBEngine` is the embedded default: delta-rs for
storage, DuckDB over Arrow for compute. A Spark engine implements the same four methods (reading a
table from its active file list and committing the files Spark writes through delta-rs, since the Delta
jars cannot be assumed) and is selected with ``engine: spark`` in ``larder.yaml`` once it exists;
``TableService``, training-set assembly and ``score_batch`` only ever call the engine through this
interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from larder.errors import ConfigError
from larder.offline import delta
from larder.offline.aggregate import Aggregation
from larder.offline.pit import PitSource, point_in_time_join
from larder.offline.storage import Location


class Engine(ABC):
    """What the offline layer needs from a compute engine."""

    name: str

    @abstractmethod
    def read(self, snapshot: delta.Snapshot, columns: list[str] | None = None, filter: Any = None) -> pa.Table:
        """The rows of a Delta snapshot (optionally projected and filtered) as Arrow."""

    @abstractmethod
    def merge(self, location: Location, data: pa.Table, *, keys: list[str], name: str, evolve: bool,
              snapshot: delta.Snapshot | None = None, commit: delta.Commit | None = None) -> int:
        """Upsert ``data`` on ``keys`` in one commit into the table at ``location`` (local or object
        store, with its storage options); returns the new Delta version.

        ``snapshot``, when given, is the table as the caller just loaded it, for the first attempt.
        ``commit``, when given, carries the write id into the commit's ``commitInfo``
        (``commit.properties()``) and gets the number of commit attempts back in ``commit.attempts``.
        """

    @abstractmethod
    def point_in_time_join(self, spine: pa.Table, sources: Sequence[PitSource]) -> pa.Table:
        """Exactly the spine's rows in order, with each source's features as of each row's time."""

    @abstractmethod
    def window_features(self, df: Any, *, kind: str, **options: Any) -> Any:
        """Temporal features over entity time series: ``kind`` is ``"rolling"`` or ``"lags"``, with
        the options of :func:`larder.transforms.rolling` / :func:`larder.transforms.lags`."""

    def aggregate(self, events: Any, queries: Any, *, entity: Sequence[str], timestamp: str,
                  query_timestamp: str, aggregations: Sequence[Aggregation],
                  query_entity: Sequence[str] | None = None) -> Any:
        """Time-windowed aggregations of ``events`` at every row of ``queries``.

        ``events``: the source rows (``entity`` columns, the ``timestamp`` column, the inputs);
        ``queries``: the evaluation points (``query_entity`` columns, default named as ``entity``, and
        ``query_timestamp``). Returns one row per query row, in the queries' order, with one column per
        :class:`~larder.offline.aggregate.Aggregation` (named ``output``). The window rule, peer
        ordering, null and empty-window results are those of :func:`larder.offline.aggregate.aggregate`,
        which this default runs (Arrow in, Arrow out); the oracle tests in
        ``tests/declarative/test_oracle.py`` define what an engine must return. A distributed engine
        overrides it (DataFrames in and out, one pass per entity partition, never a scan per query).
        """
        from larder.offline.aggregate import aggregate
        from larder.offline.frames import to_arrow

        return aggregate(to_arrow(events), to_arrow(queries), entity=entity, timestamp=timestamp,
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


ENGINES: dict[str, type[Engine]] = {"duckdb": DuckDBEngine}


def get_engine(name: str = "duckdb") -> Engine:
    """The engine registered under ``name``."""
    try:
        return ENGINES[name]()
    except KeyError:
        raise ConfigError(f"Unknown offline engine {name!r}; available: {sorted(ENGINES)}.") from None
