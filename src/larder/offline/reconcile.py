"""Keeping the catalog and the Delta logs in agreement after a crash, and finding what a crash left.

larder orders its writes so that a killed process never leaves the catalog and the Delta logs
disagreeing in a way the next call cannot settle on its own (see :mod:`larder.offline.locations` for
create and drop). What remains is settled here:

* :func:`sync_features`: a ``write_table`` killed between its Delta commit and its catalog update
  leaves columns in the Delta schema that the catalog has no feature record for. The next write (or
  feature update) adds them, each with the first Delta version whose schema has it.
* :func:`find_problems` / :func:`repair`: what ``larder doctor`` reports and ``larder doctor --repair``
  fixes: unreferenced table directories (a create killed before it reached the catalog), tombstones
  and interrupted drops, unregistered features, and quality records of tables that no longer exist.

Example::

    from larder.offline.reconcile import find_problems, repair
    for problem in find_problems(ctx):
        print(problem.kind, problem.table, problem.detail)
    repair(ctx)   # fixes every repairable problem; returns what it fixed
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from deltalake import DeltaTable
from sqlalchemy import delete, select

from larder.catalog.tables import FeatureRecord, TableRecord
from larder.offline import delta, locations
from larder.offline.storage import Location

if TYPE_CHECKING:
    from larder.context import Context

ProblemKind = Literal[
    "orphan_directory", "tombstone", "interrupted_drop", "missing_data", "unregistered_features",
    "stale_quality",
]

#: Unreferenced directories younger than this may belong to a create in progress: reported, not removed.
MIN_ORPHAN_AGE_S = 60.0


@dataclass(frozen=True)
class Problem:
    """One disagreement between the catalog and the storage, with what ``repair`` does about it."""

    kind: ProblemKind
    table: str | None
    path: str | None
    detail: str
    fix: str
    repairable: bool = True

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "table": self.table, "path": self.path, "detail": self.detail,
                "fix": self.fix, "repairable": self.repairable}


# ------------------------------------------------------------------------------ features after a crash
def _column_names(location: Location, version: int) -> set[str]:
    table = DeltaTable(location.uri, version=version, storage_options=location.storage_options)
    return {f.name for f in table.schema().fields}


def first_versions(location: Location, columns: Iterable[str], latest: int) -> dict[str, int]:
    """For each column of the table at ``location``'s version ``latest``, the first version whose schema
    has it (binary search: larder only ever adds columns)."""
    seen: dict[int, set[str]] = {}

    def has(column: str, version: int) -> bool:
        if version not in seen:
            seen[version] = _column_names(location, version)
        return column in seen[version]

    out = {}
    for column in columns:
        lo, hi = 0, latest
        while lo < hi:
            mid = (lo + hi) // 2
            if has(column, mid):
                hi = mid
            else:
                lo = mid + 1
        out[column] = lo
    return out


def sync_features(rec: TableRecord, columns: list[tuple[str, str]], *, location: Location, version: int,
                  added_now: dict[str, int] | None = None) -> list[str]:
    """Add feature records for ``columns`` (name, dtype; the Delta schema at ``version``) that ``rec``
    lacks, in schema order; returns the names added. ``added_now`` gives the version of columns the
    caller's own commit added; the others get theirs from the Delta log (:func:`first_versions`)."""
    known = {f.name for f in rec.features}
    missing = [(n, t) for n, t in columns if n not in known]
    if not missing:
        return []
    added_now = added_now or {}
    unknown = [n for n, _ in missing if n not in added_now]
    versions = {**(first_versions(location, unknown, version) if unknown else {}), **added_now}
    pos = max((f.position for f in rec.features), default=-1) + 1
    for i, (name, dtype) in enumerate(missing):
        rec.features.append(FeatureRecord(name=name, dtype=dtype, position=pos + i,
                                          added_in_version=versions[name]))
    return [n for n, _ in missing]


# --------------------------------------------------------------------------------- doctor: find, repair
def _table_dirs(storage: Location) -> Iterator[Path]:
    """Directories at table depth (``<catalog>/<schema>/<dir>``) under a local storage root."""
    root = Path(storage.uri)
    if not storage.is_local or not root.is_dir():
        return
    for cat in sorted(p for p in root.iterdir() if p.is_dir()):
        for schema in sorted(p for p in cat.iterdir() if p.is_dir()):
            yield from sorted(p for p in schema.iterdir() if p.is_dir())


def _age_s(directory: Path) -> float:
    newest = directory.stat().st_mtime
    for p in directory.rglob("*"):
        try:
            newest = max(newest, p.stat().st_mtime)
        except FileNotFoundError:  # removed while we look
            continue
    return time.time() - newest


def find_problems(ctx: Context, *, min_orphan_age_s: float = MIN_ORPHAN_AGE_S) -> list[Problem]:
    """Every disagreement between the catalog and the table storage (reads only)."""
    from larder.quality.store import QUALITY_RECORDS

    problems: list[Problem] = []
    referenced: set[Path] = set()
    with ctx.catalog.session() as s:
        records = list(s.scalars(select(TableRecord).order_by(TableRecord.full_name)))
        names = {r.full_name for r in records}
        for rec in records:
            location = ctx.storage.resolve(rec.path)
            path = location.uri
            if location.is_local:
                referenced.add(Path(path).resolve())
            if not delta.is_table(location):
                if locations.tombstones(location):
                    problems.append(Problem(
                        "interrupted_drop", rec.full_name, path,
                        "a drop_table was killed after moving the data aside, before deleting the catalog entry",
                        "finish the drop: delete the catalog entry and the moved-aside data"))
                else:
                    problems.append(Problem(
                        "missing_data", rec.full_name, path,
                        "the catalog has this table but its Delta data is missing (deleted outside larder?)",
                        "restore the directory from a backup, or drop the table with drop_table()",
                        repairable=False))
                continue
            table = delta.open_table(location)
            known = {f.name for f in rec.features}
            missing = [f.name for f in table.schema().fields if f.name not in known]
            if missing:
                problems.append(Problem(
                    "unregistered_features", rec.full_name, path,
                    f"columns {missing} are in the Delta schema but not in the catalog (a write_table was "
                    "killed between its commit and its catalog update)",
                    "add feature records for them, with the Delta version that added each"))
        for model in QUALITY_RECORDS:
            for stale in sorted(set(s.scalars(select(model.table_full_name))) - names):
                problems.append(Problem(
                    "stale_quality", stale, None,
                    f"{model.__tablename__} has rows for a table that no longer exists",
                    "delete them (a table created later under this name must not inherit them)"))
    for directory in _table_dirs(ctx.storage.root):
        if directory.resolve() in referenced:
            continue
        if locations.is_tombstone(directory.name):
            problems.append(Problem("tombstone", None, str(directory),
                                    "data of a dropped table, moved aside and not yet removed", "remove it"))
            continue
        young = _age_s(directory) < min_orphan_age_s
        problems.append(Problem(
            "orphan_directory", None, str(directory),
            "a table directory that no catalog entry references (a create_table killed before it reached "
            "the catalog)" + (f"; changed in the last {min_orphan_age_s:.0f} s, so perhaps a create in "
                              "progress" if young else ""),
            "remove it" if not young else "wait, then run the repair again",
            repairable=not young))
    return problems


def repair(ctx: Context, problems: list[Problem] | None = None, *,
           min_orphan_age_s: float = MIN_ORPHAN_AGE_S) -> list[Problem]:
    """Fix every repairable problem (those of ``problems``, else all found); returns the ones fixed."""
    from larder.quality.store import QUALITY_RECORDS, delete_rows_for_table

    todo = problems if problems is not None else find_problems(ctx, min_orphan_age_s=min_orphan_age_s)
    fixed = []
    for p in todo:
        if not p.repairable:
            continue
        if p.kind in ("orphan_directory", "tombstone"):
            assert p.path is not None
            Location(p.path).remove()
        elif p.kind == "interrupted_drop":
            with ctx.catalog.session() as s:
                rec = s.scalars(select(TableRecord).where(TableRecord.full_name == p.table)).first()
                if rec is not None:
                    location = ctx.storage.resolve(rec.path)
                    delete_rows_for_table(s, rec.full_name)
                    s.delete(rec)
                    for stone in locations.tombstones(location):
                        stone.remove()
        elif p.kind == "unregistered_features":
            with ctx.catalog.session() as s:
                rec = s.scalars(select(TableRecord).where(TableRecord.full_name == p.table)).first()
                if rec is None:
                    continue
                location = ctx.storage.resolve(rec.path)
                snap = delta.load(location, name=rec.full_name)
                sync_features(rec, [(f.name, str(f.type)) for f in snap.schema], location=location,
                              version=snap.version)
        elif p.kind == "stale_quality":
            with ctx.catalog.session() as s:
                if s.scalars(select(TableRecord.id).where(TableRecord.full_name == p.table)).first() is None:
                    for model in QUALITY_RECORDS:
                        s.execute(delete(model).where(model.table_full_name == p.table))
        fixed.append(p)
    return fixed


__all__ = ["MIN_ORPHAN_AGE_S", "Problem", "ProblemKind", "find_problems", "first_versions", "repair",
           "sync_features"]
