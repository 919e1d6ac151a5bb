"""End to end through ``mlflow models serve``: the served model looks its features up online (the
``houses`` table in DynamoDB through moto, ``house_extras`` in SQLite), applies the feature function
and the defaults, and predicts exactly what ``score_batch`` predicts offline for the same rows.

One server process serves every assertion of this module.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from models_world import ModelServer, requests_frame


@pytest.fixture(scope="module")
def served(world, moto_endpoint):
    world.activate()
    world.publish(world.dynamodb_spec(moto_endpoint), tables=("houses",))
    world.publish(world.sqlite_spec("serve-online.db"), tables=("house_extras",))
    server = ModelServer(f"models:/{world.model_name}/1", world.activate())
    try:
        yield server
    finally:
        server.stop()


def test_served_predictions_equal_score_batch(world, served):
    req = requests_frame()
    status, body = served.invoke(req)
    assert status == 200, body
    online = np.asarray(body["predictions"], dtype="float64")
    offline = world.fe.score_batch(world.model_uri, req)
    assert len(online) == len(req)
    np.testing.assert_allclose(online, offline["prediction"].to_numpy(), rtol=0, atol=1e-9)
    # unseen Ids were scored with the lookups' defaults
    unseen = offline[offline["Id"] >= 1000]
    assert len(unseen) == 3 and (unseen["GrLivArea"] == 1500.0).all() and (unseen["GarageCars"] == 1).all()


def test_served_model_reads_the_stores_it_was_published_to(world, served):
    pm = world.load_pyfunc()
    sources = pm.unwrap_python_model().online_model.sources
    assert sources["main.default.houses"].spec.type == "dynamodb"
    assert sources["main.default.house_extras"].spec.type == "sqlite"
    assert {s.origin for s in sources.values()} == {"catalog"}


def test_served_model_rejects_bad_requests(served):
    status, body = served.invoke(pd.DataFrame({"YrSold": [2008]}))  # no Id
    assert status == 400 and "Id" in str(body)
    status, body = served.invoke(requests_frame().head(2), params={"missing_keys": "sometimes"})
    assert status >= 400 and "missing-key policy" in str(body)


def test_single_row_and_records_orientation(world, served):
    import json
    import urllib.request

    body = json.dumps({"dataframe_records": [{"Id": 3, "YrSold": 2009}]}).encode()
    req = urllib.request.Request(f"{served.url}/invocations", data=body,
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        pred = json.loads(resp.read())["predictions"]
    expect = world.fe.score_batch(world.model_uri, pd.DataFrame({"Id": [3], "YrSold": [2009]}))["prediction"]
    assert pred == pytest.approx(expect.tolist(), abs=1e-9)


def _post(served, body: dict) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{served.url}/invocations", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.mark.parametrize("fmt", ["dataframe_records", "dataframe_split", "inputs_columns", "inputs_records"])
def test_every_mlflow_payload_format(world, served, fmt):
    """The served model answers each of MLflow's request formats with score_batch's predictions
    (the same formats ``larder serve`` takes: tests/serving/test_server.py)."""
    rows = requests_frame().head(5)
    records = [{"Id": int(i), "YrSold": int(y)} for i, y in zip(rows["Id"], rows["YrSold"], strict=True)]
    body = {
        "dataframe_records": {"dataframe_records": records},
        "dataframe_split": {"dataframe_split": {"columns": ["Id", "YrSold"],
                                                "data": [[r["Id"], r["YrSold"]] for r in records]}},
        "inputs_columns": {"inputs": {"Id": [r["Id"] for r in records], "YrSold": [r["YrSold"] for r in records]}},
        "inputs_records": {"inputs": records},
    }[fmt]
    status, out = _post(served, body)
    assert status == 200, out
    expect = world.fe.score_batch(world.model_uri, rows)["prediction"]
    assert out["predictions"] == pytest.approx(expect.tolist(), abs=1e-9)
