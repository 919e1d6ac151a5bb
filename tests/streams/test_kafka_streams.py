"""Streams from Kafka: the consumer over a real Kafka-compatible broker (Tansu, started by the
``kafka_bootstrap`` fixture), several partitions, exactly once in Delta and online across reruns and
kills at each fail point; a missing topic and a bad message are clear errors that write nothing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from larder.entities import (
    DirectSchemas,
    IngestionConfig,
    IngestionDestination,
    KafkaStreamConfig,
    KafkaSubscriptionMode,
    SchemaConfig,
    StreamConnectionConfig,
)
from larder.errors import StreamError
from streams.test_streams import (
    PAYLOAD,
    STREAM_FAILPOINTS,
    _check_exact,
    _event,
    _events_table,
    kill_and_resume,
)

PARTITIONS = 3


def _topic(bootstrap: str, partitions: int = PARTITIONS) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"clicks-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic is created
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
    return name


def _produce(bootstrap: str, topic: str, events: list[dict[str, Any]], raw: list[bytes] | None = None) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for e in events:
        producer.produce(topic, value=json.dumps(e).encode(), partition=e["event_id"] % PARTITIONS)
    for value in raw or []:
        producer.produce(topic, value=value, partition=0)
    assert producer.flush(30) == 0


def _define(fe: Any, bootstrap: str, topic: str, *, name: str = "main.default.clicks", table: str = "events") -> Any:
    return fe.create_stream(
        name=name, source_config=KafkaStreamConfig(subscription_mode=KafkaSubscriptionMode(subscribe=topic)),
        connection_config=StreamConnectionConfig(url=bootstrap),
        schema_config=DirectSchemas(payload_schema=SchemaConfig(json_schema=PAYLOAD)),
        ingestion_config=IngestionConfig(ingestion_destination=IngestionDestination(delta_table_name=table)))


def test_kafka_events_land_exactly_once_across_partitions_and_reruns(fe: Any, kafka_bootstrap: str) -> None:
    topic = _topic(kafka_bootstrap)
    _events_table(fe)
    fe.publish_table(name="events")
    st = _define(fe, kafka_bootstrap, topic)
    assert st.platform == "kafka"
    _produce(kafka_bootstrap, topic, [_event(i) for i in range(120)])
    stats = fe.run_stream("clicks", batch_size=25, idle_timeout=1.0)
    assert stats.events_written == 120
    _check_exact(fe, "events", 120)
    progress = fe.stream_progress("clicks")
    assert progress["events"] == 120
    # one offset per partition: the last of each (40 events each, offsets 0..39)
    assert progress["offsets"] == {f"{topic}/{p}": "39" for p in range(PARTITIONS)}
    # a rerun reads nothing again; new events are read from the offsets on
    assert fe.run_stream("clicks", idle_timeout=0.5).events_written == 0
    _produce(kafka_bootstrap, topic, [_event(i) for i in range(120, 150)])
    assert fe.run_stream("clicks", batch_size=7, idle_timeout=1.0).events_written == 30
    _check_exact(fe, "events", 150)


@pytest.mark.parametrize("point", STREAM_FAILPOINTS)
def test_a_kafka_consumer_killed_at_each_point_resumes_exactly_once(fe: Any, kafka_bootstrap: str, crasher: Any,
                                                                    larder_root: Path, point: str) -> None:
    topic = _topic(kafka_bootstrap)
    _events_table(fe)
    fe.publish_table(name="events")
    _define(fe, kafka_bootstrap, topic)
    _produce(kafka_bootstrap, topic, [_event(i) for i in range(60)])
    kill_and_resume(fe, crasher, larder_root, point, 60, idle=1.0)


def test_missing_topic_and_bad_message_are_clear_errors(fe: Any, kafka_bootstrap: str) -> None:
    _events_table(fe)
    _define(fe, kafka_bootstrap, f"nope-{uuid.uuid4().hex[:8]}")
    with pytest.raises(StreamError, match="Kafka topic 'nope-.*' does not exist"):
        fe.run_stream("clicks", idle_timeout=0.5)
    topic = _topic(kafka_bootstrap, partitions=1)
    _define(fe, kafka_bootstrap, topic, name="main.default.bad")
    _produce(kafka_bootstrap, topic, [], raw=[json.dumps(_event(0)).encode(), b"not json"])
    with pytest.raises(StreamError, match=rf"{topic}/0 offset 1"):
        fe.run_stream("bad", batch_size=10, idle_timeout=1.0)
    assert fe.read_table(name="events").empty and fe._tables.snapshot("events").version == 0
