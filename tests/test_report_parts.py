"""The report's derived tables: topics over time, rising topics, neighbours, sources, hierarchy layout."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_report import chain_hierarchy, make_hierarchy, make_tables, with_coarse

from pipeline.report.hierarchy import dendrogram
from pipeline.report.tables import (
    OTHER_SOURCES,
    has_coarse_level,
    join_tables,
    nearest_topics,
    prepare_topics,
    source_names,
    source_split,
)
from pipeline.report.text import shorten
from pipeline.report.timeline import bar_chart, build_timeline, choose_period, iso_dates, sparkline, trends

# --------------------------------------------------------------------------- shortened text


def shorten_whole(text: str, max_chars: int) -> str:
    """What shorten promises, done the slow way: collapse all white space, then cut."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    return text[: max(max_chars - 1, 0)].rstrip() + "…" if max_chars > 0 else ""


@given(
    st.lists(st.sampled_from(["word", "a", " ", "  ", "\n", "\t", "x" * 30, "é"]), max_size=120).map("".join),
    st.integers(min_value=0, max_value=40),
)
def test_shorten_reads_only_a_prefix_but_cuts_like_the_whole_text(text, max_chars):
    assert shorten(text, max_chars) == shorten_whole(text, max_chars)


def test_shorten_looks_past_the_prefix_when_white_space_hides_the_length():
    # The first 2 * 10 + 64 characters collapse to one short word; the cut must still see the rest.
    text = "start" + " " * 200 + "end of a long text"
    assert shorten(text, 10) == "start end…"
    assert shorten("  many   spaces  ", 20) == "many spaces"


# --------------------------------------------------------------------------- dates and periods


def test_only_iso_dates_count():
    stamps, month_only = iso_dates(pd.Series(["2024-03-05", "2024-03", "Aug 12", "", "2024-13-01", "2024-02-30"]))
    assert stamps.iloc[0] == pd.Timestamp("2024-03-05") and stamps.iloc[1] == pd.Timestamp("2024-03-01")
    assert stamps.iloc[2:].isna().all()  # raw page date, empty, month 13, 30 February
    assert month_only
    assert iso_dates(pd.Series(["2024-03-05"]))[1] is False


@pytest.mark.parametrize(
    ("first", "last", "month_only", "period"),
    [
        ("2024-03-01", "2024-03-15", False, "day"),
        ("2024-03-01", "2024-04-20", False, "week"),
        ("2024-03-01", "2024-09-01", False, "month"),
        ("2024-03-01", "2024-03-15", True, "month"),  # a month-only date cannot go finer
        ("2010-01-01", "2024-01-01", False, "year"),
    ],
)
def test_period_follows_the_span(first, last, month_only, period):
    assert choose_period(pd.Series(pd.to_datetime([first, last])), month_only) == period


def test_timeline_counts_every_period_including_empty_ones():
    dates = pd.Series(["2024-01-05", "2024-01-20", "2024-04-02", "2024-06-30", "Aug 12"])
    topic_of = pd.Series([0, 1, 0, -1, 1])
    timeline = build_timeline(dates, topic_of, [-1, 0, 1, 2])
    assert timeline is not None and timeline.period == "month"
    assert timeline.periods == ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]
    assert timeline.counts.loc[0].tolist() == [1, 0, 0, 1, 0, 0]
    assert timeline.counts.loc[2].tolist() == [0] * 6  # a topic without dated papers keeps its row
    assert timeline.totals.tolist() == [2, 0, 0, 1, 0, 1]
    assert (timeline.n_dated, timeline.n_papers) == (4, 5)
    shares = timeline.shares()
    assert shares.loc[0, "2024-01"] == 0.5 and shares.loc[0, "2024-02"] == 0.0  # empty period: 0, not NaN


def test_week_periods_are_named_by_their_monday():
    timeline = build_timeline(pd.Series(["2024-03-06", "2024-04-10"]), pd.Series([0, 0]), [0])
    assert timeline.period == "week"
    assert timeline.periods[0] == "2024-03-04" and timeline.periods[-1] == "2024-04-08"
    assert len(timeline.periods) == 6


def test_no_timeline_without_two_periods():
    assert build_timeline(pd.Series(["Aug 12", "Mar 11"]), pd.Series([0, 1]), [0, 1]) is None
    assert build_timeline(pd.Series(["2024-03-06", "2024-03-06"]), pd.Series([0, 1]), [0, 1]) is None


def test_rising_needs_a_larger_recent_share_and_enough_papers():
    # 8 monthly periods; the recent window is the last 2. Topic 0 steady, topic 1 grows, topic 2 grows but small.
    rows = []
    for month in range(1, 9):
        rows += [(f"2024-{month:02d}-01", 0)] * 4
        rows += [(f"2024-{month:02d}-01", 1)] * (1 if month <= 6 else 4)
        rows += [(f"2024-{month:02d}-01", 2)] * (1 if month == 8 else 0)
        rows += [(f"2024-{month:02d}-01", -1)]
    dates, topic_of = pd.Series([r[0] for r in rows]), pd.Series([r[1] for r in rows])
    timeline = build_timeline(dates, topic_of, [-1, 0, 1, 2])
    assert timeline.recent_periods == ["2024-07", "2024-08"]
    result = trends(timeline)
    assert set(result) == {0, 1, 2}  # outliers have no trend
    assert result[1].rising and not result[0].rising
    assert not result[2].rising  # its share grew from 0, but 1 paper is too few
    assert math.isclose(result[1].recent_share, 8 / 19) and math.isclose(result[1].earlier_share, 6 / 36)
    assert result[1].change == pytest.approx(100 * (8 / 19 - 6 / 36))


def test_sparkline_and_bar_chart_scale_into_their_box():
    points = [tuple(map(float, p.split(","))) for p in sparkline([0.0, 0.5, 1.0], width=96, height=22).split()]
    assert points == [(1.0, 21.0), (48.0, 11.0), (95.0, 1.0)]
    assert sparkline([]) == ""
    bars = bar_chart(["a", "b"], [1, 4], width=100, height=40)
    assert [(b["label"], b["h"], b["y"]) for b in bars] == [("a", "10.0", "30.0"), ("b", "40.0", "0.0")]


# --------------------------------------------------------------------------- topics table


def test_prepare_topics_without_coarse_columns_gives_each_topic_its_own_group():
    _, assignments, topics = make_tables()
    prepared = prepare_topics(topics, assignments)
    real = prepared[prepared["topic"] >= 0]
    assert real["coarse_topic"].nunique() == 3 and not has_coarse_level(prepared)
    assert real["coarse_name"].tolist() == real["name"].tolist()
    grouped = prepare_topics(with_coarse(topics), assignments)
    assert has_coarse_level(grouped)
    assert grouped.set_index("topic").loc[1, "coarse_name"] == "Learning <b>machines</b>"
    one_group = with_coarse(topics).assign(coarse_topic=[-1, 5, 5, 5])
    assert not has_coarse_level(prepare_topics(one_group, assignments))  # a single group says nothing


def test_prepare_topics_accepts_missing_coarse_names_and_parquet_nulls():
    _, assignments, topics = make_tables()
    topics = with_coarse(topics)
    topics["coarse_name"] = [None, None, "Learning", None]
    topics["keywords"] = [None, np.array(["graph"]), ["llm"], ["protein"]]
    prepared = prepare_topics(topics, assignments).set_index("topic")
    assert prepared.loc[0, "coarse_name"] == "Graph neural networks"  # falls back to the topic's own name
    assert prepared.loc[-1, "keywords"] == [] and prepared.loc[0, "keywords"] == ["graph"]


def test_nearest_topics_by_map_distance_then_by_keywords():
    _, assignments, topics = make_tables()
    prepared = prepare_topics(topics, assignments)
    near = nearest_topics(prepared, k=2)
    assert set(near) == {0, 1, 2}
    # Topic 0 sits at (0, 0), topic 1 at (10, 0), topic 2 at (0, 10): a tie broken by the lower id.
    assert [n.topic for n in near[0]] == [1, 2] and near[0][0].distance == 10.0
    assert [n.topic for n in near[1]] == [0, 2]
    prepared.loc[prepared["topic"] == 2, "x"] = float("nan")
    prepared["keywords"] = [[], ["a", "b", "c"], ["x", "y"], ["a", "b", "z"]]
    by_words = nearest_topics(prepared, k=1)
    assert by_words[0][0].topic == 2 and by_words[0][0].distance is None
    assert by_words[0][0].shared_keywords == ("a", "b")


def test_source_split_only_with_several_sources_and_caps_their_number():
    papers, assignments, topics = make_tables()
    joined = join_tables(papers, assignments, prepare_topics(topics, assignments))
    assert source_split(joined) is None
    joined["source"] = [f"in/{i % 5}/page.txt" for i in range(len(joined))]
    split = source_split(joined, max_sources=3)
    assert list(split.index)[-1] == OTHER_SOURCES and len(split) == 3
    assert int(split.to_numpy().sum()) == len(joined)
    assert list(split.columns) == [-1, 0, 1, 2]
    assert source_names(pd.Series(["a/x.txt", "b/x.txt", "c/y.txt"])) == {
        "a/x.txt": "a/x.txt", "b/x.txt": "b/x.txt", "c/y.txt": "y.txt"
    }  # fmt: skip


# --------------------------------------------------------------------------- hierarchy


def test_dendrogram_places_leaves_in_rows_and_merges_at_their_distance():
    tree = dendrogram(make_hierarchy(), [0, 1, 2])
    assert tree.leaves == [0, 1, 2]
    assert [(m.node, m.distance, m.row, m.topics) for m in tree.merges] == [
        (3, 0.4, 0.5, (0, 1)),
        (4, 0.9, 1.25, (0, 1, 2)),
    ]
    # Each merge draws a bracket: child row -> merge distance -> other child row, then a break.
    assert tree.xs[:5] == [0.0, 0.4, 0.4, 0.0, None] and tree.ys[:5] == [0.0, 0.0, 1.0, 1.0, None]
    assert dendrogram(None, [0, 1]) is None and dendrogram(make_hierarchy().iloc[:0], [0, 1]) is None


def test_dendrogram_of_a_large_tree_lists_every_topic_once():
    leaves = list(range(150))
    tree = dendrogram(chain_hierarchy(leaves), [*leaves, 150])  # topic 150 is not in the hierarchy
    assert sorted(tree.leaves) == [*leaves, 150] and len(tree.merges) == 149
    assert tree.leaves[-1] == 150


def test_dendrogram_rejects_a_node_with_two_parents():
    bad = make_hierarchy()
    bad.loc[1, "child_right_id"] = 1  # topic 1 under both merges
    with pytest.raises(ValueError, match="two parents"):
        dendrogram(bad, [0, 1, 2])


def test_pair_counts_equal_pandas_crosstab_with_missing_values_strings_and_ints():
    from pipeline.report.timeline import pair_counts

    rng = np.random.default_rng(3)
    topics = pd.Series(rng.integers(-1, 6, size=400), name="topic")
    sources = pd.Series(rng.choice(["b.jsonl", "a.jsonl", "c/d.txt"], size=400), name="source", dtype="str")
    sources[rng.random(400) < 0.1] = None  # missing: left out, as crosstab leaves them out
    periods = pd.Series(rng.choice(["2024-02", "2024-01", "2023-12"], size=400), name="period", dtype="str")
    for rows, columns in ((sources, topics), (topics, periods), (topics, sources)):
        expected = pd.crosstab(rows, columns)
        found = pair_counts(rows, columns)
        pd.testing.assert_frame_equal(found, expected)
        assert int(found.to_numpy().sum()) == int((rows.notna() & columns.notna()).sum())
