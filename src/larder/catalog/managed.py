"""Catalog records of objects that a features-as-code project created (``larder apply DIR``).

One row per catalog object (a feature table or a declarative feature) that ``larder apply`` created
for a project: the object's kind and full name, the project's name and the definition that was
applied. ``larder plan``/``apply`` delete only objects recorded here for the same project, so an
object made by hand, or by another project, is never deleted by a project that does not own it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from larder.catalog.base import Base, utcnow


class ManagedObjectRecord(Base):
    __tablename__ = "managed_objects"
    __table_args__ = (UniqueConstraint("kind", "full_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: ``"table"`` (a feature table) or ``"feature"`` (a declarative feature).
    kind: Mapped[str] = mapped_column(String(16))
    full_name: Mapped[str] = mapped_column(String(400))
    project: Mapped[str] = mapped_column(String(128), index=True)
    #: The definition as applied (plain data), and the project file that declared it.
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    source_file: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    applied_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    applied_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


__all__ = ["ManagedObjectRecord"]
