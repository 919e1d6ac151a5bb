"""The online store contract.

An :class:`OnlineStore` holds the latest row of every entity key of published feature tables and
serves them by key. A backend implements three methods, and every backend passes one shared test
suite (``tests/online/test_store_contract.py``):

``write_batch(table, rows, order=...)``
    Merge rows in. ``rows`` holds the key columns, the feature columns and an ``int64`` ordering
    column (event time in microseconds for time-series tables, a publish sequence otherwise).
    Within the batch the row with the greatest order per key is kept (a later row wins a tie); a
    stored row is never replaced by one with a smaller order (the incoming row wins a tie).
``read_values(table, pks, features=None)``
    Read by keys into typed columns: encoded keys in (:func:`~larder.online.stores.encoding.encode_keys`,
    None for a null key), one row per key in the keys' order (duplicates kept), a :class:`ValueBatch`
    out: numbers and booleans as numpy matrices, one per type, other features as Arrow arrays of the
    schema's types, nulls where a key is missing, and a boolean ``found`` array. One key is the same
    call with one key.
``drop_table(table)``
    Remove the table's rows (no error when there are none).

and ``close()`` when it holds connections or threads. Built on these:

``read_batch(table, keys, features=None)``
    The same read with the keys as an Arrow table of the primary-key columns and the features as an
    Arrow table: ``(features, found)``.
``replace_table(table, batches)``
    Overwrite a table with exactly the given rows. The default here is drop-then-write, which lets
    readers see an empty or partial table meanwhile; every built-in store overrides it with a switch
    that readers observe as atomic (see each store).

Publications are ordered: ``publish_table`` passes ``publication=`` (an integer that grows with the
Delta version, and with the table's re-creation) to ``replace_table`` and ``write_batch``. A store
that can compare (SQLite, Redis) keeps the greatest publication it serves per table
(``served_publication``) and refuses, in the same atomic step as the switch, a ``replace_table`` of a
smaller one with :class:`~larder.errors.StalePublishError`, so two racing overwrites always end
serving the newer version. ``reclaim(table)`` deletes what killed or refused overwrites left behind
(Redis staging generations older than the served one). Stores that cannot compare (the default
here, DynamoDB) ignore ``publication``; ``publish_table`` still refuses an older version that the
catalog shows to be superseded.

A sketch of use::

    with open_store(SQLiteStoreSpec(), root) as store:
        store.write_batch(table, rows)
        features, found = store.read_batch(table, pa.table({"id": [1, 2]}))
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from larder.errors import OnlineStoreError, PrimaryKeyError, SchemaMismatchError
from larder.online.stores.encoding import check_supported, encode_keys

#: Default name of the ordering column in the rows given to ``write_batch``.
ORDER_COLUMN = "__larder_order__"


@dataclass(frozen=True)
class OnlineTable:
    """What a store needs to know about a feature table.

    Parameters
    ----------
    name
        Full feature-table name, e.g. ``"main.default.houses"``.
    primary_keys
        Entity key columns (not including the timestamp key).
    timestamp_key
        For time-series tables, the event-time column. It is stored and returned like a feature.
    schema
        Arrow schema of keys, timestamp and features; reads return these types.

    >>> import pyarrow as pa
    >>> t = OnlineTable("main.default.houses", ["id"], None,
    ...                 pa.schema([("id", pa.int64()), ("price", pa.float64())]))
    >>> t.features
    ['price']
    """

    name: str
    primary_keys: list[str]
    timestamp_key: str | None
    schema: pa.Schema
    _features: list[str] = field(init=False, repr=False, compare=False)
    _plans: dict[tuple[str, ...] | None, ReadPlan] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.primary_keys:
            raise OnlineStoreError(f"Online table {self.name!r} needs at least one primary key.")
        if self.timestamp_key is not None and self.timestamp_key in self.primary_keys:
            raise OnlineStoreError(
                f"Online table {self.name!r}: timestamp key {self.timestamp_key!r} must not be listed "
                "among the primary keys."
            )
        if self.timestamp_key is not None and self.timestamp_key not in self.schema.names:
            raise OnlineStoreError(
                f"Online table {self.name!r}: timestamp key {self.timestamp_key!r} is not a column of "
                f"its schema {self.schema.names}."
            )
        if len(set(self.schema.names)) != len(self.schema.names):
            raise OnlineStoreError(f"Online table {self.name!r} has duplicate column names.")
        check_supported(self.name, self.schema, self.primary_keys)
        keys = set(self.primary_keys)
        object.__setattr__(self, "_features", [n for n in self.schema.names if n not in keys])
        object.__setattr__(self, "_plans", {})

    @property
    def features(self) -> list[str]:
        """Schema columns minus the primary keys (the timestamp key is included)."""
        return list(self._features)

    def feature_schema(self, features: list[str] | None = None) -> pa.Schema:
        """Schema of the given (default: all) features, every field nullable."""
        names = self._features if features is None else features
        return pa.schema([pa.field(n, self.schema.field(n).type) for n in names])


def online_table_info(table: OnlineTable) -> dict[str, Any]:
    """What a reader needs to read ``table`` back, as JSON: name, keys, timestamp key, Arrow schema
    (base64 Arrow IPC) and, for people, the columns with their types."""
    return {
        "name": table.name,
        "primary_keys": list(table.primary_keys),
        "timestamp_key": table.timestamp_key,
        "schema": base64.b64encode(table.schema.serialize().to_pybytes()).decode("ascii"),
        "columns": {f.name: str(f.type) for f in table.schema},
    }


def online_table_from_info(info: dict[str, Any]) -> OnlineTable:
    """Inverse of :func:`online_table_info`."""
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(info["schema"])))
    return OnlineTable(name=info["name"], primary_keys=list(info["primary_keys"]),
                       timestamp_key=info.get("timestamp_key"), schema=schema)


class OnlineStore(ABC):
    """Base class of online stores; see the module docstring for the contract."""

    @abstractmethod
    def write_batch(self, table: OnlineTable, rows: pa.Table, *, order: str = ORDER_COLUMN,
                    publication: int | None = None) -> int:
        """Merge ``rows`` into the store; returns the number of keys whose stored row changed.
        ``publication`` (when the store compares publications) raises the served one to at least it."""

    @abstractmethod
    def read_values(
        self, table: OnlineTable, pks: Sequence[str | None], features: list[str] | None = None
    ) -> ValueBatch:
        """Read ``features`` (None: all, in schema order) of the keys ``pks``: encoded keys
        (:func:`~larder.online.stores.encoding.encode_keys`; a plain ``str`` of an integer or string key
        for single-key tables), None for a null key. Raises
        :class:`~larder.errors.OnlineTableNotFoundError` for a table that was never written."""

    @abstractmethod
    def drop_table(self, table: OnlineTable) -> None:
        """Remove every row of ``table`` from the store."""

    @abstractmethod
    def delete_keys(self, table: OnlineTable, pks: Sequence[str]) -> None:
        """Remove the rows of the keys ``pks`` (encoded as for :meth:`read_values`) from the served
        contents of ``table``; keys not stored and a table never written are no error."""

    def to_spec(self) -> Any:
        """The spec that opens this store again (a ``SQLiteStoreSpec``, ...), so that a store object can
        be given wherever a spec is; None for a store that has none."""
        return None

    def read_batch(
        self, table: OnlineTable, keys: pa.Table, features: list[str] | None = None
    ) -> tuple[pa.Table, np.ndarray]:
        """Look up ``keys`` (columns: the table's primary keys, cast to the schema's types); returns
        ``(features, found)``: the typed Arrow table of :meth:`read_values`' batch and its found flags."""
        batch = self.read_values(table, prepare_keys(table, keys), features)
        return batch.to_arrow(table), batch.found

    def replace_table(
        self, table: OnlineTable, batches: Iterable[pa.Table], *, order: str = ORDER_COLUMN,
        publication: int | None = None,
    ) -> int:
        """Make the table's contents exactly ``batches`` (newest row per key across all batches).

        This default drops and rewrites, so readers may see an empty or partial table meanwhile,
        and ignores ``publication``; the built-in stores override it with an atomic switch that
        refuses a publication older than the served one (see the module docstring).
        """
        self.drop_table(table)
        return sum(self.write_batch(table, batch, order=order) for batch in batches)

    def served_publication(self, table: OnlineTable) -> int | None:
        """The publication order of the table's served contents, None if unknown (or unpublished)."""
        return None

    def reclaim(self, table: OnlineTable) -> int:
        """Delete leftovers of killed or refused overwrites of ``table``; returns how many went (Redis:
        generations). Nothing for stores that leave none."""
        return 0

    def close(self) -> None:  # noqa: B027 - concrete default, stores override when they hold resources
        """Release connections and threads. Safe to call twice."""

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------
# helpers shared by the stores


@dataclass
class PreparedRows:
    """Validated rows of one ``write_batch`` call, newest row per key, in no particular order."""

    pk: pa.Array  # string, one per row, unique
    order: np.ndarray  # int64
    keys: pa.Table  # the primary-key columns, cast to the schema's types
    features: pa.Table  # the feature columns in table.features order, cast to the schema's types

    @property
    def num_rows(self) -> int:
        return len(self.order)


def prepare_rows(table: OnlineTable, rows: pa.Table | pa.RecordBatch, order: str) -> PreparedRows:
    """Validate and cast ``rows`` for ``table`` and keep the newest row per key."""
    if isinstance(rows, pa.RecordBatch):
        rows = pa.Table.from_batches([rows])
    if not isinstance(rows, pa.Table):
        raise OnlineStoreError(
            f"Online table {table.name!r}: write_batch needs a pyarrow.Table, got {type(rows).__name__}."
        )
    names = set(rows.column_names)
    missing = [c for c in [*table.primary_keys, *table.features] if c not in names]
    if missing:
        raise SchemaMismatchError(
            f"Rows for online table {table.name!r} lack column(s) {missing}; pass every key and "
            f"feature column of its schema {table.schema.names}."
        )
    if order not in names:
        raise OnlineStoreError(
            f"Rows for online table {table.name!r} lack the ordering column {order!r} (int64: event "
            "time in microseconds for time-series tables, otherwise a publish sequence)."
        )
    extra = sorted(names - set(table.schema.names) - {order})
    if extra:
        raise SchemaMismatchError(
            f"Rows for online table {table.name!r} have column(s) {extra} that are not in its schema "
            f"{table.schema.names}; drop them or add them to the table."
        )
    order_col = rows.column(order)
    if not pa.types.is_integer(order_col.type):
        raise OnlineStoreError(
            f"Rows for online table {table.name!r}: ordering column {order!r} must be an integer "
            f"column, got {order_col.type}."
        )
    if order_col.null_count:
        raise OnlineStoreError(
            f"Rows for online table {table.name!r}: ordering column {order!r} has "
            f"{order_col.null_count} null value(s); every row needs an order."
        )
    cast_cols = {}
    for name in [*table.primary_keys, *table.features]:
        col = rows.column(name)
        target = table.schema.field(name).type
        if col.type != target:
            try:
                col = col.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise SchemaMismatchError(
                    f"Rows for online table {table.name!r}: column {name!r} has type {col.type}, which "
                    f"cannot be converted to the table's type {target}: {exc}. Cast the column first."
                ) from exc
        cast_cols[name] = col
    for key in table.primary_keys:
        col = cast_cols[key]
        if col.null_count:
            first = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise PrimaryKeyError(
                f"Rows for online table {table.name!r}: primary key {key!r} has {col.null_count} null "
                f"value(s) (first: row {first}). Drop or fill them before publishing."
            )
    keys = pa.table({k: cast_cols[k] for k in table.primary_keys})
    pk = encode_keys(table.name, table.schema, table.primary_keys, keys)
    if isinstance(pk, pa.ChunkedArray):
        pk = pk.combine_chunks()
    order_np = order_col.cast(pa.int64()).to_numpy()
    features = pa.table({f: cast_cols[f] for f in table.features}, schema=table.feature_schema())
    n = rows.num_rows
    if n > 1 and pc.count_distinct(pk).as_py() != n:
        index = pa.array(np.arange(n))
        sort = pc.sort_indices(
            pa.table({"k": pk, "o": order_np, "i": index}),
            sort_keys=[("k", "ascending"), ("o", "ascending"), ("i", "ascending")],
        )
        sorted_pk = pk.take(sort)
        last = np.ones(n, dtype=bool)
        last[:-1] = pc.not_equal(sorted_pk[:-1], sorted_pk[1:]).to_numpy(zero_copy_only=False)
        keep = sort.filter(pa.array(last))
        pk, order_np = pk.take(keep), order_np[keep.to_numpy()]
        keys, features = keys.take(keep), features.take(keep)
    return PreparedRows(pk=pk, order=np.asarray(order_np, dtype=np.int64), keys=keys, features=features)


def prepare_keys(table: OnlineTable, keys: pa.Table | pa.RecordBatch) -> list[str | None]:
    """The encoded key of every row of ``keys`` (None where a key component is null)."""
    if isinstance(keys, pa.RecordBatch):
        keys = pa.Table.from_batches([keys])
    if not isinstance(keys, pa.Table):
        raise OnlineStoreError(
            f"Online table {table.name!r}: read_batch needs the keys as a pyarrow.Table with columns "
            f"{table.primary_keys}, got {type(keys).__name__}."
        )
    if len(table.primary_keys) == 1 and keys.num_rows <= 256:
        # Small lookups (the serving path): Python's text of an int or a str is the canonical text,
        # and skipping Arrow's cast kernels saves most of the per-call cost.
        key = table.primary_keys[0]
        if key in keys.column_names:
            col = keys.column(key)
            t = col.type
            if t == table.schema.field(key).type and (pa.types.is_integer(t) or pa.types.is_string(t)):
                values = col.to_pylist()
                return values if pa.types.is_string(t) else [None if v is None else str(v) for v in values]
    return encode_keys(table.name, table.schema, table.primary_keys, keys).to_pylist()


@dataclass(frozen=True)
class ReadPlan:
    """The validated output of a read: feature names, their schema and types (cached per table)."""

    names: list[str]
    schema: pa.Schema
    types: list[pa.DataType]
    #: positions in ``names`` grouped by type, so decoders make one Arrow call per type
    groups: list[tuple[pa.DataType, list[int]]]


def read_plan(table: OnlineTable, features: list[str] | None) -> ReadPlan:
    """The features a read returns, validated against the table (cached on the table)."""
    key = None if features is None else tuple(features)
    plan = table._plans.get(key)
    if plan is not None:
        return plan
    if features is not None:
        known = set(table.features)
        unknown = [f for f in features if f not in known]
        if unknown:
            raise OnlineStoreError(
                f"Online table {table.name!r} has no feature(s) {unknown}; its features are {table.features}."
            )
    schema = table.feature_schema(list(features) if features is not None else None)
    groups: dict[pa.DataType, list[int]] = {}
    for i, t in enumerate(schema.types):
        groups.setdefault(t, []).append(i)
    plan = ReadPlan(list(schema.names), schema, list(schema.types), list(groups.items()))
    if len(table._plans) < 256:
        table._plans[key] = plan
    return plan


def typed_table(table: OnlineTable, features: list[str], arrays: dict[str, pa.Array], n: int) -> pa.Table:
    """A result table of ``features`` typed per the table schema from decoded ``arrays``.

    A feature absent from ``arrays`` (never stored, e.g. added after the last publish) is all null;
    one stored with another type is cast to the schema's type.
    """
    plan = read_plan(table, features)
    columns = [arrays.get(name) for name in plan.names]
    if not any(c is None for c in columns):
        out = pa.Table.from_arrays(columns, names=plan.names)
        if out.schema.equals(plan.schema):
            return out
    fixed = []
    for name, target, arr in zip(plan.names, plan.types, columns, strict=True):
        if arr is None:
            arr = pa.nulls(n, target)
        elif arr.type != target:
            try:
                arr = arr.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise OnlineStoreError(
                    f"Online table {table.name!r}: feature {name!r} is stored as {arr.type} and cannot "
                    f"be read as {target}: {exc}. Republish the table in overwrite mode."
                ) from exc
        fixed.append(arr)
    return pa.Table.from_arrays(fixed, schema=plan.schema)


# ----------------------------------------------------------------------------------------------
# value batches: what read_values returns (numbers as numpy matrices, the rest as Arrow arrays)


#: Arrow types a :class:`ValueBatch` holds as numpy blocks (fixed width, same values in numpy).
_BLOCK_TYPES = {
    pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(),
    pa.float32(), pa.float64(), pa.bool_(),
}


def is_block_type(t: pa.DataType) -> bool:
    """Whether :class:`ValueBatch` holds a feature of type ``t`` in a numpy block."""
    return t in _BLOCK_TYPES


@dataclass(slots=True)
class ValueBlock:
    """Features of one numeric (or boolean) type: a ``(features, rows)`` matrix and its nulls.

    ``values`` has the type's numpy dtype (``float64`` for ``pa.float64()``); a null value's slot
    holds an arbitrary number (zero in practice) and is flagged in ``nulls``, ``None`` when no
    value of the block is null.
    """

    type: pa.DataType
    names: tuple[str, ...]
    values: np.ndarray
    nulls: np.ndarray | None


@dataclass(slots=True)
class ValueBatch:
    """What :meth:`OnlineStore.read_values` returns: the features of ``n`` keys, in the keys' order.

    Numeric and boolean features come in :class:`ValueBlock` s (one numpy matrix per type, no
    per-column objects); every other feature is a typed Arrow array in ``arrays``. ``found`` says
    which keys were in the store. :meth:`to_arrow` gives the features as one Arrow table.
    """

    names: list[str]
    n: int
    found: np.ndarray
    blocks: list[ValueBlock]
    arrays: dict[str, pa.Array]

    def array(self, name: str) -> pa.Array:
        """One feature as an Arrow array."""
        if name in self.arrays:
            return self.arrays[name]
        for block in self.blocks:
            if name in block.names:
                j = block.names.index(name)
                mask = block.nulls[j] if block.nulls is not None and block.nulls[j].any() else None
                return pa.array(block.values[j], type=block.type, mask=mask)
        raise KeyError(name)

    def to_arrow(self, table: OnlineTable) -> pa.Table:
        """The features as the typed Arrow table ``read_batch`` returns."""
        arrays = dict(self.arrays)
        n = self.n
        for block in self.blocks:
            # one Arrow array per block, sliced per feature (a pa.array per feature costs ~3x more)
            mask = block.nulls.ravel() if block.nulls is not None and block.nulls.any() else None
            flat = pa.array(block.values.ravel(), type=block.type, mask=mask)
            for j, name in enumerate(block.names):
                arrays[name] = flat.slice(j * n, n)
        return typed_table(table, self.names, arrays, n)

    @classmethod
    def from_arrow(cls, features: pa.Table, found: np.ndarray) -> ValueBatch:
        """A batch holding the columns of a ``read_batch`` result (numbers moved into blocks)."""
        n = len(found)
        blocks: list[ValueBlock] = []
        arrays: dict[str, pa.Array] = {}
        for name, col in zip(features.column_names, features.columns, strict=True):
            arr = col.combine_chunks()
            if not is_block_type(arr.type):
                arrays[name] = arr
                continue
            nulls = arr.is_null().to_numpy(zero_copy_only=False).reshape(1, n) if arr.null_count else None
            filled = arr.fill_null(False if pa.types.is_boolean(arr.type) else 0) if arr.null_count else arr
            values = filled.to_numpy(zero_copy_only=False).reshape(1, n)
            blocks.append(ValueBlock(arr.type, (name,), values, nulls))
        return cls(list(features.column_names), n, np.asarray(found, dtype=bool), blocks, arrays)
