"""``larder serve --ui``: the feature server with the web catalog mounted at ``/ui``; links, the token
and the feature server's own routes all work under the mount."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ui_world import HOUSES, SPEC, TOKEN


@pytest.fixture(scope="module")
def combined(ui_world: Any) -> Any:
    from larder.serving.app import create_app as feature_server
    from larder.ui.app import create_app, mount_on_feature_server

    app = mount_on_feature_server(feature_server(ui_world.root), create_app(ui_world.root, token=TOKEN))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


def test_the_catalog_lives_under_ui_with_its_links(combined: Any) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "accept": "text/html"}
    r = combined.get("/ui/", headers=auth, follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/ui/tables"
    page = combined.get("/ui/tables", headers=auth).text
    links = re.findall(r'(?:href|src|action)="([^"#?]+)', page)
    assert links and all(link.startswith("/ui/") for link in links), links
    assert f'href="/ui/tables/{HOUSES}"' in page and 'data-base="/ui"' in page
    assert combined.get(f"/ui/tables/{HOUSES}", headers=auth).status_code == 200
    assert combined.get("/ui/static/app.js", headers=auth).status_code == 200
    assert combined.get("/ui/api/tables", headers=auth).json()["total"] == 3
    missing = combined.get("/ui/tables/main.default.nope", headers=auth)
    assert missing.status_code == 404 and 'href="/ui/tables"' in missing.text


def test_the_token_guards_the_catalog_and_the_feature_server_still_answers(combined: Any) -> None:
    assert combined.get("/ui/api/tables").status_code == 401
    login = combined.get("/ui/tables", headers={"accept": "text/html"})
    assert login.status_code == 401 and 'action="/ui/login"' in login.text
    r = combined.get(f"/ui/tables?token={TOKEN}", follow_redirects=False)
    assert r.headers["location"] == "/ui/tables" and "Path=/ui;" in r.headers["set-cookie"]
    assert combined.get("/health").json()["status"] == "ok"
    served = combined.post(f"/features/{SPEC}", json={"keys": [{"Id": 1, "YrSold": 2008}]})
    assert served.status_code == 200 and served.json()["rows"] == 1
