"""Loading a features-as-code project: import a directory's Python modules, collect what they declare.

A project is a directory tree of Python files. Every ``*.py`` file is imported (hidden directories
and ``__pycache__`` are skipped); when the directory has an ``__init__.py`` it is imported as a
package of its own name, so relative imports work, else its files are top-level modules, so
``from common import source`` works between them. What a project declares are the module-level
variables (not starting with ``_``) holding a :class:`~larder.declarative.Feature` or a
:class:`~larder.project.FeatureTableDefinition`; an object bound in several modules (imported from
one into another) counts once.

A feature is registered in the catalog and schema named by its module's ``LARDER_SCHEMA``
(``"catalog.schema"``), else in its ``DeltaTableSource``'s catalog and schema.

The imported modules are removed from ``sys.modules`` afterwards, so loading again sees the files as
they are then.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

from larder.declarative.feature import Feature
from larder.declarative.sources import DataFrameSource, DeltaTableSource
from larder.errors import InvalidNameError, LarderError, ProjectError
from larder.names import parse_name
from larder.project.definitions import FeatureTableDefinition

Kind = Literal["table", "feature"]


@dataclass(frozen=True)
class Declared:
    """One object a project declares: its kind, full name, the object, and where it is declared."""

    kind: Kind
    full_name: str
    obj: FeatureTableDefinition | Feature
    file: str  #: relative to the project directory, with ``/``
    variable: str

    @property
    def where(self) -> str:
        return f"{self.file} ({self.variable})"


@dataclass(frozen=True)
class LoadedProject:
    directory: Path
    objects: list[Declared]


def _module_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(p.startswith(".") or p == "__pycache__" for p in rel.parts[:-1]):
            continue
        yield path


def _module_name(root: Path, path: Path, package: str | None) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    bad = [p for p in parts if not p.isidentifier()]
    if bad:
        raise ProjectError(
            f"{path.relative_to(root).as_posix()}: {bad[0]!r} is not a Python module name, so the file cannot be "
            "imported. Rename it (letters, digits and underscores), or move it out of the project directory."
        )
    return ".".join([package, *parts] if package else parts)


def _inside(module: ModuleType, root: Path) -> bool:
    file = getattr(module, "__file__", None)
    if not file:
        paths = list(getattr(module, "__path__", []) or [])
        return bool(paths) and all(Path(p).resolve().is_relative_to(root) for p in paths)
    return Path(file).resolve().is_relative_to(root)


def _import_error(rel: str, exc: BaseException) -> ProjectError:
    if isinstance(exc, LarderError):
        return ProjectError(f"{rel}: {exc} (raised while importing the module; fix the definition there).")
    frames = [f for f in traceback.extract_tb(exc.__traceback__)]
    line = f", line {frames[-1].lineno}" if frames else ""
    return ProjectError(
        f"{rel}: importing the module failed{line}: {type(exc).__name__}: {exc}. Fix the module; `python {rel}` "
        "shows the whole traceback."
    )


def _feature_schema(module: ModuleType, feature: Feature, rel: str, variable: str) -> tuple[str, str]:
    if feature.has_full_name:
        return feature.catalog_name, feature.schema_name  # type: ignore[return-value]
    declared = getattr(module, "LARDER_SCHEMA", None)
    if declared is not None:
        parts = declared.split(".") if isinstance(declared, str) else []
        try:
            if len(parts) != 2:
                raise InvalidNameError("two parts expected")
            qn = parse_name(f"{declared}.x", kind="schema")
        except InvalidNameError:
            raise ProjectError(
                f"{rel}: LARDER_SCHEMA must be 'catalog.schema' (two identifiers), got {declared!r}."
            ) from None
        return qn.catalog, qn.schema
    if isinstance(feature.source, DeltaTableSource):
        return feature.source.catalog_name, feature.source.schema_name
    raise ProjectError(
        f"{rel}: feature {feature.name!r} ({variable}) reads a {type(feature.source).__name__}, so it has no catalog "
        "and schema of its own; set LARDER_SCHEMA = 'catalog.schema' in the module."
    )


def _collect(module: ModuleType, rel: str) -> Iterator[tuple[int, Declared]]:
    """``(id of the module's object, what it declares)`` per declaring variable."""
    for variable, value in vars(module).items():
        if variable.startswith("_"):
            continue
        if isinstance(value, FeatureTableDefinition):
            yield id(value), Declared("table", value.full_name, value, rel, variable)
        elif isinstance(value, Feature):
            if isinstance(value.source, DataFrameSource):
                raise ProjectError(
                    f"{rel}: feature {value.name!r} ({variable}) reads a DataFrameSource, which cannot be registered. "
                    "Declare the data as a FeatureTableDefinition and read it with a DeltaTableSource, or name the "
                    "variable with a leading underscore to keep it out of the project."
                )
            catalog, schema = _feature_schema(module, value, rel, variable)
            named = value if value.has_full_name else value._with_names(catalog, schema)
            yield id(value), Declared("feature", named.full_name, named, rel, variable)


def load_project(directory: str | os.PathLike[str]) -> LoadedProject:
    """Import every module of ``directory`` and collect the objects it declares (see the module doc)."""
    root = Path(directory).expanduser().resolve()
    if not root.is_dir():
        raise ProjectError(f"Project directory {str(directory)!r} does not exist or is not a directory.")
    package = root.name if (root / "__init__.py").exists() else None
    if package is not None and not package.isidentifier():
        raise ProjectError(
            f"Project directory {root.name!r} has an __init__.py, so it is imported as a package, but its name is not "
            "a Python identifier. Rename the directory, or remove its __init__.py."
        )
    files = list(_module_files(root))
    names = {path: _module_name(root, path, package) for path in files}
    for path, name in names.items():
        top = name.split(".")[0]
        known = sys.modules.get(top)
        if known is not None and not _inside(known, root):
            where = getattr(known, "__file__", None) or "a built-in module"
            raise ProjectError(
                f"{path.relative_to(root).as_posix()}: it would be imported as module {top!r}, which is already "
                f"imported from {where}. Rename the file or directory so it does not shadow it."
            )
    search = str(root.parent if package else root)
    before = set(sys.modules)
    sys.path.insert(0, search)
    objects: dict[tuple[Kind, str], Declared] = {}
    seen: dict[int, Declared] = {}
    try:
        importlib.invalidate_caches()
        modules: list[tuple[str, ModuleType]] = []
        for path, name in names.items():
            rel = path.relative_to(root).as_posix()
            try:
                modules.append((rel, importlib.import_module(name)))
            except ProjectError:
                raise
            except BaseException as exc:  # noqa: BLE001 - any error of the user's module
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                raise _import_error(rel, exc) from exc
        # dependencies first: an object imported from one module into another belongs to the first. The
        # import system moves a module to the end of sys.modules once it has run, so that order is the
        # order in which the modules finished.
        order = {n: i for i, n in enumerate(m for m in sys.modules if m not in before)}
        modules.sort(key=lambda item: order.get(item[1].__name__, len(order)))
        for rel, module in modules:
            for ident, item in _collect(module, rel):
                if ident in seen:
                    continue
                seen[ident] = item
                clash = objects.get((item.kind, item.full_name))
                if clash is not None:
                    what = "feature table" if item.kind == "table" else "feature"
                    raise ProjectError(
                        f"{item.where} and {clash.where} both declare {what} {item.full_name!r}. Give one of them "
                        "another name (name=...), or remove one."
                    )
                objects[(item.kind, item.full_name)] = item
    finally:
        try:
            sys.path.remove(search)
        except ValueError:  # pragma: no cover - a module removed it
            pass
        for name in [m for m in sys.modules if m not in before]:
            loaded = sys.modules.get(name)
            if loaded is not None and _inside(loaded, root):
                del sys.modules[name]
    ordered = sorted(objects.values(), key=lambda d: (d.kind != "table", d.full_name))
    return LoadedProject(root, ordered)


__all__ = ["Declared", "LoadedProject", "load_project"]
