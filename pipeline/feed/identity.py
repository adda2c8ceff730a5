"""Stable topic ids: a run's topics matched to the topics of the run before, by members and centroids.

The label stage numbers a clustering's topics by size (0 = largest). When the run folder
holds a finished label stage from before, :func:`stable_topics` maps those numbers to the
ids of the previous run's topics:

1. **Member overlap.** For each pair (new topic, old topic) the papers both runs placed in
   them are counted. Pairs are taken greedily, largest overlap first, while neither side is
   taken yet, when the overlap is a majority of either side's already-placed papers: the
   new topic then keeps the old id and (under the same naming settings) the old name.
2. **Centroid.** A new topic left unmatched takes the id of a registry topic no one took
   (alive or faded earlier) when their centroids' cosine is at least ``CENTROID_MATCH``
   (BERTopic's ``merge_models`` uses 0.7 on topic embeddings; MiniLM centroids of
   unrelated arXiv topics reach 0.8, so the bar here is higher). Skipped when the
   embedding model changed.
3. Every other topic is born with a fresh id, one more than the largest id ever given: an
   id is never reused.

Every change of an already-placed paper's topic is written to the history as a transfer
row (``from_topic`` -> ``topic``): ``merged`` when the old topic is gone, ``split`` when the
new topic was born in this run, ``moved`` otherwise (also to the outliers, topic -1). Topics
also get ``born``, ``grew`` (papers new to the corpus joined it) and ``faded`` (no paper
is left in it) rows. The registry keeps every id ever given, alive or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.schema import OUTLIER_TOPIC

CENTROID_MATCH = 0.9
REGISTRY_COLUMNS = ("topic", "name", "centroid", "first_seen", "last_seen", "size", "alive")
HISTORY_COLUMNS = ("run", "topic", "event", "from_topic", "similarity", "papers")
NEW_PAPER = -2  # a paper the previous run did not hold


@dataclass(frozen=True)
class PreviousTopics:
    """What the last finished label stage left: each paper's topic, the registry, the history."""

    assignments: pd.DataFrame  # paper_id, topic
    registry: pd.DataFrame  # REGISTRY_COLUMNS
    history: pd.DataFrame  # HISTORY_COLUMNS
    run: int  # the previous run's number
    same_model: bool  # centroids comparable (same embedding model)
    same_names: bool  # names made under the same naming settings and code


@dataclass(frozen=True)
class StableTopics:
    """local (size-ordered) topic -> stable id, and the registry and history after this run."""

    ids: dict[int, int]
    names: dict[int, str]  # stable id -> the name it keeps from earlier runs
    registry: pd.DataFrame
    history: pd.DataFrame
    run: int
    notes: list[str] = field(default_factory=list)


def empty_registry() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in REGISTRY_COLUMNS})


def empty_history() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in HISTORY_COLUMNS})


def _cosine(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None or a.shape != b.shape:
        return float("nan")
    return round(float(a @ b), 6)


def _overlap_matches(old: np.ndarray, new: np.ndarray) -> tuple[dict[int, int], pd.Series]:
    """Greedy majority matching of new topics to old ones by shared papers; also the pair counts."""
    placed = (old >= 0) & (new >= 0)
    pairs = pd.Series(1, index=pd.MultiIndex.from_arrays([old[placed], new[placed]], names=["old", "new"]))
    pairs = pairs.groupby(level=["old", "new"]).sum()
    old_sizes = pd.Series(old[old >= 0]).value_counts()
    new_old_sizes = pd.Series(new[placed]).value_counts()  # per new topic, its papers placed before
    taken_old: set[int] = set()
    matched: dict[int, int] = {}
    order = sorted(pairs.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))
    for (old_topic, new_topic), count in order:
        if old_topic in taken_old or new_topic in matched:
            continue
        if 2 * count > old_sizes[old_topic] or 2 * count > new_old_sizes[new_topic]:
            matched[int(new_topic)] = int(old_topic)
            taken_old.add(int(old_topic))
    return matched, pairs


def stable_topics(
    paper_ids: list[str],
    local_topics: np.ndarray,
    centroids: dict[int, np.ndarray],
    previous: PreviousTopics | None,
) -> StableTopics:
    """Stable ids for the local topics of ``local_topics`` (one per paper of ``paper_ids``).

    centroids: local topic -> unit centroid. Without a previous run, ids are the local
    (size-ordered) numbers and every topic is born in run 1.
    """
    sizes = pd.Series(local_topics[local_topics >= 0]).value_counts()
    real = sorted(int(topic) for topic in sizes.index)
    if previous is None:
        return _first_run(real, sizes, centroids)
    run = previous.run + 1
    old_of = dict(zip(previous.assignments["paper_id"].tolist(), previous.assignments["topic"].tolist(), strict=True))
    old = np.array([old_of.get(paper, NEW_PAPER) for paper in paper_ids], dtype=np.int64)
    matched, _ = _overlap_matches(old, local_topics)
    registry = previous.registry.set_index("topic", drop=False)
    old_centroid = {
        int(t): np.asarray(c, dtype=np.float64) for t, c in zip(registry["topic"], registry["centroid"], strict=True)
    }
    notes = []
    if previous.same_model:
        free = [int(t) for t in registry["topic"] if int(t) not in matched.values()]
        candidates = sorted(
            ((_cosine(centroids[k], old_centroid[t]), k, t) for k in real if k not in matched for t in free),
            key=lambda item: (-item[0], item[1], item[2]),
        )
        for similarity, k, t in candidates:
            if similarity >= CENTROID_MATCH and k not in matched and t not in matched.values():
                matched[k] = t
                notes.append(f"topic {t} matched again by its centroid (cosine {similarity:.2f})")
    next_id = int(registry["topic"].max()) + 1 if len(registry) else 0
    ids: dict[int, int] = {}
    for k in real:  # largest first, so the larger of two newborn topics gets the smaller id
        if k in matched:
            ids[k] = matched[k]
        else:
            ids[k], next_id = next_id, next_id + 1
    ids[OUTLIER_TOPIC] = OUTLIER_TOPIC
    stable = np.array([ids[int(k)] for k in local_topics.tolist()], dtype=np.int64)
    alive_before = {int(t) for t in previous.assignments["topic"].tolist() if t >= 0}
    born = {ids[k] for k in real if k not in matched}
    centroid_of = {ids[k]: centroids[k] for k in real}
    history = _events(run, old, stable, alive_before, born, centroid_of, old_centroid)
    names = {}
    if previous.same_names:
        names = {t: str(registry.at[t, "name"]) for t in matched.values()}
    rows = []
    for topic in sorted(set(registry["topic"].astype(int)) | set(centroid_of)):
        if topic in centroid_of:
            first = int(registry.at[topic, "first_seen"]) if topic in registry.index else run
            rows.append((topic, "", centroid_of[topic], first, run, int((stable == topic).sum()), True))
        else:
            entry = registry.loc[topic]
            rows.append((topic, entry["name"], old_centroid[topic], int(entry["first_seen"]),
                         int(entry["last_seen"]), int(entry["size"]), False))  # fmt: skip
    new_registry = _registry(rows)
    notes.insert(0, f"run {run}: {len(matched)} topics kept their ids, {len(born)} born, "
                    f"{len(alive_before - set(centroid_of))} faded")  # fmt: skip
    all_history = pd.concat([previous.history, history], ignore_index=True) if len(previous.history) else history
    return StableTopics(ids, names, new_registry, all_history.reset_index(drop=True), run, notes)


def _first_run(real: list[int], sizes: pd.Series, centroids: dict[int, np.ndarray]) -> StableTopics:
    ids = {k: k for k in real} | {OUTLIER_TOPIC: OUTLIER_TOPIC}
    registry = _registry([(k, "", centroids[k], 1, 1, int(sizes[k]), True) for k in real])
    history = _history([(1, k, "born", OUTLIER_TOPIC, float("nan"), int(sizes[k])) for k in real])
    return StableTopics(ids, {}, registry, history, 1, [f"run 1: {len(real)} topics born"])


def _events(
    run: int,
    old: np.ndarray,
    new: np.ndarray,
    alive_before: set[int],
    born: set[int],
    centroid_of: dict[int, np.ndarray],
    old_centroid: dict[int, np.ndarray],
) -> pd.DataFrame:
    """This run's history rows; every (old topic -> other topic) move of placed papers is one row."""
    rows = []
    alive_now = set(centroid_of)
    for topic in sorted(born):
        best = max((_cosine(centroid_of[topic], c) for c in old_centroid.values()), default=float("nan"))
        rows.append((run, topic, "born", OUTLIER_TOPIC, best, int((new == topic).sum())))
    joined = pd.Series(new[(old == NEW_PAPER) & (new >= 0)]).value_counts()
    for topic, count in sorted(joined.items()):
        if int(topic) not in born:
            similarity = _cosine(centroid_of[int(topic)], old_centroid.get(int(topic)))
            rows.append((run, int(topic), "grew", int(topic), similarity, int(count)))
    changed = (old >= 0) & (new != old)
    moves = pd.Series(1, index=pd.MultiIndex.from_arrays([old[changed], new[changed]])).groupby(level=[0, 1]).sum()
    for (source, target), count in sorted(moves.items()):
        source, target = int(source), int(target)
        event = "merged" if source not in alive_now else "split" if target in born else "moved"
        similarity = _cosine(centroid_of.get(target), old_centroid.get(source))
        rows.append((run, target, event, source, similarity, int(count)))
    for topic in sorted(alive_before - alive_now):
        rows.append((run, topic, "faded", topic, float("nan"), int((old == topic).sum())))
    return _history(rows)


def _registry(rows: list[tuple]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(REGISTRY_COLUMNS))
    table["topic"] = table["topic"].astype(np.int64)
    table["name"] = table["name"].astype(str)
    table["centroid"] = [np.asarray(c, dtype=np.float32).tolist() for c in table["centroid"]]
    for column in ("first_seen", "last_seen", "size"):
        table[column] = table[column].astype(np.int64)
    table["alive"] = table["alive"].astype(bool)
    return table


def _history(rows: list[tuple]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    for column in ("run", "topic", "from_topic", "papers"):
        table[column] = table[column].astype(np.int64)
    table["event"] = table["event"].astype(str)
    table["similarity"] = table["similarity"].astype(np.float64)
    return table


def apply_stable_ids(
    stable: StableTopics, assignments: pd.DataFrame, topics: pd.DataFrame, hierarchy: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The label tables renumbered to stable ids, kept names restored; and the registry named.

    Topics stay sorted for display (outliers first, then by size, largest first); a name a
    topic keeps wins over a new topic's equal name, which then carries its id.
    """
    from pipeline.label.names import slugify

    ids = stable.ids
    assignments = assignments.assign(topic=assignments["topic"].map(ids).astype(np.int64))
    topics = topics.assign(topic=topics["topic"].map(ids).astype(np.int64))
    kept = {topic: name for topic, name in stable.names.items() if topic in set(topics["topic"])}
    taken = {name.casefold() for name in kept.values()}
    names, slugs = [], []
    columns = (topics["topic"].tolist(), topics["name"].tolist(), topics["slug"].tolist())
    for topic, name, slug in zip(*columns, strict=True):
        if topic in kept:
            name, slug = kept[topic], slugify(kept[topic])
        elif topic != OUTLIER_TOPIC and name.casefold() in taken:
            name = f"{name} ({topic})"
            slug = slugify(name)
        names.append(name)
        slugs.append(slug)
    topics = topics.assign(name=names, slug=slugs)
    topics = topics.assign(_real=topics["topic"] != OUTLIER_TOPIC, _size=-topics["size"])
    topics = topics.sort_values(["_real", "_size", "topic"], kind="stable").drop(columns=["_real", "_size"])
    topics = topics.reset_index(drop=True)
    if len(hierarchy):
        local_real = [k for k in ids if k != OUTLIER_TOPIC]
        old_first, new_first = max(local_real) + 1, max(ids[k] for k in local_real) + 1

        def node(value: int) -> int:
            return ids[value] if value < old_first else new_first + value - old_first

        hierarchy = hierarchy.assign(
            parent_id=hierarchy["parent_id"].map(node),
            child_left_id=hierarchy["child_left_id"].map(node),
            child_right_id=hierarchy["child_right_id"].map(node),
            topics=[sorted(ids[int(leaf)] for leaf in leaves) for leaves in hierarchy["topics"]],
        )
    name_of = dict(zip(topics["topic"].tolist(), topics["name"].tolist(), strict=True))
    registry = stable.registry.assign(
        name=[name_of.get(t, n) for t, n in zip(stable.registry["topic"], stable.registry["name"], strict=True)]
    )
    return assignments, topics, hierarchy, registry


def silent_changes(before: pd.DataFrame, after: pd.DataFrame, history: pd.DataFrame, run: int) -> pd.DataFrame:
    """Papers placed in a topic ``before`` whose topic ``after`` differs with no history row of ``run`` saying so.

    before, after: paper_id and topic columns (assignments of two consecutive runs). Empty
    when every change is accounted for: the promise that no paper changes topic silently.
    """
    joined = before[["paper_id", "topic"]].merge(after[["paper_id", "topic"]], on="paper_id", suffixes=("_old", ""))
    changed = joined[(joined["topic_old"] >= 0) & (joined["topic_old"] != joined["topic"])]
    rows = history[history["run"] == run]
    said = set(zip(rows["from_topic"].astype(int), rows["topic"].astype(int), strict=True))
    explained = [(int(a), int(b)) in said for a, b in zip(changed["topic_old"], changed["topic"], strict=True)]
    return changed[~np.asarray(explained, dtype=bool)] if len(changed) else changed


def kept_share(before: pd.DataFrame, after: pd.DataFrame) -> float:
    """Share of the papers placed in a topic ``before`` that are in the same topic ``after`` (nan: none)."""
    joined = before[["paper_id", "topic"]].merge(after[["paper_id", "topic"]], on="paper_id", suffixes=("_old", ""))
    placed = joined[joined["topic_old"] >= 0]
    return float((placed["topic_old"] == placed["topic"]).mean()) if len(placed) else float("nan")
