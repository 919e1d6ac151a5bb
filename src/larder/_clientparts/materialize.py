"""Client methods: materializing declarative features, backfills and operations (Databricks' APIs)."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from larder.declarative import Feature
    from larder.declarative.backfill import BackfillService
    from larder.declarative.materialize import MaterializationService
    from larder.declarative.materialized import (
        BackfillRange,
        BackfillStatus,
        CronSchedule,
        MaterializedFeature,
        OfflineStoreConfig,
        OnlineStoreConfig,
        Operation,
        TableTrigger,
    )
    from larder.declarative.purge import PurgeFeatureEntitiesOperation, PurgeService


class MaterializeMethods:
    """``materialize_features``, ``list/delete_materialized_feature(s)``, ``backfill_features``,
    ``get/wait_for/cancel_backfill``, ``get/cancel_operation``. See docs/declarative-features.md."""

    @cached_property
    def _materialization(self) -> MaterializationService:
        from larder.declarative.materialize import MaterializationService

        return MaterializationService(self)  # type: ignore[arg-type]

    @cached_property
    def _backfills(self) -> BackfillService:
        from larder.declarative.backfill import BackfillService

        return BackfillService(self._materialization)

    def materialize_features(self, *, features: list[Feature], offline_config: OfflineStoreConfig | None = None,
                             online_config: OnlineStoreConfig | None = None,
                             trigger: CronSchedule | TableTrigger | None = None, tags: dict[str, str] | None = None,
                             budget_policy_id: str | None = None) -> list[MaterializedFeature]:
        """Materialize registered features: offline to one Delta feature table per feature
        (``offline_config``; the rows of ``compute_features``), online to an online store
        (``online_config``). Runs once now, then as ``trigger`` says when ``larder materialize`` runs
        (``CronSchedule(...)``, ``TableTrigger()``; None: only now). Later runs are incremental. Returns one
        :class:`MaterializedFeature` per feature and destination; on any error nothing is kept."""
        return self._materialization.materialize_features(
            features=features, offline_config=offline_config, online_config=online_config, trigger=trigger,
            tags=tags, budget_policy_id=budget_policy_id)

    def list_materialized_features(self, *, feature_name: str, max_results: int = 100) -> list[MaterializedFeature]:
        """The materializations of a feature (by its full name)."""
        return self._materialization.list_materialized_features(feature_name=feature_name, max_results=max_results)

    def delete_materialized_feature(self, *, materialized_feature: MaterializedFeature) -> None:
        """Delete a materialization: its offline table (or its online publication), records and runs."""
        self._materialization.delete_materialized_feature(materialized_feature=materialized_feature)

    def backfill_features(self, *, features: list[str | Feature] | None = None, backfill_ranges: list[BackfillRange],
                          request_id: str | None = None, tags: dict[str, str] | None = None,
                          budget_policy_id: str | None = None, wait: bool = False,
                          feature_full_names: list[str] | None = None, **kwargs: Any) -> BackfillStatus:
        """Recompute the offline values of materialized features at times in each range (idempotent;
        synchronous: the returned status is final). ``request_id`` makes a retry return the original.
        ``feature_full_names`` is Databricks' older name of ``features``."""
        if feature_full_names is not None:
            kwargs["feature_full_names"] = feature_full_names
        return self._backfills.backfill_features(features=features, backfill_ranges=backfill_ranges,
                                                 request_id=request_id, tags=tags, budget_policy_id=budget_policy_id,
                                                 wait=wait, **kwargs)

    @cached_property
    def _purges(self) -> PurgeService:
        from larder.declarative.purge import PurgeService

        return PurgeService(self)  # type: ignore[arg-type]

    def purge_feature_entities(self, features: list[str | Feature], entities_table: str, request_id: str | None = None,
                               tags: dict[str, str] | None = None,
                               budget_policy_id: str | None = None) -> PurgeFeatureEntitiesOperation:
        """Purge the materialized values (offline and online) of the entities listed in
        ``entities_table`` (a feature table whose columns are some or all of each feature's entity keys;
        a partial key purges every entity with those values). Source data is not touched: delete the
        entities there first, or the next materialization brings them back. Returns the operation handle
        (``wait()``, ``done()``, ``metadata()``, ``cancel()``); it has finished when this returns.
        ``request_id``: a retry with the same token and request returns the original operation."""
        return self._purges.purge_feature_entities(features=features, entities_table=entities_table,
                                                   request_id=request_id, tags=tags, budget_policy_id=budget_policy_id)

    def get_backfill(self, *, operation_name: str) -> BackfillStatus:
        """The status of a backfill (``operations/<id>``)."""
        return self._backfills.get_backfill(operation_name=operation_name)

    def wait_for_backfill(self, *, backfill: BackfillStatus, timeout: timedelta | None = None) -> BackfillStatus:
        """The backfill once it has finished; ``OperationFailedError`` if it failed or was cancelled."""
        return self._backfills.wait_for_backfill(backfill=backfill, timeout=timeout)

    def cancel_backfill(self, *, backfill: BackfillStatus) -> None:
        """Cancel a backfill (best effort: a finished one is left as it is)."""
        self._backfills.cancel_backfill(backfill=backfill)

    def get_operation(self, *, name: str) -> Operation:
        """A long-running operation (a backfill) by name."""
        return self._backfills.get_operation(name=name)

    def cancel_operation(self, *, name: str) -> None:
        """Cancel an operation (best effort: a finished one is left as it is)."""
        self._backfills.cancel_operation(name=name)
