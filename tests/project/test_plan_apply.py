"""Features as code: ``larder plan DIR`` / ``larder apply DIR`` against a real catalog (SQLite, and the
team deployment's PostgreSQL catalog with tables on the S3 API server)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from larder.catalog.managed import ManagedObjectRecord
from larder.cli.main import app
from larder.client import FeatureEngineeringClient
from larder.errors import FeatureExistsError, ProjectError, TableNotFoundError
from larder.project import ProjectService

runner = CliRunner()

TABLES = '''
from larder.project import FeatureTableDefinition

transactions = FeatureTableDefinition(
    name="main.shop.transactions", primary_keys=["tx_id"],
    schema={"tx_id": "long", "user_id": "long", "amount": "double", "kind": "string", "ts": "timestamp"},
    description="card transactions", tags={"team": "risk"},
    feature_descriptions={"amount": "amount in EUR"})
'''

FEATURES = '''
from datetime import timedelta

from larder.entities import AggregationFunction, Count, DeltaTableSource, Feature, RollingWindow, Sum

src = DeltaTableSource(catalog_name="main", schema_name="shop", table_name="transactions")
spend = Feature(source=src, function=AggregationFunction(Sum(input="amount"), RollingWindow(window_duration=timedelta(days=7))),
                entity=["user_id"], timeseries_column="ts", name="spend_7d", description="7-day spend")
orders = Feature(source=src, function=AggregationFunction(Count(input="tx_id"), RollingWindow(window_duration=timedelta(days=1))),
                 entity=["user_id"], timeseries_column="ts", name="orders_1d")
'''


def write(project: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            path.unlink()
        else:
            path.write_text(textwrap.dedent(text))
    return project


def cli(root: Path, *args: str, input: str | None = None):
    return runner.invoke(app, [*args, "--root", str(root)], input=input)


def plan_json(root: Path, project: Path, *extra: str) -> dict:
    result = cli(root, "plan", str(project), "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def actions(plan: dict) -> list[tuple[str, str, str]]:
    return [(c["action"], c["kind"], c["name"]) for c in plan["changes"]]


def managed(fe: FeatureEngineeringClient) -> dict[tuple[str, str], str]:
    with fe._ctx.catalog.session() as s:
        return {(r.kind, r.full_name): r.project for r in s.scalars(select(ManagedObjectRecord))}


@pytest.mark.deployments("local", "team")
def test_plan_writes_nothing_apply_creates_then_updates_and_deletes(fe, larder_root: Path, tmp_path: Path) -> None:
    project = write(tmp_path / "shop", {"tables.py": TABLES, "features.py": FEATURES})
    first = cli(larder_root, "plan", str(project), "--detailed-exitcode")
    assert first.exit_code == 2, first.output
    assert "3 to create, 0 to update, 0 to delete" in first.stdout and "sum(amount)" in first.stdout
    plan = plan_json(larder_root, project)
    assert plan["project"] == "shop" and plan["summary"] == {"create": 3, "update": 0, "delete": 0, "unchanged": 0}
    assert actions(plan) == [("create", "table", "main.shop.transactions"),
                             ("create", "feature", "main.shop.orders_1d"), ("create", "feature", "main.shop.spend_7d")]
    assert plan["changes"][0]["file"] == "tables.py" and plan["changes"][1]["file"] == "features.py"
    # plan wrote nothing
    assert fe.list_tables() == [] and fe.list_features(catalog_name="main", schema_name="shop") == []
    assert managed(fe) == {}

    applied = cli(larder_root, "apply", str(project), "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 3 created, 0 updated, 0 deleted." in applied.stdout
    table = fe.get_table("main.shop.transactions")
    assert table.primary_keys == ["tx_id"] and table.tags == {"team": "risk"}
    assert table.description == "card transactions"
    assert {f.name: f.description for f in table.features}["amount"] == "amount in EUR"
    assert fe.get_feature(full_name="main.shop.spend_7d").description == "7-day spend"
    assert managed(fe) == {("table", "main.shop.transactions"): "shop", ("feature", "main.shop.orders_1d"): "shop",
                           ("feature", "main.shop.spend_7d"): "shop"}
    # the registered features compute on the table's rows
    ts = pd.to_datetime(["2026-01-01", "2026-01-03", "2026-01-09"], utc=True)
    fe.write_table("main.shop.transactions", pd.DataFrame(
        {"tx_id": [1, 2, 3], "user_id": [7, 7, 7], "amount": [10.0, 5.0, 1.0], "kind": ["a", "b", "a"], "ts": ts}))
    values = fe.compute_features(features=["main.shop.spend_7d"])
    assert values["spend_7d"].tolist()[1:] == [10.0, 5.0]

    again = cli(larder_root, "plan", str(project), "--detailed-exitcode")
    assert again.exit_code == 0 and "No changes" in again.stdout, again.output

    # change a window, a tag and a description; drop a feature
    write(project, {
        "tables.py": TABLES.replace('"risk"', '"fraud"'),
        "features.py": FEATURES.replace("days=7", "days=14").replace('"7-day spend"', '"spend"').split("orders =")[0],
    })
    plan = plan_json(larder_root, project)
    assert plan == plan_json(larder_root, project)  # stable
    assert actions(plan) == [("update", "table", "main.shop.transactions"),
                             ("delete", "feature", "main.shop.orders_1d"), ("update", "feature", "main.shop.spend_7d")]
    by_name = {c["name"]: c["changes"] for c in plan["changes"]}
    assert by_name["main.shop.transactions"] == [{"field": "tags", "before": {"team": "risk"},
                                                 "after": {"team": "fraud"}}]
    assert by_name["main.shop.spend_7d"] == [
        {"field": "function.time_window.window_duration.days", "before": 7, "after": 14},
        {"field": "description", "before": "7-day spend", "after": "spend"}]
    assert cli(larder_root, "plan", str(project), "--detailed-exitcode").exit_code == 2
    applied = cli(larder_root, "apply", str(project), "--auto-approve", "--json")
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["summary"] == {"create": 0, "update": 2, "delete": 1, "unchanged": 0}
    assert fe.get_table("main.shop.transactions").tags == {"team": "fraud"}
    spend = fe.get_feature(full_name="main.shop.spend_7d")
    assert spend.time_window is not None and spend.time_window.duration.days == 14 and spend.description == "spend"
    assert [f.name for f in fe.list_features(catalog_name="main", schema_name="shop")] == ["spend_7d"]
    assert ("feature", "main.shop.orders_1d") not in managed(fe)

    # the project declares nothing any more: everything it created goes, tables last
    write(project, {"tables.py": None, "features.py": None})
    plan = plan_json(larder_root, project)
    assert actions(plan) == [("delete", "table", "main.shop.transactions"), ("delete", "feature", "main.shop.spend_7d")]
    assert cli(larder_root, "apply", str(project), "--auto-approve").exit_code == 0
    with pytest.raises(TableNotFoundError):
        fe.get_table("main.shop.transactions")
    assert managed(fe) == {}


@pytest.mark.deployments("local", "team")
def test_apply_deletes_only_what_its_own_project_created(fe, larder_root: Path, tmp_path: Path) -> None:
    fe.create_table("main.shop.by_hand", "k", df=pd.DataFrame({"k": [1], "v": [1.0]}))
    shop = write(tmp_path / "shop", {"tables.py": TABLES})
    other = write(tmp_path / "other", {"t.py": TABLES.replace("transactions", "payments")})
    assert cli(larder_root, "apply", str(shop), "--auto-approve").exit_code == 0
    assert cli(larder_root, "apply", str(other), "--auto-approve").exit_code == 0
    write(other, {"t.py": None})
    plan = plan_json(larder_root, other)
    assert actions(plan) == [("delete", "table", "main.shop.payments")]  # not shop's table, not the hand-made one
    assert cli(larder_root, "apply", str(other), "--auto-approve").exit_code == 0
    assert {t.name for t in fe.list_tables()} == {"main.shop.by_hand", "main.shop.transactions"}

    # a declared object that exists but belongs to someone else is refused, naming file, object and fix
    write(other, {"t.py": TABLES})
    result = cli(larder_root, "plan", str(other))
    assert result.exit_code == 1
    assert "t.py (transactions)" in result.output and "'main.shop.transactions'" in result.output
    assert "project 'shop'" in result.output and "another name" in result.output
    write(other, {"t.py": TABLES.replace("transactions", "by_hand")})
    result = cli(larder_root, "plan", str(other))
    assert result.exit_code == 1 and "by hand" in result.output, result.output


def test_a_bad_definition_means_nothing_is_applied(fe, larder_root: Path, tmp_path: Path) -> None:
    bad = FEATURES + '''
kinds = Feature(source=src, function=AggregationFunction(Sum(input="kind"), RollingWindow(window_duration=timedelta(days=1))),
                entity=["user_id"], timeseries_column="ts", name="kind_sum")
'''
    project = write(tmp_path / "shop", {"tables.py": TABLES, "features.py": bad})
    for command in (["plan"], ["apply", "--auto-approve"]):
        result = cli(larder_root, *command, str(project))
        assert result.exit_code == 1, result.output
        assert "features.py (kinds)" in result.output and "kind_sum" in result.output
        assert "cast it with transformation_sql" in result.output  # the fix
    assert fe.list_tables() == [] and fe.list_features(catalog_name="main", schema_name="shop") == []
    assert managed(fe) == {}

    # a module that does not import, a clash of names, a column missing from the declared schema
    write(project, {"features.py": FEATURES + "\nraise RuntimeError('boom')\n"})
    result = cli(larder_root, "plan", str(project))
    assert result.exit_code == 1 and "features.py: importing the module failed" in result.output
    assert "RuntimeError: boom" in result.output
    write(project, {"features.py": FEATURES, "more.py": FEATURES.replace("orders_1d", "orders_2d")})
    result = cli(larder_root, "plan", str(project))
    assert result.exit_code == 1 and "both declare feature 'main.shop.spend_7d'" in result.output
    assert "features.py (spend)" in result.output and "more.py (spend)" in result.output
    write(project, {"more.py": None, "features.py": FEATURES.replace('input="amount"', 'input="amt"')})
    result = cli(larder_root, "plan", str(project))
    assert result.exit_code == 1 and "['amt'] are not in table 'main.shop.transactions'" in result.output
    write(project, {"features.py": None, "tables.py": TABLES.replace('primary_keys=["tx_id"]', 'primary_keys=["id"]')})
    result = cli(larder_root, "plan", str(project))
    assert result.exit_code == 1 and "tables.py" in result.output and "'id' is not in the schema" in result.output
    assert fe.list_tables() == [] and managed(fe) == {}


def test_a_failure_while_applying_undoes_the_tables_it_created(fe, larder_root: Path, tmp_path: Path) -> None:
    """The plan checked out, then another client registered one of its features by hand: the feature
    transaction fails and the table created first is dropped again."""
    project = write(tmp_path / "shop", {"tables.py": TABLES, "features.py": FEATURES})
    with ProjectService.open(larder_root) as svc:
        plan = svc.plan(project)
        assert plan.summary()["create"] == 3
        fe.create_table("main.shop.transactions_src", "tx_id", schema={"tx_id": "long", "user_id": "long",
                                                                        "amount": "double", "ts": "timestamp"})
        from larder.entities import AggregationFunction, Count, DeltaTableSource, RollingWindow

        fe.create_feature(source=DeltaTableSource(catalog_name="main", schema_name="shop",
                                                  table_name="transactions_src"),
                          function=AggregationFunction(Count(input="tx_id"), RollingWindow(window_duration=pd.Timedelta(days=1))),
                          catalog_name="main", schema_name="shop", entity=["user_id"], timeseries_column="ts",
                          name="orders_1d")
        with pytest.raises(FeatureExistsError):
            svc.apply(plan)
    assert [t.name for t in fe.list_tables()] == ["main.shop.transactions_src"]
    assert [f.name for f in fe.list_features(catalog_name="main", schema_name="shop")] == ["orders_1d"]
    assert managed(fe) == {}


def test_apply_asks_for_yes(fe, larder_root: Path, tmp_path: Path) -> None:
    project = write(tmp_path / "shop", {"tables.py": TABLES})
    result = cli(larder_root, "apply", str(project), input="no\n")
    assert result.exit_code == 1 and "Apply cancelled" in result.output
    assert fe.list_tables() == []
    result = cli(larder_root, "apply", str(project), "--json")
    assert result.exit_code == 1 and "--auto-approve" in result.output
    result = cli(larder_root, "apply", str(project), input="yes\n")
    assert result.exit_code == 0 and "Apply complete: 1 created" in result.stdout, result.output
    assert [t.name for t in fe.list_tables()] == ["main.shop.transactions"]
    result = cli(larder_root, "apply", str(project))  # nothing to do: no question
    assert result.exit_code == 0 and "No changes" in result.stdout
    # dropped by hand and no longer declared: nothing to plan; apply forgets the ownership row unasked
    fe.drop_table("main.shop.transactions")
    write(project, {"tables.py": None})
    assert plan_json(larder_root, project)["changes"] == []
    assert managed(fe) == {("table", "main.shop.transactions"): "shop"}
    result = cli(larder_root, "apply", str(project))
    assert result.exit_code == 0 and "No changes" in result.stdout and managed(fe) == {}


def test_what_a_table_cannot_change_and_what_a_deletion_would_break(fe, larder_root: Path, tmp_path: Path) -> None:
    project = write(tmp_path / "shop", {"tables.py": TABLES, "features.py": FEATURES})
    assert cli(larder_root, "apply", str(project), "--auto-approve").exit_code == 0
    write(project, {"tables.py": TABLES.replace('"amount": "double"', '"amount": "long"')})
    result = cli(larder_root, "plan", str(project))
    assert result.exit_code == 1 and "cannot change in place" in result.output
    assert "columns:" in result.output and "larder tables drop main.shop.transactions" in result.output
    write(project, {"tables.py": None})
    result = cli(larder_root, "plan", str(project))
    assert result.exit_code == 1 and "features.py (" in result.output
    assert "reads table 'main.shop.transactions', which this plan deletes" in result.output
    # a feature made by hand reading a table the project deletes keeps the table
    write(project, {"tables.py": TABLES})
    fe.create_feature(source=fe.get_feature(full_name="main.shop.spend_7d").source,
                      function=fe.get_feature(full_name="main.shop.spend_7d").function, catalog_name="main",
                      schema_name="adhoc", entity=["user_id"], timeseries_column="ts", name="mine")
    write(project, {"tables.py": None, "features.py": None})
    result = cli(larder_root, "plan", str(project))
    assert result.exit_code == 1 and "feature 'main.adhoc.mine' without its source" in result.output


def test_module_tree_schema_and_sources(fe, larder_root: Path, tmp_path: Path) -> None:
    """A package tree with relative imports; LARDER_SCHEMA; an object imported into another module
    counts once, where it is defined; underscore names and DataFrameSource features."""
    project = write(tmp_path / "features_repo", {
        "__init__.py": "from .shop.tables import transactions\n",
        "shop/__init__.py": "",
        "shop/tables.py": TABLES,
        "shop/features.py": "LARDER_SCHEMA = 'ml.signals'\n" + FEATURES + "\n_scratch = spend\n",
    })
    plan = plan_json(larder_root, project, "--project", "signals")
    assert plan["project"] == "signals"
    assert [(c["name"], c["file"]) for c in plan["changes"]] == [
        ("main.shop.transactions", "shop/tables.py"), ("ml.signals.orders_1d", "shop/features.py"),
        ("ml.signals.spend_7d", "shop/features.py")]
    write(project, {"shop/frame.py": '''
        import pandas as pd
        from larder.entities import ColumnSelection, DataFrameSource, Feature
        df_feature = Feature(source=DataFrameSource(dataframe=pd.DataFrame({"k": [1], "v": [1.0], "ts": pd.to_datetime(["2026-01-01"], utc=True)})),
                             function=ColumnSelection("v"), entity=["k"], timeseries_column="ts")
    '''})
    result = cli(larder_root, "plan", str(project))
    assert result.exit_code == 1 and "shop/frame.py" in result.output and "DataFrameSource" in result.output
    result = cli(larder_root, "plan", str(tmp_path / "missing"))
    assert result.exit_code == 1 and "does not exist" in result.output
    with pytest.raises(ProjectError, match="not valid"):
        ProjectService.open(larder_root).plan(project, project="bad name")


def test_the_documented_project_plans_and_applies_as_shown(fe, larder_root: Path, tmp_path: Path) -> None:
    """docs/declarative-features.md's "Features as code" files, written out, plan as the page shows."""
    import re

    page = (Path(__file__).resolve().parents[2] / "docs" / "declarative-features.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n# (features/\S+\.py)\n(.*?)```", page, flags=re.S)
    assert len(blocks) == 2
    write(tmp_path, {name: code for name, code in blocks})
    result = cli(larder_root, "plan", str(tmp_path / "features"), "--project", "shop")
    assert result.exit_code == 0, result.output
    shown = re.search(r"\$ larder plan features/ --project shop\n(.*?)\n\$", page, flags=re.S)
    assert shown is not None
    assert shown.group(1).splitlines()[-1] in result.stdout  # the summary line
    plan = plan_json(larder_root, tmp_path / "features", "--project", "shop")
    assert actions(plan) == [("create", "table", "main.shop.transactions"),
                             ("create", "feature", "main.shop.orders_1d"), ("create", "feature", "main.shop.spend_7d")]
    assert cli(larder_root, "apply", str(tmp_path / "features"), "--project", "shop", "--auto-approve").exit_code == 0
    assert [f.name for f in fe.list_features(catalog_name="main", schema_name="shop")] == ["orders_1d", "spend_7d"]


def test_adopt_takes_over_what_was_made_by_hand_only(fe, larder_root: Path, tmp_path: Path) -> None:
    project = write(tmp_path / "shop", {"tables.py": TABLES, "features.py": FEATURES})
    shop = write(tmp_path / "shop_copy", {"tables.py": TABLES, "features.py": FEATURES})
    assert cli(larder_root, "apply", str(shop), "--project", "shop", "--auto-approve").exit_code == 0
    # the catalog now holds shop's objects; a feature made by hand beside them
    fe.create_feature(source=fe.get_feature(full_name="main.shop.spend_7d").source,
                      function=fe.get_feature(full_name="main.shop.orders_1d").function, catalog_name="main",
                      schema_name="shop", entity=["user_id"], timeseries_column="ts", name="by_hand")
    before = fe.feature_lineage("main.shop.by_hand")
    write(project, {"more.py": FEATURES.split("spend =")[0] + '''
by_hand = Feature(source=src, function=AggregationFunction(Count(input="tx_id"), RollingWindow(window_duration=timedelta(days=1))),
                  entity=["user_id"], timeseries_column="ts", name="by_hand")
''', "tables.py": None, "features.py": None})
    result = cli(larder_root, "plan", str(project), "--project", "other")
    assert result.exit_code == 1 and "by hand" in result.output and "--adopt" in result.output
    plan = plan_json(larder_root, project, "--project", "other", "--adopt")
    assert actions(plan) == [("update", "feature", "main.shop.by_hand")]
    assert plan["changes"][0]["changes"] == [{"field": "project", "before": None, "after": "other"}]
    assert cli(larder_root, "apply", str(project), "--project", "other", "--adopt", "--auto-approve").exit_code == 0
    assert managed(fe)[("feature", "main.shop.by_hand")] == "other"
    assert fe.feature_lineage("main.shop.by_hand")["source_version"] == before["source_version"]  # untouched
    assert cli(larder_root, "plan", str(project), "--project", "other", "--detailed-exitcode").exit_code == 0
    # another project's objects are never adopted
    write(project, {"tables.py": TABLES})
    result = cli(larder_root, "plan", str(project), "--project", "other", "--adopt")
    assert result.exit_code == 1 and "project 'shop'" in result.output
