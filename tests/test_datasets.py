from larder.datasets import kaggle_name, load_ames, load_chicago


def test_ames_has_kaggle_names_and_unique_ids():
    df = load_ames()
    assert len(df) == 2930
    for col in ("Id", "OverallQual", "GrLivArea", "GarageCars", "YearBuilt", "SalePrice", "1stFlrSF"):
        assert col in df.columns
    assert df["Id"].is_unique and df.columns[0] == "Id"
    assert kaggle_name("Overall.Qual") == "OverallQual"


def test_chicago_dates_are_utc():
    df = load_chicago()
    assert str(df["date"].dtype) == "datetime64[us, UTC]" or str(df["date"].dtype).endswith("UTC]")
    assert df["date"].is_monotonic_increasing and "ridership" in df.columns
