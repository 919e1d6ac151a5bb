"""Point-in-time join: larder beside a hand-written DuckDB ASOF JOIN and Feast 0.67 (DuckDB offline store).

Data comes from the peers' generator (``shared/peers/gen_data.py`` beside the repository): labels with
exact ties, unknown entities and edge cases, feature rows with restatements, f1..f10. As a larder table
keeps one row per (entity, event time), restatements are resolved first (latest ``created_timestamp``
wins) into ``features_dedup.parquet``; the ``larder_tiebreak`` run instead joins the raw rows with
``tiebreak="created_timestamp"``.

Every measurement runs in its own child process (clean peak RSS); runs alternate between the methods
so that noise on a shared machine hits all of them. Each child loads its inputs (untimed), then times
``--repeats`` joins: wall and CPU seconds, the peak RSS during each join above the RSS just before it
(sampled every 10 ms; the worst run is reported), and the output's Arrow size.

methods
  larder_table         point_in_time_join over the features as an in-memory Arrow table (ties checked)
  larder_table_unique  the same with assume_unique=True (a table keyed on entity + time)
  larder_dataset       over a pyarrow dataset of the parquet file (streamed), assume_unique=True,
                       the way create_training_set reads a Delta table
  larder_tiebreak      over the raw rows (with restatements), tiebreak="created_timestamp"
  larder_client        --via-client: fe.create_training_set(...).load_df() on a Delta feature table
  duckdb_raw           SELECT l.*, f.f1.. FROM labels l ASOF LEFT JOIN features f ... over the same Arrow
                       tables: no order kept, no tie handling, the engine's limit
  duckdb_raw_parquet   the same ASOF JOIN reading the parquet file
  feast                feast_bench.py (shared/peers) get_historical_features(...).to_df(), DuckDB store,
                       in its own venv (benchmarks/.feast-venv, made on first use)

Correctness: larder's result is compared row by row (shared/peers/compare_pit.py) with the raw DuckDB
join at the main size and with Feast's result (its oracle parquet) at the size Feast ran.

    python benchmarks/pit_join.py --entities 100000 --feature-rows 10000000 --label-rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS = HERE.parent.parent / "shared" / "peers"
FEATS = [f"f{k}" for k in range(1, 11)]
LARDER_MODES = ["larder_table", "larder_table_unique", "larder_dataset", "larder_tiebreak"]
RAW_MODES = ["duckdb_raw", "duckdb_raw_parquet"]


# --------------------------------------------------------------------------- child side


class PeakRSS:
    """Samples this process's RSS every 10 ms while active."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def rss(self) -> int:
        return self._proc.memory_info().rss

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


def _child(mode: str, data: Path, repeats: int, result: str | None) -> dict[str, Any]:
    import gc

    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")
    from larder.offline.pit import PitSource, point_in_time_join

    t0 = time.perf_counter()
    labels = pq.read_table(data / "labels.parquet")
    dedup = data / "features_dedup.parquet"
    common = dict(keys=["entity_id"], lookup_keys=["entity_id"], features=FEATS, output_names=FEATS,
                  timestamp_key="event_timestamp", timestamp_lookup_key="event_timestamp")
    run: Any
    if mode.startswith("larder_") and mode != "larder_client":
        if mode == "larder_dataset":
            src = PitSource(pads.dataset(dedup), assume_unique=True, **common)
        elif mode == "larder_tiebreak":
            src = PitSource(pq.read_table(data / "features.parquet"), tiebreak="created_timestamp", **common)
        else:
            src = PitSource(pq.read_table(dedup), assume_unique=mode.endswith("unique"), **common)

        def run() -> Any:  # a join this big runs in a DuckDB database of its own, made inside the call
            return point_in_time_join(labels, [src])
    elif mode in RAW_MODES:
        con = duckdb.connect()  # made before timing
        con.register("labels", labels)
        if mode == "duckdb_raw":
            con.register("features", pq.read_table(dedup))
        else:
            con.execute(f"CREATE VIEW features AS SELECT * FROM read_parquet('{dedup}')")
        sql = ("SELECT l.*, " + ", ".join(f"f.{c}" for c in FEATS) + " FROM labels l ASOF LEFT JOIN features f "
               "ON l.entity_id = f.entity_id AND l.event_timestamp >= f.event_timestamp")

        def run() -> Any:
            return con.sql(sql).to_arrow_table()
    elif mode == "larder_client":
        run = _client_setup(data, labels)
    else:
        raise SystemExit(f"unknown mode {mode}")
    load_s = time.perf_counter() - t0
    gc.collect()
    # Hand memory freed while loading back to the OS, so that the baseline is the inputs themselves.
    pa.default_memory_pool().release_unused()
    meter = PeakRSS()
    before = meter.rss()
    walls, cpus, out, extra = [], [], None, []
    peak = before
    for _ in range(repeats):
        out = None
        gc.collect()
        start_rss = meter.rss()  # what the previous run's result left behind counts as baseline
        c0, w0 = os.times(), time.perf_counter()
        with meter:
            out = run()
        w1, c1 = time.perf_counter(), os.times()
        walls.append(w1 - w0)
        cpus.append((c1.user - c0.user) + (c1.system - c0.system))
        peak = max(peak, meter.peak)
        extra.append((meter.peak - start_rss) / 2**20)
    rows = len(out)
    # The output's size: a pandas frame (larder_client) by pandas' own count (memory_usage(deep=True),
    # index included), an Arrow table by its buffers. arrow_bytes is the same rows as Arrow in both cases.
    nbytes = int(out.memory_usage(deep=True).sum()) if hasattr(out, "memory_usage") else out.nbytes
    tbl = out if isinstance(out, pa.Table) else pa.Table.from_pandas(out, preserve_index=False)
    arrow_bytes = tbl.nbytes
    if result:
        pq.write_table(tbl.select(["entity_id", "event_timestamp", "label", *FEATS]), result)
    return {"mode": mode, "wall_s": walls, "cpu_s": cpus, "load_s": load_s, "rows": rows, "output_bytes": nbytes,
            "output_arrow_bytes": arrow_bytes,
            "rss_before_mb": before / 2**20, "peak_rss_mb": peak / 2**20, "peak_over_before_mb": max(extra),
            "peak_over_before_mb_runs": extra,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _client_setup(data: Path, labels: Any) -> Any:
    """A feature table holding the deduplicated rows (made once per data directory); returns the timed call."""
    import pyarrow.parquet as pq

    from larder.client import FeatureEngineeringClient
    from larder.training.lookup import FeatureLookup

    root = data / "larder-root"
    fe = FeatureEngineeringClient(root=root)
    name = "bench_features"
    if not any(t.name.endswith(name) for t in fe.list_tables()):
        try:
            fe.create_table(name, primary_keys=["entity_id", "event_timestamp"], timestamp_keys="event_timestamp",
                            df=pq.read_table(data / "features_dedup.parquet"))
        except BaseException:
            fe.drop_table(name)
            raise
    spine = labels.to_pandas()
    lookup = FeatureLookup(table_name=name, lookup_key="entity_id", timestamp_lookup_key="event_timestamp",
                           feature_names=FEATS)

    def run() -> Any:
        return fe.create_training_set(df=spine, feature_lookups=[lookup], label="label").load_df()

    return run


# --------------------------------------------------------------------------- parent side


def _log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def ensure_data(base: Path, entities: int, feature_rows: int, label_rows: int) -> Path:
    """Generate (once) the peers' data set of that size and its deduplicated feature file."""
    out = base / f"e{entities}_f{feature_rows}_l{label_rows}"
    if not (out / "meta.json").exists():
        gen = PEERS / "gen_data.py"
        if not gen.exists():
            raise SystemExit(f"{gen} not found: the peers' tools must be beside the repository (shared/peers)")
        _log(f"generating {out.name} ...")
        subprocess.run([sys.executable, str(gen), "--entities", str(entities), "--feature-rows", str(feature_rows),
                        "--label-rows", str(label_rows), "--out", str(out)], check=True)
    dedup = out / "features_dedup.parquet"
    if not dedup.exists():
        import duckdb

        _log(f"deduplicating restatements in {out.name} ...")
        con = duckdb.connect()
        tmp = dedup.with_suffix(".tmp")
        con.execute(
            f"COPY (SELECT * EXCLUDE (created_timestamp) FROM read_parquet('{out / 'features.parquet'}') "
            "QUALIFY row_number() OVER (PARTITION BY entity_id, event_timestamp "
            f"ORDER BY created_timestamp DESC) = 1) TO '{tmp}' (FORMAT parquet)")
        con.close()
        tmp.rename(dedup)
    return out


def run_child(mode: str, data: Path, repeats: int, result: Path | None = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, "--data", str(data), "--repeats", str(repeats)]
    if result:
        cmd += ["--result", str(result)]
    _log(f"[{data.name}] {mode} x{repeats} ...")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        _log(proc.stderr[-3000:])
        return {"mode": mode, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    _log(f"    wall {[round(w, 2) for w in res['wall_s']]} peak +{res['peak_over_before_mb']:.0f} MB")
    return res


def measure(data: Path, modes: list[str], rounds: int, repeats: int, results_dir: Path) -> dict[str, Any]:
    """Alternate the methods for ``rounds`` rounds; pool the runs of each method."""
    pooled: dict[str, dict[str, Any]] = {}
    for r in range(rounds):
        for mode in modes:
            keep = results_dir / f"{data.name}_{mode}.parquet" if r == 0 and mode in (
                "larder_table", "larder_dataset", "duckdb_raw", "larder_client") else None
            res = run_child(mode, data, repeats, keep)
            agg = pooled.setdefault(mode, {"mode": mode, "wall_s": [], "cpu_s": [], "peak_over_before_mb": 0.0,
                                           "peak_rss_mb": 0.0})
            if "error" in res:
                agg["error"] = res["error"]
                continue
            agg["wall_s"] += res["wall_s"]
            agg["cpu_s"] += res["cpu_s"]
            for k in ("peak_over_before_mb", "peak_rss_mb"):
                agg[k] = max(agg[k], res[k])
            for k in ("rows", "output_bytes", "output_arrow_bytes", "load_s", "rss_before_mb", "max_rss_mb"):
                agg[k] = res[k]
            if keep:
                agg["result"] = str(keep)
    for agg in pooled.values():
        if agg["wall_s"]:
            agg["median_s"] = statistics.median(agg["wall_s"])
            agg["median_cpu_s"] = statistics.median(agg["cpu_s"])
            agg["peak_over_output"] = agg["peak_over_before_mb"] * 2**20 / agg["output_bytes"]
            agg["peak_over_arrow_output"] = agg["peak_over_before_mb"] * 2**20 / agg["output_arrow_bytes"]
    return pooled


def compare(oracle: str, candidate: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(PEERS / "compare_pit.py"), oracle, candidate],
                          capture_output=True, text=True)
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"error": proc.stderr[-500:]}
    return {k: out[k] for k in ("identical", "oracle_rows", "candidate_rows", "missing_in_candidate",
                                "extra_in_candidate", "mismatched_rows", "null_f_oracle", "null_f_candidate")}


def ensure_feast_venv(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        _log(f"creating {venv} with feast[duckdb]==0.67.0 (a few minutes) ...")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "feast[duckdb]==0.67.0", "psutil"], check=True)
    return py


def run_feast(py: Path, data: Path, repeats: int, timeout: int, max_rss_gb: float, out_dir: Path,
              reuse: bool = False) -> dict[str, Any]:
    oracle = out_dir / f"{data.name}_feast_oracle.parquet"
    js = out_dir / f"{data.name}_feast.json"
    cmd = [str(py), str(PEERS / "feast_bench.py"), "--data", str(data), "--offline", "duckdb",
           "--hist-repeats", str(repeats), "--edge-repeats", "1", "--skip-materialize", "--skip-online",
           "--max-rss-gb", str(max_rss_gb), "--oracle-out", str(oracle), "--json-out", str(js)]
    t0 = time.perf_counter()
    rc: int | str
    if reuse and js.exists():  # an earlier run's result (Feast does not depend on larder's code)
        _log(f"[{data.name}] feast: reusing {js.name}")
        rc = "reused" if "aborted" in json.loads(js.read_text()) else 0
    else:
        _log(f"[{data.name}] feast (timeout {timeout}s, RSS cap {max_rss_gb} GiB) ...")
        try:
            rc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    res: dict[str, Any] = {"returncode": rc, "elapsed_s": time.perf_counter() - t0, "reused": reuse and rc in (0, "reused")}
    if js.exists():
        full = json.loads(js.read_text())
        hist = full.get("historical", {}).get("duckdb", {})
        res.update({"historical": hist, "aborted": full.get("aborted"), "versions": full.get("versions"),
                    "check_vs_pandas_reference": {k: v for k, v in full.get("check", {}).get(
                        "duckdb_vs_reference", {}).items() if not k.startswith("examples")}})
        if hist.get("wall_s"):
            res["median_s"] = statistics.median(hist["wall_s"])
            res["peak_rss_mb"] = hist.get("peak_rss_mb")
    ok = rc == 0 and "median_s" in res and oracle.exists()
    res["ok"] = ok
    if ok:
        res["oracle"] = str(oracle)
    return res


def machine() -> dict[str, Any]:
    import duckdb
    import psutil
    import pyarrow as pa

    cpu = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total / 2**30, 1), "cpu": cpu,
            "platform": platform.platform(), "python": platform.python_version(), "duckdb": duckdb.__version__,
            "pyarrow": pa.__version__, "load_avg_at_start": os.getloadavg()}


def table(rows: list[tuple[str, dict[str, Any]]], ref: float | None) -> str:
    head = (f"{'size':<28} {'method':<20} {'median s':>9} {'cpu s':>7} {'x raw':>6} {'peak+ MB':>9} {'out MB':>7} "
            f"{'x out':>6} {'x arrow':>7}")
    lines = [head, "-" * len(head)]
    for size, r in rows:
        if "median_s" not in r:
            lines.append(f"{size:<28} {r['mode']:<20} {'error: ' + str(r.get('error', r.get('aborted')))[:60]}")
            continue
        x = f"{r['median_s'] / r['raw_s']:.2f}" if r.get("raw_s") else "-"
        cpu = f"{r['median_cpu_s']:.2f}" if "median_cpu_s" in r else "-"
        pk = f"{r['peak_over_before_mb']:.0f}" if "peak_over_before_mb" in r else f"{r.get('peak_rss_mb') or 0:.0f}*"
        xo = f"{r['peak_over_output']:.2f}" if "peak_over_output" in r else "-"
        xa = f"{r['peak_over_arrow_output']:.2f}" if "peak_over_arrow_output" in r else "-"
        om = f"{r['output_bytes'] / 2**20:.1f}" if "output_bytes" in r else "-"
        lines.append(f"{size:<28} {r['mode']:<20} {r['median_s']:>9.2f} {cpu:>7} {x:>6} {pk:>9} {om:>7} {xo:>6} {xa:>7}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--feature-rows", type=int, default=10_000_000)
    ap.add_argument("--label-rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=2, help="timed joins per child process")
    ap.add_argument("--rounds", type=int, default=2, help="child processes per method, alternating")
    ap.add_argument("--methods", default=",".join(LARDER_MODES + RAW_MODES))
    ap.add_argument("--via-client", action="store_true", help="also time fe.create_training_set(...).load_df()")
    ap.add_argument("--skip-feast", action="store_true")
    ap.add_argument("--feast-repeats", type=int, default=2)
    ap.add_argument("--feast-timeout", type=int, default=600, help="seconds before Feast counts as not finishing")
    ap.add_argument("--feast-max-rss-gb", type=float, default=6.0, help="Feast's memory cap (feast_bench aborts)")
    ap.add_argument("--feast-fallback", default="20000,2000000,200000",
                    help="entities,feature_rows,label_rows for Feast (and larder beside it) when Feast cannot "
                         "finish at the main size; 'none' to skip")
    ap.add_argument("--feast-main-size", action="store_true",
                    help="try Feast at the main size first (default: only when it fits the RSS cap)")
    ap.add_argument("--feast-reuse", action="store_true",
                    help="reuse Feast's JSON and oracle from an earlier run in the output directory")
    ap.add_argument("--feast-venv", default=str(HERE / ".feast-venv"))
    ap.add_argument("--data-dir", default=str(HERE / ".data"))
    ap.add_argument("--json-out", default=str(HERE / "out" / "pit_join.json"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        print(json.dumps(_child(args.child, Path(args.data), args.repeats, args.result)))
        return

    base = Path(args.data_dir)
    out_dir = Path(args.json_out).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    modes = [m for m in args.methods.split(",") if m] + (["larder_client"] if args.via_client else [])
    report: dict[str, Any] = {"benchmark": "pit_join", "machine": machine(), "args": vars(args), "sizes": {}}
    main_data = ensure_data(base, args.entities, args.feature_rows, args.label_rows)
    sizes = [main_data]

    res = measure(main_data, modes, args.rounds, args.repeats, out_dir)
    report["sizes"][main_data.name] = {"methods": res}

    feast: dict[str, Any] | None = None
    if not args.skip_feast:
        py = ensure_feast_venv(Path(args.feast_venv))
        if args.feast_main_size:
            feast = run_feast(py, main_data, args.feast_repeats, args.feast_timeout, args.feast_max_rss_gb, out_dir,
                              args.feast_reuse)
            report["sizes"][main_data.name]["feast"] = feast
        if (feast is None or not feast["ok"]) and args.feast_fallback != "none":
            e, f, lab = (int(x) for x in args.feast_fallback.split(","))
            small = ensure_data(base, e, f, lab)
            sizes.append(small)
            report["sizes"][small.name] = {"methods": measure(small, ["larder_table", "larder_dataset", "duckdb_raw"]
                                                                + (["larder_client"] if args.via_client else []),
                                                                args.rounds, args.repeats, out_dir)}
            feast = run_feast(py, small, args.feast_repeats, args.feast_timeout, args.feast_max_rss_gb, out_dir,
                              args.feast_reuse)
            report["sizes"][small.name]["feast"] = feast

    # ratios and correctness
    rows: list[tuple[str, dict[str, Any]]] = []
    for d in sizes:
        entry = report["sizes"][d.name]
        methods = entry["methods"]
        raw = methods.get("duckdb_raw", {}).get("median_s")
        checks = {}
        for m in ("larder_table", "larder_dataset", "larder_client"):
            if "result" in methods.get(m, {}) and "result" in methods.get("duckdb_raw", {}):
                checks[f"{m}_vs_duckdb_raw"] = compare(methods["duckdb_raw"]["result"], methods[m]["result"])
            fe_res = entry.get("feast")
            if fe_res and fe_res.get("ok") and "result" in methods.get(m, {}):
                checks[f"{m}_vs_feast"] = compare(fe_res["oracle"], methods[m]["result"])
        entry["checks"] = checks
        ratios: dict[str, float] = {}
        for m, r in methods.items():
            if raw and "median_s" in r:
                r["raw_s"] = raw
                ratios[f"{m}/duckdb_raw"] = r["median_s"] / raw
            rows.append((d.name, r))
        fe_res = entry.get("feast")
        if fe_res:
            rows.append((d.name, {"mode": "feast", **fe_res, "raw_s": raw} if fe_res.get("ok") else
                         {"mode": "feast", "error": f"rc={fe_res['returncode']} {fe_res.get('aborted') or ''}"}))
            for m in ("larder_table", "larder_dataset", "larder_client"):
                if fe_res.get("ok") and "median_s" in methods.get(m, {}):
                    ratios[f"feast/{m}"] = fe_res["median_s"] / methods[m]["median_s"]
        entry["ratios"] = ratios
    Path(args.json_out).write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(report, indent=1, default=str))
    print()
    print(table(rows, None))
    print("\npeak+ = peak RSS during a join above the RSS just before it (inputs loaded; worst run); out MB = the result's"
          "\nsize (pandas memory_usage(deep=True) for larder_client's DataFrame, Arrow buffers otherwise); x out = peak+ / out;"
          "\nx arrow = peak+ / the same rows' Arrow size;"
          "\n* = Feast's whole-process peak RSS (feast_bench.py)")
    for d in sizes:
        entry = report["sizes"][d.name]
        print(f"\n{d.name}: ratios " + ", ".join(f"{k} {v:.2f}" for k, v in entry["ratios"].items()))
        for k, v in entry["checks"].items():
            print(f"  {k}: " + ("identical" if v.get("identical") else json.dumps(v)))


if __name__ == "__main__":
    main()
