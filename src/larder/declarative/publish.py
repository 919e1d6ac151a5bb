"""Publishing declarative features to an online store (what materialization's online half runs).

:func:`publish_features` computes the features' timelines as of a time (:func:`larder.declarative.online.online_rows`),
writes them to an online store through the store contract, and records one publication per feature
in the catalog (``table_name`` = the feature's full name), so online lookups, ``get_online_features``
and models logged with the feature find where to read it, exactly as for a published table.

Features are published in groups that share a source, entity and timeseries column; each group is
one online table named ``<catalog>.<schema>.<source table>__features_<hash>`` (the hash covers the
group's definitions, so a changed definition never overwrites another's timelines). An online row's
ordering value is the materialization time, so a store never replaces newer timelines with older ones.
The values of number features at that time (the *heads*, see :mod:`larder.declarative.online`) go to a
second online table, the group's name and ``__heads``, written after the timelines (a failed publish
can leave a key's head older than its timelines: each still answers as of its own publication, and
the next publish replaces it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from larder.catalog.base import utcnow
from larder.catalog.online import PublicationRecord
from larder.declarative.compute import source_key
from larder.declarative.feature import Feature
from larder.declarative.online import HEAD_TABLE_SUFFIX, ORDER, online_rows, split_heads
from larder.declarative.sources import DeltaTableSource
from larder.errors import FeatureDefinitionError, PublishError

if TYPE_CHECKING:
    from larder.online.publish import Publication

#: Rows per batch handed to the store.
BATCH_ROWS = 50_000


def online_table_name(features: Sequence[Feature]) -> str:
    """The online table of a group of features (deterministic in their definitions)."""
    first = features[0]
    digest = hashlib.sha256(json.dumps(sorted((f.name, f.definition_key()) for f in features),
                                       sort_keys=True, default=str).encode()).hexdigest()[:12]
    source = first.source.table_name if isinstance(first.source, DeltaTableSource) else "request"
    return f"{first.catalog_name}.{first.schema_name}.{source}__features_{digest}"


def groups_of(features: Sequence[Feature]) -> list[list[Feature]]:
    """Features split into groups sharing a source, entity and timeseries column (first-seen order)."""
    out: dict[tuple[Any, ...], list[Feature]] = {}
    for f in features:
        out.setdefault((source_key(f.source), tuple(f.entity or ()), f.timeseries_column), []).append(f)
    return list(out.values())


def publish_features(fe: Any, features: Sequence[Feature | str], online_store: Any = None, *,
                     as_of: dt.datetime | None = None, version: int | None = None,
                     mode: Literal["merge", "overwrite"] = "merge", online_table: str | None = None,
                     keys: pa.Table | None = None) -> list[Publication]:
    """Publish registered declarative features' timelines as of ``as_of`` (default: now) to
    ``online_store`` (a spec, a name from larder.yaml, or None: the default store), computed from the
    source's Delta ``version`` (default latest). ``mode="overwrite"`` replaces each group's online
    table atomically; ``"merge"`` writes key by key (a stored newer state is kept). ``online_table``:
    the online table's name (default :func:`online_table_name`; only for features of one group).
    ``keys`` (a table of the entity columns; ``mode="merge"``, one group): recompute and write only
    those keys' rows (what an incremental materialization does; every other stored key keeps its
    timelines, see :mod:`larder.declarative.materialize`). Returns one
    :class:`~larder.online.publish.Publication` per feature."""
    return publish_and_count(fe, features, online_store, as_of=as_of, version=version, mode=mode,
                          online_table=online_table, keys=keys)[0]


def publish_and_count(fe: Any, features: Sequence[Feature | str], online_store: Any = None, *,
                   as_of: dt.datetime | None = None, version: int | None = None,
                   mode: Literal["merge", "overwrite"] = "merge", online_table: str | None = None,
                   keys: pa.Table | None = None) -> tuple[list[Publication], int]:
    """:func:`publish_features`, and the number of source rows it read (every group's, as
    :func:`~larder.declarative.online.online_rows` loads them: with ``keys``, those keys' rows)."""
    from larder.online.publish import _physical_name, _publication, resolve_store
    from larder.online.stores.base import OnlineTable, online_table_info
    from larder.online.stores.specs import redacted_spec, store_key

    if mode not in ("merge", "overwrite"):
        raise PublishError(f"publish_features mode must be 'merge' or 'overwrite', got {mode!r}.")
    resolved = fe._features.resolve(features)
    if not resolved:
        raise FeatureDefinitionError("publish_features needs at least one feature.")
    unregistered = [f.name for f in resolved if not f.is_registered]
    if unregistered:
        raise FeatureDefinitionError(
            f"Features {unregistered} are not registered; only registered features can be published online "
            "(register them with register_feature, or create them with create_feature)."
        )
    when = as_of or dt.datetime.now(dt.UTC)
    ctx = fe._ctx
    store_name, spec = resolve_store(ctx, online_store)
    store = fe._online_stores.get(spec)
    out: list[Publication] = []
    read = 0
    groups = groups_of(resolved)
    if online_table is not None and len(groups) > 1:
        raise PublishError(
            f"publish_features: online_table={online_table!r} names one online table, but the features form "
            f"{len(groups)} groups (by source, entity and timeseries column); publish each group on its own."
        )
    if keys is not None:
        if mode != "merge" or len(groups) > 1:
            raise PublishError(
                "publish_features: keys= recomputes some keys of one online table and merges them in; pass "
                "mode='merge' and the features of one group (by source, entity and timeseries column)."
            )
        entity = list(groups[0][0].entity or [])
        missing = [c for c in entity if c not in keys.column_names]
        if missing:
            raise PublishError(f"publish_features: keys= lacks the entity column(s) {missing}; it needs {entity}.")
    for group in groups:
        started = time.perf_counter()
        rows, info = online_rows(ctx.engine, fe._tables, group, as_of=when, version=version, keys=keys)
        read += info["rows_read"]
        name = online_table or online_table_name(group)
        keys = list(group[0].entity or [])
        timelines, heads = split_heads(rows, name, keys)
        online = None
        # the timelines first: a head row is never newer than its key's timelines
        for part, part_name in ((timelines, name), (heads, f"{name}{HEAD_TABLE_SUFFIX}")):
            if part is None:
                continue
            table = OnlineTable(name=part_name, primary_keys=keys, timestamp_key=None,
                                schema=pa.schema([f for f in part.schema if f.name != ORDER]))
            online = online or table
            batches = [part.slice(i, BATCH_ROWS) for i in range(0, max(part.num_rows, 1), BATCH_ROWS)]
            if keys is not None and part.num_rows == 0:  # no key to merge in: the table keeps its rows
                batches = []
            if mode == "overwrite":
                store.replace_table(table, batches, order=ORDER)
            else:
                for batch in batches:
                    store.write_batch(table, batch, order=ORDER)
        assert online is not None
        with ctx.catalog.session() as s:
            records = []
            for f in group:
                rec = PublicationRecord(
                    table_name=f.full_name, store_name=store_name, store_type=spec.type,
                    store_spec=redacted_spec(spec), store_key=store_key(spec, ctx.root),
                    online_table_name=_physical_name(store, online), online_table=online_table_info(online),
                    features=[g.name for g in group], delta_version=info["source_version"] or 0, mode=mode,
                    filter_condition=getattr(f.source, "filter_condition", None), rows=rows.num_rows,
                    order_value=info["as_of_us"], published_at=utcnow(), duration_s=time.perf_counter() - started)
                s.add(rec)
                records.append(rec)
            s.flush()
            out += [_publication(r) for r in records]
    if "_online" in fe.__dict__:
        fe._online.invalidate()
    return out, read


__all__ = ["BATCH_ROWS", "groups_of", "online_table_name", "publish_features", "publish_and_count"]
