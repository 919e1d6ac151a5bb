"""Fixtures of the model tests; the world itself is built in ``models_world.py``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from models_world import World, build_world  # noqa: E402


def _world(root: Path, settings: dict | None = None) -> Iterator[World]:
    import yaml

    from larder.client import FeatureEngineeringClient

    if settings:
        root.mkdir(parents=True)
        (root / "larder.yaml").write_text(yaml.safe_dump(settings))
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


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The world on the embedded defaults (SQLite catalog, local Delta tables, MLflow on sqlite)."""
    yield from _world(tmp_path_factory.mktemp("models-world") / "root")


@pytest.fixture(scope="session")
def team_world(tmp_path_factory: pytest.TempPathFactory, postgres, s3_bucket: str, moto_endpoint: str
               ) -> Iterator[World]:
    """The same world on a team deployment: PostgreSQL catalog, Delta tables on the S3 API server."""
    import uuid

    from _services import s3_options

    schema = f"w_{uuid.uuid4().hex[:10]}"
    postgres.execute(f"CREATE SCHEMA {schema}")
    settings = {"catalog_url": postgres.url(schema=schema), "storage": f"s3://{s3_bucket}/{schema}",
                "storage_options": s3_options(moto_endpoint)}
    yield from _world(tmp_path_factory.mktemp("team-world") / "root", settings)


@pytest.fixture(params=["local", "team"])
def any_world(request: pytest.FixtureRequest) -> World:
    """The world on each deployment (local embedded defaults; team: PostgreSQL + S3)."""
    return request.getfixturevalue("world" if request.param == "local" else "team_world")


@pytest.fixture(scope="session")
def server_world(tmp_path_factory: pytest.TempPathFactory, postgres, s3_bucket: str, moto_endpoint: str,
                 mlflow_server: str) -> Iterator[World]:
    """The world on a whole team deployment: PostgreSQL catalog, Delta tables on the S3 API server and
    MLflow on a tracking server (``mlflow server``: backend on PostgreSQL, artifacts on the S3 API)."""
    import uuid

    from _services import s3_options

    schema = f"ms_{uuid.uuid4().hex[:10]}"
    postgres.execute(f"CREATE SCHEMA {schema}")
    settings = {"catalog_url": postgres.url(schema=schema), "storage": f"s3://{s3_bucket}/{schema}",
                "storage_options": s3_options(moto_endpoint), "mlflow_tracking_uri": mlflow_server}
    yield from _world(tmp_path_factory.mktemp("server-world") / "root", settings)
