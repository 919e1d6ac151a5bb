"""``FeatureTable`` (Databricks: ``databricks.feature_engineering.entities.feature_table``)."""

from larder.offline.tables import FeatureColumn, FeatureTable, OnlineStoreInfo

__all__ = ["FeatureColumn", "FeatureTable", "OnlineStoreInfo"]
