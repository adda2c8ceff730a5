"""The label stage's update path: a grown feed relabelled from the last run's sums, not from scratch.

A one-day update adds a few hundred papers to tens of thousands that keep their topic. Their
topics keep their names, so what the label stage must recompute is small: each topic's
keywords (c-TF-IDF over the topic's term counts), its name audit (how many of its papers
write its name), sizes, scores and representatives. The full path rebuilds the document-term
matrix and the phrase index of every paper (about 30 s at 75k papers) to get them.

After each run the label stage keeps a :class:`LabelState` (keyed by :func:`state_key`:
the run's assignments and what its term counts depend on): per stable topic the summed term counts,
how many of its papers hold each term, and how many write its name's main phrase. The next
run, when every topic keeps its id and name and none is born or fades
(:func:`update_blockers`), adds the rows of the papers that are new or changed topic
(:func:`grown_state`) and ranks keywords from the sums. The sums are integers, so the
keywords equal the full path's exactly (a test compares them); the topic tree and the group
names stay those of the last run, since the same topics make it. Anything else (a topic
born or faded, a paper gone or its text changed, other label settings, no state) takes the
full path, and the run's notes say why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline.config import LabelConfig
from pipeline.files import hash_json
from pipeline.label.audit import main_phrase, papers_writing
from pipeline.label.class_counts import ClassCounts, ClassSums, class_keywords, class_sums
from pipeline.label.phrases import PhraseTokens
from pipeline.memo import csr_fields, csr_from, words_from_array, words_to_array
from pipeline.schema import OUTLIER_TOPIC
from pipeline.terms import TermCounts, packed_ngrams

# Bump when LabelState would hold other sums for the same run (it keys the stored states).
STATE_VERSION = 1
_DECIMALS = 4  # as the name audit rounds coverage (lift: 2)


@dataclass(frozen=True)
class LabelState:
    """What the next update needs of a finished label stage.

    paper_ids, text_keys (S16) and topics (stable ids, int64): one per paper in table order;
    classes: sorted topic ids (-1 first when there are outliers); counts: csr (n_classes,
    n_terms) summed term counts; holding: csr of the same entries, how many of the class's
    papers hold the term; vocabulary and ngrams: the terms as in ``pipeline.terms.TermCounts``;
    audit_topics / audit_phrases / audit_inside / audit_total: per real topic its name's main
    phrase, how many of its papers write it and how many papers of the whole pile do.
    """

    paper_ids: np.ndarray
    text_keys: np.ndarray
    topics: np.ndarray
    classes: np.ndarray
    counts: sparse.csr_matrix
    holding: sparse.csr_matrix
    vocabulary: np.ndarray
    ngrams: tuple[np.ndarray, ...]
    audit_topics: np.ndarray
    audit_phrases: np.ndarray
    audit_inside: np.ndarray
    audit_total: np.ndarray


def state_key(assignments_hash: str, counts_settings: str) -> str:
    """The key of the state a run leaves: its assignments' hash and what its term counts depend on."""
    return hash_json({"assignments": assignments_hash, "counts": counts_settings, "version": STATE_VERSION})


def audit_counts(
    tokens: PhraseTokens, topics: np.ndarray, names: Mapping[int, str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per real topic of ``names``: its main phrase, the papers of the topic and of the pile that write it."""
    real = sorted(topic for topic in names if topic != OUTLIER_TOPIC)
    phrases = [main_phrase(names[topic]) for topic in real]
    inside, total = np.zeros(len(real), dtype=np.int64), np.zeros(len(real), dtype=np.int64)
    for index, (topic, phrase) in enumerate(zip(real, phrases, strict=True)):
        writes = papers_writing(tokens, phrase)
        inside[index], total[index] = int((writes & (topics == topic)).sum()), int(writes.sum())
    return np.array(real, dtype=np.int64), np.array(phrases, dtype=object), inside, total


def build_state(
    paper_ids: Sequence[str],
    text_keys: Sequence[bytes],
    topics: np.ndarray,
    counts: TermCounts,
    tokens: PhraseTokens,
    names: Mapping[int, str],
    sums: ClassSums | None = None,
) -> LabelState:
    """The state of a finished label stage (``topics``: each paper's stable topic; ``names``: topic -> name).

    ``sums``: ``class_sums(counts.matrix, topics)``, when the caller has them (kept between runs).
    """
    classes, class_counts, holding = class_sums(counts.matrix, topics) if sums is None else sums
    audit = audit_counts(tokens, topics, names)
    return LabelState(
        np.asarray(paper_ids, dtype=object), np.asarray(text_keys, dtype="S16"), np.asarray(topics, dtype=np.int64),
        classes, class_counts, holding, counts.vocabulary, counts.ngrams, *audit,
    )  # fmt: skip


def merged_terms(
    vocabulary: np.ndarray,
    ngrams: Sequence[np.ndarray],
    other_vocabulary: np.ndarray,
    other_ngrams: Sequence[np.ndarray],
) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """The union of two term spaces, numbered as ``term_counts`` numbers the terms of both texts together.

    Returns the vocabulary, the n-gram blocks, and the new id of each term of the first space
    and of the second. Words stay sorted and each block stays in packed-key order, so the ids
    are those a full count over all papers gives.
    """
    first_words, second_words = vocabulary.astype(str), other_vocabulary.astype(str)
    words = _sorted_union(first_words, second_words)
    base = max(len(words), 1)
    if base ** max(len(ngrams), 1) >= 2**62:
        raise ValueError(f"a vocabulary of {base} words is too large for {len(ngrams)}-grams")
    first_word, second_word = np.searchsorted(words, first_words), np.searchsorted(words, second_words)
    blocks, first_ids, second_ids, start = [], [], [], 0
    for first_block, second_block in zip(ngrams, other_ngrams, strict=True):
        # Words keep their order, so each block's packed keys stay sorted: merged, not sorted again.
        first_keys = packed_ngrams(first_word[first_block] if len(first_block) else first_block, base)
        second_keys = packed_ngrams(second_word[second_block] if len(second_block) else second_block, base)
        keys = _sorted_union(first_keys, second_keys)
        block = np.zeros((len(keys), first_block.shape[1]), dtype=np.int32)
        remainder = keys.copy()
        for offset in reversed(range(block.shape[1])):
            block[:, offset] = remainder % base
            remainder //= base
        blocks.append(block)
        first_ids.append(start + np.searchsorted(keys, first_keys))
        second_ids.append(start + np.searchsorted(keys, second_keys))
        start += len(keys)
    return words.astype(object), tuple(blocks), np.concatenate(first_ids), np.concatenate(second_ids)


def _sorted_union(large: np.ndarray, small: np.ndarray) -> np.ndarray:
    """The union of two sorted arrays of distinct values, sorted: ``small``'s new values inserted into ``large``."""
    if len(large) == 0:
        return small.copy()
    position = np.searchsorted(large, small)
    new = small[(position == len(large)) | (large[np.minimum(position, len(large) - 1)] != small)]
    return np.insert(large, np.searchsorted(large, new), new)


def grown_state(
    state: LabelState,
    paper_ids: Sequence[str],
    text_keys: Sequence[bytes],
    topics: np.ndarray,
    changed: np.ndarray,
    changed_counts: TermCounts,
    changed_tokens: PhraseTokens,
) -> LabelState:
    """The state after this run: ``state`` plus the papers ``changed`` (rows of this run's table).

    ``changed`` holds every paper that is new or whose topic differs from the state's, and
    ``changed_counts`` / ``changed_tokens`` their term counts and phrase tokens, in that order.
    A changed paper the state holds leaves its old topic's sums and joins its new topic's.
    """
    before_row = pd.Index(state.paper_ids).get_indexer(pd.Index(np.asarray(paper_ids, dtype=object)[changed]))
    old_topics = np.where(before_row >= 0, state.topics[np.maximum(before_row, 0)], OUTLIER_TOPIC - 1)
    new_topics = topics[changed]
    words, ngrams, old_ids, new_ids = merged_terms(
        state.vocabulary, state.ngrams, changed_counts.vocabulary, changed_counts.ngrams
    )
    n_terms = sum(len(block) for block in ngrams)
    classes = np.union1d(state.classes, np.unique(topics))
    row_of_old = np.searchsorted(classes, state.classes)

    def widened(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
        coo = matrix.tocoo()
        return sparse.csr_matrix((coo.data, (row_of_old[coo.row], old_ids[coo.col])), shape=(len(classes), n_terms))

    rows = changed_counts.matrix.tocoo()
    columns = new_ids[rows.col]
    present = np.ones_like(rows.data)
    held = old_topics >= OUTLIER_TOPIC  # a paper the state holds: it leaves its old topic
    add = (np.searchsorted(classes, new_topics[rows.row]), columns)
    leave = np.flatnonzero(held[rows.row])
    take = (np.searchsorted(classes, old_topics[rows.row[leave]]), columns[leave])
    shape = (len(classes), n_terms)

    def delta(data: np.ndarray) -> sparse.csr_matrix:
        plus = sparse.csr_matrix((data, add), shape=shape, dtype=np.int64)
        minus = sparse.csr_matrix((data[leave], take), shape=shape, dtype=np.int64)
        return plus - minus

    counts = (widened(state.counts).astype(np.int64) + delta(rows.data.astype(np.int64))).tocsr()
    holding = (widened(state.holding).astype(np.int64) + delta(present.astype(np.int64))).tocsr()
    if (counts.data < 0).any() or (holding.data < 0).any():
        raise RuntimeError("a topic's term counts went below zero: the label state does not match the run")
    counts.eliminate_zeros()
    holding.eliminate_zeros()
    sizes = np.bincount(np.searchsorted(classes, topics), minlength=len(classes))
    alive = np.flatnonzero(sizes > 0)
    counts, holding = counts[alive].astype(np.int32), holding[alive].astype(np.int32)
    counts.sort_indices()
    holding.sort_indices()
    inside, total = state.audit_inside.copy(), state.audit_total.copy()
    for index, (topic, phrase) in enumerate(
        zip(state.audit_topics.tolist(), state.audit_phrases.tolist(), strict=True)
    ):
        writes = papers_writing(changed_tokens, phrase)
        inside[index] += int((writes & (new_topics == topic)).sum()) - int((writes & (old_topics == topic)).sum())
        total[index] += int((writes & ~held).sum())
    return LabelState(
        np.asarray(paper_ids, dtype=object), np.asarray(text_keys, dtype="S16"), np.asarray(topics, dtype=np.int64),
        classes[alive], counts, holding, words, ngrams, state.audit_topics, state.audit_phrases, inside, total,
    )  # fmt: skip


def state_keywords(state: LabelState, config: LabelConfig) -> dict[int, list[tuple[str, float]]]:
    """Each topic's c-TF-IDF keywords from the state's sums: what ``ctfidf_keywords`` gives over all papers."""
    sizes = np.bincount(np.searchsorted(state.classes, state.topics), minlength=len(state.classes))
    sums = ClassCounts(state.classes, sizes, state.counts, state.holding, state.vocabulary, state.ngrams)
    return class_keywords(sums, config)


def state_audit(state: LabelState) -> dict[int, tuple[float, float]]:
    """Per real topic, its name's (coverage, lift), as ``audit.name_audit`` computes them over all papers."""
    sizes = pd.Series(state.topics).value_counts()
    n_papers = len(state.topics)
    result = {}
    for topic, inside, total in zip(
        state.audit_topics.tolist(), state.audit_inside.tolist(), state.audit_total.tolist(), strict=True
    ):
        size = int(sizes.get(topic, 0))
        coverage = inside / size if size else 0.0
        lift = coverage / ((total - inside + 1) / (n_papers - size + 1))
        result[int(topic)] = (round(coverage, _DECIMALS), round(lift, _DECIMALS - 2))
    return result


class LabelStateArrays:
    """A :class:`LabelState` as arrays (``pipeline.memo`` codec)."""

    def encode(self, value: LabelState) -> dict[str, np.ndarray]:
        return {
            "paper_ids": words_to_array(value.paper_ids),
            "text_keys": value.text_keys,
            "topics": value.topics,
            "classes": value.classes,
            **{f"counts_{name}": array for name, array in csr_fields(value.counts).items()},
            "holding": value.holding.data,
            "vocabulary": words_to_array(value.vocabulary),
            **{f"ngrams_{n}": block for n, block in enumerate(value.ngrams)},
            "audit_topics": value.audit_topics,
            "audit_phrases": words_to_array(
                np.array([p.replace("\n", " ") for p in value.audit_phrases], dtype=object)
            ),
            "audit_inside": value.audit_inside,
            "audit_total": value.audit_total,
        }

    def decode(self, arrays: Mapping[str, np.ndarray]) -> LabelState:
        counts = csr_from({name: arrays[f"counts_{name}"] for name in ("shape", "data", "indices", "indptr")})
        holding = sparse.csr_matrix((arrays["holding"], counts.indices, counts.indptr), shape=counts.shape)
        n_blocks = sum(1 for name in arrays if name.startswith("ngrams_"))
        phrases = words_from_array(arrays["audit_phrases"]) if len(arrays["audit_topics"]) else np.zeros(0, object)
        return LabelState(
            words_from_array(arrays["paper_ids"]), arrays["text_keys"], arrays["topics"], arrays["classes"],
            counts, holding, words_from_array(arrays["vocabulary"]),
            tuple(arrays[f"ngrams_{n}"] for n in range(n_blocks)),
            arrays["audit_topics"], phrases, arrays["audit_inside"], arrays["audit_total"],
        )  # fmt: skip
