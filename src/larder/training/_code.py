"""Capturing a Python function so it can run later without the module that defined it.

A registered function is kept three ways:

* its **source** (``inspect.getsource``, dedented; decorators are dropped), what people read;
* a **cloudpickle** of the function object, pickled *by value* even when it lives in an importable
  module, so loading it needs no access to that module;
* an **environment** for the source: the modules and importable objects it refers to by global name
  and the values of simple constants it reads (globals or closure cells), so that ``exec`` of the
  source can rebuild the function when the pickle cannot be loaded (another Python version, say).

The **version** is a content hash of the normalised source (parsed and unparsed, so comments and
formatting do not matter), the environment and the execution mode: the same code gives the same
version, a changed body or constant gives a new one.
"""

from __future__ import annotations

import ast
import base64
import datetime as dt
import hashlib
import inspect
import json
import sys
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from larder.errors import FunctionError
from larder.offline.frames import UTC_US

_CONSTANT_TYPES = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class CapturedFunction:
    """Everything stored about one version of a function."""

    python_name: str
    source: str
    code: str
    parameters: list[dict[str, Any]]
    return_type: str | None
    output_type: str | None
    environment: dict[str, Any]
    pickle: bytes | None
    version: str
    python_version: str = field(default_factory=lambda: ".".join(map(str, sys.version_info[:3])))


def _json_constant(value: Any) -> bool:
    if isinstance(value, _CONSTANT_TYPES):
        return not (isinstance(value, float) and value != value)
    if isinstance(value, (list, tuple)):
        return all(_json_constant(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_constant(v) for k, v in value.items())
    return False


def _names_used(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_used(const)
    return names


def _function_node(func: types.FunctionType, source: str) -> ast.FunctionDef | ast.Lambda:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise FunctionError(
            f"Cannot parse the source of function {func.__qualname__!r}: {exc}. Define it with `def` in a "
            "module or notebook cell."
        ) from exc
    if func.__name__ == "<lambda>":
        lambdas = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda)]
        if len(lambdas) != 1:
            raise FunctionError(
                f"Cannot tell which lambda on this line is the feature function ({len(lambdas)} found): "
                "define it with `def` instead."
            )
        return lambdas[0]
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == func.__name__:
            if isinstance(node, ast.AsyncFunctionDef):
                raise FunctionError(f"Feature function {func.__name__!r} is async; use a plain `def`.")
            return node
    raise FunctionError(f"Cannot find the definition of {func.__name__!r} in its source.")


def _normalised_code(func: types.FunctionType, source: str) -> tuple[str, str]:
    """(python name, normalised code defining it at module level)."""
    node = _function_node(func, source)
    if isinstance(node, ast.Lambda):
        name = "_feature_lambda"
        module = ast.Module(body=[ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())], value=node)],
                            type_ignores=[])
        return name, ast.unparse(ast.fix_missing_locations(module))
    node.decorator_list = []
    return node.name, ast.unparse(node)


def _environment(func: types.FunctionType) -> dict[str, Any]:
    imports: dict[str, str] = {}
    objects: dict[str, list[str]] = {}
    constants: dict[str, Any] = {}
    unresolved: list[str] = []
    glb = func.__globals__
    for name in sorted(_names_used(func.__code__)):
        if name not in glb:
            continue  # a builtin or an attribute name
        value = glb[name]
        if isinstance(value, types.ModuleType):
            imports[name] = value.__name__
        elif _json_constant(value):
            constants[name] = value
        else:
            mod = getattr(value, "__module__", None)
            qual = getattr(value, "__qualname__", None)
            if mod and qual and mod != func.__module__ and mod != "__main__" and "<" not in qual:
                objects[name] = [mod, qual]
            else:
                unresolved.append(name)
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or (), strict=False):
        try:
            value = cell.cell_contents
        except ValueError:
            unresolved.append(name)
            continue
        if _json_constant(value):
            constants[name] = value
        elif isinstance(value, types.ModuleType):
            imports[name] = value.__name__
        else:
            unresolved.append(name)
    return {"imports": imports, "objects": objects, "constants": constants, "unresolved": sorted(unresolved)}


def _pickle(func: types.FunctionType) -> bytes | None:
    import cloudpickle

    module = sys.modules.get(func.__module__) if func.__module__ else None
    by_value = module is not None and func.__module__ not in ("__main__", "builtins")
    registered = False
    try:
        if by_value:
            try:
                cloudpickle.register_pickle_by_value(module)
                registered = True
            except (ValueError, TypeError):
                registered = False
        return cloudpickle.dumps(func)
    except Exception:  # an unpicklable closure or global: the source is then the only copy
        return None
    finally:
        if registered:
            cloudpickle.unregister_pickle_by_value(module)


def _parameters(func: types.FunctionType, qualname: str) -> list[dict[str, Any]]:
    params = []
    for p in inspect.signature(func).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise FunctionError(
                f"Feature function {qualname!r} takes *{p.name}/**{p.name}: feature functions need named "
                "parameters, one per input column."
            )
        if p.kind is p.POSITIONAL_ONLY:
            raise FunctionError(
                f"Feature function {qualname!r}: parameter {p.name!r} is positional-only; inputs are bound by "
                "name, so remove the '/' from the signature."
            )
        has_default = p.default is not p.empty
        params.append({
            "name": p.name,
            "annotation": None if p.annotation is p.empty else _annotation_str(p.annotation),
            "has_default": has_default,
            "default": p.default if has_default and _json_constant(p.default) else None,
        })
    return params


def _annotation_str(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__qualname__ if annotation.__module__ == "builtins" else (
            f"{annotation.__module__}.{annotation.__qualname__}")
    return str(annotation).replace("typing.", "")


_SCALAR_TYPES: dict[Any, pa.DataType] = {
    int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_(), bytes: pa.binary(),
    dt.datetime: UTC_US, dt.date: pa.date32(),
    np.int64: pa.int64(), np.int32: pa.int32(), np.float64: pa.float64(), np.float32: pa.float32(),
    np.bool_: pa.bool_(),
}


def arrow_type_for(annotation: Any) -> pa.DataType | None:
    """The Arrow type a return annotation declares, or None when it does not declare one larder knows."""
    if annotation in _SCALAR_TYPES:
        return _SCALAR_TYPES[annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return arrow_type_for(rest[0]) if len(rest) == 1 else None
    if origin in (list, typing.List) and len(args) == 1:  # noqa: UP006 - typing.List is a real origin
        inner = arrow_type_for(args[0])
        return pa.list_(inner) if inner is not None else None
    return None


def capture(func: Callable[..., Any], *, mode: str) -> CapturedFunction:
    """Capture ``func`` (source, pickle, environment, version). Raises :class:`FunctionError` if it
    is not a plain Python function whose source can be read."""
    if isinstance(func, (types.BuiltinFunctionType, np.ufunc)) or not isinstance(func, types.FunctionType):
        raise FunctionError(
            f"create_function needs a Python function defined with `def` (or a lambda), got "
            f"{type(func).__name__} {func!r}."
        )
    qualname = func.__qualname__
    try:
        raw = inspect.getsource(func)
    except (OSError, TypeError) as exc:
        raise FunctionError(
            f"Cannot read the source of function {qualname!r} ({exc}). Define it in a file or a notebook cell "
            "(functions typed at a plain `python` prompt have no retrievable source)."
        ) from exc
    source = textwrap.dedent(raw)
    python_name, code = _normalised_code(func, source)
    parameters = _parameters(func, qualname)
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable string annotations: keep the raw text
        hints = {}
    ret = hints.get("return", inspect.signature(func).return_annotation)
    return_type = None if ret is inspect.Signature.empty else _annotation_str(ret)
    out_type = arrow_type_for(ret) if ret is not inspect.Signature.empty else None
    env = _environment(func)
    digest = hashlib.sha256(json.dumps(
        {"code": code, "env": {k: env[k] for k in ("imports", "objects", "constants")}, "mode": mode},
        sort_keys=True, default=repr,
    ).encode()).hexdigest()[:16]
    return CapturedFunction(
        python_name=python_name, source=source, code=code, parameters=parameters, return_type=return_type,
        output_type=str(out_type) if out_type is not None else None, environment=env, pickle=_pickle(func),
        version=digest,
    )


def capture_code(*, python_name: str, code: str, source: str, environment: dict[str, Any], mode: str,
                 where: str) -> CapturedFunction:
    """Capture a function given as code (``def python_name(...)``) rather than as a live object, such
    as one generated from a SQL ``CREATE FUNCTION`` statement; ``source`` is what people read."""
    digest = hashlib.sha256(json.dumps(
        {"code": code, "env": {k: environment.get(k, {}) for k in ("imports", "objects", "constants")},
         "mode": mode}, sort_keys=True, default=repr,
    ).encode()).hexdigest()[:16]
    func = exec_source(name=where, version=digest, python_name=python_name, code=code, environment=environment)
    parameters = _parameters(func, where)  # type: ignore[arg-type]
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: keep the text
        hints = {}
    ret = hints.get("return", inspect.signature(func).return_annotation)
    return_type = None if ret is inspect.Signature.empty else _annotation_str(ret)
    out_type = arrow_type_for(ret) if ret is not inspect.Signature.empty else None
    return CapturedFunction(
        python_name=python_name, source=source, code=code, parameters=parameters, return_type=return_type,
        output_type=str(out_type) if out_type is not None else None, environment=environment,
        pickle=_pickle(func), version=digest,  # type: ignore[arg-type]
    )


def load_callable(*, name: str, version: str, python_name: str, code: str, environment: dict[str, Any],
                  pickle: bytes | None) -> Callable[..., Any]:
    """Rebuild a stored function: from the cloudpickle when it loads, else by ``exec`` of its code."""
    if pickle:
        import cloudpickle

        try:
            func = cloudpickle.loads(pickle)
            if callable(func):
                return func  # type: ignore[no-any-return]
        except Exception:  # noqa: S110 - a pickle from another Python or library version: use the source
            pass
    return exec_source(name=name, version=version, python_name=python_name, code=code, environment=environment)


def exec_source(*, name: str, version: str, python_name: str, code: str,
                environment: dict[str, Any]) -> Callable[..., Any]:
    """Define the function by executing its normalised code in a namespace built from ``environment``."""
    import importlib

    env = environment or {}
    namespace: dict[str, Any] = {"__name__": f"larder_function_{version}"}
    try:
        for alias, module in (env.get("imports") or {}).items():
            namespace[alias] = importlib.import_module(module)
        for alias, (module, qual) in (env.get("objects") or {}).items():
            obj: Any = importlib.import_module(module)
            for part in qual.split("."):
                obj = getattr(obj, part)
            namespace[alias] = obj
    except (ImportError, AttributeError) as exc:
        raise FunctionError(
            f"Cannot rebuild feature function {name!r} (version {version}) from its source: {exc}. Install "
            "the module it imports, or load it with the same Python version it was registered with."
        ) from exc
    namespace.update(env.get("constants") or {})
    try:
        exec(compile(code, f"<larder function {name} {version}>", "exec"), namespace)  # noqa: S102
    except Exception as exc:
        raise FunctionError(
            f"Cannot rebuild feature function {name!r} (version {version}) from its source: "
            f"{type(exc).__name__}: {exc}."
        ) from exc
    func = namespace.get(python_name)
    if not callable(func):
        raise FunctionError(f"The source of feature function {name!r} (version {version}) does not define "
                            f"{python_name!r}.")
    return func  # type: ignore[no-any-return]


def b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode("ascii") if data else None


def unb64(text: str | None) -> bytes | None:
    return base64.b64decode(text) if text else None


__all__ = ["CapturedFunction", "arrow_type_for", "b64", "capture", "capture_code", "exec_source", "load_callable",
           "unb64"]
