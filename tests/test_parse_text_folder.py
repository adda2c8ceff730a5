"""Folders of plain-text documents labelled by sub-folder: BBC News and 20 Newsgroups layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import InputSpec, ParseConfig
from pipeline.errors import InputError
from pipeline.parse import parse
from pipeline.sources import collect_sources

CORPORA = Path(__file__).parents[1].parent / "shared" / "corpora"
BBC = CORPORA / "bbc-news"
NEWS = CORPORA / "20newsgroups"

POST = (
    "From: ann@example.org (Ann)\nSubject: Re: Shuttle launch delayed\nOrganization: Space Lab\nLines: 3\n\n"
    "The launch moved to Friday\nbecause of the weather over the cape.\n"
)
OTHER_POST = POST.replace("moved to Friday", "moved to Monday")


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"shared corpus not present at {path}")


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    for relpath, data in {
        "README.TXT": b"About this corpus: five sections of news stories, 2004-2005.",
        "sport/001.txt": b"Chelsea sack Mutu\n\nChelsea have sacked Adrian Mutu\nafter a failed test.\n",
        "sport/002.txt": "Fee of \xa315m agreed\n\nThe club paid a record fee.\n".encode("latin-1"),
        "tech/001.txt": "\ufeffPhones get\x00 smarter\n\nCaf\u00e9 owners like them.\n".encode("utf-8"),
        "tech/002.txt": b"Chelsea sack Mutu\n\nThe same headline filed twice.\n",
        "sci.space/1001": POST.encode(),
        "sci.space/1002": OTHER_POST.encode(),
    }.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_generated_folder_reads_titles_labels_and_encodings(tmp_path):
    root = _folder(tmp_path)
    result = parse(collect_sources([InputSpec(path=str(root))]), ParseConfig())
    papers = result.papers.set_index("paper_id")
    assert list(papers.index) == ["sci.space/1001", "sci.space/1002", "sport/001.txt", "sport/002.txt", "tech/001.txt"]
    assert papers.loc["sport/001.txt", ["title", "abstract", "label"]].tolist() == [
        "Chelsea sack Mutu",
        "Chelsea have sacked Adrian Mutu after a failed test.",
        "sport",
    ]
    assert papers.loc["sport/002.txt", "title"] == "Fee of \u00a315m agreed"  # latin-1 byte 0xA3
    assert papers.loc["tech/001.txt", "title"] == "Phones get smarter"  # BOM and NUL gone
    assert papers.loc["tech/001.txt", "abstract"] == "Caf\u00e9 owners like them."
    assert papers.loc["sci.space/1001", ["title", "abstract", "label"]].tolist() == [
        "Re: Shuttle launch delayed",
        "The launch moved to Friday because of the weather over the cape.",
        "sci.space",
    ]
    assert papers.loc["sport/001.txt", "source"] == str(root / "sport" / "001.txt")
    # One report for the whole folder; the README beside the label folders is not a document,
    # the repeated headline is a duplicate, two posts sharing a subject are not.
    assert [r.to_dict() for r in result.file_reports] == [
        {
            "path": str(root),
            "reader": "text-folder",
            "read": 7,
            "kept": 5,
            "duplicates": 1,
            "duplicates_other_text": 0,
            "skipped": 1,
            "skip_reasons": {"not inside a label folder": 1},
            "first_skipped": {"not inside a label folder": "README.TXT"},
            "truncated": {},
            "date_rule": "",  # no dates: nothing to date
            "date_reference": "",
            "date_errors": {},
            "first_date_error": {},
        }
    ]


def test_readme_is_not_a_bad_record_in_fail_mode(tmp_path):
    root = _folder(tmp_path)
    papers = parse(collect_sources([InputSpec(path=str(root))]), ParseConfig(on_error="fail")).papers
    assert len(papers) == 5


def test_empty_and_binary_documents_are_skipped(tmp_path):
    root = tmp_path / "docs"
    for relpath, data in {
        "a/1.txt": b"",
        "a/2.bin": bytes(range(32)) * 40,
        "a/3.txt": b"Title line\r\n\r\nBody text here.\r\n",
    }.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)
    result = parse(collect_sources([InputSpec(path=str(root), format="text-folder")]), ParseConfig())
    assert result.papers[["paper_id", "title", "abstract", "label"]].values.tolist() == [
        ["a/3.txt", "Title line", "Body text here.", "a"]
    ]
    assert result.file_reports[0].skip_reasons == {"empty file": 1, "binary file": 1}
    with pytest.raises(InputError, match=r"docs: a/1\.txt: empty file"):
        parse(collect_sources([InputSpec(path=str(root), format="text-folder")]), ParseConfig(on_error="fail"))


def test_text_folder_of_unreadable_documents_fails(tmp_path):
    (tmp_path / "docs" / "a").mkdir(parents=True)
    (tmp_path / "docs" / "a" / "1.txt").write_bytes(b"tiny")
    with pytest.raises(InputError, match=r"docs: holds no papers \(text shorter than 20 chars: 1\)"):
        parse(collect_sources([InputSpec(path=str(tmp_path / "docs"))]), ParseConfig())


@pytest.mark.corpora
def test_full_bbc_corpus():
    _need(BBC)
    result = parse(collect_sources([InputSpec(path=str(BBC))]), ParseConfig())
    papers = result.papers
    (report,) = result.file_reports
    # 2225 articles + README.TXT at bbc/ and the corpus README.txt at the root.
    assert (report.read, report.skipped) == (2227, 2)
    assert report.skip_reasons == {"not inside a label folder": 2}
    # The README counts 100 exact duplicate texts; same-headline dedupe merges those and
    # 30 more re-filed versions of a story under the same headline: 2225 - 130 kept.
    assert (report.kept, report.duplicates) == (2095, 130)
    assert papers["label"].value_counts().to_dict() == {
        "business": 500,
        "sport": 500,
        "politics": 397,
        "entertainment": 365,
        "tech": 333,
    }
    sport199 = papers.set_index("paper_id").loc["bbc/sport/199.txt"]
    assert sport199["title"] == "Chelsea sack Mutu"
    assert "a \u00a315.8m signing from Parma" in sport199["abstract"]
    assert papers["title"].str.len().min() > 0


@pytest.mark.corpora
def test_bbc_without_dedupe_keeps_every_article():
    _need(BBC)
    result = parse(collect_sources([InputSpec(path=str(BBC / "bbc"))]), ParseConfig(dedupe=False))
    assert len(result.papers) == 2225 and result.papers["paper_id"].is_unique
    assert result.file_reports[0].skip_reasons == {"not inside a label folder": 1}


@pytest.mark.corpora
def test_20newsgroups_subfolders():
    _need(NEWS)
    specs = [
        InputSpec(path=str(NEWS / "20news-bydate-train" / "sci.space"), format="text-folder"),
        InputSpec(path=str(NEWS / "20news-bydate-test" / "rec.autos"), format="text-folder"),
    ]
    result = parse(collect_sources(specs), ParseConfig())
    papers = result.papers
    assert [r.read for r in result.file_reports] == [593, 396]
    # The spec path is one group's folder (no sub-folders): the folder itself is the label folder.
    assert set(papers["label"]) == {"sci.space", "rec.autos"}
    assert not papers["title"].str.startswith("Subject:").any()
    assert papers["paper_id"].is_unique
    post = papers.set_index("paper_id").loc["59497"]  # a file read by hand, sci.space/59497
    assert post["title"] == "Re: Gravity waves, was: Predicting gravity wave quantization & Cosmic Noise"
    assert post["abstract"].startswith(
        "In article <C4KvJF.4qo@well.sf.ca.us> metares@well.sf.ca.us (Tom Van Flandern) writes:"
    )
    assert "Nntp-Posting-Host" not in post["abstract"] and "Organization:" not in post["abstract"]
    # Replies share subjects ("Re: ..."), but posts are only merged when the text is the same too:
    # 989 posts carry only 513 distinct subjects, and none of them is dropped.
    assert papers["title"].nunique() == 513
    assert len(papers) == 989
    assert sum(r.duplicates for r in result.file_reports) == 0
