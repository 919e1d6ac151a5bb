"""The CLI: every command documents an example; table commands work on a real root."""

from __future__ import annotations

import pandas as pd
import typer.main
from typer.testing import CliRunner

from larder.cli.main import app

runner = CliRunner()


def _walk(cmd, path: tuple[str, ...] = ()):
    yield path, cmd
    subs = getattr(cmd, "commands", None)
    if subs:
        for name, sub in subs.items():
            yield from _walk(sub, (*path, name))


def test_every_command_has_help_with_an_example():
    root = typer.main.get_command(app)
    missing = []
    count = 0
    for path, cmd in _walk(root):
        count += 1
        text = (cmd.help or "") + (getattr(cmd, "short_help", None) or "")
        if "Example" not in text:
            missing.append(" ".join(("larder", *path)))
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
    assert count >= 5
    assert not missing, f"commands without an example in their help: {missing}"


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("larder ")


def test_tables_commands(fe, larder_root):
    fe.create_table("houses", primary_keys="Id", df=pd.DataFrame({"Id": [1, 2], "Qual": [5, 6]}),
                    tags={"team": "ml"}, description="Ames houses")
    fe.write_table("houses", pd.DataFrame({"Id": [3], "Qual": [7]}))
    r = runner.invoke(app, ["tables", "list", "--root", str(larder_root)])
    assert r.exit_code == 0 and "main.default.houses" in r.output
    r = runner.invoke(app, ["tables", "list", "--json", "--tag", "team=ml", "--root", str(larder_root)])
    assert r.exit_code == 0 and '"rows": 3' in r.output
    r = runner.invoke(app, ["tables", "show", "houses", "--root", str(larder_root)])
    assert r.exit_code == 0 and "Qual" in r.output and "Ames houses" in r.output
    r = runner.invoke(app, ["tables", "history", "houses", "--root", str(larder_root)])
    assert r.exit_code == 0 and "MERGE" in r.output
    r = runner.invoke(app, ["tables", "show", "nope", "--root", str(larder_root)])
    assert r.exit_code == 1 and "does not exist" in r.output
    r = runner.invoke(app, ["tables", "drop", "houses", "--yes", "--root", str(larder_root)])
    assert r.exit_code == 0
    assert fe.list_tables() == []
