"""The entities of materialization, with Databricks' names and signatures (0.18).

* triggers: :class:`CronSchedule` (a Quartz cron expression in a time zone, or ``DERIVED`` from the
  features' windows) and :class:`TableTrigger` (new commits of the source table);
* destinations: :class:`OfflineStoreConfig` (a Delta feature table per feature) and
  :class:`OnlineStoreConfig` (an online store of larder's, by name);
* :class:`MaterializedFeature`: one feature materialized to one destination, as the catalog records it;
* backfills: :class:`BackfillRange`, :class:`BackfillState`, :class:`BackfillStatus`, and the
  :class:`Operation` that ``get_operation`` returns.

What a materialization does is in :mod:`larder.declarative.materialize`; see
docs/declarative-features.md#materialization.
"""

from __future__ import annotations

import abc
import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from larder.errors import MaterializationError


class CronScheduleMode(Enum):
    """How a :class:`CronSchedule` is arrived at: ``MANUAL`` (its expression) or ``DERIVED`` (from the
    features' windows: every slide of a sliding window, every window of a tumbling one, else hourly)."""

    DERIVED = "DERIVED"
    MANUAL = "MANUAL"


class MaterializedFeaturePipelineScheduleState(Enum):
    """Whether a trigger runs: ``ACTIVE`` (due runs run), ``PAUSED`` (never scheduled; an explicit run or
    backfill still works), ``SNAPSHOT`` (as paused: materialized once, at creation)."""

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    SNAPSHOT = "SNAPSHOT"


class Trigger(abc.ABC):
    """Base class of the triggers of :meth:`materialize_features`."""

    def __init__(self, *, pipeline_schedule_state: MaterializedFeaturePipelineScheduleState = (
            MaterializedFeaturePipelineScheduleState.ACTIVE)) -> None:
        if isinstance(pipeline_schedule_state, str):
            try:
                pipeline_schedule_state = MaterializedFeaturePipelineScheduleState(pipeline_schedule_state)
            except ValueError:
                pipeline_schedule_state = None  # type: ignore[assignment]
        if not isinstance(pipeline_schedule_state, MaterializedFeaturePipelineScheduleState):
            raise MaterializationError(
                f"pipeline_schedule_state must be a MaterializedFeaturePipelineScheduleState (ACTIVE, PAUSED, SNAPSHOT), "
                f"got {pipeline_schedule_state!r}."
            )
        self._pipeline_schedule_state = pipeline_schedule_state

    @property
    def pipeline_schedule_state(self) -> MaterializedFeaturePipelineScheduleState:
        return self._pipeline_schedule_state

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The trigger as stored in the catalog (read back by :meth:`from_dict`)."""

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Trigger | None:
        kind = d.get("kind")
        state = MaterializedFeaturePipelineScheduleState(d.get("state", "ACTIVE"))
        if kind == "cron":
            mode = CronScheduleMode(d["mode"])
            return CronSchedule(quartz_cron_expression=d.get("expression"), mode=mode,
                                timezone_id=d.get("timezone_id") if mode is CronScheduleMode.MANUAL else None,
                                pipeline_schedule_state=state)
        if kind == "table":
            return TableTrigger(pipeline_schedule_state=state)
        return None

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "kind")
        return f"{type(self).__name__}({args})"


class CronSchedule(Trigger):
    """Materialize on a cron schedule.

    ``quartz_cron_expression``: a Quartz expression (``"0 0 6 * * ?"``; the five-field form works too,
    see :mod:`larder.declarative.cron`), interpreted in ``timezone_id`` (default UTC). Omit it for a
    ``DERIVED`` schedule. ``larder materialize`` runs a materialization when its schedule fired since
    its last run.
    """

    def __init__(self, *, quartz_cron_expression: str | None = None, timezone_id: str | None = None,
                 mode: CronScheduleMode | None = None,
                 pipeline_schedule_state: MaterializedFeaturePipelineScheduleState = (
                     MaterializedFeaturePipelineScheduleState.ACTIVE)) -> None:
        from larder.declarative import cron

        super().__init__(pipeline_schedule_state=pipeline_schedule_state)
        if isinstance(mode, str):
            mode = CronScheduleMode(mode)
        if mode is None:
            mode = CronScheduleMode.DERIVED if quartz_cron_expression is None else CronScheduleMode.MANUAL
        if mode is CronScheduleMode.DERIVED and timezone_id is not None:
            raise MaterializationError("CronSchedule: 'timezone_id' is incompatible with CronScheduleMode.DERIVED "
                                       "(derived schedules are aligned to UTC); drop timezone_id or pass an expression.")
        if mode is CronScheduleMode.MANUAL and quartz_cron_expression is None:
            raise MaterializationError("CronSchedule in MANUAL mode requires a non-empty quartz cron expression, "
                                       "e.g. CronSchedule(quartz_cron_expression='0 0 6 * * ?').")
        if quartz_cron_expression is not None:
            if not isinstance(quartz_cron_expression, str) or not quartz_cron_expression.strip():
                raise MaterializationError("CronSchedule requires a non-empty quartz cron expression, "
                                           "e.g. '0 0 6 * * ?' (every day at 06:00).")
            if mode is CronScheduleMode.MANUAL:
                cron.parse(quartz_cron_expression.strip())
        self._quartz_cron_expression = quartz_cron_expression.strip() if quartz_cron_expression else None
        self._timezone_id = timezone_id if timezone_id is not None else "UTC"
        cron.zone(self._timezone_id)
        self._mode = mode

    @property
    def quartz_cron_expression(self) -> str | None:
        return self._quartz_cron_expression

    @property
    def timezone_id(self) -> str:
        return self._timezone_id

    @property
    def mode(self) -> CronScheduleMode:
        return self._mode

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "cron", "expression": self._quartz_cron_expression, "timezone_id": self._timezone_id,
                "mode": self._mode.value, "state": self.pipeline_schedule_state.value}


class TableTrigger(Trigger):
    """Materialize when the source Delta table gets new commits. An aggregation feature runs at most once
    per half its granularity (a sliding window's slide, a tumbling window's duration), capped at one
    hour; a :class:`~larder.declarative.functions.ColumnSelection` on every new commit."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "table", "state": self.pipeline_schedule_state.value}


@dataclass
class OfflineStoreConfig:
    """Where offline values go: one Delta feature table per feature, named
    ``<catalog_name>.<schema_name>.<table_name_prefix>_<feature name>``."""

    catalog_name: str
    schema_name: str
    table_name_prefix: str

    def as_dict(self) -> dict[str, Any]:
        return {"catalog_name": self.catalog_name, "schema_name": self.schema_name,
                "table_name_prefix": self.table_name_prefix}


@dataclass
class OnlineStoreConfig:
    """Where online values go: ``online_store_name`` is an online store larder knows (a name from
    ``larder.yaml``'s ``online_stores`` or :meth:`create_online_store`); the online table is named
    ``<catalog_name>.<schema_name>.<table_name_prefix>_<hash of the features' definitions>``."""

    catalog_name: str
    schema_name: str
    table_name_prefix: str
    online_store_name: str

    def as_dict(self) -> dict[str, Any]:
        return {"catalog_name": self.catalog_name, "schema_name": self.schema_name,
                "table_name_prefix": self.table_name_prefix, "online_store_name": self.online_store_name}


@dataclass
class MaterializedFeature:
    """One feature materialized to one destination (Databricks' ``MaterializedFeature`` fields).

    ``table_name`` is the offline feature table or the online table; ``last_materialization_time`` the
    ISO time of the last successful run. larder adds the lineage: ``source_table`` and the Delta
    ``source_version`` the last run consumed.
    """

    feature_name: str
    materialized_feature_id: str | None = None
    is_online: bool | None = None
    offline_store_config: OfflineStoreConfig | None = None
    online_store_config: OnlineStoreConfig | None = None
    cron_schedule_trigger: CronSchedule | None = None
    table_trigger: TableTrigger | None = None
    pipeline_schedule_state: MaterializedFeaturePipelineScheduleState | None = None
    table_name: str | None = None
    last_materialization_time: str | None = None
    latest_backfill_operation: str | None = None
    tags: dict[str, str] | None = None
    budget_policy_id: str | None = None
    source_table: str | None = None
    source_version: int | None = None

    @property
    def cron_schedule(self) -> str | None:
        """The cron expression of a manual schedule (Databricks' legacy field)."""
        return self.cron_schedule_trigger.quartz_cron_expression if self.cron_schedule_trigger else None


class BackfillRange:
    """An output time range to backfill, half-open: ``start_time`` inclusive, ``end_time`` exclusive
    (naive datetimes are UTC). Unset ``start_time``: from the earliest source time; unset ``end_time``:
    to the time of the last materialization."""

    def __init__(self, *, start_time: dt.datetime | None = None, end_time: dt.datetime | None = None) -> None:
        for name, value in (("start_time", start_time), ("end_time", end_time)):
            if value is not None and not isinstance(value, dt.datetime):
                raise MaterializationError(f"BackfillRange {name} must be a datetime.datetime when given, got "
                                           f"{type(value).__name__} {value!r}.")
        self._start_time = _utc(start_time)
        self._end_time = _utc(end_time)
        if self._start_time is not None and self._end_time is not None and self._start_time >= self._end_time:
            raise MaterializationError(f"BackfillRange: start_time ({start_time}) must be earlier than end_time "
                                       f"({end_time}).")

    @property
    def start_time(self) -> dt.datetime | None:
        return self._start_time

    @property
    def end_time(self) -> dt.datetime | None:
        return self._end_time

    def to_dict(self) -> dict[str, str | None]:
        return {"start_time": self._start_time.isoformat() if self._start_time else None,
                "end_time": self._end_time.isoformat() if self._end_time else None}

    @classmethod
    def from_dict(cls, d: dict[str, str | None]) -> BackfillRange:
        s, e = d.get("start_time"), d.get("end_time")
        return cls(start_time=dt.datetime.fromisoformat(s) if s else None,
                   end_time=dt.datetime.fromisoformat(e) if e else None)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BackfillRange) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash((self._start_time, self._end_time))

    def __repr__(self) -> str:
        return f"BackfillRange(start_time={self._start_time!r}, end_time={self._end_time!r})"


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class BackfillState(Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass
class BackfillStatus:
    """A snapshot of a backfill: its operation name (``operations/<id>``), state, features, the ranges
    it recomputed (limited to the materialized history) and the error of a failed one."""

    operation_name: str
    state: BackfillState | None = None
    feature_full_names: list[str] = field(default_factory=list)
    backfill_ranges: list[BackfillRange] = field(default_factory=list)
    error: str | None = None


@dataclass
class OperationError:
    """Why an operation failed (``Operation.error``)."""

    message: str
    error_code: str = "FAILED"


@dataclass
class Operation:
    """A long-running operation (Databricks' ``Operation``): ``done``, ``error`` or ``response``, and
    ``metadata`` (``@type``, ``state``, ``feature_full_names``, ``backfill_ranges``)."""

    name: str | None = None
    done: bool | None = None
    error: OperationError | None = None
    metadata: dict[str, Any] | None = None
    response: dict[str, Any] | None = None


#: ``Operation.metadata["@type"]`` of a backfill.
BACKFILL_METADATA_TYPE = "type.googleapis.com/databricks.featurestore.BackfillOperationMetadata"

__all__ = ["BACKFILL_METADATA_TYPE", "BackfillRange", "BackfillState", "BackfillStatus", "CronSchedule",
           "CronScheduleMode", "MaterializedFeature", "MaterializedFeaturePipelineScheduleState",
           "OfflineStoreConfig", "OnlineStoreConfig", "Operation", "OperationError", "TableTrigger", "Trigger"]
