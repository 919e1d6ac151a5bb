"""fe.push against real stores (SQLite file, redis-server, moto DynamoDB): targets, newest wins,
validation with nothing written, idempotent retries after an online failure or a kill -9, read after write."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from larder.errors import (
    LarderError,
    PrimaryKeyError,
    PushError,
    PushIncompleteError,
    SchemaMismatchError,
    TableError,
)
from larder.online.stores.specs import DynamoDBStoreSpec, SQLiteStoreSpec
from larder.training import FeatureLookup
from online._faulty_dynamodb import FaultyProxy, forward_all


def users(ids=(1, 2), clicks=(3, 5), city=("Oslo", "Rome")) -> pd.DataFrame:
    return pd.DataFrame({"uid": list(ids), "clicks": list(clicks), "city": list(city)})


def online(fe, table: str, ids: list[int], key: str = "uid", **lookup) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    got = fe.get_online_features([FeatureLookup(table, key, **lookup)], pd.DataFrame({key: ids}), include_found=True)
    return got


def version(fe, table: str) -> int:  # type: ignore[no-untyped-def]
    return int(fe.get_table(table).version)


def test_targets_online_offline_both(fe, store_spec) -> None:
    fe.create_table("users", "uid", df=users())
    fe.publish_table("users", store_spec)
    r = fe.push("users", users(ids=[2, 3], clicks=[50, 7], city=["Bern", "Lima"]), to="online")
    assert (r.to, r.rows, r.delta_version) == ("online", 2, None)
    assert [(w.store_type, w.rows, w.changed) for w in r.online] == [(store_spec.type, 2, 2)]
    got = online(fe, "users", [1, 2, 3, 4])
    assert got["clicks"].tolist()[:3] == [3, 50, 7] and got["_found_users"].tolist() == [True, True, True, False]
    assert got["city"].tolist()[:3] == ["Oslo", "Bern", "Lima"]
    assert version(fe, "users") == 0 and sorted(fe.read_table("users")["uid"]) == [1, 2]

    r = fe.push("users", users(ids=[4], clicks=[1], city=["Kyiv"]), to="both")
    assert r.delta_version == 1 and version(fe, "users") == 1 and r.online[0].changed == 1
    assert online(fe, "users", [4])["clicks"].tolist() == [1]
    assert sorted(fe.read_table("users")["uid"]) == [1, 2, 4]  # the online-only rows are not in Delta

    r = fe.push("users", users(ids=[1], clicks=[99], city=["Oslo"]), to="offline")
    assert (r.delta_version, r.online) == (2, [])
    assert online(fe, "users", [1])["clicks"].tolist() == [3]  # online untouched
    table = fe.read_table("users").set_index("uid")
    assert table.loc[1, "clicks"] == 99 and table.loc[2, "clicks"] == 5


def test_time_series_newest_wins(fe, store_spec) -> None:
    t = pd.to_datetime(["2024-01-02", "2024-01-02"], utc=True)
    fe.create_table("ev", ["uid"], timeseries_column="ts", df=pd.DataFrame({"uid": [1, 2], "ts": t, "x": [1.0, 2.0]}))
    fe.publish_table("ev", store_spec)
    old = pd.DataFrame({"uid": [1], "ts": pd.to_datetime(["2024-01-01"], utc=True), "x": [-1.0]})
    r = fe.push("ev", old, to="both")
    assert r.online[0].changed == 0  # older than the stored row: online keeps the newer one
    assert online(fe, "ev", [1])["x"].tolist() == [1.0]
    assert len(fe.read_table("ev")) == 3  # ... while Delta holds the older event too
    new = pd.DataFrame({"uid": [1, 1, 2], "ts": pd.to_datetime(["2024-01-03", "2024-01-05", "2024-01-04"], utc=True),
                        "x": [3.0, 5.0, 4.0]})
    r = fe.push("ev", new, to="online", read_after_write=store_spec.type != "dynamodb")
    got = online(fe, "ev", [1, 2])
    assert got["x"].tolist() == [5.0, 4.0]  # the newest row per key within the batch, too
    # a republish of the (older) Delta rows does not take the pushed newer values back
    fe.publish_table("ev", store_spec)
    assert online(fe, "ev", [1, 2])["x"].tolist() == [5.0, 4.0]


def test_snapshot_push_then_publish(fe, store_spec) -> None:
    fe.create_table("users", "uid", df=users())
    fe.publish_table("users", store_spec)
    fe.push("users", users(ids=[1], clicks=[10], city=["Oslo"]), to="online")
    fe.push("users", users(ids=[1], clicks=[11], city=["Oslo"]), to="online")  # a later push wins a tie
    assert online(fe, "users", [1])["clicks"].tolist() == [11]
    fe.write_table("users", users(ids=[1], clicks=[12], city=["Oslo"]))
    fe.publish_table("users", store_spec)  # a newer Delta version wins over the push
    assert online(fe, "users", [1])["clicks"].tolist() == [12]


def test_bad_input_writes_nothing(fe) -> None:
    fe.create_table("users", "uid", df=users())
    fe.publish_table("users")
    before = online(fe, "users", [1, 2])

    def unchanged() -> None:
        assert version(fe, "users") == 0
        pd.testing.assert_frame_equal(online(fe, "users", [1, 2]), before)

    bad = {
        "null key": (pd.DataFrame({"uid": [1, None], "clicks": [1, 2], "city": ["a", "b"]}), PrimaryKeyError, "uid"),
        "dup key": (users(ids=[1, 1]), PrimaryKeyError, "uid"),
        "no key": (pd.DataFrame({"clicks": [1], "city": ["a"]}), LarderError, "uid"),
        "bad type": (pd.DataFrame({"uid": [1], "clicks": ["many"], "city": ["a"]}), SchemaMismatchError, "clicks"),
        "missing published column": (pd.DataFrame({"uid": [1], "clicks": [4]}), SchemaMismatchError, "city"),
    }
    for what, (df, error, column) in bad.items():
        for to in ("online", "both"):
            with pytest.raises(error) as info:
                fe.push("users", df, to=to)
            assert "main.default.users" in str(info.value) and column in str(info.value), (what, to, info.value)
            unchanged()
    with pytest.raises(SchemaMismatchError, match="'score'.*to='both'"):
        fe.push("users", users().assign(score=1.0), to="online")
    unchanged()
    with pytest.raises(PushError, match="to must be one of"):
        fe.push("users", users(), to="everywhere")  # type: ignore[arg-type]
    with pytest.raises(TableError, match="write id"):
        fe.push("users", users(), to="both", push_id="x" * 37)
    unchanged()
    fe.create_table("plain", "uid", df=users())
    with pytest.raises(PushError, match="not published"):
        fe.push("plain", users(), to="both")
    assert version(fe, "plain") == 0


def test_every_live_publication_gets_the_rows(fe, larder_root, tmp_path) -> None:
    import pyarrow as pa

    from larder.online import SQLiteOnlineStore

    def read(path, pub, ids):  # type: ignore[no-untyped-def]
        with SQLiteOnlineStore(path) as store:
            got, found = store.read_batch(pub.online_table, pa.table({"uid": ids}))
        return got.column("clicks").to_pylist(), found.tolist()

    fe.create_table("users", "uid", df=users(ids=[1, 2, 3], clicks=[1, 2, 3], city=["Oslo", "Rome", "Oslo"]))
    other = SQLiteStoreSpec(path=str(tmp_path / "other.db"))
    main = fe.publish_table("users")  # the embedded store
    filtered = fe.publish_table("users", other, filter_condition="city = 'Oslo'", features=["clicks"])
    r = fe.push("users", users(ids=[1, 2], clicks=[10, 20], city=["Oslo", "Rome"]), to="both")
    assert sorted(w.rows for w in r.online) == [1, 2]
    assert read(larder_root / "online.db", main, [1, 2, 3]) == ([10, 20, 3], [True, True, True])
    # the filter kept Rome out of the other store, which holds only the clicks feature
    assert read(tmp_path / "other.db", filtered, [1, 2, 3]) == ([10, None, 3], [True, False, True])
    fe.drop_online_table("users", other)
    r = fe.push("users", users(ids=[3], clicks=[30], city=["Oslo"]), to="online")
    assert len(r.online) == 1  # a dropped publication gets nothing
    assert read(larder_root / "online.db", main, [3])[0] == [30]


@pytest.fixture()
def faulty(moto_endpoint: str):  # type: ignore[no-untyped-def]
    proxy = FaultyProxy(moto_endpoint)
    yield proxy
    proxy.close()


def test_online_failure_after_commit_then_idempotent_retry(fe, faulty) -> None:
    spec = DynamoDBStoreSpec(endpoint_url=faulty.url, region="us-east-1", table_prefix=f"t{uuid.uuid4().hex[:8]}__",
                             max_retries=0)
    fe.create_table("users", "uid", df=users())
    fe.publish_table("users", spec)
    faulty.policy = lambda op, body: "denied" if op in ("PutItem", "BatchWriteItem", "BatchGetItem",
                                                       "GetItem") else "forward"
    with pytest.raises(PushIncompleteError) as info:
        fe.push("users", users(ids=[1, 5], clicks=[100, 500], city=["Oslo", "Baku"]), to="both", push_id="order-42")
    err = info.value
    assert (err.push_id, err.delta_version) == ("order-42", 1) and "push_id='order-42'" in str(err)
    assert version(fe, "users") == 1  # Delta holds the rows
    faulty.policy = forward_all
    assert online(fe, "users", [1, 5])["clicks"].tolist()[0] == 3  # online missed them
    r = fe.push("users", users(ids=[1, 5], clicks=[100, 500], city=["Oslo", "Baku"]), to="both", push_id="order-42")
    assert r.delta_version == 1 and version(fe, "users") == 1  # not committed twice
    assert online(fe, "users", [1, 5])["clicks"].tolist() == [100, 500]
    again = fe.push("users", users(ids=[1, 5], clicks=[100, 500], city=["Oslo", "Baku"]), to="both", push_id="order-42")
    assert again.delta_version == 1 and len(fe.read_table("users")) == 3  # (a tie: the same rows again)


def test_killed_after_commit_retry_completes(fe, larder_root, crasher) -> None:
    fe.create_table("users", "uid", df=users())
    fe.publish_table("users")
    df = {"uid": [1, 7], "clicks": [41, 77], "city": ["Oslo", "Riga"]}
    assert crasher(op="push", root=str(larder_root), name="users", df=df, push_id="p-1",
                   failpoint="push:after_commit") == {"signal": 9}
    assert version(fe, "users") == 1 and online(fe, "users", [7])["_found_users"].tolist() == [False]
    assert crasher(op="push", root=str(larder_root), name="users", df=df, push_id="p-1") == {"exit": 0}
    assert version(fe, "users") == 1
    assert online(fe, "users", [1, 7])["clicks"].tolist() == [41, 77]


def _pending(fe) -> list:  # type: ignore[no-untyped-def]
    return fe._pusher.pending(min_age_s=0)


def test_a_push_killed_after_its_commit_is_found_and_completed_by_doctor(fe, larder_root, crasher) -> None:
    from larder.doctor import check_pushes

    fe.create_table("users", "uid", df=users())
    fe.publish_table("users")
    assert _pending(fe) == []
    fe.push("users", users(ids=[3], clicks=[30], city=["Lima"]), to="both")  # a finished push leaves no record
    assert _pending(fe) == []
    df = {"uid": [1, 7], "clicks": [41, 77], "city": ["Oslo", "Riga"]}
    assert crasher(op="push", root=str(larder_root), name="users", df=df, push_id="p-9",
                   failpoint="push:after_commit") == {"signal": 9}
    assert online(fe, "users", [7])["_found_users"].tolist() == [False]
    [p] = _pending(fe)
    assert (p.table_name, p.push_id, p.delta_version) == ("main.default.users", "p-9", 2)
    assert fe._pusher.pending() == []  # younger than a minute: maybe still running, not reported by default
    [check] = check_pushes(fe._ctx, repair=False, min_age_s=0)
    assert check.status == "warn" and "committed in Delta version 2" in check.detail and "--repair" in check.fix
    # meanwhile a newer push of user 1 reached the store: completing the old push must not undo it
    fe.push("users", users(ids=[1], clicks=[99], city=["Oslo"]), to="both")
    [check] = check_pushes(fe._ctx, repair=True, min_age_s=0)
    assert check.status == "ok" and check.detail.startswith("repaired")
    assert online(fe, "users", [1, 7])["clicks"].tolist() == [99, 77]
    assert _pending(fe) == [] and check_pushes(fe._ctx, repair=False, min_age_s=0) == []
    assert version(fe, "users") == 3


def test_a_push_that_never_committed_leaves_nothing_pending(fe, larder_root, crasher) -> None:
    fe.create_table("users", "uid", df=users())
    fe.publish_table("users")
    with pytest.raises(SchemaMismatchError):  # refused before anything is written
        fe.push("users", pd.DataFrame({"uid": [1], "clicks": ["many"], "city": ["Oslo"]}), to="both")
    assert _pending(fe) == []
    # killed before its commit: the record says so, and completing it writes nothing
    df = {"uid": [5], "clicks": [50], "city": ["Baku"]}
    assert crasher(op="push", root=str(larder_root), name="users", df=df, push_id="p-0",
                   failpoint="push:before_commit") == {"signal": 9}
    [p] = _pending(fe)
    assert p.delta_version is None and fe._pusher.complete(p) == 0
    assert _pending(fe) == [] and version(fe, "users") == 0


def test_read_after_write(fe, store_spec) -> None:
    fe.create_table("users", "uid", df=users())
    fe.publish_table("users", store_spec)
    if store_spec.type == "dynamodb":
        with pytest.raises(PushError, match="consistent_reads"):
            fe.push("users", users(ids=[9], clicks=[90], city=["Kyiv"]), to="both", read_after_write=True)
        assert version(fe, "users") == 0
        fe.publish_table("users", store_spec.model_copy(update={"consistent_reads": True}))
    r = fe.push("users", users(ids=[9], clicks=[90], city=["Kyiv"]), to="both", read_after_write=True)
    assert r.read_after_write and online(fe, "users", [9])["clicks"].tolist() == [90]


def test_a_table_created_again_retires_old_online_tables_even_with_the_store_down(fe, faulty, caplog) -> None:
    spec = DynamoDBStoreSpec(endpoint_url=faulty.url, region="us-east-1", table_prefix=f"t{uuid.uuid4().hex[:8]}__",
                             max_retries=0)
    fe.create_table("users", "uid", df=users())
    fe.publish_table("users", spec)
    fe.drop_table("users")
    faulty.policy = lambda op, body: "denied" if op in ("DeleteTable", "DescribeTable") else "forward"
    with caplog.at_level("WARNING", logger="larder.online.publish"):
        fe.create_table("users", "uid", df=users(clicks=[30, 50]))
    assert "was not dropped" in caplog.text and "no longer referenced" in caplog.text
    assert [p.active for p in fe.list_publications(include_dropped=True)] == [False]
    with pytest.raises(LarderError, match="not published"):
        online(fe, "users", [1])
