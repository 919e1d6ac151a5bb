"""select_features(): informative over noise, the combination rule, the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from larder.errors import TransformError
from larder.selection import SelectionReport, select_features


@pytest.fixture(scope="module")
def synthetic() -> tuple[pd.DataFrame, pd.Series]:
    """Two informative features (one non-linear), a near-copy of one, a constant, eight noise columns."""
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame(rng.normal(size=(n, 8)), columns=[f"noise{i}" for i in range(8)])
    X["lin"] = rng.normal(size=n)
    X["quad"] = rng.uniform(-2, 2, size=n)
    X["lin_copy"] = X["lin"] + rng.normal(scale=0.01, size=n)
    X["const"] = 3.0
    y = 2.0 * X["lin"] + X["quad"] ** 2 + rng.normal(scale=0.3, size=n)
    return X, y


FAST = {"random_state": 0}


@pytest.mark.parametrize("method", ["mutual_info", "importance", "rfe"])
def test_each_ranker_prefers_signal_over_noise(synthetic, method):
    X, y = synthetic
    X = X.drop(columns=["lin_copy", "const"])
    report = select_features(X, y, methods=[method], k=2, **FAST)
    assert sorted(report.selected) == ["lin", "quad"]
    noise = report.scores.loc[[f"noise{i}" for i in range(8)], method]  # score columns are named by method
    top = report.scores.loc[["lin", "quad"], method]
    assert top.min() > noise.max()


def test_filters_then_rank_aggregation(synthetic):
    X, y = synthetic
    report = select_features(
        X, y, methods=["variance", "correlation", "mutual_info", "importance"], k=2, **FAST
    )
    assert isinstance(report, SelectionReport)
    assert report.task == "regression"
    assert set(report.selected) in ({"lin", "quad"}, {"lin_copy", "quad"})
    assert report.dropped["const"].startswith("variance")
    pruned = ({"lin", "lin_copy"} - set(report.selected)).pop()
    assert report.dropped[pruned].startswith("correlation")
    s = report.scores
    # rank is the mean of the per-ranker ranks among filter survivors
    alive = s.index[s["rank"].notna()]
    expected = (
        s.loc[alive, "mutual_info"].rank(ascending=False) + s.loc[alive, "importance"].rank(ascending=False)
    ) / 2
    pd.testing.assert_series_equal(s.loc[alive, "rank"], expected, check_names=False)
    assert list(s.index[:2]) == report.selected
    assert not s.loc["const", "selected"]
    assert np.isnan(s.loc["const", "rank"])


def test_k_variants_and_classification(synthetic):
    X, y = synthetic
    everything = select_features(X, y, methods=["variance"])
    assert "const" not in everything.selected and len(everything.selected) == X.shape[1] - 1
    share = select_features(X[["lin", "quad", "noise0", "noise1"]], y, methods=["mutual_info"], k=0.5, **FAST)
    assert sorted(share.selected) == ["lin", "quad"]
    labels = (y > y.median()).map({True: "high", False: "low"})
    clf = select_features(
        X.drop(columns=["lin_copy"]), labels, methods=["mutual_info", "importance"], k=2, **FAST
    )
    assert clf.task == "classification" and sorted(clf.selected) == ["lin", "quad"]
    arrow = select_features(pa.Table.from_pandas(X[["lin", "noise0"]]), y, methods=["mutual_info"], k=1)
    assert arrow.selected == ["lin"]


def test_nulls_are_imputed_for_scoring_only(synthetic):
    X, y = synthetic
    holes = X[["lin", "noise0", "noise1"]].copy()
    holes.loc[::7, "lin"] = np.nan
    report = select_features(holes, y, methods=["mutual_info"], k=1, **FAST)
    assert report.selected == ["lin"]
    assert report.notes and "imputed" in report.notes[0]


def test_report_outputs(tmp_path, synthetic):
    X, y = synthetic
    report = select_features(X, y, methods=["variance", "correlation", "mutual_info"], k=3, **FAST)
    png = report.save_chart(tmp_path / "chart.png")
    assert png.stat().st_size > 5_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = report.save_chart(tmp_path / "sub" / "chart.html", method="variance").read_text()
    assert "<img" in html and "data:image/png;base64," in html and "lin" in html
    data = report.to_dict()
    assert json.loads(json.dumps(data))["selected"] == report.selected
    assert data["scores"]["const"]["rank"] is None
    meta = report.feature_metadata()
    assert set(meta) == set(X.columns)
    assert meta[report.selected[0]]["selected"] is True and meta[report.selected[0]]["dropped_by"] is None
    assert meta["const"]["dropped_by"].startswith("variance")
    assert set(meta["lin"]["scores"]) == {"variance", "max_abs_corr", "mutual_info"}
    with pytest.raises(TransformError, match=".png or .html"):
        report.save_chart(tmp_path / "chart.pdf")
    with pytest.raises(TransformError, match="no scores for method 'rfe'"):
        report.save_chart(tmp_path / "x.png", method="rfe")


def test_bad_input(synthetic):
    X, y = synthetic
    with pytest.raises(TransformError, match="'city'.*not numeric"):
        select_features(X.assign(city="a"), y, methods=["variance"])
    with pytest.raises(TransformError, match="unknown method"):
        select_features(X, y, methods=["lasso"])
    with pytest.raises(TransformError, match="needs a ranking method"):
        select_features(X, y, methods=["variance"], k=2)
    with pytest.raises(TransformError, match="rows but y has"):
        select_features(X, y[:10], methods=["variance"])
    with pytest.raises(TransformError, match="null value"):
        select_features(X, y.where(y > 0), methods=["variance"])
    with pytest.raises(TransformError, match="single class"):
        select_features(X, np.zeros(len(X), dtype=int), methods=["mutual_info"], task="classification")
    with pytest.raises(TransformError, match="task must be"):
        select_features(X, y, methods=["variance"], task="ranking")
