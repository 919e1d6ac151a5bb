"""The audit trail of metadata edits made through the web catalog (``larder ui --allow-edit``).

One :class:`EditRecord` per changed field: which object (kind and full name), which field (for
example ``description``, ``owner``, ``tag:team`` or ``feature:GrLivArea.description``), the value
before and after (JSON; ``None`` where the field was unset or is deleted), who made the edit and when.
The edit and its records are committed in one catalog transaction. Records are kept after the object
is dropped: they are history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from larder.catalog.base import Base, utcnow


class EditRecord(Base):
    __tablename__ = "catalog_edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: ``"table"`` (feature table and its features).
    object_kind: Mapped[str] = mapped_column(String(32))
    object_name: Mapped[str] = mapped_column(String(400), index=True)
    field: Mapped[str] = mapped_column(String(300))
    old_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    new_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    edited_by: Mapped[str] = mapped_column(String(256))
    edited_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    #: Where the edit came from (``"ui"``; room for other tools).
    via: Mapped[str] = mapped_column(String(32), default="ui")


__all__ = ["EditRecord"]
