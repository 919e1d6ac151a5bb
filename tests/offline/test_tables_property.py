"""Property: any sequence of merge and overwrite writes leaves the table a dictionary model predicts."""

from __future__ import annotations

import tempfile

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from larder.client import FeatureEngineeringClient
from larder.quality import configure_profiling

keys = st.tuples(st.integers(0, 6), st.sampled_from(["a", "b"]))
row = st.tuples(keys, st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)), st.integers(-5, 5))
batch = st.lists(row, min_size=1, max_size=8, unique_by=lambda r: r[0])
write = st.tuples(st.sampled_from(["merge", "merge", "overwrite"]), batch, st.booleans())


def frame(rows, with_y: bool) -> pd.DataFrame:
    df = pd.DataFrame({
        "k1": [r[0][0] for r in rows],
        "k2": [r[0][1] for r in rows],
        "x": pd.array([r[1] for r in rows], dtype="Float64"),
    })
    if with_y:
        df["y"] = [r[2] for r in rows]
    return df


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=batch, writes=st.lists(write, min_size=1, max_size=5))
def test_writes_match_dictionary_model(first, writes):
    with tempfile.TemporaryDirectory() as root:
        fe = FeatureEngineeringClient(root)
        fe.create_table("t", primary_keys=["k1", "k2"], df=frame(first, True))
        configure_profiling(fe._ctx.catalog, "main.default.t", enabled=False)  # not under test here
        model = {r[0]: {"x": r[1], "y": r[2]} for r in first}
        for mode, rows, with_y in writes:
            fe.write_table("t", frame(rows, with_y), mode=mode)
            if mode == "overwrite":
                model = {}
            for k, x, y in rows:
                old = model.get(k, {"x": None, "y": None})
                model[k] = {"x": x, "y": y if with_y else old["y"]}
        got = fe.read_table("t")
        fe.close()
    actual = {
        (int(r.k1), r.k2): {"x": None if pd.isna(r.x) else float(r.x), "y": None if pd.isna(r.y) else int(r.y)}
        for r in got.itertuples()
    }
    assert len(got) == len(actual)
    assert actual == model
