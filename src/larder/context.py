"""The state a client carries: root directory, configuration and catalog connection."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from larder.catalog import Catalog
from larder.config import LarderConfig, load_config, resolve_root

if TYPE_CHECKING:
    from larder.offline.engine import Engine


class Context:
    """Resolved root, configuration and lazily opened catalog. Shared by every part of larder."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root: Path = resolve_root(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.config: LarderConfig = load_config(self.root)

    @property
    def catalog_url(self) -> str:
        return self.config.catalog_url or f"sqlite:///{self.root / 'catalog.db'}"

    @property
    def storage(self) -> Path:
        return Path(self.config.storage).expanduser() if self.config.storage else self.root / "tables"

    @cached_property
    def engine(self) -> Engine:
        """The offline compute engine (``engine`` in larder.yaml; DuckDB by default)."""
        from larder.offline.engine import get_engine

        return get_engine(self.config.engine)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.catalog_url)

    def close(self) -> None:
        if "catalog" in self.__dict__:
            self.catalog.close()
            del self.__dict__["catalog"]
