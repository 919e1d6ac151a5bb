"""``larder quality``: HTML reports and CI checks of feature-table quality.

Mounted on the main CLI as ``app.add_typer(quality_app, name="quality")``. Exit codes: 0 success,
1 a check failed, 2 an error (bad name, missing table, unwritable file).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from larder.errors import LarderError

quality_app = typer.Typer(
    name="quality",
    help="Data-quality reports and checks of feature tables.\n\nExample: larder quality check houses",
    no_args_is_help=True,
    add_completion=False,
)
_out = Console()
_err = Console(stderr=True)

_ROOT_HELP = "larder root directory (default: $LARDER_ROOT or ./.larder)."


@contextmanager
def _client(root: Path | None) -> Iterator[Any]:
    from larder.client import FeatureEngineeringClient

    fe = FeatureEngineeringClient(root=root)
    try:
        yield fe
    finally:
        fe.close()


@quality_app.command("report")
def report_cmd(
    name: str = typer.Argument(..., help="Feature table name, e.g. main.default.houses."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output HTML file (default: NAME-quality.html)."),
    baseline_version: int | None = typer.Option(None, "--baseline-version",
                                                help="Delta version to compare against (default: previous)."),
    current_version: int | None = typer.Option(None, "--current-version",
                                               help="Delta version to report on (default: latest)."),
    root: Path | None = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Write a self-contained HTML quality report: drift histograms, null rates, expectation results.

    Example: larder quality report houses --out houses.html --baseline-version 0
    """
    from larder.quality.api import report_table

    target = out or Path(f"{name}-quality.html")
    try:
        with _client(root) as fe:
            path = report_table(fe, name, target, baseline_version=baseline_version,
                                current_version=current_version)
    except LarderError as exc:
        _err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc
    _out.print(f"Wrote quality report of {name} to {path}", highlight=False)


@quality_app.command("check")
def check_cmd(
    name: str = typer.Argument(..., help="Feature table name, e.g. main.default.houses."),
    version: int | None = typer.Option(None, "--version", help="Delta version to check (default: latest)."),
    baseline_version: int | None = typer.Option(
        None, "--baseline-version", help="Also fail when the data drifted from this version (verdict 'drift')."),
    root: Path | None = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Check a table's data against its expectations; exit 1 if any fails (for CI pipelines).

    Example: larder quality check houses --baseline-version 3
    """
    from larder.quality.api import compare_table, validate_table

    try:
        with _client(root) as fe:
            result = validate_table(fe, name, version=version)
            drift = (compare_table(fe, name, baseline_version, version)
                     if baseline_version is not None else None)
    except LarderError as exc:
        _err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc

    failed = False
    if result is None:
        _out.print(f"{name}: no expectations set; nothing to check.", highlight=False)
    else:
        table = Table(title=f"{name}: {result.row_count} rows")
        table.add_column("expectation")
        table.add_column("result")
        table.add_column("details", overflow="fold")
        for r in result.results:
            table.add_row(r.label, "[green]passed[/green]" if r.passed else "[red]FAILED[/red]",
                          "" if r.passed else r.message)
        _out.print(table)
        failed = not result.passed
    if drift is not None:
        drifted = [f for f in drift.features if f.verdict == "drift"]
        _out.print(f"drift from version {baseline_version}: {drift.verdict}"
                   + (f" ({', '.join(f.name for f in drifted)})" if drifted else ""), highlight=False)
        failed = failed or drift.verdict == "drift"
    if failed:
        _err.print(f"[red]{name}: quality check failed[/red]", markup=True)
        raise typer.Exit(1)
    _out.print(f"{name}: quality check passed", highlight=False)


__all__ = ["quality_app"]
