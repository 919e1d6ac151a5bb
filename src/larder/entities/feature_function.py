"""``FeatureFunction`` (Databricks: ``databricks.feature_engineering.entities.feature_function``)."""

from larder.training.functions import FeatureFunction

__all__ = ["FeatureFunction"]
