"""check_skew and ``larder models check-skew``: no skew when online and offline agree; a value written
offline but not republished is reported feature by feature, with the prediction."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from models_world import requests_frame
from typer.testing import CliRunner

from larder.cli.models import models_app
from larder.errors import ModelError
from larder.models.skew import compare_columns

runner = CliRunner()


def test_in_sync_then_skewed_then_in_sync_again(world, tmp_path):
    store = world.sqlite_spec("skew.db")
    world.publish(store)
    req = requests_frame()
    report = world.fe.check_skew(world.model_uri, req)
    assert report.ok, report.mismatches
    assert report.rows == len(req) and set(report.summary["column"]) >= {"GrLivArea", "age", "prediction"}
    assert report.summary["mismatched"].sum() == 0
    assert "No skew" in str(report)
    assert set(report.sources.values()) == {"sqlite (catalog)"}

    changed = world.houses[world.houses["Id"] == 17].assign(GrLivArea=2222.0, YearBuilt=1901)
    world.fe.write_table("houses", changed)  # offline only: not republished
    try:
        report = world.fe.check_skew(world.model_uri, req)
        assert not report.ok
        assert set(report.mismatched_columns) == {"GrLivArea", "YearBuilt", "age", "prediction"}
        bad = report.mismatches.set_index("column")
        assert (bad["Id"] == 17).all() and (bad["row"] == 3).all()
        assert bad.loc["GrLivArea", "offline"] == 2222.0
        assert bad.loc["GrLivArea", "online"] == world.houses.set_index("Id").loc[17, "GrLivArea"]
        assert bad.loc["GrLivArea", "abs_diff"] == pytest.approx(abs(2222.0 - bad.loc["GrLivArea", "online"]))
        assert "Skew in 4 column(s)" in str(report)
        assert json.loads(json.dumps(report.to_dict()))["ok"] is False

        keys = tmp_path / "keys.csv"
        req.to_csv(keys, index=False)
        r = runner.invoke(models_app, ["check-skew", world.model_uri, "--keys", str(keys), "--root", str(world.root)])
        assert r.exit_code == 1, r.output
        assert "GrLivArea" in r.output and "Skew in 4 column(s)" in r.output

        world.fe.publish_table("houses", store)  # republish: in sync again
        assert world.fe.check_skew(world.model_uri, req).ok
        r = runner.invoke(models_app, ["check-skew", world.model_uri, "--keys", str(keys), "--json",
                                       "--root", str(world.root)])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["ok"] is True
    finally:
        world.fe.write_table("houses", world.houses[world.houses["Id"] == 17])
        world.fe.publish_table("houses", store)


def test_tolerance(world):
    world.publish(world.sqlite_spec("skew.db"))
    area = world.houses.set_index("Id").loc[2, "GrLivArea"]
    changed = world.houses[world.houses["Id"] == 2].assign(GrLivArea=area + 1e-4)  # relative change ~1e-7
    world.fe.write_table("houses", changed)
    try:
        req = pd.DataFrame({"Id": [2], "YrSold": [2008]})
        assert not world.fe.check_skew(world.model_uri, req).ok
        assert world.fe.check_skew(world.model_uri, req, rtol=1e-6, atol=1e-6).ok
        with pytest.raises(ModelError, match="rtol"):
            world.fe.check_skew(world.model_uri, req, rtol=-1)
    finally:
        world.fe.write_table("houses", world.houses[world.houses["Id"] == 2])


def test_compare_columns():
    bad, diff = compare_columns(pd.Series([1.0, None, 3.0, np.nan]), pd.Series([1.0, None, 3.5, 1.0]),
                                rtol=0, atol=1e-9)
    assert bad.tolist() == [False, False, True, True]
    assert diff[2] == 0.5 and np.isnan(diff[3])
    bad, _ = compare_columns(pd.Series(["a", None, "b"]), pd.Series(["a", None, "c"]), rtol=0, atol=0)
    assert bad.tolist() == [False, False, True]
    t = pd.Timestamp("2024-01-01 12:00", tz="UTC")
    bad, _ = compare_columns(pd.Series([t]), pd.Series([t.tz_convert("Europe/Paris")]), rtol=0, atol=0)
    assert bad.tolist() == [False]


def test_keys_file_errors(world, tmp_path):
    r = runner.invoke(models_app, ["check-skew", world.model_uri, "--keys", str(tmp_path / "nope.csv"),
                                   "--root", str(world.root)])
    assert r.exit_code == 1 and "does not exist" in r.output
    bad = tmp_path / "keys.txt"
    bad.write_text("Id\n1\n")
    r = runner.invoke(models_app, ["check-skew", world.model_uri, "--keys", str(bad), "--root", str(world.root)])
    assert r.exit_code == 1 and ".csv or .parquet" in r.output
