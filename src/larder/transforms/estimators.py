"""scikit-learn estimators that scikit-learn itself lacks.

Every class here follows scikit-learn's estimator contract: keyword ``__init__`` parameters stored as
given, ``fit`` returns ``self``, learned state ends in ``_``, an unfitted ``transform`` raises
:class:`sklearn.exceptions.NotFittedError`, ``get_feature_names_out`` gives readable names, and
``set_output(transform="pandas")`` works. They drop into ``Pipeline`` and ``ColumnTransformer``.

* :class:`InteractionFeatures`: ratio / difference / product of named column pairs (``"a/b"``).
* :class:`RareCategoryGrouper`: categories rarer than a threshold become one ``"__rare__"`` label.
* :class:`CyclicalEncoder`: sin/cos encoding of cyclical numbers (month 1-12, hour 0-23) and of
  datetime parts (month, day of week, hour, ...).
* :class:`FeatureRenamer`: a pass-through step that only renames output features (``"{}_scaled"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from larder.errors import TransformError
from larder.transforms._common import (
    check_ops,
    compute_interaction,
    interaction_name,
    is_datetime_dtype,
    is_numeric_dtype,
    to_float_array,
)

__all__ = ["CyclicalEncoder", "FeatureRenamer", "InteractionFeatures", "RareCategoryGrouper"]


def _input_names(est: BaseEstimator, input_features: Sequence[str] | None) -> np.ndarray:
    """The names of the features ``est`` was fitted on (or ``x0, x1, ...``), like scikit-learn."""
    check_is_fitted(est, "n_features_in_")
    fitted = getattr(est, "feature_names_in_", None)
    if input_features is not None:
        names = np.asarray(input_features, dtype=object)
        if fitted is not None and not np.array_equal(names, fitted):
            raise ValueError("input_features is not equal to feature_names_in_")
        if len(names) != est.n_features_in_:
            raise ValueError(
                f"input_features should have length equal to number of features ({est.n_features_in_}), "
                f"got {len(names)}"
            )
        return names
    if fitted is not None:
        return np.asarray(fitted, dtype=object)
    return np.asarray([f"x{i}" for i in range(est.n_features_in_)], dtype=object)


def _column(X: Any, i: int) -> Any:
    return X.iloc[:, i] if isinstance(X, pd.DataFrame) else np.asarray(X)[:, i]


class InteractionFeatures(TransformerMixin, BaseEstimator):
    """Ratio, difference and product interactions between pairs of columns.

    Parameters
    ----------
    pairs : sequence of (left, right), optional
        Column pairs, each side a column name (DataFrame input) or a column position. ``None``
        (default) uses every pair ``(i, j)`` with ``i < j`` of the input columns.
    ops : sequence of {"ratio", "diff", "product"}, default ("ratio",)
        Which interactions to compute for each pair.

    Output names are ``"left/right"``, ``"left-right"`` and ``"left*right"``. Division by zero (and
    any null operand) gives NaN, never an error or an infinity.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"area": [100.0, 80.0], "rooms": [4, 0]})
    >>> t = InteractionFeatures(pairs=[("area", "rooms")], ops=("ratio", "diff")).fit(df)
    >>> list(t.get_feature_names_out())
    ['area/rooms', 'area-rooms']
    >>> t.transform(df).tolist()
    [[25.0, 96.0], [nan, 80.0]]
    """

    def __init__(
        self, pairs: Sequence[tuple[str | int, str | int]] | None = None, ops: Sequence[str] = ("ratio",)
    ):
        self.pairs = pairs
        self.ops = ops

    def __sklearn_tags__(self):  # noqa: D401 - scikit-learn hook
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _resolve_pairs(self, names: Sequence[str] | None, n_features: int) -> list[tuple[int, int]]:
        if self.pairs is None:
            return [(i, j) for i in range(n_features) for j in range(i + 1, n_features)]
        position = {n: i for i, n in enumerate(names)} if names is not None else {}
        resolved: list[tuple[int, int]] = []
        missing: list[str] = []
        for pair in self.pairs:
            if isinstance(pair, str) or len(pair) != 2:
                raise TransformError(
                    f"InteractionFeatures: each pair must be two columns like ('area', 'rooms'), got {pair!r}."
                )
            idx = []
            for side in pair:
                if isinstance(side, Integral) and not isinstance(side, bool):
                    if not 0 <= int(side) < n_features:
                        raise TransformError(
                            f"InteractionFeatures: column position {side} is out of range for "
                            f"{n_features} input columns."
                        )
                    idx.append(int(side))
                elif str(side) in position:
                    idx.append(position[str(side)])
                else:
                    missing.append(str(side))
                    idx.append(-1)
            resolved.append((idx[0], idx[1]))
        if missing:
            hint = (
                "" if names is not None else " Column names need DataFrame input; use positions for arrays."
            )
            raise TransformError(
                f"InteractionFeatures: column(s) {sorted(set(missing))} not found in the input.{hint}"
            )
        return resolved

    def fit(self, X: Any, y: Any = None) -> InteractionFeatures:
        """Resolve the pairs against ``X``'s columns and check they are numeric."""
        check_ops(self.ops, where="InteractionFeatures")
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=True, skip_check_array=True)
            names = [str(c) for c in X.columns]
            pairs = self._resolve_pairs(names, X.shape[1])
            used = sorted({i for p in pairs for i in p})
            bad = [
                f"{names[i]!r} ({X.dtypes.iloc[i]})" for i in used if not is_numeric_dtype(X.dtypes.iloc[i])
            ]
            if bad:
                raise TransformError(
                    f"InteractionFeatures: column(s) {', '.join(bad)} are not numeric; ratio/diff/product "
                    "need numbers. Encode or drop them."
                )
        else:
            X = validate_data(self, X, reset=True, dtype="numeric", ensure_all_finite="allow-nan")
            pairs = self._resolve_pairs(None, X.shape[1])
        self.pairs_ = pairs
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Compute the interactions; returns a float array of shape (n_samples, len(pairs) * len(ops))."""
        check_is_fitted(self, "pairs_")
        ops = check_ops(self.ops, where="InteractionFeatures")
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=False, skip_check_array=True)
            cols = {i: to_float_array(X.iloc[:, i]) for p in self.pairs_ for i in p}
        else:
            arr = validate_data(self, X, reset=False, dtype="float64", ensure_all_finite="allow-nan")
            cols = {i: arr[:, i] for p in self.pairs_ for i in p}
        out = [compute_interaction(cols[a], cols[b], op) for a, b in self.pairs_ for op in ops]
        if not out:
            return np.empty((_n_rows(X), 0))
        return np.column_stack(out)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        names = _input_names(self, input_features)
        check_is_fitted(self, "pairs_")
        ops = check_ops(self.ops, where="InteractionFeatures")
        return np.asarray(
            [interaction_name(str(names[a]), str(names[b]), op) for a, b in self.pairs_ for op in ops],
            dtype=object,
        )


def _n_rows(X: Any) -> int:
    return int(X.shape[0])


class RareCategoryGrouper(TransformerMixin, BaseEstimator):
    """Group categories rarer than ``min_frequency`` into one label.

    Parameters
    ----------
    min_frequency : float or int, default 0.01
        A float in (0, 1) is a share of the non-null training rows; an int >= 1 is a row count. A
        category seen in fewer training rows than that is rare.
    other_label : str, default "__rare__"
        The label that replaces rare categories.

    Notes
    -----
    Values are returned as strings (so numeric codes like ``20, 60`` become ``"20", "60"``) and nulls
    stay null. A category never seen during ``fit`` is rare by definition and becomes
    ``other_label`` at transform time, so unseen categories never crash a downstream encoder.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"city": ["a"] * 8 + ["b", "c"]})
    >>> g = RareCategoryGrouper(min_frequency=0.15).fit(df)
    >>> g.transform(pd.DataFrame({"city": ["a", "b", "z"]})).ravel().tolist()
    ['a', '__rare__', '__rare__']
    """

    def __init__(self, min_frequency: float | int = 0.01, other_label: str = "__rare__"):
        self.min_frequency = min_frequency
        self.other_label = other_label

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    def _threshold(self, n_rows: int) -> float:
        m = self.min_frequency
        if isinstance(m, bool) or not isinstance(m, Real):
            raise TransformError(f"RareCategoryGrouper: min_frequency must be a number, got {m!r}.")
        if isinstance(m, Integral) or (float(m) >= 1 and float(m).is_integer()):
            if m < 1:
                raise TransformError("RareCategoryGrouper: an integer min_frequency must be >= 1.")
            return float(m)
        if not 0 < float(m) < 1:
            raise TransformError(
                f"RareCategoryGrouper: min_frequency={m!r} must be a share in (0, 1) or a row count >= 1."
            )
        return float(m) * n_rows

    @staticmethod
    def _as_strings(col: Any) -> np.ndarray:
        s = pd.Series(np.asarray(col, dtype=object) if not isinstance(col, pd.Series) else col, copy=False)
        mask = s.isna().to_numpy()
        out = np.empty(len(s), dtype=object)
        out[mask] = np.nan
        out[~mask] = [str(v) for v in s.to_numpy(dtype=object)[~mask]]
        return out

    def fit(self, X: Any, y: Any = None) -> RareCategoryGrouper:
        """Learn the frequent categories of every column."""
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=True, skip_check_array=True)
        else:
            X = validate_data(self, X, reset=True, dtype=None, ensure_all_finite="allow-nan")
        frequent = []
        for i in range(self.n_features_in_):
            values = self._as_strings(_column(X, i))
            present = values[~pd.isna(values)]
            threshold = self._threshold(len(present))
            cats, counts = np.unique(present.astype(str), return_counts=True)
            frequent.append(np.asarray(cats[counts >= threshold], dtype=object))
        self.frequent_categories_ = frequent
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Replace rare (and unseen) categories by ``other_label``; returns an object array."""
        check_is_fitted(self, "frequent_categories_")
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=False, skip_check_array=True)
        else:
            X = validate_data(self, X, reset=False, dtype=None, ensure_all_finite="allow-nan")
        out = np.empty((_n_rows(X), self.n_features_in_), dtype=object)
        for i, keep in enumerate(self.frequent_categories_):
            values = self._as_strings(_column(X, i))
            null = pd.isna(values)
            rare = ~null & ~np.isin(values.astype(str), np.asarray(keep, dtype=str))
            values[rare] = self.other_label
            out[:, i] = values
        return out

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        return _input_names(self, input_features)


#: Datetime parts the CyclicalEncoder knows, with how to turn a part into a phase in [0, 1).
_DATETIME_PARTS = ("month", "day", "dayofweek", "dayofyear", "hour", "minute", "second")


def _datetime_phase(values: pd.Series, part: str) -> np.ndarray:
    dt = values.dt
    if part == "month":
        phase = (dt.month - 1) / 12.0
    elif part == "day":
        phase = (dt.day - 1) / dt.days_in_month
    elif part == "dayofweek":
        phase = dt.dayofweek / 7.0
    elif part == "dayofyear":
        days = np.where(dt.is_leap_year, 366.0, 365.0)
        phase = (dt.dayofyear - 1) / days
    elif part == "hour":
        phase = (dt.hour + dt.minute / 60.0) / 24.0
    elif part == "minute":
        phase = (dt.minute + dt.second / 60.0) / 60.0
    else:
        phase = dt.second / 60.0
    return to_float_array(pd.Series(phase))


class CyclicalEncoder(TransformerMixin, BaseEstimator):
    """Encode cyclical values as ``sin`` and ``cos`` of their phase on the cycle.

    Parameters
    ----------
    period : float, optional
        The cycle length of numeric columns: 12 for months 1-12 (or 0-11), 24 for hours 0-23, 7 for
        days of week. Needed when a numeric column is given.
    parts : sequence of str, default ("month", "dayofweek")
        For datetime columns: which parts to encode, from ``month``, ``day`` (of month),
        ``dayofweek``, ``dayofyear``, ``hour``, ``minute``, ``second``.

    Output names are ``"{col}_sin"``, ``"{col}_cos"`` for numeric columns and
    ``"{col}_{part}_sin"``, ``"{col}_{part}_cos"`` for datetime columns. Nulls give NaN.
    A numeric value ``x`` maps to ``sin(2*pi*x/period)``, so ``x`` and ``x + period`` coincide:
    month 12 sits next to month 1.

    Examples
    --------
    >>> import pandas as pd
    >>> enc = CyclicalEncoder(period=24).fit(pd.DataFrame({"hour": [0, 6, 12]}))
    >>> list(enc.get_feature_names_out())
    ['hour_sin', 'hour_cos']
    >>> enc.transform(pd.DataFrame({"hour": [6]})).round(6).tolist()
    [[1.0, 0.0]]
    """

    def __init__(self, period: float | None = None, parts: Sequence[str] = ("month", "dayofweek")):
        self.period = period
        self.parts = parts

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _check_parts(self) -> tuple[str, ...]:
        parts = (self.parts,) if isinstance(self.parts, str) else tuple(self.parts)
        bad = [p for p in parts if p not in _DATETIME_PARTS]
        if bad or not parts:
            raise TransformError(
                f"CyclicalEncoder: unknown datetime part(s) {bad or '(none given)'}; "
                f"choose from {list(_DATETIME_PARTS)}."
            )
        return parts

    def _check_period(self, names: Sequence[str]) -> float:
        p = self.period
        if p is None:
            raise TransformError(
                f"CyclicalEncoder: numeric column(s) {list(names)} need a period, e.g. period=12 for months, "
                "24 for hours, 7 for days of week."
            )
        if isinstance(p, bool) or not isinstance(p, Real) or not np.isfinite(p) or p <= 0:
            raise TransformError(f"CyclicalEncoder: period must be a positive number, got {p!r}.")
        return float(p)

    def fit(self, X: Any, y: Any = None) -> CyclicalEncoder:
        """Record which columns are datetimes and which are numbers; check the period/parts."""
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=True, skip_check_array=True)
            kinds = []
            for name, dtype in zip(X.columns, X.dtypes, strict=True):
                if is_datetime_dtype(dtype):
                    kinds.append("datetime")
                elif is_numeric_dtype(dtype):
                    kinds.append("numeric")
                else:
                    raise TransformError(
                        f"CyclicalEncoder: column {str(name)!r} ({dtype}) is neither numeric nor a datetime. "
                        "Give month/hour numbers or timestamps."
                    )
        else:
            X = validate_data(self, X, reset=True, dtype="numeric", ensure_all_finite="allow-nan")
            kinds = ["numeric"] * X.shape[1]
        numeric = [i for i, k in enumerate(kinds) if k == "numeric"]
        if numeric:
            names = getattr(self, "feature_names_in_", None)
            self._check_period([str(names[i]) if names is not None else f"x{i}" for i in numeric])
        if "datetime" in kinds:
            self._check_parts()
        self.kinds_ = kinds
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Return the sin/cos columns as a float array."""
        check_is_fitted(self, "kinds_")
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=False, skip_check_array=True)
        else:
            X = validate_data(self, X, reset=False, dtype="float64", ensure_all_finite="allow-nan")
        out: list[np.ndarray] = []
        for i, kind in enumerate(self.kinds_):
            col = _column(X, i)
            if kind == "datetime":
                series = pd.to_datetime(pd.Series(col), errors="raise")
                phases = [_datetime_phase(series, part) for part in self._check_parts()]
            else:
                phases = [to_float_array(col) / self._check_period([])]
            for phase in phases:
                out.append(np.sin(2 * np.pi * phase))
                out.append(np.cos(2 * np.pi * phase))
        return np.column_stack(out) if out else np.empty((_n_rows(X), 0))

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        names = _input_names(self, input_features)
        check_is_fitted(self, "kinds_")
        out: list[str] = []
        for name, kind in zip(names, self.kinds_, strict=True):
            stems = [f"{name}_{p}" for p in self._check_parts()] if kind == "datetime" else [str(name)]
            for stem in stems:
                out.extend([f"{stem}_sin", f"{stem}_cos"])
        return np.asarray(out, dtype=object)


class FeatureRenamer(TransformerMixin, BaseEstimator):
    """Pass values through unchanged and rename the features.

    Parameters
    ----------
    template : str, default "{}"
        Format string applied to each input name, e.g. ``"{}_scaled"``.
    replace : dict of str to str, optional
        Substring replacements applied to each input name before the template, e.g. ``{" ": "*"}``
        turns scikit-learn's polynomial name ``"a b"`` into ``"a*b"``.

    Examples
    --------
    >>> import pandas as pd
    >>> r = FeatureRenamer(template="{}_scaled").fit(pd.DataFrame({"area": [1.0]}))
    >>> list(r.get_feature_names_out())
    ['area_scaled']
    """

    def __init__(self, template: str = "{}", replace: dict[str, str] | None = None):
        self.template = template
        self.replace = replace

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def fit(self, X: Any, y: Any = None) -> FeatureRenamer:
        """Record the number (and names) of the input features."""
        if "{}" not in self.template:
            raise TransformError(f"FeatureRenamer: template {self.template!r} must contain '{{}}'.")
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=True, skip_check_array=True)
        else:
            validate_data(self, X, reset=True, dtype=None, ensure_all_finite="allow-nan")
        return self

    def transform(self, X: Any) -> Any:
        """Return ``X`` unchanged (a DataFrame gets the new column names)."""
        check_is_fitted(self, "n_features_in_")
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=False, skip_check_array=True)
            return X.set_axis(list(self.get_feature_names_out()), axis=1)
        return validate_data(self, X, reset=False, dtype=None, ensure_all_finite="allow-nan")

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        names = _input_names(self, input_features)
        out = []
        for name in names:
            name = str(name)
            for old, new in (self.replace or {}).items():
                name = name.replace(old, new)
            out.append(self.template.format(name))
        return np.asarray(out, dtype=object)
