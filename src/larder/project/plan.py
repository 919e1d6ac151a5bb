"""``larder plan``: what applying a project would create, change or delete in the catalog.

The plan compares what a project declares (:mod:`larder.project.loader`) with the catalog:

* a declared object that is not in the catalog is **created**;
* a declared object in the catalog that this project created (a row of ``managed_objects``) is
  **updated** when its definition differs, else **unchanged**; with ``adopt``, one made by hand (by
  no project) is **updated** too, its first change being ``project: None -> <project>``;
* an object this project created that it no longer declares is **deleted**;
* anything else is refused before anything is written (:class:`~larder.errors.ProjectError`, naming
  the file, the object and the fix): a declared object that exists but was made by hand or by another
  project, a change a table cannot take in place (keys, columns, types, partitioning), a feature that
  does not validate against its source (checked against the declared schema when the source table is
  created by the same plan), a deleted table that a remaining feature reads.

Changes are listed tables first, then features, each by full name, so the same project against the
same catalog gives the same plan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select

from larder.catalog.declarative import DeclarativeFeatureRecord
from larder.catalog.managed import ManagedObjectRecord
from larder.declarative.compute import validate_feature
from larder.declarative.feature import Feature
from larder.declarative.sources import DeltaTableSource
from larder.errors import FeatureNotFoundError, LarderError, ProjectError, TableNotFoundError
from larder.project.definitions import FeatureTableDefinition
from larder.project.loader import Declared, Kind, LoadedProject

if TYPE_CHECKING:
    import pyarrow as pa

    from larder.context import Context
    from larder.declarative.service import FeatureService
    from larder.offline.tables import FeatureTable, TableService

Action = Literal["create", "update", "delete", "unchanged"]
ACTIONS: tuple[Action, ...] = ("create", "update", "delete", "unchanged")
_WHAT = {"table": "feature table", "feature": "feature"}


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class Change:
    """One object's planned change. ``declared`` is None for a deletion."""

    action: Action
    kind: Kind
    name: str
    file: str | None
    fields: list[FieldChange] = field(default_factory=list)
    declared: Declared | None = None
    #: one line describing a created object
    summary: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "kind": self.kind, "name": self.name, "file": self.file,
                "summary": self.summary, "changes": [f.to_dict() for f in self.fields],
                "definition": _plain(self.declared.obj.to_dict()) if self.declared is not None else None}


@dataclass
class Plan:
    project: str
    directory: str
    changes: list[Change]
    #: ``managed_objects`` rows of this project whose object is gone and no longer declared
    stale: list[tuple[Kind, str]] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)

    def summary(self) -> dict[str, int]:
        return {a: sum(c.action == a for c in self.changes) for a in ACTIONS}

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "directory": self.directory, "summary": self.summary(),
                "changes": [c.to_dict() for c in self.changes]}


def _plain(value: Any) -> Any:
    """A JSON-compatible copy (definitions hold only plain data; this makes that certain)."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _leaves(path: str, a: Any, b: Any) -> list[FieldChange]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [c for k in sorted(set(a) | set(b)) for c in _leaves(f"{path}.{k}", a.get(k), b.get(k))]
    return [FieldChange(path, a, b)] if a != b else []


def _diff(before: dict[str, Any], after: dict[str, Any], keys: list[str]) -> list[FieldChange]:
    """The differences of ``keys``, nested mappings compared leaf by leaf (``function.time_window...``);
    a tag or column description map is compared as one value."""
    out = []
    for key in keys:
        a, b = _plain(before.get(key)), _plain(after.get(key))
        if key in ("source", "function"):
            out += _leaves(key, a, b)
        elif a != b:
            out.append(FieldChange(key, a, b))
    return out


def _table_summary(spec: FeatureTableDefinition) -> str:
    cols = ", ".join(f"{n} {t}" for n, t in spec.columns().items())
    ts = f", timeseries {spec.timeseries_column}" if spec.timeseries_column else ""
    return f"keys {spec.primary_keys}{ts}; columns {cols}"


def _feature_summary(feature: Feature) -> str:
    src = feature.source.full_name() if isinstance(feature.source, DeltaTableSource) else "request"
    by = f" by {feature.entity} at {feature.timeseries_column}" if feature.entity else ""
    return f"{str(feature).split(': ', 1)[-1]} of {src}{by}"


def check_project_name(project: str) -> str:
    ok = isinstance(project, str) and 0 < len(project) <= 128 and all(c.isalnum() or c in "_-." for c in project)
    if not ok:
        raise ProjectError(
            f"Project name {project!r} is not valid: use 1 to 128 letters, digits, '_', '-' or '.' (--project NAME)."
        )
    return project


class Planner:
    """Builds a :class:`Plan` from a loaded project and the catalog (reads only)."""

    def __init__(self, ctx: Context, tables: TableService, features: FeatureService, *, adopt: bool = False) -> None:
        self.ctx, self.tables, self.features = ctx, tables, features
        #: whether declared objects that exist but belong to no project are taken over (``--adopt``)
        self.adopt = adopt

    def managed(self) -> dict[tuple[str, str], ManagedObjectRecord]:
        with self.ctx.catalog.session() as s:
            return {(r.kind, r.full_name): r for r in s.scalars(select(ManagedObjectRecord))}

    def plan(self, loaded: LoadedProject, project: str) -> Plan:
        project = check_project_name(project)
        managed = self.managed()
        declared = {(d.kind, d.full_name) for d in loaded.objects}
        changes: list[Change] = []
        stale: list[tuple[Kind, str]] = []

        def deletions(kind: Kind) -> set[str]:
            """This project's objects of ``kind`` that it no longer declares: deleted, or stale when gone."""
            out = set()
            for (k, name), rec in sorted(managed.items()):
                if k != kind or rec.project != project or (k, name) in declared:
                    continue
                exists = (self._table_state(name) if kind == "table" else self._feature_state(name)) is not None
                if exists:
                    out.add(name)
                    changes.append(Change("delete", kind, name, rec.source_file))
                else:
                    stale.append((kind, name))
            return out

        for d in loaded.objects:
            if d.kind == "table":
                changes.append(self._table(d, managed.get(("table", d.full_name)), project))
        deleted_tables = deletions("table")
        planned: dict[str, pa.Schema] = {d.full_name: d.obj.arrow_schema for d in loaded.objects
                                         if isinstance(d.obj, FeatureTableDefinition)}
        for d in loaded.objects:
            if d.kind == "feature":
                changes.append(self._feature(d, managed.get(("feature", d.full_name)), project, planned,
                                             deleted_tables))
        kept_features = {d.full_name for d in loaded.objects if d.kind == "feature"}
        self._check_table_deletions(deleted_tables, deletions("feature") | kept_features)
        changes.sort(key=lambda c: (c.kind != "table", c.name))
        return Plan(project, str(loaded.directory), changes, stale)

    # -- tables ------------------------------------------------------------------------------------
    def _table_state(self, name: str) -> FeatureTable | None:
        try:
            return self.tables.get_table(name)
        except TableNotFoundError:
            return None

    def _owned(self, d: Declared, rec: ManagedObjectRecord | None, project: str) -> list[FieldChange]:
        """Nothing when ``project`` owns the existing object; the ownership change when it adopts one made
        by hand (``adopt``); else a ProjectError."""
        if rec is not None and rec.project == project:
            return []
        if rec is None and self.adopt:
            return [FieldChange("project", None, project)]
        by = f"project {rec.project!r}" if rec is not None else "hand (not by any project)"
        what = _WHAT[d.kind]
        how = ("drop it (`larder tables drop`) to let this project create it"
               if d.kind == "table" else "delete it (delete_feature) to let this project register it")
        adopt = ", or adopt it into this project with --adopt" if rec is None else ""
        raise ProjectError(
            f"{d.where}: {what} {d.full_name!r} already exists in the catalog and was created by {by}, not by project "
            f"{project!r}; apply deletes and changes only what its own project created. Give the definition another "
            f"name, remove it, or {how}{adopt}."
        )

    def _table(self, d: Declared, rec: ManagedObjectRecord | None, project: str) -> Change:
        spec = d.obj
        assert isinstance(spec, FeatureTableDefinition)
        want = spec.to_dict()
        have = self._table_state(d.full_name)
        if have is None:
            return Change("create", "table", d.full_name, d.file, [], d, _table_summary(spec))
        adopted = self._owned(d, rec, project)
        current = {
            "primary_keys": [*have.primary_keys, *have.timestamp_keys],
            "timeseries_column": have.timestamp_keys[0] if have.timestamp_keys else None,
            "partition_columns": list(have.partition_columns),
            "columns": {f.name: f.dtype for f in have.features},
            "description": have.description,
            "tags": dict(have.tags),
            "feature_descriptions": {f.name: f.description for f in have.features if f.description},
        }
        fixed = _diff(current, want, ["primary_keys", "timeseries_column", "partition_columns", "columns"])
        if fixed:
            what = "; ".join(f"{f.field}: {f.before} -> {f.after}" for f in fixed)
            raise ProjectError(
                f"{d.where}: feature table {d.full_name!r} cannot change in place ({what}): its keys, partitioning and "
                "columns are fixed once created (new columns come with write_table). Restore the definition to match "
                f"the table, or give the table a new name (and move its data), or drop it (`larder tables drop "
                f"{d.full_name}`) to have it created again, empty."
            )
        managed = [k for k in ("description", "tags", "feature_descriptions") if want[k] is not None]
        fields = adopted + _diff(current, want, managed)
        return Change("update" if fields else "unchanged", "table", d.full_name, d.file, fields, d)

    # -- features ----------------------------------------------------------------------------------
    def _feature_state(self, name: str) -> Feature | None:
        try:
            return self.features.get_feature(full_name=name)
        except FeatureNotFoundError:
            return None

    def _feature(self, d: Declared, rec: ManagedObjectRecord | None, project: str,
                 planned: dict[str, pa.Schema], deleted_tables: set[str]) -> Change:
        feature = d.obj
        assert isinstance(feature, Feature)
        source = feature.source.full_name() if isinstance(feature.source, DeltaTableSource) else None
        if source is not None and source in deleted_tables:
            raise ProjectError(
                f"{d.where}: feature {d.full_name!r} reads table {source!r}, which this plan deletes (the project "
                "no longer declares it). Declare the table again, or remove the feature too."
            )
        try:
            validate_feature(self.tables, feature, planned=planned)
        except LarderError as exc:
            raise ProjectError(f"{d.where}: {exc}") from exc
        want = feature.to_dict()
        have = self._feature_state(d.full_name)
        keys = ["source", "function", "entity", "timeseries_column", "description"]
        if have is None:
            return Change("create", "feature", d.full_name, d.file, [], d, _feature_summary(feature))
        fields = self._owned(d, rec, project) + _diff(have.to_dict(), want, keys)
        return Change("update" if fields else "unchanged", "feature", d.full_name, d.file, fields, d)

    def _check_table_deletions(self, tables: set[str], features: set[str]) -> None:
        """A table the plan deletes must not be the source of a feature that outlives the plan (``features``:
        the ones the plan deletes or (re)declares)."""
        if not tables:
            return
        with self.ctx.catalog.session() as s:
            readers = s.execute(select(DeclarativeFeatureRecord.full_name, DeclarativeFeatureRecord.source_table)
                                .where(DeclarativeFeatureRecord.source_table.in_(sorted(tables)))).all()
        left = sorted((t, f) for f, t in readers if f not in features)
        if left:
            table, feature = left[0]
            raise ProjectError(
                f"Deleting feature table {table!r} (no longer declared by the project) would leave feature {feature!r} "
                "without its source. Delete that feature first (delete_feature), or declare the table again."
            )


__all__ = ["ACTIONS", "Change", "FieldChange", "Plan", "Planner", "check_project_name"]
