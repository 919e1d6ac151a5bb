"""Key codes and key-partitioned source rows for point-in-time joins (used by :mod:`larder.offline.pit`).

The distinct key tuples of the spine rows that can match get dense codes (``0..n-1``). The source is
then read once, streaming, and a source row is kept only when it can matter to some spine row:

* its key is among the spine's keys;
* for a time series, its timestamp is not after the latest spine time of its key and, with a
  lookback window, not before the earliest spine time of its key minus the window (such a row and
  every older row of the key are outside every spine row's window, so dropping them changes no result).

A kept row goes, as (key code ``k0``, UTC microsecond time ``ts``, tiebreak ``tb``, position ``row``),
to the partition of its key; the spine rows go to the partition of theirs. Each partition is matched
on its own and then released, so the engine never sees more than one partition of the source, and
the narrow copy of the source (4 + 8 + 4 bytes a row, fewer rows) never exists whole beyond the
partitions still waiting.

Also the conversions both paths share: key and time columns as DuckDB compares them (UTC
microseconds). Only integer (and timestamp, as microseconds), string and binary keys are coded; other key types
raise :class:`NoCodes` and the caller uses its general path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from larder.errors import FeatureLookupError

_INT64_MIN = np.iinfo(np.int64).min
_US_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}
_US_PER_DAY = 86_400_000_000
# Integer keys whose range is at most this wide (and at most _LUT_SPARSITY times their count) are coded
# through a lookup table (a gather, 4 bytes per value of the range) instead of a hash lookup.
_LUT_MAX = 1 << 22
_LUT_SPARSITY = 32


# --------------------------------------------------------------------------- key and time arrays


def _kind(t: pa.DataType) -> str:
    """Comparison family of a key type: keys of the same family can be joined."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "floating point"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", bool)(t):
        return "string"
    if (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
            or getattr(pa.types, "is_binary_view", bool)(t)):
        return "binary"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_null(t):
        return "null"
    return str(t)


def _is_time(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) or pa.types.is_date(t)


def _epoch_us_array(a: pa.Array, where: str) -> pa.Array:
    """One array of timestamps/dates as int64 microseconds since the epoch, UTC (nulls kept)."""
    t = a.type
    if pa.types.is_dictionary(t):
        a = a.dictionary_decode()
        t = a.type
    if pa.types.is_timestamp(t):
        if t.unit == "us":
            return a.view(pa.int64())
        if t.unit in _US_PER_UNIT:
            return pc.multiply_checked(a.view(pa.int64()), _US_PER_UNIT[t.unit])
        # nanoseconds: floor to the microsecond (floor, not truncation, also before 1970)
        valid = None if a.null_count == 0 else pc.is_valid(a).to_numpy(zero_copy_only=False)
        ns = a.view(pa.int64()).fill_null(0).to_numpy()
        return pa.array(np.floor_divide(ns, 1000), pa.int64(), mask=None if valid is None else ~valid)
    if pa.types.is_date32(t):
        return pc.multiply_checked(a.view(pa.int32()).cast(pa.int64()), _US_PER_DAY)
    if pa.types.is_date64(t):
        return pc.multiply_checked(a.view(pa.int64()), 1_000)
    if pa.types.is_null(t):
        return pa.nulls(len(a), pa.int64())
    raise FeatureLookupError(f"{where} has type {t}; a point-in-time join needs a timestamp or date column. "
                             "Cast it to a timestamp (for example with pandas.to_datetime) first.")


def _key_array(a: pa.Array) -> pa.Array:
    """A key or tiebreak column as DuckDB should compare it (decoded; timestamps as UTC microseconds)."""
    if pa.types.is_dictionary(a.type):
        a = a.dictionary_decode()
    if _is_time(a.type) and not pa.types.is_date(a.type):
        return _epoch_us_array(a, "key")
    return a


# --------------------------------------------------------------------------- codes


class NoCodes(Exception):
    """The keys cannot be coded (their types); use the general path."""


def canonical_type(t: pa.DataType) -> pa.DataType | None:
    """The type values of ``t`` are coded as (``None``: not codable)."""
    if pa.types.is_integer(t):
        return None if t == pa.uint64() else pa.int64()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.large_string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.large_binary()
    return None


class _Coder:
    """Codes of one key column: the position of a value among the spine's distinct values."""

    def __init__(self, values: pa.Array) -> None:
        typ = canonical_type(values.type)
        if typ is None:
            raise NoCodes(str(values.type))
        self.type = typ
        values = values.cast(typ) if values.type != typ else values
        self.lut: np.ndarray | None = None
        self.index: pd.Index | None = None  # integers without a lookup table: pandas keeps its hash table
        self.lo = self.hi = 0
        if pa.types.is_integer(typ):
            uniq, inv = np.unique(values.to_numpy(), return_inverse=True)
            self.uniq = pa.array(uniq)
            self.index = pd.Index(uniq)
            if len(uniq):
                lo, hi = int(uniq[0]), int(uniq[-1])
                if hi - lo < min(max(_LUT_SPARSITY * len(uniq), 1 << 16), _LUT_MAX):
                    self.lo, self.hi = lo, hi
                    self.lut = np.full(hi - lo + 1, -1, dtype=np.int32)
                    self.lut[uniq - lo] = np.arange(len(uniq), dtype=np.int32)
            self.codes = inv.astype(np.int64, copy=False).reshape(-1)
        else:
            self.uniq = pc.unique(values)
            self.codes = pc.index_in(values, value_set=self.uniq).to_numpy().astype(np.int64)
        self.n = len(self.uniq)
        #: whether mapping builds a hash set on each call (strings, binary): callers pass big batches
        self.hashed = self.lut is None and self.index is None

    def map(self, arr: pa.Array) -> np.ndarray:
        """The code of every value of ``arr`` (``-1`` for a null or a value the spine does not have)."""
        arr = arr.cast(self.type) if arr.type != self.type else arr
        if self.lut is None and self.index is None:  # strings, binary: callers pass big batches
            return pc.index_in(arr, value_set=self.uniq).fill_null(-1).to_numpy().astype(np.int64)
        v = (arr.fill_null(self.lo) if arr.null_count else arr).to_numpy()
        if self.lut is None:
            out = self.index.get_indexer(v).astype(np.int64, copy=False)  # type: ignore[union-attr]
            if arr.null_count:
                out[~pc.is_valid(arr).to_numpy(zero_copy_only=False)] = -1
            return out
        out = np.full(len(v), -1, dtype=np.int64)
        inside = (v >= self.lo) & (v <= self.hi)
        if arr.null_count:
            inside &= pc.is_valid(arr).to_numpy(zero_copy_only=False)
        out[inside] = self.lut[v[inside] - self.lo]
        return out


class KeyCodes:
    """Dense codes of the spine's distinct key tuples (one or several key columns)."""

    def __init__(self, spine_keys: list[pa.Array]) -> None:
        self.coders = [_Coder(a) for a in spine_keys]
        self.combined: np.ndarray | None = None
        self.hashed = any(c.hashed for c in self.coders)
        if len(self.coders) == 1:
            self.spine = self.coders[0].codes
            self.n = self.coders[0].n
            return
        size = 1
        for c in self.coders:
            size *= max(c.n, 1)
        if size >= 2**62:
            raise NoCodes("too many key combinations")
        self.combined, inv = np.unique(self._combine([c.codes for c in self.coders]), return_inverse=True)
        self.spine = inv.astype(np.int64, copy=False).reshape(-1)
        self.n = len(self.combined)

    def _combine(self, codes: list[np.ndarray]) -> np.ndarray:
        out = np.zeros(len(codes[0]), dtype=np.int64)
        for c, coder in zip(codes, self.coders, strict=True):
            out *= max(coder.n, 1)
            out += c
        return out

    def source(self, arrays: list[pa.Array]) -> np.ndarray:
        """The code of every source row's key tuple (``-1``: no spine row has it)."""
        codes = [c.map(a) for c, a in zip(self.coders, arrays, strict=True)]
        if self.combined is None:
            return codes[0]
        missing = np.zeros(len(codes[0]), dtype=bool)
        for c in codes:
            missing |= c < 0
        comb = self._combine([np.maximum(c, 0) for c in codes])
        pos = np.minimum(np.searchsorted(self.combined, comb), max(self.n - 1, 0))
        found = ~missing & (self.combined[pos] == comb) if self.n else np.zeros(len(comb), dtype=bool)
        return np.where(found, pos, -1)


def partitions(lrel: pa.Table, codes: KeyCodes, n_parts: int,
               batches: Callable[[], Iterator[tuple[list[pa.Array], Any, Any]]], *, passes: int,
               lookback_us: int | None, row_type: Any, on_scanned: Callable[[int], None]
               ) -> Iterator[tuple[pa.Table, pa.Table | None]]:
    """Pairs (spine rows, source rows) of each key partition.

    ``lrel`` holds the spine rows that can match (``rn``, key columns, ``t`` for a time series), in the
    order of ``codes.spine``. ``batches()`` reads the source once: per batch, its key arrays (as
    :func:`_key_array` gives them), its UTC microsecond times (``None`` for a
    snapshot) and its tiebreak array (or ``None``). The source is read ``passes`` times, each read
    keeping the rows of the next ``n_parts / passes`` partitions only, so that at most that share of
    the narrow copy is held at once. The spine part has columns ``rn, k0[, t]``; the source part
    ``k0[, ts][, tb], row`` (``None`` when no source row falls in the partition). ``on_scanned``
    receives the number of source rows of each read.
    """
    spine_code = codes.spine
    n = codes.n
    n_parts = max(1, min(n_parts, n, 65_535))
    passes = max(1, min(passes, n_parts))
    counts = np.bincount(spine_code, minlength=n)
    before = np.cumsum(counts) - counts
    part_of = (before * n_parts // max(len(spine_code), 1)).astype(np.uint16)
    maxt = mint = None
    if "t" in lrel.column_names:
        t = lrel.column("t").combine_chunks().to_numpy()
        maxt = np.full(n, _INT64_MIN, dtype=np.int64)
        np.maximum.at(maxt, spine_code, t)
        if lookback_us is not None:
            mint = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(mint, spine_code, t)
            mint -= lookback_us  # lookback_us <= 2**62 and times are microseconds: no overflow
        del t
    lrel = lrel.set_column(lrel.column_names.index("k0"), "k0", pa.array(spine_code.astype(np.int32)))
    lrel = lrel.drop_columns([c for c in lrel.column_names if c.startswith("k") and c != "k0"])
    sp = part_of[spine_code]
    order = np.argsort(sp, kind="stable")  # 16-bit partition numbers: a radix sort
    spine_bounds = np.searchsorted(sp[order], np.arange(n_parts + 1))
    lrel = lrel.take(pa.array(order))
    del sp, order
    schema: pa.Schema | None = None
    for p_index in range(passes):
        first, stop = p_index * n_parts // passes, (p_index + 1) * n_parts // passes
        parts: dict[int, list[pa.RecordBatch]] = {j: [] for j in range(first, stop)}
        offset = 0
        for keys, ts, tb in batches():
            size = len(keys[0])
            code = codes.source(keys)
            keep = code >= 0
            tsv = None
            if ts is not None:
                if ts.null_count:
                    keep &= pc.is_valid(ts).to_numpy(zero_copy_only=False)
                    ts = ts.fill_null(0)
                tsv = ts.to_numpy()
                cc = np.where(keep, code, 0)
                keep &= tsv <= maxt[cc]  # type: ignore[index]
                if mint is not None:
                    keep &= tsv >= mint[cc]
                del cc
            pos = np.flatnonzero(keep)
            p = part_of[code[pos]]
            if passes > 1:
                mine = (p >= first) & (p < stop)
                pos, p = pos[mine], p[mine]
            cols: dict[str, Any] = {"k0": pa.array(code[pos].astype(np.int32))}
            if tsv is not None:
                cols["ts"] = pa.array(tsv[pos])
            if tb is not None:
                cols["tb"] = tb.take(pa.array(pos))
            cols["row"] = pa.array((pos + offset).astype(row_type))
            rb = pa.RecordBatch.from_pydict(cols)
            schema = schema or rb.schema
            if rb.schema != schema:  # a null or differently typed tiebreak chunk: align it with the first
                rb = rb.cast(schema)
            offset += size
            if not len(pos):
                continue
            if stop - first == 1:
                parts[first].append(rb)
                continue
            order = np.argsort(p, kind="stable")
            bounds = np.searchsorted(p[order], np.arange(first, stop + 1))
            for j in np.flatnonzero(bounds[1:] > bounds[:-1]).tolist():  # own buffers: a matched partition frees its rows
                parts[first + j].append(rb.take(pa.array(order[bounds[j]:bounds[j + 1]])))
        on_scanned(offset)
        for j in range(first, stop):
            if spine_bounds[j + 1] == spine_bounds[j]:
                continue
            src_part = pa.Table.from_batches(parts[j], schema=schema) if parts[j] else None
            parts[j] = []
            yield lrel.slice(spine_bounds[j], spine_bounds[j + 1] - spine_bounds[j]), src_part
            del src_part
