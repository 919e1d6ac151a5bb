"""Train, register and promote a feature-aware model with an MLflow alias.

A class-based flow as a team would run it on a schedule:

1. ``load_data`` creates (or refreshes) the Ames house feature table and fixes a holdout of houses;
2. ``build_features`` turns label rows into a training set with point-in-time lookups and a feature
   function;
3. ``train`` fits a scikit-learn pipeline; ``register`` logs it with its feature spec
   (``fe.log_model``) as a new version of a registered model;
4. the first version becomes the ``champion`` alias;
5. the feature table is then *updated* (new columns merged in: a new Delta version) and a challenger is
   retrained on the richer features; ``score`` scores the holdout through ``fe.score_batch`` with
   ``models:/<name>@champion`` and with the challenger's version, and the alias moves only when the
   challenger is better (lower MAE);
6. a deliberately weak challenger (a tiny tree budget) shows the other branch: the alias stays.

Run::

    python examples/train_register_fe_model.py --root /tmp/larder-champion

The last line printed is a JSON summary: every candidate's holdout MAE, the decisions, and the
version the ``champion`` alias points to at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from larder import FeatureEngineeringClient, FeatureFunction, FeatureLookup, TrainingSet
from larder.datasets import load_ames

ALIAS = "champion"
BASE_FEATURES = ["OverallQual", "GrLivArea", "YearBuilt"]
ADDED_FEATURES = ["TotalBsmtSF", "GarageCars", "GarageArea", "YearRemodAdd", "FullBath", "Fireplaces",
                  "LotArea", "Neighborhood", "KitchenQual", "ExterQual"]
CATEGORICAL = {"Neighborhood", "KitchenQual", "ExterQual"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def house_age(year_sold: int, year_built: int) -> int:
    """Age of the house when it was sold, in years."""
    return year_sold - year_built


@dataclass
class Candidate:
    """A registered model version and how it did on the holdout."""

    version: str
    features: list[str]
    mae: float
    promoted: bool = False
    champion_mae: float | None = None


@dataclass
class HousePriceModel:
    """Owns the feature table, the feature function and the registered model of the house-price task."""

    fe: FeatureEngineeringClient
    model_name: str = "house_price_champion_demo"
    table: str = "main.houses.features"
    function: str = "main.houses.house_age"
    seed: int = 0
    labels: pd.DataFrame = field(init=False)
    holdout: pd.DataFrame = field(init=False)

    # -- data ------------------------------------------------------------------------------------
    def load_data(self, features: list[str]) -> int:
        """Write ``features`` of every house to the feature table (create it the first time, merge new
        columns in later); fix the train/holdout split of the label rows. Returns the Delta version."""
        ames = load_ames()
        rows = ames[["Id", *features]]
        if self.fe.list_tables(self.table):
            version = self.fe.write_table(self.table, rows, mode="merge")
        else:
            self.fe.create_table(self.table, primary_keys="Id", df=rows,
                                 description="Ames houses, one row per house")
            version = self.fe.get_table(self.table).version
        self.fe.create_function(self.function, house_age, description="Age of the house when sold")
        self.labels, self.holdout = train_test_split(ames[["Id", "YrSold", "SalePrice"]], test_size=0.25,
                                                     random_state=42)
        return version

    def build_features(self, features: list[str]) -> TrainingSet:
        """The training set: the label rows joined with ``features`` and the house age."""
        lookups: list[Any] = [
            FeatureLookup(self.table, lookup_key="Id", feature_names=features),
            FeatureFunction(self.function, input_bindings={"year_sold": "YrSold", "year_built": "YearBuilt"},
                            output_name="house_age"),
        ]
        return self.fe.create_training_set(df=self.labels, feature_lookups=lookups, label="SalePrice",
                                           exclude_columns=["Id"])

    # -- model -----------------------------------------------------------------------------------
    def train(self, training_set: TrainingSet, *, max_iter: int = 150, max_depth: int | None = None) -> Pipeline:
        df = training_set.load_df()
        X, y = df.drop(columns=["SalePrice"]), df["SalePrice"].astype("float64")
        categorical = [c for c in X.columns if c in CATEGORICAL]
        encode = ColumnTransformer(
            [("categories", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                           encoded_missing_value=-1), categorical)],
            remainder="passthrough", verbose_feature_names_out=False,
        )
        gbr = HistGradientBoostingRegressor(max_iter=max_iter, max_depth=max_depth, learning_rate=0.1,
                                            random_state=self.seed)
        return Pipeline([("encode", encode), ("model", gbr)]).fit(X, y)

    def register(self, model: Pipeline, training_set: TrainingSet) -> str:
        """Log the model with its feature spec and register it; returns the new version."""
        # log_model starts (and ends) a run in larder's MLflow tracking store (<root>/mlflow.db unless
        # MLFLOW_TRACKING_URI or larder.yaml says otherwise).
        info = self.fe.log_model(model, "model", flavor=mlflow.sklearn, training_set=training_set,
                                 registered_model_name=self.model_name)
        return str(info.registered_model_version)

    def score(self, model_uri: str) -> float:
        """Holdout MAE of ``model_uri`` (``models:/name/3`` or ``models:/name@champion``), scored offline
        with point-in-time lookups: only the keys and the request-time ``YrSold`` are sent."""
        scored = self.fe.score_batch(model_uri, self.holdout[["Id", "YrSold"]])
        return float(mean_absolute_error(self.holdout["SalePrice"].to_numpy(dtype="float64"),
                                         scored["prediction"].to_numpy(dtype="float64")))

    # -- promotion -------------------------------------------------------------------------------
    def champion_version(self) -> str | None:
        try:
            return str(MlflowClient().get_model_version_by_alias(self.model_name, ALIAS).version)
        except mlflow.exceptions.MlflowException:
            return None

    def challenge(self, version: str, features: list[str]) -> Candidate:
        """Compare ``version`` with the champion on the holdout; move the alias only if it is better."""
        candidate = Candidate(version=version, features=features,
                              mae=self.score(f"models:/{self.model_name}/{version}"))
        current = self.champion_version()
        if current is not None:
            candidate.champion_mae = self.score(f"models:/{self.model_name}@{ALIAS}")
        if candidate.champion_mae is None or candidate.mae < candidate.champion_mae:
            MlflowClient().set_registered_model_alias(self.model_name, ALIAS, version)
            candidate.promoted = True
        verdict = "promoted to @" + ALIAS if candidate.promoted else f"kept @{ALIAS} on version {current}"
        against = "" if candidate.champion_mae is None else f" vs champion {candidate.champion_mae:,.0f}"
        log(f"version {version}: holdout MAE {candidate.mae:,.0f}{against} -> {verdict}")
        return candidate


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="larder root directory (default: $LARDER_ROOT or ./.larder)")
    parser.add_argument("--model-name", default="house_price_champion_demo", help="registered model name")
    args = parser.parse_args(argv)
    # MLflow's hints (pickle formats, integer columns, input examples) are noise in an example's output
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")

    candidates: list[Candidate] = []
    with FeatureEngineeringClient(root=args.root) as fe:
        flow = HousePriceModel(fe, model_name=args.model_name)

        log("round 1: a few features; the first version becomes the champion")
        v = flow.load_data(BASE_FEATURES)
        log(f"  feature table {flow.table} at Delta version {v}")
        ts = flow.build_features(BASE_FEATURES)
        candidates.append(flow.challenge(flow.register(flow.train(ts), ts), BASE_FEATURES))

        log("round 2: the feature table gains columns; retrain on them and challenge the champion")
        rich = BASE_FEATURES + ADDED_FEATURES
        v = flow.load_data(ADDED_FEATURES)  # merge: new columns become new features
        log(f"  feature table {flow.table} at Delta version {v}: {len(fe.get_table(flow.table).feature_names)} features")
        ts = flow.build_features(rich)
        candidates.append(flow.challenge(flow.register(flow.train(ts), ts), rich))

        log("round 3: a weak challenger (3 shallow trees) must not take the alias")
        ts = flow.build_features(rich)
        weak = flow.train(ts, max_iter=3, max_depth=2)
        candidates.append(flow.challenge(flow.register(weak, ts), rich))

        champion = flow.champion_version()
        by_alias = flow.score(f"models:/{flow.model_name}@{ALIAS}")
        log(f"@{ALIAS} -> version {champion}, holdout MAE {by_alias:,.0f}")
        lineage = fe.model_lineage(flow.model_name, ALIAS)
        summary = {
            "model_name": flow.model_name,
            "candidates": [c.__dict__ for c in candidates],
            "champion_version": champion,
            "champion_mae": by_alias,
            "champion_tables": {t.name: t.delta_version for t in lineage.tables},
            "holdout_rows": int(len(flow.holdout)),
            "mean_price": float(np.mean(flow.holdout["SalePrice"])),
        }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
