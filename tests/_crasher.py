"""The warm fork-per-operation worker of the kill -9 and race tests (``_crash_worker.py``), as a fixture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


class Crasher:
    """Sends operations to a ``_crash_worker.py`` process and returns how each child ended."""

    def __init__(self) -> None:
        worker = Path(__file__).resolve().parent / "_crash_worker.py"
        self.proc = subprocess.Popen([sys.executable, str(worker)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}  # type: ignore[union-attr]

    def __call__(self, **op: object) -> dict:
        self.proc.stdin.write(json.dumps(op) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def crasher():
    """One warm worker for the session; each request forks a child that runs (and maybe dies in) it."""
    c = Crasher()
    yield c
    c.close()
