"""Hashed word n-gram counts, vectorised: each distinct token is hashed once (MurmurHash3, memoised) and
n-gram ids are combined from token hashes with integer arithmetic in numpy.

scikit-learn's HashingVectorizer builds every n-gram as a Python string before hashing it; at tens of
thousands of texts per second that string work is the student's whole inference cost. Tokens are the
same as its default (lowercased, `\\b\\w\\w+\\b`), and the ids are stable across processes and machines.
Token hashes are mmh3's MurmurHash3_x86_32 (seed 0, unsigned): the same values as scikit-learn's
`murmurhash3_32(positive=True)`, without importing scikit-learn, so `fmops predict` starts fast.

Character n-grams (CharNgramHasher) are scikit-learn's `char_wb` n-grams, hashed from the characters'
code points in numpy instead of one Python string per n-gram: that string work made a student with
char n-grams 8-15x slower than one without.
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
            rows.append(doc[:n][same_text])
            cols.append(_mix(combined[same_text], self.n_features))
        return _count_matrix(rows, cols, len(texts), self.n_features)


def _count_matrix(rows: list[np.ndarray], cols: list[np.ndarray], n_texts: int, n_features: int) -> sp.csr_matrix:
    """Counts per (text, feature): scipy buckets the pairs by row in linear time and sorts and sums within each
    row, which beats one global sort of (row, col) keys (np.unique) by 1.3-1.5x on char n-grams."""
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    X = sp.csr_matrix((np.ones(len(row)), (row, col)), shape=(n_texts, n_features))
    X.sum_duplicates()  # sorted indices, one entry per feature: what the featuriser and the tests expect
    return X


def _mix(h: np.ndarray, n_features: int) -> np.ndarray:
    h = h ^ (h >> np.uint64(29))
    return (h % np.uint64(n_features)).astype(np.int64)


class CharNgramHasher:
    """scikit-learn's `char_wb` n-grams (lowercased; each whitespace-separated word padded with one space on
    each side; every n-gram inside a padded word, a padded word shorter than the smallest n once), hashed
    from code points: a polynomial over the n-gram's characters, seeded with n."""

    def __init__(self, ngram_range: tuple[int, int], n_features: int):
        self.lo, self.hi = ngram_range
        self.n_features = n_features

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        words_per_text = [t.lower().split() for t in texts]
        words = [w for ws in words_per_text for w in ws]
        if not words:
            return sp.csr_matrix((len(texts), self.n_features))
        chars = np.frombuffer("".join(f" {w} " for w in words).encode("utf-32-le"), dtype=np.uint32)
        chars = chars.astype(np.uint64)
        length = np.fromiter(map(len, words), dtype=np.int64, count=len(words)) + 2  # padded
        word_end = np.repeat(np.cumsum(length), length)  # per character: where its word ends
        text_of_word = np.repeat(np.arange(len(texts), dtype=np.int64), [len(ws) for ws in words_per_text])
        text_of_char = text_of_word[np.repeat(np.arange(len(words)), length)]
        position = np.arange(len(chars))
        rows, cols = [], []
        for n in range(self.lo, self.hi + 1):
            m = len(chars) - n + 1
            if m <= 0:
                break
            h = np.full(m, n, dtype=np.uint64)
            for j in range(n):
                h = h * _MULT + chars[j : j + m]
            inside = position[:m] + n <= word_end[:m]
            rows.append(text_of_char[:m][inside])
            cols.append(_mix(h[inside], self.n_features))
        short = np.flatnonzero(length < self.lo)  # padded words shorter than every n: counted once, whole
        if len(short):
            starts = np.cumsum(length) - length
            h = np.array([_char_poly(chars[a : a + k]) for a, k in zip(starts[short], length[short])], dtype=np.uint64)
            rows.append(text_of_word[short])
            cols.append(_mix(h, self.n_features))
        return _count_matrix(rows, cols, len(texts), self.n_features)


def _char_poly(chars: np.ndarray) -> np.uint64:
    """The n-gram hash of one whole padded word (n = its length), as CharNgramHasher computes it in bulk."""
    h = np.uint64(len(chars))
    with np.errstate(over="ignore"):
        for c in chars:
            h = h * _MULT + c
    return h
