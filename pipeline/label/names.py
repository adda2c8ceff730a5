"""Names from c-TF-IDF key phrases, renamed topics and slugs.

A topic is named by the phrases its authors wrote (``pipeline.label.naming``); when no written
phrase qualifies, :func:`topic_name` builds a name from its key phrases (``keywords``): "chain
thought" is spelled "chain of thought", "large language" completed to "large language models";
overlapping phrases merge when the texts write the merged phrase; a phrase that repeats the name
or abbreviates it is skipped. :func:`rename_topics` sets other names (an LLM's) and keeps them
unique; :func:`slugify` gives each name a slug that is safe as a file name.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd

from pipeline.label.keywords import ABSTRACT_BOILERPLATE
from pipeline.schema import OUTLIER_TOPIC
from pipeline.terms import (
    ENGLISH_STOP_WORDS,
    GREEK_LETTERS,
    TokenizedTexts,
    phrase_followers,
    phrase_spellings,
    token_stream,
)

# Boilerplate words that may still complete a key phrase in a topic name.
NAME_TAIL_WORDS = frozenset({"model", "models"})
# Papers sampled per topic or group to complete its key phrases into names.
NAME_SAMPLE = 3000

Writing = tuple[Callable[[str], str], Callable[[str], bool]]  # a phrase completed; whether a phrase is written


def writing(tokens: TokenizedTexts, rows: np.ndarray) -> Writing:
    """How the texts ``rows`` write key phrases: a phrase completed, and whether a phrase is written."""
    # Counted on a sample of at most NAME_SAMPLE papers: a majority vote needs no more, and
    # the tree's root group holds every paper.
    sample = rows[:: max(1, -(-len(rows) // NAME_SAMPLE))]
    stream = functools.cache(lambda: token_stream(tokens, sample))  # built once, when a phrase needs it

    def name_phrase(phrase: str) -> str:
        spelled = spell_phrase(phrase, phrase_spellings(tokens, sample, phrase.split(), stream()))
        return complete_phrase(spelled, phrase_followers(tokens, sample, spelled.split(), stream()))

    def written(phrase: str) -> bool:
        words = phrase.split()
        return words[-1] in phrase_followers(tokens, sample, words[:-1], stream())

    return name_phrase, written


def spell_phrase(phrase: str, spellings: Counter[str]) -> str:
    """The key phrase as the topic's texts write it: "chain thought" -> "chain of thought".

    ``spellings`` (``pipeline.terms.phrase_spellings``) counts the phrase as found and with one
    word between its words; the most used form wins when that word is a stop word (the only
    kind the n-grams skipped) and it is used at least twice and more often than the phrase as found.
    """
    written = spellings.get(phrase, 0)
    gapped = {form: n for form, n in spellings.items() if form != phrase and form.split()[1] in ENGLISH_STOP_WORDS}
    if not gapped:
        return phrase
    best = max(gapped, key=lambda form: (gapped[form], form))
    return best if gapped[best] >= 2 and gapped[best] > written else phrase


def complete_phrase(phrase: str, followers: list[str]) -> str:
    """Extend a key phrase by the word that follows it in most of its uses.

    Stop words are removed before n-grams are counted, so c-TF-IDF finds "large language"
    and "graph neural"; the words that follow them in the topic's texts (``followers``, see
    ``pipeline.terms.phrase_followers``) say they are "large language models" and "graph
    neural networks".
    """
    # A name may end in "models" ("large language models"), but not in "for" or "approach".
    excluded = (ENGLISH_STOP_WORDS | ABSTRACT_BOILERPLATE) - NAME_TAIL_WORDS
    words = phrase.split()
    uses = Counter(followers)
    # Nor in a word it already holds: "remote photoplethysmography remote" (the next sentence's start).
    uses = Counter(
        {
            word: n
            for word, n in uses.items()
            if word not in excluded and word not in words and not _abbreviates(word, words)
        }
    )
    total = uses.total()
    if not total:
        return phrase
    best = max(uses, key=lambda word: (uses[word], word))
    return f"{phrase} {best}" if uses[best] * 2 > total and total >= 2 else phrase


def _without_own_abbreviation(phrase: str) -> str:
    """Drop a merged key phrase's own abbreviation: "graph neural networks gnns" -> "graph neural networks"."""
    words = phrase.split()
    return " ".join(words[:-1]) if len(words) > 2 and _abbreviates(words[-1], words[:-1]) else phrase


def _abbreviates(word: str, phrase_words: list[str]) -> bool:
    """Whether ``word`` is the phrase's own abbreviation, as in "reinforcement learning (RL)".

    Abstracts spell a term out and then abbreviate it, so the abbreviation is often the
    word that follows the phrase: "reinforcement learning rl", "uncertainty quantification
    uq", "multimodal large language mllms" are not names a person writes. An abbreviation
    here starts or ends with the initials of the phrase's words (plural "s" aside) and has
    at most two letters more ("training quantization" -> "ptq", post-training quantisation),
    or, up to 5 letters, takes its letters in order from the phrase's last words, the first
    being a word's first letter and the last in a later word: "vits" (vision transformers),
    "saes" (sparse autoencoders), "reid" (re identification).
    """
    initials = "".join(word[0] for word in phrase_words if word)
    core = word[:-1] if len(word) > 2 and word.endswith("s") else word
    if len(initials) >= 2 and len(core) <= len(initials) + 2 and (core.startswith(initials) or core.endswith(initials)):
        return True
    if not 2 <= len(core) <= 5:
        return False
    for index, first in enumerate(phrase_words[:-1]):
        later = "".join(phrase_words[index + 1 :])
        if first and core[0] == first[0] and core[-1] in later and _in_order(core[1:], first[1:] + later):
            return True
    return False


def _in_order(letters: str, text: str) -> bool:
    """Whether ``letters`` occur in ``text`` in this order, not necessarily adjacent."""
    remaining = iter(text)
    return all(letter in remaining for letter in letters)


def _word_stem(word: str) -> str:
    """Singular and plural count as the same word when deciding what a name already says."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _merge_overlap(first: str, second: str) -> str | None:
    """'bose einstein' + 'einstein condensates' -> 'bose einstein condensates', else None."""
    left, right = first.split(), second.split()
    if len(left) > 1 and len(right) > 1 and _word_stem(left[-1]) == _word_stem(right[0]):
        return " ".join(left + right[1:])
    if len(left) > 1 and len(right) > 1 and _word_stem(right[-1]) == _word_stem(left[0]):
        return " ".join(right + left[1:])
    return None


def topic_name(
    keywords: list[str],
    n_phrases: int,
    complete: Callable[[str], str] | None = None,
    written: Callable[[str], bool] | None = None,
) -> str:
    """A short name from key phrases: 'Graph neural networks, message passing', never '3_the_of_and'.

    Multi-word phrases are preferred and completed by ``complete`` (from the topic's texts); overlapping
    phrases are merged when ``written`` says the texts write the merged phrase ("long context" and
    "context learning", from in-context learning, are no "long context learning"); a phrase that
    mostly repeats words already in the name is skipped ("carbon nanotubes" then "walled carbon
    nanotubes"); the name stays within five words.
    """
    # Two-letter words come last: mostly abbreviations a reader cannot expand ("lr", "vi", "ke"),
    # but Greek letters name particles ("pi", "mu").
    singles = [word for word in keywords if " " not in word]
    cryptic = {word for word in singles if len(word) <= 2 and word not in GREEK_LETTERS}
    ranked = [word for word in keywords[:8] if " " in word] + [word for word in singles if word not in cryptic]
    ranked += [word for word in keywords[8:] if " " in word] + [word for word in singles if word in cryptic]
    chosen: list[str] = []
    for phrase in ranked:
        if " " in phrase and complete is not None:
            phrase = complete(phrase)
        merged = next(((i, m) for i, c in enumerate(chosen) if (m := _merge_overlap(c, phrase))), None)
        if merged is not None and len(merged[1].split()) <= 4 and (written is None or written(merged[1])):
            chosen[merged[0]] = merged[1]
            continue
        if " " not in phrase and any(_abbreviates(phrase, name.split()) for name in chosen):
            continue  # "Vision transformers, vit" says one thing twice
        covered = {_word_stem(word) for name in chosen for word in name.split()}
        stems = [_word_stem(word) for word in phrase.split()]
        if sum(stem in covered for stem in stems) * 2 >= len(stems):
            continue
        if sum(len(name.split()) for name in chosen) + len(stems) > 5:
            continue
        chosen.append(phrase)
        if len(chosen) >= n_phrases and sum(len(name.split()) for name in chosen) >= 2:
            break
    if not chosen:
        return ""
    name = ", ".join(_without_own_abbreviation(phrase) for phrase in chosen)
    return name[0].upper() + name[1:]


def rename_topics(topics: pd.DataFrame, new_names: dict[int, str]) -> pd.DataFrame:
    """The topics table with names replaced (e.g. by an LLM), kept unique, slugs rebuilt."""
    renamed = topics.copy()
    taken: set[str] = set()
    for row in renamed.itertuples():
        if row.topic == OUTLIER_TOPIC or row.topic not in new_names:
            taken.add(row.name.casefold())
    for index, row in renamed.iterrows():
        if row["topic"] == OUTLIER_TOPIC or row["topic"] not in new_names:
            continue
        name = new_names[row["topic"]]
        if name.casefold() in taken:
            name = f"{name} ({row['topic']})"
        taken.add(name.casefold())
        renamed.at[index, "name"] = name
        renamed.at[index, "slug"] = slugify(name)
    return renamed


def slugify(name: str, max_length: int = 40) -> str:
    """A file-name-safe slug of [a-z0-9-] only: a topic name can never become a path."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")
    return slug[:max_length].rstrip("-") or "topic"
