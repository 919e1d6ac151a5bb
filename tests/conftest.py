"""Shared fixtures. Service fixtures (moto_server, redis-server) live in ``_services.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")

if (Path(__file__).parent / "_services.py").exists():
    pytest_plugins = ["_services"]


@pytest.fixture()
def larder_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh larder root; LARDER_ROOT points to it and MLflow tracks inside it."""
    root = tmp_path / "larder-root"
    monkeypatch.setenv("LARDER_ROOT", str(root))
    monkeypatch.delenv("LARDER_CONFIG", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return root


@pytest.fixture()
def fe(larder_root: Path):
    from larder.client import FeatureEngineeringClient

    client = FeatureEngineeringClient(root=larder_root)
    yield client
    client.close()
