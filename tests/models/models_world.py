"""The shared world of the model tests (used by ``conftest.py``'s ``world`` fixture): feature tables, a feature function, a training set, a fitted
scikit-learn pipeline logged and registered with ``log_model`` (once per session: creating an MLflow
database and logging a model take seconds).

Tables: ``houses`` (keyed by ``Id``; ``OverallQual``, ``GrLivArea``, ``YearBuilt``, ``Neighborhood``)
and ``house_extras`` (``GarageCars``, ``LotArea``; only for the first 50 houses). The feature function
``house_age(year_built, year_sold)`` uses the request-time column ``YrSold``. Every lookup has default
values, so unseen Ids are scored with the defaults.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

N_HOUSES = 60
N_EXTRAS = 50
MODEL_NAME = "house_price"
NEIGHBORHOODS = ["NAmes", "CollgCr", "OldTown", "Edwards"]
DEFAULTS_HOUSES = {"OverallQual": 5, "GrLivArea": 1500.0, "YearBuilt": 1970, "Neighborhood": "NAmes"}
DEFAULTS_EXTRAS = {"GarageCars": 1, "LotArea": 9000.0}


def house_age(year_built: int, year_sold: int) -> int:
    """Age of the house when sold."""
    return year_sold - year_built


def make_houses(n: int = N_HOUSES, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "Id": np.arange(1, n + 1, dtype="int64"),
        "OverallQual": rng.integers(1, 11, n).astype("int64"),
        "GrLivArea": rng.uniform(600, 3500, n).round(1),
        "YearBuilt": rng.integers(1900, 2008, n).astype("int64"),
        "Neighborhood": rng.choice(NEIGHBORHOODS, n),
    })


def make_extras(n: int = N_EXTRAS, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "Id": np.arange(1, n + 1, dtype="int64"),
        "GarageCars": rng.integers(0, 4, n).astype("int64"),
        "LotArea": rng.uniform(3000, 20000, n).round(0),
    })


def make_pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    numeric = ["OverallQual", "GrLivArea", "YearBuilt", "GarageCars", "LotArea", "age"]
    prep = ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["Neighborhood"]),
        ("num", SimpleImputer(strategy="median"), numeric),
    ])
    return Pipeline([("prep", prep), ("reg", Ridge(alpha=1.0))])


def requests_frame() -> pd.DataFrame:
    """Rows to score: known houses with and without extras, and unseen Ids (defaults)."""
    ids = [1, 2, 3, 17, 49, 50, 51, 55, 60, 1001, 1002, 5000]
    years = [2006 + (i % 5) for i in range(len(ids))]
    return pd.DataFrame({"Id": np.array(ids, dtype="int64"), "YrSold": np.array(years, dtype="int64")})


@dataclass
class World:
    fe: Any
    root: Path
    training_set: Any
    model: Any
    info: Any
    houses: pd.DataFrame
    extras: pd.DataFrame
    prefix: str

    model_name: str = MODEL_NAME

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/1"

    @property
    def ctx(self) -> Any:
        return self.fe._ctx

    def activate(self) -> str:
        """Point MLflow at this world's tracking database (another test's client may have moved it)."""
        from larder.models.tracking import ensure_tracking

        return ensure_tracking(self.ctx)

    def publish(self, store: Any, tables: tuple[str, ...] = ("houses", "house_extras")) -> None:
        for t in tables:
            self.fe.publish_table(t, store, mode="overwrite")

    def sqlite_spec(self, name: str = "online.db") -> Any:
        from larder.online.stores.specs import SQLiteStoreSpec

        return SQLiteStoreSpec(path=str(self.root / name))

    def dynamodb_spec(self, endpoint: str) -> Any:
        from larder.online.stores.specs import DynamoDBStoreSpec

        return DynamoDBStoreSpec(endpoint_url=endpoint, region="us-east-1", table_prefix=f"{self.prefix}__")

    def redis_spec(self, url: str) -> Any:
        from larder.online.stores.specs import RedisStoreSpec

        return RedisStoreSpec(url=url, key_prefix=self.prefix)

    def load_pyfunc(self, uri: str | None = None) -> Any:
        self.activate()
        return mlflow.pyfunc.load_model(uri or self.model_uri)


def build_world(fe: Any, root: Path) -> World:
    from larder.training import FeatureFunction, FeatureLookup

    houses, extras = make_houses(), make_extras()
    fe.create_table("houses", "Id", df=houses, description="Ames-like houses")
    fe.create_table("house_extras", "Id", df=extras)
    fe.create_function("house_age", house_age, description="years between construction and sale")
    rng = np.random.default_rng(2)
    labels = pd.DataFrame({"Id": houses["Id"], "YrSold": rng.integers(2006, 2011, len(houses)).astype("int64")})
    labels["SalePrice"] = (houses["GrLivArea"] * 90 + houses["OverallQual"] * 8000
                           - (labels["YrSold"] - houses["YearBuilt"]) * 300 + rng.normal(0, 5000, len(houses)))
    ts = fe.create_training_set(
        labels,
        [FeatureLookup("houses", "Id", default_values=DEFAULTS_HOUSES),
         FeatureLookup("house_extras", "Id", default_values=DEFAULTS_EXTRAS),
         FeatureFunction("house_age", input_bindings={"year_built": "YearBuilt", "year_sold": "YrSold"},
                         output_name="age")],
        label="SalePrice", exclude_columns=["Id"],
    )
    df = ts.load_df()
    model = make_pipeline().fit(df.drop(columns=["SalePrice"]), df["SalePrice"])
    # mlflow.sklearn saves with skops by default, which refuses the OneHotEncoder's numpy dtypes
    info = fe.log_model(model, "model", mlflow.sklearn, ts, registered_model_name=MODEL_NAME,
                        serialization_format="cloudpickle")
    return World(fe=fe, root=root, training_set=ts, model=model, info=info, houses=houses, extras=extras,
                 prefix=f"lm{uuid.uuid4().hex[:8]}")


class ModelServer:
    """``mlflow models serve -m <uri> --env-manager local`` on a free 127.0.0.1 port, as a subprocess in
    its own process group (stopped with :meth:`stop`). The venv's ``bin`` goes first on ``PATH`` and
    ``MLFLOW_TRACKING_URI`` points at the world's database; the rest of the environment is inherited."""

    START_TIMEOUT = 120.0

    def __init__(self, model_uri: str, tracking_uri: str, env: dict[str, str] | None = None) -> None:
        import shutil
        import signal  # noqa: F401 - used in stop()
        import subprocess
        import sys
        import tempfile
        import time

        from _services import free_port

        self.port = free_port()
        bin_dir = Path(sys.executable).parent
        mlflow_exe = bin_dir / "mlflow"
        exe = str(mlflow_exe) if mlflow_exe.exists() else (shutil.which("mlflow") or "mlflow")
        full_env = {**os.environ, **(env or {})}
        full_env["PATH"] = f"{bin_dir}{os.pathsep}{full_env.get('PATH', '')}"
        full_env["MLFLOW_TRACKING_URI"] = tracking_uri
        full_env["MLFLOW_REGISTRY_URI"] = tracking_uri
        full_env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        self._log = tempfile.NamedTemporaryFile(prefix="larder-mlflow-serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [exe, "models", "serve", "-m", model_uri, "--env-manager", "local", "-h", "127.0.0.1",
             "-p", str(self.port), "--workers", "1"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.START_TIMEOUT
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.log_text()
                self.stop()
                raise RuntimeError(f"mlflow models serve did not start (exit {self.proc.returncode}): {log[-3000:]}")
            time.sleep(0.25)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def invoke(self, df: pd.DataFrame, params: dict[str, Any] | None = None) -> tuple[int, Any]:
        """POST ``df`` as ``dataframe_split`` to ``/invocations``; returns (status, decoded JSON body)."""
        import json
        import urllib.error
        import urllib.request

        body: dict[str, Any] = {"dataframe_split": json.loads(df.to_json(orient="split", index=False))}
        if params:
            body["params"] = params
        req = urllib.request.Request(f"{self.url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def log_text(self) -> str:
        try:
            return Path(self._log.name).read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server's process group (mlflow starts uvicorn as a child): SIGTERM, then SIGKILL
        for whatever of the group is left."""
        import signal
        import subprocess
        import time

        pgid = self.proc.pid  # start_new_session: the group is the one this server started
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 15.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                try:
                    self.proc.wait(0.2)
                except subprocess.TimeoutExpired:
                    continue
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
            else:
                continue
            break
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)
