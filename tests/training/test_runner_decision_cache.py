"""FunctionRunner remembers that a vectorised call agreed, and still re-checks rows with null inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from larder.training.execute import FunctionRunner


def _runner(func):  # type: ignore[no-untyped-def]
    return FunctionRunner(func, name="main.default.f", version="v1", mode="auto", output_type=pa.float64())


def test_agreed_signature_skips_the_full_check_but_not_null_rows() -> None:
    calls: list[type] = []

    def fill(x):  # type: ignore[no-untyped-def]
        calls.append(type(x))
        return x if x is not None else 5.0

    runner = _runner(fill)
    first = runner.run_arrow({"x": pd.Series([1.0, 2.0])}, 2).to_pylist()
    assert first == [1.0, 2.0]
    assert calls.count(pd.Series) == 1 and len(calls) == 3  # vectorised, then rows 0 and 1 checked
    calls.clear()
    assert runner.run_arrow({"x": pd.Series([4.0])}, 1).to_pylist() == [4.0]
    assert calls == [pd.Series]  # known dtypes, no nulls: no row-by-row check
    calls.clear()
    # a null input: the Series call keeps NaN, the row call gives 5.0 -> row by row, as without the cache
    assert runner.run_arrow({"x": pd.Series([np.nan, 3.0])}, 2).to_pylist() == [5.0, 3.0]


def test_other_dtypes_are_checked_again() -> None:
    def half(x):  # type: ignore[no-untyped-def]
        return x / 2 if not isinstance(x, str) else None

    runner = _runner(half)
    assert runner.run_arrow({"x": pd.Series([2.0, 4.0])}, 2).to_pylist() == [1.0, 2.0]
    # strings: the Series call raises, each row gives None
    assert runner.run_arrow({"x": pd.Series(["a", "b"], dtype=object)}, 2).to_pylist() == [None, None]
