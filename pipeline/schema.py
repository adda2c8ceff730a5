"""The tables passed between stages, written down once.

papers (output of parse), one row per unique paper, all columns strings ("" when unknown):
    paper_id   arXiv id without version ("2503.11731", "hep-th/9901001"), else the input's
               own id, else "t-" + a hash of the normalised title
    title, abstract
    authors    "; "-joined author names
    date       ISO "YYYY-MM-DD" or "YYYY-MM" when known; a page's raw date ("Aug 12") otherwise
    url        the paper's page (arXiv abs url), or a search link when the input has no id
    links      space-separated code/project urls pulled out of the abstract
    source     the input file the paper was first read from
    label      a known class (arXiv primary category, newsgroup, BBC section) or ""

assignments (output of cluster + label), one row per paper in papers' order:
    paper_id, topic (int, -1 = outlier), score (float: cosine to the topic centroid),
    x, y (float: 2-D map layout)

topics (output of label), one row per topic including -1 when there are outliers:
    topic (int), name (str), slug (str of [a-z0-9-]), size (int),
    keywords (list[str]), keyword_weights (list[float]),
    representative_ids (list[str], best first), x, y (intertopic map position),
    coarse_topic (int: the topic's group at the coarse level of the hierarchy; -1 for outliers),
    coarse_name (str: that group's name)
    name_coverage (float: share of the topic's papers whose title or abstract writes the name's
                   main phrase, NaN for outliers), name_lift (float: how many times more often
                   they write it than the rest of the pile; see pipeline.label.audit),
    name_rank (float: the rank of the topic's own centroid among all topics' centroids by cosine
               to the name's vector, 1 = nearest; NaN for outliers and when unknown),
    name_faults (str: what the name holds that a researcher would not write, or that does not
                 tell it from the other topics, joined by ", "; "" for none:
                 pipeline.label.audit.name_faults and pile_faults)

hierarchy (output of label), one row per merge of two topic groups, as BERTopic's
hierarchical_topics (leaf ids are topic ids, inner ids count up from max(topic) + 1):
    parent_id (int), parent_name (str), child_left_id (int), child_right_id (int),
    distance (float, grows towards the root), topics (list[int]: the leaf topics under parent_id)
    Empty (no rows) when there are fewer than two topics.

metrics (JSON, output of label; written as metrics.json in the run folder): a flat dict of
    n_topics, outlier_share, largest_topic_share, npmi, diversity, and, when papers carry
    labels, nmi, ami, ari; the name audit (pipeline.label.audit.audit_of_topics):
    name_coverage_mean, name_coverage_min, name_low_coverage_share, name_lift_median,
    name_nearest_share (share of topics whose name is nearest to their own centroid),
    name_faults (how many names have a fault) and name_audit (one {topic, phrase, coverage,
    lift, rank, faults} per topic); a value is null when it cannot be computed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import overload

import numpy as np
import pandas as pd

PAPER_COLUMNS = ("paper_id", "title", "abstract", "authors", "date", "url", "links", "source", "label")
ASSIGNMENT_COLUMNS = ("paper_id", "topic", "score", "x", "y")
TOPIC_COLUMNS = (
    "topic", "name", "slug", "size", "keywords", "keyword_weights", "representative_ids", "x", "y",
    "coarse_topic", "coarse_name", "name_coverage", "name_lift", "name_rank", "name_faults",
)  # fmt: skip
HIERARCHY_COLUMNS = ("parent_id", "parent_name", "child_left_id", "child_right_id", "distance", "topics")
OUTLIER_TOPIC = -1
# The outlier topic's name, in topics.csv and on every page.
OUTLIER_NAME = "Unassigned papers (outliers)"
# A url a paper may carry and a page may link: plain http(s), without white space, quotes, angle
# brackets or backslashes, so that javascript:, data: or file: urls are never kept and an odd value
# can never break an attribute (a url with those is dropped rather than "repaired").
HTTP_URL = re.compile(r"https?://[^\s\"'<>\\`]+", flags=re.IGNORECASE)
# Unicode's bidirectional controls (embeddings, overrides, isolates, marks): invisible, they
# reorder the text shown around them ("Trojan Source": U+202E shows "exe.txt" as "txt.exe"). No
# paper text needs them, so parse drops them and every writer (HTML, Atom, CSV, Markdown) too.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def empty_papers() -> pd.DataFrame:
    """A papers table with no rows and every column typed as string."""
    return pd.DataFrame({column: pd.Series(dtype="string") for column in PAPER_COLUMNS})


# The columns a paper's text is made of (paper_texts): what a stage that needs only the texts reads.
TEXT_COLUMNS = ("title", "abstract")


def paper_texts(papers: pd.DataFrame) -> list[str]:
    """The text each paper is embedded and labelled by: its title, then its abstract."""
    return [
        f"{title}. {abstract}".strip(". ") if title and abstract else (title or abstract)
        for title, abstract in zip(papers["title"].tolist(), papers["abstract"].tolist(), strict=True)
    ]


class PaperTexts(Sequence[str]):
    """The papers' texts (:func:`paper_texts`), made when asked for, a slice or a set of rows at a time.

    At a million papers all texts at once are ~1.5 GB of Python strings beside the table's own
    Arrow-backed columns; a stage that needs each text once (its key, a part sent to a worker)
    or only a sample's takes them from here instead.
    """

    def __init__(self, papers: pd.DataFrame) -> None:
        self.papers = papers

    def __len__(self) -> int:
        return len(self.papers)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return paper_texts(self.papers.iloc[index])
        return paper_texts(self.papers.iloc[[index]])[0]

    def __iter__(self) -> Iterator[str]:
        for block in self.blocks():
            yield from block

    def take(self, rows: np.ndarray) -> list[str]:
        """The texts of ``rows`` (positions), in that order."""
        return paper_texts(self.papers.iloc[rows])

    def blocks(self, size: int = 10_000) -> Iterator[list[str]]:
        """All texts in order, ``size`` at a time (lists)."""
        for start in range(0, len(self.papers), size):
            yield paper_texts(self.papers.iloc[start : start + size])


class StreamedTexts(Sequence[str]):
    """The papers' texts read from the papers table a block at a time, never all at once.

    ``blocks()`` gives the table's title and abstract columns in order, a block of papers at a
    time (``StageStore.table_batches``). For readers that go through the texts in order: each
    iteration reads the table once, and slices asked for one after the other (the term count's
    parts) go on from where the last one stopped; a slice before it starts again from the top.
    At a million papers the table's text columns are ~1.5 GB, and the other columns ~0.3 GB.
    """

    def __init__(self, blocks: Callable[[], Iterator[pd.DataFrame]], n_papers: int) -> None:
        self.blocks = blocks
        self.n_papers = n_papers
        self._cursor: Iterator[pd.DataFrame] | None = None
        self._held: list[pd.DataFrame] = []  # read from the table and not handed out yet, from row _at on
        self._at = 0

    def __len__(self) -> int:
        return self.n_papers

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, int):
            return self[index : index + 1][0]
        start, stop, step = index.indices(self.n_papers)
        if step != 1:
            raise ValueError("StreamedTexts: only contiguous slices")
        return paper_texts(self._rows(start, stop))

    def __iter__(self) -> Iterator[str]:
        for block in self.blocks():
            yield from paper_texts(block)

    def take(self, rows: np.ndarray) -> list[str]:
        """The texts of ``rows`` (positions, sorted), in that order: one read of the table."""
        return paper_texts(self._picked(rows))

    def with_texts(self, papers: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
        """``papers``, the table's rows ``rows`` (sorted) without its text columns, with their titles and abstracts."""
        texts = self._picked(rows)
        joined = papers.reset_index(drop=True).assign(**{column: texts[column] for column in TEXT_COLUMNS})
        return joined[[column for column in PAPER_COLUMNS if column in joined.columns]]

    def _picked(self, rows: np.ndarray) -> pd.DataFrame:
        if len(rows) > 1 and (np.diff(rows) <= 0).any():
            raise ValueError("StreamedTexts: rows must be sorted and distinct")
        found, at = [], 0
        for block in self.blocks():
            mine = rows[(rows >= at) & (rows < at + len(block))]
            if len(mine):
                found.append(block.iloc[mine - at])
            at += len(block)
        return pd.concat(found, ignore_index=True) if found else empty_papers()[list(TEXT_COLUMNS)]

    def _rows(self, start: int, stop: int) -> pd.DataFrame:
        """Rows ``start`` to ``stop`` of the text columns: on from the last slice when it ended before ``start``."""
        if self._cursor is None or start < self._at:
            self._cursor, self._held, self._at = self.blocks(), [], 0
        cursor, held, at = self._cursor, self._held, self._at
        self._held, pieces = [], []
        for frame in itertools.chain(held, cursor):
            end = at + len(frame)
            if start < end:
                pieces.append(frame.iloc[max(start - at, 0) : min(stop - at, len(frame))])
            if end > stop:
                self._held, at = [frame.iloc[stop - at :]], stop
                break
            at = end
            if at == stop:
                break
        self._at = at
        return pd.concat(pieces, ignore_index=True) if pieces else empty_papers()[list(TEXT_COLUMNS)]


def texts_at(texts: Sequence[str], rows: np.ndarray) -> list[str]:
    """The texts of ``rows`` from a list of texts or a :class:`PaperTexts`."""
    if isinstance(texts, PaperTexts | StreamedTexts):
        return texts.take(rows)
    return [texts[row] for row in rows.tolist()]
