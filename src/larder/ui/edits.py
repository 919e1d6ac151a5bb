"""Metadata edits from the web catalog: a table's description, owner and tags and its features'
descriptions, applied and audited in one catalog transaction.

Each changed field becomes an :class:`~larder.catalog.edits.EditRecord` with the value before and
after, who made it and when; a field set to the value it already has records nothing. Bad input
(an unknown feature, an empty tag key, a text too long for the catalog) raises before anything is
written.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from larder.catalog.base import utcnow
from larder.catalog.edits import EditRecord
from larder.catalog.tables import TableRecord, TagRecord
from larder.errors import SchemaMismatchError, TableError, TableNotFoundError
from larder.names import parse_name
from larder.ui.schemas import EditEntry, TableEdit

#: Longest owner, tag key or editor name the catalog's columns hold.
MAX_NAME = 256
#: Longest description or tag value accepted.
MAX_TEXT = 20_000


def _check(table: str, what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise TableError(f"Table {table!r}: the {what} is {len(value):,} characters long; at most {limit:,} fit.")


def apply_table_edit(catalog: Any, name: str, edit: TableEdit, *, editor: str) -> list[EditEntry]:
    """Apply ``edit`` to feature table ``name`` and record who made it; returns the changes made."""
    full = parse_name(name).full
    _check(full, "editor name", editor, MAX_NAME)
    with catalog.session() as s:
        rec = s.scalar(select(TableRecord).where(TableRecord.full_name == full))
        if rec is None:
            raise TableNotFoundError(f"Feature table {full!r} does not exist; nothing was edited.")
        by_feature = {f.name: f for f in rec.features}
        unknown = sorted(set(edit.feature_descriptions or {}) - set(by_feature))
        if unknown:
            raise SchemaMismatchError(f"Table {full!r} has no feature(s) {unknown}; its columns are "
                                      f"{list(by_feature)}. Nothing was edited.")
        for key, value in (edit.tags or {}).items():
            if not key.strip():
                raise TableError(f"Table {full!r}: a tag key must be a non-empty string. Nothing was edited.")
            _check(full, f"tag key {key[:40]!r}", key, MAX_NAME)
            if value is not None:
                _check(full, f"value of tag {key!r}", value, MAX_TEXT)
        if edit.owner is not None:
            _check(full, "owner", edit.owner, MAX_NAME)
        for text in [edit.description or "", *(edit.feature_descriptions or {}).values()]:
            _check(full, "description", text, MAX_TEXT)

        now = utcnow()
        changes: list[EditRecord] = []

        def record(field: str, old: Any, new: Any) -> None:
            if old != new:
                changes.append(EditRecord(object_kind="table", object_name=full, field=field, old_value=old,
                                          new_value=new, edited_by=editor, edited_at=now, via="ui"))

        if edit.description is not None:
            new_desc = edit.description or None
            record("description", rec.description, new_desc)
            rec.description = new_desc
        if edit.owner is not None:
            new_owner = edit.owner.strip() or None
            record("owner", rec.owner, new_owner)
            rec.owner = new_owner
        tags = {t.key: t for t in rec.tags}
        for key, value in (edit.tags or {}).items():
            old = tags[key].value if key in tags else None
            record(f"tag:{key}", old, value)
            if value is None:
                if key in tags:
                    rec.tags.remove(tags.pop(key))
            elif key in tags:
                tags[key].value = value
            else:
                tags[key] = TagRecord(key=key, value=value)
                rec.tags.append(tags[key])
        for feature, desc in (edit.feature_descriptions or {}).items():
            f = by_feature[feature]
            new_fdesc = desc or None
            record(f"feature:{feature}.description", f.description, new_fdesc)
            f.description = new_fdesc
        if changes:
            rec.updated_at = now
            s.add_all(changes)
        from larder.ui.service import edit_entry

        return [edit_entry(c) for c in changes]


__all__ = ["MAX_NAME", "MAX_TEXT", "apply_table_edit"]
