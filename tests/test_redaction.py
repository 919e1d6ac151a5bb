"""Credentials never persist or print: catalog URLs, model artifacts, error messages, /health.

The secret ``hunter2`` is planted in the catalog URL (``?password=``, which SQLite ignores); after
creating a table, a training set and logging a model, it must appear in no file under the root or
the MLflow artifacts except ``larder.yaml`` itself, and in no error message.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from larder.errors import CatalogError
from larder.redaction import redact_mapping, redact_text, redact_url

SECRET = "hunter2"


@pytest.mark.parametrize(("url", "masked", "removed"), [
    ("redis://:hunter2@cache:6379/0", "redis://***@cache:6379/0", "redis://cache:6379/0"),
    ("redis://127.0.0.1:6379/0?password=hunter2", "redis://127.0.0.1:6379/0?password=***",
     "redis://127.0.0.1:6379/0"),
    ("rediss://default:hunter2@h:6380/1?ssl_cert_reqs=none&token=hunter2",
     "rediss://***@h:6380/1?ssl_cert_reqs=none&token=***", "rediss://h:6380/1?ssl_cert_reqs=none"),
    ("postgresql+psycopg://larder:hunter2@db:5432/larder?sslmode=require",
     "postgresql+psycopg://***@db:5432/larder?sslmode=require",
     "postgresql+psycopg://db:5432/larder?sslmode=require"),
    ("s3://b/k?X-Amz-Signature=hunter2&X-Amz-Credential=hunter2&x=1", "s3://b/k?X-Amz-Signature=***&X-Amz-Credential=***&x=1",
     "s3://b/k?x=1"),
    ("https://u:hunter2@[::1]:8443/p?api_key=hunter2", "https://***@[::1]:8443/p?api_key=***", "https://[::1]:8443/p"),
    ("redis://alice@cache:6379/0", "redis://***@cache:6379/0", "redis://cache:6379/0"),
    ("sqlite:////srv/larder/catalog.db", "sqlite:////srv/larder/catalog.db", "sqlite:////srv/larder/catalog.db"),
    ("redis://h:notaport:hunter2/0", "redis://***", "redis://***"),
])
def test_redact_url(url, masked, removed):
    assert redact_url(url) == masked
    assert redact_url(url, remove=True) == removed
    assert SECRET not in redact_url(url) and SECRET not in redact_url(url, remove=True)


def test_redact_text_and_mapping():
    text = "Error 111 connecting to redis://:hunter2@h:1/0 (password hunter2 refused)"
    assert SECRET not in redact_text(text, secrets=(SECRET,))
    spec = {"type": "redis", "url": "redis://u:hunter2@h/0?password=hunter2", "key_prefix": "p",
            "password": SECRET, "password_env": "REDIS_PASSWORD", "nested": {"token": SECRET, "ttl": 3}}
    out = redact_mapping(spec)
    assert SECRET not in json.dumps(out)
    assert out["key_prefix"] == "p" and out["password_env"] == "REDIS_PASSWORD" and out["nested"] == {"ttl": 3}


def test_catalog_error_hides_the_url_password(tmp_path):
    from larder.catalog import Catalog

    url = f"sqlite:///{tmp_path}/no/such/dir/catalog.db?password={SECRET}"
    with pytest.raises(CatalogError) as err, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Catalog(url)
    assert SECRET not in str(err.value) and "password=***" in str(err.value)


def scan(root: Path, needle: str) -> list[str]:
    """Files under ``root`` (larder.yaml excepted) whose bytes contain ``needle``."""
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and p.name != "larder.yaml" and needle.encode() in p.read_bytes():
            hits.append(str(p.relative_to(root)))
    return hits


def test_model_artifact_and_lineage_carry_no_catalog_password(larder_root, monkeypatch):
    import mlflow
    from sklearn.linear_model import LinearRegression

    from larder.client import FeatureEngineeringClient
    from larder.training import FeatureLookup

    larder_root.mkdir(parents=True)
    (larder_root / "larder.yaml").write_text(
        f"catalog_url: 'sqlite:///{larder_root}/catalog.db?password={SECRET}'\n")
    warnings.filterwarnings("ignore", message="Query string argument")
    fe = FeatureEngineeringClient(larder_root)
    try:
        fe.create_table("houses", "Id", df=pd.DataFrame({"Id": [1, 2, 3], "q": [1.0, 2.0, 3.0]}))
        fe.publish_table("houses")
        ts = fe.create_training_set(pd.DataFrame({"Id": [1, 2, 3], "y": [1.0, 2.0, 3.0]}),
                                    [FeatureLookup("houses", "Id")], label="y", exclude_columns=["Id"])
        df = ts.load_df()
        info = fe.log_model(LinearRegression().fit(df[["q"]], df["y"]), "model", mlflow.sklearn, ts,
                            serialization_format="cloudpickle")
        from larder.models.bundle import load_bundle, local_model_dir

        assert load_bundle(info.model_uri).meta["catalog_url"] == f"sqlite:///{larder_root}/catalog.db"
        assert scan(local_model_dir(info.model_uri), SECRET) == []
        assert scan(larder_root, SECRET) == []
        lineage = fe.model_lineage(info.model_uri if info.model_uri.startswith("runs:/") else
                                   f"runs:/{info.run_id}/model")
        assert SECRET not in json.dumps(lineage.to_dict(), default=str)
    finally:
        fe.close()


def test_health_says_only_ok(fe):
    from fastapi.testclient import TestClient

    from larder.serving.app import create_app

    with TestClient(create_app(fe.root)) as http:
        r = http.get("/health")
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        assert fe.root not in r.text
