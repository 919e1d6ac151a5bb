"""Streams: Databricks' ``create_stream`` and friends, and the consumer that lands events in a feature
table exactly once (:mod:`larder.streams.consumer`). See docs/streams.md."""

from larder.streams.config import (
    DirectMtlsConfig,
    DirectSchemas,
    IngestionConfig,
    IngestionDestination,
    KafkaStreamConfig,
    KafkaSubscriptionMode,
    KinesisStreamConfig,
    RedisStreamConfig,
    SchemaConfig,
    SchemaRegistryConfig,
    Stream,
    StreamBackfillSource,
    StreamConnectionConfig,
    StreamSchemaConfig,
    StreamSourceConfig,
)
from larder.streams.sources import KafkaSource, StreamSource

__all__ = [
    "DirectMtlsConfig",
    "DirectSchemas",
    "IngestionConfig",
    "IngestionDestination",
    "KafkaSource",
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
    "StreamSource",
    "StreamSourceConfig",
]
