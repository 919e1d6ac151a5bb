"""The public surface of larder.quality is pinned: additions and removals are deliberate."""

import larder.quality


def test_exported_names_are_pinned_and_sorted() -> None:
    assert larder.quality.__all__ == sorted(larder.quality.__all__)
    assert larder.quality.__all__ == [
        "ColumnProfile", "DriftReport", "DriftThresholds", "ExpectationResult", "FeatureDrift", "Profile",
        "QualitySettings", "QualityWarning", "ValidationResult", "allowed_values", "check_before_write",
        "check_table", "compare", "compare_table", "configure_profiling", "custom", "delete_for_table",
        "dtype", "enforce", "freshness", "get_settings", "has_type", "in_range", "matches_pattern",
        "not_null", "profile", "psi", "record_after_write", "register_check", "render_report",
        "report_table", "row_count", "set_expectations", "set_policy", "unique", "validate",
        "validate_table",
    ]
    for name in larder.quality.__all__:
        assert getattr(larder.quality, name) is not None


def test_importing_quality_does_not_import_heavy_libraries() -> None:
    import subprocess
    import sys

    code = ("import sys, larder.quality; "
            "print(sorted(m for m in ('pandera', 'scipy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
