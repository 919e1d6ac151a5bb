"""``larder apply``: make the catalog what a project declares, as a :class:`~larder.project.plan.Plan` says.

Everything that can be checked is checked by the plan, before anything is written. Then, in order:

1. new feature tables are created (each one all-or-nothing, empty, from its declared schema);
2. in **one catalog transaction**: table metadata (description, tags, column descriptions), every
   feature registered, redefined or deleted (each validated against its source again), and the
   project's ``managed_objects`` rows. If any of it fails, the transaction is rolled back and the tables
   step 1 created are dropped again, so nothing of the plan remains;
3. tables the project no longer declares are dropped, last (a drop cannot be undone, so it runs only
   once everything else is in place); each one's ``managed_objects`` row goes with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from larder.catalog.base import current_user, utcnow
from larder.catalog.managed import ManagedObjectRecord
from larder.declarative.feature import Feature
from larder.errors import LarderError
from larder.project.definitions import FeatureTableDefinition
from larder.project.plan import Change, Plan

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from larder.context import Context
    from larder.declarative.service import FeatureService
    from larder.offline.tables import TableService


def _record(session: Session, plan: Plan, change: Change) -> None:
    assert change.declared is not None
    obj = change.declared.obj
    definition = obj.to_dict()
    rec = session.scalars(select(ManagedObjectRecord).where(ManagedObjectRecord.kind == change.kind,
                                                            ManagedObjectRecord.full_name == change.name)).first()
    if rec is None:
        rec = ManagedObjectRecord(kind=change.kind, full_name=change.name)
        session.add(rec)
    rec.project, rec.definition, rec.source_file = plan.project, definition, change.file
    rec.applied_by, rec.applied_at = current_user(), utcnow()


def _forget(session: Session, kind: str, name: str) -> None:
    session.execute(delete(ManagedObjectRecord).where(ManagedObjectRecord.kind == kind,
                                                      ManagedObjectRecord.full_name == name))


def apply_plan(ctx: Context, tables: TableService, features: FeatureService, plan: Plan) -> None:
    """Apply ``plan`` (see the module doc for the order and what is atomic)."""
    created: list[str] = []
    try:
        for c in plan.changes:
            if c.kind == "table" and c.action == "create":
                spec = c.declared.obj if c.declared else None
                assert isinstance(spec, FeatureTableDefinition)
                tables.create_table(spec.full_name, spec.primary_keys, schema=spec.arrow_schema,
                                    timestamp_keys=spec.timeseries_column, partition_columns=spec.partition_columns,
                                    description=spec.description, tags=spec.tags,
                                    feature_descriptions=spec.feature_descriptions)
                created.append(spec.full_name)
        with ctx.catalog.session() as s:
            for c in plan.changes:
                if c.action in ("create", "update"):
                    obj = c.declared.obj if c.declared else None
                    if c.action == "update" and all(f.field == "project" for f in c.fields):
                        pass  # adopted as it is: only the ownership row changes
                    elif isinstance(obj, FeatureTableDefinition) and c.action == "update":
                        tables.set_metadata(s, obj.full_name, description=obj.description, tags=obj.tags,
                                            feature_descriptions=obj.feature_descriptions)
                    elif isinstance(obj, Feature):
                        if c.action == "create":
                            features.add_record(s, obj)
                        else:
                            features.replace_record(s, obj)
                    _record(s, plan, c)
                elif c.action == "delete" and c.kind == "feature":
                    features.delete_record(s, c.name)
                    _forget(s, "feature", c.name)
            for kind, name in plan.stale:
                _forget(s, kind, name)
    except BaseException as exc:
        for name in reversed(created):  # undo step 1
            try:
                tables.drop_table(name)
            except LarderError as undo:  # pragma: no cover - the catalog failed twice
                exc.add_note(f"larder apply could not drop the table {name!r} it created: {undo}")
        raise
    for c in plan.changes:
        if c.kind == "table" and c.action == "delete":
            tables.drop_table(c.name)
            with ctx.catalog.session() as s:
                _forget(s, "table", c.name)


__all__ = ["apply_plan"]
