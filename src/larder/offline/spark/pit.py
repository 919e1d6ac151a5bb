"""Point-in-time joins on Spark: the spine and each source bucketed by key, DuckDB's kernel per bucket.

The semantics are :mod:`larder.offline.pit`'s, row for row (``docs/point-in-time.md``), because they are
computed by the same code: for each source, the spine's rows and the source's rows are hash-partitioned
into buckets on their (canonicalised) keys, and each bucket's pair of Arrow tables goes, on an executor,
through :func:`larder.offline.pit.point_in_time_join` (``cogroup().applyInArrow``). Nothing is collected
to the driver; the result is a Spark DataFrame with exactly the spine's rows, in the spine's order (a
row id taken at the start, sorted on at the end), the spine's columns first, then each source's outputs.

Ties among source rows with the same key and timestamp go, as on DuckDB, to the greatest ``tiebreak``
and then to the row that comes last in the source: the source's rows carry their position
(``monotonically_increasing_id()`` for a Spark DataFrame: its partitions in order, rows in order; the row
number for Arrow data) and each bucket's rows are put in that order before the kernel sees them.

**Skewed keys.** A key whose spine and source rows together exceed ``skew_rows`` would make one bucket
too big for one task. Such keys (found by one aggregation over the key columns) are split into time
slices at approximate quantiles of their times: a spine row goes to the slice of its time, a source row
to the slice of its timestamp, and each slice also receives the source rows of that key with the latest
timestamp before the slice starts (all of them, so ties are still settled by the kernel). The latest row
``<=`` a spine row's time is then always in the spine row's own slice, and so is the row the kernel
would pick among ties: the answer is unchanged. Snapshot sources are not split.

An Arrow spine (what :class:`~larder.offline.spark.SparkEngine` receives from pandas callers and the
contract tests) sends only its row id, keys and times to Spark; the features come back as Arrow, are put
in the spine's order and get the source's Arrow types, so the result equals the DuckDB engine's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa

from larder.errors import FeatureLookupError
from larder.offline import pit as kernel_module
from larder.offline.pit import PitSource
from larder.offline.spark.schema import arrow_schema, arrow_to_spark

RID = "__larder_rid"
POS = "__larder_pos"
BUCKET = "__larder_b"
SLICE = "__larder_s"
#: Rows (spine + source) a bucket should hold; more buckets than the shuffle partitions when needed.
BUCKET_ROWS = 1_000_000
#: A key with more rows than this (spine + source) is split by time (``None``: never split).
SKEW_ROWS: int | None = 2_000_000


@dataclass
class _Source:
    """A source as Spark sees it: its DataFrame, its Arrow schema (what validation and types read),
    and the Arrow types to give its outputs when the result goes back to Arrow."""

    src: PitSource
    df: Any
    schema: pa.Schema
    rows: int | None


def _q(c: str) -> str:
    return f"`{c}`"


def _is_spark(df: Any) -> bool:
    return type(df).__module__.startswith("pyspark.") and hasattr(df, "sparkSession")


def _as_source(session: Any, src: PitSource, i: int) -> _Source:
    where = kernel_module._label(src, i)
    if _is_spark(src.data):
        return _Source(src, src.data, arrow_schema(src.data, table=where), None)
    data = kernel_module._Data(src.data, where)
    table = data.table if data.table is not None else data.dataset.to_table()  # type: ignore[union-attr]
    return _Source(src, table, table.schema, table.num_rows)


class _SchemaOnly:
    """What :func:`larder.offline.pit._check_source` reads of a source: its schema."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema


def _canonical(col: Any, t: pa.DataType) -> Any:
    """A key column as a value that hashes alike on both sides of the join for equal keys."""
    from pyspark.sql import functions as F

    kind = kernel_module._kind(t)
    if kind == "integer":
        return col.cast("bigint")
    if kind in ("floating point", "decimal"):
        as_double = col.cast("double")
        return F.when(as_double == 0, F.lit(0.0)).otherwise(as_double)  # -0.0 equals 0.0
    if kind == "timestamp":
        return _micros(col, t)
    if kind == "date":
        return F.unix_date(col)
    if kind == "null":
        return F.lit(None).cast("string")
    return col


def _micros(col: Any, t: pa.DataType) -> Any:
    """Microseconds since the epoch (UTC) of a timestamp or date column, as the kernel compares them."""
    from pyspark.sql import functions as F

    if pa.types.is_date(t):
        return F.unix_date(col).cast("bigint") * 86_400_000_000
    if pa.types.is_null(t):
        return F.lit(None).cast("bigint")
    return F.unix_micros(col.cast("timestamp"))


def _buckets(session: Any, rows: int | None, bucket_rows: int) -> int:
    shuffle = int(session.conf.get("spark.sql.shuffle.partitions", "200"))
    if rows is None:
        return max(1, shuffle)
    return max(1, shuffle, math.ceil(rows / bucket_rows))


def _out_arrow(spark_type: Any, session_tz: str) -> pa.DataType:
    """The Arrow type Spark expects back from ``applyInArrow`` for ``spark_type``."""
    from pyspark.sql import types as T

    from larder.offline.spark.schema import to_arrow_type

    if isinstance(spark_type, T.TimestampType):
        return pa.timestamp("us", tz=session_tz)
    if isinstance(spark_type, T.TimestampNTZType):
        return pa.timestamp("us")
    if isinstance(spark_type, T.ArrayType):
        return pa.list_(_out_arrow(spark_type.elementType, session_tz))
    if isinstance(spark_type, T.StructType):
        return pa.struct([pa.field(f.name, _out_arrow(f.dataType, session_tz)) for f in spark_type.fields])
    if isinstance(spark_type, T.MapType):
        return pa.map_(_out_arrow(spark_type.keyType, session_tz), _out_arrow(spark_type.valueType, session_tz))
    return to_arrow_type(spark_type)


def _make_kernel(src: PitSource, spine_cols: list[str], out_schema: pa.Schema, ordered: bool) -> Any:
    """The function each bucket runs on an executor: larder's DuckDB point-in-time join."""
    template = replace(src, data=None)  # the closure is shipped to executors: without the driver's data

    def run(spine: pa.Table, source: pa.Table) -> pa.Table:
        from larder.offline.pit import point_in_time_join as kernel

        if spine.num_rows == 0:
            return out_schema.empty_table()
        if ordered and source.num_rows > 1:
            source = source.sort_by(POS)
        joined = kernel(spine.select(spine_cols), [replace(template, data=source)])
        return joined.select(out_schema.names).cast(out_schema)

    return run


def point_in_time_join(session: Any, spine: Any, sources: Sequence[PitSource], *, bucket_rows: int = BUCKET_ROWS,
                       skew_rows: int | None = SKEW_ROWS) -> Any:
    """:func:`larder.offline.pit.point_in_time_join` on Spark (see the module docstring).

    ``spine`` is a Spark DataFrame (the result is one) or a pyarrow Table (the result is one, equal to
    the DuckDB engine's). ``sources``' data may be Spark DataFrames or anything
    :class:`~larder.offline.pit.PitSource` accepts.
    """
    from pyspark.sql import functions as F

    arrow_in = not _is_spark(spine)
    if arrow_in:
        if isinstance(spine, pa.RecordBatch):
            spine = pa.Table.from_batches([spine])
        if not isinstance(spine, pa.Table):
            raise FeatureLookupError(f"The spine must be a Spark DataFrame or a pyarrow Table, got "
                                     f"{type(spine).__name__}.")
        spine_schema = spine.schema
    else:
        spine_schema = arrow_schema(spine, table="spine")
    prepared = []
    for i, src in enumerate(sources):
        if not isinstance(src, PitSource):
            raise FeatureLookupError(f"sources[{i}] is a {type(src).__name__}, not a PitSource.")
        s = _as_source(session, src, i)
        kernel_module._check_source(spine_schema, src, i, _SchemaOnly(s.schema))  # type: ignore[arg-type]
        prepared.append(s)
    kernel_module._check_outputs(spine_schema, sources)

    if arrow_in:
        needed = list(dict.fromkeys(c for s in sources for c in [
            *s.lookup_keys, *([s.timestamp_lookup_key] if s.timestamp_key else [])]))
        narrow = spine.select(needed).append_column(RID, pa.array(np.arange(spine.num_rows, dtype=np.int64)))
        current = arrow_to_spark(session, narrow)
        spine_rows: int | None = spine.num_rows
    else:
        current = spine.withColumn(RID, F.monotonically_increasing_id())
        spine_rows = None
    session_tz = session.conf.get("spark.sql.session.timeZone")
    for s in prepared:
        current = _join_one(session, current, spine_schema, spine_rows, s, session_tz, bucket_rows, skew_rows)
    outputs = [c for s in sources for c in [*s.output_names, *([s.indicator] if s.indicator else [])]]
    if not arrow_in:
        original = [c for c in spine.columns]
        return current.orderBy(RID).select(*[_q(c) for c in [*original, *outputs]])
    got = current.select(RID, *[_q(c) for c in outputs]).toArrow()
    got = got.sort_by(RID)
    if got.num_rows != spine.num_rows:  # pragma: no cover - the kernel returns every spine row
        raise FeatureLookupError(f"The Spark point-in-time join returned {got.num_rows} rows for a spine of "
                                 f"{spine.num_rows}.")
    out = spine
    for s in prepared:
        for feature, name in zip(s.src.features, s.src.output_names, strict=True):
            out = out.append_column(name, _restore(got.column(name), s.schema.field(feature).type))
        if s.src.indicator is not None:
            hit = got.column(s.src.indicator).cast(pa.bool_())
            out = out.append_column(pa.field(s.src.indicator, pa.bool_(), nullable=False), hit)
    return out


def _restore(col: pa.ChunkedArray, want: pa.DataType) -> pa.ChunkedArray:
    """A feature column back in its source's Arrow type (Spark has no unsigned, dictionary, ... types)."""
    if col.type == want:
        return col
    try:
        if pa.types.is_dictionary(want):
            return col.cast(want.value_type).dictionary_encode().cast(want)
        return col.cast(want)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # pragma: no cover - kept as Spark gave it
        return col


def _join_one(session: Any, spine: Any, spine_schema: pa.Schema, spine_rows: int | None, s: _Source,
              session_tz: str, bucket_rows: int, skew_rows: int | None) -> Any:
    """``spine`` (a Spark DataFrame with the row id) with source ``s``'s outputs appended."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    src = s.src
    ordered = not src.assume_unique
    cols = list(dict.fromkeys([*src.keys, *([src.timestamp_key] if src.timestamp_key else []),
                               *([src.tiebreak] if src.tiebreak else []), *src.features]))
    if _is_spark(s.df):
        source = s.df.select(*[_q(c) for c in cols])
        if ordered:
            source = source.withColumn(POS, F.monotonically_increasing_id())
    else:
        table = s.df.select(cols)
        if ordered:
            table = table.append_column(POS, pa.array(np.arange(table.num_rows, dtype=np.int64)))
        source = arrow_to_spark(session, table)
    known = None if spine_rows is None or s.rows is None else spine_rows + s.rows
    n_buckets = _buckets(session, known, bucket_rows)
    spine_canon = [_canonical(F.col(_q(lk)), spine_schema.field(lk).type) for lk in src.lookup_keys]
    src_canon = [_canonical(F.col(_q(k)), s.schema.field(k).type) for k in src.keys]
    spine = spine.withColumn(SLICE, F.lit(0))
    source = source.withColumn(SLICE, F.lit(0))
    if src.timestamp_key is not None and skew_rows is not None:
        split = _split_hot_keys(spine, source, spine_canon, src_canon,
                                _micros(F.col(_q(src.timestamp_lookup_key)), spine_schema.field(src.timestamp_lookup_key).type),  # type: ignore[arg-type]
                                _micros(F.col(_q(src.timestamp_key)), s.schema.field(src.timestamp_key).type),
                                skew_rows)
        if split is not None:
            spine, source = split
    spine = spine.withColumn(BUCKET, F.pmod(F.hash(*spine_canon, F.col(SLICE)), F.lit(n_buckets)))
    source = source.withColumn(BUCKET, F.pmod(F.hash(*src_canon, F.col(SLICE)), F.lit(n_buckets)))

    spine_fields = [f for f in spine.schema.fields if f.name not in (BUCKET, SLICE)]
    src_types = {f.name: f.dataType for f in source.schema.fields}
    out_fields = [*spine_fields,
                  *[T.StructField(o, src_types[f], True) for f, o in zip(src.features, src.output_names, strict=True)],
                  *([T.StructField(src.indicator, T.BooleanType(), False)] if src.indicator else [])]
    out_spark = T.StructType(out_fields)
    out_arrow = pa.schema([pa.field(f.name, _out_arrow(f.dataType, session_tz)) for f in out_fields])
    run = _make_kernel(src, [f.name for f in spine_fields], out_arrow, ordered)
    return spine.groupBy(BUCKET).cogroup(source.groupBy(BUCKET)).applyInArrow(run, out_spark)


def _split_hot_keys(spine: Any, source: Any, spine_canon: list[Any], src_canon: list[Any], spine_us: Any,
                    src_us: Any, skew_rows: int) -> tuple[Any, Any] | None:
    """Spine and source with a time-slice number for the rows of hot keys, and the carried-in source
    rows added to each slice (see the module docstring); ``None`` when no key is hot."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    names = [f"__larder_k{j}" for j in range(len(src_canon))]
    keyed_spine = spine.select(*[c.alias(n) for c, n in zip(spine_canon, names, strict=True)], spine_us.alias("__larder_t"))
    keyed_src = source.select(*[c.alias(n) for c, n in zip(src_canon, names, strict=True)], src_us.alias("__larder_t"))
    both = keyed_spine.unionByName(keyed_src).where(F.col("__larder_t").isNotNull())
    for n in names:
        both = both.where(F.col(n).isNotNull())
    counts = both.groupBy(*names).count().where(F.col("count") > skew_rows)
    hot = counts.collect()
    if not hot:
        return None
    slices = max(2, math.ceil(max(r["count"] for r in hot) / skew_rows))
    fractions = [j / slices for j in range(1, slices)]
    hot_df = spine.sparkSession.createDataFrame([tuple(r[n] for n in names) for r in hot],
                                                schema=both.select(*names).schema)
    found = (both.join(F.broadcast(hot_df), on=names, how="left_semi").groupBy(*names)
             .agg(F.percentile_approx("__larder_t", fractions, 10_000).alias("__larder_bounds")))
    # hot keys x slices values: small, and computed once rather than once per use below
    bounds = F.broadcast(spine.sparkSession.createDataFrame(found.collect(), schema=found.schema))

    def with_slice(df: Any, canon: list[Any], us: Any) -> Any:
        keyed = df.select("*", *[c.alias(n) for c, n in zip(canon, names, strict=True)], us.alias("__larder_t"))
        joined = keyed.join(bounds, on=names, how="left")
        slice_no = F.when(F.col("__larder_bounds").isNull() | F.col("__larder_t").isNull(), F.lit(0)).otherwise(
            F.size(F.filter(F.col("__larder_bounds"), lambda b: b <= F.col("__larder_t"))))
        return joined.withColumn(SLICE, slice_no.cast("int"))

    spine_sliced = with_slice(spine.drop(SLICE), spine_canon, spine_us)
    src_sliced = with_slice(source.drop(SLICE), src_canon, src_us)
    # per hot key and slice: the latest timestamp in the slices below it (over every slice id 1..)
    slice_ids = bounds.select(*names, F.explode(F.sequence(F.lit(0), F.size("__larder_bounds"))).alias(SLICE))
    top = (src_sliced.where(F.col("__larder_bounds").isNotNull() & F.col("__larder_t").isNotNull())
           .groupBy(*names, SLICE).agg(F.max("__larder_t").alias("__larder_top")))
    below = Window.partitionBy(*names).orderBy(SLICE).rowsBetween(Window.unboundedPreceding, -1)
    carry = (slice_ids.join(top, on=[*names, SLICE], how="left")
             .withColumn("__larder_carry", F.max("__larder_top").over(below))
             .where(F.col("__larder_carry").isNotNull()).select(*names, F.col(SLICE).alias("__larder_into"), "__larder_carry"))
    carried = (src_sliced.join(carry, on=[*names], how="inner").where(F.col("__larder_t") == F.col("__larder_carry"))
               .withColumn(SLICE, F.col("__larder_into")).drop("__larder_into", "__larder_carry"))
    src_out = src_sliced.unionByName(carried)
    drop = [*names, "__larder_t", "__larder_bounds"]
    return spine_sliced.drop(*drop), src_out.drop(*drop)


__all__ = ["BUCKET_ROWS", "SKEW_ROWS", "point_in_time_join"]
