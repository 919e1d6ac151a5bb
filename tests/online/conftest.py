"""The ``store`` fixture: every online store, against real local services.

A test that takes ``store`` runs once per store: ``sqlite`` (a file under tmp_path), ``redis`` (the
session's redis-server, a fresh key prefix per test) and ``dynamodb`` (the session's moto server,
a fresh table prefix per test, conditional writes). Tests marked ``all_write_modes`` also run on
``dynamodb-batch`` (the batched write mode), since only write semantics differ between the modes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from larder.online import DynamoDBOnlineStore, OnlineStore, RedisOnlineStore, SQLiteOnlineStore

STORES = ["sqlite", "redis", "dynamodb"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "all_write_modes: also run the store contract test on DynamoDB's batch write mode"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store" in metafunc.fixturenames:
        kinds = list(STORES)
        if metafunc.definition.get_closest_marker("all_write_modes"):
            kinds.append("dynamodb-batch")
        metafunc.parametrize("store", kinds, indirect=True)


def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path, **options: object) -> OnlineStore:
    tag = uuid.uuid4().hex[:10]
    if kind == "sqlite":
        return SQLiteOnlineStore(tmp_path / "online.db")
    if kind == "redis":
        return RedisOnlineStore(request.getfixturevalue("redis_url"), key_prefix=f"test{tag}", **options)
    if kind.startswith("dynamodb"):
        endpoint = request.getfixturevalue("moto_endpoint")
        return DynamoDBOnlineStore(
            endpoint_url=endpoint,
            region="us-east-1",
            table_prefix=f"t{tag}__",
            write_mode="batch" if kind == "dynamodb-batch" else "conditional",
            retry_base_delay=0.001,
            **options,
        )
    raise ValueError(kind)


@pytest.fixture()
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    s = make_store(request.param, request, tmp_path)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture()
def store_kind(store: OnlineStore) -> str:
    if isinstance(store, SQLiteOnlineStore):
        return "sqlite"
    if isinstance(store, RedisOnlineStore):
        return "redis"
    assert isinstance(store, DynamoDBOnlineStore)
    return "dynamodb" if store.spec.write_mode == "conditional" else "dynamodb-batch"
