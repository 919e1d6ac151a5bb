"""Fast paths of write_table give exactly what the general paths give."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larder.errors import PrimaryKeyError, TableError
from larder.offline.engine import DuckDBEngine
from larder.offline.frames import _has_duplicate_keys, _has_duplicate_keys_general, to_arrow
from larder.quality import configure_profiling, profile
from larder.quality.store import get_profile, list_profiles

# Small value ranges so that duplicates are common; each key type the fast path handles, and some
# it must leave to the group-by (strings, floats, booleans).
KEY_TYPES = {
    "int64": (pa.int64(), st.integers(-3, 3)),
    "uint8": (pa.uint8(), st.integers(0, 3)),
    "ts": (pa.timestamp("us", tz="UTC"),
           st.integers(0, 3).map(lambda i: dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=i))),
    "ts_ns": (pa.timestamp("ns"), st.integers(0, 3).map(lambda i: pd.Timestamp(2024, 1, 1) + pd.Timedelta(i, "ns"))),
    "date": (pa.date32(), st.integers(0, 3).map(lambda i: dt.date(2024, 1, 1) + dt.timedelta(days=i))),
    "str": (pa.string(), st.sampled_from(["a", "b", "c"])),
    "float": (pa.float64(), st.sampled_from([0.0, -0.0, 1.5, 2.0])),
    "bool": (pa.bool_(), st.booleans()),
}


@st.composite
def keyed_tables(draw: st.DrawFn) -> tuple[pa.Table, list[str]]:
    kinds = draw(st.lists(st.sampled_from(sorted(KEY_TYPES)), min_size=1, max_size=3))
    n = draw(st.integers(1, 12))
    chunks = draw(st.integers(1, 3))
    cols = {}
    for i, kind in enumerate(kinds):
        typ, values = KEY_TYPES[kind]
        vals = draw(st.lists(values, min_size=n, max_size=n))
        cut = n // chunks
        pieces = [vals[j:j + cut] for j in range(0, n, cut or 1)] if chunks > 1 else [vals]
        cols[f"k{i}"] = pa.chunked_array([pa.array(p, typ) for p in pieces if p], typ)
    return pa.table(cols), list(cols)


@settings(max_examples=300, deadline=None)
@given(keyed_tables())
def test_fast_duplicate_check_agrees_with_group_by(case):
    table, keys = case
    assert _has_duplicate_keys(table, keys) == _has_duplicate_keys_general(table, keys)


def test_duplicates_on_composite_time_series_key_rejected(fe):
    ts = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-01"], utc=True)
    fe.create_table("ev", primary_keys="u", timestamp_keys="ts",
                    df=pd.DataFrame({"u": [1, 1, 2], "ts": ts, "x": [1.0, 2.0, 3.0]}))
    version = fe.get_table("ev").version
    # u repeats and ts repeats, so neither column is unique alone; the pair (2, 2024-01-01) repeats
    bad = pd.DataFrame({"u": [2, 1, 2], "ts": ts[[0, 1, 0]], "x": [4.0, 5.0, 6.0]})
    with pytest.raises(PrimaryKeyError, match="more than once"):
        fe.write_table("ev", bad)
    assert fe.get_table("ev").version == version
    # the same columns without a repeated pair are accepted (both rows update existing ones)
    fe.write_table("ev", bad.iloc[:2])
    got = fe.read_table("ev").sort_values(["u", "ts"])
    assert got["x"].tolist() == [1.0, 5.0, 4.0]


def test_write_timings_cover_every_phase(fe):
    fe.create_table("t", primary_keys="k", df=pd.DataFrame({"k": [1, 2], "x": [1.0, 2.0]}))
    timings: dict[str, float] = {}
    version = fe._tables.write_table("t", pd.DataFrame({"k": [2, 3], "x": [5.0, 6.0]}), timings=timings)
    assert version == 1
    assert set(timings) == {"catalog_read", "to_arrow", "open_delta", "validate", "quality_check", "commit",
                            "catalog_update", "profile"}
    assert all(v >= 0 for v in timings.values())
    assert fe.read_table("t").sort_values("k")["x"].tolist() == [1.0, 5.0, 6.0]


def test_profile_computed_during_commit_equals_direct_profile(fe):
    rng = np.random.default_rng(3)
    fe.create_table("p", primary_keys="k", df=pd.DataFrame({"k": np.arange(10), "x": rng.normal(size=10),
                                                             "c": ["a"] * 10}))
    configure_profiling(fe._ctx.catalog, "main.default.p", sample_rows=60)
    df = pd.DataFrame({"k": np.arange(5, 205), "x": rng.normal(size=200), "c": rng.choice(["a", "b"], 200)})
    version = fe.write_table("p", df)
    stored = get_profile(fe._ctx.catalog, "main.default.p", version)
    direct = profile(to_arrow(df), sample_rows=60)
    assert stored is not None and stored.sampled and stored.profiled_rows == 60
    assert stored.model_dump(exclude={"created_at"}) == direct.model_dump(exclude={"created_at"})


class _FailingEngine(DuckDBEngine):
    """The default engine, except that its commit fails (as a crash or a storage error would)."""

    def merge(self, *args, **kwargs) -> int:
        raise TableError("injected merge failure")


def test_failed_commit_stores_no_profile_and_no_version(fe):
    fe.create_table("p", primary_keys="k", df=pd.DataFrame({"k": [1, 2], "x": [1.0, 2.0]}))
    before = list_profiles(fe._ctx.catalog, "main.default.p")
    fe._ctx.__dict__["engine"] = _FailingEngine()
    with pytest.raises(TableError, match="injected"):
        fe.write_table("p", pd.DataFrame({"k": [3], "x": [3.0]}))
    assert fe.get_table("p").version == 0
    assert list_profiles(fe._ctx.catalog, "main.default.p") == before
