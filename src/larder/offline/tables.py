"""Feature tables: Delta Lake data plus catalog metadata, kept consistent.

A feature table has primary keys and optionally one timestamp key (a time series); the timestamp
key is part of the primary key, so a table holds at most one row per (entity, time). Writes are
validated in full before anything is committed, then committed to Delta in one transaction, and only
then recorded in the catalog. Feature types always come from the Delta schema; the catalog adds
descriptions, tags, owner, lineage.
"""

from __future__ import annotations

import contextlib
import fnmatch
import random
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from larder import quality
from larder.catalog.base import current_user, utcnow
from larder.catalog.stats import record_table_stats
from larder.catalog.tables import FeatureRecord, TableRecord, TableVersionRecord, TagRecord
from larder.context import Context
from larder.errors import (
    CatalogError,
    PrimaryKeyError,
    SchemaMismatchError,
    TableError,
    TableExistsError,
    TableNotFoundError,
    TimestampKeyError,
)
from larder.failpoints import failpoint
from larder.names import parse_name, validate_column_names
from larder.offline import delta, locations
from larder.offline.frames import UTC_US, check_key_type, check_storable, column_names, normalise
from larder.offline.reconcile import sync_features
from larder.offline.storage import Location
from larder.quality.expectations import coerce_expectations
from larder.quality.hooks import PROFILE_ERRORS, start_first_profile, start_profile, warn_unprofiled
from larder.quality.profiling import Profile
from larder.quality.store import (
    DEFAULT_POLICY,
    check_columns,
    check_policy,
    delete_rows_for_table,
    store_expectations,
    store_profile,
    store_validation,
)

WriteMode = Literal["merge", "overwrite"]


class FeatureColumn(str):
    """A column of a feature table: its name (this object *is* the name, as Databricks'
    ``FeatureTable.features`` lists column names) with its type, description, key flags and metadata."""

    dtype: str
    description: str | None
    is_primary_key: bool
    is_timestamp_key: bool
    metadata: dict[str, Any]

    def __new__(cls, name: str, dtype: str, description: str | None = None, is_primary_key: bool = False,
                is_timestamp_key: bool = False, metadata: Mapping[str, Any] | None = None) -> FeatureColumn:
        self = super().__new__(cls, name)
        self.dtype = dtype
        self.description = description
        self.is_primary_key = is_primary_key
        self.is_timestamp_key = is_timestamp_key
        self.metadata = dict(metadata or {})
        return self

    @property
    def name(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        flags = (", primary key" if self.is_primary_key else "") + (", timestamp key" if self.is_timestamp_key else "")
        return f"FeatureColumn({self.name!r}, {self.dtype}{flags})"

    def __reduce__(self) -> Any:
        return (FeatureColumn, (self.name, self.dtype, self.description, self.is_primary_key, self.is_timestamp_key,
                          self.metadata))


@dataclass(frozen=True)
class OnlineStoreInfo:
    """An online store a feature table is published to (``FeatureTable.online_stores``)."""

    #: The store's name (in larder.yaml or ``create_online_store``), else its type.
    name: str
    store_type: str
    online_table_name: str
    #: Delta version of the latest publication to this store.
    delta_version: int
    #: First and latest publication to this store, in milliseconds since the epoch (UTC).
    creation_timestamp: int
    last_updated_timestamp: int


@dataclass(frozen=True)
class FeatureTable:
    """Metadata of a feature table, as returned by ``create_table`` and ``get_table``.

    The attributes are Databricks' (``name``, ``table_id``, ``description``, ``primary_keys``,
    ``partition_columns``, ``features``, ``creation_timestamp``, ``online_stores``, ``timestamp_keys``,
    ``tags``, and the deprecated ``keys``), with Databricks' meaning: ``primary_keys`` are the entity
    keys *without* the timestamp key (the time-series column), ``features`` lists every column of the
    table, keys included (each a :class:`FeatureColumn`, a ``str`` that also carries its type). larder adds
    the owner, creation and update times, the Delta ``version``, ``row_count`` and ``path``.
    """

    name: str
    #: The Delta table's id (a UUID written in its metadata when the table was created).
    table_id: str
    primary_keys: list[str]
    timestamp_keys: list[str]
    partition_columns: list[str]
    features: list[FeatureColumn]
    description: str | None
    tags: dict[str, str]
    owner: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    row_count: int
    path: str
    online_stores: list[OnlineStoreInfo] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        """Deprecated Databricks name of :attr:`primary_keys`."""
        return self.primary_keys

    # Databricks records the workspace notebooks and jobs that wrote a table, and the Spark sources
    # (tables, paths) its DataFrames were read from. larder runs outside any workspace and is handed
    # in-memory frames, which carry no source: these are empty, truthfully, as they are on Databricks
    # for a table written from a pandas-built DataFrame outside a notebook or job.
    @property
    def notebook_producers(self) -> list[Any]:
        return []

    @property
    def job_producers(self) -> list[Any]:
        return []

    @property
    def table_data_sources(self) -> list[str]:
        return []

    @property
    def path_data_sources(self) -> list[str]:
        return []

    @property
    def custom_data_sources(self) -> list[str]:
        return []

    @property
    def entity_keys(self) -> list[str]:
        """The primary keys without the timestamp key: what a lookup matches on (= ``primary_keys``)."""
        return list(self.primary_keys)

    @property
    def all_keys(self) -> list[str]:
        """Every column of the table's key: the primary keys, then the timestamp key."""
        return self.primary_keys + [t for t in self.timestamp_keys if t not in self.primary_keys]

    @property
    def timeseries_column(self) -> str | None:
        """The time-series column (Databricks' ``timeseries_column``), or None for a snapshot table."""
        return self.timestamp_keys[0] if self.timestamp_keys else None

    @property
    def creation_timestamp(self) -> int:
        """When the table was created, in milliseconds since the epoch (Databricks' unit)."""
        return int(self.created_at.timestamp() * 1000)

    @property
    def feature_names(self) -> list[str]:
        """Columns that are not keys (the timestamp key excluded)."""
        return [f.name for f in self.features if not f.is_primary_key and not f.is_timestamp_key]

    @property
    def is_time_series(self) -> bool:
        return bool(self.timestamp_keys)


_TYPE_ALIASES: dict[str, pa.DataType] = {
    "int": pa.int64(), "integer": pa.int64(), "bigint": pa.int64(), "long": pa.int64(),
    "int64": pa.int64(), "int32": pa.int32(), "smallint": pa.int16(), "tinyint": pa.int8(),
    "float": pa.float32(), "float32": pa.float32(), "double": pa.float64(), "float64": pa.float64(),
    "string": pa.string(), "str": pa.string(), "bool": pa.bool_(), "boolean": pa.bool_(),
    "timestamp": UTC_US, "datetime": UTC_US, "date": pa.date32(), "binary": pa.binary(),
}


def _spark_type(dtype: Any, *, table: str, col: str) -> pa.DataType:
    """The Arrow type of a Spark SQL data type (by its ``simpleString()``: ``int``, ``array<double>``...)."""
    text = dtype.simpleString() if hasattr(dtype, "simpleString") else str(dtype)
    text = text.strip().lower()
    if text in _TYPE_ALIASES:
        return _TYPE_ALIASES[text]
    if text.startswith("array<") and text.endswith(">"):
        return pa.list_(_spark_type(text[6:-1], table=table, col=col))
    if text.startswith("decimal(") and text.endswith(")"):
        precision, scale = (int(p) for p in text[8:-1].split(","))
        return pa.decimal128(precision, scale)
    if text == "timestamp_ntz":
        return UTC_US  # naive timestamps are read as UTC
    raise SchemaMismatchError(
        f"Table {table!r}: column {col!r} has Spark type {text!r}, which larder has no Arrow equivalent for; "
        f"use a pyarrow schema, or one of {sorted(_TYPE_ALIASES)}."
    )


def _as_schema(schema: Any, *, table: str) -> pa.Schema:
    if isinstance(schema, pa.Schema):
        return schema
    fields = getattr(schema, "fields", None)
    if isinstance(fields, list) and all(hasattr(f, "dataType") and hasattr(f, "name") for f in fields):
        # a pyspark StructType (Databricks' schema= argument), read without importing pyspark
        return pa.schema([pa.field(f.name, _spark_type(f.dataType, table=table, col=f.name),
                                   nullable=bool(getattr(f, "nullable", True))) for f in fields])
    if isinstance(schema, Mapping):
        fields = []
        for col, typ in schema.items():
            if isinstance(typ, pa.DataType):
                fields.append(pa.field(col, typ))
            elif isinstance(typ, str) and typ.lower() in _TYPE_ALIASES:
                fields.append(pa.field(col, _TYPE_ALIASES[typ.lower()]))
            else:
                raise SchemaMismatchError(
                    f"Table {table!r}: column {col!r} has unknown type {typ!r}; use a pyarrow type or one of "
                    f"{sorted(_TYPE_ALIASES)}."
                )
        return pa.schema(fields)
    raise SchemaMismatchError(
        f"Table {table!r}: schema must be a pyarrow.Schema, a Spark StructType or a mapping of column name to type, "
        f"got {type(schema).__name__}."
    )


def declared_schema(schema: Any, *, table: str) -> pa.Schema:
    """The Delta schema a table created with ``schema=`` gets (a pyarrow schema, a Spark StructType or
    ``{column: type}``, normalised as every write is)."""
    return normalise(_as_schema(schema, table=table).empty_table(), table=table).schema


def key_columns(full: str, primary_keys: str | Sequence[str], timestamp_keys: str | Sequence[str] | None,
                partition_columns: str | Sequence[str] | None) -> tuple[list[str], list[str], list[str]]:
    """A new table's primary key (its timestamp key included), timestamp keys and partition columns,
    checked."""
    pks = _as_list(primary_keys)
    tss = _as_list(timestamp_keys)
    parts = _as_list(partition_columns)
    if not pks:
        raise PrimaryKeyError(f"Table {full!r}: primary_keys must name at least one column.")
    if len(tss) > 1:
        raise TimestampKeyError(f"Table {full!r}: at most one timestamp key is supported, got {tss}.")
    for ts in tss:
        if ts not in pks:
            pks.append(ts)  # the timestamp key is part of the primary key
    if len(set(pks)) != len(pks):
        raise PrimaryKeyError(f"Table {full!r}: primary_keys {pks} lists a column twice.")
    return pks, tss, parts


def check_table_schema(full: str, arrow_schema: pa.Schema, pks: list[str], tss: list[str], parts: list[str],
                       feature_descriptions: Mapping[str, str] | None) -> None:
    """The checks of a new table's schema against its keys (before anything is written)."""
    validate_column_names(full, arrow_schema.names)
    check_storable(arrow_schema, table=full)
    for col in pks + parts:
        if col not in arrow_schema.names:
            raise PrimaryKeyError(
                f"Table {full!r}: key or partition column {col!r} is not in the schema {arrow_schema.names}."
            )
        check_key_type(full, col, arrow_schema.field(col).type, partition=col not in pks)
    for ts in tss:
        if not pa.types.is_timestamp(arrow_schema.field(ts).type):
            raise TimestampKeyError(
                f"Table {full!r}: timestamp key {ts!r} has type {arrow_schema.field(ts).type}, not a "
                f"timestamp. Convert it, for example `pd.to_datetime(df[{ts!r}], utc=True)`."
            )
    unknown = [c for c in (feature_descriptions or {}) if c not in arrow_schema.names]
    if unknown:
        raise SchemaMismatchError(f"Table {full!r}: feature_descriptions names unknown columns {unknown}.")


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _dtype_name(t: pa.DataType) -> str:
    return str(t)


@dataclass
class PreparedWrite:
    """A validated write (:meth:`TableService.prepare_write`), not yet committed.

    ``data`` holds the rows conformed to the table's schema, in the engine's form (Arrow on DuckDB);
    ``new_fields`` the columns the write adds to the table."""

    name: str
    location: Location
    primary_keys: list[str]
    timestamp_keys: list[str]
    partitions: list[str]
    mode: WriteMode
    #: when the feature table was created (UTC)
    created_at: datetime
    data: Any
    span: _Spans
    new_fields: list[pa.Field] = field(default_factory=list)
    snapshot: delta.Snapshot | None = None
    checked: Any = None


#: What a write id may hold: what fits the catalog's column, in characters safe in logs and URLs.
_WRITE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,36}")


def check_write_id(write_id: Any) -> str:
    """``write_id`` if it is a valid write id (1-36 letters, digits, ``_ . : -``), else a TableError."""
    if not isinstance(write_id, str) or not _WRITE_ID.fullmatch(write_id):
        raise TableError(
            f"A write id must be 1 to 36 letters, digits or '_.:-' (a UUID's hex fits), got {write_id!r}."
        )
    return write_id


class TableService:
    """Create, write, read and describe feature tables. Used through ``FeatureEngineeringClient``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- lookups -----------------------------------------------------------------------------
    def _record(self, session: Session, name: str) -> TableRecord:
        full = parse_name(name).full
        rec = session.scalars(select(TableRecord).where(TableRecord.full_name == full)).first()
        if rec is None:
            raise TableNotFoundError(
                f"Feature table {full!r} does not exist. Create it with create_table(), or list the existing "
                "tables with list_tables() / `larder tables list`."
            )
        return rec

    def _location(self, rec: TableRecord) -> Location:
        """The Delta table's location (with this client's storage options) for a catalog record.

        Tables created under the storage root are recorded relative to it, so a larder root (or a
        storage directory) that is moved, copied or restored from a backup keeps working, and clients
        with their own credentials share one catalog; paths recorded absolute (tables outside the
        storage root, catalogs written by larder 0.1) are used as they are.
        """
        return self.ctx.storage.resolve(rec.path)

    def snapshot(self, name: str, version: int | None = None, as_of: datetime | str | None = None) -> delta.Snapshot:
        with self.ctx.catalog.session() as s:
            rec = self._record(s, name)
            location, full = self._location(rec), rec.full_name
        if version is not None and (isinstance(version, bool) or not isinstance(version, (int, np.integer))
                                    or version < 0):
            raise TableError(
                f"Feature table {full!r}: as_of_version must be a Delta version number (an integer >= 0), "
                f"got {version!r}."
            )
        when = _as_of_time(as_of, table=full) if as_of is not None else None
        return delta.load(location, version=None if version is None else int(version), as_of=when, name=full)

    # -- create ------------------------------------------------------------------------------
    def create_table(
        self,
        name: str,
        primary_keys: str | Sequence[str],
        df: Any = None,
        *,
        schema: Any = None,
        timestamp_keys: str | Sequence[str] | None = None,
        partition_columns: str | Sequence[str] | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        feature_descriptions: Mapping[str, str] | None = None,
        expectations: Sequence[Any] | None = None,
        quality_policy: str | None = None,
        path: str | None = None,
    ) -> FeatureTable:
        """Create a feature table (holding ``df``'s rows, when given) in one all-or-nothing step."""
        if df is not None:
            validate_column_names(parse_name(name).full, column_names(df) or [])
        ingest = (self.ctx.engine.ingesting(df, table=parse_name(name).full) if df is not None
                  else contextlib.nullcontext())
        with ingest as data:
            return self._create_table(
                name, primary_keys, data, schema=schema, timestamp_keys=timestamp_keys,
                partition_columns=partition_columns, description=description, tags=tags,
                feature_descriptions=feature_descriptions, expectations=expectations, quality_policy=quality_policy,
                path=path)

    def _create_table(
        self,
        name: str,
        primary_keys: str | Sequence[str],
        data: Any,
        *,
        schema: Any = None,
        timestamp_keys: str | Sequence[str] | None = None,
        partition_columns: str | Sequence[str] | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        feature_descriptions: Mapping[str, str] | None = None,
        expectations: Sequence[Any] | None = None,
        quality_policy: str | None = None,
        path: str | None = None,
    ) -> FeatureTable:
        qn = parse_name(name)
        full = qn.full
        pks, tss, parts = key_columns(full, primary_keys, timestamp_keys, partition_columns)
        with self.ctx.catalog.session() as s:
            existing = s.scalars(select(TableRecord).where(TableRecord.full_name == full)).first()
            if existing is not None:
                if not locations.drop_interrupted(self._location(existing)):
                    raise TableExistsError(
                        f"Feature table {full!r} already exists. Write to it with write_table(), or drop it "
                        "first with drop_table()."
                    )
                self._finish_drop(s, existing)
        if data is None and schema is None:
            raise SchemaMismatchError(f"Table {full!r}: give df= or schema= to create_table().")
        engine = self.ctx.engine
        if data is not None:
            if schema is not None:
                target = declared_schema(schema, table=full)
                extra = [c for c in engine.schema_of(data).names if c not in target.names]
                if extra:
                    raise SchemaMismatchError(
                        f"Table {full!r}: the DataFrame has columns {extra} that the schema does not declare."
                    )
                data, _ = engine.conform(data, target, table=full)
            data_schema = engine.schema_of(data)
            check_storable(data_schema, table=full)
            for col in pks + parts:
                if col in data_schema.names:
                    check_key_type(full, col, data_schema.field(col).type, partition=col not in pks)
            engine.check_rows(data, table=full, primary_keys=pks, timestamp_keys=tss)
            engine.check_partition_values(data, parts, table=full)
            arrow_schema = data_schema
        else:
            arrow_schema = declared_schema(schema, table=full)
        check_table_schema(full, arrow_schema, pks, tss, parts, feature_descriptions)
        descriptions = dict(feature_descriptions or {})
        exps = coerce_expectations(expectations or [])
        if exps:
            check_columns(exps, arrow_schema.names, full)
        if quality_policy is not None:
            check_policy(quality_policy, full)
        checked = None
        if data is not None and exps and quality_policy != "off":
            result = engine.validate(data, exps, table=full, keys=pks)
            quality.enforce(result, quality_policy or "strict", full)  # type: ignore[arg-type]
            checked = result
        # Crash consistency: the Delta table is committed into a location this call claimed, then registered
        # in one catalog transaction (row, features, tags, stats, version, quality settings). A kill before
        # the registration leaves an unreferenced location that blocks nothing (the next create claims
        # another) and that `larder doctor --repair` removes; see larder.offline.locations.
        if path is not None:  # the caller's own location: used as given, so it must be empty
            location = Location.parse(str(path), self.ctx.storage.root.options)
            if location.has_files():
                raise TableExistsError(
                    f"Feature table {full!r}: the storage path {location.uri!r} is not empty. Give an empty "
                    "location, or omit path= to let larder choose one."
                )
            location.ensure_dir()
            claimed = False
        else:
            base = self.ctx.storage.table_location(qn.catalog, qn.schema, qn.name)
            for stone in locations.tombstones(base):
                stone.remove()
            location = locations.claim(base)
            claimed = location.is_local  # an exclusive mkdir: nobody else writes there
        committed = registered = False  # whether the Delta table at `location` is this call's; in the catalog
        commit = delta.Commit(write_id=_write_id())
        # The profile of the rows depends only on `data`: computed while delta-rs commits (which releases
        # the GIL), stored with the table's row once the commit landed (as commit_write does).
        pool = ThreadPoolExecutor(1, thread_name_prefix="larder-profile")
        profiled: Profile | None = None
        unprofiled: BaseException | None = None  # why the rows have no profile (the create goes on)
        try:
            pending = (start_first_profile(data, pool, profiler=engine.profile)
                       if data is not None else None)
            failpoint("create_table:before_commit")
            try:
                if data is not None:
                    engine.create(location, data, partition_by=parts, name=full, description=description,
                                  commit=commit)
                else:
                    delta.create(location, arrow_schema, partition_by=parts, name=full, description=description,
                                 commit=commit)
            except TableError:
                if delta.is_table(location):  # another client created it first: leave its table alone
                    raise TableExistsError(
                        f"Feature table {full!r} was created by another client at the same time. Use it with "
                        "write_table(), or drop it first with drop_table()."
                    ) from None
                raise
            committed = True
            failpoint("create_table:after_commit")
            # what the returned FeatureTable tells of the Delta table: read off the one commit file written
            created = delta.created(location, name=full)
            if pending is not None:
                try:
                    profiled = pending.result()
                except PROFILE_ERRORS as exc:
                    unprofiled = exc
            now = utcnow()
            with self.ctx.catalog.session() as s:
                if s.scalars(select(TableRecord.id).where(TableRecord.full_name == full)).first() is not None:
                    raise TableExistsError(
                        f"Feature table {full!r} was created by another process while this create_table ran; "
                        "this call wrote nothing. Write to the table with write_table()."
                    )
                rec = TableRecord(
                    full_name=full, catalog_name=qn.catalog, schema_name=qn.schema, table_name=qn.name,
                    path=self.ctx.storage.recorded_path(location), primary_keys=pks, timestamp_keys=tss,
                    partition_columns=parts, description=description, owner=current_user(), created_at=now,
                    updated_at=now,
                )
                rec.features = [
                    FeatureRecord(name=f.name, dtype=_dtype_name(f.type), position=i,
                                  description=descriptions.get(f.name), added_in_version=0)
                    for i, f in enumerate(arrow_schema)
                ]
                rec.tags = [TagRecord(key=k, value=str(v)) for k, v in (tags or {}).items()]
                delete_rows_for_table(s, full)  # quality rows of an earlier table of this name, if any
                s.add(rec)
                s.flush()
                rows = 0 if data is None else engine.num_rows(data)
                record_table_stats(s, rec.id, version=0, row_count=rows, written_at=now)
                _record_version(s, rec.id, 0, "create", rows, commit, now)
                if exps or quality_policy is not None:
                    store_expectations(s, full, exps, policy=quality_policy)  # type: ignore[arg-type]
                if checked is not None:
                    store_validation(s, full, 0, checked, policy=quality_policy or DEFAULT_POLICY)  # type: ignore[arg-type]
                if profiled is not None:
                    store_profile(s, full, 0, profiled)
                table = self._feature_table(s, rec, schema=created.schema, table_id=created.table_id, version=0,
                                            row_count=rows)
            registered = True
            failpoint("create_table:after_catalog")
        except BaseException as exc:
            if not registered:
                # this call's own location only: claimed exclusively (local), or holding this call's table
                if claimed or committed or not _is_table_or_unknown(location):
                    location.remove()
                if isinstance(exc, CatalogError) and self._exists(full):
                    raise TableExistsError(
                        f"Feature table {full!r} was created by another process while this create_table ran; "
                        "this call wrote nothing. Write to the table with write_table()."
                    ) from exc
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # a failed create does not wait for its profile
        if unprofiled is not None:
            warn_unprofiled(full, 0, unprofiled)
        return table

    # -- write -------------------------------------------------------------------------------
    def write_table(self, name: str, df: Any, mode: WriteMode = "merge", *,
                    timings: dict[str, float] | None = None, write_id: str | None = None,
                    replace_where: str | None = None, commit_metadata: Mapping[str, str] | None = None) -> int:
        """Validate and commit ``df``; returns the new Delta version.

        ``timings``, when given, receives the seconds spent in each phase (``catalog_read``,
        ``to_arrow``, ``open_delta``, ``validate``, ``quality_check``, ``commit``, ``catalog_update``,
        ``profile``): the breakdown ``benchmarks/tables.py`` reports. The profile of ``df`` is computed
        during the commit; ``profile`` is the wait for it (if any) plus storing it.

        ``write_id`` (at most 36 characters) makes the write idempotent: when a version of the table was
        already committed with that id (its Delta ``commitInfo`` carries it), that version is returned
        and nothing is written again (``fe.push(..., push_id=...)`` relies on it).

        ``replace_where`` (with ``mode="overwrite"``): a SQL condition on the table's columns; only the
        rows matching it are replaced by ``df``'s, whose rows must all match it (Delta's replaceWhere,
        one commit). Materialization replaces a time range of its feature tables this way.
        ``commit_metadata`` goes into the Delta commit's ``commitInfo`` (a stream consumer's offsets,
        committed with the rows).
        """
        if replace_where is not None and mode != "overwrite":
            raise TableError(f"write_table: replace_where needs mode='overwrite', got mode={mode!r}.")
        with self.prepare_write(name, df, mode, timings=timings) as prepared:
            return self.commit_write(prepared, write_id=write_id, replace_where=replace_where,
                                     commit_metadata=commit_metadata)

    @contextlib.contextmanager
    def prepare_write(self, name: str, df: Any, mode: WriteMode = "merge", *,
                      timings: dict[str, float] | None = None,
                      open_tables: dict[str, Any] | None = None) -> Iterator[PreparedWrite]:
        """Every check of a write, nothing written: keys present, non-null and unique, timestamp key
        types, schema conflicts (the rows conformed to the table's schema), partition values,
        expectations. The :class:`PreparedWrite` is valid inside the block; :meth:`commit_write` commits
        it. ``write_table`` is the two in a row; ``fe.push`` uses the prepared rows for its online write.

        ``open_tables`` (a dict the caller keeps, used by one thread at a time) holds the Delta tables
        opened by earlier writes, by location: each is brought up to date (reading only the commits
        made since) instead of opened again, a millisecond instead of ~15 (what makes small pushes cheap)."""
        if mode not in ("merge", "overwrite"):
            raise TableError(f"write_table mode must be 'merge' or 'overwrite', got {mode!r}.")
        span = _Spans(timings)
        with self.ctx.catalog.session() as s:
            rec = self._record(s, name)
            full, location = rec.full_name, self._location(rec)
            pks, tss, parts = list(rec.primary_keys), list(rec.timestamp_keys), list(rec.partition_columns)
            known = [f.name for f in rec.features]
            created_at = rec.created_at.replace(tzinfo=UTC)
        span("catalog_read")
        validate_column_names(full, column_names(df) or [], existing=known)
        with self.ctx.engine.ingesting(df, table=full, location=location, partition_by=parts) as data:
            span("to_arrow")
            yield self._validate(PreparedWrite(full, location, pks, tss, parts, mode, created_at, data, span),
                                 open_tables)

    def _validate(self, p: PreparedWrite, open_tables: dict[str, Any] | None = None) -> PreparedWrite:
        engine, full = self.ctx.engine, p.name
        snap = delta.load_reusing(p.location, open_tables, name=full, key=f"{p.location.uri}@{p.created_at.isoformat()}")
        p.span("open_delta")
        engine.check_rows(p.data, table=full, primary_keys=p.primary_keys, timestamp_keys=p.timestamp_keys)
        data, new_fields = engine.conform(p.data, snap.schema, table=full)
        if new_fields:
            validate_column_names(full, [f.name for f in new_fields], existing=snap.schema.names)
            check_storable(pa.schema(new_fields), table=full)
        engine.check_partition_values(data, p.partitions, table=full)
        if p.mode == "overwrite" or p.partitions:
            missing_parts = [c for c in p.partitions if c not in engine.schema_of(data).names]
            if missing_parts:
                raise SchemaMismatchError(
                    f"Table {full!r} is partitioned by {p.partitions} but the DataFrame lacks {missing_parts}."
                )
        p.span("validate")
        p.checked = quality.check_before_write(self.ctx.catalog, full, data, keys=p.primary_keys,
                                               validator=engine.validate)
        p.data, p.new_fields, p.snapshot = data, list(new_fields), snap
        return p

    def current_schema(self, name: str, *, open_tables: dict[str, Any] | None = None) -> pa.Schema:
        """The Arrow schema of table ``name``'s latest Delta version (``open_tables``: as in
        :meth:`prepare_write`)."""
        with self.ctx.catalog.session() as s:
            rec = self._record(s, name)
            full, location, created = rec.full_name, self._location(rec), rec.created_at.replace(tzinfo=UTC)
        return delta.load_reusing(location, open_tables, name=full, key=f"{location.uri}@{created.isoformat()}").schema

    def committed_version(self, name: str, write_id: str, *, snapshot: delta.Snapshot | None = None) -> int | None:
        """The Delta version of table ``name`` that a write with ``write_id`` committed, None if none did.

        Looked up in the catalog's version records, then (for a commit whose catalog step was cut short)
        among the Delta commits newer than the newest recorded version (at most 100 of them; read from
        ``snapshot`` when given, a just-loaded snapshot of the table)."""
        check_write_id(write_id)
        with self.ctx.catalog.session() as s:
            rec = self._record(s, name)
            found = s.scalars(select(TableVersionRecord.delta_version).where(
                TableVersionRecord.table_id == rec.id, TableVersionRecord.write_id == write_id)).first()
            if found is not None:
                return int(found)
            newest = s.scalars(select(TableVersionRecord.delta_version).where(
                TableVersionRecord.table_id == rec.id).order_by(TableVersionRecord.delta_version.desc())).first()
            location = self._location(rec)
        return delta.find_write(location, write_id, since=-1 if newest is None else int(newest), limit=100,
                                table=None if snapshot is None else snapshot.table)

    def commit_write(self, p: PreparedWrite, *, write_id: str | None = None, replace_where: str | None = None,
                     commit_metadata: Mapping[str, str] | None = None) -> int:
        """Commit a prepared write (one Delta commit, then the catalog); returns the Delta version. With a
        ``write_id`` already committed to this table, returns that version and writes nothing.
        ``replace_where``: an overwrite replaces only the rows matching it (see :meth:`write_table`)."""
        if write_id is not None:
            landed = self.committed_version(p.name, write_id, snapshot=p.snapshot)
            if landed is not None:
                return landed
        engine, full, location, mode, span, data = self.ctx.engine, p.name, p.location, p.mode, p.span, p.data
        snap, new_fields = p.snapshot, p.new_fields
        assert snap is not None, "commit_write needs a PreparedWrite from prepare_write"
        # The profile of this write depends only on `data`: compute it while delta-rs commits (which
        # releases the GIL), store it only once the commit gave a version. Validation is done above.
        pool = ThreadPoolExecutor(1, thread_name_prefix="larder-profile")
        try:
            pending = start_profile(self.ctx.catalog, full, data, pool, profiler=engine.profile)
            span("quality_check")
            commit = delta.Commit(write_id=write_id or _write_id(), metadata=dict(commit_metadata or {}))
            if mode == "merge":
                # the snapshot loaded above serves the first attempt; a conflict retry reloads the table
                version = engine.merge(location, data, keys=p.primary_keys, name=full, evolve=bool(new_fields),
                                       snapshot=snap, commit=commit)
            else:
                version = engine.overwrite(location, data, name=full, partition_by=p.partitions, commit=commit,
                                           predicate=replace_where)
            span("commit")
            # merge updates the loaded snapshot in place when its first attempt commits: then the row
            # count is read off the new snapshot in memory; otherwise (overwrite, a retried merge) it
            # is the written rows or the committed version's count
            written = engine.num_rows(data)
            rows = (snap.row_count() if mode == "merge" and snap.version == version else written
                    if mode == "overwrite" and replace_where is None
                    else delta.load(location, version=version, name=full).row_count())
            failpoint("write_table:after_commit")
            # Every column of the committed schema gets a feature record: this write's new ones, and any
            # that a write killed after its commit never registered (larder.offline.reconcile).
            # (the merge may have advanced `snap` to the new version: its schema can hold new_fields)
            columns = list({f.name: (f.name, _dtype_name(f.type)) for f in [*snap.schema, *new_fields]}.values())

            def record(s: Session) -> None:
                rec = self._record(s, full)
                sync_features(rec, columns, location=location, version=version,
                              added_now={f.name: version for f in new_fields})
                rec.updated_at = utcnow()
                record_table_stats(s, rec.id, version=version, row_count=rows, written_at=rec.updated_at)
                _record_version(s, rec.id, version, mode, written, commit, rec.updated_at)

            self._record_commit(full, version, record)
            span("catalog_update")
            quality.record_after_write(self.ctx.catalog, full, version, data, p.checked, pending=pending,
                                       profiler=engine.profile)
            span("profile")
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # a failed write does not wait for its profile
        return version

    #: attempts at recording a committed version in the catalog (transient errors, concurrent writers)
    CATALOG_RECORD_ATTEMPTS = 6

    def _record_commit(self, full: str, version: int, record: Callable[[Session], None]) -> None:
        """Run ``record`` (the catalog side of a committed write) in a catalog transaction, again on a
        transient error or a concurrent writer's conflicting row (two writers adding one new feature),
        so that a version in the Delta log is not left unrecorded by a passing hiccup."""
        delay = 0.05
        for attempt in range(1, self.CATALOG_RECORD_ATTEMPTS + 1):
            try:
                with self.ctx.catalog.session() as s:
                    record(s)
                return
            except CatalogError as exc:
                cause = exc.__cause__
                if attempt < self.CATALOG_RECORD_ATTEMPTS and (exc.retryable or isinstance(cause, IntegrityError)):
                    time.sleep(random.uniform(0, delay))
                    delay = min(delay * 2, 2.0)
                    continue
                raise CatalogError(
                    f"Table {full!r}: version {version} was committed to Delta, but recording it in the catalog "
                    f"failed ({exc}). The data is written; `larder doctor` lists the version as unrecorded. "
                    "Writing the same rows again is safe.", retryable=exc.retryable,
                ) from exc

    # -- read --------------------------------------------------------------------------------
    def read_arrow(self, name: str, *, as_of_version: int | None = None,
                   as_of_timestamp: datetime | str | None = None, columns: list[str] | None = None) -> pa.Table:
        snap = self.snapshot(name, as_of_version, as_of_timestamp)
        if columns is not None:
            unknown = [c for c in columns if c not in snap.schema.names]
            if unknown:
                raise SchemaMismatchError(
                    f"Table {parse_name(name).full!r} has no column(s) {unknown}; it has {snap.schema.names}."
                )
        return self.ctx.engine.read(snap, columns=columns)

    def read_table(self, name: str, *, as_of_version: int | None = None,
                   as_of_timestamp: datetime | str | None = None) -> Any:
        """The table's rows in the engine's user-facing form: pandas on DuckDB, a Spark DataFrame on Spark."""
        snap = self.snapshot(name, as_of_version, as_of_timestamp)
        return self.ctx.engine.read_frame(snap)

    # -- metadata ----------------------------------------------------------------------------
    def _describe(self, session: Session, rec: TableRecord) -> FeatureTable:
        """The table of catalog record ``rec`` (read in ``session``), as its latest Delta version is."""
        snap = delta.load(self._location(rec), name=rec.full_name)
        return self._feature_table(session, rec, schema=snap.schema, table_id=str(snap.table.metadata().id),
                                   version=snap.version, row_count=snap.row_count())

    def _feature_table(self, session: Session, rec: TableRecord, *, schema: pa.Schema, table_id: str,
                       version: int, row_count: int) -> FeatureTable:
        """A :class:`FeatureTable` from its catalog record and these facts of one Delta version of it."""
        by_name = {f.name: f for f in rec.features}
        ts_keys = list(rec.timestamp_keys)
        entity = [k for k in rec.primary_keys if k not in ts_keys]
        features = []
        for f in schema:
            r = by_name.get(f.name)
            features.append(FeatureColumn(
                f.name, _dtype_name(f.type), description=r.description if r else None,
                is_primary_key=f.name in entity, is_timestamp_key=f.name in ts_keys,
                metadata=dict(r.extra or {}) if r else {},
            ))
        return FeatureTable(
            name=rec.full_name, table_id=table_id, primary_keys=entity,
            timestamp_keys=ts_keys, partition_columns=list(rec.partition_columns), features=features,
            description=rec.description, tags={t.key: t.value for t in rec.tags}, owner=rec.owner,
            created_at=rec.created_at.replace(tzinfo=UTC), updated_at=rec.updated_at.replace(tzinfo=UTC),
            version=version, row_count=row_count, path=self._location(rec).uri,
            online_stores=_online_stores(session, rec.full_name),
        )

    def get_table(self, name: str) -> FeatureTable:
        with self.ctx.catalog.session() as s:
            rec = self._record(s, name)
            return self._describe(s, rec)

    def list_tables(self, name_pattern: str | None = None, tags: Mapping[str, str | None] | Sequence[str] | None = None
                    ) -> list[FeatureTable]:
        """Tables whose full or short name matches ``name_pattern`` (glob) and that carry all ``tags``.

        ``tags`` is a list of tag keys, or a mapping of key to value (``None`` matches any value).
        """
        want: dict[str, str | None] = (
            {t: None for t in tags} if isinstance(tags, (list, tuple, set)) else dict(tags or {})  # type: ignore[arg-type]
        )
        out = []
        with self.ctx.catalog.session() as s:
            for rec in s.scalars(select(TableRecord).order_by(TableRecord.full_name)):
                if name_pattern and not (
                    fnmatch.fnmatchcase(rec.full_name, name_pattern) or fnmatch.fnmatchcase(rec.table_name, name_pattern)
                ):
                    continue
                have = {t.key: t.value for t in rec.tags}
                if any(k not in have or (v is not None and have[k] != v) for k, v in want.items()):
                    continue
                out.append(self._describe(s, rec))
        return out

    def delete_rows(self, name: str, keys: pa.Table, *, write_id: str | None = None) -> tuple[int | None, int]:
        """Delete every row of table ``name`` whose values in ``keys``' columns (some or all of the
        primary keys) equal one of ``keys``' rows, a null matching a null, in one Delta commit recorded in
        the catalog. Returns ``(version, rows deleted)``: version None when no row matched (nothing is
        committed). ``write_id`` makes it idempotent as in :meth:`write_table` (rows -1: an earlier call
        with that id had committed)."""
        with self.ctx.catalog.session() as s:
            rec = self._record(s, name)
            full, location, pks = rec.full_name, self._location(rec), list(rec.primary_keys)
        columns = list(keys.column_names)
        unknown = [c for c in columns if c not in pks]
        if not columns or unknown:
            raise PrimaryKeyError(
                f"Table {full!r}: rows are deleted by primary key columns {pks}; "
                + (f"{unknown} are not among them." if unknown else "the keys given have no column.")
            )
        snap = delta.load(location, name=full)
        if write_id is not None:
            landed = self.committed_version(full, write_id, snapshot=snap)
            if landed is not None:
                return landed, -1
        try:
            keys = keys.cast(pa.schema([snap.schema.field(c) for c in columns]))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            types = {c: str(snap.schema.field(c).type) for c in columns}
            raise PrimaryKeyError(f"Table {full!r}: the keys to delete do not convert to the key types {types}: {exc}") from exc
        keys = keys.group_by(columns, use_threads=False).aggregate([]) if keys.num_rows else keys
        if keys.num_rows == 0:
            return None, 0
        commit = delta.Commit(write_id=write_id or _write_id())
        version, deleted = delta.delete_matching(location, keys, name=full, commit=commit)
        if version is None:
            return None, 0
        rows = delta.load(location, version=version, name=full).row_count()
        committed = version

        def record(s: Session) -> None:
            rec = self._record(s, full)
            rec.updated_at = utcnow()
            record_table_stats(s, rec.id, version=committed, row_count=rows, written_at=rec.updated_at)
            _record_version(s, rec.id, committed, "delete", max(deleted, 0), commit, rec.updated_at)

        self._record_commit(full, committed, record)
        return committed, deleted

    def drop_table(self, name: str) -> None:
        """Delete the table's data, catalog entry and quality records.

        On local disk the data is first renamed aside (one atomic step), then the catalog entry and
        quality records are deleted in one transaction, then the renamed data is removed: a kill at
        any point leaves the whole table, or a drop that the next ``drop_table``/``create_table`` of
        the name finishes, or only a tombstone directory (see :mod:`larder.offline.locations`). On
        an object store the catalog entry goes first, then the files.
        """
        with self.ctx.catalog.session() as s:
            rec = self._record(s, name)
            location, full = self._location(rec), rec.full_name
            if locations.drop_interrupted(location):  # a drop killed after its rename: finish it
                self._finish_drop(s, rec)
                return
        stone = locations.tombstone(location)
        failpoint("drop_table:after_rename")
        with self.ctx.catalog.session() as s:
            rec = self._record(s, full)
            delete_rows_for_table(s, full)
            s.delete(rec)
        failpoint("drop_table:after_catalog")
        if stone is None:
            location.remove()
        for leftover in [*([stone] if stone is not None else []), *locations.tombstones(location)]:
            leftover.remove()

    def _finish_drop(self, session: Session, rec: TableRecord) -> None:
        location = self._location(rec)
        delete_rows_for_table(session, rec.full_name)
        session.delete(rec)
        session.flush()
        for stone in locations.tombstones(location):
            stone.remove()

    def _exists(self, full: str) -> bool:
        with self.ctx.catalog.session() as s:
            return s.scalars(select(TableRecord.id).where(TableRecord.full_name == full)).first() is not None

    def set_tag(self, name: str, key: str, value: str) -> None:
        if not isinstance(key, str) or not key:
            raise TableError(f"Table {parse_name(name).full!r}: a tag key must be a non-empty string.")
        with self.ctx.catalog.session() as s:
            rec = self._record(s, name)
            for t in rec.tags:
                if t.key == key:
                    t.value = str(value)
                    break
            else:
                rec.tags.append(TagRecord(key=key, value=str(value)))
            rec.updated_at = utcnow()

    def delete_tag(self, name: str, key: str) -> None:
        with self.ctx.catalog.session() as s:
            rec = self._record(s, name)
            match = [t for t in rec.tags if t.key == key]
            if not match:
                raise TableError(
                    f"Table {rec.full_name!r} has no tag {key!r}; its tags are {sorted(t.key for t in rec.tags)}."
                )
            rec.tags.remove(match[0])
            rec.updated_at = utcnow()

    def set_metadata(self, session: Session, name: str, *, description: str | None = None,
                     tags: Mapping[str, str] | None = None,
                     feature_descriptions: Mapping[str, str] | None = None) -> None:
        """In the caller's catalog transaction: set the description, replace the tags and set every
        column's description (a column not in ``feature_descriptions`` gets none); an argument left
        ``None`` leaves that part as it is. Used by ``larder apply``."""
        rec = self._record(session, name)
        if description is not None:
            rec.description = description
        if tags is not None:
            have = {t.key: t for t in rec.tags}
            for key, tag in have.items():
                if key not in tags:
                    rec.tags.remove(tag)
            for key, value in tags.items():
                if key in have:
                    have[key].value = str(value)
                else:
                    rec.tags.append(TagRecord(key=key, value=str(value)))
        if feature_descriptions is not None:
            for f in rec.features:
                f.description = feature_descriptions.get(f.name)
        rec.updated_at = utcnow()

    def set_feature_description(self, name: str, feature: str, description: str) -> None:
        self.update_feature(name, feature, description=description)

    def update_feature(self, name: str, feature: str, *, description: str | None = None,
                       metadata: Mapping[str, Any] | None = None) -> None:
        """Set a feature's description and/or merge ``metadata`` into its free-form metadata."""
        with self.ctx.catalog.session() as s:
            rec = self._record(s, name)
            match = [f for f in rec.features if f.name == feature]
            if not match:  # perhaps a column a killed write committed but never registered
                location = self._location(rec)
                snap = delta.load(location, name=rec.full_name)
                sync_features(rec, [(f.name, _dtype_name(f.type)) for f in snap.schema], location=location,
                              version=snap.version)
                match = [f for f in rec.features if f.name == feature]
            if not match:
                raise SchemaMismatchError(
                    f"Table {rec.full_name!r} has no feature {feature!r}; its columns are "
                    f"{[f.name for f in rec.features]}."
                )
            if description is not None:
                match[0].description = description
            if metadata is not None:
                match[0].extra = {**(match[0].extra or {}), **dict(metadata)}
            rec.updated_at = utcnow()

    def history(self, name: str, limit: int | None = None) -> pd.DataFrame:
        with self.ctx.catalog.session() as s:
            rec = self._record(s, name)
            location, full = self._location(rec), rec.full_name
        rows = []
        for h in delta.history(location, name=full, limit=limit):
            metrics = h.get("operationMetrics") or {}
            rows.append({
                "version": h.get("version"),
                "timestamp": pd.Timestamp(h.get("timestamp"), unit="ms", tz="UTC"),
                "operation": h.get("operation"),
                "rows_inserted": metrics.get("num_target_rows_inserted", metrics.get("num_added_rows")),
                "rows_updated": metrics.get("num_target_rows_updated"),
                "parameters": h.get("operationParameters") or {},
                "metrics": metrics,
            })
        return pd.DataFrame(rows, columns=["version", "timestamp", "operation", "rows_inserted",
                                           "rows_updated", "parameters", "metrics"])


class _Spans:
    """Accumulates the seconds between successive calls into ``out[label]`` (no-op without ``out``)."""

    def __init__(self, out: dict[str, float] | None) -> None:
        self.out = out
        self.last = time.perf_counter()

    def __call__(self, label: str) -> None:
        if self.out is None:
            return
        now = time.perf_counter()
        self.out[label] = self.out.get(label, 0.0) + now - self.last
        self.last = now


def _write_id() -> str:
    return uuid.uuid4().hex


def _writer() -> str:
    return f"{current_user() or '?'}@{socket.gethostname()}"[:256]


def _record_version(session: Session, table_id: int, version: int, operation: str, rows: int,
                    commit: delta.Commit, when: datetime) -> None:
    """Record the Delta version a write committed (idempotent: a retried catalog step adds no second row)."""
    exists = session.scalars(select(TableVersionRecord.id).where(
        TableVersionRecord.table_id == table_id, TableVersionRecord.delta_version == version)).first()
    if exists is None:
        session.add(TableVersionRecord(table_id=table_id, delta_version=version, operation=operation, rows=rows,
                                       write_id=commit.write_id, attempts=max(commit.attempts, 1),
                                       writer=_writer(), committed_at=when))


def _is_table_or_unknown(location: Location) -> bool:
    """Whether a Delta table is at ``location``; True when that cannot be checked (so it is kept)."""
    try:
        return delta.is_table(location)
    except TableError:
        return True


def _online_stores(session: Session, full_name: str) -> list[OnlineStoreInfo]:
    """The stores ``full_name`` is published to (its active publications, one entry per store)."""
    from larder.catalog.online import PublicationRecord

    stores: dict[str, OnlineStoreInfo] = {}
    recs = session.scalars(select(PublicationRecord).where(PublicationRecord.table_name == full_name,
                                                           PublicationRecord.dropped_at.is_(None))
                           .order_by(PublicationRecord.id))
    for r in recs:
        ms = int(r.published_at.replace(tzinfo=UTC).timestamp() * 1000)
        first = stores.get(r.store_key)
        stores[r.store_key] = OnlineStoreInfo(
            name=r.store_name or r.store_type, store_type=r.store_type, online_table_name=r.online_table_name,
            delta_version=r.delta_version, creation_timestamp=first.creation_timestamp if first else ms,
            last_updated_timestamp=ms)
    return list(stores.values())


def _as_of_time(ts: Any, *, table: str) -> datetime:
    """``as_of_timestamp`` as a UTC datetime (naive means UTC); unparseable values are a TableError."""
    if not isinstance(ts, (str, date, np.datetime64)):
        raise TableError(
            f"Feature table {table!r}: as_of_timestamp must be a datetime, a pandas Timestamp or an ISO "
            f"8601 string such as '2024-05-01T12:00:00Z', got {type(ts).__name__} {ts!r}."
        )
    try:
        t = pd.Timestamp(ts)
    except (ValueError, TypeError, OverflowError) as exc:
        raise TableError(
            f"Feature table {table!r}: as_of_timestamp {ts!r} is not a point in time pandas can parse; give "
            "a datetime or an ISO 8601 string such as '2024-05-01T12:00:00Z'."
        ) from exc
    if pd.isna(t):
        raise TableError(f"Feature table {table!r}: as_of_timestamp is NaT; give a point in time.")
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.to_pydatetime()


__all__ = ["FeatureColumn", "FeatureTable", "OnlineStoreInfo", "TableService", "WriteMode"]
