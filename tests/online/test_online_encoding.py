"""The key, text and packed-row encodings of larder.online.stores.encoding, against brute-force oracles."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larder.errors import OnlineStoreError
from larder.online.stores.encoding import RowCodec, decode_key, encode_keys, from_text, to_text

key_text = st.text(alphabet=st.sampled_from(["a", "#", "\\", "é", "1", " "]), max_size=6)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(key_text, st.integers(-(2**63), 2**63 - 1), key_text), min_size=1, max_size=30))
def test_composite_keys_are_injective_and_decodable(rows: list[tuple[str, int, str]]) -> None:
    schema = pa.schema([("a", pa.string()), ("b", pa.int64()), ("c", pa.string())])
    keys = pa.table({"a": [r[0] for r in rows], "b": [r[1] for r in rows], "c": [r[2] for r in rows]})
    pks = encode_keys("t", schema, ["a", "b", "c"], keys).to_pylist()
    for pk, row in zip(pks, rows, strict=True):
        assert decode_key(pk, 3) == [row[0], str(row[1]), row[2]]
    assert len(set(pks)) == len(set(rows))


def test_key_encoding_examples() -> None:
    schema = pa.schema(
        [("s", pa.string()), ("i", pa.int32()), ("d", pa.date32()), ("t", pa.timestamp("us", tz="UTC"))]
    )
    keys = pa.table(
        {
            "s": ["x#y", None],
            "i": pa.array([7, 8], pa.int64()),
            "d": [dt.date(2024, 1, 2), dt.date(2024, 1, 3)],
            "t": pa.array(
                [dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)] * 2, pa.timestamp("us", tz="UTC")
            ),
        }
    )
    assert encode_keys("t", schema, ["s", "i", "d", "t"], keys).to_pylist() == [
        "x\\#y#7#2024-01-02#2024-01-02 03:04:05.000000Z",
        None,
    ]
    assert encode_keys("t", schema, ["i"], keys).to_pylist() == ["7", "8"]
    with pytest.raises(OnlineStoreError, match="'i'.*int32"):
        encode_keys("t", schema, ["i"], pa.table({"i": ["not a number"]}))


def test_float_text_is_bit_exact() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(20_000) * 10.0 ** rng.integers(-300, 300, 20_000)
    x = np.concatenate([x, [0.0, -0.0, np.inf, -np.inf, 5e-324, 1.7976931348623157e308]])
    back = from_text(to_text(pa.array(x)), pa.float64()).to_numpy()
    assert np.array_equal(back.view(np.int64), x.view(np.int64))
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    back32 = from_text(to_text(pa.array(x32)), pa.float32()).to_numpy()
    assert np.array_equal(back32.view(np.int32), x32.view(np.int32))
    assert np.isnan(from_text(to_text(pa.array([np.nan])), pa.float64()).to_numpy()).all()


TYPES = {
    "i8": (pa.int8(), st.integers(-128, 127)),
    "u16": (pa.uint16(), st.integers(0, 2**16 - 1)),
    "i64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "f32": (pa.float32(), st.floats(width=32, allow_nan=False)),
    "f64": (pa.float64(), st.floats(allow_nan=False)),
    "b": (pa.bool_(), st.booleans()),
    "s": (pa.string(), st.text(max_size=5)),
    "ls": (pa.large_string(), st.text(max_size=3)),
    "bin": (pa.binary(), st.binary(max_size=5)),
    "ts": (pa.timestamp("ns", tz="Asia/Tokyo"), st.integers(-(2**62), 2**62)),
    "d": (pa.date32(), st.dates()),
    "dec": (pa.decimal128(12, 3), st.decimals(min_value=-(10**8), max_value=10**8, places=3)),
    "n": (pa.null(), st.none()),
}


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    names = draw(st.lists(st.sampled_from(sorted(TYPES)), min_size=1, max_size=8, unique=True))
    n = draw(st.integers(0, 12))
    cols = {}
    for name in names:
        t, values = TYPES[name]
        col = draw(st.lists(st.one_of(st.none(), values), min_size=n, max_size=n))
        if pa.types.is_timestamp(t):
            col = pa.array(col, pa.int64()).cast(t)
        cols[name] = pa.array(col, t)
    return pa.table(cols)


@settings(max_examples=100, deadline=None)
@given(tables(), st.data())
def test_packed_rows_round_trip(data: pa.Table, draw: st.DataObject) -> None:
    codec = RowCodec(data.schema)
    fixed, var = codec.encode(data)
    assert all(len(f) == codec.width for f in fixed)
    n = data.num_rows
    # look the rows up in a random order, with missing rows in between
    picks = draw.draw(st.lists(st.integers(-1, max(n - 1, -1)), max_size=15))
    blobs = [fixed[i] if i >= 0 else codec.missing_row for i in picks]
    var_blobs = [var[i] if i >= 0 else None for i in picks] if var is not None else None
    wanted = draw.draw(st.permutations(data.schema.names))
    out = codec.decode(b"".join(blobs), len(picks), var_blobs, wanted)
    assert sorted(out) == sorted(wanted)
    for name in wanted:
        expected = [data.column(name)[i].as_py() if i >= 0 else None for i in picks]
        assert out[name].type == data.schema.field(name).type
        assert out[name].to_pylist() == expected, name
    found = np.frombuffer(b"".join(blobs), np.uint8)[:: codec.width] == 1 if picks else np.zeros(0, bool)
    assert found.tolist() == [i >= 0 for i in picks]


def test_packed_rows_of_sliced_and_chunked_input() -> None:
    data = pa.table(
        {
            "x": pa.chunked_array([[1.0, None], [3.0, 4.0, 5.0]]),
            "s": pa.chunked_array([["a", "bb"], [None, "dddd", ""]]),
            "p": pa.chunked_array(
                [[decimal.Decimal("1.5")] * 2, [None, decimal.Decimal("-2"), None]], pa.decimal128(5, 2)
            ),
        }
    ).slice(1, 3)
    codec = RowCodec(data.schema)
    fixed, var = codec.encode(data)
    out = codec.decode(b"".join(fixed), 3, var, ["x", "s", "p"])
    assert out["x"].to_pylist() == [None, 3.0, 4.0]
    assert out["s"].to_pylist() == ["bb", None, "dddd"]
    assert out["p"].to_pylist() == [decimal.Decimal("1.50"), None, decimal.Decimal("-2.00")]
