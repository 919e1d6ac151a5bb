"""Fuzzing what users send: ``create_table``/``write_table`` inputs (column names, Arrow types, values)
and the feature server's JSON bodies.

Every outcome is a success or a ``LarderError`` (the server: a 200 or a 4xx in larder's JSON error
shape), never another exception or a 5xx; a refused write leaves the table's version and rows as they
were, and an accepted one reads back. The example counts are bounded for CI; set
``LARDER_FUZZ_EXAMPLES`` to run more.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import warnings
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from larder.errors import LarderError

EXAMPLES = int(os.environ.get("LARDER_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

# -- column names: ordinary, hostile, and broken ---------------------------------------------------
names = st.one_of(
    st.sampled_from(["Id", "id", "ID", "x", "X", "a b", "a.b", 'a"b', "a'b", "a`b", "a;b", "--", "/*", "",
                     "__larder_order__", "_pk", "_order", "select", "ü", "名前", "a\nb", "a\tb", "\x00", " ",
                     "x" * 255, "x" * 256, "k` = s.`k` OR TRUE --"]),
    st.text(min_size=0, max_size=12),
)

# -- Arrow types and values that fit them ----------------------------------------------------------
INT_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32(), pa.uint64()]
TS_TYPES = [pa.timestamp("s"), pa.timestamp("ms"), pa.timestamp("us", tz="UTC"), pa.timestamp("ns"),
            pa.timestamp("us", tz="Europe/Paris")]


def values_for(t: pa.DataType) -> st.SearchStrategy:
    if pa.types.is_integer(t):
        info_min = -(2 ** (t.bit_width - 1)) if pa.types.is_signed_integer(t) else 0
        info_max = 2 ** (t.bit_width - (1 if pa.types.is_signed_integer(t) else 0)) - 1
        return st.one_of(st.integers(info_min, info_max), st.sampled_from([info_min, info_max, 0]))
    if pa.types.is_floating(t):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if t.bit_width == 32 else 64)
    if pa.types.is_boolean(t):
        return st.booleans()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return st.text(max_size=8)
    if pa.types.is_binary(t):
        return st.binary(max_size=8)
    if pa.types.is_timestamp(t):
        return st.datetimes(min_value=dt.datetime(1700, 1, 1), max_value=dt.datetime(2250, 1, 1))
    if pa.types.is_date(t):
        return st.dates()
    if pa.types.is_decimal(t):
        return st.decimals(min_value=Decimal("-999.99"), max_value=Decimal("999.99"), places=2,
                           allow_nan=False, allow_infinity=False)
    if pa.types.is_list(t):
        return st.lists(st.integers(-5, 5), max_size=3)
    if pa.types.is_null(t):
        return st.none()
    if pa.types.is_duration(t):
        return st.timedeltas(min_value=dt.timedelta(days=-3), max_value=dt.timedelta(days=3))
    raise AssertionError(t)


types = st.sampled_from([*INT_TYPES, pa.float32(), pa.float64(), pa.bool_(), pa.string(), pa.large_string(),
                         pa.binary(), *TS_TYPES, pa.date32(), pa.decimal128(5, 2), pa.list_(pa.int64()),
                         pa.null(), pa.duration("us"), pa.dictionary(pa.int32(), pa.string())])


@st.composite
def tables(draw, n_rows: int | None = None) -> pa.Table:
    n_cols = draw(st.integers(1, 4))
    cols = draw(st.lists(names, min_size=n_cols, max_size=n_cols))
    n = n_rows if n_rows is not None else draw(st.integers(0, 4))
    arrays = []
    for _ in cols:
        t = draw(types)
        if pa.types.is_dictionary(t):
            values = draw(st.lists(st.one_of(st.none(), st.text(max_size=3)), min_size=n, max_size=n))
            arrays.append(pa.array(values, pa.string()).dictionary_encode())
            continue
        values = draw(st.lists(st.one_of(st.none(), values_for(t)), min_size=n, max_size=n))
        try:
            arrays.append(pa.array(values, t))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError):
            arrays.append(pa.array([None] * n, t))
    return pa.Table.from_arrays(arrays, names=cols)


_counter = itertools.count()


def state(fe, name: str) -> tuple:
    t = fe.get_table(name)
    return t.version, [f.name for f in t.features], t.row_count


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from larder.client import FeatureEngineeringClient

    fe = FeatureEngineeringClient(tmp_path_factory.mktemp("fuzz") / "root")
    yield fe
    fe.close()


def only_larder_errors(call):  # type: ignore[no-untyped-def]
    """Run ``call``; True if it succeeded, False if it raised a LarderError; anything else fails."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
        return True
    except LarderError:
        return False


@FUZZ
@given(first=tables(), second=tables(), data=st.data())
def test_create_and_write_table_raise_only_larder_errors(client, first, second, data):
    fe = client
    name = f"t{next(_counter)}"
    cols = first.column_names
    pk = data.draw(st.one_of(st.sampled_from(cols), st.lists(st.sampled_from(cols), min_size=1, max_size=2),
                             names), label="primary_keys")
    ts = data.draw(st.one_of(st.none(), st.sampled_from(cols)), label="timestamp_keys")
    parts = data.draw(st.one_of(st.none(), st.sampled_from(cols)), label="partition_columns")
    as_pandas = data.draw(st.booleans(), label="pandas")
    df = first.to_pandas() if as_pandas and len(set(cols)) == len(cols) else first
    created = only_larder_errors(lambda: fe.create_table(name, primary_keys=pk, df=df, timestamp_keys=ts,
                                                         partition_columns=parts))
    if not created:
        assert not fe._tables._exists(f"main.default.{name}")
        return
    before = state(fe, name)
    assert fe.read_table(name).shape[0] == before[2]
    mode = data.draw(st.sampled_from(["merge", "overwrite"]), label="mode")
    # the second write: the table's own columns (with other values) and the fuzzed ones
    mixed = data.draw(st.booleans(), label="reuse columns")
    write = first if mixed else second
    wrote = only_larder_errors(lambda: fe.write_table(name, write, mode=mode))
    after = state(fe, name)
    if not wrote:
        assert after == before
    else:
        assert after[0] == before[0] + 1
        fe.read_table(name)
        fe.read_table(name, as_of_version=before[0])


# -- the feature server's JSON bodies ---------------------------------------------------------------
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=6)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=4), children,
                                                                                max_size=4)),
    max_leaves=12,
)
key_values = st.one_of(st.integers(), st.integers(-3, 3), st.floats(), st.text(max_size=4), st.none(),
                       st.booleans(), st.just(2**70), st.lists(st.integers(), max_size=2))
bodies = st.one_of(
    json_values.map(json.dumps),
    st.lists(st.dictionaries(st.sampled_from(["Id", "id", "x"]), key_values, max_size=2), max_size=3)
    .map(lambda rows: json.dumps({"keys": rows})),
    st.dictionaries(st.sampled_from(["Id", "x"]), st.lists(key_values, max_size=3), max_size=2)
    .map(lambda cols: json.dumps({"keys": cols})),
    st.sampled_from(['{"keys": [{"Id": NaN}]}', '{"keys": [{"Id": Infinity}]}', '{"keys": [{"Id": 1e999}]}',
                     '[' * 3000 + ']' * 3000, '{"keys": [{"Id": 1}]', '{"keys": [{"Id": "\\ud800"}]}']),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import pandas as pd
    from fastapi.testclient import TestClient

    from larder.client import FeatureEngineeringClient
    from larder.serving.app import create_app
    from larder.training import FeatureLookup

    root = tmp_path_factory.mktemp("fuzz-server") / "root"
    with FeatureEngineeringClient(root) as fe:
        fe.create_table("houses", "Id", df=pd.DataFrame({"Id": [1, 2, 3], "q": [7.0, 5.0, 8.0]}))
        fe.publish_table("houses")
        fe.create_feature_spec("price", [FeatureLookup("houses", "Id")])
    with TestClient(create_app(root), raise_server_exceptions=False) as http:
        yield http


@settings(max_examples=EXAMPLES * 5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=bodies, path=st.sampled_from(["/features/price", "/features/price", "/features/nope", "/features/a b"]))
def test_server_bodies_answer_200_or_a_json_4xx(server, body, path):
    r = server.post(path, content=body.encode("utf-8", "surrogatepass"), headers={"content-type": "application/json"})
    assert r.status_code < 500, (r.status_code, body, r.text)
    payload = r.json()
    if r.status_code == 200:
        assert payload["rows"] == len(payload["features"])
    else:
        assert set(payload) == {"error", "detail"}, payload
