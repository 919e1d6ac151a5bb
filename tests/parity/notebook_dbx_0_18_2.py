# Databricks notebook source
# A feature-engineering notebook written for databricks-feature-engineering 0.18.2, in the style of
# Databricks' own examples: feature tables (one a time series), UC functions defined in SQL (a Python
# UDF and a SQL UDF), a feature spec, a training set built from it, an MLflow model registered in
# Unity Catalog, batch scoring, a Databricks online store and a feature serving endpoint.
# `spark` is the notebook's session. tests/parity/test_notebook_port.py runs it on larder with only
# the imports changed and checks what it computed.

# COMMAND ----------
import json
from datetime import datetime, timedelta

import mlflow
import mlflow.sklearn
import pandas as pd
from databricks.feature_engineering import FeatureEngineeringClient, FeatureFunction, FeatureLookup
from databricks.feature_engineering.entities.feature_serving_endpoint import EndpointCoreConfig, ServedEntity
from sklearn.ensemble import RandomForestRegressor

mlflow.set_registry_uri("databricks-uc")
fe = FeatureEngineeringClient()

CATALOG, SCHEMA = "ml", "houses"

# COMMAND ----------
# Feature tables: static house attributes, and a time series of regional market indices.
houses_pdf = pd.DataFrame({
    "house_id": list(range(1, 41)),
    "region": ["north", "south", "east", "west"] * 10,
    "sqft": [800.0 + 37.0 * i for i in range(40)],
    "year_built": [1950 + (i * 7) % 70 for i in range(40)],
    "bedrooms": [1 + i % 5 for i in range(40)],
})
fe.create_table(
    name=f"{CATALOG}.{SCHEMA}.house_features",
    primary_keys=["house_id"],
    df=spark.createDataFrame(houses_pdf),
    description="Static attributes of each house",
    tags={"team": "pricing"},
)

market_rows = []
for region_index, region in enumerate(["north", "south", "east", "west"]):
    for month in range(1, 13):
        market_rows.append({
            "region": region,
            "ts": datetime(2023, month, 1),
            "market_index": 100.0 + 5.0 * region_index + 1.5 * month,
        })
market_df = spark.createDataFrame(pd.DataFrame(market_rows))
fe.create_table(
    name=f"{CATALOG}.{SCHEMA}.market",
    primary_keys=["region", "ts"],
    timeseries_column="ts",
    df=market_df,
    description="Monthly market index per region",
)

# COMMAND ----------
# On-demand features as Unity Catalog functions.
spark.sql(f"""
CREATE OR REPLACE FUNCTION {CATALOG}.{SCHEMA}.house_age(year_built INT, sold_at TIMESTAMP)
RETURNS INT
LANGUAGE PYTHON
COMMENT 'Age of the house in years when it was sold'
AS $$
if year_built is None or sold_at is None:
    return None
return sold_at.year - year_built
$$
""")
spark.sql(f"""
CREATE OR REPLACE FUNCTION {CATALOG}.{SCHEMA}.sqft_per_bedroom(sqft DOUBLE, bedrooms INT)
RETURNS DOUBLE
RETURN sqft / NULLIF(bedrooms, 0)
""")

# COMMAND ----------
# The feature spec and a training set built from it.
features = [
    FeatureLookup(
        table_name=f"{CATALOG}.{SCHEMA}.house_features",
        lookup_key="house_id",
        feature_names=["sqft", "year_built", "bedrooms"],
    ),
    FeatureLookup(
        table_name=f"{CATALOG}.{SCHEMA}.market",
        lookup_key="region",
        timestamp_lookup_key="sold_at",
        lookback_window=timedelta(days=62),
        feature_names=["market_index"],
        default_values={"market_index": 100.0},
    ),
    FeatureFunction(
        udf_name=f"{CATALOG}.{SCHEMA}.house_age",
        input_bindings={"year_built": "year_built", "sold_at": "sold_at"},
        output_name="age",
    ),
    FeatureFunction(
        udf_name=f"{CATALOG}.{SCHEMA}.sqft_per_bedroom",
        input_bindings={"sqft": "sqft", "bedrooms": "bedrooms"},
        output_name="sqft_per_bedroom",
    ),
]
fe.create_feature_spec(name=f"{CATALOG}.{SCHEMA}.price_features", features=features)

sales_pdf = pd.DataFrame({
    "house_id": [(i * 3) % 40 + 1 for i in range(60)],
    "region": [["north", "south", "east", "west"][((i * 3) % 40) % 4] for i in range(60)],
    "sold_at": [datetime(2023, 1 + i % 12, 1 + i % 27, 12) for i in range(60)],
    "price": [150_000.0 + 900.0 * ((i * 3) % 40) + 2_000.0 * (i % 12) for i in range(60)],
})
training_set = fe.create_training_set(
    df=spark.createDataFrame(sales_pdf),
    feature_spec=f"{CATALOG}.{SCHEMA}.price_features",
    label="price",
    exclude_columns=["house_id", "sold_at", "region"],
    use_timeseries_filtering=True,
)
training_pdf = training_set.load_df().toPandas()

# COMMAND ----------
# Train, log the model with its features, register it in Unity Catalog.
X = training_pdf.drop(columns=["price"])
y = training_pdf["price"]
model = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(X.fillna(0), y)

model_name = f"{CATALOG}.{SCHEMA}.price_model"
with mlflow.start_run(run_name="price-model"):
    fe.log_model(
        model=model,
        artifact_path="model",
        flavor=mlflow.sklearn,
        training_set=training_set,
        registered_model_name=model_name,
        await_registration_for=60,
        infer_input_example=True,
    )

# COMMAND ----------
# Batch scoring: the model looks its features up.
batch_pdf = pd.DataFrame({
    "house_id": [2, 17, 33],
    "region": ["south", "north", "north"],
    "sold_at": [datetime(2023, 6, 15), datetime(2023, 11, 2), datetime(2023, 3, 3)],
})
predictions = fe.score_batch(
    model_uri=f"models:/{model_name}/1",
    df=spark.createDataFrame(batch_pdf),
    result_type="double",
    env_manager="local",
).toPandas()

# COMMAND ----------
# Publish the house features to a Databricks online store and serve the spec from an endpoint.
online_store = fe.get_online_store(name="pricing-store") or fe.create_online_store(
    name="pricing-store", capacity="CU_1")
fe.publish_table(
    online_store=online_store,
    source_table_name=f"{CATALOG}.{SCHEMA}.house_features",
    online_table_name=f"{CATALOG}.{SCHEMA}.house_features_online",
)
fe.publish_table(
    online_store=online_store,
    source_table_name=f"{CATALOG}.{SCHEMA}.market",
    online_table_name=f"{CATALOG}.{SCHEMA}.market_online",
)
endpoint = fe.create_feature_serving_endpoint(
    name="house-price-features",
    config=EndpointCoreConfig(served_entities=ServedEntity(
        feature_spec_name=f"{CATALOG}.{SCHEMA}.price_features", workload_size="Small",
        scale_to_zero_enabled=True)),
)
table = fe.get_table(name=f"{CATALOG}.{SCHEMA}.market")

# COMMAND ----------
# What the notebook computed (the port's test reads it).
with open("notebook_results.json", "w") as out:
    json.dump({
        "training_columns": list(training_pdf.columns),
        "training_rows": len(training_pdf),
        "training": training_pdf.astype(object).where(training_pdf.notna(), None).to_dict("list"),
        "predictions": predictions["prediction"].tolist(),
        "prediction_columns": list(predictions.columns),
        "market_primary_keys": table.primary_keys,
        "market_timestamp_keys": table.timestamp_keys,
        "market_online_stores": [s.online_table_name for s in table.online_stores],
        "endpoint_state": endpoint.state,
        "endpoint_url": endpoint.url,
    }, out, default=str)
