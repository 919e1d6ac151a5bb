"""``larder doctor``: a healthy team deployment passes every check; a broken one is told, check by
check, what is wrong and how to fix it; ``--repair`` fixes what a crash left behind."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from alembic import command
from typer.testing import CliRunner

from _services import free_port, s3_options
from larder.catalog import migrate
from larder.cli.main import app
from larder.client import FeatureEngineeringClient


def _doctor(root: Path, *args: str) -> tuple[int, list[dict]]:
    # a generous wait: a loaded machine's servers answer slowly, and a healthy one must still pass
    wait = () if "--timeout" in args else ("--timeout", "60")
    result = CliRunner().invoke(app, ["doctor", "--root", str(root), "--json", *wait, *args])
    return result.exit_code, json.loads(result.output)


def _by_area(checks: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for c in checks:
        out.setdefault(c["area"], []).append(c)
    return out


def test_a_healthy_team_deployment_passes(tmp_path: Path, postgres_catalog_url: str, s3_storage: dict,
                                          moto_endpoint: str, redis_url: str, mlflow_server: str,
                                          monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "root"
    root.mkdir()
    dynamo = {"type": "dynamodb", "endpoint_url": moto_endpoint, "region": "us-east-1",
              "table_prefix": f"doc{uuid.uuid4().hex[:6]}__"}
    settings = {"catalog_url": postgres_catalog_url, **s3_storage, "mlflow_tracking_uri": mlflow_server,
                "online_stores": {"cache": {"type": "redis", "url": redis_url, "key_prefix": "doctor"}}}
    (root / "larder.yaml").write_text(yaml.safe_dump(settings))
    with FeatureEngineeringClient(root) as fe:
        fe.create_table("doc.users", "id", df=pd.DataFrame({"id": [1, 2], "score": [0.5, 0.7]}))
        fe.publish_table("doc.users", dynamo)  # a store known only from the publication
    code, checks = _doctor(root)
    assert code == 0, [c for c in checks if c["status"] != "ok"]
    assert all(c["status"] == "ok" for c in checks), [c for c in checks if c["status"] != "ok"]
    areas = _by_area(checks)
    assert "at head revision" in areas["catalog"][0]["detail"]
    assert areas["storage"][0]["target"] == s3_storage["storage"]
    assert {c["target"].split()[0] for c in areas["online"]} == {"redis", "dynamodb"}
    assert any("publications (main.doc.users" in c["detail"] for c in areas["online"])
    assert [c["target"] for c in areas["mlflow"]] == [mlflow_server, f"{mlflow_server} artifacts"]
    assert areas["consistency"][0]["detail"] == "every table's data and records agree"
    # the probe object is gone
    import boto3

    bucket, prefix = s3_storage["storage"][len("s3://"):].split("/", 1)
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
            .list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/_larder_doctor").get("Contents", [])]
    assert keys == []


def test_a_broken_deployment_is_told_what_is_wrong_and_how_to_fix_it(tmp_path: Path, moto_endpoint: str,
                                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "root"
    root.mkdir()
    closed = free_port()
    settings = {"catalog_url": f"postgresql+psycopg://larder:s3cret@127.0.0.1:{closed}/larder",
                "storage": f"s3://no-such-bucket-{uuid.uuid4().hex[:6]}/features",
                "storage_options": s3_options(moto_endpoint),
                "mlflow_tracking_uri": f"http://127.0.0.1:{closed}",
                "online_stores": {"cache": {"type": "redis", "url": f"redis://:pw@127.0.0.1:{closed}/0"},
                                  "ddb": {"type": "dynamodb", "endpoint_url": f"http://127.0.0.1:{closed}",
                                          "region": "us-east-1"}}}
    (root / "larder.yaml").write_text(yaml.safe_dump(settings))
    code, checks = _doctor(root)
    assert code == 1
    areas = _by_area(checks)
    assert "s3cret" not in json.dumps(checks) and "pw@" not in json.dumps(checks)
    cat = areas["catalog"][0]
    assert cat["status"] == "fail" and "not reachable" in cat["detail"] and "catalog_url" in cat["fix"]
    store = areas["storage"][0]
    assert store["status"] == "fail" and "bucket exists" in store["fix"]
    online = {c["target"].split()[0]: c for c in areas["online"]}
    assert online["redis"]["status"] == online["dynamodb"]["status"] == "fail"
    assert "redis-server is running" in online["redis"]["fix"] and "endpoint_url" in online["dynamodb"]["fix"]
    ml = areas["mlflow"][0]
    assert ml["status"] == "fail" and "mlflow server" in ml["fix"]
    assert areas["consistency"][0]["detail"].startswith("not checked")
    # the table view says the same, for a person
    out = CliRunner().invoke(app, ["doctor", "--root", str(root)], env={"COLUMNS": "200"})
    assert out.exit_code == 1 and "FAIL" in out.output and "check(s) failed" in out.output
    # a larder.yaml that does not parse is the one finding
    (root / "larder.yaml").write_text("catalog_url: [unclosed\n")
    code, checks = _doctor(root)
    assert code == 1 and [c["area"] for c in checks] == ["config"] and "larder.yaml" in checks[0]["fix"]


def test_a_server_that_never_answers_fails_after_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (the kernel does) and never answers
    try:
        root = tmp_path / "root"
        root.mkdir()
        port = silent.getsockname()[1]
        (root / "larder.yaml").write_text(yaml.safe_dump({"mlflow_tracking_uri": f"http://127.0.0.1:{port}"}))
        started = time.monotonic()
        code, checks = _doctor(root, "--timeout", "0.5")
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    ml = _by_area(checks)["mlflow"][0]
    assert code == 1 and ml["status"] == "fail" and "timed out" in ml["detail"]
    assert elapsed < 30


def test_a_shared_catalog_behind_this_larder_says_upgrade(tmp_path: Path, postgres_catalog_url: str,
                                                          s3_storage: dict, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    engine = sa.create_engine(postgres_catalog_url)
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), migrate.head_revision())
        command.downgrade(migrate.alembic_config(conn), "-1")
    engine.dispose()
    root = tmp_path / "root"
    root.mkdir()
    (root / "larder.yaml").write_text(yaml.safe_dump({"catalog_url": postgres_catalog_url, **s3_storage}))
    code, checks = _doctor(root)
    cat = _by_area(checks)["catalog"][0]
    assert code == 1 and cat["status"] == "fail"
    assert "needs an upgrade" in cat["detail"] and "larder catalog upgrade" in cat["fix"]
    assert CliRunner().invoke(app, ["catalog", "upgrade", "--root", str(root)]).exit_code == 0
    code, checks = _doctor(root)
    assert code == 0 and _by_area(checks)["catalog"][0]["status"] == "ok"
    # committing without conditional put is flagged (a warning: it works, but concurrent writers may lose commits)
    unsafe = {**s3_storage, "storage_options": {**s3_storage["storage_options"], "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}}
    (root / "larder.yaml").write_text(yaml.safe_dump({"catalog_url": postgres_catalog_url, **unsafe}))
    code, checks = _doctor(root)
    storage = _by_area(checks)["storage"][0]
    assert code == 0 and storage["status"] == "warn" and "lose a commit" in storage["detail"]
    assert "Remove AWS_S3_ALLOW_UNSAFE_RENAME" in storage["fix"]


def test_repair_fixes_what_a_crash_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "root"
    with FeatureEngineeringClient(root) as fe:
        fe.create_table("crash.kept", "id", df=pd.DataFrame({"id": [1], "v": [1.0]}))
    # a create_table killed before it reached the catalog leaves a table directory nobody references
    kept = next((root / "tables" / "main" / "crash").iterdir())
    orphan = kept.parent / "orphan"
    shutil.copytree(kept, orphan)
    old = time.time() - 3600
    for p in [orphan, *orphan.rglob("*")]:
        os.utime(p, (old, old))
    code, checks = _doctor(root)
    found = [c for c in checks if c["area"] == "consistency"]
    assert code == 0  # a repairable problem is a warning
    assert [(c["status"], c["target"]) for c in found] == [("warn", str(orphan))]
    assert "orphan_directory" in found[0]["detail"] and "larder doctor --repair" in found[0]["fix"]
    code, checks = _doctor(root, "--repair")
    fixed = [c for c in checks if c["area"] == "consistency"]
    assert code == 0 and [c["status"] for c in fixed] == ["ok"] and fixed[0]["detail"].startswith("repaired")
    assert not orphan.exists() and kept.exists()
    _, checks = _doctor(root)
    assert [c["detail"] for c in checks if c["area"] == "consistency"] == ["every table's data and records agree"]
    with FeatureEngineeringClient(root) as fe:
        assert fe.read_table("crash.kept")["v"].tolist() == [1.0]
