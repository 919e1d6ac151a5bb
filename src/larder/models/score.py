"""``score_batch``: the offline path of a feature-aware model.

The model's feature spec is executed with point-in-time lookups against the **latest** Delta versions
of its tables (:func:`larder.training.assemble.assemble_offline`), its functions are applied, and the
raw model predicts. A feature column already present in ``df`` overrides the looked-up (or computed)
value, as in Databricks. The result is ``df``'s columns, the features and a ``prediction`` column.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from larder.context import Context
from larder.errors import LarderError, ModelError
from larder.models.bundle import ModelBundle, load_bundle
from larder.models.tracking import ensure_tracking

PREDICTION = "prediction"

#: Spark SQL result types (what Databricks' ``score_batch`` takes) and their pandas dtypes.
RESULT_TYPES: dict[str, str] = {
    "double": "float64", "float": "float32", "long": "int64", "bigint": "int64", "int": "int32",
    "integer": "int32", "short": "int16", "smallint": "int16", "byte": "int8", "tinyint": "int8",
    "boolean": "bool", "bool": "bool", "string": "str",
}


def _as_dtype(result_type: str) -> str:
    if not isinstance(result_type, str) or result_type.strip().lower() not in RESULT_TYPES:
        raise ModelError(f"result_type must be one of {sorted(RESULT_TYPES)}, got {result_type!r}.")
    return RESULT_TYPES[result_type.strip().lower()]


def prediction_column(predictions: Any, index: pd.Index, result_type: str) -> pd.Series:
    """Model output as one column of ``result_type`` values (a single-column frame counts as one
    column; a 2-D output becomes one list per row)."""
    dtype = _as_dtype(result_type)
    if isinstance(predictions, pd.DataFrame):
        predictions = predictions.iloc[:, 0] if predictions.shape[1] == 1 else predictions.to_numpy()
    if isinstance(predictions, pd.Series):
        values: Any = predictions.to_numpy()
    else:
        values = np.asarray(predictions)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if len(values) != len(index):
        raise ModelError(f"The model returned {len(values)} predictions for {len(index)} rows.")
    if values.ndim == 2:
        return pd.Series([np.asarray(row).astype(dtype).tolist() for row in values], index=index, name=PREDICTION)
    try:
        return pd.Series(values, index=index, name=PREDICTION).astype(dtype)
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"Cannot convert the model's predictions ({values.dtype}) to result_type {result_type!r}: {exc}."
        ) from exc


def offline_features(ctx: Context, bundle: ModelBundle, df: Any, *, override: bool = True) -> pd.DataFrame:
    """The assembled frame (``df``'s columns then the features) on the latest offline data."""
    from larder.training.assemble import as_pandas, assemble_offline

    frame = as_pandas(df)
    check_input_columns(bundle, frame.columns)
    return assemble_offline(ctx, bundle.spec, frame, use_pinned_versions=False,
                            override_with_input_columns=override)


def check_input_columns(bundle: ModelBundle, columns: Any) -> None:
    """Raise ``ModelError`` naming the model's input columns (keys, timestamps, request-time columns)
    that ``columns`` (of the caller's df) lacks."""
    present = set(columns)
    missing = [c for c in bundle.input_columns if c not in present and c not in bundle.spec.produced_columns]
    if missing:
        raise ModelError(
            f"df lacks the model's input column(s) {missing}; the model takes {bundle.input_columns} "
            "(keys, timestamps and request-time columns)."
        )


def check_feature_columns(feature_columns: list[str], columns: Any) -> None:
    """Raise ``ModelError`` naming the model's feature columns the assembled ``columns`` lack."""
    present = set(columns)
    absent = [c for c in feature_columns if c not in present]
    if absent:
        raise ModelError(f"The assembled features lack the model's column(s) {absent}.")


def predict_frame(bundle: ModelBundle, frame: pd.DataFrame, params: Mapping[str, Any] | None = None) -> Any:
    check_feature_columns(bundle.feature_columns, frame.columns)
    if len(frame) == 0:
        return np.empty(0)
    try:
        return bundle.raw_model.predict(frame[bundle.feature_columns], params=params)
    except LarderError:
        raise
    except Exception as exc:
        raise ModelError(f"The model's predict() failed: {type(exc).__name__}: {exc}") from exc


def score_batch(ctx: Context, model_uri: str, df: Any, result_type: str = "double", *,
                params: Mapping[str, Any] | None = None, registry_uri: str | None = None) -> Any:
    """See ``FeatureEngineeringClient.score_batch``. On the Spark engine the result is a Spark DataFrame
    (:func:`score_batch_spark`)."""
    _as_dtype(result_type)
    if params is not None and not isinstance(params, Mapping):
        raise ModelError(f"params must be a mapping of parameter names to values, got {type(params).__name__}.")
    if ctx.engine.name == "spark":
        return score_batch_spark(ctx, model_uri, df, result_type, params=params, registry_uri=registry_uri)
    if isinstance(df, pd.DataFrame) and PREDICTION in df.columns:
        raise ModelError(f"df already has a {PREDICTION!r} column; drop or rename it before score_batch().")
    ensure_tracking(ctx, registry_uri=registry_uri)
    bundle = load_bundle(model_uri)
    from larder.training.assemble import as_pandas

    frame_in = as_pandas(df)
    frame = offline_features(ctx, bundle, frame_in)
    preds = predict_frame(bundle, frame, params)
    # every column of df (excluded ones too), then the features, then the prediction
    out = frame_in.copy(deep=False)
    for col in frame.columns:
        if col not in out.columns:
            out[col] = frame[col]
    out[PREDICTION] = prediction_column(preds, frame.index, result_type)
    return out


def build_model_env(ctx: Context, model_uri: str, save_path: str, *, registry_uri: str | None = None) -> str:
    """Build the environment of the raw model inside a larder model (``mlflow.pyfunc.build_model_env``)."""
    import mlflow

    from larder.models.bundle import RAW_DIR, bundle_dir, local_model_dir
    from larder.models.tracking import mlflow_errors

    ensure_tracking(ctx, registry_uri=registry_uri)
    raw = bundle_dir(local_model_dir(model_uri), model_uri) / RAW_DIR
    with mlflow_errors(f"Building the environment of model {model_uri!r}"):
        return str(mlflow.pyfunc.build_model_env(str(raw), save_path))



class _Scorer:
    """What the executors need to predict: the raw model and its feature columns (not the bundle)."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.raw_model = bundle.raw_model
        self.feature_columns = bundle.feature_columns


def score_batch_spark(ctx: Context, model_uri: str, df: Any, result_type: str = "double", *,
                      params: Mapping[str, Any] | None = None, registry_uri: str | None = None) -> Any:
    """``score_batch`` on Spark: the features are joined in Spark (the latest table versions, ``df``'s
    columns winning), then the raw model predicts each batch of rows on the executors (``mapInPandas``).
    Nothing is collected; the result is a Spark DataFrame in ``df``'s row order: every column of ``df``,
    then the features, then ``prediction`` of ``result_type``."""
    from pyspark.sql import types as T

    from larder.training.assemble_spark import assemble_spark

    engine = ctx.engine
    frame_in = engine.to_spark(df, table="df")  # type: ignore[attr-defined]
    if PREDICTION in frame_in.columns:
        raise ModelError(f"df already has a {PREDICTION!r} column; drop or rename it before score_batch().")
    ensure_tracking(ctx, registry_uri=registry_uri)
    bundle = load_bundle(model_uri)
    check_input_columns(bundle, frame_in.columns)
    features = assemble_spark(ctx, bundle.spec, frame_in, use_pinned_versions=False,
                              override_with_input_columns=True, drop_excluded=False)
    check_feature_columns(bundle.feature_columns, features.columns)
    scorer = _Scorer(bundle)
    out_schema = T.StructType([*features.schema.fields,
                               T.StructField(PREDICTION, T._parse_datatype_string(result_type), True)])
    names = out_schema.fieldNames()

    def predict(batches: Any) -> Any:
        for batch in batches:
            preds = predict_frame(scorer, batch, params)  # type: ignore[arg-type]
            batch[PREDICTION] = prediction_column(preds, batch.index, result_type)
            yield batch[names]

    return features.mapInPandas(predict, out_schema)


__all__ = ["PREDICTION", "RESULT_TYPES", "build_model_env", "offline_features", "predict_frame", "prediction_column",
           "score_batch", "score_batch_spark"]
