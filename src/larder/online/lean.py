"""The few-key path of :class:`~larder.online.lookup.OnlineFeatureAssembler`.

A lookup of a few keys (the serving case) spends most of its time on per-column work, not in the
store: building one typed Arrow array per feature, then one pandas column per feature. This path
reads through :meth:`~larder.online.stores.base.OnlineStore.read_values`, which hands numeric features back
as one numpy matrix per type (``(features, rows)``), applies the lookups' defaults to whole matrices,
and builds the output from them directly: a matrix becomes one pandas block, one ``tolist()`` call
for the dict output, or the Arrow arrays of the table output.

Everything that does not depend on the keys is prepared once per assembler (:class:`LeanPlan`): the
output position of each column, the defaults converted to their types, the key encoding of each
lookup, the features worth reading (an excluded output that no feature function uses is not read). The
results equal the general path's in every respect (types, nulls, defaults, found flags,
key order, duplicate and missing keys); the tests compare both on every store. Specs with a
``lookback_window`` take the general path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from larder.online.stores.base import OnlineStore, OnlineTable, prepare_keys

if TYPE_CHECKING:
    from larder.training.spec import LookupStep

#: the assembler (larder.online.lookup) whose plan and sources this module reads
OnlineFeatureAssembler = Any

#: Lookups of at most this many rows take the lean path (the general one wins for large batches).
LEAN_MAX_ROWS = 1000
#: Lean lookups of at most this many rows call feature functions once per row on Python values (their
#: defined meaning) instead of once on pandas Series, when the inputs hold no nulls (see apply_functions).
ROW_CALLS_MAX_ROWS = 16


@dataclass(frozen=True)
class Source:
    """One lookup step bound to its online table and store."""

    step: LookupStep
    label: str
    store: OnlineStore
    table: OnlineTable
    read: list[str]  # columns read from the store: the features (+ the timestamp key for a lookback)
    position: int  # index of the step in the spec
    where: str  # the step described for error messages
    types: dict[str, pa.DataType]  # output name -> Arrow type
    #: per output: (position in ``read``, output name, Arrow type, default value)
    plan: tuple[tuple[int, str, pa.DataType, Any], ...]


@dataclass(frozen=True)
class _SourcePlan:
    source: Source
    #: feature name -> (output name, output type, default converted to a Python value or None)
    outputs: dict[str, tuple[str, pa.DataType, Any]]
    #: how the encoded keys are computed: ("int" | "str", frame column, numpy dtype) or None (general)
    simple_key: tuple[str, str, np.dtype[Any] | None] | None
    key_id: tuple[Any, ...]  # lookups with the same key columns and key types share their encoded keys
    read: list[str]  # features read: those whose outputs are kept or feed a feature function
    #: per (block names, block type) a store returned: how the block maps to outputs (see _block_map)
    block_maps: dict[tuple[Any, ...], _BlockMap] = field(default_factory=dict)
    #: the same by the identity of the names tuple (a store hands the same tuple back for a table):
    #: id -> (names, type, map); the entry keeps the tuple alive, so its id is not reused meanwhile
    block_maps_by_id: dict[int, tuple[tuple[str, ...], pa.DataType, _BlockMap]] = field(default_factory=dict)


@dataclass(frozen=True)
class _BlockMap:
    rows: list[int] | None  # the block rows this lookup outputs (None: all, in order)
    outs: list[tuple[str, pa.DataType, Any]]  # (output, type, default) per kept row
    names: list[str]  # output names per kept row
    defaults: list[tuple[int, Any]]  # (kept row, default) for outputs with a default
    retyped: bool  # some output's type differs from the block's: cast through Arrow


def _block_map(sp: _SourcePlan, names: tuple[str, ...], typ: pa.DataType) -> _BlockMap:
    by_id = sp.block_maps_by_id.get(id(names))
    if by_id is not None and by_id[0] is names and by_id[1] is typ:
        return by_id[2]
    key = (names, typ)
    hit = sp.block_maps.get(key)
    if hit is None:
        rows = [r for r, name in enumerate(names) if name in sp.outputs]
        outs = [sp.outputs[names[r]] for r in rows]
        hit = _BlockMap(None if len(rows) == len(names) else rows, outs, [o for o, _, _ in outs],
                        [(j, d) for j, (_, _, d) in enumerate(outs) if d is not None],
                        any(not t.equals(typ) for _, t, _ in outs))
        if len(sp.block_maps) < 64:
            sp.block_maps[key] = hit
    if len(sp.block_maps_by_id) < 64:
        sp.block_maps_by_id[id(names)] = (names, typ, hit)
    return hit


@dataclass(frozen=True)
class LeanPlan:
    """What a lean lookup needs that does not depend on the keys (built once per assembler)."""

    sources: list[_SourcePlan]
    #: pandas output layouts per (output columns, names of the looked-up blocks): see _layout
    layouts: dict[tuple[Any, ...], _Layout] = field(default_factory=dict)


#: (the output columns not held in a looked-up block: (position, name); per block of a LeanResult, None
#: when none of its rows is output, else (output positions, rows kept or None for all))
_Layout = tuple[list[tuple[int, str]], list[tuple[np.ndarray, list[int] | None] | None]]


def _layout(res: LeanResult, ordered: list[str], cache: dict[tuple[Any, ...], _Layout] | None) -> _Layout:
    """Where each output column of ``ordered`` comes from, for the blocks ``res`` holds (cached: it
    depends only on the column names)."""
    key = (tuple(ordered), tuple(tuple(names) for names, *_rest in res.blocks))
    hit = cache.get(key) if cache is not None else None
    if hit is not None:
        return hit
    position = {c: i for i, c in enumerate(ordered)}
    in_blocks: set[str] = set()
    per_block: list[tuple[np.ndarray, list[int] | None] | None] = []
    for names, *_rest in res.blocks:
        placed = [(j, position[o]) for j, o in enumerate(names) if o in position]
        in_blocks.update(o for o in names if o in position)
        if not placed:
            per_block.append(None)
            continue
        rows = None if len(placed) == len(names) else [j for j, _ in placed]
        per_block.append((np.asarray([p for _, p in placed], dtype=np.intp), rows))
    hit = ([(i, c) for i, c in enumerate(ordered) if c not in in_blocks], per_block)
    if cache is not None and len(cache) < 64:
        cache[key] = hit
    return hit


def python_arrays(lists: dict[str, list[Any]], kinds: Sequence[str]) -> dict[str, Any]:
    """Python key columns (``kinds``: "int", "float" or "str" per column, as ``lookup._python_columns``
    found them) as a pandas frame holds them: int64 and float64 numpy arrays, pandas ``str`` arrays."""
    data: dict[str, Any] = {}
    for (name, values), kind in zip(lists.items(), kinds, strict=True):
        if kind == "str":
            data[name] = pd.array(values, dtype="str")
        else:
            data[name] = np.array(values, dtype=np.int64 if kind == "int" else np.float64)
    return data


class Caller:
    """The caller's key columns as the lean path reads them (rows 0..n-1): each column's values (numpy
    or pandas extension arrays, as a pandas frame holds them), and the pandas frame itself only when
    something needs one (a validation, an error message, a feature function's Series route).

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


def build_plan(asm: OnlineFeatureAssembler) -> LeanPlan | None:
    """The lean plan of an assembler, or None when its spec needs the general path."""
    plans = []
    excluded = set(asm.spec.exclude_columns)
    function_inputs = {c for _, step in asm._functions for c in step.input_bindings.values()}
    for src in asm._sources:
        step = src.step
        if step.lookback_window is not None:
            return None
        outputs: dict[str, tuple[str, pa.DataType, Any]] = {}
        for f, out in zip(step.features, step.output_names, strict=True):
            if f in outputs:  # one feature under two names: rare, left to the general path
                return None
            typ = src.types[out]
            default = step.default_values.get(out)
            if default is not None:
                try:
                    default = pa.scalar(default, type=typ).as_py()
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError):
                    return None  # the general path raises its own error for this default
            outputs[f] = (out, typ, default)
        simple = None
        key_types = tuple(src.table.schema.field(k).type for k in step.table_keys)
        if len(step.table_keys) == 1:
            t = key_types[0]
            if pa.types.is_integer(t):
                simple = ("int", step.lookup_key[0], np.dtype(t.to_pandas_dtype()))
            elif pa.types.is_string(t):
                simple = ("str", step.lookup_key[0], None)
        key_id = (tuple(step.lookup_key), tuple(step.key_types), key_types)
        read = [f for f in src.read if f not in outputs or outputs[f][0] not in excluded
                or outputs[f][0] in function_inputs]
        plans.append(_SourcePlan(src, outputs, simple, key_id, read))
    return LeanPlan(plans)


def _encoded_keys(asm: OnlineFeatureAssembler, plan: _SourcePlan, caller: Caller) -> list[str | None]:
    """The encoded key of each row of ``caller`` for one lookup (what ``prepare_keys`` computes)."""
    if plan.simple_key is not None:
        kind, column, dtype = plan.simple_key
        given = caller.pylist(column)
        if given is not None:  # ints (int64) or strings and None, as the caller gave them
            if kind == "int" and dtype == np.int64 and all(type(v) is int for v in given):
                return [str(v) for v in given]
            if kind == "str" and all(v is None or type(v) is str for v in given):
                return list(given)
        values = caller.values(column)
        if kind == "int" and isinstance(values, np.ndarray) and values.dtype == dtype:
            return [str(v) for v in values.tolist()]
        if kind == "str" and isinstance(values.dtype, pd.StringDtype):
            return [v if isinstance(v, str) else None for v in values.to_numpy(dtype=object).tolist()]
    from larder.training.assemble import _key_array

    src = plan.source
    step = src.step
    frame = caller.frame
    arrays = {k: _key_array(frame[c], step, j, where=src.where)
              for j, (c, k) in enumerate(zip(step.lookup_key, step.table_keys, strict=True))}
    return prepare_keys(src.table, pa.table(arrays))


@dataclass
class LeanResult:
    """Looked-up outputs of a lean lookup: numeric ones in matrices, the rest as Arrow arrays."""

    n: int
    #: (output names, Arrow type, values (outputs, rows), nulls or None); floats hold NaN at nulls
    blocks: list[tuple[list[str], pa.DataType, np.ndarray, np.ndarray | None]]
    arrays: dict[str, pa.Array]
    found: dict[str, np.ndarray]
    _where: dict[str, tuple[int, int]] | None = None

    @property
    def where(self) -> dict[str, tuple[int, int]]:
        """Output name -> (block index, row) for the outputs held in blocks."""
        if self._where is None:
            self._where = {name: (b, r) for b, (names, *_rest) in enumerate(self.blocks)
                           for r, name in enumerate(names)}
        return self._where

    def pandas_values(self, name: str) -> Any:
        """One output as pandas would hold it (what the general path's ``pandas_values`` gives)."""
        hit = self.where.get(name)
        if hit is not None:
            return self.blocks[hit[0]][2][hit[1]]
        return pandas_values(self.arrays[name])

    def __contains__(self, name: object) -> bool:
        return name in self.where or name in self.arrays


def lean_lookup(asm: OnlineFeatureAssembler, plan: LeanPlan, caller: Caller) -> LeanResult:
    """Key lookups and defaults for ``caller`` (validated key columns, rows 0..n-1)."""
    n = caller.n
    blocks: list[tuple[list[str], pa.DataType, np.ndarray, np.ndarray | None]] = []
    arrays: dict[str, pa.Array] = {}
    found: dict[str, np.ndarray] = {}
    encoded: dict[tuple[Any, ...], list[str | None]] = {}
    for sp in plan.sources:
        src = sp.source
        pks = encoded.get(sp.key_id)
        if pks is None:
            pks = encoded[sp.key_id] = _encoded_keys(asm, sp, caller)
        batch = src.store.read_values(src.table, pks, sp.read)
        hit = batch.found
        found[src.label] = hit
        miss = (None if hit[0] else ~hit) if n == 1 else (None if hit.all() else ~hit)
        if miss is not None and asm.on_missing == "error":
            asm._check_missing(caller.frame, src, hit)
        for block in batch.blocks:
            _add_block(sp, block.type, block.names, block.values, block.nulls, miss, blocks, arrays)
        if batch.arrays:
            mask = None if miss is None else pa.array(hit)
            from larder.training.assemble import _fill

            for name, arr in batch.arrays.items():
                spec_out = sp.outputs.get(name)
                if spec_out is None:
                    continue
                out, typ, default = spec_out
                if not arr.type.equals(typ):
                    arr = arr.cast(typ)
                if mask is not None and default is not None:
                    arr = _fill(arr, mask, default, typ)
                arrays[out] = arr
    return LeanResult(n, blocks, arrays, found)


def _add_block(sp: _SourcePlan, typ: pa.DataType, names: tuple[str, ...], values: np.ndarray,
               nulls: np.ndarray | None, miss: np.ndarray | None,
               blocks: list[tuple[list[str], pa.DataType, np.ndarray, np.ndarray | None]],
               arrays: dict[str, pa.Array]) -> None:
    """Defaults into a store's block, then keep the rows pandas holds as numbers in ``blocks``."""
    bm = _block_map(sp, names, typ)
    if not bm.outs:
        return
    if bm.retyped:
        # a feature whose type was widened after the spec was pinned: go through Arrow's cast
        for r, (out, t, default) in zip(bm.rows or range(len(names)), bm.outs, strict=True):
            mask = None if nulls is None or not nulls[r].any() else nulls[r]
            arr = pa.array(values[r], type=typ, mask=mask).cast(t)
            if miss is not None and default is not None:
                arr = pc.if_else(pa.array(~miss), arr, pa.scalar(default, type=t))
            arrays[out] = arr
        return
    if bm.rows is not None:
        values = values[bm.rows]
        nulls = None if nulls is None else nulls[bm.rows]
    elif not values.flags.writeable:
        values = values.copy()
    if nulls is not None and not nulls.flags.writeable:
        nulls = nulls.copy()
    if miss is not None:
        if nulls is None:  # stores flag missing keys' values as null; be sure of it
            nulls = np.zeros(values.shape, dtype=bool)
            nulls[:, miss] = True
        for j, default in bm.defaults:
            values[j, miss] = default
            nulls[j, miss] = False
        if not nulls.any():
            nulls = None
    names_out = bm.names
    if nulls is None:
        blocks.append((names_out, typ, values, None))
        return
    if pa.types.is_floating(typ):
        values[nulls] = np.nan  # what pandas holds for a null float
        blocks.append((names_out, typ, values, nulls))
        return
    # integers and booleans with nulls: pandas holds them as float64 / object; let Arrow convert those
    has_null = [bool(row.any()) for row in nulls]
    keep = [j for j in range(len(names_out)) if not has_null[j]]
    for j in range(len(names_out)):
        if has_null[j]:
            arrays[names_out[j]] = pa.array(values[j], type=typ, mask=nulls[j])
    if keep:
        blocks.append(([names_out[j] for j in keep], typ, values[keep], None))


def frame_column(frame: pd.DataFrame, name: str) -> Any:
    """The values (numpy or extension array) of one column; ``frame[name]`` builds a Series, ten times
    slower for a small frame than asking the block manager (used when this pandas has it)."""
    get = getattr(getattr(frame, "_mgr", None), "iget_values", None)
    if get is not None:
        loc = frame.columns.get_loc(name)
        if isinstance(loc, int):
            return get(loc)
    return frame[name].array


def pandas_values(arr: pa.Array) -> Any:
    """An Arrow column as pandas would hold it after ``arr.to_pandas()`` (what the offline assembly
    does), taking numpy's zero-copy route for numbers and booleans, the fast and common case."""
    t = arr.type
    if (pa.types.is_floating(t) or ((pa.types.is_integer(t) or pa.types.is_boolean(t)) and not arr.null_count)):
        return arr.to_numpy(zero_copy_only=False)
    return arr.to_pandas().array


# -- frames -------------------------------------------------------------------------------------


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


# -- feature functions ----------------------------------------------------------------------------


def _exact_type(t: pa.DataType) -> bool:
    """Types whose values survive the general path's Arrow -> pandas -> Python round trip unchanged
    when there are no nulls (nor NaN), so that Arrow's ``to_pylist()`` gives what ``py_values`` gives."""
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_string(t) or pa.types.is_large_string(t))


def _arrow_python(arr: pa.Array) -> tuple[Any, list[Any]] | None:
    """(kind, Python values) of an Arrow column without nulls or NaN, of an exact type; else None."""
    t = arr.type
    if arr.null_count or not _exact_type(t):
        return None
    if pa.types.is_floating(t) and np.isnan(arr.to_numpy(zero_copy_only=False)).any():
        return None
    # numbers and booleans without nulls are numpy columns in pandas: the same kind as numpy values
    kind = ("arrow", t) if pa.types.is_string(t) or pa.types.is_large_string(t) else np.dtype(t.to_pandas_dtype())
    return kind, arr.to_pylist()


def _numpy_python(values: Any) -> tuple[Any, list[Any]] | None:
    """(kind, Python values) of a pandas column's values (numpy numbers and booleans, or pandas
    strings) without nulls or NaN; else None."""
    if isinstance(values, np.ndarray):
        kind = values.dtype.kind
        if kind in "iub" or (kind == "f" and not np.isnan(values).any()):
            return values.dtype, values.tolist()
        return None
    if isinstance(values, pd.api.extensions.ExtensionArray) and isinstance(values.dtype, pd.StringDtype):
        arr = pa.array(values, from_pandas=True)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if arr.null_count:
            return None
        return ("pandas", str(values.dtype), values.dtype.storage), arr.to_pylist()
    return None


def _exact_result(arr: pa.Array | np.ndarray) -> bool:
    if isinstance(arr, np.ndarray):  # run_rows' numbers and booleans, never null nor NaN
        return True
    return _arrow_python(arr) is not None if pa.types.is_floating(arr.type) else (
        not arr.null_count and _exact_type(arr.type))


def apply_functions(asm: OnlineFeatureAssembler, caller: Caller, res: LeanResult) -> dict[str, Any]:
    """The spec's feature functions on a lean lookup's rows: ``{output: values}``, in spec order.

    Values are an Arrow array when its type and values make the general path's pandas round trip
    exact (numbers, booleans and strings without nulls), else the pandas Series the general path holds.

    With at most :data:`ROW_CALLS_MAX_ROWS` rows and inputs without nulls, a function is called once
    per row on plain Python values (:meth:`~larder.training.execute.FunctionRunner.run_rows`): its
    meaning, typed as the Series route types it. Otherwise (and when ``run_rows`` declines: the first
    call for inputs of given kinds in ``mode="auto"``, a raising row, ``mode="vectorized"``), it runs as
    on the general path (``run_arrow`` on Series of the same dtypes), which also teaches ``run_rows``
    the typing for those kinds of inputs."""
    n = res.n
    out: dict[str, Any] = {}
    python: dict[str, tuple[Any, list[Any]] | None] = {}
    series: dict[str, pd.Series] = {}
    key_series: dict[str, pd.Series] | None = None

    def python_of(c: str) -> tuple[Any, list[Any]] | None:
        if c in python:
            return python[c]
        v = out.get(c)
        if v is not None:
            got = (_arrow_python(v) if isinstance(v, pa.Array) else _numpy_python(v) if isinstance(v, np.ndarray)
                   else None)
        elif c in caller:
            got = _numpy_python(caller.values(c))
        elif c in res.where:
            b, r = res.where[c]
            got = _numpy_python(res.blocks[b][2][r])
        elif c in res.arrays:
            got = _arrow_python(res.arrays[c])
        else:
            got = None
        python[c] = got
        return got

    def column(c: str) -> pd.Series:
        s = series.get(c)
        if s is None:
            v = out.get(c)
            if isinstance(v, pd.Series):
                s = v
            elif isinstance(v, np.ndarray):
                s = pd.Series(v, name=c, copy=False)
            elif v is not None:
                s = v.to_pandas()
                s.name = c
            else:
                values = caller.values(c) if c in caller else res.pandas_values(c)
                s = pd.Series(values, name=c, copy=False)
            series[c] = s
        return s

    for position, step in asm._functions:
        runner = step.runner
        bindings = step.input_bindings
        arr = None
        kinds = None
        if n <= ROW_CALLS_MAX_ROWS and runner.mode != "vectorized" and n > 0:
            got = [python_of(c) for c in bindings.values()]
            if all(g is not None for g in got):
                kinds = tuple((p, g[0]) for p, g in zip(bindings, got, strict=True))  # type: ignore[index]
                arr = runner.run_rows({p: g[1] for p, g in zip(bindings, got, strict=True)},  # type: ignore[index]
                                      n, kinds)
        if arr is None:
            missing = [c for c in bindings.values() if c not in out and c not in caller and c not in res]
            if missing:  # validate_frame rules this out; kept as the offline path's message
                from larder.errors import FunctionError
                from larder.training.resolve import describe_step

                raise FunctionError(f"{describe_step(position, step)}: input column(s) {missing} are missing.")
            if key_series is None:
                key_series = {c: column(c) for c in asm._key_columns if c in caller or c in res}
            arr = runner.run_arrow({p: column(c) for p, c in bindings.items()}, n, key_series or None,
                                   learn=kinds)
        name = step.output_name
        python.pop(name, None)
        series.pop(name, None)
        if _exact_result(arr):
            out[name] = arr
        else:
            assert isinstance(arr, pa.Array)
            result = arr.to_pandas()
            result.name = name
            out[name] = result
    return out


def _pandas_of_function(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v
    return pandas_values(v) if isinstance(v, pa.Array) else v.array


def _python_of_function(v: Any) -> list[Any]:
    if isinstance(v, (np.ndarray, pa.Array)):
        return v.tolist() if isinstance(v, np.ndarray) else v.to_pylist()  # type: ignore[no-any-return]
    return pa.array(v, from_pandas=True).to_pylist()  # type: ignore[no-any-return]


def _arrow_of_function(v: Any) -> pa.Array:
    """What the general path's Arrow output holds for a function output: its pandas column through
    ``pa.array(..., from_pandas=True)``."""
    if isinstance(v, np.ndarray):
        return pa.array(v)
    return pa.array(v.to_pandas() if isinstance(v, pa.Array) else v, from_pandas=True)


# -- outputs --------------------------------------------------------------------------------------


def to_pandas(res: LeanResult, caller: Caller, ordered: list[str], functions: dict[str, Any],
              found_columns: list[tuple[str, np.ndarray]], index: pd.Index, labels: pd.Index,
              layouts: dict[tuple[Any, ...], _Layout] | None = None) -> pd.DataFrame:
    """The output frame in one construction: the looked-up matrices, the caller's columns and the
    function outputs of one numpy dtype become one pandas block. ``layouts``: a cache of where each
    column comes from (:attr:`LeanPlan.layouts`)."""
    others, per_block = _layout(res, ordered, layouts)
    parts: list[tuple[int, Any]] = []
    for i, c in others:
        if c in functions:
            parts.append((i, _pandas_of_function(functions[c])))
        elif c in res.arrays:
            parts.append((i, pandas_values(res.arrays[c])))
        else:
            parts.append((i, caller.values(c)))
    base = len(ordered)
    for i, (_name, mask) in enumerate(found_columns):
        parts.append((base + i, mask))
    blocks = []
    for (_names, _typ, values, _nulls), placed in zip(res.blocks, per_block, strict=True):
        if placed is None:
            continue
        positions, rows = placed
        blocks.append((values if rows is None else values[rows], positions.copy()))
    return frame_at(parts, blocks, index, labels)


def _caller_list(caller: Caller, name: str) -> list[Any]:
    given = caller.pylist(name)
    if given is not None:  # ints, floats, or strings and None: what the frame's column gives back,
        return [None if v != v else v for v in given] if caller.kind(name) == "float" else list(given)  # NaN: null
    values = caller.values(name)
    if isinstance(values, np.ndarray) and values.dtype.kind in "iub":
        return values.tolist()  # type: ignore[no-any-return]
    return pa.array(caller.frame[name], from_pandas=True).to_pylist()  # type: ignore[no-any-return]


def _dict_prefix(res: LeanResult, caller: Caller, ordered: list[str]) -> int:
    """How many of the ``ordered`` output columns are the caller's columns then every block's outputs
    in the blocks' order (the usual layout, which ``to_dict`` builds with one update per block)."""
    names = list(caller.names)
    if ordered[: len(names)] != names:
        return 0
    for block_names, *_rest in res.blocks:
        names += block_names
    return len(names) if ordered[: len(names)] == names else 0


def to_dict(res: LeanResult, caller: Caller, ordered: list[str], functions: dict[str, Any],
            found_columns: list[tuple[str, np.ndarray]], layouts: dict[Any, Any] | None = None) -> dict[str, list[Any]]:
    """``{column: [Python values]}``: what ``to_pydict()`` of the Arrow output gives. ``layouts``: a
    cache for the output layout (see :func:`_dict_prefix`)."""
    out: dict[str, list[Any]] = {}
    lists_of: list[list[list[Any]]] = []
    for _names, _typ, values, nulls in res.blocks:
        lists = values.tolist()
        if nulls is not None:
            for j, row in enumerate(lists):
                for i in np.flatnonzero(nulls[j]).tolist():
                    row[i] = None
        lists_of.append(lists)
    key = None
    prefix = -1
    if layouts is not None:
        # the block outputs' names are lists owned by the plan, so their identities name the layout
        key = ("dict", id(ordered), caller.names, *(id(names) for names, *_rest in res.blocks))
        hit = layouts.get(key)
        if hit is not None and hit[0] is ordered:
            prefix = hit[1]
    if prefix < 0:
        prefix = _dict_prefix(res, caller, ordered)
        if key is not None and len(layouts) < 64:  # type: ignore[arg-type]
            layouts[key] = (ordered, prefix, [names for names, *_rest in res.blocks])  # type: ignore[index]
    block_lists: dict[str, list[Any]] = {}
    if prefix:  # the usual layout: caller's columns, then whole blocks in order, then the rest
        for c in caller.names:
            out[c] = _caller_list(caller, c)
        target, rest = out, ordered[prefix:]
    else:
        target, rest = block_lists, ordered
    for (names, *_rest), lists in zip(res.blocks, lists_of, strict=True):
        target.update(zip(names, lists, strict=True))
    for c in rest:
        if c in block_lists:
            out[c] = block_lists[c]
        elif c in res.arrays:
            out[c] = res.arrays[c].to_pylist()
        elif c in functions:
            out[c] = _python_of_function(functions[c])
        else:
            out[c] = _caller_list(caller, c)
    for name, mask in found_columns:
        out[name] = mask.tolist()
    return out


def to_arrow(res: LeanResult, caller: Caller, ordered: list[str], functions: dict[str, Any],
             found_columns: list[tuple[str, np.ndarray]]) -> pa.Table:
    """The output as an Arrow table (the general path's ``assemble_arrow`` table plus found columns)."""
    arrays = []
    for c in ordered:
        hit = res.where.get(c)
        if hit is not None:
            _names, typ, values, nulls = res.blocks[hit[0]]
            mask = None if nulls is None or not nulls[hit[1]].any() else nulls[hit[1]]
            arrays.append(pa.array(values[hit[1]], type=typ, mask=mask))
        elif c in res.arrays:
            arrays.append(res.arrays[c])
        else:
            arrays.append(_arrow_of_function(functions[c]) if c in functions
                          else pa.array(caller.frame[c], from_pandas=True))
    names = list(ordered)
    for name, mask in found_columns:
        arrays.append(pa.array(mask))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


__all__ = ["LEAN_MAX_ROWS", "ROW_CALLS_MAX_ROWS", "Caller", "LeanPlan", "LeanResult", "apply_functions", "build_plan",
           "lean_lookup", "python_arrays", "to_arrow", "to_dict", "to_pandas"]
