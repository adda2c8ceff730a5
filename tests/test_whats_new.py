"""What's new since the previous run: new.html, digest.md and feed.atom (pipeline.report.whats_new)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pandas as pd

from pipeline.report import build_report
from pipeline.report.whats_new import FeedTables, markdown_text
from tests.test_report import XSS_IMG, XSS_SCRIPT, make_config, make_summary, make_tables

ATOM = "{http://www.w3.org/2005/Atom}"


def feed_tables(papers: pd.DataFrame, new_rows: list[int]) -> FeedTables:
    history = pd.DataFrame(
        {
            "run": [1, 1, 1, 2, 2, 2],
            "topic": [0, 1, 5, 2, 1, 1],
            "event": ["born", "born", "born", "born", "merged", "grew"],
            "from_topic": [-1, -1, -1, -1, 5, 1],
            "similarity": [float("nan")] * 4 + [0.8, 0.9],
            "papers": [30, 8, 3, 10, 3, 12],
        }
    )
    registry = pd.DataFrame(
        {"topic": [0, 1, 2, 5], "name": ["Graph neural networks", "Language models", XSS_IMG, "Gone"]}
    )
    runs = [
        {"run": 1, "papers": 50, "new_papers": 50, "topics": 3, "created": "2025-01-14T10:00:00+00:00"},
        {"run": 2, "papers": 63, "new_papers": 13, "topics": 3, "created": "2025-01-15T10:00:00+00:00"},
    ]
    entries = {"format": 1, "runs": runs, "new_paper_ids": papers["paper_id"].iloc[new_rows].tolist()}
    return FeedTables(history, registry, entries)


def report_with_feed():
    topic_of = [0] * 30 + [1] * 20 + [2] * 10 + [-1] * 3
    papers, assignments, topics = make_tables(topic_of)
    papers.loc[3, "title"] = "A title with a control character \x0b and an ampersand &"
    topics.loc[topics["topic"] == 2, "name"] = XSS_IMG
    # New in run 2: twelve papers of topic 1 and one of topic 0 (the one titled with a script).
    new_rows = [0, *range(38, 50)]
    files = build_report(papers, assignments, topics, make_summary(), make_config(), feed=feed_tables(papers, new_rows))
    return files, papers


def test_the_dashboard_links_whats_new_and_the_page_names_rising_fading_and_merges():
    files, _ = report_with_feed()
    assert 'href="new.html"' in files["index.html"].decode()
    page = files["new.html"].decode()
    assert "13 papers are new since the previous run" in page
    rising = page[page.index("<b>Rising:</b>") : page.index("<b>Fading:</b>")]
    assert "Language models" in rising and "Graph neural networks" not in rising
    fading = page[page.index("<b>Fading:</b>") :]
    assert "Graph neural networks" in fading.split("</p>")[0]
    assert "merged" in page and "Gone" not in page  # a gone topic is named by its id
    assert "topic 5 (gone)" in page
    # Hostile titles and names are text, never markup; a javascript: url is never a link.
    assert XSS_SCRIPT not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert XSS_IMG not in page
    assert "javascript:" not in page


def test_the_digest_lists_new_and_rising_topics_with_their_best_new_papers_escaped():
    files, _ = report_with_feed()
    digest = files["digest.md"].decode()
    assert "## New topics" in digest and "## Rising topics" in digest
    rising = digest[digest.index("## Rising topics") :]
    assert "Language models (topic 1)" in rising and "12 new papers" in rising
    linked = [int(number) for number in re.findall(r"\]\(<https://arxiv\.org/abs/2501\.(\d{5})>\)", rising)]
    assert len(linked) == 5 and set(linked) <= set(range(38, 50))  # the best five of its twelve new papers
    scores = dict(zip(range(63), make_tables([0] * 30 + [1] * 20 + [2] * 10 + [-1] * 3)[1]["score"], strict=True))
    assert [scores[n] for n in linked] == sorted((scores[n] for n in range(38, 50)), reverse=True)[:5]
    assert "<script>" not in digest and "<img" not in digest
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in digest
    assert markdown_text("[x](javascript:y) *b*") == "\\[x\\]\\(javascript:y\\) \\*b\\*"


def test_the_atom_feed_parses_has_one_entry_per_run_and_keeps_hostile_text_as_text():
    files, _ = report_with_feed()
    raw = files["feed.atom"]
    root = ET.fromstring(raw)  # valid XML: the control character was dropped, & and < escaped
    assert root.tag == f"{ATOM}feed"
    entries = root.findall(f"{ATOM}entry")
    assert [entry.find(f"{ATOM}id").text for entry in entries] == [
        "urn:papertopics:demo-run:run:2",
        "urn:papertopics:demo-run:run:1",
    ]
    for entry in entries:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", entry.find(f"{ATOM}updated").text)
    latest = entries[0]
    assert latest.find(f"{ATOM}title").text == "Run 2: 13 new papers, 1 new topics"
    summary = latest.find(f"{ATOM}summary").text
    assert XSS_IMG in summary and "Rising: Language models" in summary  # as text, after parsing
    assert b"<img" not in raw and b"<script" not in raw


def test_a_report_without_feed_tables_has_no_whats_new():
    papers, assignments, topics = make_tables()
    files = build_report(papers, assignments, topics, make_summary(), make_config())
    assert "new.html" not in files and "digest.md" not in files and "feed.atom" not in files
    assert 'href="new.html"' not in files["index.html"].decode()
