"""Catalog records for feature tables, their features and tags, and the Delta versions written."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from larder.catalog.base import Base, utcnow


class TableRecord(Base):
    __tablename__ = "feature_tables"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    full_name: Mapped[str] = mapped_column(String(400), unique=True, index=True)
    catalog_name: Mapped[str] = mapped_column(String(128))
    schema_name: Mapped[str] = mapped_column(String(128))
    table_name: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(Text)
    primary_keys: Mapped[list[str]] = mapped_column(JSON)
    timestamp_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    partition_columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    owner: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    features: Mapped[list[FeatureRecord]] = relationship(
        back_populates="table", cascade="all, delete-orphan", order_by="FeatureRecord.position"
    )
    tags: Mapped[list[TagRecord]] = relationship(back_populates="table", cascade="all, delete-orphan")


class FeatureRecord(Base):
    __tablename__ = "features"
    __table_args__ = (UniqueConstraint("table_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_id: Mapped[int] = mapped_column(ForeignKey("feature_tables.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    dtype: Mapped[str] = mapped_column(String(128))
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    added_in_version: Mapped[int] = mapped_column(Integer, default=0)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    table: Mapped[TableRecord] = relationship(back_populates="features")


class TagRecord(Base):
    __tablename__ = "feature_table_tags"
    __table_args__ = (UniqueConstraint("table_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_id: Mapped[int] = mapped_column(ForeignKey("feature_tables.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(256))
    value: Mapped[str] = mapped_column(Text, default="")

    table: Mapped[TableRecord] = relationship(back_populates="tags")


class TableVersionRecord(Base):
    """One Delta version of a feature table, recorded by the larder write that committed it.

    ``write_id`` is also in that Delta commit's ``commitInfo`` (as ``larder.write_id``), so the catalog
    and the Delta log can be checked against each other version by version (``larder doctor``).
    ``attempts`` counts the commit attempts the write needed (1: no conflict with concurrent writers).
    Rows go with the table (foreign key, ``ON DELETE CASCADE``). Versions committed before catalog
    revision ``0002_table_versions`` (or by other Delta writers) have no row.
    """

    __tablename__ = "feature_table_versions"
    __table_args__ = (UniqueConstraint("table_id", "delta_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_id: Mapped[int] = mapped_column(ForeignKey("feature_tables.id", ondelete="CASCADE"), index=True)
    delta_version: Mapped[int] = mapped_column(Integer)
    #: ``"create"``, ``"merge"`` or ``"overwrite"``
    operation: Mapped[str] = mapped_column(String(16))
    #: rows in the write (the DataFrame's, not the table's)
    rows: Mapped[int] = mapped_column(BigInteger)
    write_id: Mapped[str] = mapped_column(String(36), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    #: ``user@host`` of the writing process
    writer: Mapped[str | None] = mapped_column(String(256), nullable=True)
    committed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
