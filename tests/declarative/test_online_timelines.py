"""Timelines (the online representation) give, at any request time after the materialization, exactly
the value the offline kernel computes for that time: same bits, every operator and window kind."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from declarative._strategies import BASE, HOUR, UTC, events, windows
from larder.declarative import (
    AggregationFunction,
    ApproxCountDistinct,
    ApproxPercentile,
    Avg,
    Count,
    DataFrameSource,
    Feature,
    First,
    FirstN,
    Last,
    LastN,
    Max,
    Min,
    StddevPop,
    StddevSamp,
    Sum,
    VarPop,
    VarSamp,
)
from larder.declarative.compute import aggregation_for, evaluate_features
from larder.declarative.online import (
    HEAD_FROM,
    HEAD_KEY,
    HEAD_UNTIL,
    KIND_BOOL,
    KIND_FLOAT,
    KIND_INT,
    KIND_JSON,
    TIMELINES,
    _kind,
    empty_value,
    encode_group,
    encode_section,
    feature_value,
    from_plain,
    group_bounds,
    online_rows,
    section_matrix,
    section_values,
    timelines_of,
)
from larder.offline.engine import get_engine


def _value(rows: pa.Table, row: int, feature: str, t: int) -> tuple[object, bool]:
    """A feature's value at ``t`` in row ``row`` of ``online_rows``' output."""
    blob = rows.column(TIMELINES)[row].as_py()
    return feature_value(blob, timelines_of(rows.schema)[feature], t)


OPS = [lambda c: Sum(c), lambda c: Count(c), lambda c: Avg(c), lambda c: Min(c), lambda c: Max(c),
       lambda c: StddevPop(c), lambda c: StddevSamp(c), lambda c: VarPop(c), lambda c: VarSamp(c),
       lambda c: First(c), lambda c: Last(c), lambda c: FirstN(c, 2), lambda c: LastN(c, 3),
       lambda c: ApproxCountDistinct(c), lambda c: ApproxPercentile(0.5, c)]


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evs=events(n_max=50), win=windows(), data=st.data())
def test_timelines_equal_offline_values_at_every_later_time(evs, win, data):
    evs = [e for e in evs if e[0] is not None]
    window, _ = win
    t0 = BASE + data.draw(st.integers(-2, 26)) * HOUR + data.draw(st.sampled_from([0, 1, -1]))
    table = pa.table({"k": pa.array([e[0] for e in evs], pa.int64()), "ts": pa.array([e[1] for e in evs], UTC),
                      "x": pa.array([e[2] for e in evs], pa.float64()),
                      "s": pa.array([e[3] for e in evs], pa.string())})
    src = DataFrameSource(dataframe=table)
    chosen = data.draw(st.lists(st.integers(0, len(OPS) - 1), min_size=1, max_size=6, unique=True))
    feats = [Feature(source=src, function=AggregationFunction(OPS[i]("s" if i in (1, 4, 9, 12, 13) and
                                                                       data.draw(st.booleans()) else "x"), window),
                     entity=["k"], timeseries_column="ts", name=f"f{i}") for i in chosen]
    engine = get_engine()
    rows, info = online_rows(engine, None, feats, as_of=t0)
    assert info["keys"] == len({e[0] for e in evs if e[1] is not None} | {e[0] for e in evs})
    times = sorted({t0, t0 + 1, *(t0 + data.draw(st.integers(0, 40)) * HOUR // 2 + data.draw(st.sampled_from([0, 1, -1]))
                                   for _ in range(6))})
    times = [t for t in times if t >= t0]
    key_row = {k: i for i, k in enumerate(rows.column("k").to_pylist())}
    qk = [k for k in [1, 2, 3, 9] for _ in times]
    qt = [t for _ in [1, 2, 3, 9] for t in times]
    offline = evaluate_features(engine, None, feats, pa.table({"k": qk, "ts": pa.array(qt, UTC)}))
    assert sorted(timelines_of(rows.schema)) == sorted(f.name for f in feats)
    for f in feats:
        typ = offline.column(f.name).type
        expected = offline.column(f.name).to_pylist()
        for i, (k, t) in enumerate(zip(qk, qt, strict=True)):
            if k in key_row:
                value, known = _value(rows, key_row[k], f.name, t)
                assert known
                got = from_plain([value], typ).to_pylist()[0]
            else:
                got = empty_value(f.function, aggregation_for(f).window, t)
            assert _same(got, expected[i]), (f.name, k, t, got, expected[i])
    # number features' heads: the value at t0, held (the timelines agree) from HEAD_FROM until HEAD_UNTIL
    heads = dict(json.loads(rows.schema.field(TIMELINES).metadata[HEAD_KEY]))
    assert sorted(heads) == sorted(f.name for f in feats if offline.column(f.name).type in (pa.float64(), pa.int64()))
    lo, hi = rows.column(HEAD_FROM).to_pylist(), rows.column(HEAD_UNTIL).to_pylist()
    for row in range(rows.num_rows):
        assert lo[row] <= t0 < hi[row]
        for name, column in heads.items():
            head = rows.column(column)[row].as_py()
            for t in {lo[row], t0, min(hi[row] - 1, t0 + 10**12)} if lo[row] > -2**63 else {t0}:
                value, known = _value(rows, row, name, t)
                assert known and _same(from_plain([value], rows.column(column).type).to_pylist()[0], head), \
                    (name, row, t, value, head)


def test_requests_older_than_the_state_are_unknown():
    ts = pa.array([BASE, BASE + 5 * HOUR], UTC)
    src = DataFrameSource(dataframe=pa.table({"k": [1, 1], "ts": ts, "x": [1.0, 2.0]}))
    from larder.declarative import RollingWindow

    f = Feature(source=src, function=AggregationFunction(Sum("x"), RollingWindow(window_duration=dt.timedelta(hours=2))),
                entity=["k"], timeseries_column="ts", name="s")
    rows, _ = online_rows(get_engine(), None, [f], as_of=BASE + 6 * HOUR)
    assert _value(rows, 0, "s", BASE + 6 * HOUR) == (2.0, True)
    assert _value(rows, 0, "s", BASE + 5 * HOUR + 1) == (2.0, True)  # the value at T has held since then
    assert _value(rows, 0, "s", BASE + 5 * HOUR) == (None, False)  # before: not what the store knows
    assert _value(rows, 0, "s", BASE + 7 * HOUR) == (2.0, True)
    assert _value(rows, 0, "s", BASE + 7 * HOUR + 1) == (None, True)  # the event left the window
    assert timelines_of(pa.schema([("k", pa.int64())])) == {}


def test_section_encoding_round_trips_every_kind():
    """A section of each kind, as the second of a key's sections: values before the first change and
    after each, nulls kept, the value's own type back."""
    pts = np.array([10, 20], dtype=np.int64)
    arrays = [pa.array([1.5, None, float("nan")]), pa.array([1, None, -(2**62)]), pa.array([True, None, False]),
              pa.array(["a", None, "ü"]), pa.array([[1.0, None], None, []], pa.list_(pa.float64())),
              pa.array([0, None, 1_700_000_000_000_000], pa.timestamp("us", tz="UTC")),
              pa.array([dt.date(2024, 1, 1), None, dt.date(1970, 1, 2)], pa.date32())]
    assert {_kind(a.type) for a in arrays} == {KIND_FLOAT, KIND_INT, KIND_BOOL, KIND_JSON}
    for arr in arrays:
        kind = _kind(arr.type)
        pair = [arr, arr]  # two features of the section
        blob = encode_group([b"", encode_section(kind, pts, section_matrix(kind, pair), -5, 2)])
        start, end = group_bounds(blob)[1]
        assert section_values(blob, start, end, -6) is None  # before the first value holds
        got = [section_values(blob, start, end, t) for t in (-5, 15, 25)]
        for column in (0, 1):
            back = from_plain([row[column] for row in got], arr.type)  # type: ignore[index]
            assert back.type == arr.type
            assert repr(back.to_pylist()) == repr(arr.to_pylist())


def test_the_rows_of_some_keys_are_those_keys_rows_of_every_key(tmp_path):
    """``online_rows(keys=...)`` (what an incremental materialization recomputes) gives exactly the rows
    the keys have among every key's rows, bit for bit: with an entity of two columns (the read filter
    keeps a superset, each column's values), a filter_condition, and a transformation_sql that computes
    an entity column (no read filter then)."""
    from larder import DeltaTableSource, FeatureEngineeringClient, RollingWindow

    rng = np.random.default_rng(3)
    n = 300
    table = pa.table({"id": np.arange(n), "a": rng.integers(0, 4, n), "b": rng.choice(["x", "y", "z"], n),
                      "ts": pa.array([BASE + int(h) * HOUR + int(e) for h, e in
                                      zip(rng.integers(0, 30, n), rng.integers(-1, 2, n), strict=True)], UTC),
                      "v": rng.integers(-5, 5, n).astype(float)})
    with FeatureEngineeringClient(root=tmp_path) as fe:
        fe.create_table("ev", "id", df=table)
        sources = [DeltaTableSource(catalog_name="main", schema_name="default", table_name="ev"),
                   DeltaTableSource(catalog_name="main", schema_name="default", table_name="ev",
                                    filter_condition="v > -3"),
                   DeltaTableSource(catalog_name="main", schema_name="default", table_name="ev",
                                    transformation_sql="id, a * 10 AS a, b, ts, v")]
        keys = pa.table({"a": pa.array([1, 2, 9], pa.int64()), "b": ["x", "y", "x"]})
        for i, src in enumerate(sources):
            if src.transformation_sql:
                keys = keys.set_column(0, "a", pa.array([10, 20, 9], pa.int64()))
            feats = [Feature(source=src, function=AggregationFunction(op, RollingWindow(window_duration=w)),
                             entity=["a", "b"], timeseries_column="ts", name=f"f{j}")
                     for j, (op, w) in enumerate([(Sum("v"), dt.timedelta(hours=5)), (Count("v"), None),
                                                  (LastN("v", 2), dt.timedelta(hours=3))])]
            every, _ = online_rows(get_engine(), fe._tables, feats, as_of=BASE + 24 * HOUR)
            some, info = online_rows(get_engine(), fe._tables, feats, as_of=BASE + 24 * HOUR, keys=keys)
            assert info["keys"] == 2 and some.schema == every.schema, i  # (9, x) has no rows
            got = {(r["a"], r["b"]): r for r in some.to_pylist()}
            want = {(r["a"], r["b"]): r for r in every.to_pylist() if (r["a"], r["b"]) in got}
            assert sorted(got) == sorted(zip(keys.column("a").to_pylist()[:2], ["x", "y"], strict=True)), i
            assert got == want, i
