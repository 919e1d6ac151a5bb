"""The value classes of the Databricks client, at Databricks' import paths.

``from databricks.feature_engineering.entities import FeatureLookup`` ports as
``from larder.entities import FeatureLookup``: declarative features (:mod:`larder.declarative`:
``Feature``, sources, ``AggregationFunction``, operators, windows) and the classic classes. The
submodules (``larder.entities.feature_lookup``, ``.feature_function``, ``.feature_table``,
``.feature_serving_endpoint``, ``.feature_spec_info``, ``.online_store``) mirror Databricks' modules of
the same names.
"""

from larder.declarative import (
    AggregationFunction,
    ApproxCountDistinct,
    ApproxPercentile,
    Avg,
    ColumnSelection,
    Count,
    DataFrameSource,
    DataSource,
    DeltaTableSource,
    Feature,
    FieldDefinition,
    First,
    FirstN,
    Function,
    Last,
    LastN,
    Max,
    Min,
    PercentileApprox,
    RequestSource,
    RollingWindow,
    ScalarDataType,
    SlidingWindow,
    StddevPop,
    StddevSamp,
    Sum,
    TimeWindow,
    TumblingWindow,
    VarPop,
    VarSamp,
)
from larder.entities.feature_function import FeatureFunction
from larder.entities.feature_lookup import FeatureLookup
from larder.entities.feature_serving_endpoint import (
    AutoCaptureConfig,
    EndpointCoreConfig,
    FeatureServingEndpoint,
    Servable,
    ServedEntity,
)
from larder.entities.feature_spec_info import FeatureSpecInfo
from larder.entities.feature_table import FeatureTable
from larder.entities.online_store import DatabricksOnlineStore

__all__ = [
    "AggregationFunction",
    "ApproxCountDistinct",
    "ApproxPercentile",
    "AutoCaptureConfig",
    "Avg",
    "ColumnSelection",
    "Count",
    "DataFrameSource",
    "DataSource",
    "DatabricksOnlineStore",
    "DeltaTableSource",
    "EndpointCoreConfig",
    "Feature",
    "FeatureFunction",
    "FeatureLookup",
    "FeatureServingEndpoint",
    "FeatureSpecInfo",
    "FeatureTable",
    "FieldDefinition",
    "First",
    "FirstN",
    "Function",
    "Last",
    "LastN",
    "Max",
    "Min",
    "PercentileApprox",
    "RequestSource",
    "RollingWindow",
    "ScalarDataType",
    "Servable",
    "ServedEntity",
    "SlidingWindow",
    "StddevPop",
    "StddevSamp",
    "Sum",
    "TimeWindow",
    "TumblingWindow",
    "VarPop",
    "VarSamp",
]
