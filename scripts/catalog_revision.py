"""Autogenerate a catalog migration (Alembic revision) from the ORM models.

    python scripts/catalog_revision.py "add the frobnicator table"

Builds a scratch SQLite catalog at the current head revision, compares it with ``Base.metadata`` and
writes ``src/larder/catalog/migrations/versions/<NNNN>_<slug>.py``. Review what it wrote: it must run
on SQLite and PostgreSQL (``op.batch_alter_table`` for column changes on SQLite), and data moves are
yours to add.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].strip():
        print(__doc__)
        return 2
    message = argv[0].strip()
    from alembic import command
    from sqlalchemy import create_engine

    from larder.catalog import migrate

    versions = migrate.MIGRATIONS_DIR / "versions"
    numbers = [int(m.group(1)) for p in versions.glob("*.py") if (m := re.match(r"(\d{4})_", p.name))]
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40]
    rev_id = f"{max(numbers, default=0) + 1:04d}_{slug}"
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'scratch.db'}"
        engine = create_engine(url)
        with engine.begin() as conn:  # the head schema, by running every revision
            command.upgrade(migrate.alembic_config(conn), "head")
        with engine.begin() as conn:
            cfg = migrate.alembic_config(conn)
            cfg.set_main_option("file_template", "%%(rev)s")  # the file is named after the revision id
            command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
        engine.dispose()
    print(f"wrote {versions / (rev_id + '.py')}: review it before committing")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
