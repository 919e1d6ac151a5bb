"""Comparing the online assembler's few-key (lean) path with its general path, shared by the lean tests."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

OUTPUTS = ("pandas", "dict", "arrow")


def same(a: object, b: object) -> bool:
    """Equal values of the same type; NaN equals NaN, and 0.0 differs from -0.0."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b


def assert_same_dict(lean: dict, general: dict) -> None:
    assert list(lean) == list(general)
    for column in general:
        assert len(lean[column]) == len(general[column]), column
        for i, (x, y) in enumerate(zip(lean[column], general[column], strict=True)):
            assert same(x, y), (column, i, x, y)


def assert_lean_equals_general(asm: Any, keys: Any, include_found: bool, context: object = None
                               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Assemble ``keys`` in every output form on the lean path and on the general path, assert that
    they agree (frames exactly, Arrow schemas, values with :func:`same`) and return both ``{output: result}``."""
    asm.lean_max_rows = 1000
    lean = {out: asm.assemble(keys, include_found=include_found, output=out) for out in OUTPUTS}
    asm.lean_max_rows = 0
    general = {out: asm.assemble(keys, include_found=include_found, output=out) for out in OUTPUTS}
    pd.testing.assert_frame_equal(lean["pandas"], general["pandas"], check_exact=True)
    assert lean["arrow"].schema.equals(general["arrow"].schema), context
    assert_same_dict(lean["arrow"].to_pydict(), general["arrow"].to_pydict())
    assert_same_dict(lean["dict"], general["dict"])
    return lean, general
