"""``create_stream`` / ``get_stream`` / ``list_streams`` / ``update_stream`` / ``delete_stream``:
stream definitions in the catalog (:class:`~larder.catalog.streams.StreamRecord`)."""

from __future__ import annotations

import builtins
import uuid
from typing import Any

import pyarrow as pa
from sqlalchemy import select

from larder.catalog.base import current_user, named_record, utcnow
from larder.catalog.streams import StreamRecord
from larder.context import Context
from larder.errors import StreamError, TableNotFoundError
from larder.names import parse_name
from larder.offline.tables import TableService
from larder.streams import config as cfg
from larder.streams.config import IngestionDestination, Stream


def stream_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise StreamError(f"A stream name must be a non-empty string, got {name!r}.")
    return parse_name(name.strip(), kind="stream").full


def _record_stream(rec: StreamRecord) -> Stream:
    return Stream.from_dict(rec.name, rec.definition, description=rec.description, creator=rec.creator,
                            create_time=rec.created_at, update_time=rec.updated_at)


class StreamService:
    """Stream definitions; :mod:`larder.streams.consumer` runs them."""

    def __init__(self, ctx: Context, tables: TableService) -> None:
        self.ctx = ctx
        self.tables = tables

    def _check(self, stream: Stream) -> Stream:
        """Check a definition against its destination table (which is resolved to its full name)."""
        from larder.streams.consumer import apply_filter

        dest = parse_name(stream.destination).full
        try:
            ft = self.tables.get_table(dest)
        except TableNotFoundError as exc:
            raise StreamError(f"Stream {stream.name!r}: its destination table {dest!r} does not exist. Create it "
                              "with fe.create_table(name=..., primary_keys=[...], schema=...) first.") from exc
        stream.ingestion_config.ingestion_destination = IngestionDestination(delta_table_name=ft.name)
        schema, paths = cfg.columns(stream)
        missing = [k for k in ft.primary_keys if k not in schema.names]
        if missing:
            raise StreamError(f"Stream {stream.name!r}: its events have no column for primary key(s) {missing} of "
                              f"table {ft.name!r} (event columns: {schema.names}). Add them to the payload or key "
                              "schema (and do not exclude them).")
        for col in stream.ingestion_config.deduplication_columns or []:
            if col not in paths and col not in paths.values():
                raise StreamError(f"Stream {stream.name!r}: deduplication column {col!r} is not an event column "
                                  f"({sorted(paths.values())}).")
        if stream.record_type_filter is not None:
            if not isinstance(stream.record_type_filter, str) or not stream.record_type_filter.strip():
                raise StreamError(f"Stream {stream.name!r}: record_type_filter must be a SQL predicate string.")
            apply_filter(stream, pa.Table.from_pylist([], schema=schema), paths)  # a bad predicate fails here
        return stream

    def create(self, *, name: str, source_config: Any, connection_config: Any, schema_config: Any,
               ingestion_config: Any, record_type_filter: str | None = None,
               excluded_columns: list[str] | None = None, description: str | None = None) -> Stream:
        full = stream_name(name)
        stream = Stream(
            name=full, source_config=cfg.source_config(full, source_config),
            connection_config=cfg.connection_config(full, connection_config),
            schema_config=cfg.schema_config(full, schema_config),
            ingestion_config=cfg.ingestion_config(full, ingestion_config),
            description=description, record_type_filter=record_type_filter,
            excluded_columns=list(excluded_columns) if excluded_columns is not None else None)
        self._check(stream)
        now = utcnow()
        with self.ctx.catalog.session() as s:
            if s.scalar(select(StreamRecord.id).where(StreamRecord.name == full)) is not None:
                raise StreamError(f"Stream {full!r} already exists. Delete it with fe.delete_stream(name={full!r}) "
                                  "or choose another name.")
            rec = StreamRecord(name=full, stream_id=uuid.uuid4().hex, destination=stream.destination,
                               definition=stream.to_dict(), description=description, creator=current_user(),
                               created_at=now, updated_at=now, events=0)
            s.add(rec)
            s.flush()
            return _record_stream(rec)

    def record(self, name: str) -> StreamRecord:
        full = stream_name(name)
        with self.ctx.catalog.session() as s:
            rec = named_record(s, StreamRecord, StreamRecord.name, full, lambda known: StreamError(
                f"Stream {full!r} does not exist (streams: {known or 'none'}). Create it with fe.create_stream(...)."))
            s.expunge(rec)
            return rec

    def get(self, name: str) -> Stream:
        return _record_stream(self.record(name))

    def list(self, *, catalog_name: str, schema_name: str, max_results: int = 50,
             include_schemas: bool = False) -> builtins.list[Stream]:
        for what, value in (("catalog_name", catalog_name), ("schema_name", schema_name)):
            if not isinstance(value, str) or not value.strip():
                raise StreamError(f"list_streams: {what} must be a non-empty string, got {value!r}.")
        if not isinstance(max_results, int) or max_results < 1:
            raise StreamError(f"list_streams: max_results must be a positive integer, got {max_results!r}.")
        prefix = f"{catalog_name.strip()}.{schema_name.strip()}."
        with self.ctx.catalog.session() as s:
            recs = list(s.scalars(select(StreamRecord).where(StreamRecord.name.startswith(prefix, autoescape=True))
                                  .order_by(StreamRecord.name).limit(max_results)))
            out = [_record_stream(r) for r in recs]
        if not include_schemas:  # Databricks leaves the (possibly large) schemas out of a listing
            for st in out:
                st.schema_config = cfg.StreamSchemaConfig()
        return out

    def update(self, *, name: str, schema_config: Any = None,
               excluded_columns: builtins.list[str] | None = None) -> Stream:
        if schema_config is None and excluded_columns is None:
            raise StreamError("update_stream: give schema_config, excluded_columns or both.")
        current = self.get(name)
        if schema_config is not None:
            new = cfg.schema_config(current.name, schema_config).direct_schemas
            old = current.schema_config.direct_schemas
            assert new is not None and old is not None
            # only the sides given change (Databricks' update mask)
            current.schema_config = cfg.StreamSchemaConfig(direct_schemas=cfg.DirectSchemas(
                payload_schema=new.payload_schema or old.payload_schema, key_schema=new.key_schema or old.key_schema))
        if excluded_columns is not None:
            current.excluded_columns = list(excluded_columns)
        self._check(current)
        with self.ctx.catalog.session() as s:
            rec = s.scalar(select(StreamRecord).where(StreamRecord.name == current.name))
            if rec is None:
                raise StreamError(f"Stream {current.name!r} was deleted while it was being updated.")
            rec.definition = current.to_dict()
            rec.updated_at = utcnow()
            s.flush()
            return _record_stream(rec)

    def delete(self, name: str) -> None:
        full = stream_name(name)
        with self.ctx.catalog.session() as s:
            rec = s.scalar(select(StreamRecord).where(StreamRecord.name == full))
            if rec is None:
                raise StreamError(f"Stream {full!r} does not exist.")
            s.delete(rec)


__all__ = ["StreamService", "stream_name"]
