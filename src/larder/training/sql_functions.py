"""Feature functions written as Databricks ``CREATE FUNCTION`` statements.

On Databricks a ``FeatureFunction`` names a Unity Catalog function created in SQL, either a Python
UDF or a SQL one::

    CREATE OR REPLACE FUNCTION main.default.house_age(year_built INT, sold_year INT)
    RETURNS INT
    LANGUAGE PYTHON
    COMMENT 'Age of the house when it was sold'
    AS $$
    return None if year_built is None else sold_year - year_built
    $$

    CREATE FUNCTION main.default.price_per_area(price DOUBLE, area DOUBLE)
    RETURNS DOUBLE
    RETURN price / NULLIF(area, 0)

:func:`parse_create_function` reads such a statement (name, typed parameters with their defaults,
return type, language, body, comment). :func:`python_code` turns it into the Python function larder
registers: for ``LANGUAGE PYTHON`` the body becomes the body of a ``def`` whose parameters carry the
SQL types as annotations (so the return type fixes the output column's type, as larder's Python
functions do); for a SQL function the ``def`` evaluates the ``RETURN`` expression with DuckDB
(:func:`evaluate`), on a whole column at once. The expression is DuckDB SQL, which agrees with Spark
SQL on arithmetic, ``CASE``, ``COALESCE``, comparisons and most string functions; date functions differ
(Spark's ``datediff(end, start)`` is DuckDB's ``datediff('day', start, end)``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import keyword
import re
import textwrap
import threading
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from larder.errors import FunctionError, FunctionExecutionError

#: Spark SQL type name -> (Python annotation text, DuckDB type). Parametrised types are handled below.
_SCALARS: dict[str, tuple[str, str]] = {
    "tinyint": ("int", "TINYINT"), "byte": ("int", "TINYINT"),
    "smallint": ("int", "SMALLINT"), "short": ("int", "SMALLINT"),
    "int": ("int", "INTEGER"), "integer": ("int", "INTEGER"),
    "bigint": ("int", "BIGINT"), "long": ("int", "BIGINT"),
    "float": ("float", "FLOAT"), "real": ("float", "FLOAT"),
    "double": ("float", "DOUBLE"),
    "string": ("str", "VARCHAR"), "varchar": ("str", "VARCHAR"), "char": ("str", "VARCHAR"),
    "boolean": ("bool", "BOOLEAN"), "bool": ("bool", "BOOLEAN"),
    "date": ("datetime.date", "DATE"),
    "timestamp": ("datetime.datetime", "TIMESTAMPTZ"), "timestamp_ntz": ("datetime.datetime", "TIMESTAMPTZ"),
    "binary": ("bytes", "BLOB"),
}

_NAME_PART = r"(?:`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)"
_HEAD = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?FUNCTION\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>{_NAME_PART}(?:\s*\.\s*{_NAME_PART}){{0,2}})\s*\(",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class SqlType:
    """A Spark SQL data type as written (``INT``, ``DECIMAL(10,2)``, ``ARRAY<DOUBLE>``)."""

    text: str
    python: str
    duckdb: str

    @classmethod
    def parse(cls, text: str, *, where: str) -> SqlType:
        t = " ".join(text.split())
        low = t.lower()
        if low in _SCALARS:
            py, duck = _SCALARS[low]
            return cls(t.upper(), py, duck)
        m = re.fullmatch(r"(?:decimal|dec|numeric)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?", low)
        if m:
            precision, scale = int(m.group(1) or 10), int(m.group(2) or 0)
            return cls(t.upper(), "decimal.Decimal", f"DECIMAL({precision},{scale})")
        m = re.fullmatch(r"(?:varchar|char)\s*\(\s*\d+\s*\)", low)
        if m:
            return cls(t.upper(), "str", "VARCHAR")
        m = re.fullmatch(r"array\s*<(.+)>", t, re.IGNORECASE | re.DOTALL)
        if m:
            inner = cls.parse(m.group(1), where=where)
            return cls(t.upper(), f"list[{inner.python}]", f"{inner.duckdb}[]")
        raise FunctionError(
            f"{where}: SQL type {t!r} is not supported by larder's SQL functions; use one of "
            f"{sorted({k.upper() for k in _SCALARS})}, DECIMAL(p, s) or ARRAY<type>."
        )


@dataclass(frozen=True)
class SqlParameter:
    name: str
    type: SqlType
    default_sql: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class SqlFunction:
    """A parsed ``CREATE FUNCTION`` statement."""

    name: str
    parameters: list[SqlParameter]
    returns: SqlType
    language: str  # "PYTHON" or "SQL"
    body: str
    comment: str | None = None
    statement: str = field(default="", repr=False)

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


def looks_like_create_function(text: Any) -> bool:
    return isinstance(text, str) and _HEAD.match(text) is not None


def _split_top(text: str, sep: str = ",") -> list[str]:
    """``text`` split on ``sep`` outside brackets, angle brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"`":
            quote = ch
        elif ch in "(<":
            depth += 1
        elif ch in ")>":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _closing(text: str, start: int) -> int:
    """Index of the ``)`` closing the ``(`` just before ``start``."""
    depth, quote = 1, ""
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
    raise FunctionError("CREATE FUNCTION: the parameter list's '(' is never closed.")


def _unquote_name(name: str) -> str:
    return ".".join(p.strip().strip("`") for p in name.split("."))


def _string_literal(text: str) -> tuple[str, str]:
    """A leading SQL string literal of ``text`` and the rest."""
    text = text.lstrip()
    if not text or text[0] not in "'\"":
        raise FunctionError(f"CREATE FUNCTION: expected a quoted string, got {text[:40]!r}.")
    q = text[0]
    out, i = [], 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == q:
            if i + 1 < len(text) and text[i + 1] == q:
                out.append(q)
                i += 2
                continue
            return "".join(out), text[i + 1:]
        out.append(ch)
        i += 1
    raise FunctionError("CREATE FUNCTION: a quoted string is never closed.")


def _parameter(text: str, *, where: str) -> SqlParameter:
    m = re.match(r"\s*(`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)\s+(.*)$", text, re.DOTALL)
    if not m:
        raise FunctionError(f"{where}: cannot read the parameter {text!r}; write it as `name TYPE`.")
    name, rest = m.group(1).strip("`"), m.group(2)
    comment = None
    cm = re.search(r"\s+COMMENT\s+(['\"].*)$", rest, re.IGNORECASE | re.DOTALL)
    if cm:
        comment, _ = _string_literal(cm.group(1))
        rest = rest[:cm.start()]
    default = None
    dm = re.search(r"\s+DEFAULT\s+(.+)$", rest, re.IGNORECASE | re.DOTALL)
    if dm:
        default = dm.group(1).strip()
        rest = rest[:dm.start()]
    if not name.isidentifier() or keyword.iskeyword(name):
        raise FunctionError(f"{where}: parameter name {name!r} is not usable as a Python name; rename it.")
    return SqlParameter(name=name, type=SqlType.parse(rest, where=f"{where}, parameter {name!r}"),
                        default_sql=default, comment=comment)


def parse_create_function(statement: str) -> SqlFunction:
    """Parse a Databricks ``CREATE FUNCTION`` statement (scalar Python or SQL function).

    >>> f = parse_create_function('''CREATE FUNCTION ml.houses.age(built INT, sold INT DEFAULT 2024)
    ...     RETURNS INT LANGUAGE PYTHON AS $$ return sold - built $$''')
    >>> f.name, [p.name for p in f.parameters], f.returns.text, f.language, f.body
    ('ml.houses.age', ['built', 'sold'], 'INT', 'PYTHON', 'return sold - built')
    """
    head = _HEAD.match(statement)
    if head is None:
        raise FunctionError(
            "Not a CREATE FUNCTION statement: expected `CREATE [OR REPLACE] FUNCTION name(param TYPE, ...) "
            "RETURNS TYPE [LANGUAGE PYTHON] AS $$ body $$` or `... RETURNS TYPE RETURN expression`."
        )
    name = _unquote_name(head.group("name"))
    where = f"CREATE FUNCTION {name}"
    close = _closing(statement, head.end())
    params_text = statement[head.end():close].strip()
    params = [_parameter(p, where=where) for p in _split_top(params_text)] if params_text else []
    if len({p.name for p in params}) != len(params):
        raise FunctionError(f"{where}: a parameter name is used twice.")
    rest = statement[close + 1:].strip()
    m = re.match(r"RETURNS\s+", rest, re.IGNORECASE)
    if not m:
        raise FunctionError(f"{where}: expected RETURNS <type> after the parameters.")
    rest = rest[m.end():]
    if re.match(r"TABLE\b", rest, re.IGNORECASE):
        raise FunctionError(
            f"{where}: table functions (RETURNS TABLE) cannot be feature functions; a feature function returns "
            "one value per row."
        )
    # the return type runs up to the first characteristic or body keyword outside brackets
    body_at = _find_keyword(rest, ("LANGUAGE", "COMMENT", "DETERMINISTIC", "NOT", "CONTAINS", "READS",
                                   "ENVIRONMENT", "HANDLER", "AS", "RETURN", "SQL"))
    returns = SqlType.parse(rest[:body_at], where=f"{where}, RETURNS")
    rest = rest[body_at:]
    language, comment, body = "SQL", None, None
    while rest:
        word = re.match(r"[A-Za-z]+", rest)
        if word is None:
            raise FunctionError(f"{where}: cannot read {rest[:40]!r}.")
        kw = word.group(0).upper()
        after = rest[word.end():].lstrip()
        if kw == "LANGUAGE":
            lm = re.match(r"([A-Za-z]+)", after)
            language = lm.group(1).upper() if lm else ""
            if language not in ("PYTHON", "SQL"):
                raise FunctionError(f"{where}: LANGUAGE {language or after[:20]!r} is not supported; use PYTHON or SQL.")
            rest = after[lm.end():].lstrip() if lm else ""
        elif kw == "COMMENT":
            comment, rest = _string_literal(after)
            rest = rest.lstrip()
        elif kw in ("DETERMINISTIC", "NOT", "CONTAINS", "READS", "SQL", "DATA"):
            rest = after
        elif kw == "ENVIRONMENT" or kw == "HANDLER":
            raise FunctionError(
                f"{where}: {kw} is not supported; import what the body needs inside it, and install the packages "
                "in this environment (list them in create_feature_spec(extra_pip_requirements=...) for models)."
            )
        elif kw == "AS":
            body, rest = _dollar_quoted(after, where=where)
            rest = rest.strip().rstrip(";").strip()
            if rest:
                raise FunctionError(f"{where}: unexpected text after the body: {rest[:40]!r}.")
        elif kw == "RETURN":
            body, rest = after.strip().rstrip(";").strip(), ""
        else:
            raise FunctionError(f"{where}: unexpected {kw!r}.")
    if body is None or not body.strip():
        raise FunctionError(f"{where}: the statement has no body (`AS $$ ... $$` or `RETURN expression`).")
    if language == "SQL" and re.match(r"\s*RETURN\b", body, re.IGNORECASE):
        body = re.sub(r"^\s*RETURN\s+", "", body, flags=re.IGNORECASE)
    if language == "SQL" and re.match(r"\s*(SELECT|WITH)\b", body, re.IGNORECASE):
        raise FunctionError(
            f"{where}: a SQL feature function must RETURN a scalar expression of its parameters, not a query."
        )
    return SqlFunction(name=name, parameters=params, returns=returns, language=language,
                       body=textwrap.dedent(body).strip("\n") if language == "PYTHON" else body.strip(),
                       comment=comment, statement=statement.strip())


def _find_keyword(text: str, words: tuple[str, ...]) -> int:
    depth = 0
    pattern = re.compile(r"\b(" + "|".join(words) + r")\b", re.IGNORECASE)
    for m in pattern.finditer(text):
        depth = text[:m.start()].count("<") - text[:m.start()].count(">") + text[:m.start()].count("(") - \
            text[:m.start()].count(")")
        if depth == 0:
            return m.start()
    return len(text)


def _dollar_quoted(text: str, *, where: str) -> tuple[str, str]:
    m = re.match(r"\$([A-Za-z_0-9]*)\$", text)
    if m is None:
        if text[:1] in "'\"":
            return _string_literal(text)
        raise FunctionError(f"{where}: expected the body as a dollar-quoted string, `AS $$ ... $$`.")
    tag = m.group(0)
    end = text.find(tag, m.end())
    if end < 0:
        raise FunctionError(f"{where}: the body's {tag} is never closed.")
    return text[m.end():end], text[end + len(tag):]


def _python_default(param: SqlParameter, *, where: str) -> Any:
    """A parameter's DEFAULT as a Python constant (evaluated by DuckDB, cast to its type)."""
    assert param.default_sql is not None
    try:
        rows = _connection().execute(f"SELECT CAST(({param.default_sql}) AS {param.type.duckdb})").fetchall()
    except Exception as exc:
        raise FunctionError(f"{where}: cannot evaluate DEFAULT {param.default_sql!r} of {param.name!r}: {exc}") from exc
    out = rows[0][0]
    if isinstance(out, (dt.datetime, dt.date, decimal.Decimal, bytes)):
        raise FunctionError(
            f"{where}: DEFAULT of {param.name!r} must be a number, string, boolean or NULL (got {out!r}); bind the "
            "parameter to a column instead."
        )
    return out


def python_code(fn: SqlFunction) -> tuple[str, str]:
    """``(python name, code)`` of the Python function that implements ``fn``."""
    where = f"CREATE FUNCTION {fn.name}"
    py_name = fn.short_name if fn.short_name.isidentifier() and not keyword.iskeyword(fn.short_name) else "udf"
    args = []
    for p in fn.parameters:
        arg = f"{p.name}: {p.type.python}"
        if p.default_sql is not None:
            arg += f" = {_python_default(p, where=where)!r}"
        args.append(arg)
    head = f"def {py_name}({', '.join(args)}) -> {fn.returns.python}:"
    if fn.language == "PYTHON":
        body = textwrap.indent(fn.body, "    ")
        code = f"{head}\n{body}\n"
    else:
        bindings = ", ".join(f"{p.name!r}: {p.name}" for p in fn.parameters)
        types = ", ".join(f"{p.name!r}: {p.type.duckdb!r}" for p in fn.parameters)
        code = (f"{head}\n    return _larder_sql_evaluate({fn.body!r}, {{{bindings}}}, {{{types}}}, "
                f"{fn.returns.duckdb!r}, {fn.name!r})\n")
    try:
        compile(code, f"<{where}>", "exec")
    except SyntaxError as exc:
        raise FunctionError(f"{where}: the Python body does not compile: {exc.msg} (line {exc.lineno}).") from exc
    return py_name, code


def environment(fn: SqlFunction) -> dict[str, Any]:
    """What ``exec`` of :func:`python_code` needs (the larder modules the code refers to)."""
    objects: dict[str, list[str]] = {}
    imports: dict[str, str] = {}
    if fn.language == "SQL":
        objects["_larder_sql_evaluate"] = ["larder.training.sql_functions", "evaluate"]
    code = python_code(fn)[1]
    for module in ("datetime", "decimal"):
        if f"{module}." in code:
            imports[module] = module
    return {"imports": imports, "objects": objects, "constants": {}, "unresolved": []}


# -- evaluating SQL bodies ---------------------------------------------------------------------------
_local = threading.local()


def _connection() -> Any:
    con = getattr(_local, "con", None)
    if con is None:
        import duckdb

        con = duckdb.connect()
        con.execute("SET TimeZone='UTC'")
        _local.con = con
    return con


def _column(value: Any, n: int) -> pa.Array:
    import pandas as pd

    if isinstance(value, pd.Series):
        from larder.training.execute import series_to_arrow

        return series_to_arrow(value)
    if isinstance(value, (pa.Array, pa.ChunkedArray)):
        return value.combine_chunks() if isinstance(value, pa.ChunkedArray) else value
    return pa.array([value] * n, from_pandas=True)


def evaluate(expression: str, inputs: dict[str, Any], types: dict[str, str], returns: str, name: str) -> Any:
    """The SQL ``expression`` over ``inputs`` (pandas Series of one length, or one row of scalars), each
    cast to its declared DuckDB type, and the result cast to ``returns``: an Arrow array for Series
    inputs, a Python value for scalars."""
    import pandas as pd

    columnar = any(isinstance(v, (pd.Series, pa.Array, pa.ChunkedArray)) for v in inputs.values())
    n = next((len(v) for v in inputs.values() if isinstance(v, (pd.Series, pa.Array, pa.ChunkedArray))), 1)
    cols = {p: _column(v, n) for p, v in inputs.items()}
    if not cols:
        cols = {"__larder_row": pa.array([0] * n)}
    table = pa.table(cols)
    casts = ", ".join(f'CAST("{p}" AS {t}) AS "{p}"' for p, t in types.items()) or "*"
    sql = f"SELECT CAST(({expression}) AS {returns}) AS out FROM (SELECT {casts} FROM __larder_inputs)"
    from larder.offline.pit import _fetch

    con = _connection()
    try:
        con.register("__larder_inputs", table)
        try:
            out = _fetch(con.sql(sql)).column("out").combine_chunks()
        finally:
            con.unregister("__larder_inputs")
    except Exception as exc:  # duckdb's own errors: a bad expression or a value that does not cast
        raise FunctionExecutionError(
            f"SQL feature function {name!r}: evaluating `{expression}` failed: {exc}. The expression is DuckDB SQL "
            "over the function's parameters; fix it and register the function again."
        ) from exc
    return out if columnar else out[0].as_py()


__all__ = [
    "SqlFunction",
    "SqlParameter",
    "SqlType",
    "environment",
    "evaluate",
    "looks_like_create_function",
    "parse_create_function",
    "python_code",
]
