"""Redis online store: one hash per entity key.

Layout (``P`` = ``key_prefix``, ``T`` = the full feature-table name)::

    P:T#gen              string: the table's current generation (a decimal number)
    P:T#seq              counter that hands out generations
    P:T#pub              hash: generation -> publication order of its contents
    P:T#gens             set: the generations created and not yet deleted
    P:T:<gen>:<pk>       hash: _order -> the row's order, <feature> -> value

``<pk>`` is the encoded entity key (:func:`larder.online.stores.encoding.encode_keys`). Values are the
canonical text of :mod:`larder.online.stores.encoding` (binary features: their bytes); a null value is
an absent field, so ``HGETALL`` shows exactly the non-null features.

Writes run a Lua script per chunk of rows that, atomically per key, compares the stored
``_order`` (as a decimal integer, so orders beyond 2**53 compare exactly) with the incoming one
and rewrites the hash only when the incoming order is greater or equal; ``PEXPIRE`` sets the TTL.
The script first checks that the generation the client wrote to is still current, so a write
racing a ``replace_table`` is redone in the new generation. The ``EVALSHA`` commands are encoded
by Arrow in a few vectorised calls per batch and sent several per round trip.

Reads send ``GET gen``, one ``HMGET`` per distinct key, and ``GET gen`` again in one pipeline (one
round trip); both ``GET`` s returning the generation that was read proves no switch happened in
between, otherwise the read is repeated. A one-key ``read_values`` (the serving case) sends
``HMGET`` and ``GET gen`` pre-encoded on a connection the thread keeps: generations are never
reused, so the pointer still naming the generation after the ``HMGET`` proves it was current (and
its keys not yet deleted) when the ``HMGET`` ran; otherwise the general read answers. ``replace_table`` writes a new generation, switches
``P:T#gen`` in one Lua script and then deletes the old generation's keys, so a reader sees either
the old or the new contents, never a mix. The script refuses the switch when the served generation
holds a newer publication (a racing overwrite of a newer Delta version won), and it returns the
generation it replaced, so two racing overwrites never orphan one. Every publish then reclaims the
generations that can never be served again (staging generations of killed or refused overwrites:
those of an older publication, or of the same one created earlier).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from larder.errors import OnlineStoreError, OnlineTableNotFoundError, StalePublishError, require
from larder.online.stores.base import (
    ORDER_COLUMN,
    OnlineStore,
    OnlineTable,
    PreparedRows,
    ReadPlan,
    ValueBatch,
    ValueBlock,
    prepare_rows,
    read_plan,
    typed_table,
)
from larder.online.stores.encoding import check_supported, from_text, storage_type, to_text
from larder.online.stores.redis_lua import RAISE_SCRIPT, SWITCH_SCRIPT, WRITE_SCRIPT
from larder.redaction import redact_text, redact_url

ORDER_FIELD = "_order"
RESERVED = (ORDER_FIELD,)
_MAX_FIELDS = 3000
#: Types ``read_values`` parses in Python: the canonical text of a 64-bit float is its shortest
#: round-trip form (so ``float`` gives the same bits), integers are plain decimal. float32 is left to
#: Arrow (parsing through a double could round twice).
_PARSERS: dict[pa.DataType, Callable[[bytes], Any]] = {
    **{t: int for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64(),
                        pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64())},
    pa.float64(): float,
    pa.bool_(): lambda v: v == b"true",
}  # Lua's unpack() takes at most 8000 values: 2 per field
#: From this many values of one type in a many-key read, numbers are parsed by Arrow (see _values).
_ARROW_PARSE_MIN = 64

def with_credentials(url: str, *, password_env: str = "REDIS_PASSWORD") -> str:
    """``url`` with the password (and user) from the environment when it carries none: the spec a
    catalog or a model records has no credentials, the process that opens the store supplies them."""
    parts = urlsplit(url)
    password = os.environ.get(password_env) if password_env else None
    if "@" in parts.netloc or not password or "password=" in parts.query:
        return url
    user = os.environ.get("REDIS_USERNAME", "")
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _bulk_bytes(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return b"$%d\r\n%s\r\n" % (len(raw), raw)


@dataclass(frozen=True, slots=True)
class _OneKey:
    """What a one-key ``read_values`` of a (table, feature list) sends and parses, prepared once."""

    table: OnlineTable
    features: list[str] | None  # the caller's list, kept so that its id is not reused while cached
    copy: list[str] | None  # its contents when prepared: a list changed in place is prepared again
    plan: ReadPlan
    head: bytes  # the HMGET command up to its key
    tail: bytes  # its fields, then the GET of the generation pointer
    prefixes: dict[bytes, bytes]  # generation -> the keys' prefix in it
    #: per type parsed in Python: (type, names, positions in the HMGET reply, parser, numpy dtype)
    groups: tuple[tuple[pa.DataType, tuple[str, ...], slice | list[int], int, Callable[[bytes], Any], np.dtype], ...]
    simple: bool  # every feature is parsed in Python (no Arrow decode)

    @classmethod
    def create(cls, store: RedisOnlineStore, table: OnlineTable, features: list[str] | None, plan: ReadPlan) -> _OneKey:
        fields = [ORDER_FIELD, *plan.names]
        groups = []
        for t, idx in plan.groups:
            parse = _PARSERS.get(t)
            if parse is not None:
                names = tuple(plan.names[j] for j in idx)
                where: slice | list[int] = [1 + j for j in idx]
                if idx == list(range(idx[0], idx[0] + len(idx))):
                    where = slice(1 + idx[0], 1 + idx[0] + len(idx))  # one list slice
                groups.append((t, names, where, len(idx), parse, np.dtype(t.to_pandas_dtype())))
        parsed = sum(len(g[1]) for g in groups)
        return cls(
            table, features, None if features is None else list(features), plan,
            b"*%d\r\n$5\r\nHMGET\r\n" % (2 + len(fields)),
            b"".join(_bulk_bytes(f) for f in fields) + b"*2\r\n$3\r\nGET\r\n" + _bulk_bytes(store._pointer(table)),
            {}, tuple(groups), parsed == len(plan.names),
        )


class RedisOnlineStore(OnlineStore):
    """Online store in Redis (standalone server; every key of a table on one node).

    Parameters
    ----------
    url
        ``redis://[[user]:password@]host:port/db`` (``rediss://`` for TLS).
    key_prefix
        Prefix of every key larder writes.
    ttl
        Optional time to live of each entity hash, renewed when the key is written.
    rows_per_script
        Rows per Lua script call; a call blocks the server while it runs, so keep it modest.

    Examples
    --------
    >>> store = RedisOnlineStore("redis://127.0.0.1:6379/0", key_prefix="demo")  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key_prefix: str = "larder",
        ttl: timedelta | float | None = None,
        rows_per_script: int = 256,
        scripts_per_round_trip: int = 8,
        password_env: str = "REDIS_PASSWORD",
    ) -> None:
        redis = require("redis", extra="redis", feature="The Redis online store")
        self._errors = redis.exceptions.RedisError
        self._given_url, self._password_env = url, password_env
        url = with_credentials(url, password_env=password_env)
        self.url = redact_url(url)  # what messages show
        self._secrets = tuple(p for p in (urlsplit(url).password, os.environ.get(password_env or "")) if p)
        self.key_prefix = key_prefix
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
        if seconds is not None and seconds <= 0:
            raise OnlineStoreError(f"Redis online store: ttl must be positive, got {ttl!r}.")
        self.ttl_ms = int(seconds * 1000) if seconds else 0
        self.rows_per_script = rows_per_script
        self.scripts_per_round_trip = scripts_per_round_trip
        try:
            self._client = redis.Redis.from_url(url)
        except (ValueError, self._errors) as exc:
            raise OnlineStoreError(f"Invalid Redis URL {self.url!r}: {redact_text(str(exc), secrets=self._secrets)}") from exc
        self._sha: str | None = None
        self._noscript = redis.exceptions.NoScriptError
        self._response_error = redis.exceptions.ResponseError
        self._gens: dict[str, bytes] = {}
        self._one: dict[int, _OneKey] = {}  # id of table ^ id of features -> one-key plan
        self._local = threading.local()  # .kept: the thread's connection for one-key reads (_Kept)
        self._closed = False

    # -- keys -------------------------------------------------------------------------------

    def _base(self, table: OnlineTable) -> str:
        return f"{self.key_prefix}:{table.name}"

    def _pointer(self, table: OnlineTable) -> str:
        return f"{self._base(table)}#gen"

    def _publications(self, table: OnlineTable) -> str:
        """Hash: generation -> the publication order of its contents."""
        return f"{self._base(table)}#pub"

    def _generations(self, table: OnlineTable) -> str:
        """Set: every generation created and not yet deleted (what :meth:`reclaim` looks at)."""
        return f"{self._base(table)}#gens"

    def _item_prefix(self, table: OnlineTable, gen: bytes) -> str:
        return f"{self._base(table)}:{gen.decode()}:"

    def _fail(self, what: str, table: OnlineTable, exc: Exception) -> OnlineStoreError:
        detail = redact_text(str(exc), secrets=self._secrets)
        return OnlineStoreError(f"Redis online store {self.url}: {what} {table.name!r} failed: {detail}")

    def to_spec(self) -> Any:
        from larder.online.stores.specs import RedisStoreSpec

        ttl = timedelta(milliseconds=self.ttl_ms) if self.ttl_ms else None
        return RedisStoreSpec(url=self._given_url, key_prefix=self.key_prefix, ttl=ttl,
                              password_env=self._password_env)

    def _open(self) -> None:
        if self._closed:
            raise OnlineStoreError(f"The Redis online store {self.url} is closed.")

    def _check(self, table: OnlineTable) -> None:
        self._open()
        check_supported(table.name, table.schema, table.primary_keys, RESERVED)
        if len(table.features) > _MAX_FIELDS:
            raise OnlineStoreError(
                f"Online table {table.name!r} has {len(table.features)} features; the Redis store "
                f"holds at most {_MAX_FIELDS} per table. Split the table."
            )

    def _current(self, table: OnlineTable, *, create: bool) -> bytes | None:
        gen = self._client.get(self._pointer(table))
        if gen is None and create:
            new = str(self._client.incr(f"{self._base(table)}#seq")).encode()
            if self._client.set(self._pointer(table), new, nx=True):
                self._client.sadd(self._generations(table), new)
                gen = new
            else:
                gen = self._client.get(self._pointer(table))
        if gen is None:
            self._gens.pop(table.name, None)
        else:
            self._gens[table.name] = gen
        return gen

    # -- writes -----------------------------------------------------------------------------

    @staticmethod
    def _bulk(values: pa.Array) -> pa.Array:
        """Each value as a RESP bulk string (``$<len>\\r\\n<bytes>\\r\\n``), computed by Arrow."""
        values = values.cast(pa.binary())
        lengths = pc.binary_length(values).cast(pa.string()).cast(pa.binary())
        return pc.binary_join_element_wise(b"$", lengths, b"\r\n", values, b"\r\n", b"")

    def _packed_rows(
        self, table: OnlineTable, prepared: PreparedRows, gen: bytes
    ) -> tuple[list[bytes], list[bytes]]:
        """Per row: its hash key and its script arguments (order, null mask, values), RESP-encoded."""
        n = prepared.num_rows
        names = table.features
        nulls = np.zeros((n, len(names)), dtype=np.uint8)
        parts = [self._bulk(pa.array([str(o) for o in prepared.order.tolist()], pa.string()))]
        values = []
        for j, name in enumerate(names):
            col = prepared.features.column(name).combine_chunks()
            if col.null_count:
                nulls[:, j] = col.is_null().to_numpy(zero_copy_only=False)
            values.append(self._bulk(to_text(col).cast(pa.binary()).fill_null(b"")))
        if names:
            width = len(names)
            packed = (nulls + 48).tobytes()
            masks = pa.array([packed[i * width : (i + 1) * width] for i in range(n)], pa.binary())
        else:
            masks = pa.array([b""] * n, pa.binary())
        parts.append(self._bulk(masks))
        for name, value in zip(names, values, strict=True):  # field, value, field, value, ...
            raw = name.encode()
            parts.extend([b"$%d\r\n%s\r\n" % (len(raw), raw), value])
        rows = pc.binary_join_element_wise(*parts, b"")
        keys = self._bulk(
            pc.binary_join_element_wise(
                self._item_prefix(table, gen).encode(), prepared.pk.cast(pa.binary()), b""
            )
        )
        return keys.to_pylist(), rows.to_pylist()

    def _script_sha(self) -> str:
        if self._sha is None:
            self._sha = self._client.script_load(WRITE_SCRIPT)
        return self._sha

    def _write(
        self, table: OnlineTable, prepared: PreparedRows, gen: bytes, staging: bool
    ) -> tuple[int, int]:
        """Write rows into generation ``gen``; returns (written, created) or raises _GenerationMoved.

        The script calls are sent as pre-encoded RESP commands (Arrow builds each row's bulk strings
        in a few vectorised calls), several per round trip; this is what redis-py's pipeline would
        send, without its per-argument packing.
        """
        names = table.features
        keys, rows = self._packed_rows(table, prepared, gen)

        def bulk(value: str | bytes) -> bytes:
            raw = value.encode() if isinstance(value, str) else value
            return b"$%d\r\n%s\r\n" % (len(raw), raw)

        header = b"".join(bulk(v) for v in ["" if staging else gen, str(self.ttl_ms), str(len(names))])
        pointer = bulk(self._pointer(table))
        written = created = 0
        step = self.rows_per_script
        for attempt in range(2):
            sha = bulk(self._script_sha())
            commands = []
            for lo in range(0, len(rows), step):
                k = len(rows[lo : lo + step])
                nargs = 3 + 1 + k + 3 + k * (2 + 2 * len(names))
                commands.append(
                    b"".join(
                        [b"*%d\r\n$7\r\nEVALSHA\r\n" % nargs, sha, bulk(str(1 + k)), pointer]
                        + keys[lo : lo + step]
                        + [header]
                        + rows[lo : lo + step]
                    )
                )
            try:
                for start in range(0, len(commands), self.scripts_per_round_trip):
                    for result in self._send(commands[start : start + self.scripts_per_round_trip]):
                        if result[0] == -1:
                            raise _GenerationMoved(result[1] or None)
                        written += int(result[0])
                        created += int(result[1])
                return written, created
            except self._noscript:
                if attempt:
                    raise
                self._sha = None  # the server lost its scripts (restart, SCRIPT FLUSH): load again
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, commands: list[bytes]) -> list[Any]:
        """Send packed commands on one connection and read every reply (errors raised after)."""
        pool = self._client.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command(commands)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except self._response_error as exc:
                    replies.append(exc)
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def write_batch(self, table: OnlineTable, rows: pa.Table, *, order: str = ORDER_COLUMN,
                    publication: int | None = None) -> int:
        self._check(table)
        prepared = prepare_rows(table, rows, order)
        try:
            gen = self._gens.get(table.name) or self._current(table, create=True)
            for _ in range(5):
                assert gen is not None
                try:
                    written = self._write(table, prepared, gen, staging=False)[0]
                    if publication is not None:
                        self._client.eval(RAISE_SCRIPT, 2, self._pointer(table), self._publications(table),
                                          str(int(publication)))
                    return written
                except _GenerationMoved as moved:
                    gen = moved.current or self._current(table, create=True)
                    if gen is not None:
                        self._gens[table.name] = gen
            raise OnlineStoreError(
                f"Redis online store {self.url}: {table.name!r} kept switching generations while "
                "writing (is another process replacing it in a loop?). Retry the write."
            )
        except self._errors as exc:
            raise self._fail("writing", table, exc) from exc

    def _unlink(self, prefix: str) -> None:
        """Delete every key that starts with ``prefix`` (SCAN, then UNLINK 1,000 at a time)."""
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self._client.unlink(*batch)
                batch = []
        if batch:
            self._client.unlink(*batch)

    def _delete_generation(self, table: OnlineTable, gen: bytes) -> None:
        self._unlink(self._item_prefix(table, gen))

    def _forget_generation(self, table: OnlineTable, gen: bytes) -> None:
        self._delete_generation(table, gen)
        self._client.srem(self._generations(table), gen)
        self._client.hdel(self._publications(table), gen)

    def replace_table(
        self, table: OnlineTable, batches: Iterable[pa.Table], *, order: str = ORDER_COLUMN,
        publication: int | None = None,
    ) -> int:
        """Write a new generation, switch the pointer to it in one atomic script (which refuses a
        ``publication`` older than the served one), delete the old generation and reclaim dead ones."""
        self._check(table)
        pub = "" if publication is None else str(int(publication))
        try:
            new = str(self._client.incr(f"{self._base(table)}#seq")).encode()
            pipe = self._client.pipeline(transaction=False)
            pipe.sadd(self._generations(table), new)
            if pub:
                pipe.hset(self._publications(table), new, pub)
            pipe.execute()
            created = 0
            try:
                for batch in batches:
                    created += self._write(table, prepare_rows(table, batch, order), new, staging=True)[1]
                status, previous = self._client.eval(
                    SWITCH_SCRIPT, 3, self._pointer(table), self._publications(table), self._generations(table),
                    new, pub)
            except BaseException:
                self._forget_generation(table, new)
                raise
            if int(status) != 1:
                self._forget_generation(table, new)
                if int(status) == 0:
                    served = self._client.hget(self._publications(table), previous)
                    raise StalePublishError(
                        f"Redis online store {self.url}: table {table.name!r} serves publication "
                        f"{(served or b'?').decode()}, newer than {pub}; nothing was replaced."
                    )
                return created  # the same publication, switched by a replace that started later
            self._gens[table.name] = new
            if previous and previous != new:
                self._forget_generation(table, previous)
            self.reclaim(table)
            return created
        except self._errors as exc:
            raise self._fail("replacing", table, exc) from exc

    def served_publication(self, table: OnlineTable) -> int | None:
        self._open()
        try:
            gen = self._client.get(self._pointer(table))
            served = self._client.hget(self._publications(table), gen) if gen is not None else None
        except self._errors as exc:
            raise self._fail("reading", table, exc) from exc
        return None if served is None else int(served)

    def reclaim(self, table: OnlineTable) -> int:
        """Delete generations that can never be served again: those of a publication older than the
        served one, or of the same publication and created earlier (left by killed or refused
        overwrites). A staging generation of a newer publication may still switch, so it stays."""
        self._open()
        try:
            cur = self._client.get(self._pointer(table))
            if cur is None:
                return 0
            pubs = self._client.hgetall(self._publications(table))
            served = (int(pubs.get(cur, b"0")), int(cur))
            dead = [g for g in self._client.smembers(self._generations(table))
                    if g != cur and (int(pubs.get(g, b"0")), int(g)) < served]
            for gen in dead:
                self._forget_generation(table, gen)
            return len(dead)
        except self._errors as exc:
            raise self._fail("reclaiming", table, exc) from exc

    def drop_table(self, table: OnlineTable) -> None:
        self._open()
        try:
            self._client.delete(self._pointer(table), f"{self._base(table)}#seq", self._publications(table),
                                self._generations(table))
            self._unlink(self._base(table) + ":")
        except self._errors as exc:
            raise self._fail("dropping", table, exc) from exc
        finally:
            self._gens.pop(table.name, None)

    def delete_keys(self, table: OnlineTable, pks: Sequence[str]) -> None:
        """UNLINK the keys' hashes in the served generation; again in the new one if an overwrite
        switched generations meanwhile."""
        self._open()
        unique = list(dict.fromkeys(pks))
        try:
            done: set[bytes] = set()
            gen = self._current(table, create=False)
            while gen is not None and gen not in done:
                prefix = self._item_prefix(table, gen)
                for start in range(0, len(unique), 1000):
                    self._client.unlink(*(prefix + k for k in unique[start : start + 1000]))
                done.add(gen)
                gen = self._current(table, create=False)
        except self._errors as exc:
            raise self._fail("deleting keys of", table, exc) from exc

    # -- reads ------------------------------------------------------------------------------

    def _fetch(self, table: OnlineTable, pks: list[str | None], names: list[str]) -> list[Any]:
        """Per key of ``pks`` (in order), the raw ``HMGET`` reply: [_order, *names] (all None if missing)."""
        self._open()
        unique = list(dict.fromkeys(k for k in pks if k is not None))
        fields = [ORDER_FIELD, *names]
        pointer = self._pointer(table)
        try:
            gen = self._gens.get(table.name) or self._current(table, create=False)
            for _ in range(5):
                if gen is None:
                    raise OnlineTableNotFoundError(
                        f"Online table {table.name!r} is not in the Redis online store {self.url} "
                        f"(prefix {self.key_prefix!r}); publish it first with publish_table()."
                    )
                prefix = self._item_prefix(table, gen)
                pipe = self._client.pipeline(transaction=False)
                pipe.get(pointer)
                for pk in unique:
                    pipe.hmget(prefix + pk, fields)
                pipe.get(pointer)
                result = pipe.execute()
                if result[0] == gen and result[-1] == gen:
                    break
                gen = self._current(table, create=False)
            else:
                raise OnlineStoreError(
                    f"Redis online store {self.url}: {table.name!r} kept switching generations while "
                    "reading. Retry the read."
                )
        except self._errors as exc:
            raise self._fail("reading", table, exc) from exc
        rows = result[1:-1]
        if len(pks) == 1 and len(unique) == 1:
            return rows
        empty = [None] * len(fields)
        position = {pk: i for i, pk in enumerate(unique)}
        return [rows[position[pk]] if pk is not None else empty for pk in pks]

    def read_values(
        self, table: OnlineTable, pks: Sequence[str | None], features: list[str] | None = None
    ) -> ValueBatch:
        """64-bit floats, integers and booleans are parsed from their text straight into numpy (Python's
        ``float``/``int`` read the canonical text exactly; Arrow's cast from 64 values of a type); the rest
        through Arrow's cast of the canonical text.

        One key (the serving case) sends pre-encoded commands prepared once per (table, feature list)
        on a connection the thread keeps (see the module docstring)."""
        if len(pks) == 1 and pks[0] is not None:
            one = self._one.get(id(table) ^ id(features))
            if one is None or one.table is not table or one.features is not features or (
                features is not None and features != one.copy
            ):
                one = _OneKey.create(self, table, features, read_plan(table, features))
                if len(self._one) >= 256:
                    self._one.clear()
                self._one[id(table) ^ id(features)] = one
            row = self._read_one(one, pks[0])
            if row is not None:
                if one.simple and row[0] is not None and None not in row:
                    batch = self._parse_one(one, row)
                    if batch is not None:
                        return batch
                return self._values(table, one.plan, [row], 1)
        plan = read_plan(table, features)
        pks = list(pks)
        return self._values(table, plan, self._fetch(table, pks, plan.names), len(pks))

    def _read_one(self, one: _OneKey, pk: str) -> list[Any] | None:
        """The ``HMGET`` reply of one key, or None when the general read must answer (no generation
        known, a switched generation, a connection or server error)."""
        if self._closed:
            return None
        name = one.table.name
        gen = self._gens.get(name)
        if gen is None:
            return None
        prefix = one.prefixes.get(gen)
        if prefix is None:
            prefix = self._item_prefix(one.table, gen).encode()
            if len(one.prefixes) >= 8:
                one.prefixes.clear()
            one.prefixes[gen] = prefix
        key = prefix + pk.encode()
        command = b"%s$%d\r\n%s\r\n%s" % (one.head, len(key), key, one.tail)
        kept = getattr(self._local, "kept", None)
        if kept is None or kept.pid != os.getpid():
            kept = self._keep_connection()
            if kept is None:
                return None
        conn = kept.conn
        try:
            conn.send_packed_command([command], check_health=False)
            row = conn.read_response()
            current = conn.read_response()
        except BaseException as exc:
            self._local.kept = None
            conn.disconnect()
            kept.release()
            if isinstance(exc, self._errors):
                return None  # the general read retries and reports errors
            raise
        if current != gen:
            if current is None:
                self._gens.pop(name, None)
            else:
                self._gens[name] = current
            return None
        return row  # type: ignore[no-any-return]

    def _keep_connection(self) -> _Kept | None:
        """A connection from the pool that this thread keeps for one-key reads (None if none).

        It goes back to the pool when the thread ends (its thread-local holder is released), on an
        error, and on ``close()``."""
        try:
            conn = self._client.connection_pool.get_connection()
        except self._errors:
            return None
        kept = self._local.kept = _Kept(self._client.connection_pool, conn)
        return kept

    @staticmethod
    def _parse_one(one: _OneKey, row: list[Any]) -> ValueBatch | None:
        """The batch of one found record whose values are all present and parsed in Python."""
        blocks = []
        try:
            for t, names, where, count, parse, dtype in one.groups:
                raw = row[where] if isinstance(where, slice) else [row[p] for p in where]
                values = np.fromiter(map(parse, raw), dtype, count).reshape(count, 1)
                blocks.append(ValueBlock(t, names, values, None))
        except (ValueError, OverflowError):
            return None  # the general decode reports which values cannot be read
        return ValueBatch(one.plan.names, 1, np.ones(1, bool), blocks, {})

    def _values(self, table: OnlineTable, plan: ReadPlan, ordered: list[Any], n: int) -> ValueBatch:
        """The batch of ``n`` raw ``HMGET`` replies (``[_order, *plan.names]`` each, in key order)."""
        names = plan.names
        columns = list(zip(*ordered, strict=True)) if n else [()] * (1 + len(names))
        found = np.fromiter((v is not None for v in columns[0]), dtype=bool, count=n)
        blocks: list[ValueBlock] = []
        rest: list[int] = []
        for t, idx in plan.groups:
            parse = _PARSERS.get(t)
            if parse is None:
                rest.extend(idx)
                continue
            raw = [v for j in idx for v in columns[1 + j]]
            nulls = None
            if None in raw:
                nulls = np.fromiter((v is None for v in raw), dtype=bool, count=len(raw)).reshape(len(idx), n)
                raw = [b"0" if v is None else v for v in raw]
            try:
                if len(raw) >= _ARROW_PARSE_MIN and t != pa.bool_():
                    # Arrow's cast parses many numbers several times faster than Python's float/int
                    # per value, with the same result (correctly rounded, exact for integers)
                    parsed = from_text(pa.array(raw, pa.binary()), t)
                    values = parsed.to_numpy(zero_copy_only=False, writable=True).reshape(len(idx), n)
                else:
                    values = np.array([parse(v) for v in raw], dtype=t.to_pandas_dtype()).reshape(len(idx), n)
            except (ValueError, OverflowError, pa.ArrowInvalid) as exc:
                raise OnlineStoreError(
                    f"Online table {table.name!r}: stored values of {[names[j] for j in idx]} cannot be "
                    f"read as {t}: {exc}. Republish the table in overwrite mode."
                ) from exc
            blocks.append(ValueBlock(t, tuple(names[j] for j in idx), values, nulls))
        arrays: dict[str, pa.Array] = {}
        if rest:
            rest.sort()
            others = [names[j] for j in rest]
            decoded = self._decode(table, others, [columns[1 + j] for j in rest], n)
            out = typed_table(table, others, decoded, n)
            arrays = {name: col.combine_chunks() for name, col in zip(others, out.columns, strict=True)}
        return ValueBatch(names, n, found, blocks, arrays)

    @staticmethod
    def _decode(table: OnlineTable, names: list[str], columns: list[tuple], n: int) -> dict[str, pa.Array]:
        """Parse the raw values column by column, one Arrow call per group of equal types."""
        out: dict[str, pa.Array] = {}
        for t, idx in read_plan(table, names).groups:
            flat = list(itertools.chain.from_iterable(columns[j] for j in idx))
            try:
                parsed = from_text(pa.array(flat, pa.binary()), storage_type(t))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise OnlineStoreError(
                    f"Online table {table.name!r}: stored values of "
                    f"{[names[j] for j in idx]} cannot be read as {t}: {exc}. Republish the table "
                    "in overwrite mode."
                ) from exc
            for c, j in enumerate(idx):
                out[names[j]] = parsed.slice(c * n, n)
        return out

    def close(self) -> None:
        self._closed = True
        self._local = threading.local()  # kept connections go back to the pool; close() ends them all
        self._client.close()


class _Kept:
    """A pooled connection one thread keeps; handed back to the pool when the holder goes away."""

    __slots__ = ("conn", "pid", "pool")

    def __init__(self, pool: Any, conn: Any) -> None:
        self.pool, self.conn, self.pid = pool, conn, os.getpid()

    def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and self.pid == os.getpid():
            # the pool may be being torn down: then there is nothing left to return the connection to
            with contextlib.suppress(Exception):
                self.pool.release(conn)

    def __del__(self) -> None:
        self.release()


class _GenerationMoved(Exception):
    def __init__(self, current: bytes | None) -> None:
        super().__init__("generation moved")
        self.current = current
