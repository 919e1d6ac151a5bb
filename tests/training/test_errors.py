"""Bad input to training sets, lookups, functions and specs: a clear LarderError subclass, nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from larder.errors import (
    FeatureLookupError,
    FeatureSpecError,
    FunctionError,
    FunctionExecutionError,
    FunctionNotFoundError,
    LarderError,
    LeakageError,
    OutputCollisionError,
    TableNotFoundError,
)
from larder.training import FeatureFunction, FeatureLookup, FeatureSpec


def ratio(a: float, b: float) -> float:
    if b == 0:
        raise ZeroDivisionError("b is zero")
    return a / b


@pytest.fixture()
def fe2(fe):  # type: ignore[no-untyped-def]
    fe.create_table("houses", "Id", df=pd.DataFrame({"Id": [1, 2, 3], "q": [7, 5, 6], "area": [10.0, 0.0, 5.0]}))
    fe.create_table("prices", ["item", "ts"], timestamp_keys="ts", df=pd.DataFrame({
        "item": [1, 2], "ts": [datetime(2024, 1, 1, tzinfo=UTC)] * 2, "price": [1.0, 2.0]}))
    fe.create_table("pairs", ["a", "b"], df=pd.DataFrame({"a": [1], "b": ["x"], "v": [1.5]}))
    fe.create_function("ratio", ratio)
    return fe


SPINE = pd.DataFrame({"Id": [1, 2, 3], "item": [1, 2, 2],
                      "at": pd.to_datetime(["2024-01-02", "2024-01-02", "2023-01-01"], utc=True),
                      "y": [0.0, 1.0, 0.0]})


def _ts(fe, lookups, df=SPINE, label="y", **kw):  # type: ignore[no-untyped-def]
    return fe.create_training_set(df, lookups, label=label, **kw)


def test_lookup_key_missing_or_mistyped(fe2) -> None:
    with pytest.raises(FeatureLookupError, match=r"lookup key column\(s\) \['house'\] are not in the DataFrame"):
        _ts(fe2, [FeatureLookup("houses", "house")])
    bad = SPINE.assign(Id=SPINE["Id"].astype(str))
    with pytest.raises(FeatureLookupError, match=r"'Id'.*string.*int64.*astype\('int64'\)"):
        _ts(fe2, [FeatureLookup("houses", "Id")], df=bad)
    with pytest.raises(FeatureLookupError, match="'Id'"):
        _ts(fe2, [FeatureLookup("houses", "Id")], df=SPINE.assign(Id=[1.5, 2.0, 3.0]))
    # a float column of whole numbers (an int column with missing values) is fine
    ok = _ts(fe2, [FeatureLookup("houses", "Id")], df=SPINE.assign(Id=[1.0, None, 3.0])).load_df()
    assert ok["q"].iloc[[0, 2]].tolist() == [7, 6] and pd.isna(ok["q"].iloc[1])


def test_wrong_number_of_lookup_keys(fe2) -> None:
    with pytest.raises(FeatureLookupError, match=r"primary key is \['a', 'b'\].*needs 2 column\(s\).*got 1"):
        _ts(fe2, [FeatureLookup("pairs", "Id")])
    with pytest.raises(FeatureLookupError, match=r"timestamp key 'ts' is matched through timestamp_lookup_key"):
        _ts(fe2, [FeatureLookup("prices", ["item", "at"], timestamp_lookup_key="at")])


def test_timestamp_lookup_key_types(fe2) -> None:
    as_text = SPINE.assign(at=["2024-01-02", "2024-01-02", "2023-01-01"])
    with pytest.raises(FeatureLookupError, match=r"pd\.to_datetime\(df\['at'\], utc=True\).*naive timestamps"):
        _ts(fe2, [FeatureLookup("prices", "item", timestamp_lookup_key="at")], df=as_text)
    with pytest.raises(FeatureLookupError, match="'at' has type int64, not a timestamp"):
        _ts(fe2, [FeatureLookup("prices", "item", timestamp_lookup_key="at")], df=SPINE.assign(at=[1, 2, 3]))
    with pytest.raises(FeatureLookupError, match="timestamp lookup key 'when' is not in the DataFrame"):
        _ts(fe2, [FeatureLookup("prices", "item", timestamp_lookup_key="when")])
    with pytest.raises(FeatureLookupError, match="has no timestamp key"):
        _ts(fe2, [FeatureLookup("houses", "Id", timestamp_lookup_key="at")])


def test_leakage_guard(fe2) -> None:
    with pytest.raises(LeakageError, match=r"timestamp_lookup_key=.*allow_latest_value=True"):
        _ts(fe2, [FeatureLookup("prices", "item")])
    with pytest.raises(FeatureLookupError, match="lookback_window needs timestamp_lookup_key"):
        _ts(fe2, [FeatureLookup("prices", "item", lookback_window=timedelta(days=1), allow_latest_value=True)])
    with pytest.raises(FeatureLookupError, match="contradicts"):
        _ts(fe2, [FeatureLookup("prices", "item", timestamp_lookup_key="at", allow_latest_value=True)])


def test_unknown_features_tables_and_renames(fe2) -> None:
    with pytest.raises(FeatureLookupError, match=r"no feature\(s\) \['qual'\].*features are \['q', 'area'\]"):
        _ts(fe2, [FeatureLookup("houses", "Id", feature_names=["qual"])])
    with pytest.raises(FeatureLookupError, match="primary keys of the table"):
        _ts(fe2, [FeatureLookup("houses", "Id", feature_names=["Id", "q"])])
    with pytest.raises(TableNotFoundError, match="main.default.nope"):
        _ts(fe2, [FeatureLookup("nope", "Id")])
    with pytest.raises(FeatureLookupError, match="rename_outputs renames"):
        _ts(fe2, [FeatureLookup("houses", "Id", feature_names=["q"], rename_outputs={"area": "a"})])


def test_output_collisions_name_both_sources(fe2) -> None:
    with pytest.raises(OutputCollisionError) as err:
        _ts(fe2, [FeatureLookup("houses", "Id"), FeatureLookup("houses", "Id", feature_names=["q"])])
    msg = str(err.value)
    assert "FeatureLookup #1 (table 'main.default.houses')" in msg and "FeatureLookup #2" in msg
    assert "'q'" in msg and "rename_outputs" in msg
    with pytest.raises(OutputCollisionError, match=r"'y'.*DataFrame already has.*rename_outputs=\{'y'"):
        _ts(fe2, [FeatureLookup("houses", "Id", feature_names=["q"], rename_outputs={"q": "y"})], label=None)
    with pytest.raises(OutputCollisionError, match="output_name"):
        _ts(fe2, [FeatureLookup("houses", "Id"),
                  FeatureFunction("ratio", {"a": "area", "b": "q"}, output_name="q")])
    with pytest.raises(OutputCollisionError, match="several features"):
        _ts(fe2, [FeatureLookup("houses", "Id", rename_outputs={"q": "x", "area": "x"})])


def test_default_values_of_the_wrong_type(fe2) -> None:
    for value in ("high", 2.5, True):
        with pytest.raises(FeatureLookupError, match=r"default value .* does not fit the feature's type int64"):
            _ts(fe2, [FeatureLookup("houses", "Id", feature_names=["q"], default_values={"q": value})])
    with pytest.raises(FeatureLookupError, match="does not fit the feature's type double"):
        _ts(fe2, [FeatureLookup("houses", "Id", feature_names=["area"], default_values={"area": "0"})])
    with pytest.raises(FeatureLookupError, match="key the default by the output name"):
        _ts(fe2, [FeatureLookup("houses", "Id", feature_names=["q"], rename_outputs={"q": "quality"},
                                default_values={"q": 5})])
    ok = _ts(fe2, [FeatureLookup("houses", "Id", feature_names=["area"], default_values={"area": 1})])
    assert ok.feature_spec.lookups[0].default_values == {"area": 1.0}


def test_function_binding_errors(fe2) -> None:
    with pytest.raises(FunctionNotFoundError, match=r"'main.default.nope' does not exist.*\['main.default.ratio'\]"):
        _ts(fe2, [FeatureFunction("nope", {"a": "Id"})])
    with pytest.raises(FunctionError, match=r"parameter\(s\) \['c'\].*\(a: float, b: float\) -> float"):
        _ts(fe2, [FeatureFunction("ratio", {"a": "Id", "b": "Id", "c": "Id"})])
    with pytest.raises(FunctionError, match=r"\['b'\] are not bound.*input_bindings=\{'b': '<column>'\}"):
        _ts(fe2, [FeatureFunction("ratio", {"a": "Id"})])
    with pytest.raises(FunctionError, match=r"input column\(s\) \['area'\] are neither in the DataFrame"):
        _ts(fe2, [FeatureFunction("ratio", {"a": "area", "b": "Id"})])
    with pytest.raises(FunctionError, match="produces after it"):
        _ts(fe2, [FeatureFunction("ratio", {"a": "area", "b": "Id"}), FeatureLookup("houses", "Id")])
    with pytest.raises(FunctionError, match="input_bindings must map"):
        FeatureFunction("ratio", {"a": 3})  # type: ignore[dict-item]


def test_function_raising_on_a_row_names_function_version_and_keys(fe2) -> None:
    ts = _ts(fe2, [FeatureLookup("houses", "Id"), FeatureFunction("ratio", {"a": "q", "b": "area"})])
    version = ts.function_versions["main.default.ratio"]
    with pytest.raises(FunctionExecutionError) as err:
        ts.load_df()
    msg = str(err.value)
    assert "'main.default.ratio'" in msg and version in msg and "row 1" in msg and "'Id': 2" in msg
    assert "b is zero" in msg


def test_labels_and_exclusions(fe2) -> None:
    with pytest.raises(FeatureLookupError, match=r"label column\(s\) \['price'\] are not in the DataFrame"):
        _ts(fe2, [FeatureLookup("houses", "Id")], label="price")
    with pytest.raises(FeatureLookupError, match="also in exclude_columns"):
        _ts(fe2, [FeatureLookup("houses", "Id")], exclude_columns=["y"])
    with pytest.raises(FeatureLookupError, match=r"exclude_columns names \['zz'\]"):
        _ts(fe2, [FeatureLookup("houses", "Id")], exclude_columns=["zz"])
    with pytest.raises(FeatureLookupError, match="label must be"):
        _ts(fe2, [FeatureLookup("houses", "Id")], label=3)


def test_bad_arguments_and_frames(fe2) -> None:
    with pytest.raises(FeatureLookupError, match="timedelta"):
        FeatureLookup("houses", "Id", lookback_window=3600)  # type: ignore[arg-type]
    with pytest.raises(FeatureLookupError, match="negative"):
        FeatureLookup("houses", "Id", lookback_window=timedelta(-1))
    with pytest.raises(FeatureLookupError, match="lists a column twice"):
        FeatureLookup("pairs", ["a", "a"])
    with pytest.raises(FeatureSpecError, match="FeatureLookup or FeatureFunction"):
        _ts(fe2, ["houses"])
    with pytest.raises(FeatureLookupError, match="pandas DataFrame"):
        _ts(fe2, [FeatureLookup("houses", "Id")], df={"Id": [1]})
    with pytest.raises(FeatureLookupError, match="duplicate column names"):
        _ts(fe2, [FeatureLookup("houses", "Id")], df=pd.DataFrame([[1, 2]], columns=["Id", "Id"]), label=None)


def test_malformed_specs(tmp_path) -> None:
    with pytest.raises(FeatureSpecError, match="not valid YAML"):
        FeatureSpec.from_yaml("features: [")
    with pytest.raises(FeatureSpecError, match="Not a larder feature spec"):
        FeatureSpec.from_yaml("a: 1")
    with pytest.raises(FeatureSpecError, match="newer than this larder"):
        FeatureSpec.from_yaml("format_version: 99\nfeatures: []")
    with pytest.raises(FeatureSpecError, match="malformed lookup"):
        FeatureSpec.from_yaml("features:\n- lookup: {table_name: x}")
    with pytest.raises(FeatureSpecError, match="No feature spec"):
        FeatureSpec.load(tmp_path / "missing.yaml")


def test_failures_write_nothing(fe2) -> None:
    before = fe2.list_feature_specs()
    for bad in ([FeatureLookup("prices", "item")], [FeatureFunction("nope")]):
        with pytest.raises(LarderError):
            fe2.create_feature_spec("s", bad)
    assert fe2.list_feature_specs() == before == []
    assert [f.name for f in fe2.list_functions()] == ["main.default.ratio"]
