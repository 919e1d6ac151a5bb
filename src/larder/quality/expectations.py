"""Expectations: declarative, JSON-serialisable rules a feature table's data must satisfy.

Each kind of expectation is a small pydantic model, discriminated by its ``kind`` field, so a list
of them round-trips through JSON (that is how the catalog stores them). Build them with the
constructors below rather than the classes::

    >>> from datetime import timedelta
    >>> rules = [
    ...     not_null("price", max_fraction=0.01),
    ...     in_range("price", min=0),
    ...     allowed_values("zone", ["RL", "RM", "FV"]),
    ...     unique("house_id"),
    ...     has_type("rooms", "integer"),
    ...     matches_pattern("postcode", r"[A-Z]{2}\\d{2}"),
    ...     row_count(min=1),
    ...     freshness("ts", max_age=timedelta(days=2)),
    ... ]
    >>> dump_expectations(rules)[1]
    {'kind': 'in_range', 'column': 'price', 'min': 0.0, 'max': None, 'strict_min': False, 'strict_max': False}

Custom checks are Python callables (``DataFrame -> boolean Series``, ``True`` where a row passes) and
cannot be serialised: :func:`custom` stores only the check's *name* in the expectation and keeps the
function in this process's registry (:func:`register_check`). A process that validates a table with a
custom expectation must register the function under the same name first (for example in the module
that defines the feature pipeline); an unregistered name fails validation with a message saying so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from larder.errors import ConfigError

#: A vectorised custom check: takes the DataFrame, returns a boolean Series (True = row passes).
CheckFn = Callable[[pd.DataFrame], "pd.Series[bool]"]

#: Logical type families accepted by :func:`has_type` (any other string is compared to ``str(dtype)``).
TYPE_FAMILIES = ("boolean", "datetime", "float", "integer", "numeric", "string")

_REGISTRY: dict[str, CheckFn] = {}


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def describe(self) -> str:
        """A short human-readable label, e.g. ``in_range(price, min=0)``."""
        raise NotImplementedError

    @property
    def columns(self) -> list[str]:
        """The columns this expectation reads (empty for table-level ones)."""
        col = getattr(self, "column", None)
        return [col] if col else []


class NotNull(_Base):
    """At most ``max_fraction`` of the column's values may be null (0.0: none may be)."""

    kind: Literal["not_null"] = "not_null"
    column: str
    max_fraction: float = Field(0.0, ge=0.0, le=1.0)

    def describe(self) -> str:
        extra = f", max_fraction={self.max_fraction:g}" if self.max_fraction else ""
        return f"not_null({self.column}{extra})"


class InRange(_Base):
    """Non-null values lie within ``[min, max]`` (bounds exclusive with ``strict_min``/``strict_max``)."""

    kind: Literal["in_range"] = "in_range"
    column: str
    min: float | None = None
    max: float | None = None
    strict_min: bool = False
    strict_max: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> InRange:
        if self.min is None and self.max is None:
            raise ValueError(f"in_range({self.column!r}) needs at least one of min= or max=.")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"in_range({self.column!r}): min={self.min} is greater than max={self.max}.")
        return self

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{'min>' if self.strict_min else 'min='}{self.min:g}")
        if self.max is not None:
            parts.append(f"{'max<' if self.strict_max else 'max='}{self.max:g}")
        return f"in_range({self.column}, {', '.join(parts)})"


class AllowedValues(_Base):
    """Non-null values are one of ``values``."""

    kind: Literal["allowed_values"] = "allowed_values"
    column: str
    values: list[str | bool | int | float]

    @field_validator("values")
    @classmethod
    def _non_empty(cls, v: list[Any]) -> list[Any]:
        if not v:
            raise ValueError("allowed_values needs at least one allowed value.")
        return v

    def describe(self) -> str:
        shown = ", ".join(repr(v) for v in self.values[:5]) + (", ..." if len(self.values) > 5 else "")
        return f"allowed_values({self.column}, [{shown}])"


class Unique(_Base):
    """No two rows share the same (non-null) value, or combination of values, of ``columns``."""

    kind: Literal["unique"] = "unique"
    unique_columns: list[str] = Field(min_length=1)

    @property
    def columns(self) -> list[str]:
        return list(self.unique_columns)

    def describe(self) -> str:
        return f"unique({', '.join(self.unique_columns)})"


class HasType(_Base):
    """The column's dtype is of a logical family (see :data:`TYPE_FAMILIES`) or exactly ``dtype``."""

    kind: Literal["dtype"] = "dtype"
    column: str
    dtype: str

    def describe(self) -> str:
        return f"dtype({self.column}, {self.dtype})"


class MatchesPattern(_Base):
    """Non-null values, as strings, fully match the regular expression ``pattern``."""

    kind: Literal["pattern"] = "pattern"
    column: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"pattern {v!r} is not a valid regular expression: {exc}") from exc
        return v

    def describe(self) -> str:
        return f"matches_pattern({self.column}, {self.pattern!r})"


class RowCount(_Base):
    """The number of rows written lies within ``[min, max]``."""

    kind: Literal["row_count"] = "row_count"
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> RowCount:
        if self.min is None and self.max is None:
            raise ValueError("row_count needs at least one of min= or max=.")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"row_count: min={self.min} is greater than max={self.max}.")
        return self

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in (("min", self.min), ("max", self.max)) if v is not None]
        return f"row_count({', '.join(parts)})"


class Freshness(_Base):
    """The newest timestamp in ``column`` is at most ``max_age`` old (naive timestamps are UTC)."""

    kind: Literal["freshness"] = "freshness"
    column: str
    max_age: timedelta

    @field_validator("max_age")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError(f"freshness max_age must be positive, got {v}.")
        return v

    def describe(self) -> str:
        return f"freshness({self.column}, max_age={format_timedelta(self.max_age)})"


class Custom(_Base):
    """A named, vectorised check registered in-process with :func:`register_check`."""

    kind: Literal["custom"] = "custom"
    name: str = Field(min_length=1)
    description: str = ""

    def describe(self) -> str:
        return f"custom({self.name})"


Expectation = Annotated[
    NotNull | InRange | AllowedValues | Unique | HasType | MatchesPattern | RowCount | Freshness | Custom,
    Field(discriminator="kind"),
]
_LIST = TypeAdapter(list[Expectation])


def format_timedelta(td: timedelta) -> str:
    """Compact duration: ``timedelta(days=1, hours=6)`` -> ``'1d6h'``; seconds below one are kept.

    >>> format_timedelta(timedelta(days=1, hours=6)), format_timedelta(timedelta(minutes=90))
    ('1d6h', '1h30m')
    """
    total = td.total_seconds()
    sign, total = ("-", -total) if total < 0 else ("", total)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if total >= size:
            k = int(total // size)
            parts.append(f"{k}{unit}")
            total -= k * size
    if total or not parts:
        parts.append(f"{total:g}s")
    return sign + "".join(parts)


# --------------------------------------------------------------------------------------- constructors
def not_null(column: str, *, max_fraction: float = 0.0) -> NotNull:
    """Expect ``column`` to have at most ``max_fraction`` null values (default: none)."""
    return _build(NotNull, column=column, max_fraction=max_fraction)


def in_range(
    column: str,
    *,
    min: float | None = None,  # noqa: A002 - mirrors the user-facing keyword
    max: float | None = None,  # noqa: A002
    strict_min: bool = False,
    strict_max: bool = False,
) -> InRange:
    """Expect non-null values of ``column`` within ``[min, max]`` (either bound may be omitted)."""
    return _build(InRange, column=column, min=min, max=max, strict_min=strict_min, strict_max=strict_max)


def allowed_values(column: str, values: Iterable[Any]) -> AllowedValues:
    """Expect every non-null value of ``column`` to be one of ``values``."""
    return _build(AllowedValues, column=column, values=list(values))


def unique(columns: str | Sequence[str]) -> Unique:
    """Expect no duplicates of ``columns`` (one name, or several for a composite key)."""
    cols = [columns] if isinstance(columns, str) else list(columns)
    return _build(Unique, unique_columns=cols)


def has_type(column: str, dtype: str) -> HasType:
    """Expect ``column``'s dtype to be of a family in :data:`TYPE_FAMILIES`, or exactly ``dtype``.

    >>> has_type("rooms", "integer").describe()
    'dtype(rooms, integer)'
    """
    return _build(HasType, column=column, dtype=dtype)


#: Alias matching the issue's wording.
dtype = has_type


def matches_pattern(column: str, pattern: str) -> MatchesPattern:
    """Expect every non-null value of ``column`` to fully match the regex ``pattern``."""
    return _build(MatchesPattern, column=column, pattern=pattern)


def row_count(*, min: int | None = None, max: int | None = None) -> RowCount:  # noqa: A002
    """Expect the number of rows written to lie within ``[min, max]``."""
    return _build(RowCount, min=min, max=max)


def freshness(column: str, *, max_age: timedelta) -> Freshness:
    """Expect the newest value of the timestamp ``column`` to be at most ``max_age`` old."""
    return _build(Freshness, column=column, max_age=max_age)


def custom(name: str, fn: CheckFn | None = None, *, description: str = "") -> Custom:
    """A custom vectorised check, registered in this process under ``name``.

    ``fn(df)`` returns a boolean Series aligned with ``df`` (``True`` where the row passes). With
    ``fn=None`` the expectation refers to a check registered elsewhere with :func:`register_check`.

    >>> exp = custom("area_positive", lambda df: df["area"] > 0)
    >>> exp.model_dump()
    {'kind': 'custom', 'name': 'area_positive', 'description': ''}
    """
    if fn is not None:
        register_check(name, fn)
    return _build(Custom, name=name, description=description)


def register_check(name: str, fn: CheckFn | None = None) -> Any:
    """Register ``fn`` as the custom check ``name`` in this process; usable as a decorator.

    >>> @register_check("no_negative_rooms")
    ... def _rooms(df):
    ...     return df["rooms"] >= 0
    """
    if fn is None:
        def decorator(f: CheckFn) -> CheckFn:
            register_check(name, f)
            return f

        return decorator
    if not callable(fn):
        raise ConfigError(f"Custom check {name!r}: fn must be callable (DataFrame -> boolean Series).")
    _REGISTRY[name] = fn
    return fn


def registered_check(name: str) -> CheckFn | None:
    """The function registered under ``name`` in this process, or ``None``."""
    return _REGISTRY.get(name)


def unregister_check(name: str) -> None:
    """Forget the custom check ``name`` (no error if it is not registered)."""
    _REGISTRY.pop(name, None)


# -------------------------------------------------------------------------------------- (de)serialise
def dump_expectations(expectations: Sequence[Any]) -> list[dict[str, Any]]:
    """Expectations as JSON-compatible dicts (what the catalog stores)."""
    return _LIST.dump_python(list(coerce_expectations(expectations)), mode="json")


def load_expectations(data: Sequence[dict[str, Any]]) -> list[Any]:
    """Expectations from the dicts :func:`dump_expectations` produced.

    Raises
    ------
    ConfigError
        If an entry has an unknown ``kind`` or invalid fields.
    """
    try:
        return list(_LIST.validate_python(list(data)))
    except PydanticValidationError as exc:
        raise ConfigError(f"Invalid expectation list: {_problems(exc)}.") from exc


def coerce_expectations(expectations: Sequence[Any]) -> list[Any]:
    """Accept expectation models or their dict form; return models. Raises ConfigError on bad input."""
    if isinstance(expectations, BaseModel | dict):
        expectations = [expectations]
    out: list[Any] = []
    for i, exp in enumerate(expectations):
        if isinstance(exp, _Base):
            out.append(exp)
        elif isinstance(exp, dict):
            out.extend(load_expectations([exp]))
        else:
            raise ConfigError(
                f"Expectation #{i} is a {type(exp).__name__}, not an expectation. Build expectations with "
                "larder.quality constructors such as not_null('col') or in_range('col', min=0)."
            )
    return out


def _build(cls: type[BaseModel], **fields: Any) -> Any:
    try:
        return cls(**fields)
    except PydanticValidationError as exc:
        raise ConfigError(f"Invalid {cls.__name__} expectation: {_problems(exc)}.") from exc


def _problems(exc: PydanticValidationError) -> str:
    return "; ".join(
        (f"{'.'.join(str(p) for p in err['loc'])}: " if err["loc"] else "") + err["msg"]
        for err in exc.errors()
    )


__all__ = [
    "TYPE_FAMILIES",
    "AllowedValues",
    "CheckFn",
    "Custom",
    "Expectation",
    "Freshness",
    "HasType",
    "InRange",
    "MatchesPattern",
    "NotNull",
    "RowCount",
    "Unique",
    "allowed_values",
    "coerce_expectations",
    "custom",
    "dtype",
    "dump_expectations",
    "freshness",
    "has_type",
    "in_range",
    "load_expectations",
    "matches_pattern",
    "not_null",
    "register_check",
    "registered_check",
    "row_count",
    "unique",
    "unregister_check",
]
