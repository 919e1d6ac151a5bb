"""Process entry points for the team-deployment tests: clients with their own working directory and
their own larder root (only the larder.yaml pointing at the shared catalog and storage in common).
Importable by spawned children (``tests`` is on their path)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SHARED_KEYS = 40  # keys 0..39 are written by every worker; each batch also inserts new keys


def batch(worker: int, i: int, rows: int = 10) -> pd.DataFrame:
    """Batch ``i`` of ``worker``: half of the rows update shared keys (overlapping with the other workers),
    half insert keys of its own. Each row says who wrote it in which batch."""
    rng = np.random.default_rng((worker + 1) * 100_003 + i)
    shared = rng.choice(SHARED_KEYS, rows // 2, replace=False)
    own = np.arange(rows - rows // 2) + 1_000_000 * (worker + 1) + i * rows
    ids = np.concatenate([shared, own]).astype("int64")
    return pd.DataFrame({"Id": ids, "worker": np.full(len(ids), worker, "int64"),
                         "batch": np.full(len(ids), i, "int64"), "value": rng.normal(size=len(ids))})


def merge_client(workdir: str, settings: dict[str, Any], table: str, worker: int, merges: int, barrier,
                 out: str) -> None:  # type: ignore[no-untyped-def]
    """A client on its own: chdir to ``workdir``, a root there with ``settings`` as its larder.yaml, then
    ``merges`` merges into ``table``. A write that fails with a retryable LarderError is made again (and
    counted); anything else fails the process. Writes ``{"versions": [[version, batch], ...],
    "retried_writes": n, "errors": [...]}`` to ``out``."""
    import yaml

    from larder.client import FeatureEngineeringClient
    from larder.errors import LarderError

    os.chdir(workdir)
    root = Path(workdir) / "root"
    root.mkdir(parents=True, exist_ok=True)
    (root / "larder.yaml").write_text(yaml.safe_dump(settings))
    fe = FeatureEngineeringClient(root)
    versions, retried, errors = [], 0, []
    barrier.wait()
    for i in range(merges):
        df = batch(worker, i)
        while True:
            try:
                versions.append([fe.write_table(table, df), i])
                break
            except LarderError as exc:
                if not exc.retryable or retried > 50:
                    raise
                retried += 1
                errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                time.sleep(0.05)
    fe.close()
    Path(out).write_text(json.dumps({"versions": versions, "retried_writes": retried, "errors": errors}))


def publish_train_client(workdir: str, settings: dict[str, Any], table: str, store: dict[str, Any], rounds: int,
                         barrier, out: str) -> None:  # type: ignore[no-untyped-def]
    """A client on its own that, while others write ``table``, publishes it to a shared DynamoDB store
    and builds training sets from it, ``rounds`` times. Each round checks that what it got is exactly
    the table at the version it pinned: the training set's features equal ``read_table`` at its pinned
    version; the online values equal the published version's. Writes ``{"rounds": [...]}`` to ``out``."""
    import yaml

    from larder.client import FeatureEngineeringClient
    from larder.online.stores.specs import DynamoDBStoreSpec
    from larder.training import FeatureLookup

    os.chdir(workdir)
    root = Path(workdir) / "root"
    root.mkdir(parents=True, exist_ok=True)
    (root / "larder.yaml").write_text(yaml.safe_dump(settings))
    fe = FeatureEngineeringClient(root)
    spec = DynamoDBStoreSpec(**store)
    keys = pd.DataFrame({"Id": np.arange(SHARED_KEYS, dtype="int64")})
    lookup = [FeatureLookup(table, "Id", feature_names=["worker", "batch", "value"])]
    done = []
    barrier.wait()
    for _ in range(rounds):
        ts = fe.create_training_set(keys.assign(label=1.0), lookup, label="label")
        pinned = ts.feature_table_versions[table]
        got = ts.load_df().set_index("Id").sort_index()
        at = fe.read_table(table, as_of_version=pinned).set_index("Id").reindex(got.index)
        assert (got["batch"].fillna(-1).to_numpy() == at["batch"].fillna(-1).to_numpy()).all(), pinned
        pub = fe.publish_table(table, spec, mode="overwrite")
        online = fe.get_online_features(lookup, keys).set_index("Id").sort_index()
        want = fe.read_table(table, as_of_version=pub.delta_version).set_index("Id").reindex(online.index)
        assert (online["batch"].fillna(-1).to_numpy() == want["batch"].fillna(-1).to_numpy()).all(), pub.delta_version
        done.append({"training_version": pinned, "published_version": pub.delta_version, "rows": pub.rows})
    fe.close()
    Path(out).write_text(json.dumps({"rounds": done}))
