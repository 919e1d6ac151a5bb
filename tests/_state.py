"""What a larder root holds, to assert that a refused operation wrote nothing.

:func:`root_state` captures every row of every catalog table and every file (path and size) under the
root except the catalog database's own files, MLflow's and SQLite's WAL files; two captures compare equal exactly when
nothing was written in between.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

_SKIP = ("catalog.db", "mlflow.db", "mlflow", "mlruns")


def catalog_rows(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = Path(root) / "catalog.db"
    if not db.exists():
        return {}
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows = {t: sorted(map(tuple, con.execute(f'SELECT * FROM "{t}"')), key=repr) for t in tables}
        # a catalog opened for the first time holds empty tables and its schema version: not a write
        return {t: r for t, r in rows.items() if r and t not in ("larder_meta", "alembic_version", "larder_alembic_version")}
    finally:
        con.close()


def files(root: Path) -> dict[str, int]:
    root = Path(root)
    out: dict[str, int] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel.split("/")[0].startswith(_SKIP) or rel.endswith(("-wal", "-shm")) or not p.is_file():
            continue
        out[rel] = p.stat().st_size
    return out


def root_state(root: Path) -> dict[str, Any]:
    """Catalog rows and files of a larder root (see the module docstring)."""
    return {"catalog": catalog_rows(root), "files": files(root)}
