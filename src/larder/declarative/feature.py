"""``Feature``: a declarative feature definition (source + function + entity + timeseries column).

A feature is defined once and means the same thing everywhere: in ``compute_features`` (every source
row at its own timestamp), in training sets (each label row at its own timestamp), in ``score_batch``
and online (the request time). See ``docs/declarative-features.md``.

>>> from datetime import timedelta
>>> from larder.declarative.functions import AggregationFunction, Sum
>>> from larder.declarative.sources import DeltaTableSource
>>> from larder.declarative.windows import RollingWindow
>>> f = Feature(source=DeltaTableSource(catalog_name="main", schema_name="default", table_name="tx"),
...             function=AggregationFunction(Sum(input="amount"), RollingWindow(window_duration=timedelta(days=7))),
...             entity=["user_id"], timeseries_column="ts")
>>> f.name, f.is_registered
('amount_sum_rolling_7d', False)
"""

from __future__ import annotations

import copy
import re
from typing import Any

from larder.declarative.functions import AggregationFunction, ColumnSelection, function_from_dict
from larder.declarative.sources import DataFrameSource, DataSource, RequestSource
from larder.declarative.windows import TimeWindow
from larder.errors import FeatureDefinitionError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

FeatureFunctionKind = AggregationFunction | ColumnSelection


class Feature:
    """A declarative feature. Build it with ``Feature(...)`` and register it with
    ``FeatureEngineeringClient.register_feature``, or do both with ``create_feature``.

    Parameters
    ----------
    source : DeltaTableSource, DataFrameSource or RequestSource
    function : an AggregationFunction (operator + time window) or a ColumnSelection
    entity : the entity (key) columns of the source; required except for a RequestSource
    timeseries_column : the source's event-time column; required except for a RequestSource
    name : the feature's name (default: generated, e.g. ``amount_sum_rolling_7d``)
    description : free text
    """

    def __init__(self, *, source: DataSource, function: FeatureFunctionKind, entity: list[str] | None = None,
                 timeseries_column: str | None = None, name: str | None = None,
                 description: str | None = None) -> None:
        if isinstance(name, str):
            name = name.strip().rsplit(".", 1)[-1] or None
        if not isinstance(function, (AggregationFunction, ColumnSelection)):
            raise FeatureDefinitionError(
                f"Feature {name or '<unnamed>'!r}: function must be an AggregationFunction or a ColumnSelection, got "
                f"{type(function).__name__} {function!r}."
            )
        if not isinstance(source, DataSource):
            raise FeatureDefinitionError(
                f"Feature {name or '<unnamed>'!r}: source must be a DeltaTableSource, DataFrameSource or "
                f"RequestSource, got {type(source).__name__}."
            )
        generated = (function.default_feature_name() if isinstance(function, ColumnSelection)
                     else f"{function.inputs[0].replace('.', '_')}_{function.name}_{function.time_window}")
        self._name = name or generated
        label = f"Feature {self._name!r}"
        if not _NAME.match(self._name):
            raise FeatureDefinitionError(
                f"{label}: a feature name must start with a letter or underscore and contain only letters, digits "
                "and underscores; pass name='...'."
            )
        if isinstance(source, RequestSource):
            if entity or timeseries_column:
                raise FeatureDefinitionError(
                    f"{label}: entity and timeseries_column do not apply to a RequestSource feature (its value comes "
                    "with the request). Omit both."
                )
            if not isinstance(function, ColumnSelection):
                raise FeatureDefinitionError(f"{label}: a RequestSource feature must use a ColumnSelection.")
            if function.column not in source.field_names:
                raise FeatureDefinitionError(
                    f"{label}: column {function.column!r} is not a field of the RequestSource; its fields are "
                    f"{source.field_names}."
                )
            if name is not None and name != function.column:
                raise FeatureDefinitionError(
                    f"{label}: a RequestSource ColumnSelection feature is named after its column; use "
                    f"name={function.column!r} (or omit name)."
                )
            self._name = function.column
        else:
            if not isinstance(entity, list) or not entity:
                raise FeatureDefinitionError(
                    f"{label}: entity must be a non-empty list of the source's key columns, e.g. entity=['user_id']."
                )
            for i, col in enumerate(entity):
                if not isinstance(col, str) or not col.strip():
                    raise FeatureDefinitionError(f"{label}: entity column #{i + 1} must be a non-empty string, got {col!r}.")
            if len(set(entity)) != len(entity):
                raise FeatureDefinitionError(f"{label}: entity {entity} names a column twice.")
            if not isinstance(timeseries_column, str) or not timeseries_column.strip():
                raise FeatureDefinitionError(
                    f"{label}: timeseries_column must name the source's event-time column, e.g. timeseries_column='ts'."
                )
            if timeseries_column in entity:
                raise FeatureDefinitionError(
                    f"{label}: timeseries_column {timeseries_column!r} is also an entity column; they must differ."
                )
            if self._name in entity or self._name == timeseries_column:
                raise FeatureDefinitionError(
                    f"{label}: the feature's name collides with its entity or timeseries column; pass another name."
                )
            entity = [c.strip() for c in entity]
            timeseries_column = timeseries_column.strip()
        if description is not None and not isinstance(description, str):
            raise FeatureDefinitionError(f"{label}: description must be a string, got {type(description).__name__}.")
        self._source = source
        self._function = function
        self._entity = entity
        self._timeseries_column = timeseries_column
        self._description = description
        self._catalog_name: str | None = None
        self._schema_name: str | None = None
        self._is_registered = False

    # -- identity ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def catalog_name(self) -> str | None:
        return self._catalog_name

    @property
    def schema_name(self) -> str | None:
        return self._schema_name

    @property
    def has_full_name(self) -> bool:
        return self._catalog_name is not None and self._schema_name is not None

    @property
    def full_name(self) -> str:
        if not self.has_full_name:
            raise FeatureDefinitionError(
                f"Feature {self._name!r} has no catalog and schema yet; register it with register_feature() or "
                "create_feature()."
            )
        return f"{self._catalog_name}.{self._schema_name}.{self._name}"

    @property
    def is_registered(self) -> bool:
        return self._is_registered

    # -- definition ----------------------------------------------------------------------------
    @property
    def source(self) -> DataSource:
        return self._source

    @property
    def function(self) -> FeatureFunctionKind:
        return self._function

    @property
    def entity(self) -> list[str] | None:
        return list(self._entity) if self._entity is not None else None

    @property
    def timeseries_column(self) -> str | None:
        return self._timeseries_column

    @property
    def description(self) -> str | None:
        return self._description

    @property
    def inputs(self) -> list[str]:
        return list(self._function.inputs)

    @property
    def time_window(self) -> TimeWindow | None:
        return self._function.time_window if isinstance(self._function, AggregationFunction) else None

    @property
    def filter_condition(self) -> str | None:
        return getattr(self._source, "filter_condition", None)

    def clone(self, *, new_name: str | None = None) -> Feature:
        """An unregistered deep copy (optionally renamed), to register elsewhere."""
        out = copy.copy(self)
        out._catalog_name = out._schema_name = None
        out._is_registered = False
        if new_name is not None:
            out._name = new_name.strip()
        return out

    def _with_names(self, catalog: str, schema: str) -> Feature:
        out = copy.copy(self)
        out._catalog_name, out._schema_name = catalog, schema
        return out

    def _registered_as(self, catalog: str, schema: str) -> Feature:
        out = copy.copy(self)
        out._catalog_name, out._schema_name, out._is_registered = catalog, schema, True
        return out

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The definition as plain data (what the catalog and feature specs store)."""
        if isinstance(self._source, DataFrameSource):
            self._source.to_dict()  # raises: not storable
        return {
            "name": self._name,
            "catalog_name": self._catalog_name,
            "schema_name": self._schema_name,
            "source": self._source.to_dict(),
            "function": self._function.to_dict(),
            "entity": self.entity,
            "timeseries_column": self._timeseries_column,
            "description": self._description,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, registered: bool = False) -> Feature:
        feature = cls(source=DataSource.from_dict(d["source"]), function=function_from_dict(d["function"]),
                      entity=d.get("entity"), timeseries_column=d.get("timeseries_column"), name=d["name"],
                      description=d.get("description"))
        feature._catalog_name = d.get("catalog_name")
        feature._schema_name = d.get("schema_name")
        feature._is_registered = registered and feature.has_full_name
        return feature

    def definition_key(self) -> dict[str, Any]:
        """What makes two features compute the same values (name and description excluded)."""
        d = self.to_dict()
        return {k: d[k] for k in ("source", "function", "entity", "timeseries_column")}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Feature):
            return NotImplemented
        if isinstance(self._source, DataFrameSource) or isinstance(other._source, DataFrameSource):
            return self is other
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self._name, self._catalog_name, self._schema_name))

    def __str__(self) -> str:
        if isinstance(self._function, ColumnSelection):
            return f"{self._name}: {self._function}"
        where = f" [filter={self.filter_condition}]" if self.filter_condition else ""
        return f"{self._name}: {self._function.name}({', '.join(self.inputs)}) OVER {self._function.time_window}{where}"

    def __repr__(self) -> str:
        shown = self.full_name if self.has_full_name else self._name
        return (f"Feature(name={shown!r}, source={self._source!r}, function={self._function!r}, "
                f"entity={self._entity!r}, timeseries_column={self._timeseries_column!r})")


__all__ = ["Feature"]
