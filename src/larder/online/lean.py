"""The few-key path of :class:`~larder.online.lookup.OnlineFeatureAssembler`.

A lookup of a few keys (the serving case) spends most of its time on per-column work, not in the
store: building one typed Arrow array per feature, then one pandas column per feature. This path
reads through :meth:`~larder.online.base.OnlineStore.read_values`, which hands numeric features back
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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from larder.online.base import prepare_keys

if TYPE_CHECKING:
    from larder.online.lookup import OnlineFeatureAssembler, _Source

#: Lookups of at most this many rows take the lean path (the general one wins for large batches).
LEAN_MAX_ROWS = 1000


@dataclass(frozen=True)
class _SourcePlan:
    source: _Source
    #: feature name -> (output name, output type, default converted to a Python value or None)
    outputs: dict[str, tuple[str, pa.DataType, Any]]
    #: how the encoded keys are computed: ("int" | "str", frame column, numpy dtype) or None (general)
    simple_key: tuple[str, str, np.dtype[Any] | None] | None
    key_id: tuple[Any, ...]  # lookups with the same key columns and key types share their encoded keys
    read: list[str]  # features read: those whose outputs are kept or feed a feature function
    #: per (block names, block type) a store returned: how the block maps to outputs (see _block_map)
    block_maps: dict[tuple[Any, ...], _BlockMap] = field(default_factory=dict)


@dataclass(frozen=True)
class _BlockMap:
    rows: list[int] | None  # the block rows this lookup outputs (None: all, in order)
    outs: list[tuple[str, pa.DataType, Any]]  # (output, type, default) per kept row
    names: list[str]  # output names per kept row
    defaults: list[tuple[int, Any]]  # (kept row, default) for outputs with a default
    retyped: bool  # some output's type differs from the block's: cast through Arrow


def _block_map(sp: _SourcePlan, names: tuple[str, ...], typ: pa.DataType) -> _BlockMap:
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
    return hit


@dataclass(frozen=True)
class LeanPlan:
    """What a lean lookup needs that does not depend on the keys (built once per assembler)."""

    sources: list[_SourcePlan]


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


def _encoded_keys(asm: OnlineFeatureAssembler, plan: _SourcePlan, frame: pd.DataFrame) -> list[str | None]:
    """The encoded key of each row of ``frame`` for one lookup (what ``prepare_keys`` computes)."""
    if plan.simple_key is not None:
        from larder.online.lookup import _frame_column

        kind, column, dtype = plan.simple_key
        values = _frame_column(frame, column)
        if kind == "int" and isinstance(values, np.ndarray) and values.dtype == dtype:
            return [str(v) for v in values.tolist()]
        if kind == "str" and isinstance(values.dtype, pd.StringDtype):
            return [v if isinstance(v, str) else None for v in values.to_numpy(dtype=object).tolist()]
    from larder.training.assemble import _key_array

    src = plan.source
    step = src.step
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
        """One output as pandas would hold it (what the general path's ``_pandas_values`` gives)."""
        hit = self.where.get(name)
        if hit is not None:
            return self.blocks[hit[0]][2][hit[1]]
        from larder.online.lookup import _pandas_values

        return _pandas_values(self.arrays[name])

    def __contains__(self, name: object) -> bool:
        return name in self.where or name in self.arrays


def lean_lookup(asm: OnlineFeatureAssembler, plan: LeanPlan, frame: pd.DataFrame) -> LeanResult:
    """Key lookups and defaults for ``frame`` (a validated key frame with a 0..n-1 index)."""
    n = len(frame)
    blocks: list[tuple[list[str], pa.DataType, np.ndarray, np.ndarray | None]] = []
    arrays: dict[str, pa.Array] = {}
    found: dict[str, np.ndarray] = {}
    encoded: dict[tuple[Any, ...], list[str | None]] = {}
    for sp in plan.sources:
        src = sp.source
        pks = encoded.get(sp.key_id)
        if pks is None:
            pks = encoded[sp.key_id] = _encoded_keys(asm, sp, frame)
        batch = src.store.read_values(src.table, pks, sp.read)
        hit = batch.found
        found[src.label] = hit
        asm._check_missing(frame, src, hit)
        miss = None if hit.all() else ~hit
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


# -- outputs --------------------------------------------------------------------------------------


def to_pandas(res: LeanResult, frame: pd.DataFrame, ordered: list[str], functions: dict[str, pd.Series],
              found_columns: list[tuple[str, np.ndarray]], index: pd.Index, labels: pd.Index) -> pd.DataFrame:
    """The output frame; each looked-up matrix becomes one pandas block."""
    from larder.online.lookup import _block_frame, _frame_column, _pandas_values

    position = {c: i for i, c in enumerate(ordered)}
    data: list[tuple[int, Any]] = []
    for c in ordered:
        if c in functions:
            data.append((position[c], functions[c].array))
        elif c in res.arrays:
            data.append((position[c], _pandas_values(res.arrays[c])))
        elif c not in res.where:
            data.append((position[c], _frame_column(frame, c)))
    base = len(ordered)
    for i, (_name, mask) in enumerate(found_columns):
        data.append((base + i, mask))
    blocks = []
    for names, _typ, values, _nulls in res.blocks:
        placed = [(j, position[o]) for j, o in enumerate(names) if o in position]
        if not placed:
            continue
        if len(placed) != len(names):
            values = values[[j for j, _ in placed]]
        blocks.append((values, np.asarray([p for _, p in placed])))
    # _block_frame places ``data``'s columns, in order, at the positions the blocks leave free
    return _block_frame({str(p): v for p, v in data}, index, labels, blocks=blocks)


def _caller_list(frame: pd.DataFrame, name: str) -> list[Any]:
    from larder.online.lookup import _frame_column

    values = _frame_column(frame, name)
    if isinstance(values, np.ndarray) and values.dtype.kind in "iub":
        return values.tolist()  # type: ignore[no-any-return]
    return pa.array(frame[name], from_pandas=True).to_pylist()


def to_dict(res: LeanResult, frame: pd.DataFrame, ordered: list[str], functions: dict[str, pd.Series],
            found_columns: list[tuple[str, np.ndarray]]) -> dict[str, list[Any]]:
    """``{column: [Python values]}``: what ``to_pydict()`` of the Arrow output gives."""
    out: dict[str, list[Any]] = {}
    block_lists: dict[str, list[Any]] = {}
    for names, _typ, values, nulls in res.blocks:
        lists = values.tolist()
        if nulls is not None:
            for j, row in enumerate(lists):
                for i in np.flatnonzero(nulls[j]).tolist():
                    row[i] = None
        block_lists.update(zip(names, lists, strict=True))
    for c in ordered:
        if c in block_lists:
            out[c] = block_lists[c]
        elif c in res.arrays:
            out[c] = res.arrays[c].to_pylist()
        elif c in functions:
            out[c] = pa.array(functions[c], from_pandas=True).to_pylist()
        else:
            out[c] = _caller_list(frame, c)
    for name, mask in found_columns:
        out[name] = mask.tolist()
    return out


def to_arrow(res: LeanResult, frame: pd.DataFrame, ordered: list[str], functions: dict[str, pd.Series],
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
            arrays.append(pa.array(functions[c] if c in functions else frame[c], from_pandas=True))
    names = list(ordered)
    for name, mask in found_columns:
        arrays.append(pa.array(mask))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


__all__ = ["LEAN_MAX_ROWS", "LeanPlan", "LeanResult", "build_plan", "lean_lookup", "to_arrow", "to_dict",
           "to_pandas"]
