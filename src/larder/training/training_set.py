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
from typing import Any

import pandas as pd
from sqlalchemy import select

from larder.catalog.base import utcnow
from larder.catalog.functions import FeatureSpecRecord
from larder.context import Context
from larder.errors import FeatureLookupError, FeatureSpecError
from larder.names import parse_name
from larder.offline.tables import TableService
from larder.training.assemble import as_pandas, assemble_offline, validate_frame
from larder.training.functions import FeatureFunction, FunctionService
from larder.training.lookup import FeatureLookup
from larder.training.resolve import build_spec
from larder.training.spec import FeatureSpec

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

    def __init__(self, ctx: Context, tables: TableService, spec: FeatureSpec, df: pd.DataFrame,
                 label: str | list[str] | None) -> None:
        self._ctx = ctx
        self._tables = tables
        self._spec = spec
        self._df = df
        self._label = label
        self._labels = _label_list(label)

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

    def load_df(self) -> pd.DataFrame:
        """The training data: the caller's columns (minus excluded ones), then the features, then the
        label column(s); exactly the caller's rows, in order, duplicates kept, with the caller's index."""
        out = assemble_offline(self._ctx, self._spec, self._df, use_pinned_versions=True, tables=self._tables)
        return out[[c for c in out.columns if c not in self._labels] + self._labels]

    def __repr__(self) -> str:
        feats = f", features={self.feature_versions}" if self._spec.features else ""
        return (f"TrainingSet(rows={len(self._df)}, label={self._label!r}, tables={self.feature_table_versions}, "
                f"functions={self.function_versions}{feats})")


class TrainingService:
    """Training sets and named feature specs. Used through ``FeatureEngineeringClient``."""

    def __init__(self, ctx: Context, tables: TableService, functions: FunctionService) -> None:
        self.ctx = ctx
        self.tables = tables
        self.functions = functions

    def create_training_set(self, df: Any, feature_lookups: Features | None, label: str | Sequence[str] | None,
                            exclude_columns: str | Sequence[str] | None = None, *,
                            features: Sequence[Any] | None = None) -> TrainingSet:
        """``feature_lookups`` (lookups and functions) or ``features`` (declarative features), not both,
        as in Databricks."""
        if (feature_lookups is None) == (features is None):
            raise FeatureLookupError(
                "create_training_set needs exactly one of feature_lookups (FeatureLookup / FeatureFunction) and "
                "features (declarative Feature objects)" + (", got both." if features is not None else ", got neither.")
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
        frame = as_pandas(df)
        labels = _label_list(label)
        missing = [c for c in labels if c not in frame.columns]
        if missing:
            raise FeatureLookupError(
                f"label column(s) {missing} are not in the DataFrame (columns: {list(frame.columns)})."
            )
        spec = build_spec(self.tables, self.functions, items, exclude_columns)
        excluded_labels = [c for c in labels if c in spec.exclude_columns]
        if excluded_labels:
            raise FeatureLookupError(
                f"label column(s) {excluded_labels} are also in exclude_columns; a label is always kept. Remove "
                "them from exclude_columns (or pass label=None)."
            )
        validate_frame(spec, frame)
        snapshot = frame.copy(deep=False)  # copy-on-write: later edits of df do not reach the training set
        label_out: str | list[str] | None = label if label is None or isinstance(label, str) else list(labels)
        return TrainingSet(self.ctx, self.tables, spec, snapshot, label_out)

    # -- named feature specs ------------------------------------------------------------------
    def create_feature_spec(self, name: str, features: Features,
                            exclude_columns: str | Sequence[str] | None = None,
                            description: str | None = None) -> FeatureSpec:
        qn = parse_name(name, kind="feature spec")
        spec = build_spec(self.tables, self.functions, features, exclude_columns, name=qn.full,
                          description=description)
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
            s.add(FeatureSpecRecord(full_name=qn.full, catalog_name=qn.catalog, schema_name=qn.schema,
                                    spec_name=qn.name, yaml=spec.to_yaml(), description=description,
                                    created_at=utcnow()))
        return spec

    def _spec_record(self, session: Any, name: str) -> FeatureSpecRecord:
        full = parse_name(name, kind="feature spec").full
        rec = session.scalars(select(FeatureSpecRecord).where(FeatureSpecRecord.full_name == full)).first()
        if rec is None:
            known = session.scalars(select(FeatureSpecRecord.full_name).order_by(FeatureSpecRecord.full_name)).all()
            raise FeatureSpecError(
                f"Feature spec {full!r} does not exist. Create it with create_feature_spec(); existing specs: "
                f"{list(known)}."
            )
        return rec

    def get_feature_spec(self, name: str) -> FeatureSpec:
        with self.ctx.catalog.session() as s:
            text = self._spec_record(s, name).yaml
        return FeatureSpec.from_yaml(text)

    def list_feature_specs(self, name_pattern: str | None = None) -> list[FeatureSpec]:
        with self.ctx.catalog.session() as s:
            rows = [(r.full_name, r.spec_name, r.yaml) for r in
                    s.scalars(select(FeatureSpecRecord).order_by(FeatureSpecRecord.full_name))]
        return [FeatureSpec.from_yaml(text) for full, short, text in rows
                if not name_pattern or fnmatch.fnmatchcase(full, name_pattern)
                or fnmatch.fnmatchcase(short, name_pattern)]

    def delete_feature_spec(self, name: str) -> None:
        with self.ctx.catalog.session() as s:
            s.delete(self._spec_record(s, name))


__all__ = ["TrainingService", "TrainingSet"]
