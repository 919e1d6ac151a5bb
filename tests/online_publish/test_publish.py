"""publish_table against real stores: round trip, latest per key, ordering, modes, filters, records."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow.dataset as ds
import pytest

from larder.errors import (
    ConfigError,
    OnlineTableNotFoundError,
    PublishError,
    StalePublishError,
    TableNotFoundError,
)
from larder.online.publish import snapshot_order
from larder.online.stores.specs import RedisStoreSpec, SQLiteStoreSpec, redacted_spec
from larder.training import FeatureLookup

pytestmark = pytest.mark.deployments("local", "team")

UTC = dt.UTC


def houses(ids=(1, 2, 3), q=(7, 5, 8), area=(1500.5, None, 980.0), nb=("NAmes", "OldTown", None)) -> pd.DataFrame:
    return pd.DataFrame({"Id": list(ids), "q": list(q), "area": list(area), "nb": list(nb)})


def events() -> pd.DataFrame:
    ts = pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01", "2024-01-05", "2024-01-06"], utc=True)
    return pd.DataFrame({"uid": [1, 1, 1, 2, 2], "ts": ts, "x": [1.0, 3.0, 2.0, 10.0, 20.0],
                         "tag": ["a", "c", "b", "p", "q"]})


def online(fe, table: str, keys: pd.DataFrame, features=None, **lookup) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    lk = FeatureLookup(table, list(keys.columns), feature_names=features, **lookup)
    return fe.get_online_features([lk], keys, include_found=True)


def test_round_trip(fe, store_spec) -> None:
    fe.create_table("houses", "Id", df=houses())
    pub = fe.publish_table("houses", store_spec)
    assert (pub.table_name, pub.store_type, pub.delta_version, pub.rows, pub.mode) == (
        "main.default.houses", store_spec.type, 0, 3, "merge")
    assert pub.features == ["q", "area", "nb"] and pub.active
    physical = {"sqlite": "main.default.houses", "redis": "main.default.houses",
                "dynamodb": f"{getattr(store_spec, 'table_prefix', '')}main__default__houses"}
    assert pub.online_table_name == physical[store_spec.type]
    got = online(fe, "houses", pd.DataFrame({"Id": [3, 1, 42, 2]}))
    assert got["Id"].tolist() == [3, 1, 42, 2]
    assert got["_found_houses"].tolist() == [True, True, False, True]
    assert got["q"].tolist()[:2] == [8, 7] and pd.isna(got["q"].iloc[2]) and got["q"].iloc[3] == 5
    assert got["area"].iloc[1] == 1500.5 and pd.isna(got["area"].iloc[3])
    assert got["nb"].iloc[0] is None or pd.isna(got["nb"].iloc[0])
    assert got["nb"].iloc[1] == "NAmes"


def test_time_series_latest_per_entity(fe, store_spec) -> None:
    fe.create_table("ev", ["uid"], timestamp_keys="ts", df=events())
    pub = fe.publish_table("ev", store_spec)
    assert pub.rows == 2 and pub.online_table.timestamp_key == "ts"
    got = online(fe, "ev", pd.DataFrame({"uid": [2, 1]}), timestamp_lookup_key="at")
    assert got["x"].tolist() == [20.0, 3.0] and got["tag"].tolist() == ["q", "c"]


def test_merge_never_regresses_snapshot_table(fe, store_spec) -> None:
    fe.create_table("houses", "Id", df=houses())
    fe.publish_table("houses", store_spec)
    v1 = fe.write_table("houses", houses(q=(17, 15, 18)))
    fe.publish_table("houses", store_spec)
    with pytest.raises(StalePublishError, match="version 0 was not published"):
        fe.publish_table("houses", store_spec, version=0)  # an older Delta version, published later
    assert v1 == 1
    got = online(fe, "houses", pd.DataFrame({"Id": [1, 2, 3]}))
    assert got["q"].tolist() == [17, 15, 18]


def test_merge_never_regresses_time_series(fe, store_spec) -> None:
    fe.create_table("ev", ["uid"], timestamp_keys="ts", df=events())
    fe.publish_table("ev", store_spec)
    # the offline table now only holds older rows (with other values): republishing changes nothing
    older = pd.DataFrame({"uid": [1, 2], "ts": pd.to_datetime(["2023-06-01", "2023-06-01"], utc=True),
                          "x": [-1.0, -2.0], "tag": ["old", "old"]})
    fe.write_table("ev", older, mode="overwrite")
    fe.publish_table("ev", store_spec)
    got = online(fe, "ev", pd.DataFrame({"uid": [1, 2]}), timestamp_lookup_key="at")
    assert got["x"].tolist() == [3.0, 20.0]
    # a newer row for uid 2 does replace it
    fe.write_table("ev", pd.DataFrame({"uid": [2], "ts": pd.to_datetime(["2024-06-01"], utc=True),
                                       "x": [99.0], "tag": ["new"]}))
    fe.publish_table("ev", store_spec)
    got = online(fe, "ev", pd.DataFrame({"uid": [1, 2]}), timestamp_lookup_key="at")
    assert got["x"].tolist() == [3.0, 99.0]


def test_overwrite_removes_keys(fe, store_spec) -> None:
    fe.create_table("houses", "Id", df=houses())
    fe.publish_table("houses", store_spec)
    fe.write_table("houses", houses(ids=(1, 2), q=(70, 50), area=(1.0, 2.0), nb=("a", "b")), mode="overwrite")
    fe.publish_table("houses", store_spec)  # merge keeps key 3
    assert online(fe, "houses", pd.DataFrame({"Id": [3]}))["_found_houses"].tolist() == [True]
    pub = fe.publish_table("houses", store_spec, mode="overwrite")
    assert pub.mode == "overwrite" and pub.rows == 2
    got = online(fe, "houses", pd.DataFrame({"Id": [1, 2, 3]}))
    assert got["_found_houses"].tolist() == [True, True, False]
    assert got["q"].tolist()[:2] == [70, 50]


def test_filter_condition_sql_and_expression(fe, store_spec) -> None:
    fe.create_table("houses", "Id", df=houses())
    pub = fe.publish_table("houses", store_spec, filter_condition="q >= 7 AND nb IS NOT NULL")
    assert pub.rows == 1 and pub.filter_condition == "q >= 7 AND nb IS NOT NULL"
    assert online(fe, "houses", pd.DataFrame({"Id": [1, 2, 3]}))["_found_houses"].tolist() == [True, False, False]
    fe.publish_table("houses", store_spec, filter_condition=ds.field("q") < 7)
    assert online(fe, "houses", pd.DataFrame({"Id": [1, 2, 3]}))["_found_houses"].tolist() == [True, True, False]


def test_filter_applies_before_latest_row(fe) -> None:
    fe.create_table("ev", ["uid"], timestamp_keys="ts", df=events())
    pub = fe.publish_table("ev", filter_condition="ts < TIMESTAMPTZ '2024-02-15 00:00:00+00'")
    assert pub.rows == 2
    got = online(fe, "ev", pd.DataFrame({"uid": [1, 2]}), timestamp_lookup_key="at")
    assert got["x"].tolist() == [2.0, 20.0]


def test_features_subset(fe, store_spec) -> None:
    fe.create_table("houses", "Id", df=houses())
    pub = fe.publish_table("houses", store_spec, features=["q"])
    assert pub.features == ["q"] and pub.online_table.schema.names == ["Id", "q"]
    assert online(fe, "houses", pd.DataFrame({"Id": [1]}), features=["q"])["q"].tolist() == [7]
    with pytest.raises(Exception, match=r"lacks feature\(s\) \['area'\]"):
        online(fe, "houses", pd.DataFrame({"Id": [1]}), features=["q", "area"])


def test_bad_publish_input_writes_nothing(fe) -> None:
    fe.create_table("houses", "Id", df=houses())
    with pytest.raises(PublishError, match=r"no feature\(s\) \['nope'\]"):
        fe.publish_table("houses", features=["q", "nope"])
    with pytest.raises(PublishError, match="keys are always published"):
        fe.publish_table("houses", features=["Id"])
    with pytest.raises(PublishError, match="mode must be 'merge' or 'overwrite'"):
        fe.publish_table("houses", mode="append")
    with pytest.raises(PublishError, match=r"filter_condition 'qq > 1'.*\['Id', 'q', 'area', 'nb'\]"):
        fe.publish_table("houses", filter_condition="qq > 1")
    with pytest.raises(PublishError, match="SQL predicate string or a pyarrow expression"):
        fe.publish_table("houses", filter_condition=42)
    with pytest.raises(ConfigError, match="No online store named 'cache'"):
        fe.publish_table("houses", "cache")
    with pytest.raises(TableNotFoundError):
        fe.publish_table("nope")
    assert fe.list_publications(include_dropped=True) == []
    with pytest.raises(OnlineTableNotFoundError, match="not published to any online store"):
        online(fe, "houses", pd.DataFrame({"Id": [1]}))


def test_failed_overwrite_keeps_previous_contents(fe) -> None:
    fe.create_table("houses", "Id", df=houses())
    fe.publish_table("houses")
    # a predicate that fails while rows are read (a cast of 'OldTown' to an integer)
    with pytest.raises(PublishError):
        fe.publish_table("houses", filter_condition="CAST(nb AS INTEGER) > 0", mode="overwrite")
    got = online(fe, "houses", pd.DataFrame({"Id": [1, 2, 3]}))
    assert got["_found_houses"].tolist() == [True, True, True] and got["q"].tolist() == [7, 5, 8]
    assert len(fe.list_publications()) == 1


def test_streams_in_batches(fe, store_spec) -> None:
    n = 103
    df = pd.DataFrame({"Id": range(n), "q": range(n), "area": [float(i) for i in range(n)],
                       "nb": [f"n{i}" for i in range(n)]})
    fe.create_table("houses", "Id", df=df)
    pub = fe._publisher.publish_table("houses", store_spec, batch_rows=10)
    assert pub.rows == n
    fe.write_table("houses", df.assign(q=df["q"] * 2).iloc[:50], mode="overwrite")
    pub = fe._publisher.publish_table("houses", store_spec, batch_rows=7, mode="overwrite")
    assert pub.rows == 50
    fe._online.invalidate()
    got = online(fe, "houses", pd.DataFrame({"Id": [0, 49, 50]}))
    assert got["_found_houses"].tolist() == [True, True, False] and got["q"].tolist()[:2] == [0, 98]


def test_publication_records_list_and_drop(fe) -> None:
    fe.create_table("houses", "Id", df=houses())
    fe.create_table("ev", ["uid"], timestamp_keys="ts", df=events())
    first = fe.publish_table("houses")
    fe.write_table("houses", houses(q=(1, 2, 3)))
    second = fe.publish_table("houses", features=["q", "nb"], mode="overwrite")
    fe.publish_table("ev")
    pubs = fe.list_publications("houses")
    assert [p.id for p in pubs] == [second.id, first.id]
    assert (pubs[0].delta_version, pubs[0].mode, pubs[0].features) == (1, "overwrite", ["q", "nb"])
    assert pubs[0].store_spec == {"type": "sqlite", "path": None} and pubs[0].store_name is None
    info = pubs[0].to_dict()
    assert info["online_table"]["primary_keys"] == ["Id"] and info["online_table"]["columns"]["q"] == "int64"
    assert {p.table_name for p in fe.list_publications()} == {"main.default.houses", "main.default.ev"}
    dropped = fe.drop_online_table("houses")
    assert {p.id for p in dropped} == {first.id, second.id}
    assert [p.table_name for p in fe.list_publications()] == ["main.default.ev"]
    assert all(not p.active for p in fe.list_publications("houses", include_dropped=True))
    with pytest.raises(OnlineTableNotFoundError, match="not published"):
        online(fe, "houses", pd.DataFrame({"Id": [1]}))
    with pytest.raises(OnlineTableNotFoundError, match="not published to any online store"):
        fe.drop_online_table("houses")
    # the store really lost the rows: republishing with a version-0 order still shows the data
    fe.publish_table("houses", version=0)
    assert online(fe, "houses", pd.DataFrame({"Id": [1]}))["q"].tolist() == [7]


@pytest.mark.deployments("local")
def test_named_and_default_stores_from_config(larder_root, redis_url) -> None:
    from larder.client import FeatureEngineeringClient

    larder_root.mkdir(parents=True)
    (larder_root / "larder.yaml").write_text(
        "default_online_store: cache\n"
        "online_stores:\n"
        f"  cache: {{type: redis, url: '{redis_url}', key_prefix: cfgtest}}\n"
        "  local: {type: sqlite, path: other.db}\n"
    )
    with FeatureEngineeringClient(larder_root) as fe:
        fe.create_table("houses", "Id", df=houses())
        pub = fe.publish_table("houses")
        assert (pub.store_name, pub.store_type) == ("cache", "redis")
        assert online(fe, "houses", pd.DataFrame({"Id": [2]}))["q"].tolist() == [5]
        fe.drop_online_table("houses", "cache")
        local = fe.publish_table("houses", "local")
        assert (local.store_name, local.store_spec["path"]) == ("local", "other.db")


def test_redacted_spec_has_no_credentials() -> None:
    spec = RedisStoreSpec(url="redis://alice:s3cret@cache.internal:6380/2", key_prefix="p")
    red = redacted_spec(spec)
    assert "s3cret" not in str(red) and "alice" not in str(red)
    assert red["url"] == "redis://cache.internal:6380/2"
    assert redacted_spec(SQLiteStoreSpec(path="x.db", page_size=4096)) == {"type": "sqlite", "path": "x.db"}


def test_snapshot_order_grows_with_version_and_recreation() -> None:
    created = dt.datetime(2024, 5, 1, tzinfo=UTC)
    later = created + dt.timedelta(milliseconds=1)
    assert snapshot_order(created, 0) < snapshot_order(created, 1) < snapshot_order(created, 5000)
    assert snapshot_order(later, 0) > snapshot_order(created, 100_000)
    assert snapshot_order(dt.datetime(2200, 1, 1, tzinfo=UTC), 10**6) < 2**63


def test_progress_bar_and_store_client_reuse(fe, monkeypatch) -> None:
    import larder.online.publish as publish
    import larder.progress as progress

    monkeypatch.delenv("LARDER_DISABLE_PROGRESS", raising=False)
    monkeypatch.setattr(publish, "PROGRESS_MIN_ROWS", 1)
    assert progress.progress_enabled()
    fe.create_table("houses", "Id", df=houses())
    fe.publish_table("houses")
    fe.publish_table("houses", SQLiteStoreSpec(), mode="overwrite")
    online(fe, "houses", pd.DataFrame({"Id": [1]}))
    assert len(fe._online_stores) == 1  # one client for the one store, reused
    monkeypatch.setenv("LARDER_DISABLE_PROGRESS", "1")
    assert not progress.progress_enabled()
    fe.close()
    assert "_online_stores" not in fe.__dict__


def test_recreated_table_overrides_old_rows(fe) -> None:
    fe.create_table("houses", "Id", df=houses())
    for _ in range(3):
        fe.write_table("houses", houses(q=(1, 1, 1)))
    fe.publish_table("houses")  # version 3
    fe.drop_table("houses")
    fe.create_table("houses", "Id", df=houses(q=(9, 9, 9)))  # version 0 of a new table
    fe.publish_table("houses")
    assert online(fe, "houses", pd.DataFrame({"Id": [1, 2]}))["q"].tolist() == [9, 9]


def test_a_table_created_again_never_serves_the_dropped_tables_online_rows(fe, store_spec) -> None:
    """drop_table keeps the online tables (as Databricks does); creating a table again under the name
    retires them (before, the old publication stayed active and lookups of the new table read the old
    table's rows)."""
    fe.create_table("houses", "Id", df=houses())
    fe.publish_table("houses", store_spec)
    [pub] = fe.list_publications()
    fe.drop_table("houses")
    assert [p.active for p in fe.list_publications()] == [True]  # kept until the name is used again
    fe.create_table("houses", "Id", df=houses(q=(9, 9, 9)))
    assert [p.active for p in fe.list_publications(include_dropped=True)] == [False]
    with pytest.raises(OnlineTableNotFoundError, match="not published"):
        online(fe, "houses", pd.DataFrame({"Id": [1]}))
    # the store no longer holds the old rows either
    import pyarrow as pa

    with pytest.raises(OnlineTableNotFoundError):
        fe._online_stores.get(store_spec).read_batch(pub.online_table, pa.table({"Id": [1]}))
    fe.publish_table("houses", store_spec)
    assert online(fe, "houses", pd.DataFrame({"Id": [1, 2]}))["q"].tolist() == [9, 9]
    with pytest.raises(TableNotFoundError):  # dropping a missing table touches nothing
        fe.drop_table("nope")
