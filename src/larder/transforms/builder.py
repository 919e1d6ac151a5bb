"""``preprocessor(spec)``: a ColumnTransformer built from a declarative spec.

Each column's steps become one scikit-learn ``Pipeline`` (or a single estimator when one step is
enough); the reserved keys ``ratio``/``diff``/``product``/``interactions`` add transformers over
several columns. The result is a :class:`Preprocessor`, a ``ColumnTransformer`` subclass that only
adds input checks with clear :class:`~larder.errors.TransformError` messages, so it clones, pickles and
logs with ``mlflow.sklearn`` like any ColumnTransformer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold
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
from larder.transforms._common import is_numeric_dtype, require_columns
from larder.transforms.estimators import (
    CyclicalEncoder,
    FeatureRenamer,
    InteractionFeatures,
    RareCategoryGrouper,
)
from larder.transforms.spec import PreprocessorSpec

__all__ = ["SKOPS_TRUSTED_TYPES", "Preprocessor", "preprocessor"]

_SKLEARN_VERSION = tuple(int(p) for p in sklearn.__version__.split(".")[:2] if p.isdigit())

#: Estimators whose input must be numeric (checked on the raw column when nothing before them
#: changes the column's type).
_NUMERIC_INPUT: tuple[type, ...] = (
    StandardScaler,
    MinMaxScaler,
    RobustScaler,
    KBinsDiscretizer,
    PolynomialFeatures,
)


def category_name(feature: str, category: Any) -> str:
    """OneHotEncoder ``feature_name_combiner``: ``"Neighborhood=NAmes"``, ``"x=missing"`` for nulls."""
    if category is None or (isinstance(category, float) and np.isnan(category)):
        return f"{feature}=missing"
    if isinstance(category, float | np.floating) and float(category).is_integer():
        category = int(category)
    return f"{feature}={category}"


def _target_cv(step: Any) -> dict[str, Any]:
    if _SKLEARN_VERSION >= (1, 9):
        splitter = StratifiedKFold if step.target_type in ("binary", "multiclass") else KFold
        return {"cv": splitter(n_splits=step.cv, shuffle=True, random_state=step.random_state)}
    return {"cv": step.cv, "shuffle": True, "random_state": step.random_state}  # pragma: no cover


def _step_estimators(step: Any) -> list[tuple[str, Any]]:
    """The (name, estimator) pairs that implement one spec step, renaming steps included."""
    kind = step.kind
    scaled = ("names", FeatureRenamer(template="{}_scaled"))
    if kind == "standard":
        return [(kind, StandardScaler(with_mean=step.with_mean, with_std=step.with_std)), scaled]
    if kind == "minmax":
        return [(kind, MinMaxScaler(feature_range=tuple(step.feature_range), clip=step.clip)), scaled]
    if kind == "robust":
        est = RobustScaler(
            with_centering=step.with_centering,
            with_scaling=step.with_scaling,
            quantile_range=tuple(step.quantile_range),
        )
        return [(kind, est), scaled]
    if kind == "onehot":
        limited = step.min_frequency is not None or step.max_categories is not None
        est = OneHotEncoder(
            handle_unknown="infrequent_if_exist" if limited else "ignore",
            min_frequency=step.min_frequency,
            max_categories=step.max_categories,
            drop=step.drop,
            sparse_output=False,
            feature_name_combiner=category_name,
        )
        return [(kind, est)]
    if kind == "ordinal":
        est = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=step.unknown_value,
            encoded_missing_value=step.unknown_value,
        )
        return [(kind, est), ("names", FeatureRenamer(template="{}_ordinal"))]
    if kind == "target":
        est = TargetEncoder(target_type=step.target_type, smooth=step.smooth, **_target_cv(step))
        return [(kind, est), ("names", FeatureRenamer(template="{}_target"))]
    if kind == "bins":
        est = KBinsDiscretizer(n_bins=step.n_bins, encode="ordinal", strategy=step.strategy, random_state=0)
        out: list[tuple[str, Any]] = [(kind, est), ("names", FeatureRenamer(template="{}_bin"))]
        if step.encode == "onehot":
            out.append(
                (
                    "onehot",
                    OneHotEncoder(
                        handle_unknown="ignore", sparse_output=False, feature_name_combiner=category_name
                    ),
                )
            )
        return out
    if kind == "rare":
        return [(kind, RareCategoryGrouper(min_frequency=step.min_frequency, other_label=step.other_label))]
    if kind == "cyclical":
        return [(kind, CyclicalEncoder(period=step.period, parts=tuple(step.parts)))]
    if kind == "impute":
        fill = step.fill_value
        return [(kind, SimpleImputer(strategy=step.strategy, fill_value=fill, keep_empty_features=True))]
    if kind == "passthrough":
        return [(kind, "passthrough")]
    raise TransformError(f"unknown step kind {kind!r}")  # pragma: no cover - the schema forbids it


def _column_transformer(steps: list[Any]) -> Any:
    """One column's steps as a single estimator, ``"passthrough"``, or a Pipeline."""
    pairs: list[tuple[str, Any]] = []
    seen: dict[str, int] = {}
    for step in steps:
        for name, est in _step_estimators(step):
            if isinstance(est, str):  # "passthrough" inside a chain changes nothing
                continue
            seen[name] = seen.get(name, 0) + 1
            pairs.append((name if seen[name] == 1 else f"{name}{seen[name]}", est))
    if not pairs:
        return "passthrough"
    return pairs[0][1] if len(pairs) == 1 else Pipeline(pairs)


def _unique_name(wanted: str, taken: set[str]) -> str:
    base = wanted.replace("__", "_") or "column"
    if base in {"transformers", "remainder", "sparse_threshold", "n_jobs", "transformer_weights", "verbose"}:
        base = f"{base}_col"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def _steps_of(transformer: Any) -> list[Any]:
    if isinstance(transformer, Pipeline):
        return [est for _, est in transformer.steps]
    return [transformer]


def _numeric_requirement(transformer: Any) -> str | None:
    """The class name of the first step that needs numbers, if the raw column reaches it unchanged."""
    for est in _steps_of(transformer):
        if isinstance(est, _NUMERIC_INPUT):
            return type(est).__name__
        if isinstance(est, SimpleImputer):
            if est.strategy in ("mean", "median"):
                return f"SimpleImputer(strategy={est.strategy!r})"
            continue
        if isinstance(est, FeatureRenamer) or est is None or (isinstance(est, str) and est == "passthrough"):
            continue
        return None
    return None


class Preprocessor(ColumnTransformer):
    """A ``ColumnTransformer`` built by :func:`preprocessor`, with larder's input checks.

    It takes exactly ColumnTransformer's parameters. Before fitting it checks that the input is a
    DataFrame (pandas, or a pyarrow Table which is converted), that every configured column exists,
    that scaled/binned columns are numeric, and that ``y`` is given when a target encoder needs it;
    each problem raises :class:`~larder.errors.TransformError` naming the column. Errors raised by
    scikit-learn during fitting are re-raised as ``TransformError`` too.
    """

    def _larder_input(self, X: Any) -> pd.DataFrame:
        if isinstance(X, pa.Table | pa.RecordBatch):
            X = X.to_pandas()
        if not isinstance(X, pd.DataFrame):
            raise TransformError(
                f"preprocessor: expected a pandas DataFrame (columns are selected by name), got "
                f"{type(X).__name__}."
            )
        wanted = [c for _, _, cols in self.transformers for c in _as_columns(cols)]
        require_columns([str(c) for c in X.columns], wanted, where="preprocessor")
        return X

    def _larder_check_fit(self, X: pd.DataFrame, y: Any) -> None:
        for name, transformer, cols in self.transformers:
            encoders = [est for est in _steps_of(transformer) if isinstance(est, TargetEncoder)]
            if encoders and y is None:
                raise TransformError(
                    f"preprocessor: column(s) {_as_columns(cols)} use target encoding, which learns from the "
                    "target: pass y to fit()/fit_transform()."
                )
            if any(enc.target_type == "auto" for enc in encoders):
                _check_auto_target(y, _as_columns(cols))
            needs = _numeric_requirement(transformer)
            if needs is None:
                continue
            bad = [f"{c!r} ({X[c].dtype})" for c in _as_columns(cols) if not is_numeric_dtype(X[c].dtype)]
            if bad:
                raise TransformError(
                    f"preprocessor: column(s) {', '.join(bad)} are not numeric but step {name!r} uses {needs}. "
                    "Use an encoder (onehot, ordinal, target) for categorical columns, or convert the "
                    "column to numbers."
                )

    def fit(self, X: Any, y: Any = None, **params: Any) -> Preprocessor:
        """Fit all transformers (see :meth:`fit_transform`); returns ``self``."""
        self.fit_transform(X, y, **params)
        return self

    def fit_transform(self, X: Any, y: Any = None, **params: Any) -> Any:
        """Check the input, then fit and transform like ``ColumnTransformer.fit_transform``.

        Target encoders inside are cross-fitted here: each training row is encoded by a model
        that did not see its own target.
        """
        X = self._larder_input(X)
        self._larder_check_fit(X, y)
        try:
            return super().fit_transform(X, y, **params)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, TransformError):  # pragma: no cover - TransformError is no ValueError
                raise
            raise TransformError(f"preprocessor: fitting failed: {exc}") from exc

    def transform(self, X: Any, **params: Any) -> Any:
        """Transform ``X`` with the fitted transformers (unseen categories never raise)."""
        X = self._larder_input(X)
        return super().transform(X, **params)


#: More classes than this under ``target_type="auto"`` is almost surely a numeric target stored as ints.
MAX_AUTO_CLASSES = 30


def _check_auto_target(y: Any, columns: list[str]) -> None:
    from sklearn.utils.multiclass import type_of_target

    if type_of_target(y) != "multiclass":
        return
    n = len(np.unique(np.asarray(y)))
    if n > MAX_AUTO_CLASSES:
        raise TransformError(
            f"preprocessor: target encoding of column(s) {columns} would treat y as {n} classes (scikit-learn's "
            "'auto' reads integer targets as classes) and output one column per class. For a numeric target "
            "such as a price set target_type: continuous (or pass y as floats); for real classes set "
            "target_type: multiclass."
        )


#: Every larder type a fitted preprocessor can contain. MLflow's sklearn flavour saves with skops by
#: default, and skops only loads types it is told to trust:
#: ``mlflow.sklearn.log_model(pipe, name="model", skops_trusted_types=SKOPS_TRUSTED_TYPES)``.
SKOPS_TRUSTED_TYPES: list[str] = [
    *(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in (Preprocessor, CyclicalEncoder, FeatureRenamer, InteractionFeatures, RareCategoryGrouper)
    ),
    f"{category_name.__module__}.{category_name.__qualname__}",
]


def _as_columns(cols: Any) -> list[str]:
    if isinstance(cols, str):
        return [cols]
    if callable(cols):  # pragma: no cover - the builder always gives names
        return []
    return [str(c) for c in cols]


def preprocessor(
    spec: PreprocessorSpec | dict[str, Any] | str | Path,
    *,
    output: Literal["pandas", "default"] = "pandas",
) -> Preprocessor:
    """Build a fitted-ready ColumnTransformer from a declarative spec.

    Parameters
    ----------
    spec : dict, YAML string, path to a YAML file, or PreprocessorSpec
        Column -> step(s), plus the reserved keys ``ratio``, ``diff``, ``product``,
        ``interactions``, ``remainder`` and ``columns``. See :mod:`larder.transforms.spec`.
    output : {"pandas", "default"}, default "pandas"
        ``"pandas"`` calls ``set_output(transform="pandas")`` so ``transform`` returns a DataFrame
        with the readable column names; ``"default"`` returns numpy arrays.

    Returns
    -------
    Preprocessor
        An unfitted ``ColumnTransformer`` subclass with ``verbose_feature_names_out=False``.

    Raises
    ------
    TransformError
        If the spec is invalid (unknown step, unknown parameter, bad value).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"hood": ["a", "a", "b"], "area": [50.0, 70.0, 90.0], "rooms": [2, 3, 3]})
    >>> pre = preprocessor({"hood": "onehot", "area": "standard", "ratio": [["area", "rooms"]]})
    >>> list(pre.fit_transform(df).columns)
    ['hood=a', 'hood=b', 'area_scaled', 'area/rooms']
    """
    parsed = PreprocessorSpec.parse(spec)
    taken: set[str] = set()
    transformers: list[tuple[str, Any, list[str]]] = []
    for column, steps in parsed.columns.items():
        transformers.append((_unique_name(column, taken), _column_transformer(steps), [column]))
    for op in ("ratio", "diff", "product"):
        pairs = getattr(parsed, op)
        if pairs:
            cols = list(dict.fromkeys(c for pair in pairs for c in pair))
            est = InteractionFeatures(pairs=[tuple(p) for p in pairs], ops=(op,))
            transformers.append((_unique_name(op, taken), est, cols))
    if parsed.interactions is not None:
        poly = Pipeline(
            [
                (
                    "poly",
                    PolynomialFeatures(
                        degree=parsed.interactions.degree, interaction_only=True, include_bias=False
                    ),
                ),
                ("names", FeatureRenamer(replace={" ": "*"})),
            ]
        )
        transformers.append((_unique_name("interactions", taken), poly, list(parsed.interactions.columns)))
    pre = Preprocessor(
        transformers,
        remainder=parsed.remainder,
        verbose_feature_names_out=False,
        sparse_threshold=0.0,
    )
    if output == "pandas":
        pre.set_output(transform="pandas")
    elif output != "default":
        raise TransformError(f"preprocessor: output must be 'pandas' or 'default', got {output!r}.")
    return pre
