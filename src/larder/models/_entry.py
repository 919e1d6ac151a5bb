"""The model-from-code entry point that ``log_model`` hands to MLflow: it defines the pyfunc model.

MLflow copies this file into every model larder logs and runs it when the model is loaded, so the
model holds no pickled Python object of its own (larder must be installed where it is served).
"""

import mlflow

from larder.models.pyfunc import FeatureAwareModel

mlflow.models.set_model(FeatureAwareModel())
