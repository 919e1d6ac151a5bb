"""Declarative features (the declarative half of the Databricks Feature Engineering client).

A :class:`Feature` is a source (:class:`DeltaTableSource`, :class:`DataFrameSource`,
:class:`RequestSource`) plus a function (:class:`AggregationFunction` of an operator and a time window,
or a :class:`ColumnSelection`) over an entity and a timeseries column. Definitions live in the catalog
(:mod:`larder.declarative.service`), are computed offline by :mod:`larder.declarative.compute` and
are one kind of step of a feature spec, so training sets, ``score_batch`` and models that look their
features up online treat them like lookups. See ``docs/declarative-features.md``.
"""

from larder.declarative.feature import Feature
from larder.declarative.functions import (
    AggregationFunction,
    ApproxCountDistinct,
    ApproxPercentile,
    Avg,
    ColumnSelection,
    Count,
    First,
    FirstN,
    Function,
    Last,
    LastN,
    Max,
    Min,
    PercentileApprox,
    StddevPop,
    StddevSamp,
    Sum,
    VarPop,
    VarSamp,
)
from larder.declarative.materialized import (
    BackfillRange,
    BackfillState,
    BackfillStatus,
    CronSchedule,
    CronScheduleMode,
    MaterializedFeature,
    MaterializedFeaturePipelineScheduleState,
    OfflineStoreConfig,
    OnlineStoreConfig,
    TableTrigger,
)
from larder.declarative.sources import (
    DataFrameSource,
    DataSource,
    DeltaTableSource,
    FieldDefinition,
    RequestSource,
    ScalarDataType,
)
from larder.declarative.windows import RollingWindow, SlidingWindow, TimeWindow, TumblingWindow

__all__ = [
    "AggregationFunction",
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
    "DataSource",
    "DeltaTableSource",
    "Feature",
    "FieldDefinition",
    "First",
    "FirstN",
    "Function",
    "Last",
    "LastN",
    "MaterializedFeature",
    "MaterializedFeaturePipelineScheduleState",
    "Max",
    "Min",
    "OfflineStoreConfig",
    "OnlineStoreConfig",
    "PercentileApprox",
    "RequestSource",
    "RollingWindow",
    "ScalarDataType",
    "SlidingWindow",
    "StddevPop",
    "StddevSamp",
    "Sum",
    "TableTrigger",
    "TimeWindow",
    "TumblingWindow",
    "VarPop",
    "VarSamp",
]
