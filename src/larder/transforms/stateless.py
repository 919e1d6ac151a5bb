"""Stateless, engine-side column helpers: :func:`bins` and :func:`interactions`.

They take a pandas DataFrame or a pyarrow Table and return the same kind with new columns added
(computed with vectorised numpy; nothing is learned or stored). Use them when building feature
tables; use the fitted estimators in :mod:`larder.transforms.estimators` inside models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from larder.errors import TransformError
from larder.transforms._common import (
    as_arrow_table,
    check_ops,
    column_names,
    compute_interaction,
    frame_kind,
    interaction_name,
    require_columns,
    require_new_names,
    require_numeric,
    to_float_array,
)

__all__ = ["bin_edges", "bins", "interactions"]


def _values(df: Any, column: str) -> np.ndarray:
    if isinstance(df, pd.DataFrame):
        return to_float_array(df[column])
    return to_float_array(as_arrow_table(df).column(column))


def _with_columns(df: Any, new: dict[str, np.ndarray], kinds: dict[str, str] | None = None) -> Any:
    """``df`` plus the ``new`` columns (NaN -> null; ``kinds[name] == "int"`` gives nullable ints)."""
    kinds = kinds or {}
    if isinstance(df, pd.DataFrame):
        out = df.copy()
        for name, values in new.items():
            out[name] = pd.array(values, dtype="Int64") if kinds.get(name) == "int" else values
        return out
    table = as_arrow_table(df)
    for name, values in new.items():
        mask = np.isnan(values)
        if kinds.get(name) == "int":
            arr = pa.array(np.where(mask, 0, values).astype("int64"), mask=mask)
        else:
            arr = pa.array(values, mask=mask)
        table = table.append_column(name, arr)
    return table


def bin_edges(
    values: Any,
    n_bins: int = 5,
    strategy: Literal["uniform", "quantile"] = "quantile",
) -> np.ndarray:
    """Bin edges the way ``KBinsDiscretizer`` computes them (nulls ignored).

    ``uniform``: ``n_bins`` equal-width bins between min and max. ``quantile``: edges at the
    ``0, 1/n_bins, ..., 1`` quantiles (``method="averaged_inverted_cdf"``, scikit-learn's default),
    with bins narrower than 1e-8 removed, so fewer than ``n_bins`` bins may remain.
    """
    x = to_float_array(values)
    x = x[~np.isnan(x)]
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 2:
        raise TransformError(f"bins: n_bins must be an integer >= 2, got {n_bins!r}.")
    if x.size == 0:
        raise TransformError("bins: the column has no non-null values to compute bin edges from.")
    lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        return np.asarray([-np.inf, np.inf])
    if strategy == "uniform":
        return np.linspace(lo, hi, n_bins + 1)
    if strategy == "quantile":
        edges = np.percentile(x, np.linspace(0, 100, n_bins + 1), method="averaged_inverted_cdf")
        keep = np.ediff1d(edges, to_begin=np.inf) > 1e-8
        return np.asarray(edges[keep], dtype="float64")
    raise TransformError(f"bins: strategy must be 'uniform' or 'quantile', got {strategy!r}.")


def bins(
    df: Any,
    column: str,
    *,
    edges: Sequence[float] | None = None,
    n_bins: int = 5,
    strategy: Literal["uniform", "quantile"] = "quantile",
    name: str | None = None,
) -> Any:
    """Add the bin index of ``column`` (``0 .. k-1``) as a new integer column.

    Parameters
    ----------
    df : pandas.DataFrame or pyarrow.Table
    column : str
        A numeric column.
    edges : sequence of float, optional
        Explicit, strictly increasing bin edges (``k + 1`` edges make ``k`` bins). When omitted,
        edges come from this frame with :func:`bin_edges` (``n_bins``, ``strategy``).
    n_bins, strategy
        Used when ``edges`` is not given.
    name : str, optional
        Output column; default ``"{column}_bin"``.

    Returns
    -------
    The same kind of frame with the new column (nullable ``Int64`` in pandas, ``int64`` in Arrow).
    Bin ``i`` holds ``edges[i] <= x < edges[i+1]``; values below the first edge go to bin 0 and
    values at or above the last edge to the last bin (as in ``KBinsDiscretizer``); nulls stay null.

    Examples
    --------
    >>> import pandas as pd
    >>> bins(pd.DataFrame({"age": [5, 25, 70]}), "age", edges=[0, 18, 65, 120])["age_bin"].tolist()
    [0, 1, 2]
    """
    frame_kind(df, where="bins")
    require_columns(column_names(df), [column], where="bins")
    require_numeric(df, [column], where="bins", fix="Binning needs numbers; convert the column first.")
    out_name = name or f"{column}_bin"
    require_new_names(column_names(df), [out_name], where="bins")
    x = _values(df, column)
    if edges is None:
        cuts = bin_edges(x, n_bins=n_bins, strategy=strategy)
    else:
        cuts = np.asarray(list(edges), dtype="float64")
        if cuts.ndim != 1 or cuts.size < 2 or np.any(np.diff(cuts) <= 0) or np.isnan(cuts).any():
            raise TransformError(
                f"bins: edges for column {column!r} must be at least two strictly increasing numbers, "
                f"got {list(edges)!r}."
            )
    index = np.searchsorted(cuts[1:-1], x, side="right").astype("float64")
    index[np.isnan(x)] = np.nan
    return _with_columns(df, {out_name: index}, {out_name: "int"})


def interactions(
    df: Any,
    pairs: Sequence[tuple[str, str]],
    ops: Sequence[str] = ("ratio", "diff", "product"),
) -> Any:
    """Add ratio / difference / product columns for each pair of numeric columns.

    Output names are ``"a/b"``, ``"a-b"`` and ``"a*b"`` (the same names
    :class:`~larder.transforms.InteractionFeatures` gives). Division by zero and null operands give
    null (NaN in pandas), never an error or an infinity.

    Examples
    --------
    >>> import pandas as pd
    >>> out = interactions(pd.DataFrame({"a": [6.0, 1.0], "b": [3.0, 0.0]}), [("a", "b")], ops=("ratio",))
    >>> out["a/b"].tolist()
    [2.0, nan]
    """
    frame_kind(df, where="interactions")
    ops = check_ops(ops, where="interactions")
    if isinstance(pairs, str) or not all(not isinstance(p, str) and len(p) == 2 for p in pairs):
        raise TransformError(
            f"interactions: pairs must be a list of two-column pairs like [('a', 'b')], got {pairs!r}."
        )
    used = list(dict.fromkeys(c for pair in pairs for c in pair))
    require_columns(column_names(df), used, where="interactions")
    require_numeric(df, used, where="interactions", fix="Ratios, differences and products need numbers.")
    values = {c: _values(df, c) for c in used}
    new = {
        interaction_name(a, b, op): compute_interaction(values[a], values[b], op)
        for a, b in pairs
        for op in ops
    }
    require_new_names(column_names(df), list(new), where="interactions")
    if len(new) != len(pairs) * len(ops):
        raise TransformError("interactions: a pair is listed twice; remove the duplicate.")
    return _with_columns(df, new)
