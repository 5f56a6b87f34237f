"""The n-gram featuriser's inner loop, compiled with numba: one pass per text over its code points that finds
its word tokens and char_wb words, hashes their n-grams, counts them and writes the sublinear, normalised row.

It computes what `hashing.WordNgramHasher` / `CharNgramHasher` and `Featurizer` compute with regexes, dicts
and numpy (the same ids and counts; weights equal up to float rounding, ids within a row in order of first
occurrence), without their per-token Python work and their dozen passes over temporary arrays of every
n-gram: through numpy the char n-gram student served 42k rows/s end to end on 2 cores, under half the 100k
target. Python's own definitions are kept: tokens are runs of two or more `\\w` characters (`str.isalnum()` or
`_`), hashed with MurmurHash3_x86_32 over their UTF-8 bytes (mmh3's values); char_wb words are split on the
code points `str.split()` splits on.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numba import njit

_MULT = np.uint64(0x9E3779B97F4A7C15)
_M32 = np.uint64(0xFFFFFFFF)
_LOG1P = np.log1p(np.arange(256, dtype=np.float64))  # sublinear weights of the counts a text has
_SEPARATE = np.int64(2**62)  # `split` when one family or one norm: every id is below it


@cache
def character_tables() -> tuple[np.ndarray, np.ndarray]:
    """(is_space, is_word) per code point, from Python itself (~0.1 s, once per process)."""
    space = np.zeros(0x3001, dtype=np.bool_)  # the 29 whitespace code points, the largest U+3000
    space[[c for c in range(0x3001) if chr(c).isspace()]] = True
    word = np.fromiter((c.isalnum() or c == "_" for c in map(chr, range(0x110000))), dtype=np.bool_, count=0x110000)
    return space, word


def featurize(lowered: list[str], word_range: tuple[int, int], char_range: tuple[int, int] | None,
              n_per_family: int, per_family: bool, idf: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (indptr, indices, data float64) of lowercased texts: the word family's ids first (0..n-1), the
    char family's after (n..2n-1). `idf`: a weight per id applied before normalising (0: the id is dropped)."""
    indptr, indices, data, _ = _run(lowered, word_range, char_range, n_per_family, per_family, idf, None)
    return indptr, indices, data


def embed(lowered: list[str], word_range: tuple[int, int], char_range: tuple[int, int] | None,
          n_per_family: int, per_family: bool, idf: np.ndarray | None, bag: np.ndarray) -> np.ndarray:
    """features @ bag [n_texts, dim] without building the feature matrix: what the serving scorer needs."""
    return _run(lowered, word_range, char_range, n_per_family, per_family, idf, _as_served(bag))[3]


def _as_served(bag: np.ndarray) -> np.ndarray:
    """One array type for every bag (a serving bundle's memory map is read-only, a trained model's is not): numba
    compiles per type, and a second type compiled again (seconds) in the first batch step that met it. The idf
    weights travel the same way (none: an empty array)."""
    view = np.ascontiguousarray(bag, dtype=np.float32).view(np.ndarray)
    view.flags.writeable = False
    return view


def warm_up() -> None:
    """Compile (or load from numba's cache) both entry points now: `scripts/bootstrap.sh` calls this once after
    installing, so no run, test or first `fmops predict` pays the compilation."""
    for chars in ((2, 4), None):
        featurize(["warm up"], (1, 2), chars, 16, True)
        embed(["warm up"], (1, 2), chars, 16, True, None, np.zeros((32, 2), dtype=np.float32))


def _run(lowered, word_range, char_range, n_per_family, per_family, idf, bag):
    space, word = character_tables()
    cps = np.frombuffer("".join(lowered).encode("utf-32-le"), dtype=np.uint32)
    text_len = np.fromiter(map(len, lowered), dtype=np.int64, count=len(lowered))
    char_lo, char_hi = char_range or (0, 0)
    embedding = bag is not None
    bag = bag if embedding else _as_served(np.zeros((0, 1), dtype=np.float32))
    idf = _as_served(np.zeros(0, dtype=np.float32) if idf is None else idf)
    return _featurize(cps, text_len, word_range[0], word_range[1], char_lo, char_hi, space, word, n_per_family,
                      per_family, idf, bag, embedding)


@njit(cache=True, inline="always")
def _mix(h, mask, n_features):
    h = h ^ (h >> np.uint64(29))
    if mask != np.uint64(0):
        return np.int64(h & mask)
    return np.int64(h % n_features)


@njit(cache=True, inline="always")
def _rotl32(x, r):
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & _M32


@njit(cache=True)
def _murmur3(data, n):
    """MurmurHash3_x86_32, seed 0, of data[:n] (bytes held in uint64), unsigned: mmh3.hash(s, 0, False)."""
    c1, c2 = np.uint64(0xCC9E2D51), np.uint64(0x1B873593)
    h = np.uint64(0)
    blocks = n // 4
    for b in range(blocks):
        i = 4 * b
        k = data[i] | (data[i + 1] << np.uint64(8)) | (data[i + 2] << np.uint64(16)) | (data[i + 3] << np.uint64(24))
        k = _rotl32((k * c1) & _M32, 15)
        h ^= (k * c2) & _M32
        h = (_rotl32(h, 13) * np.uint64(5) + np.uint64(0xE6546B64)) & _M32
    tail = n - 4 * blocks
    if tail:
        k = np.uint64(0)
        i = 4 * blocks
        if tail >= 3:
            k ^= data[i + 2] << np.uint64(16)
        if tail >= 2:
            k ^= data[i + 1] << np.uint64(8)
        k ^= data[i]
        k = _rotl32((k * c1) & _M32, 15)
        h ^= (k * c2) & _M32
    h ^= np.uint64(n)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & _M32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & _M32
    h ^= h >> np.uint64(16)
    return h


@njit(cache=True)
def _token_hash(cps, a, b, utf8):
    """The token cps[a:b], encoded as UTF-8 into `utf8`, hashed."""
    n = 0
    for j in range(a, b):
        c = np.uint64(cps[j])
        if c < 0x80:
            utf8[n] = c
            n += 1
        elif c < 0x800:
            utf8[n] = np.uint64(0xC0) | (c >> np.uint64(6))
            utf8[n + 1] = np.uint64(0x80) | (c & np.uint64(0x3F))
            n += 2
        elif c < 0x10000:
            utf8[n] = np.uint64(0xE0) | (c >> np.uint64(12))
            utf8[n + 1] = np.uint64(0x80) | ((c >> np.uint64(6)) & np.uint64(0x3F))
            utf8[n + 2] = np.uint64(0x80) | (c & np.uint64(0x3F))
            n += 3
        else:
            utf8[n] = np.uint64(0xF0) | (c >> np.uint64(18))
            utf8[n + 1] = np.uint64(0x80) | ((c >> np.uint64(12)) & np.uint64(0x3F))
            utf8[n + 2] = np.uint64(0x80) | ((c >> np.uint64(6)) & np.uint64(0x3F))
            utf8[n + 3] = np.uint64(0x80) | (c & np.uint64(0x3F))
            n += 4
    return _murmur3(utf8, n)


@njit(cache=True, inline="always")
def _is_space(c, space):
    return c < space.shape[0] and space[c]


@njit(cache=True, inline="always")
def _next_run(cps, p, end, word):
    """(start, stop) of the next run of word characters at or after p (start == stop == end: none left)."""
    while p < end and not word[cps[p]]:
        p += 1
    start = p
    while p < end and word[cps[p]]:
        p += 1
    return start, p


@njit(cache=True, inline="always")
def _next_word(cps, p, end, space):
    """(start, stop) of the next whitespace-separated word at or after p (start == end: none left)."""
    while p < end and _is_space(cps[p], space):
        p += 1
    start = p
    while p < end and not _is_space(cps[p], space):
        p += 1
    return start, p


@njit(cache=True)
def _tokens(cps, a, b, word, hashes, utf8):
    """Hashes of the text cps[a:b]'s tokens (runs of 2+ word characters) into `hashes`; returns how many."""
    t = 0
    p = a
    while p < b:
        start, p = _next_run(cps, p, b, word)
        if p - start >= 2:
            hashes[t] = _token_hash(cps, start, p, utf8)
            t += 1
    return t


@njit(cache=True)
def _n_pairs(cps, text_len, word_lo, word_hi, char_lo, char_hi, space, word):
    """Each text's number of n-gram occurrences (word + char): the buffers' sizes."""
    count = np.zeros(text_len.shape[0], dtype=np.int64)
    cp = 0
    for i in range(text_len.shape[0]):
        end = cp + text_len[i]
        t = 0
        p = cp
        while p < end:
            start, p = _next_run(cps, p, end, word)
            if p - start >= 2:
                t += 1
        total = 0
        for order in range(word_lo, word_hi + 1):
            if t >= order:
                total += t - order + 1
        if char_hi > 0:
            p = cp
            while p < end:
                w, p = _next_word(cps, p, end, space)
                if w >= end:
                    break
                length = p - w + 2
                if length < char_lo:
                    total += 1
                for n in range(char_lo, min(char_hi, length) + 1):
                    total += length - n + 1
        cp = end
        count[i] = total
    return count


@njit(cache=True)
def _featurize(cps, text_len, word_lo, word_hi, char_lo, char_hi, space, word, n_per_family, per_family, idf, bag,
               embedding):
    """The CSR rows, or with `embedding` each row's product with `bag` (the rows then share one buffer); with a
    non-empty `idf`, each id's weight times idf[id], the ids it zeroes dropped."""
    n_texts = text_len.shape[0]
    nf = np.uint64(n_per_family)
    mask = nf - np.uint64(1) if (n_per_family & (n_per_family - 1)) == 0 else np.uint64(0)
    split = n_per_family if per_family and char_hi > 0 else _SEPARATE
    count = _n_pairs(cps, text_len, word_lo, word_hi, char_lo, char_hi, space, word)
    longest_text = text_len.max() if n_texts else 0
    longest = count.max() if n_texts else 0
    buf = np.empty(longest, dtype=np.int64)
    slots = 16
    while slots < 2 * longest:
        slots *= 2
    slot_key = np.empty(slots, dtype=np.int64)  # an open-addressing table, cleared per text
    slot_pos = np.empty(slots, dtype=np.int64)
    hashes = np.empty(longest_text // 2 + 1, dtype=np.uint64)  # one text's token hashes
    utf8 = np.empty(4 * longest_text + 4, dtype=np.uint64)  # one token's bytes
    padded = np.empty(longest_text + 2, dtype=np.uint64)  # one char_wb word with its padding
    indptr = np.zeros(n_texts + 1, dtype=np.int64)
    size = longest if embedding else count.sum()
    indices = np.empty(size, dtype=np.int32)
    data = np.empty(size, dtype=np.float64)
    dim = bag.shape[1]
    embedded = np.zeros((n_texts if embedding else 0, dim), dtype=np.float32)
    row = np.empty(dim, dtype=np.float64)
    cp = 0
    out = 0
    for i in range(n_texts):
        end = cp + text_len[i]
        k = 0
        t = _tokens(cps, cp, end, word, hashes, utf8)
        for order in range(word_lo, word_hi + 1):
            for s in range(t - order + 1):
                h = hashes[s]
                for j in range(1, order):
                    h = h * _MULT + hashes[s + j]  # uint64 arithmetic wraps, as a hash should
                buf[k] = _mix(h, mask, nf)
                k += 1
        if char_hi > 0:
            p = cp
            while p < end:
                w, p = _next_word(cps, p, end, space)
                if w >= end:
                    break
                length = p - w + 2  # the word padded with a space on each side
                padded[0] = 32
                for j in range(w, p):
                    padded[j - w + 1] = cps[j]
                padded[length - 1] = 32
                if length < char_lo:  # shorter than every n: the whole padded word, once
                    h = np.uint64(length)
                    for j in range(length):
                        h = h * _MULT + padded[j]
                    buf[k] = _mix(h, mask, nf) + n_per_family
                    k += 1
                    continue
                for n in range(char_lo, min(char_hi, length) + 1):
                    for s in range(length - n + 1):
                        h = np.uint64(n)
                        for j in range(s, s + n):
                            h = h * _MULT + padded[j]
                        buf[k] = _mix(h, mask, nf) + n_per_family
                        k += 1
        cp = end
        u = _count_unique(buf, k, slot_key, slot_pos, indices, data, out)
        if idf.shape[0]:
            u = _weigh(indices, data, out, u, idf)
        _normalise(indices, data, out, out + u, split)
        if embedding:
            row[:] = 0.0
            for j in range(u):
                weight = data[j]
                feature = indices[j]
                for d in range(dim):
                    row[d] += weight * bag[feature, d]
            embedded[i, :] = row
        else:
            out += u
        indptr[i + 1] = out
    return indptr, indices[:out].copy(), data[:out].copy(), embedded


@njit(cache=True)
def _count_unique(buf, k, slot_key, slot_pos, indices, data, out):
    """Writes the text's distinct ids (in order of first occurrence) at indices[out:] and log1p of their counts
    at data[out:]; returns how many. A hash table sized to the text (load <= 1/2): linear in its n-grams, where
    sorting them took most of the kernel's time."""
    slots = 16
    while slots < 2 * k:
        slots *= 2
    mask = np.uint64(slots - 1)
    slot_key[:slots] = -1
    u = 0
    for j in range(k):
        v = buf[j]
        s = np.int64(((np.uint64(v) * _MULT) >> np.uint64(32)) & mask)
        while True:
            if slot_key[s] == -1:
                slot_key[s] = v
                slot_pos[s] = out + u
                indices[out + u] = v
                data[out + u] = 1.0
                u += 1
                break
            if slot_key[s] == v:
                data[slot_pos[s]] += 1.0
                break
            s = (s + 1) & (slots - 1)
    for j in range(out, out + u):
        c = np.int64(data[j])
        data[j] = _LOG1P[c] if c < _LOG1P.shape[0] else np.log1p(data[j])
    return u


@njit(cache=True)
def _weigh(indices, data, out, u, idf):
    """The row's weights times idf[id], the ids whose idf is 0 (outside the fitted vocabulary) removed in place;
    returns how many remain."""
    kept = out
    for j in range(out, out + u):
        w = idf[indices[j]]
        if w != 0:
            indices[kept] = indices[j]
            data[kept] = data[j] * w
            kept += 1
    return kept - out


@njit(cache=True)
def _normalise(indices, data, first, last, split):
    """The row to norm 1, or (ids below / from `split`: word / char) each family to norm 1/sqrt(2)."""
    word = 0.0
    char = 0.0
    for j in range(first, last):
        if indices[j] < split:
            word += data[j] * data[j]
        else:
            char += data[j] * data[j]
    apart = np.sqrt(2.0) if split != _SEPARATE else 1.0
    word = np.sqrt(word) * apart
    char = np.sqrt(char) * apart
    for j in range(first, last):
        scale = word if indices[j] < split else char
        if scale > 0:
            data[j] /= scale


if __name__ == "__main__":
    warm_up()
