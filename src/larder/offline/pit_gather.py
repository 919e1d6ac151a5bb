"""Streaming reads of a ``pyarrow.dataset`` source and the gather of feature values by position
(used by :mod:`larder.offline.pit`).

A point-in-time join reads a source twice: once for its keys and times (to match), once for the
winning rows' feature values. Both reads must see the rows in the same order, and neither should
hold more than a few batches of the source at once:

* local parquet files (a Delta table's active files) are read file by file with
  ``pyarrow.parquet.ParquetFile.iter_batches`` on a thread of their own: a column chunk is decoded a
  batch at a time (the dataset scanner decodes a whole row group first: a Delta file's row groups hold
  a million rows, 8 MB per float column). A file whose columns differ from the dataset's schema (a
  column added or widened by a later write, a partition column) and a filtered dataset are read
  through the dataset scanner, which fills, casts and filters them;
* the winning rows' values (of a dataset or of an in-memory table, batch by batch) are written
  straight into output buffers of the spine's length for fixed-width types (numbers, timestamps,
  dates, durations), so nothing but the output is held; other types (strings, lists, booleans,
  decimals) keep the rows they need from each batch and are put into the spine's order at the end.

Floating-point outputs carry NaN under their null slots (the Arrow value under a null is unspecified,
so this is still the same Arrow array): :func:`float_values` then hands pandas the buffer itself, since
NaN is what pandas makes of a null float anyway.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

# Rows per batch when reading a dataset: 64k rows of a float column are half a megabyte.
_BATCH_ROWS = 1 << 16
_BUFFER_BYTES = 1 << 18
_SERIAL_COLUMNS = 3
_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


def _local_parquet(ds: Any) -> bool:
    return (isinstance(ds, pads.FileSystemDataset) and isinstance(ds.format, pads.ParquetFileFormat)
            and isinstance(ds.filesystem, pafs.LocalFileSystem))


class _End:
    """End of a prefetched stream (carrying the producer's exception, if any)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetched(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """``items``, produced on a thread of their own up to ``depth`` ahead (a parquet read decodes
    without the GIL, so it overlaps the consumer's work). The producer stops when the consumer does."""
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(x: Any) -> bool:
        while not stop.is_set():
            try:
                box.put(x, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for x in items:
                if not put(x):
                    return
            put(_End())
        except BaseException as exc:  # handed to the consumer, raised there
            put(_End(exc))

    worker = threading.Thread(target=produce, name="larder-pit-read", daemon=True)
    worker.start()
    try:
        while True:
            x = box.get()
            if isinstance(x, _End):
                if x.error is not None:
                    raise x.error
                return
            yield x
    finally:
        stop.set()
        worker.join()


def scan_batches(ds: pads.Dataset, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """``columns`` of every row of ``ds`` in the dataset's order (fragment by fragment, row groups in order)."""
    if _local_parquet(ds):
        yield from prefetched(_local_batches(ds, columns))
    else:
        yield from ds.to_batches(columns=columns, batch_readahead=4, fragment_readahead=2)


def _local_batches(ds: pads.FileSystemDataset, columns: list[str]) -> Iterator[pa.RecordBatch]:
    # Pre-buffering reads whole column chunks ahead: right for object stores, but on a local disk it
    # only costs memory. A buffered stream reads a column chunk a megabyte at a time.
    scan_options = pads.ParquetFragmentScanOptions(pre_buffer=False, use_buffered_stream=True,
                                                   buffer_size=_BUFFER_BYTES)
    if getattr(ds, "_scan_options", None):  # a filtered dataset: only the scanner applies the filter
        yield from ds.to_batches(columns=columns, batch_size=_BATCH_ROWS, batch_readahead=2, fragment_readahead=1,
                                 fragment_scan_options=scan_options)
        return
    schema = pa.schema([ds.schema.field(c) for c in columns])
    for frag in ds.get_fragments():
        with ds.filesystem.open_input_file(frag.path) as fh:
            pf = pq.ParquetFile(fh, pre_buffer=False, buffer_size=_BUFFER_BYTES)
            have = pf.schema_arrow
            if all(have.get_field_index(f.name) >= 0 and have.field(f.name).type == f.type for f in schema):
                groups = [rg.id for rg in frag.row_groups]
                if groups:
                    # columns decode in parallel when there are several wide ones; two are faster alone
                    for b in pf.iter_batches(batch_size=_BATCH_ROWS, row_groups=groups, columns=columns,
                                             use_threads=len(columns) > _SERIAL_COLUMNS):
                        yield pa.RecordBatch.from_arrays([b.column(c) for c in columns], schema=schema)
                continue
        # columns missing from this file or of another type: the scanner fills and casts them
        for b in frag.to_batches(schema=ds.schema, columns=columns, batch_size=_BATCH_ROWS, batch_readahead=2,
                                 fragment_scan_options=scan_options):
            yield pa.RecordBatch.from_arrays([b.column(c).cast(f.type) for c, f in zip(columns, schema, strict=True)],
                                             schema=schema)


def _fixed_width(t: pa.DataType) -> int | None:
    """Bit width of a type whose values are one fixed-width slot each (``None`` otherwise)."""
    if pa.types.is_boolean(t) or pa.types.is_decimal(t) or pa.types.is_fixed_size_binary(t):
        return None
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)):
        return None
    try:
        width = t.bit_width
    except ValueError:
        return None
    return width if width in _UINT else None


class _Fixed:
    """One output column of a fixed-width type, written in place. Its validity is the spine rows'
    ``matched`` mask (shared, not copied) until a matched source value is null."""

    def __init__(self, typ: pa.DataType, matched: np.ndarray) -> None:
        self.type = typ
        self.width = _fixed_width(typ)
        dtype = _UINT[self.width]  # type: ignore[index]
        n = len(matched)
        self.nan = np.array(np.nan, dtype=typ.to_pandas_dtype()).view(dtype) if pa.types.is_floating(typ) else None
        self.data = np.zeros(n, dtype=dtype) if self.nan is None else np.full(n, self.nan, dtype=dtype)
        self.matched = matched
        self.valid: np.ndarray | None = None

    def put(self, arr: pa.Array, local: np.ndarray, dest: np.ndarray) -> None:
        if arr.type != self.type:
            arr = arr.cast(self.type)
        values = np.frombuffer(arr.buffers()[1], dtype=self.data.dtype)[arr.offset:arr.offset + len(arr)]
        self.data[dest] = values[local]
        if arr.null_count:
            ok = pc.is_valid(arr).to_numpy(zero_copy_only=False)[local]
            if not ok.all():
                if self.valid is None:
                    self.valid = self.matched.copy()
                lost = dest[~ok]
                self.valid[lost] = False
                if self.nan is not None:
                    self.data[lost] = self.nan

    def finish(self, bitmaps: dict[int, tuple[pa.Buffer | None, int]]) -> pa.Array:
        """The Arrow array; ``bitmaps`` caches the packed ``matched`` mask shared by the columns."""
        if self.valid is None:
            key = id(self.matched)
            if key not in bitmaps:
                bitmaps[key] = _bitmap(self.matched)
            bitmap, nulls = bitmaps[key]
        else:
            bitmap, nulls = _bitmap(self.valid)
            self.valid = None
        return pa.Array.from_buffers(self.type, len(self.data), [bitmap, pa.py_buffer(self.data)], null_count=nulls)


def _bitmap(valid: np.ndarray) -> tuple[pa.Buffer | None, int]:
    nulls = len(valid) - int(np.count_nonzero(valid))
    return (pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None), nulls


class _Taken:
    """One output column of any other type: the rows each batch gives, put in order at the end."""

    def __init__(self, typ: pa.DataType) -> None:
        self.type = typ
        self.parts: list[pa.Array] = []

    def put(self, arr: pa.Array, local: np.ndarray, dest: np.ndarray) -> None:
        if arr.type != self.type:
            arr = arr.cast(self.type)
        self.parts.append(arr.take(pa.array(local)))

    def finish(self, slot: pa.Array) -> pa.Array:
        col = pa.concat_arrays([*self.parts, pa.nulls(1, self.type)])
        self.parts = []
        return col.take(slot)


def gather_streaming(batches: Iterable[pa.RecordBatch], types: list[pa.DataType],
                     idx: np.ndarray) -> tuple[list[pa.Array], int]:
    """The values at source row positions ``idx`` (``-1``: null), in the order of ``idx``, of each
    column of ``batches`` (the source's rows in order, columns of ``types``); also the number of
    source rows read."""
    n = len(idx)
    small = np.int32 if n < 2**31 - 1 else np.int64
    matched = idx >= 0
    dest = np.flatnonzero(matched).astype(small)
    pos = idx[dest]
    order = np.argsort(pos, kind="stable")  # spine rows by source position: each batch's share is a slice
    pos = pos[order].astype(small if len(pos) == 0 or pos[order[-1]] < 2**31 - 1 else np.int64)
    dest = dest[order]
    del order
    outs: list[Any] = [_Fixed(t, matched) if _fixed_width(t) else _Taken(t) for t in types]
    offset = 0
    top = np.iinfo(pos.dtype).max  # bounds in pos's own type: numpy would otherwise cast all of pos to search
    for batch in batches:
        size = batch.num_rows
        lo, hi = np.searchsorted(pos, np.array([min(offset, top), min(offset + size, top)], dtype=pos.dtype))
        if hi > lo:
            local = pos[lo:hi] - offset
            for j, out in enumerate(outs):
                out.put(batch.column(j), local, dest[lo:hi])
        offset += size
    slot = None
    if any(isinstance(o, _Taken) for o in outs):  # spine row -> its rank among the taken rows
        ix = np.full(n, len(dest), dtype=np.int64)
        ix[dest] = np.arange(len(dest))
        slot = pa.array(ix)
        del ix
    del pos, dest
    bitmaps: dict[int, tuple[pa.Buffer | None, int]] = {}
    return [o.finish(bitmaps) if isinstance(o, _Fixed) else o.finish(slot) for o in outs], offset


def float_values(arr: pa.Array) -> np.ndarray | None:
    """A float array's values as a read-only numpy view, when every null slot already holds NaN (as
    :func:`gather_streaming` leaves them): what ``to_pandas`` would make, without the copy. ``None``
    for other arrays."""
    if not pa.types.is_floating(arr.type) or pa.types.is_float16(arr.type):
        return None
    dtype = np.dtype(arr.type.to_pandas_dtype())
    values = np.frombuffer(arr.buffers()[1], dtype=dtype)[arr.offset:arr.offset + len(arr)]
    if arr.null_count:
        nulls = pc.is_null(arr).to_numpy(zero_copy_only=False)
        if not np.isnan(values[nulls]).all():
            return None
    return values
