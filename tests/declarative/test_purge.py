"""purge_feature_entities: the entities' materialized values go, offline (one Delta commit per feature
table, recorded in the catalog) and online (SQLite, Redis, DynamoDB on moto), by full or partial key,
nulls matching nulls; every other entity keeps exactly its values; a retry with the request_id returns
the original operation; bad requests name the problem and delete nothing."""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from declarative._stores import store_spec
from larder import (
    AggregationFunction,
    Count,
    DeltaTableSource,
    FeatureEngineeringClient,
    OfflineStoreConfig,
    OnlineStoreConfig,
    RollingWindow,
    Sum,
)
from larder.declarative.purge import PurgeFeatureEntitiesOperation, PurgeFeatureEntitiesState
from larder.errors import FeatureDefinitionError, MaterializationError, OperationFailedError
from larder.online.stores.specs import SQLiteStoreSpec

D = dt.timedelta
T0 = pd.Timestamp("2024-03-01", tz="UTC")
SRC = DeltaTableSource(catalog_name="main", schema_name="default", table_name="events")
OFF = OfflineStoreConfig(catalog_name="main", schema_name="default", table_name_prefix="mat")


def _events(n: int = 600, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = np.where(rng.random(n) < 0.1, None, rng.choice(["eu", "us"], n))
    return pd.DataFrame({
        "event_id": np.arange(n), "user_id": rng.integers(0, 8, n), "region": pd.array(region, dtype="string"),
        "ts": [T0 + pd.Timedelta(minutes=int(m)) for m in np.sort(rng.integers(0, 5 * 24 * 60, n))],
        "x": rng.normal(size=n).round(3),
    }).astype({"ts": "datetime64[us, UTC]"})



def _world(fe: FeatureEngineeringClient, spec=None) -> list:  # type: ignore[no-untyped-def]
    fe.create_table("events", "event_id", df=_events())
    entity = ["user_id", "region"]
    features = [
        fe.create_feature(source=SRC, function=AggregationFunction(Sum("x"), RollingWindow(window_duration=D(days=1))),
                          catalog_name="main", schema_name="default", entity=entity, timeseries_column="ts",
                          name="sum_1d"),
        fe.create_feature(source=SRC, function=AggregationFunction(Count("x"), RollingWindow(window_duration=D(days=2))),
                          catalog_name="main", schema_name="default", entity=entity, timeseries_column="ts",
                          name="count_2d"),
    ]
    if spec is not None:
        fe.create_online_store(name="serving", capacity="CU_1", spec=spec)
    fe.materialize_features(features=features, offline_config=OFF,
                            online_config=OnlineStoreConfig("main", "default", "serve", "serving") if spec else None)
    return features


def _entities(fe: FeatureEngineeringClient, name: str, df: pd.DataFrame) -> str:
    fe.create_table(name, list(df.columns), df=df)
    return f"main.default.{name}"


def _offline(fe: FeatureEngineeringClient, feature) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    return fe.read_table(name=f"main.default.mat_{feature.name}")


def _online_found(fe: FeatureEngineeringClient, features: list, keys: pd.DataFrame) -> dict[tuple, bool]:
    """Whether the online table of the features holds a row for each key (read through the store)."""
    from sqlalchemy import select

    from larder.catalog.online import PublicationRecord
    from larder.online.publish import resolve_store
    from larder.online.stores.base import online_table_from_info

    with fe._ctx.catalog.session() as s:
        pubs = list(s.scalars(select(PublicationRecord).where(
            PublicationRecord.table_name.in_([f.full_name for f in features]), PublicationRecord.dropped_at.is_(None))))
        tables = {p.online_table_name: online_table_from_info(p.online_table) for p in pubs}
    assert len(tables) == 1, tables
    table = next(iter(tables.values()))
    store = fe._online_stores.get(resolve_store(fe._ctx, "serving")[1])
    _, found = store.read_batch(table, pa.Table.from_pandas(keys, preserve_index=False))
    return {tuple(row): bool(f) for row, f in zip(keys.itertuples(index=False), found, strict=True)}


def _gone(df: pd.DataFrame, users: set[int], region: str | None = None) -> pd.Series:
    hit = df["user_id"].isin(users)
    if region is not None:
        hit &= df["region"] == region
    return hit.fillna(False).astype(bool)


@pytest.mark.parametrize("kind", ["sqlite", "redis", "dynamodb"])
def test_purge_by_partial_key_removes_offline_rows_and_online_keys(kind, request, tmp_path):
    with FeatureEngineeringClient(root=tmp_path) as fe:
        features = _world(fe, store_spec(kind, request))
        before = {f.name: _offline(fe, f) for f in features}
        pairs = pd.DataFrame([(u, r) for u in range(8) for r in ("eu", "us")], columns=["user_id", "region"])
        assert all(_online_found(fe, features, pairs).values())
        versions = {f.name: fe._tables.snapshot(f"main.default.mat_{f.name}").version for f in features}
        table = _entities(fe, "forget", pd.DataFrame({"user_id": [2, 5]}))
        op = fe.purge_feature_entities([f.full_name for f in features], table)
        assert isinstance(op, PurgeFeatureEntitiesOperation) and op.done() and op.name().startswith("operations/")
        response = op.wait()
        assert response.state is PurgeFeatureEntitiesState.SUCCEEDED
        assert response.metadata.entities_table == table and response.metadata.entities_table_version == 0
        for f, result in zip(features, response.results, strict=True):
            assert result.feature == f.full_name and result.error is None
            assert result.offline_state is result.online_state is PurgeFeatureEntitiesState.SUCCEEDED
            gone = _gone(before[f.name], {2, 5})
            assert result.offline_rows_deleted == int(gone.sum()) > 0
            after = _offline(fe, f)
            key = ["user_id", "region", "ts"]
            expected = before[f.name][~gone].sort_values(key).reset_index(drop=True)
            pd.testing.assert_frame_equal(after.sort_values(key).reset_index(drop=True), expected)
            # one commit, recorded in the catalog
            snap = fe._tables.snapshot(f"main.default.mat_{f.name}")
            assert snap.version == versions[f.name] + 1
            assert fe._tables.history(f"main.default.mat_{f.name}")["version"].max() == snap.version
        # online: every (user, region) of users 2 and 5 is gone (both regions: the partial key matched
        # each), the others are untouched
        found = _online_found(fe, features, pairs)
        assert {k for k, v in found.items() if not v} == {(u, r) for u in (2, 5) for r in ("eu", "us")}


def test_purge_by_full_key_with_nulls_and_idempotent_retry(tmp_path):
    with FeatureEngineeringClient(root=tmp_path) as fe:
        features = _world(fe, SQLiteStoreSpec())
        before = _offline(fe, features[0])
        # (1, 'eu') and (3, null): a null matches only a null, and materialized keys never hold one
        ents = pa.table({"user_id": pa.array([1, 3], pa.int64()), "region": pa.array(["eu", None], pa.string())})
        fe.create_table("forget", ["user_id"], df=ents.to_pandas())
        rid = str(uuid.uuid4())
        op = fe.purge_feature_entities(features, "main.default.forget", request_id=rid, tags={"ticket": "GDPR-7"},
                                       budget_policy_id="b1")
        after = _offline(fe, features[0])
        gone = _gone(before, {1}, "eu")
        assert gone.sum() > 0 and len(after) == len(before) - int(gone.sum())
        assert ((after["user_id"] == 3) & after["region"].eq("us")).any()  # (3, 'us') is kept
        found = _online_found(fe, features, pd.DataFrame({"user_id": [1, 1, 3], "region": ["eu", "us", "us"]}))
        assert list(found.values()) == [False, True, True]
        assert op.metadata().tags == {"ticket": "GDPR-7"} and op.metadata().budget_policy_id == "b1"
        # the same request_id returns the original operation, deleting nothing more
        version = fe._tables.snapshot("main.default.mat_sum_1d").version
        again = fe.purge_feature_entities(features, "main.default.forget", request_id=rid)
        assert again.name() == op.name() and fe._tables.snapshot("main.default.mat_sum_1d").version == version
        # ... and refuses another request under it
        with pytest.raises(MaterializationError, match="request_id .* was used by"):
            fe.purge_feature_entities(features[:1], "main.default.forget", request_id=rid)
        # a purge matching nothing succeeds and commits nothing
        fe.create_table("nobody", ["user_id"], df=pd.DataFrame({"user_id": [99]}))
        none = fe.purge_feature_entities(features, "main.default.nobody").wait()
        assert [r.offline_rows_deleted for r in none.results] == [0, 0]
        assert fe._tables.snapshot("main.default.mat_sum_1d").version == version


def test_a_killed_purge_is_finished_by_its_retry_without_deleting_twice(tmp_path):
    with FeatureEngineeringClient(root=tmp_path) as fe:
        features = _world(fe)
        fe.create_table("forget", ["user_id"], df=pd.DataFrame({"user_id": [4]}))
        rid = str(uuid.uuid4())
        op = fe.purge_feature_entities(features, "main.default.forget", request_id=rid)
        from larder.catalog.materialization import OperationRecord

        with fe._ctx.catalog.session() as s:  # as a process killed after its deletes leaves it
            s.get(OperationRecord, op.name()).state = "RUNNING"
        with pytest.raises(OperationFailedError, match="is RUNNING .* same request_id"):
            op.wait()
        versions = [fe._tables.snapshot(f"main.default.mat_{f.name}").version for f in features]
        again = fe.purge_feature_entities(features, "main.default.forget", request_id=rid)
        assert again.name() == op.name() and again.wait().state is PurgeFeatureEntitiesState.SUCCEEDED
        assert [fe._tables.snapshot(f"main.default.mat_{f.name}").version for f in features] == versions


def test_bad_requests_name_the_problem_and_delete_nothing(tmp_path):
    with FeatureEngineeringClient(root=tmp_path) as fe:
        features = _world(fe, SQLiteStoreSpec())
        fe.create_table("forget", ["user_id"], df=pd.DataFrame({"user_id": [1]}))
        fe.create_table("wide", ["user_id"], df=pd.DataFrame({"user_id": [1], "email": ["a@b"]}))
        unmat = fe.create_feature(source=SRC, function=AggregationFunction(Sum("x"), RollingWindow(window_duration=D(days=3))),
                                  catalog_name="main", schema_name="default", entity=["user_id", "region"],
                                  timeseries_column="ts", name="sum_3d")
        by_user = fe.create_feature(source=SRC, function=AggregationFunction(Sum("x"), RollingWindow(window_duration=D(days=4))),
                                    catalog_name="main", schema_name="default", entity=["user_id"],
                                    timeseries_column="ts", name="by_user")
        fe.materialize_features(features=[by_user], offline_config=OFF)
        fe.create_table("pairs", ["user_id", "region"], df=pd.DataFrame({"user_id": [1], "region": ["eu"]}))
        state = [fe._tables.snapshot(f"main.default.mat_{f.name}").version for f in features]
        cases = [
            (dict(features=[], entities_table="main.default.forget"), "non-empty list"),
            (dict(features=features, entities_table=" "), "'entities_table' must be a non-empty"),
            (dict(features=[features[0], features[0].full_name], entities_table="main.default.forget"),
             "more than once"),
            (dict(features=[42], entities_table="main.default.forget"), "must be a Feature or a full name"),
            (dict(features=[unmat], entities_table="main.default.forget"), "no materialization to purge"),
            (dict(features=["main.default.nope"], entities_table="main.default.forget"), "nope"),
            (dict(features=features, entities_table="main.default.missing"), "missing"),
            (dict(features=features, entities_table="main.default.wide"), r"\['email'\] that are not entity keys"),
            (dict(features=[*features, by_user], entities_table="main.default.pairs"),
             r"\['region'\] that are not entity keys of feature 'main.default.by_user'"),
            # an online table shared with a feature left alone
            (dict(features=features[:1], entities_table="main.default.forget"), "also holds features"),
            (dict(features=features, entities_table="main.default.forget", tags={"k": 1}), "'tags' must map"),
        ]
        for kwargs, message in cases:
            with pytest.raises((MaterializationError, FeatureDefinitionError, Exception), match=message) as info:
                fe.purge_feature_entities(**kwargs)
            assert isinstance(info.value, ValueError) or "missing" in message or "nope" in message, info.value
        assert [fe._tables.snapshot(f"main.default.mat_{f.name}").version for f in features] == state
        from larder.catalog.materialization import OperationRecord

        with fe._ctx.catalog.session() as s:
            assert s.query(OperationRecord).filter(OperationRecord.kind == "purge").count() == 0
