"""Feature functions: Python functions registered in the catalog, versioned by content.

>>> import tempfile
>>> from larder.client import FeatureEngineeringClient
>>> fe = FeatureEngineeringClient(root=tempfile.mkdtemp())
>>> def house_age(year_built: int) -> int:
...     return 2024 - year_built
>>> info = fe.create_function("house_age", house_age, description="Years since construction")
>>> info.name, len(info.version)
('main.default.house_age', 16)
>>> fe.create_function("house_age", house_age).version == info.version   # same code, same version
True
>>> fe.close()

A training set refers to a function with :class:`FeatureFunction`; the version current at that moment
is pinned in the :class:`~larder.training.spec.FeatureSpec`, together with the function's source and a
cloudpickle, so the spec (and any model carrying it) runs without the catalog or the defining module.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func as sql_func
from sqlalchemy import select
from sqlalchemy.orm import Session

from larder.catalog.base import current_user, named_record, utcnow
from larder.catalog.functions import FunctionRecord, FunctionVersionRecord, function_versions_in_use
from larder.context import Context
from larder.errors import FunctionError, FunctionInUseError, FunctionNotFoundError
from larder.names import parse_name
from larder.training._code import capture, capture_code, load_callable
from larder.training.execute import MODES
from larder.training.sql_functions import looks_like_create_function


class FeatureFunction:
    """A registered feature function applied in a training set or feature spec.

    Parameters
    ----------
    udf_name:
        Name the function was registered under (``fn``, ``schema.fn`` or ``catalog.schema.fn``).
    input_bindings:
        ``{parameter name: column name}``: which column of the training DataFrame (or which output of an
        earlier lookup or function) feeds each parameter. Parameters with a default may stay unbound.
    output_name:
        Name of the column the function produces; defaults to the function's short name.

    Examples
    --------
    >>> FeatureFunction("house_age", input_bindings={"year_built": "YearBuilt"}).output_name
    'house_age'
    """

    def __init__(self, udf_name: str, input_bindings: Mapping[str, str] | None = None,
                 output_name: str | None = None) -> None:
        self.udf_name = udf_name
        qn = parse_name(udf_name, kind="function")
        if input_bindings is not None and not isinstance(input_bindings, Mapping):
            raise FunctionError(
                f"FeatureFunction({udf_name!r}): input_bindings must be a dict of parameter name to column "
                f"name, such as {{'x': 'price'}}, got {type(input_bindings).__name__} {input_bindings!r}."
            )
        bindings = dict(input_bindings or {})
        for param, column in bindings.items():
            if not isinstance(param, str) or not isinstance(column, str) or not param or not column:
                raise FunctionError(
                    f"FeatureFunction({udf_name!r}): input_bindings must map parameter names to column names "
                    f"(both non-empty strings), got {param!r}: {column!r}."
                )
        if output_name is not None and (not isinstance(output_name, str) or not output_name):
            raise FunctionError(f"FeatureFunction({udf_name!r}): output_name must be a non-empty string.")
        self.input_bindings: dict[str, str] = bindings
        self.output_name: str = output_name or qn.name

    @property
    def full_name(self) -> str:
        return parse_name(self.udf_name, kind="function").full

    def __repr__(self) -> str:
        return (f"FeatureFunction(udf_name={self.udf_name!r}, input_bindings={self.input_bindings!r}, "
                f"output_name={self.output_name!r})")


@dataclass(frozen=True)
class FunctionInfo:
    """One version of a registered function (``get_function`` / ``create_function`` / ``list_functions``)."""

    name: str
    version: str
    versions: list[str]
    description: str | None
    source: str
    signature: str
    parameters: list[dict[str, Any]]
    return_type: str | None
    output_type: str | None
    mode: str
    python_version: str
    created_at: datetime
    owner: str | None
    python_name: str = field(repr=False)
    code: str = field(repr=False)
    environment: dict[str, Any] = field(repr=False)
    pickle: bytes | None = field(repr=False)

    @property
    def parameter_names(self) -> list[str]:
        return [p["name"] for p in self.parameters]

    @property
    def is_latest(self) -> bool:
        return self.version == self.versions[-1]

    @property
    def func(self) -> Callable[..., Any]:
        """The callable: from the stored cloudpickle, or rebuilt from the source."""
        return load_callable(name=self.name, version=self.version, python_name=self.python_name,
                             code=self.code, environment=self.environment, pickle=self.pickle)


def _signature(parameters: list[dict[str, Any]], return_type: str | None) -> str:
    parts = []
    for p in parameters:
        s = p["name"] + (f": {p['annotation']}" if p.get("annotation") else "")
        if p.get("has_default"):
            s += f" = {p.get('default')!r}"
        parts.append(s)
    return f"({', '.join(parts)})" + (f" -> {return_type}" if return_type else "")


def _info(rec: FunctionRecord, ver: FunctionVersionRecord) -> FunctionInfo:
    return FunctionInfo(
        name=rec.full_name, version=ver.version, versions=[v.version for v in rec.versions],
        description=ver.description if ver.description is not None else rec.description,
        source=ver.source, signature=_signature(ver.parameters, ver.return_type), parameters=list(ver.parameters),
        return_type=ver.return_type, output_type=ver.output_type, mode=ver.mode,
        python_version=ver.python_version, created_at=ver.created_at.replace(tzinfo=UTC), owner=rec.owner,
        python_name=ver.python_name, code=ver.code, environment=dict(ver.environment or {}), pickle=ver.pickle,
    )


class FunctionService:
    """Register, read, list and drop feature functions. Used through ``FeatureEngineeringClient``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _record(self, session: Session, name: str) -> FunctionRecord:
        full = parse_name(name, kind="function").full
        return named_record(session, FunctionRecord, FunctionRecord.full_name, full, lambda known: FunctionNotFoundError(
            f"Feature function {full!r} does not exist. Register it with create_function(); the registered "
            f"functions are {known}."
        ))

    def create_function(self, name: str | None, func: Callable[..., Any] | str | None = None,
                        description: str | None = None, *, mode: str = "auto") -> FunctionInfo:
        """Register ``func`` (a Python function, or a ``CREATE FUNCTION`` statement) under ``name``; new
        code makes a new version, the same code returns the existing version."""
        if func is None and looks_like_create_function(name):
            name, func = None, name
        if isinstance(func, str):
            name, cap, sql_comment, mode = _capture_sql(name, func, mode)
            if description is None:
                description = sql_comment
        else:
            if name is None or func is None:
                raise FunctionError(
                    "create_function(name, func): give a name and a Python function, or a CREATE FUNCTION "
                    "statement."
                )
            cap = None
        qn = parse_name(name, kind="function")
        if mode not in MODES:
            raise FunctionError(f"create_function({qn.full!r}): mode must be one of {list(MODES)}, got {mode!r}.")
        if cap is None:
            cap = capture(func, mode=mode)  # type: ignore[arg-type]
        with self.ctx.catalog.session() as s:
            rec = s.scalars(select(FunctionRecord).where(FunctionRecord.full_name == qn.full)).first()
            now = utcnow()
            if rec is None:
                rec = FunctionRecord(full_name=qn.full, catalog_name=qn.catalog, schema_name=qn.schema,
                                     function_name=qn.name, description=description, owner=current_user(),
                                     created_at=now, updated_at=now)
                s.add(rec)
                s.flush()
            existing = next((v for v in rec.versions if v.version == cap.version), None)
            if existing is not None:
                if description is not None and description != existing.description:
                    existing.description = description
                    rec.description = description
                    rec.updated_at = now
                return _info(rec, existing)
            seq = (s.scalar(select(sql_func.max(FunctionVersionRecord.seq))
                            .where(FunctionVersionRecord.function_id == rec.id)) or 0) + 1
            ver = FunctionVersionRecord(
                version=cap.version, seq=seq, python_name=cap.python_name, source=cap.source, code=cap.code,
                parameters=cap.parameters, return_type=cap.return_type, output_type=cap.output_type, mode=mode,
                environment=cap.environment, pickle=cap.pickle, python_version=cap.python_version,
                description=description if description is not None else rec.description, created_at=now,
            )
            rec.versions.append(ver)
            if description is not None:
                rec.description = description
            rec.updated_at = now
            s.flush()
            return _info(rec, ver)

    def get_function(self, name: str, version: str | None = None) -> FunctionInfo:
        """The current (latest registered) version, or the given one."""
        with self.ctx.catalog.session() as s:
            rec = self._record(s, name)
            if not rec.versions:  # pragma: no cover - drop_function removes empty records
                raise FunctionNotFoundError(f"Feature function {rec.full_name!r} has no versions.")
            if version is None:
                return _info(rec, rec.versions[-1])
            for v in rec.versions:
                if v.version == version:
                    return _info(rec, v)
            raise FunctionNotFoundError(
                f"Feature function {rec.full_name!r} has no version {version!r}; its versions (oldest first) are "
                f"{[v.version for v in rec.versions]}."
            )

    def list_functions(self, name_pattern: str | None = None) -> list[FunctionInfo]:
        """The current version of every function whose full or short name matches the glob."""
        out = []
        with self.ctx.catalog.session() as s:
            for rec in s.scalars(select(FunctionRecord).order_by(FunctionRecord.full_name)):
                if name_pattern and not (fnmatch.fnmatchcase(rec.full_name, name_pattern)
                                         or fnmatch.fnmatchcase(rec.function_name, name_pattern)):
                    continue
                if rec.versions:
                    out.append(_info(rec, rec.versions[-1]))
        return out

    def drop_function(self, name: str, version: str | None = None) -> None:
        """Drop one version, or the whole function when ``version`` is None. Refused with
        :class:`FunctionInUseError` while a logged model uses the version(s)."""
        with self.ctx.catalog.session() as s:
            rec = self._record(s, name)
            in_use = function_versions_in_use(s, rec.full_name)
            targets = [v for v in rec.versions if version is None or v.version == version]
            if version is not None and not targets:
                raise FunctionNotFoundError(
                    f"Feature function {rec.full_name!r} has no version {version!r}; its versions are "
                    f"{[v.version for v in rec.versions]}."
                )
            blocking = {v.version: in_use[v.version] for v in targets if v.version in in_use}
            if blocking:
                desc = "; ".join(
                    f"version {ver} by " + ", ".join(f"model {m!r} version {mv}" for m, mv in models)
                    for ver, models in blocking.items()
                )
                raise FunctionInUseError(
                    f"Cannot drop feature function {rec.full_name!r}: {desc}. Delete those model versions "
                    "first, or keep the function."
                )
            if version is None or len(targets) == len(rec.versions):
                s.delete(rec)
            else:
                for v in targets:
                    rec.versions.remove(v)
                rec.updated_at = utcnow()


def _capture_sql(name: str | None, statement: str, mode: str) -> tuple[str, Any, str | None, str]:
    """``(name, captured function, the statement's COMMENT, mode)`` of a ``CREATE FUNCTION`` statement."""
    from larder.training.sql_functions import environment, parse_create_function, python_code

    fn = parse_create_function(statement)
    if name is not None and parse_name(name, kind="function").full != parse_name(fn.name, kind="function").full:
        raise FunctionError(
            f"create_function({name!r}): the statement creates {fn.name!r}; give the same name (or only the "
            "statement)."
        )
    python_name, code = python_code(fn)
    if fn.language == "SQL" and mode == "auto":
        mode = "vectorized"  # DuckDB evaluates the expression on whole columns; that is its meaning
    cap = capture_code(python_name=python_name, code=code, source=fn.statement, environment=environment(fn),
                       mode=mode, where=fn.name)
    return fn.name, cap, fn.comment, mode


__all__ = ["FeatureFunction", "FunctionInfo", "FunctionService"]
