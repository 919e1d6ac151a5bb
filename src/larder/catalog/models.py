"""Catalog records for models logged with ``log_model``: their lineage.

One :class:`ModelRecord` per logged model (an MLflow logged model, with its run and, when it was
registered, the registered name and version). Each points to:

* :class:`ModelTableRecord`: the feature tables it reads, with the Delta version pinned at training
  time and where the table was published online when the model was logged;
* :class:`ModelFeatureRecord`: every looked-up feature (table, feature, output column);
* :class:`ModelFunctionRecord`: every feature function (name, version, bindings, output column).

The same ``log_model`` transaction records function usage (``catalog.functions.FunctionUsage``) so
that ``drop_function`` refuses to drop a version a model needs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from larder.catalog.base import Base, utcnow


class ModelRecord(Base):
    __tablename__ = "logged_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: ``runs:/<run id>/<artifact path>``
    run_uri: Mapped[str] = mapped_column(String(512), index=True)
    #: MLflow's ``models:/<model id>`` URI (MLflow 3 logged models).
    model_uri: Mapped[str] = mapped_column(String(512))
    run_id: Mapped[str] = mapped_column(String(64))
    artifact_path: Mapped[str] = mapped_column(String(256))
    registered_name: Mapped[str | None] = mapped_column(String(400), nullable=True, index=True)
    registered_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    flavor: Mapped[str] = mapped_column(String(128))
    tracking_uri: Mapped[str] = mapped_column(Text)
    feature_spec: Mapped[str] = mapped_column(Text)
    input_columns: Mapped[list[str]] = mapped_column(JSON)
    feature_columns: Mapped[list[str]] = mapped_column(JSON)
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    logged_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    owner: Mapped[str | None] = mapped_column(String(256), nullable=True)

    tables: Mapped[list[ModelTableRecord]] = relationship(
        back_populates="model", cascade="all, delete-orphan", order_by="ModelTableRecord.position"
    )
    features: Mapped[list[ModelFeatureRecord]] = relationship(
        back_populates="model", cascade="all, delete-orphan", order_by="ModelFeatureRecord.position"
    )
    functions: Mapped[list[ModelFunctionRecord]] = relationship(
        back_populates="model", cascade="all, delete-orphan", order_by="ModelFunctionRecord.position"
    )


class ModelTableRecord(Base):
    __tablename__ = "logged_model_tables"
    __table_args__ = (UniqueConstraint("model_id", "table_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("logged_models.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    table_name: Mapped[str] = mapped_column(String(400), index=True)
    delta_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: ``{"store_type", "store_name", "store_spec", "online_table_name", "delta_version"}`` of the
    #: table's active publication when the model was logged, or None.
    online: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    model: Mapped[ModelRecord] = relationship(back_populates="tables")


class ModelFeatureRecord(Base):
    __tablename__ = "logged_model_features"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("logged_models.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    table_name: Mapped[str] = mapped_column(String(400), index=True)
    feature_name: Mapped[str] = mapped_column(String(256))
    output_name: Mapped[str] = mapped_column(String(256))
    dtype: Mapped[str] = mapped_column(String(128))
    default_value: Mapped[Any] = mapped_column(JSON, nullable=True)

    model: Mapped[ModelRecord] = relationship(back_populates="features")


class ModelFunctionRecord(Base):
    __tablename__ = "logged_model_functions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("logged_models.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    function_name: Mapped[str] = mapped_column(String(400), index=True)
    function_version: Mapped[str] = mapped_column(String(64))
    input_bindings: Mapped[dict[str, str]] = mapped_column(JSON)
    output_name: Mapped[str] = mapped_column(String(256))

    model: Mapped[ModelRecord] = relationship(back_populates="functions")


def find_model(session: Session, *, registered_name: str | None = None, registered_version: str | None = None,
               run_uri: str | None = None) -> ModelRecord | None:
    """The record of a registered model version (``registered_version`` None: the highest version),
    or of a logged model by its ``runs:/`` URI."""
    stmt = select(ModelRecord)
    if run_uri is not None:
        stmt = stmt.where(ModelRecord.run_uri == run_uri)
    if registered_name is not None:
        stmt = stmt.where(ModelRecord.registered_name == registered_name)
        if registered_version is not None:
            stmt = stmt.where(ModelRecord.registered_version == str(registered_version))
    rows = list(session.scalars(stmt.order_by(ModelRecord.id.desc())))
    if registered_name is not None and registered_version is None:
        rows.sort(key=lambda r: int(r.registered_version or "-1") if (r.registered_version or "").isdigit() else -1,
                  reverse=True)
    return rows[0] if rows else None


def models_using_table(session: Session, table_name: str) -> list[ModelRecord]:
    """Logged models that read feature table ``table_name`` (full name), newest first."""
    return list(session.scalars(
        select(ModelRecord).join(ModelTableRecord).where(ModelTableRecord.table_name == table_name)
        .order_by(ModelRecord.id.desc())
    ))


__all__ = [
    "ModelFeatureRecord",
    "ModelFunctionRecord",
    "ModelRecord",
    "ModelTableRecord",
    "find_model",
    "models_using_table",
]
