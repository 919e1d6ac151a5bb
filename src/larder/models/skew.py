"""Training/serving skew: the online and offline feature vectors of the same keys, compared.

:func:`check_skew` assembles a model's features for the same rows twice, online (the serving path: the
stores each table is read from, exactly as the loaded model resolves them) and offline (point-in-time
lookups on the latest Delta versions, as ``score_batch``), predicts with both, and compares column by
column. Rows without a timestamp lookup column are compared as of now (offline), which is what the
online store holds (the latest row per key).

Typical causes of a mismatch: data written offline but not republished, a publish with a filter or
fewer features, a store override pointing elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from larder.context import Context
from larder.errors import ModelError
from larder.models.bundle import ModelBundle, catalog_publications, load_bundle
from larder.models.pyfunc import OnlineModel
from larder.models.score import PREDICTION, offline_features, predict_frame, prediction_column
from larder.models.tracking import ensure_tracking

MISMATCH_COLUMNS = ["row", "column", "online", "offline", "abs_diff"]
SUMMARY_COLUMNS = ["column", "kind", "compared", "mismatched", "max_abs_diff"]


@dataclass
class SkewReport:
    """What :func:`check_skew` found.

    Attributes
    ----------
    mismatches:
        One row per (row, column) that differs: the row's position in ``keys_df``, its key values, the
        column, the online and offline values and their absolute difference (numbers only).
    summary:
        One row per compared column (features, then ``prediction``): values compared, mismatched and
        the largest absolute difference.
    """

    model_uri: str
    rows: int
    mismatches: pd.DataFrame
    summary: pd.DataFrame
    rtol: float
    atol: float
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every compared value agrees within the tolerance."""
        return self.mismatches.empty

    @property
    def mismatched_columns(self) -> list[str]:
        return [str(c) for c in self.summary.loc[self.summary["mismatched"] > 0, "column"]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_uri": self.model_uri, "rows": self.rows, "ok": self.ok, "rtol": self.rtol, "atol": self.atol,
            "sources": self.sources,
            "summary": _records(self.summary), "mismatches": _records(self.mismatches),
        }

    def __str__(self) -> str:
        if self.ok:
            return (f"No skew: {self.rows} row(s) of {self.model_uri}, {len(self.summary)} column(s) agree online "
                    f"and offline (rtol={self.rtol:g}, atol={self.atol:g}).")
        bad = self.summary[self.summary["mismatched"] > 0]
        parts = [f"{r.column} ({r.mismatched}/{r.compared})" for r in bad.itertuples()]
        return (f"Skew in {len(bad)} column(s) of {self.model_uri} over {self.rows} row(s): " + ", ".join(parts)
                + ". See report.mismatches.")

    def __repr__(self) -> str:
        return f"SkewReport(ok={self.ok}, rows={self.rows}, mismatched_columns={self.mismatched_columns})"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (pd.Timestamp, datetime)):
        return v.isoformat()
    if v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x) for x in v]
    return v


def _is_null(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)


def compare_columns(online: pd.Series, offline: pd.Series, *, rtol: float, atol: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(mismatch per row, absolute difference per row (NaN when not numeric or null))``. Two nulls
    agree; a null and a value do not; numbers agree within ``rtol``/``atol``; anything else must be
    equal (timestamps compared as instants)."""
    n = len(online)
    diff = np.full(n, np.nan)
    if _numeric(online) and _numeric(offline):
        a = online.to_numpy(dtype="float64", na_value=np.nan)
        b = offline.to_numpy(dtype="float64", na_value=np.nan)
        a_null, b_null = np.isnan(a), np.isnan(b)
        both = ~a_null & ~b_null
        close = np.zeros(n, dtype=bool)
        close[both] = np.isclose(a[both], b[both], rtol=rtol, atol=atol)
        diff[both] = np.abs(a[both] - b[both])
        return (a_null != b_null) | (both & ~close), diff
    bad = np.zeros(n, dtype=bool)
    for i, (x, y) in enumerate(zip(online.tolist(), offline.tolist(), strict=True)):
        xn, yn = _is_null(x), _is_null(y)
        if xn or yn:
            bad[i] = xn != yn
            continue
        if isinstance(x, (pd.Timestamp, datetime)) and isinstance(y, (pd.Timestamp, datetime)):
            bad[i] = _utc(x) != _utc(y)
            continue
        try:
            eq = x == y
            bad[i] = not bool(np.all(eq))
        except (TypeError, ValueError):
            bad[i] = True
    return bad, diff


def _utc(t: Any) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _with_times(bundle: ModelBundle, frame: pd.DataFrame) -> pd.DataFrame:
    """Add "now" for timestamp lookup keys the rows lack, so offline reads the latest rows."""
    missing = [s.timestamp_lookup_key for s in bundle.spec.lookups
               if s.timestamp_lookup_key and s.timestamp_lookup_key not in frame.columns]
    if not missing:
        return frame
    now = pd.Timestamp(datetime.now(UTC))
    return frame.assign(**{c: now for c in dict.fromkeys(missing)})


def _predictions(bundle: ModelBundle, frame: pd.DataFrame) -> pd.Series:
    preds = predict_frame(bundle, frame)
    try:
        return prediction_column(preds, frame.index, "double")
    except ModelError:  # labels of a classifier, say
        return prediction_column(preds, frame.index, "string")


def check_skew(ctx: Context, model_uri: str, keys_df: Any, *, rtol: float = 1e-9, atol: float = 1e-9
               ) -> SkewReport:
    """See ``FeatureEngineeringClient.check_skew``."""
    from larder.training.assemble import as_pandas

    if rtol < 0 or atol < 0:
        raise ModelError(f"rtol and atol must be >= 0, got rtol={rtol}, atol={atol}.")
    ensure_tracking(ctx)
    bundle = load_bundle(model_uri)
    frame = _with_times(bundle, as_pandas(keys_df, what="keys_df").reset_index(drop=True))
    tables = list(dict.fromkeys(s.table for s in bundle.spec.lookups))
    online_model = OnlineModel(bundle, publications=catalog_publications(ctx.catalog, ctx.root, tables),
                               config=ctx.config)
    try:
        if online_model.sources is None:
            online_model.assembler("null")  # raises the resolution error
        on = online_model.features(frame, missing_keys="null")
        sources = {t: f"{s.spec.type} ({s.origin})" for t, s in (online_model.sources or {}).items()}
    finally:
        online_model.close()
    off = offline_features(ctx, bundle, frame, override=False)
    on_pred = _predictions(bundle, on)
    off_pred = _predictions(bundle, off)
    keys = [c for c in bundle.spec.key_columns if c in frame.columns]

    columns = [c for c in bundle.spec.output_columns if c in on.columns and c in off.columns]
    pairs = [(c, "feature", on[c], off[c]) for c in columns] + [(PREDICTION, "prediction", on_pred, off_pred)]
    mismatch_rows: list[dict[str, Any]] = []
    summary_rows: list[dict[str, Any]] = []
    for col, kind, a, b in pairs:
        bad, diff = compare_columns(a.reset_index(drop=True), b.reset_index(drop=True), rtol=rtol, atol=atol)
        finite = diff[~np.isnan(diff)]
        summary_rows.append({"column": col, "kind": kind, "compared": len(a), "mismatched": int(bad.sum()),
                             "max_abs_diff": float(finite.max()) if len(finite) else np.nan})
        for i in np.flatnonzero(bad):
            row = {"row": int(i), **{k: frame[k].iloc[i] for k in keys}, "column": col,
                   "online": a.iloc[i], "offline": b.iloc[i], "abs_diff": diff[i]}
            mismatch_rows.append(row)
    mismatches = pd.DataFrame(mismatch_rows, columns=["row", *keys, *MISMATCH_COLUMNS[1:]])
    summary = pd.DataFrame(summary_rows, columns=SUMMARY_COLUMNS)
    return SkewReport(model_uri=model_uri, rows=len(frame), mismatches=mismatches, summary=summary, rtol=rtol,
                      atol=atol, sources=sources)


__all__ = ["SkewReport", "check_skew", "compare_columns"]
