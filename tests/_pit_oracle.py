"""The point-in-time oracle and the hypothesis strategies of its property tests, shared by the DuckDB
kernel's tests (``offline/test_pit.py``) and the engine contract tests (``offline/test_engine.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
from hypothesis import strategies as st

from larder.offline.pit import PitSource

T0 = datetime(2024, 3, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


# --------------------------------------------------------------------------- oracle


def _us(v: datetime | None) -> int | None:
    """Microseconds since the epoch; naive datetimes count as UTC."""
    if v is None:
        return None
    if v.tzinfo is None:
        v = v.replace(tzinfo=UTC)
    return (v - datetime(1970, 1, 1, tzinfo=UTC)) // US


def oracle(spine: list[dict], sources: list[tuple[list[dict], PitSource]]) -> list[dict]:
    """The semantics, spelled out row by row with no cleverness."""
    out = []
    for srow in spine:
        row = dict(srow)
        for rows, src in sources:
            key = tuple(srow[c] for c in src.lookup_keys)
            best, best_rank = None, None
            if None not in key:
                t = _us(srow[src.timestamp_lookup_key]) if src.timestamp_key else None
                for pos, frow in enumerate(rows):
                    if tuple(frow[c] for c in src.keys) != key:
                        continue
                    rank: tuple = ()
                    if src.timestamp_key:
                        ts = _us(frow[src.timestamp_key])
                        if t is None or ts is None or ts > t:
                            continue
                        if src.lookback_window is not None and ts < t - src.lookback_window // US:
                            continue
                        rank = (ts,)
                    tb = frow[src.tiebreak] if src.tiebreak else None
                    rank += (tb is not None, tb if tb is not None else 0, pos)
                    if best_rank is None or rank > best_rank:
                        best, best_rank = frow, rank
            for f, name in zip(src.features, src.output_names, strict=True):
                row[name] = None if best is None else best[f]
        out.append(row)
    return out


UNITS = ["s", "ms", "us", "ns"]


def _ts_array(times: list[tuple[int, int] | None], unit: str, tz: str | None) -> pa.Array:
    """(seconds, microseconds) offsets from T0 as timestamps; coarser units drop what they cannot hold."""
    base = _us(T0)
    us = pa.array([None if v is None else base + v[0] * 1_000_000 + v[1] for v in times], pa.int64())
    return us.cast(pa.timestamp("us", tz=tz)).cast(pa.timestamp(unit, tz=tz), safe=False)


# Small domains so that keys, timestamps and tiebreaks collide often; a time is whole seconds or 1 µs after.
key0 = st.sampled_from([None, 0, 1, 2])
key1 = st.sampled_from([None, "a", "b", "a"])
secs = st.one_of(st.none(), st.tuples(st.integers(0, 5), st.sampled_from([0, 0, 0, 1])))


def sized_lists(elements: st.SearchStrategy, max_size: int) -> st.SearchStrategy:
    """Lists whose length is uniform in 0..max_size (hypothesis otherwise favours very short lists)."""
    return st.integers(0, max_size).flatmap(lambda n: st.lists(elements, min_size=n, max_size=n))


@st.composite
def source_case(draw: st.DrawFn, index: int) -> dict:
    return {
        "composite": draw(st.booleans()),
        "time_series": draw(st.booleans()),
        "tiebreak": draw(st.booleans()),
        "lookback": draw(st.one_of(st.none(), st.builds(timedelta, seconds=st.integers(0, 4),
                                                        microseconds=st.sampled_from([0, 0, 1])))),
        "unit": draw(st.sampled_from(UNITS)),
        "tz": draw(st.sampled_from([None, "UTC", "Asia/Tokyo"])),
        "form": draw(st.sampled_from(["table", "dataset", "batches", "parquet"])),
        "key_type": draw(st.sampled_from([pa.int64(), pa.int32()])),
        "rows": draw(sized_lists(st.tuples(key0, key1, secs, st.sampled_from([None, 0, 1, 2]),
                                           st.one_of(st.none(), st.floats(-5, 5, allow_nan=False))), 30)),
        "index": index,
    }
