"""point_in_time_join: a property test against a brute-force oracle, then the edge cases one by one."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, date, datetime, timedelta
from unittest import mock

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _pit_oracle
from _pit_oracle import UNITS, _ts_array, key0, key1, oracle, secs, sized_lists, source_case
from larder.errors import FeatureLookupError, LarderError, LeakageError, OutputCollisionError
from larder.offline import pit, pit_gather
from larder.offline.pit import PitSource, point_in_time_join

T0 = _pit_oracle.T0
US = _pit_oracle.US


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spine_rows=sized_lists(st.tuples(key0, key1, secs, st.integers(0, 1)), 30),
    spine_unit=st.sampled_from(UNITS),
    spine_tz=st.sampled_from([None, "UTC"]),
    cases=st.integers(1, 3).flatmap(lambda n: st.tuples(*[source_case(i) for i in range(n)])),
    batch_rows=st.one_of(st.none(), st.integers(1, 12)),
    chunk_source_rows=st.sampled_from([1_000_000, 4, 11]),
    shared_con=st.booleans(),
    own_database=st.booleans(),
    partitioned=st.booleans(),
    pass_source_rows=st.sampled_from([4_000_000, 5]),
    code_batch_rows=st.sampled_from([1 << 20, 3]),
    read_batch_rows=st.sampled_from([1 << 16, 2]),
    stream_tables=st.booleans(),
)
def test_matches_oracle(spine_rows, spine_unit, spine_tz, cases, batch_rows, chunk_source_rows, shared_con,
                        own_database, partitioned, pass_source_rows, code_batch_rows, read_batch_rows, stream_tables):
    spine = pa.table({
        "id": pa.array([r[0] for r in spine_rows], pa.int64()),
        "name": pa.array([r[1] for r in spine_rows], pa.string()),
        "at": _ts_array([r[2] for r in spine_rows], spine_unit, spine_tz),
        "label": pa.array([r[3] for r in spine_rows], pa.int64()),
    })
    sources, oracle_sources, folders = [], [], []
    for c in cases:
        i = c["index"]
        data = pa.table({
            "eid": pa.array([r[0] for r in c["rows"]], c["key_type"]),
            "ename": pa.array([r[1] for r in c["rows"]], pa.string()),
            "ts": _ts_array([r[2] for r in c["rows"]], c["unit"], c["tz"]),
            "written": pa.array([r[3] for r in c["rows"]], pa.int64()),
            "value": pa.array([r[4] for r in c["rows"]], pa.float64()),
        })
        if c["form"] == "batches" and data.num_rows > 2:  # several chunks: positions span batches
            data = pa.Table.from_batches(data.to_batches(max_chunksize=3))
        elif c["form"] == "dataset":
            data = pads.dataset(pa.Table.from_batches(data.to_batches(max_chunksize=4), schema=data.schema))
        elif c["form"] == "parquet":  # local parquet files, read file by file (two files, row groups of 3)
            folder = tempfile.mkdtemp(prefix="larder-pit-")
            folders.append(folder)
            files = [os.path.join(folder, f"part-{j}.parquet") for j in range(2)]
            half = data.num_rows // 2
            pq.write_table(data.slice(0, half), files[0], row_group_size=3)
            pq.write_table(data.slice(half), files[1], row_group_size=3)
            data = pads.dataset(files, schema=data.schema, format="parquet")
        src = PitSource(
            data=data,
            keys=["eid", "ename"] if c["composite"] else ["eid"],
            lookup_keys=["id", "name"] if c["composite"] else ["id"],
            features=["value", "ts"],
            output_names=[f"value_{i}", f"ts_{i}"],
            timestamp_key="ts" if c["time_series"] else None,
            timestamp_lookup_key="at" if c["time_series"] else None,
            lookback_window=c["lookback"] if c["time_series"] else None,
            tiebreak="written" if c["tiebreak"] else None,
        )
        sources.append(src)
        oracle_sources.append((data.to_table().to_pylist() if isinstance(data, pads.Dataset) else
                               pa.table(data).to_pylist(), src))
    con = duckdb.connect() if shared_con else None
    # small automatic chunks (batch_rows=None) exercise the key-range split on small data; partitioned=False
    # sends every source down the general path, and small passes / code groups split the partitioned one
    try:
        with mock.patch.object(pit, "_CHUNK_SOURCE_ROWS", chunk_source_rows), \
                mock.patch.object(pit, "_OWN_DATABASE_ROWS", 0 if own_database else 2_000_000), \
                mock.patch.object(pit, "_PARTITION_BY_CODES", partitioned), \
                mock.patch.object(pit, "_PASS_SOURCE_ROWS", pass_source_rows), \
                mock.patch.object(pit, "_CODE_BATCH_ROWS", code_batch_rows), \
                mock.patch.object(pit_gather, "_BATCH_ROWS", read_batch_rows), \
                mock.patch.object(pit, "_STREAM_TABLES", stream_tables):
            got = point_in_time_join(spine, sources, batch_rows=batch_rows, con=con)
    finally:
        if con is not None:
            con.close()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    assert got.num_rows == spine.num_rows
    assert got.column_names[:4] == spine.column_names
    for name in spine.column_names:
        assert got.column(name).equals(spine.column(name))
    for i, src in enumerate(sources):
        assert got.schema.field(f"ts_{i}").type == src.data.schema.field("ts").type
    assert got.to_pylist() == oracle(spine.to_pylist(), oracle_sources)


# --------------------------------------------------------------------------- explicit cases


def at(days: float = 0, seconds: float = 0, micros: int = 0) -> datetime:
    return T0 + timedelta(days=days, seconds=seconds, microseconds=micros)


def ts_source(rows: list[tuple], **kw) -> PitSource:
    """Feature rows (entity, event time, value[, created]) as a time-series source."""
    cols = {"entity": [r[0] for r in rows], "event_ts": [r[1] for r in rows], "f": [r[2] for r in rows]}
    if rows and len(rows[0]) > 3:
        cols["created"] = [r[3] for r in rows]
    data = pa.table(cols, schema=pa.schema([("entity", pa.int64()), ("event_ts", pa.timestamp("us", "UTC")),
                                            ("f", pa.float64()),
                                            *([("created", pa.timestamp("us", "UTC"))] if "created" in cols else [])]))
    kw.setdefault("timestamp_key", "event_ts")
    kw.setdefault("timestamp_lookup_key", "ts")
    return PitSource(data, keys=["entity"], lookup_keys=["entity"], features=["f"], output_names=["f"], **kw)


def spine_of(rows: list[tuple], unit: str = "us", tz: str | None = "UTC") -> pa.Table:
    return pa.table({"entity": pa.array([r[0] for r in rows], pa.int64()),
                     "ts": pa.array([r[1] for r in rows], pa.timestamp(unit, tz))})


def join_f(spine: pa.Table, src: PitSource, **kw) -> list:
    return point_in_time_join(spine, [src], **kw).column("f").to_pylist()


def test_row_at_t_included_and_microsecond_precision():
    src = ts_source([(1, at(seconds=-3600), 801.0), (1, at(micros=1), 802.0), (2, at(), 5.0)])
    spine = spine_of([(1, at()), (1, at(micros=1)), (2, at()), (2, at(micros=-1))])
    assert join_f(spine, src) == [801.0, 802.0, 5.0, None]


def test_label_before_first_row_kept_with_nulls_and_unknown_entities():
    src = ts_source([(2, at(), 201.0), (2, at(days=1), 202.0)])
    spine = spine_of([(2, at(days=-1)), (2, at(seconds=-1)), (2, at(days=2)), (6, at())])
    out = point_in_time_join(spine, [src])
    assert out.num_rows == 4
    assert out.column("f").to_pylist() == [None, None, 202.0, None]


def test_lookback_boundary_included():
    src = ts_source([(5, at(days=-10), 500.0), (5, at(), 501.0)], lookback_window=timedelta(days=1))
    spine = spine_of([(5, at(days=1, seconds=-1)), (5, at(days=1)), (5, at(days=1, seconds=1)), (5, at(days=5))])
    assert join_f(spine, src) == [501.0, 501.0, None, None]
    just_out = spine_of([(5, at(days=1, micros=1)), (5, at(days=-9)), (5, at(days=-9, micros=1))])
    assert join_f(just_out, src) == [None, 500.0, None]
    unbounded = ts_source([(5, at(days=-10), 500.0), (5, at(), 501.0)])
    assert join_f(spine, unbounded) == [501.0] * 4


def test_lookback_zero_is_exact_match():
    src = ts_source([(1, at(), 1.0), (1, at(seconds=10), 2.0)], lookback_window=timedelta(0))
    spine = spine_of([(1, at()), (1, at(seconds=5)), (1, at(seconds=10)), (1, at(micros=1))])
    assert join_f(spine, src) == [1.0, None, 2.0, None]


def test_duplicate_spine_rows_all_kept_in_order():
    src = ts_source([(7, at(), 701.0)])
    spine = pa.table({"entity": [7, 3, 7, 7], "ts": pa.array([at(seconds=3600)] * 4, pa.timestamp("us", "UTC")),
                      "label": [0, 9, 1, 0]})
    out = point_in_time_join(spine, [src])
    assert out.column("label").to_pylist() == [0, 9, 1, 0]
    assert out.column("f").to_pylist() == [701.0, None, 701.0, 701.0]


@pytest.mark.parametrize("later_first", [True, False])
def test_ties_greatest_tiebreak_wins_whatever_the_order(later_first):
    rows = [(3, at(), 301.0, at(seconds=3600)), (3, at(), 302.0, at(seconds=7200))]
    if later_first:
        rows.reverse()
    rows.append((3, at(days=-1), 300.0, at(days=-1)))
    src = ts_source(rows, tiebreak="created")
    spine = spine_of([(3, at(days=1)), (3, at(seconds=5400)), (3, at()), (3, at(seconds=-1))])
    assert join_f(spine, src) == [302.0, 302.0, 302.0, 300.0]


def test_ties_without_tiebreak_last_row_wins_and_null_tiebreak_loses():
    rows = [(1, at(), 1.0), (1, at(), 2.0), (1, at(), 3.0)]
    assert join_f(spine_of([(1, at())]), ts_source(rows)) == [3.0]
    with_null = [(1, at(), 1.0, at()), (1, at(), 2.0, None), (1, at(), 3.0, at(seconds=-5))]
    assert join_f(spine_of([(1, at())]), ts_source(with_null, tiebreak="created")) == [1.0]


def test_assume_unique_on_unique_data_gives_the_same_result():
    rng = np.random.default_rng(3)
    n = 2_000
    data = pa.table({"entity": rng.integers(0, 50, n), "event_ts": pa.array(
        np.arange(n) * 1_000_000 + 1_700_000_000_000_000, pa.timestamp("us", "UTC")), "f": rng.standard_normal(n)})
    spine = pa.table({"entity": rng.integers(0, 60, 500), "ts": pa.array(
        rng.integers(1_700_000_000_000_000, 1_700_000_000_000_000 + n * 1_000_000, 500), pa.timestamp("us", "UTC"))})
    base = dict(keys=["entity"], lookup_keys=["entity"], features=["f"], output_names=["f"],
                timestamp_key="event_ts", timestamp_lookup_key="ts")
    a = point_in_time_join(spine, [PitSource(data, **base)])
    b = point_in_time_join(spine, [PitSource(data, assume_unique=True, **base)], batch_rows=64)
    assert a.equals(b)
    assert a.column("f").null_count < 500


def test_snapshot_source_exact_key_latest_write_never_multiplies():
    users = pa.table({"uid": ["a", "b", "a", "c", None], "v": [1, 2, 3, 4, 5], "w": [0, 0, 0, 1, 9]})
    spine = pa.table({"uid": ["a", "b", "x", None, "a", "c"]})
    plain = PitSource(users, ["uid"], ["uid"], ["v"], ["v"])
    assert point_in_time_join(spine, [plain]).column("v").to_pylist() == [3, 2, None, None, 3, 4]
    by_w = PitSource(pa.table({"uid": ["a", "a", "a"], "v": [1, 2, 3], "w": [5, 7, 6]}), ["uid"], ["uid"], ["v"], ["v"],
                     tiebreak="w")
    assert point_in_time_join(spine, [by_w]).column("v").to_pylist() == [2, None, None, None, 2, None]
    # a snapshot ignores the spine's time column
    ignore = PitSource(users, ["uid"], ["uid"], ["v"], ["v"], timestamp_lookup_key="whatever")
    assert point_in_time_join(spine, [ignore]).num_rows == 6


def test_null_keys_and_null_times_never_match():
    src = ts_source([(None, at(), 1.0), (1, None, 2.0), (1, at(), 3.0)])
    spine = spine_of([(None, at()), (1, None), (1, at())])
    assert join_f(spine, src) == [None, None, 3.0]


def test_several_sources_and_renames():
    a = ts_source([(1, at(), 10.0)])
    b = PitSource(pa.table({"entity": [1, 2], "g": ["x", "y"]}), ["entity"], ["entity"], ["g"], ["g_renamed"])
    spine = spine_of([(1, at()), (2, at())])
    out = point_in_time_join(spine, [a, b])
    assert out.column_names == ["entity", "ts", "f", "g_renamed"]
    assert out.to_pylist() == [{"entity": 1, "ts": at(), "f": 10.0, "g_renamed": "x"},
                               {"entity": 2, "ts": at(), "f": None, "g_renamed": "y"}]


def test_empty_spine_and_empty_source_keep_types():
    src = ts_source([(1, at(), 1.0)])
    out = point_in_time_join(spine_of([]), [src])
    assert out.num_rows == 0 and out.schema.field("f").type == pa.float64()
    empty = ts_source([])
    assert join_f(spine_of([(1, at())]), empty) == [None]
    ds_empty = PitSource(pads.dataset(empty.data), **{k: getattr(empty, k) for k in (
        "keys", "lookup_keys", "features", "output_names", "timestamp_key", "timestamp_lookup_key")})
    assert join_f(spine_of([(1, at())]), ds_empty) == [None]


def test_spine_passes_through_unchanged():
    spine = pa.table({"entity": pa.array([2, 1], pa.int32()), "ts": pa.array([at(), at()], pa.timestamp("ns")),
                      "tags": pa.array(["x", "y"]).dictionary_encode()}).replace_schema_metadata({"origin": "test"})
    out = point_in_time_join(spine, [ts_source([(1, at(), 1.0)])])
    assert out.schema.metadata == {b"origin": b"test"}
    for name in spine.column_names:
        assert out.column(name).equals(spine.column(name)) and out.schema.field(name) == spine.schema.field(name)
    assert out.column("f").to_pylist() == [None, 1.0]


def test_feature_types_preserved():
    data = pa.table({"entity": [1], "event_ts": pa.array([at()], pa.timestamp("us", "UTC")),
                     "s": pa.array(["hello"], pa.large_string()), "d": pa.array([date(2024, 1, 2)]),
                     "when": pa.array([at()], pa.timestamp("ms", "Europe/Paris")), "xs": [[1, 2]],
                     "cat": pa.array(["a"]).dictionary_encode()})
    feats = ["s", "d", "when", "xs", "cat"]
    src = PitSource(data, ["entity"], ["entity"], feats, feats, "event_ts", "ts")
    out = point_in_time_join(spine_of([(1, at()), (2, at())]), [src])
    for c in feats:
        assert out.schema.field(c).type == data.schema.field(c).type
    assert out.slice(0, 1).select(feats).to_pylist() == data.select(feats).to_pylist()
    assert out.column("xs").to_pylist()[1] is None


# --------------------------------------------------------------------------- time zones and units


def test_naive_is_utc_and_other_zones_compare_as_instants():
    src = ts_source([(1, at(), 1.0), (1, at(seconds=3600), 2.0)])
    naive = spine_of([(1, at().replace(tzinfo=None) + timedelta(seconds=1800))], tz=None)
    assert join_f(naive, src) == [1.0]
    tokyo = spine_of([(1, at(seconds=3600))], tz="Asia/Tokyo")  # same instant, displayed in Tokyo
    assert join_f(tokyo, src) == [2.0]
    naive_data = PitSource(src.data.cast(pa.schema([("entity", pa.int64()), ("event_ts", pa.timestamp("us")),
                                                    ("f", pa.float64())])),
                           **{k: getattr(src, k) for k in ("keys", "lookup_keys", "features", "output_names",
                                                             "timestamp_key", "timestamp_lookup_key")})
    assert join_f(spine_of([(1, at(seconds=3599))]), naive_data) == [1.0]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_units_mixed(unit):
    src = ts_source([(1, at(), 1.0), (1, at(seconds=2), 2.0)])
    spine = spine_of([(1, at(seconds=1)), (1, at(seconds=2)), (1, at(seconds=-1))], unit=unit)
    assert join_f(spine, src) == [1.0, 2.0, None]
    data_in_unit = src.data.set_column(1, "event_ts", src.data.column("event_ts").cast(pa.timestamp(unit, "UTC")))
    src2 = PitSource(data_in_unit, **{k: getattr(src, k) for k in (
        "keys", "lookup_keys", "features", "output_names", "timestamp_key", "timestamp_lookup_key")})
    assert join_f(spine, src2) == [1.0, 2.0, None]


def test_nanoseconds_floor_to_the_microsecond():
    base = pd.Timestamp(at())
    src = ts_source([(1, at(), 1.0), (1, at(micros=1), 2.0)])
    spine = pa.table({"entity": [1, 1, 1], "ts": pa.array(
        [base + pd.Timedelta(nanoseconds=999), base + pd.Timedelta(nanoseconds=1000),
         base - pd.Timedelta(nanoseconds=1)], pa.timestamp("ns", "UTC"))})
    assert join_f(spine, src) == [1.0, 2.0, None]
    old = pa.table({"entity": [1], "event_ts": pa.array([-1500], pa.timestamp("ns", "UTC")), "f": [9.0]})
    src_old = PitSource(old, ["entity"], ["entity"], ["f"], ["f"], "event_ts", "ts")
    # -1.5 µs floors to -2 µs, so it is visible at -2 µs (truncation would give -1 µs)
    sp = pa.table({"entity": [1, 1], "ts": pa.array([-2, -3], pa.timestamp("us", "UTC"))})
    assert join_f(sp, src_old) == [9.0, None]


def test_date_spine_is_midnight_utc():
    src = ts_source([(1, datetime(2024, 3, 1, tzinfo=UTC), 1.0), (1, datetime(2024, 3, 1, 0, 0, 1, tzinfo=UTC), 2.0)])
    spine = pa.table({"entity": [1, 1], "ts": pa.array([date(2024, 3, 1), date(2024, 3, 2)], pa.date32())})
    assert join_f(spine, src) == [1.0, 2.0]


# --------------------------------------------------------------------------- keys


def test_int32_spine_key_matches_int64_data_and_uint():
    src = ts_source([(1, at(), 1.0)])
    for typ in (pa.int32(), pa.uint16(), pa.int8()):
        spine = pa.table({"entity": pa.array([1], typ), "ts": pa.array([at()], pa.timestamp("us", "UTC"))})
        assert join_f(spine, src) == [1.0]


def test_dictionary_and_large_string_keys():
    data = pa.table({"k": pa.array(["a", "b"], pa.large_string()), "v": [1, 2]})
    spine = pa.table({"k": pa.array(["b", "a", "z"]).dictionary_encode()})
    out = point_in_time_join(spine, [PitSource(data, ["k"], ["k"], ["v"], ["v"])])
    assert out.column("v").to_pylist() == [2, 1, None]


def test_key_type_mismatch_names_both_columns():
    src = ts_source([(1, at(), 1.0)])
    spine = pa.table({"entity": ["1"], "ts": pa.array([at()], pa.timestamp("us", "UTC"))})
    with pytest.raises(FeatureLookupError, match=r"'entity'.*int64.*'entity'.*string"):
        point_in_time_join(spine, [src])


def test_timestamp_keys_compare_as_instants():
    data = pa.table({"day": pa.array([at()], pa.timestamp("us", "UTC")), "v": [1]})
    spine = pa.table({"d": pa.array([at().replace(tzinfo=None)], pa.timestamp("ns"))})
    out = point_in_time_join(spine, [PitSource(data, ["day"], ["d"], ["v"], ["v"])])
    assert out.column("v").to_pylist() == [1]


# --------------------------------------------------------------------------- inputs


def test_other_data_forms():
    rows = [(1, at(), 1.0), (2, at(), 2.0)]
    src = ts_source(rows)
    spine = spine_of([(2, at()), (1, at())])
    names = ("keys", "lookup_keys", "features", "output_names", "timestamp_key", "timestamp_lookup_key")

    def with_data(d):
        return PitSource(d, **{k: getattr(src, k) for k in names})

    con = duckdb.connect()
    con.register("t", src.data)
    for d in (src.data.to_pandas(), pa.RecordBatchReader.from_batches(src.data.schema, src.data.to_batches()),
              src.data.to_batches()[0], con.sql("SELECT * FROM t")):
        assert join_f(spine, with_data(d)) == [2.0, 1.0]
    con.close()


def test_parquet_dataset_with_several_files(tmp_path):
    rng = np.random.default_rng(7)
    n = 3_000
    data = pa.table({"entity": rng.integers(0, 40, n), "event_ts": pa.array(
        rng.integers(0, 10_000, n) * 1_000_000, pa.timestamp("us", "UTC")), "f": rng.standard_normal(n)})
    pads.write_dataset(data, tmp_path / "ds", format="parquet", max_rows_per_file=700, max_rows_per_group=200)
    files = sorted(str(p) for p in (tmp_path / "ds").glob("*.parquet"))
    dataset = pads.dataset(files)
    spine = pa.table({"entity": rng.integers(0, 45, 400), "ts": pa.array(
        rng.integers(0, 10_000, 400) * 1_000_000, pa.timestamp("us", "UTC"))})
    names = dict(keys=["entity"], lookup_keys=["entity"], features=["f"], output_names=["f"],
                 timestamp_key="event_ts", timestamp_lookup_key="ts")
    from_ds = point_in_time_join(spine, [PitSource(dataset, **names)], batch_rows=100)
    from_tbl = point_in_time_join(spine, [PitSource(dataset.to_table(), **names)])
    assert from_ds.equals(from_tbl)


# --------------------------------------------------------------------------- errors


def test_errors_are_larder_errors():
    src = ts_source([(1, at(), 1.0)])
    spine = spine_of([(1, at())])
    names = ("keys", "lookup_keys", "features", "output_names", "timestamp_key", "timestamp_lookup_key")
    kw = {k: getattr(src, k) for k in names}

    def bad(**change):
        return PitSource(src.data, **{**kw, **change})

    cases = [
        (bad(timestamp_lookup_key=None), LeakageError, "timestamp_lookup_key"),
        (bad(features=["nope"], output_names=["nope"]), FeatureLookupError, "nope"),
        (bad(lookup_keys=["missing"]), FeatureLookupError, "missing"),
        (bad(keys=["entity", "f"]), FeatureLookupError, "differ in length"),
        (bad(output_names=["a", "b"]), FeatureLookupError, "output_names"),
        (bad(output_names=["ts"]), OutputCollisionError, "'ts'"),
        (bad(lookback_window=timedelta(seconds=-1)), FeatureLookupError, "negative"),
        (bad(timestamp_key=None, timestamp_lookup_key=None, lookback_window=timedelta(1)), FeatureLookupError,
         "lookback_window"),
        (bad(timestamp_key="f"), FeatureLookupError, "'f' has type double"),
        (bad(keys="entity"), FeatureLookupError, "list of column names"),
        (PitSource({"entity": [1]}, **kw), FeatureLookupError, "not supported"),
    ]
    for source, exc, text in cases:
        with pytest.raises(exc, match=text):
            point_in_time_join(spine, [source])
    with pytest.raises(OutputCollisionError, match="'f'"):
        point_in_time_join(spine, [src, src])
    with pytest.raises(FeatureLookupError, match="pyarrow Table"):
        point_in_time_join(spine.to_pandas(), [src])
    with pytest.raises(FeatureLookupError, match="batch_rows"):
        point_in_time_join(spine, [src], batch_rows=0)


def test_engine_errors_are_converted():
    con = duckdb.connect()
    con.close()
    with pytest.raises(LarderError, match="DuckDB"):
        point_in_time_join(spine_of([(1, at())]), [ts_source([(1, at(), 1.0)])], con=con)


def test_shared_connection_is_left_clean():
    con = duckdb.connect()
    con.execute("CREATE TABLE keep AS SELECT 1 AS x")
    before = con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchall()
    point_in_time_join(spine_of([(1, at())] * 5), [ts_source([(1, at(), 1.0)] * 3)], con=con, batch_rows=2)
    assert con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchall() == before
    assert con.execute("SELECT x FROM keep").fetchall() == [(1,)]
    con.close()


@pytest.mark.parametrize("batch_rows", [None, 1, 2])
def test_chunks_on_string_and_dictionary_first_keys(batch_rows):
    data = pa.table({"k": pa.array(["b", "a", "c", "a"], pa.large_string()), "sub": [1, 1, 2, 1],
                     "event_ts": pa.array([at(), at(), at(), at(seconds=5)], pa.timestamp("us", "UTC")),
                     "f": [2.0, 1.0, 3.0, 1.5]})
    spine = pa.table({"k": pa.array(["a", "c", None, "b", "a", "zz"]).dictionary_encode(), "sub": [1, 2, 1, 1, 1, 1],
                      "ts": pa.array([at(seconds=1), at(), at(), at(), at(seconds=9), at()], pa.timestamp("us", "UTC"))})
    src = PitSource(data, ["k", "sub"], ["k", "sub"], ["f"], ["f"], "event_ts", "ts")
    with mock.patch.object(pit, "_CHUNK_SOURCE_ROWS", 2):
        assert join_f(spine, src, batch_rows=batch_rows) == [1.0, 3.0, None, 2.0, 1.5, None]


@pytest.mark.parametrize("partitioned", [True, False])
def test_indicator_marks_matched_rows_even_with_null_values(partitioned):
    src = ts_source([(1, at(), None), (2, at(), 2.0)], indicator="hit")
    spine = spine_of([(1, at(seconds=1)), (2, at(seconds=-1)), (3, at()), (None, at()), (2, at())])
    with mock.patch.object(pit, "_PARTITION_BY_CODES", partitioned):
        out = point_in_time_join(spine, [src])
    assert out.column_names == ["entity", "ts", "f", "hit"]
    assert out.column("f").to_pylist() == [None, None, None, None, 2.0]
    assert out.column("hit").to_pylist() == [True, False, False, False, True]
    with pytest.raises(OutputCollisionError, match="'ts'"):
        point_in_time_join(spine, [ts_source([(1, at(), 1.0)], indicator="ts")])
