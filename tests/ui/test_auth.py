"""The token protects every route; the read-only mode refuses edits; edits are recorded with who and
when; the Host check."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from ui_world import TOKEN

from larder.ui import create_app

SAMPLE = {"name": "main.default.houses", "version": "1", "run_id": "abc", "artifact_path": "model",
          "filename": "app.css"}


def _routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, concrete path) the app serves, with its path parameters filled in."""
    out = []
    for r in app.routes:
        for method in sorted(getattr(r, "methods", None) or []):
            if method == "HEAD":
                continue
            path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: SAMPLE[m.group(1)], r.path)
            out.append((method, path))
    return out


@pytest.fixture(scope="module")
def guarded(ui_world: Any) -> Any:
    with TestClient(create_app(ui_world.root, token=TOKEN, allow_edit=True), base_url="http://127.0.0.1") as c:
        yield c


def test_every_route_needs_the_token(guarded: Any) -> None:
    routes = _routes(guarded.app) + [("POST", "/login"), ("GET", "/no/such/page")]
    assert len(routes) > 30 and ("GET", "/openapi.json") in routes and ("PATCH", "/api/tables/main.default.houses") in routes
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "larder_ui_token=wrong"},
                        {"Authorization": f"Basic {TOKEN}"}):
            r = guarded.request(method, path, headers=headers, json={} if method == "PATCH" else None)
            assert r.status_code == 401, (method, path, headers, r.status_code)
            assert "main.default.houses" not in r.text  # nothing of the catalog leaks
        r = guarded.request(method, path + ("&" if "?" in path else "?") + "token=wrong")
        assert r.status_code == 401, (method, path)
    ok = 0
    for method, path in routes:
        if method == "GET" and path != "/no/such/page":
            r = guarded.get(path, headers={"Authorization": f"Bearer {TOKEN}"}, follow_redirects=False)
            assert r.status_code in (200, 307, 404), (path, r.status_code, r.text[:300])  # 404: sample names
            ok += 1
    assert ok > 25


def test_browser_sign_in_by_query_token_or_form(guarded: Any) -> None:
    page = guarded.get("/tables", headers={"accept": "text/html"})
    assert page.status_code == 401 and '<form method="post" action="/login">' in page.text
    assert guarded.cookies.get("larder_ui_token") is None
    r = guarded.get("/tables?q=house&token=" + TOKEN, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/tables?q=house"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    guarded.cookies.clear()
    wrong = guarded.post("/login", data={"token": "nope", "next": "/tables"})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    right = guarded.post("/login", data={"token": TOKEN, "next": "/models"}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == "/models"
    away = guarded.post("/login", data={"token": TOKEN, "next": "//evil.example/"}, follow_redirects=False)
    assert away.headers["location"] == "/"  # never redirects off the site
    guarded.cookies.set("larder_ui_token", TOKEN)
    assert guarded.get("/api/tables").status_code == 200
    guarded.cookies.clear()


def test_token_from_the_environment(ui_world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LARDER_UI_TOKEN", "from-env")
    with TestClient(create_app(ui_world.root), base_url="http://127.0.0.1") as c:
        assert c.get("/api/health").status_code == 401
        assert c.get("/api/health", headers={"Authorization": "Bearer from-env"}).json()["status"] == "ok"


def test_host_check_refuses_other_names(http: Any) -> None:
    """A loopback server answers only to loopback names (a page on another site cannot reach it
    through DNS rebinding)."""
    assert http.get("/api/health", headers={"host": "evil.example:8050"}).status_code == 400
    assert http.get("/api/health", headers={"host": "localhost:8050"}).status_code == 200


# ------------------------------------------------------------------------------------ edits
@pytest.fixture()
def small(fe: Any) -> Any:
    fe.create_table("main.ops.stations", "station", df=pd.DataFrame({"station": ["a", "b"], "riders": [1, 2]}),
                    description="Stations", tags={"domain": "transit"})
    return fe


def test_read_only_refuses_edits_and_writes_nothing(small: Any, larder_root: Path) -> None:
    from larder.catalog.edits import EditRecord

    with TestClient(create_app(larder_root, token=""), base_url="http://127.0.0.1") as c:
        r = c.patch("/api/tables/main.ops.stations", json={"description": "changed", "tags": {"x": "1"}})
        assert r.status_code == 403 and "--allow-edit" in r.json()["detail"]
        assert 'id="edit-form"' not in c.get("/tables/main.ops.stations").text
        assert "read-only" in c.get("/tables").text
    t = small.get_table("main.ops.stations")
    assert t.description == "Stations" and t.tags == {"domain": "transit"}
    with small._ctx.catalog.session() as s:
        assert s.query(EditRecord).count() == 0


def test_edits_are_applied_and_recorded_with_who_and_when(small: Any, larder_root: Path) -> None:
    with TestClient(create_app(larder_root, token="", allow_edit=True), base_url="http://127.0.0.1") as c:
        assert 'id="edit-form"' in c.get("/tables/main.ops.stations").text
        r = c.patch("/api/tables/ops.stations", headers={"X-Larder-User": "ada"},
                    json={"description": "Train stations", "owner": "ops-team", "tags": {"domain": None, "tier": "gold"},
                          "feature_descriptions": {"riders": "Riders per day"}})
        assert r.status_code == 200, r.text
        changes = {c_["field"]: (c_["old_value"], c_["new_value"]) for c_ in r.json()["changes"]}
        assert changes == {"description": ("Stations", "Train stations"), "owner": (changes["owner"][0], "ops-team"),
                           "tag:domain": ("transit", None), "tag:tier": (None, "gold"),
                           "feature:riders.description": (None, "Riders per day")}
        t = small.get_table("main.ops.stations")
        assert (t.description, t.owner, t.tags) == ("Train stations", "ops-team", {"tier": "gold"})
        assert next(f for f in t.features if f.name == "riders").description == "Riders per day"
        edits = c.get("/api/edits", params={"name": "ops.stations"}).json()["edits"]
        assert len(edits) == 5 and {e["edited_by"] for e in edits} == {"ada"}
        assert all(e["object_name"] == "main.ops.stations" and e["edited_at"] for e in edits)
        assert "ada" in c.get("/edits").text and "Train stations" in c.get("/tables/main.ops.stations").text
        # the same values again change nothing and record nothing
        again = c.patch("/api/tables/ops.stations", json={"description": "Train stations", "tags": {"tier": "gold"}})
        assert again.json()["changes"] == []
        # bad input: nothing is written
        bad = c.patch("/api/tables/ops.stations", json={"description": "X", "feature_descriptions": {"nope": "?"}})
        assert bad.status_code == 400 and "nope" in bad.json()["detail"]
        assert c.patch("/api/tables/ops.stations", json={"tags": {" ": "v"}}).status_code == 400
        assert c.patch("/api/tables/ops.stations", json={"colour": "red"}).status_code == 422
        assert c.patch("/api/tables/main.ops.nope", json={"description": "x"}).status_code == 404
        assert small.get_table("main.ops.stations").description == "Train stations"
        assert len(c.get("/api/edits").json()["edits"]) == 5
        anonymous = c.patch("/api/tables/ops.stations", json={"owner": "someone"}).json()["changes"]
        assert anonymous[0]["edited_by"]  # the server's user when the editor gave no name
