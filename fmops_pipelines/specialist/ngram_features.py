"""The n-gram student's featuriser, free of torch and of scikit-learn (models saved before fmops hashed n-grams
itself aside), so that inference can start in a fraction of a second: texts -> L2-normalised sublinear hashed
n-gram counts, optionally weighted by inverse document frequency (TF-IDF over hashed n-grams)."""

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


# an n-gram in fewer training texts than this is outside the IDF vocabulary (weight 0): one text's hapaxes are what
# a logistic regression would memorise that text by
MIN_DF = 2


def fit_idf(cfg, texts: Sequence[str], min_df: int = MIN_DF) -> np.ndarray:
    """Smoothed inverse document frequency per hashed id of `cfg`'s featuriser over distinct `texts`
    (scikit-learn's TfidfVectorizer: ln((1 + n) / (1 + df)) + 1), 0 where df < min_df: float32 over all its ids."""
    distinct = list(dict.fromkeys(texts))  # gold rows repeated for weight are one document each
    featurizer = Featurizer(cfg)
    X = featurizer.transform(distinct, np.float32)
    df = np.bincount(X.indices, minlength=featurizer.n_features)
    idf = np.log((1 + len(distinct)) / (1 + df)) + 1
    idf[df < min_df] = 0
    return idf.astype(np.float32)


class Featurizer:
    """Hashed word (and optional char_wb) n-grams. `cfg` is an NgramConfig or its dict; `idf` (fit_idf), when the
    config says `idf`, is the one fitted state: a weight per id, 0 for ids outside its vocabulary."""

    def __init__(self, cfg, idf: np.ndarray | None = None):
        self.cfg = cfg
        self.idf = None if idf is None else np.asarray(idf, dtype=np.float32)
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
        # "each": word and char n-grams L2-normalised apart, then weighted equally (as scikit-learn's FeatureUnion
        # of two TF-IDF vectorisers): normalised together, a text's many char n-grams would take ~90% of its
        # norm and drown its words. "joint": what models saved before it existed used.
        self.per_family = get("family_norm", "joint") == "each"
        # the compiled kernel computes the token-murmur / code-point hashers' features (ids fit in int32)
        self.compiled = isinstance(self.vectorizers[0], WordNgramHasher) and self.n_features < 2**31 and all(
            isinstance(v, CharNgramHasher) for v in self.vectorizers[1:])

    def transform(self, texts: Sequence[str], dtype=np.float64) -> sp.csr_matrix:
        if self.compiled:
            return self._transform_compiled(texts, dtype)
        parts = [self._weighted(_sublinear(v.transform(texts), dtype), i) for i, v in enumerate(self.vectorizers)]
        if len(parts) == 1:
            return l2_normalize_rows(parts[0])
        if not self.per_family:
            return l2_normalize_rows(sp.hstack(parts, format="csr"))
        for X in parts:
            l2_normalize_rows(X).data *= 1 / np.sqrt(len(parts))
        return sp.hstack(parts, format="csr")

    def _weighted(self, X: sp.csr_matrix, family: int) -> sp.csr_matrix:
        """One family's sublinear counts times its ids' idf, the ids outside the vocabulary dropped."""
        if self.idf is None:
            return X
        X.data *= self.idf[family * X.shape[1] + X.indices]
        X.eliminate_zeros()
        return X

    def _transform_compiled(self, texts: Sequence[str], dtype) -> sp.csr_matrix:
        """The same matrix through the compiled kernel (ngram_kernel)."""
        from fmops_pipelines.specialist import ngram_kernel

        indptr, indices, data = ngram_kernel.featurize(*self._kernel_args(texts))
        return sp.csr_matrix((data.astype(dtype, copy=False), indices, indptr), shape=(len(texts), self.n_features))

    def embed(self, texts: Sequence[str], bag: np.ndarray) -> np.ndarray:
        """transform(texts) @ bag; the compiled kernel sums the bag's rows without building the matrix."""
        if not self.compiled:
            return self.transform(texts, dtype=bag.dtype) @ bag
        from fmops_pipelines.specialist import ngram_kernel

        return ngram_kernel.embed(*self._kernel_args(texts), bag)

    def _kernel_args(self, texts: Sequence[str]) -> tuple:
        word, char = self.vectorizers[0], (self.vectorizers[1:] or [None])[0]
        return (list(map(str.lower, texts)), (word.lo, word.hi), (char.lo, char.hi) if char else None,
                self.n_features // len(self.vectorizers), self.per_family, self.idf)


def _sublinear(X: sp.csr_matrix, dtype) -> sp.csr_matrix:
    X = X.astype(dtype, copy=False)
    X.data = np.log1p(X.data)  # sublinear term frequency
    return X
