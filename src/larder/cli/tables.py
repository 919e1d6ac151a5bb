"""``larder tables``: list, show, history and drop feature tables."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from larder.cli._common import ROOT_OPTION, client, console, handle_errors

app = typer.Typer(help="Feature tables: list, show, history, drop.\n\nExample: larder tables list", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_(
    pattern: str = typer.Argument(None, help="Glob on the table name, e.g. 'main.default.*'."),
    tag: list[str] = typer.Option(None, "--tag", help="Only tables with this tag (KEY or KEY=VALUE); repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    root: str = ROOT_OPTION,
) -> None:
    """List feature tables.

    Example: larder tables list 'main.default.*' --tag team=ml
    """
    tags: dict[str, str | None] = {}
    for t in tag or []:
        k, _, v = t.partition("=")
        tags[k] = v if _ else None
    with client(root) as fe:
        tables = fe.list_tables(pattern, tags or None)
    if as_json:
        console.print_json(json.dumps([
            {"name": t.name, "primary_keys": t.primary_keys, "timestamp_keys": t.timestamp_keys,
             "features": len(t.feature_names), "rows": t.row_count, "version": t.version, "tags": t.tags}
            for t in tables
        ]))
        return
    out = Table(title=f"{len(tables)} feature table(s)")
    for col in ("name", "keys", "timestamp", "features", "rows", "version", "updated (UTC)", "tags"):
        out.add_column(col, justify="right" if col in ("features", "rows", "version") else "left",
                       no_wrap=col == "name")
    for t in tables:
        out.add_row(t.name, ", ".join(t.entity_keys), ", ".join(t.timestamp_keys), str(len(t.feature_names)),
                    f"{t.row_count:,}", str(t.version), t.updated_at.strftime("%Y-%m-%d %H:%M"),
                    ", ".join(f"{k}={v}" for k, v in t.tags.items()))
    console.print(out)


@app.command("show")
@handle_errors
def show(name: str = typer.Argument(..., help="Table name."), root: str = ROOT_OPTION) -> None:
    """Show a table's metadata and features.

    Example: larder tables show main.default.houses
    """
    with client(root) as fe:
        t = fe.get_table(name)
    console.print(f"[bold]{t.name}[/]  version {t.version}, {t.row_count:,} rows")
    if t.description:
        console.print(t.description)
    console.print(f"primary keys: {t.primary_keys}   timestamp keys: {t.timestamp_keys}   "
                  f"partitions: {t.partition_columns}")
    console.print(f"owner: {t.owner}   created: {t.created_at:%Y-%m-%d %H:%M}   updated: {t.updated_at:%Y-%m-%d %H:%M}")
    console.print(f"tags: {t.tags}   path: {t.path}")
    out = Table(title="features")
    for col in ("name", "type", "key", "description"):
        out.add_column(col)
    for f in t.features:
        kind = "timestamp" if f.is_timestamp_key else "primary" if f.is_primary_key else ""
        out.add_row(f.name, f.dtype, kind, f.description or "")
    console.print(out)


@app.command("history")
@handle_errors
def history(name: str = typer.Argument(..., help="Table name."),
            limit: int = typer.Option(20, help="Most recent versions to show."),
            root: str = ROOT_OPTION) -> None:
    """Show a table's Delta versions.

    Example: larder tables history houses --limit 5
    """
    with client(root) as fe:
        h = fe.table_history(name, limit)
    out = Table(title=f"history of {name}")
    for col in ("version", "timestamp (UTC)", "operation", "inserted", "updated"):
        out.add_column(col)
    for r in h.itertuples():
        out.add_row(str(r.version), r.timestamp.strftime("%Y-%m-%d %H:%M:%S"), str(r.operation),
                    "" if r.rows_inserted is None else str(r.rows_inserted),
                    "" if r.rows_updated is None else str(r.rows_updated))
    console.print(out)


@app.command("drop")
@handle_errors
def drop(name: str = typer.Argument(..., help="Table name."),
         yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
         root: str = ROOT_OPTION) -> None:
    """Drop a feature table (data and catalog entry).

    Example: larder tables drop houses --yes
    """
    if not yes:
        typer.confirm(f"Drop feature table {name!r} and its data?", abort=True)
    with client(root) as fe:
        fe.drop_table(name)
    console.print(f"dropped {name}")
