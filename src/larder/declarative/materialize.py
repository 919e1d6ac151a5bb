"""Materializing declarative features: offline to Delta feature tables, online to any online store.

What an offline materialization holds
-------------------------------------
One larder feature table per feature, ``<catalog>.<schema>.<table_name_prefix>_<feature name>``, with
the feature's entity columns, its timeseries column and one column named after the feature: **the
rows of** ``compute_features`` **for that feature**, one per distinct ``(entity, time)`` of the
source rows, each valued at its own time (events strictly before it, in its window), at the source's
Delta version the last run consumed. Rows whose entity has a null part are left out (a feature
table's primary key is never null). The table's primary key is the entity plus the timeseries column
(its timestamp key), so ``FeatureLookup``, ``read_table`` and time travel work on it as on any table.

Runs
----
A run reads the source at its current version and, per feature, records a row in
``materialization_runs``. The first run (and any run after a commit that removed source files: an
overwrite, a merge or delete rewriting rows, a compaction) computes everything and overwrites the
table. Otherwise a run is **incremental**: it reads only the data files added since the version the
last run consumed, takes the earliest time ``t0`` among their rows, and recomputes exactly the rows at
times ``>= t0``: an event at ``ts`` changes only values at times after ``ts`` (windows are strictly
before their end), so no earlier row can change. Those rows' windows need the source rows from
``t0 - lookback`` on (lookback = window + delay + slide), which are read with a filter on the
timeseries column (files and row groups outside it are skipped); lifetime windows and
``ColumnSelection`` read their whole history. The new rows replace the table's rows at times ``>= t0``
in one Delta commit (replaceWhere). A run is idempotent: the values are a function of the source
version, so a run that crashed after its commit and before the catalog recorded it is redone by the
next run with the same result, and a crash before the commit leaves the table untouched.

Online materializations publish the features' timelines as of the run time through
:func:`larder.declarative.publish.publish_features` (online table ``<catalog>.<schema>.<prefix>_<hash>``).
A full run (the first; after a commit that removed source files; or when the online table may not
hold the last run's publication) replaces it atomically. Otherwise a run is incremental: a key's
timeline holds its exact values from its first change on, every later change included, so a key
without new source rows keeps a valid timeline; the run recomputes the timelines of the keys of the
added files' rows only, each from its whole history (:func:`larder.declarative.online.online_rows`
with ``keys=``), and merges them in (the stores keep the newest row per key, ordered by the run time).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from sqlalchemy import delete, select

from larder.catalog.base import current_user, utcnow
from larder.catalog.materialization import MaterializationRecord, MaterializationRunRecord
from larder.declarative.compute import SourceRows, compute_range, load_source, validate_feature
from larder.declarative.feature import Feature
from larder.declarative.functions import AggregationFunction, ColumnSelection
from larder.declarative.materialized import (
    CronSchedule,
    MaterializedFeature,
    MaterializedFeaturePipelineScheduleState,
    OfflineStoreConfig,
    OnlineStoreConfig,
    TableTrigger,
    Trigger,
)
from larder.declarative.sources import DeltaTableSource
from larder.errors import LarderError, MaterializationError, MaterializationNotFoundError, TableNotFoundError
from larder.failpoints import failpoint
from larder.names import parse_name

if TYPE_CHECKING:
    from larder.client import FeatureEngineeringClient

UTC_US = pa.timestamp("us", tz="UTC")


def _naive(when: dt.datetime) -> dt.datetime:
    """UTC, naive (as the catalog stores times)."""
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


def _aware(when: dt.datetime | None) -> dt.datetime | None:
    return None if when is None else (when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when)


def lookback(feature: Feature) -> dt.timedelta | None:
    """How far before a row's time its value reads source rows (None: the whole history)."""
    fn = feature.function
    if isinstance(fn, ColumnSelection):
        return None
    assert isinstance(fn, AggregationFunction)
    w = fn.time_window
    if w.duration is None:
        return None
    return w.duration + w.delay + (w.slide or dt.timedelta(0))


def _sql_time(value: dt.datetime) -> str:
    return "'" + value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


def _q(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def range_predicate(ts: str, start: dt.datetime | None, end: dt.datetime | None) -> str | None:
    """The SQL condition selecting a feature table's rows with ``start <= ts < end``."""
    parts = []
    if start is not None:
        parts.append(f"{_q(ts)} >= {_sql_time(start)}")
    if end is not None:
        parts.append(f"{_q(ts)} < {_sql_time(end)}")
    return " AND ".join(parts) if parts else None


@dataclass
class Plan:
    """What a run recomputes: everything (``full``), nothing, or the rows at times ``>= start``."""

    full: bool
    start: dt.datetime | None = None
    nothing: bool = False
    rows_read: int = 0


@dataclass
class RunResult:
    """The outcome of one run of one materialized feature."""

    materialized_feature_id: str
    feature_name: str
    table_name: str
    kind: str
    state: str
    from_version: int | None
    to_version: int | None
    rows_read: int | None
    rows_written: int | None
    duration_s: float
    error: str | None = None


def _trigger_dict(trigger: Any) -> dict[str, Any]:
    if trigger is None:
        return {"kind": "none"}
    if isinstance(trigger, (CronSchedule, TableTrigger)):
        return trigger.to_dict()
    raise MaterializationError(
        f"Unsupported trigger type: {type(trigger).__name__}. Pass CronSchedule(...) (a schedule), TableTrigger() "
        "(new commits of the source table) or None (materialize once now)."
    )


def to_entity(rec: MaterializationRecord) -> MaterializedFeature:
    trigger = Trigger.from_dict(rec.trigger)
    dest = dict(rec.destination)
    last = _aware(rec.last_materialization_time)
    return MaterializedFeature(
        feature_name=rec.feature_name, materialized_feature_id=rec.id, is_online=rec.is_online,
        offline_store_config=None if rec.is_online else OfflineStoreConfig(**dest),
        online_store_config=OnlineStoreConfig(**dest) if rec.is_online else None,
        cron_schedule_trigger=trigger if isinstance(trigger, CronSchedule) else None,
        table_trigger=trigger if isinstance(trigger, TableTrigger) else None,
        pipeline_schedule_state=trigger.pipeline_schedule_state if trigger is not None else None,
        table_name=rec.table_name, last_materialization_time=last.isoformat() if last else None,
        latest_backfill_operation=rec.latest_backfill_operation, tags=dict(rec.tags) if rec.tags else None,
        budget_policy_id=rec.budget_policy_id, source_table=rec.source_table, source_version=rec.source_version,
    )


class MaterializationService:
    """``materialize_features`` and its runs. Used through ``FeatureEngineeringClient``."""

    def __init__(self, fe: FeatureEngineeringClient) -> None:
        self.fe = fe
        self.ctx = fe._ctx
        self.tables = fe._tables

    # -- creating --------------------------------------------------------------------------------
    def _features(self, features: Any) -> list[Feature]:
        if isinstance(features, (Feature, str)) or not isinstance(features, Sequence) or not features:
            raise MaterializationError("'features' must be a non-empty list of Features (or their full names).")
        resolved = self.fe._features.resolve(features)
        for f in resolved:
            label = f.full_name if f.has_full_name else f.name
            if not isinstance(f.source, DeltaTableSource):
                raise MaterializationError(
                    f"Feature {label!r} has a {type(f.source).__name__}; only features with a DeltaTableSource can be "
                    "materialized. Write the rows to a feature table and define the feature on it."
                )
            if not f.is_registered:
                raise MaterializationError(
                    f"Feature {label!r} is not registered; create it with create_feature() (or register_feature()) "
                    "before materialize_features()."
                )
        names = [f.full_name for f in resolved]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise MaterializationError(f"materialize_features: features {dupes} are listed twice; list each once.")
        return resolved

    def materialize_features(self, *, features: Any, offline_config: OfflineStoreConfig | None = None,
                             online_config: OnlineStoreConfig | None = None, trigger: Any = None,
                             tags: dict[str, str] | None = None, budget_policy_id: str | None = None,
                             now: dt.datetime | None = None) -> list[MaterializedFeature]:
        """Validate everything, then run once now (offline tables created, online tables published) and
        record one :class:`MaterializedFeature` per feature and destination. Nothing is left behind
        when any step fails."""
        from larder.declarative.publish import groups_of

        resolved = self._features(features)
        trig = _trigger_dict(trigger)
        if offline_config is None and online_config is None:
            raise MaterializationError(
                f"materialize_features({[f.full_name for f in resolved]}): pass offline_config=OfflineStoreConfig(...) "
                "(a Delta feature table per feature) and/or online_config=OnlineStoreConfig(...) (an online store)."
            )
        if offline_config is not None and not isinstance(offline_config, OfflineStoreConfig):
            raise MaterializationError(f"offline_config must be an OfflineStoreConfig, got {type(offline_config).__name__}.")
        if online_config is not None and not isinstance(online_config, OnlineStoreConfig):
            raise MaterializationError(f"online_config must be an OnlineStoreConfig, got {type(online_config).__name__}.")
        if tags is not None and (not isinstance(tags, dict) or len(tags) > 25
                                 or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())):
            raise MaterializationError("tags must be a dict of at most 25 string keys and values.")
        for f in resolved:
            validate_feature(self.tables, f)  # the source still has what the feature reads
        offline_names = {f.full_name: self._offline_name(f, offline_config) for f in resolved} if offline_config else {}
        if online_config is not None:
            self._check_online(online_config)
        self._refuse_existing(resolved, offline_names, online_config)
        when = now or dt.datetime.now(dt.UTC)
        created: list[str] = []
        ids: list[str] = []
        try:
            for group in groups_of(resolved):
                group_id = uuid.uuid4().hex
                source = group[0].source
                assert isinstance(source, DeltaTableSource)
                with self.ctx.catalog.session() as s:
                    recs = []
                    for f in group:
                        dests: list[tuple[bool, dict[str, Any], str]] = []
                        if offline_config is not None:
                            dests.append((False, offline_config.as_dict(), offline_names[f.full_name]))
                        if online_config is not None:
                            dests.append((True, online_config.as_dict(), self._online_name(group, online_config)))
                        for is_online, dest, table in dests:
                            rec = MaterializationRecord(
                                id=uuid.uuid4().hex, feature_name=f.full_name, definition=f.to_dict(),
                                is_online=is_online, destination=dest, table_name=table, trigger=trig,
                                group_id=group_id, source_table=source.full_name(), source_version=None,
                                tags=dict(tags) if tags else None, budget_policy_id=budget_policy_id,
                                creator=current_user(), created_at=utcnow())
                            s.add(rec)
                            recs.append(rec.id)
                ids += recs
                results = self.run_group(group_id, now=when, reason="create", created=created)
                failed = [r for r in results if r.state != "SUCCEEDED"]
                if failed:
                    raise MaterializationError(
                        f"Materializing {failed[0].feature_name!r} failed: {failed[0].error}. Nothing was kept; fix the "
                        "cause and call materialize_features again."
                    )
        except BaseException:
            self._undo(ids, created)
            raise
        with self.ctx.catalog.session() as s:
            made = [s.get(MaterializationRecord, i) for i in ids]
            return [to_entity(r) for r in made if r is not None]

    def _offline_name(self, feature: Feature, config: OfflineStoreConfig) -> str:
        prefix = config.table_name_prefix
        if not isinstance(prefix, str) or not prefix.strip():
            raise MaterializationError("OfflineStoreConfig.table_name_prefix must be a non-empty string.")
        name = f"{config.catalog_name}.{config.schema_name}.{prefix.strip()}_{feature.name}"
        try:
            full = parse_name(name).full
        except LarderError as exc:
            raise MaterializationError(
                f"Feature {feature.full_name!r}: the offline table name {name!r} is not valid ({exc}); fix "
                "OfflineStoreConfig's catalog_name, schema_name or table_name_prefix."
            ) from exc
        reserved = [*(feature.entity or []), str(feature.timeseries_column)]
        if feature.name in reserved:
            raise MaterializationError(
                f"Feature {feature.full_name!r} is named like its entity or timeseries column {reserved}; its offline "
                "table needs a column of each. Register the feature under another name."
            )
        return full

    def _online_name(self, group: Sequence[Feature], config: OnlineStoreConfig) -> str:
        from larder.declarative.publish import online_table_name

        digest = online_table_name(group).rsplit("_", 1)[-1]
        prefix = config.table_name_prefix
        if not isinstance(prefix, str) or not prefix.strip():
            raise MaterializationError("OnlineStoreConfig.table_name_prefix must be a non-empty string.")
        name = f"{config.catalog_name}.{config.schema_name}.{prefix.strip()}_{digest}"
        try:
            return parse_name(name).full
        except LarderError as exc:
            raise MaterializationError(
                f"The online table name {name!r} is not valid ({exc}); fix OnlineStoreConfig's catalog_name, "
                "schema_name or table_name_prefix."
            ) from exc

    def _check_online(self, config: OnlineStoreConfig) -> None:
        from larder.online.publish import resolve_store

        if not isinstance(config.online_store_name, str) or not config.online_store_name.strip():
            raise MaterializationError("OnlineStoreConfig.online_store_name must name an online store.")
        try:
            resolve_store(self.ctx, config.online_store_name)
        except LarderError as exc:
            raise MaterializationError(f"OnlineStoreConfig: {exc}") from exc

    def _refuse_existing(self, features: Sequence[Feature], offline: dict[str, str],
                         online: OnlineStoreConfig | None) -> None:
        with self.ctx.catalog.session() as s:
            for f in features:
                recs = s.scalars(select(MaterializationRecord).where(MaterializationRecord.feature_name == f.full_name))
                for rec in recs:
                    same = (not rec.is_online and f.full_name in offline) or (
                        rec.is_online and online is not None
                        and rec.destination.get("online_store_name") == online.online_store_name)
                    if same:
                        raise MaterializationError(
                            f"Feature {f.full_name!r} is already materialized {'online to store ' + repr(online.online_store_name) if rec.is_online and online else 'offline to ' + repr(rec.table_name)} "  # noqa: E501
                            f"(materialized_feature_id {rec.id!r}). Delete it first with delete_materialized_feature() "
                            "(list_materialized_features gives it)."
                        )
        for f, name in ((f, offline[f.full_name]) for f in features if f.full_name in offline):
            if self.tables._exists(name):
                raise MaterializationError(
                    f"Feature {f.full_name!r}: the offline table {name!r} already exists. Pick another "
                    "OfflineStoreConfig.table_name_prefix, or drop the table."
                )

    def _undo(self, ids: Sequence[str], created: Sequence[str]) -> None:
        """Remove what a failed materialize_features made (tables created, online tables, records)."""
        for name in created:
            try:
                self.tables.drop_table(name)
            except TableNotFoundError:
                pass
        with self.ctx.catalog.session() as s:
            recs = [r for r in (s.get(MaterializationRecord, i) for i in ids) if r is not None]
        for rec in recs:
            if rec.is_online:
                self._drop_online(rec)
        with self.ctx.catalog.session() as s:
            s.execute(delete(MaterializationRunRecord).where(MaterializationRunRecord.materialized_feature_id.in_(ids)))
            s.execute(delete(MaterializationRecord).where(MaterializationRecord.id.in_(ids)))

    # -- listing and deleting ---------------------------------------------------------------------
    def list_materialized_features(self, *, feature_name: str, max_results: int = 100) -> list[MaterializedFeature]:
        if not isinstance(feature_name, str) or not feature_name.strip():
            raise MaterializationError("'feature_name' must be a non-empty string (a feature's full name).")
        if not isinstance(max_results, int) or isinstance(max_results, bool) or max_results <= 0:
            raise MaterializationError(f"max_results must be a positive integer, got {max_results!r}.")
        name = parse_name(feature_name.strip(), kind="feature").full
        with self.ctx.catalog.session() as s:
            recs = s.scalars(select(MaterializationRecord).where(MaterializationRecord.feature_name == name)
                             .order_by(MaterializationRecord.created_at, MaterializationRecord.is_online)
                             .limit(max_results)).all()
            return [to_entity(r) for r in recs]

    def record(self, materialized_feature: Any) -> MaterializationRecord:
        if not isinstance(materialized_feature, MaterializedFeature):
            raise MaterializationError(
                f"Expected a MaterializedFeature, got {type(materialized_feature).__name__}. Use "
                "list_materialized_features(feature_name=...) to get the materialized features of a feature."
            )
        if materialized_feature.materialized_feature_id is None:
            raise MaterializationError(
                f"Ill-formed MaterializedFeature {materialized_feature!r} (no materialized_feature_id); use "
                "list_materialized_features(feature_name=...) to get it."
            )
        with self.ctx.catalog.session() as s:
            rec = s.get(MaterializationRecord, materialized_feature.materialized_feature_id)
            if rec is None:
                raise MaterializationNotFoundError(
                    f"No materialized feature {materialized_feature.materialized_feature_id!r} (feature "
                    f"{materialized_feature.feature_name!r}); it was deleted. list_materialized_features lists those "
                    "that exist."
                )
            s.expunge(rec)
            return rec

    def delete_materialized_feature(self, *, materialized_feature: Any) -> None:
        """Drop what the materialization made (its offline table, or its online publication and the
        online table when no other feature is published there) and its records and runs."""
        rec = self.record(materialized_feature)
        if rec.is_online:
            self._drop_online(rec)
        else:
            try:
                self.tables.drop_table(rec.table_name)
            except TableNotFoundError:  # a delete killed after dropping the table: finish it
                pass
        with self.ctx.catalog.session() as s:
            s.execute(delete(MaterializationRunRecord).where(MaterializationRunRecord.materialized_feature_id == rec.id))
            s.execute(delete(MaterializationRecord).where(MaterializationRecord.id == rec.id))

    def _drop_online(self, rec: MaterializationRecord) -> None:
        from larder.catalog.online import PublicationRecord
        from larder.online.features import online_tables
        from larder.online.publish import resolve_store
        from larder.online.stores.base import online_table_from_info
        from larder.online.stores.specs import store_key

        _, spec = resolve_store(self.ctx, rec.destination["online_store_name"])
        key = store_key(spec, self.ctx.root)
        now = utcnow()
        with self.ctx.catalog.session() as s:
            mine = list(s.scalars(select(PublicationRecord).where(
                PublicationRecord.table_name == rec.feature_name, PublicationRecord.store_key == key,
                PublicationRecord.dropped_at.is_(None))))
            physical = {r.online_table_name: r.online_table for r in mine}
            for r in mine:
                r.dropped_at = now
            s.flush()
            still = set(s.scalars(select(PublicationRecord.online_table_name).where(
                PublicationRecord.store_key == key, PublicationRecord.dropped_at.is_(None),
                PublicationRecord.online_table_name.in_(list(physical)))))
        store = self.fe._online_stores.get(spec)
        for name, info in physical.items():
            if name not in still:
                for table in online_tables(online_table_from_info(info)):
                    store.drop_table(table)
        if "_online" in self.fe.__dict__:
            self.fe._online.invalidate()

    # -- running ------------------------------------------------------------------------------------
    def group_records(self, group_id: str) -> list[MaterializationRecord]:
        return self._records(MaterializationRecord.group_id == group_id)

    def feature_records(self, names: Sequence[str], *, online: bool | None = None) -> list[MaterializationRecord]:
        """The materializations of the features ``names`` (only the online or offline ones when ``online``
        says so), oldest first, detached from the session."""
        where = [MaterializationRecord.feature_name.in_(list(names))]
        if online is not None:
            where.append(MaterializationRecord.is_online.is_(online))
        return self._records(*where)

    def _records(self, *where: Any) -> list[MaterializationRecord]:
        with self.ctx.catalog.session() as s:
            recs = list(s.scalars(select(MaterializationRecord).where(*where)
                                  .order_by(MaterializationRecord.created_at, MaterializationRecord.id)))
            for r in recs:
                s.expunge(r)
        return recs

    def run_group(self, group_id: str, *, now: dt.datetime | None = None, reason: str = "manual",
                  created: list[str] | None = None, progress: Callable[[str], None] | None = None) -> list[RunResult]:
        """Run every materialization of a group once (offline incrementally; online published as of
        ``now``). Failures are recorded on the runs and returned, not raised."""
        when = now or dt.datetime.now(dt.UTC)
        recs = self.group_records(group_id)
        if not recs:
            raise MaterializationNotFoundError(f"No materialized features in group {group_id!r}.")
        out: list[RunResult] = []
        offline = [r for r in recs if not r.is_online]
        by_version: dict[int | None, list[MaterializationRecord]] = {}
        for r in offline:
            by_version.setdefault(r.source_version, []).append(r)
        for version, part in by_version.items():
            if progress:
                progress(f"offline {', '.join(r.feature_name for r in part)}")
            out += self._run_offline(part, version, when, reason, created)
        online = [r for r in recs if r.is_online]
        if online:
            if progress:
                progress(f"online {', '.join(r.feature_name for r in online)}")
            out += self._run_online(online, when, reason)
        return out

    def _begin(self, recs: Sequence[MaterializationRecord], kind: str, reason: str, from_version: int | None,
               operation: str | None = None) -> str:
        run_id = uuid.uuid4().hex
        with self.ctx.catalog.session() as s:
            ids = [r.id for r in recs]
            for stale in s.scalars(select(MaterializationRunRecord).where(
                    MaterializationRunRecord.materialized_feature_id.in_(ids),
                    MaterializationRunRecord.state == "RUNNING")):
                stale.state, stale.finished_at = "FAILED", utcnow()
                stale.error = f"interrupted before it finished; run {run_id} redid it"
            for r in recs:
                s.add(MaterializationRunRecord(
                    run_id=run_id, materialized_feature_id=r.id, kind=kind, state="RUNNING", reason=reason,
                    source_table=r.source_table, from_version=from_version, started_at=utcnow(), operation=operation))
        return run_id

    def _finish(self, run_id: str, results: Iterable[tuple[MaterializationRecord, RunResult]], *,
                consumed: int | None, when: dt.datetime | None, range_start: dt.datetime | None = None,
                range_end: dt.datetime | None = None, output_versions: dict[str, int | None] | None = None) -> None:
        with self.ctx.catalog.session() as s:
            for rec, res in results:
                run = s.scalars(select(MaterializationRunRecord).where(
                    MaterializationRunRecord.run_id == run_id,
                    MaterializationRunRecord.materialized_feature_id == rec.id)).first()
                if run is not None:
                    run.state, run.finished_at, run.error = res.state, utcnow(), res.error
                    run.to_version, run.rows_read, run.rows_written = res.to_version, res.rows_read, res.rows_written
                    run.kind, run.duration_s = res.kind, res.duration_s
                    run.range_start = _naive(range_start) if range_start else None
                    run.range_end = _naive(range_end) if range_end else None
                    run.output_version = (output_versions or {}).get(rec.id)
                live = s.get(MaterializationRecord, rec.id)
                if live is not None and res.state == "SUCCEEDED" and when is not None:
                    live.source_version = consumed
                    live.last_materialization_time = _naive(when)

    def _source_of(self, recs: Sequence[MaterializationRecord]) -> tuple[list[Feature], DeltaTableSource]:
        feats = [Feature.from_dict(r.definition, registered=True) for r in recs]
        uniq: dict[str, Feature] = {}
        for f in feats:
            uniq.setdefault(f.full_name, f)
        source = feats[0].source
        assert isinstance(source, DeltaTableSource)
        return list(uniq.values()), source

    def added_files(self, source: DeltaTableSource, old: int | None, new: int) -> list[str] | None:
        """The data files Delta version ``new`` of the source added to version ``old``, when it only
        added files; None when it removed some (rows rewritten or deleted: an overwrite, a merge, a
        compaction), when ``old`` is None (never run) or when its log is gone (cleaned up)."""
        if old is None:
            return None
        if old == new:
            return []
        table = source.full_name()
        try:
            before = set(self.tables.snapshot(table, old).file_uris())
        except LarderError:
            return None
        now_files = self.tables.snapshot(table, new).file_uris()
        if before - set(now_files):
            return None
        return [f for f in now_files if f not in before]

    def added_rows(self, features: Sequence[Feature], source: DeltaTableSource, new: int,
                   files: list[str]) -> SourceRows:
        """The rows of some of the source's data files at version ``new`` (the columns the features read)."""
        first = features[0]
        ts = str(first.timeseries_column)
        needed = [*(first.entity or []), ts, *(c for f in features for c in f.inputs)]
        return load_source(self.tables, first, version=new, columns=needed, files=files)

    def plan(self, features: Sequence[Feature], source: DeltaTableSource, old: int | None, new: int) -> Plan:
        """What a run from Delta version ``old`` (None: never run) to ``new`` must recompute."""
        added = self.added_files(source, old, new)
        if added is None:
            return Plan(full=True)
        if not added:
            return Plan(full=False, nothing=True)
        fresh = self.added_rows(features, source, new, added)
        ts = str(features[0].timeseries_column)
        times = fresh.spine.column(ts) if ts in fresh.spine.column_names else None
        if times is None or fresh.spine.num_rows == 0:
            return Plan(full=False, nothing=True, rows_read=fresh.spine.num_rows)
        t0 = pc.min(times).as_py()
        if t0 is None:
            return Plan(full=False, nothing=True, rows_read=fresh.spine.num_rows)
        return Plan(full=False, start=_aware(t0), rows_read=fresh.spine.num_rows)

    def tail_rows(self, features: Sequence[Feature], source: DeltaTableSource, version: int,
                  start: dt.datetime, end: dt.datetime | None = None) -> SourceRows:
        """The source rows the values at times ``[start, end)`` need (a time filter when the windows
        are bounded and the timeseries column is the table's own)."""
        first = features[0]
        ts = str(first.timeseries_column)
        needed = [*(first.entity or []), ts, *(c for f in features for c in f.inputs)]
        backs = [lookback(f) for f in features]
        expr = None
        if all(b is not None for b in backs) and not source.transformation_sql:
            lo = start - max(b for b in backs if b is not None)
            expr = ds.field(ts) >= pa.scalar(lo.astimezone(dt.UTC), UTC_US)
            if end is not None:
                expr = expr & (ds.field(ts) < pa.scalar(end.astimezone(dt.UTC), UTC_US))
        return load_source(self.tables, first, version=version, columns=needed, filter=expr)

    def compute(self, features: Sequence[Feature], source: DeltaTableSource, version: int,
                start: dt.datetime | None, end: dt.datetime | None = None) -> tuple[pa.Table, int]:
        """Feature values at the source rows' times in ``[start, end)`` (the rows of ``compute_features``),
        rows with a null entity part left out; and the number of source rows read."""
        rows = self.tail_rows(features, source, version, start, end) if start is not None else None
        table = compute_range(self.ctx.engine, self.tables, features, start=start, end=end, version=version,
                              source_rows=rows)
        read = rows.rows.num_rows if rows is not None else self.tables.snapshot(source.full_name(), version).row_count()
        entity = list(features[0].entity or [])
        mask = None
        for c in entity:
            m = pc.is_valid(table.column(c))
            mask = m if mask is None else pc.and_(mask, m)
        if mask is not None:
            table = table.filter(mask)
        ts = str(features[0].timeseries_column)
        return table.sort_by([(ts, "ascending"), *((c, "ascending") for c in entity)]), read

    def write_offline(self, rec: MaterializationRecord, feature: Feature, values: pa.Table, *, full: bool,
                      start: dt.datetime | None, end: dt.datetime | None, created: list[str] | None) -> int | None:
        entity = list(feature.entity or [])
        ts = str(feature.timeseries_column)
        data = values.select([*entity, ts, feature.name])
        if not self.tables._exists(rec.table_name):
            self.tables.create_table(rec.table_name, primary_keys=[*entity, ts], df=data if data.num_rows else None,
                                     schema=None if data.num_rows else data.schema, timestamp_keys=ts,
                                     description=f"Materialized values of feature {feature.full_name} "
                                                 "(larder materialize_features).")
            if created is not None:
                created.append(rec.table_name)
            return self.tables.snapshot(rec.table_name).version
        if data.num_rows == 0:  # no rows at those times (a write of no rows is refused): nothing changes
            return None
        predicate = None if full else range_predicate(ts, start, end)
        return self.tables.write_table(rec.table_name, data, mode="overwrite", replace_where=predicate)

    def _run_offline(self, recs: list[MaterializationRecord], old: int | None, when: dt.datetime, reason: str,
                     created: list[str] | None) -> list[RunResult]:
        started = time.perf_counter()
        features, source = self._source_of(recs)
        run_id = self._begin(recs, "incremental" if old is not None else "full", reason, old)
        new: int | None = None
        try:
            new = self.tables.snapshot(source.full_name()).version
            plan = self.plan(features, source, old, new)
            kind = "full" if plan.full else "incremental"
            versions: dict[str, int | None] = {}
            written = 0
            read = plan.rows_read
            if not plan.nothing:
                values, read_now = self.compute(features, source, new, None if plan.full else plan.start)
                read += read_now
                written = values.num_rows
                by_name = {f.full_name: f for f in features}
                for rec in recs:
                    versions[rec.id] = self.write_offline(rec, by_name[rec.feature_name], values, full=plan.full,
                                                          start=plan.start, end=None, created=created)
            failpoint("materialize:after_commit")
            results = [(rec, RunResult(rec.id, rec.feature_name, rec.table_name, kind, "SUCCEEDED", old, new, read,
                                       written, time.perf_counter() - started)) for rec in recs]
            self._finish(run_id, results, consumed=new, when=when, range_start=plan.start, output_versions=versions)
        except LarderError as exc:
            results = [(rec, RunResult(rec.id, rec.feature_name, rec.table_name, "incremental" if old is not None
                                       else "full", "FAILED", old, new, None, None, time.perf_counter() - started,
                                       str(exc))) for rec in recs]
            self._finish(run_id, results, consumed=None, when=None)
        return [r for _, r in results]

    def online_keys(self, recs: Sequence[MaterializationRecord], features: Sequence[Feature],
                    source: DeltaTableSource, old: int | None, new: int, when: dt.datetime
                    ) -> tuple[pa.Table | None, int]:
        """The entity keys an online run recomputes: those of the rows the source added since the
        version the last run consumed (no row: nothing to write); None: every key (the table is
        replaced), when the run is the first, the source removed files, or the online table may not
        hold what the last run wrote (dropped, published over by someone else, or newer than ``when``).
        And the number of source rows read to find them (the added rows, counted as an offline run's
        :meth:`plan` counts them)."""
        if old is None or any(r.source_version != old for r in recs):
            return None, 0
        added = self.added_files(source, old, new)
        if added is None or not self._online_intact(recs, old, when):
            return None, 0
        entity = list(features[0].entity or [])
        if not added:
            return pa.table({}), 0
        fresh = self.added_rows(features, source, new, added)
        keys = fresh.rows.select(entity).group_by(entity, use_threads=False).aggregate([]).select(entity)
        mask = None
        for c in entity:
            m = pc.is_valid(keys.column(c))
            mask = m if mask is None else pc.and_(mask, m)
        return (keys.filter(mask) if mask is not None and keys.num_rows else keys), fresh.spine.num_rows

    def _online_intact(self, recs: Sequence[MaterializationRecord], old: int, when: dt.datetime) -> bool:
        """Whether each feature's latest publication in the run's store is the last run's: in this online
        table, from the consumed version ``old``, not newer than ``when`` (a merge would keep newer rows).
        Every run leaves the stored rows no newer than its publication, so then none is newer than ``when``."""
        from larder.declarative.windows import datetime_to_us
        from larder.online.publish import resolve_store
        from larder.online.stores.specs import store_key

        _, spec = resolve_store(self.ctx, recs[0].destination["online_store_name"])
        key = store_key(spec, self.ctx.root)
        active = self.fe._publisher._active_of([r.feature_name for r in recs])
        when_us = datetime_to_us(when)
        for r in recs:
            mine = [p for p in active[r.feature_name] if p.store_key == key]
            if not mine:
                return False
            last = max(mine, key=lambda p: p.id)
            if (last.online_table.get("name") != r.table_name or last.delta_version != old
                    or last.order_value is None or last.order_value > when_us):
                return False
        return True

    def _run_online(self, recs: list[MaterializationRecord], when: dt.datetime, reason: str) -> list[RunResult]:
        """Publish the group's timelines as of ``when``: the keys the added source rows touched, merged
        in (their timelines recomputed from their whole history), or every key, the table replaced
        (see :meth:`online_keys`). A key without new rows keeps its timelines: they hold its exact values
        from their first change on, every later change included, and its rows did not change."""
        from larder.declarative.publish import publish_and_count

        started = time.perf_counter()
        features, source = self._source_of(recs)
        old = min((r.source_version for r in recs if r.source_version is not None), default=None)
        kind = "full" if old is None else "incremental"
        run_id = self._begin(recs, kind, reason, old)
        new: int | None = None
        try:
            new = self.tables.snapshot(source.full_name()).version
            store = recs[0].destination["online_store_name"]
            wanted = [f for f in features if f.full_name in {r.feature_name for r in recs}]
            keys, read = self.online_keys(recs, wanted, source, old, new, when)
            kind = "full" if keys is None else "incremental"
            pubs: list[Any] = []
            if keys is None:
                pubs, read_now = publish_and_count(self.fe, wanted, store, as_of=when, version=new, mode="overwrite",
                                                   online_table=recs[0].table_name)
                read += read_now
            elif keys.num_columns:  # the keys' whole history, read again to recompute them
                pubs, read_now = publish_and_count(self.fe, wanted, store, as_of=when, version=new, mode="merge",
                                                   online_table=recs[0].table_name, keys=keys)
                read += read_now
            # else: the source has no new files: the stored timelines are those of this version
            rows = pubs[0].rows if pubs else 0
            results = [(rec, RunResult(rec.id, rec.feature_name, rec.table_name, kind, "SUCCEEDED", old, new, read,
                                       rows, time.perf_counter() - started)) for rec in recs]
            self._finish(run_id, results, consumed=new, when=when)
        except LarderError as exc:
            results = [(rec, RunResult(rec.id, rec.feature_name, rec.table_name, kind, "FAILED", old, new, None, None,
                                       time.perf_counter() - started, str(exc))) for rec in recs]
            self._finish(run_id, results, consumed=None, when=None)
        return [r for _, r in results]

    # -- history ------------------------------------------------------------------------------------
    def runs(self, materialized_feature: MaterializedFeature | str, limit: int = 100) -> list[dict[str, Any]]:
        """The runs of a materialized feature, newest first."""
        mid = (materialized_feature.materialized_feature_id if isinstance(materialized_feature, MaterializedFeature)
               else materialized_feature)
        with self.ctx.catalog.session() as s:
            rows = s.scalars(select(MaterializationRunRecord).where(
                MaterializationRunRecord.materialized_feature_id == mid)
                .order_by(MaterializationRunRecord.id.desc()).limit(limit)).all()
            return [{"run_id": r.run_id, "kind": r.kind, "state": r.state, "reason": r.reason,
                     "from_version": r.from_version, "to_version": r.to_version,
                     "range_start": _aware(r.range_start), "range_end": _aware(r.range_end),
                     "rows_read": r.rows_read, "rows_written": r.rows_written, "output_version": r.output_version,
                     "operation": r.operation, "started_at": _aware(r.started_at),
                     "finished_at": _aware(r.finished_at), "duration_s": r.duration_s, "error": r.error}
                    for r in rows]

    def is_materialized(self, feature_name: str) -> list[str]:
        with self.ctx.catalog.session() as s:
            return list(s.scalars(select(MaterializationRecord.id)
                                  .where(MaterializationRecord.feature_name == feature_name)))


def active(trigger: dict[str, Any]) -> bool:
    return trigger.get("kind") != "none" and trigger.get("state", "ACTIVE") == (
        MaterializedFeaturePipelineScheduleState.ACTIVE.value)


__all__ = ["MaterializationService", "Plan", "RunResult", "active", "lookback", "range_predicate", "to_entity"]
