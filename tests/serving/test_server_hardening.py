"""The feature server under hostile requests: every 4xx and 5xx is larder's JSON ``{"error", "detail"}``,
bodies and nesting are bounded (configurable), and keys are checked record by record."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from larder.serving.app import create_app
from larder.training import FeatureLookup


@pytest.fixture()
def served(fe):  # type: ignore[no-untyped-def]
    fe.create_table("houses", "Id", df=pd.DataFrame({"Id": [1, 2, 3], "q": [7, 5, 8]}))
    fe.publish_table("houses")
    fe.create_feature_spec("price", [FeatureLookup("houses", "Id")])
    return fe


def post(http, body: bytes, path: str = "/features/price"):
    return http.post(path, content=body, headers={"content-type": "application/json"})


def larder_error(r, status: int, error: str | None = None, detail: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "detail"}, body
    if error is not None:
        assert body["error"] == error, body
    if detail is not None:
        assert detail in body["detail"], body
    return body


@pytest.mark.parametrize(("body", "detail"), [
    (b'{"keys": [{"Id": %d}]}' % 2**70, "64-bit"),
    (b'{"keys": [{"Id": -%d}]}' % 2**64, "64-bit"),
    (b'{"keys": [{"Id": Infinity}]}', "Infinity"),
    (b'{"keys": [{"Id": -Infinity}]}', "Infinity"),
    (b'{"keys": [{"Id": NaN}]}', "NaN"),
    (b'{"keys": [{"Id": 1e400}]}', "finite"),
    (b'{"keys": [{"Id": 1}, {"id": 2}]}', "Row 1"),
    (b'{"keys": [{"Id": 1}, {}]}', "Row 1"),
    (b'{"keys": [{"Id": null}]}', "null"),
    (b'{"keys": {"Id": [1, null]}}', "null"),
    (b'{"keys": {"Id": [1, %d]}}' % 2**70, "64-bit"),
    (b'{"keys": {"Other": [1]}}', "'Id'"),
    (b'[' * 50_000 + b']' * 50_000, "nested"),
    (b'{"keys": ' + b'[' * 100 + b']' * 100 + b'}', "nested"),
    (b'{"keys": [{"Id": 1}]', "not valid JSON"),
    (b'\xff\xfe', "not valid JSON"),
    (b'', "not valid JSON"),
])
def test_bad_bodies_are_400_with_larder_errors(served, body, detail) -> None:
    with TestClient(create_app(served.root)) as http:
        larder_error(post(http, body), 400, detail=detail)


def test_body_size_limit_is_413_and_configurable(served, monkeypatch) -> None:
    big = b'{"keys": [' + b",".join(b'{"Id": 1}' for _ in range(200_000)) + b']}'  # ~2 MiB
    with TestClient(create_app(served.root)) as http:
        larder_error(post(http, big), 413, "RequestTooLarge", "1048576")
        assert post(http, b'{"keys": [{"Id": 1}]}').status_code == 200
    with TestClient(create_app(served.root, max_body_bytes=4 * 2**20)) as http:
        r = post(http, big)
        assert r.status_code == 200 and r.json()["rows"] == 200_000
    monkeypatch.setenv("LARDER_SERVE_MAX_BODY_BYTES", "100")
    with TestClient(create_app(served.root)) as http:
        larder_error(post(http, b'{"keys": [' + b'{"Id": 1},' * 20 + b'{"Id": 1}]}'), 413, detail="100")
    monkeypatch.setenv("LARDER_SERVE_MAX_JSON_DEPTH", "2")
    with TestClient(create_app(served.root)) as http:
        larder_error(post(http, b'{"keys": [{"Id": 1}]}'), 400, detail="nested")


def test_every_route_answers_larder_json(served) -> None:
    with TestClient(create_app(served.root), raise_server_exceptions=False) as http:
        larder_error(http.get("/nope"), 404, "NotFound")
        larder_error(http.post("/specs"), 405, "MethodNotAllowed")
        larder_error(http.get("/features/price"), 405, "MethodNotAllowed")
        larder_error(post(http, b'{"keys": [{"Id": 1}]}', "/features/nope"), 404, "FeatureSpecError")
        assert http.get("/health").json() == {"status": "ok"}


def test_unexpected_errors_are_json_500_without_internals(served, monkeypatch) -> None:
    from larder.serving import app as server

    def boom(*args, **kwargs):  # a bug deep in the lookup, not a LarderError
        raise ZeroDivisionError("secret internal state")

    with TestClient(create_app(served.root), raise_server_exceptions=False) as http:
        monkeypatch.setattr(server, "lookup_payload", boom)
        body = larder_error(post(http, b'{"keys": [{"Id": 1}]}'), 500, "InternalError")
        assert "secret" not in body["detail"]


def test_extra_columns_are_checked_too(served) -> None:
    with TestClient(create_app(served.root)) as http:
        larder_error(post(http, b'{"keys": [{"Id": 1, "id": %d}]}' % 2**70), 400, detail="'id'")
        larder_error(post(http, b'{"keys": {"Id": [1], "x": [%d]}}' % 2**70), 400, detail="'x'")
        r = post(http, b'{"keys": [{"Id": 1, "note": null}]}')
        assert r.status_code == 200 and r.json()["features"][0]["note"] is None
