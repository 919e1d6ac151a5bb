"""Process entry points for multi-process tests (importable by spawned children)."""

from __future__ import annotations

import pandas as pd

from larder.client import FeatureEngineeringClient


def merge_writer(root: str, start: int, n: int, barrier) -> None:  # type: ignore[no-untyped-def]
    """Merge ``n`` batches of 10 new rows into table 'houses', starting at Id ``start``."""
    fe = FeatureEngineeringClient(root)
    barrier.wait()
    for i in range(n):
        ids = list(range(start + i * 10, start + i * 10 + 10))
        fe.write_table("houses", pd.DataFrame({"Id": ids, "OverallQual": [start] * 10, "GrLivArea": [1.0] * 10}))
    fe.close()


def open_catalog(url: str, barrier) -> None:  # type: ignore[no-untyped-def]
    """Open (creating it when the database is empty) the catalog at ``url``, all workers at once."""
    from larder.catalog import Catalog

    barrier.wait()
    Catalog(url).close()


def hold_sqlite_lock(path: str, held, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """Hold an exclusive lock on the SQLite file at ``path`` for ``seconds`` (another client busy writing)."""
    import sqlite3
    import time

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    held.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()
