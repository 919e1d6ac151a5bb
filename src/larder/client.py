"""``FeatureEngineeringClient``: the facade. It holds no logic of its own; each method delegates to
the module that implements it, with the names and parameters of the Databricks Feature Engineering
client so that code ports with an import change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pandas as pd

from larder.context import Context
from larder.offline.tables import FeatureTable, TableService, WriteMode

if TYPE_CHECKING:  # training sets, feature functions and specs (imported lazily: they pull in DuckDB)
    from collections.abc import Callable

    from larder.declarative import AggregationFunction, ColumnSelection, DataSource, Feature
    from larder.declarative.service import FeatureService
    from larder.online.assemble import OnlineFeatureAssembler
    from larder.online.publish import Publication, Publisher
    from larder.online.service import OnlineLookupService
    from larder.online.stores import StoreCache
    from larder.training import (
        FeatureFunction,
        FeatureLookup,
        FeatureSpec,
        FunctionInfo,
        FunctionService,
        TrainingService,
        TrainingSet,
    )


_REQUIRED: Any = object()


class FeatureEngineeringClient:
    """Entry point to larder.

    Parameters
    ----------
    root:
        Directory holding the catalog, Delta tables and default online store. Defaults to the
        ``LARDER_ROOT`` environment variable, else ``./.larder``.

    Examples
    --------
    >>> import pandas as pd, tempfile
    >>> fe = FeatureEngineeringClient(root=tempfile.mkdtemp())
    >>> t = fe.create_table("houses", primary_keys="Id", df=pd.DataFrame({"Id": [1, 2], "Qual": [7, 5]}))
    >>> fe.read_table("houses").sort_values("Id")["Qual"].tolist()
    [7, 5]
    >>> fe.close()
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._ctx = Context(root)
        from larder.models.tracking import claim_default_uris

        # With no tracking URI set by the user, MLflow runs land in <root>/mlflow.db (cheap: no import).
        claim_default_uris(self._ctx)

    @property
    def root(self) -> str:
        return str(self._ctx.root)

    @cached_property
    def _tables(self) -> TableService:
        return TableService(self._ctx)

    def close(self) -> None:
        """Release the catalog connection (and any cached online-store clients)."""
        for cached in ("_online", "_publisher"):
            self.__dict__.pop(cached, None)
        stores = self.__dict__.pop("_online_stores", None)
        if stores is not None:
            stores.close()
        self._ctx.close()

    def __enter__(self) -> FeatureEngineeringClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeatureEngineeringClient(root={self.root!r})"

    # -- feature tables -------------------------------------------------------------------------
    def create_table(
        self,
        name: str,
        primary_keys: str | Sequence[str],
        df: Any = None,
        *,
        schema: Any = None,
        timestamp_keys: str | Sequence[str] | None = None,
        partition_columns: str | Sequence[str] | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        feature_descriptions: Mapping[str, str] | None = None,
        expectations: Sequence[Any] | None = None,
        quality_policy: str | None = None,
    ) -> FeatureTable:
        """Create a feature table (and write ``df`` into it, if given) in one all-or-nothing step.

        ``expectations`` (see :mod:`larder.quality`) are checked on this and every later write under
        ``quality_policy`` (default ``"strict"``)."""
        return self._tables.create_table(
            name, primary_keys, df, schema=schema, timestamp_keys=timestamp_keys,
            partition_columns=partition_columns, description=description, tags=tags,
            feature_descriptions=feature_descriptions, expectations=expectations,
            quality_policy=quality_policy,
        )

    def write_table(self, name: str, df: Any, mode: WriteMode = "merge") -> int:
        """Upsert ``df`` on the primary key (``mode="merge"``) or replace the contents
        (``mode="overwrite"``). New columns become new features. Returns the new Delta version."""
        return self._tables.write_table(name, df, mode=mode)

    def read_table(self, name: str, as_of_version: int | None = None,
                   as_of_timestamp: datetime | str | None = None) -> pd.DataFrame:
        """Read a feature table, optionally as of a Delta version or a point in time."""
        return self._tables.read_table(name, as_of_version=as_of_version, as_of_timestamp=as_of_timestamp)

    def get_table(self, name: str) -> FeatureTable:
        """Metadata: keys, features with types and descriptions, tags, owner, version, row count."""
        return self._tables.get_table(name)

    def drop_table(self, name: str) -> None:
        """Delete a feature table's data and catalog entry."""
        self._tables.drop_table(name)

    def list_tables(self, name_pattern: str | None = None,
                    tags: Mapping[str, str | None] | Sequence[str] | None = None) -> list[FeatureTable]:
        """Tables matching a glob ``name_pattern`` and carrying all ``tags``."""
        return self._tables.list_tables(name_pattern, tags)

    def set_feature_table_tag(self, *, name: str, key: str, value: str) -> None:
        self._tables.set_tag(name, key, value)

    def delete_feature_table_tag(self, *, name: str, key: str) -> None:
        self._tables.delete_tag(name, key)

    def set_feature_description(self, name: str, feature: str, description: str) -> None:
        self._tables.set_feature_description(name, feature, description)

    def record_feature_selection(self, name: str, report: Any) -> list[str]:
        """Store a :class:`~larder.selection.SelectionReport`'s verdict and scores as metadata of the
        table's features (key ``"selection"``); returns the features recorded. Features of the report
        that the table does not have (function outputs, for example) are skipped."""
        meta = report.feature_metadata()
        table = self.get_table(name)
        recorded = [f.name for f in table.features if f.name in meta]
        for feature in recorded:
            self._tables.update_feature(name, feature, metadata={"selection": meta[feature]})
        return recorded

    def table_history(self, name: str, limit: int | None = None) -> pd.DataFrame:
        """One row per Delta version: version, timestamp, operation, rows inserted and updated."""
        return self._tables.history(name, limit)

    # -- data quality (larder.quality) ------------------------------------------------------------
    def set_expectations(self, name: str, expectations: Sequence[Any], policy: str | None = None) -> Any:
        """Attach expectations to a table (replacing earlier ones) and optionally set the policy that
        enforces them on write: ``"strict"`` (reject, nothing committed), ``"warn"`` or ``"off"``."""
        from larder.quality.store import set_expectations

        t = self.get_table(name)
        return set_expectations(self._ctx.catalog, t.name, expectations, policy=policy,  # type: ignore[arg-type]
                                columns=[f.name for f in t.features])

    def get_expectations(self, name: str) -> Any:
        """The table's quality settings: expectations, policy, profiling options."""
        from larder.quality.store import get_settings

        return get_settings(self._ctx.catalog, self.get_table(name).name)

    def validate_table(self, name: str, version: int | None = None) -> Any:
        """Validate a version of the table (default: latest) against its expectations; stores nothing."""
        from larder.quality.api import validate_table

        return validate_table(self, name, version=version)

    def get_profile(self, name: str, version: int | None = None) -> Any:
        """The per-feature statistics profiled when ``version`` (default: latest profiled) was written."""
        from larder.quality.store import get_profile

        return get_profile(self._ctx.catalog, self.get_table(name).name, version)

    def compare(self, name: str, baseline: Any, current: Any = None, *, features: list[str] | None = None,
                thresholds: Any = None) -> Any:
        """Drift between two sides (a Delta version, a training set or a DataFrame each): per-feature
        PSI, KS or chi-square / Jensen-Shannon, thresholds and a verdict."""
        from larder.quality.api import compare_table

        return compare_table(self, name, baseline, current, features=features, thresholds=thresholds)

    def quality_report(self, name: str, out: str | os.PathLike[str], *, baseline_version: int | None = None,
                       current_version: int | None = None) -> Any:
        """Write a self-contained HTML quality report (histograms, null rates, expectation results)."""
        from larder.quality.api import report_table

        return report_table(self, name, out, baseline_version=baseline_version, current_version=current_version)

    # -- training sets, feature functions and feature specs --------------------------------------
    @cached_property
    def _functions(self) -> FunctionService:
        from larder.training.functions import FunctionService

        return FunctionService(self._ctx)

    @cached_property
    def _training(self) -> TrainingService:
        from larder.training.training_set import TrainingService

        return TrainingService(self._ctx, self._tables, self._functions)

    def create_training_set(
        self,
        df: Any,
        feature_lookups: Sequence[FeatureLookup | FeatureFunction] | None = None,
        label: Any = _REQUIRED,
        exclude_columns: str | Sequence[str] | None = None,
        *,
        features: Sequence[Feature] | None = None,
    ) -> TrainingSet:
        """Join point-in-time features (and feature functions) to ``df``'s rows.

        ``feature_lookups``: lookups and functions, applied in the order given; or ``features``:
        declarative features (see :meth:`create_feature`), each computed at the row's entity and
        timeseries column (strictly before the row's time); one of the two, as in Databricks.
        ``label`` is required (``None`` for an unsupervised set). Table, source and function versions
        are pinned now, so ``load_df()`` returns the same data later. Output: ``df``'s columns (minus
        ``exclude_columns``), the features, then the ``label`` column(s); exactly ``df``'s rows in order.
        """
        if label is _REQUIRED:
            from larder.errors import FeatureLookupError

            raise FeatureLookupError("create_training_set: label is required; pass label=None for a training set "
                                     "without labels.")
        return self._training.create_training_set(df, feature_lookups, label, exclude_columns, features=features)

    def create_function(self, name: str, func: Callable[..., Any], description: str | None = None, *,
                        mode: str = "auto") -> FunctionInfo:
        """Register a Python feature function (source, signature, cloudpickle) under ``name``. New code
        makes a new version (a content hash); the same code returns the existing version. ``mode``:
        ``"auto"`` (vectorised when it agrees with row-by-row), ``"vectorized"`` or ``"row"``."""
        return self._functions.create_function(name, func, description, mode=mode)

    def get_function(self, name: str, version: str | None = None) -> FunctionInfo:
        """A registered function: its current version, or ``version``."""
        return self._functions.get_function(name, version)

    def list_functions(self, name_pattern: str | None = None) -> list[FunctionInfo]:
        """The current version of each function whose name matches the glob ``name_pattern``."""
        return self._functions.list_functions(name_pattern)

    def drop_function(self, name: str, version: str | None = None) -> None:
        """Drop a function (or one version); refused while a logged model uses it (FunctionInUseError)."""
        self._functions.drop_function(name, version)

    def create_feature_spec(self, name: str, features: Sequence[FeatureLookup | FeatureFunction],
                            exclude_columns: str | Sequence[str] | None = None) -> FeatureSpec:
        """Pin ``features`` into a named :class:`~larder.training.FeatureSpec` stored in the catalog."""
        return self._training.create_feature_spec(name, features, exclude_columns)

    def get_feature_spec(self, name: str) -> FeatureSpec:
        """A named feature spec."""
        return self._training.get_feature_spec(name)

    def list_feature_specs(self, name_pattern: str | None = None) -> list[FeatureSpec]:
        """Named feature specs whose name matches the glob ``name_pattern``."""
        return self._training.list_feature_specs(name_pattern)

    def delete_feature_spec(self, name: str) -> None:
        """Delete a named feature spec (models that carry a copy are unaffected)."""
        self._training.delete_feature_spec(name)

    # -- declarative features (larder.declarative) ----------------------------------------------------
    @cached_property
    def _features(self) -> FeatureService:
        from larder.declarative.service import FeatureService

        return FeatureService(self._ctx, self._tables)

    def create_feature(self, *, source: DataSource, function: AggregationFunction | ColumnSelection,
                       catalog_name: str, schema_name: str, entity: list[str] | None = None,
                       timeseries_column: str | None = None, name: str | None = None,
                       description: str | None = None) -> Feature:
        """Define a declarative feature, validate it against its source and register it in the catalog
        (a ``DataFrameSource`` feature is validated and returned unregistered). Raises
        ``FeatureDefinitionError`` naming the feature and the fix; nothing is written then. See
        docs/declarative-features.md."""
        return self._features.create_feature(source=source, function=function, catalog_name=catalog_name,
                                             schema_name=schema_name, entity=entity,
                                             timeseries_column=timeseries_column, name=name, description=description)

    def register_feature(self, *, feature: Feature, catalog_name: str | None = None,
                         schema_name: str | None = None) -> Feature:
        """Register a ``Feature(...)`` built by hand (validated first); returns the registered copy."""
        return self._features.register_feature(feature=feature, catalog_name=catalog_name, schema_name=schema_name)

    def get_feature(self, *, full_name: str) -> Feature:
        """A registered feature (``'<catalog>.<schema>.<name>'``)."""
        return self._features.get_feature(full_name=full_name)

    def list_features(self, *, catalog_name: str, schema_name: str, max_results: int = 100) -> list[Feature]:
        """Registered features of a catalog and schema, by name."""
        return self._features.list_features(catalog_name=catalog_name, schema_name=schema_name,
                                            max_results=max_results)

    def delete_feature(self, *, full_name: str) -> None:
        """Delete a feature's definition (models logged with it keep their own copy)."""
        self._features.delete_feature(full_name=full_name)

    def feature_lineage(self, full_name: str) -> dict[str, Any]:
        """A feature's source table, the source's Delta version at registration and the models using it."""
        return self._features.feature_lineage(full_name)

    def compute_features(self, *, features: Sequence[Feature | str]) -> pd.DataFrame:
        """Feature values for every row of the (single) source, each row at its own timestamp: the
        features' entity and timeseries columns, then one column per feature; one row per distinct
        entity and time, sorted."""
        return self._features.compute_features(features=features)

    # -- online features: publishing and lookups ----------------------------------------------------
    @cached_property
    def _online_stores(self) -> StoreCache:
        from larder.online.stores import StoreCache

        return StoreCache(self._ctx.root)

    @cached_property
    def _publisher(self) -> Publisher:
        from larder.online.publish import Publisher

        return Publisher(self._ctx, self._tables, self._online_stores)

    @cached_property
    def _online(self) -> OnlineLookupService:
        from larder.online.service import OnlineLookupService

        return OnlineLookupService(self._publisher, self._online_stores, self._training)

    def publish_table(self, name: str, online_store: Any = None, filter_condition: Any = None,
                      mode: str = "merge", features: str | Sequence[str] | None = None, *,
                      version: int | None = None) -> Publication:
        """Publish the newest row per key of a feature table to an online store.

        ``online_store``: a spec object (``SQLiteStoreSpec``, ``AmazonDynamoDBSpec(...)``,
        ``RedisStoreSpec``), a name from larder.yaml's ``online_stores``, or None (the configured default,
        else the embedded SQLite store ``<root>/online.db``). ``filter_condition``: a SQL predicate (or a
        pyarrow expression) applied before the latest row per key is taken. ``mode="merge"`` never
        replaces a newer stored row with an older one; ``"overwrite"`` replaces the online table's
        contents atomically. ``features``: publish only these. ``version``: a Delta version (default
        latest). The publication is recorded in the catalog. See docs/online-features.md.
        """
        pub = self._publisher.publish_table(name, online_store, filter_condition=filter_condition,
                                            mode=mode, features=features, version=version)  # type: ignore[arg-type]
        self._online.invalidate()
        return pub

    def drop_online_table(self, name: str, online_store: Any = None) -> list[Publication]:
        """Drop a feature table's online table from ``online_store`` (None: from every store it is
        published to). The offline table is kept."""
        dropped = self._publisher.drop_online_table(name, online_store)
        self._online.invalidate()
        return dropped

    def list_publications(self, name: str | None = None, *, include_dropped: bool = False) -> list[Publication]:
        """Publications to online stores (of table ``name`` when given), newest first."""
        return self._publisher.list_publications(name, include_dropped=include_dropped)

    def get_online_features(self, features: Any, df: Any, *, include_found: bool = False,
                            on_missing: str = "null", output: str = "pandas") -> Any:
        """Features for each row of ``df`` (the keys) from the online stores, in ``df``'s order.

        ``features``: a list of ``FeatureLookup``/``FeatureFunction``, a ``FeatureSpec``, or the name of a
        feature spec in the catalog. Each table is read from the store of its latest publication. Missing
        keys get the lookups' defaults (else null; ``on_missing="error"`` raises ``MissingKeysError``);
        ``include_found=True`` adds a boolean ``_found_<table>`` column per lookup. ``output``: ``"pandas"``
        (a DataFrame with ``df``'s index), ``"dict"`` (``{column: [values]}``, nulls None) or ``"arrow"``.
        """
        return self._online.get_online_features(features, df, include_found=include_found,
                                                on_missing=on_missing, output=output)  # type: ignore[arg-type]

    def online_feature_assembler(self, features: FeatureSpec | str, *, on_missing: str = "error"
                                 ) -> OnlineFeatureAssembler:
        """An :class:`~larder.online.assemble.OnlineFeatureAssembler` for a spec (or spec name), bound to the
        stores its tables are published to; ``stores_info()`` gives the mapping to embed in a model."""
        if isinstance(features, str):
            return self._online.assembler_for_name(features, on_missing)  # type: ignore[arg-type]
        return self._online.assembler(features, on_missing)  # type: ignore[arg-type]

    # -- models that fetch their own features (larder.models) -------------------------------------
    def log_model(self, model: Any, artifact_path: str, flavor: Any, training_set: TrainingSet, *,
                  registered_model_name: str | None = None, signature: Any = None, input_example: Any = None,
                  infer_input_example: bool = False, extra_pip_requirements: Sequence[str] | None = None,
                  **flavor_kwargs: Any) -> Any:
        """Log ``model`` (saved with ``flavor``, e.g. ``mlflow.sklearn``) inside an MLflow pyfunc model that
        carries ``training_set``'s feature spec and looks its features up online when it predicts; register
        it as ``registered_model_name`` if given. Its input signature is the keys, timestamps and
        request-time columns. Lineage goes into the catalog. Logs into the active MLflow run, else starts
        one. ``flavor_kwargs`` go to ``flavor.save_model``. Returns MLflow's ``ModelInfo``. See docs/models.md.
        """
        from larder.models.log_model import log_model

        return log_model(self._ctx, model, artifact_path, flavor=flavor, training_set=training_set,
                         registered_model_name=registered_model_name, signature=signature,
                         input_example=input_example, infer_input_example=infer_input_example,
                         extra_pip_requirements=extra_pip_requirements, flavor_kwargs=flavor_kwargs)

    def score_batch(self, model_uri: str, df: Any, result_type: str = "double") -> pd.DataFrame:
        """Score ``df`` offline: point-in-time features from the latest Delta versions, the model's
        functions, then predict. Returns ``df``'s columns, the features and a ``prediction`` column. A
        feature column present in ``df`` overrides the looked-up value. ``model_uri``: ``runs:/...``,
        ``models:/name/version`` or ``models:/name@alias``."""
        from larder.models.score import score_batch

        return score_batch(self._ctx, model_uri, df, result_type)

    def check_skew(self, model_uri: str, keys_df: Any, *, rtol: float = 1e-9, atol: float = 1e-9) -> Any:
        """Compare, for the rows of ``keys_df``, the online- and offline-assembled features and predictions
        of a logged model. Returns a :class:`~larder.models.skew.SkewReport` (``ok``, ``summary``,
        ``mismatches``)."""
        from larder.models.skew import check_skew

        return check_skew(self._ctx, model_uri, keys_df, rtol=rtol, atol=atol)

    def model_lineage(self, name: str, version: str | int | None = None) -> Any:
        """Tables (with Delta versions), features and functions of a registered model version (a number
        or an alias; None: the latest larder logged), or of a ``runs:/`` URI."""
        from larder.models.lineage import model_lineage

        return model_lineage(self._ctx, name, version)
