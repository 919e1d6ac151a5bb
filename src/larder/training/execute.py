"""Running a feature function over the rows of a frame.

A feature function's meaning is its meaning on **one row**: it receives the row's bound input values
as plain Python objects (``None`` for a null or NaN) and returns one value. Running it once per row is
slow, so in ``mode="auto"`` larder first calls it once with whole pandas Series and keeps that result
when it is a column of the right length that agrees with the row-by-row result on a sample of rows
(the first and last rows and rows with null inputs). Otherwise, or when the vectorised call raises,
it runs the function row by row. The sample check catches functions such as ``x if x is not None
else 5``, which run on a Series without error but mean something else there.

Once a vectorised call has agreed with the row-by-row calls for inputs of given dtypes, later calls
with inputs of the same dtypes re-check only the rows with null inputs (the rows where a Series and a
scalar most often part ways), which keeps a small online batch from paying for the full check each time.

``mode="vectorized"`` always calls with Series (errors if that fails), ``mode="row"`` never does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from larder.errors import FunctionExecutionError
from larder.offline.frames import normalise_column

MODES = ("auto", "vectorized", "row")
_SAMPLE_HEAD = 3
_SAMPLE_NULLS = 3


class _NotAColumn(Exception):
    pass


def series_to_arrow(series: Any, type: pa.DataType | None = None) -> pa.Array:
    """``pa.array(series, from_pandas=True)``, without pandas' deprecated ``Series.values`` path for
    time-zone-aware timestamps (pyarrow takes it; pandas 3 warns)."""
    if isinstance(series, pd.Series) and isinstance(series.dtype, pd.DatetimeTZDtype):
        naive = series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        arr = pa.array(naive, from_pandas=True)
        arr = arr.cast(pa.timestamp(arr.type.unit, tz="UTC"))
        return arr if type is None else arr.cast(type)
    return pa.array(series, type=type, from_pandas=True)


def py_values(series: pd.Series) -> list[Any]:
    """The values of ``series`` as plain Python objects, ``None`` for null and NaN."""
    try:
        return series_to_arrow(series).to_pylist()  # type: ignore[no-any-return]
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return [None if _isnull(v) else v for v in series.tolist()]


def _isnull(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _to_arrow(values: Any, out_type: pa.DataType | None) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        arr = values if out_type is None else values.cast(out_type)
    else:
        arr = series_to_arrow(values, out_type)
    if out_type is None:
        arr = normalise_column(pa.chunked_array([arr], type=arr.type), table="<function>", name="output")
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr


def _column_result(result: Any, n: int, out_type: pa.DataType | None) -> pa.Array:
    if isinstance(result, pd.DataFrame) or isinstance(result, (str, bytes)) or np.isscalar(result):
        raise _NotAColumn
    if isinstance(result, pd.Series):
        values: Any = result
    elif isinstance(result, (np.ndarray, pa.Array, pa.ChunkedArray, list, tuple)):
        values = result
    else:
        raise _NotAColumn
    if getattr(values, "ndim", 1) != 1 or len(values) != n:
        raise _NotAColumn
    return _to_arrow(values, out_type)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        try:
            fa, fb = float(a), float(b)
        except (TypeError, ValueError):
            return False
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return math.isclose(fa, fb, rel_tol=1e-9, abs_tol=1e-12)
    try:
        return bool(a == b)
    except Exception:
        return False


class FunctionRunner:
    """One function version, ready to run: ``runner(inputs, n_rows, key_frame)`` returns a pandas
    Series of ``n_rows`` values (Arrow-typed by the return annotation when it declares one)."""

    def __init__(self, func: Callable[..., Any], *, name: str, version: str, mode: str,
                 output_type: pa.DataType | None) -> None:
        self.func = func
        self.name = name
        self.version = version
        self.mode = mode
        self.output_type = output_type
        #: input dtype signatures for which a vectorised call agreed with the row-by-row calls
        self._agreed: set[tuple[Any, ...]] = set()

    def __call__(self, inputs: Mapping[str, pd.Series], n: int, key_frame: pd.DataFrame | None = None
                 ) -> pd.Series:
        return self.run_arrow(inputs, n, key_frame).to_pandas()

    def run_arrow(self, inputs: Mapping[str, pd.Series], n: int,
                  key_frame: pd.DataFrame | Mapping[str, pd.Series] | None = None) -> pa.Array:
        """The function's values for ``n`` rows of ``inputs`` (``{parameter: Series}``) as an Arrow array.
        ``key_frame`` (a frame or ``{column: Series}``) identifies rows in error messages."""
        if self.mode != "row" and n > 0:
            try:
                arr = _column_result(self.func(**inputs), n, self.output_type)
            except Exception as exc:
                if self.mode == "vectorized":
                    what = ("did not return one value per row" if isinstance(exc, _NotAColumn)
                            else f"raised {type(exc).__name__}: {exc}")
                    raise FunctionExecutionError(
                        f"Feature function {self.name!r} (version {self.version}) is registered with "
                        f"mode='vectorized' but, called with pandas Series of {n} rows, it {what}. Register "
                        "it with mode='auto' or 'row', or make it work on Series."
                    ) from exc
                arr = None
            if arr is not None:
                if self.mode == "vectorized":
                    return arr
                signature = tuple((p, str(s.dtype)) for p, s in inputs.items())
                known = signature in self._agreed
                if self._agrees(arr, inputs, n, nulls_only=known):
                    if not known and len(self._agreed) < 64:
                        self._agreed.add(signature)
                    return arr
        return self._row_by_row(inputs, n, key_frame)

    def _sample_rows(self, inputs: Mapping[str, pd.Series], n: int, nulls_only: bool = False) -> list[int]:
        rows: list[int] = []
        if not nulls_only:
            rows = list(range(min(_SAMPLE_HEAD, n)))
            if n - 1 not in rows:
                rows.append(n - 1)
        if inputs:
            nulls = np.zeros(n, dtype=bool)
            for s in inputs.values():
                if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iub":
                    continue  # numpy integers and booleans hold no nulls
                nulls |= np.asarray(pd.isna(s), dtype=bool)
            rows += [int(i) for i in np.flatnonzero(nulls)[:_SAMPLE_NULLS] if int(i) not in rows]
        return rows

    def _agrees(self, arr: pa.Array, inputs: Mapping[str, pd.Series], n: int, nulls_only: bool = False) -> bool:
        """Whether the vectorised result matches row-by-row calls on a sample of rows (with
        ``nulls_only``, the rows with null inputs). Rows on which the row-by-row call raises are not
        evidence against the vectorised result (a function written for Series, or null propagation),
        so they are skipped."""
        columns = {p: s.iloc for p, s in inputs.items()}
        for i in self._sample_rows(inputs, n, nulls_only):
            row = {p: _scalar(col[i]) for p, col in columns.items()}
            try:
                value = self.func(**row)
            except Exception:
                continue
            try:
                expect = _to_arrow([value], arr.type)[0].as_py()
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                return False
            if not _same(arr[i].as_py(), expect):
                return False
        return True

    def _row_by_row(self, inputs: Mapping[str, pd.Series], n: int,
                    key_frame: pd.DataFrame | Mapping[str, pd.Series] | None) -> pa.Array:
        values = {p: py_values(s) for p, s in inputs.items()}
        out: list[Any] = [None] * n
        for i in range(n):
            row = {p: v[i] for p, v in values.items()}
            try:
                out[i] = self.func(**row)
            except Exception as exc:
                raise FunctionExecutionError(
                    f"Feature function {self.name!r} (version {self.version}) raised {type(exc).__name__}: "
                    f"{exc} on row {i} ({_describe_row(i, key_frame, row)}). Handle such inputs in the function "
                    "(registering the fix makes a new version) or clean the input rows."
                ) from exc
        try:
            return _to_arrow(out, self.output_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            bad = _first_bad(out, self.output_type)
            want = f"its declared return type ({self.output_type})" if self.output_type else "one column type"
            raise FunctionExecutionError(
                f"Feature function {self.name!r} (version {self.version}) returned values that do not fit "
                f"{want}: {exc}. First offending row: {bad}. Return one type (or None) for every row, or fix "
                "the return annotation."
            ) from exc


def _scalar(v: Any) -> Any:
    if _isnull(v):
        return None
    try:
        return pa.scalar(v, from_pandas=True).as_py()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return v.item() if isinstance(v, np.generic) else v


def _first_bad(values: Sequence[Any], out_type: pa.DataType | None) -> str:
    if out_type is None:
        first = next((v for v in values if v is not None), None)
        for i, v in enumerate(values):
            if v is not None and type(v) is not type(first):
                return f"row {i} returned {v!r} ({type(v).__name__}) after {first!r} ({type(first).__name__})"
        return "unknown"
    for i, v in enumerate(values):
        try:
            pa.array([v], type=out_type, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return f"row {i} returned {v!r} ({type(v).__name__})"
    return "unknown"


def _describe_row(i: int, key_frame: pd.DataFrame | Mapping[str, pd.Series] | None,
                  inputs: Mapping[str, Any]) -> str:
    parts = []
    columns = list(key_frame.columns if isinstance(key_frame, pd.DataFrame) else key_frame or ())
    if key_frame is not None and columns:
        keys = {c: _scalar(key_frame[c].iloc[i]) for c in columns}
        parts.append(f"key values {keys}")
    parts.append(f"inputs {dict(inputs)}")
    return ", ".join(parts)


__all__ = ["MODES", "FunctionRunner", "py_values", "series_to_arrow"]
