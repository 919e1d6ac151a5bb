"""Reading events from a stream platform: Redis Streams (``redis`` extra) and Kafka (``kafka`` extra).

A reader returns :class:`Event` objects after given *offsets*: ``{source: offset}`` with one source per
Redis stream key (offset: the last consumed entry id, ``"<ms>-<seq>"``) or per Kafka partition
(``"<topic>/<partition>"``, offset: the last consumed message offset). :func:`position` orders the
offsets of one source. Readers never commit anything to the platform: the consumer's offsets live
in the Delta log (see :mod:`larder.streams.consumer`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from larder.config import expand_env
from larder.errors import StreamError, require


@dataclass(frozen=True)
class Event:
    """One event: where it came from, its offset there, its key and payload (JSON objects)."""

    source: str
    offset: str
    key: dict[str, Any] | None
    value: dict[str, Any]


def position(offset: str) -> tuple[int, int]:
    """Sort key of an offset: Redis ids ``"<ms>-<seq>"`` and Kafka offsets ``"<n>"``.

    >>> position("1700000000000-3") < position("1700000000001-0"), position("41")
    (True, (41, 0))
    """
    ms, _, seq = offset.partition("-")
    return int(ms), int(seq or 0)


def newer(event: Event, offsets: dict[str, str]) -> bool:
    """Whether ``event`` lies after ``offsets`` (not yet consumed up to them)."""
    done = offsets.get(event.source)
    return done is None or position(event.offset) > position(done)


class Reader(Protocol):
    def read(self, after: dict[str, str], count: int, block_ms: int) -> list[Event]:
        """Up to ``count`` events after ``after``, in order per source; waits up to ``block_ms`` for one."""

    def close(self) -> None: ...


def _json_object(raw: Any, *, stream: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise StreamError(f"Stream {stream!r}: the event at {where} is not JSON ({exc}); events carry a JSON "
                          "object (Redis: in the entry's 'value' field, or as the entry's fields).") from exc
    if not isinstance(value, dict):
        raise StreamError(f"Stream {stream!r}: the event at {where} is JSON {type(value).__name__}, not an object.")
    return value


class RedisReader:
    """``XREAD`` over the stream's keys. An entry's payload is the JSON object in its ``value`` field
    (and its key the one in ``key``), else the entry's fields themselves (strings, converted by the
    stream's schema)."""

    def __init__(self, stream: str, url: str, keys: list[str]) -> None:
        redis = require("redis", extra="redis", feature="A Redis Streams source")
        self.stream = stream
        self.keys = list(keys)
        try:
            self.client = redis.Redis.from_url(expand_env(url, setting=f"stream {stream} url"))
            self.client.ping()
        except redis.RedisError as exc:
            raise StreamError(f"Stream {stream!r}: cannot reach Redis at its connection url: {exc}. Check "
                              "StreamConnectionConfig(url=...) and that the server is running.") from exc
        self._error = redis.RedisError

    def read(self, after: dict[str, str], count: int, block_ms: int) -> list[Event]:
        try:
            reply = self.client.xread({k: after.get(k, "0-0") for k in self.keys}, count=count,
                                      block=block_ms if block_ms > 0 else None)
        except self._error as exc:
            raise StreamError(f"Stream {self.stream!r}: reading from Redis failed: {exc}") from exc
        out: list[Event] = []
        for key, entries in reply or []:
            source = key.decode() if isinstance(key, bytes) else str(key)
            for entry_id, fields in entries:
                offset = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                where = f"{source} {offset}"
                fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
                if "value" in fields:
                    value = _json_object(fields["value"], stream=self.stream, where=where)
                    key_obj = _json_object(fields["key"], stream=self.stream, where=where) if "key" in fields else None
                else:
                    value = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in fields.items()}
                    key_obj = None
                out.append(Event(source, offset, key_obj, value))
        return out

    def close(self) -> None:
        self.client.close()


class KafkaReader:
    """A topic's partitions, assigned explicitly (no consumer-group offsets are committed), each from
    the offset after the consumer's own. Message values (and keys, when present) are JSON objects.
    Tested against a real Kafka-compatible broker (Tansu; ``tests/streams/test_kafka_streams.py``)."""

    def __init__(self, stream: str, url: str, topic: str, options: dict[str, str] | None) -> None:
        kafka = require("confluent_kafka", extra="kafka", feature="A Kafka stream source")
        self.stream, self.topic, self._kafka = stream, topic, kafka
        conf = {"bootstrap.servers": expand_env(url, setting=f"stream {stream} url"),
                "group.id": f"larder-{stream}", "enable.auto.commit": False, "enable.partition.eof": False,
                **(options or {})}
        try:
            self.consumer = kafka.Consumer(conf)
            meta = self.consumer.list_topics(topic, timeout=10)
        except kafka.KafkaException as exc:
            raise StreamError(f"Stream {stream!r}: cannot reach Kafka at {url!r}: {exc}") from exc
        info = meta.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise StreamError(f"Stream {stream!r}: Kafka topic {topic!r} does not exist ({getattr(info, 'error', '')}).")
        self.partitions = sorted(info.partitions)
        self._assigned = False

    def _assign(self, after: dict[str, str]) -> None:
        tps = []
        for p in self.partitions:
            done = after.get(f"{self.topic}/{p}")
            start = int(done) + 1 if done is not None else self._kafka.OFFSET_BEGINNING
            tps.append(self._kafka.TopicPartition(self.topic, p, start))
        self.consumer.assign(tps)
        self._assigned = True

    def read(self, after: dict[str, str], count: int, block_ms: int) -> list[Event]:
        """The first read positions every partition after ``after``; later reads continue from there
        (the consumer's offsets advance with exactly the events returned)."""
        if not self._assigned:
            self._assign(after)
        try:
            messages = self.consumer.consume(num_messages=count, timeout=max(block_ms, 0) / 1000)
        except self._kafka.KafkaException as exc:
            raise StreamError(f"Stream {self.stream!r}: reading from Kafka failed: {exc}") from exc
        out = []
        for m in messages:
            if m.error() is not None:
                raise StreamError(f"Stream {self.stream!r}: Kafka reported {m.error()}")
            source = f"{m.topic()}/{m.partition()}"
            where = f"{source} offset {m.offset()}"
            key = _json_object(m.key(), stream=self.stream, where=where) if m.key() else None
            out.append(Event(source, str(m.offset()), key, _json_object(m.value(), stream=self.stream, where=where)))
        return out

    def close(self) -> None:
        self.consumer.close()


def open_reader(stream: Any) -> Reader:
    """The reader of a :class:`~larder.streams.config.Stream`."""
    url = stream.connection_config.url
    src = stream.source_config
    if src.redis_stream_config is not None:
        return RedisReader(stream.name, url, src.redis_stream_config.stream_keys)
    kafka = src.kafka_stream_config
    return KafkaReader(stream.name, url, kafka.subscription_mode.subscribe, kafka.extra_options)


__all__ = ["Event", "KafkaReader", "Reader", "RedisReader", "newer", "open_reader", "position"]
