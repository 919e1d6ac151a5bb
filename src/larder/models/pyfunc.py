"""The MLflow pyfunc model that fetches its own features.

``mlflow.pyfunc.load_model(uri).predict(keys_df)`` (or ``mlflow models serve``) runs
:class:`FeatureAwareModel`:

* ``load_context`` (once per loaded model) reads the model's ``larder/`` bundle, loads the raw model,
  decides where each feature table is read online (:func:`larder.models.bundle.resolve_online`: the
  environment, a reachable catalog, else the model's own record) and opens one client per store;
* ``predict`` assembles the features of every row with an
  :class:`~larder.online.assemble.OnlineFeatureAssembler` (one batched read per table, defaults, the
  feature functions), selects the columns the raw model was trained on, in order, and calls it.

A key not found online gets the lookup's default values; when a feature has no default, predict
raises :class:`~larder.errors.MissingKeysError` naming the keys, unless the policy is ``null``: per
request with ``params={"missing_keys": "null"}``, or for the process with ``LARDER_MISSING_KEYS=null``.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from larder.errors import LarderError, ModelError
from larder.models.bundle import ARTIFACT_KEY, ModelBundle, TableSource, missing_keys_policy, resolve_online

_log = logging.getLogger(__name__)

#: The request parameter choosing the missing-key policy, declared in the model's signature.
MISSING_KEYS_PARAM = "missing_keys"


def _serving_config() -> Any:
    """larder.yaml of this host when ``LARDER_ROOT`` or ``LARDER_CONFIG`` is set (named stores may
    carry credentials there), else None."""
    from larder.config import CONFIG_ENV, ROOT_ENV, load_config, resolve_root

    if not (os.environ.get(ROOT_ENV) or os.environ.get(CONFIG_ENV)):
        return None
    return load_config(resolve_root(None))


class OnlineModel:
    """A loaded larder model bundle wired to its online stores; what the pyfunc delegates to.

    Parameters
    ----------
    bundle:
        The model's bundle.
    use_catalog:
        Re-resolve publications in a reachable catalog (default True).
    publications:
        The tables' current publications, when the caller has read them from its catalog already.
    config:
        The larder configuration naming the stores (default: this host's, when ``LARDER_ROOT`` or
        ``LARDER_CONFIG`` is set).
    """

    def __init__(self, bundle: ModelBundle, *, use_catalog: bool = True,
                 publications: dict[str, dict[str, Any]] | None = None, config: Any = None) -> None:
        from larder.online.stores import StoreCache

        self.bundle = bundle
        self.raw = bundle.raw_model
        self._feature_columns = bundle.feature_columns
        self._feature_index = pd.Index(self._feature_columns)
        #: the last assembled frame's column Index found in the raw model's order (Index is immutable)
        self._ordered_columns: pd.Index | None = None
        self.use_catalog = use_catalog
        self._publications = publications
        self._config = config
        root = bundle.meta.get("root")
        self._cache = StoreCache(Path(root) if root else Path.cwd())
        self._lock = threading.Lock()
        self._assemblers: dict[str, Any] = {}
        self.sources: dict[str, TableSource] | None = None
        self._error: LarderError | None = None
        try:
            self._resolve()
        except LarderError as exc:
            # keep loading: the tables may be published after the model is loaded; predict retries
            self._error = exc
            _log.warning("larder: the model's online features are not available yet: %s", exc)

    def _resolve(self) -> None:
        self.sources = resolve_online(self.bundle, config=self._config or _serving_config(), use_catalog=self.use_catalog,
                                      publications=self._publications)
        self._assemblers.clear()
        self._error = None
        self.assembler(missing_keys_policy())  # open the store clients now

    def assembler(self, policy: str) -> Any:
        """The (cached) online assembler for a missing-key policy; all share the store clients."""
        from larder.online.assemble import OnlineFeatureAssembler

        asm = self._assemblers.get(policy)
        if asm is not None:
            return asm
        with self._lock:
            if self.sources is None:
                self._resolve()
            asm = self._assemblers.get(policy)
            if asm is None:
                assert self.sources is not None
                stores = {t: (src.spec, src.online_table) for t, src in self.sources.items()}
                asm = OnlineFeatureAssembler(self.bundle.spec, stores, root=self._cache.root,
                                             on_missing=policy, store_cache=self._cache)  # type: ignore[arg-type]
                self._assemblers[policy] = asm
        return asm

    def features(self, df: Any, *, missing_keys: str | None = None) -> pd.DataFrame:
        """The assembled frame (caller's columns plus features) for each row of ``df``."""
        return self.assembler(missing_keys_policy(missing_keys)).assemble(df)

    def predict(self, df: Any, *, missing_keys: str | None = None, params: dict[str, Any] | None = None) -> Any:
        """Look the features up online and call the raw model (with ``params``, when given)."""
        frame = self.features(df, missing_keys=missing_keys)
        if len(frame) == 0:
            return np.empty(0)
        columns = frame.columns
        if columns is not self._ordered_columns:
            if columns.equals(self._feature_index):
                self._ordered_columns = columns
            else:  # selecting costs a copy; most requests need none
                frame = frame[self._feature_columns]
        return self.raw.predict(frame, params) if params else self.raw.predict(frame)

    def close(self) -> None:
        self._assemblers.clear()
        self._cache.close()


class FeatureAwareModel(PythonModel):
    """The pyfunc model ``log_model`` logs (through the model-from-code file ``_entry.py``)."""

    def __init__(self) -> None:
        self._model: OnlineModel | None = None

    def load_context(self, context: Any) -> None:
        path = context.artifacts.get(ARTIFACT_KEY) if context.artifacts else None
        if not path:
            raise ModelError("This model has no 'larder' artifact; it was not logged by larder's log_model().")
        self._model = OnlineModel(ModelBundle.load(path))

    @property
    def online_model(self) -> OnlineModel:
        if self._model is None:
            raise ModelError("The model's context is not loaded; load it with mlflow.pyfunc.load_model(uri).")
        return self._model

    # A pandas DataFrame hint is one MLflow does not turn into an input schema (the signature
    # log_model writes is the schema).
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        rest = dict(params or {})
        policy = rest.pop(MISSING_KEYS_PARAM, None)
        if isinstance(model_input, dict):
            model_input = pd.DataFrame(model_input)
        return self.online_model.predict(model_input, missing_keys=policy, params=rest or None)

    # MLflow's pyfunc wrapper calls inspect.signature() on this method on every predict (to see whether
    # it takes ``params``); a stored signature (kept by the wrapper MLflow puts around predict) turns
    # that into an attribute read, about 20 us less per call.
    predict.__signature__ = inspect.signature(predict)  # type: ignore[attr-defined]


__all__ = ["MISSING_KEYS_PARAM", "FeatureAwareModel", "OnlineModel"]
