"""Following a feed: stable topic ids, updates of a clustering, topic history (pipeline.feed)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from pipeline.cluster.fit import ClusterResult
from pipeline.feed.identity import (
    PreviousTopics,
    apply_stable_ids,
    kept_share,
    silent_changes,
    stable_topics,
)
from pipeline.feed.update import drifted, update_clusters


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def blobs(centres: list[int], per_blob: list[int], dim: int = 24, seed: int = 0) -> np.ndarray:
    """Unit vectors around the basis directions ``centres`` (one blob per centre)."""
    rng = np.random.default_rng(seed)
    rows = []
    for centre, count in zip(centres, per_blob, strict=True):
        base = np.zeros(dim)
        base[centre] = 1.0
        rows.append(base + 0.08 * rng.standard_normal((count, dim)))
    return unit_rows(np.vstack(rows))


def centroids(embeddings: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    out = {}
    for topic in sorted(set(labels.tolist()) - {-1}):
        mean = embeddings[labels == topic].mean(axis=0)
        out[topic] = mean / np.linalg.norm(mean)
    return out


def previous_of(result, paper_ids, labels, names=True) -> PreviousTopics:
    assignments = pd.DataFrame({"paper_id": paper_ids, "topic": [result.ids[int(k)] for k in labels]})
    registry = result.registry.assign(name=[f"name {t}" for t in result.registry["topic"]])
    return PreviousTopics(assignments, registry, result.history, result.run, True, names)


def best_matching_share(before: pd.DataFrame, after: pd.DataFrame) -> float:
    """The share of placed papers kept by the best one-to-one matching of old to new topics."""
    from scipy.optimize import linear_sum_assignment

    joined = before.merge(after, on="paper_id", suffixes=("_old", ""))
    placed = joined[(joined["topic_old"] >= 0) & (joined["topic"] >= 0)]
    overlap = pd.crosstab(placed["topic_old"], placed["topic"])
    rows, columns = linear_sum_assignment(-overlap.to_numpy())
    return overlap.to_numpy()[rows, columns].sum() / int((joined["topic_old"] >= 0).sum())


def test_first_run_numbers_topics_by_size_and_records_their_birth():
    labels = np.array([0, 0, 0, 1, 1, -1])
    emb = blobs([0, 1, 2], [3, 2, 1])
    result = stable_topics(list("abcdef"), labels, centroids(emb, labels), None)
    assert result.ids == {0: 0, 1: 1, -1: -1}
    assert result.history["event"].tolist() == ["born", "born"]
    assert result.registry["size"].tolist() == [3, 2]


def test_ids_and_names_follow_the_members_when_sizes_swap():
    ids1 = [f"p{i}" for i in range(15)]
    emb1 = blobs([0, 1], [10, 5])
    labels1 = np.array([0] * 10 + [1] * 5)
    first = stable_topics(ids1, labels1, centroids(emb1, labels1), None)
    previous = previous_of(first, ids1, labels1)
    # Run 2: blob 1 grew by 8 new papers and is now the largest, so it is local topic 0.
    ids2 = ids1 + [f"n{i}" for i in range(8)]
    emb2 = np.vstack([emb1, blobs([1], [8], seed=1)])
    labels2 = np.array([1] * 10 + [0] * 5 + [0] * 8)
    second = stable_topics(ids2, labels2, centroids(emb2, labels2), previous)
    assert second.ids[0] == 1 and second.ids[1] == 0
    assert second.names == {0: "name 0", 1: "name 1"}
    grew = second.history[(second.history["run"] == 2) & (second.history["event"] == "grew")]
    assert grew[["topic", "papers"]].values.tolist() == [[1, 8]]
    # Renamed display: the tables carry the stable ids, sorted by size; kept names win.
    assignments = pd.DataFrame({"paper_id": ids2, "topic": labels2, "score": 0.0, "x": 0.0, "y": 0.0})
    topics = pd.DataFrame({"topic": [0, 1], "name": ["fresh", "name 0"], "slug": ["fresh", "name-0"], "size": [13, 10]})
    hierarchy = pd.DataFrame({"parent_id": [2], "parent_name": ["all"], "child_left_id": [0], "child_right_id": [1],
                              "distance": [1.0], "topics": [[0, 1]]})  # fmt: skip
    new_assignments, new_topics, new_hierarchy, registry = apply_stable_ids(second, assignments, topics, hierarchy)
    assert new_topics[["topic", "name", "size"]].values.tolist() == [[1, "name 1", 13], [0, "name 0", 10]]
    assert new_assignments["topic"].tolist()[:10] == [0] * 10
    assert new_hierarchy[["parent_id", "child_left_id", "child_right_id"]].values.tolist() == [[2, 1, 0]]
    assert dict(zip(registry["topic"], registry["name"], strict=True)) == {0: "name 0", 1: "name 1"}


def test_splits_and_merges_are_recorded_and_no_paper_changes_topic_silently():
    ids = [f"p{i}" for i in range(30)]
    emb = blobs([0, 1, 2], [16, 10, 4])
    labels1 = np.array([0] * 16 + [1] * 10 + [2] * 4)
    first = stable_topics(ids, labels1, centroids(emb, labels1), None)
    previous = previous_of(first, ids, labels1)
    # Run 2: topic 0 splits in two halves; topic 2 merges into topic 1.
    labels2 = np.array([0] * 8 + [2] * 8 + [1] * 14)
    second = stable_topics(ids, labels2, centroids(emb, labels2), previous)
    stable = np.array([second.ids[int(k)] for k in labels2])
    assert set(stable[:8].tolist()) | set(stable[8:16].tolist()) >= {0}  # one half keeps the id
    assert second.ids[1] == 1 and 3 in set(stable.tolist())  # the other half is born as 3: ids are never reused
    events = second.history[second.history["run"] == 2]
    assert set(events["event"]) == {"born", "split", "merged", "faded"}
    merged = events[events["event"] == "merged"]
    assert merged[["topic", "from_topic", "papers"]].values.tolist() == [[1, 2, 4]]
    after = pd.DataFrame({"paper_id": ids, "topic": stable})
    assert silent_changes(previous.assignments, after, second.history, 2).empty
    # A table without those rows is caught: the check can fail.
    quiet = second.history[second.history["event"] != "merged"]
    assert silent_changes(previous.assignments, after, quiet, 2)["paper_id"].tolist() == ids[26:]
    assert kept_share(previous.assignments, after) == 18 / 30


def test_an_id_is_never_reused_after_its_topic_faded():
    ids = [f"p{i}" for i in range(20)]
    emb = blobs([0, 1, 2], [8, 8, 4])
    labels1 = np.array([0] * 8 + [1] * 8 + [2] * 4)
    first = stable_topics(ids, labels1, centroids(emb, labels1), None)
    labels2 = np.array([0] * 8 + [1] * 8 + [-1] * 4)  # topic 2 fades
    second = stable_topics(ids, labels2, centroids(emb, labels2), previous_of(first, ids, labels1))
    assert not second.registry.set_index("topic").at[2, "alive"]
    # Run 3: a new blob forms; the faded id 2 is not given to it.
    ids3 = ids[:16] + [f"n{i}" for i in range(6)]
    emb3 = np.vstack([emb[:16], blobs([5], [6], seed=3)])
    labels3 = np.array([0] * 8 + [1] * 8 + [2] * 6)
    prev2 = previous_of(second, ids, labels2)
    third = stable_topics(ids3, labels3, centroids(emb3, labels3), prev2)
    assert third.ids[2] == 3
    assert sorted(third.registry["topic"]) == [0, 1, 2, 3]


def test_a_faded_topic_is_matched_again_by_its_centroid():
    ids = [f"p{i}" for i in range(20)]
    emb = blobs([0, 1], [12, 8])
    labels1 = np.array([0] * 12 + [1] * 8)
    first = stable_topics(ids, labels1, centroids(emb, labels1), None)
    # Run 2: the corpus lost topic 1's papers; new papers on the same subject come back.
    ids2 = ids[:12] + [f"n{i}" for i in range(8)]
    emb2 = np.vstack([emb[:12], blobs([1], [8], seed=5)])
    second = stable_topics(ids2, labels1, centroids(emb2, labels1), previous_of(first, ids, labels1))
    assert second.ids == {0: 0, 1: 1, -1: -1}


def test_an_update_places_new_papers_and_turns_a_dense_pool_into_a_new_cluster():
    old = blobs([0, 1, 2], [30, 30, 30])
    labels = np.repeat([0, 1, 2], 30)
    params = {"min_cluster_size": 5, "min_samples": 2, "n_neighbors": 5}
    previous = ClusterResult(labels, old[:, :5].astype(np.float32), old[:, :2].astype(np.float32), params)
    new = np.vstack([blobs([1], [6], seed=7), blobs([9], [12], seed=8)])  # 6 like topic 1, 12 on a new subject
    embeddings = np.vstack([new[:3], old, new[3:]])  # new papers sit before and after the old ones
    old_rows = np.arange(3, 93)
    update = update_clusters(previous, np.zeros(90, dtype=bool), embeddings, old_rows, 5.0, base_papers=90)
    result = update.result
    assert np.array_equal(result.labels[old_rows], labels)  # old papers keep their clusters
    assert np.array_equal(result.layout[old_rows], previous.layout)
    assert result.labels[:3].tolist() == [1, 1, 1] and result.labels[93:96].tolist() == [1, 1, 1]
    assert update.born == 1 and set(result.labels[96:].tolist()) == {3}
    assert not update.pool.any()
    # The new papers' map positions come from their nearest old papers (topic 1's area).
    assert np.allclose(result.layout[:3].mean(axis=0), previous.layout[30:60].mean(axis=0), atol=0.2)
    assert drifted(update, 90, max_growth=1.0, max_drift=0.15, min_growth=1) is None
    assert "added since" in drifted(update, 90, max_growth=0.1, max_drift=0.15, min_growth=1)
    # Growth past the share reclusters only from an absolute number of added papers on.
    assert drifted(update, 90, max_growth=0.1, max_drift=0.15, min_growth=19) is None


def test_papers_that_fit_nowhere_and_form_no_dense_group_wait_in_the_pool_without_a_recluster():
    old = blobs([0, 1], [30, 30])
    labels = np.repeat([0, 1], 30)
    params = {"min_cluster_size": 10, "min_samples": 3, "n_neighbors": 5}
    previous = ClusterResult(labels, old[:, :5].astype(np.float32), old[:, :2].astype(np.float32), params)
    scattered = unit_rows(np.eye(24)[4:16] + 0.05)  # 12 papers, each on its own subject
    embeddings = np.vstack([old, scattered])
    update = update_clusters(previous, np.zeros(60, dtype=bool), embeddings, np.arange(60), 5.0, base_papers=60)
    assert update.born == 0 and update.pool[60:].all() and (update.result.labels[60:] == -1).all()
    assert update.pool_share == 1.0 and update.unborn == 0
    # Past the share bar, but scattered: outliers that wait in the pool, no reason to recluster.
    assert drifted(update, 60, max_growth=1.0, max_drift=0.15, min_growth=1) is None


def test_a_grown_corpus_updates_the_run_and_a_forced_recluster_keeps_identity(tmp_path, seed_pages):
    """Day 1: one seed page; day 2: both. A plain run updates; --force cluster reclusters, ids kept by overlap."""
    from pipeline.config import load_config
    from pipeline.runner import run_pipeline
    from pipeline.stages import STAGE_NAMES
    from pipeline.store import ArtifactStore
    from tests.test_pipeline import make_config

    extra = {"cluster": {"incremental_max_share": 5.0, "update_drift": 1.0}}
    day1 = load_config(make_config(tmp_path, [str(seed_pages[0])], name="feed", **extra))
    run_pipeline(day1)  # a whole run: only a run that ends with its report moves the run's history
    store = ArtifactStore(day1.run_dir, day1.cache_dir, STAGE_NAMES)
    assert not any(note.startswith("guided") for note in store.read_json("cluster", "cluster.json")["notes"])
    before = store.read_table("label", "assignments.parquet")
    registry1 = store.read_table("label", "topics_registry.parquet")
    day2 = load_config(make_config(tmp_path, [str(page) for page in seed_pages], name="feed", **extra))
    result = run_pipeline(day2)
    counts = {outcome.stage: outcome.counts for outcome in result.outcomes}
    assert counts["cluster"]["incremental"] == counts["cluster"]["papers"] - len(before)
    after = store.read_table("label", "assignments.parquet")
    history = store.read_table("label", "topic_history.parquet")
    assert kept_share(before, after) >= 0.9
    assert silent_changes(before, after, history, 2).empty
    registry2 = store.read_table("label", "topics_registry.parquet").set_index("topic")
    for row in registry1.itertuples():  # a topic alive in both runs keeps its id and its name
        if registry2.at[row.topic, "alive"]:
            assert registry2.at[row.topic, "name"] == row.name
    assert store.read_json("label", "feed.json")["runs"][-1]["new_papers"] == len(after) - len(before)
    # The name audit speaks of the names the topics carry, kept ones included.
    from pipeline.label.audit import audit_of_topics, texts_name_audit

    topics2, papers2 = store.read_table("label", "topics.parquet"), store.read_table("parse", "papers.parquet")
    columns = ["topic", "name", "coarse_topic", "coarse_name", "name_rank"]  # twins and ranks need these
    audited = texts_name_audit(papers2, topics2[columns], after["topic"].to_numpy())
    assert audit_of_topics(topics2)["name_audit"] == audited["name_audit"]

    forced = run_pipeline(day2, force_from="cluster")
    assert "incremental" not in {o.stage: o.counts for o in forced.outcomes}["cluster"]
    # The recluster is semi-supervised by the clustering before it (the first run was not).
    assert any(note.startswith("guided by") for note in store.read_json("cluster", "cluster.json")["notes"])
    final = store.read_table("label", "assignments.parquet")
    history = store.read_table("label", "topic_history.parquet")
    assert silent_changes(after, final, history, 3).empty
    # As many papers keep their topic as the best one-to-one matching of old and new topics allows.
    assert kept_share(after, final) >= 0.9 * best_matching_share(after, final)
    born = history[(history["run"] == 3) & (history["event"] == "born")]["topic"]
    assert (born > max(registry2.index)).all()  # a new topic never takes an id given before
    # Forced again on the same papers, the recluster repeats its own guide and so its own topics.
    guided_labels, guide = store.read_array("cluster", "labels.npy"), store.read_array("cluster", "guide.npy")
    assert len(guide) == len(guided_labels) and not np.array_equal(guide, guided_labels)
    run_pipeline(day2, until="cluster", force_from="cluster")
    np.testing.assert_array_equal(store.read_array("cluster", "guide.npy"), guide)
    np.testing.assert_array_equal(store.read_array("cluster", "labels.npy"), guided_labels)


def test_a_paper_hdbscan_left_out_stays_in_the_topic_it_was_placed_in():
    from pipeline.feed.label_step import keep_placements

    ids = [f"p{i}" for i in range(10)]
    # Last run: p0-p4 in topic 7, p5-p8 in topic 3 (p4 and p8 were outliers given to a topic), p9 an outlier.
    old = pd.DataFrame({"paper_id": ids, "topic": [7] * 5 + [3] * 4 + [-1]})
    previous = PreviousTopics(old, pd.DataFrame(), pd.DataFrame(), 1, True, True)
    clusters = np.array([0, 0, 0, 0, -1, 1, 1, 1, -1, -1])
    labels, kept, note = keep_placements(clusters, ids, previous)
    assert labels.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, -1]
    assert np.flatnonzero(kept).tolist() == [4, 8]
    assert note is not None and note.startswith("2 papers")
    assert keep_placements(clusters, ids, None)[0] is clusters
    # A topic whose papers no longer mostly form one cluster keeps no one.
    split = np.array([0, 0, 2, 2, -1, 1, 1, 1, -1, -1])
    assert keep_placements(split, ids, previous)[0].tolist() == [0, 0, 2, 2, -1, 1, 1, 1, 1, -1]
    # Unless the label stage merges those clusters into one topic (groups): p4 stays, with one of them.
    groups = np.array([0, 0, 0, 0, -1, 1, 1, 1, -1, -1])
    assert keep_placements(split, ids, previous, groups)[0].tolist() == [0, 0, 2, 2, 0, 1, 1, 1, 1, -1]


REEF_SPECIES = ["Acropora", "Porites", "Pocillopora", "Montipora", "Favia", "Goniastrea", "Stylophora", "Diploria"]
REEF_PLACES = ["the Great Barrier Reef", "the Red Sea", "the Coral Triangle", "the Florida Keys", "the Maldives"]


def reef_papers(count: int, date: str) -> pd.DataFrame:
    """``count`` papers on one subject far from the seed pages' (coral reef bleaching), seeded."""
    rng = np.random.default_rng(5)
    rows = []
    for index in range(count):
        species, place = rng.choice(REEF_SPECIES), rng.choice(REEF_PLACES)
        degrees = round(float(rng.uniform(0.5, 2.5)), 1)
        rows.append(
            {
                "title": f"Coral bleaching of {species} reefs in {place} under marine heatwaves ({index})",
                "abstract": (
                    f"Coral reefs in {place} suffered mass coral bleaching during marine heatwaves. We surveyed "
                    f"{species} colonies on reef transects and measured sea surface temperature anomalies of "
                    f"{degrees} degrees. Coral bleaching, coral mortality and algal symbiont loss rose with the "
                    "heat stress, while reef recovery depended on water quality and fish herbivory. Coral reefs "
                    "need reduced ocean warming to survive further bleaching events."
                ),
                "date": date,
                "url": f"https://example.org/reef/{index}",
            }
        )
    return pd.DataFrame(rows)


def test_a_new_dense_subject_in_a_new_day_becomes_a_new_topic_with_its_first_date(tmp_path, seed_pages):
    """Day 2 adds 24 papers on a subject no seed page treats: the update grows it into a topic, told everywhere."""
    from pipeline.config import load_config
    from pipeline.report.timeline import build_timeline
    from pipeline.runner import run_pipeline
    from pipeline.stages import STAGE_NAMES
    from pipeline.store import ArtifactStore
    from tests.test_pipeline import make_config

    extra = {"cluster": {"incremental_max_share": 5.0, "update_drift": 1.0}}
    pages = []
    for page in seed_pages:  # saved on 2026-09-01: "Aug 12" and "Mar 11" are dated in 2026
        copy = tmp_path / page.name
        copy.write_bytes(page.read_bytes())
        os.utime(copy, (1788220800, 1788220800))
        pages.append(str(copy))
    day1 = load_config(make_config(tmp_path, pages, name="feed", **extra))
    run_pipeline(day1)
    store = ArtifactStore(day1.run_dir, day1.cache_dir, STAGE_NAMES)
    before = store.read_table("label", "assignments.parquet")
    first_ids = set(store.read_table("label", "topics_registry.parquet")["topic"].astype(int))
    reefs = tmp_path / "reefs.csv"
    reef_papers(24, "2026-11-20").to_csv(reefs, index=False)
    day2 = load_config(make_config(tmp_path, [*pages, str(reefs)], name="feed", **extra))
    result = run_pipeline(day2)
    counts = {outcome.stage: outcome.counts for outcome in result.outcomes}
    assert counts["cluster"]["incremental"] == 24  # an update, not a recluster

    after = store.read_table("label", "assignments.parquet")
    history = store.read_table("label", "topic_history.parquet")
    assert silent_changes(before, after, history, 2).empty
    born = history[(history["run"] == 2) & (history["event"] == "born")]
    assert len(born) == 1
    topic = int(born["topic"].iloc[0])
    assert topic not in first_ids and topic > max(first_ids)  # a fresh id
    members = after.loc[after["topic"] == topic, "paper_id"].tolist()
    papers = store.read_table("parse", "papers.parquet").set_index("paper_id")
    reef_ids = set(papers.index[papers["title"].str.startswith("Coral bleaching")])
    assert set(members) == reef_ids  # exactly the new subject's papers
    min_size = store.read_json("cluster", "cluster.json")["params"]["min_cluster_size"]
    assert len(members) >= min_size and int(born["papers"].iloc[0]) == len(members)
    topics = store.read_table("label", "topics.parquet").set_index("topic")
    written = (papers.loc[members, "title"] + " " + papers.loc[members, "abstract"]).str.lower()
    assert written.str.contains(topics.at[topic, "name"].split(", ")[0].lower(), regex=False).mean() >= 0.5
    registry = store.read_table("label", "topics_registry.parquet").set_index("topic")
    assert registry.at[topic, "first_seen"] == 2 and registry.at[topic, "name"] == topics.at[topic, "name"]

    # Told everywhere: the what's-new page, the digest and the feed name it; the chart counts it from its date.
    name = topics.at[topic, "name"]
    new_page = (day2.run_dir / "new.html").read_text()
    assert name in new_page
    digest = (day2.run_dir / "digest.md").read_text()
    assert name in digest.split("New topics", 1)[1]
    assert "1 new topics" in (day2.run_dir / "feed.atom").read_text()
    table = pd.read_csv(day2.run_dir / "papers.csv", dtype=str, keep_default_na=False)
    timeline = build_timeline(table["date"], table["topic"].astype(int), sorted(set(table["topic"].astype(int))))
    assert timeline is not None and timeline.periods[-1] == "2026-11"
    assert timeline.counts.loc[topic].tolist() == [0] * (len(timeline.periods) - 1) + [24]
    for old_topic in first_ids & set(timeline.counts.index):  # the other topics' rows end before November
        assert timeline.counts.loc[old_topic].iloc[-1] == 0


def test_a_recluster_under_other_settings_is_not_guided_by_the_clustering_before(tmp_path, seed_pages):
    """Tuning a setting gives what a fresh run gives: only a recluster of the same settings is guided."""
    from pipeline.config import load_config
    from pipeline.runner import run_pipeline
    from pipeline.stages import STAGE_NAMES
    from pipeline.store import ArtifactStore
    from tests.test_pipeline import make_config

    pages = [str(page) for page in seed_pages]
    run_pipeline(load_config(make_config(tmp_path, pages, name="tune")), until="cluster")
    tuned = load_config(make_config(tmp_path, pages, name="tune", cluster={"min_cluster_size": 4}))
    run_pipeline(tuned, until="cluster")
    store = ArtifactStore(tuned.run_dir, tuned.cache_dir, STAGE_NAMES)
    labels = store.read_array("cluster", "labels.npy")
    assert not any(note.startswith("guided") for note in store.read_json("cluster", "cluster.json")["notes"])
    (tmp_path / "fresh").mkdir()
    fresh = load_config(make_config((tmp_path / "fresh"), pages, name="tune", cluster={"min_cluster_size": 4}))
    run_pipeline(fresh, until="cluster")
    np.testing.assert_array_equal(
        labels, ArtifactStore(fresh.run_dir, fresh.cache_dir, STAGE_NAMES).read_array("cluster", "labels.npy")
    )
