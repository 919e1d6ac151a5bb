"""The state a client carries: root directory, configuration and catalog connection."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from larder.catalog import Catalog
from larder.config import LarderConfig, expand_env, load_config, resolve_root

if TYPE_CHECKING:
    from larder.offline.engine import Engine
    from larder.offline.storage import Storage


class Context:
    """Resolved root, configuration and lazily opened catalog. Shared by every part of larder."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root: Path = resolve_root(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.config: LarderConfig = load_config(self.root)

    @property
    def catalog_url(self) -> str:
        """The catalog's SQLAlchemy URL, ``${NAME}`` references expanded (may hold a password)."""
        return expand_env(self.catalog_url_setting, setting="catalog_url")

    @property
    def catalog_url_setting(self) -> str:
        """The catalog URL as configured (``${NAME}`` references kept): what may be recorded elsewhere."""
        return self.config.catalog_url or f"sqlite:///{self.root / 'catalog.db'}"

    @cached_property
    def storage(self) -> Storage:
        """Where Delta tables live (``storage`` + ``storage_options`` in larder.yaml; ``<root>/tables``)."""
        from larder.offline.storage import Storage

        storage = expand_env(self.config.storage, setting="storage") if self.config.storage else None
        options = {k: expand_env(v, setting=f"storage_options.{k}") for k, v in self.config.storage_options.items()}
        return Storage.from_config(storage, options, self.root / "tables")

    @cached_property
    def engine(self) -> Engine:
        """The offline compute engine (``engine`` in larder.yaml; DuckDB by default)."""
        from larder.offline.engine import get_engine

        return get_engine(self.config.engine, self.config)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.catalog_url, auto_upgrade=self.config.catalog_auto_upgrade)

    def close(self) -> None:
        if "catalog" in self.__dict__:
            self.catalog.close()
            del self.__dict__["catalog"]
