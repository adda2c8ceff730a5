"""What changed since the previous run: ``new.html``, ``digest.md`` and ``feed.atom``.

Built from the label stage's feed artifacts (``pipeline.feed.label_step``): the papers new
in this run, the topic history (born, grew, merged, split, moved, faded) and one entry per
run. Rising and fading compare each topic's share of this run's new papers with its share
of the papers before them (its trailing mean over every earlier listing), see ``RULE``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipeline.report import pages
from pipeline.report.text import safe_url, shorten
from pipeline.schema import BIDI_CONTROLS, HTTP_URL, OUTLIER_TOPIC

RISE_FACTOR = 2.0
RISE_MIN_PAPERS = 5
FADE_FACTOR = 0.5
FADE_MIN_EXPECTED = 5.0
NEW_PAPERS_PER_TOPIC = 10
DIGEST_PAPERS = 5
RULE = (
    f"Rising: a topic that got at least {RISE_MIN_PAPERS} of this run's new papers and at least "
    f"{RISE_FACTOR:g} times the number its share of the earlier papers predicts. Fading: a topic whose "
    f"share of the earlier papers predicts at least {FADE_MIN_EXPECTED:g} of the new papers and that got "
    f"at most {FADE_FACTOR:g} times that many."
)
ATOM = "http://www.w3.org/2005/Atom"
# Characters XML 1.0 cannot hold at all: a title carrying one would make the feed unreadable.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class FeedTables:
    """The label stage's feed artifacts (``pipeline.feed.label_step``)."""

    history: pd.DataFrame
    registry: pd.DataFrame
    entries: Mapping[str, Any]  # feed.json: format, runs, new_paper_ids


@dataclass(frozen=True)
class TopicChange:
    topic: int
    name: str
    size: int
    new: int
    expected: float
    page: str
    papers: list[dict[str, str]] = field(default_factory=list)  # best new papers: title, url, score


@dataclass(frozen=True)
class WhatsNew:
    run: int
    first: bool  # no run before this one
    n_new: int
    per_topic: list[TopicChange]  # topics that got new papers, most new papers first
    born: list[TopicChange]
    rising: list[TopicChange]
    fading: list[TopicChange]
    events: list[dict[str, Any]]  # this run's merged / split / moved / faded rows, named


def whats_new(joined: pd.DataFrame, topics: pd.DataFrame, history: pd.DataFrame, feed: Mapping[str, Any]) -> WhatsNew:
    """What this run changed. joined: papers with topic and score; topics: with ``page``."""
    run = int(feed["runs"][-1]["run"])
    new_ids = set(feed["new_paper_ids"])
    is_new = joined["paper_id"].astype(str).isin(new_ids)
    fresh, earlier = joined[is_new], joined[~is_new]
    name_of = dict(zip(topics["topic"].astype(int), topics["name"], strict=True))
    page_of = dict(zip(topics["topic"].astype(int), topics["page"], strict=True))
    this_run = history[history["run"] == run]
    born_ids = set(this_run.loc[this_run["event"] == "born", "topic"].astype(int))
    changes = []
    for topic, row in topics.set_index("topic").iterrows():
        topic = int(topic)
        if topic == OUTLIER_TOPIC:
            continue
        mine = fresh[fresh["topic"] == topic].sort_values(["score", "paper_id"], ascending=[False, True])
        share = float((earlier["topic"] == topic).mean()) if len(earlier) else 0.0
        best = [{"title": str(p.title), "url": safe_url(p.url), "score": f"{p.score:.2f}"}
                for p in mine.head(NEW_PAPERS_PER_TOPIC).itertuples()]  # fmt: skip
        changes.append(TopicChange(topic, str(row["name"]), int(row["size"]), len(mine), share * len(fresh),
                                   page_of[topic], best))  # fmt: skip
    first = len(earlier) == 0
    rising = [] if first else [
        c for c in changes if c.new >= RISE_MIN_PAPERS and c.new >= RISE_FACTOR * c.expected and c.topic not in born_ids
    ]  # fmt: skip
    fading = (
        [] if first else [c for c in changes if c.expected >= FADE_MIN_EXPECTED and c.new <= FADE_FACTOR * c.expected]
    )
    events = [
        {"event": str(r.event), "topic": int(r.topic), "from": int(r.from_topic), "papers": int(r.papers),
         "name": name_of.get(int(r.topic), f"topic {int(r.topic)} (gone)" if r.topic >= 0 else "outliers"),
         "from_name": name_of.get(int(r.from_topic), f"topic {int(r.from_topic)} (gone)"),
         "similarity": "" if pd.isna(r.similarity) else f"{r.similarity:.2f}"}
        for r in this_run.itertuples() if r.event in ("merged", "split", "moved", "faded")
    ]  # fmt: skip
    return WhatsNew(
        run=run,
        first=first,
        n_new=len(fresh),
        per_topic=sorted((c for c in changes if c.new), key=lambda c: (-c.new, c.topic)),
        born=[c for c in changes if c.topic in born_ids],
        rising=sorted(rising, key=lambda c: (-c.new / max(c.expected, 1e-9), c.topic)),
        fading=sorted(fading, key=lambda c: (c.new / c.expected, c.topic)),
        events=events,
    )


def new_page(news: WhatsNew, common: Mapping[str, Any]) -> bytes:
    """``new.html``: the changes of this run, for a person."""
    return pages.render("new.html", {**common, "news": news, "rule": RULE})


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")
# What a Markdown renderer turns into a link by itself (GitHub's autolinks): a url, or "www." and a name.
_AUTOLINK = re.compile(rf"{HTTP_URL.pattern}|www\.[^\s\"'<>\\`]+", flags=re.IGNORECASE)


def _markdown_plain(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def markdown_text(text: str) -> str:
    """Plain text safe inside Markdown: HTML characters as entities, Markdown's own escaped.

    A url in the text is shown as code (a url holds no backtick), never as a link: a title
    "https://x.example" would otherwise become a link that the paper does not have.
    """
    text = " ".join(BIDI_CONTROLS.sub("", _NOT_XML.sub("", text)).split())
    parts, end = [], 0
    for match in _AUTOLINK.finditer(text):
        parts += [_markdown_plain(text[end : match.start()]), f"`{match.group(0)}`"]
        end = match.end()
    return "".join([*parts, _markdown_plain(text[end:])])


def digest(news: WhatsNew, run_name: str) -> bytes:
    """``digest.md``: a newsletter draft, per new and rising topic its name, counts and best new papers."""
    lines = [f"# {markdown_text(run_name)}: what's new (run {news.run})", ""]
    lines.append(f"{news.n_new} new papers" + (" (the first run: every paper is new)." if news.first else "."))
    lines.append("")
    sections = [("New topics", news.born), ("Rising topics", news.rising)]
    for heading, items in sections:
        if not items:
            continue
        lines += [f"## {heading}", ""]
        for change in items:
            lines.append(f"### {markdown_text(change.name)} (topic {change.topic})")
            lines.append("")
            expected = "" if news.first else f" (its earlier share predicts {change.expected:.1f})"
            lines.append(f"{change.new} new papers{expected}, {change.size} in all.")
            lines.append("")
            for paper in change.papers[:DIGEST_PAPERS]:
                title = markdown_text(shorten(paper["title"], 200))
                lines.append(f"- [{title}](<{paper['url']}>)" if paper["url"] else f"- {title}")
            lines.append("")
    if news.rising or news.fading:
        lines += [f"_{RULE}_", ""]
    return ("\n".join(lines).rstrip() + "\n").encode("utf-8")


def _xml_text(text: str) -> str:
    return BIDI_CONTROLS.sub("", _NOT_XML.sub("", text))


def atom_feed(news: WhatsNew, feed: Mapping[str, Any], history: pd.DataFrame, registry: pd.DataFrame,
              run_name: str) -> bytes:  # fmt: skip
    """``feed.atom``: one entry per run (newest first), valid Atom 1.0; all text escaped by the XML writer."""
    ET.register_namespace("", ATOM)
    root = ET.Element(f"{{{ATOM}}}feed")
    runs = list(feed["runs"])
    name_of = dict(zip(registry["topic"].astype(int), registry["name"].astype(str), strict=True))

    def sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}")
        element.text = _xml_text(text)
        return element

    sub(root, "title", f"papertopics: {run_name}")
    sub(root, "id", f"urn:papertopics:{_xml_text(run_name)}")
    sub(root, "updated", str(runs[-1]["created"]))
    author = ET.SubElement(root, f"{{{ATOM}}}author")
    sub(author, "name", "papertopics")
    link = ET.SubElement(root, f"{{{ATOM}}}link")
    link.set("href", "new.html")
    for entry_run in reversed(runs):
        number = int(entry_run["run"])
        events = history[history["run"] == number]
        born = [name_of.get(int(t), f"topic {int(t)}") for t in events.loc[events["event"] == "born", "topic"]]
        entry = ET.SubElement(root, f"{{{ATOM}}}entry")
        sub(entry, "title", f"Run {number}: {entry_run['new_papers']} new papers, {len(born)} new topics")
        sub(entry, "id", f"urn:papertopics:{_xml_text(run_name)}:run:{number}")
        sub(entry, "updated", str(entry_run["created"]))
        lines = [f"{entry_run['papers']} papers in {entry_run['topics']} topics."]
        if born:
            lines.append("New topics: " + "; ".join(born) + ".")
        for event in ("merged", "split"):
            count = int((events["event"] == event).sum())
            if count:
                lines.append(f"{count} {event} event(s).")
        if number == news.run:
            lines += [f"Rising: {c.name} ({c.new} new)." for c in news.rising]
            lines += [f"New paper: {p['title']}" for c in news.per_topic[:3] for p in c.papers[:1]]
        sub(entry, "summary", " ".join(lines))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def whats_new_files(
    joined: pd.DataFrame,
    topics: pd.DataFrame,
    history: pd.DataFrame,
    registry: pd.DataFrame,
    feed: Mapping[str, Any],
    common: Mapping[str, Any],
) -> dict[str, bytes]:
    """``new.html``, ``digest.md`` and ``feed.atom`` of a run."""
    news = whats_new(joined, topics, history, feed)
    run_name = str(common["run_name"])
    return {
        "new.html": new_page(news, common),
        "digest.md": digest(news, run_name),
        "feed.atom": atom_feed(news, feed, history, registry, run_name),
    }
