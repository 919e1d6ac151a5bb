"""SQLite and Redis specifics: atomic replace under a concurrent reader, stale caches across
instances, the Redis layout seen by a plain client, TTL, errors."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import redis as redis_py

from larder.errors import OnlineStoreError
from larder.online import (
    ORDER_COLUMN,
    OnlineStore,
    OnlineTable,
    RedisOnlineStore,
    RedisStoreSpec,
    SQLiteOnlineStore,
    SQLiteStoreSpec,
    open_store,
)

SCHEMA = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("tag", pa.string())])


def new_table(schema: pa.Schema = SCHEMA) -> OnlineTable:
    return OnlineTable(f"main.sr.t{uuid.uuid4().hex[:8]}", ["id"], None, schema)


def batch(ids: list[int], tag: str, order: int = 1) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "x": [float(i) for i in ids],
            "tag": [tag] * len(ids),
            ORDER_COLUMN: pa.array([order] * len(ids), pa.int64()),
        }
    )


@pytest.fixture(params=["sqlite", "redis"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[OnlineStore, OnlineStore]]:
    """Two store instances over the same data (two processes' views)."""
    if request.param == "sqlite":
        a, b = SQLiteOnlineStore(tmp_path / "o.db"), SQLiteOnlineStore(tmp_path / "o.db")
    else:
        url = request.getfixturevalue("redis_url")
        prefix = f"pair{uuid.uuid4().hex[:8]}"
        a, b = RedisOnlineStore(url, key_prefix=prefix), RedisOnlineStore(url, key_prefix=prefix)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_replace_is_atomic_for_a_concurrent_reader(pair: tuple[OnlineStore, OnlineStore]) -> None:
    store, _ = pair
    t = new_table()
    ids = list(range(200))
    store.write_batch(t, batch(ids, "old"))
    seen: list[set[str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                out, found = store.read_batch(t, pa.table({"id": ids}))
                assert found.all()
                seen.append(set(out.column("tag").to_pylist()))
        except BaseException as exc:  # reported below
            errors.append(exc)

    def slow_batches() -> Iterator[pa.Table]:
        for start in range(0, 200, 50):
            time.sleep(0.05)
            yield batch(ids[start : start + 50], "new")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        time.sleep(0.05)
        assert store.replace_table(t, slow_batches()) == 200
        time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    assert len(seen) >= 3
    assert all(s in ({"old"}, {"new"}) for s in seen), [s for s in seen if len(s) > 1][:3]
    assert seen[0] == {"old"} and seen[-1] == {"new"}


def test_instances_with_stale_caches_follow_replace_and_schema_changes(
    pair: tuple[OnlineStore, OnlineStore],
) -> None:
    a, b = pair
    t = new_table()
    a.write_batch(t, batch([1, 2], "first"))
    assert b.read_batch(t, pa.table({"id": [1]}))[0].column("tag").to_pylist() == ["first"]
    a.replace_table(t, [batch([2, 3], "second")])
    out, found = b.read_batch(t, pa.table({"id": [1, 2, 3]}))
    assert found.tolist() == [False, True, True]
    assert out.column("tag").to_pylist() == [None, "second", "second"]
    # b still holds the old generation/layout in its cache: its write must land in the current one
    b.write_batch(t, batch([4], "from-b", order=2))
    assert a.read_batch(t, pa.table({"id": [4]}))[0].column("tag").to_pylist() == ["from-b"]
    wider = OnlineTable(t.name, ["id"], None, pa.schema([*SCHEMA, pa.field("y", pa.int8())]))
    rows = batch([5], "wide", order=3).append_column("y", pa.array([7], pa.int8()))
    a.write_batch(wider, rows.select(["id", "x", "tag", "y", ORDER_COLUMN]))
    out, _ = b.read_batch(t, pa.table({"id": [2, 5]}))
    assert out.to_pylist() == [{"x": 2.0, "tag": "second"}, {"x": 5.0, "tag": "wide"}]
    out, _ = b.read_batch(wider, pa.table({"id": [2, 5]}), features=["y"])
    assert out.column("y").to_pylist() == [None, 7]


def test_sqlite_file_layout_and_open_store(tmp_path: Path) -> None:
    root = tmp_path / "root"
    t = new_table()
    with open_store(SQLiteStoreSpec(), root) as store:
        assert isinstance(store, SQLiteOnlineStore) and store.path == root / "online.db"
        store.write_batch(t, batch([1, 2], "a"))
    conn = sqlite3.connect(root / "online.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        (physical,) = conn.execute("SELECT physical FROM _larder_online WHERE name = ?", (t.name,)).fetchone()
        assert physical.startswith(t.name + "@")
        keys = conn.execute(f'SELECT _k, _order FROM "{physical}" ORDER BY _k').fetchall()
        assert keys == [("1", 1), ("2", 1)]
    finally:
        conn.close()
    nested = tmp_path / "a" / "b" / "online.db"
    with open_store(SQLiteStoreSpec(path=str(nested)), root) as store:
        store.write_batch(t, batch([1], "a"))
    assert nested.exists()
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OnlineStoreError, match="bad.db"):
        SQLiteOnlineStore(bad)


def test_sqlite_page_size(tmp_path: Path) -> None:
    """A new file gets 16 KB pages (or the size asked for); an existing file keeps its own, and asking
    it for another one fails without touching it; a wide record stays on its leaf page."""
    from larder.errors import ConfigError
    from larder.online.stores.sqlite import DEFAULT_PAGE_SIZE

    assert DEFAULT_PAGE_SIZE == 16384
    t = new_table()
    with SQLiteOnlineStore(tmp_path / "d.db") as store:
        assert store.page_size == DEFAULT_PAGE_SIZE
        store.write_batch(t, batch([1, 2], "a"))
    raw = sqlite3.connect(tmp_path / "d.db")
    try:
        assert raw.execute("PRAGMA page_size").fetchone()[0] == DEFAULT_PAGE_SIZE
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()
    with open_store(SQLiteStoreSpec(path="s.db", page_size=4096), tmp_path) as store:
        assert store.page_size == 4096
        store.write_batch(t, batch([1], "a"))
    before = (tmp_path / "s.db").read_bytes()
    with pytest.raises(OnlineStoreError, match=r"4096-byte pages, not the 65536.*page_size=4096"):
        SQLiteOnlineStore(tmp_path / "s.db", page_size=65536)
    assert (tmp_path / "s.db").read_bytes() == before
    with SQLiteOnlineStore(tmp_path / "s.db") as store:  # no size asked: the file's own
        assert store.page_size == 4096
        assert store.read_batch(t, pa.table({"id": [1]}))[0].column("tag").to_pylist() == ["a"]
    with SQLiteOnlineStore(tmp_path / "s.db", page_size=4096) as store:
        assert store.page_size == 4096
    for bad in (1000, 256, 131072):
        with pytest.raises(OnlineStoreError, match="power of two"):
            SQLiteOnlineStore(tmp_path / f"bad{bad}.db", page_size=bad)
        with pytest.raises(ConfigError, match="power of two"):  # a LarderError, not pydantic's
            SQLiteStoreSpec(page_size=bad)
        assert not (tmp_path / f"bad{bad}.db").exists()
    # 400 float features (a 3.6 KB record) fit a 16 KB page's leaf: no overflow page per record
    wide = OnlineTable("main.sr.wide", ["id"], None,
                       pa.schema([("id", pa.int64())] + [(f"f{i}", pa.float64()) for i in range(400)]))
    rows = {"id": pa.array(range(200), pa.int64()), **{f"f{i}": [float(i)] * 200 for i in range(400)},
            ORDER_COLUMN: pa.array([1] * 200, pa.int64())}
    with SQLiteOnlineStore(tmp_path / "d.db") as store:
        store.write_batch(wide, pa.table(rows))
        pages = store._conn().execute("PRAGMA page_count").fetchone()[0]
        got, found = store.read_batch(wide, pa.table({"id": [0, 199]}))
        assert found.all() and got.column("f399").to_pylist() == [399.0, 399.0]
    # 200 records of 3.6 KB need at least 45 pages of 16 KB; one overflow page each would add 200
    assert pages < 120


def test_sqlite_threads_share_a_store(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    t = new_table()
    with SQLiteOnlineStore(tmp_path / "o.db") as store:
        store.write_batch(t, batch(list(range(100)), "v"))

        def work(i: int) -> bool:
            store.write_batch(t, batch([1000 + i], f"w{i}"))
            out, found = store.read_batch(t, pa.table({"id": [i, 1000 + i]}))
            return found.all() and out.column("tag").to_pylist() == ["v", f"w{i}"]

        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(work, range(20)))


def test_redis_layout_seen_by_a_plain_client(redis_url: str) -> None:
    prefix = f"lay{uuid.uuid4().hex[:6]}"
    schema = pa.schema(
        [("k", pa.string()), ("n", pa.int32()), ("x", pa.float64()), ("b", pa.binary()), ("ok", pa.bool_())]
    )
    t = OnlineTable("main.sr.layout", ["k", "n"], None, schema)
    rows = pa.table(
        {
            "k": ["a#b", "c"],
            "n": pa.array([1, 2], pa.int32()),
            "x": [0.1, None],
            "b": [b"\x00\xff", b""],
            "ok": [True, None],
            ORDER_COLUMN: [5, 6],
        }
    )
    with RedisOnlineStore(redis_url, key_prefix=prefix, ttl=60) as store:
        store.write_batch(t, rows)
    client = redis_py.Redis.from_url(redis_url)
    try:
        assert client.get(f"{prefix}:main.sr.layout#gen") == b"1"
        assert client.hgetall(f"{prefix}:main.sr.layout:1:a\\#b#1") == {
            b"_order": b"5",
            b"x": b"0.1",
            b"b": b"\x00\xff",
            b"ok": b"true",
        }
        assert client.hgetall(f"{prefix}:main.sr.layout:1:c#2") == {b"_order": b"6", b"b": b""}
        assert 0 < client.pttl(f"{prefix}:main.sr.layout:1:c#2") <= 60_000
        assert client.pttl(f"{prefix}:main.sr.layout#gen") == -1
    finally:
        client.close()


def test_redis_errors(redis_url: str) -> None:
    with RedisOnlineStore("redis://:s3cret@127.0.0.1:9/0") as store:
        with pytest.raises(OnlineStoreError, match="127.0.0.1:9") as info:
            store.read_batch(new_table(), pa.table({"id": [1]}))
        assert "s3cret" not in str(info.value)
        assert isinstance(info.value.__cause__, redis_py.exceptions.RedisError)
    with pytest.raises(OnlineStoreError, match="ttl"):
        RedisOnlineStore(redis_url, ttl=-1)
    with open_store(RedisStoreSpec(url=redis_url, key_prefix="spec"), Path(".")) as store:
        assert isinstance(store, RedisOnlineStore) and store.key_prefix == "spec"


def test_redis_reloads_its_script_after_a_flush(redis_url: str) -> None:
    t = new_table()
    with RedisOnlineStore(redis_url, key_prefix=f"fl{uuid.uuid4().hex[:6]}") as store:
        store.write_batch(t, batch([1], "a"))
        client = redis_py.Redis.from_url(redis_url)
        try:
            client.script_flush()
        finally:
            client.close()
        assert store.write_batch(t, batch([1, 2], "b", order=2)) == 2
        assert store.read_batch(t, pa.table({"id": [1, 2]}))[0].column("tag").to_pylist() == ["b", "b"]


def test_concurrent_writers_never_regress_a_key(pair: tuple[OnlineStore, OnlineStore]) -> None:
    """Four threads on two store instances write the same keys with shuffled, distinct orders."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    t = new_table()
    keys = 20
    orders = list(range(1, 401))
    random.Random(5).shuffle(orders)
    writes = [(i % keys, o) for i, o in enumerate(orders)]
    chunks = [writes[i : i + 10] for i in range(0, len(writes), 10)]
    stores = list(pair)

    def write(job: tuple[int, list[tuple[int, int]]]) -> None:
        n, chunk = job
        rows = pa.table(
            {
                "id": pa.array([k for k, _ in chunk], pa.int64()),
                "x": [float(o) for _, o in chunk],
                "tag": [str(o) for _, o in chunk],
                ORDER_COLUMN: pa.array([o for _, o in chunk], pa.int64()),
            }
        )
        stores[n % 2].write_batch(t, rows)

    stores[0].write_batch(t, batch([], "none"))  # create the table before the race
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, enumerate(chunks)))
    best = {k: max(o for kk, o in writes if kk == k) for k in range(keys)}
    out, found = stores[1].read_batch(t, pa.table({"id": list(range(keys))}))
    assert found.all()
    assert out.column("tag").to_pylist() == [str(best[k]) for k in range(keys)]


def _one(store: OnlineStore, t: OnlineTable, key: int, features: list[str] | None = None) -> tuple[bool, list]:
    got = store.read_values(t, [str(key)], features)
    return bool(got.found[0]), got.to_arrow(t).to_pylist()


def test_one_key_reads_follow_another_instances_replace_drop_and_schema_change(
    pair: tuple[OnlineStore, OnlineStore],
) -> None:
    """The one-key fast paths (a prepared SELECT on SQLite, pre-encoded commands on a kept connection
    on Redis) never serve a replaced generation or a dropped table that another instance changed."""
    a, b = pair
    t = new_table()
    a.write_batch(t, batch([1, 2], "first"))
    features = ["tag", "x"]
    for _ in range(2):  # prepared, then served from what was prepared
        assert _one(b, t, 1, features) == (True, [{"tag": "first", "x": 1.0}])
        assert _one(b, t, 1) == (True, [{"x": 1.0, "tag": "first"}])
    a.replace_table(t, [batch([2, 3], "second")])
    assert _one(b, t, 1, features) == (False, [{"tag": None, "x": None}])
    assert _one(b, t, 3, features) == (True, [{"tag": "second", "x": 3.0}])
    wider = OnlineTable(t.name, ["id"], None, pa.schema([*SCHEMA, pa.field("y", pa.int8())]))
    rows = batch([3], "wide", order=3).append_column("y", pa.array([7], pa.int8()))
    a.write_batch(wider, rows.select(["id", "x", "tag", "y", ORDER_COLUMN]))
    assert _one(b, t, 3, features) == (True, [{"tag": "wide", "x": 3.0}])
    assert _one(b, wider, 3, ["y", "x"]) == (True, [{"y": 7, "x": 3.0}])
    a.drop_table(t)
    with pytest.raises(OnlineStoreError, match="publish it first"):
        b.read_values(t, ["3"], features)


def test_redis_one_key_read_survives_a_killed_connection_and_threads_return_theirs(redis_url: str) -> None:
    store = RedisOnlineStore(redis_url, key_prefix=f"kill{uuid.uuid4().hex[:8]}")
    admin = redis_py.Redis.from_url(redis_url)
    try:
        t = new_table()
        store.write_batch(t, batch([1], "a"))
        assert _one(store, t, 1) == (True, [{"x": 1.0, "tag": "a"}])
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")  # every connection but admin's
        assert _one(store, t, 1) == (True, [{"x": 1.0, "tag": "a"}])  # the general read answers, reconnecting
        assert _one(store, t, 1) == (True, [{"x": 1.0, "tag": "a"}])  # and a new kept connection
        pool = store._client.connection_pool
        in_use = len(pool._in_use_connections)
        results: list[tuple[bool, list]] = []
        threads = [threading.Thread(target=lambda: results.append(_one(store, t, 1))) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert results == [(True, [{"x": 1.0, "tag": "a"}])] * 4
        assert len(pool._in_use_connections) == in_use  # each ended thread handed its connection back
    finally:
        store.close()
        admin.close()
    with pytest.raises(OnlineStoreError, match="closed"):
        store.read_values(t, ["1"])
