"""The package's shape, checked from its source: no import cycle, online modules that fit in a head,
no private name shared between online modules, and imports between the online assembly and the stores
pointing one way (assembly -> stores)."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import larder

SRC = Path(larder.__file__).resolve().parent.parent
ONLINE = SRC / "larder" / "online"
MAX_LINES = 800


@functools.cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


@functools.cache
def modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is a package)}`` of every module of larder."""
    out = {}
    for path in sorted((SRC / "larder").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path, package)
    return out


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported: top-level statements, also inside module-level
    ``if``/``try``/``with`` and class bodies, not in functions nor under ``if TYPE_CHECKING``."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _type_checking(node.test):
                yield from module_level(node.body)
            yield from module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from module_level(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from module_level(node.body)


def every_import(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of a module, wherever it is (functions, ``TYPE_CHECKING`` blocks)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def imported(name: str, package: bool, node: ast.Import | ast.ImportFrom,
             known: dict[str, tuple[Path, bool]]) -> list[tuple[str, str | None]]:
    """``(module of larder, imported name or None)`` per name the statement imports from larder;
    ``from pkg import sub`` counts as importing module ``pkg.sub`` when that is a module."""
    if isinstance(node, ast.Import):
        return [(a.name, None) for a in node.names if a.name in known]
    if node.level:
        base = name.split(".") if package else name.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source not in known:
        return []
    out: list[tuple[str, str | None]] = []
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        out.append((sub, None) if sub in known else (source, alias.name))
    return out


@functools.cache
def import_graph(which: str = "module") -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, (path, package) in known.items():
        tree = parsed(path)
        nodes = module_level(tree.body) if which == "module" else every_import(tree)
        graph[name] = {m for node in nodes for m, _ in imported(name, package, node, known)} - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_larder() -> None:
    graph = import_graph("module")
    assert "larder.online.stores.sqlite" in graph  # the walk sees the package
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle at module level: {' -> '.join(cycle or [])}"


def test_no_import_cycle_in_online_at_any_level() -> None:
    """Inside ``online/`` not even a deferred (function-level) or type-only import closes a circle."""
    graph = {m: {d for d in deps if d.startswith("larder.online")}
             for m, deps in import_graph("any").items() if m.startswith("larder.online")}
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle in online/: {' -> '.join(cycle or [])}"


def test_stores_never_import_the_assembly() -> None:
    """``online/stores/`` knows nothing of feature specs: it imports no other part of ``online/``, nor
    the training, offline, catalog or model layers (at any level)."""
    bad = []
    for name, deps in import_graph("any").items():
        if not name.startswith("larder.online.stores"):
            continue
        for dep in deps:
            if dep.startswith("larder.") and not dep.startswith("larder.online.stores") and dep not in (
                    "larder.errors", "larder.names", "larder.redaction"):
                bad.append(f"{name} imports {dep}")
    assert not bad, bad


def test_online_modules_fit_in_a_head() -> None:
    sizes = {p.relative_to(ONLINE).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
             for p in ONLINE.rglob("*.py")}
    assert "stores/sqlite.py" in sizes
    assert not {p: n for p, n in sizes.items() if n > MAX_LINES}, f"modules over {MAX_LINES} lines"


def test_no_private_name_crosses_online_modules() -> None:
    """A name starting with ``_`` is private to its module: no module of ``online/`` imports one from
    another module of ``online/`` (at any level)."""
    known = modules()
    bad = []
    for name, (path, package) in known.items():
        if not name.startswith("larder.online"):
            continue
        for node in every_import(parsed(path)):
            for module, attr in imported(name, package, node, known):
                private = attr if attr is not None else module.rsplit(".", 1)[-1]
                if module.startswith("larder.online") and private.startswith("_") and not private.startswith("__"):
                    bad.append(f"{name} imports {private} from {module}")
    assert not bad, bad
