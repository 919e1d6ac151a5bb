"""Declarative features in online assembly: timelines read by key and evaluated at the request time.

A declarative feature (a :class:`~larder.training.spec.FeatureStep`) is published as a *timeline* in
an online table keyed by the feature's entity (see :mod:`larder.declarative.online`): per key, the exact
value at the materialization time and at every later instant it changes; one binary value per key holds
the timelines of every feature of the group. Online assembly reads each group with one
``read_values`` of that value, then picks, per row, the value holding at the row's request time: the
caller's value of the feature's timeseries column when given (not null), else now. A key absent from
the store has no events: the operator's empty-window value (0 for counts, else null). A request time
earlier than the published state (before the time its first value holds) gets null.

The ``stores`` mapping of the assembler names a feature's location under the feature's full name,
like a table's. :func:`larder.online.plan.build_plan` turns :func:`feature_reads` into one
:class:`FeatureGroupPlan` per online table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from larder.declarative.compute import aggregation_for
from larder.declarative.online import (
    HEAD_FROM,
    HEAD_UNTIL,
    TIMELINES,
    empty_value,
    from_plain,
    group_bounds,
    head_schema,
    section_values,
    timelines_of,
)
from larder.errors import FeatureSpecError
from larder.online.stores.base import OnlineTable
from larder.training.spec import FeatureSpec, FeatureStep, LookupStep

if TYPE_CHECKING:
    from larder.online.keys import Caller


@dataclass(frozen=True)
class FeatureRead:
    """One feature of a group: its step, the position of its timeline in a key's value, its window rule
    and function, its output name and type."""

    step: FeatureStep
    section: int
    column: int
    rule: Any  # larder.offline.aggregate.WindowRule
    function: Any  # AggregationFunction | ColumnSelection
    typ: pa.DataType
    output: str
    #: "float" (a float64 block row), "int" (an int64 block row when no value is null) or "other"
    block: str


@dataclass(frozen=True)
class FeatureGroupPlan:
    """Features read from one online table: a lookup of their timeline columns (a
    :class:`~larder.online.plan.LookupPlan`), then evaluation at the request time."""

    lookup: Any
    features: list[FeatureRead]
    time_column: str
    #: a lookup of the features' head columns (:data:`larder.declarative.online.HEAD_KEY`) when every
    #: feature of the group has one: the values at the materialization time and the request times
    #: they hold for, read like a table's numbers; None: the timelines are always read
    head: Any = None
    #: the names of the float64 and int64 block rows, owned by the plan: the output builders key their
    #: cached layouts by these lists' identities
    float_names: list[str] = field(default_factory=list)
    int_names: list[str] = field(default_factory=list)

    float_reads: list[FeatureRead] = field(default_factory=list)
    int_reads: list[FeatureRead] = field(default_factory=list)
    other_reads: list[FeatureRead] = field(default_factory=list)
    #: id of a head block's names -> (the names, row of HEAD_FROM, row of HEAD_UNTIL; -1: none)
    spans: dict[int, tuple[tuple[str, ...], int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.float_reads[:] = [r for r in self.features if r.block == "float"]
        self.int_reads[:] = [r for r in self.features if r.block == "int"]
        self.other_reads[:] = [r for r in self.features if r.block == "other"]
        self.float_names[:] = [r.output for r in self.float_reads]
        self.int_names[:] = [r.output for r in self.int_reads]


def feature_locations(spec: FeatureSpec) -> list[str]:
    """The names under which ``stores`` gives each (non-request) feature's location."""
    return list(dict.fromkeys(s.name for s in spec.features if not s.is_request))


def feature_reads(spec: FeatureSpec, locate: Callable[[str], tuple[Any, OnlineTable | None]]
                  ) -> list[tuple[Any, OnlineTable, list[FeatureRead]]]:
    """The spec's (non-request) features grouped by the online table they are read from:
    ``[(store spec, online table, reads)]``. ``locate(name)`` gives a feature's ``(store spec, online
    table)`` from the assembler's ``stores`` mapping (raising when it has none)."""
    groups: dict[tuple[str, str], tuple[Any, OnlineTable, list[FeatureRead]]] = {}
    for step in spec.features:
        if step.is_request:
            continue
        store_spec, online = locate(step.name)
        if online is None:
            raise FeatureSpecError(
                f"Feature {step.name!r}: its location gives no online table layout; pass the publication or "
                "{'store': spec, 'online_table': info}."
            )
        held = timelines_of(online.schema)
        if step.output_name not in held:
            raise FeatureSpecError(
                f"Online table {online.name!r} has no timeline of feature {step.name!r} (it has {sorted(held)}); "
                "publish the feature again."
            )
        feature = step.definition
        section, column = held[step.output_name]
        typ = step.arrow_type
        block = "float" if typ == pa.float64() else "int" if typ == pa.int64() else "other"
        read = FeatureRead(step, section, column, aggregation_for(feature).window, feature.function,
                           typ, step.output_name, block)
        key = (repr(store_spec), online.name)
        if key not in groups:
            groups[key] = (store_spec, online, [])
        groups[key][2].append(read)
    return list(groups.values())


def heads_table(online: OnlineTable) -> tuple[OnlineTable, dict[str, str]] | None:
    """The online table holding the heads of ``online``'s timelines and ``{feature: head column}``:
    the table of their own beside the timelines, or ``online`` itself for publications that hold them
    in the timelines' rows; None when no feature has a head."""
    where = head_schema(online.schema, online.primary_keys)
    if where is None:
        return None
    name, schema, held = where
    if name is None:
        return online, held
    return OnlineTable(name=name, primary_keys=list(online.primary_keys), timestamp_key=None, schema=schema), held


def online_tables(online: OnlineTable) -> list[OnlineTable]:
    """The online tables a publication of ``online`` wrote: itself and, for declarative features whose
    heads are a table of their own, that table (what dropping the publication drops)."""
    heads = heads_table(online)
    return [online] if heads is None or heads[0] is online else [online, heads[0]]


def head_columns(reads: list[FeatureRead], online: OnlineTable) -> tuple[OnlineTable, dict[str, str]] | None:
    """The online table of ``online``'s heads and ``{head column: output}`` when every feature of
    ``reads`` has a head column there of the feature's type (float64 / int64), else None."""
    heads = heads_table(online)
    if heads is None:
        return None
    table, held = heads
    names = table.schema.names
    out = {}
    for r in reads:
        column = held.get(r.output)
        if column is None or column not in names or table.schema.field(column).type != r.typ:
            return None
        out[column] = r.output
    return table, out


def head_lookup_step(step: FeatureStep, online: OnlineTable, columns: list[str]) -> LookupStep:
    """A lookup of an online table's head columns (and the times they hold for), keyed by the entity."""
    entity = step.entity
    read = [HEAD_FROM, HEAD_UNTIL, *columns]
    return LookupStep(table=online.name, table_version=None, lookup_key=list(entity), table_keys=list(entity),
                      key_types=list(step.key_types) or [str(online.schema.field(k).type) for k in entity],
                      features=read, output_names=read,
                      feature_types=[str(online.schema.field(c).type) for c in read])


def timeline_lookup_step(step: FeatureStep, online: OnlineTable) -> LookupStep:
    """A lookup of an online table's timelines column, keyed by the features' entity."""
    entity = step.entity
    columns = [TIMELINES]
    return LookupStep(table=online.name, table_version=None, lookup_key=list(entity), table_keys=list(entity),
                      key_types=list(step.key_types) or [str(online.schema.field(k).type) for k in entity],
                      features=columns, output_names=columns, feature_types=["binary"] * len(columns))


def missing_feature(name: str, given: Any) -> FeatureSpecError:
    return FeatureSpecError(
        f"OnlineFeatureAssembler: no online store given for feature {name!r}; stores has {sorted(given)}. "
        "Publish the feature online (materialize it, or larder.declarative.publish.publish_features), or "
        f"add {name!r}: {{'store': <spec>, 'online_table': <info>}}."
    )


def _request_times(caller: Caller, column: str, now_us: int) -> list[int]:
    """Per row, the request time in UTC microseconds: the caller's column when given (naive means
    UTC), else now; a null time also means now."""
    if column not in caller:
        return [now_us] * caller.n
    given = caller.pylist(column)
    if given is not None and all(isinstance(v, datetime) or v is None for v in given):
        return [now_us if v is None else _us(v) for v in given]
    values = caller.values(column)
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        ints = values.astype("datetime64[us]").astype(np.int64)
        return [now_us if np.isnat(v) else int(i) for v, i in zip(values, ints.tolist(), strict=True)]
    arr = pa.array(caller.frame[column], from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.timestamp("us", tz="UTC"))
    ints_arr = arr.cast(pa.timestamp("us", tz=arr.type.tz)).view(pa.int64())
    return [now_us if v is None else v for v in ints_arr.to_pylist()]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_F64, _I64 = pa.float64(), pa.int64()


def _us(value: datetime) -> int:
    delta = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _head_holds(group: FeatureGroupPlan, batch: Any, times: list[int]) -> bool:
    """Whether a head read answers every row: each key found, each request time within the time its
    values at the materialization hold for."""
    found = batch.found
    one = len(times) == 1
    if not (found[0] if one else found.all()):
        return False
    lo = hi = None
    spans = group.spans
    for block in batch.blocks:
        names = block.names
        hit = spans.get(id(names))
        if hit is None or hit[0] is not names:  # where this block holds the span (cached per names tuple)
            hit = (names, names.index(HEAD_FROM) if HEAD_FROM in names else -1,
                   names.index(HEAD_UNTIL) if HEAD_UNTIL in names else -1)
            if len(spans) < 64:
                spans[id(names)] = hit
        if hit[1] >= 0 and hit[2] >= 0:  # both in one block (int64): one key's check from its record
            values = block.values
            if one:  # item(): Python ints, compared without numpy scalars
                return values.item(hit[1], 0) <= times[0] < values.item(hit[2], 0)  # type: ignore[no-any-return]
            lo, hi = values[hit[1]], values[hit[2]]
            break
        if hit[1] >= 0:
            lo = block.values[hit[1]]
        if hit[2] >= 0:
            hi = block.values[hit[2]]
    if lo is None or hi is None:  # a store that hands them back as Arrow (or null): not the fast case
        return False
    if one:
        return bool(lo[0] <= times[0] < hi[0])
    t = np.array(times, dtype=np.int64)
    return bool(((lo <= t) & (t < hi)).all())


def read_features(groups: list[FeatureGroupPlan], caller: Caller, blocks: list[Any], arrays: dict[str, pa.Array],
                  encoded_keys: Callable[[Any, Caller], list[str | None]], add_block: Callable[..., None]) -> None:
    """The features' values for ``caller``'s rows: float64 and null-free int64 outputs as numpy blocks
    (into ``blocks``, as the stores' numbers), the rest as Arrow arrays (into ``arrays``).
    ``encoded_keys`` encodes a lookup's keys and ``add_block`` adds a store's block of numbers to the
    outputs (the assembler's own functions).

    A group with a head (every feature a number) first reads the heads: when every row's key is
    found and its request time is within the time the values at the materialization hold for, those
    are the values; otherwise the timelines are read and evaluated at each row's time."""
    now_us = time.time_ns() // 1000  # what _us(datetime.now(UTC)) gives
    n = caller.n
    encoded: dict[tuple[Any, ...], list[str | None]] = {}
    for group in groups:
        lk = group.lookup
        pks = encoded.get(lk.key_id)
        if pks is None:
            pks = encoded[lk.key_id] = encoded_keys(lk, caller)
        column = group.time_column
        times = _request_times(caller, column, now_us) if column in caller.names else [now_us] * n
        head = group.head
        if head is not None:
            batch = head.store.read_values(head.table, pks, head.read)
            if _head_holds(group, batch, times):
                for block in batch.blocks:
                    add_block(head, block.type, block.names, block.values, block.nulls, None, blocks, arrays)
                continue
        batch = lk.store.read_values(lk.table, pks, lk.read)
        found = batch.found.tolist()
        float_names: list[str] = []
        float_rows: list[list[Any]] = []
        int_names: list[str] = []
        int_rows: list[list[Any]] = []
        col = batch.arrays.get(TIMELINES)
        blobs = col.to_pylist() if col is not None else [None] * n
        if n == 1 and blobs[0] is not None and found[0] and _one_row(group, blobs[0], times[0], blocks, arrays):
            continue
        # per row: each section's values at the row's time (None: no row, or older than the state)
        decoded: list[list[list[Any] | None] | None] = []
        for r in range(n):
            blob = blobs[r]
            if blob is None or not found[r]:
                decoded.append(None)
                continue
            t = times[r]
            decoded.append([section_values(blob, a, b, t) for a, b in group_bounds(blob)])
        for read in group.features:
            sec, j = read.section, read.column
            values = []
            for r in range(n):
                got = decoded[r]
                if got is None:
                    values.append(empty_value(read.function, read.rule, times[r]))
                else:
                    row = got[sec]
                    values.append(None if row is None else row[j])
            name = read.output
            if read.block == "float":
                float_names.append(name)
                float_rows.append(values)
            elif read.block == "int" and None not in values:
                int_names.append(name)
                int_rows.append(values)
            else:
                arrays[name] = from_plain(values, read.typ)
        if float_names:
            float_names = group.float_names if float_names == group.float_names else float_names
            if any(v is None for row in float_rows for v in row):
                nulls = np.array([[v is None for v in row] for row in float_rows], dtype=bool)
                matrix = np.array([[np.nan if v is None else v for v in row] for row in float_rows], dtype=np.float64)
                blocks.append((float_names, _F64, matrix, nulls))
            else:
                blocks.append((float_names, _F64, np.array(float_rows, dtype=np.float64), None))
        if int_names:
            int_names = group.int_names if int_names == group.int_names else int_names
            blocks.append((int_names, _I64, np.array(int_rows, dtype=np.int64), None))


def _one_row(group: FeatureGroupPlan, blob: bytes, t: int, blocks: list[Any], arrays: dict[str, pa.Array]) -> bool:
    """The serving case, one found key: every section decoded once, values straight into the plan's
    blocks. False (nothing added) when some value is null or a request predates the state: the general
    path handles those."""
    sections = [section_values(blob, a, b, t) for a, b in group_bounds(blob)]
    if None in sections:
        return False
    floats = [sections[r.section][r.column] for r in group.float_reads]  # type: ignore[index]
    ints = [sections[r.section][r.column] for r in group.int_reads]  # type: ignore[index]
    if None in floats or None in ints:
        return False
    if group.other_reads:
        for r in group.other_reads:
            arrays[r.output] = from_plain([sections[r.section][r.column]], r.typ)  # type: ignore[index]
    if floats:
        blocks.append((group.float_names, _F64, np.array(floats, dtype=np.float64).reshape(-1, 1), None))
    if ints:
        blocks.append((group.int_names, _I64, np.array(ints, dtype=np.int64).reshape(-1, 1), None))
    return True


__all__ = ["FeatureGroupPlan", "FeatureRead", "feature_locations", "feature_reads", "head_columns",
           "head_lookup_step", "heads_table", "missing_feature", "online_tables", "read_features",
           "timeline_lookup_step"]
