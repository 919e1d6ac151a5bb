"""The examples run end to end (subprocess, fresh root) and print sane results."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_feature_engineering_demo_embedded_then_dynamodb(example, work: Path, tmp_path: Path, moto_endpoint: str):
    root = tmp_path / "root"
    # first run: no endpoint, the DynamoDB part is skipped with a note
    first, out = example("feature_engineering_demo.py", work, "--root", str(root))
    assert "skipping the DynamoDB part" in out
    assert first["dynamodb"] is None
    assert first["rows"] == {"houses": 2930, "train": 2344, "test": 586}
    assert "house_age" in first["features"] and "Id" not in first["features"]
    m = first["metrics"]
    assert 0.8 < m["R2"] < 0.99, m
    assert 10_000 < m["MAE"] < 30_000, m
    assert m["RMSE"] >= m["MAE"]
    assert first["model_uri"] == "models:/house_price_fe_demo/1"

    # second run on the same root: the table is updated, a new version registered, DynamoDB served
    second, out = example("feature_engineering_demo.py", work, "--root", str(root),
                              "--dynamodb-endpoint-url", moto_endpoint, "--region", "us-east-1")
    assert second["model_uri"] == "models:/house_price_fe_demo/2"
    assert second["metrics"] == pytest.approx(first["metrics"], rel=1e-9)  # same data, same seed
    ddb = second["dynamodb"]
    assert ddb["rows"] == 2930 and ddb["predictions"] == 586
    assert ddb["max_online_offline_diff"] < 1e-6

    import boto3

    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    count = client.scan(TableName=ddb["table"], Select="COUNT")
    total = count["Count"]
    while "LastEvaluatedKey" in count:
        count = client.scan(TableName=ddb["table"], Select="COUNT", ExclusiveStartKey=count["LastEvaluatedKey"])
        total += count["Count"]
    assert total == 2930
    item = client.get_item(TableName=ddb["table"], Key={"_pk": {"S": "1"}})["Item"]
    assert item["Id"] == {"N": "1"} and "OverallQual" in item


def test_train_register_moves_the_alias_only_when_better(example, work: Path, tmp_path: Path):
    root = tmp_path / "root"
    summary, out = example("train_register_fe_model.py", work, "--root", str(root))
    first, second, weak = summary["candidates"]
    assert [c["version"] for c in summary["candidates"]] == ["1", "2", "3"]
    assert first["promoted"] and first["champion_mae"] is None
    assert second["promoted"] and second["mae"] < second["champion_mae"] == pytest.approx(first["mae"])
    assert not weak["promoted"] and weak["mae"] > weak["champion_mae"] == pytest.approx(second["mae"])
    assert summary["champion_version"] == "2"
    assert summary["champion_mae"] == pytest.approx(second["mae"])
    assert summary["champion_tables"] == {"main.houses.features": 1}  # trained after the table update
    assert 0.05 < second["mae"] / summary["mean_price"] < 0.15
    assert "kept @champion on version 2" in out

    # the registry itself, read independently of the example
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert str(client.get_model_version_by_alias(summary["model_name"], "champion").version) == "2"
    versions = client.search_model_versions(f"name = '{summary['model_name']}'")
    assert sorted(str(v.version) for v in versions) == ["1", "2", "3"]


def test_chicago_temporal_point_in_time(example, work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "root"
    summary, _ = example("chicago_temporal.py", work, "--root", str(root))
    assert summary["rows"]["features"] == 5698
    assert summary["rows"]["train"] + summary["rows"]["test"] == 5698 - 28
    # better than "same day last week", and a few percent of the mean ridership
    assert summary["mae"] < 0.9 * summary["baseline_mae"], summary
    assert summary["mae"] < 0.1 * summary["mean_ridership"]
    assert summary["score_batch_max_diff"] < 1e-9
    assert "day_of_week" in summary["features"] and "ridership" not in summary["features"]

    # the feature table holds only the past: check it against the raw series
    from larder import FeatureEngineeringClient
    from larder.datasets import load_chicago

    raw = load_chicago().set_index("date")["ridership"]
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # the client may point MLflow at its root
        monkeypatch.delenv(var, raising=False)
    with FeatureEngineeringClient(root=root) as fe:
        table = fe.get_table(summary["table"])
        assert table.timestamp_keys == ["date"] and table.entity_keys == ["station"]
        feats = fe.read_table(summary["table"]).set_index("date").sort_index()
    assert (feats["station"] == "Clark_Lake").all()
    days = pd.DatetimeIndex(feats.index)
    expected_lag1 = raw.reindex(days - pd.Timedelta(days=1)).to_numpy()
    np.testing.assert_allclose(feats["ridership_lag_1"].to_numpy(dtype="float64"), expected_lag1, equal_nan=True)
    expected_lag7 = raw.reindex(days - pd.Timedelta(days=7)).to_numpy()
    np.testing.assert_allclose(feats["ridership_lag_7"].to_numpy(dtype="float64"), expected_lag7, equal_nan=True)
    # 7-day mean at d: the days d-7 .. d-1, never d itself
    for d in days[[40, 1000, 5000]]:
        window = raw[(raw.index >= d - dt.timedelta(days=7)) & (raw.index < d)]
        assert feats.loc[d, "ridership_mean_7d"] == pytest.approx(window.mean())
        assert feats.loc[d, "ridership_max_7d"] == pytest.approx(window.max())


def test_examples_write_nothing_into_the_repository():
    for leftover in ("mlruns", "mlflow.db", ".larder", "mlartifacts"):
        assert not (REPO / "examples" / leftover).exists(), leftover
