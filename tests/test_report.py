"""Report stage: files, escaping, links, pages, figures, CSVs and edge cases, on in-memory tables.

``make_tables`` (a small hand-made run) and ``make_synthetic_tables`` (any number of
papers, with dates, sources, a coarse level and a hierarchy) are shared with the other
report tests.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re

import numpy as np
import pandas as pd
import plotly.offline
import pytest

from pipeline.config import ReportConfig
from pipeline.errors import WorkerDiedError
from pipeline.files import JoinedBytes, atomic_write_bytes
from pipeline.parallel import built_beside, fork_available
from pipeline.report import build_report, figures, views
from pipeline.report.csv_export import csv_table, topic_csv_path, topic_number_width
from pipeline.report.text import safe_url
from pipeline.schema import HIERARCHY_COLUMNS, OUTLIER_NAME, PAPER_COLUMNS

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(1)>"
FORMULA = '=HYPERLINK("http://evil.example","click")'

TOPIC_SPECS = {
    # topic: (name, slug, keywords, centre)
    0: ("Graph neural networks", "graph-neural-networks", ["graph", "gnn", "message passing", "node"], (0.0, 0.0)),
    1: ("Language models", "language-models", ["llm", "token", "prompt", "transformer"], (10.0, 0.0)),
    2: ("Protein folding", "protein-folding", ["protein", "structure", "fold"], (0.0, 10.0)),
}


def make_tables(topic_of: list[int] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Papers, assignments and topics; by default 20 papers in topics 0-2 plus 3 outliers."""
    if topic_of is None:
        topic_of = [0] * 7 + [1] * 6 + [2] * 4 + [-1] * 3
    n = len(topic_of)
    titles = [f"Paper number {i}" for i in range(n)]
    titles[0] = XSS_SCRIPT
    if n > 1:
        titles[1] = XSS_IMG
    if n > 2:
        titles[2] = FORMULA
    urls = [f"https://arxiv.org/abs/2501.{i:05d}" for i in range(n)]
    if n > 1:
        urls[1] = "javascript:alert(1)"  # a representative of topic 0: must show as text, unlinked
    papers = pd.DataFrame(
        {
            "paper_id": [f"2501.{i:05d}" for i in range(n)],
            "title": titles,
            "abstract": [f"Abstract {i} " + "word " * 80 + "<b>bold</b> & more" for i in range(n)],
            "authors": ["Ada Lovelace; Alan Turing"] * n,
            "date": ["2025-01-15"] * n,
            "url": urls,
            "links": [""] * n,
            "source": ["data/listing.html"] * n,
            "label": ["cs.LG" if i % 2 else "cs.CL" for i in range(n)],
        },
        columns=list(PAPER_COLUMNS),
    ).astype("string")
    # Scores fall with i but are shuffled against paper order, to test the sort.
    scores = [round(0.5 + 0.4 * ((i * 7) % n) / max(n, 1), 4) for i in range(n)]
    xs, ys = [], []
    for i, topic in enumerate(topic_of):
        cx, cy = TOPIC_SPECS[topic][3] if topic in TOPIC_SPECS else (5.0 * (topic == -1) + topic, 5.0)
        xs.append(cx + (i % 3) * 0.3)
        ys.append(cy + (i % 4) * 0.2)
    assignments = pd.DataFrame({"paper_id": papers["paper_id"], "topic": topic_of, "score": scores, "x": xs, "y": ys})
    rows = []
    for topic in sorted(set(topic_of)):
        members = [papers["paper_id"][i] for i, t in enumerate(topic_of) if t == topic]
        if topic == -1:
            rows.append(
                {
                    "topic": -1,
                    "name": "Outliers",
                    "slug": "outliers",
                    "size": len(members),
                    "keywords": [],
                    "keyword_weights": [],
                    "representative_ids": [],
                    "x": 5.0,
                    "y": 5.0,
                }
            )
            continue
        generic = (f"Topic {topic}", f"topic-{topic}", ["a", "b"], (topic, 0))
        name, slug, keywords, (cx, cy) = TOPIC_SPECS.get(topic, generic)
        rows.append(
            {
                "topic": topic,
                "name": name,
                "slug": slug,
                "size": len(members),
                "keywords": keywords,
                "keyword_weights": [round(0.9 - 0.1 * k, 2) for k in range(len(keywords))],
                "representative_ids": members[:4],
                "x": cx,
                "y": cy,
            }
        )
    return papers, assignments, pd.DataFrame(rows)


def make_summary(**overrides: object) -> dict:
    summary = {
        "name": "demo-run",
        "inputs": [
            {
                "path": "data/<listing>.html",
                "reader": "hf-daily-papers",
                "read": 25,
                "kept": 20,
                "duplicates": 3,
                "skipped": 2,
                "skip_reasons": {"too short": 1, "<b>no title</b>": 1},
            },
        ],
        "n_read": 25,
        "n_papers": 20,
        "n_duplicates": 3,
        "n_skipped": 2,
        "stage_seconds": {"parse": 0.4, "embed": 12.25, "cluster": 3.1, "label": 1.0},
        "settings": {"name": "demo-run", "seed": 42, "report": {"title": None}},
        "seed": 42,
        "has_labels": True,
        "created": "2025-01-15T10:00:00+00:00",
        "notes": ["23 papers: UMAP n_neighbors lowered to 10", "note with <i>markup</i>"],
    }
    summary.update(overrides)
    return summary


def make_config(**overrides: object) -> ReportConfig:
    return ReportConfig(**overrides)


# --------------------------------------------------------------------------- helpers


def build(papers=None, assignments=None, topics=None, summary=None, config=None) -> dict[str, bytes]:
    if papers is None:
        papers, assignments, topics = make_tables()
    return build_report(papers, assignments, topics, summary or make_summary(), config or make_config())


def html_pages(files: dict[str, bytes]) -> dict[str, str]:
    return {path: content.decode("utf-8") for path, content in files.items() if path.endswith(".html")}


def values(array: object) -> list:
    """Numbers of a ``fig.to_dict()`` array: plotly encodes numpy arrays as base64 typed arrays."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def read_csv(content: bytes | JoinedBytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(bytes(content)), dtype=str, keep_default_na=False)


def map_points(page: str) -> dict:
    """The compact data block the map page draws from."""
    block = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', page, flags=re.DOTALL)
    assert block, "map.html has no data block"
    return json.loads(block.group(1))


def map_abstracts(page: str) -> list[str]:
    block = re.search(r'<script type="application/json" id="map-abstracts">(.*?)</script>', page, flags=re.DOTALL)
    assert block, "map.html has no abstracts block"
    return json.loads(block.group(1))


def inline_scripts(page: str) -> list[str]:
    return re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>(.*?)</script>", page, flags=re.DOTALL)


SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "sa", "di", "gu", "ri", "mo", "xe", "fi")


def make_synthetic_tables(
    n: int, n_topics: int | None = None, n_groups: int | None = None, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Papers, assignments, topics and hierarchy of a made-up run of ``n`` papers, quickly.

    Realistic lengths (titles ~60, authors ~50, abstracts ~800 characters), ISO dates
    over two years, three sources, about √n / 2 topics in groups of ~8 (the coarse
    level) and a hierarchy that merges topics pairwise up to one root. Titles end in
    the paper's number, so each is unique.
    """
    rng = np.random.default_rng(seed)
    n_topics = n_topics or max(3, int(np.sqrt(n) / 2))
    n_groups = n_groups or max(2, n_topics // 8)
    vocab = np.array(["".join(rng.choice(SYLLABLES, size=rng.integers(2, 4))) for _ in range(2000)])
    sentences = np.array([" ".join(rng.choice(vocab, size=14)).capitalize() + "." for _ in range(400)])
    people = np.array([f"{a.capitalize()} {b.capitalize()}" for a, b in rng.choice(vocab, size=(500, 2))])
    topic_of = rng.integers(-1, n_topics, size=n)
    centres = rng.normal(0.0, 10.0, size=(n_topics + 1, 2))
    xy = centres[topic_of + 1] + rng.normal(0.0, 1.0, size=(n, 2))
    ids = [f"{2301 + i // 99_999:04d}.{i % 99_999:05d}" for i in range(n)]
    days = rng.integers(0, 730, size=n)
    papers = pd.DataFrame(
        {
            "paper_id": ids,
            "title": [" ".join(words).capitalize() + f" {i}" for i, words in enumerate(rng.choice(vocab, size=(n, 7)))],
            "abstract": [" ".join(row) for row in sentences[rng.integers(0, len(sentences), size=(n, 8))]],
            "authors": ["; ".join(row) for row in people[rng.integers(0, len(people), size=(n, 3))]],
            "date": (pd.Timestamp("2023-01-01") + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d").tolist(),
            "url": [f"https://arxiv.org/abs/{pid}" for pid in ids],
            "links": [""] * n,
            "source": [f"data/listing-{i % 3}.jsonl" for i in range(n)],
            "label": [""] * n,
        },
        columns=list(PAPER_COLUMNS),
    )
    assignments = pd.DataFrame(
        {"paper_id": ids, "topic": topic_of, "score": rng.uniform(0.2, 0.9, size=n).round(4), "x": xy[:, 0],
         "y": xy[:, 1]}
    )  # fmt: skip
    ranked = assignments.sort_values(["topic", "score"], ascending=[True, False])
    members = ranked.groupby("topic")["paper_id"].apply(list).to_dict()
    rows = []
    for topic in range(-1, n_topics):
        if topic == -1:
            rows.append({"topic": -1, "name": "Outliers", "slug": "outliers", "size": len(members.get(-1, [])),
                         "keywords": [], "keyword_weights": [], "representative_ids": [], "x": np.nan, "y": np.nan,
                         "coarse_topic": -1, "coarse_name": "Outliers"})  # fmt: skip
            continue
        words = [str(w) for w in vocab[3 * topic : 3 * topic + 3]]
        keywords = [*words, *(str(w) for w in rng.choice(vocab, size=7))]
        group = topic % n_groups
        rows.append(
            {"topic": topic, "name": " ".join(words).capitalize(), "slug": "-".join(words),
             "size": len(members.get(topic, [])), "keywords": keywords,
             "keyword_weights": sorted(rng.uniform(0.05, 0.5, size=10).round(3).tolist(), reverse=True),
             "representative_ids": members.get(topic, [])[:4], "x": centres[topic + 1, 0], "y": centres[topic + 1, 1],
             "coarse_topic": group, "coarse_name": f"Group {group} {vocab[1900 + group]}"}
        )  # fmt: skip
    return papers, assignments, pd.DataFrame(rows), chain_hierarchy(list(range(n_topics)))


def chain_hierarchy(leaves: list[int]) -> pd.DataFrame:
    """A hierarchy that merges neighbouring groups pairwise until one root is left."""
    rows, level, next_id, distance = [], list(leaves), max(leaves) + 1, 0.1
    under = {leaf: [leaf] for leaf in leaves}
    while len(level) > 1:
        merged = []
        for i in range(0, len(level) - 1, 2):
            left, right = level[i], level[i + 1]
            under[next_id] = sorted(under[left] + under[right])
            rows.append({"parent_id": next_id, "parent_name": f"group of {len(under[next_id])}",
                         "child_left_id": left, "child_right_id": right, "distance": round(distance, 3),
                         "topics": under[next_id]})  # fmt: skip
            merged.append(next_id)
            next_id += 1
        if len(level) % 2:
            merged.append(level[-1])
        level, distance = merged, distance + 0.2
    return pd.DataFrame(rows, columns=list(HIERARCHY_COLUMNS))


def with_coarse(topics: pd.DataFrame) -> pd.DataFrame:
    """``make_tables`` topics with a coarse level: topics 0 and 1 form one group, 2 its own."""
    group = {-1: (-1, "Outliers"), 0: (10, "Learning <b>machines</b>"), 1: (10, "Learning <b>machines</b>"),
             2: (11, "Biology")}  # fmt: skip
    return topics.assign(
        coarse_topic=[group[int(t)][0] for t in topics["topic"]],
        coarse_name=[group[int(t)][1] for t in topics["topic"]],
    )


def make_hierarchy() -> pd.DataFrame:
    """Topics 0 and 1 merge first (into 3), then with 2 (into 4)."""
    return pd.DataFrame(
        [
            {"parent_id": 3, "parent_name": "Learning <i>all</i>", "child_left_id": 0, "child_right_id": 1,
             "distance": 0.4, "topics": [0, 1]},
            {"parent_id": 4, "parent_name": "Everything", "child_left_id": 3, "child_right_id": 2,
             "distance": 0.9, "topics": [0, 1, 2]},
        ]
    )  # fmt: skip


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return build()


# --------------------------------------------------------------------------- files


def test_every_expected_file_is_present(files):
    stems = ["00-graph-neural-networks", "01-language-models", "02-protein-folding", "outliers-unassigned"]
    expected = {"index.html", "map.html", "topics.html", "papers.csv", "topics.csv"}
    expected |= {f"topics/{stem}.{ext}" for stem in stems for ext in ("csv", "html")}
    assets = [path for path in files if path.startswith("assets/")]
    assert assets == [f"assets/plotly-{plotly.offline.get_plotlyjs_version()}.min.js"]
    assert set(files) - set(assets) == expected
    # papers.csv is its topics' CSV rows, written one after the other; every other file is bytes.
    assert isinstance(files["papers.csv"], JoinedBytes)
    assert all(isinstance(content, bytes) for path, content in files.items() if path != "papers.csv")
    assert files[assets[0]] == plotly.offline.get_plotlyjs().encode("utf-8")


def test_pages_load_plotly_from_the_local_asset_and_never_a_cdn(files):
    asset = next(path for path in files if path.startswith("assets/"))
    pages_ = html_pages(files)
    for path, page in pages_.items():
        assert "cdn" not in page.lower(), path
        assert not re.search(r"""<script[^>]*src=["']?(https?:)?//""", page, flags=re.IGNORECASE), path
        assert not re.search(r"""<link[^>]*href=["']?(https?:)?//""", page, flags=re.IGNORECASE), path
        assert "@import" not in page and "url(" not in page, path  # no web fonts, no remote CSS
    for path in ("map.html", "topics.html"):
        assert pages_[path].count(f'src="{asset}"') == 1, path
        assert len(pages_[path]) < 500_000, "plotly.js must not be inlined"
    # The overview and the topic pages draw their charts in HTML/SVG: no plotly.js to load.
    for path in ("index.html", "topics/00-graph-neural-networks.html"):
        assert "plotly" not in pages_[path].split("</head>")[0].lower(), path
        assert "<script src" not in pages_[path] and "<script charset" not in pages_[path], path


def test_every_page_has_a_csp_that_allows_only_its_own_scripts(files):
    for path, page in html_pages(files).items():
        policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
        assert policy, path
        directives = dict(part.strip().split(" ", 1) for part in policy.group(1).split(";"))
        assert directives["default-src"] == "'none'" and directives["connect-src"] == "'none'", path
        scripts = directives["script-src"].split()
        assert "'unsafe-inline'" not in scripts, path
        for body in inline_scripts(page):
            digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()
            assert f"'sha256-{digest}'" in scripts, path
        assert ("'self'" in scripts) == ("<script charset" in page), path  # only pages that load plotly.js


def test_input_text_is_escaped_in_every_page(files):
    pages_ = html_pages(files)
    for path, page in pages_.items():
        assert XSS_SCRIPT not in page, path
        assert XSS_IMG not in page, path
        assert "<b>no title</b>" not in page and "<i>markup</i>" not in page, path
    index = pages_["index.html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "&lt;img src=x onerror=alert(1)&gt;" in index
    assert "data/&lt;listing&gt;.html" in index
    assert "note with &lt;i&gt;markup&lt;/i&gt;" in index
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages_["topics/00-graph-neural-networks.html"]
    # In the map the title travels as JSON, with "<" and ">" written as \u003c / \u003e.
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in pages_["map.html"]
    assert map_points(pages_["map.html"])["title"].count(XSS_SCRIPT) == 1


def test_links_are_only_http(files):
    pages_ = html_pages(files)
    index = pages_["index.html"]
    hrefs = re.findall(r'href="([^"]*)"', index)
    assert "https://arxiv.org/abs/2501.00000" in hrefs
    assert not any(h.lower().startswith(("javascript", "data")) for h in hrefs)
    assert "javascript:" not in index  # the javascript: url of paper 1 is neither linked nor shown as link
    local = {h for h in hrefs if not h.startswith("https://")}
    stems = ["00-graph-neural-networks", "01-language-models", "02-protein-folding", "outliers-unassigned"]
    assert local == {"index.html", "index.html#topics", "map.html", "topics.html", "topics.csv", "papers.csv"} - {
        "index.html#topics"
    } | {f"topics/{stem}.{ext}" for stem in stems for ext in ("csv", "html")}
    for path, page in pages_.items():
        for href in re.findall(r'href="([^"]*)"', page):
            assert href.lower().startswith(("https://", "http://")) or ":" not in href, (path, href)
    # The map links papers through its data: only http(s) urls (or none) reach it.
    data = map_points(pages_["map.html"])
    urls = [data["urlPrefix"][i] + suffix for i, suffix in zip(data["urlIndex"], data["url"], strict=True)]
    assert urls.count("") == 1 and all(u == "" or u.startswith("https://arxiv.org/abs/") for u in urls)


def test_index_reports_counts_topics_and_settings(files):
    index = html_pages(files)["index.html"]
    assert "15.0%" in index  # 3 of 20 papers are outliers
    assert "Graph neural networks" in index and "message passing" in index
    assert "23 papers: UMAP n_neighbors lowered to 10" in index
    assert "hf-daily-papers" in index and "too short: 1" in index
    assert "<details>" in index and "&#34;seed&#34;: 42" in index
    assert "16.8" in index  # total seconds: 0.4 + 12.25 + 3.1 + 1.0
    assert "cs.CL (4), cs.LG (3)" in index  # known labels, since has_labels
    # config.representative_titles = 3: the 4th representative of topic 0 is not listed
    assert "Paper number 3<" not in index and "Paper number 7" in index
    assert len(re.findall(r'<tr data-href="topics/outliers-unassigned.html"[^>]*class="outliers"', index)) == 1
    assert "quality" not in index.lower()  # no metrics given: no quality cards


def test_index_topic_rows_link_to_their_pages_and_carry_sort_values(files):
    index = html_pages(files)["index.html"]
    rows = re.findall(r'<tr data-href="([^"]+)" tabindex="0"', index)
    assert rows == [f"topics/{s}.html" for s in ("00-graph-neural-networks", "01-language-models",
                                                 "02-protein-folding", "outliers-unassigned")]  # fmt: skip
    assert 'id="topic-table"' in index and 'id="topic-filter"' in index
    assert index.count('data-sort="num"') == 3 and index.count('data-sort="text"') == 1
    assert '<td class="num" data-value="7">7</td>' in index
    assert ">Trend<" not in index  # every paper has the same date: one period, no trend column
    assert "addEventListener('click'" in inline_scripts(index)[0]


def test_index_title_comes_from_config():
    index = build(config=make_config(title="My <reading> list"))["index.html"].decode()
    assert "<title>My &lt;reading&gt; list</title>" in index


def test_map_page_carries_safe_click_handler_and_ready_flag(files):
    page = html_pages(files)["map.html"]
    assert 'id="document-map"' in page and 'id="map-search"' in page and 'id="map-topic"' in page
    script = inline_scripts(page)[0]
    assert "plotly_click" in script and "window.open(url, '_blank', 'noopener,noreferrer')" in script
    assert "var HTTP = /^https?:\\/\\//i;" in script and "HTTP.test(url)" in script
    assert "textContent" in script and "innerHTML" not in script  # the hover card never parses HTML
    assert "data-ready" in script


def test_build_is_deterministic_and_created_changes_only_html():
    first, second = build(), build()
    assert first == second
    later = build(summary=make_summary(created="2026-02-02T00:00:00+00:00"))
    assert later["map.html"] != first["map.html"]  # the timestamp is shown in the header
    assert later["papers.csv"] == first["papers.csv"]


# --------------------------------------------------------------------------- map data


def test_map_data_has_one_point_per_paper_in_topic_slices(files):
    data = map_points(html_pages(files)["map.html"])
    papers, assignments, _ = make_tables()
    assert data["n"] == len(papers) == len(data["x"]) == len(data["y"]) == len(data["title"])
    assert [t["id"] for t in data["topics"]] == [-1, 0, 1, 2]  # outliers first: drawn underneath
    assert [(t["start"], t["end"]) for t in data["topics"]] == [(0, 3), (3, 10), (10, 16), (16, 20)]
    assert all(0 <= v <= data["grid"] for v in data["x"] + data["y"])
    topic_of_title = dict(zip(papers["title"], assignments["topic"], strict=True))
    for t in data["topics"]:
        assert {topic_of_title[title] for title in data["title"][t["start"] : t["end"]]} == {t["id"]}
    # Within a topic, best score first: paper 5 has the top score of topic 0.
    assert data["title"][3] == "Paper number 5"
    assert data["topics"][1]["page"] == "topics/00-graph-neural-networks.html"
    assert data["legend"] is True and data["topics"][0]["color"] == figures.OUTLIER_COLOR


def test_map_labels_are_escaped_for_plotly_and_coarse_only_with_a_coarse_level():
    papers, assignments, topics = make_tables()
    topics.loc[topics["topic"] == 2, "name"] = XSS_IMG
    plain = map_points(build(papers, assignments, topics)["map.html"].decode())
    assert plain["labels"]["coarse"] == []
    assert [label["text"] for label in plain["labels"]["fine"]][2] == "<b>&lt;img src=x onerror=alert(1)&gt;</b>"
    grouped = map_points(build(papers, assignments, with_coarse(topics))["map.html"].decode())
    coarse = grouped["labels"]["coarse"]
    assert [(c["group"], c["text"]) for c in coarse] == [(10, "<b>Learning &lt;b&gt;machines&lt;/b&gt;</b>"),
                                                         (11, "<b>Biology</b>")]  # fmt: skip
    assert [t["coarse"] for t in grouped["topics"]] == [-1, 10, 10, 11]


def test_map_abstracts_are_cut_and_shrink_to_fit_the_budget(monkeypatch):
    from pipeline.report import docmap

    page = build(config=make_config(hover_abstract_chars=50))["map.html"].decode()
    assert all(len(a) <= 50 and a.endswith("…") for a in map_abstracts(page))
    assert "To keep this page quick" not in page
    assert set(map_abstracts(build(config=make_config(hover_abstract_chars=0))["map.html"].decode())) == {""}
    # A budget too small for 240 characters per paper cuts the abstracts and says so on the page.
    used = docmap.json_bytes(map_points(page))  # the points without their abstracts
    monkeypatch.setattr(docmap, "MAP_BYTES_BUDGET", used + 20 * 104)  # room for 100 characters each
    page = build()["map.html"].decode()
    assert max(len(a) for a in map_abstracts(page)) == 100
    assert "To keep this page quick with 20 papers, the hover card shows the first" in page
    monkeypatch.setattr(docmap, "MAP_BYTES_BUDGET", 1_000)
    page = build()["map.html"].decode()
    assert set(map_abstracts(page)) == {""} and "shows no abstract" in page


def test_map_authors_are_cut_to_three_names():
    from pipeline.report.docmap import short_authors

    assert short_authors("A One; B Two; C Three; D Four") == "A One; B Two; C Three et al."
    assert short_authors("A One; B Two") == "A One; B Two"
    assert short_authors("") == ""


# --------------------------------------------------------------------------- dates, sources, hierarchy, metrics


@pytest.fixture(scope="module")
def rich_files() -> dict[str, bytes]:
    """A run with ISO dates over months, two sources, a coarse level, a hierarchy and metrics."""
    papers, assignments, topics = make_tables()
    months = ["2024-01-10", "2024-03-10", "2024-05-10", "2024-07-10"]  # over 120 days: per month
    # Topic 1 (papers 7-12) only appears in the last month: rising.
    papers["date"] = [months[3] if assignments["topic"][i] == 1 else months[i % 3] for i in range(len(papers))]
    papers.loc[0, "date"] = "Aug 12"  # a raw date: left out of the time charts
    papers["source"] = ["search-a.txt" if i % 2 else "search-b.txt" for i in range(len(papers))]
    metrics = {"n_topics": 3, "outlier_share": 0.15, "largest_topic_share": 0.35, "npmi": 0.1234, "diversity": 0.9,
               "nmi": None, "ami": None, "ari": None}  # fmt: skip
    return build_report(papers, assignments, with_coarse(topics), make_summary(), make_config(),
                        hierarchy=make_hierarchy(), metrics=metrics)  # fmt: skip


def test_coherence_card_warns_that_a_small_pile_reads_low():
    from pipeline.report.views import NPMI_FEW_PAPERS, _metric_cards

    def npmi_note(n_papers, value=-0.128):
        cards = _metric_cards({"npmi": value, "diversity": 0.9}, n_papers)
        return next(card["note"] for card in cards if card["label"] == "coherence (NPMI)")

    assert "With 64 papers" in npmi_note(64) and "compare runs of this pile" in npmi_note(64)
    assert "compare runs" not in npmi_note(NPMI_FEW_PAPERS)
    assert "above 0.1 is good" in npmi_note(75_000)
    assert npmi_note(64, None) == "could not be computed for this run"


def test_dashboard_shows_quality_figures_trends_rising_topics_and_sources(rich_files):
    index = rich_files["index.html"].decode()
    assert "coherence (NPMI)" in index and "0.123" in index and "keyword diversity" in index
    assert "35.0%" in index  # largest topic share
    assert index.count("could not be computed") == 3 * 2  # nmi, ami, ari are null (hint + tooltip)
    assert index.count('class="spark"') == 3 and ">Trend<" in index
    assert index.count("▲ rising</span>") == 1
    assert 'href="topics/01-language-models.html">1: Language models' in index  # in the rising list
    assert "latest 1 of 7 periods (per month: 2024-07)" in index
    assert "in Learning &lt;b&gt;machines&lt;/b&gt;" in index  # the coarse group under the topic name
    assert 'id="sources"' in index and "search-a.txt" in index and "search-b.txt" in index


def test_charts_page_has_time_hierarchy_and_source_sections(rich_files):
    page = rich_files["topics.html"].decode()
    for section in ("intertopic", "over-time", "hierarchy", "by-source", "keywords"):
        assert f'<section id="{section}">' in page, section
    assert "19 of 20 papers carry an ISO date" in page
    assert "Learning &lt;i&gt;all&lt;\\u002fi&gt;" in page  # a merge's name, escaped for plotly
    plain = build()["topics.html"].decode()
    assert '<section id="hierarchy">' not in plain and '<section id="by-source">' not in plain
    assert "No chart over time" in plain


def test_topic_page_lists_papers_best_first_with_neighbours_and_charts(rich_files):
    page = rich_files["topics/00-graph-neural-networks.html"].decode()
    titles = re.findall(r'<div class="paper-title">(?:<a [^>]*>)?([^<]*)<', page)
    assert titles[:3] == ["Paper number 5", "=HYPERLINK(&#34;http://evil.example&#34;,&#34;click&#34;)",
                          "Paper number 4"]  # fmt: skip
    assert len(titles) == 7
    assert '<a href="../topics/01-language-models.html">1: Language models</a>' in page
    assert page.count('<span class="bar" style="width:') == 4 and "width: 100.0%" in page  # a bar per keyword
    assert page.count("<rect ") == 7  # papers per month, January to July
    assert "2024-01: 2 papers" in page
    assert '<a href="00-graph-neural-networks.csv">' in page and 'href="../map.html#topic=0"' in page
    assert "› Learning &lt;b&gt;machines&lt;/b&gt;" in page
    assert ">search-a.txt<" in page
    assert "javascript:" not in page  # paper 1's url is not linked


def test_topic_page_lists_at_most_topic_page_papers():
    page = build(config=make_config(topic_page_papers=2))["topics/00-graph-neural-networks.html"].decode()
    assert page.count('<div class="paper-title">') == 2
    assert "The first 2 of 7 are listed" in page


def test_hierarchy_that_is_not_a_tree_over_the_topics_is_rejected():
    papers, assignments, topics = make_tables()
    bad = make_hierarchy()
    bad.loc[0, "child_left_id"] = 99
    with pytest.raises(ValueError, match="hierarchy names topic"):
        build_report(papers, assignments, topics, make_summary(), make_config(), hierarchy=bad)
    with pytest.raises(ValueError, match="lacks column"):
        build_report(papers, assignments, topics, make_summary(), make_config(),
                     hierarchy=make_hierarchy().drop(columns=["distance"]))  # fmt: skip


def test_synthetic_tables_build_a_report():
    papers, assignments, topics, hierarchy = make_synthetic_tables(600, seed=3)
    files = build_report(papers, assignments, topics, make_summary(), make_config(), hierarchy=hierarchy)
    data = map_points(files["map.html"].decode())
    assert data["n"] == 600 and len(data["labels"]["coarse"]) == 2
    assert len([p for p in files if p.startswith("topics/") and p.endswith(".html")]) == len(topics)
    assert '<section id="hierarchy">' in files["topics.html"].decode()


# --------------------------------------------------------------------------- figures


def test_intertopic_map_leaves_outliers_out_and_scales_bubbles():
    _, _, topics = make_tables()
    topics.loc[topics["topic"] == 1, "name"] = XSS_IMG
    fig = figures.intertopic_map(topics).to_dict()
    (trace,) = fig["data"]
    assert list(trace["text"]) == ["0", "1", "2"]
    assert values(trace["marker"]["size"]) == [7.0, 6.0, 4.0]
    assert trace["marker"]["sizemode"] == "area"
    assert "&lt;img src=x onerror=alert(1)&gt;" in trace["hovertext"][1]
    assert "message passing" in trace["hovertext"][0]


def test_barcharts_cap_at_the_largest_topics():
    rows = [
        {
            "topic": t,
            "name": f"topic {t}",
            "size": 100 - t,
            "keywords": [f"k{t}a", f"k{t}b"],
            "keyword_weights": [0.5, 0.25],
        }
        for t in range(30)
    ] + [{"topic": -1, "name": "Outliers", "size": 500, "keywords": [], "keyword_weights": []}]
    topics = pd.DataFrame(rows)
    shown = figures.barchart_topics(topics)
    assert list(shown["topic"]) == list(range(24))
    fig = figures.keyword_barcharts(shown).to_dict()
    assert len(fig["data"]) == 24
    # best keyword drawn on top: plotly draws the first y category at the bottom
    assert list(fig["data"][0]["y"]) == ["k0b", "k0a"] and list(fig["data"][0]["x"]) == [0.25, 0.5]


def test_topics_page_says_when_barcharts_are_capped():
    papers, assignments, _ = make_tables([t % 26 for t in range(52)])
    topics = pd.DataFrame(
        [
            {
                "topic": t,
                "name": f"Topic {t}",
                "slug": f"topic-{t}",
                "size": 2,
                "keywords": ["a", "b"],
                "keyword_weights": [0.2, 0.1],
                "representative_ids": [],
                "x": float(t),
                "y": 0.0,
            }
            for t in range(26)
        ]
    )
    page = build(papers, assignments, topics)["topics.html"].decode()
    assert "The 24 largest of 26 topics; every topic has its own page." in page
    assert "largest of" not in build()["topics.html"].decode()


# --------------------------------------------------------------------------- CSV


def test_papers_csv_has_every_paper_sorted_by_topic_then_score(files):
    table = read_csv(files["papers.csv"])
    assert len(table) == 20
    assert list(table.columns[:4]) == ["topic", "topic_name", "score", "paper_id"]
    topics_ = table["topic"].astype(int).tolist()
    assert topics_ == sorted(topics_)
    for _, group in table.groupby("topic"):
        scores = group["score"].astype(float).tolist()
        assert scores == sorted(scores, reverse=True)
    written = bytes(files["papers.csv"])
    assert written.endswith(b"\n") and b"\r\n" not in written


def test_formula_cells_are_neutralised_but_numbers_are_not(files):
    table = read_csv(files["papers.csv"])
    assert "'" + FORMULA in table["title"].tolist()
    assert FORMULA not in table["title"].tolist()
    assert table.loc[table["topic"] == "-1", "topic"].tolist() == ["-1"] * 3  # numeric -1 stays a number
    cells = ["-x", "@x", "\tx", "+1", "\rx", "=1+1", "plain", "a=b", None]
    table = csv_table(pd.DataFrame({"text": pd.Series(cells, dtype=object), "n": range(9)}), ["text"])
    assert table.column("text").to_pylist() == ["'-x", "'@x", "'\tx", "'+1", "'\rx", "'=1+1", "plain", "a=b", ""]
    assert table.column("n").to_pylist() == list(range(9))


def test_topic_csvs_hold_only_their_papers_best_first(files):
    _, assignments, _ = make_tables()
    for path, topic in [("topics/00-graph-neural-networks.csv", 0), ("topics/outliers-unassigned.csv", -1)]:
        table = read_csv(files[path])
        assert set(table["topic"].astype(int)) == {topic}
        assert set(table["paper_id"]) == set(assignments.loc[assignments["topic"] == topic, "paper_id"])
        scores = table["score"].astype(float).tolist()
        assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1


def test_topics_csv_has_one_row_per_topic(files):
    table = read_csv(files["topics.csv"])
    assert list(table.columns) == ["topic", "name", "size", "keywords", "representative_titles", "csv"]
    assert table["topic"].tolist() == ["-1", "0", "1", "2"]
    row = table[table["topic"] == "1"].iloc[0]
    assert row["keywords"] == "llm, token, prompt, transformer"
    assert row["representative_titles"] == "Paper number 7 | Paper number 8 | Paper number 9"
    assert row["csv"] == "topics/01-language-models.csv"
    assert set(table["csv"]) <= set(files)


def test_csvs_are_byte_identical_across_builds_and_input_order():
    papers, assignments, topics = make_tables()
    first = build(papers, assignments, topics)
    shuffled = build(papers, assignments.iloc[::-1].reset_index(drop=True), topics.iloc[::-1].reset_index(drop=True))
    csvs = [path for path in first if path.endswith(".csv")]
    assert len(csvs) == 6
    for path in csvs:
        assert first[path] == shuffled[path], path


def test_csvs_accept_parquet_style_array_columns():
    papers, assignments, topics = make_tables()
    for column in ("keywords", "keyword_weights", "representative_ids"):
        topics[column] = [np.array(v, dtype=object) for v in topics[column]]
    assert build(papers, assignments, topics)["topics.csv"] == build()["topics.csv"]


@pytest.mark.parametrize("slug", ["../escape", "a/b", "..", "Upper", "a.b"])
def test_unsafe_slugs_are_rejected(slug):
    papers, assignments, topics = make_tables()
    topics.loc[topics["topic"] == 1, "slug"] = slug
    with pytest.raises(ValueError, match="slug"):
        build(papers, assignments, topics)


def test_tables_that_break_the_contract_are_rejected():
    papers, assignments, topics = make_tables()
    with pytest.raises(ValueError, match="missing from the topics"):
        build(papers, assignments, topics[topics["topic"] != 2])
    with pytest.raises(ValueError, match="one row per paper"):
        build(papers, assignments.iloc[1:], topics)
    with pytest.raises(ValueError, match="lacks column"):
        build(papers.drop(columns=["abstract"]), assignments, topics)


# --------------------------------------------------------------------------- edge cases


def test_single_topic_without_outliers():
    papers, assignments, topics = make_tables([0] * 5)
    files = build(papers, assignments, topics)
    assert sorted(p for p in files if p.startswith("topics/")) == [
        "topics/00-graph-neural-networks.csv",
        "topics/00-graph-neural-networks.html",
    ]
    index = files["index.html"].decode()
    assert "0.0%" in index and '<tr class="outliers">' not in index
    assert 'id="intertopic-chart"' in files["topics.html"].decode()
    data = map_points(files["map.html"].decode())
    assert [(t["id"], t["start"], t["end"]) for t in data["topics"]] == [(0, 0, 5)]


def test_every_paper_an_outlier():
    papers, assignments, topics = make_tables([-1] * 6)
    files = build(papers, assignments, topics)
    assert sorted(p for p in files if p.startswith("topics/")) == [
        "topics/outliers-unassigned.csv",
        "topics/outliers-unassigned.html",
    ]
    assert "every paper is an outlier" in files["index.html"].decode()
    assert "100.0%" in files["index.html"].decode()
    topics_page = files["topics.html"].decode()
    assert "every paper is an outlier" in topics_page and 'id="intertopic-chart"' not in topics_page
    assert map_points(files["map.html"].decode())["labels"]["fine"] == []
    assert len(read_csv(files["papers.csv"])) == 6


def test_outlier_row_is_added_when_topics_table_lacks_it():
    papers, assignments, topics = make_tables()
    files = build(papers, assignments, topics[topics["topic"] != -1])
    table = read_csv(files["topics.csv"])
    assert table["topic"].tolist() == ["-1", "0", "1", "2"]
    assert table["name"].iloc[0] == OUTLIER_NAME  # the label stage's name, the same in every output
    assert "topics/outliers-unassigned.csv" in files
    index = files["index.html"].decode()
    assert re.search(r'<tr data-href="topics/outliers-unassigned.html"[^>]*>.*?' + re.escape(OUTLIER_NAME), index, re.S)


def test_one_paper():
    papers, assignments, topics = make_tables([0])
    files = build(papers, assignments, topics, summary=make_summary(stage_seconds={}, notes=[], inputs=[]))
    table = read_csv(files["topics/00-graph-neural-networks.csv"])
    assert table["paper_id"].tolist() == ["2501.00000"]
    assert XSS_SCRIPT not in files["map.html"].decode()
    assert "100.0%" in files["index.html"].decode()  # the one topic holds every paper


def test_topic_numbers_are_padded_to_sort():
    assert topic_csv_path(3, "x", topic_number_width([0, 3])) == "topics/03-x.csv"
    assert topic_csv_path(7, "x", topic_number_width([7, 120])) == "topics/007-x.csv"
    assert topic_csv_path(-1, "ignored", 2) == "topics/outliers-unassigned.csv"


def test_safe_url_accepts_only_plain_http():
    assert safe_url("https://arxiv.org/abs/1") == "https://arxiv.org/abs/1"
    assert safe_url(" HTTP://x.org ") == "HTTP://x.org"
    for bad in ("javascript:alert(1)", "data:text/html,x", "//x.org", "/rel", 'https://x.org/"onload=', None, 3):
        assert safe_url(bad) == ""


# --------------------------------------------------------------------------- forked topic pages


@pytest.mark.skipif(not fork_available(), reason="pages are built in a forked process on Linux only")
def test_pages_built_in_a_forked_process_are_the_same_files(files):
    papers, assignments, topics = make_tables()
    forked = build_report(papers, assignments, topics, make_summary(), make_config(), fork_min_papers=0)
    assert forked.keys() == files.keys()
    different = [path for path in files if forked[path] != files[path]]
    assert different == []


@pytest.mark.skipif(not fork_available(), reason="pages are built in a forked process on Linux only")
def test_an_error_in_the_forked_process_reaches_the_caller(monkeypatch):
    def broken(*args):
        raise ValueError("map template broke")

    monkeypatch.setattr(views, "map_page", broken)
    papers, assignments, topics = make_tables()
    with pytest.raises(ValueError, match="map template broke"):
        build_report(papers, assignments, topics, make_summary(), make_config(), fork_min_papers=0)


def test_a_forked_process_that_dies_is_an_error_not_a_hang():
    if not fork_available():
        pytest.skip("fork is Linux only here")

    def dies() -> dict:
        os._exit(3)

    with built_beside(dies, "fork") as result, pytest.raises(WorkerDiedError, match="exit code 3"):
        result()


def test_each_name_shows_how_many_of_its_papers_write_it():
    papers, assignments, topics = make_tables()
    topics = topics.assign(name_coverage=[0.62 if t == 0 else np.nan if t == -1 else 0.2 for t in topics["topic"]])
    files = build(papers, assignments, topics.assign(name_lift=5.0))
    index = files["index.html"].decode()
    assert index.count('class="muted small name-coverage"') == 3  # every topic but the outliers
    assert re.search(
        r'title="62% of the topic.s papers write “Graph neural networks” in their title or abstract">62%<', index
    )
    page = next(
        page.decode() for path, page in files.items() if path.startswith("topics/00-") and path.endswith("html")
    )
    assert "is written by 62% of them" in page
    assert (
        'class="muted small name-coverage"'
        not in build(papers, assignments, topics.drop(columns="name_coverage"))["index.html"].decode()
    )  # an older run without the audit: no coverage shown


def test_above_the_points_cap_the_map_draws_a_sample_and_the_rest_goes_to_a_search_file():
    papers, assignments, topics, _ = make_synthetic_tables(600, seed=3)
    files = build_report(papers, assignments, topics, make_summary(), make_config(), map_points_cap=150)
    data = map_points(files["map.html"].decode())
    assert data["n"] == 150 == len(data["x"]) == len(data["title"]) and data["total"] == 600
    assert data["restFile"] == "map-papers.js"
    # The density layer counts every paper, drawn or not.
    assert sum(c for row in data["density"]["z"] for c in row if c) == 600
    assert isinstance(files["map-papers.js"], JoinedBytes)  # written key by key, never joined in memory
    text = bytes(files["map-papers.js"]).decode()
    assert text.startswith("window.papertopicsMapRest = ")
    rest = json.loads(text.removeprefix("window.papertopicsMapRest = ").rstrip().removesuffix(";"))
    assert rest["n"] == 450 == len(rest["title"]) == len(rest["x"]) == len(rest["topicIndex"])
    # Every paper is drawn or in the file, once; the topic slices hold the drawn papers' topics.
    assert sorted(data["id"] + rest["id"]) == sorted(papers["paper_id"].astype(str))
    topic_of = dict(zip(papers["paper_id"].astype(str), assignments["topic"], strict=True))
    for k, t in enumerate(data["topics"]):
        assert {topic_of[i] for i in data["id"][t["start"] : t["end"]]} <= {t["id"]}
        in_topic = [i for i, index in zip(rest["id"], rest["topicIndex"], strict=True) if index == k]
        assert all(topic_of[i] == t["id"] for i in in_topic)
    # The legend counts every paper of a topic, not the drawn ones.
    assert sum(int(t["legend"].rsplit("(", 1)[1].rstrip(")")) for t in data["topics"]) == 600
    # Under the cap: every paper drawn, no file, no density.
    whole = build_report(papers, assignments, topics, make_summary(), make_config(), map_points_cap=600)
    assert "map-papers.js" not in whole and map_points(whole["map.html"].decode())["n"] == 600
    assert map_points(whole["map.html"].decode())["density"] is None


def test_the_search_file_holds_the_undrawn_papers_in_topic_then_score_then_id_order():
    from pipeline.report.docmap import drawn_rows

    papers, assignments, topics, _ = make_synthetic_tables(500, seed=5)
    # Ties on score within a topic: the paper id decides, as in the map's topic slices.
    assignments["score"] = np.round(assignments["score"].to_numpy(), 1)
    papers.loc[7, "title"] = "A <b>bold</b> & wide title"  # escaped in the script
    files = build_report(papers, assignments, topics, make_summary(), make_config(), map_points_cap=120)
    text = bytes(files["map-papers.js"]).decode()
    assert "<" not in text and "&" not in text
    rest = json.loads(text.removeprefix("window.papertopicsMapRest = ").rstrip().removesuffix(";"))
    # The reference: the whole table sorted (outliers first, then topic, best score first, then id).
    table = papers.merge(assignments, on="paper_id")
    table["rank"] = np.where(table["topic"] == -1, -1, table["topic"])
    table = table.sort_values(["rank", "score", "paper_id"], ascending=[True, False, True], kind="mergesort")
    undrawn = table.iloc[np.setdiff1d(np.arange(len(table)), drawn_rows(len(table), 120))]
    assert rest["id"] == undrawn["paper_id"].tolist()
    assert rest["title"] == undrawn["title"].tolist()
    assert rest["date"] == undrawn["date"].tolist()
    prefix = "https://arxiv.org/abs/"
    assert [prefix + suffix for suffix in rest["url"]] == undrawn["url"].tolist()
    data = map_points(files["map.html"].decode())
    drawn = table.iloc[drawn_rows(len(table), 120)]
    assert data["id"] == drawn["paper_id"].tolist() and data["title"] == drawn["title"].tolist()


def test_script_json_object_parts_are_script_json_of_the_object_made_one_value_at_a_time():
    from pipeline.report.docmap import script_json_object_parts
    from pipeline.report.pages import script_json

    value = {"n": 3, "title": ["<script>&", "caf\u00e9 \u2028 \u2029", 'a "quote" \\ back'], "x": [1, -2, 30000],
             "nested": {"a": [None, True, 1.5]}, "empty": []}  # fmt: skip
    made: list[str] = []

    def maker(key: str):
        def make():
            made.append(key)
            return value[key]

        return make

    parts = script_json_object_parts([(key, maker(key)) for key in value])
    assert next(parts) == b"{" and made == []
    next(parts)
    assert made == ["n"]  # the next value is not made before its part is asked for
    rest = list(parts)
    assert made == list(value)
    joined = b"{" + script_json({"n": 3})[1:-1].encode() + b"".join(rest)
    assert joined == str(script_json(value)).encode("utf-8")
    assert json.loads(joined) == value
    assert b"".join(script_json_object_parts([])) == b"{}" == str(script_json({})).encode()


def test_papers_csv_is_its_topics_csv_rows_by_reference_and_is_written_whole(files, tmp_path):
    papers = files["papers.csv"]
    assert isinstance(papers, JoinedBytes)
    header, *rows = papers.parts
    topic_files = [files[path] for path in sorted(files) if path.startswith("topics/") and path.endswith(".csv")]
    # Each part after the header is a view of one topic's CSV (its rows), not a copy of it.
    assert all(isinstance(part, memoryview) and any(part.obj is data for data in topic_files) for part in rows)
    assert sorted(bytes(part) for part in rows) == sorted(data[len(header) :] for data in topic_files if data != header)
    assert bytes(papers) == header + b"".join(rows)  # in topic order (checked above)
    assert len(papers) == len(bytes(papers))
    atomic_write_bytes(tmp_path / "papers.csv", papers)
    assert (tmp_path / "papers.csv").read_bytes() == bytes(papers)


def test_each_topics_known_labels_are_its_most_common_first_ties_by_label():
    from pipeline.report.views import _top_labels

    topic_of = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, -1, 2])
    labels = pd.Series(["cs.LG", "cs.AI", "cs.AI", "cs.CL", "cs.LG", "", "cs.CV", "", "cs.RO", "cs.RO", "cs.IR", ""],
                       dtype="string")  # fmt: skip
    assert _top_labels(topic_of, labels) == {0: "cs.AI (2), cs.LG (2), cs.CL (1)", 1: "cs.RO (2)", -1: "cs.IR (1)"}
    assert _top_labels(topic_of, labels, n=1)[0] == "cs.AI (2)"
