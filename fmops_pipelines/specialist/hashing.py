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

These classes define the features; the featuriser computes the same ones through the compiled kernel
(ngram_kernel.py), and the tests hold the two equal. They stay as the readable reference and as the path for a
hash space too large for the kernel's int32 ids.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial
from itertools import chain

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

    def token_hashes(self, lowered: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token hashes of the whole batch of lowercased texts in order, and each text's token count. Every
        loop here is a C-level operation: per-token Python bytecode was most of the cost."""
        memo = self._memo
        if len(memo) > _MAX_MEMO or not memo:
            memo.clear()
            memo[SEPARATOR] = _SEPARATOR_HASH
        tokens = TOKEN.findall(f" {SEPARATOR} ".join(lowered))
        unseen = set(tokens).difference(memo)
        memo.update(zip(unseen, map(_hash, unseen)))
        hashes = np.fromiter(map(memo.__getitem__, tokens), dtype=np.uint64, count=len(tokens))
        separator = hashes == _SEPARATOR_HASH
        text_of_token = np.cumsum(separator)[~separator]
        return hashes[~separator], np.bincount(text_of_token, minlength=len(lowered)).astype(np.int64)

    def pairs(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(text index, feature id) of every n-gram occurrence, unsorted, duplicates kept."""
        h, lengths = self.token_hashes(list(map(str.lower, texts)))
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
        return _concat(rows), _concat(cols)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Raw counts [n_texts, n_features] of the hashed n-grams of each text."""
        return count_matrix(*self.pairs(texts), len(texts), self.n_features)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def count_matrix(row: np.ndarray, col: np.ndarray, n_texts: int, n_features: int,
                 dtype=np.float64) -> sp.csr_matrix:
    """Counts per (text, feature) as CSR with sorted indices, from one sort of (row, col) keys packed into
    int64 (numpy's vectorised sort) and the runs of equal neighbours. scipy's coo -> csr -> sum_duplicates,
    which sorts row by row, took most of a char n-gram student's serving time (6x slower on 1.2M pairs)."""
    bits = max(int(n_features - 1).bit_length(), 1)
    keys = (row << bits) | col
    keys.sort()
    if len(keys) == 0:
        return sp.csr_matrix((n_texts, n_features), dtype=dtype)
    starts = np.empty(len(keys), dtype=bool)
    starts[0] = True
    np.not_equal(keys[1:], keys[:-1], out=starts[1:])
    first = np.flatnonzero(starts)
    counts = np.diff(first, append=len(keys)).astype(dtype)
    unique = keys[first]
    indptr = np.zeros(n_texts + 1, dtype=np.int64)
    np.cumsum(np.bincount(unique >> bits, minlength=n_texts), out=indptr[1:])
    cols = (unique & ((1 << bits) - 1)).astype(np.int32 if n_features < 2**31 else np.int64)
    return sp.csr_matrix((counts, cols, indptr), shape=(n_texts, n_features))


def _mix(h: np.ndarray, n_features: int) -> np.ndarray:
    h = h ^ (h >> np.uint64(29))
    if n_features & (n_features - 1) == 0:  # a power of two (every hash_bits): a mask gives the modulo's ids
        return (h & np.uint64(n_features - 1)).astype(np.int64)  # without a 64-bit division per n-gram
    return (h % np.uint64(n_features)).astype(np.int64)


class CharNgramHasher:
    """scikit-learn's `char_wb` n-grams (lowercased; each whitespace-separated word padded with one space on
    each side; every n-gram inside a padded word, a padded word shorter than the smallest n once), hashed
    from code points: a polynomial over the n-gram's characters, seeded with n."""

    def __init__(self, ngram_range: tuple[int, int], n_features: int):
        self.lo, self.hi = ngram_range
        self.n_features = n_features

    def pairs(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(text index, feature id) of every n-gram occurrence, unsorted, duplicates kept. The n-gram hashes
        are built order by order from the previous one (h_n = h_(n-1) * M + c + M^n, the same values as the
        polynomial seeded with n), one multiply-add per order instead of n."""
        words_per_text = list(map(str.split, map(str.lower, texts)))
        words = list(chain.from_iterable(words_per_text))
        if not words:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        stream = " " + "  ".join(words) + " "  # each word padded with one space on each side
        chars = np.frombuffer(stream.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        length = np.fromiter(map(len, words), dtype=np.int64, count=len(words)) + 2  # padded
        word_end = np.repeat(np.cumsum(length), length)  # per character: where its word ends
        words_in_text = np.fromiter(map(len, words_per_text), dtype=np.int64, count=len(texts))
        text_of_word = np.repeat(np.arange(len(texts), dtype=np.int64), words_in_text)
        text_of_char = np.repeat(text_of_word, length)
        start = np.arange(len(chars), dtype=np.int64)
        rows, cols = [], []
        h = _MULT + chars  # order 1: seed 1
        for n in range(1, self.hi + 1):
            if n > 1:
                power = np.uint64(pow(int(_MULT), n, 2**64))  # M^n, wrapped as uint64 arithmetic wraps
                h = h[:-1] * _MULT + chars[n - 1 :] + power
            if n < self.lo:
                continue
            inside = start[: len(h)] + n <= word_end[: len(h)]
            rows.append(text_of_char[: len(h)][inside])
            cols.append(_mix(h[inside], self.n_features))
        short = np.flatnonzero(length < self.lo)  # padded words shorter than every n: counted once, whole
        if len(short):
            starts = np.cumsum(length) - length
            h = np.array([_char_poly(chars[a : a + k]) for a, k in zip(starts[short], length[short])], dtype=np.uint64)
            rows.append(text_of_word[short])
            cols.append(_mix(h, self.n_features))
        return _concat(rows), _concat(cols)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        return count_matrix(*self.pairs(texts), len(texts), self.n_features)


def _char_poly(chars: np.ndarray) -> np.uint64:
    """The n-gram hash of one whole padded word (n = its length), as CharNgramHasher computes it in bulk."""
    h = np.uint64(len(chars))
    with np.errstate(over="ignore"):
        for c in chars:
            h = h * _MULT + c
    return h
