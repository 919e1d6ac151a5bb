"""The streaming gather of point-in-time joins (file-by-file parquet reads, values written into output
buffers) gives exactly what Arrow's take over the whole columns gives, for every type and data shape."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from larder.offline import delta, pit, pit_gather
from larder.offline.pit import PitSource, point_in_time_join
from larder.offline.pit_gather import float_values, gather_streaming, prefetched, scan_batches
from larder.training import FeatureLookup

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _plain(values: list) -> list:
    """NaN made comparable (NaN != NaN), nulls kept as None."""
    return ["NaN" if isinstance(v, float) and math.isnan(v) else v for v in values]


def _typed_table(n: int, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    some_null = rng.random(n) < 0.2
    floats = rng.standard_normal(n)
    floats[rng.random(n) < 0.1] = np.nan  # NaN values, distinct from nulls
    return pa.table({
        "entity": pa.array(rng.integers(0, 30, n)),
        "event_ts": pa.array(T0.timestamp() * 1e6 + rng.integers(0, 1000, n) * 1_000_000, pa.int64()).cast(
            pa.timestamp("us", "UTC")),
        "i64": pa.array(rng.integers(-5, 5, n), mask=some_null),
        "i8": pa.array(rng.integers(-5, 5, n).astype(np.int8)),
        "f32": pa.array(floats.astype(np.float32), mask=rng.random(n) < 0.15),
        "f64": pa.array(floats, mask=some_null),
        "when": pa.array([T0 + timedelta(seconds=int(x)) for x in rng.integers(0, 99, n)], pa.timestamp("ms", "UTC")),
        "day": pa.array([date(2024, 1, 1) + timedelta(days=int(x)) for x in rng.integers(0, 9, n)], pa.date32()),
        "dur": pa.array(rng.integers(0, 9, n), pa.int64()).cast(pa.duration("s")),
        "name": pa.array([None if m else f"n{x}" for m, x in zip(some_null, rng.integers(0, 9, n), strict=True)]),
        "flag": pa.array(rng.random(n) < 0.5, mask=rng.random(n) < 0.1),
        "dec": pa.array([Decimal(int(x)) / 100 for x in rng.integers(0, 999, n)], pa.decimal128(7, 2)),
        "tags": pa.array([[int(x)] * int(x % 3) for x in rng.integers(0, 9, n)], pa.list_(pa.int64())),
    })


FEATURES = ["i64", "i8", "f32", "f64", "when", "day", "dur", "name", "flag", "dec", "tags"]
NAMES = dict(keys=["entity"], lookup_keys=["entity"], features=FEATURES, output_names=FEATURES,
             timestamp_key="event_ts", timestamp_lookup_key="ts")


def _spine(n: int, seed: int = 5) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"entity": pa.array(rng.integers(0, 35, n)),  # some entities the source lacks
                     "ts": pa.array(T0.timestamp() * 1e6 + rng.integers(-50, 1100, n) * 1_000_000, pa.int64()).cast(
                         pa.timestamp("us", "UTC"))})


def _assert_same(got: pa.Table, want: pa.Table) -> None:
    assert got.schema == want.schema
    for name in want.column_names:
        assert _plain(got.column(name).to_pylist()) == _plain(want.column(name).to_pylist()), name
        assert got.column(name).is_null().equals(want.column(name).is_null()), name


def _write(table: pa.Table, folder, parts: int, row_group: int) -> list[str]:
    folder.mkdir(exist_ok=True)
    files, step = [], -(-table.num_rows // parts)
    for j in range(parts):
        path = str(folder / f"part-{j}.parquet")
        pq.write_table(table.slice(j * step, step), path, row_group_size=row_group)
        files.append(path)
    return files


@pytest.mark.parametrize("batch_rows", [1 << 16, 7])
def test_parquet_files_give_what_the_table_gives_for_every_type(tmp_path, batch_rows):
    data = _typed_table(2_000)
    dataset = pads.dataset(_write(data, tmp_path / "t", parts=3, row_group=150), schema=data.schema, format="parquet")
    spine = _spine(600)
    with mock.patch.object(pit_gather, "_BATCH_ROWS", batch_rows):
        got = point_in_time_join(spine, [PitSource(dataset, **NAMES)])
        from_table = point_in_time_join(spine, [PitSource(data, **NAMES)])
    with mock.patch.object(pit, "_STREAM_TABLES", False):  # the general path: take over whole columns
        want = point_in_time_join(spine, [PitSource(data, **NAMES)])
    _assert_same(got, want)
    _assert_same(from_table, want)
    assert got.column("f64").null_count > 0 and pc.sum(pc.is_nan(got.column("f64"))).as_py() > 0


def test_files_with_another_schema_are_filled_and_cast_like_the_scanner(tmp_path):
    old = pa.table({"entity": pa.array([1, 2, 3], pa.int64()), "event_ts": pa.array([T0] * 3, pa.timestamp("us", "UTC")),
                    "f": pa.array([1, 2, 3], pa.int32())})
    new = pa.table({"entity": pa.array([1, 2], pa.int64()),
                    "event_ts": pa.array([T0 + timedelta(days=1)] * 2, pa.timestamp("us", "UTC")),
                    "f": pa.array([10, None], pa.int64()), "g": pa.array(["x", "y"])})
    (tmp_path / "d").mkdir()
    pq.write_table(old, tmp_path / "d" / "a.parquet")
    pq.write_table(new, tmp_path / "d" / "b.parquet")
    schema = pa.schema([("entity", pa.int64()), ("event_ts", pa.timestamp("us", "UTC")), ("f", pa.int64()),
                        ("g", pa.string())])
    dataset = pads.dataset([str(tmp_path / "d" / n) for n in ("a.parquet", "b.parquet")], schema=schema,
                           format="parquet")
    spine = pa.table({"entity": [1, 2, 3, 1], "ts": pa.array([T0, T0 + timedelta(days=2), T0 + timedelta(days=5),
                                                              T0 + timedelta(hours=1)], pa.timestamp("us", "UTC"))})
    names = dict(keys=["entity"], lookup_keys=["entity"], features=["f", "g"], output_names=["f", "g"],
                 timestamp_key="event_ts", timestamp_lookup_key="ts")
    got = point_in_time_join(spine, [PitSource(dataset, **names)])
    assert got.column("f").to_pylist() == [1, None, 3, 1]
    assert got.column("g").to_pylist() == [None, "y", None, None]
    _assert_same(got, point_in_time_join(spine, [PitSource(dataset.to_table(), **names)]))


def test_filtered_and_hive_partitioned_datasets(tmp_path):
    data = _typed_table(900).append_column("region", pa.array(["eu", "us", "ap"] * 300))
    pads.write_dataset(data, tmp_path / "hive", format="parquet", partitioning=["region"], partitioning_flavor="hive",
                       max_rows_per_group=100)
    dataset = pads.dataset(tmp_path / "hive", format="parquet", partitioning="hive")
    names = {**NAMES, "features": ["region", "f64", "name"], "output_names": ["region", "f64", "name"]}
    spine = _spine(300)
    whole = dataset.to_table()  # the scanner's order, which the file-by-file read must follow
    _assert_same(point_in_time_join(spine, [PitSource(dataset, **names)]),
                 point_in_time_join(spine, [PitSource(whole, **names)]))
    kept = dataset.filter(pc.field("i8") > 0)
    _assert_same(point_in_time_join(spine, [PitSource(kept, **names)]),
                 point_in_time_join(spine, [PitSource(kept.to_table(), **names)]))


def test_scan_reads_every_row_in_order_in_small_batches(tmp_path):
    data = _typed_table(1_000)
    dataset = pads.dataset(_write(data, tmp_path / "t", parts=2, row_group=300), format="parquet")
    with mock.patch.object(pit_gather, "_BATCH_ROWS", 64):
        batches = list(scan_batches(dataset, ["f64", "entity"]))
    assert max(b.num_rows for b in batches) <= 64
    _assert_same(pa.Table.from_batches(batches), data.select(["f64", "entity"]))


def test_gather_puts_values_in_spine_order_with_repeats_and_misses():
    data = pa.table({"x": pa.array([1.5, None, 3.5, float("nan")]), "s": ["a", "b", None, "d"]})
    idx = np.array([3, -1, 0, 0, 1, 2, -1], dtype=np.int64)
    cols, rows = gather_streaming(data.to_batches(max_chunksize=2), [pa.float64(), pa.string()], idx)
    assert rows == 4
    assert _plain(cols[0].to_pylist()) == ["NaN", None, 1.5, 1.5, None, 3.5, None]
    assert cols[1].to_pylist() == ["d", None, "a", "a", "b", None, None]
    empty, rows = gather_streaming(iter([]), [pa.int64()], np.full(3, -1, dtype=np.int64))
    assert empty[0].to_pylist() == [None, None, None] and rows == 0


def test_float_values_is_the_pandas_conversion_without_a_copy():
    cols, _ = gather_streaming(pa.table({"x": [1.0, None, 2.0]}).to_batches(), [pa.float64()],
                               np.array([0, 1, -1, 2], dtype=np.int64))
    view = float_values(cols[0])
    assert view is not None and np.shares_memory(view, np.frombuffer(cols[0].buffers()[1], dtype=np.float64))
    np.testing.assert_array_equal(view, cols[0].to_pandas().to_numpy())
    under_null = pa.Array.from_buffers(pa.float64(), 2, [pa.py_buffer(np.packbits([True, False], bitorder="little")),
                                                         pa.py_buffer(np.array([1.0, 5.0]))], null_count=1)
    assert float_values(under_null) is None  # a value, not NaN, under the null: pandas needs the conversion
    assert float_values(pa.array([1, None])) is None
    assert float_values(pa.array([1.0, 2.0]).slice(1)).tolist() == [2.0]


def test_prefetched_passes_errors_on_and_stops_with_the_consumer():
    def boom():
        yield 1
        raise ValueError("bad file")

    stream = prefetched(boom())
    assert next(stream) == 1
    with pytest.raises(ValueError, match="bad file"):
        next(stream)
    made = []

    def many():
        for i in range(1_000):
            made.append(i)
            yield i

    stream = prefetched(many(), depth=2)
    assert next(stream) == 0
    stream.close()  # the producer stops instead of reading on
    assert len(made) < 10


def test_load_df_equals_the_in_memory_path(fe):
    rng = np.random.default_rng(11)
    n = 3_000
    feats = pd.DataFrame({
        "entity": rng.integers(0, 50, n), "event_ts": pd.to_datetime(rng.integers(0, 10**6, n), unit="s", utc=True),
        "f": np.where(rng.random(n) < 0.1, np.nan, rng.standard_normal(n)),
        "k": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 9, n)), dtype="Int64"),
        "s": np.where(rng.random(n) < 0.1, None, "v" + pd.Series(rng.integers(0, 9, n)).astype(str)),
    }).drop_duplicates(["entity", "event_ts"])
    fe.create_table("feats", primary_keys=["entity", "event_ts"], timestamp_keys="event_ts", df=feats)
    labels = pd.DataFrame({"entity": rng.integers(0, 60, 800),
                           "at": pd.to_datetime(rng.integers(0, 10**6, 800), unit="s", utc=True),
                           "y": rng.random(800)})
    lookups = [FeatureLookup("feats", "entity", timestamp_lookup_key="at", feature_names=["f", "k", "s"]),
               FeatureLookup("feats", "entity", timestamp_lookup_key="at", feature_names=["f"],
                             rename_outputs={"f": "f_filled"}, default_values={"f_filled": -1.0})]
    got = fe.create_training_set(labels, lookups, label="y").load_df()
    # the same training set with each table read whole into an Arrow table first, gathered by take
    whole = delta.Snapshot.dataset
    with mock.patch.object(delta.Snapshot, "dataset", lambda self: whole(self).to_table()), \
            mock.patch.object(pit, "_STREAM_TABLES", False):
        want = fe.create_training_set(labels, lookups, label="y").load_df()
    pd.testing.assert_frame_equal(got, want)
    assert got["f"].isna().any() and (got["f_filled"] == -1.0).any()
