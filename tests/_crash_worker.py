"""A warm process that runs larder operations in forked children and reports how each child ended.

The test suite starts it once (``python tests/_crash_worker.py``); it imports larder's dependencies
once, then for each JSON request on stdin forks a child that runs one operation with
``LARDER_FAILPOINT`` set (so the child kills itself with SIGKILL at that point), or kills the child
itself after ``kill_after`` seconds. It answers one JSON line per request:
``{"signal": 9}`` (killed) or ``{"exit": 0}`` (the operation finished). Forking a warm process makes a
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
    else:
        raise ValueError(kind)
    fe.close()


def serve() -> None:
    for line in sys.stdin:
        op = json.loads(line)
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                if op.get("failpoint"):
                    os.environ["LARDER_FAILPOINT"] = op["failpoint"]
                run(op)
            except BaseException as exc:  # reported, the test decides
                print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                code = 3
            os._exit(code)
        if op.get("kill_after") is not None:
            time.sleep(op["kill_after"])
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(pid, 0)
        out = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"exit": os.WEXITSTATUS(status)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    import larder.client  # noqa: F401  (the heavy imports, once)

    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    serve()
