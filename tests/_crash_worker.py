"""A warm process that runs larder operations in forked children and reports how each child ended.

The test suite starts it once (``python tests/_crash_worker.py``); it imports larder's dependencies
once, then for each JSON request on stdin forks a child that runs one operation with
``LARDER_FAILPOINT`` set (so the child kills itself with SIGKILL at that point), or kills the child
itself after ``kill_after`` seconds. It answers one JSON line per request:
``{"signal": 9}`` (killed) or ``{"exit": 0}`` (the operation finished; 3: it raised a LarderError, 4:
another exception). ``{"parallel": [op, ...]}`` forks every operation at once (each may wait
``delay`` seconds first) and answers ``{"parallel": [outcome, ...]}``. Forking a warm process makes a
kill -9 trial cost the operation's time, not an interpreter start and a pandas import.

Nothing here may start a thread before forking (deltalake, pyarrow and SQLite are only imported).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pandas as pd  # noqa: F401  (imported once, before forking)
import pyarrow  # noqa: F401
import sqlalchemy  # noqa: F401


def _frame(spec: dict) -> pd.DataFrame:
    return pd.DataFrame(spec)


def run(op: dict) -> None:
    from larder.client import FeatureEngineeringClient

    fe = FeatureEngineeringClient(op["root"])
    kind = op["op"]
    if kind == "create":
        fe.create_table(op["name"], primary_keys="Id", df=_frame(op["df"]),
                        expectations=op.get("expectations"), quality_policy=op.get("policy"))
    elif kind == "drop":
        fe.drop_table(op["name"])
    elif kind == "write":
        fe.write_table(op["name"], _frame(op["df"]), mode=op.get("mode", "merge"))
    elif kind == "publish":
        from larder.online.stores.specs import parse_spec

        fe._publisher.publish_table(op["name"], parse_spec(op["spec"]), mode=op.get("mode", "merge"),
                                    version=op.get("version"), batch_rows=op.get("batch_rows", 50_000))
    elif kind == "push":
        fe.push(op["name"], _frame(op["df"]), to=op.get("to", "both"), push_id=op.get("push_id"))
    elif kind == "materialize_due":
        import datetime as dt

        from larder.declarative.schedule import run_due

        run_due(fe, now=dt.datetime.fromisoformat(op["now"]))
    elif kind == "stream":
        fe.run_stream(op["name"], batch_size=op.get("batch_size", 1000), idle_timeout=op.get("idle", 1.0))
    else:
        raise ValueError(kind)
    fe.close()


def _child(op: dict) -> int:
    """Run ``op`` in this (forked) process; returns the exit code (3: a LarderError, 4: another)."""
    os.environ.update(op.get("env") or {})
    if op.get("delay"):
        time.sleep(op["delay"])
    if op.get("failpoint"):
        os.environ["LARDER_FAILPOINT"] = op["failpoint"]
    try:
        run(op)
    except BaseException as exc:  # reported, the test decides
        from larder.errors import LarderError

        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        if op.get("result"):
            with open(op["result"], "w") as f:
                json.dump({"error": type(exc).__name__, "message": str(exc)}, f)
        return 3 if isinstance(exc, LarderError) else 4
    return 0


def _outcome(status: int) -> dict:
    return {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"exit": os.WEXITSTATUS(status)}


def serve() -> None:
    """One JSON request per line: an operation, or ``{"parallel": [op, ...]}`` (forked together)."""
    for line in sys.stdin:
        request = json.loads(line)
        ops = request["parallel"] if "parallel" in request else [request]
        pids = []
        for op in ops:
            pid = os.fork()
            if pid == 0:
                os._exit(_child(op))
            pids.append(pid)
        if request.get("kill_after") is not None:
            time.sleep(request["kill_after"])
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        outcomes = [_outcome(os.waitpid(pid, 0)[1]) for pid in pids]
        out = {"parallel": outcomes} if "parallel" in request else outcomes[0]
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    # the heavy imports, once (none of them starts a thread)
    import duckdb  # noqa: F401
    import pandera.pandas  # noqa: F401  (expectations are checked with it)
    import redis  # noqa: F401

    import larder.client  # noqa: F401
    import larder.online.publish  # noqa: F401
    import larder.online.stores.redis  # noqa: F401
    import larder.online.stores.sqlite  # noqa: F401
    import larder.quality.validation  # noqa: F401
    import larder.streams.consumer  # noqa: F401

    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    serve()
