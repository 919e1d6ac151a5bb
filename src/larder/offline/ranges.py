"""Numpy kernels for window aggregates over contiguous row ranges (the fast path of ``rolling`` and of
windowed ``min``/``max`` in :mod:`larder.offline.aggregate`).

Every window of every row is a half-open range ``[lo, hi)`` of positions in one array sorted by
(entity, time), so a window never leaves its entity. :func:`range_stats` answers all windows of all
rows at once with a *disjoint sparse table*, without a Python loop over rows:

* at level ``k`` every position ``i`` holds the state of the rest of its aligned ``2**k`` block from
  ``i`` (a suffix) and of the start of that block up to ``i`` (a prefix);
* a range ``[lo, hi)`` whose ends ``lo`` and ``hi - 1`` first differ in bit ``k`` is the level-``k``
  suffix at ``lo`` plus the level-``k`` prefix at ``hi - 1``: one merge per range and window;
* level ``k + 1`` follows from level ``k`` with one merge for half of the positions.

A state is ``(count, sum, reference, mean, M2, min, max)`` of the valid values, merged with Chan et
al.'s pairwise update for the mean and the sum of squared deviations ``M2`` (the update DuckDB's
segment trees use for ``stddev_samp``). No running sum over the whole array is ever differenced, so
there is no catastrophic cancellation: a constant window has a variance of exactly 0, and a window
after a level shift is as accurate as the same values alone. The mean is kept as ``reference +
offset``, where the reference is a value of the state's own range (a leaf's reference is its value,
its offset 0); a merge re-expresses the right offset against the left reference, a difference of
two nearby values, so a large common level such as ``1e9 + noise`` costs no precision either.

Ranges are local (a range of level ``k`` lies in one aligned block of ``2**(k + 1)`` rows), so the
work is done in cache-sized chunks of aligned blocks; memory stays a few arrays of the chunk size
beyond the inputs and outputs. Values must be finite where valid; nulls (``valid`` False) are
skipped.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np

__all__ = ["FIELDS", "floor_log2", "range_stats"]

#: The parts of a state: count, raw sum, reference value, mean offset from it, M2, min, max.
FIELDS = ("n", "s", "c", "m", "q", "min", "max")

State: TypeAlias = dict[str, np.ndarray]

#: Rows per chunk (rounded up to the largest aligned block a range needs).
CHUNK = 1 << 13
#: Below this half-block size, level updates loop over offsets with 1-D strided views.
_SHORT = 16


def floor_log2(lengths: np.ndarray) -> np.ndarray:
    """``floor(log2(x))`` per element, -1 where ``x`` is 0 (exact for ints below 2**53)."""
    return np.frexp(np.asarray(lengths, dtype="float64"))[1].astype("int64") - 1


def range_stats(
    values: np.ndarray,
    valid: np.ndarray,
    frames: list[tuple[np.ndarray, np.ndarray]],
    fields: set[str],
) -> list[State]:
    """Per frame ``(lo, hi)``: the requested parts of the state of the valid values in ``[lo, hi)``.

    Parameters
    ----------
    values : float64 array, finite where ``valid``
    valid : bool array, False for nulls
    frames : list of ``(lo, hi)`` int64 arrays, ranges inside ``[0, len(values)]``
    fields : the parts wanted, from :data:`FIELDS` (``n`` is always computed)

    Returns
    -------
    One dict per frame, ``{field: float64 array}``: ``n`` (0 for empty ranges), ``s`` (raw sum),
    ``c`` and ``m`` (the mean is ``c + m``), ``q`` (M2), ``min``/``max`` (NaN for ranges without
    valid values).

    Examples
    --------
    >>> x = np.array([1.0, 2.0, 4.0, 8.0])
    >>> lo, hi = np.array([0, 1, 2]), np.array([3, 4, 2])
    >>> [out] = range_stats(x, np.ones(4, bool), [(lo, hi)], {"s", "q", "max"})
    >>> out["n"].tolist(), out["s"].tolist(), out["q"].tolist(), out["max"].tolist()
    ([3.0, 3.0, 0.0], [7.0, 14.0, 0.0], [4.666666666666666, 18.666666666666664, 0.0], [4.0, 8.0, nan])
    """
    want = {"n", *fields} | ({"c", "m", "q"} if {"c", "m", "q"} & set(fields) else set())
    want = {f for f in FIELDS if f in want}
    size = len(values)
    longest = max((int((hi - lo).max()) for lo, hi in frames if len(lo)), default=0)
    # every range is shorter than 2**top + 1, so its ends lie in the same or in adjacent aligned
    # 2**top blocks: its level is the highest bit in which lo and hi - 1 differ, capped at top
    top = int(floor_log2(np.array([longest - 1]))[0]) + 1 if longest >= 2 else 0
    levels: list[np.ndarray] = []
    for lo, hi in frames:
        length = hi - lo
        xor_level = np.minimum(floor_log2(lo ^ np.maximum(hi - 1, 0)), top)
        levels.append(np.where(length >= 2, xor_level, np.where(length == 1, -1, -2)))
    chunk = max(CHUNK, 1 << (top + 1))
    halo = 1 << top  # a chunk's last ranges may end in the next aligned 2**top block
    outputs: list[State] = []
    for lo, _ in frames:
        out = {f: np.zeros(len(lo)) for f in want}
        for f in ("min", "max"):
            if f in out:
                out[f][:] = np.nan
        outputs.append(out)
    # rows of each frame ordered by lo, so each chunk's rows are one slice
    orders = [np.argsort(lo, kind="stable") if np.any(lo[1:] < lo[:-1]) else None for lo, _ in frames]
    sorted_lo = [lo if order is None else lo[order] for (lo, _), order in zip(frames, orders, strict=True)]
    for start in range(0, size, chunk):
        stop = min(start + chunk, size)
        todo = []
        for w, (lo, hi) in enumerate(frames):
            a, b = np.searchsorted(sorted_lo[w], [start, stop], side="left")
            order = orders[w]
            rows = np.arange(a, b) if order is None else order[a:b]
            rows = rows[levels[w][rows] >= -1]
            if len(rows):
                todo.append((w, rows, lo[rows] - start, hi[rows] - start, levels[w][rows]))
        if todo:
            end = min(stop + halo, size)
            _chunk(values[start:end], valid[start:end], want, top, todo, outputs)
    for out in outputs:
        for f in ("min", "max"):
            if f in out:
                out[f][out["n"] == 0] = np.nan
    return outputs


def _chunk(
    values: np.ndarray,
    valid: np.ndarray,
    want: set[str],
    top: int,
    todo: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    outputs: list[State],
) -> None:
    """Answer the ranges ``todo`` (chunk-relative) from one chunk's disjoint sparse table, built up
    to level ``top`` (prefixes and suffixes of aligned ``2**top`` blocks).

    All levels of the chunk are kept side by side in one ``(levels, padded)`` array per part, so the
    ranges of every level and window are answered with one gather per part and side.
    """
    top = max(0, min(top, max(int(lv.max()) for *_, lv in todo)))
    block = 1 << top
    padded = block * -(-len(values) // block)
    prefix: State = {f: np.empty((top + 1, padded)) for f in want}
    leaf = {f: a[0] for f, a in prefix.items()}
    _fill(leaf["n"], valid.astype("float64"), 0.0)
    if "s" in want:
        _fill(leaf["s"], np.where(valid, values, 0.0), 0.0)
    if "m" in want:
        _fill(leaf["c"], np.where(valid, values, 0.0), 0.0)
        leaf["m"][:] = 0.0
        leaf["q"][:] = 0.0
    if "min" in want:
        _fill(leaf["min"], np.where(valid, values, np.inf), np.inf)
    if "max" in want:
        _fill(leaf["max"], np.where(valid, values, -np.inf), -np.inf)
    suffix: State = {f: a.copy() for f, a in prefix.items()}
    for k in range(1, top + 1):
        for part in (prefix, suffix):
            for a in part.values():
                a[k] = a[k - 1]
        _next_level({f: a[k] for f, a in prefix.items()}, {f: a[k] for f, a in suffix.items()}, k - 1, padded)
    lo = np.concatenate([x for *_, x, _, _ in todo])
    hi = np.concatenate([x for *_, x, _ in todo])
    lv = np.concatenate([x for *_, x in todo])
    single = lv < 0  # one-row ranges: the leaf at lo (level 0 prefix and suffix are leaves)
    left = np.maximum(lv, 0) * padded + lo
    right = np.where(single, padded * (top + 1) - 1, np.maximum(lv, 0) * padded + hi - 1)
    left_state = {f: a.reshape(-1)[left] for f, a in suffix.items()}
    right_state = {f: a.reshape(-1)[right] for f, a in prefix.items()}
    if single.any():  # the right part of a one-row range is empty: the neutral state
        for f, a in right_state.items():
            a[single] = _NEUTRAL[f]
    merged = _combine(left_state, right_state)
    at = 0
    for w, r, *_ in todo:
        for f, a in merged.items():
            outputs[w][f][r] = a[at : at + len(r)]
        at += len(r)


#: The state of an empty range.
_NEUTRAL = {"n": 0.0, "s": 0.0, "c": 0.0, "m": 0.0, "q": 0.0, "min": np.inf, "max": -np.inf}


def _fill(target: np.ndarray, source: np.ndarray, fill: float) -> None:
    target[: len(source)] = source
    target[len(source) :] = fill


def _next_level(prefix: State, suffix: State, j: int, padded: int) -> None:
    """Turn the prefix/suffix states of aligned ``2**j`` blocks into those of ``2**(j+1)`` blocks,
    in place: each block's second half prepends its whole first half (the first half's last
    prefix), and its first half appends its whole second half (the second half's first suffix)."""
    half = 1 << j
    if half < _SHORT:  # short runs: one 1-D strided view per offset beats a 2-D view
        step = 2 * half
        first_whole = {f: a[half - 1 :: step].copy() for f, a in prefix.items()}
        second_whole = {f: a[half::step].copy() for f, a in suffix.items()}
        for r in range(half):
            right = slice(half + r, None, step)
            merged = _combine(first_whole, {f: a[right] for f, a in prefix.items()})
            for f, a in merged.items():
                prefix[f][right] = a
            left = slice(r, None, step)
            merged = _combine({f: a[left] for f, a in suffix.items()}, second_whole)
            for f, a in merged.items():
                suffix[f][left] = a
        return
    shape = (padded // (2 * half), 2, half)
    p3 = {f: a.reshape(shape) for f, a in prefix.items()}
    s3 = {f: a.reshape(shape) for f, a in suffix.items()}
    new_p = _combine({f: a[:, 0, -1:] for f, a in p3.items()}, {f: a[:, 1, :] for f, a in p3.items()})
    new_s = _combine({f: a[:, 0, :] for f, a in s3.items()}, {f: a[:, 1, :1] for f, a in s3.items()})
    for f, a in new_p.items():
        p3[f][:, 1, :] = a
    for f, a in new_s.items():
        s3[f][:, 0, :] = a


def _combine(left: State, right: State) -> State:
    """Merge two states (left then right); empty states (n 0, mean 0, M2 0, min +inf) are neutral."""
    na, nb = left["n"], right["n"]
    n = na + nb
    out: State = {"n": n}
    if "s" in left:
        out["s"] = left["s"] + right["s"]
    if "m" in left:
        # the right offset against the left reference (an empty left side takes the right's)
        ref = np.where(na > 0, left["c"], right["c"])
        weight = nb / np.maximum(n, 1.0)
        delta = right["m"] + (right["c"] - ref) - left["m"]
        out["c"] = ref
        out["m"] = left["m"] + delta * weight
        out["q"] = left["q"] + right["q"] + delta * delta * na * weight
    if "min" in left:
        out["min"] = np.minimum(left["min"], right["min"])
    if "max" in left:
        out["max"] = np.maximum(left["max"], right["max"])
    return out
