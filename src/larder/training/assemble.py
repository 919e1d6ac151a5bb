"""Executing a :class:`FeatureSpec` against a caller's DataFrame.

The pieces are shared by the offline path (training sets, ``score_batch``) and the online path (a model
serving requests), so that both produce the same feature vector for the same keys and time:

* :func:`validate_frame` checks a frame against a spec (key and timestamp columns present and typed
  right, request-time function inputs present, no output colliding with a column of the frame);
* :func:`assemble_offline` does point-in-time joins on the pinned (or latest) Delta versions, then
  :func:`apply_defaults` and :func:`apply_functions`, then drops ``exclude_columns``;
* an online interpreter does its key lookups, then the same :func:`apply_defaults` (which also gives
  every looked-up column its feature table's Arrow type, hence the same pandas dtype) and the same
  :func:`apply_functions`.

The result always has exactly the caller's rows, in the caller's order and with the caller's index:
the caller's columns (minus excluded ones), then each step's output columns in spec order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from larder.context import Context
from larder.errors import FeatureLookupError, FeatureSpecError, FunctionError, OutputCollisionError
from larder.offline.pit import PitSource, release_memory
from larder.offline.pit_gather import float_values
from larder.offline.tables import TableService
from larder.training.execute import series_to_arrow
from larder.training.resolve import describe_step
from larder.training.spec import FeatureSpec, FeatureStep, FunctionStep, LookupStep, Step, parse_arrow_type

_HIT = "__larder_hit_{}"


def as_pandas(df: Any, *, what: str = "df") -> pd.DataFrame:
    """Accept a pandas DataFrame, a pyarrow Table or a polars DataFrame; return pandas."""
    if isinstance(df, pd.DataFrame):
        out = df
    elif isinstance(df, (pa.Table, pa.RecordBatch)):
        out = df.to_pandas()
    elif type(df).__module__.startswith("polars"):
        out = df.to_pandas()
    elif type(df).__module__.startswith("pyspark"):
        out = df.toPandas()
    else:
        raise FeatureLookupError(
            f"{what} must be a pandas DataFrame (or a pyarrow Table / polars DataFrame), got {type(df).__name__}."
        )
    dupes = out.columns[out.columns.duplicated()].tolist()
    if dupes:
        raise FeatureLookupError(f"{what} has duplicate column names {dupes}; make them unique.")
    bad = [c for c in out.columns if not isinstance(c, str)]
    if bad:
        raise FeatureLookupError(f"{what} has non-string column names {bad}; rename them to strings.")
    return out


def _arrow_col(series: pd.Series) -> pa.Array:
    try:
        arr = series_to_arrow(series)
    except OverflowError as exc:
        raise FeatureLookupError(
            f"Column {series.name!r} holds an integer outside the signed 64-bit range ({exc}); no feature "
            "table can store such a key. Check the value, or use a string key."
        ) from exc
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise FeatureLookupError(
            f"Column {series.name!r} mixes value types ({exc}); give it one type."
        ) from exc
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def _family(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "floating point"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_null(t):
        return "null"
    return str(t)


def _key_array(series: pd.Series, step: LookupStep, j: int, *, where: str) -> pa.Array:
    """The caller's key column as an Arrow array comparable with the table's key ``j``."""
    col, key = step.lookup_key[j], step.table_keys[j]
    want = parse_arrow_type(step.key_types[j])
    arr = _arrow_col(series)
    have, need = _family(arr.type), _family(want)
    if have == need or have == "null":
        return arr
    if have == "floating point" and need == "integer":
        # pandas turns an integer column with missing values into float64: accept whole numbers
        finite = pc.drop_null(arr)
        if pc.all(pc.equal(pc.floor(finite), finite)).as_py() in (True, None):
            try:
                return pc.cast(arr, pa.int64())
            except pa.ArrowInvalid as exc:  # whole numbers beyond the 64-bit range
                raise FeatureLookupError(
                    f"{where}: lookup key column {col!r} holds a number outside the signed 64-bit range of the "
                    f"table's key {key!r} ({exc}); no row could match. Check the value."
                ) from exc
    pandas_type = {"integer": "int64", "string": "str", "floating point": "float64", "boolean": "bool"}.get(need)
    fix = f" Convert it, e.g. `df[{col!r}] = df[{col!r}].astype({pandas_type!r})`." if pandas_type else ""
    raise FeatureLookupError(
        f"{where}: lookup key column {col!r} of the DataFrame has type {arr.type} ({have}) but the table's key "
        f"{key!r} is {want} ({need}), so no row could match.{fix}"
    )


def _time_array(series: pd.Series, col: str, *, where: str) -> pa.Array:
    arr = _arrow_col(series)
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type) or pa.types.is_null(arr.type):
        return arr
    hint = (f" Parse it first: `df[{col!r}] = pd.to_datetime(df[{col!r}], utc=True)` (naive timestamps are taken "
            "as UTC)." if _family(arr.type) == "string" or pd.api.types.is_object_dtype(series.dtype) else
            f" Convert it to timestamps, e.g. `pd.to_datetime(df[{col!r}], utc=True)` (naive timestamps mean UTC).")
    raise FeatureLookupError(
        f"{where}: timestamp lookup key {col!r} has type {arr.type}, not a timestamp.{hint}"
    )


def _step_outputs(step: Step) -> list[str]:
    return list(step.output_names)


def _validate_feature_step(step: FeatureStep, df: pd.DataFrame, cols: set[str], where: str) -> None:
    missing = [c for c in step.input_columns if c not in cols]
    if missing:
        what = ("the request column" if step.is_request else
                f"its entity {step.entity} and timeseries column {step.timeseries_column!r}")
        raise FeatureLookupError(
            f"{where}: column(s) {missing} are not in the DataFrame (columns: {list(df.columns)}); the feature needs "
            f"{what}. Add them (a training row's features are computed for its entity at its time)."
        )
    if step.is_request:
        return
    ts = str(step.timeseries_column)
    if ts in df.columns:
        _time_array(df[ts], ts, where=where)
    for j, c in enumerate(step.entity):
        if c in df.columns and j < len(step.key_types):
            have, need = _family(_arrow_col(df[c]).type), _family(parse_arrow_type(step.key_types[j]))
            if have not in (need, "null") and not (have == "floating point" and need == "integer"):
                raise FeatureLookupError(
                    f"{where}: entity column {c!r} of the DataFrame is {have} but the source's is {need}, so no "
                    "row could match; convert it."
                )


def validate_frame(spec: FeatureSpec, df: pd.DataFrame, *, override_with_input_columns: bool = False,
                   extra_columns: Sequence[str] = ()) -> None:
    """Check ``df`` against ``spec`` before any work: raises a :class:`~larder.errors.LarderError`
    subclass naming the column and the fix. ``extra_columns`` are columns the caller will add (none
    are needed by the spec itself)."""
    cols = set(df.columns) | set(extra_columns)
    produced: set[str] = set()
    for i, step in enumerate(spec.steps):
        where = describe_step(i, step)
        if isinstance(step, LookupStep):
            missing = [c for c in step.lookup_key if c not in cols]
            if missing:
                raise FeatureLookupError(
                    f"{where}: lookup key column(s) {missing} are not in the DataFrame (columns: {list(df.columns)}). "
                    f"Add them, or pass lookup_key with the names your DataFrame uses for the table's key "
                    f"{step.table_keys}."
                )
            for j, c in enumerate(step.lookup_key):
                if c in df.columns:
                    _key_array(df[c], step, j, where=where)
            if step.timestamp_lookup_key:
                ts = step.timestamp_lookup_key
                if ts not in cols:
                    raise FeatureLookupError(
                        f"{where}: timestamp lookup key {ts!r} is not in the DataFrame (columns: {list(df.columns)})."
                    )
                if ts in df.columns:
                    _time_array(df[ts], ts, where=where)
        elif isinstance(step, FeatureStep):
            _validate_feature_step(step, df, cols, where)
        else:
            missing = [c for c in step.input_bindings.values() if c not in cols and c not in produced]
            if missing:
                raise FunctionError(
                    f"{where}: input column(s) {missing} are neither in the DataFrame nor produced by an earlier "
                    f"lookup or function. Bind the function to existing columns (DataFrame columns: "
                    f"{list(df.columns)}; produced before it: {sorted(produced)})."
                )
        for out in _step_outputs(step):
            if out in df.columns and not override_with_input_columns:
                fix = (f"rename the lookup's output with rename_outputs={{{out!r}: '<new name>'}}"
                       if isinstance(step, LookupStep) else "give the Feature another name"
                       if isinstance(step, FeatureStep) else "give the FeatureFunction another output_name")
                raise OutputCollisionError(
                    f"{where} produces column {out!r}, which the DataFrame already has. Drop or rename the "
                    f"DataFrame's column, or {fix}."
                )
            produced.add(out)
    unknown = [c for c in spec.exclude_columns if c not in cols and c not in produced]
    if unknown:
        raise FeatureLookupError(
            f"exclude_columns names {unknown}, which are neither columns of the DataFrame nor outputs of the "
            f"features (outputs: {spec.produced_columns})."
        )


def apply_defaults(step: LookupStep, df: pd.DataFrame, matched: Any) -> pd.DataFrame:
    """Give ``step``'s output columns of ``df`` their feature types and, where ``matched`` is False
    (no feature row for that row's key/time), the lookup's default values.

    ``df`` must hold every output column of the step; ``matched`` is a boolean per row. Returns a new
    frame (``df`` is not modified). The online path calls this after its key lookups.
    """
    out = df.copy(deep=False)
    hit = _bool_mask(matched, len(df))
    types = step.output_types
    for name in step.output_names:
        if name not in df.columns:
            raise FeatureSpecError(f"apply_defaults: column {name!r} of lookup on {step.table!r} is missing.")
        typ = types[name]
        try:
            arr = series_to_arrow(df[name], typ)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise FeatureLookupError(
                f"Column {name!r} (from table {step.table!r}) does not hold {typ} values: {exc}"
            ) from exc
        out[name] = _fill(arr, hit, step.default_values.get(name), typ).to_pandas().set_axis(df.index)
    return out


def _bool_mask(matched: Any, n: int) -> pa.Array:
    if isinstance(matched, (pa.Array, pa.ChunkedArray)):
        mask = matched.combine_chunks() if isinstance(matched, pa.ChunkedArray) else matched
    else:
        mask = pa.array(np.asarray(matched, dtype=bool))
    if len(mask) != n:
        raise FeatureSpecError(f"apply_defaults: matched has {len(mask)} values for {n} rows.")
    return mask.fill_null(False)


def _fill(arr: pa.Array, hit: pa.Array, default: Any, typ: pa.DataType) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if default is None or len(arr) == 0:
        return arr
    return pc.if_else(hit, arr, pa.scalar(default, type=typ))


def apply_functions(spec_or_steps: FeatureSpec | Sequence[Step], df: pd.DataFrame, *,
                    override_with_input_columns: bool = False,
                    key_columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Run the spec's feature functions in order on ``df``; each adds its ``output_name`` column.

    A function sees only its bound input columns. With ``override_with_input_columns``, a function
    whose output column is already in ``df`` is skipped (the given values win). ``key_columns`` name
    the columns identifying a row in error messages (default: the spec's lookup and timestamp keys).
    """
    steps = spec_or_steps.steps if isinstance(spec_or_steps, FeatureSpec) else list(spec_or_steps)
    if key_columns is None:
        key_columns = (spec_or_steps.key_columns if isinstance(spec_or_steps, FeatureSpec)
                       else [c for s in steps if isinstance(s, LookupStep) for c in s.input_columns])
    index = df.index
    frame = df.reset_index(drop=True)  # positional results; the caller's index is restored at the end
    n = len(frame)
    keys = [c for c in dict.fromkeys(key_columns) if c in frame.columns]
    for i, step in enumerate(steps):
        if not isinstance(step, FunctionStep):
            continue
        if override_with_input_columns and step.output_name in frame.columns:
            continue
        missing = [c for c in step.input_bindings.values() if c not in frame.columns]
        if missing:
            raise FunctionError(
                f"{describe_step(i, step)}: input column(s) {missing} are missing (columns: {list(frame.columns)})."
            )
        inputs = {p: frame[c] for p, c in step.input_bindings.items()}
        result = step.runner.run_arrow(inputs, n, frame[keys] if keys else None)
        frame[step.output_name] = result.to_pandas()
    frame.index = index
    return frame


def time_bounds(times: pa.Array, lookback: Any) -> tuple[Any, Any] | None:
    """The range of feature timestamps (UTC datetimes, None for unbounded) that rows at ``times`` can
    match: up to the latest time, and back to the earliest minus ``lookback`` when a lookback window is
    set. Dates and sub-microsecond times are widened outwards, never narrowed. None when no row has a
    time (nothing can match).

    >>> import datetime as dt
    >>> times = pa.array([dt.datetime(2024, 1, 5), None, dt.datetime(2024, 1, 2)])
    >>> time_bounds(times, dt.timedelta(days=1))
    (datetime.datetime(2024, 1, 1, 0, 0, tzinfo=<UTC>), datetime.datetime(2024, 1, 5, 0, 0, tzinfo=<UTC>))
    """
    import datetime as dt

    import pyarrow.compute as pc

    extra_high = dt.timedelta(0)
    if pa.types.is_date(times.type):
        times = times.cast(pa.timestamp("us"))
        extra_high = dt.timedelta(days=1)  # however a date is compared with a time, it is within that day
    if pa.types.is_null(times.type):
        return None
    if times.type.tz is None:
        times = pc.assume_timezone(times.cast(pa.timestamp(times.type.unit)), "UTC")
    times = pc.cast(times, pa.timestamp("us", tz="UTC"), safe=False)  # truncates ns: low and high floor
    bounds = pc.min_max(times)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if high is None:
        return None
    if times.null_count == 0 and low is None:  # pragma: no cover - min is None only when all are null
        return None
    return (low - lookback if lookback is not None else None), high + extra_high


def _time_filtered(dataset: Any, column: str, times: pa.Array, lookback: Any) -> Any:
    """``dataset`` restricted to the feature rows that rows at ``times`` can match (Databricks'
    ``use_timeseries_filtering``): the same join result from fewer rows read."""
    import pyarrow.dataset as ds

    bounds = time_bounds(times, lookback)
    field = ds.field(column)
    if bounds is None:
        return dataset.filter(ds.scalar(False))  # no row has a time: none can match
    low, high = bounds
    typ = dataset.schema.field(column).type
    condition = field <= pa.scalar(high, type=pa.timestamp("us", tz="UTC")).cast(typ)
    if low is not None:
        condition = condition & (field >= pa.scalar(low, type=pa.timestamp("us", tz="UTC")).cast(typ))
    return dataset.filter(condition)


def _spine_and_sources(tables: TableService, df: pd.DataFrame, lookups: list[tuple[int, LookupStep]],
                       use_pinned_versions: bool, time_filter: bool = False) -> tuple[pa.Table, list[PitSource]]:
    spine_cols: dict[str, pa.Array] = {}

    def key(name: str, col: str, step: LookupStep, j: int, where: str) -> None:
        spine_cols[name] = _key_array(df[col], step, j, where=where)

    def time(name: str, col: str, where: str) -> None:
        spine_cols[name] = _time_array(df[col], col, where=where)

    sources = []
    for (_, step), source in zip(lookups, lookup_sources(tables, lookups, use_pinned_versions, key=key, time=time),
                                 strict=True):
        ts_name = source.timestamp_lookup_key
        if time_filter and ts_name is not None and step.timestamp_key is not None \
                and isinstance(source.data, pads.Dataset):  # a Spark source is left as it is
            source = replace(source, data=_time_filtered(source.data, step.timestamp_key, spine_cols[ts_name],
                                                         step.lookback_window))
        sources.append(source)
    return pa.table(spine_cols), sources


def lookup_sources(tables: TableService, lookups: list[tuple[int, LookupStep]], use_pinned_versions: bool, *,
                   key: Callable[[str, str, LookupStep, int, str], None],
                   time: Callable[[str, str, str], None]) -> list[PitSource]:
    """The point-in-time sources of ``lookups`` (:func:`lookup_source`), each engine making the spine's
    columns: ``key(name, caller column, step, j, where)`` puts lookup key ``j`` of a step under ``name``
    (``__larder_k{i}_{j}``), ``time(name, caller column, where)`` its timestamp lookup key
    (``__larder_t{i}``); ``where`` describes the step for error messages."""
    sources = []
    for i, step in lookups:
        where = describe_step(i, step)
        key_names = []
        for j, col in enumerate(step.lookup_key):
            name = f"__larder_k{i}_{j}"
            key(name, col, step, j, where)
            key_names.append(name)
        ts_name = None
        if step.timestamp_lookup_key:
            ts_name = f"__larder_t{i}"
            time(ts_name, step.timestamp_lookup_key, where)
        sources.append(lookup_source(tables, i, step, key_names, ts_name, use_pinned_versions))
    return sources


def lookup_source(tables: TableService, i: int, step: LookupStep, key_names: list[str], ts_name: str | None,
                  use_pinned_versions: bool, data: Callable[[Any], Any] | None = None) -> PitSource:
    """The point-in-time source of lookup step ``i``: its table at the pinned (or latest) version, read
    as ``data(snapshot)`` (the engine's :meth:`~larder.offline.engine.Engine.source_data`), matched on the
    spine's ``key_names`` (and ``ts_name``), with outputs ``__larder_f{i}_{j}`` and ``__larder_hit_{i}``."""
    where = describe_step(i, step)
    snap = tables.snapshot(step.table, step.table_version if use_pinned_versions else None)
    missing = [c for c in [*step.table_keys, *step.features, *([step.timestamp_key] if step.timestamp_key else [])]
               if c not in snap.schema.names]
    if missing:
        raise FeatureSpecError(
            f"{where}: the table at version {snap.version} has no column(s) {missing} that the feature spec "
            "uses. Was it dropped and recreated? Recreate the training set or feature spec."
        )
    latest = step.timestamp_key is not None and step.timestamp_lookup_key is None
    return PitSource(
        data=(data or tables.ctx.engine.source_data)(snap), keys=list(step.table_keys), lookup_keys=key_names,
        features=list(step.features), output_names=[f"__larder_f{i}_{j}" for j in range(len(step.features))],
        indicator=_HIT.format(i),
        timestamp_key=None if latest else step.timestamp_key, timestamp_lookup_key=ts_name,
        lookback_window=step.lookback_window, tiebreak=step.timestamp_key if latest else None,
        assume_unique=not latest, name=step.table,
    )


def assemble_offline(ctx: Context, spec: FeatureSpec, df: Any, *, use_pinned_versions: bool = True,
                     override_with_input_columns: bool = False, tables: TableService | None = None,
                     time_filter: bool = False) -> pd.DataFrame:
    """Build the features of ``spec`` for every row of ``df`` from the offline (Delta) tables.

    Parameters
    ----------
    ctx:
        The larder context (catalog and storage).
    spec:
        The feature spec to execute.
    df:
        The caller's rows: lookup keys, timestamp lookup keys, request-time function inputs and anything
        else (labels, ids), which is passed through.
    use_pinned_versions:
        Read each table at the Delta version pinned in the spec (reproducible training sets); False reads
        the latest versions (batch scoring on fresh data).
    override_with_input_columns:
        A lookup or function output column already present in ``df`` keeps ``df``'s values instead of
        raising :class:`~larder.errors.OutputCollisionError` (``score_batch`` semantics).
    time_filter:
        Read from each time-series table only the rows ``df``'s times can match (see
        :func:`time_bounds`); the result is the same.

    Returns
    -------
    pandas.DataFrame
        ``df``'s rows in order with ``df``'s index: ``df``'s columns, then the features, minus
        ``spec.exclude_columns``.
    """
    frame_in = as_pandas(df)
    validate_frame(spec, frame_in, override_with_input_columns=override_with_input_columns)
    tables = tables or TableService(ctx)
    frame = frame_in.reset_index(drop=True)
    lookups = [(i, s) for i, s in enumerate(spec.steps) if isinstance(s, LookupStep)
               and not (override_with_input_columns and all(o in frame.columns for o in s.output_names))]
    if lookups:
        spine, sources = _spine_and_sources(tables, frame, lookups, use_pinned_versions, time_filter)
        joined = ctx.engine.point_in_time_join(spine, sources)
        del spine, sources
        # Column by column, each Arrow column released once converted: the Arrow and pandas copies of
        # the features never coexist whole (the peak stays near one copy plus one column).
        arrow_cols = {name: joined.column(name) for name in joined.column_names if name.startswith("__larder_")
                      and not name.startswith(("__larder_k", "__larder_t"))}
        del joined
        new_cols: dict[str, Any] = {}
        for i, step in lookups:
            hit = arrow_cols.pop(_HIT.format(i)).combine_chunks()
            for j, (feat_out, typ) in enumerate(step.output_types.items()):
                col = arrow_cols.pop(f"__larder_f{i}_{j}")
                if override_with_input_columns and feat_out in frame.columns:
                    continue
                arr = col.combine_chunks()
                del col
                if arr.type != typ:  # the column was widened by a later write; keep the spec's type
                    try:
                        arr = arr.cast(typ)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                        raise FeatureSpecError(
                            f"{describe_step(i, step)}: feature {step.features[j]!r} now has type {arr.type}, and "
                            f"its values no longer fit the spec's type {typ} ({exc}). Recreate the training set "
                            "or feature spec."
                        ) from exc
                arr = _fill(arr, hit, step.default_values.get(feat_out), typ)
                values = float_values(arr)  # NaN already under every null: pandas can use the buffer itself
                new_cols[feat_out] = values if values is not None else arr.to_pandas()
                del arr, values
        if new_cols:
            # one block per column (copy=False): no consolidation copy of the features
            features = pd.DataFrame(new_cols, index=frame.index, copy=False)
            del new_cols
            frame = pd.concat([frame, features], axis=1)
            del features
        release_memory()
    features = [s for s in spec.features if not s.is_request
                and not (override_with_input_columns and s.output_name in frame.columns)]
    if features:
        frame = _with_features(ctx, tables, frame, features, use_pinned_versions)
    frame = apply_functions(spec, frame, override_with_input_columns=override_with_input_columns)
    keep = [c for c in frame.columns if c not in set(spec.exclude_columns)]
    produced = [c for c in spec.produced_columns if c in keep and c not in frame_in.columns]
    ordered = [c for c in frame_in.columns if c in keep] + produced
    out = frame[ordered]
    out.index = frame_in.index
    return out


def _with_features(ctx: Context, tables: TableService, frame: pd.DataFrame, steps: list[FeatureStep],
                   use_pinned_versions: bool) -> pd.DataFrame:
    """``frame`` with each declarative feature computed at its rows' entity and time."""
    from larder.declarative.compute import evaluate_features

    cols = list(dict.fromkeys(c for s in steps for c in s.input_columns))
    points = pa.table({c: _arrow_col(frame[c]) for c in cols})
    versions = {s.source_table: s.source_version for s in steps if s.source_table} if use_pinned_versions else None
    values = evaluate_features(ctx.engine, tables, [s.definition for s in steps], points, versions=versions,
                               outputs=[s.output_name for s in steps])
    new_cols: dict[str, Any] = {}
    for s in steps:
        arr = values.column(s.output_name).combine_chunks()
        if arr.type != s.arrow_type:
            arr = arr.cast(s.arrow_type)
        floats = float_values(arr)
        new_cols[s.output_name] = floats if floats is not None else arr.to_pandas()
    return pd.concat([frame, pd.DataFrame(new_cols, index=frame.index, copy=False)], axis=1)


def lookup_outputs(spec: FeatureSpec) -> Mapping[str, LookupStep]:
    """``{output column: lookup step}`` for every looked-up column of ``spec``."""
    return {o: s for s in spec.lookups for o in s.output_names}


__all__ = ["apply_defaults", "apply_functions", "as_pandas", "assemble_offline", "lookup_outputs", "validate_frame"]
