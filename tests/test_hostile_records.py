"""Hostile records of issue 28: glued papers, duplicates, empty days, impossible dates, links, bidi controls.

Daily Papers pages are built from the seed page (data/samples), its chrome and its papers, with a
few lines replaced.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import InputSpec, ParseConfig
from pipeline.errors import InputError
from pipeline.parse import MAX_TITLE_CHARS, parse
from pipeline.sources import SourceFile, collect_sources

SEED = Path(__file__).parents[1] / "data" / "samples" / "000_6472a1053a30b6b0.txt"
TODAY = date(2026, 12, 2)
RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE


def seed_page() -> tuple[str, list[tuple[str, str]]]:
    """The seed page's chrome (everything before its date line) and its (title, abstract) papers."""
    text = SEED.read_text(encoding="utf-8")
    chrome, _, body = text.partition("Aug 12\n")
    blocks = [block.strip() for block in body.split("\n\n") if block.strip()]
    assert len(blocks) == 46, "the seed page alternates 23 titles and their abstracts"
    return chrome, list(zip(blocks[0::2], blocks[1::2], strict=True))


def page(papers: list[tuple[str, str]], date_line: str = "Aug 12", name: str = "page.txt") -> SourceFile:
    chrome, _ = seed_page()
    text = chrome + date_line + "\n\n" + "".join(f"{title}\n\n{abstract}\n\n" for title, abstract in papers)
    return SourceFile(path=name, data=text.encode(), sha256="0" * 64, spec=InputSpec(path=name, year=2026))


# -- item 2: every record a paper, a skip with its reason, or cut with a count ----------------------
def test_a_title_that_is_only_a_url_or_too_long_is_its_own_paper():
    _, papers = seed_page()
    papers = papers[:12]
    abstracts = parse([page(papers)], ParseConfig(), today=TODAY).papers["abstract"].tolist()  # as cleaned
    papers[3] = ("https://papers.example.org/2508.04242", papers[3][1])
    long_title = " ".join(["Sparse"] * 1_400 + ["Attention"])  # 10,000 characters, a title's shape
    papers[7] = (long_title, papers[7][1])
    result = parse([page(papers)], ParseConfig(), today=TODAY)
    report = result.file_reports[0]
    assert (report.read, report.kept, report.skipped) == (12, 12, 0)
    assert report.truncated == {"title": 1}
    table = result.papers
    assert table["abstract"].tolist() == abstracts  # none glued to another
    assert table["title"].iloc[3] == "https://papers.example.org/2508.04242"
    assert long_title.startswith(table["title"].iloc[7]) and len(table["title"].iloc[7]) <= MAX_TITLE_CHARS


def test_a_url_only_title_first_on_the_page_is_a_paper_and_a_trailing_link_stays_in_its_abstract():
    _, papers = seed_page()
    first = [("https://papers.example.org/1", papers[0][1]), papers[1]]
    assert parse([page(first)], ParseConfig(), today=TODAY).papers["abstract"].tolist() == [
        papers[0][1],
        papers[1][1],
    ]
    # A link line after the last abstract, with no abstract after it, is that abstract's last line.
    trailing = [papers[0], (papers[1][0], papers[1][1] + "\n\nhttps://github.com/a/b")]
    result = parse([page(trailing)], ParseConfig(), today=TODAY)
    assert result.papers["title"].tolist() == [papers[0][0], papers[1][0]]
    assert result.papers["links"].iloc[1] == "https://github.com/a/b"


# -- item 3: which of two texts of one arXiv id is kept does not depend on the order ---------------
def _table(name: str, records: list[dict[str, str]]) -> SourceFile:
    data = "".join(json.dumps(record) + "\n" for record in records).encode()
    return SourceFile(path=name, data=data, sha256="0" * 64, spec=InputSpec(path=name, format="table"))


def _record(arxiv_id: str, title: str, day: str, abstract: str = "We study sparse attention.") -> dict[str, str]:
    return {"id": arxiv_id, "title": title, "abstract": abstract, "date": day}


DUPLICATES = [
    # (kept title, other records of the same id): one rule each
    ("Later version, shorter", [_record("2503.00001v2", "Later version, shorter", "2025-03-01"),
                                _record("2503.00001v1", "Earlier version with a much longer title", "2025-03-05")]),
    ("Listed later", [_record("2503.00002", "Listed later", "2025-03-09"),
                      _record("2503.00002", "Listed earlier, a longer title", "2025-03-02")]),
    ("Same day, the longer title", [_record("2503.00003", "Same day, the longer title", "2025-03-03"),
                                    _record("2503.00003", "Same day, shorter", "2025-03-03")]),
]  # fmt: skip
SAME_LENGTH = [_record("2503.00004", "Title AAAA", "2025-03-04"), _record("2503.00004", "Title BBBB", "2025-03-04")]
SAME_TEXT = [_record("2503.00005", "Listed twice unchanged", "2025-03-08"),
             _record("2503.00005", "Listed twice unchanged", "2025-03-06")]  # fmt: skip


def test_duplicates_of_an_arxiv_id_keep_the_same_record_in_any_order():
    records = [record for _, group in DUPLICATES for record in group] + SAME_LENGTH + SAME_TEXT
    tables = set()
    for order in (records, records[::-1], records[1::2] + records[0::2]):
        for split in (1, len(order) // 2):
            files = [_table("a.jsonl", order[:split]), _table("b.jsonl", order[split:])]
            for files_in_order in itertools.permutations(files):
                result = parse(list(files_in_order), ParseConfig())
                kept = result.papers.drop(columns="source").sort_values("paper_id", ignore_index=True)
                tables.add(json.dumps(kept.to_dict("records")))
                assert sum(r.duplicates for r in result.file_reports) == 5
    assert len(tables) == 1, "the order of the files or rows changed which records were kept"
    reports = parse([_table("a.jsonl", records)], ParseConfig()).file_reports
    assert reports[0].duplicates_other_text == 4  # all but the paper listed twice unchanged
    kept = pd.DataFrame(json.loads(next(iter(tables)))).set_index("paper_id")
    for title, group in DUPLICATES:
        assert kept.loc[group[0]["id"][:10], "title"] == title
    text = {r["title"]: hashlib.sha256(f"{r['title']}\n{r['abstract']}".encode()).hexdigest() for r in SAME_LENGTH}
    assert kept.loc["2503.00004", "title"] == max(text, key=text.__getitem__)  # the larger text hash
    assert kept.loc["2503.00005", "date"] == "2025-03-06"  # an unchanged paper keeps its first listing day


# -- item 4: a daily .jsonl holding [] is a day without papers -------------------------------------
def test_a_daily_jsonl_holding_an_empty_array_is_a_day_without_papers(tmp_path):
    days = tmp_path / "days"
    days.mkdir()
    line = {"id": "2503.00001", "title": "Sparse attention for long documents", "summary": "We study sparse attention."}
    (days / "2025-03-18.jsonl").write_text(json.dumps(line) + "\n")
    (days / "2025-03-19.jsonl").write_text("[]\n")
    result = parse(collect_sources([InputSpec(path=str(days), format="arxiv-daily")]), ParseConfig())
    assert result.papers["paper_id"].tolist() == ["2503.00001"]
    assert [(Path(r.path).name, r.read, r.kept, r.skipped) for r in result.file_reports] == [
        ("2025-03-18.jsonl", 1, 1, 0),
        ("2025-03-19.jsonl", 0, 0, 0),
    ]
    with pytest.raises(InputError, match=r"2025-03-19\.jsonl: holds no papers"):  # alone, as `[]` in .json
        parse(collect_sources([InputSpec(path=str(days / "2025-03-19.jsonl"))]), ParseConfig())
    (days / "2025-03-20.jsonl").write_text('[{"id": "2503.00002"}]\n')  # an array of records is not a JSON line
    with pytest.raises(InputError, match=r"2025-03-20\.jsonl: holds no papers \(line is not a JSON object: 1\)"):
        parse(collect_sources([InputSpec(path=str(days), format="arxiv-daily")]), ParseConfig())


# -- item 10: an impossible page date is a date error, not a title -------------------------------
@pytest.mark.parametrize("date_line", ["Feb 30", "2026-02-30", "Apr 31"])
def test_an_impossible_page_date_is_reported_not_read_as_a_title(date_line):
    from pipeline.report.views import _input_row

    _, papers = seed_page()
    result = parse([page(papers[:3], date_line=date_line)], ParseConfig(), today=TODAY)
    assert result.papers["title"].tolist() == [title for title, _ in papers[:3]]
    assert (result.papers["date"] == "").all()
    report = result.file_reports[0]
    assert (report.read, report.date_errors) == (3, {"no such date": 3})
    assert report.first_date_error["no such date"].endswith(f": {date_line}")
    assert _input_row(report.to_dict())["date_errors"][0][:2] == ("no such date", 3)  # the input report shows it
    with pytest.raises(InputError, match=rf"page\.txt: line \d+: no such date \({date_line};"):
        parse([page(papers[:3], date_line=date_line)], ParseConfig(on_error="fail"), today=TODAY)


def test_an_iso_page_date_dates_the_page_and_an_impossible_table_date_is_an_error():
    _, papers = seed_page()
    result = parse([page(papers[:2], date_line="2026-02-10")], ParseConfig(), today=TODAY)
    assert result.papers["date"].tolist() == ["2026-02-10"] * 2
    records = [_record("2503.00001", "A paper", "2026-02-30"), _record("2503.00002", "B paper", "2026-02-28")]
    table = _table("t.jsonl", records)
    result = parse([table], ParseConfig(), today=TODAY)
    assert result.papers["date"].tolist() == ["", "2026-02-28"]
    assert result.file_reports[0].date_errors == {"no such date": 1}


# -- item 12: no link a paper does not have, no text reordered by bidirectional controls ---------
def test_a_bare_url_in_a_title_is_never_a_link_in_the_digest():
    from pipeline.report.whats_new import TopicChange, WhatsNew, digest

    titles = ["See https://evil.example/x now", "www.evil.example", "Plain [title](javascript:alert(1))"]
    papers = [{"title": title, "url": "", "score": "1"} for title in titles]
    change = TopicChange(topic=0, name="Links", size=3, new=3, expected=0.0, page="", papers=papers)
    text = digest(WhatsNew(1, True, 3, [change], [change], [], [], []), "run").decode()
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert lines == [
        "- See `https://evil.example/x` now",
        "- `www.evil.example`",
        "- Plain \\[title\\]\\(javascript:alert\\(1\\)\\)",
    ]


def test_bidi_controls_are_dropped_at_parse_and_by_every_writer():
    from pipeline.parse.normalize import clean_text
    from pipeline.report import pages
    from pipeline.report.csv_export import _to_csv, csv_table
    from pipeline.report.whats_new import _xml_text, markdown_text

    hostile = f"Harmless {RLO}fdp.exe\u2066 title\u200f"
    assert clean_text(hostile) == "Harmless fdp.exe title"
    assert markdown_text(hostile) == "Harmless fdp.exe title"
    element = ET.Element("title")
    element.text = _xml_text(hostile)
    assert RLO not in ET.tostring(element, encoding="unicode")
    cells = csv_table(pd.DataFrame({"title": [hostile, "=1+1"], "n": [1, 2]}), ["title"])
    assert _to_csv(cells).decode() == '"title","n"\n"Harmless fdp.exe title",1\n"\'=1+1",2\n'
    from pipeline.report.whats_new import TopicChange, WhatsNew, new_page

    change = TopicChange(topic=0, name=f"Topic {RLO}eman", size=1, new=1, expected=0.0, page="topics/00.html")
    news = WhatsNew(1, True, 1, [change], [change], [], [], [])
    html = new_page(news, {"title": f"run {RLO}x", "run_name": "run", "created": "today", "page": "new"}).decode()
    assert "Topic eman" in html and RLO not in html
    assert RLO in pages.script_json(hostile)  # the writer, not the JSON helper, drops them: one place
