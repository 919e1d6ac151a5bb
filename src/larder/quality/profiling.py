"""Per-feature statistics of a DataFrame, computed by DuckDB in two scans.

The first scan computes, for every column at once, the non-null count, distinct count, mean, standard
deviation, min, max and quantiles; the second computes every numeric column's histogram (equal-width
bins between the min and max found by the first) and every categorical column's top values. Frames
larger than ``sample_rows`` are profiled on a uniform random sample of that many rows (``row_count``
keeps the full size, ``profiled_rows`` the sample size).

Conventions: NaN counts as null for numeric columns; infinities count as values (``infinite``) but
are left out of the distinct count, moments, quantiles, min, max and histogram; booleans, strings and dictionary (category) columns are categorical;
timestamps and dates get count, nulls, distinct, min and max. Distinct counts are exact up to
``exact_distinct_below`` rows and HyperLogLog estimates above (DuckDB's ``approx_count_distinct``,
typically within 10 per cent; an exact count costs 20 times more). On a sample, the distinct count
is the sample's (an estimate too, always computed with HyperLogLog).

>>> import pandas as pd
>>> p = profile(pd.DataFrame({"x": [1.0, 2.0, None, 4.0], "c": ["a", "b", "a", None]}))
>>> p.column("x").nulls, p.column("x").mean, p.column("c").top_values[0].value
(1, 2.3333333333333335, 'a')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.types as pat
from pydantic import BaseModel, Field

from larder.errors import ConfigError

if TYPE_CHECKING:  # duckdb is imported when profiling
    import duckdb

Kind = Literal["numeric", "categorical", "datetime", "other"]
QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
DEFAULT_BINS = 20
DEFAULT_TOP_K = 10
EXACT_DISTINCT_BELOW = 100_000


class Histogram(BaseModel):
    """Equal-width bins: ``counts[i]`` values fall in ``[edges[i], edges[i+1])`` (last bin closed)."""

    edges: list[float]
    counts: list[int]


class ValueCount(BaseModel):
    value: str
    count: int


class ColumnProfile(BaseModel):
    """Statistics of one column (numeric fields are ``None`` for other kinds)."""

    name: str
    dtype: str
    kind: Kind
    count: int
    nulls: int
    null_fraction: float
    distinct: int | None = None
    distinct_approximate: bool = False
    infinite: int = 0
    mean: float | None = None
    std: float | None = None
    min: float | str | None = None
    max: float | str | None = None
    quantiles: dict[str, float] | None = None
    histogram: Histogram | None = None
    top_values: list[ValueCount] | None = None


class Profile(BaseModel):
    """Statistics of every profiled column of a frame; JSON-serialisable (``model_dump_json``)."""

    row_count: int
    profiled_rows: int
    sampled: bool
    created_at: datetime
    columns: list[ColumnProfile] = Field(default_factory=list)

    def column(self, name: str) -> ColumnProfile:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"Column {name!r} is not in this profile (columns: {[c.name for c in self.columns]}).")


def profile(
    data: Any,
    *,
    columns: Sequence[str] | None = None,
    sample_rows: int | None = None,
    bins: int = DEFAULT_BINS,
    top_k: int = DEFAULT_TOP_K,
    quantiles: Sequence[float] = QUANTILES,
    exact_distinct_below: int = EXACT_DISTINCT_BELOW,
    seed: int = 0,
) -> Profile:
    """Profile a pandas DataFrame or pyarrow Table.

    Parameters
    ----------
    data
        The frame to profile.
    columns
        Columns to profile (default: all).
    sample_rows
        Profile a uniform random sample of this many rows when the frame is larger (``None``: all rows).
    bins, top_k, quantiles
        Histogram bins per numeric column, top values kept per categorical column, quantiles computed.
    exact_distinct_below
        Count distinct values exactly when the whole frame has at most this many rows (and is not
        sampled), else estimate them.
    seed
        Seed of the sample, so that re-profiling the same data gives the same numbers.
    """
    if bins < 1 or top_k < 0:
        raise ConfigError(f"profile(): bins must be >= 1 and top_k >= 0, got bins={bins}, top_k={top_k}.")
    if any(not 0.0 <= q <= 1.0 for q in quantiles):
        raise ConfigError(f"profile(): quantiles must lie in [0, 1], got {list(quantiles)}.")
    table = to_arrow(data)
    if columns is not None:
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise ConfigError(f"profile(): columns {missing} are not in the data ({table.column_names}).")
        table = table.select(list(columns))
    row_count = table.num_rows
    sampled = sample_rows is not None and row_count > sample_rows
    if sampled:
        assert sample_rows is not None
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(row_count, size=sample_rows, replace=False))
        table = table.take(pa.array(idx))
    n = table.num_rows
    created = datetime.now(UTC).replace(tzinfo=None)
    if table.num_columns == 0:
        return Profile(row_count=row_count, profiled_rows=n, sampled=sampled, created_at=created)

    kinds = {f.name: _kind(f.type) for f in table.schema}
    names = list(table.column_names)
    ids = {name: f"c{i}" for i, name in enumerate(names)}  # SQL-safe aliases
    import duckdb

    con = duckdb.connect()
    try:
        con.register("raw", table)
        con.execute("CREATE VIEW v AS SELECT " + ", ".join(_view_expr(c, ids[c], kinds[c]) for c in names)
                    + " FROM raw")
        exact = not sampled and n <= exact_distinct_below
        stats = _summary(con, names, ids, kinds, exact, quantiles)
        hists, tops = _distributions(con, names, ids, kinds, stats, bins, top_k)
    finally:
        con.close()

    out = []
    for c in names:
        s = stats[c]
        kind = kinds[c]
        infinite = int(s.get("infinite") or 0)
        count = int(s["count"]) + infinite
        col = ColumnProfile(
            name=c, dtype=str(table.schema.field(c).type), kind=kind, count=count, nulls=n - count,
            null_fraction=(n - count) / n if n else 0.0,
            distinct=None if s.get("distinct") is None else int(s["distinct"]),
            distinct_approximate=not exact, infinite=infinite,
        )
        if kind == "numeric":
            col.mean, col.std = _f(s["mean"]), _f(s["std"])
            col.min, col.max = _f(s["min"]), _f(s["max"])
            qs = s["quantiles"]
            if qs is not None:
                col.quantiles = {_qname(q): float(v) for q, v in zip(quantiles, qs, strict=True)}
            col.histogram = hists.get(c)
        elif kind == "datetime":
            col.min, col.max = _iso(s["min"]), _iso(s["max"])
        elif kind == "categorical":
            col.top_values = tops.get(c, [])
        out.append(col)
    return Profile(row_count=row_count, profiled_rows=n, sampled=sampled, created_at=created, columns=out)


def to_arrow(data: Any) -> pa.Table:
    """A pyarrow Table from a pandas DataFrame or pyarrow Table (columns arrow can't type become text)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise ConfigError(f"Expected a pandas DataFrame or pyarrow Table, got {type(data).__name__}.")
    try:
        return pa.Table.from_pandas(data, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        arrays, fields = [], []
        for name in data.columns:
            series = data[name]
            try:
                arr = pa.array(series, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                arr = pa.array(series.map(lambda v: None if v is None else str(v)), type=pa.string())
            arrays.append(arr)
            fields.append(pa.field(str(name), arr.type))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


# ------------------------------------------------------------------------------------------- helpers
def _kind(t: pa.DataType) -> Kind:
    if pat.is_dictionary(t):
        return "categorical"
    if pat.is_boolean(t) or pat.is_string(t) or pat.is_large_string(t) or pat.is_string_view(t):
        return "categorical"
    if pat.is_integer(t) or pat.is_floating(t) or pat.is_decimal(t):
        return "numeric"
    if pat.is_timestamp(t) or pat.is_date(t):
        return "datetime"
    return "other"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _view_expr(name: str, alias: str, kind: Kind) -> str:
    col = _quote(name)
    if kind == "numeric":
        # finite values only (NaN, +-inf -> NULL), plus a flag column to count the infinities
        x = f"CAST({col} AS DOUBLE)"
        return f"CASE WHEN isfinite({x}) THEN {x} END AS {alias}, isinf({x}) AS {alias}_inf"
    if kind == "categorical":
        return f"CAST({col} AS VARCHAR) AS {alias}"
    if kind == "datetime":
        return f"{col} AS {alias}"
    return f"({col} IS NOT NULL) AS {alias}"


def _summary(con: duckdb.DuckDBPyConnection, names: list[str], ids: dict[str, str], kinds: dict[str, Kind],
             exact: bool, quantiles: Sequence[float]) -> dict[str, dict[str, Any]]:
    parts: list[tuple[str, str, str]] = []  # (column, stat, sql)
    qlist = "[" + ", ".join(repr(float(q)) for q in quantiles) + "]"
    for c in names:
        a, kind = ids[c], kinds[c]
        if kind == "other":
            parts.append((c, "count", f"count(*) FILTER (WHERE {a})"))
            continue
        parts.append((c, "count", f"count({a})"))
        parts.append((c, "distinct", f"count(DISTINCT {a})" if exact else f"approx_count_distinct({a})"))
        if kind == "numeric":
            parts += [
                (c, "infinite", f"count_if({a}_inf)"),
                (c, "mean", f"avg({a})"),
                (c, "std", f"stddev_samp({a})"),
                (c, "min", f"min({a})"),
                (c, "max", f"max({a})"),
                (c, "quantiles", f"quantile_cont({a}, {qlist})" if quantiles else "NULL"),
            ]
        elif kind == "datetime":
            parts += [(c, "min", f"min({a})"), (c, "max", f"max({a})")]
    row = con.execute("SELECT " + ", ".join(sql for _, _, sql in parts) + " FROM v").fetchone()
    assert row is not None
    stats: dict[str, dict[str, Any]] = {c: {} for c in names}
    for (c, stat, _), value in zip(parts, row, strict=True):
        stats[c][stat] = value
    return stats


def _distributions(con: duckdb.DuckDBPyConnection, names: list[str], ids: dict[str, str],
                   kinds: dict[str, Kind], stats: dict[str, dict[str, Any]], bins: int,
                   top_k: int) -> tuple[dict[str, Histogram], dict[str, list[ValueCount]]]:
    hists: dict[str, Histogram] = {}
    sql: list[str] = []
    plan: list[tuple[str, float, float, int]] = []
    for c in names:
        if kinds[c] != "numeric" or stats[c]["min"] is None:
            continue
        lo, hi = float(stats[c]["min"]), float(stats[c]["max"])
        a = ids[c]
        if hi <= lo:  # one distinct finite value: one bin
            hists[c] = Histogram(edges=[lo, hi], counts=[0])
            plan.append((c, lo, hi, 1))
            sql.append(f"count({a})")
            continue
        width = (hi - lo) / bins
        plan.append((c, lo, hi, bins))
        sql.append(
            # DuckDB's greatest/least skip NULLs, so nulls must be filtered out explicitly
            f"histogram(least(greatest(floor(({a} - {lo!r}) / {width!r}), 0), {bins - 1})::INTEGER) "
            f"FILTER (WHERE {a} IS NOT NULL)"
        )
    if sql:
        row = con.execute("SELECT " + ", ".join(sql) + " FROM v").fetchone()
        assert row is not None
        for (c, lo, hi, nb), value in zip(plan, row, strict=True):
            if nb == 1:
                hists[c] = Histogram(edges=[lo, hi], counts=[int(value or 0)])
                continue
            counts = [0] * nb
            for k, v in (value or {}).items():
                counts[int(k)] = int(v)
            edges = [lo + (hi - lo) * i / nb for i in range(nb)] + [hi]
            hists[c] = Histogram(edges=edges, counts=counts)

    tops: dict[str, list[ValueCount]] = {}
    cats = [c for c in names if kinds[c] == "categorical"]
    if cats and top_k > 0:
        union = " UNION ALL ".join(
            f"SELECT * FROM (SELECT {i} AS col, {ids[c]} AS value, count(*) AS n FROM v "
            f"WHERE {ids[c]} IS NOT NULL GROUP BY 2 ORDER BY n DESC, value LIMIT {int(top_k)})"
            for i, c in enumerate(cats)
        )
        for i, value, cnt in con.execute(union + " ORDER BY col, n DESC, value").fetchall():
            tops.setdefault(cats[i], []).append(ValueCount(value=str(value), count=int(cnt)))
    return hists, tops


def _f(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) or math.isinf(v) else v


def _iso(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime | date):
        return v.isoformat()
    return str(v)


def _qname(q: float) -> str:
    return f"p{round(q * 100, 4):g}"


__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_TOP_K",
    "EXACT_DISTINCT_BELOW",
    "QUANTILES",
    "ColumnProfile",
    "Histogram",
    "Profile",
    "ValueCount",
    "profile",
    "to_arrow",
]
