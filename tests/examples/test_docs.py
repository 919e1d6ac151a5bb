"""The user documentation: the quick start runs as written, links resolve, the Databricks mapping is
complete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
USER_DOCS = ["index.md", "quickstart.md", "concepts.md", "coming-from-databricks.md", "dynamodb.md", "cli.md"]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("name", USER_DOCS)
def test_links_resolve(name: str):
    path = DOCS / name
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        assert dest.exists(), f"{name}: link to {target!r}: {dest} does not exist"
        if anchor:
            assert dest.suffix == ".md", f"{name}: anchor on a non-Markdown target {target!r}"
            assert anchor in _anchors(dest), f"{name}: link {target!r}: no heading #{anchor} in {dest.name}"


def test_index_maps_every_doc_page():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "index.md":
            assert f"]({page.name}" in index, f"docs/index.md does not link {page.name}"
    for example in sorted((REPO / "examples").glob("*.py")):
        assert f"../examples/{example.name}" in index, f"docs/index.md does not list examples/{example.name}"


def test_databricks_page_covers_every_client_method():
    from larder import FeatureEngineeringClient

    page = (DOCS / "coming-from-databricks.md").read_text(encoding="utf-8")
    methods = [m for m, v in vars(FeatureEngineeringClient).items() if not m.startswith("_") and callable(v)]
    assert len(methods) > 30
    missing = [m for m in methods if f"`{m}" not in page]
    assert not missing, f"coming-from-databricks.md does not mention {missing}"


@pytest.mark.slow
def test_quickstart_runs_as_written(cli_env, work: Path, tmp_path: Path):
    """Every Python block of the quick start, concatenated, runs; printed values match the comments."""
    import subprocess
    import sys

    text = (DOCS / "quickstart.md").read_text(encoding="utf-8")
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, flags=re.S))
    script = tmp_path / "quickstart.py"
    script.write_text(code, encoding="utf-8")
    env = {**cli_env, "LARDER_ROOT": str(tmp_path / "root")}
    result = subprocess.run([sys.executable, str(script)], cwd=work, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    expected = re.findall(r"^print\(.*\)\n# (.+)$", code, flags=re.M)
    assert len(expected) >= 2
    assert "(2930, 6)" in result.stdout  # read_table as of version 0
    for line in expected:
        assert line in result.stdout, f"quickstart printed {result.stdout!r}, expected {line!r}"
    assert result.stdout.rstrip().endswith("True")  # the skew check
