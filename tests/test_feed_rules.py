"""A small feed followed day by day: any topic (the outliers included) may come and go, and the
clustering is redone only when its rule asks, saying why (issue 27)."""

from __future__ import annotations

import numpy as np

from pipeline.feed.identity import kept_share, silent_changes
from pipeline.schema import OUTLIER_NAME, OUTLIER_TOPIC
from tests.daily_pages import LONERS, page_text, subject_paper

NO_RECLUSTER = {"cluster": {"incremental_max_share": 5.0, "update_drift": 1.0}}


def test_an_outlier_may_appear_in_an_update_after_a_run_without_any(tmp_path):
    """The last run had no outlier paper, the update has one: it is labelled, not a KeyError (issue 27, item 7)."""
    from pipeline.config import load_config
    from pipeline.runner import run_pipeline
    from pipeline.store import ArtifactStore
    from tests.test_pipeline import make_config

    rng = np.random.default_rng(3)
    papers = [subject_paper(subject, rng, n) for subject in ("reef", "volcano", "bees") for n in range(10)]
    day1, day2 = tmp_path / "2026-02-01.txt", tmp_path / "2026-02-02.txt"
    day1.write_text(page_text(1, papers))
    config = load_config(make_config(tmp_path, [{"path": str(tmp_path / "*.txt"), "year": 2026}], **NO_RECLUSTER))
    run_pipeline(config)
    store = ArtifactStore(config.run_dir, config.cache_dir)
    before = store.read_table("label", "assignments.parquet")
    assert not (before["topic"] == OUTLIER_TOPIC).any()  # the case: no outlier in the last run
    day2.write_text(page_text(2, [LONERS[0]]))
    result = run_pipeline(config)
    counts = {outcome.stage: outcome.counts for outcome in result.outcomes}
    assert counts["cluster"]["incremental"] == 1 and counts["label"]["labelled"] == "update"
    after = store.read_table("label", "assignments.parquet")
    papers_table = store.read_table("parse", "papers.parquet")
    loner = papers_table.loc[papers_table["title"] == LONERS[0][0], "paper_id"].item()
    assert after.set_index("paper_id").at[loner, "topic"] == OUTLIER_TOPIC
    topics = store.read_table("label", "topics.parquet").set_index("topic")
    assert topics.at[OUTLIER_TOPIC, "name"] == OUTLIER_NAME and topics.at[OUTLIER_TOPIC, "size"] == 1
    history = store.read_table("label", "topic_history.parquet")
    assert kept_share(before, after) == 1.0 and silent_changes(before, after, history, 2).empty
    # And the outliers may vanish again: the loner's day is gone, the run before comes back.
    day2.unlink()
    run_pipeline(config)
    assert not (store.read_table("label", "assignments.parquet")["topic"] == OUTLIER_TOPIC).any()


def test_new_papers_crowding_the_edge_of_a_topic_are_drift_and_force_a_recluster():
    """A dense group of new papers that HDBSCAN finds together with a topic's papers: only a recluster redraws it."""
    from pipeline.cluster import ClusterResult
    from pipeline.feed.update import drifted, update_clusters
    from tests.test_feed import blobs, unit_rows

    old = blobs([0, 1], [30, 30])
    params = {"min_cluster_size": 10, "min_samples": 3, "n_neighbors": 5}
    previous = ClusterResult(np.repeat([0, 1], 30), old[:, :5].astype(np.float32), old[:, :2].astype(np.float32), params)
    edge = np.zeros(24)
    edge[[1, 9]] = 1.0, 0.35  # beside topic 1, below its outlier bar
    crowd = unit_rows(edge + 0.08 * np.random.default_rng(4).standard_normal((12, 24)))
    update = update_clusters(previous, np.zeros(60, dtype=bool), np.vstack([old, crowd]), np.arange(60), 5.0, 60)
    assert update.born == 0 and update.pool[60:].all() and update.unborn == 12
    reason = drifted(update, 60, max_growth=1.0, max_drift=0.15, min_growth=1)
    assert reason.startswith("drift: 100% of the 12 papers") and "12 of them form a dense group" in reason
    # A looser drift bar: the share test fails first, the dense group alone is no reason.
    assert drifted(update, 60, max_growth=1.0, max_drift=0.95, min_growth=1) is None
