"""Time-windowed aggregation over entity time series: the offline kernel of declarative features.

:func:`aggregate` evaluates aggregations (``sum``, ``count``, ``avg``, ``min``, ``max``, ``stddev_*``,
``var_*``, ``first``, ``last``, ``first_n``, ``last_n``, ``approx_count_distinct``,
``approx_percentile``) over windows of an *events* table, at the entity and time of every row of a
*queries* table, and returns one row per query row, in order.

The semantics (what the oracle tests check)
-------------------------------------------
A query row with entity ``k`` and time ``t`` and a :class:`WindowRule` get the window
``[start, end)`` with ``end = t - delay`` for rolling windows, or the last grid boundary ``<= t -
delay`` for windows with fixed boundaries (``phase + j * slide``), and ``start = end - duration``
(``-inf`` for lifetime windows). The window holds the events of entity ``k`` (null keys match null
keys) with ``start <= ts < end``: strictly before ``end``, so a query at an event's own time never
sees that event. A window ending before the rule's ``start_us`` has no value (null); a query with a
null time has no value. Events with a null time belong to no window.

Rows of one entity with equal timestamps are *peers*; a window contains all of a group of peers or
none of it. Within the group the kernel orders the rows by value (nulls first), so ``first``,
``last``, ``first_n`` and ``last_n`` and the rounding of float sums never depend on the order in
which the source returned its rows.

How (one pass, no per-query scan of the events)
-----------------------------------------------
Entity keys of events and queries get dense integer codes; the events are sorted once by (code, time)
into one array; every window becomes a half-open range ``[lo, hi)`` of positions found by two binary
searches (``np.searchsorted``) for all queries at once. Then, per operator:

* ``count`` and integer ``sum``: prefix sums (exact integer arithmetic), two gathers per query;
* float ``sum`` and ``avg``: the window's values added one by one in window order
  (:func:`fold_sums`; all windows advance together, one vectorised step per position); variances and
  standard deviations: Welford's update over the window's values in order (:func:`fold_moments`).
  Lifetime windows read the running fold of their key instead (one pass). These results are a
  function of the values in the window only, not of where they lie in memory or what else was read: a
  window computed from a subset of the events (an incremental materialization, a backfilled range,
  another key partition) has the very same bits. (numpy's pairwise ``reduce``/``reduceat`` do not
  have that property: their rounding depends on the data's offset in memory.) The cost is the
  windows' total length;
* ``min`` / ``max``: the disjoint sparse table of :mod:`larder.offline.ranges` (one merge per query),
  on the values or, for non-numeric types and NaN, on their dense ranks;
* ``first`` / ``last`` / ``first_n`` / ``last_n``: the positions ``lo`` and ``hi - 1`` themselves;
* ``approx_count_distinct`` (counted exactly): a value is new in a window when its previous
  occurrence for the entity lies before ``lo``;
* ``approx_percentile`` (computed exactly): the value at rank ``max(1, ceil(p * n))`` of the window's
  sorted values.

Empty windows give 0 for ``count`` and ``approx_count_distinct`` and null otherwise.

Inputs of more than :data:`PARTITION_ROWS` events (in memory, or :class:`EventBatches` streamed from
a Delta table or a query) are split by entity key into partitions that are evaluated one after the
other (events and queries of a key always share one): the events are written batch by batch into a
temporary Arrow IPC file, each batch cut by partition, so the working memory stays that of one
partition plus the queries and the output columns, whatever the size of the source. Events of keys
that no query has are dropped on the way (no window of a query holds them).
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from larder.errors import FeatureDefinitionError
from larder.offline.ranges import range_stats
from larder.progress import ProgressBar

INT64_MIN = np.iinfo(np.int64).min
INT64_MAX = np.iinfo(np.int64).max

OPERATORS = ("sum", "count", "avg", "min", "max", "stddev_pop", "stddev_samp", "var_pop", "var_samp", "first",
             "last", "first_n", "last_n", "approx_count_distinct", "approx_percentile")
NUMERIC_OPERATORS = frozenset({"sum", "avg", "stddev_pop", "stddev_samp", "var_pop", "var_samp",
                               "approx_percentile"})
#: Gathered window values per chunk for the operators that read every value of a window.
GATHER_CHUNK = 1 << 22
#: Events per key partition: larger inputs are split by key and evaluated one partition at a time, so
#: the working memory is that of one partition plus the outputs.
PARTITION_ROWS = 1 << 16


@dataclass(frozen=True)
class WindowRule:
    """How a query time becomes a window ``[start, end)`` (all in UTC microseconds).

    ``slide_us`` None: a continuous (rolling) window, ``end = t - delay_us``; otherwise ``end`` is the
    last ``phase_us + j * slide_us <= t - delay_us``. ``duration_us`` None: a lifetime window.
    ``start_us``: windows ending before it have no value.
    """

    duration_us: int | None
    delay_us: int = 0
    slide_us: int | None = None
    phase_us: int = 0
    start_us: int | None = None

    def ends(self, t: np.ndarray) -> np.ndarray:
        """Window ends for query times ``t`` (int64 microseconds)."""
        eligible = t - np.int64(self.delay_us)
        if self.slide_us is None:
            return eligible
        step, phase = np.int64(self.slide_us), np.int64(self.phase_us)
        return (eligible - phase) // step * step + phase

    def starts(self, ends: np.ndarray) -> np.ndarray:
        if self.duration_us is None:
            return np.full(len(ends), INT64_MIN, dtype=np.int64)
        return ends - np.int64(self.duration_us)

    def first_end_after(self, x: np.ndarray) -> np.ndarray:
        """The smallest window end ``> x`` that some query time can produce, as a query time ``t``:
        the earliest ``t`` whose window end exceeds ``x`` (used to find when a window's content changes)."""
        if self.slide_us is None:
            return x + 1 + np.int64(self.delay_us)
        step, phase = np.int64(self.slide_us), np.int64(self.phase_us)
        end = (x - phase) // step * step + phase + step  # first grid point > x
        return end + np.int64(self.delay_us)


@dataclass(frozen=True)
class Aggregation:
    """One output column: ``operator`` over ``input`` in the windows of ``window``."""

    output: str
    operator: str
    input: str
    window: WindowRule
    n: int | None = None
    percentile: float | None = None

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS:
            raise FeatureDefinitionError(f"Unknown aggregation operator {self.operator!r}; known: {list(OPERATORS)}.")


# --------------------------------------------------------------------------- inputs


def epoch_us(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A timestamp column as int64 UTC microseconds and a validity mask (nulls are 0 there)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.timestamp("us", tz=arr.type.tz)) if arr.type.unit != "us" else arr
    elif pa.types.is_date(arr.type):
        arr = arr.cast(pa.timestamp("us"))
    else:
        raise FeatureDefinitionError(f"Expected a timestamp column, got {arr.type}.")
    ints = arr.view(pa.int64()) if arr.type.bit_width == 64 else pc.cast(arr, pa.int64())
    valid = ints.is_valid().to_numpy(zero_copy_only=False)
    values = ints.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return values, valid


def _key_codes(events: pa.Table, queries: pa.Table, entity: Sequence[str], query_entity: Sequence[str]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Dense int64 codes of the entity tuples of events and queries (null equals null)."""
    n_ev = events.num_rows
    codes: np.ndarray | None = None
    for ev_name, q_name in zip(entity, query_entity, strict=True):
        ev, q = events.column(ev_name), queries.column(q_name)
        if ev.type != q.type:
            try:
                q = q.cast(ev.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise FeatureDefinitionError(
                    f"Entity column {q_name!r} has type {q.type} but the source's {ev_name!r} is {ev.type}; convert it."
                ) from exc
        both = pa.chunked_array(list(ev.chunks) + list(q.chunks), type=ev.type)
        if pa.types.is_dictionary(both.type):
            both = both.cast(both.type.value_type)
        enc = pc.dictionary_encode(both, null_encoding="encode").combine_chunks()
        part = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        card = len(enc.dictionary)
        if codes is None:
            codes = part
        elif (int(codes.max(initial=0)) + 1) * card < (1 << 62):
            codes = codes * card + part
        else:
            codes = np.unique(codes, return_inverse=True)[1].reshape(-1).astype(np.int64) * card + part
    assert codes is not None
    if len(codes) and int(codes.max()) >= (1 << 40):
        codes = np.unique(codes, return_inverse=True)[1].reshape(-1).astype(np.int64)
    return codes[:n_ev], codes[n_ev:]


@dataclass
class _Order:
    """Events sorted by (entity code, time): the sort key and how bounds map into it."""

    keys: np.ndarray  # sorted int64 composite keys
    span: int
    tmin: int
    tmax: int
    uniq: np.ndarray | None  # unique times when times are rank-compressed

    def bound(self, code: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Composite key of (code, time x): searchsorted(keys, bound, 'left') is the first event of
        entity ``code`` at or after ``x``."""
        if self.uniq is not None:
            rel = np.searchsorted(self.uniq, x, side="left").astype(np.int64)
        else:
            rel = np.clip(x, self.tmin, self.tmax + 1) - np.int64(self.tmin)
        return code * np.int64(self.span) + rel


def _sort_events(codes: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, _Order]:
    if len(ts) == 0:
        return np.zeros(0, dtype=np.int64), _Order(np.zeros(0, dtype=np.int64), 1, 0, 0, None)
    tmin, tmax = int(ts.min()), int(ts.max())
    ncode = int(codes.max()) + 1
    span = tmax - tmin + 2
    uniq = None
    if ncode * span >= (1 << 62):  # times rank-compressed: order relations with any bound are kept
        uniq = np.unique(ts)
        span = len(uniq) + 1
        rel = np.searchsorted(uniq, ts, side="left").astype(np.int64)
    else:
        rel = ts - np.int64(tmin)
    composite = codes * np.int64(span) + rel
    order = np.argsort(composite, kind="stable")
    return order, _Order(composite[order], span, tmin, tmax, uniq)


# --------------------------------------------------------------------------- one input column


class _Column:
    """One input column in event order, peers ordered by value (nulls first)."""

    def __init__(self, name: str, arr: pa.Array, peer_groups: np.ndarray | None) -> None:
        self.name = name
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        self.type = arr.type
        if peer_groups is not None and len(peer_groups):
            arr = arr.take(pa.array(self._peer_order(arr, peer_groups)))
        self.arr = arr
        self.valid = arr.is_valid().to_numpy(zero_copy_only=False)
        self.kind = ("int" if pa.types.is_integer(arr.type) else "float" if pa.types.is_floating(arr.type)
                     else "bool" if pa.types.is_boolean(arr.type) else "other")
        self._ranks: tuple[np.ndarray, pa.Array] | None = None

    @staticmethod
    def _peer_order(arr: pa.Array, groups: np.ndarray) -> np.ndarray:
        """Positions of ``arr`` with every peer group (rows ``groups`` mark, consecutive) sorted by value,
        nulls first; other rows keep their place."""
        perm = np.arange(len(arr), dtype=np.int64)
        rows = np.flatnonzero(groups >= 0)
        if not len(rows):
            return perm
        sub = arr.take(pa.array(rows))
        try:
            rank = _dense_rank(sub)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, TypeError):
            return perm  # values without an order (lists, structs): peers stay in source order
        within = np.lexsort((rank, groups[rows]))
        perm[rows] = rows[within]
        return perm

    def numbers(self) -> np.ndarray:
        """Numeric values (float64 or int64); meaningless where not valid."""
        if self.kind == "int":
            return self.arr.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        if self.kind == "float":
            return self.arr.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
        if self.kind == "bool":
            return self.arr.fill_null(False).to_numpy(zero_copy_only=False).astype(np.int64)
        raise FeatureDefinitionError(f"Column {self.name!r} ({self.type}) is not numeric.")

    def ranks(self) -> tuple[np.ndarray, pa.Array]:
        """Dense ranks (0-based, -1 for null) in value order (NaN largest), and the value of each rank."""
        if self._ranks is None:
            rank = _dense_rank(self.arr)
            top = int(rank.max(initial=-1)) + 1
            first = np.full(top, -1, dtype=np.int64)
            ok = np.flatnonzero(rank >= 0)
            first[rank[ok][::-1]] = ok[::-1]
            self._ranks = (rank, self.arr.take(pa.array(first)))
        return self._ranks


def _dense_rank(arr: pa.Array) -> np.ndarray:
    """0-based dense rank of each value in ascending order (NaN after numbers), -1 for nulls."""
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type):
        values = arr.fill_null(0).to_numpy(zero_copy_only=False)
        _, rank = np.unique(values, return_inverse=True)  # NaN last, -0.0 == 0.0
        rank = rank.astype(np.int64).reshape(-1)
    else:
        rank = pc.rank(arr, sort_keys="ascending", tiebreaker="dense")
        rank = rank.to_numpy(zero_copy_only=False).astype(np.int64) - 1
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    if not valid.all():
        rank = np.where(valid, rank, -1)
        if valid.any():  # re-densify so that nulls' placeholder rank leaves no gap
            _, rank_v = np.unique(rank[valid], return_inverse=True)
            rank[valid] = rank_v.reshape(-1)
    return rank


# --------------------------------------------------------------------------- range helpers


def _prefix(values: np.ndarray) -> np.ndarray:
    out = np.empty(len(values) + 1, dtype=values.dtype)
    out[0] = 0
    np.cumsum(values, out=out[1:])
    return out


def _range_sums(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, identity: Any) -> np.ndarray:
    """``reduce(add, values[lo:hi])`` per range (garbage where ``lo == hi``: mask it). Only for
    integers: numpy's float reductions round differently depending on the data's offset in memory."""
    if len(lo) == 0:
        return np.zeros(0, dtype=values.dtype)
    padded = np.append(values, np.array([identity], dtype=values.dtype))
    order = np.argsort(lo, kind="stable") if np.any(lo[1:] < lo[:-1]) else None
    slo, shi = (lo, hi) if order is None else (lo[order], hi[order])
    idx = np.empty(2 * len(lo), dtype=np.int64)
    idx[0::2], idx[1::2] = slo, np.maximum(shi, slo)
    sums = np.add.reduceat(padded, idx)[0::2]
    if order is None:
        return sums
    out = np.empty_like(sums)
    out[order] = sums
    return out


def _by_length(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows ordered longest first: (order, starts, negated lengths) for :func:`_fold_steps`."""
    length = hi - lo
    order = np.argsort(-length, kind="stable")
    return order, lo[order], -length[order]


def _fold_steps(neg_lengths: np.ndarray) -> Iterator[tuple[int, int]]:
    """``(j, m)``: at step ``j`` the first ``m`` windows (longest first) still have a ``j``-th value."""
    longest = int(-neg_lengths[0]) if len(neg_lengths) else 0
    for j in range(longest):
        yield j, int(np.searchsorted(neg_lengths, -j, side="left"))


def fold_sums(values: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per range, the sum of the valid values of ``values[lo:hi]`` added one by one from ``lo`` up:
    ``((v0 + v1) + v2) + ...``, a definition that depends on the range's values only (not on where they
    lie in memory or what surrounds them). ``-0.0`` for empty ranges. All ranges advance together, one
    vectorised step per position, longest ranges first."""
    order, starts, neg = _by_length(lo, hi)
    acc = np.full(len(lo), -0.0)
    for j, m in _fold_steps(neg):
        idx = starts[:m] + j
        acc[:m] += np.where(valid[idx], values[idx], -0.0)
    out = np.empty_like(acc)
    out[order] = acc
    return out


def fold_moments(values: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per range, Welford's update applied to the valid values of ``values[lo:hi]`` in order: the
    count, the mean and the sum of squared deviations ``M2`` (a function of the range's values only)."""
    order, starts, neg = _by_length(lo, hi)
    q = len(lo)
    n, mean, m2 = np.zeros(q), np.zeros(q), np.zeros(q)
    for j, m in _fold_steps(neg):
        idx = starts[:m] + j
        ok = valid[idx]
        v = np.where(ok, values[idx], 0.0)
        n_new = n[:m] + ok
        delta = v - mean[:m]
        mean_new = mean[:m] + np.where(ok, delta / np.maximum(n_new, 1.0), 0.0)
        m2[:m] += np.where(ok, delta * (v - mean_new), 0.0)
        mean[:m], n[:m] = mean_new, n_new
    out = [np.empty(q), np.empty(q), np.empty(q)]
    for dst, src in zip(out, (n, mean, m2), strict=True):
        dst[order] = src
    return out[0], out[1], out[2]


def _prefix_states(values: np.ndarray, valid: np.ndarray, runs: np.ndarray, moments: bool
                   ) -> list[np.ndarray]:
    """The fold of every key's values from its first event up to each position (lifetime windows):
    ``[sum]`` or ``[n, mean, m2]`` per position. ``runs``: the start of each key's run of positions."""
    size = len(values)
    lengths = np.diff(np.r_[runs, size])
    order = np.argsort(-lengths, kind="stable")
    starts, neg = runs[order], -lengths[order]
    if not moments:
        acc = np.full(len(runs), -0.0)
        out = np.empty(size)
        for j, m in _fold_steps(neg):
            idx = starts[:m] + j
            acc[:m] += np.where(valid[idx], values[idx], -0.0)
            out[idx] = acc[:m]
        return [out]
    n, mean, m2 = np.zeros(len(runs)), np.zeros(len(runs)), np.zeros(len(runs))
    res = [np.empty(size), np.empty(size), np.empty(size)]
    for j, m in _fold_steps(neg):
        idx = starts[:m] + j
        ok = valid[idx]
        v = np.where(ok, values[idx], 0.0)
        n_new = n[:m] + ok
        delta = v - mean[:m]
        mean_new = mean[:m] + np.where(ok, delta / np.maximum(n_new, 1.0), 0.0)
        m2[:m] += np.where(ok, delta * (v - mean_new), 0.0)
        mean[:m], n[:m] = mean_new, n_new
        res[0][idx], res[1][idx], res[2][idx] = n_new, mean_new, m2[:m]
    return res


def _gathered(lo: np.ndarray, hi: np.ndarray, rows: np.ndarray | None = None
              ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Chunks of queries (``rows``) with the positions of their windows concatenated:
    ``(query rows, positions, segment starts into positions, lengths)``."""
    if rows is None:
        rows = np.arange(len(lo), dtype=np.int64)
    lengths = (hi - lo)[rows]
    cum = np.cumsum(lengths)
    start = 0
    while start < len(rows):
        base = int(cum[start - 1]) if start else 0
        stop = int(np.searchsorted(cum, base + GATHER_CHUNK, side="right"))
        stop = max(stop, start + 1)
        chunk = rows[start:stop]
        ln = lengths[start:stop]
        seg = np.zeros(len(chunk), dtype=np.int64)
        np.cumsum(ln[:-1], out=seg[1:])
        total = int(ln.sum())
        pos = np.arange(total, dtype=np.int64) - np.repeat(seg - lo[chunk], ln)
        yield chunk, pos, seg, ln
        start = stop


def _segment_sums(values: np.ndarray, seg: np.ndarray, lengths: np.ndarray, identity: Any) -> np.ndarray:
    """Sum of each consecutive segment of ``values`` (0-length segments: garbage, mask them)."""
    if len(seg) == 0:
        return np.zeros(0, dtype=values.dtype)
    padded = np.append(values, np.array([identity], dtype=values.dtype))
    return np.add.reduceat(padded, np.minimum(seg, len(values)))


# --------------------------------------------------------------------------- operators


@dataclass
class _Bounds:
    lo: np.ndarray
    hi: np.ndarray
    ok: np.ndarray  # query has a window (time not null, window end not before start_us)
    lifetime: bool = False  # every window starts at its key's first event

    @property
    def length(self) -> np.ndarray:
        return self.hi - self.lo


@dataclass
class _Ctx:
    runs: np.ndarray  # first position of every key's run of events
    columns: dict[str, _Column] = field(default_factory=dict)
    counts: dict[str, np.ndarray] = field(default_factory=dict)  # prefix counts of valid values
    cache: dict[Any, Any] = field(default_factory=dict)


def _count(col: _Column, b: _Bounds, ctx: _Ctx) -> np.ndarray:
    if col.name not in ctx.counts:
        ctx.counts[col.name] = _prefix(col.valid.astype(np.int64))
    c = ctx.counts[col.name]
    return c[b.hi] - c[b.lo]


def _float_sum(col: _Column, b: _Bounds, ctx: _Ctx) -> np.ndarray:
    """Sums as :func:`fold_sums` defines them (lifetime windows: the key's running fold)."""
    key = ("fsum", col.name, id(b))
    if key not in ctx.cache:
        values = col.numbers().astype(np.float64)
        if b.lifetime:
            [prefix] = _prefix_states(values, col.valid, ctx.runs, moments=False)
            ctx.cache[key] = np.where(b.hi > b.lo, prefix[np.maximum(b.hi - 1, 0)] if len(prefix) else 0.0, -0.0)
        else:
            ctx.cache[key] = fold_sums(values, col.valid, b.lo, b.hi)
    return ctx.cache[key]


def _int_sum(col: _Column, b: _Bounds) -> np.ndarray:
    values = np.where(col.valid, col.numbers(), 0)
    if float(np.abs(values.astype(np.float64)).sum()) < 2.0**62:
        p = _prefix(values)
        return p[b.hi] - p[b.lo]
    return _range_sums(values, b.lo, b.hi, 0)  # exact per window, no prefix overflow


def _minmax(col: _Column, b: _Bounds, which: str) -> pa.Array:
    direct = False
    if col.kind == "float":
        values = col.numbers()
        direct = bool(np.isfinite(values[col.valid]).all())
    elif col.kind == "int":
        values = col.numbers()
        direct = bool(np.abs(values[col.valid]).max(initial=0) <= 2**53)
    if direct:
        [out] = range_stats(values.astype(np.float64), col.valid, [(b.lo, b.hi)], {which})
        result = out[which]
        got = ~np.isnan(result) & b.ok
        arr = pa.array(np.where(got, result, 0.0), mask=~got)
        return arr.cast(col.type)
    rank, by_rank = col.ranks()
    [out] = range_stats(rank.astype(np.float64), rank >= 0, [(b.lo, b.hi)], {which})
    result = out[which]
    got = ~np.isnan(result) & b.ok
    idx = np.where(got, result, 0).astype(np.int64)
    return by_rank.take(pa.array(idx, mask=~got)) if len(by_rank) else pa.nulls(len(idx), col.type)


def _positions(col: _Column, pos: np.ndarray, got: np.ndarray) -> pa.Array:
    if not len(col.arr):
        return pa.nulls(len(pos), col.type)
    return col.arr.take(pa.array(np.where(got, pos, 0), mask=~got))


def _ordered_n(col: _Column, b: _Bounds, n: int, last: bool) -> pa.Array:
    length = np.minimum(b.length, n)
    got = b.ok & (length > 0)
    length = np.where(got, length, 0)
    start = b.hi - length if last else b.lo
    offsets = np.zeros(len(length) + 1, dtype=np.int32 if int(length.sum()) < 2**31 else np.int64)
    np.cumsum(length, out=offsets[1:])
    idx = np.arange(int(offsets[-1]), dtype=np.int64) - np.repeat(offsets[:-1] - start, length)
    values = col.arr.take(pa.array(idx)) if len(idx) else pa.array([], type=col.type)
    list_type = pa.list_(col.type) if offsets.dtype == np.int32 else pa.large_list(col.type)
    cls = pa.ListArray if offsets.dtype == np.int32 else pa.LargeListArray
    arr = cls.from_arrays(pa.array(offsets), values, mask=pa.array(~got), type=list_type)
    return arr


def _moments(col: _Column, b: _Bounds, ctx: _Ctx) -> tuple[np.ndarray, np.ndarray]:
    """(count, M2) per query: Welford's update over the window's values in order (:func:`fold_moments`)."""
    key = ("m2", col.name, id(b))
    if key in ctx.cache:
        return ctx.cache[key]
    n = _count(col, b, ctx)
    values = col.numbers().astype(np.float64)
    if b.lifetime:
        _, _, prefix = _prefix_states(values, col.valid, ctx.runs, moments=True)
        m2 = np.where(b.hi > b.lo, prefix[np.maximum(b.hi - 1, 0)] if len(prefix) else 0.0, 0.0)
    else:
        m2 = fold_moments(values, col.valid, b.lo, b.hi)[2]
    ctx.cache[key] = (n, m2)
    return n, m2


def _distinct(col: _Column, b: _Bounds, codes: np.ndarray) -> np.ndarray:
    rank, _ = col.ranks()
    valid = rank >= 0
    card = int(rank.max(initial=-1)) + 2
    group = codes * np.int64(card) + (rank + 1) if int(codes.max(initial=0)) < (1 << 62) // card else None
    if group is None:
        group = np.unique(np.stack([codes, rank]), axis=1, return_inverse=True)[1].reshape(-1).astype(np.int64)
    order = np.argsort(group, kind="stable")
    prev = np.full(len(rank), -1, dtype=np.int64)
    same = group[order][1:] == group[order][:-1]
    prev[order[1:][same]] = order[:-1][same]
    out = np.zeros(len(b.lo), dtype=np.int64)
    rows = np.flatnonzero(b.ok & (b.length > 0))
    for chunk, pos, seg, ln in _gathered(b.lo, b.hi, rows):
        new = (valid[pos] & (prev[pos] < np.repeat(b.lo[chunk], ln))).astype(np.int64)
        out[chunk] = _segment_sums(new, seg, ln, 0)
    return out


def _percentile(col: _Column, b: _Bounds, p: float, ctx: _Ctx) -> pa.Array:
    rank, by_rank = col.ranks()
    n = _count(col, b, ctx)
    got = b.ok & (n > 0)
    pick = np.zeros(len(n), dtype=np.int64)
    rows = np.flatnonzero(got)
    card = np.int64(int(rank.max(initial=-1)) + 2)
    for chunk, pos, _seg, ln in _gathered(b.lo, b.hi, rows):
        r = rank[pos]
        seg_id = np.repeat(np.arange(len(chunk), dtype=np.int64), ln)
        keep = r >= 0
        ordered = np.sort(seg_id[keep] * card + r[keep])
        m = n[chunk]
        k = np.maximum(1, np.ceil(p * m).astype(np.int64))
        starts = np.zeros(len(chunk), dtype=np.int64)
        np.cumsum(m[:-1], out=starts[1:])
        pick[chunk] = ordered[starts + k - 1] - np.arange(len(chunk), dtype=np.int64) * card
    return by_rank.take(pa.array(pick, mask=~got)) if len(by_rank) else pa.nulls(len(n), col.type)


def output_type(operator: str, input_type: pa.DataType) -> pa.DataType:
    """The Arrow type of ``operator``'s result over an input of ``input_type``."""
    if operator in ("count", "approx_count_distinct"):
        return pa.int64()
    if operator == "sum":
        return pa.int64() if pa.types.is_integer(input_type) else pa.float64()
    if operator in ("avg", "stddev_pop", "stddev_samp", "var_pop", "var_samp"):
        return pa.float64()
    if operator in ("first_n", "last_n"):
        return pa.list_(input_type)
    return input_type


def check_input_type(operator: str, input_type: pa.DataType) -> str | None:
    """Why ``operator`` cannot take ``input_type`` (None when it can)."""
    numeric = pa.types.is_integer(input_type) or pa.types.is_floating(input_type)
    if operator in NUMERIC_OPERATORS and not numeric:
        return f"{operator} needs a numeric (integer or floating-point) input, got {input_type}"
    if operator in ("min", "max", "approx_count_distinct") and (
            pa.types.is_nested(input_type) or pa.types.is_null(input_type)):
        return f"{operator} needs an orderable scalar input, got {input_type}"
    return None


def _evaluate(agg: Aggregation, col: _Column, b: _Bounds, ctx: _Ctx, codes: np.ndarray) -> pa.Array:
    op = agg.operator
    q = len(b.lo)
    if op == "count":
        return pa.array(np.where(b.ok, _count(col, b, ctx), 0), mask=~b.ok)
    if op in ("first", "last"):
        got = b.ok & (b.length > 0)
        return _positions(col, b.lo if op == "first" else b.hi - 1, got)
    if op in ("first_n", "last_n"):
        assert agg.n is not None
        return _ordered_n(col, b, agg.n, op == "last_n")
    if op in ("min", "max"):
        return _minmax(col, b, op)
    if op == "approx_count_distinct":
        return pa.array(np.where(b.ok, _distinct(col, b, codes), 0), mask=~b.ok)
    if op == "approx_percentile":
        assert agg.percentile is not None
        return _percentile(col, b, agg.percentile, ctx)
    n = _count(col, b, ctx)
    got = b.ok & (n > 0)
    if op == "sum":
        if col.kind in ("int", "bool"):
            return pa.array(np.where(got, _int_sum(col, b), 0), mask=~got)
        return pa.array(np.where(got, _float_sum(col, b, ctx), np.nan), mask=~got)
    if op == "avg":
        s = _float_sum(col, b, ctx) if col.kind == "float" else _int_sum(col, b).astype(np.float64)
        return pa.array(np.where(got, s / np.maximum(n, 1), np.nan), mask=~got)
    n, m2 = _moments(col, b, ctx)
    samp = op.endswith("_samp")
    denom = n - 1 if samp else n
    has = got & (denom > 0)
    var = m2 / np.maximum(denom, 1)
    out = np.sqrt(var) if op.startswith("stddev") else var
    assert len(out) == q
    return pa.array(np.where(has, out, np.nan), mask=~has)


@dataclass(frozen=True)
class EventBatches:
    """Events read batch by batch: a source too large to hold in memory (a Delta table read file by
    file, a SQL query's streamed result).

    ``open`` starts a pass over the batches (of ``schema``; in any order: the kernel's results do not
    depend on it); ``rows`` is how many rows they hold, or an upper bound (it sizes the key
    partitions)."""

    schema: pa.Schema
    open: Callable[[], Iterator[pa.RecordBatch]]
    rows: int

    def to_table(self) -> pa.Table:
        return pa.Table.from_batches(list(self.open()), schema=self.schema)


def aggregate(events: pa.Table | EventBatches, queries: pa.Table, *, entity: Sequence[str], timestamp: str,
              query_timestamp: str, aggregations: Sequence[Aggregation],
              query_entity: Sequence[str] | None = None) -> pa.Table:
    """Evaluate ``aggregations`` at every row of ``queries``.

    Parameters
    ----------
    events : the source rows (a table, or :class:`EventBatches`): ``entity`` columns, the ``timestamp``
        column, the aggregations' inputs
    queries : the evaluation points: ``query_entity`` columns (default: named as ``entity``) and a
        ``query_timestamp`` column
    aggregations : the output columns

    Returns
    -------
    pyarrow.Table
        One column per aggregation, named ``output``, one row per query row in order.

    Examples
    --------
    >>> import datetime as dt
    >>> day = 86_400_000_000
    >>> ts = pa.array([0, day, 2 * day], pa.timestamp("us", tz="UTC"))
    >>> ev = pa.table({"k": [1, 1, 1], "ts": ts, "x": [1.0, 2.0, 4.0]})
    >>> q = pa.table({"k": [1, 1], "ts": pa.array([2 * day, 3 * day], pa.timestamp("us", tz="UTC"))})
    >>> w = WindowRule(duration_us=2 * day)
    >>> aggregate(ev, q, entity=["k"], timestamp="ts", query_timestamp="ts",
    ...           aggregations=[Aggregation("s", "sum", "x", w)]).column("s").to_pylist()
    [3.0, 6.0]
    """
    query_entity = list(query_entity or entity)
    needed = list(dict.fromkeys([*entity, timestamp, *(a.input for a in aggregations)]))
    kwargs: dict[str, Any] = {"entity": entity, "timestamp": timestamp, "query_timestamp": query_timestamp,
                              "aggregations": aggregations, "query_entity": query_entity}
    if isinstance(events, pa.Table):
        if events.num_rows < 2 * PARTITION_ROWS or queries.num_rows == 0:
            return _aggregate(events, queries, **kwargs)
        events = events.select([c for c in needed if c in events.column_names])  # a partition takes these only
        schema, rows = events.schema, events.num_rows
        batches: Iterator[pa.RecordBatch] = iter(events.to_batches(max_chunksize=SPILL_BATCH_ROWS))
    else:
        schema = pa.schema([events.schema.field(c) for c in needed if c in events.schema.names])
        if queries.num_rows == 0:
            return _aggregate(schema.empty_table(), queries, **kwargs)
        rows = events.rows
        batches = (_conform(b, schema) for b in events.open())
        head: list[pa.RecordBatch] = []
        held = 0
        for b in batches:  # a small source is evaluated in one pass
            head.append(b)
            held += b.num_rows
            if held >= 2 * PARTITION_ROWS:
                break
        else:
            return _aggregate(pa.Table.from_batches(head, schema=schema), queries, **kwargs)
        batches = itertools.chain(head, batches)
        del head
    parts = max(2, rows // PARTITION_ROWS)
    with tempfile.TemporaryDirectory(prefix="larder-aggregate-") as tmp, \
            ProgressBar(f"aggregate: {rows:,} events split by key", total=rows, show=rows >= PROGRESS_MIN_EVENTS,
                        unit="events") as bar:
        spill, q_part = _spill_partitions(schema, batches, queries, entity, query_entity, parts, Path(tmp),
                                          tick=bar.advance)
        del batches
        q_order = np.argsort(q_part, kind="stable").astype(np.int32 if queries.num_rows < (1 << 31) else np.int64)
        q_ends = np.cumsum(np.bincount(q_part, minlength=parts))
        del q_part
        bar.phase(f"aggregate: {queries.num_rows:,} rows in {parts} key partitions", total=parts)
        return _by_partition(spill, q_order, q_ends, queries, aggregations, kwargs, tick=bar.advance)


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch``'s columns of ``schema``, in its types."""
    if batch.schema == schema:
        return batch
    return pa.RecordBatch.from_arrays([batch.column(f.name).cast(f.type) for f in schema], schema=schema)


#: Rows per batch of an in-memory table when its events are split into key partitions.
SPILL_BATCH_ROWS = 1 << 16
#: Inputs of at least this many events show a progress bar (when progress is enabled).
PROGRESS_MIN_EVENTS = 1_000_000
#: Events spilled between two hand-backs of freed memory to the system.
RELEASE_ROWS = 1 << 18


@dataclass
class _Spill:
    """The events of every key partition, written to one Arrow IPC file: partition ``p`` is the record
    batches ``batches[p]`` of the file at ``path``."""

    path: Path
    schema: pa.Schema
    batches: list[list[int]]

    def partition(self, reader: pa.ipc.RecordBatchFileReader, p: int) -> pa.Table:
        return pa.Table.from_batches([reader.get_batch(i) for i in self.batches[p]], schema=self.schema)


def _key_sets(schema: pa.Schema, queries: pa.Table, entity: Sequence[str], query_entity: Sequence[str]
              ) -> list[tuple[str, pa.DataType, pa.Array]]:
    """Per entity column: its name in the events, the type the events' values are compared in, and the
    distinct values of the queries' column (null included)."""
    sets = []
    for ev_name, q_name in zip(entity, query_entity, strict=True):
        typ = schema.field(ev_name).type
        if pa.types.is_dictionary(typ):
            typ = typ.value_type
        q = queries.column(q_name)
        if pa.types.is_dictionary(q.type):
            q = q.cast(q.type.value_type)
        if q.type != typ:
            try:
                q = q.cast(typ)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise FeatureDefinitionError(
                    f"Entity column {q_name!r} has type {q.type} but the source's {ev_name!r} is {typ}; convert it."
                ) from exc
        sets.append((ev_name, typ, pc.unique(q)))
    return sets


def _partition_of(columns: Sequence[pa.Array | pa.ChunkedArray], sets: Sequence[tuple[str, pa.DataType, pa.Array]],
                  parts: int) -> np.ndarray:
    """The key partition of each row (-1 where the key is none of the queries': only events can have
    such keys), from the rows' entity
    columns: a key's position among the queries' distinct keys (null equal to null), modulo ``parts``."""
    part: np.ndarray | None = None
    absent: np.ndarray | None = None
    for col, (_name, typ, distinct) in zip(columns, sets, strict=True):
        if col.type != typ:
            col = col.cast(typ)
        found = pc.index_in(col, value_set=distinct, skip_nulls=False)
        if found.null_count:
            miss = found.is_null().to_numpy(zero_copy_only=False)
            absent = miss if absent is None else absent | miss
            found = found.fill_null(0)
        codes = found.to_numpy(zero_copy_only=False).astype(np.int64)
        part = codes if part is None else part * np.int64(1_000_003) + codes
    assert part is not None
    part %= np.int64(parts)
    if absent is not None:
        part[absent] = -1
    return part


def _group_order(part: np.ndarray, parts: int) -> np.ndarray:
    """A stable order of the rows by partition number (a radix sort: the numbers are small)."""
    small = part.astype(np.int16 if parts <= 32767 else np.int32)
    return np.argsort(small, kind="stable")


def _spill_partitions(schema: pa.Schema, batches: Iterator[pa.RecordBatch], queries: pa.Table,
                      entity: Sequence[str], query_entity: Sequence[str], parts: int, tmp: Path,
                      tick: Callable[[int], None]) -> tuple[_Spill, np.ndarray]:
    """Write the events into one IPC file, each batch split by key partition (events of keys no query
    has are dropped: they are in no query's window), and give each query row its partition."""
    sets = _key_sets(schema, queries, entity, query_entity)
    n_q, step = queries.num_rows, SPILL_BATCH_ROWS
    q_part = np.empty(n_q, dtype=np.int16 if parts <= 32767 else np.int32)  # no query lacks a partition
    for at in range(0, n_q, step):  # a batch at a time: the temporaries stay those of one batch
        q_part[at:at + step] = _partition_of([queries.column(q).slice(at, step) for q in query_entity], sets, parts)
    plain = pa.schema([pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema])
    spill = _Spill(tmp / "events.arrow", plain, [[] for _ in range(parts)])
    written = unreleased = 0
    with pa.OSFile(str(spill.path), "wb") as sink, pa.ipc.new_file(sink, plain) as writer:
        for batch in batches:
            if not batch.num_rows:
                continue
            batch = _conform(batch, plain)
            part = _partition_of([batch.column(name) for name, _typ, _set in sets], sets, parts)
            keep = np.flatnonzero(part >= 0)
            order = keep[_group_order(part[keep], parts)]
            counts = np.bincount(part[order], minlength=parts)
            taken = batch.take(pa.array(order))
            at = 0
            for p in np.flatnonzero(counts).tolist():
                n = int(counts[p])
                writer.write_batch(taken.slice(at, n))
                spill.batches[p].append(written)
                written += 1
                at += n
            del taken, part, order
            unreleased += batch.num_rows
            tick(batch.num_rows)
            if unreleased >= RELEASE_ROWS:  # the freed temporaries of a batch go back to the system
                _release_memory()
                unreleased = 0
    return spill, q_part


def _by_partition(spill: _Spill, q_order: np.ndarray, q_ends: np.ndarray, queries: pa.Table,
                  aggregations: Sequence[Aggregation], kwargs: dict[str, Any], tick: Callable[[int], None]
                  ) -> pa.Table:
    """Evaluate each key partition of the spilled events against its queries (``q_order[q_ends[p - 1]:
    q_ends[p]]``, ascending), writing number outputs into their final arrays as each partition is done
    (other types are put in order at the end)."""
    n_q = queries.num_rows
    placed: dict[str, tuple[pa.DataType, np.ndarray, np.ndarray]] = {}
    pieces: dict[str, list[pa.Array]] = {}
    where: np.ndarray | None = None
    done = 0
    with pa.OSFile(str(spill.path), "rb") as source:
        reader = pa.ipc.open_file(source)
        for p in range(len(spill.batches)):
            tick(1)
            qi = q_order[q_ends[p - 1] if p else 0:q_ends[p]]  # ascending: the order is stable
            if not len(qi):
                continue
            events = spill.partition(reader, p)
            got = _aggregate(events, queries.take(pa.array(qi)), **kwargs)
            del events
            for agg in aggregations:
                col = got.column(agg.output).combine_chunks()
                typ = col.type
                if agg.output not in placed and agg.output not in pieces:
                    if _fixed_width(typ):
                        dtype = np.dtype(typ.to_pandas_dtype())
                        placed[agg.output] = (typ, np.zeros(n_q, dtype=dtype), np.zeros(n_q, dtype=bool))
                    else:
                        pieces[agg.output] = []
                if agg.output in placed:
                    _typ, values, valid = placed[agg.output]
                    values[qi] = _storage(col).fill_null(0).to_numpy(zero_copy_only=False)
                    valid[qi] = col.is_valid().to_numpy(zero_copy_only=False)
                else:
                    pieces[agg.output].append(col)
            if pieces:
                if where is None:
                    where = np.empty(n_q, dtype=np.int64)
                where[qi] = np.arange(done, done + len(qi), dtype=np.int64)
            done += len(qi)
            del got, qi
            _release_memory()
    out = {}
    for agg in aggregations:
        if agg.output in placed:
            typ, values, valid = placed.pop(agg.output)
            storage = pa.array(values, mask=~valid)
            out[agg.output] = storage.view(typ) if storage.type != typ else storage
            del values, valid
        else:
            assert where is not None
            chunks = pieces.pop(agg.output)
            out[agg.output] = pa.chunked_array(chunks, type=chunks[0].type).combine_chunks().take(pa.array(where))
    return pa.table(out)


def _fixed_width(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_timestamp(t)


def _storage(arr: pa.Array) -> pa.Array:
    """A fixed-width array's values as a plain number array (timestamps as int64)."""
    return arr.view(pa.int64()) if pa.types.is_timestamp(arr.type) else arr


def _release_memory() -> None:
    """Hand the memory freed by a partition back to the system (Arrow's pool; glibc's heap, where
    freed blocks of a size just used are otherwise kept), so the process's footprint stays that of
    one partition."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc() -> Any:
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # pragma: no cover - not glibc
        return None


_LIBC = _glibc()


def _aggregate(events: pa.Table, queries: pa.Table, *, entity: Sequence[str], timestamp: str,
               query_timestamp: str, aggregations: Sequence[Aggregation], query_entity: Sequence[str]) -> pa.Table:
    """:func:`aggregate` over one partition of the keys."""
    ts, ts_ok = epoch_us(events.column(timestamp))
    if not ts_ok.all():
        keep = np.flatnonzero(ts_ok)
        events = events.take(pa.array(keep))
        ts = ts[keep]
    ev_codes, q_codes = _key_codes(events, queries, entity, query_entity)
    order, sorted_keys = _sort_events(ev_codes, ts)
    sorted_codes = ev_codes[order]
    del ts
    peers = None
    if len(order) > 1:
        tie = sorted_keys.keys[1:] == sorted_keys.keys[:-1]
        if tie.any():
            starts = np.flatnonzero(np.r_[True, ~tie])
            group_id = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))
            in_group = np.r_[tie, False] | np.r_[False, tie]
            peers = np.where(in_group, group_id, -1)
    qt, qt_ok = epoch_us(queries.column(query_timestamp))
    runs = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]) if len(sorted_codes) \
        else np.zeros(0, dtype=np.int64)
    ctx = _Ctx(runs=runs)
    take = pa.array(order)
    bounds: dict[WindowRule, _Bounds] = {}
    out: dict[str, pa.Array] = {}
    for agg in aggregations:
        if agg.input not in ctx.columns:
            ctx.columns[agg.input] = _Column(agg.input, events.column(agg.input).combine_chunks().take(take), peers)
        col = ctx.columns[agg.input]
        why = check_input_type(agg.operator, col.type)
        if why:
            raise FeatureDefinitionError(f"Aggregation {agg.output!r}: {why}.")
        rule = agg.window
        if rule not in bounds:
            ends = rule.ends(qt)
            starts_ = rule.starts(ends)
            ok = qt_ok.copy()
            if rule.start_us is not None:
                ok &= ends >= np.int64(rule.start_us)
            lo = np.searchsorted(sorted_keys.keys, sorted_keys.bound(q_codes, starts_), side="left")
            hi = np.searchsorted(sorted_keys.keys, sorted_keys.bound(q_codes, ends), side="left")
            lo = np.where(ok, lo, 0).astype(np.int64)
            hi = np.where(ok, np.maximum(hi, lo), 0).astype(np.int64)
            bounds[rule] = _Bounds(lo, hi, ok, lifetime=rule.duration_us is None)
        out[agg.output] = _evaluate(agg, col, bounds[rule], ctx, sorted_codes)
    return pa.table(out) if out else pa.table({"__empty": pa.nulls(queries.num_rows)}).drop(["__empty"])


def change_times(events: pa.Table, *, entity: Sequence[str], timestamp: str, rules: Sequence[WindowRule],
                 after_us: int) -> pa.Table:
    """For every entity, the query times ``> after_us`` at which some rule's window gains or loses an
    event: the points after which a precomputed value must be replaced (see :mod:`larder.declarative.online`).

    Returns a table of the ``entity`` columns and ``t`` (UTC microseconds, int64), sorted and unique
    per entity. A rule with ``start_us`` also changes (from null to a value) at the first query time
    whose window end reaches ``start_us``.
    """
    ts, ok = epoch_us(events.column(timestamp))
    keep = np.flatnonzero(ok)
    ev = events.select(list(entity)).take(pa.array(keep))
    ts = ts[keep]
    parts_t: list[np.ndarray] = []
    parts_row: list[np.ndarray] = []
    rows = np.arange(len(ts), dtype=np.int64)
    for rule in rules:
        cand = [rule.first_end_after(ts)]  # the event enters: first end > ts
        if rule.duration_us is not None:  # the event leaves: first end - duration > ts
            cand.append(rule.first_end_after(ts + np.int64(rule.duration_us)))
        for c in cand:
            sel = c > after_us
            parts_t.append(c[sel])
            parts_row.append(rows[sel])
    if not parts_t:
        return pa.table({**{c: pa.array([], ev.schema.field(c).type) for c in entity}, "t": pa.array([], pa.int64())})
    t = np.concatenate(parts_t)
    row = np.concatenate(parts_row)
    table = ev.take(pa.array(row)).append_column("t", pa.array(t))
    grouped = table.group_by(list(entity), use_threads=False).aggregate([("t", "distinct")])
    flat = grouped.column("t_distinct")
    lengths = pc.list_value_length(flat).to_numpy(zero_copy_only=False)
    keys = grouped.select(list(entity)).take(pa.array(np.repeat(np.arange(grouped.num_rows), lengths)))
    out = keys.append_column("t", pc.list_flatten(flat))
    return out.sort_by([*((c, "ascending") for c in entity), ("t", "ascending")])


__all__ = ["Aggregation", "EventBatches", "OPERATORS", "WindowRule", "aggregate", "change_times", "check_input_type", "epoch_us",
           "output_type"]
