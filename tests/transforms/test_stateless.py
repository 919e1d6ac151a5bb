"""bins() and interactions(): engine-side, stateless helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.preprocessing import KBinsDiscretizer

from larder.errors import TransformError
from larder.transforms import bins, interactions


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_bins_equal_kbins_discretizer(strategy):
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"x": np.round(rng.gamma(2.0, 10.0, size=500), 1)})
    ours = bins(df, "x", n_bins=6, strategy=strategy)["x_bin"].to_numpy(dtype="int64")
    kb = KBinsDiscretizer(n_bins=6, encode="ordinal", strategy=strategy).fit(df[["x"]])
    np.testing.assert_array_equal(ours, kb.transform(df[["x"]])[:, 0].astype("int64"))


def test_bins_explicit_edges_nulls_and_out_of_range():
    df = pd.DataFrame({"age": [-3.0, 0.0, 17.9, 18.0, 64.0, 65.0, 200.0, np.nan]})
    out = bins(df, "age", edges=[0, 18, 65, 120], name="age_group")
    assert out["age_group"].dtype == "Int64"
    assert out["age_group"].tolist()[:7] == [0, 0, 0, 1, 1, 2, 2]
    assert out["age_group"].isna().tolist()[-1]


def test_bins_arrow_in_arrow_out():
    table = pa.table({"v": [1.0, 2.0, None, 4.0]})
    out = bins(table, "v", edges=[0, 2, 5])
    assert isinstance(out, pa.Table)
    assert out.column("v_bin").to_pylist() == [0, 1, None, 1]


def test_bins_bad_input():
    df = pd.DataFrame({"v": [1.0, 2.0], "s": ["a", "b"]})
    with pytest.raises(TransformError, match="strictly increasing"):
        bins(df, "v", edges=[3, 1])
    with pytest.raises(TransformError, match="'s'.*not numeric"):
        bins(df, "s")
    with pytest.raises(TransformError, match="'w' not found"):
        bins(df, "w")
    with pytest.raises(TransformError, match="n_bins"):
        bins(df, "v", n_bins=1)


def test_interactions_pandas_and_arrow():
    df = pd.DataFrame({"a": [6.0, 1.0, np.nan], "b": [3, 0, 2]})
    out = interactions(df, [("a", "b")])
    assert list(out.columns) == ["a", "b", "a/b", "a-b", "a*b"]
    assert out["a/b"].tolist()[0] == 2.0
    assert np.isnan(out["a/b"].tolist()[1])  # division by zero -> null
    assert out["a-b"].tolist()[:2] == [3.0, 1.0]
    assert np.isnan(out["a*b"].tolist()[2])
    table = interactions(pa.Table.from_pandas(df), [("a", "b")], ops=("ratio",))
    assert table.column("a/b").to_pylist() == [2.0, None, None]


def test_interactions_bad_input():
    df = pd.DataFrame({"a": [1.0], "b": [2.0], "s": ["x"]})
    with pytest.raises(TransformError, match="'s'.*not numeric"):
        interactions(df, [("a", "s")])
    with pytest.raises(TransformError, match="'zz' not found"):
        interactions(df, [("a", "zz")])
    with pytest.raises(TransformError, match="unknown interaction op"):
        interactions(df, [("a", "b")], ops=("mod",))
    with pytest.raises(TransformError, match="two-column pairs"):
        interactions(df, [("a", "b", "s")])
