"""The web catalog's JSON API over a real catalog: list and search, table pages with time travel,
quality, drift, functions, specs, models, online staleness, lineage, and the OpenAPI document."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from ui_world import DECLARATIVE, FUNCTION, HOUSES, MODEL_NAME, RIDERSHIP, SALES, SPEC


def names(body: dict[str, Any]) -> list[str]:
    return [t["name"] for t in body["tables"]]


# ------------------------------------------------------------------------------------ table list
def test_list_shows_what_the_catalog_records(http: Any) -> None:
    body = http.get("/api/tables").json()
    assert body["total"] == body["catalog_tables"] == 3 and body["stats_pending"] == 0
    assert names(body) == [SALES, HOUSES, RIDERSHIP]  # by name
    by = {t["name"]: t for t in body["tables"]}
    houses, sales = by[HOUSES], by[SALES]
    assert houses["primary_keys"] == ["Id"] and houses["timestamp_key"] is None
    assert houses["rows"] == 85 and houses["version"] == 2 and houses["features"] == 4
    assert houses["tags"] == {"pii": "no", "team": "pricing"} and houses["owner"]
    assert houses["last_write"] is not None and houses["description"].startswith("Ames-like")
    assert sales["entity_keys"] == ["Id"] and sales["timestamp_key"] == "sold_at" and sales["rows"] == 6
    assert sales["primary_keys"] == ["Id", "sold_at"] and sales["features"] == 1


@pytest.mark.parametrize(("query", "expected", "why"), [
    ("ridership", [RIDERSHIP], "name"),
    ("TRAIN", [RIDERSHIP], "description"),            # case-insensitive, in the description
    ("transit", [RIDERSHIP], "tag domain=transit"),  # a tag value
    ("pii", [HOUSES], "tag pii=no"),                 # a tag key
    ("grlivarea", [HOUSES], "feature GrLivArea"),    # a feature name
    ("square feet", [HOUSES], "feature GrLivArea"),  # a feature description, both terms
    ("pricing sold", [SALES], "feature sold_at"),    # every term must match (tag + feature)
    ("default.house", [SALES, HOUSES], "name"),
    ("nothing-like-this", [], None),
    ("%", [], None),                                   # LIKE wildcards are literal
])
def test_search_matches_names_descriptions_tags_and_features(http: Any, query: str, expected: list[str],
                                                              why: str | None) -> None:
    body = http.get("/api/tables", params={"q": query}).json()
    assert names(body) == expected and body["total"] == len(expected) and body["catalog_tables"] == 3
    if why is not None:
        assert all(why in t["matches"] for t in body["tables"]), body["tables"]


def test_sorting_and_paging(http: Any) -> None:
    by_rows = http.get("/api/tables", params={"sort": "rows", "order": "desc"}).json()
    assert names(by_rows) == [HOUSES, SALES, RIDERSHIP]
    page = http.get("/api/tables", params={"sort": "rows", "order": "desc", "limit": 1, "offset": 1}).json()
    assert names(page) == [SALES] and page["total"] == 3
    assert names(http.get("/api/tables", params={"sort": "version", "order": "desc", "limit": 1}).json()) == [HOUSES]
    bad = http.get("/api/tables", params={"sort": "colour"})
    assert bad.status_code == 400 and "colour" in bad.json()["detail"]


def test_the_html_list_pages_and_searches(http: Any) -> None:
    page = http.get("/tables", params={"q": "living", "per_page": 1}, headers={"accept": "text/html"})
    assert page.status_code == 200 and HOUSES in page.text and RIDERSHIP not in page.text
    two = http.get("/tables", params={"per_page": 2, "page": 2}).text
    assert RIDERSHIP in two and HOUSES not in two and "page 2 of 2" in two


# ------------------------------------------------------------------------------------ a table
def test_table_detail_schema_history_models_and_publications(http: Any, ui_world: Any) -> None:
    t = http.get(f"/api/tables/{HOUSES}").json()
    assert t["latest_version"] == t["version"] == 2 and t["rows"] == 85
    cols = {c["name"]: c for c in t["columns"]}
    assert list(cols) == ["Id", "OverallQual", "GrLivArea", "YearBuilt", "Neighborhood"]
    assert cols["Id"]["is_primary_key"] and cols["GrLivArea"]["description"] == "Above-ground living area, square feet"
    assert [h["version"] for h in t["history"]] == [2, 1, 0]
    assert [h["validation"] for h in t["history"]] == ["failed", "passed", "passed"]
    assert t["history"][1]["rows_inserted"] == 20 and t["history"][1]["rows_updated"] == 10
    assert [(m["name"], m["version"], m["table_version"]) for m in t["models"]] == [(MODEL_NAME, "1", 1)]
    assert [(p["delta_version"], p["status"], p["versions_behind"]) for p in t["publications"]] == [(1, "stale", 1)]
    assert http.get("/api/tables/houses").json()["name"] == HOUSES  # short names resolve


def test_time_travel_preview_reads_the_chosen_version(http: Any, ui_world: Any) -> None:
    from larder.client import FeatureEngineeringClient

    with FeatureEngineeringClient(ui_world.root) as fe:
        v0 = fe.read_table(HOUSES, as_of_version=0)
    old = http.get(f"/api/tables/{HOUSES}", params={"version": 0}).json()
    assert old["version"] == 0 and old["latest_version"] == 2
    assert old["preview"]["total_rows"] == 60 and old["preview"]["columns"] == list(v0.columns)
    assert old["preview"]["rows"] == [[None if v != v else v for v in row] for row in
                                      v0.head(20).astype(object).values.tolist()]
    latest = http.get(f"/api/tables/{HOUSES}/preview", params={"limit": 100}).json()
    assert latest["total_rows"] == 85 and len(latest["rows"]) == 85
    assert sum(r[2] is None for r in latest["rows"]) == 5  # NaN areas come back as JSON null
    missing = http.get(f"/api/tables/{HOUSES}", params={"version": 7})
    assert missing.status_code == 400 and "0..2" in missing.json()["detail"]
    assert http.get("/api/tables/main.default.nope").status_code == 404
    assert http.get("/api/tables/bad name!").status_code == 400


def test_quality_profile_expectations_and_last_validation(http: Any) -> None:
    q = http.get(f"/api/tables/{HOUSES}/quality").json()
    assert q["version"] == 2 and q["profiled_versions"] == [0, 1, 2] and q["policy"] == "warn"
    assert q["expectations"] == ["not_null(GrLivArea)", "in_range(OverallQual, min=1, max=10)"]
    area = next(c for c in q["profile"]["columns"] if c["name"] == "GrLivArea")
    assert area["nulls"] == 5 and area["null_fraction"] == 1.0
    assert q["validation_version"] == 2 and not q["validation"]["results"][0]["passed"]
    assert [(v["version"], v["passed"]) for v in q["validations"]] == [(0, True), (1, True), (2, False)]
    v0 = http.get(f"/api/tables/{HOUSES}/quality", params={"version": 0}).json()
    qual = next(c for c in v0["profile"]["columns"] if c["name"] == "OverallQual")
    assert v0["version"] == 0 and v0["profile"]["row_count"] == 60 and sum(qual["histogram"]["counts"]) == 60
    assert http.get(f"/api/tables/{HOUSES}/quality", params={"version": 9}).status_code == 400
    page = http.get(f"/tables/{HOUSES}/quality").text
    assert page.count('<svg class="chart"') >= 5 and "not_null(GrLivArea)" in page


def test_drift_between_two_versions_is_the_clients_comparison(http: Any, ui_world: Any) -> None:
    from larder.client import FeatureEngineeringClient

    d = http.get(f"/api/tables/{HOUSES}/drift", params={"baseline": 0, "current": 2}).json()
    with FeatureEngineeringClient(ui_world.root) as fe:
        expected = fe.compare(HOUSES, 0, 2)
    assert (d["baseline"], d["current"], d["versions"]) == (0, 2, [0, 1, 2])
    got = {f["name"]: (f["verdict"], f["psi"]) for f in d["report"]["features"]}
    assert got == {f.name: (f.verdict, f.psi) for f in expected.features}
    assert got["GrLivArea"][0] != "ok"
    default = http.get(f"/api/tables/{HOUSES}/drift").json()
    assert (default["baseline"], default["current"]) == (1, 2)
    page = http.get(f"/tables/{HOUSES}/drift", params={"baseline": 0, "current": 2}).text
    assert page.count('class="bar base"') > 10 and page.count('class="bar cur"') > 10
    assert http.get(f"/api/tables/{HOUSES}/drift", params={"baseline": 5}).status_code == 400


# ------------------------------------------------------------------------------- functions, specs
def test_functions_with_versions_source_and_users(http: Any) -> None:
    listed = http.get("/api/functions").json()
    assert [(f["name"], f["versions"], f["models"]) for f in listed] == [(FUNCTION, 2, 1)]
    f = http.get(f"/api/functions/{FUNCTION}").json()
    newest, oldest = f["versions"]
    assert newest["current"] and "max(year_sold - year_built, 0)" in newest["source"] and not newest["models"]
    assert "return year_sold - year_built" in oldest["source"]
    assert [m["name"] for m in oldest["models"]] == [MODEL_NAME]
    page = http.get(f"/functions/{FUNCTION}").text
    assert 'class="code"' in page and f'id="v-{oldest["version"]}"' in page
    assert http.get("/api/functions/main.default.nope").status_code == 404


def test_specs(http: Any) -> None:
    (spec,) = http.get("/api/specs").json()
    assert spec["name"] == SPEC and spec["lookups"][0]["table"] == HOUSES
    full = http.get(f"/api/specs/{SPEC}").json()
    assert full["lookups"][0]["features"] == ["OverallQual", "GrLivArea", "YearBuilt"]
    assert full["functions"][0]["name"] == FUNCTION and "lookup:" in full["yaml"]
    assert set(full["input_columns"]) == {"Id", "YrSold"}
    assert http.get("/api/specs/nope").status_code == 404


# --------------------------------------------------------------------------- declarative features
def test_declarative_features_with_source_and_function(http: Any) -> None:
    (f,) = http.get("/api/features").json()
    assert (f["name"], f["source_table"], f["source_version"], f["entity"], f["timeseries_column"]) == (
        DECLARATIVE, SALES, 0, ["Id"], "sold_at")
    assert f["function"].startswith("AggregationFunction(Sum(") and "365" in f["function"]
    assert f["definition"]["function"]["type"] == "aggregation"
    assert http.get(f"/api/features/{DECLARATIVE}").json()["description"] == "Sales of the house in the year before"
    assert http.get("/api/features/main.default.nope").status_code == 404
    g = http.get("/api/lineage", params={"focus": f"dfeature:{DECLARATIVE}"}).json()
    assert {(e["source"], e["target"]) for e in g["edges"]} >= {(f"table:{SALES}", f"dfeature:{DECLARATIVE}")}
    page = http.get(f"/features/{DECLARATIVE}").text
    assert "AggregationFunction" in page and f'href="/tables/{SALES}"' in page


# ------------------------------------------------------------------------------------ models
def test_models_and_their_feature_specs(http: Any, ui_world: Any) -> None:
    body = http.get("/api/models").json()
    assert body["total"] == 1
    (m,) = body["models"]
    assert (m["name"], m["version"], m["tables"], m["features"], m["functions"]) == (MODEL_NAME, "1", [HOUSES], 3, 1)
    assert m["link"] == ui_world.model_path
    d = http.get(f"/api{ui_world.model_path}").json()
    assert d["uri"] == f"models:/{MODEL_NAME}/1" and d["labels"] == ["SalePrice"]
    assert [(t["name"], t["delta_version"], t["online_store"]) for t in d["tables"]] == [
        (HOUSES, 1, "sqlite: online.db")]
    assert d["spec"]["lookups"][0]["table_version"] == 1 and d["spec"]["functions"][0]["output_name"] == "age"
    run = d["run_uri"][len("runs:/"):]
    assert http.get(f"/api/models/runs/{run}").json()["uri"] == d["uri"]
    assert http.get(f"/api/models/{MODEL_NAME}/versions/9").status_code == 404


# ------------------------------------------------------------------------------------ online
def test_online_publications_with_staleness(http: Any) -> None:
    body = http.get("/api/online").json()
    (store,) = body["stores"]
    assert store["name"] == "sqlite: online.db" and store["store_type"] == "sqlite" and body["stale"] == 1
    pubs = {p["table"]: p for p in store["publications"]}
    houses, sales = pubs[HOUSES], pubs[SALES]
    assert (houses["delta_version"], houses["offline_version"], houses["versions_behind"], houses["status"]) == (
        1, 2, 1, "stale")
    assert houses["rows"] == 80 and houses["staleness_s"] >= 0 and houses["store_key"] == store["key"]
    assert (sales["status"], sales["versions_behind"], sales["staleness_s"]) == ("current", 0, 0.0)


# ------------------------------------------------------------------------------------ lineage
def _edge_set(g: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["source"], e["target"]) for e in g["edges"]}


def test_lineage_graph_links_tables_features_specs_models_and_stores(http: Any) -> None:
    g = http.get("/api/lineage").json()
    ids = {n["id"]: n for n in g["nodes"]}
    table, feature, model = f"table:{HOUSES}", f"feature:{HOUSES}:GrLivArea", f"model:{MODEL_NAME}/1"
    spec = next(e["target"] for e in g["edges"] if e["source"] == feature and e["target"].startswith("spec:model:"))
    store = next(i for i in ids if i.startswith("store:"))
    assert {(table, feature), (feature, spec), (spec, model), (model, store), (table, store)} <= _edge_set(g)
    assert (f"feature:{HOUSES}:GrLivArea", f"spec:{SPEC}") in _edge_set(g)
    assert ids[table]["link"] == f"/tables/{HOUSES}" and ids[model]["link"].startswith("/models/")
    assert len([i for i in ids if i.startswith("store:")]) == 1  # one place, whatever spec led there
    xs = {k: ids[k]["x"] for k in (table, feature, spec, model, store)}
    assert xs[table] < xs[feature] < xs[spec] < xs[model] < xs[store]  # left to right
    for e in g["edges"]:
        assert len(e["route"]) >= 2 and e["route"][0][0] < e["route"][-1][0]

    focused = http.get("/api/lineage", params={"focus": model}).json()
    fids = {n["id"] for n in focused["nodes"]}
    assert {table, feature, spec, model, store} <= fids and f"table:{SALES}" not in fids
    assert f"spec:{SPEC}" not in fids  # a sibling, not an ancestor or descendant
    alone = http.get("/api/lineage", params={"focus": f"table:{RIDERSHIP}"}).json()
    assert [n["id"] for n in alone["nodes"]] == [f"table:{RIDERSHIP}"]
    assert http.get("/api/lineage", params={"focus": "table:main.default.nope"}).status_code == 404
    assert http.get("/api/lineage", params={"focus": "gadget:x"}).status_code == 400


def test_a_large_graph_asks_for_a_focus(ui_world: Any) -> None:
    from larder.client import FeatureEngineeringClient
    from larder.ui.lineage import lineage
    from larder.ui.service import CatalogBrowser

    with FeatureEngineeringClient(ui_world.root) as fe:
        g = lineage(CatalogBrowser(fe), max_nodes=3)
    assert g.truncated and not g.nodes and g.total_nodes > 3


# ------------------------------------------------------------------------------- docs and assets
class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "action", "srcset", "poster")]
        if "style" in d or any(k.startswith("on") for k in d) or (tag == "script" and "src" not in d):
            self.inline.append(tag)


PAGES = ["/tables?q=house", f"/tables/{HOUSES}", f"/tables/{HOUSES}?version=0", f"/tables/{HOUSES}/quality",
         f"/tables/{HOUSES}/drift", "/functions", f"/functions/{FUNCTION}", "/specs", f"/specs/{SPEC}", "/models",
         f"/models/{MODEL_NAME}/versions/1", "/online", "/lineage", f"/lineage?focus=table:{HOUSES}", "/edits",
         "/api-docs"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_self_contained(http: Any, path: str) -> None:
    """Every page loads only this app's own files: no other host, no inline script or style (the
    Content-Security-Policy would block them)."""
    r = http.get(path, headers={"accept": "text/html"})
    assert r.status_code == 200, r.text[:500]
    assert "default-src 'none'" in r.headers["content-security-policy"]
    parser = _Refs()
    parser.feed(r.text)
    external = [ref for ref in parser.refs if not ref.startswith(("/", "#", "?", "data:"))]
    assert external == [] and parser.inline == []
    assert float(r.headers["server-timing"].split("dur=")[1]) > 0
    for asset in ("/static/app.css", "/static/app.js", "/static/code.css", "/static/favicon.svg"):
        text = http.get(asset).text
        assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text


def test_openapi_documents_every_api_route(http: Any) -> None:
    doc = http.get("/openapi.json").json()
    api_routes = {(r.path.replace(":path}", "}"), m.lower()) for r in http.app.routes if r.path.startswith("/api/")
                  for m in r.methods}
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert api_routes == documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            schema = op["responses"]["200"]["content"]["application/json"]["schema"]
            assert "$ref" in schema or "$ref" in schema.get("items", {}), (path, method)
            assert op.get("summary") and op.get("description"), (path, method)
    assert "TableList" in doc["components"]["schemas"] and "LineageGraph" in doc["components"]["schemas"]
    assert http.get("/docs").status_code == 404  # no Swagger UI (it would load scripts from a CDN)
