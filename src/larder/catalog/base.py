"""The catalog's SQLAlchemy base and engine.

Each area of larder keeps its ORM classes in its own module of this package (``tables``,
``functions``, ``online``, ``models``, ``quality``, ``stats``, ``edits``, ``declarative``, ``serving``,
``stores``, ``managed``, ``streams``), all on the
one declarative :class:`Base`. :class:`Catalog` imports them and opens the database; its schema is created and
upgraded by Alembic revisions (:mod:`larder.catalog.migrate`, ``larder catalog upgrade``).
"""

from __future__ import annotations

import importlib
import importlib.util
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import String, create_engine, event, make_url, select, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from larder.errors import CatalogError, LarderError
from larder.redaction import redact_text

#: Modules (under ``larder.catalog``) that define ORM classes. Areas not yet present are skipped.
AREAS = ("tables", "functions", "online", "models", "quality", "stats", "edits", "declarative", "serving",
         "stores", "managed", "materialization", "streams")


def current_user() -> str | None:
    """The operating-system user running larder (recorded as owners and creators), None when the system
    has no user database entry for it (some containers)."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - KeyError, OSError: no user database entry
        return None


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


R = TypeVar("R")


def named_record(session: Session, model: type[R], column: Any, name: str,
                 missing: Callable[[list[str]], LarderError]) -> R:
    """The ``model`` row whose ``column`` is ``name``; else raise ``missing(names)``, where ``names`` are
    the column's existing values in order (so a not-found error can list what does exist)."""
    rec = session.scalars(select(model).where(column == name)).first()
    if rec is None:
        raise missing(list(session.scalars(select(column).order_by(column)).all()))
    return rec


class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "larder_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


def load_areas() -> None:
    """Import every area's ORM module, so that ``Base.metadata`` holds the whole schema."""
    for area in AREAS:
        mod = f"larder.catalog.{area}"
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod)


class Catalog:
    """A connection to the metadata catalog (SQLite by default, any SQLAlchemy URL).

    Opening it creates the schema in an empty database and checks the schema revision of an existing
    one (see :mod:`larder.catalog.migrate`): ``auto_upgrade`` upgrades an older catalog on open (None:
    only SQLite, the embedded single-user case; shared servers are upgraded by ``larder catalog
    upgrade``).
    """

    def __init__(self, url: str, *, auto_upgrade: bool | None = None) -> None:
        from larder.catalog import migrate

        load_areas()
        self.url = url
        sqlite = url.startswith("sqlite")
        try:
            # pre-ping: a server that restarted or dropped an idle connection costs a reconnect, not an error
            self.engine = create_engine(url, future=True, pool_pre_ping=not sqlite)
        except (SQLAlchemyError, ImportError) as exc:
            raise CatalogError(f"Cannot open the larder catalog at {migrate.safe_url(url)}: {_redacted(exc, url)}. "
                               "Check catalog_url in larder.yaml (PostgreSQL needs `pip install 'larder[postgres]'`).") from exc
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self.schema = migrate.prepare(self.engine, url, auto_upgrade=sqlite if auto_upgrade is None
                                          else auto_upgrade)
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise CatalogError(
                f"Cannot open the larder catalog at {migrate.safe_url(url)}: {_redacted(exc, url)}. Check "
                "catalog_url in larder.yaml (or run `larder doctor`).", retryable=is_transient(exc),
            ) from exc
        except BaseException:
            self.engine.dispose()
            raise
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            transient = is_transient(exc)
            hint = " It is safe to retry." if transient else ""
            raise CatalogError(f"Catalog operation failed: {_redacted(exc, self.url)}.{hint}",
                               retryable=transient) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        self.engine.dispose()


def is_transient(exc: BaseException) -> bool:
    """Whether a database error is worth retrying: a lost connection, a lock or serialization
    conflict, a timeout (SQLAlchemy's ``OperationalError``), not a constraint or a bad statement."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError)


def _redacted(exc: Exception, url: str) -> str:
    """A driver's error message without the catalog URL's credentials (nor any URL's)."""
    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001 - an unparseable URL has no password to hide
        password = None
    return redact_text(str(exc), secrets=(str(password),) if password else ())


#: How long a SQLite catalog connection waits for another client's lock (the busy handler, and the
#: retries of the journal-mode switch below), in seconds.
SQLITE_LOCK_WAIT = 30.0


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    try:
        # the busy handler first: every statement after it waits for other clients' locks
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_LOCK_WAIT * 1000)}")
        _sqlite_wal(cur)
        cur.execute("PRAGMA foreign_keys=ON")
    finally:
        cur.close()


def _sqlite_wal(cur) -> None:  # type: ignore[no-untyped-def]
    """Put the database in WAL mode once. Switching the journal mode needs an exclusive lock and SQLite
    may refuse it at once (``database is locked``) without calling the busy handler, e.g. while another
    client creates the schema of a new catalog: such a refusal is retried until :data:`SQLITE_LOCK_WAIT`."""
    deadline = time.monotonic() + SQLITE_LOCK_WAIT
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            message = str(exc).lower()
            if ("locked" not in message and "busy" not in message) or time.monotonic() >= deadline:
                raise
            time.sleep(random.uniform(0.01, 0.05))


__all__ = ["AREAS", "Base", "Catalog", "is_transient", "load_areas", "text", "utcnow"]
