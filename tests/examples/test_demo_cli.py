"""`larder demo` (the main job, what `make demo` runs) end to end through the CLI, twice on one root."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _summary(stdout: str) -> dict[str, str]:
    """The rows of the demo's summary table: {what: value}."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", line)]
        cells = [c for c in cells if c]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    return rows


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def test_larder_demo_runs_end_to_end_twice(cli, work: Path, tmp_path: Path):
    root = tmp_path / "root"
    versions = []
    for _ in range(2):
        out = cli(work, "demo", "--root", str(root)).stdout
        rows = _summary(out)
        assert "test MAE / RMSE / R2" in rows, out
        mae, rmse, r2 = (_number(v) for v in rows["test MAE / RMSE / R2"].split("/"))
        assert 8_000 < mae < 30_000 and mae <= rmse < 50_000, rows
        assert 0.8 < r2 < 0.99, rows
        diff = re.search(r"max \|difference\| (\S+)", out)
        assert diff and float(diff.group(1)) < 1e-6, out
        assert rows.get("skew check") == "in sync", rows
        assert rows["rows"].startswith("houses 2,930, train 2,344, test 586"), rows
        model = re.search(r"models:/house_price_model/(\d+)", rows["model"])
        assert model, rows
        versions.append(int(model.group(1)))
        assert (root / "mlflow.db").exists() and (root / "demo" / "feature_selection.png").exists()
    assert versions == [1, 2]  # the second run registers a new version on the same tables


def test_larder_demo_reports_a_bad_online_store_cleanly(cli, work: Path, tmp_path: Path):
    with pytest.raises(AssertionError) as failed:
        cli(work, "demo", "--root", str(tmp_path / "root"), "--online", "cassandra")
    message = str(failed.value)
    assert "exited with 1" in message and "Unknown online store 'cassandra'" in message
    assert "Traceback" not in message
