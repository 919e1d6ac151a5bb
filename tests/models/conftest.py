"""Fixtures of the model tests; the world itself is built in ``models_world.py``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from models_world import World, build_world  # noqa: E402


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from larder.client import FeatureEngineeringClient

    root = tmp_path_factory.mktemp("models-world") / "root"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        mp.delenv("LARDER_CONFIG", raising=False)
        mp.delenv("LARDER_ROOT", raising=False)
        mp.setenv("LARDER_DISABLE_PROGRESS", "1")
        fe = FeatureEngineeringClient(root=root)
        try:
            yield build_world(fe, root)
        finally:
            fe.close()
