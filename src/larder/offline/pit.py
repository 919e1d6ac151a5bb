"""Point-in-time (PIT) joins: the engine under training sets and batch scoring.

For every row of a *spine* (the caller's rows: keys, a timestamp, labels), each :class:`PitSource`
contributes the feature values that were valid at that row's time:

* **time-series source** (``timestamp_key`` set): the source row with the same key and the greatest
  timestamp ``<=`` the spine row's timestamp, and ``>= timestamp - lookback_window`` when a window is
  given (both bounds inclusive). Several rows with that key and timestamp: the greatest ``tiebreak``
  wins (nulls lose), then the row that comes last in the source ("written last").
* **snapshot source** (no ``timestamp_key``): exact key match; several rows per key: the greatest
  ``tiebreak``, then the last row.

No match gives nulls. The output has exactly the spine's rows in the spine's order (duplicates kept),
the spine's columns first and unchanged, then each source's output columns with the source's types.
Timestamps compare in UTC at microsecond precision: naive timestamps are taken as UTC, other units
are converted (nanoseconds are floored to the microsecond) and dates are midnight UTC.

How it runs (see ``docs/point-in-time.md``): the spine's keys and times and the source's keys, times
and *row positions* go to DuckDB, whose ``ASOF JOIN`` finds, for each spine row, the position of a
source row with the right timestamp (in key-range chunks, so the engine's memory stays bounded). A
second join over the matched (key, timestamp) pairs settles ties, so the result never depends on
DuckDB's sort order. Feature values never pass through DuckDB:
they are gathered from the source by position in one more streaming read (batch by batch, straight
into output buffers for fixed-width types, see :mod:`larder.offline.pit_gather`), which keeps memory
near the output's size and keeps every type exactly as the source has it.

Example
-------
>>> import pyarrow as pa
>>> from datetime import datetime, timezone
>>> t = lambda d: datetime(2024, 1, d, tzinfo=timezone.utc)
>>> prices = pa.table({"item": [1, 1, 2], "ts": [t(1), t(3), t(2)], "price": [10.0, 11.0, 20.0]})
>>> spine = pa.table({"item": [1, 1, 2, 3], "at": [t(2), t(3), t(1), t(5)]})
>>> src = PitSource(prices, keys=["item"], lookup_keys=["item"], features=["price"],
...                 output_names=["price"], timestamp_key="ts", timestamp_lookup_key="at")
>>> point_in_time_join(spine, [src]).column("price").to_pylist()
[10.0, 11.0, None, None]
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from larder.errors import FeatureLookupError, LeakageError, OutputCollisionError
from larder.offline.pit_gather import gather_streaming, scan_batches
from larder.offline.pit_partition import (
    KeyCodes,
    NoCodes,
    _epoch_us_array,
    _is_time,
    _key_array,
    _kind,
    canonical_type,
    partitions,
)
from larder.progress import ProgressBar

__all__ = ["PitSource", "point_in_time_join", "release_memory"]

# With batch_rows=None, the spine is cut into key-range chunks that each see about this many source
# rows: the engine then sorts ~1M (key, time, position) rows at a time (tens of MB) instead of all.
_CHUNK_SOURCE_ROWS = 1_000_000
# Joins with at least this many spine + source rows run in a DuckDB database of their own (see below).
_OWN_DATABASE_ROWS = 2_000_000
# Integer, string and binary keys are matched by key partition (see larder.offline.pit_partition);
# False sends every source down the general path (tests compare the two).
_PARTITION_BY_CODES = True
_CODE_BATCH_ROWS = 1 << 20
# The partitioned path reads the source's keys and times once per this many source rows, holding the
# narrow copy of only that many rows (16 bytes each) at a time.
_PASS_SOURCE_ROWS = 4_000_000
# In-memory sources are gathered batch by batch into output buffers like datasets (see
# larder.offline.pit_gather): nothing but the output is held. False: Arrow's take over the whole
# columns (tests compare the two).
_STREAM_TABLES = True


@dataclass(frozen=True)
class PitSource:
    """One source of features for :func:`point_in_time_join`.

    Parameters
    ----------
    data
        The feature rows: a ``pyarrow.Table``, ``RecordBatch``, ``RecordBatchReader``,
        ``pyarrow.dataset.Dataset`` (scanned twice, streaming, never loaded whole), a DuckDB
        relation or a pandas DataFrame (both converted to Arrow first).
    keys
        Key columns in ``data`` (entity keys, not the timestamp).
    lookup_keys
        The matching columns of the spine, in the same order as ``keys``.
    features
        Columns of ``data`` to return.
    output_names
        Output column names, one per feature, in the same order (renames).
    timestamp_key
        Event-time column of ``data``; ``None`` makes this a snapshot source (exact key match).
    timestamp_lookup_key
        The spine's time column to compare with ``timestamp_key`` (required for time-series sources,
        ignored for snapshots).
    lookback_window
        Oldest row still valid, relative to the spine row's time (inclusive). ``None``: unbounded;
        ``timedelta(0)``: only a row with exactly the spine row's timestamp.
    tiebreak
        Column of ``data`` that orders rows with the same key (and timestamp): the greatest wins, nulls
        lose; on equal tiebreaks (or without one) the row that comes last in ``data`` wins.
    assume_unique
        Promise that ``data`` has at most one row per (keys, timestamp_key) (per keys for snapshots),
        as a feature table whose primary key includes its timestamp key does. Skips the tie check, the
        cheapest part of the join to drop; when the promise is broken, which tied row is returned is
        unspecified.
    name
        Name used in error messages (for example the feature table's name).
    indicator
        Name of an extra boolean output column, true where a source row matched (even one whose
        feature values are null); ``None`` (default): no such column.
    """

    data: Any
    keys: list[str]
    lookup_keys: list[str]
    features: list[str]
    output_names: list[str]
    timestamp_key: str | None = None
    timestamp_lookup_key: str | None = None
    lookback_window: timedelta | None = None
    tiebreak: str | None = None
    assume_unique: bool = False
    name: str | None = field(default=None, compare=False)
    indicator: str | None = None

    @property
    def is_time_series(self) -> bool:
        """Whether the source has an event-time column (as opposed to a snapshot)."""
        return self.timestamp_key is not None


# --------------------------------------------------------------------------- small helpers


def _label(src: PitSource, i: int) -> str:
    return f"source {i} ({src.name!r})" if src.name else f"source {i}"


def _fetch(rel: Any) -> pa.Table:
    """A DuckDB relation's rows as an Arrow table (``to_arrow_table`` on DuckDB >= 1.4, else the old name)."""
    fetch = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
    out = fetch()
    return out.read_all() if isinstance(out, pa.RecordBatchReader) else out


def _chunked(col: pa.ChunkedArray, fn: Any) -> pa.ChunkedArray:
    chunks = [fn(c) for c in col.chunks]
    return pa.chunked_array(chunks, type=chunks[0].type if chunks else None) if chunks else \
        pa.chunked_array([fn(pa.array([], col.type))])


def release_memory() -> None:
    """Hand the memory Arrow's allocator keeps after frees back to the system (between phases of a big
    join: mimalloc otherwise keeps the pages of a freed narrow copy or scan, and the process's memory
    stays at its high-water mark for the phases after)."""
    pa.default_memory_pool().release_unused()


def _parallel(fn: Any, items: Any) -> list[Any]:
    """``[fn(x) for x in items]`` on threads (Arrow's take and concat release the GIL)."""
    items = list(items)
    if len(items) < 2 or (os.cpu_count() or 1) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1)) as pool:
        return list(pool.map(fn, items))


# --------------------------------------------------------------------------- source access


class _Data:
    """Uniform access to a source's rows in one fixed order: its schema, batches and a gather."""

    def __init__(self, data: Any, where: str) -> None:
        self.where = where
        self.table: pa.Table | None = None
        self.dataset: pads.Dataset | None = None
        self.scanned_rows: int | None = None  # rows seen by the first pass over a dataset
        self._count: int | None = None
        if isinstance(data, pa.Table):
            self.table = data
        elif isinstance(data, pa.RecordBatch):
            self.table = pa.Table.from_batches([data])
        elif isinstance(data, pads.Dataset):
            self.dataset = data
        elif isinstance(data, pa.RecordBatchReader):
            self.table = data.read_all()
        elif isinstance(data, duckdb.DuckDBPyRelation):
            try:
                self.table = _fetch(data)
            except duckdb.Error as exc:
                raise FeatureLookupError(f"{where}: reading the DuckDB relation failed: {exc}") from exc
        elif type(data).__module__.startswith("pandas") and hasattr(data, "columns"):
            self.table = pa.Table.from_pandas(data, preserve_index=False)
        else:
            raise FeatureLookupError(
                f"{where}: data of type {type(data).__name__} is not supported; pass a pyarrow Table, "
                "RecordBatch, RecordBatchReader, pyarrow.dataset.Dataset, DuckDB relation or pandas DataFrame.")

    @property
    def schema(self) -> pa.Schema:
        return self.table.schema if self.table is not None else self.dataset.schema  # type: ignore[union-attr]

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        """The rows in the source's order (a dataset is read in its fragments' order)."""
        if self.table is not None:
            yield from self.table.select(columns).to_batches()
            return
        yield from scan_batches(self.dataset, columns)  # type: ignore[arg-type]

    def count_rows(self) -> int:
        if self.table is not None:
            return self.table.num_rows
        if self._count is None:  # parquet footers only
            self._count = self.dataset.count_rows()  # type: ignore[union-attr]
        return self._count

    def gather(self, columns: list[str], idx: np.ndarray) -> list[pa.ChunkedArray]:
        """``columns`` at row positions ``idx`` (``-1`` gives null), in the order of ``idx``."""
        if self.table is not None and not _STREAM_TABLES:
            n = self.table.num_rows
            # Index -1 -> n, a trailing one-row null chunk: plain int indices take the fast path.
            ix = pa.array(np.where(idx < 0, n, idx))

            def take(c: str) -> pa.ChunkedArray:
                col = self.table.column(c)  # type: ignore[union-attr]
                return pa.chunked_array([*col.chunks, pa.nulls(1, col.type)], col.type).take(ix)

            return _parallel(take, columns)
        return self._gather_streaming(columns, idx)

    def _gather_streaming(self, columns: list[str], idx: np.ndarray) -> list[pa.ChunkedArray]:
        types = [self.schema.field(c).type for c in columns]
        cols, rows = gather_streaming(self.batches(columns), types, idx)
        if self.scanned_rows is not None and rows != self.scanned_rows:
            raise FeatureLookupError(f"{self.where}: the dataset changed while it was being read ({self.scanned_rows} "
                                     f"rows on the first scan, {rows} on the second); retry the join.")
        return [pa.chunked_array([c]) for c in cols]


# --------------------------------------------------------------------------- validation


def _check_source(spine: pa.Schema, src: PitSource, i: int, data: _Data) -> None:
    where = _label(src, i)
    schema = data.schema
    for attr in ("keys", "lookup_keys", "features", "output_names"):
        value = getattr(src, attr)
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise FeatureLookupError(f"{where}: {attr} must be a list of column names, got {value!r}.")
    if not src.keys:
        raise FeatureLookupError(f"{where}: keys is empty; name the key columns of the feature data.")
    if len(src.keys) != len(src.lookup_keys):
        raise FeatureLookupError(
            f"{where}: keys {list(src.keys)} and lookup_keys {list(src.lookup_keys)} differ in length; "
            "give one spine column per key column, in the same order.")
    if len(src.features) != len(src.output_names):
        raise FeatureLookupError(
            f"{where}: {len(src.features)} features but {len(src.output_names)} output_names; "
            "give one output name per feature.")
    data_cols = [*src.keys, *src.features]
    if src.timestamp_key is not None:
        data_cols.append(src.timestamp_key)
    if src.tiebreak is not None:
        data_cols.append(src.tiebreak)
    missing = [c for c in data_cols if c not in schema.names]
    if missing:
        raise FeatureLookupError(f"{where}: column(s) {missing} not found in the feature data "
                                 f"(columns: {schema.names}).")
    spine_cols = list(src.lookup_keys)
    if src.timestamp_key is not None:
        if src.timestamp_lookup_key is None:
            raise LeakageError(
                f"{where} is a time series (timestamp key {src.timestamp_key!r}) but no timestamp_lookup_key "
                "was given: without one, values from the future would leak into the rows. Name the spine's "
                "time column in timestamp_lookup_key.")
        spine_cols.append(src.timestamp_lookup_key)
    elif src.lookback_window is not None:
        raise FeatureLookupError(f"{where}: lookback_window needs a time-series source; this one has no "
                                 "timestamp_key. Drop the lookback_window or set timestamp_key.")
    missing = [c for c in spine_cols if c not in spine.names]
    if missing:
        raise FeatureLookupError(f"{where}: spine column(s) {missing} not found (spine columns: {spine.names}).")
    for k, lk in zip(src.keys, src.lookup_keys, strict=True):
        kd, ks = _kind(schema.field(k).type), _kind(spine.field(lk).type)
        if kd != ks and "null" not in (kd, ks):
            raise FeatureLookupError(
                f"{where}: key column {k!r} of the feature data is {schema.field(k).type} ({kd}) but spine "
                f"column {lk!r} is {spine.field(lk).type} ({ks}); these cannot match. Cast one of them so "
                "both are the same kind of type.")
    if src.timestamp_key is not None:
        for col, typ, side in ((src.timestamp_key, schema.field(src.timestamp_key).type, "feature data"),
                               (src.timestamp_lookup_key, spine.field(src.timestamp_lookup_key).type, "spine")):
            if not (_is_time(typ) or pa.types.is_null(typ)):
                raise FeatureLookupError(
                    f"{where}: {side} column {col!r} has type {typ}; point-in-time lookups need a timestamp "
                    "(or date) column. Convert it, for example with pandas.to_datetime(..., utc=True).")
    if src.lookback_window is not None:
        if not isinstance(src.lookback_window, timedelta):
            raise FeatureLookupError(f"{where}: lookback_window must be a datetime.timedelta or None, "
                                     f"got {src.lookback_window!r}.")
        if src.lookback_window < timedelta(0):
            raise FeatureLookupError(f"{where}: lookback_window {src.lookback_window} is negative; use "
                                     "timedelta(0) for exact timestamp matches or None for no limit.")


def _check_outputs(spine: pa.Schema, sources: Sequence[PitSource]) -> None:
    seen: dict[str, str] = {name: "the spine" for name in spine.names}
    for i, src in enumerate(sources):
        for out in [*src.output_names, *([src.indicator] if src.indicator is not None else [])]:
            if out in seen:
                raise OutputCollisionError(
                    f"Output column {out!r} of {_label(src, i)} collides with a column of {seen[out]}; "
                    "rename it with output_names.")
            seen[out] = _label(src, i)


# --------------------------------------------------------------------------- the join


def _source_relation(src: PitSource, data: _Data, row_type: Any) -> pa.Table:
    """Keys, UTC microsecond time, tiebreak and row position of every source row (pass 1)."""
    cols = list(dict.fromkeys([*src.keys, *([src.timestamp_key] if src.timestamp_key else []),
                               *([src.tiebreak] if src.tiebreak else [])]))
    batches = []
    offset = 0
    schema = None
    for batch in data.batches(cols):
        arrays = [_key_array(batch.column(cols.index(k))) for k in src.keys]
        names = [f"k{j}" for j in range(len(src.keys))]
        if src.timestamp_key:
            arrays.append(_epoch_us_array(batch.column(cols.index(src.timestamp_key)),
                                          f"column {src.timestamp_key!r}"))
            names.append("ts")
        if src.tiebreak:
            arrays.append(_key_array(batch.column(cols.index(src.tiebreak))))
            names.append("tb")
        arrays.append(pa.array(np.arange(offset, offset + batch.num_rows, dtype=row_type)))
        names.append("row")
        rb = pa.RecordBatch.from_arrays(arrays, names=names)
        schema = schema or rb.schema
        if rb.schema != schema:  # a null or differently typed chunk: align it with the first
            rb = rb.cast(schema)
        batches.append(rb)
        offset += batch.num_rows
    data.scanned_rows = offset
    if not batches:
        empty = {f"k{j}": pa.array([], _key_array(pa.array([], data.schema.field(k).type)).type)
                 for j, k in enumerate(src.keys)}
        if src.timestamp_key:
            empty["ts"] = pa.array([], pa.int64())
        if src.tiebreak:
            empty["tb"] = pa.array([], _key_array(pa.array([], data.schema.field(src.tiebreak).type)).type)
        empty["row"] = pa.array([], pa.int32())
        return pa.table(empty)
    return pa.Table.from_batches(batches)


def _spine_relation(spine: pa.Table, src: PitSource) -> pa.Table:
    """Row number, keys and UTC microsecond time of the spine rows that can match at all."""
    cols: dict[str, Any] = {"rn": pa.array(np.arange(spine.num_rows, dtype=np.int64))}
    for j, lk in enumerate(src.lookup_keys):
        cols[f"k{j}"] = _chunked(spine.column(lk), _key_array)
    if src.timestamp_key is not None:
        cols["t"] = _chunked(spine.column(src.timestamp_lookup_key),
                             lambda a: _epoch_us_array(a, f"spine column {src.timestamp_lookup_key!r}"))
    rel = pa.table(cols)
    # Null keys (and null times) never match: leave those rows out of the engine's work.
    mask = None
    for name in rel.column_names[1:]:
        if rel.column(name).null_count:
            m = pc.is_valid(rel.column(name))
            mask = m if mask is None else pc.and_(mask, m)
    return rel.filter(mask) if mask is not None else rel


def _on(a: str, b: str, nkeys: int) -> str:
    return " AND ".join(f"{a}.k{j} = {b}.k{j}" for j in range(nkeys))


def _candidates_sql(src: PitSource, lookback_us: int | None, lrel: str, frel: str) -> str:
    """SQL giving, per spine row of ``lrel`` that has a match, one matching source row (``row``).

    Time series: DuckDB's ASOF join picks *a* row with the greatest timestamp ``<=`` the spine row's;
    which one among equal timestamps is arbitrary, :func:`_tie_sql` settles that. Snapshots: every
    row with the key (several per spine row when keys repeat).
    """
    nk = len(src.keys)
    on = _on("l", "f", nk)
    tb = ", f.tb" if src.tiebreak else ""
    if not src.is_time_series:
        return f"SELECT l.rn, f.row{tb} FROM {lrel} l JOIN {frel} f ON {on}"
    fkeys = ", ".join(f"f.k{j}" for j in range(nk))
    sql = f"SELECT l.rn, f.row, f.ts, {fkeys}{tb} FROM {lrel} l ASOF JOIN {frel} f ON {on} AND l.t >= f.ts"
    if lookback_us is not None:  # the latest row <= t is the only candidate: too old means no match
        sql += f" WHERE f.ts >= l.t - {int(lookback_us)}"
    return sql


def _tie_sql(src: PitSource, arel: str, frel: str) -> str:
    """SQL giving the other source rows that share a matched row's (keys, timestamp): (row, cand[, ctb])."""
    tb = ", f.tb AS ctb" if src.tiebreak else ""
    return (f"SELECT DISTINCT a.row, f.row AS cand{tb} FROM {arel} a JOIN {frel} f "
            f"ON {_on('a', 'f', len(src.keys))} AND a.ts = f.ts WHERE f.row <> a.row")


def _winner_sql(src: PitSource, group: str, rel: str) -> str:
    """SQL picking, per ``group``, the candidate ``row`` with the greatest (tiebreak, position)."""
    if src.tiebreak:
        return f"SELECT {group}, first(row ORDER BY tb DESC NULLS LAST, row DESC) AS row FROM {rel} GROUP BY {group}"
    return f"SELECT {group}, max(row) AS row FROM {rel} GROUP BY {group}"


def _chunks(lrel: pa.Table, batch_rows: int | None) -> Iterator[tuple[pa.Table, Any, Any]]:
    """The spine relation in key-sorted chunks of at most ``batch_rows`` rows, with their first-key range."""
    if batch_rows is None or lrel.num_rows <= batch_rows:
        yield lrel, None, None
        return
    order = pc.sort_indices(lrel.column("k0"))
    for start in range(0, lrel.num_rows, batch_rows):
        part = lrel.take(order.slice(start, batch_rows))
        bounds = pc.min_max(part.column("k0"))
        yield part, bounds["min"].as_py(), bounds["max"].as_py()


def _coded_keys(lrel: pa.Table, src: PitSource, data: _Data) -> KeyCodes | None:
    """Key codes for the partitioned path, or ``None`` when the keys' types need the general path."""
    if not _PARTITION_BY_CODES or lrel.num_rows == 0:
        return None
    for j, k in enumerate(src.keys):
        source_type = _key_array(pa.array([], data.schema.field(k).type)).type
        if canonical_type(source_type) is None or canonical_type(lrel.column(f"k{j}").type) is None:
            return None
    try:
        return KeyCodes([lrel.column(f"k{j}").combine_chunks() for j in range(len(src.keys))])
    except NoCodes:
        return None


def _coded_batches(src: PitSource, data: _Data, group_rows: int) -> Iterator[tuple[list[pa.Array], Any, Any]]:
    """Per group of source batches (at least ``group_rows`` rows, so that a hash lookup's set is built
    once per group): its key arrays, UTC microsecond times (or None) and tiebreak (or None)."""
    cols = list(dict.fromkeys([*src.keys, *([src.timestamp_key] if src.timestamp_key else []),
                               *([src.tiebreak] if src.tiebreak else [])]))

    def convert(batches: list[pa.RecordBatch]) -> tuple[list[pa.Array], Any, Any]:
        def column(name: str) -> pa.Array:
            parts = [b.column(cols.index(name)) for b in batches]
            return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)

        keys = [_key_array(column(k)) for k in src.keys]
        ts = _epoch_us_array(column(src.timestamp_key), f"column {src.timestamp_key!r}") if src.timestamp_key else None
        tb = _key_array(column(src.tiebreak)) if src.tiebreak else None
        return keys, ts, tb

    group: list[pa.RecordBatch] = []
    rows = 0
    for batch in data.batches(cols):
        if batch.schema != (group[0].schema if group else batch.schema):  # differently typed chunk: own group
            yield convert(group)
            group, rows = [], 0
        group.append(batch)
        rows += batch.num_rows
        if rows >= group_rows:
            yield convert(group)
            group, rows = [], 0
    if group:
        yield convert(group)


def _match_chunk(con: duckdb.DuckDBPyConnection, src: PitSource, lookback_us: int | None, lname: str,
                 frel: str, params: Any, aname: str, ename: str) -> tuple[np.ndarray, np.ndarray]:
    """(spine row numbers, winning source positions) of the spine rows registered as ``lname``."""
    cand = _fetch(con.sql(_candidates_sql(src, lookback_us, lname, frel), params=params))
    rn = cand.column("rn").to_numpy()
    row = cand.column("row").to_numpy()
    if not src.is_time_series:
        if not src.assume_unique and len(rn) and np.bincount(rn).max() > 1:
            con.register(aname, cand)
            win = _fetch(con.sql(_winner_sql(src, "rn", aname)))
            con.unregister(aname)
            rn, row = win.column("rn").to_numpy(), win.column("row").to_numpy()
    elif not src.assume_unique and len(rn):
        con.register(aname, cand)
        ties = _fetch(con.sql(_tie_sql(src, aname, frel), params=params))
        if ties.num_rows:
            row = _settle_ties(con, src, cand, ties, ename)
        con.unregister(aname)
    return rn, row


def _match(con: duckdb.DuckDBPyConnection, spine: pa.Table, src: PitSource, i: int, data: _Data,
           batch_rows: int | None, tick: Any) -> np.ndarray:
    """Winning source row position for every spine row (-1 for no match).

    Integer, string and binary keys take the partitioned path (:mod:`larder.offline.pit_partition`):
    keys coded against the spine's, source rows that cannot matter dropped while streaming, and each
    key partition matched against only its own source rows. Other key types take the general path:
    the whole narrow source relation, matched in key-range chunks.
    """
    lrel = _spine_relation(spine, src)
    lookback_us = None
    if src.lookback_window is not None:  # capped: a window of ~146,000 years already reaches any timestamp
        lookback_us = min(src.lookback_window // timedelta(microseconds=1), 2**62)
    idx = np.full(spine.num_rows, -1, dtype=np.int64)
    row_type = np.int32 if data.count_rows() < 2**31 - 1 else np.int64  # positions: 4 bytes a row will do
    tag = uuid.uuid4().hex[:12]
    lname, fname, aname, ename = (f"larder_pit_{x}_{tag}" for x in "lfae")
    codes = _coded_keys(lrel, src, data)
    try:
        if codes is not None:
            if batch_rows is None:  # partitions that each see about _CHUNK_SOURCE_ROWS source rows
                n_parts = max(1, -(-data.count_rows() // _CHUNK_SOURCE_ROWS))
            else:
                n_parts = max(1, -(-lrel.num_rows // batch_rows))
            n_parts = min(n_parts, codes.n)

            def scanned(rows: int) -> None:
                if data.scanned_rows is not None and rows != data.scanned_rows:
                    raise FeatureLookupError(
                        f"{data.where}: the dataset changed while it was being read ({data.scanned_rows} rows on "
                        f"one scan, {rows} on the next); retry the join.")
                data.scanned_rows = rows

            one_key = replace(src, keys=src.keys[:1], lookup_keys=src.lookup_keys[:1])  # k0: the key tuple's code

            passes = max(1, -(-data.count_rows() // _PASS_SOURCE_ROWS))
            group = _CODE_BATCH_ROWS if codes.hashed else 0
            for part, fpart in partitions(lrel, codes, n_parts, lambda: _coded_batches(src, data, group),
                                          passes=passes, lookback_us=lookback_us, row_type=row_type,
                                          on_scanned=scanned):
                if fpart is not None:
                    con.register(lname, part)
                    con.register(fname, fpart)
                    rn, row = _match_chunk(con, one_key, lookback_us, lname, fname, None, aname, ename)
                    idx[rn] = row
                    con.unregister(fname)
                    con.unregister(lname)
                    del fpart
                    release_memory()
                tick(1 / n_parts)
            return idx
        frel_tbl = _source_relation(src, data, row_type)
        if batch_rows is None:  # as many chunks as it takes for each to see about _CHUNK_SOURCE_ROWS source rows
            chunks = max(1, -(-frel_tbl.num_rows // _CHUNK_SOURCE_ROWS))
            batch_rows = max(1, -(-lrel.num_rows // chunks))
        n_chunks = max(1, -(-lrel.num_rows // batch_rows))
        con.register(fname, frel_tbl)
        for part, lo, hi in _chunks(lrel, batch_rows):
            con.register(lname, part)
            if lo is None:
                frel, params = fname, None
            else:  # only the source rows in this chunk's key range reach the engine
                frel, params = f"(SELECT * FROM {fname} WHERE k0 BETWEEN $lo AND $hi)", {"lo": lo, "hi": hi}
            rn, row = _match_chunk(con, src, lookback_us, lname, frel, params, aname, ename)
            idx[rn] = row
            con.unregister(lname)
            tick(1 / n_chunks)
    except duckdb.Error as exc:
        raise FeatureLookupError(f"The point-in-time join of {_label(src, i)} failed in DuckDB: {exc}") from exc
    finally:
        for name in (lname, fname, aname, ename):
            with contextlib.suppress(Exception):
                con.unregister(name)
    return idx


def _settle_ties(con: duckdb.DuckDBPyConnection, src: PitSource, cand: pa.Table, ties: pa.Table,
                 ename: str) -> np.ndarray:
    """Replace each candidate row that has tied rows by the winner among them (see PitSource.tiebreak)."""
    tied = np.unique(ties.column("row").to_numpy())
    rows = cand.column("row").to_numpy()
    own = cand.filter(pc.is_in(cand.column("row"), pa.array(tied))).select(["row", *(["tb"] if src.tiebreak else [])])
    pool = pa.table({"grp": own.column("row"), "row": own.column("row"),
                     **({"tb": own.column("tb")} if src.tiebreak else {})})
    others = pa.table({"grp": ties.column("row"), "row": ties.column("cand"),
                       **({"tb": ties.column("ctb")} if src.tiebreak else {})})
    con.register(ename, pa.concat_tables([pool, others.cast(pool.schema)]))
    win = _fetch(con.sql(_winner_sql(src, "grp", ename)))
    con.unregister(ename)
    grp, best = win.column("grp").to_numpy(), win.column("row").to_numpy()
    order = np.argsort(grp)
    grp, best = grp[order], best[order]
    pos = np.clip(np.searchsorted(grp, rows), 0, len(grp) - 1)
    return np.where(grp[pos] == rows, best[pos], rows)


def point_in_time_join(
    spine: pa.Table,
    sources: Sequence[PitSource],
    *,
    batch_rows: int | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Join feature values to every spine row as they were at that row's time.

    Parameters
    ----------
    spine
        The rows to enrich (keys, timestamps, labels...). Returned unchanged, in order, with the
        feature columns appended.
    sources
        Where the features come from, see :class:`PitSource`; joined in turn.
    batch_rows
        The spine is matched in key-sorted chunks of at most this many rows, each against only the
        source rows in its key range, so the engine's memory follows the chunk, not the whole source.
        ``None`` (default) sizes the chunks so that each sees about a million source rows; a value
        of at least the spine's length matches everything in one pass.
    con
        DuckDB connection to run on (temporary views are registered and dropped); default: a private
        in-memory connection.

    Returns
    -------
    pyarrow.Table
        ``spine.num_rows`` rows: the spine's columns, then each source's ``output_names`` (and its
        ``indicator`` column when it names one).

    Raises
    ------
    FeatureLookupError
        Missing columns, incompatible key types (for example int vs string), bad lookback windows or
        an engine failure. ``LeakageError`` for a time series looked up without a timestamp and
        ``OutputCollisionError`` when output names collide.

    Examples
    --------
    >>> import pyarrow as pa
    >>> users = pa.table({"uid": ["a", "b"], "country": ["FR", "DE"]})
    >>> spine = pa.table({"uid": ["b", "a", "c", "b"]})
    >>> src = PitSource(users, keys=["uid"], lookup_keys=["uid"], features=["country"],
    ...                 output_names=["country"])
    >>> point_in_time_join(spine, [src]).column("country").to_pylist()
    ['DE', 'FR', None, 'DE']
    """
    if isinstance(spine, pa.RecordBatch):
        spine = pa.Table.from_batches([spine])
    if not isinstance(spine, pa.Table):
        raise FeatureLookupError(f"The spine must be a pyarrow Table, got {type(spine).__name__}; convert a "
                                 "pandas DataFrame with pyarrow.Table.from_pandas(df, preserve_index=False).")
    if batch_rows is not None and (not isinstance(batch_rows, int) or batch_rows < 1):
        raise FeatureLookupError(f"batch_rows must be a positive integer or None, got {batch_rows!r}.")
    datas = []
    for i, src in enumerate(sources):
        if not isinstance(src, PitSource):
            raise FeatureLookupError(f"sources[{i}] is a {type(src).__name__}, not a PitSource.")
        data = _Data(src.data, _label(src, i))
        _check_source(spine.schema, src, i, data)
        datas.append(data)
    _check_outputs(spine.schema, sources)

    big = spine.num_rows + sum(d.count_rows() for d in datas) >= _OWN_DATABASE_ROWS
    try:
        # A cursor of the caller's connection or of the process's private database: same settings, our
        # temporary views stay out of the caller's way, and opening one takes microseconds. A big join
        # without `con` gets a database of its own, closed once the rows are matched: DuckDB's allocator
        # keeps what a query used until its database closes (~200 MB for 10M source rows).
        work = con.cursor() if con is not None else (_new_engine() if big else _engine().cursor())
    except duckdb.Error as exc:
        raise FeatureLookupError(f"The point-in-time join could not use the DuckDB connection: {exc}") from exc
    try:
        with _progress(len(sources), spine.num_rows) as tick:
            matches = [_match(work, spine, src, i, data, batch_rows, tick)
                       for i, (src, data) in enumerate(zip(sources, datas, strict=True))]
    finally:
        work.close()
    release_memory()
    out = spine
    for src, data in zip(sources, datas, strict=True):
        idx = matches.pop(0)  # each source's positions are released once its columns are gathered
        for name, col in zip(src.output_names, data.gather(list(src.features), idx), strict=True):
            out = out.append_column(pa.field(name, col.type), col)
        if src.indicator is not None:
            out = out.append_column(pa.field(src.indicator, pa.bool_(), nullable=False), pa.array(idx >= 0))
        del idx
        release_memory()
    return out


_ENGINE: tuple[int, duckdb.DuckDBPyConnection] | None = None
_ENGINE_LOCK = threading.Lock()


def _new_engine() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    return con


def _engine() -> duckdb.DuckDBPyConnection:
    """The process's private in-memory DuckDB database for small joins (made again after a fork)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None or _ENGINE[0] != os.getpid():
            _ENGINE = (os.getpid(), _new_engine())
        return _ENGINE[1]


@contextlib.contextmanager
def _progress(sources: int, rows: int) -> Iterator[Any]:
    """A progress bar over the sources (advanced chunk by chunk); only for big joins, when enabled."""
    with ProgressBar(f"point-in-time join of {rows:,} rows", total=sources, show=rows >= 1_000_000,
                     unit="sources") as bar:
        yield bar.advance
