"""The ``larder`` command line. Each command parses, calls the library, prints with rich."""

from __future__ import annotations

import typer

from larder._version import __version__
from larder.cli import tables

app = typer.Typer(
    name="larder",
    help="larder: feature tables, training sets, online features and models that fetch their own.\n\n"
    "Example: larder tables list",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(tables.app, name="tables")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"larder {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """larder: feature tables, training sets, online features and models that fetch their own.

    Example: larder --version
    """


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
