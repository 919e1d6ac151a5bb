"""Catalog records for feature serving endpoints (``create_feature_serving_endpoint``).

An endpoint is a name under which ``larder serve`` answers ``POST /serving-endpoints/{name}/invocations``
with the features of one feature spec; the record keeps its served entity's settings as Databricks
gives them (``workload_size``, ``scale_to_zero_enabled``), who created it and when.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from larder.catalog.base import Base, utcnow


class ServingEndpointRecord(Base):
    __tablename__ = "serving_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, index=True)
    feature_spec_name: Mapped[str] = mapped_column(String(400), index=True)
    #: ``{"name", "workload_size", "scale_to_zero_enabled", "route_optimized"}``
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    creator: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


__all__ = ["ServingEndpointRecord"]
