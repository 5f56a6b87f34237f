"""Hashed word n-gram counts, vectorised: each distinct token is hashed once (MurmurHash3, memoised) and
n-gram ids are combined from token hashes with integer arithmetic in numpy.

scikit-learn's HashingVectorizer builds every n-gram as a Python string before hashing it; at tens of
thousands of texts per second that string work is the student's whole inference cost. Tokens are the
same as its default (lowercased, `\\b\\w\\w+\\b`), and the ids are stable across processes and machines.
Token hashes are mmh3's MurmurHash3_x86_32 (seed 0, unsigned): the same values as scikit-learn's
`murmurhash3_32(positive=True)`, without importing scikit-learn, so `fmops predict` starts fast.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial

import mmh3
import numpy as np
import scipy.sparse as sp

# scikit-learn's token pattern is r"(?u)\b\w\w+\b"; greedy r"\w\w+" finds exactly the same tokens (a match
# can only start at the beginning of a run of word characters and takes all of it) and runs ~20% faster
TOKEN = re.compile(r"\w\w+")
# Joins a batch of lowercased texts into one string, so the regex runs once per batch instead of once per
# text (2x faster): ASCII capitals never survive str.lower(), so the separator is never part of a text
SEPARATOR = "QXSEPARATORQX"
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio): spreads the combined bits
_MAX_MEMO = 2_000_000  # distinct tokens remembered; past that the memo starts over
_hash = partial(mmh3.hash, seed=0, signed=False)
_SEPARATOR_HASH = np.uint64(1 << 32)  # outside the 32-bit range of token hashes: no token can collide with it


class WordNgramHasher:
    def __init__(self, ngram_range: tuple[int, int], n_features: int):
        self.lo, self.hi = ngram_range
        self.n_features = n_features
        self._memo: dict[str, int] = {}

    def _token_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token hashes of the whole batch in order, and each text's token count. Every loop here is a
        C-level operation: per-token Python bytecode was most of the cost."""
        memo = self._memo
        if len(memo) > _MAX_MEMO or not memo:
            memo.clear()
            memo[SEPARATOR] = _SEPARATOR_HASH
        tokens = TOKEN.findall(f" {SEPARATOR} ".join(map(str.lower, texts)))
        unseen = set(tokens).difference(memo)
        memo.update(zip(unseen, map(_hash, unseen)))
        hashes = np.fromiter(map(memo.__getitem__, tokens), dtype=np.uint64, count=len(tokens))
        separator = hashes == _SEPARATOR_HASH
        text_of_token = np.cumsum(separator)[~separator]
        return hashes[~separator], np.bincount(text_of_token, minlength=len(texts)).astype(np.int64)

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
        # counts per (text, feature) by one sort of a combined key: already CSR order, no COO conversion
        keys, counts = np.unique(row * self.n_features + col, return_counts=True)
        indptr = np.searchsorted(keys // self.n_features, np.arange(len(texts) + 1), side="left")
        return sp.csr_matrix((counts.astype(np.float64), keys % self.n_features, indptr),
                             shape=(len(texts), self.n_features))
