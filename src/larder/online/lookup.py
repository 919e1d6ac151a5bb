"""Online feature assembly: a :class:`~larder.training.FeatureSpec` executed against online stores.

The online interpreter of a feature spec, row for row the same as the offline one
(:func:`larder.training.assemble.assemble_offline` at a time later than every feature row): for
each lookup it reads the caller's keys from the online table the feature table was published to,
then applies the *same* :func:`~larder.training.assemble.apply_defaults` (feature types, and the
defaults where a key was not found) and :func:`~larder.training.assemble.apply_functions` as the
offline path. The result has exactly the caller's rows, in order, with the caller's index: the
caller's columns, then the features (minus ``exclude_columns``).

Online semantics, where they differ from a point-in-time join:

* A lookup returns the key's **latest published** row. The caller's timestamp lookup key column is
  optional; when present it anchors the ``lookback_window`` (else "now" does): a row older than
  ``reference time - lookback_window`` counts as not found. The point-in-time upper bound (row time
  ``<=`` request time) is not applied: the online store only holds the latest row.
* Missing keys (and null keys) get the lookup's default values. Where an output has no default,
  ``on_missing="null"`` leaves it null and ``on_missing="error"`` raises
  :class:`~larder.errors.MissingKeysError` naming the keys.
* ``found`` flags say, per lookup and row, whether the key was in the store.

:class:`OnlineFeatureAssembler` needs no catalog: give it the spec and, per feature table, where it
is published (a store spec plus the online table's keys, timestamp key and Arrow schema, as
:meth:`OnlineFeatureAssembler.stores_info` returns and a publication records). A model can carry that
mapping and assemble its own features on a serving host. :class:`OnlineLookupService` builds
assemblers from the catalog's publication records for ``FeatureEngineeringClient``.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from larder.config import resolve_root
from larder.errors import FeatureLookupError, FeatureSpecError, FunctionError, MissingKeysError
from larder.names import parse_name
from larder.online import lean
from larder.online.lean import LEAN_MAX_ROWS, LeanPlan, Source, frame_at, frame_column, pandas_values
from larder.online.publish import Publication, Publisher
from larder.online.stores import StoreCache
from larder.online.stores.base import OnlineTable, online_table_from_info, online_table_info
from larder.online.stores.specs import parse_spec, redacted_spec
from larder.training.spec import FeatureSpec, FunctionStep

if TYPE_CHECKING:
    from larder.training.spec import LookupStep

OnMissing = Literal["null", "error"]
Output = Literal["pandas", "dict", "arrow"]
_OUTPUTS = ("pandas", "dict", "arrow")
FOUND_PREFIX = "_found_"
#: Seconds a client trusts its cached view of the catalog's publications and named specs.
CATALOG_REFRESH_S = 30.0


def found_labels(spec: FeatureSpec) -> list[str]:
    """A label per lookup of ``spec``, used for found flags: the table's short name, made unique
    (``houses``, ``houses_2``; the schema-qualified name when two schemas share a short name)."""
    shorts = [parse_name(s.table).name for s in spec.lookups]
    labels: list[str] = []
    for step, short in zip(spec.lookups, shorts, strict=True):
        base = short
        if shorts.count(short) > 1 and len({s.table for s in spec.lookups if parse_name(s.table).name == short}) > 1:
            qn = parse_name(step.table)
            base = f"{qn.catalog}_{qn.schema}_{qn.name}"
        label, n = base, 1
        while label in labels:
            n += 1
            label = f"{base}_{n}"
        labels.append(label)
    return labels


def _location(value: Any, table: str) -> tuple[Any, OnlineTable | None]:
    """(store spec, online table or None) from the forms a ``stores`` mapping value may take."""
    if isinstance(value, Publication):
        return value.spec(), value.online_table
    if isinstance(value, tuple) and len(value) == 2:
        spec, online = value
        if isinstance(online, Mapping):
            online = online_table_from_info(dict(online))
        return parse_spec(spec), online
    if isinstance(value, Mapping) and "store" in value:
        online = value.get("online_table")
        if isinstance(online, Mapping):
            online = online_table_from_info(dict(online))
        return parse_spec(value["store"]), online
    try:
        return parse_spec(value), None
    except Exception as exc:
        raise FeatureSpecError(
            f"stores[{table!r}] must be a store spec, a (spec, OnlineTable) pair, a mapping "
            "{'store': spec, 'online_table': info} or a Publication; got " f"{type(value).__name__}."
        ) from exc


def _plan(step: LookupStep, read: list[str]) -> tuple[tuple[int, str, pa.DataType, Any], ...]:
    types = step.output_types
    return tuple((read.index(f), o, types[o], step.default_values.get(o))
                 for f, o in zip(step.features, step.output_names, strict=True))


def _table_from_step(step: LookupStep) -> OnlineTable:
    """The online table a lookup step implies (its keys and features with the pinned types)."""
    from larder.training.spec import parse_arrow_type

    fields = [pa.field(k, parse_arrow_type(t)) for k, t in zip(step.table_keys, step.key_types, strict=True)]
    fields += [pa.field(f, parse_arrow_type(t)) for f, t in zip(step.features, step.feature_types, strict=True)]
    return OnlineTable(name=step.table, primary_keys=list(step.table_keys), timestamp_key=None,
                       schema=pa.schema(fields))


class OnlineFeatureAssembler:
    """Assembles a feature spec's features for a frame of keys from online stores; no catalog needed.

    Parameters
    ----------
    spec:
        The :class:`~larder.training.FeatureSpec` to execute.
    stores:
        ``{feature table full name: location}`` for every table the spec looks up. A location is a
        :class:`~larder.online.publish.Publication`, a mapping ``{"store": spec, "online_table": info}``
        (what :meth:`stores_info` returns, JSON-able), a ``(spec, OnlineTable)`` pair, or a bare store spec
        (the online table is then taken from the spec's lookup: its keys and features, pinned types).
        A store spec is a spec object or a mapping such as ``{"type": "redis", "url": ...}``.
    root:
        Directory for a SQLite spec without ``path`` (``<root>/online.db``); default: as for the client,
        ``$LARDER_ROOT`` else ``./.larder``.
    on_missing:
        ``"error"`` (default): a key not found in the store for a lookup whose outputs lack defaults
        raises :class:`~larder.errors.MissingKeysError` naming the keys. ``"null"``: such outputs are null.
    store_cache:
        Share store clients with other assemblers (the client passes its own); by default the assembler
        opens its own and :meth:`close` closes them.

    Examples
    --------
    >>> asm = OnlineFeatureAssembler(spec, {"main.default.houses": {"store": {"type": "sqlite"}}},
    ...                              root="/srv/larder")                      # doctest: +SKIP
    >>> asm.assemble(pd.DataFrame({"Id": [1, 2]}), include_found=True)       # doctest: +SKIP
    """

    def __init__(self, spec: FeatureSpec, stores: Mapping[str, Any], *, root: str | Path | None = None,
                 on_missing: OnMissing = "error", store_cache: StoreCache | None = None) -> None:
        from larder.training.resolve import describe_step

        if on_missing not in ("error", "null"):
            raise FeatureLookupError(f"on_missing must be 'error' or 'null', got {on_missing!r}.")
        self.spec = spec
        self.on_missing: OnMissing = on_missing
        self._own_cache = store_cache is None
        self._cache = store_cache or StoreCache(resolve_root(root))
        given = {parse_name(k).full: v for k, v in stores.items()}
        self._sources: list[Source] = []
        self._locations: dict[str, tuple[Any, OnlineTable]] = {}
        try:
            for step, label in zip(spec.lookups, found_labels(spec), strict=True):
                if step.table not in given:
                    raise FeatureSpecError(
                        f"OnlineFeatureAssembler: no online store given for table {step.table!r}; stores has "
                        f"{sorted(given)}. Add {step.table!r}: {{'store': <spec>, 'online_table': <info>}}."
                    )
                store_spec, online = _location(given[step.table], step.table)
                if online is None:
                    online = _table_from_step(step)
                missing = [f for f in step.features if f not in online.features]
                if missing:
                    raise FeatureSpecError(
                        f"Online table {online.name!r} lacks feature(s) {missing} that the feature spec looks up "
                        f"(it has {online.features}). Publish them: publish_table({step.table!r}) without "
                        "features=, or with these features."
                    )
                read = list(step.features)
                if step.lookback_window is not None and online.timestamp_key and online.timestamp_key not in read:
                    read.append(online.timestamp_key)
                store = self._cache.get(store_spec)
                self._locations[step.table] = (store_spec, online)
                position = spec.steps.index(step)
                self._sources.append(Source(step=step, label=label, store=store, table=online, read=read,
                                             position=position, where=describe_step(position, step),
                                             types=step.output_types, plan=_plan(step, read)))
        except BaseException:
            self.close()
            raise
        self._ts_columns = [s.timestamp_lookup_key for s in spec.lookups if s.timestamp_lookup_key]
        self._functions = [(i, s) for i, s in enumerate(spec.steps) if isinstance(s, FunctionStep)]
        self._key_columns = list(dict.fromkeys(spec.key_columns))
        #: (kind, columns, types) of key frames that passed validation (see _prepare)
        self._validated: set[tuple[Any, ...]] = set()
        self._column_index: dict[tuple[str, ...], pd.Index] = {}
        self._order_cache: dict[tuple[str, ...], list[str]] = {}
        self._last_names: tuple[pd.Index, tuple[Any, ...]] | None = None
        self._lean: LeanPlan | None | bool = False  # built on first use
        #: lookups of at most this many keys take the lean path (0: always the general path)
        self.lean_max_rows = LEAN_MAX_ROWS

    # -- info -----------------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        """The found-flag label of each lookup, in spec order (column ``_found_<label>``)."""
        return [s.label for s in self._sources]

    def stores_info(self) -> dict[str, dict[str, Any]]:
        """``{table: {"store": spec (no credentials), "online_table": info}}``, JSON-able; pass it back as
        ``stores`` to rebuild this assembler elsewhere (e.g. inside a logged model)."""
        return {t: {"store": redacted_spec(s), "online_table": online_table_info(o)}
                for t, (s, o) in self._locations.items()}

    # -- assembly -------------------------------------------------------------------------------
    def _lookup(self, frame: pd.DataFrame) -> tuple[dict[str, pa.Array], dict[str, np.ndarray]]:
        """Key lookups, then the defaults: ``({output: values}, {label: found})``.

        Each output is cast to its feature's type and filled with the lookup's default where the key
        was not found, by the same helper the offline assembly uses (``_fill``)."""
        from larder.training.assemble import _fill, _key_array

        outputs: dict[str, pa.Array] = {}
        found: dict[str, np.ndarray] = {}
        now: datetime | None = None
        key_arrays: dict[tuple[str, str], pa.Array] = {}  # lookups sharing a key column convert it once
        for src in self._sources:
            step = src.step
            arrays = {}
            for j, (c, k) in enumerate(zip(step.lookup_key, step.table_keys, strict=True)):
                arr = key_arrays.get((c, step.key_types[j]))
                if arr is None:
                    arr = key_arrays[(c, step.key_types[j])] = _key_array(frame[c], step, j, where=src.where)
                arrays[k] = arr
            keys = pa.table(arrays)
            values, hit = src.store.read_batch(src.table, keys, src.read)
            hit = np.asarray(hit, dtype=bool)
            if step.lookback_window is not None and src.table.timestamp_key:
                stamp = values.column(src.table.timestamp_key).combine_chunks()
                if step.timestamp_lookup_key and step.timestamp_lookup_key in frame.columns:
                    ref = pa.array(frame[step.timestamp_lookup_key], from_pandas=True)
                    ref = pc.cast(ref, pa.timestamp("us", tz="UTC")) if not pa.types.is_timestamp(ref.type) \
                        or ref.type.tz is None else ref
                    lower = pc.subtract(ref, pa.scalar(step.lookback_window, pa.duration("us")))
                else:
                    now = now or datetime.now(UTC)
                    lower = pa.scalar(now - step.lookback_window, pa.timestamp("us", tz="UTC"))
                fresh = pc.greater_equal(pc.cast(stamp, pa.timestamp("us", tz="UTC")), lower)
                hit &= np.asarray(fresh.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
            found[src.label] = hit
            self._check_missing(frame, src, hit)
            mask = None if hit.all() else pa.array(hit)
            read = values.columns
            for i, out, typ, default in src.plan:
                chunks = read[i]
                arr = chunks.chunk(0) if chunks.num_chunks == 1 else chunks.combine_chunks()
                if not arr.type.equals(typ):
                    arr = arr.cast(typ)  # a feature whose type was widened after the spec was pinned
                if mask is not None:
                    arr = pc.if_else(mask, arr, pa.scalar(None, type=typ))  # stale rows (lookback)
                    arr = _fill(arr, mask, default, typ)
                outputs[out] = arr
        return outputs, found

    def _check_missing(self, frame: pd.DataFrame, src: Source, hit: np.ndarray) -> None:
        if self.on_missing != "error" or hit.all():
            return
        no_default = [o for o in src.step.output_names if src.step.default_values.get(o) is None]
        if not no_default:
            return
        rows = np.flatnonzero(~hit)
        examples = [{c: _plain(frame[c].iloc[r]) for c in src.step.lookup_key} for r in rows[:10]]
        more = f" (and {len(rows) - 10} more)" if len(rows) > 10 else ""
        raise MissingKeysError(
            f"{len(rows)} key(s) not found in online table {src.table.name!r}: {examples}{more}; the lookup "
            f"has no default for {no_default}. Publish those keys, give default_values in the FeatureLookup, "
            "or assemble with on_missing='null'."
        )

    def _prepare(self, keys: Any) -> pd.DataFrame:
        """``keys`` as a validated pandas frame. Validation depends only on the column names and types
        (the one value-dependent check, whole numbers in a float key column, runs on every lookup), so
        a shape seen before is not validated again."""
        from larder.training.assemble import as_pandas

        signature: tuple[Any, ...] | None = None
        if isinstance(keys, Mapping) or (isinstance(keys, list) and all(isinstance(r, Mapping) for r in keys)):
            fast = _python_keys_frame(keys, self._labels)
            keys = fast if fast is not None else _arrow_keys(keys)
        if isinstance(keys, (pa.Table, pa.RecordBatch)) and len(set(keys.column_names)) == keys.num_columns:
            # a small Arrow table (the feature server's keys) converts much faster column by column
            signature = ("arrow", tuple(keys.column_names), tuple(str(t) for t in keys.schema.types))
            names = tuple(keys.column_names)
            keys = _block_frame({name: pandas_values(col.combine_chunks() if isinstance(col, pa.ChunkedArray)
                                                      else col)
                                 for name, col in zip(names, keys.columns, strict=True)},
                                pd.RangeIndex(keys.num_rows), self._labels(names))
        elif isinstance(keys, pd.DataFrame):
            dtypes = _dtypes(keys)
            if not any(t.kind == "O" for t in dtypes):  # object columns may mix types from call to call
                signature = ("pandas", self._names(keys.columns), dtypes)
        if signature is not None:
            try:
                if signature in self._validated:
                    return keys  # type: ignore[no-any-return]
            except TypeError:  # an unhashable extension dtype: validate every time
                signature = None
        return self._validate(as_pandas(keys, what="keys_df"), signature)

    def _validate(self, frame: pd.DataFrame, signature: tuple[Any, ...] | None) -> pd.DataFrame:
        from larder.training.assemble import validate_frame

        columns = set(frame.columns)
        optional = [c for c in self._ts_columns if c not in columns]
        validate_frame(self.spec, frame, extra_columns=optional)
        if signature is not None and len(self._validated) < 256:
            self._validated.add(signature)
        return frame

    def _python_caller(self, keys: Any) -> lean.Caller | None:
        """Python columns or records of ints, floats and strings as lean key columns, validated (once per
        column names and kinds) without a pandas frame; None for other keys."""
        got = _python_columns(keys)
        if got is None:
            return None
        names, n, lists, kinds = got
        caller = lean.Caller(n, names, lists=lists, kinds=kinds, labels=self._labels(names))
        signature = ("python", names, kinds)
        if signature not in self._validated:
            self._validate(caller.frame, signature)
        return caller

    def _names(self, columns: pd.Index) -> tuple[Any, ...]:
        """``tuple(columns)``, remembered for the last Index object (immutable) seen; read straight from
        the Arrow array behind a pandas 3 ``str`` Index, three times faster than iterating it."""
        last = self._last_names
        if last is not None and last[0] is columns:
            return last[1]
        names = _index_names(columns)
        self._last_names = (columns, names)
        return names

    def _labels(self, names: tuple[str, ...]) -> pd.Index:
        """A column index for ``names`` (cached: building one costs more than the rest of a small frame)."""
        labels = self._column_index.get(names)
        if labels is None:
            labels = pd.Index(list(names))
            if len(self._column_index) < 64:
                self._column_index[names] = labels
        return labels

    def _apply_functions(self, frame: pd.DataFrame, outputs: dict[str, pa.Array], columns: dict[str, Any]) -> None:
        """Run the spec's feature functions as the offline :func:`~larder.training.assemble.apply_functions`
        does (same runners, inputs as pandas Series of the same dtypes, a function seeing the outputs of
        earlier ones), without building intermediate frames: the cost that dominates a few-row lookup. ``outputs``
        holds the looked-up columns as Arrow arrays. (Few-row lookups take ``lean.apply_functions``.)"""
        n = len(frame)
        series: dict[str, pd.Series] = {}

        def column(c: str) -> pd.Series:
            s = series.get(c)
            if s is None:
                values = frame_column(frame, c) if c in frame.columns else pandas_values(outputs[c])
                s = pd.Series(values, name=c, copy=False)
                series[c] = s
            return s

        keys = {c: column(c) for c in self._key_columns if c in frame.columns or c in outputs}
        for position, step in self._functions:
            missing = [c for c in step.input_bindings.values()
                       if c not in series and c not in frame.columns and c not in outputs]
            if missing:  # validate_frame rules this out; kept as the offline path's message
                from larder.training.resolve import describe_step

                raise FunctionError(f"{describe_step(position, step)}: input column(s) {missing} are missing.")
            inputs = {p: column(c) for p, c in step.input_bindings.items()}
            result = step.runner.run_arrow(inputs, n, keys or None).to_pandas()
            result.name = step.output_name
            series[step.output_name] = result
            columns[step.output_name] = result

    def _run(self, frame_in: pd.DataFrame) -> tuple[pd.DataFrame, list[str], dict[str, Any], dict[str, np.ndarray]]:
        """``(caller frame, output column order, {column: values}, found)`` for a prepared key frame: the
        caller's columns as pandas Series, looked-up columns as Arrow arrays, function outputs as pandas Series."""
        frame = frame_in.reset_index(drop=True) if not _is_range(frame_in.index) else frame_in
        outputs, found = self._lookup(frame)
        columns: dict[str, Any] = dict(outputs)
        if self._functions:
            self._apply_functions(frame, outputs, columns)
        return frame, self._ordered(self._names(frame_in.columns)), columns, found

    def _ordered(self, key: tuple[str, ...]) -> list[str]:
        """Output columns: the caller's (``key``: their names), then the spec's outputs (minus
        ``exclude_columns``)."""
        hit = self._order_cache.get(key)
        if hit is None:
            excluded = set(self.spec.exclude_columns)
            given = set(key)
            hit = [c for c in key if c not in excluded]
            hit += [c for c in self.spec.produced_columns if c not in excluded and c not in given]
            if len(self._order_cache) < 64:
                self._order_cache[key] = hit
        return hit

    def _lean_plan(self) -> LeanPlan | None:
        if self._lean is False:
            from larder.online.lean import build_plan

            self._lean = build_plan(self)
        return self._lean  # type: ignore[return-value]

    def assemble(self, keys_df: Any, *, include_found: bool = False, output: Output = "pandas") -> Any:
        """Features for each row of ``keys_df``, in its order.

        ``keys_df``: a pandas, pyarrow or polars frame, or plain Python: columns ``{"id": [1, 2]}`` or
        records ``[{"id": 1}, {"id": 2}]``.

        Returns ``keys_df``'s columns then the spec's outputs (minus ``exclude_columns``), and with
        ``include_found`` one boolean column ``_found_<label>`` per lookup (see :attr:`labels`), as

        * ``output="pandas"`` (default): a DataFrame with ``keys_df``'s index;
        * ``output="dict"``: ``{column: [Python values]}`` (nulls are None), like Feast's ``to_dict()``;
        * ``output="arrow"``: a ``pyarrow.Table``.

        Up to :attr:`lean_max_rows` keys take a lean path (numbers decoded straight into numpy blocks, no
        per-column Arrow arrays); its results equal the general path's.
        """
        if output not in _OUTPUTS:
            raise FeatureLookupError(f"output must be one of {list(_OUTPUTS)}, got {output!r}.")
        index = keys_df.index if isinstance(keys_df, pd.DataFrame) else None
        if self.lean_max_rows > 0 and isinstance(keys_df, (Mapping, list)):
            plan = self._lean_plan()
            caller = self._python_caller(keys_df) if plan is not None else None
            if plan is not None and caller is not None and caller.n <= self.lean_max_rows:
                return self._assemble_lean(plan, caller, None, include_found, output)
        frame_in = self._prepare(keys_df)
        if len(frame_in) <= self.lean_max_rows:
            plan = self._lean_plan()
            if plan is not None:
                frame = frame_in.reset_index(drop=True) if not _is_range(frame_in.index) else frame_in
                caller = lean.Caller(len(frame), self._names(frame_in.columns), frame=frame)
                return self._assemble_lean(plan, caller, index, include_found, output)
        frame, ordered, columns, found = self._run(frame_in)
        found_columns = [(FOUND_PREFIX + label, found[label]) for label in self.labels] if include_found else []
        if output == "pandas":
            data: dict[str, Any] = {}
            for c in ordered:
                v = columns[c] if c in columns else frame[c]
                data[c] = pandas_values(v) if isinstance(v, pa.Array) else v.array if isinstance(v, pd.Series) else v
            data.update(found_columns)
            return _block_frame(data, index if index is not None else pd.RangeIndex(len(frame)),
                                self._labels(tuple(data)))
        arrays = []
        for c in ordered:
            v = columns[c] if c in columns else frame[c]
            arrays.append(v if isinstance(v, pa.Array) else pa.array(v, from_pandas=True))
        arrays += [pa.array(mask) for _, mask in found_columns]
        table = pa.Table.from_arrays(arrays, names=ordered + [name for name, _ in found_columns])
        return table if output == "arrow" else table.to_pydict()

    def _assemble_lean(self, plan: LeanPlan, caller: lean.Caller, index: pd.Index | None,
                       include_found: bool, output: Output) -> Any:
        res = lean.lean_lookup(self, plan, caller)
        functions = lean.apply_functions(self, caller, res) if self._functions else {}
        ordered = self._ordered(caller.names)
        found_columns = [(FOUND_PREFIX + label, res.found[label]) for label in self.labels] if include_found else []
        if output == "pandas":
            names = tuple(ordered) + tuple(name for name, _ in found_columns)
            return lean.to_pandas(res, caller, ordered, functions, found_columns,
                                  index if index is not None else pd.RangeIndex(caller.n), self._labels(names),
                                  plan.layouts)
        if output == "dict":
            return lean.to_dict(res, caller, ordered, functions, found_columns, plan.layouts)
        return lean.to_arrow(res, caller, ordered, functions, found_columns)

    def assemble_arrow(self, keys: Any) -> tuple[pa.Table, dict[str, np.ndarray]]:
        """Like :meth:`assemble` but returns an Arrow table (without found columns) and ``{label:
        found}``. Looked-up columns stay Arrow (no pandas round trip)."""
        table = self.assemble(keys, include_found=True, output="arrow")
        k = len(self.labels)
        names = table.column_names
        found = {label: table.column(names[len(names) - k + i]).to_numpy(zero_copy_only=False)
                 for i, label in enumerate(self.labels)}
        return table.select(names[: len(names) - k]), found

    def close(self) -> None:
        """Close the store clients this assembler opened (not those of a shared cache)."""
        if self._own_cache:
            self._cache.close()

    def __enter__(self) -> OnlineFeatureAssembler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _python_columns(keys: Mapping[str, Any] | list[Mapping[str, Any]]
                    ) -> tuple[tuple[str, ...], int, dict[str, list[Any]], tuple[str, ...]] | None:
    """Keys given as Python columns or records, as ``(names, rows, {name: the Python values}, kinds)``
    when every column holds only ints (within int64), only floats (float64) or only strings and None
    (pandas' ``str``); else None (the Arrow route converts them). :func:`lean.python_arrays` gives the
    values as a frame would hold them."""
    if isinstance(keys, list):
        if not keys:
            return None
        names = tuple(keys[0])
        if any(tuple(r) != names for r in keys):
            return None
        columns: Mapping[str, Any] = {c: [r[c] for r in keys] for c in names}
    else:
        columns = keys
        names = tuple(columns)
    lists: dict[str, list[Any]] = {}
    kinds: list[str] = []
    n = -1
    for name in names:
        values = columns[name]
        if not isinstance(name, str) or not isinstance(values, (list, tuple)) or (n >= 0 and len(values) != n):
            return None
        n = len(values)
        types = {type(v) for v in values}
        if types == {int}:
            if min(values) < _INT64_MIN or max(values) > _INT64_MAX:
                return None
            kinds.append("int")
        elif types <= {str, type(None)} and str in types:
            kinds.append("str")
        elif types == {float}:  # NaN stays NaN, as through Arrow without from_pandas
            kinds.append("float")
        else:
            return None
        lists[name] = values if isinstance(values, list) else list(values)
    if n < 0 or len(set(names)) != len(names):
        return None
    return names, n, lists, tuple(kinds)


def _python_keys_frame(keys: Mapping[str, Any] | list[Mapping[str, Any]],
                       labels: Callable[[tuple[str, ...]], pd.Index]) -> pd.DataFrame | None:
    """Keys given as Python columns or records, as the frame the Arrow route would build, when every
    column holds only ints (int64), only floats or only strings and None (pandas' ``str``); else None."""
    got = _python_columns(keys)
    if got is None:
        return None
    names, n, lists, kinds = got
    return _block_frame(lean.python_arrays(lists, kinds), pd.RangeIndex(n), labels(names))


def _arrow_keys(keys: Mapping[str, Any] | list[Mapping[str, Any]]) -> pa.Table:
    """Keys given as columns (``{"id": [1, 2]}``) or records (``[{"id": 1}]``) as an Arrow table."""
    try:
        if isinstance(keys, Mapping):
            return pa.table({k: v if isinstance(v, (pa.Array, pa.ChunkedArray, np.ndarray)) else list(v)
                             for k, v in keys.items()})
        return pa.Table.from_pylist(keys)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise FeatureLookupError(
            f"keys_df given as Python columns or records has a column whose values mix types, or columns of "
            f"different lengths: {exc}. Give each column one type and every column the same length."
        ) from exc


def _index_names(columns: pd.Index) -> tuple[Any, ...]:
    """``tuple(columns)``; for an Index backed by an Arrow string array (pandas 3's ``str``), from the
    Arrow array (``to_pylist`` gives the same strings, much faster than iterating the Index)."""
    arrow = getattr(getattr(columns, "_values", None), "_pa_array", None)
    if isinstance(arrow, pa.ChunkedArray) and not arrow.null_count and (
            pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type)):
        return tuple(arrow.to_pylist())
    return tuple(columns)


def _dtypes(frame: pd.DataFrame) -> tuple[Any, ...]:
    """The column dtypes of ``frame`` in order; ``frame.dtypes`` builds a Series, ten times slower for
    a small frame than asking the block manager (used when this pandas has it)."""
    get = getattr(getattr(frame, "_mgr", None), "get_dtypes", None)
    if get is not None:
        try:
            dtypes = tuple(get())
        except Exception:  # noqa: BLE001 - a pandas internal; fall back to the public attribute
            dtypes = ()
        if len(dtypes) == frame.shape[1]:
            return dtypes
    return tuple(frame.dtypes)


def _is_range(index: pd.Index) -> bool:
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1


def _block_frame(data: dict[str, Any], index: pd.Index, columns: pd.Index | None = None,
                 blocks: Sequence[tuple[np.ndarray, np.ndarray]] = ()) -> pd.DataFrame:
    """``pd.DataFrame(data, index=index)`` for 1-D numpy and extension arrays of ``len(index)``, built
    block by block (all numpy columns of one dtype share one 2-D block), which is several times faster
    than the general constructor for a few rows and many columns: the online lookup's common case.

    ``blocks`` are further ready 2-D blocks ``(values (k, rows), column positions)``; ``data``'s columns
    then fill the remaining positions in order (``columns`` must be given)."""
    labels = columns if columns is not None else pd.Index(list(data))
    if blocks:
        taken = {int(p) for _, placement in blocks for p in placement}
        free = (i for i in range(len(labels)) if i not in taken)
        parts = [(next(free), v) for v in data.values()]
    else:
        parts = list(enumerate(data.values()))
    return frame_at(parts, blocks, index, labels)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


class OnlineLookupService:
    """Online lookups for ``FeatureEngineeringClient``: resolves each table's store from the catalog's
    publication records, and caches assemblers and store clients.

    Cached views of publications and named specs are refreshed after :data:`CATALOG_REFRESH_S`
    seconds, and at once after a publish or drop through the same client.
    """

    def __init__(self, publisher: Publisher, stores: StoreCache, training: Any) -> None:
        self.publisher = publisher
        self.stores = stores
        self.training = training
        #: id of a spec -> (weak reference to it, its tables' publications, when the oldest of them was
        #: read from the catalog (monotonic time), its assembler)
        self._by_spec: dict[int, tuple[weakref.ref[Any], tuple[str, ...], float, OnlineFeatureAssembler]] = {}
        self._by_name: dict[tuple[str, str], tuple[float, OnlineFeatureAssembler]] = {}
        self._resolved: dict[str, tuple[float, Publication, Any]] = {}

    def invalidate(self) -> None:
        self._by_spec.clear()
        self._by_name.clear()
        self._resolved.clear()

    def _location(self, table: str) -> tuple[Publication, Any]:
        hit = self._resolved.get(table)
        if hit is not None and time.monotonic() - hit[0] < CATALOG_REFRESH_S:
            return hit[1], hit[2]
        pub, spec = self.publisher.latest_publication(table)
        self._resolved[table] = (time.monotonic(), pub, spec)
        return pub, spec

    def _build(self, spec: FeatureSpec, on_missing: OnMissing) -> OnlineFeatureAssembler:
        stores = {}
        for step in spec.lookups:
            pub, store_spec = self._location(step.table)
            stores[step.table] = (store_spec, pub.online_table)
        return OnlineFeatureAssembler(spec, stores, root=self.stores.root, on_missing=on_missing,
                                      store_cache=self.stores)

    def _pubs_key(self, spec: FeatureSpec) -> tuple[tuple[str, ...], float]:
        """``spec``'s tables with the ids of their publications, and when (monotonic) the oldest of
        those cached publications was read from the catalog."""
        tables = dict.fromkeys(s.table for s in spec.lookups)
        pubs = tuple(f"{t}:{self._location(t)[0].id}" for t in tables)
        resolved = self._resolved
        return pubs, min((resolved[t][0] for t in tables), default=time.monotonic())

    def assembler(self, spec: FeatureSpec, on_missing: OnMissing = "null") -> OnlineFeatureAssembler:
        """An assembler for ``spec`` (cached per spec object and current publications: a cached one is
        used as is until its tables' publications are due for a check of the catalog)."""
        key = id(spec)
        hit = self._by_spec.get(key)
        if hit is not None and hit[0]() is spec and hit[3].on_missing == on_missing:
            if time.monotonic() - hit[2] < CATALOG_REFRESH_S:
                return hit[3]
            pubs, since = self._pubs_key(spec)
            if hit[1] == pubs:
                self._by_spec[key] = (hit[0], pubs, since, hit[3])
                return hit[3]
        else:
            pubs, since = self._pubs_key(spec)
        asm = self._build(spec, on_missing)
        self._by_spec = {k: v for k, v in self._by_spec.items() if v[0]() is not None}
        self._by_spec[key] = (weakref.ref(spec), pubs, since, asm)
        return asm

    def assembler_for_name(self, name: str, on_missing: OnMissing = "null") -> OnlineFeatureAssembler:
        """An assembler for the named feature spec in the catalog (cached; refreshed periodically)."""
        full = parse_name(name, kind="feature spec").full
        hit = self._by_name.get((full, on_missing))
        if hit is not None and time.monotonic() - hit[0] < CATALOG_REFRESH_S:
            return hit[1]
        spec = self.training.get_feature_spec(full)
        asm = self._build(spec, on_missing)
        self._by_name[(full, on_missing)] = (time.monotonic(), asm)
        return asm

    def get_online_features(self, features: Any, keys_df: Any, *, include_found: bool = False,
                            on_missing: OnMissing = "null", output: Output = "pandas") -> Any:
        """See ``FeatureEngineeringClient.get_online_features``."""
        if isinstance(features, str):
            asm = self.assembler_for_name(features, on_missing)
        elif isinstance(features, FeatureSpec):
            asm = self.assembler(features, on_missing)
        else:
            from larder.training.resolve import build_spec

            spec = build_spec(self.training.tables, self.training.functions, _as_steps(features))
            asm = self._build(spec, on_missing)
        return asm.assemble(keys_df, include_found=include_found, output=output)


def _as_steps(features: Any) -> Sequence[Any]:
    if isinstance(features, (list, tuple)):
        return list(features)
    return [features]


__all__ = [
    "FOUND_PREFIX",
    "OnlineFeatureAssembler",
    "OnlineLookupService",
    "found_labels",
]
