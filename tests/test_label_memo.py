"""A label setting changed: what the label stage keeps between runs changes no output, and follows the setting."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

import pipeline
from pipeline.config import load_config
from pipeline.runner import run_pipeline

pytestmark = pytest.mark.slow

COMPARED = ("papers.csv", "topics.csv", "metrics.json")


def run(folder: Path, seed_pages: list[Path], **label) -> dict[str, str]:
    raw = {"name": "memo", "output_dir": str(folder), "inputs": [str(page) for page in seed_pages]}
    path = folder.parent / f"{folder.name}.yaml"
    path.write_text(yaml.safe_dump({**raw, **({"label": label} if label else {})}))
    config = load_config(path)
    result = run_pipeline(config)
    return {name: hashlib.sha256((result.run_dir / name).read_bytes()).hexdigest() for name in COMPARED}


def test_a_changed_label_setting_gives_the_same_files_with_or_without_the_kept_sub_results(tmp_path, seed_pages):
    kept, dropped = tmp_path / "kept", tmp_path / "dropped"
    for folder in (kept, dropped):
        run(folder, seed_pages)
    shutil.rmtree(dropped / ".cache")  # tokens, term counts, c-TF-IDF, phrase index: all made again
    for setting in ({"n_keywords": 7}, {"name_phrases": 1}, {"extra_stop_words": ["agents"]}):
        assert run(kept, seed_pages, **setting) == run(dropped, seed_pages, **setting), setting
        shutil.rmtree(dropped / ".cache")


def test_a_naming_setting_changes_the_names_and_a_keyword_setting_the_keywords(tmp_path, seed_pages):
    folder = tmp_path / "out"

    def topics(**label):
        run(folder, seed_pages, **label)
        table = pipeline.open_run(folder / "memo").topics
        return table["name"].tolist(), [list(words) for words in table["keywords"]]

    names, keywords = topics()
    fewer_names, fewer_keywords = topics(n_keywords=5)
    assert fewer_names == names and fewer_keywords == [words[:5] for words in keywords]
    one_phrase, _ = topics(n_keywords=5, name_phrases=1)
    assert one_phrase != names  # a cache keyed without name_phrases would hand back the names before
    assert topics() == (names, keywords)
