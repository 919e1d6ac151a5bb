"""A self-contained HTML quality report: drift, histograms, null rates and expectation results.

Plots are drawn with matplotlib (no pyplot, so no global backend is touched) as SVG and embedded as
``data:`` URIs, so the file needs nothing but itself: no scripts, no fonts, no network.

>>> import pandas as pd
>>> from larder.quality.drift import compare
>>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
>>> html = render_report(table="main.default.t", drift=compare(df, df))
>>> html.startswith("<!DOCTYPE html>") and "data:image/svg+xml;base64," in html
True
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

from larder.quality.drift import DriftReport, FeatureDrift
from larder.quality.profiling import Profile
from larder.quality.validation import ValidationResult

if TYPE_CHECKING:  # matplotlib is imported when drawing
    from matplotlib.figure import Figure

#: Colours of the baseline and current series in every plot (matplotlib's first two defaults).
BASELINE_COLOR = "#1f77b4"
CURRENT_COLOR = "#ff7f0e"
#: At most this many categories are drawn per categorical histogram.
MAX_PLOTTED_CATEGORIES = 15

_VERDICT_COLORS = {"ok": "#2e7d32", "warn": "#ed6c02", "drift": "#c62828", "skipped": "#757575",
                   "passed": "#2e7d32", "failed": "#c62828"}

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 24px; color: #222;
       background: #fff; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px;
     border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta { color: #555; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-size: 12px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.plot { border: 1px solid #eee; padding: 4px; }
.plot img { display: block; width: 380px; height: auto; }
.wide { display: inline-block; }
.wide img { width: 760px; }
.note { color: #666; font-size: 12px; }
"""


def render_report(
    *,
    table: str,
    drift: DriftReport | None = None,
    profiles: Sequence[tuple[int, Profile]] = (),
    validations: Sequence[tuple[int, ValidationResult]] = (),
    expectations: Sequence[Any] = (),
    policy: str | None = None,
    title: str | None = None,
) -> str:
    """The HTML text of a quality report.

    Parameters
    ----------
    table
        The table's full name (shown in the title).
    drift
        Baseline-versus-current comparison: summary table and one histogram per feature.
    profiles
        ``(version, profile)`` pairs: null rate of each feature across versions.
    validations
        ``(version, result)`` pairs: expectation results across versions and the latest run's details.
    expectations, policy
        The table's current expectations and policy, listed for reference.
    """
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    heading = title or f"Data quality report: {table}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{escape(heading)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(heading)}</h1>",
        f'<p class="meta">Generated {generated} by larder.</p>',
    ]
    if drift is not None:
        parts += _drift_section(drift)
    parts += _null_rate_section(profiles)
    parts += _expectation_section(validations, expectations, policy)
    parts.append("</body></html>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------- sections
def _drift_section(drift: DriftReport) -> list[str]:
    out = [
        "<h2>Drift</h2>",
        f"<p>Baseline: <b>{escape(drift.baseline_label)}</b> ({drift.baseline_rows:,} rows) &middot; "
        f"current: <b>{escape(drift.current_label)}</b> ({drift.current_rows:,} rows) &middot; "
        f"verdict: {_badge(drift.verdict)}</p>",
    ]
    if drift.missing_in_current:
        out.append(f"<p>Missing in current: {escape(', '.join(drift.missing_in_current))}</p>")
    if drift.new_in_current:
        out.append(f"<p>New in current (not compared): {escape(', '.join(drift.new_in_current))}</p>")
    rows = []
    for f in drift.features:
        stat = f.ks_statistic if f.kind == "numeric" else f.js_distance
        rows.append(
            "<tr>"
            f"<td>{escape(f.name)}</td><td>{f.kind}</td><td>{_badge(f.verdict)}</td>"
            f'<td class="num">{_num(f.psi)}</td>'
            f'<td class="num">{_num(stat)}</td>'
            f'<td class="num">{_num(f.chi2_pvalue)}</td>'
            f'<td class="num">{_pct(f.null_rate_baseline)} &rarr; {_pct(f.null_rate_current)}</td>'
            f"<td>{escape('; '.join(f.reasons))}</td></tr>"
        )
    th = drift.thresholds
    out += [
        "<table><tr><th>feature</th><th>kind</th><th>verdict</th><th>PSI</th>"
        "<th>KS (numeric) / JS distance (categorical)</th><th>chi-square p</th><th>null rate</th>"
        "<th>reasons</th></tr>",
        *rows,
        "</table>",
        f'<p class="note">Thresholds: PSI warn {th.psi_warn} / drift {th.psi_drift}; KS warn {th.ks_warn} / '
        f"drift {th.ks_drift}; JS warn {th.js_warn} / drift {th.js_drift}; null-rate change warn "
        f"{th.null_rate_warn} / drift {th.null_rate_drift}.</p>",
        "<h3>Baseline versus current distributions</h3>",
        f'<p class="note"><span style="color:{BASELINE_COLOR}">&#9632;</span> {escape(drift.baseline_label)} '
        f'&nbsp; <span style="color:{CURRENT_COLOR}">&#9632;</span> {escape(drift.current_label)}</p>',
        '<div class="grid">',
    ]
    for f in drift.features:
        if f.plot is not None:
            out.append(_img(_histogram_svg(f, drift), f"Histogram of {f.name}: baseline versus current"))
    out.append("</div>")
    return out


def _null_rate_section(profiles: Sequence[tuple[int, Profile]]) -> list[str]:
    out = ["<h2>Null rates across versions</h2>"]
    if not profiles:
        return out + ['<p class="note">No profiles stored: profiling on write was off or nothing was written.</p>']
    out.append(_img(_null_rate_svg(profiles), "Null rate of each feature by Delta version", wide=True))
    latest_v, latest = profiles[-1]
    rows = []
    for c in latest.columns:
        rows.append(
            f"<tr><td>{escape(c.name)}</td><td>{escape(c.kind)}</td><td class='num'>{c.count:,}</td>"
            f"<td class='num'>{_pct(c.null_fraction)}</td><td class='num'>{'' if c.distinct is None else f'{c.distinct:,}'}</td>"
            f"<td class='num'>{_num(c.mean)}</td><td class='num'>{_num(c.std)}</td>"
            f"<td class='num'>{_num(c.min)}</td><td class='num'>{_num(c.max)}</td></tr>"
        )
    sample = f", sampled {latest.profiled_rows:,} of {latest.row_count:,} rows" if latest.sampled else ""
    out += [
        f"<h3>Profile of version {latest_v}{sample}</h3>",
        "<table><tr><th>column</th><th>kind</th><th>count</th><th>nulls</th><th>distinct</th><th>mean</th>"
        "<th>std</th><th>min</th><th>max</th></tr>",
        *rows,
        "</table>",
    ]
    return out


def _expectation_section(validations: Sequence[tuple[int, ValidationResult]], expectations: Sequence[Any],
                         policy: str | None) -> list[str]:
    out = ["<h2>Expectations</h2>"]
    if expectations:
        listed = ", ".join(escape(e.describe()) for e in expectations)
        out.append(f"<p>Policy <b>{escape(policy or '')}</b>; expectations: {listed}</p>")
    if not validations:
        return out + ['<p class="note">No validation runs stored.</p>']
    out.append(_img(_validation_svg(validations), "Failed expectations by Delta version", wide=True))
    labels = list(dict.fromkeys(r.label for _, v in validations for r in v.results))
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    rows = []
    for version, v in validations:
        by = {r.label: r for r in v.results}
        cells = []
        for label in labels:
            r = by.get(label)
            if r is None:
                cells.append("<td></td>")
            else:
                cells.append(f"<td>{_badge('passed' if r.passed else 'failed')}"
                             f"{'' if r.passed or not r.failing_count else f' {r.failing_count:,}'}</td>")
        rows.append(f"<tr><td class='num'>{version}</td><td class='num'>{v.row_count:,}</td>{''.join(cells)}</tr>")
    out += ["<table><tr><th>version</th><th>rows</th>" + head + "</tr>", *rows, "</table>"]
    last_v, last = validations[-1]
    details = "".join(
        f"<tr><td>{escape(r.label)}</td><td>{_badge('passed' if r.passed else 'failed')}</td>"
        f"<td>{escape(r.message)}</td></tr>" for r in last.results
    )
    out += [f"<h3>Latest run (version {last_v})</h3>",
            "<table><tr><th>expectation</th><th>result</th><th>details</th></tr>", details, "</table>"]
    return out


# ---------------------------------------------------------------------------------------------- plots
def _histogram_svg(f: FeatureDrift, drift: DriftReport) -> str:
    assert f.plot is not None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 2.8))
    ax = fig.add_subplot()
    p = f.plot
    if p.edges is not None:
        edges = p.edges
        widths = [edges[i + 1] - edges[i] for i in range(len(edges) - 1)]
        ax.bar(edges[:-1], p.baseline, width=widths, align="edge", color=BASELINE_COLOR, alpha=0.55,
               label=drift.baseline_label)
        ax.bar(edges[:-1], p.current, width=widths, align="edge", color=CURRENT_COLOR, alpha=0.55,
               label=drift.current_label)
    else:
        k = min(len(p.labels), MAX_PLOTTED_CATEGORIES)
        xs = list(range(k))
        ax.bar([x - 0.2 for x in xs], p.baseline[:k], width=0.4, color=BASELINE_COLOR, label=drift.baseline_label)
        ax.bar([x + 0.2 for x in xs], p.current[:k], width=0.4, color=CURRENT_COLOR, label=drift.current_label)
        ax.set_xticks(xs)
        ax.set_xticklabels([lab[:12] for lab in p.labels[:k]], rotation=45, ha="right", fontsize=7)
    metric = f"PSI {f.psi:.3f}" if f.psi is not None else ""
    ax.set_title(f"{f.name} · {f.verdict}" + (f" · {metric}" if metric else ""), fontsize=9)
    ax.set_ylabel("fraction", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.13, right=0.97, top=0.9, bottom=0.2 if p.edges is None else 0.13)
    return _svg(fig)


def _null_rate_svg(profiles: Sequence[tuple[int, Profile]]) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.2, 3.2))
    ax = fig.add_subplot()
    versions = [v for v, _ in profiles]
    names = list(dict.fromkeys(c.name for _, p in profiles for c in p.columns))
    for name in names:
        ys = []
        for _, p in profiles:
            col = next((c for c in p.columns if c.name == name), None)
            ys.append(float("nan") if col is None else col.null_fraction)
        ax.plot(versions, ys, marker="o", markersize=3, linewidth=1.2, label=name)
    ax.set_xlabel("Delta version", fontsize=8)
    ax.set_ylabel("null fraction", fontsize=8)
    ax.set_xticks(versions)
    ax.tick_params(labelsize=7)
    ax.set_ylim(bottom=0)
    if len(names) <= 20:
        ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Null rate by version", fontsize=9)
    fig.subplots_adjust(left=0.07, right=0.8, top=0.9, bottom=0.15)
    return _svg(fig)


def _validation_svg(validations: Sequence[tuple[int, ValidationResult]]) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.2, 2.6))
    ax = fig.add_subplot()
    versions = [v for v, _ in validations]
    passed = [sum(r.passed for r in res.results) for _, res in validations]
    failed = [len(res.results) - p for (_, res), p in zip(validations, passed, strict=True)]
    ax.bar(versions, passed, color=_VERDICT_COLORS["passed"], label="passed")
    ax.bar(versions, failed, bottom=passed, color=_VERDICT_COLORS["failed"], label="failed")
    ax.set_xlabel("Delta version", fontsize=8)
    ax.set_ylabel("expectations", fontsize=8)
    ax.set_xticks(versions)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Expectation results by version", fontsize=9)
    fig.subplots_adjust(left=0.07, right=0.85, top=0.88, bottom=0.18)
    return _svg(fig)


def _svg(fig: Figure) -> str:
    import matplotlib

    buf = io.BytesIO()
    # text stays text (drawn with the browser's sans-serif font): smaller and faster than glyph paths
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str, *, wide: bool = False) -> str:
    cls = "plot wide" if wide else "plot"
    return f'<div class="{cls}"><img alt="{escape(alt)}" src="data:image/svg+xml;base64,{b64}"></div>'


def _badge(verdict: str) -> str:
    color = _VERDICT_COLORS.get(verdict, "#757575")
    return f'<span class="badge" style="background:{color}">{escape(verdict)}</span>'


def _num(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return escape(v)
    return f"{v:.4g}"


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.2f}%"


__all__ = ["BASELINE_COLOR", "CURRENT_COLOR", "MAX_PLOTTED_CATEGORIES", "render_report"]
