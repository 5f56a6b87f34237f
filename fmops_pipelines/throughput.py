"""Texts per second, timed on just enough texts: the one sizing rule the specialist's and the FM's timings share.

A fixed sample is too small for a fast model (the n-gram student does 256 texts in milliseconds: timer and
warm-up noise) and too large for a slow one (a generative FM on CPU at ~5 texts/s spent ~50 s of every
evaluation on 256 texts, and an evaluation on a paid endpoint sent 256 uncached requests). So a small
sample is timed first and each next sample is sized from the last timing, until one takes `min_seconds`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


def texts_per_s(run: Callable[[list[str]], object], texts: Sequence[str], min_seconds: float, first: int,
                max_texts: int, cycle: bool = False, clock: Callable[[], float] = time.perf_counter) -> float:
    """Rate of `run` (already warmed up) on the last sample, which took >= min_seconds or held max_texts. Samples
    are prefixes of `texts`, cycled through when `cycle` (a fast model outruns a test split), else at most
    all of them. The next size is extrapolated from the last timing (growing at least 2x), so the whole
    measurement costs about min_seconds rather than up to 4x that when sizes grow blind."""
    texts = list(texts)
    limit = max_texts if cycle else min(max_texts, len(texts))
    n = max(1, min(first, limit))
    while True:
        sample = (texts * -(-n // len(texts)))[:n] if cycle else texts[:n]
        start = clock()
        run(sample)
        seconds = clock() - start
        if seconds >= min_seconds or n >= limit:
            return n / max(seconds, 1e-9)
        n = int(min(limit, max(2 * n, 1.25 * min_seconds * n / max(seconds, 1e-6))))


def fm_texts_per_s(run: Callable[[list[str]], object], texts: Sequence[str], min_seconds: float | None,
                   first: int = 8) -> float:
    """An FM's uncached rate (`run` warmed up) on all of `texts` (min_seconds None: what the benchmarks time),
    or on the shortest prefix, from `first` texts up, that takes about min_seconds."""
    texts = list(texts)
    if min_seconds is None:
        return texts_per_s(run, texts, float("inf"), len(texts), len(texts))
    return texts_per_s(run, texts, min_seconds, first, len(texts))
