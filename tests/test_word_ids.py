"""The preview model's tokens looked up word by word: the same ids and bit-identical vectors as model2vec's own.

These load the distilled preview model (built once into outputs/.cache/models, like the other
embedding tests' models).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from pipeline import embed
from pipeline.config import EmbedConfig
from pipeline.embed.word_ids import WordIds, fits, mean_vectors
from tests.test_embed import MODEL_CACHE, seed_paragraphs

# Texts built to break a split by regular expression: each must go the tokenizer's way or match it.
HOSTILE = [
    "",
    "   \t\n ",
    "Graph neural networks, (GNNs) & transformers: 99.5% of_it is hype!?",
    "UPPER lower MiXeD 42x 3.14e-5 a_b snake_case C++ [citation] {braces} `tick` ~tilde| back\\slash",
    "Café naïve résumé: accents are stripped",  # non-ASCII: the tokenizer's way
    "数据 mixed with latin words 和 punctuation。",  # CJK characters split one by one
    "control\x01characters\x7fjoin words, tab\tand\rreturn split them",
    "a literal [UNK] and [PAD] in the text are the tokenizer's added tokens",
    "x" * 150 + " a word longer than WordPiece's 100 characters becomes the unknown token",
    "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopic",
    " ".join(["repeated words fill the limit"] * 80),
    "\u00a0non-breaking\u2003spaces\u200b and a zero width space",
    "emoji 🙂 and math ∑ ∫ symbols",
]


@pytest.fixture(scope="module")
def backend():
    return embed.load_backend(EmbedConfig(backend="model2vec"), MODEL_CACHE)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return HOSTILE + seed_paragraphs()


def tokenizer_ids(model, texts: list[str], limit: int | None) -> list[list[int]]:
    """model2vec's own ids: the tokenizer's, truncated, less the unknown token."""
    model._set_max_length_in_tokenizer(limit)
    try:
        return model.tokenize(texts)
    finally:
        model._set_max_length_in_tokenizer(model.max_length)


def split(ids: np.ndarray, counts: np.ndarray) -> list[list[int]]:
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return [ids[start:stop].tolist() for start, stop in itertools.pairwise(offsets)]


@pytest.mark.slow
@pytest.mark.parametrize("limit", [256, 5, None])
def test_the_ids_are_the_tokenizers_for_every_kind_of_text(backend, texts, limit):
    model = backend._model
    assert fits(model)
    word_ids = WordIds(model.tokenizer, drop_id=model.unk_token_id)
    ids, counts = word_ids(texts, limit)
    expected = tokenizer_ids(model, texts, limit)
    assert split(ids, counts) == expected
    assert any(not text.isascii() for text in texts)
    assert max(counts) == 5 if limit == 5 else max(counts) > 200


@pytest.mark.slow
def test_a_words_pieces_do_not_depend_on_the_limit_of_the_call_that_first_met_it(backend):
    model = backend._model
    word_ids = WordIds(model.tokenizer, drop_id=model.unk_token_id)
    long_word = ["pneumonoultramicroscopicsilicovolcanoconiosis"]
    first, _ = word_ids(long_word, 2)
    again, _ = word_ids(long_word, None)
    assert len(first) == 2 and again.tolist() == tokenizer_ids(model, long_word, None)[0] and len(again) > 2


@pytest.mark.slow
def test_the_vectors_are_model2vecs_bit_for_bit_alone_and_in_any_company(backend, texts):
    model = backend._model
    reference = model.encode(texts, max_length=backend.max_tokens, show_progress_bar=False, use_multiprocessing=False)
    reference = reference.astype(np.float32)
    reference /= np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    assert backend._word_ids is not None  # the fast path is the one measured
    together = backend.encode(texts)
    alone = np.vstack([backend.encode([text]) for text in texts[:40]])
    assert together.tobytes() == reference.tobytes()
    assert alone.tobytes() == reference[:40].tobytes()
    assert not np.any(together[0]) and not np.any(together[1])  # no tokens: a zero vector, as model2vec gives


def test_mean_vectors_adds_tokens_one_after_the_other_in_float32_as_numpys_mean_of_float16():
    rng = np.random.default_rng(0)
    embedding = rng.standard_normal((500, 16)).astype(np.float16)
    counts = np.array([3, 0, 130, 1, 200, 17])
    ids = rng.integers(0, 500, counts.sum())
    got = mean_vectors(embedding.astype(np.float32), embedding.dtype, ids, counts, normalize=False)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for row, (start, stop) in enumerate(itertools.pairwise(offsets)):
        expected = embedding[ids[start:stop]].mean(axis=0) if stop > start else np.zeros(16, np.float16)
        assert got[row].tobytes() == expected.tobytes()
    normalized = mean_vectors(embedding.astype(np.float32), embedding.dtype, ids, counts, normalize=True)
    norms = np.linalg.norm(normalized[counts > 0].astype(float), axis=1)
    assert normalized.dtype == np.float16 and np.allclose(norms, 1, atol=1e-2)


@pytest.mark.slow
def test_a_model_of_another_shape_keeps_model2vecs_own_encode(backend, monkeypatch):
    model = backend._model
    monkeypatch.setattr(model, "weights", np.ones(len(model.embedding), dtype=np.float32))
    assert not fits(model)
    spec = json.loads(model.tokenizer.to_str())
    spec["normalizer"]["lowercase"] = False
    monkeypatch.setattr(model, "weights", None)
    from tokenizers import Tokenizer

    monkeypatch.setattr(model, "tokenizer", Tokenizer.from_str(json.dumps(spec)))
    assert not fits(model)
