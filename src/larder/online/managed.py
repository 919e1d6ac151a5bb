"""Named online stores: Databricks' ``create_online_store`` / ``get_online_store`` / ... API.

A store is either **configured** (named under ``online_stores`` in ``larder.yaml``; read-only here) or
**created** with :meth:`OnlineStoreService.create` and recorded in the catalog. A created store's data
lives where its spec says: by default an embedded SQLite file ``<root>/online_stores/<name>.db``, or
any spec (``RedisStoreSpec``, ``DynamoDBStoreSpec``) passed as ``spec=``. ``publish_table`` accepts the
returned :class:`DatabricksOnlineStore` (or its name) as ``online_store``.

Databricks' sizing fields are validated as Databricks validates them and recorded: ``capacity``
(``CU_1``, ``CU_2``, ``CU_4`` or ``CU_8``), ``read_replica_count`` and ``usage_policy_id``. They do not
change how larder serves (an embedded or Redis store has no compute units to size).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import select

from larder._databricks import UNSET, _Unset
from larder.catalog.base import current_user, utcnow
from larder.catalog.online import PublicationRecord
from larder.catalog.stores import OnlineStoreRecord
from larder.context import Context
from larder.errors import ConfigError, OnlineStoreError, OnlineStoreNotFoundError
from larder.online.features import online_tables
from larder.online.stores.base import online_table_from_info
from larder.online.stores.specs import SQLiteStoreSpec, parse_spec, redacted_spec, store_key

CAPACITIES = ("CU_1", "CU_2", "CU_4", "CU_8")
#: Where a created store without a spec keeps its data, under the larder root.
STORES_DIR = "online_stores"


@dataclass(frozen=True)
class DatabricksOnlineStore:
    """An online store, as ``get_online_store`` returns it (Databricks' fields, plus larder's ``spec``
    and ``source``: ``"catalog"`` for a created store, ``"larder.yaml"`` for a configured one)."""

    name: str
    capacity: str
    read_replica_count: int | None = 0
    usage_policy_id: str | None = None
    creator: str | None = None
    #: RFC 3339, e.g. ``"2024-05-01T12:00:00Z"``.
    creation_time: str | None = None
    state: DatabricksOnlineStore.State | None = None
    spec: Any = None
    source: str = "catalog"

    class State(Enum):
        STATE_UNSPECIFIED = "STATE_UNSPECIFIED"
        STARTING = "STARTING"
        AVAILABLE = "AVAILABLE"
        DELETING = "DELETING"
        STOPPED = "STOPPED"
        UPDATING = "UPDATING"
        FAILING_OVER = "FAILING_OVER"


def _rfc3339(ts: datetime) -> str:
    return ts.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("An online store name must be a non-empty string.")
    if len(name.encode("utf-8")) > 63:
        raise ConfigError(f"Online store name {name!r} is longer than 63 bytes.")
    if "/" in name or "\\" in name or name.startswith("."):
        raise ConfigError(f"Online store name {name!r} may not contain path separators or start with a dot.")
    return name


def _check_fields(capacity: Any, read_replica_count: Any, usage_policy_id: Any) -> None:
    if not isinstance(capacity, _Unset) and capacity not in CAPACITIES:
        raise ConfigError(f"Online store capacity must be one of {list(CAPACITIES)}, got {capacity!r}.")
    if not isinstance(read_replica_count, _Unset) and read_replica_count is not None and (
            not isinstance(read_replica_count, int) or isinstance(read_replica_count, bool)
            or read_replica_count < 0):
        raise ConfigError(f"'read_replica_count' value must be a non-negative integer, got {read_replica_count!r}.")
    if not isinstance(usage_policy_id, _Unset) and usage_policy_id is not None and not isinstance(usage_policy_id, str):
        raise ConfigError(f"'usage_policy_id' must be a string, got {usage_policy_id!r}.")


class OnlineStoreService:
    """Create, read, update, list and delete named online stores (see the module docstring)."""

    def __init__(self, ctx: Context, stores: Any) -> None:
        self.ctx = ctx
        self.stores = stores  # a StoreCache, to drop online tables of a deleted store

    # -- reading ----------------------------------------------------------------------------------
    def _configured(self, name: str) -> DatabricksOnlineStore | None:
        spec = self.ctx.config.online_stores.get(name)
        if spec is None:
            return None
        return DatabricksOnlineStore(name=name, capacity="CU_1", read_replica_count=0,
                                     state=DatabricksOnlineStore.State.AVAILABLE, spec=spec, source="larder.yaml")

    @staticmethod
    def _entity(rec: OnlineStoreRecord) -> DatabricksOnlineStore:
        return DatabricksOnlineStore(
            name=rec.name, capacity=rec.capacity, read_replica_count=rec.read_replica_count,
            usage_policy_id=rec.usage_policy_id, creator=rec.creator, creation_time=_rfc3339(rec.created_at),
            state=DatabricksOnlineStore.State.AVAILABLE, spec=parse_spec(rec.spec), source="catalog",
        )

    def get(self, name: str) -> DatabricksOnlineStore | None:
        configured = self._configured(name)
        if configured is not None:
            return configured
        with self.ctx.catalog.session() as s:
            rec = s.scalars(select(OnlineStoreRecord).where(OnlineStoreRecord.name == name)).first()
            return None if rec is None else self._entity(rec)

    def spec_of(self, name: str) -> Any | None:
        """The spec of a created store named ``name`` (None when there is none)."""
        store = self.get(name)
        return None if store is None or store.source != "catalog" else store.spec

    def list(self) -> list[DatabricksOnlineStore]:
        out = [s for s in (self._configured(n) for n in sorted(self.ctx.config.online_stores)) if s is not None]
        with self.ctx.catalog.session() as s:
            out += [self._entity(r) for r in s.scalars(select(OnlineStoreRecord).order_by(OnlineStoreRecord.name))]
        return out

    # -- writing ----------------------------------------------------------------------------------
    def create(self, name: str, capacity: str, read_replica_count: int | None = None,
               usage_policy_id: str | None = None, spec: Any = None) -> DatabricksOnlineStore:
        name = _check_name(name)
        _check_fields(capacity, read_replica_count, usage_policy_id)
        if self.get(name) is not None:
            raise OnlineStoreError(f"Online store with name '{name}' already exists")
        managed = spec is None
        parsed = SQLiteStoreSpec(path=f"{STORES_DIR}/{name}.db") if managed else parse_spec(spec)
        recorded = redacted_spec(parsed)
        if parse_spec(recorded) != parsed:
            raise ConfigError(
                f"Online store {name!r}: the spec holds credentials (a password in the URL). larder keeps no "
                "credentials in its catalog: name the store in larder.yaml's online_stores instead, or pass the "
                "credentials through the environment."
            )
        if managed:
            (self.ctx.root / STORES_DIR).mkdir(parents=True, exist_ok=True)
        now = utcnow()
        with self.ctx.catalog.session() as s:
            rec = OnlineStoreRecord(name=name, spec=recorded, managed_data=int(managed), capacity=capacity,
                                    read_replica_count=read_replica_count or 0, usage_policy_id=usage_policy_id,
                                    creator=current_user(), created_at=now, updated_at=now)
            s.add(rec)
            s.flush()
            return self._entity(rec)

    def _created_record(self, session: Any, name: str, action: str) -> OnlineStoreRecord:
        rec = session.scalars(select(OnlineStoreRecord).where(OnlineStoreRecord.name == name)).first()
        if rec is None:
            if name in self.ctx.config.online_stores:
                raise OnlineStoreError(
                    f"Online store {name!r} is defined in larder.yaml's online_stores; {action} it by editing "
                    "that file."
                )
            raise OnlineStoreNotFoundError(f"Online store with name '{name}' not found")
        return rec

    def update(self, name: str, capacity: Any = UNSET, read_replica_count: Any = UNSET,
               usage_policy_id: Any = UNSET) -> DatabricksOnlineStore:
        _check_fields(capacity, read_replica_count, usage_policy_id)
        with self.ctx.catalog.session() as s:
            rec = self._created_record(s, name, "update")
            current = self._entity(rec)
            wanted = {k: v for k, v in (("capacity", capacity), ("read_replica_count", read_replica_count),
                                        ("usage_policy_id", usage_policy_id)) if not isinstance(v, _Unset)}
            if all(getattr(current, k) == v for k, v in wanted.items()):
                return current
            for k, v in wanted.items():
                setattr(rec, k, v if v is not None or k != "read_replica_count" else 0)
            rec.updated_at = utcnow()
            s.flush()
            return replace(self._entity(rec))

    def delete(self, name: str) -> None:
        """Delete a created store: drop the online tables published to it, mark those publications
        dropped, remove the record, and (for the default SQLite store) its file."""
        with self.ctx.catalog.session() as s:
            rec = self._created_record(s, name, "delete")
            spec = parse_spec(rec.spec)
            managed = bool(rec.managed_data)
        key = store_key(spec, self.ctx.root)
        with self.ctx.catalog.session() as s:
            active = list(s.scalars(select(PublicationRecord).where(PublicationRecord.store_key == key,
                                                                    PublicationRecord.dropped_at.is_(None))))
            infos = {r.online_table["name"]: r.online_table for r in active}
        store = self.stores.get(spec)
        for info in infos.values():
            for table in online_tables(online_table_from_info(info)):
                store.drop_table(table)
        now = utcnow()
        with self.ctx.catalog.session() as s:
            for r in s.scalars(select(PublicationRecord).where(PublicationRecord.store_key == key,
                                                               PublicationRecord.dropped_at.is_(None))):
                r.dropped_at = now
            s.delete(self._created_record(s, name, "delete"))
        if managed:
            self.stores.close()  # the SQLite file may be open
            path = Path(self.ctx.root) / STORES_DIR / f"{name}.db"
            for suffix in ("", "-wal", "-shm"):
                target = Path(f"{path}{suffix}")
                if target.is_dir():  # pragma: no cover - never created so
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)


__all__ = ["CAPACITIES", "DatabricksOnlineStore", "OnlineStoreService"]
