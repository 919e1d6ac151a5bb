"""Feature-table write, read and point-in-time join: larder beside the raw engines doing the same work,
on local disk or on an S3 API server.

* create: ``fe.create_table(name, primary_keys=..., df=df)`` of M rows, beside ``write_deltalake`` of the
  same pandas input (converted with ``pa.Table.from_pandas``).
* merge: ``fe.write_table(name, df)`` upserting M rows (half updates, half inserts) into an N-row table,
  beside ``DeltaTable.merge(...).when_matched_update_all().when_not_matched_insert_all()`` on the same
  pandas input (converted with ``pa.Table.from_pandas``, as a user of raw deltalake would).
* read: ``fe.read_table(name)`` of the N-row table to pandas, beside ``DeltaTable(uri).to_pandas()`` and
  beside pyarrow reading the snapshot's active files itself (on S3 with pyarrow's own S3 client).
* pit: ``fe.create_training_set(df=labels, feature_lookups=[FeatureLookup(..., timestamp_lookup_key=...)],
  label=...).load_df()`` over a time-series table of P rows, beside delta-rs reading the same table
  (``DeltaTable(uri).to_pyarrow_table()``) and DuckDB's ``ASOF LEFT JOIN`` of the labels to it, to pandas
  (no label order kept, no tie checks: the engines' limit). Both results are compared row by row once.

``--storage local`` (default) keeps the tables under a local directory. ``--storage s3`` starts a
``moto_server`` on a free 127.0.0.1 port (stopped at the end), creates a bucket, and every larder root
gets a ``larder.yaml`` with ``storage: s3://<bucket>/<prefix>`` and the server's ``storage_options``
(the catalog stays a local SQLite file); the raw contenders read and write the same objects with the
same options. S3's default sizes are smaller (``--rows 1000000 --merge-rows 100000``): moto keeps every
object in memory.

Each repeat merges into a fresh copy of the same base table (local: a copied directory; S3: a
server-side copy of the objects), and the copied catalog is re-pointed at the copy; both merges must
leave the copy one version newer with the same row count. Runs alternate larder / raw (the order swapped
every pair) so that noise on a shared machine hits both. Reported: per-run times, medians, ratios of
medians, paired ratios (larder / raw within each alternating pair) and their median, and larder's merge
phases (from ``TableService.write_table(timings=...)``; ``commit`` is the delta-rs merge itself).
``--workdir`` keeps the local base tables for the next run with the same sizes. Prints JSON, then a table.

    python benchmarks/tables.py --rows 10_000_000 --merge-rows 1_000_000 --repeats 5
    python benchmarks/tables.py --storage s3 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import yaml
from deltalake import DeltaTable, write_deltalake

os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from _services import AWS_TEST_ENV, s3_options, start_moto  # noqa: E402
from larder import FeatureLookup  # noqa: E402
from larder.client import FeatureEngineeringClient  # noqa: E402

TABLE = "main.default.bench"


class LocalStorage:
    """Delta tables under each larder root's own ``tables/`` directory."""

    name = "local"
    options: dict[str, str] | None = None

    def __init__(self, work: Path) -> None:
        self.work = work

    def settings(self, root: Path) -> dict[str, Any] | None:
        return None

    def table_uri(self, root: Path, table: str) -> str:
        return str(root / "tables" / "main" / "default" / table)

    def copy_root(self, src: Path, dst: Path) -> None:
        shutil.copytree(src, dst)

    def remove_root(self, root: Path) -> None:
        shutil.rmtree(root, ignore_errors=True)

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, Callable[[str], str]]:
        return pafs.LocalFileSystem(), lambda uri: uri

    def describe(self) -> dict[str, Any]:
        return {"storage": "local"}

    def close(self) -> None:
        pass


class S3Storage:
    """Delta tables on a moto S3 API server started here; each root's tables under its own prefix."""

    name = "s3"

    def __init__(self, work: Path) -> None:
        import boto3

        self.work = work
        os.environ.update(AWS_TEST_ENV)
        self.service = start_moto()
        self.endpoint = f"http://127.0.0.1:{self.service.port}"
        self.options = s3_options(self.endpoint)
        self.bucket = f"larder-bench-{uuid.uuid4().hex[:8]}"
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name=AWS_TEST_ENV["AWS_DEFAULT_REGION"])
        self.s3.create_bucket(Bucket=self.bucket)

    def _prefix(self, root: Path) -> str:
        return f"{root.name}/tables"

    def settings(self, root: Path) -> dict[str, Any]:
        return {"storage": f"s3://{self.bucket}/{self._prefix(root)}", "storage_options": dict(self.options)}

    def table_uri(self, root: Path, table: str) -> str:
        return f"s3://{self.bucket}/{self._prefix(root)}/main/default/{table}"

    def _keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix + "/")
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def copy_root(self, src: Path, dst: Path) -> None:
        """The root's local files (catalog) copied, and its objects copied on the server."""
        shutil.copytree(src, dst)
        write_settings(dst, self.settings(dst))
        old, new = self._prefix(src), self._prefix(dst)
        for key in self._keys(old):
            self.s3.copy_object(Bucket=self.bucket, Key=new + key[len(old):],
                                CopySource={"Bucket": self.bucket, "Key": key})

    def remove_root(self, root: Path) -> None:
        keys = self._keys(self._prefix(root))
        for start in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=self.bucket,
                                   Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]]})
        shutil.rmtree(root, ignore_errors=True)

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, Callable[[str], str]]:
        """pyarrow's own S3 client (not delta-rs') on the same server, and how it names an s3:// URI."""
        fs = pafs.S3FileSystem(access_key=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
                               secret_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
                               region=AWS_TEST_ENV["AWS_DEFAULT_REGION"],
                               endpoint_override=self.endpoint.removeprefix("http://"), scheme="http")
        return fs, lambda uri: uri.removeprefix("s3://")

    def describe(self) -> dict[str, Any]:
        import moto

        return {"storage": "s3", "server": f"moto_server {moto.__version__} on 127.0.0.1"}

    def close(self) -> None:
        self.service.stop()


def write_settings(root: Path, settings: dict[str, Any] | None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    if settings is not None:
        (root / "larder.yaml").write_text(yaml.safe_dump(settings))


def make_frame(ids: np.ndarray, n_features: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {"entity_id": ids}
    for i in range(n_features):
        data[f"f{i}"] = rng.standard_normal(len(ids))
    return pd.DataFrame(data)


def repoint_catalog(root: Path, table_uri: str) -> None:
    """Point the copied catalog's table record at the copied Delta table."""
    with sqlite3.connect(root / "catalog.db") as con:
        con.execute("UPDATE feature_tables SET path = ? WHERE full_name = ?", (table_uri, TABLE))


def check_merged(uri: str, options: dict[str, str] | None, want_rows: int, base_version: int) -> dict[str, int]:
    """Both merges must do the same work: one new version of the copy holding the expected rows.

    Returns delta-rs' own timings of that merge (from the commit's operation metrics).
    """
    table = DeltaTable(uri, storage_options=options)
    rows = int(pa.table(table.get_add_actions(flatten=True)).column("num_records").to_numpy().sum())
    if table.version() != base_version + 1 or rows != want_rows:
        raise SystemExit(f"merge check failed: version {table.version()} (want {base_version + 1}), "
                         f"{rows} rows (want {want_rows})")
    metrics = table.history(1)[0].get("operationMetrics") or {}
    return {k: int(metrics[k]) for k in ("execution_time_ms", "scan_time_ms", "rewrite_time_ms") if k in metrics}


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def build_base(storage: LocalStorage | S3Storage, root: Path, rows: int, features: int, reuse: bool) -> None:
    """The N-row base table ``bench`` (kept in a --workdir on local disk)."""
    marker = root / "BUILT"
    if reuse and marker.exists():
        return
    storage.remove_root(root)
    write_settings(root, storage.settings(root))
    fe = FeatureEngineeringClient(root)
    chunk = 2_000_000
    for start in range(0, rows, chunk):
        ids = np.arange(start, min(start + chunk, rows), dtype=np.int64)
        df = make_frame(ids, features, seed=start)
        if start == 0:
            fe.create_table("bench", primary_keys="entity_id", df=df)
        else:
            fe.write_table("bench", df)
    fe.close()
    marker.write_text("ok\n")


def pit_frames(feature_rows: int, label_rows: int, features: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A time-series table (10 rows per entity at random times of 2025) and labels at random times,
    a tenth of them for entities the table does not hold."""
    rng = np.random.default_rng(5)
    entities = max(feature_rows // 10, 1)
    start = np.datetime64("2025-01-01T00:00:00", "us")
    year_us = 365 * 24 * 3600 * 10**6
    ts = pd.DataFrame({"entity_id": np.repeat(np.arange(entities, dtype=np.int64), 10)[:feature_rows],
                       "event_timestamp": start + rng.choice(year_us, size=feature_rows, replace=False)
                       .astype("timedelta64[us]")})
    for i in range(features):
        ts[f"f{i}"] = rng.standard_normal(feature_rows)
    labels = pd.DataFrame({"row_id": np.arange(label_rows, dtype=np.int64),
                           "entity_id": rng.integers(0, int(entities * 1.1) + 1, size=label_rows),
                           "event_timestamp": start + rng.integers(0, year_us, size=label_rows)
                           .astype("timedelta64[us]"),
                           "label": rng.integers(0, 2, size=label_rows)})
    return ts, labels


def same_rows(larder_df: pd.DataFrame, raw_df: pd.DataFrame, columns: list[str]) -> None:
    a = larder_df.sort_values("row_id").reset_index(drop=True)
    b = raw_df.sort_values("row_id").reset_index(drop=True)
    if len(a) != len(b):
        raise SystemExit(f"pit check failed: larder {len(a)} rows, raw {len(b)} rows")
    for col in columns:
        x, y = a[col].to_numpy(dtype=float, na_value=np.nan), b[col].to_numpy(dtype=float, na_value=np.nan)
        if not np.array_equal(x, y, equal_nan=True):
            raise SystemExit(f"pit check failed: column {col} differs from the raw ASOF join")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storage", choices=("local", "s3"), default="local",
                    help="local directory, or an S3 API server (moto_server) started for the run")
    ap.add_argument("--rows", type=int, default=None, help="rows of the base table (10M local, 1M s3)")
    ap.add_argument("--merge-rows", type=int, default=None, help="rows created / merged (1M local, 100k s3)")
    ap.add_argument("--features", type=int, default=10)
    ap.add_argument("--pit-feature-rows", type=int, default=1_000_000, help="rows of the time-series table")
    ap.add_argument("--pit-label-rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workdir", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()
    s3 = args.storage == "s3"
    args.rows = args.rows or (1_000_000 if s3 else 10_000_000)
    args.merge_rows = args.merge_rows or (100_000 if s3 else 1_000_000)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="larder-bench-tables-"))
    work.mkdir(parents=True, exist_ok=True)
    storage: LocalStorage | S3Storage = S3Storage(work) if s3 else LocalStorage(work)
    try:
        out = run(args, work, storage)
    finally:
        storage.close()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2))
    print_table(out)


def run(args: argparse.Namespace, work: Path, storage: LocalStorage | S3Storage) -> dict[str, Any]:
    options = storage.options
    reuse = bool(args.workdir) and storage.name == "local"  # objects on moto live as long as the server
    base_root = work / f"base-{args.rows}-{args.features}"
    t0 = time.perf_counter()
    build_base(storage, base_root, args.rows, args.features, reuse)
    build_s = time.perf_counter() - t0
    fe = FeatureEngineeringClient(base_root)
    base_version = fe.get_table("bench").version
    fe.close()
    base_uri = storage.table_uri(base_root, "bench")

    half = args.merge_rows // 2
    upd = np.random.default_rng(1).choice(args.rows, size=half, replace=False).astype(np.int64)
    new = np.arange(args.rows, args.rows + args.merge_rows - half, dtype=np.int64)
    merge_df = make_frame(np.concatenate([upd, new]), args.features, seed=99)

    results: dict[str, list[float]] = {k: [] for k in (
        "larder_create", "raw_create", "larder_merge", "raw_merge", "larder_read", "raw_read",
        "raw_read_dataset", "larder_pit", "raw_pit")}
    catalog_open: list[float] = []
    delta_rs_ms: dict[str, list[dict[str, int]]] = {"larder": [], "raw": []}
    larder_phases: list[dict[str, float]] = []

    # Create: a new table of the M merge rows, in a root of its own per run.
    for r in range(args.repeats):
        for kind in ("larder", "raw") if r % 2 == 0 else ("raw", "larder"):
            root = work / f"create-{kind}"
            storage.remove_root(root)
            write_settings(root, storage.settings(root))
            uri = storage.table_uri(root, "bench")
            if kind == "larder":
                client = FeatureEngineeringClient(root)
                timed(lambda: client._ctx.catalog)  # the catalog is opened outside the timed call, as for the merge
                results["larder_create"].append(
                    timed(lambda: client.create_table("bench", primary_keys="entity_id", df=merge_df)))
                client.close()
            else:
                results["raw_create"].append(timed(lambda: write_deltalake(
                    uri, pa.Table.from_pandas(merge_df, preserve_index=False), storage_options=options)))
            if DeltaTable(uri, storage_options=options).version() != 0:
                raise SystemExit(f"create check failed: {uri} is not at version 0")
            storage.remove_root(root)

    # Merge: into a fresh copy of the base table per run.
    for r in range(args.repeats):
        for kind in ("larder", "raw") if r % 2 == 0 else ("raw", "larder"):
            root = work / f"run-{kind}"
            storage.remove_root(root)
            storage.copy_root(base_root, root)
            uri = storage.table_uri(root, "bench")
            repoint_catalog(root, uri)
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
                    (DeltaTable(uri, storage_options=options)
                     .merge(src, predicate="t.entity_id = s.entity_id", source_alias="s", target_alias="t")
                     .when_matched_update_all().when_not_matched_insert_all().execute())
                results["raw_merge"].append(timed(raw_merge))
            delta_rs_ms[kind].append(check_merged(uri, options, args.rows + len(new), base_version))
            storage.remove_root(root)

    # Reads: the same base table, the three readers interleaved, each run once before timing (warm cache).
    client = FeatureEngineeringClient(base_root)
    fs, fs_path = storage.arrow_filesystem()
    readers: dict[str, Callable[[], object]] = {
        "larder_read": lambda: client.read_table("bench"),
        "raw_read": lambda: DeltaTable(base_uri, storage_options=options).to_pandas(),
        # pyarrow over the snapshot's active files, through its own filesystem
        "raw_read_dataset": lambda: ds.dataset(
            [fs_path(u) for u in DeltaTable(base_uri, storage_options=options).file_uris()],
            format="parquet", filesystem=fs).to_table().to_pandas(),
    }
    for fn in readers.values():
        fn()
    for r in range(max(args.repeats, 5)):
        order = list(readers) if r % 2 == 0 else list(reversed(readers))
        for key in order:
            results[key].append(timed(readers[key]))
    client.close()

    # Point-in-time join: a time-series table, labels at random times.
    pit_root = work / f"pit-{args.pit_feature_rows}-{args.features}"
    storage.remove_root(pit_root)
    write_settings(pit_root, storage.settings(pit_root))
    ts_df, labels = pit_frames(args.pit_feature_rows, args.pit_label_rows, args.features)
    feats = [f"f{i}" for i in range(args.features)]
    client = FeatureEngineeringClient(pit_root)
    client.create_table("bench_ts", primary_keys=["entity_id", "event_timestamp"], timeseries_column="event_timestamp",
                        df=ts_df)
    pit_uri = storage.table_uri(pit_root, "bench_ts")
    lookup = FeatureLookup(table_name="bench_ts", lookup_key="entity_id", timestamp_lookup_key="event_timestamp")
    sql = ("SELECT l.*, " + ", ".join(f"f.{c}" for c in feats) + " FROM labels l ASOF LEFT JOIN features f "
           "ON l.entity_id = f.entity_id AND l.event_timestamp >= f.event_timestamp")

    def raw_pit() -> pd.DataFrame:
        features = DeltaTable(pit_uri, storage_options=options).to_pyarrow_table()
        con = duckdb.connect()
        con.register("labels", labels)
        con.register("features", features)
        try:
            return con.sql(sql).df()
        finally:
            con.close()

    pits: dict[str, Callable[[], pd.DataFrame]] = {
        "larder_pit": lambda: client.create_training_set(df=labels, feature_lookups=[lookup], label="label")
        .load_df(),
        "raw_pit": raw_pit,
    }
    same_rows(pits["larder_pit"](), pits["raw_pit"](), feats)  # also the warm-up run of each
    for r in range(max(args.repeats, 5)):
        for key in list(pits) if r % 2 == 0 else list(reversed(pits)):
            results[key].append(timed(pits[key]))
    client.close()
    storage.remove_root(pit_root)

    med = {k: statistics.median(v) for k, v in results.items()}

    def paired(a: str, b: str) -> list[float]:
        return [x / y for x, y in zip(results[a], results[b], strict=True)]

    overhead = [t - p["commit"] for t, p in zip(results["larder_merge"], larder_phases, strict=True)]
    phase_med = {k: statistics.median(p[k] for p in larder_phases) for k in larder_phases[0]}
    ratios = {
        "create_larder_over_raw": med["larder_create"] / med["raw_create"],
        "merge_larder_over_raw": med["larder_merge"] / med["raw_merge"],
        "read_larder_over_raw": med["larder_read"] / med["raw_read"],
        "read_larder_over_raw_dataset": med["larder_read"] / med["raw_read_dataset"],
        "pit_larder_over_raw": med["larder_pit"] / med["raw_pit"],
    }
    pairs = {"create": paired("larder_create", "raw_create"), "merge": paired("larder_merge", "raw_merge"),
             "read": paired("larder_read", "raw_read"), "pit": paired("larder_pit", "raw_pit")}
    return {
        "benchmark": "tables",
        **storage.describe(),
        "rows": args.rows, "merge_rows": args.merge_rows, "features": args.features, "repeats": args.repeats,
        "pit_feature_rows": args.pit_feature_rows, "pit_label_rows": args.pit_label_rows,
        "build_seconds": round(build_s, 2),
        "runs_seconds": {k: [round(x, 3) for x in v] for k, v in results.items()},
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "ratios_of_medians": {k: round(v, 3) for k, v in ratios.items()},
        "paired_ratios": {k: [round(x, 3) for x in v] for k, v in pairs.items()},
        "median_paired_ratios": {k: round(statistics.median(v), 3) for k, v in pairs.items()},
        # the keys of earlier runs (RESULTS.md)
        "ratio_merge_larder_over_raw": round(ratios["merge_larder_over_raw"], 3),
        "median_paired_ratio_merge": round(statistics.median(pairs["merge"]), 3),
        "larder_merge_phases_median_seconds": {k: round(v, 4) for k, v in phase_med.items()},
        "catalog_open_median_seconds": round(statistics.median(catalog_open), 3),
        # larder's own work around the delta-rs merge: its total minus its commit phase, per run
        "larder_overhead_median_seconds": round(statistics.median(overhead), 3),
        "ratio_merge_raw_plus_larder_overhead_over_raw": round(1 + statistics.median(overhead) / med["raw_merge"], 3),
        "delta_rs_merge_metrics_ms": delta_rs_ms,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
    }


def print_table(out: dict[str, Any]) -> None:
    med, ratio, pair = out["median_seconds"], out["ratios_of_medians"], out["median_paired_ratios"]
    rows, m = out["rows"], out["merge_rows"]
    print()
    print(f"storage: {out['storage']}" + (f" ({out['server']})" if "server" in out else ""))
    print(f"{'operation':<46} {'larder (s)':>11} {'raw (s)':>9} {'ratio':>7} {'paired':>7}")
    lines = [
        (f"create a table of {m:,} rows", "larder_create", "raw_create", "create_larder_over_raw", "create"),
        (f"merge {m:,} into {rows:,} rows", "larder_merge", "raw_merge", "merge_larder_over_raw", "merge"),
        (f"read {rows:,} rows to pandas", "larder_read", "raw_read", "read_larder_over_raw", "read"),
        ("  same, raw = pyarrow over active files", "larder_read", "raw_read_dataset",
         "read_larder_over_raw_dataset", None),
        (f"PIT {out['pit_label_rows']:,} labels x {out['pit_feature_rows']:,} rows", "larder_pit", "raw_pit",
         "pit_larder_over_raw", "pit"),
    ]
    for label, a, b, r, p in lines:
        paired = f"{pair[p]:>7.2f}" if p else f"{'':>7}"
        print(f"{label:<46} {med[a]:>11.3f} {med[b]:>9.3f} {ratio[r]:>7.2f} {paired}")
    print()
    print("larder merge phases (median s): "
          + ", ".join(f"{k} {v:.3f}" for k, v in out["larder_merge_phases_median_seconds"].items())
          + f"; first catalog use per client {out['catalog_open_median_seconds']:.3f}")
    print(f"larder's work outside the delta-rs merge: median {out['larder_overhead_median_seconds']:.3f} s "
          f"= {100 * (out['ratio_merge_raw_plus_larder_overhead_over_raw'] - 1):.1f}% of the raw merge median")


if __name__ == "__main__":
    main()
