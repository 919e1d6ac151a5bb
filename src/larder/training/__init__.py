"""Training sets, feature functions and feature specs.

``FeatureLookup`` and ``FeatureFunction`` describe what to join and compute; ``create_training_set``
pins them into a :class:`FeatureSpec` and returns a :class:`TrainingSet`; :mod:`larder.training.assemble`
executes a spec (offline here, online in the serving path).
"""

from larder.training.assemble import apply_defaults, apply_functions, assemble_offline, validate_frame
from larder.training.functions import FeatureFunction, FunctionInfo, FunctionService
from larder.training.lookup import FeatureLookup
from larder.training.spec import FeatureSpec, FunctionStep, LookupStep
from larder.training.training_set import TrainingService, TrainingSet

__all__ = [
    "FeatureFunction",
    "FeatureLookup",
    "FeatureSpec",
    "FunctionInfo",
    "FunctionService",
    "FunctionStep",
    "LookupStep",
    "TrainingService",
    "TrainingSet",
    "apply_defaults",
    "apply_functions",
    "assemble_offline",
    "validate_frame",
]
