"""Delta Lake storage for feature tables, through ``deltalake`` (delta-rs).

Every write is one Delta commit, so it is all-or-nothing. Concurrent writers are reconciled by
delta-rs' optimistic concurrency: a commit that conflicts raises ``CommitFailedError``, and larder
reloads the table and retries the whole operation (bounded, with jittered backoff) before raising
:class:`~larder.errors.WriteConflictError`. No row is lost either way.

Reads go through the table's *active file list* (``DeltaTable.file_uris()``) with ``pyarrow.dataset``:
removed files stay on disk until vacuum and must never be read. (Reading through
``DeltaTable.to_pyarrow_dataset()`` aborts the interpreter at exit with the versions pinned here.)
Every function takes the table's :class:`~larder.offline.storage.Location`: local or object-store,
with the storage options delta-rs needs; files on an object store are read through delta-rs' own
object store with the same options.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound

from larder.errors import TableError, WriteConflictError
from larder.offline.storage import Location, error_text

T = TypeVar("T")

MAX_COMMIT_ATTEMPTS = 25

#: Table properties of the tables larder creates. A checkpoint every 10 commits (Delta's own default;
#: delta-rs' is 100) bounds what opening a table reads: on an object store every log file is a request.
TABLE_CONFIGURATION = {"delta.checkpointInterval": "10"}


#: Key of the larder write id in a Delta commit's ``commitInfo``.
WRITE_ID_KEY = "larder.write_id"


@dataclass
class Commit:
    """What a larder write asks of its Delta commit, and what the commit reports back.

    ``write_id`` goes into the commit's ``commitInfo`` (:data:`WRITE_ID_KEY`), so the catalog's record of
    the version can be matched with the Delta log. ``attempts`` is set by the committer: how many times
    the commit was tried (1: no conflict with concurrent writers). ``metadata`` adds entries to the
    ``commitInfo`` (a stream consumer's offsets: they are committed in the same atomic step as the rows).
    """

    write_id: str
    attempts: int = 0
    metadata: dict[str, str] = field(default_factory=dict)

    def properties(self) -> CommitProperties:
        return CommitProperties(custom_metadata={**self.metadata, WRITE_ID_KEY: self.write_id})


def _properties(commit: Commit | None) -> CommitProperties | None:
    return commit.properties() if commit is not None else None


def _q(col: str) -> str:
    """``col`` as a DataFusion (SQL) identifier: double-quoted, inner double quotes doubled.

    delta-rs re-quotes column names with backticks inside a merge, so a name holding a backtick can
    never be merged on; :func:`larder.names.validate_column_names` refuses those at creation.
    """
    return '"' + col.replace('"', '""') + '"'



@dataclass(frozen=True)
class Snapshot:
    """A loaded version of a Delta table, and where it lives."""

    table: DeltaTable
    location: Location

    @property
    def version(self) -> int:
        return int(self.table.version())

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(self.table.schema().to_arrow())

    @property
    def partition_columns(self) -> list[str]:
        return list(self.table.metadata().partition_columns)

    def dataset(self, files: list[str] | None = None) -> ds.Dataset:
        """A pyarrow dataset over the snapshot's active files (or ``files``, some of them: URIs as
        :meth:`file_uris` gives them), with the table's full schema."""
        schema = self.schema
        parts = self.partition_columns
        partitioning = None
        if parts:
            partitioning = ds.partitioning(pa.schema([schema.field(p) for p in parts]), flavor="hive")
        files = self.table.file_uris() if files is None else list(files)
        if not files:
            return ds.dataset(schema.empty_table())
        if self.location.is_local:
            return ds.dataset(
                files,
                schema=schema,
                format="parquet",
                partitioning=partitioning,
                partition_base_dir=self.table.table_uri if parts else None,
            )
        # object store: paths relative to the table, read through delta-rs' object store
        base = self.table.table_uri.rstrip("/") + "/"
        relative = [f[len(base):] if f.startswith(base) else f for f in files]
        return ds.dataset(relative, schema=schema, format="parquet", partitioning=partitioning,
                          filesystem=self.location.filesystem())

    def file_uris(self) -> list[str]:
        """The URIs of the snapshot's active data files."""
        return list(self.table.file_uris())

    def to_arrow(self, columns: list[str] | None = None, filter: Any = None, files: list[str] | None = None
                 ) -> pa.Table:
        return self.dataset(files).to_table(columns=columns, filter=filter)

    def row_count(self) -> int:
        actions = pa.table(self.table.get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return 0
        return int(pc.sum(actions.column("num_records")).as_py() or 0)


@dataclass(frozen=True)
class Created:
    """What a table's version 0 recorded of it: the id and schema of its metadata."""

    table_id: str
    schema: pa.Schema


def created(location: Location, *, name: str) -> Created:
    """The metadata of version 0 of the table at ``location``, read from that commit's file alone.

    ``create_table`` describes the table it just committed this way: opening it (:func:`load`) would
    list the log and replay it, a request and a state build more (on moto S3: 12 ms against 4 ms for
    this one GET). The file is read until its ``metaData`` action (Delta's), whose schema deltalake
    converts to Arrow as :attr:`Snapshot.schema` does.
    """
    try:
        with location.filesystem().open_input_stream(f"_delta_log/{0:020d}.json") as f:
            pending = b""
            while chunk := f.read(1 << 16):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    found = _metadata_of(line)
                    if found is not None:
                        return found
            found = _metadata_of(pending)
    except (DeltaError, ValueError, KeyError, TypeError, OSError) as exc:
        raise TableError(f"Cannot read version 0 of feature table {name!r} at {location!r}: {error_text(exc)}") from exc
    if found is None:
        raise TableError(f"Cannot read version 0 of feature table {name!r} at {location!r}: its commit has no metadata.")
    return found


def _metadata_of(line: bytes) -> Created | None:
    """The table id and schema of a commit file's line if it is the ``metaData`` action."""
    if not line.strip():
        return None
    meta = json.loads(line).get("metaData")
    if meta is None:
        return None
    return Created(str(meta["id"]), pa.schema(DeltaSchema.from_json(meta["schemaString"]).to_arrow()))


def open_table(location: Location) -> DeltaTable:
    """The latest version of the Delta table at ``location`` (deltalake errors propagate)."""
    return DeltaTable(location.uri, storage_options=location.storage_options)


def is_table(location: Location) -> bool:
    """Whether a Delta table (a ``_delta_log``) exists at ``location``."""
    try:
        return bool(DeltaTable.is_deltatable(location.uri, storage_options=location.storage_options))
    except (DeltaError, ValueError, OSError) as exc:
        raise TableError(f"Cannot check for a Delta table at {location!r}: {error_text(exc)}") from exc


def load(location: Location, *, version: int | None = None, as_of: datetime | None = None,
         name: str) -> Snapshot:
    """Load a table at its latest version, a given version (``0`` to the latest), or the version
    current at ``as_of``."""
    path = location.uri
    try:
        table = open_table(location)
        if version is not None:
            latest = int(table.version())
            if not 0 <= version <= latest:
                raise TableError(f"Feature table {name!r} has no version {version} (as_of_version): its versions "
                                 f"are 0 to {latest}.")
            table.load_as_version(version)
        elif as_of is not None:
            table.load_as_version(version_at(table, as_of, name=name))
    except DeltaTableNotFound as exc:
        raise TableError(
            f"Feature table {name!r} is in the catalog but its Delta data at {path!r} is missing. "
            "Drop it with `larder tables drop` and recreate it."
        ) from exc
    except (DeltaError, ValueError, OSError) as exc:
        what = f"version {version}" if version is not None else f"timestamp {as_of}" if as_of else "latest"
        raise TableError(f"Cannot load feature table {name!r} at {what}: {error_text(exc)}") from exc
    return Snapshot(table, location)


def load_reusing(location: Location, open_tables: dict[str, Any] | None, *, name: str, key: str) -> Snapshot:
    """The latest snapshot, like :func:`load`; with ``open_tables`` (``key`` -> DeltaTable, kept by the
    caller) a table opened before is brought up to date incrementally instead of opened again. ``key``
    must change when the table is re-created at the same location (its creation time does)."""
    if open_tables is None:
        return load(location, name=name)
    table = open_tables.get(key)
    if table is not None:
        try:
            table.update_incremental()
            return Snapshot(table, location)
        except (DeltaError, ValueError, OSError):
            open_tables.pop(key, None)  # gone or rewritten: open it afresh
    snap = load(location, name=name)
    if len(open_tables) >= 64:
        open_tables.clear()
    open_tables[key] = snap.table
    return snap


def version_at(table: DeltaTable, as_of: datetime, *, name: str) -> int:
    """The table's version current at ``as_of``: the last commit whose timestamp is ``<= as_of``.

    Commit timestamps are the commits' own (``commitInfo.timestamp``, milliseconds), made strictly
    increasing with the version as Delta readers do for skewed writer clocks. delta-rs' timestamp
    travel uses the log files' modification times instead, which object stores keep to the second
    only: two commits in one second would be indistinguishable there.
    """
    stamps: dict[int, int] = {}
    for h in table.history():
        if h.get("version") is not None and h.get("timestamp") is not None:
            stamps[int(h["version"])] = int(h["timestamp"])
    wanted = int(as_of.timestamp() * 1000)
    found, last = None, None
    for v in sorted(stamps):
        ts = stamps[v] if last is None else max(stamps[v], last + 1)
        last = ts
        if ts <= wanted:
            found = v
        else:
            break
    if found is None:
        first = datetime.fromtimestamp(stamps[min(stamps)] / 1000, tz=as_of.tzinfo) if stamps else None
        raise TableError(
            f"Feature table {name!r} did not exist yet at {as_of.isoformat()} (its first version was committed "
            f"at {first.isoformat() if first else 'an unknown time'}). Pick a later timestamp, or as_of_version."
        )
    return found


def create(location: Location, schema: pa.Schema, *, partition_by: list[str] | None, name: str,
           description: str | None, commit: Commit | None = None) -> int:
    try:
        DeltaTable.create(
            location.uri, schema=schema, partition_by=partition_by or None, mode="error",
            name=name, description=description, storage_options=location.storage_options,
            configuration=dict(TABLE_CONFIGURATION), commit_properties=_properties(commit),
        )
        if commit is not None:
            commit.attempts = 1
    except (DeltaError, ValueError, OSError) as exc:
        raise TableError(f"Cannot create the Delta table for {name!r} at {location!r}: {error_text(exc)}") from exc
    return 0


def write_new(location: Location, data: pa.Table, *, partition_by: list[str] | None, name: str,
              description: str | None, commit: Commit | None = None) -> int:
    """Create a table holding ``data`` as its version 0."""
    try:
        write_deltalake(location.uri, data, mode="error", partition_by=partition_by or None, name=name,
                        description=description, storage_options=location.storage_options,
                        configuration=dict(TABLE_CONFIGURATION), commit_properties=_properties(commit))
        if commit is not None:
            commit.attempts = 1
    except (DeltaError, ValueError, OSError) as exc:
        raise TableError(f"Cannot create the Delta table for {name!r} at {location!r}: {error_text(exc)}") from exc
    return 0


def _retry(op: Callable[[], T], *, name: str, commit: Commit | None = None) -> T:
    delay = 0.02
    for attempt in range(1, MAX_COMMIT_ATTEMPTS + 1):
        if commit is not None:
            commit.attempts = attempt
        try:
            return op()
        except CommitFailedError as exc:
            if attempt == MAX_COMMIT_ATTEMPTS:
                raise WriteConflictError(
                    f"Table {name!r}: the write conflicted with concurrent writers {attempt} times and was "
                    "not committed (nothing was written). Retry it, or serialise the writers."
                ) from exc
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 1.0)
    raise AssertionError("unreachable")  # pragma: no cover


def _landed(table: DeltaTable, commit: Commit | None, since: int | None) -> int | None:
    """The version at which ``commit`` is in the log after version ``since``, if it is.

    A commit whose acknowledgement was lost (a timeout after the object store stored it, then a
    conflict or an error reported for it) is in the log all the same: retrying it would write the rows
    twice, in two versions. Looking for its write id among the newer commits makes the write
    exactly-once."""
    if commit is None or since is None:
        return None
    newer = int(table.version()) - since
    if newer <= 0:
        return None
    for h in table.history(newer):
        if h.get(WRITE_ID_KEY) == commit.write_id and h.get("version") is not None:
            return int(h["version"])
    return None


def find_write(location: Location, write_id: str, *, since: int, limit: int = 100,
               table: DeltaTable | None = None) -> int | None:
    """The version after ``since`` whose commit carries ``write_id`` (looking at the newest ``limit``
    commits at most; in ``table`` when given, a freshly loaded one), None when there is none. A write
    retried with the same id then commits nothing."""
    try:
        table = table if table is not None else open_table(location)
    except (DeltaError, ValueError, OSError):
        return None
    newer = int(table.version()) - since
    if newer <= 0:
        return None
    for h in table.history(min(newer, limit)):
        if h.get(WRITE_ID_KEY) == write_id and h.get("version") is not None and int(h["version"]) > since:
            return int(h["version"])
    return None


def _landed_after_error(location: Location, commit: Commit | None, since: int | None) -> int | None:
    """:func:`_landed` on a freshly opened table, after an error (None if that cannot be read either)."""
    if commit is None or since is None:
        return None
    try:
        return _landed(open_table(location), commit, since)
    except (DeltaError, ValueError, OSError):
        return None


def merge(location: Location, data: pa.Table, *, keys: list[str], name: str, evolve: bool,
          table: DeltaTable | None = None, commit: Commit | None = None) -> tuple[int, dict[str, Any]]:
    """Upsert ``data`` on ``keys``: matched rows get ``data``'s columns, new rows are inserted.

    Columns of the table that ``data`` lacks keep their values on update and are null on insert
    (``update_all`` / ``insert_all`` map exactly the source's columns). ``table`` is used for the first
    attempt when given (the caller's freshly loaded table: no second log replay); a conflict retry
    brings the same table object up to date (reading only the commits made since).
    """
    predicate = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in keys)
    target = table
    base: int | None = None  # the version the last attempt read

    def op() -> tuple[int, dict[str, Any]]:
        nonlocal target, base
        if target is None:
            target = open_table(location)
        elif base is not None:
            target.update_incremental()  # a failed commit left the object at the version it had read
            landed = _landed(target, commit, base)
            if landed is not None:
                return landed, {}
        base = int(target.version())
        metrics = (
            target.merge(data, predicate=predicate, source_alias="s", target_alias="t", merge_schema=evolve,
                         commit_properties=_properties(commit))
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
        return int(target.version()), metrics

    try:
        return _retry(op, name=name, commit=commit)
    except (DeltaError, ValueError, OSError) as exc:
        if isinstance(exc, CommitFailedError):  # pragma: no cover - handled by _retry
            raise
        landed = _landed_after_error(location, commit, base)
        if landed is not None:
            return landed, {}
        raise TableError(f"Merge into feature table {name!r} failed (nothing was written): {error_text(exc)}") from exc


def overwrite(location: Location, data: pa.Table, *, name: str, partition_by: list[str] | None,
              commit: Commit | None = None, predicate: str | None = None) -> int:
    """Replace the table's rows with ``data`` in one commit, keeping (and extending) its schema.

    ``predicate`` (a SQL condition): replace only the rows matching it (Delta's replaceWhere); every
    row of ``data`` must match it. Files holding no matching row are kept as they are."""

    base: int | None = None  # the version the last attempt read

    def op() -> int:
        nonlocal base
        target = open_table(location)
        landed = _landed(target, commit, base)
        if landed is not None:
            return landed
        base = int(target.version())
        # written through the loaded table, which then holds this commit's version (not a later one)
        write_deltalake(target, data, mode="overwrite", schema_mode="merge", partition_by=partition_by or None,
                        predicate=predicate, commit_properties=_properties(commit))
        return int(target.version())

    try:
        return _retry(op, name=name, commit=commit)
    except (DeltaError, ValueError, OSError) as exc:
        landed = _landed_after_error(location, commit, base)
        if landed is not None:
            return landed
        raise TableError(f"Overwrite of feature table {name!r} failed (nothing was written): {error_text(exc)}") from exc


def delete_matching(location: Location, keys: pa.Table, *, name: str,
                    commit: Commit | None = None) -> tuple[int | None, int]:
    """Delete, in one commit, every row whose values in ``keys``' columns equal one of its rows (a null
    matches a null: ``IS NOT DISTINCT FROM``; ``keys`` may hold only some of the key columns, then every
    row with those values goes). ``keys`` must hold distinct rows. Returns ``(version, rows deleted)``;
    no commit is made when no row matches (version None); -1 rows: an earlier attempt's commit landed."""
    predicate = " AND ".join(f"(t.{_q(c)} IS NOT DISTINCT FROM s.{_q(c)})" for c in keys.column_names)
    base: int | None = None

    def op() -> tuple[int | None, int]:
        nonlocal base
        target = open_table(location)
        landed = _landed(target, commit, base)
        if landed is not None:
            return landed, -1
        base = int(target.version())
        metrics = (target.merge(keys, predicate=predicate, source_alias="s", target_alias="t",
                                commit_properties=_properties(commit))
                   .when_matched_delete().execute())
        deleted = int(metrics.get("num_target_rows_deleted", 0))
        return (int(target.version()) if deleted else None), deleted

    try:
        return _retry(op, name=name, commit=commit)
    except (DeltaError, ValueError, OSError) as exc:
        landed = _landed_after_error(location, commit, base)
        if landed is not None:
            return landed, -1
        raise TableError(f"Deleting rows of feature table {name!r} failed (nothing was deleted): {error_text(exc)}") from exc


def history(location: Location, *, name: str, limit: int | None = None) -> list[dict[str, Any]]:
    try:
        return list(open_table(location).history(limit))
    except (DeltaError, OSError) as exc:
        raise TableError(f"Cannot read the history of feature table {name!r}: {error_text(exc)}") from exc
