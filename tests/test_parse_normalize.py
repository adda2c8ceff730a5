"""The shared string rules: whitespace, arXiv ids, titles, links, dates, authors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.parse.normalize import (
    arxiv_id_month,
    clean_text,
    extract_links,
    iso_date,
    normalize_arxiv_id,
    normalize_title,
    split_snapshot_authors,
)


@pytest.mark.parametrize(
    ("raw", "repair", "expected"),
    [
        ("2503.11731v2", False, "2503.11731"),
        ("arXiv:2503.11731", False, "2503.11731"),
        ("https://arxiv.org/abs/2503.11731v1", False, "2503.11731"),
        ("0704.0001", False, "0704.0001"),
        ("hep-th/9901001v3", False, "hep-th/9901001"),
        ("math.CO/0601001", False, "math.CO/0601001"),
        ("704.0001", False, None),
        ("704.0001", True, "0704.0001"),
        ("704.001", True, "0704.0010"),
        ("704.2", True, "0704.2000"),
        ("1501.0001", True, "1501.00010"),
        ("2503.117", False, None),
        ("doc-7", False, None),
        ("2513.00001", False, None),
    ],
)
def test_arxiv_ids(raw, repair, expected):
    assert normalize_arxiv_id(raw, repair_float=repair) == expected


def test_arxiv_id_month():
    assert [arxiv_id_month(i) for i in ("2503.11731", "0704.0001", "hep-th/9901001")] == [
        "2025-03",
        "2007-04",
        "1999-01",
    ]


def test_clean_text_joins_hard_breaks():
    assert clean_text("  We study\n  graphs\x00 in a state-of-the-\nart way.\r\n\tDone. ") == (
        "We study graphs in a state-of-the-art way. Done."
    )


@given(st.text())
def test_clean_text_is_idempotent_and_has_no_line_breaks(text):
    once = clean_text(text)
    assert clean_text(once) == once
    assert "\n" not in once and "\x00" not in once and once == once.strip()


def test_normalize_title():
    assert (
        normalize_title("  Attention Is All\nYou Need!! ")
        == normalize_title("attention is all you need")
        == "attention is all you need"
    )
    assert normalize_title("Graph_Nets: (v2)") == "graph nets v2"


def test_extract_links():
    text, links = extract_links(
        "See \\url{https://a.org/x}, and https://github.com/u/r{https://github.com/u/r}. "
        "Also (https://b.io/page) and https://a.org/x again; https://en.wikipedia.org/wiki/Foo_(bar)."
    )
    assert links == "https://a.org/x https://github.com/u/r https://b.io/page https://en.wikipedia.org/wiki/Foo_(bar)"
    assert text.startswith("See https://a.org/x, and https://github.com/u/r. Also")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("11/26/2008", "2008-11-26"),
        ("2008-11-26", "2008-11-26"),
        ("2008-11-26T10:00:00Z", "2008-11-26"),
        ("26/11/2008", "2008-11-26"),
        ("2008/11/26", "2008-11-26"),
        ("2008-11", "2008-11"),
        ("Mon, 2 Apr 2007 19:18:42 GMT", "2007-04-02"),
        ("sometime in spring", "sometime in spring"),
        ("", ""),
    ],
)
def test_iso_date(value, expected):
    assert iso_date(value) == expected


def test_split_snapshot_authors():
    assert split_snapshot_authors("Ileana Streinu and Louis Theran") == "Ileana Streinu; Louis Theran"
    assert split_snapshot_authors("A. One, B. Two, and C.\n  Three") == "A. One; B. Two; C. Three"
    assert split_snapshot_authors("Hongjun Pan") == "Hongjun Pan"


def test_clean_text_of_printable_ascii_is_what_every_expression_makes_of_it():
    """The printable-ASCII shortcut gives what the whole chain gives, for any mix of characters."""
    import random
    import unicodedata

    from pipeline.parse import normalize
    from pipeline.schema import BIDI_CONTROLS

    def every_expression(text: str) -> str:
        text = BIDI_CONTROLS.sub("", normalize._INVISIBLE.sub("", normalize._SURROGATE.sub("\ufffd", text)))
        text = normalize._HYPHEN_BREAK.sub("-", unicodedata.normalize("NFC", text))
        return " ".join(text.split())

    alphabet = ["a", "b", "-", " ", " ", "\t", "\n", "\r", "\x00", "\x1b", "\x7f", "\x0c", ".", "\u00e9", "e\u0301",
                "\u202e", "\ud800", "\u200b", "\u00a0"]  # fmt: skip
    rng = random.Random(5)
    texts = ["", " ", "a", "  a  b ", "state-of-the-\nart", "plain text, one space each."]
    texts += ["".join(rng.choice(alphabet[:6] if n % 2 else alphabet) for _ in range(rng.randint(0, 12)))
              for n in range(4_000)]  # fmt: skip
    assert sum(text.isascii() and text.isprintable() for text in texts) > 1_000  # the shortcut is taken
    for text in texts:
        assert normalize.clean_text(text) == every_expression(text), repr(text)
