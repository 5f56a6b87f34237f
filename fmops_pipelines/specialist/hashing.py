"""Hashed word n-gram counts, vectorised: each distinct token is hashed once (MurmurHash3, memoised) and
n-gram ids are combined from token hashes with integer arithmetic in numpy.

scikit-learn's HashingVectorizer builds every n-gram as a Python string before hashing it; at tens of
thousands of texts per second that string work is the student's whole inference cost. Tokens are the
same as its default (lowercased, `\\b\\w\\w+\\b`), and the ids are stable across processes and machines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.utils import murmurhash3_32

TOKEN = re.compile(r"(?u)\b\w\w+\b")
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio): spreads the combined bits
_MAX_MEMO = 2_000_000  # distinct tokens remembered; past that the memo starts over


class WordNgramHasher:
    def __init__(self, ngram_range: tuple[int, int], n_features: int):
        self.lo, self.hi = ngram_range
        self.n_features = n_features
        self._memo: dict[str, int] = {}

    def _token_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        memo, findall = self._memo, TOKEN.findall
        if len(memo) > _MAX_MEMO:
            memo.clear()
        hashes: list[int] = []
        lengths = np.empty(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            tokens = findall(text.lower())
            for tok in tokens:
                h = memo.get(tok)
                if h is None:
                    h = memo[tok] = murmurhash3_32(tok, seed=0, positive=True)
                hashes.append(h)
            lengths[i] = len(tokens)
        return np.asarray(hashes, dtype=np.uint64), lengths

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Raw counts [n_texts, n_features] of the hashed n-grams of each text."""
        h, lengths = self._token_hashes(texts)
        doc = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        rows, cols = [], []
        for order in range(self.lo, self.hi + 1):
            n = len(h) - order + 1
            if n <= 0:
                continue
            combined = h[:n].copy()
            for j in range(1, order):
                combined = combined * _MULT + h[j : j + n]  # uint64 arithmetic wraps, as a hash should
            same_text = doc[:n] == doc[order - 1 : order - 1 + n]
            combined = combined[same_text]
            combined ^= combined >> np.uint64(29)
            rows.append(doc[:n][same_text])
            cols.append((combined % np.uint64(self.n_features)).astype(np.int64))
        row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        X = sp.csr_matrix((np.ones(len(row), dtype=np.float64), (row, col)), shape=(len(texts), self.n_features))
        X.sum_duplicates()
        return X
