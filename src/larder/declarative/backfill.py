"""Backfills: recompute a time range of materialized features' offline tables, idempotently.

``backfill_features(features=[...], backfill_ranges=[BackfillRange(start_time, end_time)])``
recomputes, for each feature's offline materialization, the rows at times in ``[start_time,
end_time)`` from the source's Delta version the materialization last consumed (so a backfill never
mixes in rows a run has not materialized yet), and replaces exactly the table's rows in that range
in one Delta commit. The same backfill run twice gives the same table. Each backfill is an
operation (``operations/<id>``) recorded in the catalog with one run row per feature.

Backfills run synchronously here: ``backfill_features`` returns when the operation has finished
(``SUCCEEDED`` or ``FAILED``), so ``wait_for_backfill`` returns at once (or raises
:class:`~larder.errors.OperationFailedError`) and ``cancel_backfill`` / ``cancel_operation`` find
the operation finished and leave it as it is, as Databricks does for a finished one. A process killed
mid-backfill leaves the operation ``RUNNING`` and the tables as they were or fully backfilled (one
commit per table); calling ``backfill_features`` again with the same ``request_id`` redoes it.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from larder.catalog.base import utcnow
from larder.catalog.materialization import MaterializationRecord, OperationRecord
from larder.declarative.feature import Feature
from larder.declarative.materialize import MaterializationService, RunResult
from larder.declarative.materialized import (
    BACKFILL_METADATA_TYPE,
    BackfillRange,
    BackfillState,
    BackfillStatus,
    Operation,
    OperationError,
)
from larder.errors import (
    LarderError,
    MaterializationError,
    MaterializationNotFoundError,
    OperationFailedError,
)
from larder.names import parse_name


def feature_full_name(f: Any, *, why: str = "backfill works on materialized features") -> str:
    """The full name of a feature given as a registered ``Feature`` or a name (``features=`` of the
    operations on materialized features: backfills, purges); ``why`` ends the unregistered error."""
    if isinstance(f, Feature):
        if not f.has_full_name:
            raise MaterializationError(f"Feature {f.name!r} is not registered; {why}.")
        return f.full_name
    if isinstance(f, str) and f.strip():
        return parse_name(f.strip(), kind="feature").full
    raise MaterializationError(
        f"Each item in 'features' must be a Feature or a full name '<catalog>.<schema>.<feature>', got "
        f"{type(f).__name__} {f!r}."
    )


def _op_name(name: Any, what: str = "operation_name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise MaterializationError(f"'{what}' must be a non-empty string ('operations/<id>').")
    return name.strip()


class BackfillService:
    """``backfill_features`` and the operations API. Used through ``FeatureEngineeringClient``."""

    def __init__(self, svc: MaterializationService) -> None:
        self.svc = svc
        self.ctx = svc.ctx

    def backfill_features(self, *, features: Sequence[Any] | None = None, backfill_ranges: Sequence[Any],
                          request_id: str | None = None, tags: dict[str, str] | None = None,
                          budget_policy_id: str | None = None, wait: bool = False, **kwargs: Any) -> BackfillStatus:
        if features is None and "feature_full_names" in kwargs:
            features = kwargs.pop("feature_full_names")
        if kwargs:
            raise MaterializationError(f"backfill_features: unexpected keyword arguments {sorted(kwargs)}.")
        if not features or isinstance(features, (str, Feature)):
            raise MaterializationError("'features' must be a non-empty list of features or their full names.")
        if not backfill_ranges or not isinstance(backfill_ranges, Sequence):
            raise MaterializationError("'backfill_ranges' must be a non-empty list of BackfillRange.")
        for r in backfill_ranges:
            if not isinstance(r, BackfillRange):
                raise MaterializationError(f"Each item in 'backfill_ranges' must be a BackfillRange, got {type(r).__name__}.")
        names = list(dict.fromkeys(feature_full_name(f) for f in features))
        recs = self.svc.feature_records(names, online=False)
        missing = [n for n in names if n not in {r.feature_name for r in recs}]
        if missing:
            raise MaterializationError(
                f"Features {missing} have no offline materialization to backfill. Materialize them first: "
                "materialize_features(features=[...], offline_config=OfflineStoreConfig(...))."
            )
        never = sorted({r.feature_name for r in recs if r.source_version is None})
        if never:
            raise MaterializationError(f"Features {never} have not been materialized by any run yet; run them first.")
        name = None
        if request_id is not None:
            with self.ctx.catalog.session() as s:
                known = s.scalars(select(OperationRecord).where(OperationRecord.request_id == request_id)).first()
                if known is not None:
                    name = known.name
                    if known.state != "RUNNING":  # the original backfill, as Databricks returns it
                        status = self._status(known)
                        return self.wait_for_backfill(backfill=status) if wait else status
        ranges = list(backfill_ranges)
        if name is None:
            name = f"operations/{uuid.uuid4().hex}"
            with self.ctx.catalog.session() as s:
                s.add(OperationRecord(name=name, kind="backfill", request_id=request_id, state="RUNNING",
                                      feature_full_names=names, backfill_ranges=[r.to_dict() for r in ranges],
                                      created_at=utcnow()))
        error = None
        try:
            for rng in ranges:
                failed = self._backfill(recs, rng, name)
                if failed:
                    error = f"Backfill of {failed[0].feature_name!r} failed: {failed[0].error}"
                    break
        except LarderError as exc:
            error = str(exc)
        with self.ctx.catalog.session() as s:
            op = s.get(OperationRecord, name)
            assert op is not None
            op.state, op.error, op.finished_at = ("FAILED" if error else "SUCCEEDED"), error, utcnow()
            for r in recs:
                live = s.get(MaterializationRecord, r.id)
                if live is not None:
                    live.latest_backfill_operation = name
        status = self.get_backfill(operation_name=name)
        return self.wait_for_backfill(backfill=status) if wait else status

    def _backfill(self, recs: list[MaterializationRecord], rng: BackfillRange, operation: str) -> list[RunResult]:
        svc = self.svc
        groups: dict[tuple[str, int | None], list[MaterializationRecord]] = {}
        for r in recs:
            groups.setdefault((r.group_id, r.source_version), []).append(r)
        failed: list[RunResult] = []
        for (_, version), part in groups.items():
            assert version is not None
            started = time.perf_counter()
            features, source = svc._source_of(part)
            run_id = svc._begin(part, "backfill", "backfill", version, operation=operation)
            try:
                values, read = svc.compute(features, source, version, rng.start_time, rng.end_time)
                by_name = {f.full_name: f for f in features}
                full = rng.start_time is None and rng.end_time is None
                versions = {r.id: svc.write_offline(r, by_name[r.feature_name], values, full=full,
                                                    start=rng.start_time, end=rng.end_time, created=None)
                            for r in part}
                results = [(r, RunResult(r.id, r.feature_name, r.table_name, "backfill", "SUCCEEDED", version, version,
                                         read, values.num_rows, time.perf_counter() - started)) for r in part]
                svc._finish(run_id, results, consumed=version, when=None, range_start=rng.start_time,
                            range_end=rng.end_time, output_versions=versions)
            except LarderError as exc:
                results = [(r, RunResult(r.id, r.feature_name, r.table_name, "backfill", "FAILED", version, version,
                                         None, None, time.perf_counter() - started, str(exc))) for r in part]
                svc._finish(run_id, results, consumed=None, when=None)
                failed += [res for _, res in results]
        return failed

    # -- operations ---------------------------------------------------------------------------------
    def _record(self, name: str) -> OperationRecord:
        with self.ctx.catalog.session() as s:
            op = s.get(OperationRecord, name)
            if op is None:
                raise MaterializationNotFoundError(
                    f"No operation {name!r}. Operation names are 'operations/<id>', as backfill_features returns "
                    "them (BackfillStatus.operation_name) and MaterializedFeature.latest_backfill_operation holds."
                )
            s.expunge(op)
            return op

    @staticmethod
    def _status(op: OperationRecord) -> BackfillStatus:
        return BackfillStatus(operation_name=op.name, state=BackfillState(op.state),
                              feature_full_names=list(op.feature_full_names),
                              backfill_ranges=[BackfillRange.from_dict(r) for r in op.backfill_ranges],
                              error=op.error if op.state == "FAILED" else None)

    def get_backfill(self, *, operation_name: str) -> BackfillStatus:
        op = self._record(_op_name(operation_name))
        if op.kind != "backfill":
            raise MaterializationError(f"'{op.name}' is not a backfill operation.")
        return self._status(op)

    def wait_for_backfill(self, *, backfill: BackfillStatus, timeout: dt.timedelta | None = None) -> BackfillStatus:
        if not isinstance(backfill, BackfillStatus):
            raise MaterializationError(f"Expected a BackfillStatus, got {type(backfill).__name__}. Use get_backfill() "
                                       "to get the status of a backfill from its operation name.")
        deadline = None if timeout is None else time.monotonic() + timeout.total_seconds()
        pause = 0.05
        while True:
            status = self.get_backfill(operation_name=backfill.operation_name)
            if status.state == BackfillState.SUCCEEDED:
                return status
            if status.state in (BackfillState.FAILED, BackfillState.CANCELLED):
                message = f"Backfill {status.operation_name} {status.state.value.lower()}."
                raise OperationFailedError(f"{message} {status.error}" if status.error else message)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"Timed out after {timeout} waiting for backfill {status.operation_name}.")
            time.sleep(pause)
            pause = min(pause * 2, 5.0)

    def cancel_backfill(self, *, backfill: BackfillStatus) -> None:
        if not isinstance(backfill, BackfillStatus):
            raise MaterializationError(f"Expected a BackfillStatus, got {type(backfill).__name__}. Use get_backfill().")
        self.cancel_operation(name=backfill.operation_name)

    def get_operation(self, *, name: str) -> Operation:
        op = self._record(_op_name(name, "name"))
        done = op.state in ("SUCCEEDED", "FAILED", "CANCELLED")
        return Operation(
            name=op.name, done=done,
            error=OperationError(op.error or op.state, op.state) if op.state in ("FAILED", "CANCELLED") else None,
            metadata={"@type": BACKFILL_METADATA_TYPE, "state": op.state,
                      "feature_full_names": list(op.feature_full_names), "backfill_ranges": list(op.backfill_ranges)},
            response={} if op.state == "SUCCEEDED" else None,
        )

    def cancel_operation(self, *, name: str) -> None:
        """Best effort, as in Databricks: a finished operation is left as it is. Operations run
        synchronously here, so every operation another call can see has finished, except one whose
        process was killed: that one is marked ``CANCELLED``."""
        op_name = _op_name(name, "name")
        self._record(op_name)
        with self.ctx.catalog.session() as s:
            op = s.get(OperationRecord, op_name)
            if op is not None and op.state in ("PENDING", "RUNNING"):
                op.state, op.finished_at, op.error = "CANCELLED", utcnow(), "cancelled by cancel_operation"


__all__ = ["BackfillService"]
