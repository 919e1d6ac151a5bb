"""A small cron parser: when did a schedule last fire?

``CronSchedule(quartz_cron_expression=...)`` takes Quartz expressions, as Databricks does
(``sec min hour day-of-month month day-of-week [year]``, e.g. ``"0 0 6 * * ?"``: every day at 06:00);
the classic five-field form (``min hour day-of-month month day-of-week``, e.g. ``"0 6 * * *"``) is
accepted too. Each field takes ``*``, ``?`` (as ``*``), numbers, ranges ``a-b``, steps ``*/n``,
``a/n``, ``a-b/n``, lists ``a,b``, and month (``JAN``) and day (``MON``) names. Quartz numbers days
of the week 1-7 from Sunday; the five-field form 0-7 from Sunday (0 and 7 are both Sunday). When
both the day of the month and the day of the week are restricted, a day matches either (classic cron;
Quartz refuses the combination, larder accepts it). Quartz's ``L``, ``W`` and ``#`` are refused with
an error saying so.

:func:`parse` checks an expression (a :class:`~larder.errors.MaterializationError` naming the field
and the fix); :func:`last_fire` is the latest fire time at or before a given time, in a time zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from larder.errors import MaterializationError

_MONTHS = {m: i for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}  # 0 = Sunday
#: How far back :func:`last_fire` looks (days); a schedule that never fired in that span has not fired.
SEARCH_DAYS = 366 * 5


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the allowed values of each field (days of the week 0-6 from Sunday)."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    years: frozenset[int] | None
    days_restricted: bool
    weekdays_restricted: bool

    def matches_day(self, day: dt.date) -> bool:
        if day.month not in self.months or (self.years is not None and day.year not in self.years):
            return False
        weekday = (day.weekday() + 1) % 7  # Monday is 0 in Python, 1 here
        in_month, in_week = day.day in self.days, weekday in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week


def _fail(expression: str, why: str) -> MaterializationError:
    return MaterializationError(
        f"Cron expression {expression!r}: {why}. Write a Quartz expression 'sec min hour day-of-month month "
        "day-of-week [year]' such as '0 0 6 * * ?' (every day at 06:00), or the five-field form '0 6 * * *'."
    )


def _field(expression: str, text: str, name: str, lo: int, hi: int, names: dict[str, int] | None = None,
           shift: int = 0) -> tuple[frozenset[int], bool]:
    """The values of one field and whether it restricts anything (``*`` and ``?`` do not)."""
    if text in ("*", "?"):
        return frozenset(range(lo, hi + 1)), False
    out: set[int] = set()

    def number(tok: str) -> int:
        key = tok.upper()
        if names is not None and key in names:
            return names[key] + shift
        if not tok.isdigit():
            if any(c in key for c in "LW#"):
                raise _fail(expression, f"the {name} field {text!r} uses L, W or #, which larder does not support")
            raise _fail(expression, f"the {name} field {text!r} has {tok!r}, not a number in {lo}-{hi}")
        return int(tok)

    for part in text.split(","):
        if not part:
            raise _fail(expression, f"the {name} field {text!r} has an empty list item")
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise _fail(expression, f"the {name} field {text!r} has step {step_text!r}; a step is a positive number")
            step = int(step_text)
        if rng in ("*", "?"):
            start, end = lo, hi
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start, end = number(a), number(b)
        else:
            start = number(rng)
            end = hi if step_text else start
        if not (lo <= start <= hi and lo <= end <= hi) or start > end:
            raise _fail(expression, f"the {name} field {text!r} is outside {lo}-{hi} (or a range runs backwards)")
        out.update(range(start, end + 1, step))
    return frozenset(out), True


def parse(expression: str) -> Cron:
    """Parse a Quartz (6 or 7 fields) or classic (5 fields) cron expression."""
    if not isinstance(expression, str) or not expression.strip():
        raise _fail(str(expression), "it is empty")
    parts = expression.split()
    if len(parts) == 5:
        quartz = False
        sec, (mi, hr, dom, mon, dow), year = "0", parts, None
    elif len(parts) in (6, 7):
        quartz = True
        sec, mi, hr, dom, mon, dow = parts[:6]
        year = parts[6] if len(parts) == 7 else None
    else:
        raise _fail(expression, f"it has {len(parts)} fields, not 5, 6 or 7")
    seconds, _ = _field(expression, sec, "seconds", 0, 59)
    minutes, _ = _field(expression, mi, "minutes", 0, 59)
    hours, _ = _field(expression, hr, "hours", 0, 23)
    days, days_r = _field(expression, dom, "day-of-month", 1, 31)
    months, _ = _field(expression, mon, "month", 1, 12, _MONTHS)
    if quartz:  # 1-7 from Sunday
        weekdays_q, weekdays_r = _field(expression, dow, "day-of-week", 1, 7, _DAYS, shift=1)
        weekdays = frozenset(d - 1 for d in weekdays_q)
    else:  # 0-7 from Sunday
        weekdays_c, weekdays_r = _field(expression, dow, "day-of-week", 0, 7, _DAYS)
        weekdays = frozenset(d % 7 for d in weekdays_c)
    years = None
    if year is not None and year not in ("*", "?"):
        years, _ = _field(expression, year, "year", 1970, 2199)
    return Cron(expression, seconds, minutes, hours, days, months, weekdays, years, days_r, weekdays_r)


def zone(timezone_id: str) -> ZoneInfo:
    """The time zone of a (Java / IANA) time zone id."""
    try:
        return ZoneInfo(timezone_id)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MaterializationError(
            f"CronSchedule timezone_id {timezone_id!r} is not a known time zone; use an IANA/Java id such as 'UTC' "
            "or 'Europe/Amsterdam'."
        ) from exc


def _latest(values: frozenset[int], at_most: int) -> int | None:
    candidates = [v for v in values if v <= at_most]
    return max(candidates) if candidates else None


def last_fire(cron: Cron, at: dt.datetime, timezone_id: str = "UTC") -> dt.datetime | None:
    """The latest time ``<= at`` (an aware datetime) at which ``cron`` fires, in UTC; None if it did not
    fire in the :data:`SEARCH_DAYS` before ``at``."""
    tz = zone(timezone_id)
    local = at.astimezone(tz)
    day = local.date()
    for back in range(SEARCH_DAYS):
        d = day - dt.timedelta(days=back)
        if not cron.matches_day(d):
            continue
        bound = (local.hour, local.minute, local.second) if back == 0 else (23, 59, 59)
        hit = _latest_time(cron, bound)
        if hit is not None:
            h, m, s = hit
            when = dt.datetime(d.year, d.month, d.day, h, m, s, tzinfo=tz).astimezone(dt.UTC)
            if when <= at:
                return when
            # a DST fold put it after `at`: the previous second of the day is the bound then
            hit = _latest_time(cron, _before(hit))
            if hit is not None:
                h, m, s = hit
                return dt.datetime(d.year, d.month, d.day, h, m, s, tzinfo=tz).astimezone(dt.UTC)
    return None


def _before(hms: tuple[int, int, int]) -> tuple[int, int, int]:
    h, m, s = hms
    total = h * 3600 + m * 60 + s - 1
    return (-1, 59, 59) if total < 0 else (total // 3600, total // 60 % 60, total % 60)


def _latest_time(cron: Cron, bound: tuple[int, int, int]) -> tuple[int, int, int] | None:
    """The greatest (hour, minute, second) of ``cron`` that is ``<= bound``."""
    bh, bm, bs = bound
    for h in sorted((v for v in cron.hours if v <= bh), reverse=True):
        m_bound = bm if h == bh else 59
        for m in sorted((v for v in cron.minutes if v <= m_bound), reverse=True):
            s_bound = bs if (h == bh and m == bm) else 59
            s = _latest(cron.seconds, s_bound)
            if s is not None:
                return h, m, s
    return None


__all__ = ["SEARCH_DAYS", "Cron", "last_fire", "parse", "zone"]
