"""Catalog schema migrations, through Alembic.

The revisions live in ``larder/catalog/migrations/versions/`` and the revision a catalog is at is kept
in its ``larder_alembic_version`` table (not Alembic's default ``alembic_version``, so that a catalog may
share a database with MLflow's tracking store, which uses that name). What opening a catalog does:

* an empty database: the current schema is created from the ORM models in one transaction and stamped
  at the head revision (Alembic's recommended way to start a database; the same schema as running
  every revision, which a test checks);
* a catalog at the head: nothing;
* a catalog behind the head, or one written by larder before Alembic (``larder_meta.schema_version``
  1 and no version table: the *legacy* state, whose upgrade starts with the baseline revision that
  creates whichever of that schema's tables are missing): upgraded when automatic upgrades are on
  (the default for SQLite, the embedded single-user case), else :class:`~larder.errors.CatalogError`
  saying to run ``larder catalog upgrade`` (the default for shared servers such as PostgreSQL, where
  other clients of the older version may still be running);
* a catalog at a revision this larder does not know (written by a newer larder): an error saying to
  upgrade larder.

Creation and upgrades hold a lock for their whole transaction (PostgreSQL: a transaction-scoped
advisory lock, with transactional DDL; SQLite: ``BEGIN IMMEDIATE``), so several clients opening a new
catalog at once create it exactly once. After an upgrade ``larder_meta.schema_version`` is
:data:`META_SCHEMA_VERSION`, which larder releases from before Alembic refuse to open ("newer than this
larder understands").

Adding a revision (for developers): change the ORM models, then run
``python scripts/catalog_revision.py "what changed"``; it autogenerates a revision against a catalog at
the current head. Review it (SQLite needs ``op.batch_alter_table`` to alter columns), and keep it
working on both SQLite and PostgreSQL. ``tests/catalog/test_migrations.py`` fails while the models and
the head revision differ.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from larder.errors import CatalogError

#: Alembic's version table for the catalog.
VERSION_TABLE = "larder_alembic_version"
#: Where the Alembic environment and revisions are.
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: ``larder_meta.schema_version`` of catalogs written before Alembic.
LEGACY_SCHEMA_VERSION = 1
#: ``larder_meta.schema_version`` from the Alembic era on: older larder releases refuse such a catalog.
META_SCHEMA_VERSION = 2
#: Key of the PostgreSQL advisory lock held while a catalog is created or upgraded.
_PG_LOCK_KEY = 0x6C617264  # "lard"

State = Literal["empty", "current", "behind", "legacy", "ahead"]


@dataclass(frozen=True)
class SchemaStatus:
    """Where a catalog's schema stands relative to this larder's head revision."""

    state: State
    #: the catalog's revision (None: empty or legacy)
    current: str | None
    head: str
    #: revisions an upgrade applies, oldest first
    pending: list[str] = field(default_factory=list)

    @property
    def needs_upgrade(self) -> bool:
        return self.state in ("behind", "legacy")

    def describe(self) -> str:
        if self.state == "empty":
            return "empty (no catalog yet)"
        if self.state == "legacy":
            return f"legacy schema version {LEGACY_SCHEMA_VERSION} (before migrations), {len(self.pending)} to apply"
        if self.state == "ahead":
            return f"at revision {self.current!r}, unknown to this larder (head {self.head!r})"
        if self.state == "behind":
            return f"at revision {self.current!r}, {len(self.pending)} behind head {self.head!r}"
        return f"at head revision {self.head!r}"


@functools.cache
def _script():  # type: ignore[no-untyped-def]
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR), version_locations=[str(MIGRATIONS_DIR / "versions")])


def head_revision() -> str:
    head = _script().get_current_head()
    if head is None:  # pragma: no cover - the package ships its revisions
        raise CatalogError(f"No catalog migrations found in {MIGRATIONS_DIR}; reinstall larder.")
    return str(head)


def alembic_config(connection: Connection | None = None):  # type: ignore[no-untyped-def]
    """An Alembic ``Config`` for the catalog's migrations, bound to ``connection`` when given."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _status(conn: Connection) -> SchemaStatus:
    script = _script()
    head = head_revision()
    insp = inspect(conn)
    if insp.has_table(VERSION_TABLE):
        rows = [r[0] for r in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))]
        current = rows[0] if rows else None
        if current is None:
            return SchemaStatus("legacy", None, head, _pending(script, None))
        if current == head:
            return SchemaStatus("current", current, head)
        try:
            script.get_revision(current)
        except Exception:  # alembic's ResolutionError / CommandError for an unknown revision
            return SchemaStatus("ahead", current, head)
        return SchemaStatus("behind", current, head, _pending(script, current))
    from larder.catalog.base import Base, load_areas

    load_areas()
    larder_tables = set(Base.metadata.tables) & set(insp.get_table_names())
    if not larder_tables:
        return SchemaStatus("empty", None, head, _pending(script, None))
    if "larder_meta" in larder_tables:
        row = conn.execute(text("SELECT value FROM larder_meta WHERE key = 'schema_version'")).first()
        if row is not None and int(row[0]) > LEGACY_SCHEMA_VERSION:
            return SchemaStatus("ahead", f"schema_version {row[0]}", head)
    return SchemaStatus("legacy", None, head, _pending(script, None))


def _pending(script, current: str | None) -> list[str]:  # type: ignore[no-untyped-def]
    revs = list(script.iterate_revisions(script.get_current_head(), current))
    return [r.revision for r in reversed(revs)]


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the catalog's migration lock; committed on success."""
    with engine.connect() as conn:
        dialect = conn.dialect.name
        if dialect == "sqlite":
            # no implicit BEGIN from the driver: take the write lock now; foreign keys off so that a
            # revision that recreates a table (batch mode) does not cascade deletes
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            if dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            if dialect == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")


def status(engine: Engine) -> SchemaStatus:
    """The catalog's schema status (read only)."""
    with engine.connect() as conn:
        return _status(conn)


def _write_meta(conn: Connection) -> None:
    updated = conn.execute(text("UPDATE larder_meta SET value = :v WHERE key = 'schema_version'"),
                           {"v": str(META_SCHEMA_VERSION)})
    if not updated.rowcount:
        conn.execute(text("INSERT INTO larder_meta (key, value) VALUES ('schema_version', :v)"),
                     {"v": str(META_SCHEMA_VERSION)})


def _create(conn: Connection) -> None:
    from alembic.runtime.migration import MigrationContext

    from larder.catalog.base import Base, load_areas

    load_areas()
    Base.metadata.create_all(conn)
    MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).stamp(_script(), "head")
    _write_meta(conn)


def _upgrade(conn: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(conn), "head")
    _write_meta(conn)


def upgrade(engine: Engine, url: str) -> tuple[SchemaStatus, SchemaStatus]:
    """Bring the catalog to the head revision (creating it when empty); returns (before, after)."""
    return _apply(engine, url, upgrade_older=True)


def prepare(engine: Engine, url: str, *, auto_upgrade: bool) -> SchemaStatus:
    """What opening a catalog does (see the module docstring); returns the status it found."""
    found = status(engine)  # without the lock: a catalog at the head (the usual case) costs one query
    if found.state == "current":
        return found
    return _apply(engine, url, upgrade_older=auto_upgrade)[0]


def _apply(engine: Engine, url: str, *, upgrade_older: bool) -> tuple[SchemaStatus, SchemaStatus]:
    """Under the migration lock: create an empty catalog, upgrade an older one (``upgrade_older``),
    refuse a newer one. The state is read again under the lock (another client may have just done it)."""
    try:
        with _locked(engine) as conn:
            before = _status(conn)
            if before.state == "ahead":
                raise _ahead_error(url, before)
            if before.needs_upgrade and not upgrade_older:
                raise CatalogError(
                    f"The catalog at {safe_url(url)} needs a schema upgrade ({before.describe()}). Run `larder "
                    "catalog upgrade` once (with this larder version) to migrate it; its data is kept. Until then "
                    "this larder cannot use it. (Set catalog_auto_upgrade: true in larder.yaml to upgrade on open.)"
                )
            if before.state == "empty":
                _create(conn)
            elif before.needs_upgrade:
                _upgrade(conn)
            after = _status(conn)
    except SQLAlchemyError as exc:
        raise CatalogError(f"Upgrading the catalog at {safe_url(url)} failed (nothing was changed): {_redact_text(str(exc))}",
                           retryable=_transient(exc)) from exc
    return before, after


def _engine(url: str) -> Engine:
    from sqlalchemy import create_engine

    try:
        return create_engine(url, future=True)
    except (SQLAlchemyError, ImportError) as exc:
        raise CatalogError(f"Cannot open the larder catalog at {safe_url(url)}: {_redact_text(str(exc))}. Check catalog_url in "
                           "larder.yaml (PostgreSQL needs `pip install 'larder[postgres]'`).") from exc


def status_at(url: str) -> SchemaStatus:
    """The schema status of the catalog at ``url`` (read only; nothing is created)."""
    engine = _engine(url)
    try:
        return status(engine)
    except SQLAlchemyError as exc:
        raise CatalogError(f"Cannot read the catalog at {safe_url(url)}: {_redact_text(str(exc))}. Check catalog_url in larder.yaml.",
                           retryable=_transient(exc)) from exc
    finally:
        engine.dispose()


def upgrade_at(url: str) -> tuple[SchemaStatus, SchemaStatus]:
    """``larder catalog upgrade``: bring the catalog at ``url`` to the head revision; (before, after)."""
    engine = _engine(url)
    try:
        return upgrade(engine, url)
    finally:
        engine.dispose()


def _transient(exc: BaseException) -> bool:
    from larder.catalog.base import is_transient

    return is_transient(exc)


def _ahead_error(url: str, st: SchemaStatus) -> CatalogError:
    return CatalogError(
        f"The catalog at {safe_url(url)} was written by a newer larder ({st.describe()}). Upgrade larder "
        "(pip install -U larder) to use it."
    )


def _redact_text(text: str) -> str:
    from larder.redaction import redact_text

    return redact_text(text)


def safe_url(url: str) -> str:
    """``url`` without its credentials (userinfo, and secret query parameters such as ``password``), quoted."""
    from larder.redaction import redact_url

    return repr(redact_url(url))


__all__ = [
    "LEGACY_SCHEMA_VERSION",
    "META_SCHEMA_VERSION",
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "SchemaStatus",
    "alembic_config",
    "head_revision",
    "prepare",
    "safe_url",
    "status",
    "status_at",
    "upgrade",
    "upgrade_at",
]
