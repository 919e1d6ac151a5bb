"""Declarative feature definitions: entities, validation before anything is written, the catalog."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import func, select

import larder.entities as E
from larder import (
    AggregationFunction,
    Avg,
    ColumnSelection,
    Count,
    DataFrameSource,
    DeltaTableSource,
    Feature,
    FeatureLookup,
    FieldDefinition,
    Max,
    RequestSource,
    RollingWindow,
    ScalarDataType,
    SlidingWindow,
    Sum,
    TumblingWindow,
)
from larder.catalog.declarative import DeclarativeFeatureRecord
from larder.errors import (
    FeatureDefinitionError,
    FeatureExistsError,
    FeatureLookupError,
    FeatureNotFoundError,
    LarderError,
)
from larder.training.spec import FeatureSpec

DAY = dt.timedelta(days=1)
T0 = pd.Timestamp("2024-01-01", tz="UTC")


@pytest.fixture()
def tx(fe):
    df = pd.DataFrame({
        "tx_id": range(8), "user_id": [1, 1, 1, 2, 2, 1, 3, 3],
        "amount": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
        "qty": [1, 2, 3, 4, 5, 6, 7, 8],
        "status": ["ok", "ok", "void", "ok", "ok", "void", "ok", "ok"],
        "ts": [T0 + pd.Timedelta(days=d) for d in [0, 1, 2, 0, 3, 9, 1, 1]],
        "day": [(T0 + pd.Timedelta(days=d)).date() for d in [0, 1, 2, 0, 3, 9, 1, 1]],
    })
    fe.create_table("tx", "tx_id", df=df)
    return fe


def src(**kw):
    return DeltaTableSource(catalog_name="main", schema_name="default", table_name="tx", **kw)


def agg(op, window=None):
    return AggregationFunction(op, window or RollingWindow(window_duration=2 * DAY))


def _records(fe) -> int:
    with fe._ctx.catalog.session() as s:
        return s.scalar(select(func.count()).select_from(DeclarativeFeatureRecord))


# --------------------------------------------------------------------------- entities


def test_entities_module_has_the_databricks_names():
    for name in ["Feature", "DeltaTableSource", "DataFrameSource", "RequestSource", "AggregationFunction",
                 "ColumnSelection", "Sum", "Count", "Avg", "Min", "Max", "StddevPop", "StddevSamp", "VarPop", "VarSamp",
                 "First", "Last", "FirstN", "LastN", "ApproxCountDistinct", "ApproxPercentile", "RollingWindow",
                 "SlidingWindow", "TumblingWindow", "FeatureLookup", "FeatureFunction", "FeatureTable"]:
        assert hasattr(E, name), name
    assert sorted(E.__all__) == E.__all__


@pytest.mark.parametrize("make, match", [
    (lambda: RollingWindow(window_duration=dt.timedelta(0)), "window_duration must be positive"),
    (lambda: RollingWindow(window_duration=-DAY), "window_duration must be positive"),
    (lambda: RollingWindow(window_duration=DAY, delay=-DAY), "delay must not be negative"),
    (lambda: RollingWindow(window_duration=7), "must be a datetime.timedelta"),
    (lambda: TumblingWindow(window_duration=None), "lifetime"),
    (lambda: TumblingWindow(window_duration=DAY, offset=DAY), "offset"),
    (lambda: SlidingWindow(window_duration=DAY, slide_duration=2 * DAY), "slide_duration .* must be shorter"),
    (lambda: SlidingWindow(window_duration=DAY, slide_duration=DAY), "TumblingWindow"),
    (lambda: SlidingWindow(window_duration=7 * DAY, slide_duration=DAY, offset=DAY), "offset"),
    (lambda: SlidingWindow(window_duration=7 * DAY, slide_duration=dt.timedelta(0)), "slide_duration must be positive"),
    (lambda: E.FirstN(input="x", n=0), "positive integer"),
    (lambda: E.ApproxPercentile(percentile=2.0, input="x"), "between 0.0 and 1.0"),
    (lambda: E.ApproxPercentile(percentile=1, input="x"), "float"),
    (lambda: AggregationFunction(Sum("x"), DAY), "time_window"),
    (lambda: AggregationFunction("sum", RollingWindow(window_duration=DAY)), "operator"),
    (lambda: ColumnSelection(""), "non-empty"),
    (lambda: Sum(""), "non-empty"),
])
def test_bad_entities_raise_a_value_error_naming_the_fix(make, match):
    with pytest.raises(FeatureDefinitionError, match=match) as info:
        make()
    assert isinstance(info.value, ValueError) and isinstance(info.value, LarderError)


def test_names_strings_and_round_trips():
    w = SlidingWindow(window_duration=7 * DAY, slide_duration=DAY, delay=dt.timedelta(hours=2),
                      offset=dt.timedelta(hours=3))
    assert str(w) == "sliding_7d_1d_delay_2h_offset_3h"
    assert str(RollingWindow(window_duration=None)) == "rolling_lifetime"
    assert str(TumblingWindow(window_duration=dt.timedelta(hours=1, minutes=30))) == "tumbling_1h_30m"
    f = Feature(source=src(filter_condition="status = 'ok'"), function=agg(E.LastN(input="amount", n=3), w),
                entity=["user_id"], timeseries_column="ts", description="last three")
    assert f.name == "amount_last_n_sliding_7d_1d_delay_2h_offset_3h"
    back = Feature.from_dict(f.to_dict())
    assert back == f and back.time_window == w and back.function.function.n == 3
    assert "filter=status = 'ok'" in str(f)


def test_feature_constructor_checks():
    with pytest.raises(FeatureDefinitionError, match="entity must be a non-empty list"):
        Feature(source=src(), function=agg(Sum("amount")), entity=[], timeseries_column="ts")
    with pytest.raises(FeatureDefinitionError, match="timeseries_column must name"):
        Feature(source=src(), function=agg(Sum("amount")), entity=["user_id"])
    with pytest.raises(FeatureDefinitionError, match="also an entity column"):
        Feature(source=src(), function=agg(Sum("amount")), entity=["ts"], timeseries_column="ts")
    with pytest.raises(FeatureDefinitionError, match="function must be"):
        Feature(source=src(), function=Sum("amount"), entity=["user_id"], timeseries_column="ts")
    req = RequestSource(schema=[FieldDefinition("basket", ScalarDataType.DOUBLE)])
    with pytest.raises(FeatureDefinitionError, match="do not apply to a RequestSource"):
        Feature(source=req, function=ColumnSelection("basket"), entity=["user_id"], timeseries_column="ts")
    with pytest.raises(FeatureDefinitionError, match="must use a ColumnSelection"):
        Feature(source=req, function=agg(Sum("basket")))
    with pytest.raises(FeatureDefinitionError, match="not a field"):
        Feature(source=req, function=ColumnSelection("other"))
    assert Feature(source=req, function=ColumnSelection("basket")).name == "basket"


# --------------------------------------------------------------------------- validation against the source


@pytest.mark.parametrize("kwargs, match", [
    ({"function": agg(Sum("amout"))}, r"column\(s\) \['amout'\] are not in table 'main.default.tx'"),
    ({"function": agg(Sum("status"))}, "sum needs a numeric"),
    ({"function": agg(Avg("status"))}, "avg needs a numeric"),
    ({"timeseries_column": "day"}, "is a DATE, not a timestamp"),
    ({"timeseries_column": "status"}, "not a timestamp"),
    ({"entity": ["ts"], "timeseries_column": "day"}, "not a timestamp"),
    ({"entity": ["usr"]}, r"\['usr'\] are not in"),
    ({"source": DeltaTableSource(catalog_name="main", schema_name="default", table_name="nope")}, "does not exist"),
    ({"source": src(filter_condition="no_such_col > 1")}, "filter_condition / transformation_sql"),
])
def test_bad_definitions_are_refused_before_anything_is_written(tx, kwargs, match):
    args = {"source": src(), "function": agg(Sum("amount")), "catalog_name": "main", "schema_name": "default",
            "entity": ["user_id"], "timeseries_column": "ts", "name": "f"} | kwargs
    with pytest.raises(FeatureDefinitionError, match=match) as info:
        tx.create_feature(**args)
    assert "'f'" in str(info.value) or "main.default.f" in str(info.value)
    assert _records(tx) == 0
    assert tx.list_features(catalog_name="main", schema_name="default") == []


def test_entity_columns_must_not_be_temporal(tx):
    with pytest.raises(FeatureDefinitionError, match="entity column 'day'"):
        tx.create_feature(source=src(), function=agg(Count("amount")), catalog_name="main", schema_name="default",
                          entity=["day"], timeseries_column="ts")


def test_register_get_list_delete_and_name_clash(tx):
    f = tx.create_feature(source=src(), function=agg(Sum("amount")), catalog_name="main", schema_name="default",
                          entity=["user_id"], timeseries_column="ts", description="2-day spend")
    assert f.is_registered and f.full_name == "main.default.amount_sum_rolling_2d"
    with pytest.raises(FeatureExistsError, match="already registered"):
        tx.create_feature(source=src(), function=agg(Sum("amount")), catalog_name="main", schema_name="default",
                          entity=["user_id"], timeseries_column="ts")
    assert _records(tx) == 1
    hand = Feature(source=src(), function=agg(Max("qty"), TumblingWindow(window_duration=DAY)), entity=["user_id"],
                   timeseries_column="ts", name="max_qty")
    with pytest.raises(FeatureDefinitionError, match="catalog_name"):
        tx.register_feature(feature=hand)
    reg = tx.register_feature(feature=hand, catalog_name="main", schema_name="default")
    assert not hand.is_registered and reg.is_registered
    with pytest.raises(FeatureDefinitionError, match="already registered"):
        tx.register_feature(feature=reg)
    got = tx.get_feature(full_name="main.default.max_qty")
    assert got == reg and got.time_window == TumblingWindow(window_duration=DAY)
    assert [x.name for x in tx.list_features(catalog_name="main", schema_name="default")] == [
        "amount_sum_rolling_2d", "max_qty"]
    assert tx.list_features(catalog_name="main", schema_name="default", max_results=1)[0].name == "amount_sum_rolling_2d"
    assert tx.list_features(catalog_name="main", schema_name="other") == []
    lineage = tx.feature_lineage("main.default.max_qty")
    assert lineage["source_table"] == "main.default.tx" and lineage["source_version"] == 0
    assert lineage["value_type"] == "int64" and lineage["models"] == []
    tx.delete_feature(full_name="main.default.max_qty")
    with pytest.raises(FeatureNotFoundError, match="amount_sum_rolling_2d"):  # lists what exists
        tx.get_feature(full_name="main.default.max_qty")
    with pytest.raises(FeatureNotFoundError):
        tx.delete_feature(full_name="main.default.max_qty")


def test_dataframe_sources_are_validated_but_never_registered(tx):
    df = pd.DataFrame({"u": [1, 1], "ts": [T0, T0 + pd.Timedelta(hours=1)], "v": [1.0, 2.0]})
    f = tx.create_feature(source=DataFrameSource(dataframe=df), function=agg(Sum("v")), catalog_name="main",
                          schema_name="default", entity=["u"], timeseries_column="ts")
    assert not f.is_registered and _records(tx) == 0
    with pytest.raises(FeatureDefinitionError, match="cannot be registered"):
        tx.register_feature(feature=f, catalog_name="main", schema_name="default")
    with pytest.raises(FeatureDefinitionError, match="sum needs a numeric"):
        tx.create_feature(source=DataFrameSource(dataframe=df.assign(v=["a", "b"])), function=agg(Sum("v")),
                          catalog_name="main", schema_name="default", entity=["u"], timeseries_column="ts")
    out = tx.compute_features(features=[f])
    assert out["amount" if False else "v_sum_rolling_2d"].tolist()[1] == 1.0


def test_filter_restricts_the_rows_aggregated_and_transformation_derives_columns(tx):
    ok = tx.create_feature(source=src(filter_condition="status = 'ok'"), function=agg(Sum("amount")),
                           catalog_name="main", schema_name="default", entity=["user_id"], timeseries_column="ts",
                           name="ok_spend")
    derived = tx.create_feature(
        source=src(transformation_sql="user_id, ts, amount * qty AS value"),
        function=agg(Sum("value"), RollingWindow(window_duration=None)), catalog_name="main", schema_name="default",
        entity=["user_id"], timeseries_column="ts", name="lifetime_value")
    out = tx.compute_features(features=[ok])
    user1 = out[out.user_id == 1]
    # points are every source row (the filter does not drop the voided rows' points), values skip voided rows
    assert user1["ts"].tolist() == [T0, T0 + pd.Timedelta(days=1), T0 + pd.Timedelta(days=2), T0 + pd.Timedelta(days=9)]
    assert user1["ok_spend"].tolist()[1:3] == [1.0, 3.0]
    life = tx.compute_features(features=[derived])
    assert life[life.user_id == 1]["lifetime_value"].tolist()[1:] == [1.0, 5.0, 17.0]
    with pytest.raises(FeatureDefinitionError, match="one source at a time"):
        tx.compute_features(features=[ok, derived])


def test_compute_features_refuses_request_features_and_empty_lists(tx):
    req = Feature(source=RequestSource(schema=[FieldDefinition("basket", ScalarDataType.DOUBLE)]),
                  function=ColumnSelection("basket"))
    with pytest.raises(FeatureDefinitionError, match="RequestSource"):
        tx.compute_features(features=[req])
    with pytest.raises(FeatureDefinitionError, match="at least 1"):
        tx.compute_features(features=[])


def test_training_sets_take_features_or_lookups_not_both(tx):
    f = tx.create_feature(source=src(), function=agg(Sum("amount")), catalog_name="main", schema_name="default",
                          entity=["user_id"], timeseries_column="ts")
    labels = pd.DataFrame({"user_id": [1], "ts": [T0 + pd.Timedelta(days=2)], "y": [1]})
    with pytest.raises(FeatureLookupError, match="exactly one of feature_lookups"):
        tx.create_training_set(labels, [FeatureLookup("tx", "tx_id")], label="y", features=[f])
    with pytest.raises(FeatureLookupError, match="label is required"):
        tx.create_training_set(labels, features=[f])
    with pytest.raises(FeatureLookupError, match=r"lacks|are not in the DataFrame"):
        tx.create_training_set(labels.drop(columns="ts"), label="y", features=[f])
    with pytest.raises(FeatureLookupError, match="not a timestamp"):
        tx.create_training_set(labels.assign(ts="2024-01-03"), label="y", features=[f])
    with pytest.raises(FeatureLookupError, match="must be declarative Feature"):
        tx.create_training_set(labels, label="y", features=[FeatureLookup("tx", "tx_id")])


def test_training_set_spec_round_trips_and_pins_the_source_version(tx):
    f = tx.create_feature(source=src(), function=agg(Sum("amount")), catalog_name="main", schema_name="default",
                          entity=["user_id"], timeseries_column="ts")
    req = Feature(source=RequestSource(schema=[FieldDefinition("basket", ScalarDataType.DOUBLE)]),
                  function=ColumnSelection("basket"))
    labels = pd.DataFrame({"user_id": [1, 2], "ts": [T0 + pd.Timedelta(days=2)] * 2, "basket": [3.0, 4.0],
                           "y": [1, 0]})
    ts = tx.create_training_set(labels, label="y", features=[f, req])
    spec = ts.feature_spec
    assert FeatureSpec.from_yaml(spec.to_yaml()) == spec
    assert spec.input_columns == ["user_id", "ts", "basket"] and spec.output_columns == [f.name]
    assert ts.feature_versions == {f.full_name: 0}
    before = ts.load_df()
    tx.write_table("tx", pd.DataFrame({"tx_id": [100], "user_id": [1], "amount": [1000.0], "qty": [1],
                                       "status": ["ok"], "ts": [T0 + pd.Timedelta(days=1)],
                                       "day": [T0.date()]}))
    pd.testing.assert_frame_equal(ts.load_df(), before)  # pinned: the new row is not seen
    fresh = tx.create_training_set(labels, label="y", features=[f]).load_df()
    assert fresh[f.name].tolist() == [1003.0, 8.0] and before[f.name].tolist() == [3.0, 8.0]
    assert before["basket"].tolist() == [3.0, 4.0]
