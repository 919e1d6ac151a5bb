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

Each row also has a *head* for the features of a number type (float64, int64): their values at ``T``
as plain columns (:data:`HEAD_PREFIX` + name) and the request times those hold for,
``[HEAD_FROM, HEAD_UNTIL)`` (the last change ``<= T`` to the first change after it). A read inside that
span needs only those columns, as small as a feature table's row; the timeline answers the rest. They
are published as an online table of their own (:func:`split_heads`): a row per key beside the
key's multi-KB timelines, read as a feature table's row is read (a smaller B-tree, one number block
per type). Publications made before that hold them in the timelines' rows, and read so.

:func:`online_rows` computes the rows (what a materialization publishes); :func:`section_values` and
:func:`feature_value` read them. A key's value groups the timelines by window rule and kind of value
(one *section* each, holding every feature's value at each change), so a read does one binary search
and one unpack per section.
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
from larder.offline.aggregate import INT64_MAX, INT64_MIN, Aggregation, WindowRule, epoch_us

if TYPE_CHECKING:
    from larder.offline.engine import Engine
    from larder.offline.tables import TableService

#: Name of the ordering column of the rows (the materialization time, UTC microseconds).
ORDER = "__larder_order__"
#: The online table's one value column: every feature's timeline of the key (:func:`encode_group`).
TIMELINES = "__larder_timelines"
#: Field metadata of :data:`TIMELINES`: ``[[feature, section, column], ...]``, where each feature's
#: values are in a key's value.
FEATURES_KEY = b"larder.features"

#: Field metadata of :data:`TIMELINES`: ``[[feature, column], ...]``, the head column of each feature
#: of a number type (float64, int64): its value at the materialization time, which holds for request
#: times in ``[HEAD_FROM, HEAD_UNTIL)`` (a read there needs no timeline).
HEAD_KEY = b"larder.head"
#: Field metadata of :data:`TIMELINES` (publications since 2026-12-04): the heads are rows of an online
#: table of their own beside the timelines (:func:`split_heads`), ``{"name": table, "columns": {column:
#: type}}``; without it (older publications) the head columns are in the timelines' own rows.
HEAD_TABLE_KEY = b"larder.head_table"
#: The heads table's name: the timelines table's name and this suffix.
HEAD_TABLE_SUFFIX = "__heads"
HEAD_PREFIX = "__larder_at_"
HEAD_FROM = "__larder_from"
HEAD_UNTIL = "__larder_until"
_HEAD_TYPES = (pa.float64(), pa.int64())
_HEAD_TYPE_NAMES = {"double": pa.float64(), "int64": pa.int64()}

_HEAD = struct.Struct("<2sBBHIq")  # magic, format, kind, features m, change count n, valid_from
_MAGIC = b"LT"
_FORMAT = 2
KIND_FLOAT, KIND_INT, KIND_BOOL, KIND_JSON = 0, 1, 2, 3
_NUMBER = {KIND_FLOAT: "d", KIND_INT: "q", KIND_BOOL: "q"}


# --------------------------------------------------------------------------- encoding
#
# A key's value is a group of *sections* (:func:`encode_group`), one per window rule and kind of value.
# A section holds the instants its window changes at (``points``, n of them) and, for every feature of
# the section (m of them), its value before the first point (held since ``valid_from``) and after each
# point: an (n + 1) x m matrix, row-major, so the values of every feature at one instant are adjacent
# and one read gives them all. Numbers are little-endian float64 / int64 with one validity byte per
# value; other values (strings, lists) are one JSON array of n + 1 rows.


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
    if pa.types.is_boolean(typ):
        return pa.array([None if v is None else bool(v) for v in values], typ)
    return pa.array(values, typ)


def section_matrix(kind: int, columns: Sequence[pa.Array]) -> tuple[np.ndarray, np.ndarray] | list[list[Any]]:
    """The values of a section's features (one Arrow array each, all of one length): a row-major
    (length x m) numeric matrix and its validity, or (JSON sections) rows of Python values."""
    if kind == KIND_JSON:
        return [list(row) for row in zip(*(c.to_pylist() for c in columns), strict=True)]
    plain = [_plain(c) for c in columns]
    valid = np.stack([p.is_valid().to_numpy(zero_copy_only=False) for p in plain], axis=1).astype(np.uint8)
    if kind == KIND_FLOAT:
        data = np.stack([p.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False) for p in plain], axis=1)
        return np.ascontiguousarray(data, dtype="<f8"), valid
    data = np.stack([p.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False) for p in plain], axis=1)
    return np.ascontiguousarray(data, dtype="<i8"), valid


def encode_section(kind: int, points: np.ndarray, values: Any, valid_from: int, m: int) -> bytes:
    """One section: ``points`` (n int64) and the rows of :func:`section_matrix` for this key
    (n + 1 of them: before the first point, then after each)."""
    n = len(points)
    head = _HEAD.pack(_MAGIC, _FORMAT, kind, m, n, valid_from)
    pts = np.ascontiguousarray(points, dtype="<i8").tobytes()
    if kind == KIND_JSON:
        return head + pts + json.dumps(values, separators=(",", ":"), default=str).encode()
    data, valid = values
    return head + pts + data.tobytes() + valid.tobytes()


def section_values(blob: bytes, start: int, end: int, t_us: int) -> list[Any] | None:
    """The values of a section's features at ``t_us`` (None for each null), or None when ``t_us`` is
    before the section's first value holds (older than the published state)."""
    magic, fmt, kind, m, n, valid_from = _HEAD.unpack_from(blob, start)
    if magic != _MAGIC or fmt != _FORMAT:
        raise FeatureDefinitionError("An online value is not a larder feature timeline (wrong format); publish "
                                     "the features again.")
    if t_us < valid_from:
        return None
    at = start + _HEAD_SIZE
    i = bisect.bisect_right(memoryview(blob)[at:at + 8 * n].cast("q"), t_us) if n else 0
    base = at + 8 * n
    if kind == KIND_JSON:
        return list(json.loads(blob[base:end])[i])
    row = _ROW.get((kind, m))
    if row is None:
        row = _ROW[(kind, m)] = struct.Struct(f"<{m}{_NUMBER[kind]}")
    values = list(row.unpack_from(blob, base + 8 * m * i))
    flags_at = base + 8 * m * (n + 1) + m * i
    flags = blob[flags_at:flags_at + m]
    if flags.count(1) != m:
        values = [v if f else None for v, f in zip(values, flags, strict=True)]
    return values


_HEAD_SIZE = _HEAD.size
#: (kind, m) -> the Struct of one row of m numbers
_ROW: dict[tuple[int, int], struct.Struct] = {}


_COUNT = struct.Struct("<H")


def encode_group(sections: Sequence[bytes]) -> bytes:
    """A key's sections as one value: a count, the end offset of each, the sections."""
    ends, at = [], _COUNT.size + 4 * len(sections)
    for t in sections:
        at += len(t)
        ends.append(at)
    return _COUNT.pack(len(sections)) + struct.pack(f"<{len(ends)}I", *ends) + b"".join(sections)


def group_bounds(blob: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of each section in a value made by :func:`encode_group`."""
    (m,) = _COUNT.unpack_from(blob, 0)
    ends = _ENDS.get(m)
    if ends is None:
        ends = _ENDS[m] = struct.Struct(f"<{m}I")
    stops = ends.unpack_from(blob, _COUNT.size)
    return list(zip((_COUNT.size + 4 * m, *stops[:-1]), stops, strict=True))


#: m -> the Struct of m section end offsets
_ENDS: dict[int, struct.Struct] = {}


def empty_value(feature_function: Any, rule: WindowRule, t_us: int) -> Any:
    """The value of a window without events at ``t`` (0 for counts, else null; null before start_time)."""
    if rule.start_us is not None and int(rule.ends(np.array([t_us]))[0]) < rule.start_us:
        return None
    if isinstance(feature_function, AggregationFunction) and feature_function.name in COUNTING:
        return 0
    return None


def timelines_of(schema: pa.Schema) -> dict[str, tuple[int, int]]:
    """``{feature: (section, column)}``: where an online table's :data:`TIMELINES` values hold each
    feature (from the column's field metadata)."""
    if TIMELINES not in schema.names:
        return {}
    meta = schema.field(TIMELINES).metadata or {}
    return {name: (int(sec), int(col)) for name, sec, col in json.loads(meta.get(FEATURES_KEY, b"[]"))}


def feature_value(blob: bytes, feature: tuple[int, int], t_us: int) -> tuple[Any, bool]:
    """One feature's value at ``t_us`` in a key's value: ``(value, known)``."""
    start, end = group_bounds(blob)[feature[0]]
    got = section_values(blob, start, end, t_us)
    return (None, False) if got is None else (got[feature[1]], True)


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
                as_of: dt.datetime | int, version: int | None = None, keys: pa.Table | None = None
                ) -> tuple[pa.Table, dict[str, Any]]:
    """The rows an online store holds for ``features`` materialized as of ``as_of``.

    ``keys`` (a table of the entity columns): only the rows of those entity keys, each computed from
    the key's whole history exactly as without it (an incremental materialization recomputes the keys
    new source rows touched); keys without source rows are left out. None: every key of the source.

    All features must share one source, entity and timeseries column (one online table). Returns
    ``(rows, info)``: ``rows`` has the entity columns, the binary column :data:`TIMELINES` (per key, every
    feature's timeline, :func:`encode_group`; its field metadata :data:`FEATURES_KEY` says which section
    and column holds each feature) and the ordering column :data:`ORDER` (``as_of`` in UTC microseconds), one row per entity
    key of the source (keys with a null part are left out: they cannot be looked up); ``info`` has the
    source table, its Delta version, the value types, the number of timeline entries and of source rows
    read (``rows_read``: as loaded, before the source's ``filter_condition``; with ``keys``, those keys'
    rows, or a superset of them for an entity of several columns).
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
    src = load_source(tables, first, version=version, columns=needed, filter=_keys_filter(first, keys, entity))
    rows = src.rows
    if keys is not None and rows.num_rows:  # exactly those keys (the read filter is per column, or none)
        rows = rows.filter(pa.array(_key_ids(rows.select(entity), keys.select(entity), entity) >= 0))
    keys = rows.select(entity).group_by(entity, use_threads=False).aggregate([]).select(entity)
    keys = keys.filter(_no_null(keys, entity)) if keys.num_rows else keys  # a null key cannot be looked up
    ts, ok = epoch_us(rows.column(ts_col))
    ev_keys = rows.select(entity)
    ev_key_ids = _key_ids(ev_keys, keys, entity)
    ok &= ev_key_ids >= 0
    sections: list[list[bytes]] = []  # per section, one value per key
    placement: list[list[Any]] = []  # [feature, section, column]
    entries = 0
    head: dict[str, pa.Array] = {}  # per feature of a number type: its value at T per key
    head_from = np.full(keys.num_rows, INT64_MIN, dtype=np.int64)
    head_until = np.full(keys.num_rows, INT64_MAX, dtype=np.int64)
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
        starts = np.searchsorted(q_key, np.arange(keys.num_rows + 1), side="left").tolist()
        entries += len(q_t)
        # the head: each key's values at T hold from valid_from until the rule's first later change
        firsts = np.array(starts[:-1], dtype=np.int64)
        has_next = np.diff(np.array(starts, dtype=np.int64)) > 1
        nxt = np.where(has_next, q_t[np.minimum(firsts + 1, max(len(q_t) - 1, 0))] if len(q_t) else 0, INT64_MAX)
        head_from = np.maximum(head_from, valid_from)
        head_until = np.minimum(head_until, nxt)
        by_kind: dict[int, list[tuple[Feature, pa.Array]]] = {}
        for f in group_features:
            col = values.column(f.name).combine_chunks()
            if col.type != types[f.name]:
                col = col.cast(types[f.name])
            if col.type in _HEAD_TYPES:
                head[f.name] = col.take(pa.array(firsts))
            by_kind.setdefault(_kind(col.type), []).append((f, col))
        for kind, members in sorted(by_kind.items()):
            section = len(sections)
            placement += [[f.name, section, j] for j, (f, _) in enumerate(members)]
            matrix = section_matrix(kind, [c for _, c in members])
            m = len(members)
            out = []
            for k in range(keys.num_rows):
                a, b = starts[k], starts[k + 1]
                rows_k = matrix[a:b] if kind == KIND_JSON else (matrix[0][a:b], matrix[1][a:b])  # type: ignore[index]
                out.append(encode_section(kind, q_t[a + 1:b], rows_k, int(valid_from[k]), m))
            sections.append(out)
    per_key = [encode_group([sec[k] for sec in sections]) for k in range(keys.num_rows)]
    heads = [[f.name, HEAD_PREFIX + f.name] for f in features if f.name in head]
    field = pa.field(TIMELINES, pa.binary(), metadata={FEATURES_KEY: json.dumps(placement).encode(),
                                                       HEAD_KEY: json.dumps(heads).encode()})
    table = keys.append_column(field, pa.array(per_key, pa.binary()))
    table = table.append_column(HEAD_FROM, pa.array(head_from)).append_column(HEAD_UNTIL, pa.array(head_until))
    for name, column in heads:
        table = table.append_column(column, head[name])
    table = table.append_column(ORDER, pa.array(np.full(keys.num_rows, t_us, dtype=np.int64)))
    info = {"source_table": src.table, "source_version": src.version, "as_of_us": t_us, "keys": keys.num_rows,
            "timeline_entries": entries, "value_types": {n: str(t) for n, t in types.items()},
            "rows_read": src.spine.num_rows}
    return table, info


def split_heads(rows: pa.Table, name: str, keys: Sequence[str]) -> tuple[pa.Table, pa.Table | None]:
    """:func:`online_rows`' rows as published: the timelines (keys, :data:`TIMELINES`, :data:`ORDER`),
    whose field metadata names the heads table (:data:`HEAD_TABLE_KEY`), and the heads (keys,
    :data:`HEAD_FROM`, :data:`HEAD_UNTIL`, the head columns, :data:`ORDER`) for the online table
    ``name`` + :data:`HEAD_TABLE_SUFFIX`; None when no feature has a head."""
    field = rows.schema.field(TIMELINES)
    meta = dict(field.metadata or {})
    heads = [column for _, column in json.loads(meta.get(HEAD_KEY, b"[]"))]
    if not heads:
        return rows.select([*keys, TIMELINES, ORDER]), None
    # the int64 columns (the span's, then the features') before the float64 ones: each type's null
    # flags are then one run of a record's bytes (a SQLite record's one-key decode takes a slice)
    heads.sort(key=lambda c: rows.schema.field(c).type != pa.int64())
    head_rows = rows.select([*keys, HEAD_FROM, HEAD_UNTIL, *heads, ORDER])
    meta[HEAD_TABLE_KEY] = json.dumps({"name": name + HEAD_TABLE_SUFFIX, "columns": {
        c: str(rows.schema.field(c).type) for c in heads}}).encode()
    timelines = rows.select([*keys, TIMELINES, ORDER])
    timelines = timelines.cast(timelines.schema.set(timelines.schema.get_field_index(TIMELINES),
                                                    field.with_metadata(meta)))
    return timelines, head_rows


def head_schema(schema: pa.Schema, keys: Sequence[str]) -> tuple[str | None, pa.Schema, dict[str, str]] | None:
    """Where an online table of timelines (its ``schema``, keyed by ``keys``) has the heads:
    ``(heads table name, its schema, {feature: head column})``, the name None when they are in the
    timelines' own rows (publications before :data:`HEAD_TABLE_KEY`); None when no feature has one."""
    if TIMELINES not in schema.names:
        return None
    meta = schema.field(TIMELINES).metadata or {}
    held = {feature: column for feature, column in json.loads(meta.get(HEAD_KEY, b"[]"))}
    if not held:
        return None
    if HEAD_TABLE_KEY not in meta:
        return None, schema, held
    table = json.loads(meta[HEAD_TABLE_KEY])
    types = {c: _HEAD_TYPE_NAMES.get(t) for c, t in table["columns"].items()}
    fields = [schema.field(k) for k in keys] + [pa.field(HEAD_FROM, pa.int64()), pa.field(HEAD_UNTIL, pa.int64())]
    fields += [pa.field(c, t) for c, t in types.items() if t is not None]
    return str(table["name"]), pa.schema(fields), held


def _keys_filter(feature: Feature, keys: pa.Table | None, entity: list[str]) -> Any:
    """A read filter keeping the source rows whose entity columns take the values of ``keys`` (a
    superset of their rows when the entity has several columns; None: no filter). Only for a source
    whose entity columns are its table's own (no ``transformation_sql``: it may compute them)."""
    if keys is None or getattr(feature.source, "transformation_sql", None):
        return None
    expr = None
    for c in entity:
        values = pc.unique(keys.column(c).combine_chunks().drop_null())
        part = pc.field(c).isin(values)
        expr = part if expr is None else expr & part
    return expr


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


__all__ = ["FEATURES_KEY", "HEAD_FROM", "HEAD_KEY", "HEAD_PREFIX", "HEAD_TABLE_KEY", "HEAD_TABLE_SUFFIX",
           "HEAD_UNTIL", "KIND_BOOL", "KIND_FLOAT", "KIND_INT", "KIND_JSON", "ORDER", "TIMELINES", "change_points",
           "empty_value", "encode_group", "encode_section", "feature_value", "from_plain", "group_bounds",
           "head_schema", "online_rows", "section_matrix", "section_values", "split_heads", "timelines_of"]
