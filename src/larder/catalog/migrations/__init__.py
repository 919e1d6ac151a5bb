"""Alembic environment and revisions of the catalog schema (see :mod:`larder.catalog.migrate`)."""
