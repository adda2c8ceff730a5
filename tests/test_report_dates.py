"""Dates in the report: the histogram of papers per listing date under the map, and how each file was dated."""

from __future__ import annotations

import html
import json
import re

import pandas as pd
import pytest
from test_report import build, html_pages, make_config, make_summary, make_synthetic_tables, make_tables, map_points

from pipeline.report import build_report, figures
from pipeline.report.docmap import date_histogram


def _papers_per_date(dates: pd.Series) -> dict[str, int]:
    iso = dates[dates.str.fullmatch(r"\d{4}-\d{2}-\d{2}")]
    return {str(day): int(count) for day, count in iso.value_counts().sort_index().items()}


def test_histogram_of_the_map_holds_the_papers_per_listing_date():
    papers, assignments, topics, hierarchy = make_synthetic_tables(3000, seed=3)
    papers.loc[:9, "date"] = ["Aug 12"] * 5 + [""] * 5  # no year, no date: not in any bar
    files = build_report(papers, assignments, topics, make_summary(), make_config(), hierarchy=hierarchy)
    bars = map_points(files["map.html"].decode("utf-8"))["dateHistogram"]
    assert bars["period"] == "day"  # two years of days: one bar per listing day
    assert bars["start"] == bars["end"]
    assert dict(zip(bars["start"], bars["count"], strict=True)) == _papers_per_date(papers["date"])
    assert sum(bars["count"]) == len(papers) - 10


def test_histogram_bins_long_spans_by_week_or_month():
    dates = pd.Series(["2020-01-01", "2020-01-05", "2020-01-06", "2024-06-30", "Aug 12"])
    weekly = date_histogram(dates)
    assert weekly == {
        "period": "week",  # 4.5 years: weeks from Monday
        "start": ["2019-12-30", "2020-01-06", "2024-06-24"],
        "end": ["2020-01-05", "2020-01-12", "2024-06-30"],
        "count": [2, 1, 1],
    }
    monthly = date_histogram(pd.Series(["2007-04-02", "2024-02-29", "2024-02-01", "2024-02"]))
    assert monthly == {
        "period": "month",
        "start": ["2007-04-01", "2024-02-01"],
        "end": ["2007-04-30", "2024-02-29"],
        "count": [1, 3],
    }
    # A month-only date cannot sit in a day's bar: months even for a short span.
    assert date_histogram(pd.Series(["2024-03-05", "2024-03"]))["period"] == "month"
    assert date_histogram(pd.Series(["Aug 12", ""])) is None


def test_map_page_carries_the_histogram_and_its_brush_layout():
    page = html_pages(build())["map.html"]
    points = map_points(page)
    assert sum(points["dateHistogram"]["count"]) == len(points["date"])  # every demo paper is dated
    block = re.search(r'<script type="application/json" id="histogram-layout">(.*?)</script>', page, re.DOTALL)
    layout = json.loads(block.group(1))
    assert layout == json.loads(json.dumps(figures.date_histogram_layout()))
    assert (layout["dragmode"], layout["selectdirection"]) == ("select", "h")
    assert layout["xaxis"]["type"] == "date" and layout["xaxis"]["fixedrange"]
    assert 'id="date-histogram"' in page and 'id="map-from"' in page  # one filter, two controls


def test_map_without_dates_has_no_histogram():
    papers, assignments, topics = make_tables()
    papers = papers.assign(date="Aug 12")
    page = html_pages(build(papers, assignments, topics))["map.html"]
    assert map_points(page)["dateHistogram"] is None
    assert 'id="date-histogram"' not in page and 'id="map-from"' not in page


def _inputs_table(index: str) -> str:
    return index.split('<h2 id="inputs">')[1].split("</table>")[0]


@pytest.mark.parametrize(
    ("rule", "reference", "shown"),
    [
        ("year setting", "2024", "the input's year setting: 2024"),
        ("file name", "2026-02-10", "the date in the file name: 2026-02-10"),
        ("file modified", "2026-02-11", "the file's modification day: 2026-02-11"),
        (
            "latest past date",
            "2026-12-02",
            "the latest such day up to the run's day, 2026-12-02 (no date in the name, no modification time)",
        ),
    ],
)
def test_dashboard_says_which_rule_dated_each_file(rule, reference, shown):
    report = {"path": "pages/feb.txt", "reader": "hf-daily-papers", "read": 3, "kept": 3, "duplicates": 0,
              "skipped": 0, "skip_reasons": {}, "date_rule": rule, "date_reference": reference,
              "date_errors": {}, "first_date_error": {}}  # fmt: skip
    plain = {"path": "table.csv", "reader": "table", "read": 2, "kept": 2, "duplicates": 0, "skipped": 0}
    table = _inputs_table(html_pages(build(summary=make_summary(inputs=[report, plain])))["index.html"])
    assert "Dated by" in table
    cells = re.findall(r'data-rule="([^"]*)">(.*?)</td>', table, flags=re.DOTALL)
    assert [(r, html.unescape(text.strip())) for r, text in cells] == [(rule, shown), ("", "")]  # full dates: no rule


def test_dashboard_flags_future_dates_per_file():
    report = {"path": "2027-01-05.txt", "reader": "hf-daily-papers", "read": 2, "kept": 2, "duplicates": 0,
              "skipped": 0, "skip_reasons": {}, "date_rule": "file name", "date_reference": "2027-01-05",
              "date_errors": {"listing date in the future": 2},
              "first_date_error": {"listing date in the future": "line 7: 2027-01-05"}}  # fmt: skip
    table = _inputs_table(html_pages(build(summary=make_summary(inputs=[report])))["index.html"])
    assert (
        '<div class="date-error">2 papers left undated, listing date in the future (first: line 7: 2027-01-05)</div>'
        in table
    )


def test_dashboard_without_dated_inputs_has_no_dates_column():
    table = _inputs_table(html_pages(build())["index.html"])  # make_summary's input: no date fields
    assert "Dated by" not in table
