"""Listing dates written without a year ("Feb 10" on a saved Daily Papers page): which year, by which rule.

A page says "Feb 10"; the year comes from, in this order:

1. the input's ``year`` setting (the user said so);
2. a date in the file name (``2026-02-10-daily.txt``): the page was saved, or is named, on that day;
3. the file's modification time: the day it was saved;
4. the run's "today".

Rules 2 to 4 give a reference day, and the listing date is the latest date with that month
and day on or before it (a page cannot list a day after it was saved), allowing one day of
slack (``TIME_ZONE_SLACK``): a page saved in the evening may already show the next day's
date in the site's time zone. A listing date after today (plus the same slack) is an error
of the input, never a reason to guess another year: ``parse`` reports it per file.

Everything here is pure: "today" and the modification time are arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePath

_MONTH_DAY = re.compile(r"^([A-Za-z]{3,9})\.? (\d{1,2})$")
_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                "october", "november", "december")  # fmt: skip
# "aug", "august" and "sept" name a month; other prefixes ("augu") do not.
_MONTHS = {key: i for i, name in enumerate(_MONTH_NAMES, 1) for key in (name, name[:3])} | {"sept": 9}
# A date in a file name: "2026-02-10", "2026_02_10" or "20260210", not inside a longer number.
_NAME_DATE = re.compile(r"(?<!\d)(\d{4})([-_]?)(\d{2})\2(\d{2})(?!\d)")
_ISO_DAY_OR_MONTH = re.compile(r"^\d{4}-\d{2}(?:-\d{2})?$")
_ISO_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
TIME_ZONE_SLACK = timedelta(days=1)
# Modification times before arXiv's first listing are archive tools' placeholders
# (0 = 1970-01-01), not the day a page was saved.
EARLIEST_CREDIBLE_MTIME = date(1991, 8, 14)

# The rule names written to the parse report (``FileReport.date_rule``) and the dashboard.
RULE_YEAR = "year setting"
RULE_FILE_NAME = "file name"
RULE_MODIFIED = "file modified"
RULE_TODAY = "latest past date"
DATE_RULES = (RULE_YEAR, RULE_FILE_NAME, RULE_MODIFIED, RULE_TODAY)
FUTURE_DATE = "listing date in the future"
NO_SUCH_DAY = "no such day in the year setting"
NO_SUCH_DATE = "no such date"  # "Feb 30", "2026-02-30": written as a date, but no day has it


@dataclass(frozen=True)
class DateReference:
    """How one file's yearless dates get their year.

    ``rule`` is one of ``DATE_RULES``; ``year`` is set for the year rule, ``day`` (the
    reference day) for the others.
    """

    rule: str
    year: int | None = None
    day: date | None = None


def utc_today() -> date:
    """Today's date in UTC: what a run uses as "today" unless it is given one."""
    return datetime.now(UTC).date()


def month_day(text: str) -> tuple[int, int] | None:
    """(month, day) of a date line without a year ("Aug 12", "March 3", "Sept. 9"), else None."""
    match = _MONTH_DAY.match(text.strip())
    if not match:
        return None
    month, day = _MONTHS.get(match.group(1).casefold()), int(match.group(2))
    if month is None or not 1 <= day <= (29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31):
        return None
    return month, day


def is_date_line(text: str) -> bool:
    """True for a line that writes a day, whether or not it exists ("Aug 12", "Feb 30", "2026-02-30").

    A saved page's date line is recognised by this shape, so that an impossible date is reported
    as one (``no_such_date``) rather than read as a title.
    """
    line = text.strip()
    match = _MONTH_DAY.match(line)
    return (match is not None and match.group(1).casefold() in _MONTHS) or _ISO_DAY.match(line) is not None


def no_such_date(text: str) -> bool:
    """True for a date written as "Feb 30" or "2026-02-30": the shape of a day, but no such day."""
    line = text.strip()
    if month_day(line) is not None or not is_date_line(line):
        return False
    iso = _ISO_DAY.match(line)
    if iso is None:
        return True  # a month name and a day number it does not have
    try:
        date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
    except ValueError:
        return True
    return False


def file_name_date(path: str) -> date | None:
    """The first valid date written in the file's name (not its folders), else None."""
    for match in _NAME_DATE.finditer(PurePath(path).name):
        try:
            return date(int(match.group(1)), int(match.group(3)), int(match.group(4)))
        except ValueError:
            continue
    return None


def mtime_day(mtime: float | None) -> date | None:
    """The UTC day of a modification time, or None when there is none or it is not credible."""
    if mtime is None:
        return None
    try:
        day = datetime.fromtimestamp(mtime, UTC).date()
    except (OverflowError, OSError, ValueError):
        return None
    return day if day >= EARLIEST_CREDIBLE_MTIME else None


def date_reference(path: str, year: int | None, mtime: float | None, today: date) -> DateReference:
    """Which rule dates the yearless dates of the file at ``path`` (see the module's docstring)."""
    if year is not None:
        return DateReference(RULE_YEAR, year=year)
    named = file_name_date(path)
    if named is not None:
        return DateReference(RULE_FILE_NAME, day=named)
    modified = mtime_day(mtime)
    if modified is not None:
        return DateReference(RULE_MODIFIED, day=modified)
    return DateReference(RULE_TODAY, day=today)


def dated(month: int, day: int, reference: DateReference) -> date | None:
    """The full date of "month day" under ``reference``; None for Feb 29 in a year setting without one."""
    if reference.year is not None:
        try:
            return date(reference.year, month, day)
        except ValueError:
            return None
    assert reference.day is not None
    latest = reference.day + TIME_ZONE_SLACK
    # Feb 29 may lie up to eight years back (no leap day in 2100); every other day within one.
    for year in range(latest.year, latest.year - 9, -1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate <= latest:
            return candidate
    return None


def is_future(value: str, today: date) -> bool:
    """True when ``value`` is an ISO day or month ("2027-02-10", "2027-02") that starts after today + slack."""
    text = value.strip()
    if not _ISO_DAY_OR_MONTH.match(text):
        return False
    return text > (today + TIME_ZONE_SLACK).isoformat()
