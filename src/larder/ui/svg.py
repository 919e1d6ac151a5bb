"""Small server-side SVG drawings for the web catalog: column histograms, baseline-versus-current
drift histograms and the lineage graph.

They are plain SVG markup with classes styled by the UI's stylesheet (no inline styles or scripts,
so the pages keep a strict Content-Security-Policy), with a ``<title>`` on every bar for its exact
value. Drawing a histogram takes microseconds, so a profile page with many columns stays fast
(matplotlib, used for the standalone HTML report, takes tens of milliseconds per figure).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from larder.quality.drift import FeatureDrift
from larder.quality.profiling import ColumnProfile
from larder.ui.schemas import LineageGraph

#: At most this many categories per categorical histogram.
MAX_CATEGORIES = 12


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    a = abs(v)
    if a != 0 and (a >= 1e6 or a < 1e-3):
        return f"{v:.3g}"
    return f"{v:,.4g}" if a < 1e4 else f"{v:,.0f}"


def _frame(width: float, height: float, label: str, body: list[str]) -> str:
    return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" '
            f'width="{width:g}" height="{height:g}" role="img" aria-label="{escape(label)}">'
            f"<title>{escape(label)}</title>{''.join(body)}</svg>")


def column_histogram(col: ColumnProfile, *, width: float = 260, height: float = 96) -> str | None:
    """The histogram of a profiled column (numeric bins or top categories), or None when the profile
    has neither."""
    top, bottom, left, right = 6.0, 18.0, 4.0, 4.0
    plot_w, plot_h = width - left - right, height - top - bottom
    body: list[str] = []
    if col.histogram is not None and col.histogram.counts:
        counts = col.histogram.counts
        edges = col.histogram.edges
        peak = max(counts) or 1
        bw = plot_w / len(counts)
        for i, c in enumerate(counts):
            h = plot_h * c / peak
            lo, hi = edges[i], edges[i + 1] if i + 1 < len(edges) else edges[-1]
            body.append(f'<rect class="bar" x="{left + i * bw + 0.5:.1f}" y="{top + plot_h - h:.1f}" '
                        f'width="{max(bw - 1, 0.5):.1f}" height="{h:.1f}"><title>[{_fmt(lo)}, {_fmt(hi)}): '
                        f"{c:,}</title></rect>")
        body.append(f'<text class="axis" x="{left}" y="{height - 4}">{escape(_fmt(edges[0]))}</text>')
        body.append(f'<text class="axis end" x="{width - right}" y="{height - 4}">{escape(_fmt(edges[-1]))}</text>')
        label = f"Histogram of {col.name}"
    elif col.top_values:
        values = col.top_values[:MAX_CATEGORIES]
        peak = max(v.count for v in values) or 1
        bw = plot_w / len(values)
        for i, v in enumerate(values):
            h = plot_h * v.count / peak
            body.append(f'<rect class="bar cat" x="{left + i * bw + 1:.1f}" y="{top + plot_h - h:.1f}" '
                        f'width="{max(bw - 2, 0.5):.1f}" height="{h:.1f}"><title>{escape(v.value)}: '
                        f"{v.count:,}</title></rect>")
            if bw >= 18:
                body.append(f'<text class="axis mid" x="{left + (i + 0.5) * bw:.1f}" y="{height - 4}">'
                            f"{escape(v.value[: max(int(bw / 6), 1)])}</text>")
        label = f"Most frequent values of {col.name}"
    else:
        return None
    return _frame(width, height, label, body)


def drift_histogram(f: FeatureDrift, baseline_label: str, current_label: str, *, width: float = 380,
                    height: float = 190) -> str | None:
    """Baseline (blue) and current (orange) distributions of one feature on shared bins."""
    p = f.plot
    if p is None or not p.baseline:
        return None
    top, bottom, left, right = 22.0, 30.0, 34.0, 8.0
    plot_w, plot_h = width - left - right, height - top - bottom
    n = min(len(p.baseline), len(p.current)) if p.edges is not None else min(len(p.labels), MAX_CATEGORIES)
    if n == 0:
        return None
    peak = max(max(p.baseline[:n], default=0), max(p.current[:n], default=0)) or 1.0
    bw = plot_w / n
    body = [f'<text class="title" x="{left}" y="14">{escape(f.name)} · {escape(f.verdict)}'
            + (f" · PSI {f.psi:.3f}" if f.psi is not None else "") + "</text>",
            f'<line class="grid" x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}"/>',
            f'<text class="axis end" x="{left - 3}" y="{top + 8}">{peak:.2f}</text>',
            f'<text class="axis end" x="{left - 3}" y="{top + plot_h}">0</text>']
    for i in range(n):
        label = (f"[{_fmt(p.edges[i])}, {_fmt(p.edges[i + 1])})" if p.edges is not None and i + 1 < len(p.edges)
                 else p.labels[i] if i < len(p.labels) else str(i))
        for cls, frac, dx, w in (("base", p.baseline[i], 0.0, 0.5), ("cur", p.current[i], 0.5, 0.5)):
            h = plot_h * frac / peak
            who = baseline_label if cls == "base" else current_label
            body.append(f'<rect class="bar {cls}" x="{left + (i + dx) * bw:.1f}" y="{top + plot_h - h:.1f}" '
                        f'width="{max(bw * w - 0.5, 0.5):.1f}" height="{h:.1f}"><title>{escape(who)} {escape(label)}: '
                        f"{frac:.1%}</title></rect>")
    if p.edges is not None:
        body.append(f'<text class="axis" x="{left}" y="{height - 14}">{escape(_fmt(p.edges[0]))}</text>')
        body.append(f'<text class="axis end" x="{width - right}" y="{height - 14}">{escape(_fmt(p.edges[-1]))}</text>')
    elif bw >= 16:
        for i in range(n):
            body.append(f'<text class="axis mid" x="{left + (i + 0.5) * bw:.1f}" y="{height - 14}">'
                        f"{escape(p.labels[i][: max(int(bw / 6), 1)])}</text>")
    body.append(f'<rect class="bar base" x="{left}" y="{height - 9}" width="8" height="8"/>'
                f'<text class="axis" x="{left + 11}" y="{height - 1}">{escape(baseline_label)}</text>'
                f'<rect class="bar cur" x="{left + plot_w / 2}" y="{height - 9}" width="8" height="8"/>'
                f'<text class="axis" x="{left + plot_w / 2 + 11}" y="{height - 1}">{escape(current_label)}</text>')
    return _frame(width, height, f"Distribution of {f.name}: {baseline_label} versus {current_label}", body)


def null_rates(points: Sequence[tuple[int, float]], *, width: float = 320, height: float = 90) -> str | None:
    """A small line of one column's null fraction across profiled versions (None when it was never
    null: a flat line at zero says nothing)."""
    if len(points) < 2 or not any(f > 0 for _, f in points):
        return None
    top, bottom, left, right = 8.0, 16.0, 34.0, 6.0
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(max(y for _, y in points), 0.01)
    v0, v1 = points[0][0], points[-1][0]
    span = (v1 - v0) or 1

    def xy(v: int, y: float) -> tuple[float, float]:
        return left + plot_w * (v - v0) / span, top + plot_h * (1 - y / peak)

    path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in
                    enumerate(xy(v, f) for v, f in points))
    body = [f'<path class="line" d="{path}"/>',
            *(f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="2.5"><title>version {v}: {f:.2%}</title></circle>'
              for (v, f), (x, y) in zip(points, (xy(v, f) for v, f in points), strict=True)),
            f'<text class="axis end" x="{left - 3}" y="{top + 7}">{peak:.0%}</text>',
            f'<text class="axis" x="{left + 4}" y="{top + 7}">null rate by version</text>',
            f'<text class="axis" x="{left}" y="{height - 3}">v{v0}</text>',
            f'<text class="axis end" x="{width - right}" y="{height - 3}">v{v1}</text>']
    return _frame(width, height, "Null fraction by version", body)


def lineage_svg(graph: LineageGraph, *, base: str = "") -> str:
    """The lineage graph: one clickable box per node (to its page), curved edges left to right."""
    from larder.ui.lineage import NODE_H, NODE_W

    at = {n.id: n for n in graph.nodes}
    body: list[str] = []
    for e in graph.edges:
        a, b = at.get(e.source), at.get(e.target)
        if a is None or b is None or len(e.route) < 2:
            continue
        (x, y), d = e.route[0], [f"M{e.route[0][0]:.1f},{e.route[0][1]:.1f}"]
        for i, (x2, y2) in enumerate(e.route[1:], start=1):
            if i % 2 == 0:  # across a waypoint's column: straight
                d.append(f"L{x2:.1f},{y2:.1f}")
            else:  # between columns: a smooth S
                m = (x + x2) / 2
                d.append(f"C{m:.1f},{y:.1f} {m:.1f},{y2:.1f} {x2:.1f},{y2:.1f}")
            x, y = x2, y2
        label = f"<title>{escape(a.label)} → {escape(b.label)}{': ' + escape(e.label) if e.label else ''}</title>"
        body.append(f'<path class="edge" data-source="{escape(e.source)}" data-target="{escape(e.target)}" '
                    f'd="{" ".join(d)}" marker-end="url(#arrow)">{label}</path>')
    for n in graph.nodes:
        cls = f"node kind-{n.kind}" + (" focus" if n.id == graph.focus else "")
        text = n.label if len(n.label) <= 28 else n.label[:27] + "…"
        inner = (f'<rect x="{n.x:.1f}" y="{n.y:.1f}" width="{NODE_W:g}" height="{NODE_H:g}" rx="6"/>'
                 f'<text class="kind" x="{n.x + 8:.1f}" y="{n.y + 12:.1f}">{escape(n.kind)}</text>'
                 f'<text class="label" x="{n.x + 8:.1f}" y="{n.y + 27:.1f}">{escape(text)}</text>'
                 f"<title>{escape(n.detail or n.label)}</title>")
        if n.link:
            body.append(f'<a class="{cls}" data-node="{escape(n.id)}" href="{escape(base + n.link)}">{inner}</a>')
        else:
            body.append(f'<g class="{cls}" data-node="{escape(n.id)}">{inner}</g>')
    w, h = max(graph.width, 100), max(graph.height, 60)
    arrow = ('<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path class="arrow" d="M0,0 L8,4 L0,8 z"/></marker></defs>')
    return (f'<svg class="lineage" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:g} {h:g}" width="{w:g}" '
            f'height="{h:g}" role="img" aria-label="Lineage graph">{arrow}{"".join(body)}</svg>')


__all__ = ["column_histogram", "drift_histogram", "lineage_svg", "null_rates"]
