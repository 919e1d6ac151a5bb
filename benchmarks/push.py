"""Push ingestion: how soon pushed rows are readable online, beside a raw write of the same rows.

For each online store (SQLite file, Redis, DynamoDB on moto with ``consistent_reads``), a time-series
feature table of ``--entities`` users (event time, 4 float features, a string) is created and
published; then rows are pushed in calls of 1 and of 100 rows, every row a new event (a later time)
of a random user:

* ``fe.push(to="online")`` and ``fe.push(to="both")`` (Delta commit, then online);
* the same rows through the store contract's ``write_batch`` (no validation, no catalog: the store
  layer alone);
* the same rows through the raw client: sqlite3 ``INSERT OR REPLACE`` into a plain table, a Redis
  pipeline of ``HSET``, boto3 ``put_item`` / ``batch_write_item``.

Measured per call: its latency, and the **freshness**: the time from the call returning until a
*second* client (its own connections, as a server process has) reads every row of the call back at
its pushed event time (polled). After the ``to="both"`` runs, the Delta table is read and every
pushed (user, time) must be in it. With Feast's venv (``benchmarks/.feast-venv``, feast 0.67) Feast's
``store.push(..., to=PushMode.ONLINE)`` into its SQLite online store is timed the same way.

Prints JSON, then a table. Run under the shared lock:

    flock /tmp/larder-bench.lock .venv/bin/python benchmarks/push.py
    flock /tmp/larder-bench.lock .venv/bin/python benchmarks/push.py --stores sqlite --rows 2000 --json-out /tmp/p.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from _services import AWS_TEST_ENV, start_moto, start_redis  # noqa: E402
from larder import FeatureEngineeringClient  # noqa: E402
from larder.online import ORDER_COLUMN, DynamoDBStoreSpec, RedisStoreSpec, SQLiteStoreSpec  # noqa: E402

FEAST_VENV = HERE / ".feast-venv"
T0 = pd.Timestamp("2024-01-01", tz="UTC")
FEATURES = ["f0", "f1", "f2", "f3"]
#: seconds a reader waits for a pushed row before counting it as never seen
FRESHNESS_TIMEOUT_S = 5.0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


class Events:
    """Rows to push: every row a new event of a random user, event times strictly increasing."""

    def __init__(self, entities: int, seed: int) -> None:
        self.entities = entities
        self.rng = np.random.default_rng(seed)
        self.n = 0

    def batch(self, rows: int) -> pd.DataFrame:
        uid = self.rng.choice(self.entities, size=rows, replace=False).astype(np.int64)
        ts = T0 + pd.to_timedelta(np.arange(self.n + 1, self.n + rows + 1) * 1000, unit="ms")
        self.n += rows
        out = {"uid": uid, "ts": ts}
        for f in FEATURES:
            out[f] = self.rng.standard_normal(rows)
        out["page"] = self.rng.choice(["home", "cart", "pay", "search"], size=rows)
        return pd.DataFrame(out)


def initial(entities: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"uid": np.arange(entities, dtype=np.int64), "ts": [T0] * entities}
    for f in FEATURES:
        out[f] = rng.standard_normal(entities)
    out["page"] = ["home"] * entities
    return pd.DataFrame(out)


def run_case(calls: list[pd.DataFrame], write: Callable[[pd.DataFrame], Any],
             visible: Callable[[pd.DataFrame], bool]) -> dict[str, Any]:
    """Time each call, then poll ``visible`` until the call's rows read back. The freshness of a call is
    the time from its return to the end of the first read that saw every row (an upper bound: it
    includes that read); ``first_read_pct`` is the share of calls whose first read saw them."""
    latency, fresh, unseen, first = [], [], 0, 0
    started = time.perf_counter()
    for df in calls:
        t = time.perf_counter()
        write(df)
        returned = time.perf_counter()
        latency.append((returned - t) * 1000)
        reads = 0
        while True:
            reads += 1
            if visible(df):
                fresh.append((time.perf_counter() - returned) * 1000)
                first += reads == 1
                break
            if time.perf_counter() - returned > FRESHNESS_TIMEOUT_S:
                unseen += 1
                break
    total = time.perf_counter() - started
    rows = sum(len(df) for df in calls)
    return {"calls": len(calls), "rows": rows, "call_p50_ms": pct(latency, 50), "call_p99_ms": pct(latency, 99),
            "fresh_p50_ms": pct(fresh, 50), "fresh_p99_ms": pct(fresh, 99), "fresh_max_ms": max(fresh, default=0.0),
            "first_read_pct": 100.0 * first / max(1, len(calls)), "unseen_calls": unseen,
            "rows_per_s": rows / total}


# -- larder ---------------------------------------------------------------------------------------
def store_spec(kind: str, services: dict[str, Any], tag: str) -> Any:
    if kind == "sqlite":
        return SQLiteStoreSpec()
    if kind == "redis":
        return RedisStoreSpec(url=f"redis://127.0.0.1:{services['redis'].port}/0", key_prefix=f"push{tag}")
    return DynamoDBStoreSpec(endpoint_url=f"http://127.0.0.1:{services['moto'].port}", region="us-east-1",
                             table_prefix=f"push{tag}__", consistent_reads=True)


def online_reader(reader: FeatureEngineeringClient, table: str) -> Callable[[pd.DataFrame], bool]:
    """Whether every row of a call reads back at its event time, through the reader's own store client."""
    pub, spec = reader._publisher.latest_publication(table)
    store = reader._online_stores.get(spec)

    def visible(df: pd.DataFrame) -> bool:
        got, found = store.read_batch(pub.online_table, pa.table({"uid": df["uid"].to_numpy()}), ["ts"])
        if not found.all():
            return False
        stored = got.column("ts").cast(pa.int64()).to_numpy()
        return bool((stored >= df["ts"].astype("int64").to_numpy() // 1000).all())

    return visible


def bench_store(kind: str, services: dict[str, Any], work: Path, args: argparse.Namespace) -> dict[str, Any]:
    root = work / kind
    fe = FeatureEngineeringClient(root)
    reader = FeatureEngineeringClient(root)
    spec = store_spec(kind, services, os.urandom(4).hex())
    fe.create_table("events", ["uid"], timeseries_column="ts", df=initial(args.entities))
    fe.publish_table("events", spec)
    visible = online_reader(reader, "events")
    events = Events(args.entities, seed=1)
    rows_1 = args.dynamodb_rows if kind == "dynamodb" else args.rows
    out: dict[str, Any] = {}

    def calls(size: int, rows: int) -> list[pd.DataFrame]:
        return [events.batch(size) for _ in range(max(1, rows // size))]

    for size, rows in ((1, rows_1), (100, args.rows)):
        out[f"push_online_{size}"] = run_case(calls(size, rows), lambda df: fe.push("events", df, to="online"), visible)
    pushed_both: list[pd.DataFrame] = []
    for size, rows in ((1, args.both_1_rows), (100, args.rows)):
        batch = calls(size, rows)
        pushed_both += batch
        out[f"push_both_{size}"] = run_case(batch, lambda df: fe.push("events", df, to="both"), visible)
    out["delta_check"] = delta_check(fe, pushed_both)

    pub, _ = fe._publisher.latest_publication("events")
    store = fe._online_stores.get(spec)

    def raw_store(df: pd.DataFrame) -> None:
        rows = pa.Table.from_pandas(df, preserve_index=False).cast(pub.online_table.schema)
        rows = rows.append_column(ORDER_COLUMN, rows.column("ts").cast(pa.int64()))
        store.write_batch(pub.online_table, rows, order=ORDER_COLUMN)

    for size, rows in ((1, rows_1), (100, args.rows)):
        out[f"store_write_batch_{size}"] = run_case(calls(size, rows), raw_store, visible)
    raw_write, raw_visible, close = raw_client(kind, services, work)
    try:
        for size, rows in ((1, rows_1), (100, args.rows)):
            out[f"raw_client_{size}"] = run_case(calls(size, rows), raw_write, raw_visible)
    finally:
        close()
    reader.close()
    fe.close()
    return out


def delta_check(fe: FeatureEngineeringClient, pushed: list[pd.DataFrame]) -> dict[str, Any]:
    """Every (uid, ts) pushed with to="both" is a row of the Delta table."""
    table = fe.read_table("events")
    have = set(zip(table["uid"].tolist(), table["ts"].astype("int64").tolist(), strict=True))
    want = [(u, t) for df in pushed for u, t in zip(df["uid"].tolist(), df["ts"].astype("int64").tolist(),
                                                    strict=True)]
    missing = sum(1 for w in want if w not in have)
    return {"pushed_rows": len(want), "missing_in_delta": missing, "delta_rows": len(table),
            "delta_version": int(fe.get_table("events").version)}


# -- raw clients ------------------------------------------------------------------------------------
def raw_client(kind: str, services: dict[str, Any], work: Path) -> tuple[Callable[[pd.DataFrame], None],
                                                                       Callable[[pd.DataFrame], bool],
                                                                       Callable[[], None]]:
    cols = ["uid", "ts", *FEATURES, "page"]
    if kind == "sqlite":
        path = work / "raw.db"
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"CREATE TABLE ev (uid INTEGER PRIMARY KEY, ts INTEGER, {', '.join(f + ' REAL' for f in FEATURES)}, "
                    "page TEXT)")
        reader = sqlite3.connect(path, isolation_level=None)
        sql = f"INSERT OR REPLACE INTO ev VALUES ({', '.join('?' * len(cols))})"

        def write(df: pd.DataFrame) -> None:
            rows = list(zip(df["uid"].tolist(), (df["ts"].astype("int64") // 1000).tolist(),
                            *(df[f].tolist() for f in FEATURES), df["page"].tolist(), strict=True))
            con.execute("BEGIN")
            con.executemany(sql, rows)
            con.execute("COMMIT")

        def visible(df: pd.DataFrame) -> bool:
            ids = df["uid"].tolist()
            got = dict(reader.execute(f"SELECT uid, ts FROM ev WHERE uid IN ({', '.join('?' * len(ids))})", ids))
            return all(got.get(u, -1) >= t // 1000 for u, t in zip(ids, df["ts"].astype("int64"), strict=True))

        return write, visible, lambda: (con.close(), reader.close()) and None
    if kind == "redis":
        import redis

        url = f"redis://127.0.0.1:{services['redis'].port}/0"
        client, reader = redis.Redis.from_url(url), redis.Redis.from_url(url)

        def write(df: pd.DataFrame) -> None:
            pipe = client.pipeline(transaction=False)
            for row in df.itertuples(index=False):
                pipe.hset(f"raw:{row.uid}", mapping={"ts": int(row.ts.value // 1000),
                                                     **{f: float(getattr(row, f)) for f in FEATURES},
                                                     "page": row.page})
            pipe.execute()

        def visible(df: pd.DataFrame) -> bool:
            pipe = reader.pipeline(transaction=False)
            for u in df["uid"].tolist():
                pipe.hget(f"raw:{u}", "ts")
            got = pipe.execute()
            return all(g is not None and int(g) >= t // 1000
                       for g, t in zip(got, df["ts"].astype("int64"), strict=True))

        return write, visible, lambda: (client.close(), reader.close()) and None
    import boto3

    ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{services['moto'].port}", region_name="us-east-1")
    name = f"raw_{os.urandom(4).hex()}"
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "uid", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "uid", "AttributeType": "N"}],
                     BillingMode="PAY_PER_REQUEST")

    def item(row: Any) -> dict[str, Any]:
        return {"uid": {"N": str(row.uid)}, "ts": {"N": str(row.ts.value // 1000)},
                **{f: {"N": repr(float(getattr(row, f)))} for f in FEATURES}, "page": {"S": row.page}}

    def write(df: pd.DataFrame) -> None:
        items = [item(r) for r in df.itertuples(index=False)]
        if len(items) == 1:
            ddb.put_item(TableName=name, Item=items[0])
            return
        for i in range(0, len(items), 25):
            left = [{"PutRequest": {"Item": it}} for it in items[i:i + 25]]
            while left:
                resp = ddb.batch_write_item(RequestItems={name: left})
                left = resp.get("UnprocessedItems", {}).get(name, [])

    def visible(df: pd.DataFrame) -> bool:
        ids = df["uid"].tolist()
        got: dict[int, int] = {}
        for i in range(0, len(ids), 100):
            keys = [{"uid": {"N": str(u)}} for u in ids[i:i + 100]]
            resp = ddb.batch_get_item(RequestItems={name: {"Keys": keys, "ConsistentRead": True,
                                                           "ProjectionExpression": "uid, ts"}})
            for it in resp["Responses"][name]:
                got[int(it["uid"]["N"])] = int(it["ts"]["N"])
        return all(got.get(u, -1) >= t // 1000 for u, t in zip(ids, df["ts"].astype("int64"), strict=True))

    return write, visible, lambda: None


# -- Feast ------------------------------------------------------------------------------------------
FEAST_SCRIPT = r'''
import contextlib, json, os, sys, time
from datetime import timedelta
import numpy as np, pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource, ValueType
from feast.data_source import PushMode
from feast.types import Float64, String

repo, entities, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(os.path.join(repo, "data"), exist_ok=True)
T0 = pd.Timestamp("2024-01-01", tz="UTC")
rng = np.random.default_rng(0)
init = pd.DataFrame({"uid": np.arange(entities, dtype=np.int64), "ts": [T0] * entities,
                     **{f"f{i}": rng.standard_normal(entities) for i in range(4)}, "page": ["home"] * entities})
parquet = os.path.join(repo, "data", "events.parquet")
init.to_parquet(parquet, index=False)
with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
    f.write("project: pushbench\nprovider: local\n"
            f"registry: {repo}/data/registry.db\n"
            f"online_store:\n  type: sqlite\n  path: {repo}/data/online.db\n"
            "offline_store:\n  type: file\nentity_key_serialization_version: 3\n")
store = FeatureStore(repo_path=repo)
user = Entity(name="user", join_keys=["uid"], value_type=ValueType.INT64)
batch = FileSource(name="events_file", path=parquet, timestamp_field="ts")
push = PushSource(name="events_push", batch_source=batch)
fv = FeatureView(name="events", entities=[user], ttl=timedelta(days=3650), online=True, source=push,
                 schema=[Field(name=f"f{i}", dtype=Float64) for i in range(4)] + [Field(name="page", dtype=String)])
with contextlib.redirect_stdout(sys.stderr):
    store.apply([user, fv])
    store.materialize(T0 - timedelta(days=1), T0 + timedelta(days=1))
reader = FeatureStore(repo_path=repo)
n = 0
def batch_of(size):
    global n
    uid = rng.choice(entities, size=size, replace=False).astype(np.int64)
    ts = T0 + pd.to_timedelta(np.arange(n + 1, n + size + 1) * 1000, unit="ms")
    n += size
    return pd.DataFrame({"uid": uid, "ts": ts, **{f"f{i}": rng.standard_normal(size) for i in range(4)},
                         "page": rng.choice(["home", "cart"], size=size)})
def visible(df):
    got = reader.get_online_features(features=["events:f0"], entity_rows=[{"uid": int(u)} for u in df["uid"]]).to_dict()
    return all(abs(a - b) < 1e-12 if a is not None else False for a, b in zip(got["f0"], df["f0"]))
out = {}
for size, total in ((1, rows), (100, rows)):
    lat, fresh, unseen, first = [], [], 0, 0
    calls = [batch_of(size) for _ in range(max(1, total // size))]
    started = time.perf_counter()
    for df in calls:
        t = time.perf_counter()
        store.push("events_push", df, to=PushMode.ONLINE)
        r = time.perf_counter()
        lat.append((r - t) * 1000)
        reads = 0
        while True:
            reads += 1
            if visible(df):
                fresh.append((time.perf_counter() - r) * 1000)
                first += reads == 1
                break
            if time.perf_counter() - r > 5:
                unseen += 1
                break
    total_s = time.perf_counter() - started
    p = lambda v, q: float(np.percentile(v, q)) if v else float("nan")
    out[f"push_online_{size}"] = {"calls": len(calls), "rows": len(calls) * size, "call_p50_ms": p(lat, 50),
                                  "call_p99_ms": p(lat, 99), "fresh_p50_ms": p(fresh, 50), "fresh_p99_ms": p(fresh, 99),
                                  "fresh_max_ms": max(fresh, default=0.0), "unseen_calls": unseen,
                                  "first_read_pct": 100.0 * first / max(1, len(calls)),
                                  "rows_per_s": len(calls) * size / total_s}
import feast
out["feast_version"] = feast.__version__
print(json.dumps(out))
'''


def bench_feast(work: Path, entities: int, rows: int) -> dict[str, Any]:
    py = FEAST_VENV / "bin" / "python"
    if not py.exists():
        return {"error": f"{FEAST_VENV} is missing (a venv with feast[duckdb]==0.67.0)"}
    script = work / "feast_push.py"
    script.write_text(FEAST_SCRIPT)
    done = subprocess.run([str(py), str(script), str(work / "feast"), str(entities), str(rows)],
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- report -----------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    import deltalake

    return {"nproc": os.cpu_count(), "ram_gb": round(mem_kb / 1024**2, 1), "python": platform.python_version(),
            "deltalake": deltalake.__version__, "sqlite": sqlite3.sqlite_version, "load_avg": os.getloadavg()}


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'store':9} {'case':22} {'calls':>6} {'call p50':>9} {'call p99':>9} {'fresh p50':>10} "
          f"{'fresh p99':>10} {'fresh max':>10} {'1st read':>8} {'unseen':>6} {'rows/s':>8}")
    for store, cases in results["stores"].items():
        for case, r in cases.items():
            if "call_p50_ms" not in r:
                continue
            print(f"{store:9} {case:22} {r['calls']:>6} {r['call_p50_ms']:>7.2f}ms {r['call_p99_ms']:>7.2f}ms "
                  f"{r['fresh_p50_ms']:>8.3f}ms {r['fresh_p99_ms']:>8.3f}ms {r['fresh_max_ms']:>8.2f}ms "
                  f"{r.get('first_read_pct', float('nan')):>7.1f}% {r['unseen_calls']:>6} {r['rows_per_s']:>8.0f}")
        check = cases.get("delta_check")
        if check:
            print(f"{store:9} {'delta check':22} {check['pushed_rows']} rows pushed to='both', "
                  f"{check['missing_in_delta']} missing in Delta (version {check['delta_version']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stores", default="sqlite,redis,dynamodb")
    ap.add_argument("--entities", type=int, default=10_000)
    ap.add_argument("--rows", type=int, default=10_000, help="rows per case (1-row calls: this many calls)")
    ap.add_argument("--dynamodb-rows", type=int, default=2_000, help="rows of the 1-row cases on moto (slow)")
    ap.add_argument("--both-1-rows", type=int, default=500, help="1-row to='both' calls (one Delta commit each)")
    ap.add_argument("--skip-feast", action="store_true")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    stores = [s for s in args.stores.split(",") if s]
    os.environ.update(AWS_TEST_ENV)
    services: dict[str, Any] = {}
    results: dict[str, Any] = {"machine": machine(), "entities": args.entities, "rows": args.rows, "stores": {}}
    with tempfile.TemporaryDirectory(prefix="larder-push-bench-") as tmp:
        work = Path(tmp)
        try:
            if "redis" in stores:
                services["redis"] = start_redis()
            if "dynamodb" in stores:
                services["moto"] = start_moto()
            for kind in stores:
                results["stores"][kind] = bench_store(kind, services, work, args)
                if args.json_out:  # after every store, so a long run that is stopped keeps what it measured
                    args.json_out.write_text(json.dumps(results, indent=2, default=str))
            if not args.skip_feast:
                results["stores"]["feast-sqlite"] = bench_feast(work, args.entities, args.rows)
        finally:
            for service in services.values():
                service.stop()
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.json_out:
        args.json_out.write_text(text)
    print_table(results)


if __name__ == "__main__":
    main()
