"""PSI, KS, chi-square and Jensen-Shannon on fixed data equal hand calculations and scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from larder.errors import ConfigError
from larder.quality import DriftThresholds, compare, psi
from larder.quality.drift import bin_fractions, numeric_psi, quantile_edges


def test_psi_formula_by_hand() -> None:
    b = np.array([0.2, 0.3, 0.5])
    c = np.array([0.1, 0.4, 0.5])
    hand = (0.1 - 0.2) * math.log(0.1 / 0.2) + (0.4 - 0.3) * math.log(0.4 / 0.3) + 0.0
    assert psi(b, c) == pytest.approx(hand, rel=1e-12)
    assert psi(b, b) == 0.0


def test_numeric_psi_uses_baseline_deciles_by_hand() -> None:
    baseline = np.arange(1.0, 11.0)  # deciles 1.9, 2.8, ..., 9.1: one baseline value per bin
    current = np.array([1.0, 1, 1, 1, 1, 2, 3, 4, 5, 6])
    edges = quantile_edges(baseline, 10)
    assert edges == pytest.approx([1.9, 2.8, 3.7, 4.6, 5.5, 6.4, 7.3, 8.2, 9.1])
    assert bin_fractions(current, edges) == pytest.approx([0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0, 0, 0, 0])
    eps = 1e-4  # empty current bins count as eps
    hand = (0.5 - 0.1) * math.log(0.5 / 0.1) + 4 * (eps - 0.1) * math.log(eps / 0.1)
    assert numeric_psi(baseline, current) == pytest.approx(hand, rel=1e-12)

    report = compare(pd.DataFrame({"x": baseline}), pd.DataFrame({"x": current}))
    assert report.feature("x").psi == pytest.approx(hand, rel=1e-12)


def test_ks_statistic_by_hand_and_against_scipy() -> None:
    b = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    c = pd.DataFrame({"x": [3.0, 4.0, 5.0, 6.0]})
    f = compare(b, c).feature("x")
    assert f.ks_statistic == pytest.approx(0.5)  # ECDFs differ most at x=2: 0.5 vs 0
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=800), rng.normal(0.3, 1.2, size=600)
    f = compare(pd.DataFrame({"x": x}), pd.DataFrame({"x": y})).feature("x")
    ref = stats.ks_2samp(x, y)
    assert f.ks_statistic == pytest.approx(ref.statistic, abs=1e-12)
    assert f.ks_pvalue == pytest.approx(ref.pvalue, rel=1e-9)


def test_categorical_chi_square_and_js_by_hand() -> None:
    b = pd.DataFrame({"zone": ["a"] * 30 + ["b"] * 20})
    c = pd.DataFrame({"zone": ["a"] * 20 + ["b"] * 30})
    f = compare(b, c).feature("zone")
    assert f.kind == "categorical"
    # 2x2 table [[30, 20], [20, 30]]: every expected count is 25, so chi2 = 4 * 5**2 / 25 = 4
    assert f.chi2_statistic == pytest.approx(4.0)
    assert f.chi2_pvalue == pytest.approx(stats.chi2.sf(4.0, df=1))
    p, q = np.array([0.6, 0.4]), np.array([0.4, 0.6])
    m = (p + q) / 2
    div = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    assert f.js_distance == pytest.approx(math.sqrt(div), rel=1e-12)
    assert f.psi == pytest.approx((0.4 - 0.6) * math.log(0.4 / 0.6) + (0.6 - 0.4) * math.log(0.6 / 0.4))


def test_chi_square_matches_scipy_with_new_and_missing_categories() -> None:
    b = pd.DataFrame({"c": ["x"] * 50 + ["y"] * 30 + ["z"] * 20})
    c = pd.DataFrame({"c": ["x"] * 40 + ["y"] * 40 + ["w"] * 20})
    f = compare(b, c).feature("c")
    ref = stats.chi2_contingency(np.array([[50, 30, 20, 0], [40, 40, 0, 20]]), correction=False)
    assert f.chi2_statistic == pytest.approx(ref.statistic)
    assert f.chi2_pvalue == pytest.approx(ref.pvalue)
    assert f.plot is not None and f.plot.labels == ["x", "y", "z", "w"]


def test_verdicts_and_thresholds() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    base = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], n), "id": np.arange(n)})
    same = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], n), "id": np.arange(n)})
    shifted = pd.DataFrame({"x": rng.normal(1.0, size=n), "c": rng.choice(["a", "b", "c"], n, p=[.7, .2, .1]),
                            "id": np.arange(n)})
    ok = compare(base, same, exclude=["id"])
    assert [f.name for f in ok.features] == ["x", "c"]
    assert ok.verdict == "ok", ok.to_frame()
    bad = compare(base, shifted, exclude=["id"])
    assert bad.verdict == "drift"
    assert {f.name: f.verdict for f in bad.features} == {"x": "drift", "c": "drift"}
    assert any("PSI" in r for r in bad.feature("x").reasons)
    lenient = compare(base, shifted, exclude=["id"],
                      thresholds={"psi_warn": 10, "psi_drift": 20, "ks_warn": 0.9, "ks_drift": 0.95,
                                  "js_warn": 0.9, "js_drift": 0.95})
    assert lenient.verdict == "ok"
    with pytest.raises(ConfigError, match="psi_limit"):
        compare(base, same, thresholds={"psi_limit": 1})


def test_null_rate_change_missing_columns_and_skipped_types() -> None:
    base = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 25, "gone": 1.0, "when": pd.Timestamp("2024-01-01")})
    cur = pd.DataFrame({"x": [1.0, 2.0, 3.0, None] * 25, "when": pd.Timestamp("2024-01-02"), "extra": 1})
    rep = compare(base, cur, thresholds=DriftThresholds(null_rate_drift=0.2))
    x = rep.feature("x")
    assert x.null_rate_current == pytest.approx(0.25) and x.verdict == "drift"
    assert any("null rate" in r for r in x.reasons)
    assert rep.missing_in_current == ["gone"] and rep.new_in_current == ["extra"]
    assert rep.feature("when").verdict == "skipped"
    assert rep.verdict == "drift"


def test_unknown_feature_is_an_error() -> None:
    df = pd.DataFrame({"x": [1.0]})
    with pytest.raises(ConfigError, match="nope"):
        compare(df, df, features=["nope"])
