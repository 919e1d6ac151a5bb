"""get_online_features and OnlineFeatureAssembler: same rows as the offline assembly, found flags,
missing keys, defaults, functions, and an assembler that needs no catalog."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from larder.errors import FeatureLookupError, FeatureSpecError, MissingKeysError
from larder.online import OnlineFeatureAssembler
from larder.training import FeatureFunction, FeatureLookup, FeatureSpec
from larder.training.assemble import assemble_offline

FAR_FUTURE = pd.Timestamp("2200-01-01", tz="UTC")


def price_per_area(q: int, area: float) -> float:
    if area is None or q is None:
        return None  # type: ignore[return-value]
    return q * 1000.0 / area


def shout(tag: str) -> str:
    return None if tag is None else tag.upper()  # type: ignore[return-value]


@pytest.fixture()
def world(fe):  # type: ignore[no-untyped-def]
    fe.create_table("houses", "Id", df=pd.DataFrame({
        "Id": [1, 2, 3, 4], "q": [7, 5, 8, 6], "area": [1500.5, None, 980.0, 1200.0],
        "nb": ["NAmes", "OldTown", None, "Edwards"], "pool": [True, False, False, True],
        "built": pd.to_datetime(["2001-01-01", "1990-05-05", "1970-01-01", "2020-12-31 10:00:00"], format="ISO8601", utc=True)}))
    fe.create_table("ev", ["uid"], timestamp_keys="ts", df=pd.DataFrame({
        "uid": [1, 1, 2, 3], "ts": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-01-05", "2024-02-02"], utc=True),
        "x": [1.0, 3.0, 10.0, np.nan], "tag": ["a", "c", None, "z"]}))
    fe.create_function("price_per_area", price_per_area)
    fe.create_function("shout", shout)
    return fe


def lookups():  # type: ignore[no-untyped-def]
    return [
        FeatureLookup("houses", "house_id", feature_names=["q", "area", "nb", "pool", "built"],
                      rename_outputs={"q": "quality"},
                      default_values={"quality": 0, "nb": "unknown"}),
        FeatureLookup("ev", "user", timestamp_lookup_key="at", default_values={"x": -1.0}),
        FeatureFunction("price_per_area", input_bindings={"q": "quality", "area": "area"}, output_name="ppa"),
        FeatureFunction("shout", input_bindings={"tag": "tag"}),
    ]


def keys() -> pd.DataFrame:
    return pd.DataFrame({"house_id": [3, 99, 1, 2, 3, 4], "user": [1, 2, 77, 3, 2, 1],
                         "at": [FAR_FUTURE] * 6, "request": ["r1", "r2", "r3", "r4", "r5", "r6"]},
                        index=[10, 11, 12, 13, 14, 15])


def test_online_equals_offline_on_every_store(world, store_spec) -> None:
    fe = world
    fe.publish_table("houses", store_spec)
    fe.publish_table("ev", store_spec)
    spec = fe.create_feature_spec("price_features", lookups())
    offline = assemble_offline(fe._ctx, spec, keys())
    on = fe.get_online_features(spec, keys())
    pd.testing.assert_frame_equal(on, offline)
    assert on["quality"].tolist() == [8, 0, 7, 5, 8, 6] and on["nb"].iloc[1] == "unknown"
    assert on["x"].tolist()[:3] == [3.0, 10.0, -1.0]
    # the same through the spec's name, and with FeatureLookup objects directly
    pd.testing.assert_frame_equal(fe.get_online_features("price_features", keys()), offline)
    pd.testing.assert_frame_equal(fe.get_online_features(lookups(), keys()), offline)


def test_found_flags_and_missing_key_policy(world) -> None:
    fe = world
    fe.publish_table("houses")
    fe.publish_table("ev")
    spec = fe.create_feature_spec("s", lookups())
    got = fe.get_online_features(spec, keys().drop(columns="at"), include_found=True)
    assert got.index.tolist() == [10, 11, 12, 13, 14, 15]
    assert got["_found_houses"].tolist() == [True, False, True, True, True, True]
    assert got["_found_ev"].tolist() == [True, True, False, True, True, True]
    assert list(got.columns[-2:]) == ["_found_houses", "_found_ev"]
    # area has no default: a missing house is an error when asked for
    with pytest.raises(MissingKeysError, match=r"1 key\(s\) not found in online table 'main.default.houses'.*"
                                               r"\{'house_id': 99\}.*\['area', 'pool', 'built'\]"):
        fe.get_online_features(spec, keys(), on_missing="error")
    # keys that exist (and a lookup whose every output has a default) pass
    ok = keys().iloc[[0, 2]].assign(house_id=[3, 1], user=[1, 1])
    assert len(fe.get_online_features(spec, ok, on_missing="error")) == 2


def test_exclude_columns_and_request_columns_kept(world) -> None:
    fe = world
    fe.publish_table("houses")
    fe.publish_table("ev")
    spec = fe.create_feature_spec("s2", lookups(), exclude_columns=["tag", "at"])
    got = fe.get_online_features(spec, keys())
    assert list(got.columns) == ["house_id", "user", "request", "quality", "area", "nb", "pool", "built", "x",
                                 "ppa", "shout"]
    pd.testing.assert_frame_equal(got, assemble_offline(fe._ctx, spec, keys()))


def test_lookback_window_online(world) -> None:
    fe = world
    fe.publish_table("ev")
    spec = fe.create_feature_spec("lb", [FeatureLookup("ev", "uid", feature_names=["x"], timestamp_lookup_key="at",
                                                        lookback_window=dt.timedelta(days=40))])
    frame = pd.DataFrame({"uid": [1, 2, 3], "at": pd.to_datetime(["2024-03-05"] * 3, utc=True)})
    got = fe.get_online_features(spec, frame, include_found=True)
    # uid 1: 2024-03-01 (in window); uid 2: 2024-01-05 (too old); uid 3: 2024-02-02 (in window, x is NaN)
    assert got["_found_ev"].tolist() == [True, False, True]
    assert got["x"].iloc[0] == 3.0 and got["x"].iloc[1:].isna().all()
    pd.testing.assert_frame_equal(got.drop(columns="_found_ev"), assemble_offline(fe._ctx, spec, frame))
    # without the request time, "now" anchors the window: every row is older than 40 days
    now = fe.get_online_features(spec, frame.drop(columns="at"), include_found=True)
    assert now["_found_ev"].tolist() == [False, False, False]


def test_assembler_without_catalog(world, tmp_path) -> None:
    fe = world
    fe.publish_table("houses")
    fe.publish_table("ev")
    spec = fe.create_feature_spec("s3", lookups())
    expected = fe.get_online_features(spec, keys(), include_found=True)
    info = json.loads(json.dumps(fe.online_feature_assembler(spec).stores_info()))
    assert set(info) == {"main.default.houses", "main.default.ev"}
    spec_copy = FeatureSpec.from_yaml(spec.to_yaml())
    with OnlineFeatureAssembler(spec_copy, info, root=fe.root, on_missing="null") as asm:
        got = asm.assemble(keys(), include_found=True)
        assert asm.labels == ["houses", "ev"]
        table, found = asm.assemble_arrow(keys())
    pd.testing.assert_frame_equal(got, expected)
    assert table.column("quality").to_pylist() == expected["quality"].tolist()
    assert found["houses"].tolist() == expected["_found_houses"].tolist()
    with OnlineFeatureAssembler(spec_copy, info, root=fe.root) as strict, pytest.raises(MissingKeysError):
        strict.assemble(keys())
    with pytest.raises(FeatureSpecError, match="no online store given for table 'main.default.ev'"):
        OnlineFeatureAssembler(spec_copy, {"main.default.houses": info["main.default.houses"]}, root=fe.root)


def test_assembler_with_a_bare_store_spec(world) -> None:
    fe = world
    fe.publish_table("houses", features=["q", "area", "nb"])
    spec = fe.create_feature_spec("h", [FeatureLookup("houses", "Id", feature_names=["q", "nb"])])
    with OnlineFeatureAssembler(spec, {"houses": {"type": "sqlite"}}, root=fe.root) as asm:
        got = asm.assemble(pd.DataFrame({"Id": [2, 1]}))
    assert got["q"].tolist() == [5, 7] and got["nb"].tolist() == ["OldTown", "NAmes"]


def test_bad_keys(world) -> None:
    fe = world
    fe.publish_table("houses")
    spec = fe.create_feature_spec("h2", [FeatureLookup("houses", "Id", feature_names=["q"])])
    with pytest.raises(FeatureLookupError, match=r"lookup key column\(s\) \['Id'\] are not in the DataFrame"):
        fe.get_online_features(spec, pd.DataFrame({"house": [1]}))
    with pytest.raises(FeatureLookupError, match="'Id'.*string.*int64"):
        fe.get_online_features(spec, pd.DataFrame({"Id": ["1"]}))
    # null keys are simply not found
    got = fe.get_online_features(spec, pd.DataFrame({"Id": [1.0, None]}), include_found=True)
    assert got["_found_houses"].tolist() == [True, False]
    empty = fe.get_online_features(spec, pd.DataFrame({"Id": pd.Series([], dtype="int64")}))
    assert list(empty.columns) == ["Id", "q"] and len(empty) == 0


def test_republish_is_seen_by_a_cached_assembler(world) -> None:
    fe = world
    fe.publish_table("houses")
    spec = fe.create_feature_spec("h3", [FeatureLookup("houses", "Id", feature_names=["q"])])
    assert fe.get_online_features(spec, pd.DataFrame({"Id": [1]}))["q"].tolist() == [7]
    fe.write_table("houses", pd.DataFrame({"Id": [1], "q": [70]}))
    fe.publish_table("houses")
    assert fe.get_online_features(spec, pd.DataFrame({"Id": [1]}))["q"].tolist() == [70]
    assert fe.get_online_features("h3", pd.DataFrame({"Id": [1]}))["q"].tolist() == [70]


def test_another_clients_publish_is_seen_after_the_refresh_interval(world, larder_root, monkeypatch) -> None:
    """A cached assembler keeps its stores until its publications are due for a catalog check
    (CATALOG_REFRESH_S), then follows another process's publish to another store."""
    import larder.online.service as service
    from larder.client import FeatureEngineeringClient
    from larder.online import SQLiteStoreSpec

    fe = world
    fe.publish_table("houses")
    spec = fe.create_feature_spec("h4", [FeatureLookup("houses", "Id", feature_names=["q"])])
    assert fe.get_online_features(spec, {"Id": [1]}, output="dict")["q"] == [7]
    other = FeatureEngineeringClient(root=larder_root)
    try:
        other.write_table("houses", pd.DataFrame({"Id": [1], "q": [70]}))
        other.publish_table("houses", SQLiteStoreSpec(path="other.db"))
        # within the interval the cached assembler reads the store it was built for
        assert fe.get_online_features(spec, {"Id": [1]}, output="dict")["q"] == [7]
        monkeypatch.setattr(service, "CATALOG_REFRESH_S", 0.0)
        assert fe.get_online_features(spec, {"Id": [1]}, output="dict")["q"] == [70]
        assert fe.get_online_features(spec, pd.DataFrame({"Id": [1]}))["q"].tolist() == [70]
    finally:
        other.close()


def test_a_refresh_reads_every_publication_of_a_spec_in_one_query(world, monkeypatch) -> None:
    """When a spec's publications are due for a catalog check, those of all its tables (and declarative
    features) are read in one query of the publications, not one per table."""
    from sqlalchemy import event

    import larder.online.service as service

    fe = world
    fe.create_table("owners", "Id", df=pd.DataFrame({"Id": [1, 2], "x": [3.0, 4.0]}))
    fe.publish_table("houses")
    fe.publish_table("owners")
    spec = fe.create_feature_spec("h5", [FeatureLookup("houses", "Id", feature_names=["q"]),
                                         FeatureLookup("owners", "Id", feature_names=["x"])])
    assert fe.get_online_features(spec, {"Id": [1]}, output="dict")["q"] == [7]
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = fe._ctx.catalog.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        monkeypatch.setattr(service, "CATALOG_REFRESH_S", 0.0)
        got = fe.get_online_features(spec, {"Id": [1]}, output="dict")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert got["q"] == [7] and got["x"] == [3.0]
    reads = [s for s in statements if "FROM online_publications" in s]
    assert len(reads) == 1, reads
