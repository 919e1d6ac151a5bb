"""Distribution drift between a baseline and a current DataFrame, per feature.

Numeric features get the population stability index (PSI) over the baseline's deciles and the
two-sample Kolmogorov-Smirnov statistic; categorical ones get PSI over categories, the chi-square
test of homogeneity and the Jensen-Shannon distance. Every feature also reports its null rate on
both sides. A feature's verdict is ``drift``, ``warn`` or ``ok`` by :class:`DriftThresholds`, and the
report's verdict is the worst of them.

Verdicts use effect sizes (PSI, KS statistic, JS distance, null-rate change), not p-values: on the
large samples a feature store sees, a p-value flags differences far too small to matter. The KS and
chi-square p-values are still reported, and ``chi2_pvalue`` can be made a ``warn`` criterion.

PSI is ``sum((c - b) * ln(c / b))`` over bins, where ``b`` and ``c`` are the baseline and current
fractions; an empty bin on either side counts as ``eps`` (1e-4) so the logarithm stays finite.

>>> import numpy as np
>>> psi(np.array([0.5, 0.5]), np.array([0.25, 0.75]))  # 0.25*ln(0.5) + ... by hand
0.2746530721670274
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from larder.errors import ConfigError

Verdict = Literal["ok", "warn", "drift", "skipped"]
_RANK = {"skipped": -1, "ok": 0, "warn": 1, "drift": 2}
PSI_EPS = 1e-4
#: Categories beyond this many (most frequent in the baseline) are pooled into one "other" bucket.
MAX_CATEGORIES = 50
OTHER = "__other__"


class DriftThresholds(BaseModel):
    """Limits at which a feature is ``warn`` or ``drift``. Common rules of thumb as defaults."""

    model_config = ConfigDict(extra="forbid")

    psi_warn: float = 0.1
    psi_drift: float = 0.25
    ks_warn: float = 0.1
    ks_drift: float = 0.2
    js_warn: float = 0.1
    js_drift: float = 0.2
    null_rate_warn: float = 0.05
    null_rate_drift: float = 0.2
    #: if set, a chi-square p-value below it is a warn
    chi2_pvalue: float | None = None


class PlotBins(BaseModel):
    """Baseline and current distributions on shared bins, for plotting."""

    labels: list[str]
    edges: list[float] | None = None
    baseline: list[float]
    current: list[float]


class FeatureDrift(BaseModel):
    name: str
    kind: Literal["numeric", "categorical", "other"]
    verdict: Verdict
    reasons: list[str] = Field(default_factory=list)
    baseline_count: int = 0
    current_count: int = 0
    null_rate_baseline: float = 0.0
    null_rate_current: float = 0.0
    psi: float | None = None
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    chi2_statistic: float | None = None
    chi2_pvalue: float | None = None
    js_distance: float | None = None
    plot: PlotBins | None = None


class DriftReport(BaseModel):
    baseline_label: str = "baseline"
    current_label: str = "current"
    baseline_rows: int
    current_rows: int
    thresholds: DriftThresholds
    features: list[FeatureDrift]
    missing_in_current: list[str] = Field(default_factory=list)
    new_in_current: list[str] = Field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        ranked = [f.verdict for f in self.features if f.verdict != "skipped"]
        if self.missing_in_current:
            ranked.append("drift")
        return max(ranked, key=_RANK.__getitem__) if ranked else "ok"

    def feature(self, name: str) -> FeatureDrift:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"Feature {name!r} is not in this drift report ({[f.name for f in self.features]}).")

    def to_frame(self) -> pd.DataFrame:
        """One row per feature with its metrics and verdict."""
        cols = ["name", "kind", "verdict", "psi", "ks_statistic", "chi2_pvalue", "js_distance",
                "null_rate_baseline", "null_rate_current"]
        return pd.DataFrame([{c: getattr(f, c) for c in cols} for f in self.features], columns=cols)


# -------------------------------------------------------------------------------------------- metrics
def psi(baseline_fractions: np.ndarray, current_fractions: np.ndarray, *, eps: float = PSI_EPS) -> float:
    """Population stability index of two binned distributions (each summing to 1)."""
    b = np.clip(np.asarray(baseline_fractions, dtype=float), eps, None)
    c = np.clip(np.asarray(current_fractions, dtype=float), eps, None)
    return float(np.sum((c - b) * np.log(c / b)))


def quantile_edges(baseline: np.ndarray, bins: int = 10) -> np.ndarray:
    """Inner bin edges at the baseline's quantiles (duplicates removed): ``bins`` bins at most."""
    inner = np.quantile(baseline, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(inner)


def bin_fractions(values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Fractions of ``values`` in bins ``(-inf, e1], (e1, e2], ..., (ek, inf)``."""
    idx = np.searchsorted(inner_edges, values, side="left")
    counts = np.bincount(idx, minlength=len(inner_edges) + 1).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def numeric_psi(baseline: np.ndarray, current: np.ndarray, *, bins: int = 10, eps: float = PSI_EPS) -> float:
    """PSI of two samples over the baseline's quantile bins.

    >>> round(numeric_psi(np.arange(100.0), np.arange(100.0)), 12)
    0.0
    """
    edges = quantile_edges(baseline, bins)
    return psi(bin_fractions(baseline, edges), bin_fractions(current, edges), eps=eps)


def ks_statistic(baseline: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """The two-sample Kolmogorov-Smirnov statistic and its p-value (scipy's ``ks_2samp``)."""
    from scipy import stats

    res = stats.ks_2samp(baseline, current)
    return float(res.statistic), float(res.pvalue)


# -------------------------------------------------------------------------------------------- compare
def compare(
    baseline: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str] | None = None,
    thresholds: DriftThresholds | dict[str, Any] | None = None,
    *,
    exclude: Sequence[str] = (),
    baseline_label: str = "baseline",
    current_label: str = "current",
    bins: int = 10,
    plot_bins: int = 20,
) -> DriftReport:
    """Compare each feature's distribution in ``current`` with ``baseline``.

    Parameters
    ----------
    baseline, current
        The two frames (pandas; pyarrow tables are converted).
    features
        Columns to compare (default: every column in ``baseline`` except ``exclude``).
    thresholds
        :class:`DriftThresholds` or a dict of its fields.
    exclude
        Columns to leave out, e.g. primary and timestamp keys.
    bins
        Quantile bins for numeric PSI.
    plot_bins
        Equal-width bins of the plotted histograms.
    """
    th = _thresholds(thresholds)
    base, cur = _as_pandas(baseline), _as_pandas(current)
    if features is None:
        names = [c for c in base.columns if c not in set(exclude)]
    else:
        names = list(features)
        unknown = [c for c in names if c not in base.columns and c not in cur.columns]
        if unknown:
            raise ConfigError(f"compare(): features {unknown} are in neither frame "
                              f"(baseline columns: {list(base.columns)}).")
    missing = [c for c in names if c in base.columns and c not in cur.columns]
    new = [c for c in cur.columns if c not in base.columns and c not in set(exclude)
           and (features is None or c in names)]
    results = [_feature(c, base[c], cur[c], th, bins, plot_bins)
               for c in names if c in base.columns and c in cur.columns]
    return DriftReport(baseline_label=baseline_label, current_label=current_label, baseline_rows=len(base),
                       current_rows=len(cur), thresholds=th, features=results, missing_in_current=missing,
                       new_in_current=new)


def _feature(name: str, b: pd.Series, c: pd.Series, th: DriftThresholds, bins: int,
             plot_bins: int) -> FeatureDrift:
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    kind = _kind(b.dtype, c.dtype)
    nb, nc = b.isna().mean() if len(b) else 0.0, c.isna().mean() if len(c) else 0.0
    out = FeatureDrift(name=name, kind=kind, verdict="ok", null_rate_baseline=float(nb),
                       null_rate_current=float(nc))
    reasons: list[tuple[Verdict, str]] = []
    dnull = abs(nc - nb)
    if dnull >= th.null_rate_drift:
        reasons.append(("drift", f"null rate {nb:.1%} -> {nc:.1%}"))
    elif dnull >= th.null_rate_warn:
        reasons.append(("warn", f"null rate {nb:.1%} -> {nc:.1%}"))

    if kind == "numeric":
        bv = _finite(b)
        cv = _finite(c)
        out.baseline_count, out.current_count = len(bv), len(cv)
        if len(bv) and len(cv):
            out.psi = numeric_psi(bv, cv, bins=bins)
            out.ks_statistic, out.ks_pvalue = ks_statistic(bv, cv)
            reasons += _grade("PSI", out.psi, th.psi_warn, th.psi_drift)
            reasons += _grade("KS", out.ks_statistic, th.ks_warn, th.ks_drift)
            out.plot = _numeric_plot(bv, cv, plot_bins)
    elif kind == "categorical":
        bs, cs = _labels(b), _labels(c)
        out.baseline_count, out.current_count = len(bs), len(cs)
        if len(bs) and len(cs):
            cats, bcnt, ccnt = _category_counts(bs, cs)
            bf, cf = bcnt / bcnt.sum(), ccnt / ccnt.sum()
            out.psi = psi(bf, cf)
            out.js_distance = float(jensenshannon(bf, cf, base=2))
            table = np.vstack([bcnt, ccnt])
            table = table[:, table.sum(axis=0) > 0]
            if table.shape[1] > 1:
                chi2 = stats.chi2_contingency(table, correction=False)
                out.chi2_statistic, out.chi2_pvalue = float(chi2.statistic), float(chi2.pvalue)
            else:
                out.chi2_statistic, out.chi2_pvalue = 0.0, 1.0
            reasons += _grade("PSI", out.psi, th.psi_warn, th.psi_drift)
            reasons += _grade("JS distance", out.js_distance, th.js_warn, th.js_drift)
            if th.chi2_pvalue is not None and out.chi2_pvalue < th.chi2_pvalue:
                reasons.append(("warn", f"chi-square p-value {out.chi2_pvalue:.3g} < {th.chi2_pvalue}"))
            out.plot = PlotBins(labels=cats, baseline=bf.tolist(), current=cf.tolist())
    else:
        out.verdict = "skipped"
        out.reasons = [f"dtype {b.dtype} / {c.dtype} is neither numeric nor categorical"]
        return out
    if not reasons and (out.baseline_count == 0 or out.current_count == 0):
        out.verdict = "skipped"
        out.reasons = ["no non-null values on one side"]
        return out
    if reasons:
        out.verdict = max((v for v, _ in reasons), key=_RANK.__getitem__)
        out.reasons = [f"{v}: {msg}" for v, msg in reasons]
    return out


def _grade(metric: str, value: float, warn: float, drift: float) -> list[tuple[Verdict, str]]:
    if value >= drift:
        return [("drift", f"{metric} {value:.3g} >= {drift}")]
    if value >= warn:
        return [("warn", f"{metric} {value:.3g} >= {warn}")]
    return []


def _kind(b: Any, c: Any) -> Literal["numeric", "categorical", "other"]:
    t = pd.api.types

    def numeric(d: Any) -> bool:
        return bool(t.is_numeric_dtype(d) and not t.is_bool_dtype(d))

    def categorical(d: Any) -> bool:
        return bool(t.is_bool_dtype(d) or t.is_string_dtype(d) or isinstance(d, pd.CategoricalDtype)
                    or t.is_object_dtype(d))

    if numeric(b) and numeric(c):
        return "numeric"
    if categorical(b) and categorical(c):
        return "categorical"
    return "other"


def _finite(s: pd.Series) -> np.ndarray:
    v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return v[np.isfinite(v)]


def _labels(s: pd.Series) -> pd.Series:
    return s.dropna().astype(str)


def _category_counts(b: pd.Series, c: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    bvc, cvc = b.value_counts(), c.value_counts()
    order = list(bvc.index[:MAX_CATEGORIES])
    order += [k for k in cvc.index if k not in set(order)][: max(0, MAX_CATEGORIES - len(order))]
    keep = set(order)
    bcnt = [int(bvc.get(k, 0)) for k in order]
    ccnt = [int(cvc.get(k, 0)) for k in order]
    b_other = int(bvc[[k for k in bvc.index if k not in keep]].sum())
    c_other = int(cvc[[k for k in cvc.index if k not in keep]].sum())
    if b_other or c_other:
        order.append(OTHER)
        bcnt.append(b_other)
        ccnt.append(c_other)
    return order, np.array(bcnt, dtype=float), np.array(ccnt, dtype=float)


def _numeric_plot(b: np.ndarray, c: np.ndarray, nbins: int) -> PlotBins:
    lo = float(min(b.min(), c.min()))
    hi = float(max(b.max(), c.max()))
    integral = bool(np.all(b == np.round(b)) and np.all(c == np.round(c)))
    if integral and hi - lo + 1 <= nbins:  # few integer values: one bar per value
        edges = np.arange(lo - 0.5, hi + 1.0, 1.0)
        nbins = len(edges) - 1
    else:
        if hi <= lo:
            hi = lo + 1.0
        edges = np.linspace(lo, hi, nbins + 1)
    bh, _ = np.histogram(b, bins=edges)
    ch, _ = np.histogram(c, bins=edges)
    return PlotBins(
        labels=[f"{edges[i]:.3g}" for i in range(nbins)], edges=edges.tolist(),
        baseline=(bh / max(bh.sum(), 1)).tolist(), current=(ch / max(ch.sum(), 1)).tolist(),
    )


def _thresholds(t: DriftThresholds | dict[str, Any] | None) -> DriftThresholds:
    if t is None:
        return DriftThresholds()
    if isinstance(t, DriftThresholds):
        return t
    try:
        return DriftThresholds(**t)
    except PydanticValidationError as exc:
        raise ConfigError(f"Invalid drift thresholds {t!r}: {exc}. Valid keys: "
                          f"{sorted(DriftThresholds.model_fields)}.") from exc


def _as_pandas(df: Any) -> pd.DataFrame:
    if isinstance(df, pd.DataFrame):
        return df
    to_pandas = getattr(df, "to_pandas", None)
    if callable(to_pandas):
        return to_pandas()
    raise ConfigError(f"compare() needs pandas DataFrames or pyarrow Tables, got {type(df).__name__}.")


__all__ = [
    "MAX_CATEGORIES",
    "PSI_EPS",
    "DriftReport",
    "DriftThresholds",
    "FeatureDrift",
    "PlotBins",
    "Verdict",
    "bin_fractions",
    "compare",
    "ks_statistic",
    "numeric_psi",
    "psi",
    "quantile_edges",
]
