"""Training sets and ``score_batch`` on the Spark engine equal the DuckDB engine's, row for row.

The model world (``models_world.py``: two tables with defaults, a feature function, a logged sklearn
pipeline) is built once on DuckDB; a second client on the same root selects the Spark engine through
``LARDER_CONFIG``, so both engines read the same Delta tables and the same model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from models_world import requests_frame

from larder.errors import ModelError


@pytest.fixture(scope="module")
def spark_fe(world, spark, tmp_path_factory) -> Iterator[Any]:
    from larder.client import FeatureEngineeringClient

    config = tmp_path_factory.mktemp("spark-config") / "larder.yaml"
    config.write_text("engine: spark\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LARDER_CONFIG", str(config))
        fe = FeatureEngineeringClient(root=world.root)
    assert fe._ctx.engine.name == "spark"
    yield fe
    fe.close()


def as_pandas(df) -> pd.DataFrame:
    return df.toPandas() if hasattr(df, "toPandas") else df


def assert_same(spark_out: pd.DataFrame, duck_out: pd.DataFrame) -> None:
    assert list(spark_out.columns) == list(duck_out.columns)
    assert len(spark_out) == len(duck_out)
    for col in duck_out.columns:
        a, b = spark_out[col].reset_index(drop=True), duck_out[col].reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(b):
            np.testing.assert_allclose(a.astype("float64").to_numpy(), b.astype("float64").to_numpy(), rtol=0,
                                       atol=1e-9, equal_nan=True, err_msg=col)
        else:
            assert a.tolist() == b.tolist(), col


def test_training_set_on_spark_equals_duckdb(world, spark_fe, spark):
    from models_world import DEFAULTS_EXTRAS, DEFAULTS_HOUSES

    from larder.training import FeatureFunction, FeatureLookup

    labels = world.training_set._df
    labels = pd.concat([labels, labels.head(5)], ignore_index=True)  # duplicates stay
    labels = pd.concat([labels, pd.DataFrame({"Id": [99999], "YrSold": [2008], "SalePrice": [1.0]})],
                       ignore_index=True)
    lookups = [FeatureLookup("houses", "Id", default_values=DEFAULTS_HOUSES),
               FeatureLookup("house_extras", "Id", default_values=DEFAULTS_EXTRAS),
               FeatureFunction("house_age", input_bindings={"year_built": "YearBuilt", "year_sold": "YrSold"},
                               output_name="age")]
    duck = world.fe.create_training_set(labels, lookups, label="SalePrice", exclude_columns=["Id"]).load_df()
    spark_labels = spark.createDataFrame(labels).repartition(3)  # order comes from the partitions' order
    ts = spark_fe.create_training_set(spark_labels, lookups, label="SalePrice", exclude_columns=["Id"])
    out = ts.load_df()
    assert hasattr(out, "sparkSession") and ts.columns == out.columns
    expected_order = spark_labels.toPandas()
    assert_same(out.toPandas(), world.fe.create_training_set(expected_order, lookups, label="SalePrice",
                                                             exclude_columns=["Id"]).load_df())
    # pandas labels on the Spark engine: a Spark DataFrame too, in the labels' order
    assert_same(spark_fe.create_training_set(labels, lookups, label="SalePrice", exclude_columns=["Id"])
                .load_df().toPandas(), duck)


def test_score_batch_on_spark_equals_duckdb(world, spark_fe, spark):
    req = pd.concat([requests_frame(), requests_frame().head(3)], ignore_index=True).assign(note="x")
    duck = world.fe.score_batch(world.model_uri, req)
    got = spark_fe.score_batch(world.model_uri, spark.createDataFrame(req))
    assert hasattr(got, "sparkSession")
    assert_same(got.toPandas(), duck)
    # given feature columns override the looked-up ones, on Spark as on DuckDB
    given = req.assign(GrLivArea=4000.0)
    assert_same(spark_fe.score_batch(world.model_uri, spark.createDataFrame(given)).toPandas(),
                world.fe.score_batch(world.model_uri, given))
    ints = spark_fe.score_batch(world.model_uri, spark.createDataFrame(req), result_type="bigint")
    assert dict(ints.dtypes)["prediction"] == "bigint"
    with pytest.raises(ModelError, match="prediction"):
        spark_fe.score_batch(world.model_uri, spark.createDataFrame(req.assign(prediction=1.0)))
    with pytest.raises(ModelError, match="YrSold"):
        spark_fe.score_batch(world.model_uri, spark.createDataFrame(req.drop(columns=["YrSold"])))


def test_standalone_cluster_gives_the_local_results(world, spark_cluster, tmp_path):
    """A master and two workers on 127.0.0.1: the training set and score_batch computed on the cluster's
    executors equal the DuckDB engine's (so also the local Spark engine's, tested above)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    labels = world.training_set._df
    req = requests_frame()
    labels.to_parquet(tmp_path / "labels.parquet")
    req.to_parquet(tmp_path / "requests.parquet")
    config = tmp_path / "larder.yaml"
    config.write_text(
        f"engine: spark\nspark_master: {spark_cluster.url}\n"
        "spark_conf: {spark.executor.memory: 512m, spark.executor.cores: 1, spark.cores.max: 2, "
        "spark.sql.shuffle.partitions: 4, spark.ui.enabled: false, spark.driver.memory: 768m, "
        "spark.driver.host: 127.0.0.1, spark.driver.bindAddress: 127.0.0.1}\n")
    env = {**__import__("os").environ, "LARDER_CONFIG": str(config), "SPARK_LOCAL_IP": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    job = Path(__file__).parent / "_spark_cluster_job.py"
    done = subprocess.run([sys.executable, str(job), str(world.root), str(tmp_path / "labels.parquet"),
                           str(tmp_path / "requests.parquet"), world.model_uri, str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    info = json.loads((tmp_path / "executors.json").read_text())
    assert info["master"] == spark_cluster.url and info["block_managers"] == 3  # driver + 2 executors
    assert_same(pd.read_parquet(tmp_path / "train.parquet"), world.training_set.load_df())
    assert_same(pd.read_parquet(tmp_path / "scored.parquet"), world.fe.score_batch(world.model_uri, req))
