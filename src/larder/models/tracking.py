"""Which MLflow tracking server and model registry larder's models go to, and MLflow error handling.

Resolution, first match wins:

1. a URI **the user set**: ``MLFLOW_TRACKING_URI`` in the environment or ``mlflow.set_tracking_uri()``
   (likewise ``MLFLOW_REGISTRY_URI`` / ``mlflow.set_registry_uri()`` for the registry). larder never
   changes these;
2. ``mlflow_tracking_uri`` in ``larder.yaml``;
3. ``sqlite:///<larder root>/mlflow.db``, with the Default experiment's artifacts under
   ``<larder root>/mlartifacts``.

In cases 2 and 3 larder sets the process-wide MLflow tracking and registry URIs (so that
``mlflow.start_run()`` in the user's code lands in the same place), and remembers that it did: a URI
larder set itself is never mistaken for one the user set, so a second client on another root moves
them along. One exception keeps runs whole: while an MLflow run is active that larder did not start
under its own URI, larder leaves the URIs alone and logs into that run where it lives.

>>> from pathlib import Path
>>> default_tracking_uri(Path("/srv/larder"))
'sqlite:////srv/larder/mlflow.db'
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from larder.context import Context
from larder.errors import LarderError, ModelError

TRACKING_ENV = "MLFLOW_TRACKING_URI"
REGISTRY_ENV = "MLFLOW_REGISTRY_URI"

_lock = threading.Lock()
#: Every tracking/registry URI larder itself has set in this process: never taken for the user's.
_ours: set[str] = set()

_log = logging.getLogger(__name__)


def default_tracking_uri(root: Path) -> str:
    """``sqlite:///<root>/mlflow.db``."""
    return f"sqlite:///{Path(root) / 'mlflow.db'}"


def _tracking_module() -> Any:
    from mlflow.tracking._tracking_service import utils

    return utils


def _registry_module() -> Any:
    from mlflow.tracking._model_registry import utils

    return utils


def is_databricks_uri(uri: Any) -> bool:
    """``databricks``, ``databricks-uc`` (Unity Catalog) or a ``databricks://profile`` form of them."""
    if not isinstance(uri, str):
        return False
    scheme = uri.split("://", 1)[0].strip().lower()
    return scheme in ("databricks", "databricks-uc")


#: Databricks URIs already reported as mapped (one log line each per process).
_mapped: set[str] = set()


def _mapped_away(uri: str, what: str) -> None:
    if uri not in _mapped:
        _mapped.add(uri)
        _log.warning("larder: MLflow %s URI %r (Databricks) is mapped to larder's own %s: %s is not reachable "
                     "here, so models are logged and registered where larder keeps them (larder.yaml's "
                     "mlflow_tracking_uri, else <root>/mlflow.db).", what, uri, what, uri)


def user_tracking_uri() -> str | None:
    """The tracking URI the user set (environment or ``mlflow.set_tracking_uri``), else None. A
    Databricks URI counts as not set: it is mapped to larder's own (logged once)."""
    explicit = _tracking_module()._tracking_uri
    if explicit is not None and explicit not in _ours:
        if not is_databricks_uri(explicit):
            return str(explicit)
        _mapped_away(str(explicit), "tracking")
    env = os.environ.get(TRACKING_ENV)
    if env and env not in _ours:
        if not is_databricks_uri(env):
            return env
        _mapped_away(env, "tracking")
    return None


def user_registry_uri() -> str | None:
    """The registry URI the user set (environment or ``mlflow.set_registry_uri``), else None. A
    Databricks URI (``databricks-uc``, the first line of Databricks notebooks) counts as not set: it is
    mapped to larder's registry (logged once)."""
    explicit = _registry_module()._registry_uri
    if explicit and explicit not in _ours:
        if not is_databricks_uri(explicit):
            return str(explicit)
        _mapped_away(str(explicit), "registry")
    env = os.environ.get(REGISTRY_ENV)
    if env and env not in _ours:
        if not is_databricks_uri(env):
            return env
        _mapped_away(env, "registry")
    return None


def _initialise_sqlite(uri: str, artifact_root: Path) -> None:
    """Create a fresh SQLite tracking database whose Default experiment keeps its artifacts under
    ``artifact_root`` (MLflow would otherwise put them in ``./mlruns`` of the working directory)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    artifact_root.mkdir(parents=True, exist_ok=True)
    store = SqlAlchemyStore(uri, artifact_root.as_uri())
    store.engine.dispose()


def ensure_tracking(ctx: Context, registry_uri: str | None = None) -> str:
    """Point MLflow at larder's tracking server unless the user chose one; return the tracking URI
    in effect. See the module docstring for the rules. ``registry_uri`` (the client's
    ``model_registry_uri``) sets the registry, as Databricks does; a Databricks one means larder's."""
    import mlflow

    if registry_uri is not None:
        if is_databricks_uri(registry_uri):
            _mapped_away(registry_uri, "registry")
        else:
            mlflow.set_registry_uri(registry_uri)
    with _lock:
        user = user_tracking_uri()
        if user is not None:
            if _tracking_module()._tracking_uri in _ours:
                # a URI larder set earlier is still set in-process but the user's environment says
                # otherwise: hand the process back to the user's URI
                mlflow.set_tracking_uri(user)
            if user_registry_uri() is None:
                _clear_our_registry()  # the registry follows the user's tracking URI
            return mlflow.get_tracking_uri()
        target = ctx.config.mlflow_tracking_uri or default_tracking_uri(ctx.root)
        current = _tracking_module()._tracking_uri
        if mlflow.active_run() is not None and current != target:
            # a run started under another URI (MLflow's own default, say): log into it where it lives
            return mlflow.get_tracking_uri()
        if target.startswith("sqlite:///") and not ctx.config.mlflow_tracking_uri:
            db = Path(target[len("sqlite:///"):])
            if not db.exists():
                with mlflow_errors(f"Creating the MLflow tracking database {db}"):
                    _initialise_sqlite(target, ctx.root / "mlartifacts")
        _ours.add(target)
        if current != target:
            mlflow.set_tracking_uri(target)
        if user_registry_uri() is None and _registry_module()._registry_uri != target:
            mlflow.set_registry_uri(target)
        return target


def claim_default_uris(ctx: Context) -> None:
    """The cheap part of :func:`ensure_tracking`, for client construction: when the user set no URI,
    point MLflow (through ``MLFLOW_TRACKING_URI``/``MLFLOW_REGISTRY_URI``, or in-process if MLflow is
    already imported) at larder's tracking database, so that a later ``mlflow.start_run()`` lands
    there. Imports nothing heavy and creates no database (the first models call does)."""
    import sys

    with _lock:
        target = ctx.config.mlflow_tracking_uri or default_tracking_uri(ctx.root)
        if "mlflow" in sys.modules:
            import mlflow

            if user_tracking_uri() is not None or mlflow.active_run() is not None:
                return
            _ours.add(target)
            if _tracking_module()._tracking_uri != target:
                mlflow.set_tracking_uri(target)
            if user_registry_uri() is None and _registry_module()._registry_uri != target:
                mlflow.set_registry_uri(target)
            return
        env = os.environ.get(TRACKING_ENV)
        if env and env not in _ours and not is_databricks_uri(env):
            return
        _ours.add(target)
        os.environ[TRACKING_ENV] = target
        registry = os.environ.get(REGISTRY_ENV)
        if not registry or registry in _ours or is_databricks_uri(registry):
            os.environ[REGISTRY_ENV] = target


def _clear_our_registry() -> None:
    """Let the registry follow the tracking URI again: drop a registry URI larder set, or a Databricks
    one (which is mapped, see :func:`user_registry_uri`)."""
    current = _registry_module()._registry_uri
    if current in _ours or is_databricks_uri(current):
        _registry_module()._registry_uri = None
    env = os.environ.get(REGISTRY_ENV)
    if env in _ours or is_databricks_uri(env):
        os.environ.pop(REGISTRY_ENV, None)


def release_tracking() -> None:
    """Unset the URIs larder set, where they are still in effect, and forget them."""
    import mlflow

    with _lock:
        if _tracking_module()._tracking_uri in _ours:
            mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        if os.environ.get(TRACKING_ENV) in _ours:
            os.environ.pop(TRACKING_ENV, None)
        _clear_our_registry()
        _ours.clear()


@contextmanager
def mlflow_errors(what: str) -> Iterator[None]:
    """Re-raise MLflow's exceptions (and file errors) as :class:`~larder.errors.ModelError`.

    ``what`` says what was being done, e.g. ``"Loading model 'models:/price/3'"``.
    """
    from mlflow.exceptions import MlflowException

    try:
        yield
    except LarderError:
        raise
    except MlflowException as exc:
        raise ModelError(f"{what} failed: {exc.message}") from exc
    except OSError as exc:
        raise ModelError(f"{what} failed: {exc}") from exc


__all__ = [
    "claim_default_uris",
    "default_tracking_uri",
    "ensure_tracking",
    "is_databricks_uri",
    "mlflow_errors",
    "release_tracking",
    "user_registry_uri",
    "user_tracking_uri",
]
