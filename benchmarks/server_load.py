"""The feature server under concurrent load: ``wrk`` against ``larder serve`` and against Feast's Python
feature server on the same data, beside the same lookup in-process.

Data: ``--entities`` (10,000) entities x 50 float features, one row each, in a SQLite online store:

* larder: a feature table published to the embedded SQLite store, a feature spec with one
  ``FeatureLookup`` of the 50 features, ``larder serve`` (uvicorn, ``--workers``, default 1) on
  127.0.0.1; each request ``POST /features/bench`` ``{"keys": [{"Id": <k>}]}``.
* Feast 0.67 (``benchmarks/.feast-venv``): the same rows in a parquet ``FileSource``, one feature view,
  ``feast apply`` and ``materialize`` into its SQLite online store, ``feast serve`` (same worker count;
  ``--max-requests`` raised so that its workers are not restarted every 1,000 requests mid-run); each
  request ``POST /get-online-features`` ``{"features": [50 refs], "entities": {"entity_id": [<k>]}}``.
* in-process: what one larder request costs without HTTP: the feature server's own handler (body
  parsing, checks, the lookup, the JSON answer), and ``fe.get_online_features`` (dict output), on
  random keys.

``wrk`` (Debian's package) runs for ``--duration`` (30 s) at each of 1, 16 and 64 connections, one
random existing key per request (a Lua ``request`` function); a Lua ``done`` function prints
throughput, p50/p99/max latency and every error count. Prints JSON, then a table. Run under the
shared lock::

    flock /tmp/larder-bench.lock .venv/bin/python benchmarks/server_load.py
    flock /tmp/larder-bench.lock .venv/bin/python benchmarks/server_load.py --duration 10 --skip-feast
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from _services import free_port  # noqa: E402

FEAST_VENV = REPO / "benchmarks" / ".feast-venv"
N_FEATURES = 50
CONNECTIONS = (1, 16, 64)

WRK_SCRIPT = """
local keys = tonumber(os.getenv("BENCH_KEYS"))
local template = os.getenv("BENCH_BODY")
math.randomseed(os.time())
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local body = string.gsub(template, "KEY", tostring(math.random(0, keys - 1)))
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_avg_1_5_15": [round(x, 2) for x in load],
            "wrk": (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else "?"}


def frame(entities: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(entities, N_FEATURES)), columns=[f"f{i}" for i in range(N_FEATURES)])
    df.insert(0, "Id", np.arange(entities, dtype=np.int64))
    return df


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def run_wrk(url: str, body: str, keys: int, connections: int, duration: int, script: Path) -> dict[str, Any]:
    threads = 1 if connections == 1 else 2
    env = {**os.environ, "BENCH_KEYS": str(keys), "BENCH_BODY": body}
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", "5s",
           "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_JSON "))
    r = json.loads(line[len("WRK_JSON "):])
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return {"connections": connections, "threads": threads, "requests": r["requests"],
            "rps": r["requests"] / (r["duration_us"] / 1e6), "p50_ms": r["p50_us"] / 1000,
            "p90_ms": r["p90_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "max_ms": r["max_us"] / 1000,
            "errors": errors, "error_kinds": {k: r[k] for k in ("connect", "read", "write", "status", "timeout")}}


def check_answer(url: str, body: str, expect: float, key_path: Any) -> None:
    """One request before the load: the server answers the feature value the data holds."""
    req = urllib.request.Request(url, data=body.replace("KEY", "7").encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        got = key_path(json.loads(r.read()))
    if not np.isclose(got, expect):
        raise RuntimeError(f"{url} answered f0={got} for key 7, expected {expect}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)


# -- larder ---------------------------------------------------------------------------------------
def setup_larder(work: Path, df: pd.DataFrame) -> Path:
    from larder.client import FeatureEngineeringClient
    from larder.training import FeatureLookup

    root = work / "larder"
    with FeatureEngineeringClient(root) as fe:
        fe.create_table("bench", "Id", df=df)
        fe.publish_table("bench")
        fe.create_feature_spec("bench", [FeatureLookup("bench", "Id")])
    return root


def in_process(root: Path, keys: int, calls: int, seed: int) -> dict[str, Any]:
    """p50/p99 of the server's handler (no HTTP) and of get_online_features, on random keys."""
    from fastapi.testclient import TestClient

    from larder.client import FeatureEngineeringClient
    from larder.serving.app import create_app

    rng = random.Random(seed)
    out: dict[str, Any] = {}
    app = create_app(root)
    with TestClient(app):  # runs the lifespan; the fast lane's handler is then called directly
        lane = app.middleware_stack
        while lane is not None and type(lane).__name__ != "_FeaturesFastLane":
            lane = getattr(lane, "app", None)
        assert lane is not None, "the feature server's fast lane was not found"
        answer = lane.answer
        times = []
        for i in range(calls + 200):
            body = b'{"keys": [{"Id": %d}]}' % rng.randrange(keys)
            t = time.perf_counter()
            status, _ = answer("bench", body)
            if i >= 200:
                times.append((time.perf_counter() - t) * 1000)
            assert status == 200
        out["server_handler"] = {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}
    with FeatureEngineeringClient(root) as fe:
        asm = fe.online_feature_assembler("bench", on_missing="null")
        times = []
        for i in range(calls + 200):
            k = rng.randrange(keys)
            t = time.perf_counter()
            asm.assemble({"Id": [k]}, output="dict")
            if i >= 200:
                times.append((time.perf_counter() - t) * 1000)
        out["assemble_dict"] = {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}
    return out


def bench_larder(root: Path, keys: int, duration: int, workers: int, script: Path) -> list[dict[str, Any]]:
    port = free_port()
    exe = Path(sys.executable).parent / "larder"
    proc = subprocess.Popen([str(exe), "serve", "--root", str(root), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
        url = f"http://127.0.0.1:{port}/features/bench"
        body = '{"keys": [{"Id": KEY}]}'
        df_f0 = float(frame_cache["df"].loc[7, "f0"])
        check_answer(url, body, df_f0, lambda j: j["features"][0]["f0"])
        return [run_wrk(url, body, keys, c, duration, script) for c in CONNECTIONS]
    finally:
        stop(proc)


# -- Feast ----------------------------------------------------------------------------------------
FEAST_SETUP = """
import sys, os, contextlib
from datetime import datetime, timedelta, timezone
import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

repo, parquet, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(os.path.join(repo, "data"), exist_ok=True)
with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
    f.write("project: bench\\nprovider: local\\n"
            f"registry: {repo}/data/registry.db\\n"
            f"online_store:\\n  type: sqlite\\n  path: {repo}/data/online.db\\n"
            "offline_store:\\n  type: file\\nentity_key_serialization_version: 3\\n")
store = FeatureStore(repo_path=repo)
entity = Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64)
src = FileSource(name="src", path=parquet, timestamp_field="event_timestamp")
fv = FeatureView(name="fv", entities=[entity], ttl=timedelta(days=3650), online=True, source=src,
                 schema=[Field(name="entity_id", dtype=Int64)] + [Field(name=f"f{i}", dtype=Float64) for i in range(n)])
with contextlib.redirect_stdout(sys.stderr):
    store.apply([entity, fv])
    store.materialize(datetime(2000, 1, 1, tzinfo=timezone.utc), datetime.now(timezone.utc))
"""


def bench_feast(work: Path, df: pd.DataFrame, keys: int, duration: int, workers: int,
                script: Path) -> list[dict[str, Any]] | dict[str, str]:
    py = FEAST_VENV / "bin" / "python"
    if not py.exists():
        return {"error": f"{FEAST_VENV} is missing (a venv with feast[duckdb]==0.67.0; symlink the shared one)"}
    repo = work / "feast"
    parquet = work / "feast_source.parquet"
    src = df.rename(columns={"Id": "entity_id"})
    src["event_timestamp"] = pd.Timestamp("2024-01-01", tz="UTC")
    src.to_parquet(parquet, index=False)
    setup = work / "feast_setup.py"
    setup.write_text(FEAST_SETUP)
    subprocess.run([str(py), str(setup), str(repo), str(parquet), str(N_FEATURES)], check=True,
                   stdout=subprocess.DEVNULL)
    port = free_port()
    proc = subprocess.Popen([str(FEAST_VENV / "bin" / "feast"), "-c", str(repo), "serve", "-h", "127.0.0.1",
                             "-p", str(port), "--workers", str(workers), "--no-access-log",
                             "--max-requests", "100000000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=120, proc=proc)
        url = f"http://127.0.0.1:{port}/get-online-features"
        refs = json.dumps([f"fv:f{i}" for i in range(N_FEATURES)])
        body = '{"features": ' + refs + ', "entities": {"entity_id": [KEY]}}'

        def f0(j: dict[str, Any]) -> float:
            names = j["metadata"]["feature_names"]
            return float(j["results"][names.index("f0")]["values"][0])

        check_answer(url, body, float(df.loc[7, "f0"]), f0)
        return [run_wrk(url, body, keys, c, duration, script) for c in CONNECTIONS]
    finally:
        stop(proc)


frame_cache: dict[str, pd.DataFrame] = {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=10_000)
    ap.add_argument("--duration", type=int, default=30, help="seconds of wrk per connection count")
    ap.add_argument("--workers", type=int, default=1, help="server worker processes (both servers)")
    ap.add_argument("--calls", type=int, default=5000, help="in-process calls")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-feast", action="store_true")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="larder-bench-load-"))
    script = work / "bench.lua"
    script.write_text(textwrap.dedent(WRK_SCRIPT))
    df = frame(args.entities, args.seed)
    frame_cache["df"] = df
    res: dict[str, Any] = {"machine": machine(), "entities": args.entities, "features": N_FEATURES,
                           "duration_s": args.duration, "workers": args.workers}
    try:
        root = setup_larder(work, df)
        res["in_process"] = in_process(root, args.entities, args.calls, args.seed)
        res["larder"] = bench_larder(root, args.entities, args.duration, args.workers, script)
        if not args.skip_feast:
            res["feast"] = bench_feast(work, df, args.entities, args.duration, args.workers, script)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["machine"]["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    targets: dict[str, Any] = {}
    larder = {r["connections"]: r for r in res["larder"]}
    targets["zero_errors"] = sum(r["errors"] for r in res["larder"]) == 0
    targets["p99_at_16_le_5ms"] = (round(larder[16]["p99_ms"], 3), larder[16]["p99_ms"] <= 5.0)
    if isinstance(res.get("feast"), list):
        feast = {r["connections"]: r for r in res["feast"]}
        targets["rps_over_feast_ge_3"] = {c: (round(larder[c]["rps"] / feast[c]["rps"], 2),
                                              larder[c]["rps"] >= 3 * feast[c]["rps"]) for c in CONNECTIONS}
    res["targets"] = targets
    text = json.dumps(res, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text)

    print(f"\nfeature server under load: 1 key x {N_FEATURES} features, {args.entities} entities, SQLite store, "
          f"{args.workers} worker(s), wrk {args.duration} s per row")
    print(f"{'server':<8} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}")
    for name in ("larder", "feast"):
        rows = res.get(name)
        if not isinstance(rows, list):
            if rows is not None:
                print(f"{name:<8} {rows['error']}")
            continue
        for r in rows:
            print(f"{name:<8} {r['connections']:>5} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} "
                  f"{r['p99_ms']:>8.2f} {r['max_ms']:>8.1f} {r['errors']:>7}")
    ip = res["in_process"]
    print(f"in-process (no HTTP): server handler p50 {ip['server_handler']['p50_ms']:.3f} ms, p99 "
          f"{ip['server_handler']['p99_ms']:.3f} ms; assemble(dict) p50 {ip['assemble_dict']['p50_ms']:.3f} ms, "
          f"p99 {ip['assemble_dict']['p99_ms']:.3f} ms")
    print(f"targets: {json.dumps(targets)}")


if __name__ == "__main__":
    main()
