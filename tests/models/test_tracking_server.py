"""MLflow on a tracking server, as a team runs it: ``mlflow server`` with its backend store in the
PostgreSQL cluster and its artifacts on the S3 API server (proxied by the server, so clients need no
S3 credentials for MLflow), larder's catalog on PostgreSQL and its tables on S3. ``log_model``,
``score_batch`` and the feature-aware pyfunc work against it, also from a client that shares no local
file with the one that logged the model."""

from __future__ import annotations

from pathlib import Path

import boto3
import mlflow
import numpy as np
import pytest
from models_world import requests_frame

from larder.client import FeatureEngineeringClient


def _keys(bucket: str, prefix: str, endpoint: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


@pytest.fixture()
def other_client(server_world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A second client: its own root and working directory, the same larder.yaml (catalog, storage,
    tracking server) and nothing else."""
    root = tmp_path / "other-root"
    root.mkdir()
    (root / "larder.yaml").write_text((server_world.root / "larder.yaml").read_text())
    work = tmp_path / "other-cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "LARDER_ROOT", "LARDER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    fe = FeatureEngineeringClient(root=root)
    yield fe
    fe.close()
    server_world.activate()


def test_log_model_registers_on_the_server_and_stores_artifacts_in_the_bucket(server_world, mlflow_server,
                                                                              s3_bucket, moto_endpoint):
    world = server_world
    assert world.activate() == mlflow_server
    client = mlflow.MlflowClient()
    version = client.get_model_version(world.model_name, "1")
    assert version.run_id == world.info.run_id
    run = client.get_run(world.info.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
    # the artifacts went through the server to the bucket: the MLmodel and larder's feature spec
    keys = [k for k in _keys(s3_bucket, "mlflow/", moto_endpoint) if f"/{world.info.model_id}/" in k
            or f"/{world.info.run_id}/" in k]
    names = {Path(k).name for k in keys}
    assert {"MLmodel", "feature_spec.yaml"} <= names, sorted(keys)
    # nothing of MLflow's on the client's disk
    assert not (world.root / "mlflow.db").exists() and not (world.root / "mlartifacts").exists()
    assert not Path("mlruns").exists()


def test_score_batch_and_the_pyfunc_from_another_client(server_world, other_client, moto_endpoint,
                                                        mlflow_server, monkeypatch):
    world = server_world
    req = requests_frame()
    out = other_client.score_batch(world.model_uri, req)
    assert mlflow.get_tracking_uri() == mlflow_server
    features = out[world.training_set.feature_columns]
    np.testing.assert_allclose(out["prediction"].to_numpy(), world.model.predict(features), rtol=0, atol=1e-9)
    houses = world.houses.set_index("Id")
    assert out.loc[out["Id"] == 17, "GrLivArea"].item() == houses.loc[17, "GrLivArea"]
    # the first client published the tables to DynamoDB; the pyfunc from the server looks its features up
    world.activate()
    world.publish(world.dynamodb_spec(moto_endpoint))
    # a serving process's settings: the tracking server, and the catalog's credentials (the model
    # records the catalog's URL without them) from libpq's environment
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("PGUSER", "larder")
    pm = mlflow.pyfunc.load_model(world.model_uri)
    sources = pm.unwrap_python_model().online_model.sources
    assert {(s.spec.type, s.origin) for s in sources.values()} == {("dynamodb", "catalog")}
    online = np.asarray(pm.predict(req), dtype="float64")
    np.testing.assert_allclose(online, out["prediction"].to_numpy(), rtol=0, atol=1e-9)
