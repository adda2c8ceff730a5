"""Label stage: papers, vectors and clusters in; topics, assignments, topic tree and metrics out.

The stage reads (its declared inputs, the last run's history, the label sums kept between
runs) and hands plain data to one of three paths (``pipeline.label.paths``: relabel from the
last run's sums, full, sampled), picked by ``paths.path_for`` and said in ``label.json``'s notes.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.config import RunConfig
from pipeline.feed.label_step import FEED_OUTPUTS, LABEL_CARRIED, FeedKeys, keep_placements, previous_topics
from pipeline.files import hash_json, json_to_bytes, sha256_bytes, table_to_bytes
from pipeline.label.cache import cached_tokens, counts_settings, kept_npmi
from pipeline.memo import text_key
from pipeline.schema import PAPER_COLUMNS, TEXT_COLUMNS, PaperTexts, StreamedTexts, paper_texts
from pipeline.stage import Stage, StageContext, StageResult

if TYPE_CHECKING:
    import numpy as np

    from pipeline.feed.identity import PreviousTopics
    from pipeline.feed.relabel import Matched, Prior
    from pipeline.state import CarriedState
    from pipeline.terms import TokenizedTexts

# States for the update path (pipeline.feed.label_update): about 100 MB each at 75k papers; the
# last run's is the one the next run needs, and one more covers a run that was not kept.
LABEL_STATES_KEPT = 2
# Papers whose texts are read from the table at once on the sampled path (schema.StreamedTexts).
TEXT_BLOCK = 10_000
# Where the label sums a relabel starts from are kept between runs (the output folder's cache).
STATE_NAMESPACE = "label-state"


def _settings(config: RunConfig) -> dict[str, Any]:
    return {"seed": config.seed, **config.label.model_dump()}


def _model(context: StageContext) -> list[str]:
    from pipeline.embed import model_identity

    return [model_identity(context.config.embed)]


def _prepare_npmi() -> None:
    from pipeline.metrics import prepare_npmi

    prepare_npmi()


def feed_keys(config: RunConfig) -> FeedKeys:
    """The model and the naming key (the label settings and the label code) this run's topics are made with."""
    from pipeline.code_hash import code_hash
    from pipeline.embed import model_identity

    code = code_hash("pipeline.stages.label")  # the source of the label stage's import closure
    naming = hash_json({"label": config.label.model_dump(mode="json"), "code": code})
    return FeedKeys(model=model_identity(config.embed), naming=naming)


def _previous(state: CarriedState | None, keys: FeedKeys) -> tuple[PreviousTopics | None, dict[str, Any] | None]:
    """The topics, registry, history and feed the last successful run carried (the run's history)."""
    if state is None or not state.holds("label", LABEL_CARRIED):
        return None, None
    feed = state.read_json("label", "feed.json")
    assignments, registry, history = (
        state.read_table("label", name)
        for name in ("assignments.parquet", "topics_registry.parquet", "topic_history.parquet")
    )
    previous = previous_topics(feed, assignments, registry, history, keys)
    return previous, feed if previous is not None else None


def _relabel_match(
    context: StageContext,
    previous: PreviousTopics | None,
    settings: str,
    paper_ids: list[str],
    text_keys: list[bytes],
    embeddings: np.ndarray,
    cluster_labels: np.ndarray,
    kept: np.ndarray,
) -> tuple[Prior | None, Matched | None]:
    """The last run's sums and this run's topics matched to its; the match says what blocks a relabel.

    (None, None) on a first run.
    """
    from pipeline.feed.label_update import LabelStateArrays, state_key
    from pipeline.feed.relabel import Prior, blocked, matched

    config, state = context.config.label, context.state
    if previous is None:
        return None, None
    if context.forced:
        return None, blocked("the label stage was forced")
    if config.representation != "none":
        return None, blocked(f"keywords come from the {config.representation!r} representation")
    if not previous.same_names or state is None:
        return None, blocked("the naming settings or code changed since the last run")
    key = state_key(state.digest("label", "assignments.parquet") or "", settings)
    sums = context.store.cache.get(STATE_NAMESPACE, key, LabelStateArrays())
    if sums is None:
        return None, blocked("the last run left no label state")
    try:
        topics, hierarchy = state.read_table("label", "topics.parquet"), state.read_table("label", "hierarchy.parquet")
    except (OSError, KeyError, ValueError) as exc:
        return None, blocked(f"the last run's tables cannot be read ({exc})")
    prior = Prior(sums, topics, hierarchy)
    return prior, matched(prior, previous, paper_ids, text_keys, embeddings, cluster_labels, config, kept)


def run(context: StageContext) -> StageResult:
    from pipeline.feed.label_update import LabelStateArrays, state_key
    from pipeline.label import merged_to_target
    from pipeline.label.paths import PATHS, LabelInput, path_for
    from pipeline.label.sample import label_sample_size
    from pipeline.metrics import npmi

    store, config = context.store, context.config
    # Loading NPMI's compiled code (numba, about 1 s) overlaps the reading of this stage's caches,
    # which waits on the disk with the GIL released.
    npmi_ready = threading.Thread(target=_prepare_npmi, name="prepare-npmi", daemon=True)
    npmi_ready.start()
    n_papers = store.table_rows("parse", "papers.parquet")
    sample_size = label_sample_size(n_papers, config.label.fit_sample)
    tokens: TokenizedTexts | None
    texts: Sequence[str]
    if sample_size < n_papers and not config.label.llm.enabled:  # only a sample's words are read
        # Every text is needed once (its key, its part of the term counts): read from the table a block at a
        # time, the sample's with its rows (pipeline.label.paths); the table is held without its texts.
        papers = store.read_table("parse", "papers.parquet", [c for c in PAPER_COLUMNS if c not in TEXT_COLUMNS])
        blocks = functools.partial(store.table_batches, "parse", "papers.parquet", TEXT_COLUMNS, TEXT_BLOCK)
        texts = StreamedTexts(blocks, n_papers)
        tokens, text_keys = None, [text_key(text) for text in texts]
    elif sample_size < n_papers:  # the LLM's prompts take the titles of any paper: the whole table
        papers = store.read_table("parse", "papers.parquet")
        texts = PaperTexts(papers)
        tokens, text_keys = None, [text_key(text) for text in texts]
    else:
        papers = store.read_table("parse", "papers.parquet")
        texts = paper_texts(papers)
        tokens, text_keys = cached_tokens(store.cache, texts)
    settings = counts_settings(config)
    keys = feed_keys(config)
    previous, feed = _previous(context.state, keys)
    paper_ids = papers["paper_id"].astype(str).tolist()
    embeddings, layout = store.read_array("embed", "embeddings.npy"), store.read_array("cluster", "layout.npy")
    clusters = store.read_array("cluster", "labels.npy")
    # A paper keeps its topic when that topic's papers mostly form one topic of this run, merged clusters or not.
    groups = merged_to_target(clusters, embeddings, config.label)[0] if previous is not None else None
    cluster_labels, kept, kept_note = keep_placements(clusters, paper_ids, previous, groups)
    prior, match = _relabel_match(context, previous, settings, paper_ids, text_keys, embeddings, cluster_labels, kept)
    inputs = LabelInput(
        config, papers, texts, text_keys, tokens, sample_size, embeddings, cluster_labels, layout, previous, feed,
        keys, store.cache, context.engine, prior, match, kept,
    )  # fmt: skip
    path = path_for(inputs)
    labelled = PATHS[path](inputs)
    assignments, topics, rows = labelled.assignments, labelled.topics, labelled.rows
    npmi_ready.join()
    if rows is None:
        text_list = texts if isinstance(texts, list) else None
        npmi_of = None
        if text_list is not None and labelled.tokens is not None:  # every paper's texts and tokens: kept
            npmi_of = kept_npmi(store.cache, sha256_bytes(b"".join(text_keys)), functools.partial(
                npmi, texts=text_list, tokens=labelled.tokens))  # fmt: skip
        metrics = run_metrics(papers, assignments, topics, labelled.tokens, text_list, npmi_of)
    else:
        sample = papers.iloc[rows].reset_index(drop=True) if labelled.sample is None else labelled.sample
        metrics = run_metrics(sample, assignments.iloc[rows].reset_index(drop=True), topics, labelled.tokens,
                              paper_texts(sample))  # fmt: skip
    feed_outputs = labelled.feed_outputs
    counts_summary = {
        "topics": int((topics["topic"] >= 0).sum()),
        "outliers": int(topics.loc[topics["topic"] < 0, "size"].sum()),
        "npmi": metrics["npmi"],
        "labelled": "update" if path == "relabel" else "full",
        # The feed's run number and its new papers: what `papertopics history` lists per generation.
        **{key: json.loads(feed_outputs["feed.json"])["runs"][-1][key] for key in ("run", "new_papers")},
    }
    outputs = {
        "assignments.parquet": table_to_bytes(assignments),
        "topics.parquet": table_to_bytes(topics),
        "hierarchy.parquet": table_to_bytes(labelled.hierarchy),
        "label.json": json_to_bytes({"notes": labelled.notes + ([kept_note] if kept_note else [])}),
        "metrics.json": json_to_bytes(metrics),
        **feed_outputs,
    }
    if labelled.state is not None:  # what the next run's update path starts from
        key = state_key(sha256_bytes(outputs["assignments.parquet"]), settings)
        store.cache.put(STATE_NAMESPACE, key, labelled.state, LabelStateArrays(), keep=LABEL_STATES_KEPT)
    return outputs, counts_summary


def run_metrics(
    papers: pd.DataFrame,
    assignments: pd.DataFrame,
    topics: pd.DataFrame,
    tokens: TokenizedTexts | None = None,
    texts: list[str] | None = None,
    npmi_of: Callable[[list[list[str]]], float | None] | None = None,
) -> dict[str, Any]:
    """Topic quality of a run: coherence, diversity, outliers, agreement with known labels.

    ``tokens``: the papers' texts tokenised (``pipeline.terms``), and ``texts`` the papers'
    texts (``schema.paper_texts``), when the caller has them; ``npmi_of``: the NPMI of top words
    over those texts, kept between runs (``label.cache.kept_npmi``).
    """
    from pipeline.label import name_audit_metrics
    from pipeline.metrics import compute_metrics

    labels = papers["label"].tolist() if (papers["label"] != "").any() else None
    topic_words = {int(row.topic): list(row.keywords) for row in topics.itertuples()}
    texts = paper_texts(papers) if texts is None else texts
    metrics = compute_metrics(texts, assignments["topic"].tolist(), topic_words, labels, tokens, npmi_of)
    # How much of each topic its name speaks for (coverage and lift of the name's main phrase).
    return {**metrics, **name_audit_metrics(papers, assignments, topics)}


STAGE = Stage(
    name="label",
    inputs=(("parse", "papers.parquet"), ("embed", "embeddings.npy"), ("cluster", "labels.npy"),
            ("cluster", "layout.npy")),
    outputs=("assignments.parquet", "topics.parquet", "hierarchy.parquet", "label.json", "metrics.json",
             *FEED_OUTPUTS),
    config_slice=_settings,
    run=run,
    module=__name__,
    extra_key=_model,
    uses_engine=True,
    carries=LABEL_CARRIED,
)  # fmt: skip
