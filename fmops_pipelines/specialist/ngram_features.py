"""The n-gram student's featuriser, free of torch and of scikit-learn (models saved before fmops hashed n-grams
itself aside), so that inference can start in a fraction of a second: texts -> L2-normalised sublinear hashed
n-gram counts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from fmops_pipelines.specialist.hashing import CharNgramHasher, WordNgramHasher


def _sklearn_hasher(n_features: int, **kwargs):
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(n_features=n_features, alternate_sign=False, norm=None, lowercase=True, **kwargs)


def l2_normalize_rows(X: sp.csr_matrix) -> sp.csr_matrix:
    """In place; rows without features (empty texts) stay zero."""
    per_row = np.diff(X.indptr)
    rows = np.repeat(np.arange(X.shape[0]), per_row)
    norms = np.sqrt(np.bincount(rows, weights=X.data.astype(np.float64) ** 2, minlength=X.shape[0]))
    norms[norms == 0] = 1.0
    X.data /= np.repeat(norms, per_row).astype(X.data.dtype)
    return X


class Featurizer:
    """Hashed word (and optional char_wb) n-grams; no fitted state. `cfg` is an NgramConfig or its dict."""

    def __init__(self, cfg):
        get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
        n = 2 ** get("hash_bits")
        word, char = tuple(get("word_ngrams")), get("char_ngrams")
        if get("word_hashing", "sklearn") == "token-murmur":
            self.vectorizers = [WordNgramHasher(word, n)]
        else:  # models saved before the token hasher existed
            self.vectorizers = [_sklearn_hasher(n, ngram_range=word)]
        if char and get("char_hashing", "sklearn") == "codepoint":
            self.vectorizers.append(CharNgramHasher(tuple(char), n))
        elif char:  # models saved before the code-point hasher existed
            self.vectorizers.append(_sklearn_hasher(n, analyzer="char_wb", ngram_range=tuple(char)))
        self.n_features = n * len(self.vectorizers)

    def transform(self, texts: Sequence[str], dtype=np.float64) -> sp.csr_matrix:
        parts = [v.transform(texts) for v in self.vectorizers]
        X = parts[0] if len(parts) == 1 else sp.hstack(parts, format="csr")
        X = X.astype(dtype, copy=False)
        X.data = np.log1p(X.data)  # sublinear term frequency
        return l2_normalize_rows(X)
