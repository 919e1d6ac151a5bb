"""The numpy window kernels behind rolling(): equal to the DuckDB path, exact on adversarial data."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from larder.offline.ranges import CHUNK, range_stats
from larder.transforms import rolling, temporal

KERNEL_STATS = ["mean", "std", "var", "min", "max", "sum", "count"]


@pytest.fixture()
def duckdb_only(monkeypatch):
    """Send every statistic down the general DuckDB window-function path."""

    def run(*args, **kwargs):
        with monkeypatch.context() as m:
            m.setattr(temporal, "_KERNEL_STATS", ())
            return rolling(*args, **kwargs)

    return run


def _features(out: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    return out.drop(columns=list(df.columns))


def _assert_same(fast: pd.DataFrame, general: pd.DataFrame, rtol: float = 1e-9) -> None:
    assert list(fast.columns) == list(general.columns)
    for col in general.columns:
        assert fast[col].dtype == general[col].dtype, col
        np.testing.assert_allclose(
            fast[col].to_numpy("float64"),
            general[col].to_numpy("float64"),
            rtol=rtol,
            atol=1e-9,
            equal_nan=True,
            err_msg=col,
        )


def _exact_std(values: list[float]) -> float:
    """Sample standard deviation of the exact binary values (rational arithmetic)."""
    exact = [Fraction(v) for v in values]
    mean = sum(exact) / len(exact)
    return float(sum((v - mean) ** 2 for v in exact) / (len(exact) - 1)) ** 0.5


# ---------------------------------------------------------------- fast path == general path


@pytest.mark.parametrize("include_current", [False, True])
def test_kernels_equal_the_duckdb_path(duckdb_only, include_current):
    rng = np.random.default_rng(11)
    n = 4000
    df = pd.DataFrame(
        {
            "e": rng.integers(0, 40, size=n),
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 24 * 20, size=n), unit="h"),
            "v": rng.normal(50.0, 10.0, size=n).round(2),
            "w": rng.integers(-5, 5, size=n),
        }
    )
    df.loc[rng.random(n) < 0.1, "v"] = np.nan  # nulls (from pandas NaN)
    windows = [1, 3, 17, "1h", "6h", "3d", "40d"]
    args = ("e", "ts", ["v", "w"], windows)
    fast = rolling(df, *args, stats=KERNEL_STATS, include_current=include_current)
    general = duckdb_only(df, *args, stats=KERNEL_STATS, include_current=include_current)
    _assert_same(_features(fast, df), _features(general, df))


def test_median_and_kernel_stats_mixed_keep_column_order(duckdb_only):
    rng = np.random.default_rng(3)
    df = pd.DataFrame(
        {"e": rng.integers(0, 5, 300), "t": rng.integers(0, 60, 300), "v": rng.normal(size=300)}
    )
    stats = ["median", "mean", "count", "max"]
    fast = rolling(df, "e", "t", "v", windows=[2, 9], stats=stats)
    general = duckdb_only(df, "e", "t", "v", windows=[2, 9], stats=stats)
    assert list(fast.columns) == list(general.columns)
    _assert_same(_features(fast, df), _features(general, df))


def test_arrow_nan_and_inf_keep_sql_semantics(duckdb_only):
    """NaN (not null) and infinities go down the DuckDB path, unchanged: NaN is a value there."""
    table = pa.table(
        {
            "e": [1, 1, 1, 1, 2, 2, 2],
            "t": [1, 2, 3, 4, 1, 2, 3],
            "v": pa.array([1.0, float("nan"), None, 4.0, float("inf"), 2.0, 3.0]),
        }
    )
    fast = rolling(table, "e", "t", "v", windows=[3], stats=KERNEL_STATS)
    general = duckdb_only(table, "e", "t", "v", windows=[3], stats=KERNEL_STATS)
    pd.testing.assert_frame_equal(fast.to_pandas(), general.to_pandas())
    assert [c.null_count for c in fast.columns] == [c.null_count for c in general.columns]
    assert fast.column("v_max_3rows").to_pylist()[3] != fast.column("v_max_3rows").to_pylist()[3]  # NaN
    assert fast.column("v_count_3rows").to_pylist()[3] == 2  # NaN counts, null does not


def test_one_entity_longer_than_a_chunk(duckdb_only):
    """Windows of thousands of rows cross the kernels' chunk boundaries."""
    rng = np.random.default_rng(8)
    n = 2 * CHUNK + 123
    df = pd.DataFrame({"e": 0, "t": np.arange(n), "v": rng.normal(size=n)}).sample(frac=1.0, random_state=2)
    windows = [5000, 3 * CHUNK]
    fast = rolling(df, "e", "t", "v", windows=windows, stats=["mean", "std", "min", "max", "count"])
    general = duckdb_only(df, "e", "t", "v", windows=windows, stats=["mean", "std", "min", "max", "count"])
    _assert_same(_features(fast, df), _features(general, df), rtol=1e-8)


# ---------------------------------------------------------------- the kernel against brute force


def test_range_stats_brute_force_across_chunks():
    rng = np.random.default_rng(1)
    n = CHUNK + 5000
    values = rng.normal(size=n) * rng.choice([1.0, 1e6], size=n)
    valid = rng.random(n) > 0.15
    lo = rng.integers(0, n, size=n)
    hi = np.minimum(lo + rng.choice([0, 1, 2, 7, 300, 9000], size=n), n)
    frames = [(lo, hi), (np.sort(lo) // 2, np.sort(lo))]
    results = range_stats(values, valid, frames, {"s", "q", "min", "max"})
    for (a, b), res in zip(frames, results, strict=True):
        for i in rng.choice(n, size=400, replace=False):
            vals = values[a[i] : b[i]][valid[a[i] : b[i]]]
            assert res["n"][i] == len(vals)
            if len(vals) == 0:
                assert np.isnan(res["min"][i]) and np.isnan(res["max"][i])
                continue
            assert res["min"][i] == vals.min() and res["max"][i] == vals.max()
            np.testing.assert_allclose(res["s"][i], vals.sum(), rtol=1e-9, atol=1e-6)
            np.testing.assert_allclose(res["c"][i] + res["m"][i], vals.mean(), rtol=1e-9, atol=1e-9)
            if len(vals) > 1:
                np.testing.assert_allclose(res["q"][i], ((vals - vals.mean()) ** 2).sum(), rtol=1e-9)


# ---------------------------------------------------------------- accuracy on adversarial data


def _series(entity_values: dict[int, np.ndarray]) -> pd.DataFrame:
    frames = [pd.DataFrame({"e": e, "t": np.arange(len(v)), "v": v}) for e, v in entity_values.items()]
    return pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=4)


def test_large_offset_plus_small_noise_is_exact_to_rounding():
    rng = np.random.default_rng(5)
    df = _series({e: 1e9 + e + rng.normal(0.0, 1e-3, size=200) for e in range(3)})
    out = rolling(df, "e", "t", "v", windows=[5, 50], stats=["mean", "std"])
    for row in rng.choice(df.index, size=60, replace=False):
        e, t = df.loc[row, "e"], df.loc[row, "t"]
        history = df[(df["e"] == e) & (df["t"] < t)].sort_values("t")["v"].tolist()
        for w in (5, 50):
            window = history[-w:]
            if len(window) < 2:
                continue
            assert out.loc[row, f"v_std_{w}rows"] == pytest.approx(_exact_std(window), rel=1e-9)
            exact_mean = float(sum(Fraction(v) for v in window) / len(window))
            assert out.loc[row, f"v_mean_{w}rows"] == pytest.approx(exact_mean, rel=1e-15)


def test_constant_series_have_zero_spread():
    df = _series({0: np.full(300, 1e9 + 0.1), 1: np.full(300, 0.1), 2: np.full(300, -7.3e-5)})
    out = rolling(df, "e", "t", "v", windows=[2, 30, 1000], stats=["mean", "std", "var", "min", "max"])
    for w in ("2rows", "30rows", "1000rows"):
        has = out[f"v_std_{w}"].notna()
        assert has.sum() == 3 * 298
        assert (out.loc[has, f"v_std_{w}"] == 0.0).all() and (out.loc[has, f"v_var_{w}"] == 0.0).all()
        seen = out[f"v_mean_{w}"].notna()
        assert (out.loc[seen, f"v_mean_{w}"] == out.loc[seen, "v"]).all()
        assert (out.loc[seen, f"v_min_{w}"] == out.loc[seen, "v"]).all()


def test_level_shift_does_not_leak_into_later_windows():
    """A running sum of squares would carry 1e24-sized rounding into the quiet part; merges do not."""
    rng = np.random.default_rng(9)
    loud = 1e12 + rng.normal(0.0, 1e9, size=100)
    quiet = 0.5 + rng.normal(0.0, 1e-6, size=100)
    df = _series({0: np.r_[loud, np.full(100, 0.5)], 1: np.r_[loud, quiet]})
    out = rolling(df, "e", "t", "v", windows=[10], stats=["mean", "std"]).sort_values(["e", "t"])
    later = out["t"] >= 111
    constant = out[later & (out["e"] == 0)]
    assert (constant["v_std_10rows"] == 0.0).all() and (constant["v_mean_10rows"] == 0.5).all()
    noisy = out[later & (out["e"] == 1)]
    for t, got in zip(noisy["t"], noisy["v_std_10rows"], strict=True):
        assert got == pytest.approx(_exact_std(list(quiet[t - 110 : t - 100])), rel=1e-9)


def test_single_row_entities_and_windows_longer_than_the_data():
    df = pd.DataFrame(
        {
            "e": [1, 2, 3, 3],
            "t": pd.to_datetime(["2024-01-01"] * 3 + ["2024-01-05"]),
            "v": [1.5, np.nan, 2.0, 4.0],
        }
    )
    stats = ["mean", "std", "min", "max", "sum", "count"]
    out = rolling(df, "e", "t", "v", windows=[10_000, "36500d"], stats=stats)
    assert out["v_count_10000rows"].tolist() == [0, 0, 0, 1]
    assert out["v_mean_36500d"].isna().tolist() == [True, True, True, False]
    assert out.loc[3, ["v_mean_36500d", "v_min_10000rows", "v_sum_36500d"]].tolist() == [2.0, 2.0, 2.0]
    assert np.isnan(out.loc[3, "v_std_36500d"])  # one value: no sample std
    current = rolling(df, "e", "t", "v", windows=[10_000], stats=stats, include_current=True)
    assert current["v_count_10000rows"].tolist() == [1, 0, 1, 2]
    assert current.loc[0, ["v_mean_10000rows", "v_min_10000rows", "v_max_10000rows"]].tolist() == [1.5] * 3
    assert current["v_mean_10000rows"].isna().tolist() == [False, True, False, False]
    assert current.loc[3, "v_std_10000rows"] == pytest.approx(np.std([2.0, 4.0], ddof=1))
