"""Feature-engineering transforms.

Model-side, fitted transforms are scikit-learn estimators (they drop into ``Pipeline`` and log with
``mlflow.sklearn``):

* :func:`preprocessor` builds a ``ColumnTransformer`` from a declarative spec (dict or YAML);
* :class:`InteractionFeatures`, :class:`RareCategoryGrouper`, :class:`CyclicalEncoder`,
  :class:`FeatureRenamer` fill the gaps scikit-learn leaves.

Engine-side, stateless helpers compute columns of feature tables with DuckDB or vectorised numpy:

* :func:`lags` and :func:`rolling` (module :mod:`larder.transforms.temporal`): point-in-time-safe
  features over entity time series;
* :func:`bins` and :func:`interactions`.
"""

from larder.transforms.builder import SKOPS_TRUSTED_TYPES, Preprocessor, preprocessor
from larder.transforms.estimators import (
    CyclicalEncoder,
    FeatureRenamer,
    InteractionFeatures,
    RareCategoryGrouper,
)
from larder.transforms.spec import PreprocessorSpec
from larder.transforms.stateless import bins, interactions
from larder.transforms.temporal import lags, rolling

__all__ = [
    "SKOPS_TRUSTED_TYPES",
    "CyclicalEncoder",
    "FeatureRenamer",
    "InteractionFeatures",
    "Preprocessor",
    "PreprocessorSpec",
    "RareCategoryGrouper",
    "bins",
    "interactions",
    "lags",
    "preprocessor",
    "rolling",
]
