"""``FeatureLookup``: which features of which table join a training set, and on which keys."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import pandas as pd

from larder.errors import FeatureLookupError
from larder.names import parse_name

_log = logging.getLogger(__name__)


def _names(value: str | Sequence[str] | None, *, what: str, table: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, (str, Sequence)):
        raise FeatureLookupError(
            f"FeatureLookup({table!r}): {what} must be a column name or a list of column names, got "
            f"{type(value).__name__} {value!r}."
        )
    items = [value] if isinstance(value, str) else list(value)
    for v in items:
        if not isinstance(v, str) or not v:
            raise FeatureLookupError(
                f"FeatureLookup({table!r}): {what} must be a column name or a list of column names, got {v!r}."
            )
    if len(set(items)) != len(items):
        raise FeatureLookupError(f"FeatureLookup({table!r}): {what} {items} lists a column twice.")
    return items


def _mapping(value: Mapping[str, Any] | None, *, what: str, table: str, example: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise FeatureLookupError(
            f"FeatureLookup({table!r}): {what} must be a dict such as {example}, got {type(value).__name__} "
            f"{value!r}."
        )
    return dict(value)


class FeatureLookup:
    """Features to join from one feature table, matched on the caller's key (and time) columns.

    Parameters
    ----------
    table_name:
        The feature table (``name``, ``schema.name`` or ``catalog.schema.name``).
    lookup_key:
        Column(s) of the training DataFrame matching the table's primary keys **in order**, without its
        timestamp key. A single name or a list.
    feature_names:
        Features to take; ``None`` takes every column that is not a primary key (as of the moment the
        training set or feature spec is created).
    rename_outputs:
        ``{feature name: output column name}``.
    timestamp_lookup_key:
        Column of the training DataFrame holding each row's point in time, for a time-series table: the
        feature row used is the latest with timestamp ``<=`` this one. Naive timestamps mean UTC.
    lookback_window:
        How far back that row may be (a ``timedelta``); ``timedelta(0)`` accepts only an exact timestamp
        match. ``None``: no limit.
    default_values:
        ``{output name: value}`` used when no feature row matches (the renamed name when renamed).
    allow_latest_value:
        Look up a time-series table *without* ``timestamp_lookup_key``, taking each key's latest row. Off
        by default, because for training this usually leaks future values into past rows.
    feature_name, output_name:
        Databricks' deprecated single-feature form: ``feature_name="q"`` is ``feature_names=["q"]`` and
        ``output_name="quality"`` is ``rename_outputs={"q": "quality"}``. Accepted with a warning.

    Examples
    --------
    >>> from datetime import timedelta
    >>> lk = FeatureLookup("houses", "Id", feature_names=["OverallQual"],
    ...                    rename_outputs={"OverallQual": "quality"}, default_values={"quality": 5})
    >>> lk.lookup_key, lk.get_output_name("OverallQual")
    (['Id'], 'quality')
    """

    def __init__(
        self,
        table_name: str,
        lookup_key: str | Sequence[str],
        feature_names: str | Sequence[str] | None = None,
        rename_outputs: Mapping[str, str] | None = None,
        timestamp_lookup_key: str | Sequence[str] | None = None,
        lookback_window: timedelta | None = None,
        default_values: Mapping[str, Any] | None = None,
        *,
        allow_latest_value: bool = False,
        feature_name: str | None = None,
        output_name: str | None = None,
    ) -> None:
        if not isinstance(table_name, str):
            raise FeatureLookupError(
                f"FeatureLookup: table_name must be a table name such as 'main.default.houses', got "
                f"{type(table_name).__name__} {table_name!r}."
            )
        self.table_name = table_name
        self._feature_name_deprecated = feature_name
        self._output_name_deprecated = output_name
        if feature_name is not None:
            if feature_names is not None:
                raise FeatureLookupError(
                    f"FeatureLookup({table_name!r}): use either feature_names or the deprecated feature_name, "
                    "not both."
                )
            _log.warning("FeatureLookup(%r): the feature_name parameter is deprecated; use feature_names=[%r].",
                         table_name, feature_name)
            feature_names = [feature_name]
        if output_name is not None:
            names = [feature_names] if isinstance(feature_names, str) else list(feature_names or [])
            if len(names) != 1:
                raise FeatureLookupError(
                    f"FeatureLookup({table_name!r}): output_name renames a single feature; give exactly one "
                    f"feature (feature_name= or feature_names=[...]), or use rename_outputs={{feature: name}}."
                )
            if rename_outputs:
                raise FeatureLookupError(
                    f"FeatureLookup({table_name!r}): use either rename_outputs or the deprecated output_name, "
                    "not both."
                )
            _log.warning("FeatureLookup(%r): the output_name parameter is deprecated; use "
                         "rename_outputs={%r: %r}.", table_name, names[0], output_name)
            rename_outputs = {names[0]: output_name}
        parse_name(table_name)
        keys = _names(lookup_key, what="lookup_key", table=table_name)
        if not keys:
            raise FeatureLookupError(f"FeatureLookup({table_name!r}): lookup_key must name at least one column.")
        self.lookup_key: list[str] = keys
        self.feature_names: list[str] | None = _names(feature_names, what="feature_names", table=table_name)
        if self.feature_names is not None and not self.feature_names:
            raise FeatureLookupError(
                f"FeatureLookup({table_name!r}): feature_names is empty; pass None to take every feature."
            )
        renames = _mapping(rename_outputs, what="rename_outputs", table=table_name,
                           example="{'feature': 'output_name'}")
        for k, v in renames.items():
            if not isinstance(k, str) or not isinstance(v, str) or not v:
                raise FeatureLookupError(
                    f"FeatureLookup({table_name!r}): rename_outputs must map feature names to new column "
                    f"names (non-empty strings), got {k!r}: {v!r}."
                )
        self.rename_outputs: dict[str, str] = renames
        ts = _names(timestamp_lookup_key, what="timestamp_lookup_key", table=table_name)
        if ts is not None and len(ts) != 1:
            raise FeatureLookupError(
                f"FeatureLookup({table_name!r}): timestamp_lookup_key must be one column, got {ts}."
            )
        self.timestamp_lookup_key: str | None = ts[0] if ts else None
        if lookback_window is not None:
            if isinstance(lookback_window, pd.Timedelta):
                lookback_window = lookback_window.to_pytimedelta()
            if not isinstance(lookback_window, timedelta):
                raise FeatureLookupError(
                    f"FeatureLookup({table_name!r}): lookback_window must be a datetime.timedelta, got "
                    f"{type(lookback_window).__name__} {lookback_window!r}."
                )
            if lookback_window < timedelta(0):
                raise FeatureLookupError(
                    f"FeatureLookup({table_name!r}): lookback_window must not be negative, got {lookback_window}."
                )
        self.lookback_window: timedelta | None = lookback_window
        defaults = _mapping(default_values, what="default_values", table=table_name,
                            example="{'output_name': 0}")
        for k in defaults:
            if not isinstance(k, str):
                raise FeatureLookupError(
                    f"FeatureLookup({table_name!r}): default_values keys are output column names, got {k!r}."
                )
        self.default_values: dict[str, Any] = defaults
        self.allow_latest_value = bool(allow_latest_value)

    @property
    def full_table_name(self) -> str:
        return parse_name(self.table_name).full

    def get_output_name(self, feature: str) -> str:
        """The output column of ``feature`` (its renamed name, or its own)."""
        return self.rename_outputs.get(feature, feature)

    @property
    def feature_name(self) -> str | None:
        """The deprecated single feature name, when the lookup was made with ``feature_name=``."""
        return self._feature_name_deprecated

    @property
    def output_name(self) -> str | None:
        """Databricks' deprecated ``output_name``: the one output's name when the lookup was made with
        ``output_name=`` (else its ``feature_name``). Use :meth:`get_output_name` for any feature."""
        return self._output_name_deprecated or self._feature_name_deprecated

    def __repr__(self) -> str:
        parts = [f"table_name={self.table_name!r}", f"lookup_key={self.lookup_key!r}"]
        for attr in ("feature_names", "rename_outputs", "timestamp_lookup_key", "lookback_window", "default_values"):
            value = getattr(self, attr)
            if value or (attr == "lookback_window" and value is not None):
                parts.append(f"{attr}={value!r}")
        if self.allow_latest_value:
            parts.append("allow_latest_value=True")
        return f"FeatureLookup({', '.join(parts)})"


__all__ = ["FeatureLookup"]
