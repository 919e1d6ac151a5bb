"""The main job: the house-price pipeline end to end on embedded defaults.

``larder demo`` (and ``make demo``) runs it: Ames houses into a validated feature table, a versioned
``house_age`` feature function, a point-in-time training set, feature engineering and selection, a
gradient-boosted model in an sklearn pipeline logged with its feature spec and registered in MLflow,
the feature table published online (SQLite by default, DynamoDB on request), the test set scored both
offline (``score_batch``) and through the registered model with online lookups, and a skew check.
Running it again updates the same tables and registers a new model version.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

TABLE = "main.demo.house_features"
FUNCTION = "main.demo.house_age"
FILL_FUNCTION = "main.demo.fill_garage_cars"
MODEL_NAME = "house_price_model"

NUMERIC = ["OverallQual", "OverallCond", "GrLivArea", "TotalBsmtSF", "1stFlrSF", "GarageCars", "GarageArea",
           "FullBath", "TotRmsAbvGrd", "YearBuilt", "YearRemodAdd", "LotArea", "Fireplaces", "MasVnrArea",
           "BedroomAbvGr", "WoodDeckSF", "OpenPorchSF", "MoSold"]
CATEGORICAL = ["Neighborhood", "KitchenQual", "ExterQual", "CentralAir"]
DESCRIPTIONS = {
    "OverallQual": "Overall material and finish, 1 (very poor) to 10 (very excellent)",
    "GrLivArea": "Above-ground living area, square feet",
    "GarageCars": "Garage size in car capacity",
    "YearBuilt": "Original construction year",
    "Neighborhood": "Physical location within Ames city limits",
}


def house_age(year_sold: int, year_built: int) -> int:
    """Age of the house when it was sold, in years."""
    return year_sold - year_built


def fill_garage_cars(garage_cars: float | None) -> float:
    """Garage capacity, with a missing value read as no garage."""
    return 0.0 if garage_cars is None or garage_cars != garage_cars else float(garage_cars)


@dataclass
class DemoResult:
    root: Path
    model_uri: str
    model_version: str
    rows: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    selected_features: list[str] = field(default_factory=list)
    max_online_offline_diff: float = math.nan
    skew_ok: bool = False
    online_store: str = "sqlite"
    paths: dict[str, str] = field(default_factory=dict)


@contextmanager
def _step(console: Console, timings: dict[str, float], name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    with console.status(f"{name} ..."):
        yield
    timings[name] = time.perf_counter() - t0
    console.print(f"[green]✓[/] {name} [dim]({timings[name]:.1f} s)[/]")


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow's advice about pickles and integer columns is noise in a demo's output."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)


def _online_spec(online: str, endpoint_url: str | None, region: str) -> Any:
    from larder.online.stores.specs import DynamoDBStoreSpec, RedisStoreSpec, SQLiteStoreSpec

    if online == "sqlite":
        return SQLiteStoreSpec()
    if online == "dynamodb":
        return DynamoDBStoreSpec(region=region, endpoint_url=endpoint_url, table_prefix="larder_demo__")
    if online == "redis":
        return RedisStoreSpec(url=endpoint_url or "redis://127.0.0.1:6379/0", key_prefix="larder_demo")
    from larder.errors import ConfigError

    raise ConfigError(f"Unknown online store {online!r}: use sqlite, dynamodb or redis.")


def run_demo(
    root: str | os.PathLike[str] | None = None,
    *,
    online: str = "sqlite",
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    console: Console | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the house-price pipeline; returns what it measured and where it wrote."""
    import mlflow
    import mlflow.sklearn
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    from larder.client import FeatureEngineeringClient
    from larder.datasets import load_ames
    from larder.quality import allowed_values, in_range, not_null, unique
    from larder.selection import select_features
    from larder.training import FeatureFunction, FeatureLookup
    from larder.transforms import preprocessor

    console = console or Console()
    timings: dict[str, float] = {}
    spec = _online_spec(online, endpoint_url, region)
    fe = FeatureEngineeringClient(root)
    root_path = Path(fe.root)
    out_dir = root_path / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with _step(console, timings, "load the Ames data and split train/test"):
            ames = load_ames()
            houses = ames[["Id", *NUMERIC, *CATEGORICAL]].copy()
            labels = ames[["Id", "YrSold", "SalePrice"]].copy()
            train, test = train_test_split(labels, test_size=0.2, random_state=42)
            train, test = train.reset_index(drop=True), test.reset_index(drop=True)

        with _step(console, timings, "create and validate the house feature table"):
            expectations = [
                unique("Id"), not_null("OverallQual"), in_range("OverallQual", min=1, max=10),
                in_range("GrLivArea", min=1), in_range("YearBuilt", min=1800, max=2030),
                allowed_values("CentralAir", ["Y", "N"]), not_null("GarageCars", max_fraction=0.01),
            ]
            if fe.list_tables(TABLE):
                fe.set_expectations(TABLE, expectations, policy="strict")
                fe.write_table(TABLE, houses, mode="overwrite")
            else:
                fe.create_table(
                    TABLE, primary_keys="Id", df=houses, description="Ames houses: one row per house",
                    tags={"project": "house-prices", "source": "openintro/ames"},
                    feature_descriptions=DESCRIPTIONS, expectations=expectations, quality_policy="strict",
                )
            table = fe.get_table(TABLE)

        with _step(console, timings, "register the feature functions"):
            age_fn = fe.create_function(FUNCTION, house_age, description="Age of the house when sold")
            fill_fn = fe.create_function(FILL_FUNCTION, fill_garage_cars, description="GarageCars, null as 0")

        def lookups(numeric: list[str]) -> list[Any]:
            plain = [c for c in numeric if c != "GarageCars"]
            return [
                FeatureLookup(TABLE, "Id", feature_names=plain + CATEGORICAL,
                              default_values={"OverallQual": 5, "GrLivArea": 1500.0}),
                FeatureLookup(TABLE, "Id", feature_names=["GarageCars"],
                              rename_outputs={"GarageCars": "garage_cars_raw"}),
                FeatureFunction(FILL_FUNCTION, {"garage_cars": "garage_cars_raw"}, "GarageCars"),
                FeatureFunction(FUNCTION, {"year_sold": "YrSold", "year_built": "YearBuilt"}, "house_age"),
            ]

        with _step(console, timings, "build the training set and select features"):
            full = fe.create_training_set(train, lookups(NUMERIC), label="SalePrice",
                                          exclude_columns=["Id", "garage_cars_raw"])
            full_df = full.load_df()
            candidates = [*NUMERIC, "house_age"]
            report = select_features(full_df[candidates], full_df["SalePrice"],
                                     methods=["variance", "correlation", "mutual_info", "importance"], k=12)
            selected = [c for c in report.selected if c in NUMERIC]
            for needed in ("YearBuilt", "GarageCars"):  # inputs of the feature functions
                if needed not in selected:
                    selected.append(needed)
            chart = report.save_chart(out_dir / "feature_selection.png")
            fe.record_feature_selection(TABLE, report)
            ts = fe.create_training_set(train, lookups(selected), label="SalePrice",
                                        exclude_columns=["Id", "garage_cars_raw"])
            train_df = ts.load_df()

        with _step(console, timings, "train a gradient-boosted model in an sklearn pipeline"):
            X = train_df.drop(columns=["SalePrice"])
            y = train_df["SalePrice"].astype("float64")
            numeric = [c for c in X.columns if c not in CATEGORICAL and c != "YrSold"]
            spec_: dict[str, Any] = {c: "impute:median" for c in numeric}
            spec_.update({
                "Neighborhood": ["rare:0.01", "onehot"],
                "KitchenQual": "ordinal", "ExterQual": "ordinal", "CentralAir": "onehot",
                "ratio": [["GrLivArea", "TotRmsAbvGrd"]] if {"GrLivArea", "TotRmsAbvGrd"} <= set(X.columns) else [],
                "remainder": "drop",
            })
            prep = preprocessor(spec_)
            model = Pipeline([("features", prep),
                              ("gbr", GradientBoostingRegressor(n_estimators=300, learning_rate=0.05,
                                                                max_depth=3, subsample=0.8, random_state=0))])
            model.fit(X, y)

        with _step(console, timings, "log and register the model with its feature spec"), _quiet_mlflow():
            info = fe.log_model(model, "model", flavor=mlflow.sklearn, training_set=ts,
                                registered_model_name=MODEL_NAME, input_example=train[["Id", "YrSold"]].head(3))
            version = str(info.registered_model_version)
            model_uri = f"models:/{MODEL_NAME}/{version}"

        with _step(console, timings, f"publish the feature table online ({spec.type})"):
            fe.publish_table(TABLE, online_store=spec, mode="overwrite")

        with _step(console, timings, "score the test set offline (score_batch)"):
            keys = test[["Id", "YrSold"]]
            scored = fe.score_batch(model_uri, keys)
            y_true = test["SalePrice"].to_numpy(dtype="float64")
            y_pred = scored["prediction"].to_numpy(dtype="float64")

        with _step(console, timings, "score through the registered model with online lookups"):
            pyfunc = mlflow.pyfunc.load_model(model_uri)
            online_pred = np.asarray(pyfunc.predict(keys), dtype="float64").reshape(-1)
            max_diff = float(np.max(np.abs(online_pred - y_pred)))

        with _step(console, timings, "check training/serving skew"):
            skew = fe.check_skew(model_uri, keys)

        metrics = {
            "MAE": float(mean_absolute_error(y_true, y_pred)),
            "RMSE": float(math.sqrt(mean_squared_error(y_true, y_pred))),
            "R2": float(r2_score(y_true, y_pred)),
        }
        result = DemoResult(
            root=root_path, model_uri=model_uri, model_version=version,
            rows={"houses": table.row_count, "train": len(train), "test": len(test),
                  "features": X.shape[1]},
            timings=timings, metrics=metrics, selected_features=selected,
            max_online_offline_diff=max_diff, skew_ok=bool(skew.ok), online_store=spec.type,
            paths={"root": str(root_path), "feature table": table.path, "catalog": fe._ctx.catalog_url,
                   "mlflow": mlflow.get_tracking_uri(), "selection chart": str(chart),
                   "function versions": f"{age_fn.version[:12]}, {fill_fn.version[:12]}"},
        )
    finally:
        fe.close()
    _print_summary(console, result)
    return result


def _print_summary(console: Console, r: DemoResult) -> None:
    t = Table(title="larder demo: house prices", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("rows", ", ".join(f"{k} {v:,}" for k, v in r.rows.items()))
    t.add_row("selected features", ", ".join(r.selected_features))
    t.add_row("model", f"{r.model_uri}")
    t.add_row("test MAE / RMSE / R2",
              f"{r.metrics['MAE']:,.0f} / {r.metrics['RMSE']:,.0f} / {r.metrics['R2']:.3f}")
    t.add_row(f"online ({r.online_store}) vs offline", f"max |difference| {r.max_online_offline_diff:.2e}")
    t.add_row("skew check", "[green]in sync[/]" if r.skew_ok else "[red]mismatches[/]")
    t.add_row("total time", f"{sum(r.timings.values()):.1f} s")
    for k, v in r.paths.items():
        t.add_row(k, v)
    console.print(t)
    console.print("Next: [bold]larder tables list --root {0}[/], [bold]larder models show {1} --root {0}[/], "
                  "[bold]mlflow ui --backend-store-uri {2}[/]".format(r.root, MODEL_NAME, r.paths["mlflow"]))
