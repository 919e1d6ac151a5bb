"""Feature engineering with larder: the course notebook as a script.

Part 1 (embedded, no services):

1. create a feature table of Ames houses (``main.default.house_features``, key ``Id``);
2. register a feature function (``house_age``) computed the same way in training and serving;
3. build a training set: labels + keys joined with looked-up features and the function's output;
4. train a model and log it with its feature spec (``fe.log_model``), registered in MLflow;
5. score a holdout offline with ``fe.score_batch`` (only the keys are passed).

Part 2 (the DynamoDB alternative, with ``--dynamodb-endpoint-url``; skipped with a note without it):

6. publish the feature table to DynamoDB (``AmazonDynamoDBSpec``);
7. load the registered model with ``mlflow.pyfunc.load_model`` and predict from keys only: the model
   looks its features up in DynamoDB, runs the feature function and predicts;
8. check that the online predictions equal the offline ones.

Run::

    python examples/feature_engineering_demo.py --root /tmp/larder-fe-demo
    python examples/feature_engineering_demo.py --root /tmp/larder-fe-demo \\
        --dynamodb-endpoint-url http://127.0.0.1:5000 --region us-east-1

The last line printed is a JSON summary (metrics, model URI, online/offline difference).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
import warnings

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from larder import AmazonDynamoDBSpec, FeatureEngineeringClient, FeatureFunction, FeatureLookup
from larder.datasets import load_ames

TABLE = "main.default.house_features"
FUNCTION = "main.default.house_age"
MODEL_NAME = "house_price_fe_demo"
NUMERIC = ["OverallQual", "GrLivArea", "TotalBsmtSF", "GarageCars", "GarageArea", "YearBuilt",
           "YearRemodAdd", "FullBath", "TotRmsAbvGrd", "LotArea", "Fireplaces"]
CATEGORICAL = ["Neighborhood", "KitchenQual", "ExterQual"]


def house_age(year_sold: int, year_built: int) -> int:
    """Age of the house when it was sold, in years."""
    return year_sold - year_built


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def build_model() -> Pipeline:
    """A small gradient-boosted model; categorical columns ordinal-encoded, nulls handled natively."""
    encode = ColumnTransformer(
        [("categories", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                       encoded_missing_value=-1), CATEGORICAL)],
        remainder="passthrough", verbose_feature_names_out=False,
    )
    return Pipeline([("encode", encode),
                     ("model", HistGradientBoostingRegressor(max_iter=200, learning_rate=0.08, random_state=0))])


def metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {"MAE": float(mean_absolute_error(y_true, y_pred)),
            "RMSE": float(math.sqrt(mean_squared_error(y_true, y_pred))),
            "R2": float(r2_score(y_true, y_pred))}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="larder root directory (default: $LARDER_ROOT or ./.larder)")
    parser.add_argument("--dynamodb-endpoint-url", default=None,
                        help="DynamoDB endpoint: an emulator (moto_server, DynamoDB Local) or a region's AWS endpoint; "
                             "without it the DynamoDB part is skipped")
    parser.add_argument("--region", default="us-east-1", help="AWS region of the DynamoDB tables (default us-east-1)")
    args = parser.parse_args(argv)
    # MLflow's hints (pickle formats, integer columns, input examples) are noise in an example's output
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")

    summary: dict[str, object] = {}
    with FeatureEngineeringClient(root=args.root) as fe:
        # 1. the feature table ---------------------------------------------------------------------
        step("load the Ames houses and create the feature table")
        ames = load_ames()
        houses = ames[["Id", *NUMERIC, *CATEGORICAL]]
        if fe.list_tables(TABLE):       # a second run updates the table instead of creating it
            fe.write_table(TABLE, houses, mode="overwrite")
        else:
            fe.create_table(TABLE, primary_keys="Id", df=houses,
                            description="Ames houses: one row per house, keyed by Id",
                            tags={"project": "house-prices"})
        table = fe.get_table(TABLE)
        step(f"  {table.name}: {table.row_count:,} rows, {len(table.feature_names)} features, "
             f"Delta version {table.version}")

        # 2. a feature function --------------------------------------------------------------------
        fn = fe.create_function(FUNCTION, house_age, description="Age of the house when sold")
        step(f"registered {fn.name} version {fn.version} {fn.signature}")

        # 3. the training set: labels and keys in, features joined --------------------------------
        labels = ames[["Id", "YrSold", "SalePrice"]]
        train_keys, test_keys = train_test_split(labels, test_size=0.2, random_state=42)
        feature_lookups = [
            FeatureLookup(TABLE, lookup_key="Id", feature_names=[*NUMERIC, *CATEGORICAL]),
            FeatureFunction(FUNCTION, input_bindings={"year_sold": "YrSold", "year_built": "YearBuilt"},
                            output_name="house_age"),
        ]
        training_set = fe.create_training_set(df=train_keys, feature_lookups=feature_lookups,
                                              label="SalePrice", exclude_columns=["Id"])
        train_df = training_set.load_df()
        step(f"training set: {len(train_df):,} rows, columns {list(train_df.columns)}")

        # 4. train, log with the feature spec, register ---------------------------------------------
        X, y = train_df.drop(columns=["SalePrice"]), train_df["SalePrice"].astype("float64")
        model = build_model().fit(X, y)
        info = fe.log_model(model, "model", flavor=mlflow.sklearn, training_set=training_set,
                            registered_model_name=MODEL_NAME)
        model_uri = f"models:/{MODEL_NAME}/{info.registered_model_version}"
        step(f"logged and registered {model_uri} (MLflow: {mlflow.get_tracking_uri()})")

        # 5. score the holdout offline: only the keys (and YrSold, the function's request-time input)
        scored = fe.score_batch(model_uri, test_keys[["Id", "YrSold"]])
        y_true = test_keys["SalePrice"].to_numpy(dtype="float64")
        offline_pred = scored["prediction"].to_numpy(dtype="float64")
        summary.update(model_uri=model_uri, rows={"houses": table.row_count, "train": len(train_df),
                                                  "test": len(test_keys)},
                       features=list(X.columns), metrics=metrics(y_true, offline_pred))
        m = summary["metrics"]
        step(f"holdout (score_batch): MAE {m['MAE']:,.0f}  RMSE {m['RMSE']:,.0f}  R2 {m['R2']:.3f}")

        # 6-8. the DynamoDB alternative -------------------------------------------------------------
        if args.dynamodb_endpoint_url is None:
            print("note: skipping the DynamoDB part; pass --dynamodb-endpoint-url URL (an emulator such as "
                  "moto_server, or your region's DynamoDB endpoint with boto3's default credentials) to run it.",
                  flush=True)
            summary["dynamodb"] = None
        else:
            summary["dynamodb"] = dynamodb_part(fe, args, model_uri, test_keys, offline_pred)
    print(json.dumps(summary), flush=True)
    return summary


def dynamodb_part(fe: FeatureEngineeringClient, args: argparse.Namespace, model_uri: str,
                  test_keys: pd.DataFrame, offline_pred: np.ndarray) -> dict[str, object]:
    spec = AmazonDynamoDBSpec(region=args.region, endpoint_url=args.dynamodb_endpoint_url,
                              table_prefix="larder_fe_demo__")
    step("publish the feature table to DynamoDB")
    t0 = time.perf_counter()
    pub = fe.publish_table(TABLE, online_store=spec, mode="overwrite")
    step(f"  {pub.rows:,} rows to DynamoDB table {pub.online_table_name} in {time.perf_counter() - t0:.1f} s")

    # The model finds the publication in the catalog and reads DynamoDB; the caller sends keys only.
    step(f"load {model_uri} with mlflow.pyfunc and predict from keys")
    served = mlflow.pyfunc.load_model(model_uri)
    keys = test_keys[["Id", "YrSold"]].reset_index(drop=True)
    t0 = time.perf_counter()
    online_pred = np.asarray(served.predict(keys), dtype="float64").reshape(-1)
    elapsed = time.perf_counter() - t0
    one = np.asarray(served.predict(keys.head(1)), dtype="float64").reshape(-1)
    max_diff = float(np.max(np.abs(online_pred - offline_pred)))
    step(f"  {len(keys)} predictions in {elapsed:.2f} s; first house {keys.Id[0]}: {one[0]:,.0f}; "
         f"max |online - offline| = {max_diff:.3g}")
    return {"table": pub.online_table_name, "rows": pub.rows, "predictions": len(online_pred),
            "max_online_offline_diff": max_diff}


if __name__ == "__main__":
    main()
