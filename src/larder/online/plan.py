"""The plan of a feature spec's online assembly: everything that does not depend on the keys.

:func:`build_plan` binds each lookup of a :class:`~larder.training.FeatureSpec` to the online table and
the store its feature table is published to, and works out once what every lookup then repeats:
which features to read (an excluded output that no feature function uses is not read; the timestamp
key is read for a ``lookback_window``), which output each stored feature becomes, with its type and
its default converted to a Python value, how the caller's keys are encoded, and, per block of numbers
a store hands back, which rows of it become which outputs (:class:`BlockMap`, cached by the block's
names). :class:`~larder.online.assemble.OnlineFeatureAssembler` executes the plan for any number of
rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from larder.errors import FeatureLookupError, FeatureSpecError
from larder.names import parse_name
from larder.online.features import (
    FeatureGroupPlan,
    feature_reads,
    head_columns,
    head_lookup_step,
    missing_feature,
    timeline_lookup_step,
)
from larder.online.stores import StoreCache
from larder.online.stores.base import OnlineStore, OnlineTable, online_table_from_info
from larder.online.stores.specs import DynamoDBStoreSpec, RedisStoreSpec, SQLiteStoreSpec, parse_spec
from larder.training.spec import FeatureSpec, FunctionStep

if TYPE_CHECKING:
    from larder.training.spec import LookupStep

OnMissing = Literal["null", "error"]
FOUND_PREFIX = "_found_"
#: (output name, Arrow type, default as a Python value or None) of one output of a lookup
Output = tuple[str, pa.DataType, Any]


def found_labels(spec: FeatureSpec) -> list[str]:
    """A label per lookup of ``spec``, used for found flags: the table's short name, made unique
    (``houses``, ``houses_2``; the schema-qualified name when two schemas share a short name)."""
    shorts = [parse_name(s.table).name for s in spec.lookups]
    labels: list[str] = []
    for step, short in zip(spec.lookups, shorts, strict=True):
        base = short
        if shorts.count(short) > 1 and len({s.table for s in spec.lookups if parse_name(s.table).name == short}) > 1:
            qn = parse_name(step.table)
            base = f"{qn.catalog}_{qn.schema}_{qn.name}"
        label, n = base, 1
        while label in labels:
            n += 1
            label = f"{base}_{n}"
        labels.append(label)
    return labels


def location(value: Any, table: str) -> tuple[Any, OnlineTable | None]:
    """(store spec, online table or None) from the forms a ``stores`` mapping value may take."""
    if isinstance(value, tuple) and len(value) == 2:
        spec, online = value
        if isinstance(online, Mapping):
            online = online_table_from_info(dict(online))
        return parse_spec(spec), online
    if isinstance(value, Mapping) and "store" in value:
        online = value.get("online_table")
        if isinstance(online, Mapping):
            online = online_table_from_info(dict(online))
        return parse_spec(value["store"]), online
    if isinstance(value, (Mapping, SQLiteStoreSpec, DynamoDBStoreSpec, RedisStoreSpec)):
        return parse_spec(value), None
    from larder.online.publish import Publication  # the catalog's record: only when one is given

    if isinstance(value, Publication):
        return value.spec(), value.online_table
    raise FeatureSpecError(
        f"stores[{table!r}] must be a store spec, a (spec, OnlineTable) pair, a mapping "
        "{'store': spec, 'online_table': info} or a Publication; got " f"{type(value).__name__}."
    )


def table_from_step(step: LookupStep) -> OnlineTable:
    """The online table a lookup step implies (its keys and features with the pinned types)."""
    from larder.training.spec import parse_arrow_type

    fields = [pa.field(k, parse_arrow_type(t)) for k, t in zip(step.table_keys, step.key_types, strict=True)]
    fields += [pa.field(f, parse_arrow_type(t)) for f, t in zip(step.features, step.feature_types, strict=True)]
    return OnlineTable(name=step.table, primary_keys=list(step.table_keys), timestamp_key=None,
                       schema=pa.schema(fields))


@dataclass(frozen=True)
class BlockMap:
    """How one block of numbers a store returned (its feature names and type) maps to a lookup's outputs."""

    rows: list[int] | None  # the block rows output, one per output (None: every row once, in order)
    outs: list[Output]  # per output row
    names: list[str]  # output names per output row
    defaults: list[tuple[int, Any]]  # (output row, default) for outputs with a default
    retyped: bool  # some output's type differs from the block's: cast through Arrow
    #: ``rows`` as an index of the block's values: a slice when they are consecutive (a view, no copy)
    take: slice | list[int] | None = None


@dataclass(frozen=True)
class LookupPlan:
    """One lookup step bound to its online table and store, with what its execution needs."""

    step: LookupStep
    label: str  # of its found flags
    store: OnlineStore
    table: OnlineTable
    position: int  # of the step in the spec
    where: str  # the step described for error messages
    #: stored feature -> its outputs (usually one; a feature looked up under two names has two)
    outputs: dict[str, tuple[Output, ...]]
    read: list[str]  # features read: kept outputs, function inputs, the timestamp key for a lookback
    no_default: list[str]  # outputs without a default (named by on_missing="error")
    #: how the encoded keys are computed: ("int" | "str", caller column, numpy dtype) or None (general)
    simple_key: tuple[str, str, np.dtype[Any] | None] | None
    key_id: tuple[Any, ...]  # lookups with the same key columns and key types share their encoded keys
    #: a lookback window to apply (the online table has a timestamp key), else None
    lookback: timedelta | None
    block_maps: dict[tuple[Any, ...], BlockMap] = field(default_factory=dict)
    #: the same by the identity of the names tuple (a store hands the same tuple back for a table):
    #: id -> (names, type, map); the entry keeps the tuple alive, so its id is not reused meanwhile
    block_maps_by_id: dict[int, tuple[tuple[str, ...], pa.DataType, BlockMap]] = field(default_factory=dict)

    def block_map(self, names: tuple[str, ...], typ: pa.DataType) -> BlockMap:
        """Which rows of a block of features ``names`` (of type ``typ``) become which outputs (cached)."""
        by_id = self.block_maps_by_id.get(id(names))
        if by_id is not None and by_id[0] is names and by_id[1] is typ:
            return by_id[2]
        key = (names, typ)
        hit = self.block_maps.get(key)
        if hit is None:
            placed = [(r, out) for r, name in enumerate(names) for out in self.outputs.get(name, ())]
            rows = [r for r, _ in placed]
            outs = [out for _, out in placed]
            whole = rows == list(range(len(names)))
            run = bool(rows) and rows == list(range(rows[0], rows[0] + len(rows)))
            hit = BlockMap(None if whole else rows, outs, [o for o, _, _ in outs],
                           [(j, d) for j, (_, _, d) in enumerate(outs) if d is not None],
                           any(not t.equals(typ) for _, t, _ in outs),
                           None if whole else slice(rows[0], rows[0] + len(rows)) if run else rows)
            if len(self.block_maps) < 64:
                self.block_maps[key] = hit
        if len(self.block_maps_by_id) < 64:
            self.block_maps_by_id[id(names)] = (names, typ, hit)
        return hit


@dataclass(frozen=True)
class AssemblyPlan:
    """What executing a feature spec online needs that does not depend on the keys (built once)."""

    spec: FeatureSpec
    lookups: list[LookupPlan]
    functions: list[tuple[int, FunctionStep]]  # (position in the spec, step), in spec order
    key_columns: list[str]  # the caller's columns naming a row in a function's error messages
    optional_columns: list[str]  # timestamp lookup keys: the caller may leave them out online
    #: table (or declarative feature) -> (store spec, online table), for stores_info
    locations: dict[str, tuple[Any, OnlineTable]]
    #: declarative features, one group per online table (see :mod:`larder.online.features`)
    features: list[FeatureGroupPlan] = field(default_factory=list)
    _ordered: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    #: output layouts per (output columns, looked-up block names), filled by the output builders
    layouts: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [lk.label for lk in self.lookups]

    def ordered(self, names: tuple[str, ...]) -> list[str]:
        """Output columns for a caller with columns ``names``: those (minus ``exclude_columns``), then the
        spec's outputs (minus ``exclude_columns``)."""
        hit = self._ordered.get(names)
        if hit is None:
            excluded = set(self.spec.exclude_columns)
            given = set(names)
            hit = [c for c in names if c not in excluded]
            hit += [c for c in self.spec.produced_columns if c not in excluded and c not in given]
            if len(self._ordered) < 64:
                self._ordered[names] = hit
        return hit


def _outputs(step: LookupStep, where: str) -> dict[str, tuple[Output, ...]]:
    types = step.output_types
    outputs: dict[str, tuple[Output, ...]] = {}
    for f, out in zip(step.features, step.output_names, strict=True):
        typ = types[out]
        default = step.default_values.get(out)
        if default is not None:
            try:
                default = pa.scalar(default, type=typ).as_py()
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError) as exc:
                raise FeatureSpecError(
                    f"{where}: default value {default!r} of output {out!r} does not fit its type {typ}: {exc}. "
                    "Give a default of the feature's type."
                ) from exc
        outputs[f] = (*outputs.get(f, ()), (out, typ, default))
    return outputs


def simple_key(step: LookupStep, table: OnlineTable) -> tuple[str, str, np.dtype[Any] | None] | None:
    """A single integer or string key: encoded straight from the caller's values."""
    if len(step.table_keys) != 1:
        return None
    t = table.schema.field(step.table_keys[0]).type
    if pa.types.is_integer(t):
        return ("int", step.lookup_key[0], np.dtype(t.to_pandas_dtype()))
    if pa.types.is_string(t):
        return ("str", step.lookup_key[0], None)
    return None


def build_plan(spec: FeatureSpec, stores: Mapping[str, Any], cache: StoreCache) -> AssemblyPlan:
    """The plan of ``spec`` with each table read where ``stores`` says (see
    :class:`~larder.online.assemble.OnlineFeatureAssembler`); store clients come from ``cache``."""
    from larder.training.resolve import describe_step

    given = {parse_name(k).full: v for k, v in stores.items()}
    functions = [(i, s) for i, s in enumerate(spec.steps) if isinstance(s, FunctionStep)]
    excluded = set(spec.exclude_columns)
    function_inputs = {c for _, step in functions for c in step.input_bindings.values()}
    lookups: list[LookupPlan] = []
    locations: dict[str, tuple[Any, OnlineTable]] = {}
    for step, label in zip(spec.lookups, found_labels(spec), strict=True):
        if step.table not in given:
            raise FeatureSpecError(
                f"OnlineFeatureAssembler: no online store given for table {step.table!r}; stores has "
                f"{sorted(given)}. Add {step.table!r}: {{'store': <spec>, 'online_table': <info>}}."
            )
        store_spec, online = location(given[step.table], step.table)
        if online is None:
            online = table_from_step(step)
        missing = [f for f in step.features if f not in online.features]
        if missing:
            raise FeatureSpecError(
                f"Online table {online.name!r} lacks feature(s) {missing} that the feature spec looks up "
                f"(it has {online.features}). Publish them: publish_table({step.table!r}) without "
                "features=, or with these features."
            )
        position = spec.steps.index(step)
        where = describe_step(position, step)
        outputs = _outputs(step, where)
        read = [f for f in dict.fromkeys(step.features)
                if any(o not in excluded or o in function_inputs for o, _, _ in outputs[f])]
        lookback = step.lookback_window if online.timestamp_key else None
        if lookback is not None and online.timestamp_key not in read:
            read.append(online.timestamp_key)  # type: ignore[arg-type]
        key_types = tuple(online.schema.field(k).type for k in step.table_keys)
        locations[step.table] = (store_spec, online)
        lookups.append(LookupPlan(
            step=step, label=label, store=cache.get(store_spec), table=online, position=position, where=where,
            outputs=outputs, read=read,
            no_default=[o for o in step.output_names if step.default_values.get(o) is None],
            simple_key=simple_key(step, online),
            key_id=(tuple(step.lookup_key), tuple(step.key_types), key_types), lookback=lookback))
    feature_groups: list[FeatureGroupPlan] = []
    if spec.features:
        feature_groups = _feature_groups(spec, given, cache, locations)
    return AssemblyPlan(
        spec=spec, lookups=lookups, functions=functions, key_columns=list(dict.fromkeys(spec.key_columns)),
        optional_columns=[s.timestamp_lookup_key for s in spec.lookups if s.timestamp_lookup_key]
        + [str(s.timeseries_column) for s in spec.features if not s.is_request],
        locations=locations, features=feature_groups)


def _feature_groups(spec: FeatureSpec, given: Mapping[str, Any], cache: StoreCache,
                    locations: dict[str, tuple[Any, OnlineTable]]) -> list[FeatureGroupPlan]:
    """One plan per online table the spec's declarative features are read from (see
    :mod:`larder.online.features`); their locations go into ``locations``."""

    def locate(name: str) -> tuple[Any, OnlineTable | None]:
        key = parse_name(name).full if "." in name else name
        if key not in given:
            raise missing_feature(name, given)
        found = location(given[key], name)
        if found[1] is not None:
            locations[name] = (found[0], found[1])
        return found

    plans = []
    for store_spec, online, reads in feature_reads(spec, locate):
        step = reads[0].step
        lookup = timeline_lookup_step(step, online)
        position = spec.steps.index(step)
        lk = LookupPlan(
            step=lookup, label=f"__features_{online.name}", store=cache.get(store_spec), table=online,
            position=position, where=f"Feature #{position + 1} ({step.name!r})",
            outputs={c: ((c, pa.binary(), None),) for c in lookup.features}, read=list(lookup.features),
            no_default=[], simple_key=simple_key(lookup, online),
            key_id=(tuple(lookup.lookup_key), tuple(lookup.key_types),
                    tuple(online.schema.field(k).type for k in lookup.table_keys)), lookback=None)
        head = None
        heads = head_columns(reads, online)
        if heads is not None:
            table, columns = heads
            hstep = head_lookup_step(step, table, list(columns))
            head = LookupPlan(
                step=hstep, label=lk.label, store=lk.store, table=table, position=position, where=lk.where,
                outputs={c: ((out, table.schema.field(c).type, None),) for c, out in columns.items()},
                read=list(hstep.features), no_default=[], simple_key=lk.simple_key, key_id=lk.key_id, lookback=None)
        plans.append(FeatureGroupPlan(lk, reads, str(step.timeseries_column), head=head))
    return plans


def check_on_missing(on_missing: str) -> OnMissing:
    if on_missing not in ("error", "null"):
        raise FeatureLookupError(f"on_missing must be 'error' or 'null', got {on_missing!r}.")
    return on_missing  # type: ignore[return-value]


__all__ = ["FOUND_PREFIX", "AssemblyPlan", "BlockMap", "LookupPlan", "OnMissing", "build_plan", "found_labels",
           "location", "simple_key", "table_from_step"]
