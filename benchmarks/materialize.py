"""Incremental materialization: a run after appending 1% new events beside a full one.

The job: a 7-day rolling sum and a 30-day rolling mean per entity, materialized offline (one Delta
feature table per feature holding ``compute_features``' rows: every event's (entity, time), valued
strictly before it). ``--events`` events over a year, in time order (as events arrive), ``--entities``
entities. Side by side in one run:

  larder_full         ``fe.materialize_features(features=[sum_7d, mean_30d], offline_config=...)``: the
                      first run, every row of both tables computed and written
  larder_incremental  ``larder materialize``'s run (``run_due``) after ``write_table`` appended 1% more
                      events (the next ~3.7 days): reads the added files and the 30 days before them,
                      recomputes the rows from the earliest new time on, replaces them in one commit
  duckdb_full         the raw engine doing the full job: DuckDB's window query (``SUM(x) OVER (PARTITION BY
                      k ORDER BY ts RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND INTERVAL 1 MICROSECOND
                      PRECEDING)``, and ``AVG`` over 30 days) over the Delta table read by delta-rs, written
                      to a new Delta table by delta-rs
  duckdb_incremental  the same query by hand over the rows a hand-written incremental job must read (the
                      30 days before the new events, by the same pyarrow filter), the new rows appended
                      by delta-rs

Each full run materializes into a fresh table; each incremental run appends another 1% first. The
larder tables are checked against ``compute_features`` (row counts, and values on a sample of keys)
and the DuckDB values on the new rows before timing. Medians of ``--repeats``.

``--online`` times the online half instead, into the embedded SQLite store:

  online_full         ``fe.materialize_features(features=[sum_7d, mean_30d], online_config=...)``: the first
                      run, every key's timelines computed from the whole source and the online tables
                      (timelines, heads) replaced
  online_incremental  ``run_due`` after appending 1%: only the keys of the added rows recomputed (from
                      their whole history) and merged in; the other keys keep their timelines

checked afterwards: online values of a sample of keys (touched and not) at several request times equal
the training set's.

    flock /tmp/larder-bench.lock python benchmarks/materialize.py                 # 10M events
    python benchmarks/materialize.py --events 1000000 --repeats 2                 # quick
    flock /tmp/larder-bench.lock python benchmarks/materialize.py --online --events 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DAY_US = 86_400_000_000
SPAN_DAYS = 365
START_US = 1_704_067_200_000_000  # 2024-01-01


def _events(first: int, n: int, lo_us: int, hi_us: int, entities: int, rng: np.random.Generator) -> Any:
    import pyarrow as pa

    ts = np.sort(rng.integers(lo_us, hi_us, n))
    return pa.table({"event_id": np.arange(first, first + n, dtype=np.int64), "k": rng.integers(0, entities, n),
                     "ts": pa.array(ts, pa.timestamp("us", tz="UTC")), "x": rng.normal(100.0, 15.0, n)})


def _raw(events: Any, since_us: int | None) -> Any:
    """DuckDB's window query: one row per distinct (k, ts) of ``events`` (at or after ``since_us``)."""
    import duckdb

    con = duckdb.connect()
    con.register("ev", events)
    # the windows exclude the row's own time, so rows at one (k, ts) share one value: aggregate per point
    sql = """
    WITH pts AS (SELECT k, ts, SUM(x) AS sx, COUNT(x) AS cx FROM ev GROUP BY k, ts)
    SELECT k, ts,
      SUM(sx) OVER w7 AS sum_7d,
      SUM(sx) OVER w30 / NULLIF(SUM(cx) OVER w30, 0) AS mean_30d
    FROM pts
    WINDOW w7 AS (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING),
           w30 AS (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL 30 DAYS PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING)
    """
    if since_us is not None:
        sql = f"SELECT * FROM ({sql}) WHERE epoch_us(ts) >= {since_us}"
    out = con.sql(sql).arrow()
    con.close()
    return out.read_all() if hasattr(out, "read_all") else out


def _setup(args: argparse.Namespace) -> tuple[Any, list[Any], np.random.Generator, int, int, float]:
    """A fresh client with ``--events`` events over a year and the two features (7-day sum, 30-day
    mean); returns (client, features, rng, entities, end_us, seconds to write the events)."""
    from larder import (
        AggregationFunction,
        Avg,
        DeltaTableSource,
        FeatureEngineeringClient,
        RollingWindow,
        Sum,
    )

    rng = np.random.default_rng(args.seed)
    entities = args.entities or max(args.events // 100, 1)
    root = Path(tempfile.mkdtemp(prefix="larder-mat-bench-"))
    fe = FeatureEngineeringClient(root=root)
    end_us = START_US + SPAN_DAYS * DAY_US
    t = time.perf_counter()
    fe.create_table("events", "event_id", df=_events(0, args.events, START_US, end_us, entities, rng))
    setup_s = time.perf_counter() - t
    src = DeltaTableSource(catalog_name="main", schema_name="default", table_name="events")
    feats = [fe.create_feature(source=src, function=AggregationFunction(Sum("x"), RollingWindow(
                 window_duration=dt.timedelta(days=7))), catalog_name="main", schema_name="default", entity=["k"],
                 timeseries_column="ts", name="sum_7d"),
             fe.create_feature(source=src, function=AggregationFunction(Avg("x"), RollingWindow(
                 window_duration=dt.timedelta(days=30))), catalog_name="main", schema_name="default", entity=["k"],
                 timeseries_column="ts", name="mean_30d")]
    return fe, feats, rng, entities, end_us, setup_s


def run(args: argparse.Namespace) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.dataset as ds
    from deltalake import DeltaTable, write_deltalake

    from larder import (
        OfflineStoreConfig,
        TableTrigger,
    )
    from larder.declarative.schedule import run_due

    fe, feats, rng, entities, end_us, setup_s = _setup(args)
    events_path = fe._tables.snapshot("events").table.table_uri
    res: dict[str, list[float]] = {m: [] for m in ("larder_full", "larder_incremental", "duckdb_full",
                                                  "duckdb_incremental")}
    detail: dict[str, Any] = {}
    step = max(args.events // 100, 1)  # 1% more events per incremental run
    step_us = max(int(SPAN_DAYS * DAY_US / 100), 1)
    next_id, hi = args.events, end_us
    last = 0
    now = dt.datetime.now(dt.UTC)
    for r in range(args.repeats):
        # -- full: a fresh materialization of everything so far
        t = time.perf_counter()
        mfs = fe.materialize_features(features=feats, offline_config=OfflineStoreConfig(
            "main", "default", f"full{r}"), trigger=TableTrigger())
        res["larder_full"].append(time.perf_counter() - t)
        if r < args.repeats - 1:  # one offline materialization per feature: the last one is kept
            for mf in mfs:
                fe.delete_materialized_feature(materialized_feature=mf)
        last = r
        t = time.perf_counter()
        table = DeltaTable(events_path)
        raw = _raw(ds.dataset(table.file_uris(), format="parquet").to_table(columns=["k", "ts", "x"]), None)
        write_deltalake(str(fe._ctx.root / f"raw_full{r}"), raw)
        res["duckdb_full"].append(time.perf_counter() - t)
        detail.setdefault("full_rows", raw.num_rows)
    # -- incremental: append 1%, run what is due (every materialization above has a TableTrigger: run one)
    raw_path = str(fe._ctx.root / "raw_full0")
    for _ in range(args.repeats):
        new = _events(next_id, step, hi, hi + step_us, entities, rng)
        next_id, lo_new, hi = next_id + step, hi, hi + step_us
        fe.write_table("events", new)
        now += dt.timedelta(hours=2)
        t = time.perf_counter()
        results = run_due(fe, now=now)
        res["larder_incremental"].append(time.perf_counter() - t)
        assert {x.state for x in results} == {"SUCCEEDED"} and {x.kind for x in results} == {"incremental"}, results
        detail.setdefault("incremental_rows_read", results[0].rows_read)
        detail.setdefault("incremental_rows_written", results[0].rows_written)
        # the raw engine by hand: the 30 days before the new rows, the query, an append
        t = time.perf_counter()
        table = DeltaTable(events_path)
        lookback = lo_new - 30 * DAY_US
        tail = ds.dataset(table.file_uris(), format="parquet").to_table(
            columns=["k", "ts", "x"], filter=ds.field("ts") >= pa.scalar(lookback, pa.timestamp("us", tz="UTC")))
        raw_new = _raw(tail, lo_new)
        write_deltalake(raw_path, raw_new, mode="append")
        res["duckdb_incremental"].append(time.perf_counter() - t)
    # -- checks: the incrementally kept tables equal compute_features; DuckDB agrees on the new rows
    if args.check:
        import pyarrow.compute as pc

        for f in feats:
            table = fe._tables.read_arrow(f"main.default.full{last}_{f.name}")
            want = fe.compute_features(features=[f])
            assert table.num_rows == len(want), (f.name, table.num_rows, len(want))
            keys = np.unique(want["k"].to_numpy())[:50]
            a = table.to_pandas()
            a = a[a["k"].isin(keys)].sort_values(["k", "ts"]).reset_index(drop=True)
            b = want[want["k"].isin(keys)].sort_values(["k", "ts"]).reset_index(drop=True)
            assert a[f.name].equals(b[f.name]), f.name
            rawt = DeltaTable(raw_path).to_pyarrow_table().to_pandas()
            mask = pc.greater_equal(pc.cast(table.column("ts"), pa.int64()), lo_new).to_numpy(zero_copy_only=False)
            mine = table.filter(mask).to_pandas().sort_values(["k", "ts"]).reset_index(drop=True)
            theirs = rawt[rawt["ts"] >= mine["ts"].min()].sort_values(["k", "ts"]).reset_index(drop=True)
            assert len(mine) == len(theirs), (len(mine), len(theirs))
            np.testing.assert_allclose(mine[f.name].to_numpy(float), theirs[f.name].to_numpy(float), rtol=1e-9,
                                       equal_nan=True)
        detail["checked"] = True
    fe.close()
    med = {k: statistics.median(v) for k, v in res.items() if v}
    return {"events": args.events, "entities": entities, "appended_per_run": step, "repeats": args.repeats,
            "setup_s": setup_s, "runs_s": res, "median_s": med,
            "incremental_over_full": med["larder_incremental"] / med["larder_full"],
            "duckdb_incremental_over_full": med["duckdb_incremental"] / med["duckdb_full"],
            "larder_over_duckdb_full": med["larder_full"] / med["duckdb_full"],
            "larder_over_duckdb_incremental": med["larder_incremental"] / med["duckdb_incremental"],
            **detail, "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"}


def run_online(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    from larder import (
        OnlineStoreConfig,
        TableTrigger,
    )
    from larder.declarative.schedule import run_due

    fe, feats, rng, entities, end_us, setup_s = _setup(args)
    fe.create_online_store(name="serving", capacity="CU_1")
    res: dict[str, list[float]] = {"online_full": [], "online_incremental": []}
    detail: dict[str, Any] = {"keys_written_full": None, "keys_written_incremental": []}
    step = max(args.events // 100, 1)
    step_us = max(int(SPAN_DAYS * DAY_US / 100), 1)
    next_id, hi = args.events, end_us
    now = dt.datetime.fromtimestamp(end_us / 1e6, dt.UTC) + dt.timedelta(hours=1)
    mfs: list[Any] = []
    for r in range(args.repeats):
        for mf in mfs:  # one online materialization of the features at a time: the last one is kept
            fe.delete_materialized_feature(materialized_feature=mf)
        t = time.perf_counter()
        # the service's call (materialize_features with a time): as of the end of the events, windows full
        mfs = fe._materialization.materialize_features(features=feats, online_config=OnlineStoreConfig(
            "main", "default", f"on{r}", "serving"), trigger=TableTrigger(), now=now)
        res["online_full"].append(time.perf_counter() - t)
        detail["keys_written_full"] = fe._materialization.runs(mfs[0], limit=1)[0]["rows_written"]
    for _ in range(args.repeats):
        new = _events(next_id, step, hi, hi + step_us, entities, rng)
        next_id, hi = next_id + step, hi + step_us
        fe.write_table("events", new)
        now = dt.datetime.fromtimestamp(hi / 1e6, dt.UTC) + dt.timedelta(hours=1)
        t = time.perf_counter()
        results = run_due(fe, now=now)
        res["online_incremental"].append(time.perf_counter() - t)
        assert {x.state for x in results} == {"SUCCEEDED"} and {x.kind for x in results} == {"incremental"}, results
        detail["keys_written_incremental"].append(results[0].rows_written)
    if args.check:
        touched = set(new.column("k").to_pylist())
        keys = sorted(touched)[:25] + [k for k in range(entities) if k not in touched][:25]
        at = pd.Timestamp(now)
        times = [at, at + pd.Timedelta(days=2), at + pd.Timedelta(days=8, microseconds=1)]
        requests = pd.DataFrame({"k": [k for _ in times for k in keys], "ts": [t for t in times for _ in keys]})
        requests = requests.astype({"ts": "datetime64[us, UTC]"})
        training = fe.create_training_set(requests, label=None, features=feats)
        offline = training.load_df()
        online = fe.get_online_features(training.feature_spec, requests)
        for f in feats:
            a, b = offline[f.name].to_numpy(float), online[f.name].to_numpy(float)
            assert np.array_equal(a, b, equal_nan=True), f.name
        detail["checked"] = f"{len(keys)} keys ({min(25, len(touched))} touched by the last append) x {len(times)} times"
    fe.close()
    med = {k: statistics.median(v) for k, v in res.items() if v}
    return {"events": args.events, "entities": entities, "appended_per_run": step, "repeats": args.repeats,
            "setup_s": setup_s, "runs_s": res, "median_s": med,
            "incremental_over_full": med["online_incremental"] / med["online_full"], **detail,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--entities", type=int, default=None, help="default: events / 100")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--no-check", dest="check", action="store_false")
    ap.add_argument("--online", action="store_true", help="time the online half (SQLite) instead")
    args = ap.parse_args()
    out = run_online(args) if args.online else run(args)
    print(json.dumps(out, indent=2, default=str))
    print()
    print(f"{'contender':<22}{'median s':>10}   runs")
    for k, v in out["runs_s"].items():
        print(f"{k:<22}{statistics.median(v):>10.2f}   {', '.join(f'{x:.2f}' for x in v)}")
    if args.online:
        print(f"\nincremental / full (online): {out['incremental_over_full']:.3f}")
        return
    print(f"\nincremental / full: larder {out['incremental_over_full']:.3f}, duckdb by hand "
          f"{out['duckdb_incremental_over_full']:.3f} (target for larder: <= 0.10)")


if __name__ == "__main__":
    main()
