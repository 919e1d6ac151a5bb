"""Catalog records for declarative features and their lineage.

* :class:`DeclarativeFeatureRecord`: one registered :class:`~larder.declarative.feature.Feature` (its
  three-part name, the definition as JSON, the source table and the source's Delta version when it
  was registered).
* :class:`FeatureModelUsage`: which logged model (run URI, registered name and version) uses which
  feature, written by ``log_model`` in the same transaction as the model's other lineage.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from larder.catalog.base import Base, utcnow


class DeclarativeFeatureRecord(Base):
    __tablename__ = "declarative_features"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    full_name: Mapped[str] = mapped_column(String(400), unique=True, index=True)
    catalog_name: Mapped[str] = mapped_column(String(128))
    schema_name: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    #: ``Feature.to_dict()``
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The source feature table (None for a RequestSource) and its Delta version at registration.
    source_table: Mapped[str | None] = mapped_column(String(400), nullable=True, index=True)
    source_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The Arrow type of the feature's values, as validated against the source at registration.
    output_type: Mapped[str | None] = mapped_column(String(256), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    owner: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class FeatureModelUsage(Base):
    __tablename__ = "declarative_feature_models"
    __table_args__ = (UniqueConstraint("feature_name", "run_uri"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    feature_name: Mapped[str] = mapped_column(String(400), index=True)
    run_uri: Mapped[str] = mapped_column(String(512))
    registered_name: Mapped[str | None] = mapped_column(String(400), nullable=True)
    registered_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The source table's Delta version the model's training set read.
    source_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


def record_feature_usage(session: Session, features: Iterable[tuple[str, int | None]], *, run_uri: str,
                         registered_name: str | None, registered_version: str | None) -> None:
    """Record that the model at ``run_uri`` uses ``features`` (``(full name, source version)`` pairs)."""
    for name, version in features:
        known = session.scalars(select(FeatureModelUsage).where(FeatureModelUsage.feature_name == name,
                                                                FeatureModelUsage.run_uri == run_uri)).first()
        if known is None:
            session.add(FeatureModelUsage(feature_name=name, run_uri=run_uri, registered_name=registered_name,
                                          registered_version=registered_version, source_version=version,
                                          created_at=utcnow()))
        else:
            known.registered_name, known.registered_version = registered_name, registered_version


def models_using(session: Session, feature_name: str) -> list[dict[str, Any]]:
    """The models that use a feature: ``[{"run_uri", "registered_name", "registered_version",
    "source_version"}]``, oldest first."""
    rows = session.scalars(select(FeatureModelUsage).where(FeatureModelUsage.feature_name == feature_name)
                           .order_by(FeatureModelUsage.id))
    return [{"run_uri": r.run_uri, "registered_name": r.registered_name, "registered_version": r.registered_version,
             "source_version": r.source_version} for r in rows]


def forget_usage(session: Session, feature_name: str) -> None:
    session.execute(delete(FeatureModelUsage).where(FeatureModelUsage.feature_name == feature_name))


__all__ = ["DeclarativeFeatureRecord", "FeatureModelUsage", "forget_usage", "models_using", "record_feature_usage"]
