"""Profiling speed: larder's profile beside pandas and DuckDB doing comparable work.

The frame has N rows and F features (three quarters float, the rest 50-level strings; 1% nulls). The
contenders compute, for every column, the non-null count, nulls, distinct count, mean, std, 7
quantiles and a 20-bin histogram (numeric) or the top 10 values (categorical):

* ``larder``: ``larder.quality.profile(df)`` over all rows (numpy: one sort per numeric column,
  everything read off the sorted values; pyarrow ``value_counts`` for categoricals; exact distinct
  counts; columns in parallel threads);
* ``larder sampled``: the same on a 100,000-row sample, as profiling on write does by default;
* ``pandas``: ``df.describe(percentiles=...)`` plus, per column, ``isna().sum()``, ``nunique()`` and
  ``np.histogram`` (numeric) or ``value_counts().head(10)`` (categorical);
* ``duckdb, same statistics``: the raw engine doing the same work in three statements (one
  ``SELECT`` of count / ``approx_count_distinct`` / avg / stddev / min / max / ``quantile_cont`` for
  every column, one of every ``histogram``, one ``UNION ALL`` of every top-10 ``GROUP BY``);
* ``duckdb SUMMARIZE``: the raw engine's one-statement summary (approximate quantiles, no
  histograms or top values), for reference.

It also times ``larder.quality.validate`` of 8 expectations (pandera) on the same frame. Runs are
interleaved so that noise on a shared machine hits every contender; medians are reported.

    python benchmarks/profiling.py --rows 1_000_000 --features 20 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")

from larder.quality import (  # noqa: E402
    allowed_values,
    in_range,
    matches_pattern,
    not_null,
    profile,
    row_count,
    unique,
    validate,
)

QUANTILES = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]


def make_frame(rows: int, features: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_cat = max(1, features // 4)
    data: dict[str, Any] = {}
    for i in range(features - n_cat):
        col = rng.normal(i, 1 + i % 3, rows)
        col[rng.random(rows) < 0.01] = np.nan
        data[f"num_{i}"] = col
    levels = np.array([f"L{j:02d}" for j in range(50)])
    for i in range(n_cat):
        codes = rng.integers(0, 50, rows)
        s = pd.Series(levels[codes], dtype="str")
        data[f"cat_{i}"] = s.where(rng.random(rows) >= 0.01)
    return pd.DataFrame(data)


def pandas_profile(df: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {"describe": df.describe(percentiles=QUANTILES)}
    for c in df.columns:
        s = df[c]
        entry: dict[str, Any] = {"nulls": int(s.isna().sum()), "distinct": int(s.nunique())}
        if pd.api.types.is_numeric_dtype(s.dtype):
            v = s.dropna().to_numpy()
            entry["hist"] = np.histogram(v, bins=20)
        else:
            entry["top"] = s.value_counts().head(10)
        out[c] = entry
    return out


def duckdb_profile(df: pd.DataFrame) -> Any:
    import duckdb
    import pyarrow as pa

    num = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c].dtype)]
    cat = [c for c in df.columns if c not in num]
    con = duckdb.connect()
    try:
        con.register("t", pa.Table.from_pandas(df, preserve_index=False))
        ql = "[" + ", ".join(map(str, QUANTILES)) + "]"
        parts = [f'count("{c}"), approx_count_distinct("{c}")' for c in df.columns]
        parts += [f'avg("{c}"), stddev_samp("{c}"), min("{c}"), max("{c}"), quantile_cont("{c}", {ql})'
                  for c in num]
        row = con.execute("SELECT " + ", ".join(parts) + " FROM t").fetchone()
        assert row is not None
        base = 2 * len(df.columns)
        hists = []
        for i, c in enumerate(num):
            lo, hi = row[base + 5 * i + 2], row[base + 5 * i + 3]
            w = (hi - lo) / 20 or 1.0
            hists.append(f'histogram(least(greatest(floor(("{c}" - {lo!r}) / {w!r}), 0), 19)::INTEGER) '
                         f'FILTER (WHERE "{c}" IS NOT NULL)')
        con.execute("SELECT " + ", ".join(hists) + " FROM t").fetchone()
        tops = " UNION ALL ".join(
            f'SELECT * FROM (SELECT {i} AS col, "{c}" AS v, count(*) AS n FROM t WHERE "{c}" IS NOT NULL '
            f"GROUP BY 2 ORDER BY n DESC, v LIMIT 10)" for i, c in enumerate(cat))
        return con.execute(tops).fetchall() if tops else None
    finally:
        con.close()


def duckdb_summarize(df: pd.DataFrame) -> Any:
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    try:
        con.register("t", pa.Table.from_pandas(df, preserve_index=False))
        return con.execute("SUMMARIZE t").fetchall()
    finally:
        con.close()


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def machine() -> dict[str, Any]:
    import duckdb
    import pandera

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gb = None
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
            mem_gb = round(kb / 1024**2, 1)
    except (OSError, StopIteration):
        pass
    return {"nproc": os.cpu_count(), "mem_gb": mem_gb, "cpu": cpu, "python": platform.python_version(),
            "pandas": pd.__version__, "numpy": np.__version__, "duckdb": duckdb.__version__,
            "pandera": pandera.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()

    df = make_frame(args.rows, args.features)
    num0, cat0 = df.columns[0], df.columns[-1]
    expectations = [not_null(num0, max_fraction=0.02), in_range(num0, min=-100, max=100),
                    not_null(cat0, max_fraction=0.02), allowed_values(cat0, [f"L{j:02d}" for j in range(50)]),
                    matches_pattern(cat0, r"L\d\d"), unique([num0, df.columns[1]]), row_count(min=1),
                    in_range(df.columns[1], min=-1000)]
    contenders: dict[str, Callable[[], Any]] = {
        "larder profile (all rows)": lambda: profile(df),
        "larder profile (100k-row sample)": lambda: profile(df, sample_rows=100_000),
        "pandas describe + value_counts": lambda: pandas_profile(df),
        "duckdb, same statistics": lambda: duckdb_profile(df),
        "duckdb SUMMARIZE (raw engine)": lambda: duckdb_summarize(df),
        "larder validate, 8 expectations": lambda: validate(df, expectations),
    }
    for fn in contenders.values():  # warm-up: imports, caches
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.repeats):
        for name, fn in contenders.items():
            times[name].append(timed(fn))

    base = statistics.median(times["pandas describe + value_counts"])
    result = {
        "benchmark": "profile",
        "rows": args.rows,
        "features": args.features,
        "repeats": args.repeats,
        "machine": machine(),
        "median_seconds": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "all_seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "speedup_vs_pandas": {k: round(base / statistics.median(v), 2) for k, v in times.items()},
    }
    print(json.dumps(result, indent=2))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=2)

    print(f"\n{args.rows:,} rows x {args.features} features, median of {args.repeats}")
    print(f"{'contender':<36} {'median s':>9} {'vs pandas':>10}")
    for k in contenders:
        med = statistics.median(times[k])
        print(f"{k:<36} {med:>9.3f} {base / med:>9.2f}x")


if __name__ == "__main__":
    main()
