"""Same papers, same topics: the results depend on the set of papers, not on their order or history."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.runner import run_pipeline
from tests.test_pipeline import make_config

pytestmark = pytest.mark.slow

OUTPUTS = ("papers.csv", "topics.csv", "metrics.json")


def seed_papers(seed_pages: list[Path]) -> list[dict[str, str]]:
    from pipeline.config import ParseConfig
    from pipeline.parse import parse
    from pipeline.sources import collect_sources

    config = load_config(make_config(seed_pages[0].parent.parent.parent / "outputs", [str(p) for p in seed_pages]))
    papers = parse(collect_sources(config.inputs), ParseConfig()).papers
    return papers[["title", "abstract", "date"]].to_dict("records")


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["title", "abstract", "date"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_any_order_of_the_same_papers_gives_byte_identical_outputs(tmp_path, seed_pages):
    rows = seed_papers(seed_pages)
    shuffled = [rows[i] for i in np.random.default_rng(7).permutation(len(rows))]
    outputs = {}
    for name, table in (("ordered", rows), ("shuffled", shuffled)):
        path = write_rows(tmp_path / "papers.csv", table)  # one path: the source column names it
        config = load_config(make_config(tmp_path, [{"path": str(path), "format": "table"}], name=name))
        run_pipeline(config)
        run_dir = tmp_path / "out" / name
        topic_csvs = sorted((run_dir / "topics").glob("*.csv"))
        outputs[name] = {file: (run_dir / file).read_bytes() for file in OUTPUTS} | {
            path.name: path.read_bytes() for path in topic_csvs
        }
    assert len(outputs["ordered"]) > len(OUTPUTS)  # there are topics to compare
    assert outputs["ordered"] == outputs["shuffled"]


def test_a_killed_embed_stage_keeps_its_finished_shards(tmp_path, seed_pages, monkeypatch):
    import pipeline.embed
    import pipeline.stages.embed as embed_stage

    config = load_config(make_config(tmp_path, [str(page) for page in seed_pages], name="killed"))
    real = pipeline.embed.embed_texts
    calls: list[int] = []

    def dies_on_the_third_shard(texts, backend, on_progress=None):
        calls.append(len(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt  # what Ctrl-C or a kill does to the stage
        return real(texts, backend, on_progress)

    monkeypatch.setattr(embed_stage, "SHARD_ROWS", 16)
    monkeypatch.setattr(pipeline.embed, "embed_texts", dies_on_the_third_shard)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config, until="embed")
    assert calls == [16, 16, 16]
    monkeypatch.setattr(pipeline.embed, "embed_texts", real)
    result = run_pipeline(config, until="embed")
    assert result.outcomes[-1].counts == {"papers": 64, "embedded": 32, "from_cache": 32}
