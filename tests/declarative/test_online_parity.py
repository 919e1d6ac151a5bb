"""Online values equal offline values: declarative features published to SQLite, Redis and DynamoDB
(moto_server) answer requests at several times after the materialization with exactly the training
set's values at those times, for every operator and window kind; and so does a logged model's pyfunc.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from declarative._stores import store_spec
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
    RollingWindow,
    SlidingWindow,
    StddevPop,
    StddevSamp,
    Sum,
    TumblingWindow,
    VarPop,
    VarSamp,
)
from larder.declarative.publish import publish_features
from larder.online.stores.specs import SQLiteStoreSpec

T0 = pd.Timestamp("2024-03-01 07:00", tz="UTC")
HOUR = pd.Timedelta(hours=1)
AS_OF = T0 + 40 * HOUR
D = dt.timedelta



def _events() -> pd.DataFrame:
    rng = np.random.default_rng(14)
    n = 400
    hours = rng.integers(0, 48, n)
    ts = [T0 + int(h) * HOUR + pd.Timedelta(microseconds=int(e)) for h, e in zip(hours, rng.choice([0, 0, 0, 1, -1], n),
                                                                                  strict=True)]
    x = rng.integers(-20, 20, n).astype(float) / 4
    x[rng.random(n) < 0.05] = np.nan  # a value, not a null
    return pd.DataFrame({
        "event_id": np.arange(n), "user_id": rng.integers(0, 6, n), "ts": ts,
        "x": pd.array(np.where(rng.random(n) < 0.1, None, x), dtype="Float64"),
        "item": pd.array(rng.choice(["a", "b", "c", None], n), dtype="string"),
        "qty": rng.integers(0, 5, n),
    }).astype({"ts": "datetime64[us, UTC]"})


WINDOWS = [
    RollingWindow(window_duration=D(hours=6)),
    RollingWindow(window_duration=D(hours=10), delay=D(hours=2)),
    RollingWindow(window_duration=None),
    TumblingWindow(window_duration=D(hours=4), offset=D(hours=1)),
    SlidingWindow(window_duration=D(hours=8), slide_duration=D(hours=3), offset=D(hours=2),
                  start_time=dt.datetime(2024, 3, 2, 20, tzinfo=dt.UTC)),
]
OPERATORS = [Sum("x"), Count("item"), Avg("x"), Min("item"), Max("x"), StddevPop("x"), StddevSamp("x"), VarPop("x"),
             VarSamp("x"), First("item"), Last("x"), FirstN("item", 2), LastN("x", 3), ApproxCountDistinct("item"),
             ApproxPercentile(0.75, "x"), Sum("qty")]

# request times after the state: at it, a microsecond later, on and beside hour edges, and far later
TIMES = [AS_OF, AS_OF + pd.Timedelta(microseconds=1), AS_OF + 3 * HOUR, AS_OF + 6 * HOUR + pd.Timedelta(microseconds=1),
         AS_OF + 8 * HOUR, AS_OF + 9 * HOUR + pd.Timedelta(microseconds=-1), AS_OF + 30 * HOUR]


def _world(fe: FeatureEngineeringClient):
    fe.create_table("events", "event_id", df=_events())
    src = DeltaTableSource(catalog_name="main", schema_name="default", table_name="events")
    features = [fe.create_feature(source=src, function=AggregationFunction(op, WINDOWS[i % len(WINDOWS)]),
                                  catalog_name="main", schema_name="default", entity=["user_id"],
                                  timeseries_column="ts", name=f"f{i}_{op.name}")
                for i, op in enumerate(OPERATORS)]
    features.append(fe.create_feature(source=src, function=ColumnSelection("qty"), catalog_name="main",
                                      schema_name="default", entity=["user_id"], timeseries_column="ts"))
    requests = pd.DataFrame({"user_id": [u for _ in TIMES for u in range(7)],  # 6 has no events at all
                             "ts": [t for t in TIMES for _ in range(7)]}).astype({"ts": "datetime64[us, UTC]"})
    return features, requests


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return repr(list(a)) == repr(list(b))  # type: ignore[arg-type]
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return repr(a) == repr(b)


@pytest.mark.parametrize("kind", ["sqlite", "redis", "dynamodb"])
def test_online_values_equal_offline_values_at_every_request_time(kind, request, tmp_path):
    with FeatureEngineeringClient(root=tmp_path / "root") as fe:
        features, requests = _world(fe)
        pubs = publish_features(fe, features, store_spec(kind, request), as_of=AS_OF.to_pydatetime())
        assert {p.table_name for p in pubs} == {f.full_name for f in features}
        training = fe.create_training_set(requests, label=None, features=features)
        offline = training.load_df()
        online = fe.get_online_features(training.feature_spec, requests)
        assert list(online.columns) == list(offline.columns)
        for f in features:
            for r, (a, b) in enumerate(zip(offline[f.name], online[f.name], strict=True)):
                assert _same(a, b), (kind, f.name, requests.iloc[r].to_dict(), a, b)
        # a request without a time is answered at "now": after every event, the windows are empty
        now = fe.get_online_features(training.feature_spec, requests[["user_id"]].head(3), output="dict")
        assert now["f1_count"] == [0, 0, 0] and now["f0_sum"] == [None, None, None]
        # a request older than the published state is not answered from it
        old = fe.get_online_features(training.feature_spec, requests.assign(ts=T0 + 2 * HOUR).head(1))
        assert pd.isna(old["f0_sum"].iloc[0])


def test_a_logged_model_looks_its_declarative_features_up_online(request, tmp_path, monkeypatch):
    """One model, its features published in turn to each store: each load of the pyfunc reads them from
    the latest publication, and predicts exactly what the model predicts on the training set's values."""
    import mlflow
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LARDER_ROOT", raising=False)
    with FeatureEngineeringClient(root=tmp_path / "root") as fe:
        features, requests = _world(fe)
        numeric = [f for f in features if f.name.split("_", 1)[1] in ("sum", "count", "avg", "max", "var_pop",
                                                                      "stddev_samp", "last")]
        labels = requests.assign(y=np.arange(len(requests), dtype=float))
        training = fe.create_training_set(labels, label="y", features=numeric, exclude_columns=["user_id", "ts"])
        train_df = training.load_df()
        X = train_df.drop(columns="y")
        assert list(X.columns) == [f.name for f in numeric]
        model = make_pipeline(SimpleImputer(strategy="constant", fill_value=0.0), LinearRegression())
        model.fit(X, train_df["y"])
        expected = model.predict(X)
        publish_features(fe, numeric, store_spec("sqlite", request), as_of=AS_OF.to_pydatetime())
        info = fe.log_model(model, "model", mlflow.sklearn, training)
        uri = f"runs:/{info.run_id}/model"
        lineage = fe.feature_lineage(numeric[0].full_name)
        assert [m["run_uri"] for m in lineage["models"]] == [uri]
        inputs = {c.name: c.required for c in mlflow.models.get_model_info(uri).signature.inputs.inputs}
        assert inputs == {"user_id": True, "ts": False}  # no time: the request is answered at "now"
        # MLflow's signature enforcement takes naive datetimes (larder reads naive as UTC)
        naive = requests.assign(ts=requests["ts"].dt.tz_localize(None))
        previous = None
        for kind in ("sqlite", "redis", "dynamodb"):
            store = store_spec(kind, request) if kind != "sqlite" else None
            if store is not None:
                publish_features(fe, numeric, store, as_of=AS_OF.to_pydatetime())
                # the previous store's timelines go: a model still reading there would find no rows
                fe.drop_online_table(numeric[0].full_name, previous)
            previous = store or SQLiteStoreSpec()
            pyfunc = mlflow.pyfunc.load_model(uri)
            got = np.asarray(pyfunc.predict(naive), dtype=float).reshape(-1)
            np.testing.assert_array_equal(got, expected, err_msg=kind)


@pytest.mark.parametrize("kind", ["sqlite", "redis", "dynamodb"])
def test_number_features_are_read_from_the_head_where_it_holds(kind, request, tmp_path, monkeypatch):
    """A group of number features also stores each key's values at the materialization time and the
    request times they hold for: one-key requests inside that span are answered from them, the others
    from the timelines, and every answer equals the training set's value at its time."""
    import larder.online.features as online_features

    held: list[bool] = []
    holds = online_features._head_holds
    monkeypatch.setattr(online_features, "_head_holds",
                        lambda group, batch, times: held.append(holds(group, batch, times)) or held[-1])
    with FeatureEngineeringClient(root=tmp_path / "root") as fe:
        features, requests = _world(fe)
        numeric = [f for f in features if f.name.split("_", 1)[-1] in ("sum", "count", "avg", "max", "var_pop",
                                                                       "stddev_samp", "last", "column_selection")]
        assert len(numeric) >= 8
        publish_features(fe, numeric, store_spec(kind, request), as_of=AS_OF.to_pydatetime())
        training = fe.create_training_set(requests, label=None, features=numeric)
        offline = training.load_df()
        for r in range(len(requests)):
            one = fe.get_online_features(training.feature_spec, requests.iloc[[r]], output="dict")
            for f in numeric:
                want, got = offline[f.name].iloc[r], one[f.name][0]
                same = got is None and pd.isna(want) and not (isinstance(want, float) and not np.isnan(want)) \
                    if got is None else _same(type(got)(want), got)
                assert same, (kind, f.name, requests.iloc[r].to_dict(), want, got)
    assert True in held and False in held  # both ways were taken


def _numeric(features):  # type: ignore[no-untyped-def]
    return [f for f in features if f.name.split("_", 1)[-1] in ("sum", "count", "avg", "max", "var_pop",
                                                                "stddev_samp", "last", "column_selection")]


@pytest.mark.parametrize("kind", ["sqlite", "redis", "dynamodb"])
def test_the_heads_are_an_online_table_of_their_own_beside_the_timelines(kind, request, tmp_path):
    """A publication writes the timelines (keys and one binary value) and, beside them, the heads: a
    plain row per key with the values at the materialization time and the span they hold for, the
    same values as online_rows computes; dropping the publication drops both tables."""
    import pyarrow as pa

    from larder.declarative.online import (
        HEAD_FROM,
        HEAD_TABLE_KEY,
        HEAD_TABLE_SUFFIX,
        HEAD_UNTIL,
        TIMELINES,
        online_rows,
    )
    from larder.errors import OnlineTableNotFoundError
    from larder.online.features import heads_table

    with FeatureEngineeringClient(root=tmp_path / "root") as fe:
        numeric = _numeric(_world(fe)[0])
        spec = store_spec(kind, request)
        pubs = publish_features(fe, numeric, spec, as_of=AS_OF.to_pydatetime())
        timelines = pubs[0].online_table
        assert timelines.schema.names == ["user_id", TIMELINES]
        assert HEAD_TABLE_KEY in timelines.schema.field(TIMELINES).metadata
        heads, held = heads_table(timelines)  # type: ignore[misc]
        assert heads.name == timelines.name + HEAD_TABLE_SUFFIX and set(held) == {f.name for f in numeric}
        rows, _ = online_rows(fe._ctx.engine, fe._tables, numeric, as_of=AS_OF.to_pydatetime())
        store = fe._online_stores.get(spec)
        got, found = store.read_batch(heads, rows.select(["user_id"]))
        assert found.all()
        for column in [HEAD_FROM, HEAD_UNTIL, *held.values()]:
            assert got.column(column).to_pylist() == rows.column(column).to_pylist(), column
        keys = pa.table({"user_id": pa.array([0], pa.int64())})
        fe.drop_online_table(numeric[0].full_name, spec)
        for table in (timelines, heads):
            with pytest.raises(OnlineTableNotFoundError):
                store.read_batch(table, keys)


@pytest.mark.parametrize("kind", ["sqlite", "redis", "dynamodb"])
def test_a_publication_with_the_heads_in_the_timelines_rows_is_still_read(kind, request, tmp_path, monkeypatch):
    """Publications made before the heads had a table of their own hold them in the timelines' rows
    (online_rows' layout, without the heads table's metadata): read from there where they hold, from
    the timelines elsewhere, every answer the training set's value at its time; and a publication
    merged over them is read from its own heads table."""
    import larder.online.features as online_features
    from larder.declarative.online import HEAD_TABLE_KEY, ORDER, TIMELINES, online_rows
    from larder.online import OnlineFeatureAssembler
    from larder.online.stores.base import OnlineTable

    held: list[bool] = []
    holds = online_features._head_holds
    monkeypatch.setattr(online_features, "_head_holds",
                        lambda group, batch, times: held.append(holds(group, batch, times)) or held[-1])
    with FeatureEngineeringClient(root=tmp_path / "root") as fe:
        features, requests = _world(fe)
        numeric = _numeric(features)
        spec = store_spec(kind, request)
        rows, _ = online_rows(fe._ctx.engine, fe._tables, numeric, as_of=AS_OF.to_pydatetime())
        assert HEAD_TABLE_KEY not in rows.schema.field(TIMELINES).metadata
        old = OnlineTable(name="main.default.events__features_old", primary_keys=["user_id"], timestamp_key=None,
                          schema=pa.schema([f for f in rows.schema if f.name != ORDER]))
        fe._online_stores.get(spec).write_batch(old, rows, order=ORDER)
        training = fe.create_training_set(requests, label=None, features=numeric)
        offline = training.load_df()
        with OnlineFeatureAssembler(training.feature_spec, {f.full_name: (spec, old) for f in numeric},
                                    root=fe.root) as asm:
            assert asm.plan.features[0].head.table is old
            for r in range(len(requests)):
                one = asm.assemble(requests.iloc[[r]], output="dict")
                for f in numeric:
                    want, got = offline[f.name].iloc[r], one[f.name][0]
                    same = got is None and pd.isna(want) if got is None else _same(type(got)(want), got)
                    assert same, (kind, f.name, requests.iloc[r].to_dict(), want, got)
        assert True in held and False in held  # both ways were taken
        # the next publication (a merge over the old rows, as a materialization run does) has its heads
        # table, and reads give the same answers
        held.clear()
        pubs = publish_features(fe, numeric, spec, as_of=AS_OF.to_pydatetime(), online_table=old.name)
        assert HEAD_TABLE_KEY in pubs[0].online_table.schema.field(TIMELINES).metadata
        for r in range(len(requests)):
            one = fe.get_online_features(training.feature_spec, requests.iloc[[r]], output="dict")
            for f in numeric:
                want, got = offline[f.name].iloc[r], one[f.name][0]
                same = got is None and pd.isna(want) if got is None else _same(type(got)(want), got)
                assert same, (kind, f.name, requests.iloc[r].to_dict(), want, got)
    assert True in held and False in held
