"""Parsing and validation of three-part names (``catalog.schema.table``).

A name may be given as ``table``, ``schema.table`` or ``catalog.schema.table``. Missing parts take
the defaults ``main`` (catalog) and ``default`` (schema), as in Unity Catalog, so ``houses``,
``default.houses`` and ``main.default.houses`` all name the same table. Each part must match
``[A-Za-z_][A-Za-z0-9_]*``; names are case-sensitive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from larder.errors import InvalidNameError

DEFAULT_CATALOG = "main"
DEFAULT_SCHEMA = "default"
_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    while len(parts) < 3:
        parts.insert(0, DEFAULT_SCHEMA if len(parts) == 1 else DEFAULT_CATALOG)
    return QualifiedName(*parts)


def validate_column_name(table: str, column: str) -> None:
    if not isinstance(column, str) or not column:
        raise InvalidNameError(f"Table {table!r}: column names must be non-empty strings, got {column!r}.")
