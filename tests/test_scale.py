"""The same config on Dask workers gives the same papers, topics and files as in one process."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.cluster.fit import cluster_papers
from pipeline.cluster.sample_fit import fit_on_sample
from pipeline.config import ClusterConfig, load_config
from pipeline.engine import LocalEngine
from pipeline.runner import run_pipeline
from pipeline.stages import STAGE_NAMES
from pipeline.store import ArtifactStore
from tests.test_pipeline import make_config

pytestmark = pytest.mark.slow

COMPARED = ("papers.csv", "topics.csv", "metrics.json")


def outputs(tmp_path, seed_pages, name: str, engine: dict, fit_sample) -> dict[str, bytes]:
    # Each run in its own output folder: nothing embedded by one is read from the other's cache.
    (tmp_path / name).mkdir()
    config = make_config(tmp_path / name, [str(page) for page in seed_pages], name=name, engine=engine,
                         cluster={"fit_sample": fit_sample}, label={"fit_sample": fit_sample})  # fmt: skip
    run_pipeline(load_config(config))
    run_dir = tmp_path / name / "out" / name
    files = {file: (run_dir / file).read_bytes() for file in COMPARED}
    return files | {path.name: path.read_bytes() for path in sorted((run_dir / "topics").glob("*.csv"))}


@pytest.mark.parametrize("fit_sample", ["all", 40])
def test_dask_workers_give_the_same_outputs_as_one_process(tmp_path, seed_pages, fit_sample, monkeypatch):
    """With a sample (40 of 64 papers), clusters are placed and topic terms counted on the workers."""
    import contextlib

    import pipeline.engine as engine_module

    opened = []
    real_open = engine_module.open_engine

    @contextlib.contextmanager
    def counted(config, **kwargs):
        with real_open(config, **kwargs) as engine:
            opened.append("open")
            yield engine
        opened.append("closed")

    monkeypatch.setattr(engine_module, "open_engine", counted)
    import pipeline.label.paths as label_paths

    real_label_all, at_naming = label_paths._label_all, []

    def label_all(inputs, *args, **kwargs):
        at_naming.append(opened[-1] if opened else None)
        return real_label_all(inputs, *args, **kwargs)

    monkeypatch.setattr(label_paths, "_label_all", label_all)
    dask = {"kind": "dask", "workers": 2}
    local = outputs(tmp_path, seed_pages, "local", {"kind": "local"}, fit_sample)
    assert opened == []  # the local engine starts nothing
    on_dask = outputs(tmp_path, seed_pages, "dask", dask, fit_sample)
    # Each stage that hands work to the workers starts a cluster when it first does and closes it when it ends.
    assert opened and opened == ["open", "closed"] * (len(opened) // 2) and len(opened) <= 8
    assert len(local) > len(COMPARED)  # topics to compare
    assert on_dask == local
    notes = ArtifactStore(
        tmp_path / "dask" / "out" / "dask", tmp_path / "dask" / "out" / ".cache", STAGE_NAMES
    ).read_json("label", "label.json")["notes"]
    counted_on = [note for note in notes if "term counts of all 64 papers, counted in" in note]
    assert len(counted_on) == (0 if fit_sample == "all" else 1)
    assert all(note.endswith("on 2 worker(s)") for note in counted_on)
    # The workers that counted the terms are let go before the sample is named (the stage's peak at 1M).
    # (Without the release the label stage's cluster would still be open here, until the stage ends.)
    assert at_naming[0] is None and at_naming[-1] == "closed"


def test_a_fit_on_a_sample_places_every_paper_and_keeps_the_samples_clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 24))
    embeddings = np.concatenate([centre + 0.15 * rng.normal(size=(60, 24)) for centre in centres])
    embeddings = (embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)).astype(np.float32)
    config = ClusterConfig(fit_sample=120, min_cluster_size=10)
    result = fit_on_sample(embeddings, config, 3, LocalEngine(), 5.0)
    assert result.labels.shape == (240,) and result.layout.shape == (240, 2)
    assert result.params["fit_sample"] == 120 and any("sample of 120" in note for note in result.notes)
    from pipeline.cluster.sample_fit import choose_sample

    sample = choose_sample(240, 120, 3)
    alone = cluster_papers(embeddings[sample], config, 3)
    np.testing.assert_array_equal(result.labels[sample], alone.labels)
    np.testing.assert_array_equal(result.layout[sample], alone.layout)
    # The blobs are found again: each true group lies (almost) in one topic.
    truth = np.repeat(np.arange(4), 60)
    for group in range(4):
        topics = result.labels[truth == group]
        assert np.bincount(topics[topics >= 0]).max() >= 0.9 * len(topics)
    whole = fit_on_sample(embeddings, ClusterConfig(fit_sample="all", min_cluster_size=10), 3, LocalEngine(), 5.0)
    np.testing.assert_array_equal(
        whole.labels, cluster_papers(embeddings, ClusterConfig(min_cluster_size=10), 3).labels
    )


def test_a_memory_mapped_pile_sends_its_parts_as_rows_and_places_them_as_in_memory(tmp_path):
    from pipeline.cluster.sample_fit import MappedRows

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 16))
    embeddings = np.concatenate([centre + 0.2 * rng.normal(size=(50, 16)) for centre in centres])
    embeddings = (embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)).astype(np.float32)
    np.save(tmp_path / "embeddings.npy", embeddings)
    mapped = np.load(tmp_path / "embeddings.npy", mmap_mode="r")
    config = ClusterConfig(fit_sample=80, min_cluster_size=8)

    handed: list[object] = []

    class Recording(LocalEngine):
        def map(self, fn, items, *, timeout_s, common=None):  # type: ignore[no-untyped-def]
            handed.extend(items)
            return super().map(fn, items, timeout_s=timeout_s, common=common)

    in_memory = fit_on_sample(embeddings, config, 3, LocalEngine(), 5.0)
    engine = Recording()
    from_file = fit_on_sample(mapped, config, 3, engine, 5.0)
    # Each part went out as its rows of the file, never as vectors, and the rows cover the rest.
    assert handed and all(isinstance(item, MappedRows) for item in handed)
    rows = np.concatenate([item.rows for item in handed])  # type: ignore[attr-defined]
    assert len(rows) == 150 - 80 and len(set(rows.tolist())) == 70
    for name in ("labels", "reduced", "layout"):
        np.testing.assert_array_equal(getattr(from_file, name), getattr(in_memory, name))
