"""Turning ``FeatureLookup`` / ``FeatureFunction`` lists into a pinned :class:`FeatureSpec`.

Everything that can be checked without the caller's DataFrame is checked here: tables and features
exist, the lookup key has as many columns as the table's entity key, time-series tables get a timestamp
lookup key (the leakage guard), default values fit their feature's type, functions exist and their
bindings name real parameters, and no two steps produce the same column. Table versions and function
versions current at this moment are pinned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from larder.errors import (
    FeatureLookupError,
    FeatureSpecError,
    FunctionError,
    LeakageError,
    OutputCollisionError,
)
from larder.offline.tables import TableService
from larder.training._code import b64, unb64
from larder.training.functions import FeatureFunction, FunctionService
from larder.training.lookup import FeatureLookup
from larder.training.spec import FeatureSpec, FeatureStep, FunctionStep, LookupStep, Step


def coerce_default(value: Any, typ: pa.DataType, *, where: str) -> Any:
    """Check that ``value`` fits Arrow type ``typ`` without loss; return it as a plain Python value."""
    if value is None:
        return None
    bad = FeatureLookupError(
        f"{where}: default value {value!r} ({type(value).__name__}) does not fit the feature's type {typ}. "
        f"Give a value of that type."
    )
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if pa.types.is_boolean(typ):
        if not isinstance(value, bool):
            raise bad
        return value
    if isinstance(value, bool):
        raise bad  # a bool is an int in Python, but never a number default
    if pa.types.is_integer(typ):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise bad
    elif pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        if not isinstance(value, (int, float, Decimal)):
            raise bad
    elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
        if not isinstance(value, str):
            raise bad
    elif pa.types.is_timestamp(typ):
        if not isinstance(value, dt.datetime):
            raise bad
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)  # naive means UTC
    elif pa.types.is_date(typ):
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            raise bad
    try:
        scalar = pa.scalar(value, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as exc:
        raise bad from exc
    out = scalar.as_py()
    if isinstance(value, (int, float)) and out != value:
        raise bad
    return out


def _outputs(step: Step) -> list[str]:
    return list(step.output_names)


def describe_step(i: int, step: Step) -> str:
    if isinstance(step, LookupStep):
        return f"FeatureLookup #{i + 1} (table {step.table!r})"
    if isinstance(step, FeatureStep):
        return f"Feature #{i + 1} ({step.name!r})"
    return f"FeatureFunction #{i + 1} ({step.name!r})"


def resolve_feature(tables: TableService, feature: Any) -> FeatureStep:
    """Validate a declarative feature against its source and pin the source's current Delta version."""
    from larder.declarative.compute import source_schema, validate_feature
    from larder.declarative.sources import DataFrameSource, RequestSource

    value_type, table, version = validate_feature(tables, feature)
    key_types: list[str] = []
    if not isinstance(feature.source, RequestSource):
        schema = source_schema(tables, feature)[0]
        key_types = [str(schema.field(c).type) for c in feature.entity]
    stored = None if isinstance(feature.source, DataFrameSource) else feature.to_dict()
    if stored is None:  # an in-memory source: the step carries the object (it cannot be saved with a model)
        stored = {"name": feature.name, "catalog_name": None, "schema_name": None,
                  "source": {"type": "dataframe", "name": feature.source.full_name()},
                  "function": feature.function.to_dict(), "entity": feature.entity,
                  "timeseries_column": feature.timeseries_column, "description": feature.description}
    return FeatureStep(feature=stored, output_type=str(value_type), source_table=table, source_version=version,
                       key_types=key_types, instance=feature)


def resolve_lookup(tables: TableService, lk: FeatureLookup, *, online: bool = False) -> LookupStep:
    """Pin ``lk`` against its table. ``online``: for an online lookup, where a time-series table's only
    meaning without ``timestamp_lookup_key`` is each key's latest row (what the store holds), so the
    leakage guard of training sets does not apply."""
    meta = tables.get_table(lk.table_name)
    full = meta.name
    snap = tables.snapshot(full)
    schema = snap.schema
    entity = meta.entity_keys
    ts_key = meta.timestamp_keys[0] if meta.timestamp_keys else None
    where = f"FeatureLookup({full!r})"
    if len(lk.lookup_key) != len(entity):
        tail = f" (its timestamp key {ts_key!r} is matched through timestamp_lookup_key)" if ts_key else ""
        raise FeatureLookupError(
            f"{where}: the table's primary key is {entity}{tail}, so lookup_key needs {len(entity)} column(s) "
            f"in that order; got {len(lk.lookup_key)}: {lk.lookup_key}."
        )
    all_keys = meta.all_keys
    non_keys = [f for f in schema.names if f not in all_keys]
    if lk.feature_names is None:
        features = non_keys
    else:
        keys = [f for f in lk.feature_names if f in all_keys]
        if keys:
            raise FeatureLookupError(
                f"{where}: {keys} are primary keys of the table, not features; their values are the lookup key "
                "(and timestamp) columns you already have. Remove them from feature_names."
            )
        unknown = [f for f in lk.feature_names if f not in schema.names]
        if unknown:
            raise FeatureLookupError(
                f"{where}: the table has no feature(s) {unknown} (at version {snap.version}). Its features are "
                f"{non_keys}."
            )
        features = list(lk.feature_names)
    if not features:
        raise FeatureLookupError(f"{where}: the table has no features besides its keys {all_keys}.")
    bad_renames = [k for k in lk.rename_outputs if k not in features]
    if bad_renames:
        raise FeatureLookupError(
            f"{where}: rename_outputs renames {bad_renames}, which this lookup does not select; it selects "
            f"{features}."
        )
    outputs = [lk.get_output_name(f) for f in features]
    dupes = sorted({o for o in outputs if outputs.count(o) > 1})
    if dupes:
        raise OutputCollisionError(
            f"{where}: rename_outputs maps several features to {dupes}. Give each feature its own output name."
        )
    types = {o: schema.field(f).type for o, f in zip(outputs, features, strict=True)}
    defaults: dict[str, Any] = {}
    for out, value in lk.default_values.items():
        if out not in types:
            hint = ""
            if out in lk.rename_outputs:
                hint = f" {out!r} is renamed to {lk.rename_outputs[out]!r}: key the default by the output name."
            raise FeatureLookupError(
                f"{where}: default_values names {out!r}, which is not an output of this lookup; its outputs are "
                f"{outputs}.{hint}"
            )
        if value is not None:
            defaults[out] = coerce_default(value, types[out], where=f"{where}, output {out!r}")
    if ts_key is None:
        if lk.timestamp_lookup_key is not None:
            raise FeatureLookupError(
                f"{where}: timestamp_lookup_key={lk.timestamp_lookup_key!r} was given but the table has no "
                "timestamp key (it holds one row per key, not a time series). Remove timestamp_lookup_key."
            )
        if lk.lookback_window is not None:
            raise FeatureLookupError(
                f"{where}: lookback_window applies only to time-series tables; the table has no timestamp key."
            )
        if lk.allow_latest_value:
            raise FeatureLookupError(f"{where}: allow_latest_value applies only to time-series tables.")
    elif lk.timestamp_lookup_key is None:
        if lk.lookback_window is not None:
            raise FeatureLookupError(
                f"{where}: lookback_window needs timestamp_lookup_key (the point in time it counts back from)."
            )
        if not (lk.allow_latest_value or online):
            raise LeakageError(
                f"{where}: the table is a time series (timestamp key {ts_key!r}) and no timestamp_lookup_key was "
                "given, so every row would get each key's latest value, including values from after that row's "
                "time (leakage). Pass timestamp_lookup_key='<timestamp column of your DataFrame>', or, to take "
                "the latest value on purpose, allow_latest_value=True."
            )
    elif lk.allow_latest_value:
        raise FeatureLookupError(
            f"{where}: allow_latest_value=True contradicts timestamp_lookup_key={lk.timestamp_lookup_key!r}; "
            "remove one of them."
        )
    return LookupStep(
        table=full, table_version=snap.version, lookup_key=list(lk.lookup_key), table_keys=list(entity),
        key_types=[str(schema.field(k).type) for k in entity], features=features, output_names=outputs,
        feature_types=[str(types[o]) for o in outputs], timestamp_key=ts_key,
        timestamp_lookup_key=lk.timestamp_lookup_key, lookback_window=lk.lookback_window,
        default_values=defaults,
        allow_latest_value=lk.allow_latest_value or (online and ts_key is not None and lk.timestamp_lookup_key is None),
    )


def resolve_function(functions: FunctionService, ff: FeatureFunction) -> FunctionStep:
    info = functions.get_function(ff.udf_name)
    params = {p["name"]: p for p in info.parameters}
    unknown = [p for p in ff.input_bindings if p not in params]
    if unknown:
        raise FunctionError(
            f"FeatureFunction({info.name!r}): input_bindings names parameter(s) {unknown} that the function does "
            f"not have; its signature is {info.signature}."
        )
    unbound = [p for p, d in params.items() if p not in ff.input_bindings and not d.get("has_default")]
    if unbound:
        example = ", ".join(f"{p!r}: '<column>'" for p in unbound)
        raise FunctionError(
            f"FeatureFunction({info.name!r}): parameter(s) {unbound} are not bound to a column; add them to "
            f"input_bindings, e.g. input_bindings={{{example}}}. Signature: {info.signature}."
        )
    # bindings in signature order, so the spec reads like the function
    bindings = {p: ff.input_bindings[p] for p in params if p in ff.input_bindings}
    return FunctionStep(
        name=info.name, version=info.version, input_bindings=bindings, output_name=ff.output_name,
        python_name=info.python_name, source=info.source, code=info.code, parameters=info.parameters,
        return_type=info.return_type, output_type=info.output_type, mode=info.mode,
        environment=info.environment, pickle=unb64(b64(info.pickle)),
    )


def check_steps(steps: Sequence[Step]) -> None:
    """Output collisions between steps, and functions binding to a column produced only later."""
    owner: dict[str, int] = {}
    for i, step in enumerate(steps):
        for out in _outputs(step):
            if out in owner:
                j = owner[out]
                fix = ("rename one lookup's output with rename_outputs={...}" if isinstance(step, LookupStep)
                       else "give the Feature another name" if isinstance(step, FeatureStep)
                       else "give the function another output_name")
                raise OutputCollisionError(
                    f"{describe_step(j, steps[j])} and {describe_step(i, step)} both produce column {out!r}; "
                    f"{fix}."
                )
            owner[out] = i
    for i, step in enumerate(steps):
        if not isinstance(step, FunctionStep):
            continue
        for param, col in step.input_bindings.items():
            producer = owner.get(col)
            if producer is not None and producer > i:
                raise FunctionError(
                    f"{describe_step(i, step)} binds parameter {param!r} to {col!r}, which "
                    f"{describe_step(producer, steps[producer])} produces after it. Steps apply in order: list the function "
                    "after that step."
                )
    for i, step in enumerate(steps):
        if isinstance(step, (LookupStep, FeatureStep)):
            produced = [c for c in step.input_columns if c in owner]
            if produced:
                j = owner[produced[0]]
                raise FeatureLookupError(
                    f"{describe_step(i, step)} uses {produced} as lookup/timestamp key, but that column is produced by "
                    f"{describe_step(j, steps[j])}; lookup keys, entity and timeseries columns must be columns of the "
                    "DataFrame you pass."
                )


def build_spec(tables: TableService, functions: FunctionService,
               features: Sequence[Any] | FeatureLookup | FeatureFunction,
               exclude_columns: str | Sequence[str] | None = None, *, name: str | None = None,
               description: str | None = None, online: bool = False) -> FeatureSpec:
    """Resolve and pin ``features`` (FeatureLookup, FeatureFunction and declarative Feature objects)
    into a :class:`FeatureSpec` (no DataFrame needed); ``online`` for a spec only ever looked up online
    (see :func:`resolve_lookup`)."""
    from larder.declarative.feature import Feature

    if isinstance(features, (FeatureLookup, FeatureFunction, Feature)):
        features = [features]
    steps: list[Step] = []
    for item in features or []:
        if isinstance(item, FeatureLookup):
            steps.append(resolve_lookup(tables, item, online=online))
        elif isinstance(item, FeatureFunction):
            steps.append(resolve_function(functions, item))
        elif isinstance(item, Feature):
            steps.append(resolve_feature(tables, item))
        else:
            raise FeatureSpecError(
                f"Features must be FeatureLookup or FeatureFunction objects (or declarative Feature objects), got "
                f"{type(item).__name__} {item!r}."
            )
    check_steps(steps)
    excl = [exclude_columns] if isinstance(exclude_columns, str) else list(exclude_columns or [])
    return FeatureSpec(steps=steps, exclude_columns=excl, name=name, description=description)


__all__ = ["build_spec", "check_steps", "coerce_default", "describe_step", "resolve_feature", "resolve_function",
           "resolve_lookup"]
