"""The report's kept parts (``pipeline.report.kept``): served when their inputs stay, made again when one changes."""

from __future__ import annotations

import hashlib
import importlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import pipeline.report
from pipeline.config import load_config
from pipeline.report.kept import TextRows, TopicCsvsArrays
from pipeline.runner import run_pipeline
from pipeline.stages import STAGE_NAMES
from pipeline.store import ArtifactStore

pytestmark = pytest.mark.slow
CREATED = re.compile(rb"run kept \xc2\xb7 [0-9T:+\-]+")  # the time a page was made (base.html)


def run(folder: Path, seed_pages: list[Path], report: dict | None = None, **label) -> Path:
    raw = {"name": "kept", "output_dir": str(folder), "inputs": [str(page) for page in seed_pages]}
    path = folder.parent / f"{folder.name}.yaml"
    sections = {**({"label": label} if label else {}), **({"report": report} if report else {})}
    path.write_text(yaml.safe_dump({**raw, **sections}))
    return run_pipeline(load_config(path)).run_dir


def report_digests(run_dir: Path) -> dict[str, str]:
    """papers.csv, topics.csv and every topic's CSV and page (the page's making time left out)."""
    files = [run_dir / "papers.csv", run_dir / "topics.csv", *sorted((run_dir / "topics").iterdir())]
    return {str(f.relative_to(run_dir)): hashlib.sha256(CREATED.sub(b"", f.read_bytes())).hexdigest() for f in files}


@pytest.fixture
def calls(monkeypatch) -> dict[str, int]:
    """How often this run computed each kept part (the functions still compute)."""
    counted = {"topic-csvs": 0, "topic-page-rows": 0}
    for module, name, part in ((pipeline.report, "topic_csvs", "topic-csvs"),
                               (importlib.import_module("pipeline.report.topic_pages"), "_paper_cells",
                                "topic-page-rows")):  # fmt: skip
        real = getattr(module, name)

        def counting(*args, _real=real, _part=part, **kwargs):
            counted[_part] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)
    return counted


def test_a_keyword_setting_reuses_the_kept_parts_and_writes_the_same_files(tmp_path, seed_pages, calls):
    kept, fresh = tmp_path / "kept", tmp_path / "fresh"
    run(kept, seed_pages)
    assert calls == {"topic-csvs": 1, "topic-page-rows": 1}
    shutil.copytree(kept, fresh)
    shutil.rmtree(fresh / ".cache")  # every part made again there
    served = run(kept, seed_pages, n_keywords=7)
    assert calls == {"topic-csvs": 1, "topic-page-rows": 1}  # both read back: no paper moved, no name changed
    made = run(fresh, seed_pages, n_keywords=7)
    assert calls == {"topic-csvs": 2, "topic-page-rows": 2}
    assert report_digests(served) == report_digests(made)


def published(run_dir: Path) -> list[str]:
    """The files the run's report stage published (its ``published.json``, read through the store)."""
    store = ArtifactStore(run_dir, run_dir.parent / ".cache", STAGE_NAMES)
    return sorted(store.read_json("report", "published.json"))


def all_digests(run_dir: Path) -> dict[str, str]:
    """Every published file's hash, the page's making time left out."""
    return {
        path: hashlib.sha256(CREATED.sub(b"", (run_dir / path).read_bytes())).hexdigest() for path in published(run_dir)
    }


def test_a_relabels_report_is_the_bytes_of_a_full_report_made_from_nothing(tmp_path, seed_pages):
    kept, fresh = tmp_path / "kept", tmp_path / "fresh"
    kept_run = run(kept, seed_pages)
    first = {path: (kept_run / path).stat().st_ino for path in published(kept_run)}
    shutil.copytree(kept, fresh)
    shutil.rmtree(fresh / ".cache")  # every kept part made again there
    fresh_run = fresh / kept_run.name
    for path in published(fresh_run):
        (fresh_run / path).unlink()  # and no earlier report to link a file from: every file written
    served = run(kept, seed_pages, n_keywords=7)
    made = run(fresh, seed_pages, n_keywords=7)
    assert published(served) == published(made)
    # index.html and feed.atom show the run's times (index.html its folder too): equal in no two runs.
    timed = {"index.html", "feed.atom"}
    assert {path: digest for path, digest in all_digests(served).items() if path not in timed} == {
        path: digest for path, digest in all_digests(made).items() if path not in timed
    }
    # The relabel took the short way: its unchanged files are the last report's, linked, not written again
    # (the pages show when they were made, so only the CSVs and assets can be).
    linked = {path for path in published(served) if (served / path).stat().st_ino == first.get(path)}
    assert "papers.csv" in linked and any(path.startswith("topics/") and path.endswith(".csv") for path in linked)
    assert not ({"topics.csv"} | timed) & linked  # other keywords, other times: written


def test_each_part_is_made_again_when_one_of_its_inputs_changes(tmp_path, seed_pages, calls):
    folder = tmp_path / "out"
    first = report_digests(run(folder, seed_pages))
    names = report_digests(run(folder, seed_pages, name_phrases=1))  # other names: the CSVs' topic_name
    assert calls == {"topic-csvs": 2, "topic-page-rows": 1}
    assert names["papers.csv"] != first["papers.csv"]
    run(folder, seed_pages, {"topic_page_papers": 2}, name_phrases=1)  # fewer rows per page; same CSVs
    assert calls == {"topic-csvs": 2, "topic-page-rows": 2}
    moved = report_digests(run(folder, seed_pages, {"topic_page_papers": 2}, name_phrases=1, n_topics=2))
    assert calls == {"topic-csvs": 3, "topic-page-rows": 3}  # other assignments: both made again
    assert moved["papers.csv"] != names["papers.csv"]


def test_kept_parts_that_do_not_add_up_are_refused():
    """A kept part whose sizes and bytes disagree raises ValueError (the memo then makes it again)."""
    rows = TextRows()
    arrays = rows.encode(["<td>é</td>", "", "<td>b</td>"])
    assert rows.decode(arrays) == ["<td>é</td>", "", "<td>b</td>"]
    with pytest.raises(ValueError, match="do not add up"):
        rows.decode({**arrays, "sizes": arrays["sizes"] + np.array([1, 0, 0])})
    csvs = TopicCsvsArrays()
    value = (b"h\n", {-1: b"h\nx\n", 3: b"h\ny\n"})
    assert csvs.decode(csvs.encode(value)) == value
    with pytest.raises(ValueError, match="one file per topic"):
        csvs.decode({**csvs.encode(value), "topics": np.array([-1], dtype=np.int64)})


def test_the_stage_keys_the_kept_parts_by_the_papers_and_the_assignments(tmp_path):
    """Another papers or assignments table (its hash in the store) misses what an earlier one kept."""
    from types import SimpleNamespace

    from pipeline.memo import MemoStore
    from pipeline.stages.report import KEPT_PARTS_MAX_PAPERS, _kept_parts

    hashes = {("parse", "papers.parquet"): "p1", ("label", "assignments.parquet"): "a1"}
    store = SimpleNamespace(cache=MemoStore(tmp_path), input_hash=lambda stage, name: hashes[stage, name])
    context = SimpleNamespace(store=store)
    made: list[int] = []

    def part(number: int) -> list[str]:
        memo = _kept_parts(context, 100)  # type: ignore[arg-type]
        return memo("rows", {"n": 1}, lambda: made.append(number) or [f"row {number}"], TextRows())

    assert part(1) == ["row 1"] and part(2) == ["row 1"]  # the second run reads the first one's
    hashes["label", "assignments.parquet"] = "a2"
    assert part(3) == ["row 3"]
    hashes["parse", "papers.parquet"] = "p2"
    assert part(4) == ["row 4"] and part(5) == ["row 4"]
    assert made == [1, 3, 4]
    big = _kept_parts(context, KEPT_PARTS_MAX_PAPERS + 1)  # type: ignore[arg-type]
    assert big("rows", {"n": 1}, lambda: ["made"], TextRows()) == ["made"]  # above the cap nothing is kept
