"""Catalog records of streams (``create_stream``) and the consumer's progress.

A stream's definition is stored as JSON (``Stream.to_dict``: source, connection URL as given, with any
``${NAME}`` left unexpanded, schemas, destination table). ``stream_id`` is fixed at creation: the
consumer tags each Delta commit with it, so a stream deleted and created again under the same name
starts from the beginning instead of resuming the old one's offsets.

The consumer's progress is two pairs, each a hint the Delta log can overrule:

* ``delta_version`` / ``offsets``: the newest Delta commit the consumer made and the stream offsets
  it holds (the same offsets are in that commit's ``commitInfo``, which is the truth);
* ``online_version`` / ``online_offsets``: how far the table's live publications were written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from larder.catalog.base import Base, utcnow


class StreamRecord(Base):
    __tablename__ = "streams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(400), unique=True, index=True)
    stream_id: Mapped[str] = mapped_column(String(64), unique=True)
    destination: Mapped[str] = mapped_column(String(400), index=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    creator: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    delta_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    offsets: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    online_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    online_offsets: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    events: Mapped[int] = mapped_column(Integer, default=0)


__all__ = ["StreamRecord"]
