"""Feast 0.67's Spark offline store on the benchmark's data: run by ``benchmarks/spark.py`` with the
Python of a venv holding ``feast[spark]==0.67.0`` (``benchmarks/.feast-spark-venv``, made on first use).

    python _feast_spark.py --data DIR --repeats N [--result OUT.parquet] [--driver-memory 4g]

A Feast repo in a temporary directory: a ``SparkSource`` over ``features.parquet`` (event and created
timestamps), a feature view with f1..f10 and a ten-year TTL, ``offline_store: {type: spark}`` on
``local[2]``. Each repeat times ``get_historical_features(labels, f1..f10)`` through
``to_spark_df()`` and a ``noop`` write (the rows computed, nothing collected), as larder's Spark run is
timed; one more run collects the result to ``--result`` for the correctness check. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

# a benchmark script named like a standard module would shadow it (pyspark imports profile)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

FEATS = [f"f{k}" for k in range(1, 11)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--result")
    ap.add_argument("--driver-memory", default="4g")
    ap.add_argument("--shuffle-partitions", default="8")
    a = ap.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, ValueType
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
    from feast.types import Float64, Int64

    repo = tempfile.mkdtemp(prefix="feast-spark-")
    with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
        f.write(
            "project: bench\nprovider: local\n"
            f"registry: {repo}/registry.db\n"
            f"online_store:\n  type: sqlite\n  path: {repo}/online.db\n"
            "offline_store:\n  type: spark\n  spark_conf:\n"
            "    spark.master: \"local[2]\"\n"
            f"    spark.driver.memory: \"{a.driver_memory}\"\n"
            f"    spark.sql.shuffle.partitions: \"{a.shuffle_partitions}\"\n"
            "    spark.ui.enabled: \"false\"\n"
            "    spark.sql.session.timeZone: \"UTC\"\n"
            "entity_key_serialization_version: 3\n")
    with contextlib.redirect_stdout(sys.stderr):
        store = FeatureStore(repo_path=repo)
        entity = Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64)
        src = SparkSource(name="features_src", path=os.path.abspath(os.path.join(a.data, "features.parquet")),
                          file_format="parquet", timestamp_field="event_timestamp",
                          created_timestamp_column="created_timestamp")
        fv = FeatureView(name="fv", entities=[entity], ttl=timedelta(days=3650),
                         schema=[Field(name="entity_id", dtype=Int64)] + [Field(name=c, dtype=Float64) for c in FEATS],
                         source=src, online=False)
        store.apply([entity, fv])
    labels = pd.read_parquet(os.path.join(a.data, "labels.parquet"))
    refs = [f"fv:{c}" for c in FEATS]
    walls = []
    for _ in range(a.repeats):
        with contextlib.redirect_stdout(sys.stderr):
            t0 = time.perf_counter()
            job = store.get_historical_features(entity_df=labels, features=refs)
            job.to_spark_df().write.format("noop").mode("overwrite").save()
            walls.append(time.perf_counter() - t0)
    if a.result:
        with contextlib.redirect_stdout(sys.stderr):
            out = store.get_historical_features(entity_df=labels, features=refs).to_df()
        out[["entity_id", "event_timestamp", "label", *FEATS]].to_parquet(a.result)
    import feast
    import pyspark

    print(json.dumps({"mode": "feast_spark", "wall_s": walls, "feast": feast.__version__,
                      "pyspark": pyspark.__version__}))


if __name__ == "__main__":
    main()
