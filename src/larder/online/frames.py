"""pandas helpers of the online assembly: frames built block by block, and cheap reads of small frames.

An online lookup of a few rows spends most of its time on per-column work. :func:`frame_at` builds a
frame from 1-D columns and ready 2-D blocks with one pandas block per numpy dtype (several times
faster than ``pd.DataFrame(...)`` for a few rows and many columns); :func:`frame_column` and
:func:`dtypes` read a column or the dtypes through the block manager instead of building a Series.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa


def frame_at(parts: list[tuple[int, Any]], blocks: Sequence[tuple[np.ndarray, np.ndarray]], index: pd.Index,
             labels: pd.Index) -> pd.DataFrame:
    """The frame with column ``p`` holding ``values`` for each ``(p, values)`` of ``parts`` (1-D numpy or
    extension arrays) and the rows of each 2-D block of ``blocks`` at its positions: one pandas block
    per numpy dtype (a single block for all-float features), one per extension array."""
    try:
        from pandas.api.internals import create_dataframe_from_blocks
    except ImportError:  # pragma: no cover - pandas < 2.3
        return _plain_frame(parts, blocks, index, labels)
    groups: dict[np.dtype[Any], list[tuple[np.ndarray, Any]]] = {}
    out: list[tuple[Any, np.ndarray]] = []
    for values, positions in blocks:
        groups.setdefault(values.dtype, []).append((values, positions))
    for i, v in parts:
        if isinstance(v, pd.arrays.NumpyExtensionArray):
            v = v.to_numpy()
        if isinstance(v, np.ndarray):
            if v.ndim != 1 or v.dtype.kind not in "biufO":
                return _plain_frame(parts, blocks, index, labels)
            groups.setdefault(v.dtype, []).append((v, i))
        elif isinstance(v, pd.api.extensions.ExtensionArray):
            out.append((v, np.array([i])))
        else:
            return _plain_frame(parts, blocks, index, labels)
    n = len(index)
    for dtype, members in groups.items():
        if len(members) == 1:
            values, positions = members[0]
            if values.ndim == 1:  # a copy: Arrow's zero-copy numpy views are read-only
                out.append((values.reshape(1, -1).copy(), np.array([positions])))
            else:
                out.append((np.ascontiguousarray(values), np.asarray(positions)))
            continue
        # one new block: 1-D columns and 2-D blocks copied in, row by row or slice by slice
        rows = sum(1 if v.ndim == 1 else len(v) for v, _ in members)
        block = np.empty((rows, n), dtype=dtype)
        placement: list[int] = []
        r = 0
        for v, p in members:
            if v.ndim == 1:
                block[r] = v
                r += 1
                placement.append(p)
            else:
                block[r:r + len(v)] = v
                r += len(v)
                placement.extend(p.tolist() if isinstance(p, np.ndarray) else p)
        out.append((block, np.array(placement, dtype=np.intp)))
    return create_dataframe_from_blocks(out, index=index, columns=labels)


def _plain_frame(parts: list[tuple[int, Any]], blocks: Sequence[tuple[np.ndarray, np.ndarray]],
                 index: pd.Index, labels: pd.Index) -> pd.DataFrame:
    """The general constructor for what :func:`frame_at` cannot place in blocks."""
    by_position = dict(parts)
    for values, positions in blocks:
        for row, p in zip(values, positions, strict=True):
            by_position[int(p)] = row
    frame = pd.DataFrame({i: by_position[i] for i in range(len(labels))}, index=index)
    frame.columns = labels
    return frame


def pandas_values(arr: pa.Array) -> Any:
    """An Arrow column as pandas would hold it after ``arr.to_pandas()`` (what the offline assembly
    does), taking numpy's zero-copy route for numbers and booleans, the fast and common case."""
    t = arr.type
    if (pa.types.is_floating(t) or ((pa.types.is_integer(t) or pa.types.is_boolean(t)) and not arr.null_count)):
        return arr.to_numpy(zero_copy_only=False)
    return arr.to_pandas().array


def frame_column(frame: pd.DataFrame, name: str) -> Any:
    """The values (numpy or extension array) of one column; ``frame[name]`` builds a Series, ten times
    slower for a small frame than asking the block manager (used when this pandas has it)."""
    get = getattr(getattr(frame, "_mgr", None), "iget_values", None)
    if get is not None:
        loc = frame.columns.get_loc(name)
        if isinstance(loc, int):
            return get(loc)
    return frame[name].array


def index_names(columns: pd.Index) -> tuple[Any, ...]:
    """``tuple(columns)``; for an Index backed by an Arrow string array (pandas 3's ``str``), from the
    Arrow array (``to_pylist`` gives the same strings, much faster than iterating the Index)."""
    arrow = getattr(getattr(columns, "_values", None), "_pa_array", None)
    if isinstance(arrow, pa.ChunkedArray) and not arrow.null_count and (
            pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type)):
        return tuple(arrow.to_pylist())
    return tuple(columns)


def dtypes(frame: pd.DataFrame) -> tuple[Any, ...]:
    """The column dtypes of ``frame`` in order; ``frame.dtypes`` builds a Series, ten times slower for
    a small frame than asking the block manager (used when this pandas has it)."""
    get = getattr(getattr(frame, "_mgr", None), "get_dtypes", None)
    if get is not None:
        try:
            found = tuple(get())
        except Exception:  # noqa: BLE001 - a pandas internal; fall back to the public attribute
            found = ()
        if len(found) == frame.shape[1]:
            return found
    return tuple(frame.dtypes)


def is_range(index: pd.Index) -> bool:
    """Whether ``index`` is ``RangeIndex(n)`` (rows 0..n-1)."""
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1


class ColumnLabels:
    """Column indexes by names, cached: building a ``pd.Index`` costs more than the rest of a small frame."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, ...], pd.Index] = {}

    def __call__(self, names: tuple[str, ...]) -> pd.Index:
        labels = self._cache.get(names)
        if labels is None:
            labels = pd.Index(list(names))
            if len(self._cache) < 64:
                self._cache[names] = labels
        return labels


__all__ = ["ColumnLabels", "dtypes", "frame_at", "frame_column", "index_names", "is_range", "pandas_values"]
