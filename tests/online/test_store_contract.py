"""The online store contract, run against every store (see ``conftest.py``)."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import random

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from larder.errors import (
    LarderError,
    OnlineStoreError,
    OnlineTableNotFoundError,
    PrimaryKeyError,
    SchemaMismatchError,
)
from larder.online import ORDER_COLUMN, OnlineStore, OnlineTable

UTC = dt.UTC
_counter = iter(range(10**9))


def table(schema: pa.Schema, keys: list[str], ts: str | None = None) -> OnlineTable:
    return OnlineTable(f"main.test.t{next(_counter)}", keys, ts, schema)


def rows(t: OnlineTable, data: dict[str, list], order: list[int]) -> pa.Table:
    cols = {name: pa.array(data[name], t.schema.field(name).type) for name in t.schema.names}
    cols[ORDER_COLUMN] = pa.array(order, pa.int64())
    return pa.table(cols)


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, float) and isinstance(b, float) and a == 0 and b == 0:
        return math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b


def assert_rows(actual: pa.Table, expected: list[dict]) -> None:
    got = actual.to_pylist()
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g.keys() == e.keys(), i
        for k in e:
            assert same(g[k], e[k]), (i, k, g[k], e[k])


ALL_TYPES = pa.schema(
    [
        ("id", pa.int64()),
        ("i8", pa.int8()),
        ("i16", pa.int16()),
        ("i32", pa.int32()),
        ("i64", pa.int64()),
        ("u64", pa.uint64()),
        ("f32", pa.float32()),
        ("f64", pa.float64()),
        ("flag", pa.bool_()),
        ("name", pa.string()),
        ("blob", pa.binary()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("naive", pa.timestamp("us")),
        ("day", pa.date32()),
        ("price", pa.decimal128(38, 10)),
        ("nothing", pa.null()),
        ("cat", pa.dictionary(pa.int32(), pa.string())),
    ]
)

FLOATS = [0.1, -0.0, float("nan"), float("inf"), float("-inf"), 1e300, 5e-324, 1e-200, 2.0**60, -123.456]


def every_type_rows() -> dict[str, list]:
    n = len(FLOATS) + 1
    ts = [
        dt.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC) + dt.timedelta(days=i * 400) for i in range(n)
    ]
    data = {
        "id": list(range(n)),
        "i8": [-128, 127, 0, None, 1, -1, 5, 6, 7, 8, 9],
        "i16": [-32768, 32767, 0, 1, None, 2, 3, 4, 5, 6, 7],
        "i32": [-(2**31), 2**31 - 1, 0, 1, 2, None, 3, 4, 5, 6, 7],
        "i64": [-(2**63), 2**63 - 1, 0, 2**53 + 1, 2, 3, None, 4, 5, 6, 7],
        "u64": [0, 2**64 - 1, 1, 2, 3, 4, 5, None, 6, 7, 8],
        "f32": [float(np.float32(x)) for x in [0.1, -0.0, float("nan"), float("inf"), -1e30, 3.5, 1e-40]]
        + [None, 1.0, 2.0, 3.0],
        "f64": FLOATS + [None],
        "flag": [True, False, None, True, False, True, False, True, False, True, False],
        "name": ["héllo", "", "a#b", "back\\slash", "日本", None, "x" * 1000, " ", "\n", "null", "None"],
        "blob": [b"\x00\xff", b"", None, b"abc", b"\x00", b"1", b"2", b"3", b"4", b"5", b"6"],
        "ts": ts[:-1] + [None],
        "naive": [t.replace(tzinfo=None) for t in ts[1:]] + [None],
        "day": [dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(2024, 2, 29), None]
        + [dt.date(2020, 1, i + 1) for i in range(7)],
        "price": [decimal.Decimal("12345678901234567890.1234567890"), decimal.Decimal("-0.0000000001"), None]
        + [decimal.Decimal(i) for i in range(8)],
        "nothing": [None] * n,
        "cat": ["a", "b", None, "a", "c", "b", "a", "a", "b", "c", None],
    }
    return data


def test_round_trip_every_type(store: OnlineStore) -> None:
    t = table(ALL_TYPES, ["id"])
    data = every_type_rows()
    n = len(data["id"])
    assert store.write_batch(t, rows(t, data, [1] * n)) == n
    # reversed, with a missing key in the middle
    ids = list(reversed(range(n)))
    ids.insert(3, 10_000)
    out, found = store.read_batch(t, pa.table({"id": pa.array(ids, pa.int64())}))
    assert out.schema == pa.schema([ALL_TYPES.field(n) for n in t.features])
    assert found.dtype == bool and found.tolist() == [i != 10_000 for i in ids]
    expected = []
    for i in ids:
        if i == 10_000:
            expected.append(dict.fromkeys(t.features))
        else:
            expected.append({f: data[f][i] for f in t.features})
    assert_rows(out, expected)


def test_all_null_row_is_found(store: OnlineStore) -> None:
    schema = pa.schema([("k", pa.string()), ("x", pa.float64()), ("s", pa.string())])
    t = table(schema, ["k"])
    store.write_batch(t, rows(t, {"k": ["a"], "x": [None], "s": [None]}, [1]))
    out, found = store.read_batch(t, pa.table({"k": ["a", "b"]}))
    assert found.tolist() == [True, False]
    assert out.to_pylist() == [{"x": None, "s": None}, {"x": None, "s": None}]


SIMPLE = pa.schema([("id", pa.int64()), ("v", pa.float64()), ("tag", pa.string())])


@pytest.mark.all_write_modes
def test_latest_wins_across_batches(store: OnlineStore) -> None:
    t = table(SIMPLE, ["id"])
    assert (
        store.write_batch(t, rows(t, {"id": [1, 2], "v": [5.0, 5.0], "tag": ["five", "five"]}, [5, 5])) == 2
    )
    # older rows never replace newer ones
    assert store.write_batch(t, rows(t, {"id": [1, 2], "v": [3.0, 3.0], "tag": ["three", None]}, [3, 3])) == 0
    # a tie: the incoming row wins
    assert store.write_batch(t, rows(t, {"id": [1], "v": [5.5], "tag": ["tie"]}, [5])) == 1
    # newer rows win, a null overwrites a value
    assert (
        store.write_batch(t, rows(t, {"id": [2, 3], "v": [None, 1.0], "tag": ["seven", "new"]}, [7, 1])) == 2
    )
    out, found = store.read_batch(t, pa.table({"id": [1, 2, 3]}))
    assert found.tolist() == [True, True, True]
    assert out.to_pylist() == [
        {"v": 5.5, "tag": "tie"},
        {"v": None, "tag": "seven"},
        {"v": 1.0, "tag": "new"},
    ]


@pytest.mark.all_write_modes
def test_latest_wins_within_one_batch(store: OnlineStore) -> None:
    t = table(SIMPLE, ["id"])
    ids = [1, 1, 1, 2, 2, 3, 1, 2]
    orders = [4, 9, 2, 7, 7, -5, 9, 6]
    tags = ["a", "b", "c", "d", "e", "f", "g", "h"]
    written = store.write_batch(t, rows(t, {"id": ids, "v": [float(o) for o in orders], "tag": tags}, orders))
    assert written == 3
    out, _ = store.read_batch(t, pa.table({"id": [1, 2, 3]}))
    # key 1: order 9 twice -> the later row ("g"); key 2: order 7 twice -> "e"
    assert out.column("tag").to_pylist() == ["g", "e", "f"]
    assert out.column("v").to_pylist() == [9.0, 7.0, -5.0]
    # negative and huge orders compare as integers (not as text, not as doubles)
    big = 2**62 + 1
    store.write_batch(t, rows(t, {"id": [3], "v": [0.0], "tag": ["big"]}, [big]))
    store.write_batch(t, rows(t, {"id": [3], "v": [0.0], "tag": ["big-1"]}, [big - 1]))
    assert store.read_batch(t, pa.table({"id": [3]}))[0].column("tag").to_pylist() == ["big"]


@pytest.mark.all_write_modes
def test_out_of_order_writes_match_an_oracle(store: OnlineStore, store_kind: str) -> None:
    examples = 25 if store_kind in ("sqlite", "redis") else 4
    t_counter = iter(range(1000))

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.lists(
            st.lists(st.tuples(st.integers(0, 5), st.integers(-3, 3)), min_size=0, max_size=8),
            min_size=1,
            max_size=4,
        )
    )
    def check(batches: list[list[tuple[int, int]]]) -> None:
        t = OnlineTable(f"main.test.oracle{next(t_counter)}_{next(_counter)}", ["id"], None, SIMPLE)
        oracle: dict[int, tuple[int, str]] = {}
        for b, batch in enumerate(batches):
            tags = [f"{b}.{i}" for i in range(len(batch))]
            for (key, order), tag in zip(batch, tags, strict=True):
                if key not in oracle or order >= oracle[key][0]:
                    oracle[key] = (order, tag)
            store.write_batch(
                t,
                rows(
                    t,
                    {"id": [k for k, _ in batch], "v": [float(o) for _, o in batch], "tag": tags},
                    [o for _, o in batch],
                ),
            )
        out, found = store.read_batch(t, pa.table({"id": list(range(6))}))
        assert found.tolist() == [k in oracle for k in range(6)]
        assert out.column("tag").to_pylist() == [oracle[k][1] if k in oracle else None for k in range(6)]

    check()


def test_missing_and_duplicate_keys(store: OnlineStore) -> None:
    t = table(SIMPLE, ["id"])
    store.write_batch(t, rows(t, {"id": [1, 2], "v": [1.0, 2.0], "tag": ["one", "two"]}, [1, 1]))
    keys = pa.table({"id": pa.array([2, 99, 1, 2, None, 2], pa.int64())})
    out, found = store.read_batch(t, keys)
    assert found.tolist() == [True, False, True, True, False, True]
    assert out.column("tag").to_pylist() == ["two", None, "one", "two", None, "two"]
    assert out.num_rows == 6
    empty, found = store.read_batch(t, pa.table({"id": pa.array([], pa.int64())}))
    assert empty.num_rows == 0 and found.shape == (0,)
    assert empty.schema.names == ["v", "tag"]


def test_feature_subset_and_order(store: OnlineStore) -> None:
    t = table(SIMPLE, ["id"])
    store.write_batch(t, rows(t, {"id": [1], "v": [1.5], "tag": ["x"]}, [1]))
    out, _ = store.read_batch(t, pa.table({"id": [1]}), features=["tag", "v"])
    assert out.column_names == ["tag", "v"]
    assert out.to_pylist() == [{"tag": "x", "v": 1.5}]
    out, _ = store.read_batch(t, pa.table({"id": [1]}), features=["tag"])
    assert out.to_pylist() == [{"tag": "x"}]
    with pytest.raises(OnlineStoreError, match="nope"):
        store.read_batch(t, pa.table({"id": [1]}), features=["nope"])


def test_ten_thousand_keys(store: OnlineStore) -> None:
    n = 10_000
    schema = pa.schema([("id", pa.int64()), ("a", pa.float64()), ("b", pa.int32())])
    t = table(schema, ["id"])
    ids = np.arange(n)
    batch = rows(t, {"id": ids.tolist(), "a": (ids * 0.5).tolist(), "b": (ids % 1000).tolist()}, [1] * n)
    assert store.replace_table(t, [batch]) == n
    rng = np.random.default_rng(7)
    wanted = rng.permutation(n + 500)  # 500 keys that do not exist
    out, found = store.read_batch(t, pa.table({"id": pa.array(wanted, pa.int64())}))
    assert found.tolist() == (wanted < n).tolist()
    a = out.column("a").to_numpy(zero_copy_only=False)
    assert np.array_equal(a[wanted < n], wanted[wanted < n] * 0.5)
    assert out.column("b").null_count == 500
    assert out.column("b").to_pylist() == [int(w % 1000) if w < n else None for w in wanted]


def test_composite_keys(store: OnlineStore) -> None:
    schema = pa.schema(
        [("shop", pa.string()), ("item", pa.int32()), ("day", pa.date32()), ("qty", pa.int64())]
    )
    t = table(schema, ["shop", "item", "day"])
    d1, d2 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)
    data = {
        "shop": ["a#b", "a", "a\\", "a", ""],
        "item": [1, 1, 1, 2, 0],
        "day": [d1, d1, d1, d2, d1],
        "qty": [10, 20, 30, 40, 50],
    }
    assert store.write_batch(t, rows(t, data, [1] * 5)) == 5
    keys = pa.table(
        {
            "shop": ["a", "a#b", "a\\", "a", "a", "", "a#b"],
            "item": pa.array([2, 1, 1, 1, 1, 0, 2], pa.int64()),  # int64 keys for an int32 column
            "day": [d2, d1, d1, d1, d2, d1, d1],
        }
    )
    out, found = store.read_batch(t, keys)
    assert found.tolist() == [True, True, True, True, False, True, False]
    assert out.column("qty").to_pylist() == [40, 10, 30, 20, None, 50, None]


def test_timestamp_key_is_returned_as_a_feature(store: OnlineStore) -> None:
    schema = pa.schema([("id", pa.int64()), ("event_ts", pa.timestamp("us", tz="UTC")), ("v", pa.float64())])
    t = table(schema, ["id"], ts="event_ts")
    assert t.features == ["event_ts", "v"]
    t1 = dt.datetime(2024, 1, 1, tzinfo=UTC)
    t2 = dt.datetime(2024, 1, 2, tzinfo=UTC)
    us = [int(x.timestamp() * 1_000_000) for x in (t2, t1)]
    store.write_batch(t, rows(t, {"id": [1, 1], "event_ts": [t2, t1], "v": [2.0, 1.0]}, us))
    out, _ = store.read_batch(t, pa.table({"id": [1]}))
    assert out.to_pylist() == [{"event_ts": t2, "v": 2.0}]


def test_replace_table_removes_stale_keys(store: OnlineStore) -> None:
    t = table(SIMPLE, ["id"])
    store.write_batch(t, rows(t, {"id": [1, 2, 3, 4, 5], "v": [1.0] * 5, "tag": ["old"] * 5}, [100] * 5))
    first = rows(t, {"id": [3, 4, 6], "v": [3.0, 4.0, 6.0], "tag": ["new3", "new4", "new6"]}, [1, 1, 1])
    # key 4 again: the greater order wins across batches; key 6 again with a smaller order loses
    second = rows(t, {"id": [4, 6, 7], "v": [44.0, 0.0, 7.0], "tag": ["new4b", "stale6", "new7"]}, [2, 0, 1])
    assert store.replace_table(t, iter([first, second])) == 4
    out, found = store.read_batch(t, pa.table({"id": [1, 2, 3, 4, 5, 6, 7]}))
    assert found.tolist() == [False, False, True, True, False, True, True]
    # replace ignores the stored (greater) orders: the table is exactly the new rows
    assert out.column("tag").to_pylist() == [None, None, "new3", "new4b", None, "new6", "new7"]
    # after a replace, merges compare against the new rows' orders
    store.write_batch(t, rows(t, {"id": [3], "v": [0.0], "tag": ["older"]}, [0]))
    assert store.read_batch(t, pa.table({"id": [3]}))[0].column("tag").to_pylist() == ["new3"]
    assert store.replace_table(t, []) == 0
    assert not store.read_batch(t, pa.table({"id": [3, 4]}))[1].any()


def test_failed_replace_keeps_previous_contents(store: OnlineStore, store_kind: str) -> None:
    t = table(SIMPLE, ["id"])
    store.write_batch(t, rows(t, {"id": [1, 2], "v": [1.0, 2.0], "tag": ["a", "b"]}, [1, 1]))

    def batches():
        yield rows(t, {"id": [7], "v": [7.0], "tag": ["new"]}, [1])
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError, match="source failed"):
        store.replace_table(t, batches())
    out, found = store.read_batch(t, pa.table({"id": [1, 2]}))
    assert out.column("tag").to_pylist() == ["a", "b"]
    if store_kind in ("sqlite", "redis"):  # atomic switch: the new rows are not visible either
        assert not store.read_batch(t, pa.table({"id": [7]}))[1].any()


def test_drop_table(store: OnlineStore) -> None:
    t = table(SIMPLE, ["id"])
    other = table(SIMPLE, ["id"])
    store.write_batch(t, rows(t, {"id": [1], "v": [1.0], "tag": ["x"]}, [1]))
    store.write_batch(other, rows(other, {"id": [1], "v": [2.0], "tag": ["y"]}, [1]))
    store.drop_table(t)
    with pytest.raises(OnlineTableNotFoundError, match=t.name):
        store.read_batch(t, pa.table({"id": [1]}))
    store.drop_table(t)  # dropping twice is fine
    assert store.read_batch(other, pa.table({"id": [1]}))[0].column("tag").to_pylist() == ["y"]
    # the table can be published again
    store.write_batch(t, rows(t, {"id": [2], "v": [1.0], "tag": ["again"]}, [1]))
    out, found = store.read_batch(t, pa.table({"id": [1, 2]}))
    assert found.tolist() == [False, True]


def test_delete_keys(store: OnlineStore) -> None:
    from larder.online.stores.base import prepare_keys

    t = table(SIMPLE, ["id"])
    other = table(SIMPLE, ["id"])
    store.delete_keys(t, ["1"])  # a table never written: nothing to delete, no error
    store.write_batch(t, rows(t, {"id": [1, 2, 3], "v": [1.0, 2.0, 3.0], "tag": ["a", "b", "c"]}, [1, 1, 1]))
    store.write_batch(other, rows(other, {"id": [1], "v": [9.0], "tag": ["o"]}, [1]))
    store.delete_keys(t, prepare_keys(t, pa.table({"id": [1, 3, 3, 99]})))  # repeated and unknown keys too
    out, found = store.read_batch(t, pa.table({"id": [1, 2, 3]}))
    assert found.tolist() == [False, True, False] and out.column("tag").to_pylist() == [None, "b", None]
    assert store.read_batch(other, pa.table({"id": [1]}))[1].tolist() == [True]  # another table keeps its key
    # a deleted key can be written again, at any order
    store.write_batch(t, rows(t, {"id": [1], "v": [5.0], "tag": ["back"]}, [0]))
    assert store.read_batch(t, pa.table({"id": [1]}))[0].column("tag").to_pylist() == ["back"]
    # after an overwrite, deletes reach the served contents
    store.replace_table(t, [rows(t, {"id": [4, 5], "v": [4.0, 5.0], "tag": ["d", "e"]}, [2, 2])])
    store.delete_keys(t, prepare_keys(t, pa.table({"id": [5]})))
    assert store.read_batch(t, pa.table({"id": [4, 5]}))[1].tolist() == [True, False]


def test_unknown_table(store: OnlineStore) -> None:
    with pytest.raises(OnlineTableNotFoundError, match="publish"):
        store.read_batch(table(SIMPLE, ["id"]), pa.table({"id": [1]}))


def test_empty_write_creates_the_table(store: OnlineStore) -> None:
    t = table(SIMPLE, ["id"])
    assert store.write_batch(t, rows(t, {"id": [], "v": [], "tag": []}, [])) == 0
    out, found = store.read_batch(t, pa.table({"id": [1]}))
    assert found.tolist() == [False] and out.to_pylist() == [{"v": None, "tag": None}]


def test_schema_change_keeps_stored_rows(store: OnlineStore) -> None:
    t = table(SIMPLE, ["id"])
    store.write_batch(t, rows(t, {"id": [1, 2], "v": [1.0, 2.0], "tag": ["a", "b"]}, [1, 1]))
    wider = OnlineTable(t.name, ["id"], None, pa.schema([*SIMPLE, pa.field("extra", pa.int64())]))
    # reading with a feature that was never published gives nulls
    out, found = store.read_batch(wider, pa.table({"id": [1]}))
    assert out.to_pylist() == [{"v": 1.0, "tag": "a", "extra": None}]
    store.write_batch(wider, rows(wider, {"id": [2], "v": [20.0], "tag": ["bb"], "extra": [5]}, [2]))
    out, found = store.read_batch(wider, pa.table({"id": [1, 2]}))
    assert out.to_pylist() == [
        {"v": 1.0, "tag": "a", "extra": None},
        {"v": 20.0, "tag": "bb", "extra": 5},
    ]


def test_bad_input_is_rejected_and_nothing_written(store: OnlineStore) -> None:
    t = table(SIMPLE, ["id"])
    good = {"id": [1, 2], "v": [1.0, 2.0], "tag": ["a", "b"]}
    with pytest.raises(PrimaryKeyError, match="'id'"):
        store.write_batch(t, rows(t, {**good, "id": [1, None]}, [1, 1]))
    with pytest.raises(OnlineStoreError, match=ORDER_COLUMN):
        store.write_batch(t, rows(t, good, [1, 1]).drop_columns([ORDER_COLUMN]))
    with pytest.raises(OnlineStoreError, match="null"):
        store.write_batch(
            t, rows(t, good, [1, 1]).set_column(3, ORDER_COLUMN, pa.array([1, None], pa.int64()))
        )
    with pytest.raises(SchemaMismatchError, match="'tag'"):
        store.write_batch(t, rows(t, good, [1, 1]).drop_columns(["tag"]))
    with pytest.raises(SchemaMismatchError, match="'v'"):
        store.write_batch(t, rows(t, good, [1, 1]).set_column(1, "v", pa.array(["x", "y"])))
    with pytest.raises(SchemaMismatchError, match="surprise"):
        store.write_batch(t, rows(t, good, [1, 1]).append_column("surprise", pa.array([1, 2])))
    with pytest.raises(OnlineStoreError, match="'id'"):
        store.read_batch(t, pa.table({"ID": [1]}))
    with pytest.raises(OnlineTableNotFoundError):
        store.read_batch(t, pa.table({"id": [1]}))


def test_unsupported_types_are_rejected() -> None:
    with pytest.raises(OnlineStoreError, match="'emb'.*list"):
        table(pa.schema([("id", pa.int64()), ("emb", pa.list_(pa.float32()))]), ["id"])
    with pytest.raises(OnlineStoreError, match="'key'.*keys must be"):
        table(pa.schema([("key", pa.binary()), ("x", pa.int64())]), ["key"])
    with pytest.raises(OnlineStoreError, match="'missing'"):
        table(pa.schema([("id", pa.int64())]), ["missing"])


def test_close(store: OnlineStore) -> None:
    t = table(SIMPLE, ["id"])
    with store as s:
        s.write_batch(t, rows(t, {"id": [1], "v": [1.0], "tag": ["x"]}, [1]))
    store.close()  # closing twice is fine
    with pytest.raises(LarderError, match="closed"):
        store.read_batch(t, pa.table({"id": [1]}))


def test_many_random_rows_round_trip(store: OnlineStore, store_kind: str) -> None:
    rng = random.Random(3)
    n = 2000 if store_kind in ("sqlite", "redis") else 300
    schema = pa.schema([("k1", pa.string()), ("k2", pa.int64()), ("x", pa.float64()), ("s", pa.string())])
    t = table(schema, ["k1", "k2"])
    k1 = [rng.choice(["a", "b#", "c\\", ""]) for _ in range(n)]
    k2 = [rng.randrange(-50, 50) for _ in range(n)]
    x = [rng.choice([None, rng.random(), float("nan")]) for _ in range(n)]
    s = [rng.choice([None, "", "é" * rng.randrange(5)]) for _ in range(n)]
    orders = [rng.randrange(10) for _ in range(n)]
    oracle: dict[tuple, tuple] = {}
    for i in range(n):
        key = (k1[i], k2[i])
        if key not in oracle or orders[i] >= oracle[key][0]:
            oracle[key] = (orders[i], x[i], s[i])
    half = n // 2
    store.write_batch(
        t, rows(t, {"k1": k1[:half], "k2": k2[:half], "x": x[:half], "s": s[:half]}, orders[:half])
    )
    store.write_batch(
        t, rows(t, {"k1": k1[half:], "k2": k2[half:], "x": x[half:], "s": s[half:]}, orders[half:])
    )
    keys = list(oracle) + [("zz", 1)]
    out, found = store.read_batch(t, pa.table({"k1": [k for k, _ in keys], "k2": [k for _, k in keys]}))
    assert found.tolist() == [True] * len(oracle) + [False]
    expected = [{"x": oracle[k][1], "s": oracle[k][2]} for k in oracle] + [{"x": None, "s": None}]
    assert_rows(out, expected)


# -- read_values: the written rows, numbers in numpy blocks ------------------------------------------


def _pks(t: OnlineTable, keys: pa.Table) -> list[str | None]:
    from larder.online.stores.base import prepare_keys

    return prepare_keys(t, keys)


def assert_values_match_rows(store: OnlineStore, t: OnlineTable, data: dict[str, list], keys: pa.Table,
                             features=None) -> None:
    """``read_values`` of ``keys`` gives the rows of ``data`` (what was written) for those keys, in order,
    nulls for keys not written or null, typed as the schema says; numbers in blocks of their dtype."""
    names = t.features if features is None else features
    stored = {tuple(data[k][i] for k in t.primary_keys): i for i in range(len(data[t.primary_keys[0]]))}
    where = [None if None in key else stored.get(key)
             for key in zip(*(keys.column(k).to_pylist() for k in t.primary_keys), strict=True)]
    batch = store.read_values(t, _pks(t, keys), features)
    assert batch.n == keys.num_rows
    assert batch.found.dtype == bool and batch.found.tolist() == [i is not None for i in where]
    got = batch.to_arrow(t)
    assert got.schema.equals(t.feature_schema(names))
    if names:  # an Arrow table without columns has no rows
        assert_rows(got, [{f: None if i is None else data[f][i] for f in names} for i in where])
    for block in batch.blocks:  # numbers live in numpy blocks of the type's dtype
        assert block.values.shape == (len(block.names), keys.num_rows)
        assert block.values.dtype == np.dtype(block.type.to_pandas_dtype())
        if block.nulls is not None:
            assert block.nulls.shape == block.values.shape and block.nulls.any()
    table_out, found = store.read_batch(t, keys, features)  # the same read with Arrow keys in and out
    assert table_out.schema.equals(got.schema) and found.tolist() == batch.found.tolist()
    assert_rows(table_out, got.to_pylist())


def test_read_values_every_type(store: OnlineStore) -> None:
    t = table(ALL_TYPES, ["id"])
    data = every_type_rows()
    n = len(data["id"])
    store.write_batch(t, rows(t, data, [1] * n))
    ids = [3, 10_000, 0, 3, None, 5, 9, 3]  # present, missing, duplicate, null keys
    keys = pa.table({"id": pa.array(ids, pa.int64())})
    assert_values_match_rows(store, t, data, keys)
    for features in (["f64", "i8", "name", "u64"], ["flag"], ["f32", "f64"], ["i64", "i32"], []):
        assert_values_match_rows(store, t, data, keys, features)
    for one in ([3], [10_000], [None]):  # the one-key (serving) case
        assert_values_match_rows(store, t, data, pa.table({"id": pa.array(one, pa.int64())}))
    numeric = [f.name for f in ALL_TYPES if f.name != "id" and (pa.types.is_integer(f.type)
               or pa.types.is_floating(f.type) or pa.types.is_boolean(f.type))]
    for key in dict.fromkeys(ids):  # one key, numbers only: the stores' single-record fast paths
        for features in (numeric, ["f64", "i8", "u64"], ["flag"], ["i64", "i32"]):
            assert_values_match_rows(store, t, data, pa.table({"id": pa.array([key], pa.int64())}), features)
    assert_values_match_rows(store, t, data, pa.table({"id": pa.array([], pa.int64())}))
    batch = store.read_values(t, ["3"], ["f64", "i16"])
    assert {name for b in batch.blocks for name in b.names} == {"f64", "i16"}


def test_read_values_many_keys(store: OnlineStore) -> None:
    """Enough keys that a store may parse a type's values in bulk (Redis parses 64 or more through
    Arrow): still exactly the written values, nulls, extremes and NaN included."""
    t = table(ALL_TYPES, ["id"])
    data = every_type_rows()
    n = len(data["id"])
    store.write_batch(t, rows(t, data, [1] * n))
    rng = random.Random(11)
    ids = [rng.choice([*data["id"], 10_000, None]) for _ in range(150)]
    keys = pa.table({"id": pa.array(ids, pa.int64())})
    assert_values_match_rows(store, t, data, keys)
    for features in (["f64"], ["i8", "u64", "i64"], ["flag", "f64"]):
        assert_values_match_rows(store, t, data, keys, features)


def test_read_values_composite_keys_and_random_rows(store: OnlineStore) -> None:
    schema = pa.schema([("shop", pa.string()), ("item", pa.int32()), ("x", pa.float64()), ("ok", pa.bool_())])
    t = table(schema, ["shop", "item"])
    rng = random.Random(3)
    shops = ["a", "a#b", "b\\", ""]
    data = {"shop": [], "item": [], "x": [], "ok": []}
    for s in shops:
        for i in range(5):
            data["shop"].append(s)
            data["item"].append(i)
            data["x"].append(rng.choice([None, rng.uniform(-1e6, 1e6), float("nan")]))
            data["ok"].append(rng.choice([None, True, False]))
    store.write_batch(t, rows(t, data, [1] * len(data["shop"])))
    keys = pa.table({"shop": [rng.choice(shops + ["zz"]) for _ in range(30)],
                     "item": pa.array([rng.randrange(7) for _ in range(30)], pa.int32())})
    assert_values_match_rows(store, t, data, keys)
    for i in range(keys.num_rows):  # single keys, with and without nulls among the values
        assert_values_match_rows(store, t, data, keys.slice(i, 1))


def assert_one_key_matches_general(store: OnlineStore, t: OnlineTable, pk: str | None, others: list[str],
                                   features: list[str] | None) -> None:
    """``read_values`` of one key gives what the many-key path gives for that key: blocks of the same
    names, dtypes, values and nulls, and ``arrays`` of the same names (in order), types and values."""
    one = store.read_values(t, [pk], features)
    many = store.read_values(t, [*others, pk], features)  # more than one key: the general decode
    i = len(others)
    assert one.n == 1 and one.names == many.names
    assert one.found.dtype == bool and one.found.shape == (1,) and one.found[0] == many.found[i]
    assert [(b.type, b.names) for b in one.blocks] == [(b.type, b.names) for b in many.blocks]
    for a, b in zip(one.blocks, many.blocks, strict=True):
        assert a.values.dtype == b.values.dtype and a.values.shape == (len(a.names), 1)
        assert a.values.flags.aligned
        expected_nulls = np.zeros((len(b.names), 1), bool) if b.nulls is None else b.nulls[:, i : i + 1]
        got_nulls = np.zeros((len(a.names), 1), bool) if a.nulls is None else a.nulls
        assert a.nulls is None or a.nulls.any()
        np.testing.assert_array_equal(got_nulls, expected_nulls)
        valid = ~got_nulls
        np.testing.assert_array_equal(a.values[valid], b.values[:, i : i + 1][valid])
    assert list(one.arrays) == list(many.arrays)
    for name, arr in one.arrays.items():
        expected = many.arrays[name].slice(i, 1)
        assert arr.type == expected.type, name
        if pa.types.is_dictionary(arr.type):  # the dictionary holds the batch's values: compare decoded
            arr, expected = arr.dictionary_decode(), expected.dictionary_decode()
        assert len(arr) == 1 and arr.null_count == expected.null_count, name
        assert arr.equals(expected) or pa.types.is_floating(arr.type), (name, arr, expected)  # NaN != NaN
        assert same(arr.to_pylist()[0], expected.to_pylist()[0]), name


def test_read_values_one_key_mixed_types_matches_general_path(store: OnlineStore) -> None:
    """The one-key fast paths decode strings, binaries, timestamps, dates, decimals and booleans beside
    numbers exactly as the general decode does, with and without nulls, present or missing."""
    t = table(ALL_TYPES, ["id"])
    data = every_type_rows()
    n = len(data["id"])
    store.write_batch(t, rows(t, data, [1] * n))
    pk = _pks(t, pa.table({"id": pa.array([0], pa.int64())}))[0]
    assert pk == "0"
    mixed = ["f64", "name", "flag", "ts", "i32", "blob", "day", "price", "naive", "u64"]
    subsets = [None, mixed, ["name"], ["ts", "name", "blob"], ["cat", "nothing", "name", "f32"], mixed[::-1]]
    for features in subsets:
        for key in [*map(str, range(n)), "10000", None]:  # every row (each with nulls elsewhere), missing, null
            for _ in range(2):  # the first call prepares the one-key plan, the second one uses it
                assert_one_key_matches_general(store, t, key, ["1", "10000"], features)


def test_read_values_one_key_after_changes(store: OnlineStore) -> None:
    """A feature list changed in place, a rewritten row and a replaced table are all seen by the next
    one-key read (nothing stale is served from what the store prepared for the previous read)."""
    schema = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("s", pa.string()), ("b", pa.bool_())])
    t = table(schema, ["id"])
    store.write_batch(t, rows(t, {"id": [1, 2], "x": [1.5, None], "s": ["a", None], "b": [True, None]}, [1, 1]))
    features = ["x", "s"]
    first = store.read_values(t, ["1"], features)
    assert first.to_arrow(t).to_pylist() == [{"x": 1.5, "s": "a"}]
    features.append("b")  # same list object, new contents
    assert store.read_values(t, ["1"], features).to_arrow(t).to_pylist() == [{"x": 1.5, "s": "a", "b": True}]
    assert store.read_values(t, ["2"], features).to_arrow(t).to_pylist() == [{"x": None, "s": None, "b": None}]
    store.write_batch(t, rows(t, {"id": [1], "x": [2.5], "s": ["bb"], "b": [False]}, [2]))
    assert store.read_values(t, ["1"], features).to_arrow(t).to_pylist() == [{"x": 2.5, "s": "bb", "b": False}]
    store.replace_table(t, [rows(t, {"id": [3], "x": [7.0], "s": ["c"], "b": [True]}, [1])])
    gone = store.read_values(t, ["1"], features)
    assert not gone.found[0] and gone.to_arrow(t).to_pylist() == [{"x": None, "s": None, "b": None}]
    assert store.read_values(t, ["3"], features).to_arrow(t).to_pylist() == [{"x": 7.0, "s": "c", "b": True}]
    store.drop_table(t)
    with pytest.raises(OnlineTableNotFoundError):
        store.read_values(t, ["3"], features)


def test_read_values_one_key_numbers_matches_general_path(store: OnlineStore) -> None:
    """Records of numbers only, complete or with nulls: the one-key path's shortest branch (no null
    anywhere in the record) and its general one agree with the many-key decode."""
    schema = pa.schema([("id", pa.int64()), ("a", pa.float64()), ("b", pa.int32()), ("c", pa.float64()),
                        ("d", pa.bool_()), ("e", pa.uint64()), ("f", pa.int8())])
    t = table(schema, ["id"])
    data = {
        "id": [0, 1, 2, 3],
        "a": [1.5, None, float("nan"), -0.0],
        "b": [7, 8, None, -(2**31)],
        "c": [2.5, 3.5, 4.5, 1e300],
        "d": [True, False, True, None],
        "e": [2**64 - 1, 0, 5, 6],
        "f": [-128, 127, 0, 1],
    }
    store.write_batch(t, rows(t, data, [1] * 4))
    for features in (None, ["c", "a"], ["e", "b", "f", "d"], ["d"], ["a", "c", "b"]):
        for key in ["0", "1", "2", "3", "99"]:
            for _ in range(2):
                assert_one_key_matches_general(store, t, key, ["1", "99"], features)
