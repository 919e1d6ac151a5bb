"""The Spark engine beside raw Spark, larder on DuckDB and Feast's Spark offline store, on ``local[2]``.

Three groups, each method in a child process of its own (a fresh JVM, a clean peak RSS), methods
alternating over ``--rounds`` so that noise on a shared machine hits them all; medians are reported.

**pit** -- a point-in-time join of L labels x M feature rows x 10 features (the peers' generator,
``shared/peers/gen_data.py``; restatements resolved into a Delta feature table keyed on entity + time):

  pit_larder_spark   create_training_set(spark labels).load_df() on the Spark engine, forced with a
                     ``noop`` write (every row computed, nothing collected)
  pit_spark_asof     the hand-written Spark as-of query on the same files: union of labels and feature
                     rows, ``last(struct(f1..f10), ignorenulls)`` over a window per entity ordered by
                     time, labels kept: the idiom's limit (no row order kept)
  pit_larder_duckdb  the same training set on the DuckDB engine (pandas out)
  feast_spark        Feast 0.67's Spark offline store (``_feast_spark.py`` in its own venv,
                     ``benchmarks/.feast-spark-venv``, made on first use)

  Correctness: larder on Spark, the hand-written query and Feast are compared row by row with larder on
  DuckDB (``shared/peers/compare_pit.py``).

**write** -- N rows (id, a timestamp, f1..f10) generated in Spark once, kept as parquet files and read
from them by every method (a frame from ``spark.range`` carries a uniqueness of ``id`` that Spark knows and
no real input has):

  write_parquet      Spark writing the rows as parquet alone: the limit
  write_larder       write_table(mode="overwrite") of the rows, defaults: the rows staged once as parquet
                     under the table, key checks and a profile of a 100k-row sample read from those files,
                     which one Delta commit then takes as they are
  write_larder_lean  the same without staging and the profile (persist_writes=False, profiling off):
                     checks on the DataFrame, files, commit
  write_arrow        the alternative design: the rows streamed to the driver as Arrow batches (one
                     partition at a time) and written by deltalake's ``write_deltalake``
  merge_larder       write_table(mode="merge") of N rows (half updates, half inserts) into the N-row table
  merge_spark_raw    the same merge hand-written in Spark (anti-join + union, parquet written, no commit)

**big** -- ``--big-rows`` feature rows (default 50M) written to a table by the Spark engine, then a
point-in-time join of 1M labels over them; the driver's Python RSS and the JVM's RSS are sampled
throughout and compared with the same join over 5M rows: the driver stays flat (nothing collected).

    flock /tmp/larder-bench.lock python benchmarks/spark.py                        # all groups
    flock /tmp/larder-bench.lock python benchmarks/spark.py --groups pit --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# a benchmark script named like a standard module would shadow it (pyspark imports profile)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
# the peers' tools sit beside the repository (shared/peers); a worktree may be nested deeper
PEERS = next((d / "shared" / "peers" for d in HERE.parents if (d / "shared" / "peers").is_dir()),
             HERE.parent.parent / "shared" / "peers")
DATA = HERE / ".data"
FEATS = [f"f{k}" for k in range(1, 11)]
FEAST_VENV = HERE / ".feast-spark-venv"
SPARK_CONF = {
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "4g",
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
}
TABLE = "bench_features"
WRITE_MODES = ["write_parquet", "write_larder", "write_larder_lean", "write_arrow", "merge_larder", "merge_spark_raw"]


def _log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- memory sampling


class Sampler:
    """Peak RSS of this process and of its JVM (the java child started by pyspark), every 50 ms."""

    def __init__(self) -> None:
        import psutil

        self.me = psutil.Process()
        self.peak_py = self.peak_jvm = 0
        self._stop = threading.Event()
        self._t: threading.Thread | None = None

    def jvm(self) -> Any:
        for child in self.me.children(recursive=True):
            try:
                if "java" in child.name():
                    return child
            except Exception:
                continue
        return None

    def sample(self) -> None:
        self.peak_py = max(self.peak_py, self.me.memory_info().rss)
        j = self.jvm()
        if j is not None:
            try:
                self.peak_jvm = max(self.peak_jvm, j.memory_info().rss)
            except Exception:
                pass

    def __enter__(self) -> Sampler:
        self.peak_py = self.peak_jvm = 0
        self._stop.clear()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.sample()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._t is not None
        self._t.join()
        self.sample()

    def mb(self) -> dict[str, float]:
        return {"driver_python_mb": self.peak_py / 2**20, "jvm_mb": self.peak_jvm / 2**20}


# --------------------------------------------------------------------------- data


def ensure_pit_data(entities: int, feature_rows: int, label_rows: int) -> Path:
    """The peers' data set of that size and a larder root with the deduplicated rows as a Delta table."""
    out = DATA / f"spark_e{entities}_f{feature_rows}_l{label_rows}"
    if not (out / "meta.json").exists():
        gen = PEERS / "gen_data.py"
        if not gen.exists():
            raise SystemExit(f"{gen} not found: the peers' tools must be beside the repository (shared/peers)")
        _log(f"generating {out.name} ...")
        subprocess.run([sys.executable, str(gen), "--entities", str(entities), "--feature-rows", str(feature_rows),
                        "--label-rows", str(label_rows), "--out", str(out)], check=True)
    root = out / "larder-root"
    if not (root / ".ready").exists():
        import duckdb
        import pyarrow.parquet as pq

        from larder.client import FeatureEngineeringClient

        _log(f"writing the feature table of {out.name} ...")
        shutil.rmtree(root, ignore_errors=True)
        con = duckdb.connect()
        dedup = con.sql(
            f"SELECT * EXCLUDE (created_timestamp) FROM read_parquet('{out / 'features.parquet'}') "
            "QUALIFY row_number() OVER (PARTITION BY entity_id, event_timestamp ORDER BY created_timestamp DESC) = 1"
        ).to_arrow_table()
        con.close()
        fe = FeatureEngineeringClient(root=root)
        fe.create_table(TABLE, primary_keys=["entity_id", "event_timestamp"], timestamp_keys="event_timestamp",
                        df=dedup)
        fe.close()
        del dedup, pq
        (root / ".ready").write_text("ok")
    return out


def _spark_config(root: Path, extra: dict[str, str] | None = None) -> Path:
    conf = {**SPARK_CONF, **(extra or {})}
    path = Path(tempfile.mkdtemp(prefix="larder-bench-")) / "larder.yaml"
    path.write_text("engine: spark\nspark_master: local[2]\nspark_conf:\n"
                    + "".join(f"  {k}: '{v}'\n" for k, v in conf.items()))
    return path


def _client(root: Path, engine: str) -> Any:
    from larder.client import FeatureEngineeringClient

    if engine == "spark":
        os.environ["LARDER_CONFIG"] = str(_spark_config(root))
    else:
        os.environ.pop("LARDER_CONFIG", None)
    fe = FeatureEngineeringClient(root=root)
    if engine == "spark":
        fe._ctx.engine.session.sparkContext.setLogLevel("ERROR")
    return fe


# --------------------------------------------------------------------------- children: pit


def _lookup() -> Any:
    from larder.training import FeatureLookup

    return FeatureLookup(TABLE, "entity_id", timestamp_lookup_key="event_timestamp", feature_names=FEATS)


def child_pit(mode: str, data: Path, repeats: int, result: str | None) -> dict[str, Any]:
    os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")
    root = data / "larder-root"
    labels_path = str(data / "labels.parquet")
    sampler = Sampler()
    if mode == "pit_larder_duckdb":
        import pandas as pd

        fe = _client(root, "duckdb")
        labels = pd.read_parquet(labels_path)

        def run() -> Any:
            return fe.create_training_set(labels, [_lookup()], label="label").load_df()

        def save(out: Any, path: str) -> None:
            out[["entity_id", "event_timestamp", "label", *FEATS]].to_parquet(path)
    else:
        fe = _client(root, "spark")
        spark = fe._ctx.engine.session
        labels = spark.read.parquet(labels_path)
        if mode == "pit_larder_spark":
            def build() -> Any:
                return fe.create_training_set(labels, [_lookup()], label="label").load_df()
        elif mode == "pit_spark_asof":
            snap = fe._tables.snapshot(TABLE)
            feats = spark.read.parquet(*["file://" + u for u in snap.table.file_uris()])

            def build() -> Any:
                return spark_asof(labels, feats)
        else:
            raise SystemExit(f"unknown mode {mode}")

        def run() -> Any:
            build().write.format("noop").mode("overwrite").save()

        def save(_: Any, path: str) -> None:
            build().select("entity_id", "event_timestamp", "label", *FEATS).toPandas().to_parquet(path)
    walls = []
    with sampler:
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = run()
            walls.append(time.perf_counter() - t0)
    if result:
        save(out, result)
    return {"mode": mode, "wall_s": walls, **sampler.mb()}


def spark_asof(labels: Any, feats: Any) -> Any:
    """The hand-written as-of join: labels and feature rows in one frame, the last feature struct up to
    each label (feature rows first on equal times) carried by a window per entity."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    struct = F.struct(*[F.col(c) for c in FEATS])
    lab = labels.select("entity_id", "event_timestamp", "label", F.lit(1).alias("__is_label"),
                        F.lit(None).cast(feats.select(struct.alias("s")).schema["s"].dataType).alias("__f"))
    fea = feats.select("entity_id", "event_timestamp", F.lit(None).cast("long").alias("label"),
                       F.lit(0).alias("__is_label"), struct.alias("__f"))
    w = (Window.partitionBy("entity_id").orderBy("event_timestamp", "__is_label")
         .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    both = lab.unionByName(fea).withColumn("__m", F.last("__f", ignorenulls=True).over(w))
    return both.where(F.col("__is_label") == 1).select(
        "entity_id", "event_timestamp", "label", *[F.col(f"__m.{c}").alias(c) for c in FEATS])


# --------------------------------------------------------------------------- children: write


def _generated(spark: Any, n: int, offset: int = 0, seed: int = 0) -> Any:
    from pyspark.sql import functions as F

    df = spark.range(offset, offset + n, numPartitions=max(2, n // 1_000_000))
    return df.select(F.col("id"), F.timestamp_seconds(F.lit(1_700_000_000) + F.col("id") % 1_000_000).alias("ts"),
                     *[F.rand(seed + k).alias(f"f{k}") for k in range(1, 11)])


def _rows(spark: Any, n: int, offset: int = 0, seed: int = 0) -> Any:
    """The write group's input: ``_generated``'s rows, written once as parquet (untimed, kept in
    ``.data``) and read back, for larder and the baselines alike. A frame straight from
    ``spark.range`` would let Spark know ``id`` unique and plan the key check's group-by away, which
    no real input allows."""
    path = DATA / f"write-input-n{n}-o{offset}-s{seed}"
    if not (path / ".ready").exists():
        shutil.rmtree(path, ignore_errors=True)
        (_generated(spark, n, offset, seed).write.option("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
         .parquet("file://" + str(path / "rows")))
        (path / ".ready").write_text("ok")
    return spark.read.parquet("file://" + str(path / "rows"))


def child_write(mode: str, n: int, repeats: int) -> dict[str, Any]:
    os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")
    work = Path(tempfile.mkdtemp(prefix="larder-bench-write-", dir=DATA))
    sampler = Sampler()
    try:
        fe = _client(work / "root", "spark")
        engine = fe._ctx.engine
        spark = engine.session
        walls = []
        timings: list[dict[str, float]] = []
        _rows(spark, n)  # the input files exist before anything is timed
        incoming = (_rows(spark, n, offset=n // 2, seed=100)  # half updates, half inserts of a merge
                    if mode.startswith("merge") else None)
        from larder.quality import configure_profiling

        with sampler:
            for r in range(repeats):
                target = work / f"out-{r}"
                if mode == "write_parquet":
                    t0 = time.perf_counter()
                    _rows(spark, n).write.parquet("file://" + str(target))
                elif mode in ("write_larder", "write_larder_lean"):
                    name = f"w{r}"
                    fe.create_table(name, primary_keys="id", schema=_rows(spark, n).limit(0).toArrow().schema)
                    lean = mode == "write_larder_lean"
                    configure_profiling(fe._ctx.catalog, f"main.default.{name}", enabled=not lean)
                    engine.persist_writes = not lean
                    t0 = time.perf_counter()
                    spans: dict[str, float] = {}
                    fe._tables.write_table(name, _rows(spark, n), mode="overwrite", timings=spans)
                    timings.append(spans)
                elif mode == "write_arrow":
                    t0 = time.perf_counter()
                    write_arrow_stream(_rows(spark, n), str(target))
                elif mode == "merge_larder":
                    fe.create_table(f"m{r}", primary_keys="id", df=_rows(spark, n))  # untimed: the table merged into
                    t0 = time.perf_counter()
                    fe.write_table(f"m{r}", incoming)
                elif mode == "merge_spark_raw":
                    fe.create_table(f"m{r}", primary_keys="id", df=_rows(spark, n))
                    snap = fe._tables.snapshot(f"m{r}")
                    current = spark.read.parquet(*["file://" + u for u in snap.table.file_uris()])
                    t0 = time.perf_counter()
                    keep = current.join(incoming.select("id"), on="id", how="left_anti")
                    keep.unionByName(incoming).write.parquet("file://" + str(target))
                else:
                    raise SystemExit(f"unknown mode {mode}")
                walls.append(time.perf_counter() - t0)
                shutil.rmtree(target, ignore_errors=True)
        fe.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out: dict[str, Any] = {"mode": mode, "rows": n, "wall_s": walls, **sampler.mb()}
    if timings:
        out["phases_s"] = {k: statistics.median(t.get(k, 0.0) for t in timings) for k in timings[0]}
    return out


def write_arrow_stream(df: Any, path: str) -> None:
    """The rows of ``df`` through the driver, one partition's Arrow batches at a time, into deltalake."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from larder.offline.spark.schema import arrow_schema

    schema = arrow_schema(df)

    def to_ipc(batches: Any) -> Any:
        import pyarrow as pa

        for batch in batches:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, batch.schema) as w:
                w.write_batch(batch)
            yield pa.RecordBatch.from_pydict({"ipc": [sink.getvalue().to_pybytes()]})

    rows = df.mapInArrow(to_ipc, "ipc binary").toLocalIterator(prefetchPartitions=True)

    def batches() -> Any:
        for row in rows:
            for b in pa.ipc.open_stream(row["ipc"]):
                yield b.cast(schema) if b.schema != schema else b

    write_deltalake(path, pa.RecordBatchReader.from_batches(schema, batches()), mode="error")


# --------------------------------------------------------------------------- children: big


def child_big(rows: int, labels_n: int) -> dict[str, Any]:
    """``rows`` feature rows written by the Spark engine, then a join of ``labels_n`` labels over them."""
    from pyspark.sql import functions as F

    os.environ.setdefault("LARDER_DISABLE_PROGRESS", "1")
    work = Path(tempfile.mkdtemp(prefix="larder-bench-big-", dir=DATA))
    entities = max(1000, rows // 100)
    try:
        fe = _client(work / "root", "spark")
        spark = fe._ctx.engine.session
        feats = spark.range(0, rows, numPartitions=max(2, rows // 2_000_000)).select(
            (F.col("id") % entities).alias("entity_id"),
            F.timestamp_seconds(F.lit(1_700_000_000) + (F.col("id") / entities).cast("long") * 60).alias(
                "event_timestamp"),
            *[F.rand(k).alias(f"f{k}") for k in range(1, 11)])
        span = rows // entities * 60
        labels = spark.range(0, labels_n, numPartitions=4).select(
            (F.abs(F.hash("id")) % entities).alias("entity_id"),
            F.timestamp_seconds(F.lit(1_700_000_000) + F.abs(F.hash(F.col("id") + 1)) % span).alias("event_timestamp"),
            (F.col("id") % 2).alias("label"))
        labels.write.parquet("file://" + str(work / "labels"))
        labels = spark.read.parquet("file://" + str(work / "labels"))
        sampler = Sampler()
        with sampler:
            t0 = time.perf_counter()
            fe.create_table(TABLE, primary_keys=["entity_id", "event_timestamp"], timestamp_keys="event_timestamp",
                            df=feats)
            write_s = time.perf_counter() - t0
        write_mem = sampler.mb()
        with sampler:
            t0 = time.perf_counter()
            fe.create_training_set(labels, [_lookup()], label="label").load_df() \
                .write.format("noop").mode("overwrite").save()
            pit_s = time.perf_counter() - t0
        fe.close()
        return {"mode": "big", "rows": rows, "labels": labels_n, "write_s": write_s, "pit_s": pit_s,
                "write_mem": write_mem, "pit_mem": sampler.mb()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- parent


def run_child(args: list[str], timeout: float = 3600) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", *args]
    _log("  " + " ".join(args))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"mode": args[0], "error": f"timed out after {timeout:.0f}s"}
    if proc.returncode != 0:
        _log(proc.stderr[-3000:])
        return {"mode": args[0], "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    _log(f"    {json.dumps({k: v for k, v in res.items() if k != 'mode'})[:300]}")
    return res


def feast_venv() -> Path | None:
    py = FEAST_VENV / "bin" / "python"
    if py.exists():
        return py
    _log(f"making {FEAST_VENV} (feast[spark]==0.67.0) ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(FEAST_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "feast[spark]==0.67.0", "psutil"], check=True)
    except subprocess.CalledProcessError as exc:
        _log(f"cannot make the Feast venv: {exc}")
        return None
    return py


def run_feast(data: Path, repeats: int, result: Path | None) -> dict[str, Any]:
    py = feast_venv()
    if py is None:
        return {"mode": "feast_spark", "error": "no venv"}
    cmd = [str(py), str(HERE / "_feast_spark.py"), "--data", str(data), "--repeats", str(repeats)]
    if result:
        cmd += ["--result", str(result)]
    _log("  feast_spark")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=5400)
    except subprocess.TimeoutExpired:
        return {"mode": "feast_spark", "error": "timed out after 5400s"}
    if proc.returncode != 0:
        _log(proc.stderr[-3000:])
        return {"mode": "feast_spark", "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    _log(f"    {res}")
    return res


def compare(oracle: Path, candidate: Path) -> dict[str, Any]:
    tool = PEERS / "compare_pit.py"
    proc = subprocess.run([sys.executable, str(tool), str(oracle), str(candidate)], capture_output=True, text=True)
    try:
        res = json.loads(proc.stdout)
    except ValueError:
        return {"error": proc.stderr[-500:]}
    return {k: res[k] for k in ("oracle_rows", "candidate_rows", "missing_in_candidate", "extra_in_candidate",
                                "mismatched_rows") if k in res}


def median(res: dict[str, Any]) -> float | None:
    walls = res.get("wall_s")
    return statistics.median(walls) if walls else None


def group_pit(a: argparse.Namespace, out: dict[str, Any]) -> None:
    data = ensure_pit_data(a.entities, a.feature_rows, a.label_rows)
    results_dir = Path(tempfile.mkdtemp(prefix="larder-bench-pit-", dir=DATA))
    modes = ["pit_larder_spark", "pit_spark_asof", "pit_larder_duckdb"]
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for rnd in range(a.rounds):
        for m in modes:
            res_path = results_dir / f"{m}.parquet" if rnd == 0 else None
            args = [m, "--data", str(data), "--repeats", str(a.repeats)] + (["--result", str(res_path)] if res_path else [])
            runs[m].append(run_child(args))
    feast = run_feast(data, a.repeats, results_dir / "feast_spark.parquet") if not a.skip_feast else {"skipped": True}
    summary: dict[str, Any] = {}
    for m, rs in runs.items():
        walls = [w for r in rs for w in r.get("wall_s", [])]
        summary[m] = {"median_s": statistics.median(walls) if walls else None, "wall_s": walls,
                      "errors": [r["error"] for r in rs if "error" in r],
                      "peak_driver_python_mb": max((r.get("driver_python_mb", 0) for r in rs), default=None),
                      "peak_jvm_mb": max((r.get("jvm_mb", 0) for r in rs), default=None)}
    summary["feast_spark"] = {"median_s": median(feast), **feast}
    oracle = results_dir / "pit_larder_duckdb.parquet"
    checks = {}
    for m in ["pit_larder_spark", "pit_spark_asof", "feast_spark"]:
        cand = results_dir / f"{m}.parquet"
        if oracle.exists() and cand.exists():
            checks[m] = compare(oracle, cand)
    base = summary["pit_spark_asof"]["median_s"]
    ratios = {m: (summary[m]["median_s"] / base if base and summary[m].get("median_s") else None)
              for m in ["pit_larder_spark", "pit_larder_duckdb", "feast_spark"]}
    out["pit"] = {"entities": a.entities, "feature_rows": a.feature_rows, "label_rows": a.label_rows,
                  "methods": summary, "vs_spark_asof": ratios, "checks_vs_larder_duckdb": checks,
                  "target": "pit_larder_spark <= 1.5x pit_spark_asof"}
    shutil.rmtree(results_dir, ignore_errors=True)


def group_write(a: argparse.Namespace, out: dict[str, Any]) -> None:
    DATA.mkdir(exist_ok=True)
    modes = [m for m in WRITE_MODES if m in a.write_modes.split(",")]
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for _ in range(a.rounds):
        for m in modes:
            runs[m].append(run_child([m, "--rows", str(a.write_rows), "--repeats", str(a.repeats)]))
    summary = {}
    for m, rs in runs.items():
        walls = [w for r in rs for w in r.get("wall_s", [])]
        summary[m] = {"median_s": statistics.median(walls) if walls else None, "wall_s": walls,
                      "errors": [r["error"] for r in rs if "error" in r],
                      **({"phases_s": rs[-1]["phases_s"]} if rs and "phases_s" in rs[-1] else {})}
    def med(m: str) -> float | None:
        return summary[m]["median_s"] if m in summary else None

    base, raw_merge = med("write_parquet"), med("merge_spark_raw")
    out["write"] = {"rows": a.write_rows, "methods": summary,
                    "vs_write_parquet": {m: (med(m) / base if base and med(m) else None)  # type: ignore[operator]
                                         for m in ["write_larder", "write_larder_lean", "write_arrow", "merge_larder"]},
                    "merge_vs_raw_merge": (med("merge_larder") / raw_merge  # type: ignore[operator]
                                           if raw_merge and med("merge_larder") else None),
                    "target": "write_larder <= 1.5x write_parquet"}


def group_big(a: argparse.Namespace, out: dict[str, Any]) -> None:
    DATA.mkdir(exist_ok=True)
    small = run_child(["big", "--rows", str(a.big_rows // 10), "--labels", "1000000"], timeout=7200)
    big = run_child(["big", "--rows", str(a.big_rows), "--labels", "1000000"], timeout=7200)
    out["big"] = {"small": small, "big": big}


def table(out: dict[str, Any]) -> str:
    lines = []
    if "pit" in out:
        p = out["pit"]
        lines.append(f"point-in-time join {p['label_rows']:,} labels x {p['feature_rows']:,} rows x 10 features")
        for m, s in p["methods"].items():
            ratio = p["vs_spark_asof"].get(m)
            med = s.get("median_s")
            lines.append(f"  {m:20s} {med if med is None else round(med, 2)!s:>8} s"
                         + (f"  {ratio:.2f}x hand-written Spark" if ratio else "")
                         + (f"  error: {s.get('error') or s.get('errors')}" if s.get("error") or s.get("errors") else ""))
        for m, c in p["checks_vs_larder_duckdb"].items():
            lines.append(f"  check {m}: {c}")
    if "write" in out:
        w = out["write"]
        lines.append(f"write/merge of {w['rows']:,} rows")
        for m, s in w["methods"].items():
            ratio = w["vs_write_parquet"].get(m)
            med = s.get("median_s")
            lines.append(f"  {m:20s} {med if med is None else round(med, 2)!s:>8} s"
                         + (f"  {ratio:.2f}x Spark parquet" if ratio else ""))
        if w.get("merge_vs_raw_merge"):
            lines.append(f"  merge_larder / merge_spark_raw = {w['merge_vs_raw_merge']:.2f}x")
    if "big" in out:
        for k in ("small", "big"):
            b = out["big"][k]
            if "error" in b:
                lines.append(f"  big {k}: error {b['error']}")
                continue
            lines.append(f"  {b['rows']:,} rows: write {b['write_s']:.1f} s (driver python "
                         f"{b['write_mem']['driver_python_mb']:.0f} MB, jvm {b['write_mem']['jvm_mb']:.0f} MB); "
                         f"join of {b['labels']:,} labels {b['pit_s']:.1f} s (driver python "
                         f"{b['pit_mem']['driver_python_mb']:.0f} MB, jvm {b['pit_mem']['jvm_mb']:.0f} MB)")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", nargs=argparse.REMAINDER)
    ap.add_argument("--groups", default="pit,write,big")
    ap.add_argument("--entities", type=int, default=50_000)
    ap.add_argument("--feature-rows", type=int, default=5_000_000)
    ap.add_argument("--label-rows", type=int, default=1_000_000)
    ap.add_argument("--write-rows", type=int, default=10_000_000)
    ap.add_argument("--write-modes", default=",".join(WRITE_MODES), help="the write group's methods to run")
    ap.add_argument("--big-rows", type=int, default=50_000_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-feast", action="store_true")
    ap.add_argument("--json-out")
    a = ap.parse_args()
    if a.child:
        c = argparse.ArgumentParser()
        c.add_argument("mode")
        c.add_argument("--data")
        c.add_argument("--repeats", type=int, default=1)
        c.add_argument("--result")
        c.add_argument("--rows", type=int)
        c.add_argument("--labels", type=int)
        ca = c.parse_args(a.child)
        if ca.mode.startswith("pit_"):
            res = child_pit(ca.mode, Path(ca.data), ca.repeats, ca.result)
        elif ca.mode == "big":
            res = child_big(ca.rows, ca.labels)
        else:
            res = child_write(ca.mode, ca.rows, ca.repeats)
        print(json.dumps(res))
        return
    import psutil
    import pyspark

    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
                                       "python": platform.python_version(), "pyspark": pyspark.__version__,
                                       "spark_conf": {"master": "local[2]", **SPARK_CONF}},
                           "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    groups = a.groups.split(",")
    if "pit" in groups:
        group_pit(a, out)
    if "write" in groups:
        group_write(a, out)
    if "big" in groups:
        group_big(a, out)
    print(table(out), file=sys.stderr)
    text = json.dumps(out, indent=2, default=str)
    if a.json_out:
        Path(a.json_out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
