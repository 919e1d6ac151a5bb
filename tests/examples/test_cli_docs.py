"""docs/cli.md is generated from the CLI (scripts/gen_cli_docs.py): it must be current and complete."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gen_cli_docs.py"
DOC = REPO / "docs" / "cli.md"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _click_paths() -> list[str]:
    """Every command path, found by walking click's tree here (independently of the generator)."""
    import typer.main

    from larder.cli.main import app

    root = typer.main.get_command(app)
    paths: list[str] = []

    def walk(cmd, ctx, path):
        paths.append(path)
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                walk(sub, sub.make_context(name, [], parent=ctx, resilient_parsing=True), f"{path} {name}")

    walk(root, root.make_context("larder", [], resilient_parsing=True), "larder")
    return paths


def test_cli_md_is_current(gen):
    text = gen.render()
    assert DOC.exists(), "docs/cli.md is missing: run `python scripts/gen_cli_docs.py`."
    assert DOC.read_text(encoding="utf-8") == text, "docs/cli.md is stale: run `python scripts/gen_cli_docs.py`."


def test_every_command_documented_with_usage_options_and_example(gen):
    text = DOC.read_text(encoding="utf-8")
    paths = _click_paths()
    assert {"larder tables list", "larder online publish", "larder models check-skew", "larder quality check",
            "larder demo", "larder serve"} <= set(paths)
    for path in paths:
        heading = re.search(rf"^#+ `{re.escape(path)}`$", text, flags=re.M)
        assert heading, f"docs/cli.md has no section for `{path}`"
        section = text[heading.end():].split("\n#", 1)[0]
        assert f"Usage: {path} " in section, f"`{path}` lacks its usage line"
        assert "`--help`" in section, f"`{path}` lacks its options table"
        assert "```bash\nlarder" in section, f"`{path}` has no example in its help text"


def test_options_and_defaults_come_from_the_cli(gen):
    text = DOC.read_text(encoding="utf-8")
    publish = text.split("`larder online publish`", 2)[2]
    for fragment in ("`--store <str>`", "`--mode <str>`", "[default: merge]", "`--feature <list[str]>`",
                     "`name <str>`", "[required]"):
        assert fragment in publish.split("\n#", 1)[0]


def test_check_mode_detects_a_stale_file(gen, tmp_path):
    out = tmp_path / "cli.md"
    assert gen.main(["--out", str(out)]) == 0
    assert gen.main(["--check", "--out", str(out)]) == 0
    out.write_text(out.read_text(encoding="utf-8").replace("larder tables drop", "larder tables remove"))
    assert gen.main(["--check", "--out", str(out)]) == 1
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
