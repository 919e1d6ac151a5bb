"""Set-based catalog reads behind the web catalog's list pages and search.

Each function answers one page with a fixed, small number of SQL statements, whatever the size of the
catalog (no query per table, no Delta log opened): the table list reads the catalog's table, tag,
feature and stats records (:mod:`larder.catalog.stats`), the model list the lineage records. They work
on any SQLAlchemy backend (``lower(...) LIKE`` rather than a dialect's case-insensitive operator).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from larder.catalog.models import ModelFeatureRecord, ModelFunctionRecord, ModelRecord, ModelTableRecord
from larder.catalog.stats import TableStatsRecord
from larder.catalog.tables import FeatureRecord, TableRecord, TagRecord

#: Sort keys of the table list and the column each sorts on.
TABLE_SORTS: dict[str, Any] = {
    "name": TableRecord.full_name,
    "owner": TableRecord.owner,
    "rows": TableStatsRecord.row_count,
    "version": TableStatsRecord.delta_version,
    "last_write": TableStatsRecord.written_at,
}


def utc(t: datetime | None) -> datetime | None:
    """The catalog's naive UTC times as aware datetimes."""
    return None if t is None else t.replace(tzinfo=UTC) if t.tzinfo is None else t


def search_terms(query: str) -> list[str]:
    """The lower-cased, whitespace-separated terms of a search (every term must match)."""
    return [t for t in query.lower().split() if t]


def _term_condition(term: str) -> ColumnElement[bool]:
    """A table matches ``term`` in its name, description, a tag key or value, a feature name or a
    feature description (case-insensitive substring)."""
    def like(col: Any) -> ColumnElement[bool]:
        return func.lower(col).contains(term, autoescape=True)

    features = select(FeatureRecord.table_id).where(or_(like(FeatureRecord.name), like(FeatureRecord.description)))
    tags = select(TagRecord.table_id).where(or_(like(TagRecord.key), like(TagRecord.value)))
    return or_(like(TableRecord.full_name), like(TableRecord.description),
               TableRecord.id.in_(features), TableRecord.id.in_(tags))


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


def table_page(session: Session, *, query: str = "", sort: str = "name", descending: bool = False,
               offset: int = 0, limit: int = 50) -> TablePage:
    """One page of the feature tables matching ``query``, sorted by ``sort`` (a key of :data:`TABLE_SORTS`).

    Six statements: the count of matches, the count of the catalog and of tables without stats, the
    page itself (tables joined to their stats), and the tags, feature counts and search matches of
    the page's tables only.
    """
    terms = search_terms(query)
    where = and_(*[_term_condition(t) for t in terms]) if terms else None
    matching = select(TableRecord.id)
    if where is not None:
        matching = matching.where(where)
    total = int(session.scalar(select(func.count()).select_from(matching.subquery())) or 0)
    catalog_tables, with_stats = session.execute(
        select(func.count(TableRecord.id), func.count(TableStatsRecord.table_id))
        .outerjoin(TableStatsRecord, TableStatsRecord.table_id == TableRecord.id)).one()
    col = TABLE_SORTS[sort]
    order = [col.desc() if descending else col.asc()]
    if sort != "name":
        order = [col.is_(None), *order, TableRecord.full_name.asc()]
    stmt = (select(TableRecord.id, TableRecord.full_name, TableRecord.description, TableRecord.primary_keys,
                   TableRecord.timestamp_keys, TableRecord.owner, TableStatsRecord.row_count,
                   TableStatsRecord.delta_version, TableStatsRecord.written_at)
            .outerjoin(TableStatsRecord, TableStatsRecord.table_id == TableRecord.id)
            .order_by(*order).offset(offset).limit(limit))
    if where is not None:
        stmt = stmt.where(where)
    page = session.execute(stmt).all()
    ids = [r.id for r in page]
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    counts: dict[int, int] = {}
    found: dict[int, list[str]] = defaultdict(list)
    if ids:
        for tid, key, value in session.execute(select(TagRecord.table_id, TagRecord.key, TagRecord.value)
                                               .where(TagRecord.table_id.in_(ids)).order_by(TagRecord.key)):
            tags[tid][key] = value
        keys_of = {r.id: set(r.primary_keys or []) for r in page}
        for tid, name, desc in session.execute(
                select(FeatureRecord.table_id, FeatureRecord.name, FeatureRecord.description)
                .where(FeatureRecord.table_id.in_(ids)).order_by(FeatureRecord.position)):
            if name not in keys_of[tid]:
                counts[tid] = counts.get(tid, 0) + 1
            if terms and any(t in name.lower() or (desc and t in desc.lower()) for t in terms):
                found[tid].append(f"feature {name}")
    rows = []
    for r in page:
        matches: list[str] = []
        if terms:
            if any(t in r.full_name.lower() for t in terms):
                matches.append("name")
            if r.description and any(t in r.description.lower() for t in terms):
                matches.append("description")
            matches += [f"tag {k}={v}" if v else f"tag {k}" for k, v in tags[r.id].items()
                        if any(t in k.lower() or t in (v or "").lower() for t in terms)]
            matches += found[r.id][:5] + ([f"{len(found[r.id]) - 5} more features"] if len(found[r.id]) > 5 else [])
        rows.append(TableRow(
            id=r.id, name=r.full_name, description=r.description, primary_keys=list(r.primary_keys or []),
            timestamp_keys=list(r.timestamp_keys or []), owner=r.owner, tags=dict(tags[r.id]),
            features=counts.get(r.id, 0), rows=r.row_count, version=r.delta_version,
            last_write=utc(r.written_at), matches=matches))
    return TablePage(total=total, catalog_tables=int(catalog_tables), stats_pending=int(catalog_tables - with_stats),
                     rows=rows)


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


__all__ = ["TABLE_SORTS", "ModelRow", "TablePage", "TableRow", "latest_stats", "model_rows",
           "model_usage_counts", "search_terms", "table_page", "utc"]
