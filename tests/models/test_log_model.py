"""log_model: what the logged model carries, lineage in the catalog, ``larder models show``, function
usage, tracking URIs, and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from models_world import MODEL_NAME, build_world
from sklearn.linear_model import Ridge
from typer.testing import CliRunner

from larder.cli.main import app
from larder.cli.models import models_app
from larder.errors import FunctionInUseError, ModelError
from larder.models.bundle import load_bundle
from larder.models.tracking import ensure_tracking, user_tracking_uri

runner = CliRunner()


def test_signature_is_keys_and_request_columns(world):
    world.activate()
    meta = mlflow.models.get_model_info(world.model_uri)
    inputs = meta.signature.inputs.input_names()
    assert inputs == ["Id", "YrSold"]  # the keys and the request-time column, not the features
    assert [p.name for p in meta.signature.params.params] == ["missing_keys"]
    assert meta.signature.outputs is not None


def test_signature_types_are_what_callers_send(world):
    """The input types are those of a plain pandas frame (int64 -> long), so MLflow's schema enforcement
    passes the caller's columns through unconverted; a narrower integer frame is upcast and predicts the
    same."""
    from models_world import requests_frame

    world.activate()
    schema = mlflow.models.get_model_info(world.model_uri).signature.inputs
    assert {c.name: c.type.name for c in schema.inputs} == {"Id": "long", "YrSold": "long"}
    req = requests_frame()
    for spec in schema.inputs:
        assert spec.type.to_numpy() == req[spec.name].dtype, spec  # MLflow's no-conversion case
    world.publish(world.sqlite_spec())
    pm = world.load_pyfunc()
    narrow = req.astype({"Id": "int32", "YrSold": "int32"})
    pd.testing.assert_series_equal(pd.Series(pm.predict(narrow)), pd.Series(pm.predict(req)))


def test_inferred_signature_widens_32_bit_columns():
    """A training frame with int32/float32 inputs still gives a signature that accepts a default
    int64/float64 frame (MLflow refuses int64 for an ``integer`` column)."""
    import numpy as np

    from larder.models.log_model import _signature

    inputs = pd.DataFrame({"Id": np.array([1, 2], dtype="int32"), "rate": np.array([0.5, 1.5], dtype="float32"),
                           "city": ["a", "b"], "when": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    sig = _signature(None, inputs, np.array([1.0, 2.0]), ["x"], optional=["when"])
    types = {c.name: (c.type.name, c.required) for c in sig.inputs.inputs}
    assert types == {"Id": ("long", True), "rate": ("double", True), "city": ("string", True),
                     "when": ("datetime", False)}
    caller = pd.DataFrame({"Id": [3], "rate": [2.5], "city": ["c"]})
    mlflow.models.validate_schema(caller, sig.inputs)  # raises on a type it cannot accept


def test_bundle_pins_versions_and_carries_functions(world):
    world.activate()
    bundle = load_bundle(world.model_uri)
    assert bundle.spec.table_versions() == {"main.default.houses": 0, "main.default.house_extras": 0}
    (fn,) = bundle.spec.functions
    assert fn.name == "main.default.house_age" and fn.pickle and "year_sold - year_built" in fn.source
    assert bundle.feature_columns == world.training_set.feature_columns
    assert bundle.input_columns == ["Id", "YrSold"]
    assert bundle.meta["flavor"] == "mlflow.sklearn"
    raw = bundle.raw_model.predict(world.training_set.load_df().drop(columns=["SalePrice"]).head(3))
    assert len(raw) == 3


def test_pip_requirements_are_declared(world):
    world.activate()
    local = Path(mlflow.artifacts.download_artifacts(world.model_uri))
    reqs = (local / "requirements.txt").read_text().splitlines()
    names = {r.split("==")[0].split("[")[0] for r in reqs if r and not r.startswith("#")}
    assert {"larder", "mlflow", "cloudpickle", "scikit-learn"} <= names
    assert any(r.startswith("larder[dynamodb,redis]==") for r in reqs)


def test_lineage_in_catalog(world):
    lin = world.fe.model_lineage(MODEL_NAME)
    assert (lin.registered_name, lin.registered_version) == (MODEL_NAME, "1")
    assert [(t.name, t.delta_version) for t in lin.tables] == [("main.default.houses", 0),
                                                             ("main.default.house_extras", 0)]
    assert [f.output for f in lin.features] == ["OverallQual", "GrLivArea", "YearBuilt", "Neighborhood",
                                                "GarageCars", "LotArea"]
    assert lin.features[0].default == 5
    (fn,) = lin.functions
    assert fn.name == "main.default.house_age" and fn.output == "age"
    assert fn.input_bindings == {"year_built": "YearBuilt", "year_sold": "YrSold"}
    assert lin.run_uri == f"runs:/{world.info.run_id}/model"
    assert world.fe.model_lineage(lin.run_uri).registered_version == "1"
    assert world.fe.model_lineage(MODEL_NAME, 1).run_id == world.info.run_id
    with pytest.raises(ModelError, match="no lineage for version 7"):
        world.fe.model_lineage(MODEL_NAME, 7)


def test_models_show_cli(world):
    r = runner.invoke(app, ["models", "show", MODEL_NAME, "--root", str(world.root)])
    if r.exit_code == 2:  # the lead has not mounted the sub-app on the main CLI yet
        r = runner.invoke(models_app, ["show", MODEL_NAME, "--root", str(world.root)])
    assert r.exit_code == 0, r.output
    for text in ("house_price version 1", "main.default.houses", "main.default.house_extras", "GarageCars",
                 "main.default.house_age", "mlflow.sklearn"):
        assert text in r.output
    r = runner.invoke(models_app, ["show", MODEL_NAME, "--version", "1", "--json", "--root", str(world.root)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["uri"] == f"models:/{MODEL_NAME}/1" and len(data["tables"]) == 2
    r = runner.invoke(models_app, ["show", "no_such_model", "--root", str(world.root)])
    assert r.exit_code == 1 and "no lineage" in r.output


def test_models_commands_have_examples():
    import typer.main

    group = typer.main.get_command(models_app)
    for name, cmd in group.commands.items():
        assert "Example:" in (cmd.help or ""), name


def test_drop_function_refuses_a_used_version(world):
    version = world.fe.get_function("house_age").version
    with pytest.raises(FunctionInUseError, match=MODEL_NAME):
        world.fe.drop_function("house_age", version)
    with pytest.raises(FunctionInUseError):
        world.fe.drop_function("house_age")
    assert world.fe.get_function("house_age").version == version


def test_default_tracking_uri_is_under_the_root(world):
    uri = world.activate()
    assert uri == f"sqlite:///{world.root / 'mlflow.db'}"
    assert mlflow.get_tracking_uri() == uri and mlflow.get_registry_uri() == uri
    assert world.fe.model_lineage(MODEL_NAME).tracking_uri == uri
    exp = mlflow.MlflowClient().get_experiment("0")
    assert exp.artifact_location.startswith((world.root / "mlartifacts").as_uri())
    assert user_tracking_uri() is None  # what larder set is not mistaken for the user's choice


def test_user_tracking_uri_is_never_changed(world, fe, larder_root, tmp_path, monkeypatch):
    world.activate()  # larder has set a URI of its own in this process
    user_uri = f"sqlite:///{tmp_path / 'user.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", user_uri)
    try:
        assert ensure_tracking(fe._ctx) == user_uri
        assert mlflow.get_tracking_uri() == user_uri
        assert mlflow.get_registry_uri() == user_uri  # the registry follows the user's choice
        assert not (larder_root / "mlflow.db").exists()
        other = f"sqlite:///{tmp_path / 'other.db'}"
        mlflow.set_tracking_uri(other)  # set in-process: the user's too
        assert ensure_tracking(fe._ctx) == other == mlflow.get_tracking_uri()
    finally:
        mlflow.set_tracking_uri(None)
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    world.activate()


def test_log_model_inside_an_active_run_and_unregistered(world):
    world.activate()
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", 1.0)
        info = world.fe.log_model(world.model, "m2", mlflow.sklearn, world.training_set,
                                  serialization_format="cloudpickle")
        assert mlflow.active_run().info.run_id == run.info.run_id  # the run is left open
    assert info.run_id == run.info.run_id
    lin = world.fe.model_lineage(f"runs:/{run.info.run_id}/m2")
    assert lin.registered_name is None and lin.uri == f"runs:/{run.info.run_id}/m2"
    scored = world.fe.score_batch(lin.uri, pd.DataFrame({"Id": [1], "YrSold": [2008]}))
    assert scored["prediction"].notna().all()


def test_bad_input_is_a_model_error(world):
    with pytest.raises(ModelError, match="flavor must be an MLflow flavour module"):
        world.fe.log_model(world.model, "m", "sklearn", world.training_set)
    with pytest.raises(ModelError, match="training_set must be the TrainingSet"):
        world.fe.log_model(world.model, "m", mlflow.sklearn, world.training_set.load_df())
    with pytest.raises(ModelError, match="artifact_path"):
        world.fe.log_model(world.model, "a/b", mlflow.sklearn, world.training_set)
    other = Ridge().fit(pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 5.0]}), [1.0, 2.0])
    with pytest.raises(ModelError, match="cannot predict on its training set"):
        world.fe.log_model(other, "m", mlflow.sklearn, world.training_set)
    with pytest.raises(ModelError, match="Loading model 'models:/no_such_model/1' failed"):
        world.fe.score_batch("models:/no_such_model/1", pd.DataFrame({"Id": [1], "YrSold": [2008]}))
    with pytest.raises(ModelError, match="not logged with larder"):
        world.activate()
        with mlflow.start_run():
            plain = mlflow.sklearn.log_model(world.model, name="plain", serialization_format="cloudpickle",
                                             pip_requirements=["scikit-learn"])
        world.fe.score_batch(plain.model_uri, pd.DataFrame({"Id": [1], "YrSold": [2008]}))


def test_fresh_root_logs_into_its_own_database(tmp_path, monkeypatch):
    """A second world on another root moves the URIs along (larder set them, not the user)."""
    from larder.client import FeatureEngineeringClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "other"
    with FeatureEngineeringClient(root=root) as fe2:
        w2 = build_world(fe2, root)
        assert w2.activate() == f"sqlite:///{root / 'mlflow.db'}"
        assert (root / "mlflow.db").exists()
        assert mlflow.MlflowClient().get_model_version(MODEL_NAME, "1").run_id == w2.info.run_id


def test_a_raw_model_signature_gets_the_key_inputs(world):
    from mlflow.models import infer_signature

    world.activate()
    X = world.training_set.load_df().drop(columns=["SalePrice"])
    raw_sig = infer_signature(X, world.model.predict(X))
    with mlflow.start_run():
        info = world.fe.log_model(world.model, "signed", mlflow.sklearn, world.training_set, signature=raw_sig,
                                  serialization_format="cloudpickle")
    sig = mlflow.models.get_model_info(info.model_uri).signature
    assert sig.inputs.input_names() == ["Id", "YrSold"]
    assert sig.outputs.to_dict() == raw_sig.outputs.to_dict()
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    bad = ModelSignature(inputs=Schema([ColSpec("long", "Id")]))
    with pytest.raises(ModelError, match="lack the model's input column"):
        world.fe.log_model(world.model, "bad_sig", mlflow.sklearn, world.training_set, signature=bad,
                           serialization_format="cloudpickle")


def test_claim_default_uris_is_cheap_and_respects_the_user(world, fe, larder_root, tmp_path, monkeypatch):
    import subprocess
    import sys

    from larder.models.tracking import claim_default_uris

    target = f"sqlite:///{larder_root / 'mlflow.db'}"
    claim_default_uris(fe._ctx)  # MLflow is imported here: set in-process
    assert mlflow.get_tracking_uri() == target == mlflow.get_registry_uri()
    assert not (larder_root / "mlflow.db").exists()  # no database until a models call needs one
    user = f"sqlite:///{tmp_path / 'user.db'}"
    mlflow.set_tracking_uri(user)
    try:
        claim_default_uris(fe._ctx)
        assert mlflow.get_tracking_uri() == user
    finally:
        mlflow.set_tracking_uri(None)
    code = ("import os, sys; from larder.context import Context; from larder.models.tracking import "
            "claim_default_uris; claim_default_uris(Context(sys.argv[1])); "
            "print(os.environ['MLFLOW_TRACKING_URI'], os.environ['MLFLOW_REGISTRY_URI'], 'mlflow' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") or k == "MLFLOW_DISABLE_TELEMETRY"}
    out = subprocess.run([sys.executable, "-c", code, str(larder_root)], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert out == [target, target, "False"]
    env["MLFLOW_TRACKING_URI"] = user
    out = subprocess.run([sys.executable, "-c", code.replace("os.environ['MLFLOW_REGISTRY_URI']", "''"),
                          str(larder_root)], capture_output=True, text=True, env=env, check=True).stdout.split()
    assert out == [user, "False"]
    world.activate()


def test_public_names_of_larder_models():
    import larder.models

    assert larder.models.__all__ == [
        "FeatureAwareModel", "MISSING_KEYS_ENV", "ModelBundle", "ModelLineage", "OnlineModel", "STORES_ENV",
        "STORE_ENV", "SkewReport", "default_tracking_uri", "ensure_tracking", "list_models", "load_bundle",
        "model_lineage",
    ]
    for name in larder.models.__all__:
        assert getattr(larder.models, name) is not None
    with pytest.raises(AttributeError):
        larder.models.nope  # noqa: B018
