"""POST /push/{table}: rows pushed through the feature server (TestClient for the API and its errors,
a real uvicorn process for the end-to-end path: push, then look the features up over HTTP)."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from _services import larder_server
from larder.serving.app import create_app
from larder.training import FeatureLookup


@pytest.fixture()
def served(fe):  # type: ignore[no-untyped-def]
    fe.create_table("clicks", ["uid"], timeseries_column="ts", df=pd.DataFrame({
        "uid": [1, 2], "ts": pd.to_datetime(["2024-01-01", "2024-01-01"], utc=True), "n": [1, 2],
        "page": ["home", "cart"]}))
    fe.publish_table("clicks")
    fe.create_feature_spec("clicks_spec", [FeatureLookup("clicks", "uid", allow_latest_value=True)])
    return fe


def test_push_api(served) -> None:
    with TestClient(create_app(served.root)) as http:
        body = {"dataframe_records": [{"uid": 1, "ts": "2024-01-02T10:00:00Z", "n": 10, "page": "pay"},
                                      {"uid": 3, "ts": "2024-01-02T11:00:00", "n": 30, "page": "home"}],
                "params": {"to": "both", "push_id": "http-1", "read_after_write": True}}
        r = http.post("/push/clicks", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out["table_name"], out["rows"], out["push_id"], out["delta_version"], out["read_after_write"]) == (
            "main.default.clicks", 2, "http-1", 1, True)
        assert out["online"][0]["changed"] == 2
        got = http.post("/features/clicks_spec", json={"keys": {"uid": [1, 3]}})
        assert [row["n"] for row in got.json()["features"]] == [10, 30], got.text
        table = served.read_table("clicks")
        assert len(table) == 4 and table["ts"].max() == pd.Timestamp("2024-01-02T11:00:00", tz="UTC")
        # the same push again (a client retry): no second commit
        assert http.post("/push/clicks", json=body).json()["delta_version"] == 1
        cols = http.post("/push/main.default.clicks", json={"inputs": {"uid": [2], "ts": ["2024-01-03T00:00:00Z"],
                                                                       "n": [20], "page": ["x"]}})
        assert cols.status_code == 200 and cols.json()["delta_version"] is None  # default: online only

        bad = {
            "a null key": ({"dataframe_records": [{"uid": None, "ts": "2024-01-02", "n": 1, "page": "a"}]}, 400, "uid"),
            "a bad value": ({"dataframe_records": [{"uid": 1, "ts": "2024-01-02", "n": "many", "page": "a"}]}, 400, "'n'"),
            "a bad time": ({"dataframe_records": [{"uid": 1, "ts": "yesterday", "n": 1, "page": "a"}]}, 400, "'ts'"),
            "a missing column": ({"dataframe_records": [{"uid": 1, "ts": "2024-01-02", "n": 1}]}, 400, "page"),
            "a bad target": ({"inputs": {"uid": [1]}, "params": {"to": "nowhere"}}, 400, "to must be"),
            "an unknown param": ({"inputs": {"uid": [1]}, "params": {"mode": "x"}}, 400, "mode"),
        }
        for what, (payload, status, text) in bad.items():
            r = http.post("/push/clicks", json=payload)
            assert r.status_code == status and text in r.json()["detail"], (what, r.text)
        assert served.get_table("clicks").version == 1  # none of them wrote anything
        r = http.post("/push/nope", json={"inputs": {"uid": [1]}})
        assert r.status_code == 404 and r.json()["error"] == "TableNotFoundError"


def test_push_through_a_real_server(served) -> None:
    with larder_server(served.root) as url, httpx.Client(base_url=url, timeout=30) as http:
        for i in range(5):
            r = http.post("/push/clicks", json={"dataframe_records": [
                {"uid": 7, "ts": f"2024-01-0{i + 2}T00:00:00Z", "n": i, "page": "p"}], "params": {"to": "both"}})
            assert r.status_code == 200, r.text
            got = http.post("/features/clicks_spec", json={"keys": [{"uid": 7}]})
            assert got.json()["features"][0]["n"] == i  # readable as soon as the push returned
    assert served.get_table("clicks").version == 5
