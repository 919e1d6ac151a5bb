"""The catalog the web-catalog tests browse (built once per session): real Delta tables with several
versions, expectations (one failing under the warn policy), profiles, two versions of a feature
function, a named feature spec, a registered model logged with log_model, and publications to the
embedded SQLite store, one of them stale.

Tables:

* ``main.default.houses`` (key ``Id``): versions 0 (60 rows), 1 (merge: 10 updated, 20 new houses with
  larger living areas, so versions 0 and 2 drift), 2 (merge: 5 rows with a null ``GrLivArea``, failing
  ``not_null`` under ``warn``); tags ``team=pricing``, ``pii=no``; published at version 1 (stale).
* ``main.default.house_sales`` (keys ``Id`` + timestamp ``sold_at``): a time series, published current.
* ``main.ops.ridership`` (key ``station``): an unrelated table with a description about trains.

Declarative feature ``main.default.sales_365d``: the sum of ``SalePrice`` over the 365 days before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

MODEL_NAME = "house_price"
HOUSES = "main.default.houses"
SALES = "main.default.house_sales"
RIDERSHIP = "main.ops.ridership"
SPEC = "main.default.house_features"
DECLARATIVE = "main.default.sales_365d"
FUNCTION = "main.default.house_age"
NEIGHBORHOODS = ["NAmes", "CollgCr", "OldTown", "Edwards"]
#: The token of the browser tests' server.
TOKEN = "s3cret-token"


def house_age(year_built: int, year_sold: int) -> int:
    """Age of the house when sold."""
    return year_sold - year_built


def house_age_v2(year_built: int, year_sold: int) -> int:
    """Age of the house when sold (never negative)."""
    return max(year_sold - year_built, 0)


def houses(ids: np.ndarray, seed: int, area_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(ids)
    return pd.DataFrame({
        "Id": ids.astype("int64"),
        "OverallQual": rng.integers(1, 11, n).astype("int64"),
        "GrLivArea": (rng.uniform(600, 3500, n) + area_shift).round(1),
        "YearBuilt": rng.integers(1900, 2008, n).astype("int64"),
        "Neighborhood": rng.choice(NEIGHBORHOODS, n),
    })


@dataclass
class UIWorld:
    root: Path
    model_version: str

    @property
    def model_path(self) -> str:
        return f"/models/{MODEL_NAME}/versions/{self.model_version}"


def build_world(fe: Any, root: Path) -> UIWorld:
    from larder.quality import in_range, not_null
    from larder.training import FeatureFunction, FeatureLookup

    fe.create_table(HOUSES, "Id", df=houses(np.arange(1, 61), 0), description="Ames-like houses: size, quality, age",
                    tags={"team": "pricing", "pii": "no"},
                    feature_descriptions={"GrLivArea": "Above-ground living area, square feet"},
                    expectations=[not_null("GrLivArea"), in_range("OverallQual", min=1, max=10)], quality_policy="warn")
    update = houses(np.arange(1, 11), 1)
    fresh = houses(np.arange(61, 81), 2, area_shift=1500.0)
    fe.write_table(HOUSES, pd.concat([update, fresh], ignore_index=True))
    sales = pd.DataFrame({
        "Id": np.array([1, 1, 2, 3, 3, 4], dtype="int64"),
        "sold_at": pd.to_datetime(["2009-01-05", "2010-06-01", "2008-03-03", "2007-07-07", "2010-01-01",
                                   "2009-09-09"], utc=True),
        "SalePrice": [208500.0, 215000.0, 181500.0, 223500.0, 230000.0, 140000.0],
    })
    fe.create_table(SALES, ["Id"], df=sales, timestamp_keys="sold_at", description="Recorded sales",
                    tags={"team": "pricing"})
    fe.create_table(RIDERSHIP, "station", df=pd.DataFrame({"station": ["a", "b", "c"], "riders": [10, 20, 30]}),
                    description="Daily train ridership per station", tags={"domain": "transit"})
    fe.create_function(FUNCTION, house_age, description="years between construction and sale")
    from datetime import timedelta

    from larder.entities import AggregationFunction, DeltaTableSource, RollingWindow, Sum

    fe.create_feature(source=DeltaTableSource(catalog_name="main", schema_name="default", table_name="house_sales"),
                      function=AggregationFunction(Sum(input="SalePrice"), RollingWindow(window_duration=timedelta(days=365))),
                      catalog_name="main", schema_name="default", entity=["Id"], timeseries_column="sold_at",
                      name="sales_365d", description="Sales of the house in the year before")
    rng = np.random.default_rng(3)
    labels = pd.DataFrame({"Id": np.arange(1, 61, dtype="int64"),
                           "YrSold": rng.integers(2006, 2011, 60).astype("int64")})
    labels["SalePrice"] = rng.normal(180000, 30000, 60)
    lookups = [FeatureLookup(HOUSES, "Id", feature_names=["OverallQual", "GrLivArea", "YearBuilt"]),
               FeatureFunction(FUNCTION, input_bindings={"year_built": "YearBuilt", "year_sold": "YrSold"},
                               output_name="age")]
    fe.create_feature_spec(SPEC, lookups)
    fe.publish_table(HOUSES)           # version 1
    fe.publish_table(SALES)
    ts = fe.create_training_set(labels, lookups, label="SalePrice", exclude_columns=["Id"])
    df = ts.load_df()
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(df.drop(columns=["SalePrice"]), df["SalePrice"])
    info = fe.log_model(model, "model", mlflow.sklearn, ts, registered_model_name=MODEL_NAME,
                        serialization_format="cloudpickle")
    fe.create_function(FUNCTION, house_age_v2)  # a second version, not used by the model
    broken = houses(np.arange(81, 86), 4)
    broken["GrLivArea"] = np.nan
    fe.write_table(HOUSES, broken)     # version 2: fails not_null under warn; the publication is now stale
    return UIWorld(root=root, model_version=str(info.registered_model_version))
