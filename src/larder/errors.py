"""larder's exception tree.

Every error larder raises on purpose is a :class:`LarderError`. Errors from third-party libraries
(deltalake, duckdb, sqlite3, boto3, redis, mlflow) are caught at the boundary of the module that
calls them and re-raised as one of these, ``from`` the original, so callers only ever need to catch
``LarderError``. Messages say what went wrong, where (table, column, key), and how to fix it.

::

    LarderError
    ├── ConfigError                  bad larder.yaml, bad option values, missing extras
    │   └── MissingExtraError        an optional dependency is not installed
    ├── InvalidNameError             an invalid table or function name
    ├── CatalogError                 catalog database problems
    ├── TableError
    │   ├── TableNotFoundError
    │   ├── TableExistsError
    │   ├── SchemaMismatchError      a column's type conflicts with the table's schema
    │   ├── PrimaryKeyError          missing, null or duplicate primary keys
    │   ├── TimestampKeyError        a timestamp key that is not a timestamp
    │   ├── EmptyDataFrameError
    │   └── WriteConflictError       concurrent writers could not be reconciled
    ├── FeatureLookupError           bad FeatureLookup / training-set inputs
    │   ├── LeakageError             a time-series table looked up without a timestamp
    │   └── OutputCollisionError     two sources produce the same output column
    ├── FunctionError
    │   ├── FunctionNotFoundError
    │   ├── FunctionInUseError
    │   └── FunctionExecutionError   a feature function raised on a row
    ├── FeatureSpecError             unknown or malformed feature spec
    ├── FeatureDefinitionError       a bad declarative Feature (also a ValueError, as in Databricks)
    │   ├── FeatureNotFoundError     no feature of that name in the catalog
    │   ├── FeatureExistsError       a feature of that name is already registered
    │   └── MaterializationError     bad materialize_features / backfill input, or a failed run
    │       ├── MaterializationNotFoundError  no materialized feature / operation of that id
    │       └── OperationFailedError a backfill waited for failed or was cancelled
    ├── ProjectError                 a features-as-code project (larder plan/apply) that cannot be applied
    ├── OnlineStoreError
    │   ├── OnlineTableNotFoundError
    │   ├── ItemTooLargeError
    │   ├── RetryBudgetExceededError
    │   ├── MissingKeysError         keys not found online and no default defined
    │   ├── PublishError             bad publish_table input (mode, features, filter_condition)
    │   │   └── StalePublishError    the store serves a newer Delta version than the one published
    │   └── OnlineStoreNotFoundError no managed online store of that name (get/update_online_store)
    ├── ServingEndpointError         unknown, duplicate or misconfigured feature serving endpoint
    ├── StreamError                  bad stream definition, unreachable stream source, push errors
    │   └── PushError                bad fe.push input (to, push_id, not published, read_after_write)
    │       └── PushIncompleteError  a push committed to Delta (or reached some stores), not to every store
    ├── ModelError                   log_model / score_batch / pyfunc problems
    ├── TransformError               feature-engineering input problems
    └── ValidationError              expectations failed under the strict policy
"""

from __future__ import annotations

from typing import Any


class LarderError(Exception):
    """Base class of every error larder raises on purpose.

    ``retryable`` says whether the same call may succeed if simply made again (a write conflict with
    concurrent writers, a catalog connection lost or a lock timeout): nothing was written by the failed
    call, so retrying it is safe.
    """

    retryable: bool = False


class ConfigError(LarderError):
    """A configuration value or file is invalid."""


class MissingExtraError(ConfigError):
    """An optional dependency is not installed."""

    def __init__(self, feature: str, extra: str, package: str | None = None) -> None:
        self.extra = extra
        pkg = f" (package {package!r})" if package else ""
        super().__init__(
            f"{feature} needs the optional dependency{pkg}: install it with `pip install 'larder[{extra}]'`."
        )


def require(module: str, *, extra: str, feature: str) -> Any:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(feature, extra, module.split(".")[0]) from exc


class InvalidNameError(LarderError):
    """A table, schema, catalog or function name is not valid."""


class CatalogError(LarderError):
    """The metadata catalog could not be read or written."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class TableError(LarderError):
    """Base class for feature-table errors."""


class TableNotFoundError(TableError):
    """The named feature table does not exist."""


class TableExistsError(TableError):
    """A feature table with that name already exists."""


class SchemaMismatchError(TableError):
    """A DataFrame's schema conflicts with the table's schema."""


class PrimaryKeyError(TableError):
    """Primary-key columns are missing, null or duplicated."""


class TimestampKeyError(TableError):
    """A timestamp key column is missing or not a timestamp."""


class EmptyDataFrameError(TableError):
    """An empty DataFrame was given where rows are required."""


class WriteConflictError(TableError):
    """Concurrent writes to a table could not be reconciled within the retry budget."""

    retryable = True


class FeatureLookupError(LarderError):
    """A FeatureLookup or training-set input is invalid."""


class LeakageError(FeatureLookupError):
    """A time-series table was looked up without a timestamp (future data would leak)."""


class OutputCollisionError(FeatureLookupError):
    """Two sources would produce the same output column."""


class FunctionError(LarderError):
    """Base class for feature-function errors."""


class FunctionNotFoundError(FunctionError):
    """The named feature function (or version) does not exist."""


class FunctionInUseError(FunctionError):
    """A feature-function version is used by a logged model and cannot be dropped."""


class FunctionExecutionError(FunctionError):
    """A feature function raised while computing a value."""


class FeatureSpecError(LarderError):
    """A feature spec is unknown or malformed."""


class FeatureDefinitionError(LarderError, ValueError):
    """A declarative feature (source, function, window, entity or timeseries column) is invalid.

    Also a ``ValueError``, which is what the Databricks client raises for the same mistakes, so ported
    code that catches ``ValueError`` keeps working."""


class FeatureNotFoundError(FeatureDefinitionError):
    """No declarative feature of that name is registered."""


class FeatureExistsError(FeatureDefinitionError):
    """A declarative feature of that name is already registered."""


class MaterializationError(FeatureDefinitionError):
    """``materialize_features``, ``backfill_features`` or a materialization run was given bad input
    (a trigger, a store config, a feature that cannot be materialized) or failed; nothing was written."""


class MaterializationNotFoundError(MaterializationError):
    """No materialized feature or operation of that id or name."""


class OperationFailedError(MaterializationError):
    """The backfill :meth:`wait_for_backfill` waited for failed or was cancelled (Databricks'
    ``OperationFailed``)."""


class ProjectError(LarderError):
    """A features-as-code project (``larder plan DIR`` / ``larder apply DIR``) cannot be loaded or
    applied: a module that fails to import, a bad or clashing definition, a change that cannot be made
    in place, an object owned by another project. The message names the file, the object and the fix."""


class OnlineStoreError(LarderError):
    """An online store operation failed."""


class OnlineTableNotFoundError(OnlineStoreError):
    """The online table does not exist in the store."""


class ItemTooLargeError(OnlineStoreError):
    """An item exceeds the online store's size limit."""


class RetryBudgetExceededError(OnlineStoreError):
    """Unprocessed items or throttling persisted beyond the retry budget."""


class MissingKeysError(OnlineStoreError):
    """Keys were not found in the online store and no default value is defined."""


class PublishError(OnlineStoreError):
    """``publish_table`` was given an invalid mode, feature list or filter condition."""


class StalePublishError(PublishError):
    """A publish of an older Delta version than the one the online store serves was refused (serving
    never moves back in time); nothing was changed."""


class OnlineStoreNotFoundError(OnlineStoreError):
    """No online store of that name (``get_online_store`` and friends)."""


class ServingEndpointError(LarderError):
    """A feature serving endpoint that does not exist, exists already, or is misconfigured."""


class StreamError(LarderError):
    """A stream definition, source or consumer problem, or a rejected push."""


class PushError(StreamError):
    """A push that was refused before anything was written (bad ``to``, ``push_id``, a table with no
    publication, a store that cannot promise read-after-write), or whose rows did not read back."""


class PushIncompleteError(PushError):
    """A push whose rows reached Delta (``delta_version``) or some stores, but not every online store
    (``failed_stores``). Calling ``push`` again with the same ``push_id`` completes it: the Delta commit is
    not repeated and the online write is idempotent."""

    push_id: str | None = None
    delta_version: int | None = None
    failed_stores: list[str] = []  # noqa: RUF012 - replaced per instance


class ModelError(LarderError):
    """log_model, score_batch or the feature-aware pyfunc failed."""


class TransformError(LarderError):
    """Input to a feature-engineering transform is invalid."""


class ValidationError(LarderError):
    """Expectations failed under the strict policy; nothing was written."""

    def __init__(self, message: str, results: Any = None) -> None:
        super().__init__(message)
        self.results = results


__all__ = [
    "CatalogError",
    "ConfigError",
    "EmptyDataFrameError",
    "FeatureDefinitionError",
    "FeatureExistsError",
    "FeatureLookupError",
    "FeatureNotFoundError",
    "FeatureSpecError",
    "FunctionError",
    "FunctionExecutionError",
    "FunctionInUseError",
    "FunctionNotFoundError",
    "InvalidNameError",
    "ItemTooLargeError",
    "LarderError",
    "LeakageError",
    "MaterializationError",
    "MaterializationNotFoundError",
    "MissingExtraError",
    "MissingKeysError",
    "ModelError",
    "OnlineStoreError",
    "OnlineStoreNotFoundError",
    "OnlineTableNotFoundError",
    "OperationFailedError",
    "OutputCollisionError",
    "PrimaryKeyError",
    "ProjectError",
    "PublishError",
    "PushError",
    "PushIncompleteError",
    "RetryBudgetExceededError",
    "SchemaMismatchError",
    "ServingEndpointError",
    "StalePublishError",
    "StreamError",
    "TableError",
    "TableExistsError",
    "TableNotFoundError",
    "TimestampKeyError",
    "TransformError",
    "ValidationError",
    "WriteConflictError",
]
