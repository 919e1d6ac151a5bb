"""Aggregation operators, :class:`AggregationFunction` and :class:`ColumnSelection`.

Names and signatures follow the Databricks Feature Engineering client: ``Sum(input="amount")``,
``FirstN(input="item", n=3)``, ``ApproxPercentile(percentile=0.9, input="latency")`` and so on, combined
with a window as ``AggregationFunction(Sum("amount"), RollingWindow(window_duration=timedelta(days=7)))``.

What each operator returns over the rows of one window (nulls in the input are skipped unless said
otherwise; see ``docs/declarative-features.md``):

==================== ============================================================= ==================
operator             value                                                         empty window
==================== ============================================================= ==================
``Count``            number of non-null values                                     0
``Sum``              sum (integers: exact int64; floats: float64)                  null
``Avg``              mean, float64                                                 null
``Min``/``Max``      smallest/largest value (any orderable type; NaN is largest)   null
``StddevPop``        population standard deviation (two-pass), float64             null
``StddevSamp``       sample standard deviation, null below two values              null
``VarPop``/``VarSamp`` the variances                                               null
``First``/``Last``   value of the earliest/latest row (a null value included)      null
``FirstN``/``LastN`` list of the first/last ``n`` values in time order, nulls kept null
``ApproxCountDistinct`` number of distinct non-null values (computed exactly)      0
``ApproxPercentile`` the value at rank ``max(1, ceil(p * n))`` of the sorted values null
                     (computed exactly, so within any ``accuracy``)
==================== ============================================================= ==================

Rows of one entity with the same timestamp are ordered by value (nulls first), so ``First``,
``Last``, ``FirstN`` and ``LastN`` are deterministic whatever order the source returns its rows in.
"""

from __future__ import annotations

from typing import Any

from larder.declarative.windows import TimeWindow
from larder.errors import FeatureDefinitionError

#: Operators whose input must be numeric.
NUMERIC = frozenset({"sum", "avg", "stddev_pop", "stddev_samp", "var_pop", "var_samp", "approx_percentile"})
#: Operators whose empty-window value is 0 rather than null.
COUNTING = frozenset({"count", "approx_count_distinct"})
#: Operators whose value is computed exactly although Databricks approximates them.
APPROXIMATE = frozenset({"approx_count_distinct", "approx_percentile"})


def _check_input(cls: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FeatureDefinitionError(f"{cls}: input must be a non-empty column name, got {value!r}.")
    return value.strip()


class Function:
    """Base class of the aggregation operators (one input column each)."""

    name = "function"

    def __init__(self, input: str) -> None:
        self._inputs = [_check_input(type(self).__name__, input)]

    @property
    def input(self) -> str:
        return self._inputs[0]

    @property
    def inputs(self) -> list[str]:
        return list(self._inputs)

    def extra_parameters(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"operator": self.name, "input": self.input}
        if self.extra_parameters():
            out["extra_parameters"] = self.extra_parameters()
        return out

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Function:
        op = d.get("operator")
        cls = OPERATORS.get(op)  # type: ignore[arg-type]
        if cls is None:
            raise FeatureDefinitionError(f"Unknown aggregation operator {op!r} in a stored feature definition.")
        return cls(input=d["input"], **(d.get("extra_parameters") or {}))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_dict() == other.to_dict()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.name, self.input, tuple(sorted(self.extra_parameters().items()))))

    def __str__(self) -> str:
        extra = self.extra_parameters()
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in extra.items())})" if extra else self.name

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.extra_parameters().items())
        return f"{type(self).__name__}(input={self.input!r}{extra})"


class Sum(Function):
    """Sum of the non-null values."""

    name = "sum"


class Count(Function):
    """Number of non-null values (0 for an empty window)."""

    name = "count"


class Avg(Function):
    """Mean of the non-null values."""

    name = "avg"


class Min(Function):
    """Smallest non-null value."""

    name = "min"


class Max(Function):
    """Largest non-null value."""

    name = "max"


class StddevPop(Function):
    """Population standard deviation."""

    name = "stddev_pop"


class StddevSamp(Function):
    """Sample standard deviation (null for fewer than two values)."""

    name = "stddev_samp"


class VarPop(Function):
    """Population variance."""

    name = "var_pop"


class VarSamp(Function):
    """Sample variance (null for fewer than two values)."""

    name = "var_samp"


class First(Function):
    """Value of the earliest row in the window (its value may be null)."""

    name = "first"


class Last(Function):
    """Value of the latest row in the window (its value may be null)."""

    name = "last"


class _OrderedN(Function):
    def __init__(self, input: str, n: int) -> None:
        super().__init__(input)
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise FeatureDefinitionError(f"{type(self).__name__}: n must be a positive integer, got {n!r}.")
        self._n = n

    @property
    def n(self) -> int:
        return self._n

    def extra_parameters(self) -> dict[str, Any]:
        return {"n": self._n}


class FirstN(_OrderedN):
    """The first ``n`` values of the window in time order (nulls included), as a list."""

    name = "first_n"


class LastN(_OrderedN):
    """The last ``n`` values of the window in time order (nulls included), as a list."""

    name = "last_n"


class ApproxCountDistinct(Function):
    """Number of distinct non-null values. larder counts them exactly (within any ``relativeSD``)."""

    name = "approx_count_distinct"

    def __init__(self, input: str, relativeSD: float | None = None) -> None:  # noqa: N803 (Databricks' name)
        super().__init__(input)
        if relativeSD is not None and (not isinstance(relativeSD, float) or not 0 < relativeSD < 1):
            raise FeatureDefinitionError(
                f"ApproxCountDistinct: relativeSD must be a float between 0 and 1, got {relativeSD!r}."
            )
        self._relative_sd = relativeSD

    @property
    def relativeSD(self) -> float | None:  # noqa: N802
        return self._relative_sd

    def extra_parameters(self) -> dict[str, Any]:
        return {"relativeSD": self._relative_sd} if self._relative_sd is not None else {}


class ApproxPercentile(Function):
    """The ``percentile`` (0..1) of the non-null values: the value at rank ``max(1, ceil(p * n))``.

    larder computes it exactly, which is within any ``accuracy``."""

    name = "approx_percentile"

    def __init__(self, percentile: float, input: str, accuracy: int | None = None) -> None:
        super().__init__(input)
        if not isinstance(percentile, float) or not 0.0 <= percentile <= 1.0:
            raise FeatureDefinitionError(
                f"ApproxPercentile: percentile must be a float between 0.0 and 1.0, got {percentile!r}."
            )
        if accuracy is not None and (not isinstance(accuracy, int) or isinstance(accuracy, bool) or accuracy <= 0):
            raise FeatureDefinitionError(f"ApproxPercentile: accuracy must be a positive integer, got {accuracy!r}.")
        self._percentile = percentile
        self._accuracy = accuracy

    @property
    def percentile(self) -> float:
        return self._percentile

    @property
    def accuracy(self) -> int | None:
        return self._accuracy

    def extra_parameters(self) -> dict[str, Any]:
        out: dict[str, Any] = {"percentile": self._percentile}
        if self._accuracy is not None:
            out["accuracy"] = self._accuracy
        return out

    def __repr__(self) -> str:
        acc = f", accuracy={self._accuracy!r}" if self._accuracy is not None else ""
        return f"ApproxPercentile(percentile={self._percentile!r}, input={self.input!r}{acc})"


#: Backward-compatible alias, as in Databricks.
PercentileApprox = ApproxPercentile

OPERATORS: dict[str, type[Function]] = {
    cls.name: cls for cls in (Sum, Count, Avg, Min, Max, StddevPop, StddevSamp, VarPop, VarSamp, First, Last,
                              FirstN, LastN, ApproxCountDistinct, ApproxPercentile)
}


class AggregationFunction:
    """An operator over a time window: ``AggregationFunction(Sum("amount"), RollingWindow(...))``."""

    def __init__(self, operator: Function, time_window: TimeWindow) -> None:
        if not isinstance(operator, Function):
            raise FeatureDefinitionError(
                f"AggregationFunction: operator must be an aggregation operator such as Sum('amount'), got "
                f"{type(operator).__name__} {operator!r}."
            )
        if not isinstance(time_window, TimeWindow):
            raise FeatureDefinitionError(
                f"AggregationFunction: time_window must be a RollingWindow, TumblingWindow or SlidingWindow, got "
                f"{type(time_window).__name__} {time_window!r}."
            )
        self._operator = operator
        self._time_window = time_window

    @property
    def function(self) -> Function:
        return self._operator

    @property
    def operator(self) -> Function:
        return self._operator

    @property
    def inputs(self) -> list[str]:
        return self._operator.inputs

    @property
    def time_window(self) -> TimeWindow:
        return self._time_window

    @property
    def name(self) -> str:
        return self._operator.name

    def to_dict(self) -> dict[str, Any]:
        return {"type": "aggregation", **self._operator.to_dict(), "time_window": self._time_window.to_dict()}

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, AggregationFunction) and other._operator == self._operator
                and other._time_window == self._time_window)

    def __hash__(self) -> int:
        return hash((self._operator, self._time_window))

    def __repr__(self) -> str:
        return f"AggregationFunction({self._operator!r}, {self._time_window!r})"


class ColumnSelection:
    """The latest value of one column of the source for the entity, as of the lookup time.

    Equivalent to ``Last(column)`` over a lifetime window: strictly before the lookup time, like every
    declarative feature (a row never sees itself)."""

    name = "column_selection"

    def __init__(self, column: str) -> None:
        if not isinstance(column, str) or not column.strip():
            raise FeatureDefinitionError(f"ColumnSelection: column must be a non-empty string, got {column!r}.")
        self._column = column.strip()

    @property
    def column(self) -> str:
        return self._column

    @property
    def inputs(self) -> list[str]:
        return [self._column]

    def input_names(self) -> list[str]:
        return [self._column]

    def default_feature_name(self) -> str:
        return f"{self._column.replace('.', '_')}_column_selection"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "column_selection", "column": self._column}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ColumnSelection) and other._column == self._column

    def __hash__(self) -> int:
        return hash(("column_selection", self._column))

    def __str__(self) -> str:
        return f"column_selection({self._column})"

    def __repr__(self) -> str:
        return f"ColumnSelection(column={self._column!r})"


def function_from_dict(d: dict[str, Any]) -> AggregationFunction | ColumnSelection:
    """Rebuild a stored function (``to_dict`` of either kind)."""
    if d.get("type") == "column_selection":
        return ColumnSelection(d["column"])
    if d.get("type") == "aggregation":
        return AggregationFunction(Function.from_dict(d), TimeWindow.from_dict(d["time_window"]))
    raise FeatureDefinitionError(f"Unknown feature function {d!r} in a stored feature definition.")


__all__ = [
    "APPROXIMATE", "COUNTING", "NUMERIC", "OPERATORS", "AggregationFunction", "ApproxCountDistinct",
    "ApproxPercentile", "Avg", "ColumnSelection", "Count", "First", "FirstN", "Function", "Last", "LastN", "Max",
    "Min", "PercentileApprox", "StddevPop", "StddevSamp", "Sum", "VarPop", "VarSamp", "function_from_dict",
]
