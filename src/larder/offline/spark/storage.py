"""Delta tables from Spark without Delta's jars: reads from the active file list, writes committed
through ``deltalake``'s transaction API.

**Reads.** A snapshot's active files (the add actions of that version, never the directory listing:
removed files stay on disk until vacuum) are read with ``spark.read.parquet(*files)`` under the Delta
schema, so files written before a column was added read it as null and narrower integer files are
widened. Partition columns are not in the files: the files of each partition are read as one scan with
the log's partition values as literals (one scan for an unpartitioned table). Tables with column mapping
or deletion vectors need Delta's own reader and are refused with a message saying so.

**Writes.** Spark writes parquet files under the table's directory (``larder-<id>/``, partitioned
``p=v/`` inside it), with microsecond timestamps and the Delta schema's types; the driver then reads the
files' parquet footers for the add actions' statistics (row count, null counts, min/max as delta-rs
writes them) and commits the adds (and the removes of a merge or overwrite) as **one** Delta
transaction with ``max_commit_retries=0``: a commit that finds another writer's commit after the version
it read fails (``CommitFailedError``) and the whole write is computed again on the new version, so two
concurrent merges can never both insert the same key. The files of a failed attempt are deleted, once
the log shows the attempt did not land: a commit whose acknowledgement was lost (stored by the object
store, then reported as an error or a conflict) is found by its write id and returned as committed, its
files kept; when the log cannot be read to tell, the files are left (orphans no reader sees) rather than
risk deleting committed data. (The
alternative, streaming Arrow batches to the driver and writing them with ``write_deltalake``, was
measured in ``benchmarks/spark.py``: it funnels every row through one process.)

**Merges** are computed in Spark: the table's key columns are joined with the new rows' keys to find
the files holding a key being written (only those files are rewritten), then the rewritten files hold
the untouched rows of those files plus the new rows (with, for columns the new rows lack, the values the
matched rows had). deltalake changes a table's schema only on an overwrite, so a merge that adds columns
rewrites the whole table in one overwrite commit that also records the new schema.
"""

from __future__ import annotations

import json
import posixpath
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, CommitProperties, RemoveAction, create_table_with_add_actions

from larder.errors import TableError, WriteConflictError
from larder.offline import delta
from larder.offline.spark.schema import arrow_schema, cast_to, to_spark_schema, to_spark_type
from larder.offline.storage import Location, error_text

T = TypeVar("T")

#: Statistics are written for the first this many columns, as delta-rs does by default.
STATS_COLUMNS = 32
#: Strings longer than this get no min/max statistics (parquet writers may truncate long values).
STATS_MAX_STRING = 64
#: Spark write options: microsecond timestamps (Spark 4 writes INT96 otherwise), no _SUCCESS marker.
WRITE_OPTIONS = {
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "compression": "snappy",
}
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def spark_uri(path: str) -> str:
    """A table location as Spark should be given it: local paths as unencoded ``file://`` URIs (a bare
    path would resolve against the cluster's default file system, HDFS on many clusters; Hadoop's
    ``Path`` quotes what it is given, so a '%' in a file name must stay a '%'); ``s3://`` as Hadoop's
    ``s3a://``; other URIs as they are."""
    if path.startswith("file://"):
        return path
    if path.startswith("s3://"):
        return "s3a://" + path[len("s3://"):]
    if "://" in path:
        return path
    return "file://" + str(Path(path).resolve())


def _local_path(spark_path: str) -> str:
    """A URI as Spark reports it (``file:/a%20b``, encoded), as the path it names, without the scheme."""
    parsed = urlparse(spark_path)
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path)
    return f"{parsed.netloc}{unquote(parsed.path)}"


def _raw_path(location: str) -> str:
    """An unencoded location (``file:///a b``, ``s3://bucket/k``) as the path it names, without the scheme."""
    return location.split("://", 1)[1] if "://" in location else location


# ------------------------------------------------------------------------------------------------ reads


def _check_readable(snapshot: delta.Snapshot, name: str) -> None:
    config = snapshot.table.metadata().configuration or {}
    mode = config.get("delta.columnMapping.mode", "none")
    features = set(snapshot.table.protocol().reader_features or [])
    problem = None
    if mode not in (None, "none"):
        problem = f"column mapping (mode {mode!r})"
    elif "deletionVectors" in features:
        problem = "deletion vectors"
    if problem:
        raise TableError(
            f"Feature table {name!r} uses {problem}, which larder reads only through Delta's own Spark reader. "
            "Configure the session with the Delta jars (delta-spark), or use the DuckDB engine."
        )


def table_root(table: Any) -> str:
    """The table's location, unencoded, with its scheme (``file:///a b`` for a local table)."""
    parsed = urlparse(table.table_uri)
    if parsed.scheme in ("", "file"):
        return "file://" + unquote(parsed.path).rstrip("/")
    return f"{parsed.scheme}://{parsed.netloc}{unquote(parsed.path)}".rstrip("/")


def _file_uri(root: str, log_path: str) -> str:
    """A file's location from its (URI-encoded) path in the log."""
    rel = unquote(log_path)
    if "://" in rel:
        return rel
    return f"{root}/{rel}"


def _partition_groups(snapshot: Any) -> list[tuple[dict[str, Any], list[str]]]:
    """``[(partition values, file locations)]`` of the snapshot's active files, in the log's order."""
    parts = snapshot.partition_columns
    actions = pa.table(snapshot.table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return []
    root = table_root(snapshot.table)
    groups: dict[tuple[Any, ...], tuple[dict[str, Any], list[str]]] = {}
    for row in actions.select(["path", *[f"partition.{p}" for p in parts]]).to_pylist():
        values = {p: row[f"partition.{p}"] for p in parts}
        groups.setdefault(tuple(values[p] for p in parts), (values, []))[1].append(_file_uri(root, row["path"]))
    return list(groups.values())


def read(session: Any, snapshot: delta.Snapshot, columns: Sequence[str] | None = None, *,
         name: str = "<table>", file_column: str | None = None) -> Any:
    """The rows of ``snapshot`` as a Spark DataFrame (``columns``: a projection, in that order;
    ``file_column``: also the path of each row's file, as Spark reports it, under that name)."""
    from pyspark.sql import functions as F

    _check_readable(snapshot, name)
    schema = snapshot.schema
    parts = snapshot.partition_columns
    wanted = list(columns) if columns is not None else schema.names
    data_schema = pa.schema([f for f in schema if f.name not in parts])
    spark_types = {f.name: f.dataType for f in to_spark_schema(schema).fields}
    frames = []
    for values, uris in _partition_groups(snapshot):
        df = session.read.schema(to_spark_schema(data_schema)).parquet(*[spark_uri(u) for u in uris])
        for p in parts:
            df = df.withColumn(p, F.lit(values[p]).cast(spark_types[p]))
        extra = [F.col("_metadata.file_path").alias(file_column)] if file_column else []
        frames.append(df.select(*[F.col(f"`{c}`") for c in wanted], *extra))
    if not frames:
        return session.createDataFrame([], to_spark_schema(pa.schema([schema.field(c) for c in wanted])))
    out = frames[0]
    for df in frames[1:]:
        out = out.unionByName(df)
    return out


# ------------------------------------------------------------------------------------------------ writes


@dataclass(frozen=True)
class Staged:
    """Files one write attempt put under the table: their add actions, and the directory holding them.

    ``source`` is set when the files are a write's staged rows (:func:`stage`) committed as they are:
    then they belong to the :class:`StagedRows`, which removes them unless a commit took them.
    """

    adds: list[AddAction]
    location: Location  # the table
    prefix: str  # the attempt's directory, relative to the table (``larder-<id>``)
    source: StagedRows | None = None

    @property
    def rows(self) -> int:
        return sum(json.loads(a.stats)["numRecords"] for a in self.adds)


def _stat_value(v: Any, t: pa.DataType) -> Any:
    if v is None:
        return None
    if pa.types.is_timestamp(t):
        if isinstance(v, datetime):
            v = v if v.tzinfo else v.replace(tzinfo=UTC)
            return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"
        return None
    if pa.types.is_date(t):
        return v.isoformat() if isinstance(v, date) else None
    if pa.types.is_integer(t):
        return int(v)
    if pa.types.is_string(t):
        return v if isinstance(v, str) and len(v) <= STATS_MAX_STRING else None
    return None  # floats (NaN ordering), decimals, binary, booleans: no min/max


def file_stats(meta: pq.FileMetaData, schema: pa.Schema) -> dict[str, Any]:
    """Delta add-action statistics from a parquet footer: row count, null counts, min/max."""
    cols = [f for f in schema if not pa.types.is_nested(f.type)][:STATS_COLUMNS]
    index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for f in cols:
        i = index.get(f.name)
        if i is None:
            continue
        lo = hi = None
        null_count: int | None = 0
        usable = True
        for g in range(meta.num_row_groups):
            st = meta.row_group(g).column(i).statistics
            if st is None:
                usable, null_count = False, None
                break
            if st.has_null_count and null_count is not None:
                null_count += st.null_count
            else:
                null_count = None
            if not st.has_min_max:
                if meta.row_group(g).num_rows > (st.null_count if st.has_null_count else -1):
                    usable = False
                continue
            lo = st.min if lo is None else min(lo, st.min)
            hi = st.max if hi is None else max(hi, st.max)
        if null_count is not None:
            nulls[f.name] = null_count
        if usable and lo is not None:
            a, b = _stat_value(lo, f.type), _stat_value(hi, f.type)
            if a is not None and b is not None:
                mins[f.name], maxs[f.name] = a, b
    return {"numRecords": meta.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}


def _partition_values(rel: str, parts: Sequence[str], types: dict[str, pa.DataType],
                      session_tz: str) -> dict[str, str | None]:
    """A written file's partition values from its ``p=v`` directories (Spark escapes them like Hive)."""
    found: dict[str, str | None] = {}
    for seg in rel.split("/")[:-1]:
        if "=" not in seg:
            continue
        key, raw = seg.split("=", 1)
        key = unquote(key)
        if key not in parts:
            continue
        value = unquote(raw)
        if value == HIVE_NULL:
            found[key] = None
        elif pa.types.is_timestamp(types[key]):
            # Spark renders timestamps in the session zone; Delta stores the UTC wall clock
            local = datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(session_tz))
            found[key] = local.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        else:
            found[key] = value
    missing = [p for p in parts if p not in found]
    if missing:
        raise TableError(f"A file Spark wrote ({rel!r}) has no directory for partition column(s) {missing}.")
    return found


class StagedRows:
    """The rows of one write, written once as parquet under the table before anything reads them.

    Every check, expectation and the profile then read these files, so the rows checked are the rows
    committed even when the DataFrame given is not deterministic, and a write whose rows need no cast
    commits the files as they are (:func:`write_files`) instead of writing them again. ``committed``
    is set once a commit took the files; :func:`release` removes them otherwise.
    """

    def __init__(self, staged: Staged, spark_schema: Any) -> None:
        self.staged = staged
        self.spark_schema = spark_schema  # the files' Spark types, column by column
        self.committed = False


#: Spark types its parquet writer refuses: such rows are persisted instead of staged
_UNSTAGEABLE = ("NullType", "DayTimeIntervalType", "YearMonthIntervalType", "CalendarIntervalType")


def stageable(df: Any) -> bool:
    """Whether Spark can write every column of ``df`` to parquet as it is."""
    def ok(t: Any) -> bool:
        if type(t).__name__ in _UNSTAGEABLE:
            return False
        inner = [f.dataType for f in getattr(t, "fields", [])]
        inner += [x for x in (getattr(t, "elementType", None), getattr(t, "keyType", None),
                              getattr(t, "valueType", None)) if x is not None]
        return all(ok(i) for i in inner)

    return all(ok(f.dataType) for f in df.schema.fields)


def stage(df: Any, location: Location) -> tuple[Any, StagedRows]:
    """Write ``df``'s rows once under the table (unpartitioned, ``df``'s own types); a DataFrame over
    exactly those files (with ``_larder_staged`` set), and the :class:`StagedRows` to release."""
    schema = arrow_schema(df)
    staged = write_files(df, location, schema, ())
    spark_schema = cast_to(df, schema).schema
    rows = StagedRows(staged, spark_schema)
    session = df.sparkSession
    try:
        uris = [spark_uri(location.child(a.path).uri) for a in staged.adds]
        view = (session.read.schema(spark_schema).parquet(*uris) if uris
                else session.createDataFrame([], spark_schema))
    except BaseException:
        remove_staged(staged)
        raise
    view._larder_staged = rows
    return view, rows


def release(rows: StagedRows) -> None:
    """Remove a write's staged files unless a commit took them."""
    if not rows.committed:
        remove_staged(rows.staged)


def _adopt(df: Any, location: Location, schema: pa.Schema, partition_by: Sequence[str]) -> Staged | None:
    """The staged files of ``df`` as this write's files, when they are exactly what :func:`write_files`
    would write: ``df`` is the staged rows (or a cast of them that changed no type), the table is not
    partitioned, and every column already has the table's type. Their statistics are read again for
    ``schema``."""
    rows: StagedRows | None = getattr(df, "_larder_staged", None)
    if rows is None or partition_by or rows.staged.location.uri != location.uri:
        return None
    have = {f.name: f.dataType for f in rows.spark_schema.fields}
    if list(df.columns) != list(have) or any(c not in schema.names for c in have):
        return None
    if any(have[c] != to_spark_type(schema.field(c).type) or df.schema[c].dataType != have[c] for c in have):
        return None
    session = df.sparkSession
    adds = _add_actions(location, rows.staged.prefix, schema, (), session.conf.get("spark.sql.session.timeZone"))
    return Staged(adds=adds, location=location, prefix=rows.staged.prefix, source=rows)


def _committed(staged: Staged) -> None:
    if staged.source is not None:
        staged.source.committed = True


def write_files(df: Any, location: Location, schema: pa.Schema, partition_by: Sequence[str]) -> Staged:
    """Have Spark write ``df`` (cast to ``schema``) as parquet under the table; their add actions.
    Staged rows that are already exactly those files (:func:`_adopt`) are not written again."""
    from pyspark.sql import functions as F

    adopted = _adopt(df, location, schema, partition_by)
    if adopted is not None:
        return adopted
    session = df.sparkSession
    prefix = f"larder-{uuid.uuid4().hex}"
    data = cast_to(df.select(*[F.col(f"`{c}`") for c in df.columns]), schema)
    writer = data.write.mode("errorifexists").options(**WRITE_OPTIONS)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    staged = Staged(adds=[], location=location, prefix=prefix)
    try:
        writer.parquet(spark_uri(location.child(prefix).uri))
        adds = _add_actions(location, prefix, schema, partition_by, session.conf.get("spark.sql.session.timeZone"))
    except BaseException:
        remove_staged(staged)
        raise
    return Staged(adds=adds, location=location, prefix=prefix)


def _add_actions(location: Location, prefix: str, schema: pa.Schema, partition_by: Sequence[str],
                 session_tz: str) -> list[AddAction]:
    fs = location.filesystem()  # paths relative to the table, with the table's storage options
    infos = [i for i in fs.get_file_info(pafs.FileSelector(prefix, recursive=True))
             if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
             and not i.base_name.startswith((".", "_"))]
    infos.sort(key=lambda i: i.path)
    types = {f.name: f.type for f in schema}
    now = int(time.time() * 1000)
    adds = []
    for info in infos:
        with fs.open_input_file(info.path) as fh:
            meta = pq.read_metadata(fh)
        if meta.num_rows == 0:
            fs.delete_file(info.path)
            continue
        inner = posixpath.relpath(info.path, prefix)
        parts = _partition_values(inner, partition_by, types, session_tz) if partition_by else {}
        adds.append(AddAction(path=info.path, size=info.size, partition_values=parts, modification_time=now,
                              data_change=True, stats=json.dumps(file_stats(meta, schema))))
    if location.is_local:  # Hadoop's checksum files beside the local ones
        for info in fs.get_file_info(pafs.FileSelector(prefix, recursive=True)):
            if info.type == pafs.FileType.File and info.base_name.endswith(".crc"):
                fs.delete_file(info.path)
    return adds


def remove_staged(staged: Staged) -> None:
    """Delete a failed attempt's files (best effort: they are not in the log, so no reader sees them).
    Staged rows committed as they are (``staged.source``) are left to :func:`release`: a retried
    attempt commits them again."""
    if staged.source is not None:
        return
    try:
        fs = staged.location.filesystem()
        infos = fs.get_file_info(pafs.FileSelector(staged.prefix, recursive=True, allow_not_found=True))
        for info in infos:
            if info.type == pafs.FileType.File:
                fs.delete_file(info.path)
        if staged.location.is_local:
            fs.delete_dir(staged.prefix)
    except (OSError, pa.ArrowException):
        pass


def _settle(staged: Staged, commit: delta.Commit | None, since: int) -> int | None:
    """After a commit attempt raised: the version at which it is in the log after all (its
    acknowledgement was lost), its files kept; otherwise None, the attempt's files deleted when the log
    proves it did not land, and left in place when that cannot be told."""
    try:
        table = delta.open_table(staged.location)
    except TableNotFoundError:
        if since < 0:  # a create that left no log: nothing committed
            remove_staged(staged)
        return None
    except (DeltaError, ValueError, OSError):
        return None  # unknown: leave the files rather than risk deleting committed ones
    try:
        newest = int(table.version())
        if newest <= since:  # nothing committed after the version the attempt read
            remove_staged(staged)
            return None
        if commit is None:
            return None  # newer commits, and no write id to tell whether one of them is this attempt
        landed = delta.find_write(staged.location, commit.write_id, since=since, limit=newest - since,
                                  table=table)
    except (DeltaError, ValueError, OSError):
        return None
    if landed is None:
        remove_staged(staged)
        return None
    _committed(staged)
    return landed


def _commit(staged: Staged, commit: delta.Commit | None, since: int, run: Callable[[], Any]) -> int | None:
    """``run()`` the commit of ``staged``; None when it committed (the caller knows the version), else
    the version :func:`_settle` found it at after it raised. Re-raises when it did not land."""
    try:
        run()
    except BaseException:
        landed = _settle(staged, commit, since)
        if landed is not None:
            return landed
        raise
    _committed(staged)
    return None


def _actions(staged: Staged, removes: Sequence[RemoveAction] = ()) -> list[AddAction | RemoveAction]:
    return [*staged.adds, *removes]


def _props(commit: delta.Commit | None, metrics: dict[str, Any]) -> CommitProperties:
    """One attempt, no automatic rebase onto a concurrent commit (see the module docstring)."""
    meta: dict[str, Any] = {"operationMetrics": metrics}
    if commit is not None:
        meta[delta.WRITE_ID_KEY] = commit.write_id
    return CommitProperties(custom_metadata=meta, max_commit_retries=0)


def _removes(snapshot: delta.Snapshot, paths: set[str] | None) -> list[RemoveAction]:
    """Remove actions for the snapshot's files whose log path is in ``paths`` (all when ``None``)."""
    actions = pa.table(snapshot.table.get_add_actions(flatten=True))
    parts = snapshot.partition_columns
    now = int(time.time() * 1000)
    out = []
    for row in actions.select(["path", "size_bytes", *[f"partition.{p}" for p in parts]]).to_pylist():
        if paths is not None and row["path"] not in paths:
            continue
        values = {p: _pv_string(row[f"partition.{p}"]) for p in parts}
        out.append(RemoveAction(path=unquote(row["path"]), data_change=True, deletion_timestamp=now,
                                size=row["size_bytes"], partition_values=values))
    return out


def _pv_string(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        v = v if v.tzinfo else v.replace(tzinfo=UTC)
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _delta_errors(what: str, name: str) -> Callable[[Callable[[], T]], T]:
    def run(op: Callable[[], T]) -> T:
        try:
            return op()
        except WriteConflictError:
            raise
        except (DeltaError, ValueError, OSError) as exc:
            if isinstance(exc, CommitFailedError):  # pragma: no cover - handled by the retry
                raise
            raise TableError(f"{what} feature table {name!r} failed (nothing was written): {error_text(exc)}") from exc
    return run


def create(df: Any, location: Location, *, schema: pa.Schema, partition_by: Sequence[str], name: str,
           description: str | None, commit: delta.Commit | None = None) -> int:
    """A new Delta table at ``location`` holding ``df``'s rows as version 0."""
    def op() -> int:
        staged = write_files(df, location, schema, partition_by)
        landed = _commit(staged, commit, -1, lambda: create_table_with_add_actions(
            location.uri, DeltaSchema.from_arrow(schema), staged.adds, mode="error",
            partition_by=list(partition_by) or None, name=name, description=description,
            storage_options=location.storage_options,
            commit_properties=_props(commit, {"num_added_files": len(staged.adds), "num_added_rows": staged.rows})))
        if landed not in (None, 0):  # pragma: no cover - a create lands as version 0
            raise AssertionError(f"create of {name!r} landed at version {landed}")
        if commit is not None:
            commit.attempts = 1
        return 0

    return _delta_errors("Creating", name)(op)


def overwrite(df: Any, location: Location, *, schema_of: Callable[[delta.Snapshot], pa.Schema],
              partition_by: Sequence[str], name: str, commit: delta.Commit | None = None) -> int:
    """Replace the table's rows with ``df``'s in one commit (schema: ``schema_of(current snapshot)``)."""
    def op() -> int:
        snap = delta.load(location, name=name)
        schema = schema_of(snap)
        staged = write_files(df, location, schema, partition_by)
        landed = _commit(staged, commit, snap.version, lambda: snap.table.create_write_transaction(
            _actions(staged), mode="overwrite", schema=DeltaSchema.from_arrow(schema),
            partition_by=list(partition_by) or None,
            commit_properties=_props(commit, {"num_added_files": len(staged.adds), "num_added_rows": staged.rows})))
        return snap.version + 1 if landed is None else landed

    return _delta_errors("Overwrite of", name)(lambda: delta._retry(op, name=name, commit=commit))


def merge(df: Any, location: Location, *, keys: Sequence[str], schema_of: Callable[[delta.Snapshot], pa.Schema],
          name: str, first: delta.Snapshot | None = None, commit: delta.Commit | None = None) -> int:
    """Upsert ``df`` on ``keys`` (see the module docstring); returns the new version."""
    from pyspark.sql import functions as F

    given = [first] if first is not None else []
    session = df.sparkSession

    def op() -> int:
        snap = given.pop() if given else delta.load(location, name=name)
        schema = schema_of(snap)
        parts = snap.partition_columns
        evolves = [f for f in schema if f.name not in snap.schema.names]
        new_keys = df.select(*[F.col(f"`{k}`") for k in keys])
        if evolves:
            affected: set[str] | None = None  # every file: the rewrite records the new schema
            current = read(session, snap, name=name) if _partition_groups(snap) else None
        else:
            affected = _affected_files(session, snap, new_keys, keys, name)
            current = _read_files(session, snap, affected, name) if affected else None
        if current is None:  # only new keys: the rows as they are (staged rows are committed unwritten)
            staged = write_files(df, location, schema, parts)
        else:
            missing = [c for c in current.columns if c not in df.columns]
            keep = current.join(new_keys, on=list(keys), how="left_anti")
            updates = df.join(current.select(*keys, *missing), on=list(keys), how="left") if missing else df
            out = keep.unionByName(updates, allowMissingColumns=True)
            staged = write_files(out.select(*[F.col(f"`{c}`") for c in schema.names if c in out.columns]),
                                 location, schema, parts)
        metrics = {"num_added_files": len(staged.adds), "num_removed_files": 0, "num_output_rows": staged.rows}

        def run() -> None:
            if affected is None:
                snap.table.create_write_transaction(
                    _actions(staged), mode="overwrite", schema=DeltaSchema.from_arrow(schema),
                    partition_by=parts or None, commit_properties=_props(commit, metrics))
            else:
                removes = _removes(snap, affected)
                metrics["num_removed_files"] = len(removes)
                snap.table.create_write_transaction(
                    _actions(staged, removes), mode="append", schema=DeltaSchema.from_arrow(schema),
                    partition_by=parts or None, commit_properties=_props(commit, metrics))

        landed = _commit(staged, commit, snap.version, run)
        return snap.version + 1 if landed is None else landed

    return _delta_errors("Merge into", name)(lambda: delta._retry(op, name=name, commit=commit))


def candidate_files(snap: delta.Snapshot, new_keys: Any, keys: Sequence[str]) -> set[str] | None:
    """Log paths of the files whose key statistics admit one of ``new_keys``' keys, or None when any
    file may (the key is not one integer column, or its statistics are not recorded).

    A file whose ``[min, max]`` of the key misses the incoming keys' ``[min, max]`` holds none of
    them: the pass that finds the files a merge rewrites then reads only the others (incoming keys
    that cluster, such as new and recent ids, touch few files of a large table)."""
    from pyspark.sql import functions as F

    if len(keys) != 1 or not pa.types.is_integer(snap.schema.field(keys[0]).type):
        return None  # Delta's string statistics may be truncated, its timestamps rounded to milliseconds
    key = keys[0]
    actions = pa.table(snap.table.get_add_actions(flatten=True))
    if f"min.{key}" not in actions.column_names or f"max.{key}" not in actions.column_names:
        return None
    lo, hi = new_keys.agg(F.min(F.col(f"`{key}`")), F.max(F.col(f"`{key}`"))).first()
    if lo is None:
        return set()  # no incoming row
    paths = actions.column("path").to_pylist()
    mins, maxs = actions.column(f"min.{key}").to_pylist(), actions.column(f"max.{key}").to_pylist()
    return {p for p, a, b in zip(paths, mins, maxs, strict=True) if a is None or b is None or (a <= hi and b >= lo)}


def _affected_files(session: Any, snap: delta.Snapshot, new_keys: Any, keys: Sequence[str], name: str) -> set[str]:
    """Log paths of the snapshot's files holding one of ``new_keys``' keys."""

    if not _partition_groups(snap):
        return set()
    candidates = candidate_files(snap, new_keys, keys)
    if candidates is not None and not candidates:
        return set()
    scanned = snap if candidates is None else _Restricted(snap, candidates)
    target = read(session, scanned, keys, name=name, file_column="__larder_file")  # type: ignore[arg-type]
    hits = target.join(new_keys, on=list(keys), how="left_semi").select("__larder_file").distinct().collect()
    touched = {_local_path(r[0]) for r in hits}
    if not touched:
        return set()
    actions = pa.table(snap.table.get_add_actions(flatten=True)).column("path").to_pylist()
    root = table_root(snap.table)
    by_location = {_raw_path(_file_uri(root, p)): p for p in actions}
    found = {by_location[t] for t in touched if t in by_location}
    if len(found) != len(touched):
        raise TableError(f"Merge into feature table {name!r}: Spark read file(s) {sorted(touched - set(by_location))} "
                         "that are not in the table's log; nothing was written.")
    return found


def _read_files(session: Any, snap: delta.Snapshot, paths: set[str], name: str) -> Any:
    """The rows of the snapshot's files in ``paths`` only (a snapshot restricted to them)."""
    return read(session, _Restricted(snap, paths), name=name)  # type: ignore[arg-type]


class _Restricted:
    """A snapshot seen through a subset of its files (for reading only the files a merge rewrites)."""

    def __init__(self, snap: delta.Snapshot, paths: set[str]) -> None:
        self._snap = snap
        self._paths = paths
        self.schema = snap.schema
        self.partition_columns = snap.partition_columns
        self.table = _RestrictedTable(snap.table, paths)


class _RestrictedTable:
    def __init__(self, table: DeltaTable, paths: set[str]) -> None:
        self._t = table
        self._paths = paths
        self.table_uri = table.table_uri

    def metadata(self) -> Any:
        return self._t.metadata()

    def protocol(self) -> Any:
        return self._t.protocol()

    def get_add_actions(self, flatten: bool = False) -> Any:
        import pyarrow.compute as pc

        actions = pa.table(self._t.get_add_actions(flatten=flatten))
        return actions.filter(pc.is_in(actions.column("path"), pa.array(sorted(self._paths))))


__all__ = ["StagedRows", "create", "file_stats", "merge", "overwrite", "read", "release", "spark_uri", "stage",
           "stageable", "write_files"]
