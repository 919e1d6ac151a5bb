"""Catalog persistence of a table's quality settings, validation runs and profiles.

Every function takes a :class:`~larder.catalog.Catalog` and the table's full name
(``"main.default.houses"``). Tables are referred to by name only, so these records outlive nothing:
call :func:`delete_for_table` when a table is dropped.

>>> from larder.catalog import Catalog
>>> from larder.quality.expectations import not_null
>>> cat = Catalog("sqlite://")
>>> set_expectations(cat, "main.default.houses", [not_null("price")], policy="warn").policy
'warn'
>>> [e.describe() for e in get_settings(cat, "main.default.houses").expectations]
['not_null(price)']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select

from larder.catalog import Catalog
from larder.catalog.quality import ProfileRecord, QualitySettingsRecord, ValidationRunRecord
from larder.errors import ConfigError
from larder.quality.expectations import Custom, coerce_expectations, dump_expectations, load_expectations
from larder.quality.profiling import Profile
from larder.quality.validation import POLICIES, Policy, ValidationResult

#: Policy of a table whose expectations were set without one.
DEFAULT_POLICY: Final = "strict"
#: Writes larger than this are profiled on a sample of this many rows (unless configured otherwise).
DEFAULT_PROFILE_SAMPLE_ROWS: Final = 100_000


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "Not given", distinct from ``None`` (which, for ``sample_rows``, means "never sample").
UNSET: Final = _Unset()


class QualitySettings(BaseModel):
    """What a table's writes are checked against, and how."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    expectations: list[Any] = Field(default_factory=list)
    policy: Policy = DEFAULT_POLICY
    profile_on_write: bool = True
    profile_sample_rows: int | None = DEFAULT_PROFILE_SAMPLE_ROWS


# ------------------------------------------------------------------------------------------ settings
def get_settings(catalog: Catalog, full_name: str) -> QualitySettings:
    """The table's quality settings (defaults when none were stored)."""
    with catalog.session() as s:
        rec = s.scalar(select(QualitySettingsRecord).where(QualitySettingsRecord.table_full_name == full_name))
        if rec is None:
            return QualitySettings()
        return QualitySettings(
            expectations=load_expectations(rec.expectations or []),
            policy=rec.policy,  # type: ignore[arg-type]
            profile_on_write=rec.profile_on_write,
            profile_sample_rows=rec.profile_sample_rows,
        )


def set_expectations(
    catalog: Catalog,
    full_name: str,
    expectations: Sequence[Any],
    *,
    policy: Policy | None = None,
    columns: Sequence[str] | None = None,
) -> QualitySettings:
    """Replace the table's expectations (and its policy, when given).

    Parameters
    ----------
    expectations
        Expectation models or dicts; an empty list removes them all.
    policy
        ``"strict"``, ``"warn"`` or ``"off"``; ``None`` keeps the current one (``"strict"`` for a
        table without settings).
    columns
        The table's columns, if known: expectations on other columns are rejected.

    Raises
    ------
    ConfigError
        For an unknown policy, malformed expectations or unknown columns.
    """
    exps = coerce_expectations(expectations)
    if policy is not None:
        check_policy(policy, full_name)
    if columns is not None:
        check_columns(exps, columns, full_name)
    with catalog.session() as s:
        store_expectations(s, full_name, exps, policy=policy)
    return get_settings(catalog, full_name)


def store_expectations(session: Any, full_name: str, expectations: Sequence[Any], *,
                       policy: Policy | None = None) -> None:
    """Write checked expectations (and the policy, when given) in the caller's catalog transaction,
    so that a table and its settings are created together or not at all."""
    rec = _settings_record(session, full_name)
    rec.expectations = dump_expectations(coerce_expectations(expectations))
    if policy is not None:
        rec.policy = policy


def set_policy(catalog: Catalog, full_name: str, policy: Policy) -> QualitySettings:
    """Set how failed expectations are enforced on the table's writes."""
    check_policy(policy, full_name)
    with catalog.session() as s:
        _settings_record(s, full_name).policy = policy
    return get_settings(catalog, full_name)


def configure_profiling(
    catalog: Catalog,
    full_name: str,
    *,
    enabled: bool | None = None,
    sample_rows: int | None | _Unset = UNSET,
) -> QualitySettings:
    """Turn profiling on write on or off and set its sample size (``None``: profile every row)."""
    if not isinstance(sample_rows, _Unset) and sample_rows is not None and sample_rows < 1:
        raise ConfigError(f"Table {full_name!r}: profile sample_rows must be >= 1 or None, got {sample_rows}.")
    with catalog.session() as s:
        rec = _settings_record(s, full_name)
        if enabled is not None:
            rec.profile_on_write = enabled
        if not isinstance(sample_rows, _Unset):
            rec.profile_sample_rows = sample_rows
    return get_settings(catalog, full_name)


def check_columns(expectations: Sequence[Any], columns: Sequence[str], full_name: str) -> None:
    """Raise ConfigError naming expectations that refer to columns the table does not have."""
    known = set(columns)
    bad = [(e.describe(), c) for e in coerce_expectations(expectations) if not isinstance(e, Custom)
           for c in e.columns if c not in known]
    if bad:
        listed = "; ".join(f"{label} uses {col!r}" for label, col in bad)
        raise ConfigError(
            f"Table {full_name!r} has no such column: {listed}. Its columns are {sorted(known)}; "
            "fix the column names in the expectations."
        )


def check_policy(policy: str, full_name: str) -> None:
    """Raise ConfigError unless ``policy`` is one of ``strict``, ``warn``, ``off``."""
    if policy not in POLICIES:
        raise ConfigError(
            f"Unknown quality policy {policy!r} for table {full_name!r}: use one of {list(POLICIES)}."
        )


_check_policy = check_policy  # the name feature tables imported first


def _settings_record(session: Any, full_name: str) -> QualitySettingsRecord:
    rec = session.scalar(
        select(QualitySettingsRecord).where(QualitySettingsRecord.table_full_name == full_name)
    )
    if rec is None:
        rec = QualitySettingsRecord(table_full_name=full_name, expectations=[], policy=DEFAULT_POLICY,
                                    profile_on_write=True, profile_sample_rows=DEFAULT_PROFILE_SAMPLE_ROWS)
        session.add(rec)
    return rec


# ------------------------------------------------------------------------------------ validation runs
def save_validation(catalog: Catalog, full_name: str, version: int, result: ValidationResult,
                    *, policy: Policy) -> None:
    """Store ``result`` as the validation run of ``version`` (replacing one stored before)."""
    with catalog.session() as s:
        store_validation(s, full_name, version, result, policy=policy)


def store_validation(session: Any, full_name: str, version: int, result: ValidationResult,
                     *, policy: Policy) -> None:
    """:func:`save_validation` in the caller's catalog transaction (a create stores its first
    version's validation run with the table's row)."""
    data = result.model_dump(mode="json")
    rec = session.scalar(select(ValidationRunRecord).where(
        ValidationRunRecord.table_full_name == full_name, ValidationRunRecord.delta_version == version))
    if rec is None:
        rec = ValidationRunRecord(table_full_name=full_name, delta_version=version)
        session.add(rec)
    rec.passed = result.passed
    rec.policy = policy
    rec.row_count = result.row_count
    rec.failed_count = len(result.failed)
    rec.result = data


def get_validation(catalog: Catalog, full_name: str, version: int | None = None) -> ValidationResult | None:
    """The validation run of ``version`` (default: the latest one stored), or ``None``."""
    with catalog.session() as s:
        q = select(ValidationRunRecord).where(ValidationRunRecord.table_full_name == full_name)
        if version is not None:
            q = q.where(ValidationRunRecord.delta_version == version)
        rec = s.scalar(q.order_by(ValidationRunRecord.delta_version.desc()).limit(1))
        return None if rec is None else ValidationResult.model_validate(rec.result)


def list_validations(catalog: Catalog, full_name: str) -> list[tuple[int, ValidationResult]]:
    """Every stored validation run of the table as ``(version, result)``, oldest first."""
    with catalog.session() as s:
        recs = s.scalars(select(ValidationRunRecord)
                         .where(ValidationRunRecord.table_full_name == full_name)
                         .order_by(ValidationRunRecord.delta_version)).all()
        return [(r.delta_version, ValidationResult.model_validate(r.result)) for r in recs]


# ------------------------------------------------------------------------------------------- profiles
def save_profile(catalog: Catalog, full_name: str, version: int, profile: Profile) -> None:
    """Store ``profile`` as the profile of ``version`` (replacing one stored before)."""
    with catalog.session() as s:
        store_profile(s, full_name, version, profile)


def store_profile(session: Any, full_name: str, version: int, profile: Profile) -> None:
    """:func:`save_profile` in the caller's catalog transaction (a create stores its first version's
    profile with the table's row)."""
    data = profile.model_dump(mode="json")
    rec = session.scalar(select(ProfileRecord).where(
        ProfileRecord.table_full_name == full_name, ProfileRecord.delta_version == version))
    if rec is None:
        rec = ProfileRecord(table_full_name=full_name, delta_version=version)
        session.add(rec)
    rec.row_count = profile.row_count
    rec.profiled_rows = profile.profiled_rows
    rec.sampled = profile.sampled
    rec.profile = data


def get_profile(catalog: Catalog, full_name: str, version: int | None = None) -> Profile | None:
    """The profile of ``version`` (default: the latest one stored), or ``None``."""
    with catalog.session() as s:
        q = select(ProfileRecord).where(ProfileRecord.table_full_name == full_name)
        if version is not None:
            q = q.where(ProfileRecord.delta_version == version)
        rec = s.scalar(q.order_by(ProfileRecord.delta_version.desc()).limit(1))
        return None if rec is None else Profile.model_validate(rec.profile)


def list_profiles(catalog: Catalog, full_name: str) -> list[tuple[int, Profile]]:
    """Every stored profile of the table as ``(version, profile)``, oldest first."""
    with catalog.session() as s:
        recs = s.scalars(select(ProfileRecord).where(ProfileRecord.table_full_name == full_name)
                         .order_by(ProfileRecord.delta_version)).all()
        return [(r.delta_version, Profile.model_validate(r.profile)) for r in recs]


# -------------------------------------------------------------------------------------------- cleanup
def delete_for_table(catalog: Catalog, full_name: str) -> int:
    """Delete the table's settings, validation runs and profiles; returns the number of rows deleted."""
    with catalog.session() as s:
        return delete_rows_for_table(s, full_name)


def delete_rows_for_table(session: Any, full_name: str) -> int:
    """:func:`delete_for_table` in the caller's catalog transaction (a drop deletes the table's row and
    its quality rows together)."""
    total = 0
    for model in QUALITY_RECORDS:
        res = session.execute(delete(model).where(model.table_full_name == full_name))
        total += int(getattr(res, "rowcount", 0) or 0)
    return total


#: The catalog records of this package, each keyed by ``table_full_name``.
QUALITY_RECORDS = (QualitySettingsRecord, ValidationRunRecord, ProfileRecord)


__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_PROFILE_SAMPLE_ROWS",
    "QUALITY_RECORDS",
    "UNSET",
    "QualitySettings",
    "check_columns",
    "check_policy",
    "configure_profiling",
    "delete_for_table",
    "delete_rows_for_table",
    "get_profile",
    "get_settings",
    "get_validation",
    "list_profiles",
    "list_validations",
    "save_profile",
    "save_validation",
    "set_expectations",
    "set_policy",
    "store_expectations",
    "store_profile",
    "store_validation",
]
