"""``larder online publish|list|drop`` on a real root; every command's help has an example."""

from __future__ import annotations

import json

import pandas as pd
import typer
import typer.main
from typer.testing import CliRunner

from larder.cli.online import online_app, serve

runner = CliRunner()


def test_every_command_has_an_example() -> None:
    group = typer.main.get_command(online_app)
    assert "Example" in (group.help or "")
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        assert "Example" in (cmd.help or ""), name
    app = typer.Typer()
    app.command("serve")(serve)
    assert "Example: larder serve" in (typer.main.get_command(app).help or "")


def test_publish_list_drop(fe, larder_root) -> None:
    fe.create_table("houses", "Id", df=pd.DataFrame({"Id": [1, 2, 3], "q": [7, 5, 8], "nb": ["a", "b", "c"]}))
    root = ["--root", str(larder_root)]
    r = runner.invoke(online_app, ["publish", "houses", "--filter", "q > 5", "--feature", "q", *root])
    assert r.exit_code == 0, r.output
    assert "published main.default.houses version 0" in r.output and "2 rows, 1 features" in r.output
    r = runner.invoke(online_app, ["list", *root])
    assert r.exit_code == 0 and "main.default.houses" in r.output and "active" in r.output
    r = runner.invoke(online_app, ["list", "houses", "--json", *root])
    data = json.loads(r.output)
    assert data[0]["features"] == ["q"] and data[0]["filter_condition"] == "q > 5" and data[0]["rows"] == 2
    r = runner.invoke(online_app, ["publish", "houses", "--store", "nope", *root])
    assert r.exit_code == 1 and "No online store named 'nope'" in r.output
    r = runner.invoke(online_app, ["publish", "houses", "--mode", "append", *root])
    assert r.exit_code == 1 and "mode must be" in r.output
    r = runner.invoke(online_app, ["drop", "houses", "--yes", *root])
    assert r.exit_code == 0 and "dropped the online table of houses" in r.output
    r = runner.invoke(online_app, ["list", "--all", "--json", *root])
    assert json.loads(r.output)[0]["active"] is False
    r = runner.invoke(online_app, ["drop", "houses", "--yes", *root])
    assert r.exit_code == 1 and "not published" in r.output
