"""Storage locations: local paths, file:// and object-store URIs, storage options from larder.yaml
(environment references, never recorded in the catalog), and object-store errors as LarderErrors."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from larder.client import FeatureEngineeringClient
from larder.config import expand_env
from larder.errors import ConfigError, LarderError, TableError
from larder.offline.storage import Location, Storage


def houses(ids=(1, 2, 3)) -> pd.DataFrame:
    return pd.DataFrame({"Id": list(ids), "q": [float(i) for i in ids]})


def test_location_parsing(tmp_path: Path):
    local = Location.parse(str(tmp_path / "t"))
    assert local.is_local and local.uri == str((tmp_path / "t").resolve()) and local.storage_options is None
    assert Location.parse(f"file://{tmp_path}/t").uri == local.uri
    s3 = Location.parse("s3://bucket/prefix/", {"AWS_REGION": "eu-west-1"})
    assert not s3.is_local and s3.uri == "s3://bucket/prefix" and s3.scheme == "s3"
    assert s3.child("main", "default", "t").uri == "s3://bucket/prefix/main/default/t"
    assert s3.child("main", "default", "t").storage_options == {"AWS_REGION": "eu-west-1"}
    for uri in ("gs://b/p", "az://container/p", "abfss://c@account.dfs.core.windows.net/p"):
        assert not Location.parse(uri).is_local
    with pytest.raises(ConfigError, match="unsupported scheme 'ftp'"):
        Location.parse("ftp://host/x")
    with pytest.raises(ConfigError, match="local path"):
        Location.parse("file://otherhost/x")


def test_recorded_paths_are_relative_to_the_root(tmp_path: Path):
    remote = Storage(Location.parse("s3://b/team", {"AWS_SECRET_ACCESS_KEY": "s3cr3t"}))
    loc = remote.table_location("main", "default", "houses")
    assert remote.recorded_path(loc) == "main/default/houses"
    assert remote.resolve("main/default/houses").uri == "s3://b/team/main/default/houses"
    assert remote.resolve("main/default/houses").options == {"AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    # outside the root: the full URI (or path) is recorded, and resolved as it is
    assert remote.recorded_path(Location.parse("s3://other/x")) == "s3://other/x"
    assert remote.resolve(str(tmp_path / "old")).uri == str(tmp_path / "old")
    local = Storage(Location.parse(str(tmp_path)))
    assert local.recorded_path(local.table_location("a", "b", "c")) == "a/b/c"
    assert local.resolve("a/b/c").uri == str(tmp_path.resolve() / "a" / "b" / "c")
    # secrets never show in a repr or message
    assert "s3cr3t" not in repr(loc) and "***" in repr(loc) and "s3cr3t" not in repr(remote)


def test_expand_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LARDER_T_BUCKET", "feat")
    assert expand_env("s3://${LARDER_T_BUCKET}/p", setting="storage") == "s3://feat/p"
    assert expand_env("a $${LARDER_T_BUCKET} b", setting="x") == "a ${LARDER_T_BUCKET} b"
    monkeypatch.delenv("LARDER_T_NOPE", raising=False)
    with pytest.raises(ConfigError, match=r"storage_options.AWS_REGION.*\$\{LARDER_T_NOPE\}.*Export LARDER_T_NOPE"):
        expand_env("${LARDER_T_NOPE}", setting="storage_options.AWS_REGION")


def test_file_uri_storage(larder_root: Path, tmp_path: Path):
    larder_root.mkdir(parents=True)
    (larder_root / "larder.yaml").write_text(f"storage: file://{tmp_path}/shared-tables\n")
    with FeatureEngineeringClient(larder_root) as fe:
        t = fe.create_table("houses", "Id", df=houses())
        assert t.path == str(tmp_path / "shared-tables" / "main" / "default" / "houses")
        assert (tmp_path / "shared-tables" / "main" / "default" / "houses" / "_delta_log").is_dir()
        assert len(fe.read_table("houses")) == 3


@pytest.mark.dynamodb
def test_s3_options_from_environment_never_reach_the_catalog(larder_root: Path, monkeypatch: pytest.MonkeyPatch,
                                                             moto_endpoint: str, s3_bucket: str):
    secret = f"secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("TEAM_S3_ENDPOINT", moto_endpoint)
    monkeypatch.setenv("TEAM_S3_SECRET", secret)
    larder_root.mkdir(parents=True)
    (larder_root / "larder.yaml").write_text(yaml.safe_dump({
        "storage": f"s3://{s3_bucket}/env-{uuid.uuid4().hex[:8]}",
        "storage_options": {"AWS_ENDPOINT_URL": "${TEAM_S3_ENDPOINT}", "AWS_ALLOW_HTTP": True,
                            "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "${TEAM_S3_SECRET}"},
    }))
    with FeatureEngineeringClient(larder_root) as fe:
        t = fe.create_table("houses", "Id", df=houses(), description="on S3")
        fe.write_table("houses", houses((3, 4)))
        assert t.path.startswith(f"s3://{s3_bucket}/") and fe.get_table("houses").version == 1
        assert sorted(fe.read_table("houses")["Id"]) == [1, 2, 3, 4]
        assert fe.read_table("houses", as_of_version=0)["Id"].tolist() == [1, 2, 3]
        # nothing the catalog holds mentions the endpoint or the credentials
        engine = sa.create_engine(fe._ctx.catalog_url)
        with engine.connect() as conn:
            for table in sa.inspect(engine).get_table_names():
                for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                    text = " ".join(str(v) for v in row)
                    assert secret not in text and moto_endpoint not in text, table
        engine.dispose()
        rec_path = fe.get_table("houses").path
        assert rec_path == f"{fe._ctx.storage.root.uri}/main/default/houses"


@pytest.mark.dynamodb
def test_object_store_errors_are_larder_errors(larder_root: Path, moto_endpoint: str):
    from _services import s3_options

    larder_root.mkdir(parents=True)
    (larder_root / "larder.yaml").write_text(yaml.safe_dump({
        "storage": f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/p", "storage_options": s3_options(moto_endpoint),
    }))
    with FeatureEngineeringClient(larder_root) as fe:
        with pytest.raises(TableError, match="no-such-bucket") as info:
            fe.create_table("houses", "Id", df=houses())
        assert isinstance(info.value, LarderError)
        assert fe.list_tables() == []


@pytest.mark.dynamodb
def test_drop_removes_the_objects_and_frees_the_name(larder_root: Path, s3_storage: dict):
    larder_root.mkdir(parents=True)
    (larder_root / "larder.yaml").write_text(yaml.safe_dump(s3_storage))
    with FeatureEngineeringClient(larder_root) as fe:
        fe.create_table("houses", "Id", df=houses())
        fe.write_table("houses", houses((7, 8)))
        loc = fe._ctx.storage.table_location("main", "default", "houses")
        assert loc.has_files()
        fe.drop_table("houses")
        assert not loc.has_files()
        fe.create_table("houses", "Id", df=houses((9,)))
        assert fe.read_table("houses")["Id"].tolist() == [9] and fe.get_table("houses").version == 0


def test_a_location_keeps_its_filesystem_but_does_not_pickle_it(tmp_path: Path):
    import pickle

    loc = Location.parse(str(tmp_path / "t"))
    fs = loc.filesystem()
    assert loc.filesystem() is fs  # made once: create_table lists and reads through one client
    copy = pickle.loads(pickle.dumps(loc))
    assert copy == loc and "_filesystem" not in copy.__dict__
    assert copy.filesystem() is not fs
