"""The embedded default online store: one SQLite file.

Layout
------
Each feature table lives in its own SQLite table ``"<full name>@<generation>"``::

    _k      TEXT PRIMARY KEY   the encoded entity key (larder.online.stores.encoding.encode_keys)
    _order  INTEGER NOT NULL   the row's order (event time in µs, or a publish sequence)
    _fixed  BLOB NOT NULL      the features' packed record (larder.online.stores.encoding.RowCodec)
    _var    BLOB               the string/binary feature values (NULL when the table has none)

(a ``WITHOUT ROWID`` table, so a key lookup is one B-tree search). The catalog table
``_larder_online`` maps each feature table to its current data table and the Arrow schema its
records were packed with; ``_larder_online_seq`` hands out generation numbers that are never reused.

Writes are one ``INSERT ... ON CONFLICT(_k) DO UPDATE ... WHERE excluded._order >= _order``
``executemany`` in one transaction. ``replace_table`` fills a new generation and switches the
catalog row and drops the old table in the same transaction, so readers see the old rows until the
commit and the new rows after it, never a mix. A write whose schema differs from the stored one
repacks the stored rows into a new generation in the same transaction.

A new file gets 16 KB pages (``page_size``; SQLite's default is 4 KB): a feature record of a few
hundred bytes then shares a leaf with thirty others instead of seven, a million keys fit a B-tree one
level shallower, and a record of up to about 4 KB (some 500 numeric features) stays on its leaf
instead of spilling into overflow pages. A one-key lookup on a million rows takes about a sixth less
time, and a publish about a third less; a small merge writes whole 16 KB pages to the log. The page
size is fixed when the file is created.

The file runs in WAL mode with ``synchronous=NORMAL``: readers never block the writer, and a power
loss can lose the last commits but never corrupt the file (the online store is rebuilt from the
offline tables by publishing again). Each thread gets its own connection, which reads the file
through a memory map (``PRAGMA mmap_size``): a key lookup then makes no ``read()`` call and copies
no page. A one-key ``read_values`` (the serving case) runs a statement and a decode plan prepared
once per (table, feature list): one ``SELECT`` by key, then numbers copied straight from the record
and other features built from its bytes.
"""

from __future__ import annotations

import sqlite3
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from larder.errors import OnlineStoreError, OnlineTableNotFoundError, StalePublishError
from larder.online.stores.base import (
    ORDER_COLUMN,
    OnlineStore,
    OnlineTable,
    PreparedRows,
    ReadPlan,
    ValueBatch,
    ValueBlock,
    is_block_type,
    prepare_rows,
    read_plan,
    typed_table,
)
from larder.online.stores.encoding import RowCodec, TypeGroup
from larder.online.stores.specs import SQLITE_PAGE_SIZES

CODEC_VERSION = 1
#: Key-list sizes a read pads to, so each table needs only a few prepared statements.
_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 500)
_CHUNK = _BUCKETS[-1]
_WRITE_CHUNK = 50_000
#: Bytes of the file each connection reads through a memory map instead of read() calls (a key
#: lookup then copies no pages; the map is address space, not memory: the OS pages it in and out).
_MMAP_BYTES = 1 << 32
#: The page size of a new store file (see the module's docstring).
DEFAULT_PAGE_SIZE = 16384

_CATALOG_DDL = (
    "CREATE TABLE IF NOT EXISTS _larder_online ("
    " name TEXT PRIMARY KEY, physical TEXT NOT NULL, schema BLOB NOT NULL, codec INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS _larder_online_seq (id INTEGER PRIMARY KEY AUTOINCREMENT)",
    # the publication order of each table's served contents (see OnlineStore: publications)
    "CREATE TABLE IF NOT EXISTS _larder_online_pub (name TEXT PRIMARY KEY, publication INTEGER NOT NULL)",
)
_RAISE_PUBLICATION = (
    "INSERT INTO _larder_online_pub (name, publication) VALUES (?, ?) ON CONFLICT(name) DO UPDATE "
    "SET publication = max(publication, excluded.publication)"
)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class _DecodePlan:
    """How ``read_values`` decodes a feature list from one layout (cached per layout)."""

    #: per type group: (group, positions of the wanted features in it or None for all, names, dtype,
    #: the columns of their null flags in a record)
    blocks: list[tuple[TypeGroup, list[int] | None, tuple[str, ...], np.dtype, slice | list[int]]]
    others: list[str]  # features decoded through Arrow (strings, timestamps, ..., or retyped)


@dataclass(frozen=True)
class _Layout:
    physical: str
    codec: RowCodec
    schema_bytes: bytes
    select: dict[int, str]  # bucket size -> SELECT statement
    decodes: dict[Any, Any] = field(default_factory=dict)  # feature names (or id of a read plan) -> _DecodePlan

    def decode_plan(self, table: OnlineTable, plan: ReadPlan) -> _DecodePlan:
        by_id = self.decodes.get(id(plan))  # read plans are cached per table: usually the same object
        if by_id is not None and by_id[0] is plan:
            return by_id[1]  # type: ignore[no-any-return]
        key = tuple(plan.names)
        cached = self.decodes.get(key)
        if cached is not None:
            if len(self.decodes) < 128:
                self.decodes[id(plan)] = (plan, cached)
            return cached
        wanted = dict(zip(plan.names, plan.types, strict=True))
        blocks = []
        in_blocks: set[str] = set()
        for group in self.codec.groups:
            # a feature stored with the type the table declares decodes straight from the records
            sel = [c for c, name in enumerate(group.names) if wanted.get(name) == group.type]
            if not sel or not is_block_type(group.type):
                continue
            names = tuple(group.names[c] for c in sel)
            dtype = np.dtype(group.type.to_pandas_dtype()).newbyteorder("<")
            positions = [1 + group.index[c] for c in sel]
            flags: slice | list[int] = positions
            if positions == list(range(positions[0], positions[0] + len(positions))):
                flags = slice(positions[0], positions[0] + len(positions))  # a view, no copy
            blocks.append((group, None if len(sel) == len(group.names) else sel, names, dtype, flags))
            in_blocks.update(names)
        decode = _DecodePlan(blocks, [name for name in plan.names if name not in in_blocks])
        if len(self.decodes) < 64:
            self.decodes[key] = decode
        return decode

    @classmethod
    def create(cls, physical: str, schema_bytes: bytes) -> _Layout:
        codec = RowCodec(pa.ipc.read_schema(pa.py_buffer(schema_bytes)))
        cols = "_k, _fixed, _var" if codec.var_names else "_k, _fixed"
        select = {
            b: f"SELECT {cols} FROM {_quote(physical)} WHERE _k IN ({','.join('?' * b)})" for b in _BUCKETS
        }
        return cls(physical, codec, schema_bytes, select)


_NULL_BIT = pa.py_buffer(b"\x00")  # validity of one null value
_FOUND = np.ones(1, bool)
_MISSING = np.zeros(1, bool)


@dataclass(frozen=True, slots=True)
class _OneKey:
    """Everything a one-key ``read_values`` of a (table, feature list) needs, prepared once.

    The serving case: one ``SELECT`` of one record, then each type group of numbers is one numpy copy
    of a slice of the record, and each other feature stored with its declared type one Arrow array
    built from the record's bytes (what the general decode gives for one row).
    """

    table: OnlineTable
    features: list[str] | None  # the caller's list, kept so that its id is not reused while cached
    copy: list[str] | None  # its contents when prepared: a list changed in place is prepared again
    layout: _Layout
    plan: ReadPlan
    sql: str
    clean: bytes  # a found record without a null value starts with these bytes
    #: per type group: (type, names, dtype, values in the group, byte offset, positions or None, flags)
    blocks: tuple[tuple[pa.DataType, tuple[str, ...], np.dtype, int, int, list[int] | None, slice | list[int]], ...]
    #: fixed-width features that are not numbers (timestamps, dates, decimals): (name, type, offset, width, flag)
    fixed: tuple[tuple[str, pa.DataType, int, int, int], ...]
    #: strings and binaries: (name, type, index among the record's variable-width values, flag, offsets format)
    var: tuple[tuple[str, pa.DataType, int, int, str], ...]
    lengths: struct.Struct | None  # the record's uint32 lengths of its variable-width values
    slow: list[str]  # the rest (retyped, never stored, null type): the general decode
    names_out: list[str]  # the order of ``arrays`` in the result (the plan's order)
    #: when every feature is a number: per type group (type, names, dtype, (values, 1), offset, positions,
    #: flags)
    plain: tuple[tuple[pa.DataType, tuple[str, ...], np.dtype, tuple[int, int], int, list[int] | None,
                       slice | list[int]], ...]

    @classmethod
    def create(cls, table: OnlineTable, features: list[str] | None, layout: _Layout, plan: ReadPlan) -> _OneKey:
        codec = layout.codec
        decode = layout.decode_plan(table, plan)
        blocks = tuple(
            (group.type, names, dtype, len(group.names), group.start, sel, flags)
            for group, sel, names, dtype, flags in decode.blocks
        )
        wanted = dict(zip(plan.names, plan.types, strict=True))
        fixed, var, slow = [], [], []
        var_index = {name: v for v, name in enumerate(codec.var_names)}
        starts = {name: g.start + c * g.width for g in codec.groups for c, name in enumerate(g.names)}
        widths = {name: g.width for g in codec.groups for name in g.names}
        for name in decode.others:
            t = wanted[name]
            stored = codec.schema.field(name).type if name in codec.position else None
            flag = 1 + codec.position[name] if stored is not None else 0
            if stored is None or stored != t:
                slow.append(name)
            elif name in starts:
                fixed.append((name, t, starts[name], widths[name], flag))
            elif name in var_index:
                large = pa.types.is_large_string(t) or pa.types.is_large_binary(t)
                var.append((name, t, var_index[name], flag, "<qq" if large else "<ii"))
            else:
                slow.append(name)
        nv = len(codec.var_names)
        cols = "_fixed, _var" if var else "_fixed"  # numbers only: the record's variable part stays unread
        return cls(
            table, features, None if features is None else list(features), layout, plan,
            f"SELECT {cols} FROM {_quote(layout.physical)} WHERE _k = ?",
            b"\x01" + bytes(len(codec.names)), blocks, tuple(fixed), tuple(var),
            struct.Struct(f"<{nv}I") if var else None, slow, [n for n in plan.names if n in set(decode.others)],
            () if decode.others else tuple((t, names, dtype, (count, 1), offset, sel, flags)
                                         for t, names, dtype, count, offset, sel, flags in blocks),
        )

    def decode(self, record: bytes, var: bytes | None, found: bool) -> ValueBatch:
        """The batch of one record (the all-null record of a missing key when not ``found``)."""
        clean = found and record.startswith(self.clean)
        blocks = []
        for typ, names, dtype, count, offset, sel, flags in self.blocks:
            values = np.ndarray((count, 1), dtype, record, offset)
            values = values.copy() if sel is None else values[sel]
            blocks.append(ValueBlock(typ, names, values, None if clean else _nulls(record, flags)))
        return ValueBatch(
            self.plan.names, 1, (_FOUND if found else _MISSING).copy(), blocks,
            self._arrays(record, var, clean) if self.names_out else {},
        )

    def _arrays(self, record: bytes, var: bytes | None, clean: bool) -> dict[str, pa.Array]:
        got: dict[str, pa.Array] = {}
        for name, t, offset, width, flag in self.fixed:
            validity = None if clean or not record[flag] else _NULL_BIT
            got[name] = pa.Array.from_buffers(t, 1, [validity, pa.py_buffer(record[offset : offset + width])])
        if self.var:
            assert self.lengths is not None
            lengths = self.lengths.unpack_from(record, self.layout.codec.var_start)
            data = pa.py_buffer(var or b"")
            for name, t, v, flag, fmt in self.var:
                start = sum(lengths[:v])
                validity = None if clean or not record[flag] else _NULL_BIT
                offsets = pa.py_buffer(struct.pack(fmt, start, start + lengths[v]))
                got[name] = pa.Array.from_buffers(t, 1, [validity, offsets, data])
        if self.slow:
            codec = self.layout.codec
            stored = [name for name in self.slow if name in codec.position]
            decoded = codec.decode(record, 1, [var], stored)
            out = typed_table(self.table, self.slow, decoded, 1)
            got.update((name, col.combine_chunks()) for name, col in zip(self.slow, out.columns, strict=True))
        return {name: got[name] for name in self.names_out}


def _nulls(record: bytes, flags: slice | list[int]) -> np.ndarray | None:
    """A type group's null flags in one record, ``(values, 1)`` booleans; None when none is null."""
    if isinstance(flags, slice):
        if record.count(0, flags.start, flags.stop) == flags.stop - flags.start:
            return None
        # a flag byte is 0 or 1 (RowCodec): read as booleans (no comparison ufunc), a read-only view of
        # the record (the assembly copies it before writing to it)
        return np.ndarray((flags.stop - flags.start, 1), np.bool_, record, flags.start)
    mask = [record[p] != 0 for p in flags]
    return np.array(mask, bool).reshape(-1, 1) if any(mask) else None


class SQLiteOnlineStore(OnlineStore):
    """Online store in one SQLite file.

    Parameters
    ----------
    path
        The database file; created (with its folder) when missing.
    timeout
        Seconds a writer waits for another writer's lock before failing.
    page_size
        Bytes per database page of a new file (a power of two from 512 to 65536; default
        ``DEFAULT_PAGE_SIZE``). An existing file keeps its page size; asking for another one raises
        ``OnlineStoreError``.

    Examples
    --------
    >>> import pyarrow as pa, tempfile, pathlib
    >>> from larder.online.stores.base import OnlineTable
    >>> table = OnlineTable("main.default.t", ["id"], None,
    ...                     pa.schema([("id", pa.int64()), ("x", pa.float64())]))
    >>> with SQLiteOnlineStore(pathlib.Path(tempfile.mkdtemp()) / "online.db") as store:
    ...     store.write_batch(table, pa.table({"id": [1], "x": [0.5], "__larder_order__": [1]}))
    ...     store.read_batch(table, pa.table({"id": [1, 2]}))[0].column("x").to_pylist()
    1
    [0.5, None]
    """

    def __init__(self, path: str | Path, *, timeout: float = 30.0, page_size: int | None = None) -> None:
        if page_size is not None and page_size not in SQLITE_PAGE_SIZES:
            raise OnlineStoreError(
                f"SQLite online store {path}: page_size must be a power of two from 512 to 65536, "
                f"got {page_size!r}."
            )
        self.path = Path(path)
        self.timeout = timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._layouts: dict[str, _Layout] = {}
        self._one: dict[int, _OneKey] = {}  # id of table ^ id of features -> one-key plan
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            self._set_page_size(conn, page_size)
            conn.execute("PRAGMA journal_mode=WAL")
            for ddl in _CATALOG_DDL:
                conn.execute(ddl)
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise OnlineStoreError(f"Cannot open the SQLite online store at {self.path}: {exc}") from exc
        except OnlineStoreError:
            self.close()
            raise

    def _set_page_size(self, conn: sqlite3.Connection, wanted: int | None) -> None:
        """Give a new (empty) file its page size; check an existing file's against ``wanted``."""
        if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
            # takes effect with the first table created below (before WAL mode fixes it)
            conn.execute(f"PRAGMA page_size={wanted or DEFAULT_PAGE_SIZE}")
            return
        have = conn.execute("PRAGMA page_size").fetchone()[0]
        if wanted is not None and have != wanted:
            raise OnlineStoreError(
                f"SQLite online store {self.path} has {have}-byte pages, not the {wanted} asked for: the "
                "page size is fixed when the file is created. Open it without page_size (or with "
                f"page_size={have}), or publish to a new file."
            )

    def to_spec(self) -> Any:
        from larder.online.stores.specs import SQLiteStoreSpec

        return SQLiteStoreSpec(path=str(self.path.resolve()))

    @property
    def page_size(self) -> int:
        """Bytes per page of the store's file."""
        return int(self._conn().execute("PRAGMA page_size").fetchone()[0])

    # -- connections ------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise OnlineStoreError(f"The SQLite online store at {self.path} is closed.")
        conn = sqlite3.connect(
            self.path,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=512,
        )
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self, what: str, name: str) -> Iterator[sqlite3.Connection]:
        """One write transaction of table ``name``. On any failure it is rolled back, the table's cached
        layout is forgotten and a sqlite3 error is raised as ``OnlineStoreError`` naming ``what``."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._layouts.pop(name, None)
            raise OnlineStoreError(f"SQLite online store {self.path}: cannot start {what}: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._layouts.pop(name, None)
            if isinstance(exc, sqlite3.Error):
                raise OnlineStoreError(f"SQLite online store {self.path}: {what} failed: {exc}") from exc
            raise

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    # -- catalog ----------------------------------------------------------------------------

    def _load_layout(self, name: str) -> _Layout | None:
        row = (
            self._conn()
            .execute("SELECT physical, schema, codec FROM _larder_online WHERE name = ?", (name,))
            .fetchone()
        )
        if row is None:
            self._layouts.pop(name, None)
            return None
        physical, schema_bytes, codec = row
        if codec != CODEC_VERSION:
            raise OnlineStoreError(
                f"SQLite online store {self.path}: table {name!r} was written by a larder with row "
                f"format {codec} (this one reads format {CODEC_VERSION}). Republish the table."
            )
        cached = self._layouts.get(name)
        if cached is not None and cached.physical == physical:
            return cached
        layout = _Layout.create(physical, bytes(schema_bytes))
        self._layouts[name] = layout
        return layout

    def _new_physical(self, conn: sqlite3.Connection, table: OnlineTable) -> tuple[str, bytes]:
        gen = conn.execute("INSERT INTO _larder_online_seq DEFAULT VALUES").lastrowid
        conn.execute("DELETE FROM _larder_online_seq WHERE id < ?", (gen,))
        physical = f"{table.name}@{gen}"
        conn.execute(
            f"CREATE TABLE {_quote(physical)} (_k TEXT PRIMARY KEY, _order INTEGER NOT NULL, "
            "_fixed BLOB NOT NULL, _var BLOB) WITHOUT ROWID"
        )
        return physical, table.feature_schema().serialize().to_pybytes()

    def _set_layout(self, conn: sqlite3.Connection, name: str, physical: str, schema: bytes) -> None:
        conn.execute(
            "INSERT INTO _larder_online (name, physical, schema, codec) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET physical = excluded.physical, schema = excluded.schema, "
            "codec = excluded.codec",
            (name, physical, schema, CODEC_VERSION),
        )

    # -- writes -----------------------------------------------------------------------------

    @staticmethod
    def _upsert(conn: sqlite3.Connection, layout: _Layout, prepared: PreparedRows) -> int:
        sql = (
            f"INSERT INTO {_quote(layout.physical)} AS t (_k, _order, _fixed, _var) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(_k) DO UPDATE SET _order = excluded._order, _fixed = excluded._fixed, "
            "_var = excluded._var WHERE excluded._order >= t._order"
        )
        before = conn.total_changes
        n = prepared.num_rows
        for start in range(0, n, _WRITE_CHUNK):
            part = prepared.features.slice(start, _WRITE_CHUNK)
            fixed, var = layout.codec.encode(part)
            keys = prepared.pk.slice(start, _WRITE_CHUNK).to_pylist()
            orders = prepared.order[start : start + _WRITE_CHUNK].tolist()
            blobs: list[bytes | None] = list(var) if var is not None else [None] * len(fixed)
            conn.executemany(sql, zip(keys, orders, fixed, blobs, strict=True))
        return conn.total_changes - before

    def _migrate(self, conn: sqlite3.Connection, table: OnlineTable, old: _Layout) -> _Layout:
        """Repack every stored row of ``table`` into a new generation with the table's schema."""
        physical, schema_bytes = self._new_physical(conn, table)
        new = _Layout.create(physical, schema_bytes)
        names = [n for n in old.codec.names if n in set(new.codec.names)]
        cur = conn.execute(f"SELECT _k, _order, _fixed, _var FROM {_quote(old.physical)}")
        while True:
            rows = cur.fetchmany(_WRITE_CHUNK)
            if not rows:
                break
            keys, orders, fixed, var = zip(*rows, strict=True)
            arrays = old.codec.decode(b"".join(fixed), len(rows), var, names)
            features = typed_table(table, table.features, arrays, len(rows))
            prepared = PreparedRows(
                pk=pa.array(keys, pa.string()),
                order=np.asarray(orders, dtype=np.int64),
                keys=pa.table({}),
                features=features,
            )
            self._upsert(conn, new, prepared)
        conn.execute(f"DROP TABLE {_quote(old.physical)}")
        self._set_layout(conn, table.name, physical, schema_bytes)
        return new

    def write_batch(self, table: OnlineTable, rows: pa.Table, *, order: str = ORDER_COLUMN,
                    publication: int | None = None) -> int:
        prepared = prepare_rows(table, rows, order)
        schema_bytes = table.feature_schema().serialize().to_pybytes()
        with self._write(f"writing {table.name!r}", table.name) as conn:
            layout = self._load_layout(table.name)
            if layout is None:
                physical, schema_bytes = self._new_physical(conn, table)
                self._set_layout(conn, table.name, physical, schema_bytes)
                layout = _Layout.create(physical, schema_bytes)
            elif layout.schema_bytes != schema_bytes:
                layout = self._migrate(conn, table, layout)
            written = self._upsert(conn, layout, prepared)
            if publication is not None:
                conn.execute(_RAISE_PUBLICATION, (table.name, int(publication)))
        self._layouts[table.name] = layout
        return written

    def replace_table(
        self, table: OnlineTable, batches: Iterable[pa.Table], *, order: str = ORDER_COLUMN,
        publication: int | None = None,
    ) -> int:
        """Overwrite the table in one transaction: readers see the old rows until the commit. Write
        transactions are serialised, so comparing ``publication`` with the served one at the start is
        atomic with the switch at the commit."""
        with self._write(f"replacing {table.name!r}", table.name) as conn:
            served = self._served(conn, table)
            if publication is not None and served is not None and served > publication:
                raise StalePublishError(
                    f"SQLite online store {self.path}: table {table.name!r} serves publication {served}, "
                    f"newer than {publication}; nothing was replaced."
                )
            old = self._load_layout(table.name)
            physical, schema_bytes = self._new_physical(conn, table)
            layout = _Layout.create(physical, schema_bytes)
            for batch in batches:
                self._upsert(conn, layout, prepare_rows(table, batch, order))
            count = conn.execute(f"SELECT count(*) FROM {_quote(physical)}").fetchone()[0]
            if old is not None:
                conn.execute(f"DROP TABLE IF EXISTS {_quote(old.physical)}")
            self._set_layout(conn, table.name, physical, schema_bytes)
            if publication is not None:
                conn.execute("INSERT OR REPLACE INTO _larder_online_pub (name, publication) VALUES (?, ?)",
                             (table.name, int(publication)))
        self._layouts[table.name] = layout
        return int(count)

    @staticmethod
    def _served(conn: sqlite3.Connection, table: OnlineTable) -> int | None:
        row = conn.execute("SELECT publication FROM _larder_online_pub WHERE name = ?", (table.name,)).fetchone()
        return None if row is None else int(row[0])

    def served_publication(self, table: OnlineTable) -> int | None:
        try:
            return self._served(self._conn(), table)
        except sqlite3.Error as exc:
            raise OnlineStoreError(f"SQLite online store {self.path}: reading {table.name!r} failed: {exc}") from exc

    def drop_table(self, table: OnlineTable) -> None:
        with self._write(f"dropping {table.name!r}", table.name) as conn:
            row = conn.execute("SELECT physical FROM _larder_online WHERE name = ?", (table.name,)).fetchone()
            if row is not None:
                conn.execute(f"DROP TABLE IF EXISTS {_quote(row[0])}")
                conn.execute("DELETE FROM _larder_online WHERE name = ?", (table.name,))
            conn.execute("DELETE FROM _larder_online_pub WHERE name = ?", (table.name,))
        self._layouts.pop(table.name, None)

    def delete_keys(self, table: OnlineTable, pks: Sequence[str]) -> None:
        with self._write(f"deleting keys of {table.name!r}", table.name) as conn:
            layout = self._load_layout(table.name)
            if layout is not None:
                unique = list(dict.fromkeys(pks))
                for start in range(0, len(unique), _WRITE_CHUNK):
                    conn.executemany(f"DELETE FROM {_quote(layout.physical)} WHERE _k = ?",
                                     [(k,) for k in unique[start : start + _WRITE_CHUNK]])

    # -- reads ------------------------------------------------------------------------------

    def _fetch(self, layout: _Layout, unique: list[str]) -> dict[str, tuple[bytes, bytes | None]]:
        conn = self._conn()
        found: dict[str, tuple[bytes, bytes | None]] = {}
        has_var = bool(layout.codec.var_names)
        if len(unique) == 1:  # the serving case
            rows = conn.execute(layout.select[1], unique).fetchall()
            return {rows[0][0]: (rows[0][1], rows[0][2] if has_var else None)} if rows else found
        for start in range(0, len(unique), _CHUNK):
            part = unique[start : start + _CHUNK]
            size = next(b for b in _BUCKETS if b >= len(part))
            params = part + [None] * (size - len(part))
            rows = conn.execute(layout.select[size], params).fetchall()
            if has_var:
                found.update((k, (f, v)) for k, f, v in rows)
            else:
                found.update((k, (f, None)) for k, f in rows)
        return found

    def _read(self, table: OnlineTable, pks: list[str | None]) -> tuple[_Layout, bytes, list[bytes | None] | None]:
        """The stored records of ``pks`` in order: (layout, concatenated fixed records, var blobs)."""
        layout: _Layout | None = None
        rows: dict[str, tuple[bytes, bytes | None]] = {}
        for attempt in range(3):
            layout = self._layouts.get(table.name) or self._load_layout(table.name)
            if layout is None:
                raise OnlineTableNotFoundError(
                    f"Online table {table.name!r} is not in the SQLite online store {self.path}; "
                    "publish it first with publish_table()."
                )
            try:
                if len(pks) == 1:  # the serving case: one query, no bookkeeping
                    row = self._conn().execute(layout.select[1], pks).fetchone() if pks[0] is not None else None
                    if row is None:
                        return layout, layout.codec.missing_row, [None] if layout.codec.var_names else None
                    return layout, row[1], [row[2]] if layout.codec.var_names else None
                rows = self._fetch(layout, list(dict.fromkeys(k for k in pks if k is not None)))
                break
            except sqlite3.OperationalError as exc:
                # The table was replaced or dropped since the layout was cached: look it up again.
                self._layouts.pop(table.name, None)
                if attempt == 2 or "no such table" not in str(exc):
                    raise OnlineStoreError(
                        f"SQLite online store {self.path}: reading {table.name!r} failed: {exc}"
                    ) from exc
            except sqlite3.Error as exc:
                raise OnlineStoreError(
                    f"SQLite online store {self.path}: reading {table.name!r} failed: {exc}"
                ) from exc
        assert layout is not None  # the loop either found a layout or raised
        missing: tuple[bytes, bytes | None] = (layout.codec.missing_row, None)
        hits = [rows.get(k, missing) if k is not None else missing for k in pks] if rows else [missing] * len(pks)
        fixed = b"".join(h[0] for h in hits)
        return layout, fixed, [h[1] for h in hits] if layout.codec.var_names else None

    def read_values(
        self, table: OnlineTable, pks: Sequence[str | None], features: list[str] | None = None
    ) -> ValueBatch:
        """Each type group of the packed records becomes one numpy matrix (a strided view of the
        records, copied once); other features are decoded to Arrow by the record codec.

        One key (the serving case) takes a path prepared once per (table, feature list): one
        ``SELECT`` of one record, decoded straight from its bytes.
        """
        one = None
        if len(pks) == 1:
            # keyed by both identities (a collision only costs a fresh plan: the entry is checked)
            one = self._one.get(id(table) ^ id(features))
            if (
                one is not None
                and one.table is table
                and one.features is features
                and (features is None or features == one.copy)
            ):
                if pks[0] is not None:
                    # A data table never changes its record format and a replaced or dropped one is
                    # gone, so the prepared statement either reads records this plan decodes or fails.
                    try:
                        conn = self._local.conn
                    except AttributeError:
                        conn = self._conn()
                    try:
                        row = conn.execute(one.sql, (pks[0],)).fetchone()
                    except sqlite3.Error:
                        row = False  # replaced or dropped: the general path looks the table up again
                    if row is None:
                        return one.decode(one.layout.codec.missing_row, None, False)
                    if row is not False:
                        record = row[0]
                        if one.plain:  # numbers only: each type group's block straight from the record
                            clean = record.startswith(one.clean)
                            blocks = []
                            for typ, names, dtype, shape, offset, sel, flags in one.plain:
                                values = np.ndarray(shape, dtype, record, offset)
                                blocks.append(ValueBlock(typ, names, values.copy() if sel is None else values[sel],
                                                         None if clean else _nulls(record, flags)))
                            return ValueBatch(one.plan.names, 1, _FOUND.copy(), blocks, {})
                        return one.decode(record, row[1] if one.var else None, True)
            else:
                one = None
        plan = read_plan(table, features)
        pks = pks if isinstance(pks, list) else list(pks)
        n = len(pks)
        layout, fixed, var = self._read(table, pks)
        if n == 1:
            if one is None or one.layout is not layout:
                one = _OneKey.create(table, features, layout, plan)
                if len(self._one) >= 256:
                    self._one.clear()
                self._one[id(table) ^ id(features)] = one
            return one.decode(fixed, var[0] if var else None, fixed[0] == 1)
        decode = layout.decode_plan(table, plan)
        codec = layout.codec
        rows = np.frombuffer(fixed, np.uint8).reshape(n, codec.width)
        found = rows[:, 0] == 1
        blocks = []
        for group, sel, names, dtype, flags in decode.blocks:
            span = rows[:, group.start : group.start + group.width * len(group.names)]
            values = span.view(dtype)  # (n, features of the group)
            values = values.T[sel] if sel is not None else values.T.copy()
            nulls = rows[:, flags]
            blocks.append(ValueBlock(group.type, names, values, (nulls.T != 0) if nulls.any() else None))
        arrays: dict[str, pa.Array] = {}
        if decode.others:
            stored = [name for name in decode.others if name in codec.position]
            decoded = codec.decode(fixed, n, var, stored)
            out = typed_table(table, decode.others, decoded, n)
            arrays = {name: col.combine_chunks() for name, col in zip(decode.others, out.columns, strict=True)}
        return ValueBatch(plan.names, n, found, blocks, arrays)
