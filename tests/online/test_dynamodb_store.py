"""DynamoDB specifics: layout seen by plain boto3, limits, retries under injected faults, TTL."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import numpy as np
import pyarrow as pa
import pytest

from larder.errors import (
    ConfigError,
    ItemTooLargeError,
    OnlineStoreError,
    OnlineTableNotFoundError,
    PrimaryKeyError,
    RetryBudgetExceededError,
)
from larder.online import (
    ORDER_COLUMN,
    AmazonDynamoDBSpec,
    DynamoDBOnlineStore,
    DynamoDBStoreSpec,
    OnlineTable,
    open_store,
)
from online._faulty_dynamodb import FaultyProxy, cycle_faults

SCHEMA = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("tag", pa.string())])


def new_table(schema: pa.Schema = SCHEMA, keys: tuple[str, ...] = ("id",)) -> OnlineTable:
    return OnlineTable(f"main.ddb.t{uuid.uuid4().hex[:8]}", list(keys), None, schema)


def batch(ids: list[int], order: list[int] | int = 1, tag: str = "v") -> pa.Table:
    orders = order if isinstance(order, list) else [order] * len(ids)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "x": [i * 0.25 for i in ids],
            "tag": [f"{tag}{i}" for i in ids],
            ORDER_COLUMN: pa.array(orders, pa.int64()),
        }
    )


def ddb(endpoint: str, **options: Any) -> DynamoDBOnlineStore:
    defaults: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "table_prefix": f"t{uuid.uuid4().hex[:8]}__",
        "retry_base_delay": 0.001,
        "retry_max_delay": 0.01,
    }
    return DynamoDBOnlineStore(**{**defaults, **options})


@pytest.fixture()
def plain(moto_endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture()
def proxy(moto_endpoint: str) -> Iterator[FaultyProxy]:
    p = FaultyProxy(moto_endpoint)
    try:
        yield p
    finally:
        p.close()


def scan_all(client: Any, table_name: str) -> list[dict[str, Any]]:
    items, kwargs = [], {"TableName": table_name, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_plain_boto3_sees_the_documented_layout(moto_endpoint: str, plain: Any) -> None:
    schema = pa.schema(
        [
            ("shop", pa.string()),
            ("item", pa.int32()),
            ("n", pa.int64()),
            ("x", pa.float64()),
            ("bad", pa.float64()),
            ("huge", pa.float64()),
            ("ok", pa.bool_()),
            ("s", pa.string()),
            ("b", pa.binary()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("day", pa.date32()),
            ("missing", pa.float64()),
        ]
    )
    t = OnlineTable(f"main.ddb.layout{uuid.uuid4().hex[:6]}", ["shop", "item"], "ts", schema)
    when = dt.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    rows = pa.table(
        {
            "shop": ["a#b"],
            "item": pa.array([7], pa.int32()),
            "n": [-12],
            "x": [0.1],
            "bad": [float("nan")],
            "huge": [1e300],
            "ok": [True],
            "s": ["héllo"],
            "b": [b"\x00\x01"],
            "ts": pa.array([when], pa.timestamp("us", tz="UTC")),
            "day": [dt.date(2024, 2, 29)],
            "missing": pa.array([None], pa.float64()),
            ORDER_COLUMN: [1709294400123456],
        }
    )
    with ddb(moto_endpoint, table_prefix="layout__") as store:
        store.write_batch(t, rows)
        physical = store.physical_name(t)
    assert physical == "layout__" + t.name.replace(".", "__")
    desc = plain.describe_table(TableName=physical)["Table"]
    assert desc["KeySchema"] == [{"AttributeName": "_pk", "KeyType": "HASH"}]
    assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    item = plain.get_item(TableName=physical, Key={"_pk": {"S": "a\\#b#7"}}, ConsistentRead=True)["Item"]
    assert item == {
        "_pk": {"S": "a\\#b#7"},
        "_order": {"N": "1709294400123456"},
        "shop": {"S": "a#b"},
        "item": {"N": "7"},
        "n": {"N": "-12"},
        "x": {"N": "0.1"},
        "bad": {"S": "nan"},
        "huge": {"S": "1e+300"},
        "ok": {"BOOL": True},
        "s": {"S": "héllo"},
        "b": {"B": b"\x00\x01"},
        "ts": {"S": "2024-03-01 12:00:00.123456Z"},
        "day": {"S": "2024-02-29"},
    }


def test_limits_are_enforced_by_larder(moto_endpoint: str, proxy: FaultyProxy) -> None:
    t = new_table()
    with ddb(proxy.url, write_mode="batch") as store:
        assert store.write_batch(t, batch(list(range(130)))) == 130
        writes = proxy.of("BatchWriteItem")
        assert writes and max(c.items for c in writes) == 25 and sum(c.items for c in writes) == 130
        pre_reads = proxy.of("BatchGetItem")
        assert max(c.items for c in pre_reads) == 100 and sum(c.items for c in pre_reads) == 130
        assert all(c.body["RequestItems"][store.physical_name(t)]["ConsistentRead"] for c in pre_reads)
        proxy.reset()
        keys = [i % 260 for i in range(520)]  # 260 distinct keys, each twice
        out, found = store.read_batch(t, pa.table({"id": keys}))
        reads = proxy.of("BatchGetItem")
        assert max(c.items for c in reads) == 100 and sum(c.items for c in reads) == 260
        assert not any(c.body["RequestItems"][store.physical_name(t)]["ConsistentRead"] for c in reads)
        assert found.tolist() == [k < 130 for k in keys]
        assert out.column("tag").to_pylist() == [f"v{k}" if k < 130 else None for k in keys]


def test_consistent_reads_option(moto_endpoint: str, proxy: FaultyProxy) -> None:
    t = new_table()
    with ddb(proxy.url, consistent_reads=True) as store:
        store.write_batch(t, batch([1]))
        store.read_batch(t, pa.table({"id": [1]}))
        physical = store.physical_name(t)
    (call,) = proxy.of("BatchGetItem")
    assert call.body["RequestItems"][physical]["ConsistentRead"] is True


FAULTS = {
    "BatchWriteItem": ["partial", "forward", "unprocessed", "throttle", "partial", "capacity", "forward"],
    "BatchGetItem": ["partial", "unprocessed", "forward", "capacity", "partial", "throttle", "forward"],
    "PutItem": ["forward", "throttle", "forward", "forward", "capacity", "forward"],
    "Scan": ["throttle", "forward"],
}


@pytest.mark.parametrize("write_mode", ["conditional", "batch"])
def test_every_item_survives_injected_faults(moto_endpoint: str, plain: Any, write_mode: str) -> None:
    proxy = FaultyProxy(moto_endpoint, cycle_faults(FAULTS))
    t, replaced = new_table(), new_table()
    n = 80
    try:
        with ddb(proxy.url, write_mode=write_mode, max_retries=40, max_workers=4) as store:
            assert store.write_batch(t, batch(list(range(n)), order=5)) == n
            # half older (must be ignored), half newer (must win), under the same faults
            mixed = batch(
                list(range(0, n, 2)) + list(range(1, n, 2)), order=[4] * (n // 2) + [6] * (n // 2), tag="w"
            )
            assert store.write_batch(t, mixed) == n // 2
            store.write_batch(replaced, batch(list(range(100)), tag="old"))
            assert store.replace_table(replaced, [batch(list(range(50, 150)), tag="new")]) == 100
            keys = list(range(n + 20)) * 2
            out, found = store.read_batch(t, pa.table({"id": keys}))
            out2, found2 = store.read_batch(replaced, pa.table({"id": list(range(150))}))
            physical, physical2 = store.physical_name(t), store.physical_name(replaced)
    finally:
        proxy.close()
    actions = proxy.actions()
    for op in ("BatchWriteItem", "BatchGetItem"):
        for action in ("partial", "unprocessed", "throttle", "capacity"):
            assert actions[(op, action)] > 0, (op, action, actions)
    if write_mode == "conditional":
        assert actions[("PutItem", "throttle")] > 0 and actions[("PutItem", "capacity")] > 0
    expected = [(f"w{k}" if k % 2 else f"v{k}") if k < n else None for k in keys]
    assert out.column("tag").to_pylist() == expected
    assert found.tolist() == [k < n for k in keys]
    assert found2.tolist() == [k >= 50 for k in range(150)]
    assert out2.column("tag").to_pylist() == [f"new{k}" if k >= 50 else None for k in range(150)]
    # straight from moto: every item exactly once, with the winning order
    items = scan_all(plain, physical)
    assert len(items) == n
    orders = {int(i["id"]["N"]): int(i["_order"]["N"]) for i in items}
    assert orders == {k: 6 if k % 2 else 5 for k in range(n)}
    assert sorted(int(i["id"]["N"]) for i in scan_all(plain, physical2)) == list(range(50, 150))


def test_retry_budget_exhaustion(moto_endpoint: str) -> None:
    t = new_table()
    with ddb(moto_endpoint) as direct:
        direct.write_batch(t, batch([1, 2]))
        table_prefix = direct.spec.table_prefix
    cases = [
        ("PutItem", "throttle", "conditional", lambda s: s.write_batch(t, batch([3]))),
        ("BatchWriteItem", "unprocessed", "batch", lambda s: s.write_batch(t, batch([3], order=9))),
        ("BatchGetItem", "unprocessed", "conditional", lambda s: s.read_batch(t, pa.table({"id": [1]}))),
        ("BatchGetItem", "capacity", "conditional", lambda s: s.read_batch(t, pa.table({"id": [1]}))),
    ]
    for op, action, mode, run in cases:
        proxy = FaultyProxy(
            moto_endpoint, lambda o, b, op=op, action=action: action if o == op else "forward"
        )
        try:
            with ddb(proxy.url, table_prefix=table_prefix, write_mode=mode, max_retries=3) as store:
                with pytest.raises(RetryBudgetExceededError, match="3 retries") as info:
                    run(store)
        finally:
            proxy.close()
        assert len(proxy.of(op)) == 4, (op, action)  # the first try and three retries
        if action != "unprocessed":
            assert isinstance(info.value.__cause__, botocore.exceptions.ClientError)


def test_item_too_large_names_the_key_and_writes_nothing(moto_endpoint: str, plain: Any) -> None:
    t = new_table()
    with ddb(moto_endpoint) as store:
        store.write_batch(t, batch([1]))
        rows = batch([2, 3])
        rows = rows.set_column(2, "tag", pa.array(["small", "x" * 420_000]))
        with pytest.raises(ItemTooLargeError, match=r"\{'id': 3\}.*400"):
            store.write_batch(t, rows)
        assert store.read_batch(t, pa.table({"id": [2, 3]}))[1].tolist() == [False, False]
        with pytest.raises(PrimaryKeyError, match="2048"):
            big_key = new_table(
                pa.schema([("k", pa.string()), ("x", pa.float64()), ("tag", pa.string())]), ("k",)
            )
            store.write_batch(
                big_key, pa.table({"k": ["k" * 3000], "x": [1.0], "tag": ["a"], ORDER_COLUMN: [1]})
            )


def test_ttl(moto_endpoint: str, plain: Any) -> None:
    t = new_table()
    with ddb(moto_endpoint, ttl=dt.timedelta(hours=2)) as store:
        before = time.time()
        store.write_batch(t, batch([1, 2]))
        physical = store.physical_name(t)
        ttl = plain.describe_time_to_live(TableName=physical)["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "_expires_at"
        item = plain.get_item(TableName=physical, Key={"_pk": {"S": "1"}})["Item"]
        assert before + 7200 - 1 <= int(item["_expires_at"]["N"]) <= time.time() + 7200
        # DynamoDB deletes expired items lazily; larder treats them as missing meanwhile
        plain.update_item(
            TableName=physical,
            Key={"_pk": {"S": "2"}},
            UpdateExpression="SET #e = :e",
            ExpressionAttributeNames={"#e": "_expires_at"},
            ExpressionAttributeValues={":e": {"N": str(int(time.time()) - 10)}},
        )
        out, found = store.read_batch(t, pa.table({"id": [1, 2]}))
        assert found.tolist() == [True, False]
        assert out.column("tag").to_pylist() == ["v1", None]
        out, found = store.read_batch(t, pa.table({"id": [1, 2]}), features=["x"])
        assert found.tolist() == [True, False]


def test_table_name_holds_one_feature_table(moto_endpoint: str, plain: Any) -> None:
    name = f"features-{uuid.uuid4().hex[:6]}"
    spec = AmazonDynamoDBSpec(
        region="us-east-1", table_name=name, endpoint_url=moto_endpoint, read_secret_prefix="ignored/x"
    )
    t, other = new_table(), new_table()
    with open_store(spec, Path(".")) as store:
        assert isinstance(store, DynamoDBOnlineStore)
        store.write_batch(t, batch([1]))
        with pytest.raises(OnlineStoreError, match="table_prefix"):
            store.write_batch(other, batch([1]))
    assert plain.get_item(TableName=name, Key={"_pk": {"S": "1"}})["Item"]["tag"] == {"S": "v1"}


def test_wrong_key_schema_is_refused(moto_endpoint: str, plain: Any) -> None:
    name = f"foreign-{uuid.uuid4().hex[:6]}"
    plain.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    with ddb(moto_endpoint, table_name=name) as store:
        with pytest.raises(OnlineStoreError, match="key schema"):
            store.write_batch(new_table(), batch([1]))


def test_service_errors_become_larder_errors(moto_endpoint: str) -> None:
    proxy = FaultyProxy(moto_endpoint, lambda op, body: "denied" if op == "BatchGetItem" else "forward")
    t = new_table()
    try:
        with ddb(proxy.url) as store:
            store.write_batch(t, batch([1]))
            with pytest.raises(OnlineStoreError, match="permissions") as info:
                store.read_batch(t, pa.table({"id": [1]}))
            assert isinstance(info.value.__cause__, botocore.exceptions.ClientError)
    finally:
        proxy.close()
    with ddb("http://127.0.0.1:9", max_retries=1) as store:  # nothing listens on port 9
        with pytest.raises(RetryBudgetExceededError, match="1 retries"):
            store.read_batch(t, pa.table({"id": [1]}))
    with ddb(moto_endpoint) as store:
        with pytest.raises(OnlineTableNotFoundError):
            store.read_batch(new_table(), pa.table({"id": [1]}))


def test_spec_and_options(moto_endpoint: str) -> None:
    spec = DynamoDBStoreSpec(region="us-east-1", endpoint_url=moto_endpoint, max_workers=2)
    with DynamoDBOnlineStore(spec, max_retries=0, table_prefix="opt__") as store:
        assert store.spec.max_workers == 2 and store.max_retries == 0
        assert store.physical_name(new_table()).startswith("opt__main__ddb__t")
    with pytest.raises(ConfigError, match="write_mode"):
        DynamoDBOnlineStore(spec, write_mode="sometimes")


def test_parallel_reads_from_threads(moto_endpoint: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    t = new_table()
    with ddb(moto_endpoint, write_mode="batch") as store:
        store.write_batch(t, batch(list(range(300))))

        def read(seed: int) -> bool:
            ids = np.random.default_rng(seed).integers(0, 320, 150)
            out, found = store.read_batch(t, pa.table({"id": ids}))
            return out.column("tag").to_pylist() == [f"v{i}" if i < 300 else None for i in ids]

        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(read, range(8)))
