"""The entities of the Databricks Feature Engineering client under one import, as
``databricks.feature_engineering.entities`` has them::

    from larder.entities import (AggregationFunction, DeltaTableSource, Feature, FeatureLookup,
                                 RollingWindow, Sum)

Declarative features (:mod:`larder.declarative`) and the classic ones (:class:`FeatureLookup`,
:class:`FeatureFunction`, :class:`FeatureTable`).
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
from larder.offline.tables import FeatureTable
from larder.training.functions import FeatureFunction
from larder.training.lookup import FeatureLookup

__all__ = [
    "AggregationFunction",
    "ApproxCountDistinct",
    "ApproxPercentile",
    "Avg",
    "ColumnSelection",
    "Count",
    "DataFrameSource",
    "DataSource",
    "DeltaTableSource",
    "Feature",
    "FeatureFunction",
    "FeatureLookup",
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
    "SlidingWindow",
    "StddevPop",
    "StddevSamp",
    "Sum",
    "TimeWindow",
    "TumblingWindow",
    "VarPop",
    "VarSamp",
]
