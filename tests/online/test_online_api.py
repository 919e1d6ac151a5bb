"""The public surface of larder.online, pinned."""

from __future__ import annotations

import inspect

import pytest

import larder.online


def test_exported_names() -> None:
    assert larder.online.__all__ == [
        "AmazonDynamoDBSpec",
        "DynamoDBOnlineStore",
        "DynamoDBStoreSpec",
        "ORDER_COLUMN",
        "OnlineFeatureAssembler",
        "OnlineStore",
        "OnlineTable",
        "RedisOnlineStore",
        "RedisStoreSpec",
        "SQLiteOnlineStore",
        "SQLiteStoreSpec",
        "open_store",
    ]
    assert larder.online.__all__ == sorted(larder.online.__all__)
    for name in larder.online.__all__:
        assert getattr(larder.online, name) is not None
    with pytest.raises(AttributeError):
        larder.online.NoSuchStore  # noqa: B018


def test_every_store_implements_the_contract() -> None:
    base = larder.online.OnlineStore
    assert sorted(base.__abstractmethods__) == ["delete_keys", "drop_table", "read_values", "write_batch"]
    for cls in (
        larder.online.SQLiteOnlineStore,
        larder.online.RedisOnlineStore,
        larder.online.DynamoDBOnlineStore,
    ):
        assert issubclass(cls, base) and not inspect.isabstract(cls)
        # every built-in store has its own atomic-or-documented replace, not the drop-then-write default
        assert cls.replace_table is not base.replace_table
        assert cls.__doc__
