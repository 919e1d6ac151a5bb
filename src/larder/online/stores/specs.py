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
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from larder.errors import ConfigError
from larder.redaction import redact_mapping, redact_text, redact_url


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def store_type(self) -> str:
        """Databricks' name of ``type`` (``"sqlite"``, ``"dynamodb"``, ``"redis"``)."""
        return str(getattr(self, "type", ""))

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(f"{type(self).__name__}: {_problems(exc)}. See docs/online-stores.md for the "
                              "accepted options.") from exc


#: The base class of every store spec (``isinstance(spec, StoreSpecBase)``; Databricks' ``OnlineStoreSpec``).
StoreSpecBase = _Spec


def _problems(exc: ValidationError) -> str:
    """Pydantic's errors as one line naming each field: ``page_size: must be ...; ttl: ...``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if "input" in err:
            given = err["input"]
            shown = redact_url(given) if isinstance(given, str) else (
                redact_mapping(given, remove=False) if isinstance(given, dict) else given)
            got = "" if str(given) in msg else f" (got {shown!r})"
            parts.append(f"{where}: {redact_text(msg)}{got}")
        else:
            parts.append(f"{where}: {redact_text(msg)}")
    return "; ".join(parts)


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

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"endpoint_url {value!r} is not a URL: {exc}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"endpoint_url must be an http:// or https:// URL with a host, such as "
                f"'http://127.0.0.1:5000', got {value!r}"
            )
        return value


class RedisStoreSpec(_Spec):
    """Redis: one hash per entity key, under ``key_prefix``.

    Credentials: a user and password in ``url`` (``redis://user:pw@host:6379/0`` or ``?password=pw``)
    are used by this process but never recorded: the catalog and logged models keep the URL without
    them, and whoever opens the store from a record (a model being served, another process) reads the
    password from the environment variable named by ``password_env`` (``REDIS_PASSWORD`` by default)
    and the user name, if any, from ``REDIS_USERNAME``.
    """

    type: Literal["redis"] = "redis"
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "larder"
    ttl: timedelta | None = None
    #: environment variable holding the password when ``url`` carries none
    password_env: str = "REDIS_PASSWORD"

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"url {redact_url(value)!r} is not a URL: {exc}") from exc
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"url must start with redis://, rediss:// or unix://, got {redact_url(value)!r}")
        return value


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
    return DynamoDBStoreSpec(region=region, table_name=table_name, endpoint_url=endpoint_url, ttl=ttl, **options)



_SPEC_ADAPTER: TypeAdapter[Any] = TypeAdapter(OnlineStoreSpec)


def parse_spec(value: Any) -> Any:
    """Validate a spec given as a spec object, a mapping (``{"type": "redis", ...}``) or an open store
    (``SQLiteOnlineStore(path)``, ...: its :attr:`~larder.online.stores.base.OnlineStore.spec`)."""
    if isinstance(value, (SQLiteStoreSpec, DynamoDBStoreSpec, RedisStoreSpec)):
        return value
    from larder.online.stores.base import OnlineStore

    if isinstance(value, OnlineStore):
        spec = value.to_spec()
        if spec is None:
            raise ConfigError(
                f"The online store {type(value).__name__} cannot describe itself as a spec, so larder cannot "
                "record where it publishes. Give a SQLiteStoreSpec, DynamoDBStoreSpec or RedisStoreSpec."
            )
        return spec
    if not isinstance(value, dict):
        raise ConfigError(
            f"Invalid online store {value!r} ({type(value).__name__}): give a SQLiteStoreSpec, DynamoDBStoreSpec "
            "or RedisStoreSpec, an online store object, the name of a store in larder.yaml, or a mapping with "
            "a 'type' of sqlite, dynamodb or redis."
        )
    try:
        return _SPEC_ADAPTER.validate_python(value)
    except ValidationError as exc:
        raise ConfigError(
            f"Invalid online store spec {redact_mapping(value, remove=False)!r}: {_problems(exc)}. Give a "
            "SQLiteStoreSpec, DynamoDBStoreSpec or RedisStoreSpec, or a mapping with a 'type' of sqlite, "
            "dynamodb or redis."
        ) from exc


def redacted_spec(spec: Any) -> dict[str, Any]:
    """The spec as a JSON-able dict to record (in the catalog, in a logged model): without credentials
    (a URL loses its password and secret query parameters, see :mod:`larder.redaction`) and without
    creation-only options (a SQLite file's ``page_size``: the file has the page size it was created
    with, and a reader must not ask for another)."""
    data: dict[str, Any] = redact_mapping(spec.model_dump(mode="json"))
    if data.get("type") == "sqlite":
        data.pop("page_size", None)
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
        return f"redis:{redact_url(spec.url, remove=True)}|{spec.key_prefix}"
    raise ConfigError(f"Unknown online store type {spec.type!r}.")  # pragma: no cover - pydantic forbids
