"""``TrainingSet`` at Databricks' import path (``databricks.feature_engineering.training_set``)."""

from larder.training.training_set import TrainingSet

__all__ = ["TrainingSet"]
