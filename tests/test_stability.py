"""Seed stability: the cluster stage redone with other seeds, pairwise ARI, and the dashboard's card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.cli import EXIT_USER_ERROR, main
from pipeline.config import ClusterConfig
from pipeline.report.stability_card import STABILITY_FILE, stability_card
from pipeline.stability import pairwise_ari, seed_stability

ROOT = Path(__file__).resolve().parents[1]


def test_pairwise_ari_is_one_for_renamed_topics_and_near_zero_for_unrelated_ones():
    rng = np.random.default_rng(0)
    first = rng.integers(-1, 5, 600)
    renamed = np.array([-1, 4, 3, 2, 1, 0])[first + 1]  # the same grouping under other numbers
    unrelated = rng.integers(-1, 5, 600)
    same, other, third = pairwise_ari([first, renamed, unrelated])
    assert same == pytest.approx(1.0) and abs(other) < 0.05 and abs(third) < 0.05


def test_seed_stability_clusters_with_the_next_seeds_and_compares_every_pair():
    labels = np.repeat([0, 1, 2, -1], 25)
    seen = []

    def cluster(vectors, config, seed):
        seen.append((seed, config.min_cluster_size))
        if seed == 8:  # one seed splits topic 2 in two
            return np.where(np.arange(100) >= 60, np.where(np.arange(100) < 75, 3, -1), labels)
        return labels.copy()

    result = seed_stability(np.zeros((100, 4)), labels, ClusterConfig(min_cluster_size=5), 6, 3, 5.0, cluster)
    assert seen == [(7, 5), (8, 5), (9, 5)]
    assert result["seeds"] == [6, 7, 8, 9] and result["n_topics"] == [3, 3, 4, 3]
    assert (result["n_topics_min"], result["n_topics_max"]) == (3, 4)
    assert len(result["ari_pairs"]) == 6 and result["ari_pairs"].count(1.0) == 3  # the pairs without seed 8
    assert result["ari_min"] < 0.95 and result["ari_min"] < result["ari_mean"] < 1.0
    assert result["outlier_shares"] == [0.25, 0.25, 0.25, 0.25]


@pytest.mark.parametrize("n_seeds", [0, -1, 21, True])
def test_seed_stability_refuses_a_count_of_seeds_out_of_range(n_seeds):
    with pytest.raises(ValueError, match="1 to 20 other seeds"):
        seed_stability(np.zeros((4, 2)), np.zeros(4, int), ClusterConfig(), 1, n_seeds, None, lambda *_: np.zeros(4))


def test_the_card_is_shown_only_for_the_clustering_it_measured():
    stability = {
        "seeds": [42, 43, 44],
        "n_topics_min": 10,
        "n_topics_max": 12,
        "ari_min": 0.71,
        "ari_mean": 0.8,
        "labels_sha256": "abc",
    }
    card = stability_card(stability, "abc")
    assert card is not None and card["value"] == "0.80"
    assert "2 reruns" in card["note"] and "10 to 12 topics" in card["note"] and "0.71" in card["note"]
    assert stability_card(stability, "other clustering") is None
    assert stability_card(None, "abc") is None


@pytest.mark.slow
def test_evaluate_stability_keeps_its_result_and_the_next_run_shows_it(tmp_path, capsys):
    pages = sorted((ROOT / "data" / "samples").glob("*.txt"))
    config = tmp_path / "seeds.yaml"
    raw = {"name": "seeds", "output_dir": str(tmp_path / "out"), "inputs": [str(page) for page in pages]}
    config.write_text(yaml.safe_dump(raw))
    assert main(["run", str(config)]) == 0
    run_dir = tmp_path / "out" / "seeds"
    assert "seed stability" not in (run_dir / "index.html").read_text()
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--stability", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)["stability"]
    kept = json.loads((run_dir / STABILITY_FILE).read_text())
    assert kept == printed and kept["seeds"] == [42, 43, 44] and len(kept["ari_pairs"]) == 3
    assert all(-1.0 <= value <= 1.0 for value in kept["ari_pairs"]) and kept["n_topics"][0] >= 2
    assert main(["evaluate", str(run_dir), "--stability", "0"]) == EXIT_USER_ERROR
    assert "1 to 20 other seeds" in capsys.readouterr().err
    # The next run redoes only the report, which now carries the card.
    assert main(["run", str(config)]) == 0
    index = (run_dir / "index.html").read_text()
    assert "seed stability (ARI)" in index and f"{kept['ari_mean']:.2f}" in index
