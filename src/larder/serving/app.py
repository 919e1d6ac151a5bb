"""The feature server: a small FastAPI app over :class:`~larder.online.assemble.OnlineFeatureAssembler`.

Endpoints:

``POST /features/{spec_name}``
    Body: the rows with the spec's input columns, in any of MLflow's formats (``dataframe_records``,
    ``dataframe_split``, ``inputs``/``instances``, see :mod:`larder.serving.payloads`) or larder's
    ``{"keys": [{"Id": 1}, {"Id": 2}]}`` (records) / ``{"keys": {"Id": [1, 2]}}`` (columns). Returns
    ``{"spec", "rows", "features": [records in the keys' order], "found": {lookup label: [bool per
    row]}}``. Missing keys get the lookup's defaults, else null, and ``found`` says which keys were in
    the store.
``POST /serving-endpoints/{name}/invocations``
    A feature serving endpoint (``fe.create_feature_serving_endpoint``): the same request bodies, and
    Databricks' response ``{"outputs": [one object per row]}``. ``GET /serving-endpoints`` lists the
    endpoints, ``GET /serving-endpoints/{name}`` describes one.
``POST /push/{table}``
    Rows pushed into a feature table (``fe.push``, see :mod:`larder.online.push`): the same request
    bodies (records or columns; timestamps as ISO 8601 strings), with ``params`` ``{"to": "online" |
    "offline" | "both", "push_id": "...", "read_after_write": true}`` (default ``to``: ``online``).
    Returns the push's result (``rows``, ``push_id``, ``delta_version``, ``online``: per store). Bad
    rows are a 400 with nothing written, an unknown table a 404, a Delta commit whose online write
    failed a 503 naming the ``push_id`` to retry with, a write conflict a 409.
``GET /specs``
    The named feature specs in the catalog, with their input and output columns.
``GET /health``
    ``{"status": "ok"}`` once the catalog can be read, else a 503 ``{"status": "unavailable"}`` (the
    reason is logged, not returned: no paths, URLs or errors to whoever can reach the port).

Errors are JSON ``{"error", "detail"}`` on every route: a malformed body, a row without a key column,
a null, non-finite or over-64-bit key, or a key of the wrong type is a 400 with a message saying what
to fix; a body over the size limit a 413; an unknown spec or route a 404; an online store that cannot
be reached a 503; anything unexpected a 500 that tells nothing of the server's internals. Limits and
checks: :mod:`larder.serving.guard`.

Assemblers (and their store clients) are built once per spec and reused; a spec re-created under
the same name, or a table republished elsewhere, is picked up within
:data:`larder.online.service.CATALOG_REFRESH_S` seconds. Request handlers are ``async`` and call the store
directly: for the embedded SQLite store and Redis a lookup takes well under a millisecond, so this
avoids a thread hop; run several ``--workers`` for concurrency.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at runtime,
# and ``Request`` is imported inside create_app() (fastapi is an optional dependency).
import json
import logging
import math
import os
from typing import Any

from larder.errors import (
    CatalogError,
    FeatureLookupError,
    FeatureSpecError,
    InvalidNameError,
    LarderError,
    MissingKeysError,
    OnlineStoreError,
    OnlineTableNotFoundError,
    PushError,
    PushIncompleteError,
    ServingEndpointError,
    TableError,
    TableNotFoundError,
    ValidationError,
    WriteConflictError,
    require,
)
from larder.redaction import redact_text
from larder.serving.guard import (
    INTERNAL_DETAIL,
    BadRequest,
    Limits,
    check_keys,
    error_body,
    export_limits,
    install_error_handlers,
    parse_body,
)
from larder.serving.payloads import parse_request

_log = logging.getLogger(__name__)


class _State:
    """The client of one server process; it caches an assembler per spec (refreshed periodically)."""

    def __init__(self, root: str | os.PathLike[str] | None) -> None:
        from larder.client import FeatureEngineeringClient

        self.fe = FeatureEngineeringClient(root)

    def assembler(self, spec_name: str) -> Any:
        return self.fe.online_feature_assembler(spec_name, on_missing="null")

    def endpoint_assembler(self, endpoint: str) -> Any:
        return self.assembler(self.fe._endpoints.spec_name(endpoint))

    def close(self) -> None:
        self.fe.close()


def _rows(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)] if names else []


def lookup_payload(asm: Any, spec_name: str, keys: Any) -> dict[str, Any]:
    """The response of ``POST /features/{spec_name}`` for ``keys`` (records or columns)."""
    columns = asm.assemble(keys, include_found=True, output="dict")
    found = {label: columns.pop("_found_" + label) for label in asm.labels}
    rows = _rows(columns)
    return {"spec": asm.spec.name or spec_name, "rows": len(next(iter(found.values()), rows)),
            "features": rows, "found": found}


def endpoint_payload(asm: Any, keys: Any) -> dict[str, Any]:
    """The response of ``POST /serving-endpoints/{name}/invocations``: Databricks' ``{"outputs": [...]}``."""
    return {"outputs": _rows(asm.assemble(keys, output="dict"))}


def _default(value: Any) -> Any:
    """JSON for what ``json`` cannot encode: times as ISO 8601, bytes as base64, durations in seconds."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "total_seconds"):
        return value.total_seconds()
    return str(value)  # Decimal and the like


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _dumps(payload: dict[str, Any]) -> bytes:
    """Compact JSON; NaN and infinities (not JSON) become null."""
    try:
        text = json.dumps(payload, default=_default, allow_nan=False, separators=(",", ":"))
    except ValueError:
        text = json.dumps(_finite(payload), default=_default, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8")


def _error_body(exc: Exception) -> bytes:
    return _dumps({"error": type(exc).__name__, "detail": str(exc)})


class _FeaturesFastLane:
    """ASGI middleware answering ``POST /features/{spec_name}`` directly, before routing.

    The lookup itself takes a few hundred microseconds; Starlette's routing, request and response
    objects would add about as much again. The route stays registered (same handler, for the OpenAPI
    docs and any request this lane passes on)."""

    def __init__(self, app: Any, answer: Any, limits: Limits) -> None:
        self.app = app
        self.answer = answer
        self.limits = limits

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        name = path[len("/features/"):] if path.startswith("/features/") else ""
        if not name or "/" in name or scope.get("method") != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        status, payload = await _read_body(scope, receive, self.limits)
        if status == 200:
            status, payload = self.answer(name, payload)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode("ascii"))]})
        await send({"type": "http.response.body", "body": payload})


async def _read_body(scope: Any, receive: Any, limits: Limits) -> tuple[int, bytes]:
    """(200, the body), or (413, an error) as soon as the declared or received size passes the limit."""
    for name, value in scope.get("headers") or ():
        if name == b"content-length" and value.isdigit() and int(value) > limits.max_body_bytes:
            exc = limits.too_large(int(value))
            return exc.status, error_body(exc.error, str(exc))
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return 400, error_body("InvalidRequest", "The client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_body_bytes:
            exc = limits.too_large(size)
            return exc.status, error_body(exc.error, str(exc))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return 200, b"".join(chunks)


def create_app(root: str | os.PathLike[str] | None = None, *, max_body_bytes: int | None = None,
               max_json_depth: int | None = None) -> Any:
    """The FastAPI application serving the feature specs of the larder at ``root``.

    ``max_body_bytes`` and ``max_json_depth`` bound each request (default 1 MiB and 32 levels, or
    ``LARDER_SERVE_MAX_BODY_BYTES`` / ``LARDER_SERVE_MAX_JSON_DEPTH``; see :mod:`larder.serving.guard`).

    Examples
    --------
    >>> import tempfile
    >>> from fastapi.testclient import TestClient
    >>> with TestClient(create_app(tempfile.mkdtemp())) as http:
    ...     http.get("/health").json()["status"]
    'ok'
    """
    fastapi = require("fastapi", extra="serve", feature="The feature server")
    from contextlib import asynccontextmanager

    from fastapi import Request
    from fastapi.responses import JSONResponse, Response

    holder: dict[str, _State] = {}

    def state() -> _State:
        if "state" not in holder:
            holder["state"] = _State(root)
        return holder["state"]

    @asynccontextmanager
    async def lifespan(_app: Any):  # type: ignore[no-untyped-def]
        state()
        try:
            yield
        finally:
            st = holder.pop("state", None)
            if st is not None:
                st.close()

    limits = Limits.resolve(max_body_bytes, max_json_depth)
    app = fastapi.FastAPI(title="larder feature server", lifespan=lifespan)
    install_error_handlers(app)

    def error(status: int, exc: Exception) -> Response:
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)

    @app.get("/health")
    async def health() -> Response:
        st = state()
        try:
            st.fe.list_feature_specs()
        except LarderError as exc:  # the reason goes to the log, not to whoever can reach the port
            _log.warning("larder serve: health check failed: %s", redact_text(str(exc)))
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/specs")
    async def specs() -> Response:
        st = state()
        out = []
        for spec in st.fe.list_feature_specs():
            out.append({"name": spec.name, "description": spec.description, "input_columns": spec.input_columns,
                        "output_columns": spec.output_columns, "tables": sorted(spec.table_versions())})
        return Response(_dumps({"specs": out}), media_type="application/json")

    columns_of: dict[int, tuple[Any, dict[str, list[str]]]] = {}

    def spec_columns(asm: Any) -> dict[str, list[str]]:
        """The input and key columns of an assembler's spec, computed once per assembler."""
        hit = columns_of.get(id(asm))
        if hit is None or hit[0] is not asm:
            if len(columns_of) > 256:
                columns_of.clear()
            hit = (asm, {"required": list(asm.spec.input_columns), "key_columns": list(asm.spec.key_columns)})
            columns_of[id(asm)] = hit
        return hit[1]

    def respond(raw: bytes, assembler: Any, payload: Any) -> tuple[int, bytes]:
        """Status and JSON body of a lookup request: parse (under the limits), assemble with ``assembler()``,
        check the rows, render with ``payload(asm, rows)``; errors become larder's JSON 4xx/5xx."""
        try:
            body = parse_body(raw, limits)
            asm = assembler()
            try:
                rows, _params = parse_request(body)
                check_keys(rows, **spec_columns(asm))
                return 200, _dumps(payload(asm, rows))
            except BadRequest:
                raise
            except (FeatureLookupError, MissingKeysError) as exc:
                return 400, _error_body(exc)
        except BadRequest as exc:
            return exc.status, error_body(exc.error, str(exc))
        except (FeatureSpecError, OnlineTableNotFoundError, ServingEndpointError) as exc:
            return 404, _error_body(exc)
        except InvalidNameError as exc:
            return 400, _error_body(exc)
        except OnlineStoreError as exc:
            return 503, _error_body(exc)
        except LarderError as exc:
            return 500, _error_body(exc)
        except Exception:  # a bug: logged, answered without internals
            _log.exception("larder serve: unexpected error answering a lookup request")
            return 500, error_body("InternalError", INTERNAL_DETAIL)

    def answer(spec_name: str, raw: bytes) -> tuple[int, bytes]:
        """Status and JSON body of ``POST /features/{spec_name}`` (shared by the route and the fast lane)."""
        st = state()
        return respond(raw, lambda: st.assembler(spec_name), lambda asm, rows: lookup_payload(asm, spec_name, rows))

    @app.post("/serving-endpoints/{name}/invocations")
    async def invocations(name: str, request: Request) -> Response:
        st = state()
        status, payload = await _read_body(request.scope, request.receive, limits)
        if status == 200:
            status, payload = respond(payload, lambda: st.endpoint_assembler(name), endpoint_payload)
        return Response(payload, status_code=status, media_type="application/json")

    @app.get("/serving-endpoints")
    async def endpoints() -> Response:
        return Response(_dumps({"endpoints": [e.to_dict() for e in state().fe._endpoints.list()]}),
                        media_type="application/json")

    @app.get("/serving-endpoints/{name}")
    async def endpoint(name: str) -> Response:
        try:
            return Response(_dumps(state().fe.get_feature_serving_endpoint(name=name).to_dict()),
                            media_type="application/json")
        except ServingEndpointError as exc:
            return error(404, exc)

    def push_answer(table: str, raw: bytes) -> tuple[int, bytes]:
        """Status and JSON body of ``POST /push/{table}``."""
        try:
            rows, params = parse_request(parse_body(raw, limits))
            unknown = sorted(set(params) - {"to", "push_id", "read_after_write"})
            if unknown:
                raise BadRequest(f"Unknown push param(s) {unknown}; allowed: to, push_id, "
                                 "read_after_write.")
            result = state().fe.push(table, rows, to=params.get("to", "online"), push_id=params.get("push_id"),
                                     read_after_write=params.get("read_after_write", False))
            return 200, _dumps(result.to_dict())
        except BadRequest as exc:
            return exc.status, error_body(exc.error, str(exc))
        except (TableNotFoundError, OnlineTableNotFoundError) as exc:
            return 404, _error_body(exc)
        except WriteConflictError as exc:
            return 409, _error_body(exc)
        except (PushIncompleteError, OnlineStoreError, CatalogError) as exc:
            return 503, _error_body(exc)
        except (TableError, PushError, FeatureLookupError, InvalidNameError, ValidationError) as exc:
            return 400, _error_body(exc)
        except LarderError as exc:
            return 500, _error_body(exc)
        except Exception:  # a bug: logged, answered without internals
            _log.exception("larder serve: unexpected error answering a push request")
            return 500, error_body("InternalError", INTERNAL_DETAIL)

    @app.post("/push/{table}")
    async def push(table: str, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        status, payload = await _read_body(request.scope, request.receive, limits)
        if status == 200:  # a push commits to Delta: off the event loop, so lookups go on meanwhile
            status, payload = await run_in_threadpool(push_answer, table, payload)
        return Response(payload, status_code=status, media_type="application/json")

    @app.post("/features/{spec_name}")
    async def features(spec_name: str, request: Request) -> Response:
        status, payload = await _read_body(request.scope, request.receive, limits)
        if status == 200:
            status, payload = answer(spec_name, payload)
        return Response(payload, status_code=status, media_type="application/json")

    app.add_middleware(_FeaturesFastLane, answer=answer, limits=limits)
    return app


def run(*, root: str | os.PathLike[str] | None = None, host: str = "127.0.0.1", port: int = 8000,
        workers: int = 1, log_level: str = "warning", max_body_bytes: int | None = None,
        max_json_depth: int | None = None) -> None:
    """Run the feature server with uvicorn (blocks until stopped). The limits reach every worker
    through the environment (``LARDER_SERVE_MAX_BODY_BYTES``, ``LARDER_SERVE_MAX_JSON_DEPTH``)."""
    uvicorn = require("uvicorn", extra="serve", feature="The feature server")
    require("fastapi", extra="serve", feature="The feature server")
    if root is not None:
        os.environ["LARDER_ROOT"] = str(root)
    export_limits(max_body_bytes, max_json_depth)
    uvicorn.run("larder.serving.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=False)


__all__ = ["create_app", "run"]
