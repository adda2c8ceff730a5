"""The label stage's sub-results kept between runs (``store.cache``): tokens, term counts, c-TF-IDF, phrases.

So that changing a label setting costs seconds at 75k papers: each text's tokens (per text,
shared by all runs), the document-term matrix (while the texts, stop words and n-gram length
stay), the c-TF-IDF matrix and the per-topic term sums (while, in addition, every paper keeps
its topic) and the phrase index (while the titles, abstracts and stop words stay).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.config import LabelConfig, RunConfig
from pipeline.files import array_to_bytes, hash_json, sha256_bytes
from pipeline.memo import Codec, MemoStore, SparseMatrix, text_key

if TYPE_CHECKING:
    from scipy import sparse

    from pipeline.engine import Engine
    from pipeline.label.class_counts import ClassCounts, ClassSums
    from pipeline.label.named import Naming, NamingMemo
    from pipeline.label.phrases import PhraseIndex, TermUses
    from pipeline.terms import TermCounts, TokenizedTexts


def tokens_namespace() -> str:
    """Where each text's tokens are kept: one folder per source of the tokenizer and its codec.

    Named by the hash of the code that makes and stores them (``pipeline.code_hash``), so a
    change to it starts a new folder instead of serving old tokens; the old folder is a cache
    like any other (deleting it costs a tokenisation).
    """
    from pipeline.code_hash import code_hash

    return f"tokens/{hash_json([code_hash('pipeline.terms'), code_hash('pipeline.token_rows')])[:16]}"


def _code() -> str:
    """The source of the code computing the sub-results below: this module's import closure.

    It lazily imports every function they run (term counts, c-TF-IDF, class counts, the phrase
    index) and their codecs; a change to any of them moves every key here, and the memo keeps
    only the latest two values of each kind, so no stale value is served and none piles up.
    """
    from pipeline.code_hash import code_hash

    return code_hash(__name__)


# A run's tokens assembled from several shards (after papers were added) are kept whole so that
# the next label change reads one file instead of assembling them again (1.8 s at 75k papers);
# each is as large as the texts' shards, so only the two most recently used are kept.
ASSEMBLED_TOKENS_KEPT = 2


def cached_tokens(cache: MemoStore, texts: list[str]) -> tuple[TokenizedTexts, list[bytes]]:
    """The texts tokenised, each text at most once per output folder, and each text's key."""
    from pipeline import terms
    from pipeline.token_rows import TokenRows

    keys = [text_key(text) for text in texts]
    tokens, _ = cache.memo_rows(
        tokens_namespace(),
        keys,
        lambda indices: terms.tokenize_texts([texts[index] for index in indices]),
        TokenRows(),
        keep_assembled=ASSEMBLED_TOKENS_KEPT,
    )
    return tokens, keys


def counts_settings(config: RunConfig) -> str:
    """What term counts depend on besides the texts: the code, the stop words and the n-grams."""
    from pipeline.label import stop_words

    return hash_json({"code": _code(), "stop_words": stop_words(config.label), "ngram_max": config.label.ngram_max})


def term_counts_key(text_digest: str, config: RunConfig) -> str:
    """What the label stage's document-term matrix depends on: the texts, the code, stop words and n-grams."""
    return hash_json({"texts": text_digest, "counts": counts_settings(config)})


def cached_term_counts(cache: MemoStore, tokens: TokenizedTexts, key: str, config: RunConfig) -> TermCounts:
    """The document-term matrix, reused while the texts, stop words and n-grams stay."""
    from pipeline.label import term_counts_for
    from pipeline.terms import TermCountsArrays

    return cache.memo("term-counts", key, lambda: term_counts_for(tokens, config.label), TermCountsArrays())


def cached_class_weights(
    cache: MemoStore,
    counts: TermCounts,
    counts_key: str,
    topic_per_paper: np.ndarray,
    reduce_frequent_words: bool,
    min_topic_share: float,
) -> sparse.csr_matrix:
    """The c-TF-IDF matrix, reused while the term counts and every paper's topic stay."""
    from pipeline import label

    key = hash_json(
        {
            "counts": counts_key,
            "topics": sha256_bytes(array_to_bytes(topic_per_paper)),
            "code": _code(),
            "reduce_frequent_words": reduce_frequent_words,
            "min_topic_share": min_topic_share,
        }
    )
    return cache.memo(
        "class-weights",
        key,
        lambda: label.class_weights(counts, topic_per_paper, reduce_frequent_words, min_topic_share),
        SparseMatrix(),
    )


def cached_topic_sums(cache: MemoStore, counts: TermCounts, counts_key: str, topics: np.ndarray) -> ClassSums:
    """Per topic the summed term counts and how many papers hold each term (``class_counts.class_sums``).

    Summed once per document-term matrix (``counts``, whose key is ``counts_key``) and topic of
    each paper: a label setting that moves no paper (``n_keywords``, ``name_phrases``) reads them
    back (2.5 s of CPU at 75k papers) instead of summing again. Kept sums that do not fit
    ``counts`` and ``topics`` (other terms or classes) are summed again.
    """
    from pipeline.label import class_counts

    topics = np.asarray(topics, dtype=np.int64)
    key = hash_json({"counts": counts_key, "topics": sha256_bytes(array_to_bytes(topics)), "code": _code()})
    found = cache.get("topic-sums", key, class_counts.ClassSumsArrays())
    if (
        found is not None
        and found[1].shape[1] == counts.matrix.shape[1]
        and np.array_equal(found[0], np.unique(topics))
    ):
        return found
    sums = class_counts.class_sums(counts.matrix, topics)
    cache.put("topic-sums", key, sums, class_counts.ClassSumsArrays())
    return sums


def cached_class_counts(
    cache: MemoStore, texts: Sequence[str], text_digest: str, topics: np.ndarray, config: RunConfig, engine: Engine
) -> tuple[ClassCounts, str]:
    """The term counts per topic of all ``texts``, counted in parts on the run's engine, and a note saying how.

    See ``pipeline.label.class_counts``; kept while the texts, topics and counts settings stay.
    """
    from pipeline.label.class_counts import ClassCountsArrays, counted_in_parts

    # term_counts_key holds the code's hash (_code).
    key = hash_json({"counts": term_counts_key(text_digest, config), "topics": sha256_bytes(array_to_bytes(topics))})
    found = cache.get("class-counts", key, ClassCountsArrays())
    if found is not None:
        return found, f"keywords from the term counts of all {len(texts):,} papers (kept from an earlier run)"
    # Asked before counting: the count lets the workers go at its end, and asking after would start others.
    n_workers = engine.n_workers
    counts, n_parts = counted_in_parts(texts, topics, config.label, engine)
    cache.put("class-counts", key, counts, ClassCountsArrays())
    return counts, (
        f"keywords from the term counts of all {len(texts):,} papers, counted in {n_parts} parts on "
        f"{n_workers} worker(s)"
    )


def phrase_index_key(papers: pd.DataFrame, config: RunConfig) -> str:
    """What the phrase index depends on: the papers' titles and abstracts, the stop words and the code."""
    from pipeline.label import stop_words

    digest = hashlib.sha256()
    for title, abstract in zip(papers["title"].tolist(), papers["abstract"].tolist(), strict=True):
        digest.update(f"{title}\x00{abstract}\x00".encode())
    return hash_json({"texts": digest.hexdigest(), "stop_words": stop_words(config.label), "code": _code()})


def cached_phrase_index(
    cache: MemoStore, papers: pd.DataFrame, config: RunConfig, key: str | None = None
) -> PhraseIndex:
    """The candidate names of the papers, reused while their titles, abstracts and stop words stay.

    ``key``: :func:`phrase_index_key` of the papers and config, when the caller has it.
    """
    from pipeline.label import phrase_index
    from pipeline.label.phrases import PhraseIndexArrays

    key = phrase_index_key(papers, config) if key is None else key
    return cache.memo("phrases", key, lambda: phrase_index(papers, config.label), PhraseIndexArrays())


class FragmentAnswers:
    """``audit.is_fragment``'s answers (``PhraseTokens.fragments``) as one JSON document (``pipeline.memo`` codec)."""

    def encode(self, value: dict[tuple[str, ...], bool]) -> dict[str, np.ndarray]:
        document = sorted([list(words), bool(answer)] for words, answer in value.items())
        return {"json": np.frombuffer(json.dumps(document).encode("utf-8"), dtype=np.uint8)}

    def decode(self, arrays: Mapping[str, np.ndarray]) -> dict[tuple[str, ...], bool]:
        document = json.loads(arrays["json"].tobytes().decode("utf-8"))
        return {tuple(str(word) for word in words): bool(answer) for words, answer in document}


class SpellingUses:
    """``PhraseIndex.spellings`` (``spelling.term_uses`` per term) as one JSON document (``pipeline.memo`` codec)."""

    def encode(self, value: dict[int, TermUses]) -> dict[str, np.ndarray]:
        document = [
            [
                term,
                [[*form, n] for form, n in forms.items()],
                [[surface, inside, n] for (surface, inside), n in seen.items()],
            ]
            for term, (forms, seen) in sorted(value.items())
        ]
        return {"json": np.frombuffer(json.dumps(document).encode("utf-8"), dtype=np.uint8)}

    def decode(self, arrays: Mapping[str, np.ndarray]) -> dict[int, TermUses]:
        document = json.loads(arrays["json"].tobytes().decode("utf-8"))
        return {
            int(term): (
                Counter({tuple(int(s) for s in row[:-1]): int(row[-1]) for row in forms}),
                Counter({(int(surface), bool(inside)): int(n) for surface, inside, n in seen}),
            )
            for term, forms, seen in document
        }


def kept_answers(
    cache: MemoStore, namespace: str, key: str, answers: dict[Any, Any], codec: Codec[Any]
) -> Callable[[], None]:
    """Fill ``answers`` (filled as questions are asked) with those kept; returns what keeps the answers known then.

    For what naming asks of the phrase index alone, keyed by its key (:func:`phrase_index_key`: texts,
    stop words, code): whether the texts continue a phrase (``PhraseTokens.fragments``, 400 phrases)
    and how they spell a term (``PhraseIndex.spellings``). A naming setting asks mostly what the run
    before asked: a fifth of a naming rerun at 75k papers.
    """
    answers.update(cache.get(namespace, key, codec) or {})
    known = len(answers)

    def keep() -> None:
        if len(answers) > known:
            cache.put(namespace, key, dict(answers), codec)

    return keep


class NpmiValue:
    """``{"npmi": value}`` (a float, or None when no topic could be scored) as JSON (``pipeline.memo`` codec)."""

    def encode(self, value: dict[str, float | None]) -> dict[str, np.ndarray]:
        return {"json": np.frombuffer(json.dumps({"npmi": value["npmi"]}).encode("utf-8"), dtype=np.uint8)}

    def decode(self, arrays: Mapping[str, np.ndarray]) -> dict[str, float | None]:
        value = json.loads(arrays["json"].tobytes().decode("utf-8"))["npmi"]
        if value is not None and not isinstance(value, float):
            raise ValueError(f"kept NPMI: {value!r} is not a number")
        return {"npmi": value}


# NPMI values kept per output folder: a few bytes each, one per recent set of keywords.
NPMI_KEPT = 32


def kept_npmi(
    cache: MemoStore, text_digest: str, compute: Callable[[list[list[str]]], float | None]
) -> Callable[[list[list[str]]], float | None]:
    """``compute(words)`` (the NPMI of the topics' top words over the texts), kept between runs.

    Keyed by the texts (``text_digest``: of their keys), the words and the code of ``pipeline.metrics``
    (with the tokenizer it imports): a naming setting keeps every keyword, and reads the value back
    instead of counting word windows over every text again.
    """
    from pipeline.code_hash import code_hash

    def npmi_of(words: list[list[str]]) -> float | None:
        key = hash_json({"texts": text_digest, "words": words, "code": code_hash("pipeline.metrics")})
        found = cache.get("npmi", key, NpmiValue())
        if found is not None:
            return found["npmi"]
        value = compute(words)
        cache.put("npmi", key, {"npmi": value}, NpmiValue(), keep=NPMI_KEPT)
        return value

    return npmi_of


# Namings kept per output folder: each is a few kilobytes (16 KB at 75k papers), so one for every
# recent combination of naming settings, topics and texts; the memo's default of two was evicted by
# two naming settings tried in a row, and the next keyword setting named every topic again.
NAMINGS_KEPT = 32


def naming_memo(cache: MemoStore, phrases_key: str, config: RunConfig, label_config: LabelConfig) -> NamingMemo:
    """Names, tree and audit kept between runs (``label.named``), keyed by all they are made from.

    That is: the phrase index, the embedding model, the label settings naming reads and the
    code, and the topics and centroids (``parts``, from ``label_topics``).
    """
    from pipeline.embed import model_identity
    from pipeline.label.named import NamingArrays, naming_settings

    common = {"phrases": phrases_key, "model": model_identity(config.embed), "seed": config.seed,
              "label": naming_settings(label_config), "code": _code()}  # fmt: skip

    def memo(parts: Mapping[str, str], work_out: Callable[[], Naming], valid: Callable[[Naming], bool]) -> Naming:
        key = hash_json({**common, **parts})
        found = cache.get("names", key, NamingArrays())
        if found is not None and valid(found):
            return found
        naming = work_out()
        cache.put("names", key, naming, NamingArrays(), keep=NAMINGS_KEPT)
        return naming

    return memo
