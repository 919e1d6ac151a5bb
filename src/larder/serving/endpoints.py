"""Feature serving endpoints: Databricks' ``create_feature_serving_endpoint`` API over ``larder serve``.

On Databricks a feature serving endpoint is a managed service that answers lookups for one feature
spec. In larder an endpoint is a *name* recorded in the catalog: every ``larder serve`` process of the
larder root answers ``POST /serving-endpoints/{name}/invocations`` for it (the request in any of
MLflow's formats, see :mod:`larder.serving.payloads`; the response ``{"outputs": [one object per
row]}``, as Databricks answers), and ``larder serve --endpoint NAME`` runs a server for that one
endpoint with as many workers as its ``workload_size`` asks for (Small 1, Medium 2, Large 4).

>>> cfg = EndpointCoreConfig(served_entities=ServedEntity(feature_spec_name="main.default.price"))
>>> cfg.served_entities.workload_size
'Small'
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from sqlalchemy import select

from larder.catalog.base import current_user, named_record
from larder.catalog.serving import ServingEndpointRecord
from larder.context import Context
from larder.errors import FeatureSpecError
from larder.errors import ServingEndpointError as EndpointError
from larder.names import parse_name

_log = logging.getLogger(__name__)

#: Databricks: "alphanumerics and dashes; the first or last character cannot be a dash".
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")
WORKLOAD_WORKERS = {"Small": 1, "Medium": 2, "Large": 4}
#: Where ``FeatureServingEndpoint.url`` points: ``LARDER_SERVING_URL``, else ``larder serve``'s default.
SERVING_URL_ENV = "LARDER_SERVING_URL"
DEFAULT_SERVING_URL = "http://127.0.0.1:8000"


class AutoCaptureConfig:
    """Databricks' inference-table settings (capture requests and responses into a Delta table).

    larder records them; ``enabled=True`` is refused (the server does not capture requests)."""

    def __init__(self, *, catalog_name: str, schema_name: str, table_name_prefix: str, enabled: bool = True) -> None:
        self.catalog_name = catalog_name
        self.schema_name = schema_name
        self.table_name_prefix = table_name_prefix
        self.enabled = enabled

    def to_dict(self) -> dict[str, Any]:
        return {"catalog_name": self.catalog_name, "schema_name": self.schema_name,
                "table_name_prefix": self.table_name_prefix, "enabled": self.enabled}


class ServedEntity:
    """The feature spec an endpoint serves, with Databricks' sizing options.

    ``workload_size`` (``"Small"``, ``"Medium"``, ``"Large"``) sets the worker processes of
    ``larder serve --endpoint NAME`` (1, 2, 4). ``scale_to_zero_enabled`` is recorded (a ``larder serve``
    process runs until stopped). ``instance_profile_arn`` is not used: DynamoDB credentials come from
    boto3's default chain where the server runs."""

    def __init__(self, *, feature_spec_name: str, name: str = "", workload_size: str = "Small",
                 scale_to_zero_enabled: bool = True, instance_profile_arn: str | None = None) -> None:
        if not isinstance(feature_spec_name, str) or not feature_spec_name:
            raise EndpointError("ServedEntity: feature_spec_name must name a feature spec.")
        if workload_size not in WORKLOAD_WORKERS:
            raise EndpointError(
                f"ServedEntity: workload_size must be one of {list(WORKLOAD_WORKERS)}, got {workload_size!r}."
            )
        self.feature_spec_name = feature_spec_name
        self.name = name
        self.workload_size = workload_size
        self.scale_to_zero_enabled = bool(scale_to_zero_enabled)
        self.instance_profile_arn = instance_profile_arn


class Servable:
    """Databricks' deprecated way to give an endpoint its features inline; see :class:`ServedEntity`."""

    def __init__(self, features: list[Any], workload_size: str = "Small", scale_to_zero_enabled: bool = True,
                 extra_pip_requirements: list[str] | None = None) -> None:
        self.features = features
        self.workload_size = workload_size
        self.scale_to_zero_enabled = scale_to_zero_enabled
        self.extra_pip_requirements = extra_pip_requirements


class EndpointCoreConfig:
    """An endpoint's configuration: ``EndpointCoreConfig(served_entities=ServedEntity(...))``."""

    def __init__(self, servables: Servable | None = None, *, served_entities: ServedEntity | None = None,
                 auto_capture_config: AutoCaptureConfig | None = None) -> None:
        if isinstance(servables, ServedEntity):
            raise EndpointError(
                "served_entities should be specified as named argument, e.g. "
                "EndpointCoreConfig(served_entities=ServedEntity(...))"
            )
        if servables is None and served_entities is None:
            raise EndpointError("served_entities should be specified in EndpointCoreConfig.")
        if servables is not None and served_entities is not None:
            raise EndpointError("Only one of servables and served_entities should be specified in EndpointCoreConfig.")
        self.servables = servables
        self.served_entities = served_entities
        self.auto_capture_config = auto_capture_config


class FeatureServingEndpoint:
    """An endpoint as ``get_feature_serving_endpoint`` returns it.

    ``state`` is ``{"ready": "READY" | "NOT_READY", "config_update": "NOT_UPDATING"}``: ready when
    the feature spec exists and each of its tables is published online (else ``"message"`` says what is
    missing). ``url`` is the endpoint's invocations URL under ``$LARDER_SERVING_URL`` (default
    ``http://127.0.0.1:8000``, ``larder serve``'s)."""

    def __init__(self, name: str, creator: str | None, creation_time_millis: int, state: dict[str, str], *,
                 feature_spec_name: str = "", workload_size: str = "Small",
                 scale_to_zero_enabled: bool = True) -> None:
        self._name = name
        self._creator = creator
        self._creation_time_millis = creation_time_millis
        self._state = state
        self.feature_spec_name = feature_spec_name
        self.workload_size = workload_size
        self.scale_to_zero_enabled = scale_to_zero_enabled

    @property
    def name(self) -> str:
        return self._name

    @property
    def creator(self) -> str | None:
        return self._creator

    @property
    def creation_time_millis(self) -> int:
        return self._creation_time_millis

    @property
    def state(self) -> dict[str, str]:
        return self._state

    @property
    def url(self) -> str:
        base = os.environ.get(SERVING_URL_ENV, DEFAULT_SERVING_URL).rstrip("/")
        return f"{base}/serving-endpoints/{self._name}/invocations"

    @property
    def workers(self) -> int:
        """The worker processes ``larder serve --endpoint NAME`` runs for this endpoint."""
        return WORKLOAD_WORKERS[self.workload_size]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "creator": self.creator, "creation_time_millis": self.creation_time_millis,
                "state": self.state, "feature_spec_name": self.feature_spec_name,
                "workload_size": self.workload_size, "scale_to_zero_enabled": self.scale_to_zero_enabled,
                "url": self.url}

    def __repr__(self) -> str:
        return (f"FeatureServingEndpoint(name={self.name!r}, feature_spec_name={self.feature_spec_name!r}, "
                f"state={self.state!r})")


@dataclass
class FeatureServingTableAccess:
    """One online table a model or feature spec reads: the features it uses from it, and the other
    columns the table holds (exposed too to whoever may read the table)."""

    online_table_name: str
    used_features: list[str] = field(default_factory=list)
    unused_features: list[str] = field(default_factory=list)

    @property
    def num_unused_features(self) -> int:
        return len(self.unused_features)


@dataclass
class FeatureServingAccessReport:
    """What serving a model or feature spec reads online (``grant_feature_serving_access``)."""

    tables: list[FeatureServingTableAccess] = field(default_factory=list)
    #: Features (``table.feature``) whose table is not published online: they cannot be served.
    features_without_online_table: list[str] = field(default_factory=list)

    @property
    def tables_to_grant(self) -> list[str]:
        return [t.online_table_name for t in self.tables]


def access_report(spec: Any, publisher: Any) -> FeatureServingAccessReport:
    """The online tables ``spec``'s lookups read (their latest publications), with used and unused
    columns, and the features of tables that are not published."""
    from larder.errors import OnlineTableNotFoundError

    report = FeatureServingAccessReport()
    for step in spec.lookups:
        try:
            pub, _ = publisher.latest_publication(step.table)
        except OnlineTableNotFoundError:
            report.features_without_online_table += [f"{step.table}.{f}" for f in step.features]
            continue
        name = pub.online_table_name
        entry = next((t for t in report.tables if t.online_table_name == name), None)
        if entry is None:
            entry = FeatureServingTableAccess(online_table_name=name)
            report.tables.append(entry)
        entry.used_features += [f"{step.table}.{f}" for f in step.features if f"{step.table}.{f}" not in
                                entry.used_features]
    for entry in report.tables:
        table = entry.used_features[0].rsplit(".", 1)[0] if entry.used_features else ""
        pub, _ = publisher.latest_publication(table)
        used = {u.rsplit(".", 1)[1] for u in entry.used_features}
        entry.unused_features = [f"{table}.{f}" for f in pub.features if f not in used]
    return report


def check_endpoint_name(name: Any, legacy: Any = None) -> str:
    """The endpoint's name from ``name`` (or Databricks' deprecated ``endpoint_name``), checked."""
    if legacy is not None:
        if name is not None and name != legacy:
            raise EndpointError(f"Give the endpoint's name once: name={name!r} and endpoint_name={legacy!r} differ.")
        _log.warning("endpoint_name is deprecated in favor of name")
        name = legacy
    if not isinstance(name, str) or not _NAME.match(name):
        raise EndpointError(
            f"Endpoint name must only contain alphanumeric and dashes (the first or last character cannot be a "
            f"dash), got {name!r}."
        )
    return name


class EndpointService:
    """Create, read, list and delete feature serving endpoints in the catalog."""

    def __init__(self, ctx: Context, training: Any, publisher: Any) -> None:
        self.ctx = ctx
        self.training = training
        self.publisher = publisher

    def create(self, name: str, config: EndpointCoreConfig, *, route_optimized: bool | None = None
               ) -> FeatureServingEndpoint:
        if not isinstance(config, EndpointCoreConfig):
            raise EndpointError(
                "config must be an EndpointCoreConfig, e.g. EndpointCoreConfig(served_entities="
                f"ServedEntity(feature_spec_name='main.default.my_spec')); got {type(config).__name__}."
            )
        if config.served_entities is None:
            raise EndpointError(
                "EndpointCoreConfig(servables=...) is deprecated (and no longer served on Databricks either): "
                "create the spec with fe.create_feature_spec(name=..., features=[...]) and pass "
                "served_entities=ServedEntity(feature_spec_name=...)."
            )
        capture = config.auto_capture_config
        if capture is not None and capture.enabled:
            raise EndpointError(
                "auto_capture_config(enabled=True): larder's server does not capture requests into an inference "
                "table. Omit auto_capture_config (or pass enabled=False), and log requests in your client."
            )
        entity = config.served_entities
        if entity.instance_profile_arn:
            _log.warning("ServedEntity.instance_profile_arn is not used by larder: DynamoDB credentials come from "
                         "boto3's default chain where `larder serve` runs.")
        spec = self.training.get_feature_spec(entity.feature_spec_name)  # raises if it does not exist
        with self.ctx.catalog.session() as s:
            if s.scalars(select(ServingEndpointRecord.id).where(ServingEndpointRecord.name == name)).first():
                raise EndpointError(f"Endpoint {name} already exists")
            rec = ServingEndpointRecord(
                name=name, feature_spec_name=spec.name or parse_name(entity.feature_spec_name, kind="feature spec").full,
                config={"name": entity.name, "workload_size": entity.workload_size,
                        "scale_to_zero_enabled": entity.scale_to_zero_enabled, "route_optimized": route_optimized},
                creator=current_user(),
            )
            s.add(rec)
            s.flush()
            return self._endpoint(rec)

    def _record(self, session: Any, name: str) -> ServingEndpointRecord:
        return named_record(session, ServingEndpointRecord, ServingEndpointRecord.name, name, lambda known: EndpointError(
            f"Feature serving endpoint {name!r} does not exist; create it with "
            f"fe.create_feature_serving_endpoint(name=..., config=...). Existing endpoints: {known}."
        ))

    def get(self, name: str) -> FeatureServingEndpoint:
        with self.ctx.catalog.session() as s:
            return self._endpoint(self._record(s, name))

    def spec_name(self, name: str) -> str:
        """The feature spec an endpoint serves."""
        with self.ctx.catalog.session() as s:
            return str(self._record(s, name).feature_spec_name)

    def list(self) -> list[FeatureServingEndpoint]:
        with self.ctx.catalog.session() as s:
            return [self._endpoint(r) for r in s.scalars(select(ServingEndpointRecord)
                                                         .order_by(ServingEndpointRecord.name))]

    def delete(self, name: str) -> None:
        with self.ctx.catalog.session() as s:
            s.delete(self._record(s, name))

    def _state(self, spec_name: str) -> dict[str, str]:
        try:
            spec = self.training.get_feature_spec(spec_name)
        except FeatureSpecError:
            return {"ready": "NOT_READY", "config_update": "NOT_UPDATING",
                    "message": f"feature spec {spec_name!r} no longer exists"}
        unpublished = [t for t in spec.table_versions() if not self.publisher.list_publications(t)]
        if unpublished:
            return {"ready": "NOT_READY", "config_update": "NOT_UPDATING",
                    "message": f"not published online: {unpublished}; publish them with fe.publish_table(...)"}
        return {"ready": "READY", "config_update": "NOT_UPDATING"}

    def _endpoint(self, rec: ServingEndpointRecord) -> FeatureServingEndpoint:
        cfg = dict(rec.config or {})
        return FeatureServingEndpoint(
            rec.name, rec.creator, int(rec.created_at.replace(tzinfo=UTC).timestamp() * 1000),
            self._state(rec.feature_spec_name), feature_spec_name=rec.feature_spec_name,
            workload_size=cfg.get("workload_size", "Small"),
            scale_to_zero_enabled=bool(cfg.get("scale_to_zero_enabled", True)),
        )


__all__ = [
    "AutoCaptureConfig",
    "access_report",
    "EndpointCoreConfig",
    "EndpointService",
    "FeatureServingAccessReport",
    "FeatureServingEndpoint",
    "FeatureServingTableAccess",
    "Servable",
    "ServedEntity",
    "check_endpoint_name",
]
