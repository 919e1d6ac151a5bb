"""Table-level quality helpers and the ``larder quality`` commands on a real client root."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer.main
from typer.testing import CliRunner

from larder.errors import ConfigError, ValidationError
from larder.quality import (
    QualityWarning,
    check_table,
    compare_table,
    in_range,
    not_null,
    report_table,
    validate_table,
)
from larder.quality.cli import quality_app
from larder.quality.store import list_profiles, list_validations

pytestmark = pytest.mark.deployments("local", "team")

runner = CliRunner()


def _houses(seed: int, shift: float = 0.0, n: int = 400, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "Id": np.arange(start, start + n),
        "price": rng.normal(200 + shift, 20, n),
        "zone": rng.choice(["RL", "RM", "FV"], n, p=[0.6, 0.3, 0.1] if not shift else [0.2, 0.3, 0.5]),
    })


def _write(fe, name: str, df: pd.DataFrame, mode: str = "overwrite") -> int:
    """Write through the client (which validates, then records results and a profile per version)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QualityWarning)
        return fe.write_table(name, df, mode=mode)


@pytest.fixture()
def houses(fe):
    fe.create_table("houses", primary_keys="Id", df=_houses(1))
    fe.set_expectations("houses", [not_null("price"), in_range("price", min=0, max=260)], policy="warn")
    full = fe.get_table("houses").name
    _write(fe, "houses", _houses(2))                  # v1: same distribution
    _write(fe, "houses", _houses(3, shift=60.0))      # v2: shifted, some prices above 260
    return full


def test_compare_table_versions_frames_and_training_sets(fe, houses) -> None:
    assert fe.get_table("houses").version == 2
    same = compare_table(fe, "houses", baseline=0, current=1)
    assert [f.name for f in same.features] == ["price", "zone"]  # the key Id is left out
    assert same.verdict == "ok" and same.baseline_label == "version 0"
    drift = compare_table(fe, "houses", baseline=0)
    assert drift.verdict == "drift" and drift.current_label == "version 2 (latest)"
    assert drift.feature("price").verdict == "drift" and drift.feature("zone").verdict == "drift"
    by_frame = compare_table(fe, "houses", baseline=_houses(1), current=1)
    assert by_frame.baseline_label == "DataFrame" and by_frame.verdict == "ok"

    from larder.training import FeatureLookup

    spine = pd.DataFrame({"Id": np.arange(0, 400, 2), "label": 1})
    ts = fe.create_training_set(spine, [FeatureLookup(table_name="houses", lookup_key="Id")], label="label")
    vs_training = compare_table(fe, "houses", baseline=ts, current=0)  # ts pins version 2 (shifted)
    assert vs_training.baseline_label == "training set" and vs_training.feature("price").verdict == "drift"
    assert "label" not in [f.name for f in vs_training.features]

    with pytest.raises(ConfigError, match="version 9"):
        compare_table(fe, "houses", baseline=9)
    with pytest.raises(ConfigError, match="cannot compare"):
        compare_table(fe, "houses", baseline="yesterday")


def test_check_and_validate_table(fe, houses) -> None:
    latest = validate_table(fe, "houses")
    assert latest is not None and not latest.passed
    assert latest.results[1].label == "in_range(price, min=0, max=260)" and latest.results[1].failing_count > 0
    assert check_table(fe, "houses") is False
    assert check_table(fe, "houses", version=1) is True
    fe.create_table("plain", primary_keys="Id", df=_houses(5))
    assert validate_table(fe, "plain") is None and check_table(fe, "plain") is True


def test_report_table_has_every_section(fe, houses, tmp_path: Path) -> None:
    out = report_table(fe, "houses", tmp_path / "sub" / "houses.html", baseline_version=0)
    html = out.read_text()
    for needle in ("Data quality report: main.default.houses", "Baseline versus current distributions",
                   "Null rates across versions", "Failed expectations by Delta version", "version 0", "version 2 (latest)",
                   "in_range(price, min=0, max=260)", "Histogram of price"):
        assert needle in html, needle
    assert html.count("data:image/svg+xml;base64,") == 4  # 2 histograms, null rates, expectations
    assert [v for v, _ in list_validations(fe._ctx.catalog, houses)] == [1, 2]
    assert [v for v, _ in list_profiles(fe._ctx.catalog, houses)] == [0, 1, 2]


def test_cli_check_and_report(fe, houses, larder_root: Path, tmp_path: Path) -> None:
    root = ["--root", str(larder_root)]
    r = runner.invoke(quality_app, ["check", "houses", *root])
    assert r.exit_code == 1, r.output
    assert "FAILED" in r.output and "in_range(price, min=0, max=260)" in r.output
    r = runner.invoke(quality_app, ["check", "houses", "--version", "1", *root])
    assert r.exit_code == 0 and "quality check passed" in r.output
    r = runner.invoke(quality_app, ["check", "houses", "--version", "1", "--baseline-version", "0", *root])
    assert r.exit_code == 0 and "drift from version 0: ok" in r.output
    fe.create_table("moving", primary_keys="Id", df=_houses(1))
    _write(fe, "moving", _houses(3, shift=60.0))
    r = runner.invoke(quality_app, ["check", "moving", "--baseline-version", "0", *root])
    assert r.exit_code == 1 and "no expectations set" in r.output and "drift" in r.output
    r = runner.invoke(quality_app, ["check", "nope", *root])
    assert r.exit_code == 2 and "nope" in r.output

    target = tmp_path / "r.html"
    r = runner.invoke(quality_app, ["report", "houses", "--out", str(target), "--baseline-version", "0",
                                    "--current-version", "1", *root])
    assert r.exit_code == 0, r.output
    assert target.exists() and "version 1" in target.read_text()


def test_cli_help_has_examples() -> None:
    group = typer.main.get_command(quality_app)
    assert "Example" in (group.help or "")
    for name, cmd in group.commands.items():
        assert "Example: larder quality " + name in (cmd.help or ""), name
        assert runner.invoke(quality_app, [name, "--help"]).exit_code == 0


def test_strict_failure_leaves_the_table_version_unchanged(fe) -> None:
    """Needs write_table to call check_before_write before its Delta commit."""
    fe.create_table("guarded", primary_keys="Id", df=_houses(1))
    fe.set_expectations("guarded", [in_range("price", min=0)])  # policy defaults to strict
    before = fe.get_table("guarded")
    bad = _houses(2, start=1000).assign(price=lambda d: d["price"].where(d["Id"] != 1003, -5.0))
    with pytest.raises(ValidationError, match=r"in_range\(price, min=0\): 1 of 400 rows") as info:
        fe.write_table("guarded", bad)
    assert "Id: 1003" in str(info.value)
    after = fe.get_table("guarded")
    assert after.version == before.version and after.row_count == before.row_count
    assert len(fe.read_table("guarded")) == 400
