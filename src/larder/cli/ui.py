"""``larder ui``: the web catalog.

Mount on the main CLI with ``app.command("ui")(ui.ui)``.
"""

from __future__ import annotations

import typer

from larder.cli._common import ROOT_OPTION, handle_errors

TOKEN_OPTION = typer.Option(
    None, "--token", envvar="LARDER_UI_TOKEN", show_envvar=True,
    help="Require this token on every page and API route (Authorization: Bearer, or ?token= once in a browser).",
)
ALLOW_EDIT_OPTION = typer.Option(
    False, "--allow-edit", help="Allow editing descriptions, tags and owners (recorded with who and when).",
)
ALLOWED_HOST_OPTION = typer.Option(
    None, "--allowed-host", help="A Host name the server answers to besides the loopback names; repeatable.",
)


@handle_errors
def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(8050, "--port", help="TCP port."),
    root: str = ROOT_OPTION,
    token: str = TOKEN_OPTION,
    allow_edit: bool = ALLOW_EDIT_OPTION,
    allowed_host: list[str] = ALLOWED_HOST_OPTION,
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
) -> None:
    """Browse tables, features, functions, models, lineage and data quality in a browser.

    Example: larder ui --root ./.larder --port 8050 --token "$(openssl rand -hex 16)"
    """
    from larder.cli._common import err_console
    from larder.ui.app import run

    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    err_console.print(f"larder catalog on http://{shown}:{port}/ ({'editable' if allow_edit else 'read-only'}"
                      f"{', token required' if token else ''}); Ctrl+C stops it", highlight=False)
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        err_console.print("[yellow]warning:[/] the catalog listens beyond this machine without a token; "
                          "pass --token to protect it", highlight=False)
    run(root=root, host=host, port=port, token=token, allow_edit=allow_edit, allowed_hosts=allowed_host or (),
        log_level=log_level)


__all__ = ["ui"]
