"""Push ingestion: ``fe.push(name, df, to=...)`` and ``POST /push/{table}``.

A push writes a few rows (one event, a micro-batch) to a feature table's online stores, its Delta
table, or both, without a ``publish_table`` run:

``to="online"``
    The rows go to every store the table has a live publication in (the newest publication per
    store: its online table, its features; rows its ``filter_condition`` rejects are left out).
    The Delta table is not written.
``to="offline"``
    A ``write_table(mode="merge")``, made idempotent by ``push_id``.
``to="both"``
    The Delta commit first, then the online write (see *Failures* below).

**Validation.** Rows pass exactly the checks of ``write_table`` (:meth:`TableService.prepare_write`:
keys present, non-null and unique, timestamp types, schema conflicts, expectations), then each
publication's: every published column present. Any failure raises before anything is written,
in Delta or online. ``to="online"`` refuses columns the table does not have (they cannot be added
without a Delta write).

**Newest wins online.** Rows go through the store contract's ``write_batch``, with the order every
publication uses: a time-series table's event time (a pushed row older than the stored one for its
key changes nothing); for a snapshot table ``snapshot_order(created, version)`` of the version the
push committed (``to="both"``) or of the table's latest version (``to="online"``): it ties with or
beats what ``publish_table`` wrote from that version, so the push wins, and the next publication of
a newer version wins over the push.

**Failures (``to="both"``).** The Delta table is the source of truth and online is derived from it,
so the commit comes first, carrying the ``push_id`` in its ``commitInfo`` and the catalog's version
record. If an online store fails afterwards, :class:`~larder.errors.PushIncompleteError` says which
version was committed and which stores were not written; calling ``push`` again with the same
``push_id`` finds the committed version (nothing is committed twice) and redoes the online write,
which is idempotent (same rows, same order). Without a ``push_id`` one is generated and reported
(in the result and in the error). A process killed between the two would leave the stores behind the
table unnoticed, so every ``to="both"`` push is recorded in the catalog (``pending_pushes``) before its
commit and the record is deleted once every store has the rows: ``larder doctor`` lists a record
older than a minute (:meth:`Pusher.pending`) and ``larder doctor --repair`` completes it
(:meth:`Pusher.complete`: the keys that version wrote, as the table's latest version holds them, are
written to every store it is published to; newest wins, so nothing newer is replaced).

**Read after write.** ``read_after_write=True`` returns only once every pushed key reads back
from every store it was written to (for a time-series table: at the pushed event time or newer),
and refuses, before writing, a store that cannot promise later reads see the write: DynamoDB
without ``consistent_reads`` (its default reads are eventually consistent). SQLite (a committed
transaction) and Redis (commands applied before the reply, reads go to the same server) always
show a write to the next read; the flag then adds the check.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import delete, select

from larder.catalog.base import utcnow
from larder.catalog.online import PendingPushRecord
from larder.catalog.tables import TableRecord
from larder.context import Context
from larder.errors import LarderError, PushError, PushIncompleteError, SchemaMismatchError, TableNotFoundError
from larder.failpoints import failpoint
from larder.names import parse_name
from larder.offline.tables import PreparedWrite, TableService, check_write_id
from larder.online.publish import Publisher, snapshot_order
from larder.online.stores import StoreCache
from larder.online.stores.base import ORDER_COLUMN, OnlineStore, OnlineTable, online_table_from_info

_log = logging.getLogger(__name__)

PushTarget = Literal["online", "offline", "both"]
TARGETS = ("online", "offline", "both")


@dataclass(frozen=True)
class StoreWrite:
    """What a push wrote to one online store."""

    #: the store's name (larder.yaml or ``create_online_store``), else its type
    store: str
    store_type: str
    online_table_name: str
    #: rows sent (after the publication's filter)
    rows: int
    #: keys whose stored row changed (a row older than the stored one changes nothing)
    changed: int

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, "store_type": self.store_type, "online_table_name": self.online_table_name,
                "rows": self.rows, "changed": self.changed}


@dataclass(frozen=True)
class PushResult:
    """The outcome of one ``fe.push`` call."""

    table_name: str
    to: str
    #: rows in the push
    rows: int
    #: the id that makes a retry idempotent (the caller's, or a generated one)
    push_id: str
    #: the Delta version holding the rows (``to="offline"``/``"both"``), None for ``to="online"``
    delta_version: int | None
    online: list[StoreWrite]
    #: whether every pushed key was read back from every store written
    read_after_write: bool
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"table_name": self.table_name, "to": self.to, "rows": self.rows, "push_id": self.push_id,
                "delta_version": self.delta_version, "online": [w.to_dict() for w in self.online],
                "read_after_write": self.read_after_write, "duration_s": self.duration_s}


#: A push recorded as under way for this long (seconds) is taken to have stopped (``larder doctor``).
PENDING_AGE_S = 60.0


@dataclass(frozen=True)
class PendingPush:
    """A ``push(to="both")`` whose online write did not finish; ``delta_version``: the version it
    committed (None: its process stopped before the commit, so nothing is missing online)."""

    table_name: str
    push_id: str
    created_at: datetime
    delta_version: int | None = None


@dataclass
class _Target:
    """One store a push writes to: the table's newest live publication there."""

    store_name: str
    store_type: str
    spec: Any
    online: OnlineTable
    online_table_name: str
    filter_condition: str | None
    store: OnlineStore | None = None
    rows: pa.Table | None = None


class Pusher:
    """Push rows into feature tables' Delta tables and online stores; see the module docstring."""

    def __init__(self, ctx: Context, tables: TableService, publisher: Publisher, stores: StoreCache) -> None:
        self.ctx = ctx
        self.tables = tables
        self.publisher = publisher
        self.stores = stores
        #: Delta tables opened by earlier pushes (``TableService.prepare_write``'s ``open_tables``); the
        #: lock makes one push at a time use them (pushes from one client run one after another)
        self._open_tables: dict[str, Any] = {}
        self._lock = threading.Lock()

    def push(self, name: str, df: Any, to: PushTarget = "online", *, push_id: str | None = None,
             read_after_write: bool = False) -> PushResult:
        """Push the rows of ``df`` into feature table ``name``; see the module docstring."""
        started = time.perf_counter()
        if to not in TARGETS:
            raise PushError(f"push: to must be one of {list(TARGETS)}, got {to!r}.")
        if not isinstance(read_after_write, bool):
            raise PushError(f"push: read_after_write must be True or False, got {read_after_write!r}.")
        pid = check_write_id(push_id) if push_id is not None else uuid.uuid4().hex
        full = parse_name(name).full
        targets = [] if to == "offline" else self._targets(full)
        if to != "offline" and not targets:
            self.tables.current_schema(full)  # TableNotFoundError for a table that does not exist
            raise PushError(
                f"Feature table {full!r} is not published to any online store, so push(to={to!r}) has nowhere "
                f"to write online (nothing was written). Publish it first (fe.publish_table({full!r}, ...)), "
                "or push with to='offline'."
            )
        if read_after_write:
            for t in targets:
                _check_read_after_write(full, t)
        for t in targets:
            t.store = self.stores.get(t.spec)
        with self._lock:
            if isinstance(df, (list, dict)):  # JSON rows (records or columns), typed by the table's schema
                df = rows_from_json(full, df, self.tables.current_schema(full, open_tables=self._open_tables))
            return self._push(full, df, to, targets, pid, read_after_write, started)

    def _push(self, full: str, df: Any, to: str, targets: list[_Target], pid: str, read_after_write: bool,
              started: float) -> PushResult:
        with self.tables.prepare_write(full, df, "merge", open_tables=self._open_tables) as prepared:
            if to == "online" and prepared.new_fields:
                raise SchemaMismatchError(
                    f"Table {full!r} has no column(s) {[f.name for f in prepared.new_fields]}; push(to='online') "
                    "cannot add columns (nothing was written). Push with to='both' to add them to the table, or "
                    "drop them."
                )
            rows = _as_arrow(prepared.data)
            for t in targets:
                t.rows = online_rows(full, t, rows)
            marker = self._mark(full, pid) if to == "both" else None
            failpoint("push:before_commit")
            try:
                version = self.tables.commit_write(prepared, write_id=pid) if to != "online" else None
            except BaseException:
                if marker is not None:  # nothing committed (or the commit's own error says what to do)
                    self._unmark(full, pid)
                raise
            order = _snapshot_order(prepared, version)
            failpoint("push:after_commit")
            written, failed = self._write_online(full, targets, order)
        if failed:
            raise self._incomplete(full, to, pid, version, written, failed)
        if marker is not None:
            self._unmark(full, pid)
        checked = False
        if read_after_write and targets:
            self._read_back(full, targets)
            checked = True
        return PushResult(table_name=full, to=to, rows=rows.num_rows, push_id=pid, delta_version=version,
                          online=written, read_after_write=checked, duration_s=time.perf_counter() - started)

    # -- pushes whose online write did not finish ---------------------------------------------
    def _mark(self, full: str, pid: str) -> int:
        """Record the push as under way (before its Delta commit); a retry with the push id reuses it."""
        with self.ctx.catalog.session() as s:
            known = s.scalars(select(PendingPushRecord.id).where(
                PendingPushRecord.table_name == full, PendingPushRecord.push_id == pid)).first()
            if known is not None:
                return int(known)
            rec = PendingPushRecord(table_name=full, push_id=pid, created_at=utcnow())
            s.add(rec)
            s.flush()
            return int(rec.id)

    def _unmark(self, full: str, pid: str) -> None:
        with self.ctx.catalog.session() as s:
            s.execute(delete(PendingPushRecord).where(PendingPushRecord.table_name == full,
                                                      PendingPushRecord.push_id == pid))

    def pending(self, *, min_age_s: float = PENDING_AGE_S) -> list[PendingPush]:
        """Pushes (``to="both"``) recorded as under way for at least ``min_age_s`` seconds: their process
        died, or a store failed, before every online store had the rows. Reads only."""
        cutoff = utcnow() - timedelta(seconds=min_age_s)
        with self.ctx.catalog.session() as s:
            recs = list(s.scalars(select(PendingPushRecord).where(PendingPushRecord.created_at <= cutoff)
                                  .order_by(PendingPushRecord.created_at, PendingPushRecord.id)))
            out = [PendingPush(r.table_name, r.push_id, r.created_at.replace(tzinfo=UTC)) for r in recs]
        for i, p in enumerate(out):
            try:
                out[i] = PendingPush(p.table_name, p.push_id, p.created_at,
                                     self.tables.committed_version(p.table_name, p.push_id))
            except TableNotFoundError:
                pass  # the table was dropped since: nothing to complete
        return out

    def complete(self, p: PendingPush) -> int:
        """Finish a pending push: the keys its Delta version wrote, as the table's latest version holds
        them, are written to every store the table is published to (newest wins, so a store that holds
        newer rows keeps them); then the record goes. A push that never committed (its process died
        first) or whose table is gone has nothing to write. Returns the rows written online."""
        try:
            version = self.tables.committed_version(p.table_name, p.push_id)
        except TableNotFoundError:
            version = None
        written_rows = 0
        if version is not None:
            targets = self._targets(p.table_name)
            rows, created, latest = self._current_rows(p.table_name, version, targets)
            for t in targets:
                t.store = self.stores.get(t.spec)
                t.rows = online_rows(p.table_name, t, rows)
            with self._lock:
                written, failed = self._write_online(p.table_name, targets, snapshot_order(created, latest))
            if failed:
                raise self._incomplete(p.table_name, "both", p.push_id, version, written, failed)
            written_rows = sum(w.rows for w in written)
        self._unmark(p.table_name, p.push_id)
        return written_rows

    def _current_rows(self, full: str, version: int, targets: list[_Target]) -> tuple[pa.Table, datetime, int]:
        """The latest version's rows of the keys that Delta ``version`` wrote (the files it added hold
        them, beside rows it only copied), with the table's creation time and latest version."""
        with self.ctx.catalog.session() as s:
            rec = s.scalars(select(TableRecord).where(TableRecord.full_name == full)).one()
            created = rec.created_at.replace(tzinfo=UTC)
        keys_of = list(dict.fromkeys(k for t in targets for k in t.online.primary_keys))
        then = self.tables.snapshot(full, version)
        before = set(self.tables.snapshot(full, version - 1).file_uris()) if version > 0 else set()
        added = [u for u in then.file_uris() if u not in before]
        latest = self.tables.snapshot(full)
        if not keys_of or not added:
            return latest.schema.empty_table(), created, latest.version
        keys = then.to_arrow(columns=keys_of, files=added).group_by(keys_of, use_threads=False).aggregate([])
        first = keys.column(keys_of[0]).combine_chunks()
        rows = latest.to_arrow(filter=pc.field(keys_of[0]).isin(first))
        if len(keys_of) > 1:
            rows = rows.join(keys, keys=keys_of, join_type="inner")
        return rows, created, latest.version

    # -- where the rows go --------------------------------------------------------------------
    def _targets(self, full: str) -> list[_Target]:
        return live_targets(self.publisher, full)

    def _write_online(self, full: str, targets: list[_Target], order: int | None
                      ) -> tuple[list[StoreWrite], list[tuple[_Target, LarderError]]]:
        written: list[StoreWrite] = []
        failed: list[tuple[_Target, LarderError]] = []
        for t in targets:
            assert t.store is not None and t.rows is not None
            rows = with_order(t.online, t.rows, order)
            try:
                changed = t.store.write_batch(t.online, rows, order=ORDER_COLUMN) if rows.num_rows else 0
            except LarderError as exc:
                _log.warning("push into %s: the %s store failed: %s", full, t.store_name, exc)
                failed.append((t, exc))
                continue
            written.append(StoreWrite(t.store_name, t.store_type, t.online_table_name, rows.num_rows, int(changed)))
        return written, failed

    def _incomplete(self, full: str, to: str, pid: str, version: int | None, written: list[StoreWrite],
                    failed: list[tuple[_Target, LarderError]]) -> PushIncompleteError:
        stores = ", ".join(f"{t.store_name} ({exc})" for t, exc in failed)
        done = f" It reached {[w.store for w in written]}." if written else ""
        if version is not None:
            what = (f"Push {pid!r} into {full!r}: the rows are committed in Delta version {version}, but writing "
                    f"them to the online store(s) failed: {stores}.{done} Call push again with push_id={pid!r} "
                    "once the store is reachable: the Delta commit is not repeated and the online write is "
                    f"idempotent (or run fe.publish_table({full!r}) to bring the store up to the table).")
        else:
            what = (f"Push {pid!r} into {full!r} (to='online'): writing to the online store(s) failed: {stores}."
                    f"{done} Nothing was written to Delta. Pushing the same rows again is safe (newest wins).")
        err = PushIncompleteError(what)
        err.push_id, err.delta_version = pid, version
        err.failed_stores = [t.store_name for t, _ in failed]
        err.__cause__ = failed[0][1]
        return err

    def _read_back(self, full: str, targets: list[_Target]) -> None:
        """Read every pushed key back from every store written; raise if one is not there (or, for a
        time-series table, is older than pushed)."""
        for t in targets:
            assert t.store is not None and t.rows is not None
            if not t.rows.num_rows:
                continue
            keys = t.rows.select(t.online.primary_keys)
            ts = t.online.timestamp_key
            try:
                got, found = t.store.read_batch(t.online, keys, [ts] if ts else None)
            except LarderError as exc:
                raise PushError(
                    f"Push into {full!r}: reading the pushed keys back from the {t.store_name} store failed: {exc}. "
                    "The rows were written; pushing them again is safe."
                ) from exc
            missing = np.flatnonzero(~np.asarray(found, dtype=bool))
            if ts is not None and not len(missing):
                stored = _micros(got.column(ts))
                pushed = _micros(t.rows.column(ts))
                missing = np.flatnonzero(stored < pushed)
            if len(missing):
                first = {k: t.rows.column(k)[int(missing[0])].as_py() for k in t.online.primary_keys}
                raise PushError(
                    f"Push into {full!r}: {len(missing)} pushed key(s) do not read back from the {t.store_name} "
                    f"store (first: {first}); read_after_write is not met. The rows were written; push again."
                )


def live_targets(publisher: Publisher, full: str) -> list[_Target]:
    """Table ``full``'s newest live publication per store (``Publisher._active`` lists them newest first):
    where rows written after a publish must also go (pushes, stream consumers)."""
    out: dict[str, _Target] = {}
    for rec in publisher._active(full):
        if rec.store_key in out:
            continue
        out[rec.store_key] = _Target(
            store_name=rec.store_name or rec.store_type, store_type=rec.store_type,
            spec=publisher._spec_of(rec), online=online_table_from_info(rec.online_table),
            online_table_name=rec.online_table_name, filter_condition=rec.filter_condition)
    return list(out.values())


def rows_from_json(full: str, rows: list[dict[str, Any]] | dict[str, list[Any]], schema: pa.Schema) -> pa.Table:
    """JSON rows (records, or columns of one length) as an Arrow table of the table's types: timestamps
    and dates from ISO 8601 strings (a naive time means UTC) or epoch microseconds, every other column
    built with the table's type (a value that does not fit is a SchemaMismatchError naming the column);
    columns the table lacks keep the types JSON gives them."""
    if isinstance(rows, list):
        if not all(isinstance(r, dict) for r in rows):
            raise PushError(f"Push into {full!r}: rows as a list must be JSON objects, one per row.")
        names = list(dict.fromkeys(k for r in rows for k in r))
        columns = {n: [r.get(n) for r in rows] for n in names}
    else:
        columns = rows
    out: dict[str, pa.Array] = {}
    for name, values in columns.items():
        if not isinstance(values, list):
            raise PushError(f"Push into {full!r}: column {name!r} must be a list of values.")
        target = schema.field(name).type if name in schema.names else None
        try:
            if target is not None and (pa.types.is_timestamp(target) or pa.types.is_date(target)):
                import pandas as pd

                parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
                arr = pa.array(parsed, pa.timestamp("us", tz="UTC"))
                out[name] = arr.cast(target) if pa.types.is_date(target) else arr
            else:
                out[name] = pa.array(values, type=target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError, TypeError) as exc:
            raise SchemaMismatchError(
                f"Push into {full!r}: column {name!r} holds value(s) that are not {target or 'one JSON type'} "
                f"({exc}); nothing was written. Send {'ISO 8601 times' if target is not None and pa.types.is_temporal(target) else 'values of the column type'}."
            ) from exc
    return pa.table(out)


def _check_read_after_write(full: str, t: _Target) -> None:
    if t.store_type == "dynamodb" and not getattr(t.spec, "consistent_reads", False):
        raise PushError(
            f"push into {full!r} with read_after_write=True: the {t.store_name} DynamoDB store reads with "
            "eventual consistency, so a read right after the write may miss it (nothing was written). Set "
            "consistent_reads: true in the store's spec, or push without read_after_write."
        )


def _as_arrow(data: Any) -> pa.Table:
    """The engine's prepared rows as Arrow (they already are on DuckDB; a Spark frame is collected: a
    push is small)."""
    if isinstance(data, pa.Table):
        return data
    return pa.table(data.toArrow())  # pragma: no cover - the Spark engine


def online_rows(full: str, t: _Target, rows: pa.Table, *, action: str = "Push") -> pa.Table:
    """The pushed rows as the publication's online table holds them (its columns, its filter).
    ``action`` starts the error messages ("Push", or a stream consumer's "Stream 'x'")."""
    columns = t.online.schema.names
    missing = [c for c in columns if c not in rows.column_names]
    if missing:
        raise SchemaMismatchError(
            f"{action} into {full!r}: the rows lack column(s) {missing}, which the table's publication to the "
            f"{t.store_name} store serves (online table {t.online_table_name!r} holds {columns}); nothing was "
            "written. Push every published column, or push with to='offline' and publish_table afterwards."
        )
    out = rows.select(columns)
    if t.filter_condition:
        out = _filtered(full, t, out, rows, action)
    return out


def _filtered(full: str, t: _Target, out: pa.Table, rows: pa.Table, action: str) -> pa.Table:
    import duckdb

    from larder.offline.pit import _fetch

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone='UTC'")
        con.register("pushed", rows.append_column("__larder_row__", pa.array(np.arange(rows.num_rows))))
        keep = _fetch(con.sql(f'SELECT "__larder_row__" FROM pushed WHERE ({t.filter_condition})'))
    except duckdb.Error as exc:
        raise PushError(
            f"{action} into {full!r}: the publication to the {t.store_name} store has filter_condition "
            f"{t.filter_condition!r}, which cannot be evaluated on the pushed rows ({exc}); nothing was written. "
            "Push the columns it uses, or republish with a SQL filter_condition."
        ) from exc
    finally:
        con.close()
    index = keep.column(0).combine_chunks() if keep.num_rows else pa.array([], pa.int64())
    return out.take(pa.array(np.sort(index.to_numpy(zero_copy_only=False))))


def _snapshot_order(prepared: PreparedWrite, version: int | None) -> int:
    """A snapshot table's order for the pushed rows: the committed version's, else the latest's."""
    base = version if version is not None else prepared.snapshot.version if prepared.snapshot is not None else 0
    return snapshot_order(prepared.created_at, int(base))


def _micros(col: Any) -> np.ndarray:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    us = col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.asarray(us.fill_null(np.iinfo(np.int64).min).to_numpy(zero_copy_only=False), dtype=np.int64)


def with_order(online: OnlineTable, rows: pa.Table, snapshot_value: int | None) -> pa.Table:
    """``rows`` with the ordering column: event time in microseconds, else the snapshot order."""
    ts = online.timestamp_key
    if ts is not None:
        order = pa.array(_micros(rows.column(ts)), pa.int64())
    else:
        order = pa.array(np.full(rows.num_rows, int(snapshot_value or 0), dtype=np.int64))
    return rows.append_column(ORDER_COLUMN, order)


__all__ = ["PENDING_AGE_S", "TARGETS", "PendingPush", "PushResult", "Pusher", "StoreWrite", "live_targets", "online_rows", "rows_from_json", "with_order"]
