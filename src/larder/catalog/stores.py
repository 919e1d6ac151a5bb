"""Catalog records for online stores created with ``create_online_store``.

Databricks provisions an online store (a Lakebase instance) by name. larder records a named store in
the catalog: its spec (where the data lives: an embedded SQLite file by default, or Redis or DynamoDB),
and Databricks' sizing fields as given (``capacity``, ``read_replica_count``, ``usage_policy_id``).
Stores named in ``larder.yaml`` are not recorded here; they are read from the configuration.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from larder.catalog.base import Base, utcnow


class OnlineStoreRecord(Base):
    __tablename__ = "online_stores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    #: The store spec as JSON (``{"type": "sqlite", "path": ...}``); never holds credentials.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Whether larder created the store's data (the default SQLite file), so deleting removes it.
    managed_data: Mapped[int] = mapped_column(Integer, default=0)
    capacity: Mapped[str] = mapped_column(String(16))
    read_replica_count: Mapped[int] = mapped_column(Integer, default=0)
    usage_policy_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    creator: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


__all__ = ["OnlineStoreRecord"]
