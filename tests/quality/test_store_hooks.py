"""Catalog persistence (real SQLite file) and the write hooks: policies strict / warn / off."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from larder.catalog import Catalog
from larder.errors import ConfigError, ValidationError
from larder.quality import (
    QualityWarning,
    check_before_write,
    configure_profiling,
    custom,
    delete_for_table,
    enforce,
    get_settings,
    in_range,
    not_null,
    record_after_write,
    set_expectations,
    set_policy,
    unique,
    validate,
)
from larder.quality.store import get_profile, get_validation, list_profiles, list_validations

T = "main.default.houses"


@pytest.fixture()
def catalog(tmp_path: Path):
    cat = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    yield cat
    cat.close()


def _bad() -> pd.DataFrame:
    return pd.DataFrame({"id": [1, 2, 3, 3], "price": [10.0, -1.0, None, 5.0]})


def test_settings_round_trip_and_defaults(catalog: Catalog, tmp_path: Path) -> None:
    assert get_settings(catalog, T).expectations == [] and get_settings(catalog, T).policy == "strict"
    set_expectations(catalog, T, [not_null("price"), in_range("price", min=0), custom("named")], policy="warn")
    configure_profiling(catalog, T, enabled=False, sample_rows=None)
    reopened = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        s = get_settings(reopened, T)
    finally:
        reopened.close()
    assert [e.describe() for e in s.expectations] == ["not_null(price)", "in_range(price, min=0)", "custom(named)"]
    assert (s.policy, s.profile_on_write, s.profile_sample_rows) == ("warn", False, None)
    set_expectations(catalog, T, [unique("id")])  # policy kept when not given
    assert get_settings(catalog, T).policy == "warn"
    assert set_policy(catalog, T, "off").policy == "off"


def test_bad_settings_are_rejected(catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match="loud"):
        set_policy(catalog, T, "loud")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'area'"):
        set_expectations(catalog, T, [not_null("area")], columns=["id", "price"])
    with pytest.raises(ConfigError, match="not an expectation"):
        set_expectations(catalog, T, ["price > 0"])
    with pytest.raises(ConfigError):
        configure_profiling(catalog, T, sample_rows=0)
    assert get_settings(catalog, T).expectations == []


def test_strict_rejects_with_counts_and_examples(catalog: Catalog) -> None:
    set_expectations(catalog, T, [not_null("price"), in_range("price", min=0), unique("id")], policy="strict")
    with pytest.raises(ValidationError) as info:
        check_before_write(catalog, T, _bad(), keys=["id"])
    msg = str(info.value)
    assert T in msg and "nothing was written" in msg
    assert "not_null(price): 1 of 4 rows are null" in msg
    assert "in_range(price, min=0): 1 of 4 rows are out of range" in msg and "{row: 1, id: 2, price: -1}" in msg
    assert "unique(id): 2 of 4 rows" in msg
    assert info.value.results is not None and len(info.value.results.failed) == 3


def test_warn_commits_and_records_results_and_profile(catalog: Catalog) -> None:
    set_expectations(catalog, T, [in_range("price", min=0)], policy="warn")
    with pytest.warns(QualityWarning, match="in_range"):
        result = check_before_write(catalog, T, _bad(), keys=["id"])
    assert result is not None and not result.passed
    prof = record_after_write(catalog, T, 1, _bad(), result)
    assert prof is not None and prof.column("price").nulls == 1
    stored = get_validation(catalog, T, 1)
    assert stored is not None and stored.results[0].failing_count == 1
    assert get_profile(catalog, T, 1) == prof

    ok = pd.DataFrame({"id": [5, 6], "price": [1.0, 2.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result2 = check_before_write(catalog, T, ok)
    record_after_write(catalog, T, 2, ok, result2)
    assert [v for v, _ in list_validations(catalog, T)] == [1, 2]
    assert [v for v, _ in list_profiles(catalog, T)] == [1, 2]
    assert get_validation(catalog, T).passed  # latest
    record_after_write(catalog, T, 2, ok, result2)  # re-recording a version replaces it
    assert len(list_profiles(catalog, T)) == 2


def test_off_policy_and_no_expectations_skip_validation(catalog: Catalog) -> None:
    assert check_before_write(catalog, T, _bad()) is None
    set_expectations(catalog, T, [in_range("price", min=0)], policy="off")
    assert check_before_write(catalog, T, _bad()) is None
    record_after_write(catalog, T, 0, _bad(), None)
    assert get_validation(catalog, T) is None and get_profile(catalog, T, 0) is not None


def test_profiling_settings_apply_on_write(catalog: Catalog) -> None:
    df = pd.DataFrame({"x": np.arange(1000.0)})
    configure_profiling(catalog, T, sample_rows=100)
    p = record_after_write(catalog, T, 0, df, None)
    assert p is not None and p.sampled and p.profiled_rows == 100 and p.row_count == 1000
    configure_profiling(catalog, T, enabled=False)
    assert record_after_write(catalog, T, 1, df, None) is None
    assert get_profile(catalog, T, 1) is None


def test_delete_for_table_removes_only_that_table(catalog: Catalog) -> None:
    other = "main.default.other"
    for name in (T, other):
        set_expectations(catalog, name, [in_range("price", min=0)], policy="warn")
        with pytest.warns(QualityWarning):
            res = check_before_write(catalog, name, _bad())
        record_after_write(catalog, name, 0, _bad(), res)
    assert delete_for_table(catalog, T) == 3
    assert get_settings(catalog, T).expectations == [] and get_validation(catalog, T) is None
    assert get_profile(catalog, T) is None
    assert get_validation(catalog, other) is not None and get_profile(catalog, other) is not None


def test_enforce_policies_directly() -> None:
    res = validate(_bad(), [in_range("price", min=0)])
    enforce(res, "off", T)
    with pytest.warns(QualityWarning):
        enforce(res, "warn", T)
    with pytest.raises(ValidationError):
        enforce(res, "strict", T)
    enforce(validate(_bad(), [unique("price")]), "strict", T)  # passes: nothing raised
    with pytest.raises(ConfigError):
        enforce(res, "sometimes", T)  # type: ignore[arg-type]
