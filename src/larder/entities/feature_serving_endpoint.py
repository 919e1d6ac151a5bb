"""Feature serving endpoint configuration (Databricks:
``databricks.feature_engineering.entities.feature_serving_endpoint``)."""

from larder.serving.endpoints import (
    AutoCaptureConfig,
    EndpointCoreConfig,
    FeatureServingEndpoint,
    Servable,
    ServedEntity,
)

__all__ = ["AutoCaptureConfig", "EndpointCoreConfig", "FeatureServingEndpoint", "Servable", "ServedEntity"]
