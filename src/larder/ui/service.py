"""``CatalogBrowser``: what each page of the web catalog shows, as the pydantic objects of
:mod:`larder.ui.schemas`.

It reads through the :class:`~larder.client.FeatureEngineeringClient` (tables, history, functions,
specs, publications, drift) and, for the list pages, through the set-based queries of
:mod:`larder.ui.queries`, so a page costs a fixed number of catalog statements. Only a table's own
pages open its Delta log.
"""

from __future__ import annotations

import base64
import math
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from larder.catalog.edits import EditRecord
from larder.catalog.functions import FeatureSpecRecord, FunctionRecord, FunctionVersionRecord
from larder.catalog.models import ModelRecord, find_model
from larder.catalog.quality import ProfileRecord, ValidationRunRecord
from larder.catalog.stats import TableStatsRecord, record_table_stats
from larder.catalog.tables import TableRecord
from larder.errors import CatalogError, ConfigError, FeatureSpecError, LarderError, ModelError
from larder.names import parse_name
from larder.ui import queries
from larder.ui.schemas import (
    Column,
    DeclarativeFeatureView,
    DriftView,
    EditEntry,
    FeatureStepView,
    FunctionDetail,
    FunctionStepView,
    FunctionSummary,
    FunctionVersionView,
    LookupView,
    ModelDetail,
    ModelList,
    ModelRef,
    ModelSummary,
    ModelTableView,
    OnlineView,
    Preview,
    PublicationView,
    QualityView,
    SpecView,
    StoreView,
    TableDetail,
    TableList,
    TableSummary,
    ValidationEntry,
    VersionEntry,
)

#: Rows of the time-travel preview.
PREVIEW_ROWS = 20
#: Delta versions listed in a table's history (newest first).
HISTORY_LIMIT = 200
#: Largest page of the table list.
MAX_PAGE = 500


def model_link(registered_name: str | None, registered_version: str | None, run_id: str, artifact_path: str) -> str:
    """The UI path of a model's page."""
    from urllib.parse import quote

    if registered_name and registered_version:
        return f"/models/{quote(registered_name, safe='')}/versions/{quote(str(registered_version), safe='')}"
    return f"/models/runs/{quote(run_id, safe='')}/{quote(artifact_path, safe='/')}"


def store_identity(root: str | Path, store_type: str, store_name: str | None, spec: dict[str, Any]) -> tuple[str, str]:
    """``(anchor, display name)`` of an online store: the anchor is stable for one place (type and
    location, whatever spec or name led there); the name is its larder.yaml name, else its type and
    location (a SQLite file relative to the root)."""
    import json

    return _store_identity(str(root), store_type, store_name, json.dumps(spec, sort_keys=True, default=str))


@lru_cache(maxsize=1024)
def _store_identity(root: str, store_type: str, store_name: str | None, spec_json: str) -> tuple[str, str]:
    import hashlib
    import json

    from larder.online.stores.specs import parse_spec, store_key

    spec = json.loads(spec_json)
    try:
        where = store_key(parse_spec(spec), Path(root))
    except LarderError:
        where = f"{store_type}:{sorted(spec.items())}"
    anchor = f"{store_type}-{hashlib.sha1(where.encode()).hexdigest()[:10]}"
    if store_name:
        return anchor, store_name
    location = where.split(":", 1)[1] if ":" in where else where
    if store_type == "sqlite":
        try:
            location = str(Path(location).relative_to(Path(root).resolve()))
        except ValueError:
            pass
    return anchor, f"{store_type}: {location.replace('|', ' ').strip()}"


def plain(value: Any) -> Any:
    """A JSON-able rendering of a cell value (times as ISO text, bytes as base64, NaN as null)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def _int(v: Any) -> int | None:
    try:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
    except (TypeError, ValueError):
        return None


class CatalogBrowser:
    """Page data of the web catalog over one client (thread-safe: every call opens its own session)."""

    def __init__(self, fe: Any, *, editable: bool = False) -> None:
        self.fe = fe
        self.editable = editable

    @property
    def catalog(self) -> Any:
        return self.fe._ctx.catalog

    @cached_property
    def index(self) -> Any:
        """The table list's in-memory index (:class:`larder.ui.search.TableIndex`)."""
        from larder.ui.search import TableIndex

        return TableIndex(self.catalog)

    # ------------------------------------------------------------------------------------ tables
    def tables(self, query: str = "", *, sort: str = "name", order: str = "asc", offset: int = 0,
               limit: int = 50) -> TableList:
        from larder.ui.search import SORTS

        if sort not in SORTS:
            raise ConfigError(f"Unknown sort {sort!r}: use one of {list(SORTS)}.")
        if order not in ("asc", "desc"):
            raise ConfigError(f"Unknown order {order!r}: use 'asc' or 'desc'.")
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise ConfigError(f"limit must be 1..{MAX_PAGE} and offset >= 0, got limit={limit}, offset={offset}.")
        page = self.index.page(query, sort=sort, descending=order == "desc", offset=offset, limit=limit)
        rows = [TableSummary(
            name=r.name, description=r.description, primary_keys=r.primary_keys,
            entity_keys=[k for k in r.primary_keys if k not in r.timestamp_keys],
            timestamp_key=r.timestamp_keys[0] if r.timestamp_keys else None, owner=r.owner, tags=r.tags,
            features=r.features, rows=r.rows, version=r.version, last_write=r.last_write, matches=r.matches,
        ) for r in page.rows]
        return TableList(query=query, sort=sort, order=order, offset=offset, limit=limit,  # type: ignore[arg-type]
                         total=page.total, catalog_tables=page.catalog_tables, stats_pending=page.stats_pending,
                         tables=rows)

    def table(self, name: str, version: int | None = None, *, preview_rows: int = PREVIEW_ROWS) -> TableDetail:
        ft = self.fe.get_table(name)
        full = ft.name
        shown = ft.version if version is None else version
        if not 0 <= shown <= ft.version:
            raise ConfigError(f"Table {full!r} has versions 0..{ft.version}; version {shown} does not exist. "
                              "Pick one from the table's history.")
        history = self.fe.table_history(full, limit=HISTORY_LIMIT)
        written_at = (history["timestamp"].iloc[0].to_pydatetime() if len(history) else ft.updated_at)
        self._refresh_stats(full, ft.version, ft.row_count, written_at)
        with self.catalog.session() as s:
            rec = s.scalar(select(TableRecord).where(TableRecord.full_name == full))
            added = {f.name: f.added_in_version for f in rec.features} if rec is not None else {}
            profiled = dict(s.execute(select(ProfileRecord.delta_version, ProfileRecord.row_count)
                                      .where(ProfileRecord.table_full_name == full)).all())
            validated = dict(s.execute(select(ValidationRunRecord.delta_version, ValidationRunRecord.passed)
                                       .where(ValidationRunRecord.table_full_name == full)).all())
        preview = self.preview(full, shown, limit=preview_rows)
        described = {f.name: f for f in ft.features}
        columns = []
        for col in preview.columns:
            f = described.get(col)
            columns.append(Column(
                name=col, dtype=f.dtype if f else self._dtype_at(full, shown, col),
                description=f.description if f else None, is_primary_key=col in ft.primary_keys,
                is_timestamp_key=col in ft.timestamp_keys, is_partition_column=col in ft.partition_columns,
                added_in_version=added.get(col), metadata=plain(f.metadata) if f else {},
            ))
        entries = []
        for row in history.itertuples(index=False):
            v = int(row.version)
            metrics = row.metrics or {}
            ok = validated.get(v)
            entries.append(VersionEntry(
                version=v, timestamp=row.timestamp.to_pydatetime() if row.timestamp is not None else None,
                operation=row.operation, rows_inserted=_int(row.rows_inserted), rows_updated=_int(row.rows_updated),
                rows_deleted=_int(metrics.get("num_target_rows_deleted", metrics.get("num_removed_rows"))),
                rows=profiled.get(v), validation=None if ok is None else "passed" if ok else "failed"))
        return TableDetail(
            name=full, description=ft.description, owner=ft.owner, tags=ft.tags, primary_keys=ft.primary_keys,
            timestamp_key=ft.timestamp_keys[0] if ft.timestamp_keys else None,
            partition_columns=ft.partition_columns, path=ft.path, created_at=ft.created_at,
            updated_at=ft.updated_at, latest_version=ft.version, rows=ft.row_count, version=shown, columns=columns,
            history=entries, preview=preview, models=self.models_of_table(full),
            publications=[p for s in self.online(table=full).stores for p in s.publications],
            edits=self.edits(full, limit=50), editable=self.editable,
        )

    def _dtype_at(self, full: str, version: int, column: str) -> str:
        snap = self.fe._tables.snapshot(full, version)
        return str(snap.schema.field(column).type)

    def _refresh_stats(self, full: str, version: int, rows: int, written_at: datetime) -> None:
        """Correct the table's stats record when Delta says otherwise (a read-only catalog is left alone)."""
        try:
            with self.catalog.session() as s:
                rec = s.execute(select(TableRecord.id, TableStatsRecord.delta_version, TableStatsRecord.row_count)
                                .outerjoin(TableStatsRecord, TableStatsRecord.table_id == TableRecord.id)
                                .where(TableRecord.full_name == full)).first()
                if rec is not None and (rec.delta_version, rec.row_count) != (version, rows):
                    record_table_stats(s, rec.id, version=version, row_count=rows,
                                       written_at=written_at.astimezone(UTC).replace(tzinfo=None))
        except CatalogError:
            pass

    def preview(self, name: str, version: int | None = None, *, limit: int = PREVIEW_ROWS) -> Preview:
        """The first ``limit`` rows of the table at ``version`` (default: latest), read from that
        version's files only as far as needed."""
        if not 0 <= limit <= 1000:
            raise ConfigError(f"A preview holds 0..1000 rows, got {limit}.")
        snap = self.fe._tables.snapshot(name, version)
        head = snap.dataset().head(limit)
        cols = head.column_names
        data = [head.column(c).to_pylist() for c in cols]
        return Preview(version=snap.version, total_rows=snap.row_count(), columns=cols,
                       rows=[[plain(col[i]) for col in data] for i in range(head.num_rows)])

    def quality(self, name: str, version: int | None = None) -> QualityView:
        from larder.quality.store import get_profile, get_settings, get_validation

        full = self._full_table_name(name)
        with self.catalog.session() as s:
            versions = list(s.scalars(select(ProfileRecord.delta_version)
                                      .where(ProfileRecord.table_full_name == full)
                                      .order_by(ProfileRecord.delta_version)))
            runs = s.execute(select(ValidationRunRecord.delta_version, ValidationRunRecord.passed,
                                    ValidationRunRecord.policy, ValidationRunRecord.row_count,
                                    ValidationRunRecord.failed_count, ValidationRunRecord.created_at)
                             .where(ValidationRunRecord.table_full_name == full)
                             .order_by(ValidationRunRecord.delta_version)).all()
        if version is not None and version not in versions:
            raise ConfigError(f"Table {full!r} has no profile of version {version}; profiled versions: {versions}.")
        prof = get_profile(self.catalog, full, version)
        settings = get_settings(self.catalog, full)
        last = get_validation(self.catalog, full)
        return QualityView(
            name=full, version=None if prof is None else (version if version is not None else versions[-1]),
            profiled_versions=versions, profile=prof, policy=settings.policy,
            expectations=[e.describe() for e in settings.expectations],
            validations=[ValidationEntry(version=r.delta_version, passed=r.passed, policy=r.policy,
                                         row_count=r.row_count, failed_count=r.failed_count,
                                         created_at=queries.utc(r.created_at) or r.created_at) for r in runs],
            validation=last, validation_version=runs[-1].delta_version if runs else None,
        )

    def _full_table_name(self, name: str) -> str:
        """The full name of an existing table (checked in the catalog only: no Delta read)."""
        full = parse_name(name).full
        with self.catalog.session() as s:
            if s.scalar(select(TableRecord.id).where(TableRecord.full_name == full)) is None:
                self.fe.get_table(full)  # raises TableNotFoundError with the usual advice
        return full

    def drift(self, name: str, baseline: int | None = None, current: int | None = None) -> DriftView:
        ft = self.fe.get_table(name)
        cur = ft.version if current is None else current
        base = max(cur - 1, 0) if baseline is None else baseline
        for v in (base, cur):
            if not 0 <= v <= ft.version:
                raise ConfigError(f"Table {ft.name!r} has versions 0..{ft.version}; version {v} does not exist.")
        report = self.fe.compare(ft.name, base, cur)
        return DriftView(name=ft.name, versions=list(range(ft.version + 1)), baseline=base, current=cur,
                         report=report)

    def models_of_table(self, full: str) -> list[ModelRef]:
        with self.catalog.session() as s:
            rows = queries.model_rows(s, table=full)
        return [ModelRef(name=r.registered_name or r.run_uri, version=r.registered_version, uri=r.uri,
                         link=model_link(r.registered_name, r.registered_version, r.run_id, r.artifact_path),
                         table_version=next((v for t, v, _ in r.tables if t == full), None)) for r in rows]

    # --------------------------------------------------------------------------------- functions
    def functions(self) -> list[FunctionSummary]:
        with self.catalog.session() as s:
            counts = queries.model_usage_counts(s)
            nversions = dict(s.execute(select(FunctionVersionRecord.function_id, func.count())
                                       .group_by(FunctionVersionRecord.function_id)).all())
            ids = dict(s.execute(select(FunctionRecord.full_name, FunctionRecord.id)).all())
        out = []
        for info in self.fe.list_functions():
            out.append(FunctionSummary(
                name=info.name, description=info.description, owner=info.owner, version=info.version,
                versions=int(nversions.get(ids.get(info.name), len(info.versions))), signature=info.signature,
                created_at=info.created_at, models=counts.get(info.name, 0)))
        return out

    def function(self, name: str) -> FunctionDetail:
        current = self.fe.get_function(name)
        with self.catalog.session() as s:
            users = queries.model_rows(s, function=current.name)
        by_version: dict[str, list[ModelRef]] = {}
        for r in users:
            ref = ModelRef(name=r.registered_name or r.run_uri, version=r.registered_version, uri=r.uri,
                           link=model_link(r.registered_name, r.registered_version, r.run_id, r.artifact_path),
                           table_version=None)
            for fname, fversion, _ in r.functions:
                if fname == current.name:
                    by_version.setdefault(fversion, []).append(ref)
        versions = []
        for v in reversed(current.versions):
            info = current if v == current.version else self.fe.get_function(current.name, v)
            versions.append(FunctionVersionView(
                version=v, current=v == current.version, created_at=info.created_at, signature=info.signature,
                description=info.description, mode=info.mode, output_type=info.output_type,
                python_version=info.python_version, source=info.source, models=by_version.get(v, [])))
        return FunctionDetail(name=current.name, description=current.description, owner=current.owner,
                              versions=versions)

    # ------------------------------------------------------------------------------------- specs
    def specs(self) -> list[SpecView]:
        with self.catalog.session() as s:
            recs = s.execute(select(FeatureSpecRecord.yaml, FeatureSpecRecord.created_at)
                             .order_by(FeatureSpecRecord.full_name)).all()
        from larder.training.spec import FeatureSpec

        return [spec_view(FeatureSpec.from_yaml(y), created_at=queries.utc(c)) for y, c in recs]

    def spec(self, name: str) -> SpecView:
        spec = self.fe.get_feature_spec(name)
        with self.catalog.session() as s:
            created = s.scalar(select(FeatureSpecRecord.created_at)
                               .where(FeatureSpecRecord.full_name == parse_name(name, kind="feature spec").full))
        return spec_view(spec, created_at=queries.utc(created), with_yaml=True)

    # ----------------------------------------------------------------------- declarative features
    def declarative_features(self, name: str | None = None) -> list[DeclarativeFeatureView]:
        """Registered declarative features (only ``name`` when given), by name, with the models using them."""
        from larder.catalog.declarative import DeclarativeFeatureRecord, FeatureModelUsage

        with self.catalog.session() as s:
            stmt = select(DeclarativeFeatureRecord).order_by(DeclarativeFeatureRecord.full_name)
            if name is not None:
                stmt = stmt.where(DeclarativeFeatureRecord.full_name == parse_name(name, kind="feature").full)
            recs = list(s.scalars(stmt))
            usage = s.execute(select(FeatureModelUsage.feature_name, FeatureModelUsage.registered_name,
                                     FeatureModelUsage.registered_version, FeatureModelUsage.run_uri)
                              .where(FeatureModelUsage.feature_name.in_([r.full_name for r in recs]))
                              .order_by(FeatureModelUsage.id)).all()
            runs = dict(s.execute(select(ModelRecord.run_uri, ModelRecord.artifact_path)).all())
        models: dict[str, list[ModelRef]] = {}
        for fname, rname, rversion, run_uri in usage:
            run_id = run_uri[len("runs:/"):].split("/", 1)[0]
            models.setdefault(fname, []).append(ModelRef(
                name=rname or run_uri, version=rversion, table_version=None,
                uri=f"models:/{rname}/{rversion}" if rname and rversion else run_uri,
                link=model_link(rname, rversion, run_id, runs.get(run_uri, "model"))))
        return [DeclarativeFeatureView(
            name=r.full_name, description=r.description, owner=r.owner, source_table=r.source_table,
            source_version=r.source_version, source=plain(r.definition.get("source") or {}),
            entity=list(r.definition.get("entity") or []), timeseries_column=r.definition.get("timeseries_column"),
            function=function_text(r.definition.get("function") or {}), output_type=r.output_type,
            created_at=queries.utc(r.created_at) or r.created_at, models=models.get(r.full_name, []),
            definition=plain(r.definition)) for r in recs]

    def declarative_feature(self, name: str) -> DeclarativeFeatureView:
        found = self.declarative_features(name)
        if not found:
            from larder.errors import FeatureNotFoundError

            raise FeatureNotFoundError(f"No declarative feature {parse_name(name, kind='feature').full!r} is registered. "
                           "See the feature list.")
        return found[0]

    # ------------------------------------------------------------------------------------ models
    def models(self) -> ModelList:
        with self.catalog.session() as s:
            rows = queries.model_rows(s)
        out = [ModelSummary(
            name=r.registered_name or r.run_uri, version=r.registered_version, uri=r.uri, run_uri=r.run_uri,
            link=model_link(r.registered_name, r.registered_version, r.run_id, r.artifact_path),
            logged_at=r.logged_at, owner=r.owner, flavor=r.flavor, tables=[t for t, _, _ in r.tables],
            features=len(r.features), functions=len(r.functions)) for r in rows]
        return ModelList(total=len(out), models=out)

    def model(self, name: str | None = None, version: str | None = None, *, run_uri: str | None = None) -> ModelDetail:
        from larder.training.spec import FeatureSpec

        with self.catalog.session() as s:
            if run_uri is not None:
                rec = find_model(s, run_uri=run_uri)
            else:
                rec = find_model(s, registered_name=name, registered_version=version)
                if rec is not None and rec.registered_version != str(version):
                    rec = None
            if rec is None:
                what = run_uri or f"version {version} of model {name!r}"
                raise ModelError(f"The catalog has no model {what} logged by larder. See the model list.")
            rid = rec.id
            spec_yaml = rec.feature_spec
            others = [] if not rec.registered_name else s.execute(
                select(ModelRecord.registered_name, ModelRecord.registered_version, ModelRecord.run_id,
                       ModelRecord.artifact_path, ModelRecord.run_uri)
                .where(ModelRecord.registered_name == rec.registered_name, ModelRecord.id != rid)).all()
            rows = queries.model_rows(s, ids=[rid])
            head = s.get(ModelRecord, rid)
            assert head is not None
            detail = dict(model_uri=head.model_uri, tracking_uri=head.tracking_uri,
                          input_columns=list(head.input_columns), feature_columns=list(head.feature_columns),
                          labels=list(head.labels or []))
        r = rows[0]
        try:
            spec = spec_view(FeatureSpec.from_yaml(spec_yaml), with_yaml=True)
        except FeatureSpecError as exc:
            raise ModelError(f"Model {r.uri}: its recorded feature spec cannot be read: {exc}") from exc
        tables = [ModelTableView(name=t, delta_version=v, online=plain(o) if o else None,
                                 online_store=store_identity(self.fe.root, o.get("store_type", "?"),
                                                             o.get("store_name"), o.get("store_spec") or {})[1]
                                 if o else None)
                  for t, v, o in r.tables]
        other_refs = sorted(
            (ModelRef(name=n, version=v, uri=f"models:/{n}/{v}", link=model_link(n, v, rid_, ap), table_version=None)
             for n, v, rid_, ap, _ in others),
            key=lambda m: int(m.version or "") if (m.version or "").isdigit() else -1, reverse=True)
        return ModelDetail(name=r.registered_name or r.run_uri, version=r.registered_version, uri=r.uri,
                           run_uri=r.run_uri, run_id=r.run_id, flavor=r.flavor, logged_at=r.logged_at,
                           owner=r.owner, tables=tables, spec=spec, other_versions=other_refs, **detail)

    # ------------------------------------------------------------------------------------ online
    def online(self, table: str | None = None) -> OnlineView:
        pubs = self.fe.list_publications(table)
        with self.catalog.session() as s:
            stats = queries.latest_stats(s, sorted({p.table_name for p in pubs}))
        stores: dict[str, StoreView] = {}
        stale = 0
        for p in pubs:
            key, label = store_identity(self.fe.root, p.store_type, p.store_name, p.store_spec)
            view = stores.setdefault(key, StoreView(key=key, name=label, store_type=p.store_type,
                                                    spec=plain(p.store_spec), publications=[]))
            published = queries.utc(p.published_at) or p.published_at
            st = stats.get(p.table_name)
            if st is None:
                status, behind, lag, off_v, off_t = "unknown", None, None, None, None
            else:
                off_v, _, off_t = st
                behind = max(off_v - p.delta_version, 0)
                lag = max((off_t - published).total_seconds(), 0.0) if behind else 0.0
                status = "stale" if behind else "current"
                stale += bool(behind)
            view.publications.append(PublicationView(
                table=p.table_name, store=label, store_key=key, store_type=p.store_type, online_table_name=p.online_table_name,
                features=list(p.features), delta_version=p.delta_version, published_at=published, rows=p.rows,
                mode=p.mode, filter_condition=p.filter_condition, duration_s=p.duration_s, offline_version=off_v,
                offline_written_at=off_t, versions_behind=behind, staleness_s=lag, status=status))  # type: ignore[arg-type]
        return OnlineView(stores=sorted(stores.values(), key=lambda v: v.name), stale=stale)

    # ------------------------------------------------------------------------------------- edits
    def edits(self, name: str | None = None, *, limit: int = 200) -> list[EditEntry]:
        stmt = select(EditRecord).order_by(EditRecord.id.desc()).limit(limit)
        if name is not None:
            stmt = stmt.where(EditRecord.object_name == name)
        with self.catalog.session() as s:
            return [edit_entry(r) for r in s.scalars(stmt)]


def edit_entry(r: EditRecord) -> EditEntry:
    return EditEntry(object_kind=r.object_kind, object_name=r.object_name, field=r.field, old_value=r.old_value,
                     new_value=r.new_value, edited_by=r.edited_by, edited_at=queries.utc(r.edited_at) or r.edited_at)


def spec_view(spec: Any, *, created_at: datetime | None = None, with_yaml: bool = False) -> SpecView:
    lookups = [LookupView(
        table=s.table, table_version=s.table_version, lookup_key=list(s.lookup_key),
        timestamp_lookup_key=s.timestamp_lookup_key,
        lookback_window_s=s.lookback_window.total_seconds() if s.lookback_window is not None else None,
        features=list(s.features), output_names=list(s.output_names), feature_types=list(s.feature_types),
        default_values=plain(dict(s.default_values))) for s in spec.lookups]
    functions = [FunctionStepView(name=f.name, version=f.version, input_bindings=dict(f.input_bindings),
                                  output_name=f.output_name) for f in spec.functions]
    features = [FeatureStepView(name=f.name, output_name=f.output_name, output_type=f.output_type,
                                source_table=f.source_table, source_version=f.source_version,
                                function=function_text(f.feature.get("function") or {}))
                for f in getattr(spec, "features", [])]
    return SpecView(name=spec.name, description=spec.description, created_at=created_at,
                    input_columns=spec.input_columns, output_columns=spec.output_columns,
                    exclude_columns=list(spec.exclude_columns), lookups=lookups, functions=functions,
                    features=features, yaml=spec.to_yaml() if with_yaml else None)


def function_text(definition: dict[str, Any]) -> str:
    """A declarative feature's function as Python would build it, e.g.
    ``AggregationFunction(Sum(input='amount'), RollingWindow(window_duration=datetime.timedelta(days=7)))``."""
    from larder.declarative.functions import function_from_dict

    try:
        return repr(function_from_dict(definition))
    except LarderError:
        return str(definition)


def backfill_stats(fe: Any, *, batch: int = 50, stop: Any = None) -> int:
    """Record the stats of every table that has none (catalogs written before they existed), reading
    each table's Delta log once; returns the number recorded. ``stop`` (a ``threading.Event``) ends it
    early. Tables that cannot be read are skipped."""
    from larder.catalog.stats import tables_without_stats
    from larder.errors import LarderError

    done = 0
    skipped: set[int] = set()
    while stop is None or not stop.is_set():
        with fe._ctx.catalog.session() as s:
            todo = [t for t in tables_without_stats(s, limit=batch + len(skipped)) if t[0] not in skipped]
        if not todo:
            return done
        for tid, full in todo:
            if stop is not None and stop.is_set():
                return done
            try:
                snap = fe._tables.snapshot(full)
                hist = snap.table.history(1)
                ts = hist[0].get("timestamp") if hist else None
                written = (datetime.fromtimestamp(ts / 1000, UTC) if ts else datetime.now(UTC)).replace(tzinfo=None)
                with fe._ctx.catalog.session() as s:
                    record_table_stats(s, tid, version=snap.version, row_count=snap.row_count(), written_at=written)
                done += 1
            except LarderError:
                skipped.add(tid)
    return done


__all__ = ["CatalogBrowser", "backfill_stats", "model_link", "plain", "spec_view", "store_identity"]
