"""Where larder keeps its state, and the optional ``larder.yaml``.

The root directory comes from the ``root`` argument, else the ``LARDER_ROOT`` environment variable,
else ``./.larder``. It holds the catalog database (``catalog.db``), the Delta tables (``tables/``),
the default SQLite online store (``online.db``) and, unless the user set one, the MLflow tracking
database (``mlflow.db``).

``larder.yaml`` is read from ``LARDER_CONFIG`` if set, else from ``<root>/larder.yaml``. It is strict:
an unknown key is an error. Example::

    catalog_url: postgresql+psycopg://larder:${PGPASSWORD}@db/larder   # any SQLAlchemy URL; SQLite by default
    storage: s3://features/larder                        # where Delta tables live (path or URI)
    storage_options:                                     # passed to delta-rs, never stored
      AWS_REGION: eu-west-1
      AWS_ENDPOINT_URL: ${S3_ENDPOINT}
    default_online_store: dynamo
    online_stores:
      dynamo: {type: dynamodb, region: eu-west-1, ttl: P30D}
      cache:  {type: redis, url: "redis://127.0.0.1:6379/0"}
    engine: spark                  # offline compute on Spark (default duckdb); see docs/spark.md
    spark_master: spark://10.0.0.5:7077                  # when no SparkSession is active; default local[*]
    spark_conf: {spark.executor.memory: 4g}

``${NAME}`` in ``catalog_url``, ``storage``, ``storage_options`` values and ``mlflow_tracking_uri`` is
replaced by the environment variable ``NAME`` when larder uses the value (``$${`` is a literal ``${``),
so credentials stay out of the file; a variable that is not set is an error naming it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from larder.errors import ConfigError
from larder.online.stores.specs import OnlineStoreSpec

ROOT_ENV = "LARDER_ROOT"
CONFIG_ENV = "LARDER_CONFIG"
DEFAULT_ROOT = ".larder"


class LarderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    catalog_url: str | None = None
    #: upgrade an older catalog schema when it is opened (None: only an SQLite catalog; a shared one is
    #: upgraded with `larder catalog upgrade`)
    catalog_auto_upgrade: bool | None = None
    storage: str | None = None
    storage_options: dict[str, str] = Field(default_factory=dict)
    online_stores: dict[str, OnlineStoreSpec] = Field(default_factory=dict)
    default_online_store: str | None = None
    mlflow_tracking_uri: str | None = None
    engine: Literal["duckdb", "spark"] = "duckdb"
    spark_master: str | None = None
    spark_conf: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("storage_options", mode="before")
    @classmethod
    def _option_strings(cls, value: object) -> object:
        """YAML gives ``true``/``8`` for options delta-rs wants as strings ("true", "8")."""
        if not isinstance(value, dict):
            return value
        return {k: (str(v).lower() if isinstance(v, bool) else str(v) if isinstance(v, int | float) else v)
                for k, v in value.items()}


_ENV_REF = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: str, *, setting: str) -> str:
    """``value`` with each ``${NAME}`` replaced by the environment variable ``NAME``.

    >>> os.environ["LARDER_DOC_BUCKET"] = "features"
    >>> expand_env("s3://${LARDER_DOC_BUCKET}/prod", setting="storage")
    's3://features/prod'
    >>> expand_env("literal $${HOME}", setting="x")
    'literal ${HOME}'
    """

    def sub(match: re.Match[str]) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped:
            return "${" + name + "}"
        if name not in os.environ:
            raise ConfigError(
                f"larder.yaml setting {setting!r} refers to the environment variable ${{{name}}}, which is not "
                f"set. Export {name} (for example in the service's environment) or change the setting."
            )
        return os.environ[name]

    return _ENV_REF.sub(sub, value)


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
    if (config.spark_master or config.spark_conf) and config.engine != "spark":
        raise ConfigError(f"{path}: spark_master and spark_conf apply to the Spark engine; add `engine: spark` "
                          "or remove them.")
    if config.default_online_store and config.default_online_store not in config.online_stores:
        raise ConfigError(
            f"{path}: default_online_store {config.default_online_store!r} is not one of the named "
            f"online_stores {sorted(config.online_stores)}."
        )
    return config
