"""Expectations on a Spark DataFrame, evaluated on the executors.

Each batch of rows (``mapInPandas``) is validated by :func:`larder.quality.validation.validate`, the
same pandera checks the DuckDB engine runs; only the per-batch results (counts, a few example rows,
the newest timestamp of a freshness column) reach the driver, where they are summed and judged by
:func:`larder.quality.validation.finish`, the function that judges a pandas frame. Two expectations
are about the whole frame rather than rows: ``row_count`` is judged on the total, and ``unique`` is
a Spark group-by (duplicates can sit in different batches). A ``custom`` check sees one batch at a
time, as any pandas UDF does; a check that judges the whole frame (returns one boolean) is judged
per batch and fails if any batch fails. Examples name the primary keys (row positions mean nothing
in a Spark DataFrame).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from larder.quality.expectations import (
    Custom,
    Freshness,
    HasType,
    RowCount,
    Unique,
    coerce_expectations,
    dump_expectations,
    registered_check,
)
from larder.quality.validation import (
    MAX_EXAMPLES,
    ExpectationResult,
    ValidationResult,
    _jsonable,
    _utc,
    finish,
)


def _q(c: str) -> str:
    return f"`{c}`"


def validate(df: Any, expectations: Sequence[Any], *, table: str | None = None, keys: Sequence[str] | None = None,
             now: datetime | None = None, max_examples: int = MAX_EXAMPLES) -> ValidationResult:
    """:func:`larder.quality.validation.validate` of a Spark DataFrame (see the module docstring)."""
    from pyspark.sql import types as T

    exps = coerce_expectations(expectations)
    now_utc = _utc(pd.Timestamp(now) if now is not None else pd.Timestamp(datetime.now(UTC)))
    key_cols = [k for k in (keys or []) if k in df.columns]
    per_batch = [(i, e) for i, e in enumerate(exps) if not isinstance(e, Unique | RowCount)]
    dumped = dump_expectations([e for _, e in per_batch])
    checks = {e.name: registered_check(e.name) for _, e in per_batch if isinstance(e, Custom)}
    checks = {k: v for k, v in checks.items() if v is not None}

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from larder.quality.expectations import register_check
        from larder.quality.validation import validate as validate_pandas

        for name, fn in checks.items():  # the driver's registered custom checks, in this worker
            register_check(name, fn)
        for batch in batches:
            if not len(batch):
                continue
            res = validate_pandas(batch, dumped, table=table, keys=key_cols, now=now_utc, max_examples=max_examples)
            yield pd.DataFrame({"n": [len(batch)], "result": [res.model_dump_json()]})

    schema = T.StructType([T.StructField("n", T.LongType()), T.StructField("result", T.StringType())])
    parts = df.mapInPandas(run, schema).collect() if per_batch else []
    n = sum(int(r["n"]) for r in parts) if per_batch else int(df.count())
    batch_results = [ValidationResult.model_validate_json(r["result"]).results for r in parts]
    results: list[ExpectationResult] = []
    j = 0
    for exp in exps:
        if isinstance(exp, RowCount):
            passed = (exp.min is None or n >= exp.min) and (exp.max is None or n <= exp.max)
            results.append(finish(exp, passed=passed, count=0, n=n, observed={}, examples=[], now=now_utc))
        elif isinstance(exp, Unique):
            results.append(_unique(df, exp, n, key_cols, max_examples, now_utc))
        else:
            results.append(_combine(exp, [b[j] for b in batch_results], n, max_examples, now_utc))
            j += 1
    return ValidationResult(table=table, row_count=n, results=results,
                            validated_at=now_utc.to_pydatetime().replace(tzinfo=None))


def _combine(exp: Any, parts: list[ExpectationResult], n: int, max_examples: int, now: pd.Timestamp
             ) -> ExpectationResult:
    """One expectation's result from its per-batch results."""
    early = next((p for p in parts if not p.passed and p.failing_count == 0), None)
    if early is not None:  # a missing column, an unusable type, a check that raised: the same in every batch
        return early
    examples = [{k: v for k, v in e.items() if k != "row"} for p in parts for e in p.examples][:max_examples]
    if isinstance(exp, Freshness):
        seen = [pd.Timestamp(p.observed["newest"]) for p in parts if p.observed.get("newest")]
        newest = max(seen).isoformat() if seen else None
        passed = newest is not None and now - _utc(newest) <= pd.Timedelta(exp.max_age)
        return finish(exp, passed=passed, count=0, n=n, observed={"newest": newest}, examples=[], now=now)
    if isinstance(exp, HasType):
        observed = {"dtype": parts[0].observed.get("dtype")} if parts else {}
        return finish(exp, passed=all(p.passed for p in parts), count=0, n=n, observed=observed, examples=[], now=now)
    passed = all(p.passed for p in parts)
    count = sum(p.failing_count for p in parts)
    if isinstance(exp, Custom) and not passed and not examples:  # a whole-batch False
        count = 0
    return finish(exp, passed=passed, count=count, n=n, observed={}, examples=examples, now=now)


def _unique(df: Any, exp: Unique, n: int, keys: list[str], max_examples: int, now: pd.Timestamp) -> ExpectationResult:
    """``unique`` over the whole frame: the rows whose (non-null) values occur more than once."""
    from pyspark.sql import functions as F

    cols = list(exp.unique_columns)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        from larder.quality.validation import _fail

        return _fail(exp, f"column(s) {missing} are missing from the data (columns: {list(df.columns)[:20]}); "
                          "add them or fix the expectation")
    present = df
    for c in cols:
        present = present.where(F.col(_q(c)).isNotNull())
    dupes = present.groupBy(*[_q(c) for c in cols]).count().where(F.col("count") > 1)
    count = int(dupes.agg(F.sum("count")).first()[0] or 0)
    examples = []
    if count:
        show = list(dict.fromkeys([*keys, *cols]))
        rows = present.join(dupes.select(*cols), on=cols, how="left_semi").select(*[_q(c) for c in show])
        examples = [{c: _jsonable(r[c]) for c in show} for r in rows.limit(max_examples).collect()]
    return finish(exp, passed=count == 0, count=count, n=n, observed={}, examples=examples, now=now)


__all__ = ["validate"]
