"""Publishing under races, kills and odd arguments.

* Publications are ordered by Delta version: two racing overwrites of versions 1 and 2 always end
  serving version 2 (and the catalog says so); a publish of an older version is refused with
  ``StalePublishError`` and changes nothing.
* Overwrites killed half-way leave no garbage in Redis once the next publish ran.
* A cached SQLite store refuses a ``page_size`` its file does not have (nothing recorded).
* Store objects are accepted wherever specs are.
"""

from __future__ import annotations

import json
import random
import sqlite3

import pandas as pd
import pytest

from larder.errors import OnlineStoreError, StalePublishError
from larder.online.stores.specs import RedisStoreSpec, SQLiteStoreSpec
from larder.training import FeatureLookup
from online_publish.conftest import make_spec

RUNS = 20
N = 40


def versions(fe, name: str = "t", *, time_series: bool = False) -> None:
    """Versions 0, 1, 2 of a table whose value column holds the version number for every key."""
    df = pd.DataFrame({"Id": range(N), "v": [0.0] * N})
    if time_series:
        df["ts"] = pd.Timestamp("2024-01-01", tz="UTC")
        fe.create_table(name, "Id", df=df, timestamp_keys="ts")
    else:
        fe.create_table(name, "Id", df=df)
    for v in (1.0, 2.0):
        fe.write_table(name, df.assign(v=v))


def served(fe, name: str = "t") -> set[float]:
    latest = fe.get_table(name).is_time_series  # online, a time series serves its latest row per key
    out = fe.get_online_features([FeatureLookup(name, "Id", allow_latest_value=latest)],
                                 pd.DataFrame({"Id": range(N)}))
    return set(out["v"])


def spec_json(spec) -> dict:
    return json.loads(spec.model_dump_json())


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_racing_overwrites_always_end_serving_the_newest_version(fe, larder_root, crasher, request, kind):
    rng = random.Random(3)
    versions(fe)
    for run in range(RUNS):
        spec = make_spec(kind, request) if kind == "redis" else SQLiteStoreSpec(path=f"online-{run}.db")
        base = {"op": "publish", "root": str(larder_root), "name": "t", "spec": spec_json(spec), "mode": "overwrite"}
        # the older version starts at the same time or later, so that it often finishes last
        out = crasher(parallel=[{**base, "version": 2, "delay": 0.0},
                                {**base, "version": 1, "delay": rng.uniform(0.0, 0.05)}])
        assert out["parallel"][0] == {"exit": 0}, out  # version 2 always succeeds
        assert out["parallel"][1] in ({"exit": 0}, {"exit": 3}), out  # version 1: published or refused
        # the catalog's latest publication (what lookups read) is version 2, in whichever order the two
        # racing publishes recorded theirs (list_publications keeps that history as it happened)
        latest, _ = fe._publisher.latest_publication("t")
        assert latest.delta_version == 2, (run, latest)
        assert {p.delta_version for p in fe.list_publications("t")[:2]} <= {1, 2}
        assert served(fe) == {2.0}, run


@pytest.mark.parametrize("mode", ["overwrite", "merge"])
def test_an_older_version_is_refused_and_changes_nothing(fe, store_spec, mode):
    versions(fe, time_series=True)
    fe.publish_table("t", store_spec, mode=mode, version=2)
    before = fe.list_publications("t")
    with pytest.raises(StalePublishError, match="version 1 was not published") as err:
        fe.publish_table("t", store_spec, mode=mode, version=1)
    assert "serves version 2" in str(err.value)
    assert fe.list_publications("t") == before
    assert served(fe) == {2.0}
    fe.publish_table("t", store_spec, mode=mode, version=2)  # the same version again is fine
    assert served(fe) == {2.0}


def redis_keys(url: str, prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return sum(1 for _ in client.scan_iter(match=f"{prefix}:*", count=1000))
    finally:
        client.close()


def test_killed_overwrites_leave_no_redis_generations(fe, larder_root, crasher, redis_url, request):
    versions(fe)
    spec = make_spec("redis", request)
    fe.publish_table("t", spec, mode="overwrite")
    live = redis_keys(redis_url, spec.key_prefix)
    assert live == N + 4  # N hashes; the generation pointer, its counter, publications, generations
    op = {"op": "publish", "root": str(larder_root), "name": "t", "spec": spec_json(spec), "mode": "overwrite",
          "batch_rows": 10, "failpoint": "publish_table:after_batch"}
    for _ in range(5):
        assert crasher(**op) == {"signal": 9}
    assert redis_keys(redis_url, spec.key_prefix) >= live + 5 * 10  # each killed staging left rows
    assert served(fe) == {2.0}  # serving was never disturbed
    fe.publish_table("t", spec, mode="overwrite")
    assert redis_keys(redis_url, spec.key_prefix) == live
    # killed overwrites, then a merge publish: that reclaims them too once an overwrite has switched
    for _ in range(2):
        assert crasher(**op) == {"signal": 9}
    fe.publish_table("t", spec, mode="overwrite")
    fe.publish_table("t", spec, mode="merge")
    assert redis_keys(redis_url, spec.key_prefix) == live
    assert served(fe) == {2.0}


def test_cached_sqlite_store_refuses_a_page_size_its_file_lacks(fe, larder_root):
    fe.create_table("t", "Id", df=pd.DataFrame({"Id": [1, 2], "v": [1.0, 2.0]}))
    fe.create_table("u", "Id", df=pd.DataFrame({"Id": [1, 2], "w": [1.0, 2.0]}))
    fe.publish_table("t")  # creates online.db with 16 KB pages, and caches the client
    before = fe.list_publications()
    with pytest.raises(OnlineStoreError, match="16384-byte pages, not the 4096"):
        fe.publish_table("u", SQLiteStoreSpec(page_size=4096))
    assert fe.list_publications() == before
    fe.publish_table("u", SQLiteStoreSpec(page_size=16384))
    assert "page_size" not in fe.list_publications("u")[0].store_spec  # a creation option: not recorded
    # another process (here: a fresh client) looks up through the recorded spec
    from larder.client import FeatureEngineeringClient

    with FeatureEngineeringClient(larder_root) as other:
        out = other.get_online_features([FeatureLookup("u", "Id")], pd.DataFrame({"Id": [2]}))
        assert out["w"].tolist() == [2.0]
    con = sqlite3.connect(larder_root / "online.db")
    assert con.execute("PRAGMA page_size").fetchone()[0] == 16384
    con.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis", "dynamodb"])
def test_store_objects_are_accepted_wherever_specs_are(fe, larder_root, request, kind):
    from larder.online.stores import open_store

    spec = make_spec(kind, request) if kind != "sqlite" else SQLiteStoreSpec(path=str(larder_root / "obj.db"))
    fe.create_table("t", "Id", df=pd.DataFrame({"Id": [1, 2], "v": [1.0, 2.0]}))
    with open_store(spec, larder_root) as store:
        pub = fe.publish_table("t", store)
        assert pub.store_type == kind
        out = fe.get_online_features([FeatureLookup("t", "Id")], pd.DataFrame({"Id": [2, 1]}))
        assert out["v"].tolist() == [2.0, 1.0]
        assert [p.table_name for p in fe.drop_online_table("t", store)] == ["main.default.t"]


def test_redis_spec_and_bad_specs_are_config_errors():
    from larder.errors import ConfigError

    with pytest.raises(ConfigError, match="page_size: page_size must be a power of two.*got 1000"):
        SQLiteStoreSpec(page_size=1000)
    with pytest.raises(ConfigError, match="endpoint_url"):
        from larder.online.stores.specs import DynamoDBStoreSpec

        DynamoDBStoreSpec(endpoint_url="not a url", region="us-east-1")
    with pytest.raises(ConfigError, match="url must start with redis://"):
        RedisStoreSpec(url="http://127.0.0.1:6379")
    with pytest.raises(ConfigError, match="not a URL") as err:
        RedisStoreSpec(url="redis://h:hunter2@h:notaport/0")
    assert "hunter2" not in str(err.value)


def test_online_lookup_of_a_time_series_without_timestamp_takes_the_latest_value(fe, store_spec):
    from larder.errors import LeakageError

    df = pd.DataFrame({"Id": [1, 1, 2], "ts": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-01-15"], utc=True),
                       "v": [1.0, 2.0, 3.0]})
    fe.create_table("ev", "Id", df=df, timestamp_keys="ts")
    fe.publish_table("ev", store_spec)
    got = fe.get_online_features([FeatureLookup("ev", "Id")], pd.DataFrame({"Id": [2, 1, 9]}))
    assert got["v"].tolist()[:2] == [3.0, 2.0] and pd.isna(got["v"].tolist()[2])
    # the leakage guard stays where rows have a past: training sets (and so score_batch's specs)
    with pytest.raises(LeakageError):
        fe.create_training_set(pd.DataFrame({"Id": [1], "y": [0]}), [FeatureLookup("ev", "Id")], label="y")
