"""``FeatureTableDefinition``: a feature table declared in code, for ``larder plan`` / ``larder apply``.

A definition holds what :meth:`~larder.FeatureEngineeringClient.create_table` needs to create an empty
table (name, keys, schema) and the metadata larder keeps about it (description, tags, column
descriptions). Rows are written by pipelines, not by the definition.

>>> t = FeatureTableDefinition(name="main.shop.transactions", primary_keys=["tx_id"],
...                            schema={"tx_id": "long", "user_id": "long", "amount": "double", "ts": "timestamp"},
...                            timeseries_column="ts", description="card transactions")
>>> t.full_name, t.primary_keys
('main.shop.transactions', ['tx_id', 'ts'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from larder.errors import ProjectError
from larder.names import parse_name
from larder.offline.tables import check_table_schema, declared_schema, key_columns


class FeatureTableDefinition:
    """A feature table as code. The arguments are ``create_table``'s.

    Parameters
    ----------
    name : the table's name (``catalog.schema.table``; a shorter name gets ``main`` / ``default``)
    primary_keys : the key column(s)
    schema : the columns: a pyarrow schema, a Spark ``StructType`` or ``{column: type}``
        (``"long"``, ``"double"``, ``"string"``, ``"timestamp"``, ...)
    timeseries_column : the event-time column, making the table a time series (part of the key)
    partition_columns : Delta partition columns
    description, tags, feature_descriptions : catalog metadata. Each one left ``None`` is not managed
        by the project (a later apply leaves it as it is); given, it is kept exactly as declared (tags
        not declared are removed, columns not in ``feature_descriptions`` lose their description).
    """

    def __init__(self, *, name: str, primary_keys: str | Sequence[str], schema: Any,
                 timeseries_column: str | None = None, partition_columns: str | Sequence[str] | None = None,
                 description: str | None = None, tags: Mapping[str, str] | None = None,
                 feature_descriptions: Mapping[str, str] | None = None) -> None:
        full = parse_name(name).full
        if schema is None:
            raise ProjectError(f"FeatureTableDefinition {full!r}: schema= is required (the table is created empty); "
                               "pass {column: type} or a pyarrow schema.")
        self._full_name = full
        self._arrow_schema = declared_schema(schema, table=full)
        pks, tss, parts = key_columns(full, primary_keys, timeseries_column, partition_columns)
        check_table_schema(full, self._arrow_schema, pks, tss, parts, feature_descriptions)
        for what, value in (("description", description),):
            if value is not None and not isinstance(value, str):
                raise ProjectError(f"FeatureTableDefinition {full!r}: {what} must be a string, got {value!r}.")
        for what, mapping in (("tags", tags), ("feature_descriptions", feature_descriptions)):
            if mapping is not None and (not isinstance(mapping, Mapping) or not all(
                    isinstance(k, str) and k and isinstance(v, str) for k, v in mapping.items())):
                raise ProjectError(f"FeatureTableDefinition {full!r}: {what} must map non-empty strings to strings, "
                                   f"got {mapping!r}.")
        self._primary_keys, self._timeseries_column, self._partition_columns = pks, (tss[0] if tss else None), parts
        self._description = description
        self._tags = dict(tags) if tags is not None else None
        self._feature_descriptions = dict(feature_descriptions) if feature_descriptions is not None else None

    @property
    def full_name(self) -> str:
        return self._full_name

    @property
    def name(self) -> str:
        return self._full_name

    @property
    def primary_keys(self) -> list[str]:
        """The primary key, the timeseries column included (as the catalog records it)."""
        return list(self._primary_keys)

    @property
    def timeseries_column(self) -> str | None:
        return self._timeseries_column

    @property
    def partition_columns(self) -> list[str]:
        return list(self._partition_columns)

    @property
    def arrow_schema(self) -> pa.Schema:
        """The table's Delta schema (normalised as create_table normalises it)."""
        return self._arrow_schema

    @property
    def description(self) -> str | None:
        return self._description

    @property
    def tags(self) -> dict[str, str] | None:
        return dict(self._tags) if self._tags is not None else None

    @property
    def feature_descriptions(self) -> dict[str, str] | None:
        return dict(self._feature_descriptions) if self._feature_descriptions is not None else None

    def columns(self) -> dict[str, str]:
        """``{column: type}`` as the catalog shows types."""
        return {f.name: str(f.type) for f in self._arrow_schema}

    def to_dict(self) -> dict[str, Any]:
        """The definition as plain data (what ``larder apply`` records and ``--json`` shows)."""
        return {"name": self._full_name, "primary_keys": self.primary_keys, "timeseries_column": self._timeseries_column,
                "partition_columns": self.partition_columns, "columns": self.columns(),
                "description": self._description, "tags": self.tags, "feature_descriptions": self.feature_descriptions}

    def __repr__(self) -> str:
        return f"FeatureTableDefinition(name={self._full_name!r}, primary_keys={self._primary_keys!r})"


__all__ = ["FeatureTableDefinition"]
