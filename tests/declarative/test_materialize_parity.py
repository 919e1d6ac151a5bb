"""After ``materialize_features`` to SQLite, Redis and DynamoDB (moto_server), online values at several
request times equal the offline values at those times (the training set, and the materialized Delta
tables equal ``compute_features``), for every operator and window kind, before and after an
incremental run; and a logged model's pyfunc reading them online predicts what the model predicts on
the training set.
"""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pandas as pd
import pytest

from larder import (
    AggregationFunction,
    ApproxCountDistinct,
    ApproxPercentile,
    Avg,
    ColumnSelection,
    Count,
    DeltaTableSource,
    FeatureEngineeringClient,
    First,
    FirstN,
    Last,
    LastN,
    Max,
    Min,
    OfflineStoreConfig,
    OnlineStoreConfig,
    RollingWindow,
    SlidingWindow,
    StddevPop,
    StddevSamp,
    Sum,
    TableTrigger,
    TumblingWindow,
    VarPop,
    VarSamp,
)
from larder.declarative.schedule import run_due
from larder.online.stores.specs import DynamoDBStoreSpec, RedisStoreSpec

HOUR = pd.Timedelta(hours=1)
US = pd.Timedelta(microseconds=1)
D = dt.timedelta
# events end an hour before the real clock, so that the materialization (at the real time) sees them all
T0 = pd.Timestamp.now(tz="UTC").floor("h") - 37 * HOUR

WINDOWS = [
    RollingWindow(window_duration=D(hours=6)),
    RollingWindow(window_duration=D(hours=10), delay=D(hours=2)),
    RollingWindow(window_duration=None),
    TumblingWindow(window_duration=D(hours=4), offset=D(hours=1)),
    SlidingWindow(window_duration=D(hours=8), slide_duration=D(hours=3), offset=D(hours=2)),
]
OPERATORS = [Sum("x"), Count("item"), Avg("x"), Min("item"), Max("x"), StddevPop("x"), StddevSamp("x"), VarPop("x"),
             VarSamp("x"), First("item"), Last("x"), FirstN("item", 2), LastN("x", 3), ApproxCountDistinct("item"),
             ApproxPercentile(0.75, "x"), Sum("qty")]


def _spec(kind: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:10]
    if kind == "sqlite":
        return None  # the created store's own SQLite file
    if kind == "redis":
        return RedisStoreSpec(url=request.getfixturevalue("redis_url"), key_prefix=f"t{tag}")
    return DynamoDBStoreSpec(endpoint_url=request.getfixturevalue("moto_endpoint"), region="us-east-1",
                             table_prefix=f"t{tag}__")


def _events(first_id: int, n: int, start: pd.Timestamp, hours: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    at = rng.integers(0, hours, n)
    ts = [start + int(h) * HOUR + int(e) * US for h, e in zip(at, rng.choice([0, 0, 0, 1, -1], n), strict=True)]
    x = rng.integers(-20, 20, n).astype(float) / 4
    x[rng.random(n) < 0.05] = np.nan  # a value, not a null
    return pd.DataFrame({
        "event_id": np.arange(first_id, first_id + n), "user_id": rng.integers(0, 6, n), "ts": ts,
        "x": pd.array(np.where(rng.random(n) < 0.1, None, x), dtype="Float64"),
        "item": pd.array(rng.choice(["a", "b", "c", None], n), dtype="string"),
        "qty": rng.integers(0, 5, n),
    }).astype({"ts": "datetime64[us, UTC]"})


def _features(fe: FeatureEngineeringClient) -> list:
    src = DeltaTableSource(catalog_name="main", schema_name="default", table_name="events")
    features = [fe.create_feature(source=src, function=AggregationFunction(op, WINDOWS[i % len(WINDOWS)]),
                                  catalog_name="main", schema_name="default", entity=["user_id"],
                                  timeseries_column="ts", name=f"f{i}_{op.name}")
                for i, op in enumerate(OPERATORS)]
    features.append(fe.create_feature(source=src, function=ColumnSelection("qty"), catalog_name="main",
                                      schema_name="default", entity=["user_id"], timeseries_column="ts"))
    return features


def _requests(at: pd.Timestamp, users: int = 7) -> pd.DataFrame:
    """Request times from the materialization time on: at it, a microsecond later, beside the hour edges
    where windows change, and far later; users 0-5 have events, 6 has none."""
    edge = at.ceil("h")
    times = [at, at + US, edge - US, edge, edge + US, edge + 3 * HOUR, edge + 6 * HOUR + US, edge + 8 * HOUR,
             edge + 9 * HOUR - US, at + 30 * HOUR]
    return pd.DataFrame({"user_id": [u for _ in times for u in range(users)],
                         "ts": [t for t in times for _ in range(users)]}).astype({"ts": "datetime64[us, UTC]"})


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return repr(list(a)) == repr(list(b))  # type: ignore[arg-type]
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return repr(a) == repr(b)


def _check_offline_tables(fe: FeatureEngineeringClient, features: list) -> None:
    """Each feature's materialized table holds exactly compute_features' rows for it, bit for bit."""
    for f in features:
        table = fe.read_table(f"main.default.mat_{f.name}").sort_values(["user_id", "ts"]).reset_index(drop=True)
        want = fe.compute_features(features=[f]).sort_values(["user_id", "ts"]).reset_index(drop=True)
        assert list(table.columns) == ["user_id", "ts", f.name]
        assert len(table) == len(want), f.name
        assert (table["ts"] == want["ts"]).all() and (table["user_id"] == want["user_id"]).all()
        for a, b in zip(table[f.name], want[f.name], strict=True):
            assert _same(a, b) or (pd.isna(a) is True and pd.isna(b) is True), (f.name, a, b)


def _check_online(fe: FeatureEngineeringClient, features: list, at: pd.Timestamp, kind: str,
                  users: int = 7) -> None:
    requests = _requests(at, users)
    training = fe.create_training_set(requests, label=None, features=features)
    offline = training.load_df()
    online = fe.get_online_features(training.feature_spec, requests)
    assert list(online.columns) == list(offline.columns)
    for f in features:
        for r, (a, b) in enumerate(zip(offline[f.name], online[f.name], strict=True)):
            assert _same(a, b), (kind, f.name, requests.iloc[r].to_dict(), a, b)


def _materialized_at(mfs: list) -> pd.Timestamp:
    times = {m.last_materialization_time for m in mfs}
    assert len(times) == 1
    return pd.Timestamp(times.pop())


@pytest.mark.parametrize("kind", ["sqlite", "redis", "dynamodb"])
def test_materialized_online_values_equal_offline_values(kind, request, tmp_path):
    with FeatureEngineeringClient(root=tmp_path / "root") as fe:
        fe.create_table("events", "event_id", df=_events(0, 400, T0, 36, seed=14))
        features = _features(fe)
        fe.create_online_store(name="serving", capacity="CU_1", spec=_spec(kind, request))
        mfs = fe.materialize_features(
            features=features, offline_config=OfflineStoreConfig("main", "default", "mat"),
            online_config=OnlineStoreConfig("main", "default", "mat_online", "serving"), trigger=TableTrigger())
        assert len(mfs) == 2 * len(features) and sum(bool(m.is_online) for m in mfs) == len(features)
        _check_offline_tables(fe, features)
        _check_online(fe, features, _materialized_at(mfs), kind)

        # new events (some later than all others, some late: before the latest ones) reach both sides
        fe.write_table("events", _events(1000, 60, T0 + 30 * HOUR, 10, seed=15))
        later = pd.Timestamp.now(tz="UTC") + 2 * HOUR
        results = run_due(fe, now=later.to_pydatetime())
        assert {r.state for r in results} == {"SUCCEEDED"} and len(results) == 2 * len(features)
        assert {r.kind for r in results if "mat_online" not in r.table_name} == {"incremental"}
        _check_offline_tables(fe, features)
        _check_online(fe, features, later, kind)


def _online_runs(fe: FeatureEngineeringClient, mfs: list) -> list[dict]:
    """The latest run of each online materialization."""
    return [fe._materialization.runs(m, limit=1)[0] for m in mfs if m.is_online]


def _orders(db) -> dict[int, set[int]]:  # type: ignore[no-untyped-def]
    """Per online table of a SQLite store (timelines, heads): how many rows carry each ordering value."""
    import sqlite3

    with sqlite3.connect(db) as con:
        tables = [r[0] for r in con.execute("SELECT physical FROM _larder_online ORDER BY name")]
        return {i: dict(con.execute(f'SELECT _order, count(*) FROM "{t}" GROUP BY _order').fetchall())
                for i, t in enumerate(tables)}


@pytest.mark.parametrize("kind", ["sqlite", "redis", "dynamodb"])
def test_an_incremental_online_run_rewrites_only_the_keys_new_rows_touch(kind, request, tmp_path):
    """After appends, an online run recomputes only the keys of the added rows (their whole history)
    and merges them in; the other keys keep the timelines of the previous run. Online values of every
    key, at request times from the run on, equal the training set's; a commit that removed files makes
    the next run a full one again."""
    with FeatureEngineeringClient(root=tmp_path / "root") as fe:
        fe.create_table("events", "event_id", df=_events(0, 400, T0, 36, seed=14))
        features = _features(fe)
        fe.create_online_store(name="serving", capacity="CU_1", spec=_spec(kind, request))
        mfs = fe.materialize_features(
            features=features, online_config=OnlineStoreConfig("main", "default", "mat_online", "serving"),
            trigger=TableTrigger())
        first = _materialized_at(mfs)
        assert {r["kind"] for r in _online_runs(fe, mfs)} == {"full"}
        assert {r["rows_written"] for r in _online_runs(fe, mfs)} == {6}
        assert {r["rows_read"] for r in _online_runs(fe, mfs)} == {400}  # the whole source

        # new rows of users 1 and 4 (some late: before the latest events) and of a new user, 7
        more = _events(1000, 40, T0 + 30 * HOUR, 10, seed=15)
        more["user_id"] = np.resize([1, 4, 7], len(more))
        fe.write_table("events", more)
        later = pd.Timestamp.now(tz="UTC") + 2 * HOUR
        results = run_due(fe, now=later.to_pydatetime())
        assert {r.state for r in results} == {"SUCCEEDED"} and {r.kind for r in results} == {"incremental"}
        runs = _online_runs(fe, mfs)
        assert {r["kind"] for r in runs} == {"incremental"} and {r["rows_written"] for r in runs} == {3}
        # the added rows (to find their keys), then those keys' whole history (to recompute them)
        touched = int(fe.read_table("events")["user_id"].isin([1, 4, 7]).sum())
        assert {r["rows_read"] for r in runs} == {len(more) + touched} and touched < 440
        if kind == "sqlite":  # the other keys' rows are the first run's, untouched
            db = tmp_path / "root" / "online_stores" / "serving.db"
            first_us, later_us = (int(t.value // 1000) for t in (first, later))
            assert _orders(db) == {0: {first_us: 4, later_us: 3}, 1: {first_us: 4, later_us: 3}}
        _check_online(fe, features, later, kind, users=9)  # 0-5 and 7 have events, 6 and 8 none
        _check_online(fe, features, later + 7 * HOUR + 3 * US, kind, users=9)

        # a run with no new rows writes nothing and changes nothing
        again = later + HOUR
        svc = fe._materialization
        results = svc.run_group(_group_id(fe, mfs), now=again.to_pydatetime())
        assert {(r.kind, r.rows_read, r.rows_written) for r in results} == {("incremental", 0, 0)}
        _check_online(fe, features, again, kind, users=9)

        # an overwrite removes files: the next run recomputes every key and replaces the table
        fe.write_table("events", _events(0, 300, T0, 36, seed=16), mode="overwrite")
        last = again + HOUR
        results = svc.run_group(_group_id(fe, mfs), now=last.to_pydatetime())
        assert {(r.kind, r.rows_read, r.rows_written) for r in results} == {("full", 300, 6)}
        _check_online(fe, features, last, kind, users=9)


def test_an_online_run_is_full_when_the_online_table_may_not_hold_the_last_run(tmp_path):
    """A merge is only exact over the last run's rows: when the publication was dropped, or the run's
    time is before the last one's (the stores would keep the newer rows), the run replaces the table."""
    with FeatureEngineeringClient(root=tmp_path / "root") as fe:
        fe.create_table("events", "event_id", df=_events(0, 200, T0, 36, seed=14))
        features = _features(fe)[:3]
        fe.create_online_store(name="serving", capacity="CU_1")
        mfs = fe.materialize_features(features=features, trigger=TableTrigger(),
                                      online_config=OnlineStoreConfig("main", "default", "mat_online", "serving"))
        svc, group = fe._materialization, _group_id(fe, mfs)
        first = _materialized_at(mfs)
        for f in features:
            fe.drop_online_table(f.full_name)
        fe.write_table("events", _events(1000, 10, T0 + 30 * HOUR, 5, seed=15))
        at = first + HOUR
        assert {(r.kind, r.rows_written) for r in svc.run_group(group, now=at.to_pydatetime())} == {("full", 6)}
        _check_online(fe, features, at, "sqlite")
        fe.write_table("events", _events(2000, 10, T0 + 30 * HOUR, 5, seed=16))
        earlier = at - 30 * pd.Timedelta(minutes=1)
        assert {r.kind for r in svc.run_group(group, now=earlier.to_pydatetime())} == {"full"}
        _check_online(fe, features, earlier, "sqlite")
        fe.write_table("events", _events(3000, 10, T0 + 30 * HOUR, 5, seed=17))
        assert {r.kind for r in svc.run_group(group, now=at.to_pydatetime())} == {"incremental"}
        _check_online(fe, features, at, "sqlite")


def _group_id(fe: FeatureEngineeringClient, mfs: list) -> str:
    from larder.catalog.materialization import MaterializationRecord

    with fe._ctx.catalog.session() as s:
        return str(s.get(MaterializationRecord, mfs[0].materialized_feature_id).group_id)


def test_a_logged_model_reads_materialized_features_online(request, tmp_path, monkeypatch):
    """One model; its features materialized online to each store in turn (the previous materialization
    deleted): each load of the pyfunc predicts exactly what the model predicts on the training set."""
    import mlflow
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LARDER_ROOT", raising=False)
    with FeatureEngineeringClient(root=tmp_path / "root") as fe:
        fe.create_table("events", "event_id", df=_events(0, 400, T0, 36, seed=14))
        numeric = [f for f in _features(fe) if f.name.split("_", 1)[-1] in ("sum", "count", "avg", "max", "var_pop",
                                                                            "stddev_samp", "last")]
        mfs = []
        for kind in ("sqlite", "redis", "dynamodb"):
            for m in mfs:
                fe.delete_materialized_feature(materialized_feature=m)
            fe.create_online_store(name=f"serving_{kind}", capacity="CU_1", spec=_spec(kind, request))
            mfs = fe.materialize_features(features=numeric, online_config=OnlineStoreConfig(
                "main", "default", "mat_online", f"serving_{kind}"))
            if kind == "sqlite":  # the model, trained on values at times after the materialization
                labels = _requests(_materialized_at(mfs)).assign(y=lambda d: np.arange(len(d), dtype=float))
                training = fe.create_training_set(labels, label="y", features=numeric,
                                                  exclude_columns=["user_id", "ts"])
                train_df = training.load_df()
                X = train_df.drop(columns="y")
                model = make_pipeline(SimpleImputer(strategy="constant", fill_value=0.0), LinearRegression())
                model.fit(X, train_df["y"])
                info = fe.log_model(model, "model", mlflow.sklearn, training)
                naive = labels.drop(columns="y").assign(ts=labels["ts"].dt.tz_localize(None))
            got = np.asarray(mlflow.pyfunc.load_model(f"runs:/{info.run_id}/model").predict(naive), dtype=float)
            np.testing.assert_array_equal(got.reshape(-1), model.predict(X), err_msg=kind)
