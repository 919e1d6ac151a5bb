"""Turning user input (pandas, pyarrow, polars) into normalised Arrow tables.

Normalisation rules, applied to every frame larder ingests:

* Timestamps are stored as ``timestamp[us, tz=UTC]``. **A naive timestamp means UTC.** A zone-aware
  timestamp is converted to UTC. Nanosecond values are truncated to microseconds only when they carry
  no sub-microsecond part; otherwise the write is refused (no silent loss of precision).
* ``large_string`` / ``string_view`` become ``string``; ``large_binary`` becomes ``binary``.
* A pandas index is never written (call ``reset_index()`` first if it holds data).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from larder.errors import (
    EmptyDataFrameError,
    PrimaryKeyError,
    SchemaMismatchError,
    TableError,
    TimestampKeyError,
)

UTC_US = pa.timestamp("us", tz="UTC")


def column_names(df: Any) -> list[Any] | None:
    """The column names of a pandas, pyarrow, polars or Spark frame as given (before any conversion),
    or None for another kind of object."""
    if isinstance(df, (pa.Table, pa.RecordBatch)):
        return list(df.schema.names)
    columns = getattr(df, "columns", None)
    if columns is None or isinstance(columns, str):
        return None
    try:
        return list(columns)
    except TypeError:
        return None


def to_arrow(df: Any, *, table: str = "<input>") -> pa.Table:
    """Convert a pandas DataFrame, pyarrow Table/RecordBatch or polars DataFrame to a pa.Table."""
    if isinstance(df, pa.Table):
        out = df
    elif isinstance(df, pa.RecordBatch):
        out = pa.Table.from_batches([df])
    elif type(df).__module__.startswith("polars"):
        out = df.to_arrow()
    elif type(df).__module__.startswith("pyspark"):
        out = pa.Table.from_pandas(df.toPandas(), preserve_index=False)
    else:
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise TableError(
                f"Table {table!r}: expected a pandas DataFrame, pyarrow Table or polars DataFrame, "
                f"got {type(df).__name__}."
            )
        dupes = df.columns[df.columns.duplicated()].tolist()
        if dupes:
            raise SchemaMismatchError(f"Table {table!r}: the DataFrame has duplicate column names {dupes}.")
        try:
            with warnings.catch_warnings():
                # pyarrow reads zone-aware columns through Series.values, which pandas 3.1 deprecates;
                # the values it gets are the UTC instants, which is what larder stores.
                warnings.filterwarnings("ignore", message="Series.values returning an ndarray that drops")
                out = pa.Table.from_pandas(df, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            culprit = _unconvertible_column(df)
            where = f"column {culprit!r}" if culprit is not None else "a column"
            raise SchemaMismatchError(
                f"Table {table!r}: cannot convert {where} of the DataFrame to Arrow ({exc}). Give each "
                "column one type (not numbers mixed with strings), with integers within the signed "
                "64-bit range (store larger ones as strings or decimals)."
            ) from exc
    names = out.schema.names
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise SchemaMismatchError(f"Table {table!r}: the data has duplicate column names {dupes}.")
    return normalise(out.replace_schema_metadata(None), table=table)


def _unconvertible_column(df: Any) -> Any:
    """The first column of a pandas DataFrame that Arrow cannot convert on its own, or None."""
    for name in df.columns:
        try:
            pa.Array.from_pandas(df[name])
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return name
    return None


#: Unsigned integers are stored in the next wider signed type (Delta Lake has no unsigned types, and
#: delta-rs would cast a uint8 200 into an int8); uint64 goes to int64 when its values fit.
_UNSIGNED = {pa.uint8(): pa.int16(), pa.uint16(): pa.int32(), pa.uint32(): pa.int64(), pa.uint64(): pa.int64()}


def _normalise_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(t):
        return UTC_US
    if t in _UNSIGNED:
        return _UNSIGNED[t]
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_dictionary(t):
        return _normalise_type(t.value_type)
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        return pa.list_(_normalise_type(t.value_type))
    return t


def normalise_column(col: pa.ChunkedArray, *, table: str, name: str) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            col = col.cast(pa.timestamp(t.unit, tz="UTC"))
        elif t.tz not in ("UTC", "utc", "+00:00", "Etc/UTC"):
            col = col.cast(pa.timestamp(t.unit, tz="UTC"))
        if t.unit == "ns":
            as_int = pc.cast(col, pa.int64())
            if pc.any(pc.not_equal(pc.cast(pc.multiply(pc.divide(as_int, 1000), 1000), pa.int64()), as_int)).as_py():
                raise SchemaMismatchError(
                    f"Table {table!r}: column {name!r} has timestamps with sub-microsecond precision; larder "
                    "stores microseconds. Round them first, e.g. `df[col] = df[col].dt.floor('us')`."
                )
        return col.cast(UTC_US)
    target = _normalise_type(t)
    if target != t:
        if t == pa.uint64() and (pc.max(col).as_py() or 0) > 2**63 - 1:
            raise SchemaMismatchError(
                f"Table {table!r}: column {name!r} (uint64) holds {pc.max(col).as_py()}, beyond the signed 64-bit "
                "range Delta Lake stores. Store it as a string or a decimal."
            )
        return col.cast(target)
    return col


def _delta_type_problem(t: pa.DataType) -> str | None:
    """Why Delta Lake cannot store Arrow type ``t`` (after normalisation), or None."""
    if (pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_binary(t)
            or pa.types.is_fixed_size_binary(t) or pa.types.is_date32(t) or pa.types.is_timestamp(t)
            or pa.types.is_null(t) or t in (pa.float32(), pa.float64())):
        return None
    if pa.types.is_decimal(t):
        return None if pa.types.is_decimal128(t) else f"{t} (Delta Lake decimals hold at most 38 digits)"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _delta_type_problem(t.value_type)
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            inner = _delta_type_problem(t.field(i).type)
            if inner:
                return inner
        return None
    if pa.types.is_map(t):
        return _delta_type_problem(t.key_type) or _delta_type_problem(t.item_type)
    return str(t)


def check_storable(schema: pa.Schema, *, table: str, columns: list[str] | None = None) -> None:
    """Refuse columns (all, or ``columns``) whose type Delta Lake cannot store, naming the column."""
    for f in schema:
        if columns is not None and f.name not in columns:
            continue
        problem = _delta_type_problem(f.type)
        if problem:
            raise SchemaMismatchError(
                f"Table {table!r}: column {f.name!r} has type {f.type}, which Delta Lake cannot store ({problem}). "
                "Convert it: durations and times of day to integers (for example microseconds), float16 to "
                "float32, wide decimals to strings."
            )


def normalise(tbl: pa.Table, *, table: str = "<input>") -> pa.Table:
    """Apply the normalisation rules of this module to every column."""
    cols = [normalise_column(tbl.column(i), table=table, name=n) for i, n in enumerate(tbl.column_names)]
    return pa.Table.from_arrays(cols, names=tbl.column_names)


def _can_widen(src: pa.DataType, dst: pa.DataType) -> bool:
    """Whether values of ``src`` fit ``dst`` without loss (the only implicit casts larder makes)."""
    if src == dst or pa.types.is_null(src):
        return True
    if pa.types.is_integer(src) and pa.types.is_integer(dst):
        if pa.types.is_signed_integer(src) == pa.types.is_signed_integer(dst):
            return dst.bit_width >= src.bit_width
        return pa.types.is_unsigned_integer(src) and dst.bit_width > src.bit_width
    if pa.types.is_integer(src) and pa.types.is_floating(dst):
        return src.bit_width < dst.bit_width or (src.bit_width <= 32 and dst.bit_width == 64)
    if pa.types.is_floating(src) and pa.types.is_floating(dst):
        return dst.bit_width >= src.bit_width
    if pa.types.is_date(src) and pa.types.is_timestamp(dst):
        return True
    if pa.types.is_list(src) and pa.types.is_list(dst):
        return _can_widen(src.value_type, dst.value_type)
    return False


def conform(tbl: pa.Table, schema: pa.Schema, *, table: str) -> tuple[pa.Table, list[pa.Field]]:
    """Cast ``tbl``'s columns to ``schema``'s types where lossless; return it and its new fields.

    Raises :class:`SchemaMismatchError` naming the column when a type conflicts.
    """
    new_fields: list[pa.Field] = []
    cols = []
    for i, name in enumerate(tbl.column_names):
        col = tbl.column(i)
        idx = schema.get_field_index(name)
        if idx < 0:
            if pa.types.is_null(col.type):
                raise SchemaMismatchError(
                    f"Table {table!r}: new column {name!r} has only nulls, so its type is unknown. "
                    "Give it a typed dtype (for example `df[col].astype('float64')`) before writing."
                )
            new_fields.append(pa.field(name, col.type))
            cols.append(col)
            continue
        want = schema.field(idx).type
        if col.type != want:
            if not _can_widen(col.type, want):
                raise SchemaMismatchError(
                    f"Table {table!r}: column {name!r} has type {col.type} but the table stores {want}. "
                    f"Cast the column to {want} before writing, or write it under a new column name."
                )
            col = col.cast(want)
        cols.append(col)
    return pa.Table.from_arrays(cols, names=tbl.column_names), new_fields


def _sortable_numpy(t: pa.DataType) -> bool:
    """Key types whose numpy values compare exactly like Arrow's group-by keys (no NaN, no strings)."""
    return pa.types.is_integer(t) or pa.types.is_timestamp(t) or pa.types.is_date(t)


def _has_duplicate_keys(data: pa.Table, keys: list[str]) -> bool:
    """Whether two rows of ``data`` (no null keys) share their ``keys`` values.

    Fast path: if one integer, timestamp or date key column is unique on its own, so is the whole key;
    that column is checked by a numpy sort (about 10x faster than a hash group-by for 1M rows).
    Otherwise (or when that column repeats) the general path, an Arrow group-by, decides.
    """
    for k in keys:
        col = data.column(k)
        if not _sortable_numpy(col.type):
            continue
        values = col.to_numpy()
        if values.dtype.kind == "M":
            values = values.view("i8")
        values = np.sort(values)
        if not (values[1:] == values[:-1]).any():
            return False
        if len(keys) == 1:
            return True
    return _has_duplicate_keys_general(data, keys)


def _has_duplicate_keys_general(data: pa.Table, keys: list[str]) -> bool:
    counts = data.select(keys).group_by(keys).aggregate([([], "count_all")])
    return counts.num_rows != data.num_rows


def check_key_type(table: str, column: str, t: pa.DataType, *, partition: bool) -> None:
    """Keys (and partition columns) must be scalars that compare and hash exactly."""
    if (pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_date(t)
            or pa.types.is_timestamp(t) or pa.types.is_boolean(t) or pa.types.is_floating(t)
            or pa.types.is_decimal(t)):
        return
    what = "partition column" if partition else "primary-key column"
    raise PrimaryKeyError(
        f"Table {table!r}: {what} {column!r} has type {t}; keys must be scalars (integers, strings, dates, "
        "timestamps, booleans, decimals or floats). Use another column, or derive a scalar key from this one."
    )


def check_row_schema(schema: pa.Schema, *, table: str, primary_keys: list[str], timestamp_keys: list[str]) -> None:
    """The checks of :func:`check_rows` that need only the schema: keys present, scalar, timestamp keys
    timestamps (shared by every engine)."""
    missing = [k for k in primary_keys if k not in schema.names]
    if missing:
        raise PrimaryKeyError(
            f"Table {table!r} has primary key {primary_keys} but the DataFrame lacks {missing}. "
            f"Add the column(s); the DataFrame has {schema.names}."
        )
    for ts in timestamp_keys:
        t = schema.field(ts).type
        if not pa.types.is_timestamp(t):
            raise TimestampKeyError(
                f"Table {table!r}: timestamp key {ts!r} has type {t}, not a timestamp. Convert it, for "
                f"example `df[{ts!r}] = pd.to_datetime(df[{ts!r}], utc=True)`."
            )
    for k in primary_keys:
        check_key_type(table, k, schema.field(k).type, partition=False)


def nan_key_error(table: str, column: str, where: str) -> PrimaryKeyError:
    """The error for a NaN primary-key value (``where`` says which row)."""
    return PrimaryKeyError(
        f"Table {table!r}: primary-key column {column!r} holds NaN ({where}); NaN equals nothing, so the "
        "row could never be found or updated. Drop or fill those rows, or use an integer or string key."
    )


def check_rows(data: pa.Table, *, table: str, primary_keys: list[str], timestamp_keys: list[str]) -> None:
    """Raise unless ``data`` has rows, holds its primary keys (scalars) without nulls, NaN or
    duplicates, and its timestamp keys are timestamps: the checks every write makes before committing."""
    if data.num_rows == 0:
        raise EmptyDataFrameError(
            f"Table {table!r}: the DataFrame has no rows; there is nothing to write. "
            "Pass schema= to create_table() to create an empty table."
        )
    check_row_schema(data.schema, table=table, primary_keys=primary_keys, timestamp_keys=timestamp_keys)
    for k in primary_keys:
        col = data.column(k)
        if pa.types.is_floating(col.type) and pc.any(pc.is_nan(col)).as_py():
            raise nan_key_error(table, k, f"first: row {pc.index(pc.is_nan(col), True).as_py()}")
        nulls = col.null_count
        if nulls:
            first = pc.index(pc.is_null(data.column(k)), True).as_py()
            raise PrimaryKeyError(
                f"Table {table!r} has primary key {primary_keys} but {nulls} row(s) have a null {k!r} "
                f"(first: row {first}). Drop or fill them before writing."
            )
    if not _has_duplicate_keys(data, primary_keys):
        return
    counts = data.select(primary_keys).group_by(primary_keys).aggregate([([], "count_all")])
    dupes = counts.filter(pc.greater(counts.column("count_all"), 1))
    if dupes.num_rows:
        example = {k: dupes.column(k)[0].as_py() for k in primary_keys}
        raise PrimaryKeyError(
            f"Table {table!r}: {dupes.num_rows} primary-key value(s) occur more than once in this write "
            f"(for example {example}). Each write may hold one row per primary key: deduplicate first, "
            "for example `df.drop_duplicates(subset=primary_keys, keep='last')`."
        )


#: Longest directory name most file systems and object stores accept.
MAX_DIR_NAME = 255


def partition_value_fits(column: str, longest: int) -> bool:
    """Whether every ``column=value`` directory name fits when the longest value has ``longest`` bytes,
    even if every byte were percent-encoded (then no value needs a closer look)."""
    return len(column) + 1 + longest <= MAX_DIR_NAME // 3


def check_partition_value(column: str, value: Any, *, table: str) -> None:
    """Refuse a partition value whose ``column=value`` directory name no file system would accept."""
    from urllib.parse import quote

    if value is None:
        return
    text = value if isinstance(value, str) else bytes(value).hex()
    if len(f"{quote(column, safe='')}={quote(text, safe='')}".encode()) > MAX_DIR_NAME:
        raise SchemaMismatchError(
            f"Table {table!r}: partition column {column!r} holds a value of {len(text)} characters "
            f"({text[:30]!r}...); each partition is a directory named '{column}=<value>', which may have at "
            f"most {MAX_DIR_NAME} bytes. Partition by a shorter column (for example a hash or a prefix of it)."
        )


def check_partition_values(data: pa.Table, parts: list[str], *, table: str) -> None:
    """Refuse partition values whose ``column=value`` directory name no file system would accept."""
    for p in parts:
        col = data.column(p)
        if not (pa.types.is_string(col.type) or pa.types.is_binary(col.type)):
            continue
        if partition_value_fits(p, pc.max(pc.binary_length(col)).as_py() or 0):
            continue
        for value in pc.unique(col).to_pylist():
            check_partition_value(p, value, table=table)
