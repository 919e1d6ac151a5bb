"""``FeatureEngineeringClient``: the facade. It holds no logic of its own; each method delegates to
the module that implements it, with the names and parameters of the Databricks Feature Engineering
client so that code ports with an import change.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pandas as pd

from larder._clientparts.materialize import MaterializeMethods
from larder._clientparts.push import PushMethods
from larder._clientparts.serving import ServingMethods
from larder._clientparts.streams import StreamMethods
from larder._databricks import UNSET, _Unset
from larder.context import Context
from larder.errors import TableError
from larder.offline.tables import FeatureTable, TableService, WriteMode

_log = logging.getLogger(__name__)

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


class FeatureEngineeringClient(ServingMethods, PushMethods, MaterializeMethods, StreamMethods):
    """Entry point to larder.

    Parameters
    ----------
    root:
        Directory holding the catalog, Delta tables and default online store. Defaults to the
        ``LARDER_ROOT`` environment variable, else ``./.larder``.
    model_registry_uri:
        The MLflow model registry ``log_model`` registers in and ``score_batch`` loads from (Databricks'
        parameter). ``"databricks-uc"`` maps to larder's configured registry.

    Examples
    --------
    >>> import pandas as pd, tempfile
    >>> fe = FeatureEngineeringClient(root=tempfile.mkdtemp())
    >>> t = fe.create_table("houses", primary_keys="Id", df=pd.DataFrame({"Id": [1, 2], "Qual": [7, 5]}))
    >>> fe.read_table("houses").sort_values("Id")["Qual"].tolist()
    [7, 5]
    >>> fe.close()
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, model_registry_uri: str | None = None
                 ) -> None:
        self._ctx = Context(root)
        from larder.models.tracking import claim_default_uris

        #: Databricks' ``model_registry_uri``: the registry this client's models are registered in and
        #: loaded from (``databricks-uc`` means larder's own registry). None: MLflow's current one.
        self._model_registry_uri = model_registry_uri
        self._closed = False
        from larder.session import register_client

        register_client(self)  # the notebook ``spark`` stand-in (larder.session) acts through it

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
        for cached in ("_online", "_publisher", "_endpoints", "_managed_stores", "_pusher", "_streams"):
            self.__dict__.pop(cached, None)
        stores = self.__dict__.pop("_online_stores", None)
        if stores is not None:
            stores.close()
        self._ctx.close()
        self._closed = True

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
        timeseries_column: str | None = None,
        partition_columns: str | Sequence[str] | None = None,
        schema: Any = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        timestamp_keys: str | Sequence[str] | None = None,
        timeseries_columns: str | Sequence[str] | None = None,
        features_df: Any = None,
        path: str | os.PathLike[str] | None = None,
        feature_descriptions: Mapping[str, str] | None = None,
        expectations: Sequence[Any] | None = None,
        quality_policy: str | None = None,
    ) -> FeatureTable:
        """Create a feature table (and write ``df`` into it, if given) in one all-or-nothing step.

        ``timeseries_column`` (Databricks' name; ``timestamp_keys`` and ``timeseries_columns`` are
        accepted as aliases) makes the table a time series: the column is part of the key and lookups
        match on it point in time. ``schema``: a pyarrow schema, a Spark ``StructType`` or
        ``{column: type}``. ``path``: where to keep the Delta table (default: under the storage
        location). ``features_df`` is Databricks' deprecated name of ``df``. ``expectations`` (see
        :mod:`larder.quality`) are checked on this and every later write under ``quality_policy``
        (default ``"strict"``)."""
        from larder._databricks import one_timeseries_column

        ts = one_timeseries_column(name, timeseries_column, timestamp_keys, timeseries_columns)
        if features_df is not None:
            if df is not None:
                raise TableError(f"create_table({name!r}): give either df or the deprecated features_df, not both.")
            _log.warning("create_table(%r): the features_df parameter is deprecated; use df.", name)
            df = features_df
        table = self._tables.create_table(
            name, primary_keys, df, schema=schema, timestamp_keys=ts,
            partition_columns=partition_columns, description=description, tags=tags,
            feature_descriptions=feature_descriptions, expectations=expectations,
            quality_policy=quality_policy, path=None if path is None else os.fspath(path),
        )
        # online tables of a dropped table of this name (kept by drop_table) must never answer for this one
        if self._publisher.forget_table(table.name, older_than=table.creation_timestamp) and "_online" in self.__dict__:
            self._online.invalidate()
        return table

    def write_table(self, name: str, df: Any, mode: WriteMode = "merge", *, checkpoint_location: str | None = None,
                    trigger: Mapping[str, Any] | None = None) -> int:
        """Upsert ``df`` on the primary key (``mode="merge"``) or replace the contents
        (``mode="overwrite"``). New columns become new features. Returns the new Delta version.

        ``checkpoint_location`` and ``trigger`` configure Databricks' streaming writes; ``df`` here is
        never a stream, so (as Databricks does for a batch ``df``) they are ignored with a warning.
        Continuous ingestion is :meth:`push` and :meth:`create_stream`."""
        from larder._databricks import reject_streaming_df

        reject_streaming_df(df, "write_table", name)
        if checkpoint_location is not None or trigger is not None:
            _log.warning("write_table(%r): ignoring checkpoint_location/trigger, since df is not streaming.", name)
        return self._tables.write_table(name, df, mode=mode)

    def read_table(self, name: str, as_of_version: int | None = None,
                   as_of_timestamp: datetime | str | None = None, *,
                   as_of_delta_timestamp: datetime | str | None = None) -> pd.DataFrame:
        """Read a feature table, optionally as of a Delta version or a point in time
        (``as_of_delta_timestamp`` is Databricks' name of ``as_of_timestamp``: the version current at
        that time)."""
        if as_of_delta_timestamp is not None:
            if as_of_timestamp is not None:
                raise TableError(f"read_table({name!r}): give as_of_timestamp or as_of_delta_timestamp, not both.")
            as_of_timestamp = as_of_delta_timestamp
        return self._tables.read_table(name, as_of_version=as_of_version, as_of_timestamp=as_of_timestamp)

    def get_table(self, name: str) -> FeatureTable:
        """Metadata: keys, features with types and descriptions, tags, owner, version, row count."""
        return self._tables.get_table(name)

    def drop_table(self, name: str) -> None:
        """Delete a feature table's data and catalog entry. Its online tables are kept, as on Databricks
        (drop them first with :meth:`drop_online_table`), until a table is created again under the name."""
        self._tables.drop_table(name)

    def list_tables(self, name_pattern: str | None = None,
                    tags: Mapping[str, str | None] | Sequence[str] | None = None) -> list[FeatureTable]:
        """Tables matching a glob ``name_pattern`` and carrying all ``tags``."""
        return self._tables.list_tables(name_pattern, tags)

    def set_feature_table_tag(self, *, name: str, key: str, value: str) -> None:
        self._tables.set_tag(name, key, value)

    def delete_feature_table_tag(self, *, name: str, key: str) -> None:
        """Delete a tag; a tag the table does not have is skipped with a warning (as on Databricks)."""
        if key not in self.get_table(name).tags:
            _log.warning('The tag "%s" for feature table "%s" was not found, so the delete operation has been '
                         "skipped.", key, name)
            return
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
        label: str | Sequence[str] | None | _Unset = UNSET,
        exclude_columns: str | Sequence[str] | None = None,
        *,
        feature_spec: str | FeatureSpec | None = None,
        features: Sequence[Feature] | None = None,
        use_spark_native_join: bool = False,
        use_timeseries_filtering: bool = False,
        use_scalable_native_join: bool = False,
    ) -> TrainingSet:
        """Join point-in-time features (and feature functions) to ``df``'s rows.

        The features come from exactly one of ``feature_lookups`` (``FeatureLookup``/``FeatureFunction``
        objects, applied in the order given), ``feature_spec`` (the name of a feature spec in the catalog,
        or a ``FeatureSpec``; its tables are read at their current versions) or ``features`` (declarative
        features, see :meth:`create_feature`, each computed at the row's entity and timeseries column,
        strictly before the row's time). ``label`` is required (``None`` for an unsupervised set), as on
        Databricks. Table, source and function versions are pinned now, so ``load_df()`` returns the same
        data later. Output: ``df``'s columns (minus ``exclude_columns``), the features, then the ``label``
        column(s); exactly ``df``'s rows in order.

        ``use_timeseries_filtering=True`` reads only the part of each time-series table that can match
        ``df``'s times (up to the latest, and back to the earliest minus the lookback window when one is
        set): less to read, the same result. ``use_spark_native_join`` and ``use_scalable_native_join``
        tune Photon's joins on Databricks; they are checked and have no effect on larder's engines.
        """
        from larder._databricks import check_native_join_flags, required_label

        check_native_join_flags(use_spark_native_join, use_scalable_native_join)
        labels = required_label(label)
        return self._training.create_training_set(df, feature_lookups, labels, exclude_columns, features=features,
                                                  feature_spec=feature_spec,
                                                  use_timeseries_filtering=use_timeseries_filtering)


    def create_function(self, name: str, func: Callable[..., Any] | str | None = None,
                        description: str | None = None, *, mode: str = "auto") -> FunctionInfo:
        """Register a feature function under ``name``. New code makes a new version (a content hash);
        the same code returns the existing version.

        ``func`` is a Python callable (its source, signature and a cloudpickle are stored), or a
        Databricks ``CREATE FUNCTION name(p TYPE, ...) RETURNS TYPE LANGUAGE PYTHON AS $$ ... $$``
        statement (or a SQL-language one, ``... RETURNS TYPE RETURN expr``): its parameters and return
        type are read from it, a Python body runs as the function, a SQL expression is evaluated by
        DuckDB. The statement may also come alone, ``fe.create_function("CREATE FUNCTION ...")``: it
        names the function (a ``name`` given beside it must be the same). ``mode``: ``"auto"``
        (vectorised when it agrees with row-by-row), ``"vectorized"`` or ``"row"``."""
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
                            exclude_columns: str | Sequence[str] | None = None, *,
                            extra_pip_requirements: Sequence[str] | None = None,
                            description: str | None = None) -> FeatureSpec:
        """Pin ``features`` into a named :class:`~larder.training.FeatureSpec` stored in the catalog
        (also a ``FeatureSpecInfo``: ``name``, ``creator``, ``creation_timestamp_ms``).

        ``extra_pip_requirements`` (pip requirement strings the spec's functions need) are kept with the
        spec and added to the environment of every model logged from a training set built on it."""
        return self._training.create_feature_spec(name, features, exclude_columns, description=description,
                                                  extra_pip_requirements=extra_pip_requirements)

    def update_feature_spec(self, *, name: str, owner: str) -> None:
        """Change the recorded owner of a feature spec."""
        self._training.update_feature_spec(name, owner=owner)

    def get_feature_spec(self, name: str) -> FeatureSpec:
        """A named feature spec."""
        return self._training.get_feature_spec(name)

    def list_feature_specs(self, name_pattern: str | None = None) -> list[FeatureSpec]:
        """Named feature specs whose name matches the glob ``name_pattern``."""
        return self._training.list_feature_specs(name_pattern)

    def delete_feature_spec(self, name: str) -> None:
        """Delete a named feature spec (models that carry a copy are unaffected)."""
        self._training.delete_feature_spec(name)

    def feature_spec_from_batch_declarative_features(self, *, name: str, features: Sequence[Feature],
                                                     exclude_columns: Sequence[str] | None = None) -> FeatureSpec:
        """A named feature spec of registered declarative features, stored in the catalog like
        :meth:`create_feature_spec`'s: ``create_training_set(df, feature_spec=name, label=...)`` computes
        them at each row's time, models logged from that training set look them up online, and
        feature serving endpoints serve it. Deprecated on Databricks (a ``DeprecationWarning``, as
        there) in favour of ``create_feature_spec(name=..., features=[Feature, ...])``, which does the
        same. ``exclude_columns`` is not supported with features (as on Databricks)."""
        from larder._databricks import declarative_spec_features

        warnings.warn("feature_spec_from_batch_declarative_features is deprecated. Use create_feature_spec with "
                      "Feature objects directly instead.", DeprecationWarning, stacklevel=2)
        return self.create_feature_spec(name, declarative_spec_features(features, exclude_columns))

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

    def compute_features(self, *, features: Sequence[Feature | str]) -> Any:
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

    def publish_table(self, name: str | None = None, online_store: Any = None, filter_condition: Any = None,
                      mode: str = "merge", features: str | Sequence[str] | None = None, *,
                      source_table_name: str | None = None, online_table_name: str | None = None,
                      publish_mode: str = "TRIGGERED", streaming: bool = False,
                      checkpoint_location: str | None = None, trigger: Mapping[str, Any] | None = None,
                      version: int | None = None) -> Publication:
        """Publish the newest row per key of a feature table to an online store.

        ``source_table_name`` is Databricks' name of the table argument (``name`` is kept as an alias).
        ``online_store``: a spec object (``SQLiteStoreSpec``, ``AmazonDynamoDBSpec(...)``,
        ``RedisStoreSpec``), an online store from :meth:`create_online_store` / :meth:`get_online_store`
        (or its name), a name from larder.yaml's ``online_stores``, or None (the configured default, else
        the embedded SQLite store ``<root>/online.db``). ``online_table_name``: the table's name inside the
        store (default: the feature table's full name). ``filter_condition``: a SQL predicate (or a pyarrow
        expression) applied before the latest row per key is taken. ``mode="merge"`` never replaces a
        newer stored row with an older one; ``"overwrite"`` replaces the online table's contents
        atomically. ``publish_mode``: ``"TRIGGERED"`` (default: this one publish, merged),
        ``"SNAPSHOT"`` (the online table becomes exactly this snapshot: ``mode="overwrite"``) or
        ``"CONTINUOUS"`` (keep publishing new Delta versions, as ``streaming=True``). ``features``: publish
        only these. ``version``: a Delta version (default latest). The publication is recorded in the
        catalog. See docs/online-features.md.
        """
        from larder._databricks import publish_arguments

        table, store, mode = publish_arguments(self, name, source_table_name, online_store, mode, publish_mode,
                                               streaming, checkpoint_location, trigger)
        pub = self._publisher.publish_table(table, store, filter_condition=filter_condition,
                                            mode=mode, features=features, version=version,  # type: ignore[arg-type]
                                            online_table_name=online_table_name)
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
    def log_model(self, model: Any, artifact_path: str, flavor: Any, training_set: TrainingSet | None = None, *,
                  registered_model_name: str | None = None, await_registration_for: int | None = 300,
                  infer_input_example: bool = False, extra_pip_requirements: Sequence[str] | None = None,
                  signature: Any = None, input_example: Any = None, output_schema: Any = None,
                  **flavor_kwargs: Any) -> Any:
        """Log ``model`` (saved with ``flavor``, e.g. ``mlflow.sklearn``) inside an MLflow pyfunc model that
        carries ``training_set``'s feature spec and looks its features up online when it predicts; register
        it as ``registered_model_name`` if given, waiting up to ``await_registration_for`` seconds for the
        version to be ready (0 or None: do not wait). Its input signature is the keys, timestamps and
        request-time columns. Lineage goes into the catalog. Logs into the active MLflow run, else starts
        one. ``extra_pip_requirements`` are added to those of the training set's feature spec.
        ``output_schema`` (an ``mlflow.types.Schema``) declares the model's outputs instead of inferring
        them. Other keyword arguments go to ``flavor.save_model``. Returns MLflow's ``ModelInfo``.
        See docs/models.md.
        """
        from larder.models.log_model import log_model

        return log_model(self._ctx, model, artifact_path, flavor=flavor, training_set=training_set,
                         registered_model_name=registered_model_name, signature=signature,
                         input_example=input_example, infer_input_example=infer_input_example,
                         extra_pip_requirements=extra_pip_requirements, flavor_kwargs=flavor_kwargs,
                         await_registration_for=await_registration_for, output_schema=output_schema,
                         registry_uri=self._model_registry_uri)

    def score_batch(self, model_uri: str, df: Any, result_type: str = "double", *, env_manager: str = "local",
                    params: Mapping[str, Any] | None = None, use_spark_native_join: bool = False,
                    prebuilt_env_uri: str | None = None) -> pd.DataFrame:
        """Score ``df`` offline: point-in-time features from the latest Delta versions, the model's
        functions, then predict. Returns ``df``'s columns, the features and a ``prediction`` column. A
        feature column present in ``df`` overrides the looked-up value. ``model_uri``: ``runs:/...``,
        ``models:/name/version`` or ``models:/name@alias``.

        ``params`` go to the model's ``predict`` (for models whose signature declares them).
        ``env_manager``: ``"local"`` runs the model in this process (larder's only way, and Databricks'
        default); the other managers Databricks accepts raise :class:`~larder.errors.ModelError` saying
        how to score in a restored environment. ``use_spark_native_join`` has no effect here.
        """
        from larder._databricks import check_env_manager
        from larder.models.score import score_batch

        check_env_manager(env_manager, prebuilt_env_uri)
        return score_batch(self._ctx, model_uri, df, result_type, params=params,
                           registry_uri=self._model_registry_uri)

    def build_model_env(self, model_uri: str, save_path: str | os.PathLike[str]) -> str:
        """Build the Python environment of a logged model's raw model (MLflow's
        ``mlflow.pyfunc.build_model_env``) into an archive under ``save_path``; returns its path. It
        installs the model's requirements, so it needs access to a package index."""
        from larder.models.score import build_model_env

        return build_model_env(self._ctx, model_uri, os.fspath(save_path), registry_uri=self._model_registry_uri)

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
