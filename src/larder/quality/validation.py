"""Run expectations against a DataFrame (through pandera) and enforce a policy on the outcome.

Each expectation compiles to one pandera :class:`~pandera.api.checks.Check`, attached to its column
or to the whole frame, all in a single :class:`~pandera.pandas.DataFrameSchema`. One lazy
``schema.validate`` run collects every failure case; larder groups them back per expectation into
failing-row counts and example rows (by primary key when ``keys`` are given, else by row position).
pandera does the checking; larder adds what pandera has no notion of: tolerances (``not_null`` with
``max_fraction``), table-level facts (row counts, freshness age) for the message, JSON results, and
policies.

>>> import pandas as pd
>>> from larder.quality.expectations import in_range
>>> df = pd.DataFrame({"id": [1, 2, 3], "price": [10.0, -5.0, 7.0]})
>>> res = validate(df, [in_range("price", min=0)], keys=["id"])
>>> res.passed, res.results[0].failing_count, res.results[0].examples
(False, 1, [{'row': 1, 'id': 2, 'price': -5.0}])
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from larder.errors import ConfigError, ValidationError
from larder.quality.expectations import (
    AllowedValues,
    Custom,
    Freshness,
    HasType,
    InRange,
    MatchesPattern,
    NotNull,
    RowCount,
    Unique,
    coerce_expectations,
    format_timedelta,
    registered_check,
)

if TYPE_CHECKING:  # pandera is imported when validating, keeping `import larder.quality` light
    import pandera.pandas as pa

Policy = Literal["strict", "warn", "off"]
POLICIES: tuple[str, ...] = ("strict", "warn", "off")

#: Example rows kept per failing expectation.
MAX_EXAMPLES = 5


class QualityWarning(UserWarning):
    """Emitted when expectations fail under the ``warn`` policy (the write still commits)."""


class ExpectationResult(BaseModel):
    """The outcome of one expectation."""

    expectation: dict[str, Any]
    label: str
    passed: bool
    failing_count: int = 0
    failing_fraction: float | None = None
    observed: dict[str, Any] = Field(default_factory=dict)
    examples: list[dict[str, Any]] = Field(default_factory=list)
    message: str = ""


class ValidationResult(BaseModel):
    """The outcome of validating one DataFrame against a list of expectations."""

    table: str | None = None
    row_count: int
    results: list[ExpectationResult]
    validated_at: datetime

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.passed]

    def summary(self) -> str:
        """One line per failing expectation with its count and example rows."""
        if self.passed:
            return f"all {len(self.results)} expectations passed on {self.row_count} rows"
        return "\n".join(f"  - {r.label}: {r.message}" for r in self.failed)


# ------------------------------------------------------------------------------------------ validate
def validate(
    df: Any,
    expectations: Sequence[Any],
    *,
    table: str | None = None,
    keys: Sequence[str] | None = None,
    now: datetime | None = None,
    max_examples: int = MAX_EXAMPLES,
) -> ValidationResult:
    """Validate ``df`` (pandas or pyarrow) against ``expectations``.

    Parameters
    ----------
    df
        The rows to check (for a write, the rows being written).
    expectations
        Expectation models (see :mod:`larder.quality.expectations`) or their dict form.
    table
        Table name used in messages.
    keys
        Columns identifying a row (primary keys); example rows show them. Default: the row position.
    now
        The reference time for freshness (default: the current UTC time).
    max_examples
        Example rows kept per failing expectation.
    """
    exps = coerce_expectations(expectations)
    frame = _as_pandas(df).reset_index(drop=True)
    key_cols = [k for k in (keys or []) if k in frame.columns]
    now_utc = _utc(pd.Timestamp(now) if now is not None else pd.Timestamp(datetime.now(UTC)))
    n = len(frame)

    compiled: dict[str, _Compiled] = {}
    early: dict[str, ExpectationResult] = {}
    columns: dict[str, list[pa.Check]] = {}
    frame_checks: list[pa.Check] = []
    for i, exp in enumerate(exps):
        tag = f"e{i}"
        missing = [c for c in exp.columns if c not in frame.columns]
        if missing:
            early[tag] = _fail(exp, f"column(s) {missing} are missing from the data (columns: "
                                    f"{list(frame.columns)[:20]}); add them or fix the expectation")
            continue
        try:
            comp = _compile(exp, tag, frame, now_utc)
        except _Unusable as exc:
            early[tag] = _fail(exp, str(exc))
            continue
        compiled[tag] = comp
        if comp.column is None:
            frame_checks.append(comp.check)
        else:
            columns.setdefault(comp.column, []).append(comp.check)

    cases = _run_pandera(frame, columns, frame_checks)

    results = []
    for i, exp in enumerate(exps):
        tag = f"e{i}"
        if tag in early:
            results.append(early[tag])
            continue
        comp = compiled[tag]
        results.append(_judge(exp, comp, cases.get(tag), frame, key_cols, max_examples, now_utc))
    return ValidationResult(table=table, row_count=n, results=results,
                            validated_at=now_utc.to_pydatetime().replace(tzinfo=None))


class _Unusable(Exception):
    """An expectation that cannot apply to this data (e.g. a range on a text column)."""


class _Compiled:
    def __init__(self, check: pa.Check, column: str | None, errors: dict[str, BaseException]) -> None:
        self.check = check
        self.column = column
        self.errors = errors


def _compile(exp: Any, tag: str, frame: pd.DataFrame, now: pd.Timestamp) -> _Compiled:
    import pandera.pandas as pa

    errors: dict[str, BaseException] = {}

    def guarded(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(obj: Any) -> Any:
            try:
                return fn(obj)
            except Exception as exc:  # recorded, then reported as this expectation's failure
                errors[tag] = exc
                raise

        return run

    def check(fn: Callable[[Any], Any], *, ignore_na: bool = True) -> pa.Check:
        return pa.Check(guarded(fn), error=tag, name=tag, ignore_na=ignore_na)

    if isinstance(exp, NotNull):
        return _Compiled(check(lambda s: s.notna(), ignore_na=False), exp.column, errors)
    if isinstance(exp, InRange):
        col = frame[exp.column]
        if not (pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)):
            raise _Unusable(f"in_range needs a numeric column but {exp.column!r} has dtype {col.dtype}")
        if exp.min is not None and exp.max is not None:
            c = pa.Check.in_range(exp.min, exp.max, include_min=not exp.strict_min,
                                  include_max=not exp.strict_max, error=tag)
        elif exp.min is not None:
            c = (pa.Check.gt if exp.strict_min else pa.Check.ge)(exp.min, error=tag)
        else:
            c = (pa.Check.lt if exp.strict_max else pa.Check.le)(exp.max, error=tag)
        return _Compiled(c, exp.column, errors)
    if isinstance(exp, AllowedValues):
        return _Compiled(pa.Check.isin(exp.values, error=tag), exp.column, errors)
    if isinstance(exp, Unique):
        cols = list(exp.unique_columns)
        if len(cols) == 1:
            return _Compiled(check(lambda s: ~s.duplicated(keep=False)), cols[0], errors)
        return _Compiled(
            check(lambda d: ~d.duplicated(subset=cols, keep=False) | d[cols].isna().any(axis=1),
                  ignore_na=False),
            None, errors,
        )
    if isinstance(exp, HasType):
        return _Compiled(check(lambda s: _type_matches(s.dtype, exp.dtype)), exp.column, errors)
    if isinstance(exp, MatchesPattern):
        pattern = exp.pattern

        def matches(s: pd.Series) -> pd.Series:
            text = s if pd.api.types.is_string_dtype(s.dtype) else s.astype("str")
            return text.str.fullmatch(pattern).fillna(True).astype(bool)

        return _Compiled(check(matches), exp.column, errors)
    if isinstance(exp, RowCount):
        lo, hi = exp.min, exp.max
        return _Compiled(
            check(lambda d: (lo is None or len(d) >= lo) and (hi is None or len(d) <= hi), ignore_na=False),
            None, errors,
        )
    if isinstance(exp, Freshness):
        col = frame[exp.column]
        if not pd.api.types.is_datetime64_any_dtype(col.dtype):
            raise _Unusable(f"freshness needs a timestamp column but {exp.column!r} has dtype {col.dtype}")
        max_age = pd.Timedelta(exp.max_age)
        return _Compiled(
            check(lambda s: s.notna().any() and now - _utc(s.max()) <= max_age, ignore_na=False),
            exp.column, errors,
        )
    if isinstance(exp, Custom):
        fn = registered_check(exp.name)
        if fn is None:
            raise _Unusable(
                f"custom check {exp.name!r} is not registered in this process; call "
                f"larder.quality.register_check({exp.name!r}, fn) before writing or validating"
            )

        def run_custom(d: pd.DataFrame) -> Any:
            out = fn(d)
            if isinstance(out, bool | np.bool_):
                return bool(out)
            if not isinstance(out, pd.Series) or len(out) != len(d):
                raise TypeError(
                    f"custom check {exp.name!r} must return a boolean Series with one value per row "
                    f"(got {type(out).__name__}{'' if not hasattr(out, '__len__') else f' of length {len(out)}'})"
                )
            return out.fillna(False).astype(bool).set_axis(d.index)

        return _Compiled(check(run_custom, ignore_na=False), None, errors)
    raise ConfigError(f"Unknown expectation kind {getattr(exp, 'kind', exp)!r}.")  # pragma: no cover


def _run_pandera(frame: pd.DataFrame, columns: dict[str, list[pa.Check]],
                 frame_checks: list[pa.Check]) -> dict[str, pd.DataFrame]:
    """Run all checks in one lazy pandera pass; failure cases grouped by expectation tag."""
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors

    if not columns and not frame_checks:
        return {}
    schema = pa.DataFrameSchema(
        {col: pa.Column(checks=checks, nullable=True, required=True, coerce=False)
         for col, checks in columns.items()},
        checks=frame_checks, strict=False, coerce=False,
    )
    try:
        schema.validate(frame, lazy=True, inplace=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        return {str(tag): group for tag, group in cases.groupby("check", sort=False)}
    return {}


def _judge(exp: Any, comp: _Compiled, cases: pd.DataFrame | None, frame: pd.DataFrame,
           keys: list[str], max_examples: int, now: pd.Timestamp) -> ExpectationResult:
    tag_error = next(iter(comp.errors.values()), None)
    if tag_error is not None:
        return _fail(exp, f"the check raised {type(tag_error).__name__}: {tag_error}")
    rows = _failing_rows(cases)
    passed = cases is None
    observed: dict[str, Any] = {}
    if isinstance(exp, Freshness):
        newest = frame[exp.column].max()
        observed = {"newest": None if pd.isna(newest) else _utc(newest).isoformat()}
    elif isinstance(exp, HasType):
        observed = {"dtype": str(frame[exp.column].dtype)}
    examples = _examples(frame, rows[:max_examples], keys, exp.columns) if not passed else []
    return finish(exp, passed=passed, count=len(rows), n=len(frame), observed=observed, examples=examples, now=now)


def finish(exp: Any, *, passed: bool, count: int, n: int, observed: dict[str, Any],
           examples: list[dict[str, Any]], now: pd.Timestamp) -> ExpectationResult:
    """An expectation's result from what was observed: ``count`` failing rows of ``n``, and for
    ``freshness`` the ``newest`` timestamp (ISO), for ``has_type`` the ``dtype``. Shared by
    :func:`validate` and engines that observe their frames piece by piece (Spark)."""
    fraction = count / n if n else 0.0
    observed = dict(observed)
    if isinstance(exp, NotNull):
        passed = fraction <= exp.max_fraction
        observed = {"null_count": count, "null_fraction": fraction}
        msg = (f"{count} of {n} rows are null ({_pct(fraction)}; at most {_pct(exp.max_fraction)} allowed)"
               if not passed else f"{count} null rows ({_pct(fraction)})")
    elif isinstance(exp, RowCount):
        observed = {"row_count": n}
        msg = f"{n} rows written; expected {exp.describe()[len('row_count('):-1]}"
        count = 0 if passed else 1
    elif isinstance(exp, Freshness):
        newest = observed.get("newest")
        if newest is None:
            observed = {"newest": None, "age_seconds": None}
            msg = f"column {exp.column!r} has no timestamps, so nothing is fresh"
        else:
            age = now - _utc(newest)
            observed = {"newest": newest, "age_seconds": age.total_seconds()}
            msg = (f"newest {exp.column} is {newest}, {format_timedelta(age)} old; "
                   f"maximum age {format_timedelta(exp.max_age)}")
        count = 0 if passed else 1
    elif isinstance(exp, HasType):
        msg = f"column {exp.column!r} has dtype {observed.get('dtype')}, expected {exp.dtype}"
        count = 0 if passed else 1
    elif isinstance(exp, Unique):
        msg = f"{count} of {n} rows share a duplicated {'/'.join(exp.unique_columns)}"
    elif isinstance(exp, Custom) and passed is False and not count:
        msg = "the check returned False for the whole frame"
        count = 1
    else:
        what = {
            "in_range": "are out of range",
            "allowed_values": "have a value not in the allowed set",
            "pattern": "do not match the pattern",
            "custom": "fail the check",
        }.get(exp.kind, "fail")
        msg = f"{count} of {n} rows {what} ({_pct(fraction)})"

    if examples and not passed:
        msg += "; examples: " + ", ".join(_fmt_row(r) for r in examples)
    if passed:
        msg = "passed" + (f" ({msg})" if isinstance(exp, NotNull) and count else "")
        examples = []
    row_level = not isinstance(exp, RowCount | Freshness | HasType)
    return ExpectationResult(
        expectation=exp.model_dump(mode="json"), label=exp.describe(), passed=passed,
        failing_count=count, failing_fraction=fraction if row_level else None,
        observed=observed, examples=examples, message=msg,
    )


def _failing_rows(cases: pd.DataFrame | None) -> list[int]:
    if cases is None:
        return []
    idx = cases["index"].dropna()
    return sorted({int(i) for i in idx})


def _examples(frame: pd.DataFrame, rows: list[int], keys: list[str], cols: list[str]) -> list[dict[str, Any]]:
    if not rows:
        return []
    show = list(dict.fromkeys([*keys, *cols]))
    out = []
    for r in rows:
        row: dict[str, Any] = {"row": r}
        for c in show:
            row[c] = _jsonable(frame[c].iloc[r])
        out.append(row)
    return out


def _fmt_row(row: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.6g}" if isinstance(v, float) else repr(v)

    return "{" + ", ".join(f"{k}: {fmt(v)}" for k, v in row.items()) + "}"


def _jsonable(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float | np.floating):
        return None if math.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, pd.Timestamp | datetime):
        return v.isoformat()
    if isinstance(v, pd.Timedelta | timedelta):
        return str(v)
    if isinstance(v, str | int | bool):
        return v
    return str(v)


def _fail(exp: Any, message: str) -> ExpectationResult:
    return ExpectationResult(expectation=exp.model_dump(mode="json"), label=exp.describe(), passed=False,
                             failing_count=0, message=message)


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _utc(ts: Any) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _type_matches(dt: Any, want: str) -> bool:
    t = pd.api.types
    is_bool = t.is_bool_dtype(dt)
    if want == "boolean":
        return bool(is_bool)
    if want == "integer":
        return bool(t.is_integer_dtype(dt) and not is_bool)
    if want == "float":
        return bool(t.is_float_dtype(dt))
    if want == "numeric":
        return bool(t.is_numeric_dtype(dt) and not is_bool)
    if want == "string":
        return bool(t.is_string_dtype(dt) and not t.is_object_dtype(dt)) or str(dt) in ("str", "string")
    if want == "datetime":
        return bool(t.is_datetime64_any_dtype(dt))
    return str(dt) == want


def _as_pandas(df: Any) -> pd.DataFrame:
    if isinstance(df, pd.DataFrame):
        return df
    to_pandas = getattr(df, "to_pandas", None)
    if callable(to_pandas):
        return to_pandas()
    raise ConfigError(f"Expected a pandas DataFrame or pyarrow Table to validate, got {type(df).__name__}.")


# ------------------------------------------------------------------------------------------- enforce
def enforce(result: ValidationResult | None, policy: Policy, table_name: str) -> None:
    """Apply ``policy`` to ``result``: raise (strict), warn (warn) or do nothing (off / passed).

    Raises
    ------
    ValidationError
        Under ``strict`` when any expectation failed. Its message lists the failing expectations with
        their failing-row counts and example rows; ``exc.results`` holds the :class:`ValidationResult`.
    """
    if policy not in POLICIES:
        raise ConfigError(f"Unknown quality policy {policy!r} for table {table_name!r}: use one of {POLICIES}.")
    if result is None or policy == "off" or result.passed:
        return
    failed = result.failed
    counts = f"{len(failed)} of {len(result.results)} expectations failed on {result.row_count} rows"
    if policy == "strict":
        raise ValidationError(
            f"Write to table {table_name!r} rejected (nothing was written): {counts}:\n"
            f"{result.summary()}\n"
            "Fix the data, relax the expectations with fe.set_expectations(...), or set the table's "
            "quality policy to 'warn' to write anyway and record the failures.",
            results=result,
        )
    warnings.warn(
        f"Table {table_name!r}: {counts} (policy 'warn': the write goes ahead):\n{result.summary()}",
        QualityWarning, stacklevel=2,
    )


__all__ = [
    "MAX_EXAMPLES",
    "POLICIES",
    "ExpectationResult",
    "Policy",
    "QualityWarning",
    "ValidationResult",
    "enforce",
    "validate",
]
