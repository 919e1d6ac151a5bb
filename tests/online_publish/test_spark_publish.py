"""publish_table on the Spark engine: the newest row per key chosen in Spark; DynamoDB and Redis written
from the executors, SQLite (and every overwrite) through the driver; newest wins."""

from __future__ import annotations

import pandas as pd
import pytest

from larder.errors import PublishError
from larder.online import publish_spark
from larder.training import FeatureLookup


def events() -> pd.DataFrame:
    ts = pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01", "2024-01-05", "2024-01-06", "2024-01-02"],
                        utc=True)
    return pd.DataFrame({"uid": [1, 1, 1, 2, 2, 3], "ts": ts, "x": [1.0, 3.0, 2.0, 10.0, 20.0, 5.0],
                         "tag": ["a", "c", "b", "p", "q", "z"]})


def online(fe, keys: list[int]) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    lk = FeatureLookup("ev", "uid", timestamp_lookup_key="at")
    return fe.get_online_features([lk], pd.DataFrame({"uid": keys}), include_found=True)


def test_publish_from_spark(fe_spark, spark, store_spec, monkeypatch) -> None:
    spec, kind = store_spec, store_spec.type
    if kind == "dynamodb":  # executors take credentials from their own environment (spark.executorEnv.*)
        import os

        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            monkeypatch.setitem(spark.sparkContext.environment, var, os.environ[var])
    through_driver = []
    real = publish_spark._local_batches
    monkeypatch.setattr(publish_spark, "_local_batches",
                        lambda *a, **k: (through_driver.append(1), real(*a, **k))[1])
    fe_spark.create_table("ev", ["uid"], timestamp_keys="ts", df=spark.createDataFrame(events()).repartition(3))
    pub = fe_spark.publish_table("ev", spec)
    assert pub.rows == 3 and pub.store_type == kind
    assert bool(through_driver) == (kind == "sqlite")  # networked stores: written by the executors
    got = online(fe_spark, [2, 1, 3, 9])
    assert got["x"].tolist()[:3] == [20.0, 3.0, 5.0] and got["_found_ev"].tolist() == [True, True, True, False]
    # older rows republished change nothing (newest wins); a newer row replaces its key
    older = pd.DataFrame({"uid": [1, 2], "ts": pd.to_datetime(["2023-06-01", "2024-06-01"], utc=True),
                          "x": [-1.0, 99.0], "tag": ["old", "new"]})
    fe_spark.write_table("ev", spark.createDataFrame(older), mode="overwrite")
    fe_spark.publish_table("ev", spec)
    assert online(fe_spark, [1, 2, 3])["x"].tolist() == [3.0, 99.0, 5.0]
    # a Spark SQL filter applies before the newest row is taken; overwrite swaps in exactly those rows
    pub = fe_spark.publish_table("ev", spec, mode="overwrite", filter_condition="tag = 'old'")
    assert pub.rows == 1
    got = online(fe_spark, [1, 2, 3])
    assert got["_found_ev"].tolist() == [True, False, False] and got["x"].iloc[0] == -1.0
    with pytest.raises(PublishError, match="Spark SQL predicate"):
        fe_spark.publish_table("ev", spec, filter_condition="nope >")
