"""score_batch: the offline path; override semantics, model URIs (runs:/, version, alias), result types."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from models_world import requests_frame

from larder.errors import ModelError

FEATURES = ["YrSold", "OverallQual", "GrLivArea", "YearBuilt", "Neighborhood", "GarageCars", "LotArea", "age"]


def test_output_is_df_features_and_prediction(any_world):
    world = any_world
    req = requests_frame().assign(note="x")
    out = world.fe.score_batch(world.model_uri, req)
    assert list(out.columns) == ["Id", "YrSold", "note", *FEATURES[1:], "prediction"]
    assert out.index.equals(req.index) and out["Id"].tolist() == req["Id"].tolist()
    assert out["prediction"].dtype == "float64"
    # the prediction is the raw model on the assembled features
    expect = world.model.predict(out[world.training_set.feature_columns])
    np.testing.assert_allclose(out["prediction"].to_numpy(), expect, rtol=0, atol=1e-9)
    # and the features are the table's values (point in time: the latest version)
    houses = world.houses.set_index("Id")
    assert out.loc[out["Id"] == 17, "GrLivArea"].item() == houses.loc[17, "GrLivArea"]
    assert (out.loc[out["Id"] == 17, "age"].item()
            == out.loc[out["Id"] == 17, "YrSold"].item() - houses.loc[17, "YearBuilt"])


def test_a_feature_column_in_df_overrides_the_lookup(any_world):
    world = any_world
    req = pd.DataFrame({"Id": [1, 2, 1001], "YrSold": [2008, 2008, 2008]})
    base = world.fe.score_batch(world.model_uri, req)
    given = req.assign(GrLivArea=[4000.0, 4000.0, 4000.0], age=[0, 0, 0])
    out = world.fe.score_batch(world.model_uri, given)
    assert out["GrLivArea"].tolist() == [4000.0] * 3 and out["age"].tolist() == [0, 0, 0]
    # the other features are still looked up
    assert out["OverallQual"].tolist() == base["OverallQual"].tolist()
    manual = base[world.training_set.feature_columns].assign(GrLivArea=4000.0, age=0)
    np.testing.assert_allclose(out["prediction"].to_numpy(), world.model.predict(manual), rtol=0, atol=1e-9)
    assert not np.allclose(out["prediction"].to_numpy(), base["prediction"].to_numpy())


def test_model_uris_versions_aliases_and_runs(any_world):
    world = any_world
    world.activate()
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(world.model_name, "champion", "1")
    req = requests_frame()
    by_version = world.fe.score_batch(world.model_uri, req)["prediction"]
    by_alias = world.fe.score_batch(f"models:/{world.model_name}@champion", req)["prediction"]
    by_run = world.fe.score_batch(f"runs:/{world.info.run_id}/model", req)["prediction"]
    by_id = world.fe.score_batch(world.info.model_uri, req)["prediction"]
    for other in (by_alias, by_run, by_id):
        np.testing.assert_array_equal(other.to_numpy(), by_version.to_numpy())
    assert world.fe.model_lineage(world.model_name, "champion").registered_version == "1"
    with pytest.raises(ModelError, match="alias"):
        world.fe.score_batch(f"models:/{world.model_name}@nobody", req)


def test_result_types(any_world):
    world = any_world
    req = requests_frame().head(3)
    assert world.fe.score_batch(world.model_uri, req, result_type="float")["prediction"].dtype == "float32"
    longs = world.fe.score_batch(world.model_uri, req, result_type="long")["prediction"]
    assert longs.dtype == "int64"
    assert world.fe.score_batch(world.model_uri, req, result_type="string")["prediction"].map(type).eq(str).all()
    with pytest.raises(ModelError, match="result_type must be one of"):
        world.fe.score_batch(world.model_uri, req, result_type="decimal(10,2)")


def test_bad_frames(any_world):
    world = any_world
    with pytest.raises(ModelError, match="YrSold"):
        world.fe.score_batch(world.model_uri, pd.DataFrame({"Id": [1]}))
    with pytest.raises(ModelError, match="already has a 'prediction' column"):
        world.fe.score_batch(world.model_uri, requests_frame().assign(prediction=1.0))
    empty = world.fe.score_batch(world.model_uri, requests_frame().head(0))
    assert len(empty) == 0 and "prediction" in empty.columns


def test_scoring_reads_the_latest_table_version(any_world, tmp_path):
    world = any_world
    """The model pins the training versions, but score_batch scores on the latest data."""
    req = pd.DataFrame({"Id": [58], "YrSold": [2009]})
    before = world.fe.score_batch(world.model_uri, req)
    row = world.houses[world.houses["Id"] == 58].assign(GrLivArea=3333.0)
    world.fe.write_table("houses", row)
    try:
        after = world.fe.score_batch(world.model_uri, req)
        assert after["GrLivArea"].item() == 3333.0
        assert after["prediction"].item() != before["prediction"].item()
    finally:
        world.fe.write_table("houses", world.houses[world.houses["Id"] == 58])
    assert world.fe.score_batch(world.model_uri, req)["prediction"].item() == before["prediction"].item()


def test_assembled_frame_lacking_a_feature_column_names_it():
    from larder.models.score import check_feature_columns

    check_feature_columns(["GrLivArea", "age"], ["Id", "GrLivArea", "age"])
    with pytest.raises(ModelError, match=r"lack the model's column\(s\) \['age'\]"):
        check_feature_columns(["GrLivArea", "age"], ["Id", "GrLivArea"])
