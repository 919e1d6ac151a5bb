"""Alembic environment of the larder catalog.

larder runs it through :func:`larder.catalog.migrate.upgrade` with a connection (already in a
transaction that holds the migration lock) in ``config.attributes["connection"]``. For developers,
``scripts/catalog_revision.py`` runs it against a scratch database to autogenerate a revision.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from larder.catalog.base import Base, load_areas
from larder.catalog.migrate import VERSION_TABLE

load_areas()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database with -x url=<SQLAlchemy URL>")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
