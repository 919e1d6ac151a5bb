"""Fixtures of the web-catalog tests: one catalog (``ui_world.py``) per session, an in-process app
over it for the API tests, and a real ``larder ui`` server for the browser tests."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ui_world import TOKEN, UIWorld, build_world  # noqa: E402


@pytest.fixture(scope="session")
def ui_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIWorld]:
    from larder.client import FeatureEngineeringClient

    root = tmp_path_factory.mktemp("ui-world") / "root"
    with pytest.MonkeyPatch.context() as mp:
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "LARDER_CONFIG", "LARDER_ROOT", "LARDER_UI_TOKEN"):
            mp.delenv(var, raising=False)
        mp.setenv("LARDER_DISABLE_PROGRESS", "1")
        fe = FeatureEngineeringClient(root=root)
        try:
            world = build_world(fe, root)
        finally:
            fe.close()
        yield world


@pytest.fixture(scope="session")
def http(ui_world: UIWorld) -> Iterator[Any]:
    """A client of the catalog's app (editable, no token), in process."""
    from fastapi.testclient import TestClient

    from larder.ui import create_app

    with TestClient(create_app(ui_world.root, token="", allow_edit=True), base_url="http://127.0.0.1") as client:
        yield client


def _ready(port: int) -> bool:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/health", headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def ui_server(ui_world: UIWorld) -> Iterator[str]:
    """``larder ui --token ... --allow-edit`` on a free loopback port; yields its base URL."""
    from _services import ServiceProcess, free_port

    exe = Path(sys.executable).parent / "larder"
    env_token = os.environ.pop("LARDER_UI_TOKEN", None)
    port = free_port()
    server = ServiceProcess("larder-ui", [str(exe), "ui", "--root", str(ui_world.root), "--port", str(port),
                                          "--token", TOKEN, "--allow-edit"], port, _ready)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        if env_token is not None:
            os.environ["LARDER_UI_TOKEN"] = env_token
