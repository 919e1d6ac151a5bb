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

import pyarrow as pa
import pyarrow.compute as pc

from larder.errors import SchemaMismatchError, TableError

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
