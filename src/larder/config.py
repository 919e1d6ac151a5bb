"""Where larder keeps its state, and the optional ``larder.yaml``.

The root directory comes from the ``root`` argument, else the ``LARDER_ROOT`` environment variable,
else ``./.larder``. It holds the catalog database (``catalog.db``), the Delta tables (``tables/``),
the default SQLite online store (``online.db``) and, unless the user set one, the MLflow tracking
database (``mlflow.db``).

``larder.yaml`` is read from ``LARDER_CONFIG`` if set, else from ``<root>/larder.yaml``. It is strict:
an unknown key is an error. Example::

    catalog_url: postgresql+psycopg://larder@db/larder   # any SQLAlchemy URL; SQLite by default
    storage: /data/larder/tables                         # where Delta tables live
    default_online_store: dynamo
    online_stores:
      dynamo: {type: dynamodb, region: eu-west-1, ttl: P30D}
      cache:  {type: redis, url: "redis://127.0.0.1:6379/0"}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from larder.errors import ConfigError
from larder.online.stores.specs import OnlineStoreSpec

ROOT_ENV = "LARDER_ROOT"
CONFIG_ENV = "LARDER_CONFIG"
DEFAULT_ROOT = ".larder"


class LarderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    catalog_url: str | None = None
    storage: str | None = None
    online_stores: dict[str, OnlineStoreSpec] = Field(default_factory=dict)
    default_online_store: str | None = None
    mlflow_tracking_uri: str | None = None
    engine: Literal["duckdb"] = "duckdb"


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    if root is None:
        root = os.environ.get(ROOT_ENV) or DEFAULT_ROOT
    return Path(root).expanduser().resolve()


def load_config(root: Path) -> LarderConfig:
    path_str = os.environ.get(CONFIG_ENV)
    path = Path(path_str) if path_str else root / "larder.yaml"
    if not path.exists():
        if path_str:
            raise ConfigError(f"{CONFIG_ENV}={path_str!r} points to a file that does not exist.")
        return LarderConfig()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must contain a mapping of settings, got {type(data).__name__}.")
    try:
        config = LarderConfig.model_validate(data)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path} is invalid: {problems}. Fix or remove these settings.") from exc
    if config.default_online_store and config.default_online_store not in config.online_stores:
        raise ConfigError(
            f"{path}: default_online_store {config.default_online_store!r} is not one of the named "
            f"online_stores {sorted(config.online_stores)}."
        )
    return config
