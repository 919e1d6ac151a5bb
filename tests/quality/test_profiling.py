"""Profiles computed by DuckDB agree with pandas/numpy on the same data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from larder.errors import ConfigError
from larder.quality import Profile, profile


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 5000
    x = rng.normal(50, 10, n)
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "x": x,
        "k": rng.integers(0, 40, n),
        "zone": pd.Series(rng.choice(["RL", "RM", "FV", "C"], n, p=[0.5, 0.3, 0.15, 0.05])).where(
            rng.random(n) > 0.02),
        "flag": rng.random(n) > 0.7,
        "ts": pd.date_range("2024-01-01", periods=n, freq="h"),
    })


def test_numeric_statistics_match_numpy(frame: pd.DataFrame) -> None:
    p = profile(frame)
    x = p.column("x")
    values = frame["x"].dropna().to_numpy()
    assert (x.kind, x.count, x.nulls) == ("numeric", len(values), int(frame["x"].isna().sum()))
    assert x.null_fraction == pytest.approx(frame["x"].isna().mean())
    assert x.mean == pytest.approx(values.mean(), rel=1e-12)
    assert x.std == pytest.approx(values.std(ddof=1), rel=1e-9)
    assert (x.min, x.max) == (values.min(), values.max())
    assert x.distinct == len(np.unique(values)) and not x.distinct_approximate
    assert profile(frame, workers=1).column("x") == x  # threads change nothing
    qs = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
    assert list(x.quantiles.values()) == pytest.approx(np.quantile(values, qs), rel=1e-12)
    assert list(x.quantiles) == ["p1", "p5", "p25", "p50", "p75", "p95", "p99"]
    counts, edges = np.histogram(values, bins=20, range=(values.min(), values.max()))
    assert x.histogram.counts == counts.tolist()
    assert x.histogram.edges == pytest.approx(edges.tolist())
    k = p.column("k")
    assert k.distinct == frame["k"].nunique() and sum(k.histogram.counts) == len(frame)


def test_categorical_and_datetime_statistics(frame: pd.DataFrame) -> None:
    p = profile(frame, top_k=3)
    zone = p.column("zone")
    vc = frame["zone"].value_counts()
    assert zone.kind == "categorical" and zone.nulls == int(frame["zone"].isna().sum())
    assert [(v.value, v.count) for v in zone.top_values] == list(zip(vc.index[:3], vc.values[:3].tolist(),
                                                                         strict=True))
    assert zone.distinct == 4 and zone.mean is None
    flag = p.column("flag")
    assert {v.value: v.count for v in flag.top_values} == {
        "true": int(frame["flag"].sum()), "false": int((~frame["flag"]).sum())}
    ts = p.column("ts")
    assert ts.kind == "datetime" and ts.min == "2024-01-01T00:00:00" and ts.max == frame["ts"].max().isoformat()


def test_nan_infinity_and_constant_columns() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, None, 4.0, np.inf, -np.inf], "const": [3] * 6,
                       'odd "name"': ["a"] * 6})
    p = profile(df)
    x = p.column("x")
    assert (x.count, x.nulls, x.infinite) == (5, 1, 2)
    assert (x.min, x.max, x.mean) == (1.0, 4.0, pytest.approx(7 / 3))
    const = p.column("const")
    assert const.histogram.counts == [6] and const.std == 0.0
    assert p.column('odd "name"').top_values[0].count == 6


def test_sampling_is_uniform_seeded_and_recorded(frame: pd.DataFrame) -> None:
    p1 = profile(frame, sample_rows=1000, seed=5)
    p2 = profile(frame, sample_rows=1000, seed=5)
    assert (p1.row_count, p1.profiled_rows, p1.sampled) == (len(frame), 1000, True)
    assert p1.column("x").mean == p2.column("x").mean
    assert p1.column("x").mean == pytest.approx(frame["x"].mean(), abs=1.5)
    whole = profile(frame, sample_rows=len(frame))
    assert not whole.sampled and whole.profiled_rows == len(frame)


def test_distinct_counts_are_exact_unless_sampled() -> None:
    n = 200_000
    df = pd.DataFrame({"i": np.arange(n) % 50_000, "s": pd.Series(np.arange(n) % 30_000).astype("str")})
    p = profile(df)
    assert (p.column("i").distinct, p.column("s").distinct) == (50_000, 30_000)
    assert not p.column("i").distinct_approximate
    sample = profile(df, sample_rows=10_000)
    assert sample.column("i").distinct_approximate and sample.column("i").distinct <= 10_000


def test_arrow_input_column_selection_and_json(frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    p = profile(table, columns=["x", "zone"])
    assert [c.name for c in p.columns] == ["x", "zone"]
    back = Profile.model_validate(json.loads(p.model_dump_json()))
    assert back == p
    with pytest.raises(ConfigError, match="nope"):
        profile(frame, columns=["nope"])
    with pytest.raises(ConfigError):
        profile(frame, bins=0)


def test_unconvertible_object_columns_fall_back_to_text() -> None:
    df = pd.DataFrame({"mixed": [1, "a", 2.5, None], "x": [1.0, 2.0, 3.0, 4.0]})
    p = profile(df)
    assert p.column("mixed").kind == "categorical" and p.column("mixed").nulls == 1
    assert p.column("x").mean == 2.5
