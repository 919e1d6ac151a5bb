"""Catalog records of materialization (``materialize_features``, runs, backfills).

* :class:`MaterializationRecord`: one feature materialized to one destination (offline: a Delta
  feature table of its own; online: an online store), its trigger, and the lineage of the last
  successful run (source table, Delta version consumed, time).
* :class:`MaterializationRunRecord`: one row per run of a materialization (full, incremental or
  backfill): the source versions read, the time range recomputed, rows read and written, the output
  version, state and error. The run history is rows, never a growing value.
* :class:`OperationRecord`: a backfill operation (``operations/<id>``), its request and outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from larder.catalog.base import Base, utcnow


class MaterializationRecord(Base):
    __tablename__ = "materialized_features"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    feature_name: Mapped[str] = mapped_column(String(400), index=True)
    #: ``Feature.to_dict()`` of the feature as materialized
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    is_online: Mapped[bool] = mapped_column(Boolean)
    #: ``OfflineStoreConfig`` / ``OnlineStoreConfig`` as a dict
    destination: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: the offline feature table, or the online table, holding the values
    table_name: Mapped[str] = mapped_column(String(400), index=True)
    #: ``Trigger.to_dict()``, or ``{"kind": "none"}``
    trigger: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: features materialized by one call that share a source, entity and timeseries column (run together)
    group_id: Mapped[str] = mapped_column(String(64), index=True)
    source_table: Mapped[str | None] = mapped_column(String(400), nullable=True, index=True)
    #: the source's Delta version the last successful run consumed (None: never run)
    source_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_materialization_time: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    latest_backfill_operation: Mapped[str | None] = mapped_column(String(128), nullable=True)
    tags: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    budget_policy_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    creator: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class MaterializationRunRecord(Base):
    __tablename__ = "materialization_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    materialized_feature_id: Mapped[str] = mapped_column(String(64), index=True)
    #: ``full`` | ``incremental`` | ``backfill``
    kind: Mapped[str] = mapped_column(String(16))
    #: ``RUNNING`` | ``SUCCEEDED`` | ``FAILED``
    state: Mapped[str] = mapped_column(String(16))
    #: what started it: ``create``, ``cron``, ``table``, ``manual``, ``backfill``
    reason: Mapped[str] = mapped_column(String(16))
    source_table: Mapped[str | None] = mapped_column(String(400), nullable=True)
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the output times recomputed: [range_start, range_end) (None: unbounded)
    range_start: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    range_end: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    rows_read: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rows_written: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the offline feature table's Delta version this run committed (None: online, or nothing to write)
    output_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    operation: Mapped[str | None] = mapped_column(String(128), nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class OperationRecord(Base):
    __tablename__ = "materialization_operations"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(256), nullable=True, index=True)
    state: Mapped[str] = mapped_column(String(16))
    feature_full_names: Mapped[list[str]] = mapped_column(JSON)
    #: the ranges recomputed, ``BackfillRange.to_dict()`` each
    backfill_ranges: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: what else the operation's kind records (a purge: its entities table and version, per-feature results)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


__all__ = ["MaterializationRecord", "MaterializationRunRecord", "OperationRecord"]
