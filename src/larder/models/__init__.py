"""Models that fetch their own features: ``log_model``, the feature-aware pyfunc, ``score_batch``,
skew checks and lineage. See ``docs/models.md``.

The client methods (``FeatureEngineeringClient.log_model``, ``score_batch``, ``check_skew``,
``model_lineage``) are the usual entry points; this package exposes the pieces for serving hosts and
tools. Names are imported lazily (most pull in MLflow).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "MISSING_KEYS_ENV": "larder.models.bundle",
    "STORES_ENV": "larder.models.bundle",
    "STORE_ENV": "larder.models.bundle",
    "ModelBundle": "larder.models.bundle",
    "load_bundle": "larder.models.bundle",
    "FeatureAwareModel": "larder.models.pyfunc",
    "OnlineModel": "larder.models.pyfunc",
    "ModelLineage": "larder.models.lineage",
    "list_models": "larder.models.lineage",
    "model_lineage": "larder.models.lineage",
    "SkewReport": "larder.models.skew",
    "default_tracking_uri": "larder.models.tracking",
    "ensure_tracking": "larder.models.tracking",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'larder.models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
