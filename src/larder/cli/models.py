"""``larder models``: lineage of logged models and training/serving skew checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from larder.cli._common import ROOT_OPTION, client, console, handle_errors
from larder.errors import ModelError

models_app = typer.Typer(
    help="Models logged with log_model: lineage and skew checks.\n\nExample: larder models show price_model",
    no_args_is_help=True,
)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@models_app.command("show")
@handle_errors
def show(
    name: str = typer.Argument(..., help="Registered model name (or a runs:/ URI)."),
    version: str = typer.Option(None, "--version", "-v", help="Version number or alias (default: the latest)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    root: str = ROOT_OPTION,
) -> None:
    """Show a model's lineage: feature tables with Delta versions, features and functions.

    Example: larder models show price_model --version 3
    """
    with client(root) as fe:
        lin = fe.model_lineage(name, version)
    if as_json:
        console.print_json(json.dumps(lin.to_dict(), default=str))
        return
    title = f"{lin.registered_name} version {lin.registered_version}" if lin.registered_name else lin.run_uri
    console.print(f"[bold]{title}[/]  ({lin.flavor})")
    console.print(f"uri: {lin.uri}   run: {lin.run_id}   logged: {lin.logged_at:%Y-%m-%d %H:%M} UTC by {lin.owner}")
    console.print(f"inputs: {lin.input_columns}   label: {lin.labels}")
    console.print(f"tracking: {lin.tracking_uri}")
    tables = Table(title="feature tables")
    for col in ("table", "delta version", "online store at log time"):
        tables.add_column(col)
    for t in lin.tables:
        online = "not published"
        if t.online:
            online = f"{t.online.get('store_type')} {t.online.get('store_name') or ''} (v{t.online.get('delta_version')})"
        tables.add_row(t.name, _fmt(t.delta_version), online.strip())
    console.print(tables)
    feats = Table(title="features")
    for col in ("table", "feature", "output", "type", "default"):
        feats.add_column(col)
    for f in lin.features:
        feats.add_row(f.table, f.feature, f.output, f.dtype, _fmt(f.default))
    console.print(feats)
    if lin.functions:
        funcs = Table(title="functions")
        for col in ("function", "version", "inputs", "output"):
            funcs.add_column(col)
        for fn in lin.functions:
            funcs.add_row(fn.name, fn.version, ", ".join(f"{k}={v}" for k, v in fn.input_bindings.items()), fn.output)
        console.print(funcs)


def _read_keys(path: Path) -> Any:
    import pandas as pd

    if not path.exists():
        raise ModelError(f"Keys file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot read keys file {str(path)!r}: {exc}") from exc
    raise ModelError(f"Keys file {str(path)!r}: use a .csv or .parquet file.")


@models_app.command("check-skew")
@handle_errors
def check_skew(
    model_uri: str = typer.Argument(..., help="models:/name/version, models:/name@alias or runs:/..."),
    keys: Path = typer.Option(..., "--keys", help="CSV or Parquet file of keys (and request-time columns)."),
    tolerance: float = typer.Option(1e-9, "--tolerance", help="Relative and absolute tolerance for numbers."),
    limit: int = typer.Option(20, "--limit", help="Mismatches to print."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    root: str = ROOT_OPTION,
) -> None:
    """Compare online and offline features and predictions for the same keys; exit 1 on skew.

    Example: larder models check-skew models:/price_model/3 --keys keys.csv
    """
    frame = _read_keys(keys)
    with client(root) as fe:
        report = fe.check_skew(model_uri, frame, rtol=tolerance, atol=tolerance)
    if as_json:
        console.print_json(json.dumps(report.to_dict(), default=str))
    else:
        summary = Table(title=f"{report.rows} row(s) of {model_uri}")
        for col in ("column", "kind", "compared", "mismatched", "max abs diff"):
            summary.add_column(col, justify="right" if col in ("compared", "mismatched", "max abs diff") else "left")
        for r in report.summary.itertuples():
            style = "red" if r.mismatched else ""
            summary.add_row(str(r.column), str(r.kind), str(r.compared), str(r.mismatched), _fmt(r.max_abs_diff),
                            style=style)
        console.print(summary)
        if not report.ok:
            shown = report.mismatches.head(limit)
            detail = Table(title=f"mismatches (first {len(shown)} of {len(report.mismatches)})")
            for col in shown.columns:
                detail.add_column(str(col))
            for row in shown.itertuples(index=False):
                detail.add_row(*[_fmt(v) for v in row])
            console.print(detail)
        console.print(str(report), highlight=False)
    if not report.ok:
        raise typer.Exit(1)


__all__ = ["models_app"]
