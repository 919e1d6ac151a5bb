"""A notebook written for Databricks' declarative features runs on larder with only its imports changed.

``NOTEBOOK`` is written the Databricks way (0.18's names, keyword arguments, signatures); the test
swaps the ``databricks.feature_engineering`` imports for larder's and runs it as is.
"""

from __future__ import annotations

import textwrap

NOTEBOOK = textwrap.dedent('''
    from datetime import datetime, timedelta, timezone

    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor

    from databricks.feature_engineering import FeatureEngineeringClient
    from databricks.feature_engineering.entities import (
        AggregationFunction,
        ApproxCountDistinct,
        Avg,
        ColumnSelection,
        Count,
        DeltaTableSource,
        Feature,
        LastN,
        Max,
        RollingWindow,
        SlidingWindow,
        StddevSamp,
        Sum,
        TumblingWindow,
    )

    fe = FeatureEngineeringClient()

    # -- raw events: one row per transaction ---------------------------------------------------
    rng = np.random.default_rng(0)
    n = 2_000
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    transactions = pd.DataFrame({
        "transaction_id": np.arange(n),
        "customer_id": rng.integers(0, 50, n),
        "amount": rng.gamma(2.0, 30.0, n).round(2),
        "merchant": rng.choice(["grocer", "fuel", "books", "travel"], n),
        "event_time": [start + timedelta(minutes=int(m)) for m in rng.integers(0, 60 * 24 * 60, n)],
    })
    fe.create_table(
        name="ml.payments.transactions",
        primary_keys=["transaction_id"],
        df=transactions,
        description="Card transactions",
    )

    source = DeltaTableSource(catalog_name="ml", schema_name="payments", table_name="transactions")
    big_spend = DeltaTableSource(catalog_name="ml", schema_name="payments", table_name="transactions",
                                 filter_condition="amount > 100")

    # -- feature definitions, created and registered in one call each -------------------------
    spend_7d = fe.create_feature(
        source=source,
        function=AggregationFunction(Sum(input="amount"), RollingWindow(window_duration=timedelta(days=7))),
        catalog_name="ml", schema_name="payments",
        entity=["customer_id"], timeseries_column="event_time",
        name="spend_7d", description="Spend over the last 7 days",
    )
    mean_30d = fe.create_feature(
        source=source,
        function=AggregationFunction(Avg(input="amount"), RollingWindow(window_duration=timedelta(days=30),
                                                                        delay=timedelta(days=1))),
        catalog_name="ml", schema_name="payments", entity=["customer_id"], timeseries_column="event_time",
    )
    big_count_daily = fe.create_feature(
        source=big_spend,
        function=AggregationFunction(Count(input="transaction_id"), TumblingWindow(window_duration=timedelta(days=1))),
        catalog_name="ml", schema_name="payments", entity=["customer_id"], timeseries_column="event_time",
        name="big_tx_yesterday",
    )
    merchants_week = fe.create_feature(
        source=source,
        function=AggregationFunction(ApproxCountDistinct(input="merchant"),
                                     SlidingWindow(window_duration=timedelta(days=7), slide_duration=timedelta(days=1))),
        catalog_name="ml", schema_name="payments", entity=["customer_id"], timeseries_column="event_time",
        name="merchants_7d",
    )
    # built by hand, then registered
    volatility = Feature(
        source=source,
        function=AggregationFunction(StddevSamp(input="amount"), RollingWindow(window_duration=timedelta(days=14))),
        entity=["customer_id"], timeseries_column="event_time", name="amount_volatility_14d",
    )
    volatility = fe.register_feature(feature=volatility, catalog_name="ml", schema_name="payments")
    last_amounts = fe.create_feature(
        source=source, function=AggregationFunction(LastN(input="amount", n=3), RollingWindow(window_duration=None)),
        catalog_name="ml", schema_name="payments", entity=["customer_id"], timeseries_column="event_time",
        name="last_three_amounts",
    )
    latest_amount = fe.create_feature(
        source=source, function=ColumnSelection(column="amount"),
        catalog_name="ml", schema_name="payments", entity=["customer_id"], timeseries_column="event_time",
    )
    largest_30d = fe.create_feature(
        source=source,
        function=AggregationFunction(Max(input="amount"), RollingWindow(window_duration=timedelta(days=30))),
        catalog_name="ml", schema_name="payments", entity=["customer_id"], timeseries_column="event_time",
    )

    print(spend_7d.full_name, mean_30d.name, volatility.is_registered)
    registered = fe.list_features(catalog_name="ml", schema_name="payments")
    print(sorted(f.name for f in registered))
    print(fe.get_feature(full_name="ml.payments.spend_7d"))

    # -- every source row at its own time -------------------------------------------------------
    history = fe.compute_features(features=[spend_7d, mean_30d, largest_30d])
    display = print
    display(history.head())

    # -- a training set: one row per label, features as of the label's time ----------------------
    labels = pd.DataFrame({
        "customer_id": rng.integers(0, 50, 500),
        "event_time": [start + timedelta(hours=int(h)) for h in rng.integers(24 * 7, 24 * 60, 500)],
    })
    labels["churned"] = rng.integers(0, 2, len(labels)).astype(float)
    features = [spend_7d, mean_30d, big_count_daily, merchants_week, volatility, latest_amount, largest_30d]
    training_set = fe.create_training_set(df=labels, features=features, label="churned",
                                          exclude_columns=["customer_id", "event_time"])
    training_df = training_set.load_df()
    X = training_df.drop(columns=["churned"])
    model = HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(X, training_df["churned"])

    with mlflow.start_run():
        fe.log_model(model=model, artifact_path="churn_model", flavor=mlflow.sklearn, training_set=training_set,
                     registered_model_name="churn_model")

    scored = fe.score_batch(model_uri="models:/churn_model/1", df=labels.drop(columns=["churned"]))
    display(scored.head())

    fe.delete_feature(full_name="ml.payments.last_three_amounts")
    RESULT = {"history": history, "training": training_df, "scored": scored, "features": features,
              "last_amounts": last_amounts, "registered": registered, "fe": fe}
''')

PORTED_IMPORTS = {
    "from databricks.feature_engineering import FeatureEngineeringClient":
        "from larder import FeatureEngineeringClient",
    "from databricks.feature_engineering.entities import (": "from larder.entities import (",
}


def port(source: str) -> str:
    """The only change a port needs: the imports."""
    out = source
    for old, new in PORTED_IMPORTS.items():
        assert old in out, old
        out = out.replace(old, new)
    assert "databricks" not in out
    return out


def test_the_notebook_runs_with_only_its_imports_changed(larder_root, monkeypatch, capsys):
    import numpy as np

    monkeypatch.chdir(larder_root.parent)
    namespace: dict[str, object] = {"__name__": "notebook"}
    exec(compile(port(NOTEBOOK), "notebook.py", "exec"), namespace)  # noqa: S102 - the test's own notebook
    result = namespace["RESULT"]
    assert isinstance(result, dict)
    fe = result["fe"]
    try:
        assert "ml.payments.spend_7d amount_avg_rolling_30d_1d True" in capsys.readouterr().out
        history, training, scored = result["history"], result["training"], result["scored"]
        assert list(history.columns) == ["customer_id", "event_time", "spend_7d", "amount_avg_rolling_30d_1d",
                                         "amount_max_rolling_30d"]
        assert len(training) == 500 and training.columns[-1] == "churned"
        assert {"prediction", "spend_7d", "merchants_7d"} <= set(scored.columns)
        np.testing.assert_allclose(scored["spend_7d"].fillna(-1).to_numpy(),
                                   training["spend_7d"].fillna(-1).to_numpy())
        assert len(result["registered"]) == 8
        names = {f.name for f in fe.list_features(catalog_name="ml", schema_name="payments")}
        assert "last_three_amounts" not in names and "spend_7d" in names
        lineage = fe.feature_lineage("ml.payments.spend_7d")
        assert lineage["models"] and lineage["models"][0]["registered_name"] == "churn_model"
    finally:
        fe.close()
