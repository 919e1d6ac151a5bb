"""kill -9 at the dangerous points of create_table, drop_table and write_table: never a manual repair.

Each trial runs one operation in a forked child of a warm worker (``tests/_crash_worker.py``) that is
killed with SIGKILL at a fail point (``larder.failpoints``) or after a random delay. After every kill
the state must be one the next ordinary call settles by itself: the table is wholly there or wholly
absent, the name can be created again, a feature the killed write committed can be described. What
a kill may leave is garbage nobody references (a directory, a tombstone), which
``larder.offline.reconcile.repair`` removes.
"""

from __future__ import annotations

import random

import pandas as pd

from larder.errors import TableExistsError
from larder.offline.reconcile import find_problems, repair

TRIALS = 20
HOUSES = {"Id": [1, 2, 3], "Qual": [7, 5, 8]}
EXPECT = [{"kind": "not_null", "column": "Qual"}]
#: What a kill may leave before the next call: garbage, or work the next call finishes.
AFTER_KILL = {"orphan_directory", "tombstone", "interrupted_drop", "unregistered_features"}
GARBAGE = {"orphan_directory", "tombstone"}


def kinds(fe) -> set[str]:
    return {p.kind for p in find_problems(fe._ctx, min_orphan_age_s=0)}


def registered(fe, name: str = "houses") -> bool:
    """Whether the catalog has a row for the table (whatever state its data is in)."""
    from sqlalchemy import select

    from larder.catalog.tables import TableRecord

    with fe._ctx.catalog.session() as s:
        return s.scalars(select(TableRecord.id).where(TableRecord.full_name == f"main.default.{name}")).first() \
            is not None


def added_in(fe, column: str) -> int:
    """The Delta version the catalog says added ``column`` to table houses."""
    from sqlalchemy import select

    from larder.catalog.tables import FeatureRecord

    with fe._ctx.catalog.session() as s:
        return s.scalars(select(FeatureRecord.added_in_version).where(FeatureRecord.name == column)).one()


def whole(fe, name: str = "houses", *, expectations: bool = True) -> None:
    """The table is entirely there: data, features, quality settings."""
    got = fe.read_table(name).sort_values("Id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["Id", "Qual"]], pd.DataFrame(HOUSES), check_dtype=False)
    assert [f.name for f in fe.get_table(name).features][:2] == ["Id", "Qual"]
    assert bool(fe.get_expectations(name).expectations) is expectations


def plan(points: list[str], i: int, rng: random.Random, longest: float) -> dict:
    """Trial ``i``: the fail points in turn for three quarters of the trials, then random delays."""
    if i < TRIALS * 3 // 4:
        return {"failpoint": points[i % len(points)]}
    return {"kill_after": rng.uniform(0.0, longest)}


def test_create_table_killed(crasher, fe, larder_root):
    rng = random.Random(20)
    points = ["create_table:before_commit", "create_table:after_commit", "create_table:after_catalog"]
    outcomes = []
    for i in range(TRIALS):
        name = f"houses{i}"
        out = crasher(op="create", root=str(larder_root), name=name, df=HOUSES, expectations=EXPECT,
                      policy="strict", **plan(points, i, rng, 0.25))
        assert out.get("exit", 0) == 0, out
        outcomes.append(out)
        if registered(fe, name):
            whole(fe, name)  # registered means whole: data, features and expectations together
        else:  # no repair needed: the name is free and creating it works at once, beside the leftover
            fe.create_table(name, primary_keys="Id", df=pd.DataFrame(HOUSES))
            whole(fe, name, expectations=False)
    assert sum("signal" in o for o in outcomes) >= TRIALS * 3 // 4
    assert kinds(fe) <= GARBAGE  # what the 20 kills left is only garbage nobody references
    repair(fe._ctx, min_orphan_age_s=0)
    assert kinds(fe) == set()


def test_drop_table_killed(crasher, fe, larder_root):
    rng = random.Random(21)
    points = ["drop_table:after_rename", "drop_table:after_catalog"]
    for i in range(TRIALS):
        name = f"houses{i}"
        fe.create_table(name, primary_keys="Id", df=pd.DataFrame(HOUSES), expectations=EXPECT)
        out = crasher(op="drop", root=str(larder_root), name=name, **plan(points, i, rng, 0.1))
        assert out.get("exit", 0) == 0, out
        found = kinds(fe)
        assert found <= AFTER_KILL
        if registered(fe, name) and "interrupted_drop" not in found:
            whole(fe, name)  # the kill came before the drop did anything
        # no repair needed: an interrupted drop is finished by the next drop or create of the name
        if i % 2:
            if registered(fe, name):
                fe.drop_table(name)
            fe.create_table(name, primary_keys="Id", df=pd.DataFrame(HOUSES))
        else:
            try:
                fe.create_table(name, primary_keys="Id", df=pd.DataFrame(HOUSES))
            except TableExistsError:  # the drop had not started: the table is whole, drop it now
                fe.drop_table(name)
                fe.create_table(name, primary_keys="Id", df=pd.DataFrame(HOUSES))
        whole(fe, name, expectations=False)  # the dropped table's expectations are not inherited
    assert kinds(fe) <= GARBAGE
    repair(fe._ctx, min_orphan_age_s=0)
    assert kinds(fe) == set()


def test_write_table_adding_a_column_killed(crasher, fe, larder_root):
    rng = random.Random(22)
    fe.create_table("houses", primary_keys="Id", df=pd.DataFrame(HOUSES))
    for i in range(TRIALS):
        version = fe.get_table("houses").version
        column = f"c{i}"
        out = crasher(op="write", root=str(larder_root), name="houses",
                      df={"Id": [2, 4], column: [float(i), 1.0]}, **plan(["write_table:after_commit"], i, rng, 0.2))
        assert out.get("exit", 0) == 0, out
        assert kinds(fe) <= AFTER_KILL
        t = fe.get_table("houses")
        committed = t.version == version + 1
        assert t.version in (version, version + 1)
        assert (column in [f.name for f in t.features]) is committed
        df = fe.read_table("houses")
        assert df["Id"].is_unique and sorted(df["Id"]) == [1, 2, 3, 4][: 3 + (committed or version > 0)]
        if committed:  # no repair needed: the feature the catalog missed can be described at once
            fe.set_feature_description("houses", column, f"added in trial {i}")
            feature = next(f for f in fe.get_table("houses").features if f.name == column)
            assert feature.description == f"added in trial {i}"
            assert added_in(fe, column) == version + 1
        assert kinds(fe) <= GARBAGE
    # and a normal write afterwards registers everything
    fe.write_table("houses", pd.DataFrame({"Id": [9], "z": [1]}))
    assert kinds(fe) <= GARBAGE
