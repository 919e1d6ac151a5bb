"""TableService.delete_rows (what purge_feature_entities runs offline): rows matching whole or partial
keys go in one Delta commit recorded in the catalog; nothing matching commits nothing; a write id makes
it idempotent; bad keys are refused, naming the table and columns, with nothing written; odd column
names are quoted."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from larder.errors import PrimaryKeyError


def _table(fe, name="t", k2="day"):  # type: ignore[no-untyped-def]
    df = pd.DataFrame({"user": [1, 1, 2, 2, 3], k2: ["a", "b", "a", "b", "a"], "x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    fe.create_table(name, ["user", k2], df=df)
    return df


def test_whole_and_partial_keys_one_commit_each_recorded(fe):
    df = _table(fe)
    version, deleted = fe._tables.delete_rows("t", pa.table({"user": [2, 2, 9]}))  # duplicates and misses
    assert (version, deleted) == (1, 2)
    got = fe.read_table(name="t").sort_values(["user", "day"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, df[df.user != 2].reset_index(drop=True), check_dtype=False)
    version, deleted = fe._tables.delete_rows("t", pa.table({"user": [1, 3], "day": ["b", "b"]}))
    assert (version, deleted) == (2, 1)
    assert sorted(map(tuple, fe.read_table(name="t")[["user", "day"]].values.tolist())) == [(1, "a"), (3, "a")]
    history = fe._tables.history("t")
    assert sorted(history["version"]) == [0, 1, 2]
    # nothing matching: no commit
    assert fe._tables.delete_rows("t", pa.table({"user": [7]})) == (None, 0)
    assert fe._tables.delete_rows("t", pa.table({"user": pa.array([], pa.int64())})) == (None, 0)
    assert fe._tables.snapshot("t").version == 2


def test_a_write_id_deletes_once(fe):
    _table(fe)
    first = fe._tables.delete_rows("t", pa.table({"user": [1]}), write_id="purge-1")
    fe.write_table("t", pd.DataFrame({"user": [1], "day": ["z"], "x": [9.0]}))  # a new row of user 1
    again = fe._tables.delete_rows("t", pa.table({"user": [1]}), write_id="purge-1")
    assert first == (1, 2) and again == (1, -1)
    assert (fe.read_table(name="t")["user"] == 1).sum() == 1  # the later row was not deleted


def test_bad_keys_are_refused_and_nothing_is_written(fe):
    _table(fe)
    for keys, message in [
        (pa.table({"x": [1.0]}), r"'main.default.t'.*\['x'\] are not among them"),
        (pa.table({}), "no column"),
        (pa.table({"user": ["not a number"]}), "do not convert to the key types"),
    ]:
        with pytest.raises(PrimaryKeyError, match=message):
            fe._tables.delete_rows("t", keys)
    assert fe._tables.snapshot("t").version == 0 and len(fe.read_table(name="t")) == 5


def test_hostile_key_names_are_quoted(fe):
    hostile = "day' = s.day OR TRUE -- (v2)"
    _table(fe, "h", k2=hostile)
    assert fe._tables.delete_rows("h", pa.table({hostile: ["a"], "user": [1]})) == (1, 1)
    assert len(fe.read_table(name="h")) == 4
