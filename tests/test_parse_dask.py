"""The parse stage on Dask workers: the local engine's table and reports, the memo consulted first.

One 2-worker LocalCluster (1 thread each) for the module, as tests/test_engine.py starts it; the
stage test reaches it through ``engine.address``, so no run starts a second cluster. Every wait
has a timeout (the engine's, and ``READ_TIMEOUT_S`` cut to ``MAP_TIMEOUT_S`` here).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import pipeline.parse as parse_module
from pipeline.config import EngineConfig, InputSpec, ParseConfig, load_config
from pipeline.engine import DaskEngine, open_engine
from pipeline.errors import InputError
from pipeline.memo import MemoStore
from pipeline.parse import parse
from pipeline.parse.units import HeldRead
from pipeline.runner import run_pipeline
from pipeline.sources import collect_sources
from pipeline.stages import STAGE_NAMES
from pipeline.store import ArtifactStore
from tests.test_pipeline import make_config

pytestmark = pytest.mark.slow

MAP_TIMEOUT_S = 120.0
DASK_MAP = DaskEngine.map  # the real one: a test below routes the stage's maps through a recorder


def _line(arxiv_id: str, title: str) -> str:
    abstract = f"We study {title.lower()} and report results on three benchmarks with careful ablations."
    record = {"id": arxiv_id, "abs": f"https://arxiv.org/abs/{arxiv_id}", "title": title, "summary": abstract,
              "authors": ["A. Author", "B. Author"], "categories": ["cs.LG", "cs.AI"]}  # fmt: skip
    return json.dumps(record) + "\n"


def write_corpus(folder: Path) -> list[dict[str, Any]]:
    """Four daily listings (one empty, one paper in two days, one bad id) and a CSV; the config's inputs."""
    days = folder / "daily"
    days.mkdir(parents=True)
    (days / "2025-03-18.jsonl").write_text(
        _line("2503.10001", "Sparse Attention Kernels") + _line("2503.10002v1", "Graph Neural Solvers")
        + _line("junk-id", "A Record Without An Identifier") + _line("2503.10003", "Tokenizer Free Language Models")
    )  # fmt: skip
    (days / "2025-03-19.jsonl").write_text("")  # a day without papers
    (days / "2025-03-20.jsonl").write_text(
        _line("2503.10002v2", "Graph Neural Solvers") + _line("2503.10004", "Diffusion Policies for Robots")
    )  # the first: the 18th's paper again, a later version (kept in place of the 18th's)
    (days / "2025-03-21.jsonl").write_text(
        _line("2503.10005", "Retrieval Augmented Theorem Proving") + _line("2503.10006", "Quantized Vision Models")
    )
    rows = [
        "title,abstract,date",
        '"Tokenizer Free Language Models","The listing\'s paper again, found by its title: a duplicate.",2025-03-18',
        '"Federated Learning Audits","We audit federated learning deployments across ten hospitals.",Mar 2',
    ]
    (folder / "extra.csv").write_text("\n".join(rows) + "\n")
    return [{"path": str(days), "format": "arxiv-daily"}, {"path": str(folder / "extra.csv")}]


@pytest.fixture(scope="module")
def dask_engine():
    pytest.importorskip("distributed")
    with open_engine(EngineConfig(kind="dask", workers=2)) as engine:
        yield engine


def with_pid(item: Any, function: Callable[..., Any], **common: Any) -> tuple[int, Any]:
    """``function(item, **common)`` and the id of the process that ran it (on a worker)."""
    return os.getpid(), function(item, **common)


class RecordingEngine:
    """A Dask engine that notes each map's function, the units it was handed and the pids that ran them."""

    def __init__(self, engine: DaskEngine) -> None:
        self.engine = engine
        self.calls: list[tuple[str, list[str]]] = []
        self.pids: set[int] = set()
        self.files_with_bytes = 0  # files sent to the workers with their bytes, not only their path

    @property
    def n_workers(self) -> int:
        return self.engine.n_workers

    def map(
        self, fn: Callable[..., Any], items: Sequence[Any], *, timeout_s: float, common: Mapping[str, Any] | None = None
    ) -> list[Any]:
        self.calls.append((fn.__name__, [unit[0].path for unit, _ in items]))
        self.files_with_bytes += sum(source.data is not None for unit, _ in items for source in unit)
        results = DASK_MAP(
            self.engine,
            with_pid,
            items,
            timeout_s=min(timeout_s, MAP_TIMEOUT_S),
            common={"function": fn, **(common or {})},
        )
        self.pids.update(pid for pid, _ in results)
        return [result for _, result in results]


def _stage_outputs(tmp_path: Path, name: str, inputs: list[dict[str, Any]], engine: dict[str, Any]) -> dict[str, bytes]:
    (tmp_path / name).mkdir()
    config = load_config(make_config(tmp_path / name, inputs, name=name, engine=engine))
    result = run_pipeline(config, until="parse")
    assert [outcome.status for outcome in result.outcomes] == ["computed"]
    folder = ArtifactStore(result.run_dir, config.cache_dir, STAGE_NAMES).stage_dir("parse")
    return {file: (folder / file).read_bytes() for file in ("papers.parquet", "file_reports.json")}


def test_the_stage_on_dask_workers_writes_the_local_engines_bytes(tmp_path, dask_engine, monkeypatch):
    inputs = write_corpus(tmp_path / "corpus")
    local = _stage_outputs(tmp_path, "local", inputs, {"kind": "local"})
    recorder = RecordingEngine(dask_engine)
    # The stage opens the engine of its config (here: the module's cluster, by its address); each
    # map goes through the recorder, which runs the parts on that cluster's workers.
    monkeypatch.setattr(DaskEngine, "map", lambda _self, *args, **kwargs: recorder.map(*args, **kwargs))
    address = dask_engine.client.scheduler.address
    on_dask = _stage_outputs(tmp_path, "dask", inputs, {"kind": "dask", "address": address, "workers": 2})
    assert on_dask == local
    reports = json.loads(local["file_reports.json"])
    assert [(Path(r["path"]).name, r["reader"], r["kept"], r["duplicates"], r["skipped"]) for r in reports] == [
        ("2025-03-18.jsonl", "arxiv-daily", 2, 1, 1),
        ("2025-03-19.jsonl", "(empty file)", 0, 0, 0),
        ("2025-03-20.jsonl", "arxiv-daily", 2, 0, 0),
        ("2025-03-21.jsonl", "arxiv-daily", 2, 0, 0),
        ("extra.csv", "table", 1, 1, 0),
    ]
    # The four non-empty files went to the workers as four tasks (the empty day is reported here).
    assert [(name, len(paths)) for name, paths in recorder.calls] == [("read_unit_part", 4)]
    assert recorder.pids and os.getpid() not in recorder.pids  # read in the worker processes, not here
    assert recorder.files_with_bytes == 0  # each worker opened its files by path
    manifests = [json.loads((tmp_path / run / "out" / run / "manifest.json").read_text()) for run in ("local", "dask")]
    assert manifests[0]["inputs"] == manifests[1]["inputs"]  # the same paths, hashes and sizes


def test_units_in_the_memo_are_not_sent_to_the_workers(tmp_path, dask_engine):
    inputs = write_corpus(tmp_path / "corpus")
    days = sorted(Path(inputs[0]["path"]).glob("*.jsonl"))
    memo = MemoStore(tmp_path / "cache")
    recorder = RecordingEngine(dask_engine)

    def sources_of(paths: list[Path]):
        return collect_sources([InputSpec(path=str(path), format="arxiv-daily") for path in paths])

    parse(sources_of(days[:1]), ParseConfig(), memo=memo, engine=recorder)  # the 18th, read on a worker and kept
    assert [[Path(path).name for path in paths] for _, paths in recorder.calls] == [["2025-03-18.jsonl"]]
    recorder.calls.clear()
    grown = sources_of([days[0], days[2], days[3]])
    result = parse(grown, ParseConfig(), memo=memo, engine=recorder)
    assert [[Path(path).name for path in paths] for _, paths in recorder.calls] == [
        ["2025-03-20.jsonl", "2025-03-21.jsonl"]
    ]
    local = parse(grown, ParseConfig())
    assert result.papers.equals(local.papers) and result.file_reports == local.file_reports
    assert len(list((tmp_path / "cache" / "parse-units").glob("*.npz"))) == 3
    recorder.calls.clear()
    again = parse(grown, ParseConfig(), memo=memo, engine=recorder)
    assert [paths for _, paths in recorder.calls] == [[]]  # everything from the memo: nothing sent
    assert again.papers.equals(local.papers) and again.file_reports == local.file_reports
    assert os.getpid() not in recorder.pids


def test_the_driver_holds_the_workers_reads_encoded_and_decodes_a_unit_only_when_needed(
    tmp_path, dask_engine, monkeypatch
):
    inputs = write_corpus(tmp_path / "corpus")
    sources = collect_sources([InputSpec(**spec) for spec in inputs])
    recorder = RecordingEngine(dask_engine)
    returned: list[Any] = []
    recording_map = recorder.map

    def keeping(*args: Any, **kwargs: Any) -> list[Any]:
        returned.extend(results := recording_map(*args, **kwargs))
        return results

    monkeypatch.setattr(recorder, "map", keeping)
    decoded: list[list[str]] = []
    real_decoded = HeldRead.decoded

    def counted(self: HeldRead) -> Any:
        read = real_decoded(self)
        decoded.append([candidate.row["title"] for candidate in read.candidates])
        return read

    monkeypatch.setattr(HeldRead, "decoded", counted)
    result = parse(sources, ParseConfig(), engine=recorder)
    local = parse(sources, ParseConfig())
    assert result.papers.equals(local.papers) and result.file_reports == local.file_reports
    # What came back from the workers is the memo's encoding (JSON bytes), not a million Python objects.
    assert len(returned) == 4 and all(isinstance(read, HeldRead) for read in returned)
    # Each unit is decoded in its turn; the two days holding 2503.10002 once more, to pick its kept record.
    titles = sorted(tuple(titles) for titles in decoded)
    assert len(decoded) == 6 and len(set(titles)) == 4
    assert sorted(titles.count(unit) for unit in set(titles)) == [1, 1, 2, 2]
    assert all("Graph Neural Solvers" in unit for unit in titles if titles.count(unit) == 2)


def test_a_bad_record_on_a_worker_stops_the_run_with_the_local_message(tmp_path, dask_engine, monkeypatch):
    monkeypatch.setattr(parse_module, "READ_TIMEOUT_S", MAP_TIMEOUT_S)
    inputs = write_corpus(tmp_path / "corpus")
    sources = collect_sources([InputSpec(**spec) for spec in inputs])
    config = ParseConfig(on_error="fail")
    with pytest.raises(InputError) as local:
        parse(sources, config)
    with pytest.raises(InputError) as on_dask:
        parse(sources, config, engine=dask_engine)
    assert "2025-03-18.jsonl: line 3: not an arXiv id ('junk-id')" in str(local.value)
    assert str(on_dask.value) == str(local.value)


def test_a_file_changed_after_its_hash_was_taken_stops_the_worker_with_a_clear_error(tmp_path, dask_engine):
    inputs = write_corpus(tmp_path / "corpus")
    sources = collect_sources([InputSpec(**spec) for spec in inputs], keep_bytes=False)
    assert all(source.data is None for source in sources) and sources[0].size > 0
    day = Path(sources[0].path)
    day.write_text(day.read_text() + _line("2503.10099", "A Paper Added Meanwhile"))
    with pytest.raises(InputError, match=r"2025-03-18\.jsonl: the file changed while the run was reading it"):
        parse(sources, ParseConfig(), engine=dask_engine)
    day.unlink()
    with pytest.raises(InputError, match=r"2025-03-18\.jsonl: no such file \(read by path on a Dask worker"):
        parse(sources, ParseConfig(), engine=dask_engine)
