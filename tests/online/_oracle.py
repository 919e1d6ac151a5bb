"""A brute-force evaluation of a feature spec online, independent of larder's assembly, and the check of
an assembler's three output forms against it.

The oracle reads the published rows from the test's own source tables (Python dicts by key), and for
each caller row, in order: per lookup, the stored row of the row's key (a null key finds nothing), its
features under their output names, else the lookup's default, else null, and the found flag; then per
feature function, in spec order, the function called on that row's plain Python values (None for a null
or NaN), a raising call giving null (the Series route propagates nulls through arithmetic). The output
forms must hold exactly these values: ``arrow`` with the spec's types, ``dict`` as that table's
``to_pydict()``, ``pandas`` as Arrow converts those columns to pandas, beside the caller's own columns and
index. A function output's type is its type offline: what :func:`larder.training.apply_functions` (the
Series route, on a fresh copy of the spec) gives for the same rows, through pandas (an unannotated
function's type is inferred from its values, an integer column with nulls is a float column in pandas).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import pyarrow as pa

from larder.training import FeatureSpec, apply_functions
from larder.training.spec import FunctionStep, LookupStep

OUTPUTS = ("pandas", "dict", "arrow")


def same(a: object, b: object) -> bool:
    """Equal values of the same type; NaN equals NaN, and 0.0 differs from -0.0."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b


def assert_same_dict(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for column in want:
        assert len(got[column]) == len(want[column]), column
        for i, (x, y) in enumerate(zip(got[column], want[column], strict=True)):
            assert same(x, y), (column, i, x, y)


def _null(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _plain(v: Any) -> Any:
    return None if _null(v) else v


def by_key(table: pa.Table, keys: list[str]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """A source table's rows by key (the one row per key a snapshot table holds)."""
    return {tuple(r[k] for k in keys): r for r in table.to_pylist()}


class Oracle:
    """The expected output of a spec for given keys.

    ``tables``: ``{table short name: source table}``; ``keys``: ``{table short name: its key columns}``;
    ``functions``: ``{function short name: the Python function}``.
    """

    def __init__(self, spec: Any, labels: list[str], tables: dict[str, pa.Table], keys: dict[str, list[str]],
                 functions: dict[str, Callable[..., Any]]) -> None:
        self.spec = spec
        self.offline_spec = FeatureSpec.from_yaml(spec.to_yaml())  # its own function runners
        self.labels = labels
        self.rows = {name: by_key(t, keys[name]) for name, t in tables.items()}
        self.functions = functions

    def evaluate(self, caller: dict[str, list[Any]]) -> tuple[dict[str, list[Any]], dict[str, pa.DataType],
                                                                dict[str, list[bool]]]:
        """``(values per output, type per looked-up output, found per label)`` for the caller's columns
        (Python values, nulls None)."""
        n = len(next(iter(caller.values())))
        values: dict[str, list[Any]] = {}
        types: dict[str, pa.DataType] = {}
        found: dict[str, list[bool]] = {}
        lookups = iter(self.labels)
        for step in self.spec.steps:
            if isinstance(step, LookupStep):
                table = self.rows[step.table.rsplit(".", 1)[-1]]
                hits = []
                for i in range(n):
                    key = tuple(caller[c][i] for c in step.lookup_key)
                    hits.append(None if any(k is None for k in key) else table.get(key))
                found[next(lookups)] = [h is not None for h in hits]
                for feature, out in zip(step.features, step.output_names, strict=True):
                    default = step.default_values.get(out)
                    values[out] = [h[feature] if h is not None else default for h in hits]
                    types[out] = step.output_types[out]
            else:
                assert isinstance(step, FunctionStep)
                func = self.functions[step.name.rsplit(".", 1)[-1]]
                column = []
                for i in range(n):
                    row = {p: _plain(caller[c][i] if c in caller and c not in values else values[c][i])
                           for p, c in step.input_bindings.items()}
                    try:
                        column.append(_plain(func(**row)))
                    except Exception:  # noqa: BLE001 - a raising row is null, as the Series route gives
                        column.append(None)
                values[step.output_name] = column
        return values, types, found

    def function_types(self, frame: pd.DataFrame, values: dict[str, list[Any]],
                       types: dict[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The type of each function output offline, for these rows (see the module docstring)."""
        inputs = frame.copy()
        for c, t in types.items():
            if c not in inputs.columns:
                inputs[c] = pa.array(values[c], type=t).to_pandas()
        offline = apply_functions(self.offline_spec, inputs)
        return {s.output_name: pa.array(offline[s.output_name], from_pandas=True).type
                for s in self.spec.steps if isinstance(s, FunctionStep)}

    def expected(self, keys: Any, include_found: bool) -> dict[str, Any]:
        """The three output forms the assembler must return for ``keys`` (a pandas frame, Python columns
        or records, or an Arrow table)."""
        if isinstance(keys, pd.DataFrame):
            frame, index = keys.reset_index(drop=True), keys.index
        elif isinstance(keys, pa.Table):
            frame, index = keys.to_pandas(), pd.RangeIndex(keys.num_rows)
        else:
            columns = keys if isinstance(keys, dict) else {c: [r[c] for r in keys] for c in keys[0]}
            frame = pd.DataFrame(columns)
            index = pd.RangeIndex(len(frame))
        caller = {c: [_plain(v) for v in frame[c].tolist()] for c in frame.columns}
        values, types, found = self.evaluate(caller)
        types.update(self.function_types(frame, values, types))
        excluded = set(self.spec.exclude_columns)
        given = [c for c in frame.columns if c not in excluded]
        outputs = [c for c in values if c not in excluded and c not in frame.columns]
        found_columns = {f"_found_{label}": flags for label, flags in found.items()} if include_found else {}
        arrow = {c: pa.array(frame[c], from_pandas=True) for c in given}
        arrow.update({c: pa.array(values[c], type=types[c]) for c in outputs})
        arrow.update({c: pa.array(flags, pa.bool_()) for c, flags in found_columns.items()})
        table = pa.table(arrow)
        data = {c: frame[c].array for c in given}
        data.update({c: table.column(c).to_pandas().array for c in outputs})
        data.update({c: table.column(c).to_pandas().to_numpy() for c in found_columns})
        return {"pandas": pd.DataFrame(data, index=index), "dict": table.to_pydict(), "arrow": table}

    def check(self, asm: Any, keys: Any, include_found: bool, context: object = None) -> dict[str, Any]:
        """Assemble ``keys`` in every output form and assert each equals the oracle's; returns them."""
        want = self.expected(keys, include_found)
        got = {out: asm.assemble(keys, include_found=include_found, output=out) for out in OUTPUTS}
        pd.testing.assert_frame_equal(got["pandas"], want["pandas"], check_exact=True, obj=str(context))
        assert got["arrow"].schema.equals(want["arrow"].schema), (context, got["arrow"].schema, want["arrow"].schema)
        assert_same_dict(got["arrow"].to_pydict(), want["arrow"].to_pydict())
        assert_same_dict(got["dict"], want["dict"])
        return got
