"""The output forms of an online assembly: a pandas frame, ``{column: [values]}``, an Arrow table.

:class:`Looked` holds what the lookups of one call gave, after defaults: numbers in 2-D numpy blocks
(one per type and lookup, as the stores hand them back), the rest as typed Arrow arrays. Each output
form is built from the blocks directly: a block becomes one pandas block, one ``tolist()`` call for
the dict output, or the Arrow arrays of the table output. Feature-function outputs come as numpy
arrays, Arrow arrays or pandas Series (see :func:`~larder.online.assemble.apply_functions`).

What each form holds is what the offline assembly's pandas frame holds, converted as pandas and Arrow
convert: the pandas form has the types ``arrow_array.to_pandas()`` gives, the Arrow form the spec's
types, the dict form the Arrow form's ``to_pydict()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from larder.online.frames import frame_at, pandas_values
from larder.online.keys import Caller

#: (output names, Arrow type, values (outputs, rows), nulls or None); a null's slot holds an arbitrary
#: number until :meth:`Looked.nan_at_nulls` (then NaN for floats, what pandas holds for a null float)
Block = tuple[list[str], pa.DataType, np.ndarray, np.ndarray | None]
#: (the output columns not held in a looked-up block: (position, name); per block of a Looked, None
#: when none of its rows is output, else (output positions, rows kept or None for all))
Layout = tuple[list[tuple[int, str]], list[tuple[np.ndarray, list[int] | None] | None]]


@dataclass
class Looked:
    """Looked-up outputs of one call, after defaults: numeric ones in matrices, the rest as Arrow arrays."""

    n: int
    blocks: list[Block]
    arrays: dict[str, pa.Array]
    found: dict[str, np.ndarray]
    _where: dict[str, tuple[int, int]] | None = None
    _filled: bool = False

    def nan_at_nulls(self) -> None:
        """NaN at the nulls of the float blocks (what pandas holds for a null float), once: for the
        forms that read the values there (pandas, feature functions); the dict and Arrow outputs read
        the null flags instead, so a serving call's dict output never pays for it."""
        if self._filled:
            return
        for _names, typ, values, nulls in self.blocks:
            if nulls is not None and pa.types.is_floating(typ):
                np.putmask(values, nulls, np.nan)
        self._filled = True

    @property
    def where(self) -> dict[str, tuple[int, int]]:
        """Output name -> (block index, row) for the outputs held in blocks."""
        if self._where is None:
            self._where = {name: (b, r) for b, (names, *_rest) in enumerate(self.blocks)
                           for r, name in enumerate(names)}
        return self._where

    def pandas_values(self, name: str) -> Any:
        """One output as pandas holds it (:func:`~larder.online.frames.pandas_values` of its Arrow array)."""
        hit = self.where.get(name)
        if hit is not None:
            self.nan_at_nulls()
            return self.blocks[hit[0]][2][hit[1]]
        return pandas_values(self.arrays[name])

    def __contains__(self, name: object) -> bool:
        return name in self.where or name in self.arrays


def _layout(res: Looked, ordered: list[str], cache: dict[tuple[Any, ...], Any]) -> Layout:
    """Where each output column of ``ordered`` comes from, for the blocks ``res`` holds (cached: it
    depends only on the column names)."""
    key = (tuple(ordered), tuple(tuple(names) for names, *_rest in res.blocks))
    hit: Layout | None = cache.get(key)
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
    if len(cache) < 64:
        cache[key] = hit
    return hit


def _pandas_of_function(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v
    return pandas_values(v) if isinstance(v, pa.Array) else v.array


def _python_of_function(v: Any) -> list[Any]:
    if isinstance(v, (np.ndarray, pa.Array)):
        return v.tolist() if isinstance(v, np.ndarray) else v.to_pylist()  # type: ignore[no-any-return]
    return pa.array(v, from_pandas=True).to_pylist()  # type: ignore[no-any-return]


def _arrow_of_function(v: Any) -> pa.Array:
    """A function output as the Arrow form holds it: its pandas column through ``pa.array(...,
    from_pandas=True)`` (NaN is null)."""
    if isinstance(v, np.ndarray):
        return pa.array(v)
    return pa.array(v.to_pandas() if isinstance(v, pa.Array) else v, from_pandas=True)


def to_pandas(res: Looked, caller: Caller, ordered: list[str], functions: dict[str, Any],
              found_columns: list[tuple[str, np.ndarray]], index: pd.Index, labels: pd.Index,
              layouts: dict[tuple[Any, ...], Any]) -> pd.DataFrame:
    """The output frame in one construction: the looked-up matrices, the caller's columns and the
    function outputs of one numpy dtype become one pandas block. ``layouts``: a cache of where each
    column comes from."""
    res.nan_at_nulls()
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


def _dict_prefix(res: Looked, caller: Caller, ordered: list[str]) -> tuple[int, Any]:
    """How many of the ``ordered`` output columns are the caller's columns then every block's outputs
    (the usual layout, which ``to_dict`` builds with one update per block), and the order of those
    outputs: None when it is the blocks' order, else an ``itemgetter`` picking them, in ``ordered``'s
    order, from the blocks' rows laid end to end (e.g. a declarative group's int64 block beside its
    float64 one, the spec's order interleaving them). ``(0, None)``: another layout."""
    names = list(caller.names)
    start = len(names)
    if ordered[:start] != names:
        return 0, None
    flat = [name for block_names, *_rest in res.blocks for name in block_names]
    end = start + len(flat)
    wanted = ordered[start:end]
    if wanted == flat:
        return end, None
    if len(set(flat)) == len(flat) and set(wanted) == set(flat):  # 2 or more outputs, in another order
        at = {name: i for i, name in enumerate(flat)}
        return end, itemgetter(*(at[name] for name in wanted))
    return 0, None


def to_dict(res: Looked, caller: Caller, ordered: list[str], functions: dict[str, Any],
            found_columns: list[tuple[str, np.ndarray]], layouts: dict[Any, Any]) -> dict[str, list[Any]]:
    """``{column: [Python values]}``: what ``to_pydict()`` of the Arrow output gives. ``layouts``: a
    cache for the output layout (see :func:`_dict_prefix`)."""
    out: dict[str, list[Any]] = {}
    lists_of: list[list[list[Any]]] = []
    for _names, _typ, values, nulls in res.blocks:
        lists = values.tolist()
        if nulls is not None:
            if nulls.shape[1] == 1:  # one row (the serving case): its flags as Python booleans
                for j, (null,) in enumerate(nulls.tolist()):
                    if null:
                        lists[j][0] = None
            else:
                rows, cols = np.nonzero(nulls)
                for j, i in zip(rows.tolist(), cols.tolist(), strict=True):
                    lists[j][i] = None
        lists_of.append(lists)
    # the block outputs' names are lists owned by the plan, so their identities name the layout
    key = ("dict", id(ordered), caller.names, *(id(names) for names, *_rest in res.blocks))
    hit = layouts.get(key)
    if hit is not None and hit[0] is ordered:
        prefix, pick, picked = hit[1], hit[2], hit[3]
    else:
        prefix, pick = _dict_prefix(res, caller, ordered)
        picked = ordered[len(caller.names):prefix]
        if len(layouts) < 64:
            layouts[key] = (ordered, prefix, pick, picked, [names for names, *_rest in res.blocks])
    block_lists: dict[str, list[Any]] = {}
    if prefix:  # the usual layout: caller's columns, then every block's outputs, then the rest
        for c in caller.names:
            out[c] = _caller_list(caller, c)
        target, rest = out, ordered[prefix:]
    else:
        target, rest = block_lists, ordered
    if pick is not None:  # the blocks' outputs in another order than theirs
        target.update(zip(picked, pick([lists for each in lists_of for lists in each]), strict=True))
    else:
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


def to_arrow(res: Looked, caller: Caller, ordered: list[str], functions: dict[str, Any],
             found_columns: list[tuple[str, np.ndarray]]) -> pa.Table:
    """The output as an Arrow table: the caller's columns, the outputs with the spec's types, the found
    columns."""
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


__all__ = ["Block", "Looked", "to_arrow", "to_dict", "to_pandas"]
