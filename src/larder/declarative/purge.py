"""Purging entities: remove materialized feature values of given entities, offline and online.

``purge_feature_entities(features=[...], entities_table="main.default.forget_me")`` takes the
entities to purge from a feature table whose columns are entity keys (some or all of each feature's
entity columns: a partial key matches every entity with those values; a null matches a null). For
every materialization of every feature it deletes the matching rows of the offline feature table (one
Delta commit each, recorded in the catalog) and the matching keys' rows of the online table. It does
not touch the source, the definitions or the materializations: as Databricks documents, remove the
entities from the source first, or the next materialization brings their values back.

The purge is an operation (``operations/<id>``) recorded in the catalog with the entities table's
version and a result per feature. It runs synchronously here: the returned
:class:`PurgeFeatureEntitiesOperation` is done, ``wait()`` returns its response at once (or raises
:class:`~larder.errors.OperationFailedError`). Calling again with the same ``request_id`` and request
returns the original operation; one whose process was killed (still ``RUNNING``) is run again, which
deletes nothing twice (each table's delete carries a write id derived from the operation).

Every check runs before anything is deleted: unknown or unmaterialized features, features that cannot
be materialized (request sources), an entities table with a column that is not an entity key of every
feature, and an online table shared with features the purge leaves alone (purge them together, or
their values for these entities would go too).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import select

from larder.catalog.base import utcnow
from larder.catalog.materialization import MaterializationRecord, OperationRecord
from larder.catalog.online import PublicationRecord
from larder.declarative.backfill import feature_full_name
from larder.declarative.compute import load_source
from larder.declarative.feature import Feature
from larder.declarative.sources import RequestSource
from larder.errors import LarderError, MaterializationError, OperationFailedError
from larder.names import parse_name

if TYPE_CHECKING:
    from larder.client import FeatureEngineeringClient

#: At most this many tags per purge (Databricks' limit for resource tags).
MAX_TAGS = 25


class PurgeFeatureEntitiesState(enum.Enum):
    """Lifecycle of a purge (Databricks' ``PurgeFeatureEntitiesMetadata.State``)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class PurgeFeatureEntitiesResult:
    """The purge of one feature: the state of its offline and online parts (None: the feature has no
    materialization of that kind), the error if one failed, and what was removed."""

    feature: str
    offline_state: PurgeFeatureEntitiesState | None = None
    online_state: PurgeFeatureEntitiesState | None = None
    error: str | None = None
    offline_rows_deleted: int = 0
    online_keys_deleted: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "offline_state": _value(self.offline_state),
                "online_state": _value(self.online_state), "error": self.error,
                "offline_rows_deleted": self.offline_rows_deleted, "online_keys_deleted": self.online_keys_deleted}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PurgeFeatureEntitiesResult:
        return cls(feature=d["feature"], offline_state=_state(d.get("offline_state")),
                   online_state=_state(d.get("online_state")), error=d.get("error"),
                   offline_rows_deleted=int(d.get("offline_rows_deleted") or 0),
                   online_keys_deleted=int(d.get("online_keys_deleted") or 0))


@dataclass(frozen=True)
class PurgeFeatureEntitiesMetadata:
    """What was asked and where it stands: the features, the entities table and the version read."""

    features: list[str]
    entities_table: str
    entities_table_version: int | None
    state: PurgeFeatureEntitiesState
    create_time: dt.datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)
    budget_policy_id: str | None = None


@dataclass(frozen=True)
class PurgeFeatureEntitiesResponse:
    """The result of a finished purge: its metadata and one result per feature."""

    metadata: PurgeFeatureEntitiesMetadata
    results: list[PurgeFeatureEntitiesResult]
    state: PurgeFeatureEntitiesState


def _value(state: PurgeFeatureEntitiesState | None) -> str | None:
    return None if state is None else state.value


def _state(value: str | None) -> PurgeFeatureEntitiesState | None:
    return None if value is None else PurgeFeatureEntitiesState(value)


class PurgeFeatureEntitiesOperation:
    """The handle ``purge_feature_entities`` returns (the Databricks SDK's long-running operation):
    ``name()``, ``metadata()``, ``done()``, ``wait()``, ``cancel()``. Reads the operation's catalog
    record each time, so a handle made in one process sees what another recorded."""

    def __init__(self, service: PurgeService, name: str) -> None:
        self._service = service
        self._name = name

    def name(self) -> str:
        return self._name

    def metadata(self) -> PurgeFeatureEntitiesMetadata:
        return self._service.response(self._name).metadata

    def done(self) -> bool:
        return self.metadata().state not in (PurgeFeatureEntitiesState.PENDING, PurgeFeatureEntitiesState.RUNNING)

    def wait(self, opts: Any = None, *, timeout: dt.timedelta | None = None) -> PurgeFeatureEntitiesResponse:
        """The response once the purge has finished (purges run synchronously: at once);
        ``OperationFailedError`` when it failed or was cancelled. ``opts`` (the SDK's ``LroOptions``)
        and ``timeout`` are accepted for the SDK's signature."""
        response = self._service.response(self._name)
        if response.state in (PurgeFeatureEntitiesState.FAILED, PurgeFeatureEntitiesState.CANCELLED):
            errors = [f"{r.feature}: {r.error}" for r in response.results if r.error]
            raise OperationFailedError(
                f"Purge {self._name} {response.state.value.lower()}" + (f": {'; '.join(errors)}" if errors else ".")
            )
        if response.state is not PurgeFeatureEntitiesState.SUCCEEDED:
            raise OperationFailedError(
                f"Purge {self._name} is {response.state.value} (its process was stopped before it finished); "
                "call purge_feature_entities again with the same request_id to finish it."
            )
        return response

    def cancel(self) -> None:
        """Best effort, as in Databricks: a finished purge is left as it is; one whose process was
        killed (still ``RUNNING``) is marked ``CANCELLED``."""
        self._service.cancel(self._name)

    def __repr__(self) -> str:
        return f"PurgeFeatureEntitiesOperation(name={self._name!r})"


def _matching(keys: pa.Table, entities: pa.Table) -> pa.Table:
    """The rows of ``keys`` (distinct entity keys, no nulls) matching a row of ``entities`` on its columns."""
    columns = entities.column_names
    wanted = entities.cast(pa.schema([keys.schema.field(c) for c in columns]))
    for c in columns:  # a null matches only a null, and the keys hold none
        wanted = wanted.filter(wanted.column(c).is_valid())
    if wanted.num_rows == 0 or keys.num_rows == 0:
        return keys.slice(0, 0)
    wanted = wanted.group_by(columns, use_threads=False).aggregate([])
    return keys.join(wanted, keys=columns, join_type="inner").select(keys.column_names)


class PurgeService:
    """``purge_feature_entities``; used through ``FeatureEngineeringClient``."""

    def __init__(self, fe: FeatureEngineeringClient) -> None:
        self.fe = fe
        self.ctx = fe._ctx

    # -- the request ---------------------------------------------------------------------------------
    def purge_feature_entities(self, *, features: Sequence[Any], entities_table: str, request_id: str | None = None,
                               tags: dict[str, str] | None = None,
                               budget_policy_id: str | None = None) -> PurgeFeatureEntitiesOperation:
        if not features or isinstance(features, (str, Feature)) or not isinstance(features, Sequence):
            raise MaterializationError("'features' must be a non-empty list of features or their full names.")
        if not isinstance(entities_table, str) or not entities_table.strip():
            raise MaterializationError("'entities_table' must be a non-empty string: the full name of a feature "
                                       "table whose columns are entity keys.")
        names = [feature_full_name(f, why="only materialized features can be purged") for f in features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise MaterializationError(f"Features {dupes} are listed more than once; list each feature once.")
        tags = dict(tags or {})
        if len(tags) > MAX_TAGS or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise MaterializationError(f"'tags' must map at most {MAX_TAGS} string keys to string values, got {tags!r}.")
        if request_id is not None and (not isinstance(request_id, str) or not request_id.strip()):
            raise MaterializationError(f"'request_id' must be a non-empty string (a UUID4), got {request_id!r}.")
        entities_name = parse_name(entities_table.strip(), kind="table").full
        request = {"features": names, "entities_table": entities_name}
        name = None
        if request_id is not None:
            with self.ctx.catalog.session() as s:
                known = s.scalars(select(OperationRecord).where(OperationRecord.request_id == request_id)).first()
                if known is not None:
                    asked = {"features": list(known.feature_full_names),
                             "entities_table": (known.details or {}).get("entities_table")}
                    if known.kind != "purge" or asked != request:
                        raise MaterializationError(
                            f"request_id {request_id!r} was used by {known.name} for another request "
                            f"({known.kind} of {asked}); use a new request_id for this purge."
                        )
                    if known.state != "RUNNING":  # the original purge, as Databricks returns it
                        return PurgeFeatureEntitiesOperation(self, known.name)
                    name = known.name
        plan = self._plan(names, entities_name)
        details = {"entities_table": entities_name, "entities_table_version": plan.entities_version,
                   "tags": tags, "budget_policy_id": budget_policy_id, "results": []}
        if name is None:
            name = f"operations/{uuid.uuid4().hex}"
            with self.ctx.catalog.session() as s:
                s.add(OperationRecord(name=name, kind="purge", request_id=request_id, state="RUNNING",
                                      feature_full_names=names, backfill_ranges=[], details=details,
                                      created_at=utcnow()))
        results = [self._purge_feature(name, n, plan) for n in names]
        failed = any(r.error for r in results)
        if plan.touched_online and "_online" in self.fe.__dict__:
            self.fe._online.invalidate()
        with self.ctx.catalog.session() as s:
            op = s.get(OperationRecord, name)
            assert op is not None
            op.details = {**details, "results": [r.to_dict() for r in results]}
            op.state = "FAILED" if failed else "SUCCEEDED"
            op.error = "; ".join(f"{r.feature}: {r.error}" for r in results if r.error) or None
            op.finished_at = utcnow()
        return PurgeFeatureEntitiesOperation(self, name)

    def _plan(self, names: list[str], entities_name: str) -> _Plan:
        """Every check, nothing deleted: the features' materializations, the entities and where each
        feature's values live."""
        features = {n: self.fe._features.get_feature(full_name=n) for n in names}
        live = [n for n, f in features.items() if isinstance(f.source, RequestSource)]
        if live:
            raise MaterializationError(
                f"Features {live} have a RequestSource: they are computed at request time and never "
                "materialized, so there is nothing to purge."
            )
        recs = self.fe._materialization.feature_records(names)
        unmaterialized = [n for n in names if n not in {r.feature_name for r in recs}]
        if unmaterialized:
            raise MaterializationError(
                f"Features {unmaterialized} have no materialization to purge (materialize_features writes "
                "their values offline or online)."
            )
        snap = self.fe._tables.snapshot(entities_name)
        entities = self.fe._tables.read_arrow(entities_name, as_of_version=snap.version)
        if not entities.column_names:
            raise MaterializationError(f"Entities table {entities_name!r} has no column; its columns must be entity keys.")
        for n, f in features.items():
            entity = list(f.entity or [])
            extra = [c for c in entities.column_names if c not in entity]
            if extra:
                raise MaterializationError(
                    f"Entities table {entities_name!r} has columns {extra} that are not entity keys of feature "
                    f"{n!r} (its entity is {entity}). Its columns must be some or all of every feature's entity "
                    "keys: select those columns into a table of their own."
                )
        online: dict[str, list[tuple[MaterializationRecord, Any, PublicationRecord]]] = {}
        for rec in (r for r in recs if r.is_online and r.source_version is not None):
            online[rec.feature_name] = [(rec, *pub) for pub in self._publications(rec)]
        with self.ctx.catalog.session() as s:
            for _, _, pub in (part for parts in online.values() for part in parts):
                left = sorted(set(s.scalars(select(PublicationRecord.table_name).where(
                    PublicationRecord.store_key == pub.store_key,
                    PublicationRecord.online_table_name == pub.online_table_name,
                    PublicationRecord.dropped_at.is_(None)))) - set(names))
                if left:
                    raise MaterializationError(
                        f"Online table {pub.online_table_name!r} also holds features {left}, which this purge "
                        "leaves alone: deleting the entities' rows there would remove their values too. Add them "
                        "to 'features' (their values for these entities are gone from the source too, if it was "
                        "purged first)."
                    )
        return _Plan(features, entities, snap.version, recs, online)

    def _publications(self, rec: MaterializationRecord) -> list[tuple[Any, PublicationRecord]]:
        """The online store and active publications of an online materialization."""
        from larder.online.publish import resolve_store
        from larder.online.stores.specs import store_key

        _, spec = resolve_store(self.ctx, rec.destination["online_store_name"])
        key = store_key(spec, self.ctx.root)
        with self.ctx.catalog.session() as s:
            pubs = list(s.scalars(select(PublicationRecord).where(
                PublicationRecord.table_name == rec.feature_name, PublicationRecord.store_key == key,
                PublicationRecord.dropped_at.is_(None))))
            for p in pubs:
                s.expunge(p)
        return [(spec, p) for p in pubs]

    # -- the work ------------------------------------------------------------------------------------
    def _purge_feature(self, operation: str, name: str, plan: _Plan) -> PurgeFeatureEntitiesResult:
        offline_state = online_state = None
        deleted = keys_deleted = 0
        error = None
        for rec in (r for r in plan.records if r.feature_name == name and not r.is_online):
            offline_state = PurgeFeatureEntitiesState.SUCCEEDED if offline_state is None else offline_state
            if rec.source_version is None or not self.fe._tables._exists(rec.table_name):
                continue  # never run: no values
            try:
                write_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"larder-purge:{operation}:{rec.id}"))
                _, rows = self.fe._tables.delete_rows(rec.table_name, plan.entities, write_id=write_id)
                deleted += max(rows, 0)
            except LarderError as exc:
                offline_state, error = PurgeFeatureEntitiesState.FAILED, f"offline table {rec.table_name!r}: {exc}"
        for rec, spec, pub in plan.online.get(name, []):
            online_state = PurgeFeatureEntitiesState.SUCCEEDED if online_state is None else online_state
            try:
                keys_deleted += self._purge_online(plan, plan.features[name], rec, spec, pub)
            except LarderError as exc:
                online_state = PurgeFeatureEntitiesState.FAILED
                error = (f"{error}; " if error else "") + f"online table {pub.online_table_name!r}: {exc}"
        if online_state is None and any(r.feature_name == name and r.is_online for r in plan.records):
            online_state = PurgeFeatureEntitiesState.SUCCEEDED  # materialized online but never run: no values
        return PurgeFeatureEntitiesResult(feature=name, offline_state=offline_state, online_state=online_state,
                                          error=error, offline_rows_deleted=deleted, online_keys_deleted=keys_deleted)

    def _purge_online(self, plan: _Plan, feature: Feature, rec: MaterializationRecord, spec: Any,
                      pub: PublicationRecord) -> int:
        """Delete the matching entities' rows of one online table; returns how many keys matched. An
        online table is keyed by the whole entity, so a partial key is expanded to the source's keys
        with those values (at the version the materialization consumed, and the latest)."""
        from larder.online.stores.base import online_table_from_info, prepare_keys

        done = plan.online_done.setdefault((pub.store_key, pub.online_table_name), None)
        if done is not None:  # the table is shared by features of this purge: its rows went once
            return done
        entity = list(feature.entity or [])
        versions = {rec.source_version, None}
        parts = [load_source(self.fe._tables, feature, version=v, columns=entity).rows.select(entity) for v in versions]
        keys = pa.concat_tables(parts, promote_options="permissive")
        keys = keys.group_by(entity, use_threads=False).aggregate([]) if keys.num_rows else keys
        for c in entity:
            keys = keys.filter(keys.column(c).is_valid())
        matched = _matching(keys, plan.entities)
        table = online_table_from_info(pub.online_table)
        if matched.num_rows:
            typed = matched.cast(pa.schema([table.schema.field(c) for c in table.primary_keys]))
            pks = [k for k in prepare_keys(table, typed) if k is not None]
            self.fe._online_stores.get(spec).delete_keys(table, pks)
        plan.touched_online = True
        plan.online_done[(pub.store_key, pub.online_table_name)] = matched.num_rows
        return matched.num_rows

    # -- operations ----------------------------------------------------------------------------------
    def _record(self, name: str) -> OperationRecord:
        with self.ctx.catalog.session() as s:
            op = s.get(OperationRecord, name)
            if op is None or op.kind != "purge":
                raise MaterializationError(f"No purge operation {name!r}.")
            s.expunge(op)
            return op

    def response(self, name: str) -> PurgeFeatureEntitiesResponse:
        op = self._record(name)
        d = op.details or {}
        state = PurgeFeatureEntitiesState(op.state)
        meta = PurgeFeatureEntitiesMetadata(
            features=list(op.feature_full_names), entities_table=d.get("entities_table", ""),
            entities_table_version=d.get("entities_table_version"), state=state,
            create_time=op.created_at.replace(tzinfo=dt.UTC) if op.created_at else None,
            tags=dict(d.get("tags") or {}), budget_policy_id=d.get("budget_policy_id"))
        return PurgeFeatureEntitiesResponse(
            metadata=meta, results=[PurgeFeatureEntitiesResult.from_dict(r) for r in d.get("results") or []],
            state=state)

    def cancel(self, name: str) -> None:
        self._record(name)
        with self.ctx.catalog.session() as s:
            op = s.get(OperationRecord, name)
            if op is not None and op.state in ("PENDING", "RUNNING"):
                op.state, op.finished_at, op.error = "CANCELLED", utcnow(), "cancelled"


@dataclass
class _Plan:
    features: dict[str, Feature]
    entities: pa.Table
    entities_version: int
    records: list[MaterializationRecord]
    #: per feature: its online materializations' (record, store spec, publication)
    online: dict[str, list[tuple[MaterializationRecord, Any, PublicationRecord]]]
    online_done: dict[tuple[str, str], int | None] = field(default_factory=dict)
    touched_online: bool = False


__all__ = ["PurgeFeatureEntitiesMetadata", "PurgeFeatureEntitiesOperation", "PurgeFeatureEntitiesResponse",
           "PurgeFeatureEntitiesResult", "PurgeFeatureEntitiesState", "PurgeService"]
