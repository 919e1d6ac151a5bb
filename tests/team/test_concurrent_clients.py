"""Several clients at once on a team deployment: processes with their own working directory and root
(nothing local in common), one PostgreSQL catalog, one S3 bucket (moto), merging into one table."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from deltalake import DeltaTable

from _team_workers import batch, merge_client, publish_train_client
from larder.catalog.quality import ProfileRecord
from larder.catalog.stats import TableStatsRecord
from larder.catalog.tables import TableRecord, TableVersionRecord
from larder.client import FeatureEngineeringClient
from larder.offline.delta import WRITE_ID_KEY

WORKERS = 4
MERGES = 50  # per worker: 200 in all
TABLE = "main.team.counters"


ROUNDS = 5  # of the publishing and training client


@pytest.fixture()
def team(tmp_path: Path, postgres_catalog_url: str, s3_storage: dict) -> dict:
    return {"catalog_url": postgres_catalog_url, **s3_storage}


def test_four_clients_200_merges_lose_nothing_and_every_version_is_recorded(tmp_path: Path, team: dict,
                                                                            moto_endpoint: str):
    """Four writers merge overlapping keys while a fifth client publishes the table to DynamoDB and
    trains on it: no row lost or duplicated, every Delta version recorded in the catalog with the write
    id of its commit, and every training set and publication exactly the table at the version it
    pinned."""
    root = tmp_path / "creator"
    root.mkdir()
    (root / "larder.yaml").write_text(yaml.safe_dump(team))
    fe = FeatureEngineeringClient(root)
    initial = batch(-1, 0)  # version 0: some shared keys and a few keys of its own
    fe.create_table(TABLE, "Id", df=initial)

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WORKERS + 1)
    outs = [tmp_path / f"out-{w}.json" for w in range(WORKERS)]
    procs = []
    for w in range(WORKERS):
        workdir = tmp_path / f"client-{w}"
        workdir.mkdir()
        procs.append(ctx.Process(target=merge_client,
                                 args=(str(workdir), team, TABLE, w, MERGES, barrier, str(outs[w]))))
    (tmp_path / "reader").mkdir()
    store = {"endpoint_url": moto_endpoint, "region": "us-east-1", "table_prefix": f"c{tmp_path.name[-8:]}__"}
    procs.append(ctx.Process(target=publish_train_client, args=(str(tmp_path / "reader"), team, TABLE, store,
                                                                ROUNDS, barrier, str(tmp_path / "reader.json"))))
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
    assert [p.exitcode for p in procs] == [0] * (WORKERS + 1)
    results = [json.loads(o.read_text()) for o in outs]
    rounds = json.loads((tmp_path / "reader.json").read_text())["rounds"]
    assert len(rounds) == ROUNDS

    # every merge committed exactly once: the versions it returned are 1..200, each once
    returned = sorted(v for r in results for v, _ in r["versions"])
    committed = {v: (w, i) for w, r in enumerate(results) for v, i in r["versions"]}
    assert returned == list(range(1, WORKERS * MERGES + 1)), (
        f"duplicates {sorted({v for v in returned if returned.count(v) > 1})}, "
        f"missing {sorted(set(range(1, WORKERS * MERGES + 1)) - set(returned))}")

    # 0 rows lost, 0 duplicated: the table is the upsert of the batches in commit order
    expected = initial.set_index("Id")
    for v in sorted(committed):
        b = batch(*committed[v]).set_index("Id")
        expected = pd.concat([expected.drop(b.index, errors="ignore"), b])
    got = fe.read_table(TABLE)
    assert got["Id"].is_unique
    pd.testing.assert_frame_equal(got.set_index("Id").sort_index()[expected.columns], expected.sort_index(),
                                  check_dtype=False)

    # every version in the Delta log is recorded in the catalog, with the write id of its commit
    loc = fe._ctx.storage.table_location("main", "team", "counters")
    log = {h["version"]: h for h in DeltaTable(loc.uri, storage_options=loc.storage_options).history()}
    assert sorted(log) == list(range(WORKERS * MERGES + 1))
    with fe._ctx.catalog.session() as s:
        table_id = s.scalars(sa.select(TableRecord.id).where(TableRecord.full_name == TABLE)).one()
        rows = {r.delta_version: r for r in s.scalars(
            sa.select(TableVersionRecord).where(TableVersionRecord.table_id == table_id))}
        profiled = set(s.scalars(sa.select(ProfileRecord.delta_version).where(ProfileRecord.table_full_name == TABLE)))
        stats = s.get(TableStatsRecord, table_id)
        assert sorted(rows) == sorted(log)
        assert all(rows[v].write_id == log[v][WRITE_ID_KEY] for v in log)
        assert [rows[v].operation for v in sorted(rows)] == ["create"] + ["merge"] * (WORKERS * MERGES)
        # and no catalog row refers to a version the log does not have
        assert profiled <= set(log) and stats.delta_version == max(log)
        attempts = sum(r.attempts - 1 for r in rows.values())
    retried_writes = sum(r["retried_writes"] for r in results)
    delta_retries = sum(int((h.get("operationMetrics") or {}).get("num_retries", 0) or 0) for h in log.values())
    print(f"\n[concurrency] {WORKERS} clients x {MERGES} merges on S3 + PostgreSQL: commit retries after "
          f"conflicts {attempts}, writes retried after a retryable error {retried_writes}, delta-rs "
          f"internal commit retries {delta_retries}; {len(got)} rows; trained on / published versions "
          f"{[(r['training_version'], r['published_version']) for r in rounds]}")
    assert attempts + retried_writes > 0, "four writers on one table never conflicted: the test is not concurrent"
    fe.close()
