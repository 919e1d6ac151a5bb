"""Time windows of declarative aggregation features: rolling, tumbling and sliding.

Names, signatures and semantics are those of the Databricks Feature Engineering client (0.18). A window
evaluated at time ``t`` covers the half-open interval ``[end - duration, end)``, strictly before its
end, so a row never sees its own event or the future:

* :class:`RollingWindow`: ``end = t - delay`` for any ``t`` (continuous, microsecond exact);
* :class:`TumblingWindow` and :class:`SlidingWindow`: ``end`` is the last boundary ``<= t - delay`` of a
  fixed grid aligned to midnight UTC (1970-01-01) plus ``offset``. Tumbling boundaries are every
  ``window_duration``; sliding window *ends* are every ``slide_duration`` on the phase
  ``offset + window_duration``, so their *starts* lie on ``offset + k * slide_duration``.

``window_duration=None`` is a lifetime window (``(-inf, end)``) for :class:`RollingWindow` and
:class:`SlidingWindow`; :class:`TumblingWindow` needs a finite duration. ``start_time`` gates outputs:
a window whose end is before ``start_time`` has no value (null), whatever the operator.

>>> from datetime import timedelta
>>> str(RollingWindow(window_duration=timedelta(days=7)))
'rolling_7d'
>>> str(SlidingWindow(window_duration=timedelta(days=7), slide_duration=timedelta(days=1)))
'sliding_7d_1d'
>>> TumblingWindow(window_duration=timedelta(hours=1), offset=timedelta(minutes=90))
Traceback (most recent call last):
...
larder.errors.FeatureDefinitionError: TumblingWindow: offset (1:30:00) must be shorter than window_duration (1:00:00).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from larder.errors import FeatureDefinitionError

US = 1_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: Durations beyond ~10,000 years are rejected (as Databricks does).
_MAX_SECONDS = 315_576_000_000


def to_us(delta: dt.timedelta) -> int:
    """A timedelta as whole microseconds (exact)."""
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def datetime_to_us(value: dt.datetime) -> int:
    """A datetime as microseconds since the epoch (naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return to_us(value - _EPOCH)


def format_duration(delta: dt.timedelta | None) -> str:
    """``7d``, ``7d_2h_30m``, ``45s``, ``500ms``; ``lifetime`` for None (the names Databricks generates)."""
    if delta is None:
        return "lifetime"
    total = to_us(delta)
    parts = []
    for unit, size in (("d", 86_400 * US), ("h", 3_600 * US), ("m", 60 * US), ("s", US), ("ms", 1_000)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    if total:
        parts.append(f"{total}us")
    return "_".join(parts) or "0s"


def _td_dict(td: dt.timedelta | None) -> dict[str, int] | None:
    if td is None:
        return None
    return {"days": td.days, "seconds": td.seconds, "microseconds": td.microseconds}


def _td_from(d: Any) -> dt.timedelta | None:
    if d is None:
        return None
    return dt.timedelta(days=d.get("days", 0), seconds=d.get("seconds", 0), microseconds=d.get("microseconds", 0))


class TimeWindow:
    """Base class of the windows (not instantiated directly).

    Parameters
    ----------
    duration : the window's length (positive), or None for a lifetime window
    delay : non-negative shift of the window into the past (a 30-day count as of a week ago)
    offset : non-negative phase shift of fixed boundaries from midnight UTC
    start_time : earliest window end at which the feature has a value
    """

    kind = "window"

    def __init__(self, *, duration: dt.timedelta | None, delay: dt.timedelta | None = None,
                 offset: dt.timedelta | None = None, start_time: dt.datetime | None = None) -> None:
        self._duration = duration
        self._delay = delay if delay is not None else dt.timedelta(0)
        self._offset = offset if offset is not None else dt.timedelta(0)
        self._start_time = start_time
        self._validate()

    # -- validation ----------------------------------------------------------------------------
    def _fail(self, message: str) -> FeatureDefinitionError:
        return FeatureDefinitionError(f"{type(self).__name__}: {message}")

    def _check_td(self, value: Any, name: str, *, positive: bool) -> None:
        if not isinstance(value, dt.timedelta):
            raise self._fail(f"{name} must be a datetime.timedelta, got {type(value).__name__} {value!r}.")
        if positive and value <= dt.timedelta(0):
            raise self._fail(f"{name} must be positive, got {value!r}; e.g. {name}=timedelta(days=7).")
        if not positive and value < dt.timedelta(0):
            raise self._fail(f"{name} must not be negative, got {value!r}; e.g. {name}=timedelta(days=1) shifts "
                             "the window one day into the past.")
        if abs(value.total_seconds()) > _MAX_SECONDS:
            raise self._fail(f"{name} {value!r} exceeds the maximum of {_MAX_SECONDS} seconds (~10,000 years).")

    def _validate(self) -> None:
        if self._duration is not None:
            self._check_td(self._duration, "window_duration", positive=True)
        self._check_td(self._delay, "delay", positive=False)
        self._check_td(self._offset, "offset", positive=False)
        if self._start_time is not None and not isinstance(self._start_time, dt.datetime):
            raise self._fail(f"start_time must be a datetime.datetime, got {type(self._start_time).__name__}.")

    # -- properties ----------------------------------------------------------------------------
    @property
    def duration(self) -> dt.timedelta | None:
        """The window's length, None for a lifetime window."""
        return self._duration

    @property
    def window_duration(self) -> dt.timedelta | None:
        return self._duration

    @property
    def delay(self) -> dt.timedelta:
        return self._delay

    @property
    def offset(self) -> dt.timedelta:
        return self._offset

    @property
    def start_time(self) -> dt.datetime | None:
        return self._start_time

    @property
    def is_lifetime(self) -> bool:
        return self._duration is None

    @property
    def slide(self) -> dt.timedelta | None:
        """The spacing of the window ends (None: continuous)."""
        return None

    # -- the evaluation rule -------------------------------------------------------------------
    def window_end_us(self, t_us: int) -> int:
        """The end of the window evaluated at ``t`` (microseconds since the epoch).

        >>> w = TumblingWindow(window_duration=dt.timedelta(days=1), offset=dt.timedelta(hours=2))
        >>> e = w.window_end_us(datetime_to_us(dt.datetime(2024, 1, 2, 1, 0)))
        >>> dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=e)
        datetime.datetime(2024, 1, 1, 2, 0)
        """
        eligible = t_us - to_us(self._delay)
        slide = self.slide
        if slide is None:
            return eligible
        step = to_us(slide)
        phase = self.phase_us()
        return (eligible - phase) // step * step + phase

    def phase_us(self) -> int:
        """The phase of the window-end grid (microseconds); only for windows with fixed boundaries."""
        return to_us(self._offset)

    # -- equality, names, serialisation --------------------------------------------------------
    def _key(self) -> tuple[Any, ...]:
        return (type(self).__name__, self._duration, self._delay, self._offset, self._start_time, self.slide)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimeWindow) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _suffix(self) -> str:
        if self._start_time is None:
            return ""
        return f"_start_time_{datetime_to_us(self._start_time) // 1000}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind, "window_duration": _td_dict(self._duration)}
        if self._delay:
            out["delay"] = _td_dict(self._delay)
        if self._offset:
            out["offset"] = _td_dict(self._offset)
        if self.slide is not None and self.kind == "sliding":
            out["slide_duration"] = _td_dict(self.slide)
        if self._start_time is not None:
            start = self._start_time if self._start_time.tzinfo else self._start_time.replace(tzinfo=dt.UTC)
            out["start_time"] = start.isoformat()
        return out

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TimeWindow:
        kind = d.get("type")
        start = dt.datetime.fromisoformat(d["start_time"]) if d.get("start_time") else None
        common: dict[str, Any] = {"delay": _td_from(d.get("delay")), "start_time": start}
        if kind == "rolling":
            return RollingWindow(window_duration=_td_from(d.get("window_duration")), **common)
        if kind == "tumbling":
            duration = _td_from(d.get("window_duration"))
            assert duration is not None
            return TumblingWindow(window_duration=duration, offset=_td_from(d.get("offset")), **common)
        if kind == "sliding":
            slide = _td_from(d.get("slide_duration"))
            assert slide is not None
            return SlidingWindow(window_duration=_td_from(d.get("window_duration")), slide_duration=slide,
                                 offset=_td_from(d.get("offset")), **common)
        raise FeatureDefinitionError(f"Unknown time window type {kind!r} in a stored feature definition.")


class RollingWindow(TimeWindow):
    """A continuous window ending ``delay`` before the evaluation time: ``[t - d - delay, t - delay)``.

    ``window_duration=None`` makes it a lifetime window (all history before ``t - delay``).

    ::

        [─── 7 days ───)        |
        └ t - 8d       └ t - 1d └ t (excluded)      duration=7d, delay=1d
    """

    kind = "rolling"

    def __init__(self, *, window_duration: dt.timedelta | None, delay: dt.timedelta | None = None,
                 start_time: dt.datetime | None = None) -> None:
        super().__init__(duration=window_duration, delay=delay, start_time=start_time)

    def __str__(self) -> str:
        out = f"rolling_{format_duration(self._duration)}"
        if self._delay:
            out += f"_{format_duration(self._delay)}"
        return out + self._suffix()

    def __repr__(self) -> str:
        delay = f", delay={self._delay!r}" if self._delay else ""
        return f"RollingWindow(window_duration={self._duration!r}{delay})"


class TumblingWindow(TimeWindow):
    """Non-overlapping windows of ``window_duration`` on a grid aligned to midnight UTC plus ``offset``.

    A lookup at ``t`` takes the last complete window ending at or before ``t - delay``.
    """

    kind = "tumbling"

    def __init__(self, *, window_duration: dt.timedelta, delay: dt.timedelta | None = None,
                 offset: dt.timedelta | None = None, start_time: dt.datetime | None = None) -> None:
        if window_duration is None:
            raise FeatureDefinitionError(
                "TumblingWindow: window_duration must be finite; lifetime (None) windows are not supported for "
                "tumbling windows. Use RollingWindow(window_duration=None) or SlidingWindow(window_duration=None, "
                "slide_duration=...) for a lifetime aggregate."
            )
        super().__init__(duration=window_duration, delay=delay, offset=offset, start_time=start_time)

    def _validate(self) -> None:
        super()._validate()
        assert self._duration is not None
        if self._offset >= self._duration:
            raise self._fail(f"offset ({self._offset}) must be shorter than window_duration ({self._duration}).")

    @property
    def slide(self) -> dt.timedelta | None:
        return self._duration

    def __str__(self) -> str:
        out = f"tumbling_{format_duration(self._duration)}"
        if self._delay:
            out += f"_delay_{format_duration(self._delay)}"
        if self._offset:
            out += f"_offset_{format_duration(self._offset)}"
        return out + self._suffix()

    def __repr__(self) -> str:
        extra = "".join(f", {n}={v!r}" for n, v in (("delay", self._delay), ("offset", self._offset)) if v)
        return f"TumblingWindow(window_duration={self._duration!r}{extra})"


class SlidingWindow(TimeWindow):
    """Overlapping windows of ``window_duration`` whose ends advance by ``slide_duration``.

    ``slide_duration`` must be shorter than ``window_duration`` (use :class:`TumblingWindow` for equal
    ones) and ``offset`` shorter than ``slide_duration``. ``window_duration=None``: a lifetime window
    evaluated on the slide grid.
    """

    kind = "sliding"

    def __init__(self, *, window_duration: dt.timedelta | None, slide_duration: dt.timedelta,
                 delay: dt.timedelta | None = None, offset: dt.timedelta | None = None,
                 start_time: dt.datetime | None = None) -> None:
        self._slide_duration = slide_duration
        super().__init__(duration=window_duration, delay=delay, offset=offset, start_time=start_time)

    def _validate(self) -> None:
        super()._validate()
        self._check_td(self._slide_duration, "slide_duration", positive=True)
        if self._duration is not None and self._slide_duration >= self._duration:
            raise self._fail(
                f"slide_duration ({self._slide_duration}) must be shorter than window_duration ({self._duration}); "
                "a slide as long as the window is a TumblingWindow."
            )
        if self._offset >= self._slide_duration:
            raise self._fail(f"offset ({self._offset}) must be shorter than slide_duration ({self._slide_duration}).")

    @property
    def slide_duration(self) -> dt.timedelta:
        return self._slide_duration

    @property
    def slide(self) -> dt.timedelta | None:
        return self._slide_duration

    def phase_us(self) -> int:
        return to_us(self._offset + (self._duration or dt.timedelta(0)))

    def __str__(self) -> str:
        out = f"sliding_{format_duration(self._duration)}_{format_duration(self._slide_duration)}"
        if self._delay:
            out += f"_delay_{format_duration(self._delay)}"
        if self._offset:
            out += f"_offset_{format_duration(self._offset)}"
        return out + self._suffix()

    def __repr__(self) -> str:
        extra = "".join(f", {n}={v!r}" for n, v in (("delay", self._delay), ("offset", self._offset)) if v)
        return f"SlidingWindow(window_duration={self._duration!r}, slide_duration={self._slide_duration!r}{extra})"


__all__ = ["RollingWindow", "SlidingWindow", "TimeWindow", "TumblingWindow", "datetime_to_us", "format_duration",
           "to_us"]
