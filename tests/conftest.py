"""Shared fixtures. Service fixtures (moto_server, redis-server, PostgreSQL) live in ``_services.py``.

Deployments: a test module marked ``pytest.mark.deployments("local", "team")`` runs each of its tests
that use ``larder_root`` (or ``fe``) once per deployment: ``local`` is the embedded default (SQLite
catalog, Delta tables under the root); ``team`` is a shared deployment (a catalog in a fresh schema of a
real PostgreSQL server, Delta tables under a fresh prefix of a bucket on the moto S3 API server), written
to the root's ``larder.yaml``. A test that only makes sense locally checks the ``deployment`` fixture.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

DEPLOYMENTS = ("local", "team")

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")

pytest_plugins = [p for p in ("_services", "_crasher", "_spark") if (Path(__file__).parent / f"{p}.py").exists()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("deployments")
    if marker is not None and "deployment" in metafunc.fixturenames:
        metafunc.parametrize("deployment", marker.args or DEPLOYMENTS, indirect=True)


@pytest.fixture()
def deployment(request: pytest.FixtureRequest) -> str:
    """``local`` or ``team`` (see the module docstring); ``local`` unless the module asks for more."""
    return getattr(request, "param", "local")


def team_settings(request: pytest.FixtureRequest) -> dict:
    """larder.yaml settings of a fresh team deployment: PostgreSQL catalog schema + S3 prefix."""
    return {"catalog_url": request.getfixturevalue("postgres_catalog_url"),
            **request.getfixturevalue("s3_storage")}


@pytest.fixture()
def larder_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deployment: str,
                request: pytest.FixtureRequest) -> Path:
    """A fresh larder root; LARDER_ROOT points to it and MLflow tracks inside it. For the ``team``
    deployment its larder.yaml points the catalog and the tables at the shared services."""
    root = tmp_path / "larder-root"
    monkeypatch.setenv("LARDER_ROOT", str(root))
    monkeypatch.delenv("LARDER_CONFIG", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if deployment == "team":
        root.mkdir(parents=True)
        (root / "larder.yaml").write_text(yaml.safe_dump(team_settings(request)))
    return root


@pytest.fixture()
def fe(larder_root: Path):
    from larder.client import FeatureEngineeringClient

    client = FeatureEngineeringClient(root=larder_root)
    yield client
    client.close()
