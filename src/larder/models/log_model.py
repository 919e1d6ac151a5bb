"""``log_model``: an MLflow model that carries its feature spec and fetches its own features.

The raw model is saved with its own flavour (``mlflow.sklearn``, ``mlflow.xgboost``, ...) inside a
pyfunc model (:class:`~larder.models.pyfunc.FeatureAwareModel`) whose ``larder/`` artifact holds the
pinned feature spec (with the functions' code) and where each table is published online (see
:mod:`larder.models.bundle`). The pyfunc's input signature is what a caller sends: the lookup keys,
timestamp lookup keys, request-time function inputs and any other non-label column the raw model was
trained on; never the looked-up features. The lineage goes into the catalog
(:mod:`larder.catalog.models`), in the same transaction as the function-usage records that stop
``drop_function`` from removing a version a model needs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from larder._version import __version__
from larder.catalog.base import current_user
from larder.catalog.functions import record_function_usage
from larder.catalog.models import ModelFeatureRecord, ModelFunctionRecord, ModelRecord, ModelTableRecord
from larder.context import Context
from larder.errors import LarderError, ModelError
from larder.models.bundle import (
    ARTIFACT_KEY,
    FORMAT_VERSION,
    META_FILE,
    RAW_DIR,
    SPEC_FILE,
    RawModel,
    catalog_publications,
)
from larder.models.pyfunc import MISSING_KEYS_PARAM
from larder.models.tracking import ensure_tracking, mlflow_errors
from larder.redaction import redact_url
from larder.training.spec import FeatureSpec

_log = logging.getLogger(__name__)

#: Rows of the training set used to infer the output signature and the input example.
SAMPLE_ROWS = 5
_ENTRY = Path(__file__).with_name("_entry.py")


def _check_flavor(flavor: Any) -> str:
    if not isinstance(flavor, ModuleType) or not callable(getattr(flavor, "save_model", None)):
        raise ModelError(
            f"flavor must be an MLflow flavour module with save_model(), such as mlflow.sklearn, got {flavor!r}. "
            "Pass the module itself: log_model(model, 'model', flavor=mlflow.sklearn, training_set=ts)."
        )
    return flavor.__name__


def _check_training_set(training_set: Any) -> tuple[FeatureSpec, list[str], list[str]]:
    spec = getattr(training_set, "feature_spec", None)
    if not isinstance(spec, FeatureSpec):
        raise ModelError(
            f"training_set must be the TrainingSet the model was trained on (from create_training_set()), got "
            f"{type(training_set).__name__}."
        )
    return spec, list(training_set.feature_columns), list(training_set.labels)


def _caller_frame(training_set: Any) -> pd.DataFrame:
    """The caller's rows of the training set (before features were joined); of a Spark DataFrame, its
    first rows (all the signature and the check prediction need)."""
    frame = getattr(training_set, "_df", None)
    if isinstance(frame, pd.DataFrame):
        return frame
    if frame is not None and hasattr(frame, "sparkSession"):
        return frame.limit(SAMPLE_ROWS).toPandas()
    return training_set.load_df()  # type: ignore[no-any-return]


def model_input_columns(spec: FeatureSpec, feature_columns: Sequence[str]) -> list[str]:
    """What a caller of the model sends: the spec's inputs, then the raw model's other columns that no
    lookup or function produces (pass-through columns of the training data)."""
    produced = set(spec.produced_columns)
    out = list(spec.input_columns)
    out += [c for c in feature_columns if c not in produced and c not in out]
    return out


def _save_raw(flavor: ModuleType, model: Any, path: Path, flavor_kwargs: dict[str, Any]) -> None:
    kwargs = dict(flavor_kwargs)
    if not {"pip_requirements", "extra_pip_requirements", "conda_env"} & set(kwargs):
        defaults = getattr(flavor, "get_default_pip_requirements", None)
        if callable(defaults):
            # MLflow would otherwise infer them in a subprocess (seconds); the outer model declares
            # the environment anyway
            kwargs["pip_requirements"] = list(defaults())
    if flavor.__name__ == "mlflow.sklearn" and not {"serialization_format", "skops_trusted_types"} & set(kwargs):
        # MLflow 3's sklearn default (skops) refuses to save pipelines holding types outside its trusted
        # list, larder's own transformers included; the model is the user's own, so use cloudpickle.
        kwargs["serialization_format"] = "cloudpickle"
    with mlflow_errors(f"Saving the model with {flavor.__name__}.save_model"):
        try:
            flavor.save_model(model, str(path), **kwargs)
        except TypeError as exc:
            raise ModelError(f"{flavor.__name__}.save_model() rejected the arguments {sorted(kwargs)}: {exc}") from exc


def _requirements(raw_dir: Path, extra: Sequence[str] | None) -> list[str]:
    """The pyfunc's pip requirements: larder (with its online-store extras, since the store can be
    changed on the serving host), MLflow and cloudpickle at the versions in use, the raw model's own
    requirements, then ``extra``. A later entry for the same package replaces an earlier one."""
    import cloudpickle
    import mlflow

    reqs = [f"larder[dynamodb,redis]=={__version__}", f"mlflow=={mlflow.__version__}",
            f"cloudpickle=={cloudpickle.__version__}"]
    raw_reqs = raw_dir / "requirements.txt"
    if raw_reqs.exists():
        for line in raw_reqs.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "-")):
                reqs.append(line)
    reqs += list(extra or [])
    by_name: dict[str, str] = {}
    for r in reqs:
        by_name[_req_name(r)] = r
    return list(by_name.values())


def _req_name(req: str) -> str:
    import re

    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    return (m.group(1) if m else req).lower().replace("_", "-")


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _sample_features(ctx: Context, spec: FeatureSpec, caller: pd.DataFrame, feature_columns: list[str]
                     ) -> pd.DataFrame:
    from larder.training.assemble import assemble_offline

    sample = caller.head(SAMPLE_ROWS)
    if sample.empty:
        raise ModelError("The training set has no rows; there is nothing to infer the model's signature from.")
    assembled = assemble_offline(ctx, spec, sample, use_pinned_versions=True)
    missing = [c for c in feature_columns if c not in assembled.columns]
    if missing:
        raise ModelError(f"The training set's feature columns {missing} are not produced by its feature spec.")
    return assembled[feature_columns]


def _wide_type(dtype: Any) -> Any:
    """The MLflow type a caller's column is declared as: 32-bit integers and floats widened to 64 bits."""
    from mlflow.types.schema import DataType

    return {DataType.integer: DataType.long, DataType.float: DataType.double}.get(dtype, dtype)


def _signature(user: Any, inputs: pd.DataFrame, outputs: Any, feature_columns: list[str],
               optional: Sequence[str] = ()) -> Any:
    """The pyfunc's signature: inputs are the caller's columns (``optional`` ones not required), outputs
    the raw model's, plus the ``missing_keys`` parameter.

    Integer and float inputs are declared ``long`` and ``double`` whatever their width in the training
    frame: that is what pandas and ``mlflow models serve`` hand the model by default, so MLflow's schema
    enforcement passes them through without a conversion, where an ``integer`` column would reject a
    plain int64 frame ("Can not safely convert int64 to int32"). Narrower callers are upcast by MLflow.
    """
    from mlflow.models import infer_signature
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    params = ParamSchema([ParamSpec(MISSING_KEYS_PARAM, "string", "default")])
    with mlflow_errors("Inferring the model signature"):
        inferred = infer_signature(inputs, outputs)
        if isinstance(inferred.inputs, Schema) and inferred.inputs.has_input_names():
            cols = [ColSpec(_wide_type(c.type), c.name, required=c.required and c.name not in optional)
                    if isinstance(c, ColSpec) else c for c in inferred.inputs.inputs]
            inferred = ModelSignature(inputs=Schema(cols), outputs=inferred.outputs)
    if user is None:
        return ModelSignature(inputs=inferred.inputs, outputs=inferred.outputs, params=params)
    if not isinstance(user, ModelSignature):
        raise ModelError(f"signature must be an mlflow.models.ModelSignature, got {type(user).__name__}.")
    names = set(user.inputs.input_names()) if user.inputs is not None else set()
    user_params = list(user.params.params) if user.params is not None else []
    merged = ParamSchema([*params.params, *[p for p in user_params if p.name != MISSING_KEYS_PARAM]])
    if names and names <= set(feature_columns) and not names >= set(inputs.columns):
        # the raw model's signature (features in, predictions out): keep its outputs, take our inputs
        return ModelSignature(inputs=inferred.inputs, outputs=user.outputs or inferred.outputs, params=merged)
    missing = [c for c in inputs.columns if c not in names]
    if missing:
        raise ModelError(
            f"signature's inputs {sorted(names)} lack the model's input column(s) {missing}. Give the raw model's "
            "signature (features in) or one whose inputs are the keys and request-time columns, or omit it."
        )
    return ModelSignature(inputs=user.inputs, outputs=user.outputs or inferred.outputs, params=merged)


def _with_outputs(signature: Any, output_schema: Any) -> Any:
    """``signature`` with ``output_schema`` (an ``mlflow.types.Schema``) as its outputs."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema

    if not isinstance(output_schema, Schema):
        raise ModelError(f"output_schema must be an mlflow.types.Schema, got {type(output_schema).__name__}.")
    return ModelSignature(inputs=signature.inputs, outputs=output_schema, params=signature.params)


def log_model(
    ctx: Context,
    model: Any,
    artifact_path: str,
    *,
    flavor: ModuleType,
    training_set: Any,
    registered_model_name: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    infer_input_example: bool = False,
    extra_pip_requirements: Sequence[str] | None = None,
    flavor_kwargs: dict[str, Any] | None = None,
    await_registration_for: int | None = 300,
    output_schema: Any = None,
    registry_uri: str | None = None,
) -> Any:
    """Log ``model`` with its feature spec; see ``FeatureEngineeringClient.log_model``. Returns MLflow's
    ``ModelInfo`` (``model_uri``, ``run_id``, ``registered_model_version``)."""
    import mlflow

    flavor_name = _check_flavor(flavor)
    if training_set is None:
        raise ModelError(
            "log_model needs training_set=: the TrainingSet the model was trained on (from create_training_set()), "
            "whose feature spec the model carries."
        )
    spec, feature_columns, labels = _check_training_set(training_set)
    if await_registration_for is not None and (not isinstance(await_registration_for, int)
                                               or isinstance(await_registration_for, bool)
                                               or await_registration_for < 0):
        raise ModelError(f"await_registration_for must be a number of seconds (or None), got {await_registration_for!r}.")
    if not isinstance(artifact_path, str) or not artifact_path or "/" in artifact_path:
        raise ModelError(f"artifact_path must be a non-empty name without '/', such as 'model', got {artifact_path!r}.")
    caller = _caller_frame(training_set)
    input_columns = model_input_columns(spec, feature_columns)
    absent = [c for c in input_columns if c not in caller.columns]
    if absent:
        raise ModelError(f"The training set's DataFrame lacks the model input column(s) {absent}.")
    in_memory = [f.output_name for f in spec.features if f.feature.get("source", {}).get("type") == "dataframe"]
    if in_memory:
        raise ModelError(
            f"The training set's features {in_memory} read a DataFrameSource, which a model cannot carry. Write "
            "the DataFrame to a feature table and define the features on a DeltaTableSource."
        )
    from larder.online.features import feature_locations

    tables = list(spec.table_versions())
    online = catalog_publications(ctx.catalog, ctx.root, [*tables, *feature_locations(spec)])
    tracking_uri = ensure_tracking(ctx, registry_uri=registry_uri)

    tmp = Path(tempfile.mkdtemp(prefix="larder-model-"))
    try:
        bundle = tmp / ARTIFACT_KEY
        bundle.mkdir()
        raw_dir = bundle / RAW_DIR
        _save_raw(flavor, model, raw_dir, dict(flavor_kwargs or {}))
        spec.save(bundle / SPEC_FILE)
        meta = {
            "format_version": FORMAT_VERSION, "larder_version": __version__, "flavor": flavor_name,
            "input_columns": input_columns, "feature_columns": feature_columns, "labels": labels,
            # the catalog's identity, not its credentials: a model loaded elsewhere gets those from its
            # environment (PGPASSWORD / ~/.pgpass for PostgreSQL; see docs/models.md)
            "catalog_url": redact_url(ctx.catalog_url, remove=True), "root": str(ctx.root), "online": online,
            "table_versions": spec.table_versions(), "function_versions": spec.function_versions(),
        }
        (bundle / META_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")

        sample = _sample_features(ctx, spec, caller, feature_columns)
        try:
            outputs = RawModel.load(raw_dir).predict(sample)
        except LarderError:
            raise
        except Exception as exc:
            raise ModelError(
                f"The model cannot predict on its training set's features (columns {feature_columns}): "
                f"{type(exc).__name__}: {exc}. Was it trained on training_set.load_df() minus the label?"
            ) from exc
        inputs = caller[input_columns].head(SAMPLE_ROWS).reset_index(drop=True)
        # online, a timestamp lookup key only anchors a lookback window: callers may leave it out
        optional = [s.timestamp_lookup_key for s in spec.lookups if s.timestamp_lookup_key]
        optional += [str(f.timeseries_column) for f in spec.features if not f.is_request]  # default: now
        sig = _signature(signature, inputs, outputs, feature_columns, optional)
        if output_schema is not None:
            sig = _with_outputs(sig, output_schema)
        example = input_example if input_example is not None else (inputs if infer_input_example else None)
        reqs = _requirements(raw_dir, [*spec.extra_pip_requirements, *(extra_pip_requirements or [])])

        started = None
        if mlflow.active_run() is None:
            with mlflow_errors("Starting an MLflow run"):
                started = mlflow.start_run()
        try:
            with mlflow_errors(f"Logging model {artifact_path!r}"):
                info = mlflow.pyfunc.log_model(
                    name=artifact_path, python_model=str(_ENTRY), artifacts={ARTIFACT_KEY: str(bundle)},
                    signature=sig, input_example=example, pip_requirements=reqs,
                    registered_model_name=registered_model_name,
                    await_registration_for=0 if await_registration_for is None else await_registration_for,
                )
        except BaseException:
            if started is not None:
                mlflow.end_run(status="FAILED")
            raise
        if started is not None:
            mlflow.end_run()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    run_uri = f"runs:/{info.run_id}/{artifact_path}"
    version = str(info.registered_model_version) if registered_model_name and info.registered_model_version else None
    try:
        _record_lineage(ctx, spec, info=info, run_uri=run_uri, artifact_path=artifact_path, flavor=flavor_name,
                        tracking_uri=redact_url(tracking_uri, remove=True), registered_name=registered_model_name,
                        version=version, input_columns=input_columns, feature_columns=feature_columns, labels=labels, online=online)
    except BaseException:
        if registered_model_name and version is not None:
            _forget_version(registered_model_name, version)
        raise
    return info


def _forget_version(name: str, version: str) -> None:
    """Best effort: delete a registered version whose lineage could not be recorded."""
    import mlflow

    try:
        mlflow.MlflowClient().delete_model_version(name, version)
    except Exception as exc:  # noqa: BLE001 - already failing; report the original error
        _log.warning("larder: could not delete model version %s/%s after a failure: %s", name, version, exc)


def _record_lineage(ctx: Context, spec: FeatureSpec, *, info: Any, run_uri: str, artifact_path: str, flavor: str,
                    tracking_uri: str, registered_name: str | None, version: str | None, input_columns: list[str],
                    feature_columns: list[str], labels: list[str], online: dict[str, Any]) -> None:
    rec = ModelRecord(
        run_uri=run_uri, model_uri=str(info.model_uri), run_id=str(info.run_id), artifact_path=artifact_path,
        registered_name=registered_name, registered_version=version, flavor=flavor, tracking_uri=tracking_uri,
        feature_spec=spec.to_yaml(), input_columns=input_columns, feature_columns=feature_columns, labels=labels,
        owner=current_user(),
    )
    positions: dict[str, int] = {}
    for table, delta_version in spec.table_versions().items():
        pub = online.get(table)
        summary = None if pub is None else {k: pub[k] for k in ("store_type", "store_name", "store_spec",
                                                                  "delta_version", "published_at")}
        positions[table] = len(positions)
        rec.tables.append(ModelTableRecord(position=positions[table], table_name=table, delta_version=delta_version,
                                           online=summary))
    pos = 0
    for step in spec.lookups:
        for feat, out, typ in zip(step.features, step.output_names, step.feature_types, strict=True):
            rec.features.append(ModelFeatureRecord(position=pos, table_name=step.table, feature_name=feat,
                                                   output_name=out, dtype=typ,
                                                   default_value=_plain(step.default_values.get(out))))
            pos += 1
    for i, fn in enumerate(spec.functions):
        rec.functions.append(ModelFunctionRecord(position=i, function_name=fn.name, function_version=fn.version,
                                                 input_bindings=dict(fn.input_bindings), output_name=fn.output_name))
    with ctx.catalog.session() as s:
        s.add(rec)
        record_function_usage(s, registered_name or run_uri, version or "run", spec.function_versions().items())
        if spec.features:
            from larder.catalog.declarative import record_feature_usage

            record_feature_usage(s, [(f.name, f.source_version) for f in spec.features
                                     if not f.is_request and f.feature.get("catalog_name")],
                                 run_uri=run_uri, registered_name=registered_name, registered_version=version)


__all__ = ["SAMPLE_ROWS", "log_model", "model_input_columns"]
