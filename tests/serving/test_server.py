"""The feature server: FastAPI TestClient for the API and its errors, and a real uvicorn process
on a free 127.0.0.1 port for the end-to-end path."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from _services import larder_server
from larder.serving.app import create_app
from larder.training import FeatureFunction, FeatureLookup


def double(q: int) -> int:
    return None if q is None else 2 * q  # type: ignore[return-value]


@pytest.fixture()
def served(fe):  # type: ignore[no-untyped-def]
    fe.create_table("houses", "Id", df=pd.DataFrame({
        "Id": [1, 2, 3], "q": [7, 5, 8], "area": [1500.5, np.nan, 980.0], "nb": ["NAmes", None, "Edwards"],
        "sold": pd.to_datetime(["2010-05-01", "2011-06-02", "2012-07-03"], utc=True)}))
    fe.create_function("double", double)
    fe.publish_table("houses")
    fe.create_feature_spec("price", [
        FeatureLookup("houses", "Id", rename_outputs={"q": "quality"}, default_values={"quality": 0}),
        FeatureFunction("double", input_bindings={"q": "quality"}, output_name="q2"),
    ])
    return fe


def test_features_records_and_columns(served) -> None:
    with TestClient(create_app(served.root)) as http:
        r = http.post("/features/price", json={"keys": [{"Id": 3}, {"Id": 42}, {"Id": 1}]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["spec"] == "main.default.price" and body["rows"] == 3
        assert [row["Id"] for row in body["features"]] == [3, 42, 1]
        assert [row["quality"] for row in body["features"]] == [8, 0, 7]
        assert [row["q2"] for row in body["features"]] == [16, 0, 14]
        assert body["features"][1]["area"] is None and body["features"][0]["nb"] == "Edwards"
        assert body["features"][0]["sold"].startswith("2012-07-03T00:00:00")
        assert body["found"] == {"houses": [True, False, True]}
        cols = http.post("/features/main.default.price", json={"keys": {"Id": [2, 3]}}).json()
        assert [row["quality"] for row in cols["features"]] == [5, 8]
        assert cols["features"][0]["area"] is None  # NaN is sent as null
        expected = served.get_online_features("price", pd.DataFrame({"Id": [3, 42, 1]}))
        assert [row["q2"] for row in body["features"]] == expected["q2"].tolist()


#: The same three rows in every request format the server accepts (MLflow's and larder's own).
PAYLOADS = {
    "dataframe_records": {"dataframe_records": [{"Id": 3}, {"Id": 42}, {"Id": 1}]},
    "dataframe_split": {"dataframe_split": {"index": [7, 8, 9], "columns": ["Id"], "data": [[3], [42], [1]]}},
    "inputs_columns": {"inputs": {"Id": [3, 42, 1]}},
    "inputs_records": {"inputs": [{"Id": 3}, {"Id": 42}, {"Id": 1}], "params": {"unused": True}},
    "instances": {"instances": [{"Id": 3}, {"Id": 42}, {"Id": 1}]},
    "keys": {"keys": [{"Id": 3}, {"Id": 42}, {"Id": 1}]},
}


@pytest.mark.parametrize("fmt", sorted(PAYLOADS))
def test_every_payload_format_gives_the_same_features(served, fmt) -> None:
    expected = served.get_online_features("price", pd.DataFrame({"Id": [3, 42, 1]}), output="dict")
    with TestClient(create_app(served.root)) as http:
        r = http.post("/features/price", json=PAYLOADS[fmt])
        assert r.status_code == 200, r.text
        rows = r.json()["features"]
        assert [row["Id"] for row in rows] == [3, 42, 1]
        assert [row["quality"] for row in rows] == expected["quality"] == [8, 0, 7]
        assert [row["q2"] for row in rows] == expected["q2"]
        assert r.json()["found"] == {"houses": [True, False, True]}
    single = {"inputs": {"Id": 3}}  # one row as an object of scalars
    with TestClient(create_app(served.root)) as http:
        assert http.post("/features/price", json=single).json()["features"][0]["quality"] == 8


def test_feature_serving_endpoint(served) -> None:
    from larder.entities import EndpointCoreConfig, ServedEntity
    from larder.errors import ServingEndpointError

    ep = served.create_feature_serving_endpoint(
        name="price-features", config=EndpointCoreConfig(served_entities=ServedEntity(
            feature_spec_name="price", workload_size="Medium")))
    assert ep.state["ready"] == "READY" and ep.workers == 2
    assert ep.url == "http://127.0.0.1:8000/serving-endpoints/price-features/invocations"
    with pytest.raises(ServingEndpointError, match="already exists"):
        served.create_feature_serving_endpoint(name="price-features", config=EndpointCoreConfig(
            served_entities=ServedEntity(feature_spec_name="price")))
    with pytest.raises(ServingEndpointError, match="alphanumeric and dashes"):
        served.create_feature_serving_endpoint(name="-bad", config=EndpointCoreConfig(
            served_entities=ServedEntity(feature_spec_name="price")))
    with TestClient(create_app(served.root)) as http:
        for fmt in sorted(PAYLOADS):
            r = http.post("/serving-endpoints/price-features/invocations", json=PAYLOADS[fmt])
            assert r.status_code == 200, (fmt, r.text)
            outputs = r.json()["outputs"]  # Databricks' response shape
            assert [o["quality"] for o in outputs] == [8, 0, 7] and [o["q2"] for o in outputs] == [16, 0, 14]
        assert http.get("/serving-endpoints").json()["endpoints"][0]["name"] == "price-features"
        assert http.get("/serving-endpoints/price-features").json()["workload_size"] == "Medium"
        missing = http.post("/serving-endpoints/nope/invocations", json=PAYLOADS["keys"])
        assert missing.status_code == 404 and "does not exist" in missing.json()["detail"]
        assert http.get("/serving-endpoints/nope").status_code == 404
    served.delete_feature_serving_endpoint(name="price-features")
    with pytest.raises(ServingEndpointError, match=r"'price-features' does not exist.*Existing endpoints: \[.*\]\."):
        served.get_feature_serving_endpoint(name="price-features")
    # an endpoint over a spec whose table is not published is not ready, and says why
    served.create_table("other", "k", df=pd.DataFrame({"k": [1], "v": [2.0]}))
    served.create_feature_spec("unpublished", [FeatureLookup("other", "k")])
    ep = served.create_feature_serving_endpoint(
        name="later", config=EndpointCoreConfig(served_entities=ServedEntity(feature_spec_name="unpublished")))
    assert ep.state["ready"] == "NOT_READY" and "main.default.other" in ep.state["message"]


def test_health_and_specs(served) -> None:
    with TestClient(create_app(served.root)) as http:
        assert http.get("/health").json()["status"] == "ok"
        specs = http.get("/specs").json()["specs"]
        assert specs[0]["name"] == "main.default.price" and specs[0]["input_columns"] == ["Id"]
        assert specs[0]["output_columns"] == ["quality", "area", "nb", "sold", "q2"]


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"keys": [{"house": 1}]}, 400, "Row 0 of \"keys\" lacks ['Id']"),
    ({"keys": [{"Id": "one"}]}, 400, "'Id' of the DataFrame has type"),
    ({"keys": [{"Id": 1}, {"Id": "x"}]}, 400, "mix"),
    ({"rows": [{"Id": 1}]}, 400, "must be a JSON object with the rows under one of"),
    ({"dataframe_split": {"columns": ["Id"], "data": [[1, 2]]}}, 400, "does not have one value per column"),
    ({"dataframe_split": {"data": [[1]]}}, 400, '"columns" (names) and "data"'),
    ({"dataframe_records": {"Id": 1}}, 400, "must be a list of JSON objects"),
    ({"inputs": "Id"}, 400, "rows (a list of objects) or columns"),
    ({"inputs": {"Id": [1]}, "keys": [{"Id": 1}]}, 400, "use one of them"),
    ({"inputs": {"Id": [1]}, "extra": 1}, 400, "unknown field(s) ['extra']"),
    ({"keys": {"Id": [1, 2], "x": [1]}}, 400, "all of one length"),
    ({"keys": [1, 2]}, 400, "one JSON object per row"),
    ({"keys": "Id=1"}, 400, "list of records or a mapping of columns"),
])
def test_bad_requests_are_400(served, body, status, message) -> None:
    with TestClient(create_app(served.root)) as http:
        r = http.post("/features/price", json=body)
        assert r.status_code == status, r.text
        assert message in r.json()["detail"]


def test_invalid_json_unknown_spec_and_unpublished_table(served) -> None:
    served.create_table("other", "k", df=pd.DataFrame({"k": [1], "v": [2.0]}))
    served.create_feature_spec("unpublished", [FeatureLookup("other", "k")])
    with TestClient(create_app(served.root)) as http:
        r = http.post("/features/price", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
        r = http.post("/features/nope", json={"keys": [{"Id": 1}]})
        assert r.status_code == 404 and "'main.default.nope' does not exist" in r.json()["detail"]
        r = http.post("/features/bad-name", json={"keys": [{"Id": 1}]})
        assert r.status_code == 400 and "Invalid feature spec name" in r.json()["detail"]
        r = http.post("/features/unpublished", json={"keys": [{"k": 1}]})
        assert r.status_code == 404 and "not published" in r.json()["detail"]


def test_real_uvicorn_process(served) -> None:
    from larder.entities import EndpointCoreConfig, ServedEntity

    served.create_feature_serving_endpoint(
        name="price-ep", config=EndpointCoreConfig(served_entities=ServedEntity(feature_spec_name="price")))
    with larder_server(served.root) as url, httpx.Client(base_url=url, timeout=10) as http:
        r = http.post("/features/price", json={"keys": [{"Id": 1}, {"Id": 99}]})
        assert r.status_code == 200
        assert [row["quality"] for row in r.json()["features"]] == [7, 0]
        assert r.json()["found"] == {"houses": [True, False]}
        for fmt, body in PAYLOADS.items():  # MLflow's formats, through the fast lane of a real server
            got = http.post("/features/price", json=body)
            assert got.status_code == 200, (fmt, got.text)
            assert [row["quality"] for row in got.json()["features"]] == [8, 0, 7], fmt
        r = http.post("/serving-endpoints/price-ep/invocations", json=PAYLOADS["dataframe_split"])
        assert r.status_code == 200 and [o["quality"] for o in r.json()["outputs"]] == [8, 0, 7]
        # a republish is served by the running server (the same online table is read)
        served.write_table("houses", pd.DataFrame({"Id": [1], "q": [70]}))
        served.publish_table("houses")
        r = http.post("/features/price", json={"keys": [{"Id": 1}]})
        assert r.json()["features"][0]["quality"] == 70
        assert http.post("/features/nope", json={"keys": [{"Id": 1}]}).status_code == 404


def test_fast_lane_and_route_agree(served) -> None:
    from larder.serving.app import _FeaturesFastLane

    app = create_app(served.root)
    keys = {"keys": [{"Id": 3}, {"Id": 42}]}
    with TestClient(app) as http:
        lane = http.post("/features/price", json=keys)
        bad = http.post("/features/price", json={"keys": [{"Id": "one"}]})
        # the lane passes on what it does not own, and FastAPI answers it
        assert http.get("/features/price").status_code == 405
        assert http.post("/features/price/more", json=keys).status_code == 404
    # without the lane, the registered route (same handler) answers the same
    assert sum(m.cls is _FeaturesFastLane for m in app.user_middleware) == 1
    app.user_middleware = [m for m in app.user_middleware if m.cls is not _FeaturesFastLane]
    app.middleware_stack = None
    with TestClient(app) as http:
        route = http.post("/features/price", json=keys)
        route_bad = http.post("/features/price", json={"keys": [{"Id": "one"}]})
    assert lane.status_code == route.status_code == 200 and lane.json() == route.json()
    assert lane.headers["content-type"] == route.headers["content-type"] == "application/json"
    assert bad.status_code == route_bad.status_code == 400 and bad.json() == route_bad.json()
