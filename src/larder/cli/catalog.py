"""``larder catalog``: the catalog's schema revision, and upgrading it."""

from __future__ import annotations

import typer
from rich.table import Table

from larder.cli._common import ROOT_OPTION, console, handle_errors

app = typer.Typer(help="The metadata catalog's schema: status, upgrade.\n\nExample: larder catalog upgrade",
                  no_args_is_help=True)


def _url(root: str | None) -> str:
    from larder.context import Context

    return Context(root).catalog_url


@app.command("status")
@handle_errors
def status(root: str = ROOT_OPTION) -> None:
    """Show the catalog's schema revision and the upgrades this larder would apply.

    Example: larder catalog status --root /srv/larder
    """
    from larder.catalog.migrate import safe_url, status_at

    url = _url(root)
    st = status_at(url)
    out = Table(title=f"catalog {safe_url(url)}", show_header=False)
    out.add_row("schema", st.describe())
    out.add_row("this larder's head", st.head)
    out.add_row("to apply", ", ".join(st.pending) if st.needs_upgrade else "-")
    console.print(out)
    if st.needs_upgrade:
        console.print("Run [bold]larder catalog upgrade[/] to apply them.")


@app.command("upgrade")
@handle_errors
def upgrade(root: str = ROOT_OPTION) -> None:
    """Upgrade the catalog's schema to this larder's revision (creating it when empty). Safe to run
    again, and from several hosts at once: one upgrades, the others find it done.

    Example: larder catalog upgrade --root /srv/larder
    """
    from larder.catalog.migrate import safe_url, upgrade_at

    url = _url(root)
    before, after = upgrade_at(url)
    if before.state == "current":
        console.print(f"The catalog at {safe_url(url)} is already at revision {after.head}.")
        return
    applied = ", ".join(before.pending) if before.state != "empty" else "created at the head revision"
    console.print(f"Upgraded the catalog at {safe_url(url)}: {before.describe()} -> {after.describe()} "
                  f"({applied}).")
