"""Feature-table data quality: expectations, validation on write, profiles, drift and reports.

The public surface is re-exported here; modules:

- :mod:`~larder.quality.expectations` -- the expectation kinds and their constructors
- :mod:`~larder.quality.validation` -- :func:`validate` (through pandera) and :func:`enforce`
- :mod:`~larder.quality.profiling` -- :func:`profile` (numpy sort per numeric column, pyarrow value counts)
- :mod:`~larder.quality.drift` -- :func:`compare`: PSI, KS, chi-square, Jensen-Shannon, verdicts
- :mod:`~larder.quality.report` -- :func:`render_report`: self-contained HTML
- :mod:`~larder.quality.store` -- catalog persistence per table and Delta version
- :mod:`~larder.quality.hooks` -- :func:`check_before_write` / :func:`record_after_write` for write_table
- :mod:`~larder.quality.api` -- table-level helpers taking a FeatureEngineeringClient
- :mod:`~larder.quality.cli` -- the ``larder quality`` commands

Heavy libraries (pandera, scipy, matplotlib) are imported when first used.
"""

from larder.quality.api import check_table, compare_table, report_table, validate_table
from larder.quality.drift import DriftReport, DriftThresholds, FeatureDrift, compare, psi
from larder.quality.expectations import (
    allowed_values,
    custom,
    dtype,
    freshness,
    has_type,
    in_range,
    matches_pattern,
    not_null,
    register_check,
    row_count,
    unique,
)
from larder.quality.hooks import check_before_write, record_after_write
from larder.quality.profiling import ColumnProfile, Profile, profile
from larder.quality.report import render_report
from larder.quality.store import (
    QualitySettings,
    configure_profiling,
    delete_for_table,
    get_settings,
    set_expectations,
    set_policy,
)
from larder.quality.validation import (
    ExpectationResult,
    QualityWarning,
    ValidationResult,
    enforce,
    validate,
)

__all__ = [
    "ColumnProfile",
    "DriftReport",
    "DriftThresholds",
    "ExpectationResult",
    "FeatureDrift",
    "Profile",
    "QualitySettings",
    "QualityWarning",
    "ValidationResult",
    "allowed_values",
    "check_before_write",
    "check_table",
    "compare",
    "compare_table",
    "configure_profiling",
    "custom",
    "delete_for_table",
    "dtype",
    "enforce",
    "freshness",
    "get_settings",
    "has_type",
    "in_range",
    "matches_pattern",
    "not_null",
    "profile",
    "psi",
    "record_after_write",
    "register_check",
    "render_report",
    "report_table",
    "row_count",
    "set_expectations",
    "set_policy",
    "unique",
    "validate",
    "validate_table",
]
