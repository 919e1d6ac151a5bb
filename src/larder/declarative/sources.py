"""Data sources of declarative features: a Delta feature table, an in-memory DataFrame, or the request.

* :class:`DeltaTableSource` names a larder feature table (``catalog_name.schema_name.table_name``), with
  an optional SQL ``filter_condition`` (a ``WHERE`` clause) and ``transformation_sql`` (a ``SELECT``
  list applied after the filter, for derived or renamed columns). Both run on DuckDB.
* :class:`DataFrameSource` wraps a pandas / pyarrow / polars (or Spark) DataFrame, for prototyping with
  ``compute_features`` and training sets; such features cannot be registered.
* :class:`RequestSource` declares values that come with the request (the training DataFrame offline,
  the request online), with a schema of :class:`FieldDefinition` objects.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from larder.errors import FeatureDefinitionError
from larder.names import parse_name


class ScalarDataType(enum.Enum):
    """Types of request fields (Databricks' ``ScalarDataType``)."""

    BOOLEAN = "BOOLEAN"
    BINARY = "BINARY"
    DATE = "DATE"
    DOUBLE = "DOUBLE"
    FLOAT = "FLOAT"
    INTEGER = "INTEGER"
    LONG = "LONG"
    SHORT = "SHORT"
    STRING = "STRING"
    TIMESTAMP = "TIMESTAMP"

    @property
    def arrow_type(self) -> pa.DataType:
        return {
            "BOOLEAN": pa.bool_(), "BINARY": pa.binary(), "DATE": pa.date32(), "DOUBLE": pa.float64(),
            "FLOAT": pa.float32(), "INTEGER": pa.int32(), "LONG": pa.int64(), "SHORT": pa.int16(),
            "STRING": pa.string(), "TIMESTAMP": pa.timestamp("us", tz="UTC"),
        }[self.value]


@dataclass(frozen=True)
class FieldDefinition:
    """One request field: a name and a :class:`ScalarDataType`."""

    name: str
    data_type: ScalarDataType

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise FeatureDefinitionError(f"FieldDefinition: name must be a non-empty string, got {self.name!r}.")
        if not isinstance(self.data_type, ScalarDataType):
            raise FeatureDefinitionError(
                f"FieldDefinition {self.name!r}: data_type must be a ScalarDataType (e.g. ScalarDataType.DOUBLE), "
                f"got {self.data_type!r}."
            )


class DataSource:
    """Base class of the sources."""

    source_type = "source"

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def from_dict(d: dict[str, Any]) -> DataSource:
        kind = d.get("type")
        if kind == "delta":
            return DeltaTableSource(catalog_name=d["catalog_name"], schema_name=d["schema_name"],
                                    table_name=d["table_name"], filter_condition=d.get("filter_condition"),
                                    transformation_sql=d.get("transformation_sql"))
        if kind == "request":
            return RequestSource(schema=[FieldDefinition(f["name"], ScalarDataType(f["data_type"]))
                                         for f in d["schema"]])
        raise FeatureDefinitionError(f"Unknown source type {kind!r} in a stored feature definition.")


def _check_sql(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise FeatureDefinitionError(f"DeltaTableSource: {name} must be a non-empty SQL string or None, got {value!r}.")
    if ";" in value:
        raise FeatureDefinitionError(f"DeltaTableSource: {name} must be one SQL expression, without ';': {value!r}.")
    return value.strip()


class DeltaTableSource(DataSource):
    """A larder feature table, optionally filtered (``filter_condition``) and transformed
    (``transformation_sql``, a ``SELECT`` list such as ``"user_id, amount * rate AS amount_usd, ts"``).

    >>> DeltaTableSource(catalog_name="main", schema_name="default", table_name="transactions").full_name()
    'main.default.transactions'
    """

    source_type = "delta"

    def __init__(self, *, catalog_name: str, schema_name: str, table_name: str, filter_condition: str | None = None,
                 transformation_sql: str | None = None) -> None:
        for what, value in (("catalog_name", catalog_name), ("schema_name", schema_name), ("table_name", table_name)):
            if not isinstance(value, str) or not value.strip():
                raise FeatureDefinitionError(f"DeltaTableSource: {what} must be a non-empty string, got {value!r}.")
        full = parse_name(f"{catalog_name.strip()}.{schema_name.strip()}.{table_name.strip()}", kind="table")
        self._catalog_name, self._schema_name, self._table_name = full.catalog, full.schema, full.name
        self._filter_condition = _check_sql(filter_condition, "filter_condition")
        self._transformation_sql = _check_sql(transformation_sql, "transformation_sql")

    @property
    def catalog_name(self) -> str:
        return self._catalog_name

    @property
    def schema_name(self) -> str:
        return self._schema_name

    @property
    def table_name(self) -> str:
        return self._table_name

    @property
    def filter_condition(self) -> str | None:
        return self._filter_condition

    @property
    def transformation_sql(self) -> str | None:
        return self._transformation_sql

    def full_name(self) -> str:
        return f"{self._catalog_name}.{self._schema_name}.{self._table_name}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "delta", "catalog_name": self._catalog_name, "schema_name": self._schema_name,
                "table_name": self._table_name, "filter_condition": self._filter_condition,
                "transformation_sql": self._transformation_sql}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeltaTableSource) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.to_dict().items()))

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in (("filter_condition", self._filter_condition),
                                                    ("transformation_sql", self._transformation_sql)) if v)
        return f"DeltaTableSource({self.full_name()!r}{extra})"


class DataFrameSource(DataSource):
    """An in-memory DataFrame (pandas, pyarrow, polars or Spark) used as a source. Not registrable."""

    source_type = "dataframe"

    def __init__(self, *, dataframe: Any, source_name: str | None = None) -> None:
        if dataframe is None:
            raise FeatureDefinitionError("DataFrameSource: dataframe must be a DataFrame, got None.")
        if source_name is not None and (not isinstance(source_name, str) or not source_name.strip()):
            raise FeatureDefinitionError(f"DataFrameSource: source_name must be a non-empty string, got {source_name!r}.")
        from larder.offline.frames import to_arrow

        self._dataframe = dataframe
        try:
            self._table = to_arrow(dataframe)
        except Exception as exc:  # any unsupported object: say what is accepted
            raise FeatureDefinitionError(
                f"DataFrameSource: dataframe must be a pandas, pyarrow or polars DataFrame, got "
                f"{type(dataframe).__name__} ({exc})."
            ) from exc
        self._source_name = source_name

    @property
    def dataframe(self) -> Any:
        return self._dataframe

    @property
    def table(self) -> pa.Table:
        """The DataFrame as Arrow (timestamps normalised to UTC microseconds)."""
        return self._table

    @property
    def source_name(self) -> str | None:
        return self._source_name

    def full_name(self) -> str:
        return self._source_name or f"dataframe_{id(self._dataframe):x}"

    def to_dict(self) -> dict[str, Any]:
        raise FeatureDefinitionError(
            "A feature with a DataFrameSource cannot be stored in the catalog; write the DataFrame to a feature "
            "table and use DeltaTableSource to register it."
        )

    def __repr__(self) -> str:
        return f"DataFrameSource(rows={self._table.num_rows}, source_name={self._source_name!r})"


class RequestSource(DataSource):
    """Values that arrive with the request (the training DataFrame offline, the request online).

    ``schema``: a list of :class:`FieldDefinition`; or ``dataframe_schema``: a Spark StructType JSON
    string or a pyarrow Schema (exactly one of them)."""

    source_type = "request"

    def __init__(self, *, schema: list[FieldDefinition] | None = None, dataframe_schema: Any = None) -> None:
        if (schema is None) == (dataframe_schema is None):
            raise FeatureDefinitionError("RequestSource: give exactly one of schema and dataframe_schema.")
        if schema is not None:
            if not isinstance(schema, list) or not schema or not all(isinstance(f, FieldDefinition) for f in schema):
                raise FeatureDefinitionError(
                    "RequestSource: schema must be a non-empty list of FieldDefinition(name, ScalarDataType....)."
                )
            fields = list(schema)
        else:
            fields = _fields_from_schema(dataframe_schema)
        names = [f.name for f in fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise FeatureDefinitionError(f"RequestSource: field names {dupes} appear more than once.")
        self._schema = fields

    @classmethod
    def from_dataframe(cls, *, dataframe: Any) -> RequestSource:
        """A RequestSource whose fields are the DataFrame's columns."""
        from larder.offline.frames import to_arrow

        return cls(dataframe_schema=to_arrow(dataframe).schema)

    @property
    def schema(self) -> list[FieldDefinition]:
        return list(self._schema)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self._schema]

    def field_type(self, name: str) -> pa.DataType:
        return next(f.data_type.arrow_type for f in self._schema if f.name == name)

    def full_name(self) -> str:
        return "request"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "request", "schema": [{"name": f.name, "data_type": f.data_type.value} for f in self._schema]}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RequestSource) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        return f"RequestSource(fields={self.field_names})"


_ARROW_TO_SCALAR = (
    (pa.types.is_boolean, "BOOLEAN"), (pa.types.is_int8, "SHORT"), (pa.types.is_int16, "SHORT"),
    (pa.types.is_int32, "INTEGER"), (pa.types.is_int64, "LONG"), (pa.types.is_float32, "FLOAT"),
    (pa.types.is_float64, "DOUBLE"), (pa.types.is_string, "STRING"), (pa.types.is_large_string, "STRING"),
    (pa.types.is_binary, "BINARY"), (pa.types.is_timestamp, "TIMESTAMP"), (pa.types.is_date, "DATE"),
)
_SPARK_TO_SCALAR = {"boolean": "BOOLEAN", "short": "SHORT", "integer": "INTEGER", "long": "LONG", "float": "FLOAT",
                    "double": "DOUBLE", "string": "STRING", "binary": "BINARY", "timestamp": "TIMESTAMP",
                    "timestamp_ntz": "TIMESTAMP", "date": "DATE"}


def _fields_from_schema(schema: Any) -> list[FieldDefinition]:
    if isinstance(schema, pa.Schema):
        out = []
        for f in schema:
            kind = next((k for test, k in _ARROW_TO_SCALAR if test(f.type)), None)
            if kind is None:
                raise FeatureDefinitionError(f"RequestSource: field {f.name!r} has unsupported type {f.type}.")
            out.append(FieldDefinition(f.name, ScalarDataType(kind)))
        return out
    if isinstance(schema, str):
        try:
            parsed = json.loads(schema)
            fields = parsed["fields"]
            return [FieldDefinition(f["name"], ScalarDataType(_SPARK_TO_SCALAR[f["type"]])) for f in fields]
        except (ValueError, KeyError, TypeError) as exc:
            raise FeatureDefinitionError(
                f"RequestSource: dataframe_schema must be a Spark StructType JSON with scalar fields ({exc})."
            ) from exc
    raise FeatureDefinitionError(
        f"RequestSource: dataframe_schema must be a StructType JSON string or a pyarrow Schema, got "
        f"{type(schema).__name__}."
    )


__all__ = ["DataFrameSource", "DataSource", "DeltaTableSource", "FieldDefinition", "RequestSource", "ScalarDataType"]
