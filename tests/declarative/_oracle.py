"""A brute-force evaluation of declarative features, written from the documented rules only.

For every query row it scans all events (a per-query scan: the thing the kernel must never do), so it
is only for small data. Any engine's :meth:`Engine.aggregate` must agree with it: this module is the
spec the DuckDB kernel and the Spark engine are tested against.

The rules (docs/declarative-features.md):

* the window at ``t`` ends at ``end = t - delay`` (rolling) or at the last boundary ``phase + j * slide
  <= t - delay`` (tumbling: ``slide = duration``, ``phase = offset``; sliding: ``phase = offset +
  duration``), starts at ``end - duration`` (or never for lifetime windows) and holds the events of the
  same entity (null equals null) with ``start <= ts < end``;
* a window ending before ``start_time``, or a query with a null time, has no value;
* peers (same entity and time) are ordered by value, nulls first, then NaN last among numbers;
* empty windows: 0 for count and approx_count_distinct, null otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

NAN_KEY = float("inf")


@dataclass(frozen=True)
class Rule:
    duration: int | None  # microseconds; None: lifetime
    delay: int = 0
    slide: int | None = None  # None: rolling
    phase: int = 0
    start: int | None = None

    def window(self, t: int) -> tuple[float, int]:
        eligible = t - self.delay
        if self.slide is None:
            end = eligible
        else:
            end = (eligible - self.phase) // self.slide * self.slide + self.phase
        start = -math.inf if self.duration is None else end - self.duration
        return start, end


def _order_key(ts: int, value: Any) -> tuple[Any, ...]:
    if value is None:
        return (ts, 0, 0)
    if isinstance(value, float) and math.isnan(value):
        return (ts, 1, NAN_KEY, 1)
    return (ts, 1, value, 0)


def _value_key(value: Any) -> tuple[Any, ...]:
    if isinstance(value, float) and math.isnan(value):
        return (1, 0)
    return (0, value)


def window_values(events: list[tuple[Any, int | None, Any]], key: Any, t: int | None, rule: Rule) -> list[Any] | None:
    """The input values in the window of (key, t), in window order; None when there is no window."""
    if t is None:
        return None
    start, end = rule.window(t)
    if rule.start is not None and end < rule.start:
        return None
    rows = [(ts, v) for k, ts, v in events if ts is not None and k == key and start <= ts < end]
    rows.sort(key=lambda r: _order_key(*r))
    return [v for _, v in rows]


def evaluate(op: str, values: list[Any] | None, *, n: int | None = None, percentile: float | None = None) -> Any:
    """The value of ``op`` over a window's values (None: no window)."""
    if values is None:
        return None
    present = [v for v in values if v is not None]
    if op == "count":
        return len(present)
    if op == "approx_count_distinct":
        return len({("nan",) if isinstance(v, float) and math.isnan(v) else v for v in present})
    if op == "first":
        return values[0] if values else None
    if op == "last":
        return values[-1] if values else None
    if op == "first_n":
        return values[:n] if values else None
    if op == "last_n":
        return values[-n:] if values else None  # type: ignore[operator]
    if not present:
        return None
    if op == "min":
        numbers = [v for v in present if not (isinstance(v, float) and math.isnan(v))]
        return min(numbers) if numbers else float("nan")
    if op == "max":
        return max(present, key=_value_key)
    if op == "approx_percentile":
        ordered = sorted(present, key=_value_key)
        return ordered[max(1, math.ceil(percentile * len(ordered))) - 1]  # type: ignore[operator]
    if op == "sum":
        if all(isinstance(v, int) for v in present):
            return sum(present)
        return math.fsum(present) if not any(math.isnan(v) for v in present) else float("nan")
    mean = math.fsum(present) / len(present)
    if op == "avg":
        return mean
    m2 = math.fsum((v - mean) ** 2 for v in present)
    if op in ("var_pop", "stddev_pop"):
        var = m2 / len(present)
    else:
        if len(present) < 2:
            return None
        var = m2 / (len(present) - 1)
    return math.sqrt(var) if op.startswith("stddev") else var


def close(expected: Any, got: Any, *, scale: float = 1.0) -> bool:
    """Equal, with floats compared to a tolerance relative to ``scale`` (the magnitude of the inputs)."""
    if isinstance(expected, list) or isinstance(got, list):
        return (isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got)
                and all(close(a, b, scale=scale) for a, b in zip(expected, got, strict=True)))
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(got, float) and math.isnan(got)
    if isinstance(expected, float) or isinstance(got, float):
        return abs(float(expected) - float(got)) <= 1e-9 * max(1.0, scale, abs(float(expected)))
    return bool(expected == got)
