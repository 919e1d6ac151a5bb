"""larder.transforms.rolling (numpy window kernels) beside pandas groupby().rolling().

Both compute the same features: for each row, mean/std/min/max of ``value`` over the same entity's
rows in the past 7, 30 and 90 days (``[t - span, t)``: the current row excluded), or over the last
3/10/50 rows with ``--windows rows``, on an unsorted frame, returned in the input's row order.

pandas side: ``sort_values([entity, ts])``, ``groupby(entity).rolling(span, on=ts, closed="left",
min_periods=1)`` per statistic (the idiomatic way), then the results re-aligned to the input order.
Both outputs are compared on a random sample of rows before anything is reported.

The data: ``--rows`` rows over ``--entities`` entities (default rows / 100), each entity's events a
strictly increasing series (gaps of 1 s to 7.3 days, about a year in all), rows shuffled.

    python benchmarks/rolling.py --rows 1000000              # a quick run
    python benchmarks/rolling.py                             # 10M rows, 100k entities
    python benchmarks/rolling.py --pandas-rows 2000000       # pandas timed on a subset, extrapolated

A third contender is the raw engine written the textbook way (``PARTITION BY entity ORDER BY ts
RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND CURRENT ROW EXCLUDE CURRENT ROW``); ``--no-duckdb``
skips it.

``larder_peak_rss_gb`` is the process's peak resident memory after the larder runs (data included,
before pandas runs).

With ``--pandas-rows`` pandas runs on the first N entities' rows only (same rows per entity) and its
time is scaled linearly to the full size; the JSON says so (``pandas_extrapolated``).
Prints JSON, then a table. Timings are medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")

from larder.transforms import rolling  # noqa: E402

STATS = ["mean", "std", "min", "max"]
TIME_WINDOWS = ["7d", "30d", "90d"]
ROW_WINDOWS = [3, 10, 50]


def make_data(rows: int, entities: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    entity = np.sort(rng.integers(0, entities, size=rows))
    gaps = rng.integers(1, 630_720, size=rows).astype("int64")  # 1 s .. 7.3 days, in seconds
    csum = np.cumsum(gaps)
    starts = np.r_[0, np.flatnonzero(np.diff(entity)) + 1]
    offsets = np.repeat(csum[starts] - gaps[starts], np.diff(np.r_[starts, rows]))
    seconds = csum - offsets  # strictly increasing within each entity
    ts = pd.Timestamp("2023-01-01").value + seconds * 1_000_000_000
    order = rng.permutation(rows)
    return pd.DataFrame(
        {
            "entity": entity[order],
            "ts": pd.to_datetime(ts[order]),
            "value": rng.normal(100.0, 15.0, size=rows)[order],
        }
    )


def label(window: Any) -> str:
    return f"{window}rows" if isinstance(window, int) else window


def run_larder(df: pd.DataFrame, windows: list[Any]) -> pd.DataFrame:
    out = rolling(df, "entity", "ts", "value", windows=windows, stats=STATS)
    return out.drop(columns=["entity", "ts", "value"])


def run_pandas(df: pd.DataFrame, windows: list[Any]) -> pd.DataFrame:
    ordered = df.sort_values(["entity", "ts"], kind="stable")
    grouped = ordered.groupby("entity", sort=False)
    result = {}
    for window in windows:
        if isinstance(window, int):
            roll = grouped["value"].rolling(window, min_periods=1, closed="left")
        else:
            span = pd.Timedelta(int(window[:-1]), unit="D")
            roll = grouped.rolling(span, on="ts", min_periods=1, closed="left")["value"]
        for stat in STATS:
            # groups come out in the sorted frame's order, so values line up with `ordered`
            result[f"value_{stat}_{label(window)}"] = getattr(roll, stat)().to_numpy()
    frame = pd.DataFrame(result, index=ordered.index)
    return frame.reindex(df.index)


def run_duckdb(df: pd.DataFrame, windows: list[Any]) -> pd.DataFrame:
    """The raw engine, written the textbook way: PARTITION BY entity, RANGE/ROWS frames, back in
    input order. (The benchmark data has no two rows of an entity at the same timestamp, so
    ``EXCLUDE CURRENT ROW`` is the same as larder's "strictly before t".)"""
    import duckdb

    fns = {"mean": "avg", "std": "stddev_samp", "min": "min", "max": "max"}
    exprs = []
    for window in windows:
        if isinstance(window, int):
            frame = f"ORDER BY ts ROWS BETWEEN {window} PRECEDING AND 1 PRECEDING"
        else:
            frame = f"ORDER BY ts RANGE BETWEEN INTERVAL {int(window[:-1])} DAYS PRECEDING AND CURRENT ROW EXCLUDE CURRENT ROW"
        for stat in STATS:
            exprs.append(
                f'{fns[stat]}(value) OVER (PARTITION BY entity {frame}) AS "value_{stat}_{label(window)}"'
            )
    con = duckdb.connect()
    try:
        con.register("src", df.assign(rid=np.arange(len(df))))
        out = con.sql(f"SELECT rid, {', '.join(exprs)} FROM src ORDER BY rid").df()
    finally:
        con.close()
    return out.drop(columns="rid").set_axis(df.index, axis=0)


def check_equal(larder_out: pd.DataFrame, pandas_out: pd.DataFrame, sample: int, seed: int) -> int:
    rng = np.random.default_rng(seed + 1)
    rows = rng.choice(len(pandas_out), size=min(sample, len(pandas_out)), replace=False)
    labels = pandas_out.index[rows]
    for col in pandas_out.columns:
        a = larder_out.loc[labels, col].to_numpy(dtype="float64")
        b = pandas_out.loc[labels, col].to_numpy(dtype="float64")
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=col)
    return len(rows)


def timed(fn, *args) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def peak_rss_gb() -> float | None:
    """Peak resident memory of this process so far, in GB (None where unsupported)."""
    try:
        import resource
    except ImportError:
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)


def machine() -> dict[str, Any]:
    import duckdb
    import pyarrow

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024 // 1024
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "ram_gb": mem,
        "cpu": cpu,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "pyarrow": pyarrow.__version__,
        "load_avg_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--entities", type=int, default=None, help="default: rows / 100")
    parser.add_argument("--windows", choices=["time", "rows"], default="time")
    parser.add_argument("--repeats", type=int, default=3, help="larder runs (median reported)")
    parser.add_argument("--pandas-repeats", type=int, default=1)
    parser.add_argument(
        "--pandas-rows", type=int, default=None, help="time pandas on a subset and extrapolate"
    )
    parser.add_argument("--sample", type=int, default=2000, help="rows compared between the two outputs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-duckdb", action="store_true", help="skip the raw DuckDB contender")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)

    entities = args.entities or max(1, args.rows // 100)
    windows: list[Any] = TIME_WINDOWS if args.windows == "time" else ROW_WINDOWS
    df = make_data(args.rows, entities, args.seed)

    data_rss = peak_rss_gb()
    larder_times = []
    larder_out = None
    for _ in range(args.repeats):
        seconds, larder_out = timed(run_larder, df, windows)
        larder_times.append(seconds)
    larder_rss = peak_rss_gb()

    if args.pandas_rows and args.pandas_rows < args.rows:
        keep = df["entity"] < int(entities * args.pandas_rows / args.rows)
        pandas_df = df[keep]
    else:
        pandas_df = df
    pandas_times = []
    pandas_out = None
    for _ in range(args.pandas_repeats):
        seconds, pandas_out = timed(run_pandas, pandas_df, windows)
        pandas_times.append(seconds)
    compared = check_equal(larder_out, pandas_out, args.sample, args.seed)
    duckdb_times: list[float] = []
    if not args.no_duckdb:
        for _ in range(args.repeats):
            seconds, duckdb_out = timed(run_duckdb, df, windows)
            duckdb_times.append(seconds)
        check_equal(duckdb_out, larder_out, args.sample, args.seed)

    larder_median = statistics.median(larder_times)
    pandas_measured = statistics.median(pandas_times)
    scale = len(df) / len(pandas_df)
    pandas_full = pandas_measured * scale
    result = {
        "benchmark": "rolling",
        "rows": len(df),
        "entities": entities,
        "windows": [label(w) for w in windows],
        "stats": STATS,
        "features": len(windows) * len(STATS),
        "larder_seconds": [round(t, 3) for t in larder_times],
        "larder_median_s": round(larder_median, 3),
        "pandas_rows": len(pandas_df),
        "pandas_seconds": [round(t, 3) for t in pandas_times],
        "pandas_median_s": round(pandas_measured, 3),
        "pandas_extrapolated": scale != 1,
        "pandas_full_size_s": round(pandas_full, 3),
        "speedup": round(pandas_full / larder_median, 2),
        "larder_rows_per_s": round(len(df) / larder_median),
        "data_peak_rss_gb": data_rss,
        "larder_peak_rss_gb": larder_rss,
        "duckdb_seconds": [round(t, 3) for t in duckdb_times],
        "duckdb_median_s": round(statistics.median(duckdb_times), 3) if duckdb_times else None,
        "speedup_vs_duckdb": round(statistics.median(duckdb_times) / larder_median, 2)
        if duckdb_times
        else None,
        "rows_compared_equal": compared,
        "machine": machine(),
    }
    print(json.dumps(result, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))
    print()
    print(f"rolling: {len(df):,} rows, {entities:,} entities, windows {result['windows']} x {STATS}")
    print(f"{'engine':<10}{'rows timed':>14}{'median s':>12}{'full-size s':>14}{'rows/s':>14}")
    print(
        f"{'larder':<10}{len(df):>14,}{larder_median:>12.2f}{larder_median:>14.2f}{len(df) / larder_median:>14,.0f}"
    )
    note = " (extrapolated)" if scale != 1 else ""
    print(
        f"{'pandas':<10}{len(pandas_df):>14,}{pandas_measured:>12.2f}{pandas_full:>14.2f}"
        f"{len(pandas_df) / pandas_measured:>14,.0f}{note}"
    )
    if duckdb_times:
        d = statistics.median(duckdb_times)
        print(
            f"{'duckdb':<10}{len(df):>14,}{d:>12.2f}{d:>14.2f}{len(df) / d:>14,.0f} (PARTITION BY + RANGE frames)"
        )
    print(f"speedup: larder is {result['speedup']}x faster than pandas; {compared} sampled rows equal")
    print(f"peak memory after the larder runs: {larder_rss} GB (the data alone: {data_rss} GB)")
    if duckdb_times:
        print(f"larder vs the textbook DuckDB query: {result['speedup_vs_duckdb']}x")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
