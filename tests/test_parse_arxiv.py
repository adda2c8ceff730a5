"""arXiv readers on the Kaggle snapshot CSV and daily scrape files from the shared corpora.

Plus small
generated snapshot/daily files for the layouts the corpora do not cover (JSON snapshot, .gz, junk).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pipeline.config import InputSpec, ParseConfig
from pipeline.errors import InputError
from pipeline.parse import parse
from pipeline.sources import SourceFile, collect_sources

CORPORA = Path(__file__).parents[1].parent / "shared" / "corpora"
KAGGLE = CORPORA / "arxiv-kaggle-2000" / "arxiv_data.csv"
DAILY = CORPORA / "arxiv-daily-cs" / "data"


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"shared corpus not present at {path}")


def _source(name: str, data: bytes, fmt: str = "auto") -> SourceFile:
    return SourceFile(path=name, data=data, sha256="0" * 64, spec=InputSpec(path=name, format=fmt))


SNAPSHOT_RECORD = {
    "id": "0704.0002",
    "submitter": "Louis Theran",
    "authors": "Ileana Streinu and Louis Theran",
    "title": "Sparsity-certifying Graph\n  Decompositions",
    "comments": "To appear in Graphs and Combinatorics",
    "journal-ref": None,
    "doi": None,
    "report-no": None,
    "categories": "math.CO cs.CG",
    "license": None,
    "abstract": (
        "  We describe a new algorithm, the $(k,\\ell)$-pebble game with colors, and use\n"
        "it obtain a characterization of the family of $(k,\\ell)$-sparse graphs.\n"
    ),
    "versions": [{"version": "v1", "created": "Sat, 31 Mar 2007 02:26:18 GMT"}],
    "update_date": "2008-12-13",
    "authors_parsed": [["Streinu", "Ileana", ""], ["Theran", "Louis", ""]],
}


def _daily_line(arxiv_id: str, title: str, categories: list[str]) -> str:
    return json.dumps(
        {
            "id": arxiv_id,
            "pdf": f"https://arxiv.org/pdf/{arxiv_id}",
            "abs": f"https://arxiv.org/abs/{arxiv_id}",
            "authors": ["Ada Lovelace", "Alan Turing"],
            "title": title,
            "categories": categories,
            "comment": None,
            "summary": "A method for\nlearning things with hard line breaks in the\nabstract, as arXiv has.",
        }
    )


@pytest.mark.corpora
def test_kaggle_snapshot_csv():
    _need(KAGGLE)
    result = parse(collect_sources([InputSpec(path=str(KAGGLE))]), ParseConfig())
    papers = result.papers
    assert len(papers) == 2000
    assert result.file_reports[0].to_dict() == {
        "path": str(KAGGLE),
        "reader": "arxiv-snapshot",
        "read": 2000,
        "kept": 2000,
        "duplicates": 0,
        "duplicates_other_text": 0,
        "skipped": 0,
        "skip_reasons": {},
        "first_skipped": {},
        "truncated": {},
        "date_rule": "",  # full dates: no year to infer
        "date_reference": "",
        "date_errors": {},
        "first_date_error": {},
    }
    assert papers["label"].nunique() == 108
    assert papers["label"].value_counts().iloc[0] == 398  # astro-ph, per the corpus README
    first = papers.iloc[0]
    assert first["paper_id"] == "0704.0001"
    assert first["url"] == "https://arxiv.org/abs/0704.0001"
    assert first["date"] == "2008-11-26"
    assert first["label"] == "hep-ph"
    assert first["title"] == "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies"
    assert first["abstract"].startswith(
        "A fully differential calculation in perturbative quantum chromodynamics is presented"
    )
    assert "\n" not in first["abstract"]
    assert first["authors"] == "C. Bal\\'azs; E. L. Berger; P. M. Nadolsky; C.-P. Yuan"
    # The spreadsheet dropped trailing zeros too: '704.001' was 0704.0010, '704.2' was 0704.2000.
    assert {"0704.0010", "0704.2000", "0704.1999"} <= set(papers["paper_id"])
    assert papers["paper_id"].is_unique
    assert papers["paper_id"].str.fullmatch(r"0704\.\d{4}").all()
    assert papers["date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert papers.set_index("paper_id").loc["0704.0002", "authors"] == "Ileana Streinu; Louis Theran"


@pytest.mark.corpora
def test_first_three_daily_files_merge_repeats():
    _need(DAILY)
    files = sorted(DAILY.glob("*.jsonl"))[:3]
    raw_ids = [json.loads(line)["id"] for path in files for line in path.read_text().splitlines() if line.strip()]
    specs = [InputSpec(path=str(DAILY / "2025-03-1[89].jsonl")), InputSpec(path=str(DAILY / "2025-03-20.jsonl"))]
    result = parse(collect_sources(specs), ParseConfig())
    papers = result.papers
    assert [r.path for r in result.file_reports] == [str(p) for p in files]
    assert len(papers) == len(set(raw_ids)) == 711
    assert sum(r.duplicates for r in result.file_reports) == len(raw_ids) - 711
    assert [r.reader for r in result.file_reports] == ["arxiv-daily"] * 3
    assert papers["paper_id"].is_unique
    first = papers.iloc[0]
    assert (first["paper_id"], first["date"], first["label"]) == ("2503.11731", "2025-03-18", "cs.CV")
    assert first["url"] == "https://arxiv.org/abs/2503.11731"
    assert first["authors"].startswith("Xianming Zeng; Sicong Du; ")
    assert not papers["abstract"].str.contains("\n").any()
    # A paper first listed on 03-18 keeps that date even when it re-appears later.
    assert set(papers["date"]) <= {"2025-03-18", "2025-03-19", "2025-03-20"}
    assert not papers["label"].str.contains(r"[ ,;]").any()


def test_snapshot_json_lines():
    data = (json.dumps(SNAPSHOT_RECORD) + "\n").encode()
    result = parse([_source("snap.jsonl", data)], ParseConfig())
    row = result.papers.iloc[0]
    assert result.file_reports[0].reader == "arxiv-snapshot"
    assert row["title"] == "Sparsity-certifying Graph Decompositions"
    assert row["abstract"].startswith(
        "We describe a new algorithm, the $(k,\\ell)$-pebble game with colors, and use it obtain"
    )
    assert (row["paper_id"], row["label"], row["date"]) == ("0704.0002", "math.CO", "2008-12-13")
    assert row["authors"] == "Ileana Streinu; Louis Theran"


def test_snapshot_json_lines_keep_versioned_and_old_style_ids():
    records = [
        {**SNAPSHOT_RECORD, "id": "hep-th/9901001v2", "title": "Old style", "categories": "hep-th"},
        {**SNAPSHOT_RECORD, "id": "0704.0002v3", "title": "Versioned"},
        {**SNAPSHOT_RECORD, "id": "0704.0002", "title": "Versioned again"},
    ]
    data = "\n".join(json.dumps(r) for r in records).encode()
    result = parse([_source("snap.jsonl", data)], ParseConfig())
    assert result.papers["paper_id"].tolist() == ["hep-th/9901001", "0704.0002"]
    assert result.file_reports[0].duplicates == 1


def test_daily_gz_glob_and_dates(tmp_path):
    lines = [
        _daily_line("2503.00001v2", "Paper One", ["cs.CL", "cs.AI"]),
        _daily_line("2503.00002", "Paper Two", ["cs.CV", "68T07, 68U10"]),
        _daily_line("2503.00001", "Paper One (again)", ["cs.CL"]),
    ]
    (tmp_path / "2025-03-21.jsonl.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    (tmp_path / "extra.jsonl").write_text(_daily_line("2411.09999", "Paper Three", ["68T07, 68U10", "cs.LG"]))
    result = parse(collect_sources([InputSpec(path=str(tmp_path / "*.jsonl*"))]), ParseConfig())
    papers = result.papers
    assert papers["paper_id"].tolist() == ["2503.00001", "2503.00002", "2411.09999"]
    assert papers["date"].tolist() == ["2025-03-21", "2025-03-21", "2024-11"]
    assert papers["label"].tolist() == ["cs.CL", "cs.CV", "68T07, 68U10"]
    assert papers["authors"].tolist() == ["Ada Lovelace; Alan Turing"] * 3
    assert (
        papers["abstract"].iloc[0]
        == "A method for learning things with hard line breaks in the abstract, as arXiv has."
    )
    assert [(r.kept, r.duplicates) for r in result.file_reports] == [(2, 1), (1, 0)]


def test_arxiv_id_dedupes_across_formats():
    daily = _source("2025-03-21.jsonl", _daily_line("0704.0002v1", "Same paper", ["math.CO"]).encode())
    snapshot = _source("snap.jsonl", json.dumps(SNAPSHOT_RECORD).encode())
    result = parse([daily, snapshot], ParseConfig())
    assert result.papers["paper_id"].tolist() == ["0704.0002"]
    assert result.file_reports[1].duplicates == 1


def test_bad_json_line_is_skipped_or_fails():
    data = (_daily_line("2503.00001", "Paper One", ["cs.CL"]) + "\n{not json\n").encode()
    result = parse([_source("2025-03-21.jsonl", data, fmt="arxiv-daily")], ParseConfig())
    assert len(result.papers) == 1
    assert result.file_reports[0].skip_reasons == {"bad JSON": 1}
    assert result.file_reports[0].read == 2
    with pytest.raises(InputError, match=r"^2025-03-21\.jsonl: line 2: bad JSON"):
        parse([_source("2025-03-21.jsonl", data, fmt="arxiv-daily")], ParseConfig(on_error="fail"))


def test_record_without_a_usable_id_is_skipped():
    records = [SNAPSHOT_RECORD, {**SNAPSHOT_RECORD, "id": "not-an-id"}]
    data = "\n".join(json.dumps(r) for r in records).encode()
    result = parse([_source("snap.jsonl", data, fmt="arxiv-snapshot")], ParseConfig())
    assert result.file_reports[0].skip_reasons == {"not an arXiv id": 1}


def test_kept_unit_reads_give_a_cold_parse_and_a_grown_input_reads_only_its_new_file(tmp_path, monkeypatch):
    import hashlib
    from dataclasses import replace
    from datetime import date

    from pipeline import parse as parse_module
    from pipeline.memo import MemoStore

    def source(name: str, lines: list[str]) -> SourceFile:
        data = ("\n".join(lines) + "\n{not json\n").encode()
        made = _source(name, data, fmt="arxiv-daily")
        return replace(made, sha256=hashlib.sha256(data).hexdigest())

    days = [
        source("2025-03-20.jsonl", [_daily_line("2503.00001", "Graph networks", ["cs.LG"])]),
        source("2025-03-21.jsonl", [_daily_line("2503.00001v2", "Graph networks", ["cs.LG"]),  # its v2 replaces it
                                    _daily_line("2503.00002", "Protein folding", ["q-bio.BM"])]),
        source("2099-01-01.jsonl", [_daily_line("2503.00003", "Dated after today", ["cs.CL"])]),
    ]  # fmt: skip
    calls: list[str] = []
    reader = parse_module.READERS["arxiv-daily"]
    monkeypatch.setitem(parse_module.READERS, "arxiv-daily", lambda unit: calls.append(unit[0].path) or reader(unit))
    memo = MemoStore(tmp_path)

    def same(first, second) -> None:
        assert first.papers.equals(second.papers)
        assert [r.to_dict() for r in first.file_reports] == [r.to_dict() for r in second.file_reports]

    cold = parse(days[:2], ParseConfig())
    same(parse(days[:2], ParseConfig(), memo=memo), cold)
    calls.clear()
    same(parse(days[:2], ParseConfig(), memo=memo), cold)  # every unit kept: no file read again
    assert calls == []
    grown = parse(days, ParseConfig(), memo=memo)
    assert calls == ["2099-01-01.jsonl"]  # only the new day is read
    same(grown, parse(days, ParseConfig()))
    assert [r.duplicates for r in grown.file_reports] == [1, 0, 0]  # the later version is kept, wherever it is read
    assert grown.file_reports[2].date_errors == {"listing date in the future": 1}
    assert grown.file_reports[0].skip_reasons == {"bad JSON": 1}
    calls.clear()
    later = parse(days, ParseConfig(), today=date(2100, 1, 1), memo=memo)  # a later day: nothing read again
    assert calls == [] and later.file_reports[2].date_errors == {}  # 2099-01-01 is no longer in the future
    same(later, parse(days, ParseConfig(), today=date(2100, 1, 1)))
    calls.clear()
    edited = [source("2025-03-20.jsonl", [_daily_line("2503.00009", "Saved again", ["cs.LG"])]), *days[1:]]
    again = parse(edited, ParseConfig(), memo=memo)  # a file saved again under its name: read again
    assert calls == ["2025-03-20.jsonl"] and "2503.00009" in again.papers["paper_id"].tolist()
    calls.clear()
    other = parse(days, ParseConfig(min_text_chars=5), memo=memo)  # other settings: every file read again
    assert len(other.papers) == 3 and len(calls) == 3
