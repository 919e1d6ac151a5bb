"""Client methods: feature serving endpoints and named online stores (Databricks' APIs)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from larder._databricks import UNSET

if TYPE_CHECKING:
    from larder.context import Context
    from larder.online.managed import DatabricksOnlineStore, OnlineStoreService
    from larder.serving.endpoints import EndpointCoreConfig, EndpointService, FeatureServingEndpoint


class ServingMethods:
    """``create/get/delete_feature_serving_endpoint`` and ``create/get/list/update/delete_online_store``."""

    _ctx: Context
    _training: Any
    _publisher: Any
    _online_stores: Any

    # -- feature serving endpoints --------------------------------------------------------------
    @cached_property
    def _endpoints(self) -> EndpointService:
        from larder.serving.endpoints import EndpointService

        return EndpointService(self._ctx, self._training, self._publisher)

    def create_feature_serving_endpoint(self, *, name: str | None = None, config: EndpointCoreConfig | None = None,
                                        endpoint_name: str | None = None, route_optimized: bool | None = None
                                        ) -> FeatureServingEndpoint:
        """Create a feature serving endpoint: ``larder serve`` then answers
        ``POST /serving-endpoints/{name}/invocations`` with the features of
        ``config.served_entities.feature_spec_name`` (requests in MLflow's formats, response
        ``{"outputs": [...]}``). ``larder serve --endpoint NAME`` sizes a server by the entity's
        ``workload_size``. See docs/online-features.md#feature-serving-endpoints."""
        from larder.serving.endpoints import check_endpoint_name

        return self._endpoints.create(check_endpoint_name(name, endpoint_name), config,  # type: ignore[arg-type]
                                      route_optimized=route_optimized)

    def get_feature_serving_endpoint(self, *, name: str | None = None, endpoint_name: str | None = None
                                     ) -> FeatureServingEndpoint:
        """An endpoint: its feature spec, state (``READY`` once every table is published) and URL."""
        from larder.serving.endpoints import check_endpoint_name

        return self._endpoints.get(check_endpoint_name(name, endpoint_name))

    def delete_feature_serving_endpoint(self, *, name: str | None = None, endpoint_name: str | None = None) -> None:
        """Delete an endpoint (its feature spec and online tables are kept)."""
        from larder.serving.endpoints import check_endpoint_name

        self._endpoints.delete(check_endpoint_name(name, endpoint_name))

    def list_feature_serving_endpoints(self) -> list[FeatureServingEndpoint]:
        """Every feature serving endpoint, by name."""
        return self._endpoints.list()

    def grant_feature_serving_access(self, *, grant_to: list[str], model_uri: str | None = None,
                                     feature_spec: Any = None, dry_run: bool = False) -> Any:
        """Report the online tables a model (``model_uri``) or feature spec (its name, or a spec) reads
        when served: per table, the features it uses and the other columns the table exposes, and the
        features whose table is not published (they cannot be served).

        Databricks also grants ``SELECT`` on those tables to ``grant_to``. larder's online stores have
        no per-principal permissions (access is whoever can reach the store: its file, Redis or DynamoDB
        credentials), so nothing is granted: with ``dry_run=False`` a warning says so."""
        import logging

        from larder.errors import ServingEndpointError
        from larder.serving.endpoints import access_report

        if (model_uri is None) == (feature_spec is None):
            raise ServingEndpointError("grant_feature_serving_access: give exactly one of model_uri or feature_spec.")
        if not isinstance(grant_to, (list, tuple)) or not all(isinstance(p, str) and p for p in grant_to):
            raise ServingEndpointError("grant_feature_serving_access: grant_to must be a list of principal names.")
        if model_uri is not None:
            from larder.models.bundle import load_bundle
            from larder.models.tracking import ensure_tracking

            ensure_tracking(self._ctx)
            spec = load_bundle(model_uri).spec
        elif isinstance(feature_spec, str):
            spec = self._training.get_feature_spec(feature_spec)
        else:
            spec = feature_spec
        report = access_report(spec, self._publisher)
        if not dry_run:
            logging.getLogger("larder").warning(
                "grant_feature_serving_access: larder's online stores have no per-principal permissions; "
                "nothing was granted to %s. Control access through the store itself (file permissions, "
                "Redis ACLs, IAM policies on the DynamoDB tables %s).", list(grant_to), report.tables_to_grant)
        return report

    # -- named online stores --------------------------------------------------------------------
    @cached_property
    def _managed_stores(self) -> OnlineStoreService:
        from larder.online.managed import OnlineStoreService

        return OnlineStoreService(self._ctx, self._online_stores)

    def create_online_store(self, *, name: str, capacity: str, read_replica_count: int | None = None,
                            usage_policy_id: str | None = None, spec: Any = None) -> DatabricksOnlineStore:
        """Create a named online store, recorded in the catalog. Its data lives where ``spec`` says
        (``RedisStoreSpec(...)``, ``DynamoDBStoreSpec(...)``; default: an embedded SQLite file
        ``<root>/online_stores/<name>.db``). ``capacity`` (``CU_1``..``CU_8``), ``read_replica_count`` and
        ``usage_policy_id`` are Databricks' sizing fields: checked and recorded. Publish to it with
        ``publish_table(online_store=store, ...)``."""
        return self._managed_stores.create(name, capacity, read_replica_count, usage_policy_id, spec)

    def get_online_store(self, *, name: str) -> DatabricksOnlineStore | None:
        """A named online store (created, or configured in larder.yaml), or None if there is none."""
        return self._managed_stores.get(name)

    def list_online_stores(self) -> list[DatabricksOnlineStore]:
        """The stores configured in larder.yaml, then those created with :meth:`create_online_store`."""
        return self._managed_stores.list()

    def update_online_store(self, *, name: str, capacity: Any = UNSET, read_replica_count: Any = UNSET,
                            usage_policy_id: Any = UNSET) -> DatabricksOnlineStore:
        """Change the fields given (others stay); a store from larder.yaml is changed in that file."""
        return self._managed_stores.update(name, capacity, read_replica_count, usage_policy_id)

    def delete_online_store(self, *, name: str) -> None:
        """Delete a created store: its online tables are dropped (publications marked dropped) and, for
        the default embedded store, its file removed. The offline tables are kept."""
        self._managed_stores.delete(name)
        invalidate = getattr(getattr(self, "_online", None), "invalidate", None)
        if callable(invalidate):
            invalidate()


__all__ = ["ServingMethods"]
