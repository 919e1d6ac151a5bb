"""Shared helpers of the transforms package: frame kinds, column checks, readable names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from larder.errors import TransformError

#: The three interaction operators and the symbol each puts between the two column names.
INTERACTION_SYMBOLS: dict[str, str] = {"ratio": "/", "diff": "-", "product": "*"}


def frame_kind(df: Any, *, where: str) -> str:
    """Return ``"pandas"`` or ``"arrow"`` for a supported frame, else raise :class:`TransformError`."""
    if isinstance(df, pd.DataFrame):
        return "pandas"
    if isinstance(df, pa.Table | pa.RecordBatch):
        return "arrow"
    raise TransformError(
        f"{where}: expected a pandas DataFrame or a pyarrow Table, got {type(df).__name__}. "
        "Convert it first (for example polars: df.to_arrow())."
    )


def as_arrow_table(df: pa.Table | pa.RecordBatch) -> pa.Table:
    return pa.Table.from_batches([df]) if isinstance(df, pa.RecordBatch) else df


def column_names(df: Any) -> list[str]:
    if isinstance(df, pd.DataFrame):
        return [str(c) for c in df.columns]
    return list(df.schema.names)


def as_list(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def require_columns(available: Sequence[str], wanted: Iterable[str], *, where: str) -> None:
    """Raise :class:`TransformError` naming every wanted column that is not available."""
    have = set(available)
    missing = [c for c in dict.fromkeys(wanted) if c not in have]
    if missing:
        shown = ", ".join(repr(c) for c in missing)
        sample = ", ".join(repr(c) for c in list(available)[:12])
        more = ", ..." if len(available) > 12 else ""
        raise TransformError(
            f"{where}: column(s) {shown} not found in the input. Available columns: [{sample}{more}]. "
            "Fix the spelling or add the column(s) to the frame."
        )


def require_new_names(available: Sequence[str], new: Sequence[str], *, where: str) -> None:
    """Raise if an output name would overwrite an input column or repeats."""
    clash = [n for n in new if n in set(available)]
    if clash:
        raise TransformError(
            f"{where}: output column(s) {clash} already exist in the input. Rename or drop them first."
        )
    dupes = sorted({n for n in new if list(new).count(n) > 1})
    if dupes:
        raise TransformError(f"{where}: output column(s) {dupes} would be produced twice; remove duplicates.")


def is_numeric_dtype(dtype: Any) -> bool:
    """True for int, float and bool dtypes (numpy, pandas extension or Arrow-backed)."""
    if isinstance(dtype, pa.DataType):
        return bool(pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype))
    try:
        return bool(pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
    except TypeError:
        return False


def is_datetime_dtype(dtype: Any) -> bool:
    if isinstance(dtype, pa.DataType):
        return bool(pa.types.is_timestamp(dtype) or pa.types.is_date(dtype))
    if isinstance(dtype, pd.ArrowDtype):
        return is_datetime_dtype(dtype.pyarrow_dtype)
    return bool(pd.api.types.is_datetime64_any_dtype(dtype))


def require_numeric(df: Any, columns: Iterable[str], *, where: str, fix: str) -> None:
    """Raise :class:`TransformError` naming the columns of ``df`` that are not numeric."""
    if isinstance(df, pd.DataFrame):
        types = {str(c): df[c].dtype for c in columns}
    else:
        schema = df.schema
        types = {c: schema.field(c).type for c in columns}
    bad = [f"{c!r} ({t})" for c, t in types.items() if not is_numeric_dtype(t)]
    if bad:
        raise TransformError(f"{where}: column(s) {', '.join(bad)} are not numeric. {fix}")


def to_float_array(values: Any) -> np.ndarray:
    """A float64 numpy array with NaN for nulls (pandas NA, None, Arrow nulls)."""
    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = values.to_numpy(zero_copy_only=False)
    if isinstance(values, pd.Series | pd.Index):
        return values.astype("float64").to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(values, dtype="float64")


def interaction_name(left: str, right: str, op: str) -> str:
    return f"{left}{INTERACTION_SYMBOLS[op]}{right}"


def check_ops(ops: Iterable[str], *, where: str) -> tuple[str, ...]:
    out = tuple(ops) if not isinstance(ops, str) else (ops,)
    bad = [o for o in out if o not in INTERACTION_SYMBOLS]
    if bad or not out:
        raise TransformError(
            f"{where}: unknown interaction op(s) {bad or '(none given)'}; "
            f"choose from {sorted(INTERACTION_SYMBOLS)}."
        )
    return out


def compute_interaction(left: np.ndarray, right: np.ndarray, op: str) -> np.ndarray:
    """Vectorised ratio/diff/product; division by zero (or by null) gives NaN."""
    if op == "ratio":
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.divide(left, right)
        out[right == 0] = np.nan
        return out
    if op == "diff":
        return left - right
    return left * right
