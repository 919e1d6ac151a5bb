"""Publishing feature tables to online stores.

``publish_table`` copies the newest row per entity of a feature table into an online store and
records the publication in the catalog. How it works:

1. **Which store.** ``online_store`` is a spec object, the name of a store in ``larder.yaml``'s
   ``online_stores``, or None: the configured ``default_online_store``, else the embedded SQLite store
   at ``<root>/online.db``.
2. **Which rows.** The Delta snapshot (latest, or ``version``) is scanned by DuckDB; the optional
   ``filter_condition`` (a SQL predicate, or a pyarrow expression) is applied first; then, for a
   time-series table, only the latest row per entity is kept (``QUALIFY row_number() ...``). A snapshot
   table already has one row per key. DuckDB streams the result in record batches, so memory stays
   bounded whatever the table size (DuckDB spills the window to disk past its memory limit).
   On the Spark engine the same rows are chosen in Spark and written from the executors
   (:mod:`larder.online.publish_spark`).
3. **Ordering.** Every row carries an ``__larder_order__`` value; a store keeps, per key, the row with
   the greatest order and never replaces a stored greater one (a conditional write), so a merge can
   never regress a key to older data:

   * time series: the row's event time in microseconds since the epoch. Republishing older data
     leaves newer stored rows alone. Two rows with the *same* event time (a restatement) have equal
     order, and the later publish wins.
   * snapshot table: one value per publish, ``created_ms * 2**20 + delta_version``, where
     ``created_ms`` is when the feature table was created (milliseconds). It grows with the Delta
     version, so publishing an older version (or a slow publish that read an older version and
     finishes after a newer one) changes nothing; and a table that is dropped and recreated (its
     versions restart at 0) still orders above everything the old table published.

   * every publication: the same ``created_ms * 2**20 + delta_version`` is its *publication order*.
     A store that can compare (SQLite, Redis) keeps the greatest it serves per table and refuses an
     overwrite of an older one atomically with its switch, so two racing overwrites of versions 1
     and 2 always end serving version 2; ``publish_table`` also refuses, before writing anything, a
     publish older than the store serves or than the catalog's newest active publication to that
     store (:class:`~larder.errors.StalePublishError`).

4. **Modes.** ``merge`` writes batch by batch with the conditional write; a failure part-way leaves
   the keys written so far at their (newer) values and nothing older. ``overwrite`` hands all batches
   to the store's ``replace_table``, which swaps the new contents in only when complete (keys absent
   from the new publish disappear), so a failure leaves the previous contents.
5. **Record.** A :class:`~larder.catalog.online.PublicationRecord` is written once the store write
   succeeded: store (name, type, spec without credentials), online table (keys, timestamp key, Arrow
   schema), Delta version, mode, filter, rows and time.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from larder.catalog.base import utcnow
from larder.catalog.online import PublicationRecord
from larder.context import Context
from larder.errors import ConfigError, LarderError, OnlineTableNotFoundError, PublishError, StalePublishError
from larder.failpoints import failpoint
from larder.names import parse_name
from larder.offline.tables import FeatureTable, TableService
from larder.online.features import online_tables
from larder.online.stores import StoreCache
from larder.online.stores.base import (
    ORDER_COLUMN,
    OnlineStore,
    OnlineTable,
    online_table_from_info,
    online_table_info,
)
from larder.online.stores.specs import OnlineStoreSpec, SQLiteStoreSpec, parse_spec, redacted_spec, store_key
from larder.progress import ProgressBar

_log = logging.getLogger(__name__)

#: Rows per batch handed to the store.
BATCH_ROWS = 50_000
#: Publishes of at least this many source rows show a progress bar.
PROGRESS_MIN_ROWS = 100_000
#: Memory DuckDB may use for the latest-per-key window before it spills to disk.
DUCKDB_MEMORY_LIMIT = os.environ.get("LARDER_PUBLISH_MEMORY_LIMIT", "1GB")

PublishMode = Literal["merge", "overwrite"]
StoreArg = OnlineStoreSpec | str | None


def resolve_store(ctx: Context, online_store: StoreArg) -> tuple[str | None, Any]:
    """``(name in larder.yaml or None, spec)`` for a spec object, a configured name or None."""
    config = ctx.config
    if online_store is None:
        if config.default_online_store:
            name = config.default_online_store
            return name, config.online_stores[name]
        return None, SQLiteStoreSpec()
    from larder.online.managed import DatabricksOnlineStore, OnlineStoreService

    if isinstance(online_store, DatabricksOnlineStore):  # from get_online_store / create_online_store
        online_store = online_store.name
    if isinstance(online_store, str):
        if online_store in config.online_stores:
            return online_store, config.online_stores[online_store]
        created = OnlineStoreService(ctx, None).spec_of(online_store)
        if created is not None:
            return online_store, created
        known = sorted(config.online_stores)
        raise ConfigError(
            f"No online store named {online_store!r} in larder.yaml (online_stores: {known or 'none'}) or "
            "created with create_online_store(). Add it under online_stores, create it, or pass a spec object "
            "such as RedisStoreSpec(url=...)."
        )
    return None, parse_spec(online_store)


@dataclass(frozen=True)
class Publication:
    """One ``publish_table`` call, as recorded in the catalog."""

    id: int
    table_name: str
    store_name: str | None
    store_type: str
    store_spec: dict[str, Any]
    #: The table's name inside the store (DynamoDB: the physical table; else the full name).
    online_table_name: str
    online_table: OnlineTable
    features: list[str]
    delta_version: int
    mode: str
    filter_condition: str | None
    rows: int
    published_at: datetime
    duration_s: float | None
    active: bool

    @property
    def pipeline_id(self) -> str:
        """Databricks' ``PublishedTable.pipeline_id`` (the sync pipeline of a published table): larder
        publishes without a pipeline, so this identifies the publication."""
        return f"publication-{self.id}"

    def spec(self) -> Any:
        """The store spec (as recorded, without credentials)."""
        return parse_spec(self.store_spec)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary, including the online table info needed to read it back."""
        return {
            "table_name": self.table_name, "store_name": self.store_name, "store_type": self.store_type,
            "store_spec": self.store_spec, "online_table_name": self.online_table_name,
            "online_table": online_table_info(self.online_table),
            "features": self.features, "delta_version": self.delta_version, "mode": self.mode,
            "filter_condition": self.filter_condition, "rows": self.rows,
            "published_at": self.published_at.isoformat(), "active": self.active,
        }


def _publication(rec: PublicationRecord) -> Publication:
    return Publication(
        id=rec.id, table_name=rec.table_name, store_name=rec.store_name, store_type=rec.store_type,
        store_spec=dict(rec.store_spec), online_table_name=rec.online_table_name,
        online_table=online_table_from_info(rec.online_table),
        features=list(rec.features), delta_version=rec.delta_version, mode=rec.mode,
        filter_condition=rec.filter_condition, rows=rec.rows,
        published_at=rec.published_at.replace(tzinfo=UTC), duration_s=rec.duration_s,
        active=rec.dropped_at is None,
    )


# -- the latest rows, streamed -----------------------------------------------------------------
def _q(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


class _LatestRows:
    """Streams the rows to publish from a Delta snapshot through DuckDB, in record batches."""

    def __init__(self, table: FeatureTable, dataset: Any, *, columns: list[str], target: pa.Schema,
                 filter_condition: str | pc.Expression | None, order_value: int | None,
                 batch_rows: int) -> None:
        import duckdb

        self.table = table
        self.target = target.append(pa.field(ORDER_COLUMN, pa.int64(), nullable=False))
        where = ""
        if isinstance(filter_condition, pc.Expression):
            dataset = dataset.filter(filter_condition)
        elif isinstance(filter_condition, str) and filter_condition.strip():
            where = f"WHERE ({filter_condition})"
        elif filter_condition is not None and not isinstance(filter_condition, str):
            raise PublishError(
                f"Table {table.name!r}: filter_condition must be a SQL predicate string or a pyarrow "
                f"expression, got {type(filter_condition).__name__}."
            )
        ts = table.timestamp_keys[0] if table.timestamp_keys else None
        cols = ", ".join(_q(c) for c in columns)
        if ts is not None:
            order = f"epoch_us({_q(ts)})"
            keys = ", ".join(_q(k) for k in table.entity_keys)
            qualify = f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {_q(ts)} DESC) = 1"
        else:
            order = f"CAST({int(order_value or 0)} AS BIGINT)"
            qualify = ""
        sql = f"SELECT {cols}, {order} AS {_q(ORDER_COLUMN)} FROM source {where} {qualify}"
        self._tmp = tempfile.TemporaryDirectory(prefix="larder-publish-")
        self._con = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY_LIMIT,
                                           "temp_directory": self._tmp.name})
        try:
            self._con.execute("SET TimeZone='UTC'")
            self._con.register("source", dataset)
            self._reader = self._con.sql(sql).to_arrow_reader(batch_rows)
        except duckdb.Error as exc:
            self.close()
            if where:
                raise PublishError(
                    f"Table {table.name!r}: filter_condition {filter_condition!r} is not a valid SQL predicate "
                    f"over the table's columns {dataset.schema.names}: {exc}"
                ) from exc
            raise PublishError(f"Table {table.name!r}: reading the rows to publish failed: {exc}") from exc

    def __iter__(self) -> Iterator[pa.Table]:
        import duckdb

        try:
            for batch in self._reader:
                if batch.num_rows:
                    yield pa.Table.from_batches([batch]).cast(self.target)
        except duckdb.Error as exc:
            raise PublishError(
                f"Table {self.table.name!r}: reading the rows to publish failed (check filter_condition): {exc}"
            ) from exc

    def close(self) -> None:
        self._con.close()
        self._tmp.cleanup()


# -- the service --------------------------------------------------------------------------------
class Publisher:
    """Publish, drop and list online tables; the store clients come from a shared :class:`StoreCache`."""

    def __init__(self, ctx: Context, tables: TableService, stores: StoreCache) -> None:
        self.ctx = ctx
        self.tables = tables
        self.stores = stores

    # -- publish --------------------------------------------------------------------------------
    def publish_table(
        self,
        name: str,
        online_store: StoreArg = None,
        *,
        filter_condition: str | pc.Expression | None = None,
        mode: PublishMode = "merge",
        features: str | Sequence[str] | None = None,
        version: int | None = None,
        batch_rows: int = BATCH_ROWS,
        online_table_name: str | None = None,
    ) -> Publication:
        """Publish the newest row per key of feature table ``name``; see the module docstring.
        ``online_table_name`` names the table inside the store (default: the feature table's full name)."""
        if mode not in ("merge", "overwrite"):
            raise PublishError(f"publish_table mode must be 'merge' or 'overwrite', got {mode!r}.")
        if batch_rows < 1:
            raise PublishError(f"batch_rows must be a positive number of rows, got {batch_rows}.")
        started = time.perf_counter()
        ft = self.tables.get_table(name)
        snap = self.tables.snapshot(ft.name, version)
        store_name, spec = resolve_store(self.ctx, online_store)
        schema = snap.schema
        keys = ft.entity_keys
        ts = ft.timestamp_keys[0] if ft.timestamp_keys else None
        published = _choose_features(ft, schema, features)
        columns = keys + ([ts] if ts else []) + published
        target = pa.schema([schema.field(c) for c in columns])
        online = OnlineTable(name=self._online_name(ft.name, spec, online_table_name), primary_keys=list(keys),
                             timestamp_key=ts, schema=target)
        # One order for every publication of the table (growing with the Delta version and with the
        # table's re-creation): snapshot rows carry it, and stores refuse to serve an older one.
        publication = snapshot_order(ft.created_at, snap.version)
        order_value = None if ts else publication
        source_rows = snap.row_count()
        store = self.stores.get(spec)
        self._refuse_stale(ft.name, spec, store, online, publication, snap.version)
        total = source_rows if ts is None and filter_condition is None else None
        if self.ctx.engine.name == "spark":  # the rows chosen in Spark, written from the executors
            from larder.online import publish_spark

            with ProgressBar(f"publish {ft.name} -> {spec.type}", total, show=source_rows >= PROGRESS_MIN_ROWS) as bar:
                try:
                    sent = publish_spark.publish(
                        self.ctx.engine, snap, ft, spec=spec, store=store, online=online, columns=columns,
                        target=target, filter_condition=filter_condition, order_value=order_value, mode=mode,
                        root=self.ctx.root, batch_rows=batch_rows, advance=bar.advance, publication=publication)
                except StalePublishError as exc:
                    raise self._stale(ft.name, spec, snap.version) from exc
            if mode == "merge":
                store.reclaim(online)
        else:
            rows = _LatestRows(ft, snap.dataset(), columns=columns, target=target,
                               filter_condition=filter_condition, order_value=order_value, batch_rows=batch_rows)
            sent = 0
            try:
                with ProgressBar(f"publish {ft.name} -> {spec.type}", total, show=source_rows >= PROGRESS_MIN_ROWS) as bar:
                    def counted() -> Iterator[pa.Table]:
                        nonlocal sent
                        for batch in rows:
                            yield batch
                            sent += batch.num_rows
                            bar.advance(batch.num_rows)
                            failpoint("publish_table:after_batch")

                    if mode == "overwrite":
                        try:
                            store.replace_table(online, counted(), order=ORDER_COLUMN, publication=publication)
                        except StalePublishError as exc:
                            raise self._stale(ft.name, spec, snap.version) from exc
                    else:
                        wrote_any = False
                        for batch in counted():
                            store.write_batch(online, batch, order=ORDER_COLUMN, publication=publication)
                            wrote_any = True
                        if not wrote_any:  # still create the online table, so lookups find it (empty)
                            store.write_batch(online, rows.target.empty_table(), order=ORDER_COLUMN,
                                              publication=publication)
                        store.reclaim(online)
            finally:
                rows.close()
        with self.ctx.catalog.session() as s:
            rec = PublicationRecord(
                table_name=ft.name, store_name=store_name, store_type=spec.type,
                store_spec=redacted_spec(spec), store_key=store_key(spec, self.ctx.root),
                online_table_name=_physical_name(store, online), online_table=online_table_info(online),
                features=published,
                delta_version=snap.version, mode=mode,
                filter_condition=filter_condition if isinstance(filter_condition, str) else (
                    None if filter_condition is None else str(filter_condition)),
                rows=sent, order_value=publication, published_at=utcnow(),
                duration_s=time.perf_counter() - started,
            )
            s.add(rec)
            s.flush()
            return _publication(rec)

    def _online_name(self, table: str, spec: Any, online_table_name: str | None) -> str:
        """The online table's name: ``online_table_name`` (not used by another feature table in the same
        store), else the name of this table's active publication to the store, else its full name."""
        key = store_key(spec, self.ctx.root)
        with self.ctx.catalog.session() as s:
            active = list(s.scalars(select(PublicationRecord).where(
                PublicationRecord.store_key == key, PublicationRecord.dropped_at.is_(None))))
        if online_table_name is None:
            mine = [r for r in active if r.table_name == table]
            return str(mine[-1].online_table["name"]) if mine else table
        if not isinstance(online_table_name, str) or not online_table_name.strip():
            raise PublishError(f"Table {table!r}: online_table_name must be a non-empty string.")
        taken = sorted({r.table_name for r in active
                        if r.online_table.get("name") == online_table_name and r.table_name != table})
        if taken:
            raise PublishError(
                f"Table {table!r}: the online table {online_table_name!r} in this store holds feature table "
                f"{taken[0]!r}. Choose another online_table_name, or drop that online table first."
            )
        return online_table_name

    def _refuse_stale(self, full: str, spec: Any, store: OnlineStore, online: OnlineTable, publication: int,
                      version: int) -> None:
        """Refuse, before writing anything, a publish older than what the store serves (stores that
        compare publications) or than the newest active publication the catalog records there."""
        served = store.served_publication(online)
        key = store_key(spec, self.ctx.root)
        recorded = [r.order_value for r in self._active(full) if r.store_key == key and r.order_value is not None]
        newest = max([v for v in (served, *recorded) if v is not None], default=None)
        if newest is not None and newest > publication:
            raise self._stale(full, spec, version)

    def _stale(self, full: str, spec: Any, version: int) -> StalePublishError:
        key = store_key(spec, self.ctx.root)
        newer = [r for r in self._active(full) if r.store_key == key]
        served = max(newer, key=lambda r: (r.order_value or 0, r.id)) if newer else None
        what = f"version {served.delta_version} (published {served.published_at:%Y-%m-%d %H:%M:%S} UTC)" \
            if served is not None else "a newer version"
        return StalePublishError(
            f"Table {full!r}: version {version} was not published to the {spec.type} store: it serves {what}, and "
            "publishing an older version would move serving back in time (nothing was changed). Publish the "
            "latest version; to serve old values again, write them to the table as a new version first."
        )

    # -- drop -----------------------------------------------------------------------------------
    def drop_online_table(self, name: str, online_store: StoreArg = None) -> list[Publication]:
        """Drop feature table ``name``'s online table from ``online_store`` (None: from every store it
        is published to) and mark those publications dropped. Returns the publications dropped."""
        full = parse_name(name).full
        active = self._active(full)
        if online_store is not None:
            _, spec = resolve_store(self.ctx, online_store)
            key = store_key(spec, self.ctx.root)
            chosen = [(r, spec) for r in active if r.store_key == key]
        else:
            chosen = [(r, self._spec_of(r)) for r in active]
        if not chosen:
            where = sorted({r.store_name or r.store_key for r in active})
            raise OnlineTableNotFoundError(
                f"Feature table {full!r} is not published to "
                f"{'that online store' if online_store is not None else 'any online store'}"
                f"{f' (it is published to {where})' if where else ''}. See `larder online list`."
            )
        done: set[str] = set()
        for rec, spec in chosen:
            if rec.store_key in done:
                continue
            store = self.stores.get(spec)
            for table in online_tables(online_table_from_info(rec.online_table)):
                store.drop_table(table)
            done.add(rec.store_key)
        now = utcnow()
        with self.ctx.catalog.session() as s:
            out = []
            for rec in s.scalars(select(PublicationRecord).where(
                    PublicationRecord.table_name == full, PublicationRecord.dropped_at.is_(None),
                    PublicationRecord.store_key.in_(done))):
                rec.dropped_at = now
                out.append(_publication(rec))
        return out

    def forget_table(self, name: str, *, older_than: int | None = None) -> list[Publication]:
        """Drop the online tables of feature table ``name`` and mark their publications dropped: all of
        them, or (``older_than``: a table's creation time in epoch milliseconds) those published from a
        table created before then, which is what ``create_table`` does so that a table created again
        under a dropped table's name never serves the old rows. A store that cannot be reached keeps
        its rows (logged): the publications are marked dropped all the same, so no lookup reads them."""
        full = parse_name(name).full
        before = None if older_than is None else int(older_than) * (1 << 20)  # snapshot_order(created, 0)

        def old(rec: PublicationRecord) -> bool:
            return before is None or rec.order_value is None or rec.order_value < before

        chosen = [r for r in self._active(full) if old(r)]
        if not chosen:
            return []
        done: set[str] = set()
        for rec in chosen:
            if rec.store_key in done:
                continue
            done.add(rec.store_key)
            try:
                store = self.stores.get(self._spec_of(rec))
                for table in online_tables(online_table_from_info(rec.online_table)):
                    store.drop_table(table)
            except LarderError as exc:
                _log.warning("dropping %s: its online table %s in %s was not dropped (%s); it is no longer "
                             "referenced", full, rec.online_table_name, rec.store_name or rec.store_type, exc)
        now = utcnow()
        ids = [r.id for r in chosen]
        with self.ctx.catalog.session() as s:
            out = []
            for rec in s.scalars(select(PublicationRecord).where(PublicationRecord.id.in_(ids),
                                                                 PublicationRecord.dropped_at.is_(None))):
                rec.dropped_at = now
                out.append(_publication(rec))
        return out

    # -- catalog --------------------------------------------------------------------------------
    def _active(self, full: str) -> list[PublicationRecord]:
        """Active publications of ``full``, newest first: by id, except that within one store the one of
        the greatest publication order comes first (two racing publishes may record in either order,
        and the store serves the newer version)."""
        return self._active_of([full])[full]

    def _active_of(self, fulls: Sequence[str]) -> dict[str, list[PublicationRecord]]:
        """:meth:`_active` of each of ``fulls`` (full names), read in one catalog query."""
        out: dict[str, list[PublicationRecord]] = {full: [] for full in fulls}
        with self.ctx.catalog.session() as s:
            for rec in s.scalars(
                select(PublicationRecord)
                .where(PublicationRecord.table_name.in_(list(out)), PublicationRecord.dropped_at.is_(None))
                .order_by(PublicationRecord.id.desc())
            ):
                out[rec.table_name].append(rec)
        for recs in out.values():
            if recs:
                same = [r for r in recs if r.store_key == recs[0].store_key]
                best = max(same, key=lambda r: (r.order_value if r.order_value is not None else -1, r.id))
                if best is not recs[0]:
                    recs.remove(best)
                    recs.insert(0, best)
        return out

    def _spec_of(self, rec: PublicationRecord) -> Any:
        """The spec to open a recorded store with: the configured one for a named store (it may hold
        credentials), else the recorded (redacted) spec."""
        if rec.store_name and rec.store_name in self.ctx.config.online_stores:
            return self.ctx.config.online_stores[rec.store_name]
        return parse_spec(rec.store_spec)

    def latest_publication(self, name: str) -> tuple[Publication, Any]:
        """The most recent active publication of ``name`` and the spec to open its store with."""
        return self.latest_publications([name])[parse_name(name).full]

    def latest_publications(self, names: Sequence[str]) -> dict[str, tuple[Publication, Any]]:
        """:meth:`latest_publication` of each of ``names`` (keyed by full name), read in one catalog query;
        raises for the first of them that is not published."""
        fulls = list(dict.fromkeys(parse_name(n).full for n in names))
        active = self._active_of(fulls)
        out = {}
        for full in fulls:
            recs = active[full]
            if not recs:
                raise OnlineTableNotFoundError(
                    f"Feature table {full!r} is not published to any online store. Publish it first: "
                    f"fe.publish_table({full!r}) or `larder online publish {full}`."
                )
            out[full] = (_publication(recs[0]), self._spec_of(recs[0]))
        return out

    def list_publications(self, name: str | None = None, *, include_dropped: bool = False) -> list[Publication]:
        """Publications, newest first; only those of table ``name`` when given."""
        stmt = select(PublicationRecord).order_by(PublicationRecord.id.desc())
        if name is not None:
            stmt = stmt.where(PublicationRecord.table_name == parse_name(name).full)
        if not include_dropped:
            stmt = stmt.where(PublicationRecord.dropped_at.is_(None))
        with self.ctx.catalog.session() as s:
            return [_publication(r) for r in s.scalars(stmt)]


def _physical_name(store: OnlineStore, table: OnlineTable) -> str:
    """The name of the table inside the store, where the store exposes one (DynamoDB), else the
    feature table's full name (the SQLite and Redis stores key their data by it)."""
    namer = getattr(store, "physical_name", None)
    return str(namer(table)) if callable(namer) else table.name


def snapshot_order(created_at: datetime, version: int) -> int:
    """The ordering value of a snapshot table's rows published from Delta ``version``."""
    created_ms = int(created_at.timestamp() * 1000)
    return created_ms * (1 << 20) + int(version)


def _choose_features(ft: FeatureTable, schema: pa.Schema, features: str | Sequence[str] | None) -> list[str]:
    keys = set(ft.all_keys)
    available = [f.name for f in schema if f.name not in keys]
    if features is None:
        return available
    wanted = [features] if isinstance(features, str) else list(features)
    if not wanted:
        raise PublishError(f"Table {ft.name!r}: features=[] publishes nothing; omit it to publish all features.")
    key_cols = [f for f in wanted if f in keys]
    if key_cols:
        raise PublishError(
            f"Table {ft.name!r}: features lists key column(s) {key_cols}; keys are always published, "
            "list only features."
        )
    unknown = [f for f in wanted if f not in available]
    if unknown:
        raise PublishError(f"Table {ft.name!r} has no feature(s) {unknown}; it has {available}.")
    return list(dict.fromkeys(wanted))


__all__ = [
    "BATCH_ROWS",
    "Publication",
    "Publisher",
    "resolve_store",
    "snapshot_order",
]
