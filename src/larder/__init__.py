"""larder: a feature store and feature-engineering toolkit for Python.

The user API is the Databricks Feature Engineering client's::

    from larder import FeatureEngineeringClient, FeatureFunction, FeatureLookup

Declarative features (``Feature``, sources, ``AggregationFunction``, operators such as ``Sum`` and
windows such as ``RollingWindow``) are importable from here and from ``larder.entities``.

Everything else lives in submodules: ``larder.transforms``, ``larder.selection``, ``larder.quality``,
``larder.online``, ``larder.models``, ``larder.declarative``, ``larder.errors``; Databricks' other import
paths are mirrored by ``larder.entities``, ``larder.online_store_spec`` and ``larder.training_set`` (and a
notebook's ``spark`` session by ``larder.session``).
"""

from larder._databricks import UNSET
from larder._version import __version__
from larder.client import FeatureEngineeringClient
from larder.declarative import (
    AggregationFunction,
    ApproxCountDistinct,
    ApproxPercentile,
    Avg,
    BackfillRange,
    BackfillState,
    BackfillStatus,
    ColumnSelection,
    Count,
    CronSchedule,
    CronScheduleMode,
    DataFrameSource,
    DeltaTableSource,
    Feature,
    FieldDefinition,
    First,
    FirstN,
    Last,
    LastN,
    MaterializedFeature,
    MaterializedFeaturePipelineScheduleState,
    Max,
    Min,
    OfflineStoreConfig,
    OnlineStoreConfig,
    RequestSource,
    RollingWindow,
    ScalarDataType,
    SlidingWindow,
    StddevPop,
    StddevSamp,
    Sum,
    TableTrigger,
    TumblingWindow,
    VarPop,
    VarSamp,
)
from larder.errors import LarderError
from larder.offline.tables import FeatureColumn, FeatureTable
from larder.online.managed import DatabricksOnlineStore
from larder.online.stores.specs import AmazonDynamoDBSpec, DynamoDBStoreSpec, RedisStoreSpec, SQLiteStoreSpec
from larder.training import FeatureFunction, FeatureLookup, FeatureSpec, FunctionInfo, TrainingSet

__all__ = [
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
