"""Value and key encodings shared by the online stores.

Three encodings live here, each exact for every supported type:

* **Entity keys** (:func:`encode_keys`): the primary-key values of a row become one deterministic
  string, the ``pk`` that every store indexes. One key column: the value's canonical text (below).
  Several key columns: each component's text with ``\\`` written as ``\\\\`` and ``#`` as ``\\#``,
  joined with ``#``. So ``(42, "a#b")`` is ``42#a\\#b``.
* **Canonical text** (:func:`to_text` / :func:`from_text`): Arrow's own casts to and from strings.
  Integers and decimals in plain decimal (``-1E-10`` for tiny decimals), floats as the shortest text
  that parses back to the same bits (``0.1``, ``1e+300``, ``nan``, ``inf``, ``-inf``, ``-0``), booleans
  ``true``/``false``, timestamps ``2024-03-01 12:00:00.123456Z`` (the unit's digits, ``Z`` when the
  type has a time zone of UTC, the offset otherwise), dates ``2024-03-01``. Redis stores values in
  this form; DynamoDB stores numbers in it as ``N`` and the rest as ``S``.
* **Packed rows** (:class:`RowCodec`): one fixed-width binary record per row plus a blob of the
  variable-width values, decoded for a whole batch at once with numpy. The SQLite store uses it.

:func:`check_supported` lists the supported types and rejects the rest with a message that says
how to fix the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from larder.errors import OnlineStoreError

#: Separator of composite-key components and its escape character.
KEY_SEPARATOR = "#"
KEY_ESCAPE = "\\"

SUPPORTED_TYPES = (
    "int8/16/32/64, uint8/16/32/64, float32, float64, bool, string, large_string, binary, "
    "large_binary, timestamp (any unit and time zone), date32, date64, decimal128, decimal256, "
    "null, and dictionaries of these"
)


def storage_type(t: pa.DataType) -> pa.DataType:
    """The type a value is stored as: dictionaries are stored as their values."""
    return t.value_type if pa.types.is_dictionary(t) else t


def kind_of(t: pa.DataType) -> str | None:
    """The encoding family of an Arrow type, or None when online stores cannot hold it."""
    t = storage_type(t)
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_float32(t) or pa.types.is_float64(t):
        return "float"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date32(t) or pa.types.is_date64(t):
        return "date"
    if pa.types.is_decimal128(t) or pa.types.is_decimal256(t):
        return "decimal"
    if pa.types.is_null(t):
        return "null"
    return None


KEY_KINDS = frozenset({"int", "string", "bool", "timestamp", "date", "decimal", "float"})


def check_supported(
    name: str, schema: pa.Schema, primary_keys: Sequence[str], reserved: Sequence[str] = ()
) -> None:
    """Raise :class:`OnlineStoreError` when a column of ``schema`` cannot be stored online."""
    for key in primary_keys:
        if key not in schema.names:
            raise OnlineStoreError(
                f"Online table {name!r}: primary key {key!r} is not a column of its schema "
                f"{schema.names}. Pass the key columns in the table's schema."
            )
    for field in schema:
        kind = kind_of(field.type)
        if kind is None:
            raise OnlineStoreError(
                f"Online table {name!r}: column {field.name!r} has type {field.type}, which online "
                f"stores cannot hold. Supported types: {SUPPORTED_TYPES}. Cast or flatten the column "
                "(for example to float64, string or separate columns) before publishing."
            )
        if field.name in primary_keys and kind not in KEY_KINDS:
            raise OnlineStoreError(
                f"Online table {name!r}: primary key {field.name!r} has type {field.type}; keys must be "
                "integers, strings, booleans, dates, timestamps, decimals or floats."
            )
        if field.name in reserved:
            raise OnlineStoreError(
                f"Online table {name!r}: column {field.name!r} has a name this online store reserves "
                f"for its own bookkeeping ({', '.join(reserved)}). Rename the column."
            )


# ----------------------------------------------------------------------------------------------
# canonical text


def to_text(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Canonical text of each value (nulls stay null). Binary values pass through unchanged."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return arr
    if pa.types.is_large_string(t):
        return arr.cast(pa.string())
    if pa.types.is_large_binary(t):
        return arr.cast(pa.binary())
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.string())
    return arr.cast(pa.string())


def from_text(values: pa.Array, t: pa.DataType) -> pa.Array:
    """Inverse of :func:`to_text`: ``values`` (string or binary) parsed as type ``t``."""
    st = storage_type(t)
    if pa.types.is_null(st):
        out = pa.nulls(len(values))
    elif pa.types.is_binary(st) or pa.types.is_large_binary(st):
        out = values.cast(st)
    else:
        if pa.types.is_binary(values.type):
            values = values.cast(pa.string())
        out = values if st == pa.string() else values.cast(st)
    return out if st == t else out.cast(t)


# ----------------------------------------------------------------------------------------------
# keys


def encode_keys(name: str, schema: pa.Schema, primary_keys: Sequence[str], keys: pa.Table) -> pa.Array:
    """The ``pk`` string of each row of ``keys`` (null where any key component is null).

    Key columns are first cast to the table schema's types, so ``int32`` 42 and ``int64`` 42 give
    the same ``pk``.

    >>> import pyarrow as pa
    >>> schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    >>> encode_keys("t", schema, ["a", "b"], pa.table({"a": [42], "b": ["x#y"]})).to_pylist()
    ['42#x\\\\#y']
    """
    missing = [k for k in primary_keys if k not in keys.column_names]
    if missing:
        raise OnlineStoreError(
            f"Online table {name!r}: the keys lack primary-key column(s) {missing}; pass a table "
            f"with columns {list(primary_keys)}."
        )
    parts = []
    for key in primary_keys:
        target = schema.field(key).type
        col = keys.column(key)
        if col.type != target:
            try:
                col = col.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise OnlineStoreError(
                    f"Online table {name!r}: key column {key!r} has type {col.type} and cannot be "
                    f"converted to the table's key type {target}: {exc}. Pass keys of type {target}."
                ) from exc
        parts.append(to_text(col))
    if len(parts) == 1:
        return parts[0]
    escaped = []
    for part in parts:
        part = pc.replace_substring(part, KEY_ESCAPE, KEY_ESCAPE + KEY_ESCAPE)
        escaped.append(pc.replace_substring(part, KEY_SEPARATOR, KEY_ESCAPE + KEY_SEPARATOR))
    return pc.binary_join_element_wise(*escaped, KEY_SEPARATOR)


def decode_key(pk: str, n_parts: int) -> list[str]:
    """Split an encoded composite key into the text of its components (for messages and tests)."""
    if n_parts == 1:
        return [pk]
    out, cur, i = [], [], 0
    while i < len(pk):
        ch = pk[i]
        if ch == KEY_ESCAPE and i + 1 < len(pk):
            cur.append(pk[i + 1])
            i += 2
            continue
        if ch == KEY_SEPARATOR:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


# ----------------------------------------------------------------------------------------------
# packed rows


def _fixed_width(t: pa.DataType) -> int | None:
    """Bytes per value in a packed row, None for variable-width types."""
    kind = kind_of(t)
    if kind in ("string", "binary"):
        return None
    if kind == "null":
        return 0
    if kind == "bool":
        return 1
    return t.bit_width // 8


def _raw_values(arr: pa.Array, width: int) -> np.ndarray:
    """The values of a fixed-width array as an (n, width) uint8 matrix (garbage at nulls)."""
    n = len(arr)
    if pa.types.is_boolean(arr.type):
        return arr.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8).reshape(n, 1)
    buf = arr.buffers()[1]
    flat = np.frombuffer(buf, np.uint8, count=(arr.offset + n) * width)
    return flat[arr.offset * width :].reshape(n, width)


@dataclass(frozen=True)
class TypeGroup:
    """The features of one fixed-width type in a packed record: their values are ``width`` bytes each,
    side by side from byte ``start``."""

    type: pa.DataType
    width: int
    start: int
    names: tuple[str, ...]
    index: tuple[int, ...]  # feature positions (for the null flags)


class RowCodec:
    """Packs feature rows into fixed-width records plus a blob of variable-width values.

    A record is: one byte ``1`` (the row exists; the all-null record used for missing keys has
    ``0``), one null flag byte per feature in schema order, then the fixed-width values grouped by
    type (little-endian, the type's natural width, booleans one byte, nulls zero), then one
    little-endian ``uint32`` length per variable-width (string/binary) feature. The variable blob is
    those values' bytes concatenated in schema order.

    >>> import pyarrow as pa
    >>> codec = RowCodec(pa.schema([("x", pa.float64()), ("s", pa.string())]))
    >>> fixed, var = codec.encode(pa.table({"x": [1.5, None], "s": ["hi", "é"]}))
    >>> codec.decode(b"".join(fixed), 2, var, ["s", "x"])["x"].to_pylist()
    [1.5, None]
    """

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = pa.schema([pa.field(f.name, storage_type(f.type)) for f in schema])
        self.names = tuple(self.schema.names)
        self.position = {name: i for i, name in enumerate(self.names)}
        by_type: dict[pa.DataType, list[int]] = {}
        self.var_names: list[str] = []
        self.null_names: list[str] = []
        for i, field in enumerate(self.schema):
            width = _fixed_width(field.type)
            if width is None:
                self.var_names.append(field.name)
            elif width == 0:
                self.null_names.append(field.name)
            else:
                by_type.setdefault(field.type, []).append(i)
        offset = 1 + len(self.names)
        self.groups: list[TypeGroup] = []
        for t, idx in by_type.items():
            width = _fixed_width(t) or 0
            self.groups.append(TypeGroup(t, width, offset, tuple(self.names[i] for i in idx), tuple(idx)))
            offset += width * len(idx)
        self.var_start = offset
        self.width = offset + 4 * len(self.var_names)
        empty = np.zeros(self.width, np.uint8)
        empty[1 : 1 + len(self.names)] = 1
        self.missing_row = empty.tobytes()

    # -- encoding ---------------------------------------------------------------------------

    def encode(self, features: pa.Table) -> tuple[list[bytes], list[bytes] | None]:
        """Packed records and variable blobs (None when the schema has no variable-width column)."""
        n = features.num_rows
        mat = np.zeros((n, self.width), np.uint8)
        mat[:, 0] = 1
        cols: dict[str, pa.Array] = {}
        for i, name in enumerate(self.names):
            col = features.column(name).combine_chunks()
            if col.type != self.schema.field(name).type:
                col = col.cast(self.schema.field(name).type)
            cols[name] = col
            if col.null_count:
                mat[:, 1 + i] = np.logical_not(col.is_valid().to_numpy(zero_copy_only=False))
        for g in self.groups:
            for c, name in enumerate(g.names):
                col = cols[name]
                vals = _raw_values(col, g.width)
                start = g.start + c * g.width
                mat[:, start : start + g.width] = vals
                if col.null_count:
                    mat[mat[:, 1 + g.index[c]] == 1, start : start + g.width] = 0
        var: list[bytes] | None = None
        if self.var_names:
            lengths = np.zeros((n, len(self.var_names)), np.uint32)
            arrays = []
            for v, name in enumerate(self.var_names):
                col = cols[name].cast(pa.large_binary()).fill_null(b"")
                offsets = np.frombuffer(col.buffers()[1], np.int64, count=col.offset + n + 1)
                offsets = offsets[col.offset :]
                lengths[:, v] = np.diff(offsets)
                arrays.append(col)
            mat[:, self.var_start :] = lengths.view(np.uint8).reshape(n, 4 * len(self.var_names))
            if len(arrays) == 1:
                inter = arrays[0]
            else:
                order = np.arange(n * len(arrays)).reshape(len(arrays), n).T.ravel()
                inter = pa.concat_arrays(arrays).take(pa.array(order))
            bounds = np.concatenate([[0], np.cumsum(lengths.sum(axis=1, dtype=np.int64))])
            data = inter.buffers()[2]
            first = int(np.frombuffer(inter.buffers()[1], np.int64, count=inter.offset + 1)[-1])
            blob = data.to_pybytes()[first : first + int(bounds[-1])] if data is not None else b""
            var = [blob[bounds[i] : bounds[i + 1]] for i in range(n)]
        flat = mat.tobytes()
        w = self.width
        return [flat[i * w : (i + 1) * w] for i in range(n)], var

    # -- decoding ---------------------------------------------------------------------------

    def decode(
        self,
        fixed: bytes,
        n: int,
        var: Sequence[bytes | None] | None,
        names: Sequence[str],
    ) -> dict[str, pa.Array]:
        """Decode ``n`` concatenated records (and their variable blobs) into one array per name."""
        rows = np.frombuffer(fixed, np.uint8).reshape(n, self.width)
        nulls = rows[:, 1 : 1 + len(self.names)]
        wanted = set(names)
        out: dict[str, pa.Array] = {}
        for g in self.groups:
            sel = (
                [c for c, name in enumerate(g.names) if name in wanted]
                if len(wanted) != len(self.names)
                else list(range(len(g.names)))
            )
            if not sel:
                continue
            m = len(sel)
            block = rows[:, g.start : g.start + g.width * len(g.names)].reshape(n, len(g.names), g.width)
            if m != len(g.names):
                block = block[:, sel, :]
            data = np.ascontiguousarray(block.transpose(1, 0, 2))
            if m == len(g.names) and g.index == tuple(range(g.index[0], g.index[0] + m)):
                gnulls = nulls[:, g.index[0] : g.index[0] + m]  # a view, no copy
            else:
                gnulls = nulls[:, [g.index[c] for c in sel]]
            validity = None
            if gnulls.any():
                validity = pa.py_buffer(np.packbits(gnulls.T.ravel() == 0, bitorder="little"))
            if pa.types.is_boolean(g.type):
                data = np.packbits(data.ravel() != 0, bitorder="little")
            arr = pa.Array.from_buffers(g.type, m * n, [validity, pa.py_buffer(data)])
            for j, c in enumerate(sel):
                out[g.names[c]] = arr.slice(j * n, n)
        for name in self.null_names:
            if name in wanted:
                out[name] = pa.nulls(n)
        var_wanted = [v for v, name in enumerate(self.var_names) if name in wanted]
        if var_wanted:
            nv = len(self.var_names)
            lengths = np.ascontiguousarray(rows[:, self.var_start :]).view("<u4").reshape(n, nv)
            offsets = np.zeros(n * nv + 1, np.int64)
            np.cumsum(lengths.ravel(), out=offsets[1:])
            blobs = b"".join(b or b"" for b in var) if var is not None else b""
            every = pa.Array.from_buffers(
                pa.large_binary(), n * nv, [None, pa.py_buffer(offsets), pa.py_buffer(blobs)]
            )
            for v in var_wanted:
                name = self.var_names[v]
                col = every if nv == 1 else every.take(pa.array(np.arange(v, n * nv, nv)))
                col_nulls = nulls[:, self.position[name]]
                if col_nulls.any():
                    validity = pa.py_buffer(np.packbits(col_nulls == 0, bitorder="little"))
                    buffers = col.buffers()
                    col = pa.Array.from_buffers(
                        pa.large_binary(), n, [validity, buffers[1], buffers[2]], offset=col.offset
                    )
                out[name] = col.cast(self.schema.field(name).type)
        return out
