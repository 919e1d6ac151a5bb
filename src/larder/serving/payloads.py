"""Request bodies the feature server accepts: MLflow's scoring formats and larder's own.

* ``{"dataframe_records": [{"Id": 1}, {"Id": 2}]}``: one JSON object per row (pandas' ``records``);
* ``{"dataframe_split": {"columns": ["Id"], "data": [[1], [2]]}}``: column names and row lists
  (pandas' ``split``; an ``index`` is allowed and ignored);
* ``{"inputs": {"Id": [1, 2]}}`` (columns), ``{"inputs": [{"Id": 1}]}`` (rows) or ``{"inputs": {"Id": 1}}``
  (one row), and ``{"instances": [...]}``: MLflow's tensor formats (TensorFlow Serving's);
* ``{"keys": [...]}`` or ``{"keys": {...}}``: larder's original form, records or columns.

These are what ``mlflow models serve`` and Databricks Model and Feature Serving endpoints take, so a
client written for either works against ``larder serve``. A ``params`` object may accompany any of
them. :func:`parse_request` returns the rows as records or columns (checked for shape; the values are
checked by the lookup) and the params.
"""

from __future__ import annotations

from typing import Any

from larder.errors import FeatureLookupError

#: The keys that carry the rows, in the order they are looked for.
ROW_KEYS = ("dataframe_records", "dataframe_split", "inputs", "instances", "keys")

_FORMATS = (
    '{"dataframe_records": [{"Id": 1}]}, {"dataframe_split": {"columns": ["Id"], "data": [[1]]}}, '
    '{"inputs": {"Id": [1, 2]}} or {"keys": [{"Id": 1}]}'
)

Rows = list[dict[str, Any]] | dict[str, list[Any]]


def _records(value: Any, where: str) -> list[dict[str, Any]]:
    if not all(isinstance(r, dict) for r in value):
        raise FeatureLookupError(f'"{where}" as a list must hold one JSON object per row, e.g. [{{"Id": 1}}].')
    if not value:
        raise FeatureLookupError(f'"{where}" is empty; send at least one row, e.g. [{{"Id": 1}}].')
    return value


def _columns(value: dict[str, Any], where: str) -> dict[str, list[Any]]:
    if not value:
        raise FeatureLookupError(f'"{where}" has no columns; send at least one, e.g. {{"Id": [1, 2]}}.')
    lengths = {k: len(v) if isinstance(v, list) else -1 for k, v in value.items()}
    if any(n < 0 for n in lengths.values()) or len(set(lengths.values())) > 1:
        raise FeatureLookupError(
            f'"{where}" as columns must map each column to a list, all of one length; got lengths {lengths}.'
        )
    if not next(iter(lengths.values())):
        raise FeatureLookupError(f'"{where}" has no rows; send at least one.')
    return value


def _split(value: Any) -> dict[str, list[Any]]:
    where = "dataframe_split"
    if not isinstance(value, dict) or "columns" not in value or "data" not in value:
        raise FeatureLookupError(
            f'"{where}" must be an object with "columns" (names) and "data" (one list per row), e.g. '
            '{"columns": ["Id"], "data": [[1], [2]]}.'
        )
    columns, data = value["columns"], value["data"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns) or not columns:
        raise FeatureLookupError(f'"{where}.columns" must be a non-empty list of column names.')
    if len(set(columns)) != len(columns):
        raise FeatureLookupError(f'"{where}.columns" names a column twice: {columns}.')
    if not isinstance(data, list) or not data:
        raise FeatureLookupError(f'"{where}.data" must be a non-empty list of rows.')
    bad = next((i for i, row in enumerate(data) if not isinstance(row, list) or len(row) != len(columns)), None)
    if bad is not None:
        raise FeatureLookupError(
            f'"{where}.data" row {bad} does not have one value per column ({len(columns)} columns: {columns}).'
        )
    return {c: [row[j] for row in data] for j, c in enumerate(columns)}


def _tensor(value: Any, where: str) -> Rows:
    if isinstance(value, list):
        return _records(value, where)
    if isinstance(value, dict):
        if value and not any(isinstance(v, list) for v in value.values()):
            return [value]  # one row given as {"Id": 1}
        return _columns(value, where)
    raise FeatureLookupError(
        f'"{where}" must be rows (a list of objects) or columns (an object of lists), got {type(value).__name__}.'
    )


def parse_request(body: Any) -> tuple[Rows, dict[str, Any]]:
    """``(rows, params)`` of a request body in any of the accepted formats (see the module docstring).

    >>> parse_request({"dataframe_split": {"columns": ["Id", "x"], "data": [[1, 2.0], [3, 4.0]]}})
    ({'Id': [1, 3], 'x': [2.0, 4.0]}, {})
    >>> parse_request({"inputs": {"Id": 7}, "params": {"missing_keys": "null"}})
    ([{'Id': 7}], {'missing_keys': 'null'})
    """
    if not isinstance(body, dict):
        raise FeatureLookupError(f"The request body must be a JSON object such as {_FORMATS}.")
    present = [k for k in ROW_KEYS if k in body]
    if not present:
        raise FeatureLookupError(
            f"The request body must be a JSON object with the rows under one of {list(ROW_KEYS)}, such as "
            f"{_FORMATS}; it has {sorted(body)}."
        )
    if len(present) > 1:
        raise FeatureLookupError(f"The request body gives rows under {present}; use one of them.")
    unknown = sorted(set(body) - {present[0], "params"})
    if unknown:
        raise FeatureLookupError(f"The request body has unknown field(s) {unknown}; allowed: {present[0]!r}, 'params'.")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise FeatureLookupError(f'"params" must be a JSON object, got {type(params).__name__}.')
    key, value = present[0], body[present[0]]
    if key == "dataframe_split":
        return _split(value), params
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise FeatureLookupError('"dataframe_records" must be a list of JSON objects, one per row.')
        return _records(value, key), params
    if key == "keys":
        if isinstance(value, list):
            return _records(value, key), params
        if isinstance(value, dict):
            return _columns(value, key), params
        raise FeatureLookupError(
            f'"keys" must be a list of records or a mapping of columns, got {type(value).__name__}.'
        )
    return _tensor(value, key), params


__all__ = ["ROW_KEYS", "Rows", "parse_request"]
