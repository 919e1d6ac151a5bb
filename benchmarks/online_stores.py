"""Online store latency and throughput: larder beside the raw client doing the same work.

For each store (SQLite, Redis, DynamoDB on moto), with N entities x F float features loaded:

* read latency p50/p99 of 1 key and of 100 keys: ``store.read_batch`` (returns a typed Arrow table
  in key order plus a found mask) beside the raw call: sqlite3 ``SELECT * ... WHERE id IN (...)`` on a
  plain table, a Redis pipeline of ``HMGET`` on the same hashes, boto3 ``batch_get_item`` on the same
  items. Larder and raw calls alternate, so noise on a shared machine hits both.
* write throughput (rows/s) of W rows in 50,000-row batches: ``store.write_batch`` (conditional,
  newest-wins merge) beside the raw unconditional upsert: sqlite3 ``executemany`` of
  ``INSERT OR REPLACE``, Redis pipelined ``HSET``, boto3 ``batch_write_item`` of 25 items on the same
  number of threads. DynamoDB is measured in both of larder's write modes.

moto answers DynamoDB calls at a few hundred items per second, so DynamoDB defaults to fewer rows
and repeats, and also reports the client process's CPU time per call (the part larder adds).
The script starts its own redis-server and moto_server on free 127.0.0.1 ports. Prints JSON, then
a table.

    python benchmarks/online_stores.py                    # 200k-row writes
    python benchmarks/online_stores.py --million          # 1M-row writes
    python benchmarks/online_stores.py --stores sqlite,redis --json-out /tmp/online.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _services import AWS_TEST_ENV, ServiceProcess, start_moto, start_redis  # noqa: E402
from larder.online import (  # noqa: E402
    ORDER_COLUMN,
    DynamoDBOnlineStore,
    OnlineTable,
    RedisOnlineStore,
    SQLiteOnlineStore,
)

BATCH_ROWS = 50_000


def features(n_features: int) -> list[str]:
    return [f"f{i}" for i in range(n_features)]


def make_rows(ids: np.ndarray, n_features: int, seed: int, order: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {"id": pa.array(ids, pa.int64())}
    for name in features(n_features):
        cols[name] = pa.array(rng.standard_normal(len(ids)))
    cols[ORDER_COLUMN] = pa.array(np.full(len(ids), order, np.int64))
    return pa.table(cols)


def online_table(name: str, n_features: int) -> OnlineTable:
    schema = pa.schema([("id", pa.int64())] + [(f, pa.float64()) for f in features(n_features)])
    return OnlineTable(f"main.bench.{name}", ["id"], None, schema)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def latency(
    larder: Callable[[list[int]], Any],
    raw: Callable[[list[int]], Any],
    n_keys: int,
    entities: int,
    repeats: int,
) -> dict[str, float]:
    """Alternating timed calls on the same random keys; wall µs and client CPU µs."""
    rng = np.random.default_rng(n_keys)
    for _ in range(3):  # warm caches and connections
        keys = rng.integers(0, entities, n_keys).tolist()
        larder(keys)
        raw(keys)
    walls: dict[str, list[float]] = {"larder": [], "raw": []}
    cpus: dict[str, list[float]] = {"larder": [], "raw": []}
    for i in range(repeats):
        keys = rng.integers(0, entities, n_keys).tolist()
        order = [("larder", larder), ("raw", raw)] if i % 2 == 0 else [("raw", raw), ("larder", larder)]
        for who, fn in order:
            c0, t0 = time.process_time(), time.perf_counter()
            fn(keys)
            walls[who].append((time.perf_counter() - t0) * 1e6)
            cpus[who].append((time.process_time() - c0) * 1e6)
    out = {}
    for who in ("larder", "raw"):
        out[f"{who}_p50_us"] = pct(walls[who], 50)
        out[f"{who}_p99_us"] = pct(walls[who], 99)
        out[f"{who}_cpu_p50_us"] = pct(cpus[who], 50)
    out["ratio_p50"] = out["larder_p50_us"] / out["raw_p50_us"]
    out["ratio_p99"] = out["larder_p99_us"] / out["raw_p99_us"]
    return out


def throughput(
    larder: Callable[[int], None], raw: Callable[[int], None], rows: int, repeats: int
) -> dict[str, float]:
    """Alternating timed full writes of ``rows`` rows (each repeat into fresh keys/tables)."""
    times: dict[str, list[float]] = {"larder": [], "raw": []}
    for i in range(repeats):
        order = [("larder", larder), ("raw", raw)] if i % 2 == 0 else [("raw", raw), ("larder", larder)]
        for who, fn in order:
            t0 = time.perf_counter()
            fn(i)
            times[who].append(time.perf_counter() - t0)
    larder_s, raw_s = statistics.median(times["larder"]), statistics.median(times["raw"])
    return {
        "rows": rows,
        "larder_rows_per_s": rows / larder_s,
        "raw_rows_per_s": rows / raw_s,
        "larder_s": larder_s,
        "raw_s": raw_s,
        "ratio_time": larder_s / raw_s,
    }


def batches(rows: int, n_features: int, seed: int) -> list[pa.Table]:
    return [
        make_rows(np.arange(start, min(start + BATCH_ROWS, rows)), n_features, seed + start)
        for start in range(0, rows, BATCH_ROWS)
    ]


# -- SQLite ------------------------------------------------------------------------------------


def bench_sqlite(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    names = features(args.features)
    store = SQLiteOnlineStore(workdir / "online.db")
    raw = sqlite3.connect(workdir / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    cols_ddl = ", ".join(f"{f} REAL" for f in names)

    def raw_create(name: str) -> None:
        raw.execute(f"DROP TABLE IF EXISTS {name}")
        raw.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, {cols_ddl})")

    insert = f"INSERT OR REPLACE INTO {{}} VALUES (?, {', '.join('?' * len(names))})"

    def raw_write(name: str, parts: list[pa.Table]) -> None:
        raw.execute("BEGIN")
        for part in parts:
            columns = [part.column(c).to_pylist() for c in ["id", *names]]
            raw.executemany(insert.format(name), zip(*columns, strict=True))
        raw.execute("COMMIT")

    t = online_table("sqlite_read", args.features)
    data = make_rows(np.arange(args.entities), args.features, 1)
    store.replace_table(t, [data])
    raw_create("raw_read")
    raw_write("raw_read", [data])
    selects = {n: f"SELECT * FROM raw_read WHERE id IN ({', '.join('?' * n)})" for n in (1, 100)}
    result: dict[str, Any] = {}
    for n in (1, 100):
        result[f"read_{n}"] = latency(
            lambda keys: store.read_batch(t, pa.table({"id": keys})),
            lambda keys, n=n: raw.execute(selects[n], keys).fetchall(),
            n,
            args.entities,
            args.repeats,
        )
    parts = batches(args.write_rows, args.features, 2)

    def larder_write(i: int) -> None:
        target = online_table(f"sqlite_write{i}", args.features)
        for part in parts:
            store.write_batch(target, part)

    def raw_write_run(i: int) -> None:
        raw_create(f"raw_write{i}")
        raw_write(f"raw_write{i}", parts)

    result["write"] = throughput(larder_write, raw_write_run, args.write_rows, args.write_repeats)
    store.close()
    raw.close()
    return result


# -- Redis -------------------------------------------------------------------------------------


def bench_redis(args: argparse.Namespace, service: ServiceProcess) -> dict[str, Any]:
    import redis

    url = f"redis://127.0.0.1:{service.port}/0"
    names = features(args.features)
    store = RedisOnlineStore(url, key_prefix="bench")
    client = redis.Redis.from_url(url)
    t = online_table("redis_read", args.features)
    store.replace_table(t, [make_rows(np.arange(args.entities), args.features, 1)])
    gen = client.get(f"bench:{t.name}#gen").decode()
    prefix = f"bench:{t.name}:{gen}:"

    def raw_read(keys: list[int]) -> Any:
        pipe = client.pipeline(transaction=False)
        for k in keys:
            pipe.hmget(f"{prefix}{k}", names)
        return pipe.execute()

    result: dict[str, Any] = {}
    for n in (1, 100):
        result[f"read_{n}"] = latency(
            lambda keys: store.read_batch(t, pa.table({"id": keys})), raw_read, n, args.entities, args.repeats
        )
    parts = batches(args.write_rows, args.features, 2)

    def larder_write(i: int) -> None:
        target = online_table(f"redis_write{i}", args.features)
        for part in parts:
            store.write_batch(target, part)

    def raw_write(i: int) -> None:
        for part in parts:
            ids = part.column("id").to_pylist()
            columns = [part.column(f).to_pylist() for f in names]
            pipe = client.pipeline(transaction=False)
            for j, (key, *values) in enumerate(zip(ids, *columns, strict=True)):
                pipe.hset(f"raw{i}:{key}", mapping=dict(zip(names, map(repr, values), strict=True)))
                if j % 1000 == 999:
                    pipe.execute()
            pipe.execute()

    result["write"] = throughput(larder_write, raw_write, args.write_rows, args.redis_write_repeats)
    store.close()
    client.close()
    return result


# -- DynamoDB ----------------------------------------------------------------------------------


def bench_dynamodb(args: argparse.Namespace, service: ServiceProcess) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    os.environ.update(AWS_TEST_ENV)
    endpoint = f"http://127.0.0.1:{service.port}"
    workers = 4
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=2 * workers),
    )
    stores = {
        mode: DynamoDBOnlineStore(
            endpoint_url=endpoint, region="us-east-1", max_workers=workers, write_mode=mode
        )
        for mode in ("conditional", "batch")
    }
    store = stores["conditional"]
    t = online_table("ddb_read", args.features)
    store.replace_table(t, [make_rows(np.arange(args.entities), args.features, 1)])
    physical = store.physical_name(t)

    def raw_read(keys: list[int]) -> Any:
        unique = list(dict.fromkeys(keys))
        request = {physical: {"Keys": [{"_pk": {"S": str(k)}} for k in unique]}}
        items = []
        while request:
            response = client.batch_get_item(RequestItems=request)
            items.extend(response["Responses"][physical])
            request = response.get("UnprocessedKeys") or {}
        return items

    result: dict[str, Any] = {}
    repeats = {1: args.dynamodb_repeats * 3, 100: args.dynamodb_repeats}
    for n in (1, 100):
        result[f"read_{n}"] = latency(
            lambda keys: store.read_batch(t, pa.table({"id": keys})), raw_read, n, args.entities, repeats[n]
        )
    rows = args.dynamodb_write_rows
    parts = batches(rows, args.features, 2)
    names = features(args.features)

    def raw_write_table(i: int) -> str:
        name = f"raw_write_{i}_{time.time_ns()}"
        client.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        )
        return name

    def raw_write(i: int) -> None:
        name = raw_write_table(i)

        def put(chunk: list[dict[str, Any]]) -> None:
            request = {name: [{"PutRequest": {"Item": item}} for item in chunk]}
            while request:
                request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

        for part in parts:
            ids = part.column("id").to_pylist()
            columns = [part.column(f).to_pylist() for f in names]
            items = [
                {"id": {"N": str(k)}, **{f: {"N": repr(v)} for f, v in zip(names, values, strict=True)}}
                for k, *values in zip(ids, *columns, strict=True)
            ]
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(put, [items[j : j + 25] for j in range(0, len(items), 25)]))

    for mode, s in stores.items():

        def larder_write(i: int, s: DynamoDBOnlineStore = s, mode: str = mode) -> None:
            target = online_table(f"ddb_write_{mode}_{i}_{time.time_ns()}", args.features)
            for part in parts:
                s.write_batch(target, part)

        result[f"write_{mode}"] = throughput(larder_write, raw_write, rows, args.dynamodb_write_repeats)
    for s in stores.values():
        s.close()
    return result


# -- main --------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import boto3
    import moto
    import redis

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    try:
        redis_server = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True
        ).stdout.split()[2]
    except (OSError, IndexError):
        redis_server = None
    return {
        "nproc": os.cpu_count(),
        "ram_gb": round(mem_kb / 1024**2, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "sqlite": sqlite3.sqlite_version,
        "redis_py": redis.__version__,
        "redis_server": redis_server,
        "boto3": boto3.__version__,
        "moto": moto.__version__,
        "load_avg": os.getloadavg(),
    }


def print_table(results: dict[str, dict[str, Any]]) -> None:
    print(f"\n{'store':10} {'case':18} {'larder':>14} {'raw':>14} {'ratio':>7}")
    for store, res in results.items():
        for case, r in res.items():
            if case.startswith("read"):
                for q in ("p50", "p99"):
                    print(
                        f"{store:10} {case + ' ' + q:18} {r[f'larder_{q}_us']:>11.0f} µs {r[f'raw_{q}_us']:>11.0f} µs "
                        f"{r[f'ratio_{q}']:>6.2f}x"
                    )
                if store == "dynamodb":
                    print(
                        f"{store:10} {case + ' cpu p50':18} {r['larder_cpu_p50_us']:>11.0f} µs "
                        f"{r['raw_cpu_p50_us']:>11.0f} µs {r['larder_cpu_p50_us'] / r['raw_cpu_p50_us']:>6.2f}x"
                    )
            else:
                print(
                    f"{store:10} {case:18} {r['larder_rows_per_s']:>9.0f} rows/s {r['raw_rows_per_s']:>9.0f} rows/s "
                    f"{r['ratio_time']:>6.2f}x time"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stores", default="sqlite,redis,dynamodb")
    ap.add_argument("--entities", type=int, default=10_000)
    ap.add_argument("--features", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=300, help="timed reads per case (SQLite, Redis)")
    ap.add_argument("--write-rows", type=int, default=200_000)
    ap.add_argument("--million", action="store_true", help="write 1,000,000 rows (SQLite, Redis)")
    ap.add_argument("--write-repeats", type=int, default=3, help="timed writes per case (SQLite)")
    ap.add_argument("--redis-write-repeats", type=int, default=1, help="redis-py's HSET baseline is slow")
    ap.add_argument("--dynamodb-repeats", type=int, default=15, help="timed 100-key reads (1-key: 3x)")
    ap.add_argument("--dynamodb-write-rows", type=int, default=2_000)
    ap.add_argument("--dynamodb-write-repeats", type=int, default=1)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()
    if args.million:
        args.write_rows = 1_000_000
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="larder-online-bench-") as tmp:
        if "sqlite" in stores:
            results["sqlite"] = bench_sqlite(args, Path(tmp))
        if "redis" in stores:
            service = start_redis()
            try:
                results["redis"] = bench_redis(args, service)
            finally:
                service.stop()
        if "dynamodb" in stores:
            service = start_moto()
            try:
                results["dynamodb"] = bench_dynamodb(args, service)
            finally:
                service.stop()
    report = {"machine": machine(), "config": vars(args), "results": results}
    print(json.dumps(report, indent=2))
    print_table(results)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
