"""Run by ``test_spark_cluster.py`` in a process of its own (one SparkContext per process): a training
set and ``score_batch`` of the model world through a standalone cluster.

``python _spark_cluster_job.py ROOT LABELS.parquet REQUESTS.parquet MODEL_URI OUT_DIR``; larder.yaml
comes from ``LARDER_CONFIG`` (``engine: spark``, ``spark_master: spark://...``). Writes ``train.parquet``,
``scored.parquet`` and ``executors.json`` (how many block managers: the driver's and the executors') to
OUT_DIR.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main(root: str, labels: str, requests: str, model_uri: str, out: str) -> None:
    from models_world import DEFAULTS_EXTRAS, DEFAULTS_HOUSES

    from larder.client import FeatureEngineeringClient
    from larder.training import FeatureFunction, FeatureLookup

    fe = FeatureEngineeringClient(root)
    spark = fe._ctx.engine.session
    lookups = [FeatureLookup("houses", "Id", default_values=DEFAULTS_HOUSES),
               FeatureLookup("house_extras", "Id", default_values=DEFAULTS_EXTRAS),
               FeatureFunction("house_age", input_bindings={"year_built": "YearBuilt", "year_sold": "YrSold"},
                               output_name="age")]
    ts = fe.create_training_set(spark.read.parquet(labels), lookups, label="SalePrice", exclude_columns=["Id"])
    ts.load_df().toPandas().to_parquet(Path(out) / "train.parquet")
    fe.score_batch(model_uri, spark.read.parquet(requests)).toPandas().to_parquet(Path(out) / "scored.parquet")
    # the driver's and each executor's block manager (host:port)
    managers = int(spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size())
    (Path(out) / "executors.json").write_text(json.dumps({"master": spark.sparkContext.master,
                                                          "block_managers": managers}))
    fe.close()
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:6])
