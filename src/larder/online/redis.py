"""Redis online store: one hash per entity key.

Layout (``P`` = ``key_prefix``, ``T`` = the full feature-table name)::

    P:T#gen              string: the table's current generation (a decimal number)
    P:T#seq              counter that hands out generations
    P:T:<gen>:<pk>       hash: _order -> the row's order, <feature> -> value

``<pk>`` is the encoded entity key (:func:`larder.online.encoding.encode_keys`). Values are the
canonical text of :mod:`larder.online.encoding` (binary features: their bytes); a null value is
an absent field, so ``HGETALL`` shows exactly the non-null features.

Writes run a Lua script per chunk of rows that, atomically per key, compares the stored
``_order`` (as a decimal integer, so orders beyond 2**53 compare exactly) with the incoming one
and rewrites the hash only when the incoming order is greater or equal; ``PEXPIRE`` sets the TTL.
The script first checks that the generation the client wrote to is still current, so a write
racing a ``replace_table`` is redone in the new generation.

Reads send ``GET gen``, one ``HMGET`` per distinct key, and ``GET gen`` again in one pipeline (one
round trip); both ``GET`` s returning the generation that was read proves no switch happened in
between, otherwise the read is repeated. ``replace_table`` writes a new generation, switches
``P:T#gen`` with one ``SET`` and then deletes the old generation's keys, so a reader sees either
the old or the new contents, never a mix.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa

from larder.errors import OnlineStoreError, OnlineTableNotFoundError, require
from larder.online.base import (
    ORDER_COLUMN,
    OnlineStore,
    OnlineTable,
    PreparedRows,
    assemble,
    prepare_keys,
    prepare_rows,
    read_plan,
    resolve_features,
)
from larder.online.encoding import check_supported, from_text, storage_type, to_text

ORDER_FIELD = "_order"
RESERVED = (ORDER_FIELD,)
_MAX_FIELDS = 3000  # Lua's unpack() limit is 8000 values: 2 per field

_WRITE_SCRIPT = """
local expected = ARGV[1]
if expected ~= '' then
  local current = redis.call('GET', KEYS[1])
  if current ~= expected then return {-1, current or ''} end
end
local ttl = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
local function ge(a, b)  -- a >= b for canonical decimal integers
  local na, nb = string.byte(a, 1) == 45, string.byte(b, 1) == 45
  if na ~= nb then return nb end
  if #a ~= #b then
    if na then return #a < #b end
    return #a > #b
  end
  if na then return a <= b end
  return a >= b
end
local written, created = 0, 0
local pos = 4 + m
for i = 2, #KEYS do
  local key, order, mask = KEYS[i], ARGV[pos], ARGV[pos + 1]
  local cur = redis.call('HGET', key, '_order')
  if (not cur) or ge(order, cur) then
    if cur then redis.call('DEL', key) else created = created + 1 end
    local args = {'_order', order}
    for j = 1, m do
      if string.byte(mask, j) == 48 then
        args[#args + 1] = ARGV[3 + j]
        args[#args + 1] = ARGV[pos + 1 + j]
      end
    end
    redis.call('HSET', key, unpack(args))
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
    written = written + 1
  end
  pos = pos + 2 + m
end
return {written, created}
"""


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


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
    ) -> None:
        redis = require("redis", extra="redis", feature="The Redis online store")
        self._errors = redis.exceptions.RedisError
        self.url = _redact(url)
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
            raise OnlineStoreError(f"Invalid Redis URL {self.url!r}: {exc}") from exc
        self._write_script = self._client.register_script(_WRITE_SCRIPT)
        self._gens: dict[str, bytes] = {}
        self._closed = False

    # -- keys -------------------------------------------------------------------------------

    def _base(self, table: OnlineTable) -> str:
        return f"{self.key_prefix}:{table.name}"

    def _pointer(self, table: OnlineTable) -> str:
        return f"{self._base(table)}#gen"

    def _item_prefix(self, table: OnlineTable, gen: bytes) -> str:
        return f"{self._base(table)}:{gen.decode()}:"

    def _fail(self, what: str, table: OnlineTable, exc: Exception) -> OnlineStoreError:
        return OnlineStoreError(f"Redis online store {self.url}: {what} {table.name!r} failed: {exc}")

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
                gen = new
            else:
                gen = self._client.get(self._pointer(table))
        if gen is None:
            self._gens.pop(table.name, None)
        else:
            self._gens[table.name] = gen
        return gen

    # -- writes -----------------------------------------------------------------------------

    def _encode(self, prepared: PreparedRows, names: list[str]) -> tuple[list[str], list[list[Any]]]:
        """Per row: the pk and the script arguments (order, null mask, values)."""
        n = prepared.num_rows
        m = len(names)
        columns = []
        nulls = np.zeros((n, m), dtype=np.uint8)
        for j, name in enumerate(names):
            col = prepared.features.column(name).combine_chunks()
            if col.null_count:
                nulls[:, j] = col.is_null().to_numpy(zero_copy_only=False)
            text = to_text(col)
            empty = b"" if pa.types.is_binary(text.type) else ""
            columns.append(text.fill_null(empty).to_pylist() if col.null_count != n else [empty] * n)
        if nulls.any():
            packed = (nulls + 48).tobytes()
            masks = [packed[i * m : (i + 1) * m].decode() for i in range(n)]
        else:
            masks = ["0" * m] * n
        orders = [str(o) for o in prepared.order.tolist()]
        rows = zip(*columns, strict=True) if m else itertools.repeat((), n)
        args = [[o, mask, *values] for o, mask, values in zip(orders, masks, rows, strict=False)]
        return prepared.pk.to_pylist(), args

    def _write(
        self, table: OnlineTable, prepared: PreparedRows, gen: bytes, staging: bool
    ) -> tuple[int, int]:
        """Write rows into generation ``gen``; returns (written, created) or raises _GenerationMoved."""
        names = table.features
        pks, rows = self._encode(prepared, names)
        header = ["" if staging else gen, str(self.ttl_ms), str(len(names)), *names]
        pointer = self._pointer(table)
        prefix = self._item_prefix(table, gen)
        written = created = 0
        step = self.rows_per_script
        per_trip = step * self.scripts_per_round_trip
        for start in range(0, len(pks), per_trip):
            pipe = self._client.pipeline(transaction=False)
            for lo in range(start, min(start + per_trip, len(pks)), step):
                keys = [pointer, *(prefix + pk for pk in pks[lo : lo + step])]
                args = header + list(itertools.chain.from_iterable(rows[lo : lo + step]))
                self._write_script(keys=keys, args=args, client=pipe)
            for result in pipe.execute():
                if result[0] == -1:
                    raise _GenerationMoved(result[1] or None)
                written += int(result[0])
                created += int(result[1])
        return written, created

    def write_batch(self, table: OnlineTable, rows: pa.Table, *, order: str = ORDER_COLUMN) -> int:
        self._check(table)
        prepared = prepare_rows(table, rows, order)
        try:
            gen = self._gens.get(table.name) or self._current(table, create=True)
            for _ in range(5):
                assert gen is not None
                try:
                    return self._write(table, prepared, gen, staging=False)[0]
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

    def _delete_generation(self, table: OnlineTable, gen: bytes) -> None:
        pattern = _glob_escape(self._item_prefix(table, gen)) + "*"
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self._client.unlink(*batch)
                batch = []
        if batch:
            self._client.unlink(*batch)

    def replace_table(
        self, table: OnlineTable, batches: Iterable[pa.Table], *, order: str = ORDER_COLUMN
    ) -> int:
        """Write a new generation, switch the pointer with one SET, delete the old generation."""
        self._check(table)
        try:
            new = str(self._client.incr(f"{self._base(table)}#seq")).encode()
            created = 0
            try:
                for batch in batches:
                    created += self._write(table, prepare_rows(table, batch, order), new, staging=True)[1]
                old = self._client.get(self._pointer(table))
                self._client.set(self._pointer(table), new)
            except BaseException:
                self._delete_generation(table, new)
                raise
            self._gens[table.name] = new
            if old is not None and old != new:
                self._delete_generation(table, old)
            return created
        except self._errors as exc:
            raise self._fail("replacing", table, exc) from exc

    def drop_table(self, table: OnlineTable) -> None:
        self._open()
        try:
            self._client.delete(self._pointer(table), f"{self._base(table)}#seq")
            pattern = _glob_escape(self._base(table) + ":") + "*"
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self._client.unlink(*batch)
                    batch = []
            if batch:
                self._client.unlink(*batch)
        except self._errors as exc:
            raise self._fail("dropping", table, exc) from exc
        finally:
            self._gens.pop(table.name, None)

    # -- reads ------------------------------------------------------------------------------

    def read_batch(
        self, table: OnlineTable, keys: pa.Table, features: list[str] | None = None
    ) -> tuple[pa.Table, np.ndarray]:
        self._open()
        names = resolve_features(table, features)
        pks = prepare_keys(table, keys)
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
        n = len(pks)
        empty = [None] * len(fields)
        position = {pk: i for i, pk in enumerate(unique)}
        ordered = [rows[position[pk]] if pk is not None else empty for pk in pks]
        columns = list(zip(*ordered, strict=True)) if n else [()] * len(fields)
        found = np.fromiter((v is not None for v in columns[0]), dtype=bool, count=n)
        return assemble(table, names, self._decode(table, names, columns[1:], n), n), found

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
        self._client.close()


class _GenerationMoved(Exception):
    def __init__(self, current: bytes | None) -> None:
        super().__init__("generation moved")
        self.current = current
