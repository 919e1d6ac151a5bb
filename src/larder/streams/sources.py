"""``StreamSource`` and ``KafkaSource``: Databricks' stream data sources, over larder's streams.

Both name a stream created with ``create_stream`` (a ``KafkaSource`` by its plain name, as Databricks'
Kafka configs are named); their rows are the stream's destination feature table, which the consumer
(``larder stream run``) fills. ``load_df(client)`` reads them, with ``filter_condition`` and
``transformation_sql`` applied by DuckDB; :meth:`StreamSource.delta_table_source` gives the
equivalent ``DeltaTableSource`` for declarative features (larder computes features over the table
the stream lands in, not over the stream itself).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from larder.declarative.sources import DataSource, DeltaTableSource
from larder.errors import FeatureDefinitionError, StreamError
from larder.names import parse_name


def _stream_rows(client: Any, name: str, filter_condition: str | None, transformation_sql: str | None) -> Any:
    """The destination table of stream ``name`` read through ``client``, filtered and transformed."""
    stream = client.get_stream(name=name)
    df = client.read_table(name=stream.destination)
    if not filter_condition and not transformation_sql:
        return df
    import duckdb

    con = duckdb.connect()
    try:
        con.register("stream_rows", df)
        sql = f"SELECT {transformation_sql or '*'} FROM stream_rows"
        if filter_condition:
            sql += f" WHERE ({filter_condition})"
        return con.sql(sql).df()
    except duckdb.Error as exc:
        raise StreamError(f"Stream {name!r}: filter_condition / transformation_sql failed on its table "
                          f"{stream.destination!r}: {exc}") from exc
    finally:
        con.close()


def _text(value: Any, what: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise FeatureDefinitionError(f"StreamSource: {what} must be a non-empty string if given, got {value!r}.")
    return value


class StreamSource(DataSource):
    """A stream as a data source: ``full_name`` or ``catalog_name`` + ``schema_name`` + ``stream_name``.

    >>> StreamSource(catalog_name="main", schema_name="default", stream_name="clicks").full_name()
    'main.default.clicks'
    """

    source_type = "stream"

    def __init__(self, *, full_name: str | None = None, catalog_name: str | None = None,
                 schema_name: str | None = None, stream_name: str | None = None,
                 filter_condition: str | None = None, transformation_sql: str | None = None,
                 dataframe_schema: str | None = None, _skip_validation: bool = False,
                 lateness: Any = None) -> None:
        parts = [catalog_name, schema_name, stream_name]
        if not _skip_validation:
            if full_name is not None and any(p is not None for p in parts):
                raise FeatureDefinitionError("StreamSource: give full_name or catalog_name/schema_name/stream_name, not both.")
            if full_name is None and not all(p is not None for p in parts):
                raise FeatureDefinitionError("StreamSource: give full_name, or all of catalog_name, schema_name and stream_name.")
            name = full_name if full_name is not None else ".".join(str(p) for p in parts)
            if not isinstance(name, str) or len(name.strip().split(".")) != 3:
                raise FeatureDefinitionError(f"StreamSource: the name must have three parts (catalog.schema.stream), got {name!r}.")
            self._full_name: str | None = parse_name(name.strip(), kind="stream").full
        else:
            self._full_name = full_name or (".".join(parts) if all(parts) else None)  # type: ignore[arg-type]
        self._filter_condition = _text(filter_condition, "filter_condition")
        self._transformation_sql = _text(transformation_sql, "transformation_sql")
        self._dataframe_schema = _text(dataframe_schema, "dataframe_schema")
        if (transformation_sql is None) != (dataframe_schema is None):
            raise FeatureDefinitionError("StreamSource: transformation_sql and dataframe_schema are given together or not at all.")
        self._lateness = lateness

    def full_name(self) -> str | None:
        return self._full_name

    @property
    def filter_condition(self) -> str | None:
        return self._filter_condition

    @property
    def transformation_sql(self) -> str | None:
        return self._transformation_sql

    @property
    def dataframe_schema(self) -> str | None:
        return self._dataframe_schema

    @property
    def is_inaccessible(self) -> bool:
        """True only for a source built without a name (``_skip_validation``)."""
        return self._full_name is None

    def _name(self) -> str:
        if self._full_name is None:
            raise FeatureDefinitionError("StreamSource: this source has no stream name, so it cannot be read.")
        return self._full_name

    def load_df(self, spark_client: Any) -> Any:
        """The stream's rows (its destination table, filtered and transformed), read through
        ``spark_client``: a larder ``FeatureEngineeringClient`` (pandas on DuckDB, Spark on Spark)."""
        return _stream_rows(spark_client, self._name(), self._filter_condition, self._transformation_sql)

    def delta_table_source(self, client: Any) -> DeltaTableSource:
        """The ``DeltaTableSource`` over the stream's destination table, with this source's SQL."""
        dest = parse_name(client.get_stream(name=self._name()).destination)
        return DeltaTableSource(catalog_name=dest.catalog, schema_name=dest.schema, table_name=dest.name,
                                filter_condition=self._filter_condition, transformation_sql=self._transformation_sql)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "stream", "full_name": self._name(), "filter_condition": self._filter_condition,
                "transformation_sql": self._transformation_sql, "dataframe_schema": self._dataframe_schema}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StreamSource) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        return f"StreamSource(full_name={self._full_name!r})"


class KafkaSource(DataSource):
    """A Kafka stream by the name it was created under (``create_stream(name=...)``).

    >>> KafkaSource(name="main.default.trips").full_name()
    'main.default.trips'
    """

    source_type = "kafka"

    def __init__(self, *, name: str, filter_condition: str | None = None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise FeatureDefinitionError(f"KafkaSource: name must be a non-empty string, got {name!r}.")
        self._name = name.strip()
        self._filter_condition = _text(filter_condition, "filter_condition")

    @property
    def name(self) -> str:
        return self._name

    def full_name(self) -> str:
        return self._name

    @property
    def filter_condition(self) -> str | None:
        return self._filter_condition

    def load_df(self, spark_client: Any) -> Any:
        """The stream's rows (its destination table, filtered), read through a larder client."""
        return _stream_rows(spark_client, self._name, self._filter_condition, None)

    @staticmethod
    def get_columns_from_kafka_config(kafka_config: Any) -> dict[str, pa.DataType]:
        """``{"value.<field>" | "key.<field>": Arrow type}`` of a stream (``get_stream``'s result)."""
        from larder.streams.config import columns

        schema, paths = columns(kafka_config)
        return {paths[f.name]: f.type for f in schema}

    def to_dict(self) -> dict[str, Any]:
        return {"type": "kafka", "name": self._name, "filter_condition": self._filter_condition}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KafkaSource) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash((self._name, self._filter_condition))

    def __repr__(self) -> str:
        return f"KafkaSource(name={self._name!r})"


__all__ = ["KafkaSource", "StreamSource"]
