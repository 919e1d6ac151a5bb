"""OnlineFeatureAssembler gives exactly what a brute-force evaluation of the spec gives (tests/online/_oracle.py),
on every store and in every output form, for one key and for many: types, nulls, NaN, defaults, found flags,
key order, duplicate, missing and null keys, renamed and excluded outputs, feature functions, composite keys."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from larder.errors import FeatureLookupError
from larder.online.stores.specs import DynamoDBStoreSpec, RedisStoreSpec, SQLiteStoreSpec
from larder.training import FeatureFunction, FeatureLookup
from online._oracle import Oracle, assert_same_dict

UTC = dt.UTC


def margin(price: float, cost: float) -> float:
    if price is None or cost is None:
        return None  # type: ignore[return-value]
    return price - cost


@pytest.fixture(params=["sqlite", "redis", "dynamodb"])
def store_spec(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:10]
    if request.param == "sqlite":
        return SQLiteStoreSpec()
    if request.param == "redis":
        return RedisStoreSpec(url=request.getfixturevalue("redis_url"), key_prefix=f"asm{tag}")
    return DynamoDBStoreSpec(endpoint_url=request.getfixturevalue("moto_endpoint"), region="us-east-1",
                             table_prefix=f"asm{tag}__")


def source_tables() -> dict[str, pa.Table]:
    n = 6
    return {"items": pa.table({
        "item_id": pa.array(range(1, n + 1), pa.int64()),
        "price": pa.array([1.5, None, float("nan"), -0.0, 1e300, 2.25], pa.float64()),
        "cost": pa.array([1.0, 0.5, None, 2.0, 3.0, None], pa.float64()),
        "f32": pa.array([0.1, None, 3.5, 1e-30, -2.0, 7.0], pa.float32()),
        "qty": pa.array([3, 4, None, 6, 2**62, -1], pa.int64()),
        "small": pa.array([1, 2, 3, 4, 5, 6], pa.int16()),
        "rank": pa.array([1, 2, 3, 4, 5, 6], pa.int32()),
        "ok": pa.array([True, False, True, True, False, True], pa.bool_()),
        "maybe": pa.array([True, None, False, True, None, False], pa.bool_()),
        "name": pa.array(["a", None, "ç", "", "x" * 50, "f"], pa.string()),
        "seen": pa.array([dt.datetime(2024, 1, i + 1, tzinfo=UTC) if i != 2 else None for i in range(n)],
                         pa.timestamp("us", tz="UTC")),
        "day": pa.array([dt.date(2020, 1, i + 1) for i in range(n)], pa.date32()),
        "amount": pa.array([decimal.Decimal(f"{i}.25") for i in range(n)], pa.decimal128(10, 2)),
    }), "shops": pa.table({"shop": ["s1", "s2", "s3"], "rating": [4.5, None, 3.0], "open": [True, False, True]}),
        "stock": pa.table({"shop": ["s1", "s1", "s2"], "item_id": pa.array([1, 2, 1], pa.int64()),
                           "units": pa.array([10, 20, 30])})}


KEYS = {"items": ["item_id"], "shops": ["shop"], "stock": ["shop", "item_id"]}


@pytest.fixture()
def published(fe, store_spec):  # type: ignore[no-untyped-def]
    for name, table in source_tables().items():
        fe.create_table(name, KEYS[name], df=table)
    fe.create_function("margin", margin)
    for name in KEYS:
        fe.publish_table(name, store_spec)
    return fe


def oracle(asm) -> Oracle:  # type: ignore[no-untyped-def]
    return Oracle(asm.spec, asm.labels, source_tables(), KEYS, {"margin": margin})


def spec_lookups():  # type: ignore[no-untyped-def]
    return [
        FeatureLookup("items", "item_id", rename_outputs={"qty": "quantity"},
                      default_values={"price": -1.0, "quantity": 0, "ok": False, "name": "none", "rank": 7}),
        FeatureLookup("shops", "shop", default_values={"rating": 0.0}),
        FeatureLookup("stock", ["shop", "item_id"], feature_names=["units"]),
        FeatureFunction("margin", input_bindings={"price": "price", "cost": "cost"}, output_name="margin"),
    ]


def key_frames() -> list[pd.DataFrame]:
    ids = [3, 99, 1, 2, 3, 6, 5, 4]
    shops = ["s1", "s2", None, "nope", "s1", "s3", "s2", "s1"]
    return [
        pd.DataFrame({"item_id": ids, "shop": pd.array(shops, dtype="str"), "req": list("abcdefgh")},
                     index=[10, 11, 12, 13, 14, 15, 16, 17]),
        pd.DataFrame({"item_id": [1], "shop": pd.array(["s1"], dtype="str")}),  # the serving case
        pd.DataFrame({"item_id": [42], "shop": pd.array(["zz"], dtype="str")}),  # nothing found
        pd.DataFrame({"item_id": pd.array([], dtype="int64"), "shop": pd.array([], dtype="str")}),
        pd.DataFrame({"item_id": [1.0, np.nan, 2.0], "shop": pd.array(["s1", "s2", "s1"], dtype="str")}),
        pd.DataFrame({"shop": pd.array(["s2", "s1"], dtype="str"), "item_id": pd.array([1, 2], dtype="int32")}),
    ]


@pytest.mark.parametrize("exclude", [None, ["cost", "name"]])
def test_assembly_equals_the_oracle(published, exclude) -> None:  # type: ignore[no-untyped-def]
    fe = published
    spec = fe.create_feature_spec(f"asm_{uuid.uuid4().hex[:6]}", spec_lookups(), exclude_columns=exclude)
    asm = fe.online_feature_assembler(spec, on_missing="null")
    expect = oracle(asm)
    for keys in [*key_frames(), many_keys()]:
        for include_found in (False, True):
            got = expect.check(asm, keys, include_found)
            assert_same_dict(got["dict"], got["arrow"].to_pydict())
    first = asm.assemble(key_frames()[0], include_found=True)
    assert first.index.tolist() == [10, 11, 12, 13, 14, 15, 16, 17]
    assert asm.assemble(key_frames()[0], output="dict")["quantity"] == [None, 0, 3, 4, None, -1, 2**62, 6]
    assert first["_found_items"].tolist() == [True, False, True, True, True, True, True, True]
    assert first["price"].iloc[1] == -1.0 and math.isnan(first["price"].iloc[0])


def many_keys() -> pd.DataFrame:
    """2,000 rows (every key kind, duplicates, misses and null keys) in a shuffled order."""
    rng = np.random.default_rng(4)
    ids = rng.choice([1, 2, 3, 4, 5, 6, 99], 2000)
    shops = rng.choice(np.array(["s1", "s2", "s3", "nope", None], dtype=object), 2000)
    return pd.DataFrame({"item_id": ids.astype("int64"), "shop": pd.array(shops, dtype="str")},
                        index=pd.Index(rng.permutation(2000) + 5))


def test_pandas_types_and_defaults(published) -> None:  # type: ignore[no-untyped-def]
    fe = published
    spec = fe.create_feature_spec(f"asm_{uuid.uuid4().hex[:6]}", spec_lookups())
    out = fe.get_online_features(spec, pd.DataFrame({"item_id": [2, 99], "shop": pd.array(["s1", "s1"], dtype="str")}),
                                 include_found=True)
    assert out["rank"].dtype == np.int32 and out["rank"].tolist() == [2, 7]  # default fills the missing key
    assert out["small"].dtype == np.float64  # int16 with a null (missing key, no default)
    assert out["price"].tolist()[1] == -1.0 and out["ok"].tolist() == [False, False]
    assert pd.isna(out["name"].iloc[0]) and out["name"].iloc[1] == "none"
    d = fe.get_online_features(spec, pd.DataFrame({"item_id": [2, 99], "shop": pd.array(["s1", "s1"], dtype="str")}),
                               output="dict")
    assert d["price"] == [None, -1.0] and d["quantity"] == [4, 0] and d["small"] == [2, None]
    assert d["units"] == [20, None] and d["rating"] == [4.5, 4.5]
    with pytest.raises(FeatureLookupError, match="output must be one of"):
        fe.get_online_features(spec, pd.DataFrame({"item_id": [1], "shop": ["s1"]}), output="json")


def test_python_keys_equal_frame_keys(published) -> None:  # type: ignore[no-untyped-def]
    fe = published
    spec = fe.create_feature_spec(f"asm_{uuid.uuid4().hex[:6]}", spec_lookups())
    asm = fe.online_feature_assembler(spec, on_missing="null")
    expect = oracle(asm)
    ids, shops = [3, 99, 1, 3], ["s1", None, "s2", "s3"]
    frame = pd.DataFrame({"item_id": ids, "shop": pd.array(shops, dtype="str")})
    columns = {"item_id": ids, "shop": shops}
    records = [{"item_id": i, "shop": s} for i, s in zip(ids, shops, strict=True)]
    got = expect.check(asm, frame, include_found=True)
    expected, expected_frame = got["dict"], got["pandas"]
    for keys in (columns, records, pa.table(columns)):
        expect.check(asm, keys, include_found=True)
        assert_same_dict(asm.assemble(keys, include_found=True, output="dict"), expected)
        pd.testing.assert_frame_equal(asm.assemble(keys, include_found=True), expected_frame, check_exact=True)
    # float keys are checked for whole numbers as on the Arrow route; mixed values go through Arrow
    assert asm.assemble({"item_id": [1.0], "shop": ["s1"]}, output="dict")["units"] == [10]
    # a NaN float key is a null key: None in the dict output, a 1-key call as a 4-key one
    for float_keys in ({"item_id": [1.0, float("nan"), 3.0, 99.0], "shop": ["s2", "s1", "s1", None]},
                       {"item_id": [float("nan")], "shop": ["s1"]}, {"item_id": [3.0], "shop": ["s1"]}):
        expect.check(asm, float_keys, include_found=True)
    assert asm.assemble({"item_id": [float("nan")], "shop": ["s1"]}, output="dict")["item_id"] == [None]
    with pytest.raises(FeatureLookupError, match="mix types"):
        asm.assemble({"item_id": [1, "x"], "shop": ["s1", "s1"]})
