"""The examples in the docstrings of the feature-engineering modules run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES_WITH_EXAMPLES = [
    "larder.transforms.builder",
    "larder.transforms.estimators",
    "larder.transforms.stateless",
    "larder.transforms.temporal",
    "larder.offline.ranges",
    "larder.selection.select",
]


@pytest.mark.parametrize("name", MODULES_WITH_EXAMPLES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
