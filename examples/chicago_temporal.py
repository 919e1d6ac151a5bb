"""Temporal features and point-in-time training on the Chicago 'L' ridership data.

The series is the daily ridership at the Clark/Lake station (in thousands), 2001-2016, with the day's
weather. The task: predict a day's ridership before the day starts, from what is known by then.

1. ``larder.transforms.lags`` and ``rolling`` compute, for every day ``d``, lags of ridership
   (1, 7, 14, 21 and 28 days), rolling statistics over the last 7 and 28 days, the previous day's
   weather and whether the previous day and the same day last week were holidays. With the default
   ``include_current=False`` every value at ``d`` comes *strictly* from days before ``d``; nothing of
   day ``d`` itself leaks in. The one exception is deliberate: whether ``d`` is a public holiday is
   known in advance, so the row of ``d`` carries it.
2. They go into a time-series feature table ``main.chicago.ridership_features`` with entity key
   ``station`` (one station: ``"Clark_Lake"``) and timestamp key ``date`` (midnight UTC starting the
   day). The table is a history: every day has its own row.
3. Label rows are *forecasts*: made at 06:00 UTC on day ``d`` (``forecast_at``) for the ridership of day
   ``d`` (the day after the last day the features summarise). A point-in-time ``FeatureLookup``
   (``timestamp_lookup_key="forecast_at"``, ``lookback_window`` of 2 days) takes, for each row, the
   latest feature row at or before 06:00 of ``d``, i.e. the row of midnight ``d``.
4. A feature function adds the day of week of the forecast time (a request-time input).
5. A gradient-boosted model is trained on everything before 2014 and evaluated on 2014 onwards (a
   time-based holdout), beside the naive "same day last week" forecast. The model is logged with
   its feature spec and the holdout is scored again offline with ``fe.score_batch``.

Run::

    python examples/chicago_temporal.py --root /tmp/larder-chicago

The last line printed is a JSON summary (holdout MAE of the model and of the baseline, row counts).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
import warnings
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from pandas.tseries.holiday import USFederalHolidayCalendar
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error

from larder import FeatureEngineeringClient, FeatureFunction, FeatureLookup
from larder.datasets import load_chicago
from larder.transforms import lags, rolling

TABLE = "main.chicago.ridership_features"
FUNCTION = "main.chicago.day_of_week"
MODEL_NAME = "chicago_ridership"
STATION = "Clark_Lake"
WEATHER = ["temp", "percip", "weather_snow"]
SPLIT = pd.Timestamp("2014-01-01", tz="UTC")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def day_of_week(at: dt.datetime) -> int:
    """Day of week of a timestamp: Monday = 0 ... Sunday = 6."""
    return at.weekday()


def us_holidays(dates: pd.Series) -> pd.Series:
    """1 on US federal holidays: known long in advance, so a legitimate feature of the day itself."""
    days = dates.dt.tz_convert(None).dt.normalize()
    holidays = USFederalHolidayCalendar().holidays(days.min(), days.max())
    return days.isin(holidays).astype("int64")


def temporal_features(chicago: pd.DataFrame) -> pd.DataFrame:
    """One row per (station, date) holding only what is known when that day starts."""
    series = chicago[["date", "ridership", *WEATHER]].assign(station=STATION, holiday=us_holidays(chicago["date"]))
    out = lags(series, by="station", order_by="date", columns="ridership", periods=[1, 7, 14, 21, 28])
    out = lags(out, by="station", order_by="date", columns=[*WEATHER, "holiday"], periods=1)
    out = lags(out, by="station", order_by="date", columns="holiday", periods=7)
    out = rolling(out, by="station", order_by="date", columns="ridership", windows=["7d", "28d"],
                  stats=["mean", "std", "min", "max"])
    # the day's own ridership and weather are not known at midnight: keep only the derived columns
    # (and the calendar: whether the day is a holiday is known in advance)
    return out.drop(columns=["ridership", *WEATHER])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="larder root directory (default: $LARDER_ROOT or ./.larder)")
    args = parser.parse_args(argv)
    # MLflow's hints (pickle formats, integer columns, input examples) are noise in an example's output
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")

    with FeatureEngineeringClient(root=args.root) as fe:
        log("load the Chicago data and compute lags and rolling statistics (DuckDB windows)")
        chicago = load_chicago()
        features = temporal_features(chicago)
        log(f"  {len(features):,} days x {features.shape[1] - 2} features, "
            f"{features['date'].min():%Y-%m-%d} .. {features['date'].max():%Y-%m-%d}")

        if fe.list_tables(TABLE):  # a second run replaces the history
            fe.write_table(TABLE, features, mode="overwrite")
        else:
            fe.create_table(TABLE, primary_keys=["station", "date"], timestamp_keys="date", df=features,
                            description="Clark/Lake ridership: lags and rolling statistics, strictly from "
                                        "the days before `date`")
        table = fe.get_table(TABLE)
        log(f"  time-series table {table.name}: keys {table.entity_keys}, timestamp {table.timestamp_keys}, "
            f"{table.row_count:,} rows, Delta version {table.version}")
        fe.create_function(FUNCTION, day_of_week, description="Monday = 0 ... Sunday = 6")

        # label rows: a forecast at 06:00 UTC of day d for the ridership of day d
        labels = pd.DataFrame({
            "station": STATION,
            "forecast_at": chicago["date"] + pd.Timedelta(hours=6),
            "ridership": chicago["ridership"].astype("float64"),
        })
        labels = labels[labels["forecast_at"] >= labels["forecast_at"].min() + pd.Timedelta(days=28)]
        lookups = [
            FeatureLookup(TABLE, lookup_key="station", timestamp_lookup_key="forecast_at",
                          lookback_window=dt.timedelta(days=2)),
            FeatureFunction(FUNCTION, input_bindings={"at": "forecast_at"}, output_name="day_of_week"),
        ]
        train_rows = labels[labels["forecast_at"] < SPLIT]
        test_rows = labels[labels["forecast_at"] >= SPLIT]
        ts = fe.create_training_set(df=train_rows, feature_lookups=lookups, label="ridership",
                                    exclude_columns=["station", "forecast_at"])
        train_df = ts.load_df()
        log(f"training set: {len(train_df):,} rows (before {SPLIT:%Y-%m-%d}), columns {list(train_df.columns)}")

        X, y = train_df.drop(columns=["ridership"]), train_df["ridership"]
        model = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.08, categorical_features=["day_of_week"],
                                              random_state=0).fit(X, y)

        test_df = fe.create_training_set(df=test_rows, feature_lookups=lookups, label="ridership",
                                         exclude_columns=["station", "forecast_at"]).load_df()
        y_test = test_df["ridership"].to_numpy(dtype="float64")
        y_pred = model.predict(test_df[X.columns])
        mae = float(mean_absolute_error(y_test, y_pred))
        baseline = float(mean_absolute_error(y_test, test_df["ridership_lag_7"].to_numpy(dtype="float64")))
        log(f"holdout {SPLIT:%Y-%m-%d} onwards ({len(test_df):,} days): MAE {mae:.3f} thousand riders; "
            f"same-day-last-week baseline {baseline:.3f}")

        info = fe.log_model(model, "model", flavor=mlflow.sklearn, training_set=ts,
                            registered_model_name=MODEL_NAME)
        model_uri = f"models:/{MODEL_NAME}/{info.registered_model_version}"
        scored = fe.score_batch(model_uri, test_rows[["station", "forecast_at"]])
        batch_diff = float(np.max(np.abs(scored["prediction"].to_numpy(dtype="float64") - y_pred)))
        log(f"logged {model_uri}; score_batch on the holdout keys: max |difference| {batch_diff:.2e}")

        summary = {
            "table": table.name, "rows": {"features": table.row_count, "train": len(train_df),
                                          "test": len(test_df)},
            "features": list(X.columns), "mae": mae, "baseline_mae": baseline,
            "mean_ridership": float(np.mean(y_test)), "model_uri": model_uri,
            "score_batch_max_diff": batch_diff,
        }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
