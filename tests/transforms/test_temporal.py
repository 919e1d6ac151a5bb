"""lags() and rolling(): brute-force oracle, point-in-time safety, input kinds, bad input."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from larder.errors import TransformError
from larder.transforms import lags, rolling
from larder.transforms.temporal import window_label

DAY = pd.Timedelta("1D")
ALL_STATS = ["mean", "std", "var", "min", "max", "sum", "count", "median"]


# ---------------------------------------------------------------- the oracle (plain Python loops)


def _stat(values: list[float], stat: str) -> float:
    vals = [v for v in values if not np.isnan(v)]
    if stat == "count":
        return float(len(vals))
    if not vals:
        return np.nan
    arr = np.asarray(vals)
    if stat in ("std", "var"):
        if len(arr) < 2:
            return np.nan
        return float(arr.std(ddof=1) if stat == "std" else arr.var(ddof=1))
    return float(
        {"mean": np.mean, "min": np.min, "max": np.max, "sum": np.sum, "median": np.median}[stat](arr)
    )


def oracle_rolling(df, by, order_by, column, windows, stats, include_current):
    """For every row: the history of its entity strictly before (or at) its time, by brute force."""
    rows = list(df[[by, order_by, column]].itertuples(index=False, name=None))
    out = {}
    for w in windows:
        label = f"{w}rows" if isinstance(w, int) else window_label(pd.Timedelta(w).value)
        for stat in stats:
            out[f"{column}_{stat}_{label}"] = []
    for i, (e, t, _) in enumerate(rows):
        history = [
            (t2, j, v)
            for j, (e2, t2, v) in enumerate(rows)
            if e2 == e and (t2 < t or (include_current and t2 == t))
        ]
        history.sort(key=lambda r: (r[0], r[1]))
        for w in windows:
            if isinstance(w, int):
                chosen = [v for _, _, v in history[-w:]] if w else []
                label = f"{w}rows"
            else:
                span = pd.Timedelta(w)
                chosen = [v for t2, _, v in history if t2 >= t - span]
                label = window_label(span.value)
            for stat in stats:
                out[f"{column}_{stat}_{label}"].append(_stat(chosen, stat))
        del i
    return pd.DataFrame(out, index=df.index)


def oracle_lags(df, by, order_by, column, periods):
    rows = list(df[[by, order_by, column]].itertuples(index=False, name=None))
    out = {f"{column}_lag_{k}": [] for k in periods}
    for e, t, _ in rows:
        history = sorted(
            ((t2, j, v) for j, (e2, t2, v) in enumerate(rows) if e2 == e and t2 < t), key=lambda r: r[:2]
        )
        for k in periods:
            out[f"{column}_lag_{k}"].append(history[-k][2] if len(history) >= k else np.nan)
    return pd.DataFrame(out, index=df.index)


def assert_frames_close(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    for col in expected.columns:
        a = actual[col].to_numpy(dtype="float64", na_value=np.nan)
        b = expected[col].to_numpy(dtype="float64")
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=col)


# ---------------------------------------------------------------- hand-checked examples


@pytest.fixture()
def sales() -> pd.DataFrame:
    # store 1 has two rows on 2024-01-02 (peers); rows are deliberately unsorted.
    return pd.DataFrame(
        {
            "store": [1, 1, 2, 1, 1, 2],
            "day": pd.to_datetime(
                ["2024-01-03", "2024-01-01", "2024-01-05", "2024-01-02", "2024-01-02", "2024-01-01"]
            ),
            "sales": [30.0, 10.0, 7.0, 20.0, 25.0, 5.0],
        },
        index=[10, 11, 12, 13, 14, 15],
    )


def test_rolling_excludes_current_row_and_peers(sales):
    out = rolling(sales, "store", "day", "sales", windows=[2, "2d"], stats=["sum", "count"])
    assert list(out.index) == [10, 11, 12, 13, 14, 15]
    assert list(out.columns[:3]) == ["store", "day", "sales"]
    # 2024-01-02 peers see only 2024-01-01 (10.0), not each other.
    assert out.loc[[13, 14], "sales_sum_2rows"].tolist() == [10.0, 10.0]
    assert out.loc[[13, 14], "sales_count_2d"].tolist() == [1, 1]
    # 2024-01-03: last two rows before it are the two peers at 01-02.
    assert out.loc[10, "sales_sum_2rows"] == 45.0
    # time window [t-2d, t) on 01-03 holds 01-01 and both 01-02 rows.
    assert out.loc[10, "sales_sum_2d"] == 55.0
    assert np.isnan(out.loc[11, "sales_sum_2rows"]) and out.loc[11, "sales_count_2rows"] == 0
    assert out["sales_count_2d"].dtype == np.int64


def test_rolling_include_current_ends_at_the_timestamp(sales):
    out = rolling(sales, "store", "day", "sales", windows=[2, "1d"], stats=["sum"], include_current=True)
    # peers at 01-02 both see the last two rows with day <= 01-02: 20 and 25
    assert out.loc[[13, 14], "sales_sum_2rows"].tolist() == [45.0, 45.0]
    assert out.loc[10, "sales_sum_2rows"] == 55.0
    # [t-1d, t] on 01-02 holds 01-01 and both peers
    assert out.loc[[13, 14], "sales_sum_1d"].tolist() == [55.0, 55.0]
    assert out.loc[11, "sales_sum_1d"] == 10.0


def test_lags_skip_peers(sales):
    out = lags(sales, "store", "day", "sales", periods=[1, 2])
    assert out.loc[10, ["sales_lag_1", "sales_lag_2"]].tolist() == [25.0, 20.0]
    assert out.loc[[13, 14], "sales_lag_1"].tolist() == [10.0, 10.0]
    assert np.isnan(out.loc[13, "sales_lag_2"])
    assert out.loc[12, "sales_lag_1"] == 5.0


def test_windows_longer_than_data_use_what_exists(sales):
    out = rolling(sales, "store", "day", "sales", windows=[100, "365d"], stats=["mean", "count"])
    assert out.loc[10, "sales_count_100rows"] == 3
    assert out.loc[10, "sales_mean_365d"] == pytest.approx((10 + 20 + 25) / 3)


def test_arrow_in_arrow_out(sales):
    table = pa.Table.from_pandas(sales, preserve_index=False)
    out = rolling(table, "store", "day", "sales", windows=["2d"], stats=["mean", "count"])
    assert isinstance(out, pa.Table)
    assert out.column_names == ["store", "day", "sales", "sales_mean_2d", "sales_count_2d"]
    assert out.schema.field("sales_count_2d").type == pa.int64()
    expected = rolling(sales, "store", "day", "sales", windows=["2d"], stats=["mean", "count"])
    assert_frames_close(out.to_pandas(), expected.reset_index(drop=True))
    lagged = lags(table, "store", "day", ["sales", "day"], periods=1)
    assert lagged.schema.field("day_lag_1").type == table.schema.field("day").type


def test_no_entity_numeric_order_and_multi_keys():
    df = pd.DataFrame(
        {"a": [1, 1, 2, 2], "b": ["x", "y", "x", "x"], "step": [3, 1, 2, 1], "v": [1.0, 2.0, 3.0, 4.0]}
    )
    whole = rolling(df, None, "step", "v", windows=1, stats=["sum"])
    # one series ordered by step: (1: rows 1 and 3 are peers), 2, 3
    assert whole["v_sum_1rows"].tolist()[0] == 3.0
    keyed = lags(df, ["a", "b"], "step", "v")
    assert keyed["v_lag_1"].tolist()[2] == 4.0
    assert np.isnan(keyed["v_lag_1"].tolist()[0])


def test_timezone_aware_and_date_order_columns():
    base = pd.DataFrame({"id": [1, 1, 1], "v": [1.0, 2.0, 4.0]})
    aware = base.assign(
        ts=pd.to_datetime(["2024-03-01 10:00", "2024-03-01 11:00", "2024-03-01 13:00"], utc=True)
    )
    out = rolling(aware, "id", "ts", "v", windows=["2h", dt.timedelta(hours=3)], stats=["sum"])
    assert out["v_sum_2h"].tolist()[1:] == [1.0, 2.0]
    assert out["v_sum_3h"].tolist()[2] == 3.0
    dates = pa.table(
        {"id": [1, 1], "d": pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 2)]), "v": [1.0, 2.0]}
    )
    assert rolling(dates, "id", "d", "v", windows="1d", stats=["sum"]).column("v_sum_1d").to_pylist() == [
        None,
        1.0,
    ]


def test_entities_far_apart_in_time():
    """Entities decades apart exercise the chunked window-start search (no int64 overflow)."""
    rng = np.random.default_rng(5)
    years = {0: 1700, 1: 1760, 2: 1820, 3: 1880, 4: 1940, 5: 2000, 6: 2060, 7: 2120, 8: 2180}
    frames = []
    for e, year in years.items():
        days = np.sort(rng.integers(0, 365 * 60, size=25))
        frames.append(
            pd.DataFrame({"e": e, "ts": pd.Timestamp(f"{year}-01-01") + pd.to_timedelta(days, unit="D")})
        )
    df = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=1)
    df["v"] = rng.normal(size=len(df)).round(3)
    windows = ["400d", "3650d", 2]
    out = rolling(df, "e", "ts", "v", windows=windows, stats=["sum", "count"])
    assert_frames_close(out, oracle_rolling(df, "e", "ts", "v", windows, ["sum", "count"], False))


def test_window_labels():
    assert window_label(pd.Timedelta("7d").value) == "7d"
    assert window_label(pd.Timedelta("36h").value) == "36h"
    assert window_label(pd.Timedelta("90min").value) == "90min"
    assert window_label(pd.Timedelta("1500ms").value) == "1500ms"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"columns": "nope"}, "'nope' not found"),
        ({"by": "shop"}, "'shop' not found"),
        ({"windows": 0}, ">= 1 row"),
        ({"windows": "7"}, "has no unit"),
        ({"windows": "1M"}, "no fixed length"),
        ({"windows": "7 fortnights"}, "cannot read window"),
        ({"windows": "-2d"}, "must be positive"),
        ({"stats": ["mean", "mode"]}, "unknown statistic"),
        ({"columns": "name"}, "not numeric"),
    ],
)
def test_rolling_bad_input(sales, kwargs, match):
    df = sales.assign(name=["a", "b", "c", "d", "e", "f"])
    args = {"by": "store", "order_by": "day", "columns": "sales", "windows": 2, "stats": ["mean"]} | kwargs
    with pytest.raises(TransformError, match=match):
        rolling(df, **args)


def test_null_order_by_and_name_clash(sales):
    bad = sales.copy()
    bad.loc[12, "day"] = pd.NaT
    with pytest.raises(TransformError, match="1 null value"):
        rolling(bad, "store", "day", "sales", windows=2)
    clash = sales.assign(sales_lag_1=0.0)
    with pytest.raises(TransformError, match="already exist"):
        lags(clash, "store", "day", "sales")
    with pytest.raises(TransformError, match="time windows need order_by"):
        rolling(sales.assign(step=range(6)), "store", "step", "sales", windows="2d")
    with pytest.raises(TransformError, match="periods must be integers"):
        lags(sales, "store", "day", "sales", periods=[0])
    with pytest.raises(TransformError, match="pandas DataFrame or a pyarrow Table"):
        rolling([1, 2], "store", "day", "sales", windows=2)


def test_empty_frame(sales):
    out = rolling(sales.iloc[:0], "store", "day", "sales", windows=[2, "1d"], stats=["mean", "count"])
    assert len(out) == 0 and "sales_mean_1d" in out.columns


# ---------------------------------------------------------------- property: equals the oracle, never peeks


@st.composite
def series_frames(draw):
    n = draw(st.integers(min_value=1, max_value=30))
    entities = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    hours = draw(st.lists(st.integers(0, 12), min_size=n, max_size=n))  # small range: many duplicates
    values = draw(
        st.lists(st.one_of(st.integers(-20, 20).map(float), st.just(float("nan"))), min_size=n, max_size=n)
    )
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(hours, unit="h")
    return pd.DataFrame({"e": entities, "ts": ts, "v": values}, index=np.arange(n)[::-1] * 7)


windows_strategy = st.lists(
    st.one_of(st.integers(1, 5), st.sampled_from(["1h", "3h", "150min", "1d"])),
    min_size=1,
    max_size=3,
    unique=True,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=series_frames(), windows=windows_strategy, include_current=st.booleans())
def test_rolling_matches_oracle(df, windows, include_current):
    out = rolling(df, "e", "ts", "v", windows=windows, stats=ALL_STATS, include_current=include_current)
    assert list(out.index) == list(df.index)
    pd.testing.assert_frame_equal(out[["e", "ts", "v"]], df)
    assert_frames_close(out, oracle_rolling(df, "e", "ts", "v", windows, ALL_STATS, include_current))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=series_frames(), periods=st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True))
def test_lags_match_oracle(df, periods):
    assert_frames_close(lags(df, "e", "ts", "v", periods=periods), oracle_lags(df, "e", "ts", "v", periods))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=series_frames(), windows=windows_strategy, pick=st.integers(0, 10_000), noise=st.floats(-1e3, 1e3))
def test_features_never_use_rows_at_or_after_the_timestamp(df, windows, pick, noise):
    """Changing every value at or after a row's timestamp (its own included) leaves its features alone."""
    row = df.index[pick % len(df)]
    e, t = df.loc[row, "e"], df.loc[row, "ts"]
    future = (df["e"] == e) & (df["ts"] >= t)
    changed = df.copy()
    changed.loc[future, "v"] = changed.loc[future, "v"].fillna(0.0) * -3.0 + noise + 0.5
    stats = ["mean", "std", "min", "max", "sum", "count"]
    before = rolling(df, "e", "ts", "v", windows=windows, stats=stats)
    after = rolling(changed, "e", "ts", "v", windows=windows, stats=stats)
    new_cols = [c for c in before.columns if c not in df.columns]
    assert_frames_close(after.loc[[row], new_cols], before.loc[[row], new_cols])
    lag_before = lags(df, "e", "ts", "v", periods=[1, 2])
    lag_after = lags(changed, "e", "ts", "v", periods=[1, 2])
    assert_frames_close(
        lag_after.loc[[row], ["v_lag_1", "v_lag_2"]], lag_before.loc[[row], ["v_lag_1", "v_lag_2"]]
    )
