"""The :class:`SelectionReport` that :func:`larder.selection.select_features` returns."""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from larder.errors import TransformError
from larder.selection.methods import RANKERS

#: Score columns of :attr:`SelectionReport.scores`, per method.
SCORE_COLUMNS = {
    "variance": "variance",
    "correlation": "max_abs_corr",
    "mutual_info": "mutual_info",
    "importance": "importance",
    "rfe": "rfe",
}


def _clean(value: Any) -> Any:
    """JSON-friendly scalars: NaN -> None, numpy numbers -> Python numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@dataclass
class SelectionReport:
    """What :func:`~larder.selection.select_features` chose and why.

    Attributes
    ----------
    selected : list of str
        The chosen features, best first. Pass it straight to
        ``FeatureLookup(feature_names=report.selected)``.
    scores : pandas.DataFrame
        One row per input feature (index = feature name) with the score of every method that ran
        (``variance``, ``max_abs_corr``, ``mutual_info``, ``importance``, ``rfe``), the aggregated
        ``rank`` (mean of the rankers' ranks, 1 = best; NaN for filtered-out features),
        ``selected`` and ``dropped_by`` (why a feature was left out, empty if selected).
    task : {"regression", "classification"}
    methods : list of str
        The methods that ran, in order.
    k : int, float or None
        The requested number (or share) of features.
    dropped : dict of str to str
        Feature -> reason, for every feature not selected.
    notes : list of str
        Anything done to the data for scoring only (e.g. median imputation of nulls).
    """

    selected: list[str]
    scores: pd.DataFrame
    task: str
    methods: list[str]
    k: int | float | None = None
    dropped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (NaN becomes None)."""
        return {
            "selected": list(self.selected),
            "task": self.task,
            "methods": list(self.methods),
            "k": self.k,
            "dropped": dict(self.dropped),
            "notes": list(self.notes),
            "scores": {
                str(feature): {str(col): _clean(v) for col, v in row.items()}
                for feature, row in self.scores.iterrows()
            },
        }

    def feature_metadata(self) -> dict[str, dict[str, Any]]:
        """Per feature: ``selected``, ``rank``, ``dropped_by`` and the method ``scores``.

        This is the shape a catalog stores next to each feature of a table.
        """
        score_cols = [c for c in SCORE_COLUMNS.values() if c in self.scores.columns]
        out: dict[str, dict[str, Any]] = {}
        for feature, row in self.scores.iterrows():
            out[str(feature)] = {
                "selected": bool(row["selected"]),
                "rank": _clean(row["rank"]),
                "dropped_by": row["dropped_by"] or None,
                "scores": {c: _clean(row[c]) for c in score_cols},
            }
        return out

    def _chart_column(self, method: str | None) -> str:
        if method is None:
            ran = [m for m in self.methods if m in RANKERS]
            return "rank" if len(ran) > 1 else SCORE_COLUMNS[(ran or self.methods)[0]]
        if method == "rank":
            return "rank"
        if method not in SCORE_COLUMNS or SCORE_COLUMNS[method] not in self.scores.columns:
            raise TransformError(
                f"SelectionReport: no scores for method {method!r}; choose from "
                f"{['rank', *[m for m in self.methods if SCORE_COLUMNS[m] in self.scores.columns]]}."
            )
        return SCORE_COLUMNS[method]

    def _figure(self, column: str, top: int):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        data = self.scores[[column, "selected"]].dropna(subset=[column])
        if column == "rank":  # smaller is better: show 1/rank so longer bars are better
            data = data.assign(value=1.0 / data[column]).sort_values("value", ascending=False)
            xlabel = "1 / mean rank across rankers (longer is better)"
        else:
            data = data.assign(value=data[column]).sort_values("value", ascending=False)
            xlabel = column
        data = data.head(top).iloc[::-1]
        fig = Figure(figsize=(7.5, max(2.5, 0.32 * len(data) + 1.2)), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        colors = ["#2b7bba" if s else "#b8b8b8" for s in data["selected"]]
        ax.barh([str(i) for i in data.index], data["value"], color=colors)
        ax.set_xlabel(xlabel)
        ax.set_title(f"Feature selection ({self.task}): {len(self.selected)} selected (blue)")
        fig.tight_layout()
        return fig

    def save_chart(self, path: str | Path, *, method: str | None = None, top: int = 30) -> Path:
        """Save a horizontal bar chart of the scores as PNG (``.png``) or HTML (``.html``).

        Parameters
        ----------
        path : str or Path
            Output file; the suffix picks the format.
        method : str, optional
            Which scores to draw: a method name or ``"rank"``. Default: the aggregated rank when
            several rankers ran, else the one method's score.
        top : int, default 30
            Draw at most this many features (best first).

        Returns
        -------
        Path
            The written file. Selected features are blue, the others grey. The HTML file holds the
            chart (inline PNG) and the full score table.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".png", ".html", ".htm"):
            raise TransformError(f"SelectionReport.save_chart: use a .png or .html path, got {str(path)!r}.")
        fig = self._figure(self._chart_column(method), top)
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".png":
            fig.savefig(path, format="png")
            return path
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        img = base64.b64encode(buf.getvalue()).decode("ascii")
        table = self.scores.to_html(float_format=lambda v: f"{v:.4g}", na_rep="", border=0)
        listed = ", ".join(html.escape(f) for f in self.selected) or "(none)"
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Feature selection</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
            f"<h1>Feature selection ({html.escape(self.task)})</h1>"
            f"<p>Methods: {html.escape(', '.join(self.methods))}. Selected ({len(self.selected)}): {listed}</p>"
            f"<img alt='feature scores' src='data:image/png;base64,{img}'/>{table}</body></html>"
        )
        path.write_text(page, encoding="utf-8")
        return path
