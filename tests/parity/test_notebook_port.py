"""A notebook written for databricks-feature-engineering 0.18.2 runs on larder with only its imports
changed, and computes what it should.

``notebook_dbx_0_18_2.py`` is the Databricks notebook. The port rewrites its import lines
(``databricks.feature_engineering`` becomes ``larder``, and the notebook's ``spark`` global is imported
from ``larder.session``); every other line is unchanged, which the test checks. The port runs in a fresh
process on a fresh larder root, and the test then checks its results against an independent pandas
computation of the same features (the brute-force oracle) and against the model itself.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

NOTEBOOK = Path(__file__).with_name("notebook_dbx_0_18_2.py")


def port(source: str) -> str:
    """The notebook with its imports changed, and nothing else."""
    out = []
    for line in source.splitlines():
        if line.startswith(("from databricks.feature_engineering", "import databricks.feature_engineering")):
            line = line.replace("databricks.feature_engineering", "larder")
            if "from larder import" in line:
                out.append("from larder.session import spark")
        out.append(line)
    return "\n".join(out) + "\n"


def test_port_changes_only_imports() -> None:
    original = NOTEBOOK.read_text(encoding="utf-8")
    changed = [line for line in difflib.ndiff(original.splitlines(), port(original).splitlines())
               if line.startswith(("- ", "+ "))]
    assert changed, "the port changed nothing"
    assert all(line[2:].startswith(("from ", "import ")) for line in changed), changed


@pytest.fixture(scope="module")
def ported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("notebook")
    script = work / "notebook_on_larder.py"
    script.write_text(port(NOTEBOOK.read_text(encoding="utf-8")), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_REGISTRY"))}
    env.update({"LARDER_ROOT": str(work / "larder"), "LARDER_DISABLE_PROGRESS": "1",
                "MLFLOW_DISABLE_TELEMETRY": "true"})
    src = Path(__file__).resolve().parents[2] / "src"
    env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(script)], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    results = json.loads((work / "notebook_results.json").read_text())
    results["stderr"] = proc.stderr
    results["root"] = str(work / "larder")
    return results


def _oracle() -> pd.DataFrame:
    """The training set the notebook asks for, computed directly with pandas."""
    houses = pd.DataFrame({
        "house_id": list(range(1, 41)), "region": ["north", "south", "east", "west"] * 10,
        "sqft": [800.0 + 37.0 * i for i in range(40)], "year_built": [1950 + (i * 7) % 70 for i in range(40)],
        "bedrooms": [1 + i % 5 for i in range(40)],
    }).set_index("house_id")
    market = {(r, m): 100.0 + 5.0 * ri + 1.5 * m for ri, r in enumerate(["north", "south", "east", "west"])
              for m in range(1, 13)}
    rows = []
    for i in range(60):
        hid, sold = (i * 3) % 40 + 1, datetime(2023, 1 + i % 12, 1 + i % 27, 12)
        h = houses.loc[hid]
        # latest market row at or before the sale, within 62 days, else the default
        candidates = [(datetime(2023, m, 1), v) for (r, m), v in market.items()
                      if r == h["region"] and datetime(2023, m, 1) <= sold
                      and datetime(2023, m, 1) >= sold - timedelta(days=62)]
        idx = max(candidates)[1] if candidates else 100.0
        rows.append({"sqft": h["sqft"], "year_built": h["year_built"], "bedrooms": h["bedrooms"],
                     "market_index": idx, "age": sold.year - h["year_built"],
                     "sqft_per_bedroom": h["sqft"] / h["bedrooms"],
                     "price": 150_000.0 + 900.0 * ((i * 3) % 40) + 2_000.0 * (i % 12)})
    return pd.DataFrame(rows)


def test_training_set_matches_the_oracle(ported: dict) -> None:
    got = pd.DataFrame(ported["training"])
    want = _oracle()
    assert ported["training_columns"] == list(want.columns)
    assert ported["training_rows"] == 60
    for col in want.columns:
        np.testing.assert_allclose(got[col].astype(float), want[col].astype(float), rtol=0, atol=1e-9, err_msg=col)


def test_model_scored_and_served_as_databricks_would(ported: dict) -> None:
    import mlflow

    assert ported["prediction_columns"][-1] == "prediction" and len(ported["predictions"]) == 3
    # the registered model (registry URI databricks-uc mapped to larder's) predicts the same online
    from larder import FeatureEngineeringClient

    fe = FeatureEngineeringClient(root=ported["root"])
    try:
        mlflow.set_tracking_uri(f"sqlite:///{ported['root']}/mlflow.db")
        mlflow.set_registry_uri(f"sqlite:///{ported['root']}/mlflow.db")
        # the notebook's predictions are score_batch's on the same rows
        batch = pd.DataFrame({"house_id": [2, 17, 33], "region": ["south", "north", "north"],
                              "sold_at": pd.to_datetime(["2023-06-15", "2023-11-02", "2023-03-03"])})
        again = fe.score_batch(model_uri="models:/ml.houses.price_model/1", df=batch)
        np.testing.assert_allclose(again["prediction"], ported["predictions"], rtol=0, atol=1e-9)
        # online (the published latest values) equals offline where the latest value is the
        # point-in-time one: sales after the last market row, within its lookback window
        december = batch.assign(sold_at=pd.to_datetime(["2023-12-15", "2023-12-02", "2023-12-31"]))
        model = mlflow.pyfunc.load_model("models:/ml.houses.price_model/1")
        online = model.predict(december)
        offline = fe.score_batch(model_uri="models:/ml.houses.price_model/1", df=december)["prediction"]
        np.testing.assert_allclose(np.asarray(online, dtype=float), offline, rtol=0, atol=1e-9)
        assert fe.get_feature_serving_endpoint(name="house-price-features").state["ready"] == "READY"
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        fe.close()
    assert ported["endpoint_state"]["ready"] == "READY"
    assert ported["endpoint_url"].endswith("/serving-endpoints/house-price-features/invocations")
    assert ported["market_primary_keys"] == ["region"] and ported["market_timestamp_keys"] == ["ts"]
    assert ported["market_online_stores"] == ["ml.houses.market_online"]
    # the registry line of the notebook was mapped, and said so once
    assert ported["stderr"].count("'databricks-uc' (Databricks) is mapped to larder's own registry") == 1
