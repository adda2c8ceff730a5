"""The public API (``pipeline.run``, ``pipeline.open_run``, ``Run``) on the seed pages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import pipeline
from pipeline.errors import ConfigError, RunFolderError
from pipeline.report.csv_export import PAPER_CSV_COLUMNS
from tests.conftest import ROOT, SAMPLES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory) -> pipeline.Run:
    """``pipeline.run("configs/default.yaml")`` into a folder of the test's own, from the repository root."""
    out = tmp_path_factory.mktemp("api") / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)  # the config's inputs are relative to the repository root, as `make run` reads them
        return pipeline.run("configs/default.yaml", output_dir=str(out))


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_run_returns_the_run_of_the_config_with_the_override(seed_run, tmp_path_factory):
    assert seed_run.run_dir.name == "default"
    assert seed_run.config.name == "default"
    assert seed_run.run_dir.parent == Path(seed_run.config.output_dir)
    assert (seed_run.run_dir / "index.html").is_file()
    assert len(seed_run.topics) >= 3
    assert set(seed_run.topics.columns) >= {"topic", "name", "size", "keywords"}


def test_open_run_papers_are_the_table_of_papers_csv(seed_run):
    opened = pipeline.open_run(seed_run.run_dir)
    papers, written = opened.papers, read_csv(seed_run.run_dir / "papers.csv")
    assert list(papers.columns) == list(PAPER_CSV_COLUMNS) == list(written.columns)
    assert len(papers) == len(written) == 64
    for column in PAPER_CSV_COLUMNS:
        if column == "topic":
            assert papers[column].tolist() == written[column].astype(int).tolist()
        elif column == "score":  # the CSV rounds scores to 4 decimals
            assert (papers[column] - written[column].astype(float)).abs().max() <= 5e-5
        else:
            assert papers[column].tolist() == written[column].tolist(), column


def test_topics_assignments_metrics_and_history_match_the_run_files(seed_run):
    topics_csv = read_csv(seed_run.paths["topics.csv"])
    assert seed_run.topics["topic"].tolist() == topics_csv["topic"].astype(int).tolist()
    assert seed_run.topics["name"].tolist() == topics_csv["name"].tolist()
    assert seed_run.topics["size"].tolist() == topics_csv["size"].astype(int).tolist()
    assert sorted(seed_run.assignments["paper_id"]) == sorted(seed_run.papers["paper_id"])
    assert seed_run.metrics == json.loads(seed_run.paths["metrics.json"].read_text(encoding="utf-8"))
    real = set(seed_run.topics.loc[seed_run.topics["topic"] >= 0, "topic"])
    first = seed_run.history[seed_run.history["run"] == 1]
    assert set(first["topic"]) == real and set(first["event"]) == {"born"}


def test_paths_name_the_report_files(seed_run):
    paths = seed_run.paths
    for name in ("index.html", "map.html", "topics.html", "papers.csv", "topics.csv", "manifest.json"):
        assert paths[name] == seed_run.run_dir / name and paths[name].is_file(), name
    assert not any("/" in name for name in paths)


def test_topic_gives_its_papers_and_files(seed_run):
    largest = int(seed_run.topics.sort_values("size", ascending=False).iloc[0]["topic"])
    topic = seed_run.topic(largest)
    row = seed_run.topics[seed_run.topics["topic"] == largest].iloc[0]
    assert (topic.id, topic.name, topic.size) == (largest, row["name"], row["size"])
    assert topic.keywords == list(row["keywords"])
    assert topic.csv is not None and topic.page is not None and topic.page.is_file()
    assert topic.papers["paper_id"].tolist() == read_csv(topic.csv)["paper_id"].tolist()
    assert len(topic.papers) == topic.size
    with pytest.raises(RunFolderError, match=r"no topic 999 \(topics: -1, 0, 1"):
        seed_run.topic(999)


def test_repr_html_shows_the_numbers_and_the_largest_topics_escaped(seed_run):
    page = seed_run._repr_html_()
    assert "<th style='text-align:left'>papers</th><td style='text-align:left'>64</td>" in page
    largest = seed_run.topics[seed_run.topics["topic"] >= 0].sort_values("size", ascending=False)
    for name in largest["name"].head(3):
        assert f"<td style='text-align:left'>{name}</td>" in page.replace("&#x27;", "'")
    assert "Unassigned" not in page  # outliers are not a topic in the list


def test_map_draws_every_paper_at_its_position_by_topic(seed_run):
    traces = seed_run.map().data  # plotly's to_dict() packs arrays as base64: read the traces themselves
    assert len(traces) == len(seed_run.topics)
    assert sum(len(trace.x) for trace in traces) == 64
    positions = seed_run.assignments.set_index("paper_id")
    first = seed_run.topic(0)
    trace = next(trace for trace in traces if trace.name.startswith("0: "))
    assert list(trace.x) == positions.loc[first.papers["paper_id"], "x"].tolist()
    assert list(trace.y) == positions.loc[first.papers["paper_id"], "y"].tolist()


def test_open_run_refuses_a_folder_without_a_run(tmp_path):
    with pytest.raises(RunFolderError, match="no finished run here"):
        pipeline.open_run(tmp_path)


def test_open_run_refuses_a_manifest_of_another_format(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 999, "config": {}}), encoding="utf-8")
    with pytest.raises(RunFolderError, match="manifest format 999, this one reads 1"):
        pipeline.open_run(tmp_path)


def test_a_run_stopped_early_says_which_stage_is_missing(tmp_path):
    from pipeline.runner import run_pipeline

    config, _ = pipeline.api.resolve_config(
        {"name": "early", "output_dir": str(tmp_path), "inputs": [str(SAMPLES / "*.txt")]}, {}
    )
    run_pipeline(config, until="parse")
    opened = pipeline.open_run(tmp_path / "early")
    with pytest.raises(RunFolderError, match="the label stage has not finished"):
        _ = opened.topics


def test_overrides_are_checked_like_the_config(tmp_path):
    with pytest.raises(ConfigError, match=r"configs/default.yaml: key 'cluster.n_neighbors'"):
        pipeline.run(str(ROOT / "configs" / "default.yaml"), output_dir=str(tmp_path), cluster={"n_neighbors": 1})
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        pipeline.run({"name": "x", "inputs": [str(SAMPLES / "*.txt")]}, colour="red")


def test_update_adds_the_new_day_and_keeps_the_topic_history(tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    first_page, second_page = sorted(SAMPLES.glob("*.txt"))
    shutil.copy(first_page, pages)
    config = {"name": "feed", "output_dir": str(tmp_path / "out"), "inputs": [str(pages / "*.txt")]}
    before = pipeline.run(config)
    assert len(before.papers) == 23
    again = before.update()  # nothing new: every stage reused
    assert {stage["status"] for stage in again.manifest["stages"].values()} == {"reused"}
    shutil.copy(second_page, pages)
    after = again.update()
    assert len(after.papers) == 64 and len(before.papers) == 23  # the old view is kept
    assert sorted(after.history["run"].unique()) == [1, 2]


def test_importing_pipeline_is_cheap_and_sets_nothing():
    code = (
        "import os, sys; before = dict(os.environ); import pipeline; "
        "print(sorted(m for m in ('pandas', 'numpy', 'pydantic', 'pipeline.api') if m in sys.modules)); "
        "print(dict(os.environ) == before); pipeline.open_run; print('pipeline.api' in sys.modules)"
    )
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "ORT_DISABLE_TELEMETRY")}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:3] == ["[]", "True", "True"]


def test_the_run_sets_the_offline_policy(tmp_path, monkeypatch):
    from pipeline.offline import ENFORCED, apply_offline_policy

    for key in ENFORCED:
        monkeypatch.setenv(key, "0")
    apply_offline_policy()
    assert {key: os.environ[key] for key in ENFORCED} == dict.fromkeys(ENFORCED, "1")


def test_the_policy_says_when_onnxruntime_started_before_it(monkeypatch, caplog):
    from pipeline.offline import apply_offline_policy

    monkeypatch.delenv("ORT_DISABLE_TELEMETRY")
    monkeypatch.setitem(sys.modules, "onnxruntime", sys.modules.get("onnxruntime", object()))
    apply_offline_policy()
    assert "onnxruntime was imported before papertopics switched its telemetry off" in caplog.text
    caplog.clear()
    apply_offline_policy()  # set now: nothing more to say
    assert caplog.text == ""


def test_manifest_config_of_a_run_opens_as_the_same_config(seed_run):
    reopened = pipeline.open_run(seed_run.run_dir)
    assert reopened.config == seed_run.config
    assert yaml.safe_dump(reopened.config.model_dump(mode="json")) == yaml.safe_dump(seed_run.manifest["config"])
