"""The engine contract, on every engine: the same inputs give the same tables, errors and joins.

Each test takes the ``engine`` fixture (DuckDB, then Spark on the test session). Writes go through
``engine.ingesting`` with the engine's own frames (Arrow on DuckDB, Spark DataFrames on Spark), and
results are compared as Arrow, so a Spark result must equal DuckDB's value for value.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _pit_oracle import UNITS, _ts_array, key0, key1, oracle, secs, sized_lists, source_case
from larder.client import FeatureEngineeringClient
from larder.errors import (
    ConfigError,
    EmptyDataFrameError,
    PrimaryKeyError,
    SchemaMismatchError,
    TimestampKeyError,
)
from larder.offline import delta
from larder.offline.engine import DuckDBEngine, Engine, get_engine
from larder.offline.pit import PitSource
from larder.offline.storage import Location

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def native(engine: Engine, table: pa.Table):
    """``table`` in the engine's own frame type (what its callers hand it)."""
    if engine.name == "spark":
        return engine.to_spark(table)  # type: ignore[attr-defined]
    return table


def sorted_rows(table: pa.Table, by: str) -> list[dict]:
    return table.sort_by(by).to_pylist()


def at(path: Path) -> Location:
    return Location.parse(str(path))


def write(engine: Engine, path: Path, table: pa.Table, mode: str, keys: list[str], name: str = "t") -> int:
    with engine.ingesting(native(engine, table), table=name) as data:
        if mode == "create":
            engine.check_rows(data, table=name, primary_keys=keys, timestamp_keys=[])
            return engine.create(at(path), data, partition_by=[], name=name, description=None)
        snap = delta.load(at(path), name=name)
        engine.check_rows(data, table=name, primary_keys=keys, timestamp_keys=[])
        data, new_fields = engine.conform(data, snap.schema, table=name)
        if mode == "merge":
            return engine.merge(at(path), data, keys=keys, name=name, evolve=bool(new_fields), snapshot=snap)
        return engine.overwrite(at(path), data, name=name, partition_by=[])


# ------------------------------------------------------------------------------------ selection


def test_default_engine_is_duckdb_and_reads_tables(fe):
    assert isinstance(fe._ctx.engine, DuckDBEngine) and isinstance(fe._ctx.engine, Engine)
    fe.create_table("t", primary_keys="k", df=pd.DataFrame({"k": [1, 2], "x": [1.0, 2.0]}))
    snap = fe._tables.snapshot("t")
    assert fe._ctx.engine.read(snap, columns=["x"]).column("x").to_pylist() == [1.0, 2.0]


def test_unknown_engine_and_stray_spark_settings_are_config_errors(larder_root):
    larder_root.mkdir(parents=True)
    (larder_root / "larder.yaml").write_text("engine: flink\n")
    with pytest.raises(ConfigError, match="engine"):
        FeatureEngineeringClient(larder_root)
    (larder_root / "larder.yaml").write_text("spark_master: local[1]\n")
    with pytest.raises(ConfigError, match="engine: spark"):
        FeatureEngineeringClient(larder_root)
    with pytest.raises(ConfigError, match="duckdb"):
        get_engine("flink")


def test_spark_engine_selected_by_config_on_the_active_session(fe_spark, spark):
    eng = fe_spark._ctx.engine
    assert eng.name == "spark" and eng.session is spark and eng.delta_jars is False


def test_window_features_through_the_engine(engine):
    df = pd.DataFrame({"u": [1, 1, 1], "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
                       "v": [1.0, 2.0, 4.0]})
    out = engine.window_features(df, kind="lags", by="u", order_by="ts", columns="v", periods=1)
    assert out["v_lag_1"].tolist()[1:] == [1.0, 2.0] and pd.isna(out["v_lag_1"].iloc[0])
    with pytest.raises(ConfigError, match="rolling"):
        engine.window_features(df, kind="ewm")


def test_amazon_dynamodb_spec_refuses_credentials_and_unknown_options():
    from larder.online.stores.specs import AmazonDynamoDBSpec

    assert AmazonDynamoDBSpec(region="eu-west-1", read_secret_prefix="scope/x").region == "eu-west-1"
    with pytest.raises(ConfigError, match="default"):
        AmazonDynamoDBSpec(region="eu-west-1", access_key_id="AKIA")
    with pytest.raises(ConfigError, match="bogus"):
        AmazonDynamoDBSpec(region="eu-west-1", bogus=1)


# ------------------------------------------------------------------------------------ writes and reads


def base_table() -> pa.Table:
    return pa.table({
        "k": pa.array([1, 2, 3], pa.int64()),
        "s": ["a", "b", None],
        "x": pa.array([1.5, None, 3.5], pa.float64()),
        "ts": pa.array([T0, T0 + timedelta(microseconds=1), None], pa.timestamp("us", "UTC")),
    })


def test_create_merge_overwrite_read(engine, tmp_path):
    path = tmp_path / "t"
    assert write(engine, path, base_table(), "create", ["k"]) == 0
    snap = delta.load(at(path), name="t")
    assert sorted_rows(engine.read(snap), "k") == base_table().to_pylist()
    frame = engine.read_frame(snap)
    got = pa.Table.from_pandas(frame, preserve_index=False) if isinstance(frame, pd.DataFrame) else frame.toArrow()
    assert got.sort_by("k").column("x").to_pylist() == [1.5, None, 3.5]
    # merge: k=3 updated (s kept: absent from the write), k=4 inserted, int32 widened to int64
    upd = pa.table({"k": pa.array([3, 4], pa.int32()), "x": [30.0, 40.0]})
    assert write(engine, path, upd, "merge", ["k"]) == 1
    rows = sorted_rows(delta.load(at(path), name="t").to_arrow(), "k")
    assert [(r["k"], r["s"], r["x"]) for r in rows] == [(1, "a", 1.5), (2, "b", None), (3, None, 30.0),
                                                          (4, None, 40.0)]
    assert rows[0]["ts"] == T0 and rows[3]["ts"] is None
    # a merge adding a column
    assert write(engine, path, pa.table({"k": [1], "g": pa.array([7], pa.int16())}), "merge", ["k"]) == 2
    snap = delta.load(at(path), name="t")
    assert snap.schema.field("g").type == pa.int16()
    assert [r["g"] for r in sorted_rows(snap.to_arrow(), "k")] == [7, None, None, None]
    assert [r["x"] for r in sorted_rows(snap.to_arrow(), "k")] == [1.5, None, 30.0, 40.0]
    # overwrite keeps the schema and replaces the rows
    assert write(engine, path, pa.table({"k": [9], "x": [9.0]}), "overwrite", ["k"]) == 3
    snap = delta.load(at(path), name="t")
    assert snap.schema.names == ["k", "s", "x", "ts", "g"]
    assert snap.to_arrow().to_pylist() == [{"k": 9, "s": None, "x": 9.0, "ts": None, "g": None}]
    # time travel: version 1 is still readable, from its own files
    assert engine.read(delta.load(at(path), version=1, name="t")).num_rows == 4


@pytest.mark.parametrize(("table", "exc", "match"), [
    (pa.table({"k": pa.array([], pa.int64()), "x": pa.array([], pa.float64())}), EmptyDataFrameError, "no rows"),
    (pa.table({"k": [1, None], "x": [1.0, 2.0]}), PrimaryKeyError, "null 'k'"),
    (pa.table({"k": [1, 1], "x": [1.0, 2.0]}), PrimaryKeyError, "more than once"),
    (pa.table({"x": [1.0]}), PrimaryKeyError, "lacks"),
])
def test_rows_are_checked_alike(engine, table, exc, match):
    with engine.ingesting(native(engine, table), table="t") as data, pytest.raises(exc, match=match):
        engine.check_rows(data, table="t", primary_keys=["k"], timestamp_keys=[])


def test_timestamp_key_and_type_conflicts_are_refused_alike(engine):
    table = pa.table({"k": [1], "ts": ["2024-01-01"], "x": [1.0]})
    with engine.ingesting(native(engine, table), table="t") as data:
        with pytest.raises(TimestampKeyError, match="'ts'"):
            engine.check_rows(data, table="t", primary_keys=["k", "ts"], timestamp_keys=["ts"])
        with pytest.raises(SchemaMismatchError, match="'x' has type double"):
            engine.conform(data, pa.schema([("k", pa.int64()), ("x", pa.int64())]), table="t")
        _, new = engine.conform(data, pa.schema([("k", pa.int64())]), table="t")
        assert [f.name for f in new] == ["ts", "x"]


def test_profiles_are_equal_on_small_frames(engine):
    table = pa.table({"k": [1, 2, 3, 4], "x": [1.0, None, 3.0, 10.0], "c": ["a", "b", "a", None]})
    with engine.ingesting(native(engine, table), table="t") as data:
        prof = engine.profile(data, sample_rows=100)
    assert prof.row_count == 4 and not prof.sampled
    reference = DuckDBEngine().profile(table, sample_rows=100)
    assert [c.model_dump() for c in prof.columns] == [c.model_dump() for c in reference.columns]


# ------------------------------------------------------------------------------------ point-in-time oracle


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(
    spine_rows=sized_lists(st.tuples(key0, key1, secs, st.integers(0, 1)), 24),
    spine_unit=st.sampled_from(UNITS),
    spine_tz=st.sampled_from([None, "UTC"]),
    cases=st.integers(1, 2).flatmap(lambda n: st.tuples(*[source_case(i) for i in range(n)])),
    spark_frames=st.booleans(),
)
def test_point_in_time_join_matches_the_oracle(engine, spine_rows, spine_unit, spine_tz, cases, spark_frames):
    spine = pa.table({
        "id": pa.array([r[0] for r in spine_rows], pa.int64()),
        "name": pa.array([r[1] for r in spine_rows], pa.string()),
        "at": _ts_array([r[2] for r in spine_rows], spine_unit, spine_tz),
        "label": pa.array([r[3] for r in spine_rows], pa.int64()),
    })
    sources, oracle_sources = [], []
    for c in cases:
        i = c["index"]
        data = pa.table({
            "eid": pa.array([r[0] for r in c["rows"]], c["key_type"]),
            "ename": pa.array([r[1] for r in c["rows"]], pa.string()),
            "ts": _ts_array([r[2] for r in c["rows"]], c["unit"], c["tz"]),
            "written": pa.array([r[3] for r in c["rows"]], pa.int64()),
            "value": pa.array([r[4] for r in c["rows"]], pa.float64()),
        })
        given_data = pads.dataset(data) if c["form"] == "dataset" else data
        src = PitSource(
            data=given_data, keys=["eid", "ename"] if c["composite"] else ["eid"],
            lookup_keys=["id", "name"] if c["composite"] else ["id"], features=["value", "ts"],
            output_names=[f"value_{i}", f"ts_{i}"], timestamp_key="ts" if c["time_series"] else None,
            timestamp_lookup_key="at" if c["time_series"] else None,
            lookback_window=c["lookback"] if c["time_series"] else None, tiebreak="written" if c["tiebreak"] else None,
        )
        sources.append(src)
        oracle_sources.append((data.to_pylist(), src))
    expected = oracle(spine.to_pylist(), oracle_sources)
    got = engine.point_in_time_join(spine, sources)
    assert got.num_rows == spine.num_rows and got.column_names[:4] == spine.column_names
    for name in spine.column_names:
        assert got.column(name).equals(spine.column(name))
    for i, src in enumerate(sources):
        assert got.schema.field(f"ts_{i}").type == src.data.schema.field("ts").type
    assert got.to_pylist() == expected
    if engine.name == "spark" and spark_frames and spine.num_rows:
        # Spark frames in, a Spark frame out: the same rows, in the spine's order
        from larder.offline.spark.pit import point_in_time_join as spark_join

        spark_spine = engine.to_spark(spine)
        spark_sources = [PitSource(**{**src.__dict__, "data": engine.to_spark(pa.table(src.data)
                                     if not isinstance(src.data, pads.Dataset) else src.data.to_table())})
                         for src in sources]
        out = spark_join(engine.session, spark_spine, spark_sources, skew_rows=3).toArrow()
        for i in range(len(sources)):
            assert out.column(f"value_{i}").to_pylist() == got.column(f"value_{i}").to_pylist()
        assert out.column("label").to_pylist() == spine.column("label").to_pylist()
