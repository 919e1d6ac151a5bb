"""Reading a model's lineage back: which tables (at which Delta versions), features and functions a
registered model version was trained on, from the catalog (``larder models show``).

>>> # fe.model_lineage("price_model", version=3).tables  ->  [TableLineage('main.default.houses', 4, ...)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from larder.catalog.models import ModelRecord, find_model
from larder.context import Context
from larder.errors import ModelError
from larder.models.tracking import ensure_tracking, mlflow_errors


@dataclass(frozen=True)
class TableLineage:
    name: str
    delta_version: int | None
    online: dict[str, Any] | None


@dataclass(frozen=True)
class FeatureLineage:
    table: str
    feature: str
    output: str
    dtype: str
    default: Any


@dataclass(frozen=True)
class FunctionLineage:
    name: str
    version: str
    input_bindings: dict[str, str]
    output: str


@dataclass(frozen=True)
class ModelLineage:
    """A logged model and everything it reads."""

    registered_name: str | None
    registered_version: str | None
    run_uri: str
    model_uri: str
    run_id: str
    flavor: str
    tracking_uri: str
    logged_at: datetime
    owner: str | None
    input_columns: list[str]
    feature_columns: list[str]
    labels: list[str]
    tables: list[TableLineage] = field(default_factory=list)
    features: list[FeatureLineage] = field(default_factory=list)
    functions: list[FunctionLineage] = field(default_factory=list)

    @property
    def uri(self) -> str:
        """``models:/name/version`` when registered, else the ``runs:/`` URI."""
        if self.registered_name and self.registered_version:
            return f"models:/{self.registered_name}/{self.registered_version}"
        return self.run_uri

    def to_dict(self) -> dict[str, Any]:
        return {
            "registered_name": self.registered_name, "registered_version": self.registered_version,
            "uri": self.uri, "run_uri": self.run_uri, "model_uri": self.model_uri, "run_id": self.run_id,
            "flavor": self.flavor, "tracking_uri": self.tracking_uri, "logged_at": self.logged_at.isoformat(),
            "owner": self.owner, "input_columns": self.input_columns, "feature_columns": self.feature_columns,
            "labels": self.labels,
            "tables": [{"name": t.name, "delta_version": t.delta_version, "online": t.online} for t in self.tables],
            "features": [{"table": f.table, "feature": f.feature, "output": f.output, "dtype": f.dtype,
                          "default": f.default} for f in self.features],
            "functions": [{"name": f.name, "version": f.version, "input_bindings": f.input_bindings,
                           "output": f.output} for f in self.functions],
        }


def _lineage(rec: ModelRecord) -> ModelLineage:
    return ModelLineage(
        registered_name=rec.registered_name, registered_version=rec.registered_version, run_uri=rec.run_uri,
        model_uri=rec.model_uri, run_id=rec.run_id, flavor=rec.flavor, tracking_uri=rec.tracking_uri,
        logged_at=rec.logged_at, owner=rec.owner, input_columns=list(rec.input_columns),
        feature_columns=list(rec.feature_columns), labels=list(rec.labels or []),
        tables=[TableLineage(t.table_name, t.delta_version, t.online) for t in rec.tables],
        features=[FeatureLineage(f.table_name, f.feature_name, f.output_name, f.dtype, f.default_value)
                  for f in rec.features],
        functions=[FunctionLineage(f.function_name, f.function_version, dict(f.input_bindings), f.output_name)
                   for f in rec.functions],
    )


def _alias_version(ctx: Context, name: str, alias: str) -> str:
    import mlflow

    ensure_tracking(ctx)
    with mlflow_errors(f"Resolving alias {alias!r} of model {name!r}"):
        return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)


def model_lineage(ctx: Context, name: str, version: str | int | None = None) -> ModelLineage:
    """The lineage of registered model ``name`` at ``version`` (a number or an alias; None: the highest
    version larder logged), or of a logged model given by its ``runs:/`` URI as ``name``."""
    if name.startswith("runs:/"):
        with ctx.catalog.session() as s:
            rec = find_model(s, run_uri=name.rstrip("/"))
            lineage = _lineage(rec) if rec is not None else None
        if lineage is None:
            raise ModelError(f"No model logged by larder at {name!r}. Log it with fe.log_model().")
        return lineage
    v = None if version is None else str(version)
    if v is not None and not v.isdigit():
        v = _alias_version(ctx, name, v)
    with ctx.catalog.session() as s:
        rec = find_model(s, registered_name=name, registered_version=v)
        lineage = _lineage(rec) if rec is not None else None
        known = sorted({r for r in s.scalars(select(ModelRecord.registered_name).distinct()) if r})
    if lineage is None:
        what = f"version {v} of model {name!r}" if v else f"model {name!r}"
        raise ModelError(
            f"The catalog has no lineage for {what}: it was not logged with larder's log_model() into this root. "
            f"Models with lineage: {known or 'none'}."
        )
    return lineage


def list_models(ctx: Context) -> list[ModelLineage]:
    """Every model larder logged, newest first."""
    with ctx.catalog.session() as s:
        return [_lineage(r) for r in s.scalars(select(ModelRecord).order_by(ModelRecord.id.desc()))]


__all__ = ["FeatureLineage", "FunctionLineage", "ModelLineage", "TableLineage", "list_models", "model_lineage"]
