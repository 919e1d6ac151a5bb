"""Generate the API mapping of docs/coming-from-databricks.md from the code.

Inputs: the snapshot of databricks-feature-engineering 0.18.2's signatures
(``tests/parity/dbx_0_18_2_signatures.json``, written by ``scripts/dbx_signatures.py``), larder itself
(imported: every signature is checked against the snapshot), and ``scripts/parity_notes.yaml`` (what to
say about each method and class, and which tests show it). The generated part of the page sits between
the ``<!-- BEGIN GENERATED -->`` and ``<!-- END GENERATED -->`` markers; the rest is prose.

A row says "same" only when the notes say so, the signature check passes and the tests the notes cite
exist. The script fails on a method or class without notes, on "same" or "differs" for a call larder
does not accept, on a cited test that does not exist, and on "pending" for something larder has.

    python scripts/gen_parity_docs.py           # rewrite the page
    python scripts/gen_parity_docs.py --check   # exit 1 if the page is stale
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT_PATH = REPO / "tests" / "parity" / "dbx_0_18_2_signatures.json"
NOTES_PATH = REPO / "scripts" / "parity_notes.yaml"
DOC = REPO / "docs" / "coming-from-databricks.md"
BEGIN, END = "<!-- BEGIN GENERATED -->", "<!-- END GENERATED -->"

#: Classes the client builds: their constructors are internal on both sides.
CLIENT_BUILT = {"FeatureTable", "TrainingSet", "FeatureSpecInfo", "DatabricksOnlineStore", "PublishedTable",
                "FeatureServingEndpoint"}
#: Databricks classes that are factories in larder: only their parameters are compared.
FACTORIES = {"AmazonDynamoDBSpec", "AmazonRdsMySqlSpec", "AzureCosmosDBSpec", "AzureMySqlSpec", "AzureSqlServerSpec"}


def load_snapshot() -> dict[str, Any]:
    return json.loads(SNAPSHOT_PATH.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def counterparts() -> dict[str, Any]:
    """Databricks class name -> larder object (None: no class of that name, see the notes)."""
    import larder
    import larder.entities as entities
    import larder.online_store_spec as spec
    import larder.training_set as training_set

    out: dict[str, Any] = {
        "FeatureEngineeringClient": larder.FeatureEngineeringClient,
        "TrainingSet": training_set.TrainingSet, "PublishedTable": None,
    }
    for name in ("FeatureLookup", "FeatureFunction", "FeatureTable", "FeatureSpecInfo", "DatabricksOnlineStore",
                 "EndpointCoreConfig", "ServedEntity", "Servable", "AutoCaptureConfig", "FeatureServingEndpoint",
                 "StreamSource", "KafkaSource"):
        out[name] = getattr(entities, name, None)
    for name in FACTORIES:
        out[name] = getattr(spec, name)
    return out


def larder_callable(target: Any, method: str) -> Any:
    if method == "__init__":
        return target if inspect.isfunction(target) else target.__init__
    return getattr(target, method, None)


def signature_problems(entry: dict[str, Any], func: Any, pending: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """Why a Databricks call with this method's parameters would not work on ``func`` (empty: it does).

    Every parameter must be accepted by its name (positional ones also at their position), an optional
    one must stay optional, each documented ``**kwargs`` key must be a named parameter, and larder may
    require nothing a Databricks call can leave out. ``pending`` parameters are skipped."""
    if func is None:
        return ["no such method"]
    sig = inspect.signature(func)
    params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
    by_name = {p.name: p for p in params}
    databricks = [p for p in entry["parameters"] if p["kind"] != "var_positional" and p["name"] not in pending]
    named = [p["name"] for p in databricks] + [k for k in entry["kwargs"] if k not in pending]
    problems = []
    for i, p in enumerate(databricks):
        mine = by_name.get(p["name"])
        if mine is None or mine.kind in (mine.VAR_POSITIONAL, mine.VAR_KEYWORD, mine.POSITIONAL_ONLY):
            problems.append(f"{p['name']!r} is not accepted by name")
            continue
        if p["kind"] == "positional_or_keyword" and (params.index(mine) != i or mine.kind != mine.POSITIONAL_OR_KEYWORD):
            problems.append(f"{p['name']!r} is positional #{i} on Databricks, not in larder")
        if not p["required"] and mine.default is inspect.Parameter.empty:
            problems.append(f"{p['name']!r} is optional on Databricks but required in larder")
    for key in entry["kwargs"]:
        mine = by_name.get(key)
        if key not in pending and (mine is None or mine.kind not in (mine.POSITIONAL_OR_KEYWORD, mine.KEYWORD_ONLY)):
            problems.append(f"Databricks' documented keyword argument {key!r} is not a named parameter")
    required = [p.name for p in params if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    extra = [r for r in required if r not in named]
    if extra:
        problems.append(f"larder requires {extra}, which Databricks does not have")
    try:
        sig.bind_partial(**{n: object() for n in named if n in by_name})
    except TypeError as exc:
        problems.append(f"a call with every Databricks parameter by name does not bind: {exc}")
    return problems


def _render_signature(name: str, entry: dict[str, Any]) -> str:
    parts: list[str] = []
    star = False
    for p in entry["parameters"]:
        if p["kind"] == "var_positional":
            parts.append(f"*{p['name']}")
            star = True
            continue
        if p["kind"] == "keyword_only" and not star:
            parts.append("*")
            star = True
        parts.append(p["name"] + ("" if p["required"] else "=…"))
    if entry["var_keyword"]:
        parts.append("**kwargs" + (f" ({', '.join(entry['kwargs'])})" if entry["kwargs"] else ""))
    return f"{name}({', '.join(parts)})"


def _test_exists(node: str) -> bool:
    path, _, func = node.partition("::")
    file = REPO / path
    return file.exists() and re.search(rf"^def {re.escape(func)}\(", file.read_text(encoding="utf-8"), re.M) is not None


#: What a test must call to show a class the client builds (it gets one from these methods).
BUILT_BY = {"FeatureTable": ("create_table", "get_table"), "FeatureSpecInfo": ("create_feature_spec",),
            "FeatureServingEndpoint": ("create_feature_serving_endpoint", "get_feature_serving_endpoint"),
            "DatabricksOnlineStore": ("create_online_store", "get_online_store"),
            "TrainingSet": ("create_training_set",)}


def _test_source(node: str) -> str:
    """The cited test function's source, plus the notebook a notebook-port test runs."""
    path, _, func = node.partition("::")
    text = (REPO / path).read_text(encoding="utf-8")
    match = re.search(rf"^def {re.escape(func)}\(.*?(?=^\S)", text + "\n#", re.M | re.S)
    body = match.group(0) if match else ""
    notebooks = re.findall(r'with_name\("([^"]+\.py)"\)', text)
    return body + "".join((REPO / path).with_name(n).read_text(encoding="utf-8") for n in notebooks)


def _calls_it(key: str, tests: list[str]) -> bool:
    """Whether one of ``tests`` calls the method (``name(``) or builds the class it is about."""
    name = key.rsplit(".", 1)[-1]
    names = (*BUILT_BY.get(name, ()), name)
    return any(re.search(rf"\b{re.escape(n)}\(", _test_source(t)) for t in tests for n in names)


STATUS_LABEL = {"same": "same", "differs": "differs", "pending": "pending", "absent": "not in larder"}


def _check(kind: str, key: str, note: dict[str, Any] | None, problems: list[str], present: bool) -> list[str]:
    errors = []
    if note is None:
        return [f"{kind} {key}: no entry in scripts/parity_notes.yaml"]
    status = note.get("status")
    if status not in STATUS_LABEL:
        return [f"{key}: status must be one of {list(STATUS_LABEL)}, got {status!r}"]
    if status in ("same", "differs") and problems:
        errors.append(f"{key}: marked {status!r} but a Databricks call fails: {'; '.join(problems)}")
    if status == "same" and not note.get("tests"):
        errors.append(f"{key}: 'same' needs the tests that show it")
    for node in note.get("tests") or []:
        if not _test_exists(node):
            errors.append(f"{key}: cited test {node} does not exist")
    if status == "same" and note.get("tests") and not errors and not _calls_it(key, note["tests"]):
        errors.append(f"{key}: marked 'same' but none of its tests calls it; cite one that does, or say 'differs'")
    if status == "pending" and present and not problems:
        errors.append(f"{key}: marked pending but larder has it now; describe it")
    if status == "pending" and not note.get("issue"):
        errors.append(f"{key}: 'pending' needs the issue that brings it")
    return errors


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _tests_cell(note: dict[str, Any]) -> str:
    tests = note.get("tests") or []
    return "<br>".join(f"`{t.split('::')[-1]}`" for t in tests)


def build() -> tuple[str, list[str]]:
    """(the generated markdown, errors)."""
    snapshot = load_snapshot()
    notes = yaml.safe_load(NOTES_PATH.read_text(encoding="utf-8"))
    targets = counterparts()
    errors: list[str] = []
    counts = {k: 0 for k in STATUS_LABEL}
    lines = [BEGIN, "",
             f"Generated by `scripts/gen_parity_docs.py` from the signatures of databricks-feature-engineering "
             f"{snapshot['version']} and larder's code; do not edit by hand. **same**: the call works unchanged "
             "and does what it does on Databricks (the tests column names the tests that show it). "
             "**differs**: the call is accepted (every Databricks parameter by its name) and the note says what "
             "is different. **pending**: brought by the issue named. **not in larder**: the note says what to "
             "use.", ""]

    client = snapshot["classes"]["FeatureEngineeringClient"]
    lines += ["### `FeatureEngineeringClient` methods", "",
              "| Databricks | larder | status | notes | shown by |", "|---|---|---|---|---|"]
    for method, entry in client["methods"].items():
        key = f"FeatureEngineeringClient.{method}"
        note = notes["methods"].get(key)
        pending_params: set[str] = set()
        func = larder_callable(targets["FeatureEngineeringClient"], method)
        problems = signature_problems(entry, func, pending_params)
        errors += _check("method", key, note, problems, func is not None)
        if note is None:
            continue
        counts[note["status"]] += 1
        shown = "FeatureEngineeringClient" if method == "__init__" else method
        dbx = _render_signature(shown, entry)
        mine = note.get("larder") or ("—" if note["status"] in ("pending", "absent") else "same name")
        label = STATUS_LABEL[note["status"]] + (f": issue {note['issue']}" if note.get("issue") else "")
        extra = ""
        lines.append(f"| `{_cell(dbx)}` | {_cell(mine)} | {label} | {_cell(note.get('note', '') + extra)} | "
                     f"{_tests_cell(note)} |")
    lines += ["", f"{sum(counts.values())} methods: " + ", ".join(f"{n} {STATUS_LABEL[k]}" for k, n in counts.items()) + ".",
              ""]
    import larder

    own = sorted(m for m in dir(larder.FeatureEngineeringClient) if not m.startswith("_")
                 and callable(getattr(larder.FeatureEngineeringClient, m)) and m not in client["methods"])
    lines += ["larder-only methods: " + ", ".join(f"`{m}`" for m in own) + ".", ""]

    lines += ["### Classes", "", "| Databricks | larder | status | notes | shown by |", "|---|---|---|---|---|"]
    for cls, info in snapshot["classes"].items():
        if cls == "FeatureEngineeringClient":
            continue
        note = notes["classes"].get(cls)
        target = targets.get(cls)
        problems: list[str] = []
        if target is not None and cls not in CLIENT_BUILT and "__init__" in info["methods"]:
            problems = signature_problems(info["methods"]["__init__"], larder_callable(target, "__init__"))
        elif target is None and cls != "PublishedTable":
            problems = ["no such class"]
        errors += _check("class", cls, note, problems, target is not None)
        if note is None:
            continue
        init = info["methods"].get("__init__")
        dbx = _render_signature(cls, init) if init and cls not in CLIENT_BUILT else cls
        if cls in CLIENT_BUILT:
            members = info["attributes"] + info["properties"]
            dbx += f" ({', '.join(members)})" if members else ""
        mine = note.get("larder") or ("—" if note["status"] in ("pending", "absent") else
                                      f"`larder.entities.{cls}`" if hasattr(__import__("larder.entities").entities, cls)
                                      else "same name")
        label = STATUS_LABEL[note["status"]] + (f": issue {note['issue']}" if note.get("issue") else "")
        lines.append(f"| `{_cell(dbx)}` | {_cell(mine)} | {label} | {_cell(note.get('note', ''))} | "
                     f"{_tests_cell(note)} |")
    lines += ["", END]
    unknown = sorted(set(notes["methods"]) - {f"FeatureEngineeringClient.{m}" for m in client["methods"]})
    unknown += sorted(set(notes["classes"]) - set(snapshot["classes"]))
    errors += [f"{k}: in scripts/parity_notes.yaml but not in the snapshot" for k in unknown]
    return "\n".join(lines), errors


def render(current: str, generated: str) -> str:
    if BEGIN not in current or END not in current:
        raise SystemExit(f"{DOC} lacks the {BEGIN} / {END} markers")
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + generated + tail


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale or the notes are wrong")
    args = parser.parse_args(argv)
    generated, errors = build()
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    current = DOC.read_text(encoding="utf-8")
    text = render(current, generated)
    if args.check:
        if text != current:
            print(f"{DOC} is stale: run `python scripts/gen_parity_docs.py`.", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
