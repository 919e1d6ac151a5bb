"""``larder online``: publish feature tables to online stores, list and drop publications; and
``larder serve``, the feature server.

Mount on the main CLI with::

    app.add_typer(online.online_app, name="online")
    app.command("serve")(online.serve)
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from larder.cli._common import ROOT_OPTION, client, console, handle_errors

online_app = typer.Typer(
    help="Online features: publish tables to online stores, list and drop publications.\n\n"
    "Example: larder online publish houses --store cache",
    no_args_is_help=True,
)

STORE_OPTION = typer.Option(
    None, "--store", help="Online store name from larder.yaml's online_stores (default: default_online_store, "
    "else the embedded SQLite store <root>/online.db).",
)


@online_app.command("publish")
@handle_errors
def publish(
    name: str = typer.Argument(..., help="Feature table to publish."),
    store: str = STORE_OPTION,
    mode: str = typer.Option("merge", "--mode", help="merge (never regresses a key) or overwrite (replace all)."),
    filter_condition: str = typer.Option(None, "--filter", help="SQL predicate over the table's columns."),
    feature: list[str] = typer.Option(None, "--feature", help="Publish only this feature; repeatable."),
    version: int = typer.Option(None, "--version", help="Publish this Delta version (default: latest)."),
    root: str = ROOT_OPTION,
) -> None:
    """Publish the newest row per key of a feature table to an online store.

    Example: larder online publish houses --store cache --filter "Neighborhood = 'NAmes'"
    """
    with client(root) as fe:
        pub = fe.publish_table(name, store, filter_condition=filter_condition, mode=mode,  # type: ignore[arg-type]
                               features=feature or None, version=version)
    where = pub.store_name or pub.store_type
    console.print(f"published {pub.table_name} version {pub.delta_version} to {where} ({pub.mode}): "
                  f"{pub.rows:,} rows, {len(pub.features)} features in {pub.duration_s or 0:.2f} s")


@online_app.command("list")
@handle_errors
def list_(
    name: str = typer.Argument(None, help="Only publications of this table."),
    include_dropped: bool = typer.Option(False, "--all", help="Include dropped publications."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    root: str = ROOT_OPTION,
) -> None:
    """List publications of feature tables to online stores, newest first.

    Example: larder online list houses --all
    """
    with client(root) as fe:
        pubs = fe.list_publications(name, include_dropped=include_dropped)
    if as_json:
        console.print_json(json.dumps([p.to_dict() for p in pubs]))
        return
    out = Table(title=f"{len(pubs)} publication(s)")
    for col in ("table", "store", "version", "mode", "rows", "published (UTC)", "state"):
        out.add_column(col, justify="right" if col in ("version", "rows") else "left",
                       no_wrap=col == "table", overflow="fold")
    for p in pubs:
        out.add_row(p.table_name, f"{_store_label(p)} ({p.store_type})", str(p.delta_version), p.mode,
                    f"{p.rows:,}", p.published_at.strftime("%Y-%m-%d %H:%M"), "active" if p.active else "dropped")
    console.print(out)


def _store_label(p: Any) -> str:
    if p.store_name:
        return str(p.store_name)
    if p.store_type == "sqlite" and not p.store_spec.get("path"):
        return "(embedded)"
    return "(spec)"


@online_app.command("drop")
@handle_errors
def drop(
    name: str = typer.Argument(..., help="Feature table whose online table to drop."),
    store: str = typer.Option(None, "--store", help="Only from this store (default: every store it is in)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    root: str = ROOT_OPTION,
) -> None:
    """Drop a feature table's online table (the offline Delta table is kept).

    Example: larder online drop houses --store cache --yes
    """
    if not yes:
        typer.confirm(f"Drop the online table of {name!r}{f' from {store!r}' if store else ''}?", abort=True)
    with client(root) as fe:
        dropped = fe.drop_online_table(name, store)
    stores = sorted({p.store_name or p.store_type for p in dropped})
    console.print(f"dropped the online table of {name} from {', '.join(stores)}")


@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    root: str = ROOT_OPTION,
    workers: int = typer.Option(None, "--workers", help="uvicorn worker processes (default 1, or the endpoint's "
                                "workload size: Small 1, Medium 2, Large 4)."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
    with_ui: bool = typer.Option(False, "--ui", help="Also serve the web catalog at /ui (see `larder ui`)."),
    token: str = typer.Option(None, "--token", envvar="LARDER_UI_TOKEN",
                              help="With --ui: require this token on the catalog's pages and API."),
    allow_edit: bool = typer.Option(False, "--allow-edit", help="With --ui: allow edits of descriptions, tags, owners."),
    endpoint: str = typer.Option(None, "--endpoint", help="Size the server for this feature serving endpoint "
                                 "(fe.create_feature_serving_endpoint) and print its URL."),
    max_body_bytes: int = typer.Option(None, "--max-body-bytes", help="Largest request body (default 1 MiB)."),
    max_json_depth: int = typer.Option(None, "--max-json-depth", help="Deepest JSON nesting (default 32)."),
) -> None:
    """Serve online features over HTTP: POST /features/{spec_name}, POST /serving-endpoints/{name}/invocations,
    GET /specs, GET /serving-endpoints, GET /health.

    Example: larder serve --root ./.larder --host 127.0.0.1 --port 8000 --ui
    Example: larder serve --root ./.larder --port 8000 --endpoint house-features
    """
    if endpoint is not None:
        with client(root) as fe:
            ep = fe.get_feature_serving_endpoint(name=endpoint)
        workers = workers or ep.workers
        console.print(f"serving endpoint {ep.name} ({ep.feature_spec_name}, {ep.workload_size}: {workers} "
                      f"worker(s)) at http://{host}:{port}/serving-endpoints/{ep.name}/invocations")
    from larder.serving.guard import export_limits

    export_limits(max_body_bytes, max_json_depth)
    if with_ui:
        from larder.ui.app import run_with_feature_server

        run_with_feature_server(root=root, host=host, port=port, workers=workers or 1, token=token,
                                allow_edit=allow_edit, log_level=log_level)
        return
    from larder.serving.app import run

    run(root=root, host=host, port=port, workers=workers or 1, log_level=log_level)


__all__ = ["online_app", "serve"]
