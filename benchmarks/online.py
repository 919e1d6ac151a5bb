"""Online features end to end: publish throughput, ``fe.get_online_features`` latency and the feature
server, each beside the raw client doing the same work, and beside Feast 0.67 on the same data.

1. Per store (SQLite, Redis, DynamoDB on moto), a snapshot table of N rows x 50 float features:

   * publish: ``fe.publish_table`` (Delta scan, latest row per key, conditional merge) in rows/s, beside
     the raw client writing the same rows from memory: sqlite3 ``executemany`` of ``INSERT OR REPLACE``
     in one transaction, a Redis pipeline of ``HSET``, boto3 ``batch_write_item`` (25 items, 4 threads,
     as many as larder's store uses);
   * lookups of 1 and of 100 random distinct keys: ``fe.get_online_features(spec, keys_df)`` (a pandas
     DataFrame in key order, typed, with found flags available) beside the raw call (sqlite3
     ``SELECT ... WHERE id IN (...)``, Redis pipelined ``HMGET``, boto3 ``batch_get_item``) and beside
     the raw call plus building the same DataFrame in key order. Calls alternate between contenders in
     a new random order every round, each contender with its own random keys, so noise on a shared
     machine hits all of them. On SQLite the raw call also runs on a second connection set up like
     larder's store (64 MB page cache, memory-mapped reads), to show what the settings alone give.

2. Feast (``benchmarks/.feast-venv``, feast[duckdb]==0.67.0; created if missing with ``--setup-feast``) on
   the peers' ``gen_data.py`` data (1M feature rows, 10k entities, 10 features; generated into
   ``benchmarks/.data/medium`` if missing): Feast's ``materialize`` into SQLite and
   ``get_online_features`` (1 and 100 entities, 300 calls) measured by ``../shared/peers/feast_bench.py``
   in a subprocess, beside larder's ``publish_table`` and ``get_online_features`` on the same rows
   (restatements resolved to the latest ``created_timestamp`` first, as the peers' README says).

3. The feature server (``larder.serving``, uvicorn, one worker) on 127.0.0.1: ``POST /features/{spec}``
   for 1 key with 50 features over a kept-alive HTTP connection, p50/p99 including the client.

Prints JSON, then tables.

    python benchmarks/online.py                                 # full run (1M rows for SQLite and Redis)
    python benchmarks/online.py --rows 100000 --dynamodb-rows 5000 --skip-feast --json-out /tmp/o.json
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from _services import AWS_TEST_ENV, ServiceProcess, free_port, start_moto, start_redis  # noqa: E402
from larder.client import FeatureEngineeringClient  # noqa: E402
from larder.online import DynamoDBStoreSpec, RedisStoreSpec, SQLiteStoreSpec, open_store  # noqa: E402
from larder.training import FeatureLookup  # noqa: E402

# the peers' tools beside the repository; LARDER_PEERS names them from a checkout elsewhere (a worktree)
PEERS = Path(os.environ.get("LARDER_PEERS", REPO.parent / "shared" / "peers"))
FEAST_VENV = REPO / "benchmarks" / ".feast-venv"
FEAST_DATA = REPO / "benchmarks" / ".data" / "medium"
WARMUP = 20


# -- helpers ------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "mean_ms": float(np.mean(ms)), "calls": len(ms)}


def interleaved(contenders: dict[str, Callable[[np.ndarray], Any]],
                key_sets: list[np.ndarray] | dict[str, list[np.ndarray]]) -> dict[str, dict[str, float]]:
    """Latency of each contender, calls alternating between contenders in a new random order every
    round: no contender always runs first, and none always runs right after the same neighbour (a
    rotation keeps the cyclic order, so each contender would always follow the same one, e.g. the
    pandas-heavy one that leaves the CPU caches cold).

    ``key_sets`` is one list shared by all contenders, or one list per contender: independent random
    keys, so that no contender reads keys another one has just pulled into a cache it shares (SQLite's
    page cache is per connection, and contenders of one family share a connection)."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    items = list(contenders.items())
    per_name = key_sets if isinstance(key_sets, dict) else {name: key_sets for name in contenders}
    rounds = len(next(iter(per_name.values())))
    order_rng = np.random.default_rng(len(items) * 1_000_003 + rounds)
    gc.collect()
    for i in range(rounds):
        for j in order_rng.permutation(len(items)).tolist():
            name, fn = items[j]
            keys = per_name[name][i]
            t0 = time.perf_counter()
            fn(keys)
            dt = (time.perf_counter() - t0) * 1e3
            if i >= WARMUP:
                times[name].append(dt)
    return {name: summary(ms) for name, ms in times.items()}


def wide_table(n_rows: int, n_features: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {"id": pa.array(np.arange(n_rows, dtype=np.int64))}
    for i in range(n_features):
        cols[f"f{i}"] = pa.array(rng.standard_normal(n_rows))
    return pa.table(cols)


def machine() -> dict[str, Any]:
    import duckdb
    import redis

    import larder

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    redis_server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "nproc": os.cpu_count(), "ram_gb": round(mem_gb, 1), "cpu": cpu, "load_avg_at_start": os.getloadavg(),
        "python": platform.python_version(), "larder": larder.__version__, "pandas": pd.__version__,
        "pyarrow": pa.__version__, "duckdb": duckdb.__version__, "sqlite": sqlite3.sqlite_version,
        "redis_py": redis.__version__, "redis_server": redis_server,
    }


# -- raw clients ----------------------------------------------------------------------------------
class RawSQLite:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.dir = Path(tempfile.mkdtemp(prefix="larder-bench-raw-"))
        self.con = sqlite3.connect(self.dir / "raw.db", isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        cols = ", ".join(f"{n} REAL" for n in names)
        self.con.execute(f"CREATE TABLE raw (id INTEGER PRIMARY KEY, {cols})")
        self.select = {}
        # a second connection set up as larder's store sets up its own (64 MB page cache, the file read
        # through a memory map), shown beside the plain one so the store's settings are not mistaken
        # for larder's code
        self.tuned = sqlite3.connect(self.dir / "raw.db", isolation_level=None)
        self.tuned.execute("PRAGMA cache_size=-65536")
        self.tuned.execute(f"PRAGMA mmap_size={1 << 32}")

    def write(self, table: pa.Table) -> None:
        sql = f"INSERT OR REPLACE INTO raw VALUES ({', '.join('?' * (1 + len(self.names)))})"
        self.con.execute("BEGIN")
        for batch in table.to_batches(50_000):
            cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            self.con.executemany(sql, zip(*cols, strict=True))
        self.con.execute("COMMIT")

    def read(self, ids: np.ndarray) -> list[tuple[Any, ...]]:
        n = len(ids)
        if n not in self.select:
            self.select[n] = f"SELECT id, {', '.join(self.names)} FROM raw WHERE id IN ({','.join('?' * n)})"
        return self.con.execute(self.select[n], ids.tolist()).fetchall()

    def read_tuned(self, ids: np.ndarray) -> list[tuple[Any, ...]]:
        n = len(ids)
        if n not in self.select:
            self.select[n] = f"SELECT id, {', '.join(self.names)} FROM raw WHERE id IN ({','.join('?' * n)})"
        return self.tuned.execute(self.select[n], ids.tolist()).fetchall()

    def read_frame(self, ids: np.ndarray) -> pd.DataFrame:
        rows = self.read(ids)
        df = pd.DataFrame.from_records(rows, columns=["id", *self.names]).set_index("id")
        return df.reindex(ids).reset_index()

    def read_dict(self, ids: np.ndarray) -> dict[str, list[Any]]:
        keys = ids.tolist()
        by_id = {row[0]: row for row in self.read(ids)}
        empty = (None,) * (1 + len(self.names))
        rows = [by_id.get(k, empty) for k in keys]
        out = {"id": keys}
        for j, name in enumerate(self.names, start=1):
            out[name] = [row[j] for row in rows]
        return out

    def close(self) -> None:
        self.con.close()
        self.tuned.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class RawRedis:
    def __init__(self, url: str, names: list[str]) -> None:
        import redis

        self.names = names
        self.r = redis.Redis.from_url(url)

    def write(self, table: pa.Table) -> None:
        for batch in table.to_batches(5_000):
            ids = batch.column(0).to_pylist()
            cols = [batch.column(i).to_pylist() for i in range(1, batch.num_columns)]
            pipe = self.r.pipeline(transaction=False)
            for j, key in enumerate(ids):
                pipe.hset(f"raw:{key}", mapping={n: repr(c[j]) for n, c in zip(self.names, cols, strict=True)})
            pipe.execute()

    def read(self, ids: np.ndarray) -> list[Any]:
        pipe = self.r.pipeline(transaction=False)
        for key in ids.tolist():
            pipe.hmget(f"raw:{key}", self.names)
        return pipe.execute()

    def read_frame(self, ids: np.ndarray) -> pd.DataFrame:
        rows = self.read(ids)
        values = np.array([[np.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64)
        df = pd.DataFrame(values, columns=self.names)
        df.insert(0, "id", ids)
        return df

    def read_dict(self, ids: np.ndarray) -> dict[str, list[Any]]:
        rows = self.read(ids)
        out: dict[str, list[Any]] = {"id": ids.tolist()}
        for j, name in enumerate(self.names):
            out[name] = [None if row[j] is None else float(row[j]) for row in rows]
        return out

    def close(self) -> None:
        keys = list(self.r.scan_iter("raw:*", count=10_000))
        for i in range(0, len(keys), 10_000):
            self.r.delete(*keys[i:i + 10_000])
        self.r.close()


class RawDynamo:
    def __init__(self, endpoint: str, names: list[str], table: str) -> None:
        import boto3

        self.names = names
        self.table = table
        self.client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        self.client.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                                 AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
                                 KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])

    def write(self, table: pa.Table) -> None:
        ids = table.column(0).to_pylist()
        cols = [table.column(i).to_pylist() for i in range(1, table.num_columns)]
        items = [{"id": {"N": str(k)}, **{n: {"N": repr(c[j])} for n, c in zip(self.names, cols, strict=True)}}
                 for j, k in enumerate(ids)]

        def put(chunk: list[dict[str, Any]]) -> None:
            request = {self.table: [{"PutRequest": {"Item": it}} for it in chunk]}
            while request:
                out = self.client.batch_write_item(RequestItems=request)
                request = out.get("UnprocessedItems") or {}

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(put, [items[i:i + 25] for i in range(0, len(items), 25)]))

    def read(self, ids: np.ndarray) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(0, len(ids), 100):
            request = {self.table: {"Keys": [{"id": {"N": str(k)}} for k in ids[i:i + 100].tolist()]}}
            while request:
                resp = self.client.batch_get_item(RequestItems=request)
                out += resp["Responses"].get(self.table, [])
                request = resp.get("UnprocessedKeys") or {}
        return out

    def read_dict(self, ids: np.ndarray) -> dict[str, list[Any]]:
        by_id = {int(it["id"]["N"]): it for it in self.read(ids)}
        keys = ids.tolist()
        out: dict[str, list[Any]] = {"id": keys}
        for name in self.names:
            out[name] = [float(by_id[k][name]["N"]) if k in by_id else None for k in keys]
        return out

    def read_frame(self, ids: np.ndarray) -> pd.DataFrame:
        items = self.read(ids)
        by_id = {int(it["id"]["N"]): it for it in items}
        rows = [[float(by_id[k][n]["N"]) if k in by_id else np.nan for n in self.names] for k in ids.tolist()]
        df = pd.DataFrame(np.array(rows, dtype=np.float64).reshape(len(ids), len(self.names)), columns=self.names)
        df.insert(0, "id", ids)
        return df

    def close(self) -> None:
        self.client.delete_table(TableName=self.table)


# -- 1. stores -------------------------------------------------------------------------------------
def bench_store(kind: str, spec: Any, raw_factory: Callable[[list[str]], Any], rows: int, n_features: int,
                calls: int, seed: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"larder-bench-online-{kind}-"))
    fe = FeatureEngineeringClient(work / "root")
    names = [f"f{i}" for i in range(n_features)]
    out: dict[str, Any] = {"store": kind, "rows": rows, "features": n_features, "load_avg": os.getloadavg()}
    raw = None
    try:
        data = wide_table(rows, n_features, seed)
        t0 = time.perf_counter()
        fe.create_table("wide", "id", df=data)
        out["create_table_s"] = time.perf_counter() - t0
        print(f"[{kind}] table of {rows:,} rows written in {out['create_table_s']:.1f}s", file=sys.stderr)
        t0 = time.perf_counter()
        pub = fe.publish_table("wide", spec)
        dt = time.perf_counter() - t0
        out["publish"] = {"larder_s": dt, "larder_rows_per_s": pub.rows / dt, "rows": pub.rows}
        print(f"[{kind}] publish {dt:.1f}s", file=sys.stderr)
        raw = raw_factory(names)
        t0 = time.perf_counter()
        raw.write(data)
        dt = time.perf_counter() - t0
        out["publish"].update({"raw_s": dt, "raw_rows_per_s": rows / dt,
                               "larder_vs_raw_time": out["publish"]["larder_s"] / dt})
        print(f"[{kind}] raw write {dt:.1f}s", file=sys.stderr)
        del data
        gc.collect()
        feature_spec = fe.create_feature_spec("wide_spec", [FeatureLookup("wide", "id")])
        store = open_store(spec, Path(fe.root))
        online_table = pub.online_table
        rng = np.random.default_rng(seed + 1)
        lookups: dict[str, Any] = {}
        for n in (1, 100):
            key_sets = [rng.choice(rows, n, replace=False).astype(np.int64) for _ in range(calls + WARMUP)]
            check = fe.get_online_features(feature_spec, pd.DataFrame({"id": key_sets[0]}))
            expect = raw.read_frame(key_sets[0])
            np.testing.assert_allclose(check[names].to_numpy(), expect[names].to_numpy())
            got = fe.get_online_features(feature_spec, {"id": key_sets[0].tolist()}, output="dict")
            assert got == raw.read_dict(key_sets[0])
            contenders = {
                # store level: keys in, typed values out
                "read_values": lambda ids: store.read_values(online_table, [str(k) for k in ids.tolist()]),
                "read_batch": lambda ids: store.read_batch(online_table, pa.table({"id": ids})),
                "raw": raw.read,
                # get_online_features, beside the raw call plus building the same output
                "larder_dict": lambda ids: fe.get_online_features(feature_spec, {"id": ids.tolist()},
                                                                  output="dict"),
                "raw_dict": raw.read_dict,
                "larder": lambda ids: fe.get_online_features(feature_spec, pd.DataFrame({"id": ids})),
                "raw_dataframe": raw.read_frame,
            }
            if isinstance(raw, RawSQLite):
                contenders["raw_mmap"] = raw.read_tuned
            # each contender its own random keys (same count, same distribution): a key one contender
            # just read is not handed warm to the next one through a shared page cache
            res = interleaved(contenders, {name: key_sets if j == 0 else
                                           [rng.choice(rows, n, replace=False).astype(np.int64)
                                            for _ in range(calls + WARMUP)]
                                           for j, name in enumerate(contenders)})
            res["read_values_vs_raw_p50"] = res["read_values"]["p50_ms"] / res["raw"]["p50_ms"]
            if "raw_mmap" in res:
                res["read_values_vs_raw_mmap_p50"] = res["read_values"]["p50_ms"] / res["raw_mmap"]["p50_ms"]
            res["larder_dict_vs_raw_dict_p50"] = res["larder_dict"]["p50_ms"] / res["raw_dict"]["p50_ms"]
            res["larder_vs_raw_p50"] = res["larder"]["p50_ms"] / res["raw"]["p50_ms"]
            res["larder_vs_raw_dataframe_p50"] = res["larder"]["p50_ms"] / res["raw_dataframe"]["p50_ms"]
            lookups[f"n{n}"] = res
            print(f"[{kind}] {n} keys: read_values p50 {res['read_values']['p50_ms']:.3f} ms, raw "
                  f"{res['raw']['p50_ms']:.3f} ms; dict {res['larder_dict']['p50_ms']:.3f} ms, raw dict "
                  f"{res['raw_dict']['p50_ms']:.3f} ms", file=sys.stderr)
        store.close()
        out["lookup"] = lookups
    finally:
        if raw is not None:
            raw.close()
        try:
            fe.drop_online_table("wide")
        except Exception as exc:  # noqa: BLE001 - cleanup only
            print(f"[{kind}] cleanup: {exc}", file=sys.stderr)
        fe.close()
        shutil.rmtree(work, ignore_errors=True)
    return out


# -- 2. Feast --------------------------------------------------------------------------------------
def ensure_feast(setup: bool) -> Path | None:
    py = FEAST_VENV / "bin" / "python"
    if py.exists():
        return py
    if not setup:
        return None
    subprocess.run([sys.executable, "-m", "venv", str(FEAST_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "feast[duckdb]==0.67.0", "psutil"], check=True)
    return py


def ensure_data(py: Path) -> Path:
    if not (FEAST_DATA / "features.parquet").exists():
        subprocess.run([str(py), str(PEERS / "gen_data.py"), "--entities", "10000", "--feature-rows", "1000000",
                        "--label-rows", "100000", "--out", str(FEAST_DATA)], check=True)
    return FEAST_DATA


def bench_feast(py: Path, data: Path, calls: int) -> dict[str, Any]:
    out_json = Path(tempfile.mkdtemp(prefix="larder-bench-feast-")) / "feast.json"
    cmd = [str(py), str(PEERS / "feast_bench.py"), "--data", str(data), "--offline", "duckdb", "--skip-edge",
           "--skip-historical", "--skip-check", "--online-calls", str(calls), "--json-out", str(out_json)]
    print("[feast] " + " ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        return {"error": proc.stderr[-3000:]}
    res = json.loads(out_json.read_text())
    shutil.rmtree(out_json.parent, ignore_errors=True)
    mat = res["materialize"]["duckdb"]
    on = res["online"]
    return {"version": res["versions"]["feast"], "materialize_s": mat["wall_s"],
            "materialize_source_rows_per_s": mat["source_rows_per_s"], "entities": mat["entities_expected"],
            "online_n1": {k: on["n1"][k] for k in ("p50_ms", "p99_ms", "mean_ms")},
            "online_n100": {k: on["n100"][k] for k in ("p50_ms", "p99_ms", "mean_ms")},
            "online_check_mismatches": on["check_latest_row"]["duckdb"]["mismatches"]}


def bench_larder_on_feast_data(data: Path, calls: int, seed: int) -> dict[str, Any]:
    feats = pq.read_table(data / "features.parquet")
    names = [f"f{i}" for i in range(1, 11)]
    # a larder table holds one row per (entity, time): keep each restated row's latest version
    order = pc.sort_indices(feats, [("entity_id", "ascending"), ("event_timestamp", "ascending"),
                                    ("created_timestamp", "descending")])
    feats = feats.take(order)
    ent, ts = feats.column("entity_id").to_numpy(), feats.column("event_timestamp").cast(pa.int64()).to_numpy()
    first = np.ones(len(ent), dtype=bool)
    first[1:] = (ent[1:] != ent[:-1]) | (ts[1:] != ts[:-1])
    table = feats.filter(pa.array(first)).select(["entity_id", "event_timestamp", *names])
    work = Path(tempfile.mkdtemp(prefix="larder-bench-online-feastdata-"))
    out: dict[str, Any] = {"source_rows": feats.num_rows, "table_rows": table.num_rows,
                           "load_avg": os.getloadavg()}
    fe = FeatureEngineeringClient(work / "root")
    try:
        fe.create_table("fv", "entity_id", df=table, timestamp_keys="event_timestamp")
        t0 = time.perf_counter()
        pub = fe.publish_table("fv")
        out["publish_s"] = time.perf_counter() - t0
        out["entities"] = pub.rows
        out["publish_source_rows_per_s"] = table.num_rows / out["publish_s"]
        spec = fe.create_feature_spec("fv_spec", [FeatureLookup("fv", "entity_id", feature_names=names,
                                                                allow_latest_value=True)])
        ids = np.unique(ent)
        # correctness: every entity's online row is its latest row
        latest = table.to_pandas().sort_values(["entity_id", "event_timestamp"]).drop_duplicates(
            "entity_id", keep="last").set_index("entity_id")[names]
        got = fe.get_online_features(spec, pd.DataFrame({"entity_id": ids})).set_index("entity_id")[names]
        out["check_latest_row_mismatches"] = int((~np.isclose(got.to_numpy(), latest.loc[ids].to_numpy(),
                                                             equal_nan=True)).any(axis=1).sum())
        rng = np.random.default_rng(seed)
        for n in (1, 100):
            # keys prepared before timing, as feast_bench.py prepares its entity rows
            key_sets = []
            for _ in range(calls + WARMUP):
                k = rng.choice(ids, n, replace=False)
                key_sets.append(([{"entity_id": int(x)} for x in k], pd.DataFrame({"entity_id": k})))
            res = interleaved({
                # like Feast's get_online_features(entity_rows=[{...}]).to_dict()
                "larder_dict": lambda k: fe.get_online_features(spec, k[0], output="dict"),
                "larder": lambda k: fe.get_online_features(spec, k[1]),  # DataFrame in, DataFrame out
            }, key_sets)
            out[f"online_n{n}"] = res["larder_dict"]
            out[f"online_pandas_n{n}"] = res["larder"]
    finally:
        fe.close()
        shutil.rmtree(work, ignore_errors=True)
    return out


# -- 3. feature server --------------------------------------------------------------------------------
def bench_server(n_features: int, calls: int, seed: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="larder-bench-server-"))
    root = work / "root"
    rows = 10_000
    with FeatureEngineeringClient(root) as fe:
        fe.create_table("wide", "id", df=wide_table(rows, n_features, seed))
        fe.publish_table("wide")
        fe.create_feature_spec("wide_spec", [FeatureLookup("wide", "id")])
    port = free_port()
    env = {**os.environ, "LARDER_DISABLE_PROGRESS": "1"}
    code = "import sys; from larder.serving.app import run; run(root=sys.argv[1], port=int(sys.argv[2]))"
    proc = subprocess.Popen([sys.executable, "-c", code, str(root), str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.monotonic() + 60
        while True:
            try:
                conn.request("GET", "/health")
                conn.getresponse().read()
                break
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the feature server did not start") from None
                time.sleep(0.1)
        rng = np.random.default_rng(seed)
        headers = {"content-type": "application/json"}
        ms: list[float] = []
        bodies = [json.dumps({"keys": [{"id": int(k)}]}) for k in rng.integers(0, rows, calls + 100)]
        for i, body in enumerate(bodies):
            t0 = time.perf_counter()
            conn.request("POST", "/features/wide_spec", body=body, headers=headers)
            payload = conn.getresponse().read()
            dt = (time.perf_counter() - t0) * 1e3
            if i == 0:
                answer = json.loads(payload)
                assert len(answer["features"][0]) == n_features + 1, answer
            if i >= 100:
                ms.append(dt)
        conn.close()
        return {"rows": rows, "features": n_features, "load_avg": os.getloadavg(), **summary(ms)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


# -- main ------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the wide table (SQLite)")
    ap.add_argument("--redis-rows", type=int, default=None, help="rows for Redis (default: --rows)")
    ap.add_argument("--dynamodb-rows", type=int, default=20_000,
                    help="rows for DynamoDB: moto handles a few hundred items/s and holds them in Python")
    ap.add_argument("--features", type=int, default=50)
    ap.add_argument("--calls", type=int, default=1000, help="timed lookups per case (after 20 warm-up calls)")
    ap.add_argument("--dynamodb-calls", type=int, default=300)
    ap.add_argument("--stores", default="sqlite,redis,dynamodb")
    ap.add_argument("--skip-feast", action="store_true")
    ap.add_argument("--setup-feast", action="store_true", help="create benchmarks/.feast-venv if it is missing")
    ap.add_argument("--feast-calls", type=int, default=300)
    ap.add_argument("--server-calls", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()

    res: dict[str, Any] = {"machine": machine(), "args": vars(args), "stores": {}}
    services: list[ServiceProcess] = []
    saved_env = {k: os.environ.get(k) for k in AWS_TEST_ENV}
    try:
        for kind in [s.strip() for s in args.stores.split(",") if s.strip()]:
            if kind == "sqlite":
                spec: Any = SQLiteStoreSpec()
                rows, calls = args.rows, args.calls
                raw_factory: Callable[[list[str]], Any] = RawSQLite
            elif kind == "redis":
                service = start_redis()
                services.append(service)
                url = f"redis://127.0.0.1:{service.port}/0"
                spec = RedisStoreSpec(url=url, key_prefix="bench")
                rows, calls = args.redis_rows or args.rows, args.calls

                def raw_factory(names: list[str], _url: str = url) -> Any:  # type: ignore[misc]
                    return RawRedis(_url, names)
            elif kind == "dynamodb":
                os.environ.update(AWS_TEST_ENV)
                service = start_moto()
                services.append(service)
                endpoint = f"http://127.0.0.1:{service.port}"
                spec = DynamoDBStoreSpec(endpoint_url=endpoint, region="us-east-1", table_prefix="bench__",
                                         write_mode="batch")
                rows, calls = args.dynamodb_rows, args.dynamodb_calls

                def raw_factory(names: list[str], _e: str = endpoint) -> Any:  # type: ignore[misc]
                    return RawDynamo(_e, names, "raw_bench")
            else:
                raise SystemExit(f"unknown store {kind!r}")
            res["stores"][kind] = bench_store(kind, spec, raw_factory, rows, args.features, calls, args.seed)
            res["stores"][kind]["spec"] = spec.model_dump(mode="json")
            if args.json_out:
                Path(args.json_out).write_text(json.dumps(res, indent=1, default=str))
    finally:
        for service in services:
            service.stop()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    if not args.skip_feast:
        py = ensure_feast(args.setup_feast)
        if py is None:
            res["feast"] = {"error": f"{FEAST_VENV} is missing: rerun with --setup-feast"}
        else:
            data = ensure_data(py)
            res["larder_on_feast_data"] = bench_larder_on_feast_data(data, args.feast_calls, args.seed)
            res["feast"] = bench_feast(py, data, args.feast_calls)
    res["server"] = bench_server(args.features, args.server_calls, args.seed)
    res["targets"] = targets(res)
    text = json.dumps(res, indent=1, default=str)
    if args.json_out:
        Path(args.json_out).write_text(text)
    print(text)
    print_tables(res)


def targets(res: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, r in res["stores"].items():
        if "lookup" in r:
            for ratio in ("read_values_vs_raw", "larder_dict_vs_raw_dict", "larder_vs_raw_dataframe"):
                values = {f"n{n}": round(r["lookup"][f"n{n}"][f"{ratio}_p50"], 2) for n in (1, 100)}
                out[f"{kind}_{ratio}_p50"] = {**values, "le_1.3": all(v <= 1.3 for v in values.values())}
            # a typed DataFrame beside bare tuples: not the same work, shown for information only
            out[f"{kind}_larder_dataframe_vs_raw_tuples_p50_info"] = {
                f"n{n}": round(r["lookup"][f"n{n}"]["larder_vs_raw_p50"], 2) for n in (1, 100)}
    lf, f = res.get("larder_on_feast_data"), res.get("feast")
    if lf and f and "error" not in f:
        for form, key in (("dict", "online_n1"), ("pandas", "online_pandas_n1")):
            out[f"sqlite_1key_p50_larder_{form}_le_feast"] = (round(lf[key]["p50_ms"], 3), round(f["online_n1"]["p50_ms"], 3),
                                                             lf[key]["p50_ms"] <= f["online_n1"]["p50_ms"])
        speed = f["online_n100"]["p50_ms"] / lf["online_n100"]["p50_ms"]
        out["sqlite_100key_feast_over_larder_ge_5"] = (round(speed, 2), speed >= 5)
        pub = f["materialize_s"] / lf["publish_s"]
        out["publish_feast_over_larder_ge_5"] = (round(pub, 2), pub >= 5)
    if "server" in res:
        out["server_p99_le_5ms"] = (round(res["server"]["p99_ms"], 3), res["server"]["p99_ms"] <= 5)
    return out


CONTENDERS = [
    ("read_values", "store.read_values: int keys in, typed numpy blocks + found out"),
    ("read_batch", "store.read_batch: Arrow keys in, typed Arrow table + found out"),
    ("raw", "raw client call alone: sqlite3 SELECT tuples / redis HMGET pipeline / boto3 batch_get_item"),
    ("larder_dict", "fe.get_online_features(spec, {'id': [...]}, output='dict'): {column: [values]}"),
    ("raw_dict", "raw call + the same {column: [values]} in key order"),
    ("larder", "fe.get_online_features(spec, DataFrame): typed DataFrame"),
    ("raw_dataframe", "raw call + the same DataFrame in key order"),
]


def print_tables(res: dict[str, Any]) -> None:
    print("\nlookups, 50 float features (p50 / p99 ms)")
    for name, what in CONTENDERS:
        print(f"  {name:14} {what}")
    print(f"{'store':9} {'keys':>4} " + " ".join(f"{name:>17}" for name, _ in CONTENDERS))
    for kind, r in res["stores"].items():
        for n in (1, 100):
            lk = r["lookup"][f"n{n}"]
            cells = [f"{lk[c]['p50_ms']:7.3f} / {lk[c]['p99_ms']:7.3f}" for c, _ in CONTENDERS]
            print(f"{kind:9} {n:>4} " + " ".join(f"{c:>17}" for c in cells))
    print("\nratios at p50: read_values/raw, larder_dict/raw_dict, larder/raw_dataframe, larder/raw")
    for kind, r in res["stores"].items():
        for n in (1, 100):
            lk = r["lookup"][f"n{n}"]
            print(f"{kind:9} {n:>4} {lk['read_values_vs_raw_p50']:6.2f}x {lk['larder_dict_vs_raw_dict_p50']:6.2f}x "
                  f"{lk['larder_vs_raw_dataframe_p50']:6.2f}x {lk['larder_vs_raw_p50']:6.2f}x")
    for kind, r in res["stores"].items():
        for n in (1, 100):
            lk = r["lookup"][f"n{n}"]
            if "raw_mmap" in lk:
                print(f"{kind:9} {n:>4} raw call on a connection with larder's settings (64 MB cache, memory map): "
                      f"{lk['raw_mmap']['p50_ms']:.3f} / {lk['raw_mmap']['p99_ms']:.3f} ms; read_values / it "
                      f"{lk['read_values_vs_raw_mmap_p50']:.2f}x")
    print("\npublish throughput (rows/s)")
    for kind, r in res["stores"].items():
        p = r["publish"]
        print(f"{kind:9} {r['rows']:>9,} rows  larder {p['larder_rows_per_s']:>10,.0f}  raw "
              f"{p['raw_rows_per_s']:>10,.0f}  larder time / raw time {p['larder_vs_raw_time']:.2f}")
    lf, f = res.get("larder_on_feast_data"), res.get("feast")
    if lf and f and "error" not in f:
        print("\nbeside Feast on the same data (SQLite; 1M source rows, 10k entities, 10 features)")
        print(f"publish: larder {lf['publish_s']:.2f} s vs Feast materialize {f['materialize_s']:.2f} s "
              f"({f['materialize_s'] / lf['publish_s']:.1f}x)")
        for n in (1, 100):
            a, p, b = lf[f"online_n{n}"], lf[f"online_pandas_n{n}"], f[f"online_n{n}"]
            print(f"{n:>3} entities: larder records->dict {a['p50_ms']:.3f} / {a['p99_ms']:.3f} ms, larder "
                  f"DataFrame {p['p50_ms']:.3f} / {p['p99_ms']:.3f} ms, Feast .to_dict() {b['p50_ms']:.3f} / "
                  f"{b['p99_ms']:.3f} ms (p50 ratio Feast/larder dict {b['p50_ms'] / a['p50_ms']:.2f})")
    elif f:
        print(f"\nFeast: {f.get('error')}")
    s = res["server"]
    print(f"\nfeature server, 1 key x {s['features']} features over loopback: p50 {s['p50_ms']:.3f} ms, "
          f"p99 {s['p99_ms']:.3f} ms")
    print("\ntargets:", json.dumps(res["targets"]))


if __name__ == "__main__":
    main()
