"""Catalog records for data quality: expectation sets, validation runs and profiles.

Rows refer to feature tables by their full name (``catalog.schema.table``) rather than by a foreign
key, so the quality area stays independent of the table records; ``drop_table`` removes them with
:func:`larder.quality.store.delete_for_table`. Validation runs and profiles are kept per Delta version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from larder.catalog.base import Base, utcnow


class QualitySettingsRecord(Base):
    """A table's expectations (JSON list), enforcement policy and profiling settings."""

    __tablename__ = "quality_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_full_name: Mapped[str] = mapped_column(String(400), unique=True, index=True)
    expectations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    policy: Mapped[str] = mapped_column(String(16), default="strict")
    profile_on_write: Mapped[bool] = mapped_column(Boolean, default=True)
    profile_sample_rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class ValidationRunRecord(Base):
    """The expectation results of the write that produced one Delta version."""

    __tablename__ = "quality_validation_runs"
    __table_args__ = (UniqueConstraint("table_full_name", "delta_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_full_name: Mapped[str] = mapped_column(String(400), index=True)
    delta_version: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    policy: Mapped[str] = mapped_column(String(16))
    row_count: Mapped[int] = mapped_column(Integer)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ProfileRecord(Base):
    """Per-feature statistics of the rows written in one Delta version."""

    __tablename__ = "quality_profiles"
    __table_args__ = (UniqueConstraint("table_full_name", "delta_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_full_name: Mapped[str] = mapped_column(String(400), index=True)
    delta_version: Mapped[int] = mapped_column(Integer)
    row_count: Mapped[int] = mapped_column(Integer)
    profiled_rows: Mapped[int] = mapped_column(Integer)
    sampled: Mapped[bool] = mapped_column(Boolean, default=False)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


__all__ = ["ProfileRecord", "QualitySettingsRecord", "ValidationRunRecord"]
