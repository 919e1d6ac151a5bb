"""materialize_features offline: the Delta feature tables hold compute_features' rows; later runs read
only the new Delta files (plus their windows' lookback) and keep the tables equal to compute_features
after appends, late rows and rewrites; run history as rows; kill -9 between the commit and the
catalog is redone cleanly; bad input writes nothing; deleting a materialization leaves nothing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import larder.entities as entities
from larder import (
    AggregationFunction,
    Avg,
    ColumnSelection,
    Count,
    CronSchedule,
    DataFrameSource,
    DeltaTableSource,
    FeatureEngineeringClient,
    LastN,
    MaterializedFeature,
    Max,
    OfflineStoreConfig,
    OnlineStoreConfig,
    RollingWindow,
    SlidingWindow,
    Sum,
    TableTrigger,
    TumblingWindow,
)
from larder.declarative.schedule import run_due
from larder.errors import FeatureDefinitionError, MaterializationError, MaterializationNotFoundError

D = dt.timedelta
T0 = pd.Timestamp("2024-03-01", tz="UTC")
SRC = DeltaTableSource(catalog_name="main", schema_name="default", table_name="events")
OFF = OfflineStoreConfig(catalog_name="main", schema_name="default", table_name_prefix="mat")


def _events(first: int, n: int, start: pd.Timestamp, days: float, seed: int, users: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    minutes = np.sort(rng.integers(0, int(days * 24 * 60), n))
    return pd.DataFrame({
        "event_id": np.arange(first, first + n), "user_id": rng.integers(0, users, n),
        "ts": [start + pd.Timedelta(minutes=int(m)) for m in minutes],
        "x": rng.normal(size=n).round(3), "item": rng.choice(["a", "b", "c"], n),
    }).astype({"ts": "datetime64[us, UTC]"})


def _feature(fe, op, window, name):  # type: ignore[no-untyped-def]
    return fe.create_feature(source=SRC, function=AggregationFunction(op, window), catalog_name="main",
                             schema_name="default", entity=["user_id"], timeseries_column="ts", name=name)


def _world(fe: FeatureEngineeringClient) -> list:
    fe.create_table("events", "event_id", df=_events(0, 1500, T0, 20, seed=1))
    return [
        _feature(fe, Sum("x"), RollingWindow(window_duration=D(days=1)), "sum_1d"),
        _feature(fe, Avg("x"), RollingWindow(window_duration=D(hours=12), delay=D(hours=2)), "avg_12h"),
        _feature(fe, Count("item"), TumblingWindow(window_duration=D(hours=6), offset=D(hours=1)), "count_6h"),
        _feature(fe, Max("x"), SlidingWindow(window_duration=D(days=2), slide_duration=D(hours=8)), "max_2d"),
        _feature(fe, LastN("item", 2), RollingWindow(window_duration=D(days=3)), "last2_3d"),
    ]


def _assert_tables_equal_compute_features(fe: FeatureEngineeringClient, features: list) -> None:
    for f in features:
        table = fe.read_table(f"main.default.mat_{f.name}").sort_values(["user_id", "ts"]).reset_index(drop=True)
        want = fe.compute_features(features=[f]).sort_values(["user_id", "ts"]).reset_index(drop=True)
        assert list(table.columns) == ["user_id", "ts", f.name]
        assert len(table) == len(want), f.name
        assert table["user_id"].tolist() == want["user_id"].tolist() and (table["ts"] == want["ts"]).all()
        assert repr(table[f.name].tolist()) == repr(want[f.name].tolist()), f.name


def _runs(fe: FeatureEngineeringClient, m: MaterializedFeature) -> list[dict]:
    return fe._materialization.runs(m)


def test_entities_are_importable_from_larder_and_larder_entities() -> None:
    for name in ["BackfillRange", "BackfillState", "BackfillStatus", "CronSchedule", "CronScheduleMode",
                 "MaterializedFeature", "MaterializedFeaturePipelineScheduleState", "OfflineStoreConfig",
                 "OnlineStoreConfig", "TableTrigger"]:
        assert getattr(entities, name) is getattr(__import__("larder"), name), name


def test_offline_tables_equal_compute_features_through_appends_late_rows_and_rewrites(tmp_path):
    with FeatureEngineeringClient(root=tmp_path) as fe:
        features = _world(fe)
        mfs = fe.materialize_features(features=features, offline_config=OFF, trigger=TableTrigger())
        assert [m.feature_name for m in mfs] == [f.full_name for f in features]
        assert {m.table_name for m in mfs} == {f"main.default.mat_{f.name}" for f in features}
        assert all(m.is_online is False and m.source_table == "main.default.events" and m.source_version == 0
                   for m in mfs)
        assert fe.list_materialized_features(feature_name=features[0].full_name)[0] == mfs[0]
        table = fe.get_table(mfs[0].table_name)  # a feature table like any other: keyed by user_id, ts
        assert table.primary_keys == ["user_id"] and table.timeseries_column == "ts"
        _assert_tables_equal_compute_features(fe, features)
        now = dt.datetime.now(dt.UTC)

        # nothing new: not due, and a run anyway changes nothing
        assert run_due(fe, now=now + D(hours=2)) == []

        # 1% more events, after all others: only the new file and the windows' lookback are read
        fe.write_table("events", _events(5000, 15, T0 + pd.Timedelta(days=20), 0.5, seed=2))
        results = run_due(fe, now=now + D(hours=4))
        assert {(r.kind, r.state, r.from_version, r.to_version) for r in results} == {("incremental", "SUCCEEDED", 0, 1)}
        assert all(r.rows_read < 500 for r in results), [r.rows_read for r in results]  # of 1515 rows
        _assert_tables_equal_compute_features(fe, features)

        # late rows, inside the history: every row from the earliest new time on is recomputed
        late = _events(6000, 30, T0 + pd.Timedelta(days=9), 1, seed=3)
        fe.write_table("events", late)
        results = run_due(fe, now=now + D(hours=6))
        assert {r.kind for r in results} == {"incremental"}
        _assert_tables_equal_compute_features(fe, features)

        # a merge that rewrites rows (files removed): the next run recomputes everything
        changed = fe.read_table("events").head(40).assign(x=7.5)
        fe.write_table("events", changed)
        results = run_due(fe, now=now + D(hours=8))
        assert {r.kind for r in results} == {"full"}
        _assert_tables_equal_compute_features(fe, features)

        runs = _runs(fe, mfs[0])  # newest first, one row per run
        assert [(r["kind"], r["reason"], r["state"]) for r in runs] == [
            ("full", "table", "SUCCEEDED"), ("incremental", "table", "SUCCEEDED"),
            ("incremental", "table", "SUCCEEDED"), ("full", "create", "SUCCEEDED")]
        assert [(r["from_version"], r["to_version"]) for r in runs] == [(2, 3), (1, 2), (0, 1), (None, 0)]
        assert runs[1]["range_start"] == late["ts"].min()  # the late rows' earliest time
        latest = fe.list_materialized_features(feature_name=features[0].full_name)[0]
        assert latest.source_version == 3 and pd.Timestamp(latest.last_materialization_time) == pd.Timestamp(
            now + D(hours=8))


def test_lifetime_windows_and_column_selection_read_their_history(tmp_path):
    with FeatureEngineeringClient(root=tmp_path) as fe:
        fe.create_table("events", "event_id", df=_events(0, 300, T0, 5, seed=4))
        feats = [_feature(fe, Sum("x"), RollingWindow(window_duration=None), "sum_life"),
                 fe.create_feature(source=SRC, function=ColumnSelection("item"), catalog_name="main",
                                   schema_name="default", entity=["user_id"], timeseries_column="ts",
                                   name="item_last")]
        fe.materialize_features(features=feats, offline_config=OFF, trigger=TableTrigger())
        fe.write_table("events", _events(1000, 10, T0 + pd.Timedelta(days=5), 1, seed=5))
        results = run_due(fe, now=dt.datetime.now(dt.UTC) + D(hours=1))
        assert {r.kind for r in results} == {"incremental"} and all(r.rows_read >= 300 for r in results)
        _assert_tables_equal_compute_features(fe, feats)


def test_a_run_killed_after_its_commit_is_redone_cleanly(tmp_path, crasher):
    root = tmp_path / "root"
    with FeatureEngineeringClient(root=root) as fe:
        features = _world(fe)[:2]
        mfs = fe.materialize_features(features=features, offline_config=OFF, trigger=TableTrigger())
        fe.write_table("events", _events(5000, 40, T0 + pd.Timedelta(days=19), 2, seed=6))
    later = dt.datetime.now(dt.UTC) + D(hours=2)
    out = crasher(op="materialize_due", root=str(root), now=later.isoformat(), failpoint="materialize:after_commit")
    assert out == {"signal": 9}
    with FeatureEngineeringClient(root=root) as fe:
        # the tables were committed, the catalog never heard of it: the run is RUNNING, version 0 consumed
        assert _runs(fe, mfs[0])[0]["state"] == "RUNNING"
        assert fe.list_materialized_features(feature_name=features[0].full_name)[0].source_version == 0
        results = run_due(fe, now=later + D(hours=1))
        assert {(r.kind, r.state, r.from_version, r.to_version) for r in results} == {("incremental", "SUCCEEDED", 0, 1)}
        runs = _runs(fe, mfs[0])
        assert runs[0]["state"] == "SUCCEEDED" and runs[1]["state"] == "FAILED"
        assert "interrupted" in runs[1]["error"]
        _assert_tables_equal_compute_features(fe, features)


def _state(fe: FeatureEngineeringClient, root) -> tuple:  # type: ignore[no-untyped-def]
    tables = sorted(t.name for t in fe.list_tables())
    files = sorted(p.name for p in (root / "tables").rglob("*") if p.is_dir()) if (root / "tables").exists() else []
    with fe._ctx.catalog.session() as s:
        from larder.catalog.materialization import MaterializationRecord, MaterializationRunRecord

        recs = s.query(MaterializationRecord).count() + s.query(MaterializationRunRecord).count()
    return tables, files, recs


def test_bad_input_names_the_feature_and_the_fix_and_writes_nothing(tmp_path):
    with FeatureEngineeringClient(root=tmp_path) as fe:
        features = _world(fe)
        fe.materialize_features(features=features[:1], offline_config=OFF)
        before = _state(fe, tmp_path)
        df_feature = fe.create_feature(source=DataFrameSource(dataframe=_events(0, 5, T0, 1, seed=0)),
                                       function=AggregationFunction(Sum("x"), RollingWindow(window_duration=D(days=1))),
                                       catalog_name="main", schema_name="default", entity=["user_id"],
                                       timeseries_column="ts", name="df_sum")
        cases = [
            (dict(features=[], offline_config=OFF), "non-empty list"),
            (dict(features=features[1:2]), "offline_config=OfflineStoreConfig"),
            (dict(features=[df_feature], offline_config=OFF), "DataFrameSource"),
            (dict(features=features[1:2], offline_config=OFF, trigger="hourly"), "Unsupported trigger type"),
            (dict(features=features[1:2], offline_config={"catalog_name": "main"}), "must be an OfflineStoreConfig"),
            (dict(features=features[1:2], online_config=OnlineStoreConfig("main", "default", "on", "nope")),
             "No online store named 'nope'"),
            (dict(features=features[:2], offline_config=OFF), "already materialized offline"),
            (dict(features=[features[1], features[1]], offline_config=OFF), "listed twice"),
            (dict(features=features[1:2], offline_config=OfflineStoreConfig("main", "default", "bad-prefix")),
             "not valid"),
        ]
        for kwargs, text in cases:
            with pytest.raises(MaterializationError, match=text) as info:
                fe.materialize_features(**kwargs)
            assert isinstance(info.value, ValueError)
            assert _state(fe, tmp_path) == before, text
        # a table in the way
        fe.create_table("mat_avg_12h", "event_id", df=_events(0, 3, T0, 1, seed=0))
        before = _state(fe, tmp_path)
        with pytest.raises(MaterializationError, match="'main.default.mat_avg_12h' already exists"):
            fe.materialize_features(features=features[1:3], offline_config=OFF)
        assert _state(fe, tmp_path) == before
        # a run that fails (the source lost a column the feature reads) keeps nothing
        with pytest.raises(MaterializationError, match="CronSchedule in MANUAL mode|non-empty quartz"):
            CronSchedule(quartz_cron_expression="  ")
        with pytest.raises(MaterializationError, match="day-of-week field"):
            CronSchedule(quartz_cron_expression="0 0 6 ? * MON#2")


def _sqlite_tables(path) -> list[str]:  # type: ignore[no-untyped-def]
    import sqlite3

    with sqlite3.connect(path) as con:
        return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if not r[0].startswith(("sqlite_", "_larder"))]


def test_deleting_a_materialization_leaves_nothing_behind(tmp_path):
    with FeatureEngineeringClient(root=tmp_path) as fe:
        features = _world(fe)[:2]
        fe.create_online_store(name="serving", capacity="CU_1")
        mfs = fe.materialize_features(features=features, offline_config=OFF,
                                      online_config=OnlineStoreConfig("main", "default", "serve", "serving"))
        assert len(mfs) == 4
        with pytest.raises(FeatureDefinitionError, match="is materialized.*delete_materialized_feature"):
            fe.delete_feature(full_name=features[0].full_name)
        online = [m for m in mfs if m.is_online]
        pubs = {p.table_name for p in fe.list_publications()}
        assert pubs == {f.full_name for f in features}
        # deleting one feature's online materialization keeps the shared online table for the other
        fe.delete_materialized_feature(materialized_feature=online[0])
        assert {p.table_name for p in fe.list_publications()} == {features[1].full_name}
        db = tmp_path / "online_stores" / "serving.db"
        assert len(_sqlite_tables(db)) == 2  # the group's online tables: its timelines and its heads
        fe.delete_materialized_feature(materialized_feature=online[1])
        assert fe.list_publications() == []
        assert _sqlite_tables(db) == []  # the online tables themselves are gone
        for m in [m for m in mfs if not m.is_online]:
            fe.delete_materialized_feature(materialized_feature=m)
        assert fe.list_tables() == [t for t in fe.list_tables() if t.name == "main.default.events"]
        with fe._ctx.catalog.session() as s:
            from larder.catalog.materialization import MaterializationRecord, MaterializationRunRecord

            assert s.query(MaterializationRecord).count() == 0 and s.query(MaterializationRunRecord).count() == 0
        assert fe.list_materialized_features(feature_name=features[0].full_name) == []
        with pytest.raises(MaterializationNotFoundError, match="it was deleted"):
            fe.delete_materialized_feature(materialized_feature=mfs[0])
        with pytest.raises(MaterializationError, match="Expected a MaterializedFeature"):
            fe.delete_materialized_feature(materialized_feature=mfs[0].materialized_feature_id)
        fe.delete_feature(full_name=features[0].full_name)  # allowed now
