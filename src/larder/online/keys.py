"""The caller's keys as the online assembly reads them.

``keys_df`` may be a pandas, pyarrow or polars frame, or plain Python: columns ``{"id": [1, 2]}`` or
records ``[{"id": 1}]``. :class:`KeyIntake` turns it into a :class:`Caller` (rows 0..n-1), validated
against the spec once per shape (column names and types), plus the caller's index for the output.
Python columns of ints, floats and strings stay Python lists (the dict output and the key encoding
use them as given); a pandas frame is built from them only when something needs one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from larder.errors import FeatureLookupError
from larder.online.frames import (
    ColumnLabels,
    dtypes,
    frame_at,
    frame_column,
    index_names,
    is_range,
    pandas_values,
)
from larder.training.spec import FeatureSpec

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def python_columns(keys: Mapping[str, Any] | list[Mapping[str, Any]]
                   ) -> tuple[tuple[str, ...], int, dict[str, list[Any]], tuple[str, ...]] | None:
    """Keys given as Python columns or records, as ``(names, rows, {name: the Python values}, kinds)``
    when every column holds only ints (within int64), only floats (float64) or only strings and None
    (pandas' ``str``); else None (the Arrow route converts them). :func:`python_arrays` gives the
    values as a frame would hold them."""
    if isinstance(keys, list):
        if not keys:
            return None
        names = tuple(keys[0])
        if any(tuple(r) != names for r in keys):
            return None
        columns: Mapping[str, Any] = {c: [r[c] for r in keys] for c in names}
    else:
        columns = keys
        names = tuple(columns)
    lists: dict[str, list[Any]] = {}
    kinds: list[str] = []
    n = -1
    for name in names:
        values = columns[name]
        if not isinstance(name, str) or not isinstance(values, (list, tuple)) or (n >= 0 and len(values) != n):
            return None
        n = len(values)
        types = {type(v) for v in values}
        if types == {int}:
            if min(values) < _INT64_MIN or max(values) > _INT64_MAX:
                return None
            kinds.append("int")
        elif types <= {str, type(None)} and str in types:
            kinds.append("str")
        elif types == {float}:  # NaN stays NaN, as through Arrow without from_pandas
            kinds.append("float")
        else:
            return None
        lists[name] = values if isinstance(values, list) else list(values)
    if n < 0 or len(set(names)) != len(names):
        return None
    return names, n, lists, tuple(kinds)


def python_arrays(lists: dict[str, list[Any]], kinds: Sequence[str]) -> dict[str, Any]:
    """Python key columns (``kinds``: "int", "float" or "str" per column, as :func:`python_columns`
    found them) as a pandas frame holds them: int64 and float64 numpy arrays, pandas ``str`` arrays."""
    data: dict[str, Any] = {}
    for (name, values), kind in zip(lists.items(), kinds, strict=True):
        if kind == "str":
            data[name] = pd.array(values, dtype="str")
        else:
            data[name] = np.array(values, dtype=np.int64 if kind == "int" else np.float64)
    return data


def arrow_keys(keys: Mapping[str, Any] | list[Mapping[str, Any]]) -> pa.Table:
    """Keys given as columns (``{"id": [1, 2]}``) or records (``[{"id": 1}]``) as an Arrow table."""
    try:
        if isinstance(keys, Mapping):
            return pa.table({k: v if isinstance(v, (pa.Array, pa.ChunkedArray, np.ndarray)) else list(v)
                             for k, v in keys.items()})
        return pa.Table.from_pylist(keys)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise FeatureLookupError(
            f"keys_df given as Python columns or records has a column whose values mix types, or columns of "
            f"different lengths: {exc}. Give each column one type and every column the same length."
        ) from exc


class Caller:
    """The caller's key columns (rows 0..n-1): each column's values (numpy or pandas extension arrays,
    as a pandas frame holds them), and the pandas frame itself only when something needs one (a
    validation, an error message, a feature function's Series route).

    Built from a pandas frame, or from plain Python columns (``lists``: the values as given, which
    the dict output and the key encoding use directly; their numpy form is built on first use)."""

    __slots__ = ("_frame", "_kinds", "_labels", "_lists", "_read", "_values", "n", "names")

    def __init__(self, n: int, names: tuple[str, ...], *, frame: pd.DataFrame | None = None,
                 lists: dict[str, list[Any]] | None = None, kinds: Sequence[str] = (),
                 labels: pd.Index | None = None) -> None:
        self.n = n
        self.names = names
        self._frame = frame
        self._values: dict[str, Any] | None = None
        self._lists = lists
        self._kinds = kinds
        self._labels = labels
        self._read: dict[str, Any] = {}  # columns read from the frame

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def _python_values(self) -> dict[str, Any] | None:
        if self._values is None and self._lists is not None:
            self._values = python_arrays(self._lists, self._kinds)
        return self._values

    def values(self, name: str) -> Any:
        """One column's values (numpy or extension array), as the frame holds them."""
        values = self._python_values()
        if values is not None:
            return values[name]
        got = self._read.get(name)
        if got is None:
            got = self._read[name] = frame_column(self.frame, name)
        return got

    def pylist(self, name: str) -> list[Any] | None:
        """One column's plain Python values when the caller gave them so (ints, floats, or strings and
        None)."""
        return None if self._lists is None else self._lists.get(name)

    def kind(self, name: str) -> str | None:
        """"int", "float" or "str" for a column given as Python values, else None."""
        if self._lists is None or name not in self._lists:
            return None
        return self._kinds[self.names.index(name)]

    @property
    def frame(self) -> pd.DataFrame:
        """The key frame (built on first use for Python columns)."""
        if self._frame is None:
            values = self._python_values()
            assert values is not None
            labels = self._labels if self._labels is not None else pd.Index(list(self.names))
            self._frame = frame_at(list(enumerate(values.values())), (), pd.RangeIndex(self.n), labels)
        return self._frame


class KeyIntake:
    """Turns ``keys_df`` into a validated :class:`Caller` for one spec.

    Validation depends only on the column names and types (the one value-dependent check, whole
    numbers in a float key column, runs on every lookup), so a shape seen before is not validated
    again. ``optional`` columns (timestamp lookup keys) may be absent.
    """

    def __init__(self, spec: FeatureSpec, optional: list[str], labels: ColumnLabels) -> None:
        self.spec = spec
        self.optional = optional
        self.labels = labels
        #: (kind, columns, types) of key frames that passed validation
        self._validated: set[tuple[Any, ...]] = set()
        self._last_names: tuple[pd.Index, tuple[Any, ...]] | None = None

    def caller(self, keys: Any) -> tuple[Caller, pd.Index | None]:
        """The validated keys, and the index the output takes (None: ``RangeIndex(n)``)."""
        if isinstance(keys, Mapping) or (isinstance(keys, list) and all(isinstance(r, Mapping) for r in keys)):
            got = python_columns(keys)
            if got is not None:
                names, n, lists, kinds = got
                caller = Caller(n, names, lists=lists, kinds=kinds, labels=self.labels(names))
                signature = ("python", names, kinds)
                if signature not in self._validated:
                    self._validate(caller.frame, signature)
                return caller, None
            keys = arrow_keys(keys)
        index = keys.index if isinstance(keys, pd.DataFrame) else None
        frame_in = self._prepare(keys)
        frame = frame_in if is_range(frame_in.index) else frame_in.reset_index(drop=True)
        return Caller(len(frame), self.names(frame_in.columns), frame=frame), index

    def _prepare(self, keys: Any) -> pd.DataFrame:
        """``keys`` (a frame or table) as a validated pandas frame."""
        from larder.training.assemble import as_pandas

        signature: tuple[Any, ...] | None = None
        if isinstance(keys, (pa.Table, pa.RecordBatch)) and len(set(keys.column_names)) == keys.num_columns:
            # a small Arrow table (the feature server's keys) converts much faster column by column
            signature = ("arrow", tuple(keys.column_names), tuple(str(t) for t in keys.schema.types))
            names = tuple(keys.column_names)
            columns = [pandas_values(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)
                       for col in keys.columns]
            keys = frame_at(list(enumerate(columns)), (), pd.RangeIndex(keys.num_rows), self.labels(names))
        elif isinstance(keys, pd.DataFrame):
            found = dtypes(keys)
            if not any(t.kind == "O" for t in found):  # object columns may mix types from call to call
                signature = ("pandas", self.names(keys.columns), found)
        if signature is not None:
            try:
                if signature in self._validated:
                    return keys  # type: ignore[no-any-return]
            except TypeError:  # an unhashable extension dtype: validate every time
                signature = None
        return self._validate(as_pandas(keys, what="keys_df"), signature)

    def _validate(self, frame: pd.DataFrame, signature: tuple[Any, ...] | None) -> pd.DataFrame:
        from larder.training.assemble import validate_frame

        columns = set(frame.columns)
        validate_frame(self.spec, frame, extra_columns=[c for c in self.optional if c not in columns])
        if signature is not None and len(self._validated) < 256:
            self._validated.add(signature)
        return frame

    def names(self, columns: pd.Index) -> tuple[Any, ...]:
        """``tuple(columns)``, remembered for the last Index object (immutable) seen."""
        last = self._last_names
        if last is not None and last[0] is columns:
            return last[1]
        names = index_names(columns)
        self._last_names = (columns, names)
        return names


__all__ = ["Caller", "KeyIntake", "arrow_keys", "python_arrays", "python_columns"]
