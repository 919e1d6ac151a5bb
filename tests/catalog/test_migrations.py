"""Catalog schema migrations (Alembic): the revisions build exactly the models' schema, a catalog
written by the release before migrations (fixture ``legacy-2292b7e``) is upgraded with every object
still readable (SQLite on open; PostgreSQL + S3 with ``larder catalog upgrade``), several clients
creating one catalog at once create it once, and a newer catalog is refused."""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

import boto3
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from _table_workers import hold_sqlite_lock, open_catalog
from larder.catalog import Catalog, migrate
from larder.catalog.base import Base, load_areas
from larder.cli.main import app
from larder.client import FeatureEngineeringClient
from larder.errors import CatalogError
from larder.training import FeatureLookup

FIXTURE = Path(__file__).parent / "fixtures" / "legacy-2292b7e"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
HOUSES = "main.legacy.houses"


def _fresh_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL of an empty catalog database (SQLite file, or a new PostgreSQL schema)."""
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / f'c-{uuid.uuid4().hex[:6]}.db'}"
    pg = request.getfixturevalue("postgres")
    schema = f"m_{uuid.uuid4().hex[:12]}"
    pg.execute(f"CREATE SCHEMA {schema}")
    return pg.url(schema=schema)


def _schema_diff(conn: sa.Connection) -> list:
    load_areas()
    mc = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": migrate.VERSION_TABLE})
    return compare_metadata(mc, Base.metadata)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_revisions_build_exactly_the_models_schema(dialect: str, tmp_path: Path, request: pytest.FixtureRequest):
    engine = sa.create_engine(_fresh_url(dialect, tmp_path, request))
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), "head")
    with engine.connect() as conn:
        diff = _schema_diff(conn)
    assert not diff, (
        "The ORM models and the catalog migrations differ: add a revision with "
        f"`python scripts/catalog_revision.py \"what changed\"` and review it. Differences: {diff}"
    )
    assert migrate.status(engine).state == "current"
    engine.dispose()
    # a new catalog is created from the models and stamped at the head: the same schema
    fresh_url = _fresh_url(dialect, tmp_path, request)
    Catalog(fresh_url).close()
    fresh = sa.create_engine(fresh_url)
    with fresh.connect() as conn:
        assert not _schema_diff(conn)
        assert conn.execute(sa.text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")).scalar() == migrate.head_revision()
        assert conn.execute(sa.text("SELECT value FROM larder_meta WHERE key = 'schema_version'")).scalar() == "2"
    fresh.dispose()


def check_every_object(fe: FeatureEngineeringClient) -> None:
    """Everything the legacy fixture holds is readable, and the catalog works for new writes."""
    tables = {t.name: t for t in fe.list_tables()}
    assert set(tables) == set(EXPECTED["tables"])
    for name, exp in EXPECTED["tables"].items():
        t = tables[name]
        assert (t.version, t.row_count, [f.name for f in t.features], t.tags, t.description) == (
            exp["version"], exp["rows"], exp["features"], exp["tags"], exp["description"]), name
    houses = fe.read_table(HOUSES).sort_values("Id", ignore_index=True)
    want = pd.DataFrame(EXPECTED["houses_latest"]["data"], columns=EXPECTED["houses_latest"]["columns"])
    pd.testing.assert_frame_equal(houses, want, check_dtype=False)
    assert fe.read_table(HOUSES, as_of_version=0)["Area"].sort_values().tolist()[0] == 900.0
    assert fe.table_history(HOUSES)["version"].tolist() == [2, 1, 0]
    feats = {f.name: f for f in fe.get_table(HOUSES).features}
    assert feats["Qual"].description == "overall quality" and feats["Area"].metadata == {"unit": "sqft"}
    events = fe.read_table("main.legacy.events")
    assert sorted(events["region"]) == ["n", "n", "n", "s", "s"] and events["clicks"].sum() == 42.0
    # functions (both versions), the named spec, quality results, the publication, the model's lineage
    fns = {f.name: f for f in fe.list_functions()}
    assert {n: list(f.versions) for n, f in fns.items()} == EXPECTED["functions"]
    first = EXPECTED["functions"]["main.legacy.age"][0]
    assert "2010" in fe.get_function("legacy.age", version=first).source
    spec = fe.get_feature_spec("legacy.house_spec")
    assert spec.name == "main.legacy.house_spec"
    settings = fe.get_expectations(HOUSES)
    assert len(settings.expectations) == 2 and settings.policy == "warn"
    assert fe.get_profile(HOUSES, version=2) is not None
    assert [p.table_name for p in fe.list_publications()] == EXPECTED["publications"]
    online = fe.get_online_features([FeatureLookup(HOUSES, "Id", feature_names=["Qual"])],
                                    pd.DataFrame({"Id": [1, 8]}))
    assert online["Qual"].tolist() == [5, 8]
    lineage = fe.model_lineage(EXPECTED["model"]["name"], EXPECTED["model"]["version"])
    assert [t.name for t in lineage.tables] == [HOUSES]
    assert [f.name for f in lineage.functions] == ["main.legacy.age"]
    # a training set from the named spec, and a new write (recorded as a version) still work
    ts = fe.create_training_set(pd.DataFrame({"Id": [1, 9], "price": [1.0, 9.0]}),
                                [FeatureLookup(HOUSES, "Id", feature_names=["Qual", "Garage"])], label="price")
    assert ts.load_df()["Qual"].tolist() == [5, 9]
    assert fe.write_table(HOUSES, pd.DataFrame({"Id": [10], "Qual": [3], "Area": [800.0], "YearBuilt": [1990],
                                                "Garage": [1]})) == 3
    with fe._ctx.catalog.session() as s:
        from larder.catalog.tables import TableVersionRecord

        assert [r.delta_version for r in s.scalars(sa.select(TableVersionRecord))] == [3]


def test_legacy_sqlite_catalog_is_upgraded_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "root"
    shutil.copytree(FIXTURE / "root", root)
    monkeypatch.setenv("LARDER_ROOT", str(root))
    url = f"sqlite:///{root / 'catalog.db'}"
    before = migrate.status_at(url)
    assert before.state == "legacy" and before.pending[:2] == ["0001_baseline", "0002_table_versions"]
    with FeatureEngineeringClient(root) as fe:
        assert fe._ctx.catalog.schema.state == "legacy"  # what it found, and upgraded
        check_every_object(fe)
    after = migrate.status_at(url)
    assert after.state == "current"
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        # the tables that release did not have yet were created; larder_meta now stops older releases
        names = set(sa.inspect(conn).get_table_names())
        assert {"feature_table_stats", "catalog_edits", "feature_table_versions"} <= names
        assert conn.execute(sa.text("SELECT value FROM larder_meta WHERE key = 'schema_version'")).scalar() == "2"
    engine.dispose()


def _copy_legacy_rows(source_url: str, target_url: str) -> None:
    """Give ``target_url`` the legacy release's schema (the baseline revision without the two tables
    that release did not have) and the fixture's rows, as that release would have left them."""
    src, dst = sa.create_engine(source_url), sa.create_engine(target_url)
    src_meta = sa.MetaData()
    src_meta.reflect(src)
    with dst.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), "0001_baseline")
        conn.execute(sa.text(f"DROP TABLE {migrate.VERSION_TABLE}"))
        for extra in set(sa.inspect(conn).get_table_names()) - set(src_meta.tables):
            conn.execute(sa.text(f"DROP TABLE {extra}"))
    dst_meta = sa.MetaData()
    dst_meta.reflect(dst)
    assert set(dst_meta.tables) == set(src_meta.tables)
    for name, table in src_meta.tables.items():  # the same columns as the release wrote
        assert [c.name for c in table.columns] == [c.name for c in dst_meta.tables[name].columns], name
    with src.connect() as s, dst.begin() as d:
        for table in dst_meta.sorted_tables:
            rows = [dict(r) for r in s.execute(sa.select(src_meta.tables[table.name])).mappings()]
            if rows:
                d.execute(sa.insert(table), rows)
            if "id" in table.c and table.c.id.autoincrement in (True, "auto"):
                d.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                  f"COALESCE((SELECT MAX(id) FROM {table.name}), 1))"))
    src.dispose()
    dst.dispose()


def _upload(directory: Path, bucket: str, prefix: str, endpoint: str) -> None:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for path in directory.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(directory).as_posix()}")


def test_legacy_catalog_on_postgres_and_s3_is_upgraded_by_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   postgres_catalog_url: str, s3_storage: dict,
                                                                   moto_endpoint: str):
    _copy_legacy_rows(f"sqlite:///{FIXTURE / 'root' / 'catalog.db'}", postgres_catalog_url)
    bucket, prefix = s3_storage["storage"][len("s3://"):].split("/", 1)
    _upload(FIXTURE / "root" / "tables", bucket, prefix, moto_endpoint)
    root = tmp_path / "client"
    root.mkdir()
    shutil.copy(FIXTURE / "root" / "online.db", root / "online.db")  # the embedded store it published to
    (root / "larder.yaml").write_text(yaml.safe_dump({"catalog_url": postgres_catalog_url, **s3_storage}))
    monkeypatch.setenv("LARDER_ROOT", str(root))
    # a shared catalog is not upgraded behind its other clients' backs
    with pytest.raises(CatalogError, match="larder catalog upgrade"):
        FeatureEngineeringClient(root).list_tables()
    runner = CliRunner()
    status = runner.invoke(app, ["catalog", "status", "--root", str(root)])
    assert status.exit_code == 0 and "legacy schema version 1" in status.output and "0001_baseline" in status.output
    result = runner.invoke(app, ["catalog", "upgrade", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert "Upgraded the catalog" in result.output and migrate.head_revision() in result.output
    again = runner.invoke(app, ["catalog", "upgrade", "--root", str(root)])
    assert again.exit_code == 0 and "already at revision" in again.output, again.output
    with FeatureEngineeringClient(root) as fe:
        check_every_object(fe)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_clients_creating_one_catalog_at_once_create_it_once(dialect: str, tmp_path: Path,
                                                             request: pytest.FixtureRequest):
    url = _fresh_url(dialect, tmp_path, request)
    # fork: the children only open a catalog (SQLAlchemy, no Arrow threads), and start in milliseconds
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=open_catalog, args=(url, barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {migrate.VERSION_TABLE}")).scalar() == 1
        assert conn.execute(sa.text("SELECT COUNT(*) FROM larder_meta")).scalar() == 1
        assert not _schema_diff(conn)
    engine.dispose()


def test_a_sqlite_catalog_waits_for_another_clients_lock(tmp_path: Path):
    # another client writes for longer than SQLite's default 5 s wait: opening the catalog waits for it
    # (the journal-mode switch included) instead of failing with "database is locked"
    path = tmp_path / "c.db"
    sqlite3.connect(path).close()
    ctx = mp.get_context("fork")
    held = ctx.Event()
    holder = ctx.Process(target=hold_sqlite_lock, args=(str(path), held, 6.5))
    holder.start()
    try:
        assert held.wait(30)
        started = time.monotonic()
        Catalog(f"sqlite:///{path}").close()
        assert time.monotonic() - started > 5
    finally:
        holder.join(60)
    assert holder.exitcode == 0
    assert migrate.status_at(f"sqlite:///{path}").state == "current"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_newer_catalog_is_refused(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    Catalog(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '0099_from_the_future'"))
    engine.dispose()
    with pytest.raises(CatalogError, match="newer larder.*Upgrade larder"):
        Catalog(url)
    assert migrate.status_at(url).state == "ahead"


def test_upgrade_failures_leave_the_catalog_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "root"
    shutil.copytree(FIXTURE / "root", root)
    url = f"sqlite:///{root / 'catalog.db'}"

    def broken(conn: sa.Connection) -> None:
        command.upgrade(migrate.alembic_config(conn), "head")
        raise sa.exc.OperationalError("injected", {}, Exception("disk full"))

    monkeypatch.setattr(migrate, "_upgrade", broken)
    with pytest.raises(CatalogError, match="nothing was changed"):
        migrate.upgrade_at(url)
    assert migrate.status_at(url).state == "legacy"
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert "feature_table_versions" not in sa.inspect(conn).get_table_names()
    engine.dispose()


def test_unreachable_catalog_is_a_clear_retryable_error():
    url = f"postgresql+psycopg://larder@127.0.0.1:1/nope_{uuid.uuid4().hex[:6]}"
    with pytest.raises(CatalogError, match="Cannot open the larder catalog") as info:
        Catalog(url)
    assert info.value.retryable
