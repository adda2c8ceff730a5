"""Report stage: files, escaping, links, figures, CSVs and edge cases, on in-memory tables."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import plotly.offline
import pytest

from pipeline.config import ReportConfig
from pipeline.report import build_report, figures, join_tables
from pipeline.report.csv_export import neutralise, topic_csv_path, topic_number_width
from pipeline.report.text import safe_url
from pipeline.schema import PAPER_COLUMNS

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


def read_csv(content: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False)


def joined_points() -> pd.DataFrame:
    papers, assignments, topics = make_tables()
    joined = join_tables(papers, assignments, topics)
    return joined.loc[:, ["x", "y", "topic", "topic_name", "title", "abstract", "url"]]


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return build()


# --------------------------------------------------------------------------- files


def test_every_expected_file_is_present(files):
    expected = {
        "index.html",
        "map.html",
        "topics.html",
        "papers.csv",
        "topics.csv",
        "topics/00-graph-neural-networks.csv",
        "topics/01-language-models.csv",
        "topics/02-protein-folding.csv",
        "topics/outliers-unassigned.csv",
    }
    assets = [path for path in files if path.startswith("assets/")]
    assert assets == [f"assets/plotly-{plotly.offline.get_plotlyjs_version()}.min.js"]
    assert set(files) - set(assets) == expected
    assert all(isinstance(content, bytes) for content in files.values())
    assert files[assets[0]] == plotly.offline.get_plotlyjs().encode("utf-8")


def test_pages_load_plotly_from_the_local_asset_and_never_a_cdn(files):
    asset = next(path for path in files if path.startswith("assets/"))
    for path, page in html_pages(files).items():
        assert "cdn" not in page.lower(), path
        assert not re.search(r"""<script[^>]*src=["']?(https?:)?//""", page, flags=re.IGNORECASE), path
        assert not re.search(r"""<link[^>]*href=["']?(https?:)?//""", page, flags=re.IGNORECASE), path
    pages_ = html_pages(files)
    for path in ("map.html", "topics.html"):
        assert pages_[path].count(f'src="{asset}"') == 1, path
        assert len(pages_[path]) < 500_000, "plotly.js must not be inlined"
    assert "<script" not in pages_["index.html"].split("</head>")[1]


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
    # In the map the title travels as JSON; plotly writes "<" as \u003c and we pre-escape it.
    assert "&lt;script&gt;alert(1)&lt;\\u002fscript&gt;" in pages_["map.html"]


def test_links_are_only_http(files):
    index = html_pages(files)["index.html"]
    hrefs = re.findall(r'href="([^"]*)"', index)
    assert "https://arxiv.org/abs/2501.00000" in hrefs
    assert not any(h.lower().startswith(("javascript", "data")) for h in hrefs)
    assert "javascript:" not in index  # the javascript: url of paper 1 is neither linked nor shown as link
    local = [h for h in hrefs if not h.startswith("https://")]
    assert set(local) == {
        "index.html",
        "map.html",
        "topics.html",
        "topics.csv",
        "papers.csv",
        "topics/00-graph-neural-networks.csv",
        "topics/01-language-models.csv",
        "topics/02-protein-folding.csv",
        "topics/outliers-unassigned.csv",
    }


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
    assert index.count('<tr class="outliers">') == 1


def test_index_title_comes_from_config():
    index = build(config=make_config(title="My <reading> list"))["index.html"].decode()
    assert "<title>My &lt;reading&gt; list</title>" in index


def test_map_page_has_fixed_div_id_and_safe_click_handler(files):
    page = html_pages(files)["map.html"]
    assert 'id="document-map"' in page
    assert "plotly_click" in page and "window.open" in page
    assert "/^https?:\\/\\//i.test(url)" in page


def test_build_is_deterministic_and_created_changes_only_html():
    first, second = build(), build()
    assert first == second
    later = build(summary=make_summary(created="2026-02-02T00:00:00+00:00"))
    assert later["map.html"] != first["map.html"]  # the timestamp is shown in the header
    assert later["papers.csv"] == first["papers.csv"]


# --------------------------------------------------------------------------- figures


def test_document_map_has_one_trace_per_topic_with_every_paper():
    points = joined_points()
    fig = figures.document_map(points, hover_abstract_chars=50).to_dict()
    traces = fig["data"]
    assert [t["type"] for t in traces] == ["scattergl"] * 4
    assert len(traces) == points["topic"].nunique()
    assert sum(len(values(t["x"])) for t in traces) == len(points)
    assert traces[0]["name"].startswith("Outliers") and traces[0]["marker"]["color"] == figures.OUTLIER_COLOR
    assert len({t["marker"]["color"] for t in traces}) == 4
    names = [a["text"] for a in fig["layout"]["annotations"]]
    assert names == ["<b>Graph neural networks</b>", "<b>Language models</b>", "<b>Protein folding</b>"]
    graph = points[points["topic"] == 0]
    first = fig["layout"]["annotations"][0]
    assert (first["x"], first["y"]) == (graph["x"].median(), graph["y"].median())


def test_document_map_hover_is_escaped_and_abstract_cut():
    points = joined_points()
    fig = figures.document_map(points, hover_abstract_chars=50).to_dict()
    hover = [h for t in fig["data"] for h in t["hovertext"]]
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in h for h in hover)
    assert not any("<script" in h or "<img" in h for h in hover)
    sample = next(h for h in hover if "Paper number 5" in h)
    assert "Graph neural networks" in sample
    assert "Abstract 5 word" in sample and "&lt;b&gt;bold" not in sample and "…" in sample
    no_abstract = figures.document_map(points, hover_abstract_chars=0).to_dict()
    assert not any("Abstract" in h for t in no_abstract["data"] for h in t["hovertext"])


def test_document_map_click_urls_are_http_only():
    fig = figures.document_map(joined_points(), hover_abstract_chars=10).to_dict()
    urls = [u for t in fig["data"] for u in t["customdata"]]
    assert "" in urls  # paper 1 has a javascript: url
    assert all(u == "" or u.startswith("https://arxiv.org/abs/") for u in urls)
    assert sum(u == "" for u in urls) == 1


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
    assert "Showing the 24 largest of 26 topics" in page
    assert "Showing the" not in build()["topics.html"].decode()


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
    assert files["papers.csv"].endswith(b"\n") and b"\r\n" not in files["papers.csv"]


def test_formula_cells_are_neutralised_but_numbers_are_not(files):
    table = read_csv(files["papers.csv"])
    assert "'" + FORMULA in table["title"].tolist()
    assert FORMULA not in table["title"].tolist()
    assert table.loc[table["topic"] == "-1", "topic"].tolist() == ["-1"] * 3  # numeric -1 stays a number
    assert neutralise("-x") == "'-x" and neutralise("@x") == "'@x" and neutralise("\tx") == "'\tx"
    assert neutralise("+1") == "'+1" and neutralise("\rx") == "'\rx" and neutralise("plain") == "plain"


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
    assert sorted(p for p in files if p.startswith("topics/")) == ["topics/00-graph-neural-networks.csv"]
    index = files["index.html"].decode()
    assert "0.0%" in index and '<tr class="outliers">' not in index
    assert 'id="intertopic-map"' in files["topics.html"].decode()
    traces = figures.document_map(join_tables(papers, assignments, topics), 20).to_dict()["data"]
    assert len(traces) == 1 and len(values(traces[0]["x"])) == 5


def test_every_paper_an_outlier():
    papers, assignments, topics = make_tables([-1] * 6)
    files = build(papers, assignments, topics)
    assert sorted(p for p in files if p.startswith("topics/")) == ["topics/outliers-unassigned.csv"]
    assert "every paper is an outlier" in files["index.html"].decode()
    assert "100.0%" in files["index.html"].decode()
    topics_page = files["topics.html"].decode()
    assert "every paper is an outlier" in topics_page and 'id="intertopic-map"' not in topics_page
    assert len(read_csv(files["papers.csv"])) == 6


def test_outlier_row_is_added_when_topics_table_lacks_it():
    papers, assignments, topics = make_tables()
    files = build(papers, assignments, topics[topics["topic"] != -1])
    assert read_csv(files["topics.csv"])["topic"].tolist() == ["-1", "0", "1", "2"]
    assert "topics/outliers-unassigned.csv" in files


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
