"""Registering, reading and deleting declarative features in the catalog; ``compute_features``.

Used through ``FeatureEngineeringClient`` (``create_feature``, ``register_feature``, ``get_feature``,
``list_features``, ``delete_feature``, ``compute_features``). A feature is validated against its
source (:func:`larder.declarative.compute.validate_feature`) before its catalog row is written, so a
bad definition leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from larder.catalog.base import current_user, utcnow
from larder.catalog.declarative import DeclarativeFeatureRecord, forget_usage, models_using
from larder.declarative.compute import compute_range, validate_feature
from larder.declarative.feature import Feature, FeatureFunctionKind
from larder.declarative.sources import DataFrameSource, DataSource, DeltaTableSource
from larder.errors import FeatureDefinitionError, FeatureExistsError, FeatureNotFoundError, InvalidNameError
from larder.names import parse_name

if TYPE_CHECKING:
    import datetime as dt

    from larder.context import Context
    from larder.offline.tables import TableService


def _part(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FeatureDefinitionError(f"{what} must be a non-empty string, got {value!r}.")
    return value.strip()


def _full_name(full_name: Any) -> str:
    if not isinstance(full_name, str) or not full_name.strip():
        raise FeatureDefinitionError(f"full_name must be a non-empty string '<catalog>.<schema>.<name>', got {full_name!r}.")
    try:
        return parse_name(full_name.strip(), kind="feature").full
    except InvalidNameError as exc:
        raise FeatureDefinitionError(str(exc)) from exc


class FeatureService:
    """Declarative features in the catalog. Used through ``FeatureEngineeringClient``."""

    def __init__(self, ctx: Context, tables: TableService) -> None:
        self.ctx = ctx
        self.tables = tables

    # -- definitions -----------------------------------------------------------------------------
    def create_feature(self, *, source: DataSource, function: FeatureFunctionKind, catalog_name: str,
                       schema_name: str, entity: list[str] | None = None, timeseries_column: str | None = None,
                       name: str | None = None, description: str | None = None) -> Feature:
        catalog = _part(catalog_name, "catalog_name")
        schema = _part(schema_name, "schema_name")
        if isinstance(name, str) and "." in name.strip():
            parts = name.strip().split(".")
            if len(parts) != 3 or parts[:2] != [catalog, schema]:
                raise FeatureDefinitionError(
                    f"Feature name {name!r} does not match catalog_name {catalog!r} and schema_name {schema!r}; pass "
                    "the bare name, or a three-part name in that catalog and schema."
                )
        feature = Feature(source=source, function=function, entity=entity, timeseries_column=timeseries_column,
                          name=name, description=description)
        if isinstance(source, DataFrameSource):
            validate_feature(None, feature)  # checked now; a DataFrameSource feature is never stored
            return feature
        return self.register_feature(feature=feature, catalog_name=catalog, schema_name=schema)

    def register_feature(self, *, feature: Feature, catalog_name: str | None = None,
                         schema_name: str | None = None) -> Feature:
        if not isinstance(feature, Feature):
            raise FeatureDefinitionError(f"register_feature: feature must be a Feature, got {type(feature).__name__}.")
        if isinstance(feature.source, DataFrameSource):
            raise FeatureDefinitionError(
                f"Feature {feature.name!r}: a feature with a DataFrameSource cannot be registered; write the DataFrame "
                "to a feature table (create_table) and use a DeltaTableSource."
            )
        if feature.is_registered:
            raise FeatureDefinitionError(f"Feature {feature.full_name!r} is already registered.")
        catalog = self._resolve("catalog_name", feature.catalog_name, catalog_name)
        schema = self._resolve("schema_name", feature.schema_name, schema_name)
        full = parse_name(f"{catalog}.{schema}.{feature.name}", kind="feature")
        candidate = feature._with_names(full.catalog, full.schema)
        with self.ctx.catalog.session() as s:
            self.add_record(s, candidate)
        return candidate._registered_as(full.catalog, full.schema)

    # -- records, in the caller's catalog transaction (register_feature, larder apply) ------------------
    def add_record(self, session: Any, candidate: Feature) -> None:
        """Validate ``candidate`` (a Feature with its catalog and schema) against its source and add its
        catalog row; a feature of that name already registered is a FeatureExistsError."""
        full = candidate.full_name
        value_type, table, version = validate_feature(self.tables, candidate)
        if session.scalars(select(DeclarativeFeatureRecord.id)
                           .where(DeclarativeFeatureRecord.full_name == full)).first() is not None:
            raise FeatureExistsError(
                f"Feature {full!r} is already registered. Delete it with delete_feature(full_name="
                f"{full!r}) first, or pass another name."
            )
        session.add(DeclarativeFeatureRecord(
            full_name=full, catalog_name=candidate.catalog_name, schema_name=candidate.schema_name,
            name=candidate.name, definition=candidate.to_dict(), source_table=table, source_version=version,
            output_type=str(value_type), description=candidate.description, owner=current_user(), created_at=utcnow(),
        ))

    def replace_record(self, session: Any, candidate: Feature) -> None:
        """Validate ``candidate`` and make it the definition of the registered feature of its name (the
        source version recorded is the current one; models that use the feature keep their lineage)."""
        value_type, table, version = validate_feature(self.tables, candidate)
        rec = self._record(session, candidate.full_name)
        rec.definition, rec.source_table, rec.source_version = candidate.to_dict(), table, version
        rec.output_type, rec.description = str(value_type), candidate.description

    def delete_record(self, session: Any, full_name: str) -> None:
        from larder.catalog.materialization import MaterializationRecord

        rec = self._record(session, full_name)
        made = session.scalars(select(MaterializationRecord.id)
                               .where(MaterializationRecord.feature_name == rec.full_name)).all()
        if made:
            raise FeatureDefinitionError(
                f"Feature {rec.full_name!r} is materialized ({len(made)} materialized features). Delete them "
                f"first: for m in fe.list_materialized_features(feature_name={rec.full_name!r}): "
                "fe.delete_materialized_feature(materialized_feature=m)."
            )
        forget_usage(session, rec.full_name)
        session.delete(rec)

    @staticmethod
    def _resolve(field: str, on_feature: str | None, given: str | None) -> str:
        a = on_feature.strip() if on_feature else None
        b = given.strip() if isinstance(given, str) and given.strip() else None
        if a and b and a != b:
            raise FeatureDefinitionError(
                f"{field} on the Feature ({a!r}) conflicts with the {field} argument ({b!r}); remove one."
            )
        if not (a or b):
            raise FeatureDefinitionError(f"register_feature: {field} must be a non-empty string.")
        return (a or b)  # type: ignore[return-value]

    def _record(self, session: Any, full_name: str) -> DeclarativeFeatureRecord:
        full = _full_name(full_name)
        rec = session.scalars(select(DeclarativeFeatureRecord).where(DeclarativeFeatureRecord.full_name == full)).first()
        if rec is None:
            qn = parse_name(full, kind="feature")
            known = session.scalars(select(DeclarativeFeatureRecord.full_name)
                                    .where(DeclarativeFeatureRecord.catalog_name == qn.catalog,
                                           DeclarativeFeatureRecord.schema_name == qn.schema)
                                    .order_by(DeclarativeFeatureRecord.full_name).limit(20)).all()
            raise FeatureNotFoundError(
                f"Feature {full!r} is not registered. Create it with create_feature(); features in "
                f"{qn.catalog}.{qn.schema}: {list(known)}."
            )
        return rec

    def get_feature(self, *, full_name: str) -> Feature:
        with self.ctx.catalog.session() as s:
            definition = self._record(s, full_name).definition
        return Feature.from_dict(definition, registered=True)

    def list_features(self, *, catalog_name: str, schema_name: str, max_results: int = 100) -> list[Feature]:
        catalog, schema = _part(catalog_name, "catalog_name"), _part(schema_name, "schema_name")
        if not isinstance(max_results, int) or max_results <= 0:
            raise FeatureDefinitionError(f"max_results must be a positive integer, got {max_results!r}.")
        with self.ctx.catalog.session() as s:
            rows = s.scalars(select(DeclarativeFeatureRecord.definition)
                             .where(DeclarativeFeatureRecord.catalog_name == catalog,
                                    DeclarativeFeatureRecord.schema_name == schema)
                             .order_by(DeclarativeFeatureRecord.name).limit(max_results)).all()
        return [Feature.from_dict(d, registered=True) for d in rows]

    def delete_feature(self, *, full_name: str) -> None:
        """Delete a feature's definition. Models logged with it keep their own copy and keep working."""
        with self.ctx.catalog.session() as s:
            self.delete_record(s, full_name)

    def feature_lineage(self, full_name: str) -> dict[str, Any]:
        """``{"feature", "source_table", "source_version", "created_at", "owner", "models"}``: the source
        table and its Delta version at registration, and the logged models that use the feature."""
        with self.ctx.catalog.session() as s:
            rec = self._record(s, full_name)
            return {"feature": rec.full_name, "source_table": rec.source_table, "source_version": rec.source_version,
                    "value_type": rec.output_type, "created_at": rec.created_at, "owner": rec.owner,
                    "models": models_using(s, rec.full_name)}

    # -- computing -----------------------------------------------------------------------------
    def resolve(self, features: Sequence[Feature | str]) -> list[Feature]:
        """Features given as objects or registered names."""
        out = []
        for f in features:
            if isinstance(f, str):
                out.append(self.get_feature(full_name=f))
            elif isinstance(f, Feature):
                out.append(f)
            else:
                raise FeatureDefinitionError(f"Expected a Feature or a feature's full name, got {type(f).__name__} {f!r}.")
        return out

    def compute_features(self, *, features: Sequence[Feature | str], start: dt.datetime | None = None,
                         end: dt.datetime | None = None) -> Any:
        if not features:
            raise FeatureDefinitionError("The 'features' parameter should contain at least 1 feature to be computed.")
        resolved = self.resolve(features)
        for f in resolved:
            if isinstance(f.source, DeltaTableSource) or isinstance(f.source, DataFrameSource):
                validate_feature(self.tables, f)
        if self.ctx.engine.name == "spark":  # a Spark DataFrame, computed on the executors
            from larder.offline.spark.aggregate import compute_range_spark

            return compute_range_spark(self.ctx.engine, self.tables, resolved, start=start, end=end)
        table = compute_range(self.ctx.engine, self.tables, resolved, start=start, end=end)
        return table.to_pandas()


__all__ = ["FeatureService"]
