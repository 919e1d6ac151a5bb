"""point_in_time_join on the peers' synthetic data (gen_data.py): hand-made edge cases (the semantics Feast's
harness checks) and a pandas reference, on each engine (DuckDB, Spark).

gen_data.py lives in ``shared/peers`` beside the repository (CI clones the repository with ``shared/``
next to it); the test is skipped when it is not there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from larder.offline import pit
from larder.offline.pit import PitSource, point_in_time_join

# beside the repository (a CI clone); a worktree nested deeper finds it further up
GEN_DATA = next((d / "shared" / "peers" / "gen_data.py" for d in Path(__file__).resolve().parents[2].parents
                 if (d / "shared" / "peers" / "gen_data.py").exists()),
                Path(__file__).resolve().parents[2].parent / "shared" / "peers" / "gen_data.py")
FEATURES = [f"f{k}" for k in range(1, 11)]


@pytest.fixture(scope="module")
def peers_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not GEN_DATA.exists():
        pytest.skip(f"shared/peers/gen_data.py not found beside the repository (looked at {GEN_DATA})")
    out = tmp_path_factory.mktemp("peers") / "small"
    subprocess.run([sys.executable, str(GEN_DATA), "--entities", "60", "--feature-rows", "6000",
                    "--label-rows", "1500", "--out", str(out)], check=True, capture_output=True, timeout=120)
    return out


def latest_created(features: pa.Table) -> pa.Table:
    """One row per (entity, event_timestamp): the latest created_timestamp, as a larder table keeps it."""
    order = pc.sort_indices(features, [("entity_id", "ascending"), ("event_timestamp", "ascending"),
                                       ("created_timestamp", "descending")])
    f = features.take(order)
    e, t = f.column("entity_id").to_numpy(), f.column("event_timestamp").to_numpy()
    first = pa.array([True, *((e[1:] != e[:-1]) | (t[1:] != t[:-1]))])
    return f.filter(first)


def source(data: pa.Table, **kw) -> PitSource:
    return PitSource(data, keys=["entity_id"], lookup_keys=["entity_id"], features=FEATURES,
                     output_names=FEATURES, timestamp_key="event_timestamp",
                     timestamp_lookup_key="event_timestamp", **kw)


def merge_asof_reference(features: pa.Table, labels: pa.Table, ttl: timedelta | None) -> pd.DataFrame:
    """pandas merge_asof (backward, exact matches allowed), put back in the labels' order."""
    f = latest_created(features).to_pandas()[["entity_id", "event_timestamp", *FEATURES]]
    lab = labels.to_pandas()
    lab["_pos"] = range(len(lab))
    out = pd.merge_asof(lab.sort_values("event_timestamp", kind="mergesort"),
                        f.sort_values("event_timestamp", kind="mergesort"), on="event_timestamp", by="entity_id",
                        direction="backward", allow_exact_matches=True,
                        tolerance=pd.Timedelta(ttl) if ttl is not None else None)
    return out.sort_values("_pos").drop(columns="_pos").reset_index(drop=True)


def test_edge_cases_expected_values(peers_data: Path, engine):
    features = pq.read_table(peers_data / "features.parquet")
    edge = json.loads((peers_data / "edge_cases.json").read_text())["labels"]
    spine = pa.table({"entity_id": pa.array([r["entity_id"] for r in edge], pa.int64()),
                      "event_timestamp": pa.array([r["event_timestamp_us"] for r in edge], pa.timestamp("us", "UTC")),
                      "label": pa.array([r["label"] for r in edge], pa.int64())})
    for data, kw in ((features, {"tiebreak": "created_timestamp"}),
                     (latest_created(features), {"assume_unique": True}),
                     (latest_created(features), {})):
        out = engine.point_in_time_join(spine, [source(data, **kw)])
        assert out.column("f1").to_pylist() == [r["expected_f1"] for r in edge], kw
        ttl = engine.point_in_time_join(spine, [source(data, lookback_window=timedelta(days=1), **kw)])
        assert ttl.column("f1").to_pylist() == [r["expected_f1_ttl1d"] for r in edge], kw
        assert out.column("label").to_pylist() == spine.column("label").to_pylist()


@pytest.mark.parametrize("ttl", [None, timedelta(days=2)])
def test_matches_pandas_merge_asof(peers_data: Path, ttl: timedelta | None, engine):
    features = pq.read_table(peers_data / "features.parquet")
    labels = pq.read_table(peers_data / "labels.parquet")
    expected = merge_asof_reference(features, labels, ttl)
    for data, kw in ((features, {"tiebreak": "created_timestamp"}), (latest_created(features), {})):
        if engine.name == "duckdb":
            got = point_in_time_join(labels, [source(data, lookback_window=ttl, **kw)], batch_rows=400).to_pandas()
        else:
            got = engine.point_in_time_join(labels, [source(data, lookback_window=ttl, **kw)]).to_pandas()
        assert len(got) == labels.num_rows
        pd.testing.assert_frame_equal(got[expected.columns.tolist()], expected, check_dtype=False)
    assert expected["f1"].isna().sum() > 0  # labels before the first row and unknown entities


@pytest.mark.parametrize("kw", [{}, {"assume_unique": True}, {"lookback_window": timedelta(days=1)},
                                {"tiebreak": "created_timestamp"}])
def test_partitioned_path_equals_general_path(peers_data: Path, kw: dict):
    """The key-partitioned path (several partitions, several reads, a streamed dataset) gives the same
    table as the general path on realistic data."""
    features = pq.read_table(peers_data / "features.parquet")
    labels = pq.read_table(peers_data / "labels.parquet")
    data = features if "tiebreak" in kw else latest_created(features)
    with mock.patch.object(pit, "_PARTITION_BY_CODES", False):
        general = point_in_time_join(labels, [source(data, **kw)])
    with mock.patch.object(pit, "_CHUNK_SOURCE_ROWS", 700), mock.patch.object(pit, "_PASS_SOURCE_ROWS", 2500):
        partitioned = point_in_time_join(labels, [source(pads.dataset(data), **kw)])
        assert point_in_time_join(labels, [source(data, **kw)], batch_rows=100).equals(general)
    assert partitioned.equals(general)
    assert general.column("f1").null_count < labels.num_rows
