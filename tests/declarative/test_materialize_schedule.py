"""Scheduling without services: the cron parser, what is due when (time driven by the test), the
``larder materialize`` command (once and --watch), and backfills with the operations API."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from larder import (
    AggregationFunction,
    BackfillRange,
    BackfillState,
    CronSchedule,
    CronScheduleMode,
    DeltaTableSource,
    FeatureEngineeringClient,
    MaterializedFeaturePipelineScheduleState,
    OfflineStoreConfig,
    RollingWindow,
    SlidingWindow,
    Sum,
    TableTrigger,
    TumblingWindow,
)
from larder.cli.main import app
from larder.declarative import cron
from larder.declarative.schedule import due, run_due, watch
from larder.errors import MaterializationError, MaterializationNotFoundError, OperationFailedError

UTC = dt.UTC
D = dt.timedelta
T0 = pd.Timestamp("2024-03-01", tz="UTC")
SRC = DeltaTableSource(catalog_name="main", schema_name="default", table_name="events")
OFF = OfflineStoreConfig(catalog_name="main", schema_name="default", table_name_prefix="mat")


def t(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s).replace(tzinfo=UTC)


# -- the cron parser ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("expr", "at", "fired"), [
    ("0 0 6 * * ?", "2024-03-05T07:00:00", "2024-03-05T06:00:00"),       # daily at 06:00 (Quartz)
    ("0 0 6 * * ?", "2024-03-05T05:59:59", "2024-03-04T06:00:00"),
    ("0 0 6 * * ?", "2024-03-05T06:00:00", "2024-03-05T06:00:00"),       # at the instant: fired
    ("0 */15 * * * ?", "2024-03-05T07:44:59", "2024-03-05T07:30:00"),
    ("30 5 1 ? * MON-FRI", "2024-03-03T12:00:00", "2024-03-01T01:05:30"),  # Sunday 3 March: Friday's
    ("0 0 12 ? * 2", "2024-03-06T00:00:00", "2024-03-04T12:00:00"),      # Quartz 2 = Monday
    ("0 0 0 1 JAN,JUL ?", "2024-06-30T00:00:00", "2024-01-01T00:00:00"),
    ("0 0 0 29 2 ? 2024", "2025-01-01T00:00:00", "2024-02-29T00:00:00"),  # with a year field
    ("5 4 * * *", "2024-03-05T04:04:00", "2024-03-04T04:05:00"),         # classic five fields
    ("0 9 * * 0", "2024-03-05T00:00:00", "2024-03-03T09:00:00"),         # classic 0 = Sunday
    ("0 9 * * 7", "2024-03-05T00:00:00", "2024-03-03T09:00:00"),         # classic 7 = Sunday
    ("0 0 1-5/2 * * ?", "2024-03-05T04:30:00", "2024-03-05T03:00:00"),
])
def test_last_fire(expr: str, at: str, fired: str) -> None:
    assert cron.last_fire(cron.parse(expr), t(at)) == t(fired)


def test_last_fire_in_a_time_zone() -> None:
    # 06:00 in Amsterdam is 05:00 UTC in winter and 04:00 UTC in summer
    c = cron.parse("0 0 6 * * ?")
    assert cron.last_fire(c, t("2024-03-05T12:00:00"), "Europe/Amsterdam") == t("2024-03-05T05:00:00")
    assert cron.last_fire(c, t("2024-07-05T12:00:00"), "Europe/Amsterdam") == t("2024-07-05T04:00:00")
    assert cron.last_fire(cron.parse("0 0 0 30 2 ?"), t("2024-03-05T00:00:00")) is None  # never


@pytest.mark.parametrize(("expr", "text"), [
    ("0 0 6 L * ?", "L, W or #"), ("0 0 25 * * ?", "outside 0-23"), ("0 0 6 ? * 8", "outside 1-7"),
    ("1 2 3", "3 fields"), ("0 0/0 * * * ?", "positive number"), ("0 0 6 * FOO ?", "'FOO'"),
])
def test_bad_cron_expressions_say_what_and_how(expr: str, text: str) -> None:
    with pytest.raises(MaterializationError, match=text):
        CronSchedule(quartz_cron_expression=expr)


def test_cron_schedule_arguments() -> None:
    assert CronSchedule().mode is CronScheduleMode.DERIVED
    assert CronSchedule(quartz_cron_expression="0 0 6 * * ?").mode is CronScheduleMode.MANUAL
    with pytest.raises(MaterializationError, match="incompatible with CronScheduleMode.DERIVED"):
        CronSchedule(timezone_id="Europe/Amsterdam")
    with pytest.raises(MaterializationError, match="not a known time zone"):
        CronSchedule(quartz_cron_expression="0 0 6 * * ?", timezone_id="Mars/Olympus")
    with pytest.raises(MaterializationError, match="MANUAL mode requires"):
        CronSchedule(mode=CronScheduleMode.MANUAL)


# -- what is due -------------------------------------------------------------------------------------------
def _events(first: int, n: int, start: pd.Timestamp, days: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    minutes = np.sort(rng.integers(0, int(days * 24 * 60), n))
    return pd.DataFrame({"event_id": np.arange(first, first + n), "user_id": rng.integers(0, 5, n),
                         "ts": [start + pd.Timedelta(minutes=int(m)) for m in minutes],
                         "x": rng.normal(size=n).round(3)}).astype({"ts": "datetime64[us, UTC]"})


def _feature(fe, window, name):  # type: ignore[no-untyped-def]
    return fe.create_feature(source=SRC, function=AggregationFunction(Sum("x"), window), catalog_name="main",
                             schema_name="default", entity=["user_id"], timeseries_column="ts", name=name)


def _materialize(fe, feature, trigger, now):  # type: ignore[no-untyped-def]
    return fe._materialization.materialize_features(features=[feature], offline_config=OfflineStoreConfig(
        "main", "default", f"m_{feature.name}"), trigger=trigger, now=now)


def test_what_is_due_and_when(tmp_path) -> None:
    start = t("2024-04-01T05:30:00")
    with FeatureEngineeringClient(root=tmp_path) as fe:
        fe.create_table("events", "event_id", df=_events(0, 200, T0, 10, seed=1))
        rolling = _feature(fe, RollingWindow(window_duration=D(days=1)), "r")
        tumbling = _feature(fe, TumblingWindow(window_duration=D(hours=6), offset=D(hours=1)), "tu")
        sliding = _feature(fe, SlidingWindow(window_duration=D(hours=4), slide_duration=D(hours=1)), "sl")
        daily = _materialize(fe, rolling, CronSchedule(quartz_cron_expression="0 0 6 * * ?"), start)
        derived = _materialize(fe, tumbling, CronSchedule(), start)
        on_commit = _materialize(fe, sliding, TableTrigger(), start)
        paused = _materialize(fe, _feature(fe, RollingWindow(window_duration=D(hours=2)), "p"), CronSchedule(
            quartz_cron_expression="0 * * * * ?",
            pipeline_schedule_state=MaterializedFeaturePipelineScheduleState.PAUSED), start)
        once = _materialize(fe, _feature(fe, RollingWindow(window_duration=D(hours=3)), "o"), None, start)
        assert all(len(m) == 1 for m in (daily, derived, on_commit, paused, once))
        svc = fe._materialization

        def names(now: dt.datetime) -> list[str]:
            return sorted(n for d in due(svc, now) for n in d.features)

        assert names(start + D(minutes=20)) == []                    # 05:50: nothing fired
        assert names(t("2024-04-01T06:00:00")) == ["main.default.r"]  # the daily cron at 06:00
        # derived for a 6-hour tumbling window with offset 1h: every 6 hours at 01:00, 07:00, ...
        assert names(t("2024-04-01T07:00:00")) == ["main.default.r", "main.default.tu"]
        # a new commit: the table trigger fires, at most every half slide (30 minutes) after a run
        fe.write_table("events", _events(1000, 5, T0 + pd.Timedelta(days=10), 0.1, seed=2))
        assert names(start + D(minutes=29)) == []
        assert names(start + D(minutes=30)) == ["main.default.r", "main.default.sl"]  # 06:00
        results = run_due(fe, now=t("2024-04-01T07:00:00"))
        assert sorted(r.feature_name for r in results) == ["main.default.r", "main.default.sl", "main.default.tu"]
        assert {r.state for r in results} == {"SUCCEEDED"}
        # after running, nothing is due until the next fire / commit
        assert names(t("2024-04-01T12:59:59")) == []
        assert names(t("2024-04-01T13:00:00")) == ["main.default.tu"]
        assert names(t("2024-04-02T06:00:00")) == ["main.default.r", "main.default.tu"]
        # the paused schedule and the one-off materialization are never due
        assert "main.default.p" not in names(t("2025-01-01T00:00:00"))
        assert "main.default.o" not in names(t("2025-01-01T00:00:00"))


def test_larder_materialize_runs_what_is_due_once_and_in_a_loop(tmp_path) -> None:
    runner = CliRunner()
    with FeatureEngineeringClient(root=tmp_path) as fe:
        fe.create_table("events", "event_id", df=_events(0, 100, T0, 5, seed=3))
        f = _feature(fe, RollingWindow(window_duration=D(days=1)), "r")
        fe.materialize_features(features=[f], offline_config=OFF, trigger=TableTrigger())
        later = dt.datetime.now(UTC)
        r = runner.invoke(app, ["materialize", "--root", str(tmp_path), "--at", later.isoformat()])
        assert r.exit_code == 0, r.output
        assert "nothing is due" in r.output
        fe.write_table("events", _events(500, 4, T0 + pd.Timedelta(days=5), 0.1, seed=4))
        r = runner.invoke(app, ["materialize", "--root", str(tmp_path), "--at", later.isoformat()])
        assert r.exit_code == 0, r.output
        assert "materialization runs" in r.output and "SUCCEEDED" in r.output
        assert len(fe.read_table("main.default.mat_r")) == len(fe.compute_features(features=[f]))
        r = runner.invoke(app, ["materialize", "--root", str(tmp_path), "--at", "yesterday"])
        assert r.exit_code == 1 and "not an ISO time" in r.output
        # --watch: each check runs what is due (here: a commit between the checks)
        fe.write_table("events", _events(600, 4, T0 + pd.Timedelta(days=6), 0.1, seed=5))
        r = runner.invoke(app, ["materialize", "--root", str(tmp_path), "--watch", "--interval", "0",
                                "--iterations", "2"])
        assert r.exit_code == 0, r.output
        assert r.output.count("SUCCEEDED") == 1
        assert len(fe.read_table("main.default.mat_r")) == len(fe.compute_features(features=[f]))


def test_watch_checks_at_each_tick_of_the_clock(tmp_path) -> None:
    with FeatureEngineeringClient(root=tmp_path) as fe:
        fe.create_table("events", "event_id", df=_events(0, 100, T0, 5, seed=6))
        f = _feature(fe, RollingWindow(window_duration=D(days=1)), "r")
        _materialize(fe, f, CronSchedule(quartz_cron_expression="0 0 * * * ?"), t("2024-04-01T00:30:00"))
        ticks = iter([t("2024-04-01T00:59:00"), t("2024-04-01T01:00:00"), t("2024-04-01T01:30:00"),
                      t("2024-04-01T02:00:01")])
        seen: list[int] = []
        made = watch(fe, interval=0, iterations=4, clock=lambda: next(ticks), sleep=lambda s: None,
                     on_results=lambda rs: seen.append(len(rs)))
        assert seen == [0, 1, 0, 1] and made == 2


# -- backfills -----------------------------------------------------------------------------------------------
def test_backfill_recomputes_exactly_its_range_idempotently(tmp_path) -> None:
    with FeatureEngineeringClient(root=tmp_path) as fe:
        fe.create_table("events", "event_id", df=_events(0, 300, T0, 10, seed=7))
        f = _feature(fe, RollingWindow(window_duration=D(days=2)), "r")
        [m] = fe.materialize_features(features=[f], offline_config=OFF)
        good = fe.read_table(m.table_name).sort_values(["user_id", "ts"]).reset_index(drop=True)
        # someone damages the table: every value becomes -1
        fe.write_table(m.table_name, good.assign(r=-1.0))
        lo, hi = T0 + pd.Timedelta(days=3), T0 + pd.Timedelta(days=6)
        status = fe.backfill_features(features=[f.full_name], backfill_ranges=[
            BackfillRange(start_time=lo.to_pydatetime(), end_time=hi.to_pydatetime())], request_id="fix-1")
        assert status.state is BackfillState.SUCCEEDED and status.operation_name.startswith("operations/")
        assert status.feature_full_names == [f.full_name] and status.error is None
        assert status.backfill_ranges == [BackfillRange(start_time=lo.to_pydatetime(), end_time=hi.to_pydatetime())]
        after = fe.read_table(m.table_name).sort_values(["user_id", "ts"]).reset_index(drop=True)
        inside = (after["ts"] >= lo) & (after["ts"] < hi)
        assert inside.any() and (~inside).any()
        assert repr(after.loc[inside, "r"].tolist()) == repr(good.loc[inside, "r"].tolist())  # recomputed
        assert (after.loc[~inside, "r"] == -1.0).all()                                        # untouched
        assert len(after) == len(good)
        # again, and with the same request id: the same table; the request id returns the original
        again = fe.backfill_features(features=[f], backfill_ranges=[BackfillRange(start_time=lo.to_pydatetime(),
                                                                                 end_time=hi.to_pydatetime())])
        assert again.operation_name != status.operation_name
        pd.testing.assert_frame_equal(fe.read_table(m.table_name).sort_values(["user_id", "ts"]).reset_index(drop=True),
                                      after, check_exact=True)
        assert fe.backfill_features(features=[f], backfill_ranges=[BackfillRange()],
                                    request_id="fix-1").operation_name == status.operation_name
        # an open range recomputes everything: the table is whole again
        fe.backfill_features(features=[f], backfill_ranges=[BackfillRange(start_time=None)], wait=True)
        pd.testing.assert_frame_equal(fe.read_table(m.table_name).sort_values(["user_id", "ts"]).reset_index(drop=True),
                                      good, check_exact=True)
        # the operations API
        assert fe.get_backfill(operation_name=status.operation_name) == status
        assert fe.wait_for_backfill(backfill=status, timeout=D(seconds=1)) == status
        op = fe.get_operation(name=status.operation_name)
        assert op.done is True and op.error is None and op.metadata["state"] == "SUCCEEDED"
        assert op.metadata["@type"].endswith("BackfillOperationMetadata")
        fe.cancel_backfill(backfill=status)  # finished: left as it is
        fe.cancel_operation(name=status.operation_name)
        assert fe.get_backfill(operation_name=status.operation_name).state is BackfillState.SUCCEEDED
        runs = fe._materialization.runs(m)
        assert [r["kind"] for r in runs] == ["backfill"] * 3 + ["full"]
        assert runs[-2]["operation"] == status.operation_name
        latest = fe.list_materialized_features(feature_name=f.full_name)[0]
        assert latest.latest_backfill_operation == runs[0]["operation"]


def test_backfill_errors(tmp_path) -> None:
    with FeatureEngineeringClient(root=tmp_path) as fe:
        fe.create_table("events", "event_id", df=_events(0, 50, T0, 3, seed=8))
        f = _feature(fe, RollingWindow(window_duration=D(days=1)), "r")
        with pytest.raises(MaterializationError, match="no offline materialization to backfill"):
            fe.backfill_features(features=[f], backfill_ranges=[BackfillRange()])
        [m] = fe.materialize_features(features=[f], offline_config=OFF)
        with pytest.raises(MaterializationError, match="non-empty list of BackfillRange"):
            fe.backfill_features(features=[f], backfill_ranges=[])
        with pytest.raises(MaterializationError, match="must be earlier than end_time"):
            BackfillRange(start_time=dt.datetime(2024, 3, 2), end_time=dt.datetime(2024, 3, 1))
        with pytest.raises(MaterializationError, match="must be a BackfillRange"):
            fe.backfill_features(features=[f], backfill_ranges=[(None, None)])
        with pytest.raises(MaterializationNotFoundError, match="No operation 'operations/nope'"):
            fe.get_backfill(operation_name="operations/nope")
        # a backfill that fails (its source table is gone) is FAILED; waiting for it raises
        fe.drop_table("events")
        status = fe.backfill_features(feature_full_names=[f.full_name], backfill_ranges=[BackfillRange()])
        assert status.state is BackfillState.FAILED and "main.default.events" in status.error
        with pytest.raises(OperationFailedError, match="failed"):
            fe.wait_for_backfill(backfill=status)
        assert fe.get_operation(name=status.operation_name).error is not None
