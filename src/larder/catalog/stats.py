"""What a catalog listing needs of a feature table without opening its Delta log: the latest Delta
version, its row count and when it was written.

:class:`TableStatsRecord` holds one row per feature table. ``create_table`` and ``write_table`` record
it in the same catalog transaction that records the write, from the snapshot the write just committed
(no extra log replay). It is a cache of what Delta says, never the truth: the web catalog's table page, which opens the
Delta table anyway, refreshes a row that disagrees with it, and fills in the rows of a catalog written
before these records existed (:func:`tables_without_stats`) in the background when it starts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from larder.catalog.base import Base, utcnow
from larder.catalog.tables import TableRecord


class TableStatsRecord(Base):
    __tablename__ = "feature_table_stats"

    table_id: Mapped[int] = mapped_column(ForeignKey("feature_tables.id", ondelete="CASCADE"), primary_key=True)
    delta_version: Mapped[int] = mapped_column(Integer)
    row_count: Mapped[int] = mapped_column(BigInteger)
    #: When the version was written (the commit time, UTC, naive).
    written_at: Mapped[datetime] = mapped_column(DateTime)
    #: When this row was last recorded (by a write or by a reader that refreshed it).
    recorded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


def record_table_stats(session: Session, table_id: int, *, version: int, row_count: int,
                       written_at: datetime) -> None:
    """Upsert the stats of the table with catalog id ``table_id``. A row for a newer version than
    ``version`` is kept (a slower concurrent writer never moves the stats back)."""
    rec = session.get(TableStatsRecord, table_id)
    if rec is None:
        session.add(TableStatsRecord(table_id=table_id, delta_version=version, row_count=row_count,
                                     written_at=written_at, recorded_at=utcnow()))
    elif rec.delta_version <= version:
        rec.delta_version, rec.row_count, rec.written_at = version, row_count, written_at
        rec.recorded_at = utcnow()


def tables_without_stats(session: Session, limit: int | None = None) -> list[tuple[int, str]]:
    """``(table id, full name)`` of feature tables that have no stats row yet, by name."""
    stmt = (select(TableRecord.id, TableRecord.full_name)
            .outerjoin(TableStatsRecord, TableStatsRecord.table_id == TableRecord.id)
            .where(TableStatsRecord.table_id.is_(None)).order_by(TableRecord.full_name))
    if limit is not None:
        stmt = stmt.limit(limit)
    return [(int(i), str(n)) for i, n in session.execute(stmt)]


__all__ = ["TableStatsRecord", "record_table_stats", "tables_without_stats"]
