"""The scoring methods behind :func:`larder.selection.select_features`.

Two filters remove features; three rankers score the survivors (higher score = more useful):

=================  ======  =================================================================
method             kind    what it does (scikit-learn piece)
=================  ======  =================================================================
``variance``       filter  drop features whose variance is <= a threshold (VarianceThreshold)
``correlation``    filter  of two features with ``|r|`` above a threshold, drop the one less
                           related to the target (Pearson ``|r|`` with y, or ANOVA F for classes)
``mutual_info``    ranker  mutual information with the target (mutual_info_regression/classif)
``importance``     ranker  random-forest importance: ``permutation`` on a held-out quarter
                           (permutation_importance) or the forest's own ``tree`` importance
``rfe``            ranker  recursive feature elimination with a random forest (RFE ranking)
=================  ======  =================================================================
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

FILTERS = ("variance", "correlation")
RANKERS = ("mutual_info", "importance", "rfe")
METHODS = FILTERS + RANKERS

Task = Literal["regression", "classification"]


def variance_scores(X: pd.DataFrame) -> pd.Series:
    """Population variance of each column (what VarianceThreshold compares with its threshold)."""
    from sklearn.feature_selection import VarianceThreshold

    vt = VarianceThreshold(threshold=0.0).fit(X.to_numpy(dtype="float64"))
    return pd.Series(vt.variances_, index=X.columns, name="variance")


def relevance(X: pd.DataFrame, y: np.ndarray, task: Task) -> pd.Series:
    """A cheap univariate link to the target, used to break correlated pairs."""
    if task == "classification":
        from sklearn.feature_selection import f_classif

        with np.errstate(divide="ignore", invalid="ignore"):
            f, _ = f_classif(X.to_numpy(dtype="float64"), y)
        return pd.Series(np.nan_to_num(f, nan=0.0, posinf=np.finfo("float64").max), index=X.columns)
    yc = y.astype("float64") - y.astype("float64").mean()
    xc = X.to_numpy(dtype="float64") - X.to_numpy(dtype="float64").mean(axis=0)
    denom = np.sqrt((xc**2).sum(axis=0) * (yc**2).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.abs(xc.T @ yc) / denom
    return pd.Series(np.nan_to_num(r, nan=0.0), index=X.columns)


def correlation_prune(
    X: pd.DataFrame, y: np.ndarray, task: Task, threshold: float
) -> tuple[pd.Series, dict[str, str]]:
    """Greedy pruning: walk features from most to least target-relevant, keep one unless it
    correlates above ``threshold`` (absolute Pearson) with a feature already kept.

    Returns each feature's largest absolute correlation with another feature, and the dropped
    features with the reason.
    """
    values = X.to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.abs(np.corrcoef(values, rowvar=False)) if values.shape[1] > 1 else np.zeros((1, 1))
    corr = np.nan_to_num(np.atleast_2d(corr), nan=0.0)
    np.fill_diagonal(corr, 0.0)
    names = list(X.columns)
    rel = relevance(X, y, task)
    order = sorted(range(len(names)), key=lambda i: (-rel.iloc[i], i))
    kept: list[int] = []
    dropped: dict[str, str] = {}
    for i in order:
        partner = next((j for j in kept if corr[i, j] > threshold), None)
        if partner is None:
            kept.append(i)
        else:
            dropped[names[i]] = f"correlation: |r|={corr[i, partner]:.3f} with {names[partner]!r}"
    return pd.Series(corr.max(axis=1) if len(names) else [], index=X.columns, name="max_abs_corr"), dropped


def mutual_info_scores(X: pd.DataFrame, y: np.ndarray, task: Task, random_state: int) -> pd.Series:
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    fn = mutual_info_classif if task == "classification" else mutual_info_regression
    scores = fn(X.to_numpy(dtype="float64"), y, random_state=random_state)
    return pd.Series(scores, index=X.columns, name="mutual_info")


def _forest(task: Task, random_state: int, n_estimators: int = 100):
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
    return cls(n_estimators=n_estimators, random_state=random_state, n_jobs=1, min_samples_leaf=2)


def importance_scores(
    X: pd.DataFrame, y: np.ndarray, task: Task, kind: Literal["permutation", "tree"], random_state: int
) -> pd.Series:
    """Random-forest importance; ``permutation`` is measured on a held-out 25% of the rows."""
    values = X.to_numpy(dtype="float64")
    if kind == "tree":
        model = _forest(task, random_state).fit(values, y)
        return pd.Series(model.feature_importances_, index=X.columns, name="importance")
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import train_test_split

    stratify = y if task == "classification" and pd.Series(y).value_counts().min() >= 2 else None
    x_tr, x_te, y_tr, y_te = train_test_split(
        values, y, test_size=0.25, random_state=random_state, stratify=stratify
    )
    model = _forest(task, random_state).fit(x_tr, y_tr)
    result = permutation_importance(model, x_te, y_te, n_repeats=5, random_state=random_state, n_jobs=1)
    return pd.Series(result.importances_mean, index=X.columns, name="importance")


def rfe_scores(X: pd.DataFrame, y: np.ndarray, task: Task, random_state: int) -> pd.Series:
    """RFE with a 50-tree forest down to one feature; score = number of features ranked below."""
    from sklearn.feature_selection import RFE

    n = X.shape[1]
    rfe = RFE(_forest(task, random_state, n_estimators=50), n_features_to_select=1, step=max(1, n // 10))
    rfe.fit(X.to_numpy(dtype="float64"), y)
    return pd.Series((rfe.ranking_.max() - rfe.ranking_).astype("float64"), index=X.columns, name="rfe")
