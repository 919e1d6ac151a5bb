"""Executing a :class:`FeatureSpec` on Spark: training sets and ``score_batch`` as Spark DataFrames.

The same steps as :func:`larder.training.assemble.assemble_offline`, with nothing collected:

* the caller's frame is checked against the spec by :func:`~larder.training.assemble.validate_frame`
  on an empty pandas frame of its schema (names, key and time types, collisions: all schema facts);
* lookups are :meth:`SparkEngine.point_in_time_join <larder.offline.spark.SparkEngine.point_in_time_join>`
  over the tables' Spark reads, built by the same
  :func:`~larder.training.assemble.lookup_sources`; results come back in the caller's row order;
* defaults fill the rows without a match (``F.when(hit, value).otherwise(default)``, the rule of
  :func:`~larder.training.assemble.apply_defaults`), and each looked-up column gets the spec's type;
* feature functions run through :func:`~larder.training.assemble.apply_functions` on each batch of
  rows (``mapInPandas``), so a function computes exactly what it computes on the DuckDB engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa

from larder.context import Context
from larder.errors import FeatureLookupError, FeatureSpecError
from larder.offline.tables import TableService
from larder.training.assemble import _family, apply_functions, lookup_sources, validate_frame
from larder.training.spec import FeatureSpec, FeatureStep, FunctionStep, LookupStep, parse_arrow_type

#: Rows of the caller's frame used to learn the type of a feature function that declares none.
TYPE_SAMPLE_ROWS = 1_000


def _q(c: str) -> str:
    return f"`{c}`"


def empty_frame(df: Any) -> pd.DataFrame:
    """An empty pandas frame with ``df``'s columns and the dtypes its rows would have in pandas."""
    from larder.offline.spark.schema import arrow_schema

    return arrow_schema(df).empty_table().to_pandas()


def _key_column(col: str, step: LookupStep, j: int, have: pa.DataType, where: str) -> Any:
    from pyspark.sql import functions as F

    want = parse_arrow_type(step.key_types[j])
    if _family(have) in (_family(want), "null"):
        return F.col(_q(col))
    if _family(have) == "floating point" and _family(want) == "integer":
        return F.col(_q(col)).cast("bigint")
    raise FeatureLookupError(
        f"{where}: lookup key column {col!r} of the DataFrame has type {have} ({_family(have)}) but the table's "
        f"key {step.table_keys[j]!r} is {want} ({_family(want)}), so no row could match. Cast it, e.g. "
        f"`F.col({col!r}).cast('{_spark_name(want)}')`."
    )


def _spark_name(t: pa.DataType) -> str:
    from larder.offline.spark.schema import to_spark_type

    return str(to_spark_type(t).simpleString())


def _time_column(col: str, have: pa.DataType, where: str) -> Any:
    from pyspark.sql import functions as F

    if pa.types.is_timestamp(have) or pa.types.is_date(have) or pa.types.is_null(have):
        return F.col(_q(col))
    raise FeatureLookupError(
        f"{where}: timestamp lookup key {col!r} has type {have}, not a timestamp. Convert it, e.g. "
        f"`F.to_timestamp(F.col({col!r}))` (a naive timestamp is taken as UTC)."
    )


def assemble_spark(ctx: Context, spec: FeatureSpec, df: Any, *, use_pinned_versions: bool = True,
                   override_with_input_columns: bool = False, drop_excluded: bool = True,
                   tables: TableService | None = None) -> Any:
    """The features of ``spec`` for every row of ``df`` (a Spark DataFrame, or pandas/Arrow) as a Spark
    DataFrame: ``df``'s columns (minus ``exclude_columns`` when ``drop_excluded``), then the features,
    in ``df``'s row order. Parameters as :func:`~larder.training.assemble.assemble_offline`."""
    from pyspark.sql import functions as F

    from larder.offline.spark import SparkEngine
    from larder.offline.spark.schema import arrow_schema, to_spark_type

    engine = ctx.engine
    if not isinstance(engine, SparkEngine):
        raise FeatureSpecError("assemble_spark needs the Spark engine (`engine: spark` in larder.yaml).")
    tables = tables or TableService(ctx)
    frame = engine.to_spark(df, table="df")
    schema = arrow_schema(frame, table="df")
    validate_frame(spec, empty_frame(frame), override_with_input_columns=override_with_input_columns)
    caller_cols = list(frame.columns)
    lookups = [(i, s) for i, s in enumerate(spec.steps) if isinstance(s, LookupStep)
               and not (override_with_input_columns and all(o in caller_cols for o in s.output_names))]
    if lookups:
        spine_cols: dict[str, Any] = {}

        def key(name: str, col: str, step: LookupStep, j: int, where: str) -> None:
            spine_cols[name] = _key_column(col, step, j, schema.field(col).type, where)

        def time(name: str, col: str, where: str) -> None:
            spine_cols[name] = _time_column(col, schema.field(col).type, where)

        sources = lookup_sources(tables, lookups, use_pinned_versions, key=key, time=time)
        joined = engine.point_in_time_join(frame.withColumns(spine_cols), sources)
        out_cols = [F.col(_q(c)) for c in caller_cols]
        for i, step in lookups:
            hit = F.col(f"__larder_hit_{i}")
            for j, (feat_out, typ) in enumerate(step.output_types.items()):
                if override_with_input_columns and feat_out in caller_cols:
                    continue
                value = F.col(f"__larder_f{i}_{j}").cast(to_spark_type(typ))
                default = step.default_values.get(feat_out)
                if default is not None:
                    value = F.when(hit, value).otherwise(F.lit(default).cast(to_spark_type(typ)))
                out_cols.append(value.alias(feat_out))
        frame = joined.select(*out_cols)
    features = [s for s in spec.features if not s.is_request
                and not (override_with_input_columns and s.output_name in caller_cols)]
    if features:
        frame = _with_features(ctx, tables, frame, features, use_pinned_versions)
    frame = _apply_functions(spec, frame, override_with_input_columns)
    keep = [c for c in frame.columns if not (drop_excluded and c in set(spec.exclude_columns))]
    produced = [c for c in spec.produced_columns if c in keep and c not in caller_cols]
    ordered = [c for c in caller_cols if c in keep] + produced
    return frame.select(*[_q(c) for c in ordered])


def _with_features(ctx: Context, tables: TableService, frame: Any, steps: list[FeatureStep],
                   use_pinned_versions: bool) -> Any:
    """``frame`` with each declarative feature computed in Spark at its rows' entity and time."""
    from larder.offline.spark.aggregate import evaluate_features_spark

    return evaluate_features_spark(ctx.engine, tables, frame, steps, use_pinned_versions=use_pinned_versions)


def _apply_functions(spec: FeatureSpec, frame: Any, override: bool) -> Any:
    """``frame`` with each feature function's output column, computed batch by batch on the executors."""
    from pyspark.sql import types as T

    from larder.offline.spark.schema import to_spark_type

    steps = [s for s in spec.steps if isinstance(s, FunctionStep) and not (override and s.output_name in frame.columns)]
    if not steps:
        return frame
    types: dict[str, pa.DataType] = {}
    unknown = [s for s in steps if not s.output_type]
    if unknown:  # learn the undeclared types from the functions' results on the first rows
        sample = apply_functions(spec, frame.limit(TYPE_SAMPLE_ROWS).toPandas(), override_with_input_columns=override,
                                 key_columns=spec.key_columns)
        for s in unknown:
            typ = pa.Array.from_pandas(sample[s.output_name]).type
            types[s.output_name] = pa.float64() if pa.types.is_null(typ) else typ
    for s in steps:
        if s.output_type:
            types[s.output_name] = parse_arrow_type(s.output_type)
    out_schema = T.StructType([*frame.schema.fields,
                               *[T.StructField(s.output_name, to_spark_type(types[s.output_name]), True) for s in steps]])
    key_columns = spec.key_columns
    names = out_schema.fieldNames()

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            done = apply_functions(steps, batch, override_with_input_columns=override, key_columns=key_columns)
            yield done[names]

    return frame.mapInPandas(run, out_schema)


__all__ = ["assemble_spark", "empty_frame"]
