"""The table list's index: what the list and the search need of every feature table, held in memory
and kept current with a cheap check of the catalog on every request.

A ``LIKE '%term%'`` over every feature row of a large catalog is a full scan (10,000 tables with
130,000 features: about half a second per term in SQLite here); the index answers the same search in
a few milliseconds by a substring test over one lower-cased text per table (its name, description,
tag keys and values, feature names and descriptions), and sorts and pages in memory.

It is loaded set-based (three statements for the whole catalog) and refreshed incrementally: each
request first reads one aggregate of the catalog's tables and stats (count, sum of ids, latest
``updated_at`` and stats ``recorded_at``); when it differs from the last one, the tables updated since
(with a margin for writers' clock skew) or added are reloaded and the dropped ones removed. Every
change the list shows moves that aggregate: writes and tag, description, owner and feature
description changes set the table's ``updated_at``, writes record its stats, drops and creates change
the count and ids. A full reload every :data:`FULL_RELOAD_S` seconds (when something changed) bounds
what a writer with a badly wrong clock could leave stale.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from larder.catalog.stats import TableStatsRecord
from larder.catalog.tables import FeatureRecord, TableRecord, TagRecord
from larder.ui.queries import TablePage, TableRow, search_terms, utc

#: Tables changed this long before the last change seen are reloaded too (writers' clocks differ).
CLOCK_MARGIN = timedelta(minutes=10)
#: At most this often (seconds), a change reloads the whole index instead of the changed tables.
FULL_RELOAD_S = 300.0
#: Sort keys of the table list.
SORTS = ("name", "owner", "rows", "version", "last_write")
_CHUNK = 500


@dataclass
class Entry:
    id: int
    name: str
    description: str | None
    primary_keys: list[str]
    timestamp_keys: list[str]
    owner: str | None
    rows: int | None
    version: int | None
    last_write: datetime | None
    tags: dict[str, str] = field(default_factory=dict)
    features: list[tuple[str, str | None]] = field(default_factory=list)
    text: str = ""
    n_features: int = 0

    def finish(self) -> Entry:
        """Compute the search text and the feature count once the tags and features are in."""
        keys = set(self.primary_keys)
        parts = [self.name, self.description or "", *(f"{k}={v}" for k, v in self.tags.items()),
                 *(n for n, _ in self.features), *(d for _, d in self.features if d)]
        self.text = "\n".join(parts).lower()
        self.n_features = sum(n not in keys for n, _ in self.features)
        return self

    def matches(self, terms: list[str]) -> list[str]:
        """Where the terms matched, for the list's ``matched:`` line."""
        out: list[str] = []
        if any(t in self.name.lower() for t in terms):
            out.append("name")
        if self.description and any(t in self.description.lower() for t in terms):
            out.append("description")
        out += [f"tag {k}={v}" if v else f"tag {k}" for k, v in self.tags.items()
                if any(t in k.lower() or t in (v or "").lower() or t in f"{k}={v}".lower() for t in terms)]
        found = [f"feature {n}" for n, d in self.features
                 if any(t in n.lower() or (d is not None and t in d.lower()) for t in terms)]
        return out + found[:5] + ([f"{len(found) - 5} more features"] if len(found) > 5 else [])


def _mark(session: Session) -> tuple[Any, ...]:
    """One statement: (tables, sum of their ids, latest updated_at, stats rows, latest recorded_at)."""
    T, S = TableRecord, TableStatsRecord  # noqa: N806
    row = session.execute(select(
        select(func.count(T.id)).scalar_subquery(), select(func.sum(T.id)).scalar_subquery(),
        select(func.max(T.updated_at)).scalar_subquery(), select(func.count(S.table_id)).scalar_subquery(),
        select(func.max(S.recorded_at)).scalar_subquery())).one()
    return tuple(row)


def _load(session: Session, ids: Iterable[int] | None) -> dict[int, Entry]:
    """Entries of the tables ``ids`` (all tables when None), in three statements per chunk of ids."""
    chunks: list[list[int] | None] = [None]
    if ids is not None:
        ordered = sorted(set(ids))
        chunks = [ordered[i:i + _CHUNK] for i in range(0, len(ordered), _CHUNK)]
    out: dict[int, Entry] = {}
    for chunk in chunks:
        heads = (select(TableRecord.id, TableRecord.full_name, TableRecord.description, TableRecord.primary_keys,
                        TableRecord.timestamp_keys, TableRecord.owner, TableStatsRecord.row_count,
                        TableStatsRecord.delta_version, TableStatsRecord.written_at)
                 .outerjoin(TableStatsRecord, TableStatsRecord.table_id == TableRecord.id))
        tags = select(TagRecord.table_id, TagRecord.key, TagRecord.value).order_by(TagRecord.key)
        feats = select(FeatureRecord.table_id, FeatureRecord.name, FeatureRecord.description).order_by(
            FeatureRecord.table_id, FeatureRecord.position)
        if chunk is not None:
            heads = heads.where(TableRecord.id.in_(chunk))
            tags = tags.where(TagRecord.table_id.in_(chunk))
            feats = feats.where(FeatureRecord.table_id.in_(chunk))
        part = {r.id: Entry(id=r.id, name=r.full_name, description=r.description,
                            primary_keys=list(r.primary_keys or []), timestamp_keys=list(r.timestamp_keys or []),
                            owner=r.owner, rows=r.row_count, version=r.delta_version, last_write=utc(r.written_at))
                for r in session.execute(heads)}
        for tid, key, value in session.execute(tags):
            if tid in part:
                part[tid].tags[key] = value
        for tid, name, desc in session.execute(feats):
            if tid in part:
                part[tid].features.append((name, desc))
        out.update({k: e.finish() for k, e in part.items()})
    return out


class TableIndex:
    """The list's in-memory index over one catalog (thread-safe)."""

    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog
        self._entries: dict[int, Entry] = {}
        self._mark: tuple[Any, ...] | None = None
        self._full_at = 0.0
        self._sorted: dict[tuple[str, bool], list[Entry]] = {}
        self._rank: dict[tuple[str, bool], dict[int, int]] = {}
        self._blob = ""
        self._starts: list[int] = []
        self._ids: list[int] = []
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Bring the index up to date with the catalog (one aggregate statement when nothing changed)."""
        with self._lock, self.catalog.session() as s:
            mark = _mark(s)
            if mark == self._mark:
                return
            if self._mark is None or time.monotonic() - self._full_at > FULL_RELOAD_S:
                self._entries = _load(s, None)
                self._full_at = time.monotonic()
            else:
                old_t, old_s = self._mark[2], self._mark[4]
                ids = set(s.scalars(select(TableRecord.id)))
                for gone in set(self._entries) - ids:
                    del self._entries[gone]
                changed = ids - set(self._entries)
                if old_t is not None:
                    changed |= set(s.scalars(select(TableRecord.id).where(TableRecord.updated_at >= old_t - CLOCK_MARGIN)))
                if old_s is not None:
                    changed |= set(s.scalars(select(TableStatsRecord.table_id)
                                             .where(TableStatsRecord.recorded_at >= old_s - CLOCK_MARGIN)))
                self._entries.update(_load(s, changed & ids))
            self._mark = mark
            self._sorted, self._rank = {}, {}
            # every table's text in one string, NUL-separated (a term never spans two tables): a
            # search is a few str.find calls over it instead of a test per table
            self._ids = list(self._entries)
            texts = [self._entries[i].text for i in self._ids]
            self._starts, pos = [], 0
            for t in texts:
                self._starts.append(pos)
                pos += len(t) + 1
            self._blob = "\0".join(texts)

    def _order(self, sort: str, descending: bool) -> list[Entry]:
        key = (sort, descending)
        if key not in self._sorted:
            entries = sorted(self._entries.values(), key=lambda e: e.name)
            if sort != "name":
                present = [e for e in entries if getattr(e, _FIELD[sort]) is not None]
                missing = [e for e in entries if getattr(e, _FIELD[sort]) is None]
                present.sort(key=lambda e: getattr(e, _FIELD[sort]), reverse=descending)
                entries = present + missing  # unknown values last, either way
            elif descending:
                entries.reverse()
            self._sorted[key] = entries
            self._rank[key] = {e.id: i for i, e in enumerate(entries)}
        return self._sorted[key]

    def _find(self, term: str) -> list[int]:
        """Ids of the tables whose text contains ``term``, one ``str.find`` per hit."""
        out: list[int] = []
        i, blob, starts = 0, self._blob, self._starts
        while True:
            j = blob.find(term, i)
            if j < 0:
                return out
            k = bisect_right(starts, j) - 1
            out.append(self._ids[k])
            i = starts[k + 1] if k + 1 < len(starts) else len(blob)

    def page(self, query: str = "", *, sort: str = "name", descending: bool = False, offset: int = 0,
             limit: int = 50) -> TablePage:
        """One page of the tables matching every term of ``query``, sorted by ``sort``."""
        self.refresh()
        terms = search_terms(query)
        with self._lock:
            ordered = self._order(sort, descending)
            if terms:
                first, rest = max(terms, key=len), [t for t in terms if t != max(terms, key=len)]
                found = [self._entries[i] for i in self._find(first)]
                hits = [e for e in found if all(t in e.text for t in rest)]
                rank = self._rank[(sort, descending)]
                hits.sort(key=lambda e: rank[e.id])
            else:
                hits = ordered
            pending = sum(e.rows is None for e in self._entries.values())
            total_catalog = len(self._entries)
        rows = [TableRow(id=e.id, name=e.name, description=e.description, primary_keys=e.primary_keys,
                         timestamp_keys=e.timestamp_keys, owner=e.owner, tags=dict(e.tags), features=e.n_features,
                         rows=e.rows, version=e.version, last_write=e.last_write,
                         matches=e.matches(terms) if terms else [])
                for e in hits[offset:offset + limit]]
        return TablePage(total=len(hits), catalog_tables=total_catalog, stats_pending=pending, rows=rows)


_FIELD = {"owner": "owner", "rows": "rows", "version": "version", "last_write": "last_write"}

__all__ = ["CLOCK_MARGIN", "FULL_RELOAD_S", "SORTS", "Entry", "TableIndex"]
