"""Features as code: ``larder plan DIR`` and ``larder apply DIR``.

A project is a directory of Python modules declaring :class:`~larder.declarative.Feature` objects
and :class:`FeatureTableDefinition` objects at module level (:mod:`larder.project.loader`). ``plan``
shows what registering them would create, change or delete in the catalog (:mod:`larder.project.plan`)
without writing anything; ``apply`` does it (:mod:`larder.project.apply`). Deletions are limited to
objects that an earlier apply of the same project created (recorded in the catalog's
``managed_objects``). See ``docs/declarative-features.md``, "Features as code".

>>> from larder.project import FeatureTableDefinition, ProjectService  # doctest: +SKIP
>>> svc = ProjectService.open("/srv/larder")                            # doctest: +SKIP
>>> plan = svc.plan("features/", project="shop")                        # doctest: +SKIP
>>> plan.summary(); svc.apply(plan)                                     # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from larder.context import Context
from larder.project.apply import apply_plan
from larder.project.definitions import FeatureTableDefinition
from larder.project.loader import Declared, LoadedProject, load_project
from larder.project.plan import ACTIONS, Change, FieldChange, Plan, Planner, check_project_name


class ProjectService:
    """Plans and applies projects against one larder deployment (its catalog and storage)."""

    def __init__(self, ctx: Context) -> None:
        from larder.declarative.service import FeatureService
        from larder.offline.tables import TableService

        self.ctx = ctx
        self.tables = TableService(ctx)
        self.features = FeatureService(ctx, self.tables)

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None) -> ProjectService:
        return cls(Context(root))

    def close(self) -> None:
        self.ctx.close()

    def __enter__(self) -> ProjectService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def plan(self, directory: str | os.PathLike[str], project: str | None = None, *, adopt: bool = False) -> Plan:
        """What applying ``directory`` would change (nothing is written). ``project`` defaults to the
        directory's name; ``adopt``: declared objects that exist but were made by hand (by no project)
        become the project's, instead of being refused."""
        name = check_project_name(project if project is not None else Path(directory).expanduser().resolve().name)
        return Planner(self.ctx, self.tables, self.features, adopt=adopt).plan(load_project(directory), name)

    def apply(self, plan: Plan) -> Plan:
        """Apply a plan made by :meth:`plan`; returns it."""
        apply_plan(self.ctx, self.tables, self.features, plan)
        return plan


__all__ = ["ACTIONS", "Change", "Declared", "FeatureTableDefinition", "FieldChange", "LoadedProject", "Plan",
           "ProjectService", "load_project"]
