"""Run one benchmark script of two checkouts in alternation and print the figures side by side.

Each checkout runs its own copy of the script with its own virtualenv (``<checkout>/.venv``), so the two
measure the same work on the two code bases in one session on the same machine. Rounds alternate which
checkout goes first (base, head; head, base; ...), so a drift in the machine's load hits both. Every
numeric figure of the scripts' JSON is paired per round (head / base of the same round, run back to
back) and summarised as the median of those paired ratios, beside each side's median; figures
matching ``--show`` (a regular expression over the figure's path) are printed, all are saved with
``--json-out`` (after every run, so a stopped comparison keeps its finished rounds), and ``--from-json``
prints a saved run again (with another ``--show``).

    python benchmarks/side_by_side.py --base ../online-base --head . --rounds 2 \\
        --lock /tmp/larder-bench.lock -- online.py --stores sqlite --rows 100000 --skip-feast

``--lock`` runs each script under ``flock`` on that file, as the shared machine asks of benchmarks.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_SHOW = r"(p50_ms|p99_ms|rows_per_s|_s|_p50)$"


def flatten(value: Any, prefix: str = "") -> dict[str, float]:
    """``{dotted path: number}`` of every number in a JSON value; list items that are dicts with
    ``store`` and ``rows`` (pyfunc.py's results) are named by them, other items by position."""
    out: dict[str, float] = {}
    if isinstance(value, bool):
        return out
    if isinstance(value, (int, float)):
        return {prefix: float(value)}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            name = f"{v['store']}_{v['rows']}" if isinstance(v, dict) and "store" in v and "rows" in v else str(i)
            out.update(flatten(v, f"{prefix}.{name}" if prefix else name))
    return out


def run(checkout: Path, script: str, args: list[str], lock: str | None) -> dict[str, Any]:
    python = checkout / ".venv" / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="larder-side-by-side-") as tmp:
        out = Path(tmp) / "out.json"
        cmd = [str(python), str(checkout / "benchmarks" / script), *args, "--json-out", str(out)]
        if lock:
            cmd = ["flock", lock, *cmd]
        print(f"[{checkout}] {' '.join(cmd)}", file=sys.stderr, flush=True)
        subprocess.run(cmd, cwd=checkout, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, help="the checkout measured as the reference")
    ap.add_argument("--head", type=Path, help="the checkout compared with it")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each checkout")
    ap.add_argument("--lock", default=None, help="run each script under flock on this file")
    ap.add_argument("--show", default=DEFAULT_SHOW, help="regular expression of the figures to print")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--from-json", default=None, type=Path, help="print a run saved with --json-out")
    ap.add_argument("script", nargs="?", help="the script under benchmarks/, e.g. online.py")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="its arguments (after --)")
    opts = ap.parse_args()
    if opts.from_json:
        saved = json.loads(opts.from_json.read_text())
        print_figures(figures(saved["runs"]), opts.show)
        return
    if opts.base is None or opts.head is None or opts.script is None:
        ap.error("--base, --head and the script are required (or --from-json)")
    args = opts.args[1:] if opts.args[:1] == ["--"] else opts.args
    checkouts = {"base": opts.base.resolve(), "head": opts.head.resolve()}
    raw: dict[str, list[Any]] = {"base": [], "head": []}

    def save(rows: list[dict[str, Any]] | None) -> None:
        if opts.json_out:
            Path(opts.json_out).write_text(json.dumps({"checkouts": {k: str(v) for k, v in checkouts.items()},
                                                       "script": opts.script, "args": args, "figures": rows,
                                                       "runs": raw}, indent=1, default=str))

    for r in range(opts.rounds):
        for side in (("base", "head") if r % 2 == 0 else ("head", "base")):
            raw[side].append(run(checkouts[side], opts.script, args, opts.lock))
            save(None)  # every finished run is kept: --from-json prints the complete rounds of a stopped run
    rows = figures(raw)
    print_figures(rows, opts.show)
    save(rows)


def figures(raw: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Per figure: each side's values per round and median, the paired ratios head / base per round and
    their median."""
    complete = min(len(results) for results in raw.values())  # rounds both checkouts finished
    if not complete:
        return []
    runs = {side: [flatten(r) for r in results[:complete]] for side, results in raw.items()}
    paths = [p for p in runs["base"][0] if all(p in run_ for side in runs.values() for run_ in side)]
    rows = []
    for path in paths:
        base = [run_[path] for run_ in runs["base"]]
        head = [run_[path] for run_ in runs["head"]]
        paired = [h / b for b, h in zip(base, head, strict=True) if b]
        rows.append({"figure": path, "base": base, "head": head, "base_median": statistics.median(base),
                     "head_median": statistics.median(head), "paired_ratios": paired,
                     "paired_ratio_median": statistics.median(paired) if paired else None})
    return rows


def print_figures(rows: list[dict[str, Any]], show: str) -> None:
    pattern = re.compile(show)
    shown = [r for r in rows if pattern.search(r["figure"])]
    width = max((len(r["figure"]) for r in shown), default=10)
    print(f"{'figure':{width}}  {'base per round':>22}  {'head per round':>22}  {'head/base per round':>20}  median")
    for row in shown:
        ratio = row["paired_ratio_median"]
        print(f"{row['figure']:{width}}  {' '.join(f'{v:10.4g}' for v in row['base']):>22}  "
              f"{' '.join(f'{v:10.4g}' for v in row['head']):>22}  "
              f"{' '.join(f'{v:6.3f}' for v in row['paired_ratios']):>20}  {'' if ratio is None else f'{ratio:6.3f}'}")


if __name__ == "__main__":
    main()
