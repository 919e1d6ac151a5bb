"""Catalog records for online publications.

One :class:`PublicationRecord` per ``publish_table`` call: which feature table, which online store
(its name in ``larder.yaml`` if it has one, its type and its spec as JSON with credentials removed),
the name of the table in the store, the Delta version published, the mode, the rows written and when.
``online_table`` holds what a reader needs to read the table back without the offline side
(entity keys, timestamp key, Arrow schema), so it can be embedded in a model. A publication is
*active* until the online table is dropped (``dropped_at`` set); lookups resolve a feature table to
its most recent active publication.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from larder.catalog.base import Base, utcnow


class PublicationRecord(Base):
    __tablename__ = "online_publications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_name: Mapped[str] = mapped_column(String(400), index=True)
    #: Name of the store in larder.yaml's ``online_stores`` (None: a spec object was passed, or the
    #: embedded default store).
    store_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    store_type: Mapped[str] = mapped_column(String(32))
    #: The store spec as JSON, without credentials (a Redis URL's password is removed).
    store_spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Stable identity of the store (type + location), used to find publications to the same store.
    store_key: Mapped[str] = mapped_column(String(512), index=True)
    online_table_name: Mapped[str] = mapped_column(String(512))
    #: ``{"name", "primary_keys", "timestamp_key", "schema"}``; schema is base64 Arrow IPC.
    online_table: Mapped[dict[str, Any]] = mapped_column(JSON)
    features: Mapped[list[str]] = mapped_column(JSON)
    delta_version: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(16))
    filter_condition: Mapped[str | None] = mapped_column(Text, nullable=True)
    rows: Mapped[int] = mapped_column(BigInteger)
    #: The publication order (``snapshot_order(table created, Delta version)``): what stores compare to
    #: refuse an older publication, and the ordering value written with every row of a snapshot table
    #: (a time series' rows are ordered by event time). None in records of larder before 0.2 for time
    #: series.
    order_value: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    published_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    dropped_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class PendingPushRecord(Base):
    """A ``push(to="both")`` under way: written before its Delta commit, deleted once every online store
    has its rows. One still here after its process ended is a push whose online write did not finish
    (killed between the commit and the stores, or a store failed): ``larder doctor`` lists it and
    ``--repair`` (or a retry of the push with its ``push_id``) completes it."""

    __tablename__ = "pending_pushes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_name: Mapped[str] = mapped_column(String(400), index=True)
    push_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


__all__ = ["PendingPushRecord", "PublicationRecord"]
