"""The stream consumer (``larder stream run NAME``): events -> the destination Delta table, exactly once,
and -> the table's live publications, newest wins.

One batch at a time:

1. **Read** up to ``batch_size`` events after the consumer's position (:mod:`larder.streams.readers`).
2. **Rows.** Each event's payload and key fields become columns typed by the stream's JSON schemas
   (a value that does not convert is a :class:`~larder.errors.StreamError` naming the event's offset
   and the column); ``record_type_filter`` (a SQL predicate over ``value.<field>`` / ``key.<field>``
   or bare column names) keeps the events it matches; the last event of each
   ``deduplication_columns`` combination and of each primary key wins within the batch.
3. **Delta.** The rows go through ``write_table`` (every check of a write: keys, types, schema,
   expectations), and the stream's offsets after the batch go into *the same Delta commit*'s
   ``commitInfo`` (key :data:`OFFSETS_KEY`: the stream's id and offsets). The commit is atomic, so
   the rows and the offsets that say they were consumed are durable together or not at all. Then the
   catalog's :class:`~larder.catalog.streams.StreamRecord` notes the version (a hint, see below).
4. **Online.** The rows are written to each live publication of the table (the newest active one per
   store) with the stores' conditional write: a time-series table's rows are ordered by their event
   time, a snapshot table's by ``snapshot_order(created, Delta version that holds the event)``, so a
   key never goes back to an older value. Then the catalog notes how far online is.

**Restart.** The consumer resumes from the offsets of the newest Delta commit carrying its stream id
(found from the catalog's hint forward, reading only the commits since), so a kill at any point
neither loses nor repeats an event in Delta: before the commit nothing of the batch is durable and
it is read again; after it, the batch is skipped. Events that are in Delta but whose online write the
kill interrupted (between the catalog's online offsets and the Delta offsets) are read again and
written online only, with the order of the version that committed them: an online write of the same
value is idempotent, so online ends exactly as if no kill had happened.

Run one consumer per stream: two would both write each event.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from larder.catalog.base import utcnow
from larder.catalog.streams import StreamRecord
from larder.errors import StreamError
from larder.failpoints import failpoint
from larder.offline.tables import FeatureTable, TableService
from larder.online.publish import Publisher, snapshot_order
from larder.online.push import live_targets, online_rows, with_order
from larder.online.stores.base import ORDER_COLUMN
from larder.streams import config as cfg
from larder.streams.config import Stream
from larder.streams.readers import Event, Reader, newer, open_reader, position
from larder.streams.service import StreamService

#: Key of a stream consumer's offsets in a Delta commit's ``commitInfo``.
OFFSETS_KEY = "larder.stream"


@dataclass
class ConsumerStats:
    """What a :meth:`StreamConsumer.run` did."""

    events_read: int = 0
    events_written: int = 0
    rows_written: int = 0
    events_replayed_online: int = 0
    batches: int = 0
    delta_version: int | None = None
    offsets: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


# -- events -> rows ------------------------------------------------------------------------------
def _convert(values: list[Any], typ: pa.DataType, *, stream: str, col: str, events: list[Event]) -> pa.Array:
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        import pandas as pd

        try:
            ts = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
            arr = pa.array(ts, type=pa.timestamp("us", tz="UTC"), from_pandas=True)
            return arr if pa.types.is_timestamp(typ) else arr.cast(pa.date32())
        except (ValueError, TypeError, pa.ArrowInvalid):
            pass
    else:
        try:
            return pa.array(values, type=typ)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            try:
                return pa.array([None if v is None else str(v) for v in values], pa.string()).cast(typ)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
    if events:  # name the first event whose value does not convert
        for i, v in enumerate(values):
            try:
                _convert([v], typ, stream=stream, col=col, events=[])
            except StreamError:
                e = events[i]
                raise StreamError(f"Stream {stream!r}: event {e.source} {e.offset} has {col}={v!r}, which is not "
                                  f"a {typ}. Fix the producer, or the stream's schema (fe.update_stream).") from None
    raise StreamError(f"Stream {stream!r}: column {col!r} does not convert to {typ}.")


def event_rows(stream: Stream, events: list[Event], schema: pa.Schema, paths: dict[str, str]) -> pa.Table:
    """The events as typed columns (see the module docstring, step 2), before filtering."""
    cols = {}
    for f in schema:
        side, _, leaf = paths[f.name].partition(".")
        if side == "value":
            values = [e.value.get(leaf) for e in events]
        else:
            values = [e.key.get(leaf) if e.key else None for e in events]
        cols[f.name] = _convert(values, f.type, stream=stream.name, col=f.name, events=events)
    return pa.table(cols, schema=schema) if cols else pa.table({})


def apply_filter(stream: Stream, rows: pa.Table, paths: dict[str, str]) -> pa.Table:
    """The rows ``record_type_filter`` keeps (DuckDB; ``value.x`` / ``key.x`` or bare names)."""
    if not stream.record_type_filter:
        return rows
    import duckdb

    data: dict[str, Any] = {c: rows[c] for c in rows.column_names}
    for side in ("value", "key"):
        names = [c for c in rows.column_names if paths.get(c, "").startswith(side + ".")]
        if names and side not in data:
            data[side] = pa.StructArray.from_arrays([rows[c].combine_chunks() for c in names], names=names)
    try:
        return rows.take(_matching(pa.table(data), stream.record_type_filter))
    except duckdb.Error as exc:
        raise StreamError(f"Stream {stream.name!r}: record_type_filter {stream.record_type_filter!r} is not a valid "
                          f"SQL predicate over the event columns ({sorted(paths.values())}): {exc}") from exc


def keep_last(rows: pa.Table, cols: list[str]) -> pa.Table:
    """Per distinct ``cols``, the row that comes last (rows stay in their order)."""
    if rows.num_rows < 2 or not cols:
        return rows
    pos = pa.array(np.arange(rows.num_rows, dtype=np.int64))
    grouped = pa.table({**{c: rows[c] for c in cols}, "__p": pos}).group_by(cols, use_threads=False)
    last = grouped.aggregate([("__p", "max")]).column("__p_max").to_numpy()
    if len(last) == rows.num_rows:
        return rows
    return rows.take(pa.array(np.sort(last)))


# -- the consumer ----------------------------------------------------------------------------------
class StreamConsumer:
    """Runs one stream (see the module docstring)."""

    def __init__(self, streams: StreamService, tables: TableService, publisher: Publisher, name: str, *,
                 batch_size: int = 1000, block_ms: int = 200) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise StreamError(f"batch_size must be a positive number of events, got {batch_size!r}.")
        self.streams, self.tables, self.publisher = streams, tables, publisher
        self.rec = streams.record(name)
        self.stream = Stream.from_dict(self.rec.name, self.rec.definition)
        self.schema, self.paths = cfg.columns(self.stream)
        self.batch_size, self.block_ms = batch_size, block_ms
        self.table: FeatureTable = tables.get_table(self.stream.destination)
        self.dedup = [self._column(c) for c in self.stream.ingestion_config.deduplication_columns or []]

    def _column(self, path: str) -> str:
        for name, p in self.paths.items():
            if path in (name, p):
                return name
        raise StreamError(f"Stream {self.stream.name!r}: deduplication column {path!r} is not an event column.")

    # -- where to start ----------------------------------------------------------------------------
    def _stream_commits(self) -> tuple[list[tuple[int, dict[str, str], int]], int]:
        """The Delta commits of this stream after the catalog's online hint, oldest first (version,
        offsets, events consumed in all), and the table's current version."""
        rec = self.streams.record(self.stream.name)
        snap = self.tables.snapshot(self.table.name)
        current = snap.version
        hints = [v for v in (rec.online_version, rec.delta_version) if v is not None]
        since = min(hints) if len(hints) == 2 else None
        limit = None if since is None else max(current - since, 0)
        commits = []
        if limit != 0:
            for h in snap.table.history(limit):
                raw = h.get(OFFSETS_KEY)
                if raw is None or h.get("version") is None:
                    continue
                info = json.loads(raw)
                if info.get("id") == self.rec.stream_id:
                    commits.append((int(h["version"]), dict(info["offsets"]), int(info.get("events", 0))))
        commits.sort()
        return commits, current

    # -- online -------------------------------------------------------------------------------------
    def _live(self) -> list[Any]:
        """The table's live publications (:func:`larder.online.push.live_targets`), checked to hold only
        columns the events carry (else the consumer could not keep those online tables whole)."""
        targets = live_targets(self.publisher, self.table.name)
        for t in targets:
            missing = [c for c in t.online.schema.names if c not in self.schema.names]
            if missing:
                raise StreamError(
                    f"Stream {self.stream.name!r}: table {self.table.name!r} is published to the {t.store_name} "
                    f"store with column(s) {missing} that the stream's events do not carry, so the consumer cannot "
                    "keep that online table whole. Republish with features=[...] of the event columns, or add the "
                    "columns to the stream's schema.")
            t.store = self.publisher.stores.get(t.spec)
        return targets

    def _publish(self, live: list[Any], rows: pa.Table, versions: np.ndarray) -> None:
        """``rows`` to every live publication, newest wins, as a push writes them (the publication's
        columns and filter, its ordering): a time-series table's rows by event time, a snapshot table's
        by the snapshot order of the Delta version that holds each row (``versions``)."""
        if not live or rows.num_rows == 0:
            return
        created = self.table.created_at
        for version in np.unique(versions):
            chunk = rows.filter(pa.array(versions == version))
            order = snapshot_order(created, int(version))
            for t in live:
                out = with_order(t.online, online_rows(self.table.name, t, chunk, action=f"Stream {self.stream.name!r}"), order)
                # the newest row per key (a batch may hold several rows of one entity)
                out = keep_last(out.take(pc.sort_indices(out, [(ORDER_COLUMN, "ascending")])),
                                list(t.online.primary_keys))
                if out.num_rows:
                    t.store.write_batch(t.online, out, order=ORDER_COLUMN, publication=order)

    # -- the loop -------------------------------------------------------------------------------------
    def run(self, *, max_events: int | None = None, idle_timeout: float | None = None,
            stop: threading.Event | None = None, on_batch: Callable[[ConsumerStats], None] | None = None,
            reader: Reader | None = None) -> ConsumerStats:
        """Consume until ``stop`` is set, ``max_events`` new events were written, or no event came for
        ``idle_timeout`` seconds (None: run until stopped)."""
        started = time.monotonic()
        stats = ConsumerStats()
        found, _ = self._stream_commits()
        commits = [(v, o) for v, o, _ in found]
        rec = self.streams.record(self.stream.name)
        delta_version: int | None
        if found and found[-1][0] != rec.delta_version:  # killed between a commit and its catalog note
            delta_version, delta_offsets, total = found[-1][0], dict(found[-1][1]), found[-1][2]
        else:  # the catalog is current (its offsets may also cover events the filter dropped since)
            delta_version, delta_offsets, total = rec.delta_version, dict(rec.offsets or {}), rec.events or 0
        online_offsets: dict[str, str] = dict(rec.online_offsets or {})
        # where to read from: the online offsets, which never run ahead of the Delta offsets except
        # over events the record_type_filter dropped (read again then: they are dropped again)
        # (a source with no online offset is read from its start: its events all need an online write)
        pos = {k: min(v, delta_offsets[k], key=position) for k, v in online_offsets.items() if k in delta_offsets}
        stats.delta_version, stats.offsets = delta_version, dict(delta_offsets)
        reader = reader or open_reader(self.stream)
        last_event = time.monotonic()
        try:
            while not (stop is not None and stop.is_set()):
                if max_events is not None and stats.events_written >= max_events:
                    break
                events = reader.read(pos, self.batch_size, self.block_ms)
                if not events:
                    if idle_timeout is not None and time.monotonic() - last_event >= idle_timeout:
                        break
                    continue
                last_event = time.monotonic()
                fresh = [e for e in events if newer(e, delta_offsets)]
                replay = [e for e in events if not newer(e, delta_offsets)]
                live = self._live()
                if replay:  # in Delta already (a kill came between the commit and the online write)
                    rows = self._rows(replay)
                    versions = np.array([_version_of(e, commits, delta_version) for e in replay], dtype=np.int64)
                    kept = rows.column("__larder_i").to_numpy() if rows.num_rows else np.zeros(0, np.int64)
                    self._publish(live, rows.drop_columns(["__larder_i"]), versions[kept])
                    stats.events_replayed_online += len(replay)
                if fresh:
                    new_offsets = dict(delta_offsets)
                    for e in fresh:
                        new_offsets[e.source] = e.offset
                    rows = self._rows(fresh).drop_columns(["__larder_i"])
                    total += len(fresh)
                    if rows.num_rows:
                        meta = {OFFSETS_KEY: json.dumps({"id": self.rec.stream_id, "offsets": new_offsets,
                                                         "events": total})}
                        delta_version = self.tables.write_table(self.table.name, rows, mode="merge",
                                                                commit_metadata=meta)
                        commits.append((delta_version, new_offsets))
                        failpoint("stream:after_delta_commit")
                    delta_offsets = new_offsets
                    self._note(delta_version=delta_version, offsets=delta_offsets, events=total)
                    if rows.num_rows:
                        self._publish(live, rows, np.full(rows.num_rows, delta_version, dtype=np.int64))
                    stats.rows_written += rows.num_rows
                    stats.events_written += len(fresh)
                failpoint("stream:after_online")
                for e in events:
                    pos[e.source] = e.offset
                self._note(online_version=delta_version, online_offsets=dict(pos))
                stats.events_read += len(events)
                stats.batches += 1
                stats.delta_version, stats.offsets = delta_version, dict(delta_offsets)
                stats.seconds = time.monotonic() - started
                if on_batch is not None:
                    on_batch(stats)
        finally:
            reader.close()
        stats.seconds = time.monotonic() - started
        return stats

    def _rows(self, events: list[Event]) -> pa.Table:
        """Typed, filtered, de-duplicated rows of ``events``; ``__larder_i``: each row's event index."""
        rows = event_rows(self.stream, events, self.schema, self.paths)
        rows = rows.append_column("__larder_i", pa.array(np.arange(len(events), dtype=np.int64)))
        rows = apply_filter(self.stream, rows, self.paths)
        rows = keep_last(rows, self.dedup)
        return keep_last(rows, list(self.table.primary_keys))

    def _note(self, **values: Any) -> None:
        with self.streams.ctx.catalog.session() as s:
            rec = s.scalar(select(StreamRecord).where(StreamRecord.stream_id == self.rec.stream_id))
            if rec is None:
                raise StreamError(f"Stream {self.stream.name!r} was deleted while its consumer ran; it stopped.")
            for k, v in values.items():
                setattr(rec, k, v)
            rec.updated_at = utcnow()


def _version_of(event: Event, commits: list[tuple[int, dict[str, str]]], default: int | None) -> int:
    """The Delta version whose commit consumed ``event`` (the first whose offsets reach it)."""
    p = position(event.offset)
    for version, offsets in commits:
        done = offsets.get(event.source)
        if done is not None and p <= position(done):
            return version
    return int(default or 0)


def _matching(table: pa.Table, predicate: str) -> pa.Array:
    """Positions of the rows of ``table`` that the SQL ``predicate`` keeps (DuckDB), in order."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("r", table.append_column("__larder_pos", pa.array(np.arange(table.num_rows, dtype=np.int64))))
        return con.sql(f"SELECT __larder_pos FROM r WHERE ({predicate}) ORDER BY __larder_pos"
                       ).fetch_arrow_table().column(0)
    finally:
        con.close()


def _where(rows: pa.Table, predicate: str, stream: str) -> pa.Table:
    import duckdb

    try:
        return rows.take(_matching(rows, predicate))
    except duckdb.Error as exc:
        raise StreamError(f"Stream {stream!r}: a publication's filter_condition {predicate!r} fails on the "
                          f"streamed rows: {exc}") from exc


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT: the consumer finishes its batch and returns."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["OFFSETS_KEY", "ConsumerStats", "StreamConsumer", "apply_filter", "event_rows", "keep_last",
           "stop_on_signals"]
