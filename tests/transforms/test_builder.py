"""preprocessor(spec): schema, readable names, equality with scikit-learn, unseen values, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    KBinsDiscretizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
    TargetEncoder,
)

from larder.errors import TransformError
from larder.transforms import SKOPS_TRUSTED_TYPES, Preprocessor, PreprocessorSpec, preprocessor

ISSUE_SPEC = {
    "Neighborhood": ["rare:0.01", "onehot"],
    "GrLivArea": "standard",
    "YearBuilt": {"bins": {"n_bins": 5, "strategy": "quantile"}},
    "ratio": [["GrLivArea", "TotRmsAbvGrd"]],
}


@pytest.fixture(scope="module")
def ames() -> pd.DataFrame:
    from larder.datasets import load_ames

    return load_ames()


@pytest.fixture()
def small() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    return pd.DataFrame(
        {
            "hood": rng.choice(["a", "b", "c", "d"], size=n, p=[0.5, 0.3, 0.15, 0.05]),
            "zone": rng.choice(["RL", "RM", "FV"], size=n),
            "area": rng.normal(1500, 400, size=n).round(),
            "rooms": rng.integers(2, 10, size=n),
            "year": rng.integers(1900, 2010, size=n),
            "month": rng.integers(1, 13, size=n),
            "y": rng.normal(size=n),
        }
    )


def test_issue_example_spec_on_ames(ames):
    pre = preprocessor(ISSUE_SPEC)
    assert isinstance(pre, ColumnTransformer) and isinstance(pre, Preprocessor)
    out = pre.fit_transform(ames)
    cols = list(out.columns)
    assert "Neighborhood=NAmes" in cols and "Neighborhood=__rare__" in cols
    assert cols[-3:] == ["GrLivArea_scaled", "YearBuilt_bin", "GrLivArea/TotRmsAbvGrd"]
    assert list(pre.get_feature_names_out()) == cols
    assert len(out) == len(ames) and not out.isna().any().any()
    np.testing.assert_allclose(out["GrLivArea/TotRmsAbvGrd"], ames["GrLivArea"] / ames["TotRmsAbvGrd"])


def test_yaml_string_file_and_dict_agree(tmp_path, small):
    text = """
hood: [rare:0.1, onehot]
area: {minmax: {feature_range: [0, 2]}}
month: cyclical:12
diff: [[year, rooms]]
remainder: passthrough
"""
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    as_dict = {
        "hood": ["rare:0.1", "onehot"],
        "area": {"minmax": {"feature_range": [0, 2]}},
        "month": "cyclical:12",
        "diff": [["year", "rooms"]],
        "remainder": "passthrough",
    }
    outs = [preprocessor(s).fit_transform(small) for s in (text, path, str(path), as_dict)]
    for other in outs[1:]:
        pd.testing.assert_frame_equal(other, outs[0])
    assert list(outs[0].columns) == [
        "hood=__rare__",
        "hood=a",
        "hood=b",
        "hood=c",
        "area_scaled",
        "month_sin",
        "month_cos",
        "year-rooms",
        "zone",
        "y",
    ]
    assert outs[0]["area_scaled"].max() == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("step", "reference"),
    [
        ("standard", StandardScaler()),
        ("minmax", MinMaxScaler()),
        ("robust", RobustScaler()),
        (
            {"bins": {"n_bins": 4, "strategy": "uniform"}},
            KBinsDiscretizer(n_bins=4, encode="ordinal", strategy="uniform"),
        ),
        ({"bins": {"n_bins": 4}}, KBinsDiscretizer(n_bins=4, encode="ordinal", strategy="quantile")),
    ],
)
def test_numeric_steps_equal_sklearn(small, step, reference):
    pre = preprocessor({"area": step})
    ours = pre.fit_transform(small).to_numpy()
    expected = reference.fit_transform(small[["area"]])
    np.testing.assert_allclose(ours, expected)
    new = small.assign(area=small["area"] * 1.5)
    np.testing.assert_allclose(pre.transform(new).to_numpy(), reference.transform(new[["area"]]))


def test_encoders_equal_sklearn(small):
    pre = preprocessor({"hood": "onehot", "zone": "ordinal"})
    out = pre.fit_transform(small)
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(small[["hood"]])
    ordinal = OrdinalEncoder().fit(small[["zone"]])
    np.testing.assert_array_equal(
        out[["hood=a", "hood=b", "hood=c", "hood=d"]].to_numpy(), onehot.transform(small[["hood"]])
    )
    np.testing.assert_array_equal(out[["zone_ordinal"]].to_numpy(), ordinal.transform(small[["zone"]]))


def test_interactions_equal_polynomial_features(small):
    pre = preprocessor({"interactions": {"columns": ["area", "rooms", "year"], "degree": 2}})
    out = pre.fit_transform(small)
    poly = PolynomialFeatures(degree=2, interaction_only=True, include_bias=False)
    expected = poly.fit_transform(small[["area", "rooms", "year"]])
    assert list(out.columns) == ["area", "rooms", "year", "area*rooms", "area*year", "rooms*year"]
    np.testing.assert_allclose(out.to_numpy(), expected)


def test_target_encoding_equals_sklearn_cross_fitting(small):
    pre = preprocessor({"hood": {"target": {"target_type": "continuous", "cv": 4, "random_state": 7}}})
    ours = pre.fit_transform(small, small["y"])
    reference = TargetEncoder(target_type="continuous", cv=KFold(n_splits=4, shuffle=True, random_state=7))
    expected = reference.fit_transform(small[["hood"]], small["y"])
    assert list(ours.columns) == ["hood_target"]
    np.testing.assert_allclose(ours.to_numpy(), expected)
    fresh = pd.DataFrame({"hood": ["a", "d", "never-seen"]})
    encoded = pre.transform(fresh)["hood_target"].to_numpy()
    np.testing.assert_allclose(encoded[:2], reference.transform(fresh.iloc[:2]).ravel())
    assert encoded[2] == pytest.approx(reference.target_mean_)  # unseen -> global mean


def test_target_encoding_is_out_of_fold_for_noise():
    """A pure-noise, high-cardinality category carries no signal on training rows when cross-fitted,
    while the in-sample mean encoding of the same column correlates strongly with y."""
    rng = np.random.default_rng(42)
    n = 3000
    df = pd.DataFrame({"noise_cat": rng.integers(0, 750, size=n).astype(str)})
    y = pd.Series(rng.normal(size=n))
    encoded = preprocessor({"noise_cat": {"target": {"target_type": "continuous"}}}).fit_transform(df, y)
    oof_corr = np.corrcoef(encoded["noise_cat_target"], y)[0, 1]
    in_sample = df.assign(y=y).groupby("noise_cat")["y"].transform("mean")
    in_sample_corr = np.corrcoef(in_sample, y)[0, 1]
    assert abs(oof_corr) < 0.1
    assert in_sample_corr > 0.4


def test_unseen_categories_never_crash(small):
    data = small.assign(hood2=small["hood"])
    spec = {
        "hood": ["rare:0.1", "onehot"],
        "hood2": {"onehot": {"min_frequency": 20}},  # 'd' (15 rows) is infrequent
        "zone": "ordinal",
        "year": {"target": {"target_type": "continuous"}},
    }
    pre = preprocessor(spec).fit(data, data["y"])
    fresh = data.head(3).assign(
        hood=["zzz", "a", None], hood2=["zzz", "d", "a"], zone=["XX", "RL", None], year=[1, 1950, 3000]
    )
    out = pre.transform(fresh)
    hood_cols = [c for c in out.columns if c.startswith("hood=")]
    assert out.loc[0, "hood=__rare__"] == 1.0  # unseen -> grouped as rare
    assert out.loc[1, "hood=a"] == 1.0
    assert out.loc[2, hood_cols].sum() == 0.0  # null was never seen: all zeros
    assert out.loc[0, "hood2=infrequent_sklearn"] == 1.0  # unseen -> the infrequent column
    assert out.loc[1, "hood2=infrequent_sklearn"] == 1.0
    assert out["zone_ordinal"].tolist()[0] == -1 and out["zone_ordinal"].tolist()[2] == -1
    mean = pre.named_transformers_["year"].named_steps["target"].target_mean_
    assert out["year_target"].tolist()[0] == pytest.approx(mean)  # unseen -> global target mean


def test_output_default_numpy_and_arrow_input(small):
    pre = preprocessor({"area": "standard"}, output="default")
    arr = pre.fit_transform(pa.Table.from_pandas(small))
    assert isinstance(arr, np.ndarray) and arr.shape == (len(small), 1)


def test_pickle_clone_and_mlflow_pipeline(tmp_path, small):
    import mlflow.sklearn

    spec = {
        "hood": ["rare:0.1", "onehot"],
        "area": "standard",
        "month": "cyclical:12",
        "ratio": [["area", "rooms"]],
    }
    pipe = Pipeline([("prep", preprocessor(spec)), ("model", Ridge())]).fit(small, small["y"])
    expected = pipe.predict(small)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(pipe)).predict(small), expected)
    cloned = clone(pipe)
    assert isinstance(cloned.named_steps["prep"], Preprocessor)
    np.testing.assert_allclose(cloned.fit(small, small["y"]).predict(small), expected)
    # save_model is what log_model runs inside a run (minus the tracking store); both formats load.
    mlflow.sklearn.save_model(
        pipe, tmp_path / "skops", skops_trusted_types=SKOPS_TRUSTED_TYPES, pip_requirements=["scikit-learn"]
    )
    mlflow.sklearn.save_model(
        pipe, tmp_path / "pickled", serialization_format="cloudpickle", pip_requirements=["scikit-learn"]
    )
    for folder in ("skops", "pickled"):
        loaded = mlflow.sklearn.load_model(str(tmp_path / folder))
        np.testing.assert_allclose(loaded.predict(small), expected)


# ---------------------------------------------------------------- bad input


def test_scaler_on_text_column_names_it(small):
    with pytest.raises(
        TransformError, match=r"'zone' \(.*\) are not numeric but step 'zone' uses StandardScaler"
    ):
        preprocessor({"zone": "standard"}).fit(small)
    with pytest.raises(TransformError, match="'hood'.*SimpleImputer"):
        preprocessor({"hood": ["impute:median", "standard"]}).fit(small)


def test_missing_columns_are_named(small):
    with pytest.raises(TransformError, match="'nope', 'gone' not found"):
        preprocessor({"nope": "standard", "gone": "onehot", "area": "standard"}).fit(small)
    pre = preprocessor({"area": "standard"}).fit(small)
    with pytest.raises(TransformError, match="'area' not found"):
        pre.transform(small.drop(columns="area"))


def test_target_without_y_and_integer_target(small):
    with pytest.raises(TransformError, match="pass y"):
        preprocessor({"hood": "target"}).fit(small)
    prices = pd.Series(np.random.default_rng(0).integers(50_000, 500_000, size=len(small)))
    with pytest.raises(TransformError, match="target_type: continuous"):
        preprocessor({"hood": "target"}).fit(small, prices)
    out = preprocessor({"hood": {"target": {"target_type": "continuous"}}}).fit_transform(small, prices)
    assert list(out.columns) == ["hood_target"]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"area": "standardize"}, "unknown step 'standardize'"),
        ({"area": {"standard": {"with_mean": True, "typo": 1}}}, "typo"),
        ({"area": {"bins": {"n_bins": 1}}}, "n_bins"),
        ({"area": {"bins": 5, "standard": None}}, "exactly one key"),
        ({"area": "standard:3"}, "takes no ':argument'"),
        ({"area": []}, "at least one step"),
        ({"ratio": [["a", "b", "c"]]}, "ratio"),
        ({"remainder": "keep", "area": "standard"}, "remainder"),
        ({"interactions": {"columns": ["a"]}}, "interactions"),
        ({"hood": "rare:1.5"}, "min_frequency"),
        ({"remainder": "drop"}, "transforms no column"),
        ("- a\n- b\n", "must be a mapping"),
        ("area: [standard\n", "not valid YAML"),
        ("missing-file.yaml", "does not exist"),
    ],
)
def test_invalid_specs(spec, match):
    with pytest.raises(TransformError, match=match):
        PreprocessorSpec.parse(spec)


def test_columns_key_escapes_reserved_names():
    df = pd.DataFrame({"ratio": [1.0, 2.0, 3.0], "b": [1.0, 1.0, 2.0]})
    out = preprocessor({"columns": {"ratio": "standard"}, "product": [["ratio", "b"]]}).fit_transform(df)
    assert list(out.columns) == ["ratio_scaled", "ratio*b"]
    with pytest.raises(TransformError, match="given twice"):
        PreprocessorSpec.parse({"columns": {"b": "standard"}, "b": "minmax"})


def test_output_name_collision_is_a_transform_error():
    df = pd.DataFrame({"a": [1.0, 2.0], "a_scaled": [3.0, 4.0]})
    with pytest.raises(TransformError, match="not unique"):
        preprocessor({"a": "standard", "remainder": "passthrough"}).fit(df)
