"""Feature functions in online lookups give what a brute-force evaluation of the spec gives
(tests/online/_oracle.py: each function called on each row's Python values), in every output form and on
both routes of the one assembly: a few-row call runs functions once per row on Python values (their
meaning), a larger one on pandas Series. Values, types, nulls, defaults, missing keys, strings,
request-time columns and functions chained on the outputs of lookups and of other functions."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from larder.errors import FunctionError
from larder.online.stores.specs import SQLiteStoreSpec
from larder.training import FeatureFunction, FeatureLookup
from larder.training.execute import FunctionRunner
from online._oracle import Oracle, assert_same_dict


def age(built: int, sold: int) -> int:
    return sold - built


def ratio(area, lot):  # type: ignore[no-untyped-def]  # no annotations: the type is inferred
    return area / lot


def shout(name):  # type: ignore[no-untyped-def]  # a string method: the Series call raises
    return None if name is None else name.upper() + "!"


def signed(flag: bool, x: int) -> int:  # ``if`` on a Series raises: row by row
    return x if flag else -x


def doubled(a: int) -> int:  # chained on a function's output
    return 2 * a


def twice(x):  # type: ignore[no-untyped-def]  # int32 in: the Series route keeps int32
    return x * 2


def scaled(x, factor):  # type: ignore[no-untyped-def]  # float32 feature times a request-time float
    return x * factor


def tagged(name, channel):  # type: ignore[no-untyped-def]  # two strings, one of them request-time
    return f"{name}:{channel}"


def shifted(q: float) -> float:  # registered mode="row"
    return -1.0 if q is None else q + 0.5


def summed(a: float, b: float) -> float:  # registered mode="vectorized"
    return a + b


FUNCTIONS = [("age", age, "auto"), ("ratio", ratio, "auto"), ("shout", shout, "auto"), ("signed", signed, "auto"),
             ("doubled", doubled, "auto"), ("twice", twice, "auto"), ("scaled", scaled, "auto"),
             ("tagged", tagged, "auto"), ("shifted", shifted, "row"), ("summed", summed, "vectorized")]


def source_tables() -> dict[str, pa.Table]:
    rng = np.random.default_rng(3)
    n = 40
    ids = np.arange(1, n + 1, dtype="int64")
    homes = pa.table({
        "Id": ids,
        "built": pa.array(rng.integers(1900, 2010, n), pa.int64()),
        "area": pa.array([None if i % 9 == 4 else float(v) for i, v in enumerate(rng.uniform(500, 4000, n))],
                         pa.float64()),
        "quality": pa.array([None if i % 7 == 3 else int(v) for i, v in enumerate(rng.integers(1, 11, n))],
                            pa.int64()),
        "flag": pa.array(rng.integers(0, 2, n).astype(bool)),
        "name": pa.array([None if i % 11 == 5 else s for i, s in enumerate(rng.choice(["ab", "cd", "é"], n))],
                         pa.string()),
        "small": pa.array(rng.uniform(0, 1, n), pa.float32()),
        "rank": pa.array(rng.integers(0, 1000, n), pa.int32()),
    })
    m = 28  # keys 29..40 are not in the second table
    lots = pa.table({
        "Id": ids[:m], "lot": pa.array(rng.uniform(1000, 20000, m)),
        "cars": pa.array([None if i % 5 == 2 else int(v) for i, v in enumerate(rng.integers(0, 4, m))], pa.int64()),
    })
    return {"homes": homes, "lots": lots}


@pytest.fixture()
def world(fe):  # type: ignore[no-untyped-def]
    for name, table in source_tables().items():
        fe.create_table(name, "Id", df=table)
    for name, func, mode in FUNCTIONS:
        fe.create_function(name, func, mode=mode)
    spec = fe.create_feature_spec(f"few_{uuid.uuid4().hex[:6]}", [
        FeatureLookup("homes", "Id", default_values={"built": 1970, "flag": False, "name": "none"}),
        FeatureLookup("lots", "Id", default_values={"lot": 9000.0}),
        FeatureFunction("age", input_bindings={"built": "built", "sold": "sold"}, output_name="age"),
        FeatureFunction("ratio", input_bindings={"area": "area", "lot": "lot"}, output_name="ratio"),
        FeatureFunction("shout", input_bindings={"name": "name"}, output_name="loud"),
        FeatureFunction("signed", input_bindings={"flag": "flag", "x": "age"}, output_name="signed_age"),
        FeatureFunction("doubled", input_bindings={"a": "age"}, output_name="age2"),
        FeatureFunction("doubled", input_bindings={"a": "cars"}, output_name="cars2"),
        FeatureFunction("twice", input_bindings={"x": "rank"}, output_name="rank2"),
        FeatureFunction("scaled", input_bindings={"x": "small", "factor": "factor"}, output_name="scaled"),
        FeatureFunction("tagged", input_bindings={"name": "name", "channel": "channel"}, output_name="tag"),
        FeatureFunction("shifted", input_bindings={"q": "quality"}, output_name="q_shift"),
        FeatureFunction("summed", input_bindings={"a": "lot", "b": "ratio"}, output_name="lot_plus"),
    ], exclude_columns=["small"])
    for table in ("homes", "lots"):
        fe.publish_table(table, SQLiteStoreSpec())
    return fe, spec


def _keys(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    ids = rng.integers(1, 46, rows)  # 41..45 are in neither table
    return pd.DataFrame({
        "Id": ids.astype("int64"),
        "sold": rng.integers(2006, 2011, rows).astype("int64"),
        "factor": rng.uniform(0.5, 2.0, rows),
        "channel": pd.array(rng.choice(["web", "app"], rows), dtype="str"),
    }, index=pd.RangeIndex(rows) if rng.random() < 0.7 else pd.Index(rng.permutation(max(100, rows))[:rows] + 7))


def oracle(asm) -> Oracle:  # type: ignore[no-untyped-def]
    return Oracle(asm.spec, asm.labels, source_tables(), {"homes": ["Id"], "lots": ["Id"]},
                  {name: func for name, func, _ in FUNCTIONS})


def test_functions_equal_the_oracle(world) -> None:  # type: ignore[no-untyped-def]
    fe, spec = world
    asm = fe.online_feature_assembler(spec, on_missing="null")
    expect = oracle(asm)
    rng = np.random.default_rng(11)
    for trial in range(60):
        keys = _keys(rng, int(rng.choice([1, 1, 1, 2, 3, 5, 16, 17, 300])))
        for include_found in (False, True):
            expect.check(asm, keys, include_found, trial)
    out = asm.assemble(pd.DataFrame({"Id": [41], "sold": [2008], "factor": [1.0],
                                     "channel": pd.array(["web"], dtype="str")}))
    assert out["age"].tolist() == [2008 - 1970] and out["loud"].tolist() == ["NONE!"]  # defaults feed functions
    assert out["signed_age"].tolist() == [-38] and out["tag"].tolist() == ["none:web"]


def test_one_row_calls_no_series_once_the_typing_is_known(world) -> None:  # type: ignore[no-untyped-def]
    fe, spec = world
    asm = fe.online_feature_assembler(spec, on_missing="null")
    series_calls: list[str] = []

    def counting(name, func):  # type: ignore[no-untyped-def]
        def wrapper(**kwargs):  # type: ignore[no-untyped-def]
            if any(isinstance(v, pd.Series) for v in kwargs.values()):
                series_calls.append(name)
            return func(**kwargs)
        return wrapper

    for _, step in asm.plan.functions:
        step.runner.func = counting(step.output_name, step.runner.func)
    keys = pd.DataFrame({"Id": [1], "sold": [2008], "factor": [1.5], "channel": pd.array(["app"], dtype="str")})
    first = asm.assemble(keys)
    # the first call learns how the Series route types each auto function; mode="row" never takes it
    assert "ratio" in series_calls and "q_shift" not in series_calls and "lot_plus" in series_calls
    series_calls.clear()
    for _ in range(3):
        pd.testing.assert_frame_equal(asm.assemble(keys), first, check_exact=True)
    assert series_calls == ["lot_plus"] * 3  # mode="vectorized" always takes Series
    series_calls.clear()
    many = asm.assemble(pd.concat([keys] * 17, ignore_index=True))  # beyond ROW_CALLS_MAX_ROWS: Series
    pd.testing.assert_frame_equal(many.iloc[[0]], first, check_exact=True)
    assert "ratio" in series_calls


def test_run_rows_types_like_run_arrow() -> None:
    def half(x):  # type: ignore[no-untyped-def]
        return x / 2

    runner = FunctionRunner(half, name="main.default.half", version="v1", mode="auto", output_type=None)
    kinds = (("x", "float32"),)
    assert runner.run_rows({"x": [3.0]}, 1, kinds) is None  # the typing is not known yet
    learned = runner.run_arrow({"x": pd.Series([3.0, 5.0], dtype="float32")}, 2, learn=kinds)
    assert learned.type == pa.float32()
    rows = runner.run_rows({"x": [7.0]}, 1, kinds)
    assert isinstance(rows, pa.Array) and rows.type == pa.float32() and rows.to_pylist() == [3.5]

    def pick(flag, x):  # type: ignore[no-untyped-def]
        return x if flag else None

    runner = FunctionRunner(pick, name="main.default.pick", version="v1", mode="auto", output_type=pa.int64())
    kinds = (("flag", "bool"), ("x", "int64"))
    runner.run_arrow({"flag": pd.Series([True, False]), "x": pd.Series([1, 2])}, 2, learn=kinds)
    got = runner.run_rows({"flag": [True, False], "x": [4, 5]}, 2, kinds)
    assert isinstance(got, pa.Array) and got.to_pylist() == [4, None]  # row-by-row typing: nulls kept
    assert runner.run_rows({"flag": [True], "x": [9]}, 1, kinds).tolist() == [9]  # numpy: no Arrow needed

    def boom(x):  # type: ignore[no-untyped-def]
        raise ValueError("bad row")

    runner = FunctionRunner(boom, name="main.default.boom", version="v1", mode="row", output_type=None)
    assert runner.run_rows({"x": [1]}, 1, (("x", "int64"),)) is None  # the Series route reports the error
    vectorized = FunctionRunner(half, name="main.default.half", version="v1", mode="vectorized", output_type=None)
    assert vectorized.run_rows({"x": [1.0]}, 1, kinds) is None


def test_python_keys_equal_the_oracle(world) -> None:  # type: ignore[no-untyped-def]
    fe, spec = world
    asm = fe.online_feature_assembler(spec, on_missing="null")
    expect = oracle(asm)
    rng = np.random.default_rng(5)
    for _ in range(25):
        rows = int(rng.choice([1, 1, 2, 4]))
        columns = {"Id": [int(v) for v in rng.integers(1, 46, rows)],
                   "sold": [int(v) for v in rng.integers(2006, 2011, rows)],
                   "factor": ([int(v) for v in rng.integers(1, 4, rows)] if rng.random() < 0.5
                              else [float(v) for v in rng.uniform(0.5, 2.0, rows)]),
                   "channel": [str(v) if v != "none" else None for v in rng.choice(["web", "app", "none"], rows)]}
        if all(v is None for v in columns["channel"]):
            columns["channel"][0] = "web"
        frame = pd.DataFrame({"Id": np.array(columns["Id"], dtype="int64"),
                              "sold": np.array(columns["sold"], dtype="int64"),
                              "factor": np.array(columns["factor"]),  # int64 or float64
                              "channel": pd.array(columns["channel"], dtype="str")})
        records = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
        framed = expect.check(asm, frame, include_found=True)
        for keys in (columns, records):  # the same as the frame of those values
            got = expect.check(asm, keys, include_found=True)
            pd.testing.assert_frame_equal(got["pandas"], framed["pandas"], check_exact=True)
            assert_same_dict(got["dict"], framed["dict"])
    with pytest.raises(FunctionError, match="sold"):  # validated like a frame: a missing request-time column
        asm.assemble({"Id": [1], "factor": [1], "channel": ["web"]}, output="dict")
