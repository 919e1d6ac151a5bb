"""Write a JSON snapshot of the Databricks Feature Engineering client's public signatures.

Run it against an installed ``databricks-feature-engineering`` (it reads the package's source with
``ast``; nothing is imported, so the package's own dependencies need not be installed)::

    python scripts/dbx_signatures.py PATH/TO/site-packages/databricks tests/parity/dbx_0_18_2_signatures.json

The snapshot holds names only (methods, parameters, their kinds and whether they have a default, and
the keyword arguments a method documents through ``**kwargs``); no code of the package. The signature
test (``tests/parity/test_signatures.py``) checks larder against it, and ``scripts/gen_parity_docs.py``
builds ``docs/coming-from-databricks.md`` from it.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

#: (module path under the package root, class name, public name users import it by)
CLASSES: list[tuple[str, str, str]] = [
    ("feature_engineering/client.py", "FeatureEngineeringClient",
     "databricks.feature_engineering.FeatureEngineeringClient"),
    ("ml_features/entities/feature_lookup.py", "FeatureLookup",
     "databricks.feature_engineering.entities.FeatureLookup"),
    ("ml_features/entities/feature_function.py", "FeatureFunction",
     "databricks.feature_engineering.entities.FeatureFunction"),
    ("ml_features/entities/feature_table.py", "FeatureTable",
     "databricks.feature_engineering.entities.FeatureTable"),
    ("ml_features/entities/training_set.py", "TrainingSet",
     "databricks.feature_engineering.training_set.TrainingSet"),
    ("ml_features/entities/feature_spec_info.py", "FeatureSpecInfo",
     "databricks.feature_engineering.entities.feature_spec_info.FeatureSpecInfo"),
    ("ml_features/entities/online_store.py", "DatabricksOnlineStore",
     "databricks.ml_features.entities.online_store.DatabricksOnlineStore"),
    ("ml_features/entities/published_table.py", "PublishedTable",
     "databricks.ml_features.entities.published_table.PublishedTable"),
    ("ml_features/entities/feature_serving_endpoint.py", "EndpointCoreConfig",
     "databricks.feature_engineering.entities.feature_serving_endpoint.EndpointCoreConfig"),
    ("ml_features/entities/feature_serving_endpoint.py", "ServedEntity",
     "databricks.feature_engineering.entities.feature_serving_endpoint.ServedEntity"),
    ("ml_features/entities/feature_serving_endpoint.py", "Servable",
     "databricks.feature_engineering.entities.feature_serving_endpoint.Servable"),
    ("ml_features/entities/feature_serving_endpoint.py", "AutoCaptureConfig",
     "databricks.feature_engineering.entities.feature_serving_endpoint.AutoCaptureConfig"),
    ("ml_features/entities/feature_serving_endpoint.py", "FeatureServingEndpoint",
     "databricks.feature_engineering.entities.feature_serving_endpoint.FeatureServingEndpoint"),
    ("ml_features/entities/data_source.py", "StreamSource",
     "databricks.feature_engineering.entities.StreamSource"),
    ("ml_features/entities/data_source.py", "KafkaSource",
     "databricks.feature_engineering.entities.KafkaSource"),
    ("ml_features/online_store_spec/amazon_dynamodb_online_store_spec.py", "AmazonDynamoDBSpec",
     "databricks.feature_engineering.online_store_spec.AmazonDynamoDBSpec"),
    ("ml_features/online_store_spec/amazon_rds_mysql_online_store_spec.py", "AmazonRdsMySqlSpec",
     "databricks.feature_engineering.online_store_spec.AmazonRdsMySqlSpec"),
    ("ml_features/online_store_spec/azure_cosmosdb_online_store_spec.py", "AzureCosmosDBSpec",
     "databricks.feature_engineering.online_store_spec.AzureCosmosDBSpec"),
    ("ml_features/online_store_spec/azure_mysql_online_store_spec.py", "AzureMySqlSpec",
     "databricks.feature_engineering.online_store_spec.AzureMySqlSpec"),
    ("ml_features/online_store_spec/azure_sql_server_online_store_spec.py", "AzureSqlServerSpec",
     "databricks.feature_engineering.online_store_spec.AzureSqlServerSpec"),
]

#: Keyword arguments a public method takes through ``**kwargs`` are read from its own body and from
#: the bodies of the functions it hands them to: {(class, method): [(module, "Class.function"), ...]}.
DELEGATES: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("FeatureEngineeringClient", "create_table"): [
        ("ml_features/_compute_client/_compute_client.py", "ComputeClient.create_table")],
    ("FeatureEngineeringClient", "read_table"): [
        ("ml_features/_compute_client/_compute_client.py", "ComputeClient.read_table")],
}

#: Module-level string constants used as ``kwargs`` keys (``kwargs.get(_PREBUILT_ENV_URI)``).
CONSTANTS_MODULE = "ml_features/constants.py"


def _constants(root: Path) -> dict[str, str]:
    tree = ast.parse((root / CONSTANTS_MODULE).read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def _key(node: ast.expr, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    return None


def _kwargs_keys(func: ast.FunctionDef, constants: dict[str, str]) -> list[str]:
    """String keys read from the function's ``**kwargs`` mapping (pop/get/subscript/``in``)."""
    name = func.args.kwarg.arg if func.args.kwarg else None
    if name is None:
        return []
    keys: list[str] = []
    for node in ast.walk(func):
        found = None
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == name
                and node.func.attr in ("pop", "get") and node.args):
            found = _key(node.args[0], constants)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == name:
            found = _key(node.slice, constants)
        elif (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.In)
              and isinstance(node.comparators[0], ast.Name) and node.comparators[0].id == name):
            found = _key(node.left, constants)
        if found and found not in keys:
            keys.append(found)
    return keys


def _parameters(func: ast.FunctionDef) -> list[dict[str, Any]]:
    a = func.args
    out: list[dict[str, Any]] = []
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    for arg, default in zip(positional, defaults, strict=True):
        if arg.arg in ("self", "cls"):
            continue
        kind = "positional_only" if arg in a.posonlyargs else "positional_or_keyword"
        out.append({"name": arg.arg, "kind": kind, "required": default is None})
    if a.vararg:
        out.append({"name": a.vararg.arg, "kind": "var_positional", "required": False})
    for arg, kw_default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        out.append({"name": arg.arg, "kind": "keyword_only", "required": kw_default is None})
    return out


def _decorators(func: ast.FunctionDef) -> list[str]:
    names = []
    for d in func.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, ast.Attribute):
            names.append(target.attr)
    return names


def _find_class(tree: ast.Module, name: str) -> ast.ClassDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise SystemExit(f"class {name} not found")


def _find_function(root: Path, module: str, dotted: str) -> ast.FunctionDef:
    cls_name, fn_name = dotted.split(".")
    cls = _find_class(ast.parse((root / module).read_text(encoding="utf-8")), cls_name)
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == fn_name:
            return node
    raise SystemExit(f"{dotted} not found in {module}")


def _dataclass_fields(cls: ast.ClassDef) -> list[dict[str, Any]]:
    """The ``__init__`` parameters of a ``@dataclass`` (annotated class attributes)."""
    out = []
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.append({"name": node.target.id, "kind": "positional_or_keyword", "required": node.value is None})
    return out


def describe_class(root: Path, module: str, name: str, public: str, constants: dict[str, str]) -> dict[str, Any]:
    cls = _find_class(ast.parse((root / module).read_text(encoding="utf-8")), name)
    methods: dict[str, Any] = {}
    properties: list[str] = []
    attributes: list[str] = []
    is_dataclass = any((isinstance(d, ast.Name) and d.id == "dataclass") or
                       (isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "dataclass")
                       for d in cls.decorator_list)
    if is_dataclass:
        methods["__init__"] = {"parameters": _dataclass_fields(cls), "var_keyword": False, "kwargs": [],
                               "decorators": []}
        attributes += [p["name"] for p in methods["__init__"]["parameters"]]
    for node in cls.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        decorators = _decorators(node)
        if "property" in decorators:
            if not node.name.startswith("_"):
                properties.append(node.name)
            continue
        if node.name.startswith("_") and node.name != "__init__":
            continue
        if "classmethod" in decorators and node.name.startswith("from_"):
            continue  # constructors from Databricks' protos and REST responses: no counterpart
        kwargs = _kwargs_keys(node, constants)
        for module_path, dotted in DELEGATES.get((name, node.name), []):
            kwargs += [k for k in _kwargs_keys(_find_function(root, module_path, dotted), constants) if k not in kwargs]
        methods[node.name] = {
            "parameters": _parameters(node),
            "var_keyword": node.args.kwarg is not None,
            "kwargs": kwargs,
            "decorators": [d for d in decorators if d in ("experimental", "staticmethod", "classmethod",
                                                          "deprecated")],
        }
        if node.name == "__init__":
            for stmt in ast.walk(node):
                if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                        and isinstance(stmt.targets[0], ast.Attribute)
                        and isinstance(stmt.targets[0].value, ast.Name) and stmt.targets[0].value.id == "self"
                        and not stmt.targets[0].attr.startswith("_")
                        and stmt.targets[0].attr not in attributes):
                    attributes.append(stmt.targets[0].attr)
    return {"public_name": public, "module": module, "methods": methods, "properties": properties,
            "attributes": attributes}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__)
        return 2
    root, out = Path(argv[1]), Path(argv[2])
    version = "unknown"
    for meta in root.parent.glob("databricks_feature_engineering-*.dist-info"):
        version = meta.name.removesuffix(".dist-info").split("-")[1]
    constants = _constants(root)
    snapshot = {
        "package": "databricks-feature-engineering",
        "version": version,
        "generated_by": "scripts/dbx_signatures.py",
        "classes": {name: describe_class(root, module, name, public, constants)
                    for module, name, public in CLASSES},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(snapshot, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    n = sum(len(c["methods"]) for c in snapshot["classes"].values())
    print(f"wrote {out}: {len(snapshot['classes'])} classes, {n} methods (version {version})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
