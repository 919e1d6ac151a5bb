"""larder against a snapshot of databricks-feature-engineering 0.18.2's public signatures.

The snapshot (``dbx_0_18_2_signatures.json``) was generated from the installed reference package by
``scripts/dbx_signatures.py``; it holds names only. For every class and method of it:

* the method exists on larder's counterpart;
* every parameter is accepted by its Databricks name (positional parameters also at their position),
  including the keyword arguments Databricks documents through ``**kwargs``;
* a parameter Databricks lets you omit is optional in larder too, and larder requires nothing that a
  Databricks call could leave out;
* every property and attribute exists on an instance.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import larder
import larder.entities as entities
import larder.online_store_spec as online_store_spec
import larder.training_set as training_set_module

SNAPSHOT = json.loads((Path(__file__).with_name("dbx_0_18_2_signatures.json")).read_text(encoding="utf-8"))


def _load_generator() -> Any:
    """scripts/gen_parity_docs.py: the one implementation of the signature check (the docs use it too)."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "gen_parity_docs.py"
    spec = importlib.util.spec_from_file_location("gen_parity_docs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()

# Pending: methods and parameters that other open issues bring. Whoever lands one removes it here.
PENDING: dict[str, set[str]] = {
    "FeatureEngineeringClient": set(),
}
PENDING_PARAMETERS: dict[tuple[str, str], set[str]] = {}
PENDING_CLASSES: set[str] = set()

COUNTERPARTS: dict[str, Any] = {
    "FeatureEngineeringClient": larder.FeatureEngineeringClient,
    "FeatureLookup": entities.FeatureLookup,
    "FeatureFunction": entities.FeatureFunction,
    "FeatureTable": entities.FeatureTable,
    "TrainingSet": training_set_module.TrainingSet,
    "FeatureSpecInfo": entities.FeatureSpecInfo,
    "DatabricksOnlineStore": entities.DatabricksOnlineStore,
    "PublishedTable": None,  # publish_table returns a Publication: see test_published_table_fields
    "EndpointCoreConfig": entities.EndpointCoreConfig,
    "ServedEntity": entities.ServedEntity,
    "Servable": entities.Servable,
    "AutoCaptureConfig": entities.AutoCaptureConfig,
    "FeatureServingEndpoint": entities.FeatureServingEndpoint,
    "AmazonDynamoDBSpec": online_store_spec.AmazonDynamoDBSpec,
    "AmazonRdsMySqlSpec": online_store_spec.AmazonRdsMySqlSpec,
    "AzureCosmosDBSpec": online_store_spec.AzureCosmosDBSpec,
    "AzureMySqlSpec": online_store_spec.AzureMySqlSpec,
    "AzureSqlServerSpec": online_store_spec.AzureSqlServerSpec,
    "StreamSource": entities.StreamSource,
    "KafkaSource": entities.KafkaSource,
}
#: Classes the client builds (their constructors are internal on both sides): only their public
#: methods, properties and attributes are compared, on instances the client returned.
CLIENT_BUILT = {"FeatureTable", "TrainingSet", "FeatureSpecInfo", "DatabricksOnlineStore", "PublishedTable",
                "FeatureServingEndpoint"}
#: The spec classes are factories in larder (they return larder's spec objects): their parameters
#: are compared; their methods (``auth_type``) and properties are Databricks' internals.
FACTORIES = {"AmazonDynamoDBSpec", "AmazonRdsMySqlSpec", "AzureCosmosDBSpec", "AzureMySqlSpec",
             "AzureSqlServerSpec"}


def _cases() -> list[tuple[str, str]]:
    out = []
    for cls, info in SNAPSHOT["classes"].items():
        if cls in PENDING_CLASSES:
            continue
        for method in info["methods"]:
            if method in PENDING.get(cls, set()):
                continue
            if method == "__init__" and cls in CLIENT_BUILT:
                continue
            if method != "__init__" and cls in FACTORIES:
                continue
            out.append((cls, method))
    return out


def _callable(cls: str, method: str) -> Any:
    target = COUNTERPARTS[cls]
    assert target is not None, f"{cls} has no larder counterpart"
    if method == "__init__":
        return target if inspect.isfunction(target) else target.__init__
    assert hasattr(target, method), f"larder's {target.__name__} has no method {method!r} (Databricks {cls}.{method})"
    return getattr(target, method)


def test_snapshot_is_0_18_2() -> None:
    assert SNAPSHOT["package"] == "databricks-feature-engineering" and SNAPSHOT["version"] == "0.18.2"
    assert len(SNAPSHOT["classes"]["FeatureEngineeringClient"]["methods"]) == 48


@pytest.mark.parametrize(("cls", "method"), _cases(), ids=lambda v: v)
def test_method_accepts_every_databricks_parameter(cls: str, method: str) -> None:
    spec = SNAPSHOT["classes"][cls]["methods"][method]
    problems = GEN.signature_problems(spec, _callable(cls, method), PENDING_PARAMETERS.get((cls, method), set()))
    assert not problems, f"{cls}.{method}: " + "; ".join(problems)


def test_every_public_class_is_importable_from_databricks_paths() -> None:
    for cls, target in COUNTERPARTS.items():
        if cls in PENDING_CLASSES or target is None:
            continue
        public = SNAPSHOT["classes"][cls]["public_name"]
        module = public.rsplit(".", 1)[0].replace("databricks.feature_engineering", "larder")
        if module.startswith("databricks.ml_features.entities"):
            module = module.replace("databricks.ml_features.entities", "larder.entities")
        mod = __import__(module, fromlist=[cls])
        assert getattr(mod, cls) is target, f"{public} -> {module}.{cls}"


# -- properties and attributes on instances ---------------------------------------------------------
@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("signatures")
    fe = larder.FeatureEngineeringClient(root=str(root))
    fe.create_table(name="houses", primary_keys=["Id"], df=pd.DataFrame({"Id": [1, 2], "q": [7, 5]}),
                    description="houses")
    fe.create_feature_spec(name="price", features=[entities.FeatureLookup(table_name="houses", lookup_key="Id")])
    fe.publish_table(source_table_name="houses")
    ts = fe.create_training_set(df=pd.DataFrame({"Id": [1], "y": [1.0]}),
                                feature_lookups=[entities.FeatureLookup(table_name="houses", lookup_key="Id")],
                                label="y")
    endpoint = fe.create_feature_serving_endpoint(
        name="price-ep", config=entities.EndpointCoreConfig(
            served_entities=entities.ServedEntity(feature_spec_name="price")))
    out = {
        "FeatureTable": fe.get_table(name="houses"),
        "TrainingSet": ts,
        "FeatureSpecInfo": fe.get_feature_spec("price"),
        "DatabricksOnlineStore": fe.create_online_store(name="shop", capacity="CU_1"),
        "FeatureServingEndpoint": endpoint,
        "FeatureLookup": entities.FeatureLookup(table_name="houses", lookup_key="Id", feature_name="q",
                                                output_name="quality"),
        "FeatureFunction": entities.FeatureFunction(udf_name="fn", input_bindings={"x": "q"}, output_name="o"),
        "EndpointCoreConfig": entities.EndpointCoreConfig(
            served_entities=entities.ServedEntity(feature_spec_name="price")),
        "ServedEntity": entities.ServedEntity(feature_spec_name="price"),
        "Servable": entities.Servable(features=[]),
        "AutoCaptureConfig": entities.AutoCaptureConfig(catalog_name="c", schema_name="s", table_name_prefix="p"),
        "StreamSource": entities.StreamSource(full_name="main.default.clicks"),
        "KafkaSource": entities.KafkaSource(name="clicks"),
    }
    yield out
    fe.close()


@pytest.mark.parametrize("cls", [c for c in SNAPSHOT["classes"] if c not in FACTORIES | PENDING_CLASSES
                                 | {"PublishedTable", "FeatureEngineeringClient"}])
def test_properties_and_attributes(cls: str, instances: dict[str, Any]) -> None:
    info = SNAPSHOT["classes"][cls]
    obj = instances[cls]
    missing = [a for a in info["properties"] + info["attributes"] if not hasattr(obj, a)]
    assert not missing, f"larder's {type(obj).__name__} lacks Databricks {cls}'s {missing}"


def test_published_table_fields(instances: dict[str, Any], tmp_path: Path) -> None:
    """Databricks returns a PublishedTable (``online_table_name``, ``pipeline_id``) when publishing to
    its own online store; larder's Publication carries the online table's name and the publication's id
    (larder publishes without a sync pipeline)."""
    fe = larder.FeatureEngineeringClient(root=str(tmp_path))
    fe.create_table(name="t", primary_keys="k", df=pd.DataFrame({"k": [1], "v": [2.0]}))
    pub = fe.publish_table(source_table_name="t", online_table_name="ml.online.t")
    assert pub.online_table_name == "ml.online.t" and pub.pipeline_id == f"publication-{pub.id}"
    fe.close()


def test_pending_lists_name_only_real_gaps() -> None:
    """An item in the pending sets that larder now has must be removed from them."""
    client = larder.FeatureEngineeringClient
    done = sorted(m for m in PENDING["FeatureEngineeringClient"] if hasattr(client, m))
    assert not done, f"remove {done} from PENDING: larder has them now"
    for (cls, method), names in PENDING_PARAMETERS.items():
        have = set(inspect.signature(getattr(COUNTERPARTS[cls], method)).parameters)
        assert not (names & have), f"remove {sorted(names & have)} from PENDING_PARAMETERS[{cls}.{method}]"
    present = sorted(c for c in PENDING_CLASSES if hasattr(entities, c))
    assert not present, f"remove {present} from PENDING_CLASSES: larder.entities has them now"


def test_coming_from_databricks_is_current() -> None:
    """docs/coming-from-databricks.md's mapping is generated from this snapshot and the code, and every
    row marked "same" cites tests that exist (scripts/gen_parity_docs.py refuses otherwise)."""
    generated, errors = GEN.build()
    assert not errors, errors
    page = GEN.DOC.read_text(encoding="utf-8")
    assert GEN.render(page, generated) == page, "docs/coming-from-databricks.md is stale: run " \
        "`python scripts/gen_parity_docs.py`."
    for method in SNAPSHOT["classes"]["FeatureEngineeringClient"]["methods"]:
        assert f"`{method}(" in page or method == "__init__", method
