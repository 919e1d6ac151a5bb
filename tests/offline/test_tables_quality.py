"""Expectations enforced by write_table / create_table (the wiring between tables and quality)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from larder.errors import ValidationError
from larder.quality import in_range, not_null


def houses(price):
    return pd.DataFrame({"Id": list(range(1, len(price) + 1)), "price": price})


def test_strict_create_rejects_and_leaves_nothing(fe, larder_root):
    with pytest.raises(ValidationError, match="price"):
        fe.create_table("h", primary_keys="Id", df=houses([1.0, -5.0]), expectations=[in_range("price", min=0)])
    assert fe.list_tables() == []
    assert not (larder_root / "tables" / "main" / "default" / "h").exists()
    # the name is free and the expectations did not linger
    fe.create_table("h", primary_keys="Id", df=houses([1.0, -5.0]))
    assert fe.get_expectations("h").expectations == []


def test_strict_write_keeps_version_and_data(fe):
    fe.create_table("h", primary_keys="Id", df=houses([1.0, 2.0]),
                    expectations=[in_range("price", min=0), not_null("price")])
    before = fe.get_table("h").version
    with pytest.raises(ValidationError) as info:
        fe.write_table("h", pd.DataFrame({"Id": [3, 4], "price": [-1.0, None]}))
    msg = str(info.value)
    assert "main.default.h" in msg and "price" in msg
    assert fe.get_table("h").version == before
    assert sorted(fe.read_table("h")["price"]) == [1.0, 2.0]
    # a clean write passes, and is profiled and validated under its version
    v = fe.write_table("h", pd.DataFrame({"Id": [3], "price": [3.0]}))
    assert fe.get_profile("h", v) is not None


def test_warn_policy_commits_and_records(fe):
    fe.create_table("h", primary_keys="Id", df=houses([1.0]))
    fe.set_expectations("h", [in_range("price", min=0)], policy="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v = fe.write_table("h", pd.DataFrame({"Id": [2], "price": [-1.0]}))
    assert v == 1 and any("price" in str(w.message) for w in caught)
    assert fe.validate_table("h").passed is False
    fe.drop_table("h")
    fe.create_table("h", primary_keys="Id", df=houses([1.0]))
    assert fe.get_expectations("h").expectations == []  # dropped with the table
