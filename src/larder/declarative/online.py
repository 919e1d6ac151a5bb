"""The online representation of declarative features: per key, a timeline of exact values.

What is stored
--------------
For a group of features that share a source, entity and timeseries column, materialized as of a time
``T``, the online table holds one row per entity key: the key columns and, per feature, a *timeline*
(one binary value): the feature's value at ``T`` and every later time at which it changes, each value
computed by the offline kernel itself (:func:`larder.declarative.compute.evaluate_features`'s engine
call). A value only changes when an event enters or leaves the window (or the window's ``start_time``
is reached), and those instants are known at ``T`` for every event already in the source
(:func:`change_points`): an event at ``ts`` enters a rolling window at ``ts + delay + 1us`` and leaves it
at ``ts + duration + delay + 1us``; fixed-boundary windows change at the first boundary after each.

A read at request time ``t`` finds the last change ``<= t`` by binary search and returns its value, so
**a request at any time t >= T gets exactly the value the training set gives for t** over the same
source version, bit for bit, for every operator (approximate ones included: both sides are exact);
the read does no arithmetic. A timeline also knows from when its first value holds (the last change
``<= T``); a request before that time (older than the materialized state) gets null.

Trade-off (see docs/declarative-features.md): a timeline holds up to two entries per event still in
the window at ``T`` (enter and leave), so its size is that of an event tail; materialization evaluates
the kernel once per entry; reads are one row fetch and a binary search per feature, cheaper than
merging tiles (Chronon, sawtooth windows) or re-aggregating an event tail on every request, and exact at
every microsecond where tiles are exact only at tile boundaries. Values reflect the events materialized:
rows that arrive later appear online at the next materialization (as with any representation).

:func:`online_rows` computes the rows (what a materialization publishes); :func:`timeline_value` and
:func:`timeline_values` read them.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from larder.declarative.compute import aggregation_for, load_source, source_key, validate_feature
from larder.declarative.feature import Feature
from larder.declarative.functions import COUNTING, AggregationFunction
from larder.declarative.windows import datetime_to_us
from larder.errors import FeatureDefinitionError
from larder.offline.aggregate import INT64_MIN, Aggregation, WindowRule, epoch_us

if TYPE_CHECKING:
    from larder.offline.engine import Engine
    from larder.offline.tables import TableService

#: Name of the ordering column of the rows (the materialization time, UTC microseconds).
ORDER = "__larder_order__"

_HEAD = struct.Struct("<2sBBIq")  # magic, format, kind, change count, valid_from
_MAGIC = b"LT"
_FORMAT = 1
KIND_FLOAT, KIND_INT, KIND_BOOL, KIND_JSON = 0, 1, 2, 3


# --------------------------------------------------------------------------- encoding


def _kind(t: pa.DataType) -> int:
    if pa.types.is_floating(t):
        return KIND_FLOAT
    if pa.types.is_integer(t) or pa.types.is_timestamp(t) or pa.types.is_date32(t):
        return KIND_INT
    if pa.types.is_boolean(t):
        return KIND_BOOL
    return KIND_JSON


def _plain(values: pa.Array) -> pa.Array:
    """Timestamps as int64 UTC microseconds, dates as int64 days; other values as they are."""
    t = values.type
    if pa.types.is_timestamp(t):
        return values.cast(pa.timestamp("us", tz=t.tz)).view(pa.int64())
    if pa.types.is_date32(t):
        return values.view(pa.int32()).cast(pa.int64())
    return values


def from_plain(values: list[Any], typ: pa.DataType) -> pa.Array:
    """Values read from timelines as an Arrow array of the feature's type."""
    if _kind(typ) == KIND_INT and not pa.types.is_integer(typ):
        ints = pa.array(values, pa.int64())
        return ints.cast(pa.int32()).view(pa.date32()) if pa.types.is_date32(typ) else ints.view(typ)
    return pa.array(values, typ)


def encode_timeline(points: np.ndarray, values: pa.Array, valid_from: int) -> bytes:
    """One timeline: ``values[0]`` holds from ``valid_from``, ``values[i + 1]`` from ``points[i]``."""
    n = len(points)
    if len(values) != n + 1:
        raise ValueError("a timeline needs one value more than change points")
    kind = _kind(values.type)
    head = _HEAD.pack(_MAGIC, _FORMAT, kind, n, valid_from)
    pts = np.ascontiguousarray(points, dtype="<i8").tobytes()
    if kind == KIND_JSON:
        body = json.dumps(values.to_pylist(), separators=(",", ":"), default=str).encode()
        return head + pts + body
    plain = _plain(values)
    valid = plain.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8)
    if kind == KIND_FLOAT:
        data = plain.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False).astype("<f8")
    else:
        data = plain.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).astype("<i8")
    return head + pts + data.tobytes() + valid.tobytes()


def timeline_value(blob: bytes | None, t_us: int) -> tuple[Any, bool]:
    """The value a timeline holds at ``t_us``: ``(value, known)``. ``known`` is False for no timeline
    (the key has no row) and for times before the timeline's first value holds."""
    if blob is None:
        return None, False
    magic, fmt, kind, n, valid_from = _HEAD.unpack_from(blob, 0)
    if magic != _MAGIC or fmt != _FORMAT:
        raise FeatureDefinitionError("An online value is not a larder feature timeline (wrong format).")
    if t_us < valid_from:
        return None, False
    start = _HEAD.size
    mv = memoryview(blob)
    i = bisect.bisect_right(mv[start:start + 8 * n].cast("q"), t_us) if n else 0
    base = start + 8 * n
    if kind == KIND_JSON:
        return json.loads(bytes(mv[base:]))[i], True
    if not mv[base + 8 * (n + 1) + i]:
        return None, True
    if kind == KIND_FLOAT:
        return struct.unpack_from("<d", blob, base + 8 * i)[0], True
    value = struct.unpack_from("<q", blob, base + 8 * i)[0]
    return (bool(value) if kind == KIND_BOOL else value), True


def timeline_values(blobs: Sequence[bytes | None], times: Sequence[int]) -> tuple[list[Any], list[bool]]:
    """:func:`timeline_value` for many (blob, time) pairs."""
    out, known = [], []
    for blob, t in zip(blobs, times, strict=True):
        v, k = timeline_value(blob, t)
        out.append(v)
        known.append(k)
    return out, known


def empty_value(feature_function: Any, rule: WindowRule, t_us: int) -> Any:
    """The value of a window without events at ``t`` (0 for counts, else null; null before start_time)."""
    if rule.start_us is not None and int(rule.ends(np.array([t_us]))[0]) < rule.start_us:
        return None
    if isinstance(feature_function, AggregationFunction) and feature_function.name in COUNTING:
        return 0
    return None


# --------------------------------------------------------------------------- change points


def _first_end_at_or_after(rule: WindowRule, x: int) -> int:
    """The earliest query time whose window end is >= ``x``."""
    return int(rule.first_end_after(np.array([x - 1], dtype=np.int64))[0])


def change_points(ts: np.ndarray, rule: WindowRule) -> list[np.ndarray]:
    """The query times at which each event enters and (finite windows) leaves the rule's window."""
    out = [rule.first_end_after(ts)]
    if rule.duration_us is not None:
        out.append(rule.first_end_after(ts + np.int64(rule.duration_us)))
    return out


# --------------------------------------------------------------------------- rows


def _as_us(value: dt.datetime | int) -> int:
    return value if isinstance(value, int) else datetime_to_us(value)


def online_rows(engine: Engine, tables: TableService | None, features: Sequence[Feature], *,
                as_of: dt.datetime | int, version: int | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """The rows an online store holds for ``features`` materialized as of ``as_of``.

    All features must share one source, entity and timeseries column (one online table). Returns
    ``(rows, info)``: ``rows`` has the entity columns, one binary timeline column per feature (named
    after the feature) and the ordering column :data:`ORDER` (``as_of`` in UTC microseconds), one row per
    entity key of the source; ``info`` has the source table, its Delta version, the value types and the
    number of timeline entries.
    """
    if not features:
        raise FeatureDefinitionError("online_rows needs at least one feature.")
    first = features[0]
    group = {(source_key(f.source), tuple(f.entity or ()), f.timeseries_column) for f in features}
    if len(group) != 1:
        raise FeatureDefinitionError(
            "Features published together must share one source, entity and timeseries column; publish "
            f"{sorted(f.name for f in features)} in groups that do."
        )
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise FeatureDefinitionError(f"Features published together need distinct names, got {names}.")
    types = {f.name: validate_feature(tables, f)[0] for f in features}
    entity = list(first.entity or [])
    ts_col = str(first.timeseries_column)
    t_us = _as_us(as_of)
    needed = [*entity, ts_col, *(c for f in features for c in f.inputs)]
    src = load_source(tables, first, version=version, columns=needed)
    rows = src.rows
    keys = rows.select(entity).group_by(entity, use_threads=False).aggregate([]).select(entity)
    keys = keys.filter(_no_null(keys, entity)) if keys.num_rows else keys  # a null key cannot be looked up
    ts, ok = epoch_us(rows.column(ts_col))
    ev_keys = rows.select(entity)
    ev_key_ids = _key_ids(ev_keys, keys, entity)
    ok &= ev_key_ids >= 0
    blobs: dict[str, list[bytes | None]] = {f.name: [None] * keys.num_rows for f in features}
    entries = 0
    by_rule: dict[WindowRule, list[Feature]] = {}
    for f in features:
        by_rule.setdefault(aggregation_for(f).window, []).append(f)
    for rule, group_features in by_rule.items():
        cand = np.concatenate(change_points(ts[ok], rule)) if ok.any() else np.zeros(0, dtype=np.int64)
        owner = np.concatenate([ev_key_ids[ok]] * (2 if rule.duration_us is not None else 1)) \
            if ok.any() else np.zeros(0, dtype=np.int64)
        if rule.start_us is not None:  # every key changes (from null) when the first window reaches start_time
            gate = _first_end_at_or_after(rule, rule.start_us)
            cand = np.concatenate([cand, np.full(keys.num_rows, gate, dtype=np.int64)])
            owner = np.concatenate([owner, np.arange(keys.num_rows, dtype=np.int64)])
        past = cand <= t_us
        valid_from = np.full(keys.num_rows, INT64_MIN, dtype=np.int64)
        np.maximum.at(valid_from, owner[past], cand[past])
        future = ~past
        pairs = np.unique(np.stack([owner[future], cand[future]]), axis=1) if future.any() \
            else np.zeros((2, 0), dtype=np.int64)
        q_key = np.concatenate([np.arange(keys.num_rows, dtype=np.int64), pairs[0]])
        q_t = np.concatenate([np.full(keys.num_rows, t_us, dtype=np.int64), pairs[1]])
        order = np.lexsort((q_t, q_key))
        q_key, q_t = q_key[order], q_t[order]
        queries = keys.take(pa.array(q_key)).append_column(ts_col, pa.array(q_t, pa.timestamp("us", tz="UTC")))
        aggs: list[Aggregation] = [aggregation_for(f) for f in group_features]
        values = engine.aggregate(rows, queries, entity=entity, timestamp=ts_col, query_timestamp=ts_col,
                                  aggregations=aggs)
        starts = np.searchsorted(q_key, np.arange(keys.num_rows + 1), side="left")
        for f in group_features:
            col = values.column(f.name).combine_chunks()
            if col.type != types[f.name]:
                col = col.cast(types[f.name])
            out = blobs[f.name]
            for k in range(keys.num_rows):
                a, b = int(starts[k]), int(starts[k + 1])
                out[k] = encode_timeline(q_t[a + 1:b], col.slice(a, b - a), int(valid_from[k]))
            entries += len(q_t)
    table = keys
    for f in features:
        table = table.append_column(f.name, pa.array(blobs[f.name], pa.binary()))
    table = table.append_column(ORDER, pa.array(np.full(keys.num_rows, t_us, dtype=np.int64)))
    info = {"source_table": src.table, "source_version": src.version, "as_of_us": t_us, "keys": keys.num_rows,
            "timeline_entries": entries, "value_types": {n: str(t) for n, t in types.items()}}
    return table, info


def _no_null(table: pa.Table, columns: list[str]) -> pa.Array:
    mask = pc.is_valid(table.column(columns[0]))
    for c in columns[1:]:
        mask = pc.and_(mask, pc.is_valid(table.column(c)))
    return mask


def _key_ids(ev_keys: pa.Table, keys: pa.Table, entity: list[str]) -> np.ndarray:
    """For every event row, the index of its key in ``keys`` (-1: a key with a null part)."""
    if ev_keys.num_rows == 0:
        return np.zeros(0, dtype=np.int64)
    if len(entity) == 1:
        idx = pc.index_in(ev_keys.column(entity[0]), value_set=keys.column(entity[0]).combine_chunks(),
                          skip_nulls=True)
        return idx.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    tagged = keys.append_column("__larder_i", pa.array(np.arange(keys.num_rows, dtype=np.int64)))
    joined = ev_keys.append_column("__larder_r", pa.array(np.arange(ev_keys.num_rows, dtype=np.int64))).join(
        tagged, keys=entity, join_type="left outer")
    out = np.empty(ev_keys.num_rows, dtype=np.int64)
    out[joined.column("__larder_r").to_numpy()] = joined.column("__larder_i").fill_null(-1).to_numpy()
    return out


__all__ = ["KIND_BOOL", "KIND_FLOAT", "KIND_INT", "KIND_JSON", "ORDER", "change_points", "empty_value",
           "encode_timeline", "from_plain", "online_rows", "timeline_value", "timeline_values"]
