"""The ``larder`` command line. Each command parses, calls the library, prints with rich."""

from __future__ import annotations

import typer

from larder._version import __version__
from larder.cli import catalog, doctor, materialize, online, project, streams, tables, ui
from larder.cli.models import models_app
from larder.quality.cli import quality_app

app = typer.Typer(
    name="larder",
    help="larder: feature tables, training sets, online features and models that fetch their own.\n\n"
    "Example: larder tables list",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(tables.app, name="tables")
app.add_typer(catalog.app, name="catalog")
app.add_typer(quality_app, name="quality")
app.add_typer(online.online_app, name="online")
app.add_typer(models_app, name="models")
app.add_typer(streams.stream_app, name="stream")
app.command("serve")(online.serve)
app.command("ui")(ui.ui)
app.command("doctor")(doctor.doctor)
app.command("plan")(project.plan)
app.command("apply")(project.apply)
app.command("materialize")(materialize.materialize)


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


@app.command("demo")
def demo(
    root: str = typer.Option(None, "--root", help="larder root (default: $LARDER_ROOT or ./.larder)."),
    online: str = typer.Option("sqlite", "--online", help="Online store: sqlite, dynamodb or redis."),
    endpoint_url: str = typer.Option(None, "--endpoint-url", help="DynamoDB endpoint or Redis URL."),
    region: str = typer.Option("us-east-1", "--region", help="AWS region for DynamoDB."),
) -> None:
    """Run the house-price pipeline end to end on embedded defaults.

    Example: larder demo --online dynamodb --endpoint-url http://127.0.0.1:5000
    """
    from larder.cli._common import err_console
    from larder.demo import run_demo
    from larder.errors import LarderError

    try:
        run_demo(root, online=online, endpoint_url=endpoint_url, region=region)
    except LarderError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
