"""schema.PaperTexts: the papers' texts made when asked for are paper_texts' texts, in every way they are asked for."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.schema import PaperTexts, paper_texts, texts_at


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
