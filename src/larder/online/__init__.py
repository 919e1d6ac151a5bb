"""Online stores: the latest feature row per entity key, served by key.

The contract is :class:`~larder.online.base.OnlineStore` (``write_batch``, ``read_batch``,
``replace_table``, ``drop_table``, ``close``); a store is opened from a spec with :func:`open_store`.
See ``docs/online-stores.md`` for the layouts, type mapping and guarantees of each store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from larder.errors import ConfigError
from larder.online.base import ORDER_COLUMN, OnlineStore, OnlineTable
from larder.online.specs import (
    AmazonDynamoDBSpec,
    DynamoDBStoreSpec,
    RedisStoreSpec,
    SQLiteStoreSpec,
)

if TYPE_CHECKING:
    from larder.online.dynamodb import DynamoDBOnlineStore
    from larder.online.redis import RedisOnlineStore
    from larder.online.sqlite import SQLiteOnlineStore

__all__ = [
    "AmazonDynamoDBSpec",
    "DynamoDBOnlineStore",
    "DynamoDBStoreSpec",
    "ORDER_COLUMN",
    "OnlineStore",
    "OnlineTable",
    "RedisOnlineStore",
    "RedisStoreSpec",
    "SQLiteOnlineStore",
    "SQLiteStoreSpec",
    "open_store",
]

_LAZY = {
    "SQLiteOnlineStore": "larder.online.sqlite",
    "DynamoDBOnlineStore": "larder.online.dynamodb",
    "RedisOnlineStore": "larder.online.redis",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'larder.online' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def open_store(spec: SQLiteStoreSpec | DynamoDBStoreSpec | RedisStoreSpec, root: Path) -> OnlineStore:
    """Open the online store a spec describes.

    Parameters
    ----------
    spec
        A store spec; a SQLite spec without ``path`` means ``root / "online.db"``.
    root
        The larder root directory.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with open_store(SQLiteStoreSpec(), pathlib.Path(tempfile.mkdtemp())) as store:
    ...     type(store).__name__
    'SQLiteOnlineStore'
    """
    if isinstance(spec, SQLiteStoreSpec):
        from larder.online.sqlite import SQLiteOnlineStore

        path = (Path(root) / Path(spec.path).expanduser()) if spec.path else Path(root) / "online.db"
        return SQLiteOnlineStore(path, page_size=spec.page_size)
    if isinstance(spec, DynamoDBStoreSpec):
        from larder.online.dynamodb import DynamoDBOnlineStore

        return DynamoDBOnlineStore(spec)
    if isinstance(spec, RedisStoreSpec):
        from larder.online.redis import RedisOnlineStore

        return RedisOnlineStore(spec.url, key_prefix=spec.key_prefix, ttl=spec.ttl)
    raise ConfigError(
        f"Unknown online store spec {spec!r}: use SQLiteStoreSpec, DynamoDBStoreSpec or RedisStoreSpec."
    )
