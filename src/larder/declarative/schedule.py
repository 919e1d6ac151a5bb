"""Scheduling without services: which materializations are due, and running them.

``larder materialize`` calls :func:`run_due` once; ``larder materialize --watch`` calls it in a loop
(:func:`watch`). A group of materialized features (those one ``materialize_features`` call made
that share a source, entity and timeseries column) is **due** at time ``now`` when its trigger is
``ACTIVE`` and

* ``CronSchedule`` (``MANUAL``): the expression fired (in its time zone) after the group's last
  successful run, at or before ``now`` (:func:`larder.declarative.cron.last_fire`);
* ``CronSchedule`` (``DERIVED``): a period passed since the last run: every slide of a sliding window,
  every window of a tumbling one (on the window's grid, shifted by its delay), else hourly; the
  shortest of the group's features;
* ``TableTrigger``: the source table has a Delta version newer than the one the last run consumed,
  and (aggregations over tumbling or sliding windows) at least half the window's granularity, capped
  at one hour, passed since the last run.

``materialize_features(trigger=None)`` runs once and is never due. ``PAUSED`` and ``SNAPSHOT`` are
never due. Time is a parameter (``now``) everywhere, so tests drive it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from larder.catalog.materialization import MaterializationRecord
from larder.declarative import cron
from larder.declarative.feature import Feature
from larder.declarative.functions import AggregationFunction
from larder.declarative.materialize import MaterializationService, RunResult, active
from larder.declarative.windows import TumblingWindow
from larder.errors import LarderError

if TYPE_CHECKING:
    from larder.client import FeatureEngineeringClient

HOUR = dt.timedelta(hours=1)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass
class Due:
    """A group of materializations that is due, and why (``cron`` / ``table``)."""

    group_id: str
    reason: str
    features: list[str]


def _granularity(f: Feature) -> tuple[dt.timedelta, dt.timedelta] | None:
    """A feature's output period and phase (tumbling / sliding windows), None for continuous ones."""
    fn = f.function
    if not isinstance(fn, AggregationFunction):
        return None
    w = fn.time_window
    slide = w.slide
    if slide is None:
        return None
    phase = dt.timedelta(microseconds=w.phase_us()) + w.delay
    return (w.duration if isinstance(w, TumblingWindow) and w.duration is not None else slide), phase


def derived_fire(features: list[Feature], now: dt.datetime) -> dt.datetime:
    """The latest fire time ``<= now`` of a DERIVED schedule for these features."""
    grains = [g for g in (_granularity(f) for f in features) if g is not None]
    period, phase = min(grains, key=lambda g: g[0]) if grains else (HOUR, dt.timedelta(0))
    k = (now - EPOCH - phase) // period
    return EPOCH + phase + k * period


def throttle(features: list[Feature]) -> dt.timedelta:
    """TableTrigger's least time between runs: half the shortest granularity, at most one hour."""
    grains = [g[0] for g in (_granularity(f) for f in features) if g is not None]
    return min(min(grains) / 2, HOUR) if grains else dt.timedelta(0)


def _aware(when: dt.datetime | None) -> dt.datetime | None:
    return None if when is None else (when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when)


def due(svc: MaterializationService, now: dt.datetime) -> list[Due]:
    """The groups due at ``now``."""
    with svc.ctx.catalog.session() as s:
        recs = list(s.scalars(select(MaterializationRecord).order_by(MaterializationRecord.created_at,
                                                                     MaterializationRecord.id)))
        for r in recs:
            s.expunge(r)
    groups: dict[str, list[MaterializationRecord]] = {}
    for r in recs:
        groups.setdefault(r.group_id, []).append(r)
    out: list[Due] = []
    for gid, group in groups.items():
        trig = group[0].trigger
        if not active(trig):
            continue
        times = [_aware(r.last_materialization_time) for r in group]
        last = None if any(t is None for t in times) else min(t for t in times if t is not None)
        feats = [Feature.from_dict(r.definition, registered=True) for r in group]
        names = sorted({r.feature_name for r in group})
        if trig["kind"] == "cron":
            if trig["mode"] == "MANUAL":
                fire = cron.last_fire(cron.parse(trig["expression"]), now, trig.get("timezone_id") or "UTC")
            else:
                fire = derived_fire(feats, now)
            if fire is not None and (last is None or fire > last):
                out.append(Due(gid, "cron", names))
        elif trig["kind"] == "table":
            table = group[0].source_table
            consumed = [r.source_version for r in group]
            try:
                current = svc.tables.snapshot(str(table)).version
            except LarderError:
                continue  # the source is gone: a run would fail; `larder doctor` territory
            newer = any(v is None or v < current for v in consumed)
            if newer and (last is None or now - last >= throttle(feats)):
                out.append(Due(gid, "table", names))
    return out


def run_due(fe: FeatureEngineeringClient, *, now: dt.datetime | None = None,
            progress: Callable[[str], None] | None = None) -> list[RunResult]:
    """Run every due group once (at ``now``, default the current time). Returns the runs' results;
    a failed run is recorded and returned, and the others still run."""
    when = now or dt.datetime.now(dt.UTC)
    svc = fe._materialization
    results: list[RunResult] = []
    for d in due(svc, when):
        results += svc.run_group(d.group_id, now=when, reason=d.reason, progress=progress)
    return results


def watch(fe: FeatureEngineeringClient, *, interval: float = 60.0, iterations: int | None = None,
          clock: Callable[[], dt.datetime] | None = None, sleep: Callable[[float], Any] = time.sleep,
          on_results: Callable[[list[RunResult]], None] | None = None,
          progress: Callable[[str], None] | None = None) -> int:
    """Call :func:`run_due` every ``interval`` seconds (``iterations`` times, default forever); returns
    the number of runs made."""
    made = 0
    i = 0
    while iterations is None or i < iterations:
        results = run_due(fe, now=clock() if clock else None, progress=progress)
        made += len(results)
        if on_results:
            on_results(results)
        i += 1
        if iterations is None or i < iterations:
            sleep(interval)
    return made


__all__ = ["Due", "derived_fire", "due", "run_due", "throttle", "watch"]
