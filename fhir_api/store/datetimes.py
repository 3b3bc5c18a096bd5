"""FHIR date, dateTime and instant values as UTC ranges [low, high).

https://hl7.org/fhir/R4/datatypes.html#dateTime and https://hl7.org/fhir/R4/search.html#date:
a value stands for the whole interval its precision covers ("2020" is all of 2020), so
comparisons are range comparisons. A value without a time zone is taken as UTC.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_PATTERN = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?P<fraction>\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?\Z"
)


# The ends of Python's calendar: a range reaching past them (the year 9999, or 0001 with a
# time zone east of UTC) is clamped to them instead of overflowing.
EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
LATEST = datetime.max.replace(tzinfo=timezone.utc)


def shift(moment: datetime, delta: timedelta) -> datetime:
    """moment + delta, clamped to the calendar's ends."""
    try:
        return moment + delta
    except OverflowError:
        return LATEST if delta > timedelta(0) else EARLIEST


def _utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        return LATEST if moment.year == datetime.max.year else EARLIEST


def parse_range(value: str) -> tuple[datetime, datetime]:
    """The [low, high) interval a FHIR date/dateTime/instant covers. ValueError if malformed."""
    m = _PATTERN.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a FHIR date, dateTime or instant")
    g = m.groupdict()
    year = int(g["year"])
    if year == 0:
        raise ValueError(f"{value} is not a FHIR date: there is no year 0")
    if g["month"] is None:
        low = datetime(year, 1, 1, tzinfo=timezone.utc)
        return low, _next_year(year, 1)
    month = int(g["month"])
    if g["day"] is None:
        low = datetime(year, month, 1, tzinfo=timezone.utc)
        high = _next_year(year, 1) if month == 12 else datetime(year, month + 1, 1, tzinfo=timezone.utc)
        return low, high
    day = int(g["day"])
    if g["hour"] is None:
        low = datetime(year, month, day, tzinfo=timezone.utc)
        return low, shift(low, timedelta(days=1))
    tz = timezone.utc
    if g["tz"] and g["tz"] != "Z":
        sign = 1 if g["tz"][0] == "+" else -1
        hours, minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    hour, minute = int(g["hour"]), int(g["minute"])
    if g["second"] is None:
        low = datetime(year, month, day, hour, minute, tzinfo=tz)
        return _utc(low), _utc(shift(low, timedelta(minutes=1)))
    second = int(g["second"])
    if second == 60:  # a leap second: the last instant of the minute
        second = 59
    fraction = g["fraction"] or ""
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    low = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    # precision: one unit of the last digit written (a second, or 10^-n s)
    digits = len(fraction) - 1 if fraction else 0
    step = timedelta(microseconds=10 ** (6 - min(digits, 6))) if digits else timedelta(seconds=1)
    return _utc(low), _utc(shift(low, step))


def _next_year(year: int, month: int) -> datetime:
    return LATEST if year == datetime.max.year else datetime(year + 1, month, 1, tzinfo=timezone.utc)


def parse_instant(value: str) -> datetime:
    """The start of the interval: for `_since` and other 'from this moment' parameters."""
    return parse_range(value)[0]
