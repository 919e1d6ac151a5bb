"""Each kind of expectation catches its violation, passes clean data, and round-trips through JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from larder.errors import ConfigError
from larder.quality import (
    allowed_values,
    custom,
    freshness,
    has_type,
    in_range,
    matches_pattern,
    not_null,
    register_check,
    row_count,
    unique,
    validate,
)
from larder.quality.expectations import dump_expectations, load_expectations, unregister_check

NOW = datetime(2024, 6, 1, 12, 0)


def _frame(**overrides: object) -> pd.DataFrame:
    df = pd.DataFrame({
        "id": [1, 2, 3, 4, 5, 6],
        "price": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
        "rooms": [1, 2, 3, 2, 1, 4],
        "zone": ["RL", "RM", "RL", "FV", "RM", "RL"],
        "code": ["AB12", "CD34", "EF56", "GH78", "IJ90", "KL11"],
        "ts": pd.to_datetime(["2024-05-31 10:00"] * 5 + ["2024-06-01 06:00"]),
    })
    for col, values in overrides.items():
        df[col] = values
    return df


# (expectation, dirty overrides, failing rows expected in the dirty frame)
CASES = [
    pytest.param(not_null("price"), {"price": [10.0, None, 30.0, np.nan, 50.0, 60.0]}, [1, 3], id="not_null"),
    pytest.param(not_null("zone", max_fraction=0.2), {"zone": ["RL", None, None, "FV", "RM", "RL"]}, [1, 2],
                 id="not_null_fraction"),
    pytest.param(in_range("price", min=0, max=55), {}, [5], id="in_range"),
    pytest.param(in_range("price", min=10, strict_min=True), {}, [0], id="in_range_strict"),
    pytest.param(allowed_values("zone", ["RL", "RM", "FV"]), {"zone": ["RL", "XX", "RL", "FV", "C", "RL"]},
                 [1, 4], id="allowed_values"),
    pytest.param(unique("id"), {"id": [1, 2, 2, 4, 5, 1]}, [0, 1, 2, 5], id="unique"),
    pytest.param(unique(["id", "zone"]), {"id": [1, 1, 3, 4, 5, 6], "zone": ["RL", "RL", "RL", "FV", "RM", "RL"]},
                 [0, 1], id="unique_composite"),
    pytest.param(matches_pattern("code", r"[A-Z]{2}\d{2}"), {"code": ["AB12", "ab12", "EF56", "GH7", "IJ90x", None]},
                 [1, 3, 4], id="pattern"),
    pytest.param(custom("price_per_room_below_25", lambda d: d["price"] / d["rooms"] < 25), {}, [4],
                 id="custom"),
]


@pytest.mark.parametrize(("exp", "dirty", "failing"), CASES)
def test_row_level_expectations(exp, dirty, failing) -> None:
    clean_exp = exp
    if exp.kind in ("in_range", "custom"):  # the base frame itself violates these; make a clean one
        clean = _frame(price=[11.0, 20.0, 30.0, 40.0, 50.0, 55.0], rooms=[1, 2, 3, 2, 3, 4])
    else:
        clean = _frame()
    ok = validate(clean, [clean_exp], keys=["id"], now=NOW)
    assert ok.passed, ok.summary()

    bad = validate(_frame(**dirty), [exp], keys=["id"], now=NOW)
    res = bad.results[0]
    assert not res.passed
    assert res.failing_count == len(failing)
    assert [e["row"] for e in res.examples] == failing[:5]
    assert str(len(failing)) in res.message


def test_not_null_tolerance_passes_within_fraction() -> None:
    df = _frame(zone=["RL", None, "RL", "FV", "RM", "RL"])
    res = validate(df, [not_null("zone", max_fraction=0.2)]).results[0]
    assert res.passed and res.failing_count == 1 and res.observed["null_fraction"] == pytest.approx(1 / 6)


def test_dtype_expectations() -> None:
    df = _frame()
    good = [has_type("id", "integer"), has_type("price", "float"), has_type("price", "numeric"),
            has_type("zone", "string"), has_type("ts", "datetime"), has_type("id", "int64")]
    assert validate(df, good).passed
    bad = validate(df, [has_type("zone", "integer"), has_type("price", "integer"), has_type("id", "boolean")])
    assert [r.passed for r in bad.results] == [False, False, False]
    assert "has dtype" in bad.results[0].message and "expected integer" in bad.results[0].message


def test_row_count_bounds() -> None:
    df = _frame()
    assert validate(df, [row_count(min=6, max=6)]).passed
    low = validate(df, [row_count(min=10)]).results[0]
    high = validate(df, [row_count(max=5)]).results[0]
    assert not low.passed and low.observed == {"row_count": 6}
    assert not high.passed and "6 rows" in high.message


def test_freshness_uses_newest_timestamp() -> None:
    df = _frame()  # newest is 2024-06-01 06:00, six hours before NOW
    assert validate(df, [freshness("ts", max_age=timedelta(hours=7))], now=NOW).passed
    stale = validate(df, [freshness("ts", max_age=timedelta(hours=5))], now=NOW).results[0]
    assert not stale.passed
    assert stale.observed["age_seconds"] == 6 * 3600
    tz = df.assign(ts=df["ts"].dt.tz_localize("Europe/Paris"))  # 06:00 Paris = 04:00 UTC
    assert not validate(tz, [freshness("ts", max_age=timedelta(hours=7))], now=NOW).passed


def test_missing_column_and_wrong_type_fail_with_guidance() -> None:
    res = validate(_frame(), [not_null("nope"), in_range("zone", min=0), freshness("price", max_age=timedelta(1))])
    assert [r.passed for r in res.results] == [False, False, False]
    assert "missing" in res.results[0].message and "'nope'" in res.results[0].message
    assert "numeric column" in res.results[1].message
    assert "timestamp column" in res.results[2].message


def test_custom_checks_registry_and_errors() -> None:
    @register_check("rooms_positive")
    def _rooms(df: pd.DataFrame) -> pd.Series:
        return df["rooms"] > 0

    exp = custom("rooms_positive")
    assert validate(_frame(), [exp]).passed
    assert not validate(_frame(rooms=[1, 0, 3, -1, 1, 1]), [exp]).passed

    unregister_check("rooms_positive")
    res = validate(_frame(), [exp]).results[0]
    assert not res.passed and "register_check('rooms_positive'" in res.message

    raising = custom("explodes", lambda d: d["missing_column"] > 0)
    res = validate(_frame(), [raising]).results[0]
    assert not res.passed and "KeyError" in res.message

    wrong_shape = custom("wrong_shape", lambda d: pd.Series([True]))
    assert "boolean Series with one value per row" in validate(_frame(), [wrong_shape]).results[0].message

    scalar = custom("whole_frame", lambda d: bool(d["price"].sum() > 1e6))
    res = validate(_frame(), [scalar]).results[0]
    assert not res.passed and res.failing_count == 1


def test_json_round_trip_of_every_kind() -> None:
    exps = [not_null("a", max_fraction=0.1), in_range("a", min=0, max=1, strict_max=True),
            allowed_values("b", ["x", 1, True]), unique(["a", "b"]), has_type("a", "float"),
            matches_pattern("b", r"\w+"), row_count(min=1, max=10), freshness("t", max_age=timedelta(hours=3)),
            custom("named_only", description="kept by name")]
    text = json.dumps(dump_expectations(exps))
    back = load_expectations(json.loads(text))
    assert back == exps
    assert json.loads(text)[-1] == {"kind": "custom", "name": "named_only", "description": "kept by name"}


@pytest.mark.parametrize("build", [
    lambda: in_range("a"),
    lambda: in_range("a", min=5, max=1),
    lambda: row_count(),
    lambda: row_count(min=-1),
    lambda: not_null("a", max_fraction=1.5),
    lambda: matches_pattern("a", "(unclosed"),
    lambda: allowed_values("a", []),
    lambda: freshness("t", max_age=timedelta(0)),
    lambda: load_expectations([{"kind": "no_such_kind", "column": "a"}]),
])
def test_invalid_expectations_raise_config_error(build) -> None:
    with pytest.raises(ConfigError):
        build()


def test_validate_accepts_arrow_and_dicts_and_keeps_order() -> None:
    import pyarrow as pa

    table = pa.Table.from_pandas(_frame(), preserve_index=False)
    res = validate(table, [{"kind": "not_null", "column": "price"}, in_range("price", max=0)])
    assert [r.label for r in res.results] == ["not_null(price)", "in_range(price, max=0)"]
    assert [r.passed for r in res.results] == [True, False]


def test_nulls_are_ignored_by_value_checks() -> None:
    df = _frame(price=[None, 20.0, 30.0, None, 50.0, 55.0], zone=["RL", None, "RL", None, "RM", "RL"],
                id=[1, None, None, 4, 5, 6])
    res = validate(df, [in_range("price", min=0, max=60), allowed_values("zone", ["RL", "RM"]), unique("id"),
                        matches_pattern("zone", "R[LM]")])
    assert res.passed, res.summary()
