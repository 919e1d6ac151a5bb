"""Declarative features equal a brute-force evaluation of the documented window rules.

Random events with ties and values exactly on window edges, every operator and window kind (rolling,
lifetime, tumbling with offsets, sliding, delays, start times): the engine kernel, ``compute_features``
and training sets all agree with :mod:`declarative._oracle`.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from declarative._oracle import Rule, close, evaluate, window_values
from declarative._strategies import BASE, HOUR, UTC, events, queries, windows
from larder import (
    AggregationFunction,
    ApproxCountDistinct,
    ApproxPercentile,
    Avg,
    Count,
    DeltaTableSource,
    FeatureEngineeringClient,
    First,
    FirstN,
    Last,
    LastN,
    Max,
    Min,
    RollingWindow,
    StddevPop,
    StddevSamp,
    Sum,
    VarPop,
    VarSamp,
)
from larder.declarative.compute import window_rule
from larder.offline.aggregate import Aggregation
from larder.offline.engine import get_engine

ENGINES = ["duckdb", "spark"]
#: hypothesis examples per engine: Spark's are bounded to keep the suite fast (one Spark session)
EXAMPLES = {"duckdb": 150, "spark": 8}

NUMERIC_OPS = ["sum", "count", "avg", "min", "max", "stddev_pop", "stddev_samp", "var_pop", "var_samp", "first",
               "last", "first_n", "last_n", "approx_count_distinct", "approx_percentile"]
STRING_OPS = ["count", "min", "max", "first", "last", "first_n", "last_n", "approx_count_distinct"]


def _events_table(evs: list[tuple[object, int | None, object, object, int]]) -> pa.Table:
    return pa.table({"k": pa.array([e[0] for e in evs], pa.int64()), "ts": pa.array([e[1] for e in evs], UTC),
                     "x": pa.array([e[2] for e in evs], pa.float64()), "s": pa.array([e[3] for e in evs], pa.string()),
                     "i": pa.array([e[4] for e in evs], pa.int64())})


def _check(out: pa.Table, evs: list, qs: list, rule: Rule, specs: list[tuple[str, str, dict]]) -> None:
    col_of = {"x": 2, "s": 3, "i": 4}
    for name, (op, column, params) in zip(out.column_names, specs, strict=True):
        got = out.column(name).to_pylist()
        rows = [(e[0], e[1], e[col_of[column]]) for e in evs]
        for qi, (k, t) in enumerate(qs):
            exp = evaluate(op, window_values(rows, k, t, rule), **params)
            assert close(exp, got[qi], scale=1e6), (op, column, k, t, exp, got[qi])


# --------------------------------------------------------------------------- the kernel


@pytest.mark.parametrize("engine_name", ENGINES)
def test_engine_aggregate_matches_the_oracle(engine_name, request):
    """Each engine against the oracle: DuckDB's kernel in process; on Spark the kernel per entity bucket
    on the executors (Arrow in, Arrow out), with fewer examples (each one is a few Spark jobs)."""
    engine = get_engine() if engine_name == "duckdb" else request.getfixturevalue("spark_engine")

    @settings(max_examples=EXAMPLES[engine_name], deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(evs=events(), qs=queries(), win=windows(), data=st.data())
    def check(evs, qs, win, data):
        _aggregate_matches_the_oracle(engine, evs, qs, win, data)

    check()


def _aggregate_matches_the_oracle(engine, evs, qs, win, data):
    window, rule = win
    ops = data.draw(st.lists(st.sampled_from(NUMERIC_OPS), min_size=1, max_size=5, unique=True))
    sops = data.draw(st.lists(st.sampled_from(STRING_OPS), min_size=0, max_size=3, unique=True))
    n = data.draw(st.integers(1, 3))
    p = data.draw(st.sampled_from([0.0, 0.25, 0.5, 0.9, 1.0]))
    specs: list[tuple[str, str, dict]] = []
    aggs = []
    wr = window_rule(window)  # type: ignore[arg-type]
    for column, chosen in (("x", ops), ("s", sops), ("i", ["sum", "avg", "min"] if "sum" in ops else [])):
        for op in chosen:
            params = {"n": n} if op in ("first_n", "last_n") else {"percentile": p} if op == "approx_percentile" else {}
            aggs.append(Aggregation(f"{op}_{column}", op, column, wr, **params))
            specs.append((op, column, params))
    q = pa.table({"k": pa.array([x[0] for x in qs], pa.int64()), "ts": pa.array([x[1] for x in qs], UTC)})
    out = engine.aggregate(_events_table(evs), q, entity=["k"], timestamp="ts", query_timestamp="ts",
                           aggregations=aggs)
    assert out.num_rows == len(qs)
    _check(out, evs, qs, rule, specs)


def test_peers_do_not_depend_on_source_order():
    """Ties at one timestamp: first/last/first_n and float sums are the same whatever the row order."""
    evs = [(1, BASE, v, None, 0) for v in (0.1, 1e16, -1e16, 0.7, None, 3.0)]
    q = pa.table({"k": [1], "ts": pa.array([BASE + HOUR], UTC)})
    rule = window_rule(RollingWindow(window_duration=dt.timedelta(hours=2)))
    aggs = [Aggregation(op, op, "x", rule, n=2 if op.endswith("_n") else None)
            for op in ("sum", "first", "last", "first_n", "last_n", "avg", "var_samp")]
    results = set()
    for perm in ([0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [2, 0, 4, 1, 5, 3]):
        t = _events_table([evs[i] for i in perm])
        out = get_engine().aggregate(t, q, entity=["k"], timestamp="ts", query_timestamp="ts", aggregations=aggs)
        results.add(repr(out.to_pylist()))
    assert len(results) == 1
    row = eval(results.pop(), {"nan": float("nan")})[0]
    assert row["first"] is None and row["last"] == 1e16 and row["last_n"] == [3.0, 1e16]


def test_a_window_value_depends_only_on_its_events():
    """The same window computed with unrelated events added (other keys, older rows) has the same bits:
    what makes incremental and full computations agree exactly."""
    import numpy as np

    rng = np.random.default_rng(7)
    n = 5000
    k = rng.integers(0, 20, n)
    ts = BASE + rng.integers(0, 1000, n) * HOUR // 10
    x = rng.normal(0, 1, n) * 10.0 ** rng.integers(-6, 9, n)
    full = pa.table({"k": k, "ts": pa.array(ts, UTC), "x": x})
    q = pa.table({"k": np.full(50, 3), "ts": pa.array(BASE + rng.integers(900, 1100, 50) * HOUR // 10, UTC)})
    rule = window_rule(RollingWindow(window_duration=dt.timedelta(hours=7)))
    aggs = [Aggregation(op, op, "x", rule) for op in ("sum", "avg", "var_pop", "stddev_samp")]
    a = get_engine().aggregate(full, q, entity=["k"], timestamp="ts", query_timestamp="ts", aggregations=aggs)
    recent = full.filter(pa.compute.and_(pa.compute.equal(full.column("k"), 3),
                                         pa.compute.greater_equal(full.column("ts"),
                                                                  pa.scalar(BASE + 80 * HOUR, UTC))))
    b = get_engine().aggregate(recent, q, entity=["k"], timestamp="ts", query_timestamp="ts", aggregations=aggs)
    for name in a.column_names:
        assert np.array_equal(a.column(name).to_numpy(zero_copy_only=False),
                              b.column(name).to_numpy(zero_copy_only=False), equal_nan=True), name


# --------------------------------------------------------------------------- through the client

OPERATORS = {"sum": Sum, "count": Count, "avg": Avg, "min": Min, "max": Max, "stddev_pop": StddevPop,
             "stddev_samp": StddevSamp, "var_pop": VarPop, "var_samp": VarSamp, "first": First, "last": Last,
             "approx_count_distinct": ApproxCountDistinct}


def _operator(op: str, column: str, n: int, p: float):
    if op == "first_n":
        return FirstN(input=column, n=n)
    if op == "last_n":
        return LastN(input=column, n=n)
    if op == "approx_percentile":
        return ApproxPercentile(percentile=p, input=column)
    return OPERATORS[op](input=column)


#: client-level examples per engine (each Spark one creates a table and runs several Spark jobs)
CLIENT_EXAMPLES = {"duckdb": 20, "spark": 3}


@pytest.mark.parametrize("engine_name", ENGINES)
def test_compute_features_and_training_sets_match_the_oracle(engine_name, request):
    """On each engine; on Spark compute_features and load_df return Spark DataFrames with the same values."""
    if engine_name == "spark":
        request.getfixturevalue("spark")  # the test session's SparkSession is the active one

    @settings(max_examples=CLIENT_EXAMPLES[engine_name], deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(evs=events(n_max=30 if engine_name == "duckdb" else 20), qs=queries(), win=windows(), data=st.data())
    def check(evs, qs, win, data):
        with tempfile.TemporaryDirectory() as root:
            (Path(root) / "larder.yaml").write_text(f"engine: {engine_name}\n")
            with FeatureEngineeringClient(root=root) as fe:
                assert fe._ctx.engine.name == engine_name
                _client_matches_the_oracle(fe, evs, qs, win, data,
                                           (lambda df: df) if engine_name == "duckdb" else (lambda df: df.toPandas()))

    check()


def _client_matches_the_oracle(fe, evs, qs, win, data, as_pandas):
    evs = [e for e in evs if e[0] is not None and e[1] is not None]  # a feature table: keys and times not null
    window, rule = win
    ops = data.draw(st.lists(st.sampled_from(NUMERIC_OPS), min_size=1, max_size=4, unique=True))
    n, p = data.draw(st.integers(1, 3)), data.draw(st.sampled_from([0.1, 0.5, 1.0]))
    frame = pd.DataFrame({"id": range(len(evs)), "k": pd.array([e[0] for e in evs], "Int64"),
                          "ts": pd.to_datetime([e[1] for e in evs], unit="us", utc=True),
                          "x": pd.array([e[2] for e in evs], "Float64")})
    frame["ts"] = frame["ts"].astype("datetime64[us, UTC]")
    fe.create_table("events", "id", df=frame if len(evs) else None,
                    schema=pa.schema([("id", pa.int64()), ("k", pa.int64()), ("ts", UTC), ("x", pa.float64())]))
    src = DeltaTableSource(catalog_name="main", schema_name="default", table_name="events")
    feats = [fe.create_feature(source=src, function=AggregationFunction(_operator(op, "x", n, p), window),
                               catalog_name="main", schema_name="default", entity=["k"], timeseries_column="ts",
                               name=f"f_{op}") for op in ops]
    rows = [(e[0], e[1], e[2]) for e in evs]
    params = [({"n": n} if op in ("first_n", "last_n") else {"percentile": p} if op == "approx_percentile"
               else {}) for op in ops]

    computed = as_pandas(fe.compute_features(features=feats))
    points = sorted({(e[0], e[1]) for e in evs})
    assert list(zip(computed["k"], computed["ts"].dt.as_unit("us").astype("int64"), strict=True)) == points
    for op, prm, f in zip(ops, params, feats, strict=True):
        for (k, t), got in zip(points, computed[f.name].tolist(), strict=True):
            exp = evaluate(op, window_values(rows, k, t, rule), **prm)
            assert close(exp, _plain(got), scale=1e6), ("compute_features", op, k, t, exp, got)

    labels = pd.DataFrame({"k": pd.array([q[0] for q in qs], "Int64"),
                           "ts": pd.to_datetime([q[1] for q in qs], unit="us", utc=True), "y": range(len(qs))})
    labels["ts"] = labels["ts"].astype("datetime64[us, UTC]")
    training = as_pandas(fe.create_training_set(labels, label="y", features=feats).load_df())
    assert training["y"].tolist() == list(range(len(qs)))
    for op, prm, f in zip(ops, params, feats, strict=True):
        for (k, t), got in zip(qs, training[f.name].tolist(), strict=True):
            exp = evaluate(op, window_values(rows, k, t, rule), **prm)
            assert close(exp, _plain(got), scale=1e6), ("training set", op, k, t, exp, got)


def _plain(value: object) -> object:
    """pandas' rendering back to the oracle's: NaN from a null is None, arrays are lists."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if value is pd.NA or value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def test_partitioned_evaluation_equals_one_pass(monkeypatch):
    """Large inputs are evaluated one key partition at a time: the same values, in the queries' order."""
    import numpy as np

    from larder.offline import aggregate as kernel

    rng = np.random.default_rng(3)
    n = 20_000
    k = pa.array(rng.integers(0, 300, n)).cast(pa.string())  # string keys: coded, not used as numbers
    ev = pa.table({"k": pa.array(np.where(rng.random(n) < 0.01, None, k.to_numpy(zero_copy_only=False))),
                   "ts": pa.array(BASE + rng.integers(0, 200, n) * HOUR // 4, UTC), "x": rng.normal(size=n)})
    q = pa.table({"k": pa.array([None, "7", "299", "nope", *k.to_pylist()[:500]]),
                  "ts": pa.array(BASE + rng.integers(0, 210, 504) * HOUR // 4, UTC)})
    rule = window_rule(RollingWindow(window_duration=dt.timedelta(hours=9)))
    aggs = [Aggregation(op, op, "x", rule, n=2 if op.endswith("_n") else None, percentile=0.5)
            for op in NUMERIC_OPS]
    whole = get_engine().aggregate(ev, q, entity=["k"], timestamp="ts", query_timestamp="ts", aggregations=aggs)
    monkeypatch.setattr(kernel, "PARTITION_ROWS", 1000)
    monkeypatch.setattr(kernel, "SPILL_BATCH_ROWS", 777)  # spilled in several batches
    split = get_engine().aggregate(ev, q, entity=["k"], timestamp="ts", query_timestamp="ts", aggregations=aggs)
    assert repr(split.to_pylist()) == repr(whole.to_pylist())


def test_partitioned_evaluation_two_key_columns(monkeypatch):
    """A two-column entity (an int and a string part, nulls in both) split into partitions in steps:
    the same values as one pass, and a key's events and queries always meet."""
    import numpy as np

    from larder.offline import aggregate as kernel

    rng = np.random.default_rng(4)
    n = 12_000
    a = np.where(rng.random(n) < 0.01, None, rng.integers(0, 20, n))
    b = np.where(rng.random(n) < 0.01, None, rng.integers(0, 15, n).astype(str))
    ev = pa.table({"a": pa.array(a.tolist(), pa.int64()), "b": pa.array(b.tolist(), pa.string()),
                   "ts": pa.array(BASE + rng.integers(0, 200, n) * HOUR // 4, UTC), "x": rng.normal(size=n)})
    q = pa.table({"a": pa.array([None, 3, 99, *a[:300].tolist()], pa.int64()),
                  "b": pa.array([None, "4", "x", *b[:300].tolist()], pa.string()),
                  "ts": pa.array(BASE + rng.integers(0, 210, 303) * HOUR // 4, UTC)})
    rule = window_rule(RollingWindow(window_duration=dt.timedelta(hours=9)))
    aggs = [Aggregation("s", "sum", "x", rule), Aggregation("c", "count", "x", rule),
            Aggregation("l", "last", "x", rule)]
    whole = get_engine().aggregate(ev, q, entity=["a", "b"], timestamp="ts", query_timestamp="ts", aggregations=aggs)
    assert pc.sum(whole.column("c")).as_py() > 0
    monkeypatch.setattr(kernel, "PARTITION_ROWS", 500)
    monkeypatch.setattr(kernel, "SPILL_BATCH_ROWS", 1000)
    split = get_engine().aggregate(ev, q, entity=["a", "b"], timestamp="ts", query_timestamp="ts", aggregations=aggs)
    assert repr(split.to_pylist()) == repr(whole.to_pylist())


def test_streamed_events_equal_a_table(monkeypatch):
    """Events given as :class:`EventBatches` (a source read batch by batch) get the values of the same
    events as a table: small streams in one pass, large ones spilled by key partition, with keys no
    query has, dictionary-encoded keys and batches of odd sizes."""
    import numpy as np

    from larder.offline import aggregate as kernel
    from larder.offline.aggregate import EventBatches

    rng = np.random.default_rng(5)
    n = 9_000
    keys = pa.array(rng.integers(0, 400, n).astype(str)).dictionary_encode()
    ev = pa.table({"k": keys, "ts": pa.array(BASE + rng.integers(0, 200, n) * HOUR // 4, UTC),
                   "x": rng.normal(size=n), "unused": rng.normal(size=n)})
    q = pa.table({"k": pa.array([str(v) for v in rng.integers(0, 300, 700)] + ["nope"]),
                  "ts": pa.array(BASE + rng.integers(0, 210, 701) * HOUR // 4, UTC)})
    rule = window_rule(RollingWindow(window_duration=dt.timedelta(hours=9)))
    aggs = [Aggregation(op, op, "x", rule, n=2 if op.endswith("_n") else None, percentile=0.5)
            for op in NUMERIC_OPS]
    whole = get_engine().aggregate(ev, q, entity=["k"], timestamp="ts", query_timestamp="ts", aggregations=aggs)
    assert pc.sum(whole.column("count")).as_py() > 0
    stream = EventBatches(ev.schema, lambda: iter(ev.to_batches(max_chunksize=333)), ev.num_rows)
    one_pass = get_engine().aggregate(stream, q, entity=["k"], timestamp="ts", query_timestamp="ts",
                                      aggregations=aggs)
    assert repr(one_pass.to_pylist()) == repr(whole.to_pylist())
    monkeypatch.setattr(kernel, "PARTITION_ROWS", 700)
    spilled = get_engine().aggregate(stream, q, entity=["k"], timestamp="ts", query_timestamp="ts",
                                     aggregations=aggs)
    assert repr(spilled.to_pylist()) == repr(whole.to_pylist())
    none = get_engine().aggregate(stream, q.slice(0, 0), entity=["k"], timestamp="ts", query_timestamp="ts",
                                  aggregations=aggs)
    assert none.num_rows == 0 and none.column_names == [a.output for a in aggs]


@pytest.mark.parametrize("sql", [{}, {"filter_condition": "x > -0.5"},
                                 {"transformation_sql": "k, ts, x * 2 AS x", "filter_condition": "x < 1"}])
def test_training_set_streams_a_partitioned_delta_source(tmp_path, monkeypatch, sql):
    """A training set reads a Delta source batch by batch (through its SQL when it has some) and, when
    the source is large, evaluates it by key partition: the values equal the kernel's over the source
    read whole (``load_source``)."""
    with FeatureEngineeringClient(root=tmp_path) as fe:
        _streamed_training_set(fe, monkeypatch, sql)


@pytest.mark.dynamodb
def test_training_set_streams_a_delta_source_on_s3(tmp_path, monkeypatch, s3_storage):
    """The same over a Delta source in an object store (moto's S3 API): the files read through the
    store's filesystem, and through DuckDB's scan of them for the source's SQL."""
    import yaml

    (tmp_path / "larder.yaml").write_text(yaml.safe_dump(s3_storage))
    with FeatureEngineeringClient(root=tmp_path) as fe:
        assert not fe._ctx.storage.table_location("main", "default", "ev").is_local
        _streamed_training_set(fe, monkeypatch, {"transformation_sql": "k, ts, x * 2 AS x",
                                                 "filter_condition": "x < 1"})
        _streamed_training_set(fe, monkeypatch, {}, name="ev2")


def _streamed_training_set(fe, monkeypatch, sql, name="ev"):
    import numpy as np

    from larder.declarative.compute import aggregation_for, load_source
    from larder.offline import aggregate as kernel

    rng = np.random.default_rng(6)
    n = 6_000
    ev = pd.DataFrame({"id": np.arange(n), "k": rng.integers(0, 150, n),
                       "ts": pd.to_datetime(BASE + rng.integers(0, 300, n) * HOUR // 4, unit="us", utc=True),
                       "x": rng.normal(size=n)})
    fe.create_table(f"main.default.{name}", "id", df=ev.iloc[:3000])
    fe.write_table(f"main.default.{name}", ev.iloc[3000:], mode="merge")  # two files
    src = DeltaTableSource(catalog_name="main", schema_name="default", table_name=name, **sql)
    feats = [fe.create_feature(source=src, entity=["k"], timeseries_column="ts", name=f"{name}_{fname}",
                               function=AggregationFunction(op, RollingWindow(window_duration=dt.timedelta(hours=h))),
                               catalog_name="main", schema_name="default")
             for fname, op, h in [("s9", Sum("x"), 9), ("a30", Avg("x"), 30), ("l5", Last("x"), 5)]]
    labels = pd.DataFrame({"k": rng.integers(0, 160, 800),
                           "ts": pd.to_datetime(BASE + rng.integers(0, 310, 800) * HOUR // 4, unit="us", utc=True)})
    monkeypatch.setattr(kernel, "PARTITION_ROWS", 400)
    monkeypatch.setattr(kernel, "SPILL_BATCH_ROWS", 500)
    got = fe.create_training_set(df=labels, features=feats, label=None).load_df()
    rows = load_source(fe._tables, feats[0], columns=["k", "ts", "x"]).rows
    q = pa.Table.from_pandas(labels, preserve_index=False)
    want = get_engine().aggregate(rows, q, entity=["k"], timestamp="ts", query_timestamp="ts",
                                  aggregations=[aggregation_for(f) for f in feats])
    assert rows.num_rows < n if sql.get("filter_condition") else rows.num_rows == n
    for f in feats:
        assert repr(got[f.name].tolist()) == repr(want.column(f.name).to_pandas().tolist()), f.name
    assert got[f"{name}_s9"].notna().sum() > 100


def test_a_large_aggregation_shows_its_progress(monkeypatch):
    """An input split into key partitions draws a bar for each step (the split, the partitions), and
    none when progress is disabled."""
    import io

    import numpy as np
    from rich.console import Console

    from larder import progress
    from larder.offline import aggregate as kernel

    rng = np.random.default_rng(7)
    n = 3_000
    ev = pa.table({"k": rng.integers(0, 50, n), "ts": pa.array(BASE + rng.integers(0, 100, n) * HOUR, UTC),
                   "x": rng.normal(size=n)})
    q = pa.table({"k": rng.integers(0, 50, 200), "ts": pa.array(BASE + rng.integers(0, 100, 200) * HOUR, UTC)})
    aggs = [Aggregation("s", "sum", "x", window_rule(RollingWindow(window_duration=dt.timedelta(hours=5))))]
    monkeypatch.setattr(kernel, "PARTITION_ROWS", 500)
    monkeypatch.setattr(kernel, "PROGRESS_MIN_EVENTS", 1)
    for enabled in (True, False):
        drawn = io.StringIO()
        monkeypatch.setattr(progress, "console", Console(file=drawn, force_terminal=True, width=160))
        monkeypatch.setenv("LARDER_DISABLE_PROGRESS", "0" if enabled else "1")
        got = kernel.aggregate(ev, q, entity=["k"], timestamp="ts", query_timestamp="ts", aggregations=aggs)
        assert got.num_rows == 200
        text = drawn.getvalue()
        if enabled:
            assert "3,000 events split by key" in text and "200 rows in 6 key partitions" in text, text[-500:]
        else:
            assert text == ""
