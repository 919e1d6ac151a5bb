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

A few rows of plain Python inputs (the online serving case) can skip the Series altogether:
:meth:`FunctionRunner.run_rows` calls the function once per row, which *is* its meaning, and types the
result as :meth:`FunctionRunner.run_arrow` types it for inputs of the same kinds. In ``mode="row"``
that is the row-by-row typing (the declared return type, else the normalised inferred type). In
``mode="auto"`` it is learned from a Series call: once a vectorised call agreed with the row-by-row
calls for inputs of given kinds and returned a typed column (not ``object``), its Arrow type is the
type; once it raised or returned no column, the row-by-row typing is. Until then (and for inputs with
nulls, where a Series call and a scalar call most often part ways) the caller takes the Series route.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from larder.errors import FunctionExecutionError
from larder.offline.frames import normalise_column

MODES = ("auto", "vectorized", "row")
_SAMPLE_HEAD = 3
_SAMPLE_NULLS = 3
#: the learned typing of inputs whose Series call did not give a column: the row-by-row typing
_ROWS = "rows"
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


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


#: Arrow type -> (numpy dtype, Python types converted exactly, bounds for integers)
_NUMPY_EXACT: dict[pa.DataType, tuple[type, tuple[type, ...], int]] = {
    pa.int64(): (np.int64, (int, np.int64), 2**63),
    pa.float64(): (np.float64, (float, np.float64, int), 2**53),
    pa.bool_(): (np.bool_, (bool, np.bool_), 0),
}


def _numpy_values(values: list[Any], typ: pa.DataType) -> np.ndarray | None:
    """``values`` as a numpy array holding what ``pa.array(values, type=typ, from_pandas=True)`` holds,
    when ``typ`` is int64, double or bool, no value is null or NaN and each is exactly of a Python or
    numpy type Arrow converts losslessly (integers within range); else None."""
    spec = _NUMPY_EXACT.get(typ)
    if spec is None:
        return None
    dtype, kinds, bound = spec
    for v in values:
        kind = type(v)
        if kind not in kinds:
            return None
        if kind is int:
            if not -bound <= v < bound:
                return None
        elif v != v:  # noqa: PLR0124 - NaN (Arrow makes it null with from_pandas)
            return None
    return np.array(values, dtype=dtype)


def _typed_column(result: Any) -> bool:
    """Whether a vectorised result's type follows from its dtype (not from its values, as for lists
    and ``object`` columns, whose inferred Arrow type may change from call to call)."""
    if isinstance(result, (pa.Array, pa.ChunkedArray)):
        return True
    dtype = getattr(result, "dtype", None)
    return dtype is not None and not (isinstance(dtype, np.dtype) and dtype.kind == "O")


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
        #: caller-given input kinds -> how run_arrow typed their result (an Arrow type, or _ROWS)
        self._typing: dict[Hashable, pa.DataType | str] = {}

    def __call__(self, inputs: Mapping[str, pd.Series], n: int, key_frame: pd.DataFrame | None = None
                 ) -> pd.Series:
        return self.run_arrow(inputs, n, key_frame).to_pandas()

    def run_arrow(self, inputs: Mapping[str, pd.Series], n: int,
                  key_frame: pd.DataFrame | Mapping[str, pd.Series] | None = None, *,
                  learn: Hashable | None = None) -> pa.Array:
        """The function's values for ``n`` rows of ``inputs`` (``{parameter: Series}``) as an Arrow array.
        ``key_frame`` (a frame or ``{column: Series}``) identifies rows in error messages.

        ``learn``: a key naming the kinds of the inputs (null-free; the same key must always mean
        inputs of the same dtypes); how this call types its result is remembered under it for
        :meth:`run_rows`."""
        if self.mode != "row" and n > 0:
            try:
                result = self.func(**inputs)
                arr = _column_result(result, n, self.output_type)
            except Exception as exc:
                if self.mode == "vectorized" and isinstance(exc, FunctionExecutionError):
                    raise  # the function's own report (a SQL function's DuckDB error, say)
                if self.mode == "vectorized":
                    what = ("did not return one value per row" if isinstance(exc, _NotAColumn)
                            else f"raised {type(exc).__name__}: {exc}")
                    raise FunctionExecutionError(
                        f"Feature function {self.name!r} (version {self.version}) is registered with "
                        f"mode='vectorized' but, called with pandas Series of {n} rows, it {what}. Register "
                        "it with mode='auto' or 'row', or make it work on Series."
                    ) from exc
                arr = None
                if learn is not None:
                    self._learn(learn, _ROWS)
            if arr is not None:
                if self.mode == "vectorized":
                    return arr
                signature = tuple((p, str(s.dtype)) for p, s in inputs.items())
                known = signature in self._agreed
                if self._agrees(arr, inputs, n, nulls_only=known):
                    if not known and len(self._agreed) < 64:
                        self._agreed.add(signature)
                    if learn is not None and _typed_column(result):
                        self._learn(learn, arr.type)
                    return arr
        return self._row_by_row(inputs, n, key_frame)

    def _learn(self, key: Hashable, typing: pa.DataType | str) -> None:
        if key in self._typing or len(self._typing) < 64:
            self._typing[key] = typing

    def run_rows(self, values: Mapping[str, Sequence[Any]], n: int, kinds: Hashable) -> pa.Array | np.ndarray | None:
        """The function called once per row on plain Python inputs, typed as :meth:`run_arrow` types it
        for Series of the same kinds; None when that typing is not known yet (``mode="auto"`` before a
        :meth:`run_arrow` call with ``learn=kinds``; always with ``mode="vectorized"``), or when a call
        raises or a value does not fit the type (the Series route then decides and reports).

        ``values`` are ``{parameter: [n values]}``, none of them null (None or NaN): what
        :func:`py_values` gives for the Series ``kinds`` stands for.

        The result is an Arrow array, or a numpy array when the type is ``int64``, ``double`` or ``bool``
        and every value is a Python (or numpy) number of that kind, not NaN: the values Arrow would hold,
        without building an Arrow array for a row or two."""
        if self.mode == "row":
            typing: pa.DataType | str = _ROWS
        elif self.mode == "auto":
            known = self._typing.get(kinds)
            if known is None:
                return None
            typing = known
        else:
            return None
        func = self.func
        try:
            if n == 1:
                out = [func(**{p: v[0] for p, v in values.items()})]
            else:
                out = [func(**{p: v[i] for p, v in values.items()}) for i in range(n)]
        except Exception:  # noqa: BLE001 - the Series route raises the function's error with its context
            return None
        typ = self.output_type if typing == _ROWS else typing
        if typ is not None:
            plain = _numpy_values(out, typ)  # type: ignore[arg-type]
            if plain is not None:
                return plain
        try:
            return _to_arrow(out, typ)  # type: ignore[arg-type]
        except _ARROW_ERRORS:
            return None

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
