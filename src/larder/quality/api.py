"""Quality operations on a feature table, given a ``FeatureEngineeringClient``.

These helpers need only a few client methods (see :class:`FeatureClient`), so the client can
delegate to them without the quality package importing it::

    report = compare_table(fe, "houses", baseline=3)          # version 3 vs the latest version
    report = compare_table(fe, "houses", baseline=training_set, current=todays_df)
    report_table(fe, "houses", "houses-quality.html")
    ok = check_table(fe, "houses")                             # expectations on the latest data
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from larder.catalog import Catalog
from larder.errors import ConfigError
from larder.quality.drift import DriftReport, DriftThresholds, compare
from larder.quality.report import render_report
from larder.quality.store import get_settings, list_profiles, list_validations
from larder.quality.validation import ValidationResult, validate


class FeatureClient(Protocol):
    """What these helpers use of ``FeatureEngineeringClient``."""

    def read_table(self, name: str, as_of_version: int | None = None) -> pd.DataFrame: ...

    def get_table(self, name: str) -> Any: ...  # .name (full name), .version, .primary_keys, .timestamp_keys


def _catalog(fe: Any) -> Catalog:
    return fe._ctx.catalog


def compare_table(
    fe: FeatureClient,
    name: str,
    baseline: Any,
    current: Any = None,
    *,
    features: list[str] | None = None,
    thresholds: DriftThresholds | dict[str, Any] | None = None,
) -> DriftReport:
    """Drift of a feature table between two sides.

    Parameters
    ----------
    baseline, current
        Each a Delta version (``int``) of the table, a training set (anything with ``load_df()``), or
        a DataFrame (pandas or pyarrow). ``current=None`` is the table's latest version.
    features
        Features to compare. Default: the columns both sides have, less the table's primary and
        timestamp keys (pass it when a training set renamed its features).
    thresholds
        :class:`DriftThresholds` or a dict of its fields.
    """
    info = fe.get_table(name)
    base_df, base_label = _resolve(fe, name, baseline, info)
    cur_df, cur_label = _resolve(fe, name, current, info)
    keys = set(info.primary_keys or []) | set(info.timestamp_keys or [])
    if features is None:
        features = [c for c in base_df.columns if c in cur_df.columns and c not in keys]
    return compare(base_df, cur_df, features=features, thresholds=thresholds,
                   baseline_label=base_label, current_label=cur_label)


#: A Spark DataFrame is compared through a uniform sample of at most this many rows (drawn in Spark).
SPARK_SAMPLE_ROWS = 200_000


def _local(df: Any) -> Any:
    """A Spark DataFrame (what ``read_table`` and ``load_df`` give on the Spark engine) as a pandas sample."""
    if hasattr(df, "sparkSession"):
        from larder.offline.spark.checks import sample

        return sample(df, SPARK_SAMPLE_ROWS)[0].to_pandas()
    return df


def _resolve(fe: FeatureClient, name: str, side: Any, info: Any) -> tuple[pd.DataFrame, str]:
    frame, label = _resolve_side(fe, name, side, info)
    return _local(frame), label


def _resolve_side(fe: FeatureClient, name: str, side: Any, info: Any) -> tuple[Any, str]:
    if side is None:
        return fe.read_table(name), f"version {info.version} (latest)"
    if isinstance(side, bool):
        raise ConfigError(f"compare on {info.name!r}: a side must be a version, training set or DataFrame, "
                          f"not {side!r}.")
    if isinstance(side, int):
        if side < 0 or side > info.version:
            raise ConfigError(f"Table {info.name!r} has versions 0..{info.version}; version {side} does "
                              "not exist. Use a version from `larder tables history`.")
        return fe.read_table(name, as_of_version=side), f"version {side}"
    if isinstance(side, pd.DataFrame) or hasattr(side, "sparkSession"):
        return side, "DataFrame"
    if callable(getattr(side, "load_df", None)):
        df = _local(side.load_df())
        return (df if isinstance(df, pd.DataFrame) else _to_pandas(df, info.name)), "training set"
    if callable(getattr(side, "to_pandas", None)):
        return _to_pandas(side, info.name), "DataFrame"
    raise ConfigError(
        f"compare on {info.name!r}: cannot compare a {type(side).__name__}; pass a Delta version (int), a "
        "training set (from create_training_set) or a DataFrame."
    )


def _to_pandas(obj: Any, table: str) -> pd.DataFrame:
    out = obj.to_pandas()
    if not isinstance(out, pd.DataFrame):
        raise ConfigError(f"compare on {table!r}: {type(obj).__name__}.to_pandas() gave no DataFrame.")
    return out


def report_table(
    fe: FeatureClient,
    name: str,
    out: str | os.PathLike[str],
    *,
    baseline_version: int | None = None,
    current_version: int | None = None,
    thresholds: DriftThresholds | dict[str, Any] | None = None,
) -> Path:
    """Write the table's HTML quality report to ``out`` and return its path.

    The drift section compares ``baseline_version`` (default: the version before
    ``current_version``) with ``current_version`` (default: the latest). Null rates and expectation
    results come from the profiles and validation runs stored at each write.
    """
    info = fe.get_table(name)
    cur_v = info.version if current_version is None else current_version
    base_v = baseline_version if baseline_version is not None else max(cur_v - 1, 0)
    drift = compare_table(fe, name, base_v, current_version, thresholds=thresholds)
    catalog = _catalog(fe)
    settings = get_settings(catalog, info.name)
    html = render_report(
        table=info.name,
        drift=drift,
        profiles=list_profiles(catalog, info.name),
        validations=list_validations(catalog, info.name),
        expectations=settings.expectations,
        policy=settings.policy,
    )
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot write the quality report of {info.name!r} to {str(path)!r}: {exc}. "
                          "Choose a writable --out path.") from exc
    return path


def validate_table(fe: FeatureClient, name: str, *, version: int | None = None) -> ValidationResult | None:
    """Validate a version of the table (default: the latest) against its expectations.

    Returns ``None`` when the table has no expectations. Nothing is stored.
    """
    info = fe.get_table(name)
    settings = get_settings(_catalog(fe), info.name)
    if not settings.expectations:
        return None
    df = fe.read_table(name) if version is None else fe.read_table(name, as_of_version=version)
    engine = getattr(getattr(fe, "_ctx", None), "engine", None)
    run = engine.validate if engine is not None else validate  # the engine validates its own frames
    return run(df, settings.expectations, table=info.name,
               keys=list(info.primary_keys or []) + list(info.timestamp_keys or []))


def check_table(fe: FeatureClient, name: str, *, version: int | None = None) -> bool:
    """``True`` when the table's data (latest version by default) meets all its expectations."""
    result = validate_table(fe, name, version=version)
    return result is None or result.passed


__all__ = ["FeatureClient", "check_table", "compare_table", "report_table", "validate_table"]
