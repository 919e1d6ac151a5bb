"""The public surface is small and pinned: changing it is a deliberate act."""

import subprocess
import sys

import larder

EXPECTED = [
    "AggregationFunction",
    "AmazonDynamoDBSpec",
    "ApproxCountDistinct",
    "ApproxPercentile",
    "Avg",
    "BackfillRange",
    "BackfillState",
    "BackfillStatus",
    "ColumnSelection",
    "Count",
    "CronSchedule",
    "CronScheduleMode",
    "DataFrameSource",
    "DatabricksOnlineStore",
    "DeltaTableSource",
    "DynamoDBStoreSpec",
    "Feature",
    "FeatureColumn",
    "FeatureEngineeringClient",
    "FeatureFunction",
    "FeatureLookup",
    "FeatureSpec",
    "FeatureTable",
    "FieldDefinition",
    "First",
    "FirstN",
    "FunctionInfo",
    "LarderError",
    "Last",
    "LastN",
    "MaterializedFeature",
    "MaterializedFeaturePipelineScheduleState",
    "Max",
    "Min",
    "OfflineStoreConfig",
    "OnlineStoreConfig",
    "RedisStoreSpec",
    "RequestSource",
    "RollingWindow",
    "SQLiteStoreSpec",
    "ScalarDataType",
    "SlidingWindow",
    "StddevPop",
    "StddevSamp",
    "Sum",
    "TableTrigger",
    "TrainingSet",
    "TumblingWindow",
    "UNSET",
    "VarPop",
    "VarSamp",
    "__version__",
]


def test_all_is_pinned_and_sorted():
    assert larder.__all__ == EXPECTED
    assert sorted(larder.__all__) == larder.__all__
    for name in larder.__all__:
        assert hasattr(larder, name), name


def test_import_stays_light():
    """Importing larder must not pull in the heavy or optional dependencies."""
    code = (
        "import sys, larder; heavy = [m for m in ('mlflow', 'boto3', 'redis', 'fastapi', 'uvicorn', 'sklearn',"
        " 'matplotlib', 'pandera', 'pyspark') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
