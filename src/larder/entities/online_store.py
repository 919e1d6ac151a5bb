"""``DatabricksOnlineStore`` (Databricks: ``databricks.ml_features.entities.online_store``): a named
online store from ``create_online_store`` / ``get_online_store``."""

from larder.online.managed import DatabricksOnlineStore

__all__ = ["DatabricksOnlineStore"]
