"""Feature-table write and read throughput: larder beside the raw deltalake calls doing the same work.

* merge: ``fe.write_table(name, df)`` upserting M rows (half updates, half inserts) into an N-row table,
  beside ``DeltaTable.merge(...).when_matched_update_all().when_not_matched_insert_all()`` on the same
  pandas input (converted with ``pa.Table.from_pandas``, as a user of raw deltalake would).
* read: ``fe.read_table(name)`` of the N-row table to pandas, beside ``DeltaTable(path).to_pandas()``.

Each repeat merges into a fresh copy of the same base table. Runs alternate larder / raw so that noise
on a shared machine hits both. Prints JSON, then a table.

    python benchmarks/tables.py --rows 10_000_000 --merge-rows 1_000_000 --repeats 5

Each merge runs on its own copy of the base table (the copied catalog is re-pointed at the copy, since
the catalog stores absolute paths), after ``os.sync()``; both merges must leave the copy one version
newer with the same row count. Reported: per-run times, medians, the ratio of medians, the paired
ratios (larder / raw within each alternating pair) and their median, and larder's phases (from
``TableService.write_table(timings=...)``; ``commit`` is the delta-rs merge itself). ``--workdir``
keeps the base table for the next run with the same sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable

os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")

from larder.client import FeatureEngineeringClient  # noqa: E402


def make_frame(ids: np.ndarray, n_features: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {"entity_id": ids}
    for i in range(n_features):
        data[f"f{i}"] = rng.standard_normal(len(ids))
    return pd.DataFrame(data)


def repoint_catalog(root: Path, table_path: str) -> None:
    """Point the copied catalog's table record at the copied Delta table (paths are stored absolute)."""
    with sqlite3.connect(root / "catalog.db") as con:
        con.execute("UPDATE feature_tables SET path = ? WHERE full_name = 'main.default.bench'", (table_path,))


def check_merged(path: str, want_rows: int, base_version: int) -> dict[str, int]:
    """Both merges must do the same work: one new version of the copy holding the expected rows.

    Returns delta-rs' own timings of that merge (from the commit's operation metrics).
    """
    table = DeltaTable(path)
    rows = int(pa.table(table.get_add_actions(flatten=True)).column("num_records").to_numpy().sum())
    if table.version() != base_version + 1 or rows != want_rows:
        raise SystemExit(f"merge check failed: version {table.version()} (want {base_version + 1}), "
                         f"{rows} rows (want {want_rows})")
    metrics = table.history(1)[0].get("operationMetrics") or {}
    return {k: int(metrics[k]) for k in ("execution_time_ms", "scan_time_ms", "rewrite_time_ms") if k in metrics}


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--merge-rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workdir", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="larder-bench-tables-"))
    work.mkdir(parents=True, exist_ok=True)
    base_root = work / f"base-{args.rows}-{args.features}"
    marker = base_root / "BUILT"
    t0 = time.perf_counter()
    if not (args.workdir and marker.exists()):  # a kept --workdir reuses its base table
        shutil.rmtree(base_root, ignore_errors=True)
        fe = FeatureEngineeringClient(base_root)
        chunk = 2_000_000
        for start in range(0, args.rows, chunk):
            ids = np.arange(start, min(start + chunk, args.rows), dtype=np.int64)
            df = make_frame(ids, args.features, seed=start)
            if start == 0:
                fe.create_table("bench", primary_keys="entity_id", df=df)
            else:
                fe.write_table("bench", df)
        fe.close()
        marker.write_text("ok\n")
    fe = FeatureEngineeringClient(base_root)
    build_s = time.perf_counter() - t0
    table_path = fe.get_table("bench").path
    base_version = fe.get_table("bench").version
    fe.close()

    half = args.merge_rows // 2
    upd = np.random.default_rng(1).choice(args.rows, size=half, replace=False).astype(np.int64)
    new = np.arange(args.rows, args.rows + args.merge_rows - half, dtype=np.int64)
    merge_df = make_frame(np.concatenate([upd, new]), args.features, seed=99)

    results: dict[str, list[float]] = {"larder_merge": [], "raw_merge": [], "larder_read": [], "raw_read": [],
                                       "raw_read_dataset": []}
    catalog_open: list[float] = []
    delta_rs_ms: dict[str, list[dict[str, int]]] = {"larder": [], "raw": []}
    larder_phases: list[dict[str, float]] = []
    for r in range(args.repeats):
        for kind in ("larder", "raw") if r % 2 == 0 else ("raw", "larder"):
            root = work / f"run-{kind}"
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(base_root, root)
            path = str(root / Path(table_path).relative_to(base_root))
            repoint_catalog(root, path)  # the catalog stores absolute paths: point the copy at its own table
            os.sync()  # start each run with no dirty pages left by the copy (or by the previous run)
            if kind == "larder":
                client = FeatureEngineeringClient(root)
                # opening the catalog (engine, schema check) is once per client, like `import deltalake`
                catalog_open.append(timed(lambda: client._ctx.catalog))
                phases: dict[str, float] = {}
                # client.write_table is exactly this call; the service's form also reports its phases
                results["larder_merge"].append(
                    timed(lambda: client._tables.write_table("bench", merge_df, timings=phases)))
                larder_phases.append(phases)
                client.close()
            else:
                def raw_merge() -> None:
                    src = pa.Table.from_pandas(merge_df, preserve_index=False)
                    (DeltaTable(path).merge(src, predicate="t.entity_id = s.entity_id", source_alias="s",
                                            target_alias="t")
                     .when_matched_update_all().when_not_matched_insert_all().execute())
                results["raw_merge"].append(timed(raw_merge))
            delta_rs_ms[kind].append(check_merged(path, args.rows + len(new), base_version))
            shutil.rmtree(root, ignore_errors=True)

    # Reads: the same base table, the three readers interleaved, each run once before timing (warm cache).
    client = FeatureEngineeringClient(base_root)
    readers = {
        "larder_read": lambda: client.read_table("bench"),
        "raw_read": lambda: DeltaTable(table_path).to_pandas(),
        # the same reader larder uses: pyarrow over the snapshot's active files
        "raw_read_dataset": lambda: ds.dataset(DeltaTable(table_path).file_uris(), format="parquet")
        .to_table().to_pandas(),
    }
    for fn in readers.values():
        fn()
    for r in range(max(args.repeats, 5)):
        order = list(readers) if r % 2 == 0 else list(reversed(readers))
        for key in order:
            results[key].append(timed(readers[key]))
    client.close()

    med = {k: statistics.median(v) for k, v in results.items()}
    paired = [a / b for a, b in zip(results["larder_merge"], results["raw_merge"], strict=True)]
    overhead = [t - p["commit"] for t, p in zip(results["larder_merge"], larder_phases, strict=True)]
    phase_med = {k: statistics.median(p[k] for p in larder_phases) for k in larder_phases[0]}
    out = {
        "benchmark": "tables",
        "rows": args.rows, "merge_rows": args.merge_rows, "features": args.features, "repeats": args.repeats,
        "build_seconds": round(build_s, 2),
        "runs_seconds": {k: [round(x, 3) for x in v] for k, v in results.items()},
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "ratio_merge_larder_over_raw": round(med["larder_merge"] / med["raw_merge"], 3),
        "paired_ratios_merge": [round(x, 3) for x in paired],
        "median_paired_ratio_merge": round(statistics.median(paired), 3),
        "larder_merge_phases_median_seconds": {k: round(v, 4) for k, v in phase_med.items()},
        "catalog_open_median_seconds": round(statistics.median(catalog_open), 3),
        # larder's own work around the delta-rs merge: its total minus its commit phase, per run
        "larder_overhead_median_seconds": round(statistics.median(overhead), 3),
        "ratio_merge_raw_plus_larder_overhead_over_raw": round(1 + statistics.median(overhead) / med["raw_merge"], 3),
        "delta_rs_merge_metrics_ms": delta_rs_ms,
        "ratio_read_larder_over_raw": round(med["larder_read"] / med["raw_read"], 3),
        "ratio_read_larder_over_raw_dataset": round(med["larder_read"] / med["raw_read_dataset"], 3),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    print(json.dumps(out, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2))
    print()
    print(f"{'operation':<40} {'larder (s)':>11} {'raw (s)':>9} {'ratio':>7}")
    print(f"{f'merge {args.merge_rows:,} into {args.rows:,} rows':<40} {med['larder_merge']:>11.2f} "
          f"{med['raw_merge']:>9.2f} {out['ratio_merge_larder_over_raw']:>7.2f}")
    print(f"{'  median of the paired merge ratios':<40} {'':>11} {'':>9} {out['median_paired_ratio_merge']:>7.2f}")
    print(f"{f'read {args.rows:,} rows to pandas':<40} {med['larder_read']:>11.2f} {med['raw_read']:>9.2f} "
          f"{out['ratio_read_larder_over_raw']:>7.2f}")
    print(f"{'  same, raw = pyarrow over active files':<40} {med['larder_read']:>11.2f} "
          f"{med['raw_read_dataset']:>9.2f} {out['ratio_read_larder_over_raw_dataset']:>7.2f}")
    print()
    print("larder merge phases (median s): "
          + ", ".join(f"{k} {v:.3f}" for k, v in phase_med.items())
          + f"; first catalog use per client {out['catalog_open_median_seconds']:.3f}")
    print(f"larder's work outside the delta-rs merge: median {out['larder_overhead_median_seconds']:.3f} s "
          f"= {100 * (out['ratio_merge_raw_plus_larder_overhead_over_raw'] - 1):.1f}% of the raw merge median")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
