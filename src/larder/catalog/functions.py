"""Catalog records for feature functions, named feature specs and function usage by models.

* :class:`FunctionRecord` holds one named function; each distinct body registered under that name is a
  :class:`FunctionVersionRecord` (the version is a content hash, so re-registering the same code is a
  no-op). A version keeps the source, a cloudpickle and what is needed to rebuild it from the source.
* :class:`FeatureSpecRecord` holds a named :class:`~larder.training.spec.FeatureSpec` as YAML.
* :class:`FunctionUsage` says which logged model (name, version) uses which function version.
  ``log_model`` writes it through :func:`record_function_usage`; ``drop_function`` reads it through
  :func:`function_versions_in_use` and refuses to drop a version a model still needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from larder.catalog.base import Base, utcnow


class FunctionRecord(Base):
    __tablename__ = "feature_functions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    full_name: Mapped[str] = mapped_column(String(400), unique=True, index=True)
    catalog_name: Mapped[str] = mapped_column(String(128))
    schema_name: Mapped[str] = mapped_column(String(128))
    function_name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    owner: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    versions: Mapped[list[FunctionVersionRecord]] = relationship(
        back_populates="function", cascade="all, delete-orphan", order_by="FunctionVersionRecord.seq"
    )


class FunctionVersionRecord(Base):
    __tablename__ = "feature_function_versions"
    __table_args__ = (UniqueConstraint("function_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    function_id: Mapped[int] = mapped_column(ForeignKey("feature_functions.id", ondelete="CASCADE"), index=True)
    #: Content hash of the normalised source (and the constant globals it reads).
    version: Mapped[str] = mapped_column(String(64))
    #: Registration order within the function: the highest is the current version.
    seq: Mapped[int] = mapped_column(Integer)
    python_name: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(Text)
    #: The normalised code (decorators dropped) that ``exec`` runs when the pickle cannot be loaded.
    code: Mapped[str] = mapped_column(Text)
    #: ``[{"name", "kind", "annotation", "has_default", "default"}]`` per parameter.
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    return_type: Mapped[str | None] = mapped_column(String(256), nullable=True)
    output_type: Mapped[str | None] = mapped_column(String(256), nullable=True)
    mode: Mapped[str] = mapped_column(String(16), default="auto")
    #: What exec() of the source needs: ``{"imports": {alias: module}, "constants": {name: value}}``.
    environment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pickle: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    python_version: Mapped[str] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    function: Mapped[FunctionRecord] = relationship(back_populates="versions")


class FeatureSpecRecord(Base):
    __tablename__ = "feature_specs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    full_name: Mapped[str] = mapped_column(String(400), unique=True, index=True)
    catalog_name: Mapped[str] = mapped_column(String(128))
    schema_name: Mapped[str] = mapped_column(String(128))
    spec_name: Mapped[str] = mapped_column(String(128))
    yaml: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    #: Who owns the spec: its creator, until ``update_feature_spec(owner=...)`` (schema version 2).
    owner: Mapped[str | None] = mapped_column(String(256), nullable=True)


class FunctionUsage(Base):
    """One logged model version using one function version."""

    __tablename__ = "feature_function_usage"
    __table_args__ = (UniqueConstraint("model_name", "model_version", "function_name", "function_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(400), index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    function_name: Mapped[str] = mapped_column(String(400), index=True)
    function_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


def record_function_usage(
    session: Session,
    model_name: str,
    model_version: str | int,
    functions: Iterable[tuple[str, str]],
) -> None:
    """Record that model ``model_name`` version ``model_version`` uses each ``(function full name,
    function version)`` of ``functions``. Idempotent: a pair already recorded is left as is.

    Call it inside the catalog session that registers the model, so both commit together::

        with ctx.catalog.session() as s:
            record_function_usage(s, "main.default.price_model", 3, spec.function_versions().items())
    """
    mv = str(model_version)
    for fn_name, fn_version in functions:
        exists = session.scalars(
            select(FunctionUsage.id).where(
                FunctionUsage.model_name == model_name,
                FunctionUsage.model_version == mv,
                FunctionUsage.function_name == fn_name,
                FunctionUsage.function_version == fn_version,
            )
        ).first()
        if exists is None:
            session.add(FunctionUsage(model_name=model_name, model_version=mv, function_name=fn_name,
                                      function_version=fn_version))
    session.flush()


def function_versions_in_use(session: Session, name: str) -> dict[str, list[tuple[str, str]]]:
    """For the function with full name ``name``: ``{function version: [(model name, model version), ...]}``
    for every version some logged model uses (versions no model uses are absent)."""
    out: dict[str, list[tuple[str, str]]] = {}
    rows = session.scalars(
        select(FunctionUsage).where(FunctionUsage.function_name == name)
        .order_by(FunctionUsage.model_name, FunctionUsage.model_version)
    )
    for row in rows:
        out.setdefault(row.function_version, []).append((row.model_name, row.model_version))
    return out


def forget_model_usage(session: Session, model_name: str, model_version: str | int | None = None) -> int:
    """Delete the usage rows of a model (all its versions when ``model_version`` is None), for example
    when the model version is deleted. Returns the number of rows removed."""
    stmt = select(FunctionUsage).where(FunctionUsage.model_name == model_name)
    if model_version is not None:
        stmt = stmt.where(FunctionUsage.model_version == str(model_version))
    rows = list(session.scalars(stmt))
    for row in rows:
        session.delete(row)
    session.flush()
    return len(rows)


__all__ = [
    "FeatureSpecRecord",
    "FunctionRecord",
    "FunctionUsage",
    "FunctionVersionRecord",
    "forget_model_usage",
    "function_versions_in_use",
    "record_function_usage",
]
