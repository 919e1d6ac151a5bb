"""Feature functions registered from Databricks ``CREATE FUNCTION`` statements: parsing, the Python and
SQL bodies (SQL through DuckDB), training sets, the online path, and ``spark.sql`` of larder.session."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from larder.errors import FunctionError, FunctionExecutionError, LarderError
from larder.training import FeatureFunction, FeatureLookup
from larder.training.sql_functions import parse_create_function, python_code

PY_AGE = """CREATE OR REPLACE FUNCTION ml.houses.house_age(year_built INT, sold_at TIMESTAMP, base INT DEFAULT 0)
RETURNS INT
LANGUAGE PYTHON
DETERMINISTIC
COMMENT 'Age of the house when sold'
AS $$
if year_built is None or sold_at is None:
    return None
return sold_at.year - year_built + base
$$"""

SQL_RATIO = """CREATE FUNCTION `ml`.`houses`.`ratio`(a DOUBLE COMMENT 'numerator', b DOUBLE)
RETURNS DOUBLE
COMMENT 'a over b, null when b is 0'
RETURN a / NULLIF(b, 0);"""


def test_parse_python_and_sql_functions() -> None:
    f = parse_create_function(PY_AGE)
    assert f.name == "ml.houses.house_age" and f.language == "PYTHON" and f.comment == "Age of the house when sold"
    assert [(p.name, p.type.text, p.default_sql) for p in f.parameters] == [
        ("year_built", "INT", None), ("sold_at", "TIMESTAMP", None), ("base", "INT", "0")]
    assert f.returns.python == "int" and f.body.startswith("if year_built is None")
    g = parse_create_function(SQL_RATIO)
    assert g.name == "ml.houses.ratio" and g.language == "SQL" and g.body == "a / NULLIF(b, 0)"
    assert g.parameters[0].comment == "numerator" and g.comment == "a over b, null when b is 0"
    h = parse_create_function("create temporary function f(x DECIMAL(10, 2), xs ARRAY<BIGINT>) "
                              "returns ARRAY<DOUBLE> language python as $tag$ return [float(v) for v in xs] $tag$")
    assert [p.type.duckdb for p in h.parameters] == ["DECIMAL(10,2)", "BIGINT[]"] and h.returns.python == "list[float]"
    name, code = python_code(h)
    assert name == "f" and code.startswith("def f(x: decimal.Decimal, xs: list[int]) -> list[float]:")


@pytest.mark.parametrize(("statement", "message"), [
    ("SELECT 1", "Not a CREATE FUNCTION statement"),
    ("CREATE FUNCTION f(x INT) RETURNS TABLE (y INT) RETURN SELECT x", "table functions"),
    ("CREATE FUNCTION f(x INT) RETURNS INT LANGUAGE SCALA AS $$ x $$", "LANGUAGE 'SCALA'"),
    ("CREATE FUNCTION f(x INT) RETURNS INT LANGUAGE PYTHON", "has no body"),
    ("CREATE FUNCTION f(x INT) RETURNS INT LANGUAGE PYTHON AS $$ return x", "never closed"),
    ("CREATE FUNCTION f(x MAP<STRING, INT>) RETURNS INT RETURN 1", "SQL type 'MAP<STRING, INT>'"),
    ("CREATE FUNCTION f(x INT RETURNS INT RETURN x", "never closed"),
    ("CREATE FUNCTION f(x INT) RETURNS INT RETURN SELECT max(x) FROM t", "not a query"),
    ("CREATE FUNCTION f(x INT) RETURNS INT LANGUAGE PYTHON AS $$ return x +* 1 $$", "does not compile"),
    ("CREATE FUNCTION f(x INT) RETURNS INT LANGUAGE PYTHON ENVIRONMENT (dependencies = '[]') AS $$ return x $$",
     "ENVIRONMENT is not supported"),
    ("CREATE FUNCTION f(class INT) RETURNS INT RETURN 1", "not usable as a Python name"),
])
def test_bad_statements_say_what_to_fix(fe, statement: str, message: str) -> None:
    with pytest.raises(FunctionError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("*", r"\*").replace("$", r"\$")):
        fe.create_function("f", statement)


def test_registered_from_sql_and_run_in_a_training_set(fe) -> None:
    info = fe.create_function(PY_AGE)
    assert info.name == "ml.houses.house_age" and info.description == "Age of the house when sold"
    assert info.signature == "(year_built: int, sold_at: datetime.datetime, base: int = 0) -> int"
    assert info.output_type == "int64" and info.source.startswith("CREATE OR REPLACE FUNCTION")
    assert fe.create_function(PY_AGE).version == info.version  # the same statement is the same version
    ratio = fe.create_function("ml.houses.ratio", SQL_RATIO)
    assert ratio.mode == "vectorized" and ratio.output_type == "double"
    with pytest.raises(FunctionError, match="creates 'ml.houses.ratio'"):
        fe.create_function("other", SQL_RATIO)

    fe.create_table("ml.houses.h", "Id", df=pd.DataFrame({
        "Id": [1, 2, 3, 4], "built": [1990, None, 2000, 2010], "area": [100.0, 50.0, 0.0, None],
        "price": [1e5, 2e5, 3e5, 4e5]}))
    labels = pd.DataFrame({"Id": [4, 1, 2, 3, 9],
                           "sold": pd.to_datetime(["2020-01-01", "2021-06-01", "2022-01-01", "2023-01-01",
                                                   "2024-01-01"], utc=True)})
    steps = [FeatureLookup("ml.houses.h", "Id"),
             FeatureFunction("ml.houses.house_age", {"year_built": "built", "sold_at": "sold"}, "age"),
             FeatureFunction("ml.houses.ratio", {"a": "price", "b": "area"}, "ppa")]
    out = fe.create_training_set(labels, steps, label=None).load_df()
    np.testing.assert_array_equal(out["age"].to_numpy(dtype=float), [10, 31, np.nan, 23, np.nan])
    np.testing.assert_array_equal(out["ppa"].to_numpy(dtype=float), [np.nan, 1000.0, 4000.0, np.nan, np.nan])
    # row-by-row evaluation of the SQL function (one DuckDB call per row) gives the same values
    func = fe.get_function("ml.houses.ratio").func
    assert [func(a=p, b=q) for p, q in [(1e5, 100.0), (3e5, 0.0), (None, 1.0)]] == [1000.0, None, None]
    # and the online path runs the same functions
    fe.publish_table("ml.houses.h")
    online = fe.get_online_features(steps, labels)
    np.testing.assert_array_equal(online["ppa"].to_numpy(dtype=float), out["ppa"].to_numpy(dtype=float))
    np.testing.assert_array_equal(online["age"].to_numpy(dtype=float), out["age"].to_numpy(dtype=float))


def test_sql_default_and_cast_errors(fe) -> None:
    info = fe.create_function("CREATE FUNCTION plus(x BIGINT, y BIGINT DEFAULT 10) RETURNS BIGINT RETURN x + y")
    assert info.parameters[1]["has_default"] and info.parameters[1]["default"] == 10
    fe.create_table("t", "k", df=pd.DataFrame({"k": [1, 2], "s": ["a", "7"]}))
    out = fe.create_training_set(pd.DataFrame({"k": [1, 2]}), [
        FeatureLookup("t", "k"), FeatureFunction("plus", {"x": "k"}, "p")], label=None).load_df()
    assert out["p"].tolist() == [11, 12]
    fe.create_function("CREATE FUNCTION num(s STRING) RETURNS INT RETURN CAST(s AS INT)")
    with pytest.raises(FunctionExecutionError, match="evaluating `CAST\\(s AS INT\\)` failed"):
        fe.create_training_set(pd.DataFrame({"k": [1]}), [
            FeatureLookup("t", "k"), FeatureFunction("num", {"s": "s"}, "n")], label=None).load_df()


def test_session_sql_creates_and_drops(fe) -> None:
    from larder.session import spark

    out = spark.sql("CREATE OR REPLACE FUNCTION twice(x DOUBLE) RETURNS DOUBLE RETURN 2 * x")
    assert out["function"].tolist() == ["main.default.twice"]
    assert fe.get_function("twice").mode == "vectorized"
    spark.sql("DROP FUNCTION twice")
    spark.sql("DROP FUNCTION IF EXISTS twice")
    with pytest.raises(LarderError, match="does not exist"):
        spark.sql("DROP FUNCTION twice")
    with pytest.raises(LarderError, match="CREATE FUNCTION and DROP FUNCTION statements only"):
        spark.sql("SELECT * FROM t")
    df = spark.createDataFrame([(1, "a"), (2, "b")], schema="id INT, name STRING")
    assert list(df.columns) == ["id", "name"] and len(df) == 2
    fe.create_table("t", "id", df=df)
    assert spark.table("t").sort_values("id")["name"].tolist() == ["a", "b"]


def test_python_udf_timestamp_and_date_inputs(fe) -> None:
    fe.create_function("""CREATE FUNCTION days_between(a DATE, b TIMESTAMP) RETURNS INT LANGUAGE PYTHON AS $$
import datetime
if a is None or b is None:
    return None
return (b.date() - a).days
$$""")
    fe.create_table("d", "k", df=pd.DataFrame({"k": [1, 2], "a": [dt.date(2024, 1, 1), None]}))
    out = fe.create_training_set(
        pd.DataFrame({"k": [1, 2], "b": pd.to_datetime(["2024-01-31", "2024-02-01"], utc=True)}),
        [FeatureLookup("d", "k"), FeatureFunction("days_between", {"a": "a", "b": "b"}, "n")], label=None).load_df()
    assert out["n"].iloc[0] == 30 and pd.isna(out["n"].iloc[1])
