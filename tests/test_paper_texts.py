"""schema.PaperTexts: the papers' texts made when asked for are paper_texts' texts, in every way they are asked for."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from pipeline.schema import PaperTexts, StreamedTexts, paper_texts, texts_at


def papers(n: int) -> pd.DataFrame:
    titles = [f"Title {i}" if i % 5 else "" for i in range(n)]  # some without a title
    abstracts = [f"Abstract of paper {i}." if i % 7 else "" for i in range(n)]  # some without an abstract
    return pd.DataFrame({"title": titles, "abstract": abstracts}).astype("string")


def test_paper_texts_on_demand_equal_the_list_by_index_slice_rows_and_iteration():
    table = papers(23_457)  # more than two blocks of 10,000
    expected = paper_texts(table)
    lazy = PaperTexts(table)
    assert len(lazy) == len(expected)
    assert list(lazy) == expected
    assert [lazy[i] for i in (0, 4, 5, 7, 23_456)] == [expected[i] for i in (0, 4, 5, 7, 23_456)]
    assert lazy[9_990:10_020] == expected[9_990:10_020]
    rows = np.array([23_000, 3, 3, 17_777, 0])  # any order, repeats
    assert texts_at(lazy, rows) == texts_at(expected, rows) == [expected[row] for row in rows]
    assert [len(block) for block in lazy.blocks(10_000)] == [10_000, 10_000, 3_457]


def test_streamed_texts_read_in_blocks_equal_the_list_in_order_slices_rows_and_with_their_rows():
    table = papers(2_345).assign(paper_id=[f"p{i}" for i in range(2_345)]).astype("string")
    table = table[["paper_id", "title", "abstract"]]  # in the order of schema.PAPER_COLUMNS
    expected = paper_texts(table)
    reads: list[int] = []

    def blocks(size: int = 100):
        reads.append(1)
        for start in range(0, len(table), size):
            yield table.iloc[start : start + size][["title", "abstract"]].reset_index(drop=True)

    streamed = StreamedTexts(blocks, len(table))
    assert len(streamed) == len(expected) and list(streamed) == expected
    # The term count's parts: slices one after the other, across blocks, read the table once.
    reads.clear()
    bounds = [0, 1, 250, 251, 999, 1_700, 2_345]
    assert [streamed[a:b] for a, b in itertools.pairwise(bounds)] == [
        expected[a:b] for a, b in itertools.pairwise(bounds)
    ]
    assert len(reads) == 1
    assert streamed[10:20] == expected[10:20] and len(reads) == 2  # before the last slice: read again from the top
    assert streamed[2_344] == expected[2_344]
    rows = np.array([0, 99, 100, 1_234, 2_344])
    assert texts_at(streamed, rows) == [expected[row] for row in rows]
    others = table.drop(columns=["title", "abstract"])
    pd.testing.assert_frame_equal(streamed.with_texts(others.iloc[rows], rows), table.iloc[rows].reset_index(drop=True))
    with pytest.raises(ValueError, match="sorted"):
        streamed.take(np.array([5, 3]))
