"""The catalog's SQLAlchemy base, engine and schema versioning.

Each area of larder keeps its ORM classes in its own module of this package (``tables``,
``functions``, ``online``, ``models``, ``quality``, ``stats``, ``edits``, ``declarative``), all on the one
declarative :class:`Base`.
:class:`Catalog` imports them, creates missing tables, and applies the ordered list of upgrades in
:data:`MIGRATIONS` to reach :data:`SCHEMA_VERSION`, recording the version in ``larder_meta``.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, String, create_engine, event, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from larder.errors import CatalogError

#: Modules (under ``larder.catalog``) that define ORM classes. Areas not yet present are skipped.
AREAS = ("tables", "functions", "online", "models", "quality", "stats", "edits", "declarative")

#: Bump when a migration is appended to MIGRATIONS.
SCHEMA_VERSION = 1

#: MIGRATIONS[i] upgrades a catalog from schema version i+1 to i+2 (create_all covers new tables).
MIGRATIONS: list[Callable[[Connection], None]] = []


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "larder_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


def _load_areas() -> None:
    for area in AREAS:
        mod = f"larder.catalog.{area}"
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod)


class Catalog:
    """A connection to the metadata catalog (SQLite by default, any SQLAlchemy URL)."""

    def __init__(self, url: str) -> None:
        _load_areas()
        self.url = url
        try:
            self.engine = create_engine(url, future=True)
            if url.startswith("sqlite"):
                event.listen(self.engine, "connect", _sqlite_pragmas)
            Base.metadata.create_all(self.engine)
            self._upgrade()
        except SQLAlchemyError as exc:
            raise CatalogError(
                f"Cannot open the larder catalog at {url!r}: {exc}. Check catalog_url in larder.yaml."
            ) from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _upgrade(self) -> None:
        with self.engine.begin() as conn:
            row = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).first()
            version = int(row[0]) if row else None
            if version is None:
                conn.execute(insert(Meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            if version > SCHEMA_VERSION:
                raise CatalogError(
                    f"The catalog at {self.url!r} has schema version {version}, newer than this larder "
                    f"understands ({SCHEMA_VERSION}). Upgrade larder."
                )
            for step in MIGRATIONS[version - 1 :]:
                step(conn)
            conn.execute(
                update(Meta).where(Meta.key == "schema_version").values(value=str(SCHEMA_VERSION))
            )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise CatalogError(f"Catalog operation failed: {exc}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


__all__ = ["AREAS", "Base", "Catalog", "MIGRATIONS", "SCHEMA_VERSION", "text", "utcnow"]
