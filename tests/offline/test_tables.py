"""Feature tables against real Delta tables on disk and a SQLite catalog."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from _table_workers import merge_writer
from larder.client import FeatureEngineeringClient
from larder.errors import (
    ConfigError,
    EmptyDataFrameError,
    InvalidNameError,
    PrimaryKeyError,
    SchemaMismatchError,
    TableExistsError,
    TableNotFoundError,
    TimestampKeyError,
)

pytestmark = pytest.mark.deployments("local", "team")


def houses(ids=(1, 2, 3), qual=(7, 5, 8)) -> pd.DataFrame:
    return pd.DataFrame({"Id": list(ids), "OverallQual": list(qual), "GrLivArea": [1500.0 + i for i in ids]})


def stored_names(fe: FeatureEngineeringClient, *parts: str) -> list[str]:
    """Names stored directly under ``parts`` of the storage root (local disk or object store)."""
    import pyarrow.fs as pafs

    fs = fe._ctx.storage.root.child(*parts).filesystem()
    return sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector("", allow_not_found=True)))


def state(fe: FeatureEngineeringClient, name: str) -> tuple[int, list[str], dict]:
    t = fe.get_table(name)
    return t.version, [f.name for f in t.features], t.tags


def test_create_read_roundtrip(fe):
    t = fe.create_table("houses", primary_keys="Id", df=houses(), description="Ames houses", tags={"team": "ml"})
    assert t.name == "main.default.houses"
    assert t.primary_keys == ["Id"] and t.timestamp_keys == []
    assert t.feature_names == ["OverallQual", "GrLivArea"]
    assert t.version == 0 and t.row_count == 3
    assert t.description == "Ames houses" and t.tags == {"team": "ml"}
    assert t.owner
    got = fe.read_table("houses").sort_values("Id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, houses(), check_dtype=False)
    # all three name forms resolve to the same table
    assert fe.get_table("default.houses").name == fe.get_table("main.default.houses").name


def test_merge_upserts_and_evolves_schema(fe):
    fe.create_table("houses", primary_keys="Id", df=houses())
    v = fe.write_table("houses", pd.DataFrame({"Id": [3, 4], "OverallQual": [9, 6], "Garage": [2, 1]}))
    assert v == 1
    got = fe.read_table("houses").sort_values("Id").set_index("Id")
    assert got.loc[3, "OverallQual"] == 9 and got.loc[4, "OverallQual"] == 6
    assert got.loc[3, "GrLivArea"] == 1503.0  # columns absent from the write keep their values
    assert pd.isna(got.loc[4, "GrLivArea"]) and pd.isna(got.loc[1, "Garage"])
    t = fe.get_table("houses")
    assert [f.name for f in t.features] == ["Id", "OverallQual", "GrLivArea", "Garage"]
    assert {f.name: f.dtype for f in t.features}["Garage"] == "int64"
    assert t.row_count == 4


def test_overwrite_replaces_contents(fe):
    fe.create_table("houses", primary_keys="Id", df=houses())
    fe.write_table("houses", houses(ids=(10,), qual=(1,)), mode="overwrite")
    assert fe.read_table("houses")["Id"].tolist() == [10]
    assert fe.get_table("houses").row_count == 1


def test_time_travel(fe):
    fe.create_table("houses", primary_keys="Id", df=houses())
    before = dt.datetime.now(dt.UTC)
    time.sleep(0.05)
    fe.write_table("houses", houses(ids=(1,), qual=(1,)))
    assert fe.read_table("houses", as_of_version=0).set_index("Id").loc[1, "OverallQual"] == 7
    assert fe.read_table("houses").set_index("Id").loc[1, "OverallQual"] == 1
    assert fe.read_table("houses", as_of_timestamp=before).set_index("Id").loc[1, "OverallQual"] == 7
    h = fe.table_history("houses")
    assert h["version"].tolist() == [1, 0]
    assert h.loc[0, "operation"] == "MERGE" and h.loc[0, "rows_updated"] == 1


def test_arrow_and_schema_inputs(fe):
    fe.create_table("t", primary_keys=["a", "b"], schema={"a": "int64", "b": "string", "x": "double"})
    assert fe.get_table("t").row_count == 0
    fe.write_table("t", pa.table({"a": [1, 1], "b": ["x", "y"], "x": [0.5, 1.5]}))
    assert sorted(fe.read_table("t")["x"].tolist()) == [0.5, 1.5]
    # narrower ints widen losslessly into the stored type
    fe.write_table("t", pa.table({"a": pa.array([2], pa.int32()), "b": ["z"], "x": [2.0]}))
    assert fe.get_table("t").row_count == 3


def test_polars_input(fe):
    pl = pytest.importorskip("polars")
    fe.create_table("p", primary_keys="k", df=pl.DataFrame({"k": [1, 2], "v": [1.0, 2.0]}))
    assert fe.get_table("p").row_count == 2


def test_time_series_table_and_time_zones(fe):
    df = pd.DataFrame({
        "user": [1, 1, 2],
        "ts": pd.to_datetime(["2024-01-01 00:00", "2024-01-02 00:00", "2024-01-01 12:00"]),  # naive = UTC
        "clicks": [3, 4, 5],
    })
    t = fe.create_table("events", primary_keys="user", timestamp_keys="ts", df=df)
    # Databricks' meaning: primary_keys without the time-series column
    assert t.primary_keys == ["user"] and t.all_keys == ["user", "ts"] and t.entity_keys == ["user"]
    assert t.is_time_series and t.timeseries_column == "ts"
    # the same instant in another zone is the same key: merge updates, does not insert
    aware = pd.DataFrame({
        "user": [1], "ts": [pd.Timestamp("2024-01-01 01:00", tz="Europe/Paris")], "clicks": [30],
    })
    fe.write_table("events", aware)
    got = fe.read_table("events")
    assert str(got["ts"].dtype) == "datetime64[us, UTC]"
    assert len(got) == 3
    row = got[(got.user == 1) & (got.ts == pd.Timestamp("2024-01-01", tz="UTC"))]
    assert row["clicks"].tolist() == [30]


def test_tags_descriptions_list(fe, caplog):
    fe.create_table("a.houses", primary_keys="Id", df=houses(), tags={"team": "ml"},
                    feature_descriptions={"OverallQual": "overall quality 1-10"})
    fe.create_table("b.prices", primary_keys="Id", df=houses())
    fe.set_feature_table_tag(name="b.prices", key="team", value="fin")
    fe.set_feature_table_tag(name="b.prices", key="pii", value="no")
    assert [t.name for t in fe.list_tables(tags={"team": "fin"})] == ["main.b.prices"]
    assert [t.name for t in fe.list_tables(tags=["team"])] == ["main.a.houses", "main.b.prices"]
    assert [t.name for t in fe.list_tables("*houses")] == ["main.a.houses"]
    fe.delete_feature_table_tag(name="b.prices", key="pii")
    assert fe.get_table("b.prices").tags == {"team": "fin"}
    # a tag the table does not have is skipped with a warning, as on Databricks
    fe.delete_feature_table_tag(name="b.prices", key="pii")
    assert 'The tag "pii" for feature table "b.prices" was not found' in caplog.text
    assert fe.get_table("b.prices").tags == {"team": "fin"}
    fe.set_feature_description("a.houses", "GrLivArea", "living area")
    desc = {f.name: f.description for f in fe.get_table("a.houses").features}
    assert desc == {"Id": None, "OverallQual": "overall quality 1-10", "GrLivArea": "living area"}


def test_drop_table(fe, larder_root: Path):
    fe.create_table("houses", primary_keys="Id", df=houses())
    assert stored_names(fe, "main", "default") == ["houses"]
    fe.drop_table("houses")
    assert stored_names(fe, "main", "default") == []
    with pytest.raises(TableNotFoundError, match="main.default.houses"):
        fe.get_table("houses")
    fe.create_table("houses", primary_keys="Id", df=houses())  # the name is free again


@pytest.mark.deployments("local")
def test_moved_root_reads_and_writes_its_own_tables(fe, larder_root: Path, tmp_path: Path):
    import shutil

    fe.create_table("houses", primary_keys="Id", df=houses())
    fe.close()
    moved = tmp_path / "restored-root"
    shutil.copytree(larder_root, moved)
    shutil.rmtree(larder_root)  # the original is gone: the copy must not point at it
    restored = FeatureEngineeringClient(root=moved)
    try:
        t = restored.get_table("houses")
        assert Path(t.path).resolve().is_relative_to(moved.resolve())
        pd.testing.assert_frame_equal(
            restored.read_table("houses").sort_values("Id", ignore_index=True),
            houses().sort_values("Id", ignore_index=True), check_dtype=False,
        )
        restored.write_table("houses", houses().assign(Id=lambda d: d["Id"] + 1000))
        assert restored.get_table("houses").version == 1
        assert not larder_root.exists()
    finally:
        restored.close()


# -- bad input: a clear error, and nothing written --------------------------------------------

BAD_WRITES = [
    (pd.DataFrame({"Id": [1, None], "OverallQual": [1, 2]}), PrimaryKeyError, "null 'Id'"),
    (pd.DataFrame({"OverallQual": [1]}), PrimaryKeyError, "lacks \\['Id'\\]"),
    (pd.DataFrame({"Id": [1, 1], "OverallQual": [1, 2]}), PrimaryKeyError, "more than once"),
    (pd.DataFrame({"Id": [1], "OverallQual": ["high"]}), SchemaMismatchError, "column 'OverallQual' has type string"),
    (pd.DataFrame({"Id": pd.Series([], dtype="int64"), "OverallQual": pd.Series([], dtype="int64")}),
     EmptyDataFrameError, "no rows"),
    (pd.DataFrame({"Id": [1], "New": [None]}), SchemaMismatchError, "only nulls"),
]


@pytest.mark.parametrize(("df", "exc", "match"), BAD_WRITES)
def test_rejected_write_changes_nothing(fe, df, exc, match):
    fe.create_table("houses", primary_keys="Id", df=houses())
    before = state(fe, "houses")
    data_before = fe.read_table("houses")
    with pytest.raises(exc, match=match) as info:
        fe.write_table("houses", df)
    assert "houses" in str(info.value)
    assert state(fe, "houses") == before
    pd.testing.assert_frame_equal(fe.read_table("houses"), data_before)


def test_timestamp_key_must_be_timestamp(fe):
    with pytest.raises(TimestampKeyError, match="pd.to_datetime"):
        fe.create_table("ev", primary_keys="u", timestamp_keys="ts",
                        df=pd.DataFrame({"u": [1], "ts": ["2024-01-01"], "x": [1]}))
    assert fe.list_tables() == []


def test_unknown_existing_invalid_empty(fe, larder_root: Path):
    with pytest.raises(TableNotFoundError, match="create_table"):
        fe.write_table("nope", houses())
    fe.create_table("houses", primary_keys="Id", df=houses())
    with pytest.raises(TableExistsError, match="drop_table"):
        fe.create_table("houses", primary_keys="Id", df=houses())
    for bad in ["1abc", "a-b", "a.b.c.d", "", "x y"]:
        with pytest.raises(InvalidNameError):
            fe.create_table(bad, primary_keys="Id", df=houses())
    with pytest.raises(EmptyDataFrameError):
        fe.create_table("empty", primary_keys="Id", df=houses().iloc[:0])
    with pytest.raises(PrimaryKeyError, match="null"):
        fe.create_table("nullkey", primary_keys="Id", df=pd.DataFrame({"Id": [None, 1.0]}))
    # failed creates leave neither catalog entries nor storage behind
    assert [t.name for t in fe.list_tables()] == ["main.default.houses"]
    assert stored_names(fe, "main", "default") == ["houses"]


def test_sub_microsecond_timestamps_rejected(fe):
    df = pd.DataFrame({"u": [1], "ts": [pd.Timestamp("2024-01-01 00:00:00.000000001")], "x": [1]})
    with pytest.raises(SchemaMismatchError, match="sub-microsecond"):
        fe.create_table("ev", primary_keys="u", timestamp_keys="ts", df=df)


@pytest.mark.deployments("local")
def test_config_is_strict(larder_root: Path):
    larder_root.mkdir(parents=True)
    (larder_root / "larder.yaml").write_text("catalog_url: sqlite:///x.db\nbogus: 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        FeatureEngineeringClient(larder_root)
    (larder_root / "larder.yaml").write_text(
        "online_stores:\n  dyn: {type: dynamodb, region: eu-west-1, ttl: P30D}\ndefault_online_store: dyn\n"
    )
    fe = FeatureEngineeringClient(larder_root)
    assert fe._ctx.config.online_stores["dyn"].ttl == dt.timedelta(days=30)
    fe.close()


@pytest.mark.deployments("local")
def test_root_from_environment(larder_root: Path):
    fe = FeatureEngineeringClient()
    assert Path(fe.root) == larder_root.resolve()
    fe.create_table("houses", primary_keys="Id", df=houses())
    assert (larder_root / "catalog.db").exists()
    fe.close()


# -- concurrency ---------------------------------------------------------------------------------

def test_two_processes_merging_lose_no_rows(fe, larder_root: Path):
    fe.create_table("houses", primary_keys="Id", df=houses())
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=merge_writer, args=(str(larder_root), s, 8, barrier)) for s in (1000, 5000)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    got = fe.read_table("houses")
    assert len(got) == 3 + 2 * 8 * 10
    assert got["Id"].is_unique
    assert fe.get_table("houses").version == 16


def test_every_version_is_recorded_with_its_write_id(fe):
    import sqlalchemy as sa
    from deltalake import DeltaTable

    from larder.catalog.tables import TableVersionRecord

    fe.create_table("houses", primary_keys="Id", df=houses())
    fe.write_table("houses", houses(ids=(4,), qual=(1,)))
    fe.write_table("houses", houses(ids=(5, 6), qual=(2, 3)), mode="overwrite")
    with fe._ctx.catalog.session() as s:
        rows = [(r.delta_version, r.operation, r.rows, r.write_id, r.attempts)
                for r in s.scalars(sa.select(TableVersionRecord).order_by(TableVersionRecord.delta_version))]
    assert [r[:3] for r in rows] == [(0, "create", 3), (1, "merge", 1), (2, "overwrite", 2)]
    assert all(r[4] == 1 for r in rows)
    loc = fe._ctx.storage.table_location("main", "default", "houses")
    log = {h["version"]: h.get("larder.write_id")
           for h in DeltaTable(loc.uri, storage_options=loc.storage_options).history()}
    assert log == {v: w for v, _, _, w, _ in rows}
    fe.drop_table("houses")
    with fe._ctx.catalog.session() as s:
        assert s.scalars(sa.select(TableVersionRecord)).first() is None


def _described(t) -> tuple:
    """Everything a FeatureTable tells, its columns' types, flags, descriptions and metadata included."""
    return (t, [(f.name, f.dtype, f.description, f.is_primary_key, f.is_timestamp_key, f.metadata) for f in t.features])


def test_create_table_returns_what_get_table_then_reads(fe):
    """create_table describes its new table from the commit it made (no second open of the Delta table) and
    stores the rows' profile and validation with the table's row: all of it as a later get_table reads it."""
    from larder.quality import in_range
    from larder.quality.store import get_validation

    df = pd.DataFrame({
        "Id": [1, 2, 3, 4], "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"], utc=True),
        "region": ["n", "s", "n", "s"], "price": [10.0, -1.0, None, 5.0], "n": pd.array([1, 2, 3, 4], dtype="int32"),
        "label": ["a", "b", "c", "d"],
    })
    with pytest.warns(Warning, match="in_range"):
        made = fe.create_table("houses", primary_keys=["Id", "ts"], timestamp_keys="ts", df=df,
                               partition_columns="region", description="d", tags={"team": "x", "tier": "1"},
                               feature_descriptions={"price": "in dollars"},
                               expectations=[in_range("price", min=0)], quality_policy="warn")
    assert _described(made) == _described(fe.get_table("houses"))
    assert (made.version, made.row_count, made.partition_columns) == (0, 4, ["region"])
    assert made.table_id == str(fe._tables.snapshot("houses").table.metadata().id)
    prof = fe.get_profile("houses", 0)
    assert prof is not None and prof.row_count == 4 and prof.column("price").nulls == 1
    run = get_validation(fe._ctx.catalog, made.name, 0)
    assert run is not None and not run.passed and run.results[0].failing_count == 1

    empty = fe.create_table("declared", primary_keys="Id", schema=pa.schema([("Id", pa.int64()), ("v", pa.float64())]))
    assert _described(empty) == _described(fe.get_table("declared"))
    assert (empty.version, empty.row_count) == (0, 0) and fe.get_profile("declared") is None
