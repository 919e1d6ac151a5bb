"""``larder materialize``: run the materializations that are due, once or in a loop."""

from __future__ import annotations

import datetime as dt
from typing import Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from larder.cli._common import ROOT_OPTION, client, console, err_console, handle_errors
from larder.errors import LarderError


def _at(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise LarderError(f"--at {value!r} is not an ISO time such as 2024-03-01T06:00:00+00:00.") from exc
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when


def _show(results: list[Any]) -> None:
    if not results:
        console.print("nothing is due")
        return
    table = Table(title="materialization runs")
    for col in ("feature", "run", "state", "versions", "rows read", "written", "s"):
        table.add_column(col, justify="right" if col in ("rows read", "written", "s") else "left",
                         no_wrap=col != "feature")
    for r in results:
        versions = f"{'' if r.from_version is None else r.from_version}->{r.to_version}"
        state = "[green]SUCCEEDED[/]" if r.state == "SUCCEEDED" else f"[red]{r.state}[/]"
        table.add_row(r.feature_name, r.kind, state, versions, "" if r.rows_read is None else f"{r.rows_read:,}",
                      "" if r.rows_written is None else f"{r.rows_written:,}", f"{r.duration_s:.1f}")
    console.print(table)
    for r in results:
        if r.state != "SUCCEEDED":
            err_console.print(f"[bold red]{r.feature_name} -> {r.table_name} failed:[/] {r.error}", highlight=False,
                              soft_wrap=True)


@handle_errors
def materialize(
    root: str = ROOT_OPTION,
    watch: bool = typer.Option(False, "--watch", help="Keep running what is due, every --interval seconds."),
    interval: float = typer.Option(60.0, "--interval", help="Seconds between checks with --watch."),
    iterations: int = typer.Option(None, "--iterations", help="With --watch: stop after this many checks."),
    at: str = typer.Option(None, "--at", help="Run what is due at this ISO time instead of now (once)."),
) -> None:
    """Run the materializations that are due (cron schedules that fired, source tables with new commits)
    once, or with --watch in a loop. Exit code 1 if a run failed.

    Example: larder materialize --watch --interval 300
    """
    from larder.declarative.schedule import run_due
    from larder.declarative.schedule import watch as watch_loop

    when = _at(at)
    if watch and when is not None:
        raise LarderError("--at runs once at the given time; it does not combine with --watch.")
    failed: list[Any] = []
    with client(root) as fe, Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("checking what is due", total=None)

        def progress(text: str) -> None:
            bar.update(task, description=f"materializing {text}")

        def report(results: list[Any]) -> None:
            bar.update(task, description="waiting")
            if results or not watch:
                _show(results)
            failed.extend(r for r in results if r.state != "SUCCEEDED")

        if watch:
            try:
                watch_loop(fe, interval=interval, iterations=iterations, on_results=report, progress=progress)
            except KeyboardInterrupt:  # pragma: no cover - interactive
                pass
        else:
            report(run_due(fe, now=when, progress=progress))
    if failed:
        raise typer.Exit(1)
