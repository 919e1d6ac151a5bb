"""Client methods: streams (Databricks' ``create_stream`` and friends) and their consumer."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from larder.context import Context
    from larder.streams.config import Stream
    from larder.streams.consumer import ConsumerStats
    from larder.streams.service import StreamService


class StreamMethods:
    """``create/get/list/update/delete_stream`` and ``run_stream`` (what ``larder stream run`` calls)."""

    _ctx: Context
    _tables: Any
    _publisher: Any

    @cached_property
    def _streams(self) -> StreamService:
        from larder.streams.service import StreamService

        return StreamService(self._ctx, self._tables)

    def create_stream(self, *, name: str, source_config: Any, connection_config: Any, schema_config: Any,
                      ingestion_config: Any, record_type_filter: str | None = None,
                      excluded_columns: list[str] | None = None, description: str | None = None) -> Stream:
        """Define a stream: events from Redis Streams (``RedisStreamConfig``) or Kafka
        (``KafkaStreamConfig``) at ``connection_config.url``, typed by the JSON schemas of
        ``schema_config``, landing in the feature table ``ingestion_config.ingestion_destination``.
        ``larder stream run NAME`` (or :meth:`run_stream`) consumes it. See docs/streams.md."""
        return self._streams.create(name=name, source_config=source_config, connection_config=connection_config,
                                    schema_config=schema_config, ingestion_config=ingestion_config,
                                    record_type_filter=record_type_filter, excluded_columns=excluded_columns,
                                    description=description)

    def get_stream(self, *, name: str) -> Stream:
        """A stream's definition."""
        return self._streams.get(name)

    def list_streams(self, *, catalog_name: str, schema_name: str, max_results: int = 50,
                     include_schemas: bool = False) -> list[Stream]:
        """Streams of ``catalog_name.schema_name``, by name (schemas only with ``include_schemas``)."""
        return self._streams.list(catalog_name=catalog_name, schema_name=schema_name, max_results=max_results,
                                  include_schemas=include_schemas)

    def update_stream(self, *, name: str, schema_config: Any = None,
                      excluded_columns: list[str] | None = None) -> Stream:
        """Change a stream's schemas (only the sides given) and/or its excluded columns (the whole
        new list); a running consumer picks the change up when restarted."""
        return self._streams.update(name=name, schema_config=schema_config, excluded_columns=excluded_columns)

    def delete_stream(self, *, name: str) -> None:
        """Delete a stream's definition (its destination table and what it holds stay)."""
        self._streams.delete(name)

    def stream_progress(self, name: str) -> dict[str, Any]:
        """How far stream ``name``'s consumer has got: ``events`` written, the Delta ``delta_version`` and
        source ``offsets`` committed with them, and the ``online_version`` / ``online_offsets`` published
        (larder's own; what ``larder stream list/show`` print)."""
        rec = self._streams.record(name)
        return {"events": rec.events, "delta_version": rec.delta_version, "offsets": dict(rec.offsets or {}),
                "online_version": rec.online_version, "online_offsets": dict(rec.online_offsets or {})}

    def run_stream(self, name: str, *, batch_size: int = 1000, max_events: int | None = None,
                   idle_timeout: float | None = None, stop: Any = None, on_batch: Any = None) -> ConsumerStats:
        """Consume stream ``name`` into its table exactly once, and online (larder's own; see
        :mod:`larder.streams.consumer`)."""
        from larder.streams.consumer import StreamConsumer

        consumer = StreamConsumer(self._streams, self._tables, self._publisher, name, batch_size=batch_size)
        return consumer.run(max_events=max_events, idle_timeout=idle_timeout, stop=stop, on_batch=on_batch)
