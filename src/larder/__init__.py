"""larder: a feature store and feature-engineering toolkit for Python.

The user API is the Databricks Feature Engineering client's::

    from larder import FeatureEngineeringClient, FeatureFunction, FeatureLookup

Everything else lives in submodules: ``larder.transforms``, ``larder.selection``, ``larder.quality``,
``larder.online``, ``larder.models``, ``larder.errors``.
"""

from larder._version import __version__
from larder.client import FeatureEngineeringClient
from larder.errors import LarderError
from larder.offline.tables import Feature, FeatureTable
from larder.online.stores.specs import AmazonDynamoDBSpec, DynamoDBStoreSpec, RedisStoreSpec, SQLiteStoreSpec
from larder.training import FeatureFunction, FeatureLookup, FeatureSpec, FunctionInfo, TrainingSet

__all__ = [
    "AmazonDynamoDBSpec",
    "DynamoDBStoreSpec",
    "Feature",
    "FeatureEngineeringClient",
    "FeatureFunction",
    "FeatureLookup",
    "FeatureSpec",
    "FeatureTable",
    "FunctionInfo",
    "LarderError",
    "RedisStoreSpec",
    "SQLiteStoreSpec",
    "TrainingSet",
    "__version__",
]
