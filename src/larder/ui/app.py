"""The web catalog: a FastAPI app serving server-rendered pages and a JSON API over one larder root.

Pages (HTML) and their API routes (JSON, in the OpenAPI document at ``/openapi.json`` and readable at
``/api-docs``)::

    /tables                        /api/tables?q=&sort=&order=&offset=&limit=   searchable table list
    /tables/{name}?version=        /api/tables/{name}?version=                   schema, history, time travel
                                   /api/tables/{name}/preview?version=&limit=
    /tables/{name}/quality         /api/tables/{name}/quality?version=           profile, expectations, runs
    /tables/{name}/drift           /api/tables/{name}/drift?baseline=&current=   drift between two versions
                                   PATCH /api/tables/{name}                      edit (only with allow_edit)
    /features, /features/{name}    /api/features, /api/features/{name}           declarative features
    /functions, /functions/{name}  /api/functions, /api/functions/{name}         versions and source
    /specs, /specs/{name}          /api/specs, /api/specs/{name}                 named feature specs
    /models, /models/{n}/versions/{v}  /api/models, /api/models/{n}/versions/{v} models and their specs
    /online                        /api/online                                   publications, staleness
    /lineage?focus=                /api/lineage?focus=                           the lineage graph
    /edits                         /api/edits?name=                              the audit trail of edits
                                   /api/health

Everything the pages load (stylesheet, script, icon) is package data of :mod:`larder.ui`; nothing is
fetched from another host, and the Content-Security-Policy forbids it. Handlers are synchronous and
run in the server's thread pool (catalog sessions and Delta reads block).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at runtime, and
# ``Request`` and friends are imported inside create_app() (fastapi is an optional dependency).
import logging
import os
import threading
from collections.abc import Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from larder.catalog.base import current_user
from larder.errors import (
    CatalogError,
    ConfigError,
    FeatureDefinitionError,
    FeatureNotFoundError,
    FeatureSpecError,
    FunctionNotFoundError,
    InvalidNameError,
    LarderError,
    ModelError,
    OnlineTableNotFoundError,
    TableError,
    TableNotFoundError,
    require,
)

_log = logging.getLogger(__name__)

TOKEN_ENV = "LARDER_UI_TOKEN"
#: Host names a server bound to a loopback address answers to.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
           "favicon.svg": "image/svg+xml"}


def status_of(exc: LarderError) -> int:
    """The HTTP status of a larder error raised while answering a request."""
    if isinstance(exc, TableNotFoundError | FunctionNotFoundError | FeatureSpecError | ModelError
                  | OnlineTableNotFoundError | FeatureNotFoundError):
        return 404
    if isinstance(exc, InvalidNameError | ConfigError | TableError | FeatureDefinitionError):
        return 400
    if isinstance(exc, CatalogError):
        return 503
    return 500


class _State:
    """The client and page builder of one app, opened at startup (or on first use when mounted)."""

    def __init__(self, root: str | os.PathLike[str] | None, allow_edit: bool, backfill: bool) -> None:
        self.root, self.allow_edit, self.backfill = root, allow_edit, backfill
        self._lock = threading.Lock()
        self._browser: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def browser(self) -> Any:
        if self._browser is None:
            with self._lock:
                if self._browser is None:
                    from larder.client import FeatureEngineeringClient
                    from larder.ui.service import CatalogBrowser

                    self._browser = CatalogBrowser(FeatureEngineeringClient(self.root), editable=self.allow_edit)
                    if self.backfill:
                        self._thread = threading.Thread(target=self._fill, name="larder-ui-stats", daemon=True)
                        self._thread.start()
        return self._browser

    def _fill(self) -> None:
        from larder.ui.service import backfill_stats

        try:
            self._browser.index.refresh()  # load the table list's index before the first request needs it
            n = backfill_stats(self._browser.fe, stop=self._stop)
            if n:
                _log.info("recorded the row counts and versions of %d tables", n)
        except LarderError as exc:  # a read-only catalog: the list shows what it has
            _log.warning("could not record table stats: %s", exc)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._browser is not None:
            self._browser.fe.close()
            self._browser = None


def _templates() -> Any:
    jinja2 = require("jinja2", extra="ui", feature="The web catalog")
    env = jinja2.Environment(loader=jinja2.PackageLoader("larder.ui", "templates"),
                             autoescape=jinja2.select_autoescape(("html",)), trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(when=_when, ago=_ago, num=_num, dur=_dur, q=lambda s: quote(str(s), safe=""),
                       qp=lambda s: quote(str(s)))
    from larder.ui import svg

    env.globals.update(svg=svg, now=lambda: datetime.now(UTC), zip=zip)
    return env


def _when(t: datetime | None) -> str:
    if t is None:
        return ""
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ago(t: datetime | None) -> str:
    if t is None:
        return ""
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return _dur((datetime.now(UTC) - t).total_seconds()) + " ago"


def _dur(s: float | None) -> str:
    if s is None:
        return ""
    s = abs(float(s))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.1f} {unit}".replace(".0 ", " ")
    return f"{s:.0f} s" if s >= 1 else f"{s * 1000:.0f} ms"


def _num(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.4g}"
    return f"{v:,}"


def _code_css() -> str:
    from pygments.formatters import HtmlFormatter

    return str(HtmlFormatter(style="default").get_style_defs(".code"))


def highlight(source: str) -> str:
    """Python source as highlighted HTML (classes styled by ``/static/code.css``)."""
    from pygments import highlight as _hl
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return str(_hl(source, PythonLexer(), HtmlFormatter(cssclass="code", linenos=False)))


def create_app(root: str | os.PathLike[str] | None = None, *, token: str | None = None, allow_edit: bool = False,
               allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS, backfill_stats: bool = True) -> Any:
    """The web catalog over the larder at ``root`` (default ``$LARDER_ROOT``, else ``./.larder``).

    Parameters
    ----------
    token
        Protect every route with this token (default: ``$LARDER_UI_TOKEN`` if set; ``""`` turns it off).
    allow_edit
        Accept edits of descriptions, tags and owners (recorded with who and when); read-only otherwise.
    allowed_hosts
        Host names the ``Host`` header may carry (default: loopback names); None accepts any.
    backfill_stats
        Record, in the background, the row counts and versions of tables whose catalog lacks them.

    Examples
    --------
    >>> import tempfile
    >>> from fastapi.testclient import TestClient
    >>> with TestClient(create_app(tempfile.mkdtemp(), token=""), base_url="http://127.0.0.1") as http:
    ...     http.get("/api/tables").json()["total"]
    0
    """
    fastapi = require("fastapi", extra="ui", feature="The web catalog")
    from fastapi import Body, Query, Request
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

    from larder.ui import schemas as S  # noqa: N812
    from larder.ui.auth import Gate

    token = os.environ.get(TOKEN_ENV) if token is None else token
    state = _State(root, allow_edit, backfill_stats)
    env = _templates()
    static = resources.files("larder.ui") / "static"

    @asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        state.browser  # noqa: B018 - open the catalog before the first request
        try:
            yield
        finally:
            state.close()

    app = fastapi.FastAPI(
        title="larder catalog", lifespan=lifespan, docs_url=None, redoc_url=None,
        description="Browse larder's feature tables, features, functions, feature specs, models, online "
        "publications, lineage and data quality. Every page of the web catalog has a JSON route here.",
    )
    app.state.larder = state

    def base(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def json(model: Any, status: int = 200) -> Response:
        return Response(model.model_dump_json(), status_code=status, media_type="application/json")

    def page(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        b = base(request)
        html = env.get_template(template).render(
            base=b, request_path=request.url.path, editable=state.allow_edit, root=state.browser.fe.root,
            protected=bool(token), highlight=highlight, **ctx)
        return HTMLResponse(html, status_code=status)

    @app.exception_handler(LarderError)
    async def larder_error(request: Request, exc: LarderError) -> Response:
        status = status_of(exc)
        path = request.url.path[len(base(request)):]
        if path.startswith("/api/"):
            return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)
        return page(request, "error.html", status=status, title=f"{status}", error=type(exc).__name__,
                    detail=str(exc))

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Any) -> Response:
        path = request.url.path[len(base(request)):]
        detail = getattr(exc, "detail", "Not Found")
        if path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"error": "NotFound", "detail": detail}, status_code=404)
        return page(request, "error.html", status=404, title="404", error="Not found",
                    detail=f"There is no page at {request.url.path}.")

    # ------------------------------------------------------------------------------ static files
    @app.get("/static/{filename}", include_in_schema=False)
    def static_file(filename: str) -> Response:
        if filename == "code.css":
            return Response(_code_css(), media_type="text/css; charset=utf-8")
        if filename not in _STATIC:
            return JSONResponse({"error": "NotFound", "detail": f"No static file {filename!r}."}, status_code=404)
        return Response((static / filename).read_bytes(), media_type=_STATIC[filename])

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response((static / "favicon.svg").read_bytes(), media_type="image/svg+xml")

    # ------------------------------------------------------------------------------------ health
    @app.get("/api/health", response_model=S.Health, tags=["catalog"], summary="Health")
    def health() -> Response:
        """``ok`` once the catalog can be read, with the number of tables."""
        listed = state.browser.tables(limit=1)
        return json(S.Health(status="ok", root=state.browser.fe.root, tables=listed.catalog_tables,
                             editable=state.allow_edit))

    # ------------------------------------------------------------------------------------ tables
    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        return RedirectResponse(f"{base(request)}/tables", status_code=307)

    @app.get("/api/tables", response_model=S.TableList, tags=["tables"], summary="List and search tables")
    def api_tables(q: str = Query("", description="Search terms; each must match a table's name, description, "
                                  "a tag key or value, or a feature's name or description (case-insensitive)."),
                   sort: str = Query("name", description="name, owner, rows, version or last_write."),
                   order: str = Query("asc", description="asc or desc."),
                   offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=500)) -> Response:
        """One page of the feature tables matching ``q``."""
        return json(state.browser.tables(q, sort=sort, order=order, offset=offset, limit=limit))

    @app.get("/tables", response_class=HTMLResponse, include_in_schema=False)
    def tables_page(request: Request, q: str = "", sort: str = "name", order: str = "asc",
                    page_no: int = Query(1, alias="page", ge=1), per_page: int = Query(50, ge=1, le=500)) -> Response:
        data = state.browser.tables(q, sort=sort, order=order, offset=(page_no - 1) * per_page, limit=per_page)
        pages = max((data.total + per_page - 1) // per_page, 1)

        def link(**over: Any) -> str:
            params = {"q": q, "sort": sort, "order": order, "page": page_no, "per_page": per_page, **over}
            defaults = {"q": "", "sort": "name", "order": "asc", "page": 1, "per_page": 50}
            return f"{base(request)}/tables?" + urlencode({k: v for k, v in params.items() if defaults.get(k) != v})

        return page(request, "tables.html", title="Feature tables", data=data, page_no=page_no, pages=pages,
                    per_page=per_page, link=link)

    @app.get("/api/tables/{name}", response_model=S.TableDetail, tags=["tables"], summary="A table")
    def api_table(name: str, version: int | None = Query(None, ge=0, description="Version to show (time travel).")
                  ) -> Response:
        """Schema with descriptions, version history, the first rows at ``version``, models that read the
        table, its publications and its edits."""
        return json(state.browser.table(name, version))

    @app.get("/api/tables/{name}/preview", response_model=S.Preview, tags=["tables"], summary="Rows at a version")
    def api_preview(name: str, version: int | None = Query(None, ge=0),
                    limit: int = Query(20, ge=0, le=1000)) -> Response:
        """The first ``limit`` rows of the table as of Delta ``version`` (default: latest)."""
        return json(state.browser.preview(name, version, limit=limit))

    @app.get("/tables/{name}", response_class=HTMLResponse, include_in_schema=False)
    def table_page(request: Request, name: str, version: int | None = Query(None, ge=0)) -> Response:
        data = state.browser.table(name, version)
        return page(request, "table.html", title=data.name, data=data, tab="overview")

    @app.get("/api/tables/{name}/quality", response_model=S.QualityView, tags=["tables"], summary="Data quality")
    def api_quality(name: str, version: int | None = Query(None, ge=0, description="Profiled version to show.")
                    ) -> Response:
        """The profile of ``version`` (default: the latest profiled), expectations, and validation runs."""
        return json(state.browser.quality(name, version))

    @app.get("/tables/{name}/quality", response_class=HTMLResponse, include_in_schema=False)
    def quality_page(request: Request, name: str, version: int | None = Query(None, ge=0)) -> Response:
        data = state.browser.quality(name, version)
        nulls: dict[str, list[tuple[int, float]]] = {}
        if data.profiled_versions and len(data.profiled_versions) > 1:
            from larder.quality.store import list_profiles

            for v, prof in list_profiles(state.browser.catalog, data.name):
                for c in prof.columns:
                    nulls.setdefault(c.name, []).append((v, c.null_fraction))
        return page(request, "quality.html", title=f"{data.name}: quality", data=data, nulls=nulls, tab="quality")

    @app.get("/api/tables/{name}/drift", response_model=S.DriftView, tags=["tables"], summary="Drift")
    def api_drift(name: str, baseline: int | None = Query(None, ge=0, description="Default: current - 1."),
                  current: int | None = Query(None, ge=0, description="Default: the latest version.")) -> Response:
        """PSI, KS or chi-square / Jensen-Shannon per feature between two Delta versions, with their bins."""
        return json(state.browser.drift(name, baseline, current))

    @app.get("/tables/{name}/drift", response_class=HTMLResponse, include_in_schema=False)
    def drift_page(request: Request, name: str, baseline: int | None = Query(None, ge=0),
                   current: int | None = Query(None, ge=0)) -> Response:
        data = state.browser.drift(name, baseline, current)
        return page(request, "drift.html", title=f"{data.name}: drift", data=data, tab="drift")

    @app.patch("/api/tables/{name}", response_model=S.EditResult, tags=["edits"], summary="Edit a table",
               responses={403: {"description": "The catalog runs read-only (start it with --allow-edit)."}})
    def api_edit(request: Request, name: str, edit: S.TableEdit = Body(...)) -> Response:
        """Change a table's description, owner, tags or feature descriptions. Each change is recorded with
        who made it (the ``X-Larder-User`` header, else the server's user) and when."""
        if not state.allow_edit:
            return JSONResponse({"error": "ReadOnly", "detail": "This catalog is read-only: start it with "
                                 "`larder ui --allow-edit` to edit descriptions, tags and owners."}, status_code=403)
        from larder.ui.edits import apply_table_edit

        editor = (request.headers.get("x-larder-user") or "").strip() or _server_user()
        changes = apply_table_edit(state.browser.catalog, name, edit, editor=editor)
        return json(S.EditResult(name=state.browser._full_table_name(name), changes=changes))

    # --------------------------------------------------------------------------------- functions
    @app.get("/api/functions", response_model=list[S.FunctionSummary], tags=["functions"],
             summary="List functions")
    def api_functions() -> Response:
        """Every feature function with its current version."""
        return _json_list(state.browser.functions())

    @app.get("/functions", response_class=HTMLResponse, include_in_schema=False)
    def functions_page(request: Request) -> Response:
        return page(request, "functions.html", title="Feature functions", data=state.browser.functions())

    @app.get("/api/functions/{name}", response_model=S.FunctionDetail, tags=["functions"], summary="A function")
    def api_function(name: str) -> Response:
        """Every version of a function (newest first) with its source and the models using it."""
        return json(state.browser.function(name))

    @app.get("/functions/{name}", response_class=HTMLResponse, include_in_schema=False)
    def function_page(request: Request, name: str) -> Response:
        data = state.browser.function(name)
        return page(request, "function.html", title=data.name, data=data)

    # ------------------------------------------------------------------------ declarative features
    @app.get("/api/features", response_model=list[S.DeclarativeFeatureView], tags=["features"],
             summary="List declarative features")
    def api_features() -> Response:
        """Every registered declarative feature: source, function, window, entity, models using it."""
        return _json_list(state.browser.declarative_features())

    @app.get("/features", response_class=HTMLResponse, include_in_schema=False)
    def features_page(request: Request) -> Response:
        return page(request, "features.html", title="Declarative features", data=state.browser.declarative_features())

    @app.get("/api/features/{name}", response_model=S.DeclarativeFeatureView, tags=["features"],
             summary="A declarative feature")
    def api_feature(name: str) -> Response:
        """One registered declarative feature, with its stored definition."""
        return json(state.browser.declarative_feature(name))

    @app.get("/features/{name}", response_class=HTMLResponse, include_in_schema=False)
    def feature_page(request: Request, name: str) -> Response:
        data = state.browser.declarative_feature(name)
        return page(request, "feature.html", title=data.name, data=data)

    # ------------------------------------------------------------------------------------- specs
    @app.get("/api/specs", response_model=list[S.SpecView], tags=["specs"], summary="List feature specs")
    def api_specs() -> Response:
        """Every named feature spec in the catalog."""
        return _json_list(state.browser.specs())

    @app.get("/specs", response_class=HTMLResponse, include_in_schema=False)
    def specs_page(request: Request) -> Response:
        return page(request, "specs.html", title="Feature specs", data=state.browser.specs())

    @app.get("/api/specs/{name}", response_model=S.SpecView, tags=["specs"], summary="A feature spec")
    def api_spec(name: str) -> Response:
        """A named feature spec: lookups and functions with pinned versions, and its YAML."""
        return json(state.browser.spec(name))

    @app.get("/specs/{name}", response_class=HTMLResponse, include_in_schema=False)
    def spec_page(request: Request, name: str) -> Response:
        data = state.browser.spec(name)
        return page(request, "spec.html", title=data.name or name, data=data)

    # ------------------------------------------------------------------------------------ models
    @app.get("/api/models", response_model=S.ModelList, tags=["models"], summary="List models")
    def api_models() -> Response:
        """Every model version logged with larder, newest first."""
        return json(state.browser.models())

    @app.get("/models", response_class=HTMLResponse, include_in_schema=False)
    def models_page(request: Request) -> Response:
        return page(request, "models.html", title="Models", data=state.browser.models())

    @app.get("/api/models/{name}/versions/{version}", response_model=S.ModelDetail, tags=["models"],
             summary="A registered model version")
    def api_model(name: str, version: str) -> Response:
        """A registered model version: its tables at their pinned versions, feature spec and stores."""
        return json(state.browser.model(name, version))

    @app.get("/models/{name}/versions/{version}", response_class=HTMLResponse, include_in_schema=False)
    def model_page(request: Request, name: str, version: str) -> Response:
        data = state.browser.model(name, version)
        return page(request, "model.html", title=f"{data.name} version {data.version}", data=data)

    @app.get("/api/models/runs/{run_id}/{artifact_path:path}", response_model=S.ModelDetail, tags=["models"],
             summary="An unregistered logged model")
    def api_model_run(run_id: str, artifact_path: str) -> Response:
        """A model logged without a registered name, by its MLflow run and artifact path."""
        return json(state.browser.model(run_uri=f"runs:/{run_id}/{artifact_path}".rstrip("/")))

    @app.get("/models/runs/{run_id}/{artifact_path:path}", response_class=HTMLResponse, include_in_schema=False)
    def model_run_page(request: Request, run_id: str, artifact_path: str) -> Response:
        data = state.browser.model(run_uri=f"runs:/{run_id}/{artifact_path}".rstrip("/"))
        return page(request, "model.html", title=data.name, data=data)

    # ------------------------------------------------------------------------------------ online
    @app.get("/api/online", response_model=S.OnlineView, tags=["online"], summary="Online publications")
    def api_online() -> Response:
        """Active publications per online store, with their staleness against the offline tables."""
        return json(state.browser.online())

    @app.get("/online", response_class=HTMLResponse, include_in_schema=False)
    def online_page(request: Request) -> Response:
        return page(request, "online.html", title="Online publications", data=state.browser.online())

    # ----------------------------------------------------------------------------------- lineage
    @app.get("/api/lineage", response_model=S.LineageGraph, tags=["lineage"], summary="Lineage graph")
    def api_lineage(focus: str | None = Query(None, description="A node id, e.g. table:main.default.houses or "
                                              "model:<name>/<version>: its ancestors and descendants only.")
                    ) -> Response:
        """Nodes (tables, features, functions, specs, models, stores) with positions, and edges."""
        from larder.ui.lineage import lineage

        return json(lineage(state.browser, focus))

    @app.get("/lineage", response_class=HTMLResponse, include_in_schema=False)
    def lineage_page(request: Request, focus: str | None = None) -> Response:
        from larder.ui.lineage import lineage

        graph = lineage(state.browser, focus or None)
        models = state.browser.models().models if graph.truncated else []
        return page(request, "lineage.html", title="Lineage", data=graph, models=models)

    # ------------------------------------------------------------------------------------- edits
    @app.get("/api/edits", response_model=S.EditList, tags=["edits"], summary="Edit history")
    def api_edits(name: str | None = Query(None, description="Only edits of this table (full name)."),
                  limit: int = Query(200, ge=1, le=5000)) -> Response:
        """Metadata edits made through the web catalog, newest first."""
        full = None if name is None else state.browser._full_table_name(name)
        return json(S.EditList(edits=state.browser.edits(full, limit=limit)))

    @app.get("/edits", response_class=HTMLResponse, include_in_schema=False)
    def edits_page(request: Request) -> Response:
        return page(request, "edits.html", title="Edits", data=state.browser.edits(limit=500))

    @app.get("/api-docs", response_class=HTMLResponse, include_in_schema=False)
    def api_docs(request: Request) -> Response:
        return page(request, "api_docs.html", title="API", spec=app.openapi())

    def _json_list(items: list[Any]) -> Response:
        body = "[" + ",".join(i.model_dump_json() for i in items) + "]"
        return Response(body, media_type="application/json")

    app.add_middleware(Gate, token=token, allowed_hosts=allowed_hosts)  # type: ignore[arg-type]
    return app


def _server_user() -> str:
    return current_user() or "unknown"


def allowed_hosts_for(host: str, extra: Sequence[str] = ()) -> list[str] | None:
    """The Host names a server bound to ``host`` answers to: loopback names for a loopback address,
    else any (None) unless ``extra`` lists them."""
    if host in ("127.0.0.1", "localhost", "::1") or host.startswith("127."):
        return [*LOOPBACK_HOSTS, host, *extra]
    return list(extra) if extra else None


def run(*, root: str | os.PathLike[str] | None = None, host: str = "127.0.0.1", port: int = 8050,
        token: str | None = None, allow_edit: bool = False, allowed_hosts: Sequence[str] = (),
        log_level: str = "warning") -> None:
    """Serve the web catalog with uvicorn (blocks until stopped)."""
    uvicorn = require("uvicorn", extra="ui", feature="The web catalog")
    app = create_app(root, token=token, allow_edit=allow_edit, allowed_hosts=allowed_hosts_for(host, allowed_hosts))
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


def mount_on_feature_server(server: Any, ui: Any, path: str = "/ui") -> Any:
    """Mount the web catalog ``ui`` at ``path`` of the feature server app ``server``; both apps' startup
    and shutdown run (a mounted app's own lifespan would not)."""
    outer = server.router.lifespan_context
    inner = ui.router.lifespan_context

    @asynccontextmanager
    async def both(app: Any) -> Any:
        async with outer(app), inner(ui):
            yield

    server.router.lifespan_context = both
    server.mount(path, ui)
    return server


def combined_app() -> Any:
    """``larder serve --ui``'s app factory: the feature server with the web catalog at ``/ui``
    (options from ``LARDER_ROOT``, ``LARDER_UI_TOKEN``, ``LARDER_UI_ALLOW_EDIT``, ``LARDER_UI_HOSTS``)."""
    from larder.serving.app import create_app as feature_server

    hosts = os.environ.get("LARDER_UI_HOSTS")
    ui = create_app(None, allow_edit=os.environ.get("LARDER_UI_ALLOW_EDIT") == "1",
                    allowed_hosts=None if hosts == "*" else hosts.split(",") if hosts else LOOPBACK_HOSTS)
    return mount_on_feature_server(feature_server(None), ui)


def run_with_feature_server(*, root: str | os.PathLike[str] | None = None, host: str = "127.0.0.1",
                            port: int = 8000, workers: int = 1, token: str | None = None, allow_edit: bool = False,
                            allowed_hosts: Sequence[str] = (), log_level: str = "warning") -> None:
    """``larder serve --ui``: the feature server, with the web catalog at ``/ui``."""
    uvicorn = require("uvicorn", extra="ui", feature="The web catalog")
    require("fastapi", extra="ui", feature="The web catalog")
    if root is not None:
        os.environ["LARDER_ROOT"] = str(root)
    if token is not None:
        os.environ[TOKEN_ENV] = token
    os.environ["LARDER_UI_ALLOW_EDIT"] = "1" if allow_edit else "0"
    hosts = allowed_hosts_for(host, allowed_hosts)
    os.environ["LARDER_UI_HOSTS"] = "*" if hosts is None else ",".join(hosts)
    uvicorn.run("larder.ui.app:combined_app", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=False)


__all__ = ["LOOPBACK_HOSTS", "TOKEN_ENV", "allowed_hosts_for", "combined_app", "create_app", "highlight",
           "mount_on_feature_server", "run", "run_with_feature_server", "status_of"]
