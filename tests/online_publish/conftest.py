"""Fixtures for publishing tests: a store spec per backend, isolated per test."""

from __future__ import annotations

import uuid

import pytest

from larder.online.stores.specs import DynamoDBStoreSpec, RedisStoreSpec, SQLiteStoreSpec

STORES = ["sqlite", "redis", "dynamodb"]


def make_spec(kind: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:10]
    if kind == "sqlite":
        return SQLiteStoreSpec()
    if kind == "redis":
        return RedisStoreSpec(url=request.getfixturevalue("redis_url"), key_prefix=f"t{tag}")
    if kind == "dynamodb":
        endpoint = request.getfixturevalue("moto_endpoint")
        return DynamoDBStoreSpec(endpoint_url=endpoint, region="us-east-1", table_prefix=f"t{tag}__")
    raise AssertionError(kind)


@pytest.fixture(params=STORES)
def store_spec(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A spec for each backend: the embedded SQLite store, Redis and DynamoDB (moto), with a fresh
    key prefix / table prefix per test."""
    return make_spec(request.param, request)
