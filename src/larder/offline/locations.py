"""How a feature table's storage is claimed and discarded without a crash window.

A table's data lives at ``<storage>/<catalog>/<schema>/<name>`` (:mod:`larder.offline.storage`).
Creating a table claims that location; when it is taken (by a leftover of a create that was killed
before it reached the catalog, or by a create running right now) the table goes to ``<name>~<8 hex>``
instead, so a leftover never blocks a name. On local disk the claim is an exclusive ``mkdir``, so two
concurrent creates never share a directory; on an object store (no directories, no atomic claim) a
location is taken when anything is stored under it, and two creates racing for the same empty one
are settled by the Delta log's conditional put (the loser fails before it wrote anything). The
catalog records the location actually used.

Dropping a table on local disk first renames its directory to ``<name>~dropped-<8 hex>`` (one atomic
rename), then deletes the catalog row, then removes the renamed directory. A process killed in
between leaves either a catalog row whose directory has a *tombstone* beside it (the drop is finished
by the next ``drop_table`` or ``create_table`` of that name) or a tombstone alone (removed by the next
create or drop of the name, or by ``larder doctor --repair``). A tombstone is never referenced by the
catalog, so removing one is always safe. Object stores cannot rename atomically: there the catalog
row goes first and the files after, and a kill in between leaves unreferenced files for
``larder doctor --repair``.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from larder.offline.storage import Location

TOMBSTONE = "~dropped-"
_SUFFIX = re.compile(r"~(?:dropped-)?[0-9a-f]{8}$")
_TOMBSTONE = re.compile(r"~dropped-[0-9a-f]{8}$")


def _named(location: Location, name: str) -> Location:
    parent, _, _ = location.uri.rstrip("/").rpartition("/")
    if location.is_local:
        return Location(str(Path(location.uri).with_name(name)), location.options)
    return Location(f"{parent}/{name}", location.options)


def basename(location: Location) -> str:
    return location.uri.rstrip("/").rpartition("/")[2] if not location.is_local else Path(location.uri).name


def claim(base: Location) -> Location:
    """A new, empty location for a table: ``base`` if free, else ``base~<hex>`` (see the module docstring)."""
    candidate = base
    for _ in range(100):
        if candidate.is_local:
            Path(candidate.uri).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.mkdir(candidate.uri)
                return candidate
            except FileExistsError:
                pass
        elif not candidate.has_files():
            return candidate
        candidate = _named(base, f"{basename(base)}~{uuid.uuid4().hex[:8]}")
    raise OSError(f"Cannot claim a location for {base.uri}: 100 candidates were taken.")  # pragma: no cover


def table_of(name: str) -> str:
    """The table-name part of a storage directory name (``houses~1a2b3c4d`` -> ``houses``)."""
    while (stripped := _SUFFIX.sub("", name)) != name:
        name = stripped
    return name


def is_tombstone(name: str) -> bool:
    return _TOMBSTONE.search(name) is not None


def tombstone(location: Location) -> Location | None:
    """Rename a local table directory aside as a tombstone (atomic); None if it does not exist, or on
    an object store (which cannot rename)."""
    if not location.is_local:
        return None
    target = Path(location.uri).with_name(f"{basename(location)}{TOMBSTONE}{uuid.uuid4().hex[:8]}")
    try:
        os.rename(location.uri, target)
    except FileNotFoundError:
        return None
    return Location(str(target), location.options)


def tombstones(location: Location) -> list[Location]:
    """The tombstones beside a local table location, of the same table name (none on object stores)."""
    if not location.is_local:
        return []
    directory = Path(location.uri).parent
    name = table_of(basename(location))
    if not directory.is_dir():
        return []
    return [Location(str(p), location.options) for p in sorted(directory.iterdir())
            if p.is_dir() and is_tombstone(p.name) and table_of(p.name) == name]


def drop_interrupted(location: Location) -> bool:
    """Whether a local table's directory was renamed aside by a drop killed before its catalog step."""
    return location.is_local and not Path(location.uri).exists() and bool(tombstones(location))


__all__ = ["TOMBSTONE", "basename", "claim", "drop_interrupted", "is_tombstone", "table_of", "tombstone",
           "tombstones"]
