"""``larder plan DIR`` / ``larder apply DIR``: features as code (see larder.project)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.text import Text

from larder.cli._common import ROOT_OPTION, console, err_console, handle_errors

if TYPE_CHECKING:
    from larder.project import Plan

DIR_ARGUMENT = typer.Argument(..., help="The project: a directory of Python modules declaring features and tables.")
PROJECT_OPTION = typer.Option(None, "--project", help="The project's name, which owns what it creates "
                              "(default: the directory's name).")
JSON_OPTION = typer.Option(False, "--json", help="Print the plan as JSON.")
ADOPT_OPTION = typer.Option(False, "--adopt", help="Take over declared objects that exist but were made by hand "
                            "(by no project), instead of refusing them.")

_STYLE = {"create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red"), "unchanged": (" ", "dim")}


def _value(value: Any) -> str:
    return "-" if value is None else json.dumps(value, sort_keys=True, default=str)


def render(plan: Plan) -> None:
    """The plan as a rich table and a one-line summary."""
    out = Table(title=f"larder plan: project {plan.project!r}", title_justify="left")
    for col in ("", "action", "kind", "name", "file", "changes"):
        out.add_column(col, overflow="fold")
    for c in plan.changes:
        mark, style = _STYLE[c.action]
        details = c.summary or "\n".join(f"{f.field}: {_value(f.before)} -> {_value(f.after)}" for f in c.fields)
        out.add_row(Text(mark, style=style), Text(c.action, style=style), c.kind, Text(c.name), Text(c.file or "-"),
                    Text(details), style="dim" if c.action == "unchanged" else None)
    if plan.changes:
        console.print(out)
    s = plan.summary()
    if not plan.has_changes:
        console.print(f"No changes: the catalog matches the project ({s['unchanged']} object(s) unchanged).")
    else:
        console.print(f"Plan: {s['create']} to create, {s['update']} to update, {s['delete']} to delete, "
                      f"{s['unchanged']} unchanged.")


def _plan(directory: str, root: str | None, project: str | None, adopt: bool) -> tuple[Any, Plan]:
    from larder.project import ProjectService

    svc = ProjectService.open(root)
    try:
        return svc, svc.plan(directory, project, adopt=adopt)
    except BaseException:
        svc.close()
        raise


@handle_errors
def plan(
    directory: str = DIR_ARGUMENT,
    root: str = ROOT_OPTION,
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
    adopt: bool = ADOPT_OPTION,
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help="Exit 0 when there are no changes, 2 when there are (1 on errors)."),
) -> None:
    """Show what applying a features-as-code project would create, change or delete in the catalog.
    Nothing is written.

    Example: larder plan features/ --project shop --detailed-exitcode
    """
    svc, p = _plan(directory, root, project, adopt)
    svc.close()
    if as_json:
        typer.echo(json.dumps(p.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        render(p)
    if detailed_exitcode and p.has_changes:
        raise typer.Exit(2)


@handle_errors
def apply(
    directory: str = DIR_ARGUMENT,
    root: str = ROOT_OPTION,
    project: str = PROJECT_OPTION,
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Apply without asking for confirmation."),
    as_json: bool = JSON_OPTION,
    adopt: bool = ADOPT_OPTION,
) -> None:
    """Create, change and delete catalog objects so the catalog matches a features-as-code project.
    Shows the plan and asks for 'yes' first (unless --auto-approve). All-or-nothing: a bad definition
    means nothing is applied.

    Example: larder apply features/ --project shop --auto-approve
    """
    if as_json and not auto_approve:
        err_console.print("[bold red]error:[/] --json prints no prompt; add --auto-approve.", highlight=False)
        raise typer.Exit(1)
    svc, p = _plan(directory, root, project, adopt)
    try:
        if not as_json:
            render(p)
        if p.has_changes or p.stale:  # stale: ownership rows of objects already gone, forgotten unasked
            if p.has_changes and not auto_approve:
                answer = typer.prompt("Do you want to perform these actions? Only 'yes' will be accepted",
                                      default="", show_default=False)
                if answer.strip() != "yes":
                    err_console.print("Apply cancelled: nothing was changed.", highlight=False)
                    raise typer.Exit(1)
            svc.apply(p)
        if as_json:
            typer.echo(json.dumps({**p.to_dict(), "applied": True}, indent=2, sort_keys=True, default=str))
        elif p.has_changes:
            s = p.summary()
            console.print(f"Apply complete: {s['create']} created, {s['update']} updated, {s['delete']} deleted.")
    finally:
        svc.close()
