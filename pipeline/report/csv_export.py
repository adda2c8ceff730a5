"""The CSV files of a report: every paper, every topic, and one file per topic.

Files are bytes (UTF-8, LF line endings) in a fixed row and column order, so the
same tables always give byte-identical files. Text cells that a spreadsheet would read
as a formula are neutralised (OWASP "CSV injection"): a leading ', as Excel and
LibreOffice both show the rest of the cell as plain text.
"""

from __future__ import annotations

import re

import pandas as pd

from pipeline.schema import OUTLIER_TOPIC

OUTLIER_CSV_STEM = "outliers-unassigned"
TOPICS_DIR = "topics"
PAPER_CSV_COLUMNS = (
    "topic",
    "topic_name",
    "score",
    "paper_id",
    "title",
    "authors",
    "date",
    "url",
    "links",
    "label",
    "source",
    "abstract",
)
TOPIC_CSV_COLUMNS = ("topic", "name", "size", "keywords", "representative_titles", "csv")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_SLUG = re.compile(r"[a-z0-9-]{0,80}")


def check_slug(topic: int, slug: object) -> str:
    """``slug`` if it can be part of a file name, else ValueError naming the topic.

    The label stage promises ``[a-z0-9-]``; this is the last line of defence before the
    slug becomes a path, so "/" and ".." can never climb out of ``topics/``.
    """
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug) or "/" in slug or ".." in slug:
        raise ValueError(f"topic {topic}: slug {slug!r} is not [a-z0-9-] (at most 80 characters)")
    return slug


def topic_csv_path(topic: int, slug: str, width: int = 2) -> str:
    """Where a topic's CSV goes in the report, e.g. ``topics/03-graph-neural-networks.csv``.

    ``width`` pads the topic number so that file listings sort in topic order.
    """
    if topic == OUTLIER_TOPIC:
        return f"{TOPICS_DIR}/{OUTLIER_CSV_STEM}.csv"
    slug = check_slug(topic, slug)
    number = f"{topic:0{width}d}"
    return f"{TOPICS_DIR}/{number}-{slug}.csv" if slug else f"{TOPICS_DIR}/{number}.csv"


def topic_number_width(topic_ids: list[int]) -> int:
    """Digits needed to zero-pad the largest topic number (at least 2)."""
    return max([2, *(len(str(t)) for t in topic_ids if t >= 0)])


def neutralise(value: str) -> str:
    """Prefix a quote to a cell a spreadsheet would evaluate (=, +, -, @, tab, CR)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _neutralised(table: pd.DataFrame, text_columns: list[str]) -> pd.DataFrame:
    """``table`` with its text columns as str ("" for missing) and formula cells neutralised."""
    table = table.copy()
    for column in text_columns:
        values = table[column].astype(object).where(table[column].notna(), "").astype(str)
        table[column] = values.mask(values.str.startswith(_FORMULA_STARTS), "'" + values)
    return table


def _to_csv(table: pd.DataFrame) -> bytes:
    return table.to_csv(index=False, lineterminator="\n", float_format="%.4f").encode("utf-8")


def sort_papers(joined: pd.DataFrame) -> pd.DataFrame:
    """Topic ascending, then score descending (best first), then paper id for ties."""
    return joined.sort_values(
        ["topic", "score", "paper_id"], ascending=[True, False, True], kind="mergesort", na_position="last"
    )


def paper_csvs(joined: pd.DataFrame, csv_paths: dict[int, str]) -> tuple[bytes, dict[str, bytes]]:
    """``papers.csv`` (every paper with its topic, topic name and score) and one CSV per topic.

    ``joined`` has the papers columns plus topic (int), topic_name (str), score (float);
    ``csv_paths`` maps a topic to its CSV's relative path. papers.csv is sorted by topic, so
    it is the topics' CSVs put end to end under one header: each row is formatted once
    (75,000 rows: 3 s instead of 6).
    """
    rows = _paper_rows(joined)
    header = _to_csv(rows.iloc[:0])
    blocks = {int(topic): _to_csv(group)[len(header) :] for topic, group in rows.groupby("topic", sort=True)}
    papers = header + b"".join(blocks.values())
    return papers, {path: header + blocks.get(topic, b"") for topic, path in sorted(csv_paths.items())}


def _paper_rows(joined: pd.DataFrame) -> pd.DataFrame:
    table = sort_papers(joined).loc[:, list(PAPER_CSV_COLUMNS)]
    return _neutralised(table, [c for c in PAPER_CSV_COLUMNS if c not in ("topic", "score")])


def topics_csv(topic_rows: pd.DataFrame) -> bytes:
    """``topics.csv``: one row per topic.

    ``topic_rows`` has columns topic, name, size, keywords (list of str),
    representative_titles (list of str) and csv (relative path), in the order to write.
    """
    table = pd.DataFrame(
        {
            "topic": topic_rows["topic"].astype(int).to_numpy(),
            "name": topic_rows["name"].to_numpy(),
            "size": topic_rows["size"].astype(int).to_numpy(),
            "keywords": [", ".join(map(str, k)) for k in topic_rows["keywords"]],
            "representative_titles": [" | ".join(map(str, t)) for t in topic_rows["representative_titles"]],
            "csv": topic_rows["csv"].to_numpy(),
        }
    )
    return _to_csv(_neutralised(table, ["name", "keywords", "representative_titles", "csv"]))
