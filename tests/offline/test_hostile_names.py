"""Hostile column names on every path that builds SQL or an expression from a name.

Names that can be quoted are quoted (delta-rs merge predicates, DuckDB); names that cannot be (a
backtick, which delta-rs cannot escape in a merge) or that no engine stores safely (control
characters, over-long, reserved) are refused at creation with an ``InvalidNameError`` that names the
column, and nothing is written.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from _state import root_state
from larder.errors import InvalidNameError, LarderError
from larder.training import FeatureLookup
from larder.transforms import lags, rolling

#: Names larder accepts: each must round-trip through every path exactly.
QUOTABLE = [
    'k" = s."k" OR TRUE --',
    "x' OR '1'='1",
    "a;b; DROP TABLE t",
    "a--b",
    "A b",
    "a.b",
    "select",
    "t.k",
    "ü名",
    "/*c*/",
    "$1",
]

#: Names larder refuses, with a word of the reason the message must give.
REFUSED = {
    "k` = s.`k` OR TRUE --": "backtick",
    "a`b": "backtick",
    "a\nb": "control character",
    "a\tb": "control character",
    "a\x00b": "control character",
    "": "empty",
    "__larder_order__": "reserved",
    "__LARDER_x": "reserved",
    "x" * 256: "255",
}


def test_merge_predicate_injection_through_a_backtick_is_refused(fe, larder_root):
    """The issue's reproduction: this key name made a one-row merge overwrite every row."""
    hostile = "k` = s.`k` OR TRUE --"
    before = root_state(larder_root)
    with pytest.raises(InvalidNameError, match="backtick") as err:
        fe.create_table("t", primary_keys=hostile, df=pd.DataFrame({"k": [1, 1, 1], hostile: [1, 2, 3],
                                                                    "v": [1.0, 2.0, 3.0]}))
    assert repr(hostile) in str(err.value)
    assert root_state(larder_root) == before


def test_merge_predicate_injection_through_a_double_quote_is_quoted(fe):
    """The same attack with the quote DataFusion uses: the name is quoted, so the merge matches keys."""
    hostile = 'k" = s."k" OR TRUE --'
    fe.create_table("t", primary_keys=hostile, df=pd.DataFrame({"k": [1, 1, 1], hostile: [1, 2, 3],
                                                                "v": [1.0, 2.0, 3.0]}))
    fe.write_table("t", pd.DataFrame({"k": [1], hostile: [4], "v": [9.0]}))
    got = fe.read_table("t").sort_values(hostile)
    assert got[hostile].tolist() == [1, 2, 3, 4]
    assert got["v"].tolist() == [1.0, 2.0, 3.0, 9.0]


@pytest.mark.parametrize("name", QUOTABLE)
def test_quotable_names_round_trip_through_tables_and_training_sets(fe, name):
    key, ts, feat = name, f"{name} ts", f"{name} v"
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    df = pd.DataFrame({key: [1, 2], ts: [t0, t0], feat: [1.0, 2.0]})
    fe.create_table("ts_t", primary_keys=key, timestamp_keys=ts, df=df)
    # merge: one existing row updated, one new row, the third untouched
    fe.write_table("ts_t", pd.DataFrame({key: [1, 3], ts: [t0, t0], feat: [10.0, 30.0]}))
    got = fe.read_table("ts_t").sort_values(key)
    assert got[feat].tolist() == [10.0, 2.0, 30.0]
    # a new feature with a hostile name (schema evolution through the merge)
    fe.write_table("ts_t", pd.DataFrame({key: [2], ts: [t0], f"{name} new": [5]}))
    assert fe.read_table("ts_t").sort_values(key)[f"{name} new"].tolist()[1] == 5
    assert fe.read_table("ts_t", as_of_version=0).sort_values(key)[feat].tolist() == [1.0, 2.0]
    # point-in-time training set: hostile lookup key, timestamp and feature names
    spine = pd.DataFrame({key: [1, 2, 3, 9], ts: [t0 + dt.timedelta(days=1)] * 3 + [t0], "y": [0, 1, 0, 1]})
    ts_set = fe.create_training_set(
        spine, [FeatureLookup("ts_t", key, feature_names=[feat], timestamp_lookup_key=ts)], label="y"
    )
    assert ts_set.load_df()[feat].tolist()[:3] == [10.0, 2.0, 30.0]
    assert pd.isna(ts_set.load_df()[feat].tolist()[3])
    # overwrite keeps the schema and replaces the rows
    fe.write_table("ts_t", pd.DataFrame({key: [7], ts: [t0], feat: [7.0]}), mode="overwrite")
    assert fe.read_table("ts_t")[key].tolist() == [7]
    # snapshot table with a hostile composite key
    fe.create_table("snap", primary_keys=[key, feat], df=pd.DataFrame({key: [1, 1], feat: [1.0, 2.0], "x": [1, 2]}))
    fe.write_table("snap", pd.DataFrame({key: [1], feat: [2.0], "x": [20]}))
    assert fe.read_table("snap").sort_values(feat)["x"].tolist() == [1, 20]
    assert fe.get_table("snap").row_count == 2


@pytest.mark.parametrize("name", QUOTABLE[:4])
def test_quotable_names_through_temporal_transforms(name):
    df = pd.DataFrame({name: [1, 1, 1, 2], f"{name} t": pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC"),
                       f"{name} v": [1.0, 2.0, 3.0, 4.0]})
    out = lags(df, by=name, order_by=f"{name} t", columns=[f"{name} v"], periods=1)
    assert pd.isna(out.iloc[0, -1]) and out.iloc[1:3, -1].tolist() == [1.0, 2.0]
    roll = rolling(df, by=name, order_by=f"{name} t", columns=[f"{name} v"], windows=[2], stats=["sum"])
    assert roll.iloc[:, -1].tolist()[1:3] == [1.0, 3.0]


@pytest.mark.parametrize("name", list(REFUSED), ids=[repr(n)[:20] for n in REFUSED])
def test_refused_names_name_the_column_and_write_nothing(fe, larder_root, name):
    reason = REFUSED[name]
    before = root_state(larder_root)
    # as a feature, as a key, and through schema=
    with pytest.raises(InvalidNameError, match=reason) as err:
        fe.create_table("t", primary_keys="Id", df=pd.DataFrame({"Id": [1], name: [1.0]}))
    assert repr(name)[:40] in str(err.value) or reason == "255"
    with pytest.raises(InvalidNameError, match=reason):
        fe.create_table("t", primary_keys=name, df=pd.DataFrame({name: [1], "v": [1.0]}))
    with pytest.raises(InvalidNameError, match=reason):
        fe.create_table("t", primary_keys="Id", schema={"Id": "int", name: "double"})
    assert root_state(larder_root) == before
    # as a new column of an existing table: refused, the version unchanged
    fe.create_table("ok", primary_keys="Id", df=pd.DataFrame({"Id": [1], "v": [1.0]}))
    before = root_state(larder_root)
    with pytest.raises(InvalidNameError, match=reason):
        fe.write_table("ok", pd.DataFrame({"Id": [2], name: [1.0]}))
    assert root_state(larder_root) == before
    assert fe.get_table("ok").version == 0


def test_over_long_table_names_are_refused(fe, larder_root):
    before = root_state(larder_root)
    with pytest.raises(InvalidNameError, match="128"):
        fe.create_table("t" * 300, primary_keys="Id", df=pd.DataFrame({"Id": [1]}))
    with pytest.raises(InvalidNameError, match="128"):
        fe.create_table(f"{'s' * 129}.t", primary_keys="Id", df=pd.DataFrame({"Id": [1]}))
    fe.create_table("t" * 128, primary_keys="Id", df=pd.DataFrame({"Id": [1]}))
    assert fe.get_table("t" * 128).version == 0
    assert before != root_state(larder_root)


@pytest.mark.parametrize("cols", [["Id", "x", "x"], ["Id", "Id"], ["Id", "x", "X"], ["Id", "Ä", "ä"]])
def test_duplicate_and_case_clashing_columns(fe, larder_root, cols):
    before = root_state(larder_root)
    arrow = pa.table([pa.array([i + 1]) for i in range(len(cols))], names=cols)
    with pytest.raises(InvalidNameError) as err:
        fe.create_table("t", primary_keys="Id", df=arrow)
    assert repr(cols[-1]) in str(err.value)
    if len(set(cols)) == len(cols):  # pandas holds case-clashing names too
        with pytest.raises(InvalidNameError, match="case"):
            fe.create_table("t", primary_keys="Id", df=arrow.to_pandas())
    assert root_state(larder_root) == before


def test_new_column_clashing_by_case_with_an_existing_one(fe, larder_root):
    fe.create_table("t", primary_keys="Id", df=pd.DataFrame({"Id": [1], "Qual": [1.0]}))
    before = root_state(larder_root)
    with pytest.raises(InvalidNameError, match="'qual'.*'Qual'|'Qual'.*'qual'"):
        fe.write_table("t", pd.DataFrame({"Id": [2], "qual": [1.0]}))
    with pytest.raises(InvalidNameError, match="'ID'"):
        fe.write_table("t", pd.DataFrame({"Id": [2], "ID": [1.0]}), mode="overwrite")
    assert root_state(larder_root) == before


def test_partition_values_too_long_for_a_directory_name(fe, larder_root):
    before = root_state(larder_root)
    with pytest.raises(LarderError, match="partition") as err:
        fe.create_table("t", primary_keys="Id", partition_columns="p",
                        df=pd.DataFrame({"Id": [1, 2], "p": ["a", "b" * 300]}))
    assert "'p'" in str(err.value)
    assert root_state(larder_root) == before
