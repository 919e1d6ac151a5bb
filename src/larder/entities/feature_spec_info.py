"""``FeatureSpecInfo`` (Databricks: ``databricks.feature_engineering.entities.feature_spec_info``).

``create_feature_spec`` returns larder's :class:`~larder.training.spec.FeatureSpec`, which carries
Databricks' ``FeatureSpecInfo`` fields (``name``, ``creator``, ``creation_timestamp_ms``); the name is
the same class.
"""

from larder.training.spec import FeatureSpec as FeatureSpecInfo

__all__ = ["FeatureSpecInfo"]
