"""Types between Spark and Arrow, and the normalisation of a Spark DataFrame about to be written.

larder's storage types are Arrow's (the Delta schema, as delta-rs reads it); Spark has its own. The
mapping is the obvious one (``long`` = ``int64``, ``double`` = ``float64``, ``timestamp`` =
``timestamp[us, UTC]``, ...) with three rules of larder's own:

* A Spark ``timestamp_ntz`` (a naive timestamp) means UTC, as a naive pandas timestamp does
  (:mod:`larder.offline.frames`): it is stored as the ``timestamp`` with the same wall-clock value in UTC.
* Arrow's unsigned integers have no Spark type: they travel as the next wider signed type (``uint64``
  as ``decimal(20, 0)``), and come back to their Arrow type where larder knows it (the Delta schema).
* Spark ``void`` (the type of ``lit(None)``) is ``null``: allowed where the table already has the column.

:func:`normalise` and :func:`conform` apply :mod:`larder.offline.frames`' rules to a Spark DataFrame:
the same widening casts (decided by the same :func:`larder.offline.frames._can_widen` on the Arrow
types), done as Spark casts, so nothing is collected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from larder.errors import SchemaMismatchError
from larder.offline.frames import UTC_US, _can_widen


def _types() -> Any:
    from pyspark.sql import types as T

    return T


def to_spark_type(t: pa.DataType) -> Any:
    """The Spark type that holds Arrow type ``t`` (see the module docstring for unsigned integers)."""
    T = _types()
    if pa.types.is_dictionary(t):
        return to_spark_type(t.value_type)
    simple = {
        pa.bool_(): T.BooleanType(), pa.int8(): T.ByteType(), pa.int16(): T.ShortType(),
        pa.int32(): T.IntegerType(), pa.int64(): T.LongType(), pa.uint8(): T.ShortType(),
        pa.uint16(): T.IntegerType(), pa.uint32(): T.LongType(), pa.uint64(): T.DecimalType(20, 0),
        pa.float16(): T.FloatType(), pa.float32(): T.FloatType(), pa.float64(): T.DoubleType(),
        pa.date32(): T.DateType(), pa.date64(): T.DateType(), pa.null(): T.NullType(),
    }
    if t in simple:
        return simple[t]
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return T.StringType()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t) \
            or pa.types.is_fixed_size_binary(t):
        return T.BinaryType()
    if pa.types.is_timestamp(t):
        return T.TimestampType() if t.tz is not None else T.TimestampNTZType()
    if pa.types.is_decimal(t):
        return T.DecimalType(t.precision, t.scale)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return T.ArrayType(to_spark_type(t.value_type), True)
    if pa.types.is_struct(t):
        return T.StructType([T.StructField(f.name, to_spark_type(f.type), True) for f in t])
    if pa.types.is_map(t):
        return T.MapType(to_spark_type(t.key_type), to_spark_type(t.item_type), True)
    if pa.types.is_duration(t):
        return T.DayTimeIntervalType()
    raise SchemaMismatchError(f"Arrow type {t} has no Spark equivalent; cast the column to a simpler type.")


def to_spark_schema(schema: pa.Schema) -> Any:
    T = _types()
    return T.StructType([T.StructField(f.name, to_spark_type(f.type), True) for f in schema])


def to_arrow_type(t: Any) -> pa.DataType:
    """The Arrow type larder stores for Spark type ``t`` (``timestamp`` and ``timestamp_ntz``: UTC)."""
    T = _types()
    simple = {
        T.BooleanType: pa.bool_(), T.ByteType: pa.int8(), T.ShortType: pa.int16(), T.IntegerType: pa.int32(),
        T.LongType: pa.int64(), T.FloatType: pa.float32(), T.DoubleType: pa.float64(), T.StringType: pa.string(),
        T.BinaryType: pa.binary(), T.DateType: pa.date32(), T.TimestampType: UTC_US,
        T.TimestampNTZType: UTC_US, T.NullType: pa.null(), T.DayTimeIntervalType: pa.duration("us"),
    }
    for cls, arrow in simple.items():
        if isinstance(t, cls):
            return arrow
    if isinstance(t, T.CharType | T.VarcharType):
        return pa.string()
    if isinstance(t, T.DecimalType):
        return pa.decimal128(t.precision, t.scale)
    if isinstance(t, T.ArrayType):
        return pa.list_(to_arrow_type(t.elementType))
    if isinstance(t, T.StructType):
        return pa.struct([pa.field(f.name, to_arrow_type(f.dataType)) for f in t.fields])
    if isinstance(t, T.MapType):
        return pa.map_(to_arrow_type(t.keyType), to_arrow_type(t.valueType))
    raise SchemaMismatchError(f"Spark type {t.simpleString()} cannot be stored in a feature table; cast it "
                              "to a number, string, boolean, date, timestamp, decimal, array, struct or map.")


def arrow_schema(df: Any, *, table: str = "<input>") -> pa.Schema:
    """The Arrow schema larder stores for Spark DataFrame ``df``'s columns."""
    fields = []
    for f in df.schema.fields:
        try:
            fields.append(pa.field(f.name, to_arrow_type(f.dataType)))
        except SchemaMismatchError as exc:
            raise SchemaMismatchError(f"Table {table!r}: column {f.name!r}: {exc}") from None
    return pa.schema(fields)


def _utc_column(df: Any, name: str) -> Any:
    """``timestamp_ntz`` column ``name`` as the ``timestamp`` with the same wall-clock value in UTC."""
    from pyspark.sql import functions as F

    tz = df.sparkSession.conf.get("spark.sql.session.timeZone")
    # cast(ntz as timestamp) reads the wall clock in the session zone; to_utc_timestamp renders that instant
    # back to the same wall clock and reads it as UTC
    return F.to_utc_timestamp(F.col(f"`{name}`").cast("timestamp"), tz)


def normalise(df: Any, *, table: str = "<input>") -> Any:
    """``df`` with :mod:`larder.offline.frames`' rules applied: naive timestamps become UTC timestamps,
    char/varchar become string; duplicate column names are refused."""
    from pyspark.sql import functions as F

    T = _types()
    names = [f.name for f in df.schema.fields]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SchemaMismatchError(f"Table {table!r}: the DataFrame has duplicate column names {dupes}.")
    arrow_schema(df, table=table)  # every type has a storage type
    cols, changed = [], False
    for f in df.schema.fields:
        if isinstance(f.dataType, T.TimestampNTZType):
            cols.append(_utc_column(df, f.name).alias(f.name))
            changed = True
        elif isinstance(f.dataType, T.CharType | T.VarcharType):
            cols.append(F.col(f"`{f.name}`").cast("string").alias(f.name))
            changed = True
        else:
            cols.append(F.col(f"`{f.name}`"))
    return df.select(*cols) if changed else df


def cast_to(df: Any, schema: pa.Schema) -> Any:
    """``df``'s columns cast to ``schema``'s Spark types (columns ``schema`` lacks are kept as they are)."""
    from pyspark.sql import functions as F

    out = []
    for f in df.schema.fields:
        idx = schema.get_field_index(f.name)
        if idx < 0:
            out.append(F.col(f"`{f.name}`"))
            continue
        want = to_spark_type(schema.field(idx).type)
        col = F.col(f"`{f.name}`")
        out.append(col if f.dataType == want else col.cast(want).alias(f.name))
    return df.select(*out)


def conform(df: Any, schema: pa.Schema, *, table: str) -> tuple[Any, list[pa.Field]]:
    """Spark's counterpart of :func:`larder.offline.frames.conform`: the same decisions (lossless
    widening only, a new all-null column refused), taken on the Arrow types, applied as Spark casts."""
    have = arrow_schema(df, table=table)
    new_fields: list[pa.Field] = []
    for f in have:
        idx = schema.get_field_index(f.name)
        if idx < 0:
            if pa.types.is_null(f.type):
                raise SchemaMismatchError(
                    f"Table {table!r}: new column {f.name!r} has only nulls, so its type is unknown. "
                    "Give it a type (for example `F.lit(None).cast('double')`) before writing."
                )
            new_fields.append(f)
            continue
        want = schema.field(idx).type
        if f.type != want and not _can_widen(f.type, want):
            raise SchemaMismatchError(
                f"Table {table!r}: column {f.name!r} has type {f.type} but the table stores {want}. "
                f"Cast the column to {to_spark_type(want).simpleString()} before writing, or write it under "
                "a new column name."
            )
    return cast_to(df, schema), new_fields


def _floor_us(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps of any unit as ``timestamp[us]`` (zone-aware ones in UTC), nanoseconds floored to the
    microsecond as the point-in-time join compares them (``docs/point-in-time.md``)."""
    t = col.type
    tz = None if t.tz is None else "UTC"
    if t.unit != "ns":
        return col.cast(pa.timestamp(t.unit, tz=tz)).cast(pa.timestamp("us", tz=tz))
    chunks = []
    for chunk in col.chunks:
        ints = chunk.cast(pa.int64())
        values = np.floor_divide(ints.fill_null(0).to_numpy(zero_copy_only=False), 1000)
        chunks.append(pa.array(values, pa.int64(), mask=ints.is_null().to_numpy(zero_copy_only=False))
                      .cast(pa.timestamp("us", tz=tz)))
    return pa.chunked_array(chunks, pa.timestamp("us", tz=tz))


def arrow_to_spark(session: Any, data: pa.Table) -> Any:
    """A Spark DataFrame of Arrow table ``data`` (unsigned integers widened, dictionaries decoded)."""
    cols, changed = [], False
    for col in data.columns:
        t = col.type
        if pa.types.is_dictionary(t):
            col, changed = col.cast(t.value_type), True
            t = col.type
        if pa.types.is_unsigned_integer(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t) \
                or pa.types.is_large_binary(t) or pa.types.is_date64(t) or pa.types.is_float16(t):
            target = {pa.uint8(): pa.int16(), pa.uint16(): pa.int32(), pa.uint32(): pa.int64(),
                      pa.uint64(): pa.decimal128(20, 0), pa.date64(): pa.date32(), pa.float16(): pa.float32()}
            col = col.cast(target.get(t, pa.binary() if pa.types.is_large_binary(t) else pa.string()))
            changed = True
        elif pa.types.is_timestamp(t) and (t.unit != "us" or t.tz not in (None, "UTC")):
            col, changed = _floor_us(col), True
        cols.append(col)
    table = pa.Table.from_arrays(cols, names=data.column_names) if changed else data
    return session.createDataFrame(table.replace_schema_metadata(None), schema=to_spark_schema(table.schema))


__all__ = ["arrow_schema", "arrow_to_spark", "cast_to", "conform", "normalise", "to_arrow_type", "to_spark_schema",
           "to_spark_type"]
