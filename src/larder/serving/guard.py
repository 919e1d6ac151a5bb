"""What the feature server checks before a request reaches a lookup, and how it answers every error.

* **Size.** A body larger than ``max_body_bytes`` (default 1 MiB, ``LARDER_SERVE_MAX_BODY_BYTES``) is a
  413, refused from its ``Content-Length`` before it is read, or as soon as more has arrived.
* **JSON.** Strict JSON only: ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's parser takes by
  default) are a 400, and so is nesting deeper than ``max_json_depth`` (default 32,
  ``LARDER_SERVE_MAX_JSON_DEPTH``), or so deep that the parser itself gives up.
* **Keys, row by row.** Every row (or column) must hold every input column of the spec; a lookup or
  timestamp key must not be null, an integer must fit in 64 bits, a number must be finite. The 400
  names the row and the column.
* **Every error is JSON** ``{"error", "detail"}``: unknown routes (404), wrong methods (405), requests
  FastAPI cannot read (422), and an unexpected failure (500, whose detail says nothing of the
  server's internals; the traceback goes to the log).

>>> limits = Limits(max_body_bytes=64, max_json_depth=3)
>>> parse_body(b'{"keys": [{"Id": 1}]}', limits)
{'keys': [{'Id': 1}]}
>>> parse_body(b'{"keys": [{"Id": NaN}]}', limits)
Traceback (most recent call last):
...
larder.serving.guard.BadRequest: The request body is not valid JSON: NaN is not a JSON number (JSON has no NaN or Infinity); send null or a finite number.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from larder.errors import FeatureLookupError

_log = logging.getLogger("larder.serving")

MAX_BODY_ENV = "LARDER_SERVE_MAX_BODY_BYTES"
MAX_DEPTH_ENV = "LARDER_SERVE_MAX_JSON_DEPTH"
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_JSON_DEPTH = 32
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

#: Names of the HTTP errors the server answers itself (the ``error`` field).
HTTP_ERRORS = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 413: "RequestTooLarge",
               415: "UnsupportedMediaType", 422: "InvalidRequest", 500: "InternalError",
               503: "ServiceUnavailable"}
INTERNAL_DETAIL = ("The server failed while answering this request; the request itself may be fine. The "
                   "server's log has the details.")


class BadRequest(FeatureLookupError):
    """A request body the server will not look up (status 400; 413 when too large)."""

    def __init__(self, message: str, *, status: int = 400, error: str = "InvalidRequest") -> None:
        super().__init__(message)
        self.status = status
        self.error = error


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        from larder.errors import ConfigError

        raise ConfigError(f"{name}={raw!r} must be a positive integer.")
    return value


@dataclass(frozen=True)
class Limits:
    """Request limits of a feature server (see the module docstring)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH

    @classmethod
    def resolve(cls, max_body_bytes: int | None = None, max_json_depth: int | None = None) -> Limits:
        """The given limits, else the environment's, else the defaults."""
        from larder.errors import ConfigError

        body = max_body_bytes if max_body_bytes is not None else _env_int(MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES)
        depth = max_json_depth if max_json_depth is not None else _env_int(MAX_DEPTH_ENV, DEFAULT_MAX_JSON_DEPTH)
        if body < 1 or depth < 1:
            raise ConfigError(f"Feature server limits must be positive, got max_body_bytes={body}, "
                              f"max_json_depth={depth}.")
        return cls(body, depth)

    def too_large(self, size: int) -> BadRequest:
        return BadRequest(
            f"The request body has {size} bytes or more; this server takes at most {self.max_body_bytes} "
            f"({MAX_BODY_ENV} or `larder serve --max-body-bytes`). Send fewer keys per request.",
            status=413, error="RequestTooLarge",
        )


def export_limits(max_body_bytes: int | None, max_json_depth: int | None) -> None:
    """Check the limits and hand them to the server's worker processes through the environment."""
    Limits.resolve(max_body_bytes, max_json_depth)  # a bad value fails here, not in every worker
    if max_body_bytes is not None:
        os.environ[MAX_BODY_ENV] = str(max_body_bytes)
    if max_json_depth is not None:
        os.environ[MAX_DEPTH_ENV] = str(max_json_depth)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or Infinity); send null or a finite number")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_structure(value: Any, limit: int) -> None:
    """Refuse nesting deeper than ``limit`` and strings that are not Unicode text (a lone surrogate
    escape such as ``"\\ud800"`` is valid JSON but no text encoding can hold it)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise BadRequest(f"The request body holds the string {node[:20]!r}, with a lone UTF-16 surrogate "
                                 "escape: it is not text. Send valid Unicode.", error="InvalidJSON")
            continue
        if isinstance(node, dict):
            children: Any = [*node.keys(), *node.values()]
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            raise BadRequest(f"The request body is nested more than {limit} levels deep "
                             f"({MAX_DEPTH_ENV} or `larder serve --max-json-depth`).", error="InvalidJSON")
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list, str)))


def parse_body(raw: bytes, limits: Limits) -> Any:
    """The request body as JSON, under the limits; :class:`BadRequest` otherwise."""
    if len(raw) > limits.max_body_bytes:
        raise limits.too_large(len(raw))
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest(f"The request body is nested more than {limits.max_json_depth} levels deep.",
                         error="InvalidJSON") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest(f"The request body is not valid JSON: {exc}.", error="InvalidJSON") from None
    # the walk only when it could find something: more brackets than the depth limit, or a \u escape
    if raw.count(b"[") + raw.count(b"{") > limits.max_json_depth or b"\\u" in raw:
        _check_structure(body, limits.max_json_depth)
    return body


def _check_value(column: str, value: Any, where: str, *, key: bool) -> None:
    if value is None:
        if key:
            raise BadRequest(f"{where}: key column {column!r} is null; every row needs a key value.")
        return
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise BadRequest(f"{where}: {column!r} is {value}, outside the signed 64-bit integer range that keys "
                         "and features are stored in.")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"{where}: {column!r} is not a finite number ({value}).")
    if isinstance(value, (list, dict)):  # a list or struct value: every number inside it too
        for inner in value.values() if isinstance(value, dict) else value:
            _check_value(column, inner, where, key=False)


def check_keys(keys: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]], *, required: Sequence[str],
               key_columns: Sequence[str]) -> None:
    """Check the request's keys (records or columns, as the server's body parser returns them): every
    row has every ``required`` column, ``key_columns`` are never null, and every number (extra columns
    included: they come back in the answer) is finite and fits in 64 bits."""
    keyset = set(key_columns)
    if isinstance(keys, Mapping):
        missing = [c for c in required if c not in keys]
        if missing:
            raise BadRequest(f'"keys" lacks the column(s) {missing}; this spec needs {list(required)}.')
        for column, values in keys.items():  # extra columns pass through to the answer: checked too
            for i, value in enumerate(values):
                _check_value(column, value, f"Row {i} of \"keys\"", key=column in keyset)
        return
    for i, record in enumerate(keys):
        missing = [c for c in required if c not in record]
        if missing:
            raise BadRequest(f'Row {i} of "keys" lacks {missing}; every row needs {list(required)}.')
        for column, value in record.items():
            _check_value(column, value, f'Row {i} of "keys"', key=column in keyset)


def error_body(error: str, detail: str) -> bytes:
    return json.dumps({"error": error, "detail": detail}, separators=(",", ":")).encode("utf-8")


def install_error_handlers(app: Any) -> None:
    """Make every error FastAPI or Starlette answer itself larder's JSON ``{"error", "detail"}``."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException

    def respond(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
        return Response(error_body(HTTP_ERRORS.get(status, "HTTPError"), detail), status_code=status,
                        media_type="application/json", headers=dict(headers or {}))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Any, exc: HTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404:
            detail = "No such route. The server answers POST /features/{spec_name}, GET /specs and GET /health."
        return respond(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Any, exc: RequestValidationError) -> Response:
        return respond(422, f"The request does not match this route: {exc.errors()}")

    @app.exception_handler(Exception)
    async def internal(_request: Any, exc: Exception) -> Response:
        _log.error("larder serve: unexpected error", exc_info=exc)
        return respond(500, INTERNAL_DETAIL)


__all__ = ["BadRequest", "Limits", "check_keys", "error_body", "export_limits", "install_error_handlers", "parse_body"]
