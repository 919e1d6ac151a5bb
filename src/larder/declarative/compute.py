"""Computing declarative features offline: sources, validation, evaluation at points and over ranges.

The functions here are the one implementation behind ``compute_features``, training sets,
``score_batch`` and (through :mod:`larder.declarative.online`) the values published online. They are
also the base that materialization builds on:

* :func:`evaluate_features` - the values of features at given ``(entity, time)`` points (what a
  training set or a backfill computes);
* :func:`compute_range` - the values at every source row with a timestamp in ``[start, end)``, each
  row at its own time (``compute_features`` is the unbounded range);
* :func:`load_source` / :func:`validate_feature` - a feature's source rows (filtered and transformed)
  and the checks ``create_feature`` runs before anything is written.

Every feature is evaluated by the engine's :meth:`~larder.offline.engine.Engine.aggregate` (one pass
per group of features that share a source, entity and timeseries column; semantics in
:mod:`larder.offline.aggregate`). A :class:`~larder.declarative.functions.ColumnSelection` is
``Last(column)`` over a lifetime rolling window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from larder.declarative.feature import Feature
from larder.declarative.functions import AggregationFunction, ColumnSelection, FirstN, LastN
from larder.declarative.sources import DataFrameSource, DeltaTableSource, RequestSource
from larder.declarative.windows import TimeWindow, datetime_to_us, to_us
from larder.errors import FeatureDefinitionError, FeatureLookupError, LarderError
from larder.offline.aggregate import Aggregation, EventBatches, WindowRule, check_input_type, output_type
from larder.offline.frames import normalise
from larder.offline.pit import _fetch
from larder.offline.pit_gather import scan_batches

if TYPE_CHECKING:
    from larder.offline.delta import Snapshot
    from larder.offline.engine import Engine
    from larder.offline.tables import TableService

UTC_US = pa.timestamp("us", tz="UTC")


def window_rule(window: TimeWindow) -> WindowRule:
    """The engine-level rule of a window (integer microseconds)."""
    slide = window.slide
    return WindowRule(
        duration_us=to_us(window.duration) if window.duration is not None else None,
        delay_us=to_us(window.delay),
        slide_us=to_us(slide) if slide is not None else None,
        phase_us=window.phase_us() if slide is not None else 0,
        start_us=datetime_to_us(window.start_time) if window.start_time is not None else None,
    )


LIFETIME = WindowRule(duration_us=None)


def aggregation_for(feature: Feature, output: str | None = None) -> Aggregation:
    """The engine aggregation that computes ``feature`` into column ``output`` (default: its name)."""
    fn = feature.function
    name = output or feature.name
    if isinstance(fn, ColumnSelection):
        return Aggregation(name, "last", fn.column, LIFETIME)
    assert isinstance(fn, AggregationFunction)
    op = fn.function
    return Aggregation(name, op.name, op.input, window_rule(fn.time_window),
                       n=op.n if isinstance(op, (FirstN, LastN)) else None,
                       percentile=getattr(op, "percentile", None))


def _where(feature: Feature) -> str:
    return f"Feature {feature.full_name if feature.has_full_name else feature.name!r}"


# --------------------------------------------------------------------------- sources


def _sql_of(source: DeltaTableSource, *, apply_filter: bool) -> str:
    sql = f"SELECT {source.transformation_sql or '*'} FROM __larder_src"
    if apply_filter and source.filter_condition:
        sql += f" WHERE {source.filter_condition}"
    return sql


def _sql_error(source: DeltaTableSource, sql: str, label: str, exc: Exception) -> FeatureDefinitionError:
    return FeatureDefinitionError(
        f"{label}: the source's filter_condition / transformation_sql does not run on table "
        f"{source.full_name()!r} ({exc}). Fix the SQL; it runs as `{sql.replace('__larder_src', source.full_name())}`."
    )


def _run_sql(table: pa.Table, source: DeltaTableSource, *, apply_filter: bool, label: str) -> pa.Table:
    sql = _sql_of(source, apply_filter=apply_filter)
    con = duckdb.connect()
    try:
        con.register("__larder_src", table)
        out = _fetch(con.sql(sql))
    except duckdb.Error as exc:
        raise _sql_error(source, sql, label, exc) from exc
    finally:
        con.close()
    return normalise(out)


@dataclass
class SourceRows:
    """A feature source read at one version: the rows aggregations see (``rows``, filtered) and the
    evaluation points of ``compute_features`` (``spine``, unfiltered)."""

    rows: pa.Table
    spine: pa.Table
    table: str | None
    version: int | None


def source_key(source: Any) -> tuple[Any, ...]:
    if isinstance(source, DeltaTableSource):
        return ("delta", source.full_name(), source.filter_condition, source.transformation_sql)
    return ("object", id(source))


def _snapshot(tables: TableService | None, feature: Feature, version: int | None) -> Snapshot:
    source = feature.source
    label = _where(feature)
    assert isinstance(source, DeltaTableSource)
    if tables is None:
        raise FeatureDefinitionError(f"{label}: reading a DeltaTableSource needs a larder root (a client).")
    try:
        return tables.snapshot(source.full_name(), version)
    except LarderError as exc:
        raise FeatureDefinitionError(
            f"{label}: source table {source.full_name()!r} cannot be read ({exc}). Create it with create_table(), "
            "or fix catalog_name / schema_name / table_name."
        ) from exc


def load_source(tables: TableService | None, feature: Feature, *, version: int | None = None,
                columns: Sequence[str] | None = None, filter: Any = None, files: Sequence[str] | None = None
                ) -> SourceRows:
    """The rows of ``feature``'s source (Delta table at ``version``, default latest, or DataFrame).

    ``filter`` (a pyarrow expression on the table's own columns) and ``files`` (some of the version's
    data files) restrict what is read from a Delta table, before its filter_condition and
    transformation_sql run: materialization reads only new files, or only the time range its windows
    need."""
    source = feature.source
    label = _where(feature)
    if isinstance(source, DataFrameSource):
        return SourceRows(source.table, source.table, None, None)
    if not isinstance(source, DeltaTableSource):
        raise FeatureDefinitionError(f"{label}: a {type(source).__name__} has no rows to read.")
    snap = _snapshot(tables, feature, version)
    sql = source.transformation_sql or source.filter_condition
    want = None if sql or columns is None else [c for c in dict.fromkeys(columns) if c in snap.schema.names]
    raw = normalise(snap.to_arrow(columns=want, filter=filter, files=list(files) if files is not None else None))
    if not sql:
        return SourceRows(raw, raw, source.full_name(), snap.version)
    rows = _run_sql(raw, source, apply_filter=True, label=label)
    spine = _run_sql(raw, source, apply_filter=False, label=label) if source.filter_condition else rows
    return SourceRows(rows, spine, source.full_name(), snap.version)


#: Rows per batch of a source streamed through its transformation_sql / filter_condition.
STREAM_BATCH_ROWS = 1 << 16


def stream_source(tables: TableService | None, feature: Feature, *, version: int | None = None,
                  columns: Sequence[str]) -> tuple[pa.Table | EventBatches, int | None]:
    """The rows ``feature`` aggregates (filtered and transformed), and the source's version: a
    DataFrame source's table, or a Delta source as :class:`EventBatches` read file by file (and through
    its SQL in DuckDB, streamed), so a training set never holds the whole source."""
    source = feature.source
    label = _where(feature)
    if isinstance(source, DataFrameSource):
        return source.table, None
    if not isinstance(source, DeltaTableSource):
        raise FeatureDefinitionError(f"{label}: a {type(source).__name__} has no rows to read.")
    snap = _snapshot(tables, feature, version)
    dataset = snap.dataset()
    rows = snap.row_count()
    if not (source.transformation_sql or source.filter_condition):
        want = [c for c in dict.fromkeys(columns) if c in snap.schema.names]
        schema = normalise(snap.schema.empty_table().select(want)).schema

        def plain() -> Iterator[pa.RecordBatch]:
            for batch in scan_batches(dataset, want):
                yield from normalise(pa.Table.from_batches([batch])).to_batches()

        return EventBatches(schema, plain, rows), snap.version
    schema = _run_sql(normalise(snap.schema.empty_table()), source, apply_filter=True, label=label).schema
    sql = _sql_of(source, apply_filter=True)

    def transformed() -> Iterator[pa.RecordBatch]:
        con = duckdb.connect()
        try:
            con.register("__larder_src", dataset)
            reader = con.sql(sql).fetch_record_batch(STREAM_BATCH_ROWS)
            for batch in reader:
                yield from normalise(pa.Table.from_batches([batch])).to_batches()
        except duckdb.Error as exc:
            raise _sql_error(source, sql, label, exc) from exc
        finally:
            con.close()

    return EventBatches(schema, transformed, rows), snap.version


def source_schema(tables: TableService | None, feature: Feature, *,
                  planned: Mapping[str, pa.Schema] | None = None) -> tuple[pa.Schema, str | None, int | None]:
    """The schema of the rows the feature aggregates (after transformation), its table and version.

    ``planned`` maps the full names of tables about to be created (``larder plan``) to their schemas;
    such a source is checked against that schema and has no version yet."""
    source = feature.source
    if isinstance(source, DataFrameSource):
        return source.table.schema, None, None
    assert isinstance(source, DeltaTableSource)
    if planned is not None and source.full_name() in planned:
        empty, version = planned[source.full_name()].empty_table(), None
    else:
        if tables is None:
            raise FeatureDefinitionError(f"{_where(feature)}: validating a DeltaTableSource needs a client.")
        try:
            snap = tables.snapshot(source.full_name())
        except LarderError as exc:
            raise FeatureDefinitionError(
                f"{_where(feature)}: source table {source.full_name()!r} does not exist ({exc}). Create it with "
                "create_table(), or fix catalog_name / schema_name / table_name."
            ) from exc
        empty, version = snap.schema.empty_table(), snap.version
    schema = normalise(empty).schema
    if source.transformation_sql or source.filter_condition:
        schema = _run_sql(empty, source, apply_filter=True, label=_where(feature)).schema
    return schema, source.full_name(), version


def validate_feature(tables: TableService | None, feature: Feature, *,
                     planned: Mapping[str, pa.Schema] | None = None) -> tuple[pa.DataType, str | None, int | None]:
    """Check ``feature`` against its source before anything is written: columns exist, the timeseries
    column is a timestamp, entity columns are not temporal, the operator accepts its input's type.
    Returns the feature's value type, its source table and the source's current version (``planned``:
    see :func:`source_schema`)."""
    label = _where(feature)
    if isinstance(feature.source, RequestSource):
        assert isinstance(feature.function, ColumnSelection)
        return feature.source.field_type(feature.function.column), None, None
    schema, table, version = source_schema(tables, feature, planned=planned)
    names = schema.names
    where = f"table {table!r}" if table else "the DataFrame"
    assert feature.entity is not None and feature.timeseries_column is not None
    missing = [c for c in [*feature.entity, feature.timeseries_column, *feature.inputs] if c not in names]
    if missing:
        raise FeatureDefinitionError(
            f"{label}: column(s) {missing} are not in {where} (columns: {names}). Fix the feature's entity, "
            "timeseries_column or input, or derive the column with transformation_sql."
        )
    ts_type = schema.field(feature.timeseries_column).type
    if not pa.types.is_timestamp(ts_type):
        kind = "a DATE" if pa.types.is_date(ts_type) else f"{ts_type}"
        raise FeatureDefinitionError(
            f"{label}: timeseries_column {feature.timeseries_column!r} of {where} is {kind}, not a timestamp; windows "
            "need sub-day precision. Cast it with transformation_sql, e.g. "
            f"\"*, CAST({feature.timeseries_column} AS TIMESTAMP) AS event_ts\", and use timeseries_column='event_ts'."
        )
    for col in feature.entity:
        t = schema.field(col).type
        if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_nested(t):
            raise FeatureDefinitionError(
                f"{label}: entity column {col!r} is {t}; entity columns must be scalar keys (ids, names), not "
                "timestamps, dates or nested values."
            )
    agg = aggregation_for(feature)
    input_type = schema.field(agg.input).type
    why = check_input_type(agg.operator, input_type)
    if why:
        raise FeatureDefinitionError(
            f"{label}: {why} ({agg.input!r} of {where}). Aggregate a numeric column, or cast it with "
            "transformation_sql."
        )
    return output_type(agg.operator, input_type), table, version


def value_type(tables: TableService | None, feature: Feature) -> pa.DataType:
    return validate_feature(tables, feature)[0]


# --------------------------------------------------------------------------- evaluation


def _groups(features: Sequence[Feature]) -> dict[tuple[Any, ...], list[Feature]]:
    groups: dict[tuple[Any, ...], list[Feature]] = {}
    for f in features:
        if isinstance(f.source, RequestSource):
            raise FeatureDefinitionError(
                f"{_where(f)}: a RequestSource feature has no source rows to aggregate; its value comes with the "
                "request (pass it in the DataFrame of create_training_set)."
            )
        key = (source_key(f.source), tuple(f.entity or ()), f.timeseries_column)
        groups.setdefault(key, []).append(f)
    return groups


def _check_outputs(features: Sequence[Feature], outputs: Sequence[str]) -> None:
    seen: dict[str, Feature] = {}
    for f, o in zip(features, outputs, strict=True):
        if o in seen:
            raise FeatureDefinitionError(
                f"Features {seen[o].name!r} and {f.name!r} both produce column {o!r}; give each a distinct name."
            )
        seen[o] = f


def query_time_array(col: pa.ChunkedArray | pa.Array, name: str, *, where: str) -> pa.Array:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_timestamp(arr.type):
        return arr.cast(UTC_US) if arr.type != UTC_US else arr
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), UTC_US)
    raise FeatureLookupError(
        f"{where}: column {name!r} must hold timestamps (the time each row's features are computed at), got "
        f"{arr.type}. Convert it, e.g. `df[{name!r}] = pd.to_datetime(df[{name!r}], utc=True)` (naive means UTC)."
    )


def evaluate_features(engine: Engine, tables: TableService | None, features: Sequence[Feature], points: pa.Table,
                      *, versions: Mapping[str, int | None] | None = None, outputs: Sequence[str] | None = None,
                      sources: dict[tuple[Any, ...], SourceRows] | None = None) -> pa.Table:
    """The values of ``features`` at every row of ``points``.

    ``points`` holds each feature's entity columns and timeseries column (by the feature's column names);
    a row's values use only source rows strictly before the row's time (and its window). ``versions``:
    ``{source table: Delta version}`` to read (default: latest). ``outputs``: column names (default: the
    features' names). Returns one column per feature, one row per point, in order.
    """
    outputs = list(outputs or [f.name for f in features])
    _check_outputs(features, outputs)
    out_name = {id(f): o for f, o in zip(features, outputs, strict=True)}
    versions = dict(versions or {})
    sources = sources if sources is not None else {}
    columns: dict[str, pa.Array] = {}
    for (skey, entity, ts), group in _groups(features).items():
        first = group[0]
        where = f"Feature {first.name!r}"
        missing = [c for c in [*entity, ts] if c not in points.column_names]
        if missing:
            raise FeatureLookupError(
                f"{where}: the DataFrame lacks column(s) {missing}; a row's features are computed for its entity "
                f"{list(entity)} at its time {ts!r}. Add them (columns: {points.column_names})."
            )
        needed = [*entity, ts, *(c for f in group for c in f.inputs)]
        rows: pa.Table | EventBatches
        if skey in sources:
            rows, version = sources[skey].rows, sources[skey].version
        else:  # read as it is aggregated, never held whole
            table = first.source.full_name() if isinstance(first.source, DeltaTableSource) else None
            rows, version = stream_source(tables, first, version=versions.get(table) if table else None,
                                          columns=needed)
        missing_src = [c for c in needed if c not in rows.schema.names]
        if missing_src:
            raise FeatureDefinitionError(
                f"{where}: the source has no column(s) {missing_src} (at version {version}); was it "
                "dropped or renamed? Fix the feature or the source."
            )
        q = pa.table({**{c: points.column(c) for c in entity},
                      ts: query_time_array(points.column(ts), ts, where=where)})
        aggs = [aggregation_for(f, out_name[id(f)]) for f in group]
        result = engine.aggregate(rows, q, entity=list(entity), timestamp=ts, query_timestamp=ts, aggregations=aggs)
        for a in aggs:
            columns[a.output] = result.column(a.output).combine_chunks()
    return pa.table({o: columns[o] for o in outputs})


def compute_range(engine: Engine, tables: TableService | None, features: Sequence[Feature], *,
                  start: dt.datetime | None = None, end: dt.datetime | None = None,
                  version: int | None = None, source_rows: SourceRows | None = None) -> pa.Table:
    """Feature values at every distinct ``(entity, time)`` of the source rows with ``start <= time <
    end`` (None: unbounded), each at its own time: the entity and timeseries columns of the features,
    then one column per feature, sorted by entity and time.

    All features must read the same source (they may differ in entity, timeseries column and window;
    the rows are the distinct combinations of all their key columns). ``version``: the source's Delta
    version (default latest). The source's filter restricts the rows aggregated, not the rows returned.
    ``source_rows``: the source's rows already read (for example only those a range's windows need:
    a value depends only on the rows inside its window, so the values are the same).
    """
    if not features:
        raise FeatureDefinitionError("compute_features needs at least one feature.")
    keys = {source_key(f.source) for f in features}
    request = [f.name for f in features if isinstance(f.source, RequestSource)]
    if request:
        raise FeatureDefinitionError(
            f"compute_features does not support RequestSource features {request}: their values come with the "
            "request. Use create_training_set, which takes them from the DataFrame."
        )
    if len(keys) > 1:
        names = sorted({f.source.full_name() for f in features})  # type: ignore[attr-defined]
        raise FeatureDefinitionError(
            f"compute_features computes features of one source at a time; these read {names}. Call it once per source."
        )
    first = features[0]
    key_cols = list(dict.fromkeys(c for f in features for c in [*(f.entity or []), str(f.timeseries_column)]))
    needed = [*key_cols, *(c for f in features for c in f.inputs)]
    table = first.source.full_name() if isinstance(first.source, DeltaTableSource) else None
    src = source_rows if source_rows is not None else load_source(tables, first, version=version, columns=needed)
    spine = src.spine
    missing = [c for c in key_cols if c not in spine.column_names]
    if missing:
        raise FeatureDefinitionError(f"compute_features: the source has no column(s) {missing}.")
    spine = spine.select(key_cols)
    for f in features:
        ts = spine.column(f.timeseries_column)
        if not pa.types.is_timestamp(ts.type):
            raise FeatureDefinitionError(
                f"Feature {f.name!r}: timeseries_column {f.timeseries_column!r} is {ts.type}, not a timestamp."
            )
    mask = None
    for f in features:
        ts_col = spine.column(f.timeseries_column)
        if start is not None:
            m = pc.greater_equal(ts_col, pa.scalar(_utc(start), UTC_US))
            mask = m if mask is None else pc.and_(mask, m)
        if end is not None:
            m = pc.less(ts_col, pa.scalar(_utc(end), UTC_US))
            mask = m if mask is None else pc.and_(mask, m)
    if mask is not None:
        spine = spine.filter(pc.fill_null(mask, False))
    spine = spine.group_by(key_cols, use_threads=False).aggregate([])
    spine = spine.select(key_cols).sort_by([(c, "ascending") for c in key_cols])
    values = evaluate_features(engine, tables, features, spine, versions={table: version} if table else None,
                               sources={source_key(first.source): src})
    out = spine
    for name in values.column_names:
        out = out.append_column(name, values.column(name))
    return out


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


__all__ = ["LIFETIME", "SourceRows", "aggregation_for", "compute_range", "evaluate_features", "load_source",
           "source_key", "source_schema", "stream_source", "validate_feature", "value_type", "window_rule"]
