"""``select_features``: filters first, then rank aggregation of the rankers, then the top ``k``.

How the methods combine (one fixed rule):

1. **Filters** run first, in the order given: ``variance`` drops near-constant features,
   ``correlation`` drops the less target-relevant feature of each highly correlated pair. A feature
   a filter drops is out, whatever the rankers would say.
2. **Rankers** (``mutual_info``, ``importance``, ``rfe``) each score every surviving feature. Each
   ranker's scores become ranks (1 = best, ties share the average rank) and a feature's ``rank`` is
   the mean of its ranks across rankers (Borda count), so no ranker's scale dominates.
3. The ``k`` best by mean rank are selected (ties broken by the input column order). ``k=None``
   keeps every survivor; a float ``k`` in (0, 1] keeps that share of the survivors (at least one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from larder.errors import TransformError
from larder.selection import methods as m
from larder.selection.report import SelectionReport
from larder.transforms._common import is_numeric_dtype

__all__ = ["select_features"]

#: ``task="auto"``: a numeric target with more distinct values than this is a regression target.
AUTO_CLASS_LIMIT = 20


def _detect_task(y: pd.Series, task: str) -> m.Task:
    if task in ("regression", "classification"):
        return task  # type: ignore[return-value]
    if task != "auto":
        raise TransformError(
            f"select_features: task must be 'auto', 'regression' or 'classification', got {task!r}."
        )
    if is_numeric_dtype(y.dtype) and not pd.api.types.is_bool_dtype(y.dtype):
        return "regression" if y.nunique() > AUTO_CLASS_LIMIT else "classification"
    return "classification"


def _prepare(X: Any, y: Any) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    if isinstance(X, pa.Table | pa.RecordBatch):
        X = X.to_pandas()
    if not isinstance(X, pd.DataFrame):
        raise TransformError(
            f"select_features: X must be a pandas DataFrame or pyarrow Table, got {type(X).__name__}."
        )
    if X.shape[1] == 0 or X.shape[0] < 4:
        raise TransformError(f"select_features: X has shape {X.shape}; need at least 1 column and 4 rows.")
    if X.columns.duplicated().any():
        raise TransformError(
            f"select_features: duplicate column names {list(X.columns[X.columns.duplicated()])}."
        )
    bad = [f"{c!r} ({X[c].dtype})" for c in X.columns if not is_numeric_dtype(X[c].dtype)]
    if bad:
        raise TransformError(
            f"select_features: column(s) {', '.join(bad)} are not numeric. Encode them first, e.g. with "
            "larder.transforms.preprocessor({'col': 'onehot'}), or drop them."
        )
    if isinstance(y, str):
        raise TransformError(
            "select_features: y must be the target values, not a column name; pass X.pop(name)."
        )
    y = pd.Series(np.asarray(y.to_numpy() if isinstance(y, pd.Series | pd.Index) else y))
    if len(y) != len(X):
        raise TransformError(f"select_features: X has {len(X)} rows but y has {len(y)} values.")
    if y.isna().any():
        raise TransformError(
            f"select_features: y has {int(y.isna().sum())} null value(s); drop those rows first."
        )
    notes = []
    Xn = X.astype("float64").set_axis([str(c) for c in X.columns], axis=1).reset_index(drop=True)
    missing = Xn.isna().sum()
    if missing.any():
        notes.append(f"imputed medians for scoring in {int((missing > 0).sum())} column(s) with nulls")
        Xn = Xn.fillna(Xn.median()).fillna(0.0)
    return Xn, y, notes


def _n_keep(k: int | float | None, n: int) -> int:
    if k is None:
        return n
    if isinstance(k, bool) or not isinstance(k, int | float):
        raise TransformError(f"select_features: k must be an int, a float in (0, 1] or None, got {k!r}.")
    if isinstance(k, float):
        if not 0 < k <= 1:
            raise TransformError(
                f"select_features: a float k is a share of the features, in (0, 1]; got {k}."
            )
        return max(1, math.ceil(k * n))
    if k < 1:
        raise TransformError(f"select_features: k must be >= 1, got {k}.")
    return min(k, n)


def select_features(
    X: Any,
    y: Any,
    methods: Sequence[str] = ("variance", "correlation", "mutual_info", "importance"),
    k: int | float | None = None,
    task: Literal["auto", "regression", "classification"] = "auto",
    *,
    variance_threshold: float = 0.0,
    correlation_threshold: float = 0.95,
    importance: Literal["permutation", "tree"] = "permutation",
    random_state: int = 0,
) -> SelectionReport:
    """Choose features with filters and rankers; see the module notes for how they combine.

    Parameters
    ----------
    X : pandas.DataFrame or pyarrow.Table
        Numeric (or boolean) features; nulls are median-imputed for scoring only.
    y : array-like
        The target, one value per row.
    methods : list of str
        From ``variance``, ``correlation`` (filters) and ``mutual_info``, ``importance``, ``rfe``
        (rankers).
    k : int, float or None
        How many features to select (int), which share of the filter survivors (float), or all
        survivors (None). Needs a ranker when it would cut.
    task : {"auto", "regression", "classification"}
        ``auto``: a numeric target with more than 20 distinct values is regression, anything else
        (strings, booleans, few integers) classification.
    variance_threshold, correlation_threshold : float
        Drop features with variance <= ``variance_threshold``; of pairs with absolute Pearson
        correlation > ``correlation_threshold``, drop the one less related to y.
    importance : {"permutation", "tree"}
        Random-forest permutation importance on a held-out quarter, or the forest's impurity
        importance.
    random_state : int
        Seed for mutual information, the forests and the split.

    Returns
    -------
    SelectionReport

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(rng.normal(size=(300, 4)), columns=["signal", "n1", "n2", "n3"])
    >>> y = 3 * X["signal"] + rng.normal(scale=0.1, size=300)
    >>> select_features(X, y, methods=["mutual_info"], k=1).selected
    ['signal']
    """
    method_list = [methods] if isinstance(methods, str) else list(methods)
    unknown = [x for x in method_list if x not in m.METHODS]
    if unknown or not method_list:
        raise TransformError(
            f"select_features: unknown method(s) {unknown or '(none)'}; choose from {list(m.METHODS)}."
        )
    if len(set(method_list)) != len(method_list):
        raise TransformError(f"select_features: a method is listed twice in {method_list}.")
    if importance not in ("permutation", "tree"):
        raise TransformError(
            f"select_features: importance must be 'permutation' or 'tree', got {importance!r}."
        )
    Xn, y_series, notes = _prepare(X, y)
    kind = _detect_task(y_series, task)
    y_arr = y_series.to_numpy()
    if kind == "regression":
        if not is_numeric_dtype(y_series.dtype):
            raise TransformError("select_features: task='regression' needs a numeric target.")
        y_arr = y_arr.astype("float64")
    elif y_series.nunique() < 2:
        raise TransformError("select_features: the target has a single class; nothing to select against.")

    features = list(Xn.columns)
    scores = pd.DataFrame(index=pd.Index(features, name="feature"))
    dropped: dict[str, str] = {}
    alive = list(features)
    for method in (x for x in method_list if x in m.FILTERS):
        if method == "variance":
            var = m.variance_scores(Xn[features])
            scores["variance"] = var
            for f in alive:
                if var[f] <= variance_threshold:
                    dropped[f] = f"variance: {var[f]:.4g} <= {variance_threshold}"
        else:
            current = [f for f in alive if f not in dropped]
            if current:
                corr, pruned = m.correlation_prune(Xn[current], y_arr, kind, correlation_threshold)
                scores["max_abs_corr"] = corr
                dropped.update(pruned)
        alive = [f for f in alive if f not in dropped]

    rankers = [x for x in method_list if x in m.RANKERS]
    n_keep = _n_keep(k, len(alive))
    if n_keep < len(alive) and not rankers:
        raise TransformError(
            f"select_features: k={k} needs a ranking method to choose among {len(alive)} features; add "
            "'mutual_info', 'importance' or 'rfe' to methods."
        )
    ranks = pd.DataFrame(index=alive)
    if alive:
        sub = Xn[alive]
        for method in rankers:
            if method == "mutual_info":
                s = m.mutual_info_scores(sub, y_arr, kind, random_state)
            elif method == "importance":
                s = m.importance_scores(sub, y_arr, kind, importance, random_state)
            else:
                s = m.rfe_scores(sub, y_arr, kind, random_state)
            scores[s.name] = s
            ranks[method] = s.rank(ascending=False, method="average")
    if rankers and alive:
        mean_rank = ranks.mean(axis=1)
    else:
        mean_rank = pd.Series(np.arange(1, len(alive) + 1, dtype="float64"), index=alive)
    position = {f: i for i, f in enumerate(features)}
    order = sorted(alive, key=lambda f: (mean_rank[f], position[f]))
    selected = order[:n_keep]
    for f in order[n_keep:]:
        dropped[f] = f"rank: mean rank {mean_rank[f]:.2f} outside the top k={n_keep}"

    scores["rank"] = mean_rank if rankers else np.nan
    scores["selected"] = scores.index.isin(selected)
    scores["dropped_by"] = [dropped.get(f, "") for f in scores.index]
    scores = scores.loc[selected + [f for f in features if f not in set(selected)]]
    return SelectionReport(
        selected=selected,
        scores=scores,
        task=kind,
        methods=method_list,
        k=k,
        dropped={f: dropped[f] for f in features if f in dropped},
        notes=notes,
    )
