"""Online stores: the latest feature row per entity key, served by key.

The contract is :class:`~larder.online.stores.base.OnlineStore`; a store is opened from a spec
(:mod:`larder.online.stores.specs`) with :func:`open_store`, and :class:`StoreCache` keeps one client
per place a spec points to. Each backend is one module (``sqlite``, ``redis``, ``dynamodb``) over the
shared key and value encodings of :mod:`~larder.online.stores.encoding`. Nothing here knows about
feature specs: the assembly beside this package (``larder.online.plan``, ``assemble``, ``publish``,
``service``) imports the stores, never the other way round. See ``docs/online-stores.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from larder.errors import ConfigError, OnlineStoreError
from larder.online.stores.base import OnlineStore
from larder.online.stores.specs import DynamoDBStoreSpec, RedisStoreSpec, SQLiteStoreSpec, store_key


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
        from larder.online.stores.sqlite import SQLiteOnlineStore

        path = (Path(root) / Path(spec.path).expanduser()) if spec.path else Path(root) / "online.db"
        return SQLiteOnlineStore(path, page_size=spec.page_size)
    if isinstance(spec, DynamoDBStoreSpec):
        from larder.online.stores.dynamodb import DynamoDBOnlineStore

        return DynamoDBOnlineStore(spec)
    if isinstance(spec, RedisStoreSpec):
        from larder.online.stores.redis import RedisOnlineStore

        return RedisOnlineStore(spec.url, key_prefix=spec.key_prefix, ttl=spec.ttl, password_env=spec.password_env)
    raise ConfigError(
        f"Unknown online store spec {spec!r}: use SQLiteStoreSpec, DynamoDBStoreSpec or RedisStoreSpec."
    )


class StoreCache:
    """Online-store clients opened once per store and reused; ``close()`` closes them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._stores: dict[str, OnlineStore] = {}

    def get(self, spec: Any) -> OnlineStore:
        key = store_key(spec, self.root)
        store = self._stores.get(key)
        if store is None:
            store = open_store(spec, self.root)
            self._stores[key] = store
        else:  # a cached client: check what opening would have checked
            wanted = getattr(spec, "page_size", None)
            have = getattr(store, "page_size", wanted)
            if wanted is not None and have != wanted:
                raise OnlineStoreError(
                    f"SQLite online store {getattr(store, 'path', key)} has {have}-byte pages, not the {wanted} "
                    "asked for: the page size is fixed when the file is created. Publish without page_size "
                    f"(or with page_size={have}), or to a new file."
                )
        return store

    def close(self) -> None:
        stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.close()

    def __len__(self) -> int:
        return len(self._stores)


__all__ = ["StoreCache", "open_store"]
