"""The embedding FM's pooled input token vectors (fm/token_vectors.py): a cheap text representation for gold-only
classifiers, from the packaged MiniLM's own weights."""

import numpy as np


def test_token_vectors_place_texts_by_their_words_and_meaning(minilm):
    texts = ["WINNER! claim your free prize now", "you won a free reward, claim it", "see you at lunch tomorrow",
             "", "!!!"]
    v = minilm.embed_tokens(texts)
    assert v.shape == (5, 256) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1, atol=1e-5)
    assert np.allclose(v[3], 0)  # no tokens: a zero row, not NaN
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1  # two prize messages are nearer each other than lunch
    assert np.array_equal(minilm.embed_tokens(texts[:2]), v[:2])  # a text's vector does not depend on its batch


def test_token_vectors_are_the_same_across_tokenizer_chunks(minilm, monkeypatch):
    from fmops_pipelines.fm import token_vectors

    texts = [f"message {i}: claim your prize" if i % 2 else f"lunch at {i}?" for i in range(7)]
    whole = minilm.embed_tokens(texts)
    monkeypatch.setattr(token_vectors, "CHUNK", 3)  # 3 + 3 + 1: chunks join in order, none dropped
    assert np.array_equal(minilm.embed_tokens(texts), whole)
