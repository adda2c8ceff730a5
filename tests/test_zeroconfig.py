"""Runs without a YAML file: what ``papertopics run FILES`` and ``papertopics init FILES`` decide and say."""

from __future__ import annotations

import argparse
import os
import shutil
from datetime import date

import pytest
import yaml

from pipeline.cli import _run_config, main
from pipeline.config import RunConfig, parse_config
from pipeline.zeroconfig import decide, default_name
from tests.conftest import SAMPLES

TABLE = "Title,Summary,Published,Category\nGraph networks for molecules,We learn on graphs of atoms.,2024-05-01,cs.LG\n"


@pytest.fixture
def pages(tmp_path):
    """The two seed pages, modified on 2025-03-04, with no date in their names."""
    folder = tmp_path / "pages"
    folder.mkdir()
    for page in sorted(SAMPLES.glob("*.txt")):
        copy = folder / page.name
        shutil.copy(page, copy)
        stamp = 1741089600  # 2025-03-04 12:00 UTC
        os.utime(copy, (stamp, stamp))
    return folder


def test_pages_are_sniffed_and_dated_by_their_modification_day(pages):
    decisions = decide([str(pages / "*.txt")], today=date(2026, 1, 1))
    assert decisions.config.name == "pages"
    assert [f.format for f in decisions.files] == ["hf-daily-papers", "hf-daily-papers"]
    assert all("file's modification day (2025-03-04)" in f.dates for f in decisions.files)
    lines = decisions.lines()
    assert lines[0] == "run 'pages' into outputs/pages/ with every setting at its default"
    assert lines[1].startswith(f"2 files like {pages}/") and "format hf-daily-papers" in lines[1]


def test_a_table_says_which_column_is_which(tmp_path):
    table = tmp_path / "my pile.csv"
    table.write_text(TABLE, encoding="utf-8")
    decisions = decide([str(table)], output_dir=str(tmp_path / "out"))
    (decided,) = decisions.files
    assert decided.format == "table"
    assert decided.columns == {"title": "Title", "abstract": "Summary", "date": "Published", "label": "Category"}
    assert decided.dates == "dates from column 'Published'"
    assert decisions.config.name == "my-pile" and decisions.config.output_dir == str(tmp_path / "out")
    assert (
        "columns title <- 'Title', abstract <- 'Summary', date <- 'Published', label <- 'Category'"
        in (decisions.lines()[1])
    )


@pytest.mark.parametrize(
    ("patterns", "name"),
    [
        (["data/samples/*.txt"], "samples"),
        (["papers.csv.gz"], "papers"),
        (["/x/my pile/"], "my-pile"),
        (["*"], "papers"),
    ],
)
def test_default_name_comes_from_the_first_input(patterns, name):
    assert default_name(patterns) == name


def test_init_writes_a_valid_commented_config_with_every_default(tmp_path, capsys):
    table = tmp_path / "pile.csv"
    table.write_text(TABLE, encoding="utf-8")
    assert main(["init", str(table), "--name", "mine"]) == 0
    captured = capsys.readouterr()
    assert "papertopics: run 'mine' into outputs/mine/" in captured.err
    assert "format table; columns title <- 'Title'" in captured.err
    raw = yaml.safe_load(captured.out)
    config = parse_config(raw, "init")
    assert config.name == "mine"
    assert raw["inputs"] == [
        {
            "path": str(table),
            "format": "table",
            "columns": {"title": "Title", "abstract": "Summary", "date": "Published", "label": "Category"},
        }
    ]
    defaults = RunConfig(name="x", inputs=["a"]).model_dump()
    for section in ("parse", "embed", "cluster", "label", "report", "engine"):
        assert raw[section] == defaults[section], section
    for line in captured.out.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "- path:", "inputs:")) and not stripped.endswith(":"):
            assert "#" in stripped or line.startswith("      "), f"setting without a comment: {line!r}"


def test_a_file_of_unknown_format_is_one_line(tmp_path, capsys):
    prose = tmp_path / "notes.txt"
    prose.write_text("Just some notes about nothing in particular.\n", encoding="utf-8")
    assert main(["init", str(prose)]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "cannot tell the format" in err and "Traceback" not in err


def test_a_yaml_config_runs_alone_and_takes_name_and_out(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"name": "c", "inputs": [str(SAMPLES / "*.txt")]}), encoding="utf-8")
    args = argparse.Namespace(config=[str(config)], name="other", out=str(tmp_path / "o"))
    resolved, source = _run_config(args)
    assert (resolved.name, resolved.output_dir, source) == ("other", str(tmp_path / "o"), str(config))
    assert main(["run", str(config), str(SAMPLES / "*.txt")]) == 2
    assert f"error: {config}: a YAML config is run alone" in capsys.readouterr().err


@pytest.mark.slow
def test_run_of_files_without_a_config_makes_the_report(pages, tmp_path, capsys):
    assert main(["run", str(pages / "*.txt"), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "papertopics: run 'pages' into" in err and "format hf-daily-papers" in err
    assert (tmp_path / "out" / "pages" / "index.html").is_file()


def test_the_library_takes_files_as_the_command_line_does(pages, tmp_path):
    from pipeline.api import resolve_config

    config, source = resolve_config(str(pages / "*.txt"), {"output_dir": str(tmp_path / "o")})
    assert (config.name, config.output_dir, source) == ("pages", str(tmp_path / "o"), None)
    assert [spec.path for spec in config.inputs] == [str(pages / "*.txt")]
    listed, _ = resolve_config([str(path) for path in sorted(pages.glob("*.txt"))], {})
    assert len(listed.inputs) == 2 and listed.name == sorted(pages.glob("*.txt"))[0].stem
