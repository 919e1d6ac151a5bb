"""``larder doctor``: check a deployment end to end (see :mod:`larder.doctor`)."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from larder.cli._common import ROOT_OPTION, console

_STYLE = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}


def doctor(
    root: str = ROOT_OPTION,
    repair: bool = typer.Option(False, "--repair", help="Fix what a crash left behind (orphan table data, "
                                "tombstones, interrupted drops, unregistered features, stale quality rows)."),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
    timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="Seconds each probe of a server (online "
                                  "store, MLflow) waits for an answer before it counts as not reachable."),
) -> None:
    """Check the configuration end to end: catalog reachable and migrated, storage writable, online stores
    and MLflow reachable, catalog and storage in agreement. Says what is wrong and how to fix it; exits
    with 1 when a check fails.

    Example: larder doctor --root /srv/larder --repair
    """
    from larder.doctor import diagnose

    checks = diagnose(root, repair=repair, timeout=timeout)
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        typer.echo(json.dumps([c.to_dict() for c in checks], indent=2))
    else:
        out = Table(title="larder doctor", show_lines=True)
        for col in ("", "area", "checked", "finding", "how to fix"):
            out.add_column(col, overflow="fold")
        for c in checks:
            out.add_row(_STYLE[c.status], c.area, c.target, c.detail, c.fix)
        console.print(out)
        warned = sum(c.status == "warn" for c in checks)
        if failed:
            console.print(f"[bold red]{len(failed)} check(s) failed[/], {warned} warning(s).")
        else:
            console.print(f"[green]All checks passed[/] ({warned} warning(s)).")
    if failed:
        raise typer.Exit(1)
