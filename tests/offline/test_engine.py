"""The engine interface: the DuckDB engine behind tables and training sets, chosen by config."""

from __future__ import annotations

import pandas as pd
import pytest

from larder.client import FeatureEngineeringClient
from larder.errors import ConfigError
from larder.offline.engine import DuckDBEngine, Engine, get_engine


def test_default_engine_is_duckdb_and_reads_tables(fe):
    assert isinstance(fe._ctx.engine, DuckDBEngine) and isinstance(fe._ctx.engine, Engine)
    fe.create_table("t", primary_keys="k", df=pd.DataFrame({"k": [1, 2], "x": [1.0, 2.0]}))
    snap = fe._tables.snapshot("t")
    assert fe._ctx.engine.read(snap, columns=["x"]).column("x").to_pylist() == [1.0, 2.0]


def test_window_features_through_the_engine():
    df = pd.DataFrame({"u": [1, 1, 1], "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
                       "v": [1.0, 2.0, 4.0]})
    out = get_engine().window_features(df, kind="lags", by="u", order_by="ts", columns="v", periods=1)
    assert out["v_lag_1"].tolist()[1:] == [1.0, 2.0] and pd.isna(out["v_lag_1"].iloc[0])
    with pytest.raises(ConfigError, match="rolling"):
        get_engine().window_features(df, kind="ewm")


def test_unknown_engine_is_a_config_error(larder_root):
    larder_root.mkdir(parents=True)
    (larder_root / "larder.yaml").write_text("engine: spark\n")
    with pytest.raises(ConfigError, match="engine"):
        FeatureEngineeringClient(larder_root)
    with pytest.raises(ConfigError, match="duckdb"):
        get_engine("spark")


def test_amazon_dynamodb_spec_refuses_credentials_and_unknown_options():
    from larder.online.stores.specs import AmazonDynamoDBSpec

    assert AmazonDynamoDBSpec(region="eu-west-1", read_secret_prefix="scope/x").region == "eu-west-1"
    with pytest.raises(ConfigError, match="default"):
        AmazonDynamoDBSpec(region="eu-west-1", access_key_id="AKIA")
    with pytest.raises(ConfigError, match="bogus"):
        AmazonDynamoDBSpec(region="eu-west-1", bogus=1)
