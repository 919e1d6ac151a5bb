"""Hypothesis strategies shared by the declarative-feature tests: events on an hourly grid with values
exactly on and next to window edges, ties, null keys and times, and every window kind with delays,
offsets and start times (with the oracle's independent :class:`~declarative._oracle.Rule`)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
from hypothesis import strategies as st

from declarative._oracle import Rule
from larder import RollingWindow, SlidingWindow, TumblingWindow

US = 1_000_000
HOUR = 3600 * US
BASE = int(pd.Timestamp("2024-03-01", tz="UTC").value // 1000) + 7 * HOUR  # not midnight: alignment matters
UTC = pa.timestamp("us", tz="UTC")



# --------------------------------------------------------------------------- strategies

hours = st.integers(0, 24)
edge = st.sampled_from([0, 0, 0, -1, 1])  # microseconds off the grid: values exactly on and next to edges


@st.composite
def windows(draw: st.DrawFn) -> tuple[object, Rule]:
    kind = draw(st.sampled_from(["rolling", "lifetime", "tumbling", "sliding", "sliding_lifetime"]))
    delay = draw(st.sampled_from([0, 0, 1, 2])) * HOUR
    start = draw(st.one_of(st.none(), st.integers(0, 24))) if draw(st.booleans()) else None
    start_time = None if start is None else dt.datetime(2024, 3, 1, 7, tzinfo=dt.UTC) + dt.timedelta(hours=start)
    start_us = None if start is None else BASE + start * HOUR
    td = dt.timedelta
    if kind == "rolling":
        d = draw(st.integers(1, 8)) * HOUR
        w = RollingWindow(window_duration=td(microseconds=d), delay=td(microseconds=delay), start_time=start_time)
        return w, Rule(d, delay, None, 0, start_us)
    if kind == "lifetime":
        w = RollingWindow(window_duration=None, delay=td(microseconds=delay), start_time=start_time)
        return w, Rule(None, delay, None, 0, start_us)
    if kind == "tumbling":
        d = draw(st.integers(1, 6)) * HOUR
        off = draw(st.integers(0, 2 * d // HOUR - 1)) * HOUR // 2
        w = TumblingWindow(window_duration=td(microseconds=d), delay=td(microseconds=delay),
                           offset=td(microseconds=off), start_time=start_time)
        return w, Rule(d, delay, d, off, start_us)
    slide = draw(st.integers(1, 3)) * HOUR
    off = draw(st.integers(0, 2 * slide // HOUR - 1)) * HOUR // 2
    if kind == "sliding":
        d = slide + draw(st.integers(1, 6)) * HOUR // 2
        w = SlidingWindow(window_duration=td(microseconds=d), slide_duration=td(microseconds=slide),
                          delay=td(microseconds=delay), offset=td(microseconds=off), start_time=start_time)
        return w, Rule(d, delay, slide, off + d, start_us)
    w = SlidingWindow(window_duration=None, slide_duration=td(microseconds=slide), delay=td(microseconds=delay),
                      offset=td(microseconds=off), start_time=start_time)
    return w, Rule(None, delay, slide, off, start_us)


values_f = st.one_of(st.none(), st.integers(-4, 4).map(float), st.sampled_from([0.5, -2.25, 1e6]))
values_s = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "dd"]))
keys = st.one_of(st.sampled_from([1, 2, 3]), st.none())


@st.composite
def events(draw: st.DrawFn, n_max: int = 40) -> list[tuple[object, int | None, object, object, int]]:
    n = draw(st.integers(0, n_max))
    out = []
    for i in range(n):
        ts = None if draw(st.integers(0, 30)) == 0 else BASE + draw(hours) * HOUR + draw(edge)
        out.append((draw(keys), ts, draw(values_f), draw(values_s), draw(st.integers(-3, 3))))
        del i
    return out


@st.composite
def queries(draw: st.DrawFn) -> list[tuple[object, int | None]]:
    n = draw(st.integers(1, 25))
    return [(draw(st.one_of(keys, st.just(9))),
             None if draw(st.integers(0, 40)) == 0 else BASE + draw(st.integers(-2, 30)) * HOUR + draw(edge))
            for _ in range(n)]
