"""Stream ingestion: larder's consumer beside a raw Redis Streams -> Delta loop doing the same Delta work.

N events (JSON objects: event_id, user, amount, kind, ts) are put in a Redis stream (inside redis-server,
by a Lua script) on a redis-server started on a free 127.0.0.1 port (stopped at the end). Then, on a
fresh feature table each time:

* larder: ``fe.run_stream(name, batch_size=B)``: typed rows, ``write_table`` validation, a Delta merge on
  the primary key per batch with the offsets in the commit, catalog progress notes;
* larder+online: the same with the table published to the embedded SQLite online store (every batch
  also written online, newest wins);
* raw: ``XREAD`` (redis-py with hiredis) of B events, ``json.loads`` each, ``pa.Table.from_pylist`` with
  the schema, ``DeltaTable.merge(...)`` on the key with the offsets in ``CommitProperties``: the least
  code that still commits offsets with the rows. No validation, no catalog, no online write.

Runs alternate (order rotated per repeat). Reported: per-run seconds, medians, events/s, ratios of the
medians to raw. Prints JSON, then a table.

    python benchmarks/streams.py --events 100000 --batch 5000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import redis
from deltalake import CommitProperties, DeltaTable, write_deltalake

os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from _services import start_redis  # noqa: E402
from larder.client import FeatureEngineeringClient  # noqa: E402
from larder.entities import (  # noqa: E402
    DirectSchemas,
    IngestionConfig,
    IngestionDestination,
    RedisStreamConfig,
    SchemaConfig,
    StreamConnectionConfig,
)

SCHEMA = pa.schema([("event_id", pa.int64()), ("user", pa.int64()), ("amount", pa.float64()),
                    ("kind", pa.string()), ("ts", pa.timestamp("us", tz="UTC"))])
PAYLOAD = json.dumps({"type": "object", "properties": {
    "event_id": {"type": "integer"}, "user": {"type": "integer"}, "amount": {"type": "number"},
    "kind": {"type": "string"}, "ts": {"type": "string", "format": "date-time"}}})
PRODUCE = """
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) - 1 do
  local v = string.format('{"event_id": %d, "user": %d, "amount": %d.0, "kind": "click", '
    .. '"ts": "2026-01-01T00:00:%02dZ"}', i, i % 97, i, i % 60)
  redis.call('XADD', KEYS[1], '*', 'value', v)
end
return 0
"""


def produce(url: str, key: str, n: int) -> None:
    client = redis.Redis.from_url(url)
    script = client.register_script(PRODUCE)
    for start in range(0, n, 10_000):
        script(keys=[key], args=[start, min(start + 10_000, n)])
    client.close()


def run_larder(url: str, key: str, n: int, batch: int, online: bool) -> float:
    fe = FeatureEngineeringClient(tempfile.mkdtemp(prefix="larder-bench-streams-"))
    fe.create_table(name="events", primary_keys="event_id", schema=SCHEMA)
    if online:
        fe.publish_table(name="events")
    fe.create_stream(name="clicks", source_config=RedisStreamConfig(stream_keys=[key]),
                     connection_config=StreamConnectionConfig(url=url),
                     schema_config=DirectSchemas(payload_schema=SchemaConfig(json_schema=PAYLOAD)),
                     ingestion_config=IngestionConfig(ingestion_destination=IngestionDestination(
                         delta_table_name="events")))
    started = time.perf_counter()
    stats = fe.run_stream("clicks", batch_size=batch, max_events=n)
    seconds = time.perf_counter() - started
    assert stats.events_written == n and len(fe.read_table(name="events")) == n
    fe.close()
    return seconds


def run_raw(url: str, key: str, n: int, batch: int) -> float:
    path = tempfile.mkdtemp(prefix="raw-bench-streams-")
    write_deltalake(path, SCHEMA.empty_table())
    table = DeltaTable(path)
    client = redis.Redis.from_url(url)
    started = time.perf_counter()
    after, done = "0-0", 0
    while done < n:
        [(_, entries)] = client.xread({key: after}, count=batch)
        df = pd.DataFrame([json.loads(fields[b"value"]) for _, fields in entries])
        df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
        data = pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False)
        after = entries[-1][0].decode()
        (table.merge(data, predicate="t.event_id = s.event_id", source_alias="s", target_alias="t",
                     commit_properties=CommitProperties(custom_metadata={"offsets": json.dumps({key: after})}))
         .when_matched_update_all().when_not_matched_insert_all().execute())
        done += len(entries)
    seconds = time.perf_counter() - started
    assert DeltaTable(path).to_pyarrow_table().num_rows == n
    client.close()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    server = start_redis()
    url = f"redis://127.0.0.1:{server.port}/0"
    try:
        produce(url, "bench", args.events)
        runs: dict[str, list[float]] = {"larder": [], "larder+online": [], "raw": []}
        contenders: list[tuple[str, Any]] = [
            ("larder", lambda: run_larder(url, "bench", args.events, args.batch, online=False)),
            ("larder+online", lambda: run_larder(url, "bench", args.events, args.batch, online=True)),
            ("raw", lambda: run_raw(url, "bench", args.events, args.batch)),
        ]
        for r in range(args.repeats):
            order = contenders[r % 3:] + contenders[:r % 3]
            for name, fn in order:
                runs[name].append(fn())
    finally:
        server.stop()
    med = {k: statistics.median(v) for k, v in runs.items()}
    out = {"benchmark": "streams", "events": args.events, "batch": args.batch, "repeats": args.repeats,
           "machine": f"{platform.machine()} {os.cpu_count()} cores", "runs_s": runs, "median_s": med,
           "events_per_s": {k: args.events / v for k, v in med.items()},
           "ratio_to_raw": {k: v / med["raw"] for k, v in med.items()}}
    print(json.dumps(out))
    print(f"\n{'contender':<15}{'median s':>10}{'events/s':>12}{'x raw':>8}")
    for k in runs:
        print(f"{k:<15}{med[k]:>10.2f}{args.events / med[k]:>12,.0f}{med[k] / med['raw']:>8.2f}")


if __name__ == "__main__":
    main()
