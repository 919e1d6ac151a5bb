"""Training sets on real Delta tables: the course notebook idiom, point-in-time semantics, pinning,
feature specs (YAML, catalog), and the reusable assembly pieces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from larder.training import (
    FeatureFunction,
    FeatureLookup,
    FeatureSpec,
    apply_defaults,
    apply_functions,
    assemble_offline,
)

pytestmark = pytest.mark.deployments("local", "team")


def t(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=UTC)


def house_age(year_built: int) -> int:
    return 2024 - year_built


def fill_quality(x: float | None) -> int:
    return int(x) if x is not None else 5


def fill_garage(cars: float | None) -> float:
    return cars if cars is not None else 0.0


def per_room(area: float, rooms: float | None) -> float | None:
    if rooms is None or area is None:
        return None
    return area / rooms


# -- the course notebook idiom ------------------------------------------------------------------


def test_notebook_idiom_on_ames(fe) -> None:
    from larder.datasets import load_ames

    ames = load_ames()
    houses = ames[["Id", "OverallQual", "GrLivArea", "GarageCars", "YearBuilt"]]
    in_table = houses[houses["Id"] % 7 != 0]  # some houses have no features
    fe.create_table("ml.houses.house_features", primary_keys="Id", df=in_table,
                    description="Ames house features")
    fe.create_function("ml.houses.house_age", house_age)
    fe.create_function("ml.houses.fill_quality", fill_quality)
    fe.create_function("ml.houses.fill_garage", fill_garage)
    labels = ames[["Id", "SalePrice"]].sample(frac=0.6, random_state=1)
    labels = pd.concat([labels, labels.head(25)])  # duplicate rows stay duplicated

    ts = fe.create_training_set(
        df=labels,
        feature_lookups=[
            FeatureLookup("ml.houses.house_features", "Id", feature_names=["OverallQual", "GarageCars"],
                          rename_outputs={"OverallQual": "lookup_quality", "GarageCars": "lookup_garage"}),
            FeatureLookup("ml.houses.house_features", "Id", feature_names=["GrLivArea", "YearBuilt"]),
            FeatureFunction("ml.houses.house_age", input_bindings={"year_built": "YearBuilt"},
                            output_name="house_age"),
            FeatureFunction("ml.houses.fill_quality", input_bindings={"x": "lookup_quality"},
                            output_name="quality"),
            FeatureFunction("ml.houses.fill_garage", input_bindings={"cars": "lookup_garage"},
                            output_name="garage"),
        ],
        label="SalePrice",
        exclude_columns=["lookup_quality", "lookup_garage"],
    )
    df = ts.load_df()
    assert list(df.columns) == ["Id", "GrLivArea", "YearBuilt", "house_age", "quality", "garage", "SalePrice"]
    assert ts.columns == list(df.columns)
    assert df.index.equals(labels.index) and df["Id"].tolist() == labels["Id"].tolist()

    feat = houses.set_index("Id")
    for row in df.itertuples():
        known = row.Id % 7 != 0
        if known:
            f = feat.loc[row.Id]
            assert row.GrLivArea == f.GrLivArea and row.house_age == 2024 - f.YearBuilt
            assert row.quality == f.OverallQual
            assert row.garage == (0.0 if pd.isna(f.GarageCars) else f.GarageCars)
        else:
            assert pd.isna(row.GrLivArea) and pd.isna(row.house_age)
            assert row.quality == 5 and row.garage == 0.0
    assert df["quality"].dtype == np.int64
    assert ts.feature_table_versions == {"ml.houses.house_features": 0}
    assert set(ts.function_versions) == {"ml.houses.house_age", "ml.houses.fill_quality", "ml.houses.fill_garage"}
    assert ts.feature_spec.input_columns == ["Id"]
    assert ts.feature_spec.output_columns == ["GrLivArea", "YearBuilt", "house_age", "quality", "garage"]


# -- point-in-time semantics ----------------------------------------------------------------------


@pytest.fixture()
def prices(fe):  # type: ignore[no-untyped-def]
    fe.create_table("prices", ["item", "ts"], timestamp_keys="ts", df=pd.DataFrame({
        "item": [1, 1, 1, 2], "ts": [t(1), t(3), t(5), t(2)], "price": [10.0, 11.0, 12.0, 20.0],
        "stock": [5, 6, 7, 8],
    }))
    return fe


def test_point_in_time_ties_lookback_order_and_index(prices) -> None:
    fe = prices
    spine = pd.DataFrame({
        "item": [1, 1, 1, 2, 2, 3, 1, 1],
        "at": [t(3), t(2, 23), t(4), t(1), t(9), t(9), t(3), t(5, 1)],
        "y": range(8),
    }, index=[10, 11, 12, 13, 14, 15, 16, 17])
    ts = fe.create_training_set(spine, [
        FeatureLookup("prices", "item", feature_names="price", timestamp_lookup_key="at"),
        FeatureLookup("prices", "item", feature_names=["stock"], timestamp_lookup_key="at",
                      lookback_window=timedelta(days=1), default_values={"stock": -1}),
    ], label="y")
    df = ts.load_df()
    assert df.index.tolist() == [10, 11, 12, 13, 14, 15, 16, 17]
    # a feature written at exactly the label time is visible (<=); ties on time pick that row
    prices_seen = [None if pd.isna(v) else v for v in df["price"]]
    # a feature written at exactly the label time is visible (<=); later features never are
    assert prices_seen == [11.0, 10.0, 11.0, None, 20.0, None, 11.0, 12.0]
    # lookback of one day, inclusive: t(4) still sees t(3); t(2, 23) does not see t(1) (47 h back)
    assert df["stock"].tolist() == [6, -1, 6, -1, -1, -1, 6, 7]
    assert list(df.columns) == ["item", "at", "price", "stock", "y"]


def test_exact_match_lookback_zero_and_time_zones(prices) -> None:
    fe = prices
    naive = pd.DataFrame({"item": [1, 1], "at": [datetime(2024, 1, 3), datetime(2024, 1, 3, 1)]})
    paris = pd.DataFrame({"item": [1], "at": [datetime(2024, 1, 3, 1, tzinfo=timezone(timedelta(hours=1)))]})
    lk = FeatureLookup("prices", "item", feature_names=["price"], timestamp_lookup_key="at",
                       lookback_window=timedelta(0))
    assert fe.create_training_set(naive, [lk], label=None).load_df()["price"].tolist()[0] == 11.0
    assert pd.isna(fe.create_training_set(naive, [lk], label=None).load_df()["price"].iloc[1])
    assert fe.create_training_set(paris, [lk], label=None).load_df()["price"].tolist() == [11.0]
    dates = pd.DataFrame({"item": [1], "at": [pd.Timestamp("2024-01-04").date()]})
    lk2 = FeatureLookup("prices", "item", feature_names=["price"], timestamp_lookup_key="at")
    assert fe.create_training_set(dates, [lk2], label=None).load_df()["price"].tolist() == [11.0]


def test_null_keys_and_times_match_nothing(prices) -> None:
    fe = prices
    spine = pd.DataFrame({"item": [1.0, np.nan, 1.0], "at": [t(3), t(3), pd.NaT]})
    df = fe.create_training_set(spine, [
        FeatureLookup("prices", "item", timestamp_lookup_key="at", default_values={"price": 0.0}),
    ], label=None).load_df()
    assert df["price"].tolist() == [11.0, 0.0, 0.0]
    assert df["stock"].iloc[0] == 6 and df["stock"].iloc[1:].isna().all()


def test_latest_value_opt_in(prices) -> None:
    df = prices.create_training_set(pd.DataFrame({"item": [2, 1, 4]}), [
        FeatureLookup("prices", "item", feature_names=["price"], allow_latest_value=True),
    ], label=None).load_df()
    assert df["price"].tolist()[:2] == [20.0, 12.0] and pd.isna(df["price"].iloc[2])


def test_composite_keys_in_table_order_with_other_names(fe) -> None:
    fe.create_table("sales", ["store", "sku"], df=pd.DataFrame({
        "store": ["a", "a", "b"], "sku": [1, 2, 1], "units": [3, 4, 5]}))
    spine = pd.DataFrame({"shop": ["b", "a", "a", "c"], "product": [1, 2, 1, 1]})
    df = fe.create_training_set(spine, [FeatureLookup("sales", ["shop", "product"])], label=None).load_df()
    assert df["units"].tolist()[:3] == [5, 4, 3] and pd.isna(df["units"].iloc[3])


def test_key_types_are_matched_across_widths(fe) -> None:
    import pyarrow as pa

    fe.create_table("small", "k", df=pa.table({"k": pa.array([1, 2], pa.int32()), "v": ["x", "y"]}))
    df = fe.create_training_set(pd.DataFrame({"k": [2, 1, 2]}), [FeatureLookup("small", "k")],
                                label=None).load_df()
    assert df["v"].tolist() == ["y", "x", "y"]


def test_empty_frame(prices) -> None:
    spine = pd.DataFrame({"item": pd.Series([], dtype="int64"), "at": pd.Series([], dtype="datetime64[us, UTC]")})
    df = prices.create_training_set(spine, [FeatureLookup("prices", "item", timestamp_lookup_key="at")],
                                    label=None).load_df()
    assert list(df.columns) == ["item", "at", "price", "stock"] and len(df) == 0


# -- labels, exclusion, request-time inputs -------------------------------------------------------


def test_labels_exclusion_and_request_time_function_inputs(fe) -> None:
    fe.create_table("houses", "Id", df=pd.DataFrame({"Id": [1, 2], "GrLivArea": [1000.0, 1500.0]}))
    fe.create_function("per_room", per_room)
    spine = pd.DataFrame({"y2": [0, 1, 1], "Id": [2, 1, 3], "rooms": [5.0, None, 4.0], "note": ["a", "b", "c"],
                          "y1": [1.5, 2.5, 3.5]})
    ts = fe.create_training_set(spine, [
        FeatureLookup("houses", "Id"),
        FeatureFunction("per_room", {"area": "GrLivArea", "rooms": "rooms"}, output_name="area_per_room"),
    ], label=["y1", "y2"], exclude_columns=["note", "rooms"])
    df = ts.load_df()
    assert list(df.columns) == ["Id", "GrLivArea", "area_per_room", "y1", "y2"]
    assert df["area_per_room"].iloc[0] == 300.0 and df["area_per_room"].iloc[1:].isna().all()
    assert ts.feature_spec.input_columns == ["Id", "rooms"]
    assert ts.feature_columns == ["Id", "GrLivArea", "area_per_room"]
    assert ts.labels == ["y1", "y2"]


def test_later_edits_of_df_do_not_reach_the_training_set(fe) -> None:
    fe.create_table("houses", "Id", df=pd.DataFrame({"Id": [1, 2], "q": [7, 5]}))
    spine = pd.DataFrame({"Id": [1, 2]})
    ts = fe.create_training_set(spine, [FeatureLookup("houses", "Id")], label=None)
    spine.loc[0, "Id"] = 2
    assert ts.load_df()["q"].tolist() == [7, 5]


# -- pinning ----------------------------------------------------------------------------------


def test_pinned_table_and_function_versions(fe) -> None:
    fe.create_table("houses", "Id", df=pd.DataFrame({"Id": [1, 2], "YearBuilt": [2000, 1990]}))
    fe.create_function("age", house_age)
    spine = pd.DataFrame({"Id": [1, 2, 3]})
    lookups = [FeatureLookup("houses", "Id"), FeatureFunction("age", {"year_built": "YearBuilt"})]
    ts = fe.create_training_set(spine, lookups, label=None)
    before = ts.load_df()

    fe.write_table("houses", pd.DataFrame({"Id": [1, 3], "YearBuilt": [2010, 1950]}))
    fe.write_table("houses", pd.DataFrame({"Id": [2], "YearBuilt": [1900], "extra": [1.0]}))

    def age(year_built: int) -> int:
        return 2000 - year_built

    fe.create_function("age", age)
    assert fe.get_function("age").version != ts.function_versions["main.default.age"]
    pd.testing.assert_frame_equal(ts.load_df(), before)
    fresh = fe.create_training_set(spine, lookups, label=None).load_df()
    assert fresh["YearBuilt"].tolist() == [2010, 1900, 1950]
    assert fresh["age"].tolist() == [-10, 100, 50] and "extra" in fresh.columns
    # the same spec on the latest data, functions still pinned
    latest = assemble_offline(fe._ctx, ts.feature_spec, spine, use_pinned_versions=False)
    assert latest["YearBuilt"].tolist() == [2010, 1900, 1950] and latest["age"].tolist() == [14, 124, 74]
    assert "extra" not in latest.columns


# -- feature specs ----------------------------------------------------------------------------


def test_spec_yaml_round_trip_and_reassembly(prices, tmp_path) -> None:
    fe = prices
    fe.create_function("fill_garage", fill_garage)
    spine = pd.DataFrame({"item": [1, 2, 3], "at": [t(4), t(3), t(3)], "y": [1, 0, 1]})
    ts = fe.create_training_set(spine, [
        FeatureLookup("prices", "item", feature_names=["price"], rename_outputs={"price": "p"},
                      timestamp_lookup_key="at", lookback_window=timedelta(hours=36), default_values={"p": -1.5}),
        FeatureFunction("fill_garage", {"cars": "p"}, output_name="p_filled"),
    ], label="y", exclude_columns=["p"])
    spec = ts.feature_spec
    text = spec.to_yaml()
    again = FeatureSpec.from_yaml(text)
    assert again == spec and again.to_yaml() == text
    assert again.lookups[0].lookback_window == timedelta(hours=36)
    assert again.lookups[0].default_values == {"p": -1.5}
    path = spec.save(tmp_path)
    assert path.name == "feature_spec.yaml" and FeatureSpec.load(tmp_path) == spec
    df = assemble_offline(fe._ctx, FeatureSpec.load(path), spine)
    pd.testing.assert_frame_equal(df, ts.load_df()[["item", "at", "y", "p_filled"]])
    assert df["p_filled"].tolist() == [11.0, 20.0, -1.5]


def test_timestamp_defaults_round_trip(fe) -> None:
    fe.create_table("events", "k", df=pd.DataFrame({"k": [1], "seen": [t(2)]}))
    ts = fe.create_training_set(pd.DataFrame({"k": [1, 2]}), [
        FeatureLookup("events", "k", default_values={"seen": datetime(2020, 1, 1)})], label=None)
    spec = FeatureSpec.from_yaml(ts.feature_spec.to_yaml())
    assert spec.lookups[0].default_values == {"seen": datetime(2020, 1, 1, tzinfo=UTC)}
    out = assemble_offline(fe._ctx, spec, pd.DataFrame({"k": [1, 2]}))
    assert out["seen"].tolist() == [pd.Timestamp(t(2)), pd.Timestamp("2020-01-01", tz="UTC")]


def test_named_feature_specs_in_the_catalog(prices) -> None:
    fe = prices
    fe.create_function("fill_garage", fill_garage)
    spec = fe.create_feature_spec("ml.serving.price_spec", [
        FeatureLookup("prices", "item", timestamp_lookup_key="at"),
        FeatureFunction("fill_garage", {"cars": "discount"}, output_name="d"),
    ], exclude_columns=["stock"])
    assert spec.name == "ml.serving.price_spec"
    assert spec.input_columns == ["item", "at", "discount"] and spec.output_columns == ["price", "d"]
    got = fe.get_feature_spec("ml.serving.price_spec")
    assert got == spec
    fe.create_feature_spec("other", [FeatureLookup("prices", "item", timestamp_lookup_key="at")])
    assert [s.name for s in fe.list_feature_specs()] == ["main.default.other", "ml.serving.price_spec"]
    assert [s.name for s in fe.list_feature_specs("price_*")] == ["ml.serving.price_spec"]
    from larder.errors import FeatureSpecError

    with pytest.raises(FeatureSpecError, match="already exists"):
        fe.create_feature_spec("other", [FeatureLookup("prices", "item", timestamp_lookup_key="at")])
    fe.delete_feature_spec("other")
    with pytest.raises(FeatureSpecError, match=r"does not exist.*existing specs: \['ml.serving.price_spec'\]"):
        fe.get_feature_spec("other")
    with pytest.raises(FeatureSpecError, match="exclude_columns"):
        fe.create_feature_spec("bad", [FeatureLookup("prices", "item", timestamp_lookup_key="at")],
                               exclude_columns=["nope"])
    assert [s.name for s in fe.list_feature_specs()] == ["ml.serving.price_spec"]


# -- reusable pieces for the online path and score_batch -----------------------------------------


def test_override_with_input_columns(prices) -> None:
    fe = prices
    fe.create_function("fill_garage", fill_garage)
    spec = fe.create_feature_spec("s", [
        FeatureLookup("prices", "item", timestamp_lookup_key="at"),
        FeatureFunction("fill_garage", {"cars": "price"}, output_name="pf"),
    ])
    spine = pd.DataFrame({"item": [1, 2], "at": [t(4), t(4)], "price": [99.0, None]})
    from larder.errors import OutputCollisionError

    with pytest.raises(OutputCollisionError):
        assemble_offline(fe._ctx, spec, spine)
    out = assemble_offline(fe._ctx, spec, spine, override_with_input_columns=True)
    assert list(out.columns) == ["item", "at", "price", "stock", "pf"]
    assert out["stock"].tolist() == [6, 8]
    assert out["pf"].tolist() == [99.0, 0.0]
    both = assemble_offline(fe._ctx, spec, spine.assign(pf=[1.0, 2.0], stock=[0, 0]),
                            override_with_input_columns=True)
    assert both["pf"].tolist() == [1.0, 2.0] and both["stock"].tolist() == [0, 0]


def test_apply_defaults_and_functions_for_online_rows(prices) -> None:
    fe = prices
    fe.create_function("fill_garage", fill_garage)
    ts = fe.create_training_set(pd.DataFrame({"item": [1, 9], "at": [t(4), t(4)]}), [
        FeatureLookup("prices", "item", timestamp_lookup_key="at", default_values={"price": -1.0, "stock": 0}),
        FeatureFunction("fill_garage", {"cars": "price"}, output_name="pf"),
    ], label=None)
    spec = FeatureSpec.from_yaml(ts.feature_spec.to_yaml())
    # what an online store returns: found for item 1, missing for item 9 (values as the store gives them)
    online = pd.DataFrame({"item": [1, 9], "at": [t(4), t(4)], "price": [11.0, None], "stock": [6.0, None]})
    filled = apply_defaults(spec.lookups[0], online, matched=[True, False])
    out = apply_functions(spec, filled)
    pd.testing.assert_frame_equal(out, ts.load_df())
    # any index is kept, and values stay with their rows
    shuffled = online.iloc[::-1].set_axis(["b", "a"])
    out2 = apply_functions(spec, apply_defaults(spec.lookups[0], shuffled, matched=[False, True]))
    assert out2.index.tolist() == ["b", "a"]
    assert out2["price"].tolist() == [-1.0, 11.0] and out2["pf"].tolist() == [-1.0, 11.0]
    assert out2["stock"].tolist() == [0, 6]
