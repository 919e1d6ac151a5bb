"""The lineage graph of the catalog: source table -> feature table / (declarative) feature -> feature
spec -> model version -> online store, as nodes and edges with a layered left-to-right layout.

Nodes come from the catalog's records, read set-based: logged models with their tables, features and
functions (:func:`larder.ui.queries.model_rows`), named feature specs, declarative features (their
source tables and the models recorded as using them) and active publications. A feature appears as a node only when a
spec or model uses it (a table's other features are on its page). Each model version's training
spec is a node of its own between its features and the model; a table published to a store and a
model that reads from one point at the store.

With a *focus* (a node id such as ``table:main.default.houses`` or ``model:price/3``), the graph is
what the focus depends on and what depends on it: its ancestors and descendants.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from larder.catalog.functions import FeatureSpecRecord
from larder.ui import queries
from larder.ui.schemas import LineageEdge, LineageGraph, LineageNode
from larder.ui.service import model_link, store_identity

#: Column of each node kind, left to right.
LAYERS = {"table": 1, "feature": 2, "function": 2, "spec": 3, "model": 4, "store": 5}
NODE_W, NODE_H, GAP_X, GAP_Y, PAD, WAYPOINT_H = 210.0, 34.0, 70.0, 12.0, 16.0, 6.0
#: Without a focus, larger graphs are not drawn (the page offers a focus instead).
MAX_NODES = 400


def table_node(full: str) -> str:
    return f"table:{full}"


def model_node(name: str | None, version: str | None, run_uri: str) -> str:
    return f"model:{name}/{version}" if name and version else f"model:{run_uri}"


class _Builder:
    def __init__(self, root: str) -> None:
        self.root = root
        self.nodes: dict[str, LineageNode] = {}
        self.edges: dict[tuple[str, str], LineageEdge] = {}

    def node(self, id: str, kind: str, label: str, *, detail: str | None = None, link: str | None = None) -> str:
        if id not in self.nodes:
            self.nodes[id] = LineageNode(id=id, kind=kind, label=label, detail=detail, link=link)  # type: ignore[arg-type]
        return id

    def edge(self, source: str, target: str, label: str | None = None) -> None:
        if (source, target) not in self.edges:
            self.edges[(source, target)] = LineageEdge(source=source, target=target, label=label)

    def table(self, full: str) -> str:
        return self.node(table_node(full), "table", full.split(".", 2)[-1], detail=full,
                         link=f"/tables/{quote(full)}")

    def feature(self, table: str, feature: str) -> str:
        t = self.table(table)
        f = self.node(f"feature:{table}:{feature}", "feature", feature, detail=f"{table}.{feature}",
                      link=f"/tables/{quote(table)}#col-{quote(feature)}")
        self.edge(t, f)
        return f

    def declarative(self, full: str, function: str | None = None) -> str:
        return self.node(f"dfeature:{full}", "feature", full.split(".", 2)[-1],
                         detail=f"declarative feature {full}" + (f": {function}" if function else ""),
                         link=f"/features/{quote(full)}" if full.count(".") == 2 else None)

    def function(self, name: str, version: str) -> str:
        return self.node(f"function:{name}@{version}", "function", name.split(".", 2)[-1],
                         detail=f"{name} version {version}", link=f"/functions/{quote(name)}#v-{quote(version)}")

    def store(self, store_type: str, store_name: str | None, spec: dict[str, Any]) -> str:
        key, label = store_identity(self.root, store_type, store_name, spec)
        return self.node(f"store:{key}", "store", label, detail=f"{store_type} online store",
                         link=f"/online#store-{key}")


def build_graph(browser: Any) -> tuple[dict[str, LineageNode], list[LineageEdge]]:
    """Every node and edge of the catalog's lineage."""
    from larder.training.spec import FeatureSpec

    b = _Builder(browser.fe.root)
    catalog = browser.catalog
    with catalog.session() as s:
        models = queries.model_rows(s)
        specs = s.execute(select(FeatureSpecRecord.full_name, FeatureSpecRecord.yaml)).all()
        declarative = _declarative(s)
    for m in models:
        mid = b.node(model_node(m.registered_name, m.registered_version, m.run_uri), "model",
                     f"{m.registered_name} v{m.registered_version}" if m.registered_name else m.run_uri,
                     detail=m.uri, link=model_link(m.registered_name, m.registered_version, m.run_id, m.artifact_path))
        sid = b.node(f"spec:model:{m.id}", "spec", "training spec",
                     detail=f"{len(m.features)} features, {len(m.functions)} functions of {m.uri}",
                     link=model_link(m.registered_name, m.registered_version, m.run_id, m.artifact_path) + "#spec")
        b.edge(sid, mid)
        for table, feature, _ in m.features:
            b.edge(b.feature(table, feature), sid)
        for fname, fversion, _ in m.functions:
            b.edge(b.function(fname, fversion), sid)
        for table, version, online in m.tables:
            if not any(t == table for t, _, _ in m.features):
                b.edge(b.table(table), sid, f"v{version}" if version is not None else None)
            if online:
                b.edge(mid, b.store(online.get("store_type", "?"), online.get("store_name"),
                                    online.get("store_spec") or {}), table.split(".", 2)[-1])
    spec_of_run = {m.run_uri: f"spec:model:{m.id}" for m in models}
    for full, text in specs:
        spec = FeatureSpec.from_yaml(text)
        sid = b.node(f"spec:{full}", "spec", full.split(".", 2)[-1], detail=f"feature spec {full}",
                     link=f"/specs/{quote(full)}")
        for step in spec.lookups:
            for feature in step.features:
                b.edge(b.feature(step.table, feature), sid)
        for fn in spec.functions:
            b.edge(b.function(fn.name, fn.version), sid)
        for fs in spec.features:
            b.edge(b.declarative(fs.name), sid)
    for full, source, function, run_uri in declarative:
        fid = b.declarative(full, function)
        if source:
            b.edge(b.table(source), fid)
        if run_uri in spec_of_run:
            b.edge(fid, spec_of_run[run_uri])
    for p in browser.fe.list_publications():
        b.edge(b.table(p.table_name), b.store(p.store_type, p.store_name, p.store_spec), f"v{p.delta_version}")
    return b.nodes, list(b.edges.values())


def _declarative(session: Any) -> list[tuple[str, str | None, str, str | None]]:
    """``(feature, source table, function text, run URI of a model using it or None)`` per declarative
    feature (one row per using model)."""
    from larder.catalog.declarative import DeclarativeFeatureRecord, FeatureModelUsage
    from larder.ui.service import function_text

    rows = session.execute(select(DeclarativeFeatureRecord.full_name, DeclarativeFeatureRecord.source_table,
                                  DeclarativeFeatureRecord.definition, FeatureModelUsage.run_uri)
                           .outerjoin(FeatureModelUsage, FeatureModelUsage.feature_name == DeclarativeFeatureRecord.full_name))
    return [(n, src, function_text((d or {}).get("function") or {}), run) for n, src, d, run in rows]


def _reachable(start: str, edges: list[LineageEdge], forward: bool) -> set[str]:
    nxt: dict[str, list[str]] = defaultdict(list)
    for e in edges:
        a, b = (e.source, e.target) if forward else (e.target, e.source)
        nxt[a].append(b)
    seen, todo = {start}, deque([start])
    while todo:
        for n in nxt[todo.popleft()]:
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def lineage(browser: Any, focus: str | None = None, *, max_nodes: int = MAX_NODES) -> LineageGraph:
    """The graph around ``focus`` (all of it without one, unless larger than ``max_nodes``), laid out."""
    nodes, edges = build_graph(browser)
    total = len(nodes)
    if focus is not None:
        if focus not in nodes and focus.startswith("table:"):
            full = focus[len("table:"):]
            browser._full_table_name(full)  # raises TableNotFoundError for an unknown table
            nodes[focus] = LineageNode(id=focus, kind="table", label=full.split(".", 2)[-1], detail=full,
                                       link=f"/tables/{quote(full)}")
        if focus not in nodes:
            from larder.errors import ConfigError

            raise ConfigError(f"The lineage graph has no node {focus!r}. Use an id such as "
                              "'table:main.default.houses' or 'model:<name>/<version>', as in /api/lineage.")
        keep = _reachable(focus, edges, True) | _reachable(focus, edges, False)
        nodes = {k: v for k, v in nodes.items() if k in keep}
        edges = [e for e in edges if e.source in keep and e.target in keep]
    elif total > max_nodes:
        return LineageGraph(focus=None, nodes=[], edges=[], total_nodes=total, truncated=True)
    placed, routed = layout(list(nodes.values()), edges)
    width = max((n.x for n in placed), default=0) + NODE_W + PAD
    height = max([n.y + NODE_H for n in placed] + [p[1] + WAYPOINT_H for e in routed for p in e.route],
                 default=0) + PAD
    return LineageGraph(focus=focus, nodes=placed, edges=routed, width=width, height=height, total_nodes=total,
                        truncated=False)


def layout(nodes: list[LineageNode], edges: list[LineageEdge]) -> tuple[list[LineageNode], list[LineageEdge]]:
    """Place the nodes in columns by kind and route the edges (a simple Sugiyama layout).

    An edge that skips columns gets a waypoint in each column it crosses, placed like a thin node, so
    it runs between boxes instead of behind them. Within a column, boxes and waypoints are ordered by
    the mean position of their neighbours (sweeps right, left, right), so edges cross little. Returns
    the nodes with ``x``/``y`` and the edges with their ``route`` (points left to right).
    """
    used = sorted({LAYERS[n.kind] for n in nodes})
    col_of = {layer: i for i, layer in enumerate(used)}
    column_of_node = {n.id: col_of[LAYERS[n.kind]] for n in nodes}
    columns: list[list[str]] = [[] for _ in used]
    for n in sorted(nodes, key=lambda n: (n.label.lower(), n.id)):
        columns[column_of_node[n.id]].append(n.id)
    chains: list[list[str]] = []  # per edge: node, waypoints..., node
    for i, e in enumerate(edges):
        a, b = column_of_node[e.source], column_of_node[e.target]
        if b < a:  # never happens with LAYERS' order, but keep the drawing left to right
            a, b = b, a
        chain = [e.source] + [f"~{i}~{c}" for c in range(a + 1, b)] + [e.target]
        for c, w in zip(range(a + 1, b), chain[1:-1], strict=True):
            columns[c].append(w)
        chains.append(chain)
    left: dict[str, list[str]] = defaultdict(list)
    right: dict[str, list[str]] = defaultdict(list)
    for chain in chains:
        for u, v in zip(chain, chain[1:], strict=False):
            right[u].append(v)
            left[v].append(u)
    pos = {item: float(i) for col in columns for i, item in enumerate(col)}

    def sweep(order: list[int], neighbours: dict[str, list[str]]) -> None:
        for c in order:
            def key(item: str) -> float:
                near = [pos[m] for m in neighbours[item] if m in pos]
                return sum(near) / len(near) if near else pos[item]

            columns[c].sort(key=key)
            for i, item in enumerate(columns[c]):
                pos[item] = float(i)

    n_cols = len(columns)
    sweep(list(range(1, n_cols)), left)
    sweep(list(range(n_cols - 2, -1, -1)), right)
    sweep(list(range(1, n_cols)), left)

    def size(item: str) -> float:
        return WAYPOINT_H if item.startswith("~") else NODE_H

    heights = [sum(size(i) + GAP_Y for i in col) - GAP_Y if col else 0.0 for col in columns]
    tallest = max(heights, default=0.0)
    mid: dict[str, float] = {}
    placed: dict[str, tuple[float, float]] = {}
    for c, col in enumerate(columns):
        y = PAD + (tallest - heights[c]) / 2
        x = PAD + c * (NODE_W + GAP_X)
        for item in col:
            placed[item] = (x, y)
            mid[item] = y + size(item) / 2
            y += size(item) + GAP_Y
    out_nodes = [n.model_copy(update={"x": placed[n.id][0], "y": placed[n.id][1]}) for n in nodes]
    out_edges = []
    for e, chain in zip(edges, chains, strict=True):
        route: list[list[float]] = [[placed[chain[0]][0] + NODE_W, mid[chain[0]]]]
        for w in chain[1:-1]:
            route += [[placed[w][0], mid[w]], [placed[w][0] + NODE_W, mid[w]]]
        route.append([placed[chain[-1]][0], mid[chain[-1]]])
        out_edges.append(e.model_copy(update={"route": route}))
    return out_nodes, out_edges


__all__ = ["LAYERS", "MAX_NODES", "build_graph", "layout", "lineage", "model_node", "table_node"]
