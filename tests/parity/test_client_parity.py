"""The Databricks names and meanings of the classic client's parameters, and the clear errors where
larder behaves differently."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from larder import FeatureEngineeringClient, FeatureLookup
from larder.errors import (
    ConfigError,
    FeatureLookupError,
    FeatureSpecError,
    LarderError,
    ModelError,
    OnlineStoreError,
    OnlineStoreNotFoundError,
    PublishError,
    TableError,
    TimestampKeyError,
)


def events() -> pd.DataFrame:
    return pd.DataFrame({
        "user": [1, 1, 2, 2, 3],
        "ts": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-01-02", "2024-01-20", "2024-02-01"], utc=True),
        "clicks": [1, 2, 3, 4, 5],
    })


# -- create_table / read_table / write_table -------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"timeseries_column": "ts"}, {"timestamp_keys": "ts"}, {"timestamp_keys": ["ts"]},
    {"timeseries_columns": ["ts"]}, {"timeseries_column": "ts", "timestamp_keys": ["ts"]},
])
def test_timeseries_column_and_its_aliases(fe, kwargs) -> None:
    t = fe.create_table(name="ev", primary_keys=["user", "ts"], df=events(), **kwargs)
    assert t.primary_keys == ["user"] and t.timestamp_keys == ["ts"] and t.timeseries_column == "ts"
    assert t.features == ["user", "ts", "clicks"] and t.features[2].dtype == "int64"
    assert t.feature_names == ["clicks"] and t.keys == ["user"]


def test_two_timeseries_columns_are_refused(fe) -> None:
    with pytest.raises(TimestampKeyError, match="one time-series column"):
        fe.create_table(name="ev", primary_keys="user", df=events(), timeseries_column="ts", timestamp_keys="other")


def test_features_df_path_and_spark_schema(fe, tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        fe.create_table(name="a", primary_keys="user", features_df=events().drop_duplicates("user"))
    assert "features_df parameter is deprecated" in caplog.text and len(fe.read_table(name="a")) == 3
    with pytest.raises(TableError, match="not both"):
        fe.create_table(name="b", primary_keys="user", df=events(), features_df=events())
    where = tmp_path / "elsewhere" / "c"
    t = fe.create_table(name="c", primary_keys="user", df=events().drop_duplicates("user"), path=where)
    assert t.path == str(where) and (where / "_delta_log").is_dir()
    class SparkType:  # the part of a pyspark DataType the schema conversion reads
        def __init__(self, text: str) -> None:
            self.text = text

        def simpleString(self) -> str:  # noqa: N802 - Spark's name
            return self.text

    class Field:
        def __init__(self, name: str, text: str) -> None:
            self.name, self.dataType, self.nullable = name, SparkType(text), True

    class Struct:
        fields = [Field("k", "bigint"), Field("amount", "decimal(10,2)"), Field("when", "timestamp_ntz"),
                  Field("scores", "array<float>")]

    t = fe.create_table(name="e", primary_keys="k", schema=Struct())
    assert [f.dtype for f in t.features] == ["int64", "decimal128(10, 2)", "timestamp[us, tz=UTC]",
                                             "list<element: float>"]
    Struct.fields = [Field("k", "bigint"), Field("m", "map<string,int>")]
    with pytest.raises(LarderError, match="Spark type 'map<string,int>'"):
        fe.create_table(name="f", primary_keys="k", schema=Struct())
    types = pytest.importorskip("pyspark.sql.types")
    schema = types.StructType([types.StructField("k", types.LongType()), types.StructField("x", types.DoubleType()),
                               types.StructField("tags", types.ArrayType(types.StringType())),
                               types.StructField("t", types.TimestampType())])
    t = fe.create_table(name="d", primary_keys="k", schema=schema)
    assert [(f.name, f.dtype) for f in t.features] == [
        ("k", "int64"), ("x", "double"), ("tags", "list<element: string>"), ("t", "timestamp[us, tz=UTC]")]


def test_read_table_as_of_delta_timestamp(fe) -> None:
    fe.create_table(name="ev", primary_keys="user", df=events().drop_duplicates("user"))
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    fe.write_table(name="ev", df=pd.DataFrame({"user": [9], "ts": [pd.Timestamp("2024-03-01", tz="UTC")],
                                               "clicks": [9]}))
    assert len(fe.read_table(name="ev")) == 4
    assert len(fe.read_table(name="ev", as_of_delta_timestamp=between)) == 3
    assert len(fe.read_table(name="ev", as_of_delta_timestamp=between.isoformat())) == 3
    with pytest.raises(TableError, match="not both"):
        fe.read_table(name="ev", as_of_timestamp=between, as_of_delta_timestamp=between)


def test_write_table_streaming_arguments(fe, caplog) -> None:
    fe.create_table(name="ev", primary_keys="user", df=events().drop_duplicates("user"))
    with caplog.at_level(logging.WARNING):
        fe.write_table(name="ev", df=events().drop_duplicates("user"), checkpoint_location="/tmp/ck",
                       trigger={"once": True})
    assert "ignoring checkpoint_location/trigger" in caplog.text

    class StreamingFrame:  # what a Spark streaming DataFrame says about itself
        isStreaming = True

    with pytest.raises(TableError, match="streaming DataFrame.*create_stream"):
        fe.write_table(name="ev", df=StreamingFrame())


def test_delete_missing_tag_warns(fe, caplog) -> None:
    fe.create_table(name="ev", primary_keys="user", df=events().drop_duplicates("user"), tags={"a": "1"})
    with caplog.at_level(logging.WARNING):
        fe.delete_feature_table_tag(name="ev", key="zzz")
    assert 'The tag "zzz" for feature table "ev" was not found' in caplog.text


def test_feature_table_attributes(fe) -> None:
    t = fe.create_table(name="ml.s.ev", primary_keys="user", timeseries_column="ts", df=events())
    assert len(t.table_id) == 36 and t.table_id == fe.get_table(name="ml.s.ev").table_id
    assert abs(t.creation_timestamp - time.time() * 1000) < 120_000
    assert t.online_stores == [] and t.notebook_producers == [] and t.table_data_sources == []
    fe.publish_table(source_table_name="ml.s.ev")
    (store,) = fe.get_table(name="ml.s.ev").online_stores
    assert store.store_type == "sqlite" and store.online_table_name == "ml.s.ev" and store.delta_version == 0
    assert "clicks" in t.features and isinstance(t.features[0], str)


# -- lookups and training sets ----------------------------------------------------------------------
def test_deprecated_feature_name_and_output_name(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        lk = FeatureLookup(table_name="t", lookup_key="k", feature_name="q", output_name="quality")
    assert lk.feature_names == ["q"] and lk.rename_outputs == {"q": "quality"}
    assert lk.feature_name == "q" and lk.output_name == "quality" and lk.get_output_name("q") == "quality"
    assert "feature_name parameter is deprecated" in caplog.text
    assert FeatureLookup(table_name="t", lookup_key="k", feature_name="q").output_name == "q"
    with pytest.raises(FeatureLookupError, match="not both"):
        FeatureLookup("t", "k", feature_names=["a"], feature_name="q")
    with pytest.raises(FeatureLookupError, match="single feature"):
        FeatureLookup("t", "k", feature_names=["a", "b"], output_name="x")
    with pytest.raises(FeatureLookupError, match="not both"):
        FeatureLookup("t", "k", feature_name="a", output_name="x", rename_outputs={"a": "y"})


def test_training_set_label_is_required_and_features_come_one_way(fe) -> None:
    fe.create_table(name="ev", primary_keys="user", timeseries_column="ts", df=events())
    lk = [FeatureLookup(table_name="ev", lookup_key="user", timestamp_lookup_key="t")]
    df = pd.DataFrame({"user": [1], "t": pd.to_datetime(["2024-01-03"], utc=True)})
    with pytest.raises(FeatureLookupError, match="needs label="):
        fe.create_training_set(df=df, feature_lookups=lk)
    with pytest.raises(FeatureLookupError, match="exactly one of"):
        fe.create_training_set(df=df, label=None)
    fe.create_feature_spec(name="spec", features=lk)
    with pytest.raises(FeatureLookupError, match="exactly one of"):
        fe.create_training_set(df=df, feature_lookups=lk, feature_spec="spec", label=None)
    with pytest.raises(FeatureLookupError, match="must be a bool"):
        fe.create_training_set(df=df, feature_lookups=lk, label=None, use_spark_native_join="yes")
    with pytest.raises(FeatureLookupError, match="requires use_spark_native_join"):
        fe.create_training_set(df=df, feature_lookups=lk, label=None, use_scalable_native_join=True)
    ts = fe.create_training_set(df=df, feature_lookups=lk, label=None, use_spark_native_join=True)
    assert ts.load_df()["clicks"].tolist() == [1] and ts.get_output_columns() == ["user", "t", "clicks"]


def test_training_set_from_a_named_spec_reads_current_versions(fe) -> None:
    fe.create_table(name="ev", primary_keys="user", timeseries_column="ts", df=events())
    fe.create_feature_spec(name="spec", features=[
        FeatureLookup(table_name="ev", lookup_key="user", timestamp_lookup_key="t", rename_outputs={"clicks": "c"})],
        exclude_columns=["t"], extra_pip_requirements=["requests>=2"])
    fe.write_table(name="ev", df=pd.DataFrame({"user": [1], "ts": pd.to_datetime(["2024-01-03"], utc=True),
                                               "clicks": [50]}))
    df = pd.DataFrame({"user": [1, 2], "t": pd.to_datetime(["2024-01-04", "2024-01-04"], utc=True),
                       "y": [0.0, 1.0]})
    ts = fe.create_training_set(df=df, feature_spec="spec", label="y", exclude_columns=["user"])
    assert ts.feature_table_versions == {"main.default.ev": 1}  # the spec pinned 0; the training set now
    assert ts.load_df().to_dict("list") == {"c": [50, 3], "y": [0.0, 1.0]}
    assert ts.feature_spec.extra_pip_requirements == ["requests>=2"]
    with pytest.raises(FeatureSpecError, match="does not exist"):
        fe.create_training_set(df=df, feature_spec="nope", label="y")


def test_timeseries_filtering_reads_less_and_gives_the_same_rows(fe) -> None:
    rng = np.random.default_rng(7)
    n = 400
    feats = pd.DataFrame({
        "user": rng.integers(0, 20, n),
        "ts": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 90 * 24, n), unit="h"),
        "v": rng.normal(size=n),
    }).drop_duplicates(["user", "ts"])
    fe.create_table(name="f", primary_keys="user", timeseries_column="ts", df=feats)
    labels = pd.DataFrame({
        "user": rng.integers(0, 22, 50),
        "t": pd.Timestamp("2024-02-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 15 * 24, 50), unit="h"),
    })
    labels.loc[3, "t"] = pd.NaT
    latest = feats.sort_values("ts").iloc[-1]
    labels.loc[4, ["user", "t"]] = [latest["user"], latest["ts"]]  # an exact match at the upper edge
    for lookback in (None, timedelta(days=3), timedelta(0)):
        lk = [FeatureLookup(table_name="f", lookup_key="user", timestamp_lookup_key="t", lookback_window=lookback)]
        plain = fe.create_training_set(df=labels, feature_lookups=lk, label=None).load_df()
        filtered = fe.create_training_set(df=labels, feature_lookups=lk, label=None,
                                          use_timeseries_filtering=True).load_df()
        pd.testing.assert_frame_equal(plain, filtered)
        assert plain["v"].notna().sum() >= (1 if lookback == timedelta(0) else 10)
        assert plain.loc[4, "v"] == latest["v"]


def test_time_bounds() -> None:
    import pyarrow as pa

    from larder.training.assemble import time_bounds

    day = timedelta(days=1)
    ts = pa.array([datetime(2024, 1, 3, tzinfo=UTC), None, datetime(2024, 1, 9, tzinfo=UTC)])
    assert time_bounds(ts, None) == (None, datetime(2024, 1, 9, tzinfo=UTC))
    assert time_bounds(ts, day) == (datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC))
    dates = pa.array([datetime(2024, 1, 3).date()])  # a date is widened to the end of its day
    assert time_bounds(dates, None) == (None, datetime(2024, 1, 4, tzinfo=UTC))
    assert time_bounds(pa.array([None, None], type=pa.timestamp("us")), day) is None


# -- feature specs --------------------------------------------------------------------------------
def test_feature_spec_info_owner_and_requirements(fe) -> None:
    fe.create_table(name="h", primary_keys="k", df=pd.DataFrame({"k": [1], "v": [1.0]}))
    spec = fe.create_feature_spec(name="s", features=[FeatureLookup(table_name="h", lookup_key="k")],
                                  extra_pip_requirements=["requests>=2.28", "requests>=2.28"])
    assert spec.name == "main.default.s" and spec.creator and spec.creation_timestamp_ms > 0
    assert spec.extra_pip_requirements == ["requests>=2.28"]
    again = fe.get_feature_spec("s")
    assert again == spec and again.creation_timestamp_ms == spec.creation_timestamp_ms
    fe.update_feature_spec(name="s", owner="data-team")
    assert fe.get_feature_spec("s").creator == "data-team"
    with pytest.raises(FeatureSpecError, match="non-empty"):
        fe.update_feature_spec(name="s", owner=" ")
    with pytest.raises(FeatureSpecError, match="pip requirement strings"):
        fe.create_feature_spec(name="s2", features=[FeatureLookup("h", "k")], extra_pip_requirements=[3])


def test_catalog_upgrade_adds_the_spec_owner(tmp_path) -> None:
    """A catalog at the revision before this one (no feature_specs.owner, no endpoint or store tables) is
    upgraded in place by revision 0004."""
    import sqlite3

    root = tmp_path / "old"
    fe = FeatureEngineeringClient(root=root)
    fe.create_table(name="h", primary_keys="k", df=pd.DataFrame({"k": [1], "v": [1.0]}))
    fe.create_feature_spec(name="s", features=[FeatureLookup("h", "k")])
    fe.close()
    con = sqlite3.connect(root / "catalog.db")
    con.execute("ALTER TABLE feature_specs DROP COLUMN owner")
    con.execute("DROP TABLE serving_endpoints")
    con.execute("DROP TABLE online_stores")
    con.execute("UPDATE larder_alembic_version SET version_num = '0003_declarative_features'")
    con.commit()
    con.close()
    fe = FeatureEngineeringClient(root=root)
    assert fe.get_feature_spec("s").creator is None and len(fe.get_feature_spec("s").steps) == 1
    fe.update_feature_spec(name="s", owner="me")
    assert fe.get_feature_spec("s").creator == "me"
    assert fe.create_online_store(name="x", capacity="CU_1").name == "x"
    fe.close()
    con = sqlite3.connect(root / "catalog.db")
    from larder.catalog.migrate import head_revision

    assert con.execute("SELECT version_num FROM larder_alembic_version").fetchone() == (head_revision(),)
    con.close()


# -- publish_table ----------------------------------------------------------------------------------
def test_publish_table_databricks_arguments(fe, caplog) -> None:
    fe.create_table(name="h", primary_keys="k", df=pd.DataFrame({"k": [1, 2, 3], "v": [1.0, 2.0, 3.0]}))
    fe.publish_table(source_table_name="h")
    fe.write_table(name="h", df=pd.DataFrame({"k": [1], "v": [10.0]}), mode="overwrite")
    spec = fe.create_feature_spec(name="s", features=[FeatureLookup("h", "k")])
    keys = pd.DataFrame({"k": [1, 2]})
    fe.publish_table(source_table_name="h", publish_mode="TRIGGERED")  # merge: key 2 stays online
    assert fe.get_online_features(spec, keys)["v"].tolist() == [10.0, 2.0]
    pub = fe.publish_table(source_table_name="h", publish_mode="SNAPSHOT")  # the online table is the snapshot
    assert pub.mode == "overwrite" and fe.get_online_features(spec, keys)["v"].tolist()[0] == 10.0
    assert np.isnan(fe.get_online_features(spec, keys)["v"].tolist()[1])
    with pytest.raises(PublishError, match="continuous publishing"):
        fe.publish_table(source_table_name="h", streaming=True)
    with pytest.raises(PublishError, match="continuous publishing"):
        fe.publish_table(source_table_name="h", publish_mode="CONTINUOUS")
    with pytest.raises(PublishError, match="publish_mode must be one of"):
        fe.publish_table(source_table_name="h", publish_mode="SOMETIMES")
    with pytest.raises(PublishError, match="source_table_name is required"):
        fe.publish_table(online_store=None)
    with pytest.raises(PublishError, match="disagree"):
        fe.publish_table("h", source_table_name="other")
    with caplog.at_level(logging.WARNING):
        fe.publish_table(source_table_name="h", checkpoint_location="/tmp/x")
    assert "ignoring checkpoint_location" in caplog.text


def test_online_table_name(fe) -> None:
    for name in ("a", "b"):
        fe.create_table(name=name, primary_keys="k", df=pd.DataFrame({"k": [1], "v": [1.0]}))
    fe.publish_table(source_table_name="a", online_table_name="ml.online.a")
    with pytest.raises(PublishError, match="holds feature table 'main.default.a'"):
        fe.publish_table(source_table_name="b", online_table_name="ml.online.a")
    fe.write_table(name="a", df=pd.DataFrame({"k": [1], "v": [5.0]}))
    pub = fe.publish_table(source_table_name="a")  # a republish keeps the table's online name
    assert pub.online_table_name == "ml.online.a"
    assert fe.get_online_features([FeatureLookup("a", "k")], pd.DataFrame({"k": [1]}))["v"].tolist() == [5.0]


# -- models -------------------------------------------------------------------------------------------
@pytest.fixture()
def trained(fe):
    import mlflow
    from sklearn.linear_model import LinearRegression

    fe.create_table(name="h", primary_keys="k", df=pd.DataFrame({"k": [1, 2, 3, 4], "x": [1.0, 2.0, 3.0, 4.0]}))
    fe.create_feature_spec(name="s", features=[FeatureLookup("h", "k")], extra_pip_requirements=["requests>=2.0"])
    ts = fe.create_training_set(df=pd.DataFrame({"k": [1, 2, 3, 4], "y": [2.0, 4.0, 6.0, 8.0]}),
                                feature_spec="s", label="y", exclude_columns=["k"])
    model = LinearRegression().fit(ts.load_df()[["x"]], ts.load_df()["y"])
    return fe, ts, model, mlflow


def test_log_model_databricks_arguments(trained, tmp_path) -> None:
    from mlflow.types import ColSpec, Schema

    fe, ts, model, mlflow = trained
    info = fe.log_model(model=model, artifact_path="model", flavor=mlflow.sklearn, training_set=ts,
                        registered_model_name="ml.s.price", await_registration_for=0,
                        output_schema=Schema([ColSpec("double")]), extra_pip_requirements=["rich>=13"])
    assert info.registered_model_version == 1
    local = mlflow.artifacts.download_artifacts("models:/ml.s.price/1", dst_path=str(tmp_path))
    reqs = (tmp_path / local / "requirements.txt").read_text()
    assert "requests>=2.0" in reqs and "rich>=13" in reqs  # the spec's and the call's
    assert mlflow.models.get_model_info("models:/ml.s.price/1").signature.outputs.to_dict() == [
        {"type": "double", "required": True}]
    with pytest.raises(ModelError, match="needs training_set="):
        fe.log_model(model=model, artifact_path="model", flavor=mlflow.sklearn)
    with pytest.raises(ModelError, match="await_registration_for"):
        fe.log_model(model=model, artifact_path="m", flavor=mlflow.sklearn, training_set=ts,
                     await_registration_for=-1)
    with pytest.raises(ModelError, match="output_schema must be"):
        fe.log_model(model=model, artifact_path="m", flavor=mlflow.sklearn, training_set=ts, output_schema="double")


def test_score_batch_databricks_arguments(trained) -> None:
    fe, ts, model, mlflow = trained
    info = fe.log_model(model=model, artifact_path="model", flavor=mlflow.sklearn, training_set=ts)
    out = fe.score_batch(model_uri=info.model_uri, df=pd.DataFrame({"k": [2, 3]}), result_type="double",
                         env_manager="local", params=None, use_spark_native_join=True)
    np.testing.assert_allclose(out["prediction"], [4.0, 6.0])
    for manager in ("virtualenv", "uv", "conda"):
        with pytest.raises(ModelError, match="runs the model in this process"):
            fe.score_batch(model_uri=info.model_uri, df=pd.DataFrame({"k": [2]}), env_manager=manager)
    with pytest.raises(ModelError, match="env_manager must be one of"):
        fe.score_batch(model_uri=info.model_uri, df=pd.DataFrame({"k": [2]}), env_manager="docker")
    with pytest.raises(ModelError, match="prebuilt_env_uri"):
        fe.score_batch(model_uri=info.model_uri, df=pd.DataFrame({"k": [2]}), prebuilt_env_uri="/tmp/env.tar")
    with pytest.raises(ModelError, match="params must be a mapping"):
        fe.score_batch(model_uri=info.model_uri, df=pd.DataFrame({"k": [2]}), params=[1])


def test_raw_model_params_reach_predict(tmp_path) -> None:
    """``score_batch(params=...)`` and the pyfunc's ``params`` reach the raw model's predict."""
    import mlflow

    from larder.models.bundle import RawModel

    class Scaled(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input["x"] * (params or {}).get("scale", 1.0)

    mlflow.pyfunc.save_model(str(tmp_path / "raw"), python_model=Scaled())
    raw = RawModel.load(tmp_path / "raw")
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    assert list(raw.predict(frame)) == [1.0, 2.0]
    assert list(raw.predict(frame, params={"scale": 3.0})) == [3.0, 6.0]


def test_databricks_registry_uri_is_recognised() -> None:
    from larder.models.tracking import is_databricks_uri

    assert all(is_databricks_uri(u) for u in ("databricks-uc", "databricks", "databricks://prof", "DATABRICKS-UC"))
    assert not any(is_databricks_uri(u) for u in ("sqlite:///x.db", "http://h:5000", None, ""))


def test_client_model_registry_uri(trained, tmp_path) -> None:
    fe, ts, model, mlflow = trained
    other = f"sqlite:///{tmp_path / 'registry.db'}"
    with FeatureEngineeringClient(root=fe.root, model_registry_uri=other) as fe2:
        fe2.log_model(model=model, artifact_path="model", flavor=mlflow.sklearn, training_set=ts,
                      registered_model_name="elsewhere")
    assert [m.name for m in mlflow.MlflowClient(registry_uri=other).search_registered_models()] == ["elsewhere"]
    mlflow.set_registry_uri("databricks-uc")  # what a Databricks notebook does first
    with FeatureEngineeringClient(root=fe.root, model_registry_uri="databricks-uc") as fe3:
        fe3.log_model(model=model, artifact_path="model", flavor=mlflow.sklearn, training_set=ts,
                      registered_model_name="here")
    # registered in larder's own registry (the root's database), not a Databricks one
    assert mlflow.get_registry_uri() == f"sqlite:///{fe.root}/mlflow.db"
    assert mlflow.MlflowClient(registry_uri=f"sqlite:///{fe.root}/mlflow.db").get_registered_model("here")


# -- online stores -------------------------------------------------------------------------------------
def test_online_store_lifecycle(fe) -> None:
    from larder.entities import DatabricksOnlineStore

    store = fe.create_online_store(name="shop", capacity="CU_2", read_replica_count=1)
    assert isinstance(store, DatabricksOnlineStore) and store.state == DatabricksOnlineStore.State.AVAILABLE
    assert store.capacity == "CU_2" and store.read_replica_count == 1 and store.source == "catalog"
    assert store.creation_time.endswith("Z") and store.spec.type == "sqlite"
    assert fe.get_online_store(name="nope") is None
    with pytest.raises(OnlineStoreError, match="already exists"):
        fe.create_online_store(name="shop", capacity="CU_1")
    with pytest.raises(ConfigError, match="capacity must be one of"):
        fe.create_online_store(name="x", capacity="CU_3")
    with pytest.raises(ConfigError, match="read_replica_count"):
        fe.create_online_store(name="x", capacity="CU_1", read_replica_count="2")
    with pytest.raises(ConfigError, match="holds credentials"):
        from larder import RedisStoreSpec

        fe.create_online_store(name="x", capacity="CU_1", spec=RedisStoreSpec(url="redis://u:secret@127.0.0.1:1/0"))
    updated = fe.update_online_store(name="shop", capacity="CU_4")
    assert updated.capacity == "CU_4" and updated.read_replica_count == 1
    assert fe.update_online_store(name="shop") == fe.get_online_store(name="shop")
    with pytest.raises(OnlineStoreNotFoundError, match="not found"):
        fe.update_online_store(name="nope", capacity="CU_1")
    assert [s.name for s in fe.list_online_stores()] == ["shop"]

    fe.create_table(name="h", primary_keys="k", df=pd.DataFrame({"k": [1, 2], "v": [1.0, 2.0]}))
    pub = fe.publish_table(online_store=store, source_table_name="h", online_table_name="ml.online.h")
    assert pub.store_name == "shop"
    fe.publish_table(online_store="shop", source_table_name="h")  # by name too
    assert fe.get_online_features([FeatureLookup("h", "k")], pd.DataFrame({"k": [2]}))["v"].tolist() == [2.0]
    path = fe._ctx.root / "online_stores" / "shop.db"
    assert path.exists()
    fe.delete_online_store(name="shop")
    assert fe.get_online_store(name="shop") is None and not path.exists()
    assert fe.list_publications("h") == [] and fe.get_table(name="h").online_stores == []
    with pytest.raises(OnlineStoreNotFoundError):
        fe.delete_online_store(name="shop")


def test_configured_stores_are_listed_and_read_only(tmp_path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "larder.yaml").write_text("online_stores:\n  local: {type: sqlite, path: local.db}\n")
    with FeatureEngineeringClient(root=root) as fe:
        (store,) = fe.list_online_stores()
        assert store.name == "local" and store.source == "larder.yaml" and store.spec.path == "local.db"
        assert fe.get_online_store(name="local") == store
        with pytest.raises(OnlineStoreError, match="already exists"):
            fe.create_online_store(name="local", capacity="CU_1")
        for call in (lambda: fe.update_online_store(name="local", capacity="CU_2"),
                     lambda: fe.delete_online_store(name="local")):
            with pytest.raises(OnlineStoreError, match="defined in larder.yaml"):
                call()


def test_grant_feature_serving_access_reports(fe, caplog) -> None:
    fe.create_table(name="h", primary_keys="k", df=pd.DataFrame({"k": [1], "a": [1.0], "b": [2.0]}))
    fe.create_table(name="u", primary_keys="k", df=pd.DataFrame({"k": [1], "c": [1.0]}))
    fe.publish_table(source_table_name="h")
    fe.create_feature_spec(name="s", features=[FeatureLookup("h", "k", feature_names=["a"]), FeatureLookup("u", "k")])
    report = fe.grant_feature_serving_access(grant_to=["someone@example.com"], feature_spec="s", dry_run=True)
    (table,) = report.tables
    assert table.online_table_name == "main.default.h" and table.used_features == ["main.default.h.a"]
    assert table.unused_features == ["main.default.h.b"] and table.num_unused_features == 1
    assert report.features_without_online_table == ["main.default.u.c"]
    assert report.tables_to_grant == ["main.default.h"]
    with caplog.at_level(logging.WARNING):
        fe.grant_feature_serving_access(grant_to=["someone@example.com"], feature_spec="s")
    assert "nothing was granted" in caplog.text
    with pytest.raises(LarderError, match="exactly one of"):
        fe.grant_feature_serving_access(grant_to=["x"])


def test_online_store_spec_import_path() -> None:
    from larder.online_store_spec import (
        AmazonDynamoDBSpec,
        AmazonRdsMySqlSpec,
        AzureCosmosDBSpec,
        OnlineStoreSpec,
    )

    spec = AmazonDynamoDBSpec(region="eu-west-1", table_name="t", ttl=timedelta(days=3),
                              read_secret_prefix="scope/prefix", write_secret_prefix="scope/prefix")
    assert isinstance(spec, OnlineStoreSpec) and spec.store_type == "dynamodb" and spec.ttl == timedelta(days=3)
    with pytest.raises(ConfigError, match="does not take credentials"):
        AmazonDynamoDBSpec(region="eu-west-1", access_key_id="AKIA", secret_access_key="x")
    with pytest.raises(ConfigError, match="no AmazonRdsMySql online store"):
        AmazonRdsMySqlSpec("db.example", 3306, table_name="t")
    with pytest.raises(ConfigError, match="no AzureCosmosDB online store"):
        AzureCosmosDBSpec(account_uri="https://x", write_secret_prefix="s/p")
