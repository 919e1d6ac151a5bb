"""``larder stream``: run a stream's consumer, list and show streams.

Mount on the main CLI with::

    app.add_typer(streams.stream_app, name="stream")
"""

from __future__ import annotations

import json

import typer
from rich.table import Table

from larder.cli._common import ROOT_OPTION, client, console, handle_errors

stream_app = typer.Typer(
    help="Streams: consume events into feature tables (exactly once) and online stores.\n\n"
    "Example: larder stream run main.default.clicks",
    no_args_is_help=True,
)


@stream_app.command("run")
@handle_errors
def run(
    name: str = typer.Argument(..., help="Stream to consume (created with fe.create_stream)."),
    batch_size: int = typer.Option(1000, "--batch-size", help="Events per Delta commit (at most)."),
    max_events: int = typer.Option(None, "--max-events", help="Stop after writing this many new events."),
    until_idle: float = typer.Option(None, "--until-idle", help="Stop after this many seconds without events."),
    root: str = ROOT_OPTION,
) -> None:
    """Consume a stream into its feature table and the table's online publications, until stopped
    (Ctrl-C or SIGTERM finish the current batch), --max-events or --until-idle. A killed consumer
    resumes where its last Delta commit ended: no event is lost or written twice.

    Example: larder stream run main.default.clicks --batch-size 5000 --until-idle 30
    """
    from rich.live import Live

    from larder.progress import progress_enabled
    from larder.streams.consumer import ConsumerStats, stop_on_signals

    quiet = not progress_enabled()

    def line(stats: ConsumerStats) -> str:
        rate = stats.events_read / stats.seconds if stats.seconds else 0.0
        return (f"{name}: {stats.events_written:,} events written ({stats.rows_written:,} rows) in "
                f"{stats.batches:,} batches, Delta version {stats.delta_version}, {rate:,.0f} events/s")

    with client(root) as fe, stop_on_signals() as stop:
        if quiet:
            stats = fe.run_stream(name, batch_size=batch_size, max_events=max_events, idle_timeout=until_idle,
                                  stop=stop)
        else:
            with Live(f"{name}: waiting for events", console=console, refresh_per_second=4) as live:
                stats = fe.run_stream(name, batch_size=batch_size, max_events=max_events, idle_timeout=until_idle,
                                      stop=stop, on_batch=lambda s: live.update(line(s)))
    console.print(line(stats) + f"; offsets {json.dumps(stats.offsets)}")


@stream_app.command("list")
@handle_errors
def list_(
    catalog_name: str = typer.Option("main", "--catalog", help="Catalog of the streams."),
    schema_name: str = typer.Option("default", "--schema", help="Schema of the streams."),
    root: str = ROOT_OPTION,
) -> None:
    """List the streams of a catalog and schema, with their destination tables and progress.

    Example: larder stream list --catalog main --schema default
    """
    with client(root) as fe:
        streams = fe.list_streams(catalog_name=catalog_name, schema_name=schema_name, max_results=10_000)
        progress = {s.name: fe.stream_progress(s.name) for s in streams}
    out = Table(title=f"{len(streams)} stream(s)")
    for col in ("stream", "source", "destination", "events", "Delta version", "offsets"):
        out.add_column(col, justify="right" if col in ("events", "Delta version") else "left",
                       no_wrap=col in ("stream", "destination"), overflow="fold")
    for s in streams:
        p = progress[s.name]
        out.add_row(s.name, s.platform, s.destination, f"{p['events']:,}",
                    "" if p["delta_version"] is None else str(p["delta_version"]), json.dumps(p["offsets"]))
    console.print(out)


@stream_app.command("show")
@handle_errors
def show(
    name: str = typer.Argument(..., help="Stream name."),
    root: str = ROOT_OPTION,
) -> None:
    """Print a stream's definition and its consumer's progress as JSON.

    Example: larder stream show main.default.clicks
    """
    with client(root) as fe:
        stream = fe.get_stream(name=name)
        progress = fe.stream_progress(name)
    console.print_json(json.dumps({"name": stream.name, "description": stream.description, **stream.to_dict(),
                                   "progress": progress}, default=str))
