"""Fixtures of the example tests: run an example script or the CLI as a subprocess, isolated from the
repository and the user's setup, in a scratch working directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TIMEOUT = 600

#: Variables that would point a run at the user's tracking server, larder root or stores.
_CLEARED = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID",
            "LARDER_ROOT", "LARDER_CONFIG", "LARDER_ONLINE_STORE", "LARDER_ONLINE_STORES", "LARDER_MISSING_KEYS")


def example_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env.update(
        MLFLOW_DISABLE_TELEMETRY="true",
        LARDER_DISABLE_PROGRESS="1",
        # one OpenMP thread: on a small shared CI machine, scikit-learn's threads otherwise oversubscribe
        OMP_NUM_THREADS="1",
        COLUMNS="200",  # rich tables unwrapped
        PYTHONUNBUFFERED="1",
    )
    return env


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with the venv's Python in ``cwd`` (a tmp dir, so nothing lands in the repo)."""
    result = subprocess.run([sys.executable, *argv], cwd=cwd, env=example_env(), capture_output=True,
                            text=True, timeout=TIMEOUT)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited with {result.returncode}\n--- stdout\n{result.stdout[-6000:]}"
            f"\n--- stderr\n{result.stderr[-6000:]}"
        )
    return result


def run_example(name: str, cwd: Path, *args: str) -> tuple[dict[str, Any], str]:
    """Run ``examples/<name>``; return its final JSON line and its whole stdout."""
    result = run([str(EXAMPLES / name), *args], cwd)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"{name} printed nothing"
    return json.loads(lines[-1]), result.stdout


@pytest.fixture()
def work(tmp_path: Path):
    """The subprocess's working directory; it must stay empty (everything goes under --root)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    yield cwd
    assert sorted(p.name for p in cwd.iterdir()) == [], "a run wrote into its working directory"


@pytest.fixture()
def example():
    """``example(name, cwd, *args) -> (final JSON line, stdout)``."""
    return run_example


@pytest.fixture()
def cli():
    """``cli(cwd, *args) -> CompletedProcess`` of ``python -m larder.cli.main *args``."""
    return lambda cwd, *args: run(["-m", "larder.cli.main", *args], cwd)


@pytest.fixture()
def cli_env() -> dict[str, str]:
    """The environment the example subprocesses run with."""
    return example_env()
