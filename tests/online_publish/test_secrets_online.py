"""A Redis password never persists or prints; a model reads it from the environment where it is loaded.

The session's redis-server gets an ACL user ``larder`` with password ``hunter2``; the store is given
as ``redis://larder@host:port/0?password=hunter2``.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from larder.errors import OnlineStoreError
from larder.online.stores.specs import RedisStoreSpec
from larder.training import FeatureLookup

SECRET = "hunter2"


@pytest.fixture()
def secured_url(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.execute_command("ACL", "SETUSER", "larder", "on", f">{SECRET}", "~*", "&*", "+@all")
    try:
        host = redis_url.split("//", 1)[1]
        yield f"redis://larder@{host}?password={SECRET}"
    finally:
        client.execute_command("ACL", "DELUSER", "larder")
        client.close()


def scan(root, needle: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and p.name != "larder.yaml"
            and needle.encode() in p.read_bytes()]


def test_redis_password_in_no_record_output_or_message(fe, larder_root, secured_url, monkeypatch):
    from larder.cli.online import online_app

    spec = RedisStoreSpec(url=secured_url, key_prefix="sec")
    fe.create_table("houses", "Id", df=pd.DataFrame({"Id": [1, 2], "q": [1.0, 2.0]}))
    pub = fe.publish_table("houses", spec)
    assert SECRET not in json.dumps(pub.to_dict()) and "larder@" not in json.dumps(pub.to_dict())
    # the lookup in this process re-opens the store from the record: the password comes from the
    # environment, and without it the error says what failed without the secret
    monkeypatch.setenv("REDIS_USERNAME", "larder")
    monkeypatch.setenv("REDIS_PASSWORD", SECRET)
    from larder.client import FeatureEngineeringClient

    with FeatureEngineeringClient(larder_root) as other:
        got = other.get_online_features([FeatureLookup("houses", "Id")], pd.DataFrame({"Id": [2]}))
        assert got["q"].tolist() == [2.0]
    monkeypatch.setenv("REDIS_PASSWORD", "wrong-" + SECRET)
    with FeatureEngineeringClient(larder_root) as other, pytest.raises(OnlineStoreError) as err:
        other.get_online_features([FeatureLookup("houses", "Id")], pd.DataFrame({"Id": [2]}))
    assert SECRET not in str(err.value)
    r = CliRunner().invoke(online_app, ["list", "--json", "--root", str(larder_root)])
    assert r.exit_code == 0 and "houses" in r.output and SECRET not in r.output
    assert scan(larder_root, SECRET) == []


def test_unreachable_redis_error_hides_the_password(fe):
    spec = RedisStoreSpec(url=f"redis://:{SECRET}@127.0.0.1:1/0", key_prefix="x")
    fe.create_table("houses", "Id", df=pd.DataFrame({"Id": [1], "q": [1.0]}))
    with pytest.raises(OnlineStoreError) as err:
        fe.publish_table("houses", spec)
    assert SECRET not in str(err.value) and "127.0.0.1:1" in str(err.value)
    assert fe.list_publications() == []
