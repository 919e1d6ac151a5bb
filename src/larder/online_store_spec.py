"""Online store specifications at Databricks' import path
(``databricks.feature_engineering.online_store_spec``).

``AmazonDynamoDBSpec(region=..., table_name=..., ttl=...)`` builds larder's
:class:`~larder.online.stores.specs.DynamoDBStoreSpec`; ``OnlineStoreSpec`` is the base class of every larder
spec (``SQLiteStoreSpec``, ``RedisStoreSpec``, ``DynamoDBStoreSpec``), so ``isinstance(spec,
OnlineStoreSpec)`` holds for all of them. Databricks' relational and Cosmos DB specs have no larder
store behind them: constructing one raises :class:`~larder.errors.ConfigError` naming the stores to use
instead (Databricks' own ``publish_table`` refuses the relational ones too).
"""

from __future__ import annotations

from typing import Any, NoReturn

from larder.errors import ConfigError
from larder.online.stores.specs import (
    AmazonDynamoDBSpec,
    DynamoDBStoreSpec,
    RedisStoreSpec,
    SQLiteStoreSpec,
)
from larder.online.stores.specs import StoreSpecBase as OnlineStoreSpec


def _unsupported(kind: str) -> NoReturn:
    raise ConfigError(
        f"{kind}: larder has no {kind.removesuffix('Spec')} online store. Publish to DynamoDB "
        "(AmazonDynamoDBSpec(region=...)), Redis (RedisStoreSpec(url=...)) or the embedded SQLite store "
        "(SQLiteStoreSpec(), the default), or create a named store with fe.create_online_store(name=..., "
        "capacity='CU_1')."
    )


def AmazonRdsMySqlSpec(hostname: str, port: int, user: str | None = None, password: str | None = None,  # noqa: N802
                       database_name: str | None = None, table_name: str | None = None,
                       driver_name: str | None = None, read_secret_prefix: str | None = None,
                       write_secret_prefix: str | None = None) -> NoReturn:
    """Databricks' Amazon RDS MySQL spec: no larder store; raises :class:`ConfigError`."""
    _unsupported("AmazonRdsMySqlSpec")


def AzureMySqlSpec(hostname: str, port: int, user: str | None = None, password: str | None = None,  # noqa: N802
                   database_name: str | None = None, table_name: str | None = None, driver_name: str | None = None,
                   read_secret_prefix: str | None = None, write_secret_prefix: str | None = None) -> NoReturn:
    """Databricks' Azure MySQL spec: no larder store; raises :class:`ConfigError`."""
    _unsupported("AzureMySqlSpec")


def AzureSqlServerSpec(hostname: str, port: int, user: str | None = None, password: str | None = None,  # noqa: N802
                       database_name: str | None = None, table_name: str | None = None, driver_name: str | None = None,
                       read_secret_prefix: str | None = None, write_secret_prefix: str | None = None) -> NoReturn:
    """Databricks' Azure SQL Server spec: no larder store; raises :class:`ConfigError`."""
    _unsupported("AzureSqlServerSpec")


def AzureCosmosDBSpec(*, account_uri: str, database_name: str | None = None,  # noqa: N802
                      container_name: str | None = None, read_secret_prefix: str | None = None,
                      write_secret_prefix: str | None = None,
                      target_throughput_threshold_for_provisioned: Any = None,
                      target_throughput_for_serverless: Any = None) -> NoReturn:
    """Databricks' Azure Cosmos DB spec: no larder store; raises :class:`ConfigError`."""
    _unsupported("AzureCosmosDBSpec")


__all__ = [
    "AmazonDynamoDBSpec",
    "AmazonRdsMySqlSpec",
    "AzureCosmosDBSpec",
    "AzureMySqlSpec",
    "AzureSqlServerSpec",
    "DynamoDBStoreSpec",
    "OnlineStoreSpec",
    "RedisStoreSpec",
    "SQLiteStoreSpec",
]
