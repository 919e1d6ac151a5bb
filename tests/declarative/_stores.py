"""The online store specs the declarative tests run on: SQLite, Redis and moto's DynamoDB (the session's
servers), each with a key prefix of its own."""

from __future__ import annotations

import uuid

import pytest

from larder.online.stores.specs import DynamoDBStoreSpec, RedisStoreSpec, SQLiteStoreSpec


def store_spec(kind: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:10]
    if kind == "sqlite":
        return SQLiteStoreSpec()
    if kind == "redis":
        return RedisStoreSpec(url=request.getfixturevalue("redis_url"), key_prefix=f"t{tag}")
    return DynamoDBStoreSpec(endpoint_url=request.getfixturevalue("moto_endpoint"), region="us-east-1",
                             table_prefix=f"t{tag}__")
