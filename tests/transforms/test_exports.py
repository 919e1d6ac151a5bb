"""The public surface of larder.transforms and larder.selection is pinned here."""

from __future__ import annotations

import larder.selection
import larder.transforms


def test_transforms_all():
    assert larder.transforms.__all__ == [
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
    for name in larder.transforms.__all__:
        assert getattr(larder.transforms, name) is not None


def test_selection_all():
    assert larder.selection.__all__ == ["SelectionReport", "select_features"]


def test_skops_trusted_types_are_importable():
    import importlib

    for dotted in larder.transforms.SKOPS_TRUSTED_TYPES:
        module, _, attr = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), dotted
