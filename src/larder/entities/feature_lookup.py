"""``FeatureLookup`` (Databricks: ``databricks.feature_engineering.entities.feature_lookup``)."""

from larder.training.lookup import FeatureLookup

__all__ = ["FeatureLookup"]
