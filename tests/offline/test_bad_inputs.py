"""Inputs that were accepted and then broke something, or that surfaced a raw library error.

Each must raise a ``LarderError`` subclass whose message names the culprit, and write nothing (Delta
version, catalog rows and files unchanged).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from _state import root_state
from larder.errors import FeatureLookupError, PrimaryKeyError, SchemaMismatchError, TableError
from larder.training import FeatureLookup


@pytest.fixture()
def table(fe):
    fe.create_table("t", primary_keys="Id", df=pd.DataFrame({"Id": [1, 2], "v": [1.0, 2.0]}))
    return "t"


@pytest.mark.parametrize("make", [
    lambda: pa.table({"k": pa.array([1.0, float("nan")]), "v": [1, 2]}),
    lambda: pd.DataFrame({"k": pd.Series(pa.array([1.0, float("nan")]), dtype=pd.ArrowDtype(pa.float64())),
                          "v": [1, 2]}),
], ids=["arrow", "pandas-arrow-dtype"])
def test_nan_float_key_is_refused(fe, larder_root, make):
    data = make()
    before = root_state(larder_root)
    with pytest.raises(PrimaryKeyError, match="'k' holds NaN"):
        fe.create_table("nan", primary_keys="k", df=data)
    assert root_state(larder_root) == before
    fe.create_table("nan", primary_keys="k", df=pa.table({"k": [1.0], "v": [1]}))
    before = root_state(larder_root)
    with pytest.raises(PrimaryKeyError, match="NaN"):
        fe.write_table("nan", data)
    assert root_state(larder_root) == before


def test_integer_beyond_64_bits_is_a_schema_error(fe, larder_root, table):
    before = root_state(larder_root)
    for df in (pd.DataFrame({"Id": [3], "v": pd.Series([2**70], dtype=object)}),
               pd.DataFrame({"Id": pd.Series([2**70], dtype=object), "v": [1.0]})):
        with pytest.raises(SchemaMismatchError, match="64-bit") as err:
            fe.write_table(table, df)
        assert "column 'v'" in str(err.value) or "column 'Id'" in str(err.value)
    with pytest.raises(SchemaMismatchError, match="column 'big'"):
        fe.create_table("big", primary_keys="Id", df=pd.DataFrame({"Id": [1], "big": pd.Series([2**70], dtype=object)}))
    assert root_state(larder_root) == before


@pytest.mark.parametrize("version", [-1, 99, 1.5, True, "0"])
def test_as_of_version_out_of_range(fe, table, version):
    with pytest.raises(TableError, match="as_of_version") as err:
        fe.read_table(table, as_of_version=version)
    assert "'main.default.t'" in str(err.value)
    if version == 99:
        assert "0 to 0" in str(err.value)


def test_as_of_timestamp_before_the_table_existed(fe, table):
    with pytest.raises(TableError, match="did not exist yet") as err:
        fe.read_table(table, as_of_timestamp="2000-01-01")
    assert "'main.default.t'" in str(err.value) and "first version was committed" in str(err.value)
    with pytest.raises(TableError, match="did not exist yet"):
        fe.read_table(table, as_of_timestamp=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    # a timestamp after the first commit still works, and a future one gives the latest version
    assert len(fe.read_table(table, as_of_timestamp=pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1))) == 2


@pytest.mark.parametrize("ts", ["not a time", "2024-13-45", 12.5, object()])
def test_unparseable_as_of_timestamp(fe, table, ts):
    with pytest.raises(TableError, match="as_of_timestamp") as err:
        fe.read_table(table, as_of_timestamp=ts)
    assert "'main.default.t'" in str(err.value)


@pytest.mark.parametrize("kwargs, culprit", [
    ({"lookup_key": 5}, "lookup_key"),
    ({"lookup_key": ["Id", 5]}, "lookup_key"),
    ({"lookup_key": "Id", "feature_names": 5}, "feature_names"),
    ({"lookup_key": "Id", "default_values": [1, 2]}, "default_values"),
    ({"lookup_key": "Id", "default_values": "v"}, "default_values"),
    ({"lookup_key": "Id", "rename_outputs": ["v"]}, "rename_outputs"),
    ({"lookup_key": "Id", "timestamp_lookup_key": 3}, "timestamp_lookup_key"),
])
def test_feature_lookup_argument_types(kwargs, culprit):
    with pytest.raises(FeatureLookupError, match=culprit) as err:
        FeatureLookup("t", **kwargs)
    assert "'t'" in str(err.value)


def test_feature_lookup_table_name_type():
    with pytest.raises(FeatureLookupError, match="table_name"):
        FeatureLookup(5, "Id")  # type: ignore[arg-type]
