"""Time-windowed aggregations (declarative features) on Spark: :mod:`larder.offline.aggregate`'s kernel
per entity bucket.

:meth:`SparkEngine.aggregate <larder.offline.spark.SparkEngine.aggregate>` hash-partitions the events
and the query rows into buckets on their (canonicalised) entity keys and evaluates each bucket's pair of
Arrow tables on an executor with :func:`larder.offline.aggregate.aggregate` (``cogroup().applyInArrow``):
one pass per entity partition, never a scan per query, and the same values bit for bit, since a window's
value depends only on the events inside it (the kernel's own partitioning relies on the same property).
The result has the query rows in their order (a row id taken at the start) and the queries' kind: a
Spark DataFrame for one, Arrow for Arrow.

:func:`evaluate_features_spark` is :func:`larder.declarative.compute.evaluate_features` for a Spark
frame: each feature's source read in Spark (a Delta table at its pinned version through the engine's
reader, its ``filter_condition`` and ``transformation_sql`` run as Spark SQL, which is what they are on
Databricks; a DataFrame source sent to Spark), then the aggregation above.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from larder.errors import FeatureDefinitionError, FeatureLookupError
from larder.offline.aggregate import Aggregation
from larder.offline.spark.pit import BUCKET, RID, _buckets, _canonical, _is_spark, _out_arrow
from larder.offline.spark.schema import arrow_schema, arrow_to_spark, to_spark_type


def _q(c: str) -> str:
    return f"`{c}`"


def aggregate(session: Any, events: Any, queries: Any, *, entity: Sequence[str], timestamp: str,
              query_timestamp: str, aggregations: Sequence[Aggregation], query_entity: Sequence[str] | None = None,
              bucket_rows: int = 1_000_000) -> Any:
    """The aggregations at every query row (see the module docstring)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from larder.offline.aggregate import aggregate as kernel
    from larder.offline.frames import to_arrow

    query_entity = list(query_entity or entity)
    arrow_in = not _is_spark(queries)
    ev_schema = arrow_schema(events) if _is_spark(events) else to_arrow(events).schema
    q_table = None if not arrow_in else to_arrow(queries)
    q_schema = arrow_schema(queries) if not arrow_in else q_table.schema  # type: ignore[union-attr]
    ev_cols = list(dict.fromkeys([*entity, timestamp, *(a.input for a in aggregations)]))
    missing = [c for c in ev_cols if c not in ev_schema.names]
    if missing:
        raise FeatureDefinitionError(f"aggregate: the events lack column(s) {missing} (columns: {ev_schema.names}).")
    missing = [c for c in [*query_entity, query_timestamp] if c not in q_schema.names]
    if missing:
        raise FeatureLookupError(f"aggregate: the queries lack column(s) {missing} (columns: {q_schema.names}).")
    # the output types, from the kernel itself on no rows
    empty = kernel(ev_schema.empty_table().select(ev_cols), q_schema.empty_table(), entity=entity, timestamp=timestamp,
                   query_timestamp=query_timestamp, aggregations=aggregations, query_entity=query_entity)
    ev = events.select(*[_q(c) for c in ev_cols]) if _is_spark(events) else \
        arrow_to_spark(session, to_arrow(events).select(ev_cols))
    q_cols = list(dict.fromkeys([*query_entity, query_timestamp]))
    if arrow_in:
        assert q_table is not None
        q = arrow_to_spark(session, q_table.select(q_cols).append_column(
            RID, pa.array(np.arange(q_table.num_rows, dtype=np.int64))))
        passed = [RID]
        known = q_table.num_rows + (to_arrow(events).num_rows if not _is_spark(events) else 0)
    else:
        q = queries.withColumn(RID, F.monotonically_increasing_id())
        passed = [*queries.columns, RID]
        known = None
    n_buckets = _buckets(session, known, bucket_rows)
    ev = ev.withColumn(BUCKET, F.pmod(F.hash(*[_canonical(F.col(_q(c)), ev_schema.field(c).type) for c in entity]),
                                      F.lit(n_buckets)))
    q = q.withColumn(BUCKET, F.pmod(F.hash(*[_canonical(F.col(_q(c)), q_schema.field(c).type)
                                             for c in query_entity]), F.lit(n_buckets)))
    q_types = {f.name: f.dataType for f in q.schema.fields}
    out_fields = [*[T.StructField(c, q_types[c], True) for c in passed],
                  *[T.StructField(f.name, to_spark_type(f.type), True) for f in empty.schema]]
    tz = session.conf.get("spark.sql.session.timeZone")
    out_arrow = pa.schema([pa.field(f.name, _out_arrow(f.dataType, tz)) for f in out_fields])
    aggs = list(aggregations)

    def run(qs: pa.Table, es: pa.Table) -> pa.Table:
        from larder.offline.aggregate import aggregate as kernel

        if qs.num_rows == 0:
            return out_arrow.empty_table()
        values = kernel(es.select(ev_cols), qs.select(q_cols), entity=entity, timestamp=timestamp,
                        query_timestamp=query_timestamp, aggregations=aggs, query_entity=query_entity)
        cols = [qs.column(c) for c in passed] + [values.column(f.name) for f in empty.schema]
        return pa.Table.from_arrays(cols, names=out_arrow.names).cast(out_arrow)

    out = q.groupBy(BUCKET).cogroup(ev.groupBy(BUCKET)).applyInArrow(run, T.StructType(out_fields))
    outputs = [f.name for f in empty.schema]
    if not arrow_in:
        return out.orderBy(RID).select(*[_q(c) for c in [*queries.columns, *outputs]])
    got = out.select(RID, *[_q(c) for c in outputs]).toArrow().sort_by(RID)
    assert q_table is not None
    if got.num_rows != q_table.num_rows:  # pragma: no cover - the kernel returns every query row
        raise FeatureLookupError(f"aggregate returned {got.num_rows} rows for {q_table.num_rows} queries.")
    return pa.table({f.name: got.column(f.name).cast(f.type) for f in empty.schema})


def _source_frame(engine: Any, tables: Any, feature: Any, version: int | None, *, apply_filter: bool = True) -> Any:
    """A feature's source rows as a Spark DataFrame (transformed; filtered unless ``apply_filter`` is False)."""
    from larder.declarative.sources import DataFrameSource, DeltaTableSource

    source = feature.source
    if isinstance(source, DataFrameSource):
        return arrow_to_spark(engine.session, source.table)
    if not isinstance(source, DeltaTableSource):
        raise FeatureDefinitionError(f"Feature {feature.name!r}: a {type(source).__name__} has no rows to read.")
    df = engine.read_frame(tables.snapshot(source.full_name(), version))
    where = source.filter_condition if apply_filter else None
    if not (source.transformation_sql or where):
        return df
    view = f"larder_src_{abs(hash((source.full_name(), version, id(df)))):x}"
    df.createOrReplaceTempView(view)
    sql = f"SELECT {source.transformation_sql or '*'} FROM {view}"
    if where:
        sql += f" WHERE {where}"
    try:
        out = engine.session.sql(sql)
        out.schema  # noqa: B018 - analysed now: bad SQL fails here
    except Exception as exc:
        raise FeatureDefinitionError(
            f"Feature {feature.name!r}: the source's filter_condition / transformation_sql does not run in Spark "
            f"on table {source.full_name()!r} ({exc}). Fix the SQL (it runs as Spark SQL on the Spark engine)."
        ) from exc
    return out


def evaluate_features_spark(engine: Any, tables: Any, frame: Any, steps: Sequence[Any], *,
                            use_pinned_versions: bool) -> Any:
    """``frame`` (a Spark DataFrame) with each declarative feature step's column, in ``frame``'s order."""
    from pyspark.sql import functions as F

    from larder.declarative.compute import aggregation_for

    groups: dict[tuple[Any, ...], list[Any]] = {}
    for s in steps:
        f = s.definition
        key = (s.source_table, s.source_version if use_pinned_versions else None, tuple(f.entity or ()),
               f.timeseries_column, id(f.source) if s.source_table is None else None)
        groups.setdefault(key, []).append(s)
    for (_, version, entity, ts, _), group in groups.items():
        first = group[0].definition
        events = _source_frame(engine, tables, first, version if use_pinned_versions else None)
        aggs = [aggregation_for(s.definition, s.output_name) for s in group]
        frame = aggregate(engine.session, events, frame, entity=list(entity), timestamp=ts, query_timestamp=ts,
                          aggregations=aggs)
        for s in group:
            frame = frame.withColumn(s.output_name, F.col(_q(s.output_name)).cast(to_spark_type(s.arrow_type)))
    return frame




def compute_range_spark(engine: Any, tables: Any, features: Sequence[Any], *, start: Any = None,
                        end: Any = None) -> Any:
    """:func:`larder.declarative.compute.compute_range` on Spark: the values at every distinct
    (entity, time) of the source rows with ``start <= time < end``, each at its own time, as a Spark
    DataFrame sorted by the key columns. Features of one source only, as on DuckDB."""
    from pyspark.sql import functions as F

    from larder.declarative.compute import _utc, aggregation_for, source_key
    from larder.declarative.sources import RequestSource

    if not features:
        raise FeatureDefinitionError("compute_features needs at least one feature.")
    request = [f.name for f in features if isinstance(f.source, RequestSource)]
    if request:
        raise FeatureDefinitionError(
            f"compute_features does not support RequestSource features {request}: their values come with the "
            "request. Use create_training_set, which takes them from the DataFrame.")
    if len({source_key(f.source) for f in features}) > 1:
        raise FeatureDefinitionError("compute_features computes features of one source at a time; call it once "
                                     "per source.")
    key_cols = list(dict.fromkeys(c for f in features for c in [*(f.entity or []), str(f.timeseries_column)]))
    first = features[0]
    rows = _source_frame(engine, tables, first, None)
    # the source's filter restricts the rows aggregated, not the rows returned
    spine_src = _source_frame(engine, tables, first, None, apply_filter=False) \
        if getattr(first.source, "filter_condition", None) else rows
    spine = spine_src.select(*[_q(c) for c in key_cols])
    for f in features:
        ts = F.col(_q(f.timeseries_column))
        if start is not None:
            spine = spine.where(ts >= F.lit(_utc(start)))
        if end is not None:
            spine = spine.where(ts < F.lit(_utc(end)))
    spine = spine.distinct().orderBy(*[_q(c) for c in key_cols])
    out = spine
    for f in features:
        agg = aggregation_for(f)
        out = aggregate(engine.session, rows, out, entity=list(f.entity or []), timestamp=str(f.timeseries_column),
                        query_timestamp=str(f.timeseries_column), aggregations=[agg])
    return out


__all__ = ["aggregate", "compute_range_spark", "evaluate_features_spark"]
