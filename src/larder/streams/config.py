"""A stream's definition, in the shape of Databricks' ``create_stream`` arguments.

Databricks defines a *Stream* (a Unity Catalog entity) by where the events come from
(``source_config``), how to reach it (``connection_config``), what the events hold (``schema_config``)
and where they land (``ingestion_config``). larder keeps those argument classes and names; what they
mean here:

* ``source_config``: :class:`RedisStreamConfig` (Redis Streams keys, larder's own) or
  :class:`KafkaStreamConfig` (a topic, through the ``kafka`` extra). Kinesis is refused.
* ``connection_config``: :class:`StreamConnectionConfig` with ``url``: ``redis://host:port/db`` for
  Redis, the bootstrap servers (``host:port,host:port``) for Kafka. ``${NAME}`` in it is read from the
  environment when the consumer connects, so a password never reaches the catalog.
* ``schema_config``: :class:`DirectSchemas` holding JSON schemas (:class:`SchemaConfig`) of the event
  payload (``value``) and optionally of its key (``key``). Each top-level property becomes a column of
  the destination table, named by its leaf name; JSON types map to Arrow types (see
  :func:`arrow_schema`).
* ``ingestion_config``: :class:`IngestionConfig` whose ``ingestion_destination.delta_table_name`` is an
  existing larder feature table; the consumer writes every event there through ``write_table``'s
  validation, exactly once (see :mod:`larder.streams.consumer`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from larder.errors import StreamError


@dataclass
class KafkaSubscriptionMode:
    """Which Kafka topic(s) to read; larder reads one topic, named by ``subscribe``."""

    subscribe: str | None = None
    subscribe_pattern: str | None = None
    assign: str | None = None


@dataclass
class KafkaStreamConfig:
    """A Kafka source (Databricks' class). ``extra_options`` go to the Kafka client's configuration."""

    subscription_mode: KafkaSubscriptionMode | None = None
    extra_options: dict[str, str] | None = None


@dataclass
class KinesisStreamConfig:
    """Databricks' Kinesis source: accepted for import compatibility, refused by ``create_stream``."""

    stream_names: Any = None
    extra_options: dict[str, str] | None = None


@dataclass
class RedisStreamConfig:
    """larder's Redis Streams source: the stream keys to read (``XREAD``), in order."""

    stream_keys: list[str] = field(default_factory=list)


@dataclass
class StreamSourceConfig:
    """Exactly one of the platform configs (Databricks' wrapper; larder adds ``redis_stream_config``)."""

    kafka_stream_config: KafkaStreamConfig | None = None
    kinesis_stream_config: KinesisStreamConfig | None = None
    redis_stream_config: RedisStreamConfig | None = None


@dataclass
class DirectMtlsConfig:
    """Databricks' direct mTLS settings: refused by larder (give ``StreamConnectionConfig(url=...)``)."""

    mtls_config: Any = None


@dataclass
class StreamConnectionConfig:
    """How to reach the platform: ``url`` (larder) or a Unity Catalog connection name (refused)."""

    uc_connection_name: str | None = None
    direct_mtls_config: DirectMtlsConfig | None = None
    url: str | None = None


@dataclass
class SchemaConfig:
    """One schema: a JSON schema (``{"type": "object", "properties": {...}}``) as a string."""

    json_schema: str | None = None


@dataclass
class DirectSchemas:
    """The payload (``value``) and key schemas, given inline."""

    payload_schema: SchemaConfig | None = None
    key_schema: SchemaConfig | None = None


@dataclass
class SchemaRegistryConfig:
    """Databricks' schema registry settings: refused by larder (give :class:`DirectSchemas`)."""

    uc_connection: str | None = None
    api_secret_ref: Any = None
    payload_schema_locator: Any = None
    key_schema_locator: Any = None


@dataclass
class StreamSchemaConfig:
    """Databricks' wrapper: ``direct_schemas`` or ``schema_registry_config``."""

    direct_schemas: DirectSchemas | None = None
    schema_registry_config: SchemaRegistryConfig | None = None


@dataclass
class IngestionDestination:
    """The larder feature table the events are written to."""

    delta_table_name: str | None = None


@dataclass
class StreamBackfillSource:
    """Databricks' backfill table: recorded, not read by larder's consumer."""

    delta_table_name: str | None = None


@dataclass
class IngestionConfig:
    """Where events land; ``deduplication_columns`` (leaf or ``value.``/``key.`` paths) keep the last
    event of each combination within a consumed batch."""

    ingestion_destination: IngestionDestination | None = None
    backfill_source: StreamBackfillSource | None = None
    deduplication_columns: list[str] | None = None


@dataclass
class Stream:
    """A stream as ``get_stream`` returns it."""

    name: str
    source_config: StreamSourceConfig
    connection_config: StreamConnectionConfig
    schema_config: StreamSchemaConfig
    ingestion_config: IngestionConfig
    description: str | None = None
    record_type_filter: str | None = None
    excluded_columns: list[str] | None = None
    creator: str | None = None
    create_time: Any = None
    update_time: Any = None

    @property
    def destination(self) -> str:
        """The full name of the destination feature table."""
        dest = self.ingestion_config.ingestion_destination
        assert dest is not None and dest.delta_table_name
        return dest.delta_table_name

    @property
    def platform(self) -> str:
        """``redis`` or ``kafka``."""
        return "redis" if self.source_config.redis_stream_config is not None else "kafka"

    def to_dict(self) -> dict[str, Any]:
        """The definition as JSON-able data (what the catalog stores)."""
        return {"source_config": asdict(self.source_config), "connection_config": asdict(self.connection_config),
                "schema_config": asdict(self.schema_config), "ingestion_config": asdict(self.ingestion_config),
                "record_type_filter": self.record_type_filter, "excluded_columns": self.excluded_columns}

    @staticmethod
    def from_dict(name: str, d: dict[str, Any], **extra: Any) -> Stream:
        src, conn, sch, ing = d["source_config"], d["connection_config"], d["schema_config"], d["ingestion_config"]
        kafka = src.get("kafka_stream_config")
        redis = src.get("redis_stream_config")
        direct = sch.get("direct_schemas") or {}
        return Stream(
            name=name,
            source_config=StreamSourceConfig(
                kafka_stream_config=None if kafka is None else KafkaStreamConfig(
                    subscription_mode=KafkaSubscriptionMode(**(kafka.get("subscription_mode") or {})),
                    extra_options=kafka.get("extra_options")),
                redis_stream_config=None if redis is None else RedisStreamConfig(list(redis["stream_keys"]))),
            connection_config=StreamConnectionConfig(uc_connection_name=conn.get("uc_connection_name"),
                                                     url=conn.get("url")),
            schema_config=StreamSchemaConfig(direct_schemas=DirectSchemas(
                payload_schema=SchemaConfig(**direct["payload_schema"]) if direct.get("payload_schema") else None,
                key_schema=SchemaConfig(**direct["key_schema"]) if direct.get("key_schema") else None)),
            ingestion_config=IngestionConfig(
                ingestion_destination=IngestionDestination(**ing["ingestion_destination"]),
                backfill_source=StreamBackfillSource(**ing["backfill_source"]) if ing.get("backfill_source") else None,
                deduplication_columns=ing.get("deduplication_columns")),
            record_type_filter=d.get("record_type_filter"), excluded_columns=d.get("excluded_columns"), **extra,
        )


# -- normalising create_stream's arguments ---------------------------------------------------------
def source_config(name: str, value: Any) -> StreamSourceConfig:
    if isinstance(value, (KafkaStreamConfig, RedisStreamConfig, KinesisStreamConfig)):
        slot = {KafkaStreamConfig: "kafka_stream_config", RedisStreamConfig: "redis_stream_config",
                KinesisStreamConfig: "kinesis_stream_config"}[type(value)]
        wrapped = StreamSourceConfig()
        setattr(wrapped, slot, value)
        value = wrapped
    if not isinstance(value, StreamSourceConfig):
        raise StreamError(f"Stream {name!r}: source_config must be a RedisStreamConfig, KafkaStreamConfig or "
                          f"StreamSourceConfig, got {type(value).__name__}.")
    given = [k for k in ("kafka_stream_config", "kinesis_stream_config", "redis_stream_config")
             if getattr(value, k) is not None]
    if len(given) != 1:
        raise StreamError(f"Stream {name!r}: source_config must set exactly one platform config, got {given or 'none'}.")
    if value.kinesis_stream_config is not None:
        raise StreamError(f"Stream {name!r}: larder cannot read Kinesis. Use RedisStreamConfig(stream_keys=[...]) "
                          "or KafkaStreamConfig(...).")
    if value.redis_stream_config is not None:
        keys = value.redis_stream_config.stream_keys
        if isinstance(keys, str):
            value.redis_stream_config.stream_keys = keys = [keys]
        if not keys or not all(isinstance(k, str) and k for k in keys) or len(set(keys)) != len(keys):
            raise StreamError(f"Stream {name!r}: RedisStreamConfig.stream_keys must be distinct non-empty strings, "
                              f"got {keys!r}.")
    if value.kafka_stream_config is not None:
        mode = value.kafka_stream_config.subscription_mode
        if mode is None or not mode.subscribe or mode.subscribe_pattern or mode.assign:
            raise StreamError(f"Stream {name!r}: larder reads one Kafka topic: give "
                              "KafkaStreamConfig(subscription_mode=KafkaSubscriptionMode(subscribe='<topic>')).")
    return value


def connection_config(name: str, value: Any) -> StreamConnectionConfig:
    if isinstance(value, DirectMtlsConfig) or (isinstance(value, StreamConnectionConfig)
                                                and value.direct_mtls_config is not None):
        raise StreamError(f"Stream {name!r}: larder does not take DirectMtlsConfig; give "
                          "StreamConnectionConfig(url=...) (TLS options of Kafka go in extra_options).")
    if not isinstance(value, StreamConnectionConfig):
        raise StreamError(f"Stream {name!r}: connection_config must be a StreamConnectionConfig, "
                          f"got {type(value).__name__}.")
    if not value.url:
        hint = f" (uc_connection_name={value.uc_connection_name!r} names a Unity Catalog connection, which " \
               "larder has not)" if value.uc_connection_name else ""
        raise StreamError(f"Stream {name!r}: connection_config needs url= (redis://host:port/db for Redis, "
                          f"host:port[,host:port] for Kafka){hint}.")
    return StreamConnectionConfig(uc_connection_name=value.uc_connection_name, url=value.url)


def schema_config(name: str, value: Any) -> StreamSchemaConfig:
    if isinstance(value, SchemaRegistryConfig) or (isinstance(value, StreamSchemaConfig)
                                                    and value.schema_registry_config is not None):
        raise StreamError(f"Stream {name!r}: larder has no schema registry; give the JSON schemas inline with "
                          "DirectSchemas(payload_schema=SchemaConfig(json_schema=...)).")
    if isinstance(value, DirectSchemas):
        value = StreamSchemaConfig(direct_schemas=value)
    if not isinstance(value, StreamSchemaConfig) or value.direct_schemas is None:
        raise StreamError(f"Stream {name!r}: schema_config must be DirectSchemas or StreamSchemaConfig("
                          f"direct_schemas=...), got {type(value).__name__}.")
    ds = value.direct_schemas
    if ds.payload_schema is None and ds.key_schema is None:
        raise StreamError(f"Stream {name!r}: at least one of payload_schema or key_schema must be given in "
                          "DirectSchemas.")
    for side, sc in (("payload_schema", ds.payload_schema), ("key_schema", ds.key_schema)):
        if sc is not None:
            arrow_schema(sc, stream=name, side=side)  # validates
    return value


def ingestion_config(name: str, value: Any) -> IngestionConfig:
    if not isinstance(value, IngestionConfig):
        raise StreamError(f"Stream {name!r}: ingestion_config must be an IngestionConfig, got {type(value).__name__}.")
    dest = value.ingestion_destination
    if dest is None or not isinstance(dest.delta_table_name, str) or not dest.delta_table_name.strip():
        raise StreamError(f"Stream {name!r}: ingestion_config.ingestion_destination.delta_table_name must name the "
                          "feature table the events are written to.")
    return value


# -- JSON schema -> Arrow ----------------------------------------------------------------------------
_SCALARS = {"integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_()}


def arrow_schema(sc: SchemaConfig, *, stream: str, side: str) -> pa.Schema:
    """The columns a JSON schema defines: each top-level property, typed ``integer`` -> int64,
    ``number`` -> float64, ``boolean`` -> bool, ``string`` -> string (``format: date-time`` -> timestamp
    in UTC, ``format: date`` -> date). Nested objects and arrays are refused.

    >>> arrow_schema(SchemaConfig('{"type": "object", "properties": {"id": {"type": "integer"}}}'),
    ...              stream="s", side="payload_schema")
    id: int64
    """
    where = f"Stream {stream!r}: {side}"
    try:
        doc = json.loads(sc.json_schema or "")
    except (TypeError, ValueError) as exc:
        raise StreamError(f"{where}.json_schema is not valid JSON: {exc}") from exc
    props = doc.get("properties") if isinstance(doc, dict) else None
    if not isinstance(props, dict) or not props:
        raise StreamError(f"{where}.json_schema must be an object schema with properties: "
                          '{"type": "object", "properties": {"user_id": {"type": "integer"}, ...}}.')
    fields = []
    for col, node in props.items():
        kind = node.get("type") if isinstance(node, dict) else None
        if isinstance(kind, list):  # ["integer", "null"]
            kinds = [k for k in kind if k != "null"]
            kind = kinds[0] if len(kinds) == 1 else None
        if kind in _SCALARS:
            fields.append(pa.field(col, _SCALARS[kind]))
        elif kind == "string":
            fmt = node.get("format")
            fields.append(pa.field(col, pa.timestamp("us", tz="UTC") if fmt == "date-time"
                                   else pa.date32() if fmt == "date" else pa.string()))
        else:
            raise StreamError(f"{where}: property {col!r} has type {kind!r}; larder maps integer, number, boolean "
                              "and string (format date-time or date) properties to columns.")
    return pa.schema(fields)


def columns(stream: Stream) -> tuple[pa.Schema, dict[str, str]]:
    """The event columns (payload's then key's, excluded ones dropped) and each one's path
    (``value.<name>`` / ``key.<name>``)."""
    ds = stream.schema_config.direct_schemas
    assert ds is not None
    out: list[pa.Field] = []
    paths: dict[str, str] = {}
    for side, prefix, sc in (("payload_schema", "value", ds.payload_schema), ("key_schema", "key", ds.key_schema)):
        if sc is None:
            continue
        for f in arrow_schema(sc, stream=stream.name, side=side):
            if f.name in paths:
                raise StreamError(f"Stream {stream.name!r}: column {f.name!r} is in both the payload and the key "
                                  "schema; rename one of them.")
            paths[f.name] = f"{prefix}.{f.name}"
            out.append(f)
    excluded = set(stream.excluded_columns or [])
    unknown = sorted(excluded - set(paths.values()) - set(paths))
    if unknown:
        raise StreamError(f"Stream {stream.name!r}: excluded_columns {unknown} are not in its schemas; the columns "
                          f"are {sorted(paths.values())}.")
    kept = [f for f in out if f.name not in excluded and paths[f.name] not in excluded]
    return pa.schema(kept), {f.name: paths[f.name] for f in kept}


__all__ = [
    "DirectMtlsConfig",
    "DirectSchemas",
    "IngestionConfig",
    "IngestionDestination",
    "KafkaStreamConfig",
    "KafkaSubscriptionMode",
    "KinesisStreamConfig",
    "RedisStreamConfig",
    "SchemaConfig",
    "SchemaRegistryConfig",
    "Stream",
    "StreamBackfillSource",
    "StreamConnectionConfig",
    "StreamSchemaConfig",
    "StreamSourceConfig",
    "arrow_schema",
    "columns",
]
