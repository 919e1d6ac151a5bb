"""Property test: ``create_training_set(...).load_df()`` equals a brute-force pure-Python oracle.

Random feature tables are built by several merges (duplicate writes of a key and time, older times
written after newer ones, null feature values), random caller rows (times equal to feature times,
unknown and null keys, null times, duplicates), and random lookups (lookback windows including 0,
defaults, renames) followed by functions bound to lookup outputs and to request-time columns.
"""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from larder.client import FeatureEngineeringClient
from larder.offline.engine import ENGINE_NAMES
from larder.training import FeatureFunction, FeatureLookup

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ENGINES = list(ENGINE_NAMES)
KEYS = [0, 1, 2, 3]
STORES = ["x", "y", "z"]
HOURS = list(range(0, 9))


def combine(a: int | None, c: float | None) -> float:
    return float(a if a is not None else 0) + (c if c is not None else 0.5)


def scale(x: float | None, factor: float) -> float | None:
    return None if x is None else x * factor


def at(h: int | None) -> datetime | None:
    return None if h is None else T0 + timedelta(hours=h)


opt_int = st.one_of(st.none(), st.integers(-50, 50))
opt_float = st.one_of(st.none(), st.floats(-100, 100, allow_nan=False).map(lambda v: round(v, 3)))
ts_row = st.tuples(st.sampled_from(KEYS), st.sampled_from(HOURS), opt_int, opt_float)
snap_row = st.tuples(st.sampled_from(STORES), opt_float)
windows = st.sampled_from([None, timedelta(0), timedelta(hours=1), timedelta(hours=3)])


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    ts_writes = draw(st.lists(st.lists(ts_row, min_size=1, max_size=8), min_size=1, max_size=4))
    snap_writes = draw(st.lists(st.lists(snap_row, min_size=1, max_size=4), min_size=1, max_size=3))
    written = sorted({(k, h) for batch in ts_writes for k, h, _a, _b in batch})
    random_time = st.tuples(st.one_of(st.none(), st.sampled_from([*KEYS, 9])),
                            st.one_of(st.none(), st.sampled_from([*HOURS, 9, 12])))
    # about half the caller's rows sit exactly on a written (key, time): ties between label and feature times
    key_time = st.one_of(random_time, st.sampled_from(written))
    spine = draw(st.lists(st.tuples(key_time, st.sampled_from([*STORES, "w"]), opt_float),
                          min_size=1, max_size=14))
    spine = [(k, h, s, r) for (k, h), s, r in spine]
    return {
        "ts_writes": ts_writes, "snap_writes": snap_writes, "spine": spine,
        "w1": draw(windows), "w2": draw(windows),
        "default_a": draw(st.one_of(st.none(), st.integers(-9, -1))),
        "default_c": draw(st.one_of(st.none(), st.just(-0.25))),
        "factor": draw(st.sampled_from([1.0, 2.0, -0.5])),
        "exclude": draw(st.booleans()),
    }


def _dedupe(rows: list[tuple], nkeys: int) -> list[tuple]:
    """One row per primary key within one write (the last one), as write_table requires."""
    last: dict[tuple, tuple] = {}
    for r in rows:
        last[r[:nkeys]] = r
    return list(last.values())


def _write(fe: FeatureEngineeringClient, name: str, data: pa.Table, pks: list[str], ts: str | None,
           first: bool) -> None:
    if first:
        fe.create_table(name, pks, df=data, timestamp_keys=ts)
    else:
        fe.write_table(name, data)


def oracle(sc: dict[str, Any]) -> list[dict[str, Any]]:
    series: dict[tuple[int, int], tuple[int | None, float | None]] = {}
    for batch in sc["ts_writes"]:
        for k, h, a, b in _dedupe(batch, 2):
            series[(k, h)] = (a, b)
    snap: dict[str, float | None] = {}
    for batch in sc["snap_writes"]:
        for s, c in _dedupe(batch, 1):
            snap[s] = c

    def pit(k: int | None, h: int | None, window: timedelta | None) -> tuple[bool, tuple[Any, Any]]:
        if k is None or h is None:
            return False, (None, None)
        best = None
        for (kk, hh), vals in series.items():
            if kk != k or hh > h:
                continue
            if window is not None and at(hh) < at(h) - window:  # type: ignore[operator]
                continue
            if best is None or hh > best[0]:
                best = (hh, vals)
        return (True, best[1]) if best else (False, (None, None))

    rows = []
    for k, h, s, r in sc["spine"]:
        hit1, (a, _b) = pit(k, h, sc["w1"])
        hit2, (_a2, b2) = pit(k, h, sc["w2"])
        a_out = a if hit1 else sc["default_a"]
        if s in snap:
            c = snap[s]
        else:
            c = sc["default_c"]
        comb = combine(a_out, c)
        rows.append({
            "k": k, "at": at(h), "store": s, "r": r, "a": a_out, "b_lag": b2 if hit2 else None,
            "c": c, "combined": comb, "scaled": scale(comb, sc["factor"]), "r_scaled": scale(r, sc["factor"]),
        })
    return rows


def _same(x: Any, y: Any) -> bool:
    def null(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT
    if null(x) or null(y):
        return null(x) and null(y)
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return math.isclose(float(x), float(y), rel_tol=1e-12, abs_tol=1e-12)
    return bool(x == y)


#: hypothesis examples per engine: Spark's are bounded to keep the suite fast (one Spark session)
EXAMPLES = {"duckdb": 30, "spark": 3}


@pytest.mark.parametrize("engine", ENGINES)
def test_load_df_matches_brute_force_oracle(engine: str, request: pytest.FixtureRequest) -> None:
    """On each engine (``load_df`` gives pandas on DuckDB, a Spark DataFrame on Spark): the same rows."""
    if engine == "spark":
        request.getfixturevalue("spark")  # the test session's SparkSession is the active one

    @settings(max_examples=EXAMPLES[engine], deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(sc=scenarios())
    def check(sc: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as root:
            (Path(root) / "larder.yaml").write_text(f"engine: {engine}\n")
            with FeatureEngineeringClient(root=root) as fe:
                check_scenario(fe, sc, engine)

    check()


def check_scenario(fe: FeatureEngineeringClient, sc: dict[str, Any], engine: str) -> None:
    for i, batch in enumerate(sc["ts_writes"]):
        rows = _dedupe(batch, 2)
        data = pa.table({
            "k": pa.array([r[0] for r in rows], pa.int64()),
            "ts": pa.array([at(r[1]) for r in rows], pa.timestamp("us", tz="UTC")),
            "a": pa.array([r[2] for r in rows], pa.int64()),
            "b": pa.array([r[3] for r in rows], pa.float64()),
        })
        _write(fe, "series", data, ["k", "ts"], "ts", i == 0)
    for i, batch in enumerate(sc["snap_writes"]):
        rows = _dedupe(batch, 1)
        data = pa.table({"store": pa.array([r[0] for r in rows], pa.string()),
                         "c": pa.array([r[1] for r in rows], pa.float64())})
        _write(fe, "stores", data, ["store"], None, i == 0)
    fe.create_function("combine", combine)
    fe.create_function("scale", scale)

    spine = pd.DataFrame({
        "k": pd.array([r[0] for r in sc["spine"]], dtype="float64"),
        "at": pd.to_datetime(pd.Series([at(r[1]) for r in sc["spine"]], dtype="object"), utc=True),
        "store": pd.Series([r[2] for r in sc["spine"]], dtype="str"),
        "r": pd.Series([r[3] for r in sc["spine"]], dtype="float64"),
        "label": range(len(sc["spine"])),
    })
    lookups = [
        FeatureLookup("series", "k", feature_names=["a"], timestamp_lookup_key="at", lookback_window=sc["w1"],
                      default_values={"a": sc["default_a"]} if sc["default_a"] is not None else None),
        FeatureLookup("series", "k", feature_names=["b"], rename_outputs={"b": "b_lag"},
                      timestamp_lookup_key="at", lookback_window=sc["w2"]),
        FeatureLookup("stores", "store", default_values={"c": sc["default_c"]}),
        FeatureFunction("combine", {"a": "a", "c": "c"}, output_name="combined"),
        FeatureFunction("scale", {"x": "combined", "factor": "f"}, output_name="scaled"),
        FeatureFunction("scale", {"x": "r", "factor": "f"}, output_name="r_scaled"),
    ]
    spine["f"] = sc["factor"]
    exclude = ["c", "f"] if sc["exclude"] else ["f"]
    ts = fe.create_training_set(spine, lookups, label="label", exclude_columns=exclude)
    df = ts.load_df()
    if engine == "spark":  # through Arrow: timestamps stay UTC-aware, as on DuckDB
        df = df.toArrow().to_pandas()

    expect = oracle(sc)
    cols = ["k", "at", "store", "r", "a", "b_lag", "c", "combined", "scaled", "r_scaled"]
    cols = [c for c in cols if c not in exclude]
    assert list(df.columns) == cols + ["label"]
    assert len(df) == len(expect) and df["label"].tolist() == list(range(len(expect)))
    for i, row in enumerate(df.to_dict("records")):
        for c in cols:
            got = row[c].to_pydatetime() if isinstance(row[c], pd.Timestamp) else row[c]
            assert _same(got, expect[i][c]), (i, c, got, expect[i][c], sc)
