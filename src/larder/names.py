"""Parsing and validation of three-part names (``catalog.schema.table``).

A name may be given as ``table``, ``schema.table`` or ``catalog.schema.table``. Missing parts take
the defaults ``main`` (catalog) and ``default`` (schema), as in Unity Catalog, so ``houses``,
``default.houses`` and ``main.default.houses`` all name the same table. Each part must match
``[A-Za-z_][A-Za-z0-9_]*`` and be at most 128 characters long; names are case-sensitive.

Column names are free text with a few rules (:func:`validate_column_names`), because every engine
larder drives must store them and quote them: non-empty; at most 255 characters; no control
characters (newline, tab, NUL); no backtick (delta-rs cannot escape one in a merge condition); not
starting with ``__larder`` (larder's own columns); and unique ignoring case (Delta Lake, Spark and
DuckDB resolve column names case-insensitively).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from larder.errors import InvalidNameError

DEFAULT_CATALOG = "main"
DEFAULT_SCHEMA = "default"
_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Longest part of a table or function name (the catalog's columns hold 128 characters a part).
MAX_NAME_PART = 128
#: Longest column name (Unity Catalog's limit; the catalog's feature-name column holds it).
MAX_COLUMN_NAME = 255
#: Columns whose names start with this (in any case) are larder's own.
RESERVED_PREFIX = "__larder"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class QualifiedName:
    catalog: str
    schema: str
    name: str

    @property
    def full(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.name}"

    def __str__(self) -> str:
        return self.full


def parse_name(name: str, *, kind: str = "table") -> QualifiedName:
    """Parse and validate a one-, two- or three-part name.

    >>> parse_name("houses").full
    'main.default.houses'
    >>> parse_name("ml.prod.houses").schema
    'prod'
    """
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"A {kind} name must be a non-empty string, got {name!r}.")
    parts = name.split(".")
    if len(parts) > 3:
        raise InvalidNameError(
            f"Invalid {kind} name {name!r}: use 'name', 'schema.name' or 'catalog.schema.name' "
            f"(at most three dot-separated parts, got {len(parts)})."
        )
    for part in parts:
        if not _PART.match(part):
            raise InvalidNameError(
                f"Invalid {kind} name {name!r}: part {part!r} must start with a letter or underscore "
                "and contain only letters, digits and underscores ([A-Za-z_][A-Za-z0-9_]*)."
            )
        if len(part) > MAX_NAME_PART:
            raise InvalidNameError(
                f"Invalid {kind} name {name[:60]!r}...: part {part[:20]!r}... has {len(part)} characters; "
                f"each part of a name may have at most {MAX_NAME_PART}. Choose a shorter name."
            )
    while len(parts) < 3:
        parts.insert(0, DEFAULT_SCHEMA if len(parts) == 1 else DEFAULT_CATALOG)
    return QualifiedName(*parts)


def _column_problem(column: object) -> str | None:
    if not isinstance(column, str):
        return f"is a {type(column).__name__}, not a string"
    if not column:
        return "is empty"
    if len(column) > MAX_COLUMN_NAME:
        return f"has {len(column)} characters; at most {MAX_COLUMN_NAME} are allowed"
    bad = _CONTROL.search(column)
    if bad:
        return f"contains the control character {bad.group()!r}; remove it"
    if "`" in column:
        return "contains a backtick, which Delta Lake merges cannot quote; rename the column"
    if column.lower().startswith(RESERVED_PREFIX):
        return f"starts with {RESERVED_PREFIX!r}, which is reserved for larder's own columns; rename it"
    return None


def validate_column_names(table: str, columns: Sequence[object], *, existing: Sequence[str] = ()) -> None:
    """Check ``columns`` (a new table's, or a write's beside the table's ``existing`` columns) against
    the column-name rules; columns already in ``existing`` are not re-judged.

    Raises :class:`InvalidNameError` naming the first offending column and the fix.

    >>> validate_column_names("t", ["Id", "price"])
    >>> validate_column_names("t", ["Id", "ID"])
    Traceback (most recent call last):
    ...
    larder.errors.InvalidNameError: Table 't': columns 'Id' and 'ID' differ only by case; Delta Lake \
resolves names ignoring case, so rename one of them.
    """
    known = set(existing)
    for column in columns:
        problem = None if column in known else _column_problem(column)
        if problem:
            shown = repr(column) if not isinstance(column, str) or len(column) <= 60 else f"{column[:40]!r}..."
            raise InvalidNameError(f"Table {table!r}: column name {shown} {problem}.")
    seen: dict[str, str] = {c.lower(): c for c in existing}
    counted: set[object] = set()
    for column in columns:
        if column in counted:
            raise InvalidNameError(
                f"Table {table!r}: column {column!r} appears twice; give each column a distinct name."
            )
        counted.add(column)
        if column in known:
            continue
        assert isinstance(column, str)
        other = seen.get(column.lower())
        if other is not None:
            raise InvalidNameError(
                f"Table {table!r}: columns {other!r} and {column!r} differ only by case; Delta Lake "
                "resolves names ignoring case, so rename one of them."
            )
        seen[column.lower()] = column
