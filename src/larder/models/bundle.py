"""What a feature-aware model carries, and how it is found again.

``log_model`` writes one MLflow artifact directory, ``larder/``, inside the pyfunc model::

    larder/
      larder.json         format version, larder version, flavour, input/feature/label columns,
                          the catalog URL and where each table was published (see below)
      feature_spec.yaml   the FeatureSpec: tables with pinned Delta versions, functions with pinned
                          versions, their source and base64 cloudpickle
      raw_model/          the user's model, saved with its own MLflow flavour

``larder.json["online"]`` maps each feature table to its active publication at log time: the store
type, name (in ``larder.yaml``) and spec without credentials (a SQLite path made absolute), and the
online table (keys, timestamp key, Arrow schema). :func:`resolve_online` decides at load time where
each table is read from (see its docstring and ``docs/models.md``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from larder.errors import ConfigError, ModelError, OnlineStoreError
from larder.models.tracking import mlflow_errors
from larder.names import parse_name
from larder.redaction import redact_text, redact_url
from larder.training.spec import FeatureSpec, LookupStep

FORMAT_VERSION = 1
ARTIFACT_KEY = "larder"
META_FILE = "larder.json"
SPEC_FILE = "feature_spec.yaml"
RAW_DIR = "raw_model"

#: One online store spec (JSON) for every table of the model, or the name of a store in larder.yaml.
STORE_ENV = "LARDER_ONLINE_STORE"
#: ``{table name: spec or store name}`` as JSON, or the path of a YAML/JSON file holding it; ``"*"``
#: matches every table not named.
STORES_ENV = "LARDER_ONLINE_STORES"
#: ``error`` (default) or ``null``: what a served model does with keys missing from the online store
#: whose features have no default value.
MISSING_KEYS_ENV = "LARDER_MISSING_KEYS"
MISSING_KEY_POLICIES = ("error", "null")

_log = logging.getLogger(__name__)


@dataclass
class ModelBundle:
    """The ``larder/`` directory of a logged model, loaded."""

    path: Path
    meta: dict[str, Any]
    spec: FeatureSpec

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ModelBundle:
        p = Path(path)
        meta_file = p / META_FILE
        if not meta_file.exists():
            raise ModelError(
                f"{str(p)!r} is not a larder model directory (no {META_FILE}). Log the model with "
                "FeatureEngineeringClient.log_model()."
            )
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        fmt = meta.get("format_version")
        if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
            raise ModelError(
                f"The model at {str(p)!r} was written by a newer larder (model format {fmt!r}; this larder "
                f"reads up to {FORMAT_VERSION}). Upgrade larder."
            )
        return cls(path=p, meta=meta, spec=FeatureSpec.load(p / SPEC_FILE))

    @property
    def input_columns(self) -> list[str]:
        """The columns a caller sends: lookup keys, timestamps, request-time and pass-through columns."""
        return list(self.meta["input_columns"])

    @property
    def feature_columns(self) -> list[str]:
        """The columns the raw model was trained on, in order."""
        return list(self.meta["feature_columns"])

    @property
    def flavor(self) -> str:
        return str(self.meta["flavor"])

    @cached_property
    def raw_model(self) -> RawModel:
        return RawModel.load(self.path / RAW_DIR)


class RawModel:
    """The user's model behind MLflow's pyfunc interface, called without repeated schema checks."""

    def __init__(self, pyfunc_model: Any) -> None:
        self.pyfunc_model = pyfunc_model
        # The flavour's pyfunc implementation (e.g. mlflow.sklearn's wrapper) takes the frame as is;
        # PyFuncModel.predict would add per-call input-schema and tracing work. The raw model is
        # saved without a signature, so there is no schema to enforce either way.
        impl = getattr(pyfunc_model, "_model_impl", None)
        self._predict = impl.predict if impl is not None and hasattr(impl, "predict") else pyfunc_model.predict

    @classmethod
    def load(cls, path: Path) -> RawModel:
        import mlflow

        with mlflow_errors(f"Loading the raw model at {str(path)!r}"):
            return cls(mlflow.pyfunc.load_model(str(path)))

    def predict(self, features: Any, params: Any = None) -> Any:
        if not params:
            return self._predict(features)
        try:
            return self._predict(features, params=dict(params))
        except TypeError as exc:
            if "params" not in str(exc):
                raise
            raise ModelError(
                f"The model's predict() takes no params (got {sorted(params)}); call it without params."
            ) from exc


# -- finding a model's bundle from a model URI ------------------------------------------------------
def local_model_dir(model_uri: str) -> Path:
    """Download (or locate) the MLflow model at ``model_uri`` (``runs:/``, ``models:/name/version``,
    ``models:/name@alias``, ``models:/<model id>`` or a local path)."""
    import mlflow

    if not isinstance(model_uri, str) or not model_uri:
        raise ModelError(f"model_uri must be a non-empty string such as 'models:/price/1', got {model_uri!r}.")
    if os.path.isdir(model_uri):
        return Path(model_uri)
    with mlflow_errors(f"Loading model {model_uri!r}"):
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))


def bundle_dir(model_dir: Path, model_uri: str = "") -> Path:
    """The ``larder/`` artifact directory inside a local MLflow model directory."""
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.exists():
        raise ModelError(f"{model_uri or str(model_dir)!r} is not an MLflow model (no MLmodel file).")
    conf = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
    artifacts = ((conf.get("flavors") or {}).get("python_function") or {}).get("artifacts") or {}
    entry = artifacts.get(ARTIFACT_KEY)
    if not entry:
        raise ModelError(
            f"Model {model_uri or str(model_dir)!r} was not logged with larder's log_model (it carries no feature "
            "spec). Log it with FeatureEngineeringClient.log_model(model, ..., training_set=...)."
        )
    return model_dir / entry["path"]


def load_bundle(model_uri: str) -> ModelBundle:
    """The :class:`ModelBundle` of the model at ``model_uri``."""
    model_dir = local_model_dir(model_uri)
    return ModelBundle.load(bundle_dir(model_dir, model_uri))


# -- where each table is read online ---------------------------------------------------------------
@dataclass
class TableSource:
    """Where one feature table of a model is read online."""

    table: str
    spec: Any  # an OnlineStoreSpec
    online_table: Any  # larder.online.stores.base.OnlineTable
    origin: str  # "LARDER_ONLINE_STORES", "LARDER_ONLINE_STORE", "catalog" or "model"
    details: dict[str, Any] = field(default_factory=dict)


def _absolute_spec(spec_json: dict[str, Any], root: str | None) -> dict[str, Any]:
    out = dict(spec_json)
    if out.get("type") == "sqlite" and not out.get("path") and root:
        out["path"] = str(Path(root) / "online.db")
    return out


def _info(store_type: str, store_name: str | None, store_spec: dict[str, Any], online_table: dict[str, Any],
          delta_version: int, published_at: Any, root: Path | None) -> dict[str, Any]:
    return {
        "store_type": store_type,
        "store_name": store_name,
        "store_spec": _absolute_spec(dict(store_spec), str(root) if root else None),
        "online_table": dict(online_table),
        "delta_version": delta_version,
        "published_at": published_at.isoformat() if hasattr(published_at, "isoformat") else str(published_at),
    }


def catalog_publications(catalog: Any, root: Path | None, tables: list[str]) -> dict[str, dict[str, Any]]:
    """``{table: publication info}`` of the tables' latest active publications in ``catalog`` (tables
    never published, or whose online tables were dropped, are absent). ``root`` is the larder root the
    catalog belongs to (it locates the default SQLite store)."""
    from sqlalchemy import select

    from larder.catalog.online import PublicationRecord

    out: dict[str, dict[str, Any]] = {}
    with catalog.session() as s:
        for table in tables:
            rec = s.scalars(
                select(PublicationRecord)
                .where(PublicationRecord.table_name == table, PublicationRecord.dropped_at.is_(None))
                .order_by(PublicationRecord.id.desc())
            ).first()
            if rec is not None:
                out[table] = _info(rec.store_type, rec.store_name, rec.store_spec, rec.online_table,
                                   rec.delta_version, rec.published_at, root)
    return out


def _parse_store_value(value: Any, *, where: str, config: Any) -> tuple[Any, str | None]:
    """``(spec, store name)`` from a spec mapping or the name of a store in larder.yaml."""
    from larder.online.stores.specs import parse_spec

    if isinstance(value, str):
        stores = config.online_stores if config is not None else {}
        if value not in stores:
            raise ConfigError(
                f"{where}: {value!r} is neither an online store spec (a JSON object with a 'type') nor the name "
                f"of a store in larder.yaml (known: {sorted(stores) or 'none'})."
            )
        return stores[value], value
    try:
        return parse_spec(value), None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _env_json(name: str) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if raw.startswith(("{", "[", '"')):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{name} is not valid JSON ({exc}): {raw[:200]!r}") from exc
    if name == STORE_ENV:
        return raw  # a store name from larder.yaml
    path = Path(raw).expanduser()
    if not path.exists():
        raise ConfigError(
            f"{name}={raw!r} is neither JSON nor the path of an existing YAML/JSON file. Set it to e.g. "
            '\'{"main.default.houses": {"type": "redis", "url": "redis://cache:6379/0"}}\' or a file path.'
        )
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: {path} is not valid YAML/JSON: {exc}") from exc


def env_overrides(config: Any = None) -> tuple[dict[str, tuple[Any, str | None]], tuple[Any, str | None] | None]:
    """The store overrides of the environment: ``({table full name or "*": (spec, name)}, spec for
    every table or None)``."""
    per_table: dict[str, tuple[Any, str | None]] = {}
    mapping = _env_json(STORES_ENV)
    if mapping is not None:
        if not isinstance(mapping, dict):
            raise ConfigError(f"{STORES_ENV} must map table names to store specs, got {type(mapping).__name__}.")
        for table, value in mapping.items():
            key = "*" if table == "*" else parse_name(str(table)).full
            per_table[key] = _parse_store_value(value, where=f"{STORES_ENV}[{table!r}]", config=config)
    single = _env_json(STORE_ENV)
    everywhere = _parse_store_value(single, where=STORE_ENV, config=config) if single is not None else None
    return per_table, everywhere


def _online_table_from_step(step: LookupStep) -> Any:
    """The online table a lookup reads when nothing recorded it: keys, timestamp key and features
    typed as the spec pins them."""
    import pyarrow as pa

    from larder.online.stores.base import OnlineTable
    from larder.training.spec import parse_arrow_type

    fields = [pa.field(k, parse_arrow_type(t)) for k, t in zip(step.table_keys, step.key_types, strict=True)]
    if step.timestamp_key:
        fields.append(pa.field(step.timestamp_key, pa.timestamp("us", tz="UTC")))
    for feat, typ in zip(step.features, step.feature_types, strict=True):
        if feat not in {f.name for f in fields}:
            fields.append(pa.field(feat, parse_arrow_type(typ)))
    return OnlineTable(name=step.table, primary_keys=list(step.table_keys), timestamp_key=step.timestamp_key,
                       schema=pa.schema(fields))


def reachable_catalog_publications(bundle: ModelBundle, tables: list[str]) -> dict[str, dict[str, Any]] | None:
    """Re-resolve the tables' publications in a catalog, when one is reachable from this host:
    the larder root of ``LARDER_ROOT``/``LARDER_CONFIG`` if set, else the catalog the model was logged
    with. A SQLite catalog counts only if its file exists (nothing is created). A table is taken from
    the first catalog that has a publication of it. Returns None when no catalog is reachable."""
    from larder.config import CONFIG_ENV, ROOT_ENV, load_config, resolve_root

    candidates: list[tuple[str, Path | None]] = []
    if os.environ.get(ROOT_ENV) or os.environ.get(CONFIG_ENV):
        root = resolve_root(None)
        try:
            config = load_config(root)
        except ConfigError as exc:
            _log.warning("larder: cannot read the larder configuration (%s); using the model's own records.", exc)
            config = None
        if config is not None:
            candidates.append((config.catalog_url or f"sqlite:///{root / 'catalog.db'}", root))
    if bundle.meta.get("catalog_url"):
        root_s = bundle.meta.get("root")
        candidates.append((bundle.meta["catalog_url"], Path(root_s) if root_s else None))
    found: dict[str, dict[str, Any]] | None = None
    for url, cat_root in dict.fromkeys(candidates):
        if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
            continue
        try:
            pubs = _publications_at(url, cat_root, [t for t in tables if t not in (found or {})])
        except Exception as exc:  # noqa: BLE001 - an unreachable catalog is not an error here
            _log.info("larder: catalog %s not reachable (%s); trying the next source.", redact_url(url),
                      redact_text(str(exc)))
            continue
        found = {**(found or {}), **pubs}
        if len(found) == len(tables):
            break
    return found


def _publications_at(url: str, root: Path | None, tables: list[str]) -> dict[str, dict[str, Any]]:
    from larder.catalog import Catalog

    catalog = Catalog(url)
    try:
        return catalog_publications(catalog, root, tables)
    finally:
        catalog.close()


def resolve_online(bundle: ModelBundle, *, config: Any = None, use_catalog: bool = True,
                   publications: dict[str, dict[str, Any]] | None = None) -> dict[str, TableSource]:
    """Where each feature table of the model is read online, first match wins per table:

    1. ``LARDER_ONLINE_STORES`` (by table name, then ``"*"``);
    2. ``LARDER_ONLINE_STORE`` (every table);
    3. the table's latest active publication in a reachable catalog (``use_catalog``);
    4. the publication recorded in the model when it was logged.

    ``publications`` (``{table: info}`` from :func:`catalog_publications`) replaces the catalog lookup
    of step 3, for a caller that holds the catalog already.

    The online table layout (keys, schema) comes from the catalog's or the model's publication
    record, else from the feature spec. Raises :class:`~larder.errors.OnlineStoreError` naming the
    tables that have no source.
    """
    from larder.online.features import feature_locations
    from larder.online.stores.base import online_table_from_info
    from larder.online.stores.specs import parse_spec

    features = feature_locations(bundle.spec)  # declarative features: published under their own names
    tables = list(dict.fromkeys([*(s.table for s in bundle.spec.lookups), *features]))
    per_table, everywhere = env_overrides(config)
    embedded: dict[str, dict[str, Any]] = bundle.meta.get("online") or {}
    live = publications
    if live is None and use_catalog and tables:
        live = reachable_catalog_publications(bundle, tables)
    out: dict[str, TableSource] = {}
    missing: list[str] = []
    steps: list[Any] = [*bundle.spec.lookups, *features]
    for step in steps:
        table = step if isinstance(step, str) else step.table
        if table in out:
            continue
        recorded = (live or {}).get(table) or embedded.get(table)
        if recorded is None and isinstance(step, str):  # a feature's layout is only in its publication
            if table not in missing:
                missing.append(table)
            continue
        layout = online_table_from_info(recorded["online_table"]) if recorded else _online_table_from_step(step)
        if table in per_table or "*" in per_table:
            spec, name = per_table.get(table) or per_table["*"]
            out[table] = TableSource(table, spec, layout, STORES_ENV, {"store_name": name})
        elif everywhere is not None:
            spec, name = everywhere
            out[table] = TableSource(table, spec, layout, STORE_ENV, {"store_name": name})
        elif recorded:
            spec = None
            name = recorded.get("store_name")
            if name and config is not None and name in config.online_stores:
                spec = config.online_stores[name]  # the configured spec may carry credentials
            if spec is None:
                spec = parse_spec(recorded["store_spec"])
            origin = "catalog" if live and table in live else "model"
            out[table] = TableSource(table, spec, layout, origin, dict(recorded))
        elif table not in missing:
            missing.append(table)
    if missing:
        raise OnlineStoreError(
            f"The model reads feature table(s) {missing} online, but they are not published to any online store "
            f"(none was recorded when the model was logged{' or is in the catalog' if live is not None else ''}). "
            f"Publish them with fe.publish_table(...), or tell the model where they are with {STORES_ENV}="
            "'{\"<table>\": {\"type\": \"dynamodb\", ...}}' or " + STORE_ENV + "='{\"type\": ...}'."
        )
    return out


def missing_keys_policy(value: str | None = None) -> str:
    """The missing-key policy: ``value`` when given and not ``"default"``, else ``LARDER_MISSING_KEYS``,
    else ``"error"``."""
    chosen = value if value not in (None, "", "default") else os.environ.get(MISSING_KEYS_ENV, "") or "error"
    chosen = str(chosen).strip().lower()
    if chosen not in MISSING_KEY_POLICIES:
        raise ConfigError(
            f"Unknown missing-key policy {chosen!r} (from {'the request' if value not in (None, '', 'default') else MISSING_KEYS_ENV}): "
            f"use one of {list(MISSING_KEY_POLICIES)}."
        )
    return chosen


__all__ = [
    "ARTIFACT_KEY",
    "FORMAT_VERSION",
    "MISSING_KEYS_ENV",
    "ModelBundle",
    "RawModel",
    "STORES_ENV",
    "STORE_ENV",
    "TableSource",
    "bundle_dir",
    "catalog_publications",
    "env_overrides",
    "load_bundle",
    "local_model_dir",
    "missing_keys_policy",
    "resolve_online",
]
