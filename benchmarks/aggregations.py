"""Declarative aggregation features: larder beside the raw DuckDB window query and pandas.

The job: for every label row (entity, time t), the 7-day sum and the 30-day mean of the entity's
events in ``[t - window, t)`` (strictly before t). Side by side in one run:

  larder_engine     ``Engine.aggregate`` (the kernel every larder path runs) over the events and labels
                    as in-memory Arrow tables: one pass, both features
  larder_training   ``fe.create_training_set(labels, label="y", features=[sum_7d, mean_30d]).load_df()``
                    over a Delta feature table (the user's path: Delta read + kernel + pandas output)
  duckdb_raw        the engine's limit, the textbook query over the union of events and labels:
                    ``SUM(x) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND
                    INTERVAL 1 MICROSECOND PRECEDING)`` (and ``AVG`` over 30 days), label rows kept, in order
  pandas            ``groupby(k).rolling("7D", on="ts", closed="left")`` over the same union, sorted;
                    ``--pandas-events`` times it on a prefix of the entities and scales linearly

Every contender runs in its own child process (clean peak RSS), in a rotating order, ``--repeats``
times; medians are reported. ``peak+`` is the peak RSS during a run above the RSS just before it
(sampled every 10 ms), divided by the output's size (Arrow buffers; pandas ``memory_usage(deep=True)``
for the pandas outputs). Before timing, larder's values are checked against DuckDB's on every row
(sums to 1e-9 relative) and pandas' on a sample.

``--online`` adds the online read on SQLite: ``fe.get_online_features(spec, {"k": [key]}, output="dict")``
of 10 aggregation features of one key (published as timelines by ``publish_features``; over 7 different
windows, and 5 operators over 2 windows) beside the same
call for 10 plain float features of a published feature table, in alternation, random keys, medians
of ``--online-calls`` calls; the aggregation read at "now" (no time column), with a request time 5
minutes after the materialization (both mostly answered from the heads), and a day later (past most
heads: the timelines).

    python benchmarks/aggregations.py --events 2000000 --labels 200000
    python benchmarks/aggregations.py                                   # 10M events, 1M labels
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DAY_US = 86_400_000_000
SPAN_DAYS = 365
MODES = ["larder_engine", "larder_training", "duckdb_raw", "pandas"]


# --------------------------------------------------------------------------- data


def make_data(out: Path, events: int, labels: int, entities: int, seed: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    start = 1_704_067_200_000_000  # 2024-01-01
    ts = start + rng.integers(0, SPAN_DAYS * DAY_US, events)
    ev = pa.table({"event_id": np.arange(events, dtype=np.int64), "k": rng.integers(0, entities, events),
                   "ts": pa.array(ts, pa.timestamp("us", tz="UTC")), "x": rng.normal(100.0, 15.0, events)})
    lt = start + rng.integers(0, SPAN_DAYS * DAY_US, labels)
    tie = rng.random(labels) < 0.05  # some labels exactly at an event's time (the event must not count)
    pick = rng.integers(0, events, int(tie.sum()))
    lk = rng.integers(0, entities, labels)
    lk[tie] = ev.column("k").to_numpy()[pick]
    lt[tie] = ts[pick]
    lab = pa.table({"k": lk, "ts": pa.array(lt, pa.timestamp("us", tz="UTC")),
                    "y": rng.integers(0, 2, labels)})
    pq.write_table(ev, out / "events.parquet")
    pq.write_table(lab, out / "labels.parquet")


# --------------------------------------------------------------------------- child side


class PeakRSS:
    """Samples this process's RSS every 10 ms while active."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def rss(self) -> int:
        return int(self._proc.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self.peak = self.rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def _features(source: Any) -> list[Any]:
    import datetime as dt

    from larder.entities import AggregationFunction, Avg, Feature, RollingWindow, Sum

    return [
        Feature(source=source, function=AggregationFunction(Sum(input="x"), RollingWindow(
            window_duration=dt.timedelta(days=7))), entity=["k"], timeseries_column="ts", name="sum_7d"),
        Feature(source=source, function=AggregationFunction(Avg(input="x"), RollingWindow(
            window_duration=dt.timedelta(days=30))), entity=["k"], timeseries_column="ts", name="mean_30d"),
    ]


RAW_SQL = """
WITH u AS (
  SELECT k, ts, x, NULL::BIGINT AS qid FROM events
  UNION ALL
  SELECT k, ts, NULL::DOUBLE AS x, qid FROM labels
)
SELECT qid,
  SUM(x) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL 7 DAYS PRECEDING
               AND INTERVAL 1 MICROSECOND PRECEDING) AS sum_7d,
  AVG(x) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL 30 DAYS PRECEDING
               AND INTERVAL 1 MICROSECOND PRECEDING) AS mean_30d
FROM u QUALIFY qid IS NOT NULL ORDER BY qid
"""


def _pandas(events: Any, labels: Any) -> Any:
    import pandas as pd

    ev = events.select(["k", "ts", "x"]).to_pandas()
    lab = labels.select(["k", "ts"]).to_pandas()
    lab["qid"] = np.arange(len(lab))
    ev["qid"] = -1
    u = pd.concat([ev, lab.assign(x=np.nan)], ignore_index=True).sort_values(["k", "ts"], kind="stable")
    g = u.groupby("k", sort=False).rolling("7D", on="ts", closed="left")["x"]
    s7 = g.sum().to_numpy()
    cnt7 = g.count().to_numpy()
    m30 = u.groupby("k", sort=False).rolling("30D", on="ts", closed="left")["x"].mean().to_numpy()
    # groupby().rolling() returns rows grouped by k in u's order within each group: u is sorted by k
    qid = u["qid"].to_numpy()
    keep = qid >= 0
    out = pd.DataFrame({"qid": qid[keep], "sum_7d": np.where(cnt7[keep] > 0, s7[keep], np.nan),
                        "mean_30d": m30[keep]}).sort_values("qid", kind="stable")
    return out.set_index("qid")


def _child(mode: str, data: Path, repeats: int, check: bool, pandas_entities: int | None) -> dict[str, Any]:
    import gc

    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")
    events = pq.read_table(data / "events.parquet")
    labels = pq.read_table(data / "labels.parquet")
    scale = 1.0
    if mode == "pandas" and pandas_entities:
        n_ev = events.num_rows
        events = events.filter(pc.less(events.column("k"), pandas_entities))
        labels = labels.filter(pc.less(labels.column("k"), pandas_entities))
        scale = n_ev / max(events.num_rows, 1)
    run: Any
    if mode == "larder_engine":
        from larder.declarative.compute import aggregation_for
        from larder.declarative.sources import DataFrameSource
        from larder.offline.engine import get_engine

        engine = get_engine()
        aggs = [aggregation_for(f) for f in _features(DataFrameSource(dataframe=events.slice(0, 1)))]

        def run() -> Any:
            return engine.aggregate(events, labels, entity=["k"], timestamp="ts", query_timestamp="ts",
                                    aggregations=aggs)
    elif mode == "larder_training":
        from larder import DeltaTableSource, FeatureEngineeringClient

        root = Path(tempfile.mkdtemp(prefix="larder-agg-"))
        fe = FeatureEngineeringClient(root=root)
        fe.create_table("events", "event_id", df=events)
        feats = [fe.register_feature(feature=f, catalog_name="main", schema_name="default") for f in _features(
            DeltaTableSource(catalog_name="main", schema_name="default", table_name="events"))]
        del events
        labels_df = labels.to_pandas()
        gc.collect()
        pa.default_memory_pool().release_unused()

        def run() -> Any:
            return fe.create_training_set(labels_df, label="y", features=feats).load_df()
    elif mode == "duckdb_raw":
        con = duckdb.connect()
        con.register("events", events)
        con.register("labels", labels.append_column("qid", pa.array(np.arange(labels.num_rows))))

        def run() -> Any:
            rel = con.sql(RAW_SQL)
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.fetch_arrow_table()
    elif mode == "pandas":
        def run() -> Any:
            return _pandas(events, labels)
    else:
        raise SystemExit(f"unknown mode {mode}")

    walls, cpus, extra = [], [], []
    out: Any = None
    for _ in range(repeats):
        out = None
        gc.collect()
        pa.default_memory_pool().release_unused()
        meter = PeakRSS()
        before = meter.rss()
        c0, t0 = time.process_time(), time.perf_counter()
        with meter:
            out = run()
        walls.append((time.perf_counter() - t0) * scale)
        cpus.append((time.process_time() - c0) * scale)
        extra.append(meter.peak - before)
    nbytes = int(out.memory_usage(deep=True).sum()) if hasattr(out, "memory_usage") else int(out.nbytes)
    res: dict[str, Any] = {"mode": mode, "wall_s": walls, "cpu_s": cpus, "peak_over_before_mb": max(extra) / 2**20,
                           "output_bytes": nbytes, "peak_over_output": max(extra) / max(nbytes, 1),
                           "scaled": scale != 1.0, "scale": scale}
    if check:
        res["values"] = _values(mode, out)
    return res


def _values(mode: str, out: Any) -> dict[str, list[float]]:
    """Both features as float lists in label order (NaN for null)."""
    import pyarrow as pa

    if isinstance(out, pa.Table):
        return {c: out.column(c).to_numpy(zero_copy_only=False).astype(float).tolist() for c in ("sum_7d", "mean_30d")}
    return {c: out[c].to_numpy(dtype=float, na_value=np.nan).tolist() for c in ("sum_7d", "mean_30d")}


# --------------------------------------------------------------------------- parent side


def _spawn(mode: str, data: Path, repeats: int, check: bool, pandas_entities: int | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, "--data", str(data), "--repeats", str(repeats)]
    if check:
        cmd.append("--check")
    if pandas_entities:
        cmd += ["--pandas-entities", str(pandas_entities)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _compare(a: dict[str, list[float]], b: dict[str, list[float]], *, sample: int | None = None) -> dict[str, Any]:
    out = {}
    for c in a:
        x, y = np.array(a[c]), np.array(b[c])
        if sample is not None:
            x, y = x[:sample], y[:sample]
        same_null = np.isnan(x) == np.isnan(y)
        ok = np.isnan(x) | (np.abs(x - y) <= 1e-9 * np.maximum(1.0, np.abs(x)))
        out[c] = {"rows": len(x), "mismatches": int((~(same_null & ok)).sum())}
    return out


def online_read(calls: int, seed: int, hook: Any = None) -> dict[str, Any]:
    """Median latency of 1-key online reads: 10 aggregation features beside 10 plain features."""
    import datetime as dt
    import random

    import pandas as pd

    from larder import (
        DeltaTableSource,
        FeatureEngineeringClient,
        RollingWindow,
        SlidingWindow,
        TumblingWindow,
    )
    from larder.declarative.publish import publish_features
    from larder.entities import AggregationFunction, Avg, Count, Last, Max, Min, StddevSamp, Sum
    from larder.online.stores.specs import SQLiteStoreSpec

    rng = np.random.default_rng(seed)
    n, keys = 200_000, 2_000
    # events up to now, materialized now: a request "now" sees live windows, as in serving
    as_of = pd.Timestamp.now(tz="UTC").floor("s")
    start = as_of - pd.Timedelta(days=60)
    events = pd.DataFrame({"event_id": np.arange(n), "k": rng.integers(0, keys, n),
                           "ts": start + pd.to_timedelta(rng.integers(0, 60 * 86_400, n), unit="s"),
                           "x": rng.normal(100, 15, n)})
    plain = pd.DataFrame({"k": np.arange(keys), **{f"p{i}": rng.normal(size=keys) for i in range(10)}})
    root = Path(tempfile.mkdtemp(prefix="larder-aggonline-"))
    with FeatureEngineeringClient(root=root) as fe:
        fe.create_table("events", "event_id", df=events)
        fe.create_table("plain", "k", df=plain)
        src = DeltaTableSource(catalog_name="main", schema_name="default", table_name="events")
        D = dt.timedelta
        functions = [
            AggregationFunction(Sum("x"), RollingWindow(window_duration=D(days=7))),
            AggregationFunction(Avg("x"), RollingWindow(window_duration=D(days=30))),
            AggregationFunction(Count("x"), RollingWindow(window_duration=D(days=1))),
            AggregationFunction(Max("x"), RollingWindow(window_duration=D(days=7))),
            AggregationFunction(Min("x"), RollingWindow(window_duration=D(days=7))),
            AggregationFunction(StddevSamp("x"), RollingWindow(window_duration=D(days=30))),
            AggregationFunction(Last("x"), RollingWindow(window_duration=None)),
            AggregationFunction(Sum("x"), TumblingWindow(window_duration=D(days=1))),
            AggregationFunction(Avg("x"), SlidingWindow(window_duration=D(days=7), slide_duration=D(days=1))),
            AggregationFunction(Count("x"), RollingWindow(window_duration=D(days=90), delay=D(days=1))),
        ]
        feats = [fe.create_feature(source=src, function=f, catalog_name="main", schema_name="default",
                                   entity=["k"], timeseries_column="ts", name=f"a{i}") for i, f in enumerate(functions)]
        # the same ten operators' kind over two windows only (7 and 30 days)
        two = [fe.create_feature(source=src, function=AggregationFunction(op, RollingWindow(window_duration=w)),
                                 catalog_name="main", schema_name="default", entity=["k"], timeseries_column="ts",
                                 name=f"b{i}_{j}")
               for i, op in enumerate([Sum("x"), Avg("x"), Count("x"), Max("x"), StddevSamp("x")])
               for j, w in enumerate([D(days=7), D(days=30)])]
        t0 = time.perf_counter()
        pubs = publish_features(fe, feats, SQLiteStoreSpec(), as_of=as_of.to_pydatetime())
        publish_s = time.perf_counter() - t0
        publish_features(fe, two, SQLiteStoreSpec(), as_of=as_of.to_pydatetime())
        fe.publish_table("plain", SQLiteStoreSpec())
        from larder import FeatureLookup

        agg_spec = fe.create_training_set(pd.DataFrame({"k": [0], "ts": [as_of]}), label=None, features=feats).feature_spec
        two_spec = fe.create_training_set(pd.DataFrame({"k": [0], "ts": [as_of]}), label=None, features=two).feature_spec
        plain_spec = fe.create_training_set(pd.DataFrame({"k": [0]}), [FeatureLookup("plain", "k")],
                                            label=None).feature_spec
        when = (as_of + pd.Timedelta(minutes=5)).to_pydatetime()
        later = (as_of + pd.Timedelta(days=1)).to_pydatetime()
        contenders = {
            "plain_10": lambda k: fe.get_online_features(plain_spec, {"k": [k]}, output="dict"),
            "aggregations_10_now": lambda k: fe.get_online_features(agg_spec, {"k": [k]}, output="dict"),
            "aggregations_10_two_windows_now": lambda k: fe.get_online_features(two_spec, {"k": [k]}, output="dict"),
            "aggregations_10_at_t": lambda k: fe.get_online_features(agg_spec, {"k": [k], "ts": [when]}, output="dict"),
            # a day later: past most keys' heads (the first change after T), so read from the timelines
            "aggregations_10_next_day": lambda k: fe.get_online_features(agg_spec, {"k": [k], "ts": [later]},
                                                                         output="dict"),
        }
        for f in contenders.values():  # warm: assemblers, store connections, statements
            for _ in range(50):
                f(int(rng.integers(0, keys)))
        if hook is not None:  # e.g. a profiler's look at the warm contenders
            hook(contenders, keys)
        times: dict[str, list[float]] = {c: [] for c in contenders}
        order = list(contenders)
        for _ in range(calls):
            random.shuffle(order)
            for c in order:
                key = int(rng.integers(0, keys))
                t = time.perf_counter()
                contenders[c](key)
                times[c].append(time.perf_counter() - t)
        timeline_bytes = int(pubs[0].rows)
    med = {c: statistics.median(v) * 1e6 for c, v in times.items()}
    return {"calls": calls, "events": n, "keys": keys, "publish_s": publish_s, "published_keys": timeline_bytes,
            "median_us": med, "p99_us": {c: float(np.percentile(v, 99) * 1e6) for c, v in times.items()},
            "ratio_now": med["aggregations_10_now"] / med["plain_10"],
            "ratio_two_windows_now": med["aggregations_10_two_windows_now"] / med["plain_10"],
            "ratio_at_t": med["aggregations_10_at_t"] / med["plain_10"],
            "ratio_next_day": med["aggregations_10_next_day"] / med["plain_10"],
            "target_at_most_1.3x": med["aggregations_10_now"] / med["plain_10"] <= 1.3}


def _machine() -> str:
    try:
        import psutil

        mem = f", {psutil.virtual_memory().total / 2**30:.1f} GiB RAM"
    except ImportError:  # pragma: no cover
        mem = ""
    return f"{platform.machine()}, {os.cpu_count()} CPUs{mem}, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--labels", type=int, default=1_000_000)
    ap.add_argument("--entities", type=int, default=None, help="default: events / 100")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1, help="child processes per contender (rotating order)")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--pandas-entities", type=int, default=None,
                    help="time pandas on the entities below this id only and scale to the full size")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--online", action="store_true", help="also measure the 1-key online read")
    ap.add_argument("--online-only", action="store_true", help="only the online read")
    ap.add_argument("--online-calls", type=int, default=2000)
    ap.add_argument("--child")
    ap.add_argument("--data")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(a.child, Path(a.data), a.repeats, a.check, a.pandas_entities)))
        return
    if a.online_only:
        res = online_read(a.online_calls, a.seed)
        print(json.dumps({"machine": _machine(), "online": res}, indent=1))
        _print_online(res)
        return
    entities = a.entities or max(1, a.events // 100)
    modes = a.modes.split(",")
    with tempfile.TemporaryDirectory(prefix="larder-aggbench-") as tmp:
        data = Path(tmp)
        make_data(data, a.events, a.labels, entities, a.seed)
        # correctness first: every row of larder against DuckDB, a sample against pandas
        checks: dict[str, Any] = {}
        base = _spawn("duckdb_raw", data, 1, True, None)["values"] if "duckdb_raw" in modes else None
        for mode in [m for m in modes if m.startswith("larder")]:
            got = _spawn(mode, data, 1, True, None)["values"]
            if base is not None:
                checks[f"{mode}_vs_duckdb"] = _compare(base, got)
        results: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for r in range(a.rounds):
            order = modes[r % len(modes):] + modes[: r % len(modes)]
            for mode in order:
                print(f"round {r + 1}: {mode} ...", file=sys.stderr, flush=True)
                results[mode].append(_spawn(mode, data, a.repeats, False, a.pandas_entities if mode == "pandas" else None))
    summary = {}
    for mode, runs in results.items():
        walls = [w for r in runs for w in r["wall_s"]]
        summary[mode] = {"median_s": statistics.median(walls), "min_s": min(walls),
                         "cpu_s": statistics.median([c for r in runs for c in r["cpu_s"]]),
                         "peak_over_before_mb": max(r["peak_over_before_mb"] for r in runs),
                         "output_mb": runs[0]["output_bytes"] / 2**20,
                         "peak_over_output": max(r["peak_over_output"] for r in runs),
                         "scaled_from_subset": runs[0]["scaled"]}
    raw = summary.get("duckdb_raw", {}).get("median_s")
    pandas_s = summary.get("pandas", {}).get("median_s")
    for s in summary.values():
        if raw:
            s["vs_raw"] = s["median_s"] / raw
        if pandas_s:
            s["pandas_over_this"] = pandas_s / s["median_s"]
    targets = {}
    for mode in ("larder_engine", "larder_training"):
        if mode in summary and raw:
            targets[mode] = {"at_most_1.5x_raw": summary[mode]["vs_raw"] <= 1.5,
                             "at_least_5x_pandas": bool(pandas_s and summary[mode]["pandas_over_this"] >= 5),
                             "peak_at_most_3x_output": summary[mode]["peak_over_output"] <= 3}
    report = {"events": a.events, "labels": a.labels, "entities": entities, "repeats": a.repeats,
              "rounds": a.rounds, "machine": _machine(), "checks": checks, "summary": summary, "targets": targets}
    if a.online:
        report["online"] = online_read(a.online_calls, a.seed)
    print(json.dumps(report, indent=1))
    print(f"\n{a.events:,} events, {a.labels:,} labels, {entities:,} entities; median of {a.repeats} x {a.rounds}")
    print(f"{'contender':<17} {'median s':>9} {'cpu s':>8} {'vs raw':>7} {'pandas/x':>9} {'peak+ MB':>9} "
          f"{'/output':>8}")
    for mode, s in summary.items():
        print(f"{mode:<17} {s['median_s']:>9.2f} {s['cpu_s']:>8.2f} {s.get('vs_raw', float('nan')):>7.2f} "
              f"{s.get('pandas_over_this', float('nan')):>9.1f} {s['peak_over_before_mb']:>9.0f} "
              f"{s['peak_over_output']:>8.2f}{'  (scaled)' if s['scaled_from_subset'] else ''}")
    if a.online:
        _print_online(report["online"])


def _print_online(res: dict[str, Any]) -> None:
    print(f"\nonline read, 1 key, SQLite, median of {res['calls']} calls (us): " + ", ".join(
        f"{c} {v:.0f} (p99 {res['p99_us'][c]:.0f})" for c, v in res["median_us"].items()))
    print(f"aggregations / plain: {res['ratio_now']:.2f}x at now (10 features, 7 windows), "
          f"{res['ratio_two_windows_now']:.2f}x at now (10 features, 2 windows), "
          f"{res['ratio_at_t']:.2f}x with a request time, {res['ratio_next_day']:.2f}x a day later (timelines); "
          f"publish of 10 features for {res['published_keys']} keys: {res['publish_s']:.1f} s")


if __name__ == "__main__":
    main()
