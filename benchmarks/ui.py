"""The web catalog on a large catalog: the table list and the search, server-side, beside the raw SQL.

Builds a catalog of ``--tables`` feature tables (each with ``--features`` features, tags, a
description and the per-table stats every write records) and ``--models`` logged models (each reading
three tables, ten features and a function), plus publications and named specs, by bulk inserts of the
catalog records ``create_table``/``log_model``/``publish_table`` write (no Delta data: the list pages
must not need it; every table's path points at a directory that does not exist, so a page that opened
a Delta log would fail). Then starts ``larder ui`` as a real server on 127.0.0.1 and requests each
page ``--repeats`` times, alternating scenarios, reading the server's own time from the
``Server-Timing`` header (the time from the request reaching the app to its response starting) and
the client's round trip over loopback.

The limit: the same answers from raw ``sqlite3`` on the same file (count of matches, the page of
tables with their stats, the page's tags and features), as a hand-written client of the catalog
would issue them. Ratios are larder's server time over the raw SQL's.

    python benchmarks/ui.py --tables 10000 --models 200 --repeats 30

Target (issue 19): the list page and the search answer in under 200 ms server-side. Prints JSON,
then a table.
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
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

WORDS = ["price", "risk", "churn", "fraud", "clicks", "orders", "sessions", "returns", "credit", "stock",
         "weather", "traffic", "loans", "claims", "views"]
TEAMS = ["pricing", "risk", "growth", "ops", "search", "ads", "payments", "logistics"]


def build_catalog(root: Path, n_tables: int, n_features: int, n_models: int, seed: int = 0) -> dict[str, Any]:
    """Bulk-insert the catalog records of a large deployment; returns what the scenarios search for."""
    from sqlalchemy import insert

    from larder.catalog import Catalog
    from larder.catalog.functions import FeatureSpecRecord, FunctionRecord, FunctionVersionRecord
    from larder.catalog.models import ModelFeatureRecord, ModelFunctionRecord, ModelRecord, ModelTableRecord
    from larder.catalog.online import PublicationRecord
    from larder.catalog.stats import TableStatsRecord
    from larder.catalog.tables import FeatureRecord, TableRecord, TagRecord

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    cat = Catalog(f"sqlite:///{root / 'catalog.db'}")
    now = datetime(2026, 11, 1)
    tables, features, tags, stats = [], [], [], []
    for i in range(n_tables):
        word = WORDS[i % len(WORDS)]
        schema = f"s{i % 20:02d}"
        name = f"{word}_t{i:05d}"
        full = f"main.{schema}.{name}"
        ts = i % 3 == 0
        tables.append(dict(id=i + 1, full_name=full, catalog_name="main", schema_name=schema, table_name=name,
                           path=f"missing/{schema}/{name}", primary_keys=["entity_id", "ts"] if ts else ["entity_id"],
                           timestamp_keys=["ts"] if ts else [], partition_columns=[],
                           description=f"{word.title()} features of team {TEAMS[i % len(TEAMS)]}, table {i}",
                           owner=f"user{i % 37}", created_at=now, updated_at=now))
        cols = ["entity_id"] + (["ts"] if ts else []) + [f"{word}_f{j}" for j in range(n_features)]
        if i == n_tables // 2:
            cols.append("needle_feature")
        for j, c in enumerate(cols):
            features.append(dict(table_id=i + 1, name=c, dtype="double", position=j, added_in_version=0,
                                 description=f"{c} of {word}" if j % 4 == 0 else None, extra={}, created_at=now))
        tags.append(dict(table_id=i + 1, key="team", value=TEAMS[i % len(TEAMS)]))
        tags.append(dict(table_id=i + 1, key="tier", value=["gold", "silver", "bronze"][i % 3]))
        stats.append(dict(table_id=i + 1, delta_version=int(rng.integers(0, 50)), row_count=int(rng.integers(1, 10**7)),
                          written_at=now - timedelta(minutes=int(rng.integers(0, 60 * 24 * 90))), recorded_at=now))
    functions = [dict(id=1, full_name="main.s00.age", catalog_name="main", schema_name="s00", function_name="age",
                      description="age", owner="user0", created_at=now, updated_at=now)]
    fversions = [dict(function_id=1, version="abc123", seq=1, python_name="age", source="def age(a, b):\n    return b - a\n",
                      code="def age(a, b):\n    return b - a\n", parameters=[], return_type=None, output_type="int64",
                      mode="auto", environment={}, pickle=None, python_version="3.11", description=None, created_at=now)]
    models, mtables, mfeatures, mfunctions = [], [], [], []
    for m in range(n_models):
        chosen = rng.choice(n_tables, size=3, replace=False)
        models.append(dict(id=m + 1, run_uri=f"runs:/run{m:04d}/model", model_uri=f"models:/m-{m}", run_id=f"run{m:04d}",
                           artifact_path="model", registered_name=f"model_{m % 50:02d}", registered_version=str(m // 50 + 1),
                           flavor="mlflow.sklearn", tracking_uri="sqlite:///mlflow.db", feature_spec="features: []\n",
                           input_columns=["entity_id"], feature_columns=[], labels=["y"], logged_at=now, owner="user1"))
        for p, t in enumerate(chosen):
            full = tables[t]["full_name"]
            mtables.append(dict(model_id=m + 1, position=p, table_name=full, delta_version=1, online=None))
            word = full.split(".")[-1].split("_t")[0]
            for j in range(3 + (p == 0)):
                mfeatures.append(dict(model_id=m + 1, position=len(mfeatures), table_name=full, feature_name=f"{word}_f{j}",
                                      output_name=f"{word}_f{j}_{p}", dtype="double", default_value=None))
        mfunctions.append(dict(model_id=m + 1, position=0, function_name="main.s00.age", function_version="abc123",
                               input_bindings={"a": "x", "b": "y"}, output_name="age"))
    import pyarrow as pa

    from larder.online.stores.base import OnlineTable, online_table_info

    def online(full: str) -> dict[str, Any]:
        word = full.split(".")[-1].split("_t")[0]
        schema = pa.schema([("entity_id", pa.int64()), (f"{word}_f0", pa.float64())])
        return online_table_info(OnlineTable(name=full, primary_keys=["entity_id"], timestamp_key=None, schema=schema))

    pubs = [dict(table_name=tables[i]["full_name"], store_name=None, store_type="sqlite",
                 store_spec={"type": "sqlite", "path": None, "page_size": None}, store_key=f"sqlite:{root}/online.db",
                 online_table_name=tables[i]["full_name"], online_table=online(tables[i]["full_name"]),
                 features=[tables[i]["full_name"].split(".")[-1].split("_t")[0] + "_f0"], delta_version=1, mode="merge",
                 filter_condition=None, rows=1000, order_value=None, published_at=now, duration_s=1.0, dropped_at=None)
            for i in range(0, n_tables, 10)]
    with cat.engine.begin() as conn:
        for model, rows in ((TableRecord, tables), (FeatureRecord, features), (TagRecord, tags),
                            (TableStatsRecord, stats), (FunctionRecord, functions), (FunctionVersionRecord, fversions),
                            (ModelRecord, models), (ModelTableRecord, mtables), (ModelFeatureRecord, mfeatures),
                            (ModelFunctionRecord, mfunctions), (PublicationRecord, pubs)):
            for start in range(0, len(rows), 5000):
                conn.execute(insert(model), rows[start:start + 5000])
        conn.execute(insert(FeatureSpecRecord), [dict(full_name="main.s00.spec", catalog_name="main", schema_name="s00",
                                                      spec_name="spec", yaml="features: []\n", description=None,
                                                      created_at=now)])
    cat.close()
    return {"tables": n_tables, "features": len(features), "tags": len(tags), "models": n_models,
            "publications": len(pubs), "needle_table": tables[n_tables // 2]["full_name"],
            "name_probe": tables[n_tables // 3]["table_name"]}


# --------------------------------------------------------------------------------- raw SQL limit
_MATCH = """(lower(t.full_name) LIKE :p ESCAPE '/' OR lower(t.description) LIKE :p ESCAPE '/'
  OR t.id IN (SELECT table_id FROM features WHERE lower(name) LIKE :p ESCAPE '/' OR lower(description) LIKE :p ESCAPE '/')
  OR t.id IN (SELECT table_id FROM feature_table_tags WHERE lower(key) LIKE :p ESCAPE '/' OR lower(value) LIKE :p ESCAPE '/'))"""


def raw_page(con: sqlite3.Connection, query: str, limit: int = 50, order: str = "t.full_name ASC") -> int:
    """The list page from raw SQL: matching count, catalog count, the page with stats, and the page's
    tags and features. Returns the number of matches."""
    terms = [t for t in query.lower().split() if t]
    where = " AND ".join(_MATCH.replace(":p", f":p{i}") for i in range(len(terms))) or "1=1"
    params = {f"p{i}": "%" + t.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%" for i, t in enumerate(terms)}
    total = con.execute(f"SELECT count(*) FROM feature_tables t WHERE {where}", params).fetchone()[0]
    con.execute("SELECT count(t.id), count(s.table_id) FROM feature_tables t LEFT JOIN feature_table_stats s "
                "ON s.table_id = t.id").fetchone()
    rows = con.execute(f"SELECT t.id, t.full_name, t.description, t.primary_keys, t.timestamp_keys, t.owner, "
                       f"s.row_count, s.delta_version, s.written_at FROM feature_tables t LEFT JOIN feature_table_stats s "
                       f"ON s.table_id = t.id WHERE {where} ORDER BY {order} LIMIT {limit}", params).fetchall()
    ids = ",".join(str(r[0]) for r in rows) or "NULL"
    con.execute(f"SELECT table_id, key, value FROM feature_table_tags WHERE table_id IN ({ids})").fetchall()
    con.execute(f"SELECT table_id, name, description FROM features WHERE table_id IN ({ids})").fetchall()
    return int(total)


# ------------------------------------------------------------------------------------- the server
def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "larder"
    proc = subprocess.Popen([str(exe), "ui", "--root", str(root), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/api/health", timeout=2):
                return proc, base
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("larder ui did not start")


def fetch(base: str, path: str) -> tuple[float, float, bytes]:
    """(server ms from Server-Timing, client round trip ms, body)."""
    t0 = time.perf_counter()
    req = urllib.request.Request(base + path, headers={"Accept": "text/html" if not path.startswith("/api") else "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = resp.read()
        timing = resp.headers.get("Server-Timing", "")
    client = (time.perf_counter() - t0) * 1000
    return float(timing.split("dur=")[1]) if "dur=" in timing else float("nan"), client, body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=10_000)
    ap.add_argument("--features", type=int, default=12, help="features per table (besides the keys)")
    ap.add_argument("--models", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="larder-bench-ui-")) if args.workdir is None else args.workdir
    root = work / "root"
    t0 = time.perf_counter()
    if (root / "catalog.db").exists():
        info = json.loads((work / "info.json").read_text())
    else:
        info = build_catalog(root, args.tables, args.features, args.models)
        (work / "info.json").write_text(json.dumps(info))
    build_s = time.perf_counter() - t0
    needle = info["needle_table"]
    scenarios: list[tuple[str, str, str | None, str]] = [
        # name, path, raw query (None: no raw equivalent), raw order
        ("list page (HTML)", "/tables", "", "t.full_name ASC"),
        ("list (API)", "/api/tables", "", "t.full_name ASC"),
        ("list sorted by rows (API)", "/api/tables?sort=rows&order=desc", "", "s.row_count IS NULL, s.row_count DESC"),
        ("last page (HTML)", f"/tables?page={args.tables // 50}", None, ""),
        ("search: table name (HTML)", f"/tables?q={info['name_probe']}", info["name_probe"], "t.full_name ASC"),
        ("search: table name (API)", f"/api/tables?q={info['name_probe']}", info["name_probe"], "t.full_name ASC"),
        ("search: rare feature (API)", "/api/tables?q=needle_feature", "needle_feature", "t.full_name ASC"),
        ("search: common word (API)", "/api/tables?q=fraud", "fraud", "t.full_name ASC"),
        ("search: tag value + word (API)", "/api/tables?q=gold+churn", "gold churn", "t.full_name ASC"),
        ("search: no match (API)", "/api/tables?q=zzzz_nothing", "zzzz_nothing", "t.full_name ASC"),
        ("models page (HTML)", "/models", None, ""),
        ("online page (HTML)", "/online", None, ""),
        ("lineage, whole catalog (API)", "/api/lineage", None, ""),
        ("lineage of one model (HTML)", "/lineage?focus=model:model_07/1", None, ""),
    ]
    proc, base = start_server(root)
    results: dict[str, dict[str, Any]] = {name: {"server_ms": [], "client_ms": [], "raw_ms": []} for name, *_ in scenarios}
    con = sqlite3.connect(root / "catalog.db")
    try:
        for _name, path, *_ in scenarios:  # warm up: first requests import templates, compile SQL
            fetch(base, path)
        body = json.loads(fetch(base, "/api/tables?q=needle_feature")[2])
        assert [t["name"] for t in body["tables"]] == [needle], body
        assert json.loads(fetch(base, "/api/tables")[2])["total"] == args.tables
        for _ in range(args.repeats):
            for name, path, raw_q, raw_order in scenarios:
                server, client, _ = fetch(base, path)
                results[name]["server_ms"].append(server)
                results[name]["client_ms"].append(client)
                if raw_q is not None:
                    t1 = time.perf_counter()
                    raw_page(con, raw_q, order=raw_order)
                    results[name]["raw_ms"].append((time.perf_counter() - t1) * 1000)
    finally:
        con.close()
        proc.terminate()
        proc.wait(10)
    summary = []
    for name, r in results.items():
        row = {"scenario": name, "server_ms_median": statistics.median(r["server_ms"]),
               "server_ms_p95": float(np.percentile(r["server_ms"], 95)), "client_ms_median": statistics.median(r["client_ms"])}
        if r["raw_ms"]:
            row["raw_sql_ms_median"] = statistics.median(r["raw_ms"])
            row["ratio_to_raw"] = row["server_ms_median"] / row["raw_sql_ms_median"]
        summary.append(row)
    out = {"benchmark": "ui", "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                          "python": platform.python_version()},
           "catalog": info, "build_s": build_s, "repeats": args.repeats, "results": summary,
           "target_ms": 200, "target_met": all(r["server_ms_median"] < 200 for r in summary
                                               if r["scenario"].startswith(("list", "search", "last page")))}
    print(json.dumps(out, indent=1))
    print(f"\ncatalog: {info['tables']:,} tables, {info['features']:,} features, {info['models']} models; "
          f"{args.repeats} requests each")
    print(f"{'scenario':34} {'server med':>11} {'server p95':>11} {'client med':>11} {'raw SQL med':>12} {'ratio':>6}")
    for r in summary:
        raw = f"{r['raw_sql_ms_median']:10.1f}ms" if "raw_sql_ms_median" in r else f"{'-':>12}"
        ratio = f"{r['ratio_to_raw']:5.2f}x" if "ratio_to_raw" in r else f"{'-':>6}"
        print(f"{r['scenario']:34} {r['server_ms_median']:9.1f}ms {r['server_ms_p95']:9.1f}ms "
              f"{r['client_ms_median']:9.1f}ms {raw} {ratio}")


if __name__ == "__main__":
    main()
