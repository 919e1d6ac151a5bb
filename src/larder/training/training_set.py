"""Training sets and named feature specs.

>>> import tempfile, pandas as pd
>>> from larder.client import FeatureEngineeringClient
>>> from larder.training import FeatureLookup
>>> fe = FeatureEngineeringClient(root=tempfile.mkdtemp())
>>> _ = fe.create_table("houses", "Id", df=pd.DataFrame({"Id": [1, 2], "OverallQual": [7, 5]}))
>>> labels = pd.DataFrame({"Id": [2, 1, 3], "price": [100.0, 200.0, 50.0]})
>>> ts = fe.create_training_set(labels, [FeatureLookup("houses", "Id")], label="price")
>>> ts.load_df().to_dict("list")
{'Id': [2, 1, 3], 'OverallQual': [5.0, 7.0, nan], 'price': [100.0, 200.0, 50.0]}
>>> ts.feature_table_versions
{'main.default.houses': 0}
>>> fe.close()
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC
from typing import Any

import pandas as pd
from sqlalchemy import select

from larder.catalog.base import current_user, named_record, utcnow
from larder.catalog.functions import FeatureSpecRecord
from larder.context import Context
from larder.errors import FeatureLookupError, FeatureSpecError
from larder.names import parse_name
from larder.offline.tables import TableService
from larder.training.assemble import as_pandas, assemble_offline, validate_frame
from larder.training.functions import FeatureFunction, FunctionService
from larder.training.lookup import FeatureLookup
from larder.training.resolve import build_spec
from larder.training.spec import FeatureSpec, LookupStep

Features = Sequence[FeatureLookup | FeatureFunction] | FeatureLookup | FeatureFunction


def _label_list(label: str | Sequence[str] | None) -> list[str]:
    if label is None:
        return []
    if not isinstance(label, (str, list, tuple)):
        raise FeatureLookupError(f"label must be None, a column name or a list of column names, got {label!r}.")
    items = [label] if isinstance(label, str) else list(label)
    for c in items:
        if not isinstance(c, str) or not c:
            raise FeatureLookupError(f"label must be None, a column name or a list of column names, got {c!r}.")
    return items


class TrainingSet:
    """The caller's rows joined with point-in-time features, with pinned lineage.

    Created by ``FeatureEngineeringClient.create_training_set``. The table versions and function versions
    are fixed when the training set is created: :meth:`load_df` returns the same data however the tables
    change afterwards.
    """

    def __init__(self, ctx: Context, tables: TableService, spec: FeatureSpec, df: Any,
                 label: str | list[str] | None, *, use_timeseries_filtering: bool = False) -> None:
        self._ctx = ctx
        self._tables = tables
        self._spec = spec
        self._df = df
        self._label = label
        self._labels = _label_list(label)
        self._use_timeseries_filtering = bool(use_timeseries_filtering)

    @property
    def feature_spec(self) -> FeatureSpec:
        """The pinned :class:`FeatureSpec` (what ``log_model`` stores with a model)."""
        return self._spec

    @property
    def label(self) -> str | list[str] | None:
        return self._label

    @property
    def labels(self) -> list[str]:
        """Label column names (empty when ``label=None``)."""
        return list(self._labels)

    @property
    def feature_table_versions(self) -> dict[str, int | None]:
        """``{table full name: Delta version}`` read by :meth:`load_df`."""
        return self._spec.table_versions()

    @property
    def function_versions(self) -> dict[str, str]:
        """``{function full name: version}`` applied by :meth:`load_df`."""
        return self._spec.function_versions()

    @property
    def feature_versions(self) -> dict[str, int | None]:
        """``{declarative feature: Delta version of its source table}`` read by :meth:`load_df`."""
        return self._spec.feature_versions()

    @property
    def lineage(self) -> dict[str, Any]:
        """Tables with their Delta versions and functions with their versions."""
        out: dict[str, Any] = {
            "tables": [{"name": t, "version": v} for t, v in self.feature_table_versions.items()],
            "functions": [{"name": f, "version": v} for f, v in self.function_versions.items()],
        }
        if self._spec.features:
            out["features"] = [{"name": f.name, "source_table": f.source_table, "source_version": f.source_version}
                               for f in self._spec.features]
        return out

    @property
    def columns(self) -> list[str]:
        """The columns :meth:`load_df` returns, in order."""
        excl = set(self._spec.exclude_columns)
        cols = [c for c in self._df.columns if c not in excl and c not in self._labels]
        cols += [c for c in self._spec.output_columns if c not in cols]
        return cols + self._labels

    @property
    def feature_columns(self) -> list[str]:
        """The model's input columns: :attr:`columns` without the labels."""
        return [c for c in self.columns if c not in self._labels]

    def get_output_columns(self) -> list[str]:
        """Databricks' name of :attr:`columns`: every column :meth:`load_df` returns."""
        return self.columns

    def load_df(self) -> Any:
        """The training data: the caller's columns (minus excluded ones), then the features, then the
        label column(s); exactly the caller's rows, in order, duplicates kept, with the caller's index.

        A pandas DataFrame on the DuckDB engine; on the Spark engine a Spark DataFrame, computed in Spark
        (:func:`larder.training.assemble_spark.assemble_spark`), whatever the caller's frame was."""
        if self._ctx.engine.name == "spark":
            from larder.training.assemble_spark import assemble_spark

            out = assemble_spark(self._ctx, self._spec, self._df, use_pinned_versions=True, tables=self._tables)
            return out.select(*[f"`{c}`" for c in out.columns if c not in self._labels],
                              *[f"`{c}`" for c in self._labels])
        out = assemble_offline(self._ctx, self._spec, self._df, use_pinned_versions=True, tables=self._tables,
                               time_filter=self._use_timeseries_filtering)
        return out[[c for c in out.columns if c not in self._labels] + self._labels]

    def __repr__(self) -> str:
        feats = f", features={self.feature_versions}" if self._spec.features else ""
        rows = len(self._df) if isinstance(self._df, pd.DataFrame) else "?"
        return (f"TrainingSet(rows={rows}, label={self._label!r}, tables={self.feature_table_versions}, "
                f"functions={self.function_versions}{feats})")


class TrainingService:
    """Training sets and named feature specs. Used through ``FeatureEngineeringClient``."""

    def __init__(self, ctx: Context, tables: TableService, functions: FunctionService) -> None:
        self.ctx = ctx
        self.tables = tables
        self.functions = functions

    def create_training_set(self, df: Any, feature_lookups: Features | None, label: str | Sequence[str] | None,
                            exclude_columns: str | Sequence[str] | None = None, *,
                            features: Sequence[Any] | None = None,
                            feature_spec: str | FeatureSpec | None = None,
                            use_timeseries_filtering: bool = False) -> TrainingSet:
        """The features come from exactly one of ``feature_lookups`` (lookups and functions), ``features``
        (declarative features) or ``feature_spec`` (a named spec), as in Databricks."""
        given = [n for n, v in (("feature_lookups", feature_lookups), ("features", features),
                                ("feature_spec", feature_spec)) if v is not None]
        if len(given) != 1:
            raise FeatureLookupError(
                "create_training_set needs exactly one of feature_lookups (FeatureLookup / FeatureFunction), "
                "features (declarative Feature objects) and feature_spec (the name of a feature spec)"
                + (f", got {given}." if given else ", got none.")
            )
        if features is not None:
            from larder.declarative.feature import Feature

            bad = [f for f in (features if isinstance(features, (list, tuple)) else [features])
                   if not isinstance(f, Feature)]
            if bad:
                raise FeatureLookupError(
                    f"features must be declarative Feature objects (FeatureLookup and FeatureFunction go in "
                    f"feature_lookups), got {type(bad[0]).__name__} {bad[0]!r}."
                )
        items: Any = feature_lookups if features is None else (
            list(features) if isinstance(features, (list, tuple)) else [features])
        from larder.offline.spark import is_spark_frame

        spark_df = df if is_spark_frame(df) else None
        if spark_df is not None:  # kept as the lazy Spark DataFrame it is; checked on its schema
            from larder.training.assemble_spark import empty_frame

            frame = empty_frame(spark_df)
        else:
            frame = as_pandas(df)
        labels = _label_list(label)
        missing = [c for c in labels if c not in frame.columns]
        if missing:
            raise FeatureLookupError(
                f"label column(s) {missing} are not in the DataFrame (columns: {list(frame.columns)})."
            )
        if feature_spec is not None:
            spec = self._spec_for_training(feature_spec, exclude_columns)
        else:
            spec = build_spec(self.tables, self.functions, items, exclude_columns)
        excluded_labels = [c for c in labels if c in spec.exclude_columns]
        if excluded_labels:
            raise FeatureLookupError(
                f"label column(s) {excluded_labels} are also in exclude_columns; a label is always kept. Remove "
                "them from exclude_columns (or pass label=None)."
            )
        validate_frame(spec, frame)
        # copy-on-write: later edits of df do not reach the training set (a Spark DataFrame is immutable)
        snapshot = spark_df if spark_df is not None else frame.copy(deep=False)
        label_out: str | list[str] | None = label if label is None or isinstance(label, str) else list(labels)
        return TrainingSet(self.ctx, self.tables, spec, snapshot, label_out,
                           use_timeseries_filtering=use_timeseries_filtering)

    def _spec_for_training(self, feature_spec: str | FeatureSpec,
                           exclude_columns: str | Sequence[str] | None) -> FeatureSpec:
        """A named spec (or a spec object) re-pinned to its tables' current Delta versions, with the
        training set's own ``exclude_columns`` added to the spec's."""
        if isinstance(feature_spec, str):
            stored = self.get_feature_spec(feature_spec)
        elif isinstance(feature_spec, FeatureSpec):
            stored = feature_spec
        else:
            raise FeatureSpecError(
                f"feature_spec must be the name of a feature spec (or a FeatureSpec), got "
                f"{type(feature_spec).__name__}."
            )
        steps = [replace(step, table_version=self.tables.snapshot(step.table).version)
                 if isinstance(step, LookupStep) else step for step in stored.steps]
        extra = [exclude_columns] if isinstance(exclude_columns, str) else list(exclude_columns or [])
        excluded = list(stored.exclude_columns) + [c for c in extra if c not in stored.exclude_columns]
        return FeatureSpec(steps=steps, exclude_columns=excluded, name=stored.name, description=stored.description,
                           extra_pip_requirements=list(stored.extra_pip_requirements))

    # -- named feature specs ------------------------------------------------------------------
    def create_feature_spec(self, name: str, features: Features,
                            exclude_columns: str | Sequence[str] | None = None,
                            description: str | None = None, *,
                            extra_pip_requirements: Sequence[str] | None = None) -> FeatureSpec:
        qn = parse_name(name, kind="feature spec")
        reqs = _requirements(qn.full, extra_pip_requirements)
        spec = build_spec(self.tables, self.functions, features, exclude_columns, name=qn.full,
                          description=description)
        spec.extra_pip_requirements = reqs
        allowed = set(spec.input_columns) | set(spec.produced_columns)
        unknown = [c for c in spec.exclude_columns if c not in allowed]
        if unknown:
            raise FeatureSpecError(
                f"Feature spec {qn.full!r}: exclude_columns names {unknown}, which are neither inputs "
                f"{spec.input_columns} nor outputs {spec.produced_columns} of the spec."
            )
        with self.ctx.catalog.session() as s:
            if s.scalars(select(FeatureSpecRecord.id).where(FeatureSpecRecord.full_name == qn.full)).first():
                raise FeatureSpecError(
                    f"Feature spec {qn.full!r} already exists. Delete it with delete_feature_spec() first, or "
                    "choose another name."
                )
            rec = FeatureSpecRecord(full_name=qn.full, catalog_name=qn.catalog, schema_name=qn.schema,
                                    spec_name=qn.name, yaml=spec.to_yaml(), description=description,
                                    created_at=utcnow(), owner=current_user())
            s.add(rec)
            s.flush()
            return _with_info(spec, rec)

    def update_feature_spec(self, name: str, *, owner: str) -> None:
        if not isinstance(owner, str) or not owner.strip():
            raise FeatureSpecError(f"update_feature_spec({name!r}): owner must be a non-empty string.")
        with self.ctx.catalog.session() as s:
            self._spec_record(s, name).owner = owner.strip()

    def _spec_record(self, session: Any, name: str) -> FeatureSpecRecord:
        full = parse_name(name, kind="feature spec").full
        return named_record(session, FeatureSpecRecord, FeatureSpecRecord.full_name, full, lambda known: FeatureSpecError(
            f"Feature spec {full!r} does not exist. Create it with create_feature_spec(); existing specs: {known}."
        ))

    def get_feature_spec(self, name: str) -> FeatureSpec:
        with self.ctx.catalog.session() as s:
            rec = self._spec_record(s, name)
            return _with_info(FeatureSpec.from_yaml(rec.yaml), rec)

    def list_feature_specs(self, name_pattern: str | None = None) -> list[FeatureSpec]:
        with self.ctx.catalog.session() as s:
            return [_with_info(FeatureSpec.from_yaml(r.yaml), r)
                    for r in s.scalars(select(FeatureSpecRecord).order_by(FeatureSpecRecord.full_name))
                    if not name_pattern or fnmatch.fnmatchcase(r.full_name, name_pattern)
                    or fnmatch.fnmatchcase(r.spec_name, name_pattern)]

    def delete_feature_spec(self, name: str) -> None:
        with self.ctx.catalog.session() as s:
            s.delete(self._spec_record(s, name))


def _with_info(spec: FeatureSpec, rec: FeatureSpecRecord) -> FeatureSpec:
    """``spec`` with the catalog's record of it (creator and creation time: Databricks' FeatureSpecInfo)."""
    spec.creator = rec.owner
    spec.creation_timestamp_ms = int(rec.created_at.replace(tzinfo=UTC).timestamp() * 1000)
    return spec


def _requirements(name: str, reqs: Sequence[str] | None) -> list[str]:
    if reqs is None:
        return []
    items = [reqs] if isinstance(reqs, str) else list(reqs)
    bad = [r for r in items if not isinstance(r, str) or not r.strip()]
    if bad:
        raise FeatureSpecError(
            f"Feature spec {name!r}: extra_pip_requirements must be pip requirement strings such as "
            f"'requests>=2.28', got {bad}."
        )
    return list(dict.fromkeys(r.strip() for r in items))


__all__ = ["TrainingService", "TrainingSet"]
