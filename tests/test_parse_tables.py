"""Tables with a column mapping (CSV, TSV, JSON array, JSON Lines, Parquet, gzip), and sniffing.

Also the whole-file and per-record error rules shared by every reader.
"""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from pipeline.config import ColumnMapping, InputSpec, ParseConfig
from pipeline.errors import InputError
from pipeline.parse import READERS, parse
from pipeline.parse.sniff import sniff_format
from pipeline.sources import SourceFile, collect_sources

ROWS = [
    {
        "name": "Graph Transformers at Scale",
        "text": "We scale graph\n  transformers to\tbillions of edges.",
        "key": "arXiv:2503.11731v2",
        "day": "2025-03-18",
        "area": "cs.LG",
        "who": ["Ann Lee", "Bo Chen"],
    },
    {
        "name": "Sparse Mixtures",
        "text": "Sparse experts route tokens; code at \\url{https://github.com/x/moe}.",
        "key": "doc-7",
        "day": "03/19/2025",
        "area": "cs.CL",
        "who": ["Cy Diaz"],
    },
]
MAPPING = ColumnMapping(title="name", abstract="text", id="key", date="day", label="area", authors="who")
EXPECTED_IDS = ["2503.11731", "doc-7"]


def _flat(rows):
    return [{**row, "who": "; ".join(row["who"])} for row in rows]


def _write(tmp_path, name: str) -> str:
    path = tmp_path / name
    frame = pd.DataFrame(_flat(ROWS))
    base = name.removesuffix(".gz")
    if base.endswith(".parquet"):
        pd.DataFrame(ROWS).to_parquet(path, index=False)  # authors stay a real list column
        return str(path)
    if base.endswith(".csv"):
        text = frame.to_csv(index=False)
    elif base.endswith(".tsv"):
        text = frame.replace({"\t": " ", "\n": " "}, regex=True).to_csv(index=False, sep="\t")
    elif base.endswith(".jsonl"):
        text = "\n".join(json.dumps(row) for row in ROWS)
    else:
        text = json.dumps(ROWS)
    data = text.encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return str(path)


def _source(name: str, data: bytes, **spec) -> SourceFile:
    return SourceFile(path=name, data=data, sha256="0" * 64, spec=InputSpec(path=name, **spec))


@pytest.mark.parametrize("name", ["t.csv", "t.tsv", "t.json", "t.jsonl", "t.parquet", "t.csv.gz", "t.jsonl.gz"])
def test_every_table_format_reads_the_same_papers(tmp_path, name):
    spec = InputSpec(path=_write(tmp_path, name), format="table", columns=MAPPING)
    result = parse(collect_sources([spec]), ParseConfig())
    papers = result.papers
    assert papers["paper_id"].tolist() == EXPECTED_IDS
    assert papers["title"].tolist() == ["Graph Transformers at Scale", "Sparse Mixtures"]
    assert papers["abstract"].iloc[0] == "We scale graph transformers to billions of edges."
    assert papers["abstract"].iloc[1] == "Sparse experts route tokens; code at https://github.com/x/moe."
    assert papers["links"].tolist() == ["", "https://github.com/x/moe"]
    assert papers["date"].tolist() == ["2025-03-18", "2025-03-19"]
    assert papers["label"].tolist() == ["cs.LG", "cs.CL"]
    assert papers["authors"].tolist() == ["Ann Lee; Bo Chen", "Cy Diaz"]
    assert papers["url"].tolist() == ["https://arxiv.org/abs/2503.11731", ""]
    assert result.file_reports[0].reader == "table"


@pytest.mark.parametrize("name", ["t.csv", "t.json", "t.jsonl", "t.parquet"])
def test_auto_format_with_mapping_sniffs_table(tmp_path, name):
    spec = InputSpec(path=_write(tmp_path, name), columns=MAPPING)
    assert parse(collect_sources([spec]), ParseConfig()).papers["paper_id"].tolist() == EXPECTED_IDS


def test_missing_mapped_column_names_file_column_and_columns(tmp_path):
    path = _write(tmp_path, "t.csv")
    spec = InputSpec(path=path, columns=ColumnMapping(title="name", abstract="summary"))
    with pytest.raises(InputError) as error:
        parse(collect_sources([spec]), ParseConfig())
    message = str(error.value)
    assert message.startswith(f"{path}: column 'summary'")
    assert "name, text, key, day, area, who" in message


def test_well_known_columns_need_no_mapping():
    data = b"Title,Abstract,ID\nA paper on graphs,We study graphs and their many uses.,2401.00001\n"
    papers = parse([_source("p.csv", data)], ParseConfig()).papers
    assert papers[["paper_id", "title"]].values.tolist() == [["2401.00001", "A paper on graphs"]]


def test_table_without_mapping_or_known_columns_is_an_error():
    with pytest.raises(InputError, match=r"^p\.csv: cannot tell which column.*its columns are: x, y"):
        parse([_source("p.csv", b"x,y\n1,2\n")], ParseConfig())


def test_sniffing_rules():
    daily = json.dumps({"id": "2503.00001", "abs": "u", "summary": "s", "title": "t"}).encode()
    snap = json.dumps({"id": "1", "abstract": "a", "categories": "c", "update_date": "d"}).encode()
    page = b"new\n\nbyAK and the research community\n\nAug 12\n\nA title\n"
    assert sniff_format(_source("x.jsonl", daily)) == "arxiv-daily"
    assert sniff_format(_source("x.data", snap)) == "arxiv-snapshot"  # by content: starts with "{"
    assert sniff_format(_source("x.csv", b"id,abstract,categories,update_date\n")) == "arxiv-snapshot"
    assert sniff_format(_source("x.json", b'[{"title": "t"}]')) == "table"
    assert sniff_format(_source("x.txt", page)) == "hf-daily-papers"
    with pytest.raises(InputError, match=r"^notes\.txt: cannot tell the format.*set 'format:'"):
        sniff_format(_source("notes.txt", b"just some prose\nwithout any markers\n"))
    assert set(READERS) == {"hf-daily-papers", "arxiv-snapshot", "arxiv-daily", "table", "text-folder"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"  \n\n", "the file is empty"),
        (bytes(range(256)) * 8, "the file is binary"),
        ("title\nCaf\xe9 paper on things\n".encode("latin-1"), "not UTF-8 text (line 2: byte 0xe9"),
        (b"title\n\n", "holds no papers"),
    ],
)
def test_unusable_files_fail_in_either_mode(data, message):
    for on_error in ("skip", "fail"):
        with pytest.raises(InputError, match=rf"^p\.csv: .*{message.replace('(', '.')}"):
            parse([_source("p.csv", data, format="table")], ParseConfig(on_error=on_error))


def test_bad_parquet_and_bad_json_array_are_input_errors():
    with pytest.raises(InputError, match=r"^p\.parquet: not a readable Parquet file"):
        parse([_source("p.parquet", b"PAR1 definitely not parquet")], ParseConfig())
    with pytest.raises(InputError, match=r"^p\.json: not valid JSON"):
        parse([_source("p.json", b'[{"title": "x"')], ParseConfig())


def test_short_and_empty_records_are_skipped_with_reasons():
    data = b"title,abstract\nA perfectly long enough title,\nTiny,\n,\n"
    result = parse([_source("p.csv", data)], ParseConfig(min_text_chars=10))
    report = result.file_reports[0]
    assert result.papers["title"].tolist() == ["A perfectly long enough title"]
    assert report.skip_reasons == {"text shorter than 10 chars": 1}  # the all-empty row is not a record
    assert (report.read, report.kept, report.skipped) == (2, 1, 1)
    data2 = b"title,abstract,id\nA perfectly long enough title,,1\n,,2\n"
    assert parse([_source("q.csv", data2)], ParseConfig()).file_reports[0].skip_reasons == {"no title or abstract": 1}
    with pytest.raises(InputError, match=r"^p\.csv: row 2 \(line 3\): text shorter than 10 chars"):
        parse([_source("p.csv", data)], ParseConfig(min_text_chars=10, on_error="fail"))


def test_whitespace_nul_and_hyphen_breaks_are_normalised():
    row = {"title": "  Deep\x00 Nets\n", "abstract": "A state-of-the-\nart model\r\n  with  gaps."}
    papers = parse([_source("p.jsonl", json.dumps(row).encode())], ParseConfig()).papers
    assert papers[["title", "abstract"]].values.tolist() == [["Deep Nets", "A state-of-the-art model with gaps."]]


def test_dedupe_by_version_free_id_then_title_and_unique_ids_without_dedupe():
    data = (
        b"title,abstract,id\n"
        b"First paper title,Some abstract text here.,2503.11731v1\n"
        b"Renamed in v2,Some abstract text here.,2503.11731v2\n"
        b"A Title: Twice!,Other abstract text here.,\n"
        b"a title twice,Other abstract text here.,\n"
    )
    result = parse([_source("p.csv", data)], ParseConfig())
    assert result.papers["title"].tolist() == ["Renamed in v2", "A Title: Twice!"]  # the later version is kept
    assert (result.file_reports[0].duplicates, result.file_reports[0].duplicates_other_text) == (2, 1)
    kept_all = parse([_source("p.csv", data)], ParseConfig(dedupe=False)).papers
    assert len(kept_all) == 4 and kept_all["paper_id"].is_unique
    assert kept_all["paper_id"].iloc[1] == "2503.11731#2"


def test_row_order_is_the_order_first_read():
    a = _source("a.csv", b"title\nZeta paper about things\nAlpha paper about things\n")
    b = _source("b.csv", b"title\nMiddle paper about things\nzeta paper about things\n")
    result = parse([a, b], ParseConfig())
    assert result.papers["title"].tolist() == [
        "Zeta paper about things",
        "Alpha paper about things",
        "Middle paper about things",
    ]
    assert result.papers["source"].tolist() == ["a.csv", "a.csv", "b.csv"]
    assert [r.to_dict()["duplicates"] for r in result.file_reports] == [0, 1]


def test_empty_member_of_a_glob_is_reported_not_fatal(tmp_path):
    (tmp_path / "2025-04-19.jsonl").write_bytes(b"")
    (tmp_path / "2025-04-20.jsonl").write_text(json.dumps({"title": "A paper title", "abstract": "Some text."}))
    result = parse(collect_sources([InputSpec(path=str(tmp_path / "*.jsonl"))]), ParseConfig(on_error="fail"))
    assert len(result.papers) == 1
    assert [(r.reader, r.read, r.kept) for r in result.file_reports] == [("(empty file)", 0, 0), ("table", 1, 1)]
    (tmp_path / "2025-04-20.jsonl").write_bytes(b"\n")
    with pytest.raises(InputError, match=r"\*\.jsonl: none of its 2 files holds a paper"):
        parse(collect_sources([InputSpec(path=str(tmp_path / "*.jsonl"))]), ParseConfig())
    with pytest.raises(InputError, match=r"2025-04-19\.jsonl: the file is empty"):
        parse(collect_sources([InputSpec(path=str(tmp_path / "2025-04-19.jsonl"))]), ParseConfig())
