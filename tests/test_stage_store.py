"""The runner loads what a stage declares and nothing else."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline import runner
from pipeline.config import parse_config
from pipeline.files import json_to_bytes
from pipeline.stage import Stage, StageContext, StageResult
from pipeline.stage_store import StageStore, UndeclaredReadError
from pipeline.stages import STAGE_NAMES
from pipeline.stages.parse import STAGE as PARSE
from pipeline.store import ArtifactStore

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def test_the_view_reads_declared_inputs_and_own_outputs_and_refuses_the_rest(tmp_path):
    store = ArtifactStore(tmp_path / "run", tmp_path / ".cache", STAGE_NAMES)
    store.save_stage("parse", "k", {"file_reports.json": json_to_bytes([1]), "other.json": json_to_bytes([2])}, 0, {})
    store.save_stage("cluster", "k", {"cluster.json": json_to_bytes({"notes": []})}, 0, {})
    view = StageStore(store, "cluster", [("parse", "file_reports.json")], ["cluster.json"])
    assert view.read_json("parse", "file_reports.json") == [1]
    assert view.read_json("cluster", "cluster.json") == {"notes": []}  # its own last outputs
    assert view.stage_dir("cluster") == store.stage_dir("cluster")
    assert view.cache is store.cache and view.run_dir == store.run_dir
    with pytest.raises(UndeclaredReadError, match=r"stage cluster reads parse/other\.json, which it does not declare"):
        view.read_json("parse", "other.json")
    with pytest.raises(UndeclaredReadError, match=r"parse/papers\.parquet"):
        view.read_table("parse", "papers.parquet")
    with pytest.raises(UndeclaredReadError, match=r"label/labels\.npy"):
        view.read_array("label", "labels.npy")
    with pytest.raises(UndeclaredReadError, match="the folder of stage parse"):
        view.stage_dir("parse")


def _count_reports(context: StageContext) -> StageResult:
    reports = context.store.read_json("parse", "file_reports.json")
    return {"count.json": json_to_bytes(len(reports))}, {"files": len(reports)}


def _run_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second: Stage):
    """A run of the parse stage and ``second`` over the seed pages."""
    monkeypatch.setattr(runner, "STAGES", (PARSE, second))
    monkeypatch.setattr(runner, "STAGE_NAMES", ("parse", second.name))
    monkeypatch.setattr(runner, "code_hash", lambda module: module)  # the stage below lives in the tests
    raw = {"name": "t", "output_dir": str(tmp_path / "out"), "inputs": [str(SAMPLES / "*.txt")]}
    return runner.run_pipeline(parse_config(raw), until=second.name)


def test_the_runner_refuses_a_stage_that_reads_an_artifact_it_did_not_declare(tmp_path, monkeypatch):
    counting = Stage(
        name="count",
        inputs=(("parse", "papers.parquet"),),  # reads file_reports.json without declaring it
        outputs=("count.json",),
        config_slice=lambda config: {},
        run=_count_reports,
        module=__name__,
    )
    with pytest.raises(UndeclaredReadError, match=r"stage count reads parse/file_reports\.json"):
        _run_with(tmp_path, monkeypatch, counting)
    declared = dataclasses.replace(counting, inputs=(("parse", "file_reports.json"),))
    result = _run_with(tmp_path, monkeypatch, declared)
    assert result.outcomes[-1].counts == {"files": 2}  # the two seed pages
