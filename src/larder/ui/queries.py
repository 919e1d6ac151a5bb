"""Set-based catalog reads behind the web catalog's list pages.

Each function answers with a fixed, small number of SQL statements whatever the size of the catalog
(no statement per table or model, no Delta log opened). The table list and search are answered by
:class:`larder.ui.search.TableIndex`, loaded from the table, tag, feature and stats records
(:mod:`larder.catalog.stats`); this module holds the shapes it returns and the model and stats reads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from larder.catalog.models import ModelFeatureRecord, ModelFunctionRecord, ModelRecord, ModelTableRecord
from larder.catalog.stats import TableStatsRecord
from larder.catalog.tables import TableRecord


def utc(t: datetime | None) -> datetime | None:
    """The catalog's naive UTC times as aware datetimes."""
    return None if t is None else t.replace(tzinfo=UTC) if t.tzinfo is None else t


def search_terms(query: str) -> list[str]:
    """The lower-cased, whitespace-separated terms of a search (every term must match)."""
    return [t for t in query.replace("\0", " ").lower().split() if t]


@dataclass(frozen=True)
class TableRow:
    id: int
    name: str
    description: str | None
    primary_keys: list[str]
    timestamp_keys: list[str]
    owner: str | None
    tags: dict[str, str]
    features: int
    rows: int | None
    version: int | None
    last_write: datetime | None
    matches: list[str]


@dataclass(frozen=True)
class TablePage:
    total: int
    catalog_tables: int
    stats_pending: int
    rows: list[TableRow]


def latest_stats(session: Session, names: Sequence[str] | None = None) -> dict[str, tuple[int, int, datetime]]:
    """``{table full name: (latest version, rows, written at)}`` from the stats records (tables without
    stats are absent); only ``names`` when given."""
    stmt = (select(TableRecord.full_name, TableStatsRecord.delta_version, TableStatsRecord.row_count,
                   TableStatsRecord.written_at)
            .join(TableStatsRecord, TableStatsRecord.table_id == TableRecord.id))
    if names is not None:
        stmt = stmt.where(TableRecord.full_name.in_(list(names)))
    return {n: (int(v), int(c), utc(w) or w) for n, v, c, w in session.execute(stmt)}


# ---------------------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelRow:
    id: int
    registered_name: str | None
    registered_version: str | None
    run_uri: str
    run_id: str
    artifact_path: str
    logged_at: datetime
    owner: str | None
    flavor: str
    tables: list[tuple[str, int | None, dict[str, Any] | None]]
    features: list[tuple[str, str, str]]
    functions: list[tuple[str, str, str]]

    @property
    def uri(self) -> str:
        if self.registered_name and self.registered_version:
            return f"models:/{self.registered_name}/{self.registered_version}"
        return self.run_uri


def model_rows(session: Session, *, ids: Sequence[int] | None = None, table: str | None = None,
               function: str | None = None) -> list[ModelRow]:
    """Every model larder logged (newest first) with its tables, features and functions, in four
    statements; only the models ``ids``, or those reading ``table`` or using ``function``, when given."""
    stmt = select(ModelRecord.id, ModelRecord.registered_name, ModelRecord.registered_version, ModelRecord.run_uri,
                  ModelRecord.run_id, ModelRecord.artifact_path, ModelRecord.logged_at, ModelRecord.owner,
                  ModelRecord.flavor).order_by(ModelRecord.id.desc())
    if ids is not None:
        stmt = stmt.where(ModelRecord.id.in_(list(ids)))
    if table is not None:
        stmt = stmt.where(ModelRecord.id.in_(select(ModelTableRecord.model_id)
                                             .where(ModelTableRecord.table_name == table)))
    if function is not None:
        stmt = stmt.where(ModelRecord.id.in_(select(ModelFunctionRecord.model_id)
                                             .where(ModelFunctionRecord.function_name == function)))
    heads = session.execute(stmt).all()
    chosen = [h.id for h in heads]
    tables: dict[int, list[tuple[str, int | None, dict[str, Any] | None]]] = defaultdict(list)
    features: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    functions: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    restrict = ids is not None or table is not None or function is not None
    for mid, name, version, online in session.execute(
            _restricted(select(ModelTableRecord.model_id, ModelTableRecord.table_name, ModelTableRecord.delta_version,
                               ModelTableRecord.online).order_by(ModelTableRecord.position),
                        ModelTableRecord.model_id, chosen, restrict)):
        tables[mid].append((name, version, online))
    for mid, tname, feature, output in session.execute(
            _restricted(select(ModelFeatureRecord.model_id, ModelFeatureRecord.table_name,
                               ModelFeatureRecord.feature_name, ModelFeatureRecord.output_name)
                        .order_by(ModelFeatureRecord.position), ModelFeatureRecord.model_id, chosen, restrict)):
        features[mid].append((tname, feature, output))
    for mid, fname, fversion, output in session.execute(
            _restricted(select(ModelFunctionRecord.model_id, ModelFunctionRecord.function_name,
                               ModelFunctionRecord.function_version, ModelFunctionRecord.output_name)
                        .order_by(ModelFunctionRecord.position), ModelFunctionRecord.model_id, chosen, restrict)):
        functions[mid].append((fname, fversion, output))
    return [ModelRow(id=h.id, registered_name=h.registered_name, registered_version=h.registered_version,
                     run_uri=h.run_uri, run_id=h.run_id, artifact_path=h.artifact_path,
                     logged_at=utc(h.logged_at) or h.logged_at, owner=h.owner, flavor=h.flavor,
                     tables=tables[h.id], features=features[h.id], functions=functions[h.id]) for h in heads]


def _restricted(stmt: Any, column: Any, ids: list[int], restrict: bool) -> Any:
    return stmt.where(column.in_(ids)) if restrict else stmt


def model_usage_counts(session: Session) -> dict[str, int]:
    """``{function full name: logged models using it}``."""
    stmt = (select(ModelFunctionRecord.function_name, func.count(func.distinct(ModelFunctionRecord.model_id)))
            .group_by(ModelFunctionRecord.function_name))
    return {n: int(c) for n, c in session.execute(stmt)}


__all__ = ["ModelRow", "TablePage", "TableRow", "latest_stats", "model_rows", "model_usage_counts",
           "search_terms", "utc"]
