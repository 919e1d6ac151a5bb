"""Online lookups for ``FeatureEngineeringClient``: feature specs assembled from the stores the
catalog says their tables are published to.

:class:`OnlineLookupService` resolves each feature table's store from the catalog's publication records
(:class:`~larder.online.publish.Publisher`) and caches one
:class:`~larder.online.assemble.OnlineFeatureAssembler` per spec; store clients come from the client's
:class:`~larder.online.stores.StoreCache`.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from typing import Any

from larder.names import parse_name
from larder.online.assemble import OnlineFeatureAssembler, Output
from larder.online.plan import OnMissing
from larder.online.publish import Publication, Publisher
from larder.online.stores import StoreCache
from larder.training.spec import FeatureSpec

#: Seconds a client trusts its cached view of the catalog's publications and named specs.
CATALOG_REFRESH_S = 30.0


class OnlineLookupService:
    """Online lookups for ``FeatureEngineeringClient``: resolves each table's store from the catalog's
    publication records, and caches assemblers and store clients.

    Cached views of publications and named specs are refreshed after :data:`CATALOG_REFRESH_S`
    seconds, and at once after a publish or drop through the same client.
    """

    def __init__(self, publisher: Publisher, stores: StoreCache, training: Any) -> None:
        self.publisher = publisher
        self.stores = stores
        self.training = training
        #: id of a spec -> (weak reference to it, its tables' publications, when the oldest of them was
        #: read from the catalog (monotonic time), its assembler)
        self._by_spec: dict[int, tuple[weakref.ref[Any], tuple[str, ...], float, OnlineFeatureAssembler]] = {}
        self._by_name: dict[tuple[str, str], tuple[float, OnlineFeatureAssembler]] = {}
        self._resolved: dict[str, tuple[float, Publication, Any]] = {}

    def invalidate(self) -> None:
        self._by_spec.clear()
        self._by_name.clear()
        self._resolved.clear()

    def _locations(self, tables: Sequence[str]) -> dict[str, tuple[Publication, Any]]:
        """``{table: (publication, store spec)}``: the cached ones still fresh, the rest read from the
        catalog in one query."""
        now = time.monotonic()
        resolved = self._resolved
        stale = [t for t in tables if t not in resolved or now - resolved[t][0] >= CATALOG_REFRESH_S]
        if stale:
            got = self.publisher.latest_publications(stale)
            read_at = time.monotonic()
            for t in stale:
                pub, spec = got[parse_name(t).full]
                resolved[t] = (read_at, pub, spec)
        return {t: (resolved[t][1], resolved[t][2]) for t in tables}

    def _build(self, spec: FeatureSpec, on_missing: OnMissing) -> OnlineFeatureAssembler:
        # tables, and declarative features (published under their names)
        stores = {table: (store_spec, pub.online_table)
                  for table, (pub, store_spec) in self._locations(_sources(spec)).items()}
        return OnlineFeatureAssembler(spec, stores, root=self.stores.root, on_missing=on_missing,
                                      store_cache=self.stores)

    def _pubs_key(self, spec: FeatureSpec) -> tuple[tuple[str, ...], float]:
        """``spec``'s tables with the ids of their publications, and when (monotonic) the oldest of
        those cached publications was read from the catalog."""
        tables = _sources(spec)
        pubs = tuple(f"{t}:{pub.id}" for t, (pub, _) in self._locations(tables).items())
        resolved = self._resolved
        return pubs, min((resolved[t][0] for t in tables), default=time.monotonic())

    def assembler(self, spec: FeatureSpec, on_missing: OnMissing = "null") -> OnlineFeatureAssembler:
        """An assembler for ``spec`` (cached per spec object and current publications: a cached one is
        used as is until its tables' publications are due for a check of the catalog)."""
        key = id(spec)
        hit = self._by_spec.get(key)
        if hit is not None and hit[0]() is spec and hit[3].on_missing == on_missing:
            if time.monotonic() - hit[2] < CATALOG_REFRESH_S:
                return hit[3]
            pubs, since = self._pubs_key(spec)
            if hit[1] == pubs:
                self._by_spec[key] = (hit[0], pubs, since, hit[3])
                return hit[3]
        else:
            pubs, since = self._pubs_key(spec)
        asm = self._build(spec, on_missing)
        self._by_spec = {k: v for k, v in self._by_spec.items() if v[0]() is not None}
        self._by_spec[key] = (weakref.ref(spec), pubs, since, asm)
        return asm

    def assembler_for_name(self, name: str, on_missing: OnMissing = "null") -> OnlineFeatureAssembler:
        """An assembler for the named feature spec in the catalog (cached; refreshed periodically)."""
        full = parse_name(name, kind="feature spec").full
        hit = self._by_name.get((full, on_missing))
        if hit is not None and time.monotonic() - hit[0] < CATALOG_REFRESH_S:
            return hit[1]
        spec = self.training.get_feature_spec(full)
        asm = self._build(spec, on_missing)
        self._by_name[(full, on_missing)] = (time.monotonic(), asm)
        return asm

    def get_online_features(self, features: Any, keys_df: Any, *, include_found: bool = False,
                            on_missing: OnMissing = "null", output: Output = "pandas") -> Any:
        """See ``FeatureEngineeringClient.get_online_features``."""
        if isinstance(features, str):
            asm = self.assembler_for_name(features, on_missing)
        elif isinstance(features, FeatureSpec):
            asm = self.assembler(features, on_missing)
        else:
            from larder.training.resolve import build_spec

            # online, a time series looked up without a timestamp means each key's latest row
            spec = build_spec(self.training.tables, self.training.functions, _as_steps(features), online=True)
            asm = self._build(spec, on_missing)
        return asm.assemble(keys_df, include_found=include_found, output=output)


def _sources(spec: FeatureSpec) -> list[str]:
    """What ``spec`` reads online: its lookups' tables, then its declarative features."""
    from larder.online.features import feature_locations

    return list(dict.fromkeys([*(s.table for s in spec.lookups), *feature_locations(spec)]))


def _as_steps(features: Any) -> Sequence[Any]:
    if isinstance(features, (list, tuple)):
        return list(features)
    return [features]


__all__ = ["CATALOG_REFRESH_S", "OnlineLookupService"]
