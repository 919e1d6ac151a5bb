"""The feature-aware pyfunc in-process, on each online store: ``mlflow.pyfunc.load_model(uri).predict``
equals ``score_batch`` on the same rows; store resolution (catalog, model record, environment);
missing keys (error naming them, or null by request parameter or environment)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from models_world import requests_frame

from larder.errors import ConfigError, MissingKeysError, OnlineStoreError
from larder.models.bundle import MISSING_KEYS_ENV, STORE_ENV, STORES_ENV, load_bundle, resolve_online
from larder.models.pyfunc import OnlineModel


def _spec(world, store, request):
    if store == "sqlite":
        return world.sqlite_spec(f"{store}-online.db")
    if store == "dynamodb":
        return world.dynamodb_spec(request.getfixturevalue("moto_endpoint"))
    return world.redis_spec(request.getfixturevalue("redis_url"))


@pytest.mark.parametrize("store", ["sqlite", "dynamodb", "redis"])
def test_predict_equals_score_batch(world, store, request):
    world.publish(_spec(world, store, request))
    pm = world.load_pyfunc()
    sources = pm.unwrap_python_model().online_model.sources
    assert {s.spec.type for s in sources.values()} == {store}
    req = requests_frame()
    online = np.asarray(pm.predict(req), dtype="float64")
    offline = world.fe.score_batch(world.model_uri, req)["prediction"].to_numpy()
    np.testing.assert_allclose(online, offline, rtol=0, atol=1e-9)
    # one row, and rows in another order, give the same per-row answers
    one = np.asarray(pm.predict(req.iloc[[4]]), dtype="float64")
    np.testing.assert_allclose(one, offline[[4]], rtol=0, atol=1e-9)
    rev = np.asarray(pm.predict(req.iloc[::-1]), dtype="float64")
    np.testing.assert_allclose(rev, offline[::-1], rtol=0, atol=1e-9)


def test_features_match_offline_values(world):
    world.publish(world.sqlite_spec())
    world.activate()
    bundle = load_bundle(world.model_uri)
    model = OnlineModel(bundle)
    try:
        req = requests_frame()
        online = model.features(req)
        assert len(model.predict(req.head(0))) == 0
    finally:
        model.close()
    offline = world.fe.score_batch(world.model_uri, req)
    for col in ["OverallQual", "GrLivArea", "YearBuilt", "Neighborhood", "GarageCars", "LotArea", "age"]:
        assert online[col].tolist() == offline[col].tolist(), col
    # Id 55 has a house but no extras: the extras' defaults, its own house features
    row = online.assign(Id=req["Id"]).set_index("Id").loc[55]
    assert row["GarageCars"] == 1 and row["LotArea"] == 9000.0
    assert row["OverallQual"] == world.houses.set_index("Id").loc[55, "OverallQual"]


def test_store_resolution_order(world, tmp_path, monkeypatch):
    world.publish(world.sqlite_spec())
    world.activate()
    bundle = load_bundle(world.model_uri)
    # the model was logged before any publication: the catalog tells where the tables are now
    assert bundle.meta["online"] == {}
    assert {s.origin for s in resolve_online(bundle).values()} == {"catalog"}
    with pytest.raises(OnlineStoreError, match="not published"):
        resolve_online(bundle, use_catalog=False)
    elsewhere = {"type": "sqlite", "path": str(tmp_path / "elsewhere.db")}
    monkeypatch.setenv(STORE_ENV, json.dumps(elsewhere))
    got = resolve_online(bundle)
    assert {s.origin for s in got.values()} == {STORE_ENV}
    assert {s.spec.path for s in got.values()} == {elsewhere["path"]}
    # a per-table mapping beats the single store; "*" covers the rest; a file works like JSON
    mapping = {"houses": {"type": "sqlite", "path": str(tmp_path / "h.db")}, "*": elsewhere}
    path = tmp_path / "stores.yaml"
    path.write_text(json.dumps(mapping))
    monkeypatch.setenv(STORES_ENV, str(path))
    got = resolve_online(bundle)
    assert got["main.default.houses"].spec.path == str(tmp_path / "h.db")
    assert got["main.default.house_extras"].origin == STORES_ENV
    monkeypatch.setenv(STORES_ENV, "{not json")
    with pytest.raises(ConfigError, match=STORES_ENV):
        resolve_online(bundle)


def test_model_logged_after_publishing_carries_the_publication(world, monkeypatch, tmp_path):
    world.publish(world.sqlite_spec("carried.db"))
    world.activate()
    with mlflow.start_run():
        info = world.fe.log_model(world.model, "carried", mlflow.sklearn, world.training_set,
                                  infer_input_example=True, extra_pip_requirements=["tabulate>=0.9"],
                                  serialization_format="cloudpickle")
    uri = f"runs:/{info.run_id}/carried"
    local = mlflow.artifacts.download_artifacts(uri)
    example = mlflow.models.Model.load(local).load_input_example(local)
    assert list(example.columns) == ["Id", "YrSold"] and len(example) == 5
    assert "tabulate>=0.9" in (Path(local) / "requirements.txt").read_text()
    bundle = load_bundle(uri)
    assert set(bundle.meta["online"]) == {"main.default.houses", "main.default.house_extras"}
    assert bundle.meta["online"]["main.default.houses"]["store_spec"]["path"] == str(world.root / "carried.db")
    # a serving host without a catalog: the model's own record is used
    no_catalog = resolve_online(bundle, use_catalog=False)
    assert {s.origin for s in no_catalog.values()} == {"model"}
    model = OnlineModel(bundle, use_catalog=False)
    try:
        preds = model.predict(requests_frame())
    finally:
        model.close()
    expect = world.fe.score_batch(uri, requests_frame())["prediction"].to_numpy()
    np.testing.assert_allclose(np.asarray(preds, dtype="float64"), expect, rtol=0, atol=1e-9)
    lin = world.fe.model_lineage(uri)
    assert lin.tables[0].online["store_type"] == "sqlite"


@pytest.fixture(scope="module")
def strict(world):
    """A model whose lookup has no default values: unseen keys cannot be scored by default."""
    from models_world import make_pipeline

    from larder.training import FeatureLookup

    labels = pd.DataFrame({"Id": world.houses["Id"], "YrSold": 2008, "SalePrice": world.houses["GrLivArea"] * 100})
    ts = world.fe.create_training_set(
        labels, [FeatureLookup("houses", "Id"), FeatureLookup("house_extras", "Id",
                                                               default_values={"GarageCars": 1, "LotArea": 9000.0}),
                 _age()], label="SalePrice", exclude_columns=["Id"])
    df = ts.load_df()
    model = make_pipeline().fit(df.drop(columns=["SalePrice"]), df["SalePrice"])
    world.activate()
    world.fe.log_model(model, "model", mlflow.sklearn, ts, registered_model_name="house_price_strict",
                       serialization_format="cloudpickle")
    return "models:/house_price_strict/1"


def _age():
    from larder.training import FeatureFunction

    return FeatureFunction("house_age", input_bindings={"year_built": "YearBuilt", "year_sold": "YrSold"},
                           output_name="age")


def test_missing_keys_error_names_them(world, strict):
    world.publish(world.sqlite_spec())
    pm = world.load_pyfunc(strict)
    req = pd.DataFrame({"Id": [1, 1001, 2, 1002], "YrSold": [2008] * 4})
    with pytest.raises(MissingKeysError) as err:
        pm.predict(req)
    msg = str(err.value)
    assert "1001" in msg and "1002" in msg and "main.default.houses" in msg and "'Id': 1," not in msg
    # known keys only: fine
    assert len(pm.predict(req.iloc[[0, 2]])) == 2


def test_missing_keys_null_by_parameter_or_environment(world, strict, monkeypatch):
    world.publish(world.sqlite_spec())
    req = pd.DataFrame({"Id": [1, 1001], "YrSold": [2008, 2008]})
    pm = world.load_pyfunc(strict)
    preds = pm.predict(req, params={"missing_keys": "null"})
    assert len(preds) == 2 and np.isfinite(np.asarray(preds, dtype="float64")).all()
    with pytest.raises(ConfigError, match="missing-key policy"):
        pm.predict(req, params={"missing_keys": "sometimes"})
    monkeypatch.setenv(MISSING_KEYS_ENV, "null")
    pm2 = world.load_pyfunc(strict)
    np.testing.assert_allclose(np.asarray(pm2.predict(req), dtype="float64"), np.asarray(preds, dtype="float64"))
    # the request parameter still wins over the environment
    with pytest.raises(MissingKeysError):
        pm2.predict(req, params={"missing_keys": "error"})
    # offline, an unseen key has null features too (score_batch never raises for missing keys)
    offline = world.fe.score_batch(strict, req)
    np.testing.assert_allclose(offline["prediction"].to_numpy(), np.asarray(preds, dtype="float64"), atol=1e-9)


def test_unpublished_model_loads_and_fails_clearly(world, monkeypatch):
    """A model whose tables are published nowhere loads (they may be published later) and predict
    says what to do."""
    from larder.models.bundle import ModelBundle

    world.activate()
    bundle = load_bundle(world.model_uri)
    lonely = ModelBundle(path=bundle.path, meta={**bundle.meta, "online": {}, "catalog_url": None}, spec=bundle.spec)
    model = OnlineModel(lonely)
    try:
        assert model.sources is None
        with pytest.raises(OnlineStoreError, match="publish_table"):
            model.predict(requests_frame())
    finally:
        model.close()


def test_time_series_lookup_timestamp_optional_online(world):
    """A time-series table: offline is point in time; online serves the latest row, and the request's
    timestamp column may be left out."""
    from sklearn.linear_model import LinearRegression

    from larder.training import FeatureLookup

    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    listings = pd.DataFrame({
        "Id": [1, 1, 2, 2, 3],
        "listed_at": [t0, t0 + pd.Timedelta(days=30), t0, t0 + pd.Timedelta(days=10), t0],
        "ListPrice": [100.0, 120.0, 200.0, 190.0, 300.0],
    })
    world.fe.create_table("house_listings", ["Id"], df=listings, timestamp_keys="listed_at")
    labels = pd.DataFrame({"Id": [1, 1, 2, 3], "SaleDate": [t0 + pd.Timedelta(days=d) for d in (1, 40, 20, 5)],
                           "SalePrice": [110.0, 125.0, 195.0, 310.0]})
    ts = world.fe.create_training_set(labels, [FeatureLookup("house_listings", "Id", timestamp_lookup_key="SaleDate")],
                                      label="SalePrice", exclude_columns=["Id", "SaleDate"])
    df = ts.load_df()
    assert df["ListPrice"].tolist() == [100.0, 120.0, 190.0, 300.0]  # point in time
    model = LinearRegression().fit(df[["ListPrice"]], df["SalePrice"])
    world.activate()
    with mlflow.start_run():
        info = world.fe.log_model(model, "listing_model", mlflow.sklearn, ts, serialization_format="cloudpickle")
    uri = f"runs:/{info.run_id}/listing_model"
    inputs = {c.name: c.required for c in mlflow.models.get_model_info(uri).signature.inputs.inputs}
    assert inputs == {"Id": True, "SaleDate": False}
    world.fe.publish_table("house_listings", world.sqlite_spec())
    pm = world.load_pyfunc(uri)
    online = np.asarray(pm.predict(pd.DataFrame({"Id": [1, 2, 3]})), dtype="float64")
    now = pd.Timestamp.now(tz="UTC")
    offline = world.fe.score_batch(uri, pd.DataFrame({"Id": [1, 2, 3], "SaleDate": [now] * 3}))
    assert offline["ListPrice"].tolist() == [120.0, 190.0, 300.0]  # the latest rows
    np.testing.assert_allclose(online, offline["prediction"].to_numpy(), rtol=0, atol=1e-9)
    report = world.fe.check_skew(uri, pd.DataFrame({"Id": [1, 2, 3]}))
    assert report.ok, report.mismatches


def test_column_order_fast_path_equals_general_path(world):
    """predict skips the column selection once it has seen the assembled frame's columns in the raw
    model's order; frames whose columns need selecting (an extra column, another order) give the same
    answers, before and after the fast path is taken."""
    world.publish(world.sqlite_spec())
    world.activate()
    model = OnlineModel(load_bundle(world.model_uri))
    try:
        req = requests_frame()
        features = model.features(req)
        expect = np.asarray(model.raw.predict(features[model.bundle.feature_columns]), dtype="float64")
        shuffled = req.assign(note="x")[["note", "YrSold", "Id"]]  # assembled columns out of model order
        for frame in (shuffled, req, req, shuffled, req):
            got = np.asarray(model.predict(frame), dtype="float64")
            np.testing.assert_allclose(got, expect, rtol=0, atol=0)
        assert model._ordered_columns is not None and list(model._ordered_columns) == model.bundle.feature_columns
    finally:
        model.close()


def test_mlflow_sees_the_stored_predict_signature(world):
    """MLflow inspects predict on every call to decide how to pass ``params``: the stored signature it
    reads is predict's real one, so the missing-key parameter still reaches larder."""
    import inspect

    from larder.models.pyfunc import FeatureAwareModel

    pm = world.load_pyfunc()
    python_model = pm.unwrap_python_model()
    assert isinstance(python_model, FeatureAwareModel)
    stored = inspect.signature(python_model.predict)
    assert list(stored.parameters) == ["context", "model_input", "params"]
    assert stored == inspect.signature(inspect.unwrap(FeatureAwareModel.predict).__get__(python_model))
