"""Online store specifications: strict pydantic models, chosen by their ``type`` field.

A spec says *where* features are served from; :func:`larder.online.stores.open_store` turns a spec
into an :class:`~larder.online.stores.base.OnlineStore`. Specs hold no credentials: DynamoDB uses boto3's
default credential chain, Redis takes credentials in its URL only if the user puts them there.
:func:`parse_spec` validates a spec given as a mapping, :func:`redacted_spec` gives one without
credentials (what the catalog and a logged model record), :func:`store_key` names the place a spec
points to.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from larder.errors import ConfigError


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def store_type(self) -> str:
        """Databricks' name of ``type`` (``"sqlite"``, ``"dynamodb"``, ``"redis"``)."""
        return str(getattr(self, "type", ""))


#: The base class of every store spec (``isinstance(spec, StoreSpecBase)``; Databricks' ``OnlineStoreSpec``).
StoreSpecBase = _Spec

#: The page sizes SQLite accepts (512 .. 65536 bytes).
SQLITE_PAGE_SIZES = tuple(1 << b for b in range(9, 17))


class SQLiteStoreSpec(_Spec):
    """The embedded default: one SQLite file (``<root>/online.db`` when ``path`` is None; a relative
    ``path`` is relative to the larder root)."""

    type: Literal["sqlite"] = "sqlite"
    path: str | None = None
    #: bytes per page of a new store file (a power of two, 512-65536; None: 16384). An existing file
    #: keeps its page size, and asking it for another one is an error.
    page_size: int | None = None

    @field_validator("page_size")
    @classmethod
    def _power_of_two(cls, value: int | None) -> int | None:
        if value is not None and value not in SQLITE_PAGE_SIZES:
            raise ValueError(f"page_size must be a power of two from 512 to 65536, got {value}")
        return value


class DynamoDBStoreSpec(_Spec):
    """Amazon DynamoDB. One DynamoDB table per feature table, named ``table_prefix + full name``
    (dots replaced by ``__``) unless ``table_name`` is given (then only one feature table may be
    published to this spec)."""

    type: Literal["dynamodb"] = "dynamodb"
    region: str | None = None
    table_name: str | None = None
    table_prefix: str = "larder__"
    endpoint_url: str | None = None
    ttl: timedelta | None = None
    consistent_reads: bool = False
    max_workers: int = Field(default=4, ge=1, le=64)
    max_retries: int = Field(default=8, ge=0, le=50)
    #: "conditional": one conditional PutItem per row, exact with concurrent writers; "batch":
    #: BatchWriteItem of the rows newer than the stored ones, exact with one writer per table.
    write_mode: Literal["conditional", "batch"] = "conditional"


class RedisStoreSpec(_Spec):
    """Redis: one hash per entity key, under ``key_prefix``."""

    type: Literal["redis"] = "redis"
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "larder"
    ttl: timedelta | None = None


OnlineStoreSpec = Annotated[
    SQLiteStoreSpec | DynamoDBStoreSpec | RedisStoreSpec, Field(discriminator="type")
]


def AmazonDynamoDBSpec(  # noqa: N802 - mirrors the Databricks class name
    *,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    table_name: str | None = None,
    read_secret_prefix: str | None = None,
    write_secret_prefix: str | None = None,
    ttl: timedelta | None = None,
    endpoint_url: str | None = None,
    **options: Any,
) -> DynamoDBStoreSpec:
    """The Databricks-style constructor: ``AmazonDynamoDBSpec(region=..., table_name=..., ttl=...)``.

    Databricks' secret-scope options (``read_secret_prefix``, ``write_secret_prefix``) are accepted
    and ignored: larder takes credentials from boto3's default chain, and refuses explicit keys
    (``access_key_id``, ``secret_access_key``, ``session_token``) with a :class:`ConfigError`. Other
    keyword arguments are :class:`DynamoDBStoreSpec` options (``table_prefix``, ``consistent_reads``...).
    """
    given = {"access_key_id": access_key_id, "secret_access_key": secret_access_key, "session_token": session_token}
    secrets = sorted(k for k, v in given.items() if v is not None)
    if secrets:
        raise ConfigError(
            f"AmazonDynamoDBSpec: larder does not take credentials ({secrets}); they come from boto3's default "
            "chain (environment, shared config, instance role). Remove them from the spec."
        )
    try:
        return DynamoDBStoreSpec(
            region=region, table_name=table_name, endpoint_url=endpoint_url, ttl=ttl, **options
        )
    except ValidationError as exc:
        raise ConfigError(f"AmazonDynamoDBSpec: invalid options: {exc.errors()[0]['loc']}: "
                          f"{exc.errors()[0]['msg']}. See DynamoDBStoreSpec for the accepted options.") from exc



_SPEC_ADAPTER: TypeAdapter[Any] = TypeAdapter(OnlineStoreSpec)


def parse_spec(value: Any) -> Any:
    """Validate a spec given as a spec object or a mapping (``{"type": "redis", ...}``)."""
    if isinstance(value, (SQLiteStoreSpec, DynamoDBStoreSpec, RedisStoreSpec)):
        return value
    try:
        return _SPEC_ADAPTER.validate_python(value)
    except ValidationError as exc:
        raise ConfigError(
            f"Invalid online store spec {value!r}: {exc.errors()[0]['msg']}. Give a SQLiteStoreSpec, "
            "DynamoDBStoreSpec or RedisStoreSpec, or a mapping with a 'type' of sqlite, dynamodb or redis."
        ) from exc


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def redacted_spec(spec: Any) -> dict[str, Any]:
    """The spec as JSON-able dict, without credentials (a Redis URL loses its user and password)."""
    data: dict[str, Any] = spec.model_dump(mode="json")
    if "url" in data and isinstance(data["url"], str):
        data["url"] = _redact_url(data["url"])
    return data


def sqlite_path(spec: Any, root: Path) -> Path:
    """A SQLite store's file: ``path`` (relative paths are relative to the larder root), else
    ``<root>/online.db``."""
    if not spec.path:
        return Path(root) / "online.db"
    return (Path(root) / Path(spec.path).expanduser()).resolve()


def store_key(spec: Any, root: Path) -> str:
    """A stable identity of the place a spec points to (type and location)."""
    if spec.type == "sqlite":
        return f"sqlite:{sqlite_path(spec, root)}"
    if spec.type == "dynamodb":
        return (f"dynamodb:{spec.endpoint_url or ''}|{spec.region or ''}|"
                f"{spec.table_name or ''}|{spec.table_prefix}")
    if spec.type == "redis":
        return f"redis:{_redact_url(spec.url)}|{spec.key_prefix}"
    raise ConfigError(f"Unknown online store type {spec.type!r}.")  # pragma: no cover - pydantic forbids
