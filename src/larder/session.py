"""``spark``: a stand-in for the Spark session a Databricks notebook has as a global.

Feature-engineering notebooks use their ``spark`` session for a few things around the client: to
create UDFs (``spark.sql("CREATE FUNCTION ...")``), to turn pandas data into DataFrames
(``spark.createDataFrame(pdf)``) and to read tables (``spark.table(name)``). On larder's DuckDB engine
these map onto the client, so a notebook ports by importing this object::

    from larder.session import spark

* ``spark.sql(statement)`` runs ``CREATE [OR REPLACE] FUNCTION`` (a Python or SQL UDF, registered as a
  feature function) and ``DROP FUNCTION [IF EXISTS]``; other statements raise
  :class:`~larder.errors.LarderError` saying what to use instead.
* ``spark.createDataFrame(data, schema=None)`` returns a pandas DataFrame (from pandas, a list of
  rows or dicts, with ``schema`` a list of column names).
* ``spark.table(name)`` is ``fe.read_table(name=name)``.

The client used is the most recently created :class:`~larder.client.FeatureEngineeringClient` of the
process that is still open, else one on the default root (``$LARDER_ROOT`` or ``./.larder``).
"""

from __future__ import annotations

import re
import weakref
from typing import Any

import pandas as pd

from larder.errors import FunctionError, LarderError

_clients: list[weakref.ref[Any]] = []


def register_client(client: Any) -> None:
    """Called by every new client: the session uses the latest one that is still alive."""
    _clients[:] = [r for r in _clients if r() is not None][-7:]
    _clients.append(weakref.ref(client))


def current_client() -> Any:
    for ref in reversed(_clients):
        client = ref()
        if client is not None and not getattr(client, "_closed", False):
            return client
    from larder.client import FeatureEngineeringClient

    return FeatureEngineeringClient()


_DROP = re.compile(r"^\s*DROP\s+(?:TEMP(?:ORARY)?\s+)?FUNCTION\s+(IF\s+EXISTS\s+)?([`\w.]+)\s*;?\s*$",
                   re.IGNORECASE)


class Session:
    """See the module docstring."""

    def sql(self, statement: str) -> pd.DataFrame:
        from larder.training.sql_functions import looks_like_create_function

        if not isinstance(statement, str):
            raise LarderError(f"spark.sql() takes a SQL statement (a string), got {type(statement).__name__}.")
        fe = current_client()
        if looks_like_create_function(statement):
            info = fe.create_function(statement)
            return pd.DataFrame({"function": [info.name], "version": [info.version]})
        drop = _DROP.match(statement)
        if drop:
            name = drop.group(2).replace("`", "")
            try:
                fe.drop_function(name)
            except FunctionError:
                if not drop.group(1):
                    raise
            return pd.DataFrame()
        raise LarderError(
            "larder's spark stand-in runs CREATE FUNCTION and DROP FUNCTION statements only. Read feature tables "
            "with fe.read_table(name=...) and query them with pandas or DuckDB (duckdb.sql('SELECT ... FROM df'))."
        )

    def createDataFrame(self, data: Any, schema: Any = None) -> pd.DataFrame:  # noqa: N802 - Spark's name
        if isinstance(data, pd.DataFrame):
            return data if schema is None else data.set_axis(_column_names(schema), axis=1)
        columns = _column_names(schema) if schema is not None else None
        return pd.DataFrame(list(data), columns=columns)

    def table(self, name: str) -> pd.DataFrame:
        return current_client().read_table(name=name)


def _column_names(schema: Any) -> list[str]:
    if isinstance(schema, str):
        return [part.strip().split()[0] for part in schema.split(",")]
    fields = getattr(schema, "fields", None)
    if fields is not None:
        return [f.name for f in fields]
    return list(schema)


spark = Session()

__all__ = ["Session", "current_client", "register_client", "spark"]
