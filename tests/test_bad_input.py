"""Bad input (issue 4): each case stops the run, or skips and counts the bad records.

A run that stops does so before any work, with one line naming the file and the line or
record, and exit code 2; skipped records are counted in the file report, the summary and
the manifest.

Most cases run the parse stage only (``parse`` on bytes, or the CLI with ``--until parse``),
which needs no model: they take milliseconds. The two full runs at the end (mixed languages,
hostile text) share one output folder and one model load, and are marked slow.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import block_network

from pipeline import cli
from pipeline.cli import main
from pipeline.config import InputSpec, ParseConfig
from pipeline.errors import InputError
from pipeline.parse import MAX_ABSTRACT_CHARS, MAX_TITLE_CHARS, parse
from pipeline.sources import SourceFile
from pipeline.stages import STAGE_NAMES
from pipeline.store import ArtifactStore

ROOT = Path(__file__).resolve().parents[1]
SEED_PAGE = ROOT / "data" / "samples" / "000_6472a1053a30b6b0.txt"
ABSTRACT = "We study how sparse attention patterns change the training dynamics of small transformer models."
PAGE_HEAD = "Daily Papers\n\nbyAK and the research community\n\nAug 12\n\n"
# A page tells titles from abstracts by shape: an abstract is long and reads as sentences.
PAGE_ABSTRACT = (
    "We study how sparse attention patterns change the training dynamics of small transformer models. "
    "Across four model sizes, sparse patterns learned early in training stay stable and predict final accuracy."
)


# -- helpers -----------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_network(network_off):
    """Tests run with the network off (conftest.block_network)."""


def source(name: str, data: bytes, **spec) -> SourceFile:
    return SourceFile(path=name, data=data, sha256="0" * 64, spec=InputSpec(path=name, **spec))


def jsonl(*records: object) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def csv_bytes(header: list[str], rows: list[list[str]], newline: str = "\n") -> bytes:
    lines = [",".join(header)] + [",".join(_quote(cell) for cell in row) for row in rows]
    return (newline.join(lines) + newline).encode()


def _quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\n\r') else cell


def paper(n: int, **fields) -> dict[str, str]:
    return {"title": f"Paper number {n} on attention", "abstract": f"{ABSTRACT} Variant {n}.", **fields}


def write_config(tmp_path: Path, inputs: list, name: str = "bad", **sections) -> Path:
    raw = {"name": name, "output_dir": str(tmp_path / "out"), "inputs": inputs, **sections}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


def run_cli(config: Path, capsys, *args: str) -> tuple[int, str]:
    code = main(["run", str(config), *args])
    return code, capsys.readouterr().err


def the_error(err: str) -> str:
    """The one error line of a stopped run (and there must be exactly one, without traceback)."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0].removeprefix("error: ")


# -- files that stop the run: one line, exit 2, nothing computed --------------------------------
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) * 4
LATIN1_CSV = "title,abstract\nFine paper on things,All good here.\nCaf\xe9 paper,Some text.\n".encode("latin-1")
CHROME_ONLY = b"New\n\nGet trending papers in your email inbox!\n\nSubscribe\n\nDaily Papers\n\nAug 12\n"
STOPPING_FILES = {
    "empty file": ("p.csv", b"", {}, r"p\.csv: the file is empty"),
    "blank lines only": ("p.jsonl", b"\n \r\n\t\n", {}, r"p\.jsonl: the file is empty"),
    "BOM and nothing else": ("p.csv", codecs.BOM_UTF8 + b"\n", {}, r"p\.csv: the file is empty"),
    "CSV header only": ("p.csv", b"title,abstract\n", {}, r"p\.csv: holds no papers \(nothing readable found\)"),
    "empty JSON array": ("p.json", b"[]", {}, r"p\.json: holds no papers \(nothing readable found\)"),
    "page without papers": ("p.txt", CHROME_ONLY, {}, r"p\.txt: holds no papers \(nothing readable found\)"),
    "rows too short": ("p.csv", b"title\nA\nB\n", {}, r"p\.csv: holds no papers \(text shorter than 20 chars: 2\)"),
    "binary file": ("p.csv", bytes(range(256)) * 16, {}, r"p\.csv: the file is binary, not text"),
    "PDF saved as .txt": ("p.txt", PDF, {}, r"p\.txt: the file is a PDF document, not text"),
    "xlsx named .csv": ("p.csv", b"PK\x03\x04" + bytes(200), {}, r"p\.csv: the file is a ZIP archive"),
    "latin-1 CSV": ("p.csv", LATIN1_CSV, {}, r"p\.csv: not UTF-8 text \(line 3: byte 0xe9 at offset 54\); re-save"),
    "truncated JSON array": (
        "p.json",
        json.dumps([paper(1), paper(2)]).encode()[:-30],
        {},
        r"p\.json: not valid JSON \(line 1: .*\) \(the file may be cut short\)",
    ),
    "JSON nested too deep": ("p.json", b"[" * 100_000, {}, r"p\.json: not valid JSON"),
    "CSV with a stray quote": (
        "p.csv",
        b'title,abstract\nGood title for a paper,Fine.\n"Quoted" then more,text\n',
        {},
        r"p\.csv: not valid CSV \(line 3: ',' expected after '\"'\)",
    ),
    "missing mapped column": (
        "p.csv",
        csv_bytes(["title", "abstract"], [["A title of a paper", ABSTRACT]]),
        {"format": "table", "columns": {"title": "title", "abstract": "summary"}},
        r"p\.csv: column 'summary' \(mapped to 'abstract'\) is not in the file; its columns are: title, abstract",
    ),
    "no known column": ("p.csv", b"foo,bar\n1,2\n", {}, r"p\.csv: cannot tell which column holds the title"),
    "JSON Lines read as a page": (
        "p.jsonl",
        jsonl(paper(1)),
        {"format": "hf-daily-papers"},
        r"p\.jsonl: looks like JSONL, not a saved Daily Papers page",
    ),
    "JSON in a .txt read as a page": (
        "p.txt",
        jsonl(paper(1)),
        {"format": "hf-daily-papers"},
        r"p\.txt: looks like JSON, not a saved Daily Papers page",
    ),
    "table read as arXiv snapshot": (
        "p.csv",
        csv_bytes(["title", "abstract"], [["A title of a paper", ABSTRACT]]),
        {"format": "arxiv-snapshot"},
        r"p\.csv: format 'arxiv-snapshot' needs an 'id' column .* but the file has: title, abstract",
    ),
    "page read as a table": ("p.txt", SEED_PAGE.read_bytes(), {"format": "table"}, r"p\.txt: not a table"),
    "page read as arXiv daily": (
        "p.txt",
        SEED_PAGE.read_bytes(),
        {"format": "arxiv-daily"},
        r"p\.txt: arXiv metadata must be JSON Lines, JSON or CSV",
    ),
    "plain prose, format auto": ("notes.txt", b"just some prose\n", {}, r"notes\.txt: cannot tell the format"),
}


@pytest.mark.parametrize("case", list(STOPPING_FILES), ids=list(STOPPING_FILES))
def test_unusable_file_stops_the_run_with_one_line(tmp_path, capsys, case):
    name, data, spec, message = STOPPING_FILES[case]
    (tmp_path / name).write_bytes(data)
    config = write_config(tmp_path, [{"path": str(tmp_path / name), **spec}])
    code, err = run_cli(config, capsys, "--until", "parse")
    assert code == 2
    assert re.fullmatch(re.escape(str(tmp_path)) + "/" + message + ".*", the_error(err)), the_error(err)
    # Nothing was computed: no stage finished, no manifest.
    assert ArtifactStore(tmp_path / "out" / "bad", tmp_path / "out" / ".cache", STAGE_NAMES).finished("parse") is None
    assert not (tmp_path / "out" / "bad" / "manifest.json").exists()


@pytest.mark.parametrize("on_error", ["skip", "fail"])
def test_unreadable_files_stop_in_either_mode(tmp_path, on_error):
    """``on_error`` is about records: a file that cannot be read at all always stops the run."""
    for case in ("binary file", "latin-1 CSV", "truncated JSON array"):
        name, data, spec, message = STOPPING_FILES[case]
        with pytest.raises(InputError, match=message):
            parse([source(name, data, **spec)], ParseConfig(on_error=on_error))


# -- paths that stop the run ----------------------------------------------------------------------
def test_glob_matching_nothing_stops_before_any_work(tmp_path, capsys):
    config = write_config(tmp_path, [str(tmp_path / "nowhere" / "*.jsonl")])
    code, err = run_cli(config, capsys)
    assert code == 2
    assert the_error(err) == f"{config}: key 'inputs.0.path': '{tmp_path}/nowhere/*.jsonl' matches no file or folder"
    assert not (tmp_path / "out").exists()


def test_empty_folder_given_to_run_is_one_line(tmp_path, capsys):
    # Not a YAML file, so it is an input of a run with every default (pipeline.zeroconfig): it holds nothing.
    code, err = run_cli(tmp_path, capsys)
    assert code == 2
    assert the_error(err) == f"{tmp_path}: the folder holds no files"


def test_folder_where_a_file_is_needed(tmp_path, capsys):
    # A folder of documents for a file format: every member is read with that format and fails as a file.
    folder = tmp_path / "pages.csv"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "notes.md").write_text("# Notes\n\nnot a table\n")
    config = write_config(tmp_path, [{"path": str(folder), "format": "table"}])
    code, err = run_cli(config, capsys, "--until", "parse")
    assert code == 2
    assert the_error(err).startswith(f"{folder}/sub/notes.md: not a table (expected .csv, .tsv")
    # An empty folder.
    (tmp_path / "nothing").mkdir()
    config = write_config(tmp_path, [str(tmp_path / "nothing")])
    code, err = run_cli(config, capsys, "--until", "parse")
    assert code == 2 and the_error(err) == f"{tmp_path}/nothing: the folder holds no files"


def test_file_that_cannot_be_read_is_one_line(tmp_path, capsys, monkeypatch):
    """Real unreadable files for root: a link into /proc that fails with EIO, a named pipe, a broken link."""
    os.symlink("/proc/self/mem", tmp_path / "mem.csv")
    config = write_config(tmp_path, [str(tmp_path / "mem.csv")])
    code, err = run_cli(config, capsys, "--until", "parse")
    assert code == 2 and the_error(err) == f"{tmp_path}/mem.csv: cannot read the file (Input/output error)"

    os.mkfifo(tmp_path / "pipe.jsonl")  # reading it would block the run forever
    config = write_config(tmp_path, [str(tmp_path / "pipe.jsonl")])
    code, err = run_cli(config, capsys, "--until", "parse")
    assert code == 2
    assert (
        the_error(err)
        == f"{tmp_path}/pipe.jsonl: not a regular file (a pipe, socket or device); give a file or a folder"
    )

    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "a.csv").write_text("title\nA long enough title\n")
    os.symlink(tmp_path / "g" / "moved-away.csv", tmp_path / "g" / "b.csv")
    config = write_config(tmp_path, [str(tmp_path / "g" / "*.csv")])
    code, err = run_cli(config, capsys, "--until", "parse")
    assert code == 2 and the_error(err) == f"{tmp_path}/g/b.csv: is a broken symbolic link"

    # Permission denied cannot happen to root: simulate the OS refusing (see also test_sources.py).
    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    config = write_config(tmp_path, [str(tmp_path / "g" / "a.csv")])
    code, err = run_cli(config, capsys, "--until", "parse")
    assert code == 2 and the_error(err) == f"{tmp_path}/g/a.csv: cannot read the file (Permission denied)"


@pytest.mark.parametrize(
    ("section", "expected", "ending"),
    [
        (
            {"cluster": {"min_cluster_sise": 5}},
            "unknown key 'cluster.min_cluster_sise' (allowed here: n_neighbors",
            ")",
        ),
        ({"embed": {"batch_size": "lots"}}, "key 'embed.batch_size': should be a valid integer", "(got 'lots')"),
        ({"embed": {"batch_size": -8}}, "key 'embed.batch_size': should be greater than 0", "(got -8)"),
        ({"embed": {"backend": "word2vec"}}, "key 'embed.backend': should be ", "(got 'word2vec')"),
        ({"parse": {"on_error": "ignore"}}, "key 'parse.on_error': should be 'skip' or 'fail'", "(got 'ignore')"),
    ],
    ids=["typo in a key", "wrong type", "negative size", "unknown backend", "value not allowed"],
)
def test_config_mistakes_stop_the_cli_before_any_work(tmp_path, capsys, section, expected, ending):
    """tests/test_config.py checks the messages of load_config; here: the CLI's one line, exit 2, no output folder."""
    (tmp_path / "p.csv").write_text("title\nA long enough title\n")
    config = write_config(tmp_path, [str(tmp_path / "p.csv")], **section)
    code, err = run_cli(config, capsys)
    assert code == 2
    assert the_error(err).startswith(f"{config}: {expected}")
    assert the_error(err).endswith(ending)
    assert not (tmp_path / "out").exists()


def test_error_line_cannot_be_broken_or_styled_by_input_text(tmp_path, capsys):
    """Column names are quoted in messages: a newline, rich markup or an escape code in one stays text."""
    header = '"bad\nname [/bold red][link=https://evil.example]x\x1b[2J",other\n'
    (tmp_path / "p.csv").write_text(header + "1,2\n")
    config = write_config(tmp_path, [str(tmp_path / "p.csv")])
    code, err = run_cli(config, capsys, "--until", "parse")
    assert code == 2
    line = the_error(err)
    assert "bad\\nname [/bold red][link=https://evil.example]x\\x1b[2J" in line
    assert "\x1b" not in err


# -- records that are skipped and counted (on_error: skip) or stop the run (fail) ---------------
def test_one_bad_json_line_among_good_ones_is_skipped_and_counted():
    data = jsonl(paper(1)) + b'{"title": "Broken", "abstract": \n' + jsonl(paper(3), paper(4))
    result = parse([source("p.jsonl", data)], ParseConfig())
    report = result.file_reports[0].to_dict()
    assert len(result.papers) == 3
    assert {k: report[k] for k in ("read", "kept", "skipped", "skip_reasons", "first_skipped")} == {
        "read": 4,
        "kept": 3,
        "skipped": 1,
        "skip_reasons": {"bad JSON": 1},
        "first_skipped": {"bad JSON": "line 2"},
    }
    with pytest.raises(InputError, match=r"^p\.jsonl: line 2: bad JSON \(Expecting value at column 33\)$"):
        parse([source("p.jsonl", data)], ParseConfig(on_error="fail"))


def test_json_lines_with_a_broken_last_line():
    data = jsonl(paper(1), paper(2)) + b'{"title": "Cut off in the mid'
    result = parse([source("p.jsonl", data)], ParseConfig())
    assert len(result.papers) == 2
    assert result.file_reports[0].first_skipped == {"bad JSON": "line 3"}
    with pytest.raises(InputError, match=r"^p\.jsonl: line 3: bad JSON \(Unterminated string"):
        parse([source("p.jsonl", data)], ParseConfig(on_error="fail"))


def test_odd_json_values_are_records_to_skip_not_crashes():
    data = b"\n".join(
        [
            json.dumps(paper(1)).encode(),
            b'{"title": ' + b"9" * 5000 + b"}",  # an integer Python refuses to read (over 4,300 digits)
            b'["not", "an", "object"]',
            b'{"title": NaN, "abstract": Infinity}',
            json.dumps(paper(2)).encode(),
        ]
    )
    result = parse([source("p.jsonl", data)], ParseConfig())
    report = result.file_reports[0]
    assert len(result.papers) == 2
    assert report.skip_reasons == {"bad JSON": 1, "line is not a JSON object": 1, "text shorter than 20 chars": 1}
    assert report.first_skipped["bad JSON"] == "line 2"


def test_csv_with_a_truncated_last_record():
    data = csv_bytes(["title", "abstract"], [["First title of a paper", ABSTRACT]]) + b'Second title,"cut off in the'
    result = parse([source("p.csv", data)], ParseConfig())
    assert result.papers["title"].tolist() == ["First title of a paper"]
    assert result.file_reports[0].first_skipped == {"broken CSV record": "row 2 (line 3)"}
    with pytest.raises(InputError, match=r"^p\.csv: row 2 \(line 3\): broken CSV record \(a quoted field is not"):
        parse([source("p.csv", data)], ParseConfig(on_error="fail"))


def test_csv_with_quoted_multi_line_fields_counts_records_and_names_lines():
    rows = [
        ["Title one, with a comma", "First line\nsecond line\r\nthird line of the abstract"],
        ['Title "two" quoted', "Short\n\n\nbut spread over lines"],
        ["x", "y"],  # too short: its place names the line it starts on, after the multi-line fields
    ]
    result = parse([source("p.csv", csv_bytes(["title", "abstract"], rows))], ParseConfig())
    assert result.papers[["title", "abstract"]].values.tolist() == [
        ["Title one, with a comma", "First line second line third line of the abstract"],
        ['Title "two" quoted', "Short but spread over lines"],
    ]
    assert result.file_reports[0].first_skipped == {"text shorter than 20 chars": "row 3 (line 9)"}


def test_bom_encodings_and_mixed_line_endings_are_read():
    records = [paper(1), paper(2), paper(3)]
    expected = [r["title"] for r in records]
    utf8_bom = codecs.BOM_UTF8 + csv_bytes(["title", "abstract"], [[r["title"], r["abstract"]] for r in records])
    tsv = "title\tabstract\r\n" + "".join(f"{r['title']}\t{r['abstract']}\r\n" for r in records)
    utf16_tsv = tsv.encode("utf-16")  # Excel's "Unicode text": UTF-16 with a byte-order mark
    mixed_jsonl = b"\r\n".join(json.dumps(r).encode() for r in records[:2]) + b"\r" + json.dumps(records[2]).encode()
    mixed_page = (PAGE_HEAD + f"{expected[0]}\r\n\r\n{PAGE_ABSTRACT}\r{expected[1]}\n{PAGE_ABSTRACT}\r\n").encode()
    for name, data in [("a.csv", utf8_bom), ("a.tsv", utf16_tsv), ("a.jsonl", mixed_jsonl)]:
        assert parse([source(name, data)], ParseConfig()).papers["title"].tolist() == expected, name
    page = parse([source("p.txt", mixed_page)], ParseConfig()).papers
    assert page["title"].tolist() == expected[:2] and page["abstract"].tolist() == [PAGE_ABSTRACT, PAGE_ABSTRACT]
    # Line numbers count \r\n, \r and \n once each, as an editor does, and only those.
    bad = (
        json.dumps(paper(1)).encode()
        + b"\r{oops\r\n"
        + json.dumps(paper(2, title="A\u2028B"), ensure_ascii=False).encode()
    )
    result = parse([source("b.jsonl", bad)], ParseConfig())
    assert result.file_reports[0].first_skipped == {"bad JSON": "line 2"}
    assert result.papers["title"].tolist() == ["Paper number 1 on attention", "A B"]


def test_nul_bytes_and_invisible_characters_are_dropped():
    row = paper(1, title="Deep\x00 Nets\x1b[31m for\u200b\ufeff all\x07")
    data = jsonl(row).replace(b"\\u0000", b"\x00")  # a raw NUL byte inside the JSON string
    page = (PAGE_HEAD + f"NUL\x00 in a page title\n\n{PAGE_ABSTRACT}\n").encode()
    papers = parse([source("p.jsonl", data)], ParseConfig()).papers
    assert papers["title"].tolist() == ["Deep Nets[31m for all"]
    assert parse([source("p.txt", page)], ParseConfig()).papers["title"].tolist() == ["NUL in a page title"]
    csv_data = b"title,abstract\nNUL\x00 in a CSV title,some abstract\n"
    assert parse([source("p.csv", csv_data)], ParseConfig()).papers["title"].tolist() == ["NUL in a CSV title"]


def test_lone_surrogates_from_json_escapes_become_replacement_characters():
    data = b'{"title": "Broken \\ud800 escape in a title", "abstract": "ok"}\n'
    papers = parse([source("p.jsonl", data)], ParseConfig()).papers
    assert papers["title"].tolist() == ["Broken \ufffd escape in a title"]
    papers.to_parquet(os.devnull)  # writable as UTF-8


def test_records_without_title_or_abstract():
    rows = [
        ["", "An abstract without any title is still a paper about attention."],
        ["A title without any abstract at all", ""],
        ["", ""],
        ["?!?! ... ---", "*** ### !!! ??? ..."],  # no letters or digits: not a text
    ]
    data = csv_bytes(["title", "abstract", "id"], [[*row, str(n)] for n, row in enumerate(rows, 1)])
    result = parse([source("p.csv", data)], ParseConfig())
    assert result.papers[["title", "abstract"]].values.tolist() == [
        ["", "An abstract without any title is still a paper about attention."],
        ["A title without any abstract at all", ""],
    ]
    report = result.file_reports[0]
    assert report.skip_reasons == {"no title or abstract": 1, "no letters or digits in title or abstract": 1}
    assert report.first_skipped == {
        "no title or abstract": "row 3 (line 4)",
        "no letters or digits in title or abstract": "row 4 (line 5)",
    }
    with pytest.raises(InputError, match=r"^p\.csv: row 3 \(line 4\): no title or abstract$"):
        parse([source("p.csv", data)], ParseConfig(on_error="fail"))


def test_huge_abstract_and_title_are_cut_and_counted():
    huge_abstract = ("attention " * 520_000)[:5_000_000]  # 5 MB
    long_title = "Title " + "x" * 9_994  # 10,000 characters in one word
    data = csv_bytes(["title", "abstract"], [["A paper with a huge abstract", huge_abstract], [long_title, ABSTRACT]])
    result = parse([source("p.csv", data)], ParseConfig())
    abstracts, titles = result.papers["abstract"].tolist(), result.papers["title"].tolist()
    assert MAX_ABSTRACT_CHARS * 0.9 < len(abstracts[0]) <= MAX_ABSTRACT_CHARS
    assert abstracts[0].endswith("attention")  # cut at a word boundary
    assert len(titles[1]) == MAX_TITLE_CHARS  # one long word: cut at the limit
    assert result.file_reports[0].truncated == {"abstract": 1, "title": 1}
    assert result.file_reports[0].skipped == 0


def test_duplicate_ids_with_different_texts():
    data = jsonl(
        paper(1, id="2503.11731v1"),
        paper(2, id="2503.11731v2"),  # a new version of the same arXiv paper, retitled: the first one wins
        paper(3, id="doc-7"),
        paper(4, id="doc-7"),  # the input's own ids collide but the papers differ: both kept, ids made unique
    )
    result = parse([source("p.jsonl", data)], ParseConfig())
    assert result.papers[["paper_id", "title"]].values.tolist() == [
        ["2503.11731", "Paper number 1 on attention"],
        ["doc-7", "Paper number 3 on attention"],
        ["doc-7#2", "Paper number 4 on attention"],
    ]
    assert (result.file_reports[0].kept, result.file_reports[0].duplicates) == (3, 1)


def test_same_paper_from_two_sources_is_kept_once():
    page = (PAGE_HEAD + f"Sparse Attention for Small Models\n\n{PAGE_ABSTRACT}\n").encode()
    arxiv = jsonl(
        {
            "id": "2503.11731",
            "title": "Sparse  attention for small models",
            "summary": ABSTRACT,
            "abs": "https://arxiv.org/abs/2503.11731",
            "categories": ["cs.LG"],
        }
    )
    for order in ([("p.txt", page), ("2025-03-18.jsonl", arxiv)], [("2025-03-18.jsonl", arxiv), ("p.txt", page)]):
        result = parse([source(name, data) for name, data in order], ParseConfig())
        assert len(result.papers) == 1
        assert [(r.kept, r.duplicates) for r in result.file_reports] == [(1, 0), (0, 1)]
        assert result.papers["source"].tolist() == [order[0][0]]


MIXED_LANGUAGES = [
    (
        "基于注意力机制的图神经网络",
        "我们提出了一种新的图神经网络，利用注意力机制在大规模图上学习节点表示，并在多个基准上取得了最好的结果。",
    ),
    (
        "Трансформеры для анализа графов",
        "Мы предлагаем новую архитектуру трансформера для графов и показываем её эффективность "
        "на задачах классификации.",
    ),
    ("Graph transformers at scale", "We scale graph transformers to billions of edges with sparse attention."),
    ("大型语言模型的推理能力", "本文研究大型语言模型在数学推理任务上的能力，并分析思维链提示的效果。"),
]


def test_chinese_and_russian_abstracts_are_kept_with_their_own_identities():
    data = jsonl(*({"title": t, "abstract": a} for t, a in MIXED_LANGUAGES))
    result = parse([source("p.jsonl", data)], ParseConfig())
    assert result.papers["title"].tolist() == [t for t, _ in MIXED_LANGUAGES]
    assert result.papers["paper_id"].is_unique
    assert result.file_reports[0].duplicates == 0


def test_only_http_urls_are_kept_for_papers():
    data = jsonl(
        paper(1, url="javascript:alert(document.cookie)"),
        paper(2, url="data:text/html,<script>alert(1)</script>", id="2503.11731"),
        paper(3, url=" https://example.org/paper?id=3 "),
        paper(4, abstract=ABSTRACT + " Code: javascript:alert(1) and https://github.com/a/b."),
    )
    papers = parse([source("p.jsonl", data)], ParseConfig()).papers
    assert papers["url"].tolist() == ["", "https://arxiv.org/abs/2503.11731", "https://example.org/paper?id=3", ""]
    assert papers["links"].tolist() == ["", "", "", "https://github.com/a/b"]


# -- counted in the summary and the manifest -----------------------------------------------------
def test_skipped_and_cut_records_are_counted_in_summary_and_manifest(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli.console, "_width", 200)  # keep the summary table's rows on one line each
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(jsonl(paper(1), paper(2)) + b"{broken\n" + jsonl(paper(1)))
    (tmp_path / "in" / "b.csv").write_bytes(
        csv_bytes(["title", "abstract", "id"], [["Tiny", "", "1"], ["T" * 10_000, ABSTRACT, "2"], ["", "", "3"]])
        + b'Last,"cut'
    )
    config = write_config(tmp_path, [str(tmp_path / "in" / "*")], name="counted")
    code, err = run_cli(config, capsys, "--until", "parse")
    assert code == 0, err
    assert "read 8, papers 3, duplicates 1, skipped 4, truncated 1" in err
    manifest = json.loads((tmp_path / "out" / "counted" / "manifest.json").read_text())
    assert manifest["stages"]["parse"]["counts"] == {
        "read": 8,
        "papers": 3,
        "duplicates": 1,
        "skipped": 4,
        "truncated": 1,
    }
    reports = {Path(r["path"]).name: r for r in manifest["file_reports"]}
    assert reports["a.jsonl"]["skip_reasons"] == {"bad JSON": 1}
    assert reports["a.jsonl"]["first_skipped"] == {"bad JSON": "line 3"}
    assert reports["b.csv"]["skip_reasons"] == {
        "text shorter than 20 chars": 1,
        "no title or abstract": 1,
        "broken CSV record": 1,
    }
    assert reports["b.csv"]["truncated"] == {"title": 1}
    # With on_error: fail the same inputs stop at the first bad record, naming file and line.
    config = write_config(tmp_path, [str(tmp_path / "in" / "*")], name="strict", parse={"on_error": "fail"})
    code, err = run_cli(config, capsys, "--until", "parse")
    assert code == 2
    assert the_error(err) == f"{tmp_path}/in/a.jsonl: line 3: bad JSON (Expecting property name enclosed in " + (
        "double quotes at column 2)"
    )


# -- full runs: the run completes on mixed languages, and hostile text stays text ----------------
# Each payload marks the page's <body> if it ever runs, so a browser can tell (test below).
PWN = "document.body.setAttribute('data-pwned', '{}')"
HOSTILE_TITLE = f'<script>{PWN.format("script")}</script> Attention <img src=x onerror="{PWN.format("img")}">'
HOSTILE_AUTHORS = f'<svg onload="{PWN.format("svg")}">Mallory</svg>; =HYPERLINK("http://evil.example")'
HOSTILE_ABSTRACT = (
    f'<iframe src="javascript:parent.{PWN.format("iframe")}"></iframe> We study sparse attention. '
    f'See <a href="javascript:{PWN.format("link")}">the code</a> at https://github.com/a/b.'
)
HOSTILE_URL = f"javascript:{PWN.format('url')}"
# Raw markup of the payloads: none of it may appear unescaped in any page.
HOSTILE_MARKUP = ("<script>document", "<img src=x", "<iframe", "<svg onload", 'href="javascript:')
FORMULAS = ["=1+2", "+SUM(A1:A2)", "-2+3", "@cmd", '=HYPERLINK("http://evil.example","x")']


def _full_corpus(folder: Path) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {"title": HOSTILE_TITLE, "abstract": HOSTILE_ABSTRACT, "authors": HOSTILE_AUTHORS, "url": HOSTILE_URL},
        *({"title": f"{formula} Sparse attention", "abstract": f"{formula} {ABSTRACT}"} for formula in FORMULAS),
        *({"title": t, "abstract": a} for t, a in MIXED_LANGUAGES),
        {"title": "A paper with a huge abstract", "abstract": ("attention layers " * 300_000)},
        {"title": "T" * 10_000, "abstract": ABSTRACT},
    ]
    with open(folder / "messy.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["title", "abstract", "authors", "url"])
        writer.writeheader()
        writer.writerows(rows)
    return [str(SEED_PAGE), str(folder / "messy.csv")]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One full CLI run over the 23-paper seed page plus a file of messy, multilingual and hostile records."""
    tmp_path = tmp_path_factory.mktemp("full")
    inputs = _full_corpus(tmp_path / "in")
    config = write_config(tmp_path, inputs, name="messy")
    with pytest.MonkeyPatch.context() as patch:  # the autouse fixture is function-scoped
        block_network(patch)
        code = main(["run", str(config)])
    assert code == 0
    return tmp_path / "out" / "messy"


def test_network_is_off_in_these_tests():
    with pytest.raises(OSError, match="network access is switched off"):
        socket.create_connection(("example.org", 80), timeout=1)
    with pytest.raises(OSError, match="network access is switched off"):
        socket.socket().connect(("127.0.0.1", 9))


@pytest.mark.slow
def test_full_run_keeps_every_language_and_cuts_huge_fields(full_run):
    papers = pd.read_csv(full_run / "papers.csv", keep_default_na=False)
    assert len(papers) == 23 + 1 + len(FORMULAS) + len(MIXED_LANGUAGES) + 2
    for title, _ in MIXED_LANGUAGES:
        assert title in set(papers["title"])
    assert papers["abstract"].str.len().max() <= MAX_ABSTRACT_CHARS
    assert papers["title"].str.len().max() <= MAX_TITLE_CHARS
    manifest = json.loads((full_run / "manifest.json").read_text())
    assert manifest["stages"]["parse"]["counts"]["truncated"] == 2
    assert set(manifest["stages"]) == {"parse", "embed", "cluster", "label", "report"}


@pytest.mark.slow
def html_pages(run_dir: Path) -> dict[str, str]:
    return {path.relative_to(run_dir).as_posix(): path.read_text(encoding="utf-8") for path in run_dir.rglob("*.html")}


@pytest.mark.slow
def test_hostile_text_is_text_in_every_page(full_run):
    pages = html_pages(full_run)
    assert {"index.html", "map.html", "topics.html"} <= set(pages)
    for name, html in pages.items():
        for raw in HOSTILE_MARKUP:
            assert raw not in html, (name, raw)
        # Every link and every script the page loads is relative (a file of the run) or http(s): no other scheme.
        for url in re.findall(r"""(?:href|src)\s*=\s*["']([^"']*)["']""", html):
            scheme = re.match(r"\s*([a-zA-Z][a-zA-Z0-9+.-]*):", url)
            assert scheme is None or scheme.group(1).lower() in ("http", "https"), (name, url)
    # The title is shown, as text: HTML-escaped in a page, or JSON-escaped in the map's data.
    html_escaped = "&lt;script&gt;document.body.setAttribute("
    json_escaped = "\\u003cscript\\u003edocument.body.setAttribute("
    assert any(html_escaped in html for html in pages.values())
    assert json_escaped in pages["map.html"] or html_escaped in pages["map.html"]


@pytest.mark.slow
@pytest.mark.browser
def test_no_payload_runs_in_a_browser(full_run):
    """Chromium opens the overview, the map, the topic charts and every topic page: no payload marks <body>."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (tests/setup_browser.sh installs it)")
    hostile_pages = [name for name, html in html_pages(full_run).items() if "Mallory" in html]
    for name in sorted({"index.html", "map.html", "topics.html", *hostile_pages}):
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--proxy-server=127.0.0.1:9", "--virtual-time-budget=3000", "--dump-dom", (full_run / name).as_uri()],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        body = re.search(r"<body[^>]*>", dom)
        assert body is not None, name
        assert "data-pwned" not in body.group(0), (name, body.group(0))  # the text itself is on the page


@pytest.mark.slow
def test_hostile_text_in_csvs_is_neutralised_and_topic_files_are_slugs(full_run):
    csv_files = [full_run / "papers.csv", full_run / "topics.csv", *sorted((full_run / "topics").iterdir())]
    for path in csv_files:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                for cell in row:
                    # Only a number may start with "-" (a negative score); text cells are prefixed with "'".
                    assert not cell.startswith(("=", "+", "@", "\t", "\r")), (path.name, cell)
                    assert not cell.startswith("-") or re.fullmatch(r"-\d+(\.\d+)?", cell), (path.name, cell)
    papers = pd.read_csv(full_run / "papers.csv", keep_default_na=False, dtype=str)
    hostile = papers[papers["title"].str.contains("script", regex=False)].iloc[0]
    assert hostile["title"] == HOSTILE_TITLE  # kept as text, not stripped
    assert hostile["authors"] == HOSTILE_AUTHORS
    assert hostile["url"] == ""  # the javascript: url was dropped at parse
    assert hostile["links"] == "https://github.com/a/b"
    assert set(papers.loc[papers["title"].str.startswith("'"), "title"]) == {f"'{f} Sparse attention" for f in FORMULAS}
    for path in (full_run / "topics").iterdir():
        assert re.fullmatch(r"(\d{2,}(-[a-z0-9-]+)?|outliers-unassigned)\.[a-z]+", path.name), path.name


@pytest.mark.slow
def test_papers_of_nothing_but_boilerplate_still_give_a_report(tmp_path):
    rows = [
        ["We propose a novel approach", "The results of this paper are state-of-the-art and we show that it is so."],
        ["We present a new method", "In this paper we show the results are better than the state of the art."],
        ["This is about it", "We are here and there and it is what it is, so be it for all of them."],
    ]
    (tmp_path / "p.csv").write_bytes(csv_bytes(["title", "abstract"], rows))
    config = write_config(tmp_path, [str(tmp_path / "p.csv")], name="boilerplate", label={"representation": "mmr"})
    assert main(["run", str(config)]) == 0
    assert (tmp_path / "out" / "boilerplate" / "topics.csv").is_file()
