"""``feature_spec_from_batch_declarative_features`` (Databricks 0.18.2): a stored feature spec of
declarative features; a training set built from it equals one built from the features, and a model
logged with it looks the features up online and predicts what it predicts on the training set."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from larder import (
    AggregationFunction,
    Avg,
    Count,
    DeltaTableSource,
    Feature,
    FeatureEngineeringClient,
    FeatureLookup,
    RollingWindow,
    Sum,
)
from larder.declarative.publish import publish_features
from larder.errors import FeatureDefinitionError
from larder.online.stores.specs import SQLiteStoreSpec

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def _world(fe: FeatureEngineeringClient) -> tuple[list[Feature], pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 300
    fe.create_table("events", "event_id", df=pd.DataFrame({
        "event_id": np.arange(n), "user_id": rng.integers(0, 5, n),
        "ts": T0 + pd.to_timedelta(rng.integers(0, 72 * 60, n), unit="min"),
        "x": rng.normal(size=n)}).astype({"ts": "datetime64[us, UTC]"}))
    src = DeltaTableSource(catalog_name="main", schema_name="default", table_name="events")
    features = [fe.create_feature(source=src, function=AggregationFunction(op, RollingWindow(window_duration=w)),
                                  catalog_name="main", schema_name="default", entity=["user_id"],
                                  timeseries_column="ts", name=name)
                for name, op, w in (("x_sum_6h", Sum("x"), dt.timedelta(hours=6)),
                                    ("x_avg_1d", Avg("x"), dt.timedelta(days=1)),
                                    ("n_12h", Count("event_id"), dt.timedelta(hours=12)))]
    times = [T0 + pd.Timedelta(hours=h) for h in (30, 50, 70)]
    labels = pd.DataFrame({"user_id": [u for _ in times for u in range(5)],
                           "ts": [t for t in times for _ in range(5)]}).astype({"ts": "datetime64[us, UTC]"})
    return features, labels.assign(y=np.arange(len(labels), dtype=float))


def test_spec_from_declarative_features_trains_logs_and_serves(tmp_path, monkeypatch) -> None:
    import mlflow
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LARDER_ROOT", raising=False)
    with FeatureEngineeringClient(root=tmp_path / "root") as fe:
        features, labels = _world(fe)
        with pytest.warns(DeprecationWarning, match="create_feature_spec"):
            spec = fe.feature_spec_from_batch_declarative_features(name="main.default.activity", features=features)
        assert spec.name == "main.default.activity" and spec.creator is not None
        assert [s.name for s in fe.get_feature_spec("main.default.activity").steps] == [f.full_name for f in features]

        keys = ["user_id", "ts"]
        from_spec = fe.create_training_set(df=labels, feature_spec="main.default.activity", label="y",
                                           exclude_columns=keys)
        direct = fe.create_training_set(df=labels, features=features, label="y", exclude_columns=keys)
        train_df = from_spec.load_df()
        pd.testing.assert_frame_equal(train_df, direct.load_df())
        assert train_df["n_12h"].sum() > 0

        X = train_df.drop(columns="y")
        assert list(X.columns) == [f.name for f in features]
        model = make_pipeline(SimpleImputer(strategy="constant", fill_value=0.0), LinearRegression())
        model.fit(X, train_df["y"])
        publish_features(fe, features, SQLiteStoreSpec(), as_of=(T0 + pd.Timedelta(hours=24)).to_pydatetime())
        info = fe.log_model(model, "model", mlflow.sklearn, from_spec)
        pyfunc = mlflow.pyfunc.load_model(f"runs:/{info.run_id}/model")
        requests = labels[["user_id", "ts"]].assign(ts=labels["ts"].dt.tz_localize(None))
        got = np.asarray(pyfunc.predict(requests), dtype=float).reshape(-1)
        np.testing.assert_array_equal(got, model.predict(X))


def test_spec_from_declarative_features_refuses_what_databricks_refuses(tmp_path) -> None:
    with FeatureEngineeringClient(root=tmp_path / "root") as fe:
        features, _ = _world(fe)
        cases = [
            ({"features": []}, "non-empty list of Feature objects"),
            ({"features": [*features, FeatureLookup(table_name="events", lookup_key="event_id")]},
             r"features\[3\] is a FeatureLookup"),
            ({"features": [features[0].clone(new_name="unregistered")]}, "'unregistered' is not registered"),
            ({"features": features, "exclude_columns": ["user_id"]}, "exclude_columns is not supported"),
        ]
        for kwargs, message in cases:
            with pytest.warns(DeprecationWarning), pytest.raises(FeatureDefinitionError, match=message):
                fe.feature_spec_from_batch_declarative_features(name="s", **kwargs)
        assert fe.list_feature_specs() == []
