"""Databricks-compatible argument handling shared by the client's methods.

The client takes Databricks' parameter names with Databricks' meaning, and larder's older names as
aliases. The rules that translate one into the other, and the checks that turn a Databricks-only
behaviour into a clear :class:`~larder.errors.LarderError` (never a bare ``TypeError``), live here so
that ``client.py`` stays a facade.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from larder.errors import FeatureLookupError, ModelError, PublishError, TableError, TimestampKeyError

if TYPE_CHECKING:
    from larder.client import FeatureEngineeringClient

_log = logging.getLogger("larder")


class _Unset:
    """The type of :data:`UNSET`: "not given", distinct from ``None``."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<UNSET>"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset()

#: What Databricks' ``publish_mode`` may be.
PUBLISH_MODES = ("TRIGGERED", "SNAPSHOT", "CONTINUOUS")
#: ``score_batch(env_manager=...)`` values MLflow knows.
ENV_MANAGERS = ("local", "virtualenv", "uv", "conda")


def one_timeseries_column(table: str, timeseries_column: str | None, *aliases: str | Sequence[str] | None
                          ) -> str | None:
    """The table's time-series column from ``timeseries_column`` or its aliases (``timestamp_keys``,
    ``timeseries_columns``: a name or a one-element list)."""
    given = [v for v in (timeseries_column, *aliases) if v is not None]
    if not given:
        return None
    names: list[str] = []
    for value in given:
        items = [value] if isinstance(value, str) else list(value)
        for item in items:
            if item not in names:
                names.append(item)
    if len(names) > 1:
        raise TimestampKeyError(
            f"Table {table!r}: one time-series column is supported, got {names}. Pass timeseries_column='<column>'."
        )
    return names[0] if names else None


def reject_streaming_df(df: Any, method: str, table: str) -> None:
    """A Spark streaming DataFrame (``df.isStreaming``) cannot be written by a batch call."""
    if getattr(df, "isStreaming", False) is True:
        raise TableError(
            f"{method}({table!r}): df is a streaming DataFrame. larder ingests streams itself: register the "
            "source with fe.create_stream(...) and run it with `larder stream run NAME`, or send rows with "
            "fe.push(name, df)."
        )


def check_native_join_flags(use_spark_native_join: Any, use_scalable_native_join: Any) -> None:
    for flag, value in (("use_spark_native_join", use_spark_native_join),
                        ("use_scalable_native_join", use_scalable_native_join)):
        if not isinstance(value, bool):
            raise FeatureLookupError(f"create_training_set: {flag!r} must be a bool, got {value!r}.")
    if use_scalable_native_join and not use_spark_native_join:
        raise FeatureLookupError("create_training_set: 'use_scalable_native_join' requires use_spark_native_join=True.")


def required_label(label: Any) -> Any:
    if isinstance(label, _Unset):
        raise FeatureLookupError(
            "create_training_set() needs label=: the label column, a list of them, or None for a training set "
            "without labels (as on Databricks, where label is required)."
        )
    return label


def declarative_spec_features(features: Any, exclude_columns: Any) -> list[Any]:
    """The arguments of ``feature_spec_from_batch_declarative_features``: a non-empty list of declarative
    ``Feature`` objects, each registered or with a catalog and schema (a spec is stored, so no
    ``DataFrameSource``), and no ``exclude_columns``, which Databricks does not support with ``Feature``
    objects either."""
    from larder.declarative.feature import Feature
    from larder.declarative.sources import DataFrameSource
    from larder.errors import FeatureDefinitionError

    method = "feature_spec_from_batch_declarative_features"
    if isinstance(features, Feature):
        features = [features]
    if not isinstance(features, (list, tuple)) or not features:
        raise FeatureDefinitionError(f"{method}: features must be a non-empty list of Feature objects, got {features!r}.")
    for i, f in enumerate(features):
        if not isinstance(f, Feature):
            raise FeatureDefinitionError(
                f"{method}: features[{i}] is a {type(f).__name__}; this method takes declarative Feature objects only. "
                "Use create_feature_spec() for FeatureLookup and FeatureFunction objects."
            )
        if isinstance(f.source, DataFrameSource) or not f.has_full_name:
            raise FeatureDefinitionError(
                f"{method}: feature {f.name!r} is not registered, and a feature spec is stored in the catalog. Register "
                "it first with create_feature() / register_feature() (a DataFrameSource feature cannot be), and pass "
                "the returned Feature or fe.get_feature(full_name=...)."
            )
    if exclude_columns:
        raise FeatureDefinitionError(
            f"{method}: exclude_columns is not supported with Feature objects (as on Databricks); drop the columns "
            "from the DataFrame instead, or use create_training_set(..., exclude_columns=...)."
        )
    return list(features)


def check_env_manager(env_manager: str, prebuilt_env_uri: str | None) -> None:
    if env_manager not in ENV_MANAGERS:
        raise ModelError(f"score_batch: env_manager must be one of {list(ENV_MANAGERS)}, got {env_manager!r}.")
    if env_manager != "local" or prebuilt_env_uri is not None:
        what = f"env_manager={env_manager!r}" if env_manager != "local" else "prebuilt_env_uri"
        raise ModelError(
            f"score_batch: {what} asks for the model to run in its own restored environment, which larder does "
            "not do: score_batch runs the model in this process (env_manager='local', the default), so install "
            "the model's requirements here (fe.build_model_env() builds its environment as an archive). To "
            "score in an isolated environment, serve the model with `mlflow models serve -m URI "
            f"--env-manager {env_manager if env_manager != 'local' else 'virtualenv'}` and send it the rows."
        )


def publish_arguments(fe: FeatureEngineeringClient, name: str | None, source_table_name: str | None,
                      online_store: Any, mode: str, publish_mode: str, streaming: bool,
                      checkpoint_location: str | None, trigger: Mapping[str, Any] | None
                      ) -> tuple[str, Any, str]:
    """``(table, online_store, mode)`` of a ``publish_table`` call in either naming."""
    if source_table_name is not None and name is not None and source_table_name != name:
        raise PublishError(
            f"publish_table: name={name!r} and source_table_name={source_table_name!r} disagree; give one of them."
        )
    table = source_table_name if source_table_name is not None else name
    if table is None:
        raise PublishError("publish_table: source_table_name is required (the feature table to publish).")
    if not isinstance(publish_mode, str) or publish_mode.upper() not in PUBLISH_MODES:
        raise PublishError(f"publish_table({table!r}): publish_mode must be one of {list(PUBLISH_MODES)}, "
                           f"got {publish_mode!r}.")
    publish_mode = publish_mode.upper()
    if streaming or publish_mode == "CONTINUOUS":
        raise PublishError(
            f"publish_table({table!r}): continuous publishing (streaming=True / publish_mode='CONTINUOUS') is "
            "not available in this version of larder. Publish after each write (publish_table is incremental "
            "and newest-wins), or ingest events with fe.push(...) / fe.create_stream(...), which publish online "
            "as they write."
        )
    if checkpoint_location is not None or trigger is not None:
        _log.warning("publish_table(%r): ignoring checkpoint_location/trigger, which apply to streaming "
                     "publishes only.", table)
    if publish_mode == "SNAPSHOT":
        if mode not in ("merge", "overwrite"):
            raise PublishError(f"publish_table mode must be 'merge' or 'overwrite', got {mode!r}.")
        mode = "overwrite"
    return table, online_store, mode


class _ToPandas:
    """``df.toPandas()`` on a pandas DataFrame: the frame itself.

    On Databricks ``read_table``, ``TrainingSet.load_df`` and ``score_batch`` return Spark DataFrames
    and notebooks end the chain with ``.toPandas()``; on larder's DuckDB engine they are pandas
    DataFrames already. Registered as a pandas accessor (pandas' extension mechanism) so ported code
    keeps working; the first call logs that the call can go."""

    _warned = False

    def __init__(self, frame: Any) -> None:
        self._frame = frame

    def __call__(self) -> Any:
        if not _ToPandas._warned:
            _ToPandas._warned = True
            _log.warning("larder: DataFrames from larder's DuckDB engine are pandas already; .toPandas() returns the "
                         "frame itself and can be dropped.")
        return self._frame


def _register_to_pandas() -> None:
    import pandas as pd

    if "toPandas" not in getattr(pd.DataFrame, "_accessors", set()) and not hasattr(pd.DataFrame, "toPandas"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pd.api.extensions.register_dataframe_accessor("toPandas")(_ToPandas)


_register_to_pandas()


__all__ = [
    "ENV_MANAGERS",
    "PUBLISH_MODES",
    "UNSET",
    "check_env_manager",
    "check_native_join_flags",
    "declarative_spec_features",
    "one_timeseries_column",
    "publish_arguments",
    "reject_streaming_df",
    "required_label",
]
