"""The Spark engine: larder's offline engine contract on Spark (``engine: spark`` in ``larder.yaml``).

Modules:

- :mod:`~larder.offline.spark.session` -- the SparkSession (active, or started from the config), the
  missing-pyspark/Java errors, detection of Delta's jars
- :mod:`~larder.offline.spark.schema` -- Spark and Arrow types; normalising and conforming Spark frames
- :mod:`~larder.offline.spark.storage` -- Delta reads from the active file list, parquet written by
  Spark and committed through deltalake's transaction API, merges computed in Spark
- :mod:`~larder.offline.spark.checks` -- key checks and profiles of a write, computed in Spark
- :mod:`~larder.offline.spark.quality` -- expectations evaluated on the executors
- :mod:`~larder.offline.spark.pit` -- the point-in-time join: DuckDB's kernel per key bucket
- :mod:`~larder.offline.spark.engine` -- :class:`SparkEngine`, tying them together

pyspark is imported only when a Spark engine is made: ``import larder`` never starts a JVM.
"""

from larder.offline.spark.engine import SparkEngine, is_spark_frame

__all__ = ["SparkEngine", "is_spark_frame"]
