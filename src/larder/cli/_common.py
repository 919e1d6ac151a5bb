"""Shared helpers for CLI commands: the client, rich console, error handling."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from larder.errors import LarderError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

ROOT_OPTION = typer.Option(None, "--root", help="larder root directory (default: $LARDER_ROOT or ./.larder).")


def client(root: str | None):  # type: ignore[no-untyped-def]
    from larder.client import FeatureEngineeringClient

    return FeatureEngineeringClient(root)


def handle_errors(fn: F) -> F:
    """Turn a LarderError into a one-line message on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LarderError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
