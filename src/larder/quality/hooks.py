"""The two calls ``write_table`` makes: validate before the Delta commit, record after it.

::

    result = check_before_write(catalog, full_name, df, keys=primary_keys)   # raises if strict fails
    version = <commit to Delta>
    record_after_write(catalog, full_name, version, df, result)             # results + profile

A writer may compute the profile while it commits: ``pending = start_profile(catalog, full_name, df,
pool)`` before the commit, then ``record_after_write(..., pending=pending)``. The profile is the same
(it depends only on ``df``) and is still stored only once the commit produced a version.
``create_table`` starts it with :func:`start_first_profile` and stores it (``store_profile``) in the
transaction that registers the table.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from datetime import datetime
from typing import Any

import pyarrow as pa

from larder.catalog import Catalog
from larder.errors import LarderError
from larder.quality.profiling import Profile, profile
from larder.quality.store import QualitySettings, get_settings, save_profile, save_validation
from larder.quality.validation import QualityWarning, ValidationResult, enforce, validate

#: What a failed profiling raises: the write stays committed and its version has no profile.
PROFILE_ERRORS = (LarderError, pa.ArrowException, ValueError, TypeError)


def check_before_write(
    catalog: Catalog,
    full_name: str,
    df: Any,
    *,
    keys: Sequence[str] | None = None,
    now: datetime | None = None,
    validator: Callable[..., ValidationResult] | None = None,
) -> ValidationResult | None:
    """Validate the rows about to be written against the table's expectations and enforce its policy.

    Returns ``None`` when the table has no expectations or its policy is ``off``; otherwise the
    :class:`ValidationResult`, after warning (``warn``) about failures. ``validator`` replaces
    :func:`~larder.quality.validation.validate` (same signature): the offline engine's, for its frames.

    Raises
    ------
    larder.errors.ValidationError
        Under the ``strict`` policy when an expectation fails: the caller must not commit.
    """
    settings = get_settings(catalog, full_name)
    if not settings.expectations or settings.policy == "off":
        return None
    result = (validator or validate)(df, settings.expectations, table=full_name, keys=keys, now=now)
    enforce(result, settings.policy, full_name)
    return result


def start_profile(catalog: Catalog, full_name: str, df: Any, pool: Executor,
                  profiler: Callable[..., Profile] | None = None) -> Future[Profile] | None:
    """Start profiling ``df`` on ``pool`` if the table profiles on write; ``None`` if it does not.

    Pass the result to :func:`record_after_write` as ``pending`` once the write has committed.
    ``profiler`` replaces :func:`~larder.quality.profiling.profile` (called with ``sample_rows=``).
    """
    settings = get_settings(catalog, full_name)
    if not settings.profile_on_write:
        return None
    return pool.submit(profiler or profile, df, sample_rows=settings.profile_sample_rows)


def record_after_write(
    catalog: Catalog,
    full_name: str,
    version: int,
    df: Any,
    result: ValidationResult | None,
    *,
    pending: Future[Profile] | None = None,
    profiler: Callable[..., Profile] | None = None,
) -> Profile | None:
    """Store the validation ``result`` and, if profiling on write is on, a profile of ``df``.

    Both are stored under the Delta ``version`` the write produced. The write has already committed,
    so a profiling failure does not raise: it is reported as a :class:`QualityWarning` and the
    version simply has no profile. Catalog errors on storing the result do raise. ``pending`` is a
    profile of ``df`` already started with :func:`start_profile`.
    """
    settings = get_settings(catalog, full_name)
    if result is not None:
        save_validation(catalog, full_name, version, result, policy=settings.policy)
    if not settings.profile_on_write:
        return None
    try:
        prof = (pending.result() if pending is not None
                else (profiler or profile)(df, sample_rows=settings.profile_sample_rows))
    except PROFILE_ERRORS as exc:
        warn_unprofiled(full_name, version, exc)
        return None
    save_profile(catalog, full_name, version, prof)
    return prof


def start_first_profile(df: Any, pool: Executor, profiler: Callable[..., Profile] | None = None) -> Future[Profile]:
    """:func:`start_profile` for the rows a table is created with: a new table has the default
    settings (profiled on write, sampled to :data:`~larder.quality.store.DEFAULT_PROFILE_SAMPLE_ROWS`),
    whatever was stored under its name before (the create deletes that), so the catalog is not asked."""
    return pool.submit(profiler or profile, df, sample_rows=QualitySettings().profile_sample_rows)


def warn_unprofiled(full_name: str, version: int, exc: BaseException) -> None:
    """Report that a committed version got no profile (a profiling failure never fails a write)."""
    warnings.warn(f"Table {full_name!r} version {version}: the write committed but could not be "
                  f"profiled ({exc}); no profile is stored for this version.", QualityWarning,
                  stacklevel=3)


__all__ = ["PROFILE_ERRORS", "check_before_write", "record_after_write", "start_first_profile", "start_profile",
           "warn_unprofiled"]
