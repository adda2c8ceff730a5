"""Fuzzing every reader (issue 4): random bytes and random well-formed-but-odd records.

Whatever the input, ``parse`` either raises InputError naming the file, or returns papers
that all have words in their title or abstract, clean text (no control characters, no
lone surrogates), capped lengths, http(s) urls only, unique ids, and a table the store can
write. Any other exception is a bug.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import InputSpec, ParseConfig
from pipeline.errors import InputError
from pipeline.files import table_to_bytes
from pipeline.parse import MAX_ABSTRACT_CHARS, MAX_TITLE_CHARS, READERS, parse
from pipeline.parse.normalize import has_words
from pipeline.schema import PAPER_COLUMNS
from pipeline.sources import SourceFile

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI never flakes on a newly drawn input
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
FORMATS = [*READERS, "auto"]
SUFFIXES = [".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt", ""]
PAGE_HEAD = "Daily Papers\n\nbyAK and the research community\n\nAug 12\n\n"
# Starts that lead random bytes past the first checks of some reader.
PREFIXES = [b"", b"PAR1", b"[", b"{", b"\xef\xbb\xbf", b"\xff\xfe", b"title,abstract\n", b'{"id": "2503.11731", ',
            PAGE_HEAD.encode(), b"Subject: hi\nFrom: x\n\n", b"%PDF-", b"\x1f\x8b"]  # fmt: skip
KEYS = ["id", "title", "abstract", "summary", "abs", "categories", "authors", "update_date", "date", "url", "label"]
ARXIV_IDS = ["2503.11731v2", "hep-th/9901001", "704.0001", "arXiv:1501.00001", "0704.0001", "2503.1", "9999.99999"]
_BAD_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufeff\u200b]")


# -- strategies ---------------------------------------------------------------------------------
any_char_text = st.text(st.characters(blacklist_categories=()), max_size=60)  # surrogates and controls too
odd_text = st.one_of(
    any_char_text,
    st.sampled_from(["", " ", "\u200b\ufeff", "\x00", "?!", "<script>x</script>", "=1+2", "javascript:x", "é" * 30]),
    st.text(st.sampled_from("ab \n\r\t-.,\"'"), max_size=80),
    st.sampled_from(ARXIV_IDS),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**40, max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text,
)
odd_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3), max_leaves=6
)
wordy = st.from_regex(r"[A-Za-z0-9а-яё中文 .,:-]{0,60}", fullmatch=True) | odd_text
# Mostly paper-like records (an id, some text, the fields each format names) with odd values here
# and there, so that readers get past their first checks; some entirely random ones.
paperish = st.fixed_dictionaries(
    {"id": st.sampled_from(ARXIV_IDS) | odd_values, "title": wordy, "abstract": wordy},
    optional={"summary": wordy, "abs": odd_text, "categories": odd_values, "authors": odd_values,
              "update_date": odd_text, "url": odd_text, "nested": odd_values},
)  # fmt: skip
records = st.lists(
    paperish | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), odd_values, max_size=8), max_size=6
)
line_ends = st.sampled_from(["\n", "\r\n", "\r"])
configs = st.builds(
    ParseConfig,
    dedupe=st.booleans(),
    on_error=st.sampled_from(["skip", "fail"]),
    min_text_chars=st.integers(min_value=1, max_value=40),
)


# -- serialisers: odd records as each reader's files -------------------------------------------
def _cell(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def as_jsonl(rows: list[dict], end: str) -> bytes:
    return end.join(json.dumps(row, ensure_ascii=False) for row in rows).encode("utf-8", "surrogatepass")


def as_json(rows: list[dict], _end: str) -> bytes:
    return json.dumps(rows).encode()  # ensure_ascii: lone surrogates become "\ud800" escapes


def as_csv(rows: list[dict], end: str) -> bytes:
    columns = list(dict.fromkeys(key for row in rows for key in row)) or ["title"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=end)
    writer.writerow(columns)
    writer.writerows([[_cell(row.get(column, "")) for column in columns] for row in rows])
    return buffer.getvalue().encode("utf-8", "surrogatepass")


def as_parquet(rows: list[dict], _end: str) -> bytes:
    columns = list(dict.fromkeys(key for row in rows for key in row)) or ["title"]
    clean = {c: [None if (v := row.get(c)) is None else _cell(v).encode("utf-8", "replace").decode() for row in rows]
             for c in columns}  # fmt: skip
    buffer = io.BytesIO()
    pd.DataFrame(clean, columns=columns).to_parquet(buffer, index=False)
    return buffer.getvalue()


def as_page(rows: list[dict], end: str) -> bytes:
    lines = [PAGE_HEAD.replace("\n", end)]
    for row in rows:
        lines += [_cell(row.get("title", "")), _cell(row.get("abstract", row))]
    return end.join(lines).encode("utf-8", "surrogatepass")


SERIALISERS = {
    "arxiv-snapshot": [("s.jsonl", as_jsonl), ("s.csv", as_csv), ("s.json", as_json)],
    "arxiv-daily": [("2025-03-18.jsonl", as_jsonl), ("d.json", as_json)],
    "table": [("t.jsonl", as_jsonl), ("t.json", as_json), ("t.csv", as_csv), ("t.parquet", as_parquet)],
    "hf-daily-papers": [("p.txt", as_page)],
    "auto": [("a.jsonl", as_jsonl), ("a.csv", as_csv), ("a.txt", as_page), ("a.parquet", as_parquet)],
}


# -- the property ---------------------------------------------------------------------------------
def file_source(name: str, data: bytes, fmt: str) -> SourceFile:
    return SourceFile(path=name, data=data, sha256="0" * 64, spec=InputSpec(path=name, format=fmt))


def folder_sources(documents: list[bytes], labels: list[str]) -> list[SourceFile]:
    spec = InputSpec(path="corpus", format="text-folder")
    return [
        SourceFile(
            path=f"corpus/{label}/{n}.txt",
            data=data,
            sha256="0" * 64,
            spec=spec,
            relpath=f"{label}/{n}.txt",
            folder="corpus",
            format="text-folder",
        )
        for n, (data, label) in enumerate(zip(documents, labels, strict=False))
    ]


def check_parse(sources: list[SourceFile], config: ParseConfig) -> None:
    names = {s.path for s in sources} | {s.folder for s in sources if s.folder} | {s.spec.path for s in sources}
    try:
        result = parse(sources, config)
    except InputError as exc:  # the only exception allowed: one line that starts with the file it is about
        message = str(exc)
        assert any(message.startswith(f"{name}: ") for name in names), message
        return
    for report in result.file_reports:
        assert report.read == report.kept + report.duplicates + report.skipped
    papers = result.papers
    assert list(papers.columns) == list(PAPER_COLUMNS)
    assert papers["paper_id"].is_unique
    for row in papers.itertuples(index=False):
        assert has_words(row.title) or has_words(row.abstract), row  # never a paper with an empty text
        assert len(row.title) + len(row.abstract) >= config.min_text_chars
        assert len(row.title) <= MAX_TITLE_CHARS and len(row.abstract) <= MAX_ABSTRACT_CHARS
        assert row.url == "" or re.match(r"https?://\S+$", row.url), row.url
        for value in row:
            assert not _BAD_CHARS.search(value) and "\n" not in value and value == value.strip(), repr(value)
    table_to_bytes(papers)  # the store can write it (no lone surrogate can reach parquet)


# -- the tests ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(
    prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=1500), suffix=st.sampled_from(SUFFIXES), config=configs
)
def test_random_bytes_never_crash_a_reader(fmt, prefix, body, suffix, config):
    data = prefix + body
    if fmt == "text-folder":
        check_parse(folder_sources([data, body, prefix], ["sci.space", "sport", "sport"]), config)
    else:
        check_parse([file_source(f"in/file{suffix}", data, fmt)], config)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "text-folder"])
@FUZZ
@given(rows=records, end=line_ends, choice=st.integers(min_value=0, max_value=3), config=configs)
def test_odd_records_never_crash_a_reader(fmt, rows, end, choice, config):
    name, serialise = SERIALISERS[fmt][choice % len(SERIALISERS[fmt])]
    check_parse([file_source(name, serialise(rows, end), fmt)], config)


@FUZZ
@given(
    documents=st.lists(st.tuples(odd_text, odd_text, st.booleans()), min_size=1, max_size=5),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]),
    end=line_ends,
    config=configs,
)
def test_odd_documents_never_crash_the_text_folder_reader(documents, encoding, end, config):
    files = []
    for title, body, usenet in documents:
        text = f"Subject: {title}{end}From: someone{end}{end}{body}" if usenet else f"{title}{end}{body}"
        files.append(text.encode(encoding, "replace" if encoding in ("latin-1", "cp1252") else "surrogatepass"))
    check_parse(folder_sources(files, ["rec.autos", "talk.politics", "sport", "tech", "README"]), config)
