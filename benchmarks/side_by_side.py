"""Run one benchmark script of two checkouts in alternation and print the figures side by side.

Each checkout runs its own copy of the script with its own virtualenv (``<checkout>/.venv``), so the two
measure the same work on the two code bases in one session on the same machine. Rounds alternate which
checkout goes first (base, head; head, base; ...), so a drift in the machine's load hits both. Every
numeric figure of the scripts' JSON is printed per round and as medians with the ratio head / base;
figures matching ``--show`` (a regular expression over the figure's path) are printed, all are saved
with ``--json-out``.

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
    ap.add_argument("--base", required=True, type=Path, help="the checkout measured as the reference")
    ap.add_argument("--head", required=True, type=Path, help="the checkout compared with it")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each checkout")
    ap.add_argument("--lock", default=None, help="run each script under flock on this file")
    ap.add_argument("--show", default=DEFAULT_SHOW, help="regular expression of the figures to print")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("script", help="the script under benchmarks/, e.g. online.py")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="its arguments (after --)")
    opts = ap.parse_args()
    args = opts.args[1:] if opts.args[:1] == ["--"] else opts.args
    checkouts = {"base": opts.base.resolve(), "head": opts.head.resolve()}
    runs: dict[str, list[dict[str, float]]] = {"base": [], "head": []}
    raw: dict[str, list[Any]] = {"base": [], "head": []}
    for r in range(opts.rounds):
        for side in (("base", "head") if r % 2 == 0 else ("head", "base")):
            got = run(checkouts[side], opts.script, args, opts.lock)
            raw[side].append(got)
            runs[side].append(flatten(got))
    paths = [p for p in runs["base"][0] if all(p in run_ for side in runs.values() for run_ in side)]
    show = re.compile(opts.show)
    rows = []
    for path in paths:
        base = [run_[path] for run_ in runs["base"]]
        head = [run_[path] for run_ in runs["head"]]
        mb, mh = statistics.median(base), statistics.median(head)
        rows.append({"figure": path, "base": base, "head": head, "base_median": mb, "head_median": mh,
                     "head_over_base": mh / mb if mb else None})
    width = max((len(r["figure"]) for r in rows if show.search(r["figure"])), default=10)
    print(f"{'figure':{width}}  {'base (per round)':>28}  {'head (per round)':>28}  {'head/base':>9}")
    for row in rows:
        if not show.search(row["figure"]):
            continue
        ratio = row["head_over_base"]
        print(f"{row['figure']:{width}}  {' '.join(f'{v:9.4g}' for v in row['base']):>28}  "
              f"{' '.join(f'{v:9.4g}' for v in row['head']):>28}  {'' if ratio is None else f'{ratio:9.3f}'}")
    if opts.json_out:
        Path(opts.json_out).write_text(json.dumps({"checkouts": {k: str(v) for k, v in checkouts.items()},
                                                   "script": opts.script, "args": args, "figures": rows,
                                                   "runs": raw}, indent=1, default=str))


if __name__ == "__main__":
    main()
