"""``FeatureSpec``: the serialisable recipe for assembling a model's inputs.

A spec is an ordered list of steps, each pinned:

* :class:`LookupStep`: a feature table (full name and Delta version), the caller's key columns and the
  table's keys, features with output names and Arrow types, the timestamp lookup key, the lookback
  window and default values;
* :class:`FunctionStep`: a feature function (full name and version), its input bindings and output
  name, and the function itself (source, normalised code, imports, base64 cloudpickle), so that a model
  carrying the spec can run it without the catalog or the module that defined it;
* :class:`FeatureStep`: a declarative feature (its whole definition, see :mod:`larder.declarative`),
  its value type, and the Delta version of its source table, computed at each row's entity and time;

plus ``exclude_columns``. It is written by ``create_training_set`` / ``create_feature_spec``, saved as
YAML (``to_yaml``/``save``), and executed by :mod:`larder.training.assemble` (offline) and the online
lookup path alike.

>>> spec = FeatureSpec(steps=[LookupStep(
...     table="main.default.houses", table_version=2, lookup_key=["Id"], table_keys=["Id"],
...     key_types=["int64"], features=["OverallQual"], output_names=["quality"], feature_types=["int64"],
...     default_values={"quality": 5})])
>>> spec.input_columns, spec.output_columns
(['Id'], ['quality'])
>>> FeatureSpec.from_yaml(spec.to_yaml()) == spec
True
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from larder.errors import FeatureSpecError
from larder.training._code import b64, load_callable, unb64
from larder.training.execute import FunctionRunner

FORMAT_VERSION = 1

_TS = re.compile(r"^timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]$")
_LIST = re.compile(r"^(?:large_)?list<(?:item|element): (.+)>$")
_DEC = re.compile(r"^decimal(?:128|256)?\((\d+), (\d+)\)$")


def parse_arrow_type(text: str) -> pa.DataType:
    """Parse the ``str()`` of the Arrow types larder stores (primitives, timestamps, dates, decimals, lists).

    >>> parse_arrow_type("timestamp[us, tz=UTC]")
    TimestampType(timestamp[us, tz=UTC])
    """
    text = text.strip()
    m = _TS.match(text)
    if m:
        return pa.timestamp(m.group(1), tz=m.group(2))
    m = _LIST.match(text)
    if m:
        return pa.list_(parse_arrow_type(m.group(1)))
    m = _DEC.match(text)
    if m:
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    try:
        return pa.type_for_alias(text)
    except ValueError as exc:
        raise FeatureSpecError(f"Feature spec: unknown Arrow type {text!r}.") from exc


def _to_plain(value: Any) -> Any:
    """A YAML-safe rendering of a default value (timestamps and dates as ISO strings)."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return {"base64": b64(value)}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _from_plain(value: Any, typ: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_timestamp(typ) and isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    if pa.types.is_date(typ) and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if pa.types.is_binary(typ) and isinstance(value, dict):
        return unb64(value.get("base64"))
    if pa.types.is_list(typ) and isinstance(value, list):
        return [_from_plain(v, typ.value_type) for v in value]
    return value


def _td_to_plain(td: timedelta | None) -> dict[str, int] | None:
    if td is None:
        return None
    return {"days": td.days, "seconds": td.seconds, "microseconds": td.microseconds}


def _td_from_plain(value: Any) -> timedelta | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FeatureSpecError(f"Feature spec: lookback_window must be a mapping of days/seconds/microseconds, "
                               f"got {value!r}.")
    return timedelta(days=value.get("days", 0), seconds=value.get("seconds", 0),
                     microseconds=value.get("microseconds", 0))


@dataclass(frozen=True)
class LookupStep:
    """A pinned feature-table lookup."""

    table: str
    table_version: int | None
    lookup_key: list[str]
    table_keys: list[str]
    key_types: list[str]
    features: list[str]
    output_names: list[str]
    feature_types: list[str]
    timestamp_key: str | None = None
    timestamp_lookup_key: str | None = None
    lookback_window: timedelta | None = None
    default_values: dict[str, Any] = field(default_factory=dict)
    allow_latest_value: bool = False

    @property
    def input_columns(self) -> list[str]:
        return self.lookup_key + ([self.timestamp_lookup_key] if self.timestamp_lookup_key else [])

    @property
    def output_types(self) -> dict[str, pa.DataType]:
        """``{output name: Arrow type}``."""
        return {o: parse_arrow_type(t) for o, t in zip(self.output_names, self.feature_types, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "table_name": self.table, "table_version": self.table_version, "lookup_key": list(self.lookup_key),
            "table_keys": list(self.table_keys), "key_types": list(self.key_types),
            "timestamp_key": self.timestamp_key, "timestamp_lookup_key": self.timestamp_lookup_key,
            "lookback_window": _td_to_plain(self.lookback_window),
            "feature_names": list(self.features), "output_names": list(self.output_names),
            "feature_types": list(self.feature_types),
            "default_values": {k: _to_plain(v) for k, v in self.default_values.items()},
            "allow_latest_value": self.allow_latest_value,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LookupStep:
        try:
            types = dict(zip(d["output_names"], d["feature_types"], strict=True))
            return cls(
                table=d["table_name"], table_version=d.get("table_version"), lookup_key=list(d["lookup_key"]),
                table_keys=list(d["table_keys"]), key_types=list(d["key_types"]), features=list(d["feature_names"]),
                output_names=list(d["output_names"]), feature_types=list(d["feature_types"]),
                timestamp_key=d.get("timestamp_key"), timestamp_lookup_key=d.get("timestamp_lookup_key"),
                lookback_window=_td_from_plain(d.get("lookback_window")),
                default_values={k: _from_plain(v, parse_arrow_type(types[k]))
                                for k, v in (d.get("default_values") or {}).items()},
                allow_latest_value=bool(d.get("allow_latest_value", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureSpecError(f"Feature spec: malformed lookup entry ({type(exc).__name__}: {exc}): {d!r}") from exc


@dataclass(frozen=True)
class FunctionStep:
    """A pinned feature-function application, carrying the function itself."""

    name: str
    version: str
    input_bindings: dict[str, str]
    output_name: str
    python_name: str
    source: str
    code: str
    parameters: list[dict[str, Any]]
    return_type: str | None
    output_type: str | None
    mode: str
    environment: dict[str, Any] = field(default_factory=dict)
    pickle: bytes | None = field(default=None, repr=False)

    @property
    def input_columns(self) -> list[str]:
        return list(self.input_bindings.values())

    @property
    def output_names(self) -> list[str]:
        return [self.output_name]

    @cached_property
    def runner(self) -> FunctionRunner:
        """The executable function (from the pickle, else rebuilt from the source)."""
        func = load_callable(name=self.name, version=self.version, python_name=self.python_name, code=self.code,
                             environment=self.environment, pickle=self.pickle)
        out = parse_arrow_type(self.output_type) if self.output_type else None
        return FunctionRunner(func, name=self.name, version=self.version, mode=self.mode, output_type=out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "udf_name": self.name, "version": self.version, "input_bindings": dict(self.input_bindings),
            "output_name": self.output_name, "python_name": self.python_name, "return_type": self.return_type,
            "output_type": self.output_type, "mode": self.mode, "parameters": [dict(p) for p in self.parameters],
            "environment": self.environment, "source": self.source, "code": self.code,
            "cloudpickle": b64(self.pickle),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FunctionStep:
        try:
            return cls(
                name=d["udf_name"], version=str(d["version"]), input_bindings=dict(d["input_bindings"] or {}),
                output_name=d["output_name"], python_name=d["python_name"], source=d["source"], code=d["code"],
                parameters=list(d.get("parameters") or []), return_type=d.get("return_type"),
                output_type=d.get("output_type"), mode=d.get("mode", "auto"),
                environment=dict(d.get("environment") or {}), pickle=unb64(d.get("cloudpickle")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureSpecError(
                f"Feature spec: malformed function entry ({type(exc).__name__}: {exc}): "
                f"{ {k: v for k, v in d.items() if k != 'cloudpickle'} !r}"
            ) from exc


@dataclass(frozen=True)
class FeatureStep:
    """A pinned declarative feature: computed for each row at the row's entity and time.

    ``feature`` is the definition (``Feature.to_dict()``); ``source_version`` the Delta version of
    ``source_table`` that training sets read (``score_batch`` reads the latest). ``key_types`` are the
    Arrow types of the source's entity columns. A RequestSource feature produces no column: its value is
    the request's (the DataFrame's) column of that name, which the spec then requires.
    """

    feature: dict[str, Any]
    output_type: str
    source_table: str | None = None
    source_version: int | None = None
    key_types: list[str] = field(default_factory=list)
    #: The Feature object itself, when the step was built from one (a DataFrameSource feature exists only so).
    instance: Any = field(default=None, compare=False, repr=False)

    @cached_property
    def definition(self) -> Any:
        """The :class:`~larder.declarative.feature.Feature`."""
        if self.instance is not None:
            return self.instance
        from larder.declarative.feature import Feature

        return Feature.from_dict(self.feature, registered=bool(self.feature.get("catalog_name")))

    @property
    def name(self) -> str:
        """The feature's full name when registered, else its name."""
        d = self.feature
        if d.get("catalog_name") and d.get("schema_name"):
            return f"{d['catalog_name']}.{d['schema_name']}.{d['name']}"
        return str(d["name"])

    @property
    def output_name(self) -> str:
        return str(self.feature["name"])

    @property
    def is_request(self) -> bool:
        return self.feature.get("source", {}).get("type") == "request"

    @property
    def entity(self) -> list[str]:
        return list(self.feature.get("entity") or [])

    @property
    def timeseries_column(self) -> str | None:
        return self.feature.get("timeseries_column")

    @property
    def input_columns(self) -> list[str]:
        if self.is_request:
            return [self.feature["function"]["column"]]
        return [*self.entity, str(self.timeseries_column)]

    @property
    def output_names(self) -> list[str]:
        return [] if self.is_request else [self.output_name]

    @property
    def arrow_type(self) -> pa.DataType:
        return parse_arrow_type(self.output_type)

    def to_dict(self) -> dict[str, Any]:
        return {"definition": self.feature, "output_type": self.output_type, "source_table": self.source_table,
                "source_version": self.source_version, "key_types": list(self.key_types)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureStep:
        try:
            return cls(feature=dict(d["definition"]), output_type=str(d["output_type"]),
                       source_table=d.get("source_table"), source_version=d.get("source_version"),
                       key_types=list(d.get("key_types") or []))
        except (KeyError, TypeError) as exc:
            raise FeatureSpecError(f"Feature spec: malformed feature entry ({type(exc).__name__}: {exc}): {d!r}") from exc


Step = LookupStep | FunctionStep | FeatureStep

_ENTRY = {LookupStep: "lookup", FunctionStep: "function", FeatureStep: "feature"}


@dataclass
class FeatureSpec:
    """Ordered lookups and functions with pinned versions, plus columns to exclude."""

    steps: list[Step]
    exclude_columns: list[str] = field(default_factory=list)
    name: str | None = None
    description: str | None = None
    #: pip requirements the spec's functions need; added to the environment of models logged with it.
    extra_pip_requirements: list[str] = field(default_factory=list)
    #: Databricks' FeatureSpecInfo, for a spec read from the catalog: who created it (its recorded
    #: owner) and when (milliseconds since the epoch). Not part of the spec's content.
    creator: str | None = field(default=None, compare=False, repr=False)
    creation_timestamp_ms: int | None = field(default=None, compare=False, repr=False)

    # -- derived views -------------------------------------------------------------------------
    @property
    def lookups(self) -> list[LookupStep]:
        return [s for s in self.steps if isinstance(s, LookupStep)]

    @property
    def functions(self) -> list[FunctionStep]:
        return [s for s in self.steps if isinstance(s, FunctionStep)]

    @property
    def features(self) -> list[FeatureStep]:
        """The declarative features, in order."""
        return [s for s in self.steps if isinstance(s, FeatureStep)]

    @property
    def produced_columns(self) -> list[str]:
        """Every column the steps add, in order (including excluded ones)."""
        out: list[str] = []
        for s in self.steps:
            out += list(s.output_names)
        return out

    @property
    def input_columns(self) -> list[str]:
        """Columns a caller must supply: lookup keys, timestamp lookup keys, and function inputs that no
        earlier step produces (request-time inputs), in first-use order."""
        produced: set[str] = set()
        out: list[str] = []
        for s in self.steps:
            for c in s.input_columns:
                if c not in produced and c not in out:
                    out.append(c)
            produced |= set(s.output_names)
        return out

    @property
    def output_columns(self) -> list[str]:
        """Columns the spec adds to the caller's frame, minus ``exclude_columns``."""
        return [c for c in self.produced_columns if c not in self.exclude_columns]

    @property
    def key_columns(self) -> list[str]:
        """Lookup keys and timestamp lookup keys of every lookup, entity and timeseries columns of every
        declarative feature (identify a row in error messages)."""
        out: list[str] = []
        steps: list[LookupStep | FeatureStep] = [*self.lookups, *(f for f in self.features if not f.is_request)]
        for s in steps:
            out += [c for c in s.input_columns if c not in out]
        return out

    def table_versions(self) -> dict[str, int | None]:
        """``{table full name: pinned Delta version}`` of the lookups' tables."""
        return {s.table: s.table_version for s in self.lookups}

    def feature_versions(self) -> dict[str, int | None]:
        """``{declarative feature name: pinned Delta version of its source table}``."""
        return {f.name: f.source_version for f in self.features if not f.is_request}

    def function_versions(self) -> dict[str, str]:
        """``{function full name: pinned version}``."""
        return {s.name: s.version for s in self.functions}

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "description": self.description,
            "features": [{_ENTRY[type(s)]: s.to_dict()} for s in self.steps],
            "exclude_columns": list(self.exclude_columns),
            **({"extra_pip_requirements": list(self.extra_pip_requirements)} if self.extra_pip_requirements else {}),
            "input_columns": self.input_columns,
            "output_columns": self.output_columns,
        }

    @classmethod
    def from_dict(cls, d: Any) -> FeatureSpec:
        if not isinstance(d, dict) or "features" not in d:
            raise FeatureSpecError(
                "Not a larder feature spec: expected a mapping with a 'features' list (written by "
                "FeatureSpec.to_yaml() or save())."
            )
        fmt = d.get("format_version", FORMAT_VERSION)
        if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
            raise FeatureSpecError(
                f"Feature spec format version {fmt!r} is newer than this larder understands ({FORMAT_VERSION}). "
                "Upgrade larder."
            )
        steps: list[Step] = []
        for entry in d["features"] or []:
            if isinstance(entry, dict) and set(entry) == {"lookup"}:
                steps.append(LookupStep.from_dict(entry["lookup"]))
            elif isinstance(entry, dict) and set(entry) == {"function"}:
                steps.append(FunctionStep.from_dict(entry["function"]))
            elif isinstance(entry, dict) and set(entry) == {"feature"}:
                steps.append(FeatureStep.from_dict(entry["feature"]))
            else:
                raise FeatureSpecError(f"Feature spec: each feature must be {{lookup: ...}}, {{function: ...}} or "
                                       f"{{feature: ...}}, got {entry!r}.")
        return cls(steps=steps, exclude_columns=list(d.get("exclude_columns") or []), name=d.get("name"),
                   description=d.get("description"),
                   extra_pip_requirements=[str(r) for r in d.get("extra_pip_requirements") or []])

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=110)

    @classmethod
    def from_yaml(cls, text: str) -> FeatureSpec:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FeatureSpecError(f"Feature spec is not valid YAML: {exc}") from exc
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the spec as YAML to ``path`` (a file, or a directory that gets ``feature_spec.yaml``)."""
        p = Path(path)
        if p.is_dir():
            p = p / "feature_spec.yaml"
        p.write_text(self.to_yaml(), encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureSpec:
        p = Path(path)
        if p.is_dir():
            p = p / "feature_spec.yaml"
        if not p.exists():
            raise FeatureSpecError(f"No feature spec at {str(p)!r}.")
        return cls.from_yaml(p.read_text(encoding="utf-8"))

    def __repr__(self) -> str:
        name = f"name={self.name!r}, " if self.name else ""
        feats = f", features={list(self.feature_versions())}" if self.features else ""
        return (f"FeatureSpec({name}tables={self.table_versions()}, functions={self.function_versions()}{feats}, "
                f"inputs={self.input_columns}, outputs={self.output_columns})")


__all__ = ["FORMAT_VERSION", "FeatureSpec", "FeatureStep", "FunctionStep", "LookupStep", "Step", "parse_arrow_type"]
