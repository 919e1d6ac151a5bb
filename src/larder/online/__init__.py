"""Online features: feature tables published to online stores and feature specs assembled from them.

Two layers, imports pointing one way (assembly -> stores):

* :mod:`larder.online.stores`: the store contract (:class:`~larder.online.stores.base.OnlineStore`),
  the key and value encodings, the SQLite, Redis and DynamoDB backends and their specs. A store is
  opened from a spec with :func:`open_store`.
* the assembly: :mod:`~larder.online.plan` (what a feature spec reads and how it maps to outputs,
  computed once per spec), :mod:`~larder.online.assemble` (:class:`OnlineFeatureAssembler`, which
  executes a plan for any number of rows, with :mod:`~larder.online.keys` and
  :mod:`~larder.online.outputs` for the keys in and the output forms out), :mod:`~larder.online.publish`
  (feature tables into stores) and :mod:`~larder.online.service` (the client's lookups).

See ``docs/online-stores.md`` for the layouts, type mapping and guarantees of each store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from larder.online.stores import open_store
from larder.online.stores.base import ORDER_COLUMN, OnlineStore, OnlineTable
from larder.online.stores.specs import (
    AmazonDynamoDBSpec,
    DynamoDBStoreSpec,
    RedisStoreSpec,
    SQLiteStoreSpec,
)

if TYPE_CHECKING:
    from larder.online.assemble import OnlineFeatureAssembler
    from larder.online.stores.dynamodb import DynamoDBOnlineStore
    from larder.online.stores.redis import RedisOnlineStore
    from larder.online.stores.sqlite import SQLiteOnlineStore

__all__ = [
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

_LAZY = {  # imported on first use: the stores' clients and the assembly's pandas stay out of `import larder`
    "OnlineFeatureAssembler": "larder.online.assemble",
    "SQLiteOnlineStore": "larder.online.stores.sqlite",
    "DynamoDBOnlineStore": "larder.online.stores.dynamodb",
    "RedisOnlineStore": "larder.online.stores.redis",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'larder.online' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
