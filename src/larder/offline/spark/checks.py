"""The checks of a write, computed in Spark: keys present, non-null and unique; and write profiles.

The row checks are those of :func:`larder.offline.frames.check_rows` with the same errors, from one
Spark job (the key columns shuffled by key and counted per key, then one aggregate over the groups);
only a failing check runs a second, small job for an example. Row positions mean nothing in a Spark
DataFrame, so examples name key values instead.

A profile is :func:`larder.quality.profiling.profile` of a uniform random sample drawn in Spark (the
``sample_rows`` rows with the smallest seeded random numbers: exact, without replacement, and only that
many rows ever reach the driver), or of every row when there are at most ``sample_rows``.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from larder.errors import EmptyDataFrameError, PrimaryKeyError
from larder.offline.frames import (
    MAX_DIR_NAME,
    check_partition_value,
    check_row_schema,
    nan_key_error,
    partition_value_fits,
)
from larder.offline.spark.schema import arrow_schema


def _q(c: str) -> str:
    return f"`{c}`"


def check_rows(df: Any, *, table: str, primary_keys: list[str], timestamp_keys: list[str]) -> int:
    """Raise like :func:`larder.offline.frames.check_rows` unless ``df`` is fit to be written; returns
    its row count."""
    from pyspark.sql import functions as F

    schema = arrow_schema(df, table=table)
    check_row_schema(schema, table=table, primary_keys=primary_keys, timestamp_keys=timestamp_keys)
    floats = [i for i, k in enumerate(primary_keys) if pa.types.is_floating(schema.field(k).type)]
    key_cols = [F.col(_q(k)) for k in primary_keys]
    # Only the keys are read and shuffled, once, then counted in one aggregation per partition: in a
    # write fit to commit every key is unique, so a pre-shuffle partial count would shrink nothing
    # and only build a second hash table of every key (the key check of 10M rows, on two cores: about
    # 1.3x faster this way; see benchmarks/RESULTS.md).
    groups = df.select(*key_cols).repartition(*key_cols).groupBy(*key_cols).agg(F.count(F.lit(1)).alias("__n"))
    aggs = [F.sum("__n").alias("rows"), F.max("__n").alias("most")]
    aggs += [F.sum(F.when(F.col(_q(k)).isNull(), F.col("__n")).otherwise(0)).alias(f"null_{i}")
             for i, k in enumerate(primary_keys)]
    aggs += [F.sum(F.when(F.isnan(F.col(_q(primary_keys[i]))), F.col("__n")).otherwise(0)).alias(f"nan_{i}")
             for i in floats]
    aggs += [F.sum(F.when(F.col("__n") > 1, 1).otherwise(0)).alias("dupes")]
    row = groups.agg(*aggs).first()
    rows = int(row["rows"] or 0)
    if rows == 0:
        raise EmptyDataFrameError(
            f"Table {table!r}: the DataFrame has no rows; there is nothing to write. "
            "Pass schema= to create_table() to create an empty table."
        )
    for i in floats:
        nans = int(row[f"nan_{i}"] or 0)
        if nans:
            raise nan_key_error(table, primary_keys[i], f"{nans} row(s)")
    for i, k in enumerate(primary_keys):
        nulls = int(row[f"null_{i}"] or 0)
        if nulls:
            raise PrimaryKeyError(
                f"Table {table!r} has primary key {primary_keys} but {nulls} row(s) have a null {k!r}. "
                f"Drop or fill them before writing, for example `df.dropna(subset={primary_keys!r})`."
            )
    if int(row["most"] or 0) > 1:
        example_row = groups.where(F.col("__n") > 1).limit(1).collect()[0]
        example = {k: example_row[k] for k in primary_keys}
        raise PrimaryKeyError(
            f"Table {table!r}: {int(row['dupes'])} primary-key value(s) occur more than once in this write "
            f"(for example {example}). Each write may hold one row per primary key: deduplicate first, "
            f"for example `df.dropDuplicates({primary_keys!r})`."
        )
    return rows


def check_partition_values(df: Any, partition_by: list[str], *, table: str) -> None:
    """:func:`larder.offline.frames.check_partition_values` in Spark: one job for the longest value of
    each string or binary partition column; only values that could be too long reach the driver."""
    from pyspark.sql import functions as F

    schema = arrow_schema(df, table=table)
    texts = [p for p in partition_by
             if pa.types.is_string(schema.field(p).type) or pa.types.is_binary(schema.field(p).type)]
    if not texts:
        return
    row = df.agg(*[F.max(F.octet_length(F.col(_q(p)))).alias(f"l{i}") for i, p in enumerate(texts)]).first()
    for i, p in enumerate(texts):
        longest = int(row[f"l{i}"] or 0)
        if partition_value_fits(p, longest):
            continue
        # a value of fewer bytes than this fits even if every byte were percent-encoded
        shortest_risky = MAX_DIR_NAME // 3 - len(p) - 1
        risky = df.select(_q(p)).where(F.octet_length(F.col(_q(p))) > shortest_risky).distinct()
        for r in risky.toLocalIterator():
            check_partition_value(p, r[0], table=table)


def sample(df: Any, rows: int, *, seed: int = 0, total: int | None = None) -> tuple[pa.Table, int]:
    """(at most ``rows`` uniformly drawn rows of ``df`` as Arrow, ``df``'s row count): the ``rows``
    rows with the smallest seeded random numbers. ``total``, when known (the key checks counted the
    rows), spares a count and lets the draw keep only the rows whose number is below a bound that
    ``rows`` of them pass with near certainty; when fewer pass, the draw is made over every row."""
    from pyspark.sql import functions as F

    if total is None or total <= rows:
        head = to_arrow(df.limit(rows + 1))  # one job answers for frames of at most ``rows`` rows
        if head.num_rows <= rows:
            return head, head.num_rows
        total = int(df.count())
    numbered = df.withColumn("__larder_r", F.rand(seed))
    bound = (rows + 8 * rows ** 0.5 + 64) / total  # ~8 standard deviations above the expected count
    if bound < 1:
        drawn = to_arrow(numbered.where(F.col("__larder_r") < bound).orderBy("__larder_r").limit(rows)
                         .drop("__larder_r"))
        if drawn.num_rows == rows:  # the `rows` smallest numbers are all below the bound
            return drawn, total
    return to_arrow(numbered.orderBy("__larder_r").limit(rows).drop("__larder_r")), total


def to_arrow(df: Any) -> pa.Table:
    """A (small) Spark DataFrame's rows as Arrow, with larder's storage types."""
    from larder.offline.frames import normalise

    schema = arrow_schema(df)
    table = df.toArrow()
    return normalise(table.cast(schema) if table.schema != schema else table)


def profile(df: Any, *, sample_rows: int | None, rows: int | None = None) -> Any:
    """:func:`larder.quality.profiling.profile` of ``df``, on a sample of ``sample_rows`` rows drawn in
    Spark (``rows``: ``df``'s row count, when known)."""
    from larder.quality.profiling import profile as arrow_profile

    if sample_rows is None:
        return arrow_profile(to_arrow(df))
    table, total = sample(df, sample_rows, total=rows)
    return arrow_profile(table, sample_of=total)


__all__ = ["check_partition_values", "check_rows", "profile", "sample", "to_arrow"]
