"""``publish_table`` on the Spark engine: the rows chosen in Spark, written from the executors.

The rows are those of :class:`larder.online.publish.Publisher` on DuckDB: the snapshot (read by the
Spark engine from its active files), ``filter_condition`` (a Spark SQL predicate) applied first, then
for a time-series table the newest row per entity key (``row_number()`` over the entity keys ordered by
the timestamp key, descending), each row carrying the same ``__larder_order__`` value (event time in
microseconds, or the snapshot's publish order). How they reach the store depends on it:

* **DynamoDB and Redis, merge**: each Spark partition is written by its executor, in batches of
  ``batch_rows``, with the store's conditional write (``mapInArrow``; only row counts come back). Every
  key occurs once in the rows, so executors never race each other on a key, and the conditional write
  keeps a newer stored row against any other publisher: newest wins.
* **SQLite** (a file on the driver's machine) and **overwrite** (the store's ``replace_table`` swaps a
  complete new generation in, which needs one writer): the partitions are streamed to the driver one
  at a time as Arrow batches and written there; the driver holds one partition's rows at a time.

Executors open the store from its spec (:func:`larder.online.stores.open_store`): they need the store's
client library (``larder[dynamodb]`` / ``larder[redis]``) and credentials from the standard chains.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from larder.errors import PublishError
from larder.offline import delta
from larder.offline.tables import FeatureTable
from larder.online.stores.base import ORDER_COLUMN, OnlineStore, OnlineTable


def _q(c: str) -> str:
    return f"`{c}`"


def latest_rows(engine: Any, snap: delta.Snapshot, ft: FeatureTable, *, columns: list[str], target: pa.Schema,
                filter_condition: Any, order_value: int | None) -> Any:
    """The Spark DataFrame of the rows to publish, with the order column (see the module docstring)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from larder.offline.spark.schema import to_spark_type

    df = engine.read_frame(snap)
    if filter_condition is not None:
        if not isinstance(filter_condition, str):
            raise PublishError(
                f"Table {ft.name!r}: on the Spark engine filter_condition must be a SQL predicate string "
                f"(Spark SQL), got {type(filter_condition).__name__}."
            )
        if filter_condition.strip():
            try:
                df = df.where(F.expr(filter_condition))
                df.schema  # noqa: B018 - analysis happens here: a bad predicate fails now
            except Exception as exc:
                raise PublishError(
                    f"Table {ft.name!r}: filter_condition {filter_condition!r} is not a valid Spark SQL predicate "
                    f"over the table's columns {snap.schema.names}: {exc}"
                ) from exc
    ts = ft.timestamp_keys[0] if ft.timestamp_keys else None
    if ts is not None:
        newest = Window.partitionBy(*[F.col(_q(k)) for k in ft.entity_keys]).orderBy(F.col(_q(ts)).desc())
        df = df.withColumn("__larder_rn", F.row_number().over(newest)).where(F.col("__larder_rn") == 1)
        order = F.unix_micros(F.col(_q(ts)))
    else:
        order = F.lit(int(order_value or 0)).cast("bigint")
    cols = [F.col(_q(c)).cast(to_spark_type(target.field(c).type)).alias(c) for c in columns]
    return df.select(*cols, order.alias(ORDER_COLUMN))


def _local_batches(df: Any, target: pa.Schema, batch_rows: int) -> Iterator[pa.Table]:
    """``df``'s rows on the driver, one partition at a time, as tables of at most ``batch_rows`` rows."""
    from larder.offline.spark.schema import arrow_schema

    schema = arrow_schema(df)

    def to_ipc(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        for batch in batches:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, batch.schema) as writer:
                writer.write_batch(batch)
            yield pa.RecordBatch.from_pydict({"ipc": [sink.getvalue().to_pybytes()]})

    pending: list[pa.RecordBatch] = []
    rows = 0
    for row in df.mapInArrow(to_ipc, "ipc binary").toLocalIterator(prefetchPartitions=True):
        for batch in pa.ipc.open_stream(row["ipc"]):
            pending.append(batch.cast(schema) if batch.schema != schema else batch)
            rows += batch.num_rows
            if rows >= batch_rows:
                yield pa.Table.from_batches(pending).cast(target)
                pending, rows = [], 0
    if pending:
        yield pa.Table.from_batches(pending).cast(target)


def publish(engine: Any, snap: delta.Snapshot, ft: FeatureTable, *, spec: Any, store: OnlineStore,
            online: OnlineTable, columns: list[str], target: pa.Schema, filter_condition: Any,
            order_value: int | None, mode: str, root: Path, batch_rows: int, advance: Any,
            publication: int | None = None) -> int:
    """Write the rows to the store (see the module docstring); returns the rows sent."""
    from pyspark.sql import functions as F

    full_target = target.append(pa.field(ORDER_COLUMN, pa.int64(), nullable=False))
    rows = latest_rows(engine, snap, ft, columns=columns, target=target, filter_condition=filter_condition,
                       order_value=order_value)
    if spec.type == "sqlite" or mode == "overwrite":
        sent = 0

        def counted() -> Iterator[pa.Table]:
            nonlocal sent
            for batch in _local_batches(rows, full_target, batch_rows):
                yield batch
                sent += batch.num_rows
                advance(batch.num_rows)

        if mode == "overwrite":
            store.replace_table(online, counted(), order=ORDER_COLUMN, publication=publication)
        else:
            wrote_any = False
            for batch in counted():
                store.write_batch(online, batch, order=ORDER_COLUMN, publication=publication)
                wrote_any = True
            if not wrote_any:
                store.write_batch(online, full_target.empty_table(), order=ORDER_COLUMN, publication=publication)
        return sent
    # merge into a networked store: each partition from its executor
    # the table exists (even empty) and the served publication is raised once, from the driver
    store.write_batch(online, full_target.empty_table(), order=ORDER_COLUMN, publication=publication)

    def write_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        from larder.online.stores import open_store

        done = 0
        pending: list[pa.RecordBatch] = []
        count = 0
        with open_store(spec, root) as executor_store:
            for batch in batches:
                pending.append(batch)
                count += batch.num_rows
                if count >= batch_rows:
                    executor_store.write_batch(online, pa.Table.from_batches(pending).cast(full_target),
                                               order=ORDER_COLUMN)
                    done, pending, count = done + count, [], 0
            if pending:
                executor_store.write_batch(online, pa.Table.from_batches(pending).cast(full_target),
                                           order=ORDER_COLUMN)
                done += count
        yield pa.RecordBatch.from_pydict({"rows": [done]}, schema=pa.schema([("rows", pa.int64())]))

    try:
        total = rows.mapInArrow(write_partition, "rows long").agg(F.sum("rows")).first()[0]
    except Exception as exc:
        raise PublishError(
            f"Table {ft.name!r}: publishing from the Spark executors to the {spec.type} store failed; keys "
            f"written before the failure keep their (newer) values and nothing older was written: {exc}"
        ) from exc
    sent = int(total or 0)
    advance(sent)
    return sent


__all__ = ["latest_rows", "publish"]
