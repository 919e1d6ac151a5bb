"""Streams: definitions (create/get/list/update/delete_stream), the consumer over a real redis-server,
exactly once in Delta and online across kills (fail points and SIGKILL at random moments)."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from larder.entities import (
    DirectSchemas,
    IngestionConfig,
    IngestionDestination,
    KafkaSource,
    KafkaStreamConfig,
    KafkaSubscriptionMode,
    KinesisStreamConfig,
    RedisStreamConfig,
    SchemaConfig,
    SchemaRegistryConfig,
    StreamConnectionConfig,
    StreamSource,
)
from larder.errors import FeatureDefinitionError, StreamError

PAYLOAD = json.dumps({"type": "object", "properties": {
    "event_id": {"type": "integer"}, "user": {"type": "integer"}, "amount": {"type": "number"},
    "kind": {"type": "string"}, "ts": {"type": "string", "format": "date-time"}}})


def _define(fe: Any, redis_url: str, key: str, *, name: str = "main.default.clicks", table: str = "events",
            **kwargs: Any) -> Any:
    return fe.create_stream(
        name=name, source_config=RedisStreamConfig(stream_keys=[key]),
        connection_config=StreamConnectionConfig(url=redis_url),
        schema_config=DirectSchemas(payload_schema=SchemaConfig(json_schema=PAYLOAD)),
        ingestion_config=IngestionConfig(ingestion_destination=IngestionDestination(delta_table_name=table)),
        **kwargs)


def _events_table(fe: Any, name: str = "events", keys: str | list[str] = "event_id", **kwargs: Any) -> None:
    schema = pa.schema([("event_id", pa.int64()), ("user", pa.int64()), ("amount", pa.float64()),
                        ("kind", pa.string()), ("ts", pa.timestamp("us", tz="UTC"))])
    fe.create_table(name=name, primary_keys=keys, schema=schema, **kwargs)


def _produce(redis_url: str, key: str, events: list[dict[str, Any]]) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    pipe = client.pipeline(transaction=False)
    for i, e in enumerate(events):
        pipe.xadd(key, {"value": json.dumps(e)})
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    client.close()


#: Adds events ``_event(i)`` for i in [ARGV[1], ARGV[2]) inside redis-server (the 100k-event run's
#: producer: one round trip per 10k events instead of a client-side loop).
_PRODUCE_LUA = """
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) - 1 do
  local v = string.format('{"event_id": %d, "user": %d, "amount": %d.0, "kind": "click", '
    .. '"ts": "2026-01-01T00:00:%02dZ"}', i, i % 97, i, i % 60)
  redis.call('XADD', KEYS[1], '*', 'value', v)
end
return 0
"""


def _produce_range(redis_url: str, key: str, n: int) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    script = client.register_script(_PRODUCE_LUA)
    for start in range(0, n, 10_000):
        script(keys=[key], args=[start, min(start + 10_000, n)])
    assert client.xlen(key) == n
    client.close()


def _event(i: int, *, user: int | None = None, amount: float | None = None, kind: str = "click") -> dict[str, Any]:
    return {"event_id": i, "user": i % 97 if user is None else user, "amount": float(i) if amount is None else amount,
            "kind": kind, "ts": f"2026-01-01T00:00:{i % 60:02d}Z"}


def _online(fe: Any, table: str, keys: list[Any], features: list[str]) -> pd.DataFrame:
    """The table's online rows of ``keys`` read from its store (missing keys: NaN)."""
    from larder.online.push import live_targets

    [target] = live_targets(fe._publisher, table)
    online = target.online
    store = fe._online_stores.get(target.spec)
    values, found = store.read_batch(online, pa.table({online.primary_keys[0]: pa.array(keys, pa.int64())}), features)
    out = values.to_pandas()
    out["found"] = found
    return out


# -- definitions ------------------------------------------------------------------------------------
def test_create_get_list_update_delete(fe: Any) -> None:
    _events_table(fe)
    st = _define(fe, "redis://127.0.0.1:1/0", "k", description="clicks", record_type_filter="value.kind = 'click'",
                 excluded_columns=["value.amount"])
    assert st.name == "main.default.clicks" and st.destination == "main.default.events" and st.platform == "redis"
    got = fe.get_stream(name="clicks")
    assert got.description == "clicks" and got.excluded_columns == ["value.amount"] and got.creator
    assert got.source_config.redis_stream_config.stream_keys == ["k"]
    listed = fe.list_streams(catalog_name="main", schema_name="default")
    assert [s.name for s in listed] == ["main.default.clicks"] and listed[0].schema_config.direct_schemas is None
    assert fe.list_streams(catalog_name="main", schema_name="default", include_schemas=True)[0] \
        .schema_config.direct_schemas.payload_schema.json_schema == PAYLOAD
    assert fe.list_streams(catalog_name="main", schema_name="other") == []
    up = fe.update_stream(name="main.default.clicks", excluded_columns=[])
    assert up.excluded_columns == [] and up.schema_config.direct_schemas.payload_schema.json_schema == PAYLOAD
    with pytest.raises(StreamError, match="already exists"):
        _define(fe, "redis://127.0.0.1:1/0", "k")
    fe.delete_stream(name="clicks")
    with pytest.raises(StreamError, match="does not exist"):
        fe.get_stream(name="clicks")


@pytest.mark.parametrize(("change", "message"), [
    ({"table": "nope"}, "destination table 'main.default.nope' does not exist"),
    ({"excluded_columns": ["value.event_id"]}, r"no column for primary key\(s\) \['event_id'\]"),
    ({"excluded_columns": ["value.nope"]}, "excluded_columns .* are not in its schemas"),
    ({"record_type_filter": "value.nope = 1"}, "record_type_filter 'value.nope = 1' is not a valid SQL predicate"),
    ({"source_config": KinesisStreamConfig()}, "cannot read Kinesis"),
    ({"source_config": KafkaStreamConfig(subscription_mode=KafkaSubscriptionMode(subscribe_pattern="a.*"))},
     "reads one Kafka topic"),
    ({"schema_config": SchemaRegistryConfig(uc_connection="sr")}, "no schema registry"),
    ({"schema_config": DirectSchemas(payload_schema=SchemaConfig(json_schema='{"properties": {"a": {"type": "array"}}}'))},
     "property 'a' has type 'array'"),
    ({"connection_config": StreamConnectionConfig(uc_connection_name="kafka-conn")}, "needs url="),
])
def test_bad_definitions_are_refused_and_not_recorded(fe: Any, change: dict[str, Any], message: str) -> None:
    _events_table(fe)
    args: dict[str, Any] = {
        "name": "clicks", "source_config": RedisStreamConfig(stream_keys=["k"]),
        "connection_config": StreamConnectionConfig(url="redis://127.0.0.1:1/0"),
        "schema_config": DirectSchemas(payload_schema=SchemaConfig(json_schema=PAYLOAD)),
        "ingestion_config": IngestionConfig(ingestion_destination=IngestionDestination(
            delta_table_name=change.pop("table", "events")))}
    args.update(change)
    with pytest.raises(StreamError, match=message):
        fe.create_stream(**args)
    assert fe.list_streams(catalog_name="main", schema_name="default") == []


def test_stream_sources(fe: Any, redis_url: str) -> None:
    _events_table(fe)
    _define(fe, redis_url, f"src-{uuid.uuid4().hex}")
    fe.write_table(name="events", df=pd.DataFrame([_event(1), _event(2, kind="view")]).assign(
        ts=lambda d: pd.to_datetime(d.ts, utc=True)))
    src = StreamSource(catalog_name="main", schema_name="default", stream_name="clicks", filter_condition="kind = 'view'")
    assert src.full_name() == "main.default.clicks" and not src.is_inaccessible
    assert src.load_df(fe)["event_id"].tolist() == [2]
    assert src.delta_table_source(fe).full_name() == "main.default.events"
    k = KafkaSource(name="main.default.clicks", filter_condition="event_id = 1")
    assert k.load_df(fe)["event_id"].tolist() == [1]
    assert KafkaSource.get_columns_from_kafka_config(fe.get_stream(name="clicks"))["value.amount"] == pa.float64()
    with pytest.raises(FeatureDefinitionError, match="not both"):
        StreamSource(full_name="a.b.c", stream_name="c")
    with pytest.raises(FeatureDefinitionError, match="three parts"):
        StreamSource(full_name="c")


# -- the consumer ------------------------------------------------------------------------------------
def test_consumer_writes_delta_and_online_newest_wins(fe: Any, redis_url: str) -> None:
    """A snapshot table keyed by user: within and across batches the last event of a user wins, in
    Delta and online; record_type_filter drops events; rows carry the stream's offsets in Delta."""
    key = f"clicks-{uuid.uuid4().hex}"
    _events_table(fe, "users", keys="user")
    fe.publish_table(name="users")
    _define(fe, redis_url, key, table="users", record_type_filter="value.kind <> 'bot'")
    events = [_event(i, user=i % 5, amount=float(i)) for i in range(23)] + [_event(99, user=0, kind="bot")]
    _produce(redis_url, key, events)
    stats = fe.run_stream("clicks", batch_size=10, idle_timeout=0.5)
    assert stats.events_written == 24 and stats.batches == 3
    got = fe.read_table(name="users").sort_values("user")
    assert got["event_id"].tolist() == [20, 21, 22, 18, 19]  # the last non-bot event per user
    online = _online(fe, "main.default.users", [0, 1, 2, 3, 4, 5], ["event_id", "amount"])
    assert online["found"].tolist() == [True] * 5 + [False]
    assert online["event_id"].tolist()[:5] == [20, 21, 22, 18, 19]
    # the offsets are in the newest Delta commit, with the stream's id
    history = fe._tables.snapshot("users").table.history(1)[0]
    info = json.loads(history["larder.stream"])
    assert info["offsets"][key] == stats.offsets[key] and info["id"] == fe._streams.record("clicks").stream_id
    # nothing new: a second run writes nothing
    assert fe.run_stream("clicks", idle_timeout=0.3).events_written == 0


def test_bad_event_stops_the_consumer_without_writing(fe: Any, redis_url: str) -> None:
    key = f"bad-{uuid.uuid4().hex}"
    _events_table(fe)
    _define(fe, redis_url, key)
    _produce(redis_url, key, [_event(1), _event(2), {**_event(3), "amount": "lots"}, _event(4)])
    with pytest.raises(StreamError, match=r"event .* has amount='lots', which is not a double"):
        fe.run_stream("clicks", batch_size=10, idle_timeout=0.5)
    assert fe.read_table(name="events").empty and fe._tables.snapshot("events").version == 0
    # a null key is write_table's validation: named, nothing written
    key2 = f"nullkey-{uuid.uuid4().hex}"
    _define(fe, redis_url, key2, name="nulls")
    _produce(redis_url, key2, [_event(1), {k: v for k, v in _event(2).items() if k != "event_id"}])
    with pytest.raises(Exception, match="event_id"):
        fe.run_stream("nulls", batch_size=10, idle_timeout=0.5)
    assert fe._tables.snapshot("events").version == 0


def _check_exact(fe: Any, table: str, n: int) -> None:
    """Every event 0..n-1 exactly once in Delta (and committed once: no merge ever updated a row) and
    online with its own values."""
    got = fe.read_table(name=table)
    assert len(got) == n and got["event_id"].nunique() == n
    assert sorted(got["event_id"]) == list(range(n)) and (got["amount"] == got["event_id"].astype(float)).all()
    metrics = [h.get("operationMetrics") or {} for h in fe._tables.snapshot(table).table.history()
               if h.get("operation") == "MERGE"]
    assert sum(int(m.get("num_target_rows_inserted", 0)) for m in metrics) == n
    assert sum(int(m.get("num_target_rows_updated", 0)) for m in metrics) == 0
    online = _online(fe, f"main.default.{table}", list(range(n)), ["amount"])
    assert online["found"].all() and np.array_equal(online["amount"].to_numpy(), np.arange(n, dtype=float))


#: Where a consumer is killed: each is between two writes that must not be seen apart.
STREAM_FAILPOINTS = ["write_table:after_commit", "stream:after_delta_commit", "stream:after_online"]


def kill_and_resume(fe: Any, crasher: Any, root: Path, point: str, n: int, idle: float) -> None:
    """Stream 'clicks' (n events waiting) killed at ``point``, then run to the end: exactly once."""
    op = {"op": "stream", "root": str(root), "name": "clicks", "batch_size": 20, "idle": idle}
    assert crasher(**op, failpoint=point) == {"signal": 9}
    assert crasher(**op) == {"exit": 0}
    _check_exact(fe, "events", n)


@pytest.mark.parametrize("point", STREAM_FAILPOINTS)
def test_killed_at_each_point_resumes_exactly_once(fe: Any, redis_url: str, crasher: Any, larder_root: Path,
                                                   point: str) -> None:
    key = f"fp-{uuid.uuid4().hex}"
    _events_table(fe)
    fe.publish_table(name="events")
    _define(fe, redis_url, key)
    _produce(redis_url, key, [_event(i) for i in range(50)])
    kill_and_resume(fe, crasher, larder_root, point, 50, idle=0.5)


def test_sigkill_10_times_during_100k_events(fe: Any, redis_url: str, crasher: Any, larder_root: Path) -> None:
    """The consumer is SIGKILLed at 10 random moments of a 100k-event run, then runs to the end: every
    event is in Delta exactly once (and was committed once) and online with its value."""
    n = 100_000
    key = f"kill-{uuid.uuid4().hex}"
    _events_table(fe)
    fe.publish_table(name="events")
    _define(fe, redis_url, key)
    _produce_range(redis_url, key, n)
    op = {"op": "stream", "root": str(larder_root), "name": "clicks", "batch_size": 1000, "idle": 1.0}
    rng = random.Random(17)
    interrupted = 0  # kills that landed before the last event was committed (a fast machine may finish early)
    for _ in range(10):
        outcome = crasher(**op, kill_after=rng.uniform(0.1, 0.6))
        assert outcome == {"signal": 9}, f"the consumer was to be killed, it ended with {outcome}"
        if fe.stream_progress("clicks")["events"] >= n:
            break
        interrupted += 1
    assert interrupted >= 5, f"only {interrupted} kills interrupted the run: make the run longer"
    assert crasher(**op) == {"exit": 0}
    assert fe.stream_progress("clicks")["events"] == n
    _check_exact(fe, "events", n)


def test_cli_run_list_show(fe: Any, redis_url: str, larder_root: Path) -> None:
    from typer.testing import CliRunner

    from larder.cli.main import app

    key = f"cli-{uuid.uuid4().hex}"
    _events_table(fe)
    _define(fe, redis_url, key)
    _produce(redis_url, key, [_event(i) for i in range(7)])
    runner = CliRunner()
    out = runner.invoke(app, ["stream", "run", "clicks", "--batch-size", "3", "--until-idle", "0.5",
                              "--root", str(larder_root)])
    assert out.exit_code == 0, out.output
    assert "7 events written (7 rows) in 3 batches" in out.output
    out = runner.invoke(app, ["stream", "list", "--root", str(larder_root)])
    assert out.exit_code == 0 and "main.default.clicks" in out.output and "main.default.events" in out.output
    out = runner.invoke(app, ["stream", "show", "clicks", "--root", str(larder_root)])
    assert out.exit_code == 0 and json.loads(out.output)["progress"]["events"] == 7
    out = runner.invoke(app, ["stream", "run", "nope", "--until-idle", "0.1", "--root", str(larder_root)])
    assert out.exit_code == 1 and "does not exist" in out.output
