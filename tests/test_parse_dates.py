"""Dates without a year ("Feb 10" on a saved Daily Papers page): each rule that gives the year, and future dates."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime

import pytest

from pipeline.config import InputSpec, ParseConfig
from pipeline.errors import InputError
from pipeline.parse import date_key_parts, parse
from pipeline.parse.dates import (
    FUTURE_DATE,
    NO_SUCH_DAY,
    RULE_FILE_NAME,
    RULE_MODIFIED,
    RULE_TODAY,
    RULE_YEAR,
    DateReference,
    dated,
    file_name_date,
    is_future,
    month_day,
    mtime_day,
)
from pipeline.sources import SourceFile, collect_sources

TODAY = date(2026, 12, 2)
CHROME = "Daily Papers\n\nbyAK and the research community\n\n"
ABSTRACT = (
    "We study how a model forgets what it learnt during fine-tuning and propose a replay method "
    "that keeps the old skills. Experiments on three benchmarks show the method works well."
)


def _timestamp(day: str, hour: int = 12) -> float:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC).timestamp()


def _page(
    listed: str = "Feb 10", name: str = "page.txt", year: int | None = None, mtime: float | None = None
) -> SourceFile:
    text = (
        f"{CHROME}{listed}\n\nForgetting In Fine-Tuning\n\n{ABSTRACT}\n\nA Second Paper On Replay\n\n{ABSTRACT} Two.\n"
    )
    spec = InputSpec(path=name, year=year)
    return SourceFile(path=name, data=text.encode(), sha256="0" * 64, spec=spec, mtime=mtime)


def _dates(source: SourceFile, today: date = TODAY, **config) -> tuple[list[str], dict]:
    result = parse([source], ParseConfig(**config), today=today)
    return result.papers["date"].tolist(), result.file_reports[0].to_dict()


# --------------------------------------------------------------------------- the pure rules


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Aug 12", (8, 12)), ("March 3", (3, 3)), ("Sept. 9", (9, 9)), ("feb 29", (2, 29)), ("Dec 31", (12, 31))],
)
def test_month_day_reads_page_date_lines(text, expected):
    assert month_day(text) == expected


@pytest.mark.parametrize(
    "text", ["Foo 12", "Feb 30", "Apr 31", "Aug 0", "Augu 12", "Subscribe", "2024-08-12", "Aug 12 2024"]
)
def test_month_day_refuses_other_lines(text):
    assert month_day(text) is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("pages/2026-02-10.txt", date(2026, 2, 10)),
        ("daily_2026_02_10_hf.txt", date(2026, 2, 10)),
        ("hf-20260210.txt", date(2026, 2, 10)),
        ("2026-13-40-x-2026-02-11.txt", date(2026, 2, 11)),  # an impossible date is passed over
        ("2026-02-10/page.txt", None),  # a folder's name is not the file's
        ("000_6472a1053a30b6b0.txt", None),  # the seed pages: hex digits, no date
        ("120260210.txt", None),  # inside a longer number
    ],
)
def test_file_name_date(path, expected):
    assert file_name_date(path) == expected


def test_latest_date_on_or_before_the_reference_with_a_day_of_slack():
    def on(day: str, month: int, day_of_month: int) -> date | None:
        return dated(month, day_of_month, DateReference(RULE_MODIFIED, day=date.fromisoformat(day)))

    assert on("2026-02-10", 2, 10) == date(2026, 2, 10)
    assert on("2026-01-02", 12, 31) == date(2025, 12, 31)  # saved just after new year
    assert on("2026-02-10", 2, 11) == date(2026, 2, 11)  # the site's day may run ahead of the saver's
    assert on("2026-02-10", 2, 12) == date(2025, 2, 12)
    assert on("2026-03-01", 2, 29) == date(2024, 2, 29)  # the latest leap day
    assert dated(2, 29, DateReference(RULE_YEAR, year=2023)) is None
    assert dated(2, 29, DateReference(RULE_YEAR, year=2024)) == date(2024, 2, 29)


def test_mtime_day_is_utc_and_ignores_placeholder_times():
    assert mtime_day(_timestamp("2026-02-10", hour=23)) == date(2026, 2, 10)
    assert mtime_day(0.0) is None  # 1970-01-01: an archive tool's placeholder
    assert mtime_day(None) is None


def test_is_future():
    assert is_future("2026-12-04", TODAY)
    assert not is_future("2026-12-03", TODAY)  # tomorrow somewhere on Earth already
    assert is_future("2027-01", TODAY) and not is_future("2026-12", TODAY)
    assert not is_future("Feb 10", TODAY) and not is_future("", TODAY)


# --------------------------------------------------------------------------- each rule, through parse


def test_rule_year_setting_wins_over_file_name_and_mtime():
    source = _page(name="2026-02-10.txt", year=2024, mtime=_timestamp("2025-06-01"))
    dates, report = _dates(source)
    assert dates == ["2024-02-10", "2024-02-10"]
    assert (report["date_rule"], report["date_reference"]) == (RULE_YEAR, "2024")


def test_rule_file_name_wins_over_mtime():
    source = _page("Dec 31", name="hf-2026-01-01.txt", mtime=_timestamp("2026-06-01"))
    dates, report = _dates(source)
    assert dates == ["2025-12-31", "2025-12-31"]
    assert (report["date_rule"], report["date_reference"]) == (RULE_FILE_NAME, "2026-01-01")


def test_rule_modification_time_without_a_date_in_the_name():
    dates, report = _dates(_page("Feb 10", mtime=_timestamp("2025-02-11")))
    assert dates == ["2025-02-10", "2025-02-10"]
    assert (report["date_rule"], report["date_reference"]) == (RULE_MODIFIED, "2025-02-11")


@pytest.mark.parametrize("mtime", [None, 0.0])
def test_rule_latest_past_date_when_nothing_else_says(mtime):
    dates, report = _dates(_page("Dec 5", mtime=mtime))
    assert dates == ["2025-12-05", "2025-12-05"]  # Dec 5 2026 has not come yet on Dec 2 2026
    assert (report["date_rule"], report["date_reference"]) == (RULE_TODAY, "2026-12-02")
    assert _dates(_page("Dec 5", mtime=mtime), today=date(2026, 12, 6))[0] == ["2026-12-05", "2026-12-05"]


def test_real_file_is_dated_by_its_modification_time(tmp_path):
    path = tmp_path / "saved-page.txt"
    path.write_bytes(_page("Mar 11").data)
    os.utime(path, (_timestamp("2025-03-12"), _timestamp("2025-03-12")))
    result = parse(collect_sources([InputSpec(path=str(path))]), ParseConfig(), today=TODAY)
    assert set(result.papers["date"]) == {"2025-03-11"}
    assert result.file_reports[0].date_rule == RULE_MODIFIED


def test_each_file_gets_its_own_rule(tmp_path):
    named, plain = tmp_path / "2026-02-10.txt", tmp_path / "page.txt"
    named.write_bytes(_page("Feb 10").data)
    plain.write_bytes(_page("Feb 9").data)
    os.utime(plain, (_timestamp("2025-02-09"), _timestamp("2025-02-09")))
    result = parse(collect_sources([InputSpec(path=str(tmp_path / "*.txt"))]), ParseConfig(dedupe=False), today=TODAY)
    assert [(r.path.rsplit("/", 1)[-1], r.date_rule) for r in result.file_reports] == [
        ("2026-02-10.txt", RULE_FILE_NAME),
        ("page.txt", RULE_MODIFIED),
    ]
    assert result.papers["date"].tolist() == ["2026-02-10"] * 2 + ["2025-02-09"] * 2


def test_files_with_full_dates_name_no_rule():
    data = b"title,abstract,date\nA paper on replay,Long enough abstract text here,2024-03-05\n"
    source = SourceFile(path="t.csv", data=data, sha256="0" * 64, spec=InputSpec(path="t.csv"), mtime=None)
    dates, report = _dates(source)
    assert dates == ["2024-03-05"]
    assert (report["date_rule"], report["date_reference"], report["date_errors"]) == ("", "", {})


# --------------------------------------------------------------------------- wrong dates are errors, not guesses


def test_future_date_from_the_year_setting_is_reported_and_left_out():
    dates, report = _dates(_page("Feb 10", year=2027))
    assert dates == ["", ""]  # not moved to 2026: the input is wrong
    assert report["date_errors"] == {FUTURE_DATE: 2}
    assert report["first_date_error"] == {FUTURE_DATE: "line 7: 2027-02-10"}
    assert report["kept"] == 2 and report["skipped"] == 0  # the papers themselves are fine
    json.dumps(report)  # the manifest holds it


def test_future_date_from_the_file_name_is_an_error():
    dates, report = _dates(_page("Jan 5", name="2027-01-05.txt"))
    assert dates == ["", ""]
    assert report["date_errors"] == {FUTURE_DATE: 2}
    assert report["date_rule"] == RULE_FILE_NAME


def test_future_full_date_in_a_table_is_an_error():
    data = (
        b"title,abstract,date\nA paper on replay,Long enough abstract text here,2031-01-01\n"
        b"B paper,Another long abstract for it,2025-01-01\n"
    )
    source = SourceFile(path="t.csv", data=data, sha256="0" * 64, spec=InputSpec(path="t.csv"))
    dates, report = _dates(source)
    assert dates == ["", "2025-01-01"]
    assert report["first_date_error"] == {FUTURE_DATE: "row 1 (line 2): 2031-01-01"}


def test_future_date_stops_the_run_with_on_error_fail():
    with pytest.raises(
        InputError, match=r"^page\.txt: line 7: listing date in the future \(2027-02-10; today is 2026-12-02\)"
    ):
        _dates(_page("Feb 10", year=2027), on_error="fail")


def test_leap_day_in_a_year_setting_without_one():
    dates, report = _dates(_page("Feb 29", year=2023))
    assert dates == ["", ""]
    assert report["date_errors"] == {NO_SUCH_DAY: 2}
    # ...while the other rules find the latest Feb 29.
    assert _dates(_page("Feb 29", mtime=_timestamp("2026-03-01")))[0] == ["2024-02-29", "2024-02-29"]


def test_cache_key_parts_follow_the_modification_day_and_today():
    morning, evening = _page(mtime=_timestamp("2026-02-10", hour=8)), _page(mtime=_timestamp("2026-02-10", hour=20))
    next_day = _page(mtime=_timestamp("2026-02-11", hour=8))
    assert date_key_parts([morning], TODAY) == date_key_parts([evening], TODAY)  # same day: same dates
    assert date_key_parts([morning], TODAY) != date_key_parts([next_day], TODAY)
    assert date_key_parts([morning], TODAY) != date_key_parts([morning], date(2026, 12, 3))
